/*
 * missive/queue.h - the durable message queue.
 *
 * SYNOPSIS
 *   The queue is the source of truth for asynchronous delivery: a message
 *   is accepted only once msv_queue_submit() has committed it (SQLite in WAL
 *   mode with synchronous=FULL; or PostgreSQL, msv_queue_options.url, for
 *   several nodes on one queue).  Each message is stored once; each of its
 *   recipients has its own state, schedule, lease and history of attempts.
 *
 * STATES (per recipient)
 *   queued     waiting for its first attempt
 *   deferred   an attempt failed temporarily; next_attempt_ms says when again
 *   sent       the server accepted it (2xx)
 *   bounced    refused permanently (5xx) or reported by a bounce: dead letter
 *   dead       gave up (maximum age reached): dead letter
 *   suppressed the address is on the suppression list: never sent
 *   queued and deferred are "pending"; bounced and dead form the dead-letter
 *   queue, which msv_queue_requeue() empties back into queued.
 *
 * LEASES
 *   A worker claims due recipients with msv_queue_claim(): they are leased
 *   to its owner name until an expiry.  msv_queue_record() stores the
 *   outcome and ends the lease.  A lease that expires (the worker crashed)
 *   makes the recipient claimable again: delivery is at least once.
 *
 * GROUP COMMIT
 *   msv_queue_submit() may be called from many threads at once on one
 *   handle: submissions that arrive while a commit is in progress are
 *   written together in the next transaction, so N concurrent submissions
 *   cost far fewer than N fsyncs.  It returns only after the commit that
 *   holds the caller's messages is durable.
 *
 * THREADS
 *   Every function may be called from any thread on one handle;
 *   msv_queue_close() must not race them.  Several processes may open the
 *   same file (the daemon and `missive sendmail`); SQLite serializes them.
 *
 * TIMES are milliseconds since the Unix epoch, given by the caller (now_ms)
 * so that tests control the clock.
 */
#ifndef MISSIVE_QUEUE_H
#define MISSIVE_QUEUE_H

#include "missive/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum msv_rcpt_state {
	MSV_RCPT_QUEUED = 0,
	MSV_RCPT_DEFERRED,
	MSV_RCPT_SENT,
	MSV_RCPT_BOUNCED,
	MSV_RCPT_DEAD,
	MSV_RCPT_SUPPRESSED,
	MSV_RCPT__COUNT
} msv_rcpt_state;

/* "queued", "deferred", ... */
MSV_EXTERN const char *msv_queue_rcpt_state_name(msv_rcpt_state s);
/* 0 and *out set, or -1 for an unknown name. */
MSV_EXTERN int msv_queue_rcpt_state_parse(const char *name, msv_rcpt_state *out);

/* Queue IDs are 16 lowercase hex digits. */
#define MSV_QID_LEN 16

typedef struct msv_queue msv_queue;

typedef struct msv_queue_options {
	unsigned version;     /* MSV_QUEUE_OPTIONS_VERSION */
	const char *path;     /* database file; created with its tables if missing */
	int busy_timeout_ms;  /* wait this long for another process's lock; 0: 10 s */
	int read_only;        /* open for inspection only (queue ls/show/stats) */
	/* Run PRAGMA quick_check on opening (a daemon's start, not every
	 * sendmail): damaged pages fail the open with MSV_E_IO naming the
	 * file, instead of failing every later operation. */
	int verify;
	/* Version 2: a PostgreSQL queue, "postgresql://USER@HOST:PORT/DB"
	 * (any libpq connection URI).  Give path or url, not both.  The
	 * database must hold the current schema (msv_queue_migrate()) or no
	 * tables at all (they are created). */
	const char *url;
} msv_queue_options;

#define MSV_QUEUE_OPTIONS_VERSION 2
#define MSV_QUEUE_OPTIONS_INIT {.version = MSV_QUEUE_OPTIONS_VERSION}

MSV_EXTERN MSV_WUR msv_result msv_queue_open(msv_queue **out, const msv_queue_options *opts,
                                             msv_error *err);
MSV_EXTERN void msv_queue_close(msv_queue *q);

/* The schema version this libmissive writes (both backends). */
#define MSV_QUEUE_SCHEMA_VERSION 4

/* Creates the tables, or brings an older schema up to the current one, in
 * one transaction; *from receives the version found (0: none), *to the
 * version left (either may be NULL).  A newer schema is MSV_E_CONFIG.
 * SQLite files are also migrated by any read-write open; PostgreSQL
 * databases only here (several nodes share one: an upgrade is an
 * operator's step, `missive queue migrate`). */
MSV_EXTERN MSV_WUR msv_result msv_queue_migrate(const msv_queue_options *opts, int *from,
                                                int *to, msv_error *err);

/* "sqlite" or "postgresql". */
MSV_EXTERN const char *msv_queue_backend(const msv_queue *q);

/* ---- submission ---- */

typedef struct msv_queue_message {
	const char *sender;          /* reverse path; "" for <> */
	const char *const *rcpt;     /* forward paths (at least one) */
	size_t nrcpt;
	const char *body;            /* the complete message, CRLF, already signed */
	size_t len;
	const char *message_id;      /* the Message-ID field's value, or NULL */
	const char *route;           /* route chosen at submission, or NULL */
	const char *dsn_notify;      /* as msv_envelope; NULL: none */
	const char *dsn_ret;
	const char *envid;           /* NULL: the queue ID is used as ENVID when DSN asked */
	int body_8bit, smtputf8;
	const msv_rcpt_state *initial; /* per recipient: QUEUED or SUPPRESSED; NULL: all QUEUED */
	/* Who submitted it, for reputation: "key:NAME", "uid:1000",
	 * "ip:192.0.2.1"; NULL: nobody tracked. */
	const char *submitter;
} msv_queue_message;

/* Stores n messages durably; ids[i] receives message i's queue ID.  All or
 * nothing: on failure no message was stored. */
MSV_EXTERN MSV_WUR msv_result msv_queue_submit(msv_queue *q, const msv_queue_message *msgs,
                                               size_t n, int64_t now_ms,
                                               char (*ids)[MSV_QID_LEN + 1], msv_error *err);

/* ---- delivery ---- */

typedef struct msv_queue_rcpt {
	int64_t id;          /* recipient row id, for msv_queue_record() */
	char *address;
	unsigned attempts;   /* attempts made before this one */
	/* The lease's epoch: the recipient's claim counter, one more at each
	 * claim.  Copy it into msv_queue_outcome.epoch (fencing). */
	uint64_t epoch;
} msv_queue_rcpt;

/* One message with the recipients claimed for it. */
typedef struct msv_queue_job {
	char qid[MSV_QID_LEN + 1];
	int64_t created_ms;
	char *sender, *route, *message_id, *dsn_notify, *dsn_ret, *envid;
	int body_8bit, smtputf8;
	char *body;
	size_t len;
	msv_queue_rcpt *rcpt;
	size_t nrcpt;
	char *submitter; /* as submitted, or NULL */
} msv_queue_job;

/* Leases up to max_rcpt due recipients (queued or deferred, next attempt
 * at or before now, no live lease) to owner until now_ms + lease_ms,
 * grouped by message, oldest due first, and loads their messages.
 * *jobs is NULL when nothing is due. */
MSV_EXTERN MSV_WUR msv_result msv_queue_claim(msv_queue *q, const char *owner, int64_t now_ms,
                                              int64_t lease_ms, size_t max_rcpt,
                                              msv_queue_job **jobs, size_t *njobs,
                                              msv_error *err);
MSV_EXTERN void msv_queue_jobs_free(msv_queue_job *jobs, size_t n);

/* The outcome of one attempt for one recipient. */
typedef struct msv_queue_outcome {
	int64_t rcpt_id;
	msv_rcpt_state state;     /* SENT, DEFERRED, BOUNCED, DEAD or SUPPRESSED */
	int64_t next_attempt_ms;  /* DEFERRED: when to try again */
	int attempted;            /* 1: an attempt was made (recorded in history) */
	int64_t at_ms;            /* when the attempt started */
	int64_t latency_ms;
	const char *server;       /* "host:port", or NULL */
	int reply_code;           /* 0 when no reply (connection, TLS, timeout) */
	const char *enhanced;     /* "5.1.1" or "" */
	const char *text;         /* reply text or local error sentence */
	/* FENCING: the epoch of the claim this outcome belongs to
	 * (msv_queue_rcpt.epoch), or 0 for none.  With an epoch, the
	 * outcome is applied only while the recipient's lease epoch is still
	 * that one: once its lease expired and another worker (or node)
	 * claimed it again, the late outcome is refused, so a paused worker
	 * that wakes up cannot overwrite the newer owner's result. */
	uint64_t epoch;
} msv_queue_outcome;

/* Records n outcomes in one transaction and ends their leases.  An
 * outcome refused by fencing (see epoch above) is skipped silently, as is
 * one whose recipient was purged; msv_queue_record_fenced() counts them. */
MSV_EXTERN MSV_WUR msv_result msv_queue_record(msv_queue *q, const msv_queue_outcome *o,
                                               size_t n, int64_t now_ms, msv_error *err);

/* Puts claimed recipients back without an attempt: their state stays,
 * they become due at until_ms and their leases end (outbound shaping: no
 * token yet, the route's circuit open).  *changed may be NULL. */
MSV_EXTERN MSV_WUR msv_result msv_queue_postpone(msv_queue *q, const int64_t *rcpt_ids, size_t n,
                                                 int64_t until_ms, size_t *changed,
                                                 msv_error *err);

/* A route's circuit breaker as the daemon last wrote it, for `missive
 * queue stats` (the state itself lives in missived's memory). */
typedef struct msv_queue_route_state {
	char *route;
	char *circuit;           /* "closed", "open", "half-open" */
	int64_t open_until_ms;   /* 0: closed */
	uint64_t trips;          /* times opened since the daemon started */
	int64_t changed_ms;
} msv_queue_route_state;

/* Inserts or replaces the rows by route. */
MSV_EXTERN MSV_WUR msv_result msv_queue_route_state_put(msv_queue *q,
                                                        const msv_queue_route_state *s,
                                                        size_t n, msv_error *err);
MSV_EXTERN MSV_WUR msv_result msv_queue_route_state_list(msv_queue *q,
                                                         msv_queue_route_state **out,
                                                         size_t *n, msv_error *err);
MSV_EXTERN void msv_queue_route_states_free(msv_queue_route_state *s, size_t n);

/* Ends every lease held by owner (a clean shutdown).  *released may be NULL. */
MSV_EXTERN MSV_WUR msv_result msv_queue_release(msv_queue *q, const char *owner,
                                                size_t *released, msv_error *err);

/* Moves the expiry of every lease held by owner to until_ms: a live owner
 * keeps its claims while sends take longer than a lease (a slow server),
 * so no other worker takes them over and sends them again.  *renewed may
 * be NULL. */
MSV_EXTERN MSV_WUR msv_result msv_queue_renew(msv_queue *q, const char *owner, int64_t until_ms,
                                              size_t *renewed, msv_error *err);

/* The distinct owners holding leases now (to release a crashed one's). */
MSV_EXTERN MSV_WUR msv_result msv_queue_lease_owners(msv_queue *q, char ***owners, size_t *n,
                                                     msv_error *err);
MSV_EXTERN void msv_queue_strings_free(char **s, size_t n);

/* The earliest next_attempt_ms of a pending recipient, or -1 if none. */
MSV_EXTERN MSV_WUR msv_result msv_queue_next_due(msv_queue *q, int64_t *when_ms,
                                                 msv_error *err);

/* ---- inspection and operation ---- */

typedef struct msv_queue_attempt {
	int64_t rcpt_id;
	int64_t at_ms, latency_ms;
	char *server;
	int reply_code;
	char *enhanced, *text;
} msv_queue_attempt;

typedef struct msv_queue_rcpt_info {
	int64_t id;
	char *address;
	msv_rcpt_state state;
	unsigned attempts;
	int64_t next_attempt_ms, updated_ms;
	int last_code;
	char *last_enhanced, *last_text; /* "" when no attempt yet */
	char *lease_owner;               /* NULL when not leased */
	int64_t lease_expiry_ms;
	uint64_t lease_epoch;            /* claims so far (the last lease's epoch) */
} msv_queue_rcpt_info;

typedef struct msv_queue_info {
	char qid[MSV_QID_LEN + 1];
	int64_t created_ms;
	char *sender, *route, *message_id, *envid;
	size_t size;
	msv_queue_rcpt_info *rcpt;
	size_t nrcpt;
	msv_queue_attempt *attempts; /* oldest first */
	size_t nattempts;
} msv_queue_info;

/* MSV_E_INVALID with "no such message" when qid is unknown. */
MSV_EXTERN MSV_WUR msv_result msv_queue_show(msv_queue *q, const char *qid,
                                             msv_queue_info *out, msv_error *err);
/* Every message with at least one recipient in one of the states whose
 * bit (1u << state) is set in state_mask, newest first, at most limit
 * (0: no limit); each info has only its matching recipients and no
 * attempts. */
MSV_EXTERN MSV_WUR msv_result msv_queue_list(msv_queue *q, unsigned state_mask, size_t limit,
                                             msv_queue_info **out, size_t *n, msv_error *err);
MSV_EXTERN void msv_queue_info_free(msv_queue_info *info);
MSV_EXTERN void msv_queue_infos_free(msv_queue_info *infos, size_t n);

/* Makes pending recipients due now: of message qid, or of every message
 * when qid is NULL.  *changed may be NULL. */
MSV_EXTERN MSV_WUR msv_result msv_queue_retry(msv_queue *q, const char *qid, int64_t now_ms,
                                              size_t *changed, msv_error *err);
/* Moves message qid's dead letters (bounced, dead) back to queued, due now. */
MSV_EXTERN MSV_WUR msv_result msv_queue_requeue(msv_queue *q, const char *qid, int64_t now_ms,
                                                size_t *changed, msv_error *err);
/* Deletes messages all of whose recipients are in a state of state_mask
 * and none updated after before_ms; *removed counts messages. */
MSV_EXTERN MSV_WUR msv_result msv_queue_purge(msv_queue *q, unsigned state_mask,
                                              int64_t before_ms, size_t *removed,
                                              msv_error *err);

typedef struct msv_queue_stats {
	uint64_t rcpt[MSV_RCPT__COUNT]; /* recipients by state */
	uint64_t messages;
	uint64_t leased;                /* recipients under a live lease */
	int64_t oldest_pending_ms;      /* created_ms of the oldest pending message; -1: none */
} msv_queue_stats;

MSV_EXTERN MSV_WUR msv_result msv_queue_stats_get(msv_queue *q, int64_t now_ms,
                                                  msv_queue_stats *out, msv_error *err);

/* ---- bounces and suppression ---- */

/* Marks the recipient address of message qid bounced (a DSN arrived after
 * the server had said 250), recording the status and text as an attempt.
 * *changed is 0 when no such recipient exists. */
MSV_EXTERN MSV_WUR msv_result msv_queue_mark_bounced(msv_queue *q, const char *qid,
                                                     const char *address, const char *status,
                                                     const char *text, int64_t now_ms,
                                                     size_t *changed, msv_error *err);

/* The queue ID of the newest message whose Message-ID is message_id (as
 * stored, with its angle brackets) and that has the recipient address:
 * for bounces that carry neither a VERP address nor an ENVID.  *found is
 * 0 when there is none. */
MSV_EXTERN MSV_WUR msv_result msv_queue_find_message_id(msv_queue *q, const char *message_id,
                                                        const char *address,
                                                        char qid[MSV_QID_LEN + 1], int *found,
                                                        msv_error *err);

typedef struct msv_suppression {
	char *address; /* lowercased */
	char *reason;
	char *source;  /* "bounce", "manual", ... */
	int64_t created_ms;
} msv_suppression;

/* Addresses compare case-insensitively.  Adding an existing one updates it. */
MSV_EXTERN MSV_WUR msv_result msv_queue_suppress_add(msv_queue *q, const char *address,
                                                     const char *reason, const char *source,
                                                     int64_t now_ms, msv_error *err);
/* *removed is 0 when the address was not listed. */
MSV_EXTERN MSV_WUR msv_result msv_queue_suppress_rm(msv_queue *q, const char *address,
                                                    int *removed, msv_error *err);
/* *found is 1 when listed; reason (may be NULL) receives a copy. */
MSV_EXTERN MSV_WUR msv_result msv_queue_suppress_check(msv_queue *q, const char *address,
                                                       int *found, char **reason,
                                                       msv_error *err);
MSV_EXTERN MSV_WUR msv_result msv_queue_suppress_list(msv_queue *q, msv_suppression **out,
                                                      size_t *n, msv_error *err);
MSV_EXTERN void msv_queue_suppressions_free(msv_suppression *s, size_t n);


/* ---- API keys ----
 *
 * missived's HTTP API keys live in the queue database so that every node
 * on one queue shares them.  Only the SHA-256 of a secret is stored. */

#define MSV_KEY_NAME_MAX 64 /* [A-Za-z0-9._-], 1..64 octets */

typedef struct msv_queue_key {
	char *name;
	unsigned char hash[32];  /* SHA-256 of the secret */
	char *sender_domains;    /* lowercase, comma-separated; "": any */
	double rate;             /* messages per second; 0: [limits] key-rate */
	unsigned burst;          /* 0: [limits] key-burst */
	int64_t created_ms, rotated_ms; /* rotated_ms 0: never */
} msv_queue_key;

/* Adds a key; MSV_E_INVALID "key NAME exists" when the name is taken. */
MSV_EXTERN MSV_WUR msv_result msv_queue_key_add(msv_queue *q, const msv_queue_key *k,
                                                msv_error *err);
/* Replaces the hash of key name (rotated_ms = now_ms); *found 0 when no such key. */
MSV_EXTERN MSV_WUR msv_result msv_queue_key_rotate(msv_queue *q, const char *name,
                                                   const unsigned char hash[32], int64_t now_ms,
                                                   int *found, msv_error *err);
/* *removed 0 when no such key. */
MSV_EXTERN MSV_WUR msv_result msv_queue_key_rm(msv_queue *q, const char *name, int *removed,
                                               msv_error *err);
/* Every key, by name. */
MSV_EXTERN MSV_WUR msv_result msv_queue_key_list(msv_queue *q, msv_queue_key **out, size_t *n,
                                                 msv_error *err);
MSV_EXTERN void msv_queue_keys_free(msv_queue_key *k, size_t n);

/* ---- reputation ----
 *
 * missived keeps scores in memory and writes the changed ones here after
 * each group of outcomes, so that a restart does not forgive a bad
 * submitter.  An operator's override goes to a table of its own, which the
 * daemon takes (and empties) within a second. */

typedef struct msv_queue_reputation {
	char *identity;          /* "key:NAME", "uid:1000", "ip:192.0.2.1" */
	double score;            /* at stamp_ms, before decay */
	int64_t stamp_ms;
	unsigned rejections;     /* consecutive permanent rejections */
	int64_t open_until_ms;   /* the circuit is open until; 0: closed */
	int64_t changed_ms;      /* last change, for `missive reputation ls` */
	char *why;               /* what changed it last: "42 delivered", "operator", ... */
} msv_queue_reputation;

/* msv_queue_record(), with the rows of msv_queue_reputation_put() in the
 * same transaction: scores are group-committed with outcomes, no fsync
 * of their own. */
MSV_EXTERN MSV_WUR msv_result msv_queue_record_with(msv_queue *q, const msv_queue_outcome *o,
                                                    size_t n, const msv_queue_reputation *rep,
                                                    size_t nrep, int64_t now_ms,
                                                    msv_error *err);
/* msv_queue_record_with() that also reports in *refused (may be NULL) how
 * many outcomes fencing refused: their recipient was claimed again since
 * the claim whose epoch they carry.  The others still commit. */
MSV_EXTERN MSV_WUR msv_result msv_queue_record_fenced(msv_queue *q, const msv_queue_outcome *o,
                                                      size_t n, const msv_queue_reputation *rep,
                                                      size_t nrep, int64_t now_ms,
                                                      size_t *refused, msv_error *err);
/* Inserts or replaces the rows by identity, in one transaction. */
MSV_EXTERN MSV_WUR msv_result msv_queue_reputation_put(msv_queue *q,
                                                       const msv_queue_reputation *r, size_t n,
                                                       msv_error *err);
MSV_EXTERN MSV_WUR msv_result msv_queue_reputation_list(msv_queue *q,
                                                        msv_queue_reputation **out, size_t *n,
                                                        msv_error *err);
MSV_EXTERN void msv_queue_reputations_free(msv_queue_reputation *r, size_t n);
/* An operator's override, kept until the daemon takes it (and written to
 * the reputation row at once, so that `ls` shows it). */
MSV_EXTERN MSV_WUR msv_result msv_queue_reputation_override(msv_queue *q, const char *identity,
                                                            double score, int64_t now_ms,
                                                            msv_error *err);
/* Removes and returns the pending overrides (identity, score, stamp_ms
 * set; other fields zero). */
MSV_EXTERN MSV_WUR msv_result msv_queue_reputation_take_overrides(msv_queue *q,
                                                                  msv_queue_reputation **out,
                                                                  size_t *n, msv_error *err);

/* ---- notifications ----
 *
 * A PostgreSQL queue NOTIFYs at every submission: a worker idle on one
 * node wakes at once when another node takes mail in.  SQLite has no
 * cross-process signal: msv_queue_can_notify() is 0 there and
 * msv_queue_wait_notify() just sleeps. */

MSV_EXTERN int msv_queue_can_notify(msv_queue *q);
/* Waits up to timeout_ms for a submission on any handle of this queue
 * since the call began; *woken (may be NULL) is 1 when one came. */
MSV_EXTERN MSV_WUR msv_result msv_queue_wait_notify(msv_queue *q, int timeout_ms, int *woken,
                                                    msv_error *err);

/* ---- moving a queue (export / import) ---- */

/* Everything about one message: what show gives (every recipient, every
 * attempt) plus the body and the envelope fields show leaves out. */
typedef struct msv_queue_dump {
	msv_queue_info info;
	char *dsn_notify, *dsn_ret;
	int body_8bit, smtputf8;
	char *submitter;
	char *body;
	size_t len;
} msv_queue_dump;

/* Every queue ID, oldest first (the export's order). */
MSV_EXTERN MSV_WUR msv_result msv_queue_qids(msv_queue *q, char ***qids, size_t *n,
                                             msv_error *err);
MSV_EXTERN MSV_WUR msv_result msv_queue_dump_message(msv_queue *q, const char *qid,
                                                     msv_queue_dump *out, msv_error *err);
MSV_EXTERN void msv_queue_dump_free(msv_queue_dump *d);

/* What an import writes, all in one transaction. */
typedef struct msv_queue_import_set {
	const msv_queue_dump *msgs;
	size_t nmsgs;
	const msv_suppression *sup;
	size_t nsup;
	const msv_queue_key *keys;
	size_t nkeys;
	const msv_queue_reputation *reps;
	size_t nreps;
	const msv_queue_route_state *routes;
	size_t nroutes;
} msv_queue_import_set;

/* Writes the set in one transaction, keeping queue IDs, states, attempt
 * counts, schedules, leases and history (recipient and attempt row ids
 * are new).  A queue that already holds messages, suppressions or keys is
 * refused (MSV_E_INVALID) unless force, which merges: rows with the same
 * key (queue ID, address, name, identity, route) are replaced. */
MSV_EXTERN MSV_WUR msv_result msv_queue_import(msv_queue *q, const msv_queue_import_set *set,
                                               int force, msv_error *err);

/* ---- health ---- */

/* Commits one small write transaction that really writes to the file
 * (one page and one fsync): 0 when the queue can take writes now, else the
 * error a submission would get (disk full, file-size limit, read-only file
 * system, lock held past the busy timeout).  For health checks; rate-limit
 * the calls, each costs an fsync. */
MSV_EXTERN MSV_WUR msv_result msv_queue_probe_write(msv_queue *q, msv_error *err);

#ifdef __cplusplus
}
#endif

#endif
