/*
 * Internals of the PostgreSQL queue backend, shared by pg.c (connections,
 * schema, submission, claims, outcomes, leases, notifications) and
 * pg_ops.c (inspection, operator changes, suppression, keys, reputation,
 * route states, export and import).  Design in docs/internals/queue.md,
 * "The PostgreSQL backend".
 */
#ifndef MSV_QUEUE_PG_INT_H
#define MSV_QUEUE_PG_INT_H

#include <pthread.h>
#include <libpq-fe.h>

#include "queue/queue_int.h"

/* One libpq connection behind its own mutex: libpq connections are not
 * for two threads at once. */
typedef struct pg_conn {
	PGconn *c;
	pthread_mutex_t mu;
	int mu_ok;
} pg_conn;

typedef struct pg {
	char *url;
	char *name; /* the URI without its password, for messages */
	int read_only;
	int lock_timeout_ms;
	pg_conn w, r;
	/* LISTEN connection and the waiters' rendezvous (pg_wait_notify). */
	pg_conn ln;
	pthread_mutex_t nmu;
	pthread_cond_t ncv;
	int n_ok, polling;
	uint64_t notify_seq;
} pg;

/* The NOTIFY channel every submission signals. */
#define PG_CHANNEL "missive_queue"

/* Fills *err from a failed result (or the connection's message when res
 * is NULL) and returns its code; SQLSTATE decides the class. */
msv_result msv__pg_fail(msv_error *err, const pg *p, PGconn *c, const PGresult *res,
                    const char *what);
msv_result msv__pg_nomem(msv_error *err);

/* Takes c's mutex and makes sure the connection is up (reconnecting a
 * lost one); on failure the mutex is released. */
msv_result msv__pg_lock(pg *p, pg_conn *c, msv_error *err);
void msv__pg_unlock(pg_conn *c);

/*
 * Runs sql with n text parameters (NULL: SQL NULL).  Commands and queries
 * both: *res (may be NULL) receives the result of a query, to PQclear;
 * *changed (may be NULL) the rows a command touched.
 */
msv_result msv__pg_exec(pg *p, pg_conn *c, const char *sql, int n, const char *const *v,
                    PGresult **res, size_t *changed, const char *what, msv_error *err);
msv_result msv__pg_begin(pg *p, pg_conn *c, const char *what, msv_error *err);
msv_result msv__pg_end(pg *p, pg_conn *c, msv_result r, const char *what, msv_error *err);

/* Text of a column: NULL stays NULL when keep_null, else "".  -1: nomem. */
int msv__pg_dup(const PGresult *res, int row, int col, int keep_null, char **out);
int64_t msv__pg_i64(const PGresult *res, int row, int col);
/* Decodes a bytea column into a new msv_malloc'd buffer (NUL-terminated). */
int msv__pg_bytea(const PGresult *res, int row, int col, char **out, size_t *len);

/* Writes v in decimal into buf (at least 24 bytes) and returns buf. */
const char *msv__pg_int(char *buf, int64_t v);

/* pg_ops.c */
msv_result msv__pg_show(void *be, const char *qid, msv_queue_info *out, msv_error *err);
msv_result msv__pg_list(void *be, unsigned mask, size_t limit, msv_queue_info **out, size_t *n,
                    msv_error *err);
msv_result msv__pg_retry(void *be, const char *qid, int64_t now_ms, size_t *changed,
                     msv_error *err);
msv_result msv__pg_requeue(void *be, const char *qid, int64_t now_ms, size_t *changed,
                       msv_error *err);
msv_result msv__pg_purge(void *be, unsigned mask, int64_t before_ms, size_t *removed,
                     msv_error *err);
msv_result msv__pg_stats(void *be, int64_t now_ms, msv_queue_stats *out, msv_error *err);
msv_result msv__pg_mark_bounced(void *be, const char *qid, const char *address, const char *status,
                            const char *text, int64_t now_ms, size_t *changed, msv_error *err);
msv_result msv__pg_find_message_id(void *be, const char *message_id, const char *address,
                               char qid[MSV_QID_LEN + 1], int *found, msv_error *err);
msv_result msv__pg_suppress_add(void *be, const char *address, const char *reason,
                            const char *source, int64_t now_ms, msv_error *err);
msv_result msv__pg_suppress_rm(void *be, const char *address, int *removed, msv_error *err);
msv_result msv__pg_suppress_check(void *be, const char *address, int *found, char **reason,
                              msv_error *err);
msv_result msv__pg_suppress_list(void *be, msv_suppression **out, size_t *n, msv_error *err);
msv_result msv__pg_key_add(void *be, const msv_queue_key *k, msv_error *err);
msv_result msv__pg_key_rotate(void *be, const char *name, const unsigned char hash[32],
                          int64_t now_ms, int *found, msv_error *err);
msv_result msv__pg_key_rm(void *be, const char *name, int *removed, msv_error *err);
msv_result msv__pg_key_list(void *be, msv_queue_key **out, size_t *n, msv_error *err);
msv_result msv__pg_rep_put_rows(pg *p, const msv_queue_reputation *v, size_t n, msv_error *err);
msv_result msv__pg_reputation_put(void *be, const msv_queue_reputation *v, size_t n,
                              msv_error *err);
msv_result msv__pg_reputation_list(void *be, msv_queue_reputation **out, size_t *n,
                               msv_error *err);
msv_result msv__pg_reputation_override(void *be, const char *identity, double score,
                                   int64_t now_ms, msv_error *err);
msv_result msv__pg_reputation_take_overrides(void *be, msv_queue_reputation **out, size_t *n,
                                         msv_error *err);
msv_result msv__pg_postpone(void *be, const int64_t *ids, size_t n, int64_t until_ms,
                        size_t *changed, msv_error *err);
msv_result msv__pg_route_state_put(void *be, const msv_queue_route_state *v, size_t n,
                               msv_error *err);
msv_result msv__pg_route_state_list(void *be, msv_queue_route_state **out, size_t *n,
                                msv_error *err);
msv_result msv__pg_qids(void *be, char ***qids, size_t *n, msv_error *err);
msv_result msv__pg_dump(void *be, const char *qid, msv_queue_dump *out, msv_error *err);
msv_result msv__pg_import(void *be, const msv_queue_import_set *set, int force, msv_error *err);

#endif
