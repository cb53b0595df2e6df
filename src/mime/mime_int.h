/* Internals shared by the files of src/mime (not installed). */
#ifndef MSV_MIME_INT_H
#define MSV_MIME_INT_H

#include <stddef.h>
#include <stdint.h>

#include "missive/mime.h"

/* RFC 5322 2.1.1: lines SHOULD be at most 78 characters, MUST be at most
 * 998.  Headers are folded at the first, bodies encoded past the second. */
#define MIME_FOLD 78
#define MIME_LINE_MAX 998
/* RFC 2047 2: an encoded word is at most 75 characters. */
#define MIME_EW_MAX 75
/* Rendered header block of a message; far above any real one. */
#define MIME_HEADER_MAX ((size_t)4 << 20)

/* Index of the first octet that is not part of valid UTF-8 (RFC 3629:
 * no overlongs, no surrogates, nothing past U+10FFFF), or len. */
size_t msv__utf8_check(const char *s, size_t len);
/* Length of the UTF-8 sequence starting with c (1 for ASCII or junk). */
size_t msv__utf8_seqlen(unsigned char c);

int msv__is_atext(unsigned char c);
int msv__strcaseeq(const char *a, size_t alen, const char *b);

/* Header folder: appends tokens to out, breaking lines before their
 * white space when a line would pass 78 columns. */
typedef struct msv__fold {
	msv_buf *out;
	size_t col;
	size_t ew_max; /* longest encoded word; 0: 75 */
} msv__fold;

msv_result msv__fold_put(msv__fold *f, const char *ws, size_t wslen, const char *s, size_t len);
/* Text as RFC 2047 encoded words (UTF-8, B or Q per word, whichever is
 * shorter), the first one preceded by ws; phrase: the Q alphabet of RFC
 * 2047 5(3), safe in display names. */
msv_result msv__fold_encoded(msv__fold *f, const char *ws, size_t wslen, const char *text,
                             size_t len);
/* A display name (RFC 5322 3.2.5 phrase) as atoms, a quoted string or
 * encoded words. */
msv_result msv__fold_phrase(msv__fold *f, int lead_ws, const char *name, size_t len,
                            unsigned transport);
msv_result msv__fold_unstructured(msv__fold *f, const char *text, size_t len,
                                  unsigned transport);

/* Address checks and conversion (addr.c).  check: syntax only, at add
 * time; wire: the form written for a transport. */
msv_result msv__addr_check(const char *addr, msv_error *err, const char *what);
msv_result msv__addr_wire(msv_buf *out, const char *addr, unsigned transport, msv_error *err,
                          const char *what);
/* The domain of an address in A-label form (for Message-IDs). */
msv_result msv__addr_domain_ascii(msv_buf *out, const char *addr, msv_error *err);

/* Base64 with 76-character lines (RFC 2045 6.8).  Encodes n octets
 * (n a multiple of 57 unless last) into out; each line but the very
 * first of the part is preceded by CRLF (*started says whether one was
 * written).  Returns the octets written: at most 78 per started line.
 * in may lie after out in the same buffer (encoding in place) when
 * in >= out + 21 * lines + 57, lines = (n + 56) / 57: then no line's
 * output reaches its own input.  Reads no octet outside in[0, n). */
size_t msv__b64_lines(char *out, const unsigned char *in, size_t n, int *started);
/* The same in portable C (what msv__b64_lines uses without AVX2, and for
 * a part's last partial line); tests compare both to a reference. */
size_t msv__b64_lines_scalar(char *out, const unsigned char *in, size_t n, int *started);
uint64_t msv__b64_size(uint64_t n);

/* Streaming quoted-printable and line-end normalization (stream.c). */
typedef struct msv__qp {
	size_t col;        /* characters on the current output line */
	int pending_ws;    /* a space or tab not yet known to end a line; 0: none */
	int pending_cr;    /* the previous input octet was a CR */
	int text;          /* line ends: any is a line break (text) or only CRLF (binary) */
} msv__qp;

/* Both write at most 8*n + 8 octets for n in. */
size_t msv__qp_chunk(msv__qp *q, char *out, const unsigned char *in, size_t n, int last);
size_t msv__crlf_chunk(int *pending_cr, char *out, const unsigned char *in, size_t n, int last);

/* Charset conversion into UTF-8 (decode.c): 0 ok, -1 unknown charset. */
int msv__to_utf8(msv_buf *out, const char *charset, size_t cslen, const char *s, size_t n,
                 msv_result *r);

#endif
