/*
 * Option-struct versions across the public API (issue 13): every function
 * that takes an options struct accepts 0 < version <= current, so a program
 * built against an older header keeps working after a bump (libgit2's
 * rule), and refuses 0 (a struct nobody initialized) and current + 1 (a
 * newer header whose fields the library cannot know) with MSV_E_INVALID
 * and a message naming the struct.
 *
 * msv_client_options grew to version 2 (the token source, issue 18); the
 * loops below accept every version from 1, so version 1 stays tested.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "missive/dkim.h"
#include "missive/dsn.h"
#include "missive/mime.h"
#include "missive/policy.h"
#include "missive/pool.h"
#include "missive/queue.h"
#include "missive/smtp.h"

#include "core/core_int.h"

/* The versions each struct must accept and refuse, from its current one. */
#define OLDEST 1u
static unsigned refused(unsigned current, int i)
{
	return i == 0 ? 0u : current + 1;
}

static void assert_refused(msv_result r, const msv_error *err, const char *name)
{
	assert_int_equal(r, MSV_E_INVALID);
	if (err) {
		assert_int_equal(err->cls, MSV_CLASS_USAGE);
		assert_non_null(strstr(err->message, name));
	}
}

/* The rule itself, for a struct at version 3 (none is there yet). */
static void version_rule(void **state)
{
	(void)state;
	assert_false(msv__version_ok(0, 3));
	assert_true(msv__version_ok(1, 3));
	assert_true(msv__version_ok(2, 3));
	assert_true(msv__version_ok(3, 3));
	assert_false(msv__version_ok(4, 3));
	assert_false(msv__version_ok(~0u, 3));
}

static void smtp_options(void **state)
{
	(void)state;
	for (unsigned v = OLDEST; v <= MSV_SMTP_OPTIONS_VERSION; v++) {
		msv_smtp_options o = MSV_SMTP_OPTIONS_INIT;
		o.version = v;
		msv_smtp *s = NULL;
		assert_int_equal(msv_smtp_new(&s, &o), MSV_OK);
		msv_smtp_free(s);
	}
	for (int i = 0; i < 2; i++) {
		msv_smtp_options o = MSV_SMTP_OPTIONS_INIT;
		o.version = refused(MSV_SMTP_OPTIONS_VERSION, i);
		msv_smtp *s = NULL;
		assert_refused(msv_smtp_new(&s, &o), NULL, "");
		assert_null(s);
	}
}

static void client_options(void **state)
{
	(void)state;
	msv_error err;
	for (unsigned v = OLDEST; v <= MSV_CLIENT_OPTIONS_VERSION; v++) {
		msv_client_options o = MSV_CLIENT_OPTIONS_INIT;
		o.host = "127.0.0.1";
		o.version = v;
		msv_client *c = NULL;
		assert_int_equal(msv_client_new(&c, &o, &err), MSV_OK);
		msv_client_free(c);
	}
	for (int i = 0; i < 2; i++) {
		msv_client_options o = MSV_CLIENT_OPTIONS_INIT;
		o.host = "127.0.0.1";
		o.version = refused(MSV_CLIENT_OPTIONS_VERSION, i);
		msv_client *c = NULL;
		msv_error_clear(&err);
		assert_refused(msv_client_new(&c, &o, &err), &err, "msv_client_options");
		/* The embedded engine options are checked the same way. */
		o.version = MSV_CLIENT_OPTIONS_VERSION;
		o.smtp.version = refused(MSV_SMTP_OPTIONS_VERSION, i);
		msv_error_clear(&err);
		assert_refused(msv_client_new(&c, &o, &err), &err, "msv_smtp_options");
	}
}

static void pool_options(void **state)
{
	(void)state;
	msv_error err;
	for (unsigned v = OLDEST; v <= MSV_POOL_OPTIONS_VERSION; v++) {
		msv_pool_options o = MSV_POOL_OPTIONS_INIT;
		o.version = v;
		msv_pool *p = NULL;
		assert_int_equal(msv_pool_new(&p, &o, &err), MSV_OK);
		msv_pool_free(p);
	}
	for (int i = 0; i < 2; i++) {
		msv_pool_options o = MSV_POOL_OPTIONS_INIT;
		o.version = refused(MSV_POOL_OPTIONS_VERSION, i);
		msv_pool *p = NULL;
		msv_error_clear(&err);
		assert_refused(msv_pool_new(&p, &o, &err), &err, "msv_pool_options");
	}
}

static void queue_options(void **state)
{
	(void)state;
	char dir[] = "/tmp/msv-optver-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[64];
	snprintf(path, sizeof(path), "%s/q.db", dir);
	msv_error err;
	for (unsigned v = OLDEST; v <= MSV_QUEUE_OPTIONS_VERSION; v++) {
		msv_queue_options o = MSV_QUEUE_OPTIONS_INIT;
		o.path = path;
		o.version = v;
		msv_queue *q = NULL;
		assert_int_equal(msv_queue_open(&q, &o, &err), MSV_OK);
		msv_queue_close(q);
	}
	for (int i = 0; i < 2; i++) {
		msv_queue_options o = MSV_QUEUE_OPTIONS_INIT;
		o.path = path;
		o.version = refused(MSV_QUEUE_OPTIONS_VERSION, i);
		msv_queue *q = NULL;
		msv_error_clear(&err);
		assert_refused(msv_queue_open(&q, &o, &err), &err, "msv_queue_options");
	}
	char side[80];
	for (const char *const *sfx = (const char *const[]){"", "-wal", "-shm", NULL}; *sfx; sfx++) {
		snprintf(side, sizeof(side), "%s%s", path, *sfx);
		unlink(side);
	}
	assert_int_equal(rmdir(dir), 0);
}

static void dkim_options(void **state)
{
	(void)state;
	msv_error err;
	msv_buf pem, rec;
	msv_buf_init(&pem, 1 << 16);
	msv_buf_init(&rec, 1 << 16);
	assert_int_equal(msv_dkim_keygen(MSV_DKIM_ED25519_SHA256, 0, &pem, &rec, &err), MSV_OK);
	for (unsigned v = OLDEST; v <= MSV_DKIM_OPTIONS_VERSION; v++) {
		msv_dkim_options o = MSV_DKIM_OPTIONS_INIT;
		o.domain = "example.test";
		o.selector = "s1";
		o.version = v;
		msv_dkim_signer *s = NULL;
		assert_int_equal(msv_dkim_signer_new(&s, &o, pem.data, pem.len, &err), MSV_OK);
		msv_dkim_signer_free(s);
	}
	for (int i = 0; i < 2; i++) {
		msv_dkim_options o = MSV_DKIM_OPTIONS_INIT;
		o.domain = "example.test";
		o.selector = "s1";
		o.version = refused(MSV_DKIM_OPTIONS_VERSION, i);
		msv_dkim_signer *s = NULL;
		msv_error_clear(&err);
		assert_refused(msv_dkim_signer_new(&s, &o, pem.data, pem.len, &err), &err,
		               "msv_dkim_options");
	}
	msv_buf_free_secret(&pem);
	msv_buf_free(&rec);
}

static const char plain_msg[] = "From: a@example.test\r\nSubject: x\r\n\r\nhello\r\n";

static void dkim_verify_options(void **state)
{
	(void)state;
	msv_error err;
	for (unsigned v = OLDEST; v <= MSV_DKIM_VERIFY_OPTIONS_VERSION; v++) {
		msv_dkim_verify_options o = MSV_DKIM_VERIFY_OPTIONS_INIT;
		o.version = v;
		msv_dkim_result *res = NULL;
		size_t n = 99;
		assert_int_equal(msv_dkim_verify(&o, plain_msg, strlen(plain_msg), &res, &n, &err), MSV_OK);
		assert_int_equal(n, 0);
		msv_free(res);
	}
	for (int i = 0; i < 2; i++) {
		msv_dkim_verify_options o = MSV_DKIM_VERIFY_OPTIONS_INIT;
		o.version = refused(MSV_DKIM_VERIFY_OPTIONS_VERSION, i);
		msv_dkim_result *res = NULL;
		size_t n = 0;
		msv_error_clear(&err);
		assert_refused(msv_dkim_verify(&o, plain_msg, strlen(plain_msg), &res, &n, &err), &err,
		               "msv_dkim_verify_options");
	}
}

static void dsn_options(void **state)
{
	(void)state;
	msv_error err;
	for (unsigned v = OLDEST; v <= MSV_DSN_OPTIONS_VERSION; v++) {
		msv_dsn_options o = MSV_DSN_OPTIONS_INIT;
		o.version = v;
		msv_dsn_report *r = NULL;
		assert_int_equal(msv_dsn_parse(&r, plain_msg, strlen(plain_msg), &o, &err), MSV_OK);
		msv_dsn_report_free(r);
	}
	for (int i = 0; i < 2; i++) {
		msv_dsn_options o = MSV_DSN_OPTIONS_INIT;
		o.version = refused(MSV_DSN_OPTIONS_VERSION, i);
		msv_dsn_report *r = NULL;
		msv_error_clear(&err);
		assert_refused(msv_dsn_parse(&r, plain_msg, strlen(plain_msg), &o, &err), &err,
		               "msv_dsn_options");
		assert_null(r);
	}
}

static void mime_options(void **state)
{
	(void)state;
	for (unsigned v = OLDEST; v <= MSV_MIME_OPTIONS_VERSION; v++) {
		msv_mime_options o = MSV_MIME_OPTIONS_INIT;
		o.version = v;
		msv_mime_msg *m = NULL;
		assert_int_equal(msv_mime_new(&m, &o), MSV_OK);
		msv_mime_free(m);
	}
	for (int i = 0; i < 2; i++) {
		msv_mime_options o = MSV_MIME_OPTIONS_INIT;
		o.version = refused(MSV_MIME_OPTIONS_VERSION, i);
		msv_mime_msg *m = NULL;
		assert_refused(msv_mime_new(&m, &o), NULL, "");
		assert_null(m);
	}
}

static void mime_part_options(void **state)
{
	(void)state;
	msv_mime_msg *m = NULL;
	assert_int_equal(msv_mime_new(&m, NULL), MSV_OK);
	for (unsigned v = OLDEST; v <= MSV_MIME_PART_OPTIONS_VERSION; v++) {
		msv_mime_part_options o = MSV_MIME_PART_OPTIONS_INIT;
		o.filename = "a.txt";
		o.version = v;
		assert_int_equal(msv_mime_attach_data(m, "x", 1, MSV_MIME_COPY, &o), MSV_OK);
	}
	for (int i = 0; i < 2; i++) {
		msv_mime_part_options o = MSV_MIME_PART_OPTIONS_INIT;
		o.filename = "a.txt";
		o.version = refused(MSV_MIME_PART_OPTIONS_VERSION, i);
		/* TAKE: a refused part still frees what it was given. */
		char *data = msv_strdup("taken");
		assert_non_null(data);
		assert_refused(msv_mime_attach_data(m, data, 5, MSV_MIME_TAKE, &o), msv_mime_error(m),
		               "msv_mime_part_options");
	}
	msv_mime_free(m);
}

/* The INIT macros are designated initializers: the defaults they name
 * survive any reordering, and everything else is zero. */
static void init_macros(void **state)
{
	(void)state;
	msv_client_options c = MSV_CLIENT_OPTIONS_INIT;
	assert_int_equal(c.version, MSV_CLIENT_OPTIONS_VERSION);
	assert_int_equal(c.smtp.version, MSV_SMTP_OPTIONS_VERSION);
	assert_int_equal(c.smtp.tls, MSV_TLS_STARTTLS);
	assert_int_equal(c.smtp.auth, MSV_AUTH_AUTO);
	assert_null(c.host);
	msv_dkim_options d = MSV_DKIM_OPTIONS_INIT;
	assert_int_equal(d.algo, MSV_DKIM_ALGO_AUTO);
	assert_int_equal(d.header_canon, MSV_DKIM_RELAXED);
	msv_retry_policy r = MSV_RETRY_POLICY_INIT;
	assert_int_equal(r.base_ms, 60000);
	assert_int_equal(r.max_age_ms, 5LL * 86400000);
	assert_true(MSV_VERSION_NUM >= 100);
	assert_non_null(strchr(MSV_VERSION, '.'));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(version_rule),
	    cmocka_unit_test(smtp_options),      cmocka_unit_test(client_options),
	    cmocka_unit_test(pool_options),      cmocka_unit_test(queue_options),
	    cmocka_unit_test(dkim_options),      cmocka_unit_test(dkim_verify_options),
	    cmocka_unit_test(dsn_options),       cmocka_unit_test(mime_options),
	    cmocka_unit_test(mime_part_options), cmocka_unit_test(init_macros),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
