/* EHLO reply parsing (RFC 5321 4.1.1.1) into capability flags. */
#include <strings.h>
#include <string.h>

#include "missive/smtp.h"

static const struct {
	const char *kw;
	unsigned flag;
} keywords[] = {
	{"PIPELINING", MSV_CAP_PIPELINING},
	{"CHUNKING", MSV_CAP_CHUNKING},
	{"8BITMIME", MSV_CAP_8BITMIME},
	{"SMTPUTF8", MSV_CAP_SMTPUTF8},
	{"DSN", MSV_CAP_DSN},
	{"ENHANCEDSTATUSCODES", MSV_CAP_ENHANCEDSTATUSCODES},
	{"STARTTLS", MSV_CAP_STARTTLS},
	{"BINARYMIME", MSV_CAP_BINARYMIME},
};

static int word_is(const char *w, size_t n, const char *kw)
{
	return strlen(kw) == n && !strncasecmp(w, kw, n);
}

/* Reads a decimal number, refusing overflow: 0 on success. */
static int parse_u64(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	if (!n || n > 20)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, (uint64_t)(s[i] - '0'), &v))
			return -1;
	}
	*out = v;
	return 0;
}

static void parse_auth(msv_smtp_caps *caps, const char *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		while (i < n && p[i] == ' ')
			i++;
		size_t s = i;
		while (i < n && p[i] != ' ')
			i++;
		msv_auth_mech m;
		char name[32];
		if (i > s && i - s < sizeof(name)) {
			memcpy(name, p + s, i - s);
			name[i - s] = '\0';
			if (msv_smtp_auth_mech_parse(name, &m) == 0 && m != MSV_AUTH_AUTO)
				caps->auth_mechs |= 1u << m;
		}
	}
}

static void parse_line(msv_smtp_caps *caps, const char *l, size_t n)
{
	size_t k = 0;
	/* "AUTH=LOGIN PLAIN" is the form some old servers still send. */
	while (k < n && l[k] != ' ' && l[k] != '=')
		k++;
	const char *arg = k < n ? l + k + 1 : l + n;
	size_t an = k < n ? n - k - 1 : 0;
	if (word_is(l, k, "AUTH")) {
		caps->flags |= MSV_CAP_AUTH;
		parse_auth(caps, arg, an);
		return;
	}
	if (word_is(l, k, "SIZE")) {
		uint64_t v = 0;
		caps->flags |= MSV_CAP_SIZE;
		/* No number, or a malformed one, means no announced limit. */
		caps->size_max = parse_u64(arg, an, &v) == 0 ? v : 0;
		return;
	}
	for (size_t i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++)
		if (word_is(l, k, keywords[i].kw)) {
			caps->flags |= keywords[i].flag;
			return;
		}
}

msv_result msv_smtp_parse_ehlo(msv_smtp_caps *caps, const char *text, size_t len)
{
	memset(caps, 0, sizeof(*caps));
	caps->esmtp = 1;
	size_t pos = 0;
	int first = 1;
	while (pos <= len) {
		const char *e = memchr(text + pos, '\r', len - pos);
		size_t end = e ? (size_t)(e - text) : len;
		if (!first)
			parse_line(caps, text + pos, end - pos);
		first = 0;
		if (!e)
			break;
		pos = end + 1;
		if (pos < len && text[pos] == '\n')
			pos++;
	}
	return MSV_OK;
}
