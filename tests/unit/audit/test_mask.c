/* The masking engine: each built-in rule and its near misses, addresses
 * in the places logs put them, pseudonyms (stable, case-insensitive,
 * never re-masked), configured rules, idempotence, and the stream giving
 * exactly what masking the whole text gives, however it is split. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "audit/audit_int.h"

static const unsigned char seed[MSV__AKEY_LEN] = "missive audit masking test seed";

/* Masks s with m; the result is the caller's to free. */
static char *mask(const msv_masker *m, const char *s, size_t n)
{
	msv_buf out;
	msv_buf_init(&out, 64u << 20);
	assert_int_equal(msv_buf_add(&out, "", 0), MSV_OK);
	assert_int_equal(msv_mask(m, s, n, &out), MSV_OK);
	char *r = out.data;
	return r;
}

static void expect(const msv_masker *m, const char *in, const char *want)
{
	char *got = mask(m, in, strlen(in));
	if (strcmp(got, want))
		fail_msg("mask(\"%s\")\n  got  \"%s\"\n  want \"%s\"", in, got, want);
	/* Every row is also a fixed point. */
	char *again = mask(m, got, strlen(got));
	if (strcmp(again, got))
		fail_msg("not idempotent: \"%s\" -> \"%s\" -> \"%s\"", in, got, again);
	msv_free(again);
	msv_free(got);
}

struct row {
	const char *in, *want;
};

/* Without keys, addresses become u-************@domain: the tables read
 * the same whatever the keys. */
static const struct row rows[] = {
	/* mobile numbers */
	{"call 13812345678 now", "call 138****5678 now"},
	{"13812345678", "138****5678"},
	{"tel:13912345678;", "tel:139****5678;"},
	{"x19912345678y", "x199****5678y"},
	{"138123456789", "138123456789"},          /* 12 digits: near miss */
	{"1381234567", "1381234567"},              /* 10 digits */
	{"12812345678", "12812345678"},            /* 1 then 2: not mobile */
	{"10012345678", "10012345678"},
	{"138-1234-5678", "138-1234-5678"},        /* 11 digits in groups: not a card */
	/* identifiers: 16, 24, 32, ... hex digits with a letter are names (queue IDs,
	 * hashes); other lengths are text */
	{"4be3013812345678: queued", "4be3013812345678: queued"},
	{"qid a13812345678bcde, 13812345678", "qid a13812345678bcde, 138****5678"},
	{"sha 4111111111111111deadbeef", "sha 4111111111111111deadbeef"},
	{"x 4111111111111111deadbee", "x ****1111deadbee"}, /* 23 characters: no identifier */
	{"abc13812345678", "abc138****5678"},      /* 14 characters: too short to be one */
	/* resident ID numbers */
	{"id 11010519491231002X ok", "id 110105***********X ok"},
	{"id 11010519491231002x", "id 110105***********x"},
	{"440106199001000050", "440106***********0"},
	{"440106199001000018", "440106***********8"}, /* ID and Luhn: ID wins */
	{"440106199001000001", "440106199001000001"}, /* bad check digit, not Luhn */
	{"11010519491231002Y", "11010519491231002Y"},
	{"A11010519491231002X", "A11010519491231002X"}, /* letter before */
	{"11010519491231002XA", "11010519491231002XA"}, /* letter after */
	/* card numbers */
	{"card 4111111111111111.", "card ****1111."},
	{"4111 1111 1111 1111", "****1111"},
	{"4111-1111-1111-1111", "****1111"},
	{"378282246310005", "****0005"},           /* 15 digits */
	{"4222222222222", "****2222"},             /* 13 */
	{"6222021234567890003", "****0003"},       /* 19 */
	{"622202123456780003", "****0003"},        /* 18, Luhn, not an ID */
	{"4111111111111112", "4111111111111112"},  /* Luhn-invalid */
	{"4111  1111 1111 1111", "4111  1111 1111 1111"}, /* double space: groups apart */
	{"41111111111111111111", "41111111111111111111"}, /* 20 digits */
	{"1234567890", "1234567890"},              /* 10 digits */
	{"100 4111111111111111", "100 ****1111"},  /* the run fails, the group not */
	{"abc4111111111111111def", "abc****1111def"},
	/* addresses */
	{"<bob@example.org>", "<u-************@example.org>"},
	{"to=<Bob@Example.ORG>, relay=x", "to=<u-************@example.org>, relay=x"},
	{"to=bob@example.org,", "to=u-************@example.org,"},
	{"550 5.1.1 <bob@x.org>: unknown user", "550 5.1.1 <u-************@x.org>: unknown user"},
	{"{\"rcpt\":\"bob.smith+tag@mail.example.co.uk\"}",
	 "{\"rcpt\":\"u-************@mail.example.co.uk\"}"},
	{"mail bob@example.org.", "mail u-************@example.org."},
	{"bob@localhost", "bob@localhost"},        /* one label */
	{"bob@1.2.3.4", "bob@1.2.3.4"},
	{"a @ b.org", "a @ b.org"},
	{"@example.org", "@example.org"},
	{"bob@x.org.4111111111111111", "u-************@x.org.****1111"},
	{"13812345678@example.org", "u-************@example.org"},
	{"bounces+bob=example.com@lists.org", "u-************@lists.org"},
	{"a@b.org,c@d.org", "u-************@b.org,u-************@d.org"},
	{"u-0123456789ab@example.org", "u-0123456789ab@example.org"}, /* already masked */
	{"plain text, nothing to see: 2026-12-05 15:25:00 1.2.3.4",
	 "plain text, nothing to see: 2026-12-05 15:25:00 1.2.3.4"},
	{"", ""},
};

static void test_table(void **state)
{
	(void)state;
	msv_masker *m;
	msv_error err;
	assert_int_equal(msv_masker_new(&m, NULL, &err), MSV_OK);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
		expect(m, rows[i].in, rows[i].want);
	msv_masker_free(m);
}

/* A kept part joining the rest of its run: masked again, so the output
 * holds no card and a second pass changes nothing. */
static void test_kept_digits_rejoin(void **state)
{
	(void)state;
	msv_masker *m;
	msv_error err;
	assert_int_equal(msv_masker_new(&m, NULL, &err), MSV_OK);
	/* Masked once, the phone's last four and the other groups would read
	 * "138****5678 4111 1111 1117": a Luhn-valid 16-digit card. */
	const char *in = "13812345678 4111 1111 1117";
	char *got = mask(m, in, strlen(in));
	assert_string_equal(got, "138********1117");
	char *again = mask(m, got, strlen(got));
	assert_string_equal(got, again);
	msv_free(got);
	msv_free(again);
	msv_masker_free(m);
}

static void test_pseudonyms(void **state)
{
	(void)state;
	msv_audit_keys *k;
	msv_masker *m;
	msv_error err;
	assert_int_equal(msv__audit_keys_mem(&k, seed), MSV_OK);
	assert_int_equal(msv_masker_new(&m, k, &err), MSV_OK);
	msv_buf a, b, c;
	msv_buf_init(&a, 1024);
	msv_buf_init(&b, 1024);
	msv_buf_init(&c, 1024);
	assert_int_equal(msv_mask_address(m, "bob@example.org", &a), MSV_OK);
	assert_int_equal(msv_mask_address(m, "BOB@Example.ORG", &b), MSV_OK);
	assert_int_equal(msv_mask_address(m, "alice@example.org", &c), MSV_OK);
	assert_string_equal(a.data, b.data);
	assert_string_not_equal(a.data, c.data);
	assert_int_equal(a.len, strlen("u-0123456789ab@example.org"));
	assert_memory_equal(a.data, "u-", 2);
	for (int i = 2; i < 14; i++)
		assert_non_null(strchr("0123456789abcdef", a.data[i]));
	assert_string_equal(a.data + 14, "@example.org");
	/* the same pseudonym inside text, in any case */
	char *t = mask(m, "to=<BoB@EXAMPLE.org>", 20);
	char want[128];
	snprintf(want, sizeof(want), "to=<%s>", a.data);
	assert_string_equal(t, want);
	msv_free(t);
	/* and a pseudonym is left alone */
	t = mask(m, a.data, a.len);
	assert_string_equal(t, a.data);
	msv_free(t);
	/* same seed, same pseudonyms */
	msv_audit_keys *k2;
	msv_masker *m2;
	assert_int_equal(msv__audit_keys_mem(&k2, seed), MSV_OK);
	assert_int_equal(msv_masker_new(&m2, k2, &err), MSV_OK);
	msv_buf_reset(&b);
	assert_int_equal(msv_mask_address(m2, "bob@example.org", &b), MSV_OK);
	assert_string_equal(a.data, b.data);
	assert_int_equal(msv_mask_address(m2, "no-at-sign", &b), MSV_E_BAD_ADDRESS);
	msv_buf_free(&a);
	msv_buf_free(&b);
	msv_buf_free(&c);
	msv_masker_free(m2);
	msv_audit_keys_close(k2);
	msv_masker_free(m);
	msv_audit_keys_close(k);
}

static void test_rules(void **state)
{
	(void)state;
	msv_masker *m;
	msv_error err;
	assert_int_equal(msv_masker_new(&m, NULL, &err), MSV_OK);
	assert_int_equal(msv_masker_add_rule(m, "order ORD-[0-9]{6,} 4 2", &err), MSV_OK);
	assert_int_equal(msv_masker_add_rule(m, "secret  token: [A-Za-z0-9]+  7 0", &err), MSV_OK);
	assert_int_equal(msv_masker_add_rule(m, "empty x* 0 0", &err), MSV_OK);
	assert_int_equal(msv_masker_add_rule(m, "hex u-[0-9a-f]+ 0 0", &err), MSV_OK);
	expect(m, "ORD-12345678 shipped", "ORD-******78 shipped");
	expect(m, "ORD-12 and ORD-987654321", "ORD-12 and ORD-*******21");
	expect(m, "token: abcDEF123 used", "token: ********* used");
	expect(m, "xxx", "***");
	/* never inside a pseudonym */
	expect(m, "u-0123456789ab@example.org u-77", "u-0123456789ab@example.org ****");
	/* after the built-ins, on their output */
	expect(m, "ORD-13812345678", "ORD-138****5678");
	msv_masker_free(m);

	const char *bad[] = {
		"",                    /* nothing */
		"name",                /* no regex */
		"na.me x 1 1",         /* bad name */
		"name x 1",            /* one number */
		"name 1 1",            /* no regex between */
		"name x -1 1",
		"name x 1 1001",
		"name ( 1 1",          /* bad regex */
	};
	assert_int_equal(msv_masker_new(&m, NULL, &err), MSV_OK);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (msv_masker_add_rule(m, bad[i], &err) != MSV_E_CONFIG)
			fail_msg("rule \"%s\" accepted", bad[i]);
		assert_int_equal(err.cls, MSV_CLASS_CONFIG);
	}
	assert_int_equal(msv_masker_add_rule(m, "dup a 0 0", &err), MSV_OK);
	assert_int_equal(msv_masker_add_rule(m, "dup b 0 0", &err), MSV_E_CONFIG);
	for (int i = 1; i < MSV__MASK_RULES_MAX; i++) {
		char spec[64];
		snprintf(spec, sizeof(spec), "r%d z%d 0 0", i, i);
		assert_int_equal(msv_masker_add_rule(m, spec, &err), MSV_OK);
	}
	assert_int_equal(msv_masker_add_rule(m, "one-more q 0 0", &err), MSV_E_CONFIG);
	msv_masker_free(m);
}

/* Random log-like text from pieces that exercise every rule. */
static size_t gen_text(char *buf, size_t cap, unsigned *seedp)
{
	static const char *const tok[] = {
		"bob@example.org", "BOB@Example.ORG", "<alice@mail.x.co.uk>", "to=carol@y.org,",
		"13812345678", "11010519491231002X", "440106199001000018", "4111 1111 1111 1111",
		"4111-1111-1111-1111", "4111111111111111", "100", "1", "-", " ", "  ", "\n", "@",
		"x", "ORD-1234567", "token: s3cret", "u-0123456789ab@z.org", "550 5.1.1 ", ".",
		"2026-12-05", "\"", "1381234567", "138123456789", "a.b", "=", "4111", "1111",
	};
	size_t n = 0;
	while (n < cap - 64) {
		unsigned r = (unsigned)rand_r(seedp);
		if (r % 50 == 0)
			break;
		if (r % 7 == 0) { /* random digits */
			int k = (int)(r >> 8) % 20 + 1;
			for (int i = 0; i < k; i++)
				buf[n++] = (char)('0' + rand_r(seedp) % 10);
			continue;
		}
		const char *t = tok[(r >> 4) % (sizeof(tok) / sizeof(tok[0]))];
		size_t l = strlen(t);
		memcpy(buf + n, t, l);
		n += l;
	}
	return n;
}

static void add_test_rules(msv_masker *m)
{
	msv_error err;
	assert_int_equal(msv_masker_add_rule(m, "order ORD-[0-9]{6,} 4 2", &err), MSV_OK);
	assert_int_equal(msv_masker_add_rule(m, "secret token: [A-Za-z0-9]+ 7 0", &err), MSV_OK);
}

static void test_idempotent(void **state)
{
	(void)state;
	msv_audit_keys *k;
	msv_masker *m;
	msv_error err;
	assert_int_equal(msv__audit_keys_mem(&k, seed), MSV_OK);
	assert_int_equal(msv_masker_new(&m, k, &err), MSV_OK);
	add_test_rules(m);
	unsigned s = 1;
	char buf[4096];
	for (int i = 0; i < 3000; i++) {
		size_t n = gen_text(buf, sizeof(buf), &s);
		char *once = mask(m, buf, n);
		char *twice = mask(m, once, strlen(once));
		if (strcmp(once, twice)) {
			size_t d = 0;
			while (once[d] == twice[d])
				d++;
			d = d > 40 ? d - 40 : 0;
			fail_msg("not idempotent at %zu:\n  once  \"%.120s\"\n  twice \"%.120s\"", d,
			         once + d, twice + d);
		}
		msv_free(once);
		msv_free(twice);
	}
	msv_masker_free(m);
	msv_audit_keys_close(k);
}

static char *mask_stream(const msv_masker *m, const char *s, size_t n, unsigned *seedp,
                         size_t maxchunk)
{
	msv_mask_stream *st;
	msv_buf out;
	msv_buf_init(&out, 64u << 20);
	assert_int_equal(msv_buf_add(&out, "", 0), MSV_OK);
	assert_int_equal(msv_mask_stream_new(&st, m), MSV_OK);
	size_t p = 0;
	while (p < n) {
		size_t c = (size_t)rand_r(seedp) % maxchunk + 1;
		if (c > n - p)
			c = n - p;
		assert_int_equal(msv_mask_stream_feed(st, s + p, c, &out), MSV_OK);
		p += c;
	}
	assert_int_equal(msv_mask_stream_finish(st, &out), MSV_OK);
	msv_mask_stream_free(st);
	return out.data;
}

static void test_stream_equals_whole(void **state)
{
	(void)state;
	msv_audit_keys *k;
	msv_masker *m;
	msv_error err;
	assert_int_equal(msv__audit_keys_mem(&k, seed), MSV_OK);
	assert_int_equal(msv_masker_new(&m, k, &err), MSV_OK);
	add_test_rules(m);
	unsigned s = 7;
	char buf[4096];
	for (int i = 0; i < 500; i++) {
		size_t n = gen_text(buf, sizeof(buf), &s);
		char *whole = mask(m, buf, n);
		char *streamed = mask_stream(m, buf, n, &s, i % 2 ? 7 : 300);
		assert_string_equal(whole, streamed);
		msv_free(whole);
		msv_free(streamed);
	}
	/* Lines longer than a piece: cut at the same places either way. */
	size_t big = 3 * MSV__MASK_PIECE_MAX + 1234;
	char *text = msv_malloc(big);
	assert_non_null(text);
	size_t n = 0;
	while (n < big - 64) {
		size_t l = gen_text(text + n, (big - n) < 300 ? big - n : 300, &s);
		for (size_t j = n; j < n + l; j++)
			if (text[j] == '\n')
				text[j] = (j % 3) ? ' ' : 'y';
		n += l;
	}
	memset(text + MSV__MASK_PIECE_MAX, 'z', MSV__MASK_PIECE_MAX + 10); /* no space at all */
	char *whole = mask(m, text, n);
	char *streamed = mask_stream(m, text, n, &s, 100000);
	assert_string_equal(whole, streamed);
	msv_free(streamed);
	streamed = mask_stream(m, text, n, &s, 4096);
	assert_string_equal(whole, streamed);
	msv_free(streamed);
	msv_free(whole);
	msv_free(text);
	msv_masker_free(m);
	msv_audit_keys_close(k);
}

/* A line longer than a piece with no space in it (an audit event's list
 * of 6000 recipients): the cut falls between two addresses, never inside
 * one, which would leave the start of its local part unmasked. */
static void test_long_list_cut_between_addresses(void **state)
{
	(void)state;
	msv_masker *m;
	msv_error err;
	assert_int_equal(msv_masker_new(&m, NULL, &err), MSV_OK);
	msv_buf in;
	msv_buf_init(&in, 1u << 20);
	for (int i = 0; i < 6000; i++)
		assert_int_equal(msv_buf_addf(&in, "%sperson.number%d@example.test", i ? "," : "", i),
		                 MSV_OK);
	assert_true(in.len > 2 * MSV__MASK_PIECE_MAX);
	char *out = mask(m, in.data, in.len);
	assert_null(strstr(out, "person"));
	size_t tokens = 0;
	for (char *t = strtok(out, ","); t; t = strtok(NULL, ","), tokens++)
		if (strcmp(t, "u-************@example.test"))
			fail_msg("token %zu not masked whole: '%s'", tokens, t);
	assert_int_equal(tokens, 6000);
	msv_free(out);
	msv_buf_free(&in);
	msv_masker_free(m);
}

/* A long line fed a byte at a time: linear (it used to search the whole
 * pending line again at every byte) and the same as masking it whole. */
static void test_stream_bytewise(void **state)
{
	(void)state;
	msv_masker *m;
	msv_error err;
	assert_int_equal(msv_masker_new(&m, NULL, &err), MSV_OK);
	size_t n = 4 * MSV__MASK_PIECE_MAX + 77;
	char *text = msv_malloc(n);
	assert_non_null(text);
	for (size_t i = 0; i < n; i++)
		text[i] = "13812345678 bob@x.org "[i % 22];
	text[n / 2] = '\n';
	msv_mask_stream *st;
	msv_buf out;
	msv_buf_init(&out, 64u << 20);
	assert_int_equal(msv_mask_stream_new(&st, m), MSV_OK);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(msv_mask_stream_feed(st, text + i, 1, &out), MSV_OK);
	assert_int_equal(msv_mask_stream_finish(st, &out), MSV_OK);
	msv_mask_stream_free(st);
	char *whole = mask(m, text, n);
	assert_string_equal(out.data, whole);
	assert_null(strstr(whole, "13812345678"));
	msv_free(whole);
	msv_buf_free(&out);
	msv_free(text);
	msv_masker_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_kept_digits_rejoin),
		cmocka_unit_test(test_pseudonyms),
		cmocka_unit_test(test_rules),
		cmocka_unit_test(test_idempotent),
		cmocka_unit_test(test_stream_equals_whole),
		cmocka_unit_test(test_stream_bytewise),
		cmocka_unit_test(test_long_list_cut_between_addresses),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
