/* missived's audit trail (audit_trail.c, docs/audit.md).  Every function
 * does nothing when [audit] path = off. */
#ifndef MSV_DAEMON_AUDIT_TRAIL_H
#define MSV_DAEMON_AUDIT_TRAIL_H

#include "daemon.h"
#include "missive/audit.h"

struct cJSON;

/* Opens the trail (prepare(), before anything starts): 0 or an EX_* code
 * after printing why. */
int daemon_audit_open(daemon_ctx *d);
/* Records config.loaded and audit.started, starts the housekeeping
 * thread (pseudonym keys re-read, fsync, retention): 0 or an EX_* code. */
int daemon_audit_start(daemon_ctx *d);
/* Records audit.stopped, stops the thread, fsyncs and closes. */
void daemon_audit_stop(daemon_ctx *d);
/* SIGHUP: a new file, chained to the old one. */
void daemon_audit_rotate(daemon_ctx *d);

/* One event; a failure is counted (/metrics) and logged at most every 10 s. */
void daemon_audit(daemon_ctx *d, const msv_audit_event *ev);
/* recipient.sent, .deferred (attempted only), .bounced, .dead, .suppressed. */
void daemon_audit_outcome(daemon_ctx *d, const char *qid, const char *addr,
                          const msv_queue_outcome *o);
/* suppression.changed after a hard bounce. */
void daemon_audit_suppressed(daemon_ctx *d, const char *qid, const char *addr, const char *why);
/* auth.failed or limit.refused by submitter ("key:NAME", "uid:N",
 * "ip:ADDR", NULL) from ip, at most once a second per identity and reason. */
void daemon_audit_refused(daemon_ctx *d, const char *type, const char *submitter, const char *ip,
                          const char *reason, const char *scope, long long retry_after,
                          const char *why);
/* bounce.received for POST /v1/bounces's result. */
void daemon_audit_bounce(daemon_ctx *d, const struct cJSON *result, const char *submitter,
                         const char *ip);
/* Events that could not be written since start. */
uint64_t daemon_audit_failures(daemon_ctx *d);

#endif
