/* Unit tests for outbound shaping's queue calls (include/missive/queue.h):
 * msv_queue_postpone() puts claimed recipients back without an attempt,
 * and the route_state table keeps each route's circuit breaker for
 * `missive queue stats`.  Each test gets a fresh queue in a mkdtemp dir. */
#include <dirent.h>
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

#define LEASE 60000

#define QUEUE_FIXTURE_PREFIX "msv-postpone"
#include "queue/queue_fixture.h"

static void submit1(fixture *f, const char *const *rcpt, size_t n, int64_t now,
                    char id[MSV_QID_LEN + 1])
{
	static const char body[] = "Subject: t\r\n\r\nhello\r\n";
	msv_queue_message m;
	memset(&m, 0, sizeof(m));
	m.sender = "alice@example.org";
	m.rcpt = rcpt;
	m.nrcpt = n;
	m.body = body;
	m.len = sizeof(body) - 1;
	char ids[1][MSV_QID_LEN + 1];
	OK(msv_queue_submit(f->q, &m, 1, now, ids, &f->err));
	memcpy(id, ids[0], MSV_QID_LEN + 1);
}

static const msv_queue_rcpt_info *find_rcpt(const msv_queue_info *info, const char *address)
{
	for (size_t i = 0; i < info->nrcpt; i++)
		if (!strcmp(info->rcpt[i].address, address))
			return &info->rcpt[i];
	fail_msg("no recipient %s", address);
	return NULL;
}

/* ---- postpone ---- */

/* A postponed recipient keeps its state and attempt count, gets no
 * history row, loses its lease, and is not due before until_ms. */
static void postpone_keeps_state(void **state)
{
	fixture *f = *state;
	char id[MSV_QID_LEN + 1];
	const char *rc[] = {"a@shaped.test", "b@other.test"};
	submit1(f, rc, 2, T0, id);
	msv_queue_job *jobs = NULL;
	size_t n = 0;
	OK(msv_queue_claim(f->q, "w1", T0, LEASE, 10, &jobs, &n, &f->err));
	assert_int_equal(n, 1);
	assert_int_equal(jobs[0].nrcpt, 2);
	int64_t shaped = !strcmp(jobs[0].rcpt[0].address, rc[0]) ? jobs[0].rcpt[0].id
	                                                          : jobs[0].rcpt[1].id;
	size_t changed = 99;
	OK(msv_queue_postpone(f->q, &shaped, 1, T0 + 5000, &changed, &f->err));
	assert_int_equal(changed, 1);
	msv_queue_jobs_free(jobs, n);

	msv_queue_info info;
	OK(msv_queue_show(f->q, id, &info, &f->err));
	const msv_queue_rcpt_info *a = find_rcpt(&info, rc[0]), *b = find_rcpt(&info, rc[1]);
	assert_int_equal(a->state, MSV_RCPT_QUEUED);
	assert_int_equal(a->attempts, 0);
	assert_int_equal(a->next_attempt_ms, T0 + 5000);
	assert_null(a->lease_owner);
	assert_int_equal(a->lease_expiry_ms, 0);
	assert_string_equal(a->last_text, "");
	assert_int_equal(info.nattempts, 0);
	/* The other recipient is untouched: still leased by w1. */
	assert_non_null(b->lease_owner);
	assert_string_equal(b->lease_owner, "w1");
	msv_queue_info_free(&info);

	/* Not due before until_ms, even though its lease is gone. */
	OK(msv_queue_claim(f->q, "w2", T0 + 4999, LEASE, 10, &jobs, &n, &f->err));
	assert_int_equal(n, 0);
	int64_t due = -1;
	OK(msv_queue_next_due(f->q, &due, &f->err));
	assert_int_equal(due, T0 + 5000);
	OK(msv_queue_claim(f->q, "w2", T0 + 5000, LEASE, 10, &jobs, &n, &f->err));
	assert_int_equal(n, 1);
	assert_int_equal(jobs[0].nrcpt, 1);
	assert_string_equal(jobs[0].rcpt[0].address, rc[0]);
	assert_int_equal(jobs[0].rcpt[0].attempts, 0);
	msv_queue_jobs_free(jobs, n);
}

/* A deferred recipient stays deferred with its attempts; a postponed one
 * may be due earlier than its backoff said (the daemon decides). */
static void postpone_deferred(void **state)
{
	fixture *f = *state;
	char id[MSV_QID_LEN + 1];
	const char *rc[] = {"c@shaped.test"};
	submit1(f, rc, 1, T0, id);
	msv_queue_job *jobs = NULL;
	size_t n = 0;
	OK(msv_queue_claim(f->q, "w1", T0, LEASE, 10, &jobs, &n, &f->err));
	assert_int_equal(n, 1);
	int64_t rid = jobs[0].rcpt[0].id;
	msv_queue_jobs_free(jobs, n);
	msv_queue_outcome o;
	memset(&o, 0, sizeof(o));
	o.rcpt_id = rid;
	o.state = MSV_RCPT_DEFERRED;
	o.attempted = 1;
	o.at_ms = T0;
	o.next_attempt_ms = T0 + 1000;
	o.reply_code = 451;
	o.enhanced = "4.3.0";
	o.text = "later";
	OK(msv_queue_record(f->q, &o, 1, T0, &f->err));
	OK(msv_queue_claim(f->q, "w1", T0 + 1000, LEASE, 10, &jobs, &n, &f->err));
	assert_int_equal(n, 1);
	msv_queue_jobs_free(jobs, n);
	OK(msv_queue_postpone(f->q, &rid, 1, T0 + 1250, NULL, &f->err));

	msv_queue_info info;
	OK(msv_queue_show(f->q, id, &info, &f->err));
	assert_int_equal(info.rcpt[0].state, MSV_RCPT_DEFERRED);
	assert_int_equal(info.rcpt[0].attempts, 1);
	assert_int_equal(info.rcpt[0].last_code, 451);
	assert_int_equal(info.rcpt[0].next_attempt_ms, T0 + 1250);
	assert_null(info.rcpt[0].lease_owner);
	assert_int_equal(info.nattempts, 1); /* the 451's, not a new one */
	msv_queue_info_free(&info);
}

/* Finished recipients are not brought back; unknown ids change nothing. */
static void postpone_only_pending(void **state)
{
	fixture *f = *state;
	char id[MSV_QID_LEN + 1];
	const char *rc[] = {"d@shaped.test"};
	submit1(f, rc, 1, T0, id);
	msv_queue_job *jobs = NULL;
	size_t n = 0;
	OK(msv_queue_claim(f->q, "w1", T0, LEASE, 10, &jobs, &n, &f->err));
	int64_t rid = jobs[0].rcpt[0].id;
	msv_queue_jobs_free(jobs, n);
	msv_queue_outcome o;
	memset(&o, 0, sizeof(o));
	o.rcpt_id = rid;
	o.state = MSV_RCPT_SENT;
	o.attempted = 1;
	o.at_ms = T0;
	o.reply_code = 250;
	OK(msv_queue_record(f->q, &o, 1, T0, &f->err));
	int64_t ids[] = {rid, rid + 1000};
	size_t changed = 99;
	OK(msv_queue_postpone(f->q, ids, 2, T0 + 9000, &changed, &f->err));
	assert_int_equal(changed, 0);
	msv_queue_info info;
	OK(msv_queue_show(f->q, id, &info, &f->err));
	assert_int_equal(info.rcpt[0].state, MSV_RCPT_SENT);
	assert_int_not_equal(info.rcpt[0].next_attempt_ms, T0 + 9000);
	msv_queue_info_free(&info);
}

static void postpone_errors(void **state)
{
	fixture *f = *state;
	int64_t bad[] = {0};
	size_t changed = 7;
	assert_int_equal(msv_queue_postpone(f->q, bad, 1, T0, &changed, &f->err), MSV_E_INVALID);
	assert_int_equal(changed, 0);
	assert_int_equal(msv_queue_postpone(f->q, NULL, 1, T0, NULL, &f->err), MSV_E_INVALID);
	assert_int_equal(msv_queue_postpone(NULL, bad, 1, T0, NULL, &f->err), MSV_E_INVALID);
	OK(msv_queue_postpone(f->q, NULL, 0, T0, &changed, &f->err));

	/* A read-only handle refuses. */
	msv_queue *ro = NULL;
	msv_queue_options o = MSV_QUEUE_OPTIONS_INIT;
	o.path = f->path;
	o.read_only = 1;
	OK(msv_queue_open(&ro, &o, &f->err));
	int64_t one = 1;
	assert_int_equal(msv_queue_postpone(ro, &one, 1, T0, NULL, &f->err), MSV_E_INVALID);
	msv_queue_route_state s = {.route = (char *)"default", .circuit = (char *)"open"};
	assert_int_equal(msv_queue_route_state_put(ro, &s, 1, &f->err), MSV_E_INVALID);
	msv_queue_close(ro);
}

/* ---- route states ---- */

static void route_state_roundtrip(void **state)
{
	fixture *f = *state;
	msv_queue_route_state *v = NULL;
	size_t n = 9;
	OK(msv_queue_route_state_list(f->q, &v, &n, &f->err));
	assert_int_equal(n, 0);
	msv_queue_route_states_free(v, n);

	msv_queue_route_state in[] = {
		{(char *)"relay", (char *)"open", T0 + 2000, 1, T0},
		{(char *)"default", (char *)"closed", 0, 0, T0},
	};
	OK(msv_queue_route_state_put(f->q, in, 2, &f->err));
	OK(msv_queue_route_state_list(f->q, &v, &n, &f->err));
	assert_int_equal(n, 2);
	assert_string_equal(v[0].route, "default"); /* by route */
	assert_string_equal(v[0].circuit, "closed");
	assert_string_equal(v[1].route, "relay");
	assert_string_equal(v[1].circuit, "open");
	assert_int_equal(v[1].open_until_ms, T0 + 2000);
	assert_int_equal(v[1].trips, 1);
	assert_int_equal(v[1].changed_ms, T0);
	msv_queue_route_states_free(v, n);

	/* Replaced by route, not added. */
	msv_queue_route_state up = {(char *)"relay", (char *)"half-open", T0 + 2000, 3, T0 + 2500};
	OK(msv_queue_route_state_put(f->q, &up, 1, &f->err));
	OK(msv_queue_route_state_list(f->q, &v, &n, &f->err));
	assert_int_equal(n, 2);
	assert_string_equal(v[1].circuit, "half-open");
	assert_int_equal(v[1].trips, 3);
	assert_int_equal(v[1].changed_ms, T0 + 2500);
	msv_queue_route_states_free(v, n);

	/* A read-only handle (`missive queue stats`) reads them. */
	msv_queue *ro = NULL;
	msv_queue_options o = MSV_QUEUE_OPTIONS_INIT;
	o.path = f->path;
	o.read_only = 1;
	OK(msv_queue_open(&ro, &o, &f->err));
	OK(msv_queue_route_state_list(ro, &v, &n, &f->err));
	assert_int_equal(n, 2);
	msv_queue_route_states_free(v, n);
	msv_queue_close(ro);
}

static void route_state_errors(void **state)
{
	fixture *f = *state;
	msv_queue_route_state s = {(char *)"relay", (char *)"ajar", 0, 0, T0};
	assert_int_equal(msv_queue_route_state_put(f->q, &s, 1, &f->err), MSV_E_INVALID);
	s.circuit = NULL;
	assert_int_equal(msv_queue_route_state_put(f->q, &s, 1, &f->err), MSV_E_INVALID);
	s.circuit = (char *)"open";
	s.route = (char *)"bad\nroute";
	assert_int_equal(msv_queue_route_state_put(f->q, &s, 1, &f->err), MSV_E_INVALID);
	s.route = (char *)"";
	assert_int_equal(msv_queue_route_state_put(f->q, &s, 1, &f->err), MSV_E_INVALID);
	s.route = NULL;
	assert_int_equal(msv_queue_route_state_put(f->q, &s, 1, &f->err), MSV_E_INVALID);
	OK(msv_queue_route_state_put(f->q, NULL, 0, &f->err));
	msv_queue_route_state *v = NULL;
	size_t n = 0;
	assert_int_equal(msv_queue_route_state_list(f->q, NULL, &n, &f->err), MSV_E_INVALID);
	OK(msv_queue_route_state_list(f->q, &v, &n, &f->err));
	assert_int_equal(n, 0); /* nothing of the refused rows was stored */
	msv_queue_route_states_free(v, n);
	msv_queue_route_states_free(NULL, 0);
}

/* A schema-2 file (before route_state) gets the table on open. */
static void route_state_after_migration(void **state)
{
	SQLITE_ONLY(); /* SQLite's file format */
	fixture *f = *state;
	msv_queue_close(f->q);
	f->q = NULL;
	sqlite3 *db = NULL;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
	                              "DROP TABLE route_state; DROP TABLE api_keys;"
	                              " DROP TABLE reputation; DROP TABLE reputation_overrides;"
	                              " ALTER TABLE messages DROP COLUMN submitter;"
	                              " ALTER TABLE recipients DROP COLUMN lease_epoch;"
	                              " PRAGMA user_version = 2;",
	                              NULL, NULL, NULL),
	                 SQLITE_OK);
	sqlite3_close(db);
	msv_queue_options o = MSV_QUEUE_OPTIONS_INIT;
	o.path = f->path;
	OK(msv_queue_open(&f->q, &o, &f->err));
	msv_queue_route_state s = {(char *)"default", (char *)"open", T0 + 1, 1, T0};
	OK(msv_queue_route_state_put(f->q, &s, 1, &f->err));
	msv_queue_route_state *v = NULL;
	size_t n = 0;
	OK(msv_queue_route_state_list(f->q, &v, &n, &f->err));
	assert_int_equal(n, 1);
	msv_queue_route_states_free(v, n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(postpone_keeps_state, setup, teardown),
		cmocka_unit_test_setup_teardown(postpone_deferred, setup, teardown),
		cmocka_unit_test_setup_teardown(postpone_only_pending, setup, teardown),
		cmocka_unit_test_setup_teardown(postpone_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(route_state_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(route_state_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(route_state_after_migration, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
