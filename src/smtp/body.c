/*
 * The message body on its way to the socket.
 *
 * Every bare CR and bare LF becomes CRLF before anything else, then lines
 * starting with "." get a second "." (RFC 5321 4.5.2).  Doing it in this
 * order is what makes SMTP smuggling impossible: the receiver's idea of
 * where the data ends ("\r\n.\r\n") can only occur where we put it, no
 * matter how a downstream server treats lone CRs or LFs.  The state lives
 * in msv_body_xf so input may be split anywhere, even byte by byte.
 */
#include <string.h>

#include "body.h"

void msv__body_init(msv_body_xf *x, int stuff, size_t line_max)
{
	x->stuff = stuff;
	x->cr = 0;
	x->nul = 0;
	x->line_len = 0;
	x->line_no = 1;
	x->line_max = line_max ? line_max : 998;
}

msv_result msv__body_add(msv_body_xf *x, msv_buf *out, const char *p, size_t n, size_t *bad_line)
{
	size_t worst;
	/* Each input octet becomes at most two ("\n" -> "\r\n", "." -> ".."),
	 * plus a CRLF owed for a pending CR. */
	if (msv_mul_size(&worst, n, 2) || msv_add_size(&worst, worst, 2))
		return MSV_E_TOO_LARGE;
	msv_result r = msv_buf_reserve(out, worst);
	if (r)
		return r;
	char *o = out->data + out->len;
	for (size_t i = 0; i < n; i++) {
		if (!x->cr) {
			/* Fast path: copy the run of ordinary octets up to the next
			 * CR, LF or NUL in one go (memchr is vectorized), within
			 * what the line may still hold. */
			size_t end = n;
			const char *q = memchr(p + i, '\n', end - i);
			if (q)
				end = (size_t)(q - p);
			if ((q = memchr(p + i, '\r', end - i)))
				end = (size_t)(q - p);
			if ((q = memchr(p + i, '\0', end - i)))
				end = (size_t)(q - p);
			size_t run = end - i, room = x->line_max - x->line_len;
			if (run > room)
				run = room;
			if (run) {
				if (!x->line_len && p[i] == '.' && x->stuff)
					*o++ = '.';
				memcpy(o, p + i, run);
				o += run;
				x->line_len += run;
				i += run;
				if (i == n)
					break;
			}
		}
		char c = p[i];
		if (x->cr) {
			x->cr = 0;
			*o++ = '\r';
			*o++ = '\n';
			x->line_len = 0;
			x->line_no++;
			if (c == '\n')
				continue;
		}
		if (c == '\r') {
			x->cr = 1;
			continue;
		}
		if (c == '\n') {
			*o++ = '\r';
			*o++ = '\n';
			x->line_len = 0;
			x->line_no++;
			continue;
		}
		/* NUL is not text (RFC 5321 4.5.2 and 8BITMIME alike), and some
		 * servers end a line at it: refuse rather than send it. */
		if (++x->line_len > x->line_max || c == '\0') {
			x->nul = c == '\0';
			out->len = (size_t)(o - out->data);
			out->data[out->len] = '\0';
			if (bad_line)
				*bad_line = x->line_no;
			return MSV_E_BAD_MESSAGE;
		}
		if (x->line_len == 1 && c == '.' && x->stuff)
			*o++ = '.';
		*o++ = c;
	}
	out->len = (size_t)(o - out->data);
	out->data[out->len] = '\0';
	return MSV_OK;
}

msv_result msv__body_finish(msv_body_xf *x, msv_buf *out)
{
	if (x->cr || x->line_len) {
		x->cr = 0;
		x->line_len = 0;
		return msv_buf_add(out, "\r\n", 2);
	}
	return MSV_OK;
}

void msv_smtp_body_scan(msv_body_info *info, const char *data, size_t len, size_t line_max)
{
	memset(info, 0, sizeof(*info));
	if (!line_max)
		line_max = 998;
	size_t line = 1, cur = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)data[i];
		if (c == '\r' || c == '\n') {
			/* CRLF counts once; a bare CR or LF becomes a CRLF too. */
			if (c == '\r' && i + 1 < len && data[i + 1] == '\n')
				i++;
			info->size += 2;
			if (cur > info->longest_line)
				info->longest_line = cur;
			cur = 0;
			line++;
			continue;
		}
		info->size++;
		cur++;
		if (c >= 0x80)
			info->has_8bit = 1;
		if (c == 0 && !info->nul_line_no)
			info->nul_line_no = line;
		if (cur > line_max && !info->long_line_no)
			info->long_line_no = line;
	}
	if (cur > info->longest_line)
		info->longest_line = cur;
	if (cur)
		info->size += 2; /* the CRLF the sender will add */
}
