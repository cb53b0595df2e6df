/* libFuzzer target: msv_smtp_reply_parse, the reply accumulator.
 *
 * Input: one mode byte, then server bytes.  Mode bit 0 clear: parse the
 * buffer whole, reply after reply.  Set: grow the visible bytes in
 * chunks of ((mode >> 1) & 31) + 1 octets, as reads would deliver them,
 * and check the accumulator agrees with the whole-buffer parse: "need
 * more" until the reply is complete, then the same length and code; an
 * error on a prefix stays an error on the whole. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "missive/smtp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_reply(const msv_smtp_reply *r, const msv_buf *lines, long rc, size_t avail)
{
	if (rc <= 0 || (size_t)rc > avail)
		abort();
	if (r->code < 200 || r->code > 599)
		abort();
	if (memchr(r->enhanced, '\0', sizeof(r->enhanced)) == NULL ||
	    memchr(r->text, '\0', sizeof(r->text)) == NULL)
		abort();
	for (const char *p = r->text; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			abort(); /* sanitized */
	if (r->enhanced[0] && r->enhanced[0] != 'X' && r->enhanced[0] != '0' + r->code / 100)
		abort(); /* class digit matches the reply, or was sanitized */
	if (lines && lines->len > MSV_REPLY_MAX)
		abort();
}

static void check_error(const msv_error *err, long rc)
{
	if (rc >= 0 || -rc >= MSV__RESULT_COUNT)
		abort();
	if (err->code != (msv_result)-rc || err->cls == MSV_CLASS_NONE)
		abort();
	if (memchr(err->message, '\0', sizeof(err->message)) == NULL)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t mode = data[0];
	data++;
	size--;
	/* an exact-size copy: reads past the end are caught */
	char *buf = msv_malloc(size ? size : 1);
	if (!buf)
		return 0;
	if (size)
		memcpy(buf, data, size);
	msv_buf lines;
	msv_buf_init(&lines, 2 * MSV_REPLY_MAX);
	size_t off = 0;
	for (int replies = 0; off < size && replies < 100000; replies++) {
		msv_smtp_reply whole, part;
		msv_error err, perr;
		msv_error_clear(&err);
		msv_buf_reset(&lines);
		long rc = msv_smtp_reply_parse(buf + off, size - off, &whole, &lines, &err);
		if (rc > 0)
			check_reply(&whole, &lines, rc, size - off);
		else if (rc < 0)
			check_error(&err, rc);
		if (mode & 1) {
			size_t step = (size_t)((mode >> 1) & 31) + 1;
			for (size_t have = 0; have <= size - off; have += step) {
				msv_error_clear(&perr);
				long prc = msv_smtp_reply_parse(buf + off, have, &part, NULL, &perr);
				if (prc == 0)
					continue;
				if (prc > 0) {
					/* complete within the prefix: the whole parse agrees */
					check_reply(&part, NULL, prc, have);
					if (prc != rc || part.code != whole.code ||
					    strcmp(part.enhanced, whole.enhanced) ||
					    strcmp(part.text, whole.text))
						abort();
				} else {
					check_error(&perr, prc);
					if (rc >= 0)
						abort(); /* an error cannot heal with more bytes */
				}
				break;
			}
		}
		if (rc <= 0)
			break;
		off += (size_t)rc;
	}
	msv_buf_free(&lines);
	msv_free(buf);
	return 0;
}
