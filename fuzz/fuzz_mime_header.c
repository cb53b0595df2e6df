/* libFuzzer target: the RFC 2047 header encoder round trip.  The first
 * byte picks the options (SMTPUTF8, the field name length); the rest is
 * the text.  For valid UTF-8 without CR or LF, decode(encode(text)) must
 * be the text, every encoded word at most 75 characters and, without
 * SMTPUTF8, every line at most 78 columns and pure ASCII.  Anything else
 * must be refused, never encoded. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "missive/mime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int valid_utf8(const uint8_t *s, size_t n)
{
	/* Independent of the library's checker: decode and re-check ranges. */
	size_t i = 0;
	while (i < n) {
		uint32_t c = s[i];
		size_t k;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			k = 1;
			c &= 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			k = 2;
			c &= 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			k = 3;
			c &= 0x07;
		} else {
			return 0;
		}
		if (i + k >= n)
			return 0;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return 0;
			c = c << 6 | (s[i + j] & 0x3f);
		}
		static const uint32_t min[] = {0, 0x80, 0x800, 0x10000};
		if (c < min[k] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
			return 0;
		i += k + 1;
	}
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size)
		return 0;
	unsigned transport = data[0] & 1 ? MSV_MIME_SMTPUTF8 : 0;
	size_t name_len = (size_t)(data[0] >> 1) % 70 + 1;
	const char *text = (const char *)data + 1;
	size_t n = size - 1;
	int ok = valid_utf8(data + 1, n) && !memchr(text, '\r', n) && !memchr(text, '\n', n);
	msv_buf enc, dec;
	msv_error err;
	msv_buf_init(&enc, (size_t)1 << 24);
	msv_buf_init(&dec, (size_t)1 << 24);
	msv_result r = msv_mime_encode_unstructured(&enc, text, n, name_len, transport, &err);
	if (!ok) {
		if (r != MSV_E_INVALID)
			abort();
		goto done;
	}
	if (r != MSV_OK)
		abort();
	size_t col = name_len + 2, word = 0;
	int ew = 0; /* the current word starts with "=?" */
	for (size_t i = 0; i < enc.len; i++) {
		char c = enc.data[i];
		if (c == '\r') {
			if (i + 2 >= enc.len || enc.data[i + 1] != '\n' ||
			    (enc.data[i + 2] != ' ' && enc.data[i + 2] != '\t'))
				abort(); /* only folds: CRLF then white space */
			col = 0;
			i++;
			word = 0;
			continue;
		}
		col++;
		word = (c == ' ' || c == '\t') ? 0 : word + 1;
		if (word == 1)
			ew = c == '=' && i + 1 < enc.len && enc.data[i + 1] == '?';
		if (!transport && ((unsigned char)c >= 0x80 || (col > 78 && name_len <= 40)))
			abort();
		if (ew && i + 1 < enc.len && c == '?' && enc.data[i + 1] == '=' && word > 74)
			abort(); /* an encoded word over 75 characters */
	}
	if (msv_mime_decode_header(&dec, enc.data ? enc.data : "", enc.len, &err) != MSV_OK)
		abort();
	if (dec.len != n || (n && memcmp(dec.data, text, n)))
		abort();
done:
	msv_buf_free(&enc);
	msv_buf_free(&dec);
	return 0;
}
