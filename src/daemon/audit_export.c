/* The audit exporters' engine (docs/audit.md): one thread per sink
 * reads the trail after its cursor, hands each event to the sink with an
 * id, and moves the cursor over the longest run of events, from the
 * oldest, that the sink reported as taken.  A failure throws away what
 * is in flight and starts again from the cursor after a backoff: events
 * may be sent twice, never skipped.  The sinks (audit_kafka.c,
 * audit_syslog.c) are driven from this thread only, so the ring of
 * events in flight needs no lock; the counters the metrics read are
 * atomics. */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "audit_export.h"
#include "missive/audit.h"

/* Events handed over and not yet reported: a sink that takes without
 * confirming (a broker down) is not fed the whole trail. */
#define INFLIGHT_MAX 10000
/* The cursor file is rewritten at most this often (and at stop). */
#define SAVE_EVERY_MS 200
#define STOP_WAIT_MS 5000
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000

enum { SLOT_PENDING, SLOT_OK, SLOT_FAILED };

typedef struct slot {
	msv_audit_cursor pos; /* the cursor after this event (pos.seq: its seq) */
	int state;
} slot;

struct exporter {
	audit_export *x;
	const audit_sink_ops *ops;
	void *sink;
	pthread_t th;
	int started;
	msv_audit_reader *rd;
	msv_audit_cursor acked; /* every event up to here was taken */
	slot *ring;             /* ids head..tail-1 at ring[id % INFLIGHT_MAX] */
	uint64_t head, tail;
	int failed;
	int dirty;
	int64_t saved_ms;
	int64_t backoff_ms;
	char lasterr[MSV_TEXT_MAX]; /* the last error logged: logged once */
	_Atomic uint64_t acked_seq, exported, failures;
};

struct audit_export {
	const app_config *cfg;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stopping;
	exporter *ex[2];
	size_t n;
};

static int stopping(audit_export *x)
{
	pthread_mutex_lock(&x->mu);
	int s = x->stopping;
	pthread_mutex_unlock(&x->mu);
	return s;
}

/* Sleeps ms, or less when missived stops. */
static void nap(audit_export *x, int64_t ms)
{
	struct timespec until;
	daemon_abstime(&until, ms);
	pthread_mutex_lock(&x->mu);
	while (!x->stopping)
		if (pthread_cond_timedwait(&x->cv, &x->mu, &until))
			break;
	pthread_mutex_unlock(&x->mu);
}

/* Each distinct error once, so a sink down for an hour logs one line,
 * not one per retry. */
static void report(exporter *e, const char *what, const msv_error *err)
{
	char line[sizeof(e->lasterr)];
	/* Cut to fit: a line the size of the last one kept. */
	snprintf(line, sizeof(line), "%.40s: %.*s", what, (int)sizeof(line) - 44, err->message);
	if (!strcmp(line, e->lasterr))
		return;
	snprintf(e->lasterr, sizeof(e->lasterr), "%s", line);
	dlog("audit export to %s: %s (retrying; the trail keeps the events)", e->ops->name, line);
}

void audit_export_done(exporter *e, uint64_t id, int ok)
{
	if (id < e->head || id >= e->tail)
		return; /* in flight before a reset: sent again since */
	e->ring[id % INFLIGHT_MAX].state = ok ? SLOT_OK : SLOT_FAILED;
	if (!ok)
		e->failed = 1;
}

/* The cursor moves over the taken events from the oldest on; one not yet
 * reported holds back every later one. */
static void advance(exporter *e)
{
	uint64_t from = e->head;
	while (e->head < e->tail && e->ring[e->head % INFLIGHT_MAX].state == SLOT_OK) {
		e->acked = e->ring[e->head % INFLIGHT_MAX].pos;
		e->head++;
		e->dirty = 1;
		atomic_fetch_add(&e->exported, 1);
	}
	if (e->head != from) {
		atomic_store(&e->acked_seq, e->acked.seq);
		e->backoff_ms = BACKOFF_MIN_MS;
		if (e->lasterr[0]) {
			dlog("audit export to %s: resumed at event %llu", e->ops->name,
			     (unsigned long long)e->acked.seq);
			e->lasterr[0] = '\0';
		}
	}
}

static void save(exporter *e, int force)
{
	int64_t now = msv_now_ms();
	if (!e->dirty || (!force && now - e->saved_ms < SAVE_EVERY_MS))
		return;
	msv_error err;
	if (msv_audit_cursor_save(e->x->cfg->audit_path, e->ops->name, &e->acked, &err))
		report(e, "cannot save the cursor", &err);
	e->dirty = 0;
	e->saved_ms = now;
}

/* The members a sink needs, from the event's JSON; j is freed by the caller. */
static void meta_of(cJSON *j, const msv_audit_cursor *pos, audit_event_meta *m)
{
	const cJSON *v;
	m->seq = pos->seq;
	m->qid = NULL;
	m->type = m->ts = "-";
	if ((v = cJSON_GetObjectItemCaseSensitive(j, "qid")) && cJSON_IsString(v) && *v->valuestring)
		m->qid = v->valuestring;
	if ((v = cJSON_GetObjectItemCaseSensitive(j, "type")) && cJSON_IsString(v) && *v->valuestring)
		m->type = v->valuestring;
	if ((v = cJSON_GetObjectItemCaseSensitive(j, "ts")) && cJSON_IsString(v) && *v->valuestring)
		m->ts = v->valuestring;
}

/* Hands the sink what the trail has after the last event sent, until the
 * ring is full: the number sent, or -1 after a failure. */
static int fill(exporter *e)
{
	int sent = 0;
	msv_error err;
	while (!e->failed && e->tail - e->head < INFLIGHT_MAX) {
		const char *line;
		size_t len;
		msv_audit_cursor pos;
		if (msv_audit_reader_next(e->rd, &line, &len, &pos, &err)) {
			report(e, "cannot read the trail", &err);
			e->failed = 1;
			return -1;
		}
		if (!line)
			break;
		if (pos.seq && pos.seq <= e->acked.seq)
			continue; /* taken before the rewind that got here */
		cJSON *j = cJSON_ParseWithLength(line, len);
		audit_event_meta m;
		meta_of(j, &pos, &m);
		uint64_t id = e->tail++;
		e->ring[id % INFLIGHT_MAX] = (slot){pos, SLOT_PENDING};
		int rc = e->ops->send(e->sink, id, line, len, &m, &err);
		cJSON_Delete(j);
		if (rc) {
			report(e, "cannot send", &err);
			e->failed = 1;
			return -1;
		}
		sent++;
	}
	return sent;
}

/* After a failure: what was in flight is dropped and sent again, from the
 * cursor, after a growing pause. */
static void recover(exporter *e)
{
	atomic_fetch_add(&e->failures, 1);
	e->ops->reset(e->sink);
	advance(e);
	e->head = e->tail;
	e->failed = 0;
	msv_audit_reader_close(e->rd);
	e->rd = NULL;
	nap(e->x, e->backoff_ms);
	e->backoff_ms = e->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : e->backoff_ms * 2;
}

static void *exporter_main(void *arg)
{
	exporter *e = arg;
	msv_error err;
	while (!stopping(e->x)) {
		if (!e->rd && msv_audit_reader_open(&e->rd, e->x->cfg->audit_path, &e->acked, &err)) {
			e->rd = NULL;
			report(e, "cannot open the trail", &err);
			nap(e->x, 1000);
			continue;
		}
		int sent = fill(e);
		int wait = sent > 0 && e->tail - e->head < INFLIGHT_MAX ? 0 : 100;
		if (!e->failed && e->ops->poll(e->sink, wait, &err)) {
			report(e, "failed", &err);
			e->failed = 1;
		}
		advance(e);
		save(e, 0);
		if (e->failed)
			recover(e);
	}
	/* The events written up to the stop (audit.stopped among them) go
	 * too, unless the sink is failing anyway. */
	if (e->rd && !e->failed && !e->lasterr[0])
		fill(e);
	e->ops->flush(e->sink, STOP_WAIT_MS);
	advance(e);
	save(e, 1);
	if (e->head < e->tail)
		dlog("audit export to %s: stopped with %llu events unconfirmed; they are sent again "
		     "at the next start", e->ops->name, (unsigned long long)(e->tail - e->head));
	msv_audit_reader_close(e->rd);
	e->rd = NULL;
	return NULL;
}

static msv_result exporter_new(audit_export *x, const audit_sink_ops *ops, msv_error *err)
{
	const char *path = x->cfg->audit_path;
	exporter *e = msv_calloc(1, sizeof(*e));
	if (!e || !(e->ring = msv_calloc(INFLIGHT_MAX, sizeof(*e->ring)))) {
		msv_free(e);
		return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL,
		                     "audit export: out of memory");
	}
	e->x = x;
	e->ops = ops;
	e->backoff_ms = BACKOFF_MIN_MS;
	x->ex[x->n++] = e;
	if (msv_audit_cursor_load(path, ops->name, &e->acked, &err[0])) {
		/* Unreadable: from the start again (at least once). */
		dlog("audit export to %s: %s; exporting the trail from its start", ops->name,
		     err->message);
		memset(&e->acked, 0, sizeof(e->acked));
	}
	atomic_store(&e->acked_seq, e->acked.seq);
	if (ops->create(&e->sink, x->cfg, e, err))
		return err->code;
	dlog("audit export to %s: from event %llu", ops->name, (unsigned long long)e->acked.seq);
	if (pthread_create(&e->th, NULL, exporter_main, e))
		return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL,
		                     "audit export to %s: cannot start its thread", ops->name);
	e->started = 1;
	return MSV_OK;
}

msv_result audit_export_check(const app_config *c, msv_error *err)
{
	if (!c->audit_kafka_brokers && !c->audit_syslog)
		return MSV_OK;
	if (!c->audit_path)
		return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
		                     "%s: [audit] %s is set but path = off: there is no trail to export",
		                     c->path, c->audit_kafka_brokers ? "kafka-brokers" : "syslog");
	return c->audit_kafka_brokers ? audit_kafka_check(c, err) : MSV_OK;
}

msv_result audit_export_start(daemon_ctx *d, audit_export **out, msv_error *err)
{
	const app_config *c = d->cfg;
	*out = NULL;
	if (!c->audit_path || (!c->audit_kafka_brokers && !c->audit_syslog))
		return MSV_OK;
	audit_export *x = msv_calloc(1, sizeof(*x));
	if (!x)
		return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "audit export: out of memory");
	x->cfg = c;
	pthread_mutex_init(&x->mu, NULL);
	daemon_cond_init(&x->cv);
	msv_result rc = MSV_OK;
	if (c->audit_kafka_brokers)
		rc = exporter_new(x, &audit_kafka_ops, err);
	if (!rc && c->audit_syslog)
		rc = exporter_new(x, &audit_syslog_ops, err);
	if (rc) {
		audit_export_stop(x);
		return rc;
	}
	*out = x;
	return MSV_OK;
}

void audit_export_stop(audit_export *x)
{
	if (!x)
		return;
	pthread_mutex_lock(&x->mu);
	x->stopping = 1;
	pthread_cond_broadcast(&x->cv);
	pthread_mutex_unlock(&x->mu);
	for (size_t i = 0; i < x->n; i++) {
		exporter *e = x->ex[i];
		if (e->started)
			pthread_join(e->th, NULL);
		if (e->sink)
			e->ops->destroy(e->sink);
		msv_free(e->ring);
		msv_free(e);
	}
	pthread_cond_destroy(&x->cv);
	pthread_mutex_destroy(&x->mu);
	msv_free(x);
}

int audit_export_metrics(audit_export *x, msv_buf *o)
{
	uint64_t last = 0;
	msv_error err;
	if (!x || !x->n)
		return 0;
	if (msv_audit_last_seq(x->cfg->audit_path, &last, &err))
		last = 0;
	int rc = msv_buf_addstr(o, "# HELP missive_audit_export_lag_events Audit events not yet "
	                           "taken by the sink.\n"
	                           "# TYPE missive_audit_export_lag_events gauge\n");
	for (size_t i = 0; i < x->n; i++) {
		uint64_t acked = atomic_load(&x->ex[i]->acked_seq);
		rc |= msv_buf_addf(o, "missive_audit_export_lag_events{sink=\"%s\"} %llu\n",
		                   x->ex[i]->ops->name,
		                   (unsigned long long)(last > acked ? last - acked : 0));
	}
	rc |= msv_buf_addstr(o, "# HELP missive_audit_exported_total Audit events the sink took.\n"
	                        "# TYPE missive_audit_exported_total counter\n");
	for (size_t i = 0; i < x->n; i++)
		rc |= msv_buf_addf(o, "missive_audit_exported_total{sink=\"%s\"} %llu\n",
		                   x->ex[i]->ops->name,
		                   (unsigned long long)atomic_load(&x->ex[i]->exported));
	rc |= msv_buf_addstr(o, "# HELP missive_audit_export_failures_total Sink failures (each "
	                        "followed by a resend from the cursor).\n"
	                        "# TYPE missive_audit_export_failures_total counter\n");
	for (size_t i = 0; i < x->n; i++)
		rc |= msv_buf_addf(o, "missive_audit_export_failures_total{sink=\"%s\"} %llu\n",
		                   x->ex[i]->ops->name,
		                   (unsigned long long)atomic_load(&x->ex[i]->failures));
	return rc;
}
