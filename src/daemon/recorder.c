/*
 * The outcome recorder (contract in recorder.h, design in
 * docs/internals/daemon.md).
 *
 * Workers append each message's outcomes to one list as its final reply is
 * read; one thread takes everything gathered and writes it with a single
 * msv_queue_record() transaction, so the fsync is shared by all workers:
 * what arrives while a commit runs goes into the next one.  Tickets number
 * the messages in list order and commits are in list order, so "ticket t
 * is durable" is one comparison with done.
 *
 * A failed commit is kept and tried again after a pause, never dropped
 * while missived runs: the recipients stay leased (the main thread renews
 * the leases) and no worker moves on past its previous message, because
 * an outcome not on disk must not be treated as sent.  Only at shutdown
 * does a last failure give up; missived then releases its leases and those
 * recipients are sent again later (at least once).
 */
#include <stdio.h>
#include <string.h>

#include "audit_trail.h"
#include "daemon.h"
#include "gateway.h"
#include "recorder.h"

/* Outcomes in one transaction at most: the batch array is allocated once,
 * and a transaction must not hold SQLite's write lock long enough to stall
 * claims and submissions (1,024 rows take a few milliseconds). */
#define RECORD_MAX 1024
/* Pause after a failed commit, doubling to the cap: a full disk or a lock
 * held by another process clears in seconds, and retrying in a tight loop
 * would only fill the log. */
#define RETRY_FIRST_MS 100
#define RETRY_CAP_MS 5000

typedef struct item {
	struct item *next;
	uint64_t ticket;
	msv_queue_outcome o; /* its strings point into text */
	const char *qid;
	const char *addr;    /* the recipient's address ("" when not given) */
	const char *why;     /* NULL, or why to suppress addr (a hard bounce) */
	const char *submitter; /* the message's, for its reputation; NULL: none */
	char text[];
} item;

struct recorder {
	daemon_ctx *d;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t more;  /* items added, or stopping */
	pthread_cond_t moved; /* done moved, or stopped */
	item *head, *tail;
	uint64_t issued;      /* the last ticket handed out */
	uint64_t done;        /* every ticket up to it is settled */
	uint64_t first_lost;  /* 0, or the first ticket given up at shutdown */
	int stopping, stopped;
	uint64_t commits, outcomes;
	msv_queue_outcome *batch; /* RECORD_MAX; the thread's own */
};

/* ---- items ---- */

static char *put(char **p, const char *s)
{
	char *at = *p;
	size_t n = strlen(s) + 1;
	memcpy(at, s, n);
	*p += n;
	return at;
}

/* One recipient's outcome with copies of every string it points to. */
static item *item_new(const char *qid, const msv_queue_outcome *o, const char *addr,
                      const char *why, const char *submitter)
{
	const char *server = o->server ? o->server : "", *enh = o->enhanced ? o->enhanced : "";
	const char *text = o->text ? o->text : "";
	if (!addr)
		addr = "";
	size_t need = sizeof(item) + strlen(qid) + strlen(server) + strlen(enh) + strlen(text) +
	              strlen(addr) + (why ? strlen(why) + 1 : 0) +
	              (submitter ? strlen(submitter) + 1 : 0) + 5;
	item *it = msv_malloc(need);
	if (!it)
		return NULL;
	char *p = it->text;
	it->next = NULL;
	it->ticket = 0;
	it->o = *o;
	it->qid = put(&p, qid);
	it->o.server = o->server ? put(&p, server) : NULL;
	it->o.enhanced = put(&p, enh);
	it->o.text = put(&p, text);
	it->addr = put(&p, addr);
	it->why = why ? put(&p, why) : NULL;
	it->submitter = submitter ? put(&p, submitter) : NULL;
	return it;
}

static void items_free(item *it)
{
	for (item *next; it; it = next) {
		next = it->next;
		msv_free(it);
	}
}

/* ---- after a commit ---- */

/* A refusal that says the address is bad (550 5.1.1 user unknown) is a
 * hard bounce now, as it would be in a DSN later: the address goes on the
 * suppression list, but only once its outcome is on disk, so a crash
 * between the two leaves a bounced recipient unsuppressed (the next send
 * bounces again), never a suppressed one still pending. */
static void suppress(daemon_ctx *d, const char *qid, const char *addr, const char *why,
                     int64_t now)
{
	msv_error err;
	if (msv_queue_suppress_add(d->q, addr, why, "smtp", now, &err))
		dlog("%s: cannot update the suppression list: %s", qid, err.message);
	else
		daemon_audit_suppressed(d, qid, addr, why);
}

/* A committed outcome moves its submitter's score; a deferral without
 * an attempt (outbound shaping, no route yet) says nothing of the sender. */
static void judge(daemon_ctx *d, const char *submitter, const msv_queue_outcome *o)
{
	if (d->gw && submitter && (o->state != MSV_RCPT_DEFERRED || o->attempted))
		gateway_outcome(d->gw, submitter, o->state);
}

static void count(daemon_ctx *d, const msv_queue_outcome *o, size_t n)
{
	unsigned c[MSV_RCPT__COUNT] = {0};
	for (size_t i = 0; i < n; i++)
		c[o[i].state]++;
	metrics_outcomes(&d->m, c[MSV_RCPT_SENT], c[MSV_RCPT_DEFERRED], c[MSV_RCPT_BOUNCED],
	                 c[MSV_RCPT_DEAD]);
}

/* ---- the thread ---- */

/* Copies up to RECORD_MAX outcomes from the head into the batch (lock held). */
static size_t take(recorder *r)
{
	size_t n = 0;
	for (item *it = r->head; it && n < RECORD_MAX; it = it->next)
		r->batch[n++] = it->o;
	return n;
}

/* Removes the first n items (lock held) and settles their tickets: a
 * message split across two transactions is settled with the second. */
static item *settle(recorder *r, size_t n, int lost)
{
	item *first = r->head, *last = first;
	for (size_t i = 1; i < n; i++)
		last = last->next;
	r->head = last->next;
	last->next = NULL;
	if (!r->head)
		r->tail = NULL;
	if (lost && !r->first_lost)
		r->first_lost = first->ticket;
	r->done = r->head && r->head->ticket == last->ticket ? last->ticket - 1 : last->ticket;
	pthread_cond_broadcast(&r->moved);
	return first;
}

/* Sleeps ms, or until stopping (lock held). */
static void pause_ms(recorder *r, int64_t ms)
{
	struct timespec until;
	daemon_abstime(&until, ms);
	while (!r->stopping)
		if (pthread_cond_timedwait(&r->more, &r->mu, &until))
			break;
}

static void *recorder_main(void *arg)
{
	recorder *r = arg;
	daemon_ctx *d = r->d;
	int64_t retry_ms = 0;
	pthread_mutex_lock(&r->mu);
	for (;;) {
		while (!r->head && !r->stopping)
			pthread_cond_wait(&r->more, &r->mu);
		if (!r->head)
			break;
		size_t n = take(r);
		int last_try = r->stopping;
		pthread_mutex_unlock(&r->mu);

		msv_error err;
		int64_t now = msv_wall_ms();
		/* The scores earlier outcomes moved go in the same transaction:
		 * group-committed, no fsync of their own. */
		msv_queue_reputation *scores = NULL;
		size_t nscores = d->gw ? gateway_scores_take(d->gw, &scores) : 0;
		int ok = msv_queue_record_with(d->q, r->batch, n, scores, nscores, now, &err) == MSV_OK;
		if (!ok && nscores)
			gateway_scores_untake(d->gw, scores, nscores);
		msv_queue_reputations_free(scores, nscores);
		health_write_result(d, ok ? NULL : &err);

		pthread_mutex_lock(&r->mu);
		if (!ok && !last_try) {
			retry_ms = retry_ms ? retry_ms * 2 : RETRY_FIRST_MS;
			if (retry_ms > RETRY_CAP_MS)
				retry_ms = RETRY_CAP_MS;
			dlog("cannot record %zu outcomes: %s; their recipients stay leased and the "
			     "outcomes are written again in %lld ms", n, err.message, (long long)retry_ms);
			pause_ms(r, retry_ms);
			continue;
		}
		if (!ok) {
			/* Shutting down and the queue still refuses: give up on all
			 * of it.  missived releases its leases next, so these
			 * recipients are claimed and sent again (maybe twice). */
			size_t all = 0;
			for (item *it = r->head; it; it = it->next)
				all++;
			dlog("cannot record %zu outcomes at shutdown: %s; their recipients are released "
			     "and will be sent again", all, err.message);
			while (r->head)
				items_free(settle(r, 1, 1));
			continue;
		}
		if (retry_ms)
			dlog("outcomes recorded again after a failure");
		retry_ms = 0;
		r->commits++;
		r->outcomes += n;
		item *done = settle(r, n, 0);
		pthread_mutex_unlock(&r->mu);
		count(d, r->batch, n);
		for (item *it = done; it; it = it->next) {
			daemon_audit_outcome(d, it->qid, it->addr, &it->o);
			if (it->why && *it->addr)
				suppress(d, it->qid, it->addr, it->why, now);
			judge(d, it->submitter, &it->o);
		}
		items_free(done);
		pthread_mutex_lock(&r->mu);
	}
	r->stopped = 1;
	pthread_cond_broadcast(&r->moved);
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

/* ---- the API ---- */

int recorder_start(daemon_ctx *d, recorder **out)
{
	*out = NULL;
	recorder *r = msv_calloc(1, sizeof(*r));
	if (!r || !(r->batch = msv_calloc(RECORD_MAX, sizeof(*r->batch)))) {
		msv_free(r);
		dlog("cannot start the outcome recorder: out of memory");
		return -1;
	}
	r->d = d;
	pthread_mutex_init(&r->mu, NULL);
	daemon_cond_init(&r->more);
	daemon_cond_init(&r->moved);
	if (pthread_create(&r->th, NULL, recorder_main, r)) {
		dlog("cannot start the outcome recorder: no thread");
		recorder_free(r);
		return -1;
	}
	*out = r;
	return 0;
}

/* What recorder_add() does when it cannot queue: the same, synchronously. */
static void record_now(daemon_ctx *d, const char *qid, const msv_queue_outcome *o, size_t n,
                       const char *const *addr, const char *const *why, const char *submitter)
{
	msv_error err;
	int64_t now = msv_wall_ms();
	msv_result rc = msv_queue_record(d->q, o, n, now, &err);
	health_write_result(d, rc ? &err : NULL);
	if (rc) {
		dlog("%s: cannot record %zu outcomes: %s; they stay leased until missived releases "
		     "its leases, then are sent again", qid, n, err.message);
		return;
	}
	count(d, o, n);
	for (size_t i = 0; i < n; i++)
		daemon_audit_outcome(d, qid, addr ? addr[i] : "", &o[i]);
	for (size_t i = 0; why && i < n; i++)
		if (why[i])
			suppress(d, qid, addr[i], why[i], now);
	for (size_t i = 0; i < n; i++)
		judge(d, submitter, &o[i]);
}

uint64_t recorder_add(recorder *r, const char *qid, const msv_queue_outcome *o, size_t n,
                      const char *const *addr, const char *const *why)
{
	return recorder_add_from(r, NULL, qid, o, n, addr, why);
}

uint64_t recorder_add_from(recorder *r, const char *submitter, const char *qid,
                           const msv_queue_outcome *o, size_t n, const char *const *addr,
                           const char *const *why)
{
	item *first = NULL, **link = &first, *last = NULL;
	for (size_t i = 0; i < n; i++) {
		item *it = item_new(qid, &o[i], addr ? addr[i] : NULL, why ? why[i] : NULL, submitter);
		if (!it) {
			items_free(first);
			first = NULL;
			break;
		}
		*link = last = it;
		link = &it->next;
	}
	uint64_t t = 0;
	pthread_mutex_lock(&r->mu);
	if (first && !r->stopped) {
		t = ++r->issued;
		for (item *it = first; it; it = it->next)
			it->ticket = t;
		if (r->tail)
			r->tail->next = first;
		else
			r->head = first;
		r->tail = last;
		pthread_cond_signal(&r->more);
	}
	pthread_mutex_unlock(&r->mu);
	if (!t) {
		items_free(first);
		if (n)
			record_now(r->d, qid, o, n, addr, why, submitter);
	}
	return t;
}

int recorder_wait(recorder *r, uint64_t ticket)
{
	if (!ticket)
		return 1;
	pthread_mutex_lock(&r->mu);
	while (r->done < ticket && !r->stopped)
		pthread_cond_wait(&r->moved, &r->mu);
	int ok = r->done >= ticket && (!r->first_lost || ticket < r->first_lost);
	pthread_mutex_unlock(&r->mu);
	return ok;
}

void recorder_stop(recorder *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	r->stopping = 1;
	pthread_cond_signal(&r->more);
	pthread_mutex_unlock(&r->mu);
	pthread_join(r->th, NULL);
	if (r->commits)
		dlog("recorded %llu outcomes in %llu transactions (%.1f per transaction)",
		     (unsigned long long)r->outcomes, (unsigned long long)r->commits,
		     (double)r->outcomes / (double)r->commits);
}

void recorder_free(recorder *r)
{
	if (!r)
		return;
	items_free(r->head);
	pthread_cond_destroy(&r->moved);
	pthread_cond_destroy(&r->more);
	pthread_mutex_destroy(&r->mu);
	msv_free(r->batch);
	msv_free(r);
}
