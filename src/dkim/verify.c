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

/* One DKIM-Signature field: its tags, and what verify_one learns from
 * them on the way.  Tag pointers point into tags[]. */
typedef struct vsig {
	const char *val; /* the field's value: after the colon, */
	size_t vlen;     /* without the final CRLF */
	dkim_tag tags[DKIM_TAGS_MAX];
	const dkim_tag *a, *b, *bh, *c, *d, *h, *i, *l, *s, *t, *v, *x;
	uint64_t t_val, x_val, l_val;
	int kind; /* MSV_DKIM_RSA_SHA256 or MSV_DKIM_ED25519_SHA256 */
	msv_dkim_canon hc, bc;
	const char *auid_domain; /* the domain of i=, NULL without i= */
	char auid[256];
} vsig;

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

/* Parses the tag list, and copies d=, s=, a=, c=, t= and x= into the
 * result: they are reported even for a signature that is refused.
 * Returns why the field is malformed, or NULL. */
static const char *read_tags(vsig *sg, const dkim_field *f, msv_dkim_result *res)
{
	const char *colon = memchr(f->p, ':', f->len);
	size_t flen = f->len;
	if (flen >= 2 && f->p[flen - 2] == '\r' && f->p[flen - 1] == '\n')
		flen -= 2;
	sg->val = colon + 1;
	sg->vlen = flen - (size_t)(sg->val - f->p);
	const char *why = NULL;
	long nt = msv__dkim_parse_tags(sg->val, sg->vlen, sg->tags, DKIM_TAGS_MAX, &why);
	if (nt < 0)
		return why;
	const dkim_tag *tags = sg->tags;
	size_t n = (size_t)nt;
	sg->v = msv__dkim_find_tag(tags, n, "v");
	sg->a = msv__dkim_find_tag(tags, n, "a");
	sg->b = msv__dkim_find_tag(tags, n, "b");
	sg->bh = msv__dkim_find_tag(tags, n, "bh");
	sg->c = msv__dkim_find_tag(tags, n, "c");
	sg->d = msv__dkim_find_tag(tags, n, "d");
	sg->h = msv__dkim_find_tag(tags, n, "h");
	sg->i = msv__dkim_find_tag(tags, n, "i");
	sg->l = msv__dkim_find_tag(tags, n, "l");
	sg->s = msv__dkim_find_tag(tags, n, "s");
	sg->t = msv__dkim_find_tag(tags, n, "t");
	sg->x = msv__dkim_find_tag(tags, n, "x");
	copy_tag(res->domain, sizeof(res->domain), sg->d);
	copy_tag(res->selector, sizeof(res->selector), sg->s);
	copy_tag(res->algo, sizeof(res->algo), sg->a);
	if (sg->c)
		copy_tag(res->canon, sizeof(res->canon), sg->c);
	else
		memcpy(res->canon, "simple/simple", 14);
	if (sg->t && tag_number(sg->t, 12, &sg->t_val))
		return "t= is not a number";
	if (sg->x && tag_number(sg->x, 12, &sg->x_val))
		return "x= is not a number";
	res->timestamp = sg->t ? (int64_t)sg->t_val : -1;
	res->expires = sg->x ? (int64_t)sg->x_val : -1;
	return NULL;
}

/* a= and c=: the key type and the two canonicalizations. */
static const char *read_algo(vsig *sg)
{
	const dkim_tag *ta = sg->a, *tc = sg->c;
	if (ta->value_len == 10 && !memcmp(ta->value, "rsa-sha256", 10))
		sg->kind = MSV_DKIM_RSA_SHA256;
	else if (ta->value_len == 14 && !memcmp(ta->value, "ed25519-sha256", 14))
		sg->kind = MSV_DKIM_ED25519_SHA256;
	else if (ta->value_len == 8 && !memcmp(ta->value, "rsa-sha1", 8))
		return "rsa-sha1 is not acceptable (RFC 8301)";
	else
		return "unknown signing algorithm a=";
	sg->hc = sg->bc = MSV_DKIM_SIMPLE;
	if (tc) {
		const char *sl = memchr(tc->value, '/', tc->value_len);
		size_t hl = sl ? (size_t)(sl - tc->value) : tc->value_len;
		if (canon_part(tc->value, hl, &sg->hc) ||
		    (sl && canon_part(sl + 1, tc->value_len - hl - 1, &sg->bc)))
			return "unknown canonicalization c=";
	}
	return NULL;
}

/* h= must cover From (RFC 6376 6.1.1). */
static int covers_from(const dkim_tag *th)
{
	int has_from = 0;
	for (size_t i = 0, s; next_hname(th->value, th->value_len, &i, &s);) {
		if (msv__dkim_name_eq(th->value + s, i - s, "from"))
			has_from = 1;
	}
	return has_from;
}

/* i=: an address whose domain is d= or a subdomain of it (RFC 6376
 * 3.5); its domain is kept for the key's t=s flag. */
static const char *read_auid(vsig *sg, const msv_dkim_result *res)
{
	const dkim_tag *ti = sg->i;
	if (!ti)
		return NULL;
	const char *at = NULL;
	for (size_t k = ti->value_len; k-- > 0 && !at;)
		if (ti->value[k] == '@')
			at = ti->value + k;
	size_t dl = at ? ti->value_len - (size_t)(at + 1 - ti->value) : 0;
	if (!at || !dl || dl >= sizeof(sg->auid))
		return "i= is not an address";
	char *auid = sg->auid;
	memcpy(auid, at + 1, dl);
	auid[dl] = '\0';
	size_t sl = strlen(res->domain);
	if (!(dl == sl && !strcasecmp(auid, res->domain)) &&
	    !(dl > sl && auid[dl - sl - 1] == '.' && !strcasecmp(auid + dl - sl, res->domain)))
		return "i= is not in the d= domain";
	sg->auid_domain = auid;
	return NULL;
}

/* Everything that makes a signature malformed, in the order the
 * reasons are reported.  Returns the reason, or NULL. */
static const char *check_tags(vctx *v, vsig *sg, const msv_dkim_result *res)
{
	if (!sg->v || sg->v->value_len != 1 || sg->v->value[0] != '1')
		return "v= is missing or not 1";
	if (!sg->a || !sg->b || !sg->bh || !sg->d || !sg->h || !sg->s)
		return "a required tag (a, b, bh, d, h, s) is missing";
	const char *why = read_algo(sg);
	if (why)
		return why;
	if (sg->l && tag_number(sg->l, 20, &sg->l_val))
		return "l= is not a number";
	if (sg->t && sg->x && sg->x_val < sg->t_val)
		return "x= is earlier than t=";
	if (!covers_from(sg->h))
		return "h= does not include From";
	if ((why = read_auid(sg, res)) != NULL)
		return why;
	msv_buf_reset(&v->sig);
	msv_buf_reset(&v->bh);
	if (msv__dkim_b64_decode_fws(&v->bh, sg->bh->value, sg->bh->value_len) || v->bh.len != 32)
		return "bh= is not the base64 of a SHA-256 digest";
	if (msv__dkim_b64_decode_fws(&v->sig, sg->b->value, sg->b->value_len) || !v->sig.len)
		return "b= is not base64";
	return NULL;
}

static const msv_dkim_key *find_key(const vctx *v, const msv_dkim_result *res, int kind)
{
	const msv_dkim_key *key = NULL;
	for (size_t i = 0; !key && i < v->o->nkeys; i++)
		if (v->o->keys[i] && msv__dkim_key_matches(v->o->keys[i], res->selector, res->domain, kind))
			key = v->o->keys[i];
	return key;
}

/* Compares the body hash with bh=.  Returns 1 when it matches, 0 when
 * res says why not, -1 when out of memory. */
static int check_body(vctx *v, const vsig *sg, msv_dkim_result *res)
{
	unsigned char dg[32];
	uint64_t total = 0;
	if (body_digest(sg->bc, v->body, v->blen, sg->l ? sg->l_val : UINT64_MAX, dg, &total))
		return -1;
	if (sg->l && sg->l_val > total)
		return set(res, MSV_DKIM_FAIL_BODY_HASH, "l= is longer than the body");
	if (memcmp(dg, v->bh.data, 32))
		return set(res, MSV_DKIM_FAIL_BODY_HASH, "body hash mismatch: the body is not the one signed");
	return 1;
}

/* The fields h= lists into v->canon, each name taking the last instance
 * not yet used (RFC 6376 5.4.2); absent ones contribute nothing. */
static int add_signed_fields(vctx *v, const vsig *sg)
{
	const dkim_tag *th = sg->h;
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
			if (msv__dkim_header_canon(&v->canon, sg->hc, v->fields[k].p, v->fields[k].len, 0))
				return -1;
			break;
		}
	}
	return 0;
}

/* The header hash: the signed fields, then the signature field itself
 * with b= emptied (RFC 6376 3.7).  -1 when out of memory. */
static int header_hash(vctx *v, const vsig *sg, const dkim_field *f, unsigned char hd[32])
{
	if (add_signed_fields(v, sg))
		return -1;
	size_t off = (size_t)(sg->val - f->p);
	msv_buf_reset(&v->field);
	if (msv_buf_add(&v->field, f->p, off + sg->b->value_start) ||
	    msv_buf_add(&v->field, sg->val + sg->b->value_end, sg->vlen - sg->b->value_end) ||
	    msv__dkim_header_canon(&v->canon, sg->hc, v->field.data, v->field.len, 1))
		return -1;
	unsigned hl = 0;
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	int ok = m && EVP_DigestInit_ex2(m, EVP_sha256(), NULL) == 1 &&
	         EVP_DigestUpdate(m, v->canon.data, v->canon.len) == 1 && EVP_DigestFinal_ex(m, hd, &hl) == 1;
	EVP_MD_CTX_free(m);
	return ok ? 0 : -1;
}

/* Returns -1 only for out-of-memory; everything else is a result. */
static int verify_one(vctx *v, const dkim_field *f, msv_dkim_result *res)
{
	vsig sg;
	memset(&sg, 0, sizeof(sg));
	const char *why = read_tags(&sg, f, res);
	if (!why)
		why = check_tags(v, &sg, res);
	if (why)
		return set(res, MSV_DKIM_PERMERROR, why);

	const msv_dkim_key *key = find_key(v, res, sg.kind);
	if (!key)
		return set(res, MSV_DKIM_NO_KEY, "no key was given for this selector, domain and algorithm");
	const char *bad = msv__dkim_key_unusable(key, res->domain, sg.auid_domain);
	if (bad)
		return set(res, MSV_DKIM_KEY_ERROR, bad);

	if (sg.x) {
		int64_t now = v->o->now > 0 ? v->o->now : (int64_t)time(NULL);
		if ((int64_t)sg.x_val < now)
			return set(res, MSV_DKIM_FAIL_EXPIRED, "the signature has expired (x= is in the past)");
	}

	int r = check_body(v, &sg, res);
	if (r <= 0)
		return r;
	unsigned char hd[32];
	if (header_hash(v, &sg, f, hd))
		return -1;
	if (!check_sig(msv__dkim_key_pkey(key), sg.kind, hd, &v->sig))
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
