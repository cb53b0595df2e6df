/* Secret masking for logs and traces, and the logging entry point. */
#include <stdio.h>
#include <string.h>

#include "missive/core.h"

#define REDACTED "[redacted]"
#define SECRETS_MAX 16
/* A secret is a password or token and its encodings; none is longer. */
#define SECRET_LEN_MAX 8192

struct msv_redactor {
	msv_buf secrets[SECRETS_MAX];
	size_t count;
};

msv_result msv_redactor_new(msv_redactor **out)
{
	msv_redactor *r = msv_calloc(1, sizeof(*r));
	if (!r)
		return MSV_E_NOMEM;
	*out = r;
	return MSV_OK;
}

void msv_redactor_free(msv_redactor *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->count; i++)
		msv_buf_free_secret(&r->secrets[i]);
	msv_free(r);
}

static msv_result add_one(msv_redactor *r, const char *s, size_t n)
{
	if (n < 3)
		return MSV_OK;
	for (size_t i = 0; i < r->count; i++)
		if (r->secrets[i].len == n && !memcmp(r->secrets[i].data, s, n))
			return MSV_OK;
	if (r->count == SECRETS_MAX)
		return MSV_E_TOO_LARGE;
	msv_buf *b = &r->secrets[r->count];
	msv_buf_init(b, SECRET_LEN_MAX);
	msv_result rc = msv_buf_add(b, s, n);
	if (rc)
		return rc;
	r->count++;
	return MSV_OK;
}

msv_result msv_redactor_add(msv_redactor *r, const char *secret, size_t n)
{
	msv_result rc = add_one(r, secret, n);
	if (rc || n < 3)
		return rc;
	msv_buf b64;
	msv_buf_init(&b64, SECRET_LEN_MAX);
	rc = msv_base64_encode(&b64, secret, n);
	if (!rc)
		rc = add_one(r, b64.data, b64.len);
	msv_buf_free_secret(&b64);
	return rc;
}

msv_result msv_redact(const msv_redactor *r, msv_buf *out, const char *text, size_t n)
{
	size_t i = 0, lit = 0;
	while (r && i < n) {
		size_t hit = 0;
		for (size_t k = 0; k < r->count; k++) {
			const msv_buf *s = &r->secrets[k];
			if (s->len <= n - i && !memcmp(text + i, s->data, s->len) && s->len > hit)
				hit = s->len;
		}
		if (!hit) {
			i++;
			continue;
		}
		msv_result rc = msv_buf_add(out, text + lit, i - lit);
		if (!rc)
			rc = msv_buf_addstr(out, REDACTED);
		if (rc)
			return rc;
		i += hit;
		lit = i;
	}
	return msv_buf_add(out, text + lit, n - lit);
}

void msv_log(const msv_logger *lg, msv_log_level level, const char *fmt, ...)
{
	if (!lg || !lg->fn || level > lg->level)
		return;
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	size_t len = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
	msv_buf clean;
	msv_buf_init(&clean, sizeof(line) * 4);
	if (msv_redact(lg->redact, &clean, line, len) == MSV_OK)
		lg->fn(lg->payload, level, clean.data ? clean.data : "");
	msv_buf_free_secret(&clean);
}
