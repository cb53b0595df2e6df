/* msv_smtp_parse_ehlo with EHLO replies as real servers send them, every
 * capability flag, AUTH lists, SIZE, and what must be ignored. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "missive/smtp.h"

#define MECH(m) (1u << (m))

/* Turns a raw 250 reply ("250-a\r\n250 b\r\n") into the parser's input:
 * the texts after "250-"/"250 " joined by CRLF. */
static size_t ehlo_text(char *dst, size_t dstsz, const char *reply)
{
	size_t o = 0;
	const char *p = reply;
	while (*p) {
		const char *eol = strstr(p, "\r\n");
		assert_non_null(eol);
		const char *t = p + 3;
		if (t < eol && (*t == '-' || *t == ' '))
			t++;
		if (o) {
			assert_true(o + 2 < dstsz);
			memcpy(dst + o, "\r\n", 2);
			o += 2;
		}
		size_t n = (size_t)(eol - t);
		assert_true(o + n < dstsz);
		memcpy(dst + o, t, n);
		o += n;
		p = eol + 2;
	}
	dst[o] = '\0';
	return o;
}

static msv_smtp_caps parse_reply(const char *reply)
{
	static char text[65536];
	size_t n = ehlo_text(text, sizeof(text), reply);
	msv_smtp_caps caps;
	memset(&caps, 0, sizeof(caps));
	assert_int_equal(msv_smtp_parse_ehlo(&caps, text, n), MSV_OK);
	return caps;
}

static msv_smtp_caps parse_text(const char *text)
{
	msv_smtp_caps caps;
	memset(&caps, 0, sizeof(caps));
	assert_int_equal(msv_smtp_parse_ehlo(&caps, text, strlen(text)), MSV_OK);
	return caps;
}

static void postfix(void **state)
{
	(void)state;
	/* Postfix 3.7 on port 25, before STARTTLS */
	msv_smtp_caps c = parse_reply("250-mail.example.com\r\n"
	                              "250-PIPELINING\r\n"
	                              "250-SIZE 10240000\r\n"
	                              "250-VRFY\r\n"
	                              "250-ETRN\r\n"
	                              "250-STARTTLS\r\n"
	                              "250-ENHANCEDSTATUSCODES\r\n"
	                              "250-8BITMIME\r\n"
	                              "250-DSN\r\n"
	                              "250-SMTPUTF8\r\n"
	                              "250 CHUNKING\r\n");
	assert_int_equal(c.flags, MSV_CAP_PIPELINING | MSV_CAP_SIZE | MSV_CAP_STARTTLS |
	                              MSV_CAP_ENHANCEDSTATUSCODES | MSV_CAP_8BITMIME | MSV_CAP_DSN |
	                              MSV_CAP_SMTPUTF8 | MSV_CAP_CHUNKING);
	assert_int_equal(c.size_max, 10240000);
	assert_int_equal(c.auth_mechs, 0);

	/* submission port after TLS, with Cyrus/Dovecot SASL and the
	 * broken_sasl_auth_clients line */
	c = parse_reply("250-mail.example.com\r\n"
	                "250-PIPELINING\r\n"
	                "250-SIZE 10240000\r\n"
	                "250-ETRN\r\n"
	                "250-AUTH PLAIN LOGIN\r\n"
	                "250-AUTH=PLAIN LOGIN\r\n"
	                "250-ENHANCEDSTATUSCODES\r\n"
	                "250-8BITMIME\r\n"
	                "250-DSN\r\n"
	                "250 CHUNKING\r\n");
	assert_true(c.flags & MSV_CAP_AUTH);
	assert_false(c.flags & MSV_CAP_STARTTLS);
	assert_int_equal(c.auth_mechs, MECH(MSV_AUTH_PLAIN) | MECH(MSV_AUTH_LOGIN));
}

static void exim(void **state)
{
	(void)state;
	msv_smtp_caps c = parse_reply("250-mx.example.org Hello client.example.com [192.0.2.1]\r\n"
	                              "250-SIZE 52428800\r\n"
	                              "250-LIMITS MAILMAX=1000 RCPTMAX=50000\r\n"
	                              "250-8BITMIME\r\n"
	                              "250-PIPELINING\r\n"
	                              "250-PIPECONNECT\r\n"
	                              "250-AUTH PLAIN LOGIN CRAM-MD5\r\n"
	                              "250-CHUNKING\r\n"
	                              "250-STARTTLS\r\n"
	                              "250-PRDR\r\n"
	                              "250 HELP\r\n");
	assert_int_equal(c.flags, MSV_CAP_SIZE | MSV_CAP_8BITMIME | MSV_CAP_PIPELINING |
	                              MSV_CAP_AUTH | MSV_CAP_CHUNKING | MSV_CAP_STARTTLS);
	assert_int_equal(c.size_max, 52428800);
	assert_int_equal(c.auth_mechs,
	                 MECH(MSV_AUTH_PLAIN) | MECH(MSV_AUTH_LOGIN) | MECH(MSV_AUTH_CRAM_MD5));
}

static void gmail(void **state)
{
	(void)state;
	/* smtp.gmail.com:587 before and after STARTTLS */
	msv_smtp_caps c = parse_reply("250-smtp.gmail.com at your service, [203.0.113.5]\r\n"
	                              "250-SIZE 35882577\r\n"
	                              "250-8BITMIME\r\n"
	                              "250-STARTTLS\r\n"
	                              "250-ENHANCEDSTATUSCODES\r\n"
	                              "250-PIPELINING\r\n"
	                              "250-CHUNKING\r\n"
	                              "250 SMTPUTF8\r\n");
	assert_int_equal(c.flags, MSV_CAP_SIZE | MSV_CAP_8BITMIME | MSV_CAP_STARTTLS |
	                              MSV_CAP_ENHANCEDSTATUSCODES | MSV_CAP_PIPELINING |
	                              MSV_CAP_CHUNKING | MSV_CAP_SMTPUTF8);
	assert_int_equal(c.size_max, 35882577);
	c = parse_reply("250-smtp.gmail.com at your service, [203.0.113.5]\r\n"
	                "250-SIZE 35882577\r\n"
	                "250-8BITMIME\r\n"
	                "250-AUTH LOGIN PLAIN XOAUTH2 PLAIN-CLIENTTOKEN OAUTHBEARER XOAUTH\r\n"
	                "250-ENHANCEDSTATUSCODES\r\n"
	                "250-PIPELINING\r\n"
	                "250-CHUNKING\r\n"
	                "250 SMTPUTF8\r\n");
	assert_true(c.flags & MSV_CAP_AUTH);
	/* PLAIN-CLIENTTOKEN and XOAUTH are not PLAIN and XOAUTH2 */
	assert_int_equal(c.auth_mechs, MECH(MSV_AUTH_LOGIN) | MECH(MSV_AUTH_PLAIN) |
	                                    MECH(MSV_AUTH_XOAUTH2) | MECH(MSV_AUTH_OAUTHBEARER));
	/* Gmail's MX on port 25 */
	c = parse_reply("250-mx.google.com at your service, [203.0.113.5]\r\n"
	                "250-SIZE 157286400\r\n"
	                "250-8BITMIME\r\n"
	                "250-STARTTLS\r\n"
	                "250-ENHANCEDSTATUSCODES\r\n"
	                "250-PIPELINING\r\n"
	                "250-CHUNKING\r\n"
	                "250 SMTPUTF8\r\n");
	assert_int_equal(c.size_max, 157286400);
}

static void microsoft(void **state)
{
	(void)state;
	/* Exchange Online (smtp.office365.com:587), before and after TLS */
	msv_smtp_caps c = parse_reply("250-PH0PR07CA0012.outlook.office365.com Hello [203.0.113.5]\r\n"
	                              "250-SIZE 157286400\r\n"
	                              "250-PIPELINING\r\n"
	                              "250-DSN\r\n"
	                              "250-ENHANCEDSTATUSCODES\r\n"
	                              "250-STARTTLS\r\n"
	                              "250-8BITMIME\r\n"
	                              "250-BINARYMIME\r\n"
	                              "250-CHUNKING\r\n"
	                              "250 SMTPUTF8\r\n");
	assert_int_equal(c.flags, MSV_CAP_SIZE | MSV_CAP_PIPELINING | MSV_CAP_DSN |
	                              MSV_CAP_ENHANCEDSTATUSCODES | MSV_CAP_STARTTLS |
	                              MSV_CAP_8BITMIME | MSV_CAP_BINARYMIME | MSV_CAP_CHUNKING |
	                              MSV_CAP_SMTPUTF8);
	assert_int_equal(c.size_max, 157286400);
	c = parse_reply("250-PH0PR07CA0012.outlook.office365.com Hello [203.0.113.5]\r\n"
	                "250-SIZE 157286400\r\n"
	                "250-PIPELINING\r\n"
	                "250-DSN\r\n"
	                "250-ENHANCEDSTATUSCODES\r\n"
	                "250-AUTH LOGIN XOAUTH2\r\n"
	                "250-8BITMIME\r\n"
	                "250-BINARYMIME\r\n"
	                "250-CHUNKING\r\n"
	                "250 SMTPUTF8\r\n");
	assert_int_equal(c.auth_mechs, MECH(MSV_AUTH_LOGIN) | MECH(MSV_AUTH_XOAUTH2));
	/* on-premises Exchange with NTLM and GSSAPI, and its X- keywords */
	c = parse_reply("250-exch.corp.example Hello [10.0.0.5]\r\n"
	                "250-SIZE 37748736\r\n"
	                "250-PIPELINING\r\n"
	                "250-DSN\r\n"
	                "250-ENHANCEDSTATUSCODES\r\n"
	                "250-STARTTLS\r\n"
	                "250-X-ANONYMOUSTLS\r\n"
	                "250-AUTH NTLM\r\n"
	                "250-X-EXPS GSSAPI NTLM\r\n"
	                "250-8BITMIME\r\n"
	                "250-BINARYMIME\r\n"
	                "250-CHUNKING\r\n"
	                "250-XRDST\r\n"
	                "250 SMTPUTF8\r\n");
	/* AUTH with no mechanism we know: the flag may be set, no mechanism is */
	assert_int_equal(c.auth_mechs, 0);
	assert_int_equal(c.size_max, 37748736);
}

static void aiosmtpd(void **state)
{
	(void)state;
	msv_smtp_caps c = parse_reply("250-testhost.local\r\n"
	                              "250-SIZE 33554432\r\n"
	                              "250-8BITMIME\r\n"
	                              "250-SMTPUTF8\r\n"
	                              "250 HELP\r\n");
	assert_int_equal(c.flags, MSV_CAP_SIZE | MSV_CAP_8BITMIME | MSV_CAP_SMTPUTF8);
	assert_int_equal(c.size_max, 33554432);
	/* with an authenticator and require_starttls off */
	c = parse_reply("250-testhost.local\r\n"
	                "250-SIZE 33554432\r\n"
	                "250-8BITMIME\r\n"
	                "250-SMTPUTF8\r\n"
	                "250-AUTH LOGIN PLAIN\r\n"
	                "250 HELP\r\n");
	assert_int_equal(c.auth_mechs, MECH(MSV_AUTH_LOGIN) | MECH(MSV_AUTH_PLAIN));
	/* a server with only its name */
	c = parse_reply("250 testhost.local\r\n");
	assert_int_equal(c.flags, 0);
	assert_int_equal(c.auth_mechs, 0);
	assert_int_equal(c.size_max, 0);
}

static void every_flag(void **state)
{
	(void)state;
	static const struct {
		const char *kw;
		unsigned flag;
	} kws[] = {
		{"PIPELINING", MSV_CAP_PIPELINING},
		{"CHUNKING", MSV_CAP_CHUNKING},
		{"SIZE", MSV_CAP_SIZE},
		{"SIZE 1", MSV_CAP_SIZE},
		{"8BITMIME", MSV_CAP_8BITMIME},
		{"SMTPUTF8", MSV_CAP_SMTPUTF8},
		{"DSN", MSV_CAP_DSN},
		{"ENHANCEDSTATUSCODES", MSV_CAP_ENHANCEDSTATUSCODES},
		{"STARTTLS", MSV_CAP_STARTTLS},
		{"AUTH PLAIN", MSV_CAP_AUTH},
		{"BINARYMIME", MSV_CAP_BINARYMIME},
		/* keywords are case-insensitive (RFC 5321 2.4) */
		{"pipelining", MSV_CAP_PIPELINING},
		{"Chunking", MSV_CAP_CHUNKING},
		{"size 100", MSV_CAP_SIZE},
		{"8bitmime", MSV_CAP_8BITMIME},
		{"SmtpUtf8", MSV_CAP_SMTPUTF8},
		{"dsn", MSV_CAP_DSN},
		{"EnhancedStatusCodes", MSV_CAP_ENHANCEDSTATUSCODES},
		{"starttls", MSV_CAP_STARTTLS},
		{"auth login", MSV_CAP_AUTH},
		{"binarymime", MSV_CAP_BINARYMIME},
		/* trailing spaces */
		{"PIPELINING ", MSV_CAP_PIPELINING},
		{"STARTTLS  ", MSV_CAP_STARTTLS},
	};
	for (size_t i = 0; i < sizeof(kws) / sizeof(kws[0]); i++) {
		char text[128];
		snprintf(text, sizeof(text), "mx.example.net\r\n%s", kws[i].kw);
		msv_smtp_caps c = parse_text(text);
		if (c.flags != kws[i].flag)
			fail_msg("\"%s\": flags 0x%x, expected 0x%x", kws[i].kw, c.flags, kws[i].flag);
		/* same in the middle of a list */
		snprintf(text, sizeof(text), "mx.example.net\r\nX-FOO\r\n%s\r\nHELP", kws[i].kw);
		c = parse_text(text);
		assert_int_equal(c.flags, kws[i].flag);
	}
	/* all at once */
	msv_smtp_caps c = parse_text("mx\r\nPIPELINING\r\nCHUNKING\r\nSIZE 5\r\n8BITMIME\r\nSMTPUTF8\r\n"
	                             "DSN\r\nENHANCEDSTATUSCODES\r\nSTARTTLS\r\nAUTH PLAIN\r\nBINARYMIME");
	assert_int_equal(c.flags, MSV_CAP_PIPELINING | MSV_CAP_CHUNKING | MSV_CAP_SIZE |
	                              MSV_CAP_8BITMIME | MSV_CAP_SMTPUTF8 | MSV_CAP_DSN |
	                              MSV_CAP_ENHANCEDSTATUSCODES | MSV_CAP_STARTTLS |
	                              MSV_CAP_AUTH | MSV_CAP_BINARYMIME);
	assert_int_equal(c.size_max, 5);
}

static void auth_lists(void **state)
{
	(void)state;
	static const struct {
		const char *line;
		unsigned mechs;
	} cases[] = {
		{"AUTH PLAIN", MECH(MSV_AUTH_PLAIN)},
		{"AUTH LOGIN", MECH(MSV_AUTH_LOGIN)},
		{"AUTH CRAM-MD5", MECH(MSV_AUTH_CRAM_MD5)},
		{"AUTH XOAUTH2", MECH(MSV_AUTH_XOAUTH2)},
		{"AUTH PLAIN LOGIN CRAM-MD5 XOAUTH2",
		 MECH(MSV_AUTH_PLAIN) | MECH(MSV_AUTH_LOGIN) | MECH(MSV_AUTH_CRAM_MD5) |
		     MECH(MSV_AUTH_XOAUTH2)},
		/* mixed case, keyword and mechanisms */
		{"auth plain Login cram-md5 XOauth2",
		 MECH(MSV_AUTH_PLAIN) | MECH(MSV_AUTH_LOGIN) | MECH(MSV_AUTH_CRAM_MD5) |
		     MECH(MSV_AUTH_XOAUTH2)},
		{"Auth Plain", MECH(MSV_AUTH_PLAIN)},
		/* the legacy "AUTH=" form (old Outlook clients need it) */
		{"AUTH=LOGIN PLAIN", MECH(MSV_AUTH_LOGIN) | MECH(MSV_AUTH_PLAIN)},
		{"AUTH=LOGIN", MECH(MSV_AUTH_LOGIN)},
		{"auth=login cram-md5", MECH(MSV_AUTH_LOGIN) | MECH(MSV_AUTH_CRAM_MD5)},
		/* unknown mechanisms ignored, near-misses not matched */
		{"AUTH GSSAPI NTLM DIGEST-MD5 SCRAM-SHA-256", 0},
		{"AUTH GSSAPI OAUTHBEARER", MECH(MSV_AUTH_OAUTHBEARER)},
		{"AUTH PLAINX LOGIN2 CRAM-MD5-PLUS XOAUTH XOAUTH22 PLAIN-CLIENTTOKEN", 0},
		{"AUTH GSSAPI PLAIN NTLM", MECH(MSV_AUTH_PLAIN)},
		/* several spaces between mechanisms */
		{"AUTH  PLAIN   LOGIN", MECH(MSV_AUTH_PLAIN) | MECH(MSV_AUTH_LOGIN)},
		/* a mechanism repeated */
		{"AUTH PLAIN PLAIN", MECH(MSV_AUTH_PLAIN)},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[256];
		snprintf(text, sizeof(text), "mx.example.net\r\n%s", cases[i].line);
		msv_smtp_caps c = parse_text(text);
		if (c.auth_mechs != cases[i].mechs)
			fail_msg("\"%s\": mechs 0x%x, expected 0x%x", cases[i].line, c.auth_mechs,
			         cases[i].mechs);
		if (cases[i].mechs)
			assert_true(c.flags & MSV_CAP_AUTH);
	}
	/* two AUTH lines add up */
	msv_smtp_caps c = parse_text("mx\r\nAUTH LOGIN\r\nAUTH=PLAIN\r\nAUTH CRAM-MD5");
	assert_int_equal(c.auth_mechs,
	                 MECH(MSV_AUTH_LOGIN) | MECH(MSV_AUTH_PLAIN) | MECH(MSV_AUTH_CRAM_MD5));
	/* the AUTO bit is never set by a server */
	assert_int_equal(c.auth_mechs & MECH(MSV_AUTH_AUTO), 0);
}

static void size_values(void **state)
{
	(void)state;
	static const struct {
		const char *line;
		uint64_t max;
	} cases[] = {
		{"SIZE", 0},
		{"SIZE 0", 0}, /* RFC 1870: 0 means no fixed limit */
		{"SIZE 1", 1},
		{"SIZE 10240000", 10240000},
		{"SIZE 157286400", 157286400},
		{"size 52428800", 52428800},
		{"SIZE 4294967296", UINT64_C(4294967296)}, /* above 32 bits */
		{"SIZE 18446744073709551615", UINT64_C(18446744073709551615)},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[128];
		snprintf(text, sizeof(text), "mx.example.net\r\n%s\r\nPIPELINING", cases[i].line);
		msv_smtp_caps c = parse_text(text);
		assert_true(c.flags & MSV_CAP_SIZE);
		assert_true(c.flags & MSV_CAP_PIPELINING);
		if (c.size_max != cases[i].max)
			fail_msg("\"%s\": size_max %llu, expected %llu", cases[i].line,
			         (unsigned long long)c.size_max, (unsigned long long)cases[i].max);
	}
	/* odd arguments: never a crash, never a made-up limit below the
	 * digits given; SIZE stays a capability */
	static const char *const odd[] = {
		"SIZE abc", "SIZE -1", "SIZE 12abc", "SIZE 99999999999999999999999999", "SIZE  ",
		"SIZE 1 2",
	};
	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
		char text[128];
		snprintf(text, sizeof(text), "mx.example.net\r\n%s", odd[i]);
		msv_smtp_caps c;
		memset(&c, 0, sizeof(c));
		msv_result r = msv_smtp_parse_ehlo(&c, text, strlen(text));
		assert_true(r == MSV_OK || r == MSV_E_PROTOCOL);
		if (r == MSV_OK && !strcmp(odd[i], "SIZE 99999999999999999999999999"))
			/* overflow must not wrap to a small number */
			assert_true(c.size_max == 0 || c.size_max == UINT64_MAX);
	}
}

static void ignored_and_first_line(void **state)
{
	(void)state;
	/* the first line is the server's name, even when it looks like a keyword */
	msv_smtp_caps c = parse_text("PIPELINING\r\nSIZE 10");
	assert_int_equal(c.flags, MSV_CAP_SIZE);
	c = parse_text("STARTTLS");
	assert_int_equal(c.flags, 0);
	c = parse_text("mx.example.net STARTTLS PIPELINING AUTH PLAIN");
	assert_int_equal(c.flags, 0);
	assert_int_equal(c.auth_mechs, 0);
	/* unknown keywords and near-misses ignored */
	c = parse_text("mx\r\nVRFY\r\nETRN\r\nHELP\r\nXCLIENT NAME ADDR\r\nX-FOO bar\r\nDELIVERBY 3600\r\n"
	               "PIPELININGX\r\nXPIPELINING\r\nSTARTTLSX\r\nSIZEX 100\r\n8BITMIMES\r\n"
	               "DSNX\r\nCHUNKING2\r\nAUTHX PLAIN\r\nAUTH-PLAIN\r\nSMTPUTF8X\r\nBINARYMIMEX\r\n"
	               "ENHANCEDSTATUSCODE\r\nPIPELINE\r\nTLS\r\nREQUIRETLS\r\nMT-PRIORITY\r\nLIMITS X=1");
	assert_int_equal(c.flags, 0);
	assert_int_equal(c.auth_mechs, 0);
	assert_int_equal(c.size_max, 0);
	/* a keyword only counts at the start of a line */
	c = parse_text("mx\r\nX-NOTE STARTTLS is not offered\r\nHELP PIPELINING");
	assert_int_equal(c.flags, 0);
	/* empty input and a name-only reply */
	c = parse_text("");
	assert_int_equal(c.flags, 0);
	c = parse_text("mx.example.net");
	assert_int_equal(c.flags, 0);
	/* a trailing CRLF and empty lines are harmless */
	c = parse_text("mx\r\nPIPELINING\r\n");
	assert_int_equal(c.flags, MSV_CAP_PIPELINING);
	c = parse_text("mx\r\n\r\nSTARTTLS\r\n\r\n");
	assert_int_equal(c.flags, MSV_CAP_STARTTLS);
}

static void length_respected(void **state)
{
	(void)state;
	/* only len bytes are read: "PIPELINING" past len is not seen */
	const char *text = "mx\r\nSTARTTLS\r\nPIPELINING";
	msv_smtp_caps c;
	memset(&c, 0, sizeof(c));
	assert_int_equal(msv_smtp_parse_ehlo(&c, text, 12), MSV_OK);
	assert_int_equal(c.flags, MSV_CAP_STARTTLS);
	/* a keyword cut by len is not the keyword */
	memset(&c, 0, sizeof(c));
	assert_int_equal(msv_smtp_parse_ehlo(&c, text, 10), MSV_OK);
	assert_int_equal(c.flags, 0);
	/* an exact-size heap copy, so ASan sees any over-read */
	const char *full = "mx\r\nSIZE 123\r\nAUTH PLAIN";
	size_t n = strlen(full);
	char *copy = msv_malloc(n);
	assert_non_null(copy);
	memcpy(copy, full, n);
	memset(&c, 0, sizeof(c));
	assert_int_equal(msv_smtp_parse_ehlo(&c, copy, n), MSV_OK);
	assert_int_equal(c.size_max, 123);
	assert_int_equal(c.auth_mechs, MECH(MSV_AUTH_PLAIN));
	for (size_t k = 0; k <= n; k++) {
		memset(&c, 0, sizeof(c));
		msv_result r = msv_smtp_parse_ehlo(&c, copy + n - k, k); /* every suffix */
		assert_true(r == MSV_OK || r == MSV_E_PROTOCOL);
	}
	msv_free(copy);
	/* a NUL byte inside does not end the text early or crash */
	memset(&c, 0, sizeof(c));
	msv_result r = msv_smtp_parse_ehlo(&c, "mx\r\nX\0Y\r\nDSN", 12);
	assert_true(r == MSV_OK || r == MSV_E_PROTOCOL);
	if (r == MSV_OK)
		assert_true(c.flags & MSV_CAP_DSN);
}

static void overwrites_caps(void **state)
{
	(void)state;
	/* every field comes from this text alone: nothing from a previous
	 * EHLO survives (RFC 3207 4.2 after STARTTLS) */
	msv_smtp_caps c;
	memset(&c, 0xff, sizeof(c));
	assert_int_equal(msv_smtp_parse_ehlo(&c, "mx\r\nDSN", 7), MSV_OK);
	assert_int_equal(c.flags, MSV_CAP_DSN);
	assert_int_equal(c.auth_mechs, 0);
	assert_int_equal(c.size_max, 0);
}

static void mech_names(void **state)
{
	(void)state;
	static const struct {
		msv_auth_mech m;
		const char *name;
	} names[] = {
		{MSV_AUTH_PLAIN, "PLAIN"},
		{MSV_AUTH_LOGIN, "LOGIN"},
		{MSV_AUTH_CRAM_MD5, "CRAM-MD5"},
		{MSV_AUTH_XOAUTH2, "XOAUTH2"},
	};
	for (size_t i = 0; i < 4; i++) {
		assert_string_equal(msv_smtp_auth_mech_name(names[i].m), names[i].name);
		msv_auth_mech m = MSV_AUTH_AUTO;
		assert_int_equal(msv_smtp_auth_mech_parse(names[i].name, &m), 0);
		assert_int_equal(m, names[i].m);
	}
	msv_auth_mech m = MSV_AUTH_AUTO;
	assert_int_equal(msv_smtp_auth_mech_parse("cram-md5", &m), 0);
	assert_int_equal(m, MSV_AUTH_CRAM_MD5);
	assert_int_equal(msv_smtp_auth_mech_parse("Plain", &m), 0);
	assert_int_equal(m, MSV_AUTH_PLAIN);
	assert_int_not_equal(msv_smtp_auth_mech_parse("GSSAPI", &m), 0);
	assert_int_not_equal(msv_smtp_auth_mech_parse("", &m), 0);
	assert_int_not_equal(msv_smtp_auth_mech_parse("PLAINX", &m), 0);
	assert_non_null(msv_smtp_auth_mech_name(MSV_AUTH_AUTO));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(postfix),
		cmocka_unit_test(exim),
		cmocka_unit_test(gmail),
		cmocka_unit_test(microsoft),
		cmocka_unit_test(aiosmtpd),
		cmocka_unit_test(every_flag),
		cmocka_unit_test(auth_lists),
		cmocka_unit_test(size_values),
		cmocka_unit_test(ignored_and_first_line),
		cmocka_unit_test(length_respected),
		cmocka_unit_test(overwrites_caps),
		cmocka_unit_test(mech_names),
	};
	return cmocka_run_group_tests_name("smtp ehlo", tests, NULL, NULL);
}
