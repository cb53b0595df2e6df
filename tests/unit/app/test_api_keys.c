/* API keys (src/app/api_keys.h): the secret's form, its hash, finding a
 * key by a presented secret, names, and sender-domain lists. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "api_keys.h"

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c - 'a' + 10;
}

static void unhex(const char *hex, unsigned char out[32])
{
	for (size_t i = 0; i < 32; i++)
		out[i] = (unsigned char)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
}

static void secret_form(void **state)
{
	(void)state;
	char a[APP_KEY_SECRET_LEN + 1], b[APP_KEY_SECRET_LEN + 1];
	unsigned char ha[32], hb[32], check[32];
	msv_error err;
	assert_int_equal(app_key_new(a, ha, &err), MSV_OK);
	assert_int_equal(app_key_new(b, hb, &err), MSV_OK);
	assert_int_equal(strlen(a), 68);
	assert_memory_equal(a, "msk_", 4);
	for (size_t i = 4; i < 68; i++)
		assert_non_null(strchr("0123456789abcdef", a[i]));
	assert_string_not_equal(a, b); /* 256 random bits each */
	/* The hash returned is the SHA-256 of the whole secret, prefix included. */
	assert_int_equal(app_key_hash(a, strlen(a), check, &err), MSV_OK);
	assert_memory_equal(ha, check, 32);
	assert_memory_not_equal(ha, hb, 32);
}

static void hash_is_sha256(void **state)
{
	(void)state;
	unsigned char h[32], want[32];
	msv_error err;
	/* FIPS 180-2, appendix B.1. */
	unhex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", want);
	assert_int_equal(app_key_hash("abc", 3, h, &err), MSV_OK);
	assert_memory_equal(h, want, 32);
	unhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", want);
	assert_int_equal(app_key_hash("", 0, h, &err), MSV_OK);
	assert_memory_equal(h, want, 32);
}

static void lookup(void **state)
{
	(void)state;
	msv_error err;
	const char *secrets[] = {"msk_one", "msk_two", "msk_three"};
	msv_queue_key keys[4];
	memset(keys, 0, sizeof(keys));
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(app_key_hash(secrets[i], strlen(secrets[i]), keys[i].hash, &err),
		                 MSV_OK);
	/* A key whose hash differs from msk_four's in the last byte only. */
	unsigned char four[32];
	assert_int_equal(app_key_hash("msk_four", 8, four, &err), MSV_OK);
	memcpy(keys[3].hash, four, 32);
	keys[3].hash[31] ^= 1;

	long idx = 99;
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(app_key_lookup(keys, 4, secrets[i], strlen(secrets[i]), &idx, &err),
		                 MSV_OK);
		assert_int_equal(idx, (long)i);
	}
	assert_int_equal(app_key_lookup(keys, 4, "msk_four", 8, &idx, &err), MSV_OK);
	assert_int_equal(idx, -1);
	assert_int_equal(app_key_find(keys, 4, four), -1);
	/* Wrong secrets: another value, a prefix, one more byte, nothing. */
	assert_int_equal(app_key_lookup(keys, 4, "msk_twO", 7, &idx, &err), MSV_OK);
	assert_int_equal(idx, -1);
	assert_int_equal(app_key_lookup(keys, 4, "msk_tw", 6, &idx, &err), MSV_OK);
	assert_int_equal(idx, -1);
	assert_int_equal(app_key_lookup(keys, 4, "msk_two ", 8, &idx, &err), MSV_OK);
	assert_int_equal(idx, -1);
	assert_int_equal(app_key_lookup(keys, 4, "", 0, &idx, &err), MSV_OK);
	assert_int_equal(idx, -1);
	/* Only the given length counts (a header value is not NUL-terminated). */
	assert_int_equal(app_key_lookup(keys, 4, "msk_twoXYZ", 7, &idx, &err), MSV_OK);
	assert_int_equal(idx, 1);
	/* No keys at all. */
	assert_int_equal(app_key_lookup(NULL, 0, "msk_one", 7, &idx, &err), MSV_OK);
	assert_int_equal(idx, -1);
	/* The same hash twice: the first. */
	memcpy(keys[3].hash, keys[0].hash, 32);
	assert_int_equal(app_key_find(keys, 4, keys[0].hash), 0);
}

static void names(void **state)
{
	(void)state;
	assert_true(app_key_name_valid("web"));
	assert_true(app_key_name_valid("A.b_c-9"));
	char n[66];
	memset(n, 'x', 64);
	n[64] = '\0';
	assert_true(app_key_name_valid(n));
	n[64] = 'x';
	n[65] = '\0';
	assert_false(app_key_name_valid(n));
	assert_false(app_key_name_valid(""));
	assert_false(app_key_name_valid(NULL));
	assert_false(app_key_name_valid("a b"));
	assert_false(app_key_name_valid("a:b"));
	assert_false(app_key_name_valid("a/b"));
	assert_false(app_key_name_valid("caf\xc3\xa9"));
}

static void norm_ok(const char *in, const char *want)
{
	char *out = NULL;
	msv_error err;
	assert_int_equal(app_key_domains_normalize(in, &out, &err), MSV_OK);
	assert_string_equal(out, want);
	msv_free(out);
}

static void norm_bad(const char *in, const char *named)
{
	char *out = (char *)"x";
	msv_error err;
	assert_int_equal(app_key_domains_normalize(in, &out, &err), MSV_E_INVALID);
	assert_null(out);
	char quoted[300];
	/* Named in quotes; a long one may be cut short. */
	if (strlen(named) > 100)
		snprintf(quoted, sizeof(quoted), "\"%.100s", named);
	else
		snprintf(quoted, sizeof(quoted), "\"%s\"", named);
	if (!strstr(err.message, quoted))
		fail_msg("'%s': message '%s' does not name %s", in, err.message, quoted);
}

static void domains(void **state)
{
	(void)state;
	norm_ok("Example.org, b.net", "example.org,b.net");
	norm_ok("EXAMPLE.ORG", "example.org");
	norm_ok("", "");
	norm_ok("  ", "");
	norm_ok(NULL, "");
	norm_ok(" a.org ,\tb-c.d.net\t", "a.org,b-c.d.net");
	norm_ok("localhost", "localhost");
	norm_ok("xn--bcher-kva.example", "xn--bcher-kva.example");

	norm_bad("a..b", "a..b");
	norm_bad("good.org, -bad.org", "-bad.org");
	norm_bad("bad-.org", "bad-.org");
	norm_bad("a.org,", "");
	norm_bad(",a.org", "");
	norm_bad("a.org,,b.org", "");
	norm_bad("a b.org", "a b.org");
	norm_bad("b\xc3\xbc" "cher.example", "b\xc3\xbc" "cher.example");
	norm_bad("a.org.", "a.org.");
	norm_bad("user@a.org", "user@a.org");
	char label[80];
	memset(label, 'x', 64);
	snprintf(label + 64, sizeof(label) - 64, ".org");
	norm_bad(label, label);
	memmove(label + 63, label + 64, strlen(label + 64) + 1); /* 63 octets: fine */
	norm_ok(label, label);
	char longname[300];
	size_t i = 0;
	while (i < 254) {
		longname[i++] = 'a';
		longname[i++] = '.';
	}
	longname[i - 1] = 'a'; /* 254 octets */
	longname[i] = '\0';
	norm_bad(longname, longname);
	longname[251] = '\0'; /* 251 octets, ending in a label */
	norm_ok(longname, longname);
}

static void domain_allowed(void **state)
{
	(void)state;
	assert_true(app_key_domain_allowed("", "any.test"));
	assert_true(app_key_domain_allowed(NULL, "any.test"));
	assert_true(app_key_domain_allowed("", ""));
	assert_true(app_key_domain_allowed("example.org,b.net", "example.org"));
	assert_true(app_key_domain_allowed("example.org,b.net", "B.Net"));
	assert_false(app_key_domain_allowed("example.org,b.net", "other.test"));
	assert_false(app_key_domain_allowed("example.org", "sub.example.org"));
	assert_false(app_key_domain_allowed("sub.example.org", "example.org"));
	assert_false(app_key_domain_allowed("example.org", "example.or"));
	assert_false(app_key_domain_allowed("example.org", "example.org.evil"));
	assert_false(app_key_domain_allowed("example.org", ""));
	assert_false(app_key_domain_allowed("example.org", NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(secret_form),  cmocka_unit_test(hash_is_sha256),
		cmocka_unit_test(lookup),       cmocka_unit_test(names),
		cmocka_unit_test(domains),      cmocka_unit_test(domain_allowed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
