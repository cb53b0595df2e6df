/*
 * SASL mechanisms: PLAIN (RFC 4616), LOGIN (draft-murchison-sasl-login),
 * CRAM-MD5 (RFC 2195), XOAUTH2 (Google's OAuth 2.0 profile) and
 * OAUTHBEARER (RFC 7628).
 * Every buffer that held a secret is wiped before it is freed.
 */
#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

#include "sasl.h"

#define SASL_MAX 16384 /* bearer tokens run to a few KiB */

static msv_result b64_of(msv_buf *out, const char *a, size_t an)
{
	return msv_base64_encode(out, a, an);
}

static msv_result plain_response(msv_sasl *x, msv_buf *out)
{
	msv_buf raw;
	msv_buf_init(&raw, SASL_MAX);
	/* authzid empty: act as the authenticated user (RFC 4616 2). */
	msv_result r = msv_buf_addc(&raw, '\0');
	if (!r)
		r = msv_buf_addstr(&raw, x->user);
	if (!r)
		r = msv_buf_addc(&raw, '\0');
	if (!r)
		r = msv_buf_addstr(&raw, x->secret);
	if (!r)
		r = b64_of(out, raw.data, raw.len);
	msv_buf_free_secret(&raw);
	return r;
}

static msv_result xoauth2_response(msv_sasl *x, msv_buf *out)
{
	msv_buf raw;
	msv_buf_init(&raw, SASL_MAX);
	msv_result r = msv_buf_addf(&raw, "user=%s\001auth=Bearer %s\001\001", x->user, x->secret);
	if (!r)
		r = b64_of(out, raw.data, raw.len);
	msv_buf_free_secret(&raw);
	return r;
}

/* RFC 7628 3.1: GS2 header "n,a=USER," then host, port and auth, each
 * ended by ^A, and a final ^A.  A ',' or '=' in the user is escaped as
 * =2C and =3D (RFC 5801 5.1). */
static msv_result oauthbearer_response(msv_sasl *x, msv_buf *out)
{
	msv_buf raw;
	msv_buf_init(&raw, SASL_MAX);
	msv_result r = msv_buf_addstr(&raw, "n,a=");
	for (const char *p = x->user; !r && *p; p++)
		r = *p == ',' ? msv_buf_addstr(&raw, "=2C")
		    : *p == '=' ? msv_buf_addstr(&raw, "=3D")
		                : msv_buf_addc(&raw, *p);
	if (!r)
		r = msv_buf_addf(&raw, ",\001host=%s\001port=%u\001auth=Bearer %s\001\001",
		                 x->host ? x->host : "", x->port, x->secret);
	if (!r)
		r = b64_of(out, raw.data, raw.len);
	msv_buf_free_secret(&raw);
	return r;
}

/* A field too long for the buffer is left out (the buffer empties):
 * the text is only for the error message. */
static void status_field(msv_buf *b, const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	if (cJSON_IsString(v) && v->valuestring &&
	    msv_buf_addf(b, "%s%s=%s", b->len ? " " : "", name, v->valuestring))
		msv_buf_reset(b);
}

int msv__sasl_oauth_status(const char *challenge, size_t n, char *out, size_t cap)
{
	msv_buf raw, text;
	msv_buf_init(&raw, SASL_MAX);
	msv_buf_init(&text, SASL_MAX);
	if (cap)
		out[0] = '\0';
	if (msv_base64_decode(&raw, challenge, n)) {
		msv_buf_free(&raw);
		return -1;
	}
	cJSON *o = raw.len ? cJSON_ParseWithLength(raw.data, raw.len) : NULL;
	if (cJSON_IsObject(o)) {
		status_field(&text, o, "status");
		status_field(&text, o, "schemes");
		status_field(&text, o, "scope");
	}
	cJSON_Delete(o);
	const msv_buf *src = text.len ? &text : &raw;
	if (cap)
		msv_sanitize(out, cap, src->data ? src->data : "", src->len);
	msv_buf_free(&raw);
	msv_buf_free(&text);
	return 0;
}

static msv_result cram_response(msv_sasl *x, const char *challenge, size_t n, msv_buf *out)
{
	msv_buf ch, raw;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	msv_buf_init(&ch, SASL_MAX);
	msv_buf_init(&raw, SASL_MAX);
	msv_result r = msv_base64_decode(&ch, challenge, n);
	if (r)
		goto done;
	if (!HMAC(EVP_md5(), x->secret, (int)strlen(x->secret), (const unsigned char *)ch.data,
	          ch.len, md, &mdlen)) {
		r = MSV_E_SYSTEM;
		goto done;
	}
	r = msv_buf_addf(&raw, "%s ", x->user);
	for (unsigned i = 0; !r && i < mdlen; i++)
		r = msv_buf_addf(&raw, "%02x", md[i]);
	if (!r)
		r = b64_of(out, raw.data, raw.len);
done:
	msv_wipe(md, sizeof(md));
	msv_buf_free(&ch);
	msv_buf_free_secret(&raw);
	return r;
}

msv_result msv__sasl_start(msv_sasl *x, msv_buf *ir)
{
	x->step = 0;
	switch (x->mech) {
	case MSV_AUTH_PLAIN:
		return plain_response(x, ir);
	case MSV_AUTH_XOAUTH2:
		return xoauth2_response(x, ir);
	case MSV_AUTH_OAUTHBEARER:
		return oauthbearer_response(x, ir);
	case MSV_AUTH_LOGIN:
	case MSV_AUTH_CRAM_MD5:
		return MSV_OK;
	default:
		return MSV_E_INVALID;
	}
}

msv_result msv__sasl_step(msv_sasl *x, const char *challenge, size_t n, msv_buf *resp)
{
	int step = x->step++;
	switch (x->mech) {
	case MSV_AUTH_LOGIN:
		/* The prompts ("Username:", "Password:") are not reliable across
		 * servers; the order is. */
		if (step == 0)
			return b64_of(resp, x->user, strlen(x->user));
		if (step == 1)
			return b64_of(resp, x->secret, strlen(x->secret));
		return MSV_E_PROTOCOL;
	case MSV_AUTH_CRAM_MD5:
		return step == 0 ? cram_response(x, challenge, n, resp) : MSV_E_PROTOCOL;
	case MSV_AUTH_XOAUTH2:
	case MSV_AUTH_OAUTHBEARER:
		/* A 334 here carries a JSON error: the token was refused.  The
		 * client answers to get the final 535: XOAUTH2 with an empty
		 * line, OAUTHBEARER with ^A (RFC 7628 3.2.3). */
		if (step != 0)
			return MSV_E_PROTOCOL;
		x->token_refused = 1;
		if (msv__sasl_oauth_status(challenge, n, x->status, sizeof(x->status)))
			snprintf(x->status, sizeof(x->status), "(undecodable challenge)");
		return x->mech == MSV_AUTH_OAUTHBEARER ? b64_of(resp, "\001", 1) : MSV_OK;
	default:
		return MSV_E_PROTOCOL; /* PLAIN sent everything up front */
	}
}
