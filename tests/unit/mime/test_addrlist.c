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

/* Issue 12, defect 4: white space between words outside <> made one
 * address of a display name and an address ("John Smith john@example.org"
 * became JohnSmithjohn@example.org).  Two words in a row are never an
 * addr-spec; CFWS around '.' and '@' (obs-local-part, obs-domain) is. */
static void test_words_are_not_an_address(void **state)
{
	(void)state;
	const char *const bad[] = {
	    "John Smith john@example.org",
	    "john@example.org John",
	    "john smith@example.org",
	    "john@example org",
	    "a@b.test, John Smith john@example.org",
	    "\"John\" john@example.org",
	    "john\"x\"@example.org",
	    "grp: John Smith john@example.org;",
	    "Name <john doe@example.org>",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		refuse(bad[i], "white space");
	expect("john . smith @ example . org", (const char *[]){"john.smith@example.org", NULL});
	expect("john(comment)@example.org", (const char *[]){"john@example.org", NULL});
	expect("John Smith <john@example.org>", (const char *[]){"john@example.org", NULL});
	expect("\"John Smith\" <john@example.org>", (const char *[]){"john@example.org", NULL});
	expect("john@example.org (John)", (const char *[]){"john@example.org", NULL});
	expect("John Q. Public <jqp@example.org>", (const char *[]){"jqp@example.org", NULL});
	expect("a@b.test; c@d.test", (const char *[]){"a@b.test", "c@d.test", NULL});
	expect("team: a@b.test", (const char *[]){"a@b.test", NULL});
	expect("<>", (const char *[]){NULL});
	expect("x@[192.0.2.1]", (const char *[]){"x@[192.0.2.1]", NULL});
}

/* Quoted strings are one word whatever they hold (defect 5): an '@', a
 * ',' or a '<' in a display name; quoted local parts. */
static void test_quoted(void **state)
{
	(void)state;
	expect("\"bob@example.com via Lists\" <lists@example.com>",
	       (const char *[]){"lists@example.com", NULL});
	expect("\"a, <b@c.test>\" <d@e.test>, f@g.test",
	       (const char *[]){"d@e.test", "f@g.test", NULL});
	expect("\"john\"@example.org", (const char *[]){"john@example.org", NULL});
	expect("\"john.smith\"@example.org", (const char *[]){"john.smith@example.org", NULL});
	expect("\"john,smith\"@example.org", (const char *[]){"\"john,smith\"@example.org", NULL});
	/* Valid, but the SMTP client cannot send it: refused at once. */
	refuse("\"john smith\"@example.org", "space");
	expect("Name <\"a@b\"@example.org>", (const char *[]){"\"a@b\"@example.org", NULL});
	expect("\"a\\\"b\"@example.org", (const char *[]){"\"a\\\"b\"@example.org", NULL});
	expect("\"a,b\".c@example.org", (const char *[]){"\"a,b.c\"@example.org", NULL});
	refuse("a@\"example\".org", "domain");
	refuse("a@b@example.org", "domain");
	refuse("x@[1.2.3.4].org", "domain");
	refuse("Name <a@b.test> c@d.test", "after '>'");
	refuse("g1: g2: a@b.test;;", "group inside a group");
	refuse("a)@b.test", "')'");
	refuse("}@[>zl]", "literal"); /* found by fuzz_addrlist: '>' in a literal */
}

/* Linear: 80,000 addresses in one field parse in well under a second. */
static void test_many(void **state)
{
	(void)state;
	msv_buf in;
	msv_buf_init(&in, 1 << 24);
	for (int i = 0; i < 80000; i++)
		assert_int_equal(msv_buf_addf(&in, "%sName %d <u%d@example.org>", i ? ",\r\n " : "", i, i), MSV_OK);
	msv_buf out;
	msv_buf_init(&out, 1 << 24);
	msv_error err;
	size_t n = 0;
	assert_int_equal(msv_mime_address_list(&out, &n, in.data, in.len, &err), MSV_OK);
	assert_int_equal(n, 80000);
	msv_buf_free(&out);
	msv_buf_init(&out, 1 << 10);
	assert_int_equal(msv_mime_address_list(&out, &n, in.data, in.len, &err), MSV_E_TOO_LARGE);
	assert_non_null(strstr(err.message, "too many addresses"));
	msv_buf_free(&out);
	msv_buf_free(&in);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_forms),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_words_are_not_an_address),
		cmocka_unit_test(test_quoted),
		cmocka_unit_test(test_many),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
