/* Base64 encoders against a bit-at-a-time reference: msv_base64_encode
 * (src/core) and the MIME body encoder in 76-character lines, both its
 * AVX2 path (msv__b64_lines, where the CPU has it) and its portable one
 * (msv__b64_lines_scalar).  Every length 0..200, random data, every octet
 * value in every position of a group, streaming in chunks, encoding in
 * place, and inputs and outputs placed against a PROT_NONE page so that
 * any read or write past either end crashes (picohttpparser's test.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "mime/mime_int.h"
#include "missive/core.h"

#define LEN_MAX 200  /* every length up to this one */
#define BIG 20000    /* random lengths up to this one */

typedef size_t (*lines_fn)(char *out, const unsigned char *in, size_t n, int *started);

static const struct {
	const char *name;
	lines_fn fn;
} encoders[] = {
	{"msv__b64_lines", msv__b64_lines},
	{"msv__b64_lines_scalar", msv__b64_lines_scalar},
};
#define NENC (sizeof(encoders) / sizeof(encoders[0]))

/* xorshift64*: the same data on every run. */
static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static unsigned char rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (unsigned char)((rng_state * 0x2545f4914f6cdd1du) >> 56);
}

static void fill_random(unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = rnd();
}

/* The reference: RFC 4648 section 4 read literally, six bits at a time
 * from a bit accumulator; shares no table or code with the encoders. */
static size_t ref_base64(char *out, const unsigned char *in, size_t n)
{
	static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		acc = acc << 8 | in[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			out[o++] = alpha[(acc >> bits) & 63];
		}
	}
	if (bits)
		out[o++] = alpha[(acc << (6 - bits)) & 63];
	while (o % 4)
		out[o++] = '=';
	return o;
}

/* RFC 2045 6.8 lines: 76 characters, CRLF between lines, none after the
 * last; a CRLF before the first too when the part had started. */
static size_t ref_lines(char *out, const unsigned char *in, size_t n, int started)
{
	char *flat = malloc(n / 3 * 4 + 8);
	assert_non_null(flat);
	size_t fl = ref_base64(flat, in, n), o = 0;
	for (size_t i = 0; i < fl; i += 76) {
		if (started || i) {
			out[o++] = '\r';
			out[o++] = '\n';
		}
		size_t k = fl - i < 76 ? fl - i : 76;
		memcpy(out + o, flat + i, k);
		o += k;
	}
	free(flat);
	return o;
}

static size_t lines_bound(size_t n)
{
	return (n + 56) / 57 * 78 + 8;
}

/* One encoder on in[0, n) against the reference, started or not. */
static void check_lines(size_t e, const unsigned char *in, size_t n, int started)
{
	char *want = malloc(lines_bound(n));
	char *got = malloc(lines_bound(n));
	assert_non_null(want);
	assert_non_null(got);
	size_t wl = ref_lines(want, in, n, started);
	int st = started;
	size_t gl = encoders[e].fn(got, in, n, &st);
	if (gl != wl || memcmp(got, want, wl)) {
		print_error("%s: n=%zu started=%d: %zu octets, want %zu\n", encoders[e].name, n,
		            started, gl, wl);
		fail();
	}
	assert_int_equal(st, started || n);
	free(want);
	free(got);
}

static void core_every_length(void **state)
{
	(void)state;
	unsigned char in[LEN_MAX];
	char want[LEN_MAX / 3 * 4 + 8];
	for (int round = 0; round < 20; round++) {
		fill_random(in, sizeof(in));
		for (size_t n = 0; n <= LEN_MAX; n++) {
			msv_buf b;
			msv_buf_init(&b, 4096);
			assert_int_equal(msv_base64_encode(&b, in, n), MSV_OK);
			size_t wl = ref_base64(want, in, n);
			assert_int_equal(b.len, wl);
			assert_int_equal(msv_base64_encoded_len(n), wl);
			if (wl)
				assert_memory_equal(b.data, want, wl);
			msv_buf_free(&b);
		}
	}
}

static void lines_every_length(void **state)
{
	(void)state;
	unsigned char in[LEN_MAX];
	for (int round = 0; round < 20; round++) {
		fill_random(in, sizeof(in));
		for (size_t e = 0; e < NENC; e++)
			for (size_t n = 0; n <= LEN_MAX; n++) {
				check_lines(e, in, n, 0);
				check_lines(e, in, n, 1);
			}
	}
}

static void lines_random_lengths(void **state)
{
	(void)state;
	unsigned char *in = malloc(BIG);
	assert_non_null(in);
	for (int round = 0; round < 200; round++) {
		size_t n = ((size_t)rnd() << 8 | rnd()) % BIG;
		if (round % 4 == 0)
			n = n / 57 * 57; /* whole lines, as the streaming writer passes them */
		fill_random(in, n);
		for (size_t e = 0; e < NENC; e++)
			check_lines(e, in, n, round & 1);
	}
	free(in);
}

/* Every octet value in every position of a group, and every 12-bit half
 * of a group (the scalar table's index) in both halves. */
static void lines_every_value(void **state)
{
	(void)state;
	size_t n = 3 * 4096;
	unsigned char *in = malloc(n);
	assert_non_null(in);
	for (size_t pos = 0; pos < 3; pos++) {
		for (size_t i = 0; i < n; i++)
			in[i] = i % 3 == pos ? (unsigned char)(i / 3) : rnd();
		for (size_t e = 0; e < NENC; e++)
			check_lines(e, in, n, 0);
	}
	for (size_t half = 0; half < 2; half++) {
		for (size_t g = 0; g < 4096; g++) {
			uint32_t v = half ? (uint32_t)g : (uint32_t)g << 12;
			v |= half ? (uint32_t)rnd() << 12 : rnd();
			in[3 * g] = (unsigned char)(v >> 16);
			in[3 * g + 1] = (unsigned char)(v >> 8);
			in[3 * g + 2] = (unsigned char)v;
		}
		for (size_t e = 0; e < NENC; e++)
			check_lines(e, in, n, 1);
	}
	free(in);
}

/* The writer's way: chunks of whole lines, then the rest. */
static void lines_streaming(void **state)
{
	(void)state;
	size_t n = 57 * 300 + 41;
	unsigned char *in = malloc(n);
	char *want = malloc(lines_bound(n));
	char *got = malloc(lines_bound(n));
	assert_non_null(in);
	assert_non_null(want);
	assert_non_null(got);
	fill_random(in, n);
	size_t wl = ref_lines(want, in, n, 0);
	static const size_t chunks[] = {57, 114, 57 * 7, 57 * 64};
	for (size_t e = 0; e < NENC; e++)
		for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
			int st = 0;
			size_t off = 0, gl = 0;
			while (off < n) {
				size_t k = n - off > chunks[c] ? chunks[c] : n - off;
				gl += encoders[e].fn(got + gl, in + off, k, &st);
				off += k;
			}
			assert_int_equal(gl, wl);
			assert_memory_equal(got, want, wl);
		}
	free(in);
	free(want);
	free(got);
}

/* In place, as build.c encodes files: input in the same buffer at
 * out + 21 * lines + 57, the closest the contract allows. */
static void lines_in_place(void **state)
{
	(void)state;
	static const size_t lens[] = {0, 1, 56, 57, 58, 114, 57 * 100, 57 * 1024, 57 * 1024 - 1};
	for (size_t e = 0; e < NENC; e++)
		for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
			size_t n = lens[i], lines = (n + 56) / 57, off = 21 * lines + 57;
			unsigned char *src = malloc(n + 1);
			char *want = malloc(lines_bound(n));
			char *buf = malloc(off + n + 1);
			assert_non_null(src);
			assert_non_null(want);
			assert_non_null(buf);
			fill_random(src, n);
			size_t wl = ref_lines(want, src, n, 1);
			memcpy(buf + off, src, n);
			int st = 1;
			size_t gl = encoders[e].fn(buf, (unsigned char *)buf + off, n, &st);
			assert_int_equal(gl, wl);
			assert_memory_equal(buf, want, wl);
			free(src);
			free(want);
			free(buf);
		}
}

/* Input ending right before a PROT_NONE page, output likewise: the SIMD
 * path loads 16 octets at a time and must not read or write past either. */
static void lines_guard_pages(void **state)
{
	(void)state;
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t span = 4 * page; /* room for 3 pages of data, then the guard */
	for (int which = 0; which < 2; which++) {
		unsigned char *in_map = mmap(NULL, span, PROT_READ | PROT_WRITE,
		                             MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		char *out_map = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		                     -1, 0);
		assert_true(in_map != MAP_FAILED);
		assert_true(out_map != MAP_FAILED);
		assert_int_equal(mprotect(in_map + 3 * page, page, PROT_NONE), 0);
		assert_int_equal(mprotect(out_map + 3 * page, page, PROT_NONE), 0);
		for (size_t n = 0; n <= 57 * 20 + 3; n++) {
			/* which 0: input at the guard, 1: output at the guard */
			unsigned char *in = which ? in_map : in_map + 3 * page - n;
			fill_random(in, n);
			char want[2048];
			size_t wl = ref_lines(want, in, n, 1);
			for (size_t e = 0; e < NENC; e++) {
				char *out = which ? out_map + 3 * page - wl : out_map;
				int st = 1;
				size_t gl = encoders[e].fn(out, in, n, &st);
				assert_int_equal(gl, wl);
				assert_memory_equal(out, want, wl);
			}
		}
		munmap(in_map, span);
		munmap(out_map, span);
	}
}

static void size_matches(void **state)
{
	(void)state;
	unsigned char in[57 * 5 + 3];
	char out[sizeof(in) / 57 * 78 + 80];
	fill_random(in, sizeof(in));
	for (size_t n = 0; n <= sizeof(in); n++) {
		int st = 0;
		assert_int_equal(msv__b64_lines(out, in, n, &st), msv__b64_size(n));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(core_every_length),
		cmocka_unit_test(lines_every_length),
		cmocka_unit_test(lines_random_lengths),
		cmocka_unit_test(lines_every_value),
		cmocka_unit_test(lines_streaming),
		cmocka_unit_test(lines_in_place),
		cmocka_unit_test(lines_guard_pages),
		cmocka_unit_test(size_matches),
	};
	return cmocka_run_group_tests_name("base64", tests, NULL, NULL);
}
