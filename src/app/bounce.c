/* Bounces into queue state and the suppression list (see bounce.h). */
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "bounce.h"
#include "cli.h"
#include "missive/dsn.h"
#include "submit.h"

/* The VERP prefix and domain of a route's return-path template
 * ("bounces+{id}@example.com" -> "bounces+", "example.com"). */
static int verp_parts(const char *tmpl, char *prefix, size_t pn, char *domain, size_t dn)
{
	const char *id = tmpl ? strstr(tmpl, "{id}") : NULL;
	if (!id || (size_t)(id - tmpl) >= pn || id[4] != '@' || strlen(id + 5) >= dn)
		return -1;
	memcpy(prefix, tmpl, (size_t)(id - tmpl));
	prefix[id - tmpl] = '\0';
	snprintf(domain, dn, "%s", id + 5);
	return 0;
}

static int parse(const app_config *c, const char *msg, size_t len, msv_dsn_report **rep,
                 msv_error *err)
{
	/* Try each route's VERP form until one finds the queue ID. */
	for (size_t i = 0; i < c->nroutes; i++) {
		char prefix[128], domain[256];
		if (verp_parts(c->routes[i]->return_path, prefix, sizeof(prefix), domain, sizeof(domain)))
			continue;
		msv_dsn_options o = MSV_DSN_OPTIONS_INIT;
		o.verp_prefix = prefix;
		o.verp_domain = domain;
		if (msv_dsn_parse(rep, msg, len, &o, err))
			return -1;
		if ((*rep)->queue_id)
			return 0;
		msv_dsn_report_free(*rep);
	}
	return msv_dsn_parse(rep, msg, len, NULL, err) ? -1 : 0;
}

int app_apply_bounce(const app_config *c, msv_queue *q, const char *msg, size_t len, cJSON **out,
                     msv_error *err)
{
	msv_dsn_report *rep = NULL;
	*out = NULL;
	if (parse(c, msg, len, &rep, err))
		return err->code == MSV_E_NOMEM ? EX_OSERR : EX_DATAERR;
	cJSON *j = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "kind", msv_dsn_kind_name(rep->kind));
	if (rep->queue_id)
		cJSON_AddStringToObject(j, "queue_id", rep->queue_id);
	else
		cJSON_AddNullToObject(j, "queue_id");
	if (rep->original_message_id)
		cJSON_AddStringToObject(j, "original_message_id", rep->original_message_id);
	else
		cJSON_AddNullToObject(j, "original_message_id");
	cJSON *rs = cJSON_AddArrayToObject(j, "recipients");
	int rc = 0;
	int64_t now = msv_wall_ms();
	for (size_t i = 0; i < rep->nrecipients && !rc; i++) {
		const msv_dsn_recipient *r = &rep->recipients[i];
		cJSON *o = cJSON_CreateObject();
		cJSON_AddItemToArray(rs, o);
		cJSON_AddStringToObject(o, "address", r->address);
		cJSON_AddStringToObject(o, "action", msv_dsn_action_name(r->action));
		cJSON_AddStringToObject(o, "status", r->status);
		cJSON_AddStringToObject(o, "reason", msv_dsn_reason_name(r->reason));
		cJSON_AddBoolToObject(o, "hard", r->hard);
		int failed = r->action == MSV_DSN_ACTION_FAILED ||
		             (r->action == MSV_DSN_ACTION_NONE && rep->kind == MSV_DSN_BOUNCE);
		size_t changed = 0;
		int suppressed = 0;
		if (failed && rep->queue_id) {
			char text[MSV_TEXT_MAX];
			snprintf(text, sizeof(text), "bounce (%s): %s", msv_dsn_reason_name(r->reason),
			         r->diagnostic ? r->diagnostic : "");
			if (msv_queue_mark_bounced(q, rep->queue_id, r->address, r->status, text, now,
			                           &changed, err))
				rc = cli_exit_code(err);
		}
		if (!rc && failed && r->hard && c->suppress_hard_bounces) {
			char why[256];
			snprintf(why, sizeof(why), "%s %s", msv_dsn_reason_name(r->reason), r->status);
			if (msv_queue_suppress_add(q, r->address, why, "bounce", now, err))
				rc = cli_exit_code(err);
			else
				suppressed = 1;
		}
		cJSON_AddBoolToObject(o, "matched", changed > 0);
		cJSON_AddBoolToObject(o, "suppressed", suppressed);
	}
	msv_dsn_report_free(rep);
	if (rc) {
		cJSON_Delete(j);
		return rc;
	}
	*out = j;
	return 0;
}
