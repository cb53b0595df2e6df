/*
 * SASL mechanisms: PLAIN (RFC 4616), LOGIN (draft-murchison-sasl-login),
 * CRAM-MD5 (RFC 2195) and XOAUTH2 (Google's OAuth 2.0 profile).
 * Every buffer that held a secret is wiped before it is freed.
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>
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
		/* A 334 here carries a JSON error; the client must answer with
		 * an empty line to get the final 535. */
		return step == 0 ? MSV_OK : MSV_E_PROTOCOL;
	default:
		return MSV_E_PROTOCOL; /* PLAIN sent everything up front */
	}
}
