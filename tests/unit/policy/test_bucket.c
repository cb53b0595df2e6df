/* Token buckets under a fake clock: refill computed from the elapsed
 * time (no drift), the burst cap, exact waits, a clock going back. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "missive/policy.h"

#define T0 1795800000000LL /* any clock: an epoch in ms */

/* --rate 60/m --burst 5: five at once, then exactly one a second. */
static void test_burst_then_rate(void **state)
{
	(void)state;
	msv_bucket b;
	double rate = 1.0; /* 60/m */
	msv_bucket_init(&b, 5, T0);
	assert_true(msv_bucket_level(&b, rate, 5, T0) == 5);
	for (int i = 0; i < 5; i++)
		assert_int_equal(msv_bucket_take(&b, rate, 5, 1, T0), 0);
	assert_int_equal(msv_bucket_take(&b, rate, 5, 1, T0), 1000);
	int64_t t = T0;
	for (int i = 0; i < 50; i++) {
		/* a millisecond early: refused, told to wait that millisecond */
		assert_int_equal(msv_bucket_take(&b, rate, 5, 1, t + 999), 1);
		assert_int_equal(msv_bucket_take(&b, rate, 5, 1, t + 1000), 0);
		t += 1000;
		assert_int_equal(msv_bucket_take(&b, rate, 5, 1, t), 1000);
	}
	/* idle: back to five, never more */
	assert_true(msv_bucket_level(&b, rate, 5, t + 4999) < 5);
	assert_true(msv_bucket_level(&b, rate, 5, t + 5000) == 5);
	assert_true(msv_bucket_level(&b, rate, 5, t + 86400000) == 5);
	for (int i = 0; i < 5; i++)
		assert_int_equal(msv_bucket_take(&b, rate, 5, 1, t + 86400000), 0);
	assert_int_equal(msv_bucket_take(&b, rate, 5, 1, t + 86400000), 1000);
}

/* Looked at every millisecond or once: the same tokens. */
static void test_refill_exact(void **state)
{
	(void)state;
	msv_bucket often, once;
	msv_bucket_init(&often, 100, T0);
	msv_bucket_init(&once, 100, T0);
	assert_int_equal(msv_bucket_take(&often, 2, 100, 100, T0), 0);
	assert_int_equal(msv_bucket_take(&once, 2, 100, 100, T0), 0);
	for (int64_t ms = 1; ms <= 10000; ms++) {
		/* 30 tokens are 15 s away: every take fails and changes nothing */
		int64_t w = msv_bucket_take(&often, 2, 100, 30, T0 + ms);
		assert_int_equal(w, 15000 - ms);
		assert_true(fabs(msv_bucket_level(&often, 2, 100, T0 + ms) - 2.0 * (double)ms / 1000) <
		            1e-9);
	}
	double a = msv_bucket_level(&often, 2, 100, T0 + 10000);
	double b = msv_bucket_level(&once, 2, 100, T0 + 10000);
	assert_true(fabs(a - 20) < 1e-9);
	assert_true(fabs(a - b) < 1e-9);
	/* taking at the right time leaves exactly nothing */
	assert_int_equal(msv_bucket_take(&often, 2, 100, 30, T0 + 15000), 0);
	assert_true(msv_bucket_level(&often, 2, 100, T0 + 15000) == 0);

	/* many small takes, each exactly what came in since the last */
	msv_bucket s;
	msv_bucket_init(&s, 10, T0);
	assert_int_equal(msv_bucket_take(&s, 2, 10, 10, T0), 0);
	for (int64_t ms = 500; ms <= 100000; ms += 500)
		assert_int_equal(msv_bucket_take(&s, 2, 10, 1, T0 + ms), 0);
	assert_true(fabs(msv_bucket_level(&s, 2, 10, T0 + 100000)) < 1e-9);
}

/* The wait is the exact time rounded up to a whole millisecond. */
static void test_wait_rounding(void **state)
{
	(void)state;
	msv_bucket b;
	msv_bucket_init(&b, 1, T0);
	assert_int_equal(msv_bucket_take(&b, 3, 1, 1, T0), 0);
	assert_int_equal(msv_bucket_take(&b, 3, 1, 1, T0), 334); /* 333.33 ms */
	assert_true(msv_bucket_level(&b, 3, 1, T0 + 333) < 1);
	assert_int_equal(msv_bucket_take(&b, 3, 1, 1, T0 + 333), 1);
	assert_int_equal(msv_bucket_take(&b, 3, 1, 1, T0 + 334), 0);

	msv_bucket_init(&b, 2, T0);
	assert_int_equal(msv_bucket_take(&b, 1, 2, 2, T0), 0);
	assert_int_equal(msv_bucket_take(&b, 1, 2, 1.5, T0), 1500); /* fractional n */
	assert_int_equal(msv_bucket_take(&b, 0.5, 2, 1, T0), 2000);  /* 30/m */
	assert_int_equal(msv_bucket_take(&b, 1000, 2, 1, T0), 1);
	assert_int_equal(msv_bucket_take(&b, 1e6, 2, 1, T0), 1); /* never 0 */
	/* 1/h, from empty */
	assert_int_equal(msv_bucket_take(&b, 1.0 / 3600, 2, 1, T0), 3600000);
	assert_int_equal(msv_bucket_take(&b, 1.0 / 3600, 2, 1, T0 + 3599999), 1);
	assert_int_equal(msv_bucket_take(&b, 1.0 / 3600, 2, 1, T0 + 3600000), 0);
}

static void test_never_and_no_limit(void **state)
{
	(void)state;
	msv_bucket b;
	msv_bucket_init(&b, 3, T0);
	assert_int_equal(msv_bucket_take(&b, 1, 3, 4, T0), -1); /* more than the burst */
	assert_true(msv_bucket_level(&b, 1, 3, T0) == 3);       /* took nothing */
	assert_int_equal(msv_bucket_take(&b, 1, 3, 3, T0), 0);
	assert_int_equal(msv_bucket_take(&b, 0, 3, 1, T0 + 1000000), -1); /* no refill */
	assert_int_equal(msv_bucket_take(&b, 1e-20, 3, 1, T0), -1);        /* 10^23 ms */
	assert_int_equal(msv_bucket_take(&b, -1, 3, 1, T0), -1);
	/* a burst but no rate: the burst, once */
	msv_bucket_init(&b, 2, T0);
	assert_int_equal(msv_bucket_take(&b, 0, 2, 1, T0), 0);
	assert_int_equal(msv_bucket_take(&b, 0, 2, 1, T0 + 5), 0);
	assert_int_equal(msv_bucket_take(&b, 0, 2, 1, T0 + 10), -1);
	/* no rate and no burst: no limit, nothing kept */
	for (int i = 0; i < 1000; i++)
		assert_int_equal(msv_bucket_take(&b, 0, 0, 1, T0), 0);
	assert_int_equal(msv_bucket_take(&b, -1, -1, 1e9, T0), 0);
	/* a rate but no burst never holds a token */
	msv_bucket_init(&b, 0, T0);
	assert_int_equal(msv_bucket_take(&b, 5, 0, 1, T0 + 100000), -1);
	/* taking nothing always works */
	assert_int_equal(msv_bucket_take(&b, 5, 0, 0, T0), 0);
	/* a negative burst at init is an empty bucket */
	msv_bucket_init(&b, -3, T0);
	assert_true(b.tokens == 0);
}

/* A clock that goes back adds nothing and takes nothing away. */
static void test_clock_back(void **state)
{
	(void)state;
	msv_bucket b;
	msv_bucket_init(&b, 2, T0);
	assert_int_equal(msv_bucket_take(&b, 1, 2, 1, T0), 0);
	assert_true(msv_bucket_level(&b, 1, 2, T0 - 5000) == 1); /* not 0, not negative */
	/* taking while the clock is back: the stamp stays, so the time to
	 * come is not counted twice */
	assert_int_equal(msv_bucket_take(&b, 1, 2, 1, T0 - 5000), 0);
	assert_int_equal(b.stamp_ms, T0);
	assert_int_equal(msv_bucket_take(&b, 1, 2, 1, T0 - 5000), 6000); /* 5 s back + 1 s */
	assert_int_equal(msv_bucket_take(&b, 1, 2, 1, T0 + 999), 1);
	assert_int_equal(msv_bucket_take(&b, 1, 2, 1, T0 + 1000), 0);
	/* far ends of the clock: no overflow */
	msv_bucket_init(&b, 1, INT64_MIN);
	assert_int_equal(msv_bucket_take(&b, 1, 1, 1, INT64_MIN), 0);
	assert_true(msv_bucket_level(&b, 1, 1, INT64_MAX) == 1);
	assert_int_equal(msv_bucket_take(&b, 1, 1, 1, INT64_MAX), 0);
}

/* For any rate, state and time: a take at now + wait succeeds, and one
 * a millisecond earlier is refused with a wait of 1. */
static void test_wait_invariant(void **state)
{
	(void)state;
	uint64_t x = 0x2545F4914F6CDD1DULL;
	for (int i = 0; i < 20000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		double rate = (double)(1 + x % 100000) / (double)(1 + (x >> 20) % 997);
		double burst = (double)(1 + (x >> 32) % 50);
		double n = (double)(1 + (x >> 40) % (uint64_t)burst) / (1 + (x >> 50) % 3);
		int64_t now = T0 + (int64_t)((x >> 8) % 100000);
		msv_bucket b = {.tokens = burst * (double)((x >> 16) % 1000) / 1000.0 / 7,
		                .stamp_ms = T0};
		msv_bucket c = b;
		int64_t w = msv_bucket_take(&b, rate, burst, n, now);
		if (w == 0)
			continue;
		assert_true(w > 0);
		c = b;
		if (w > 1)
			assert_int_equal(msv_bucket_take(&c, rate, burst, n, now + w - 1), 1);
		c = b;
		if (msv_bucket_take(&c, rate, burst, n, now + w) != 0)
			fail_msg("rate %.17g burst %g n %.17g tokens %.17g: wait %lld too short", rate,
			         burst, n, b.tokens, (long long)w);
	}
}

/* A burst lowered under a full bucket caps it at once. */
static void test_burst_lowered(void **state)
{
	(void)state;
	msv_bucket b;
	msv_bucket_init(&b, 10, T0);
	assert_true(msv_bucket_level(&b, 1, 4, T0) == 4);
	assert_int_equal(msv_bucket_take(&b, 1, 4, 4, T0), 0);
	assert_int_equal(msv_bucket_take(&b, 1, 4, 1, T0), 1000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_burst_then_rate),
		cmocka_unit_test(test_refill_exact),
		cmocka_unit_test(test_wait_rounding),
		cmocka_unit_test(test_never_and_no_limit),
		cmocka_unit_test(test_clock_back),
		cmocka_unit_test(test_burst_lowered),
		cmocka_unit_test(test_wait_invariant),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
