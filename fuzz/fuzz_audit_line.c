/* libFuzzer target: the audit line parser (msv__audit_parse_line), which
 * verify, the export reader and the writer's tail read trust, and the JSON
 * string escaper every event goes through.
 *
 * Input: one audit line (without '\n').  Checks: a parsed line's spans lie
 * inside the input, its hash and prev are 64 lowercase hex digits, seq is
 * positive; the escaped form of any input is valid UTF-8 without raw
 * control characters. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit/chain_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int hex64(const char *p)
{
	for (int i = 0; i < MSV__AUDIT_HEX; i++)
		if (!strchr("0123456789abcdef", p[i]) || !p[i])
			return 0;
	return 1;
}

/* Valid UTF-8 with no byte below 0x20. */
static int clean_utf8(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned char c = p[i];
		size_t k = c < 0x80 ? 0 : c >= 0xC2 && c <= 0xDF ? 1 : c >= 0xE0 && c <= 0xEF ? 2
		                                                 : c >= 0xF0 && c <= 0xF4 ? 3 : 9;
		if (c < 0x20 || k == 9 || i + k >= n + (k ? 0 : 1))
			return 0;
		for (size_t j = 1; j <= k; j++)
			if ((p[i + j] & 0xC0) != 0x80)
				return 0;
		i += k + 1;
	}
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *line = (const char *)data;
	msv__audit_line ev;
	if (msv__audit_parse_line(line, size, &ev) == 0) {
		if (ev.seq == 0 || ev.covered >= size || !hex64(ev.hash) || !hex64(ev.prev))
			abort();
		if (ev.hash != line + ev.covered + 9 || ev.prev < line || ev.prev + 64 > ev.hash)
			abort();
		if (ev.type < line || ev.type + ev.type_len > ev.prev)
			abort();
	}
	msv_buf out;
	msv_buf_init(&out, 8 * size + 16);
	if (msv__audit_json_escape(&out, line, size) == MSV_OK &&
	    !clean_utf8((const unsigned char *)out.data, out.len))
		abort();
	msv_buf_free(&out);
	return 0;
}
