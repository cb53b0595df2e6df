/* API keys: secrets, hashes, constant-time lookup, sender domains
 * (api_keys.h). */
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "api_keys.h"

int app_key_name_valid(const char *name)
{
	if (!name)
		return 0;
	size_t n = strlen(name);
	return n > 0 && n <= MSV_KEY_NAME_MAX &&
	       strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

msv_result app_key_hash(const char *secret, size_t len, unsigned char hash[APP_KEY_HASH_LEN],
                        msv_error *err)
{
	unsigned int hl = 0;
	if (!secret && len)
		return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE, "no secret to hash");
	if (!EVP_Digest(secret ? secret : "", len, hash, &hl, EVP_sha256(), NULL) ||
	    hl != APP_KEY_HASH_LEN)
		return msv_error_set(err, MSV_E_SYSTEM, MSV_CLASS_LOCAL,
		                     "cannot hash an API key: SHA-256 failed");
	return MSV_OK;
}

msv_result app_key_new(char secret[APP_KEY_SECRET_LEN + 1], unsigned char hash[APP_KEY_HASH_LEN],
                       msv_error *err)
{
	unsigned char raw[32]; /* 256 bits: guessing is hopeless, online or offline */
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return msv_error_set(err, MSV_E_SYSTEM, MSV_CLASS_LOCAL,
		                     "cannot make an API key: no random bytes from OpenSSL");
	static const char hex[] = "0123456789abcdef";
	memcpy(secret, APP_KEY_PREFIX, 4);
	for (size_t i = 0; i < sizeof(raw); i++) {
		secret[4 + 2 * i] = hex[raw[i] >> 4];
		secret[4 + 2 * i + 1] = hex[raw[i] & 15];
	}
	secret[APP_KEY_SECRET_LEN] = '\0';
	msv_wipe(raw, sizeof(raw));
	msv_result r = app_key_hash(secret, APP_KEY_SECRET_LEN, hash, err);
	if (r)
		msv_wipe(secret, APP_KEY_SECRET_LEN + 1);
	return r;
}

long app_key_find(const msv_queue_key *keys, size_t n, const unsigned char hash[APP_KEY_HASH_LEN])
{
	long found = -1;
	/* No early exit: the loop's length depends on n only.  The branch on
	 * the result picks which index to keep, nothing more. */
	for (size_t i = 0; i < n; i++) {
		int same = CRYPTO_memcmp(keys[i].hash, hash, APP_KEY_HASH_LEN) == 0;
		if (same && found < 0)
			found = (long)i;
	}
	return found;
}

msv_result app_key_lookup(const msv_queue_key *keys, size_t n, const char *secret, size_t len,
                          long *index, msv_error *err)
{
	unsigned char h[APP_KEY_HASH_LEN];
	*index = -1;
	msv_result r = app_key_hash(secret, len, h, err);
	if (r)
		return r;
	*index = app_key_find(keys, n, h);
	return MSV_OK;
}

/* 1 when s[0..n) is a host name: labels of letters, digits and inner
 * hyphens (RFC 1123 2.1), 1..63 octets each, 253 in all. */
static int host_name_ok(const char *s, size_t n)
{
	if (n == 0 || n > 253)
		return 0;
	size_t label = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
		if (!alnum && !(c == '-' && label > 0))
			return 0;
		if (++label > 63)
			return 0;
	}
	return label > 0 && s[n - 1] != '-';
}

static int is_blank(char c)
{
	return c == ' ' || c == '\t';
}

msv_result app_key_domains_normalize(const char *in, char **out, msv_error *err)
{
	*out = NULL;
	if (!in)
		in = "";
	msv_buf b;
	msv_buf_init(&b, strlen(in) + 1);
	const char *p = in;
	int any = 0;
	for (;;) {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		const char *s = p;
		while (n && is_blank(*s))
			s++, n--;
		while (n && is_blank(s[n - 1]))
			n--;
		if (!n && !end && !any)
			break; /* "" or blanks: any domain */
		if (!host_name_ok(s, n)) {
			msv_buf_free(&b);
			return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE,
			                     "sender domain \"%.*s\" is not a host name (letters, digits, "
			                     "hyphens and dots; an IDN as its xn-- form)",
			                     (int)(n > 200 ? 200 : n), s);
		}
		if ((any && msv_buf_addc(&b, ',')) || msv_buf_add(&b, s, n)) {
			msv_buf_free(&b);
			return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
		}
		any = 1;
		if (!end)
			break;
		p = end + 1;
	}
	*out = msv_strdup(any ? b.data : "");
	msv_buf_free(&b);
	if (!*out)
		return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
	for (char *c = *out; *c; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
	return MSV_OK;
}

int app_key_domain_allowed(const char *domains, const char *domain)
{
	if (!domains || !*domains)
		return 1;
	if (!domain || !*domain)
		return 0;
	size_t dl = strlen(domain);
	for (const char *p = domains;;) {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		if (n == dl && strncasecmp(p, domain, n) == 0)
			return 1;
		if (!end)
			return 0;
		p = end + 1;
	}
}
