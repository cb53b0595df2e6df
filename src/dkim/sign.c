/*
 * DKIM signing: RFC 6376 section 5 (signer actions), 3.5 (the
 * DKIM-Signature field), 3.7 (hashes); RFC 8463 (ed25519-sha256);
 * RFC 8301 (RSA key sizes).
 *
 * Cost per message, by design: one pass over the bytes (line-end
 * normalization, body canonicalization and SHA-256 fed from one staging
 * buffer), one SHA-256 over a few hundred header bytes, one private-key
 * operation on OpenSSL contexts prepared when the signer was made.
 * Nothing per message fetches algorithms or parses keys.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/rsa.h>

#include "core/core_int.h"
#include "dkim/dkim_int.h"

/* Header names a signer lists; RFC 6376 leaves it open, this bounds h=. */
#define NAMES_MAX 64
/* Header fields in one message; more is not mail. */
#define FIELDS_MAX 2000
/* RFC 5322 2.1.1 line limit, which RFC 6376 3.5 asks signers to respect
 * when folding; 78 is the "SHOULD" length. */
#define FOLD_COLS 78
/* A key file is a few KiB; this bounds what is read into memory. */
#define KEY_FILE_MAX ((size_t)1 << 20)
/* Largest signature: RSA 16384 bits. */
#define SIG_MAX 2048

struct msv_dkim_signer {
	char *domain, *selector, *identity;
	char *names_store;
	const char *names[NAMES_MAX];
	size_t nnames;
	msv_dkim_algo algo;
	msv_dkim_canon hc, bc;
	int oversign, body_length;
	int64_t expire;
	EVP_PKEY *pkey;
	unsigned bits, warnings;
	EVP_PKEY_CTX *rsa; /* sign-initialized: PKCS#1 v1.5, SHA-256 DigestInfo */
	EVP_MD_CTX *ed;    /* DigestSign-initialized for pure Ed25519 */
	EVP_MD *sha256;
	EVP_MD_CTX *hmd;   /* header hash */
	msv_buf canon;     /* header hash input */
	msv_buf prefix;    /* the DKIM-Signature field up to "b=" */
	msv_buf sig;       /* raw signature */
	msv_buf b64;       /* its base64 */
	msv_buf head;      /* "DKIM-Signature: v=1; a=...; c=...; d=...; s=...;" folded */
	size_t head_col;   /* the column head ends at */
	unsigned char *used; /* per header field: already chosen for h= */
	size_t used_cap;
	msv_dkim_stream *own; /* msv_dkim_sign()'s reusable stream */
};

struct msv_dkim_stream {
	msv_dkim_signer **signers;
	size_t n;
	dkim_norm norm;
	int in_body, failed, done;
	msv_buf hdr;
	msv_buf bhb; /* base64 of a body hash */
	size_t scan;
	int need[2]; /* indexed by msv_dkim_canon */
	EVP_MD_CTX *bmd[2];
	dkim_field *fields;
	msv_error err;
	dkim_body body[2];
};

const char *msv_dkim_algo_name(msv_dkim_algo a)
{
	switch (a) {
	case MSV_DKIM_RSA_SHA256: return "rsa-sha256";
	case MSV_DKIM_ED25519_SHA256: return "ed25519-sha256";
	case MSV_DKIM_ALGO_AUTO: break;
	}
	return "";
}

const char *msv_dkim_canon_name(msv_dkim_canon c)
{
	return c == MSV_DKIM_SIMPLE ? "simple" : "relaxed";
}

int msv_dkim_algo_parse(const char *s, msv_dkim_algo *out)
{
	if (!s)
		return -1;
	if (!strcasecmp(s, "rsa") || !strcasecmp(s, "rsa-sha256"))
		*out = MSV_DKIM_RSA_SHA256;
	else if (!strcasecmp(s, "ed25519") || !strcasecmp(s, "ed25519-sha256"))
		*out = MSV_DKIM_ED25519_SHA256;
	else
		return -1;
	return 0;
}

static int canon_word(const char *s, size_t n, msv_dkim_canon *out)
{
	if (n == 6 && !strncasecmp(s, "simple", 6))
		*out = MSV_DKIM_SIMPLE;
	else if (n == 7 && !strncasecmp(s, "relaxed", 7))
		*out = MSV_DKIM_RELAXED;
	else
		return -1;
	return 0;
}

int msv_dkim_canon_parse(const char *s, msv_dkim_canon *header, msv_dkim_canon *body)
{
	const char *slash = s ? strchr(s, '/') : NULL;
	if (!slash)
		return -1;
	msv_dkim_canon h, b;
	if (canon_word(s, (size_t)(slash - s), &h) || canon_word(slash + 1, strlen(slash + 1), &b))
		return -1;
	*header = h;
	*body = b;
	return 0;
}

/* ---- signer ---- */

static int valid_identity(const char *i, const char *domain)
{
	const char *at = strrchr(i, '@');
	if (!at || strlen(i) > 512)
		return 0;
	for (const char *p = i; *p; p++)
		if ((unsigned char)*p <= 32 || *p == ';' || *p == 127)
			return 0;
	const char *d = at + 1;
	size_t dl = strlen(d), l = strlen(domain);
	/* RFC 6376 3.5 i=: the domain is d= or a subdomain of it. */
	if (dl == l)
		return !strcasecmp(d, domain);
	return dl > l && d[dl - l - 1] == '.' && !strcasecmp(d + dl - l, domain);
}

static int parse_names(msv_dkim_signer *s, const char *list)
{
	s->names_store = msv_strdup(list);
	if (!s->names_store)
		return -1;
	char *p = s->names_store;
	int from = 0;
	while (*p) {
		while (*p == ':' || *p == ',' || *p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		char *start = p;
		while (*p && *p != ':' && *p != ',' && *p != ' ' && *p != '\t')
			p++;
		if (*p)
			*p++ = '\0';
		for (const char *c = start; *c; c++)
			if ((unsigned char)*c < 33 || (unsigned char)*c > 126)
				return -2;
		int dup = 0;
		for (size_t k = 0; k < s->nnames; k++)
			dup |= !strcasecmp(s->names[k], start);
		if (dup)
			continue;
		if (s->nnames == NAMES_MAX - 1)
			return -3;
		if (!strcasecmp(start, "From"))
			from = 1;
		if (!strcasecmp(start, "DKIM-Signature"))
			continue; /* a signature never covers itself this way */
		s->names[s->nnames++] = start;
	}
	if (!from) /* RFC 6376 5.4: From MUST be signed */
		s->names[s->nnames++] = "From";
	return 0;
}

static msv_result signer_crypto(msv_dkim_signer *s, msv_error *err)
{
	s->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	s->hmd = EVP_MD_CTX_new();
	if (!s->sha256 || !s->hmd)
		goto fail;
	if (s->algo == MSV_DKIM_RSA_SHA256) {
		s->rsa = EVP_PKEY_CTX_new_from_pkey(NULL, s->pkey, NULL);
		if (!s->rsa || EVP_PKEY_sign_init(s->rsa) != 1 ||
		    EVP_PKEY_CTX_set_rsa_padding(s->rsa, RSA_PKCS1_PADDING) != 1 ||
		    EVP_PKEY_CTX_set_signature_md(s->rsa, s->sha256) != 1)
			goto fail;
	} else {
		s->ed = EVP_MD_CTX_new();
		if (!s->ed || EVP_DigestSignInit_ex(s->ed, NULL, NULL, NULL, NULL, s->pkey, NULL) != 1)
			goto fail;
	}
	return MSV_OK;
fail:
	ERR_clear_error();
	return msv_error_set(err, MSV_E_SYSTEM, MSV_CLASS_LOCAL, "OpenSSL cannot prepare the signing key");
}

static msv_result signer_head(msv_dkim_signer *s, msv_error *err);

msv_result msv_dkim_signer_new(msv_dkim_signer **out, const msv_dkim_options *o, const char *key_pem,
                               size_t key_len, msv_error *err)
{
	msv_error dummy;
	if (!err)
		err = &dummy;
	if (!out || !o || !key_pem)
		return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE, "missing signer argument");
	*out = NULL;
	if (!msv__version_ok(o->version, MSV_DKIM_OPTIONS_VERSION))
		return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE,
		                     "msv_dkim_options: version %u is not between 1 and %u", o->version,
		                     MSV_DKIM_OPTIONS_VERSION);
	if (!o->domain || !msv__dkim_valid_dns_name(o->domain))
		return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
		                     "DKIM domain must be a DNS name of letters, digits, '-' and '.' "
		                     "(A-labels for international names)");
	if (!o->selector || !msv__dkim_valid_dns_name(o->selector))
		return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
		                     "DKIM selector must be letters, digits, '-' and '.'");
	if (o->identity && !valid_identity(o->identity, o->domain))
		return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
		                     "DKIM identity (i=) must be an address in the signing domain or a subdomain");
	if (o->expire_seconds < 0 || o->expire_seconds > (int64_t)1 << 40)
		return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG, "bad DKIM expiry");
	if ((unsigned)o->header_canon > MSV_DKIM_SIMPLE || (unsigned)o->body_canon > MSV_DKIM_SIMPLE ||
	    (unsigned)o->algo > MSV_DKIM_ED25519_SHA256)
		return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE, "bad DKIM algorithm or canonicalization");

	msv_dkim_signer *s = msv_calloc(1, sizeof(*s));
	if (!s)
		return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
	msv_buf_init(&s->canon, MSV_DKIM_HEADER_BLOCK_MAX + MSV_DKIM_HEADER_MAX);
	msv_buf_init(&s->prefix, MSV_DKIM_HEADER_MAX);
	msv_buf_init(&s->sig, SIG_MAX);
	msv_buf_init(&s->b64, SIG_MAX * 2);
	msv_buf_init(&s->head, MSV_DKIM_HEADER_MAX);
	s->hc = o->header_canon;
	s->bc = o->body_canon;
	s->oversign = !o->no_oversign;
	s->body_length = o->body_length;
	s->expire = o->expire_seconds;
	msv_result r = MSV_OK;
	s->domain = msv_strdup(o->domain);
	s->selector = msv_strdup(o->selector);
	s->identity = o->identity ? msv_strdup(o->identity) : NULL;
	if (!s->domain || !s->selector || (o->identity && !s->identity)) {
		r = msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
		goto fail;
	}
	int pr = parse_names(s, o->headers ? o->headers : MSV_DKIM_DEFAULT_HEADERS);
	if (pr) {
		r = pr == -1 ? msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory")
		             : msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
		                             pr == -2 ? "a header name to sign has a character outside printable ASCII"
		                                      : "more than 62 header names to sign");
		goto fail;
	}
	s->pkey = msv__dkim_pkey_from_pem(key_pem, key_len, 1, err);
	if (!s->pkey) {
		r = err->code;
		goto fail;
	}
	msv_dkim_algo kind = (msv_dkim_algo)msv__dkim_pkey_kind(s->pkey);
	if (o->algo != MSV_DKIM_ALGO_AUTO && o->algo != kind) {
		r = msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG, "the key is %s but %s was asked for",
		                  kind == MSV_DKIM_RSA_SHA256 ? "an RSA key" : "an Ed25519 key",
		                  msv_dkim_algo_name(o->algo));
		goto fail;
	}
	s->algo = kind;
	int bits = EVP_PKEY_get_bits(s->pkey);
	s->bits = bits > 0 ? (unsigned)bits : 0;
	if (kind == MSV_DKIM_RSA_SHA256) {
		/* RFC 8301 3.2: verifiers reject keys under 1024 bits, signers
		 * SHOULD use at least 2048. */
		if (s->bits < 1024) {
			r = msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
			                  "the RSA key has %u bits; DKIM needs at least 1024 (RFC 8301), "
			                  "2048 recommended", s->bits);
			goto fail;
		}
		if (s->bits < 2048)
			s->warnings |= MSV_DKIM_WARN_SHORT_KEY;
	}
	r = signer_crypto(s, err);
	if (!r)
		r = signer_head(s, err);
	if (r)
		goto fail;
	*out = s;
	return MSV_OK;
fail:
	msv_dkim_signer_free(s);
	return r;
}

msv_result msv_dkim_signer_load(msv_dkim_signer **out, const msv_dkim_options *opts, const char *key_path,
                                msv_error *err)
{
	msv_error dummy;
	if (!err)
		err = &dummy;
	if (!key_path)
		return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE, "no key file given");
	FILE *f = fopen(key_path, "rb");
	if (!f)
		return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG, "cannot open DKIM key file %s: %s",
		                     key_path, strerror(errno));
	/* As ssh does for its keys: a private key others can read, or that
	 * another user (not root) owns and could replace, is refused.  fstat
	 * on the open file: what is checked is what is read. */
	struct stat st;
	memset(&st, 0, sizeof(st));
	if (fstat(fileno(f), &st) || (st.st_mode & 077) ||
	    (st.st_uid != geteuid() && st.st_uid != 0)) {
		int e = errno;
		fclose(f);
		if (st.st_mode & 077)
			return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
			                     "DKIM key file %s: mode %04o is accessible by others; chmod "
			                     "600 it",
			                     key_path, (unsigned)(st.st_mode & 07777));
		if (st.st_uid != geteuid() && st.st_uid != 0)
			return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
			                     "DKIM key file %s is owned by uid %lu, not by this user or "
			                     "root; chown it",
			                     key_path, (unsigned long)st.st_uid);
		return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
		                     "cannot read DKIM key file %s: %s", key_path, strerror(e));
	}
	msv_buf b;
	msv_buf_init(&b, KEY_FILE_MAX);
	char tmp[4096];
	size_t n;
	msv_result r = MSV_OK;
	while (!r && (n = fread(tmp, 1, sizeof(tmp), f)) > 0)
		r = msv_buf_add(&b, tmp, n);
	int rerr = ferror(f);
	fclose(f);
	msv_wipe(tmp, sizeof(tmp));
	if (r || rerr) {
		msv_buf_free_secret(&b);
		return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG, "cannot read DKIM key file %s: %s",
		                     key_path, r ? "larger than 1 MiB" : "read error");
	}
	r = msv_dkim_signer_new(out, opts, b.data ? b.data : "", b.len, err);
	msv_buf_free_secret(&b);
	if (r && r != MSV_E_NOMEM) {
		/* Name the file: "not a PEM private key" alone does not say which. */
		char m[MSV_TEXT_MAX];
		snprintf(m, sizeof(m), "%s", err->message);
		msv_error_set(err, r, err->cls, "%s: %s", key_path, m);
	}
	return r;
}

void msv_dkim_signer_free(msv_dkim_signer *s)
{
	if (!s)
		return;
	msv_dkim_stream_free(s->own);
	EVP_PKEY_CTX_free(s->rsa);
	EVP_MD_CTX_free(s->ed);
	EVP_MD_CTX_free(s->hmd);
	EVP_MD_free(s->sha256);
	EVP_PKEY_free(s->pkey);
	msv_buf_free(&s->canon);
	msv_buf_free(&s->prefix);
	msv_buf_free(&s->sig);
	msv_buf_free(&s->b64);
	msv_buf_free(&s->head);
	msv_free(s->used);
	msv_free(s->domain);
	msv_free(s->selector);
	msv_free(s->identity);
	msv_free(s->names_store);
	msv_free(s);
}

msv_dkim_algo msv_dkim_signer_algo(const msv_dkim_signer *s)
{
	return s->algo;
}

unsigned msv_dkim_signer_key_bits(const msv_dkim_signer *s)
{
	return s->bits;
}

unsigned msv_dkim_signer_warnings(const msv_dkim_signer *s)
{
	return s->warnings;
}

msv_result msv_dkim_signer_record(const msv_dkim_signer *s, msv_buf *out)
{
	return msv__dkim_record_for_pkey(s->pkey, out);
}

/* ---- hashing and the private-key operation ---- */

static msv_result sign_digest(msv_dkim_signer *s, const unsigned char *dg, msv_buf *sig)
{
	unsigned char raw[SIG_MAX];
	size_t len = sizeof(raw);
	int ok;
	if (s->algo == MSV_DKIM_RSA_SHA256) {
		ok = EVP_PKEY_sign(s->rsa, raw, &len, dg, 32) == 1;
	} else {
		/* RFC 8463 3: pure Ed25519 over the SHA-256 digest.  The context
		 * is reused across messages; should a provider refuse a second
		 * one-shot call, prepare it again once. */
		ok = EVP_DigestSign(s->ed, raw, &len, dg, 32) == 1;
		if (!ok) {
			ERR_clear_error();
			len = sizeof(raw);
			ok = EVP_DigestSignInit_ex(s->ed, NULL, NULL, NULL, NULL, s->pkey, NULL) == 1 &&
			     EVP_DigestSign(s->ed, raw, &len, dg, 32) == 1;
		}
	}
	if (!ok) {
		ERR_clear_error();
		return MSV_E_SYSTEM;
	}
	msv_buf_reset(sig);
	msv_result r = msv_buf_add(sig, raw, len);
	msv_wipe(raw, sizeof(raw));
	return r;
}

msv_result msv__dkim_sign_fields(msv_dkim_signer *s, msv_dkim_canon hc, const dkim_field *const *fields,
                             size_t nfields, const char *prefix, size_t prefix_len, msv_buf *sig,
                             msv_error *err)
{
	msv_buf_reset(&s->canon);
	msv_result r = MSV_OK;
	for (size_t i = 0; !r && i < nfields; i++)
		r = msv__dkim_header_canon(&s->canon, hc, fields[i]->p, fields[i]->len, 0);
	if (!r)
		r = msv__dkim_header_canon(&s->canon, hc, prefix, prefix_len, 1);
	if (r)
		return msv_error_set(err, r, r == MSV_E_NOMEM ? MSV_CLASS_LOCAL : MSV_CLASS_USAGE,
		                     "cannot canonicalize the header: %s", msv_strerror(r));
	unsigned char dg[32];
	unsigned dl = 0;
	if (EVP_DigestInit_ex2(s->hmd, s->sha256, NULL) != 1 ||
	    EVP_DigestUpdate(s->hmd, s->canon.data, s->canon.len) != 1 ||
	    EVP_DigestFinal_ex(s->hmd, dg, &dl) != 1 || dl != 32) {
		ERR_clear_error();
		return msv_error_set(err, MSV_E_SYSTEM, MSV_CLASS_LOCAL, "SHA-256 failed");
	}
	r = sign_digest(s, dg, sig);
	if (r)
		return msv_error_set(err, r, MSV_CLASS_LOCAL, "the %s signature operation failed",
		                     msv_dkim_algo_name(s->algo));
	return MSV_OK;
}

/* ---- folding ---- */

typedef struct folder {
	msv_buf *b;
	size_t col;
	msv_result r;
} folder;

static void f_raw(folder *f, const char *p, size_t n)
{
	if (!f->r)
		f->r = msv_buf_add(f->b, p, n);
	f->col += n;
}

static void f_fold(folder *f)
{
	f_raw(f, "\r\n ", 3);
	f->col = 1;
}

/* A tag with its separating space, on this line if it fits. */
static void f_token(folder *f, const char *p, size_t n)
{
	if (f->col + 1 + n > FOLD_COLS)
		f_fold(f);
	else
		f_raw(f, " ", 1);
	f_raw(f, p, n);
}

/* A piece that may follow the previous one directly (inside h=). */
static void f_glue(folder *f, const char *p, size_t n)
{
	if (f->col + n > FOLD_COLS)
		f_fold(f);
	f_raw(f, p, n);
}

/* "name=value;" as one token. */
static void f_tag(folder *f, const char *name, const char *val, size_t vl)
{
	char t[600];
	size_t nl = strlen(name);
	if (nl + vl + 2 > sizeof(t)) {
		if (!f->r)
			f->r = MSV_E_TOO_LARGE;
		return;
	}
	memcpy(t, name, nl);
	t[nl] = '=';
	memcpy(t + nl + 1, val, vl);
	t[nl + 1 + vl] = ';';
	f_token(f, t, nl + vl + 2);
}

static void f_tags(folder *f, const char *name, const char *val)
{
	f_tag(f, name, val, strlen(val));
}

static void f_tagu(folder *f, const char *name, uint64_t v)
{
	char d[24];
	size_t i = sizeof(d);
	do {
		d[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	f_tag(f, name, d + i, sizeof(d) - i);
}

static msv_result signer_head(msv_dkim_signer *s, msv_error *err)
{
	folder f = {&s->head, 0, MSV_OK};
	char c[16];
	snprintf(c, sizeof(c), "%s/%s", msv_dkim_canon_name(s->hc), msv_dkim_canon_name(s->bc));
	f_raw(&f, "DKIM-Signature:", 15);
	f_tags(&f, "v", "1");
	f_tags(&f, "a", msv_dkim_algo_name(s->algo));
	f_tags(&f, "c", c);
	f_tags(&f, "d", s->domain);
	f_tags(&f, "s", s->selector);
	s->head_col = f.col;
	if (f.r)
		return msv_error_set(err, f.r, MSV_CLASS_CONFIG, "DKIM domain or selector too long");
	return MSV_OK;
}

/* Base64 that may break anywhere (FWS is allowed inside b=). */
static void f_b64(folder *f, const char *p, size_t n)
{
	while (n) {
		if (f->col >= FOLD_COLS)
			f_fold(f);
		size_t k = FOLD_COLS - f->col;
		if (k > n)
			k = n;
		f_raw(f, p, k);
		p += k;
		n -= k;
	}
}

/* ---- one signature ---- */

static msv_result sign_one(msv_dkim_signer *s, const dkim_field *fields, size_t nf, const char *bh,
                           uint64_t body_len, int64_t now, msv_buf *out, msv_error *err)
{
	if (s->used_cap < nf) {
		unsigned char *u = msv_malloc(nf);
		if (!u)
			return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
		msv_free(s->used);
		s->used = u;
		s->used_cap = nf;
	}
	if (nf)
		memset(s->used, 0, nf);
	/* h=: every listed name as often as it occurs; picking bottom-up
	 * (RFC 6376 5.4.2) then covers each instance once. */
	const dkim_field *chosen[NAMES_MAX * 8];
	const char *hnames[NAMES_MAX * 8];
	size_t nh = 0, froms = 0;
	for (size_t k = 0; k < s->nnames; k++) {
		for (size_t i = nf; i-- > 0;) {
			if (!msv__dkim_name_eq(fields[i].p, fields[i].name_len, s->names[k]))
				continue;
			if (nh == sizeof(chosen) / sizeof(chosen[0]))
				return msv_error_set(err, MSV_E_BAD_MESSAGE, MSV_CLASS_USAGE,
				                     "too many instances of the header fields to sign");
			chosen[nh] = &fields[i];
			hnames[nh++] = s->names[k];
			if (!strcasecmp(s->names[k], "From"))
				froms++;
		}
	}
	if (!froms)
		return msv_error_set(err, MSV_E_BAD_MESSAGE, MSV_CLASS_USAGE,
		                     "the message has no From header field (RFC 6376 5.4 requires signing it)");
	/* Over-signing: one more From than there is, so an added From
	 * breaks the signature (RFC 6376 8.15). */
	size_t nlisted = nh + (s->oversign ? 1 : 0);

	/* The fixed start (v, a, c, d, s) was folded once, in signer_head(). */
	msv_buf_reset(&s->prefix);
	folder f = {&s->prefix, s->head_col, msv_buf_add(&s->prefix, s->head.data, s->head.len)};
	f_tagu(&f, "t", (uint64_t)now);
	if (s->expire)
		f_tagu(&f, "x", (uint64_t)(now + s->expire));
	if (s->identity)
		f_tags(&f, "i", s->identity);
	if (s->body_length)
		f_tagu(&f, "l", body_len);
	for (size_t k = 0; k < nlisted; k++) {
		const char *name = k < nh ? hnames[k] : "From";
		char t[160];
		size_t nl = strlen(name), tl = 0;
		if (nl + 4 > sizeof(t))
			return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG, "header name too long");
		if (!k) {
			t[tl++] = 'h';
			t[tl++] = '=';
		}
		memcpy(t + tl, name, nl);
		tl += nl;
		t[tl++] = k + 1 == nlisted ? ';' : ':';
		if (k)
			f_glue(&f, t, tl);
		else
			f_token(&f, t, tl);
	}
	f_tags(&f, "bh", bh);
	f_token(&f, "b=", 2);
	if (f.r)
		return msv_error_set(err, f.r, MSV_CLASS_LOCAL, "cannot build the signature field: %s",
		                     msv_strerror(f.r));
	msv_result r = msv__dkim_sign_fields(s, s->hc, chosen, nh, s->prefix.data, s->prefix.len, &s->sig, err);
	if (r)
		return r;
	msv_buf_reset(&s->b64);
	r = msv_base64_encode(&s->b64, s->sig.data, s->sig.len);
	if (!r) {
		f_b64(&f, s->b64.data, s->b64.len);
		f_raw(&f, "\r\n", 2);
		r = f.r;
	}
	if (!r)
		r = msv_buf_add(out, s->prefix.data, s->prefix.len);
	if (r)
		return msv_error_set(err, r, MSV_CLASS_LOCAL, "cannot write the signature field: %s",
		                     msv_strerror(r));
	return MSV_OK;
}

/* ---- streaming ---- */

static int md_sink(void *arg, const char *p, size_t n)
{
	return EVP_DigestUpdate((EVP_MD_CTX *)arg, p, n) == 1 ? 0 : -1;
}

static void stream_body(msv_dkim_stream *st, const char *p, size_t n)
{
	for (int c = 0; c < 2; c++)
		if (st->need[c])
			msv__dkim_body_feed(&st->body[c], p, n);
}

/* Normalized bytes arrive here: the header block is kept until its empty
 * line, the rest streams into the body hashes. */
static int stream_sink(void *arg, const char *p, size_t n)
{
	msv_dkim_stream *st = arg;
	if (st->in_body) {
		stream_body(st, p, n);
		return 0;
	}
	if (msv_buf_add(&st->hdr, p, n)) {
		msv_error_set(&st->err, MSV_E_TOO_LARGE, MSV_CLASS_USAGE,
		              "the header block is larger than %zu bytes", (size_t)MSV_DKIM_HEADER_BLOCK_MAX);
		return -1;
	}
	const char *d = st->hdr.data;
	size_t len = st->hdr.len, hl = 0, body = 0;
	int found = 0;
	if (len >= 2 && d[0] == '\r' && d[1] == '\n') { /* no header at all */
		found = 1;
		body = 2;
	}
	for (size_t i = st->scan; !found && i + 4 <= len; i++) {
		if (d[i] == '\r' && d[i + 1] == '\n' && d[i + 2] == '\r' && d[i + 3] == '\n') {
			found = 1;
			hl = i + 2;
			body = i + 4;
		}
	}
	if (!found) {
		st->scan = len >= 3 ? len - 3 : 0;
		return 0;
	}
	st->in_body = 1;
	if (body < len)
		stream_body(st, d + body, len - body);
	st->hdr.len = hl;
	st->hdr.data[hl] = '\0';
	return 0;
}

static void stream_start(msv_dkim_stream *st)
{
	msv__dkim_norm_init(&st->norm, 0);
	st->in_body = 0;
	st->failed = 0;
	st->done = 0;
	st->scan = 0;
	msv_buf_reset(&st->hdr);
	msv_error_clear(&st->err);
	for (int c = 0; c < 2; c++) {
		if (!st->need[c])
			continue;
		if (EVP_DigestInit_ex2(st->bmd[c], st->signers[0]->sha256, NULL) != 1) {
			ERR_clear_error();
			st->failed = 1;
			msv_error_set(&st->err, MSV_E_SYSTEM, MSV_CLASS_LOCAL, "SHA-256 failed");
		}
		msv__dkim_body_init(&st->body[c], (msv_dkim_canon)c, 0, UINT64_MAX, md_sink, st->bmd[c]);
	}
}

msv_result msv_dkim_stream_new(msv_dkim_stream **out, msv_dkim_signer *const *signers, size_t n,
                               msv_error *err)
{
	msv_error dummy;
	if (!err)
		err = &dummy;
	if (!out || !signers || !n || n > 16)
		return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE, "give 1 to 16 DKIM signers");
	*out = NULL;
	for (size_t i = 0; i < n; i++)
		if (!signers[i])
			return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE, "a DKIM signer is NULL");
	msv_dkim_stream *st = msv_calloc(1, sizeof(*st));
	if (!st)
		return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
	msv_buf_init(&st->hdr, MSV_DKIM_HEADER_BLOCK_MAX);
	msv_buf_init(&st->bhb, 64);
	st->signers = msv_calloc(n, sizeof(*st->signers));
	st->fields = msv_calloc(FIELDS_MAX, sizeof(*st->fields));
	if (!st->signers || !st->fields)
		goto nomem;
	st->n = n;
	for (size_t i = 0; i < n; i++) {
		st->signers[i] = signers[i];
		st->need[signers[i]->bc] = 1;
	}
	for (int c = 0; c < 2; c++)
		if (st->need[c] && !(st->bmd[c] = EVP_MD_CTX_new()))
			goto nomem;
	stream_start(st);
	*out = st;
	return MSV_OK;
nomem:
	msv_dkim_stream_free(st);
	return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
}

void msv_dkim_stream_free(msv_dkim_stream *st)
{
	if (!st)
		return;
	for (int c = 0; c < 2; c++)
		EVP_MD_CTX_free(st->bmd[c]);
	msv_buf_free(&st->hdr);
	msv_buf_free(&st->bhb);
	msv_free(st->signers);
	msv_free(st->fields);
	msv_free(st);
}

void msv_dkim_stream_reset(msv_dkim_stream *st)
{
	if (st)
		stream_start(st);
}

const msv_error *msv_dkim_stream_error(const msv_dkim_stream *st)
{
	return &st->err;
}

static msv_result stream_finished(msv_dkim_stream *st)
{
	return msv_error_set(&st->err, MSV_E_STATE, MSV_CLASS_USAGE,
	                     "the DKIM stream has finished its message; reset it first");
}

msv_result msv_dkim_stream_update(msv_dkim_stream *st, const void *data, size_t len)
{
	if (st->done)
		return stream_finished(st);
	if (st->failed)
		return st->err.code ? st->err.code : MSV_E_STATE;
	if (st->in_body) {
		/* The body canonicalizers treat bare CR and LF exactly as the
		 * normalizer does, so the body skips that pass. */
		stream_body(st, data, len);
		return MSV_OK;
	}
	if (msv__dkim_norm_feed(&st->norm, data, len, stream_sink, st)) {
		st->failed = 1;
		return st->err.code;
	}
	if (st->in_body && st->norm.pending_cr) { /* hand a held CR over */
		st->norm.pending_cr = 0;
		stream_body(st, "\r", 1);
	}
	return MSV_OK;
}

msv_result msv_dkim_stream_final(msv_dkim_stream *st, int64_t now, msv_buf *out)
{
	if (st->done)
		return stream_finished(st);
	if (st->failed)
		return st->err.code ? st->err.code : MSV_E_STATE;
	st->failed = 1; /* until reset, whatever happens below */
	if (msv__dkim_norm_end(&st->norm, stream_sink, st))
		return st->err.code;
	if (!st->in_body && st->hdr.len && st->hdr.data[st->hdr.len - 1] != '\n' &&
	    msv_buf_add(&st->hdr, "\r\n", 2)) /* the last field ends at the end of input */
		return msv_error_set(&st->err, MSV_E_TOO_LARGE, MSV_CLASS_USAGE, "the header block is too large");
	char bh[2][48];
	uint64_t blen[2] = {0, 0};
	for (int c = 0; c < 2; c++) {
		if (!st->need[c])
			continue;
		unsigned char dg[32];
		unsigned dl = 0;
		if (msv__dkim_body_end(&st->body[c]) || EVP_DigestFinal_ex(st->bmd[c], dg, &dl) != 1 || dl != 32) {
			ERR_clear_error();
			return msv_error_set(&st->err, MSV_E_SYSTEM, MSV_CLASS_LOCAL, "SHA-256 failed");
		}
		blen[c] = st->body[c].total;
		msv_buf_reset(&st->bhb);
		if (msv_base64_encode(&st->bhb, dg, 32))
			return msv_error_set(&st->err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
		memcpy(bh[c], st->bhb.data, st->bhb.len + 1);
	}
	size_t bad = 0;
	long nf = msv__dkim_split_fields(st->hdr.data ? st->hdr.data : "", st->hdr.len, st->fields,
	                                 FIELDS_MAX, &bad);
	if (nf < 0)
		return msv_error_set(&st->err, MSV_E_BAD_MESSAGE, MSV_CLASS_USAGE,
		                     "header line %zu is not a header field (or more than %d fields)", bad,
		                     FIELDS_MAX);
	if (now <= 0)
		now = (int64_t)time(NULL);
	for (size_t i = 0; i < st->n; i++) {
		msv_dkim_signer *s = st->signers[i];
		msv_result r = sign_one(s, st->fields, (size_t)nf, bh[s->bc], blen[s->bc], now, out, &st->err);
		if (r)
			return r;
	}
	st->failed = 0;
	st->done = 1;
	return MSV_OK;
}

/* ---- one-shot ---- */

static msv_result run_stream(msv_dkim_stream *st, const char *msg, size_t len, int64_t now, msv_buf *out,
                             msv_error *err)
{
	msv_result r = msv_dkim_stream_update(st, msg, len);
	if (!r)
		r = msv_dkim_stream_final(st, now, out);
	if (r)
		*err = st->err;
	return r;
}

msv_result msv_dkim_sign(msv_dkim_signer *s, const char *msg, size_t len, int64_t now, msv_buf *out,
                         msv_error *err)
{
	msv_error dummy;
	if (!err)
		err = &dummy;
	if (!s || (!msg && len) || !out)
		return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE, "missing DKIM signing argument");
	if (!s->own) {
		msv_result r = msv_dkim_stream_new(&s->own, &s, 1, err);
		if (r)
			return r;
	} else {
		msv_dkim_stream_reset(s->own);
	}
	return run_stream(s->own, msg ? msg : "", len, now, out, err);
}

msv_result msv_dkim_sign_multi(msv_dkim_signer *const *signers, size_t n, const char *msg, size_t len,
                               int64_t now, msv_buf *out, msv_error *err)
{
	msv_error dummy;
	if (!err)
		err = &dummy;
	if ((!msg && len) || !out)
		return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE, "missing DKIM signing argument");
	if (n == 1)
		return msv_dkim_sign(signers[0], msg, len, now, out, err);
	msv_dkim_stream *st;
	msv_result r = msv_dkim_stream_new(&st, signers, n, err);
	if (r)
		return r;
	r = run_stream(st, msg ? msg : "", len, now, out, err);
	msv_dkim_stream_free(st);
	return r;
}

static int buf_sink(void *arg, const char *p, size_t n)
{
	return msv_buf_add((msv_buf *)arg, p, n) ? -1 : 0;
}

msv_result msv_dkim_sign_message(msv_dkim_signer *const *signers, size_t n, const char *msg, size_t len,
                                 int64_t now, msv_buf *out, msv_error *err)
{
	msv_error dummy;
	if (!err)
		err = &dummy;
	msv_result r = msv_dkim_sign_multi(signers, n, msg, len, now, out, err);
	if (r)
		return r;
	dkim_norm m;
	msv__dkim_norm_init(&m, 0);
	size_t start = out->len;
	int bad = msv__dkim_norm_feed(&m, msg ? msg : "", len, buf_sink, out) ||
	          msv__dkim_norm_end(&m, buf_sink, out);
	/* SMTP ends the data with CRLF whatever the message did, so that is
	 * the form receivers see; writing it here makes every verifier agree
	 * (OpenDKIM's relaxed body canonicalization, unlike the others, does
	 * not supply a missing final CRLF itself). */
	if (!bad && out->len > start && out->data[out->len - 1] != '\n')
		bad = buf_sink(out, "\r\n", 2);
	if (bad)
		return msv_error_set(err, MSV_E_TOO_LARGE, MSV_CLASS_USAGE,
		                     "the signed message does not fit the output buffer");
	return MSV_OK;
}

/* ---- for the vector tests ---- */

msv_result msv__dkim_body_hash(msv_dkim_canon c, const char *body, size_t len, uint64_t limit,
                               msv_buf *out_b64)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md || EVP_DigestInit_ex2(md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(md);
		return MSV_E_NOMEM;
	}
	dkim_body b;
	msv__dkim_body_init(&b, c, 0, limit, md_sink, md);
	msv__dkim_body_feed(&b, body, len);
	unsigned char dg[32];
	unsigned dl = 0;
	int bad = msv__dkim_body_end(&b) || EVP_DigestFinal_ex(md, dg, &dl) != 1;
	EVP_MD_CTX_free(md);
	if (bad)
		return MSV_E_SYSTEM;
	return msv_base64_encode(out_b64, dg, 32);
}
