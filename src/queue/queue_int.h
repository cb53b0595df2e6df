/*
 * Internals of the durable queue (contract in missive/queue.h, design in
 * docs/internals/queue.md).
 *
 * The front (queue.c) checks arguments, owns the group-commit machinery and
 * the handle; a backend (sqlite.c, pg.c + pg_ops.c) is a struct
 * of function pointers, as OpenSMTPD's queue backends are.  Backends get
 * arguments the front has already checked and normalized (queue IDs
 * lowercased and well-formed, suppression addresses lowercased, masks
 * reduced to known states), allocate results with msv_malloc, and report
 * failure in *err with a sentence naming what failed.
 *
 * Unit tests may include this header (tests have src/ on the include path)
 * to read the group-commit counters and to force queue-ID collisions.
 */
#ifndef MSV_QUEUE_INT_H
#define MSV_QUEUE_INT_H

#include <pthread.h>

#include "missive/queue.h"

/* Pending states (queued, deferred) and dead letters (bounced, dead). */
#define MSV__RCPT_PENDING_MASK ((1u << MSV_RCPT_QUEUED) | (1u << MSV_RCPT_DEFERRED))
#define MSV__RCPT_DEAD_MASK ((1u << MSV_RCPT_BOUNCED) | (1u << MSV_RCPT_DEAD))
#define MSV__RCPT_ALL_MASK ((1u << MSV_RCPT__COUNT) - 1u)

/*
 * One msv_queue_submit() call waiting to be committed.  It lives on the
 * caller's stack; the committing thread fills ids, result and err, then
 * sets done under the handle's commit mutex and signals wake.
 */
typedef struct msv__queue_req {
	const msv_queue_message *msgs;
	size_t n;
	int64_t now_ms;
	char (*ids)[MSV_QID_LEN + 1];
	msv_result result;
	msv_error err;
	int done;
	pthread_cond_t wake;
	struct msv__queue_req *next;
} msv__queue_req;

/* Writes a fresh queue ID (MSV_QID_LEN lowercase hex digits + NUL).  The
 * backend calls it again when the ID is already taken. */
typedef msv_result (*msv__qid_fn)(void *payload, char out[MSV_QID_LEN + 1], msv_error *err);

typedef struct msv__queue_ops {
	const char *name;
	/* Opens (creating or migrating unless read_only) the store.  *max_body
	 * receives the largest body the store accepts, checked by the front
	 * before a submission joins a batch. */
	msv_result (*open)(void **be, const msv_queue_options *o, size_t *max_body,
	                   msv_error *err);
	void (*close)(void *be);
	/* Creates or upgrades the schema (msv_queue_migrate()). */
	msv_result (*migrate)(const msv_queue_options *o, int *from, int *to, msv_error *err);
	/*
	 * Writes every request of the list in one transaction.  A request that
	 * fails on its own (its insert was refused) gets its result and err set
	 * and is rolled back alone; the others still commit.  A failure of the
	 * transaction itself is returned (with *err set), and then no request
	 * of the list was stored.  On success every request whose result is
	 * MSV_OK has its ids filled and is durable.
	 */
	msv_result (*submit)(void *be, msv__queue_req *list, msv__qid_fn qid, void *qid_payload,
	                     msv_error *err);
	msv_result (*claim)(void *be, const char *owner, int64_t now_ms, int64_t expiry_ms,
	                    size_t max_rcpt, msv_queue_job **jobs, size_t *njobs, msv_error *err);
	/* An outcome with an epoch is applied only while the recipient's
	 * lease_epoch equals it; *refused counts the others (never NULL). */
	msv_result (*record)(void *be, const msv_queue_outcome *o, size_t n,
	                     const msv_queue_reputation *rep, size_t nrep, int64_t now_ms,
	                     size_t *refused, msv_error *err);
	msv_result (*release)(void *be, const char *owner, size_t *released, msv_error *err);
	msv_result (*renew)(void *be, const char *owner, int64_t until_ms, size_t *renewed,
	                    msv_error *err);
	msv_result (*lease_owners)(void *be, char ***owners, size_t *n, msv_error *err);
	msv_result (*next_due)(void *be, int64_t *when_ms, msv_error *err);
	msv_result (*show)(void *be, const char *qid, msv_queue_info *out, msv_error *err);
	msv_result (*list)(void *be, unsigned mask, size_t limit, msv_queue_info **out, size_t *n,
	                   msv_error *err);
	/* qid NULL: every message.  An unknown qid is MSV_E_INVALID. */
	msv_result (*retry)(void *be, const char *qid, int64_t now_ms, size_t *changed,
	                    msv_error *err);
	msv_result (*requeue)(void *be, const char *qid, int64_t now_ms, size_t *changed,
	                      msv_error *err);
	msv_result (*purge)(void *be, unsigned mask, int64_t before_ms, size_t *removed,
	                    msv_error *err);
	msv_result (*stats)(void *be, int64_t now_ms, msv_queue_stats *out, msv_error *err);
	msv_result (*mark_bounced)(void *be, const char *qid, const char *address,
	                           const char *status, const char *text, int64_t now_ms,
	                           size_t *changed, msv_error *err);
	/* The newest message with this Message-ID that has this recipient
	 * (address compared without regard to case). */
	msv_result (*find_message_id)(void *be, const char *message_id, const char *address,
	                              char qid[MSV_QID_LEN + 1], int *found, msv_error *err);
	msv_result (*suppress_add)(void *be, const char *address, const char *reason,
	                           const char *source, int64_t now_ms, msv_error *err);
	msv_result (*suppress_rm)(void *be, const char *address, int *removed, msv_error *err);
	msv_result (*suppress_check)(void *be, const char *address, int *found, char **reason,
	                             msv_error *err);
	msv_result (*suppress_list)(void *be, msv_suppression **out, size_t *n, msv_error *err);
	/* One small real write transaction, committed (health checks). */
	msv_result (*probe_write)(void *be, msv_error *err);
	/* API keys (names checked, domains lowercased by the front).  A name
	 * already taken is MSV_E_INVALID "key NAME exists". */
	msv_result (*key_add)(void *be, const msv_queue_key *k, msv_error *err);
	msv_result (*key_rotate)(void *be, const char *name, const unsigned char hash[32],
	                         int64_t now_ms, int *found, msv_error *err);
	msv_result (*key_rm)(void *be, const char *name, int *removed, msv_error *err);
	msv_result (*key_list)(void *be, msv_queue_key **out, size_t *n, msv_error *err);
	/* Reputation (identities and scores checked by the front). */
	msv_result (*reputation_put)(void *be, const msv_queue_reputation *r, size_t n,
	                             msv_error *err);
	msv_result (*reputation_list)(void *be, msv_queue_reputation **out, size_t *n,
	                              msv_error *err);
	msv_result (*reputation_override)(void *be, const char *identity, double score,
	                                  int64_t now_ms, msv_error *err);
	msv_result (*reputation_take_overrides)(void *be, msv_queue_reputation **out, size_t *n,
	                                        msv_error *err);
	/* Outbound shaping: recipients back to the queue without an attempt,
	 * and the routes' circuit breakers for `queue stats`. */
	msv_result (*postpone)(void *be, const int64_t *rcpt_ids, size_t n, int64_t until_ms,
	                       size_t *changed, msv_error *err);
	msv_result (*route_state_put)(void *be, const msv_queue_route_state *s, size_t n,
	                              msv_error *err);
	msv_result (*route_state_list)(void *be, msv_queue_route_state **out, size_t *n,
	                               msv_error *err);
	/* NULL: no notifications (the front sleeps). */
	msv_result (*wait_notify)(void *be, int timeout_ms, int *woken, msv_error *err);
	/* Export and import (docs/scale-out.md, "Moving up from SQLite"). */
	msv_result (*qids)(void *be, char ***qids, size_t *n, msv_error *err);
	msv_result (*dump)(void *be, const char *qid, msv_queue_dump *out, msv_error *err);
	msv_result (*import)(void *be, const msv_queue_import_set *set, int force,
	                     msv_error *err);
} msv__queue_ops;

extern const msv__queue_ops msv__queue_sqlite_ops;

/* A recipient a claim leased, as a backend read it back (claim.c). */
typedef struct msv__claimed {
	int64_t id, msg, next; /* recipient and message row ids, due time */
	uint64_t epoch;
	char *address;         /* moved into the job by msv__queue_claims_to_jobs */
	unsigned attempts;
	size_t rank;           /* claim.c's: position in due order */
} msv__claimed;

/* Orders the leased rows as msv_queue_claim() promises (by due time, each
 * message's recipients together where its earliest due one ranks) into
 * *njobs jobs with their recipients; (*msgs)[i] is job i's message row,
 * for the backend to load.  MSV_OK, or MSV_E_NOMEM with nothing made. */
msv_result msv__queue_claims_to_jobs(msv__claimed *rows, size_t nrows, msv_queue_job **jobs,
                                     int64_t **msgs, size_t *njobs);
extern const msv__queue_ops msv__queue_pg_ops;

/* Group-commit counters, read under the commit mutex. */
typedef struct msv__queue_counters {
	uint64_t commits;  /* submission transactions (batches) attempted */
	uint64_t requests; /* msv_queue_submit() calls that joined a batch */
	uint64_t messages; /* messages in those calls */
	uint64_t max_batch; /* most requests ever written in one transaction */
} msv__queue_counters;

void msv__queue_get_counters(msv_queue *q, msv__queue_counters *out);

/* Replaces the queue-ID source (tests force collisions with it); fn NULL
 * restores the random one.  Call before any submission is in flight. */
void msv__queue_set_qid_source(msv_queue *q, msv__qid_fn fn, void *payload);

/* The default source: 8 bytes from getrandom(2) as 16 lowercase hex digits. */
msv_result msv__queue_random_qid(void *payload, char out[MSV_QID_LEN + 1], msv_error *err);

#endif
