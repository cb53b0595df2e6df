/* Bounces into queue state and the suppression list (see bounce.h). */
#include <stdio.h>
#include <string.h>

#include "bounce.h"
#include "missive/dsn.h"
#include "submit.h"

#define ADD(ok, call) ((ok) = (ok) && (call) != NULL)

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

/* Whether s has the form of our queue IDs (MSV_QID_LEN hex digits). */
static int is_queue_id(const char *s)
{
	size_t n = strspn(s, "0123456789abcdefABCDEF");
	return n == MSV_QID_LEN && s[n] == '\0';
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

msv_result app_apply_bounce(const app_config *c, msv_queue *q, const char *msg, size_t len,
                            cJSON **out, app_bounce_step *step, msv_error *err)
{
	msv_dsn_report *rep = NULL;
	*out = NULL;
	*step = APP_BOUNCE_PARSE;
	if (parse(c, msg, len, &rep, err)) {
		/* Whatever the parser's code, the message is what was wrong. */
		if (err->code != MSV_E_NOMEM)
			err->code = MSV_E_BAD_MESSAGE;
		return err->code;
	}
	*step = APP_BOUNCE_QUEUE;
	/* ok: every field made it (cJSON's adders return NULL when out of
	 * memory); a reply with "matched" missing would read as unmatched. */
	cJSON *j = cJSON_CreateObject();
	int ok = j != NULL;
	ADD(ok, cJSON_AddStringToObject(j, "kind", msv_dsn_kind_name(rep->kind)));
	if (rep->queue_id)
		ADD(ok, cJSON_AddStringToObject(j, "queue_id", rep->queue_id));
	else
		ADD(ok, cJSON_AddNullToObject(j, "queue_id"));
	if (rep->original_message_id)
		ADD(ok, cJSON_AddStringToObject(j, "original_message_id", rep->original_message_id));
	else
		ADD(ok, cJSON_AddNullToObject(j, "original_message_id"));
	cJSON *rs = ok ? cJSON_AddArrayToObject(j, "recipients") : NULL;
	ADD(ok, rs);
	msv_result rc = MSV_OK;
	int64_t now = msv_wall_ms();
	for (size_t i = 0; i < rep->nrecipients && !rc; i++) {
		const msv_dsn_recipient *r = &rep->recipients[i];
		cJSON *o = ok ? cJSON_CreateObject() : NULL;
		if (!o || !cJSON_AddItemToArray(rs, o)) {
			cJSON_Delete(o);
			ok = 0;
		}
		ADD(ok, cJSON_AddStringToObject(o, "address", r->address));
		ADD(ok, cJSON_AddStringToObject(o, "action", msv_dsn_action_name(r->action)));
		ADD(ok, cJSON_AddStringToObject(o, "status", r->status));
		ADD(ok, cJSON_AddStringToObject(o, "reason", msv_dsn_reason_name(r->reason)));
		ADD(ok, cJSON_AddBoolToObject(o, "hard", r->hard));
		int failed = r->action == MSV_DSN_ACTION_FAILED ||
		             (r->action == MSV_DSN_ACTION_NONE && rep->kind == MSV_DSN_BOUNCE);
		size_t changed = 0;
		int suppressed = 0;
		/* Which message: the queue ID from VERP or the ENVID, else the
		 * returned message's Message-ID with this recipient. */
		char qid[MSV_QID_LEN + 1] = "";
		int found = 0;
		if (rep->queue_id) {
			/* An ENVID that is not of our queue IDs' form was set by
			 * another system: an unmatched bounce, not an error (else
			 * one foreign report would stop the other recipients). */
			if (is_queue_id(rep->queue_id))
				snprintf(qid, sizeof(qid), "%s", rep->queue_id);
		} else if (failed && rep->original_message_id &&
		         msv_queue_find_message_id(q, rep->original_message_id, r->address, qid,
		                                   &found, err))
			rc = err->code;
		if (!rc && failed && *qid) {
			char text[MSV_TEXT_MAX];
			snprintf(text, sizeof(text), "bounce (%s): %s", msv_dsn_reason_name(r->reason),
			         r->diagnostic ? r->diagnostic : "");
			if (msv_queue_mark_bounced(q, qid, r->address, r->status, text, now, &changed, err))
				rc = err->code;
			if (!rc && changed && !rep->queue_id)
				ADD(ok, cJSON_AddStringToObject(o, "queue_id", qid));
		}
		/* Only a bounce for a recipient of a message we queued may
		 * suppress: anyone can forge a DSN, and an unmatched one would
		 * let them silence any address (a victim's, a rival's). */
		if (!rc && failed && r->hard && changed > 0 && c->suppress_hard_bounces) {
			char why[256];
			snprintf(why, sizeof(why), "%s %s", msv_dsn_reason_name(r->reason), r->status);
			if (msv_queue_suppress_add(q, r->address, why, "bounce", now, err))
				rc = err->code;
			else
				suppressed = 1;
		}
		ADD(ok, cJSON_AddBoolToObject(o, "matched", changed > 0));
		ADD(ok, cJSON_AddBoolToObject(o, "suppressed", suppressed));
	}
	msv_dsn_report_free(rep);
	if (!rc && !ok) {
		/* The queue changes stand; the sender may post it again. */
		rc = msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL,
		                   "out of memory building the bounce's result");
	}
	if (rc) {
		cJSON_Delete(j);
		return rc;
	}
	*out = j;
	*step = APP_BOUNCE_OK;
	return 0;
}
