/* libFuzzer target: DKIM canonicalization (src/dkim/canon.c).
 *
 * Input: one option byte, then the text.
 *   byte 0: bit 0 relaxed (else simple); bit 1 header field (else body);
 *           bit 2 keep bare CR (go-msgauth's rule; else CR is a line end);
 *           bits 3-7 chunk size - 1 for the second, chunked pass
 * Checks: no crash, no leak; for bodies, chunked feeding gives exactly
 * the bytes of whole feeding, every line of the output ends in CRLF
 * (no bare CR or LF unless kept on purpose), relaxed output has no WSP
 * run and no WSP before a line end, and the body is empty or ends in
 * CRLF; for header fields, relaxed canonicalization is idempotent. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/dkim/dkim_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int sink(void *arg, const char *p, size_t n)
{
	return msv_buf_add((msv_buf *)arg, p, n) ? -1 : 0;
}

static void body(msv_buf *out, msv_dkim_canon c, int lf_only, const char *p, size_t n, size_t chunk)
{
	dkim_body *b = malloc(sizeof(*b));
	if (!b)
		abort();
	msv__dkim_body_init(b, c, lf_only, UINT64_MAX, sink, out);
	for (size_t i = 0; i < n; i += chunk)
		msv__dkim_body_feed(b, p + i, n - i < chunk ? n - i : chunk);
	if (msv__dkim_body_end(b))
		abort();
	free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned opt = data[0];
	const char *p = (const char *)data + 1;
	size_t n = size - 1;
	msv_dkim_canon c = (opt & 1) ? MSV_DKIM_RELAXED : MSV_DKIM_SIMPLE;
	int lf_only = (opt >> 2) & 1;
	msv_buf a, b;
	msv_buf_init(&a, (size_t)1 << 24);
	msv_buf_init(&b, (size_t)1 << 24);
	if (opt & 2) {
		/* one header field: must hold a colon to be one */
		if (msv__dkim_header_canon(&a, c, p, n, 0) == MSV_OK && c == MSV_DKIM_RELAXED) {
			if (msv__dkim_header_canon(&b, c, a.data, a.len, 0) != MSV_OK)
				abort();
			if (a.len != b.len || memcmp(a.data, b.data, a.len))
				abort();
		}
	} else {
		body(&a, c, lf_only, p, n, n ? n : 1);
		body(&b, c, lf_only, p, n, (size_t)(opt >> 3) + 1);
		if (a.len != b.len || (a.len && memcmp(a.data, b.data, a.len)))
			abort();
		if (a.len && (a.len < 2 || a.data[a.len - 2] != '\r' || a.data[a.len - 1] != '\n'))
			abort();
		if (c == MSV_DKIM_SIMPLE && a.len == 0)
			abort(); /* simple: an empty body is one CRLF */
		for (size_t i = 0; i < a.len; i++) {
			char ch = a.data[i];
			if (ch == '\n' && (i == 0 || a.data[i - 1] != '\r'))
				abort();
			if (ch == '\r' && !lf_only && (i + 1 == a.len || a.data[i + 1] != '\n'))
				abort();
			if (c == MSV_DKIM_RELAXED && ch == '\t')
				abort();
			if (c == MSV_DKIM_RELAXED && ch == ' ' && i + 1 < a.len &&
			    (a.data[i + 1] == ' ' ||
			     (a.data[i + 1] == '\r' && i + 2 < a.len && a.data[i + 2] == '\n')))
				abort();
		}
	}
	msv_buf_free(&a);
	msv_buf_free(&b);
	return 0;
}
