/*
 * The PostgreSQL queue backend (ops table in queue_int.h, design in
 * docs/internals/queue.md, "The PostgreSQL backend"): connections, schema
 * and migrations, submission, claims, outcomes with fencing, leases and
 * LISTEN/NOTIFY.  The rest of the operations are in pg_ops.c.
 *
 * Three libpq connections per handle, each behind its own mutex:
 *   w   every write transaction (READ COMMITTED; claims lock their rows
 *       with FOR UPDATE SKIP LOCKED, so nodes claiming at once each get
 *       different rows and never wait for one another);
 *   r   reads, multi-statement ones in REPEATABLE READ READ ONLY (one
 *       snapshot);
 *   ln  opened at the first msv_queue_wait_notify(): LISTEN only.
 * A read-only handle opens only r.
 *
 * Durability is the server's: with synchronous_commit=on (the default) a
 * COMMIT returns once the WAL is flushed, which is what "accepted" means.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "queue/pg_int.h"

#define SCHEMA_VERSION MSV_QUEUE_SCHEMA_VERSION

/* Fresh queue IDs to try when one is taken (as in sqlite.c). */
#define QID_TRIES 16

/* Bodies travel as bytea; the server's limit for one value is 1 GiB, and
 * the client holds a body twice while loading it.  256 MiB is far above
 * any mail server's SIZE. */
#define PG_MAX_BODY ((size_t)256 * 1024 * 1024)

/* Serializes schema creation and migrations between processes. */
#define PG_SCHEMA_LOCK "1297306961" /* "MSVQ" */

/*
 * The schema, version 4 (the SQLite file's version 4 has the same tables
 * and columns).  Ids are identities, never reused: a late outcome for a
 * purged recipient cannot land on a new one.  lease_epoch counts claims:
 * fencing (pg_record).  The partial index holds only pending recipients,
 * in due order, as in SQLite.
 */
static const char schema_sql[] =
	"CREATE TABLE schema_version (version integer NOT NULL);"
	"CREATE TABLE messages ("
	" id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
	" qid text NOT NULL UNIQUE,"
	" created_ms bigint NOT NULL,"
	" sender text NOT NULL,"
	" route text, message_id text, dsn_notify text, dsn_ret text, envid text,"
	" body_8bit smallint NOT NULL DEFAULT 0,"
	" smtputf8 smallint NOT NULL DEFAULT 0,"
	" size bigint NOT NULL,"
	" submitter text,"
	" body bytea NOT NULL);"
	"CREATE INDEX messages_created ON messages(created_ms);"
	"CREATE INDEX messages_mid ON messages(message_id);"
	"CREATE TABLE recipients ("
	" id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
	" msg bigint NOT NULL REFERENCES messages(id) ON DELETE CASCADE,"
	" address text NOT NULL,"
	" state smallint NOT NULL CHECK (state BETWEEN 0 AND 5),"
	" attempts integer NOT NULL DEFAULT 0,"
	" next_attempt_ms bigint NOT NULL,"
	" updated_ms bigint NOT NULL,"
	" last_code integer NOT NULL DEFAULT 0,"
	" last_enhanced text NOT NULL DEFAULT '',"
	" last_text text NOT NULL DEFAULT '',"
	" lease_owner text,"
	" lease_expiry_ms bigint NOT NULL DEFAULT 0,"
	" lease_epoch bigint NOT NULL DEFAULT 0);"
	"CREATE INDEX recipients_msg ON recipients(msg);"
	"CREATE INDEX recipients_due ON recipients(next_attempt_ms, lease_expiry_ms)"
	" WHERE state IN (0, 1);"
	"CREATE INDEX recipients_lease ON recipients(lease_owner) WHERE lease_owner IS NOT NULL;"
	"CREATE TABLE attempts ("
	" id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
	" rcpt bigint NOT NULL REFERENCES recipients(id) ON DELETE CASCADE,"
	" at_ms bigint NOT NULL, latency_ms bigint NOT NULL, server text,"
	" reply_code integer NOT NULL, enhanced text NOT NULL, text text NOT NULL);"
	"CREATE INDEX attempts_rcpt ON attempts(rcpt);"
	"CREATE TABLE suppression (address text PRIMARY KEY, reason text NOT NULL,"
	" source text NOT NULL, created_ms bigint NOT NULL);"
	"CREATE TABLE api_keys (name text PRIMARY KEY,"
	" hash bytea NOT NULL CHECK (length(hash) = 32),"
	" sender_domains text NOT NULL DEFAULT '', rate double precision NOT NULL DEFAULT 0,"
	" burst bigint NOT NULL DEFAULT 0, created_ms bigint NOT NULL,"
	" rotated_ms bigint NOT NULL DEFAULT 0);"
	"CREATE TABLE reputation (identity text PRIMARY KEY,"
	" score double precision NOT NULL CHECK (score BETWEEN 0 AND 100),"
	" stamp_ms bigint NOT NULL, rejections bigint NOT NULL DEFAULT 0,"
	" open_until_ms bigint NOT NULL DEFAULT 0, changed_ms bigint NOT NULL,"
	" why text NOT NULL DEFAULT '');"
	"CREATE TABLE reputation_overrides (identity text PRIMARY KEY,"
	" score double precision NOT NULL CHECK (score BETWEEN 0 AND 100),"
	" at_ms bigint NOT NULL);"
	"CREATE TABLE route_state (route text PRIMARY KEY, circuit text NOT NULL,"
	" open_until_ms bigint NOT NULL DEFAULT 0, trips bigint NOT NULL DEFAULT 0,"
	" changed_ms bigint NOT NULL);";

/* ---- helpers ---- */

const char *msv__pg_int(char *buf, int64_t v)
{
	snprintf(buf, 24, "%lld", (long long)v);
	return buf;
}

msv_result msv__pg_nomem(msv_error *err)
{
	return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
}

/*
 * SQLSTATE classes: connection trouble, serialization failures, lock and
 * statement timeouts are temporary (the caller retries, EX_TEMPFAIL);
 * authentication, a missing database or privilege are configuration an
 * operator must fix.
 */
msv_result msv__pg_fail(msv_error *err, const pg *p, PGconn *c, const PGresult *res,
                    const char *what)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	if (!msg || !*msg)
		msg = c ? PQerrorMessage(c) : "no connection";
	msv_result code = MSV_E_SYSTEM;
	msv_class cls = MSV_CLASS_LOCAL;
	if (!state || !strncmp(state, "08", 2) || !strcmp(state, "40001") ||
	    !strcmp(state, "40P01") || !strcmp(state, "55P03") || !strcmp(state, "57014") ||
	    !strncmp(state, "57P", 3)) {
		code = MSV_E_TIMEOUT;
	} else if (!strcmp(state, "53200")) {
		code = MSV_E_NOMEM;
	} else if (!strcmp(state, "54000")) {
		code = MSV_E_TOO_LARGE;
	} else if (!strncmp(state, "28", 2) || !strcmp(state, "3D000") ||
	           !strcmp(state, "42501") || !strcmp(state, "42P01") || !strcmp(state, "42703")) {
		code = MSV_E_CONFIG;
		cls = MSV_CLASS_CONFIG;
	}
	/* libpq's messages end with a newline: one line in our logs. */
	size_t len = strcspn(msg, "\n");
	return msv_error_set(err, code, cls, "queue %s: %s failed: %.*s", p->name, what, (int)len,
	                     msg);
}

/* libpq prints server notices on stderr by default; a library does not. */
static void quiet(void *arg, const PGresult *res)
{
	(void)arg;
	(void)res;
}

static msv_result conn_setup(pg *p, pg_conn *c, msv_error *err)
{
	char sql[96];
	PQsetNoticeReceiver(c->c, quiet, NULL);
	/* A writer waiting behind another node's row lock gives up like a
	 * SQLite writer after its busy timeout. */
	snprintf(sql, sizeof(sql), "SET lock_timeout = %d", p->lock_timeout_ms);
	return msv__pg_exec(p, c, sql, 0, NULL, NULL, NULL, "setting up the connection", err);
}

static msv_result conn_open(pg *p, pg_conn *c, msv_error *err)
{
	if (pthread_mutex_init(&c->mu, NULL) != 0)
		return msv_error_set(err, MSV_E_SYSTEM, MSV_CLASS_LOCAL, "queue: cannot create a mutex");
	c->mu_ok = 1;
	/* connect_timeout first: a value in the URI overrides it. */
	const char *const keys[] = {"connect_timeout", "application_name", "dbname", NULL};
	const char *const vals[] = {"10", "missive", p->url, NULL};
	c->c = PQconnectdbParams(keys, vals, 1);
	if (!c->c)
		return msv__pg_nomem(err);
	if (PQstatus(c->c) != CONNECTION_OK) {
		/* Refused credentials, a missing role or database, a malformed
		 * URI: the configuration.  Anything else (refused, unreachable,
		 * timed out, shutting down) may pass: temporary. */
		const char *m = PQerrorMessage(c->c);
		int cfg = PQconnectionNeedsPassword(c->c) || strstr(m, "authentication") ||
		          strstr(m, "does not exist") || strstr(m, "pg_hba.conf") ||
		          strstr(m, "invalid") || strstr(m, "permission denied");
		return msv_error_set(err, cfg ? MSV_E_CONFIG : MSV_E_TIMEOUT,
		                     cfg ? MSV_CLASS_CONFIG : MSV_CLASS_LOCAL,
		                     "queue %s: cannot connect: %.*s", p->name, (int)strcspn(m, "\n"),
		                     m);
	}
	return conn_setup(p, c, err);
}

static void conn_close(pg_conn *c)
{
	if (c->c)
		PQfinish(c->c);
	c->c = NULL;
	if (c->mu_ok)
		pthread_mutex_destroy(&c->mu);
	c->mu_ok = 0;
}

msv_result msv__pg_lock(pg *p, pg_conn *c, msv_error *err)
{
	pthread_mutex_lock(&c->mu);
	if (PQstatus(c->c) == CONNECTION_OK)
		return MSV_OK;
	/* The server restarted or the network broke: one reconnection, and
	 * if it fails the caller retries later (a temporary error). */
	PQreset(c->c);
	if (PQstatus(c->c) != CONNECTION_OK) {
		msv_result r = msv__pg_fail(err, p, c->c, NULL, "reconnecting");
		pthread_mutex_unlock(&c->mu);
		return r;
	}
	msv_result r = conn_setup(p, c, err);
	if (r)
		pthread_mutex_unlock(&c->mu);
	return r;
}

void msv__pg_unlock(pg_conn *c)
{
	pthread_mutex_unlock(&c->mu);
}

static msv_result exec_full(pg *p, pg_conn *c, const char *sql, int n, const char *const *v,
                            const int *lens, const int *fmts, PGresult **res, size_t *changed,
                            const char *what, msv_error *err)
{
	if (res)
		*res = NULL;
	PGresult *x = n ? PQexecParams(c->c, sql, n, NULL, v, lens, fmts, 0) : PQexec(c->c, sql);
	ExecStatusType st = PQresultStatus(x);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		msv_result r = x ? msv__pg_fail(err, p, c->c, x, what) : msv__pg_nomem(err);
		PQclear(x);
		return r;
	}
	if (changed) {
		const char *t = PQcmdTuples(x);
		*changed = t && *t ? (size_t)strtoull(t, NULL, 10) : 0;
	}
	if (res)
		*res = x;
	else
		PQclear(x);
	return MSV_OK;
}

msv_result msv__pg_exec(pg *p, pg_conn *c, const char *sql, int n, const char *const *v,
                    PGresult **res, size_t *changed, const char *what, msv_error *err)
{
	return exec_full(p, c, sql, n, v, NULL, NULL, res, changed, what, err);
}

msv_result msv__pg_begin(pg *p, pg_conn *c, const char *what, msv_error *err)
{
	const char *sql = c == &p->r ? "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" : "BEGIN";
	return msv__pg_exec(p, c, sql, 0, NULL, NULL, NULL, what, err);
}

/* COMMIT when r is MSV_OK, else ROLLBACK; returns the first failure. */
msv_result msv__pg_end(pg *p, pg_conn *c, msv_result r, const char *what, msv_error *err)
{
	if (r) {
		PQclear(PQexec(c->c, "ROLLBACK"));
		return r;
	}
	r = msv__pg_exec(p, c, "COMMIT", 0, NULL, NULL, NULL, what, err);
	if (r)
		PQclear(PQexec(c->c, "ROLLBACK"));
	return r;
}

int msv__pg_dup(const PGresult *res, int row, int col, int keep_null, char **out)
{
	*out = NULL;
	if (PQgetisnull(res, row, col)) {
		if (keep_null)
			return 0;
		*out = msv_strdup("");
	} else {
		*out = msv_strdup(PQgetvalue(res, row, col));
	}
	return *out ? 0 : -1;
}

int64_t msv__pg_i64(const PGresult *res, int row, int col)
{
	if (PQgetisnull(res, row, col))
		return 0;
	return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

int msv__pg_bytea(const PGresult *res, int row, int col, char **out, size_t *len)
{
	size_t n = 0;
	unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(res, row, col), &n);
	*out = NULL;
	*len = 0;
	if (!raw)
		return -1;
	*out = msv_malloc(n + 1);
	if (*out) {
		if (n)
			memcpy(*out, raw, n);
		(*out)[n] = '\0';
		*len = n;
	}
	PQfreemem(raw);
	return *out ? 0 : -1;
}

/* ---- schema ---- */

/* The version in the database: 0 when it has no queue tables. */
static msv_result schema_version(pg *p, pg_conn *c, int *version, msv_error *err)
{
	PGresult *res;
	*version = 0;
	/* Two statements: a query naming a missing table fails to plan. */
	msv_result r = msv__pg_exec(p, c, "SELECT to_regclass('schema_version') IS NOT NULL", 0, NULL,
	                        &res, NULL, "reading the schema version", err);
	if (r)
		return r;
	int exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	if (!exists)
		return MSV_OK;
	if ((r = msv__pg_exec(p, c, "SELECT coalesce(max(version), 0) FROM schema_version", 0, NULL,
	                  &res, NULL, "reading the schema version", err)))
		return r;
	*version = (int)msv__pg_i64(res, 0, 0);
	PQclear(res);
	return MSV_OK;
}

static msv_result newer(const pg *p, int version, msv_error *err)
{
	return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
	                     "queue %s: written by a newer missive (schema %d; this one knows up to "
	                     "%d)",
	                     p->name, version, SCHEMA_VERSION);
}

/* Creates the tables (version 0) or applies the migrations from version
 * to SCHEMA_VERSION, in one transaction under an advisory lock, so two
 * processes doing it at once serialize and the second finds it done. */
static msv_result migrate_locked(pg *p, int *from, int create_only, msv_error *err)
{
	msv_result r;
	int version = 0;
	if ((r = msv__pg_begin(p, &p->w, "setting up the schema", err)))
		return r;
	if ((r = msv__pg_exec(p, &p->w, "SELECT pg_advisory_xact_lock(" PG_SCHEMA_LOCK ")", 0, NULL,
	                  NULL, NULL, "locking the schema", err)) ||
	    (r = schema_version(p, &p->w, &version, err)))
		goto end;
	*from = version;
	if (version > SCHEMA_VERSION) {
		r = newer(p, version, err);
		goto end;
	}
	if (version == 0) {
		char sql[64];
		snprintf(sql, sizeof(sql), "INSERT INTO schema_version VALUES (%d)", SCHEMA_VERSION);
		if ((r = msv__pg_exec(p, &p->w, schema_sql, 0, NULL, NULL, NULL, "creating the tables",
		                  err)) ||
		    (r = msv__pg_exec(p, &p->w, sql, 0, NULL, NULL, NULL, "marking the schema", err)))
			goto end;
	} else if (version < SCHEMA_VERSION && create_only) {
		r = msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
		                  "queue %s has schema %d, this missive needs %d: run `missive queue "
		                  "migrate` once (with every node stopped)",
		                  p->name, version, SCHEMA_VERSION);
	}
	/* Later versions: "if (version < 5) { ALTER ... }" here, then
	 * UPDATE schema_version. */
end:
	return msv__pg_end(p, &p->w, r, "setting up the schema", err);
}

/* ---- open and close ---- */

/* The URI for messages: a password in it is replaced by "***". */
static char *redact(const char *url)
{
	char *d = msv_strdup(url);
	if (!d)
		return NULL;
	char *s = strstr(d, "://");
	if (!s)
		return d;
	s += 3;
	char *at = strchr(s, '@'), *slash = strchr(s, '/');
	char *colon = strchr(s, ':');
	if (at && (!slash || at < slash) && colon && colon < at)
		memmove(colon + 1, "***", 3), memmove(colon + 4, at, strlen(at) + 1);
	return d;
}

static void pg_close(void *be)
{
	pg *p = be;
	if (!p)
		return;
	conn_close(&p->ln);
	conn_close(&p->r);
	conn_close(&p->w);
	if (p->n_ok) {
		pthread_cond_destroy(&p->ncv);
		pthread_mutex_destroy(&p->nmu);
	}
	msv_free(p->url);
	msv_free(p->name);
	msv_free(p);
}

static msv_result pg_new(pg **out, const msv_queue_options *o, msv_error *err)
{
	pg *p = msv_calloc(1, sizeof(*p));
	if (!p)
		return msv__pg_nomem(err);
	if (!(p->url = msv_strdup(o->path)) || !(p->name = redact(o->path))) {
		pg_close(p);
		return msv__pg_nomem(err);
	}
	if (pthread_mutex_init(&p->nmu, NULL) == 0) {
		if (pthread_cond_init(&p->ncv, NULL) == 0)
			p->n_ok = 1;
		else
			pthread_mutex_destroy(&p->nmu);
	}
	if (!p->n_ok) {
		pg_close(p);
		return msv_error_set(err, MSV_E_SYSTEM, MSV_CLASS_LOCAL, "queue: cannot create a mutex");
	}
	p->read_only = o->read_only != 0;
	p->lock_timeout_ms = o->busy_timeout_ms;
	*out = p;
	return MSV_OK;
}

static msv_result pg_open(void **out, const msv_queue_options *o, size_t *max_body,
                          msv_error *err)
{
	pg *p;
	msv_result r = pg_new(&p, o, err);
	if (r)
		return r;
	if (p->read_only) {
		int version;
		if ((r = conn_open(p, &p->r, err)) || (r = schema_version(p, &p->r, &version, err)))
			goto fail;
		if (version > SCHEMA_VERSION)
			r = newer(p, version, err);
		else if (version != SCHEMA_VERSION)
			r = msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
			                  version ? "queue %s has an older schema: run `missive queue "
			                            "migrate`"
			                          : "queue %s is empty: it has no queue tables yet",
			                  p->name);
		if (r)
			goto fail;
	} else {
		int from;
		if ((r = conn_open(p, &p->w, err)) || (r = migrate_locked(p, &from, 1, err)) ||
		    (r = conn_open(p, &p->r, err)))
			goto fail;
	}
	*max_body = PG_MAX_BODY;
	*out = p;
	return MSV_OK;
fail:
	pg_close(p);
	return r;
}

static msv_result pg_migrate(const msv_queue_options *o, int *from, int *to, msv_error *err)
{
	pg *p;
	msv_result r = pg_new(&p, o, err);
	if (r)
		return r;
	if (!(r = conn_open(p, &p->w, err)) && !(r = migrate_locked(p, from, 0, err)))
		*to = SCHEMA_VERSION;
	pg_close(p);
	return r;
}

/* ---- submission ---- */

/* The recipients as PostgreSQL array literals: {"a@x","b@y"} (quotes and
 * backslashes escaped) and {0,5}.  NULL when out of memory. */
static char *rcpt_arrays(const msv_queue_message *m, char **states)
{
	size_t need = 3, sneed = 3;
	for (size_t j = 0; j < m->nrcpt; j++) {
		need += 2 * strlen(m->rcpt[j]) + 3;
		sneed += 4;
	}
	char *a = msv_malloc(need), *st = msv_malloc(sneed), *p = a, *q = st;
	if (!a || !st) {
		msv_free(a);
		msv_free(st);
		return NULL;
	}
	*p++ = '{';
	*q++ = '{';
	for (size_t j = 0; j < m->nrcpt; j++) {
		if (j) {
			*p++ = ',';
			*q++ = ',';
		}
		*p++ = '"';
		for (const char *c = m->rcpt[j]; *c; c++) {
			if (*c == '"' || *c == '\\')
				*p++ = '\\';
			*p++ = *c;
		}
		*p++ = '"';
		*q++ = (char)('0' + (m->initial ? (int)m->initial[j] : MSV_RCPT_QUEUED));
	}
	*p++ = '}';
	*p = '\0';
	*q++ = '}';
	*q = '\0';
	*states = st;
	return a;
}

/* One message and its recipients in one statement (one round trip).
 * reuse: id holds an ID drawn before (a retried batch): try it first. */
static msv_result insert_message(pg *p, const msv_queue_message *m, int64_t now_ms,
                                 char id[MSV_QID_LEN + 1], msv__qid_fn qid_fn, void *qid_payload,
                                 int reuse, msv_error *err)
{
	msv_result r = MSV_OK;
	char now[24], size[24], b8[2] = {m->body_8bit ? '1' : '0', 0};
	char u8[2] = {m->smtputf8 ? '1' : '0', 0}, *states = NULL;
	char *addrs = rcpt_arrays(m, &states);
	if (!addrs)
		return msv__pg_nomem(err);
	for (int tries = 0;; tries++) {
		if (!(reuse && tries == 0) && (r = qid_fn(qid_payload, id, err)))
			break;
		/* As in sqlite.c: a DSN request without an ENVID keeps the ID. */
		const char *envid = m->envid;
		if (!envid && (m->dsn_notify || m->dsn_ret))
			envid = id;
		const char *v[15] = {id,         msv__pg_int(now, now_ms), m->sender, m->route,
		                     m->message_id, m->dsn_notify,         m->dsn_ret, envid,
		                     b8,         u8, msv__pg_int(size, (int64_t)m->len),
		                     m->len ? m->body : "", m->submitter, addrs, states};
		int lens[15] = {0}, fmts[15] = {0};
		lens[11] = (int)m->len;
		fmts[11] = 1; /* the body goes binary: no escaping, no text rules */
		size_t rows = 0;
		/* ON CONFLICT: a taken ID inserts nothing (no recipient either)
		 * instead of aborting the transaction, and is redrawn. */
		if ((r = exec_full(p, &p->w,
		                   "WITH m AS (INSERT INTO messages (qid, created_ms, sender, route,"
		                   " message_id, dsn_notify, dsn_ret, envid, body_8bit, smtputf8, size,"
		                   " body, submitter) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,"
		                   " $11, $12, $13) ON CONFLICT (qid) DO NOTHING RETURNING id)"
		                   " INSERT INTO recipients (msg, address, state, next_attempt_ms,"
		                   " updated_ms) SELECT m.id, r.a, r.s, $2, $2 FROM m,"
		                   " unnest($14::text[], $15::smallint[]) WITH ORDINALITY AS r(a, s, o)"
		                   " ORDER BY r.o",
		                   15, v, lens, fmts, NULL, &rows, "storing a message", err)))
			break;
		if (rows == m->nrcpt)
			break;
		if (tries + 1 >= QID_TRIES) {
			r = msv_error_set(err, MSV_E_SYSTEM, MSV_CLASS_LOCAL,
			                  "queue %s: storing a message failed: %d queue IDs in a row were "
			                  "taken (UNIQUE constraint on messages.qid)",
			                  p->name, QID_TRIES);
			break;
		}
	}
	msv_free(addrs);
	msv_free(states);
	return r;
}

/* The slow path: each request in its own savepoint, undone alone when
 * it fails.  Inside the open transaction; returns the transaction's own
 * failure. */
static msv_result submit_each(pg *p, msv__queue_req *list, const msv__queue_req *failed,
                              msv__qid_fn qid_fn, void *qid_payload, msv_error *err)
{
	msv_result r = MSV_OK;
	int reuse = 1; /* requests before the failed one keep their IDs */
	for (msv__queue_req *m = list; m && !r; m = m->next) {
		if (m == failed)
			reuse = 0;
		if ((r = msv__pg_exec(p, &p->w, "SAVEPOINT req", 0, NULL, NULL, NULL,
		                      "starting a submission", err)))
			break;
		msv_result mr = MSV_OK;
		for (size_t i = 0; i < m->n && !mr; i++)
			mr = insert_message(p, &m->msgs[i], m->now_ms, m->ids[i], qid_fn, qid_payload,
			                    reuse, &m->err);
		if (!mr) {
			r = msv__pg_exec(p, &p->w, "RELEASE req", 0, NULL, NULL, NULL, "submitting", err);
			continue;
		}
		m->result = mr;
		if (PQstatus(p->w.c) != CONNECTION_OK) {
			/* The connection went: the batch is lost for everyone. */
			*err = m->err;
			return mr;
		}
		r = msv__pg_exec(p, &p->w, "ROLLBACK TO req; RELEASE req", 0, NULL, NULL, NULL,
		                 "undoing a submission", err);
	}
	return r;
}

/*
 * The batch in one transaction.  Fast path: every message inserted
 * straight away, one round trip each.  Should one fail (a value the
 * server refuses, or no free queue ID), the transaction is rolled back and
 * the batch written again with a savepoint per request, so that only the
 * failing request fails (the contract of the submit op); the requests
 * before it keep the IDs they drew.  NOTIFY is sent at COMMIT.
 */
static msv_result pg_submit(void *be, msv__queue_req *list, msv__qid_fn qid_fn,
                            void *qid_payload, msv_error *err)
{
	pg *p = be;
	msv_result r;
	if ((r = msv__pg_lock(p, &p->w, err)))
		return r;
	if ((r = msv__pg_begin(p, &p->w, "starting a submission", err)))
		goto out;
	msv_result fr = MSV_OK;
	msv_error ferr;
	msv__queue_req *failed = NULL;
	for (msv__queue_req *m = list; m && !fr; m = m->next)
		for (size_t i = 0; i < m->n && !fr; i++)
			if ((fr = insert_message(p, &m->msgs[i], m->now_ms, m->ids[i], qid_fn,
			                         qid_payload, 0, &ferr)))
				failed = m;
	if (fr) {
		PQclear(PQexec(p->w.c, "ROLLBACK"));
		if (PQstatus(p->w.c) != CONNECTION_OK) {
			*err = ferr;
			r = fr;
			goto out;
		}
		if ((r = msv__pg_begin(p, &p->w, "starting a submission", err)))
			goto out;
		r = submit_each(p, list, failed, qid_fn, qid_payload, err);
	}
	/* Delivered at COMMIT, to every node LISTENing: idle workers wake. */
	if (!r)
		r = msv__pg_exec(p, &p->w, "NOTIFY " PG_CHANNEL, 0, NULL, NULL, NULL, "notifying", err);
	r = msv__pg_end(p, &p->w, r, "committing a submission", err);
out:
	msv__pg_unlock(&p->w);
	return r;
}

/* ---- claim ---- */


/* Row i of a message query (qid, created_ms, sender, route, message_id,
 * dsn_notify, dsn_ret, envid, body_8bit, smtputf8, body, submitter from
 * column 1) into job j. */
static int fill_job(const PGresult *res, int i, msv_queue_job *j)
{
	if (strlen(PQgetvalue(res, i, 1)) != MSV_QID_LEN)
		return -1;
	memcpy(j->qid, PQgetvalue(res, i, 1), MSV_QID_LEN + 1);
	j->created_ms = msv__pg_i64(res, i, 2);
	j->body_8bit = (int)msv__pg_i64(res, i, 9);
	j->smtputf8 = (int)msv__pg_i64(res, i, 10);
	return msv__pg_dup(res, i, 3, 0, &j->sender) || msv__pg_dup(res, i, 4, 1, &j->route) ||
	       msv__pg_dup(res, i, 5, 1, &j->message_id) ||
	       msv__pg_dup(res, i, 6, 1, &j->dsn_notify) || msv__pg_dup(res, i, 7, 1, &j->dsn_ret) ||
	       msv__pg_dup(res, i, 8, 1, &j->envid) ||
	       msv__pg_bytea(res, i, 11, &j->body, &j->len) ||
	       msv__pg_dup(res, i, 12, 1, &j->submitter);
}

/* The messages of the n jobs (row ids msgs[]) in one query, inside the
 * claim's transaction: a message cannot be purged between lease and load. */
static msv_result load_jobs(pg *p, msv_queue_job *jobs, const int64_t *msgs, size_t n,
                            msv_error *err)
{
	size_t cap = n * 21 + 3, len = 1;
	char *arr = msv_malloc(cap);
	if (!arr)
		return msv__pg_nomem(err);
	arr[0] = '{';
	for (size_t g = 0; g < n; g++)
		len += (size_t)snprintf(arr + len, cap - len, "%s%lld", g ? "," : "",
		                        (long long)msgs[g]);
	snprintf(arr + len, cap - len, "}");
	const char *v[1] = {arr};
	PGresult *res;
	msv_result r = msv__pg_exec(p, &p->w,
	                            "SELECT id, qid, created_ms, sender, route, message_id, dsn_notify,"
	                            " dsn_ret, envid, body_8bit, smtputf8, body, submitter"
	                            " FROM messages WHERE id = ANY($1::bigint[])",
	                            1, v, &res, NULL, "loading messages", err);
	msv_free(arr);
	if (r)
		return r;
	size_t found = 0;
	for (int i = 0; i < PQntuples(res) && !r; i++) {
		int64_t id = msv__pg_i64(res, i, 0);
		for (size_t g = 0; g < n; g++)
			if (msgs[g] == id && !jobs[g].qid[0]) {
				if (fill_job(res, i, &jobs[g]))
					r = msv__pg_nomem(err);
				found++;
				break;
			}
	}
	PQclear(res);
	if (!r && found != n)
		r = msv_error_set(err, MSV_E_SYSTEM, MSV_CLASS_LOCAL,
		                  "queue %s: a claimed recipient has no message", p->name);
	return r;
}

/* The leased rows as jobs (msv__queue_claims_to_jobs), their messages
 * loaded in the claim's transaction. */
static msv_result make_jobs(pg *p, msv__claimed *rows, size_t nrows, msv_queue_job **out,
                            size_t *nout, msv_error *err)
{
	msv_queue_job *jobs;
	int64_t *msgs;
	size_t n;
	if (msv__queue_claims_to_jobs(rows, nrows, &jobs, &msgs, &n))
		return msv__pg_nomem(err);
	msv_result r = load_jobs(p, jobs, msgs, n, err);
	msv_free(msgs);
	if (r) {
		msv_queue_jobs_free(jobs, n);
		return r;
	}
	*out = jobs;
	*nout = n;
	return MSV_OK;
}

static msv_result pg_claim(void *be, const char *owner, int64_t now_ms, int64_t expiry_ms,
                           size_t max_rcpt, msv_queue_job **jobs, size_t *njobs, msv_error *err)
{
	pg *p = be;
	msv_result r;
	PGresult *res = NULL;
	msv__claimed *rows = NULL;
	size_t nrows = 0;
	char b1[24], b2[24], b3[24];
	const char *v[4] = {owner, msv__pg_int(b1, expiry_ms), msv__pg_int(b2, now_ms),
	                    msv__pg_int(b3, max_rcpt > (size_t)INT64_MAX ? INT64_MAX : (int64_t)max_rcpt)};
	if ((r = msv__pg_lock(p, &p->w, err)))
		return r;
	if ((r = msv__pg_begin(p, &p->w, "claiming recipients", err)))
		goto out;
	/* SKIP LOCKED: rows another node is claiming right now are passed
	 * over, not waited for; FOR UPDATE re-checks the condition on the
	 * newest row version, so a row leased meanwhile is not taken twice.
	 * The epoch goes up by one at every claim (fencing). */
	r = msv__pg_exec(p, &p->w,
	             "WITH due AS (SELECT id FROM recipients"
	             "  WHERE state IN (0, 1) AND next_attempt_ms <= $3 AND lease_expiry_ms <= $3"
	             "  ORDER BY next_attempt_ms LIMIT $4 FOR UPDATE SKIP LOCKED)"
	             " UPDATE recipients r SET lease_owner = $1, lease_expiry_ms = $2,"
	             " lease_epoch = r.lease_epoch + 1 FROM due WHERE r.id = due.id"
	             " RETURNING r.id, r.msg, r.address, r.attempts, r.next_attempt_ms, r.lease_epoch",
	             4, v, &res, NULL, "claiming recipients", err);
	if (!r && (nrows = (size_t)PQntuples(res)) > 0) {
		if (!(rows = msv_calloc(nrows, sizeof(*rows))))
			r = msv__pg_nomem(err);
		for (size_t i = 0; i < nrows && !r; i++) {
			msv__claimed *c = &rows[i];
			c->id = msv__pg_i64(res, (int)i, 0);
			c->msg = msv__pg_i64(res, (int)i, 1);
			c->attempts = (unsigned)msv__pg_i64(res, (int)i, 3);
			c->next = msv__pg_i64(res, (int)i, 4);
			c->epoch = (uint64_t)msv__pg_i64(res, (int)i, 5);
			if (msv__pg_dup(res, (int)i, 2, 0, &c->address))
				r = msv__pg_nomem(err);
		}
		if (!r)
			r = make_jobs(p, rows, nrows, jobs, njobs, err);
	}
	PQclear(res);
	r = msv__pg_end(p, &p->w, r, "claiming recipients", err);
	if (r && *jobs) {
		msv_queue_jobs_free(*jobs, *njobs);
		*jobs = NULL;
		*njobs = 0;
	}
out:
	msv__pg_unlock(&p->w);
	for (size_t i = 0; i < nrows && rows; i++)
		msv_free(rows[i].address);
	msv_free(rows);
	return r;
}

/* ---- outcomes and leases ---- */

/* One outcome in the open transaction; *refused += 1 when fencing kept it
 * out (the recipient exists but was claimed again since). */
/* One outcome in the open transaction, one round trip: the recipient's
 * row and, when attempted, its history row.  *refused += 1 when fencing
 * kept it out (the recipient exists but was claimed again since). */
static msv_result record_one(pg *p, const msv_queue_outcome *x, int64_t now_ms, size_t *refused,
                             msv_error *err)
{
	msv_result r;
	char id[24], st[8], att[2] = {x->attempted ? '1' : '0', 0}, next[24], code[16], now[24];
	char ep[24], at[24], lat[24];
	snprintf(st, sizeof(st), "%d", (int)x->state);
	snprintf(code, sizeof(code), "%d", x->reply_code);
	const char *v[12] = {msv__pg_int(id, x->rcpt_id), st, att,
	                     msv__pg_int(next, x->next_attempt_ms), code,
	                     x->enhanced ? x->enhanced : "", x->text ? x->text : "",
	                     msv__pg_int(now, now_ms),
	                     msv__pg_int(ep, x->epoch > INT64_MAX ? -1 : (int64_t)x->epoch),
	                     msv__pg_int(at, x->at_ms), msv__pg_int(lat, x->latency_ms), x->server};
	PGresult *res;
	if ((r = msv__pg_exec(p, &p->w,
	                      "WITH u AS (UPDATE recipients SET state = $2::smallint,"
	                      " attempts = attempts + $3::int,"
	                      " next_attempt_ms = CASE WHEN $2::smallint = 1 THEN $4::bigint"
	                      " ELSE next_attempt_ms END, last_code = $5::int, last_enhanced = $6,"
	                      " last_text = $7, updated_ms = $8, lease_owner = NULL,"
	                      " lease_expiry_ms = 0"
	                      " WHERE id = $1 AND ($9::bigint = 0 OR lease_epoch = $9::bigint)"
	                      " RETURNING id),"
	                      " a AS (INSERT INTO attempts (rcpt, at_ms, latency_ms, server,"
	                      " reply_code, enhanced, text) SELECT u.id, $10, $11, $12, $5::int, $6,"
	                      " $7 FROM u WHERE $3::int = 1)"
	                      " SELECT (SELECT count(*) FROM u),"
	                      " (SELECT count(*) FROM recipients WHERE id = $1)",
	                      12, v, &res, NULL, "recording an outcome", err)))
		return r;
	/* Not updated: purged while leased (dropped), or claimed again since
	 * (refused; the second count sees the row, the first did not). */
	if (msv__pg_i64(res, 0, 0) == 0 && x->epoch && msv__pg_i64(res, 0, 1) > 0)
		(*refused)++;
	PQclear(res);
	return MSV_OK;
}

static msv_result pg_record(void *be, const msv_queue_outcome *o, size_t n,
                            const msv_queue_reputation *rep, size_t nrep, int64_t now_ms,
                            size_t *refused, msv_error *err)
{
	pg *p = be;
	msv_result r;
	size_t nref = 0;
	if ((r = msv__pg_lock(p, &p->w, err)))
		return r;
	if (!(r = msv__pg_begin(p, &p->w, "recording outcomes", err))) {
		for (size_t i = 0; i < n && !r; i++)
			r = record_one(p, &o[i], now_ms, &nref, err);
		if (!r && nrep)
			r = msv__pg_rep_put_rows(p, rep, nrep, err);
		r = msv__pg_end(p, &p->w, r, "recording outcomes", err);
	}
	msv__pg_unlock(&p->w);
	if (!r)
		*refused = nref;
	return r;
}

/* One statement in its own transaction on w; *changed the rows it hit. */
static msv_result write_one(pg *p, const char *sql, int n, const char *const *v,
                            size_t *changed, const char *what, msv_error *err)
{
	msv_result r = msv__pg_lock(p, &p->w, err);
	if (r)
		return r;
	r = msv__pg_exec(p, &p->w, sql, n, v, NULL, changed, what, err);
	msv__pg_unlock(&p->w);
	return r;
}

static msv_result pg_release(void *be, const char *owner, size_t *released, msv_error *err)
{
	const char *v[1] = {owner};
	return write_one(be,
	                 "UPDATE recipients SET lease_owner = NULL, lease_expiry_ms = 0"
	                 " WHERE lease_owner = $1",
	                 1, v, released, "releasing leases", err);
}

static msv_result pg_renew(void *be, const char *owner, int64_t until_ms, size_t *renewed,
                           msv_error *err)
{
	char b[24];
	const char *v[2] = {owner, msv__pg_int(b, until_ms)};
	return write_one(be, "UPDATE recipients SET lease_expiry_ms = $2 WHERE lease_owner = $1", 2,
	                 v, renewed, "renewing leases", err);
}

/* A read on r: the result of one query. */
static msv_result read_one(pg *p, const char *sql, int n, const char *const *v, PGresult **res,
                           const char *what, msv_error *err)
{
	msv_result r = msv__pg_lock(p, &p->r, err);
	if (r)
		return r;
	r = msv__pg_exec(p, &p->r, sql, n, v, res, NULL, what, err);
	msv__pg_unlock(&p->r);
	return r;
}

static msv_result pg_lease_owners(void *be, char ***owners, size_t *n, msv_error *err)
{
	PGresult *res;
	msv_result r = read_one(be,
	                        "SELECT DISTINCT lease_owner FROM recipients"
	                        " WHERE lease_owner IS NOT NULL ORDER BY lease_owner",
	                        0, NULL, &res, "listing lease owners", err);
	if (r)
		return r;
	size_t nv = (size_t)PQntuples(res);
	char **v = nv ? msv_calloc(nv, sizeof(*v)) : NULL;
	if (nv && !v)
		r = msv__pg_nomem(err);
	for (size_t i = 0; i < nv && !r; i++)
		if (msv__pg_dup(res, (int)i, 0, 0, &v[i]))
			r = msv__pg_nomem(err);
	PQclear(res);
	if (r) {
		msv_queue_strings_free(v, nv);
		return r;
	}
	*owners = v;
	*n = nv;
	return MSV_OK;
}

/* The earliest time a claim can find work (see sq_next_due): per pending
 * recipient the later of its due time and its lease expiry. */
static msv_result pg_next_due(void *be, int64_t *when_ms, msv_error *err)
{
	PGresult *res;
	msv_result r = read_one(be,
	                        "SELECT min(greatest(next_attempt_ms, lease_expiry_ms))"
	                        " FROM recipients WHERE state IN (0, 1)",
	                        0, NULL, &res, "finding the next due time", err);
	if (r)
		return r;
	*when_ms = PQgetisnull(res, 0, 0) ? -1 : msv__pg_i64(res, 0, 0);
	PQclear(res);
	return MSV_OK;
}

static msv_result pg_probe_write(void *be, msv_error *err)
{
	/* A real row write and a commit that waits for the WAL flush. */
	return write_one(be, "UPDATE schema_version SET version = version", 0, NULL, NULL,
	                 "probing a write", err);
}

/* ---- LISTEN / NOTIFY ---- */

/* Polls the LISTEN connection up to ms; 1 when a notification came (or
 * the connection had to be remade: one may have been missed). */
static int poll_ln(pg *p, int ms)
{
	if (!p->ln.c) {
		msv_error e;
		if (conn_open(p, &p->ln, &e) ||
		    msv__pg_exec(p, &p->ln, "LISTEN " PG_CHANNEL, 0, NULL, NULL, NULL, "listening", &e)) {
			conn_close(&p->ln);
			struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
			nanosleep(&ts, NULL);
			return 0;
		}
	}
	if (PQstatus(p->ln.c) != CONNECTION_OK) {
		conn_close(&p->ln); /* remade (and LISTENing again) next time */
		return 1;
	}
	int got = 0;
	PGnotify *nt;
	PQconsumeInput(p->ln.c);
	while ((nt = PQnotifies(p->ln.c))) {
		got = 1;
		PQfreemem(nt);
	}
	if (got)
		return 1;
	struct pollfd pfd = {.fd = PQsocket(p->ln.c), .events = POLLIN};
	if (poll(&pfd, 1, ms) > 0) {
		if (!PQconsumeInput(p->ln.c)) {
			conn_close(&p->ln);
			return 1;
		}
		while ((nt = PQnotifies(p->ln.c))) {
			got = 1;
			PQfreemem(nt);
		}
	}
	return got;
}

/*
 * Several workers may wait at once: one of them polls the connection, the
 * others wait on a condition variable for the notification counter to
 * move.  Every waiter whose wait began before a notification sees it.
 */
static msv_result pg_wait_notify(void *be, int timeout_ms, int *woken, msv_error *err)
{
	pg *p = be;
	(void)err;
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	int64_t end_ms = (int64_t)dl.tv_sec * 1000 + dl.tv_nsec / 1000000 + timeout_ms;
	pthread_mutex_lock(&p->nmu);
	uint64_t seq = p->notify_seq;
	for (;;) {
		if (p->notify_seq != seq)
			break;
		clock_gettime(CLOCK_REALTIME, &dl);
		int64_t now = (int64_t)dl.tv_sec * 1000 + dl.tv_nsec / 1000000;
		if (now >= end_ms)
			break;
		if (!p->polling) {
			p->polling = 1;
			/* polling makes this thread the only one on ln. */
			pthread_mutex_unlock(&p->nmu);
			int got = poll_ln(p, (int)(end_ms - now));
			pthread_mutex_lock(&p->nmu);
			p->polling = 0;
			if (got)
				p->notify_seq++;
			pthread_cond_broadcast(&p->ncv);
			continue;
		}
		struct timespec ts = {(time_t)(end_ms / 1000), (long)(end_ms % 1000) * 1000000L};
		if (pthread_cond_timedwait(&p->ncv, &p->nmu, &ts) == ETIMEDOUT)
			break;
	}
	*woken = p->notify_seq != seq;
	pthread_mutex_unlock(&p->nmu);
	return MSV_OK;
}

const msv__queue_ops msv__queue_pg_ops = {
	.name = "postgresql",
	.open = pg_open,
	.close = pg_close,
	.migrate = pg_migrate,
	.submit = pg_submit,
	.claim = pg_claim,
	.record = pg_record,
	.release = pg_release,
	.renew = pg_renew,
	.lease_owners = pg_lease_owners,
	.next_due = pg_next_due,
	.show = msv__pg_show,
	.list = msv__pg_list,
	.retry = msv__pg_retry,
	.requeue = msv__pg_requeue,
	.purge = msv__pg_purge,
	.stats = msv__pg_stats,
	.mark_bounced = msv__pg_mark_bounced,
	.find_message_id = msv__pg_find_message_id,
	.suppress_add = msv__pg_suppress_add,
	.suppress_rm = msv__pg_suppress_rm,
	.suppress_check = msv__pg_suppress_check,
	.suppress_list = msv__pg_suppress_list,
	.probe_write = pg_probe_write,
	.key_add = msv__pg_key_add,
	.key_rotate = msv__pg_key_rotate,
	.key_rm = msv__pg_key_rm,
	.key_list = msv__pg_key_list,
	.reputation_put = msv__pg_reputation_put,
	.reputation_list = msv__pg_reputation_list,
	.reputation_override = msv__pg_reputation_override,
	.reputation_take_overrides = msv__pg_reputation_take_overrides,
	.postpone = msv__pg_postpone,
	.route_state_put = msv__pg_route_state_put,
	.route_state_list = msv__pg_route_state_list,
	.wait_notify = pg_wait_notify,
	.qids = msv__pg_qids,
	.dump = msv__pg_dump,
	.import = msv__pg_import,
};
