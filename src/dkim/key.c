/*
 * DKIM keys: PEM loading, key records (RFC 6376 3.6.1, RFC 8463 4),
 * key generation and the DNS TXT line.
 *
 * OpenSSL 3 EVP interfaces only.  Private key text passes through
 * memory BIOs that are wiped (BIO_s_secmem) and caller buffers that the
 * callers wipe.
 */
#include <string.h>
#include <strings.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "dkim/dkim_int.h"

struct msv_dkim_key {
	EVP_PKEY *pkey;    /* NULL: revoked (empty p=) */
	int kind;          /* MSV_DKIM_RSA_SHA256 / MSV_DKIM_ED25519_SHA256 */
	char selector[256]; /* "" unless the record came with its owner name */
	char domain[256];
	int strict_i;      /* t=s: i= must be exactly d= */
	int sha256_ok;     /* h= absent or lists sha256 */
	int email_ok;      /* s= absent, "*" or lists "email" */
	int testing;       /* t=y */
};

int msv__dkim_pkey_kind(EVP_PKEY *pk)
{
	if (EVP_PKEY_is_a(pk, "RSA"))
		return MSV_DKIM_RSA_SHA256;
	if (EVP_PKEY_is_a(pk, "ED25519"))
		return MSV_DKIM_ED25519_SHA256;
	return 0;
}

/* A passphrase-protected key is refused instead of prompting. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

EVP_PKEY *msv__dkim_pkey_from_pem(const char *pem, size_t len, int want_private, msv_error *err)
{
	if (len > INT32_MAX) {
		msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG, "key is too large");
		return NULL;
	}
	BIO *bio = BIO_new_mem_buf(pem, (int)len);
	if (!bio) {
		msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory reading the key");
		return NULL;
	}
	EVP_PKEY *pk = PEM_read_bio_PrivateKey_ex(bio, NULL, no_password, NULL, NULL, NULL);
	if (!pk && !want_private) {
		(void)BIO_reset(bio);
		pk = PEM_read_bio_PUBKEY_ex(bio, NULL, no_password, NULL, NULL, NULL);
	}
	BIO_free(bio);
	if (!pk) {
		unsigned long e = ERR_peek_last_error();
		ERR_clear_error();
		const char *what = want_private ? "private key" : "key";
		if (msv__dkim_memmem(pem, len, "ENCRYPTED", 9))
			msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
			              "the %s is encrypted; give an unencrypted PEM key", what);
		else
			msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG, "not a PEM %s (%s)", what,
			              e ? ERR_reason_error_string(e) ? ERR_reason_error_string(e) : "unreadable"
			                : "no key found");
		return NULL;
	}
	if (!msv__dkim_pkey_kind(pk)) {
		EVP_PKEY_free(pk);
		msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
		              "the key is neither RSA nor Ed25519 (DKIM signs with rsa-sha256 or ed25519-sha256)");
		return NULL;
	}
	return pk;
}

msv_result msv__dkim_record_for_pkey(EVP_PKEY *pk, msv_buf *out)
{
	int kind = msv__dkim_pkey_kind(pk);
	unsigned char raw[64];
	unsigned char *der = NULL;
	const unsigned char *p = raw;
	size_t n = 0;
	if (kind == MSV_DKIM_ED25519_SHA256) {
		n = sizeof(raw);
		if (EVP_PKEY_get_raw_public_key(pk, raw, &n) != 1)
			return MSV_E_INVALID;
	} else if (kind == MSV_DKIM_RSA_SHA256) {
		int l = i2d_PUBKEY(pk, &der);
		if (l <= 0)
			return MSV_E_NOMEM;
		p = der;
		n = (size_t)l;
	} else {
		return MSV_E_INVALID;
	}
	msv_result r = msv_buf_addstr(out, kind == MSV_DKIM_RSA_SHA256 ? "v=DKIM1; k=rsa; p=" : "v=DKIM1; k=ed25519; p=");
	if (!r)
		r = msv_base64_encode(out, p, n);
	OPENSSL_free(der);
	return r;
}

msv_result msv_dkim_keygen(msv_dkim_algo algo, unsigned bits, msv_buf *pem, msv_buf *record, msv_error *err)
{
	EVP_PKEY *pk = NULL;
	if (algo == MSV_DKIM_ED25519_SHA256) {
		pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	} else if (algo == MSV_DKIM_RSA_SHA256) {
		if (!bits)
			bits = 2048;
		/* Under 1024 verifiers must refuse the key (RFC 8301 3.2); over
		 * 16384 generation takes minutes and no DNS TXT answer fits. */
		if (bits < 1024 || bits > 16384)
			return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE,
			                     "RSA key size %u is outside 1024..16384 bits", bits);
		pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
	} else {
		return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE, "choose rsa-sha256 or ed25519-sha256");
	}
	if (!pk) {
		ERR_clear_error();
		return msv_error_set(err, MSV_E_SYSTEM, MSV_CLASS_LOCAL, "key generation failed");
	}
	msv_result r = MSV_E_NOMEM;
	BIO *bio = BIO_new(BIO_s_secmem());
	if (bio && PEM_write_bio_PrivateKey(bio, pk, NULL, NULL, 0, NULL, NULL) == 1) {
		char *data;
		long l = BIO_get_mem_data(bio, &data);
		r = l > 0 ? msv_buf_add(pem, data, (size_t)l) : MSV_E_NOMEM;
	}
	BIO_free(bio);
	if (!r)
		r = msv__dkim_record_for_pkey(pk, record);
	EVP_PKEY_free(pk);
	ERR_clear_error();
	if (r)
		return msv_error_set(err, r, MSV_CLASS_LOCAL, "cannot write the generated key: %s",
		                     msv_strerror(r));
	return MSV_OK;
}

msv_result msv_dkim_dns_txt(msv_buf *out, const char *selector, const char *domain, const char *record)
{
	if (!selector || !domain || !record || !msv__dkim_valid_dns_name(selector) ||
	    !msv__dkim_valid_dns_name(domain))
		return MSV_E_INVALID;
	msv_result r = msv_buf_addf(out, "%s._domainkey.%s. IN TXT", selector, domain);
	size_t n = strlen(record);
	/* RFC 1035 3.3.14: a TXT record is character-strings of at most 255
	 * octets each; resolvers hand DKIM the concatenation (RFC 6376 3.6.2.2). */
	for (size_t i = 0; !r && (i < n || i == 0); i += 255) {
		size_t k = n - i < 255 ? n - i : 255;
		r = msv_buf_addf(out, " \"%.*s\"", (int)k, record + i);
		if (n == 0)
			break;
	}
	if (!r)
		r = msv_buf_addc(out, '\n');
	return r;
}

/* ---- verification keys ---- */

static int is_fws_c(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static msv_result key_error(msv_error *err, const char *why)
{
	return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG, "bad DKIM key record: %s", why);
}

/* Joins the quoted strings of a zone-file line and takes its owner
 * name; text without quotes is the record itself. */
static msv_result unzone(msv_dkim_key *k, const char *text, size_t len, msv_buf *rec)
{
	const char *q = memchr(text, '"', len);
	if (!q)
		return msv_buf_add(rec, text, len);
	/* owner name: the first word, if it has ._domainkey. in it */
	size_t i = 0;
	while (i < len && is_fws_c(text[i]))
		i++;
	size_t ns = i;
	while (i < len && !is_fws_c(text[i]) && text[i] != '"')
		i++;
	size_t nl = i - ns;
	if (nl && text[ns + nl - 1] == '.')
		nl--;
	const char *mark = nl ? msv__dkim_memmem(text + ns, nl, "._domainkey.", 12) : NULL;
	if (mark) {
		size_t sl = (size_t)(mark - (text + ns));
		size_t dl = nl - sl - 12;
		if (sl && sl < sizeof(k->selector) && dl && dl < sizeof(k->domain)) {
			memcpy(k->selector, text + ns, sl);
			k->selector[sl] = '\0';
			memcpy(k->domain, mark + 12, dl);
			k->domain[dl] = '\0';
		}
	}
	int in = 0;
	msv_result r = MSV_OK;
	for (i = (size_t)(q - text); !r && i < len; i++) {
		char c = text[i];
		if (c == '"') {
			in = !in;
			continue;
		}
		if (!in)
			continue;
		if (c == '\\' && i + 1 < len)
			c = text[++i];
		r = msv_buf_addc(rec, c);
	}
	return r;
}

static int list_has(const char *p, size_t n, const char *word)
{
	size_t wl = strlen(word), i = 0;
	while (i < n) {
		while (i < n && (p[i] == ':' || is_fws_c(p[i])))
			i++;
		size_t s = i;
		while (i < n && p[i] != ':' && !is_fws_c(p[i]))
			i++;
		if (i - s == wl && !memcmp(p + s, word, wl))
			return 1;
	}
	return 0;
}

msv_result msv_dkim_key_from_record(msv_dkim_key **out, const char *text, size_t len, msv_error *err)
{
	msv_error dummy;
	if (!err)
		err = &dummy;
	if (!out || !text)
		return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE, "no key record given");
	*out = NULL;
	msv_dkim_key *k = msv_calloc(1, sizeof(*k));
	if (!k)
		return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
	msv_buf rec, raw;
	msv_buf_init(&rec, 65536);
	msv_buf_init(&raw, 65536);
	msv_result r = unzone(k, text, len, &rec);
	dkim_tag tags[DKIM_TAGS_MAX];
	const char *why = NULL;
	long nt = r ? -1 : msv__dkim_parse_tags(rec.data ? rec.data : "", rec.len, tags, DKIM_TAGS_MAX, &why);
	if (r) {
		r = msv_error_set(err, r, MSV_CLASS_LOCAL, "out of memory");
		goto fail;
	}
	if (nt < 0) {
		r = key_error(err, why);
		goto fail;
	}
	size_t n = (size_t)nt;
	const dkim_tag *v = msv__dkim_find_tag(tags, n, "v"), *kt = msv__dkim_find_tag(tags, n, "k"),
	               *p = msv__dkim_find_tag(tags, n, "p"), *h = msv__dkim_find_tag(tags, n, "h"),
	               *s = msv__dkim_find_tag(tags, n, "s"), *t = msv__dkim_find_tag(tags, n, "t");
	if (v && (v != &tags[0] || v->value_len != 5 || memcmp(v->value, "DKIM1", 5))) {
		r = key_error(err, "v= must be DKIM1 and come first");
		goto fail;
	}
	if (!p) {
		r = key_error(err, "no p= tag");
		goto fail;
	}
	k->kind = MSV_DKIM_RSA_SHA256;
	if (kt && kt->value_len == 7 && !memcmp(kt->value, "ed25519", 7))
		k->kind = MSV_DKIM_ED25519_SHA256;
	else if (kt && !(kt->value_len == 3 && !memcmp(kt->value, "rsa", 3))) {
		r = key_error(err, "k= is neither rsa nor ed25519");
		goto fail;
	}
	k->sha256_ok = !h || list_has(h->value, h->value_len, "sha256");
	k->email_ok = !s || list_has(s->value, s->value_len, "email") || list_has(s->value, s->value_len, "*");
	k->strict_i = t && list_has(t->value, t->value_len, "s");
	k->testing = t && list_has(t->value, t->value_len, "y");
	if (p->value_len == 0) { /* revoked (RFC 6376 3.6.1) */
		*out = k;
		goto done;
	}
	if (msv__dkim_b64_decode_fws(&raw, p->value, p->value_len)) {
		r = key_error(err, "p= is not base64");
		goto fail;
	}
	const unsigned char *d = (const unsigned char *)raw.data;
	if (k->kind == MSV_DKIM_ED25519_SHA256) {
		if (raw.len != 32) {
			r = key_error(err, "an ed25519 p= must be 32 octets (RFC 8463 4)");
			goto fail;
		}
		k->pkey = EVP_PKEY_new_raw_public_key_ex(NULL, "ED25519", NULL, d, 32);
	} else {
		k->pkey = d2i_PUBKEY(NULL, &d, (long)raw.len);
		if (!k->pkey) { /* some publish the bare RSAPublicKey */
			d = (const unsigned char *)raw.data;
			k->pkey = d2i_PublicKey(EVP_PKEY_RSA, NULL, &d, (long)raw.len);
		}
		if (k->pkey && !EVP_PKEY_is_a(k->pkey, "RSA")) {
			EVP_PKEY_free(k->pkey);
			k->pkey = NULL;
		}
	}
	ERR_clear_error();
	if (!k->pkey) {
		r = key_error(err, "p= does not hold a usable public key of type k=");
		goto fail;
	}
	*out = k;
	goto done;
fail:
	msv_dkim_key_free(k);
done:
	msv_buf_free(&rec);
	msv_buf_free(&raw);
	return r;
}

msv_result msv_dkim_key_from_pem(msv_dkim_key **out, const char *pem, size_t len, msv_error *err)
{
	msv_error dummy;
	if (!err)
		err = &dummy;
	if (!out || !pem)
		return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE, "no key given");
	*out = NULL;
	EVP_PKEY *pk = msv__dkim_pkey_from_pem(pem, len, 0, err);
	if (!pk)
		return err->code;
	msv_dkim_key *k = msv_calloc(1, sizeof(*k));
	if (!k) {
		EVP_PKEY_free(pk);
		return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
	}
	k->pkey = pk;
	k->kind = msv__dkim_pkey_kind(pk);
	k->sha256_ok = k->email_ok = 1;
	*out = k;
	return MSV_OK;
}

void msv_dkim_key_free(msv_dkim_key *k)
{
	if (!k)
		return;
	EVP_PKEY_free(k->pkey);
	msv_free(k);
}

/* Accessors for verify.c. */
EVP_PKEY *msv__dkim_key_pkey(const msv_dkim_key *k)
{
	return k->pkey;
}

int msv__dkim_key_matches(const msv_dkim_key *k, const char *selector, const char *domain, int kind)
{
	if (k->kind != kind)
		return 0;
	if (k->selector[0] && (strcasecmp(k->selector, selector) || strcasecmp(k->domain, domain)))
		return 0;
	return 1;
}

const char *msv__dkim_key_unusable(const msv_dkim_key *k, const char *sdid, const char *auid_domain)
{
	if (!k->pkey)
		return "the key is revoked (empty p=)";
	if (!k->sha256_ok)
		return "the key record's h= does not allow sha256";
	if (!k->email_ok)
		return "the key record's s= does not allow email";
	if (k->strict_i && auid_domain && strcasecmp(sdid, auid_domain))
		return "the key record has t=s but i= is in a subdomain of d=";
	if (k->kind == MSV_DKIM_RSA_SHA256 && EVP_PKEY_get_bits(k->pkey) < 1024)
		return "the RSA key is shorter than 1024 bits (RFC 8301 3.2)";
	return NULL;
}
