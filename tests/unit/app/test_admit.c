/* Issue 14: the gateway's hook in submission (app_submit_opts.admit), the
 * submitter stored with the message, the socket's "gateway" reply field
 * (sendmail must not write the queue itself after a limit) and the HTTP
 * statuses of the gateway's refusals (src/daemon/http_errors.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <cmocka.h>

#include "exit_code.h"
#include "sendmail_wire.h"
#include "submit.h"
/* The table itself, not a copy: it needs no libmicrohttpd. */
#include "daemon/http_errors.c"

static char dir[64], cfgpath[128];

static int setup(void **state)
{
	strcpy(dir, "/tmp/msv-test-admit-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(cfgpath, sizeof(cfgpath), "%s/missive.conf", dir);
	FILE *f = fopen(cfgpath, "w");
	assert_non_null(f);
	fprintf(f, "[queue]\npath = %s/queue.db\n[submission]\nmyhostname = host.example\n"
	           "[route default]\nserver = 127.0.0.1:9\ntls = none\n",
	        dir);
	fclose(f);
	app_config *c = calloc(1, sizeof(*c));
	msv_error err;
	assert_int_equal(app_config_load(c, cfgpath, &err), MSV_OK);
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	app_config_free(*state);
	free(*state);
	char cmd[160];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

/* A hook that records what it was shown and answers with code. */
typedef struct hook {
	msv_result code;
	int calls;
	char sender[256], from[256];
} hook;

static msv_result admit(void *payload, const char *sender, const char *from, msv_error *err)
{
	hook *h = payload;
	h->calls++;
	snprintf(h->sender, sizeof(h->sender), "%s", sender);
	snprintf(h->from, sizeof(h->from), "%s", from);
	if (!h->code)
		return MSV_OK;
	return msv_error_set(err, h->code, h->code == MSV_E_RATE_LIMITED ? MSV_CLASS_TEMPORARY
	                                                                 : MSV_CLASS_PERMANENT,
	                     "rate limit for uid 1000 (2/m): try again in 3 s");
}

#define MSG "From: Writer <w@example.org>\r\nTo: r@example.net\r\nSubject: x\r\n\r\nbody\r\n"

/* The submitters of a and b as a claim loads them ("-" for none). */
static void stored_submitters(const app_config *c, const char *qa, const char *qb, char *sa,
                              char *sb, size_t sz)
{
	msv_queue *q;
	msv_error err;
	assert_int_equal(app_queue_open(c, 0, &q, &err), MSV_OK);
	msv_queue_job *jobs = NULL;
	size_t n = 0;
	assert_int_equal(msv_queue_claim(q, "t", msv_wall_ms(), 60000, 100, &jobs, &n, &err),
	                 MSV_OK);
	snprintf(sa, sz, "-");
	snprintf(sb, sz, "-");
	for (size_t i = 0; i < n && jobs; i++) {
		if (!strcmp(jobs[i].qid, qa) && jobs[i].submitter)
			snprintf(sa, sz, "%s", jobs[i].submitter);
		if (!strcmp(jobs[i].qid, qb) && jobs[i].submitter)
			snprintf(sb, sz, "%s", jobs[i].submitter);
	}
	msv_queue_jobs_free(jobs, n);
	msv_queue_close(q);
}

static void refused_before_storing(void **state)
{
	app_config *c = *state;
	msv_queue *q;
	msv_error err;
	assert_int_equal(app_queue_open(c, 0, &q, &err), MSV_OK);
	static const char *rcpt[] = {"r@example.net"};
	app_submit_opts o = {0};
	o.sender = "bounce@example.com";
	o.rcpt = rcpt;
	o.nrcpt = 1;
	hook h = {MSV_E_RATE_LIMITED, 0, "", ""};
	o.admit = admit;
	o.admit_payload = &h;
	app_submitted res;
	assert_int_equal(app_submit(c, q, MSG, strlen(MSG), &o, &res, &err), MSV_E_RATE_LIMITED);
	assert_int_equal(res.failed, APP_SUBMIT_ADMIT);
	assert_int_equal(h.calls, 1);
	/* Both domains the gateway checks: the envelope's and From's. */
	assert_string_equal(h.sender, "bounce@example.com");
	assert_string_equal(h.from, "w@example.org");
	assert_int_equal(app_exit_code(&err), EX_TEMPFAIL);
	msv_queue_stats st;
	assert_int_equal(msv_queue_stats_get(q, msv_wall_ms(), &st, &err), MSV_OK);
	assert_int_equal(st.messages, 0);
	/* A reputation refusal: 77, the same step. */
	h.code = MSV_E_REPUTATION;
	assert_int_equal(app_submit(c, q, MSG, strlen(MSG), &o, &res, &err), MSV_E_REPUTATION);
	assert_int_equal(res.failed, APP_SUBMIT_ADMIT);
	assert_int_equal(app_exit_code(&err), EX_NOPERM);
	msv_queue_close(q);
}

static void submitter_stored(void **state)
{
	app_config *c = *state;
	msv_queue *q;
	msv_error err;
	assert_int_equal(app_queue_open(c, 0, &q, &err), MSV_OK);
	static const char *rcpt[] = {"r@example.net"};
	app_submit_opts o = {0};
	o.rcpt = rcpt;
	o.nrcpt = 1;
	hook h = {MSV_OK, 0, "", ""};
	o.admit = admit;
	o.admit_payload = &h;
	o.submitter = "key:shop";
	app_submitted a, b;
	assert_int_equal(app_submit(c, q, MSG, strlen(MSG), &o, &a, &err), MSV_OK);
	free(a.message_id);
	assert_int_equal(h.calls, 1);
	assert_string_equal(h.sender, "w@example.org");
	/* A local user without an explicit submitter is uid:N. */
	app_submit_opts l = {0};
	l.rcpt = rcpt;
	l.nrcpt = 1;
	l.local = 1;
	l.uid = 0;
	l.user = "root";
	assert_int_equal(app_submit(c, q, MSG, strlen(MSG), &l, &b, &err), MSV_OK);
	free(b.message_id);
	msv_queue_close(q);
	char sa[64], sb[64];
	stored_submitters(c, a.id, b.id, sa, sb, sizeof(sa));
	assert_string_equal(sa, "key:shop");
	assert_string_equal(sb, "uid:0");
}

/* The socket's answer to a gateway refusal says so; to a busy missived not. */
static void wire_gateway_field(void **state)
{
	(void)state;
	msv_buf b;
	msv_buf_init(&b, 1 << 16);
	app_submitted res, got;
	memset(&res, 0, sizeof(res));
	res.failed = APP_SUBMIT_ADMIT;
	assert_int_equal(app_wire_reply(&b, EX_TEMPFAIL, &res, "rate limit for uid 1000"), 0);
	int rc = 0;
	char error[256], why[128];
	assert_int_equal(app_wire_reply_decode(b.data, b.len, &rc, &got, error, sizeof(error), why,
	                                       sizeof(why)),
	                 1);
	assert_int_equal(rc, EX_TEMPFAIL);
	assert_int_equal(got.failed, APP_SUBMIT_ADMIT);
	assert_string_equal(error, "rate limit for uid 1000");
	b.len = 0;
	res.failed = APP_SUBMIT_QUEUE;
	assert_int_equal(app_wire_reply(&b, EX_TEMPFAIL, &res, "busy"), 0);
	assert_int_equal(app_wire_reply_decode(b.data, b.len, &rc, &got, error, sizeof(error), why,
	                                       sizeof(why)),
	                 1);
	assert_int_not_equal(got.failed, APP_SUBMIT_ADMIT);
	msv_buf_free(&b);
}

static void http_statuses(void **state)
{
	(void)state;
	static const struct {
		msv_result code;
		unsigned status;
		const char *kind;
	} want[] = {
	    {MSV_E_UNAUTHORIZED, 401, "unauthorized"}, {MSV_E_FORBIDDEN, 403, "forbidden"},
	    {MSV_E_REPUTATION, 403, "reputation"},     {MSV_E_RATE_LIMITED, 429, "rate_limited"},
	    {MSV_E_CIRCUIT_OPEN, 429, "circuit_open"}, {MSV_E_NOMEM, 503, "busy"},
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		msv_error e;
		unsigned status = 0;
		msv_error_set(&e, want[i].code, MSV_CLASS_TEMPORARY, "x");
		assert_string_equal(http_error_for(STEP_ADMIT, &e, &status), want[i].kind);
		assert_int_equal(status, want[i].status);
		if (want[i].code != MSV_E_NOMEM)
			assert_true(app_refused_by_gateway(want[i].code));
	}
	assert_false(app_refused_by_gateway(MSV_E_SUPPRESSED));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(refused_before_storing, setup, teardown),
	    cmocka_unit_test_setup_teardown(submitter_stored, setup, teardown),
	    cmocka_unit_test(wire_gateway_field),
	    cmocka_unit_test(http_statuses),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
