/* msv_smtp_reply_parse: the reply accumulator.  Corpus samples whole and cut
 * at every byte, every enhanced status code of the registry, and a
 * negative test for every limit and malformed-input branch. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "missive/smtp.h"
#include "script.h" /* esc() */

static void read_corpus(msv_buf *b, const char *rel)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/%s", MSV_CORPUS_DIR, rel);
	FILE *f = fopen(path, "rb");
	if (!f)
		fail_msg("cannot open %s", path);
	msv_buf_init(b, 1 << 24);
	char tmp[4096];
	size_t n;
	while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
		assert_int_equal(msv_buf_add(b, tmp, n), MSV_OK);
	fclose(f);
	assert_true(b->len > 0);
}

/* Small cursor parsers for the corpus files (no sscanf). */
static void word(const char **p, char *dst, size_t dstsz)
{
	size_t n = 0;
	while (**p == ' ')
		(*p)++;
	while (**p && **p != ' ' && n + 1 < dstsz)
		dst[n++] = *(*p)++;
	dst[n] = '\0';
}

static int num(const char **p)
{
	int v = 0;
	while (**p == ' ')
		(*p)++;
	while (**p >= '0' && **p <= '9' && v < 100000)
		v = v * 10 + (*(*p)++ - '0');
	return v;
}

/* Parses buf[0..len) from an exact-size heap copy, so ASan catches any
 * read past len (picohttpparser's PROT_NONE trick, cheaper). */
static long parse_exact(const char *buf, size_t len, msv_smtp_reply *out, msv_buf *lines,
                        msv_error *err)
{
	char *copy = msv_malloc(len ? len : 1);
	assert_non_null(copy);
	if (len)
		memcpy(copy, buf, len);
	memset(out, 0x5a, sizeof(*out)); /* garbage: the parser must set what it reports */
	if (lines)
		msv_buf_reset(lines);
	msv_error_clear(err);
	long rc = msv_smtp_reply_parse(copy, len, out, lines, err);
	msv_free(copy);
	return rc;
}

static long parse_str(const char *s, msv_smtp_reply *out, msv_buf *lines, msv_error *err)
{
	return parse_exact(s, strlen(s), out, lines, err);
}

/* A complete reply must return 0 for every proper prefix and its full
 * length when whole, whatever follows it. */
static void check_prefixes(const char *buf, size_t len)
{
	msv_smtp_reply r;
	msv_error err;
	msv_buf lines;
	msv_buf_init(&lines, MSV_REPLY_MAX * 2);
	for (size_t k = 0; k < len; k++) {
		long rc = parse_exact(buf, k, &r, &lines, &err);
		if (rc != 0) {
			char e[8192];
			fail_msg("prefix %zu/%zu of \"%s\" returned %ld (%s)", k, len,
			         esc(e, sizeof(e), buf, len), rc, err.message);
		}
	}
	assert_int_equal(parse_exact(buf, len, &r, &lines, &err), (long)len);
	/* followed by the next reply, or by garbage */
	char *more = msv_malloc(len + 32);
	assert_non_null(more);
	memcpy(more, buf, len);
	memcpy(more + len, "250 next\r\n", 10);
	assert_int_equal(parse_exact(more, len + 10, &r, &lines, &err), (long)len);
	memcpy(more + len, "\x01garbage", 8);
	assert_int_equal(parse_exact(more, len + 8, &r, &lines, &err), (long)len);
	msv_free(more);
	msv_buf_free(&lines);
}

/* ---- the corpus samples ---- */

static size_t count_lines(const msv_buf *lines)
{
	if (!lines->len)
		return 1;
	size_t n = 1;
	for (size_t i = 0; i + 1 < lines->len; i++)
		if (lines->data[i] == '\r' && lines->data[i + 1] == '\n')
			n++;
	/* a trailing CRLF ends the last line rather than starting one */
	if (lines->len >= 2 && !memcmp(lines->data + lines->len - 2, "\r\n", 2))
		n--;
	return n;
}

static void corpus_multiline(void **state)
{
	(void)state;
	msv_buf file;
	read_corpus(&file, "smtp/multiline-replies.txt");
	int cases = 0;
	size_t pos = 0;
	while (pos < file.len) {
		const char *line = file.data + pos;
		const char *nl = memchr(line, '\n', file.len - pos);
		size_t ll = nl ? (size_t)(nl - line) : file.len - pos;
		pos += ll + (nl ? 1 : 0);
		if (ll < 4 || memcmp(line, "=== ", 4))
			continue;
		char id[32], enh[32];
		int code = 0, nlines = 0;
		char hdr[256];
		assert_true(ll < sizeof(hdr));
		memcpy(hdr, line, ll);
		hdr[ll] = '\0';
		const char *hp = hdr + 4;
		word(&hp, id, sizeof(id));
		code = num(&hp);
		word(&hp, enh, sizeof(enh));
		nlines = num(&hp);
		assert_true(id[0] && code && enh[0] && nlines);
		/* the reply: following lines up to the next "===" or the end, CRLF */
		msv_buf reply, want_lines;
		msv_buf_init(&reply, 1 << 20);
		msv_buf_init(&want_lines, 1 << 20);
		char first_text[1024] = "";
		int got_lines = 0;
		while (pos < file.len && memcmp(file.data + pos, "===", 3)) {
			const char *l = file.data + pos;
			const char *e = memchr(l, '\n', file.len - pos);
			size_t n = e ? (size_t)(e - l) : file.len - pos;
			pos += n + (e ? 1 : 0);
			if (n && l[n - 1] == '\r')
				n--;
			if (!n || l[0] == '#')
				continue;
			assert_int_equal(msv_buf_add(&reply, l, n), MSV_OK);
			assert_int_equal(msv_buf_addstr(&reply, "\r\n"), MSV_OK);
			const char *text = n > 4 ? l + 4 : "";
			size_t tn = n > 4 ? n - 4 : 0;
			if (got_lines)
				assert_int_equal(msv_buf_addstr(&want_lines, "\r\n"), MSV_OK);
			assert_int_equal(msv_buf_add(&want_lines, text, tn), MSV_OK);
			if (!got_lines) {
				/* first line's text without the enhanced code */
				size_t el = strcmp(enh, "-") ? strlen(enh) : 0;
				if (el && tn >= el && !memcmp(text, enh, el)) {
					text += el;
					tn -= el;
					while (tn && *text == ' ') {
						text++;
						tn--;
					}
				}
				assert_true(tn < sizeof(first_text));
				memcpy(first_text, text, tn);
				first_text[tn] = '\0';
			}
			got_lines++;
		}
		assert_int_equal(got_lines, nlines);

		msv_smtp_reply r;
		msv_error err;
		msv_buf lines;
		msv_buf_init(&lines, MSV_REPLY_MAX * 2);
		long rc = parse_exact(reply.data, reply.len, &r, &lines, &err);
		if (rc != (long)reply.len)
			fail_msg("%s: parse returned %ld for %zu bytes (%s)", id, rc, reply.len,
			         err.message);
		assert_int_equal(r.code, code);
		assert_string_equal(r.enhanced, strcmp(enh, "-") ? enh : "");
		/* text: every line joined; it starts with the first line's */
		if (strncmp(r.text, first_text, strlen(first_text)))
			fail_msg("%s: text \"%s\" does not start with \"%s\"", id, r.text, first_text);
		if (count_lines(&lines) != (size_t)nlines)
			fail_msg("%s: %zu lines in \"%s\", expected %d", id, count_lines(&lines),
			         lines.data, nlines);
		/* lines: the texts joined by CRLF (no trailing CRLF) */
		assert_int_equal(lines.len, want_lines.len);
		if (lines.len)
			assert_memory_equal(lines.data, want_lines.data, lines.len);
		/* lines is optional */
		assert_int_equal(parse_exact(reply.data, reply.len, &r, NULL, &err), rc);
		assert_int_equal(r.code, code);
		check_prefixes(reply.data, reply.len);
		msv_buf_free(&lines);
		msv_buf_free(&reply);
		msv_buf_free(&want_lines);
		cases++;
	}
	assert_int_equal(cases, 8);
	msv_buf_free(&file);
}

/* ---- enhanced status codes ---- */

static void expect_reply(const char *in, int code, const char *enhanced, const char *text)
{
	msv_smtp_reply r;
	msv_error err;
	long rc = parse_str(in, &r, NULL, &err);
	char e[2048];
	if (rc != (long)strlen(in))
		fail_msg("\"%s\": returned %ld (%s)", esc(e, sizeof(e), in, strlen(in)), rc,
		         err.message);
	if (r.code != code || strcmp(r.enhanced, enhanced) || (text && strcmp(r.text, text)))
		fail_msg("\"%s\": got %d \"%s\" \"%s\", expected %d \"%s\" \"%s\"",
		         esc(e, sizeof(e), in, strlen(in)), r.code, r.enhanced, r.text, code, enhanced,
		         text ? text : "(any)");
}

/* The sanitized form of a mismatched enhanced code: "X.0.0" with X the
 * reply's class digit (Postfix smtp_chat) -- see mismatch_form(). */
static char mismatch_x;

static void mismatch_form(char *dst, int code)
{
	if (mismatch_x == 'X')
		snprintf(dst, 16, "X.0.0");
	else
		snprintf(dst, 16, "%d.0.0", code / 100 % 10);
}

static void learn_mismatch_form(void)
{
	msv_smtp_reply r;
	msv_error err;
	assert_int_equal(parse_str("550 4.1.1 x\r\n", &r, NULL, &err), 13);
	/* the header says "X.0.0"; accept the literal or the class digit,
	 * then hold every row to the same form */
	if (!strcmp(r.enhanced, "X.0.0"))
		mismatch_x = 'X';
	else if (!strcmp(r.enhanced, "5.0.0"))
		mismatch_x = 'd';
	else
		fail_msg("550 with 4.1.1 gave enhanced \"%s\"", r.enhanced);
}

static void enhanced_registry(void **state)
{
	(void)state;
	learn_mismatch_form();
	msv_buf file;
	read_corpus(&file, "smtp/enhanced-status-codes.csv");
	size_t pos = 0;
	int rows = 0, checks = 0;
	while (pos < file.len) {
		const char *line = file.data + pos;
		const char *nl = memchr(line, '\n', file.len - pos);
		size_t ll = nl ? (size_t)(nl - line) : file.len - pos;
		pos += ll + (nl ? 1 : 0);
		if (ll < 2 || line[0] != 'X' || line[1] != '.')
			continue; /* the header */
		char row[512];
		assert_true(ll < sizeof(row));
		memcpy(row, line, ll);
		row[ll] = '\0';
		char *c1 = strchr(row, ',');
		assert_non_null(c1);
		*c1 = '\0';
		char *samples = c1 + 1;
		char *c2 = strchr(samples, ',');
		assert_non_null(c2);
		*c2 = '\0';
		const char *detail = row + 1; /* ".1.1" */
		rows++;

		/* reply codes to try: the samples (ranges expanded), and one per class */
		int codes[64];
		int nc = 0;
		codes[nc++] = 250;
		codes[nc++] = 451;
		codes[nc++] = 550;
		for (char *tok = samples; *tok;) {
			while (*tok == ' ')
				tok++;
			if (!*tok)
				break;
			char *end = tok;
			while (*end && *end != ' ')
				end++;
			char save = *end;
			*end = '\0';
			const char *tp = tok;
			int lo = num(&tp), hi = lo;
			if (*tp == '-') {
				tp++;
				hi = num(&tp);
			}
			for (int c = lo; lo && c <= hi && nc < 64; c++)
				codes[nc++] = c; /* "Any" gives lo 0: skipped */
			*end = save;
			tok = end;
		}
		for (int i = 0; i < nc; i++) {
			int code = codes[i];
			int cls = code / 100;
			if (cls < 2 || cls > 5)
				fail_msg("row %s: sample reply code %d", row, code);
			char enh[600], in[2048], mixed[16];
			/* matching class: parsed as is */
			snprintf(enh, sizeof(enh), "%d%s", cls, detail);
			snprintf(in, sizeof(in), "%d %s Status text here\r\n", code, enh);
			expect_reply(in, code, enh, "Status text here");
			/* in a multi-line reply: taken from the first line */
			snprintf(in, sizeof(in), "%d-%s first\r\n%d-%s middle\r\n%d %s last\r\n", code, enh,
			         code, enh, code, enh);
			expect_reply(in, code, enh, "first middle last");
			/* without text */
			snprintf(in, sizeof(in), "%d %s\r\n", code, enh);
			expect_reply(in, code, enh, "");
			checks += 3;
			/* every mismatching class digit (2, 4, 5: RFC 3463 2): sanitized */
			for (int m = 2; m <= 5; m++) {
				if (m == cls || m == 3)
					continue;
				snprintf(enh, sizeof(enh), "%d%s", m, detail);
				snprintf(in, sizeof(in), "%d %s Status text here\r\n", code, enh);
				mismatch_form(mixed, code);
				expect_reply(in, code, mixed, NULL);
				checks++;
			}
		}
	}
	assert_true(rows >= 80);
	print_message("enhanced registry: %d rows, %d replies\n", rows, checks);
	msv_buf_free(&file);
}

static void enhanced_edge_cases(void **state)
{
	(void)state;
	learn_mismatch_form();
	char x5[8], x4[8], x2[8];
	mismatch_form(x5, 550);
	mismatch_form(x4, 450);
	mismatch_form(x2, 250);
	/* not an enhanced code at all: "" and the text kept whole */
	expect_reply("250 2.0 ok\r\n", 250, "", "2.0 ok");
	expect_reply("250 2.0.0x ok\r\n", 250, "", "2.0.0x ok");
	expect_reply("250 2..0 ok\r\n", 250, "", "2..0 ok");
	expect_reply("250 2.1000.0 ok\r\n", 250, "", "2.1000.0 ok");
	expect_reply("250 2.0.1000 ok\r\n", 250, "", "2.0.1000 ok");
	expect_reply("250 Ok: queued as 2.0.0\r\n", 250, "", "Ok: queued as 2.0.0");
	expect_reply("250 ok\r\n", 250, "", "ok");
	/* three-digit subject and detail are allowed (RFC 3463 2) */
	expect_reply("550 5.123.456 odd\r\n", 550, "5.123.456", "odd");
	expect_reply("550 5.7.30 REQUIRETLS\r\n", 550, "5.7.30", "REQUIRETLS");
	/* class digits outside 2/4/5 are no enhanced code at all (RFC 3463 2:
	 * the class is 2, 4 or 5): "" and the text kept whole */
	expect_reply("550 3.0.0 odd\r\n", 550, "", "3.0.0 odd");
	expect_reply("550 9.9.9 odd\r\n", 550, "", "9.9.9 odd");
	/* a 3xx reply has no enhanced class of its own */
	expect_reply("354 End data with <CR><LF>.<CR><LF>\r\n", 354, "", "End data with <CR><LF>.<CR><LF>");
	/* mismatches */
	expect_reply("450 5.7.1 greylisted\r\n", 450, x4, NULL);
	expect_reply("250 5.0.0 weird ok\r\n", 250, x2, NULL);
	expect_reply("550-4.1.1 a\r\n550 4.1.1 b\r\n", 550, x5, NULL);
}

/* ---- limits and malformed replies ---- */

static void expect_error(const char *in, size_t len, const char *what)
{
	msv_smtp_reply r;
	msv_error err;
	long rc = parse_exact(in, len, &r, NULL, &err);
	if (rc >= 0) {
		char e[512];
		fail_msg("%s: \"%s\"%s returned %ld, expected an error", what,
		         esc(e, sizeof(e), in, len < 200 ? len : 200), len < 200 ? "" : "...", rc);
	}
	assert_true(-rc > 0 && -rc < MSV__RESULT_COUNT);
	assert_int_equal(err.code, (msv_result)-rc);
	assert_int_not_equal(err.cls, MSV_CLASS_NONE);
	assert_true(err.message[0] != '\0');
}

/* MSV_REPLY_LINE_MAX bounds a line's octets without its CRLF. */
static void line_too_long(void **state)
{
	(void)state;
	size_t n = MSV_REPLY_LINE_MAX + 200;
	char *buf = msv_malloc(n + 2);
	assert_non_null(buf);
	memset(buf, 'a', n);
	memcpy(buf, "250-", 4);
	/* no LF in sight and already past the limit with any CRLF: an
	 * error, not "more" */
	expect_error(buf, MSV_REPLY_LINE_MAX + 3, "unterminated line past the limit");
	expect_error(buf, n, "unterminated line past the limit");
	memcpy(buf, "250 ", 4);
	expect_error(buf, n, "unterminated final line past the limit");
	/* with its CRLF */
	memcpy(buf + n, "\r\n", 2);
	expect_error(buf, n + 2, "terminated line past the limit");
	/* up to the limit without CRLF: more is needed */
	msv_smtp_reply r;
	msv_error err;
	assert_int_equal(parse_exact(buf, 512, &r, NULL, &err), 0);
	assert_int_equal(parse_exact(buf, MSV_REPLY_LINE_MAX, &r, NULL, &err), 0);
	assert_int_equal(parse_exact(buf, MSV_REPLY_LINE_MAX + 1, &r, NULL, &err), 0);
	/* a long but legal line (RFC 5321 allows 512; we allow more) */
	memcpy(buf + 2000, "\r\n", 2);
	assert_int_equal(parse_exact(buf, 2002, &r, NULL, &err), 2002);
	assert_int_equal(r.code, 250);
	/* long text is truncated into the reply, NUL-terminated */
	assert_int_equal(strlen(r.text), MSV_TEXT_MAX - 1);
	msv_free(buf);
}

static void line_limit_boundary(void **state)
{
	(void)state;
	/* MSV_REPLY_LINE_MAX octets plus CRLF is allowed; one more is not */
	char *buf = msv_malloc(MSV_REPLY_LINE_MAX + 3);
	assert_non_null(buf);
	memset(buf, 'b', MSV_REPLY_LINE_MAX + 3);
	memcpy(buf, "250 ", 4);
	memcpy(buf + MSV_REPLY_LINE_MAX, "\r\n", 2);
	msv_smtp_reply r;
	msv_error err;
	long rc = parse_exact(buf, MSV_REPLY_LINE_MAX + 2, &r, NULL, &err);
	assert_int_equal(rc, MSV_REPLY_LINE_MAX + 2);
	memset(buf, 'b', MSV_REPLY_LINE_MAX + 3);
	memcpy(buf, "250 ", 4);
	memcpy(buf + MSV_REPLY_LINE_MAX + 1, "\r\n", 2);
	expect_error(buf, MSV_REPLY_LINE_MAX + 3, "line one past the limit");
	msv_free(buf);
}

static void too_many_lines(void **state)
{
	(void)state;
	msv_buf b;
	msv_buf_init(&b, 1 << 20);
	for (int i = 0; i < MSV_REPLY_LINES_MAX - 1; i++)
		assert_int_equal(msv_buf_addstr(&b, "250-x\r\n"), MSV_OK);
	assert_int_equal(msv_buf_addstr(&b, "250 x\r\n"), MSV_OK);
	/* exactly the limit: fine */
	msv_smtp_reply r;
	msv_error err;
	assert_int_equal(parse_exact(b.data, b.len, &r, NULL, &err), (long)b.len);
	msv_buf_reset(&b);
	for (int i = 0; i < MSV_REPLY_LINES_MAX; i++)
		assert_int_equal(msv_buf_addstr(&b, "250-x\r\n"), MSV_OK);
	size_t open_len = b.len;
	assert_int_equal(msv_buf_addstr(&b, "250 x\r\n"), MSV_OK);
	expect_error(b.data, b.len, "one line too many");
	/* still open, already too many: an error without waiting */
	assert_int_equal(msv_buf_addstr(&b, "250-x\r\n"), MSV_OK);
	memmove(b.data + open_len, "250-x\r\n", 7);
	expect_error(b.data, open_len + 7, "open reply with too many lines");
	/* a flood of empty continuation lines */
	msv_buf_reset(&b);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(msv_buf_addstr(&b, "250-\r\n"), MSV_OK);
	expect_error(b.data, b.len, "1000 empty lines");
	msv_buf_free(&b);
}

static void total_too_large(void **state)
{
	(void)state;
	msv_buf b;
	msv_buf_init(&b, 1 << 20);
	char line[4001];
	memset(line, 'c', sizeof(line));
	memcpy(line, "250-", 4);
	memcpy(line + 3998, "\r\n", 2);
	/* 17 lines of 4000 octets: 68000 > MSV_REPLY_MAX, under the line cap */
	for (int i = 0; i < 17; i++)
		assert_int_equal(msv_buf_add(&b, line, 4000), MSV_OK);
	expect_error(b.data, b.len, "open reply past MSV_REPLY_MAX");
	assert_int_equal(msv_buf_addstr(&b, "250 end\r\n"), MSV_OK);
	expect_error(b.data, b.len, "reply past MSV_REPLY_MAX");
	/* 16 lines: 64000, under it */
	msv_buf_reset(&b);
	for (int i = 0; i < 16; i++)
		assert_int_equal(msv_buf_add(&b, line, 4000), MSV_OK);
	assert_int_equal(msv_buf_addstr(&b, "250 end\r\n"), MSV_OK);
	msv_smtp_reply r;
	msv_error err;
	msv_buf lines;
	msv_buf_init(&lines, MSV_REPLY_MAX * 2);
	assert_int_equal(parse_exact(b.data, b.len, &r, &lines, &err), (long)b.len);
	assert_int_equal(r.code, 250);
	msv_buf_free(&lines);
	msv_buf_free(&b);
}

static void bad_codes(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"099 x\r\n", "199 x\r\n", "600 x\r\n", "000 x\r\n", "999 x\r\n", "25x x\r\n",
		"2x0 x\r\n", "x50 x\r\n", "-250 x\r\n", " 250 x\r\n", "25 x\r\n", "25\r\n",
		"2\r\n", "\r\n", "2500 x\r\n", "250x\r\n", "250_x\r\n", "250\tx\r\n",
		"ESMTP ready\r\n", "HTTP/1.1 400 Bad Request\r\n", "+OK POP3\r\n",
		"250-a\r\n25x b\r\n", "250-a\r\n\r\n", "\xff\xfe\x32\r\n",
		"250-a\r\n250x\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_error(bad[i], strlen(bad[i]), "bad code");
	/* a NUL in place of a digit */
	expect_error("2\0" "0 x\r\n", 7, "NUL in the code");
}

static void inconsistent_codes(void **state)
{
	(void)state;
	expect_error("250-a\r\n251 b\r\n", 14, "codes differ");
	expect_error("250-a\r\n550 b\r\n", 14, "codes differ");
	expect_error("250-a\r\n250-b\r\n251-c\r\n250 d\r\n", 28, "codes differ");
	/* the mismatch is an error as soon as the line is complete */
	expect_error("550-a\r\n450-b\r\n", 14, "codes differ, reply open");
}

static void code_without_text(void **state)
{
	(void)state;
	expect_reply("250\r\n", 250, "", "");
	expect_reply("250 \r\n", 250, "", "");
	expect_reply("250-\r\n250\r\n", 250, "", "");
	expect_reply("250-\r\n250 \r\n", 250, "", "");
	expect_reply("250-first\r\n250\r\n", 250, "", "first");
	expect_reply("221 2.0.0\r\n", 221, "2.0.0", "");
	msv_smtp_reply r;
	msv_error err;
	msv_buf lines;
	msv_buf_init(&lines, 1024);
	assert_int_equal(parse_str("250\r\n", &r, &lines, &err), 5);
	assert_int_equal(lines.len, 0);
	/* "250" alone then "-": not yet a line */
	assert_int_equal(parse_str("250", &r, &lines, &err), 0);
	assert_int_equal(parse_str("250\r", &r, &lines, &err), 0);
	msv_buf_free(&lines);
}

/* Bare LF as a line end: RFC 5321 2.3.8 wants CRLF, and docs/smtp-api.md
 * lists bare LF as malformed: rejected, whatever follows it, and for
 * every split (no prefix may return a reply either). */
static void bare_lf(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"250 ok\n", "250-a\n250 b\r\n", "250-a\r\n250 b\n", "250 ok\nxx", "\n",
		"250 ok\n\r\n", "250-a\r\n\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		expect_error(bad[i], strlen(bad[i]), "bare LF");
		/* no prefix is a complete reply */
		msv_smtp_reply r;
		msv_error err;
		for (size_t k = 0; k < strlen(bad[i]); k++)
			assert_true(parse_exact(bad[i], k, &r, NULL, &err) <= 0);
	}
	/* a bare CR inside a line is text, sanitized, never a line end */
	expect_reply("250 a\rb\r\n", 250, "", "a?b");
	expect_reply("250-a\r\r\n250 b\r\n", 250, "", NULL);
	check_prefixes("250 a\rb\r\n", 9);
}

static void text_sanitized(void **state)
{
	(void)state;
	expect_reply("250 caf\xc3\xa9 \x01\x7f ok\r\n", 250, "", "caf?? ?? ok");
	expect_reply("550 5.1.1 <\x1b[31mred>\r\n", 550, "5.1.1", "<?[31mred>");
	/* a NUL is text too, sanitized like any control */
	msv_smtp_reply r;
	msv_error err;
	assert_int_equal(parse_exact("250 a\0b\r\n", 9, &r, NULL, &err), 9);
	assert_string_equal(r.text, "a?b");
}

static void consecutive_replies(void **state)
{
	(void)state;
	const char *buf = "250 2.1.0 Ok\r\n250-2.1.5 Ok\r\n250 2.1.5 still\r\n"
	                  "550 5.1.1 no\r\n354 go ahead\r\n25";
	size_t len = strlen(buf), off = 0;
	static const int codes[] = {250, 250, 550, 354};
	static const char *const texts[] = {"Ok", "Ok still", "no", "go ahead"};
	msv_buf lines;
	msv_buf_init(&lines, 4096);
	for (int i = 0; i < 4; i++) {
		msv_smtp_reply r;
		msv_error err;
		long rc = parse_exact(buf + off, len - off, &r, &lines, &err);
		assert_true(rc > 0);
		assert_int_equal(r.code, codes[i]);
		assert_string_equal(r.text, texts[i]);
		off += (size_t)rc;
	}
	msv_smtp_reply r;
	msv_error err;
	assert_int_equal(parse_exact(buf + off, len - off, &r, &lines, &err), 0);
	assert_int_equal(len - off, 2);
	msv_buf_free(&lines);
}

static void ehlo_lines_for_parser(void **state)
{
	(void)state;
	/* the lines feed msv_smtp_parse_ehlo directly */
	const char *in = "250-mx.example.net Hello\r\n250-PIPELINING\r\n250-SIZE 1000\r\n"
	                 "250 AUTH PLAIN LOGIN\r\n";
	msv_smtp_reply r;
	msv_error err;
	msv_buf lines;
	msv_buf_init(&lines, 4096);
	assert_int_equal(parse_str(in, &r, &lines, &err), (long)strlen(in));
	assert_string_equal(lines.data,
	                    "mx.example.net Hello\r\nPIPELINING\r\nSIZE 1000\r\nAUTH PLAIN LOGIN");
	msv_smtp_caps caps;
	memset(&caps, 0, sizeof(caps));
	assert_int_equal(msv_smtp_parse_ehlo(&caps, lines.data, lines.len), MSV_OK);
	assert_int_equal(caps.flags, MSV_CAP_PIPELINING | MSV_CAP_SIZE | MSV_CAP_AUTH);
	assert_int_equal(caps.size_max, 1000);
	msv_buf_free(&lines);
}

static void empty_and_null(void **state)
{
	(void)state;
	msv_smtp_reply r;
	msv_error err;
	assert_int_equal(parse_exact("", 0, &r, NULL, &err), 0);
	/* lines given as a small buffer: a reply larger than it is an error,
	 * never an overflow */
	msv_buf small;
	msv_buf_init(&small, 8);
	msv_error_clear(&err);
	long rc = msv_smtp_reply_parse("250-aaaaaaaaaaaa\r\n250 b\r\n", 25, &r, &small, &err);
	assert_true(rc == 25 || rc < 0);
	msv_buf_free(&small);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(corpus_multiline),
		cmocka_unit_test(enhanced_registry),
		cmocka_unit_test(enhanced_edge_cases),
		cmocka_unit_test(line_too_long),
		cmocka_unit_test(line_limit_boundary),
		cmocka_unit_test(too_many_lines),
		cmocka_unit_test(total_too_large),
		cmocka_unit_test(bad_codes),
		cmocka_unit_test(inconsistent_codes),
		cmocka_unit_test(code_without_text),
		cmocka_unit_test(bare_lf),
		cmocka_unit_test(text_sanitized),
		cmocka_unit_test(consecutive_replies),
		cmocka_unit_test(ehlo_lines_for_parser),
		cmocka_unit_test(empty_and_null),
	};
	return cmocka_run_group_tests_name("smtp reply", tests, NULL, NULL);
}
