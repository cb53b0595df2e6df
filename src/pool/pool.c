/*
 * Connection pool (contract in missive/pool.h).
 *
 * One mutex guards the key list, the idle stacks and the counters; a
 * condition variable wakes senders waiting for a connection slot.  Every
 * network operation (connect, NOOP, send, QUIT) runs with the mutex
 * released: a slow server never blocks senders to other destinations.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "missive/pool.h"
#include "core/core_int.h"
#include "smtp/client.h"

typedef struct conn {
	msv_client *c;
	int64_t opened_ms;
	int64_t used_ms;
	unsigned messages;
	struct conn *next;
} conn;

typedef struct key_entry {
	char *key;
	msv_tls_ctx *tls; /* shared by the key's connections: sessions resume */
	conn *idle;       /* most recently used first */
	unsigned open;    /* borrowed + idle */
	unsigned nidle;
	struct key_entry *next;
} key_entry;

struct msv_pool {
	msv_pool_options o;
	pthread_mutex_t lock;
	pthread_cond_t freed;
	key_entry *keys;
	msv_pool_stats st;
};

/* The wait for a free connection is a timeout, so it is measured on
 * CLOCK_MONOTONIC: on the default CLOCK_REALTIME a clock step (NTP, an
 * administrator) would cut the wait short or stretch it by the step. */
static int cond_init_monotonic(pthread_cond_t *c)
{
	pthread_condattr_t a;
	if (pthread_condattr_init(&a))
		return -1;
	int r = pthread_condattr_setclock(&a, CLOCK_MONOTONIC) || pthread_cond_init(c, &a);
	pthread_condattr_destroy(&a);
	return r ? -1 : 0;
}

msv_result msv_pool_new(msv_pool **out, const msv_pool_options *opts, msv_error *err)
{
	if (!msv__version_ok(opts->version, MSV_POOL_OPTIONS_VERSION))
		return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE,
		                     "msv_pool_options: version %u is not between 1 and %u", opts->version,
		                     MSV_POOL_OPTIONS_VERSION);
	msv_pool *p = msv_calloc(1, sizeof(*p));
	if (!p)
		return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
	p->o = *opts;
	if (!p->o.max_connections)
		p->o.max_connections = 8;
	if (!p->o.max_idle)
		p->o.max_idle = p->o.max_connections;
	if (!p->o.idle_timeout_ms)
		p->o.idle_timeout_ms = 60000;
	if (!p->o.noop_after_ms)
		p->o.noop_after_ms = 10000;
	if (!p->o.max_messages)
		p->o.max_messages = 1000;
	if (!p->o.max_age_ms)
		p->o.max_age_ms = 600000;
	if (cond_init_monotonic(&p->freed)) {
		msv_free(p);
		return msv_error_set(err, MSV_E_SYSTEM, MSV_CLASS_LOCAL,
		                     "pool: cannot create a condition variable on CLOCK_MONOTONIC");
	}
	pthread_mutex_init(&p->lock, NULL);
	*out = p;
	return MSV_OK;
}

/* Closes a connection nobody else can see; quit: say QUIT first. */
static void conn_close(conn *cn, int quit)
{
	if (quit && msv_client_connected(cn->c))
		(void)msv_client_quit(cn->c);
	msv_client_free(cn->c);
	msv_free(cn);
}

void msv_pool_free(msv_pool *p)
{
	if (!p)
		return;
	for (key_entry *k = p->keys, *kn; k; k = kn) {
		kn = k->next;
		for (conn *cn = k->idle, *next; cn; cn = next) {
			next = cn->next;
			conn_close(cn, 1);
		}
		msv__tls_ctx_free(k->tls);
		msv_free(k->key);
		msv_free(k);
	}
	pthread_cond_destroy(&p->freed);
	pthread_mutex_destroy(&p->lock);
	msv_free(p);
}

void msv_pool_result_free(msv_pool_result *r)
{
	msv_free(r->rcpt);
	r->rcpt = NULL;
	r->nrcpt = 0;
}

void msv_pool_stats_get(msv_pool *p, msv_pool_stats *out)
{
	pthread_mutex_lock(&p->lock);
	*out = p->st;
	pthread_mutex_unlock(&p->lock);
}

/* The identity of a destination: connections are interchangeable only
 * within one key. */
static msv_result make_key(msv_buf *b, const msv_client_options *r)
{
	return msv_buf_addf(b, "%s\n%u\n%d\n%s\n%s\n%s", r->host ? r->host : "", r->port,
	                    (int)r->smtp.tls, r->client_cert ? r->client_cert : "",
	                    r->smtp.user ? r->smtp.user : "", r->tls_name ? r->tls_name : "");
}

/* Finds or creates the key's entry; called with the lock held. */
static key_entry *get_key(msv_pool *p, const msv_client_options *route, msv_error *err)
{
	msv_buf b;
	msv_buf_init(&b, 4096);
	if (make_key(&b, route)) {
		msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE, "route too long");
		return NULL;
	}
	key_entry *k;
	for (k = p->keys; k; k = k->next)
		if (!strcmp(k->key, b.data))
			break;
	if (k) {
		msv_buf_free(&b);
		return k;
	}
	k = msv_calloc(1, sizeof(*k));
	if (!k) {
		msv_buf_free(&b);
		msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
		return NULL;
	}
	k->key = b.data; /* the buffer's memory becomes the key */
	if (route->smtp.tls != MSV_TLS_NONE && msv__tls_ctx_new(&k->tls, route, err)) {
		msv_free(k->key);
		msv_free(k);
		return NULL;
	}
	k->next = p->keys;
	p->keys = k;
	return k;
}

/* A slot was given back (lock held). */
static void slot_freed(msv_pool *p, key_entry *k)
{
	k->open--;
	p->st.open--;
	pthread_cond_broadcast(&p->freed);
}

static msv_result open_conn(msv_pool *p, key_entry *k, const msv_client_options *route, conn **out,
                            msv_error *err)
{
	conn *cn = msv_calloc(1, sizeof(*cn));
	if (!cn)
		return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
	msv_result r = msv__client_new_shared(&cn->c, route, k->tls, err);
	if (!r) {
		r = msv_client_connect(cn->c);
		if (r)
			*err = *msv_client_error(cn->c);
	}
	if (r) {
		msv_client_free(cn->c);
		msv_free(cn);
		return r;
	}
	cn->opened_ms = cn->used_ms = msv_now_ms();
	pthread_mutex_lock(&p->lock);
	p->st.connections_opened++;
	if (strstr(msv_client_tls_info(cn->c), "(resumed)"))
		p->st.tls_resumed++;
	pthread_mutex_unlock(&p->lock);
	*out = cn;
	return MSV_OK;
}

static void timespec_at(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts); /* the clock of p->freed */
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Borrows a healthy connection for the key: an idle one (checked with
 * NOOP when idle long), or a new one when under the limit, else waits.
 * fresh: a new connection only; idle ones met are closed to make room
 * (after a stale one, the others of its age are suspect too). */
static msv_result checkout(msv_pool *p, key_entry *k, const msv_client_options *route, conn **out,
                           int *reused, int fresh, msv_error *err)
{
	int wait_ms = p->o.wait_timeout_ms ? p->o.wait_timeout_ms
	              : route->command_timeout_ms ? route->command_timeout_ms
	                                          : 300000;
	struct timespec until;
	timespec_at(&until, wait_ms);
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (k->idle) {
			conn *cn = k->idle;
			k->idle = cn->next;
			k->nidle--;
			p->st.idle--;
			int64_t now = msv_now_ms();
			int expired = now - cn->used_ms > p->o.idle_timeout_ms ||
			              now - cn->opened_ms > p->o.max_age_ms;
			int check = now - cn->used_ms > p->o.noop_after_ms;
			pthread_mutex_unlock(&p->lock);
			if (fresh) {
				conn_close(cn, 0);
				pthread_mutex_lock(&p->lock);
				slot_freed(p, k);
				continue;
			}
			if (!expired && (!check || msv_client_noop(cn->c) == MSV_OK)) {
				*out = cn;
				*reused = 1;
				return MSV_OK;
			}
			/* expired, or dead on NOOP: replace it */
			conn_close(cn, expired);
			pthread_mutex_lock(&p->lock);
			if (!expired)
				p->st.stale_replaced++;
			slot_freed(p, k);
		}
		if (k->open < p->o.max_connections) {
			k->open++;
			p->st.open++;
			pthread_mutex_unlock(&p->lock);
			msv_result r = open_conn(p, k, route, out, err);
			if (r) {
				pthread_mutex_lock(&p->lock);
				slot_freed(p, k);
				pthread_mutex_unlock(&p->lock);
				return r;
			}
			*reused = 0;
			return MSV_OK;
		}
		if (pthread_cond_timedwait(&p->freed, &p->lock, &until) == ETIMEDOUT) {
			pthread_mutex_unlock(&p->lock);
			return msv_error_set(err, MSV_E_TIMEOUT, MSV_CLASS_TEMPORARY,
			                     "no connection to %s became free within %d ms", route->host,
			                     wait_ms);
		}
	}
}

/* Gives a connection back after a send that left the session usable. */
static void checkin(msv_pool *p, key_entry *k, conn *cn)
{
	cn->messages++;
	cn->used_ms = msv_now_ms();
	pthread_mutex_lock(&p->lock);
	int keep = msv_client_connected(cn->c) && cn->messages < p->o.max_messages &&
	           cn->used_ms - cn->opened_ms < p->o.max_age_ms && k->nidle < p->o.max_idle;
	if (keep) {
		cn->next = k->idle;
		k->idle = cn;
		k->nidle++;
		p->st.idle++;
		pthread_cond_broadcast(&p->freed);
		pthread_mutex_unlock(&p->lock);
		return;
	}
	pthread_mutex_unlock(&p->lock);
	conn_close(cn, 1);
	pthread_mutex_lock(&p->lock);
	slot_freed(p, k);
	pthread_mutex_unlock(&p->lock);
}

static void discard(msv_pool *p, key_entry *k, conn *cn)
{
	conn_close(cn, 0);
	pthread_mutex_lock(&p->lock);
	slot_freed(p, k);
	pthread_mutex_unlock(&p->lock);
}

/* A dead connection, as a reused one shows it: the peer closed, reset,
 * or said 421 (RFC 5321 3.8). */
static int stale_error(const msv_error *e)
{
	return e->code == MSV_E_CLOSED || e->code == MSV_E_IO || e->code == MSV_E_TLS ||
	       e->reply_code == 421;
}

static msv_result copy_txn(msv_pool_result *res, const msv_smtp_txn *t)
{
	if (!t || !t->nrcpt)
		return MSV_OK;
	size_t bytes;
	if (msv_mul_size(&bytes, t->nrcpt, sizeof(*res->rcpt)))
		return MSV_E_TOO_LARGE;
	msv_rcpt_result *r = msv_realloc(res->rcpt, bytes);
	if (!r)
		return MSV_E_NOMEM;
	memcpy(r, t->rcpt, bytes);
	res->rcpt = r;
	res->nrcpt = t->nrcpt;
	res->accepted = t->accepted;
	res->data = t->data;
	return MSV_OK;
}

msv_result msv_pool_send(msv_pool *p, const msv_client_options *route, const msv_envelope *env,
                         const char *msg, size_t len, msv_pool_result *res)
{
	int64_t t0 = msv_now_ms();
	memset(res, 0, sizeof(*res));
	pthread_mutex_lock(&p->lock);
	key_entry *k = get_key(p, route, &res->err);
	pthread_mutex_unlock(&p->lock);
	if (!k)
		return res->code = res->err.code;
	for (;;) {
		conn *cn = NULL;
		int reused = 0;
		msv_result r = checkout(p, k, route, &cn, &reused, res->attempts > 0, &res->err);
		if (r) {
			res->code = r;
			break;
		}
		res->attempts++;
		res->reused = reused;
		if (reused) {
			pthread_mutex_lock(&p->lock);
			p->st.connections_reused++;
			pthread_mutex_unlock(&p->lock);
		}
		const msv_smtp_txn *t = NULL;
		r = msv_client_send(cn->c, env, msg, len, &t);
		if (r == MSV_OK || r == MSV_E_REFUSED) {
			if (r)
				res->err = *msv_client_error(cn->c);
			msv_result cr = copy_txn(res, t);
			checkin(p, k, cn);
			res->code = cr ? cr : r;
			if (cr)
				msv_error_set(&res->err, cr, MSV_CLASS_LOCAL, "cannot store the result: %s",
				              msv_strerror(cr));
			break;
		}
		res->err = *msv_client_error(cn->c);
		const msv_smtp_txn *last = msv_client_last_txn(cn->c);
		/* Safe to try again only if the server never answered MAIL: then
		 * it cannot have taken the message.  Once, and only for a
		 * connection that had been idle in the pool. */
		int retry = reused && res->attempts == 1 && last && last->mail.code == 0 &&
		            stale_error(&res->err);
		(void)copy_txn(res, last);
		res->accepted = 0;
		discard(p, k, cn);
		if (!retry) {
			res->code = r;
			break;
		}
		pthread_mutex_lock(&p->lock);
		p->st.stale_replaced++;
		pthread_mutex_unlock(&p->lock);
		msv_pool_result_free(res);
		msv_error_clear(&res->err);
	}
	res->latency_ms = msv_now_ms() - t0;
	return res->code;
}

typedef struct batch {
	msv_pool *p;
	const msv_client_options *route;
	const msv_pool_message *msgs;
	size_t n;
	msv_pool_result *results;
	msv_pool_progress_fn progress;
	void *payload;
	atomic_size_t next;
} batch;

/* Messages a worker takes at a time over one connection. */
#define BATCH_RUN 32

typedef struct run {
	batch *b;
	size_t base;    /* index of the run's first message */
	int64_t t0;
	int *retry;     /* per message of the run: send again alone */
	int reused;     /* the connection had carried messages before */
} run;

static void run_done(void *payload, size_t index, msv_result code, const msv_smtp_txn *t,
                     const msv_error *err)
{
	run *rn = payload;
	size_t i = rn->base + index;
	msv_pool_result *res = &rn->b->results[i];
	memset(res, 0, sizeof(*res));
	res->code = code;
	res->attempts = 1;
	res->reused = rn->reused || index > 0;
	if (code)
		res->err = *err;
	if (copy_txn(res, t) && !code) {
		res->code = MSV_E_NOMEM;
		msv_error_set(&res->err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "cannot store the result");
	}
	if (code && code != MSV_E_REFUSED)
		res->accepted = 0;
	res->latency_ms = msv_now_ms() - rn->t0;
	/* Never started, or MAIL never answered: the server cannot have it. */
	if (code && code != MSV_E_REFUSED && (!t || t->mail.code == 0)) {
		rn->retry[index] = 1;
		msv_pool_result_free(res);
		return;
	}
	/* Report now, as the reply is read, not when the run ends: missived
	 * records each outcome from here, and what it has recorded a crash
	 * cannot make it send again (tests/unit/pool: batch_progress_per_reply). */
	if (rn->b->progress)
		rn->b->progress(rn->b->payload, i, res);
}

static void *batch_worker(void *arg)
{
	batch *b = arg;
	msv_pool *p = b->p;
	msv_error err;
	pthread_mutex_lock(&p->lock);
	key_entry *k = get_key(p, b->route, &err);
	pthread_mutex_unlock(&p->lock);
	msv_message msgs[BATCH_RUN];
	int retry[BATCH_RUN];
	for (;;) {
		size_t first = atomic_fetch_add(&b->next, BATCH_RUN);
		if (first >= b->n)
			return NULL;
		size_t n = b->n - first < BATCH_RUN ? b->n - first : BATCH_RUN;
		conn *cn = NULL;
		int reused = 0;
		memset(retry, 0, sizeof(retry));
		msv_result r = k ? checkout(p, k, b->route, &cn, &reused, 0, &err) : err.code;
		if (!r && cn->messages + n > p->o.max_messages) {
			/* what the connection may still carry; the rest go alone */
			size_t allow = p->o.max_messages - cn->messages;
			for (size_t j = allow; j < n; j++)
				retry[j] = 1;
			n = allow;
		}
		if (!r && n) {
			for (size_t j = 0; j < n; j++) {
				const msv_pool_message *m = &b->msgs[first + j];
				msgs[j] = (msv_message){m->env, m->msg, m->len};
			}
			run rn = {b, first, msv_now_ms(), retry, reused};
			if (reused) {
				pthread_mutex_lock(&p->lock);
				p->st.connections_reused++;
				pthread_mutex_unlock(&p->lock);
			}
			r = msv_client_send_many(cn->c, msgs, n, run_done, &rn);
			cn->messages += (unsigned)n - 1; /* checkin() counts one */
			if (r)
				discard(p, k, cn);
			else
				checkin(p, k, cn);
		} else if (!r) {
			checkin(p, k, cn);
		} else {
			for (size_t j = 0; j < n; j++)
				retry[j] = 1; /* no connection: each tries alone, and reports */
		}
		for (size_t j = 0; j < BATCH_RUN && first + j < b->n; j++) {
			if (!retry[j])
				continue;
			size_t i = first + j;
			const msv_pool_message *m = &b->msgs[i];
			msv_pool_send(p, b->route, m->env, m->msg, m->len, &b->results[i]);
			if (b->progress)
				b->progress(b->payload, i, &b->results[i]);
		}
	}
}

msv_result msv_pool_send_batch(msv_pool *p, const msv_client_options *route,
                               const msv_pool_message *msgs, size_t n, unsigned in_flight,
                               msv_pool_result *results, msv_pool_progress_fn progress,
                               void *payload)
{
	batch b = {p, route, msgs, n, results, progress, payload, 0};
	if (!in_flight)
		in_flight = p->o.max_connections;
	if (in_flight > n)
		in_flight = (unsigned)n;
	pthread_t *th = NULL;
	unsigned started = 0;
	if (in_flight > 1 && (th = msv_calloc(in_flight - 1, sizeof(*th))))
		for (; started < in_flight - 1; started++)
			if (pthread_create(&th[started], NULL, batch_worker, &b))
				break; /* fewer threads: the rest still run below */
	batch_worker(&b); /* this thread is one of the senders */
	for (unsigned i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	msv_free(th);
	for (size_t i = 0; i < n; i++)
		if (results[i].code)
			return results[i].code;
	return MSV_OK;
}
