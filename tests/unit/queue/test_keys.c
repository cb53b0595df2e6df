/* Unit tests for the queue's API keys, reputation rows and operator
 * overrides, the submitter carried from submission to claim, and the
 * migration of a schema-2 file (include/missive/queue.h).  Each test gets
 * a fresh directory and database, as in test_queue.c. */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "missive/queue.h"

#define QUEUE_FIXTURE_PREFIX "msv-keys"
#include "queue/queue_fixture.h"

static msv_queue_key key(const char *name, unsigned char fill)
{
	msv_queue_key k;
	memset(&k, 0, sizeof(k));
	k.name = (char *)name;
	memset(k.hash, fill, sizeof(k.hash));
	k.sender_domains = (char *)"";
	k.created_ms = T0;
	return k;
}

static void keys_lifecycle(void **state)
{
	fixture *f = *state;
	msv_queue_key *v = NULL;
	size_t n = 99;
	OK(msv_queue_key_list(f->q, &v, &n, &f->err));
	assert_int_equal(n, 0);
	assert_null(v);

	msv_queue_key a = key("web", 0xaa), b = key("api.v2_x-Y", 0xbb);
	b.sender_domains = (char *)"Example.ORG,b.net";
	b.rate = 1.5;
	b.burst = 7;
	OK(msv_queue_key_add(f->q, &a, &f->err));
	OK(msv_queue_key_add(f->q, &b, &f->err));
	/* A taken name is refused and the first key is left as it was. */
	msv_queue_key dup = key("web", 0xcc);
	assert_int_equal(msv_queue_key_add(f->q, &dup, &f->err), MSV_E_INVALID);
	assert_non_null(strstr(f->err.message, "key web exists"));

	OK(msv_queue_key_list(f->q, &v, &n, &f->err));
	assert_int_equal(n, 2);
	assert_string_equal(v[0].name, "api.v2_x-Y"); /* by name */
	assert_string_equal(v[0].sender_domains, "example.org,b.net"); /* lowercased */
	assert_true(v[0].rate == 1.5);
	assert_int_equal(v[0].burst, 7);
	assert_int_equal(v[0].created_ms, T0);
	assert_int_equal(v[0].rotated_ms, 0);
	assert_string_equal(v[1].name, "web");
	assert_int_equal(v[1].hash[0], 0xaa);
	assert_int_equal(v[1].hash[31], 0xaa);
	assert_string_equal(v[1].sender_domains, "");
	assert_true(v[1].rate == 0);
	assert_int_equal(v[1].burst, 0);
	msv_queue_keys_free(v, n);

	/* Rotation replaces the hash and stamps the time. */
	unsigned char h[32];
	memset(h, 0x11, sizeof(h));
	int found = -1;
	OK(msv_queue_key_rotate(f->q, "web", h, T0 + 5, &found, &f->err));
	assert_int_equal(found, 1);
	OK(msv_queue_key_rotate(f->q, "nope", h, T0 + 5, &found, &f->err));
	assert_int_equal(found, 0);
	OK(msv_queue_key_list(f->q, &v, &n, &f->err));
	assert_int_equal(v[1].hash[0], 0x11);
	assert_int_equal(v[1].rotated_ms, T0 + 5);
	assert_int_equal(v[1].created_ms, T0);
	msv_queue_keys_free(v, n);

	int removed = -1;
	OK(msv_queue_key_rm(f->q, "web", &removed, &f->err));
	assert_int_equal(removed, 1);
	OK(msv_queue_key_rm(f->q, "web", &removed, &f->err));
	assert_int_equal(removed, 0);
	OK(msv_queue_key_list(f->q, &v, &n, &f->err));
	assert_int_equal(n, 1);
	msv_queue_keys_free(v, n);
	/* The name is free again. */
	OK(msv_queue_key_add(f->q, &a, &f->err));
}

static void keys_validation(void **state)
{
	fixture *f = *state;
	char long_name[MSV_KEY_NAME_MAX + 2];
	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	const char *bad[] = {"", "a b", "a/b", "é", "a:b", long_name};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		msv_queue_key k = key(bad[i], 1);
		assert_int_equal(msv_queue_key_add(f->q, &k, &f->err), MSV_E_INVALID);
		int x;
		assert_int_equal(msv_queue_key_rm(f->q, bad[i], &x, &f->err), MSV_E_INVALID);
		assert_int_equal(msv_queue_key_rotate(f->q, bad[i], k.hash, T0, &x, &f->err),
		                 MSV_E_INVALID);
	}
	long_name[MSV_KEY_NAME_MAX] = '\0'; /* exactly the maximum is fine */
	msv_queue_key k = key(long_name, 1);
	OK(msv_queue_key_add(f->q, &k, &f->err));
	k = key(NULL, 1);
	assert_int_equal(msv_queue_key_add(f->q, &k, &f->err), MSV_E_INVALID);
	assert_int_equal(msv_queue_key_add(f->q, NULL, &f->err), MSV_E_INVALID);
	k = key("r", 1);
	k.rate = -1;
	assert_int_equal(msv_queue_key_add(f->q, &k, &f->err), MSV_E_INVALID);
	k.rate = NAN;
	assert_int_equal(msv_queue_key_add(f->q, &k, &f->err), MSV_E_INVALID);
	k.rate = INFINITY;
	assert_int_equal(msv_queue_key_add(f->q, &k, &f->err), MSV_E_INVALID);
	k.rate = 0;
	k.sender_domains = (char *)"a.org\r\nb.org";
	assert_int_equal(msv_queue_key_add(f->q, &k, &f->err), MSV_E_INVALID);
	k.sender_domains = NULL; /* NULL: any */
	OK(msv_queue_key_add(f->q, &k, &f->err));
	assert_int_equal(msv_queue_key_list(f->q, NULL, NULL, &f->err), MSV_E_INVALID);

	/* A read-only handle lists but does not change. */
	msv_queue_options o = MSV_QUEUE_OPTIONS_INIT;
	o.path = f->path;
	o.read_only = 1;
	msv_queue *ro;
	OK(msv_queue_open(&ro, &o, &f->err));
	msv_queue_key *v;
	size_t n;
	OK(msv_queue_key_list(ro, &v, &n, &f->err));
	assert_int_equal(n, 2);
	msv_queue_keys_free(v, n);
	k = key("other", 2);
	assert_int_equal(msv_queue_key_add(ro, &k, &f->err), MSV_E_INVALID);
	assert_int_equal(msv_queue_reputation_override(ro, "uid:1", 5, T0, &f->err), MSV_E_INVALID);
	msv_queue_reputation *rv;
	assert_int_equal(msv_queue_reputation_take_overrides(ro, &rv, &n, &f->err), MSV_E_INVALID);
	msv_queue_close(ro);
}

static void reputation_rows(void **state)
{
	fixture *f = *state;
	msv_queue_reputation rows[2] = {
		{.identity = (char *)"uid:1000", .score = 87.5, .stamp_ms = T0, .rejections = 2,
		 .open_until_ms = T0 + 300000, .changed_ms = T0, .why = (char *)"2 rejected"},
		{.identity = (char *)"key:web", .score = 100, .stamp_ms = T0, .changed_ms = T0},
	};
	OK(msv_queue_reputation_put(f->q, rows, 2, &f->err));
	msv_queue_reputation *v = NULL;
	size_t n = 0;
	OK(msv_queue_reputation_list(f->q, &v, &n, &f->err));
	assert_int_equal(n, 2);
	assert_string_equal(v[0].identity, "key:web"); /* by identity */
	assert_null(v[0].why == NULL ? NULL : (v[0].why[0] ? v[0].why : NULL));
	assert_string_equal(v[1].identity, "uid:1000");
	assert_true(v[1].score == 87.5);
	assert_int_equal(v[1].stamp_ms, T0);
	assert_int_equal(v[1].rejections, 2);
	assert_int_equal(v[1].open_until_ms, T0 + 300000);
	assert_string_equal(v[1].why, "2 rejected");
	msv_queue_reputations_free(v, n);

	/* Put again: replaced by identity, not added. */
	rows[0].score = 40;
	rows[0].rejections = 0;
	rows[0].open_until_ms = 0;
	rows[0].why = (char *)"3 delivered";
	OK(msv_queue_reputation_put(f->q, rows, 1, &f->err));
	OK(msv_queue_reputation_list(f->q, &v, &n, &f->err));
	assert_int_equal(n, 2);
	assert_true(v[1].score == 40);
	assert_int_equal(v[1].open_until_ms, 0);
	assert_string_equal(v[1].why, "3 delivered");
	msv_queue_reputations_free(v, n);

	/* Out-of-range scores and malformed identities are refused, and a
	 * batch with one bad row stores none. */
	const double bad_scores[] = {-0.1, 100.01, NAN, INFINITY};
	for (size_t i = 0; i < 4; i++) {
		msv_queue_reputation b[2] = {rows[1], rows[0]};
		b[1].score = bad_scores[i];
		b[0].score = 1;
		assert_int_equal(msv_queue_reputation_put(f->q, b, 2, &f->err), MSV_E_INVALID);
		assert_int_equal(msv_queue_reputation_override(f->q, "uid:1", bad_scores[i], T0,
		                                               &f->err),
		                 MSV_E_INVALID);
	}
	OK(msv_queue_reputation_list(f->q, &v, &n, &f->err));
	assert_true(v[0].score == 100); /* key:web untouched by the refused batch */
	msv_queue_reputations_free(v, n);
	char long_id[302];
	memset(long_id, 'x', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';
	const char *bad_ids[] = {"", "key:a b", "uid:1\n", long_id, NULL};
	for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
		msv_queue_reputation b = rows[0];
		b.identity = (char *)bad_ids[i];
		assert_int_equal(msv_queue_reputation_put(f->q, &b, 1, &f->err), MSV_E_INVALID);
		assert_int_equal(msv_queue_reputation_override(f->q, bad_ids[i], 50, T0, &f->err),
		                 MSV_E_INVALID);
	}
	long_id[300] = '\0'; /* 300 octets is the maximum */
	OK(msv_queue_reputation_override(f->q, long_id, 50, T0, &f->err));
	msv_queue_reputation b = rows[0];
	b.why = (char *)"x\r\ny";
	assert_int_equal(msv_queue_reputation_put(f->q, &b, 1, &f->err), MSV_E_INVALID);
	OK(msv_queue_reputation_put(f->q, NULL, 0, &f->err));
}

static void reputation_overrides(void **state)
{
	fixture *f = *state;
	msv_queue_reputation row = {.identity = (char *)"key:web", .score = 30, .stamp_ms = T0,
	                            .rejections = 4, .open_until_ms = T0 + 1000,
	                            .changed_ms = T0, .why = (char *)"4 rejected"};
	OK(msv_queue_reputation_put(f->q, &row, 1, &f->err));
	msv_queue_reputation *v = NULL;
	size_t n = 99;
	OK(msv_queue_reputation_take_overrides(f->q, &v, &n, &f->err));
	assert_int_equal(n, 0);
	assert_null(v);

	OK(msv_queue_reputation_override(f->q, "key:web", 70, T0 + 10, &f->err));
	OK(msv_queue_reputation_override(f->q, "key:web", 80, T0 + 20, &f->err)); /* the last wins */
	OK(msv_queue_reputation_override(f->q, "ip:192.0.2.1", 0, T0 + 30, &f->err));
	/* The rows show the new scores at once, as msv_reputation_set leaves them. */
	OK(msv_queue_reputation_list(f->q, &v, &n, &f->err));
	assert_int_equal(n, 2);
	assert_string_equal(v[0].identity, "ip:192.0.2.1");
	assert_true(v[0].score == 0);
	assert_string_equal(v[1].identity, "key:web");
	assert_true(v[1].score == 80);
	assert_int_equal(v[1].stamp_ms, T0 + 20);
	assert_int_equal(v[1].changed_ms, T0 + 20);
	assert_int_equal(v[1].rejections, 0);
	assert_int_equal(v[1].open_until_ms, 0);
	assert_string_equal(v[1].why, "operator");
	msv_queue_reputations_free(v, n);

	/* Taken once, in order of time, then gone. */
	OK(msv_queue_reputation_take_overrides(f->q, &v, &n, &f->err));
	assert_int_equal(n, 2);
	assert_string_equal(v[0].identity, "key:web");
	assert_true(v[0].score == 80);
	assert_int_equal(v[0].stamp_ms, T0 + 20);
	assert_int_equal(v[0].rejections, 0);
	assert_int_equal(v[0].open_until_ms, 0);
	assert_string_equal(v[1].identity, "ip:192.0.2.1");
	assert_true(v[1].score == 0);
	msv_queue_reputations_free(v, n);
	OK(msv_queue_reputation_take_overrides(f->q, &v, &n, &f->err));
	assert_int_equal(n, 0);
	/* The reputation rows stay. */
	OK(msv_queue_reputation_list(f->q, &v, &n, &f->err));
	assert_int_equal(n, 2);
	msv_queue_reputations_free(v, n);
}

static void submit_one(fixture *f, const char *submitter, char id[MSV_QID_LEN + 1])
{
	static const char body[] = "Subject: t\r\n\r\nhello\r\n";
	const char *rcpt[] = {"bob@example.net"};
	msv_queue_message m;
	memset(&m, 0, sizeof(m));
	m.sender = "alice@example.org";
	m.rcpt = rcpt;
	m.nrcpt = 1;
	m.body = body;
	m.len = sizeof(body) - 1;
	m.submitter = submitter;
	char ids[1][MSV_QID_LEN + 1];
	OK(msv_queue_submit(f->q, &m, 1, T0, ids, &f->err));
	memcpy(id, ids[0], MSV_QID_LEN + 1);
}

/* Claims everything due and returns the submitter of message qid
 * (strdup'ed, or NULL), failing when qid is not among the jobs. */
static char *claimed_submitter(fixture *f, const char *qid, int64_t now)
{
	msv_queue_job *jobs = NULL;
	size_t n = 0;
	OK(msv_queue_claim(f->q, "w1", now, 60000, 100, &jobs, &n, &f->err));
	char *out = NULL;
	int seen = 0;
	for (size_t i = 0; i < n; i++) {
		if (strcmp(jobs[i].qid, qid))
			continue;
		seen = 1;
		out = jobs[i].submitter ? strdup(jobs[i].submitter) : NULL;
	}
	msv_queue_jobs_free(jobs, n);
	assert_true(seen);
	return out;
}

static void submitter_round_trip(void **state)
{
	fixture *f = *state;
	char a[MSV_QID_LEN + 1], b[MSV_QID_LEN + 1];
	submit_one(f, "key:web", a);
	char *s = claimed_submitter(f, a, T0);
	assert_non_null(s);
	assert_string_equal(s, "key:web");
	free(s);
	submit_one(f, NULL, b);
	assert_null(claimed_submitter(f, b, T0 + 1));

	/* A submitter that is not an identity is refused like any bad field. */
	static const char body[] = "x\r\n";
	const char *rcpt[] = {"bob@example.net"};
	msv_queue_message m;
	memset(&m, 0, sizeof(m));
	m.sender = "";
	m.rcpt = rcpt;
	m.nrcpt = 1;
	m.body = body;
	m.len = 3;
	m.submitter = "key:a\r\nb";
	char ids[1][MSV_QID_LEN + 1];
	assert_int_equal(msv_queue_submit(f->q, &m, 1, T0, ids, &f->err), MSV_E_INVALID);
	m.submitter = "";
	assert_int_equal(msv_queue_submit(f->q, &m, 1, T0, ids, &f->err), MSV_E_INVALID);
}

/* Scores ride in the outcomes' transaction: both land, or neither. */
static void record_with_scores(void **state)
{
	fixture *f = *state;
	char id[MSV_QID_LEN + 1];
	submit_one(f, "key:web", id);
	msv_queue_job *jobs = NULL;
	size_t n = 0;
	OK(msv_queue_claim(f->q, "w1", T0, 60000, 100, &jobs, &n, &f->err));
	assert_int_equal(n, 1);
	msv_queue_outcome o;
	memset(&o, 0, sizeof(o));
	o.rcpt_id = jobs[0].rcpt[0].id;
	o.state = MSV_RCPT_SENT;
	o.attempted = 1;
	o.at_ms = T0;
	o.reply_code = 250;
	o.enhanced = "2.0.0";
	o.text = "ok";
	msv_queue_jobs_free(jobs, n);
	msv_queue_reputation bad = {.identity = "key:web", .score = 101, .why = "x"}; /* no such score */
	assert_int_equal(msv_queue_record_with(f->q, &o, 1, &bad, 1, T0, &f->err), MSV_E_INVALID);
	msv_queue_stats st;
	OK(msv_queue_stats_get(f->q, T0, &st, &f->err));
	assert_int_equal(st.rcpt[MSV_RCPT_SENT], 0); /* the outcome did not land either */
	msv_queue_reputation good = {.identity = "key:web", .score = 42.5, .stamp_ms = T0,
	                             .changed_ms = T0, .why = "1 delivered"};
	OK(msv_queue_record_with(f->q, &o, 1, &good, 1, T0, &f->err));
	OK(msv_queue_stats_get(f->q, T0, &st, &f->err));
	assert_int_equal(st.rcpt[MSV_RCPT_SENT], 1);
	msv_queue_reputation *r = NULL;
	OK(msv_queue_reputation_list(f->q, &r, &n, &f->err));
	assert_int_equal(n, 1);
	assert_string_equal(r[0].identity, "key:web");
	assert_true(r[0].score == 42.5);
	msv_queue_reputations_free(r, n);
	/* Scores alone, no outcome: written all the same. */
	good.score = 40;
	OK(msv_queue_record_with(f->q, NULL, 0, &good, 1, T0, &f->err));
	OK(msv_queue_reputation_list(f->q, &r, &n, &f->err));
	assert_true(n == 1 && r[0].score == 40);
	msv_queue_reputations_free(r, n);
}

static int64_t user_version(const char *path)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	int64_t v = -1;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* The schema-2 tables exactly as missive 0.1 (schema 2) created them. */
static const char schema2_sql[] =
	"PRAGMA journal_mode = WAL;"
	"CREATE TABLE messages (id INTEGER PRIMARY KEY, qid TEXT NOT NULL UNIQUE,"
	" created_ms INTEGER NOT NULL, sender TEXT NOT NULL, route TEXT, message_id TEXT,"
	" dsn_notify TEXT, dsn_ret TEXT, envid TEXT, body_8bit INTEGER NOT NULL DEFAULT 0,"
	" smtputf8 INTEGER NOT NULL DEFAULT 0, size INTEGER NOT NULL, body BLOB NOT NULL);"
	"CREATE INDEX messages_created ON messages(created_ms);"
	"CREATE INDEX messages_mid ON messages(message_id);"
	"CREATE TABLE recipients (id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" msg INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,"
	" address TEXT NOT NULL, state INTEGER NOT NULL CHECK (state BETWEEN 0 AND 5),"
	" attempts INTEGER NOT NULL DEFAULT 0, next_attempt_ms INTEGER NOT NULL,"
	" updated_ms INTEGER NOT NULL, last_code INTEGER NOT NULL DEFAULT 0,"
	" last_enhanced TEXT NOT NULL DEFAULT '', last_text TEXT NOT NULL DEFAULT '',"
	" lease_owner TEXT, lease_expiry_ms INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX recipients_msg ON recipients(msg);"
	"CREATE INDEX recipients_due ON recipients(next_attempt_ms, lease_expiry_ms)"
	" WHERE state IN (0, 1);"
	"CREATE INDEX recipients_lease ON recipients(lease_owner) WHERE lease_owner IS NOT NULL;"
	"CREATE TABLE attempts (id INTEGER PRIMARY KEY,"
	" rcpt INTEGER NOT NULL REFERENCES recipients(id) ON DELETE CASCADE,"
	" at_ms INTEGER NOT NULL, latency_ms INTEGER NOT NULL, server TEXT,"
	" reply_code INTEGER NOT NULL, enhanced TEXT NOT NULL, text TEXT NOT NULL);"
	"CREATE INDEX attempts_rcpt ON attempts(rcpt);"
	"CREATE TABLE suppression (address TEXT PRIMARY KEY, reason TEXT NOT NULL,"
	" source TEXT NOT NULL, created_ms INTEGER NOT NULL) WITHOUT ROWID;"
	"INSERT INTO messages (qid, created_ms, sender, size, body)"
	" VALUES ('00000000000000aa', 1700000000000, 'alice@example.org', 3, x'6869');"
	"INSERT INTO recipients (msg, address, state, next_attempt_ms, updated_ms)"
	" VALUES (1, 'bob@example.net', 0, 1700000000000, 1700000000000);"
	"PRAGMA application_id = 1297307217;" /* "MSVQ" */
	"PRAGMA user_version = 2;";

/* A schema-2 file (no submitter column, no key or reputation tables) is
 * migrated on open: its messages stay claimable, with no submitter, and
 * the new tables work. */
static void migrate_schema_2(void **state)
{
	SQLITE_ONLY(); /* SQLite's file format */
	fixture *f = *state;
	char old[] = "00000000000000aa", fresh[MSV_QID_LEN + 1];
	msv_queue_close(f->q);
	f->q = NULL;
	unlink(f->path);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, schema2_sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(user_version(f->path), 2);

	/* Read-only handles do not migrate: they ask for a read-write open. */
	msv_queue_options o = MSV_QUEUE_OPTIONS_INIT;
	o.path = f->path;
	o.read_only = 1;
	assert_int_equal(msv_queue_open(&f->q, &o, &f->err), MSV_E_CONFIG);
	assert_non_null(strstr(f->err.message, "older schema"));
	o.read_only = 0;
	OK(msv_queue_open(&f->q, &o, &f->err));
	assert_int_equal(user_version(f->path), 4);

	submit_one(f, "uid:1000", fresh);
	assert_null(claimed_submitter(f, old, T0));
	char *s = claimed_submitter(f, fresh, T0 + 70000);
	assert_non_null(s);
	assert_string_equal(s, "uid:1000");
	free(s);
	msv_queue_key k = key("web", 3);
	OK(msv_queue_key_add(f->q, &k, &f->err));
	OK(msv_queue_reputation_override(f->q, "key:web", 50, T0, &f->err));

	/* Opening again finds schema 4 and changes nothing. */
	msv_queue_close(f->q);
	OK(msv_queue_open(&f->q, &o, &f->err));
	msv_queue_key *v;
	size_t n;
	OK(msv_queue_key_list(f->q, &v, &n, &f->err));
	assert_int_equal(n, 1);
	msv_queue_keys_free(v, n);
	msv_queue_reputation *rv;
	OK(msv_queue_reputation_take_overrides(f->q, &rv, &n, &f->err));
	assert_int_equal(n, 1);
	msv_queue_reputations_free(rv, n);
}

/* A file from a later missive (schema 5) is refused, not misread. */
static void newer_schema_refused(void **state)
{
	SQLITE_ONLY(); /* SQLite's file format */
	fixture *f = *state;
	msv_queue_close(f->q);
	f->q = NULL;
	sqlite3 *db;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 5", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	msv_queue_options o = MSV_QUEUE_OPTIONS_INIT;
	o.path = f->path;
	assert_int_equal(msv_queue_open(&f->q, &o, &f->err), MSV_E_CONFIG);
	assert_non_null(strstr(f->err.message, "newer missive"));
	assert_non_null(strstr(f->err.message, "schema 5"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(keys_lifecycle, setup, teardown),
		cmocka_unit_test_setup_teardown(record_with_scores, setup, teardown),
		cmocka_unit_test_setup_teardown(keys_validation, setup, teardown),
		cmocka_unit_test_setup_teardown(reputation_rows, setup, teardown),
		cmocka_unit_test_setup_teardown(reputation_overrides, setup, teardown),
		cmocka_unit_test_setup_teardown(submitter_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(migrate_schema_2, setup, teardown),
		cmocka_unit_test_setup_teardown(newer_schema_refused, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
