/* The audit trail as missived and the operator commands use it: the
 * library's keys, masker and chained log opened from [audit], and the
 * events each part of the application records (docs/audit.md). */
#ifndef MSV_APP_AUDIT_H
#define MSV_APP_AUDIT_H

#include "config.h"
#include "missive/audit.h"

typedef struct app_audit {
	msv_audit_keys *keys;
	msv_masker *masker;
	msv_audit_log *log;
	char *hmac_key; /* [audit] key-file's bytes, or NULL */
	size_t hmac_key_len;
} app_audit;

/* Opens the configured trail; *out NULL when [audit] path = off.  node:
 * written in each event (NULL: none).  MSV_OK, or the code of err naming
 * the file and what was wrong. */
msv_result app_audit_open(const app_config *c, const char *node, app_audit **out,
                          msv_error *err);
void app_audit_close(app_audit *a);
/* Appends one event; a NULL a records nothing. */
msv_result app_audit_emit(app_audit *a, const msv_audit_event *ev, msv_error *err);
/* The HMAC key of [audit] key-file (secret-file rules) into *key and *len;
 * NULL/0 when none is configured. */
msv_result app_audit_hmac_key(const app_config *c, char **key, size_t *len, msv_error *err);

/* Who an event is by, from a stored submitter ("key:NAME", "uid:N",
 * "ip:ADDR"): sets ev->actor and ev->actor_id (pointing into submitter). */
void app_audit_actor(msv_audit_event *ev, const char *submitter);

/* The operator's name for actor_id: the real uid's login name, else the uid. */
const char *app_audit_operator_id(char *buf, size_t n);
/* One event by an operator command (actor: the login name of the real
 * uid), opening and closing the trail.  Nothing when the trail is off. */
msv_result app_audit_operator(const app_config *c, const char *type, const char *qid,
                              const msv_audit_field *fields, size_t n, msv_error *err);

/* bounce.received for each recipient of app_apply_bounce()'s result
 * (and suppression.changed for each address it suppressed). */
struct cJSON;
msv_result app_audit_bounce(app_audit *a, const struct cJSON *result, msv_audit_actor actor,
                            const char *actor_id, const char *actor_ip, msv_error *err);

#endif
