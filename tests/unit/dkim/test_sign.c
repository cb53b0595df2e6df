/* DKIM signing and verification through the public API
 * (include/missive/dkim.h): defaults, folding, streaming, dual signing,
 * key checks, key records, and every verifier verdict. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "missive/dkim.h"

#define T0 1700000000

static const char MSG[] = "From: Alice <alice@example.org>\r\n"
                          "To: Bob <bob@example.net>\r\n"
                          "To: Carol <carol@example.net>\r\n"
                          "Subject: hello\r\n"
                          "Date: Sat, 28 Nov 2026 06:00:00 +0000\r\n"
                          "Message-ID: <t@example.org>\r\n"
                          "Received: from x by y\r\n"
                          "X-Other: not signed\r\n"
                          "\r\n"
                          "Hi Bob,\r\n  how are you?  \r\n\r\n\r\n";

typedef struct keys {
	msv_buf rsa_pem, rsa_rec, ed_pem, ed_rec;
} keys;

static keys K;

static int setup(void **state)
{
	(void)state;
	msv_error err;
	msv_buf_init(&K.rsa_pem, 1 << 16);
	msv_buf_init(&K.rsa_rec, 1 << 16);
	msv_buf_init(&K.ed_pem, 1 << 16);
	msv_buf_init(&K.ed_rec, 1 << 16);
	if (msv_dkim_keygen(MSV_DKIM_RSA_SHA256, 2048, &K.rsa_pem, &K.rsa_rec, &err) ||
	    msv_dkim_keygen(MSV_DKIM_ED25519_SHA256, 0, &K.ed_pem, &K.ed_rec, &err))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	msv_buf_free_secret(&K.rsa_pem);
	msv_buf_free_secret(&K.ed_pem);
	msv_buf_free(&K.rsa_rec);
	msv_buf_free(&K.ed_rec);
	return 0;
}

static msv_dkim_signer *signer(const msv_buf *pem, const msv_dkim_options *o)
{
	msv_dkim_options d = MSV_DKIM_OPTIONS_INIT;
	d.domain = "example.org";
	d.selector = "sel";
	msv_dkim_signer *s = NULL;
	msv_error err;
	msv_result r = msv_dkim_signer_new(&s, o ? o : &d, pem->data, pem->len, &err);
	if (r)
		fail_msg("signer: %s", err.message);
	return s;
}

/* Verifies msg with both test keys; returns the statuses. */
static size_t verify(const char *msg, size_t len, msv_dkim_status st[4], int64_t now)
{
	msv_dkim_key *k1, *k2;
	msv_error err;
	assert_int_equal(msv_dkim_key_from_record(&k1, K.rsa_rec.data, K.rsa_rec.len, &err), MSV_OK);
	assert_int_equal(msv_dkim_key_from_record(&k2, K.ed_rec.data, K.ed_rec.len, &err), MSV_OK);
	const msv_dkim_key *ks[2] = {k1, k2};
	msv_dkim_verify_options vo = MSV_DKIM_VERIFY_OPTIONS_INIT;
	vo.keys = ks;
	vo.nkeys = 2;
	vo.now = now;
	msv_dkim_result *res;
	size_t n;
	assert_int_equal(msv_dkim_verify(&vo, msg, len, &res, &n, &err), MSV_OK);
	for (size_t i = 0; i < n && i < 4; i++)
		st[i] = res[i].status;
	msv_free(res);
	msv_dkim_key_free(k1);
	msv_dkim_key_free(k2);
	return n;
}

static char *unfold(const char *s, char *out, size_t cap)
{
	size_t n = 0;
	for (; *s && n + 1 < cap; s++) {
		if (s[0] == '\r' && s[1] == '\n' && (s[2] == ' ' || s[2] == '\t'))
			s += 2;
		else
			out[n++] = *s;
	}
	out[n] = '\0';
	return out;
}

static void defaults_and_folding(void **state)
{
	(void)state;
	for (int a = 0; a < 2; a++) {
		msv_dkim_signer *s = signer(a ? &K.ed_pem : &K.rsa_pem, NULL);
		assert_int_equal(msv_dkim_signer_algo(s), a ? MSV_DKIM_ED25519_SHA256 : MSV_DKIM_RSA_SHA256);
		assert_int_equal(msv_dkim_signer_warnings(s), 0);
		msv_buf out;
		msv_buf_init(&out, MSV_DKIM_HEADER_MAX);
		msv_error err;
		assert_int_equal(msv_dkim_sign(s, MSG, sizeof(MSG) - 1, T0, &out, &err), MSV_OK);
		/* one field, CRLF-terminated, lines of at most 78 columns */
		assert_memory_equal(out.data, "DKIM-Signature: v=1; a=", 23);
		assert_memory_equal(out.data + out.len - 2, "\r\n", 2);
		const char *line = out.data;
		for (const char *e; (e = strstr(line, "\r\n")); line = e + 2)
			assert_true(e - line <= 78);
		char u[4096];
		unfold(out.data, u, sizeof(u));
		assert_non_null(strstr(u, "c=relaxed/relaxed;"));
		assert_non_null(strstr(u, "d=example.org;"));
		assert_non_null(strstr(u, "s=sel;"));
		assert_non_null(strstr(u, "t=1700000000;"));
		/* present fields only, each instance, From over-signed */
		assert_non_null(strstr(u, "h=From:To:To:Subject:Date:Message-ID:From;"));
		assert_null(strstr(u, "x="));
		assert_null(strstr(u, "i="));
		assert_null(strstr(u, "l="));
		/* signed message verifies; the same bytes again (deterministic) */
		msv_buf m;
		msv_buf_init(&m, 1 << 16);
		assert_int_equal(msv_buf_add(&m, out.data, out.len), MSV_OK);
		assert_int_equal(msv_buf_add(&m, MSG, sizeof(MSG) - 1), MSV_OK);
		msv_dkim_status st[4];
		assert_int_equal(verify(m.data, m.len, st, 0), 1);
		assert_int_equal(st[0], MSV_DKIM_PASS);
		msv_buf again;
		msv_buf_init(&again, MSV_DKIM_HEADER_MAX);
		assert_int_equal(msv_dkim_sign(s, MSG, sizeof(MSG) - 1, T0, &again, &err), MSV_OK);
		assert_int_equal(again.len, out.len);
		assert_memory_equal(again.data, out.data, out.len);
		msv_buf_free(&again);
		msv_buf_free(&m);
		msv_buf_free(&out);
		msv_dkim_signer_free(s);
	}
}

static void streaming_equals_oneshot_and_lf(void **state)
{
	(void)state;
	msv_dkim_signer *s = signer(&K.ed_pem, NULL);
	msv_buf one, two;
	msv_buf_init(&one, MSV_DKIM_HEADER_MAX);
	msv_buf_init(&two, MSV_DKIM_HEADER_MAX);
	msv_error err;
	assert_int_equal(msv_dkim_sign(s, MSG, sizeof(MSG) - 1, T0, &one, &err), MSV_OK);
	msv_dkim_stream *st;
	assert_int_equal(msv_dkim_stream_new(&st, &s, 1, &err), MSV_OK);
	for (int round = 0; round < 2; round++) { /* reset reuses the stream */
		msv_buf_reset(&two);
		for (size_t i = 0; i < sizeof(MSG) - 1; i++)
			assert_int_equal(msv_dkim_stream_update(st, MSG + i, 1), MSV_OK);
		assert_int_equal(msv_dkim_stream_final(st, T0, &two), MSV_OK);
		assert_int_equal(two.len, one.len);
		assert_memory_equal(two.data, one.data, one.len);
		msv_dkim_stream_reset(st);
	}
	/* the same message with LF line ends signs the same (RFC 6376 5.3) */
	char lf[sizeof(MSG)];
	size_t n = 0;
	for (size_t i = 0; i < sizeof(MSG) - 1; i++)
		if (MSG[i] != '\r')
			lf[n++] = MSG[i];
	msv_buf_reset(&two);
	assert_int_equal(msv_dkim_stream_update(st, lf, n), MSV_OK);
	assert_int_equal(msv_dkim_stream_final(st, T0, &two), MSV_OK);
	assert_int_equal(two.len, one.len);
	assert_memory_equal(two.data, one.data, one.len);
	/* a finished stream refuses more until reset */
	assert_int_not_equal(msv_dkim_stream_update(st, "x", 1), MSV_OK);
	msv_dkim_stream_free(st);
	msv_buf_free(&one);
	msv_buf_free(&two);
	msv_dkim_signer_free(s);
}

static void dual_signing(void **state)
{
	(void)state;
	msv_dkim_signer *s[2] = {signer(&K.rsa_pem, NULL), signer(&K.ed_pem, NULL)};
	msv_buf out;
	msv_buf_init(&out, 1 << 16);
	msv_error err;
	assert_int_equal(msv_dkim_sign_message(s, 2, MSG, sizeof(MSG) - 1, T0, &out, &err), MSV_OK);
	const char *second = strstr(out.data + 1, "DKIM-Signature:");
	assert_non_null(second);
	assert_non_null(strstr(out.data, "a=rsa-sha256"));
	assert_true(strstr(out.data, "a=ed25519-sha256") > second);
	/* both carry the same body hash: the body was hashed once */
	const char *bh1 = strstr(out.data, "bh="), *bh2 = strstr(second, "bh=");
	assert_memory_equal(bh1, bh2, 47);
	msv_dkim_status st[4];
	assert_int_equal(verify(out.data, out.len, st, 0), 2);
	assert_int_equal(st[0], MSV_DKIM_PASS);
	assert_int_equal(st[1], MSV_DKIM_PASS);
	/* tampering: a body byte, an added From, a changed Subject */
	char *p = strstr(out.data, "Hi Bob");
	p[1] = 'I';
	assert_int_equal(verify(out.data, out.len, st, 0), 2);
	assert_int_equal(st[0], MSV_DKIM_FAIL_BODY_HASH);
	assert_int_equal(st[1], MSV_DKIM_FAIL_BODY_HASH);
	p[1] = 'i';
	p = strstr(out.data, "Subject: hello");
	p[9] = 'H';
	assert_int_equal(verify(out.data, out.len, st, 0), 2);
	assert_int_equal(st[0], MSV_DKIM_FAIL_SIGNATURE);
	assert_int_equal(st[1], MSV_DKIM_FAIL_SIGNATURE);
	p[9] = 'h';
	msv_buf added;
	msv_buf_init(&added, 1 << 16);
	size_t at = (size_t)(strstr(out.data, "From: Alice") - out.data);
	assert_int_equal(msv_buf_add(&added, out.data, at), MSV_OK);
	assert_int_equal(msv_buf_addstr(&added, "From: Mallory <m@evil.example>\r\n"), MSV_OK);
	assert_int_equal(msv_buf_add(&added, out.data + at, out.len - at), MSV_OK);
	assert_int_equal(verify(added.data, added.len, st, 0), 2);
	assert_int_equal(st[0], MSV_DKIM_FAIL_SIGNATURE);
	assert_int_equal(st[1], MSV_DKIM_FAIL_SIGNATURE);
	msv_buf_free(&added);
	msv_buf_free(&out);
	msv_dkim_signer_free(s[0]);
	msv_dkim_signer_free(s[1]);
}

static void options_x_i_l_headers(void **state)
{
	(void)state;
	msv_dkim_options o = MSV_DKIM_OPTIONS_INIT;
	o.domain = "example.org";
	o.selector = "sel";
	o.expire_seconds = 3600;
	o.identity = "alice@mail.example.org";
	o.body_length = 1;
	o.headers = "subject, x-absent ,DATE";
	o.header_canon = MSV_DKIM_SIMPLE;
	msv_dkim_signer *s = signer(&K.ed_pem, &o);
	msv_buf out;
	msv_buf_init(&out, 1 << 16);
	msv_error err;
	assert_int_equal(msv_dkim_sign_message(&s, 1, MSG, sizeof(MSG) - 1, T0, &out, &err), MSV_OK);
	char u[4096];
	unfold(out.data, u, sizeof(u));
	assert_non_null(strstr(u, "c=simple/relaxed;"));
	assert_non_null(strstr(u, "x=1700003600;"));
	assert_non_null(strstr(u, "i=alice@mail.example.org;"));
	assert_non_null(strstr(u, "l=24;")); /* "Hi Bob,\r\n how are you?\r\n" */
	assert_non_null(strstr(u, "h=subject:DATE:From:From;")); /* From always, x-absent absent */
	msv_dkim_status st[4];
	assert_int_equal(verify(out.data, out.len, st, T0 + 10), 1);
	assert_int_equal(st[0], MSV_DKIM_PASS);
	assert_int_equal(verify(out.data, out.len, st, T0 + 7200), 1);
	assert_int_equal(st[0], MSV_DKIM_FAIL_EXPIRED);
	/* l=: text appended after the signed length still passes (the
	 * reason l= is off by default) */
	assert_int_equal(msv_buf_addstr(&out, "appended by anyone\r\n"), MSV_OK);
	assert_int_equal(verify(out.data, out.len, st, T0 + 10), 1);
	assert_int_equal(st[0], MSV_DKIM_PASS);
	msv_buf_free(&out);
	msv_dkim_signer_free(s);
}

static void bad_messages(void **state)
{
	(void)state;
	msv_dkim_signer *s = signer(&K.ed_pem, NULL);
	msv_buf out;
	msv_buf_init(&out, 1 << 16);
	msv_error err;
	assert_int_equal(msv_dkim_sign(s, "Subject: x\r\n\r\nbody\r\n", 21, T0, &out, &err), MSV_E_BAD_MESSAGE);
	assert_non_null(strstr(err.message, "From"));
	assert_int_equal(msv_dkim_sign(s, "not a header\r\n\r\n", 16, T0, &out, &err), MSV_E_BAD_MESSAGE);
	/* no empty line: all header, empty body; a last field without CRLF */
	assert_int_equal(msv_dkim_sign(s, "From: a@example.org", 19, T0, &out, &err), MSV_OK);
	/* a header block over the limit */
	msv_buf big;
	msv_buf_init(&big, MSV_DKIM_HEADER_BLOCK_MAX * 2);
	assert_int_equal(msv_buf_addstr(&big, "From: a@example.org\r\n"), MSV_OK);
	while (big.len <= MSV_DKIM_HEADER_BLOCK_MAX)
		assert_int_equal(msv_buf_addstr(&big, "X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"), MSV_OK);
	assert_int_equal(msv_dkim_sign(s, big.data, big.len, T0, &out, &err), MSV_E_TOO_LARGE);
	/* the signer is still usable */
	msv_buf_reset(&out);
	assert_int_equal(msv_dkim_sign(s, MSG, sizeof(MSG) - 1, T0, &out, &err), MSV_OK);
	msv_buf_free(&big);
	msv_buf_free(&out);
	msv_dkim_signer_free(s);
}

static msv_buf rsa_pem_of(unsigned bits)
{
	EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
	assert_non_null(pk);
	BIO *b = BIO_new(BIO_s_mem());
	assert_int_equal(PEM_write_bio_PrivateKey(b, pk, NULL, NULL, 0, NULL, NULL), 1);
	char *d;
	long l = BIO_get_mem_data(b, &d);
	msv_buf out;
	msv_buf_init(&out, 1 << 16);
	assert_int_equal(msv_buf_add(&out, d, (size_t)l), MSV_OK);
	BIO_free(b);
	EVP_PKEY_free(pk);
	return out;
}

static void key_checks(void **state)
{
	(void)state;
	msv_dkim_options o = MSV_DKIM_OPTIONS_INIT;
	o.domain = "example.org";
	o.selector = "sel";
	msv_dkim_signer *s = NULL;
	msv_error err;
	msv_buf small = rsa_pem_of(512);
	assert_int_equal(msv_dkim_signer_new(&s, &o, small.data, small.len, &err), MSV_E_CONFIG);
	assert_int_equal(err.cls, MSV_CLASS_CONFIG);
	assert_non_null(strstr(err.message, "1024"));
	assert_null(s);
	msv_buf_free(&small);
	msv_buf mid = rsa_pem_of(1024);
	assert_int_equal(msv_dkim_signer_new(&s, &o, mid.data, mid.len, &err), MSV_OK);
	assert_int_equal(msv_dkim_signer_warnings(s), MSV_DKIM_WARN_SHORT_KEY);
	assert_int_equal(msv_dkim_signer_key_bits(s), 1024);
	msv_dkim_signer_free(s);
	msv_buf_free(&mid);
	o.algo = MSV_DKIM_RSA_SHA256;
	assert_int_equal(msv_dkim_signer_new(&s, &o, K.ed_pem.data, K.ed_pem.len, &err), MSV_E_CONFIG);
	o.algo = MSV_DKIM_ALGO_AUTO;
	assert_int_equal(msv_dkim_signer_new(&s, &o, "garbage", 7, &err), MSV_E_CONFIG);
	assert_int_equal(msv_dkim_signer_new(&s, &o, K.ed_rec.data, K.ed_rec.len, &err), MSV_E_CONFIG);
	o.domain = "exa mple.org";
	assert_int_equal(msv_dkim_signer_new(&s, &o, K.ed_pem.data, K.ed_pem.len, &err), MSV_E_CONFIG);
	o.domain = "example.org";
	o.selector = "a;b";
	assert_int_equal(msv_dkim_signer_new(&s, &o, K.ed_pem.data, K.ed_pem.len, &err), MSV_E_CONFIG);
	o.selector = "sel";
	o.identity = "alice@other.example";
	assert_int_equal(msv_dkim_signer_new(&s, &o, K.ed_pem.data, K.ed_pem.len, &err), MSV_E_CONFIG);
	o.identity = "@example.org";
	assert_int_equal(msv_dkim_signer_new(&s, &o, K.ed_pem.data, K.ed_pem.len, &err), MSV_OK);
	msv_dkim_signer_free(s);
	o.identity = NULL;
	o.version = 99;
	assert_int_equal(msv_dkim_signer_new(&s, &o, K.ed_pem.data, K.ed_pem.len, &err), MSV_E_INVALID);
	o.version = MSV_DKIM_OPTIONS_VERSION;
	assert_int_equal(msv_dkim_signer_load(&s, &o, "/nonexistent/key.pem", &err), MSV_E_CONFIG);
	assert_non_null(strstr(err.message, "/nonexistent/key.pem"));
	/* record of a signer's key = keygen's record */
	s = signer(&K.rsa_pem, NULL);
	msv_buf rec;
	msv_buf_init(&rec, 1 << 16);
	assert_int_equal(msv_dkim_signer_record(s, &rec), MSV_OK);
	assert_string_equal(rec.data, K.rsa_rec.data);
	msv_buf_free(&rec);
	msv_dkim_signer_free(s);
}

static void records_and_txt(void **state)
{
	(void)state;
	msv_buf txt;
	msv_buf_init(&txt, 1 << 16);
	assert_int_equal(msv_dkim_dns_txt(&txt, "sel", "example.org", K.rsa_rec.data), MSV_OK);
	assert_memory_equal(txt.data, "sel._domainkey.example.org. IN TXT \"v=DKIM1; k=rsa; p=", 53);
	/* 2048-bit record: 410 octets, two strings of 255 and the rest */
	size_t strings = 0, total = 0;
	for (const char *p = strchr(txt.data, '"'); p; p = strchr(p, '"')) {
		const char *e = strchr(p + 1, '"');
		assert_true(e - p - 1 <= 255);
		total += (size_t)(e - p - 1);
		strings++;
		p = e + 1;
	}
	assert_int_equal(strings, 2);
	assert_int_equal(total, K.rsa_rec.len);
	assert_int_equal(msv_dkim_dns_txt(&txt, "bad sel", "example.org", "v=DKIM1"), MSV_E_INVALID);
	/* the zone line loads, and its name restricts the key */
	msv_dkim_key *k;
	msv_error err;
	assert_int_equal(msv_dkim_key_from_record(&k, txt.data, txt.len, &err), MSV_OK);
	msv_dkim_signer *s[2];
	msv_dkim_options o = MSV_DKIM_OPTIONS_INIT;
	o.domain = "example.org";
	o.selector = "sel";
	s[0] = signer(&K.rsa_pem, &o);
	o.selector = "other";
	s[1] = signer(&K.rsa_pem, &o);
	msv_buf out;
	msv_buf_init(&out, 1 << 16);
	assert_int_equal(msv_dkim_sign_message(s, 2, MSG, sizeof(MSG) - 1, T0, &out, &err), MSV_OK);
	const msv_dkim_key *ks[1] = {k};
	msv_dkim_verify_options vo = MSV_DKIM_VERIFY_OPTIONS_INIT;
	vo.keys = ks;
	vo.nkeys = 1;
	msv_dkim_result *res;
	size_t n;
	assert_int_equal(msv_dkim_verify(&vo, out.data, out.len, &res, &n, &err), MSV_OK);
	assert_int_equal(n, 2);
	assert_int_equal(res[0].status, MSV_DKIM_PASS);
	assert_int_equal(res[1].status, MSV_DKIM_NO_KEY);
	assert_string_equal(res[1].selector, "other");
	msv_free(res);
	msv_dkim_key_free(k);
	/* revoked key, key record restrictions, bad records */
	assert_int_equal(msv_dkim_key_from_record(&k, "v=DKIM1; p=", 11, &err), MSV_OK);
	ks[0] = k;
	assert_int_equal(msv_dkim_verify(&vo, out.data, out.len, &res, &n, &err), MSV_OK);
	assert_int_equal(res[0].status, MSV_DKIM_KEY_ERROR);
	assert_non_null(strstr(res[0].reason, "revoked"));
	msv_free(res);
	msv_dkim_key_free(k);
	static const char *const bad[] = {
		"v=DKIM2; p=AAAA", "k=dsa; p=AAAA", "v=DKIM1; k=ed25519; p=AAAA", "v=DKIM1; k=rsa; p=!!!",
		"k=rsa", "p=AAAA; v=DKIM1", "v=DKIM1; p=AAAA; p=AAAA",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		k = NULL;
		if (msv_dkim_key_from_record(&k, bad[i], strlen(bad[i]), &err) != MSV_E_CONFIG)
			fail_msg("record accepted: %s", bad[i]);
		assert_null(k);
	}
	msv_buf_free(&out);
	msv_buf_free(&txt);
	msv_dkim_signer_free(s[0]);
	msv_dkim_signer_free(s[1]);
}

static void verifier_permerrors(void **state)
{
	(void)state;
	static const struct {
		const char *sig, *why;
	} cases[] = {
		{"v=1; a=rsa-sha1; d=example.org; s=sel; h=from; bh=AAAA; b=AAAA", "rsa-sha1"},
		{"v=1; a=rsa-sha256; d=example.org; s=sel; h=subject; "
		 "bh=frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=; b=AAAA", "From"},
		{"v=2; a=rsa-sha256; d=example.org; s=sel; h=from; bh=AAAA; b=AAAA", "v="},
		{"v=1; a=rsa-sha256; d=example.org; h=from; bh=AAAA; b=AAAA", "required"},
		{"v=1; a=rsa-sha256; c=fancy; d=example.org; s=sel; h=from; bh=AAAA; b=AAAA", "canonicalization"},
		{"v=1; a=rsa-sha256; d=example.org; s=sel; h=from; bh=AAAA; b=AAAA; t=5; x=4", "x="},
		{"v=1; a=rsa-sha256; d=example.org; s=sel; h=from; i=a@evil.example; "
		 "bh=frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=; b=AAAA", "i="},
		{"v=1; a=rsa-sha256; d=example.org; s=sel; h=from; bh=short; b=AAAA", "bh="},
		{"v=1; a; b=", "'='"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char msg[1024];
		snprintf(msg, sizeof(msg), "DKIM-Signature: %s\r\nFrom: a@example.org\r\n\r\nbody\r\n", cases[i].sig);
		msv_dkim_verify_options vo = MSV_DKIM_VERIFY_OPTIONS_INIT;
		msv_dkim_result *res;
		size_t n;
		msv_error err;
		assert_int_equal(msv_dkim_verify(&vo, msg, strlen(msg), &res, &n, &err), MSV_OK);
		assert_int_equal(n, 1);
		if (res[0].status != MSV_DKIM_PERMERROR || !strstr(res[0].reason, cases[i].why))
			fail_msg("case %zu: %s (%s)", i, msv_dkim_status_name(res[0].status), res[0].reason);
		msv_free(res);
	}
	/* names and parsers */
	msv_dkim_algo a;
	msv_dkim_canon h, b;
	assert_int_equal(msv_dkim_algo_parse("ED25519", &a), 0);
	assert_int_equal(a, MSV_DKIM_ED25519_SHA256);
	assert_int_equal(msv_dkim_algo_parse("rsa-sha1", &a), -1);
	assert_int_equal(msv_dkim_canon_parse("simple/relaxed", &h, &b), 0);
	assert_int_equal(h, MSV_DKIM_SIMPLE);
	assert_int_equal(b, MSV_DKIM_RELAXED);
	assert_int_equal(msv_dkim_canon_parse("relaxed", &h, &b), -1);
	assert_string_equal(msv_dkim_status_name(MSV_DKIM_FAIL_BODY_HASH), "body_hash_mismatch");
	assert_string_equal(msv_dkim_algo_name(MSV_DKIM_RSA_SHA256), "rsa-sha256");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(defaults_and_folding),
		cmocka_unit_test(streaming_equals_oneshot_and_lf),
		cmocka_unit_test(dual_signing),
		cmocka_unit_test(options_x_i_l_headers),
		cmocka_unit_test(bad_messages),
		cmocka_unit_test(key_checks),
		cmocka_unit_test(records_and_txt),
		cmocka_unit_test(verifier_permerrors),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
