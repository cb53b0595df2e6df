/* [queue] url (issue 16): a PostgreSQL queue instead of the SQLite file.
 * The URI is kept as given, queue_path holds it too (messages, no default
 * submit.sock), and path with url is refused naming the file, line,
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
	return load_config_text(c, 0, "", text, "", err);
}

static void url_selects_postgresql(void **state)
{
	(void)state;
	app_config c;
	msv_error err;
	assert_int_equal(load(&c, "[queue]\nurl = postgresql://missive@db:5432/q\n", &err), MSV_OK);
	assert_string_equal(c.queue_url, "postgresql://missive@db:5432/q");
	assert_string_equal(c.queue_path, c.queue_url);
	assert_string_equal(c.socket_path, ""); /* no submit.sock beside a URI */
	app_config_free(&c);
	/* path alone: SQLite, as before. */
	assert_int_equal(load(&c, "[queue]\npath = /var/q/queue.db\n", &err), MSV_OK);
	assert_null(c.queue_url);
	assert_string_equal(c.socket_path, "/var/q/submit.sock");
	app_config_free(&c);
}

static void url_refusals(void **state)
{
	(void)state;
	static const struct {
		const char *text, *want;
	} cases[] = {
	    {"[queue]\npath = /q.db\nurl = postgresql://h/q\n", ":3: [queue] url: give path"},
	    {"[queue]\nurl = postgresql://h/q\npath = /q.db\n", ":3: [queue] path: give path"},
	    {"[queue]\nurl = mysql://h/q\n", ":2: [queue] url: expected a postgresql://"},
	    {"[queue]\nurl = /var/q.db\n", "[queue] url"},
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
	    cmocka_unit_test(url_selects_postgresql),
	    cmocka_unit_test(url_refusals),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
