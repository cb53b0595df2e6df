/*
 * msv_dsn_parse() on malformed and hostile input: truncated multiparts,
 * a missing boundary, a 10 MB line, deep nesting, too many parts, too
 * many recipients, oversized fields, bad arguments, and a failing
 * allocator (every allocation failed in turn: MSV_E_NOMEM or a report,
 * never a crash or a leak).  Each gets an error or a best-effort
 * report, never a crash (ASan/UBSan builds check the "never").
 *
 * This file replaces libmissive's allocation wrappers (all of
 * src/core/alloc.c) so it can count and fail allocations: the static
 * library's alloc.o is then never linked in.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "missive/dsn.h"

/* ---- a countable, failable allocator ---- */

static long alloc_count, fail_at = -1;

static int should_fail(void)
{
	alloc_count++;
	return fail_at >= 0 && alloc_count == fail_at;
}

void *msv_malloc(size_t n)
{
	return should_fail() ? NULL : malloc(n ? n : 1);
}

void *msv_calloc(size_t count, size_t size)
{
	return should_fail() ? NULL : calloc(count ? count : 1, size ? size : 1);
}

void *msv_realloc(void *p, size_t n)
{
	return should_fail() ? NULL : realloc(p, n ? n : 1);
}

void msv_free(void *p)
{
	free(p);
}

char *msv_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = msv_malloc(n);
	if (d)
		memcpy(d, s, n);
	return d;
}

void msv_wipe(void *p, size_t n)
{
	static void *(*const volatile do_memset)(void *, int, size_t) = memset;
	if (p && n)
		do_memset(p, 0, n);
}

void msv_free_secret(char *s)
{
	if (!s)
		return;
	msv_wipe(s, strlen(s));
	msv_free(s);
}

/* ---- inputs ---- */

static const char dsn[] =
	"From: MAILER-DAEMON@mx.example.org\n"
	"To: bounces+Q1@example.com\n"
	"Subject: Undelivered Mail Returned to Sender\n"
	"Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\n"
	"\n"
	"--B\n"
	"Content-Type: text/plain; charset=us-ascii\n"
	"\n"
	"<a@example.net>: host mx.example.net[192.0.2.1] said: 550 5.1.1 <a@example.net>:\n"
	"    Recipient address rejected: User unknown (in reply to RCPT TO command)\n"
	"\n"
	"--B\n"
	"Content-Type: message/delivery-status\n"
	"\n"
	"Reporting-MTA: dns; mx.example.org\n"
	"Original-Envelope-Id: Q1\n"
	"\n"
	"Final-Recipient: rfc822; a@example.net\n"
	"Action: failed\n"
	"Status: 5.1.1\n"
	"Diagnostic-Code: smtp; 550 5.1.1 <a@example.net>: Recipient address rejected:\n"
	"    User unknown\n"
	"\n"
	"--B\n"
	"Content-Type: message/rfc822\n"
	"\n"
	"Message-ID: <m@example.com>\n"
	"Subject: hi\n"
	"\n"
	"body\n"
	"--B--\n";

static msv_result try_parse(const char *s, size_t n, msv_dsn_report **out)
{
	msv_error err;
	memset(&err, 0, sizeof(err));
	msv_result r = msv_dsn_parse(out, s, n, NULL, &err);
	if (r == MSV_OK) {
		assert_non_null(*out);
	} else {
		assert_null(*out);
		assert_true(err.message[0] != '\0');
	}
	return r;
}

/* Every prefix of a report: an error or a report, never a crash. */
static void test_truncated(void **state)
{
	(void)state;
	size_t n = strlen(dsn);
	int reports = 0;
	for (size_t len = 0; len <= n; len++) {
		char *p = malloc(len ? len : 1); /* exact size: ASan sees any over-read */
		memcpy(p, dsn, len);
		msv_dsn_report *r = NULL;
		msv_result res = try_parse(p, len, &r);
		assert_true(res == MSV_OK || res == MSV_E_BAD_MESSAGE);
		if (r) {
			reports += r->nrecipients > 0;
			for (size_t i = 0; i < r->nrecipients; i++)
				assert_non_null(r->recipients[i].address);
			msv_dsn_report_free(r);
		}
		free(p);
	}
	assert_true(reports > 0);
	/* Cut inside the delivery-status part: the recipient is still read. */
	const char *cut = strstr(dsn, "Status: 5.1.1");
	msv_dsn_report *r = NULL;
	assert_int_equal(try_parse(dsn, (size_t)(cut - dsn) + 10, &r), MSV_OK);
	assert_int_equal(r->nrecipients, 1);
	assert_string_equal(r->recipients[0].address, "a@example.net");
	assert_string_equal(r->recipients[0].status, "5.1.1");
	msv_dsn_report_free(r);
}

/* Content-Type: multipart/report without its boundary: the body is read
 * as prose, and its report fields still name the recipient. */
static void test_missing_boundary(void **state)
{
	(void)state;
	static const char m[] =
		"From: MAILER-DAEMON@mx.example.org\n"
		"Subject: Undelivered Mail Returned to Sender\n"
		"Content-Type: multipart/report; report-type=delivery-status\n"
		"\n"
		"--B\n"
		"Content-Type: message/delivery-status\n"
		"\n"
		"Final-Recipient: rfc822; a@example.net\n"
		"Action: failed\n"
		"Status: 5.2.2\n"
		"Diagnostic-Code: smtp; 552 5.2.2 Mailbox full\n"
		"\n"
		"--B--\n";
	msv_dsn_report *r = NULL;
	assert_int_equal(try_parse(m, strlen(m), &r), MSV_OK);
	assert_int_equal(r->kind, MSV_DSN_BOUNCE);
	assert_int_equal(r->nrecipients, 1);
	assert_string_equal(r->recipients[0].address, "a@example.net");
	assert_int_equal(r->recipients[0].reason, MSV_DSN_R_MAILBOXFULL);
	msv_dsn_report_free(r);
}

static void test_ten_megabyte_line(void **state)
{
	(void)state;
	const size_t big = (size_t)10 << 20;
	/* In the prose, in the report, and as a header. */
	static const char *const heads[] = {
		"From: MAILER-DAEMON@x.example\nSubject: failure notice\n\n<a@example.net>:\n550 ",
		"From: MAILER-DAEMON@x.example\nContent-Type: multipart/report; boundary=b\n\n--b\n"
		"Content-Type: message/delivery-status\n\nFinal-Recipient: rfc822; a@example.net\n"
		"Action: failed\nDiagnostic-Code: smtp; 550 ",
		"From: MAILER-DAEMON@x.example\nSubject: ",
	};
	for (size_t k = 0; k < sizeof(heads) / sizeof(heads[0]); k++) {
		size_t hl = strlen(heads[k]);
		char *m = malloc(hl + big + 2);
		memcpy(m, heads[k], hl);
		memset(m + hl, 'x', big);
		/* Spaces now and then, and some "user unknown", to exercise the matcher. */
		for (size_t i = hl + 1000; i + 20 < hl + big; i += 4096)
			memcpy(m + i, " user unknown ", 14);
		m[hl + big] = '\n';
		msv_dsn_report *r = NULL;
		msv_result res = try_parse(m, hl + big + 1, &r);
		assert_int_equal(res, MSV_OK);
		for (size_t i = 0; i < r->nrecipients; i++)
			if (r->recipients[i].diagnostic)
				assert_true(strlen(r->recipients[i].diagnostic) <= 4096);
		msv_dsn_report_free(r);
		free(m);
	}
}

static void test_deep_nesting(void **state)
{
	(void)state;
	char *m = malloc(1 << 20);
	size_t n = (size_t)snprintf(m, 1 << 20, "From: MAILER-DAEMON@x.example\nSubject: failure\n");
	for (int i = 0; i < 200; i++)
		n += (size_t)snprintf(m + n, (1 << 20) - n,
		                      "Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n", i, i);
	n += (size_t)snprintf(m + n, (1 << 20) - n, "Content-Type: text/plain\n\n<a@example.net>: 550 x\n");
	msv_dsn_report *r = NULL;
	assert_int_equal(try_parse(m, n, &r), MSV_E_TOO_LARGE);
	/* message/rfc822 nested deep: also refused, not recursed into. */
	n = (size_t)snprintf(m, 1 << 20, "From: MAILER-DAEMON@x.example\n");
	for (int i = 0; i < 200; i++)
		n += (size_t)snprintf(m + n, (1 << 20) - n, "Content-Type: message/rfc822\n\nFrom: x@y.example\n");
	assert_int_equal(try_parse(m, n, &r), MSV_E_TOO_LARGE);
	free(m);
}

static void test_too_many_parts(void **state)
{
	(void)state;
	char *m = malloc(1 << 20);
	size_t n = (size_t)snprintf(m, 1 << 20,
	                            "From: MAILER-DAEMON@x.example\n"
	                            "Content-Type: multipart/mixed; boundary=b\n\n");
	for (int i = 0; i < 2000; i++)
		n += (size_t)snprintf(m + n, (1 << 20) - n, "--b\n\npart %d\n", i);
	n += (size_t)snprintf(m + n, (1 << 20) - n, "--b--\n");
	msv_dsn_report *r = NULL;
	assert_int_equal(try_parse(m, n, &r), MSV_E_TOO_LARGE);
	free(m);
}

/* 1500 recipient groups: 1000 kept, the rest counted. */
static void test_too_many_recipients(void **state)
{
	(void)state;
	size_t cap = 1 << 20;
	char *m = malloc(cap);
	size_t n = (size_t)snprintf(m, cap,
	                            "From: MAILER-DAEMON@x.example\n"
	                            "Content-Type: multipart/report; boundary=b\n\n--b\n"
	                            "Content-Type: message/delivery-status\n\n"
	                            "Reporting-MTA: dns; x.example\n\n");
	for (int i = 0; i < 1500; i++)
		n += (size_t)snprintf(m + n, cap - n,
		                      "Final-Recipient: rfc822; u%d@example.net\nAction: failed\n"
		                      "Status: 5.1.1\n\n",
		                      i);
	n += (size_t)snprintf(m + n, cap - n, "--b--\n");
	msv_dsn_report *r = NULL;
	assert_int_equal(try_parse(m, n, &r), MSV_OK);
	assert_int_equal(r->nrecipients, 1000);
	assert_int_equal(r->recipients_dropped, 500);
	assert_string_equal(r->recipients[999].address, "u999@example.net");
	msv_dsn_report_free(r);
	free(m);
}

/* A diagnostic longer than 4096 octets is cut on a UTF-8 boundary. */
static void test_long_field(void **state)
{
	(void)state;
	size_t cap = 64 << 10;
	char *m = malloc(cap);
	size_t n = (size_t)snprintf(m, cap,
	                            "From: MAILER-DAEMON@x.example\n"
	                            "Content-Type: multipart/report; boundary=b\n\n--b\n"
	                            "Content-Type: message/delivery-status\n\n"
	                            "Final-Recipient: rfc822; a@example.net\nAction: failed\n"
	                            "Diagnostic-Code: smtp; 550 ");
	for (int i = 0; i < 3000; i++) {
		memcpy(m + n, "\xc3\xa9", 2); /* é */
		n += 2;
	}
	n += (size_t)snprintf(m + n, cap - n, "\n\n--b--\n");
	msv_dsn_report *r = NULL;
	assert_int_equal(try_parse(m, n, &r), MSV_OK);
	const char *d = r->recipients[0].diagnostic;
	size_t dl = strlen(d);
	assert_true(dl <= 4096);
	assert_true(dl > 4000);
	assert_int_equal((unsigned char)d[dl - 1], 0xa9); /* ends with a whole é */
	msv_dsn_report_free(r);
	free(m);
}

static void test_bad_input(void **state)
{
	(void)state;
	msv_dsn_report *r = (msv_dsn_report *)(uintptr_t)1;
	msv_error err;
	assert_int_equal(msv_dsn_parse(&r, "", 0, NULL, &err), MSV_E_BAD_MESSAGE);
	assert_null(r);
	assert_int_equal(msv_dsn_parse(&r, "\n\nno header\n", 12, NULL, &err), MSV_E_BAD_MESSAGE);
	assert_int_equal(msv_dsn_parse(&r, NULL, 5, NULL, &err), MSV_E_INVALID);
	assert_int_equal(msv_dsn_parse(NULL, "x", 1, NULL, &err), MSV_E_INVALID);
	assert_int_equal(msv_dsn_parse(&r, "x", 1, NULL, NULL), MSV_E_BAD_MESSAGE); /* err may be NULL */
	msv_dsn_options o = MSV_DSN_OPTIONS_INIT;
	o.version = 99;
	assert_int_equal(msv_dsn_parse(&r, dsn, strlen(dsn), &o, &err), MSV_E_INVALID);
	o = (msv_dsn_options)MSV_DSN_OPTIONS_INIT;
	o.max_size = 100;
	assert_int_equal(msv_dsn_parse(&r, dsn, strlen(dsn), &o, &err), MSV_E_TOO_LARGE);
	assert_int_equal(err.code, MSV_E_TOO_LARGE);
	/* NUL octets and binary junk inside a report. */
	char junk[512];
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (char)(i * 37 + 11);
	memcpy(junk, "From: x@y.example\n\n", 19);
	msv_dsn_report *ok = NULL;
	assert_int_equal(msv_dsn_parse(&ok, junk, sizeof(junk), NULL, &err), MSV_OK);
	msv_dsn_report_free(ok);
	msv_dsn_report_free(NULL);
}

/* Fail allocation 1, 2, 3, ... in turn: each parse returns MSV_E_NOMEM
 * (and nothing leaks: ASan's leak check runs at exit) or, once the
 * failure is past the last allocation, the full report. */
static void test_allocation_failures(void **state)
{
	(void)state;
	alloc_count = 0;
	fail_at = -1;
	msv_dsn_report *r = NULL;
	msv_dsn_options o = MSV_DSN_OPTIONS_INIT;
	o.verp_prefix = "bounces+";
	msv_error err;
	assert_int_equal(msv_dsn_parse(&r, dsn, strlen(dsn), &o, &err), MSV_OK);
	msv_dsn_report_free(r);
	long total = alloc_count;
	assert_true(total > 10);
	int nomem = 0;
	for (long k = 1; k <= total + 1; k++) {
		alloc_count = 0;
		fail_at = k;
		r = NULL;
		msv_result res = msv_dsn_parse(&r, dsn, strlen(dsn), &o, &err);
		if (res == MSV_E_NOMEM) {
			nomem++;
			assert_null(r);
		} else {
			/* Some allocations only grow a scratch buffer that can be
			 * done without (a decoded header); the report must still
			 * be whole where it matters. */
			assert_int_equal(res, MSV_OK);
			assert_non_null(r);
			msv_dsn_report_free(r);
		}
	}
	fail_at = -1;
	assert_true(nomem > total / 2);
}

/* Found by the torture run (docs/internals/torture.md): when the walker's
 * skip list (addresses of the original sender, never taken for a failed
 * recipient) could not grow, its buffer was gone but its entries were
 * still counted, and the next address was compared against offsets from
 * NULL.  Every allocation failing in turn on bounces that fill the list
 * gives a clean MSV_E_NOMEM or a report, never undefined behaviour
 * (UBSan halts the test on it). */
static void test_skip_list_allocation_failures(void **state)
{
	(void)state;
	static const char *const files[] = {"lhost-amazonses-09.eml", "lhost-postfix-01.eml"};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char path[512];
		snprintf(path, sizeof(path), "%s/bounces/eml/%s", MSV_CORPUS_DIR, files[i]);
		FILE *f = fopen(path, "rb");
		assert_non_null(f);
		static char buf[1 << 20];
		size_t len = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		alloc_count = 0;
		fail_at = -1;
		msv_dsn_report *r = NULL;
		msv_error err;
		assert_int_equal(msv_dsn_parse(&r, buf, len, NULL, &err), MSV_OK);
		msv_dsn_report_free(r);
		long total = alloc_count;
		for (long k = 1; k <= total; k++) {
			alloc_count = 0;
			fail_at = k;
			r = NULL;
			msv_result res = msv_dsn_parse(&r, buf, len, NULL, &err);
			if (res == MSV_OK)
				msv_dsn_report_free(r);
			else if (res != MSV_E_NOMEM)
				fail_msg("%s, allocation %ld failing: %s", files[i], k, err.message);
		}
		fail_at = -1;
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_skip_list_allocation_failures),
		cmocka_unit_test(test_truncated),          cmocka_unit_test(test_missing_boundary),
		cmocka_unit_test(test_ten_megabyte_line),  cmocka_unit_test(test_deep_nesting),
		cmocka_unit_test(test_too_many_parts),     cmocka_unit_test(test_too_many_recipients),
		cmocka_unit_test(test_long_field),         cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_allocation_failures),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
