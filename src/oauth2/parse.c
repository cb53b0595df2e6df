/*
 * Token endpoint answers (RFC 6749 5.1 success, 5.2 error) and device
 * authorization answers (RFC 8628 3.2), one tolerant parser: every field
 * optional here, the caller says which it needs.  Numbers may come as
 * JSON numbers or strings (some endpoints quote expires_in).
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "oauth2_int.h"

#define SECONDS_MAX (86400LL * 366) /* no token or code lives longer than a year */

void msv__oauth2_resp_free(msv__oauth2_resp *r)
{
	msv_free_secret(r->access_token);
	msv_free_secret(r->refresh_token);
	msv_free_secret(r->device_code);
	msv_free(r->token_type);
	msv_free(r->scope);
	msv_free(r->error);
	msv_free(r->error_description);
	msv_free(r->user_code);
	msv_free(r->verification_uri);
	msv_free(r->verification_uri_complete);
	memset(r, 0, sizeof(*r));
	r->expires_in = r->interval = -1;
}

/* A string field: -1 when present with another type or embedding a NUL. */
static int take_str(const cJSON *obj, const char *name, char **out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
	if (!v || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsString(v) || !v->valuestring)
		return -1;
	*out = msv_strdup(v->valuestring);
	return *out ? 0 : -2;
}

static int take_seconds(const cJSON *obj, const char *name, int64_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
	if (!v || cJSON_IsNull(v))
		return 0;
	double d;
	if (cJSON_IsNumber(v)) {
		d = v->valuedouble;
	} else if (cJSON_IsString(v) && v->valuestring && *v->valuestring) {
		char *end;
		d = strtod(v->valuestring, &end);
		if (*end)
			return -1;
	} else {
		return -1;
	}
	if (!(d >= 0) || d > (double)SECONDS_MAX)
		return -1;
	*out = (int64_t)d;
	return 0;
}

static msv_result fill(const cJSON *root, msv__oauth2_resp *out, msv_error *err)
{
	static const struct {
		const char *name;
		size_t off;
	} strs[] = {
#define F(n) {#n, offsetof(msv__oauth2_resp, n)}
		F(access_token), F(refresh_token), F(token_type), F(scope), F(error),
		F(error_description), F(device_code), F(user_code), F(verification_uri),
		F(verification_uri_complete),
#undef F
	};
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		int rc = take_str(root, strs[i].name, (char **)((char *)out + strs[i].off));
		if (rc == -2)
			return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
		if (rc)
			return msv_error_set(err, MSV_E_PROTOCOL, MSV_CLASS_TEMPORARY,
			                     "token endpoint answer: %s is not a string", strs[i].name);
	}
	/* Microsoft's device endpoint says verification_url (v1 name). */
	if (!out->verification_uri && take_str(root, "verification_url", &out->verification_uri) == -2)
		return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
	if (take_seconds(root, "expires_in", &out->expires_in))
		return msv_error_set(err, MSV_E_PROTOCOL, MSV_CLASS_TEMPORARY,
		                     "token endpoint answer: bad expires_in");
	if (take_seconds(root, "interval", &out->interval))
		return msv_error_set(err, MSV_E_PROTOCOL, MSV_CLASS_TEMPORARY,
		                     "token endpoint answer: bad interval");
	return MSV_OK;
}

msv_result msv__oauth2_parse(const char *json, size_t n, msv__oauth2_resp *out, msv_error *err)
{
	memset(out, 0, sizeof(*out));
	out->expires_in = out->interval = -1;
	if (n > MSV_OAUTH2_RESP_MAX)
		return msv_error_set(err, MSV_E_TOO_LARGE, MSV_CLASS_TEMPORARY,
		                     "token endpoint answer larger than %d bytes", MSV_OAUTH2_RESP_MAX);
	cJSON *root = cJSON_ParseWithLength(json, n);
	if (!root || !cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return msv_error_set(err, MSV_E_PROTOCOL, MSV_CLASS_TEMPORARY,
		                     "token endpoint answer is not a JSON object");
	}
	msv_result r = fill(root, out, err);
	cJSON_Delete(root);
	if (r)
		msv__oauth2_resp_free(out);
	return r;
}

msv_result msv__form_add(msv_buf *b, const char *key, const char *value)
{
	static const char hex[] = "0123456789ABCDEF";
	msv_result r = b->len ? msv_buf_addc(b, '&') : MSV_OK;
	if (!r)
		r = msv_buf_addf(b, "%s=", key);
	for (const unsigned char *p = (const unsigned char *)value; !r && *p; p++) {
		/* RFC 3986 unreserved stay; the rest percent-encoded. */
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		    strchr("-._~", *p))
			r = msv_buf_addc(b, (char)*p);
		else
			r = msv_buf_addf(b, "%%%c%c", hex[*p >> 4], hex[*p & 15]);
	}
	return r;
}
