/* Issue 13: the application layer returns error values, and two places
 * turn them into what a caller sees: app_exit_code() (sysexits, for both
 * main()s and the submission socket's answer) and missived's HTTP table
 * (src/daemon/http_errors.c).  Each row makes a real app function fail
 * and checks both, so a code that stops carrying what the old EX_* return
 * said shows here, not in a shell script's exit status. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include <cmocka.h>

#include "bounce.h"
#include "exit_code.h"
#include "submit.h"
/* The table itself, not a copy: it needs no libmicrohttpd. */
#include "daemon/http_errors.c"

static char dir[64], cfgpath[128];

static int setup(void **state)
{
	strcpy(dir, "/tmp/msv-test-errmap-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(cfgpath, sizeof(cfgpath), "%s/missive.conf", dir);
	FILE *f = fopen(cfgpath, "w");
	assert_non_null(f);
	fprintf(f, "[queue]\npath = %s/queue.db\n"
	           "[submission]\nmyhostname = host.example\nmax-recipients = 2\n"
	           "[route default]\nserver = 127.0.0.1:9\ntls = none\n"
	           "[route keyless]\nsender-domains = keyless.example\nserver = 127.0.0.1:9\n"
	           "tls = none\ndkim-key = %s/missing.pem\ndkim-selector = s\n"
	           "dkim-domain = keyless.example\n",
	        dir, dir);
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

enum via { SUBMIT, SUBMIT_READ_ONLY, OPEN_UNWRITABLE, BOUNCE };

typedef struct map_case {
	const char *what;
	enum via via;
	const char *msg;
	size_t len;          /* 0: strlen(msg) */
	const char *rcpt[4]; /* NULL-terminated */
	int local;           /* a local user; user NULL: a uid without a name */
	const char *user;
	const char *notify;
	/* expected */
	msv_result code;
	int exit_code;
	enum http_step step;
	unsigned status;
	const char *kind;
} map_case;

#define MSG "From: a@example.org\r\nTo: r@example.org\r\nSubject: x\r\n\r\nbody\r\n"
#define NOFROM "To: r@example.org\r\nSubject: x\r\n\r\nbody\r\n"

static const map_case cases[] = {
    {"a line with a NUL", SUBMIT, "From: a@example.org\r\n\r\nx\0y\r\n", 28, {"r@example.org"},
     0, NULL, NULL, MSV_E_BAD_MESSAGE, EX_DATAERR, STEP_PREPARE, 400, "bad_message"},
    {"no recipients", SUBMIT, MSG, 0, {NULL}, 0, NULL, NULL, MSV_E_NO_RCPT, EX_USAGE, STEP_PREPARE,
     400, "bad_address"},
    {"over max-recipients", SUBMIT, MSG, 0, {"a@x.org", "b@x.org", "c@x.org"}, 0, NULL, NULL,
     MSV_E_TOO_MANY_RCPT, EX_DATAERR, STEP_PREPARE, 400, "too_many_recipients"},
    {"a bad DSN NOTIFY", SUBMIT, MSG, 0, {"r@example.org"}, 0, NULL, "SOMETIMES", MSV_E_INVALID,
     EX_USAGE, STEP_PREPARE, 400, "invalid"},
    {"no sender over HTTP", SUBMIT, NOFROM, 0, {"r@example.org"}, 0, NULL, NULL, MSV_E_BAD_ADDRESS,
     EX_DATAERR, STEP_PREPARE, 400, "bad_address"},
    {"a uid without a login name", SUBMIT, NOFROM, 0, {"r@example.org"}, 1, NULL, NULL,
     MSV_E_NO_USER, EX_NOUSER, STEP_PREPARE, 400, "no_user"},
    {"a route's missing DKIM key", SUBMIT, "From: a@keyless.example\r\n\r\nx\r\n", 0,
     {"r@example.org"}, 0, NULL, NULL, MSV_E_CONFIG, EX_CONFIG, STEP_PREPARE, 500, "config"},
    {"a suppressed recipient", SUBMIT, MSG, 0, {"gone@example.org"}, 0, NULL, NULL,
     MSV_E_SUPPRESSED, EX_NOPERM, STEP_SUPPRESSED, 403, "suppressed"},
    /* A handle opened read-only is the caller's mistake (MSV_E_INVALID,
     * 64, as before issue 13); over HTTP any queue step is 503. */
    {"a read-only queue handle", SUBMIT_READ_ONLY, MSG, 0, {"r@example.org"}, 0, NULL, NULL,
     MSV_E_INVALID, EX_USAGE, STEP_QUEUE, 503, "queue"},
    /* A queue whose directory is missing: the settings (78).  One this
     * user may not write is MSV_E_CANT_CREATE (73), which root, who runs
     * the unit tests, cannot meet: the integration tests use nobody. */
    {"a queue directory that is missing", OPEN_UNWRITABLE, NULL, 0, {NULL}, 0, NULL, NULL,
     MSV_E_CONFIG, EX_CONFIG, STEP_QUEUE, 503, "queue"},
    {"a bounce that is no report", BOUNCE, "", 0, {NULL}, 0, NULL, NULL, MSV_E_BAD_MESSAGE,
     EX_DATAERR, STEP_BOUNCE_PARSE, 400, "bad_message"},
};

static enum http_step submit_step(const app_submitted *res)
{
	return res->failed == APP_SUBMIT_PREPARE      ? STEP_PREPARE
	       : res->failed == APP_SUBMIT_SUPPRESSED ? STEP_SUPPRESSED
	                                              : STEP_QUEUE;
}

/* Runs one case's app function; returns its result with err and the
 * step at which http.c would answer. */
static msv_result run(app_config *c, const map_case *k, msv_error *err, enum http_step *step)
{
	msv_queue *q = NULL;
	msv_result r;
	if (k->via == OPEN_UNWRITABLE) {
		app_config bad = *c;
		bad.queue_path = "/nonexistent-msv-dir/queue.db";
		*step = STEP_QUEUE;
		r = app_queue_open(&bad, 0, &q, err);
		assert_null(q);
		return r;
	}
	assert_int_equal(app_queue_open(c, k->via == SUBMIT_READ_ONLY, &q, err), MSV_OK);
	if (k->via == BOUNCE) {
		cJSON *out = NULL;
		app_bounce_step bs;
		r = app_apply_bounce(c, q, k->msg, strlen(k->msg), &out, &bs, err);
		cJSON_Delete(out);
		*step = bs == APP_BOUNCE_PARSE ? STEP_BOUNCE_PARSE : STEP_QUEUE;
	} else {
		app_submit_opts o = {0};
		size_t n = 0;
		while (k->rcpt[n])
			n++;
		o.rcpt = k->rcpt;
		o.nrcpt = n;
		o.dsn_notify = k->notify;
		o.local = k->local;
		o.uid = 4242;
		o.user = k->user;
		app_submitted res;
		size_t len = k->len ? k->len : strlen(k->msg);
		r = app_submit(c, q, k->msg, len, &o, &res, err);
		msv_free(res.message_id);
		*step = submit_step(&res);
	}
	msv_queue_close(q);
	return r;
}

static void test_map(void **state)
{
	app_config *c = *state;
	msv_queue *q = NULL;
	msv_error err;
	assert_int_equal(app_queue_open(c, 0, &q, &err), MSV_OK);
	assert_int_equal(msv_queue_suppress_add(q, "gone@example.org", "test", "manual", 1, &err),
	                 MSV_OK);
	msv_queue_close(q);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const map_case *k = &cases[i];
		enum http_step step = 0;
		msv_error_clear(&err);
		msv_result r = run(c, k, &err, &step);
		unsigned status = 0;
		const char *kind = http_error_for(step, &err, &status);
		printf("%-32s %-20s exit %d, HTTP %u %s: %s\n", k->what, msv_result_name(r),
		       app_exit_code(&err), status, kind, err.message);
		if (r == MSV_OK || r != err.code)
			fail_msg("%s: returned %d, err.code %d", k->what, r, err.code);
		if (k->code != MSV_OK && r != k->code)
			fail_msg("%s: code %s, expected %s", k->what, msv_result_name(r),
			         msv_result_name(k->code));
		if (app_exit_code(&err) != k->exit_code)
			fail_msg("%s: exit %d, expected %d", k->what, app_exit_code(&err), k->exit_code);
		if (step != k->step || status != k->status || strcmp(kind, k->kind))
			fail_msg("%s: HTTP step %d %u %s, expected step %d %u %s", k->what, step, status,
			         kind, k->step, k->status, k->kind);
		if (!err.message[0])
			fail_msg("%s: no message", k->what);
	}
}

/* Values no app function above produces, straight through both places. */
static void test_map_values(void **state)
{
	(void)state;
	static const struct {
		msv_result code;
		msv_class cls;
		int exit_code;
	} rows[] = {
	    {MSV_E_AUTH_FAILED, MSV_CLASS_TEMPORARY, EX_TEMPFAIL},
	    {MSV_E_AUTH_FAILED, MSV_CLASS_PERMANENT, EX_NOPERM},
	    {MSV_E_NOMEM, MSV_CLASS_LOCAL, EX_OSERR},
	    {MSV_E_NOMEM, MSV_CLASS_TEMPORARY, EX_TEMPFAIL},
	    {MSV_E_BUSY, MSV_CLASS_TEMPORARY, EX_TEMPFAIL},
	    {MSV_E_BAD_REQUEST, MSV_CLASS_USAGE, EX_PROTOCOL},
	    {MSV_E_TOO_MANY_RCPT, MSV_CLASS_USAGE, EX_DATAERR},
	    {MSV_E_REPLY, MSV_CLASS_PERMANENT, EX_UNAVAILABLE},
	    {MSV_E_SYSTEM, MSV_CLASS_LOCAL, EX_SOFTWARE},
	    {MSV_E_CONFIG, MSV_CLASS_CONFIG, EX_CONFIG},
	    {MSV_E_INVALID, MSV_CLASS_USAGE, EX_USAGE},
	    /* the gateway (issue 14): limits say "later", refusals "not you" */
	    {MSV_E_RATE_LIMITED, MSV_CLASS_TEMPORARY, EX_TEMPFAIL},
	    {MSV_E_CIRCUIT_OPEN, MSV_CLASS_TEMPORARY, EX_TEMPFAIL},
	    {MSV_E_REPUTATION, MSV_CLASS_PERMANENT, EX_NOPERM},
	    {MSV_E_UNAUTHORIZED, MSV_CLASS_PERMANENT, EX_NOPERM},
	    {MSV_E_FORBIDDEN, MSV_CLASS_PERMANENT, EX_NOPERM},
	    {MSV_E_NO_INPUT, MSV_CLASS_LOCAL, EX_NOINPUT},
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		msv_error e;
		msv_error_set(&e, rows[i].code, rows[i].cls, "x");
		if (app_exit_code(&e) != rows[i].exit_code)
			fail_msg("%s/%s: exit %d, expected %d", msv_result_name(rows[i].code),
			         msv_class_name(rows[i].cls), app_exit_code(&e), rows[i].exit_code);
	}
	msv_error e;
	msv_error_clear(&e);
	assert_int_equal(app_exit_code(&e), EX_OK);
	/* Out-of-memory while reading a bounce is the server's trouble. */
	unsigned status;
	msv_error_set(&e, MSV_E_NOMEM, MSV_CLASS_LOCAL, "x");
	assert_string_equal(http_error_for(STEP_BOUNCE_PARSE, &e, &status), "queue");
	assert_int_equal(status, 503);
	assert_string_equal(http_error_for((enum http_step)99, &e, &status), "internal");
	assert_int_equal(status, 500);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_map, setup, teardown),
	    cmocka_unit_test(test_map_values),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
