/*
 * Body transfer encoders, all streaming (state carried between chunks):
 * base64 in 76-character lines (RFC 2045 6.8), quoted-printable (RFC 2045
 * 6.7), and line-end normalization for 7bit/8bit text (RFC 2046 4.1.1:
 * text line breaks are CRLF in canonical form).
 */
#include <string.h>

#include "mime/mime_int.h"

/* The base64 alphabet as an integer constant expression, so that the
 * pair table below is built by the compiler (no run-time init, no
 * global state). */
#define B64C(v) ((char)((v) < 26 ? 'A' + (v) : (v) < 52 ? 'a' + (v) - 26 : (v) < 62 ? '0' + (v) - 52 \
                        : (v) == 62 ? '+' : '/'))
#define B64P(i) {B64C((i) >> 6), B64C((i) & 63)}
#define B64P4(i) B64P(i), B64P((i) + 1), B64P((i) + 2), B64P((i) + 3)
#define B64P16(i) B64P4(i), B64P4((i) + 4), B64P4((i) + 8), B64P4((i) + 12)
#define B64P64(i) B64P16(i), B64P16((i) + 16), B64P16((i) + 32), B64P16((i) + 48)
#define B64P256(i) B64P64(i), B64P64((i) + 64), B64P64((i) + 128), B64P64((i) + 192)
#define B64P1024(i) B64P256(i), B64P256((i) + 256), B64P256((i) + 512), B64P256((i) + 768)

/* Two output characters for each 12-bit value: a 3-octet group is two
 * lookups and two 2-byte stores. */
static const char b64pair[4096][2] = {
	B64P1024(0), B64P1024(1024), B64P1024(2048), B64P1024(3072),
};

#define LINE_IN 57  /* octets per 76-character line */
#define LINE_OUT 76

static inline void enc3(char *o, const unsigned char *s)
{
	uint32_t v = (uint32_t)s[0] << 16 | (uint32_t)s[1] << 8 | s[2];
	memcpy(o, b64pair[v >> 12], 2);
	memcpy(o + 2, b64pair[v & 0xfff], 2);
}

/* One whole line, 19 groups, no line end. */
static inline void line_scalar(char *o, const unsigned char *in)
{
	for (int g = 0; g < 19; g++) /* unrolled by the compiler */
		enc3(o + 4 * g, in + 3 * g);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define B64_AVX2 1
#include <immintrin.h>

/*
 * AVX2, after Wojciech Muła and Daniel Lemire, "Faster Base64 Encoding
 * and Decoding Using AVX2 Instructions" (ACM TWEB 2018), as in aklomp/
 * base64: each 128-bit lane takes 12 octets and makes 16 characters.  A
 * 57-octet line is octets 0-23 and 24-47 (two 256-bit steps, four 16-octet
 * loads at 0, 12, 24 and 36) and 45-56 (one 128-bit step loaded from 41,
 * so it ends exactly at the line's end; its first 4 characters repeat
 * those already written).  No load or store leaves the line, so the
 * caller's buffers need no slack and memory sources are never over-read.
 */
#define B64_TARGET __attribute__((target("avx2")))

/* Byte shuffle for 12 octets at lane offset k (0 or 4): each 32-bit
 * word gets the 3 octets of one group, ready for the multiplies below
 * that move each 6-bit value into a byte of its own. */
#define B64_SPLIT(k) \
	(k) + 10, (k) + 11, (k) + 9, (k) + 10, (k) + 7, (k) + 8, (k) + 6, (k) + 7, \
	(k) + 4, (k) + 5, (k) + 3, (k) + 4, (k) + 1, (k) + 2, (k) + 0, (k) + 1

B64_TARGET static inline __m256i split256(__m256i v)
{
	v = _mm256_shuffle_epi8(v, _mm256_set_epi8(B64_SPLIT(0), B64_SPLIT(0)));
	__m256i t0 = _mm256_and_si256(v, _mm256_set1_epi32(0x0fc0fc00));
	__m256i t1 = _mm256_mulhi_epu16(t0, _mm256_set1_epi32(0x04000040));
	__m256i t2 = _mm256_and_si256(v, _mm256_set1_epi32(0x003f03f0));
	__m256i t3 = _mm256_mullo_epi16(t2, _mm256_set1_epi32(0x01000010));
	return _mm256_or_si256(t1, t3);
}

/* 6-bit values -> characters: one offset per range of the alphabet
 * (A-Z, a-z, 0-9, +, /), picked by a 16-entry byte shuffle. */
B64_TARGET static inline __m256i chars256(__m256i v)
{
	const __m256i lut = _mm256_setr_epi8(65, 71, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -19, -16,
	                                     0, 0, 65, 71, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4,
	                                     -19, -16, 0, 0);
	__m256i idx = _mm256_subs_epu8(v, _mm256_set1_epi8(51));
	idx = _mm256_sub_epi8(idx, _mm256_cmpgt_epi8(v, _mm256_set1_epi8(25)));
	return _mm256_add_epi8(v, _mm256_shuffle_epi8(lut, idx));
}

B64_TARGET static inline __m128i split128(__m128i v)
{
	v = _mm_shuffle_epi8(v, _mm_set_epi8(B64_SPLIT(4)));
	__m128i t0 = _mm_and_si128(v, _mm_set1_epi32(0x0fc0fc00));
	__m128i t1 = _mm_mulhi_epu16(t0, _mm_set1_epi32(0x04000040));
	__m128i t2 = _mm_and_si128(v, _mm_set1_epi32(0x003f03f0));
	__m128i t3 = _mm_mullo_epi16(t2, _mm_set1_epi32(0x01000010));
	return _mm_or_si128(t1, t3);
}

B64_TARGET static inline __m128i chars128(__m128i v)
{
	const __m128i lut = _mm_setr_epi8(65, 71, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -19, -16, 0, 0);
	__m128i idx = _mm_subs_epu8(v, _mm_set1_epi8(51));
	idx = _mm_sub_epi8(idx, _mm_cmpgt_epi8(v, _mm_set1_epi8(25)));
	return _mm_add_epi8(v, _mm_shuffle_epi8(lut, idx));
}

B64_TARGET static inline __m256i load2x12(const unsigned char *p)
{
	__m128i lo = _mm_loadu_si128((const __m128i *)(const void *)p);
	__m128i hi = _mm_loadu_si128((const __m128i *)(const void *)(p + 12));
	return _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
}

/* Whole lines: n is a multiple of 57.  Returns the characters written. */
B64_TARGET static size_t lines_avx2(char *out, const unsigned char *in, size_t n, int *started)
{
	char *o = out;
	for (; n; n -= LINE_IN, in += LINE_IN) {
		if (*started) {
			o[0] = '\r';
			o[1] = '\n';
			o += 2;
		}
		*started = 1;
		__m256i a = chars256(split256(load2x12(in)));
		__m256i b = chars256(split256(load2x12(in + 24)));
		__m128i c = chars128(split128(_mm_loadu_si128((const __m128i *)(const void *)(in + 41))));
		_mm256_storeu_si256((__m256i *)(void *)o, a);
		_mm256_storeu_si256((__m256i *)(void *)(o + 32), b);
		_mm_storeu_si128((__m128i *)(void *)(o + 60), c);
		o += LINE_OUT;
	}
	return (size_t)(o - out);
}

static int have_avx2(void)
{
	return __builtin_cpu_supports("avx2");
}
#endif

size_t msv__b64_lines_scalar(char *out, const unsigned char *in, size_t n, int *started)
{
	char *o = out;
	while (n >= LINE_IN) {
		if (*started) {
			o[0] = '\r';
			o[1] = '\n';
			o += 2;
		}
		*started = 1;
		line_scalar(o, in);
		o += LINE_OUT;
		in += LINE_IN;
		n -= LINE_IN;
	}
	if (n) {
		if (*started) {
			o[0] = '\r';
			o[1] = '\n';
			o += 2;
		}
		*started = 1;
		while (n >= 3) {
			enc3(o, in);
			o += 4;
			in += 3;
			n -= 3;
		}
		if (n) {
			unsigned char t[3] = {in[0], n > 1 ? in[1] : 0, 0};
			enc3(o, t);
			o[3] = '=';
			if (n == 1)
				o[2] = '=';
			o += 4;
		}
	}
	return (size_t)(o - out);
}

size_t msv__b64_lines(char *out, const unsigned char *in, size_t n, int *started)
{
	size_t done = 0;
#ifdef B64_AVX2
	if (n >= LINE_IN && have_avx2()) {
		size_t whole = n / LINE_IN * LINE_IN;
		done = lines_avx2(out, in, whole, started);
		in += whole;
		n -= whole;
	}
#endif
	return done + msv__b64_lines_scalar(out + done, in, n, started);
}

uint64_t msv__b64_size(uint64_t n)
{
	if (!n)
		return 0;
	uint64_t lines = (n + LINE_IN - 1) / LINE_IN;
	return (n + 2) / 3 * 4 + 2 * (lines - 1);
}

/* ---- quoted-printable ---- */

#define QP_LINE 76 /* RFC 2045 6.7 rule 5, the "=" of a soft break included */

static const char hexu[] = "0123456789ABCDEF";

typedef struct qpo {
	char *o;
	msv__qp *q;
} qpo;

static void qp_soft_if(qpo *w, size_t need)
{
	if (w->q->col + need > QP_LINE - 1) {
		memcpy(w->o, "=\r\n", 3);
		w->o += 3;
		w->q->col = 0;
	}
}

static void qp_lit(qpo *w, unsigned char c)
{
	qp_soft_if(w, 1);
	*w->o++ = (char)c;
	w->q->col++;
}

static void qp_enc(qpo *w, unsigned char c)
{
	qp_soft_if(w, 3);
	w->o[0] = '=';
	w->o[1] = hexu[c >> 4];
	w->o[2] = hexu[c & 15];
	w->o += 3;
	w->q->col += 3;
}

static void qp_flush_ws(qpo *w, int at_line_end)
{
	if (!w->q->pending_ws)
		return;
	unsigned char c = (unsigned char)w->q->pending_ws;
	w->q->pending_ws = 0;
	/* White space at the end of a line would be lost (RFC 2045 6.7
	 * rule 3): encode it there. */
	if (at_line_end)
		qp_enc(w, c);
	else
		qp_lit(w, c);
}

static void qp_break(qpo *w)
{
	qp_flush_ws(w, 1);
	memcpy(w->o, "\r\n", 2);
	w->o += 2;
	w->q->col = 0;
}

size_t msv__qp_chunk(msv__qp *q, char *out, const unsigned char *in, size_t n, int last)
{
	qpo w = {out, q};
	for (size_t i = 0; i < n; i++) {
		unsigned char c = in[i];
		if (q->pending_cr) {
			q->pending_cr = 0;
			if (c == '\n') {
				qp_break(&w);
				continue;
			}
			if (q->text) {
				qp_break(&w);
			} else {
				qp_flush_ws(&w, 0);
				qp_enc(&w, '\r');
			}
		}
		if (c == '\r') {
			q->pending_cr = 1;
		} else if (c == '\n') {
			if (q->text) {
				qp_break(&w);
			} else {
				qp_flush_ws(&w, 0);
				qp_enc(&w, '\n');
			}
		} else if (c == ' ' || c == '\t') {
			qp_flush_ws(&w, 0);
			q->pending_ws = c;
		} else {
			qp_flush_ws(&w, 0);
			if (c >= 33 && c <= 126 && c != '=')
				qp_lit(&w, c);
			else
				qp_enc(&w, c);
		}
	}
	if (last) {
		if (q->pending_cr) {
			q->pending_cr = 0;
			if (q->text) {
				qp_break(&w);
			} else {
				qp_flush_ws(&w, 0);
				qp_enc(&w, '\r');
			}
		}
		qp_flush_ws(&w, 1); /* the part's end is a line end */
	}
	return (size_t)(w.o - out);
}

size_t msv__crlf_chunk(int *pending_cr, char *out, const unsigned char *in, size_t n, int last)
{
	char *o = out;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = in[i];
		if (*pending_cr) {
			*pending_cr = 0;
			o[0] = '\r';
			o[1] = '\n';
			o += 2;
			if (c == '\n')
				continue;
		}
		if (c == '\r') {
			*pending_cr = 1;
		} else if (c == '\n') {
			o[0] = '\r';
			o[1] = '\n';
			o += 2;
		} else {
			*o++ = (char)c;
		}
	}
	if (last && *pending_cr) {
		*pending_cr = 0;
		o[0] = '\r';
		o[1] = '\n';
		o += 2;
	}
	return (size_t)(o - out);
}
