/*
 * SMTP reply accumulator (RFC 5321 4.2, RFC 2034/3463 enhanced codes).
 *
 * Protocol-agnostic: it only answers "is there a complete reply at the
 * start of this buffer, and what is it".  Limits bound what a hostile or
 * broken server can make us buffer (see MSV_REPLY_* in missive/smtp.h).
 */
#include <string.h>

#include "missive/smtp.h"

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static long parse_error(msv_error *err, const char *what)
{
	msv_error_set(err, MSV_E_PROTOCOL, MSV_CLASS_TEMPORARY, "malformed reply from server: %s",
	              what);
	return -(long)MSV_E_PROTOCOL;
}

/* "d.ddd.ddd" followed by a space or the end: returns its length, or 0. */
static size_t enhanced_len(const char *t, size_t n)
{
	size_t i = 0;
	if (n < 5 || (t[0] != '2' && t[0] != '4' && t[0] != '5') || t[1] != '.')
		return 0;
	i = 2;
	for (int part = 0; part < 2; part++) {
		size_t start = i;
		while (i < n && is_digit(t[i]) && i - start < 3)
			i++;
		if (i == start)
			return 0;
		if (part == 0) {
			if (i >= n || t[i] != '.')
				return 0;
			i++;
		}
	}
	if (i < n && t[i] != ' ')
		return 0;
	return i;
}

/* Appends one line's text to the joined summary, dropping an enhanced
 * code that only repeats the first line's. */
static void append_text(msv_smtp_reply *out, const char *t, size_t n, int first)
{
	size_t have = strlen(out->text);
	if (!first) {
		size_t e = enhanced_len(t, n);
		if (e && e == strlen(out->enhanced) && !memcmp(t, out->enhanced, e)) {
			t += e;
			n -= e;
		}
		while (n && *t == ' ') {
			t++;
			n--;
		}
		if (!n || have + 2 >= sizeof(out->text))
			return;
		out->text[have++] = ' ';
		out->text[have] = '\0';
	}
	msv_sanitize(out->text + have, sizeof(out->text) - have, t, n);
}

long msv_smtp_reply_parse(const char *buf, size_t len, msv_smtp_reply *out, msv_buf *lines,
                          msv_error *err)
{
	size_t pos = 0;
	int code = 0, nlines = 0;

	memset(out, 0, sizeof(*out));
	if (lines)
		msv_buf_reset(lines);
	for (;;) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		if (!nl) {
			/* No end of line yet: refuse to wait for a line that is
			 * already longer than any we accept. */
			if (len - pos > MSV_REPLY_LINE_MAX + 2)
				return parse_error(err, "reply line too long");
			if (len > MSV_REPLY_MAX)
				return parse_error(err, "reply too large");
			return 0;
		}
		size_t eol = (size_t)(nl - buf);
		/* Strict CRLF: a bare LF is what smuggling and desync attacks
		 * are made of, and no conforming server sends one. */
		if (eol == pos || buf[eol - 1] != '\r')
			return parse_error(err, "line not terminated by CRLF");
		const char *l = buf + pos;
		size_t llen = eol - 1 - pos;
		if (llen > MSV_REPLY_LINE_MAX)
			return parse_error(err, "reply line too long");
		if (llen < 3 || !is_digit(l[0]) || !is_digit(l[1]) || !is_digit(l[2]) ||
		    l[0] < '2' || l[0] > '5' || l[1] > '5')
			return parse_error(err, "no valid reply code");
		int c = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
		if (nlines && c != code)
			return parse_error(err, "reply code changed inside a multi-line reply");
		char sep = llen > 3 ? l[3] : ' ';
		if (sep != ' ' && sep != '-')
			return parse_error(err, "bad separator after reply code");
		const char *t = llen > 4 ? l + 4 : l + llen;
		size_t tn = llen > 4 ? llen - 4 : 0;
		if (!nlines) {
			code = c;
			out->code = c;
			size_t e = enhanced_len(t, tn);
			if (e) {
				if (t[0] - '0' == c / 100)
					memcpy(out->enhanced, t, e);
				else { /* class must agree with the reply (Postfix smtp_chat) */
					out->enhanced[0] = (char)('0' + c / 100);
					memcpy(out->enhanced + 1, ".0.0", 5);
				}
				t += e;
				tn -= e;
				while (tn && *t == ' ') {
					t++;
					tn--;
				}
			}
		}
		append_text(out, t, tn, nlines == 0);
		if (lines) {
			msv_result r = MSV_OK;
			if (nlines)
				r = msv_buf_add(lines, "\r\n", 2);
			if (!r)
				r = msv_buf_add(lines, llen > 4 ? l + 4 : l + llen, llen > 4 ? llen - 4 : 0);
			if (r) {
				msv_error_set(err, r, MSV_CLASS_LOCAL, "cannot store reply: %s", msv_strerror(r));
				return -(long)r;
			}
		}
		nlines++;
		pos = eol + 1;
		if (nlines > MSV_REPLY_LINES_MAX)
			return parse_error(err, "too many lines in one reply");
		if (pos > MSV_REPLY_MAX)
			return parse_error(err, "reply too large");
		if (sep == ' ')
			return (long)pos;
	}
}
