/* The error value shared by every layer, and the result-code tables. */
#include <stdio.h>
#include <string.h>

#include "missive/core.h"

static const char *const result_text[] = {
#define X(sym, num, name, text) [num] = text,
	MSV_RESULTS(X)
#undef X
};

static const char *const result_name[] = {
#define X(sym, num, name, text) [num] = name,
	MSV_RESULTS(X)
#undef X
};

const char *msv_strerror(msv_result r)
{
	if ((unsigned)r >= MSV__RESULT_COUNT || !result_text[r])
		return "unknown error";
	return result_text[r];
}

const char *msv_result_name(msv_result r)
{
	if ((unsigned)r >= MSV__RESULT_COUNT || !result_name[r])
		return "unknown";
	return result_name[r];
}

const char *msv_class_name(msv_class c)
{
	switch (c) {
	case MSV_CLASS_NONE: return "none";
	case MSV_CLASS_TEMPORARY: return "temporary";
	case MSV_CLASS_PERMANENT: return "permanent";
	case MSV_CLASS_LOCAL: return "local";
	case MSV_CLASS_CONFIG: return "config";
	case MSV_CLASS_USAGE: return "usage";
	}
	return "unknown";
}

msv_class msv_class_of_reply(int reply_code)
{
	if (reply_code >= 200 && reply_code < 400)
		return MSV_CLASS_NONE;
	if (reply_code >= 400 && reply_code < 500)
		return MSV_CLASS_TEMPORARY;
	/* 5xx, and any code outside 2xx-5xx, which the reply parser never
	 * lets through anyway: treating the unknown as permanent follows
	 * Postfix, which turns odd codes into 5.5.0. */
	return MSV_CLASS_PERMANENT;
}

void msv_error_clear(msv_error *e)
{
	memset(e, 0, sizeof(*e));
}

msv_result msv_error_vset(msv_error *e, msv_result code, msv_class cls, const char *fmt,
                          va_list ap)
{
	if (!e)
		return code;
	msv_error_clear(e);
	e->code = code;
	e->cls = cls;
	char tmp[MSV_TEXT_MAX];
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	/* Messages often quote peer-supplied text; keep them one clean line. */
	msv_sanitize(e->message, sizeof(e->message), tmp, strlen(tmp));
	return code;
}

msv_result msv_error_set(msv_error *e, msv_result code, msv_class cls, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	msv_error_vset(e, code, cls, fmt, ap);
	va_end(ap);
	return code;
}

void msv_sanitize(char *dst, size_t dstsz, const char *src, size_t len)
{
	if (!dstsz)
		return;
	size_t i = 0;
	for (; i < len && i + 1 < dstsz; i++) {
		unsigned char c = (unsigned char)src[i];
		dst[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	dst[i] = '\0';
}
