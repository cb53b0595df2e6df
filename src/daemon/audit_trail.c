/* missived's audit trail (docs/audit.md): the trail opened at start, the
 * events of the daemon's own parts, and a housekeeping thread that takes
 * other processes' forgotten addresses, fsyncs and expires old files. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "audit.h"
#include "audit_trail.h"
#include "exit_code.h"
#include "missive/version.h"

#define HOUSE_TICK_MS 250
#define EXPIRE_EVERY_MS 3600000
/* Refusals are recorded at most once a second per (identity, reason);
 * the next event says how many were left out, so a client hammering at
 * a limit cannot flood the trail. */
#define COALESCE_SLOTS 256
#define COALESCE_MS 1000

typedef struct coalesce_slot {
	char key[128];
	int64_t last_ms;
	uint64_t skipped;
} coalesce_slot;

struct audit_trail {
	daemon_ctx *d;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stopping, started;
	uint64_t failures;        /* events that could not be written */
	int64_t last_fail_log_ms;
	coalesce_slot slots[COALESCE_SLOTS];
};

static void count_failure(audit_trail *t, const msv_error *err)
{
	int64_t now = msv_wall_ms();
	pthread_mutex_lock(&t->mu);
	t->failures++;
	int say = now - t->last_fail_log_ms >= 10000;
	if (say)
		t->last_fail_log_ms = now;
	pthread_mutex_unlock(&t->mu);
	if (say)
		dlog("audit trail: cannot write an event: %s", err->message);
}

void daemon_audit(daemon_ctx *d, const msv_audit_event *ev)
{
	msv_error err;
	if (d->audit && app_audit_emit(d->audit, ev, &err) && d->trail)
		count_failure(d->trail, &err);
}

static const char *const outcome_types[MSV_RCPT__COUNT] = {
	[MSV_RCPT_SENT] = "recipient.sent",
	[MSV_RCPT_DEFERRED] = "recipient.deferred",
	[MSV_RCPT_BOUNCED] = "recipient.bounced",
	[MSV_RCPT_DEAD] = "recipient.dead",
	[MSV_RCPT_SUPPRESSED] = "recipient.suppressed",
};

void daemon_audit_outcome(daemon_ctx *d, const char *qid, const char *addr,
                          const msv_queue_outcome *o)
{
	/* A deferral without an attempt (shaping, an open circuit) is no
	 * delivery attempt: the next one is recorded. */
	if (!d->audit || (unsigned)o->state >= MSV_RCPT__COUNT || !outcome_types[o->state] ||
	    (o->state == MSV_RCPT_DEFERRED && !o->attempted))
		return;
	msv_audit_field f[] = {
		MSV_AUDIT_S("recipient", addr ? addr : ""),
		MSV_AUDIT_S("server", o->server ? o->server : ""),
		MSV_AUDIT_I("reply_code", o->reply_code),
		MSV_AUDIT_S("enhanced", o->enhanced ? o->enhanced : ""),
		MSV_AUDIT_S("reply", o->text ? o->text : ""),
		MSV_AUDIT_I("latency_ms", o->latency_ms),
		MSV_AUDIT_B("attempted", o->attempted),
	};
	msv_audit_event ev = {outcome_types[o->state], MSV_AUDIT_SYSTEM, NULL, NULL, qid, f,
	                      sizeof(f) / sizeof(f[0])};
	daemon_audit(d, &ev);
}

void daemon_audit_suppressed(daemon_ctx *d, const char *qid, const char *addr, const char *why)
{
	msv_audit_field f[] = {
		MSV_AUDIT_S("action", "add"),
		MSV_AUDIT_S("address", addr),
		MSV_AUDIT_S("reason", why ? why : ""),
		MSV_AUDIT_S("source", "smtp"),
	};
	msv_audit_event ev = {"suppression.changed", MSV_AUDIT_SYSTEM, NULL, NULL, qid, f, 4};
	daemon_audit(d, &ev);
}

/* 0: record this one (*skipped: how many were left out before it);
 * 1: leave it out. */
static int coalesced(audit_trail *t, const char *key, uint64_t *skipped)
{
	uint32_t h = 2166136261u;
	for (const char *p = key; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	coalesce_slot *s = &t->slots[h % COALESCE_SLOTS];
	int64_t now = msv_wall_ms();
	int skip = 0;
	pthread_mutex_lock(&t->mu);
	if (!strncmp(s->key, key, sizeof(s->key) - 1) && now - s->last_ms < COALESCE_MS) {
		s->skipped++;
		skip = 1;
	} else {
		*skipped = strncmp(s->key, key, sizeof(s->key) - 1) ? 0 : s->skipped;
		snprintf(s->key, sizeof(s->key), "%s", key);
		s->last_ms = now;
		s->skipped = 0;
	}
	pthread_mutex_unlock(&t->mu);
	return skip;
}

void daemon_audit_refused(daemon_ctx *d, const char *type, const char *submitter, const char *ip,
                          const char *reason, const char *scope, long long retry_after,
                          const char *why)
{
	if (!d->audit || !d->trail)
		return;
	char key[128];
	uint64_t skipped = 0;
	snprintf(key, sizeof(key), "%s|%s|%s|%s", type, submitter ? submitter : "", ip ? ip : "",
	         reason);
	if (coalesced(d->trail, key, &skipped))
		return;
	msv_audit_field f[] = {
		MSV_AUDIT_S("reason", reason),
		MSV_AUDIT_S("scope", scope ? scope : ""),
		MSV_AUDIT_I("retry_after", retry_after),
		MSV_AUDIT_S("why", why ? why : ""),
		MSV_AUDIT_I("left_out_before", (long long)skipped),
	};
	msv_audit_event ev = {type, MSV_AUDIT_SYSTEM, NULL, ip && *ip ? ip : NULL, NULL, f,
	                      sizeof(f) / sizeof(f[0])};
	app_audit_actor(&ev, submitter);
	daemon_audit(d, &ev);
}

void daemon_audit_bounce(daemon_ctx *d, const struct cJSON *result, const char *submitter,
                         const char *ip)
{
	msv_audit_event who = {0};
	app_audit_actor(&who, submitter);
	msv_error err;
	if (app_audit_bounce(d->audit, result, who.actor, who.actor_id, ip, &err) && d->trail)
		count_failure(d->trail, &err);
}

/* ---- housekeeping ---- */

static void housekeeping(audit_trail *t, int64_t *last_sync, int64_t *last_expire)
{
	daemon_ctx *d = t->d;
	msv_error err;
	int64_t now = msv_wall_ms();
	if (msv_audit_keys_refresh(d->audit->keys, &err))
		dlog("audit trail: cannot re-read the pseudonym keys: %s", err.message);
	if (now - *last_sync >= d->cfg->audit_fsync_ms) {
		*last_sync = now;
		if (msv_audit_sync(d->audit->log, &err))
			count_failure(t, &err);
	}
	if (d->cfg->audit_retention_ms && now - *last_expire >= EXPIRE_EVERY_MS) {
		*last_expire = now;
		unsigned n = 0;
		if (msv_audit_expire(d->audit->log, now, &n, &err))
			dlog("audit trail: cannot delete expired files: %s", err.message);
		else if (n)
			dlog("audit trail: deleted %u file%s older than [audit] retention", n,
			     n == 1 ? "" : "s");
	}
}

static void *house_main(void *arg)
{
	audit_trail *t = arg;
	int64_t last_sync = msv_wall_ms(), last_expire = 0;
	pthread_mutex_lock(&t->mu);
	while (!t->stopping) {
		pthread_mutex_unlock(&t->mu);
		housekeeping(t, &last_sync, &last_expire);
		pthread_mutex_lock(&t->mu);
		struct timespec until;
		daemon_abstime(&until, HOUSE_TICK_MS);
		if (!t->stopping)
			pthread_cond_timedwait(&t->cv, &t->mu, &until);
	}
	pthread_mutex_unlock(&t->mu);
	return NULL;
}

/* ---- start and stop ---- */

int daemon_audit_open(daemon_ctx *d)
{
	msv_error err;
	if (app_audit_open(d->cfg, d->node, &d->audit, &err)) {
		daemon_err("%s: [audit] %s", d->cfg->path, err.message);
		return app_exit_code(&err);
	}
	return 0;
}

static void started_events(daemon_ctx *d)
{
	const app_config *c = d->cfg;
	char pid[32];
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	msv_audit_field cf[] = {
		MSV_AUDIT_S("file", c->path),
		MSV_AUDIT_I("routes", (long long)c->nroutes),
		MSV_AUDIT_S("queue", c->queue_path),
		MSV_AUDIT_S("http", c->http_listen),
		MSV_AUDIT_B("trust_loopback", c->http_trust_loopback),
		MSV_AUDIT_B("chain_key", c->audit_key_file != NULL),
		MSV_AUDIT_I("mask_rules", (long long)c->naudit_masks),
	};
	msv_audit_event ev = {"config.loaded", MSV_AUDIT_SYSTEM, NULL, NULL, NULL, cf,
	                      sizeof(cf) / sizeof(cf[0])};
	daemon_audit(d, &ev);
	msv_audit_field sf[] = {
		MSV_AUDIT_S("path", c->audit_path),
		MSV_AUDIT_S("pid", pid),
		MSV_AUDIT_S("version", MSV_VERSION),
	};
	msv_audit_event sev = {"audit.started", MSV_AUDIT_SYSTEM, NULL, NULL, NULL, sf, 3};
	daemon_audit(d, &sev);
}

int daemon_audit_start(daemon_ctx *d)
{
	if (!d->audit)
		return 0;
	audit_trail *t = msv_calloc(1, sizeof(*t));
	if (!t) {
		dlog("cannot start the audit trail: out of memory");
		return EX_OSERR;
	}
	t->d = d;
	pthread_mutex_init(&t->mu, NULL);
	daemon_cond_init(&t->cv);
	d->trail = t;
	started_events(d);
	if (pthread_create(&t->th, NULL, house_main, t)) {
		dlog("cannot start the audit trail's thread");
		return EX_OSERR;
	}
	t->started = 1;
	return 0;
}

void daemon_audit_rotate(daemon_ctx *d)
{
	msv_error err;
	if (d->audit && msv_audit_rotate(d->audit->log, &err))
		dlog("SIGHUP: cannot rotate the audit trail: %s", err.message);
}

void daemon_audit_stop(daemon_ctx *d)
{
	audit_trail *t = d->trail;
	if (t) {
		msv_audit_event ev = {"audit.stopped", MSV_AUDIT_SYSTEM, NULL, NULL, NULL, NULL, 0};
		daemon_audit(d, &ev);
		pthread_mutex_lock(&t->mu);
		t->stopping = 1;
		pthread_cond_broadcast(&t->cv);
		pthread_mutex_unlock(&t->mu);
		if (t->started)
			pthread_join(t->th, NULL);
		pthread_cond_destroy(&t->cv);
		pthread_mutex_destroy(&t->mu);
	}
	app_audit_close(d->audit);
	d->audit = NULL;
	d->trail = NULL;
	msv_free(t);
}

uint64_t daemon_audit_failures(daemon_ctx *d)
{
	audit_trail *t = d->trail;
	if (!t)
		return 0;
	pthread_mutex_lock(&t->mu);
	uint64_t n = t->failures;
	pthread_mutex_unlock(&t->mu);
	return n;
}
