/* [audit] (issue 15, docs/audit.md): the trail beside the queue by
 * default, off, rotation and retention values, repeatable mask and
 * kafka.* keys, and every bad value refused naming the file, line,
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
	return load_config_text(c, 1, "[route default]\nserver = 127.0.0.1:25\ntls = none\n",
	                        text, "", err);
}

static void test_defaults(void **state)
{
	(void)state;
	app_config c;
	msv_error err;
	char want[256];
	assert_int_equal(load(&c, "", &err), MSV_OK);
	snprintf(want, sizeof(want), "%s/audit.jsonl", dir);
	assert_string_equal(c.audit_path, want);
	snprintf(want, sizeof(want), "%s/audit.jsonl.keys", dir);
	assert_string_equal(c.audit_pseudonym_keys, want);
	assert_null(c.audit_key_file);
	assert_true(c.audit_rotate_size == 100ull << 20);
	assert_int_equal(c.audit_rotate_daily, 1);
	assert_true(c.audit_retention_ms == 180LL * 86400000);
	assert_true(c.audit_fsync_ms == 1000);
	assert_string_equal(c.audit_kafka_topic, "missive-audit");
	assert_null(c.audit_kafka_brokers);
	assert_null(c.audit_syslog);
	assert_int_equal(c.naudit_masks, 0);
	app_config_free(&c);
}

static void test_values(void **state)
{
	(void)state;
	app_config c;
	msv_error err;
	assert_int_equal(load(&c, "[audit]\npath = /var/log/missive/trail.jsonl\n"
	                          "key-file = /etc/missive/audit.key\n"
	                          "mask = order ORD-[0-9]{8} 4 2\n"
	                          "mask = ticket T#[0-9]+ 2 0\n"
	                          "rotate-size = 1G\nrotate-daily = no\nretention = 30d\n"
	                          "fsync-interval = 0\n"
	                          "kafka-brokers = 127.0.0.1:9092\nkafka-topic = siem\n"
	                          "kafka.security.protocol = SASL_SSL\n"
	                          "kafka.sasl.mechanism = SCRAM-SHA-512\n"
	                          "syslog = tls://siem.example.com:6514\n"
	                          "syslog-ca-file = /etc/ssl/siem.pem\n",
	                      &err),
	                 MSV_OK);
	assert_string_equal(c.audit_path, "/var/log/missive/trail.jsonl");
	assert_string_equal(c.audit_pseudonym_keys, "/var/log/missive/trail.jsonl.keys");
	assert_string_equal(c.audit_key_file, "/etc/missive/audit.key");
	assert_int_equal(c.naudit_masks, 2);
	assert_string_equal(c.audit_masks[1], "ticket T#[0-9]+ 2 0");
	assert_true(c.audit_rotate_size == 1ull << 30);
	assert_int_equal(c.audit_rotate_daily, 0);
	assert_true(c.audit_retention_ms == 30LL * 86400000);
	assert_true(c.audit_fsync_ms == 0);
	assert_string_equal(c.audit_kafka_topic, "siem");
	assert_int_equal(c.naudit_kafka_props, 2);
	assert_string_equal(c.audit_kafka_props[0], "security.protocol=SASL_SSL");
	assert_string_equal(c.audit_syslog, "tls://siem.example.com:6514");
	app_config_free(&c);

	assert_int_equal(load(&c, "[audit]\npath = off\n", &err), MSV_OK);
	assert_null(c.audit_path);
	assert_null(c.audit_pseudonym_keys);
	app_config_free(&c);
}

static void test_refused(void **state)
{
	(void)state;
	static const struct {
		const char *text, *want;
	} cases[] = {
		{"[audit]\nrotate-size = big\n", ":7: [audit] rotate-size: expected a size"},
		{"[audit]\nrotate-size = 5T\n", "[audit] rotate-size"},
		{"[audit]\nretention = forever\n", "[audit] retention: expected a duration"},
		{"[audit]\nrotate-daily = sometimes\n", "[audit] rotate-daily: expected yes or no"},
		{"[audit]\nsyslog = udp://127.0.0.1:514\n", "[audit] syslog: expected tcp://"},
		{"[audit]\nsyslog = tcp://127.0.0.1:0\n", "[audit] syslog"},
		{"[audit]\nsyslog = tcp://127.0.0.1\n", "[audit] syslog"},
		{"[audit]\nmask = bad ([0-9] 1 1\n", "[audit] mask"},
		{"[audit]\nmask = nonumbers [0-9]+\n", "[audit] mask"},
		{"[audit]\nkafka. = x\n", "[audit] kafka.: expected kafka.PROPERTY"},
		{"[audit]\npath =\n", "[audit] path: expected a path"},
		{"[audit]\nkafka-topic =\n", "[audit] kafka-topic: expected a topic name"},
		{"[audit]\npath = a\npath = b\n", "[audit] path: given twice"},
		{"[audit]\ncolour = blue\n", "[audit] colour: unknown key"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		app_config c;
		msv_error err;
		assert_int_equal(load(&c, cases[i].text, &err), MSV_E_CONFIG);
		if (!strstr(err.message, cases[i].want) || !strstr(err.message, cfgpath))
			fail_msg("case %zu: '%s' lacks '%s'", i, err.message, cases[i].want);
		app_config_free(&c);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_values, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
