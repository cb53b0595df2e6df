/* Reputation under a fake clock: the tier table as text, decay, tier
 * boundaries, clamping, streaks, the submitter's circuit, and the order
 * msv_reputation_admit checks things in. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "missive/policy.h"

#define T0 1795800000000LL
#define HOUR 3600000LL

/* ---- the tier table as text ---- */

/* Field by field: msv_tier has padding. */
static void assert_same_tiers(const msv_reputation_policy *a, const msv_reputation_policy *b)
{
	assert_int_equal(a->ntiers, b->ntiers);
	for (size_t i = 0; i < a->ntiers; i++) {
		assert_true(a->tiers[i].floor == b->tiers[i].floor);
		assert_true(a->tiers[i].factor == b->tiers[i].factor);
		assert_int_equal(a->tiers[i].trip, b->tiers[i].trip);
	}
}

static void test_tiers_parse(void **state)
{
	(void)state;
	msv_reputation_policy p = MSV_REPUTATION_POLICY_INIT, d = MSV_REPUTATION_POLICY_INIT;
	char why[128] = "stale";
	memset(p.tiers, 0x55, sizeof(p.tiers));
	assert_int_equal(msv_reputation_tiers_parse("90:1, 70:0.5:3, 60:0.05:1, 0:0", &p, why), 0);
	assert_string_equal(why, "");
	assert_same_tiers(&p, &d);
	/* any order, blanks anywhere between the fields */
	assert_int_equal(msv_reputation_tiers_parse(" 0:0,60 : 0.05 : 1,\t90:1 ,70:0.5:3 ", &p, NULL),
	                 0);
	assert_int_equal(p.ntiers, 4);
	assert_true(p.tiers[0].floor == 90 && p.tiers[1].floor == 70);
	assert_true(p.tiers[2].floor == 60 && p.tiers[3].floor == 0);
	assert_int_equal(p.tiers[2].trip, 1);
	assert_true(p.tiers[2].factor == 0.05);
	/* one tier is a table */
	assert_int_equal(msv_reputation_tiers_parse("0:1", &p, why), 0);
	assert_int_equal(p.ntiers, 1);
	assert_true(p.tiers[0].factor == 1 && p.tiers[0].trip == 0);
	/* the limits themselves are allowed */
	assert_int_equal(msv_reputation_tiers_parse("100:0:1000, 0:1:0, 99.5:0.25", &p, why), 0);
	assert_true(p.tiers[0].floor == 100 && p.tiers[0].trip == 1000);
	assert_true(p.tiers[1].floor == 99.5 && p.tiers[2].floor == 0);
	/* MSV_REPUTATION_MAX_TIERS of them */
	char many[512] = "0:0";
	for (int i = 1; i < MSV_REPUTATION_MAX_TIERS; i++)
		snprintf(many + strlen(many), sizeof(many) - strlen(many), ",%d:1", i * 5);
	assert_int_equal(msv_reputation_tiers_parse(many, &p, why), 0);
	assert_int_equal(p.ntiers, MSV_REPUTATION_MAX_TIERS);
	assert_true(p.tiers[0].floor == 75 && p.tiers[15].floor == 0);
}

static void expect_refused(const char *s, const char *want)
{
	msv_reputation_policy p = MSV_REPUTATION_POLICY_INIT;
	char why[128];
	memset(why, 'x', sizeof(why));
	if (msv_reputation_tiers_parse(s, &p, why) != -1)
		fail_msg("\"%s\" was taken", s ? s : "(null)");
	assert_string_equal(why, want);
	/* the policy is untouched */
	msv_reputation_policy d = MSV_REPUTATION_POLICY_INIT;
	assert_same_tiers(&p, &d);
	assert_int_equal(msv_reputation_tiers_parse(s, &p, NULL), -1);
}

static void test_tiers_refused(void **state)
{
	(void)state;
	expect_refused("90:1, 0:1.5", "tier 2: factor 1.5 is not between 0 and 1");
	expect_refused("101:1, 0:0", "tier 1: floor 101 is not between 0 and 100");
	expect_refused("100.001:1, 0:0", "tier 1: floor 100.001 is not between 0 and 100");
	expect_refused("90:1, 70:0.5", "no tier has floor 0: a low score would have no tier");
	expect_refused("90:1, 0:0, 90:0.5", "floor 90 appears twice");
	expect_refused("90:1, 90.0:0.5, 0:0", "floor 90 appears twice");
	expect_refused("0:0:1001", "tier 1: trip \"1001\" is not a whole number 0..1000");
	expect_refused("0:0:-1", "tier 1: trip \"-1\" is not a whole number 0..1000");
	expect_refused("0:0:1.5", "tier 1: trip \"1.5\" is not a whole number 0..1000");
	expect_refused("0:0:", "tier 1: trip \"\" is not a whole number 0..1000");
	expect_refused("0:0:1:2", "tier 1: \"0:0:1:2\" is not floor:factor[:trip]");
	expect_refused("90:1, abc", "tier 2: \"abc\" is not floor:factor[:trip]");
	expect_refused("90", "tier 1: \"90\" is not floor:factor[:trip]");
	expect_refused("-5:1, 0:0", "tier 1: \"-5:1\" is not floor:factor[:trip]");
	expect_refused("0:-0.5", "tier 1: \"0:-0.5\" is not floor:factor[:trip]");
	expect_refused("0:nan", "tier 1: \"0:nan\" is not floor:factor[:trip]");
	expect_refused("1e1:1, 0:0", "tier 1: \"1e1:1\" is not floor:factor[:trip]");
	expect_refused(":1, 0:0", "tier 1: \":1\" is not floor:factor[:trip]");
	expect_refused("", "no tiers");
	expect_refused("  ", "no tiers");
	expect_refused(NULL, "no tiers");
	expect_refused("90:1,", "tier 2 is empty");
	expect_refused("90:1,,0:0", "tier 2 is empty");
	expect_refused(",0:0", "tier 1 is empty");
	char many[512] = "0:0";
	for (int i = 1; i <= MSV_REPUTATION_MAX_TIERS; i++)
		snprintf(many + strlen(many), sizeof(many) - strlen(many), ",%d:1", i * 5);
	expect_refused(many, "more than 16 tiers");
}

static void expect_format(const char *in, const char *want)
{
	msv_reputation_policy p = MSV_REPUTATION_POLICY_INIT, q = MSV_REPUTATION_POLICY_INIT;
	char out[MSV_REPUTATION_TIERS_TEXT_MAX];
	assert_int_equal(msv_reputation_tiers_parse(in, &p, NULL), 0);
	msv_reputation_tiers_format(&p, out, sizeof(out));
	assert_string_equal(out, want);
	assert_int_equal(msv_reputation_tiers_parse(out, &q, NULL), 0);
	assert_same_tiers(&q, &p);
}

static void test_tiers_format(void **state)
{
	(void)state;
	msv_reputation_policy d = MSV_REPUTATION_POLICY_INIT;
	char out[256];
	msv_reputation_tiers_format(&d, out, sizeof(out));
	assert_string_equal(out, "90:1, 70:0.5:3, 60:0.05:1, 0:0");
	expect_format("0:0, 90:1,60:0.05:1 , 70:0.50:3", "90:1, 70:0.5:3, 60:0.05:1, 0:0");
	expect_format("0:1:0", "0:1");
	expect_format("33.333:0.125:7, 0.5:0.000001, 0:0.999999999999999:1000",
	              "33.333:0.125:7, 0.5:0.000001, 0:0.999999999999999:1000");
	/* the longest table there is fits MSV_REPUTATION_TIERS_TEXT_MAX */
	char longest[MSV_REPUTATION_TIERS_TEXT_MAX] = "";
	for (int i = MSV_REPUTATION_MAX_TIERS - 1; i > 0; i--) /* 16..11, 9..1: no 10 */
		snprintf(longest + strlen(longest), sizeof(longest) - strlen(longest),
		         "0.0000000000000%02d:0.000000000000001:1000, ", i + (i >= 10));
	snprintf(longest + strlen(longest), sizeof(longest) - strlen(longest),
	         "0:0.000000000000001:1000");
	assert_true(strlen(longest) > 600);
	expect_format(longest, longest);
	/* a short out is cut and terminated */
	char small[8];
	msv_reputation_tiers_format(&d, small, sizeof(small));
	assert_int_equal(strlen(small), 7);
	assert_true(strncmp(small, "90:1, 7", 7) == 0);
}

/* ---- score, decay, tiers ---- */

static void test_decay(void **state)
{
	(void)state;
	msv_reputation_policy p = MSV_REPUTATION_POLICY_INIT;
	msv_reputation r;
	msv_reputation_init(&r, &p, T0);
	assert_true(msv_reputation_score(&r, &p, T0) == 100);
	msv_reputation_set(&r, 50, T0);
	assert_true(msv_reputation_score(&r, &p, T0) == 50);
	assert_true(fabs(msv_reputation_score(&r, &p, T0 + HOUR) - 75) < 1e-12);
	assert_true(fabs(msv_reputation_score(&r, &p, T0 + 2 * HOUR) - 87.5) < 1e-12);
	assert_true(fabs(msv_reputation_score(&r, &p, T0 + HOUR / 2) - (100 - 50 / sqrt(2))) <
	            1e-12);
	assert_true(msv_reputation_score(&r, &p, T0 + 1000 * HOUR) <= 100);
	/* a clock gone back: no decay, no growth */
	assert_true(msv_reputation_score(&r, &p, T0 - HOUR) == 50);
	/* scores above start decay down to it */
	p.start = 40;
	msv_reputation_set(&r, 80, T0);
	assert_true(fabs(msv_reputation_score(&r, &p, T0 + HOUR) - 60) < 1e-12);
	/* no half-life: no decay */
	p.half_life_ms = 0;
	assert_true(msv_reputation_score(&r, &p, T0 + 100 * HOUR) == 80);
	/* recording decays first, then applies: 50 -> 75 after an hour, +1 */
	msv_reputation_policy q = MSV_REPUTATION_POLICY_INIT;
	msv_reputation_set(&r, 50, T0);
	msv_reputation_record(&r, &q, MSV_VERDICT_DELIVERED, 1, 0, T0 + HOUR);
	assert_true(fabs(r.score - 76) < 1e-12);
	assert_int_equal(r.stamp_ms, T0 + HOUR);
	/* a record with the clock back neither decays nor moves the stamp */
	msv_reputation_record(&r, &q, MSV_VERDICT_DELIVERED, 1, 0, T0);
	assert_true(fabs(r.score - 77) < 1e-12);
	assert_int_equal(r.stamp_ms, T0 + HOUR);
}

static void test_tier_boundaries(void **state)
{
	(void)state;
	msv_reputation_policy p = MSV_REPUTATION_POLICY_INIT;
	assert_true(msv_reputation_tier(&p, 100)->floor == 90);
	assert_true(msv_reputation_tier(&p, 90)->floor == 90);
	assert_true(msv_reputation_tier(&p, 89.999)->floor == 70);
	assert_true(msv_reputation_tier(&p, nextafter(90, 0))->floor == 70);
	assert_true(msv_reputation_tier(&p, 70)->floor == 70);
	assert_true(msv_reputation_tier(&p, 69.999)->floor == 60);
	assert_true(msv_reputation_tier(&p, 60)->floor == 60);
	assert_true(msv_reputation_tier(&p, 59.999)->floor == 0);
	assert_true(msv_reputation_tier(&p, 0)->floor == 0);
	assert_null(msv_reputation_tier(&p, -1));
	p.ntiers = 0;
	assert_null(msv_reputation_tier(&p, 50));
}

static void test_record_clamps(void **state)
{
	(void)state;
	msv_reputation_policy p = MSV_REPUTATION_POLICY_INIT;
	msv_reputation r;
	msv_reputation_init(&r, &p, T0);
	msv_reputation_record(&r, &p, MSV_VERDICT_DELIVERED, 10, 0, T0);
	assert_true(r.score == 100);
	msv_reputation_record(&r, &p, MSV_VERDICT_REJECTED, 3, 0, T0);
	assert_true(r.score == 85);
	msv_reputation_record(&r, &p, MSV_VERDICT_TEMPORARY, 2, 0, T0);
	assert_true(r.score == 81);
	msv_reputation_record(&r, &p, MSV_VERDICT_REJECTED, 1000000, 0, T0);
	assert_true(r.score == 0);
	msv_reputation_record(&r, &p, MSV_VERDICT_REJECTED, 1, 0, T0);
	assert_true(r.score == 0);
	msv_reputation_record(&r, &p, MSV_VERDICT_DELIVERED, 0, 0, T0); /* nothing */
	assert_true(r.score == 0);
	msv_reputation_record(&r, &p, (msv_verdict)42, 1, 0, T0); /* unknown: nothing */
	assert_true(r.score == 0);
	msv_reputation_set(&r, 150, T0);
	assert_true(r.score == 100);
	msv_reputation_set(&r, -3, T0);
	assert_true(r.score == 0);
	msv_reputation_set(&r, NAN, T0);
	assert_true(r.score == 0);
}

/* Consecutive permanent rejections: a delivery ends the streak, a
 * temporary failure neither ends nor extends it. */
static void test_streaks(void **state)
{
	(void)state;
	msv_reputation_policy p = MSV_REPUTATION_POLICY_INIT;
	msv_reputation r;
	p.ntiers = 1; /* one tier that never trips: streaks only */
	p.tiers[0] = (msv_tier){0, 1, 0};
	msv_reputation_init(&r, &p, T0);
	msv_reputation_record(&r, &p, MSV_VERDICT_REJECTED, 2, 1, T0);
	assert_int_equal(r.rejections, 2);
	msv_reputation_record(&r, &p, MSV_VERDICT_TEMPORARY, 5, 1, T0);
	assert_int_equal(r.rejections, 2);
	msv_reputation_record(&r, &p, MSV_VERDICT_REJECTED, 1, 1, T0);
	assert_int_equal(r.rejections, 3);
	msv_reputation_record(&r, &p, MSV_VERDICT_DELIVERED, 1, 1, T0);
	assert_int_equal(r.rejections, 0);
	msv_reputation_record(&r, &p, MSV_VERDICT_REJECTED, UINT32_MAX, 1, T0);
	msv_reputation_record(&r, &p, MSV_VERDICT_REJECTED, 5, 1, T0);
	assert_int_equal(r.rejections, UINT32_MAX); /* saturates */
	assert_int_equal(r.circuit.open, 0);
	msv_reputation_set(&r, 50, T0);
	assert_int_equal(r.rejections, 0);
}

/* Tiers whose rejection weight is tiny, so a test stays in one tier. */
static msv_reputation_policy gentle(void)
{
	msv_reputation_policy p = MSV_REPUTATION_POLICY_INIT;
	p.rejected = -0.001;
	p.temporary = -0.001;
	p.delivered = 0.001;
	return p;
}

static void test_trip_rules(void **state)
{
	(void)state;
	msv_reputation_policy p = gentle();
	msv_reputation r;
	msv_reputation_init(&r, &p, T0);
	/* top tier, trip 0: never, exhausted or not */
	for (int i = 0; i < 50; i++)
		msv_reputation_record(&r, &p, MSV_VERDICT_REJECTED, 1, 1, T0);
	assert_int_equal(r.circuit.open, 0);
	/* trip 3: the streak alone is not enough, nor exhaustion alone */
	msv_reputation_set(&r, 80, T0);
	msv_reputation_record(&r, &p, MSV_VERDICT_REJECTED, 1, 1, T0);
	msv_reputation_record(&r, &p, MSV_VERDICT_REJECTED, 1, 1, T0);
	assert_int_equal(r.circuit.open, 0); /* exhausted, streak 2 */
	msv_reputation_record(&r, &p, MSV_VERDICT_REJECTED, 1, 0, T0);
	assert_int_equal(r.circuit.open, 0); /* streak 3, not exhausted */
	msv_reputation_record(&r, &p, MSV_VERDICT_REJECTED, 1, 1, T0);
	assert_int_equal(r.circuit.open, 1); /* streak 4 and exhausted */
	assert_int_equal(r.circuit.open_until_ms, T0 + p.cool_down_ms);
	assert_int_equal(r.circuit.trips, 1);
	/* trip 3 reached in one record of 3 */
	msv_reputation_set(&r, 80, T0);
	msv_reputation_record(&r, &p, MSV_VERDICT_REJECTED, 3, 1, T0);
	assert_int_equal(r.circuit.open, 1);
	/* a delivery in between ends the streak */
	msv_reputation_set(&r, 80, T0);
	msv_reputation_record(&r, &p, MSV_VERDICT_REJECTED, 2, 1, T0);
	msv_reputation_record(&r, &p, MSV_VERDICT_DELIVERED, 1, 1, T0);
	msv_reputation_record(&r, &p, MSV_VERDICT_REJECTED, 2, 1, T0);
	assert_int_equal(r.circuit.open, 0);
	/* trip 1: any rejection, exhausted or not */
	msv_reputation_set(&r, 65, T0);
	msv_reputation_record(&r, &p, MSV_VERDICT_TEMPORARY, 10, 1, T0);
	assert_int_equal(r.circuit.open, 0);
	msv_reputation_record(&r, &p, MSV_VERDICT_REJECTED, 1, 0, T0);
	assert_int_equal(r.circuit.open, 1);
	/* the tier the rejection reaches decides: from 90.0025, two leave
	 * the score in the trip-0 tier, the third takes it under 90 into
	 * the trip-3 tier with a streak of 3 */
	msv_reputation_set(&r, 90.0025, T0);
	msv_reputation_record(&r, &p, MSV_VERDICT_REJECTED, 2, 1, T0);
	assert_int_equal(r.circuit.open, 0);
	msv_reputation_record(&r, &p, MSV_VERDICT_REJECTED, 1, 1, T0);
	assert_true(r.score < 90);
	assert_int_equal(r.circuit.open, 1);
	msv_reputation_set(&r, 90.0035, T0);
	msv_reputation_record(&r, &p, MSV_VERDICT_REJECTED, 3, 1, T0);
	assert_true(r.score >= 90);
	assert_int_equal(r.circuit.open, 0);
	/* a score that fell into the trip-3 tier by decay-free temporaries */
	msv_reputation_set(&r, 90.0005, T0);
	msv_reputation_record(&r, &p, MSV_VERDICT_REJECTED, 2, 1, T0);
	assert_int_equal(r.circuit.open, 0); /* 89.9985: trip-3 tier, streak 2 */
}

static void test_circuit(void **state)
{
	(void)state;
	msv_reputation_policy p = gentle();
	msv_reputation r;
	msv_bucket b;
	int64_t w;
	msv_reputation_init(&r, &p, T0);
	msv_bucket_init(&b, 100, T0);
	msv_reputation_set(&r, 65, T0);
	msv_reputation_record(&r, &p, MSV_VERDICT_REJECTED, 1, 0, T0); /* opens, 5 min */
	assert_int_equal(msv_reputation_admit(&r, &p, &b, 10, 100, 1, T0, &w), MSV_ADMIT_CIRCUIT);
	assert_int_equal(w, 300000);
	assert_int_equal(msv_reputation_admit(&r, &p, &b, 10, 100, 1, T0 + 299999, &w),
	                 MSV_ADMIT_CIRCUIT);
	assert_int_equal(w, 1);
	/* rejections of mail admitted before do not extend it, deliveries
	 * do not close it early */
	msv_reputation_record(&r, &p, MSV_VERDICT_REJECTED, 1, 1, T0 + 1000);
	msv_reputation_record(&r, &p, MSV_VERDICT_DELIVERED, 1, 1, T0 + 2000);
	assert_int_equal(r.circuit.open_until_ms, T0 + 300000);
	assert_int_equal(r.circuit.open, 1);
	assert_int_equal(r.circuit.trips, 1);
	/* half-open: one probe submission */
	assert_int_equal(msv_reputation_admit(&r, &p, &b, 10, 100, 1, T0 + 300000, &w), MSV_ADMIT_OK);
	assert_int_equal(w, 0);
	assert_int_equal(msv_reputation_admit(&r, &p, &b, 10, 100, 1, T0 + 300000, &w),
	                 MSV_ADMIT_CIRCUIT);
	assert_int_equal(w, 300000);
	/* the probe rejected: open again */
	msv_reputation_record(&r, &p, MSV_VERDICT_REJECTED, 1, 0, T0 + 310000);
	assert_int_equal(r.circuit.trips, 2);
	assert_int_equal(msv_reputation_admit(&r, &p, &b, 10, 100, 1, T0 + 310000, &w),
	                 MSV_ADMIT_CIRCUIT);
	assert_int_equal(w, 300000);
	/* next probe, then a temporary failure: still waiting for the answer */
	assert_int_equal(msv_reputation_admit(&r, &p, &b, 10, 100, 1, T0 + 610000, &w), MSV_ADMIT_OK);
	msv_reputation_record(&r, &p, MSV_VERDICT_TEMPORARY, 1, 0, T0 + 611000);
	assert_int_equal(msv_reputation_admit(&r, &p, &b, 10, 100, 1, T0 + 611000, &w),
	                 MSV_ADMIT_CIRCUIT);
	assert_int_equal(w, 299000);
	/* exactly at the end of a cool-down the circuit is half-open: a
	 * rejection then reopens it, a delivery closes it */
	msv_reputation r2;
	msv_reputation_init(&r2, &p, T0);
	msv_reputation_set(&r2, 65, T0);
	msv_reputation_record(&r2, &p, MSV_VERDICT_REJECTED, 1, 0, T0);
	msv_reputation_record(&r2, &p, MSV_VERDICT_REJECTED, 1, 0, T0 + 299999);
	assert_int_equal(r2.circuit.trips, 1);
	msv_reputation_record(&r2, &p, MSV_VERDICT_REJECTED, 1, 0, T0 + 300000);
	assert_int_equal(r2.circuit.trips, 2);
	assert_int_equal(r2.circuit.open_until_ms, T0 + 600000);
	msv_reputation_record(&r2, &p, MSV_VERDICT_DELIVERED, 1, 0, T0 + 599999);
	assert_int_equal(r2.circuit.open, 1);
	msv_reputation_record(&r2, &p, MSV_VERDICT_DELIVERED, 1, 0, T0 + 600000);
	assert_int_equal(r2.circuit.open, 0);
	/* delivered: closed */
	msv_reputation_record(&r, &p, MSV_VERDICT_DELIVERED, 1, 0, T0 + 612000);
	assert_int_equal(r.circuit.open, 0);
	for (int i = 0; i < 5; i++)
		assert_int_equal(msv_reputation_admit(&r, &p, &b, 10, 100, 1, T0 + 612000, &w),
		                 MSV_ADMIT_OK);
}

static void test_lost_probe_and_set(void **state)
{
	(void)state;
	msv_reputation_policy p = gentle();
	msv_reputation r;
	msv_bucket b;
	int64_t w;
	msv_reputation_init(&r, &p, T0);
	msv_bucket_init(&b, 100, T0);
	msv_reputation_set(&r, 65, T0);
	msv_reputation_record(&r, &p, MSV_VERDICT_REJECTED, 1, 0, T0);
	assert_int_equal(msv_reputation_admit(&r, &p, &b, 10, 100, 1, T0 + 400000, NULL),
	                 MSV_ADMIT_OK); /* probe at +400 s, never answered */
	assert_int_equal(msv_reputation_admit(&r, &p, &b, 10, 100, 1, T0 + 699999, &w),
	                 MSV_ADMIT_CIRCUIT);
	assert_int_equal(w, 1);
	assert_int_equal(msv_reputation_admit(&r, &p, &b, 10, 100, 1, T0 + 700000, &w), MSV_ADMIT_OK);
	assert_int_equal(msv_reputation_admit(&r, &p, &b, 10, 100, 1, T0 + 700000, &w),
	                 MSV_ADMIT_CIRCUIT);
	/* the operator's override closes it at once */
	msv_reputation_set(&r, 95, T0 + 700001);
	assert_int_equal(msv_reputation_admit(&r, &p, &b, 10, 100, 1, T0 + 700001, &w), MSV_ADMIT_OK);
	assert_int_equal(r.circuit.open, 0);
}

/* Circuit first, then the tier's factor, then the bucket at rate *
 * factor; tokens are taken only on MSV_ADMIT_OK. */
static void test_admit_order(void **state)
{
	(void)state;
	msv_reputation_policy p = gentle();
	msv_reputation r;
	msv_bucket b;
	int64_t w;
	msv_reputation_init(&r, &p, T0);
	msv_bucket_init(&b, 1, T0);
	assert_int_equal(msv_bucket_take(&b, 1, 1, 1, T0), 0); /* empty */
	/* circuit open, factor 0, no token: the circuit answers */
	msv_reputation_set(&r, 65, T0);
	msv_reputation_record(&r, &p, MSV_VERDICT_REJECTED, 1, 0, T0);
	msv_reputation_set(&r, 10, T0);
	r.circuit.open = 1;
	r.circuit.open_until_ms = T0 + 5;
	assert_int_equal(msv_reputation_admit(&r, &p, &b, 1, 1, 1, T0, &w), MSV_ADMIT_CIRCUIT);
	assert_int_equal(w, 5);
	/* closed, factor 0, no token: refused for reputation, for ever */
	msv_reputation_set(&r, 10, T0);
	assert_int_equal(msv_reputation_admit(&r, &p, &b, 1, 1, 1, T0, &w), MSV_ADMIT_REPUTATION);
	assert_int_equal(w, -1);
	/* factor 0.5 (70 tier) at 60/m, burst 1: a token every 2 s */
	msv_reputation_set(&r, 75, T0);
	assert_int_equal(msv_reputation_admit(&r, &p, &b, 1, 1, 1, T0, &w), MSV_ADMIT_RATE);
	assert_int_equal(w, 2000);
	assert_int_equal(msv_reputation_admit(&r, &p, &b, 1, 1, 1, T0 + 1999, &w), MSV_ADMIT_RATE);
	assert_int_equal(w, 1);
	assert_int_equal(msv_reputation_admit(&r, &p, &b, 1, 1, 1, T0 + 2000, &w), MSV_ADMIT_OK);
	assert_int_equal(w, 0);
	/* factor 0.05 (60 tier): every 20 s */
	msv_reputation_set(&r, 60, T0 + 2000);
	assert_int_equal(msv_reputation_admit(&r, &p, &b, 1, 1, 1, T0 + 2000, &w), MSV_ADMIT_RATE);
	assert_int_equal(w, 20000);
	/* a refusal takes no tokens */
	msv_bucket_init(&b, 3, T0);
	msv_reputation_set(&r, 10, T0);
	assert_int_equal(msv_reputation_admit(&r, &p, &b, 1, 3, 3, T0, &w), MSV_ADMIT_REPUTATION);
	assert_true(msv_bucket_level(&b, 1, 3, T0) == 3);
	msv_reputation_set(&r, 95, T0);
	assert_int_equal(msv_reputation_admit(&r, &p, &b, 1, 3, 4, T0, &w), MSV_ADMIT_RATE);
	assert_int_equal(w, -1); /* n > burst: never */
	assert_true(msv_bucket_level(&b, 1, 3, T0) == 3);
	assert_int_equal(msv_reputation_admit(&r, &p, &b, 1, 3, 3, T0, NULL), MSV_ADMIT_OK);
	assert_true(msv_bucket_level(&b, 1, 3, T0) == 0);
	/* a half-open circuit's probe is not spent when the bucket refuses */
	msv_reputation_set(&r, 65, T0);
	msv_reputation_record(&r, &p, MSV_VERDICT_REJECTED, 1, 0, T0);
	assert_int_equal(msv_reputation_admit(&r, &p, &b, 1, 3, 1, T0 + 300000, &w), MSV_ADMIT_OK);
	msv_reputation_set(&r, 65, T0 + 300000);
	msv_reputation_record(&r, &p, MSV_VERDICT_REJECTED, 1, 0, T0 + 300000);
	msv_bucket_init(&b, 1, T0);
	assert_int_equal(msv_bucket_take(&b, 1, 1, 1, T0 + 600000), 0);
	assert_int_equal(msv_reputation_admit(&r, &p, &b, 1, 1, 1, T0 + 600000, &w), MSV_ADMIT_RATE);
	assert_int_equal(w, 20000); /* 60 tier: 0.05/s */
	assert_int_equal(r.circuit.probing, 0);
	assert_int_equal(msv_reputation_admit(&r, &p, &b, 1, 1, 1, T0 + 620000, &w), MSV_ADMIT_OK);
	assert_int_equal(r.circuit.probing, 1);
}

/* No reputation kept: the bucket alone; no rate and no burst: no limit. */
static void test_admit_without_reputation(void **state)
{
	(void)state;
	msv_bucket b;
	int64_t w = 7;
	msv_bucket_init(&b, 5, T0);
	for (int i = 0; i < 5; i++)
		assert_int_equal(msv_reputation_admit(NULL, NULL, &b, 1, 5, 1, T0, &w), MSV_ADMIT_OK);
	assert_int_equal(msv_reputation_admit(NULL, NULL, &b, 1, 5, 1, T0, &w), MSV_ADMIT_RATE);
	assert_int_equal(w, 1000);
	assert_int_equal(msv_reputation_admit(NULL, NULL, &b, 1, 5, 1, T0 + 1000, &w), MSV_ADMIT_OK);
	msv_reputation_policy p = MSV_REPUTATION_POLICY_INIT;
	for (int i = 0; i < 100; i++)
		assert_int_equal(msv_reputation_admit(NULL, &p, &b, 0, 0, 1, T0, &w), MSV_ADMIT_OK);
	/* with a reputation but no limit: only the reputation can refuse */
	msv_reputation r;
	msv_reputation_init(&r, &p, T0);
	assert_int_equal(msv_reputation_admit(&r, &p, &b, 0, 0, 1000, T0, &w), MSV_ADMIT_OK);
	msv_reputation_set(&r, 59, T0);
	assert_int_equal(msv_reputation_admit(&r, &p, &b, 0, 0, 1, T0, &w), MSV_ADMIT_REPUTATION);
	/* the score recovers with time: 59 -> 79.5 after an hour: admitted */
	assert_int_equal(msv_reputation_admit(&r, &p, &b, 0, 0, 1, T0 + HOUR, &w), MSV_ADMIT_OK);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tiers_parse),
		cmocka_unit_test(test_tiers_refused),
		cmocka_unit_test(test_tiers_format),
		cmocka_unit_test(test_decay),
		cmocka_unit_test(test_tier_boundaries),
		cmocka_unit_test(test_record_clamps),
		cmocka_unit_test(test_streaks),
		cmocka_unit_test(test_trip_rules),
		cmocka_unit_test(test_circuit),
		cmocka_unit_test(test_lost_probe_and_set),
		cmocka_unit_test(test_admit_order),
		cmocka_unit_test(test_admit_without_reputation),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
