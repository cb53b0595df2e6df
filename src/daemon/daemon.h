/* missived's shared state: the queue, the pool, the workers, the HTTP
 * API and the metrics, owned by main() (missived.c). */
#ifndef MSV_DAEMON_H
#define MSV_DAEMON_H

#include <pthread.h>
#include <stdarg.h>
#include <time.h>

#include "config.h"
#include "missive/pool.h"
#include "missive/queue.h"

/* Attempt latency histogram bounds, in seconds (Prometheus le=). */
#define METRIC_BUCKETS 12

typedef struct metrics {
	pthread_mutex_t mu;
	uint64_t submitted, delivered, deferred, bounced, dead, attempts;
	uint64_t bucket[METRIC_BUCKETS + 1]; /* last one: +Inf */
	double latency_sum;
	uint64_t http[6]; /* responses by class 1xx..5xx (index 1..5) */
} metrics;

typedef struct daemon_ctx {
	app_config *cfg;
	msv_queue *q;
	msv_pool **pools;       /* one per route, as cfg->routes */
	char owner[400];        /* lease owner: "missived:HOST:PID:NODE" */
	char node_name[80];     /* [daemon] node, else HOST-PID; d->node points here */
	const char *http_token; /* NULL: no token required */
	metrics m;
	/* Workers sleep on wake until work may be due or a submission arrives. */
	pthread_mutex_t mu;
	pthread_cond_t wake;
	int stopping;
	unsigned running;       /* workers still running */
	pthread_cond_t exited;
	uint64_t wake_seq;      /* bumped by each submission */
	struct recorder *rec;   /* writes delivery outcomes (recorder.h) */
	struct shaping *shape;  /* outbound shaping and circuit breakers (shaping.h) */
	struct gateway *gw;     /* keys, limits, reputation (gateway.h) */
	struct audit_export *ax; /* the trail's Kafka/syslog exporters (audit_export.h) */
	struct app_audit *audit; /* the audit trail; NULL: [audit] path = off */
	struct audit_trail *trail; /* its events and housekeeping (audit_trail.h) */
	const char *node;       /* written in audit events; NULL: none */
	/* Queue write health for /healthz (metrics.c). */
	pthread_mutex_t health_mu;
	int64_t health_probe_ms;   /* when the last write probe ran */
	int health_bad;            /* the last queue write failed */
	char health_why[MSV_TEXT_MAX]; /* and why (no addresses: queue errors name none) */
} daemon_ctx;

typedef struct audit_trail audit_trail;

/* worker.c */
void *worker_main(void *arg);
/* Wakes the workers: a message was queued. */
void daemon_wake(daemon_ctx *d);
/* timing.c: a condition variable whose timed waits run on CLOCK_MONOTONIC, so that
 * a step of the wall clock (NTP, an operator) neither stretches nor cuts
 * a timeout.  Every condition variable given to daemon_abstime() deadlines
 * must be made here. */
void daemon_cond_init(pthread_cond_t *cv);
/* The CLOCK_MONOTONIC time ms from now, for pthread_cond_timedwait on a
 * condition variable from daemon_cond_init(). */
void daemon_abstime(struct timespec *ts, int64_t ms);

/* http.c: starts the API on cfg->http_listen; NULL handle on failure
 * after logging why. */
typedef struct http_server http_server;
/* The [http] settings: MSV_OK, or MSV_E_CONFIG naming the file and key. */
msv_result http_check(const app_config *c, int have_token, msv_error *err);
http_server *http_start(daemon_ctx *d);
void http_stop(http_server *h);

/* submitsock.c: the submission socket ([daemon] socket) for `missive
 * sendmail`.  MSV_OK (*out NULL when disabled), or err naming the socket:
 * MSV_E_CANT_CREATE (cannot bind), class PERMANENT (another missived
 * listens there, or the path is no socket), MSV_E_NOMEM. */
typedef struct submitsock submitsock;
msv_result submitsock_start(daemon_ctx *d, submitsock **out, msv_error *err);
/* Stops accepting, lets submissions in progress finish, removes the socket.
 * started: the accepting thread runs (0 only on a failed start). */
void submitsock_stop(submitsock *s, int started);

/* metrics.c */
void metrics_init(metrics *m);
void metrics_attempt(metrics *m, int64_t latency_ms);
void metrics_outcomes(metrics *m, unsigned delivered, unsigned deferred, unsigned bounced,
                      unsigned dead);
void metrics_submitted(metrics *m, unsigned n);
void metrics_http(metrics *m, unsigned status);
/* The Prometheus text exposition, appended to out. */
int metrics_render(daemon_ctx *d, msv_buf *out);
/* The result of a queue write (a submission, a bounce, a probe): a failure
 * makes /healthz answer 503 with err's text until a write succeeds. */
void health_write_result(daemon_ctx *d, const msv_error *err);
/* 0 when the queue takes writes; else -1 with why set.  Probes with a
 * real write at most once a second. */
int health_check(daemon_ctx *d, char *why, size_t whysz);

/* missived.c: a start-up error, "missived: " and one line to stderr. */
void daemon_err(const char *fmt, ...) MSV_PRINTF(1, 2);
/* missived.c: one log line with a UTC timestamp, to stderr or the log file. */
void dlog(const char *fmt, ...) MSV_PRINTF(1, 2);
void vdlog(const char *fmt, va_list ap) MSV_PRINTF(1, 0);

#endif
