/* msv_mime_address_list: the forms sendmail -t meets in To, Cc and Bcc. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "missive/mime.h"

/* Parses v and checks the addresses against the NULL-terminated want. */
static void expect(const char *v, const char *const *want)
{
	msv_buf out;
	msv_buf_init(&out, 1 << 20);
	msv_error err;
	size_t n = 99;
	assert_int_equal(msv_mime_address_list(&out, &n, v, strlen(v), &err), MSV_OK);
	size_t i = 0, off = 0;
	for (; want[i]; i++) {
		assert_true(off < out.len);
		assert_string_equal(out.data + off, want[i]);
		off += strlen(want[i]) + 1;
	}
	assert_int_equal(n, i);
	assert_int_equal(off, out.len);
	msv_buf_free(&out);
}

static void refuse(const char *v, const char *fragment)
{
	msv_buf out;
	msv_buf_init(&out, 1 << 20);
	msv_error err;
	size_t n;
	assert_int_equal(msv_mime_address_list(&out, &n, v, strlen(v), &err), MSV_E_BAD_ADDRESS);
	assert_non_null(strstr(err.message, fragment));
	msv_buf_free(&out);
}

static void test_forms(void **state)
{
	(void)state;
	expect("a@example.com", (const char *[]){"a@example.com", NULL});
	expect("John Smith <john@example.com>, \"Doe, Jane\" <jane@example.org>",
	       (const char *[]){"john@example.com", "jane@example.org", NULL});
	expect("x@y.test (X, Y), z@w.test", (const char *[]){"x@y.test", "z@w.test", NULL});
	expect("friends: a@x.test, b@y.test;, c@z.test",
	       (const char *[]){"a@x.test", "b@y.test", "c@z.test", NULL});
	expect("undisclosed-recipients:;", (const char *[]){NULL});
	expect("  a@b.test,\r\n\t<@route.test:c@d.test> ,, ", (const char *[]){"a@b.test", "c@d.test", NULL});
	expect("=?UTF-8?B?w6k=?= <e@example.com>", (const char *[]){"e@example.com", NULL});
	expect("\xc3\xa9l\xc3\xa8ve <u@b\xc3\xbcro.example>", (const char *[]){"u@b\xc3\xbcro.example", NULL});
	expect("", (const char *[]){NULL});
}

static void test_malformed(void **state)
{
	(void)state;
	refuse("\"unterminated <a@b.c>", "unterminated quoted string");
	refuse("a@b.c (open", "unterminated comment");
	refuse("<a@b.c", "unterminated angle address");
	refuse("a@b.c>", "'>' without '<'");
	refuse("root", "local@domain");
	refuse("a@b.c <d@e.f>", "'<'");
	refuse("Name <a@@b>", "address");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_forms),
		cmocka_unit_test(test_malformed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
