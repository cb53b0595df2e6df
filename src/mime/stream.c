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

size_t msv__b64_lines(char *out, const unsigned char *in, size_t n, int *started)
{
	char *o = out;
	while (n >= LINE_IN) {
		if (*started) {
			o[0] = '\r';
			o[1] = '\n';
			o += 2;
		}
		*started = 1;
		/* 19 groups, unrolled by the compiler. */
		for (int g = 0; g < 19; g++)
			enc3(o + 4 * g, in + 3 * g);
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
