/*
 * The JWT bearer grant's assertion (RFC 7523 2.1, Google's service
 * accounts): header {"alg":"RS256","typ":"JWT"}, claims iss, scope, aud,
 * sub, iat, exp, signed with the key file's RSA key (RFC 7518 3.3).
 */
#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <string.h>

#include "oauth2_int.h"

#define JWT_MAX 16384
#define JWT_LIFETIME_S 3600 /* Google's maximum */

msv_result msv__base64url(msv_buf *out, const void *data, size_t n)
{
	size_t start = out->len;
	msv_result r = msv_base64_encode(out, data, n);
	if (r)
		return r;
	size_t w = start;
	for (size_t i = start; i < out->len; i++) {
		char c = out->data[i];
		if (c == '=')
			continue;
		out->data[w++] = c == '+' ? '-' : c == '/' ? '_' : c;
	}
	out->len = w;
	out->data[w] = '\0';
	return MSV_OK;
}

void msv__oauth2_sa_free(msv__oauth2_sa *sa)
{
	msv_free(sa->client_email);
	msv_free(sa->token_uri);
	EVP_PKEY_free(sa->pkey);
	memset(sa, 0, sizeof(*sa));
}

static msv_result sa_key(msv__oauth2_sa *sa, const char *pem, msv_error *err)
{
	BIO *bio = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *k = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	if (!k || EVP_PKEY_get_base_id(k) != EVP_PKEY_RSA) {
		EVP_PKEY_free(k);
		return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
		                     "service account file: private_key is not an RSA key in PEM");
	}
	sa->pkey = k;
	return MSV_OK;
}

msv_result msv__oauth2_sa_load(msv__oauth2_sa *sa, const char *json, size_t n, msv_error *err)
{
	memset(sa, 0, sizeof(*sa));
	cJSON *root = cJSON_ParseWithLength(json, n);
	const cJSON *email = cJSON_GetObjectItemCaseSensitive(root, "client_email");
	const cJSON *key = cJSON_GetObjectItemCaseSensitive(root, "private_key");
	const cJSON *uri = cJSON_GetObjectItemCaseSensitive(root, "token_uri");
	msv_result r = MSV_OK;
	if (!root || !cJSON_IsString(email) || !cJSON_IsString(key)) {
		r = msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
		                  "service account file: not a JSON key with client_email and private_key");
		goto done;
	}
	sa->client_email = msv_strdup(email->valuestring);
	if (cJSON_IsString(uri))
		sa->token_uri = msv_strdup(uri->valuestring);
	if (!sa->client_email || (cJSON_IsString(uri) && !sa->token_uri)) {
		r = msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
		goto done;
	}
	r = sa_key(sa, key->valuestring, err);
done:
	if (key && cJSON_IsString(key))
		msv_wipe(key->valuestring, strlen(key->valuestring));
	cJSON_Delete(root);
	if (r)
		msv__oauth2_sa_free(sa);
	return r;
}

static msv_result claims(msv_buf *out, const msv__oauth2_sa *sa, const char *aud, const char *scope,
                         const char *sub, int64_t now_s)
{
	cJSON *c = cJSON_CreateObject();
	int ok = c && cJSON_AddStringToObject(c, "iss", sa->client_email) &&
	         (!scope || cJSON_AddStringToObject(c, "scope", scope)) &&
	         cJSON_AddStringToObject(c, "aud", aud) &&
	         (!sub || cJSON_AddStringToObject(c, "sub", sub)) &&
	         cJSON_AddNumberToObject(c, "iat", (double)now_s) &&
	         cJSON_AddNumberToObject(c, "exp", (double)(now_s + JWT_LIFETIME_S));
	char *s = ok ? cJSON_PrintUnformatted(c) : NULL;
	cJSON_Delete(c);
	if (!s)
		return MSV_E_NOMEM;
	msv_result r = msv__base64url(out, s, strlen(s));
	cJSON_free(s);
	return r;
}

static msv_result sign(msv_buf *out, EVP_PKEY *k, const char *data, size_t n)
{
	unsigned char sig[1024];
	size_t siglen = sizeof(sig);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	msv_result r = MSV_E_SYSTEM;
	if (md && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, k) == 1 &&
	    EVP_DigestSign(md, sig, &siglen, (const unsigned char *)data, n) == 1)
		r = msv__base64url(out, sig, siglen);
	EVP_MD_CTX_free(md);
	return r;
}

msv_result msv__oauth2_jwt(const msv__oauth2_sa *sa, const char *aud, const char *scope,
                           const char *sub, int64_t now_s, msv_buf *out)
{
	static const char header[] = "{\"alg\":\"RS256\",\"typ\":\"JWT\"}";
	msv_buf b;
	msv_buf_init(&b, JWT_MAX);
	msv_result r = msv__base64url(&b, header, sizeof(header) - 1);
	if (!r)
		r = msv_buf_addc(&b, '.');
	if (!r)
		r = claims(&b, sa, aud, scope, sub, now_s);
	if (!r) {
		size_t signed_len = b.len;
		r = msv_buf_addc(&b, '.');
		if (!r)
			r = sign(&b, sa->pkey, b.data, signed_len);
	}
	if (!r)
		r = msv_buf_add(out, b.data, b.len);
	msv_buf_free_secret(&b);
	return r;
}
