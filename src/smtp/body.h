/* Streaming body transformer: line-end normalization and dot-stuffing. */
#ifndef MSV_SMTP_BODY_H
#define MSV_SMTP_BODY_H

#include "missive/smtp.h"

typedef struct msv_body_xf {
	int stuff;        /* dot-stuff (DATA) or not (BDAT) */
	int cr;           /* a CR was seen, its LF not yet */
	size_t line_len;  /* octets in the current line so far; 0 at its start */
	size_t line_no;   /* current line, from 1 */
	size_t line_max;  /* longest line allowed, without CRLF */
	int nul;          /* the failure was a NUL octet, not a long line */
} msv_body_xf;

void msv__body_init(msv_body_xf *x, int stuff, size_t line_max);
/* Appends the transformed bytes to out; MSV_E_BAD_MESSAGE names the
 * line in *bad_line when one is too long or holds a NUL (x->nul). */
msv_result msv__body_add(msv_body_xf *x, msv_buf *out, const char *p, size_t n, size_t *bad_line);
/* Terminates the last line with CRLF if the message did not. */
msv_result msv__body_finish(msv_body_xf *x, msv_buf *out);

#endif
