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

/* Length of the valid UTF-8 sequence (RFC 3629: no overlongs, no
 * surrogates, nothing past U+10FFFF) at s[0], n >= 1 octets available;
 * 0 when there is none. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t len = s[0] >= 0xc2 && s[0] <= 0xdf   ? 2
	             : s[0] >= 0xe0 && s[0] <= 0xef ? 3
	             : s[0] >= 0xf0 && s[0] <= 0xf4 ? 4
	                                            : 0;
	if (!len || len > n)
		return 0;
	unsigned char lo = s[0] == 0xe0 ? 0xa0 : s[0] == 0xf0 ? 0x90 : 0x80;
	unsigned char hi = s[0] == 0xed ? 0x9f : s[0] == 0xf4 ? 0x8f : 0xbf;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t k = 2; k < len; k++)
		if ((s[k] & 0xc0) != 0x80)
			return 0;
	return len;
}

/* Whether the code point at s (a valid sequence) is a control a
 * terminal or log viewer would act on: C1 controls, line and paragraph
 * separators, and the bidirectional overrides and isolates that make a
 * line read differently from what it holds. */
static int utf8_control(const unsigned char *s)
{
	if (s[0] == 0xc2 && s[1] < 0xa0)
		return 1; /* U+0080..U+009F */
	if (s[0] == 0xe2 && s[1] == 0x80 && s[2] >= 0xa8 && s[2] <= 0xae)
		return 1; /* U+2028..U+202E */
	if (s[0] == 0xe2 && s[1] == 0x81 && s[2] >= 0xa6 && s[2] <= 0xa9)
		return 1; /* U+2066..U+2069 */
	return 0;
}

/* msv_sanitize, but valid UTF-8 other than controls is kept (never cut
 * in the middle of a character); each other non-printable octet is '?'. */
static void sanitize_utf8(char *dst, size_t dstsz, const char *src, size_t len)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t i = 0, o = 0;
	while (i < len && o + 1 < dstsz) {
		size_t n = s[i] >= 0x80 ? utf8_len(s + i, len - i) : 0;
		if (n && !utf8_control(s + i)) {
			if (o + n + 1 > dstsz)
				break;
			memcpy(dst + o, s + i, n);
			o += n;
			i += n;
			continue;
		}
		dst[o++] = s[i] >= 0x20 && s[i] < 0x7f ? (char)s[i] : '?';
		i += n ? n : 1;
	}
	dst[o] = '\0';
}

msv_result msv_error_vset(msv_error *e, msv_result code, msv_class cls, const char *fmt,
                          va_list ap)
{
	if (!e)
		return code;
	msv_error_clear(e);
	e->code = code;
	e->cls = cls;
	char tmp[MSV_TEXT_MAX + 4]; /* room to finish the last character */
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	/* Messages often quote peer-supplied text; keep them one clean line,
	 * but readable: a user's UTF-8 (a name, an IDN) is shown as written. */
	sanitize_utf8(e->message, sizeof(e->message), tmp, strlen(tmp));
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

void msv_sanitize_utf8(char *dst, size_t dstsz, const char *src, size_t len)
{
	if (dstsz)
		sanitize_utf8(dst, dstsz, src, len);
}
