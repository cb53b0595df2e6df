/* Allocation wrappers: one place to count, fail or replace allocations. */
#include <stdlib.h>
#include <string.h>

#include "missive/core.h"

void *msv_malloc(size_t n)
{
	return malloc(n ? n : 1);
}

void *msv_calloc(size_t count, size_t size)
{
	return calloc(count ? count : 1, size ? size : 1);
}

void *msv_realloc(void *p, size_t n)
{
	return realloc(p, n ? n : 1);
}

void msv_free(void *p)
{
	free(p);
}

char *msv_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = msv_malloc(n);
	if (d)
		memcpy(d, s, n);
	return d;
}

void msv_wipe(void *p, size_t n)
{
	/* A volatile function pointer keeps the compiler from proving the
	 * stores dead and dropping them. */
	static void *(*const volatile do_memset)(void *, int, size_t) = memset;
	if (p && n)
		do_memset(p, 0, n);
}

void msv_free_secret(char *s)
{
	if (!s)
		return;
	msv_wipe(s, strlen(s));
	msv_free(s);
}
