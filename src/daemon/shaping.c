/* Outbound shaping and the routes' circuit breakers (shaping.h,
 * docs/gateway.md).  Every decision is one of missive/policy.h's pure
 * functions; here is only their state, one mutex around it, and the
 * queue writes that follow from them (done outside the mutex). */
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "missive/policy.h"
#include "shaping.h"

/* A message held back for a session slot of its destination looks again
 * this soon: a session to one domain lasts about a round trip per
 * message, and a claim costs one small transaction. */
#define SLOT_WAIT_MS 250
/* Messages behind a half-open circuit's probe look again this soon, so
 * that they follow a probe that got through at once, not a cool-down
 * later. */
#define PROBE_RECHECK_MS 500

typedef struct route_shape {
	msv_bucket bucket;      /* the route's rate */
	msv_breaker breaker;
	size_t inflight;        /* messages handed to the pool, not yet reported */
	msv_circuit published;  /* as last written to the queue */
	int published_ok;       /* written at all */
} route_shape;

typedef struct dest_shape {
	msv_bucket bucket;
	unsigned sessions;      /* groups (one session each) carrying its mail now */
} dest_shape;

struct shaping {
	pthread_mutex_t mu;     /* everything below */
	pthread_mutex_t pub_mu; /* one route-state write at a time, so the last wins */
	route_shape *routes;    /* as cfg->routes */
	dest_shape *dests;      /* as cfg->dests */
	size_t nroutes, ndests;
	uint64_t shaped_route, shaped_dest; /* recipients postponed for want of a token */
};

shaping *shaping_new(const daemon_ctx *d)
{
	const app_config *c = d->cfg;
	shaping *s = msv_calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->routes = msv_calloc(c->nroutes ? c->nroutes : 1, sizeof(*s->routes));
	s->dests = msv_calloc(c->ndests ? c->ndests : 1, sizeof(*s->dests));
	if (!s->routes || !s->dests) {
		msv_free(s->routes);
		msv_free(s->dests);
		msv_free(s);
		return NULL;
	}
	s->nroutes = c->nroutes;
	s->ndests = c->ndests;
	int64_t now = msv_now_ms();
	for (size_t i = 0; i < c->nroutes; i++) {
		msv_bucket_init(&s->routes[i].bucket, c->routes[i]->shape.burst, now);
		msv_breaker_init(&s->routes[i].breaker);
	}
	for (size_t i = 0; i < c->ndests; i++)
		msv_bucket_init(&s->dests[i].bucket, c->dests[i]->shape.burst, now);
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_init(&s->pub_mu, NULL);
	return s;
}

void shaping_free(shaping *s)
{
	if (!s)
		return;
	pthread_mutex_destroy(&s->mu);
	pthread_mutex_destroy(&s->pub_mu);
	msv_free(s->routes);
	msv_free(s->dests);
	msv_free(s);
}

/* ---- the queue side ---- */

/* Writes route ri's circuit when it differs from what was written last.
 * The state is read under pub_mu, so of two racing writers the later
 * writes the newer state. */
static void publish(daemon_ctx *d, size_t ri)
{
	shaping *s = d->shape;
	route_shape *rs = &s->routes[ri];
	msv_error err;
	pthread_mutex_lock(&s->pub_mu);
	int64_t now = msv_now_ms(), wall = msv_wall_ms();
	pthread_mutex_lock(&s->mu);
	msv_circuit c = msv_breaker_state(&rs->breaker, now);
	int same = rs->published_ok && rs->published == c;
	rs->published = c;
	rs->published_ok = 1;
	msv_queue_route_state row = {
		.route = d->cfg->routes[ri]->name,
		.circuit = (char *)msv_circuit_name(c),
		/* The breaker runs on the monotonic clock; readers want a date. */
		.open_until_ms =
		    c == MSV_CIRCUIT_CLOSED ? 0 : wall + (rs->breaker.open_until_ms - now),
		.trips = rs->breaker.trips,
		.changed_ms = wall,
	};
	pthread_mutex_unlock(&s->mu);
	if (!same && msv_queue_route_state_put(d->q, &row, 1, &err))
		dlog("route %s: cannot write its circuit's state: %s", row.route, err.message);
	pthread_mutex_unlock(&s->pub_mu);
}

void shaping_publish_all(daemon_ctx *d)
{
	for (size_t i = 0; d->shape && i < d->shape->nroutes; i++)
		publish(d, i);
}

int shaping_postpone(daemon_ctx *d, const int64_t *ids, size_t n, int64_t until_ms)
{
	msv_error err;
	if (!n || !msv_queue_postpone(d->q, ids, n, until_ms, NULL, &err))
		return 0;
	dlog("cannot put %zu recipients back in the queue: %s (they stay leased until missived "
	     "stops)", n, err.message);
	return -1;
}

typedef struct pending {
	int64_t until, id;
} pending;

static int cmp_pending(const void *a, const void *b)
{
	const pending *x = a, *y = b;
	return x->until < y->until ? -1 : x->until > y->until;
}

/* One postpone per distinct time: waits for one bucket are all alike. */
static void postpone_waiting(daemon_ctx *d, msv_queue_job *const *group, size_t n,
                             const int64_t *wait, int64_t wall)
{
	size_t total = 0, np = 0;
	for (size_t i = 0; i < n; i++)
		total += group[i]->nrcpt;
	pending *p = msv_calloc(total ? total : 1, sizeof(*p));
	int64_t *ids = msv_calloc(total ? total : 1, sizeof(*ids));
	if (!p || !ids) {
		dlog("out of memory putting recipients back in the queue; their leases run out");
		goto out;
	}
	for (size_t i = 0, k = 0; i < n; k += group[i]->nrcpt, i++)
		for (size_t x = 0; x < group[i]->nrcpt; x++)
			if (wait[k + x] > 0)
				p[np++] = (pending){wall + wait[k + x], group[i]->rcpt[x].id};
	qsort(p, np, sizeof(*p), cmp_pending);
	for (size_t a = 0, b; a < np; a = b) {
		for (b = a; b < np && p[b].until == p[a].until; b++)
			ids[b - a] = p[b].id;
		shaping_postpone(d, ids, b - a, p[a].until);
	}
out:
	msv_free(p);
	msv_free(ids);
}

/* ---- admission ---- */

/* Milliseconds until the bucket of limit l holds a token (0: now); b
 * is not changed. */
static int64_t token_wait(const msv_bucket *b, const app_limit *l, int64_t now)
{
	if (!(l->rate > 0))
		return 0; /* rate off */
	msv_bucket t = *b;
	int64_t w = msv_bucket_take(&t, l->rate, (double)l->burst, 1, now);
	/* "never" needs burst < 1, which the configuration refuses */
	return w < 0 ? 1000 : w;
}

static void token_take(msv_bucket *b, const app_limit *l, int64_t now)
{
	if (l->rate > 0)
		(void)msv_bucket_take(b, l->rate, (double)l->burst, 1, now);
}

/* The index of the [destination] of an address's domain, or SIZE_MAX. */
static size_t dest_of(const app_config *c, const char *addr)
{
	const char *at = strrchr(addr, '@');
	const app_destination *ds = at ? app_destination_for(c, at + 1) : NULL;
	for (size_t i = 0; ds && i < c->ndests; i++)
		if (c->dests[i] == ds)
			return i;
	return SIZE_MAX;
}

/* One group's admission; the per-destination arrays are indexed by
 * destination and reset per message through seen. */
typedef struct admit_ctx {
	shaping *s;
	const app_config *c;
	const app_route *r;
	route_shape *rs;
	unsigned char *held;    /* the group's session slots (shaped.held) */
	size_t *seen;           /* 1 + the message that last looked at the destination */
	int64_t *dwait;         /* its wait for that message */
	unsigned char *dslot;   /* the wait is for a session slot, not a token */
	int64_t now;
	int probe;
} admit_ctx;

/* The wait of destination di for message i (computed once per message). */
static int64_t dest_wait(admit_ctx *a, size_t i, size_t di)
{
	if (a->seen[di] == i + 1)
		return a->dwait[di];
	const app_destination *ad = a->c->dests[di];
	a->seen[di] = i + 1;
	a->dslot[di] = ad->max_connections && !a->held[di] &&
	               a->s->dests[di].sessions >= ad->max_connections;
	a->dwait[di] = a->dslot[di] ? SLOT_WAIT_MS
	                            : token_wait(&a->s->dests[di].bucket, &ad->shape, a->now);
	return a->dwait[di];
}

/* Takes the tokens and session slots of a message's recipients that go
 * (after dest_wait() looked at each of their destinations). */
static void take(admit_ctx *a, const msv_queue_job *j, const size_t *dest, const int64_t *wait)
{
	token_take(&a->rs->bucket, &a->r->shape, a->now);
	for (size_t x = 0; x < j->nrcpt; x++) {
		size_t di = dest[x];
		if (di == SIZE_MAX || wait[x] || a->dwait[di] < 0)
			continue;
		a->dwait[di] = -1; /* taken for this message: one token per message */
		token_take(&a->s->dests[di].bucket, &a->c->dests[di]->shape, a->now);
		if (a->c->dests[di]->max_connections && !a->held[di]) {
			a->held[di] = 1;
			a->s->dests[di].sessions++;
		}
	}
}

/* Message i (recipients' destinations in dest): fills wait per recipient,
 * 0 for those that go now.  Called under the mutex, for a route. */
static void admit_message(admit_ctx *a, size_t i, const msv_queue_job *j, const size_t *dest,
                          int64_t *wait)
{
	size_t go = 0;
	int64_t w = 0;
	msv_circuit before = msv_breaker_state(&a->rs->breaker, a->now);
	/* An open circuit first: its wait is the longest, and tokens spent
	 * on mail that cannot go would slow the mail that can. */
	if (before == MSV_CIRCUIT_OPEN) {
		w = a->rs->breaker.open_until_ms - a->now;
	} else if ((w = token_wait(&a->rs->bucket, &a->r->shape, a->now))) {
		a->s->shaped_route += j->nrcpt;
	} else {
		for (size_t x = 0; x < j->nrcpt; x++) {
			wait[x] = dest[x] == SIZE_MAX ? 0 : dest_wait(a, i, dest[x]);
			go += !wait[x];
		}
		if (go && !msv_breaker_allow(&a->rs->breaker, &a->r->breaker, a->now, &w)) {
			/* While the probe is out, look again soon rather than
			 * when it would be presumed lost. */
			if (before == MSV_CIRCUIT_HALF_OPEN && w > PROBE_RECHECK_MS)
				w = PROBE_RECHECK_MS;
			go = 0;
		}
	}
	if (!go && (w || before == MSV_CIRCUIT_OPEN)) {
		for (size_t x = 0; x < j->nrcpt; x++)
			wait[x] = w > 0 ? w : 1;
		return;
	}
	if (go && before == MSV_CIRCUIT_HALF_OPEN)
		a->probe = 1;
	for (size_t x = 0; x < j->nrcpt; x++)
		if (wait[x] && dest[x] != SIZE_MAX && !a->dslot[dest[x]])
			a->s->shaped_dest++;
	if (go)
		take(a, j, dest, wait);
}

/* The shallow copies of the claimed jobs, with the recipients that go. */
static void build_group(shaped *out, msv_queue_job *const *group, size_t n, const int64_t *wait)
{
	size_t kept = 0;
	for (size_t i = 0, k = 0; i < n; k += group[i]->nrcpt, i++) {
		msv_queue_job *c = &out->copies[out->n];
		*c = *group[i];
		c->rcpt = out->rcpts + kept;
		c->nrcpt = 0;
		for (size_t x = 0; x < group[i]->nrcpt; x++)
			if (!wait[k + x])
				c->rcpt[c->nrcpt++] = group[i]->rcpt[x];
		if (c->nrcpt) {
			kept += c->nrcpt;
			out->jobs[out->n++] = c;
		}
	}
}

int shaping_admit(daemon_ctx *d, size_t ri, msv_queue_job *const *group, size_t n, shaped *out)
{
	const app_config *c = d->cfg;
	shaping *s = d->shape;
	size_t total = 0, nd = c->ndests ? c->ndests : 1;
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < n; i++)
		total += group[i]->nrcpt;
	size_t slots = total ? total : 1;
	admit_ctx a = {s, c, ri == SIZE_MAX ? NULL : c->routes[ri],
	               ri == SIZE_MAX ? NULL : &s->routes[ri], NULL, NULL, NULL, NULL,
	               msv_now_ms(), 0};
	size_t *dest = msv_calloc(slots, sizeof(*dest));
	int64_t *wait = msv_calloc(slots, sizeof(*wait));
	out->jobs = msv_calloc(n ? n : 1, sizeof(*out->jobs));
	out->copies = msv_calloc(n ? n : 1, sizeof(*out->copies));
	out->rcpts = msv_calloc(slots, sizeof(*out->rcpts));
	a.held = out->held = msv_calloc(nd, 1);
	a.seen = msv_calloc(nd, sizeof(*a.seen));
	a.dwait = msv_calloc(nd, sizeof(*a.dwait));
	a.dslot = msv_calloc(nd, 1);
	int rc = -1;
	if (!dest || !wait || !out->jobs || !out->copies || !out->rcpts || !a.held || !a.seen ||
	    !a.dwait || !a.dslot) {
		dlog("out of memory shaping %zu messages; their leases run out and they come back",
		     n);
		goto out;
	}
	int64_t wall = msv_wall_ms();
	for (size_t i = 0, k = 0; a.r && i < n; k += group[i]->nrcpt, i++)
		for (size_t x = 0; x < group[i]->nrcpt; x++)
			dest[k + x] = dest_of(c, group[i]->rcpt[x].address);
	if (a.r) {
		pthread_mutex_lock(&s->mu);
		for (size_t i = 0, k = 0; i < n; k += group[i]->nrcpt, i++)
			admit_message(&a, i, group[i], dest + k, wait + k);
		pthread_mutex_unlock(&s->mu);
	}
	build_group(out, group, n, wait);
	postpone_waiting(d, group, n, wait, wall);
	out->probe = a.probe;
	if (a.probe)
		publish(d, ri);
	rc = 0;
out:
	msv_free(dest);
	msv_free(wait);
	msv_free(a.seen);
	msv_free(a.dwait);
	msv_free(a.dslot);
	if (rc)
		shaping_done(d, out);
	return rc;
}

void shaping_done(daemon_ctx *d, shaped *g)
{
	shaping *s = d->shape;
	if (g->held) {
		pthread_mutex_lock(&s->mu);
		for (size_t i = 0; i < s->ndests; i++)
			if (g->held[i])
				s->dests[i].sessions--;
		pthread_mutex_unlock(&s->mu);
	}
	msv_free(g->jobs);
	msv_free(g->copies);
	msv_free(g->rcpts);
	msv_free(g->held);
	memset(g, 0, sizeof(*g));
}

/* ---- the breaker while a group is sent ---- */

/* Failures the breaker counts now: the latest ones within the window. */
static size_t recent_failures(const msv_breaker *b, const msv_breaker_policy *p, int64_t now)
{
	size_t n = 0;
	for (unsigned i = 1; i <= b->nfail && i <= p->failures; i++) {
		int64_t t =
		    b->fail_ms[(b->head + MSV_BREAKER_MAX_FAILURES - i) % MSV_BREAKER_MAX_FAILURES];
		if (now - t >= p->window_ms)
			break;
		n++;
	}
	return n;
}

size_t shaping_chunk(daemon_ctx *d, shaped *g, size_t ri, size_t left, int64_t *until_ms)
{
	*until_ms = 0;
	if (ri == SIZE_MAX || !left || !d->cfg->routes[ri]->breaker.failures)
		return left;
	shaping *s = d->shape;
	const msv_breaker_policy *p = &d->cfg->routes[ri]->breaker;
	route_shape *rs = &s->routes[ri];
	int64_t now = msv_now_ms(), wait = 0;
	size_t k = 0, used;
	int granted = 0;
	pthread_mutex_lock(&s->mu);
	switch (msv_breaker_state(&rs->breaker, now)) {
	case MSV_CIRCUIT_CLOSED:
		/* Only as many as the window has room for before it would
		 * open.  Once something fails, every message still out may
		 * fail too and counts as well; while all is well it does not,
		 * so workers sending side by side keep their full runs (the
		 * pool pipelines within a run). */
		used = recent_failures(&rs->breaker, p, now);
		if (used)
			used += rs->inflight;
		k = used < p->failures ? p->failures - used : 1;
		break;
	case MSV_CIRCUIT_OPEN:
		wait = rs->breaker.open_until_ms - now;
		break;
	case MSV_CIRCUIT_HALF_OPEN:
		if (g->probe) {
			g->probe = 0;
			k = 1;
		} else if (msv_breaker_allow(&rs->breaker, p, now, &wait)) {
			k = 1;
			granted = 1;
		} else if (wait > PROBE_RECHECK_MS) {
			wait = PROBE_RECHECK_MS;
		}
		break;
	}
	if (k > left)
		k = left;
	rs->inflight += k;
	pthread_mutex_unlock(&s->mu);
	if (granted)
		publish(d, ri);
	if (!k)
		*until_ms = msv_wall_ms() + (wait > 0 ? wait : 1);
	return k;
}

void shaping_sent(daemon_ctx *d, size_t ri, size_t n)
{
	if (ri == SIZE_MAX || !d->cfg->routes[ri]->breaker.failures)
		return;
	shaping *s = d->shape;
	pthread_mutex_lock(&s->mu);
	s->routes[ri].inflight -= n <= s->routes[ri].inflight ? n : s->routes[ri].inflight;
	pthread_mutex_unlock(&s->mu);
}

void shaping_result(daemon_ctx *d, size_t ri, int ok)
{
	if (ri == SIZE_MAX || !d->cfg->routes[ri]->breaker.failures)
		return;
	shaping *s = d->shape;
	const app_route *r = d->cfg->routes[ri];
	route_shape *rs = &s->routes[ri];
	int64_t now = msv_now_ms();
	pthread_mutex_lock(&s->mu);
	msv_circuit before = msv_breaker_state(&rs->breaker, now);
	msv_breaker_record(&rs->breaker, &r->breaker, ok, now);
	msv_circuit after = msv_breaker_state(&rs->breaker, now);
	pthread_mutex_unlock(&s->mu);
	if (after == before)
		return;
	if (after == MSV_CIRCUIT_OPEN && before == MSV_CIRCUIT_HALF_OPEN)
		dlog("route %s: circuit open again for %lld ms: the probe failed", r->name,
		     (long long)r->breaker.cool_down_ms);
	else if (after == MSV_CIRCUIT_OPEN)
		dlog("route %s: circuit open for %lld ms: %u temporary failures within %lld ms",
		     r->name, (long long)r->breaker.cool_down_ms, r->breaker.failures,
		     (long long)r->breaker.window_ms);
	else if (after == MSV_CIRCUIT_CLOSED)
		dlog("route %s: circuit closed: the probe got through", r->name);
	publish(d, ri);
}

/* ---- metrics ---- */

/* A Prometheus label value: backslash, quote and newline escaped. */
static void label(const char *v, char *out, size_t n)
{
	size_t o = 0;
	for (; *v && o + 3 < n; v++) {
		if (*v == '\\' || *v == '"' || *v == '\n')
			out[o++] = '\\';
		out[o++] = *v == '\n' ? 'n' : *v;
	}
	out[o] = '\0';
}

int shaping_metrics(daemon_ctx *d, msv_buf *o)
{
	shaping *s = d->shape;
	int rc = 0;
	char name[256];
	if (!s)
		return 0;
	int64_t now = msv_now_ms();
	pthread_mutex_lock(&s->mu);
	rc |= msv_buf_addstr(o, "# HELP missive_circuit_open 1 while the route's circuit breaker "
	                        "holds its mail back (open, or half-open with a probe).\n"
	                        "# TYPE missive_circuit_open gauge\n");
	for (size_t i = 0; i < s->nroutes; i++) {
		label(d->cfg->routes[i]->name, name, sizeof(name));
		msv_circuit c = msv_breaker_state(&s->routes[i].breaker, now);
		rc |= msv_buf_addf(o, "missive_circuit_open{route=\"%s\"} %d\n", name,
		                   c != MSV_CIRCUIT_CLOSED);
	}
	rc |= msv_buf_addstr(o, "# HELP missive_circuit_trips_total Times the route's circuit "
	                        "opened.\n# TYPE missive_circuit_trips_total counter\n");
	for (size_t i = 0; i < s->nroutes; i++) {
		label(d->cfg->routes[i]->name, name, sizeof(name));
		rc |= msv_buf_addf(o, "missive_circuit_trips_total{route=\"%s\"} %llu\n", name,
		                   (unsigned long long)s->routes[i].breaker.trips);
	}
	rc |= msv_buf_addf(o, "# HELP missive_shaped_total Recipients put back in the queue to "
	                      "wait for an outbound token.\n"
	                      "# TYPE missive_shaped_total counter\n"
	                      "missive_shaped_total{scope=\"route\"} %llu\n"
	                      "missive_shaped_total{scope=\"destination\"} %llu\n",
	                   (unsigned long long)s->shaped_route, (unsigned long long)s->shaped_dest);
	pthread_mutex_unlock(&s->mu);
	return rc;
}
