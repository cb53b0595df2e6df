/* Delivery workers: claim due recipients with a lease, send them through
 * the route's pool, and hand each message's outcomes to the recorder
 * (recorder.c) as soon as its final reply is read. */
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "daemon.h"
#include "missive/dsn.h"
#include "recorder.h"
#include "shaping.h"
#include "missive/policy.h"

void daemon_wake(daemon_ctx *d)
{
	pthread_mutex_lock(&d->mu);
	d->wake_seq++;
	/* One worker is enough for one message; a busy one leaves it to the next. */
	pthread_cond_signal(&d->wake);
	pthread_mutex_unlock(&d->mu);
}

/* How long a worker lets submissions accumulate before claiming. */
#define GATHER_MS 10

static uint64_t random64(void)
{
	uint64_t r = 0;
	if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r))
		r = (uint64_t)msv_wall_ms() * 6364136223846793005ULL;
	return r;
}

static size_t route_index(const app_config *c, const msv_queue_job *j)
{
	for (size_t i = 0; i < c->nroutes; i++)
		if (j->route && !strcmp(c->routes[i]->name, j->route))
			return i;
	/* The route was renamed or removed since submission: choose again. */
	app_route *r = app_route_for(c, j->sender);
	for (size_t i = 0; r && i < c->nroutes; i++)
		if (c->routes[i] == r)
			return i;
	return SIZE_MAX;
}

/* The envelope sender: the route's VERP template with {id} replaced by
 * the queue ID, else the stored sender. */
static void envelope_sender(const app_route *r, const msv_queue_job *j, char *out, size_t n)
{
	const char *t = r->return_path, *at;
	if (!t || !*j->sender || !(at = strstr(t, "{id}"))) {
		snprintf(out, n, "%s", j->sender);
		return;
	}
	snprintf(out, n, "%.*s%s%s", (int)(at - t), t, j->qid, at + 4);
}

typedef struct tally {
	unsigned sent, deferred, bounced, dead;
} tally;

/* One recipient's outcome from the message's result. */
static void decide(daemon_ctx *d, const msv_queue_job *j, size_t i, const msv_pool_result *res,
                   const char *server, int64_t started, int64_t now, msv_queue_outcome *o,
                   tally *t)
{
	const msv_rcpt_result *rr = res && i < res->nrcpt ? &res->rcpt[i] : NULL;
	memset(o, 0, sizeof(*o));
	o->rcpt_id = j->rcpt[i].id;
	/* Fencing: should this lease have been taken over while we sent (we
	 * were frozen past it), the queue refuses this late outcome. */
	o->epoch = j->rcpt[i].epoch;
	o->attempted = 1;
	o->at_ms = started;
	o->latency_ms = res ? res->latency_ms : 0;
	o->server = server;
	const msv_smtp_reply *rep = NULL;
	msv_class cls;
	/* rcpt[i].accepted and a 2xx RCPT reply mean "delivered" only when the
	 * transaction ended (MSV_OK, or MSV_E_REFUSED for some recipients):
	 * after a session error (connection lost in DATA, timeout waiting for
	 * the final reply) they still show RCPT's 250 although the server never
	 * took the message, and calling that sent would lose it. */
	int ended = res && (res->code == MSV_OK || res->code == MSV_E_REFUSED);
	if (rr && rr->accepted && ended) {
		rep = res->data.code ? &res->data : &rr->reply;
		cls = MSV_CLASS_NONE;
	} else if (rr && rr->reply.code && (ended || rr->reply.code >= 400)) {
		rep = &rr->reply;
		cls = msv_class_of_reply(rep->code);
	} else {
		cls = res ? res->err.cls : MSV_CLASS_CONFIG;
		/* Our credentials refused (a wrong password, a revoked OAuth2
		 * token): the route's settings are wrong, not the recipient.  The
		 * mail waits for the operator (or its maximum age), as with
		 * Postfix's smtp_sasl_auth_soft_bounce; bouncing it would lose it. */
		if (res && (res->err.code == MSV_E_AUTH_FAILED || res->err.code == MSV_E_NO_AUTH_MECH))
			cls = MSV_CLASS_TEMPORARY;
	}
	if (rep) {
		o->reply_code = rep->code;
		o->enhanced = rep->enhanced;
		o->text = rep->text;
	} else if (res) {
		o->reply_code = res->err.reply_code;
		o->enhanced = res->err.enhanced;
		o->text = res->err.server_text[0] ? res->err.server_text : res->err.message;
	} else {
		o->enhanced = "";
		o->text = "no route for this message in the configuration";
	}
	if (cls == MSV_CLASS_NONE) {
		o->state = MSV_RCPT_SENT;
		t->sent++;
	} else if (cls == MSV_CLASS_PERMANENT) {
		o->state = MSV_RCPT_BOUNCED;
		t->bounced++;
	} else if (msv_retry_expired(&d->cfg->retry, j->created_ms, now)) {
		o->state = MSV_RCPT_DEAD;
		t->dead++;
	} else {
		o->state = MSV_RCPT_DEFERRED;
		o->next_attempt_ms =
		    now + msv_retry_delay_ms(&d->cfg->retry, j->rcpt[i].attempts + 1, random64());
		t->deferred++;
	}
}

/* A refusal that says the address is bad (550 5.1.1 user unknown) is a
 * hard bounce now, as it would be in a DSN later: the reason to put the
 * address on the suppression list (in why), or NULL. */
static const char *hard_bounce(const daemon_ctx *d, const msv_queue_outcome *o, char *why,
                               size_t n)
{
	if (!d->cfg->suppress_hard_bounces || o->state != MSV_RCPT_BOUNCED || !o->reply_code)
		return NULL;
	msv_dsn_verdict v;
	msv_dsn_classify(&v, o->enhanced, o->reply_code, o->text, "RCPT");
	if (!v.hard)
		return NULL;
	snprintf(why, n, "%s %s", msv_dsn_reason_name(v.reason), v.status);
	return why;
}

/* One route's claimed messages on their way: what the pool's progress
 * callback needs.  With in_flight 1 the pool calls it from this worker's
 * thread only, so nothing here is shared. */
typedef struct sending {
	daemon_ctx *d;
	msv_queue_job *const *jobs;
	const app_route *r;     /* NULL: no route */
	int64_t started;
	size_t *off;            /* message i's first recipient in out, addr, why */
	msv_queue_outcome *out;
	const char **addr, **supp;
	char (*why)[160];
	char *reported;         /* message i's outcomes went to the recorder */
	uint64_t *prev;         /* the recorder's ticket for this worker's previous
	                         * message; kept across batches, as the worker's
	                         * pooled connection carries on from one to the next */
	size_t ri;              /* the route's index (SIZE_MAX: none), for its breaker */
	size_t base;            /* the pool's index 0 is message base (shaping_chunk) */
} sending;

/* Message i's final reply was read (res; NULL: no route): its outcomes go
 * to the recorder now, not after the batch, so that a kill re-sends only
 * what was on the wire. */
static void record_message(sending *s, size_t i, const msv_pool_result *res)
{
	daemon_ctx *d = s->d;
	const msv_queue_job *j = s->jobs[i];
	size_t k = s->off[i];
	if (s->reported[i])
		return;
	s->reported[i] = 1;
	int64_t now = msv_wall_ms();
	tally t = {0, 0, 0, 0};
	for (size_t x = 0; x < j->nrcpt; x++) {
		decide(d, j, x, res, s->r ? s->r->conn.peer : NULL, s->started, now, &s->out[k + x],
		       &t);
		s->supp[k + x] = hard_bounce(d, &s->out[k + x], s->why[k + x], sizeof(s->why[0]));
	}
	if (res)
		metrics_attempt(&d->m, res->latency_ms);
	/* The route's breaker counts a message that failed temporarily as a
	 * whole (no session, or 4xx for every recipient) as its server's
	 * failure; any answer that says the server works (2xx, 5xx) as a
	 * success.  Our own trouble (out of memory) says nothing about it. */
	if (res && s->r && !(res->code && res->err.cls == MSV_CLASS_LOCAL && !res->err.reply_code))
		shaping_result(d, s->ri, t.sent + t.bounced > 0);
	const msv_queue_outcome *first = &s->out[k];
	dlog("%s: %u sent, %u deferred, %u bounced, %u dead via %s (%d %s)", j->qid, t.sent,
	     t.deferred, t.bounced, t.dead, s->r ? s->r->conn.peer : "no route", first->reply_code,
	     first->enhanced && *first->enhanced ? first->enhanced : "-");
	uint64_t ticket =
	    recorder_add_from(d->rec, j->submitter, j->qid, &s->out[k], j->nrcpt, s->addr + k,
	                      s->supp + k);
	/* The connection goes on to the next message only once the one before
	 * this is on disk: at any moment at most two of its messages may have
	 * reached the server without their outcome on disk (while waiting: the
	 * one before and this one; after: this one and the next one on the
	 * wire).  That is what a kill -9 can make us send twice.  The commit
	 * overlaps the next message's round trip, so it costs no throughput
	 * while the disk keeps up. */
	recorder_wait(d->rec, *s->prev);
	*s->prev = ticket;
}

static void on_result(void *payload, size_t index, const msv_pool_result *res)
{
	sending *s = payload;
	record_message(s, s->base + index, res);
}

/* Messages from..n-1 may not go after all (the route's circuit opened
 * while they waited their turn): back to the queue until until_ms, as
 * if never claimed. */
static void postpone_rest(sending *s, size_t from, size_t n, int64_t until_ms)
{
	size_t k = 0;
	int64_t *ids = msv_calloc(s->off[n - 1] + s->jobs[n - 1]->nrcpt, sizeof(*ids));
	for (size_t i = from; ids && i < n; i++)
		for (size_t x = 0; x < s->jobs[i]->nrcpt; x++)
			ids[k++] = s->jobs[i]->rcpt[x].id;
	if (!ids)
		dlog("out of memory putting messages back in the queue; their leases run out");
	else
		shaping_postpone(s->d, ids, k, until_ms);
	msv_free(ids);
	/* Either way nothing of them may be recorded as an attempt. */
	for (size_t i = from; i < n; i++)
		s->reported[i] = 1;
}

/* Sends the messages in the runs the route's breaker allows (shaping_chunk). */
static void send_chunks(sending *s, shaped *sg, const msv_pool_message *msgs, size_t n,
                        msv_pool_result *res)
{
	daemon_ctx *d = s->d;
	for (size_t off = 0; off < n;) {
		int64_t until = 0;
		size_t k = shaping_chunk(d, sg, s->ri, n - off, &until);
		if (!k) {
			postpone_rest(s, off, n, until);
			return;
		}
		s->base = off;
		/* in_flight 1: one connection per worker, and on_result runs on
		 * this thread (sending is not locked). */
		msv_pool_send_batch(d->pools[s->ri], &s->r->conn.co, msgs + off, k, 1, res + off,
		                    on_result, s);
		shaping_sent(d, s->ri, k);
		off += k;
	}
}

/* Sends the jobs of one route (route index ri, or SIZE_MAX: none) that
 * shaping_admit() let through (sg); prev: the worker's last ticket
 * (sending). */
static void deliver_route(daemon_ctx *d, msv_queue_job *const *jobs, size_t n, size_t ri,
                          shaped *sg, uint64_t *prev)
{
	app_route *r = ri == SIZE_MAX ? NULL : d->cfg->routes[ri];
	sending s = {d, jobs, r, msv_wall_ms(), NULL, NULL, NULL, NULL, NULL, NULL, prev, ri, 0};
	msv_envelope *env = msv_calloc(n, sizeof(*env));
	msv_pool_message *msgs = msv_calloc(n, sizeof(*msgs));
	msv_pool_result *res = msv_calloc(n, sizeof(*res));
	char (*senders)[512] = msv_calloc(n, sizeof(*senders));
	size_t total = 0;
	for (size_t i = 0; i < n; i++)
		total += jobs[i]->nrcpt;
	size_t slots = total ? total : 1;
	s.off = msv_calloc(n, sizeof(*s.off));
	s.out = msv_calloc(slots, sizeof(*s.out));
	s.addr = msv_calloc(slots, sizeof(*s.addr));
	s.supp = msv_calloc(slots, sizeof(*s.supp));
	s.why = msv_calloc(slots, sizeof(*s.why));
	s.reported = msv_calloc(n, 1);
	if (!env || !msgs || !res || !senders || !s.off || !s.out || !s.addr || !s.supp || !s.why ||
	    !s.reported) {
		dlog("out of memory delivering %zu messages; leases expire and they will be retried", n);
		goto done;
	}
	for (size_t i = 0, k = 0; i < n; k += jobs[i]->nrcpt, i++) {
		s.off[i] = k;
		for (size_t x = 0; x < jobs[i]->nrcpt; x++)
			s.addr[k + x] = jobs[i]->rcpt[x].address;
	}
	if (r) {
		for (size_t i = 0; i < n; i++) {
			const msv_queue_job *j = jobs[i];
			envelope_sender(r, j, senders[i], sizeof(senders[i]));
			env[i].from = senders[i];
			env[i].rcpt = s.addr + s.off[i];
			env[i].nrcpt = j->nrcpt;
			env[i].size = j->len;
			env[i].body_8bit = j->body_8bit;
			env[i].smtputf8 = j->smtputf8;
			env[i].dsn_notify = j->dsn_notify;
			env[i].dsn_ret = j->dsn_ret;
			env[i].envid = j->envid ? j->envid : j->dsn_notify ? j->qid : NULL;
			msgs[i].env = &env[i];
			msgs[i].msg = j->body;
			msgs[i].len = j->len;
		}
		send_chunks(&s, sg, msgs, n, res);
	}
	for (size_t i = 0; i < n; i++) {
		if (s.reported[i])
			continue;
		if (r) {
			/* The pool reports every message; should one slip through,
			 * its result cannot be trusted to say "sent": try it again. */
			msv_pool_result_free(&res[i]);
			memset(&res[i], 0, sizeof(res[i]));
			res[i].code = MSV_E_STATE;
			msv_error_set(&res[i].err, MSV_E_STATE, MSV_CLASS_TEMPORARY,
			              "the connection pool gave no result for this message");
		}
		record_message(&s, i, r ? &res[i] : NULL);
	}
done:
	for (size_t i = 0; res && i < n; i++)
		msv_pool_result_free(&res[i]);
	msv_free(env);
	msv_free(msgs);
	msv_free(res);
	msv_free(senders);
	msv_free(s.off);
	msv_free(s.out);
	msv_free(s.addr);
	msv_free(s.supp);
	msv_free(s.why);
	msv_free(s.reported);
}

static void deliver(daemon_ctx *d, msv_queue_job *jobs, size_t n, uint64_t *prev)
{
	msv_queue_job **group = msv_calloc(n, sizeof(*group));
	size_t *ri = msv_calloc(n, sizeof(*ri));
	char *done = msv_calloc(n, 1);
	if (!group || !ri || !done) {
		dlog("out of memory; %zu claimed messages wait for their leases to expire", n);
	} else {
		for (size_t i = 0; i < n; i++)
			ri[i] = route_index(d->cfg, &jobs[i]);
		for (size_t i = 0; i < n; i++) {
			if (done[i])
				continue;
			size_t g = 0;
			for (size_t x = i; x < n; x++)
				if (!done[x] && ri[x] == ri[i]) {
					group[g++] = &jobs[x];
					done[x] = 1;
				}
			/* What may not go now (tokens, session slots, an open
			 * circuit) goes back to the queue; the rest is sent. */
			shaped sg;
			if (!shaping_admit(d, ri[i], group, g, &sg) && sg.n)
				deliver_route(d, sg.jobs, sg.n, ri[i], &sg, prev);
			shaping_done(d, &sg);
		}
	}
	msv_free(group);
	msv_free(ri);
	msv_free(done);
}

/* Sleeps up to ms, or until a stop; with wakeable, also until a
 * submission bumps wake_seq past seq.  Returns 1 when woken by one. */
static int nap(daemon_ctx *d, int64_t ms, uint64_t seq, int wakeable)
{
	struct timespec ts;
	daemon_abstime(&ts, ms);
	int woken = 0;
	pthread_mutex_lock(&d->mu);
	while (!d->stopping && !(woken = wakeable && d->wake_seq != seq))
		if (pthread_cond_timedwait(&d->wake, &d->mu, &ts))
			break;
	pthread_mutex_unlock(&d->mu);
	return woken;
}

/* nap() on a queue that notifies (PostgreSQL): also until another
 * process's submission (another node's).  Waits in slices of 500 ms so a
 * stop or a local wake-up is seen.  Returns 1 when woken by a submission. */
static int notify_nap(daemon_ctx *d, int64_t ms, uint64_t seq)
{
	int64_t end = msv_now_ms() + ms;
	for (;;) {
		int64_t left = end - msv_now_ms();
		if (left <= 0)
			return 0;
		int woken = 0;
		msv_error err;
		if (msv_queue_wait_notify(d->q, left < 500 ? (int)left : 500, &woken, &err)) {
			dlog("cannot wait for queue notifications: %s", err.message);
			return nap(d, left, seq, 1);
		}
		if (woken)
			return 1;
		pthread_mutex_lock(&d->mu);
		int stop = d->stopping, local = d->wake_seq != seq;
		pthread_mutex_unlock(&d->mu);
		if (stop || local)
			return local;
	}
}

void *worker_main(void *arg)
{
	daemon_ctx *d = arg;
	int gather = 0;
	uint64_t prev = 0; /* the recorder's ticket for this worker's last message */
	for (;;) {
		pthread_mutex_lock(&d->mu);
		int stop = d->stopping;
		uint64_t seq = d->wake_seq;
		pthread_mutex_unlock(&d->mu);
		if (stop)
			break;
		/* Claims are write transactions competing with submissions: after
		 * a wake-up or a partial batch, let a few more messages arrive
		 * rather than claim them one by one. */
		if (gather) {
			nap(d, GATHER_MS, seq, 0);
			gather = 0;
		}
		msv_queue_job *jobs = NULL;
		size_t n = 0;
		msv_error err;
		int64_t now = msv_wall_ms(), wait_ms = d->cfg->poll_ms;
		if (msv_queue_claim(d->q, d->owner, now, d->cfg->lease_ms, d->cfg->batch, &jobs, &n, &err)) {
			dlog("cannot claim work: %s", err.message);
		} else if (n) {
			size_t rcpts = 0;
			for (size_t i = 0; i < n; i++)
				rcpts += jobs[i].nrcpt;
			deliver(d, jobs, n, &prev);
			msv_queue_jobs_free(jobs, n);
			gather = rcpts < d->cfg->batch;
			continue;
		} else {
			int64_t due = -1;
			if (!msv_queue_next_due(d->q, &due, &err) && due >= 0 && due - now < wait_ms)
				wait_ms = due > now ? due - now : 1;
		}
		/* Nothing due: sleep until then, a submission, or a stop. */
		gather = msv_queue_can_notify(d->q) ? notify_nap(d, wait_ms, seq)
		                                    : nap(d, wait_ms, seq, 1);
	}
	pthread_mutex_lock(&d->mu);
	d->running--;
	pthread_cond_broadcast(&d->exited);
	pthread_mutex_unlock(&d->mu);
	return NULL;
}
