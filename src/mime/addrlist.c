/* RFC 5322 address lists (To, Cc, Bcc, From) reduced to their addr-specs:
 * display names, comments, groups and obsolete routes dropped.  Used by
 * `missive sendmail -t`; lenient about white space, strict about
 * unterminated quotes, comments and angle brackets. */
#include <string.h>

#include "mime_int.h"
#include "missive/mime.h"

static msv_result malformed(msv_error *err, const char *why)
{
	return msv_error_set(err, MSV_E_BAD_ADDRESS, MSV_CLASS_USAGE, "malformed address list: %s", why);
}

/* Appends seg as one address (NUL-terminated) after checking it. */
static msv_result emit(msv_buf *out, size_t *n, msv_buf *seg, msv_error *err)
{
	if (!seg->len)
		return MSV_OK;
	if (msv_buf_addc(seg, '\0'))
		return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
	msv_result r = msv__addr_check(seg->data, err, "address");
	if (r)
		return r;
	if (msv_buf_add(out, seg->data, seg->len))
		return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
	(*n)++;
	msv_buf_reset(seg);
	return MSV_OK;
}

msv_result msv_mime_address_list(msv_buf *out, size_t *n, const char *v, size_t len,
                                 msv_error *err)
{
	*n = 0;
	if (memchr(v, '\0', len))
		return malformed(err, "a NUL octet");
	msv_buf plain, angle; /* addr-spec outside and inside <> */
	msv_buf_init(&plain, 4096);
	msv_buf_init(&angle, 4096);
	int in_angle = 0, had_angle = 0;
	msv_result r = MSV_OK;
	for (size_t i = 0; i <= len && !r;) {
		char c = i < len ? v[i] : ',';
		msv_buf *cur = in_angle ? &angle : &plain;
		if (i == len || (!in_angle && (c == ',' || c == ';'))) {
			r = emit(out, n, had_angle ? &angle : &plain, err);
			msv_buf_reset(&plain);
			msv_buf_reset(&angle);
			had_angle = 0;
			i++;
		} else if (c == '(') {
			int depth = 0;
			for (; i < len; i++) {
				if (v[i] == '\\' && i + 1 < len)
					i++;
				else if (v[i] == '(')
					depth++;
				else if (v[i] == ')' && --depth == 0)
					break;
			}
			if (i == len)
				r = malformed(err, "unterminated comment");
			i++;
		} else if (c == '"') {
			size_t j = i + 1;
			for (; j < len && v[j] != '"'; j++)
				if (v[j] == '\\' && j + 1 < len)
					j++;
			if (j >= len)
				r = malformed(err, "unterminated quoted string");
			else if (msv_buf_add(cur, v + i, j + 1 - i))
				r = msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
			i = j + 1;
		} else if (c == '<') {
			if (in_angle || had_angle || (plain.len && memchr(plain.data, '@', plain.len)))
				r = malformed(err, "'<' inside or after an address");
			in_angle = had_angle = 1;
			i++;
		} else if (c == '>') {
			if (!in_angle)
				r = malformed(err, "'>' without '<'");
			in_angle = 0;
			i++;
		} else if (c == ':') {
			/* Outside <>: a group's name ends; inside: an obsolete route. */
			msv_buf_reset(cur);
			i++;
		} else if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			i++;
		} else {
			if (msv_buf_addc(cur, c))
				r = msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
			i++;
		}
	}
	if (!r && in_angle)
		r = malformed(err, "unterminated angle address");
	msv_buf_free(&plain);
	msv_buf_free(&angle);
	return r;
}
