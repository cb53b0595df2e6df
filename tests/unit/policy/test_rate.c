/* Rates as text: what msv_rate_parse takes and refuses, and that
 * msv_rate_format gives the shortest text that parses back exactly. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "missive/policy.h"

static double parsed(const char *s)
{
	double v = -42;
	if (msv_rate_parse(s, &v) != 0)
		fail_msg("\"%s\" was refused", s);
	return v;
}

static void test_parse_ok(void **state)
{
	(void)state;
	assert_true(parsed("120/m") == 2.0);
	assert_true(parsed("0.5/s") == 0.5);
	assert_true(parsed("600/h") == 600.0 / 3600);
	assert_true(parsed("1/h") == 1.0 / 3600);
	assert_true(parsed("1/m") == 1.0 / 60);
	assert_true(parsed("off") == 0);
	assert_true(parsed("  10/s\t") == 10);
	assert_true(parsed(" off ") == 0);
	assert_true(parsed("007/s") == 7);
	assert_true(parsed("1.50/s") == 1.5);
	assert_true(parsed("2.000000000000000000000/s") == 2); /* trailing zeros */
	assert_true(parsed("0.000000000000001/s") == 1e-15);
	assert_true(parsed("123456789.012345/h") == 123456789.012345 / 3600);
	/* the ceiling, in each unit */
	assert_true(parsed("1000000/s") == 1e6);
	assert_true(parsed("60000000/m") == 1e6);
	assert_true(parsed("3600000000/h") == 1e6);
}

static void test_parse_refused(void **state)
{
	(void)state;
	static const char *bad[] = {
		"", " ", "0/s", "0/m", "0.0/h", "000/s", "-1/s", "+1/s", "1/S", "1/M", "OFF", "Off",
		"of", "offf", "1/min", "1/d", "1 /s", "1/ s", "1 / s", "1/s/s", "nan/s", "NaN/s",
		"inf/s", "infinity/h", "1e3/s", "1E3/s", "0x10/s", ".5/s", "5./s", "1.2.3/s",
		"1,5/s", "1/", "/s", "1", "s", "/", "1000001/s", "1000000.000001/s",
		"60000001/m", "3600000001/h", "1234567890123456/h", /* 16 digits */
		"0.0000000000000001/s", /* 16 decimals */
		"1.234567890123456/s",  /* 16 significant digits */
		"100000.0000000001/h",
		"99999999999999999999999/s", "1\n/s", "\xff/s", "1//s", "1/s x",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		double v = 42;
		if (msv_rate_parse(bad[i], &v) != -1)
			fail_msg("\"%s\" was taken as a rate", bad[i]);
		assert_true(v == 42); /* untouched */
	}
	assert_int_equal(msv_rate_parse(NULL, NULL), -1);
}

static void expect_format(double per_sec, const char *want)
{
	char out[32];
	memset(out, 'x', sizeof(out));
	msv_rate_format(per_sec, out, sizeof(out));
	assert_string_equal(out, want);
}

static void test_format(void **state)
{
	(void)state;
	expect_format(2, "2/s");
	expect_format(0.5, "30/m"); /* shorter than 0.5/s */
	expect_format(600.0 / 3600, "10/m");
	expect_format(1.0 / 60, "1/m");
	expect_format(1.0 / 3600, "1/h");
	expect_format(7.0 / 3600, "7/h");
	expect_format(0.1, "6/m");
	expect_format(2.5, "2.5/s"); /* as short as 150/m: /s first */
	expect_format(1e6, "1000000/s");
	expect_format(1e-15, "0.0000000000036/h"); /* shorter than 0.000000000000001/s */
	expect_format(0, "off");
	expect_format(-3, "off");
	expect_format(NAN, "off");
	expect_format(INFINITY, "off");
	/* not a value the parser gives: still the closest /s text */
	expect_format(M_PI, "3.14159265358979/s");
	expect_format(1.0 / 3, "20/m");
	char small[4];
	msv_rate_format(120, small, sizeof(small));
	assert_string_equal(small, "120"); /* cut, terminated */
	msv_rate_format(120, small, 0); /* writes nothing */
}

/* parse(format(parse(text))) == parse(text), for many texts. */
static void test_round_trip(void **state)
{
	(void)state;
	static const char units[] = "smh";
	uint64_t x = 0x9E3779B97F4A7C15ULL;
	int tried = 0;
	for (int i = 0; i < 20000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		unsigned digits = 1 + (unsigned)(x % 15);
		unsigned decimals = (unsigned)((x >> 8) % (digits + 1));
		uint64_t m = (x >> 16) % 1000000000000000ULL;
		char text[48], num[24], out[32];
		int len = snprintf(num, sizeof(num), "%0*llu", (int)digits,
		                   (unsigned long long)(m % (uint64_t)pow(10, digits)));
		if (decimals)
			snprintf(text, sizeof(text), "%.*s.%s/%c", len - (int)decimals, num,
			         num + len - decimals, units[(x >> 60) % 3]);
		else
			snprintf(text, sizeof(text), "%s/%c", num, units[(x >> 60) % 3]);
		if (decimals == (unsigned)len)
			continue; /* ".5" has no integer part */
		double a, b;
		if (msv_rate_parse(text, &a) < 0)
			continue; /* zero or above the ceiling */
		tried++;
		msv_rate_format(a, out, sizeof(out));
		if (msv_rate_parse(out, &b) < 0 || a != b)
			fail_msg("%s -> %.17g -> %s does not parse back", text, a, out);
		assert_true(strlen(out) <= strlen(text) + 2);
	}
	if (tried < 8000)
		fail_msg("only %d texts were rates", tried);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_ok),
		cmocka_unit_test(test_parse_refused),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
