/*
 * The SQLite queue backend (ops table in queue_int.h, design and schema in
 * docs/internals/queue.md).
 *
 * Two connections per handle, each behind its own mutex:
 *   w  every write transaction (submission batches, claims, outcomes,
 *      operator changes), always BEGIN IMMEDIATE so that a writer waits
 *      for another process's lock through the busy handler instead of
 *      failing on a stale snapshot;
 *   r  reads (show, list, stats, ...), opened SQLITE_OPEN_READONLY, so a
 *      slow `queue ls` never holds up delivery: WAL readers do not block
 *      the writer.
 * A read-only handle opens only r.
 *
 * Durability: WAL with synchronous=FULL fsyncs the log at every commit,
 * so a transaction that returned from COMMIT survives a power cut.  That
 * is what "accepted" means (DESIGN.md, "The queue is the source of truth").
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "queue/queue_int.h"

/* The file format.  user_version is the schema version: a later missive
 * migrates older files forward in sq_migrate(); an older missive refuses a
 * newer file instead of misreading it.  application_id marks the file as a
 * missive queue ("MSVQ") so that pointing the queue at some other SQLite
 * database fails clearly instead of adding tables to it. */
#define SCHEMA_VERSION MSV_QUEUE_SCHEMA_VERSION
#define APPLICATION_ID 0x4d535651

/* Room left in SQLite's row size limit for the columns beside the body. */
#define ROW_OVERHEAD (64 * 1024)

/* How many fresh queue IDs to try when one is taken.  With 64 random bits
 * a single collision is already a once-in-a-lifetime event; sixteen in a
 * row means the ID source is broken. */
#define QID_TRIES 16

_Static_assert(MSV_RCPT_QUEUED == 0 && MSV_RCPT_DEFERRED == 1 && MSV_RCPT_SENT == 2 &&
                   MSV_RCPT_BOUNCED == 3 && MSV_RCPT_DEAD == 4 && MSV_RCPT_SUPPRESSED == 5,
               "the schema stores recipient states as these numbers");

/* Recipients are the queue's handles (msv_queue_rcpt.id): AUTOINCREMENT
 * keeps an id from ever being reused, so an outcome recorded late for a
 * purged recipient cannot land on a new one.  Leases: lease_expiry_ms is
 * 0 when no lease was taken, which lets the claim filter read it from the
 * index.  The partial index holds only pending recipients, in due order,
 * so a claim walks it from the oldest due entry and stops after max_rcpt
 * matches however many sent or bounced rows the table holds. */
static const char schema_sql[] =
	"CREATE TABLE messages ("
	" id INTEGER PRIMARY KEY,"
	" qid TEXT NOT NULL UNIQUE,"
	" created_ms INTEGER NOT NULL,"
	" sender TEXT NOT NULL,"
	" route TEXT,"
	" message_id TEXT,"
	" dsn_notify TEXT,"
	" dsn_ret TEXT,"
	" envid TEXT,"
	" body_8bit INTEGER NOT NULL DEFAULT 0,"
	" smtputf8 INTEGER NOT NULL DEFAULT 0,"
	" size INTEGER NOT NULL,"
	" submitter TEXT," /* schema 3; a migrated file has it after body */
	" body BLOB NOT NULL);" /* last: reading the other columns skips its pages */
	"CREATE INDEX messages_created ON messages(created_ms);"
	"CREATE INDEX messages_mid ON messages(message_id);" /* bounces matched by Message-ID */
	"CREATE TABLE recipients ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" msg INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,"
	" address TEXT NOT NULL,"
	" state INTEGER NOT NULL CHECK (state BETWEEN 0 AND 5),"
	" attempts INTEGER NOT NULL DEFAULT 0,"
	" next_attempt_ms INTEGER NOT NULL,"
	" updated_ms INTEGER NOT NULL,"
	" last_code INTEGER NOT NULL DEFAULT 0,"
	" last_enhanced TEXT NOT NULL DEFAULT '',"
	" last_text TEXT NOT NULL DEFAULT '',"
	" lease_owner TEXT,"
	" lease_expiry_ms INTEGER NOT NULL DEFAULT 0,"
	" lease_epoch INTEGER NOT NULL DEFAULT 0);" /* schema 4: claims so far (fencing) */
	"CREATE INDEX recipients_msg ON recipients(msg);"
	"CREATE INDEX recipients_due ON recipients(next_attempt_ms, lease_expiry_ms)"
	" WHERE state IN (0, 1);"
	"CREATE INDEX recipients_lease ON recipients(lease_owner) WHERE lease_owner IS NOT NULL;"
	"CREATE TABLE attempts ("
	" id INTEGER PRIMARY KEY,"
	" rcpt INTEGER NOT NULL REFERENCES recipients(id) ON DELETE CASCADE,"
	" at_ms INTEGER NOT NULL,"
	" latency_ms INTEGER NOT NULL,"
	" server TEXT,"
	" reply_code INTEGER NOT NULL,"
	" enhanced TEXT NOT NULL,"
	" text TEXT NOT NULL);"
	"CREATE INDEX attempts_rcpt ON attempts(rcpt);"
	"CREATE TABLE suppression ("
	" address TEXT PRIMARY KEY," /* lowercased by the front */
	" reason TEXT NOT NULL,"
	" source TEXT NOT NULL,"
	" created_ms INTEGER NOT NULL) WITHOUT ROWID;";

/* Schema 3: the gateway's API keys and submitters' reputation, created in
 * new files and added to older ones.  Only a secret's SHA-256 is kept:
 * the file (and its backups) never holds a usable credential.  Overrides
 * wait in their own table until missived takes them, so an operator's
 * change is not lost to the daemon writing its in-memory scores back. */
static const char schema3_sql[] =
	"CREATE TABLE api_keys ("
	" name TEXT PRIMARY KEY,"
	" hash BLOB NOT NULL CHECK (length(hash) = 32),"
	" sender_domains TEXT NOT NULL DEFAULT '',"
	" rate REAL NOT NULL DEFAULT 0,"
	" burst INTEGER NOT NULL DEFAULT 0,"
	" created_ms INTEGER NOT NULL,"
	" rotated_ms INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
	"CREATE TABLE reputation ("
	" identity TEXT PRIMARY KEY,"
	" score REAL NOT NULL CHECK (score BETWEEN 0 AND 100),"
	" stamp_ms INTEGER NOT NULL,"
	" rejections INTEGER NOT NULL DEFAULT 0,"
	" open_until_ms INTEGER NOT NULL DEFAULT 0,"
	" changed_ms INTEGER NOT NULL,"
	" why TEXT NOT NULL DEFAULT '') WITHOUT ROWID;"
	"CREATE TABLE reputation_overrides ("
	" identity TEXT PRIMARY KEY,"
	" score REAL NOT NULL CHECK (score BETWEEN 0 AND 100),"
	" at_ms INTEGER NOT NULL) WITHOUT ROWID;"
	/* Each route's circuit breaker as missived last wrote it, for `missive
	 * queue stats`; the breaker itself lives in the daemon's memory. */
	"CREATE TABLE route_state ("
	" route TEXT PRIMARY KEY,"
	" circuit TEXT NOT NULL,"
	" open_until_ms INTEGER NOT NULL DEFAULT 0,"
	" trips INTEGER NOT NULL DEFAULT 0,"
	" changed_ms INTEGER NOT NULL) WITHOUT ROWID;";

/* ---- hot statements, prepared once on the write connection ---- */

#define SQL_INS_MSG                                                                         \
	"INSERT INTO messages (qid, created_ms, sender, route, message_id, dsn_notify, dsn_ret," \
	" envid, body_8bit, smtputf8, size, body, submitter)"                                   \
	" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
#define SQL_INS_RCPT                                                                        \
	"INSERT INTO recipients (msg, address, state, next_attempt_ms, updated_ms)"             \
	" VALUES (?1, ?2, ?3, ?4, ?4)"
/* The subquery walks recipients_due (pending only) in due order and reads
 * lease_expiry_ms from the index; RETURNING hands back what was leased. */
#define SQL_CLAIM                                                                           \
	"UPDATE recipients SET lease_owner = ?1, lease_expiry_ms = ?2,"                         \
	" lease_epoch = lease_epoch + 1"                                                        \
	" WHERE id IN (SELECT id FROM recipients"                                               \
	"  WHERE state IN (0, 1) AND next_attempt_ms <= ?3 AND lease_expiry_ms <= ?3"           \
	"  ORDER BY next_attempt_ms LIMIT ?4)"                                                   \
	" RETURNING id, msg, address, attempts, next_attempt_ms, lease_epoch"
#define SQL_LOAD_MSG                                                                        \
	"SELECT qid, created_ms, sender, route, message_id, dsn_notify, dsn_ret, envid,"        \
	" body_8bit, smtputf8, body, submitter FROM messages WHERE id = ?1"
/* ?2 = 1 is MSV_RCPT_DEFERRED: only a deferral moves the schedule.  ?9
 * is the outcome's epoch (0: unfenced): a recipient claimed again since
 * has a higher lease_epoch and keeps its row. */
#define SQL_RECORD                                                                          \
	"UPDATE recipients SET state = ?2, attempts = attempts + ?3,"                           \
	" next_attempt_ms = CASE WHEN ?2 = 1 THEN ?4 ELSE next_attempt_ms END,"                 \
	" last_code = ?5, last_enhanced = ?6, last_text = ?7, updated_ms = ?8,"                 \
	" lease_owner = NULL, lease_expiry_ms = 0 WHERE id = ?1"                                \
	" AND (?9 = 0 OR lease_epoch = ?9)"
#define SQL_INS_ATTEMPT                                                                     \
	"INSERT INTO attempts (rcpt, at_ms, latency_ms, server, reply_code, enhanced, text)"    \
	" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"

typedef struct sq_conn {
	sqlite3 *db;
	pthread_mutex_t mu; /* one thread at a time on db, errmsg included */
	int mu_ok;
	int busy_timeout_ms;
	int64_t busy_since; /* start of the current wait for a lock (busy_cb) */
} sq_conn;

typedef struct sq {
	char *path;
	int read_only;
	sq_conn w, r;
	sqlite3_stmt *ins_msg, *ins_rcpt, *claim, *load_msg, *record, *ins_attempt;
	sqlite3_stmt *sup_check; /* on r, prepared at its first use (every submission checks) */
	int64_t found_version;   /* the schema version the open found (migrate reports it) */
} sq;

/* ---- errors ---- */

/* Maps an SQLite result to ours.  BUSY after the whole busy timeout is a
 * temporary local condition (EX_TEMPFAIL: the caller retries later); a
 * file that is unreadable, read-only, corrupt or not a database is a
 * configuration problem an operator must fix. */
static msv_result sq_fail(msv_error *err, const sq *s, sqlite3 *db, int rc, const char *what)
{
	msv_result code = MSV_E_SYSTEM;
	msv_class cls = MSV_CLASS_LOCAL;
	const char *hint = "";
	int prim = rc & 0xff, sys = db ? sqlite3_system_errno(db) : 0;
	/* Not a configuration error but this user's: the same file works for
	 * the daemon's user (sendmail maps it to 73, "cannot create"). */
	if (prim == SQLITE_READONLY || prim == SQLITE_PERM ||
	    (prim == SQLITE_CANTOPEN && (sys == EACCES || sys == EPERM || sys == EROFS))) {
		prim = SQLITE_OK;
		hint = " (permission denied: writing the queue needs write access to the file "
		       "and its directory)";
	}
	switch (prim) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		code = MSV_E_TIMEOUT;
		hint = " (another process held the queue longer than the busy timeout)";
		break;
	case SQLITE_NOMEM:
		code = MSV_E_NOMEM;
		break;
	case SQLITE_TOOBIG:
		code = MSV_E_TOO_LARGE;
		break;
	case SQLITE_CANTOPEN:
	case SQLITE_NOTADB:
	case SQLITE_CORRUPT:
	case SQLITE_AUTH:
		code = MSV_E_CONFIG;
		cls = MSV_CLASS_CONFIG;
		break;
	default:
		break;
	}
	const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
	return msv_error_set(err, code, cls, "queue %s: %s failed: %s%s", s->path, what, msg, hint);
}

static msv_result nomem(msv_error *err)
{
	return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
}

static msv_result no_such_message(msv_error *err, const char *qid)
{
	return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE, "no such message %s", qid);
}

/* ---- connections ---- */

/*
 * Busy handler: SQLite's own (sqlite3_busy_timeout) sleeps 1, 2, 5, ...
 * up to 100 ms between tries, so a writer waiting behind another process's
 * short commit often sleeps far longer than the lock was held.  Ours backs
 * off from 100 us to at most 10 ms and gives up after the configured
 * timeout measured on the monotonic clock.  Only the thread holding the
 * connection's mutex runs it, so busy_since needs no lock.
 */
static int busy_cb(void *arg, int count)
{
	sq_conn *c = arg;
	int64_t now = msv_now_ms();
	if (count == 0)
		c->busy_since = now;
	if (now - c->busy_since >= c->busy_timeout_ms)
		return 0;
	long us = count < 7 ? 100L << count : 10000L;
	struct timespec ts = {0, us * 1000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
	return 1;
}

static msv_result exec(sq *s, sq_conn *c, const char *sql, const char *what, msv_error *err)
{
	int rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return sq_fail(err, s, c->db, rc, what);
	return MSV_OK;
}

/* Runs a one-row pragma and returns its integer (or -1 on failure). */
static msv_result pragma_int(sq *s, sq_conn *c, const char *sql, int64_t *out, msv_error *err)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return sq_fail(err, s, c->db, rc, "reading the file format");
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		msv_result r = sq_fail(err, s, c->db, rc, "reading the file format");
		sqlite3_finalize(st);
		return r;
	}
	*out = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return MSV_OK;
}

static msv_result conn_open(sq *s, sq_conn *c, int flags, int busy_ms, msv_error *err)
{
	if (pthread_mutex_init(&c->mu, NULL) != 0)
		return msv_error_set(err, MSV_E_SYSTEM, MSV_CLASS_LOCAL, "queue: cannot create a mutex");
	c->mu_ok = 1;
	c->busy_timeout_ms = busy_ms;
	/* FULLMUTEX on top of our own mutex: cheap next to an fsync, and a
	 * locking slip of ours can then never corrupt the connection. */
	/* NOFOLLOW: the file was checked not to be a symlink (create_file());
	 * this closes the window in which one could be swapped in. */
	int rc = sqlite3_open_v2(s->path, &c->db,
	                         flags | SQLITE_OPEN_FULLMUTEX | SQLITE_OPEN_EXRESCODE |
	                             SQLITE_OPEN_NOFOLLOW,
	                         NULL);
	if (rc != SQLITE_OK) {
		msv_result r = sq_fail(err, s, c->db, rc, "opening the database");
		sqlite3_close(c->db);
		c->db = NULL;
		return r;
	}
	sqlite3_busy_handler(c->db, busy_cb, c);
	/* The file may come from anywhere: no schema-borne SQL functions, no
	 * writes to sqlite_schema. */
	sqlite3_db_config(c->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	sqlite3_db_config(c->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
	return exec(s, c, "PRAGMA foreign_keys = ON", "enabling foreign keys", err);
}

static void conn_close(sq_conn *c)
{
	if (c->db)
		sqlite3_close(c->db);
	c->db = NULL;
	if (c->mu_ok)
		pthread_mutex_destroy(&c->mu);
	c->mu_ok = 0;
}

/* ---- transactions ---- */

static void rollback(sq_conn *c)
{
	/* An I/O error, SQLITE_FULL or an interrupted statement may already
	 * have rolled the transaction back; ROLLBACK then has nothing to do. */
	if (!sqlite3_get_autocommit(c->db))
		sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
}

static msv_result begin_write(sq *s, const char *what, msv_error *err)
{
	return exec(s, &s->w, "BEGIN IMMEDIATE", what, err);
}

static msv_result commit(sq *s, sq_conn *c, const char *what, msv_error *err)
{
	msv_result r = exec(s, c, "COMMIT", what, err);
	if (r)
		rollback(c);
	return r;
}

static msv_result prepare(sq *s, sq_conn *c, const char *sql, sqlite3_stmt **st, msv_error *err)
{
	int rc = sqlite3_prepare_v2(c->db, sql, -1, st, NULL);
	if (rc != SQLITE_OK)
		return sq_fail(err, s, c->db, rc, "preparing a query");
	return MSV_OK;
}

/* Steps a statement that returns no rows, then resets it. */
static msv_result step_done(sq *s, sq_conn *c, sqlite3_stmt *st, const char *what,
                            msv_error *err)
{
	int rc = sqlite3_step(st);
	msv_result r = MSV_OK;
	if (rc != SQLITE_DONE)
		r = sq_fail(err, s, c->db, rc, what);
	sqlite3_reset(st);
	return r;
}

static void bind_str(sqlite3_stmt *st, int i, const char *v)
{
	/* NULL binds SQL NULL. */
	sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
}

/* Copies text column i.  SQL NULL stays NULL when keep_null, else "".
 * -1 when out of memory. */
static int col_dup(sqlite3_stmt *st, int i, int keep_null, char **out)
{
	*out = NULL;
	if (sqlite3_column_type(st, i) == SQLITE_NULL) {
		if (keep_null)
			return 0;
		*out = msv_strdup("");
		return *out ? 0 : -1;
	}
	const unsigned char *t = sqlite3_column_text(st, i);
	if (!t)
		return -1;
	*out = msv_strdup((const char *)t);
	return *out ? 0 : -1;
}

static int col_qid(sqlite3_stmt *st, int i, char out[MSV_QID_LEN + 1])
{
	const unsigned char *t = sqlite3_column_text(st, i);
	if (!t || sqlite3_column_bytes(st, i) != MSV_QID_LEN)
		return -1;
	memcpy(out, t, MSV_QID_LEN);
	out[MSV_QID_LEN] = '\0';
	return 0;
}

/* Grows an array of elem-sized items to hold at least need. */
static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	size_t ncap = *cap ? *cap : 8, bytes;
	while (ncap < need)
		if (msv_mul_size(&ncap, ncap, 2))
			return -1;
	if (msv_mul_size(&bytes, ncap, elem))
		return -1;
	void *p = msv_realloc(*arr, bytes);
	if (!p)
		return -1;
	*arr = p;
	*cap = ncap;
	return 0;
}

/* One row of a listing into row (zeroed, size bytes): MSV_OK, or the
 * error (out of memory, a malformed value). */
typedef msv_result row_fn(sq *s, sqlite3_stmt *st, void *row, msv_error *err);
/* Frees the n rows read so far. */
typedef void rows_free_fn(void *rows, size_t n);

/* Steps st to its end, one element of size bytes per row, filled by
 * fill.  On failure what was read is freed and nothing is returned. */
static msv_result read_rows(sq *s, sq_conn *c, sqlite3_stmt *st, size_t size, row_fn *fill,
                            rows_free_fn *free_rows, void **out, size_t *n, const char *what,
                            msv_error *err)
{
	char *v = NULL;
	size_t nv = 0, cap = 0;
	msv_result r = MSV_OK;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (grow((void **)&v, &cap, nv + 1, size)) {
			r = nomem(err);
			break;
		}
		void *row = v + nv * size;
		memset(row, 0, size);
		nv++;
		if ((r = fill(s, st, row, err)))
			break;
	}
	if (!r && rc != SQLITE_DONE)
		r = sq_fail(err, s, c->db, rc, what);
	if (r) {
		free_rows(v, nv);
		return r;
	}
	*out = v;
	*n = nv;
	return MSV_OK;
}

/* read_rows() of sql on the read connection. */
static msv_result list_rows(sq *s, const char *sql, size_t size, row_fn *fill,
                            rows_free_fn *free_rows, void **out, size_t *n, const char *what,
                            msv_error *err)
{
	sqlite3_stmt *st = NULL;
	pthread_mutex_lock(&s->r.mu);
	msv_result r = prepare(s, &s->r, sql, &st, err);
	if (!r)
		r = read_rows(s, &s->r, st, size, fill, free_rows, out, n, what, err);
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->r.mu);
	return r;
}

/* ---- open, create, migrate ---- */

/* Size of path + suffix in bytes, or -1 when it cannot be read. */
static off_t side_file_size(const char *path, const char *suffix)
{
	char p[4096];
	struct stat st;
	if ((size_t)snprintf(p, sizeof(p), "%s%s", path, suffix) >= sizeof(p) || stat(p, &st) != 0)
		return -1;
	return st.st_size;
}

/* An existing queue file must be a regular file, not a symlink (another
 * user could point it at a file of ours), and not empty: SQLite would
 * silently make an empty file a new, empty queue, so a queue truncated by
 * accident (a full disk, a bad restore) would lose every message without
 * a word.  An empty file is accepted only while another process that has
 * just created it is writing the schema (it takes milliseconds), or when
 * its -wal file holds the content. */
static msv_result check_existing(sq *s, msv_error *err)
{
	for (int tries = 0;; tries++) {
		int fd = open(s->path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
		if (fd < 0) {
			int e = errno;
			if (e == ELOOP)
				return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
				                     "queue %s is a symbolic link: refusing to follow it; "
				                     "give the real path",
				                     s->path);
			if (e == EACCES || e == EPERM)
				return MSV_OK; /* SQLite reports it, with its hint */
			return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
			                     "queue %s: cannot open it: %s", s->path, strerror(e));
		}
		struct stat st;
		int ok = fstat(fd, &st) == 0;
		close(fd);
		if (!ok || !S_ISREG(st.st_mode))
			return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
			                     "queue %s is not a regular file", s->path);
		if (st.st_size > 0 || side_file_size(s->path, "-wal") > 0)
			return MSV_OK;
		if (tries == 20)
			return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
			                     "queue %s is an empty (0-byte) file that this process did "
			                     "not create: refusing to start a new queue over it (was it "
			                     "truncated?); remove it to start an empty queue",
			                     s->path);
		struct timespec ts = {0, 50 * 1000000L};
		nanosleep(&ts, NULL);
	}
}

/* Creates the database file with mode 0600 (queued mail is personal data)
 * before SQLite does, since SQLite would use 0644; its -wal and -shm files
 * copy the database file's mode.  *created tells whether we made it. */
static msv_result create_file(sq *s, int *created, msv_error *err)
{
	*created = 0;
	int fd = open(s->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd >= 0) {
		close(fd);
		*created = 1;
		return MSV_OK;
	}
	if (errno == EEXIST)
		return check_existing(s, err);
	int e = errno;
	if (e == ENOENT || e == ENOTDIR) {
		char dir[512];
		const char *slash = strrchr(s->path, '/');
		if (!slash)
			snprintf(dir, sizeof(dir), ".");
		else if (slash == s->path)
			snprintf(dir, sizeof(dir), "/");
		else
			snprintf(dir, sizeof(dir), "%.*s", (int)(slash - s->path), s->path);
		return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
		                     "queue %s: directory %s does not exist; create it first", s->path,
		                     dir);
	}
	return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG, "queue %s: cannot create it: %s",
	                     s->path, strerror(e));
}

/* After creating the file: make its directory entry durable too. */
static void sync_dir(const char *path)
{
	char dir[4096];
	const char *slash = strrchr(path, '/');
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else if ((size_t)(slash - path) < sizeof(dir))
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	else
		return;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return;
	/* Best effort: SQLite has already fsynced the file's content. */
	(void)fsync(fd);
	close(fd);
}

/* Checks application_id and user_version.  *version receives the schema
 * version (0: a new, empty database). */
static msv_result check_format(sq *s, sq_conn *c, int64_t *version, msv_error *err)
{
	msv_result r;
	int64_t app = 0, tables = 0;
	if ((r = pragma_int(s, c, "PRAGMA application_id", &app, err)) ||
	    (r = pragma_int(s, c, "PRAGMA user_version", version, err)) ||
	    (r = pragma_int(s, c, "SELECT count(*) FROM sqlite_schema", &tables, err)))
		return r;
	if ((app != 0 && app != APPLICATION_ID) || (app == 0 && (*version != 0 || tables != 0)))
		return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
		                     "queue %s: this SQLite database is not a missive queue", s->path);
	if (*version > SCHEMA_VERSION)
		return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
		                     "queue %s: written by a newer missive (schema %lld; this one "
		                     "knows up to %d)",
		                     s->path, (long long)*version, SCHEMA_VERSION);
	return MSV_OK;
}

/* Creates the schema in a new file, or migrates an older one, in one
 * IMMEDIATE transaction: two processes opening a new file at once
 * serialize here and the second finds the schema made (the format is
 * checked again under the lock). */
static msv_result sq_migrate(sq *s, msv_error *err)
{
	msv_result r;
	int64_t version;
	/* The common case, a current file, needs no write lock: opening must
	 * not wait for another process's long transaction. */
	if ((r = check_format(s, &s->w, &version, err)))
		return r;
	s->found_version = version;
	if (version == SCHEMA_VERSION)
		return MSV_OK;
	if ((r = begin_write(s, "setting up the schema", err)))
		return r;
	if ((r = check_format(s, &s->w, &version, err)))
		goto fail;
	char sql[64];
	if (version == 0) {
		if ((r = exec(s, &s->w, schema_sql, "creating the tables", err)) ||
		    (r = exec(s, &s->w, schema3_sql, "creating the tables", err)))
			goto fail;
		snprintf(sql, sizeof(sql), "PRAGMA application_id = %d", APPLICATION_ID);
		if ((r = exec(s, &s->w, sql, "marking the file", err)))
			goto fail;
	} else if (version < 2 &&
	           (r = exec(s, &s->w, "CREATE INDEX messages_mid ON messages(message_id)",
	                     "adding the Message-ID index (schema 2)", err))) {
		goto fail;
	}
	if (version > 0 && version < 3 &&
	    ((r = exec(s, &s->w, "ALTER TABLE messages ADD COLUMN submitter TEXT",
	               "adding the submitter column (schema 3)", err)) ||
	     (r = exec(s, &s->w, schema3_sql, "adding the key and reputation tables (schema 3)",
	               err))))
		goto fail;
	if (version > 0 && version < 4 &&
	    (r = exec(s, &s->w,
	              "ALTER TABLE recipients ADD COLUMN lease_epoch INTEGER NOT NULL DEFAULT 0",
	              "adding the lease epoch (schema 4)", err)))
		goto fail;
	/* Later schema versions: "if (version < 5) { ALTER ... }" above. */
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", SCHEMA_VERSION);
	if ((r = exec(s, &s->w, sql, "marking the file", err)))
		goto fail;
	return commit(s, &s->w, "setting up the schema", err);
fail:
	rollback(&s->w);
	return r;
}

static void sq_close(void *be)
{
	sq *s = be;
	if (!s)
		return;
	sqlite3_finalize(s->ins_msg);
	sqlite3_finalize(s->ins_rcpt);
	sqlite3_finalize(s->claim);
	sqlite3_finalize(s->load_msg);
	sqlite3_finalize(s->record);
	sqlite3_finalize(s->ins_attempt);
	sqlite3_finalize(s->sup_check);
	conn_close(&s->r);
	conn_close(&s->w);
	msv_free(s->path);
	msv_free(s);
}

static msv_result prepare_hot(sq *s, msv_error *err)
{
	struct {
		const char *sql;
		sqlite3_stmt **st;
	} t[] = {
		{SQL_INS_MSG, &s->ins_msg},   {SQL_INS_RCPT, &s->ins_rcpt},
		{SQL_CLAIM, &s->claim},       {SQL_LOAD_MSG, &s->load_msg},
		{SQL_RECORD, &s->record},     {SQL_INS_ATTEMPT, &s->ins_attempt},
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int rc = sqlite3_prepare_v3(s->w.db, t[i].sql, -1, SQLITE_PREPARE_PERSISTENT, t[i].st,
		                            NULL);
		if (rc != SQLITE_OK)
			return sq_fail(err, s, s->w.db, rc, "preparing the queue's statements");
	}
	return MSV_OK;
}

/* PRAGMA quick_check: every page and index structure readable (not the
 * index contents, which integrity_check would compare at several times the
 * cost).  A damaged file fails here, at start, with a clear message
 * instead of failing every later claim. */
static msv_result quick_check(sq *s, msv_error *err)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(s->w.db, "PRAGMA quick_check(1)", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return msv_error_set(err, MSV_E_IO, MSV_CLASS_LOCAL,
		                     "queue %s is damaged: cannot check it: %s", s->path,
		                     sqlite3_errstr(rc));
	rc = sqlite3_step(st);
	const unsigned char *v = rc == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
	msv_result r = MSV_OK;
	if (!v || strcmp((const char *)v, "ok"))
		r = msv_error_set(err, MSV_E_IO, MSV_CLASS_LOCAL,
		                  "queue %s is damaged (PRAGMA quick_check: %.200s); restore it from a "
		                  "backup or move it aside",
		                  s->path, v ? (const char *)v : sqlite3_errstr(rc));
	sqlite3_finalize(st);
	return r;
}

static msv_result sq_open(void **out, const msv_queue_options *o, size_t *max_body,
                          msv_error *err)
{
	msv_result r;
	sq *s = msv_calloc(1, sizeof(*s));
	if (!s || !(s->path = msv_strdup(o->path))) {
		msv_free(s);
		return nomem(err);
	}
	s->read_only = o->read_only != 0;

	if (s->read_only) {
		struct stat st;
		if (stat(s->path, &st) != 0) {
			int e = errno;
			if (e == ENOENT)
				r = msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
				                  "queue %s does not exist (nothing was ever queued there, "
				                  "or the path is wrong)",
				                  s->path);
			else
				r = msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
				                  "queue %s: cannot read it: %s", s->path, strerror(e));
			goto fail;
		}
		int64_t version;
		if ((r = conn_open(s, &s->r, SQLITE_OPEN_READONLY, o->busy_timeout_ms, err)) ||
		    (r = check_format(s, &s->r, &version, err)))
			goto fail;
		if (version != SCHEMA_VERSION) {
			if (version == 0)
				r = msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
				                  "queue %s is empty: it has no queue tables yet", s->path);
			else
				r = msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
				                  "queue %s has an older schema; open it read-write once "
				                  "(start missived) to upgrade it",
				                  s->path);
			goto fail;
		}
	} else {
		int created;
		if ((r = create_file(s, &created, err)) ||
		    (r = conn_open(s, &s->w, SQLITE_OPEN_READWRITE, o->busy_timeout_ms, err)))
			goto fail;
		/* WAL: readers never block the writer nor it them, and a commit
		 * is one sequential append plus one fsync.  The mode is stored
		 * in the file; setting it again is a no-op. */
		sqlite3_stmt *st;
		if ((r = prepare(s, &s->w, "PRAGMA journal_mode = WAL", &st, err)))
			goto fail;
		int rc = sqlite3_step(st);
		const unsigned char *mode = rc == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
		int wal = mode && strcmp((const char *)mode, "wal") == 0;
		if (rc != SQLITE_ROW)
			r = sq_fail(err, s, s->w.db, rc, "switching to WAL mode");
		else if (!wal)
			r = msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
			                  "queue %s: cannot use WAL mode here (journal mode stays %s); "
			                  "put the queue on a local file system",
			                  s->path, mode ? (const char *)mode : "unknown");
		sqlite3_finalize(st);
		if (r)
			goto fail;
		/* synchronous=FULL: in WAL mode NORMAL would skip the fsync at
		 * commit and could lose the last transactions on power loss,
		 * after the caller was told "accepted".  journal_size_limit
		 * truncates the log after checkpoints so one burst of large
		 * messages does not keep a huge -wal file around. */
		if ((r = exec(s, &s->w, "PRAGMA synchronous = FULL", "setting synchronous=FULL",
		              err)) ||
		    (r = exec(s, &s->w, "PRAGMA journal_size_limit = 67108864",
		              "setting the WAL size limit", err)) ||
		    (r = sq_migrate(s, err)))
			goto fail;
		if (created)
			sync_dir(s->path);
		if (o->verify && !created && (r = quick_check(s, err)))
			goto fail;
		if ((r = conn_open(s, &s->r, SQLITE_OPEN_READONLY, o->busy_timeout_ms, err)) ||
		    (r = prepare_hot(s, err)))
			goto fail;
	}
	int lim = sqlite3_limit(s->r.db, SQLITE_LIMIT_LENGTH, -1);
	*max_body = lim > ROW_OVERHEAD ? (size_t)lim - ROW_OVERHEAD : 0;
	*out = s;
	return MSV_OK;
fail:
	sq_close(s);
	return r;
}

/* ---- submission ---- */

static msv_result insert_message(sq *s, const msv_queue_message *m, int64_t now_ms,
                                 char id[MSV_QID_LEN + 1], msv__qid_fn qid_fn, void *qid_payload,
                                 msv_error *err)
{
	msv_result r;
	sqlite3_stmt *st = s->ins_msg;
	for (int tries = 0;; tries++) {
		if ((r = qid_fn(qid_payload, id, err)))
			return r;
		/* A DSN request without an ENVID gets the queue ID as ENVID, stored
		 * so that show and bounce matching see the value actually sent. */
		const char *envid = m->envid;
		if (!envid && (m->dsn_notify || m->dsn_ret))
			envid = id;
		sqlite3_bind_text(st, 1, id, MSV_QID_LEN, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, now_ms);
		bind_str(st, 3, m->sender);
		bind_str(st, 4, m->route);
		bind_str(st, 5, m->message_id);
		bind_str(st, 6, m->dsn_notify);
		bind_str(st, 7, m->dsn_ret);
		bind_str(st, 8, envid);
		sqlite3_bind_int(st, 9, m->body_8bit != 0);
		sqlite3_bind_int(st, 10, m->smtputf8 != 0);
		sqlite3_bind_int64(st, 11, (sqlite3_int64)m->len);
		/* A NULL pointer would bind SQL NULL: an empty body is "". */
		sqlite3_bind_blob64(st, 12, m->len ? m->body : "", m->len, SQLITE_STATIC);
		bind_str(st, 13, m->submitter);
		int rc = sqlite3_step(st);
		if (rc == SQLITE_DONE) {
			sqlite3_reset(st);
			break;
		}
		if (rc == SQLITE_CONSTRAINT_UNIQUE && tries + 1 < QID_TRIES) {
			sqlite3_reset(st);
			continue; /* the ID is taken: draw another */
		}
		r = sq_fail(err, s, s->w.db, rc, "storing a message");
		sqlite3_reset(st);
		return r;
	}
	sqlite3_clear_bindings(st);
	int64_t msg = sqlite3_last_insert_rowid(s->w.db);
	st = s->ins_rcpt;
	for (size_t j = 0; j < m->nrcpt; j++) {
		sqlite3_bind_int64(st, 1, msg);
		bind_str(st, 2, m->rcpt[j]);
		sqlite3_bind_int(st, 3, m->initial ? (int)m->initial[j] : MSV_RCPT_QUEUED);
		sqlite3_bind_int64(st, 4, now_ms);
		if ((r = step_done(s, &s->w, st, "storing a recipient", err)))
			return r;
	}
	sqlite3_clear_bindings(st);
	return MSV_OK;
}

static msv_result sq_submit(void *be, msv__queue_req *list, msv__qid_fn qid_fn,
                            void *qid_payload, msv_error *err)
{
	sq *s = be;
	msv_result r;
	pthread_mutex_lock(&s->w.mu);
	if ((r = begin_write(s, "starting a submission", err)))
		goto out;
	for (msv__queue_req *m = list; m; m = m->next) {
		/* Each request in its own savepoint: one that fails (an ID source
		 * gone bad, a row over a limit) is undone alone. */
		if ((r = exec(s, &s->w, "SAVEPOINT req", "starting a submission", err)))
			break;
		msv_result mr = MSV_OK;
		for (size_t i = 0; i < m->n && !mr; i++)
			mr = insert_message(s, &m->msgs[i], m->now_ms, m->ids[i], qid_fn, qid_payload,
			                    &m->err);
		if (!mr) {
			if ((r = exec(s, &s->w, "RELEASE req", "submitting", err)))
				break;
			continue;
		}
		m->result = mr;
		if (sqlite3_get_autocommit(s->w.db)) {
			/* SQLite rolled the whole transaction back (I/O error, disk
			 * full): the batch is lost, every member gets this error. */
			*err = m->err;
			r = mr;
			break;
		}
		if ((r = exec(s, &s->w, "ROLLBACK TO req; RELEASE req", "undoing a submission", err)))
			break;
	}
	if (r)
		rollback(&s->w);
	else
		r = commit(s, &s->w, "committing a submission", err);
out:
	pthread_mutex_unlock(&s->w.mu);
	return r;
}

/* ---- claim ---- */


static msv_result load_job(sq *s, int64_t msg, msv_queue_job *j, msv_error *err)
{
	sqlite3_stmt *st = s->load_msg;
	msv_result r = MSV_OK;
	sqlite3_bind_int64(st, 1, msg);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		r = rc == SQLITE_DONE ? msv_error_set(err, MSV_E_SYSTEM, MSV_CLASS_LOCAL,
		                                      "queue %s: a claimed recipient has no message",
		                                      s->path)
		                      : sq_fail(err, s, s->w.db, rc, "loading a message");
		goto out;
	}
	if (col_qid(st, 0, j->qid)) {
		r = msv_error_set(err, MSV_E_SYSTEM, MSV_CLASS_LOCAL,
		                  "queue %s: a message has a malformed queue ID", s->path);
		goto out;
	}
	j->created_ms = sqlite3_column_int64(st, 1);
	if (col_dup(st, 2, 0, &j->sender) || col_dup(st, 3, 1, &j->route) ||
	    col_dup(st, 4, 1, &j->message_id) || col_dup(st, 5, 1, &j->dsn_notify) ||
	    col_dup(st, 6, 1, &j->dsn_ret) || col_dup(st, 7, 1, &j->envid)) {
		r = nomem(err);
		goto out;
	}
	j->body_8bit = sqlite3_column_int(st, 8);
	j->smtputf8 = sqlite3_column_int(st, 9);
	const void *body = sqlite3_column_blob(st, 10);
	size_t len = (size_t)sqlite3_column_bytes(st, 10);
	if (len && !body) {
		r = nomem(err);
		goto out;
	}
	/* One spare byte: the body is also NUL-terminated for convenience. */
	if (!(j->body = msv_malloc(len + 1))) {
		r = nomem(err);
		goto out;
	}
	if (len)
		memcpy(j->body, body, len);
	j->body[len] = '\0';
	j->len = len;
	if (col_dup(st, 11, 1, &j->submitter))
		r = nomem(err);
out:
	sqlite3_reset(st);
	return r;
}

static msv_result sq_claim(void *be, const char *owner, int64_t now_ms, int64_t expiry_ms,
                           size_t max_rcpt, msv_queue_job **jobs_out, size_t *njobs_out,
                           msv_error *err)
{
	sq *s = be;
	msv_result r;
	msv__claimed *rows = NULL;
	size_t nrows = 0, cap = 0;
	msv_queue_job *jobs = NULL;
	int64_t *msgs = NULL;
	size_t ngroups = 0;
	sqlite3_stmt *st = s->claim;

	pthread_mutex_lock(&s->w.mu);
	if ((r = begin_write(s, "claiming recipients", err)))
		goto out;
	bind_str(st, 1, owner);
	sqlite3_bind_int64(st, 2, expiry_ms);
	sqlite3_bind_int64(st, 3, now_ms);
	sqlite3_bind_int64(st, 4, max_rcpt > (size_t)INT64_MAX ? INT64_MAX : (int64_t)max_rcpt);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (grow((void **)&rows, &cap, nrows + 1, sizeof(*rows))) {
			r = nomem(err);
			break;
		}
		msv__claimed *c = &rows[nrows];
		memset(c, 0, sizeof(*c));
		c->id = sqlite3_column_int64(st, 0);
		c->msg = sqlite3_column_int64(st, 1);
		c->attempts = (unsigned)sqlite3_column_int64(st, 3);
		c->next = sqlite3_column_int64(st, 4);
		c->epoch = (uint64_t)sqlite3_column_int64(st, 5);
		nrows++;
		if (col_dup(st, 2, 0, &c->address)) {
			r = nomem(err);
			break;
		}
	}
	if (!r && rc != SQLITE_DONE)
		r = sq_fail(err, s, s->w.db, rc, "claiming recipients");
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (r || nrows == 0)
		goto done;

	if (msv__queue_claims_to_jobs(rows, nrows, &jobs, &msgs, &ngroups)) {
		r = nomem(err);
		goto done;
	}
	/* The body is read inside the claim's transaction: the message
	 * cannot be purged between the lease and the load. */
	for (size_t g = 0; g < ngroups && !r; g++)
		r = load_job(s, msgs[g], &jobs[g], err);
	msv_free(msgs);
done:
	if (r)
		rollback(&s->w);
	else
		r = commit(s, &s->w, "claiming recipients", err);
out:
	pthread_mutex_unlock(&s->w.mu);
	for (size_t i = 0; i < nrows; i++)
		msv_free(rows[i].address);
	msv_free(rows);
	if (r) {
		msv_queue_jobs_free(jobs, ngroups);
		return r;
	}
	*jobs_out = jobs;
	*njobs_out = jobs ? ngroups : 0;
	return MSV_OK;
}

/* ---- outcomes and leases ---- */

static msv_result rep_put_rows(sq *s, const msv_queue_reputation *v, size_t n, msv_error *err);

/* Inside the write transaction: does recipient id still exist? */
static msv_result rcpt_exists(sq *s, int64_t id, int *exists, msv_error *err)
{
	sqlite3_stmt *st;
	msv_result r = prepare(s, &s->w, "SELECT 1 FROM recipients WHERE id = ?1", &st, err);
	if (r)
		return r;
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	*exists = rc == SQLITE_ROW;
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		r = sq_fail(err, s, s->w.db, rc, "checking a fenced outcome");
	sqlite3_finalize(st);
	return r;
}

static msv_result sq_record(void *be, const msv_queue_outcome *o, size_t n,
                            const msv_queue_reputation *rep, size_t nrep, int64_t now_ms,
                            size_t *refused, msv_error *err)
{
	sq *s = be;
	msv_result r;
	size_t nref = 0;
	pthread_mutex_lock(&s->w.mu);
	if ((r = begin_write(s, "recording outcomes", err)))
		goto out;
	for (size_t i = 0; i < n && !r; i++) {
		const msv_queue_outcome *x = &o[i];
		sqlite3_stmt *st = s->record;
		sqlite3_bind_int64(st, 1, x->rcpt_id);
		sqlite3_bind_int(st, 2, (int)x->state);
		sqlite3_bind_int(st, 3, x->attempted ? 1 : 0);
		sqlite3_bind_int64(st, 4, x->next_attempt_ms);
		sqlite3_bind_int(st, 5, x->reply_code);
		bind_str(st, 6, x->enhanced ? x->enhanced : "");
		bind_str(st, 7, x->text ? x->text : "");
		sqlite3_bind_int64(st, 8, now_ms);
		sqlite3_bind_int64(st, 9, x->epoch > INT64_MAX ? -1 : (int64_t)x->epoch);
		if ((r = step_done(s, &s->w, st, "recording an outcome", err)))
			break;
		/* A recipient purged while its lease ran has no row left: the
		 * outcome has nowhere to go and is dropped, not an error that
		 * would cost the other outcomes their commit.  One claimed
		 * again since (fencing) is counted as refused. */
		if (sqlite3_changes(s->w.db) == 0) {
			int exists = 0;
			if (x->epoch && (r = rcpt_exists(s, x->rcpt_id, &exists, err)))
				break;
			nref += exists;
			continue;
		}
		if (!x->attempted)
			continue;
		st = s->ins_attempt;
		sqlite3_bind_int64(st, 1, x->rcpt_id);
		sqlite3_bind_int64(st, 2, x->at_ms);
		sqlite3_bind_int64(st, 3, x->latency_ms);
		bind_str(st, 4, x->server);
		sqlite3_bind_int(st, 5, x->reply_code);
		bind_str(st, 6, x->enhanced ? x->enhanced : "");
		bind_str(st, 7, x->text ? x->text : "");
		r = step_done(s, &s->w, st, "recording an attempt", err);
	}
	sqlite3_clear_bindings(s->record);
	sqlite3_clear_bindings(s->ins_attempt);
	if (!r && nrep)
		r = rep_put_rows(s, rep, nrep, err);
	if (r)
		rollback(&s->w);
	else
		r = commit(s, &s->w, "recording outcomes", err);
out:
	pthread_mutex_unlock(&s->w.mu);
	if (!r)
		*refused = nref;
	return r;
}

/*
 * Runs one write statement in its own IMMEDIATE transaction: sql with
 * text parameters t1, t2 (NULL: unbound) and integers i1, i2 at ?3, ?4.
 * *changes receives the rows it changed.
 */
static msv_result write_one(sq *s, const char *sql, const char *t1, const char *t2, int64_t i1,
                            int64_t i2, size_t *changes, const char *what, msv_error *err)
{
	msv_result r;
	sqlite3_stmt *st = NULL;
	pthread_mutex_lock(&s->w.mu);
	if ((r = begin_write(s, what, err)))
		goto out;
	if ((r = prepare(s, &s->w, sql, &st, err)))
		goto end;
	int np = sqlite3_bind_parameter_count(st);
	if (np >= 1)
		bind_str(st, 1, t1);
	if (np >= 2)
		bind_str(st, 2, t2);
	if (np >= 3)
		sqlite3_bind_int64(st, 3, i1);
	if (np >= 4)
		sqlite3_bind_int64(st, 4, i2);
	if ((r = step_done(s, &s->w, st, what, err)))
		goto end;
	if (changes)
		*changes = (size_t)sqlite3_changes64(s->w.db);
end:
	sqlite3_finalize(st);
	if (r)
		rollback(&s->w);
	else
		r = commit(s, &s->w, what, err);
out:
	pthread_mutex_unlock(&s->w.mu);
	return r;
}

static msv_result sq_release(void *be, const char *owner, size_t *released, msv_error *err)
{
	return write_one(be,
	                 "UPDATE recipients SET lease_owner = NULL, lease_expiry_ms = 0"
	                 " WHERE lease_owner = ?1",
	                 owner, NULL, 0, 0, released, "releasing leases", err);
}

static msv_result sq_renew(void *be, const char *owner, int64_t until_ms, size_t *renewed,
                           msv_error *err)
{
	return write_one(be, "UPDATE recipients SET lease_expiry_ms = ?3 WHERE lease_owner = ?1",
	                 owner, NULL, until_ms, 0, renewed, "renewing leases", err);
}

static msv_result sq_lease_owners(void *be, char ***owners, size_t *n, msv_error *err)
{
	sq *s = be;
	msv_result r;
	sqlite3_stmt *st = NULL;
	char **v = NULL;
	size_t nv = 0, cap = 0;
	pthread_mutex_lock(&s->r.mu);
	if ((r = prepare(s, &s->r,
	                 "SELECT DISTINCT lease_owner FROM recipients WHERE lease_owner IS NOT NULL"
	                 " ORDER BY lease_owner",
	                 &st, err)))
		goto out;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (grow((void **)&v, &cap, nv + 1, sizeof(*v)) || col_dup(st, 0, 0, &v[nv])) {
			r = nomem(err);
			break;
		}
		nv++;
	}
	if (!r && rc != SQLITE_DONE)
		r = sq_fail(err, s, s->r.db, rc, "listing lease owners");
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->r.mu);
	if (r) {
		msv_queue_strings_free(v, nv);
		return r;
	}
	*owners = v;
	*n = nv;
	return MSV_OK;
}

/*
 * The earliest time a claim can find work: for each pending recipient,
 * the later of its next attempt and its lease expiry (0 when unleased).
 * Walks recipients_due in next_attempt order and stops as soon as no later
 * row can beat the best so far, so leased rows at the head cost one step
 * each and the rest nothing.  Counting leased rows as due now would make a
 * daemon that sleeps until next_due spin while its own leases run.
 */
static msv_result sq_next_due(void *be, int64_t *when_ms, msv_error *err)
{
	sq *s = be;
	msv_result r;
	sqlite3_stmt *st = NULL;
	int64_t best = -1;
	pthread_mutex_lock(&s->r.mu);
	if ((r = prepare(s, &s->r,
	                 "SELECT next_attempt_ms, lease_expiry_ms FROM recipients"
	                 " WHERE state IN (0, 1) ORDER BY next_attempt_ms",
	                 &st, err)))
		goto out;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t next = sqlite3_column_int64(st, 0), lease = sqlite3_column_int64(st, 1);
		if (best >= 0 && next >= best)
			break;
		int64_t eff = next > lease ? next : lease;
		if (best < 0 || eff < best)
			best = eff;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		r = sq_fail(err, s, s->r.db, rc, "finding the next due time");
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->r.mu);
	if (!r)
		*when_ms = best;
	return r;
}

/* ---- inspection ---- */

#define MSG_COLS "m.id, m.qid, m.created_ms, m.sender, m.route, m.message_id, m.envid, m.size"
#define RCPT_COLS                                                                           \
	"r.id, r.address, r.state, r.attempts, r.next_attempt_ms, r.updated_ms, r.last_code,"   \
	" r.last_enhanced, r.last_text, r.lease_owner, r.lease_expiry_ms, r.lease_epoch"
#define NMSG_COLS 8

/* Fills info's message fields from MSG_COLS at column 0; *id gets m.id. */
static int fill_info(sqlite3_stmt *st, msv_queue_info *info, int64_t *id)
{
	*id = sqlite3_column_int64(st, 0);
	if (col_qid(st, 1, info->qid))
		return -1;
	info->created_ms = sqlite3_column_int64(st, 2);
	info->size = (size_t)sqlite3_column_int64(st, 7);
	return col_dup(st, 3, 0, &info->sender) || col_dup(st, 4, 1, &info->route) ||
	               col_dup(st, 5, 1, &info->message_id) || col_dup(st, 6, 1, &info->envid)
	           ? -1
	           : 0;
}

/* Fills one recipient from RCPT_COLS starting at column c. */
static int fill_rcpt(sqlite3_stmt *st, int c, msv_queue_rcpt_info *ri)
{
	ri->id = sqlite3_column_int64(st, c);
	int state = sqlite3_column_int(st, c + 2);
	ri->state = state >= 0 && state < MSV_RCPT__COUNT ? (msv_rcpt_state)state : MSV_RCPT_DEAD;
	ri->attempts = (unsigned)sqlite3_column_int64(st, c + 3);
	ri->next_attempt_ms = sqlite3_column_int64(st, c + 4);
	ri->updated_ms = sqlite3_column_int64(st, c + 5);
	ri->last_code = sqlite3_column_int(st, c + 6);
	ri->lease_expiry_ms = sqlite3_column_int64(st, c + 10);
	ri->lease_epoch = (uint64_t)sqlite3_column_int64(st, c + 11);
	return col_dup(st, c + 1, 0, &ri->address) || col_dup(st, c + 7, 0, &ri->last_enhanced) ||
	               col_dup(st, c + 8, 0, &ri->last_text) ||
	               col_dup(st, c + 9, 1, &ri->lease_owner)
	           ? -1
	           : 0;
}

static msv_result read_begin(sq *s, msv_error *err)
{
	/* A read transaction: one snapshot across the statements below. */
	return exec(s, &s->r, "BEGIN", "starting a read", err);
}

static msv_result read_end(sq *s, msv_result r, msv_error *err)
{
	if (r) {
		rollback(&s->r);
		return r;
	}
	return commit(s, &s->r, "ending a read", err);
}

static msv_result sq_show(void *be, const char *qid, msv_queue_info *out, msv_error *err)
{
	sq *s = be;
	msv_result r;
	sqlite3_stmt *st = NULL;
	int64_t msg = 0;
	size_t cap = 0;
	int rc;
	pthread_mutex_lock(&s->r.mu);
	if ((r = read_begin(s, err)))
		goto out;
	if ((r = prepare(s, &s->r, "SELECT " MSG_COLS " FROM messages m WHERE m.qid = ?1", &st,
	                 err)))
		goto end;
	bind_str(st, 1, qid);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		r = no_such_message(err, qid);
		goto end;
	}
	if (rc != SQLITE_ROW) {
		r = sq_fail(err, s, s->r.db, rc, "reading a message");
		goto end;
	}
	if (fill_info(st, out, &msg)) {
		r = nomem(err);
		goto end;
	}
	sqlite3_finalize(st);
	st = NULL;

	if ((r = prepare(s, &s->r,
	                 "SELECT " RCPT_COLS " FROM recipients r WHERE r.msg = ?1 ORDER BY r.id", &st,
	                 err)))
		goto end;
	sqlite3_bind_int64(st, 1, msg);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (grow((void **)&out->rcpt, &cap, out->nrcpt + 1, sizeof(*out->rcpt))) {
			r = nomem(err);
			goto end;
		}
		msv_queue_rcpt_info *ri = &out->rcpt[out->nrcpt];
		memset(ri, 0, sizeof(*ri));
		out->nrcpt++;
		if (fill_rcpt(st, 0, ri)) {
			r = nomem(err);
			goto end;
		}
	}
	if (rc != SQLITE_DONE) {
		r = sq_fail(err, s, s->r.db, rc, "reading recipients");
		goto end;
	}
	sqlite3_finalize(st);
	st = NULL;

	cap = 0;
	if ((r = prepare(s, &s->r,
	                 "SELECT a.rcpt, a.at_ms, a.latency_ms, a.server, a.reply_code, a.enhanced,"
	                 " a.text FROM attempts a JOIN recipients r ON r.id = a.rcpt"
	                 " WHERE r.msg = ?1 ORDER BY a.at_ms, a.id",
	                 &st, err)))
		goto end;
	sqlite3_bind_int64(st, 1, msg);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (grow((void **)&out->attempts, &cap, out->nattempts + 1, sizeof(*out->attempts))) {
			r = nomem(err);
			goto end;
		}
		msv_queue_attempt *a = &out->attempts[out->nattempts];
		memset(a, 0, sizeof(*a));
		out->nattempts++;
		a->rcpt_id = sqlite3_column_int64(st, 0);
		a->at_ms = sqlite3_column_int64(st, 1);
		a->latency_ms = sqlite3_column_int64(st, 2);
		a->reply_code = sqlite3_column_int(st, 4);
		if (col_dup(st, 3, 1, &a->server) || col_dup(st, 5, 0, &a->enhanced) ||
		    col_dup(st, 6, 0, &a->text)) {
			r = nomem(err);
			goto end;
		}
	}
	if (rc != SQLITE_DONE)
		r = sq_fail(err, s, s->r.db, rc, "reading attempts");
end:
	sqlite3_finalize(st);
	r = read_end(s, r, err);
out:
	pthread_mutex_unlock(&s->r.mu);
	if (r)
		msv_queue_info_free(out);
	return r;
}

static msv_result sq_list(void *be, unsigned mask, size_t limit, msv_queue_info **out,
                          size_t *n, msv_error *err)
{
	sq *s = be;
	msv_result r;
	sqlite3_stmt *st = NULL;
	msv_queue_info *v = NULL;
	size_t nv = 0, cap = 0, rcap = 0;
	int64_t cur = 0;
	int rc;
	pthread_mutex_lock(&s->r.mu);
	/* Newest first via messages_created; the LIMIT applies to messages,
	 * then each one's matching recipients are joined in. */
	if ((r = prepare(s, &s->r,
	                 "WITH sel AS (SELECT m.id FROM messages m WHERE EXISTS"
	                 "  (SELECT 1 FROM recipients r WHERE r.msg = m.id AND ((1 << r.state) & ?1))"
	                 "  ORDER BY m.created_ms DESC, m.id DESC LIMIT ?2)"
	                 " SELECT " MSG_COLS ", " RCPT_COLS " FROM sel"
	                 " JOIN messages m ON m.id = sel.id"
	                 " JOIN recipients r ON r.msg = m.id AND ((1 << r.state) & ?1)"
	                 " ORDER BY m.created_ms DESC, m.id DESC, r.id",
	                 &st, err)))
		goto out;
	sqlite3_bind_int64(st, 1, mask);
	sqlite3_bind_int64(st, 2, limit == 0 || limit > (size_t)INT64_MAX ? -1 : (int64_t)limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0);
		if (nv == 0 || id != cur) {
			if (grow((void **)&v, &cap, nv + 1, sizeof(*v))) {
				r = nomem(err);
				goto out;
			}
			memset(&v[nv], 0, sizeof(v[nv]));
			nv++;
			rcap = 0;
			if (fill_info(st, &v[nv - 1], &cur)) {
				r = nomem(err);
				goto out;
			}
		}
		msv_queue_info *info = &v[nv - 1];
		if (grow((void **)&info->rcpt, &rcap, info->nrcpt + 1, sizeof(*info->rcpt))) {
			r = nomem(err);
			goto out;
		}
		msv_queue_rcpt_info *ri = &info->rcpt[info->nrcpt];
		memset(ri, 0, sizeof(*ri));
		info->nrcpt++;
		if (fill_rcpt(st, NMSG_COLS, ri)) {
			r = nomem(err);
			goto out;
		}
	}
	if (rc != SQLITE_DONE)
		r = sq_fail(err, s, s->r.db, rc, "listing messages");
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->r.mu);
	if (r) {
		msv_queue_infos_free(v, nv);
		return r;
	}
	*out = v;
	*n = nv;
	return MSV_OK;
}

/* ---- operator changes ---- */

/* Looks up a message's row id inside the current write transaction:
 * 0 with *found = 0 when there is none. */
static msv_result find_message(sq *s, const char *qid, int64_t *id, int *found, msv_error *err)
{
	sqlite3_stmt *st;
	msv_result r;
	*found = 0;
	if ((r = prepare(s, &s->w, "SELECT id FROM messages WHERE qid = ?1", &st, err)))
		return r;
	bind_str(st, 1, qid);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*id = sqlite3_column_int64(st, 0);
		*found = 1;
	} else if (rc != SQLITE_DONE) {
		r = sq_fail(err, s, s->w.db, rc, "finding a message");
	}
	sqlite3_finalize(st);
	return r;
}

/* retry and requeue: one UPDATE over one message (qid) or all of them. */
static msv_result change_rcpts(sq *s, const char *qid, const char *sql_all, const char *sql_one,
                               int64_t now_ms, size_t *changed, const char *what,
                               msv_error *err)
{
	msv_result r;
	sqlite3_stmt *st = NULL;
	int64_t msg = 0;
	pthread_mutex_lock(&s->w.mu);
	if ((r = begin_write(s, what, err)))
		goto out;
	if (qid) {
		int found;
		if ((r = find_message(s, qid, &msg, &found, err)))
			goto end;
		if (!found) {
			r = no_such_message(err, qid);
			goto end;
		}
	}
	if ((r = prepare(s, &s->w, qid ? sql_one : sql_all, &st, err)))
		goto end;
	sqlite3_bind_int64(st, 1, now_ms);
	if (qid)
		sqlite3_bind_int64(st, 2, msg);
	if ((r = step_done(s, &s->w, st, what, err)))
		goto end;
	*changed = (size_t)sqlite3_changes64(s->w.db);
end:
	sqlite3_finalize(st);
	if (r)
		rollback(&s->w);
	else
		r = commit(s, &s->w, what, err);
out:
	pthread_mutex_unlock(&s->w.mu);
	return r;
}

static msv_result sq_retry(void *be, const char *qid, int64_t now_ms, size_t *changed,
                           msv_error *err)
{
	/* Only recipients scheduled later move: "due now" is already true for
	 * the rest.  Leases are left alone; a leased recipient is in flight. */
#define RETRY_SQL                                                                           \
	"UPDATE recipients SET next_attempt_ms = ?1 WHERE state IN (0, 1) AND next_attempt_ms > ?1"
	return change_rcpts(be, qid, RETRY_SQL, RETRY_SQL " AND msg = ?2", now_ms, changed,
	                    "scheduling a retry", err);
#undef RETRY_SQL
}

static msv_result sq_requeue(void *be, const char *qid, int64_t now_ms, size_t *changed,
                             msv_error *err)
{
	/* Bounced (3) and dead (4) back to queued (0), due now.  The attempt
	 * count and history stay: they are what happened. */
#define REQUEUE_SQL                                                                         \
	"UPDATE recipients SET state = 0, next_attempt_ms = ?1, updated_ms = ?1,"               \
	" lease_owner = NULL, lease_expiry_ms = 0 WHERE state IN (3, 4)"
	return change_rcpts(be, qid, REQUEUE_SQL, REQUEUE_SQL " AND msg = ?2", now_ms, changed,
	                    "requeueing dead letters", err);
#undef REQUEUE_SQL
}

static msv_result sq_purge(void *be, unsigned mask, int64_t before_ms, size_t *removed,
                           msv_error *err)
{
	sq *s = be;
	msv_result r;
	sqlite3_stmt *st = NULL;
	pthread_mutex_lock(&s->w.mu);
	if ((r = begin_write(s, "purging messages", err)))
		goto out;
	/* sqlite3_changes() counts the messages only: rows removed by the
	 * ON DELETE CASCADE (recipients, attempts) are not included. */
	if ((r = prepare(s, &s->w,
	                 "DELETE FROM messages WHERE id IN (SELECT msg FROM recipients GROUP BY msg"
	                 " HAVING sum(((1 << state) & ?1) = 0) = 0 AND max(updated_ms) <= ?2)",
	                 &st, err)))
		goto end;
	sqlite3_bind_int64(st, 1, mask);
	sqlite3_bind_int64(st, 2, before_ms);
	if ((r = step_done(s, &s->w, st, "purging messages", err)))
		goto end;
	*removed = (size_t)sqlite3_changes64(s->w.db);
end:
	sqlite3_finalize(st);
	if (r)
		rollback(&s->w);
	else
		r = commit(s, &s->w, "purging messages", err);
out:
	pthread_mutex_unlock(&s->w.mu);
	return r;
}

static msv_result sq_stats(void *be, int64_t now_ms, msv_queue_stats *out, msv_error *err)
{
	sq *s = be;
	msv_result r;
	sqlite3_stmt *st = NULL;
	int rc;
	pthread_mutex_lock(&s->r.mu);
	if ((r = read_begin(s, err)))
		goto out;
	if ((r = prepare(s, &s->r, "SELECT state, count(*) FROM recipients GROUP BY state", &st,
	                 err)))
		goto end;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int state = sqlite3_column_int(st, 0);
		if (state >= 0 && state < MSV_RCPT__COUNT)
			out->rcpt[state] = (uint64_t)sqlite3_column_int64(st, 1);
	}
	if (rc != SQLITE_DONE) {
		r = sq_fail(err, s, s->r.db, rc, "counting recipients");
		goto end;
	}
	sqlite3_finalize(st);
	st = NULL;
	/* One row of three figures: messages, live leases, oldest pending. */
	if ((r = prepare(s, &s->r,
	                 "SELECT (SELECT count(*) FROM messages),"
	                 " (SELECT count(*) FROM recipients WHERE lease_owner IS NOT NULL"
	                 "   AND lease_expiry_ms > ?1),"
	                 " (SELECT m.created_ms FROM messages m WHERE EXISTS"
	                 "   (SELECT 1 FROM recipients r WHERE r.msg = m.id AND r.state IN (0, 1))"
	                 "   ORDER BY m.created_ms LIMIT 1)",
	                 &st, err)))
		goto end;
	sqlite3_bind_int64(st, 1, now_ms);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		r = sq_fail(err, s, s->r.db, rc, "reading queue statistics");
		goto end;
	}
	out->messages = (uint64_t)sqlite3_column_int64(st, 0);
	out->leased = (uint64_t)sqlite3_column_int64(st, 1);
	out->oldest_pending_ms =
		sqlite3_column_type(st, 2) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 2);
end:
	sqlite3_finalize(st);
	r = read_end(s, r, err);
out:
	pthread_mutex_unlock(&s->r.mu);
	return r;
}

/* ---- bounces and suppression ---- */

static msv_result sq_mark_bounced(void *be, const char *qid, const char *address,
                                  const char *status, const char *text, int64_t now_ms,
                                  size_t *changed, msv_error *err)
{
	sq *s = be;
	msv_result r;
	sqlite3_stmt *st = NULL;
	int64_t msg = 0;
	int found;
	pthread_mutex_lock(&s->w.mu);
	if ((r = begin_write(s, "marking a bounce", err)))
		goto out;
	if ((r = find_message(s, qid, &msg, &found, err)) || !found)
		goto end;
	/* The bounce report goes into the history first (as an attempt with
	 * no server and no reply code), then the state changes.  Addresses
	 * compare without regard to ASCII case: reports rewrite it freely. */
	if ((r = prepare(s, &s->w,
	                 "INSERT INTO attempts (rcpt, at_ms, latency_ms, server, reply_code, enhanced,"
	                 " text) SELECT id, ?3, 0, NULL, 0, ?4, ?5 FROM recipients"
	                 " WHERE msg = ?1 AND address = ?2 COLLATE NOCASE",
	                 &st, err)))
		goto end;
	sqlite3_bind_int64(st, 1, msg);
	bind_str(st, 2, address);
	sqlite3_bind_int64(st, 3, now_ms);
	bind_str(st, 4, status);
	bind_str(st, 5, text);
	if ((r = step_done(s, &s->w, st, "marking a bounce", err)))
		goto end;
	sqlite3_finalize(st);
	st = NULL;
	if ((r = prepare(s, &s->w,
	                 "UPDATE recipients SET state = 3, last_code = 0, last_enhanced = ?4,"
	                 " last_text = ?5, updated_ms = ?3, lease_owner = NULL, lease_expiry_ms = 0"
	                 " WHERE msg = ?1 AND address = ?2 COLLATE NOCASE",
	                 &st, err)))
		goto end;
	sqlite3_bind_int64(st, 1, msg);
	bind_str(st, 2, address);
	sqlite3_bind_int64(st, 3, now_ms);
	bind_str(st, 4, status);
	bind_str(st, 5, text);
	if ((r = step_done(s, &s->w, st, "marking a bounce", err)))
		goto end;
	*changed = (size_t)sqlite3_changes64(s->w.db);
end:
	sqlite3_finalize(st);
	if (r)
		rollback(&s->w);
	else
		r = commit(s, &s->w, "marking a bounce", err);
out:
	pthread_mutex_unlock(&s->w.mu);
	return r;
}

static msv_result sq_find_message_id(void *be, const char *message_id, const char *address,
                                     char qid[MSV_QID_LEN + 1], int *found, msv_error *err)
{
	sq *s = be;
	msv_result r;
	sqlite3_stmt *st = NULL;
	*found = 0;
	pthread_mutex_lock(&s->w.mu);
	/* The newest such message: a resubmission reuses the Message-ID. */
	if ((r = prepare(s, &s->w,
	                 "SELECT m.qid FROM messages m WHERE m.message_id = ?1 AND EXISTS"
	                 " (SELECT 1 FROM recipients r WHERE r.msg = m.id"
	                 " AND r.address = ?2 COLLATE NOCASE) ORDER BY m.id DESC LIMIT 1",
	                 &st, err)))
		goto out;
	bind_str(st, 1, message_id);
	bind_str(st, 2, address);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		snprintf(qid, MSV_QID_LEN + 1, "%s", (const char *)sqlite3_column_text(st, 0));
		*found = 1;
	} else if (rc != SQLITE_DONE) {
		r = sq_fail(err, s, s->w.db, rc, "finding a message by Message-ID");
	}
	sqlite3_finalize(st);
out:
	pthread_mutex_unlock(&s->w.mu);
	return r;
}

static msv_result sq_suppress_add(void *be, const char *address, const char *reason,
                                  const char *source, int64_t now_ms, msv_error *err)
{
	sq *s = be;
	msv_result r;
	sqlite3_stmt *st = NULL;
	pthread_mutex_lock(&s->w.mu);
	if ((r = begin_write(s, "adding a suppression", err)))
		goto out;
	if ((r = prepare(s, &s->w,
	                 "INSERT INTO suppression (address, reason, source, created_ms)"
	                 " VALUES (?1, ?2, ?3, ?4) ON CONFLICT (address) DO UPDATE SET"
	                 " reason = excluded.reason, source = excluded.source,"
	                 " created_ms = excluded.created_ms",
	                 &st, err)))
		goto end;
	bind_str(st, 1, address);
	bind_str(st, 2, reason);
	bind_str(st, 3, source);
	sqlite3_bind_int64(st, 4, now_ms);
	r = step_done(s, &s->w, st, "adding a suppression", err);
end:
	sqlite3_finalize(st);
	if (r)
		rollback(&s->w);
	else
		r = commit(s, &s->w, "adding a suppression", err);
out:
	pthread_mutex_unlock(&s->w.mu);
	return r;
}

static msv_result sq_suppress_rm(void *be, const char *address, int *removed, msv_error *err)
{
	size_t n = 0;
	msv_result r = write_one(be, "DELETE FROM suppression WHERE address = ?1", address, NULL, 0,
	                         0, &n, "removing a suppression", err);
	if (!r)
		*removed = n > 0;
	return r;
}

static msv_result sq_suppress_check(void *be, const char *address, int *found, char **reason,
                                    msv_error *err)
{
	sq *s = be;
	msv_result r = MSV_OK;
	pthread_mutex_lock(&s->r.mu);
	if (!s->sup_check &&
	    (r = prepare(s, &s->r, "SELECT reason FROM suppression WHERE address = ?1",
	                 &s->sup_check, err)))
		goto out;
	sqlite3_stmt *st = s->sup_check;
	bind_str(st, 1, address);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		if (reason && col_dup(st, 0, 0, reason)) {
			r = nomem(err);
			goto out;
		}
		*found = 1;
	} else if (rc != SQLITE_DONE) {
		r = sq_fail(err, s, s->r.db, rc, "checking the suppression list");
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
out:
	pthread_mutex_unlock(&s->r.mu);
	return r;
}

static msv_result suppression_row(sq *s, sqlite3_stmt *st, void *row, msv_error *err)
{
	(void)s;
	msv_suppression *x = row;
	x->created_ms = sqlite3_column_int64(st, 3);
	if (col_dup(st, 0, 0, &x->address) || col_dup(st, 1, 0, &x->reason) ||
	    col_dup(st, 2, 0, &x->source))
		return nomem(err);
	return MSV_OK;
}

static void suppressions_free(void *v, size_t n)
{
	msv_queue_suppressions_free(v, n);
}

static msv_result sq_suppress_list(void *be, msv_suppression **out, size_t *n, msv_error *err)
{
	void *v;
	msv_result r = list_rows(be,
	                         "SELECT address, reason, source, created_ms FROM suppression"
	                         " ORDER BY address",
	                         sizeof(**out), suppression_row, suppressions_free, &v, n,
	                         "listing the suppression list", err);
	if (!r)
		*out = v;
	return r;
}

/* Rewrites user_version with its own value: SQLite still dirties page 1,
 * so the commit appends a WAL frame and fsyncs, as a submission would. */
static msv_result sq_probe_write(void *be, msv_error *err)
{
	sq *s = be;
	char sql[64];
	msv_result r;
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", SCHEMA_VERSION);
	pthread_mutex_lock(&s->w.mu);
	if (!(r = begin_write(s, "probing a write", err))) {
		if ((r = exec(s, &s->w, sql, "probing a write", err)))
			rollback(&s->w);
		else
			r = commit(s, &s->w, "probing a write", err);
	}
	pthread_mutex_unlock(&s->w.mu);
	return r;
}

/* ---- API keys ---- */

static msv_result sq_key_add(void *be, const msv_queue_key *k, msv_error *err)
{
	sq *s = be;
	msv_result r;
	sqlite3_stmt *st = NULL;
	pthread_mutex_lock(&s->w.mu);
	if ((r = begin_write(s, "adding a key", err)))
		goto out;
	if ((r = prepare(s, &s->w,
	                 "INSERT INTO api_keys (name, hash, sender_domains, rate, burst, created_ms,"
	                 " rotated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0)",
	                 &st, err)))
		goto end;
	bind_str(st, 1, k->name);
	sqlite3_bind_blob(st, 2, k->hash, 32, SQLITE_STATIC);
	bind_str(st, 3, k->sender_domains ? k->sender_domains : "");
	sqlite3_bind_double(st, 4, k->rate);
	sqlite3_bind_int64(st, 5, k->burst);
	sqlite3_bind_int64(st, 6, k->created_ms);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
		r = msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE, "key %s exists", k->name);
	else if (rc != SQLITE_DONE)
		r = sq_fail(err, s, s->w.db, rc, "adding a key");
end:
	sqlite3_finalize(st);
	if (r)
		rollback(&s->w);
	else
		r = commit(s, &s->w, "adding a key", err);
out:
	pthread_mutex_unlock(&s->w.mu);
	return r;
}

static msv_result sq_key_rotate(void *be, const char *name, const unsigned char hash[32],
                                int64_t now_ms, int *found, msv_error *err)
{
	sq *s = be;
	msv_result r;
	sqlite3_stmt *st = NULL;
	pthread_mutex_lock(&s->w.mu);
	if ((r = begin_write(s, "rotating a key", err)))
		goto out;
	if ((r = prepare(s, &s->w, "UPDATE api_keys SET hash = ?2, rotated_ms = ?3 WHERE name = ?1",
	                 &st, err)))
		goto end;
	bind_str(st, 1, name);
	sqlite3_bind_blob(st, 2, hash, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now_ms);
	if ((r = step_done(s, &s->w, st, "rotating a key", err)))
		goto end;
	*found = sqlite3_changes(s->w.db) > 0;
end:
	sqlite3_finalize(st);
	if (r)
		rollback(&s->w);
	else
		r = commit(s, &s->w, "rotating a key", err);
out:
	pthread_mutex_unlock(&s->w.mu);
	return r;
}

static msv_result sq_key_rm(void *be, const char *name, int *removed, msv_error *err)
{
	size_t n = 0;
	msv_result r = write_one(be, "DELETE FROM api_keys WHERE name = ?1", name, NULL, 0, 0, &n,
	                         "removing a key", err);
	if (!r)
		*removed = n > 0;
	return r;
}

static msv_result key_row(sq *s, sqlite3_stmt *st, void *row, msv_error *err)
{
	msv_queue_key *k = row;
	const void *h = sqlite3_column_blob(st, 1);
	if (!h || sqlite3_column_bytes(st, 1) != 32)
		return msv_error_set(err, MSV_E_SYSTEM, MSV_CLASS_LOCAL,
		                     "queue %s: a key has a malformed hash", s->path);
	memcpy(k->hash, h, 32);
	k->rate = sqlite3_column_double(st, 3);
	int64_t burst = sqlite3_column_int64(st, 4);
	k->burst = burst > 0 && burst <= UINT32_MAX ? (unsigned)burst : 0;
	k->created_ms = sqlite3_column_int64(st, 5);
	k->rotated_ms = sqlite3_column_int64(st, 6);
	if (col_dup(st, 0, 0, &k->name) || col_dup(st, 2, 0, &k->sender_domains))
		return nomem(err);
	return MSV_OK;
}

static void keys_free(void *v, size_t n)
{
	msv_queue_keys_free(v, n);
}

static msv_result sq_key_list(void *be, msv_queue_key **out, size_t *n, msv_error *err)
{
	void *v;
	msv_result r = list_rows(be,
	                         "SELECT name, hash, sender_domains, rate, burst, created_ms,"
	                         " rotated_ms FROM api_keys ORDER BY name",
	                         sizeof(**out), key_row, keys_free, &v, n, "listing keys", err);
	if (!r)
		*out = v;
	return r;
}

/* ---- reputation ---- */

#define SQL_REP_PUT                                                                         \
	"INSERT INTO reputation (identity, score, stamp_ms, rejections, open_until_ms,"         \
	" changed_ms, why) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (identity) DO UPDATE" \
	" SET score = excluded.score, stamp_ms = excluded.stamp_ms,"                            \
	" rejections = excluded.rejections, open_until_ms = excluded.open_until_ms,"            \
	" changed_ms = excluded.changed_ms, why = excluded.why"

static msv_result rep_put_one(sq *s, sqlite3_stmt *st, const msv_queue_reputation *x,
                              msv_error *err)
{
	bind_str(st, 1, x->identity);
	sqlite3_bind_double(st, 2, x->score);
	sqlite3_bind_int64(st, 3, x->stamp_ms);
	sqlite3_bind_int64(st, 4, x->rejections);
	sqlite3_bind_int64(st, 5, x->open_until_ms);
	sqlite3_bind_int64(st, 6, x->changed_ms);
	bind_str(st, 7, x->why ? x->why : "");
	return step_done(s, &s->w, st, "storing a reputation", err);
}

/* Inserts or replaces the rows in the open write transaction. */
static msv_result rep_put_rows(sq *s, const msv_queue_reputation *v, size_t n, msv_error *err)
{
	sqlite3_stmt *st = NULL;
	msv_result r = prepare(s, &s->w, SQL_REP_PUT, &st, err);
	for (size_t i = 0; i < n && !r; i++)
		r = rep_put_one(s, st, &v[i], err);
	sqlite3_finalize(st);
	return r;
}

static msv_result sq_reputation_put(void *be, const msv_queue_reputation *v, size_t n,
                                    msv_error *err)
{
	sq *s = be;
	msv_result r;
	pthread_mutex_lock(&s->w.mu);
	if ((r = begin_write(s, "storing reputations", err)))
		goto out;
	r = rep_put_rows(s, v, n, err);
	if (r)
		rollback(&s->w);
	else
		r = commit(s, &s->w, "storing reputations", err);
out:
	pthread_mutex_unlock(&s->w.mu);
	return r;
}

/* Reads (identity, score, stamp_ms, rejections, open_until_ms, changed_ms,
 * why) rows of st into a new array. */
static msv_result rep_row(sq *s, sqlite3_stmt *st, void *row, msv_error *err)
{
	(void)s;
	msv_queue_reputation *x = row;
	x->score = sqlite3_column_double(st, 1);
	x->stamp_ms = sqlite3_column_int64(st, 2);
	int64_t rej = sqlite3_column_int64(st, 3);
	x->rejections = rej > 0 && rej <= UINT32_MAX ? (unsigned)rej : 0;
	x->open_until_ms = sqlite3_column_int64(st, 4);
	x->changed_ms = sqlite3_column_int64(st, 5);
	if (col_dup(st, 0, 0, &x->identity) ||
	    (sqlite3_column_type(st, 6) != SQLITE_NULL && col_dup(st, 6, 0, &x->why)))
		return nomem(err);
	return MSV_OK;
}

static void reps_free(void *v, size_t n)
{
	msv_queue_reputations_free(v, n);
}

static msv_result sq_reputation_list(void *be, msv_queue_reputation **out, size_t *n,
                                     msv_error *err)
{
	void *v;
	msv_result r = list_rows(be,
	                         "SELECT identity, score, stamp_ms, rejections, open_until_ms,"
	                         " changed_ms, why FROM reputation ORDER BY identity",
	                         sizeof(**out), rep_row, reps_free, &v, n, "listing reputations",
	                         err);
	if (!r)
		*out = v;
	return r;
}

static msv_result sq_reputation_override(void *be, const char *identity, double score,
                                         int64_t now_ms, msv_error *err)
{
	sq *s = be;
	msv_result r;
	sqlite3_stmt *st = NULL;
	pthread_mutex_lock(&s->w.mu);
	if ((r = begin_write(s, "overriding a reputation", err)))
		goto out;
	if ((r = prepare(s, &s->w,
	                 "INSERT INTO reputation_overrides (identity, score, at_ms)"
	                 " VALUES (?1, ?2, ?3) ON CONFLICT (identity) DO UPDATE"
	                 " SET score = excluded.score, at_ms = excluded.at_ms",
	                 &st, err)))
		goto end;
	bind_str(st, 1, identity);
	sqlite3_bind_double(st, 2, score);
	sqlite3_bind_int64(st, 3, now_ms);
	if ((r = step_done(s, &s->w, st, "overriding a reputation", err)))
		goto end;
	sqlite3_finalize(st);
	st = NULL;
	/* The row too, as msv_reputation_set() leaves it: `ls` shows the new
	 * score before the daemon has taken the override. */
	msv_queue_reputation x = {.identity = (char *)identity, .score = score, .stamp_ms = now_ms,
	                          .changed_ms = now_ms, .why = (char *)"operator"};
	if (!(r = prepare(s, &s->w, SQL_REP_PUT, &st, err)))
		r = rep_put_one(s, st, &x, err);
end:
	sqlite3_finalize(st);
	if (r)
		rollback(&s->w);
	else
		r = commit(s, &s->w, "overriding a reputation", err);
out:
	pthread_mutex_unlock(&s->w.mu);
	return r;
}

static msv_result sq_reputation_take_overrides(void *be, msv_queue_reputation **out, size_t *n,
                                               msv_error *err)
{
	sq *s = be;
	msv_result r;
	sqlite3_stmt *st = NULL;
	void *rows = NULL;
	size_t nv = 0;
	pthread_mutex_lock(&s->w.mu);
	/* missived asks twice a second and there is almost never anything:
	 * a read first, so that the asking takes no write lock from the
	 * submissions and outcomes that need it. */
	if ((r = prepare(s, &s->w, "SELECT 1 FROM reputation_overrides LIMIT 1", &st, err)))
		goto out;
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	st = NULL;
	if (rc == SQLITE_DONE)
		goto out;
	if (rc != SQLITE_ROW) {
		r = sq_fail(err, s, s->w.db, rc, "taking reputation overrides");
		goto out;
	}
	if ((r = begin_write(s, "taking reputation overrides", err)))
		goto out;
	/* Read and delete in one transaction: an override written meanwhile
	 * by another process waits for the next take, never vanishes. */
	if ((r = prepare(s, &s->w,
	                 "SELECT identity, score, at_ms, 0, 0, 0, NULL FROM reputation_overrides"
	                 " ORDER BY at_ms, identity",
	                 &st, err)) ||
	    (r = read_rows(s, &s->w, st, sizeof(**out), rep_row, reps_free, &rows, &nv,
	                   "taking reputation overrides", err)))
		goto end;
	if (nv)
		r = exec(s, &s->w, "DELETE FROM reputation_overrides", "taking reputation overrides",
		         err);
end:
	sqlite3_finalize(st);
	if (r)
		rollback(&s->w);
	else
		r = commit(s, &s->w, "taking reputation overrides", err);
out:
	pthread_mutex_unlock(&s->w.mu);
	if (r) {
		msv_queue_reputations_free(rows, nv);
		return r;
	}
	*out = rows;
	*n = nv;
	return MSV_OK;
}

/* ---- outbound shaping ---- */

/* Only pending recipients move: an outcome recorded meanwhile (by a
 * worker whose lease this one outlived) is not undone. */
static msv_result sq_postpone(void *be, const int64_t *ids, size_t n, int64_t until_ms,
                              size_t *changed, msv_error *err)
{
	sq *s = be;
	msv_result r;
	sqlite3_stmt *st = NULL;
	size_t total = 0;
	pthread_mutex_lock(&s->w.mu);
	if ((r = begin_write(s, "postponing recipients", err)))
		goto out;
	if ((r = prepare(s, &s->w,
	                 "UPDATE recipients SET next_attempt_ms = ?2, lease_owner = NULL,"
	                 " lease_expiry_ms = 0 WHERE id = ?1 AND state IN (0, 1)",
	                 &st, err)))
		goto end;
	for (size_t i = 0; i < n && !r; i++) {
		sqlite3_bind_int64(st, 1, ids[i]);
		sqlite3_bind_int64(st, 2, until_ms);
		if (!(r = step_done(s, &s->w, st, "postponing recipients", err)))
			total += (size_t)sqlite3_changes(s->w.db);
	}
end:
	sqlite3_finalize(st);
	if (r)
		rollback(&s->w);
	else
		r = commit(s, &s->w, "postponing recipients", err);
out:
	pthread_mutex_unlock(&s->w.mu);
	if (!r)
		*changed = total;
	return r;
}

static msv_result sq_route_state_put(void *be, const msv_queue_route_state *v, size_t n,
                                     msv_error *err)
{
	sq *s = be;
	msv_result r;
	sqlite3_stmt *st = NULL;
	pthread_mutex_lock(&s->w.mu);
	if ((r = begin_write(s, "storing route states", err)))
		goto out;
	if ((r = prepare(s, &s->w,
	                 "INSERT OR REPLACE INTO route_state (route, circuit, open_until_ms, trips,"
	                 " changed_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
	                 &st, err)))
		goto end;
	for (size_t i = 0; i < n && !r; i++) {
		bind_str(st, 1, v[i].route);
		bind_str(st, 2, v[i].circuit);
		sqlite3_bind_int64(st, 3, v[i].open_until_ms);
		/* SQLite integers are signed: a count past 2^63 would not survive. */
		sqlite3_bind_int64(st, 4, v[i].trips > INT64_MAX ? INT64_MAX : (int64_t)v[i].trips);
		sqlite3_bind_int64(st, 5, v[i].changed_ms);
		r = step_done(s, &s->w, st, "storing a route state", err);
	}
end:
	sqlite3_finalize(st);
	if (r)
		rollback(&s->w);
	else
		r = commit(s, &s->w, "storing route states", err);
out:
	pthread_mutex_unlock(&s->w.mu);
	return r;
}

static msv_result route_state_row(sq *s, sqlite3_stmt *st, void *row, msv_error *err)
{
	(void)s;
	msv_queue_route_state *x = row;
	x->open_until_ms = sqlite3_column_int64(st, 2);
	int64_t trips = sqlite3_column_int64(st, 3);
	x->trips = trips > 0 ? (uint64_t)trips : 0;
	x->changed_ms = sqlite3_column_int64(st, 4);
	if (col_dup(st, 0, 0, &x->route) || col_dup(st, 1, 0, &x->circuit))
		return nomem(err);
	return MSV_OK;
}

static void route_states_free(void *v, size_t n)
{
	msv_queue_route_states_free(v, n);
}

static msv_result sq_route_state_list(void *be, msv_queue_route_state **out, size_t *n,
                                      msv_error *err)
{
	void *v;
	msv_result r = list_rows(be,
	                         "SELECT route, circuit, open_until_ms, trips, changed_ms"
	                         " FROM route_state ORDER BY route",
	                         sizeof(**out), route_state_row, route_states_free, &v, n,
	                         "listing route states", err);
	if (!r)
		*out = v;
	return r;
}

/* ---- migration, export ---- */

static msv_result sq_migrate_op(const msv_queue_options *o, int *from, int *to, msv_error *err)
{
	void *be;
	size_t max_body;
	msv_result r = sq_open(&be, o, &max_body, err);
	if (r)
		return r;
	*from = (int)((sq *)be)->found_version;
	*to = SCHEMA_VERSION;
	sq_close(be);
	return MSV_OK;
}

static msv_result qid_row(sq *s, sqlite3_stmt *st, void *row, msv_error *err)
{
	(void)s;
	return col_dup(st, 0, 0, (char **)row) ? nomem(err) : MSV_OK;
}

static void qids_free(void *v, size_t n)
{
	msv_queue_strings_free(v, n);
}

static msv_result sq_qids(void *be, char ***qids, size_t *n, msv_error *err)
{
	void *v;
	msv_result r = list_rows(be, "SELECT qid FROM messages ORDER BY created_ms, id",
	                         sizeof(char *), qid_row, qids_free, &v, n, "listing messages", err);
	if (!r)
		*qids = v;
	return r;
}

/* show, plus the columns show leaves out.  Export runs on a stopped
 * queue (docs/scale-out.md): the two reads need not share a snapshot. */
static msv_result sq_dump(void *be, const char *qid, msv_queue_dump *out, msv_error *err)
{
	sq *s = be;
	sqlite3_stmt *st = NULL;
	msv_result r = sq_show(be, qid, &out->info, err);
	if (r)
		return r;
	pthread_mutex_lock(&s->r.mu);
	if ((r = prepare(s, &s->r,
	                 "SELECT dsn_notify, dsn_ret, body_8bit, smtputf8, submitter, body"
	                 " FROM messages WHERE qid = ?1",
	                 &st, err)))
		goto out;
	bind_str(st, 1, qid);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		r = rc == SQLITE_DONE ? no_such_message(err, qid)
		                      : sq_fail(err, s, s->r.db, rc, "reading a message");
		goto out;
	}
	out->body_8bit = sqlite3_column_int(st, 2);
	out->smtputf8 = sqlite3_column_int(st, 3);
	const void *body = sqlite3_column_blob(st, 5);
	out->len = (size_t)sqlite3_column_bytes(st, 5);
	if (col_dup(st, 0, 1, &out->dsn_notify) || col_dup(st, 1, 1, &out->dsn_ret) ||
	    col_dup(st, 4, 1, &out->submitter) || !(out->body = msv_malloc(out->len + 1))) {
		r = nomem(err);
		goto out;
	}
	if (out->len)
		memcpy(out->body, body, out->len);
	out->body[out->len] = '\0';
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->r.mu);
	return r;
}

/* The way up is SQLite -> PostgreSQL; importing into a file is not
 * offered (docs/scale-out.md). */
static msv_result sq_import(void *be, const msv_queue_import_set *set, int force,
                            msv_error *err)
{
	(void)be;
	(void)set;
	(void)force;
	return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE,
	                     "queue: importing into a SQLite queue is not supported; import into "
	                     "a PostgreSQL queue ([queue] url)");
}

const msv__queue_ops msv__queue_sqlite_ops = {
	.name = "sqlite",
	.open = sq_open,
	.close = sq_close,
	.migrate = sq_migrate_op,
	.qids = sq_qids,
	.dump = sq_dump,
	.import = sq_import,
	.submit = sq_submit,
	.claim = sq_claim,
	.record = sq_record,
	.release = sq_release,
	.renew = sq_renew,
	.lease_owners = sq_lease_owners,
	.next_due = sq_next_due,
	.show = sq_show,
	.list = sq_list,
	.retry = sq_retry,
	.requeue = sq_requeue,
	.purge = sq_purge,
	.stats = sq_stats,
	.mark_bounced = sq_mark_bounced,
	.find_message_id = sq_find_message_id,
	.suppress_add = sq_suppress_add,
	.suppress_rm = sq_suppress_rm,
	.suppress_check = sq_suppress_check,
	.suppress_list = sq_suppress_list,
	.probe_write = sq_probe_write,
	.key_add = sq_key_add,
	.key_rotate = sq_key_rotate,
	.key_rm = sq_key_rm,
	.key_list = sq_key_list,
	.reputation_put = sq_reputation_put,
	.reputation_list = sq_reputation_list,
	.reputation_override = sq_reputation_override,
	.reputation_take_overrides = sq_reputation_take_overrides,
	.postpone = sq_postpone,
	.route_state_put = sq_route_state_put,
	.route_state_list = sq_route_state_list,
};
