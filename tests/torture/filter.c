/* Linked into the torture copies of the cmocka unit tests: runs only the
 * test named by MSV_TORTURE_TEST (a cmocka glob), so that the runner can
 * count and fail the allocations of one test at a time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

__attribute__((constructor)) static void torture_filter(void)
{
	const char *t = getenv("MSV_TORTURE_TEST");
	if (t && *t)
		cmocka_set_test_filter(t);
}
