/* The gateway's configuration (issue 14): [limits], [reputation],
 * [destination DOMAIN], a route's rate and breaker keys, [http]
 * trust-loopback.  Defaults as the issue gives them; every bad value is
 * refused naming the file, line, section and key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "app/config_fixture.h"

static msv_result load(app_config *c, const char *text, msv_error *err)
{
	return load_config_text(c, 1, "", text, "", err);
}

static void test_defaults(void **state)
{
	(void)state;
	app_config c;
	msv_error err;
	assert_int_equal(load(&c, "[route default]\nserver = 127.0.0.1:25\ntls = none\n", &err),
	                 MSV_OK);
	/* key-rate = 120/m, key-burst = 20 */
	assert_true(c.limit_key.rate > 1.999 && c.limit_key.rate < 2.001);
	assert_int_equal(c.limit_key.burst, 20);
	assert_true(c.limit_uid.rate > 0);
	assert_true(c.limit_ip.rate > 0);
	assert_true(c.limit_sender_domain.rate == 0); /* off */
	assert_int_equal(c.limit_exempt_trusted, 1);
	assert_int_equal(c.http_trust_loopback, 0);
	/* start = 100, half-life = 1h, +1 / -5 / -2, cool-down = 5m, the tiers */
	assert_true(c.reputation.start == 100);
	assert_int_equal(c.reputation.half_life_ms, 3600000);
	assert_true(c.reputation.delivered == 1 && c.reputation.rejected == -5 &&
	            c.reputation.temporary == -2);
	assert_int_equal(c.reputation.cool_down_ms, 300000);
	assert_int_equal(c.reputation.ntiers, 4);
	assert_true(c.reputation.tiers[1].floor == 70 && c.reputation.tiers[1].factor == 0.5 &&
	            c.reputation.tiers[1].trip == 3);
	assert_int_equal(c.nroutes, 1);
	assert_true(c.routes[0]->shape.rate == 0);
	assert_int_equal(c.routes[0]->breaker.failures, 10);
	assert_null(app_destination_for(&c, "gmail.com"));
	app_config_free(&c);
}

static void test_values(void **state)
{
	(void)state;
	app_config c;
	msv_error err;
	const char *text = "[http]\ntrust-loopback = yes\n"
	                   "[limits]\nkey-rate = 60/m\nkey-burst = 5\nip-rate = off\n"
	                   "uid-rate = 10/s\nuid-burst = 3\nsender-domain-rate = 3600/h\n"
	                   "sender-domain-burst = 7\nexempt-trusted = no\n"
	                   "[reputation]\nstart = 80\nhalf-life = 2s\ndelivered = 2\n"
	                   "rejected = -10\ntemporary = 0\ncool-down = 3s\n"
	                   "tiers = 0:0, 50:1, 20:0.1:1\n"
	                   "[destination Shaped.Test]\nrate = 10/s\nmax-connections = 2\n"
	                   "[route default]\nserver = 127.0.0.1:25\ntls = none\nrate = 5/s\n"
	                   "burst = 4\nbreaker-failures = 5\nbreaker-window = 10s\n"
	                   "breaker-cool-down = 2s\n";
	assert_int_equal(load(&c, text, &err), MSV_OK);
	assert_int_equal(c.http_trust_loopback, 1);
	assert_true(c.limit_key.rate == 1.0 && c.limit_key.burst == 5);
	assert_true(c.limit_ip.rate == 0);
	assert_true(c.limit_uid.rate == 10 && c.limit_uid.burst == 3);
	assert_true(c.limit_sender_domain.rate == 1.0 && c.limit_sender_domain.burst == 7);
	assert_int_equal(c.limit_exempt_trusted, 0);
	assert_true(c.reputation.start == 80 && c.reputation.delivered == 2 &&
	            c.reputation.rejected == -10 && c.reputation.temporary == 0);
	assert_int_equal(c.reputation.half_life_ms, 2000);
	assert_int_equal(c.reputation.cool_down_ms, 3000);
	/* sorted highest floor first */
	assert_int_equal(c.reputation.ntiers, 3);
	assert_true(c.reputation.tiers[0].floor == 50 && c.reputation.tiers[2].floor == 0);
	const app_destination *d = app_destination_for(&c, "SHAPED.test");
	assert_non_null(d);
	assert_string_equal(d->domain, "shaped.test");
	assert_true(d->shape.rate == 10 && d->shape.burst == 1);
	assert_int_equal(d->max_connections, 2);
	app_route *r = c.routes[0];
	assert_true(r->shape.rate == 5 && r->shape.burst == 4);
	assert_int_equal(r->breaker.failures, 5);
	assert_int_equal(r->breaker.window_ms, 10000);
	assert_int_equal(r->breaker.cool_down_ms, 2000);
	app_config_free(&c);
}

/* Each bad line is refused, and the error names the line, section and key. */
static void test_refusals(void **state)
{
	(void)state;
	static const struct {
		const char *text, *want;
	} cases[] = {
	    {"[limits]\nkey-rate = 120\n", ":4: [limits] key-rate: expected a rate"},
	    {"[limits]\nkey-rate = -1/m\n", "[limits] key-rate"},
	    {"[limits]\nkey-rate = 0/s\n", "[limits] key-rate"},
	    {"[limits]\nkey-burst = 0\n", "[limits] key-burst: expected a number"},
	    {"[limits]\nkey-rate = 1/m\nkey-rate = 2/m\n", ":5: [limits] key-rate: given twice"},
	    {"[limits]\nfoo-rate = 1/m\n", "[limits] foo-rate: unknown key"},
	    {"[limits]\nexempt-trusted = maybe\n", "[limits] exempt-trusted: expected yes or no"},
	    {"[reputation]\nstart = 101\n", "[reputation] start: expected a score"},
	    {"[reputation]\nhalf-life = 0\n", "[reputation] half-life"},
	    {"[reputation]\ntiers = 90:1, 70:2\n", "[reputation] tiers"},
	    {"[reputation]\ntiers = 90:1\n", "[reputation] tiers"}, /* no floor 0 */
	    {"[reputation]\nrejected = lots\n", "[reputation] rejected"},
	    {"[destination bad_domain]\nrate = 1/s\n", "[destination bad_domain] rate: expected"},
	    {"[destination a.test]\nrate = 1/s\nrate = 2/s\n", "[destination a.test] rate: given twice"},
	    {"[destination a.test]\nmax-connections = 0\n", "[destination a.test] max-connections"},
	    {"[destination a.test]\nspeed = 1\n", "[destination a.test] speed: unknown key"},
	    {"[route default]\nserver = h:25\nrate = fast\n", "[route default] rate"},
	    {"[route default]\nserver = h:25\nbreaker-failures = 300\n", "breaker-failures"},
	    {"[route default]\nserver = h:25\nbreaker-window = 1d1\n", "breaker-window"},
	    {"[http]\ntrust-loopback = 2\n", "[http] trust-loopback"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		app_config c;
		msv_error err;
		msv_result r = load(&c, cases[i].text, &err);
		if (r != MSV_E_CONFIG || !strstr(err.message, cases[i].want) ||
		    !strstr(err.message, cfgpath))
			fail_msg("case %zu: %s -> %d %s", i, cases[i].text, (int)r, err.message);
		app_config_free(&c);
	}
}

/* The example file documents every new key and loads as it is. */
static void test_example(void **state)
{
	(void)state;
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	assert_non_null(m);
	app_config_example(m);
	fclose(m);
	for (const char *k = "trust-loopback = \0key-rate = \0uid-burst = \0tiers = \0"
	                     "half-life = \0breaker-failures = \0[limits]\0[reputation]\0";
	     *k; k += strlen(k) + 1)
		if (!strstr(buf, k))
			fail_msg("the example lacks %s", k);
	FILE *f = fopen(cfgpath, "w");
	assert_non_null(f);
	fputs(buf, f);
	fclose(f);
	free(buf);
	app_config c;
	msv_error err;
	/* The example's queue path is absolute and missing: loading checks no
	 * file, only the text. */
	assert_int_equal(app_config_load(&c, cfgpath, &err), MSV_OK);
	assert_true(c.limit_key.rate > 1.999 && c.limit_key.rate < 2.001);
	app_config_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_values),
	    cmocka_unit_test(test_refusals),
	    cmocka_unit_test(test_example),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
