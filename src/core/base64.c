/* Base64, RFC 4648 section 4: standard alphabet, padded, strict decoding. */
#include "missive/core.h"

static const char alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t msv_base64_encoded_len(size_t n)
{
	return (n + 2) / 3 * 4;
}

msv_result msv_base64_encode(msv_buf *out, const void *data, size_t n)
{
	const unsigned char *p = data;
	if (n > (SIZE_MAX - 2) / 4 * 3)
		return MSV_E_TOO_LARGE;
	msv_result r = msv_buf_reserve(out, msv_base64_encoded_len(n));
	if (r)
		return r;
	char *o = out->data + out->len;
	size_t i = 0;
	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		*o++ = alphabet[v >> 18];
		*o++ = alphabet[(v >> 12) & 63];
		*o++ = alphabet[(v >> 6) & 63];
		*o++ = alphabet[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;
		*o++ = alphabet[v >> 18];
		*o++ = alphabet[(v >> 12) & 63];
		*o++ = '=';
		*o++ = '=';
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		*o++ = alphabet[v >> 18];
		*o++ = alphabet[(v >> 12) & 63];
		*o++ = alphabet[(v >> 6) & 63];
		*o++ = '=';
	}
	out->len = (size_t)(o - out->data);
	out->data[out->len] = '\0';
	return MSV_OK;
}

int msv_base64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

msv_result msv_base64_decode(msv_buf *out, const char *s, size_t n)
{
	if (n % 4)
		return MSV_E_INVALID;
	msv_result r = msv_buf_reserve(out, n / 4 * 3);
	if (r)
		return r;
	size_t start = out->len;
	for (size_t i = 0; i < n; i += 4) {
		int v[4];
		int pad = 0;
		for (int k = 0; k < 4; k++) {
			unsigned char c = (unsigned char)s[i + k];
			if (c == '=' && i + 4 == n && k >= 2) {
				v[k] = 0;
				pad++;
				continue;
			}
			if (pad) /* data after '=' */
				goto bad;
			v[k] = msv_base64_value(c);
			if (v[k] < 0)
				goto bad;
		}
		uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 |
		             (uint32_t)v[3];
		/* Non-zero bits hidden under the padding make two encodings
		 * decode alike; refuse them so decoding is one-to-one. */
		if ((pad == 1 && (w & 0xff)) || (pad == 2 && (w & 0xffff)))
			goto bad;
		out->data[out->len++] = (char)(w >> 16);
		if (pad < 2)
			out->data[out->len++] = (char)(w >> 8);
		if (pad < 1)
			out->data[out->len++] = (char)w;
	}
	out->data[out->len] = '\0';
	return MSV_OK;
bad:
	out->len = start;
	out->data[out->len] = '\0';
	return MSV_E_INVALID;
}
