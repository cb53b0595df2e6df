/* Found by the torture run (docs/internals/torture.md): with PIPELINING,
 * msv_smtp_begin() moved the finishing transaction aside before growing
 * the recipient array, so when that allocation failed the engine later
 * reported a PREV_DONE nobody was waiting for, and msv_client_send_many()
 * indexed its results with (size_t)-1.  A failed begin must leave the
 * engine as it was: the earlier message ends with TXN_DONE. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "missive/smtp.h"
#include "smtp/script.h"

/* ---- an allocator whose reallocs fail on request ---- */

static int fail_realloc;

void *msv_malloc(size_t n)
{
	return malloc(n ? n : 1);
}

void *msv_calloc(size_t count, size_t size)
{
	return calloc(count ? count : 1, size ? size : 1);
}

void *msv_realloc(void *p, size_t n)
{
	return fail_realloc ? NULL : realloc(p, n ? n : 1);
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

#define EHLO_PIPE "250-mx.example.net\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n"

static const char *const rcpt1[] = {"bob@example.org"};
static const char *const rcpt3[] = {"bob@example.org", "carol@example.org", "dave@example.org"};

static msv_envelope env_of(const char *const *rcpt, size_t n)
{
	msv_envelope e;
	memset(&e, 0, sizeof(e));
	e.from = "alice@example.com";
	e.rcpt = rcpt;
	e.nrcpt = n;
	return e;
}

static void overlapping_begin_out_of_memory(void **state)
{
	(void)state;
	drv d;
	msv_smtp_options o = plain_opts();
	drv_ready(&d, &o, EHLO_PIPE);
	msv_envelope e1 = env_of(rcpt1, 1), e2 = env_of(rcpt3, 3);
	assert_int_equal(msv_smtp_begin(d.s, &e1), MSV_OK);
	SC(&d, NULL, "MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n",
	   MSV_SMTP_WANT_READ);
	SC(&d, "250 ok\r\n250 ok\r\n354 go\r\n", "", MSV_SMTP_WANT_BODY);
	assert_int_equal(msv_smtp_body(d.s, "Hi.\r\n", 5), MSV_OK);
	assert_int_equal(msv_smtp_body_end(d.s), MSV_OK);
	/* The second envelope would overlap, but its recipients do not fit. */
	fail_realloc = 1;
	assert_int_equal(msv_smtp_begin(d.s, &e2), MSV_E_NOMEM);
	fail_realloc = 0;
	/* The first message still ends as the current transaction. */
	SC(&d, NULL, "Hi.\r\n.\r\n", MSV_SMTP_WANT_READ);
	SC(&d, "250 2.0.0 queued as A\r\n", "", MSV_SMTP_TXN_DONE);
	const msv_smtp_txn *t = msv_smtp_result(d.s);
	assert_int_equal(t->accepted, 1);
	assert_string_equal(t->rcpt[0].address, "bob@example.org");
	SC(&d, NULL, "", MSV_SMTP_READY);
	/* And the engine takes the second one afterwards. */
	assert_int_equal(msv_smtp_begin(d.s, &e2), MSV_OK);
	drv_close(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(overlapping_begin_out_of_memory),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
