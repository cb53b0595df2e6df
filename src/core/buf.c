/* Growable, capped, binary-safe buffer (contract in missive/core.h). */
#include <stdio.h>
#include <string.h>

#include "missive/core.h"

#define BUF_MIN 64

void msv_buf_init(msv_buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

void msv_buf_free(msv_buf *b)
{
	msv_free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void msv_buf_free_secret(msv_buf *b)
{
	msv_wipe(b->data, b->cap);
	msv_buf_free(b);
}

void msv_buf_reset(msv_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

msv_result msv_buf_reserve(msv_buf *b, size_t n)
{
	size_t need;
	/* +1 keeps room for the terminating NUL. */
	if (msv_add_size(&need, b->len, n) || msv_add_size(&need, need, 1) || need - 1 > b->max) {
		msv_buf_free(b);
		return MSV_E_TOO_LARGE;
	}
	if (need <= b->cap)
		return MSV_OK;
	size_t cap = b->cap ? b->cap : BUF_MIN;
	while (cap < need) {
		if (msv_mul_size(&cap, cap, 2)) {
			cap = need;
			break;
		}
	}
	if (cap > b->max + 1)
		cap = b->max + 1;
	char *p = msv_realloc(b->data, cap);
	if (!p) {
		msv_buf_free(b);
		return MSV_E_NOMEM;
	}
	b->data = p;
	b->cap = cap;
	return MSV_OK;
}

msv_result msv_buf_add(msv_buf *b, const void *p, size_t n)
{
	msv_result r = msv_buf_reserve(b, n);
	if (r)
		return r;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return MSV_OK;
}

msv_result msv_buf_addstr(msv_buf *b, const char *s)
{
	return msv_buf_add(b, s, strlen(s));
}

msv_result msv_buf_addc(msv_buf *b, char c)
{
	return msv_buf_add(b, &c, 1);
}

msv_result msv_buf_addf(msv_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		msv_buf_free(b);
		return MSV_E_INVALID;
	}
	msv_result r = msv_buf_reserve(b, (size_t)n);
	if (r)
		return r;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return MSV_OK;
}

void msv_buf_consume(msv_buf *b, size_t n)
{
	if (n >= b->len) {
		msv_buf_reset(b);
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}
