/*
 * The gateway's state (contract in gateway.h, rules in docs/gateway.md).
 *
 * One mutex guards the key list and the identity table.  Admission holds
 * it for a few table look-ups and the pure policy calls of src/policy
 * (no I/O); the queue is read and written only outside it: the refresh
 * thread lists keys and takes overrides, the recorder's thread writes
 * scores after its commits.
 *
 * Memory is bounded: at most GW_MAX_ENTRIES identities and sender
 * domains.  When the table is full, entries that remember nothing (a
 * full bucket, the start score, a closed circuit, nothing unwritten) are
 * dropped; when none can be, a new identity is refused (429) rather than
 * admitted unlimited.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit_trail.h"

#include "api_keys.h"
#include "daemon.h"
#include "gateway.h"
#include "missive/policy.h"
#include "redis_limits.h"

/* Identities and sender domains held at once.  An entry is about 2.2 KB
 * (the reputation's breaker ring), so the table stays under 25 MB even
 * when a flood of client addresses fills it. */
#ifndef GW_MAX_ENTRIES /* smaller in tests/unit/daemon/test_gateway.c */
#define GW_MAX_ENTRIES 10000
#endif
#define GW_HASH_SIZE 4096 /* chains; a power of two */
/* An entry untouched this long may be dropped once it remembers nothing. */
#ifndef GW_IDLE_MS
#define GW_IDLE_MS 10000
#endif

typedef struct gw_entry {
	struct gw_entry *next;
	msv_bucket bucket;
	msv_reputation rep;
	double rate, burst;   /* the limit last applied (for "tokens exhausted") */
	int64_t used_ms;      /* last admission or outcome */
	int dirty;            /* the score changed since it was written */
	unsigned delivered, rejected, temporary; /* since then, for "why" */
	char id[];            /* "key:NAME", "uid:N", "ip:ADDR", "domain:NAME" */
} gw_entry;

struct gateway {
	struct daemon_ctx *d;
	pthread_mutex_t mu;
	msv_queue_key *keys;  /* from the queue, plus "default" (token-file) */
	size_t nkeys, nqkeys; /* all; of them from the queue (freed with the queue's free) */
	gw_entry *table[GW_HASH_SIZE];
	size_t nentries;
	size_t ndirty;        /* entries with dirty set */
	int64_t taken_ms;     /* when scores were last taken to be written (monotonic) */
	uint64_t limited[4];  /* refusals by scope: key, ip, uid, sender_domain */
	uint64_t circuit, reputation, auth_failures, admissions;
	uint64_t policy_ns;   /* time spent deciding (auth + admission), for bench/gateway.sh */
	int key_error;        /* the last key listing failed (logged once) */
	redis_limits *rl;     /* [limits] redis: shared buckets and scores; NULL: local only */
	pthread_mutex_t ov_mu; /* one taker of overrides at a time */
	/* the refresh thread */
	pthread_t th;
	pthread_cond_t cv;
	int stopping, started;
};

/* Scores not taken by a commit for this long are written alone. */
#define GW_IDLE_FLUSH_MS 2000

static const char *const scopes[4] = {"key", "ip", "uid", "sender_domain"};

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- the table ---- */

static size_t slot(const char *id)
{
	uint64_t h = 1469598103934665603u; /* FNV-1a */
	for (const unsigned char *p = (const unsigned char *)id; *p; p++)
		h = (h ^ *p) * 1099511628211u;
	return (size_t)(h & (GW_HASH_SIZE - 1));
}

static gw_entry *find(gateway *g, const char *id)
{
	for (gw_entry *e = g->table[slot(id)]; e; e = e->next)
		if (!strcmp(e->id, id))
			return e;
	return NULL;
}

/* 1 when dropping e loses nothing: what a new entry would hold. */
static int forgettable(const gateway *g, const gw_entry *e, int64_t now)
{
	const msv_reputation_policy *p = &g->d->cfg->reputation;
	if (e->dirty || e->rep.rejections || e->rep.circuit.open || now - e->used_ms < GW_IDLE_MS)
		return 0;
	if (fabs(msv_reputation_score(&e->rep, p, now) - p->start) >= 0.01)
		return 0;
	return e->rate <= 0 || msv_bucket_level(&e->bucket, e->rate, e->burst, now) >= e->burst;
}

static void sweep(gateway *g, int64_t now)
{
	for (size_t i = 0; i < GW_HASH_SIZE; i++)
		for (gw_entry **pp = &g->table[i]; *pp;) {
			gw_entry *e = *pp;
			if (forgettable(g, e, now)) {
				*pp = e->next;
				msv_free(e);
				g->nentries--;
			} else {
				pp = &e->next;
			}
		}
}

/* The entry of id, made when missing (lock held); NULL when the table is
 * full of entries that still remember something, or out of memory. */
static gw_entry *get(gateway *g, const char *id, int64_t now)
{
	gw_entry *e = find(g, id);
	if (e)
		return e;
	if (g->nentries >= GW_MAX_ENTRIES)
		sweep(g, now);
	size_t n = strlen(id) + 1;
	if (g->nentries >= GW_MAX_ENTRIES || !(e = msv_calloc(1, sizeof(*e) + n)))
		return NULL;
	memcpy(e->id, id, n);
	msv_reputation_init(&e->rep, &g->d->cfg->reputation, now);
	e->used_ms = now;
	e->bucket.tokens = -1; /* filled at its first use, when its burst is known */
	size_t s = slot(id);
	e->next = g->table[s];
	g->table[s] = e;
	g->nentries++;
	return e;
}

/* ---- keys ---- */

static void keys_free(msv_queue_key *k, size_t nq, size_t n)
{
	for (size_t i = nq; i < n; i++) {
		msv_free(k[i].name);
		msv_free(k[i].sender_domains);
	}
	msv_queue_keys_free(k, nq);
}

/* The queue's keys and the token-file's "default" in one array.  0, or -1
 * with err set. */
static int keys_load(gateway *g, msv_queue_key **out, size_t *nq, msv_error *err)
{
	msv_queue_key *k = NULL;
	size_t n = 0;
	if (msv_queue_key_list(g->d->q, &k, &n, err))
		return -1;
	*nq = n;
	const char *tok = g->d->http_token;
	if (tok) {
		msv_queue_key *more = msv_realloc(k, (n + 1) * sizeof(*k));
		if (!more) {
			msv_queue_keys_free(k, n);
			msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
			return -1;
		}
		k = more;
		memset(&k[n], 0, sizeof(k[n]));
		k[n].name = msv_strdup("default");
		k[n].sender_domains = msv_strdup("");
		if (!k[n].name || !k[n].sender_domains ||
		    app_key_hash(tok, strlen(tok), k[n].hash, err)) {
			keys_free(k, n, n + 1);
			if (!err->code)
				msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
			return -1;
		}
	}
	*out = k;
	return 0;
}

/* Re-reads the keys: a key removed or rotated stops working now. */
static void keys_refresh(gateway *g)
{
	msv_queue_key *k;
	size_t nq;
	msv_error err;
	if (keys_load(g, &k, &nq, &err)) {
		if (!g->key_error)
			dlog("gateway: cannot re-read the API keys (the old ones stay in force): %s",
			     err.message);
		g->key_error = 1;
		return;
	}
	if (g->key_error)
		dlog("gateway: API keys read again");
	g->key_error = 0;
	size_t n = nq + (g->d->http_token != NULL);
	pthread_mutex_lock(&g->mu);
	msv_queue_key *old = g->keys;
	size_t oldq = g->nqkeys, oldn = g->nkeys;
	g->keys = k;
	g->nqkeys = nq;
	g->nkeys = n;
	pthread_mutex_unlock(&g->mu);
	keys_free(old, oldq, oldn);
}

static const msv_queue_key *key_named(const gateway *g, const char *name)
{
	for (size_t i = 0; i < g->nkeys; i++)
		if (!strcmp(g->keys[i].name, name))
			return &g->keys[i];
	return NULL;
}

/* ---- identities ---- */

int gateway_http_ident(gateway *g, const char *authz, const char *ip, int loopback,
                       gw_ident *out)
{
	uint64_t t0 = mono_ns();
	memset(out, 0, sizeof(*out));
	snprintf(out->ip, sizeof(out->ip), "%s", ip);
	int ok = 0;
	if (authz) {
		unsigned char h[APP_KEY_HASH_LEN];
		msv_error err;
		/* "Bearer " exactly, as before keys existed; the secret is hashed
		 * whatever its form, so a malformed one costs the same. */
		const char *secret = !strncmp(authz, "Bearer ", 7) ? authz + 7 : "";
		if (!app_key_hash(secret, strlen(secret), h, &err)) {
			pthread_mutex_lock(&g->mu);
			long i = app_key_find(g->keys, g->nkeys, h);
			if (i >= 0 && *secret) {
				out->kind = GW_KEY;
				snprintf(out->id, sizeof(out->id), "key:%s", g->keys[i].name);
				ok = 1;
			}
			pthread_mutex_unlock(&g->mu);
		}
	} else if (loopback && g->d->cfg->http_trust_loopback) {
		out->kind = GW_IP;
		snprintf(out->id, sizeof(out->id), "ip:%s", ip);
		ok = 1;
	}
	uint64_t spent = mono_ns() - t0;
	pthread_mutex_lock(&g->mu);
	g->policy_ns += spent;
	pthread_mutex_unlock(&g->mu);
	return ok ? 0 : -1;
}

void gateway_uid_ident(gateway *g, long uid, const char *user, gw_ident *out)
{
	memset(out, 0, sizeof(*out));
	out->kind = GW_UID;
	snprintf(out->id, sizeof(out->id), "uid:%ld", uid);
	out->exempt = g->d->cfg->limit_exempt_trusted && app_user_trusted(g->d->cfg, uid, user);
}

void gateway_auth_failed(gateway *g, const gw_ident *id, int had_credentials)
{
	pthread_mutex_lock(&g->mu);
	g->auth_failures++;
	pthread_mutex_unlock(&g->mu);
	daemon_audit_refused(g->d, "auth.failed", NULL, id->ip,
	                     had_credentials ? "unknown_key" : "no_credentials", "http", 0, NULL);
}

/* ---- admission ---- */

/* A limit as the policy functions take it: rate 0 ("off") means no limit
 * whatever the burst, which msv_bucket_take reads as rate 0, burst 0. */
typedef struct limit {
	double rate, burst;
} limit;

static limit limit_of(double rate, double burst)
{
	limit l = {rate > 0 ? rate : 0, rate > 0 ? burst : 0};
	return l;
}

/* The identity's own limit: the key's --rate/--burst, else its kind's. */
static limit own_limit(const gateway *g, const gw_ident *id, const msv_queue_key *k)
{
	const app_config *c = g->d->cfg;
	const app_limit *kind = id->kind == GW_KEY ? &c->limit_key
	                        : id->kind == GW_UID ? &c->limit_uid : &c->limit_ip;
	double rate = k && k->rate > 0 ? k->rate : kind->rate;
	unsigned burst = k && k->burst ? k->burst : kind->burst;
	return limit_of(rate, burst ? burst : 1);
}

static const char *domain_of(const char *addr)
{
	const char *at = addr ? strrchr(addr, '@') : NULL;
	return at ? at + 1 : "";
}

/* A full bucket the first time an entry's bucket is used. */
static void bucket_ready(gw_entry *e, limit l, int64_t now)
{
	if (e->bucket.tokens < 0)
		msv_bucket_init(&e->bucket, l.burst, now);
	e->rate = l.rate;
	e->burst = l.burst;
	e->used_ms = now;
}

/* What the refused identity is called in a message: "key NAME", "uid
 * 1000", "127.0.0.1", "sender domain example.org". */
static void who(const char *id, char *out, size_t n)
{
	const char *colon = strchr(id, ':');
	if (!strncmp(id, "ip:", 3) || !colon)
		snprintf(out, n, "%s", colon ? colon + 1 : id);
	else if (!strncmp(id, "domain:", 7))
		snprintf(out, n, "sender domain %s", colon + 1);
	else
		snprintf(out, n, "%.*s %s", (int)(colon - id), id, colon + 1);
}

static int64_t whole_seconds(int64_t ms)
{
	return ms <= 0 ? 1 : (ms + 999) / 1000;
}

/* Fills err and why for a refusal by the entry e (lock held). */
static msv_result refuse(gateway *g, const gw_entry *e, int scope, msv_admit a, int64_t wait,
                         double rate, gw_refusal *why, msv_error *err)
{
	char name[160], r[32];
	who(e->id, name, sizeof(name));
	why->scope = scopes[scope];
	if (a == MSV_ADMIT_REPUTATION) {
		g->reputation++;
		why->score = msv_reputation_score(&e->rep, &g->d->cfg->reputation, msv_wall_ms());
		return msv_error_set(err, MSV_E_REPUTATION, MSV_CLASS_PERMANENT,
		                     "%s: reputation score %.1f is below the lowest sending tier; "
		                     "too much of its mail was refused", name, why->score);
	}
	why->retry_after = whole_seconds(wait);
	if (a == MSV_ADMIT_CIRCUIT) {
		g->circuit++;
		return msv_error_set(err, MSV_E_CIRCUIT_OPEN, MSV_CLASS_TEMPORARY,
		                     "%s is paused after repeated rejections: try again in %lld s",
		                     name, (long long)why->retry_after);
	}
	g->limited[scope]++;
	msv_rate_format(rate, r, sizeof(r));
	return msv_error_set(err, MSV_E_RATE_LIMITED, MSV_CLASS_TEMPORARY,
	                     "rate limit for %s (%s): try again in %lld s", name, r,
	                     (long long)why->retry_after);
}

/* The table is full of entries that still remember something (a flood
 * of new client addresses): a new one waits rather than go unlimited. */
static msv_result refuse_full(gateway *g, int scope, gw_refusal *why, msv_error *err)
{
	g->limited[scope]++;
	why->scope = scopes[scope];
	why->retry_after = 1;
	return msv_error_set(err, MSV_E_RATE_LIMITED, MSV_CLASS_TEMPORARY,
	                     "missived tracks too many submitters now (%d): try again in 1 s",
	                     GW_MAX_ENTRIES);
}

/* The sender domains a key may use: the envelope sender's and From's. */
static msv_result check_domains(const msv_queue_key *k, const char *sender, const char *from,
                                msv_error *err)
{
	const char *sd = domain_of(sender), *fd = domain_of(from);
	if (!k->sender_domains || !*k->sender_domains)
		return MSV_OK;
	if (app_key_domain_allowed(k->sender_domains, sd) &&
	    (!*fd || app_key_domain_allowed(k->sender_domains, fd)))
		return MSV_OK;
	return msv_error_set(err, MSV_E_FORBIDDEN, MSV_CLASS_PERMANENT,
	                     "key %s may not send as domain %s (its sender domains: %s)", k->name,
	                     !app_key_domain_allowed(k->sender_domains, sd) ? (*sd ? sd : "<>") : fd,
	                     k->sender_domains);
}

/* One bucket step on copies: 0 when a token is there, else the wait. */
static int64_t try_bucket(gw_entry *e, limit l, msv_bucket *copy, int64_t now)
{
	bucket_ready(e, l, now);
	*copy = e->bucket;
	return msv_bucket_take(copy, l.rate, l.burst, 1, now);
}

/* A node's share of a limit while the shared buckets cannot be reached:
 * the rate and the burst over [limits] redis-fallback-nodes (share 1:
 * the limit itself), so that the nodes together keep about the rate. */
static limit share_of(limit l, double share)
{
	if (share >= 1 || l.rate <= 0)
		return l;
	limit s = {l.rate * share, fmax(1, ceil(l.burst * share))};
	return s;
}

/* The sender domain's bucket name, lowercased, into dom. */
static void domain_id(const char *sender, char *dom, size_t n)
{
	snprintf(dom, n, "domain:%s", domain_of(sender));
	for (char *q = dom; *q; q++)
		*q = *q >= 'A' && *q <= 'Z' ? (char)(*q + 32) : *q;
}

/* The checks in order, each on a copy; the copies replace the real state
 * only when all pass (lock held).  share scales every limit (the local
 * fallback of shared limits). */
static msv_result admit_locked(gateway *g, const gw_ident *id, const msv_queue_key *k,
                               const char *sender, gw_refusal *why, msv_error *err, int64_t now,
                               double share)
{
	const app_config *c = g->d->cfg;
	const msv_reputation_policy *p = &c->reputation;
	char dom[300];
	gw_entry *self = get(g, id->id, now), *ip = NULL, *sd = NULL;
	int own_scope = id->kind == GW_KEY ? 0 : id->kind == GW_IP ? 1 : 2;
	if (!self)
		return refuse_full(g, own_scope, why, err);
	limit own = share_of(own_limit(g, id, k), share);
	bucket_ready(self, own, now);
	msv_reputation rep = self->rep;
	msv_bucket b = self->bucket, ipb = {0, 0}, sdb = {0, 0};
	int64_t wait = 0;
	msv_admit a = msv_reputation_admit(&rep, p, &b, own.rate, own.burst, 1, now, &wait);
	if (a != MSV_ADMIT_OK) {
		const msv_tier *t = msv_reputation_tier(p, msv_reputation_score(&self->rep, p, now));
		return refuse(g, self, own_scope, a, wait, own.rate * (t ? t->factor : 1), why, err);
	}
	/* Every HTTP request obeys its client address's bucket; an address
	 * that is itself the identity (trust-loopback) was just checked. */
	limit ipl = share_of(limit_of(c->limit_ip.rate, c->limit_ip.burst), share);
	if (id->kind == GW_KEY && *id->ip && ipl.rate > 0) {
		char ipid[80];
		snprintf(ipid, sizeof(ipid), "ip:%s", id->ip);
		if (!(ip = get(g, ipid, now)))
			return refuse_full(g, 1, why, err);
		if ((wait = try_bucket(ip, ipl, &ipb, now)))
			return refuse(g, ip, 1, MSV_ADMIT_RATE, wait, ipl.rate, why, err);
	}
	limit sdl = share_of(limit_of(c->limit_sender_domain.rate, c->limit_sender_domain.burst),
	                     share);
	if (sdl.rate > 0) {
		domain_id(sender, dom, sizeof(dom));
		if (!(sd = get(g, dom, now)))
			return refuse_full(g, 3, why, err);
		if ((wait = try_bucket(sd, sdl, &sdb, now)))
			return refuse(g, sd, 3, MSV_ADMIT_RATE, wait, sdl.rate, why, err);
	}
	self->rep = rep;
	self->bucket = b;
	if (ip)
		ip->bucket = ipb;
	if (sd)
		sd->bucket = sdb;
	return MSV_OK;
}

/* The buckets of one admission as the shared limits take them. */
typedef struct shared_set {
	rl_bucket b[3];
	char ids[3][300];
	int scope[3];
	size_t n;
} shared_set;

static void shared_add(shared_set *s, const char *id, limit l, int scope)
{
	if (l.rate <= 0)
		return;
	snprintf(s->ids[s->n], sizeof(s->ids[s->n]), "%s", id);
	s->b[s->n] = (rl_bucket){s->ids[s->n], l.rate, l.burst};
	s->scope[s->n++] = scope;
}

/* Admission through the shared buckets in Redis ([limits] redis): the
 * circuit and the tier are judged here on a copy, the buckets in one
 * script that takes from all or none.  Lock held, dropped for the round
 * trip (k is not used after it).  RL_DOWN: no Redis (or none set), the
 * caller decides with the local buckets; else *rc is the decision. */
static int admit_shared(gateway *g, const gw_ident *id, const msv_queue_key *k,
                        const char *sender, gw_refusal *why, msv_error *err, int64_t now,
                        msv_result *rc)
{
	const app_config *c = g->d->cfg;
	const msv_reputation_policy *p = &c->reputation;
	int own_scope = id->kind == GW_KEY ? 0 : id->kind == GW_IP ? 1 : 2;
	gw_entry *self;
	if (!redis_limits_up(g->rl))
		return RL_DOWN;
	if (!(self = get(g, id->id, now))) {
		*rc = refuse_full(g, own_scope, why, err);
		return RL_OK;
	}
	limit own = own_limit(g, id, k);
	msv_reputation rep = self->rep;
	int64_t wait = 0;
	const msv_tier *t = msv_reputation_tier(p, msv_reputation_score(&self->rep, p, now));
	msv_admit a = msv_reputation_admit(&rep, p, NULL, 0, 0, 1, now, &wait);
	if (a != MSV_ADMIT_OK) {
		*rc = refuse(g, self, own_scope, a, wait, own.rate * (t ? t->factor : 1), why, err);
		return RL_OK;
	}
	shared_set s = {.n = 0};
	own.rate *= t ? t->factor : 1;
	shared_add(&s, id->id, own, own_scope);
	char name[300];
	snprintf(name, sizeof(name), "ip:%s", id->ip);
	if (id->kind == GW_KEY && *id->ip)
		shared_add(&s, name, limit_of(c->limit_ip.rate, c->limit_ip.burst), 1);
	domain_id(sender, name, sizeof(name));
	shared_add(&s, name, limit_of(c->limit_sender_domain.rate, c->limit_sender_domain.burst), 3);
	pthread_mutex_unlock(&g->mu);
	size_t which = 0;
	double score = -1;
	int r = redis_limits_take(g->rl, s.b, s.n, id->id, &which, &wait, &score);
	pthread_mutex_lock(&g->mu);
	if (r == RL_DOWN)
		return RL_DOWN;
	/* The entry may have been dropped while the lock was let go. */
	gw_entry *e = get(g, r == RL_LIMITED ? s.ids[which] : id->id, now);
	self = find(g, id->id);
	if (self && score >= 0) { /* the score all nodes share, for the next tier */
		self->rep.score = score;
		self->rep.stamp_ms = now;
	}
	if (!e)
		*rc = refuse_full(g, r == RL_LIMITED ? s.scope[which] : own_scope, why, err);
	else if (r == RL_LIMITED)
		*rc = refuse(g, e, s.scope[which], MSV_ADMIT_RATE, wait, s.b[which].rate, why, err);
	else
		*rc = MSV_OK;
	if (!*rc && self) /* a half-open circuit's probe is out */
		self->rep.circuit = rep.circuit;
	if (self)
		self->used_ms = now;
	return RL_OK;
}

msv_result gateway_admit(gateway *g, const gw_ident *id, const char *sender, const char *from,
                         gw_refusal *why, msv_error *err)
{
	uint64_t t0 = mono_ns();
	int64_t now = msv_wall_ms();
	msv_result rc = MSV_OK;
	memset(why, 0, sizeof(*why));
	pthread_mutex_lock(&g->mu);
	const msv_queue_key *k = NULL;
	if (id->kind == GW_KEY && !(k = key_named(g, id->id + 4)))
		rc = msv_error_set(err, MSV_E_UNAUTHORIZED, MSV_CLASS_PERMANENT,
		                   "the API key was removed or rotated");
	if (!rc && k)
		rc = check_domains(k, sender, from, err);
	if (!rc && !id->exempt && admit_shared(g, id, k, sender, why, err, now, &rc) == RL_DOWN) {
		/* The lock may have been let go meanwhile: the key again. */
		k = id->kind == GW_KEY ? key_named(g, id->id + 4) : NULL;
		redis_limits_fell_back(g->rl);
		rc = admit_locked(g, id, k, sender, why, err, now,
		                  g->rl ? 1.0 / g->d->cfg->limit_redis_nodes : 1);
	}
	g->admissions++;
	g->policy_ns += mono_ns() - t0;
	pthread_mutex_unlock(&g->mu);
	if (rc)
		daemon_audit_refused(g->d, rc == MSV_E_UNAUTHORIZED ? "auth.failed" : "limit.refused",
		                     id->id, id->ip, msv_result_name(rc), why->scope,
		                     why->retry_after, err->message);
	return rc;
}

msv_result gateway_admit_cb(void *payload, const char *sender, const char *from, msv_error *err)
{
	gw_request *r = payload;
	return gateway_admit(r->g, r->id, sender, from, &r->why, err);
}

/* ---- outcomes and scores ---- */

void gateway_outcome(gateway *g, const char *submitter, msv_rcpt_state state)
{
	msv_verdict v;
	if (!submitter || !*submitter)
		return;
	if (state == MSV_RCPT_SENT)
		v = MSV_VERDICT_DELIVERED;
	else if (state == MSV_RCPT_BOUNCED)
		v = MSV_VERDICT_REJECTED;
	else if (state == MSV_RCPT_DEFERRED || state == MSV_RCPT_DEAD)
		v = MSV_VERDICT_TEMPORARY;
	else
		return; /* suppressed: never offered, says nothing of the sender */
	const msv_reputation_policy *p = &g->d->cfg->reputation;
	int64_t now = msv_wall_ms();
	pthread_mutex_lock(&g->mu);
	gw_entry *e = get(g, submitter, now);
	if (e) {
		const msv_tier *t = msv_reputation_tier(p, msv_reputation_score(&e->rep, p, now));
		double rate = e->rate * (t ? t->factor : 1);
		int exhausted = e->bucket.tokens >= 0 && e->rate > 0 &&
		                msv_bucket_level(&e->bucket, rate, e->burst, now) < 1;
		msv_reputation_record(&e->rep, p, v, 1, exhausted, now);
		g->ndirty += !e->dirty;
		e->dirty = 1;
		e->used_ms = now;
		*(v == MSV_VERDICT_DELIVERED ? &e->delivered
		  : v == MSV_VERDICT_REJECTED ? &e->rejected : &e->temporary) += 1;
	}
	pthread_mutex_unlock(&g->mu);
	/* The shared score moves too; every node's next admission of this
	 * submitter takes it from there. */
	double delta = v == MSV_VERDICT_DELIVERED ? p->delivered
	               : v == MSV_VERDICT_REJECTED ? p->rejected : p->temporary;
	double score;
	if (g->rl && redis_limits_outcome(g->rl, submitter, delta, &score) == RL_OK) {
		pthread_mutex_lock(&g->mu);
		if ((e = find(g, submitter))) {
			e->rep.score = score;
			e->rep.stamp_ms = now;
		}
		pthread_mutex_unlock(&g->mu);
	}
}

/* The dirty entries as rows (lock held); their marks are cleared. */
static size_t dirty_rows(gateway *g, msv_queue_reputation *rows, size_t max, int64_t now)
{
	size_t n = 0;
	for (size_t i = 0; i < GW_HASH_SIZE && n < max; i++)
		for (gw_entry *e = g->table[i]; e && n < max; e = e->next) {
			if (!e->dirty)
				continue;
			char why[96];
			snprintf(why, sizeof(why), "%u delivered, %u rejected, %u temporary",
			         e->delivered, e->rejected, e->temporary);
			msv_queue_reputation *r = &rows[n];
			if (!(r->identity = msv_strdup(e->id)) || !(r->why = msv_strdup(why))) {
				msv_free(r->identity);
				r->identity = NULL;
				return n; /* the rest stay dirty for the next flush */
			}
			r->score = e->rep.score;
			r->stamp_ms = e->rep.stamp_ms;
			r->rejections = e->rep.rejections;
			r->open_until_ms = e->rep.circuit.open ? e->rep.circuit.open_until_ms : 0;
			r->changed_ms = now;
			e->dirty = 0;
			g->ndirty--;
			e->delivered = e->rejected = e->temporary = 0;
			n++;
		}
	return n;
}

static void overrides_take(gateway *g);

size_t gateway_scores_take(gateway *g, msv_queue_reputation **rows)
{
	*rows = NULL;
	int64_t now = msv_wall_ms();
	pthread_mutex_lock(&g->mu);
	size_t max = g->ndirty, n = 0;
	msv_queue_reputation *v = max ? msv_calloc(max, sizeof(*v)) : NULL;
	if (v)
		n = dirty_rows(g, v, max, now);
	g->taken_ms = msv_now_ms();
	pthread_mutex_unlock(&g->mu);
	if (!n) {
		msv_free(v);
		return 0;
	}
	*rows = v;
	return n;
}

void gateway_scores_untake(gateway *g, const msv_queue_reputation *rows, size_t n)
{
	pthread_mutex_lock(&g->mu);
	for (size_t i = 0; i < n; i++) {
		gw_entry *e = find(g, rows[i].identity);
		if (e && !e->dirty) {
			e->dirty = 1;
			g->ndirty++;
		}
	}
	pthread_mutex_unlock(&g->mu);
}

void gateway_flush(gateway *g)
{
	pthread_mutex_lock(&g->mu);
	size_t dirty = g->ndirty;
	pthread_mutex_unlock(&g->mu);
	if (!dirty)
		return;
	/* An override written since the last look is applied first, so the
	 * rows written next cannot replace the operator's score with ours. */
	overrides_take(g);
	msv_queue_reputation *rows;
	size_t n = gateway_scores_take(g, &rows);
	msv_error err;
	if (n && msv_queue_reputation_put(g->d->q, rows, n, &err)) {
		dlog("gateway: cannot write %zu reputation scores: %s", n, err.message);
		gateway_scores_untake(g, rows, n);
	}
	msv_queue_reputations_free(rows, n);
}

/* Scores as the last missived left them: a restart forgives nobody. */
static int scores_load(gateway *g)
{
	msv_queue_reputation *r = NULL;
	size_t n = 0;
	msv_error err;
	if (msv_queue_reputation_list(g->d->q, &r, &n, &err)) {
		dlog("gateway: cannot read the stored reputation scores: %s", err.message);
		return -1;
	}
	int64_t now = msv_wall_ms();
	pthread_mutex_lock(&g->mu);
	for (size_t i = 0; i < n; i++) {
		gw_entry *e = get(g, r[i].identity, now);
		if (!e)
			break;
		e->rep.score = r[i].score;
		e->rep.stamp_ms = r[i].stamp_ms;
		e->rep.rejections = r[i].rejections;
		e->rep.circuit.open = r[i].open_until_ms > now;
		e->rep.circuit.open_until_ms = e->rep.circuit.open ? r[i].open_until_ms : 0;
	}
	pthread_mutex_unlock(&g->mu);
	msv_queue_reputations_free(r, n);
	return 0;
}

/* `missive reputation set`: the operator's score replaces ours.  Asked
 * twice a second; when there is none the queue answers from a read, so
 * the asking takes no write lock from the outcomes. */
static void overrides_take(gateway *g)
{
	msv_queue_reputation *r = NULL;
	size_t n = 0;
	msv_error err;
	pthread_mutex_lock(&g->ov_mu);
	if (msv_queue_reputation_take_overrides(g->d->q, &r, &n, &err)) {
		pthread_mutex_unlock(&g->ov_mu);
		dlog("gateway: cannot read reputation overrides: %s", err.message);
		return;
	}
	int64_t now = msv_wall_ms();
	pthread_mutex_lock(&g->mu);
	for (size_t i = 0; i < n; i++) {
		gw_entry *e = get(g, r[i].identity, now);
		if (e)
			msv_reputation_set(&e->rep, r[i].score, now);
	}
	pthread_mutex_unlock(&g->mu);
	pthread_mutex_unlock(&g->ov_mu);
	for (size_t i = 0; i < n; i++) {
		dlog("gateway: reputation of %s set to %.1f by an operator", r[i].identity,
		     r[i].score);
		/* One node takes the override: it tells the others through Redis. */
		if (g->rl && redis_limits_set_score(g->rl, r[i].identity, r[i].score) != RL_OK)
			dlog("gateway: the override of %s is not shared: Redis is down", r[i].identity);
	}
	msv_queue_reputations_free(r, n);
}

/* ---- the refresh thread ---- */

static void *refresh_main(void *arg)
{
	gateway *g = arg;
	pthread_mutex_lock(&g->mu);
	while (!g->stopping) {
		struct timespec until;
		daemon_abstime(&until, GW_REFRESH_MS);
		pthread_cond_timedwait(&g->cv, &g->mu, &until);
		if (g->stopping)
			break;
		pthread_mutex_unlock(&g->mu);
		keys_refresh(g);
		overrides_take(g);
		/* Scores ride with the recorder's next commit; when none has
		 * come for a while, they are written on their own. */
		pthread_mutex_lock(&g->mu);
		int idle = g->ndirty && msv_now_ms() - g->taken_ms >= GW_IDLE_FLUSH_MS;
		pthread_mutex_unlock(&g->mu);
		if (idle)
			gateway_flush(g);
		pthread_mutex_lock(&g->mu);
	}
	pthread_mutex_unlock(&g->mu);
	return NULL;
}

int gateway_start(struct daemon_ctx *d, gateway **out)
{
	*out = NULL;
	gateway *g = msv_calloc(1, sizeof(*g));
	if (!g) {
		dlog("gateway: out of memory");
		return -1;
	}
	g->d = d;
	pthread_mutex_init(&g->mu, NULL);
	pthread_mutex_init(&g->ov_mu, NULL);
	daemon_cond_init(&g->cv);
	msv_error err;
	if (redis_limits_start(d->cfg, &g->rl)) {
		dlog("gateway: cannot set up the shared limits: out of memory");
		gateway_stop(g);
		return -1;
	}
	if (keys_load(g, &g->keys, &g->nqkeys, &err)) {
		dlog("gateway: cannot read the API keys: %s", err.message);
		gateway_stop(g);
		return -1;
	}
	g->nkeys = g->nqkeys + (d->http_token != NULL);
	if (scores_load(g)) {
		gateway_stop(g);
		return -1;
	}
	/* Overrides left from while missived was down: their scores are in
	 * the rows just loaded; taken now so that none lingers. */
	overrides_take(g);
	if (pthread_create(&g->th, NULL, refresh_main, g)) {
		gateway_stop(g);
		return -1;
	}
	g->started = 1;
	*out = g;
	return 0;
}

void gateway_stop(gateway *g)
{
	if (!g)
		return;
	if (g->started) {
		pthread_mutex_lock(&g->mu);
		g->stopping = 1;
		pthread_cond_signal(&g->cv);
		pthread_mutex_unlock(&g->mu);
		pthread_join(g->th, NULL);
		gateway_flush(g);
	}
	redis_limits_stop(g->rl);
	for (size_t i = 0; i < GW_HASH_SIZE; i++)
		for (gw_entry *e = g->table[i], *next; e; e = next) {
			next = e->next;
			msv_free(e);
		}
	keys_free(g->keys, g->nqkeys, g->nkeys);
	pthread_cond_destroy(&g->cv);
	pthread_mutex_destroy(&g->ov_mu);
	pthread_mutex_destroy(&g->mu);
	msv_free(g);
}

/* ---- /metrics ---- */

int gateway_metrics(gateway *g, msv_buf *o)
{
	int rc = 0;
	int64_t now = msv_wall_ms();
	const msv_reputation_policy *p = &g->d->cfg->reputation;
	pthread_mutex_lock(&g->mu);
	rc |= msv_buf_addstr(o, "# HELP missive_rate_limited_total Submissions refused by a token "
	                        "bucket, by the bucket's scope.\n"
	                        "# TYPE missive_rate_limited_total counter\n");
	for (size_t i = 0; i < 4; i++)
		rc |= msv_buf_addf(o, "missive_rate_limited_total{scope=\"%s\"} %llu\n", scopes[i],
		                   (unsigned long long)g->limited[i]);
	rc |= msv_buf_addf(o, "# HELP missive_circuit_refused_total Submissions refused while the "
	                      "submitter's circuit was open.\n"
	                      "# TYPE missive_circuit_refused_total counter\n"
	                      "missive_circuit_refused_total %llu\n"
	                      "# HELP missive_reputation_refused_total Submissions refused for a "
	                      "score below every sending tier.\n"
	                      "# TYPE missive_reputation_refused_total counter\n"
	                      "missive_reputation_refused_total %llu\n"
	                      "# HELP missive_auth_failures_total HTTP requests refused with 401.\n"
	                      "# TYPE missive_auth_failures_total counter\n"
	                      "missive_auth_failures_total %llu\n"
	                      "# HELP missive_gateway_identities Identities and sender domains the "
	                      "gateway tracks now.\n"
	                      "# TYPE missive_gateway_identities gauge\n"
	                      "missive_gateway_identities %zu\n"
	                      "# HELP missive_gateway_admissions_total Submissions the gateway "
	                      "decided on.\n"
	                      "# TYPE missive_gateway_admissions_total counter\n"
	                      "missive_gateway_admissions_total %llu\n"
	                      "# HELP missive_gateway_policy_seconds_total Time spent on "
	                      "authentication and admission.\n"
	                      "# TYPE missive_gateway_policy_seconds_total counter\n"
	                      "missive_gateway_policy_seconds_total %.9f\n",
	                   (unsigned long long)g->circuit, (unsigned long long)g->reputation,
	                   (unsigned long long)g->auth_failures, g->nentries,
	                   (unsigned long long)g->admissions, (double)g->policy_ns / 1e9);
	/* Keys and local users by name; client addresses never (personal
	 * data, and unbounded label values). */
	rc |= msv_buf_addstr(o, "# HELP missive_reputation_score Reputation score of an API key "
	                        "or local user, 0 to 100.\n"
	                        "# TYPE missive_reputation_score gauge\n");
	for (size_t i = 0; i < GW_HASH_SIZE; i++)
		for (gw_entry *e = g->table[i]; e; e = e->next)
			if (!strncmp(e->id, "key:", 4) || !strncmp(e->id, "uid:", 4))
				rc |= msv_buf_addf(o, "missive_reputation_score{identity=\"%s\"} %.2f\n",
				                   e->id, msv_reputation_score(&e->rep, p, now));
	pthread_mutex_unlock(&g->mu);
	rc |= redis_limits_metrics(g->rl, o);
	return rc ? -1 : 0;
}
