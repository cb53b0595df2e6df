/* app_prepare (src/app/submit.c), issue 12: who the sender is for a local
 * user, trusted or not, and over HTTP; [submission] max-recipients on every
 * list; duplicate removal that stays fast for thousands of recipients. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "exit_code.h"
#include "submit.h"

static char cfgpath[64];

static int setup(void **state)
{
	strcpy(cfgpath, "/tmp/msv-test-submit-XXXXXX");
	int fd = mkstemp(cfgpath);
	assert_true(fd >= 0);
	const char text[] = "[queue]\npath = /nonexistent/queue.db\n"
	                    "[submission]\nmyhostname = host.example\ntrusted-users = root, www\n"
	                    "max-recipients = 5000\n"
	                    "[route default]\nserver = 127.0.0.1:9\ntls = none\n";
	assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t)sizeof(text) - 1);
	close(fd);
	app_config *c = malloc(sizeof(*c));
	msv_error err;
	assert_int_equal(app_config_load(c, cfgpath, &err), 0);
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	app_config_free(*state);
	free(*state);
	unlink(cfgpath);
	return 0;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* app_prepare() as the caller sees it: 0, or the sysexits code of its
 * error (app_exit_code(), what sendmail exits with). */
static int exit_of(msv_result r, const msv_error *err)
{
	if (r)
		assert_int_equal(r, err->code); /* the code returned is err's */
	return r ? app_exit_code(err) : 0;
}

static int prep(app_config *c, const char *msg, const app_submit_opts *o, app_prepared *p,
                msv_error *err)
{
	return exit_of(app_prepare(c, msg, strlen(msg), o, p, err), err);
}

static void local(app_submit_opts *o, long uid, const char *user)
{
	o->local = 1;
	o->uid = uid;
	o->user = user;
}

static void test_sender(void **state)
{
	app_config *c = *state;
	const char *rcpt[] = {"r@example.org"};
	const char *with_from = "From: Boss <boss@example.org>\r\nSubject: x\r\n\r\nx\r\n";
	const char *no_from = "Subject: x\r\n\r\nx\r\n";
	app_prepared p;
	msv_error err;
	/* An untrusted local user: its own address, whatever From says. */
	app_submit_opts o = {0};
	o.rcpt = rcpt;
	o.nrcpt = 1;
	local(&o, 65534, "nobody");
	assert_int_equal(prep(c, with_from, &o, &p, &err), 0);
	assert_string_equal(p.sender, "nobody@host.example");
	assert_non_null(strstr(p.body.data, "X-Authentication-Warning: host.example: nobody set "
	                                    "From: to boss@example.org\r\n"));
	app_prepared_free(&p);
	assert_int_equal(prep(c, no_from, &o, &p, &err), 0);
	assert_non_null(strstr(p.body.data, "From: nobody@host.example\r\n"));
	app_prepared_free(&p);
	/* -f: accepted, marked. */
	o.sender = "bounce@example.org";
	assert_int_equal(prep(c, with_from, &o, &p, &err), 0);
	assert_string_equal(p.sender, "bounce@example.org");
	assert_non_null(strstr(p.body.data, "X-Authentication-Warning: host.example: nobody set "
	                                    "sender to bounce@example.org using -f\r\n"));
	app_prepared_free(&p);
	/* Trusted: root by uid, www by name. */
	o.sender = NULL;
	local(&o, 0, "root");
	assert_int_equal(prep(c, with_from, &o, &p, &err), 0);
	assert_string_equal(p.sender, "boss@example.org");
	app_prepared_free(&p);
	local(&o, 33, "www");
	o.sender = "x@example.org";
	assert_int_equal(prep(c, with_from, &o, &p, &err), 0);
	assert_string_equal(p.sender, "x@example.org");
	assert_null(strstr(p.body.data, "X-Authentication-Warning"));
	app_prepared_free(&p);
	/* A uid without a name, nothing to make a sender from. */
	o.sender = NULL;
	local(&o, 4242, NULL);
	assert_int_equal(prep(c, no_from, &o, &p, &err), EX_NOUSER);
	assert_non_null(strstr(err.message, "uid 4242"));
	/* HTTP: no local user; neither sender nor From is refused. */
	o.local = 0;
	assert_int_equal(prep(c, no_from, &o, &p, &err), EX_DATAERR);
	assert_non_null(strstr(err.message, "no From field"));
	/* -F with a control character. */
	local(&o, 0, "root");
	o.from_name = "a\033b";
	assert_int_equal(prep(c, no_from, &o, &p, &err), EX_DATAERR);
	assert_non_null(strstr(err.message, "-F"));
}

/* -F text that looks like an encoded word is itself encoded (issue 17):
 * written as is, every reader would show "Hi". */
static void test_from_name_lookalike(void **state)
{
	app_config *c = *state;
	const char *rcpt[] = {"r@example.org"};
	app_prepared p;
	msv_error err;
	app_submit_opts o = {0};
	o.rcpt = rcpt;
	o.nrcpt = 1;
	o.sender = "a@example.org";
	o.from_name = "=?UTF-8?B?SGk=?=";
	assert_int_equal(prep(c, "Subject: x\r\n\r\nx\r\n", &o, &p, &err), 0);
	const char *from = strstr(p.body.data, "From: ");
	assert_non_null(from);
	assert_null(strstr(from, "From: \"=?UTF-8?B?SGk=?=\""));
	assert_non_null(strstr(from, "From: =?"));
	assert_non_null(strstr(from, " <a@example.org>\r\n"));
	app_prepared_free(&p);
	o.from_name = "Plain Name";
	assert_int_equal(prep(c, "Subject: x\r\n\r\nx\r\n", &o, &p, &err), 0);
	assert_non_null(strstr(p.body.data, "From: \"Plain Name\" <a@example.org>\r\n"));
	app_prepared_free(&p);
}

static void test_recipient_cap(void **state)
{
	app_config *c = *state;
	app_prepared p;
	msv_error err;
	app_submit_opts o = {0};
	local(&o, 0, "root");
	/* 80,000 in a To field, refused quickly. */
	msv_buf m;
	msv_buf_init(&m, 1 << 24);
	assert_int_equal(msv_buf_addstr(&m, "From: a@example.org\r\nTo: u0@example.org"), MSV_OK);
	for (int i = 1; i < 80000; i++)
		assert_int_equal(msv_buf_addf(&m, ",\r\n u%d@example.org", i), MSV_OK);
	assert_int_equal(msv_buf_addstr(&m, "\r\n\r\nbody\r\n"), MSV_OK);
	o.extract = 1;
	double t0 = now();
	assert_int_equal(exit_of(app_prepare(c, m.data, m.len, &o, &p, &err), &err), EX_DATAERR);
	assert_true(now() - t0 < 1.0);
	assert_int_equal(err.code, MSV_E_TOO_MANY_RCPT);
	assert_non_null(strstr(err.message, "[submission] max-recipients (5000)"));
	msv_buf_free(&m);
	/* 5001 arguments. */
	static const char *many[5001];
	for (size_t i = 0; i < 5001; i++)
		many[i] = "x@example.org";
	o.extract = 0;
	o.rcpt = many;
	o.nrcpt = 5001;
	assert_int_equal(prep(c, "From: a@example.org\r\n\r\nx\r\n", &o, &p, &err), EX_DATAERR);
	assert_int_equal(err.code, MSV_E_TOO_MANY_RCPT);
}

/* 1,500 addresses twice (domains in other case) and 1,500 whose local
 * parts differ only by case: 3,000 kept, in the order first named. */
static void test_duplicates(void **state)
{
	app_config *c = *state;
	msv_buf m;
	msv_buf_init(&m, 1 << 24);
	assert_int_equal(msv_buf_addstr(&m, "From: a@example.org\r\nTo: u0@example.org"), MSV_OK);
	for (int i = 1; i < 1500; i++)
		assert_int_equal(msv_buf_addf(&m, ",\r\n u%d@example.org", i), MSV_OK);
	assert_int_equal(msv_buf_addstr(&m, "\r\nCc: u0@EXAMPLE.ORG"), MSV_OK);
	for (int i = 1; i < 1500; i++)
		assert_int_equal(msv_buf_addf(&m, ",\r\n u%d@EXAMPLE.org", i), MSV_OK);
	assert_int_equal(msv_buf_addstr(&m, "\r\nBcc: U0@example.org"), MSV_OK);
	for (int i = 1; i < 1500; i++)
		assert_int_equal(msv_buf_addf(&m, ",\r\n U%d@example.org", i), MSV_OK);
	assert_int_equal(msv_buf_addstr(&m, "\r\n\r\nbody\r\n"), MSV_OK);
	app_submit_opts o = {0};
	local(&o, 0, "root");
	o.extract = 1;
	app_prepared p;
	msv_error err;
	double t0 = now();
	assert_int_equal(app_prepare(c, m.data, m.len, &o, &p, &err), 0);
	assert_true(now() - t0 < 1.0);
	assert_int_equal(p.nrcpt, 3000);
	assert_string_equal(p.rcpt[0], "u0@example.org");
	assert_string_equal(p.rcpt[1499], "u1499@example.org");
	assert_string_equal(p.rcpt[1500], "U0@example.org");
	app_prepared_free(&p);
	msv_buf_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sender),
	    cmocka_unit_test(test_from_name_lookalike),
	    cmocka_unit_test(test_recipient_cap),
	    cmocka_unit_test(test_duplicates),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
