/* The DKIM vectors of the test corpus (tests/data/dkim/vectors.json): RFC 6376
 * Appendix A, RFC 8463 Appendix A (and its draft-era simple/simple
 * twin), go-msgauth's sign vectors and the 2015 Gmail message with its
 * two tampered copies.
 *
 * For each signature: our verifier gives the expected result and
 * reason; our body hash equals the corpus's; and where the private key
 * is published, signing the same header fields with the same tag text
 * (the field as found, b= emptied: tag order and folding "like the
 * file") reproduces b= exactly — both algorithms are deterministic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dkim/dkim_int.h"
#include "dkim/jsonmini.h"

#define DIR MSV_CORPUS_DIR "/dkim/"

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *b = malloc((size_t)n + 1);
	*len = fread(b, 1, (size_t)n, f);
	b[*len] = '\0';
	fclose(f);
	return b;
}

/* "keys/NAME.*" or "keys/NAME.public.pem" -> DIR "keys/NAME" + ext */
static char *key_path(const char *key, const char *ext)
{
	static char p[512];
	const char *star = strstr(key, ".*");
	if (star)
		snprintf(p, sizeof(p), "%s%.*s%s", DIR, (int)(star - key), key, ext);
	else if (!strcmp(ext, ".public.pem"))
		snprintf(p, sizeof(p), "%s%s", DIR, key);
	else
		return NULL;
	return p;
}

/* The key for a vector: the record text of .dns.txt (quoted part, so
 * no owner name restricts it: go-msgauth signs for example.org with
 * the key the RFC publishes under example.com), else the public PEM. */
static msv_dkim_key *load_key(const char *key)
{
	size_t len = 0;
	msv_dkim_key *k = NULL;
	msv_error err;
	char *p = key_path(key, ".dns.txt");
	char *txt = p ? slurp(p, &len) : NULL;
	if (txt) {
		char *q1 = strchr(txt, '"'), *q2 = q1 ? strrchr(txt, '"') : NULL;
		assert_true(q1 && q2 > q1);
		assert_int_equal(msv_dkim_key_from_record(&k, q1 + 1, (size_t)(q2 - q1 - 1), &err), MSV_OK);
		free(txt);
		return k;
	}
	char *pem = slurp(key_path(key, ".public.pem"), &len);
	assert_non_null(pem);
	assert_int_equal(msv_dkim_key_from_pem(&k, pem, len, &err), MSV_OK);
	free(pem);
	return k;
}

static void split(const char *msg, size_t len, size_t *hl, const char **body, size_t *blen)
{
	const char *e = strstr(msg, "\r\n\r\n");
	assert_non_null(e);
	*hl = (size_t)(e - msg) + 2;
	*body = e + 4;
	*blen = len - (size_t)(*body - msg);
}

/* Re-signs signature number idx (1-based) of msg with the private key
 * and compares b=. */
static void reproduce(const char *msg, size_t len, int idx, const char *keyfile, const char *file)
{
	size_t klen = 0;
	char *pem = slurp(keyfile, &klen);
	assert_non_null(pem);
	msv_dkim_options o = MSV_DKIM_OPTIONS_INIT;
	o.domain = "example.com";
	o.selector = "x";
	msv_dkim_signer *s;
	msv_error err;
	assert_int_equal(msv_dkim_signer_new(&s, &o, pem, klen, &err), MSV_OK);
	free(pem);

	size_t hl, blen, bad;
	const char *body;
	split(msg, len, &hl, &body, &blen);
	dkim_field f[64];
	long nf = msv__dkim_split_fields(msg, hl, f, 64, &bad);
	assert_true(nf > 0);
	const dkim_field *sig = NULL;
	for (long i = 0, seen = 0; i < nf && !sig; i++)
		if (msv__dkim_name_eq(f[i].p, f[i].name_len, "DKIM-Signature") && ++seen == idx)
			sig = &f[i];
	assert_non_null(sig);
	const char *colon = memchr(sig->p, ':', sig->len);
	const char *val = colon + 1;
	size_t vlen = sig->len - 2 - (size_t)(val - sig->p);
	dkim_tag t[DKIM_TAGS_MAX];
	const char *why;
	long nt = msv__dkim_parse_tags(val, vlen, t, DKIM_TAGS_MAX, &why);
	assert_true(nt > 0);
	const dkim_tag *tb = msv__dkim_find_tag(t, (size_t)nt, "b"), *th = msv__dkim_find_tag(t, (size_t)nt, "h"),
	               *tc = msv__dkim_find_tag(t, (size_t)nt, "c");
	msv_dkim_canon hc = tc && !strncmp(tc->value, "relaxed", 7) ? MSV_DKIM_RELAXED : MSV_DKIM_SIMPLE;
	/* the field, b= emptied */
	char prefix[4096];
	size_t off = (size_t)(val - sig->p);
	size_t pl = off + tb->value_start;
	memcpy(prefix, sig->p, pl);
	memcpy(prefix + pl, val + tb->value_end, vlen - tb->value_end);
	pl += vlen - tb->value_end;
	/* h=: bottom-up, each instance once */
	const dkim_field *chosen[64];
	size_t nc = 0;
	int used[64] = {0};
	char hv[512];
	assert_true(th->value_len < sizeof(hv));
	memcpy(hv, th->value, th->value_len);
	hv[th->value_len] = '\0';
	for (char *save = NULL, *name = strtok_r(hv, ": \t\r\n", &save); name;
	     name = strtok_r(NULL, ": \t\r\n", &save)) {
		for (long i = nf; i-- > 0;) {
			if (!used[i] && msv__dkim_name_eq(f[i].p, f[i].name_len, name)) {
				used[i] = 1;
				chosen[nc++] = &f[i];
				break;
			}
		}
	}
	msv_buf raw, b64, want;
	msv_buf_init(&raw, 4096);
	msv_buf_init(&b64, 4096);
	msv_buf_init(&want, 4096);
	assert_int_equal(msv__dkim_sign_fields(s, hc, chosen, nc, prefix, pl, &raw, &err), MSV_OK);
	assert_int_equal(msv_base64_encode(&b64, raw.data, raw.len), MSV_OK);
	for (size_t i = 0; i < tb->value_len; i++)
		if (!strchr(" \t\r\n", tb->value[i]))
			assert_int_equal(msv_buf_addc(&want, tb->value[i]), MSV_OK);
	if (strcmp(b64.data, want.data))
		fail_msg("%s signature %d: b= not reproduced\n got  %s\n want %s", file, idx, b64.data, want.data);
	msv_buf_free(&raw);
	msv_buf_free(&b64);
	msv_buf_free(&want);
	msv_dkim_signer_free(s);
}

static void corpus_vectors(void **state)
{
	(void)state;
	jn root;
	assert_int_equal(jn_load(DIR "vectors.json", &root), 0);
	size_t sigs = 0, reproduced = 0, unsigned_checked = 0;
	for (size_t i = 0; i < root.nkids; i++) {
		const jn *v = &root.kids[i];
		const char *file = jn_get(v, "file")->str;
		char path[512];
		snprintf(path, sizeof(path), "%s%s", DIR, file);
		size_t len = 0;
		char *msg = slurp(path, &len);
		assert_non_null(msg);
		int idx = (int)jn_get(v, "signature_index")->num;
		size_t hl, blen;
		const char *body;
		split(msg, len, &hl, &body, &blen);
		msv_buf bh;
		msv_buf_init(&bh, 64);
		if (idx == 0) { /* unsigned: both body hashes */
			assert_int_equal(msv__dkim_body_hash(MSV_DKIM_SIMPLE, body, blen, UINT64_MAX, &bh), MSV_OK);
			assert_string_equal(bh.data, jn_get(v, "bh_simple")->str);
			msv_buf_reset(&bh);
			assert_int_equal(msv__dkim_body_hash(MSV_DKIM_RELAXED, body, blen, UINT64_MAX, &bh), MSV_OK);
			assert_string_equal(bh.data, jn_get(v, "bh_relaxed")->str);
			msv_dkim_verify_options vo = MSV_DKIM_VERIFY_OPTIONS_INIT;
			msv_dkim_result *res = NULL;
			size_t n = 99;
			msv_error err;
			assert_int_equal(msv_dkim_verify(&vo, msg, len, &res, &n, &err), MSV_OK);
			assert_int_equal(n, 0);
			assert_null(res);
			unsigned_checked++;
			msv_buf_free(&bh);
			free(msg);
			continue;
		}
		const char *c = jn_get(v, "c")->str;
		msv_dkim_canon bc = strstr(c, "/relaxed") ? MSV_DKIM_RELAXED : MSV_DKIM_SIMPLE;
		assert_int_equal(msv__dkim_body_hash(bc, body, blen, UINT64_MAX, &bh), MSV_OK);
		assert_string_equal(bh.data, jn_get(v, "computed_bh")->str);
		msv_buf_free(&bh);

		const char *key = jn_get(v, "key")->str;
		msv_dkim_key *k = load_key(key);
		const msv_dkim_key *keys[1] = {k};
		msv_dkim_verify_options vo = MSV_DKIM_VERIFY_OPTIONS_INIT;
		vo.keys = keys;
		vo.nkeys = 1;
		msv_dkim_result *res = NULL;
		size_t n = 0;
		msv_error err;
		assert_int_equal(msv_dkim_verify(&vo, msg, len, &res, &n, &err), MSV_OK);
		assert_true(n >= (size_t)idx);
		const msv_dkim_result *r = &res[idx - 1];
		assert_string_equal(r->domain, jn_get(v, "d")->str);
		assert_string_equal(r->selector, jn_get(v, "s")->str);
		assert_string_equal(r->algo, jn_get(v, "a")->str);
		const char *expected = jn_get(v, "expected_result")->str;
		msv_dkim_status want = MSV_DKIM_PASS;
		if (!strcmp(expected, "fail"))
			want = jn_get(v, "body_hash_ok")->boolean ? MSV_DKIM_FAIL_SIGNATURE : MSV_DKIM_FAIL_BODY_HASH;
		if (r->status != want)
			fail_msg("%s signature %d: %s (%s), want %s", file, idx, msv_dkim_status_name(r->status), r->reason,
			         msv_dkim_status_name(want));
		const char *t = jn_get(v, "t")->str;
		assert_int_equal(r->timestamp, *t ? strtoll(t, NULL, 10) : -1);
		msv_free(res);
		msv_dkim_key_free(k);
		sigs++;

		char *priv = key_path(key, ".private.pem");
		FILE *pf = priv ? fopen(priv, "rb") : NULL;
		if (pf) {
			fclose(pf);
			reproduce(msg, len, idx, priv, file);
			reproduced++;
		}
		free(msg);
	}
	assert_int_equal(sigs, 10);
	assert_int_equal(reproduced, 7); /* all but the three Gmail ones (no private key) */
	assert_int_equal(unsigned_checked, 3);
	jn_free(&root);
}

/* go-msgauth's sign vectors through the public API: the same body hash,
 * and our own field (our tag order) verifies. */
static void gomsgauth_through_api(void **state)
{
	(void)state;
	static const struct {
		const char *key, *domain, *signed_file;
	} v[] = {
		{"keys/rfc6376-brisbane-rsa1024.private.pem", "example.org",
		 "vectors/gomsgauth-sign-rsa-simple-t424242.signed.eml"},
		{"keys/rfc8463-brisbane-ed25519.private.pem", "football.example.com",
		 "vectors/gomsgauth-sign-ed25519-simple-t424242.signed.eml"},
	};
	size_t len = 0, klen = 0, slen = 0;
	char *msg = slurp(DIR "vectors/gomsgauth-sign.unsigned.eml", &len);
	for (size_t i = 0; i < 2; i++) {
		char path[512];
		snprintf(path, sizeof(path), "%s%s", DIR, v[i].key);
		char *pem = slurp(path, &klen);
		snprintf(path, sizeof(path), "%s%s", DIR, v[i].signed_file);
		char *signed_msg = slurp(path, &slen);
		msv_dkim_options o = MSV_DKIM_OPTIONS_INIT;
		o.domain = v[i].domain;
		o.selector = "brisbane";
		o.header_canon = o.body_canon = MSV_DKIM_SIMPLE;
		o.headers = "From:To:Subject:Date:Message-ID";
		o.no_oversign = 1;
		msv_dkim_signer *s;
		msv_error err;
		assert_int_equal(msv_dkim_signer_new(&s, &o, pem, klen, &err), MSV_OK);
		msv_buf out;
		msv_buf_init(&out, 1 << 16);
		assert_int_equal(msv_dkim_sign_message(&s, 1, msg, len, 424242, &out, &err), MSV_OK);
		/* same bh= as the vector */
		const char *want = strstr(signed_msg, "bh="), *got = strstr(out.data, "bh=");
		assert_memory_equal(want, got, 3 + 44);
		char unfolded[4096];
		size_t ul = 0;
		for (size_t k = 0; k < out.len && ul + 1 < sizeof(unfolded); k++) {
			if (out.data[k] == '\r' && out.data[k + 1] == '\n' && out.data[k + 2] == ' ')
				k += 2; /* drop the fold, keep nothing of it */
			else
				unfolded[ul++] = out.data[k];
		}
		unfolded[ul] = '\0';
		assert_non_null(strstr(unfolded, "t=424242;"));
		assert_non_null(strstr(unfolded, "h=From:To:Subject:Date:Message-ID;"));
		/* and verifies with the public half */
		msv_dkim_key *k;
		assert_int_equal(msv_dkim_key_from_pem(&k, pem, klen, &err), MSV_OK);
		const msv_dkim_key *keys[1] = {k};
		msv_dkim_verify_options vo = MSV_DKIM_VERIFY_OPTIONS_INIT;
		vo.keys = keys;
		vo.nkeys = 1;
		msv_dkim_result *res;
		size_t n;
		assert_int_equal(msv_dkim_verify(&vo, out.data, out.len, &res, &n, &err), MSV_OK);
		assert_int_equal(n, 1);
		assert_int_equal(res[0].status, MSV_DKIM_PASS);
		msv_free(res);
		msv_dkim_key_free(k);
		msv_buf_free(&out);
		msv_dkim_signer_free(s);
		free(pem);
		free(signed_msg);
	}
	free(msg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(corpus_vectors),
		cmocka_unit_test(gomsgauth_through_api),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
