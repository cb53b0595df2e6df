/*
 * RFC 3464 / RFC 6533 details of msv_dsn_parse(), the kinds of report,
 * the queue id (ENVID, VERP), and the public helpers (msv_dsn_classify,
 * VERP, names).  Each message is parsed as written (LF), with CRLF and
 * with CR line ends, and placed right before an unreadable page so that
 * any read past its end crashes (picohttpparser's test habit).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "missive/dsn.h"

/* ---- helpers ---- */

/* A copy of s at the very end of a readable page, followed by a
 * PROT_NONE page. */
typedef struct guarded {
	char *map;
	size_t maplen;
	char *p;
	size_t n;
} guarded;

static guarded guard(const char *s, size_t n)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	size_t pages = (n + pg - 1) / pg + 1;
	guarded g;
	g.maplen = (pages + 1) * pg;
	g.map = mmap(NULL, g.maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(g.map != MAP_FAILED);
	assert_int_equal(mprotect(g.map + pages * pg, pg, PROT_NONE), 0);
	g.p = g.map + pages * pg - n;
	memcpy(g.p, s, n);
	g.n = n;
	return g;
}

static void unguard(guarded *g)
{
	munmap(g->map, g->maplen);
}

/* s with every LF made CRLF (crlf=1) or CR (crlf=2). */
static char *endings(const char *s, int mode, size_t *n)
{
	size_t len = strlen(s);
	char *o = malloc(len * 2 + 1);
	size_t k = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\n') {
			if (mode == 1) {
				o[k++] = '\r';
				o[k++] = '\n';
			} else {
				o[k++] = '\r';
			}
		} else {
			o[k++] = s[i];
		}
	}
	o[k] = '\0';
	*n = k;
	return o;
}

static msv_dsn_report *parse_opts(const char *s, size_t n, const msv_dsn_options *o)
{
	guarded g = guard(s, n);
	msv_dsn_report *rep = NULL;
	msv_error err;
	msv_result r = msv_dsn_parse(&rep, g.p, g.n, o, &err);
	unguard(&g);
	if (r != MSV_OK)
		print_error("parse failed: %s\n", err.message);
	assert_int_equal(r, MSV_OK);
	assert_non_null(rep);
	return rep;
}

static msv_dsn_report *parse(const char *s)
{
	return parse_opts(s, strlen(s), NULL);
}

static void assert_same(const msv_dsn_report *a, const msv_dsn_report *b)
{
	assert_int_equal(a->kind, b->kind);
	assert_int_equal(a->nrecipients, b->nrecipients);
	for (size_t i = 0; i < a->nrecipients; i++) {
		assert_string_equal(a->recipients[i].address, b->recipients[i].address);
		assert_string_equal(a->recipients[i].status, b->recipients[i].status);
		assert_int_equal(a->recipients[i].reason, b->recipients[i].reason);
		if (a->recipients[i].diagnostic)
			assert_string_equal(a->recipients[i].diagnostic, b->recipients[i].diagnostic);
	}
}

/* Parses s with LF, CRLF and CR line ends; checks all three agree and
 * returns the LF reading. */
static msv_dsn_report *parse3(const char *s)
{
	msv_dsn_report *lf = parse(s);
	for (int mode = 1; mode <= 2; mode++) {
		size_t n;
		char *v = endings(s, mode, &n);
		msv_dsn_report *o = parse_opts(v, n, NULL);
		assert_same(lf, o);
		msv_dsn_report_free(o);
		free(v);
	}
	return lf;
}

/* ---- RFC 3464 ---- */

static const char postfix_dsn[] =
	"Return-Path: <>\n"
	"From: MAILER-DAEMON@mx.example.org (Mail Delivery System)\n"
	"Subject: Undelivered Mail Returned to Sender\n"
	"To: sender@example.com\n"
	"Auto-Submitted: auto-replied\n"
	"MIME-Version: 1.0\n"
	"Content-Type: multipart/report; report-type=delivery-status;\n"
	"\tboundary=\"B1\"\n"
	"\n"
	"This is a MIME-encapsulated message.\n"
	"\n"
	"--B1\n"
	"Content-Description: Notification\n"
	"Content-Type: text/plain; charset=us-ascii\n"
	"\n"
	"<nobody@example.net>: host mx.example.net[192.0.2.1] said: 550 5.1.1\n"
	"    <nobody@example.net>: Recipient address rejected: User unknown (in reply to\n"
	"    RCPT TO command)\n"
	"\n"
	"--B1\n"
	"Content-Description: Delivery report\n"
	"Content-Type: message/delivery-status\n"
	"\n"
	"Reporting-MTA: dns; mx.example.org\n"
	"X-Postfix-Queue-ID: 3F2A1C0001\n"
	"X-Postfix-Sender: rfc822; sender@example.com\n"
	"Original-Envelope-Id: Q+2B123+3D\n"
	"Arrival-Date: Thu,  1 Jan 2026 00:00:00 +0000 (UTC)\n"
	"\n"
	"Final-Recipient: rfc822; nobody@example.net\n"
	"Original-Recipient: rfc822;Nobody@Example.net\n"
	"Action: failed\n"
	"Status: 5.1.1\n"
	"Remote-MTA: dns; mx.example.net\n"
	"Diagnostic-Code: smtp; 550 5.1.1 <nobody@example.net>: Recipient address\n"
	"    rejected: User unknown\n"
	"Last-Attempt-Date: Thu,  1 Jan 2026 00:00:05 +0000 (UTC)\n"
	"X-Unknown-Field: ignored, whatever it says: Status: 4.4.4\n"
	"\n"
	"--B1\n"
	"Content-Description: Undelivered Message Headers\n"
	"Content-Type: text/rfc822-headers\n"
	"\n"
	"Return-Path: <sender@example.com>\n"
	"From: Sender <sender@example.com>\n"
	"To: nobody@example.net\n"
	"Subject: hello\n"
	"Message-ID: <m1@example.com>\n"
	"\n"
	"--B1--\n";

static void test_rfc3464_fields(void **state)
{
	(void)state;
	msv_dsn_report *r = parse3(postfix_dsn);
	assert_int_equal(r->kind, MSV_DSN_BOUNCE);
	assert_string_equal(r->format, "rfc3464");
	/* RFC 3461 4 xtext: "+2B" is '+', "+3D" is '='. */
	assert_string_equal(r->envelope_id, "Q+123=");
	assert_string_equal(r->queue_id, "Q+123=");
	assert_string_equal(r->reporting_mta, "mx.example.org");
	assert_string_equal(r->arrival_date, "Thu, 1 Jan 2026 00:00:00 +0000 (UTC)");
	assert_string_equal(r->original_message_id, "<m1@example.com>");
	assert_string_equal(r->original_subject, "hello");
	assert_int_equal(r->nrecipients, 1);
	const msv_dsn_recipient *x = &r->recipients[0];
	assert_string_equal(x->address, "nobody@example.net");
	assert_string_equal(x->original_recipient, "Nobody@Example.net");
	assert_int_equal(x->action, MSV_DSN_ACTION_FAILED);
	assert_string_equal(x->status, "5.1.1");
	assert_int_equal(x->status_source, MSV_DSN_SRC_FIELD); /* the diagnostic agrees */
	assert_int_equal(x->reply_code, 550);
	/* Folded field unfolded; its type removed and kept apart. */
	assert_string_equal(x->diagnostic,
	                    "550 5.1.1 <nobody@example.net>: Recipient address rejected: User unknown");
	assert_string_equal(x->diagnostic_type, "smtp");
	assert_string_equal(x->remote_mta, "mx.example.net");
	assert_string_equal(x->last_attempt_date, "Thu, 1 Jan 2026 00:00:05 +0000 (UTC)");
	assert_int_equal(x->reason, MSV_DSN_R_USERUNKNOWN);
	assert_true(x->hard);
	/* The prose said "in reply to RCPT TO command". */
	assert_string_equal(x->command, "RCPT");
	assert_non_null(x->rule);
	msv_dsn_report_free(r);
}

/* Comments in structured fields, a missing address type, no blank line
 * between the groups, two recipients, a delayed one. */
static void test_rfc3464_lenient(void **state)
{
	(void)state;
	static const char m[] =
		"From: postmaster@example.org\n"
		"Subject: Delivery Status Notification (Delay)\n"
		"Content-Type: multipart/report; report-type=delivery-status; boundary=zz\n"
		"\n"
		"--zz\n"
		"Content-Type: message/delivery-status\n"
		"\n"
		"reporting-mta: dns; (the relay) relay.example.org\n"
		"Final-Recipient: <one@example.net> (no type)\n"
		"ACTION: delayed (will retry)\n"
		"Status: 4.4.1 (no answer from host)\n"
		"Will-Retry-Until: Fri, 2 Jan 2026 00:00:00 +0000\n"
		"Final-Recipient: rfc822; two@example.net\n"
		"Action: failed\n"
		"Status: 5.2.2\n"
		"Diagnostic-Code: smtp; 552 5.2.2 Mailbox full\n"
		"--zz--\n";
	msv_dsn_report *r = parse3(m);
	assert_int_equal(r->kind, MSV_DSN_BOUNCE); /* one failed: a bounce */
	assert_string_equal(r->reporting_mta, "relay.example.org");
	assert_int_equal(r->nrecipients, 2);
	assert_string_equal(r->recipients[0].address, "one@example.net");
	assert_int_equal(r->recipients[0].action, MSV_DSN_ACTION_DELAYED);
	assert_string_equal(r->recipients[0].status, "4.4.1");
	assert_int_equal(r->recipients[0].status_source, MSV_DSN_SRC_FIELD);
	assert_string_equal(r->recipients[0].will_retry_until, "Fri, 2 Jan 2026 00:00:00 +0000");
	assert_int_equal(r->recipients[0].reason, MSV_DSN_R_EXPIRED);
	assert_false(r->recipients[0].hard);
	assert_string_equal(r->recipients[1].address, "two@example.net");
	assert_int_equal(r->recipients[1].reason, MSV_DSN_R_MAILBOXFULL);
	assert_false(r->recipients[1].hard);
	msv_dsn_report_free(r);
}

static void test_delay_only(void **state)
{
	(void)state;
	static const char m[] =
		"From: MAILER-DAEMON@example.org\n"
		"Subject: Delayed Mail (still being retried)\n"
		"Content-Type: multipart/report; report-type=delivery-status; boundary=q\n"
		"\n"
		"--q\n"
		"Content-Type: message/delivery-status\n"
		"\n"
		"Reporting-MTA: dns; example.org\n"
		"\n"
		"Final-Recipient: rfc822; slow@example.net\n"
		"Action: delayed\n"
		"Status: 4.4.1\n"
		"Diagnostic-Code: X-Postfix; connect to mx.example.net[192.0.2.9]:25: Connection\n"
		"    timed out\n"
		"\n"
		"--q--\n";
	msv_dsn_report *r = parse3(m);
	assert_int_equal(r->kind, MSV_DSN_DELAY);
	assert_int_equal(r->recipients[0].reason, MSV_DSN_R_EXPIRED);
	assert_string_equal(r->recipients[0].diagnostic_type, "x-postfix");
	msv_dsn_report_free(r);
}

static void test_success(void **state)
{
	(void)state;
	static const char m[] =
		"From: MAILER-DAEMON@example.org\n"
		"Subject: Successful Mail Delivery Report\n"
		"Content-Type: multipart/report; report-type=delivery-status; boundary=q\n"
		"\n"
		"--q\n"
		"Content-Type: message/delivery-status\n"
		"\n"
		"Reporting-MTA: dns; example.org\n"
		"Original-Envelope-Id: E1\n"
		"\n"
		"Final-Recipient: rfc822; ok@example.net\n"
		"Action: relayed\n"
		"Status: 2.0.0\n"
		"Diagnostic-Code: smtp; 250 2.0.0 Ok: queued as 123\n"
		"\n"
		"--q--\n";
	msv_dsn_report *r = parse3(m);
	assert_int_equal(r->kind, MSV_DSN_SUCCESS);
	assert_int_equal(r->recipients[0].reason, MSV_DSN_R_DELIVERED);
	assert_false(r->recipients[0].hard);
	assert_string_equal(r->envelope_id, "E1");
	msv_dsn_report_free(r);
}

/* RFC 6533: message/global-delivery-status, utf-8 addresses with
 * \x{HHHH} escapes, message/global-headers. */
static void test_rfc6533(void **state)
{
	(void)state;
	static const char m[] =
		"From: MAILER-DAEMON@example.org\n"
		"Subject: Undelivered Mail\n"
		"Content-Type: multipart/report; report-type=global-delivery-status; boundary=g\n"
		"\n"
		"--g\n"
		"Content-Type: message/global-delivery-status\n"
		"\n"
		"Reporting-MTA: dns; example.org\n"
		"\n"
		"Final-Recipient: utf-8; \\x{65E5}\\x{672C}@example.jp\n"
		"Original-Recipient: utf-8; \xc3\xa9t\xc3\xa9@example.jp\n"
		"Action: failed\n"
		"Status: 5.1.1\n"
		"\n"
		"--g\n"
		"Content-Type: message/global-headers\n"
		"\n"
		"Message-ID: <g1@example.com>\n"
		"Subject: =?utf-8?q?caf=C3=A9?=\n"
		"\n"
		"--g--\n";
	msv_dsn_report *r = parse3(m);
	assert_string_equal(r->format, "rfc6533");
	/* The address we sent to is the Original-Recipient; the one the
	 * reporting MTA delivered to is kept as the final recipient. */
	assert_string_equal(r->recipients[0].address, "\xc3\xa9t\xc3\xa9@example.jp");
	assert_string_equal(r->recipients[0].original_recipient, "\xc3\xa9t\xc3\xa9@example.jp");
	assert_string_equal(r->recipients[0].final_recipient, "\xe6\x97\xa5\xe6\x9c\xac@example.jp");
	assert_int_equal(r->recipients[0].reason, MSV_DSN_R_USERUNKNOWN);
	assert_string_equal(r->original_message_id, "<g1@example.com>");
	assert_string_equal(r->original_subject, "caf\xc3\xa9");
	msv_dsn_report_free(r);
}

/* The returned message as message/rfc822 in base64 (the MIME parser
 * leaves it encoded: the DSN reader decodes and reads its headers). */
static void test_returned_base64(void **state)
{
	(void)state;
	/* "Message-ID: <b64@example.com>\nReturn-Path: <bounces+Q9@example.com>\n\nhi\n" */
	static const char m[] =
		"From: MAILER-DAEMON@example.org\n"
		"Subject: Undelivered Mail\n"
		"Content-Type: multipart/report; report-type=delivery-status; boundary=q\n"
		"\n"
		"--q\n"
		"Content-Type: message/delivery-status\n"
		"\n"
		"Final-Recipient: rfc822; x@example.net\n"
		"Action: failed\n"
		"Status: 5.0.0\n"
		"\n"
		"--q\n"
		"Content-Type: message/rfc822\n"
		"Content-Transfer-Encoding: base64\n"
		"\n"
		"TWVzc2FnZS1JRDogPGI2NEBleGFtcGxlLmNvbT4KUmV0dXJuLVBhdGg6IDxib3VuY2VzK1E5QGV4\n"
		"YW1wbGUuY29tPgoKaGkK\n"
		"--q--\n";
	msv_dsn_options o = MSV_DSN_OPTIONS_INIT;
	o.verp_prefix = "bounces+";
	msv_dsn_report *r = parse_opts(m, strlen(m), &o);
	assert_string_equal(r->original_message_id, "<b64@example.com>");
	assert_null(r->envelope_id);
	assert_string_equal(r->queue_id, "Q9");
	/* Status 5.0.0 and no words: nothing to go on. */
	assert_int_equal(r->recipients[0].reason, MSV_DSN_R_UNDEFINED);
	msv_dsn_report_free(r);
}

/* VERP: the bounce's own To, a domain filter, ENVID first. */
static void test_verp(void **state)
{
	(void)state;
	static const char m[] =
		"From: MAILER-DAEMON@example.org\n"
		"To: bounces+Q77@lists.example.com\n"
		"Subject: failure notice\n"
		"\n"
		"Hi. This is the qmail-send program at example.org.\n"
		"I'm afraid I wasn't able to deliver your message to the following addresses.\n"
		"This is a permanent error; I've given up. Sorry it didn't work out.\n"
		"\n"
		"<gone@example.net>:\n"
		"Sorry, no mailbox here by that name. (#5.1.1)\n"
		"\n"
		"--- Below this line is a copy of the message.\n"
		"\n"
		"Return-Path: <bounces+Q77@lists.example.com>\n"
		"Message-ID: <v1@lists.example.com>\n"
		"\n"
		"body\n";
	msv_dsn_options o = MSV_DSN_OPTIONS_INIT;
	msv_dsn_report *r = parse_opts(m, strlen(m), &o);
	assert_null(r->queue_id); /* no prefix configured */
	assert_string_equal(r->recipients[0].address, "gone@example.net");
	assert_int_equal(r->recipients[0].reason, MSV_DSN_R_USERUNKNOWN);
	assert_string_equal(r->recipients[0].status, "5.1.1");
	assert_string_equal(r->original_message_id, "<v1@lists.example.com>");
	msv_dsn_report_free(r);
	o.verp_prefix = "bounces+";
	r = parse_opts(m, strlen(m), &o);
	assert_string_equal(r->queue_id, "Q77");
	msv_dsn_report_free(r);
	o.verp_domain = "other.example.com";
	r = parse_opts(m, strlen(m), &o);
	assert_null(r->queue_id);
	msv_dsn_report_free(r);
	o.verp_domain = "LISTS.example.com";
	r = parse_opts(m, strlen(m), &o);
	assert_string_equal(r->queue_id, "Q77");
	msv_dsn_report_free(r);
}

/* ---- other kinds ---- */

static void test_arf(void **state)
{
	(void)state;
	static const char m[] =
		"From: feedback@isp.example\n"
		"To: abuse@example.com\n"
		"Subject: FW: hello\n"
		"Content-Type: multipart/report; report-type=feedback-report; boundary=f\n"
		"\n"
		"--f\n"
		"Content-Type: text/plain\n"
		"\n"
		"This is an email abuse report.\n"
		"--f\n"
		"Content-Type: message/feedback-report\n"
		"\n"
		"Feedback-Type: abuse\n"
		"User-Agent: SomeGenerator/1.0\n"
		"Version: 1\n"
		"Original-Mail-From: <bounces+Q5@example.com>\n"
		"Original-Rcpt-To: <user1@isp.example>\n"
		"Original-Rcpt-To: <user2@isp.example>\n"
		"Arrival-Date: Thu, 8 Mar 2005 14:00:00 EDT\n"
		"\n"
		"--f\n"
		"Content-Type: message/rfc822\n"
		"\n"
		"From: <somesender@example.com>\n"
		"Message-ID: <a1@example.com>\n"
		"\n"
		"spam\n"
		"--f--\n";
	msv_dsn_options o = MSV_DSN_OPTIONS_INIT;
	o.verp_prefix = "bounces+";
	msv_dsn_report *r = parse_opts(m, strlen(m), &o);
	assert_int_equal(r->kind, MSV_DSN_FEEDBACK);
	assert_string_equal(r->feedback_type, "abuse");
	assert_int_equal(r->nrecipients, 2);
	assert_string_equal(r->recipients[1].address, "user2@isp.example");
	assert_int_equal(r->recipients[0].reason, MSV_DSN_R_FEEDBACK);
	assert_false(r->recipients[0].hard);
	assert_string_equal(r->recipients[0].status, "");
	assert_string_equal(r->queue_id, "Q5");
	assert_string_equal(r->original_message_id, "<a1@example.com>");
	msv_dsn_report_free(r);
}

static void test_autoreply(void **state)
{
	(void)state;
	static const char m[] =
		"From: Away Person <away@example.net>\n"
		"To: sender@example.com\n"
		"Subject: Out of Office: hello\n"
		"Auto-Submitted: auto-replied\n"
		"\n"
		"I am away until Monday.\n";
	msv_dsn_report *r = parse3(m);
	assert_int_equal(r->kind, MSV_DSN_AUTOREPLY);
	assert_int_equal(r->nrecipients, 1);
	assert_string_equal(r->recipients[0].address, "away@example.net");
	assert_int_equal(r->recipients[0].reason, MSV_DSN_R_VACATION);
	msv_dsn_report_free(r);
}

static void test_not_a_report(void **state)
{
	(void)state;
	static const char m[] =
		"From: friend@example.net\n"
		"To: me@example.com\n"
		"Subject: lunch?\n"
		"\n"
		"Write to bob@example.org if the user is unknown to you.\n";
	msv_dsn_report *r = parse3(m);
	assert_int_equal(r->kind, MSV_DSN_UNKNOWN);
	assert_int_equal(r->nrecipients, 0);
	msv_dsn_report_free(r);
}

/* An Exim bounce: recipients from the prose, the sender's address in
 * "MAIL FROM:<...>" never taken for a recipient, refusals of MAIL FROM
 * never blamed on the recipient. */
static void test_exim_text(void **state)
{
	(void)state;
	static const char m[] =
		"From: Mail Delivery System <Mailer-Daemon@mx.example.org>\n"
		"To: sender@example.com\n"
		"Subject: Mail delivery failed: returning message to sender\n"
		"X-Failed-Recipients: a@example.net, b@example.net\n"
		"\n"
		"This message was created automatically by mail delivery software.\n"
		"\n"
		"A message that you sent could not be delivered to one or more of its\n"
		"recipients. This is a permanent error. The following address(es) failed:\n"
		"\n"
		"  a@example.net\n"
		"    SMTP error from remote mail server after RCPT TO:<a@example.net>:\n"
		"    host mx.example.net [192.0.2.7]: 550 5.1.1 <a@example.net>... User Unknown\n"
		"  b@example.net\n"
		"    SMTP error from remote mail server after MAIL FROM:<sender@example.com> SIZE=1234:\n"
		"    host mx.example.net [192.0.2.7]: 553 5.1.8 Domain of sender address does not exist\n"
		"\n"
		"------ This is a copy of the message, including all the headers. ------\n"
		"\n"
		"Message-Id: <e1@example.com>\n"
		"From: sender@example.com\n"
		"\n"
		"hi\n";
	msv_dsn_report *r = parse3(m);
	assert_int_equal(r->kind, MSV_DSN_BOUNCE);
	assert_int_equal(r->nrecipients, 2);
	assert_string_equal(r->recipients[0].address, "a@example.net");
	assert_string_equal(r->recipients[0].status, "5.1.1");
	assert_string_equal(r->recipients[0].command, "RCPT");
	assert_string_equal(r->recipients[0].remote_mta, "mx.example.net");
	assert_int_equal(r->recipients[0].reason, MSV_DSN_R_USERUNKNOWN);
	assert_true(r->recipients[0].hard);
	assert_string_equal(r->recipients[1].address, "b@example.net");
	assert_string_equal(r->recipients[1].command, "MAIL");
	assert_int_equal(r->recipients[1].reason, MSV_DSN_R_REJECTED);
	assert_false(r->recipients[1].hard);
	assert_string_equal(r->original_message_id, "<e1@example.com>");
	msv_dsn_report_free(r);
}

/* ---- public helpers ---- */

static void test_classify(void **state)
{
	(void)state;
	msv_dsn_verdict v;
	msv_dsn_classify(&v, "5.1.1", 550, "5.1.1 <x@example.net>: Recipient address rejected", "RCPT");
	assert_int_equal(v.reason, MSV_DSN_R_USERUNKNOWN);
	assert_true(v.hard);
	assert_string_equal(v.status, "5.1.1");
	assert_int_equal(v.status_source, MSV_DSN_SRC_FIELD);

	msv_dsn_classify(&v, NULL, 554, "5.7.1 Message rejected as spam by Content Filtering", "DATA");
	assert_int_equal(v.reason, MSV_DSN_R_SPAMDETECTED);
	assert_false(v.hard);
	assert_string_equal(v.status, "5.7.1");
	assert_int_equal(v.status_source, MSV_DSN_SRC_TEXT);
	assert_non_null(strstr(v.rule, "spam"));

	msv_dsn_classify(&v, NULL, 452, "Too many connections, slow down", NULL);
	assert_int_equal(v.reason, MSV_DSN_R_TOOMANYCONN);
	assert_string_equal(v.status, "4.0.0");
	assert_int_equal(v.status_source, MSV_DSN_SRC_REPLY);

	/* The sender's domain, not the recipient's. */
	msv_dsn_classify(&v, "5.1.2", 550, "no such domain", "MAIL");
	assert_int_equal(v.reason, MSV_DSN_R_REJECTED);
	assert_false(v.hard);

	/* "User unknown" to DATA: a filter, and soft. */
	msv_dsn_classify(&v, NULL, 550, ": User unknown", "DATA");
	assert_int_equal(v.reason, MSV_DSN_R_FILTERED);
	assert_false(v.hard);

	/* Null MX (RFC 7505): hard when permanent. */
	msv_dsn_classify(&v, "5.1.10", 556, "Recipient address has null MX", NULL);
	assert_int_equal(v.reason, MSV_DSN_R_NOTACCEPT);
	assert_true(v.hard);

	msv_dsn_classify(&v, NULL, 0, NULL, NULL);
	assert_int_equal(v.reason, MSV_DSN_R_UNDEFINED);
	assert_false(v.hard);
}

static void test_verp_helpers(void **state)
{
	(void)state;
	msv_buf b;
	msv_buf_init(&b, 1024);
	assert_int_equal(msv_dsn_verp_encode(&b, "bounces+", "Q-12.a_b=c", "example.com"), MSV_OK);
	assert_string_equal(b.data, "bounces+Q-12.a_b=c@example.com");
	msv_buf_reset(&b);
	assert_int_equal(msv_dsn_verp_decode(&b, "Bounces+Q-12.a_b=c@Example.COM", "bounces+",
	                                     "example.com"),
	                 MSV_OK);
	assert_string_equal(b.data, "Q-12.a_b=c");
	msv_buf_reset(&b);
	assert_int_equal(msv_dsn_verp_encode(&b, "bounces+", "bad id", "example.com"), MSV_E_INVALID);
	assert_int_equal(msv_dsn_verp_encode(&b, "bounces+", "", "example.com"), MSV_E_INVALID);
	assert_int_equal(msv_dsn_verp_encode(&b, "bounces+", "x@y", "example.com"), MSV_E_INVALID);
	assert_int_equal(msv_dsn_verp_encode(&b, "b@", "x", "example.com"), MSV_E_INVALID);
	char longid[200];
	memset(longid, 'a', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0';
	assert_int_equal(msv_dsn_verp_encode(&b, "bounces+", longid, "example.com"), MSV_E_INVALID);
	assert_int_equal(msv_dsn_verp_decode(&b, "other+Q1@example.com", "bounces+", NULL),
	                 MSV_E_INVALID);
	assert_int_equal(msv_dsn_verp_decode(&b, "bounces+@example.com", "bounces+", NULL),
	                 MSV_E_INVALID);
	assert_int_equal(msv_dsn_verp_decode(&b, "bounces+Q1@example.com", "bounces+", "example.org"),
	                 MSV_E_INVALID);
	assert_int_equal(b.len, 0);
	msv_buf_free(&b);
}

static void test_names(void **state)
{
	(void)state;
	for (int i = 0; i < MSV__DSN_REASON_COUNT; i++) {
		const char *n = msv_dsn_reason_name((msv_dsn_reason)i);
		assert_string_not_equal(n, "?");
		assert_string_not_equal(msv_dsn_reason_text((msv_dsn_reason)i), "?");
		assert_int_equal(msv_dsn_reason_from_name(n), i);
		assert_int_equal(msv_dsn_reason_from_name(msv_dsn_reason_sisimai((msv_dsn_reason)i)), i);
	}
	assert_string_equal(msv_dsn_reason_sisimai(MSV_DSN_R_RATELIMITED), "speeding");
	assert_int_equal(msv_dsn_reason_from_name("speeding"), MSV_DSN_R_RATELIMITED);
	assert_int_equal(msv_dsn_reason_from_name("emailtoolarge"), MSV_DSN_R_MESGTOOBIG);
	assert_int_equal(msv_dsn_reason_from_name("nonsense"), -1);
	assert_string_equal(msv_dsn_reason_name((msv_dsn_reason)999), "?");
	assert_string_equal(msv_dsn_kind_name(MSV_DSN_FEEDBACK), "feedback");
	assert_string_equal(msv_dsn_kind_name((msv_dsn_kind)99), "?");
	assert_string_equal(msv_dsn_action_name(MSV_DSN_ACTION_DELAYED), "delayed");
	assert_string_equal(msv_dsn_source_name(MSV_DSN_SRC_INFERRED), "inferred");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc3464_fields),  cmocka_unit_test(test_rfc3464_lenient),
		cmocka_unit_test(test_delay_only),      cmocka_unit_test(test_success),
		cmocka_unit_test(test_rfc6533),         cmocka_unit_test(test_returned_base64),
		cmocka_unit_test(test_verp),            cmocka_unit_test(test_arf),
		cmocka_unit_test(test_autoreply),       cmocka_unit_test(test_not_a_report),
		cmocka_unit_test(test_exim_text),       cmocka_unit_test(test_classify),
		cmocka_unit_test(test_verp_helpers),    cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
