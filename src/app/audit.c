/* Opening the audit trail from [audit], and the events shared by
 * missived and the operator commands. */
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "audit.h"
#include "secret_file.h"

msv_result app_audit_hmac_key(const app_config *c, char **key, size_t *len, msv_error *err)
{
	*key = NULL;
	*len = 0;
	if (!c->audit_key_file)
		return MSV_OK;
	msv_result rc = app_read_secret_file(c->audit_key_file, "audit key file", key, err);
	if (rc)
		return rc;
	*len = strlen(*key);
	if (*len < 16) {
		msv_free_secret(*key);
		*key = NULL;
		return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
		                     "audit key file %s: too short (give 32 random bytes or more, "
		                     "e.g. openssl rand -hex 32)", c->audit_key_file);
	}
	return MSV_OK;
}

static msv_result add_rules(msv_masker *m, const app_config *c, msv_error *err)
{
	for (size_t i = 0; i < c->naudit_masks; i++) {
		msv_result rc = msv_masker_add_rule(m, c->audit_masks[i], err);
		if (rc)
			return rc;
	}
	return MSV_OK;
}

msv_result app_audit_open(const app_config *c, const char *node, app_audit **out,
                          msv_error *err)
{
	*out = NULL;
	if (!c->audit_path)
		return MSV_OK;
	app_audit *a = msv_calloc(1, sizeof(*a));
	if (!a)
		return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "audit trail: out of memory");
	msv_result rc = app_audit_hmac_key(c, &a->hmac_key, &a->hmac_key_len, err);
	if (!rc)
		rc = msv_audit_keys_open(&a->keys, c->audit_pseudonym_keys, err);
	if (!rc)
		rc = msv_masker_new(&a->masker, a->keys, err);
	if (!rc)
		rc = add_rules(a->masker, c, err);
	if (!rc) {
		msv_audit_log_options o = {
			.path = c->audit_path,
			.hmac_key = (const unsigned char *)a->hmac_key,
			.hmac_key_len = a->hmac_key_len,
			.masker = a->masker,
			.rotate_size = c->audit_rotate_size,
			.rotate_daily = c->audit_rotate_daily,
			.retention_ms = c->audit_retention_ms,
			.fsync_ms = c->audit_fsync_ms,
			.node = node,
		};
		rc = msv_audit_log_open(&a->log, &o, err);
	}
	if (rc) {
		app_audit_close(a);
		return rc;
	}
	*out = a;
	return MSV_OK;
}

void app_audit_close(app_audit *a)
{
	if (!a)
		return;
	if (a->log)
		msv_audit_log_close(a->log);
	msv_masker_free(a->masker);
	if (a->keys)
		msv_audit_keys_close(a->keys);
	if (a->hmac_key)
		msv_free_secret(a->hmac_key);
	msv_free(a);
}

msv_result app_audit_emit(app_audit *a, const msv_audit_event *ev, msv_error *err)
{
	return a ? msv_audit_append(a->log, ev, err) : MSV_OK;
}

void app_audit_actor(msv_audit_event *ev, const char *submitter)
{
	static const struct {
		const char *prefix;
		msv_audit_actor kind;
	} kinds[] = {{"key:", MSV_AUDIT_KEY}, {"uid:", MSV_AUDIT_UID}, {"ip:", MSV_AUDIT_SYSTEM}};
	ev->actor = MSV_AUDIT_SYSTEM;
	ev->actor_id = NULL;
	for (size_t i = 0; submitter && i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		size_t n = strlen(kinds[i].prefix);
		if (!strncmp(submitter, kinds[i].prefix, n) && kinds[i].kind != MSV_AUDIT_SYSTEM) {
			ev->actor = kinds[i].kind;
			ev->actor_id = submitter + n;
		}
	}
}

const char *app_audit_operator_id(char *buf, size_t n)
{
	struct passwd *pw = getpwuid(getuid());
	if (pw && pw->pw_name)
		snprintf(buf, n, "%s", pw->pw_name);
	else
		snprintf(buf, n, "%ld", (long)getuid());
	return buf;
}

msv_result app_audit_operator(const app_config *c, const char *type, const char *qid,
                              const msv_audit_field *fields, size_t n, msv_error *err)
{
	app_audit *a;
	msv_result rc = app_audit_open(c, NULL, &a, err);
	if (rc || !a)
		return rc;
	char who[256];
	msv_audit_event ev = {
		.type = type,
		.actor = MSV_AUDIT_OPERATOR,
		.actor_id = app_audit_operator_id(who, sizeof(who)),
		.qid = qid,
		.fields = fields,
		.nfields = n,
	};
	rc = msv_audit_append(a->log, &ev, err);
	app_audit_close(a);
	return rc;
}

static const char *jstr(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	return cJSON_IsString(v) ? v->valuestring : "";
}

static int jtrue(const cJSON *o, const char *k)
{
	return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, k));
}

msv_result app_audit_bounce(app_audit *a, const cJSON *result, msv_audit_actor actor,
                            const char *actor_id, const char *actor_ip, msv_error *err)
{
	if (!a || !result)
		return MSV_OK;
	const cJSON *qidv = cJSON_GetObjectItemCaseSensitive(result, "queue_id");
	const char *qid = cJSON_IsString(qidv) ? qidv->valuestring : NULL;
	const cJSON *r;
	cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(result, "recipients"))
	{
		msv_audit_field f[] = {
			MSV_AUDIT_S("kind", jstr(result, "kind")),
			MSV_AUDIT_S("recipient", jstr(r, "address")),
			MSV_AUDIT_S("action", jstr(r, "action")),
			MSV_AUDIT_S("status", jstr(r, "status")),
			MSV_AUDIT_S("reason", jstr(r, "reason")),
			MSV_AUDIT_B("hard", jtrue(r, "hard")),
			MSV_AUDIT_B("matched", jtrue(r, "matched")),
			MSV_AUDIT_B("suppressed", jtrue(r, "suppressed")),
		};
		msv_audit_event ev = {"bounce.received", actor, actor_id, actor_ip, qid, f,
		                      sizeof(f) / sizeof(f[0])};
		msv_result rc = app_audit_emit(a, &ev, err);
		if (!rc && jtrue(r, "suppressed")) {
			msv_audit_field s[] = {
				MSV_AUDIT_S("action", "add"),
				MSV_AUDIT_S("address", jstr(r, "address")),
				MSV_AUDIT_S("reason", "bounce"),
			};
			msv_audit_event sev = {"suppression.changed", actor, actor_id, actor_ip, qid, s, 3};
			rc = app_audit_emit(a, &sev, err);
		}
		if (rc)
			return rc;
	}
	return MSV_OK;
}
