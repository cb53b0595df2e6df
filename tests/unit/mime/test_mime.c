/* Unit tests for src/mime: header encoding round trips, the builder's
 * checks and encoding choices, streaming, and the parser (limits, the
 * corpus).  Written against include/missive/mime.h. */
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

#include "missive/mime.h"

#define DATE "Thu, 01 Jan 2026 00:00:00 +0000"

static msv_mime_header hdrs[8192];
static msv_mime_node nodes[1024];

static msv_mime_tree tree(void)
{
	msv_mime_tree t = {hdrs, 8192, 0, nodes, 1024, 0, 0};
	return t;
}

/* ---- encoded words ---- */

static void check_roundtrip(const char *text, size_t name_len, unsigned transport)
{
	msv_buf enc, dec;
	msv_error err;
	msv_buf_init(&enc, 1 << 20);
	msv_buf_init(&dec, 1 << 20);
	assert_int_equal(msv_mime_encode_unstructured(&enc, text, strlen(text), name_len, transport,
	                                              &err),
	                 MSV_OK);
	/* Lines: at most 78 columns (the first after "Name: "), words <= 75. */
	size_t col = name_len + 2;
	for (size_t i = 0; i < enc.len; i++) {
		if (enc.data[i] == '\r') {
			assert_true(i + 2 < enc.len && enc.data[i + 1] == '\n' &&
			            (enc.data[i + 2] == ' ' || enc.data[i + 2] == '\t'));
			col = 0;
			i++;
			continue;
		}
		col++;
		if (!(transport & MSV_MIME_SMTPUTF8)) {
			assert_true((unsigned char)enc.data[i] < 0x80);
			assert_true(col <= 78);
		}
	}
	assert_int_equal(msv_mime_decode_header(&dec, enc.data ? enc.data : "", enc.len, &err),
	                 MSV_OK);
	assert_int_equal(dec.len, strlen(text));
	assert_memory_equal(dec.data ? dec.data : "", text, dec.len);
	msv_buf_free(&enc);
	msv_buf_free(&dec);
}

static void ew_roundtrips(void **state)
{
	(void)state;
	static const char *const texts[] = {
		"", "plain ascii subject", "Grüße aus Köln", "日本語の件名です。これは長いテストの件名です。日本語の件名です。",
		"emoji 👋🏽 🎉 👨‍👩‍👧‍👦 family", "שלום עולם مرحبا", "e\xcc\x81 combining a\xcc\x8a",
		"  leading and trailing  ", "tabs\tinside\tand  double  spaces",
		"looks =?UTF-8?Q?encoded?= but is not", "a \"quoted\" word é",
		"control \x01 char", "x", "é",
		"word-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
		"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
		"a          b (ten spaces)", "trailing tab\t",
		("éééééééééééééééééééééééééééééééééééééééééé"
		 "éééééééééééééééééééééééééééééééééééééééééééééééééééééééé"),
	};
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		check_roundtrip(texts[i], 7, 0);
		check_roundtrip(texts[i], 40, 0);
		check_roundtrip(texts[i], 7, MSV_MIME_SMTPUTF8);
	}
}

static void ew_refuses(void **state)
{
	(void)state;
	msv_buf b;
	msv_error err;
	msv_buf_init(&b, 1024);
	assert_int_equal(msv_mime_encode_unstructured(&b, "a\r\nb", 4, 7, 0, &err), MSV_E_INVALID);
	assert_int_equal(msv_mime_encode_unstructured(&b, "a\xff", 2, 7, 0, &err), MSV_E_INVALID);
	assert_int_equal(msv_mime_encode_unstructured(&b, "\xed\xa0\x80", 3, 7, 0, &err),
	                 MSV_E_INVALID); /* a surrogate */
	assert_int_equal(msv_mime_encode_unstructured(&b, "\xc0\xaf", 2, 7, 0, &err),
	                 MSV_E_INVALID); /* overlong */
	msv_buf_free(&b);
}

static void decode_words(void **state)
{
	(void)state;
	static const struct {
		const char *in, *out;
	} cases[] = {
		{"=?UTF-8?B?w6lsw6hndmU=?=", "élègve"},
		{"=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=", "ab"},
		{"=?ISO-8859-1?Q?a?= b", "a b"},
		{"(=?ISO-8859-1?Q?a?=)", "(a)"},
		{"foo=?UTF-8?Q?a?=bar", "foo=?UTF-8?Q?a?=bar"},
		{"=?X-UNKNOWN?Q?abc?=", "=?X-UNKNOWN?Q?abc?="},
		{"=?iso-8859-8?b?7eXs+SDv4SDp7Oj08A==?=", "םולש ןב ילטפנ"},
		{"=?windows-1252?Q?=80?=", "€"},
		{"raw latin1 \xe9", "raw latin1 é"},
		{"=?UTF-8?Q?broken", "=?UTF-8?Q?broken"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		msv_buf b;
		msv_error err;
		msv_buf_init(&b, 4096);
		assert_int_equal(msv_mime_decode_header(&b, cases[i].in, strlen(cases[i].in), &err),
		                 MSV_OK);
		assert_string_equal(b.data ? b.data : "", cases[i].out);
		msv_buf_free(&b);
	}
}

static void params(void **state)
{
	(void)state;
	static const struct {
		const char *value, *name, *out;
	} cases[] = {
		{"attachment; filename=\"a \\\"b\\\".txt\"", "filename", "a \"b\".txt"},
		{"attachment; filename*=UTF-8''%C3%A9t%C3%A9.pdf", "filename", "été.pdf"},
		{"attachment; filename*0*=UTF-8''%C3%A9; filename*1=\"t e\"", "filename", "ét e"},
		{"attachment; filename*=iso-8859-1'en'%E9", "filename", "é"},
		{"text/plain; charset=\"utf-8\" (comment); format=flowed", "format", "flowed"},
		{"application/pdf; name=\"=?UTF-8?B?w6k=?=\"", "name", "é"},
		{"text/plain; CHARSET=us-ascii", "charset", "us-ascii"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		msv_buf b;
		msv_error err;
		int found;
		msv_buf_init(&b, 4096);
		assert_int_equal(msv_mime_param(&b, &found, cases[i].value, strlen(cases[i].value),
		                                cases[i].name, &err),
		                 MSV_OK);
		assert_true(found);
		assert_string_equal(b.data ? b.data : "", cases[i].out);
		msv_buf_free(&b);
	}
	msv_buf b;
	msv_error err;
	int found = 1;
	msv_buf_init(&b, 64);
	assert_int_equal(msv_mime_param(&b, &found, "text/plain", 10, "charset", &err), MSV_OK);
	assert_false(found);
	msv_buf_free(&b);
}

/* ---- the builder ---- */

static msv_mime_msg *base_msg(void)
{
	msv_mime_msg *m;
	assert_int_equal(msv_mime_new(&m, NULL), MSV_OK);
	assert_int_equal(msv_mime_add_address(m, MSV_MIME_FROM, "Sender", "s@example.com"), MSV_OK);
	assert_int_equal(msv_mime_add_address(m, MSV_MIME_TO, NULL, "r@example.org"), MSV_OK);
	assert_int_equal(msv_mime_set_date(m, DATE), MSV_OK);
	assert_int_equal(msv_mime_set_message_id(m, "<id@example.com>"), MSV_OK);
	return m;
}

static void build_refuses(void **state)
{
	(void)state;
	msv_mime_msg *m = base_msg();
	assert_int_equal(msv_mime_set_subject(m, "a\r\nBcc: x"), MSV_E_INVALID);
	assert_non_null(strstr(msv_mime_error(m)->message, "Subject"));
	assert_int_equal(msv_mime_set_subject(m, "a\xff"), MSV_E_INVALID);
	assert_int_equal(msv_mime_add_header(m, "X-A", "b\nc"), MSV_E_INVALID);
	assert_int_equal(msv_mime_add_header(m, "X A", "b"), MSV_E_INVALID);
	assert_int_equal(msv_mime_add_header(m, "Content-Type", "b"), MSV_E_INVALID);
	assert_int_equal(msv_mime_add_header(m, "", "b"), MSV_E_INVALID);
	assert_int_equal(msv_mime_add_address(m, MSV_MIME_CC, NULL, "no-at"), MSV_E_BAD_ADDRESS);
	assert_int_equal(msv_mime_add_address(m, MSV_MIME_CC, NULL, "a..b@x.org"), MSV_E_BAD_ADDRESS);
	assert_int_equal(msv_mime_add_address(m, MSV_MIME_CC, NULL, "a@-x.org"), MSV_E_BAD_ADDRESS);
	assert_int_equal(msv_mime_add_address(m, MSV_MIME_CC, NULL, "a b@x.org"), MSV_E_BAD_ADDRESS);
	assert_int_equal(msv_mime_add_address(m, MSV_MIME_CC, "x\ny", "a@x.org"), MSV_E_INVALID);
	assert_int_equal(msv_mime_add_address(m, MSV_MIME_FROM, NULL, "b@x.org"), MSV_E_INVALID);
	assert_int_equal(msv_mime_set_date(m, "Mon, 32 Jan 2026 00:00:00 +0000"), MSV_E_INVALID);
	assert_int_equal(msv_mime_set_date(m, "yesterday"), MSV_E_INVALID);
	assert_int_equal(msv_mime_set_message_id(m, "<a@b"), MSV_E_INVALID);
	assert_int_equal(msv_mime_set_message_id(m, "a b@c"), MSV_E_INVALID);
	assert_int_equal(msv_mime_set_text(m, "ok\n\xc3", 4), MSV_E_INVALID);
	assert_non_null(strstr(msv_mime_error(m)->message, "line 2"));
	assert_int_equal(msv_mime_attach_file(m, "/nonexistent/file", NULL), MSV_E_NO_INPUT);
	const char *bad_uri[] = {"http://x/a b"};
	assert_int_equal(msv_mime_set_list_unsubscribe(m, bad_uri, 1, 0), MSV_E_INVALID);
	const char *mailto[] = {"mailto:u@example.com"};
	assert_int_equal(msv_mime_set_list_unsubscribe(m, mailto, 1, 1), MSV_E_INVALID);
	msv_mime_part_options po = MSV_MIME_PART_OPTIONS_INIT;
	po.content_type = "not a type";
	assert_int_equal(msv_mime_attach_data(m, "x", 1, MSV_MIME_COPY, &po), MSV_E_INVALID);
	/* still usable after errors */
	assert_int_equal(msv_mime_set_subject(m, "fine"), MSV_OK);
	assert_int_equal(msv_mime_prepare(m, 0), MSV_OK);
	msv_mime_free(m);

	/* A UTF-8 local part needs SMTPUTF8. */
	assert_int_equal(msv_mime_new(&m, NULL), MSV_OK);
	assert_int_equal(msv_mime_add_address(m, MSV_MIME_FROM, NULL, "jürgen@example.com"), MSV_OK);
	assert_int_equal(msv_mime_prepare(m, 0), MSV_E_NO_SMTPUTF8);
	assert_int_equal(msv_mime_prepare(m, MSV_MIME_SMTPUTF8), MSV_OK);
	msv_mime_info info;
	assert_int_equal(msv_mime_info_get(m, &info), MSV_OK);
	assert_true(info.smtputf8);
	msv_mime_free(m);
	/* From is required; inline parts need HTML. */
	assert_int_equal(msv_mime_new(&m, NULL), MSV_OK);
	assert_int_equal(msv_mime_prepare(m, 0), MSV_E_INVALID);
	msv_mime_free(m);
}

static char *build(msv_mime_msg *m, unsigned transport, size_t *len)
{
	assert_int_equal(msv_mime_prepare(m, transport), MSV_OK);
	msv_buf b;
	msv_buf_init(&b, 1 << 26);
	assert_int_equal(msv_mime_write_buf(m, &b), MSV_OK);
	msv_mime_info info;
	assert_int_equal(msv_mime_info_get(m, &info), MSV_OK);
	assert_int_equal(info.size, b.len); /* the size is known before reading */
	*len = b.len;
	return b.data;
}

static const char *cte_of(const char *msg)
{
	const char *p = strstr(msg, "Content-Transfer-Encoding: ");
	return p ? p + 27 : "";
}

static void encodings_chosen(void **state)
{
	(void)state;
	char line[1100];
	size_t len;
	struct {
		size_t n;
		char c;
		unsigned transport;
		const char *want;
	} cases[] = {
		{998, 'a', 0, "7bit"}, {999, 'a', 0, "quoted-printable"},
		{10, '\x01', 0, "7bit"}, {300, 'a', MSV_MIME_8BITMIME, "7bit"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		msv_mime_msg *m = base_msg();
		memset(line, cases[i].c, cases[i].n);
		line[cases[i].n] = '\n';
		assert_int_equal(msv_mime_set_text(m, line, cases[i].n + 1), MSV_OK);
		char *out = build(m, cases[i].transport, &len);
		assert_memory_equal(cte_of(out), cases[i].want, strlen(cases[i].want));
		msv_free(out);
		msv_mime_free(m);
	}
	/* Mostly non-ASCII: base64; with 8BITMIME: 8bit. */
	msv_mime_msg *m = base_msg();
	assert_int_equal(msv_mime_set_text(m, "日本語のテキスト\n", 25), MSV_OK);
	char *out = build(m, 0, &len);
	assert_memory_equal(cte_of(out), "base64", 6);
	msv_free(out);
	out = build(m, MSV_MIME_8BITMIME, &len);
	assert_memory_equal(cte_of(out), "8bit", 4);
	msv_mime_info info;
	assert_int_equal(msv_mime_info_get(m, &info), MSV_OK);
	assert_true(info.body_8bit);
	assert_false(info.smtputf8);
	msv_free(out);
	msv_mime_free(m);
	/* Binary data in memory: base64 and the bytes come back. */
	m = base_msg();
	unsigned char bin[1000];
	for (size_t i = 0; i < sizeof(bin); i++)
		bin[i] = (unsigned char)(i * 7);
	assert_int_equal(msv_mime_set_text(m, "t", 1), MSV_OK);
	assert_int_equal(msv_mime_attach_data(m, bin, sizeof(bin), MSV_MIME_BORROW, NULL), MSV_OK);
	out = build(m, 0, &len);
	msv_mime_tree t = tree();
	msv_error err;
	assert_int_equal(msv_mime_parse(&t, out, len, &err), MSV_OK);
	assert_int_equal(t.nnodes, 3);
	assert_int_equal(t.nodes[2].encoding, MSV_MIME_ENC_BASE64);
	msv_buf d;
	msv_buf_init(&d, 1 << 20);
	assert_int_equal(msv_mime_decode_body(&d, &t.nodes[2], &err), MSV_OK);
	assert_int_equal(d.len, sizeof(bin));
	assert_memory_equal(d.data, bin, sizeof(bin));
	msv_buf_free(&d);
	msv_free(out);
	msv_mime_free(m);
}

static void stream_any_piece_size(void **state)
{
	(void)state;
	char path[] = "/tmp/msv-mime-test-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	static unsigned char data[300000];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)(i * 131 + (i >> 8));
	assert_int_equal(write(fd, data, sizeof(data)), (ssize_t)sizeof(data));
	close(fd);
	msv_mime_msg *m = base_msg();
	assert_int_equal(msv_mime_set_text(m, "body\r\n", 6), MSV_OK);
	assert_int_equal(msv_mime_set_html(m, "<p>body</p>", 11), MSV_OK);
	assert_int_equal(msv_mime_attach_file(m, path, NULL), MSV_OK);
	size_t len;
	char *whole = build(m, 0, &len);
	static const size_t caps[] = {1, 7, 76, 4096, 65536};
	for (size_t k = 0; k < sizeof(caps) / sizeof(caps[0]); k++) {
		assert_int_equal(msv_mime_rewind(m), MSV_OK);
		msv_buf b;
		msv_buf_init(&b, 1 << 26);
		char piece[65536];
		long n;
		while ((n = msv_mime_read(m, piece, caps[k])) > 0)
			assert_int_equal(msv_buf_add(&b, piece, (size_t)n), MSV_OK);
		assert_int_equal(n, 0);
		assert_int_equal(b.len, len);
		assert_memory_equal(b.data, whole, len);
		msv_buf_free(&b);
	}
	/* The file shrinks between prepare and read: producing fails. */
	assert_int_equal(msv_mime_rewind(m), MSV_OK);
	assert_int_equal(truncate(path, 1000), 0);
	msv_buf b;
	msv_buf_init(&b, 1 << 26);
	assert_int_equal(msv_mime_write_buf(m, &b), MSV_E_NO_INPUT);
	assert_non_null(strstr(msv_mime_error(m)->message, "size changed"));
	msv_buf_free(&b);
	msv_free(whole);
	msv_mime_free(m);
	unlink(path);
}

static void headers_written(void **state)
{
	(void)state;
	msv_mime_msg *m = base_msg();
	assert_int_equal(msv_mime_add_address(m, MSV_MIME_CC, "Doe, John", "j@example.net"), MSV_OK);
	assert_int_equal(msv_mime_add_address(m, MSV_MIME_BCC, NULL, "hidden@example.net"), MSV_OK);
	assert_int_equal(msv_mime_add_address(m, MSV_MIME_REPLY_TO, NULL, "reply@bücher.example"),
	                 MSV_OK);
	assert_int_equal(msv_mime_set_in_reply_to(m, "<a@b>"), MSV_OK);
	assert_int_equal(msv_mime_set_references(m, "<a@b> <c@d>"), MSV_OK);
	const char *uris[] = {"mailto:unsub@example.com", "https://example.com/u?x=1"};
	assert_int_equal(msv_mime_set_list_unsubscribe(m, uris, 2, 1), MSV_OK);
	assert_int_equal(msv_mime_add_header(m, "X-Tag", "value"), MSV_OK);
	size_t len;
	char *out = build(m, 0, &len);
	assert_non_null(strstr(out, "Cc: \"Doe, John\" <j@example.net>\r\n"));
	assert_null(strstr(out, "hidden"));
	assert_non_null(strstr(out, "Reply-To: reply@xn--bcher-kva.example\r\n"));
	assert_non_null(strstr(out, "In-Reply-To: <a@b>\r\n"));
	assert_non_null(strstr(out, "References: <a@b> <c@d>\r\n"));
	assert_non_null(strstr(out, "List-Unsubscribe: <mailto:unsub@example.com>,"));
	assert_non_null(strstr(out, "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"));
	assert_non_null(strstr(out, "X-Tag: value\r\n"));
	size_t n;
	const char *const *rcpt = msv_mime_recipients(m, &n);
	assert_int_equal(n, 3); /* To, Cc, Bcc: Reply-To is not a recipient */
	assert_string_equal(rcpt[2], "hidden@example.net");
	assert_string_equal(msv_mime_sender(m), "s@example.com");
	msv_free(out);
	msv_mime_free(m);
}

/* ---- issue 17: what every reader must decode the same way ---- */

/* The From line of a message with this display name, unfolded. */
static char *from_line(const char *name, unsigned transport)
{
	msv_mime_msg *m;
	assert_int_equal(msv_mime_new(&m, NULL), MSV_OK);
	assert_int_equal(msv_mime_add_address(m, MSV_MIME_FROM, name, "s@example.com"), MSV_OK);
	assert_int_equal(msv_mime_set_date(m, DATE), MSV_OK);
	assert_int_equal(msv_mime_set_text(m, "x", 1), MSV_OK);
	size_t len;
	char *out = build(m, transport, &len);
	msv_mime_free(m);
	char *p = strstr(out, "\r\nFrom:");
	assert_non_null(p);
	p += 7;
	while (*p == ' ' || *p == '\r' || *p == '\n')
		p++;
	char *e = strstr(p, " <s@example.com>");
	assert_non_null(e);
	size_t o = 0;
	for (char *q = p; q < e; q++)
		if (*q != '\r' && *q != '\n')
			out[o++] = *q;
	out[o] = '\0';
	return out;
}

static void lookalikes_encoded(void **state)
{
	(void)state;
	/* A name, a file name that reads as an encoded word is encoded. */
	static const char *const names[] = {"=?UTF-8?B?SGk=?=", "Ann =?UTF-8?B?SGk=?= Lee",
	                                    "x=?utf-8?q?Hi?=y"};
	for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
		char *f = from_line(names[i], 0);
		assert_null(strstr(f, names[i]));
		assert_null(strstr(f, "SGk=?="));
		msv_free(f);
		f = from_line(names[i], MSV_MIME_SMTPUTF8);
		assert_null(strstr(f, "SGk=?="));
		msv_free(f);
	}
	char *f = from_line("Ann =?UTF-8?B?SGk=?= Lee", 0);
	assert_true(!strncmp(f, "Ann =?UTF-8?", 12)); /* only that word */
	assert_non_null(strstr(f, "?= Lee"));
	msv_free(f);
	msv_mime_msg *m = base_msg();
	msv_mime_part_options po = MSV_MIME_PART_OPTIONS_INIT;
	po.filename = "=?UTF-8?B?SGk=?=.txt";
	assert_int_equal(msv_mime_set_text(m, "x", 1), MSV_OK);
	assert_int_equal(msv_mime_attach_data(m, "d", 1, MSV_MIME_COPY, &po), MSV_OK);
	size_t len;
	char *out = build(m, 0, &len);
	assert_null(strstr(out, "SGk=?="));
	assert_non_null(strstr(out, "filename*=UTF-8''%3D%3FUTF-8%3FB%3FSGk%3D%3F%3D.txt"));
	assert_non_null(strstr(out, "name*=UTF-8''%3D%3F"));
	msv_free(out);
	msv_mime_free(m);
}

static void phrases_plain(void **state)
{
	(void)state;
	/* A long ASCII name stays a phrase: atoms and quoted words. */
	const char *long_name = "Alexandria Ozymandias von Hohenzollern-Sigmaringen, Department "
	                        "of Redundancy Department";
	char *f = from_line(long_name, 0);
	assert_null(strstr(f, "=?"));
	assert_string_equal(f, "Alexandria Ozymandias von \"Hohenzollern-Sigmaringen,\" Department "
	                       "of Redundancy Department");
	msv_free(f);
	/* A long atom passes 78 columns rather than being encoded. */
	char atom[201];
	memset(atom, 'X', 200);
	atom[200] = '\0';
	f = from_line(atom, 0);
	assert_string_equal(f, atom);
	msv_free(f);
	/* Short names: as before. */
	f = from_line("Doe, John", 0);
	assert_string_equal(f, "\"Doe, John\"");
	msv_free(f);
	/* Spaces that folding would lose travel in quoted strings. */
	f = from_line("Zo\xc3\xab   Smith Department of Redundancy Department of Redundancy", 0);
	assert_string_equal(f, "=?UTF-8?Q?Zo=C3=AB?= \" \" Smith Department of Redundancy "
	                       "Department of Redundancy");
	msv_free(f);
	/* Words to encode side by side share encoded words. */
	f = from_line("\xc3\xa9 \xc3\xa9 x", 0);
	assert_string_equal(f, "=?UTF-8?B?w6kgw6k=?= x");
	msv_free(f);
}

static void dates_checked(void **state)
{
	(void)state;
	msv_mime_msg *m = base_msg();
	static const struct {
		const char *date, *why;
	} bad[] = {
		{"Sat, 29 Feb 2025 00:00:00 +0000", "leap year"},
		{"Thu, 31 Apr 2025 00:00:00 +0000", "fewer days"},
		{"31 Nov 2025 00:00:00 +0000", "fewer days"},
		{"Mon, 01 Jan 2026 00:00:00 +0000", "is a Thursday"},
		{"29 Feb 2100 00:00:00 +0000", "leap year"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		assert_int_equal(msv_mime_set_date(m, bad[i].date), MSV_E_INVALID);
		assert_non_null(strstr(msv_mime_error(m)->message, bad[i].why));
	}
	static const char *const good[] = {"Thu, 29 Feb 2024 00:00:00 +0000",
	                                   "Tue, 29 Feb 2000 00:00:00 +0000",
	                                   "Wed, 31 Dec 2025 23:59:60 -1200", "30 Apr 2025 00:00 GMT"};
	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
		assert_int_equal(msv_mime_set_date(m, good[i]), MSV_OK);
	msv_mime_free(m);
}

static void alabels_checked(void **state)
{
	(void)state;
	msv_mime_msg *m = base_msg();
	static const char *const bad[] = {"a@xn--a.com", "a@xn--zz.com", "a@XN--ZZ.com",
	                                  "a@x.xn--a.com", "a@xn--ls8h.example", "a@xn--abc.com"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		assert_int_equal(msv_mime_add_address(m, MSV_MIME_CC, NULL, bad[i]), MSV_E_BAD_ADDRESS);
		assert_non_null(strstr(msv_mime_error(m)->message, "xn--"));
	}
	assert_int_equal(msv_mime_add_address(m, MSV_MIME_CC, NULL, "a@xn--bcher-kva.example"),
	                 MSV_OK);
	assert_int_equal(msv_mime_add_address(m, MSV_MIME_CC, NULL, "a@XN--BCHER-KVA.example"),
	                 MSV_OK);
	/* Error messages show UTF-8 as it is, other octets as '?'. */
	assert_int_equal(msv_mime_add_address(m, MSV_MIME_CC, NULL, "zo\xc3\xab@b..example"),
	                 MSV_E_BAD_ADDRESS);
	assert_non_null(strstr(msv_mime_error(m)->message, "\"zo\xc3\xab@b..example\""));
	assert_int_equal(msv_mime_add_address(m, MSV_MIME_CC, NULL, "zo\xff@example.com"),
	                 MSV_E_BAD_ADDRESS);
	assert_non_null(strstr(msv_mime_error(m)->message, "\"zo?@example.com\""));
	msv_mime_free(m);
}

/* ---- the parser ---- */

static void parse_limits(void **state)
{
	(void)state;
	/* 40 nested multiparts: past the default depth of 32. */
	msv_buf b;
	msv_buf_init(&b, 1 << 20);
	assert_int_equal(msv_buf_addstr(&b, "From: a@b\r\n"), MSV_OK);
	for (int i = 0; i < 40; i++)
		assert_int_equal(msv_buf_addf(&b, "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n"
		                                  "--b%d\r\n",
		                              i, i),
		                 MSV_OK);
	assert_int_equal(msv_buf_addstr(&b, "\r\nx\r\n"), MSV_OK);
	msv_mime_tree t = tree();
	msv_error err;
	assert_int_equal(msv_mime_parse(&t, b.data, b.len, &err), MSV_E_TOO_LARGE);
	assert_non_null(strstr(err.message, "deeper"));
	t.max_depth = 64;
	assert_int_equal(msv_mime_parse(&t, b.data, b.len, &err), MSV_OK);
	t.max_nodes = 5;
	assert_int_equal(msv_mime_parse(&t, b.data, b.len, &err), MSV_E_TOO_LARGE);
	t = tree();
	t.max_headers = 3;
	assert_int_equal(msv_mime_parse(&t, b.data, b.len, &err), MSV_E_TOO_LARGE);
	msv_buf_free(&b);
	/* Not a message at all. */
	t = tree();
	assert_int_equal(msv_mime_parse(&t, "just text\n", 10, &err), MSV_E_BAD_MESSAGE);
}

static void parse_shapes(void **state)
{
	(void)state;
	static const char msg[] =
		"From: a@b\nSubject: =?UTF-8?Q?caf=C3=A9?=\n  folded\nContent-Type: multipart/mixed;\n"
		" boundary=\"xyz\"\n\npreamble\n--xyz\nContent-Type: text/plain\n\nfirst\n"
		"--xyzz\nnot a boundary\n--xyz  \nContent-Type: message/rfc822\n\nFrom: c@d\n\ninner\n"
		"--xyz--\nepilogue\n";
	msv_mime_tree t = tree();
	msv_error err;
	assert_int_equal(msv_mime_parse(&t, msg, sizeof(msg) - 1, &err), MSV_OK);
	assert_int_equal(t.nnodes, 4);
	const msv_mime_node *p1 = &t.nodes[1];
	assert_int_equal(p1->body.len, strlen("first\n--xyzz\nnot a boundary"));
	const msv_mime_header *s = msv_mime_header_get(&t, &t.nodes[0], "subject");
	assert_non_null(s);
	msv_buf b;
	msv_buf_init(&b, 1024);
	assert_int_equal(msv_mime_decode_header(&b, s->value.p, s->value.len, &err), MSV_OK);
	assert_string_equal(b.data, "café  folded");
	msv_buf_free(&b);
	assert_int_equal(t.nodes[3].parent, 2); /* the encapsulated message */
	assert_int_equal(t.nodes[0].flags, 0);
	/* Missing close delimiter: flagged, the last part runs to the end. */
	static const char open_mp[] = "Content-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\n\r\nx";
	assert_int_equal(msv_mime_parse(&t, open_mp, sizeof(open_mp) - 1, &err), MSV_OK);
	assert_true(t.nodes[0].flags & MSV_MIME_NO_CLOSE);
	assert_int_equal(t.nnodes, 2);
}

/* Every bounce and enmime fixture parses, and every node's spans lie in
 * the buffer; its headers and bodies decode. */
static void walk_dir(const char *dir, size_t *count)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char path[2048];
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		DIR *sub = opendir(path);
		if (sub) {
			closedir(sub);
			walk_dir(path, count);
			continue;
		}
		FILE *f = fopen(path, "rb");
		assert_non_null(f);
		msv_buf b;
		msv_buf_init(&b, 1 << 26);
		char tmp[65536];
		size_t n;
		while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0)
			assert_int_equal(msv_buf_add(&b, tmp, n), MSV_OK);
		fclose(f);
		msv_mime_tree t = tree();
		msv_error err;
		msv_result r = msv_mime_parse(&t, b.data ? b.data : "", b.len, &err);
		assert_true(r == MSV_OK || r == MSV_E_BAD_MESSAGE);
		for (size_t i = 0; r == MSV_OK && i < t.nnodes; i++) {
			const msv_mime_node *nd = &t.nodes[i];
			assert_true(nd->body.p >= b.data && nd->body.p + nd->body.len <= b.data + b.len);
			msv_buf o;
			msv_buf_init(&o, 1 << 26);
			assert_int_equal(msv_mime_decode_body(&o, nd, &err), MSV_OK);
			for (size_t h = 0; h < nd->nheaders; h++) {
				const msv_mime_header *hd = &t.headers[nd->header + h];
				msv_buf_reset(&o);
				assert_int_equal(msv_mime_decode_header(&o, hd->value.p, hd->value.len, &err),
				                 MSV_OK);
			}
			msv_buf_free(&o);
		}
		msv_buf_free(&b);
		(*count)++;
	}
	closedir(d);
}

static void parse_corpus(void **state)
{
	(void)state;
	size_t count = 0;
	walk_dir(MSV_CORPUS_DIR "/bounces", &count);
	walk_dir(MSV_CORPUS_DIR "/mime/enmime", &count);
	assert_true(count > 800);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ew_roundtrips),     cmocka_unit_test(ew_refuses),
		cmocka_unit_test(decode_words),      cmocka_unit_test(params),
		cmocka_unit_test(build_refuses),     cmocka_unit_test(encodings_chosen),
		cmocka_unit_test(stream_any_piece_size), cmocka_unit_test(headers_written),
		cmocka_unit_test(parse_limits),      cmocka_unit_test(parse_shapes),
		cmocka_unit_test(parse_corpus),      cmocka_unit_test(lookalikes_encoded),
		cmocka_unit_test(phrases_plain),     cmocka_unit_test(dates_checked),
		cmocka_unit_test(alabels_checked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
