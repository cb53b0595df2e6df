/* Circuit breakers under a fake clock: the failure window's edges, the
 * cool-down, the single half-open probe, a lost probe, disabled. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "missive/policy.h"

#define T0 1795800000000LL

static const msv_breaker_policy pol = {.failures = 3, .window_ms = 1000, .cool_down_ms = 5000};

static void fail_at(msv_breaker *b, const msv_breaker_policy *p, int64_t t)
{
	int64_t w = -7;
	assert_int_equal(msv_breaker_allow(b, p, t, &w), 1);
	assert_int_equal(w, 0);
	msv_breaker_record(b, p, 0, t);
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(msv_circuit_name(MSV_CIRCUIT_CLOSED), "closed");
	assert_string_equal(msv_circuit_name(MSV_CIRCUIT_OPEN), "open");
	assert_string_equal(msv_circuit_name(MSV_CIRCUIT_HALF_OPEN), "half-open");
	assert_string_equal(msv_circuit_name((msv_circuit)99), "unknown");
	msv_breaker_policy d = MSV_BREAKER_POLICY_INIT;
	assert_int_equal(d.failures, 10);
}

/* The window is (now - window_ms, now]: a failure exactly window_ms old
 * is out of it. */
static void test_window_edges(void **state)
{
	(void)state;
	msv_breaker b;
	msv_breaker_init(&b);
	fail_at(&b, &pol, T0);
	fail_at(&b, &pol, T0 + 500);
	fail_at(&b, &pol, T0 + 1000); /* T0 is just out */
	assert_int_equal(msv_breaker_state(&b, T0 + 1000), MSV_CIRCUIT_CLOSED);
	assert_int_equal(b.trips, 0);
	fail_at(&b, &pol, T0 + 1499); /* T0+500 .. T0+1499: 3 within 1000 */
	assert_int_equal(msv_breaker_state(&b, T0 + 1499), MSV_CIRCUIT_OPEN);
	assert_int_equal(b.trips, 1);

	msv_breaker_init(&b);
	fail_at(&b, &pol, T0);
	fail_at(&b, &pol, T0 + 500);
	fail_at(&b, &pol, T0 + 999); /* T0 is 999 ms old: in */
	assert_int_equal(msv_breaker_state(&b, T0 + 999), MSV_CIRCUIT_OPEN);

	/* two failures are never enough, however close */
	msv_breaker_init(&b);
	fail_at(&b, &pol, T0);
	fail_at(&b, &pol, T0);
	for (int64_t t = T0 + 1000; t < T0 + 10000; t += 1000)
		fail_at(&b, &pol, t);
	assert_int_equal(msv_breaker_state(&b, T0 + 10000), MSV_CIRCUIT_CLOSED);
	/* successes do not reset the count: the window counts failures */
	msv_breaker_record(&b, &pol, 1, T0 + 10000);
	fail_at(&b, &pol, T0 + 10001);
	msv_breaker_record(&b, &pol, 1, T0 + 10002);
	fail_at(&b, &pol, T0 + 10003);
	assert_int_equal(msv_breaker_state(&b, T0 + 10003), MSV_CIRCUIT_CLOSED);
	fail_at(&b, &pol, T0 + 10004);
	assert_int_equal(msv_breaker_state(&b, T0 + 10004), MSV_CIRCUIT_OPEN);
}

static void trip_at(msv_breaker *b, int64_t t)
{
	for (int i = 0; i < 3; i++)
		fail_at(b, &pol, t);
	assert_int_equal(msv_breaker_state(b, t), MSV_CIRCUIT_OPEN);
}

static void test_cool_down_and_probe(void **state)
{
	(void)state;
	msv_breaker b;
	int64_t w;
	msv_breaker_init(&b);
	trip_at(&b, T0);
	assert_int_equal(msv_breaker_allow(&b, &pol, T0, &w), 0);
	assert_int_equal(w, 5000);
	assert_int_equal(msv_breaker_allow(&b, &pol, T0 + 4999, &w), 0);
	assert_int_equal(w, 1);
	assert_int_equal(msv_breaker_state(&b, T0 + 4999), MSV_CIRCUIT_OPEN);
	assert_int_equal(msv_breaker_state(&b, T0 + 5000), MSV_CIRCUIT_HALF_OPEN);
	/* exactly one probe */
	assert_int_equal(msv_breaker_allow(&b, &pol, T0 + 5000, NULL), 1);
	assert_int_equal(msv_breaker_allow(&b, &pol, T0 + 5000, &w), 0);
	assert_int_equal(w, 5000); /* until the probe is presumed lost */
	assert_int_equal(msv_breaker_allow(&b, &pol, T0 + 6000, &w), 0);
	assert_int_equal(w, 4000);
	assert_int_equal(msv_breaker_state(&b, T0 + 6000), MSV_CIRCUIT_HALF_OPEN);
	/* the probe fails: open for another cool-down */
	msv_breaker_record(&b, &pol, 0, T0 + 6000);
	assert_int_equal(b.trips, 2);
	assert_int_equal(msv_breaker_state(&b, T0 + 10999), MSV_CIRCUIT_OPEN);
	assert_int_equal(msv_breaker_allow(&b, &pol, T0 + 10999, &w), 0);
	assert_int_equal(w, 1);
	/* the next probe succeeds: closed, and the old failures forgotten */
	assert_int_equal(msv_breaker_allow(&b, &pol, T0 + 11000, NULL), 1);
	msv_breaker_record(&b, &pol, 1, T0 + 11001);
	assert_int_equal(msv_breaker_state(&b, T0 + 11001), MSV_CIRCUIT_CLOSED);
	for (int i = 0; i < 10; i++)
		assert_int_equal(msv_breaker_allow(&b, &pol, T0 + 11001, NULL), 1);
	fail_at(&b, &pol, T0 + 11002);
	fail_at(&b, &pol, T0 + 11003);
	assert_int_equal(msv_breaker_state(&b, T0 + 11003), MSV_CIRCUIT_CLOSED);
	fail_at(&b, &pol, T0 + 11004);
	assert_int_equal(msv_breaker_state(&b, T0 + 11004), MSV_CIRCUIT_OPEN);
	assert_int_equal(b.trips, 3);
}

/* A probe never answered: after one cool-down the next caller probes. */
static void test_lost_probe(void **state)
{
	(void)state;
	msv_breaker b;
	int64_t w;
	msv_breaker_init(&b);
	trip_at(&b, T0);
	assert_int_equal(msv_breaker_allow(&b, &pol, T0 + 7000, NULL), 1); /* probe at 7000 */
	assert_int_equal(msv_breaker_allow(&b, &pol, T0 + 11999, &w), 0);
	assert_int_equal(w, 1);
	assert_int_equal(msv_breaker_allow(&b, &pol, T0 + 12000, NULL), 1); /* lost: a new one */
	assert_int_equal(msv_breaker_allow(&b, &pol, T0 + 12000, &w), 0);
	assert_int_equal(w, 5000);
	assert_int_equal(b.trips, 1);
}

/* While open (cool-down running) the answers of sends let through
 * before the trip neither close nor extend it. */
static void test_late_answers(void **state)
{
	(void)state;
	msv_breaker b;
	msv_breaker_init(&b);
	trip_at(&b, T0);
	msv_breaker_record(&b, &pol, 1, T0 + 10);
	assert_int_equal(msv_breaker_state(&b, T0 + 10), MSV_CIRCUIT_OPEN);
	msv_breaker_record(&b, &pol, 0, T0 + 4000);
	assert_int_equal(msv_breaker_state(&b, T0 + 5000), MSV_CIRCUIT_HALF_OPEN);
	assert_int_equal(b.trips, 1);
	/* half-open, no probe out yet: an answer is not the probe's */
	msv_breaker_record(&b, &pol, 1, T0 + 5000);
	assert_int_equal(msv_breaker_state(&b, T0 + 5000), MSV_CIRCUIT_HALF_OPEN);
}

static void test_disabled(void **state)
{
	(void)state;
	msv_breaker_policy off = {.failures = 0, .window_ms = 1000, .cool_down_ms = 5000};
	msv_breaker b;
	msv_breaker_init(&b);
	for (int i = 0; i < 1000; i++) {
		assert_int_equal(msv_breaker_allow(&b, &off, T0, NULL), 1);
		msv_breaker_record(&b, &off, 0, T0);
	}
	assert_int_equal(msv_breaker_state(&b, T0), MSV_CIRCUIT_CLOSED);
	assert_int_equal(b.trips, 0);
}

static void test_sizes(void **state)
{
	(void)state;
	msv_breaker b;
	/* one failure is enough when failures is 1 */
	msv_breaker_policy one = {.failures = 1, .window_ms = 1, .cool_down_ms = 10};
	msv_breaker_init(&b);
	fail_at(&b, &one, T0);
	assert_int_equal(msv_breaker_state(&b, T0), MSV_CIRCUIT_OPEN);
	/* the largest ring, wrapped several times */
	msv_breaker_policy big = {.failures = MSV_BREAKER_MAX_FAILURES, .window_ms = 1000,
	                          .cool_down_ms = 10};
	msv_breaker_init(&b);
	int64_t t = T0;
	for (int i = 0; i < 3 * MSV_BREAKER_MAX_FAILURES; i++, t += 4) /* 256 take 1020 ms */
		fail_at(&b, &big, t);
	assert_int_equal(msv_breaker_state(&b, t), MSV_CIRCUIT_CLOSED);
	/* now every 3 ms: after k of them the latest 256 span 1020 - k ms,
	 * so the 20th leaves it closed (exactly the window: out) and the
	 * 21st opens it */
	t += -4 + 3;
	for (int k = 1; k <= 20; k++, t += 3)
		fail_at(&b, &big, t);
	assert_int_equal(msv_breaker_state(&b, t - 3), MSV_CIRCUIT_CLOSED);
	fail_at(&b, &big, t);
	assert_int_equal(msv_breaker_state(&b, t), MSV_CIRCUIT_OPEN);
	/* more failures than the ring holds: as many as it holds */
	msv_breaker_policy huge = {.failures = 100000, .window_ms = 1000, .cool_down_ms = 10};
	msv_breaker_init(&b);
	for (int i = 0; i < MSV_BREAKER_MAX_FAILURES; i++)
		fail_at(&b, &huge, T0);
	assert_int_equal(msv_breaker_state(&b, T0), MSV_CIRCUIT_OPEN);
	/* a clock at its far ends does not wrap into the window */
	msv_breaker_init(&b);
	msv_breaker_policy two = {.failures = 2, .window_ms = 1000, .cool_down_ms = INT64_MAX};
	fail_at(&b, &two, INT64_MIN);
	fail_at(&b, &two, INT64_MAX);
	assert_int_equal(msv_breaker_state(&b, INT64_MAX), MSV_CIRCUIT_CLOSED);
	fail_at(&b, &two, INT64_MAX);
	assert_int_equal(msv_breaker_state(&b, INT64_MAX - 1), MSV_CIRCUIT_OPEN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_window_edges),
		cmocka_unit_test(test_cool_down_and_probe),
		cmocka_unit_test(test_lost_probe),
		cmocka_unit_test(test_late_answers),
		cmocka_unit_test(test_disabled),
		cmocka_unit_test(test_sizes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
