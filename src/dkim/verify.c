/*
 * DKIM verification: RFC 6376 section 6 (verifier actions) with keys
 * given by the caller (no DNS), RFC 8463 (ed25519-sha256), RFC 8301
 * (rsa-sha1 and RSA keys under 1024 bits are not acceptable).
 *
 * Meant for tests and operators checking their own signing, not as a
 * receiving MTA's policy engine: it reports per signature what is
 * wrong and leaves the decision to the caller.
 */
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/rsa.h>

#include "core/core_int.h"
#include "dkim/dkim_int.h"

#define FIELDS_MAX 2000

const char *msv_dkim_status_name(msv_dkim_status s)
{
	switch (s) {
	case MSV_DKIM_PASS: return "pass";
	case MSV_DKIM_FAIL_BODY_HASH: return "body_hash_mismatch";
	case MSV_DKIM_FAIL_SIGNATURE: return "signature_mismatch";
	case MSV_DKIM_FAIL_EXPIRED: return "expired";
	case MSV_DKIM_PERMERROR: return "permerror";
	case MSV_DKIM_NO_KEY: return "no_key";
	case MSV_DKIM_KEY_ERROR: return "key_error";
	}
	return "unknown";
}

static int set(msv_dkim_result *res, msv_dkim_status st, const char *why)
{
	res->status = st;
	msv_sanitize(res->reason, sizeof(res->reason), why, strlen(why));
	return 0;
}

static void copy_tag(char *dst, size_t n, const dkim_tag *t)
{
	if (t)
		msv_sanitize(dst, n, t->value, t->value_len);
	else
		dst[0] = '\0';
}

/* Decimal number of at most maxd digits. */
static int tag_number(const dkim_tag *t, unsigned maxd, uint64_t *out)
{
	if (!t || !t->value_len || t->value_len > maxd)
		return -1;
	uint64_t v = 0;
	for (size_t i = 0; i < t->value_len; i++) {
		if (t->value[i] < '0' || t->value[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(t->value[i] - '0');
	}
	*out = v;
	return 0;
}

static int canon_part(const char *p, size_t n, msv_dkim_canon *c)
{
	if (n == 6 && !memcmp(p, "simple", 6))
		*c = MSV_DKIM_SIMPLE;
	else if (n == 7 && !memcmp(p, "relaxed", 7))
		*c = MSV_DKIM_RELAXED;
	else
		return -1;
	return 0;
}

static int md_sink(void *arg, const char *p, size_t n)
{
	return EVP_DigestUpdate((EVP_MD_CTX *)arg, p, n) == 1 ? 0 : -1;
}

static int body_digest(msv_dkim_canon c, const char *body, size_t len, uint64_t limit, unsigned char dg[32],
                       uint64_t *total)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md || EVP_DigestInit_ex2(md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(md);
		return -1;
	}
	dkim_body *b = msv_malloc(sizeof(*b));
	if (!b) {
		EVP_MD_CTX_free(md);
		return -1;
	}
	msv__dkim_body_init(b, c, 0, limit, md_sink, md);
	msv__dkim_body_feed(b, body, len);
	unsigned dl = 0;
	int bad = msv__dkim_body_end(b) || EVP_DigestFinal_ex(md, dg, &dl) != 1 || dl != 32;
	*total = b->total;
	msv_free(b);
	EVP_MD_CTX_free(md);
	return bad ? -1 : 0;
}

static int check_sig(EVP_PKEY *pk, int kind, const unsigned char dg[32], const msv_buf *sig)
{
	int ok = 0;
	if (kind == MSV_DKIM_RSA_SHA256) {
		EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
		ok = c && EVP_PKEY_verify_init(c) == 1 && EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PADDING) == 1 &&
		     EVP_PKEY_CTX_set_signature_md(c, EVP_sha256()) == 1 &&
		     EVP_PKEY_verify(c, (const unsigned char *)sig->data, sig->len, dg, 32) == 1;
		EVP_PKEY_CTX_free(c);
	} else {
		EVP_MD_CTX *m = EVP_MD_CTX_new();
		ok = m && EVP_DigestVerifyInit_ex(m, NULL, NULL, NULL, NULL, pk, NULL) == 1 &&
		     EVP_DigestVerify(m, (const unsigned char *)sig->data, sig->len, dg, 32) == 1;
		EVP_MD_CTX_free(m);
	}
	ERR_clear_error();
	return ok;
}

typedef struct vctx {
	const msv_dkim_verify_options *o;
	const dkim_field *fields;
	size_t nf;
	const char *body;
	size_t blen;
	unsigned char *used;
	msv_buf canon, sig, bh, field;
} vctx;

/* Returns -1 only for out-of-memory; everything else is a result. */

static int hname_sep(char c)
{
	return c == ':' || c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The next field name of an h= list: [*s, *i).  0 at the end. */
static int next_hname(const char *v, size_t n, size_t *i, size_t *s)
{
	while (*i < n && hname_sep(v[*i]))
		(*i)++;
	*s = *i;
	while (*i < n && !hname_sep(v[*i]))
		(*i)++;
	return *i > *s;
}

static int verify_one(vctx *v, const dkim_field *f, msv_dkim_result *res)
{
	const char *colon = memchr(f->p, ':', f->len);
	size_t flen = f->len;
	if (flen >= 2 && f->p[flen - 2] == '\r' && f->p[flen - 1] == '\n')
		flen -= 2;
	const char *val = colon + 1;
	size_t vlen = flen - (size_t)(val - f->p);
	dkim_tag tags[DKIM_TAGS_MAX];
	const char *why = NULL;
	long nt = msv__dkim_parse_tags(val, vlen, tags, DKIM_TAGS_MAX, &why);
	if (nt < 0)
		return set(res, MSV_DKIM_PERMERROR, why);
	size_t n = (size_t)nt;
	const dkim_tag *tv = msv__dkim_find_tag(tags, n, "v"), *ta = msv__dkim_find_tag(tags, n, "a"),
	               *tb = msv__dkim_find_tag(tags, n, "b"), *tbh = msv__dkim_find_tag(tags, n, "bh"),
	               *tc = msv__dkim_find_tag(tags, n, "c"), *td = msv__dkim_find_tag(tags, n, "d"),
	               *th = msv__dkim_find_tag(tags, n, "h"), *ti = msv__dkim_find_tag(tags, n, "i"),
	               *tl = msv__dkim_find_tag(tags, n, "l"), *ts = msv__dkim_find_tag(tags, n, "s"),
	               *tt = msv__dkim_find_tag(tags, n, "t"), *tx = msv__dkim_find_tag(tags, n, "x");
	copy_tag(res->domain, sizeof(res->domain), td);
	copy_tag(res->selector, sizeof(res->selector), ts);
	copy_tag(res->algo, sizeof(res->algo), ta);
	if (tc)
		copy_tag(res->canon, sizeof(res->canon), tc);
	else
		memcpy(res->canon, "simple/simple", 14);
	uint64_t t = 0, x = 0, l = 0;
	if (tt && tag_number(tt, 12, &t))
		return set(res, MSV_DKIM_PERMERROR, "t= is not a number");
	if (tx && tag_number(tx, 12, &x))
		return set(res, MSV_DKIM_PERMERROR, "x= is not a number");
	res->timestamp = tt ? (int64_t)t : -1;
	res->expires = tx ? (int64_t)x : -1;
	if (!tv || tv->value_len != 1 || tv->value[0] != '1')
		return set(res, MSV_DKIM_PERMERROR, "v= is missing or not 1");
	if (!ta || !tb || !tbh || !td || !th || !ts)
		return set(res, MSV_DKIM_PERMERROR, "a required tag (a, b, bh, d, h, s) is missing");
	int kind;
	if (ta->value_len == 10 && !memcmp(ta->value, "rsa-sha256", 10))
		kind = MSV_DKIM_RSA_SHA256;
	else if (ta->value_len == 14 && !memcmp(ta->value, "ed25519-sha256", 14))
		kind = MSV_DKIM_ED25519_SHA256;
	else if (ta->value_len == 8 && !memcmp(ta->value, "rsa-sha1", 8))
		return set(res, MSV_DKIM_PERMERROR, "rsa-sha1 is not acceptable (RFC 8301)");
	else
		return set(res, MSV_DKIM_PERMERROR, "unknown signing algorithm a=");
	msv_dkim_canon hc = MSV_DKIM_SIMPLE, bc = MSV_DKIM_SIMPLE;
	if (tc) {
		const char *sl = memchr(tc->value, '/', tc->value_len);
		size_t hl = sl ? (size_t)(sl - tc->value) : tc->value_len;
		if (canon_part(tc->value, hl, &hc) ||
		    (sl && canon_part(sl + 1, tc->value_len - hl - 1, &bc)))
			return set(res, MSV_DKIM_PERMERROR, "unknown canonicalization c=");
	}
	if (tl && tag_number(tl, 20, &l))
		return set(res, MSV_DKIM_PERMERROR, "l= is not a number");
	if (tt && tx && x < t)
		return set(res, MSV_DKIM_PERMERROR, "x= is earlier than t=");
	/* h= must cover From (RFC 6376 6.1.1). */
	int has_from = 0;
	for (size_t i = 0, s; next_hname(th->value, th->value_len, &i, &s);) {
		if (msv__dkim_name_eq(th->value + s, i - s, "from"))
			has_from = 1;
	}
	if (!has_from)
		return set(res, MSV_DKIM_PERMERROR, "h= does not include From");
	const char *auid_domain = NULL;
	char auid[256];
	if (ti) {
		const char *at = NULL;
		for (size_t k = ti->value_len; k-- > 0 && !at;)
			if (ti->value[k] == '@')
				at = ti->value + k;
		size_t dl = at ? ti->value_len - (size_t)(at + 1 - ti->value) : 0;
		if (!at || !dl || dl >= sizeof(auid))
			return set(res, MSV_DKIM_PERMERROR, "i= is not an address");
		memcpy(auid, at + 1, dl);
		auid[dl] = '\0';
		size_t sl = strlen(res->domain);
		if (!(dl == sl && !strcasecmp(auid, res->domain)) &&
		    !(dl > sl && auid[dl - sl - 1] == '.' && !strcasecmp(auid + dl - sl, res->domain)))
			return set(res, MSV_DKIM_PERMERROR, "i= is not in the d= domain");
		auid_domain = auid;
	}
	msv_buf_reset(&v->sig);
	msv_buf_reset(&v->bh);
	if (msv__dkim_b64_decode_fws(&v->bh, tbh->value, tbh->value_len) || v->bh.len != 32)
		return set(res, MSV_DKIM_PERMERROR, "bh= is not the base64 of a SHA-256 digest");
	if (msv__dkim_b64_decode_fws(&v->sig, tb->value, tb->value_len) || !v->sig.len)
		return set(res, MSV_DKIM_PERMERROR, "b= is not base64");

	const msv_dkim_key *key = NULL;
	for (size_t i = 0; !key && i < v->o->nkeys; i++)
		if (v->o->keys[i] && msv__dkim_key_matches(v->o->keys[i], res->selector, res->domain, kind))
			key = v->o->keys[i];
	if (!key)
		return set(res, MSV_DKIM_NO_KEY, "no key was given for this selector, domain and algorithm");
	const char *bad = msv__dkim_key_unusable(key, res->domain, auid_domain);
	if (bad)
		return set(res, MSV_DKIM_KEY_ERROR, bad);

	if (tx) {
		int64_t now = v->o->now > 0 ? v->o->now : (int64_t)time(NULL);
		if ((int64_t)x < now)
			return set(res, MSV_DKIM_FAIL_EXPIRED, "the signature has expired (x= is in the past)");
	}

	unsigned char dg[32];
	uint64_t total = 0;
	if (body_digest(bc, v->body, v->blen, tl ? l : UINT64_MAX, dg, &total))
		return -1;
	if (tl && l > total)
		return set(res, MSV_DKIM_FAIL_BODY_HASH, "l= is longer than the body");
	if (memcmp(dg, v->bh.data, 32))
		return set(res, MSV_DKIM_FAIL_BODY_HASH, "body hash mismatch: the body is not the one signed");

	/* Header hash: the listed fields, each name taking the last instance
	 * not yet used (RFC 6376 5.4.2); absent ones contribute nothing. */
	msv_buf_reset(&v->canon);
	memset(v->used, 0, v->nf);
	for (size_t i = 0, s; next_hname(th->value, th->value_len, &i, &s);) {
		char name[256];
		if (i - s >= sizeof(name))
			continue;
		memcpy(name, th->value + s, i - s);
		name[i - s] = '\0';
		for (size_t k = v->nf; k-- > 0;) {
			if (v->used[k] || !msv__dkim_name_eq(v->fields[k].p, v->fields[k].name_len, name))
				continue;
			v->used[k] = 1;
			if (msv__dkim_header_canon(&v->canon, hc, v->fields[k].p, v->fields[k].len, 0))
				return -1;
			break;
		}
	}
	/* The signature field itself, b= emptied (RFC 6376 3.7). */
	size_t off = (size_t)(val - f->p);
	msv_buf_reset(&v->field);
	if (msv_buf_add(&v->field, f->p, off + tb->value_start) ||
	    msv_buf_add(&v->field, val + tb->value_end, vlen - tb->value_end) ||
	    msv__dkim_header_canon(&v->canon, hc, v->field.data, v->field.len, 1))
		return -1;
	unsigned char hd[32];
	unsigned hl = 0;
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	int ok = m && EVP_DigestInit_ex2(m, EVP_sha256(), NULL) == 1 &&
	         EVP_DigestUpdate(m, v->canon.data, v->canon.len) == 1 && EVP_DigestFinal_ex(m, hd, &hl) == 1;
	EVP_MD_CTX_free(m);
	if (!ok)
		return -1;
	if (!check_sig(msv__dkim_key_pkey(key), kind, hd, &v->sig))
		return set(res, MSV_DKIM_FAIL_SIGNATURE,
		           "signature mismatch: a signed header field changed, or another key signed");
	res->status = MSV_DKIM_PASS;
	res->reason[0] = '\0';
	return 0;
}

static int buf_sink(void *arg, const char *p, size_t n)
{
	return msv_buf_add((msv_buf *)arg, p, n) ? -1 : 0;
}

msv_result msv_dkim_verify(const msv_dkim_verify_options *o, const char *msg, size_t len, msv_dkim_result **out,
                           size_t *count, msv_error *err)
{
	msv_error dummy;
	if (!err)
		err = &dummy;
	if (o && !msv__version_ok(o->version, MSV_DKIM_VERIFY_OPTIONS_VERSION))
		return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE,
		                     "msv_dkim_verify_options: version %u is not between 1 and %u", o->version,
		                     MSV_DKIM_VERIFY_OPTIONS_VERSION);
	if (!o || (!msg && len) || !out || !count || (o->nkeys && !o->keys))
		return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE, "bad DKIM verification arguments");
	*out = NULL;
	*count = 0;
	size_t cap;
	if (msv_mul_size(&cap, len, 2) || msv_add_size(&cap, cap, 4))
		return msv_error_set(err, MSV_E_TOO_LARGE, MSV_CLASS_USAGE, "message too large");
	msv_buf m;
	msv_buf_init(&m, cap);
	dkim_norm nm;
	msv__dkim_norm_init(&nm, 0);
	if (msv_buf_reserve(&m, len + 4) || msv__dkim_norm_feed(&nm, msg ? msg : "", len, buf_sink, &m) ||
	    msv__dkim_norm_end(&nm, buf_sink, &m))
		return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
	const char *d = m.data;
	size_t hl = 0, bs = m.len;
	if (m.len >= 2 && d[0] == '\r' && d[1] == '\n') {
		bs = 2;
	} else {
		const char *e = msv__dkim_memmem(d, m.len, "\r\n\r\n", 4);
		if (e) {
			hl = (size_t)(e - d) + 2;
			bs = hl + 2;
		} else {
			hl = m.len;
		}
	}
	msv_result r = MSV_OK;
	vctx v;
	memset(&v, 0, sizeof(v));
	v.o = o;
	msv_buf_init(&v.canon, MSV_DKIM_HEADER_BLOCK_MAX * 2);
	msv_buf_init(&v.sig, 8192);
	msv_buf_init(&v.bh, 64);
	msv_buf_init(&v.field, MSV_DKIM_HEADER_BLOCK_MAX);
	dkim_field *fields = NULL;
	msv_dkim_result *res = NULL;
	if (hl > MSV_DKIM_HEADER_BLOCK_MAX) {
		r = msv_error_set(err, MSV_E_TOO_LARGE, MSV_CLASS_USAGE, "the header block is larger than %zu bytes",
		                  (size_t)MSV_DKIM_HEADER_BLOCK_MAX);
		goto done;
	}
	fields = msv_calloc(FIELDS_MAX, sizeof(*fields));
	v.used = msv_malloc(FIELDS_MAX);
	res = msv_calloc(MSV_DKIM_VERIFY_MAX_SIGNATURES, sizeof(*res));
	if (!fields || !v.used || !res) {
		r = msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
		goto done;
	}
	size_t bad = 0;
	long nf = msv__dkim_split_fields(d, hl, fields, FIELDS_MAX, &bad);
	if (nf < 0) {
		r = msv_error_set(err, MSV_E_BAD_MESSAGE, MSV_CLASS_USAGE,
		                  "header line %zu is not a header field (or more than %d fields)", bad, FIELDS_MAX);
		goto done;
	}
	v.fields = fields;
	v.nf = (size_t)nf;
	v.body = d + bs;
	v.blen = m.len > bs ? m.len - bs : 0;
	size_t ns = 0;
	for (size_t i = 0; i < v.nf && ns < MSV_DKIM_VERIFY_MAX_SIGNATURES; i++) {
		if (!msv__dkim_name_eq(fields[i].p, fields[i].name_len, "DKIM-Signature"))
			continue;
		msv_dkim_result *x = &res[ns++];
		x->timestamp = x->expires = -1;
		if (verify_one(&v, &fields[i], x)) {
			r = msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory verifying a signature");
			goto done;
		}
	}
	if (ns) {
		*out = res;
		*count = ns;
		res = NULL;
	}
done:
	msv_free(res);
	msv_free(fields);
	msv_free(v.used);
	msv_buf_free(&v.canon);
	msv_buf_free(&v.sig);
	msv_buf_free(&v.bh);
	msv_buf_free(&v.field);
	msv_buf_free(&m);
	return r;
}
