/* DKIM canonicalization: the 39 cases of the test corpus
 * (dkim/canon/cases.json), fed whole, byte by byte and split at every
 * point; line-end normalization; header splitting; tag lists. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "dkim/dkim_int.h"
#include "dkim/jsonmini.h"

#define CASES MSV_CORPUS_DIR "/dkim/canon/cases.json"

static int buf_sink(void *arg, const char *p, size_t n)
{
	return msv_buf_add((msv_buf *)arg, p, n) ? -1 : 0;
}

/* Body canonicalization of chunks; lf_only as the corpus (go-msgauth). */
static void body_run(msv_buf *out, msv_dkim_canon c, int lf_only, const char *const *chunks,
                     const size_t *lens, size_t n)
{
	dkim_body b;
	msv_buf_reset(out);
	msv__dkim_body_init(&b, c, lf_only, UINT64_MAX, buf_sink, out);
	for (size_t i = 0; i < n; i++)
		msv__dkim_body_feed(&b, chunks[i], lens[i]);
	assert_int_equal(msv__dkim_body_end(&b), 0);
}

static void sha_b64(const char *p, size_t n, char out[64])
{
	unsigned char dg[32];
	unsigned dl;
	assert_int_equal(EVP_Digest(p, n, dg, &dl, EVP_sha256(), NULL), 1);
	msv_buf b;
	msv_buf_init(&b, 64);
	assert_int_equal(msv_base64_encode(&b, dg, 32), MSV_OK);
	memcpy(out, b.data, b.len + 1);
	msv_buf_free(&b);
}

static int has_bare_cr(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] == '\r' && (i + 1 == n || p[i + 1] != '\n'))
			return 1;
	return 0;
}

static void corpus_cases(void **state)
{
	(void)state;
	jn root;
	assert_int_equal(jn_load(CASES, &root), 0);
	assert_int_equal(root.type, JN_ARR);
	assert_int_equal(root.nkids, 39);
	size_t checked = 0, body = 0, header = 0;
	msv_buf out, again;
	msv_buf_init(&out, 1 << 20);
	msv_buf_init(&again, 1 << 20);
	for (size_t i = 0; i < root.nkids; i++) {
		const jn *cs = &root.kids[i];
		const char *kind = jn_get(cs, "kind")->str;
		const jn *in = jn_get(cs, "input"), *exp = jn_get(cs, "expected");
		const jn *chunks = jn_get(cs, "input_chunks");
		int id = (int)jn_get(cs, "id")->num;
		if (!strncmp(kind, "header-", 7)) {
			msv_dkim_canon c = !strcmp(kind, "header-simple") ? MSV_DKIM_SIMPLE : MSV_DKIM_RELAXED;
			msv_buf_reset(&out);
			assert_int_equal(msv__dkim_header_canon(&out, c, in->str, in->len, 0), MSV_OK);
			if (out.len != exp->len || memcmp(out.data, exp->str, out.len))
				fail_msg("case %d (%s): got \"%s\"", id, kind, out.data);
			header++;
			checked++;
			continue;
		}
		msv_dkim_canon c = !strcmp(kind, "body-simple") ? MSV_DKIM_SIMPLE : MSV_DKIM_RELAXED;
		/* as the corpus chunks it */
		const char *cp[16];
		size_t cl[16], nc = 0;
		if (chunks) {
			for (size_t k = 0; k < chunks->nkids && nc < 16; k++, nc++) {
				cp[nc] = chunks->kids[k].str;
				cl[nc] = chunks->kids[k].len;
			}
		} else {
			cp[0] = in->str;
			cl[0] = in->len;
			nc = 1;
		}
		body_run(&out, c, 1, cp, cl, nc);
		if (out.len != exp->len || memcmp(out.data, exp->str, out.len))
			fail_msg("case %d (%s): wrong output (%zu bytes, want %zu)", id, kind, out.len, exp->len);
		char b64[64];
		sha_b64(out.data ? out.data : "", out.len, b64);
		assert_string_equal(b64, jn_get(cs, "expected_sha256_b64")->str);
		/* whole, byte by byte, and split at every point: same bytes */
		const char *whole[1] = {in->str};
		size_t wl[1] = {in->len};
		body_run(&again, c, 1, whole, wl, 1);
		assert_int_equal(again.len, out.len);
		assert_memory_equal(again.data ? again.data : "", out.data ? out.data : "", out.len);
		for (size_t cut = 0; cut <= in->len; cut++) {
			const char *two[2] = {in->str, in->str + cut};
			size_t tl[2] = {cut, in->len - cut};
			body_run(&again, c, 1, two, tl, 2);
			assert_int_equal(again.len, out.len);
			assert_memory_equal(again.data ? again.data : "", out.data ? out.data : "", out.len);
		}
		const char *bytes[4096];
		size_t bl[4096];
		assert_true(in->len < 4096);
		for (size_t k = 0; k < in->len; k++) {
			bytes[k] = in->str + k;
			bl[k] = 1;
		}
		body_run(&again, c, 1, bytes, bl, in->len);
		assert_int_equal(again.len, out.len);
		/* The default (every bare CR a line end, as the SMTP layer sends
		 * it) differs from the corpus only where a bare CR is kept. */
		body_run(&again, c, 0, whole, wl, 1);
		if (!has_bare_cr(in->str, in->len)) {
			assert_int_equal(again.len, out.len);
			assert_memory_equal(again.data ? again.data : "", out.data ? out.data : "", out.len);
		}
		body++;
		checked++;
	}
	assert_int_equal(checked, 39);
	assert_int_equal(header, 11);
	assert_int_equal(body, 28);
	msv_buf_free(&out);
	msv_buf_free(&again);
	jn_free(&root);
}

/* Corpus case 9 ("\r\n" then a lone "\r" at the end) keeps the lone CR
 * as a byte, as go-msgauth does.  missive treats it as a line end (RFC
 * 6376 5.3: the message as SMTP carries it), so it signs "\r\n". */
static void bare_cr_is_a_line_end(void **state)
{
	(void)state;
	msv_buf out;
	msv_buf_init(&out, 1024);
	const char *in[2] = {"\r\n", "\r"};
	size_t l[2] = {2, 1};
	body_run(&out, MSV_DKIM_SIMPLE, 0, in, l, 2);
	assert_int_equal(out.len, 2);
	assert_memory_equal(out.data, "\r\n", 2);
	body_run(&out, MSV_DKIM_SIMPLE, 1, in, l, 2);
	assert_int_equal(out.len, 5);
	assert_memory_equal(out.data, "\r\n\r\r\n", 5);
	const char *mid[1] = {"a\rb\n"};
	size_t ml[1] = {4};
	body_run(&out, MSV_DKIM_RELAXED, 0, mid, ml, 1);
	assert_string_equal(out.data, "a\r\nb\r\n");
	msv_buf_free(&out);
}

static void normalizer(void **state)
{
	(void)state;
	msv_buf out;
	msv_buf_init(&out, 1024);
	const char *in = "a\nb\rc\r\nd\r";
	dkim_norm m;
	/* byte by byte and whole give the same */
	for (int pass = 0; pass < 2; pass++) {
		msv_buf_reset(&out);
		msv__dkim_norm_init(&m, 0);
		if (pass)
			for (size_t i = 0; in[i]; i++)
				assert_int_equal(msv__dkim_norm_feed(&m, in + i, 1, buf_sink, &out), 0);
		else
			assert_int_equal(msv__dkim_norm_feed(&m, in, strlen(in), buf_sink, &out), 0);
		assert_int_equal(msv__dkim_norm_end(&m, buf_sink, &out), 0);
		assert_string_equal(out.data, "a\r\nb\r\nc\r\nd\r\n");
	}
	msv_buf_reset(&out);
	msv__dkim_norm_init(&m, 1);
	assert_int_equal(msv__dkim_norm_feed(&m, in, strlen(in), buf_sink, &out), 0);
	assert_int_equal(msv__dkim_norm_end(&m, buf_sink, &out), 0);
	assert_string_equal(out.data, "a\r\nb\rc\r\nd\r");
	msv_buf_free(&out);
}

static void body_length_limit(void **state)
{
	(void)state;
	msv_buf out;
	msv_buf_init(&out, 1024);
	dkim_body b;
	msv__dkim_body_init(&b, MSV_DKIM_RELAXED, 0, 5, buf_sink, &out);
	msv__dkim_body_feed(&b, "Hello  world\r\n\r\n", 16);
	assert_int_equal(msv__dkim_body_end(&b), 0);
	assert_string_equal(out.data, "Hello");
	assert_int_equal(b.total, 13); /* "Hello world\r\n" */
	msv_buf_free(&out);
}

static void header_relaxed_8bit_and_folds(void **state)
{
	(void)state;
	msv_buf out;
	msv_buf_init(&out, 1024);
	const char *f = "SUBJECT:\t caf\xc3\xa9 \r\n\t  au   lait \t\r\n";
	assert_int_equal(msv__dkim_header_canon(&out, MSV_DKIM_RELAXED, f, strlen(f), 0), MSV_OK);
	assert_string_equal(out.data, "subject:caf\xc3\xa9 au lait\r\n");
	msv_buf_reset(&out);
	assert_int_equal(msv__dkim_header_canon(&out, MSV_DKIM_RELAXED, f, strlen(f), 1), MSV_OK);
	assert_string_equal(out.data, "subject:caf\xc3\xa9 au lait");
	msv_buf_reset(&out);
	assert_int_equal(msv__dkim_header_canon(&out, MSV_DKIM_SIMPLE, f, strlen(f), 1), MSV_OK);
	assert_int_equal(out.len, strlen(f) - 2);
	msv_buf_free(&out);
}

static void split_fields(void **state)
{
	(void)state;
	const char *h = "From: a\r\nSubject: x\r\n y\r\nX-Empty:\r\nName :v\r\n";
	dkim_field f[8];
	size_t bad = 0;
	assert_int_equal(msv__dkim_split_fields(h, strlen(h), f, 8, &bad), 4);
	assert_int_equal(f[1].len, strlen("Subject: x\r\n y\r\n"));
	assert_int_equal(f[3].name_len, 4);
	assert_true(msv__dkim_name_eq(f[3].p, f[3].name_len, "NAME"));
	assert_false(msv__dkim_name_eq(f[3].p, f[3].name_len, "Nam"));
	const char *bad1 = " cont\r\nFrom: a\r\n";
	assert_int_equal(msv__dkim_split_fields(bad1, strlen(bad1), f, 8, &bad), -1);
	assert_int_equal(bad, 1);
	const char *bad2 = "From: a\r\nnot a field\r\n";
	assert_int_equal(msv__dkim_split_fields(bad2, strlen(bad2), f, 8, &bad), -1);
	assert_int_equal(bad, 2);
	assert_int_equal(msv__dkim_split_fields(h, strlen(h), f, 3, &bad), -1); /* over the limit */
}

static void tag_lists(void **state)
{
	(void)state;
	dkim_tag t[DKIM_TAGS_MAX];
	const char *why = NULL;
	const char *s = " v=1;\r\n a = rsa-sha256 ; b=ab\r\n cd ;";
	assert_int_equal(msv__dkim_parse_tags(s, strlen(s), t, DKIM_TAGS_MAX, &why), 3);
	const dkim_tag *a = msv__dkim_find_tag(t, 3, "a"), *b = msv__dkim_find_tag(t, 3, "b");
	assert_non_null(a);
	assert_int_equal(a->value_len, 10);
	assert_memory_equal(a->value, "rsa-sha256", 10);
	assert_int_equal(b->value_len, 7); /* interior FWS kept */
	assert_int_equal(s[b->value_start - 1], '=');
	assert_int_equal(s[b->value_end], ';');
	assert_null(msv__dkim_find_tag(t, 3, "bh"));
	assert_int_equal(msv__dkim_parse_tags("a=1; a=2", 8, t, DKIM_TAGS_MAX, &why), -1);
	assert_int_equal(msv__dkim_parse_tags("=1", 2, t, DKIM_TAGS_MAX, &why), -1);
	assert_int_equal(msv__dkim_parse_tags("a", 1, t, DKIM_TAGS_MAX, &why), -1);
	assert_int_equal(msv__dkim_parse_tags("1a=2", 4, t, DKIM_TAGS_MAX, &why), -1);
	assert_int_equal(msv__dkim_parse_tags("", 0, t, DKIM_TAGS_MAX, &why), 0);
	assert_int_equal(msv__dkim_parse_tags("a=", 2, t, DKIM_TAGS_MAX, &why), 1);
	assert_int_equal(t[0].value_len, 0);
	msv_buf out;
	msv_buf_init(&out, 64);
	assert_int_equal(msv__dkim_b64_decode_fws(&out, "aGVs\r\n bG8=", 11), MSV_OK);
	assert_string_equal(out.data, "hello");
	msv_buf_free(&out);
}

static void dns_names(void **state)
{
	(void)state;
	assert_true(msv__dkim_valid_dns_name("example.com"));
	assert_true(msv__dkim_valid_dns_name("mail-2025.sub.example.co.uk"));
	assert_false(msv__dkim_valid_dns_name(""));
	assert_false(msv__dkim_valid_dns_name(".example.com"));
	assert_false(msv__dkim_valid_dns_name("example..com"));
	assert_false(msv__dkim_valid_dns_name("-a.com"));
	assert_false(msv__dkim_valid_dns_name("a;b"));
	assert_false(msv__dkim_valid_dns_name("exa mple"));
	assert_false(msv__dkim_valid_dns_name("caf\xc3\xa9.fr"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(corpus_cases),
		cmocka_unit_test(bare_cr_is_a_line_end),
		cmocka_unit_test(normalizer),
		cmocka_unit_test(body_length_limit),
		cmocka_unit_test(header_relaxed_8bit_and_folds),
		cmocka_unit_test(split_fields),
		cmocka_unit_test(tag_lists),
		cmocka_unit_test(dns_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
