/* libFuzzer target: the masking engine (src/audit/mask.c).
 *
 * Input: one option byte, then the text.
 *   byte 0: bit 0 two configured rules; bit 1 no keys (u-************);
 *           bits 2-7 chunk size - 1 for the streamed pass
 * Checks: no crash, no leak; a re-scan of the output, written apart from
 * the masker, finds no mobile number, no valid resident ID and no
 * Luhn-valid card number (outside pseudonyms, whose domain is kept);
 * masking the output again changes nothing; the stream, fed in chunks,
 * gives exactly what masking the whole text gives. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/audit/audit_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int digit(char c)
{
	return c >= '0' && c <= '9';
}

static int alnum(char c)
{
	return digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int luhn(const char *d, size_t n)
{
	unsigned sum = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned v = (unsigned)(d[n - 1 - i] - '0');
		if (i & 1)
			v = v * 2 > 9 ? v * 2 - 9 : v * 2;
		sum += v;
	}
	return sum % 10 == 0;
}

static int id_valid(const char *s)
{
	static const unsigned w[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
	unsigned sum = 0;
	for (int i = 0; i < 17; i++)
		sum += (unsigned)(s[i] - '0') * w[i];
	return "10X98765432"[sum % 11] == (s[17] == 'x' ? 'X' : s[17]);
}

/* "u-" 12 hex (or '*') "@" at s. */
static int local_at(const char *s, size_t n)
{
	if (n < 15 || s[0] != 'u' || s[1] != '-' || s[14] != '@')
		return 0;
	for (int i = 2; i < 14; i++)
		if (!(digit(s[i]) || (s[i] >= 'a' && s[i] <= 'f') || s[i] == '*'))
			return 0;
	return 1;
}

static int top_label(const char *s, size_t n)
{
	if (n >= 5 && (s[0] == 'x' || s[0] == 'X') && (s[1] == 'n' || s[1] == 'N') && s[2] == '-' &&
	    s[3] == '-')
		return 1;
	for (size_t i = 0; i < n; i++)
		if (digit(s[i]) || s[i] == '-')
			return 0;
	return n >= 2;
}

/* Length of a pseudonym "u-" 12 hex "@" domain at s, or 0.  The domain
 * is read generously (up to the next pseudonym), then cut back to its
 * last label that can end a domain (letters, or xn--): what follows it
 * (a digit glued to the domain) is text the masker looked at. */
static size_t pseudonym_at(const char *s, size_t n)
{
	if (!local_at(s, n))
		return 0;
	size_t p = 15, end = 15, label = 15;
	while (p < n && (alnum(s[p]) || s[p] == '.' || s[p] == '-' || (unsigned char)s[p] >= 0x80) &&
	       !local_at(s + p, n - p)) {
		p++;
		if (p == n || s[p] == '.' || !(alnum(s[p]) || s[p] == '-' || (unsigned char)s[p] >= 0x80)) {
			if (p > label && top_label(s + label, p - label))
				end = p;
			label = p + 1;
		}
	}
	return end;
}

static int hexdigit(char c)
{
	return digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int sep(char c)
{
	return c == ' ' || c == '-';
}

/* Length of an identifier at s[i]: 16, 24, 32, ... hex digits, a letter
 * among them, no letter or digit (or UTF-8) right before or after, not
 * joined to digit groups by a space or dash; or 0. */
static size_t identifier_at(const char *s, size_t n, size_t i)
{
	size_t e = i;
	int letter = 0;
	if (i && (alnum(s[i - 1]) || (unsigned char)s[i - 1] >= 0x80))
		return 0;
	if (i >= 2 && sep(s[i - 1]) && digit(s[i - 2]))
		return 0;
	while (e < n && hexdigit(s[e]))
		letter |= !digit(s[e++]);
	if (e - i < 16 || (e - i) % 8 || !letter || (e < n && (alnum(s[e]) || (unsigned char)s[e] >= 0x80)))
		return 0;
	if (e + 1 < n && sep(s[e]) && digit(s[e + 1]))
		return 0;
	return e - i;
}

/* Aborts when s still holds something a built-in rule must mask. */
static void rescan(const char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t pl = pseudonym_at(s + i, n - i);
		if (!pl)
			pl = identifier_at(s, n, i);
		if (pl) {
			i += pl;
			continue;
		}
		if (!digit(s[i])) {
			i++;
			continue;
		}
		/* a run of groups joined by single spaces or dashes */
		char dig[20];
		size_t nd = 0, groups = 0, e = i;
		for (;;) {
			size_t gs = e;
			while (e < n && digit(s[e])) {
				if (nd < 20)
					dig[nd] = s[e];
				nd++;
				e++;
			}
			size_t gl = e - gs;
			char prev = gs ? s[gs - 1] : ' ', next = e < n ? s[e] : ' ';
			if (gl >= 13 && gl <= 19 && luhn(s + gs, gl))
				abort(); /* a card */
			if (gl == 11 && s[gs] == '1' && s[gs + 1] >= '3' && s[gs + 1] <= '9')
				abort(); /* a mobile number */
			if ((gl == 18 || (gl == 17 && (next == 'X' || next == 'x'))) && !alnum(prev) &&
			    (gs + 18 >= n || !alnum(s[gs + 18])) && id_valid(s + gs))
				abort(); /* a resident ID */
			groups++;
			if (e + 1 < n && (s[e] == ' ' || s[e] == '-') && digit(s[e + 1])) {
				e++;
				continue;
			}
			break;
		}
		if (groups > 1 && nd >= 13 && nd <= 19 && luhn(dig, nd))
			abort(); /* a card written in groups */
		i = e;
	}
}

static msv_masker *masker(int rules, int keys)
{
	/* One masker per shape for the whole run: building keys per input
	 * would make the fuzzer measure key expansion. */
	static msv_masker *cache[4];
	static msv_audit_keys *k;
	static const unsigned char seed[MSV__AKEY_LEN] = "fuzz_mask fixed key";
	int i = rules * 2 + keys;
	if (cache[i])
		return cache[i];
	msv_error err;
	if (!k && msv__audit_keys_mem(&k, seed))
		abort();
	if (msv_masker_new(&cache[i], keys ? k : NULL, &err))
		abort();
	if (rules && (msv_masker_add_rule(cache[i], "order ORD-[0-9]{6,} 4 2", &err) ||
	              msv_masker_add_rule(cache[i], "secret token[:=] ?[A-Za-z0-9]+ 6 0", &err)))
		abort();
	return cache[i];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size)
		return 0;
	unsigned flags = data[0];
	const char *in = (const char *)data + 1;
	size_t n = size - 1;
	const msv_masker *m = masker(flags & 1, !(flags & 2));
	size_t chunk = (flags >> 2) + 1;

	msv_buf once, twice, streamed;
	msv_buf_init(&once, 64u << 20);
	msv_buf_init(&twice, 64u << 20);
	msv_buf_init(&streamed, 64u << 20);
	if (msv_mask(m, in, n, &once))
		abort();
	rescan(once.data ? once.data : "", once.len);
	if (msv_mask(m, once.data ? once.data : "", once.len, &twice))
		abort();
	if (twice.len != once.len || (once.len && memcmp(once.data, twice.data, once.len)))
		abort(); /* not idempotent */

	msv_mask_stream *st;
	if (msv_mask_stream_new(&st, m))
		abort();
	for (size_t p = 0; p < n; p += chunk)
		if (msv_mask_stream_feed(st, in + p, n - p < chunk ? n - p : chunk, &streamed))
			abort();
	if (msv_mask_stream_finish(st, &streamed))
		abort();
	msv_mask_stream_free(st);
	if (streamed.len != once.len || (once.len && memcmp(once.data, streamed.data, once.len)))
		abort(); /* the stream differs from the whole */
	msv_buf_free(&once);
	msv_buf_free(&twice);
	msv_buf_free(&streamed);
	return 0;
}
