/*
 * missive/pool.h - reusable SMTP connections and concurrent sending.
 *
 * SYNOPSIS
 *   A pool keeps connections open between messages, keyed by destination
 *   (host, port, TLS mode, client certificate, auth identity), so the TCP
 *   and TLS handshakes and AUTH are paid once per connection, not once per
 *   message.  Any thread may send through the pool; a batch call sends a
 *   list with up to N messages in flight.
 *
 * CONNECTION LIFECYCLE
 *   A connection is borrowed for exactly one msv_pool_send() and returned
 *   by it; callers never hold one.  It is closed, never reused, after any
 *   session error; after max_messages messages (QUIT first); when older
 *   than max_age_ms; when idle longer than idle_timeout_ms.  One idle
 *   longer than noop_after_ms answers a NOOP before it is used.  After a
 *   transaction that failed or was abandoned the engine says RSET before
 *   the next MAIL; a successful one needs none.  TLS sessions resume
 *   across reconnects to the same key.
 *
 * DELIVERY CONTRACT (at least once, never silently twice)
 *   A reused connection found dead before the server answered MAIL (EOF,
 *   reset, 421) is replaced and the message tried once more, transparently:
 *   the server cannot have taken it.  Once the server answered MAIL, a
 *   failure is reported and the pool never re-sends on its own, even when
 *   the connection broke before the final reply: the message may or may
 *   not have been delivered, and only the caller's policy (a queue, a
 *   retry with the same Message-ID) can decide.  result.attempts says
 *   how many sessions were tried.
 *
 * THREADS
 *   msv_pool_send() and msv_pool_send_batch() may be called from any
 *   number of threads at once.  msv_pool_free() must not race them.
 */
#ifndef MISSIVE_POOL_H
#define MISSIVE_POOL_H

#include "missive/smtp.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct msv_pool_options {
	unsigned version;        /* MSV_POOL_OPTIONS_VERSION */
	unsigned max_connections; /* open at once per key; 0: 8 */
	unsigned max_idle;       /* idle kept per key; 0: max_connections */
	int idle_timeout_ms;     /* close a connection idle this long; 0: 60 s */
	int noop_after_ms;       /* NOOP before reusing one idle this long; 0: 10 s */
	unsigned max_messages;   /* per connection, then QUIT and reconnect; 0: 1000 */
	int64_t max_age_ms;      /* close a connection this old; 0: 10 min */
	int wait_timeout_ms;     /* wait for a free connection at most; 0: command timeout */
} msv_pool_options;

#define MSV_POOL_OPTIONS_VERSION 1
#define MSV_POOL_OPTIONS_INIT {.version = MSV_POOL_OPTIONS_VERSION}

/* The outcome of one message. */
typedef struct msv_pool_result {
	msv_result code;        /* MSV_OK: at least one recipient accepted */
	msv_error err;          /* set when code != MSV_OK, or some recipient refused */
	msv_rcpt_result *rcpt;  /* one per envelope recipient (address points into it) */
	size_t nrcpt;
	size_t accepted;
	msv_smtp_reply data;    /* the final reply to the message */
	unsigned attempts;      /* sessions tried: 2 when a stale connection was replaced */
	int reused;             /* the message went over a connection used before */
	int64_t latency_ms;     /* from the call to the final reply */
} msv_pool_result;

/* Frees what a result holds (not the struct itself). */
MSV_EXTERN void msv_pool_result_free(msv_pool_result *r);

/* Counters for tests, benchmarks and metrics. */
typedef struct msv_pool_stats {
	uint64_t connections_opened;
	uint64_t connections_reused; /* sends over a connection used before */
	uint64_t tls_resumed;        /* handshakes that resumed a session */
	uint64_t stale_replaced;     /* dead idle connections replaced transparently */
	unsigned open;               /* connections open now, all keys */
	unsigned idle;               /* of which idle */
} msv_pool_stats;

typedef struct msv_pool msv_pool;

MSV_EXTERN MSV_WUR msv_result msv_pool_new(msv_pool **out, const msv_pool_options *opts,
                                           msv_error *err);
/* QUITs and closes every idle connection, frees the pool. */
MSV_EXTERN void msv_pool_free(msv_pool *p);

/* Sends one message to the destination in route (server, TLS, auth as
 * for msv_client_new), over a pooled connection.  Always fills *res;
 * returns res->code. */
MSV_EXTERN msv_result msv_pool_send(msv_pool *p, const msv_client_options *route,
                                    const msv_envelope *env, const char *msg, size_t len,
                                    msv_pool_result *res);

typedef struct msv_pool_message {
	const msv_envelope *env;
	const char *msg;
	size_t len;
} msv_pool_message;

/* Called once per message of a batch, from the thread that sent it, as
 * soon as that message's final reply is read (with pipelining: before the
 * next message's reply, not at the end of the run); the session waits
 * while it runs. */
typedef void (*msv_pool_progress_fn)(void *payload, size_t index, const msv_pool_result *res);

/* Sends n messages with up to in_flight at once (0: the pool's
 * max_connections), filling results[i] for msgs[i].  Returns MSV_OK when
 * every message was sent to at least one recipient, else the first
 * failure's code; results tell which. */
MSV_EXTERN msv_result msv_pool_send_batch(msv_pool *p, const msv_client_options *route,
                                          const msv_pool_message *msgs, size_t n,
                                          unsigned in_flight, msv_pool_result *results,
                                          msv_pool_progress_fn progress, void *payload);

MSV_EXTERN void msv_pool_stats_get(msv_pool *p, msv_pool_stats *out);

#ifdef __cplusplus
}
#endif
#endif
