/* Outbound shaping and the routes' circuit breakers (docs/gateway.md,
 * "Outbound shaping and circuit breakers").
 *
 * The state lives in missived's memory, one per route and one per
 * [destination]: a token bucket for the route's rate, a circuit breaker
 * for its server, and per destination domain a token bucket and the
 * number of sessions carrying its mail now.  The decisions are the pure
 * functions of missive/policy.h; this file only keeps their state behind
 * one mutex, on the monotonic clock, so that a step of the wall clock
 * neither opens a circuit nor hands out a burst.
 *
 * What may not go now is put back in the queue with msv_queue_postpone():
 * no attempt is counted, the recipient is not deferred, and it comes due
 * exactly when its token (or the end of the cool-down) is there. */
#ifndef MSV_DAEMON_SHAPING_H
#define MSV_DAEMON_SHAPING_H

#include <stddef.h>
#include <stdint.h>

#include "missive/core.h"
#include "missive/queue.h"

struct daemon_ctx;
typedef struct shaping shaping;

/* The state for d->cfg's routes and destinations, full buckets and closed
 * circuits; NULL when out of memory. */
shaping *shaping_new(const struct daemon_ctx *d);
void shaping_free(shaping *s);
/* Writes every route's circuit (closed) to the queue, for `queue stats`:
 * a previous run's "open" must not outlive it. */
void shaping_publish_all(struct daemon_ctx *d);

/* What a worker may send now of one route's claimed messages. */
typedef struct shaped {
	msv_queue_job **jobs; /* the messages that go, each with only the recipients that go */
	size_t n;
	/* private */
	msv_queue_job *copies;   /* shallow copies of the claimed jobs */
	msv_queue_rcpt *rcpts;   /* their recipients that go */
	unsigned char *held;     /* per destination: this group holds a session slot */
	int probe;               /* the group carries its route's half-open probe */
} shaped;

/* Decides for the claimed messages of route ri (SIZE_MAX: none, nothing
 * shaped): per message a token of the route, per recipient domain with a
 * [destination] a token and a session slot, and the route's circuit.
 * Postpones in the queue what must wait and fills out with the rest (its
 * jobs point into the claimed ones, which must outlive it).  0, or -1
 * when out of memory (logged; nothing is sent, the leases run out). */
int shaping_admit(struct daemon_ctx *d, size_t ri, msv_queue_job *const *group, size_t n,
                  shaped *out);
/* Gives back the group's session slots and frees what out holds. */
void shaping_done(struct daemon_ctx *d, shaped *g);

/* How many of the group's next `left` messages may go before the
 * breaker is asked again: as many as the breaker can still count as
 * failures before it opens, so that a storm stops at its threshold and
 * not at the end of a batch.  0 when the circuit is open: *until_ms is
 * then when to try again (wall clock).  shaping_sent() must follow each
 * nonzero answer once those messages are reported. */
size_t shaping_chunk(struct daemon_ctx *d, shaped *g, size_t ri, size_t left, int64_t *until_ms);
void shaping_sent(struct daemon_ctx *d, size_t ri, size_t n);

/* A message's result on route ri, for its breaker: ok 0 when it failed
 * temporarily as a whole (no connection, TLS, timeout, 421 or 4xx on the
 * session or on every recipient). */
void shaping_result(struct daemon_ctx *d, size_t ri, int ok);

/* Puts recipients back in the queue until until_ms without an attempt:
 * 0, or -1 after logging why (they stay leased until missived stops). */
int shaping_postpone(struct daemon_ctx *d, const int64_t *ids, size_t n, int64_t until_ms);

/* missive_circuit_open, missive_circuit_trips_total, missive_shaped_total
 * in Prometheus text, appended to o; nonzero when out of memory. */
int shaping_metrics(struct daemon_ctx *d, msv_buf *o);

#endif
