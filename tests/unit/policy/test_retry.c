/* The retry schedule: exponential ceilings, capped; full jitter stays in
 * [0, ceiling] and spreads over it; the maximum age. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "missive/policy.h"

static void test_ceiling(void **state)
{
	(void)state;
	msv_retry_policy p = MSV_RETRY_POLICY_INIT;
	assert_int_equal(msv_retry_ceiling_ms(&p, 1), 60000);
	assert_int_equal(msv_retry_ceiling_ms(&p, 2), 120000);
	assert_int_equal(msv_retry_ceiling_ms(&p, 6), 1920000);
	assert_int_equal(msv_retry_ceiling_ms(&p, 7), 3600000); /* 3840 s capped at 1 h */
	assert_int_equal(msv_retry_ceiling_ms(&p, 1000000), 3600000);
	msv_retry_policy flat = {500, 1.0, 10000, 0};
	assert_int_equal(msv_retry_ceiling_ms(&flat, 50), 500);
	msv_retry_policy zero = {0, 2.0, 1000, 0};
	assert_int_equal(msv_retry_delay_ms(&zero, 3, 12345), 0);
}

static void test_jitter(void **state)
{
	(void)state;
	msv_retry_policy p = {1000, 2.0, 8000, 0};
	uint64_t x = 88172645463325252ULL; /* xorshift64 */
	int64_t lo = 1 << 30, hi = -1;
	unsigned buckets[4] = {0};
	for (int i = 0; i < 4000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		int64_t d = msv_retry_delay_ms(&p, 3, x); /* ceiling 4000 */
		assert_true(d >= 0 && d <= 4000);
		lo = d < lo ? d : lo;
		hi = d > hi ? d : hi;
		buckets[d * 4 / 4001]++;
	}
	/* Full jitter: the whole range is used, roughly evenly. */
	assert_true(lo < 100 && hi > 3900);
	for (int b = 0; b < 4; b++)
		assert_true(buckets[b] > 800 && buckets[b] < 1200);
	assert_int_equal(msv_retry_delay_ms(&p, 3, UINT64_MAX) <= 4000, 1);
}

static void test_expired(void **state)
{
	(void)state;
	msv_retry_policy p = MSV_RETRY_POLICY_INIT;
	int64_t t0 = 1795800000000;
	assert_false(msv_retry_expired(&p, t0, t0 + 5LL * 86400000 - 1));
	assert_true(msv_retry_expired(&p, t0, t0 + 5LL * 86400000));
	msv_retry_policy forever = {1000, 2.0, 1000, 0};
	assert_false(msv_retry_expired(&forever, 0, INT64_MAX));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ceiling),
		cmocka_unit_test(test_jitter),
		cmocka_unit_test(test_expired),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
