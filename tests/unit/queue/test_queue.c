/* Unit tests for src/queue: the durable queue over SQLite, written against
 * include/missive/queue.h, plus the group-commit counters and the queue-ID
 * hook from src/queue/queue_int.h.  Each test gets a fresh directory from
 * mkdtemp (under $TMPDIR, else /tmp) and a fresh database file in it. */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "missive/queue.h"
#include "queue/queue_int.h"

#define QUEUE_FIXTURE_PREFIX "msv-queue"
#include "queue/queue_fixture.h"

/* A message to rcpts with a body; everything else default. */
static msv_queue_message msg(const char *const *rcpt, size_t n, const char *body, size_t len)
{
	msv_queue_message m;
	memset(&m, 0, sizeof(m));
	m.sender = "alice@example.org";
	m.rcpt = rcpt;
	m.nrcpt = n;
	m.body = body;
	m.len = len;
	return m;
}

static void submit1(fixture *f, const char *const *rcpt, size_t n, int64_t now,
                    char id[MSV_QID_LEN + 1])
{
	static const char body[] = "Subject: t\r\n\r\nhello\r\n";
	msv_queue_message m = msg(rcpt, n, body, sizeof(body) - 1);
	char ids[1][MSV_QID_LEN + 1];
	OK(msv_queue_submit(f->q, &m, 1, now, ids, &f->err));
	memcpy(id, ids[0], MSV_QID_LEN + 1);
}

static msv_queue_rcpt_info *find_rcpt(msv_queue_info *info, const char *address)
{
	for (size_t i = 0; i < info->nrcpt; i++)
		if (strcmp(info->rcpt[i].address, address) == 0)
			return &info->rcpt[i];
	return NULL;
}

static int is_qid(const char *s)
{
	if (strlen(s) != MSV_QID_LEN)
		return 0;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return 0;
	return 1;
}

static msv_queue_outcome outcome(int64_t rcpt_id, msv_rcpt_state st, int attempted)
{
	msv_queue_outcome o;
	memset(&o, 0, sizeof(o));
	o.rcpt_id = rcpt_id;
	o.state = st;
	o.attempted = attempted;
	o.at_ms = T0;
	o.latency_ms = 12;
	o.server = "mx.example.net:25";
	return o;
}

/* ---- names ---- */

static void state_names(void **state)
{
	(void)state;
	static const char *const names[] = {"queued", "deferred", "sent", "bounced", "dead",
	                                    "suppressed"};
	for (unsigned i = 0; i < MSV_RCPT__COUNT; i++) {
		msv_rcpt_state s;
		assert_string_equal(msv_queue_rcpt_state_name((msv_rcpt_state)i), names[i]);
		assert_int_equal(msv_queue_rcpt_state_parse(names[i], &s), 0);
		assert_int_equal(s, i);
	}
	msv_rcpt_state s = MSV_RCPT_SENT;
	assert_int_equal(msv_queue_rcpt_state_parse("Queued", &s), -1);
	assert_int_equal(msv_queue_rcpt_state_parse("", &s), -1);
	assert_int_equal(s, MSV_RCPT_SENT);
	assert_string_equal(msv_queue_rcpt_state_name(MSV_RCPT__COUNT), "unknown");
}

/* ---- open ---- */

static void open_creates_private_file(void **state)
{
	SQLITE_ONLY(); /* SQLite's file format */
	fixture *f = *state;
	char id[MSV_QID_LEN + 1];
	const char *rc[] = {"bob@example.net"};
	submit1(f, rc, 1, T0, id);
	struct stat st;
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	char wal[300];
	snprintf(wal, sizeof(wal), "%s-wal", f->path);
	assert_int_equal(stat(wal, &st), 0); /* WAL mode */
	assert_int_equal(st.st_mode & 0777, 0600);

	/* Reopening finds the data (and the schema is not recreated). */
	msv_queue_close(f->q);
	f->q = NULL;
	msv_queue_options o = MSV_QUEUE_OPTIONS_INIT;
	o.path = f->path;
	OK(msv_queue_open(&f->q, &o, &f->err));
	msv_queue_info info;
	OK(msv_queue_show(f->q, id, &info, &f->err));
	assert_int_equal(info.nrcpt, 1);
	msv_queue_info_free(&info);
}

static void open_errors(void **state)
{
	SQLITE_ONLY(); /* SQLite's file format */
	fixture *f = *state;
	msv_queue *q = NULL;
	msv_error e;
	msv_queue_options o = MSV_QUEUE_OPTIONS_INIT;
	char p[400];

	/* Parent directory missing: named in the error. */
	snprintf(p, sizeof(p), "%s/nodir/queue.db", f->dir);
	o.path = p;
	assert_int_equal(msv_queue_open(&q, &o, &e), MSV_E_CONFIG);
	assert_int_equal(e.cls, MSV_CLASS_CONFIG);
	assert_null(q);
	char want[400];
	snprintf(want, sizeof(want), "directory %s/nodir does not exist", f->dir);
	assert_non_null(strstr(e.message, want));

	/* Read-only on a missing file: refused, path named, nothing created. */
	snprintf(p, sizeof(p), "%s/missing.db", f->dir);
	o.read_only = 1;
	assert_int_equal(msv_queue_open(&q, &o, &e), MSV_E_CONFIG);
	assert_non_null(strstr(e.message, p));
	assert_non_null(strstr(e.message, "does not exist"));
	assert_int_equal(access(p, F_OK), -1);

	/* Wrong options version, no path. */
	msv_queue_options bad = MSV_QUEUE_OPTIONS_INIT;
	bad.version = 99;
	bad.path = f->path;
	assert_int_equal(msv_queue_open(&q, &bad, &e), MSV_E_INVALID);
	msv_queue_options nopath = MSV_QUEUE_OPTIONS_INIT;
	assert_int_equal(msv_queue_open(&q, &nopath, &e), MSV_E_CONFIG);

	/* Some other SQLite database is not taken over. */
	snprintf(p, sizeof(p), "%s/other.db", f->dir);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "CREATE TABLE t(x)", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	o.path = p;
	o.read_only = 0;
	assert_int_equal(msv_queue_open(&q, &o, &e), MSV_E_CONFIG);
	assert_non_null(strstr(e.message, "not a missive queue"));

	/* A file from a newer missive is refused, not misread. */
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	o.path = f->path;
	assert_int_equal(msv_queue_open(&q, &o, &e), MSV_E_CONFIG);
	assert_non_null(strstr(e.message, "newer missive"));

	/* Not a database at all. */
	snprintf(p, sizeof(p), "%s/garbage.db", f->dir);
	FILE *fp = fopen(p, "w");
	assert_non_null(fp);
	fputs("this is not an SQLite database, just some text long enough to matter.\n", fp);
	fclose(fp);
	o.path = p;
	assert_int_equal(msv_queue_open(&q, &o, &e), MSV_E_CONFIG);
	assert_non_null(strstr(e.message, p));
}

static void read_only_handle(void **state)
{
	fixture *f = *state;
	char id[MSV_QID_LEN + 1];
	const char *rc[] = {"bob@example.net"};
	submit1(f, rc, 1, T0, id);

	msv_queue *ro;
	msv_queue_options o = MSV_QUEUE_OPTIONS_INIT;
	o.path = f->path;
	o.read_only = 1;
	OK(msv_queue_open(&ro, &o, &f->err));
	msv_queue_info info;
	OK(msv_queue_show(ro, id, &info, &f->err));
	assert_string_equal(info.rcpt[0].address, "bob@example.net");
	msv_queue_info_free(&info);
	msv_queue_stats st;
	OK(msv_queue_stats_get(ro, T0, &st, &f->err));
	assert_int_equal(st.messages, 1);

	/* Every change is refused, as a usage error. */
	msv_error e;
	msv_queue_message m = msg(rc, 1, "x", 1);
	char ids[1][MSV_QID_LEN + 1];
	assert_int_equal(msv_queue_submit(ro, &m, 1, T0, ids, &e), MSV_E_INVALID);
	assert_int_equal(e.cls, MSV_CLASS_USAGE);
	assert_non_null(strstr(e.message, "read-only"));
	msv_queue_job *jobs;
	size_t nj;
	assert_int_equal(msv_queue_claim(ro, "w", T0, 1000, 10, &jobs, &nj, &e), MSV_E_INVALID);
	assert_int_equal(msv_queue_suppress_add(ro, "a@b", "r", "manual", T0, &e), MSV_E_INVALID);
	assert_int_equal(msv_queue_purge(ro, MSV__RCPT_ALL_MASK, T0, NULL, &e), MSV_E_INVALID);
	msv_queue_close(ro);
}

/* ---- submit, claim, record, show ---- */

static void round_trip(void **state)
{
	fixture *f = *state;
	/* Binary body: NULs, CR, LF, high bytes, and a final byte that is not
	 * a line end. */
	char body[4096];
	for (size_t i = 0; i < sizeof(body); i++)
		body[i] = (char)(i * 7 + (i >> 5));
	body[0] = '\0';
	body[100] = '\0';
	body[sizeof(body) - 1] = '\0';
	const char *rc[] = {"bob@example.net", "carol@example.com"};
	msv_queue_message m = msg(rc, 2, body, sizeof(body));
	m.sender = "";
	m.message_id = "<1@example.org>";
	m.route = "smarthost";
	m.dsn_notify = "FAILURE,DELAY";
	m.dsn_ret = "HDRS";
	m.envid = "env-1";
	m.body_8bit = 1;
	m.smtputf8 = 1;
	char ids[1][MSV_QID_LEN + 1];
	OK(msv_queue_submit(f->q, &m, 1, T0, ids, &f->err));
	assert_true(is_qid(ids[0]));

	int64_t due;
	OK(msv_queue_next_due(f->q, &due, &f->err));
	assert_int_equal(due, T0);

	msv_queue_job *jobs;
	size_t nj;
	OK(msv_queue_claim(f->q, "worker-1", T0, 60000, 100, &jobs, &nj, &f->err));
	assert_int_equal(nj, 1);
	msv_queue_job *j = &jobs[0];
	assert_string_equal(j->qid, ids[0]);
	assert_int_equal(j->created_ms, T0);
	assert_string_equal(j->sender, "");
	assert_string_equal(j->message_id, "<1@example.org>");
	assert_string_equal(j->route, "smarthost");
	assert_string_equal(j->dsn_notify, "FAILURE,DELAY");
	assert_string_equal(j->dsn_ret, "HDRS");
	assert_string_equal(j->envid, "env-1");
	assert_int_equal(j->body_8bit, 1);
	assert_int_equal(j->smtputf8, 1);
	assert_int_equal(j->len, sizeof(body));
	assert_memory_equal(j->body, body, sizeof(body));
	assert_int_equal(j->nrcpt, 2);
	assert_string_equal(j->rcpt[0].address, "bob@example.net");
	assert_string_equal(j->rcpt[1].address, "carol@example.com");
	assert_int_equal(j->rcpt[0].attempts, 0);
	int64_t bob = j->rcpt[0].id, carol = j->rcpt[1].id;
	msv_queue_jobs_free(jobs, nj);

	msv_queue_info info;
	OK(msv_queue_show(f->q, ids[0], &info, &f->err));
	assert_string_equal(info.qid, ids[0]);
	assert_int_equal(info.size, sizeof(body));
	assert_string_equal(info.envid, "env-1");
	assert_int_equal(info.nrcpt, 2);
	assert_string_equal(info.rcpt[0].lease_owner, "worker-1");
	assert_int_equal(info.rcpt[0].lease_expiry_ms, T0 + 60000);
	assert_string_equal(info.rcpt[0].last_text, "");
	assert_string_equal(info.rcpt[0].last_enhanced, "");
	assert_int_equal(info.nattempts, 0);
	msv_queue_info_free(&info);

	msv_queue_outcome o[2] = {outcome(bob, MSV_RCPT_SENT, 1),
	                          outcome(carol, MSV_RCPT_DEFERRED, 1)};
	o[0].reply_code = 250;
	o[0].enhanced = "2.0.0";
	o[0].text = "ok queued as ABC";
	o[1].reply_code = 451;
	o[1].enhanced = "4.7.1";
	o[1].text = "try later";
	o[1].next_attempt_ms = T0 + 300000;
	o[1].at_ms = T0 + 5;
	OK(msv_queue_record(f->q, o, 2, T0 + 100, &f->err));

	OK(msv_queue_show(f->q, ids[0], &info, &f->err));
	msv_queue_rcpt_info *b = find_rcpt(&info, "bob@example.net");
	msv_queue_rcpt_info *c = find_rcpt(&info, "carol@example.com");
	assert_non_null(b);
	assert_non_null(c);
	assert_int_equal(b->state, MSV_RCPT_SENT);
	assert_int_equal(b->attempts, 1);
	assert_int_equal(b->last_code, 250);
	assert_string_equal(b->last_enhanced, "2.0.0");
	assert_string_equal(b->last_text, "ok queued as ABC");
	assert_null(b->lease_owner);
	assert_int_equal(b->updated_ms, T0 + 100);
	assert_int_equal(c->state, MSV_RCPT_DEFERRED);
	assert_int_equal(c->next_attempt_ms, T0 + 300000);
	assert_int_equal(c->last_code, 451);
	assert_null(c->lease_owner);
	assert_int_equal(info.nattempts, 2);
	assert_int_equal(info.attempts[0].rcpt_id, bob); /* oldest first */
	assert_int_equal(info.attempts[0].reply_code, 250);
	assert_string_equal(info.attempts[0].server, "mx.example.net:25");
	assert_int_equal(info.attempts[0].latency_ms, 12);
	assert_int_equal(info.attempts[1].rcpt_id, carol);
	assert_string_equal(info.attempts[1].text, "try later");
	msv_queue_info_free(&info);

	OK(msv_queue_next_due(f->q, &due, &f->err));
	assert_int_equal(due, T0 + 300000);
}

static void body_edge_cases(void **state)
{
	fixture *f = *state;
	const char *rc[] = {"bob@example.net"};
	/* Empty body, and a body of NULs only. */
	static const char nuls[3] = {0, 0, 0};
	msv_queue_message m[2] = {msg(rc, 1, NULL, 0), msg(rc, 1, nuls, 3)};
	/* DSN without ENVID: the queue ID becomes the ENVID. */
	m[1].dsn_notify = "SUCCESS";
	char ids[2][MSV_QID_LEN + 1];
	OK(msv_queue_submit(f->q, m, 2, T0, ids, &f->err));
	assert_string_not_equal(ids[0], ids[1]);
	msv_queue_job *jobs;
	size_t nj;
	OK(msv_queue_claim(f->q, "w", T0, 1000, 10, &jobs, &nj, &f->err));
	assert_int_equal(nj, 2);
	for (size_t i = 0; i < nj; i++) {
		if (strcmp(jobs[i].qid, ids[0]) == 0) {
			assert_int_equal(jobs[i].len, 0);
			assert_non_null(jobs[i].body);
			assert_null(jobs[i].envid);
			assert_null(jobs[i].route);
		} else {
			assert_string_equal(jobs[i].qid, ids[1]);
			assert_int_equal(jobs[i].len, 3);
			assert_memory_equal(jobs[i].body, nuls, 3);
			assert_string_equal(jobs[i].envid, ids[1]);
		}
	}
	msv_queue_jobs_free(jobs, nj);
}

static void submit_validation(void **state)
{
	fixture *f = *state;
	msv_error e;
	char ids[2][MSV_QID_LEN + 1];
	const char *good[] = {"bob@example.net"};
	const char *crlf[] = {"bob@example.net\r\nRCPT TO:<evil@example.com>"};
	const char *empty[] = {""};

	msv_queue_message m = msg(good, 0, "x", 1);
	assert_int_equal(msv_queue_submit(f->q, &m, 1, T0, ids, &e), MSV_E_INVALID);
	assert_int_equal(e.cls, MSV_CLASS_USAGE);
	m = msg(crlf, 1, "x", 1);
	assert_int_equal(msv_queue_submit(f->q, &m, 1, T0, ids, &e), MSV_E_INVALID);
	assert_non_null(strstr(e.message, "line break"));
	m = msg(empty, 1, "x", 1);
	assert_int_equal(msv_queue_submit(f->q, &m, 1, T0, ids, &e), MSV_E_BAD_ADDRESS);
	m = msg(good, 1, "x", 1);
	m.sender = "a@b\n";
	assert_int_equal(msv_queue_submit(f->q, &m, 1, T0, ids, &e), MSV_E_INVALID);
	m = msg(good, 1, NULL, 5);
	assert_int_equal(msv_queue_submit(f->q, &m, 1, T0, ids, &e), MSV_E_INVALID);
	m = msg(good, 1, "x", 1);
	msv_rcpt_state sent = MSV_RCPT_SENT;
	m.initial = &sent;
	assert_int_equal(msv_queue_submit(f->q, &m, 1, T0, ids, &e), MSV_E_INVALID);
	m = msg(good, 1, "x", 1);
	m.envid = "a\rb";
	assert_int_equal(msv_queue_submit(f->q, &m, 1, T0, ids, &e), MSV_E_INVALID);

	/* All or nothing: the second message is bad, the first is not stored. */
	msv_queue_message two[2] = {msg(good, 1, "x", 1), msg(crlf, 1, "x", 1)};
	assert_int_equal(msv_queue_submit(f->q, two, 2, T0, ids, &e), MSV_E_INVALID);
	msv_queue_stats st;
	OK(msv_queue_stats_get(f->q, T0, &st, &f->err));
	assert_int_equal(st.messages, 0);

	/* n = 0 is a no-op. */
	OK(msv_queue_submit(f->q, NULL, 0, T0, NULL, &f->err));
}

static void initial_suppressed(void **state)
{
	fixture *f = *state;
	const char *rc[] = {"bob@example.net", "blocked@example.net"};
	msv_rcpt_state init[2] = {MSV_RCPT_QUEUED, MSV_RCPT_SUPPRESSED};
	msv_queue_message m = msg(rc, 2, "x", 1);
	m.initial = init;
	char ids[1][MSV_QID_LEN + 1];
	OK(msv_queue_submit(f->q, &m, 1, T0, ids, &f->err));
	msv_queue_job *jobs;
	size_t nj;
	OK(msv_queue_claim(f->q, "w", T0, 1000, 10, &jobs, &nj, &f->err));
	assert_int_equal(nj, 1);
	assert_int_equal(jobs[0].nrcpt, 1);
	assert_string_equal(jobs[0].rcpt[0].address, "bob@example.net");
	msv_queue_jobs_free(jobs, nj);
	msv_queue_stats st;
	OK(msv_queue_stats_get(f->q, T0, &st, &f->err));
	assert_int_equal(st.rcpt[MSV_RCPT_SUPPRESSED], 1);
	assert_int_equal(st.rcpt[MSV_RCPT_QUEUED], 1);
}

/* ---- leases ---- */

static void lease_exclusive(void **state)
{
	fixture *f = *state;
	char id[MSV_QID_LEN + 1];
	const char *rc[] = {"a@example.net", "b@example.net", "c@example.net"};
	submit1(f, rc, 3, T0, id);

	msv_queue_job *ja, *jb, *jc;
	size_t na, nb, nc;
	OK(msv_queue_claim(f->q, "A", T0, 60000, 2, &ja, &na, &f->err));
	assert_int_equal(na, 1);
	assert_int_equal(ja[0].nrcpt, 2);
	OK(msv_queue_claim(f->q, "B", T0, 60000, 10, &jb, &nb, &f->err));
	assert_int_equal(nb, 1);
	assert_int_equal(jb[0].nrcpt, 1);
	/* No recipient went to both. */
	for (size_t i = 0; i < ja[0].nrcpt; i++)
		assert_int_not_equal(ja[0].rcpt[i].id, jb[0].rcpt[0].id);
	assert_string_equal(ja[0].rcpt[0].address, "a@example.net");
	assert_string_equal(ja[0].rcpt[1].address, "b@example.net");
	assert_string_equal(jb[0].rcpt[0].address, "c@example.net");
	/* Everything is leased now: nothing for anyone. */
	OK(msv_queue_claim(f->q, "C", T0 + 1000, 60000, 10, &jc, &nc, &f->err));
	assert_int_equal(nc, 0);
	assert_null(jc);

	char **owners;
	size_t no;
	OK(msv_queue_lease_owners(f->q, &owners, &no, &f->err));
	assert_int_equal(no, 2);
	assert_string_equal(owners[0], "A");
	assert_string_equal(owners[1], "B");
	msv_queue_strings_free(owners, no);

	msv_queue_stats st;
	OK(msv_queue_stats_get(f->q, T0, &st, &f->err));
	assert_int_equal(st.leased, 3);
	OK(msv_queue_stats_get(f->q, T0 + 60000, &st, &f->err));
	assert_int_equal(st.leased, 0); /* expired leases are not live */

	/* While leased, next_due points at the lease expiry, not the past. */
	int64_t due;
	OK(msv_queue_next_due(f->q, &due, &f->err));
	assert_int_equal(due, T0 + 60000);

	msv_queue_jobs_free(ja, na);
	msv_queue_jobs_free(jb, nb);
}

static void lease_expiry_reclaim(void **state)
{
	fixture *f = *state;
	char id[MSV_QID_LEN + 1];
	const char *rc[] = {"a@example.net"};
	submit1(f, rc, 1, T0, id);
	msv_queue_job *j;
	size_t n;
	OK(msv_queue_claim(f->q, "crashed", T0, 1000, 10, &j, &n, &f->err));
	assert_int_equal(n, 1);
	int64_t rid = j[0].rcpt[0].id;
	msv_queue_jobs_free(j, n);
	OK(msv_queue_claim(f->q, "other", T0 + 999, 1000, 10, &j, &n, &f->err));
	assert_int_equal(n, 0);
	/* At the expiry the lease is dead: at-least-once. */
	OK(msv_queue_claim(f->q, "other", T0 + 1000, 1000, 10, &j, &n, &f->err));
	assert_int_equal(n, 1);
	assert_int_equal(j[0].rcpt[0].id, rid);
	msv_queue_jobs_free(j, n);
	msv_queue_info info;
	OK(msv_queue_show(f->q, id, &info, &f->err));
	assert_string_equal(info.rcpt[0].lease_owner, "other");
	assert_int_equal(info.rcpt[0].lease_expiry_ms, T0 + 2000);
	msv_queue_info_free(&info);
}

/* A renewed lease keeps its recipients from others past the first expiry;
 * other owners' leases are left as they are. */
static void renew_keeps_lease(void **state)
{
	fixture *f = *state;
	char id[MSV_QID_LEN + 1];
	const char *rc[] = {"a@example.net", "b@example.net"};
	submit1(f, rc, 2, T0, id);
	msv_queue_job *j;
	size_t n, renewed;
	OK(msv_queue_claim(f->q, "live", T0, 1000, 1, &j, &n, &f->err));
	msv_queue_jobs_free(j, n);
	OK(msv_queue_claim(f->q, "other", T0, 1000, 1, &j, &n, &f->err));
	msv_queue_jobs_free(j, n);
	OK(msv_queue_renew(f->q, "live", T0 + 5000, &renewed, &f->err));
	assert_int_equal(renewed, 1);
	OK(msv_queue_renew(f->q, "nobody", T0 + 5000, &renewed, &f->err));
	assert_int_equal(renewed, 0);
	/* Past the first expiry only the unrenewed one is taken over. */
	OK(msv_queue_claim(f->q, "taker", T0 + 1000, 1000, 10, &j, &n, &f->err));
	assert_int_equal(n, 1);
	assert_int_equal(j[0].nrcpt, 1);
	msv_queue_jobs_free(j, n);
	msv_queue_info info;
	OK(msv_queue_show(f->q, id, &info, &f->err));
	for (size_t i = 0; i < info.nrcpt; i++)
		if (!strcmp(info.rcpt[i].lease_owner, "live"))
			assert_int_equal(info.rcpt[i].lease_expiry_ms, T0 + 5000);
		else
			assert_string_equal(info.rcpt[i].lease_owner, "taker");
	msv_queue_info_free(&info);
	assert_int_equal(msv_queue_renew(NULL, "live", T0, NULL, &f->err), MSV_E_INVALID);
}

static void release_and_owners(void **state)
{
	fixture *f = *state;
	char id[MSV_QID_LEN + 1];
	const char *rc[] = {"a@example.net", "b@example.net"};
	submit1(f, rc, 2, T0, id);
	msv_queue_job *j;
	size_t n, released;
	OK(msv_queue_claim(f->q, "w1", T0, 600000, 1, &j, &n, &f->err));
	msv_queue_jobs_free(j, n);
	OK(msv_queue_claim(f->q, "w2", T0, 600000, 1, &j, &n, &f->err));
	msv_queue_jobs_free(j, n);
	OK(msv_queue_release(f->q, "w1", &released, &f->err));
	assert_int_equal(released, 1);
	OK(msv_queue_release(f->q, "nobody", &released, &f->err));
	assert_int_equal(released, 0);
	OK(msv_queue_release(f->q, "w2", NULL, &f->err));
	char **owners;
	size_t no;
	OK(msv_queue_lease_owners(f->q, &owners, &no, &f->err));
	assert_int_equal(no, 0);
	assert_null(owners);
	/* Released recipients are claimable at once. */
	OK(msv_queue_claim(f->q, "w3", T0 + 1, 1000, 10, &j, &n, &f->err));
	assert_int_equal(n, 1);
	assert_int_equal(j[0].nrcpt, 2);
	msv_queue_jobs_free(j, n);
}

static void deferred_not_due(void **state)
{
	fixture *f = *state;
	char id[MSV_QID_LEN + 1];
	const char *rc[] = {"a@example.net"};
	submit1(f, rc, 1, T0, id);
	msv_queue_job *j;
	size_t n;
	OK(msv_queue_claim(f->q, "w", T0, 1000, 10, &j, &n, &f->err));
	msv_queue_outcome o = outcome(j[0].rcpt[0].id, MSV_RCPT_DEFERRED, 1);
	o.next_attempt_ms = T0 + 60000;
	o.reply_code = 421;
	msv_queue_jobs_free(j, n);
	OK(msv_queue_record(f->q, &o, 1, T0 + 10, &f->err));
	/* The lease ended with the record, but the schedule holds. */
	OK(msv_queue_claim(f->q, "w", T0 + 59999, 1000, 10, &j, &n, &f->err));
	assert_int_equal(n, 0);
	int64_t due;
	OK(msv_queue_next_due(f->q, &due, &f->err));
	assert_int_equal(due, T0 + 60000);
	OK(msv_queue_claim(f->q, "w", T0 + 60000, 1000, 10, &j, &n, &f->err));
	assert_int_equal(n, 1);
	assert_int_equal(j[0].rcpt[0].attempts, 1);
	msv_queue_jobs_free(j, n);
}

static void claim_order_and_grouping(void **state)
{
	fixture *f = *state;
	char old[MSV_QID_LEN + 1], mid[MSV_QID_LEN + 1], young[MSV_QID_LEN + 1];
	const char *r1[] = {"x1@example.net", "x2@example.net", "x3@example.net"};
	const char *r2[] = {"y@example.net"};
	const char *r3[] = {"z@example.net"};
	submit1(f, r2, 1, T0 + 20, young);
	submit1(f, r1, 3, T0, old);
	submit1(f, r3, 1, T0 + 10, mid);
	/* Not due yet at T0 + 5: only the oldest. */
	msv_queue_job *j;
	size_t n;
	OK(msv_queue_claim(f->q, "w", T0 + 5, 1000, 100, &j, &n, &f->err));
	assert_int_equal(n, 1);
	assert_string_equal(j[0].qid, old);
	assert_int_equal(j[0].nrcpt, 3); /* one job per message, its body once */
	msv_queue_jobs_free(j, n);
	OK(msv_queue_claim(f->q, "w", T0 + 100, 1000, 100, &j, &n, &f->err));
	assert_int_equal(n, 2);
	assert_string_equal(j[0].qid, mid);
	assert_string_equal(j[1].qid, young);
	msv_queue_jobs_free(j, n);

	/* max_rcpt 0: nothing, no error. */
	OK(msv_queue_claim(f->q, "w", T0 + 5000, 1000, 0, &j, &n, &f->err));
	assert_int_equal(n, 0);
	msv_error e;
	assert_int_equal(msv_queue_claim(f->q, "w", T0, 0, 10, &j, &n, &e), MSV_E_INVALID);
	assert_int_equal(msv_queue_claim(f->q, "", T0, 10, 10, &j, &n, &e), MSV_E_INVALID);
}

/* ---- outcomes ---- */

static void record_states(void **state)
{
	fixture *f = *state;
	char id[MSV_QID_LEN + 1];
	const char *rc[] = {"sent@x.net", "bounced@x.net", "dead@x.net", "supp@x.net",
	                    "deferred@x.net"};
	submit1(f, rc, 5, T0, id);
	msv_queue_job *j;
	size_t n;
	OK(msv_queue_claim(f->q, "w", T0, 1000, 10, &j, &n, &f->err));
	assert_int_equal(j[0].nrcpt, 5);
	msv_queue_outcome o[5] = {
		outcome(j[0].rcpt[0].id, MSV_RCPT_SENT, 1),
		outcome(j[0].rcpt[1].id, MSV_RCPT_BOUNCED, 1),
		outcome(j[0].rcpt[2].id, MSV_RCPT_DEAD, 0),       /* expired, no attempt */
		outcome(j[0].rcpt[3].id, MSV_RCPT_SUPPRESSED, 0),
		outcome(j[0].rcpt[4].id, MSV_RCPT_DEFERRED, 1),
	};
	o[1].reply_code = 550;
	o[1].enhanced = "5.1.1";
	o[1].text = "no such user";
	o[2].text = "gave up after 5 days";
	o[4].next_attempt_ms = T0 + 1000;
	msv_queue_jobs_free(j, n);
	OK(msv_queue_record(f->q, o, 5, T0 + 50, &f->err));

	msv_queue_info info;
	OK(msv_queue_show(f->q, id, &info, &f->err));
	assert_int_equal(find_rcpt(&info, "sent@x.net")->state, MSV_RCPT_SENT);
	assert_int_equal(find_rcpt(&info, "sent@x.net")->attempts, 1);
	assert_int_equal(find_rcpt(&info, "bounced@x.net")->state, MSV_RCPT_BOUNCED);
	assert_string_equal(find_rcpt(&info, "bounced@x.net")->last_enhanced, "5.1.1");
	assert_int_equal(find_rcpt(&info, "dead@x.net")->state, MSV_RCPT_DEAD);
	assert_int_equal(find_rcpt(&info, "dead@x.net")->attempts, 0);
	assert_string_equal(find_rcpt(&info, "dead@x.net")->last_text, "gave up after 5 days");
	assert_int_equal(find_rcpt(&info, "supp@x.net")->state, MSV_RCPT_SUPPRESSED);
	assert_int_equal(find_rcpt(&info, "deferred@x.net")->state, MSV_RCPT_DEFERRED);
	for (size_t i = 0; i < info.nrcpt; i++)
		assert_null(info.rcpt[i].lease_owner);
	assert_int_equal(info.nattempts, 3); /* only attempted outcomes */
	msv_queue_info_free(&info);

	msv_queue_stats st;
	OK(msv_queue_stats_get(f->q, T0 + 50, &st, &f->err));
	assert_int_equal(st.rcpt[MSV_RCPT_SENT], 1);
	assert_int_equal(st.rcpt[MSV_RCPT_BOUNCED], 1);
	assert_int_equal(st.rcpt[MSV_RCPT_DEAD], 1);
	assert_int_equal(st.rcpt[MSV_RCPT_SUPPRESSED], 1);
	assert_int_equal(st.rcpt[MSV_RCPT_DEFERRED], 1);
	assert_int_equal(st.rcpt[MSV_RCPT_QUEUED], 0);
	assert_int_equal(st.leased, 0);

	/* Bad outcomes are refused before anything is written. */
	msv_error e;
	msv_queue_outcome bad = outcome(o[4].rcpt_id, MSV_RCPT_QUEUED, 1);
	assert_int_equal(msv_queue_record(f->q, &bad, 1, T0, &e), MSV_E_INVALID);
	/* An outcome for a recipient that no longer exists is dropped. */
	msv_queue_outcome gone = outcome(999999, MSV_RCPT_SENT, 1);
	OK(msv_queue_record(f->q, &gone, 1, T0, &f->err));
}

/* ---- operator changes ---- */

static void retry_requeue_purge(void **state)
{
	fixture *f = *state;
	char a[MSV_QID_LEN + 1], b[MSV_QID_LEN + 1];
	const char *ra[] = {"a1@x.net", "a2@x.net"};
	const char *rb[] = {"b1@x.net"};
	submit1(f, ra, 2, T0, a);
	submit1(f, rb, 1, T0, b);
	msv_queue_job *j;
	size_t n, changed;
	OK(msv_queue_claim(f->q, "w", T0, 1000, 10, &j, &n, &f->err));
	assert_int_equal(n, 2);
	msv_queue_outcome o[3];
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		for (size_t r = 0; r < j[i].nrcpt; r++) {
			const char *addr = j[i].rcpt[r].address;
			if (strcmp(addr, "a1@x.net") == 0)
				o[k] = outcome(j[i].rcpt[r].id, MSV_RCPT_DEFERRED, 1);
			else if (strcmp(addr, "a2@x.net") == 0)
				o[k] = outcome(j[i].rcpt[r].id, MSV_RCPT_BOUNCED, 1);
			else
				o[k] = outcome(j[i].rcpt[r].id, MSV_RCPT_SENT, 1);
			o[k++].next_attempt_ms = T0 + 3600000;
		}
	}
	msv_queue_jobs_free(j, n);
	OK(msv_queue_record(f->q, o, 3, T0 + 10, &f->err));

	/* retry: the deferred recipient is due now. */
	OK(msv_queue_retry(f->q, a, T0 + 20, &changed, &f->err));
	assert_int_equal(changed, 1);
	OK(msv_queue_retry(f->q, NULL, T0 + 20, &changed, &f->err));
	assert_int_equal(changed, 0); /* already due */
	OK(msv_queue_claim(f->q, "w", T0 + 20, 1000, 10, &j, &n, &f->err));
	assert_int_equal(n, 1);
	assert_string_equal(j[0].rcpt[0].address, "a1@x.net");
	msv_queue_outcome d = outcome(j[0].rcpt[0].id, MSV_RCPT_DEAD, 1);
	msv_queue_jobs_free(j, n);
	OK(msv_queue_record(f->q, &d, 1, T0 + 30, &f->err));

	/* requeue: both dead letters of a go back to queued, due now. */
	msv_error e;
	assert_int_equal(msv_queue_retry(f->q, "0123456789abcdef", T0, &changed, &e),
	                 MSV_E_INVALID);
	assert_non_null(strstr(e.message, "no such message"));
	assert_int_equal(msv_queue_requeue(f->q, "nope", T0, &changed, &e), MSV_E_INVALID);
	OK(msv_queue_requeue(f->q, b, T0 + 40, &changed, &f->err));
	assert_int_equal(changed, 0); /* b was sent: nothing dead */
	OK(msv_queue_requeue(f->q, a, T0 + 40, &changed, &f->err));
	assert_int_equal(changed, 2);
	msv_queue_info info;
	OK(msv_queue_show(f->q, a, &info, &f->err));
	for (size_t i = 0; i < info.nrcpt; i++) {
		assert_int_equal(info.rcpt[i].state, MSV_RCPT_QUEUED);
		assert_int_equal(info.rcpt[i].next_attempt_ms, T0 + 40);
	}
	assert_int_equal(find_rcpt(&info, "a1@x.net")->attempts, 2); /* history stays */
	msv_queue_info_free(&info);

	/* purge: b is all sent and old enough; a is pending. */
	unsigned done = 1u << MSV_RCPT_SENT;
	size_t removed;
	OK(msv_queue_purge(f->q, done, T0 + 9, &removed, &f->err));
	assert_int_equal(removed, 0); /* b updated at T0 + 10, after before_ms */
	OK(msv_queue_purge(f->q, done, T0 + 10, &removed, &f->err));
	assert_int_equal(removed, 1);
	assert_int_equal(msv_queue_show(f->q, b, &info, &e), MSV_E_INVALID);
	assert_non_null(strstr(e.message, "no such message"));
	OK(msv_queue_purge(f->q, done, T0 + 1000000, &removed, &f->err));
	assert_int_equal(removed, 0);
	OK(msv_queue_purge(f->q, MSV__RCPT_ALL_MASK, T0 + 1000000, &removed, &f->err));
	assert_int_equal(removed, 1);
	msv_queue_stats st;
	OK(msv_queue_stats_get(f->q, T0, &st, &f->err));
	assert_int_equal(st.messages, 0);
	for (unsigned i = 0; i < MSV_RCPT__COUNT; i++)
		assert_int_equal(st.rcpt[i], 0); /* cascaded */
	assert_int_equal(st.oldest_pending_ms, -1);
	int64_t due;
	OK(msv_queue_next_due(f->q, &due, &f->err));
	assert_int_equal(due, -1);
}

static void stats_counts(void **state)
{
	fixture *f = *state;
	msv_queue_stats st;
	OK(msv_queue_stats_get(f->q, T0, &st, &f->err));
	assert_int_equal(st.messages, 0);
	assert_int_equal(st.oldest_pending_ms, -1);
	char a[MSV_QID_LEN + 1], b[MSV_QID_LEN + 1];
	const char *r2[] = {"1@x.net", "2@x.net"};
	const char *r1[] = {"3@x.net"};
	submit1(f, r2, 2, T0 + 100, a);
	submit1(f, r1, 1, T0 + 50, b);
	OK(msv_queue_stats_get(f->q, T0, &st, &f->err));
	assert_int_equal(st.messages, 2);
	assert_int_equal(st.rcpt[MSV_RCPT_QUEUED], 3);
	assert_int_equal(st.oldest_pending_ms, T0 + 50);
	/* Once b is sent, a is the oldest pending. */
	msv_queue_job *j;
	size_t n;
	OK(msv_queue_claim(f->q, "w", T0 + 60, 1000, 10, &j, &n, &f->err));
	assert_int_equal(n, 1);
	msv_queue_outcome o = outcome(j[0].rcpt[0].id, MSV_RCPT_SENT, 1);
	msv_queue_jobs_free(j, n);
	OK(msv_queue_record(f->q, &o, 1, T0 + 70, &f->err));
	OK(msv_queue_stats_get(f->q, T0, &st, &f->err));
	assert_int_equal(st.oldest_pending_ms, T0 + 100);
	assert_int_equal(st.rcpt[MSV_RCPT_SENT], 1);
	assert_int_equal(st.rcpt[MSV_RCPT_QUEUED], 2);
}

static void list_masks(void **state)
{
	fixture *f = *state;
	char ids[3][MSV_QID_LEN + 1];
	const char *r0[] = {"q0@x.net", "s0@x.net"};
	const char *r1[] = {"q1@x.net"};
	const char *r2[] = {"s2@x.net"};
	submit1(f, r0, 2, T0, ids[0]);
	submit1(f, r1, 1, T0 + 1, ids[1]);
	submit1(f, r2, 1, T0 + 2, ids[2]);
	/* Send s0 and s2. */
	msv_queue_job *j;
	size_t n;
	OK(msv_queue_claim(f->q, "w", T0 + 10, 1000, 10, &j, &n, &f->err));
	msv_queue_outcome o[4];
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		for (size_t r = 0; r < j[i].nrcpt; r++)
			if (j[i].rcpt[r].address[0] == 's')
				o[k++] = outcome(j[i].rcpt[r].id, MSV_RCPT_SENT, 1);
	msv_queue_jobs_free(j, n);
	assert_int_equal(k, 2);
	OK(msv_queue_record(f->q, o, k, T0 + 20, &f->err));
	OK(msv_queue_release(f->q, "w", NULL, &f->err));

	msv_queue_info *v;
	size_t nv;
	/* Pending: messages 1 and 0, newest first, only the queued recipients. */
	OK(msv_queue_list(f->q, MSV__RCPT_PENDING_MASK, 0, &v, &nv, &f->err));
	assert_int_equal(nv, 2);
	assert_string_equal(v[0].qid, ids[1]);
	assert_string_equal(v[1].qid, ids[0]);
	assert_int_equal(v[1].nrcpt, 1);
	assert_string_equal(v[1].rcpt[0].address, "q0@x.net");
	assert_int_equal(v[1].nattempts, 0);
	assert_null(v[1].attempts);
	assert_string_equal(v[1].sender, "alice@example.org");
	msv_queue_infos_free(v, nv);
	/* Sent: 2 then 0. */
	OK(msv_queue_list(f->q, 1u << MSV_RCPT_SENT, 0, &v, &nv, &f->err));
	assert_int_equal(nv, 2);
	assert_string_equal(v[0].qid, ids[2]);
	assert_string_equal(v[1].qid, ids[0]);
	assert_string_equal(v[1].rcpt[0].address, "s0@x.net");
	assert_int_equal(v[1].rcpt[0].state, MSV_RCPT_SENT);
	msv_queue_infos_free(v, nv);
	/* Everything, limited to 2. */
	OK(msv_queue_list(f->q, MSV__RCPT_ALL_MASK, 2, &v, &nv, &f->err));
	assert_int_equal(nv, 2);
	assert_string_equal(v[0].qid, ids[2]);
	assert_string_equal(v[1].qid, ids[1]);
	msv_queue_infos_free(v, nv);
	OK(msv_queue_list(f->q, MSV__RCPT_ALL_MASK, 0, &v, &nv, &f->err));
	assert_int_equal(nv, 3);
	assert_int_equal(v[2].nrcpt, 2);
	msv_queue_infos_free(v, nv);
	/* Dead letters: none.  Empty mask: none. */
	OK(msv_queue_list(f->q, MSV__RCPT_DEAD_MASK, 0, &v, &nv, &f->err));
	assert_int_equal(nv, 0);
	assert_null(v);
	OK(msv_queue_list(f->q, 0, 0, &v, &nv, &f->err));
	assert_int_equal(nv, 0);
}

static void show_unknown_and_uppercase(void **state)
{
	fixture *f = *state;
	char id[MSV_QID_LEN + 1];
	const char *rc[] = {"a@x.net"};
	submit1(f, rc, 1, T0, id);
	msv_queue_info info;
	msv_error e;
	assert_int_equal(msv_queue_show(f->q, "0000000000000000", &info, &e), MSV_E_INVALID);
	assert_non_null(strstr(e.message, "no such message"));
	assert_int_equal(msv_queue_show(f->q, "xyz", &info, &e), MSV_E_INVALID);
	assert_non_null(strstr(e.message, "no such message"));
	assert_int_equal(msv_queue_show(f->q, "00000000000000000", &info, &e), MSV_E_INVALID);
	char up[MSV_QID_LEN + 1];
	for (size_t i = 0; i <= MSV_QID_LEN; i++)
		up[i] = (id[i] >= 'a' && id[i] <= 'f') ? (char)(id[i] - 32) : id[i];
	OK(msv_queue_show(f->q, up, &info, &f->err));
	assert_string_equal(info.qid, id);
	msv_queue_info_free(&info);
}

/* ---- bounces and suppression ---- */

static void mark_bounced(void **state)
{
	fixture *f = *state;
	char id[MSV_QID_LEN + 1];
	const char *rc[] = {"Bob@Example.net", "carol@example.net"};
	submit1(f, rc, 2, T0, id);
	msv_queue_job *j;
	size_t n, changed;
	OK(msv_queue_claim(f->q, "w", T0, 1000, 10, &j, &n, &f->err));
	msv_queue_outcome o[2] = {outcome(j[0].rcpt[0].id, MSV_RCPT_SENT, 1),
	                          outcome(j[0].rcpt[1].id, MSV_RCPT_SENT, 1)};
	o[0].reply_code = o[1].reply_code = 250;
	msv_queue_jobs_free(j, n);
	OK(msv_queue_record(f->q, o, 2, T0 + 10, &f->err));

	/* The DSN arrives later, with the address in another case. */
	OK(msv_queue_mark_bounced(f->q, id, "bob@example.NET", "5.1.1", "user unknown", T0 + 5000,
	                          &changed, &f->err));
	assert_int_equal(changed, 1);
	msv_queue_info info;
	OK(msv_queue_show(f->q, id, &info, &f->err));
	msv_queue_rcpt_info *b = find_rcpt(&info, "Bob@Example.net");
	assert_int_equal(b->state, MSV_RCPT_BOUNCED);
	assert_string_equal(b->last_enhanced, "5.1.1");
	assert_string_equal(b->last_text, "user unknown");
	assert_int_equal(b->updated_ms, T0 + 5000);
	assert_int_equal(find_rcpt(&info, "carol@example.net")->state, MSV_RCPT_SENT);
	assert_int_equal(info.nattempts, 3);
	assert_int_equal(info.attempts[2].rcpt_id, b->id);
	assert_string_equal(info.attempts[2].enhanced, "5.1.1");
	assert_string_equal(info.attempts[2].text, "user unknown");
	assert_int_equal(info.attempts[2].at_ms, T0 + 5000);
	assert_null(info.attempts[2].server);
	msv_queue_info_free(&info);

	OK(msv_queue_mark_bounced(f->q, id, "dave@example.net", "5.1.1", "x", T0, &changed,
	                          &f->err));
	assert_int_equal(changed, 0);
	OK(msv_queue_mark_bounced(f->q, "ffffffffffffffff", "bob@example.net", "5.1.1", NULL, T0,
	                          &changed, &f->err));
	assert_int_equal(changed, 0);
	/* The bounce is a dead letter now, so requeue takes it back. */
	OK(msv_queue_requeue(f->q, id, T0 + 6000, &changed, &f->err));
	assert_int_equal(changed, 1);
}

/* Bounces without VERP or ENVID are matched by the returned Message-ID,
 * and only for a recipient of that message; the newest such message wins. */
static void find_message_id(void **state)
{
	fixture *f = *state;
	static const char body[] = "Subject: t\r\n\r\nhello\r\n";
	const char *rc[] = {"Bob@Example.net"};
	msv_queue_message m = msg(rc, 1, body, sizeof(body) - 1);
	m.message_id = "<m1@example.org>";
	char ids[2][MSV_QID_LEN + 1], qid[MSV_QID_LEN + 1];
	OK(msv_queue_submit(f->q, &m, 1, T0, ids, &f->err));
	OK(msv_queue_submit(f->q, &m, 1, T0 + 1, ids + 1, &f->err));
	int found = -1;
	OK(msv_queue_find_message_id(f->q, "<m1@example.org>", "bob@EXAMPLE.net", qid, &found,
	                             &f->err));
	assert_int_equal(found, 1);
	assert_string_equal(qid, ids[1]);
	OK(msv_queue_find_message_id(f->q, "<m1@example.org>", "carol@example.net", qid, &found,
	                             &f->err));
	assert_int_equal(found, 0);
	OK(msv_queue_find_message_id(f->q, "<m2@example.org>", "bob@example.net", qid, &found,
	                             &f->err));
	assert_int_equal(found, 0);
	assert_int_equal(msv_queue_find_message_id(f->q, "<m1@example.org>\r\nx", "bob@example.net",
	                                           qid, &found, &f->err),
	                 MSV_E_INVALID);
}

/* Drops every table schema 2 did not have (what later versions added). */
static void drop_tables_after_v2(sqlite3 *db)
{
	static const char *const v2[] = {"messages", "recipients", "attempts", "suppression",
	                                 "sqlite_sequence"};
	char names[16][64];
	size_t n = 0;
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT name FROM sqlite_schema WHERE type = 'table'",
	                                    -1, &st, NULL),
	                 SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW && n < 16) {
		const char *t = (const char *)sqlite3_column_text(st, 0);
		int old = 0;
		for (size_t i = 0; i < sizeof(v2) / sizeof(v2[0]); i++)
			old |= !strcmp(t, v2[i]);
		if (!old)
			snprintf(names[n++], sizeof(names[0]), "%s", t);
	}
	sqlite3_finalize(st);
	for (size_t i = 0; i < n; i++) {
		char sql[160];
		snprintf(sql, sizeof(sql), "DROP TABLE \"%.63s\"", names[i]);
		assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	}
}

/* A schema-1 file (no Message-ID index) is migrated on open and keeps its
 * messages. */
static void migrate_schema_1(void **state)
{
	SQLITE_ONLY(); /* SQLite's file format */
	fixture *f = *state;
	char id[MSV_QID_LEN + 1];
	const char *rc[] = {"bob@example.net"};
	submit1(f, rc, 1, T0, id);
	msv_queue_close(f->q);
	f->q = NULL;
	sqlite3 *db;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	/* Back to schema 1: later versions' tables and columns go too. */
	assert_int_equal(sqlite3_exec(db,
	                              "DROP INDEX messages_mid; ALTER TABLE messages DROP COLUMN"
	                              " submitter; ALTER TABLE recipients DROP COLUMN lease_epoch;"
	                              " PRAGMA user_version = 1",
	                              NULL, NULL, NULL),
	                 SQLITE_OK);
	drop_tables_after_v2(db);
	sqlite3_close(db);
	msv_queue_options o = MSV_QUEUE_OPTIONS_INIT;
	o.path = f->path;
	OK(msv_queue_open(&f->q, &o, &f->err));
	int found = -1;
	char qid[MSV_QID_LEN + 1];
	OK(msv_queue_find_message_id(f->q, "<none@example.org>", "bob@example.net", qid, &found,
	                             &f->err));
	assert_int_equal(found, 0);
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT (SELECT user_version FROM pragma_user_version),"
	                                    " (SELECT count(*) FROM sqlite_schema WHERE name ="
	                                    " 'messages_mid')",
	                                    -1, &st, NULL),
	                 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 4); /* through 2 and 3 to the current one */
	assert_int_equal(sqlite3_column_int(st, 1), 1);
	sqlite3_finalize(st);
	sqlite3_close(db);
	msv_queue_info info;
	OK(msv_queue_show(f->q, id, &info, &f->err));
	msv_queue_info_free(&info);
}

static void suppression(void **state)
{
	fixture *f = *state;
	int found = -1, removed = -1;
	char *reason = NULL;
	OK(msv_queue_suppress_check(f->q, "Bob@Example.NET", &found, &reason, &f->err));
	assert_int_equal(found, 0);
	assert_null(reason);
	OK(msv_queue_suppress_add(f->q, "Bob@Example.NET", "hard bounce 5.1.1", "bounce", T0,
	                          &f->err));
	OK(msv_queue_suppress_add(f->q, "alice@example.org", NULL, NULL, T0 + 1, &f->err));
	OK(msv_queue_suppress_check(f->q, "bob@example.net", &found, &reason, &f->err));
	assert_int_equal(found, 1);
	assert_string_equal(reason, "hard bounce 5.1.1");
	msv_free(reason);
	OK(msv_queue_suppress_check(f->q, "BOB@EXAMPLE.NET", &found, NULL, &f->err));
	assert_int_equal(found, 1);

	/* Adding again updates the entry. */
	OK(msv_queue_suppress_add(f->q, "BOB@example.net", "complaint", "manual", T0 + 2, &f->err));
	msv_suppression *v;
	size_t n;
	OK(msv_queue_suppress_list(f->q, &v, &n, &f->err));
	assert_int_equal(n, 2);
	assert_string_equal(v[0].address, "alice@example.org");
	assert_string_equal(v[0].reason, "");
	assert_string_equal(v[0].source, "");
	assert_string_equal(v[1].address, "bob@example.net");
	assert_string_equal(v[1].reason, "complaint");
	assert_string_equal(v[1].source, "manual");
	assert_int_equal(v[1].created_ms, T0 + 2);
	msv_queue_suppressions_free(v, n);

	OK(msv_queue_suppress_rm(f->q, "bob@EXAMPLE.net", &removed, &f->err));
	assert_int_equal(removed, 1);
	OK(msv_queue_suppress_rm(f->q, "bob@example.net", &removed, &f->err));
	assert_int_equal(removed, 0);
	OK(msv_queue_suppress_check(f->q, "bob@example.net", &found, NULL, &f->err));
	assert_int_equal(found, 0);
	msv_error e;
	assert_int_equal(msv_queue_suppress_add(f->q, "", "r", "s", T0, &e), MSV_E_BAD_ADDRESS);
	assert_int_equal(msv_queue_suppress_add(f->q, "a@b\r\n", "r", "s", T0, &e), MSV_E_INVALID);
}

/* ---- queue IDs ---- */

typedef struct fixed_ids {
	int calls;
	int fixed; /* calls that return the same ID before random ones */
} fixed_ids;

static msv_result fixed_qid(void *payload, char out[MSV_QID_LEN + 1], msv_error *err)
{
	fixed_ids *x = payload;
	if (x->calls++ < x->fixed) {
		memcpy(out, "00000000000000aa", MSV_QID_LEN + 1);
		return MSV_OK;
	}
	return msv__queue_random_qid(NULL, out, err);
}

static msv_result first_random_qid(void *payload, char out[MSV_QID_LEN + 1], msv_error *err)
{
	fixed_ids *x = payload;
	if (x->calls++ == 0)
		return msv__queue_random_qid(NULL, out, err);
	memcpy(out, "00000000000000aa", MSV_QID_LEN + 1);
	return MSV_OK;
}

static void qid_collision_retried(void **state)
{
	fixture *f = *state;
	const char *rc[] = {"a@x.net"};
	fixed_ids x = {0, 3};
	msv__queue_set_qid_source(f->q, fixed_qid, &x);
	char a[MSV_QID_LEN + 1], b[MSV_QID_LEN + 1];
	submit1(f, rc, 1, T0, a);
	assert_string_equal(a, "00000000000000aa");
	/* The next two draws collide; the third is fresh. */
	submit1(f, rc, 1, T0, b);
	assert_int_equal(x.calls, 4);
	assert_true(is_qid(b));
	assert_string_not_equal(a, b);

	/* An ID source that collides for ever after its first draw: the
	 * request fails and leaves nothing behind, its first message (which
	 * got a fresh ID) included. */
	static const char body[] = "x";
	msv_queue_message two[2] = {msg(rc, 1, body, 1), msg(rc, 1, body, 1)};
	char ids[2][MSV_QID_LEN + 1];
	msv_error e;
	x.calls = 0;
	msv__queue_set_qid_source(f->q, first_random_qid, &x);
	assert_int_not_equal(msv_queue_submit(f->q, two, 2, T0, ids, &e), MSV_OK);
	assert_non_null(strstr(e.message, "storing a message"));
	assert_string_equal(ids[0], ""); /* no IDs handed out for a failure */
	msv__queue_set_qid_source(f->q, NULL, NULL);
	msv_queue_stats st;
	OK(msv_queue_stats_get(f->q, T0, &st, &f->err));
	assert_int_equal(st.messages, 2);
}

static msv_result scripted_qid(void *payload, char out[MSV_QID_LEN + 1], msv_error *err)
{
	(void)err;
	int *calls = payload;
	/* 17 draws of ...01 (one success, then one request's 16 tries), then ...03 */
	memcpy(out, (*calls)++ < 17 ? "0000000000000001" : "0000000000000003", MSV_QID_LEN + 1);
	return MSV_OK;
}

/* One batch of three requests straight through the backend: the middle
 * one fails on its own (its ID source keeps colliding) and is rolled back
 * alone; the two others commit. */
static void batch_member_fails_alone(void **state)
{
	fixture *f = *state;
	msv_queue_close(f->q);
	f->q = NULL;
	void *be;
	size_t max_body;
	msv_queue_options o = MSV_QUEUE_OPTIONS_INIT;
	o.path = f->path;
	o.busy_timeout_ms = 1000;
	const msv__queue_ops *ops = fx_pg_url() ? &msv__queue_pg_ops : &msv__queue_sqlite_ops;
	OK(ops->open(&be, &o, &max_body, &f->err));
	assert_true(max_body > 100 * 1000 * 1000);
	const char *rc[] = {"a@x.net"};
	msv_queue_message m1 = msg(rc, 1, "1", 1), m2[2] = {msg(rc, 1, "2", 1), msg(rc, 1, "2", 1)},
	                  m3 = msg(rc, 1, "3", 1);
	char id1[1][MSV_QID_LEN + 1], id2[2][MSV_QID_LEN + 1], id3[1][MSV_QID_LEN + 1];
	msv__queue_req req[3];
	memset(req, 0, sizeof(req));
	req[0].msgs = &m1;
	req[0].n = 1;
	req[0].ids = id1;
	req[1].msgs = m2;
	req[1].n = 2;
	req[1].ids = id2;
	req[2].msgs = &m3;
	req[2].n = 1;
	req[2].ids = id3;
	req[0].next = &req[1];
	req[1].next = &req[2];
	int calls = 0;
	OK(ops->submit(be, req, scripted_qid, &calls, &f->err));
	assert_int_equal(req[0].result, MSV_OK);
	assert_int_not_equal(req[1].result, MSV_OK);
	assert_non_null(strstr(req[1].err.message, "UNIQUE"));
	assert_int_equal(req[2].result, MSV_OK);
	assert_string_equal(id1[0], "0000000000000001");
	assert_string_equal(id3[0], "0000000000000003");
	msv_queue_stats st;
	OK(ops->stats(be, T0, &st, &f->err));
	assert_int_equal(st.messages, 2);
	ops->close(be);
	OK(msv_queue_open(&f->q, &o, &f->err));
}

/* ---- concurrency ---- */

#define GC_THREADS 8
#define GC_MESSAGES 500

typedef struct gc_arg {
	msv_queue *q;
	size_t first, count;
	char (*ids)[MSV_QID_LEN + 1];
	int failures;
	msv_error err;
} gc_arg;

static void *gc_worker(void *p)
{
	gc_arg *a = p;
	const char *rc[] = {"bob@example.net", "carol@example.net"};
	char body[256];
	for (size_t i = 0; i < a->count; i++) {
		size_t k = a->first + i;
		int len = snprintf(body, sizeof(body), "Subject: %zu\r\n\r\nmessage %zu\r\n", k, k);
		msv_queue_message m = msg(rc, 2, body, (size_t)len);
		if (msv_queue_submit(a->q, &m, 1, T0 + (int64_t)k, &a->ids[k], &a->err) != MSV_OK)
			a->failures++;
	}
	return NULL;
}

static int cmp_id(const void *a, const void *b)
{
	return memcmp(a, b, MSV_QID_LEN);
}

/* Random IDs, drawn slowly: each batch takes at least this long inside
 * its transaction, as on a disk whose fsync costs something.  Without it
 * the test would depend on where /tmp lives (on tmpfs a commit is so cheap
 * that threads rarely overlap). */
static msv_result slow_qid(void *payload, char out[MSV_QID_LEN + 1], msv_error *err)
{
	(void)payload;
	usleep(300);
	return msv__queue_random_qid(NULL, out, err);
}

static void group_commit_concurrent(void **state)
{
	fixture *f = *state;
	msv__queue_set_qid_source(f->q, slow_qid, NULL);
	static char ids[GC_MESSAGES][MSV_QID_LEN + 1];
	memset(ids, 0, sizeof(ids));
	pthread_t th[GC_THREADS];
	gc_arg args[GC_THREADS];
	size_t per = GC_MESSAGES / GC_THREADS, first = 0;
	for (int t = 0; t < GC_THREADS; t++) {
		memset(&args[t], 0, sizeof(args[t]));
		args[t].q = f->q;
		args[t].ids = ids;
		args[t].first = first;
		args[t].count = t == GC_THREADS - 1 ? GC_MESSAGES - first : per;
		first += args[t].count;
		assert_int_equal(pthread_create(&th[t], NULL, gc_worker, &args[t]), 0);
	}
	/* All joined before any check: a failure jumps to the teardown, which
	 * closes the queue under threads still submitting (found by the
	 * torture run, docs/internals/torture.md). */
	for (int t = 0; t < GC_THREADS; t++)
		pthread_join(th[t], NULL);
	for (int t = 0; t < GC_THREADS; t++)
		if (args[t].failures)
			fail_msg("thread %d: %d failures: %s", t, args[t].failures, args[t].err.message);
	/* Every ID distinct... */
	static char sorted[GC_MESSAGES][MSV_QID_LEN + 1];
	memcpy(sorted, ids, sizeof(ids));
	qsort(sorted, GC_MESSAGES, sizeof(sorted[0]), cmp_id);
	for (size_t i = 0; i < GC_MESSAGES; i++) {
		assert_true(is_qid(sorted[i]));
		if (i)
			assert_int_not_equal(memcmp(sorted[i - 1], sorted[i], MSV_QID_LEN), 0);
	}
	/* ...and present, with its own body. */
	msv_queue_stats st;
	OK(msv_queue_stats_get(f->q, T0, &st, &f->err));
	assert_int_equal(st.messages, GC_MESSAGES);
	assert_int_equal(st.rcpt[MSV_RCPT_QUEUED], 2 * GC_MESSAGES);
	for (size_t k = 0; k < GC_MESSAGES; k += 37) {
		msv_queue_info info;
		OK(msv_queue_show(f->q, ids[k], &info, &f->err));
		assert_int_equal(info.created_ms, T0 + (int64_t)k);
		msv_queue_info_free(&info);
	}
	msv_queue_job *j;
	size_t n;
	OK(msv_queue_claim(f->q, "w", T0 + GC_MESSAGES, 1000, 2 * GC_MESSAGES, &j, &n, &f->err));
	assert_int_equal(n, GC_MESSAGES);
	for (size_t i = 0; i < n; i++) {
		/* oldest due first: created at T0 + k, in order */
		char want[128];
		int len = snprintf(want, sizeof(want), "Subject: %zu\r\n\r\nmessage %zu\r\n", i, i);
		assert_string_equal(j[i].qid, ids[i]);
		assert_int_equal(j[i].len, (size_t)len);
		assert_memory_equal(j[i].body, want, (size_t)len);
	}
	msv_queue_jobs_free(j, n);

	/* Far fewer transactions than submissions. */
	msv__queue_counters c;
	msv__queue_get_counters(f->q, &c);
	print_message("group commit: %llu submissions in %llu transactions (largest batch %llu)\n",
	              (unsigned long long)c.requests, (unsigned long long)c.commits,
	              (unsigned long long)c.max_batch);
	assert_int_equal(c.requests, GC_MESSAGES);
	assert_int_equal(c.messages, GC_MESSAGES);
	assert_true(c.commits < GC_MESSAGES / 2);
	assert_true(c.max_batch > 1);
}

typedef struct mp_arg {
	const char *path;
	msv_queue *q;
	int count, failures, busy;
	msv_error err;
	char tag;
} mp_arg;

static void *mp_worker(void *p)
{
	mp_arg *a = p;
	const char *rc[] = {"bob@example.net"};
	for (int i = 0; i < a->count; i++) {
		char body[64];
		int len = snprintf(body, sizeof(body), "%c %d\r\n", a->tag, i);
		msv_queue_message m = msg(rc, 1, body, (size_t)len);
		char id[1][MSV_QID_LEN + 1];
		msv_result r = msv_queue_submit(a->q, &m, 1, T0 + i, id, &a->err);
		if (r == MSV_E_TIMEOUT)
			a->busy++;
		if (r)
			a->failures++;
		/* Interleave claims and outcomes on the same file. */
		if (i % 10 == 9) {
			msv_queue_job *j;
			size_t n;
			r = msv_queue_claim(a->q, a->tag == 'a' ? "wa" : "wb", T0 + 100000, 60000, 5, &j,
			                    &n, &a->err);
			if (r) {
				a->failures++;
				continue;
			}
			for (size_t k = 0; k < n; k++) {
				msv_queue_outcome o = outcome(j[k].rcpt[0].id, MSV_RCPT_SENT, 1);
				if (msv_queue_record(a->q, &o, 1, T0 + 100001, &a->err))
					a->failures++;
			}
			msv_queue_jobs_free(j, n);
		}
	}
	return NULL;
}

static void two_handles_one_file(void **state)
{
	fixture *f = *state;
	/* The second handle stands for a second process (missive sendmail
	 * next to missived): its own connections, its own locks. */
	msv_queue *q2;
	msv_queue_options o = MSV_QUEUE_OPTIONS_INIT;
	o.path = f->path;
	OK(msv_queue_open(&q2, &o, &f->err));
	mp_arg a = {f->path, f->q, 150, 0, 0, {0}, 'a'};
	mp_arg b = {f->path, q2, 150, 0, 0, {0}, 'b'};
	mp_arg c = {f->path, f->q, 150, 0, 0, {0}, 'c'};
	pthread_t ta, tb, tc;
	assert_int_equal(pthread_create(&ta, NULL, mp_worker, &a), 0);
	assert_int_equal(pthread_create(&tb, NULL, mp_worker, &b), 0);
	assert_int_equal(pthread_create(&tc, NULL, mp_worker, &c), 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	pthread_join(tc, NULL);
	if (a.failures || b.failures || c.failures)
		fail_msg("failures a=%d (%s) b=%d (%s) c=%d (%s)", a.failures, a.err.message,
		         b.failures, b.err.message, c.failures, c.err.message);
	assert_int_equal(a.busy + b.busy + c.busy, 0);
	msv_queue_stats st;
	OK(msv_queue_stats_get(q2, T0, &st, &f->err));
	assert_int_equal(st.messages, 450);
	assert_int_equal(st.rcpt[MSV_RCPT_SENT] + st.rcpt[MSV_RCPT_QUEUED], 450);
	assert_true(st.rcpt[MSV_RCPT_SENT] > 0);
	msv_queue_close(q2);
}

/* A real second process (fork, then its own handle) submitting while this
 * one does: SQLite's file locks serialize them and the busy handler makes
 * each wait for the other instead of failing. */
static void two_processes_one_file(void **state)
{
	fixture *f = *state;
	const char *rc[] = {"bob@example.net"};
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* The child never touches the parent's handle. */
		msv_queue *q;
		msv_error e;
		msv_queue_options o = MSV_QUEUE_OPTIONS_INIT;
		o.path = f->path;
		int failures = 0;
		if (msv_queue_open(&q, &o, &e))
			_exit(100);
		for (int i = 0; i < 100; i++) {
			msv_queue_message m = msg(rc, 1, "child\r\n", 7);
			char id[1][MSV_QID_LEN + 1];
			if (msv_queue_submit(q, &m, 1, T0 + i, id, &e))
				failures++;
		}
		msv_queue_close(q);
		_exit(failures);
	}
	int failures = 0;
	for (int i = 0; i < 100; i++) {
		msv_queue_message m = msg(rc, 1, "parent\r\n", 8);
		char id[1][MSV_QID_LEN + 1];
		if (msv_queue_submit(f->q, &m, 1, T0 + i, id, &f->err))
			failures++;
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(failures, 0);
	msv_queue_stats st;
	OK(msv_queue_stats_get(f->q, T0, &st, &f->err));
	assert_int_equal(st.messages, 200);
}

static void busy_timeout_expires(void **state)
{
	SQLITE_ONLY(); /* SQLite's file format */
	fixture *f = *state;
	/* Another process holds the write lock longer than our timeout:
	 * the submission fails as a temporary local error, not a hang. */
	sqlite3 *db;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	msv_queue *q2;
	msv_queue_options o = MSV_QUEUE_OPTIONS_INIT;
	o.path = f->path;
	o.busy_timeout_ms = 200;
	OK(msv_queue_open(&q2, &o, &f->err));
	const char *rc[] = {"a@x.net"};
	msv_queue_message m = msg(rc, 1, "x", 1);
	char ids[1][MSV_QID_LEN + 1];
	msv_error e;
	int64_t t = msv_now_ms();
	assert_int_equal(msv_queue_submit(q2, &m, 1, T0, ids, &e), MSV_E_TIMEOUT);
	assert_true(msv_now_ms() - t >= 200);
	assert_int_equal(e.cls, MSV_CLASS_LOCAL);
	assert_non_null(strstr(e.message, f->path));
	/* Reads still work while the writer holds its lock (WAL). */
	msv_queue_stats st;
	OK(msv_queue_stats_get(q2, T0, &st, &f->err));
	assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	OK(msv_queue_submit(q2, &m, 1, T0, ids, &f->err));
	msv_queue_close(q2);
}

/* Fencing: A's lease expires, B claims the recipient again (epoch + 1);
 * A's late outcome is refused, B's recorded.  An outcome without an epoch
 * is not fenced. */
static void fencing(void **state)
{
	fixture *f = *state;
	char id[MSV_QID_LEN + 1];
	const char *rc[] = {"bob@example.net"};
	submit1(f, rc, 1, T0, id);
	msv_queue_job *ja, *jb;
	size_t na, nb, refused = 99;
	OK(msv_queue_claim(f->q, "node-a", T0, 1000, 1, &ja, &na, &f->err));
	assert_int_equal(na, 1);
	assert_int_equal(ja[0].rcpt[0].epoch, 1);
	/* A is paused past its lease; B takes the recipient over. */
	OK(msv_queue_claim(f->q, "node-b", T0 + 2000, 60000, 1, &jb, &nb, &f->err));
	assert_int_equal(nb, 1);
	assert_int_equal(jb[0].rcpt[0].id, ja[0].rcpt[0].id);
	assert_int_equal(jb[0].rcpt[0].epoch, 2);

	msv_queue_outcome oa = outcome(ja[0].rcpt[0].id, MSV_RCPT_SENT, 1);
	oa.epoch = ja[0].rcpt[0].epoch;
	oa.reply_code = 250;
	OK(msv_queue_record_fenced(f->q, &oa, 1, NULL, 0, T0 + 3000, &refused, &f->err));
	assert_int_equal(refused, 1);
	msv_queue_info info;
	OK(msv_queue_show(f->q, id, &info, &f->err));
	msv_queue_rcpt_info *ri = find_rcpt(&info, "bob@example.net");
	assert_int_equal(ri->state, MSV_RCPT_QUEUED);
	assert_string_equal(ri->lease_owner, "node-b");
	assert_int_equal(ri->lease_epoch, 2);
	assert_int_equal(info.nattempts, 0);
	msv_queue_info_free(&info);

	msv_queue_outcome ob = outcome(jb[0].rcpt[0].id, MSV_RCPT_DEFERRED, 1);
	ob.epoch = jb[0].rcpt[0].epoch;
	ob.next_attempt_ms = T0 + 600000;
	ob.reply_code = 451;
	OK(msv_queue_record_fenced(f->q, &ob, 1, NULL, 0, T0 + 4000, &refused, &f->err));
	assert_int_equal(refused, 0);
	/* A's outcome again, through the plain call: skipped silently. */
	OK(msv_queue_record(f->q, &oa, 1, T0 + 5000, &f->err));
	OK(msv_queue_show(f->q, id, &info, &f->err));
	ri = find_rcpt(&info, "bob@example.net");
	assert_int_equal(ri->state, MSV_RCPT_DEFERRED);
	assert_int_equal(ri->attempts, 1);
	assert_int_equal(ri->last_code, 451);
	assert_null(ri->lease_owner);
	assert_int_equal(info.nattempts, 1);
	assert_int_equal(info.attempts[0].reply_code, 451);
	msv_queue_info_free(&info);

	/* No epoch: applied whatever the lease (the old contract). */
	msv_queue_outcome o0 = outcome(jb[0].rcpt[0].id, MSV_RCPT_SENT, 1);
	OK(msv_queue_record_fenced(f->q, &o0, 1, NULL, 0, T0 + 6000, &refused, &f->err));
	assert_int_equal(refused, 0);
	OK(msv_queue_show(f->q, id, &info, &f->err));
	assert_int_equal(find_rcpt(&info, "bob@example.net")->state, MSV_RCPT_SENT);
	msv_queue_info_free(&info);
	msv_queue_jobs_free(ja, na);
	msv_queue_jobs_free(jb, nb);
}

typedef struct waiter {
	msv_queue *q;
	int woken;
	msv_result r;
	int64_t took;
} waiter;

static void *wait_thread(void *arg)
{
	waiter *w = arg;
	msv_error e;
	int64_t t = msv_now_ms();
	w->r = msv_queue_wait_notify(w->q, 5000, &w->woken, &e);
	w->took = msv_now_ms() - t;
	return NULL;
}

/* PostgreSQL: a submission on one handle wakes a waiter on another at
 * once (LISTEN/NOTIFY).  SQLite: no notifications, the wait sleeps. */
static void notify_wakes_other_handle(void **state)
{
	fixture *f = *state;
	msv_queue_options o = MSV_QUEUE_OPTIONS_INIT;
	o.path = f->path;
	waiter w = {0};
	OK(msv_queue_open(&w.q, &o, &f->err));
	if (!fx_pg_url()) {
		assert_int_equal(msv_queue_can_notify(w.q), 0);
		int woken = 1;
		int64_t t = msv_now_ms();
		OK(msv_queue_wait_notify(w.q, 50, &woken, &f->err));
		assert_int_equal(woken, 0);
		assert_true(msv_now_ms() - t >= 50);
		msv_queue_close(w.q);
		return;
	}
	assert_int_equal(msv_queue_can_notify(w.q), 1);
	/* Nothing submitted: the wait times out. */
	int woken = 1;
	OK(msv_queue_wait_notify(w.q, 100, &woken, &f->err));
	assert_int_equal(woken, 0);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, wait_thread, &w), 0);
	usleep(300000);
	char id[MSV_QID_LEN + 1];
	const char *rc[] = {"bob@example.net"};
	submit1(f, rc, 1, T0, id);
	pthread_join(th, NULL);
	assert_int_equal(w.r, MSV_OK);
	assert_int_equal(w.woken, 1);
	assert_true(w.took < 4000);
	msv_queue_close(w.q);
}

/* Backend selection and the PostgreSQL open's failures, with no server. */
static void url_selection(void **state)
{
	fixture *f = *state;
	msv_queue *q = NULL;
	msv_error e;
	msv_queue_options o = MSV_QUEUE_OPTIONS_INIT;
	o.path = "/nonexistent/q.db";
	o.url = "postgresql://missive@127.0.0.1:1/x";
	assert_int_equal(msv_queue_open(&q, &o, &e), MSV_E_CONFIG);
	assert_non_null(strstr(e.message, "not both"));
	o.path = NULL;
	o.url = "mysql://h/db";
	assert_int_equal(msv_queue_open(&q, &o, &e), MSV_E_CONFIG);
	assert_non_null(strstr(e.message, "postgresql://"));
	/* Nothing listens on port 1: temporary and local, not configuration. */
	o.url = "postgresql://missive@127.0.0.1:1/x?connect_timeout=2";
	assert_int_equal(msv_queue_open(&q, &o, &e), MSV_E_TIMEOUT);
	assert_int_equal(e.cls, MSV_CLASS_LOCAL);
	assert_non_null(strstr(e.message, "cannot connect"));
	int from = -1, to = -1;
	assert_int_equal(msv_queue_migrate(&o, &from, &to, &e), MSV_E_TIMEOUT);
	/* A password in the URI never reaches a message. */
	o.url = "postgresql://missive:s3cret@127.0.0.1:1/x?connect_timeout=2";
	assert_int_equal(msv_queue_open(&q, &o, &e), MSV_E_TIMEOUT);
	assert_null(strstr(e.message, "s3cret"));
	assert_non_null(strstr(e.message, "missive:***@127.0.0.1"));
	/* Version 1 options have no url: it is not read. */
	msv_queue_options v1 = MSV_QUEUE_OPTIONS_INIT;
	v1.version = 1;
	v1.path = f->path;
	v1.url = "garbage";
	OK(msv_queue_open(&q, &v1, &f->err));
	assert_string_equal(msv_queue_backend(q), fx_pg_url() ? "postgresql" : "sqlite");
	msv_queue_close(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(state_names),
		cmocka_unit_test_setup_teardown(open_creates_private_file, setup, teardown),
		cmocka_unit_test_setup_teardown(open_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(read_only_handle, setup, teardown),
		cmocka_unit_test_setup_teardown(round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(body_edge_cases, setup, teardown),
		cmocka_unit_test_setup_teardown(submit_validation, setup, teardown),
		cmocka_unit_test_setup_teardown(initial_suppressed, setup, teardown),
		cmocka_unit_test_setup_teardown(lease_exclusive, setup, teardown),
		cmocka_unit_test_setup_teardown(lease_expiry_reclaim, setup, teardown),
		cmocka_unit_test_setup_teardown(release_and_owners, setup, teardown),
		cmocka_unit_test_setup_teardown(renew_keeps_lease, setup, teardown),
		cmocka_unit_test_setup_teardown(deferred_not_due, setup, teardown),
		cmocka_unit_test_setup_teardown(claim_order_and_grouping, setup, teardown),
		cmocka_unit_test_setup_teardown(record_states, setup, teardown),
		cmocka_unit_test_setup_teardown(retry_requeue_purge, setup, teardown),
		cmocka_unit_test_setup_teardown(stats_counts, setup, teardown),
		cmocka_unit_test_setup_teardown(list_masks, setup, teardown),
		cmocka_unit_test_setup_teardown(show_unknown_and_uppercase, setup, teardown),
		cmocka_unit_test_setup_teardown(mark_bounced, setup, teardown),
		cmocka_unit_test_setup_teardown(find_message_id, setup, teardown),
		cmocka_unit_test_setup_teardown(migrate_schema_1, setup, teardown),
		cmocka_unit_test_setup_teardown(suppression, setup, teardown),
		cmocka_unit_test_setup_teardown(qid_collision_retried, setup, teardown),
		cmocka_unit_test_setup_teardown(batch_member_fails_alone, setup, teardown),
		cmocka_unit_test_setup_teardown(group_commit_concurrent, setup, teardown),
		cmocka_unit_test_setup_teardown(two_handles_one_file, setup, teardown),
		cmocka_unit_test_setup_teardown(two_processes_one_file, setup, teardown),
		cmocka_unit_test_setup_teardown(busy_timeout_expires, setup, teardown),
		cmocka_unit_test_setup_teardown(fencing, setup, teardown),
		cmocka_unit_test_setup_teardown(notify_wakes_other_handle, setup, teardown),
		cmocka_unit_test_setup_teardown(url_selection, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
