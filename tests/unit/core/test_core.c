/* Unit tests for src/core: buffers, base64, errors, result tables,
 * deadlines and the redactor.  Written against include/missive/core.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "missive/core.h"

/* ---- msv_buf ---- */

static void buf_add_and_terminate(void **state)
{
	(void)state;
	msv_buf b;
	msv_buf_init(&b, 1024);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(msv_buf_addstr(&b, "hello"), MSV_OK);
	assert_int_equal(b.len, 5);
	assert_string_equal(b.data, "hello");
	assert_int_equal(msv_buf_addc(&b, ' '), MSV_OK);
	/* binary-safe: an embedded NUL counts */
	assert_int_equal(msv_buf_add(&b, "w\0rld", 5), MSV_OK);
	assert_int_equal(b.len, 11);
	assert_memory_equal(b.data, "hello w\0rld", 11);
	assert_int_equal(b.data[b.len], '\0');
	/* adding nothing is fine */
	assert_int_equal(msv_buf_add(&b, "", 0), MSV_OK);
	assert_int_equal(b.len, 11);
	msv_buf_free(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
}

static void buf_cap_enforced(void **state)
{
	(void)state;
	msv_buf b;
	msv_buf_init(&b, 10);
	assert_int_equal(msv_buf_add(&b, "0123456789", 10), MSV_OK);
	assert_int_equal(b.len, 10);
	assert_true(b.cap <= b.max + 1); /* growth never passes the cap (+NUL) */
	assert_string_equal(b.data, "0123456789");
	/* one byte past the cap: refused, and the buffer frees itself */
	assert_int_equal(msv_buf_addc(&b, 'x'), MSV_E_TOO_LARGE);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);
	/* ... and stays usable, empty, with the same cap */
	assert_int_equal(b.max, 10);
	assert_int_equal(msv_buf_addstr(&b, "abc"), MSV_OK);
	assert_string_equal(b.data, "abc");
	msv_buf_free(&b);

	/* one big add past the cap */
	msv_buf_init(&b, 4);
	assert_int_equal(msv_buf_add(&b, "abcde", 5), MSV_E_TOO_LARGE);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	msv_buf_free(&b);

	/* a size that would wrap size_t */
	msv_buf_init(&b, 100);
	assert_int_equal(msv_buf_addstr(&b, "ab"), MSV_OK);
	assert_int_equal(msv_buf_reserve(&b, SIZE_MAX), MSV_E_TOO_LARGE);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	msv_buf_free(&b);

	/* growth across many adds stays within the cap */
	msv_buf_init(&b, 1000);
	for (int i = 0; i < 1000; i++) {
		assert_int_equal(msv_buf_addc(&b, (char)('a' + i % 26)), MSV_OK);
		assert_true(b.cap <= b.max + 1);
		assert_int_equal(b.data[b.len], '\0');
	}
	assert_int_equal(b.len, 1000);
	assert_int_equal(msv_buf_addc(&b, 'z'), MSV_E_TOO_LARGE);
	assert_null(b.data);
	msv_buf_free(&b);

	/* cap 0: nothing fits, even an empty add is fine */
	msv_buf_init(&b, 0);
	assert_int_equal(msv_buf_add(&b, "", 0), MSV_OK);
	assert_int_equal(msv_buf_addc(&b, 'a'), MSV_E_TOO_LARGE);
	msv_buf_free(&b);
}

static void buf_addf(void **state)
{
	(void)state;
	msv_buf b;
	msv_buf_init(&b, 64);
	assert_int_equal(msv_buf_addf(&b, "%s %d", "MAIL", 42), MSV_OK);
	assert_int_equal(msv_buf_addf(&b, "<%s>", "a@b"), MSV_OK);
	assert_string_equal(b.data, "MAIL 42<a@b>");
	assert_int_equal(b.len, strlen("MAIL 42<a@b>"));
	assert_int_equal(msv_buf_addf(&b, "%s", ""), MSV_OK);
	assert_int_equal(b.len, 12);
	/* past the cap: refused and freed */
	assert_int_equal(msv_buf_addf(&b, "%060d", 7), MSV_E_TOO_LARGE);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	/* exactly to the cap */
	assert_int_equal(msv_buf_addf(&b, "%064d", 7), MSV_OK);
	assert_int_equal(b.len, 64);
	assert_int_equal(b.data[64], '\0');
	assert_int_equal(b.data[63], '7');
	msv_buf_free(&b);
}

static void buf_consume_reset(void **state)
{
	(void)state;
	msv_buf b;
	msv_buf_init(&b, 256);
	assert_int_equal(msv_buf_addstr(&b, "250 ok\r\n354 go\r\n"), MSV_OK);
	msv_buf_consume(&b, 8);
	assert_int_equal(b.len, 8);
	assert_string_equal(b.data, "354 go\r\n");
	msv_buf_consume(&b, 0);
	assert_string_equal(b.data, "354 go\r\n");
	msv_buf_consume(&b, 100); /* more than len: empties */
	assert_int_equal(b.len, 0);
	assert_string_equal(b.data, "");

	assert_int_equal(msv_buf_addstr(&b, "abcdef"), MSV_OK);
	char *mem = b.data;
	size_t cap = b.cap;
	msv_buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_ptr_equal(b.data, mem); /* keeps its memory */
	assert_int_equal(b.cap, cap);
	assert_string_equal(b.data, "");
	assert_int_equal(msv_buf_addstr(&b, "xy"), MSV_OK);
	assert_string_equal(b.data, "xy");
	msv_buf_free_secret(&b);
	assert_null(b.data);

	/* reset and consume on a never-used buffer */
	msv_buf_init(&b, 8);
	msv_buf_reset(&b);
	msv_buf_consume(&b, 3);
	assert_int_equal(b.len, 0);
	msv_buf_free(&b);
	msv_buf_free(&b); /* double free of an empty buffer is harmless */
}

static void buf_reserve(void **state)
{
	(void)state;
	msv_buf b;
	msv_buf_init(&b, 100);
	assert_int_equal(msv_buf_reserve(&b, 50), MSV_OK);
	assert_int_equal(b.len, 0);
	assert_true(b.cap >= 51);
	assert_int_equal(msv_buf_reserve(&b, 100), MSV_OK);
	assert_int_equal(msv_buf_reserve(&b, 101), MSV_E_TOO_LARGE);
	assert_null(b.data);
	msv_buf_free(&b);
}

/* ---- base64 ---- */

static const struct {
	const char *plain;
	const char *enc;
} b64_vectors[] = {
	/* RFC 4648 section 10 */
	{"", ""},
	{"f", "Zg=="},
	{"fo", "Zm8="},
	{"foo", "Zm9v"},
	{"foob", "Zm9vYg=="},
	{"fooba", "Zm9vYmE="},
	{"foobar", "Zm9vYmFy"},
	/* SASL PLAIN / XOAUTH2 shapes */
	{"\0tim\0tanstaaftanstaaf", "AHRpbQB0YW5zdGFhZnRhbnN0YWFm"},
	{"tim b913a602c7eda7a495b4e6e7334d3890",
	 "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw"},
	{"<1896.697170952@postoffice.reston.mci.net>",
	 "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+"},
};

static size_t vec_len(const char *plain, const char *enc)
{
	/* vectors with embedded NULs: length from the encoding */
	size_t n = strlen(enc) / 4 * 3;
	if (n && enc[strlen(enc) - 1] == '=')
		n--;
	if (n && enc[strlen(enc) - 2] == '=')
		n--;
	(void)plain;
	return n;
}

static void base64_vectors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(b64_vectors) / sizeof(b64_vectors[0]); i++) {
		const char *p = b64_vectors[i].plain, *e = b64_vectors[i].enc;
		size_t pn = vec_len(p, e);
		msv_buf b;
		msv_buf_init(&b, 1024);
		assert_int_equal(msv_base64_encoded_len(pn), strlen(e));
		assert_int_equal(msv_base64_encode(&b, p, pn), MSV_OK);
		assert_int_equal(b.len, strlen(e));
		if (b.len)
			assert_string_equal(b.data, e);
		msv_buf_free(&b);

		msv_buf_init(&b, 1024);
		assert_int_equal(msv_base64_decode(&b, e, strlen(e)), MSV_OK);
		assert_int_equal(b.len, pn);
		if (pn)
			assert_memory_equal(b.data, p, pn);
		msv_buf_free(&b);
	}
}

static void base64_appends(void **state)
{
	(void)state;
	msv_buf b;
	msv_buf_init(&b, 64);
	assert_int_equal(msv_buf_addstr(&b, "AUTH PLAIN "), MSV_OK);
	assert_int_equal(msv_base64_encode(&b, "foo", 3), MSV_OK);
	assert_string_equal(b.data, "AUTH PLAIN Zm9v");
	assert_int_equal(msv_base64_decode(&b, "YmFy", 4), MSV_OK);
	assert_string_equal(b.data, "AUTH PLAIN Zm9vbar");
	msv_buf_free(&b);

	/* every length 0..64 and every byte value round-trips */
	unsigned char raw[256];
	for (int i = 0; i < 256; i++)
		raw[i] = (unsigned char)(255 - i);
	for (size_t n = 0; n <= 256; n += (n < 64 ? 1 : 64)) {
		msv_buf e, d;
		msv_buf_init(&e, 4096);
		msv_buf_init(&d, 4096);
		assert_int_equal(msv_base64_encode(&e, raw, n), MSV_OK);
		assert_int_equal(e.len, msv_base64_encoded_len(n));
		assert_int_equal(msv_base64_decode(&d, e.data ? e.data : "", e.len), MSV_OK);
		assert_int_equal(d.len, n);
		if (n)
			assert_memory_equal(d.data, raw, n);
		msv_buf_free(&e);
		msv_buf_free(&d);
	}

	/* encode past the buffer's cap */
	msv_buf_init(&b, 7);
	assert_int_equal(msv_base64_encode(&b, "foobar", 6), MSV_E_TOO_LARGE);
	assert_null(b.data);
	msv_buf_free(&b);
}

static void base64_strict(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"Zg=",      /* length not a multiple of 4 */
		"Zg",       /* unpadded */
		"Zm9vY",    /* length 5 */
		"Z",
		"Zm9v!A==", /* character outside the alphabet */
		"Zm9v\nYg==", /* line break */
		"Zm 9",     /* space */
		"Zm-_",     /* base64url alphabet */
		"Zh==",     /* non-zero bits under the padding ('h' = 100001) */
		"Zm9=",     /* non-zero bits under the padding ('9' = 111101) */
		"Zm9vYh==",
		"Zm9vYmF=", /* 'F' low two bits 01 */
		"Z===",     /* three pad characters */
		"====",
		"=Zg=",     /* padding first */
		"Zg=a",     /* data after padding */
		"Zg==Zg==", /* padding in the middle */
		"Zm9vZg==Zm9v",
		"Zm=v",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		msv_buf b;
		msv_buf_init(&b, 64);
		assert_int_equal(msv_buf_addstr(&b, "keep"), MSV_OK);
		msv_result r = msv_base64_decode(&b, bad[i], strlen(bad[i]));
		if (r == MSV_OK)
			fail_msg("base64 decode accepted \"%s\"", bad[i]);
		assert_int_equal(r, MSV_E_INVALID);
		msv_buf_free(&b);
	}
	/* an embedded NUL is not in the alphabet */
	msv_buf b;
	msv_buf_init(&b, 64);
	assert_int_equal(msv_base64_decode(&b, "Zm\0v", 4), MSV_E_INVALID);
	/* 8-bit input bytes */
	assert_int_equal(msv_base64_decode(&b, "Zm\xc3\xa9", 4), MSV_E_INVALID);
	msv_buf_free(&b);
}

/* ---- errors ---- */

static void error_set_and_sanitize(void **state)
{
	(void)state;
	msv_error e;
	msv_error_clear(&e);
	assert_int_equal(e.code, MSV_OK);
	assert_int_equal(e.cls, MSV_CLASS_NONE);
	assert_int_equal(e.reply_code, 0);
	assert_string_equal(e.message, "");

	e.reply_code = 550;
	snprintf(e.enhanced, sizeof(e.enhanced), "%s", "5.1.1");
	snprintf(e.server_text, sizeof(e.server_text), "%s", "no such user");
	assert_int_equal(msv_error_set(&e, MSV_E_PROTOCOL, MSV_CLASS_TEMPORARY, "bad reply %d: %s",
	                               7, "x\r\ny\x01\x7f\xc3\xa9z"),
	                 MSV_E_PROTOCOL);
	assert_int_equal(e.code, MSV_E_PROTOCOL);
	assert_int_equal(e.cls, MSV_CLASS_TEMPORARY);
	/* the reply fields are cleared */
	assert_int_equal(e.reply_code, 0);
	assert_string_equal(e.enhanced, "");
	assert_string_equal(e.server_text, "");
	/* non-printables became '?', one line; valid UTF-8 stays */
	assert_string_equal(e.message, "bad reply 7: x??y??\xc3\xa9z");
	/* invalid UTF-8, C1 and bidi controls do not; a cut never splits one */
	msv_error_set(&e, MSV_E_INVALID, MSV_CLASS_USAGE, "%s",
	              "a\xc3(\xc2\x85\xe2\x80\xae\xed\xa0\x80\xf0\x9f\x8e\x89" "b");
	assert_string_equal(e.message, "a?(?????\xf0\x9f\x8e\x89" "b");
	char longer[MSV_TEXT_MAX + 8];
	memset(longer, 'a', MSV_TEXT_MAX - 2);
	memcpy(longer + MSV_TEXT_MAX - 2, "\xc3\xa9\xc3\xa9", 5);
	msv_error_set(&e, MSV_E_INVALID, MSV_CLASS_USAGE, "%s", longer);
	assert_int_equal(strlen(e.message), MSV_TEXT_MAX - 2);

	/* a very long message is truncated and NUL-terminated */
	char big[2000];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	msv_error_set(&e, MSV_E_INVALID, MSV_CLASS_USAGE, "%s", big);
	assert_int_equal(strlen(e.message), MSV_TEXT_MAX - 1);

	/* NULL error: returns the code, touches nothing */
	assert_int_equal(msv_error_set(NULL, MSV_E_NOMEM, MSV_CLASS_LOCAL, "x"), MSV_E_NOMEM);
}

static void sanitize(void **state)
{
	(void)state;
	char out[16];
	msv_sanitize(out, sizeof(out), "a\tb\0c ~\x7f\x80\xff", 10);
	assert_string_equal(out, "a?b?c ~???");
	/* the UTF-8 variant keeps valid UTF-8, never cut inside a character,
	 * but not C1 controls and bidi overrides */
	const char *u = "J\xc3\xb6rg \xc2\x85\xe2\x80\xae\xff";
	msv_sanitize_utf8(out, sizeof(out), u, strlen(u));
	assert_string_equal(out, "J\xc3\xb6rg ???");
	msv_sanitize_utf8(out, 3, "J\xc3\xb6", 3);
	assert_string_equal(out, "J");
	msv_sanitize(out, sizeof(out), "J\xc3\xb6", 3);
	assert_string_equal(out, "J??");
	/* truncation keeps the NUL */
	msv_sanitize(out, 4, "abcdef", 6);
	assert_string_equal(out, "abc");
	msv_sanitize(out, 1, "abcdef", 6);
	assert_string_equal(out, "");
	/* dstsz 0: writes nothing */
	out[0] = 'Q';
	msv_sanitize(out, 0, "abc", 3);
	assert_int_equal(out[0], 'Q');
	/* every byte value */
	char all[256], res[257];
	for (int i = 0; i < 256; i++)
		all[i] = (char)i;
	msv_sanitize(res, sizeof(res), all, 256);
	assert_int_equal(strlen(res), 256);
	for (int i = 0; i < 256; i++) {
		char want = (i >= 0x20 && i < 0x7f) ? (char)i : '?';
		assert_int_equal(res[i], want);
	}
}

static void result_tables_complete(void **state)
{
	(void)state;
	for (int r = 0; r < MSV__RESULT_COUNT; r++) {
		const char *text = msv_strerror((msv_result)r);
		const char *name = msv_result_name((msv_result)r);
		assert_non_null(text);
		assert_non_null(name);
		if (!text[0] || strstr(text, "unknown"))
			fail_msg("msv_strerror(%d) = \"%s\"", r, text);
		if (!name[0] || !strcmp(name, "unknown"))
			fail_msg("msv_result_name(%d) = \"%s\"", r, name);
		/* names are identifiers for JSON and logs */
		for (const char *p = name; *p; p++)
			assert_true((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_');
		for (int k = 0; k < r; k++) {
			if (!strcmp(name, msv_result_name((msv_result)k)))
				fail_msg("result name \"%s\" used by %d and %d", name, k, r);
			if (!strcmp(text, msv_strerror((msv_result)k)))
				fail_msg("result text \"%s\" used by %d and %d", text, k, r);
		}
	}
	assert_string_equal(msv_result_name(MSV_OK), "ok");
	assert_string_equal(msv_result_name(MSV_E_TOO_LARGE), "too_large");
	/* out of range: a harmless "unknown" string, never NULL or a crash */
	assert_non_null(msv_strerror(MSV__RESULT_COUNT));
	assert_non_null(msv_result_name((msv_result)-1));
	assert_non_null(msv_strerror((msv_result)100000));

	/* the numbers are the contract */
	assert_int_equal(MSV_E_NOMEM, 1);
	assert_int_equal(MSV_E_REPLY, 16);
	assert_int_equal(MSV_E_SYSTEM, 26);
	assert_int_equal(MSV_E_TOO_MANY_RCPT, 27);
	assert_int_equal(MSV_E_BAD_REQUEST, 33);
	assert_int_equal(MSV_E_RATE_LIMITED, 34);
	assert_int_equal(MSV_E_CIRCUIT_OPEN, 35);
	assert_int_equal(MSV_E_REPUTATION, 36);
	assert_int_equal(MSV_E_UNAUTHORIZED, 37);
	assert_int_equal(MSV_E_FORBIDDEN, 38);
	assert_int_equal(MSV_E_NO_INPUT, 39);
	assert_int_equal(MSV__RESULT_COUNT, 40);

	const msv_class classes[] = {MSV_CLASS_NONE, MSV_CLASS_TEMPORARY, MSV_CLASS_PERMANENT,
	                             MSV_CLASS_LOCAL, MSV_CLASS_CONFIG, MSV_CLASS_USAGE};
	for (size_t i = 0; i < 6; i++) {
		const char *n = msv_class_name(classes[i]);
		assert_non_null(n);
		assert_string_not_equal(n, "unknown");
		for (size_t k = 0; k < i; k++)
			assert_string_not_equal(n, msv_class_name(classes[k]));
	}
	assert_string_equal(msv_class_name(MSV_CLASS_TEMPORARY), "temporary");
	assert_string_equal(msv_class_name(MSV_CLASS_PERMANENT), "permanent");
}

static void class_of_reply(void **state)
{
	(void)state;
	assert_int_equal(msv_class_of_reply(220), MSV_CLASS_NONE);
	assert_int_equal(msv_class_of_reply(250), MSV_CLASS_NONE);
	assert_int_equal(msv_class_of_reply(251), MSV_CLASS_NONE);
	assert_int_equal(msv_class_of_reply(354), MSV_CLASS_NONE);
	assert_int_equal(msv_class_of_reply(334), MSV_CLASS_NONE);
	assert_int_equal(msv_class_of_reply(421), MSV_CLASS_TEMPORARY);
	assert_int_equal(msv_class_of_reply(450), MSV_CLASS_TEMPORARY);
	assert_int_equal(msv_class_of_reply(451), MSV_CLASS_TEMPORARY);
	assert_int_equal(msv_class_of_reply(452), MSV_CLASS_TEMPORARY);
	assert_int_equal(msv_class_of_reply(454), MSV_CLASS_TEMPORARY);
	assert_int_equal(msv_class_of_reply(499), MSV_CLASS_TEMPORARY);
	assert_int_equal(msv_class_of_reply(500), MSV_CLASS_PERMANENT);
	assert_int_equal(msv_class_of_reply(535), MSV_CLASS_PERMANENT);
	assert_int_equal(msv_class_of_reply(550), MSV_CLASS_PERMANENT);
	assert_int_equal(msv_class_of_reply(554), MSV_CLASS_PERMANENT);
	assert_int_equal(msv_class_of_reply(599), MSV_CLASS_PERMANENT);
	for (int c = 400; c < 600; c++)
		assert_int_equal(msv_class_of_reply(c),
		                 c < 500 ? MSV_CLASS_TEMPORARY : MSV_CLASS_PERMANENT);
}

/* ---- deadlines ---- */

static void deadlines(void **state)
{
	(void)state;
	int64_t t0 = msv_now_ms();
	assert_true(t0 >= 0);
	msv_deadline d = msv_deadline_in(1000);
	int64_t t1 = msv_now_ms();
	assert_true(t1 >= t0); /* monotonic */
	assert_true(d >= t0 + 1000 && d <= t1 + 1000);

	/* As implemented: a non-positive timeout gives "no deadline" (0),
	 * not one already passed. */
	assert_int_equal(msv_deadline_in(0), 0);
	assert_int_equal(msv_deadline_in(-5), 0);

	assert_int_equal(msv_deadline_min(0, 0), 0);
	assert_int_equal(msv_deadline_min(0, 500), 500);
	assert_int_equal(msv_deadline_min(500, 0), 500);
	assert_int_equal(msv_deadline_min(500, 700), 500);
	assert_int_equal(msv_deadline_min(700, 500), 500);

	assert_int_equal(msv_deadline_poll_ms(0, 12345), -1); /* none: block */
	assert_int_equal(msv_deadline_poll_ms(1000, 1000), 0); /* passed */
	assert_int_equal(msv_deadline_poll_ms(1000, 5000), 0);
	assert_int_equal(msv_deadline_poll_ms(1000, 400), 600);
	assert_int_equal(msv_deadline_poll_ms(1001, 1000), 1);
	/* far future: clamped into int, never negative (which would block forever) */
	int far = msv_deadline_poll_ms(INT64_C(1) << 50, 1);
	assert_true(far > 0);
	assert_int_equal(far, INT32_MAX);
}

/* ---- redaction ---- */

static char *redact(const msv_redactor *r, const char *text)
{
	static char out[4096];
	msv_buf b;
	msv_buf_init(&b, 4000);
	assert_int_equal(msv_redact(r, &b, text, strlen(text)), MSV_OK);
	assert_true(b.len < sizeof(out));
	memcpy(out, b.data ? b.data : "", b.len);
	out[b.len] = '\0';
	msv_buf_free(&b);
	return out;
}

static void redactor_basic(void **state)
{
	(void)state;
	msv_redactor *r = NULL;
	assert_int_equal(msv_redactor_new(&r), MSV_OK);
	assert_non_null(r);
	assert_string_equal(redact(r, "nothing yet"), "nothing yet");
	assert_int_equal(msv_redactor_add(r, "hunter2", 7), MSV_OK);
	assert_string_equal(redact(r, "password hunter2 ok"), "password [redacted] ok");
	/* its base64 form "aHVudGVyMg==" as well */
	assert_string_equal(redact(r, "334 x\r\naHVudGVyMg==\r\n"), "334 x\r\n[redacted]\r\n");
	assert_string_equal(redact(r, "hunter2hunter2"), "[redacted][redacted]");
	assert_string_equal(redact(r, "hunter2"), "[redacted]");
	assert_string_equal(redact(r, "xhunter2x hunter2"), "x[redacted]x [redacted]");
	assert_string_equal(redact(r, "hunter"), "hunter");
	assert_string_equal(redact(r, ""), "");
	/* case matters: "HUNTER2" is a different secret */
	assert_string_equal(redact(r, "HUNTER2"), "HUNTER2");
	msv_redactor_free(r);
	msv_redactor_free(NULL);
}

static void redactor_short_ignored(void **state)
{
	(void)state;
	msv_redactor *r = NULL;
	assert_int_equal(msv_redactor_new(&r), MSV_OK);
	assert_int_equal(msv_redactor_add(r, "a", 1), MSV_OK);
	assert_int_equal(msv_redactor_add(r, "ab", 2), MSV_OK);
	assert_int_equal(msv_redactor_add(r, "", 0), MSV_OK);
	assert_string_equal(redact(r, "a cab abba"), "a cab abba");
	/* the base64 form of a short secret ("YWI=") is not masked either */
	assert_string_equal(redact(r, "YWI= YQ=="), "YWI= YQ==");
	assert_int_equal(msv_redactor_add(r, "abc", 3), MSV_OK);
	assert_string_equal(redact(r, "ab abc abcd"), "ab [redacted] [redacted]d");
	/* base64 of "abc" */
	assert_string_equal(redact(r, "YWJj"), "[redacted]");
	msv_redactor_free(r);
}

/* Checks that no secret survives in the output, whatever overlaps. */
static void assert_no_secret(const char *out, const char *const *secrets, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strstr(out, secrets[i]))
			fail_msg("secret \"%s\" survived in \"%s\"", secrets[i], out);
}

static void redactor_overlap(void **state)
{
	(void)state;
	msv_redactor *r = NULL;
	assert_int_equal(msv_redactor_new(&r), MSV_OK);
	/* self-overlapping secret */
	assert_int_equal(msv_redactor_add(r, "abab", 4), MSV_OK);
	const char *out = redact(r, "xabababx");
	assert_string_equal(out, "x[redacted]abx");
	out = redact(r, "abababab");
	assert_string_equal(out, "[redacted][redacted]");
	msv_redactor_free(r);

	/* two secrets, one a prefix of the other: the longer one wins */
	assert_int_equal(msv_redactor_new(&r), MSV_OK);
	assert_int_equal(msv_redactor_add(r, "tok", 3), MSV_OK);
	assert_int_equal(msv_redactor_add(r, "token-123", 9), MSV_OK);
	assert_string_equal(redact(r, "a token-123 b"), "a [redacted] b");
	assert_string_equal(redact(r, "a token-12 b"), "a [redacted]en-12 b");
	msv_redactor_free(r);

	/* secrets overlapping each other in the text */
	static const char *const sec[] = {"s3cr3tpass", "passw0rd-long", "ss-s3cr3t"};
	assert_int_equal(msv_redactor_new(&r), MSV_OK);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(msv_redactor_add(r, sec[i], strlen(sec[i])), MSV_OK);
	static const char *const texts[] = {
		"s3cr3tpassw0rd-long",
		"pass-s3cr3tpasspassw0rd-longs3cr3tpas",
		"ss-s3cr3tpass",
		"s3cr3tpas s3cr3tpass s3cr3tpass",
		"AUTH PLAIN czNjcjN0cGFzcw==", /* base64 of the first */
	};
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		out = redact(r, texts[i]);
		assert_no_secret(out, sec, 3);
		assert_null(strstr(out, "czNjcjN0cGFzcw=="));
		assert_non_null(strstr(out, "[redacted]"));
	}
	/* adding the same secret twice is harmless */
	assert_int_equal(msv_redactor_add(r, sec[0], strlen(sec[0])), MSV_OK);
	assert_string_equal(redact(r, "<s3cr3tpass>"), "<[redacted]>");
	msv_redactor_free(r);

	/* a NULL redactor copies the text */
	assert_string_equal(redact(NULL, "s3cr3tpass"), "s3cr3tpass");
}

static void redactor_binary_secret(void **state)
{
	(void)state;
	/* a secret with 8-bit bytes; text passed with an explicit length */
	msv_redactor *r = NULL;
	assert_int_equal(msv_redactor_new(&r), MSV_OK);
	assert_int_equal(msv_redactor_add(r, "p\xc3\xa4ss", 5), MSV_OK);
	assert_string_equal(redact(r, "x p\xc3\xa4ss y"), "x [redacted] y");
	msv_buf b;
	msv_buf_init(&b, 100);
	assert_int_equal(msv_redact(r, &b, "p\xc3\xa4ss\0p\xc3\xa4ss", 11), MSV_OK);
	assert_int_equal(b.len, 21);
	assert_memory_equal(b.data, "[redacted]\0[redacted]", 21);
	/* the output buffer's cap is honoured */
	msv_buf_free(&b);
	msv_buf_init(&b, 5);
	assert_int_equal(msv_redact(r, &b, "p\xc3\xa4ss", 5), MSV_E_TOO_LARGE);
	msv_buf_free(&b);
	msv_redactor_free(r);
}

struct log_sink {
	int calls;
	char last[1200];
};

static void log_fn(void *payload, msv_log_level level, const char *line)
{
	struct log_sink *s = payload;
	(void)level;
	s->calls++;
	snprintf(s->last, sizeof(s->last), "%s", line);
}

static void log_redacts(void **state)
{
	(void)state;
	msv_redactor *r = NULL;
	assert_int_equal(msv_redactor_new(&r), MSV_OK);
	assert_int_equal(msv_redactor_add(r, "hunter2", 7), MSV_OK);
	struct log_sink sink = {0, ""};
	msv_logger lg = {log_fn, &sink, MSV_LOG_INFO, r};
	msv_log(&lg, MSV_LOG_INFO, "login %s with %s", "tim", "hunter2");
	assert_int_equal(sink.calls, 1);
	assert_string_equal(sink.last, "login tim with [redacted]");
	msv_log(&lg, MSV_LOG_DEBUG, "dropped %s", "hunter2"); /* above level */
	assert_int_equal(sink.calls, 1);
	msv_log(&lg, MSV_LOG_ERROR, "b64 %s", "aHVudGVyMg==");
	assert_int_equal(sink.calls, 2);
	assert_string_equal(sink.last, "b64 [redacted]");
	msv_log(NULL, MSV_LOG_ERROR, "no logger");
	msv_redactor_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(buf_add_and_terminate),
		cmocka_unit_test(buf_cap_enforced),
		cmocka_unit_test(buf_addf),
		cmocka_unit_test(buf_consume_reset),
		cmocka_unit_test(buf_reserve),
		cmocka_unit_test(base64_vectors),
		cmocka_unit_test(base64_appends),
		cmocka_unit_test(base64_strict),
		cmocka_unit_test(error_set_and_sanitize),
		cmocka_unit_test(sanitize),
		cmocka_unit_test(result_tables_complete),
		cmocka_unit_test(class_of_reply),
		cmocka_unit_test(deadlines),
		cmocka_unit_test(redactor_basic),
		cmocka_unit_test(redactor_short_ignored),
		cmocka_unit_test(redactor_overlap),
		cmocka_unit_test(redactor_binary_secret),
		cmocka_unit_test(log_redacts),
	};
	return cmocka_run_group_tests_name("core", tests, NULL, NULL);
}
