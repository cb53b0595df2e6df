/* The audit trail's exporters (docs/audit.md): one thread per
 * configured sink ([audit] kafka-brokers, syslog) follows the trail from
 * its persisted cursor (PATH.cursor-kafka, PATH.cursor-syslog), hands each
 * event to the sink, and moves the cursor only over events the sink has
 * taken for good.  The file is the spool: a sink that is down only makes
 * the lag grow, submission never waits for it. */
#ifndef MSV_AUDIT_EXPORT_H
#define MSV_AUDIT_EXPORT_H

#include <stdint.h>

#include "daemon.h"

typedef struct audit_export audit_export;

/* The [audit] export settings as missived would use them (the kafka.*
 * properties go through librdkafka's own checks): MSV_OK, or MSV_E_CONFIG
 * naming the file, the key and what is wrong. */
msv_result audit_export_check(const app_config *c, msv_error *err);
/* Starts one exporter per configured sink: MSV_OK with *out NULL when the
 * trail is off or no sink is configured. */
msv_result audit_export_start(daemon_ctx *d, audit_export **out, msv_error *err);
/* Hands over what the sinks take within a bounded wait (5 s), saves the
 * cursors, joins the threads and frees x (NULL: nothing). */
void audit_export_stop(audit_export *x);
/* missive_audit_export_lag_events, missive_audit_exported_total and
 * missive_audit_export_failures_total by sink, appended to out. */
int audit_export_metrics(audit_export *x, msv_buf *out);

/* ---- between the engine (audit_export.c) and the sinks ---- */

/* What a sink needs of one event besides its line. */
typedef struct audit_event_meta {
	uint64_t seq;
	const char *qid;  /* NULL: none */
	const char *type; /* "-" when missing */
	const char *ts;   /* "-" when missing */
} audit_event_meta;

typedef struct exporter exporter;

/* A sink reports each event it was given as done (ok: taken for good, or
 * failed) by the id it was given with; ids grow by one per send. */
void audit_export_done(exporter *e, uint64_t id, int ok);

typedef struct audit_sink_ops {
	const char *name; /* the cursor's and the metrics' name */
	/* Builds the sink from the config (no I/O yet). */
	msv_result (*create)(void **out, const app_config *c, exporter *e, msv_error *err);
	/* Hands one event over (queues it): 0, or -1 with err set when the
	 * sink failed; what it was given and has not reported stays
	 * pending until reset(). */
	int (*send)(void *s, uint64_t id, const char *line, size_t len,
	            const audit_event_meta *m, msv_error *err);
	/* Waits up to ms for progress and reports what is done: 0, or -1
	 * with err set when the sink failed. */
	int (*poll)(void *s, int ms, msv_error *err);
	/* Forgets everything pending (reported as failed or not at all):
	 * after a failure, before the engine sends again from its cursor. */
	void (*reset)(void *s);
	/* At stop: reports what completes within ms. */
	void (*flush)(void *s, int ms);
	void (*destroy)(void *s);
} audit_sink_ops;

extern const audit_sink_ops audit_kafka_ops;  /* audit_kafka.c */
extern const audit_sink_ops audit_syslog_ops; /* audit_syslog.c */
/* audit_kafka.c: the kafka.* properties checked by librdkafka. */
msv_result audit_kafka_check(const app_config *c, msv_error *err);

#endif
