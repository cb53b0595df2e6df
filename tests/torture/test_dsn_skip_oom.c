/* Found by the torture run (docs/internals/torture.md): when the DSN
 * walker's skip list (addresses of the original sender, never taken for a
 * failed recipient) could not grow, the buffer was gone but its entries
 * were still counted, and the next address compared against offsets
 * from a NULL pointer.  Failing each allocation in turn while parsing a
 * bounce that fills the list must give a clean error or a report, never
 * undefined behaviour (UBSan halts this test on it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "missive/dsn.h"

/* ---- an allocator whose n-th call fails ---- */

static long calls, fail_at = -1;

static int fails(void)
{
	return ++calls == fail_at;
}

void *msv_malloc(size_t n)
{
	return fails() ? NULL : malloc(n ? n : 1);
}

void *msv_calloc(size_t count, size_t size)
{
	return fails() ? NULL : calloc(count ? count : 1, size ? size : 1);
}

void *msv_realloc(void *p, size_t n)
{
	return fails() ? NULL : realloc(p, n ? n : 1);
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

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	char *buf = malloc(1 << 20);
	assert_non_null(buf);
	*len = fread(buf, 1, 1 << 20, f);
	fclose(f);
	return buf;
}

static void each_allocation_fails_once(void **state)
{
	(void)state;
	static const char *const files[] = {"lhost-amazonses-09.eml", "lhost-postfix-01.eml"};
	for (size_t k = 0; k < sizeof(files) / sizeof(files[0]); k++) {
		char path[512];
		snprintf(path, sizeof(path), "%s/bounces/eml/%s", MSV_CORPUS_DIR, files[k]);
		size_t len;
		char *buf = slurp(path, &len);
		/* How many allocations a clean parse makes. */
		calls = 0;
		fail_at = -1;
		msv_dsn_report *r = NULL;
		msv_error err;
		assert_int_equal(msv_dsn_parse(&r, buf, len, NULL, &err), MSV_OK);
		msv_dsn_report_free(r);
		long total = calls;
		assert_true(total > 0);
		for (long n = 1; n <= total; n++) {
			calls = 0;
			fail_at = n;
			r = NULL;
			msv_result rc = msv_dsn_parse(&r, buf, len, NULL, &err);
			if (rc == MSV_OK)
				msv_dsn_report_free(r);
			else if (rc != MSV_E_NOMEM)
				fail_msg("%s, allocation %ld failing: %s", files[k], n, err.message);
		}
		free(buf);
	}
	fail_at = -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(each_allocation_fails_once),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
