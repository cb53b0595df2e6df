/* The body transformer through the engine (DATA and BDAT) and
 * msv_smtp_body_scan.  Every SMTP smuggling case of the test corpus, and
 * every short string over {'.', CR, LF, 'a'}, fed whole and one byte
 * at a time: the data on the wire holds exactly one CRLF.CRLF, at its
 * end, every line ends in CRLF, and un-stuffing gives back the input
 * with bare CR and bare LF turned into CRLF. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "missive/smtp.h"
#include "script.h"

#define EHLO_PIPE "250-mx.example.net\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
#define EHLO_CHUNKING "250-mx.example.net\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 CHUNKING\r\n"

static const char *const rcpt1[] = {"bob@example.org"};

/* ---- reference model ---- */

/* Bare CR and bare LF become CRLF; a last line without its end gets one. */
static void normalize(msv_buf *out, const char *p, size_t n)
{
	msv_buf_reset(out);
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\r') {
			assert_int_equal(msv_buf_add(out, "\r\n", 2), MSV_OK);
			if (i + 1 < n && p[i + 1] == '\n')
				i++;
		} else if (p[i] == '\n') {
			assert_int_equal(msv_buf_add(out, "\r\n", 2), MSV_OK);
		} else {
			assert_int_equal(msv_buf_addc(out, p[i]), MSV_OK);
		}
	}
	if (out->len && (out->len < 2 || memcmp(out->data + out->len - 2, "\r\n", 2)))
		assert_int_equal(msv_buf_add(out, "\r\n", 2), MSV_OK);
}

static const char *esc_input(const char *p, size_t n)
{
	static char buf[2048];
	return esc(buf, sizeof(buf), p, n);
}

/* Checks DATA output: lines, the single terminator, un-stuffing. */
static void check_data_output(const char *in, size_t inlen, const char *out, size_t n)
{
	char e1[4096];
	/* the data starts at a line start: the DATA reply ended the line */
	msv_buf x;
	msv_buf_init(&x, 1 << 24);
	assert_int_equal(msv_buf_add(&x, "\r\n", 2), MSV_OK);
	assert_int_equal(msv_buf_add(&x, out, n), MSV_OK);
	const char *first = mem_find(x.data, x.len, "\r\n.\r\n", 5);
	if (!first || (size_t)(first - x.data) != x.len - 5)
		fail_msg("input \"%s\": CRLF.CRLF not only at the end of \"%s\"", esc_input(in, inlen),
		         esc(e1, sizeof(e1), out, n));
	/* every CR is followed by LF and every LF preceded by CR */
	for (size_t i = 0; i < n; i++) {
		if ((out[i] == '\r' && (i + 1 >= n || out[i + 1] != '\n')) ||
		    (out[i] == '\n' && (i == 0 || out[i - 1] != '\r')))
			fail_msg("input \"%s\": bare CR or LF at %zu of \"%s\"", esc_input(in, inlen), i,
			         esc(e1, sizeof(e1), out, n));
	}
	assert_true(n >= 3);
	/* un-stuff and drop the terminator */
	msv_buf un, want;
	msv_buf_init(&un, 1 << 24);
	msv_buf_init(&want, 1 << 24);
	size_t off = 0;
	while (off < n - 3) {
		const char *eol = mem_find(out + off, n - off, "\r\n", 2);
		assert_non_null(eol);
		size_t ll = (size_t)(eol - (out + off)) + 2;
		const char *l = out + off;
		if (l[0] == '.') {
			/* a line starting with "." is always stuffed on the wire */
			if (ll < 4 || l[1] != '.')
				fail_msg("input \"%s\": unstuffed dot line at %zu of \"%s\"",
				         esc_input(in, inlen), off, esc(e1, sizeof(e1), out, n));
			l++;
			ll--;
		}
		assert_int_equal(msv_buf_add(&un, l, ll), MSV_OK);
		off = (size_t)(eol - out) + 2;
	}
	assert_int_equal(off, n - 3);
	assert_memory_equal(out + n - 3, ".\r\n", 3);
	normalize(&want, in, inlen);
	if (un.len != want.len || (un.len && memcmp(un.data, want.data, un.len))) {
		char e2[4096];
		fail_msg("input \"%s\": un-stuffed \"%s\", expected \"%s\"", esc_input(in, inlen),
		         esc(e1, sizeof(e1), un.data ? un.data : "", un.len),
		         esc(e2, sizeof(e2), want.data ? want.data : "", want.len));
	}
	msv_buf_free(&un);
	msv_buf_free(&want);
	msv_buf_free(&x);
}

/* ---- sessions ---- */

static void session_ready(drv *d, const char *ehlo)
{
	msv_smtp_options o = plain_opts();
	drv_ready(d, &o, ehlo);
}

/* One DATA transaction on a READY pipelining session; out gets the
 * bytes written after the 354, through the terminator. */
static void data_txn(drv *d, const char *in, size_t n, size_t step, msv_buf *out)
{
	msv_envelope env;
	memset(&env, 0, sizeof(env));
	env.from = "alice@example.com";
	env.rcpt = rcpt1;
	env.nrcpt = 1;
	assert_int_equal(msv_smtp_begin(d->s, &env), MSV_OK);
	SC(d, NULL, "MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n",
	   MSV_SMTP_WANT_READ);
	SC(d, "250 ok\r\n250 ok\r\n354 go ahead\r\n", "", MSV_SMTP_WANT_BODY);
	msv_smtp_event ev = drv_body(d, in, n, step);
	expect_ev(d, ev, MSV_SMTP_WANT_READ);
	size_t len;
	const char *p = drv_new(d, &len);
	msv_buf_reset(out);
	assert_int_equal(msv_buf_add(out, p, len), MSV_OK);
	SC(d, "250 2.0.0 queued\r\n", "", MSV_SMTP_TXN_DONE);
	SC(d, NULL, "", MSV_SMTP_READY);
}

/* Sends in whole and byte by byte (and in 3-byte pieces); all three
 * outputs must be equal and pass check_data_output. */
static void data_case(drv *d, const char *in, size_t n)
{
	msv_buf whole, bytes, threes;
	msv_buf_init(&whole, 1 << 24);
	msv_buf_init(&bytes, 1 << 24);
	msv_buf_init(&threes, 1 << 24);
	data_txn(d, in, n, 0, &whole);
	check_data_output(in, n, whole.data, whole.len);
	data_txn(d, in, n, 1, &bytes);
	data_txn(d, in, n, 3, &threes);
	if (bytes.len != whole.len || memcmp(bytes.data, whole.data, whole.len)) {
		char a[4096], b[4096];
		fail_msg("input \"%s\": byte by byte \"%s\", whole \"%s\"", esc_input(in, n),
		         esc(a, sizeof(a), bytes.data, bytes.len),
		         esc(b, sizeof(b), whole.data, whole.len));
	}
	assert_int_equal(threes.len, whole.len);
	assert_memory_equal(threes.data, whole.data, whole.len);
	msv_buf_free(&whole);
	msv_buf_free(&bytes);
	msv_buf_free(&threes);
}

/* ---- the smuggling corpus ---- */

static size_t unescape(char *dst, size_t dstsz, const char *s, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < n && o < dstsz; i++) {
		if (s[i] != '\\' || i + 1 >= n) {
			dst[o++] = s[i];
			continue;
		}
		char c = s[++i];
		switch (c) {
		case 'r': dst[o++] = '\r'; break;
		case 'n': dst[o++] = '\n'; break;
		case 't': dst[o++] = '\t'; break;
		case '0': dst[o++] = '\0'; break;
		case '\\': dst[o++] = '\\'; break;
		case '"': dst[o++] = '"'; break;
		case 'x': {
			int v = 0, k = 0;
			while (k < 2 && i + 1 < n) {
				char h = s[i + 1];
				int d = (h >= '0' && h <= '9') ? h - '0'
				      : (h >= 'a' && h <= 'f') ? h - 'a' + 10
				      : (h >= 'A' && h <= 'F') ? h - 'A' + 10
				                               : -1;
				if (d < 0)
					break;
				v = v * 16 + d;
				i++;
				k++;
			}
			dst[o++] = (char)v;
			break;
		}
		default: dst[o++] = '\\'; if (o < dstsz) dst[o++] = c; break;
		}
	}
	return o;
}

typedef struct scase {
	char id[16];
	char bytes[256];
	size_t n;
} scase;

static size_t load_smuggling(scase *cases, size_t max)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/smtp/smuggling-cases.tsv", MSV_CORPUS_DIR);
	FILE *f = fopen(path, "rb");
	if (!f)
		fail_msg("cannot open %s", path);
	char line[4096];
	size_t count = 0;
	while (fgets(line, sizeof(line), f) && count < max) {
		if (line[0] == '#' || line[0] == '\n')
			continue;
		char *tab1 = strchr(line, '\t');
		if (!tab1)
			continue;
		char *tab2 = strchr(tab1 + 1, '\t');
		if (!tab2)
			continue;
		scase *c = &cases[count];
		size_t idn = (size_t)(tab1 - line);
		assert_true(idn < sizeof(c->id));
		memcpy(c->id, line, idn);
		c->id[idn] = '\0';
		c->n = unescape(c->bytes, sizeof(c->bytes), tab1 + 1, (size_t)(tab2 - tab1 - 1));
		count++;
	}
	fclose(f);
	return count;
}

/* A NUL octet (S09) is refused, never sent: the session fails with
 * MSV_E_BAD_MESSAGE before the data is ended, so the server discards
 * it.  Leaves *d on a fresh READY session. */
static void nul_refused(drv *d, const char *ehlo, const char *in, size_t n)
{
	msv_envelope env;
	memset(&env, 0, sizeof(env));
	env.from = "alice@example.com";
	env.rcpt = rcpt1;
	env.nrcpt = 1;
	assert_int_equal(msv_smtp_begin(d->s, &env), MSV_OK);
	expect_ev(d, drv_run(d), MSV_SMTP_WANT_READ);
	msv_smtp_event ev = drv_feeds(d, strstr(ehlo, "CHUNKING") ? "250 ok\r\n250 ok\r\n"
	                                           : "250 ok\r\n250 ok\r\n354 go ahead\r\n");
	expect_ev(d, ev, MSV_SMTP_WANT_BODY);
	assert_int_equal(msv_smtp_body(d->s, in, n), MSV_E_BAD_MESSAGE);
	assert_non_null(strstr(msv_smtp_error(d->s)->message, "NUL"));
	assert_int_equal(msv_smtp_step(d->s), MSV_SMTP_FAILED);
	drv_close(d);
	session_ready(d, ehlo);
}

static void smuggling_corpus_data(void **state)
{
	(void)state;
	scase cases[64];
	size_t n = load_smuggling(cases, 64);
	assert_int_equal(n, 13);
	drv d;
	session_ready(&d, EHLO_PIPE);
	for (size_t i = 0; i < n; i++) {
		const scase *c = &cases[i];
		if (memchr(c->bytes, '\0', c->n)) {
			nul_refused(&d, EHLO_PIPE, c->bytes, c->n);
			continue;
		}
		/* S11-S13 describe situations rather than bytes: their text is
		 * sent as a body too (harmless), and the situations are covered
		 * below and in smuggling_special */
		char body[1024];
		size_t bn;
		/* the bytes alone */
		data_case(&d, c->bytes, c->n);
		/* inside a message */
		bn = (size_t)snprintf(body, sizeof(body), "Subject: %s\r\n\r\nbefore", c->id);
		memcpy(body + bn, c->bytes, c->n);
		bn += c->n;
		memcpy(body + bn, "after\r\n", 7);
		bn += 7;
		data_case(&d, body, bn);
		/* with a hidden second transaction, as in the attack */
		bn = (size_t)snprintf(body, sizeof(body), "Subject: %s\r\n\r\nhello", c->id);
		memcpy(body + bn, c->bytes, c->n);
		bn += c->n;
		const char *evil = "MAIL FROM:<admin@example.com>\r\nRCPT TO:<victim@example.org>\r\n"
		                   "DATA\r\nFrom: admin@example.com\r\n\r\nsmuggled\r\n.\r\n";
		memcpy(body + bn, evil, strlen(evil));
		bn += strlen(evil);
		data_case(&d, body, bn);
		/* at the very end, without anything after it */
		bn = (size_t)snprintf(body, sizeof(body), "x");
		memcpy(body + bn, c->bytes, c->n);
		bn += c->n;
		data_case(&d, body, bn);
	}
	/* the message itself is never traced (docs/smtp-api.md "Trace") */
	assert_true(drv_trace_has(&d, "C: MAIL FROM:<alice@example.com>"));
	assert_false(drv_trace_has(&d, "admin@example.com"));
	assert_false(drv_trace_has(&d, "smuggled"));
	drv_close(&d);
}

static void smuggling_special(void **state)
{
	(void)state;
	drv d;
	session_ready(&d, EHLO_PIPE);
	msv_buf out;
	msv_buf_init(&out, 1 << 20);
	/* S11: the first line of the body starts with "." */
	data_txn(&d, ".\r\n", 3, 0, &out);
	assert_int_equal(out.len, 7);
	assert_memory_equal(out.data, "..\r\n.\r\n", 7);
	data_txn(&d, ".", 1, 0, &out);
	assert_int_equal(out.len, 7);
	assert_memory_equal(out.data, "..\r\n.\r\n", 7);
	data_txn(&d, ".hidden\r\nok\r\n", 13, 1, &out);
	assert_int_equal(out.len, 17);
	assert_memory_equal(out.data, "..hidden\r\nok\r\n.\r\n", 18);
	/* S01 exactly as bytes */
	data_txn(&d, "a\r\n.\r\nb\r\n", 9, 0, &out);
	assert_int_equal(out.len, 13);
	assert_memory_equal(out.data, "a\r\n..\r\nb\r\n.\r\n", 13);
	/* S02: bare LF end-of-data */
	data_txn(&d, "a\n.\nb", 5, 0, &out);
	assert_int_equal(out.len, 13);
	assert_memory_equal(out.data, "a\r\n..\r\nb\r\n.\r\n", 13);
	/* an empty body is just the terminator */
	data_txn(&d, "", 0, 0, &out);
	assert_int_equal(out.len, 3);
	assert_memory_equal(out.data, ".\r\n", 3);
	/* a body ending in CRLF gets no extra empty line */
	data_txn(&d, "a\r\n", 3, 0, &out);
	assert_int_equal(out.len, 6);
	assert_memory_equal(out.data, "a\r\n.\r\n", 6);
	/* a body ending in a bare CR: one CRLF, not two */
	data_txn(&d, "a\r", 2, 1, &out);
	assert_int_equal(out.len, 6);
	assert_memory_equal(out.data, "a\r\n.\r\n", 6);
	/* a split CRLF across msv_smtp_body calls stays one line end */
	data_txn(&d, "a\r\nb", 4, 2, &out);
	assert_int_equal(out.len, 9);
	assert_memory_equal(out.data, "a\r\nb\r\n.\r\n", 9);
	/* LF CR is two line ends */
	data_txn(&d, "a\n\rb", 4, 0, &out);
	assert_int_equal(out.len, 11);
	assert_memory_equal(out.data, "a\r\n\r\nb\r\n.\r\n", 11);
	/* dots not at a line start are untouched */
	data_txn(&d, "a.b..c\r\n", 8, 1, &out);
	assert_int_equal(out.len, 11);
	assert_memory_equal(out.data, "a.b..c\r\n.\r\n", 11);
	/* an already-stuffed line is stuffed again (S10 is data) */
	data_txn(&d, "..\r\n", 4, 0, &out);
	assert_int_equal(out.len, 8);
	assert_memory_equal(out.data, "...\r\n.\r\n", 8);
	msv_buf_free(&out);
	drv_close(&d);
}

/* Every string of length <= 6 over {'.', CR, LF, 'a'}. */
static void exhaustive_short(void **state)
{
	(void)state;
	static const char alpha[4] = {'.', '\r', '\n', 'a'};
	drv d;
	session_ready(&d, EHLO_PIPE);
	size_t total = 0;
	for (size_t len = 0; len <= 6; len++) {
		size_t combos = (size_t)1 << (2 * len);
		for (size_t k = 0; k < combos; k++) {
			char in[8];
			for (size_t i = 0; i < len; i++)
				in[i] = alpha[(k >> (2 * i)) & 3];
			data_case(&d, in, len);
			total++;
		}
	}
	print_message("%zu inputs, each whole, per byte and per 3 bytes\n", total);
	drv_close(&d);
}

/* ---- BDAT: no stuffing, exact octets ---- */

static void bdat_case(drv *d, const char *in, size_t n, size_t step, msv_buf *data)
{
	msv_envelope env;
	memset(&env, 0, sizeof(env));
	env.from = "alice@example.com";
	env.rcpt = rcpt1;
	env.nrcpt = 1;
	assert_int_equal(msv_smtp_begin(d->s, &env), MSV_OK);
	SC(d, NULL, "MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.org>\r\n",
	   MSV_SMTP_WANT_READ);
	SC(d, "250 ok\r\n250 ok\r\n", "", MSV_SMTP_WANT_BODY);
	msv_smtp_event ev = drv_body_at(__FILE__, __LINE__, d, in, n, step, "250 2.0.0 chunk ok\r\n");
	expect_ev(d, ev, MSV_SMTP_WANT_READ);
	/* parse the chunks written since the RCPTs */
	size_t len;
	const char *p = drv_new(d, &len);
	msv_buf_reset(data);
	size_t off = 0;
	int last = 0, chunks = 0;
	while (off < len) {
		assert_false(last);
		const char *eol = mem_find(p + off, len - off, "\r\n", 2);
		assert_non_null(eol);
		assert_int_equal(memcmp(p + off, "BDAT ", 5), 0);
		const char *q = p + off + 5;
		size_t sz = 0;
		while (*q >= '0' && *q <= '9')
			sz = sz * 10 + (size_t)(*q++ - '0');
		if (q != eol) {
			assert_int_equal(eol - q, 5);
			assert_int_equal(memcmp(q, " LAST", 5), 0);
			last = 1;
		}
		assert_true((size_t)(len - (size_t)(eol + 2 - p)) >= sz);
		assert_int_equal(msv_buf_add(data, eol + 2, sz), MSV_OK);
		off = (size_t)(eol + 2 - p) + sz;
		chunks++;
	}
	assert_true(last);
	/* the engine may have waited for chunk replies along the way;
	 * now the last one */
	ev = drv_feeds(d, "250 2.0.0 queued\r\n");
	while (ev == MSV_SMTP_WANT_READ)
		ev = drv_feeds(d, "250 2.0.0 queued\r\n");
	expect_ev(d, ev, MSV_SMTP_TXN_DONE);
	SC(d, NULL, "", MSV_SMTP_READY);
}

static void bdat_not_stuffed(void **state)
{
	(void)state;
	scase cases[64];
	size_t n = load_smuggling(cases, 64);
	drv d;
	session_ready(&d, EHLO_CHUNKING);
	msv_buf data, want;
	msv_buf_init(&data, 1 << 20);
	msv_buf_init(&want, 1 << 20);
	for (size_t i = 0; i < n; i++) {
		if (memchr(cases[i].bytes, '\0', cases[i].n)) {
			nul_refused(&d, EHLO_CHUNKING, cases[i].bytes, cases[i].n);
			continue;
		}
		for (size_t step = 0; step < 2; step++) {
			bdat_case(&d, cases[i].bytes, cases[i].n, step, &data);
			normalize(&want, cases[i].bytes, cases[i].n);
			if (data.len != want.len || memcmp(data.data, want.data, want.len)) {
				char a[2048], b[2048];
				fail_msg("%s: BDAT data \"%s\", expected \"%s\"", cases[i].id,
				         esc(a, sizeof(a), data.data, data.len),
				         esc(b, sizeof(b), want.data, want.len));
			}
		}
	}
	/* S12: CRLF.CRLF inside a chunk goes out as is */
	bdat_case(&d, "a\r\n.\r\nb\r\n", 9, 0, &data);
	assert_int_equal(data.len, 9);
	assert_memory_equal(data.data, "a\r\n.\r\nb\r\n", 9);
	bdat_case(&d, ".leading\n", 9, 1, &data);
	assert_int_equal(data.len, 10);
	assert_memory_equal(data.data, ".leading\r\n", 10);
	msv_buf_free(&data);
	msv_buf_free(&want);
	drv_close(&d);
}

/* A line over body_line_max cannot be sent: the body call fails, the
 * session fails, and the data is never ended (the server must discard
 * the partial message when the connection drops, RFC 5321 4.1.1.4). */
static void long_line_never_terminated(void **state)
{
	(void)state;
	static const size_t limits[] = {0, 20};
	for (size_t k = 0; k < 2; k++) {
		for (size_t step = 0; step < 2; step++) {
			drv d;
			msv_smtp_options o = plain_opts();
			o.body_line_max = limits[k];
			drv_ready(&d, &o, EHLO_PIPE);
			size_t max = limits[k] ? limits[k] : 998;
			msv_envelope env;
			memset(&env, 0, sizeof(env));
			env.from = "alice@example.com";
			env.rcpt = rcpt1;
			env.nrcpt = 1;
			assert_int_equal(msv_smtp_begin(d.s, &env), MSV_OK);
			drv_run(&d);
			expect_ev(&d, drv_feeds(&d, "250 ok\r\n250 ok\r\n354 go\r\n"), MSV_SMTP_WANT_BODY);
			size_t skip;
			drv_new(&d, &skip);
			char body[2100];
			size_t n = (size_t)snprintf(body, sizeof(body), "ok line\r\n.\r\n");
			/* a line of exactly max: fine */
			memset(body + n, 'x', max);
			n += max;
			memcpy(body + n, "\r\n", 2);
			n += 2;
			/* then one of max + 1 */
			memset(body + n, 'y', max + 1);
			n += max + 1;
			memcpy(body + n, "\r\n.\r\n", 5);
			n += 5;
			msv_result r = MSV_OK;
			msv_smtp_event ev = MSV_SMTP_WANT_BODY;
			for (size_t off = 0; off < n && r == MSV_OK && ev == MSV_SMTP_WANT_BODY;) {
				size_t c = step ? 1 : n - off;
				r = msv_smtp_body(d.s, body + off, c);
				off += c;
				ev = drv_run(&d);
			}
			assert_int_equal(r, MSV_E_BAD_MESSAGE);
			expect_ev(&d, ev, MSV_SMTP_FAILED);
			assert_int_equal(msv_smtp_error(d.s)->code, MSV_E_BAD_MESSAGE);
			assert_int_not_equal(msv_smtp_body_end(d.s), MSV_OK);
			drv_run(&d);
			size_t len;
			const char *p = drv_new(&d, &len);
			/* whatever went out, it never ends the data */
			char x[4400];
			assert_true(len + 2 <= sizeof(x));
			memcpy(x, "\r\n", 2);
			memcpy(x + 2, p, len);
			if (mem_find(x, len + 2, "\r\n.\r\n", 5)) {
				char e[4096];
				fail_msg("limit %zu: the data was ended: \"%s\"", max, esc(e, sizeof(e), p, len));
			}
			drv_close(&d);
		}
	}
}

/* ---- msv_smtp_body_scan ---- */

static msv_body_info scan(const char *p, size_t n, size_t line_max)
{
	msv_body_info info;
	memset(&info, 0x5a, sizeof(info));
	msv_smtp_body_scan(&info, p, n, line_max);
	return info;
}

static void body_scan_basic(void **state)
{
	(void)state;
	msv_body_info i = scan("", 0, 998);
	assert_int_equal(i.size, 0);
	assert_int_equal(i.has_8bit, 0);
	assert_int_equal(i.longest_line, 0);
	assert_int_equal(i.long_line_no, 0);
	assert_int_equal(i.nul_line_no, 0);

	i = scan("abc\r\ndefgh\r\n", 12, 998);
	assert_int_equal(i.size, 12);
	assert_int_equal(i.longest_line, 5);
	assert_int_equal(i.has_8bit, 0);
	assert_int_equal(i.long_line_no, 0);
	assert_int_equal(i.nul_line_no, 0);

	/* bare LF and bare CR count as CRLF */
	i = scan("abc\ndefgh\n", 10, 998);
	assert_int_equal(i.size, 12);
	assert_int_equal(i.longest_line, 5);
	i = scan("abc\rdefgh\r", 10, 998);
	assert_int_equal(i.size, 12);
	assert_int_equal(i.longest_line, 5);
	i = scan("a\n\rb\r\n", 6, 998); /* LF CR: two line ends */
	assert_int_equal(i.size, 8);
	/* the unterminated last line is sent with a CRLF: counted */
	i = scan("abc\r\ndefgh", 10, 998);
	assert_int_equal(i.size, 12);
	assert_int_equal(i.longest_line, 5);
	i = scan("x", 1, 998);
	assert_int_equal(i.size, 3);
	assert_int_equal(i.longest_line, 1);
	/* size is what DATA/BDAT will carry before stuffing */
	i = scan(".\r\n..\r\n", 7, 998);
	assert_int_equal(i.size, 7);
}

static void body_scan_8bit(void **state)
{
	(void)state;
	assert_int_equal(scan("plain ascii\r\n\x7f\x01\r\n", 17, 998).has_8bit, 0);
	assert_int_equal(scan("caf\xc3\xa9\r\n", 7, 998).has_8bit, 1);
	assert_int_equal(scan("\x80", 1, 998).has_8bit, 1);
	assert_int_equal(scan("a\r\nb\r\n\xff", 7, 998).has_8bit, 1);
}

static void body_scan_long_lines(void **state)
{
	(void)state;
	char buf[4000];
	/* exactly 998 octets: fine */
	memset(buf, 'a', 998);
	memcpy(buf + 998, "\r\n", 2);
	msv_body_info i = scan(buf, 1000, 998);
	assert_int_equal(i.longest_line, 998);
	assert_int_equal(i.long_line_no, 0);
	assert_int_equal(i.size, 1000);
	/* 999: flagged */
	memset(buf, 'a', 999);
	memcpy(buf + 999, "\r\n", 2);
	i = scan(buf, 1001, 998);
	assert_int_equal(i.longest_line, 999);
	assert_int_equal(i.long_line_no, 1);
	/* unterminated 999 at the end */
	i = scan(buf, 999, 998);
	assert_int_equal(i.long_line_no, 1);
	assert_int_equal(i.size, 1001);
	/* the first long line is reported, from 1 */
	size_t o = 0;
	o += (size_t)snprintf(buf + o, sizeof(buf) - o, "short\r\nline two\n");
	memset(buf + o, 'b', 998);
	o += 998;
	memcpy(buf + o, "\r\n", 2);
	o += 2;
	memset(buf + o, 'c', 1200);
	o += 1200;
	memcpy(buf + o, "\r", 1); /* bare CR ends it */
	o += 1;
	memset(buf + o, 'd', 1500);
	o += 1500;
	memcpy(buf + o, "\n", 1);
	o += 1;
	i = scan(buf, o, 998);
	assert_int_equal(i.long_line_no, 4);
	assert_int_equal(i.longest_line, 1500);
	/* CRLF is not part of the line length */
	memset(buf, 'e', 998);
	memcpy(buf + 998, "\r\n", 2);
	i = scan(buf, 1000, 998);
	assert_int_equal(i.long_line_no, 0);
	/* a CR split from its LF is not a 999th octet */
	memset(buf, 'f', 998);
	memcpy(buf + 998, "\r\n", 2);
	memcpy(buf + 1000, "g\r\n", 3);
	i = scan(buf, 1003, 998);
	assert_int_equal(i.long_line_no, 0);
	assert_int_equal(i.longest_line, 998);
	/* another limit */
	i = scan("12345\r\n123456\r\n", 15, 5);
	assert_int_equal(i.long_line_no, 2);
	assert_int_equal(i.longest_line, 6);
}

static void body_scan_nul(void **state)
{
	(void)state;
	msv_body_info i = scan("a\r\nb\0c\r\nd\0\r\n", 12, 998);
	assert_int_equal(i.nul_line_no, 2);
	i = scan("\0", 1, 998);
	assert_int_equal(i.nul_line_no, 1);
	i = scan("a\nb\nc\nd\0", 8, 998);
	assert_int_equal(i.nul_line_no, 4);
	i = scan("abc", 3, 998);
	assert_int_equal(i.nul_line_no, 0);
	/* S09 of the smuggling corpus */
	i = scan("\r\n.\0\r\n", 6, 998);
	assert_int_equal(i.nul_line_no, 2);
	assert_int_equal(i.size, 6);
}

static void body_scan_matches_engine(void **state)
{
	(void)state;
	/* scan's size equals the octets the engine sends before stuffing,
	 * for every smuggling case */
	scase cases[64];
	size_t n = load_smuggling(cases, 64);
	msv_buf want;
	msv_buf_init(&want, 1 << 20);
	for (size_t k = 0; k < n; k++) {
		normalize(&want, cases[k].bytes, cases[k].n);
		msv_body_info i = scan(cases[k].bytes, cases[k].n, 998);
		if (i.size != want.len)
			fail_msg("%s: scan size %llu, normalized %zu", cases[k].id,
			         (unsigned long long)i.size, want.len);
	}
	msv_buf_free(&want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(smuggling_corpus_data),
		cmocka_unit_test(smuggling_special),
		cmocka_unit_test(exhaustive_short),
		cmocka_unit_test(bdat_not_stuffed),
		cmocka_unit_test(long_line_never_terminated),
		cmocka_unit_test(body_scan_basic),
		cmocka_unit_test(body_scan_8bit),
		cmocka_unit_test(body_scan_long_lines),
		cmocka_unit_test(body_scan_nul),
		cmocka_unit_test(body_scan_matches_engine),
	};
	return cmocka_run_group_tests_name("smtp body", tests, NULL, NULL);
}
