/* The scale-out keys (issue 16, docs/scale-out.md): [limits] redis,
 * redis-fallback-nodes, redis-timeout and [daemon] node.  Defaults, what
 * a good value sets, and every bad value refused naming the file, line,
 * section and key. */
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
	return load_config_text(c, 1, "", text,
	                        "[route default]\nserver = 127.0.0.1:25\ntls = none\n", err);
}

static void test_defaults(void **state)
{
	(void)state;
	app_config c;
	msv_error err;
	assert_int_equal(load(&c, "", &err), MSV_OK);
	assert_null(c.limit_redis_host); /* local buckets */
	assert_int_equal(c.limit_redis_nodes, 3);
	assert_int_equal(c.limit_redis_timeout_ms, 50);
	assert_null(c.node); /* missived names itself HOST-PID */
	app_config_free(&c);
}

static void test_values(void **state)
{
	(void)state;
	app_config c;
	msv_error err;
	assert_int_equal(load(&c, "[limits]\nredis = redis://10.0.0.20:6380/2\n"
	                          "redis-fallback-nodes = 5\nredis-timeout = 200ms\n"
	                          "[daemon]\nnode = mail-1.example_A\n", &err), MSV_OK);
	assert_string_equal(c.limit_redis_host, "10.0.0.20");
	assert_int_equal(c.limit_redis_port, 6380);
	assert_int_equal(c.limit_redis_db, 2);
	assert_int_equal(c.limit_redis_nodes, 5);
	assert_int_equal(c.limit_redis_timeout_ms, 200);
	assert_string_equal(c.node, "mail-1.example_A");
	app_config_free(&c);
	assert_int_equal(load(&c, "[limits]\nredis = redis://cache.internal:6379\n", &err), MSV_OK);
	assert_string_equal(c.limit_redis_host, "cache.internal");
	assert_int_equal(c.limit_redis_db, 0);
	app_config_free(&c);
	assert_int_equal(load(&c, "[limits]\nredis = off\n", &err), MSV_OK);
	assert_null(c.limit_redis_host);
	app_config_free(&c);
}

static void test_refusals(void **state)
{
	(void)state;
	static const struct {
		const char *text, *want;
	} cases[] = {
	    {"[limits]\nredis = http://127.0.0.1:6379\n", ":4: [limits] redis: expected redis://"},
	    {"[limits]\nredis = redis://127.0.0.1\n", "[limits] redis: expected"},
	    {"[limits]\nredis = redis://:6379\n", "[limits] redis: expected"},
	    {"[limits]\nredis = redis://h:0\n", "[limits] redis: expected"},
	    {"[limits]\nredis = redis://h:65536\n", "[limits] redis: expected"},
	    {"[limits]\nredis = redis://h:6379/16\n", "[limits] redis: expected"},
	    {"[limits]\nredis = redis://h:6379/x\n", "[limits] redis: expected"},
	    {"[limits]\nredis = redis://h:6379x\n", "[limits] redis: expected"},
	    {"[limits]\nredis-fallback-nodes = 0\n", "[limits] redis-fallback-nodes: expected"},
	    {"[limits]\nredis-fallback-nodes = 1001\n", "[limits] redis-fallback-nodes"},
	    {"[limits]\nredis-timeout = 0\n", "[limits] redis-timeout: expected"},
	    {"[limits]\nredis-timeout = 11s\n", "[limits] redis-timeout"},
	    {"[daemon]\nnode = a:b\n", "[daemon] node: expected 1 to 64"},
	    {"[daemon]\nnode = two words\n", "[daemon] node"},
	    {"[daemon]\nnode = "
	     "x12345678901234567890123456789012345678901234567890123456789012345\n",
	     "[daemon] node"},
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_values),
	    cmocka_unit_test(test_refusals),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
