/* The sans-I/O SMTP engine against scripted servers: exact client
 * transcripts, events and per-recipient results (curl's test903 style:
 * server commands in, the client's exact bytes out).  See script.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "missive/smtp.h"
#include "script.h"
#include "smtp/states.h"

#define GREETING "220 mx.example.net ESMTP ready\r\n"

/* Capability lists as complete 250 replies. */
#define EHLO_BASIC "250-mx.example.net\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n"
#define EHLO_PIPE                                                                        \
	"250-mx.example.net\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n"
#define EHLO_TLS "250-mx.example.net\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 STARTTLS\r\n"

#define MSG "From: alice@example.com\r\nTo: bob@example.org\r\nSubject: hi\r\n\r\nHello Bob.\r\n"

static const char *const rcpt1[] = {"bob@example.org"};
static const char *const rcpt3[] = {"bob@example.org", "carol@example.org", "dave@example.org"};

static msv_envelope env_of(const char *const *rcpt, size_t n)
{
	msv_envelope e;
	memset(&e, 0, sizeof(e));
	e.from = "alice@example.com";
	e.rcpt = rcpt;
	e.nrcpt = n;
	return e;
}

static void begin_ok_at(const char *file, int line, drv *d, const msv_envelope *env)
{
	msv_result r = msv_smtp_begin(d->s, env);
	if (r != MSV_OK) {
		print_error("%s:%d: msv_smtp_begin returned %s (%s)\n", file, line, msv_result_name(r),
		            msv_smtp_error(d->s)->message);
		fail();
	}
}
#define begin_ok(d, env) begin_ok_at(__FILE__, __LINE__, d, env)

static void reply_eq(const msv_smtp_reply *r, int code, const char *enhanced, const char *text)
{
	assert_int_equal(r->code, code);
	assert_string_equal(r->enhanced, enhanced);
	if (text)
		assert_string_equal(r->text, text);
}

/* ---- greeting, EHLO, HELO ---- */

static void greeting_then_ehlo(void **state)
{
	(void)state;
	drv d;
	msv_smtp_options o = plain_opts();
	drv_open(&d, &o);
	assert_non_null(msv_smtp_state_name(d.s));
	assert_int_equal(msv_smtp_tls_active(d.s), 0);
	assert_int_equal(msv_smtp_in_data(d.s), 0);
	SC(&d, GREETING, "EHLO client.example\r\n", MSV_SMTP_WANT_READ);
	SC(&d,
	   "250-mx.example.net Hello client.example [192.0.2.1]\r\n250-PIPELINING\r\n"
	   "250-SIZE 52428800\r\n250-8BITMIME\r\n250-CHUNKING\r\n250-DSN\r\n250-SMTPUTF8\r\n"
	   "250 ENHANCEDSTATUSCODES\r\n",
	   "", MSV_SMTP_READY);
	const msv_smtp_caps *c = msv_smtp_caps_get(d.s);
	assert_int_equal(c->esmtp, 1);
	assert_int_equal(c->flags, MSV_CAP_PIPELINING | MSV_CAP_SIZE | MSV_CAP_8BITMIME |
	                               MSV_CAP_CHUNKING | MSV_CAP_DSN | MSV_CAP_SMTPUTF8 |
	                               MSV_CAP_ENHANCEDSTATUSCODES);
	assert_int_equal(c->size_max, 52428800);
	/* READY is stable */
	SC(&d, NULL, "", MSV_SMTP_READY);
	assert_int_equal(msv_smtp_error(d.s)->code, MSV_OK);
	drv_close(&d);
}

static void default_helo_is_localhost(void **state)
{
	(void)state;
	drv d;
	msv_smtp_options o = plain_opts();
	o.helo = NULL;
	drv_open(&d, &o);
	SC(&d, GREETING, "EHLO localhost\r\n", MSV_SMTP_WANT_READ);
	SC(&d, "250 mx.example.net\r\n", "", MSV_SMTP_READY);
	drv_close(&d);
}

static void greeting_split_bytes(void **state)
{
	(void)state;
	drv d;
	msv_smtp_options o = plain_opts();
	drv_open(&d, &o);
	SC_BYTES(&d, "220-mx.example.net ESMTP\r\n220 no UCE\r\n", "EHLO client.example\r\n",
	         MSV_SMTP_WANT_READ);
	SC_BYTES(&d, EHLO_PIPE, "", MSV_SMTP_READY);
	assert_true(msv_smtp_caps_get(d.s)->flags & MSV_CAP_PIPELINING);
	drv_close(&d);
}

static void greeting_refused(const char *greeting, int code, msv_class cls)
{
	drv d;
	msv_smtp_options o = plain_opts();
	drv_open(&d, &o);
	msv_smtp_event ev = drv_feed(&d, greeting, strlen(greeting));
	expect_ev(&d, ev, MSV_SMTP_FAILED);
	/* never EHLO; a polite QUIT is allowed (RFC 5321 3.1 after 554) */
	size_t n;
	const char *out = drv_new(&d, &n);
	assert_false(n && mem_find(out, n, "EHLO", 4));
	assert_false(n && mem_find(out, n, "HELO", 4));
	const msv_error *e = msv_smtp_error(d.s);
	assert_int_equal(e->cls, cls);
	assert_int_equal(e->reply_code, code);
	assert_int_not_equal(e->code, MSV_OK);
	assert_true(e->message[0] != '\0');
	/* a failed session stays failed */
	SC(&d, NULL, "", MSV_SMTP_FAILED);
	msv_envelope env = env_of(rcpt1, 1);
	assert_int_not_equal(msv_smtp_begin(d.s, &env), MSV_OK);
	SC(&d, NULL, "", MSV_SMTP_FAILED);
	drv_close(&d);
}

static void greeting_421(void **state)
{
	(void)state;
	greeting_refused("421 4.3.2 mx.example.net Service not available\r\n", 421,
	                 MSV_CLASS_TEMPORARY);
	drv d;
	msv_smtp_options o = plain_opts();
	drv_open(&d, &o);
	expect_ev(&d, drv_feeds(&d, "421 4.3.2 busy\r\n"), MSV_SMTP_FAILED);
	const msv_error *e = msv_smtp_error(d.s);
	assert_string_equal(e->enhanced, "4.3.2");
	assert_string_equal(e->server_text, "busy");
	assert_int_equal(e->code, MSV_E_REPLY);
	drv_close(&d);
}

static void greeting_554(void **state)
{
	(void)state;
	greeting_refused("554 5.7.1 Go away\r\n", 554, MSV_CLASS_PERMANENT);
	greeting_refused("554-mx.example.net\r\n554 No SMTP service here\r\n", 554,
	                 MSV_CLASS_PERMANENT);
}

static void ehlo_refused_helo_fallback(void **state)
{
	(void)state;
	drv d;
	msv_smtp_options o = plain_opts();
	drv_open(&d, &o);
	SC(&d, GREETING, "EHLO client.example\r\n", MSV_SMTP_WANT_READ);
	SC(&d, "502 5.5.2 Error: command not recognized\r\n", "HELO client.example\r\n",
	   MSV_SMTP_WANT_READ);
	SC(&d, "250 mx.example.net\r\n", "", MSV_SMTP_READY);
	const msv_smtp_caps *c = msv_smtp_caps_get(d.s);
	assert_int_equal(c->esmtp, 0);
	assert_int_equal(c->flags, 0);
	assert_int_equal(c->size_max, 0);
	/* plain SMTP: one command at a time */
	msv_envelope env = env_of(rcpt1, 1);
	begin_ok(&d, &env);
	SC(&d, NULL, "MAIL FROM:<alice@example.com>\r\n", MSV_SMTP_WANT_READ);
	SC(&d, "250 ok\r\n", "RCPT TO:<bob@example.org>\r\n", MSV_SMTP_WANT_READ);
	SC(&d, "250 ok\r\n", "DATA\r\n", MSV_SMTP_WANT_READ);
	drv_close(&d);

	/* 500 too, and HELO refused as well fails the session permanently */
	drv_open(&d, &o);
	SC(&d, GREETING, "EHLO client.example\r\n", MSV_SMTP_WANT_READ);
	SC(&d, "500 5.5.1 unrecognized\r\n", "HELO client.example\r\n", MSV_SMTP_WANT_READ);
	expect_ev(&d, drv_feeds(&d, "501 5.5.4 no\r\n"), MSV_SMTP_FAILED);
	assert_int_equal(msv_smtp_error(d.s)->cls, MSV_CLASS_PERMANENT);
	assert_int_equal(msv_smtp_error(d.s)->reply_code, 501);
	drv_close(&d);
}

static void ehlo_421_fails(void **state)
{
	(void)state;
	drv d;
	msv_smtp_options o = plain_opts();
	drv_open(&d, &o);
	SC(&d, GREETING, "EHLO client.example\r\n", MSV_SMTP_WANT_READ);
	expect_ev(&d, drv_feeds(&d, "421 4.7.0 too many connections\r\n"), MSV_SMTP_FAILED);
	assert_false(drv_out_has(&d, "HELO"));
	expect_err(&d, MSV_E_REPLY, MSV_CLASS_TEMPORARY);
	assert_int_equal(msv_smtp_error(d.s)->reply_code, 421);
	drv_close(&d);
}

/* ---- STARTTLS ---- */

/* Greeting, EHLO with STARTTLS, STARTTLS, 220, TLS started, and the
 * second EHLO written: the next reply is the post-TLS EHLO. */
static void tls_until_second_ehlo_at(const char *file, int line, drv *d,
                                     const msv_smtp_options *o)
{
	drv_open_at(file, line, d, o);
	sc_at(file, line, d, GREETING, "EHLO client.example\r\n", MSV_SMTP_WANT_READ);
	sc_at(file, line, d, EHLO_TLS, "STARTTLS\r\n", MSV_SMTP_WANT_READ);
	assert_int_equal(msv_smtp_tls_active(d->s), 0);
	sc_at(file, line, d, "220 2.0.0 Ready to start TLS\r\n", "", MSV_SMTP_WANT_TLS);
	assert_int_equal(msv_smtp_tls_started(d->s), MSV_OK);
	sc_at(file, line, d, NULL, "EHLO client.example\r\n", MSV_SMTP_WANT_READ);
	assert_int_equal(msv_smtp_tls_active(d->s), 1);
}
#define tls_until_second_ehlo(d, o) tls_until_second_ehlo_at(__FILE__, __LINE__, d, o)

static void starttls_flow(void **state)
{
	(void)state;
	drv d;
	msv_smtp_options o = plain_opts();
	o.tls = MSV_TLS_STARTTLS;
	tls_until_second_ehlo(&d, &o);
	/* the capabilities learnt before TLS are forgotten (RFC 3207 4.2) */
	const msv_smtp_caps *c = msv_smtp_caps_get(d.s);
	assert_int_equal(c->flags & (MSV_CAP_PIPELINING | MSV_CAP_SIZE | MSV_CAP_STARTTLS), 0);
	assert_int_equal(c->size_max, 0);
	SC(&d, "250-mx.example.net\r\n250-8BITMIME\r\n250 AUTH PLAIN\r\n", "", MSV_SMTP_READY);
	c = msv_smtp_caps_get(d.s);
	assert_int_equal(c->flags, MSV_CAP_8BITMIME | MSV_CAP_AUTH);
	assert_int_equal(c->size_max, 0);
	assert_int_equal(msv_smtp_tls_active(d.s), 1);
	/* no PIPELINING after TLS: one command at a time */
	msv_envelope env = env_of(rcpt1, 1);
	begin_ok(&d, &env);
	SC(&d, NULL, "MAIL FROM:<alice@example.com>\r\n", MSV_SMTP_WANT_READ);
	drv_close(&d);
}

static void starttls_not_offered(void **state)
{
	(void)state;
	drv d;
	msv_smtp_options o = plain_opts();
	o.tls = MSV_TLS_STARTTLS;
	drv_open(&d, &o);
	SC(&d, GREETING, "EHLO client.example\r\n", MSV_SMTP_WANT_READ);
	msv_smtp_event ev = drv_feed(&d, EHLO_PIPE, strlen(EHLO_PIPE));
	expect_ev(&d, ev, MSV_SMTP_FAILED);
	assert_int_equal(msv_smtp_error(d.s)->code, MSV_E_NO_STARTTLS);
	assert_false(drv_out_has(&d, "STARTTLS"));
	assert_false(drv_out_has(&d, "MAIL"));
	assert_false(drv_out_has(&d, "AUTH"));
	msv_envelope env = env_of(rcpt1, 1);
	assert_int_not_equal(msv_smtp_begin(d.s, &env), MSV_OK);
	drv_run(&d);
	assert_false(drv_out_has(&d, "MAIL"));
	drv_close(&d);

	/* the HELO fallback cannot offer STARTTLS either: never a downgrade */
	drv_open(&d, &o);
	SC(&d, GREETING, "EHLO client.example\r\n", MSV_SMTP_WANT_READ);
	ev = drv_feeds(&d, "500 what\r\n");
	if (ev == MSV_SMTP_WANT_READ) {
		drv_expect_out(&d, "HELO client.example\r\n");
		ev = drv_feeds(&d, "250 mx\r\n");
	}
	expect_ev(&d, ev, MSV_SMTP_FAILED);
	assert_int_equal(msv_smtp_error(d.s)->code, MSV_E_NO_STARTTLS);
	assert_false(drv_out_has(&d, "MAIL"));
	drv_close(&d);
}

static void starttls_454(void **state)
{
	(void)state;
	drv d;
	msv_smtp_options o = plain_opts();
	o.tls = MSV_TLS_STARTTLS;
	drv_open(&d, &o);
	SC(&d, GREETING, "EHLO client.example\r\n", MSV_SMTP_WANT_READ);
	SC(&d, EHLO_TLS, "STARTTLS\r\n", MSV_SMTP_WANT_READ);
	expect_ev(&d, drv_feeds(&d, "454 4.7.0 TLS not available due to local problem\r\n"),
	          MSV_SMTP_FAILED);
	const msv_error *e = msv_smtp_error(d.s);
	assert_int_equal(e->cls, MSV_CLASS_TEMPORARY);
	assert_int_equal(e->reply_code, 454);
	assert_string_equal(e->enhanced, "4.7.0");
	assert_false(drv_out_has(&d, "MAIL"));
	assert_int_equal(msv_smtp_tls_active(d.s), 0);
	drv_close(&d);
}

static void starttls_injection(void **state)
{
	(void)state;
	static const char *const inject[] = {
		"220 go ahead\r\n250 x\r\n",
		"220 go ahead\r\nX",
		"220 go ahead\r\nEHLO\r\n",
		"220-go\r\n220 ahead\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(inject) / sizeof(inject[0]); i++) {
		drv d;
		msv_smtp_options o = plain_opts();
		o.tls = MSV_TLS_STARTTLS;
		drv_open(&d, &o);
		SC(&d, GREETING, "EHLO client.example\r\n", MSV_SMTP_WANT_READ);
		SC(&d, EHLO_TLS, "STARTTLS\r\n", MSV_SMTP_WANT_READ);
		msv_smtp_event ev = drv_feed(&d, inject[i], strlen(inject[i]));
		expect_ev(&d, ev, MSV_SMTP_FAILED);
		/* temporary: another attempt may meet an honest path */
		expect_err(&d, MSV_E_PROTOCOL, MSV_CLASS_TEMPORARY);
		drv_expect_out(&d, "");
		drv_close(&d);
	}
}

static void starttls_not_with_tls_none(void **state)
{
	(void)state;
	/* plaintext by name: STARTTLS offered but not used */
	drv d;
	msv_smtp_options o = plain_opts();
	drv_ready(&d, &o, EHLO_TLS);
	assert_false(drv_out_has(&d, "STARTTLS"));
	assert_int_equal(msv_smtp_tls_active(d.s), 0);
	drv_close(&d);
}

/* ---- transactions ---- */

static void pipelined_mixed_rcpt_run(size_t write_step, int bytewise_replies)
{
	drv d;
	msv_smtp_options o = plain_opts();
	drv_ready(&d, &o, EHLO_PIPE);
	d.write_step = write_step;
	msv_envelope env = env_of(rcpt3, 3);
	size_t w = d.writes;
	begin_ok(&d, &env);
	SC(&d, NULL,
	   "MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.org>\r\n"
	   "RCPT TO:<carol@example.org>\r\nRCPT TO:<dave@example.org>\r\nDATA\r\n",
	   MSV_SMTP_WANT_READ);
	if (!write_step)
		assert_int_equal(d.writes - w, 1); /* one chunk, before any reply */
	const char *replies = "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
	                      "550 5.1.1 <carol@example.org>: Recipient address rejected\r\n"
	                      "451 4.3.0 <dave@example.org>: Temporary lookup failure\r\n"
	                      "354 End data with <CR><LF>.<CR><LF>\r\n";
	if (bytewise_replies)
		SC_BYTES(&d, replies, "", MSV_SMTP_WANT_BODY);
	else
		SC(&d, replies, "", MSV_SMTP_WANT_BODY);
	assert_int_equal(msv_smtp_in_data(d.s), 1);
	msv_smtp_event ev = drv_body(&d, MSG, strlen(MSG), 0);
	expect_ev(&d, ev, MSV_SMTP_WANT_READ);
	drv_expect_out(&d, MSG ".\r\n");
	assert_int_equal(msv_smtp_in_data(d.s), 1);
	SC(&d, "250 2.0.0 Ok: queued as 4ABC123DEF\r\n", "", MSV_SMTP_TXN_DONE);
	assert_int_equal(msv_smtp_in_data(d.s), 0);

	const msv_smtp_txn *t = msv_smtp_result(d.s);
	assert_non_null(t);
	reply_eq(&t->mail, 250, "2.1.0", "Ok");
	reply_eq(&t->data, 250, "2.0.0", "Ok: queued as 4ABC123DEF");
	assert_int_equal(t->nrcpt, 3);
	assert_int_equal(t->accepted, 1);
	assert_ptr_equal(t->rcpt[0].address, rcpt3[0]);
	assert_ptr_equal(t->rcpt[1].address, rcpt3[1]);
	assert_ptr_equal(t->rcpt[2].address, rcpt3[2]);
	assert_int_equal(t->rcpt[0].accepted, 1);
	reply_eq(&t->rcpt[0].reply, 250, "2.1.5", "Ok");
	assert_int_equal(t->rcpt[1].accepted, 0);
	reply_eq(&t->rcpt[1].reply, 550, "5.1.1", "<carol@example.org>: Recipient address rejected");
	assert_int_equal(t->rcpt[2].accepted, 0);
	reply_eq(&t->rcpt[2].reply, 451, "4.3.0", "<dave@example.org>: Temporary lookup failure");
	SC(&d, NULL, "", MSV_SMTP_READY);
	/* refused recipients are not session errors */
	assert_int_equal(msv_smtp_error(d.s)->code, MSV_OK);

	/* a second transaction on the same session */
	msv_envelope env2 = env_of(rcpt1, 1);
	begin_ok(&d, &env2);
	SC(&d, NULL, "MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n",
	   MSV_SMTP_WANT_READ);
	SC(&d, "250 ok\r\n250 ok\r\n354 go\r\n", "", MSV_SMTP_WANT_BODY);
	expect_ev(&d, drv_body(&d, "x", 1, 0), MSV_SMTP_WANT_READ);
	drv_expect_out(&d, "x\r\n.\r\n");
	SC(&d, "250 queued\r\n", "", MSV_SMTP_TXN_DONE);
	t = msv_smtp_result(d.s);
	assert_int_equal(t->nrcpt, 1);
	assert_int_equal(t->accepted, 1);
	assert_int_equal(t->rcpt[0].accepted, 1);
	SC(&d, NULL, "", MSV_SMTP_READY);
	assert_int_equal(msv_smtp_quit(d.s), MSV_OK);
	SC(&d, NULL, "QUIT\r\n", MSV_SMTP_WANT_READ);
	SC(&d, "221 2.0.0 Bye\r\n", "", MSV_SMTP_CLOSED);
	drv_close(&d);
}

/* RFC 2920: the end of one message and the next envelope in one write;
 * the earlier transaction's outcome comes as MSV_SMTP_PREV_DONE. */
static void overlap_next_envelope(void **state)
{
	(void)state;
	drv d;
	msv_smtp_options o = plain_opts();
	drv_ready(&d, &o, EHLO_PIPE);
	msv_envelope e1 = env_of(rcpt1, 1), e2 = env_of(rcpt3, 2);
	begin_ok(&d, &e1);
	SC(&d, NULL, "MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n",
	   MSV_SMTP_WANT_READ);
	SC(&d, "250 ok\r\n250 ok\r\n354 go\r\n", "", MSV_SMTP_WANT_BODY);
	assert_int_equal(msv_smtp_body(d.s, "Hi.\r\n", 5), MSV_OK);
	assert_int_equal(msv_smtp_body_end(d.s), MSV_OK);
	begin_ok(&d, &e2);
	size_t writes = d.writes;
	SC(&d, NULL,
	   "Hi.\r\n.\r\nMAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.org>\r\n"
	   "RCPT TO:<carol@example.org>\r\nDATA\r\n",
	   MSV_SMTP_WANT_READ);
	assert_int_equal(d.writes, writes + 1);
	/* a third cannot overlap while the first is unanswered */
	msv_envelope e3 = env_of(rcpt1, 1);
	assert_int_equal(msv_smtp_begin(d.s, &e3), MSV_E_STATE);
	SC(&d, "250 2.0.0 queued as A\r\n", "", MSV_SMTP_PREV_DONE);
	const msv_smtp_txn *p = msv_smtp_prev_result(d.s);
	assert_int_equal(p->accepted, 1);
	assert_int_equal(p->data.code, 250);
	assert_string_equal(p->data.text, "queued as A");
	assert_string_equal(p->rcpt[0].address, "bob@example.org");
	SC(&d, "250 ok\r\n550 5.1.1 no\r\n250 ok\r\n354 go\r\n", "", MSV_SMTP_WANT_BODY);
	assert_int_equal(msv_smtp_body(d.s, "x", 1), MSV_OK);
	assert_int_equal(msv_smtp_body_end(d.s), MSV_OK);
	SC(&d, NULL, "x\r\n.\r\n", MSV_SMTP_WANT_READ);
	SC(&d, "554 5.7.1 rejected\r\n", "", MSV_SMTP_TXN_DONE);
	const msv_smtp_txn *t = msv_smtp_result(d.s);
	assert_int_equal(t->accepted, 0);
	assert_int_equal(t->rcpt[0].reply.code, 550);
	assert_int_equal(t->rcpt[1].reply.code, 554);
	SC(&d, NULL, "", MSV_SMTP_READY);
	drv_close(&d);
}

/* The session breaks right after the earlier message was accepted: its
 * outcome is reported first, then the failure. */
static void overlap_prev_done_before_failure(void **state)
{
	(void)state;
	drv d;
	msv_smtp_options o = plain_opts();
	drv_ready(&d, &o, EHLO_PIPE);
	msv_envelope e1 = env_of(rcpt1, 1), e2 = env_of(rcpt1, 1);
	begin_ok(&d, &e1);
	SC(&d, NULL, "MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n",
	   MSV_SMTP_WANT_READ);
	SC(&d, "250 ok\r\n250 ok\r\n354 go\r\n", "", MSV_SMTP_WANT_BODY);
	assert_int_equal(msv_smtp_body_end(d.s), MSV_OK);
	begin_ok(&d, &e2);
	SC(&d, NULL, ".\r\nMAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n",
	   MSV_SMTP_WANT_READ);
	SC(&d, "250 2.0.0 queued\r\n421 4.3.2 shutting down\r\n", "", MSV_SMTP_PREV_DONE);
	assert_int_equal(msv_smtp_prev_result(d.s)->accepted, 1);
	expect_ev(&d, msv_smtp_step(d.s), MSV_SMTP_FAILED);
	assert_int_equal(msv_smtp_error(d.s)->reply_code, 421);
	assert_int_equal(msv_smtp_result(d.s)->mail.code, 0); /* never answered: retryable */
	drv_close(&d);
}

static void pipelined_mixed_rcpt(void **state)
{
	(void)state;
	pipelined_mixed_rcpt_run(0, 0);
}

static void pipelined_replies_bytewise(void **state)
{
	(void)state;
	pipelined_mixed_rcpt_run(0, 1);
}

static void partial_writes(void **state)
{
	(void)state;
	/* the driver writes 1, then 3, bytes at a time: same transcript */
	pipelined_mixed_rcpt_run(1, 0);
	pipelined_mixed_rcpt_run(3, 1);
}

static void unpipelined_one_at_a_time(void **state)
{
	(void)state;
	drv d;
	msv_smtp_options o = plain_opts();
	drv_ready(&d, &o, EHLO_BASIC);
	msv_envelope env = env_of(rcpt3, 3);
	begin_ok(&d, &env);
	SC(&d, NULL, "MAIL FROM:<alice@example.com>\r\n", MSV_SMTP_WANT_READ);
	SC(&d, "250 2.1.0 Ok\r\n", "RCPT TO:<bob@example.org>\r\n", MSV_SMTP_WANT_READ);
	SC(&d, "550 5.1.1 unknown\r\n", "RCPT TO:<carol@example.org>\r\n", MSV_SMTP_WANT_READ);
	SC(&d, "451 4.7.1 greylisted\r\n", "RCPT TO:<dave@example.org>\r\n", MSV_SMTP_WANT_READ);
	SC(&d, "250 2.1.5 Ok\r\n", "DATA\r\n", MSV_SMTP_WANT_READ);
	SC(&d, "354 go ahead\r\n", "", MSV_SMTP_WANT_BODY);
	expect_ev(&d, drv_body(&d, MSG, strlen(MSG), 0), MSV_SMTP_WANT_READ);
	drv_expect_out(&d, MSG ".\r\n");
	SC(&d, "250 2.0.0 queued\r\n", "", MSV_SMTP_TXN_DONE);
	const msv_smtp_txn *t = msv_smtp_result(d.s);
	assert_int_equal(t->accepted, 1);
	assert_int_equal(t->rcpt[0].accepted, 0);
	assert_int_equal(t->rcpt[0].reply.code, 550);
	assert_int_equal(t->rcpt[1].accepted, 0);
	assert_int_equal(t->rcpt[1].reply.code, 451);
	assert_int_equal(t->rcpt[2].accepted, 1);
	assert_int_equal(t->rcpt[2].reply.code, 250);
	SC(&d, NULL, "", MSV_SMTP_READY);
	drv_close(&d);
}

static void all_refused_unpipelined(void **state)
{
	(void)state;
	drv d;
	msv_smtp_options o = plain_opts();
	drv_ready(&d, &o, EHLO_BASIC);
	msv_envelope env = env_of(rcpt3, 2);
	begin_ok(&d, &env);
	SC(&d, NULL, "MAIL FROM:<alice@example.com>\r\n", MSV_SMTP_WANT_READ);
	SC(&d, "250 ok\r\n", "RCPT TO:<bob@example.org>\r\n", MSV_SMTP_WANT_READ);
	SC(&d, "550 5.1.1 no\r\n", "RCPT TO:<carol@example.org>\r\n", MSV_SMTP_WANT_READ);
	msv_smtp_event ev = drv_feeds(&d, "550 5.1.1 no\r\n");
	/* no DATA; an RSET to close the open transaction is fine */
	if (ev == MSV_SMTP_WANT_READ) {
		drv_expect_out(&d, "RSET\r\n");
		ev = drv_feeds(&d, "250 2.0.0 Ok\r\n");
	}
	expect_ev(&d, ev, MSV_SMTP_TXN_DONE);
	assert_false(drv_out_has(&d, "DATA"));
	const msv_smtp_txn *t = msv_smtp_result(d.s);
	assert_int_equal(t->accepted, 0);
	assert_int_equal(t->nrcpt, 2);
	assert_int_equal(t->rcpt[0].reply.code, 550);
	assert_int_equal(t->rcpt[1].reply.code, 550);
	assert_int_equal(t->data.code, 0);
	SC(&d, NULL, "", MSV_SMTP_READY);
	drv_close(&d);
}

static void all_refused_pipelined_354(void **state)
{
	(void)state;
	drv d;
	msv_smtp_options o = plain_opts();
	drv_ready(&d, &o, EHLO_PIPE);
	msv_envelope env = env_of(rcpt3, 2);
	begin_ok(&d, &env);
	SC(&d, NULL,
	   "MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.org>\r\n"
	   "RCPT TO:<carol@example.org>\r\nDATA\r\n",
	   MSV_SMTP_WANT_READ);
	/* a server that answers DATA with 354 though no recipient was
	 * accepted: the client ends the data at once (RFC 2920 3.1) */
	SC(&d, "250 ok\r\n550 5.1.1 no\r\n550 5.1.1 no\r\n354 go\r\n", ".\r\n",
	   MSV_SMTP_WANT_READ);
	SC(&d, "554 5.5.1 Error: no valid recipients\r\n", "", MSV_SMTP_TXN_DONE);
	const msv_smtp_txn *t = msv_smtp_result(d.s);
	assert_int_equal(t->accepted, 0);
	assert_int_equal(t->rcpt[0].accepted, 0);
	assert_int_equal(t->rcpt[1].accepted, 0);
	assert_int_equal(t->rcpt[0].reply.code, 550);
	SC(&d, NULL, "", MSV_SMTP_READY);
	drv_close(&d);
}

static void all_refused_pipelined_554(void **state)
{
	(void)state;
	drv d;
	msv_smtp_options o = plain_opts();
	drv_ready(&d, &o, EHLO_PIPE);
	msv_envelope env = env_of(rcpt3, 1);
	begin_ok(&d, &env);
	SC(&d, NULL, "MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n",
	   MSV_SMTP_WANT_READ);
	SC(&d, "250 ok\r\n550 5.1.1 no\r\n554 5.5.1 Error: no valid recipients\r\n", "",
	   MSV_SMTP_TXN_DONE);
	const msv_smtp_txn *t = msv_smtp_result(d.s);
	assert_int_equal(t->accepted, 0);
	assert_int_equal(t->rcpt[0].reply.code, 550);
	assert_false(drv_out_has(&d, "\r\n.\r\n"));
	SC(&d, NULL, "", MSV_SMTP_READY);
	drv_close(&d);
}

static void mail_refused(void **state)
{
	(void)state;
	/* pipelined: every RCPT and DATA gets 503 */
	drv d;
	msv_smtp_options o = plain_opts();
	drv_ready(&d, &o, EHLO_PIPE);
	msv_envelope env = env_of(rcpt3, 2);
	begin_ok(&d, &env);
	SC(&d, NULL,
	   "MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.org>\r\n"
	   "RCPT TO:<carol@example.org>\r\nDATA\r\n",
	   MSV_SMTP_WANT_READ);
	SC(&d,
	   "553 5.7.1 <alice@example.com>: Sender address rejected\r\n"
	   "503 5.5.1 Error: need MAIL command\r\n503 5.5.1 Error: need MAIL command\r\n"
	   "503 5.5.1 Error: need MAIL command\r\n",
	   "", MSV_SMTP_TXN_DONE);
	const msv_smtp_txn *t = msv_smtp_result(d.s);
	reply_eq(&t->mail, 553, "5.7.1", NULL);
	assert_int_equal(t->accepted, 0);
	assert_int_equal(t->rcpt[0].accepted, 0);
	assert_int_equal(t->rcpt[1].accepted, 0);
	SC(&d, NULL, "", MSV_SMTP_READY);
	drv_close(&d);

	/* one at a time: no RCPT after a refused MAIL */
	drv_ready(&d, &o, EHLO_BASIC);
	begin_ok(&d, &env);
	SC(&d, NULL, "MAIL FROM:<alice@example.com>\r\n", MSV_SMTP_WANT_READ);
	SC(&d, "452 4.3.1 Insufficient system storage\r\n", "", MSV_SMTP_TXN_DONE);
	t = msv_smtp_result(d.s);
	reply_eq(&t->mail, 452, "4.3.1", "Insufficient system storage");
	assert_int_equal(t->accepted, 0);
	assert_false(drv_out_has(&d, "RCPT"));
	SC(&d, NULL, "", MSV_SMTP_READY);
	drv_close(&d);
}

static void data_refused_after_body(void **state)
{
	(void)state;
	drv d;
	msv_smtp_options o = plain_opts();
	drv_ready(&d, &o, EHLO_PIPE);
	msv_envelope env = env_of(rcpt3, 2);
	begin_ok(&d, &env);
	SC(&d, NULL,
	   "MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.org>\r\n"
	   "RCPT TO:<carol@example.org>\r\nDATA\r\n",
	   MSV_SMTP_WANT_READ);
	SC(&d, "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n", "", MSV_SMTP_WANT_BODY);
	expect_ev(&d, drv_body(&d, MSG, strlen(MSG), 0), MSV_SMTP_WANT_READ);
	drv_expect_out(&d, MSG ".\r\n");
	SC(&d, "554 5.6.0 message content rejected\r\n", "", MSV_SMTP_TXN_DONE);
	const msv_smtp_txn *t = msv_smtp_result(d.s);
	reply_eq(&t->data, 554, "5.6.0", "message content rejected");
	/* the server took responsibility for nobody; each recipient carries
	 * the final reply */
	assert_int_equal(t->accepted, 0);
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(t->rcpt[i].accepted, 0);
		reply_eq(&t->rcpt[i].reply, 554, "5.6.0", "message content rejected");
	}
	SC(&d, NULL, "", MSV_SMTP_READY);
	drv_close(&d);
}

static void data_command_refused(void **state)
{
	(void)state;
	drv d;
	msv_smtp_options o = plain_opts();
	drv_ready(&d, &o, EHLO_BASIC);
	msv_envelope env = env_of(rcpt1, 1);
	begin_ok(&d, &env);
	SC(&d, NULL, "MAIL FROM:<alice@example.com>\r\n", MSV_SMTP_WANT_READ);
	SC(&d, "250 ok\r\n", "RCPT TO:<bob@example.org>\r\n", MSV_SMTP_WANT_READ);
	SC(&d, "250 ok\r\n", "DATA\r\n", MSV_SMTP_WANT_READ);
	SC(&d, "451 4.3.0 try later\r\n", "", MSV_SMTP_TXN_DONE);
	const msv_smtp_txn *t = msv_smtp_result(d.s);
	reply_eq(&t->data, 451, "4.3.0", "try later");
	assert_int_equal(t->accepted, 0);
	assert_int_equal(t->rcpt[0].accepted, 0);
	assert_int_equal(t->rcpt[0].reply.code, 451);
	SC(&d, NULL, "", MSV_SMTP_READY);
	drv_close(&d);
}

/* After a transaction the server still holds open (MAIL accepted, no
 * final reply to the data), the next MAIL needs an RSET first, or the
 * server answers "503 nested MAIL command" and every recipient of the
 * next message is refused permanently (RFC 5321 4.1.1.5, 3.3). */
static void expect_rset_before_next_mail_at(const char *file, int line, drv *d, size_t mark)
{
	msv_smtp_event ev = d->last;
	if (ev == MSV_SMTP_WANT_READ) { /* an RSET went out at once */
		ev = drv_feeds(d, "250 2.0.0 Ok\r\n");
	}
	if (ev == MSV_SMTP_TXN_DONE)
		ev = drv_run(d);
	expect_ev_at(file, line, d, ev, MSV_SMTP_READY);
	msv_envelope env = env_of(rcpt1, 1);
	begin_ok_at(file, line, d, &env);
	ev = drv_run(d);
	const char *out = d->out.data + mark;
	size_t n = d->out.len - mark;
	const char *mail = mem_find(out, n, "MAIL FROM", 9);
	if (!mail && ev == MSV_SMTP_WANT_READ) { /* RSET first, one at a time */
		ev = drv_feeds(d, "250 2.0.0 Ok\r\n");
		out = d->out.data + mark;
		n = d->out.len - mark;
		mail = mem_find(out, n, "MAIL FROM", 9);
	}
	const char *rset = mem_find(out, n, "RSET\r\n", 6);
	if (!mail || !rset || rset > mail) {
		char e[2048];
		print_error("%s:%d: no RSET before the next MAIL: client wrote \"%s\"\n", file, line,
		            esc(e, sizeof(e), out, n));
		fail();
	}
	d->seen = d->out.len;
}
#define expect_rset_before_next_mail(d, mark) \
	expect_rset_before_next_mail_at(__FILE__, __LINE__, d, mark)

static void rset_after_all_rcpt_refused(void **state)
{
	(void)state;
	/* one at a time, every RCPT refused: no DATA, MAIL still open */
	drv d;
	msv_smtp_options o = plain_opts();
	drv_ready(&d, &o, EHLO_BASIC);
	msv_envelope env = env_of(rcpt3, 2);
	begin_ok(&d, &env);
	SC(&d, NULL, "MAIL FROM:<alice@example.com>\r\n", MSV_SMTP_WANT_READ);
	SC(&d, "250 ok\r\n", "RCPT TO:<bob@example.org>\r\n", MSV_SMTP_WANT_READ);
	SC(&d, "550 5.1.1 no\r\n", "RCPT TO:<carol@example.org>\r\n", MSV_SMTP_WANT_READ);
	size_t mark = d.out.len;
	drv_feeds(&d, "550 5.1.1 no\r\n");
	expect_rset_before_next_mail(&d, mark);
	drv_close(&d);
}

static void rset_after_pipelined_data_refused(void **state)
{
	(void)state;
	/* pipelined, DATA refused for want of recipients */
	drv d;
	msv_smtp_options o = plain_opts();
	drv_ready(&d, &o, EHLO_PIPE);
	msv_envelope env = env_of(rcpt3, 1);
	begin_ok(&d, &env);
	SC(&d, NULL, "MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n",
	   MSV_SMTP_WANT_READ);
	size_t mark = d.out.len;
	drv_feeds(&d, "250 ok\r\n550 5.1.1 no\r\n554 5.5.1 Error: no valid recipients\r\n");
	expect_rset_before_next_mail(&d, mark);
	drv_close(&d);
}

static void rset_after_data_command_refused(void **state)
{
	(void)state;
	/* DATA itself refused, recipients accepted */
	drv d;
	msv_smtp_options o = plain_opts();
	drv_ready(&d, &o, EHLO_BASIC);
	msv_envelope env = env_of(rcpt1, 1);
	begin_ok(&d, &env);
	SC(&d, NULL, "MAIL FROM:<alice@example.com>\r\n", MSV_SMTP_WANT_READ);
	SC(&d, "250 ok\r\n", "RCPT TO:<bob@example.org>\r\n", MSV_SMTP_WANT_READ);
	SC(&d, "250 ok\r\n", "DATA\r\n", MSV_SMTP_WANT_READ);
	size_t mark = d.out.len;
	drv_feeds(&d, "451 4.3.0 try later\r\n");
	expect_rset_before_next_mail(&d, mark);
	drv_close(&d);
}

static void reply_421_mid_envelope(void **state)
{
	(void)state;
	/* 421 to any command: the server is closing; the session fails as
	 * temporary (RFC 5321 3.8) */
	drv d;
	msv_smtp_options o = plain_opts();
	drv_ready(&d, &o, EHLO_PIPE);
	msv_envelope env = env_of(rcpt3, 3);
	begin_ok(&d, &env);
	SC(&d, NULL,
	   "MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.org>\r\n"
	   "RCPT TO:<carol@example.org>\r\nRCPT TO:<dave@example.org>\r\nDATA\r\n",
	   MSV_SMTP_WANT_READ);
	expect_ev(&d, drv_feeds(&d, "250 ok\r\n250 ok\r\n421 4.7.0 mx closing connection\r\n"),
	          MSV_SMTP_FAILED);
	const msv_error *e = msv_smtp_error(d.s);
	assert_int_equal(e->cls, MSV_CLASS_TEMPORARY);
	assert_int_equal(e->reply_code, 421);
	assert_string_equal(e->enhanced, "4.7.0");
	drv_close(&d);
}

/* ---- MAIL and RCPT parameters ---- */

static void size_param_and_refusal(void **state)
{
	(void)state;
	const char *ehlo = "250-mx.example.net\r\n250 SIZE 1000\r\n";
	drv d;
	msv_smtp_options o = plain_opts();
	drv_ready(&d, &o, ehlo);
	assert_int_equal(msv_smtp_caps_get(d.s)->size_max, 1000);
	msv_envelope env = env_of(rcpt1, 1);
	env.size = 5000;
	assert_int_equal(msv_smtp_begin(d.s, &env), MSV_E_MSG_TOO_BIG);
	expect_err(&d, MSV_E_MSG_TOO_BIG, MSV_CLASS_PERMANENT);
	SC(&d, NULL, "", MSV_SMTP_READY);
	assert_int_equal(d.out.len, strlen("EHLO client.example\r\n"));
	env.size = 1001;
	assert_int_equal(msv_smtp_begin(d.s, &env), MSV_E_MSG_TOO_BIG);
	SC(&d, NULL, "", MSV_SMTP_READY);
	/* exactly the limit is fine, and SIZE= is declared */
	env.size = 1000;
	begin_ok(&d, &env);
	SC(&d, NULL, "MAIL FROM:<alice@example.com> SIZE=1000\r\n", MSV_SMTP_WANT_READ);
	drv_close(&d);

	/* size unknown: no SIZE= */
	drv_ready(&d, &o, ehlo);
	env.size = 0;
	begin_ok(&d, &env);
	SC(&d, NULL, "MAIL FROM:<alice@example.com>\r\n", MSV_SMTP_WANT_READ);
	drv_close(&d);

	/* SIZE without a limit: any size, declared */
	drv_ready(&d, &o, "250-mx.example.net\r\n250 SIZE\r\n");
	env.size = UINT64_C(123456789012);
	begin_ok(&d, &env);
	SC(&d, NULL, "MAIL FROM:<alice@example.com> SIZE=123456789012\r\n", MSV_SMTP_WANT_READ);
	drv_close(&d);

	/* SIZE not offered: never declared, never refused */
	drv_ready(&d, &o, EHLO_BASIC);
	env.size = 5000;
	begin_ok(&d, &env);
	SC(&d, NULL, "MAIL FROM:<alice@example.com>\r\n", MSV_SMTP_WANT_READ);
	drv_close(&d);
}

static void body_8bitmime(void **state)
{
	(void)state;
	drv d;
	msv_smtp_options o = plain_opts();
	drv_ready(&d, &o, "250-mx.example.net\r\n250 8BITMIME\r\n");
	msv_envelope env = env_of(rcpt1, 1);
	env.body_8bit = 1;
	begin_ok(&d, &env);
	SC(&d, NULL, "MAIL FROM:<alice@example.com> BODY=8BITMIME\r\n", MSV_SMTP_WANT_READ);
	drv_close(&d);

	/* 7-bit message: no BODY= */
	drv_ready(&d, &o, "250-mx.example.net\r\n250 8BITMIME\r\n");
	env.body_8bit = 0;
	begin_ok(&d, &env);
	SC(&d, NULL, "MAIL FROM:<alice@example.com>\r\n", MSV_SMTP_WANT_READ);
	drv_close(&d);

	/* not offered: refused before anything is sent */
	drv_ready(&d, &o, "250-mx.example.net\r\n250 PIPELINING\r\n");
	env.body_8bit = 1;
	assert_int_equal(msv_smtp_begin(d.s, &env), MSV_E_NO_8BITMIME);
	assert_int_equal(msv_smtp_error(d.s)->code, MSV_E_NO_8BITMIME);
	SC(&d, NULL, "", MSV_SMTP_READY);
	/* the session is still usable */
	env.body_8bit = 0;
	begin_ok(&d, &env);
	SC(&d, NULL, "MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n",
	   MSV_SMTP_WANT_READ);
	drv_close(&d);
}

static void smtputf8(void **state)
{
	(void)state;
	static const char *const utf8_rcpt[] = {"\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.test"};
	drv d;
	msv_smtp_options o = plain_opts();
	drv_ready(&d, &o, "250-mx.example.net\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n");
	msv_envelope env = env_of(utf8_rcpt, 1);
	begin_ok(&d, &env);
	SC(&d, NULL, "MAIL FROM:<alice@example.com> SMTPUTF8\r\n", MSV_SMTP_WANT_READ);
	SC(&d, "250 ok\r\n", "RCPT TO:<\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.test>\r\n",
	   MSV_SMTP_WANT_READ);
	drv_close(&d);

	/* a UTF-8 sender, and a message flagged smtputf8 with ASCII addresses */
	drv_ready(&d, &o, "250-mx.example.net\r\n250 SMTPUTF8\r\n");
	env = env_of(rcpt1, 1);
	env.from = "j\xc3\xb6ran@example.com";
	begin_ok(&d, &env);
	SC(&d, NULL, "MAIL FROM:<j\xc3\xb6ran@example.com> SMTPUTF8\r\n", MSV_SMTP_WANT_READ);
	drv_close(&d);
	drv_ready(&d, &o, "250-mx.example.net\r\n250 SMTPUTF8\r\n");
	env = env_of(rcpt1, 1);
	env.smtputf8 = 1;
	begin_ok(&d, &env);
	SC(&d, NULL, "MAIL FROM:<alice@example.com> SMTPUTF8\r\n", MSV_SMTP_WANT_READ);
	drv_close(&d);

	/* not offered */
	drv_ready(&d, &o, "250-mx.example.net\r\n250 8BITMIME\r\n");
	env = env_of(utf8_rcpt, 1);
	assert_int_equal(msv_smtp_begin(d.s, &env), MSV_E_NO_SMTPUTF8);
	SC(&d, NULL, "", MSV_SMTP_READY);
	env = env_of(rcpt1, 1);
	env.smtputf8 = 1;
	assert_int_equal(msv_smtp_begin(d.s, &env), MSV_E_NO_SMTPUTF8);
	SC(&d, NULL, "", MSV_SMTP_READY);
	env = env_of(rcpt1, 1);
	env.from = "j\xc3\xb6ran@example.com";
	assert_int_equal(msv_smtp_begin(d.s, &env), MSV_E_NO_SMTPUTF8);
	SC(&d, NULL, "", MSV_SMTP_READY);
	assert_int_equal(d.out.len, strlen("EHLO client.example\r\n"));
	drv_close(&d);
}

static void dsn_params(void **state)
{
	(void)state;
	static const char *const rc[] = {"bob+tag@example.org", "carol@example.org"};
	drv d;
	msv_smtp_options o = plain_opts();
	drv_ready(&d, &o, "250-mx.example.net\r\n250-PIPELINING\r\n250 DSN\r\n");
	msv_envelope env = env_of(rc, 2);
	env.dsn_notify = "SUCCESS,FAILURE";
	env.dsn_ret = "HDRS";
	env.envid = "QQ314159";
	begin_ok(&d, &env);
	/* ORCPT is xtext (RFC 3461 4): "+" becomes "+2B" */
	SC(&d, NULL,
	   "MAIL FROM:<alice@example.com> RET=HDRS ENVID=QQ314159\r\n"
	   "RCPT TO:<bob+tag@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob+2Btag@example.org\r\n"
	   "RCPT TO:<carol@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;carol@example.org\r\n"
	   "DATA\r\n",
	   MSV_SMTP_WANT_READ);
	drv_close(&d);

	/* NEVER, RET=FULL, an ENVID that needs xtext */
	drv_ready(&d, &o, "250-mx.example.net\r\n250 DSN\r\n");
	env = env_of(rcpt1, 1);
	env.dsn_notify = "NEVER";
	env.dsn_ret = "FULL";
	env.envid = "id=1+2";
	begin_ok(&d, &env);
	SC(&d, NULL, "MAIL FROM:<alice@example.com> RET=FULL ENVID=id+3D1+2B2\r\n",
	   MSV_SMTP_WANT_READ);
	SC(&d, "250 ok\r\n",
	   "RCPT TO:<bob@example.org> NOTIFY=NEVER ORCPT=rfc822;bob@example.org\r\n",
	   MSV_SMTP_WANT_READ);
	drv_close(&d);

	/* DSN not offered: no DSN parameters at all */
	drv_ready(&d, &o, EHLO_PIPE);
	env = env_of(rc, 2);
	env.dsn_notify = "SUCCESS,FAILURE";
	env.dsn_ret = "HDRS";
	env.envid = "QQ314159";
	begin_ok(&d, &env);
	SC(&d, NULL,
	   "MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob+tag@example.org>\r\n"
	   "RCPT TO:<carol@example.org>\r\nDATA\r\n",
	   MSV_SMTP_WANT_READ);
	drv_close(&d);

	/* DSN offered, nothing asked: no parameters */
	drv_ready(&d, &o, "250-mx.example.net\r\n250-PIPELINING\r\n250 DSN\r\n");
	env = env_of(rcpt1, 1);
	begin_ok(&d, &env);
	SC(&d, NULL, "MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n",
	   MSV_SMTP_WANT_READ);
	drv_close(&d);
}

static void all_params_together(void **state)
{
	(void)state;
	drv d;
	msv_smtp_options o = plain_opts();
	drv_ready(&d, &o,
	          "250-mx.example.net\r\n250-PIPELINING\r\n250-SIZE 100000\r\n250-8BITMIME\r\n"
	          "250-SMTPUTF8\r\n250 DSN\r\n");
	msv_envelope env = env_of(rcpt1, 1);
	env.size = 4321;
	env.body_8bit = 1;
	env.smtputf8 = 1;
	env.dsn_ret = "HDRS";
	env.envid = "abc";
	env.dsn_notify = "DELAY";
	begin_ok(&d, &env);
	SC(&d, NULL,
	   "MAIL FROM:<alice@example.com> SIZE=4321 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=abc\r\n"
	   "RCPT TO:<bob@example.org> NOTIFY=DELAY ORCPT=rfc822;bob@example.org\r\nDATA\r\n",
	   MSV_SMTP_WANT_READ);
	drv_close(&d);
}

static void null_sender(void **state)
{
	(void)state;
	drv d;
	msv_smtp_options o = plain_opts();
	drv_ready(&d, &o, EHLO_BASIC);
	msv_envelope env = env_of(rcpt1, 1);
	env.from = "";
	begin_ok(&d, &env);
	SC(&d, NULL, "MAIL FROM:<>\r\n", MSV_SMTP_WANT_READ);
	drv_close(&d);
}

static void bad_addresses(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"bob@example.org\r\nRCPT TO:<evil@example.net>",
		"bob@example.org\nDATA",
		"bob\r@example.org",
		"bob @example.org",
		"bob@example.org SIZE=1",
		"<bob@example.org>",
		"bob@example.org>",
		"bob<@example.org",
		"bob@example.org> NOTIFY=NEVER",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		for (int where = 0; where < 3; where++) {
			drv d;
			msv_smtp_options o = plain_opts();
			drv_ready(&d, &o, EHLO_PIPE);
			const char *rc[2] = {"ok@example.org", "ok2@example.org"};
			msv_envelope env = env_of(rc, 2);
			if (where == 0)
				env.from = bad[i];
			else
				rc[where - 1] = bad[i];
			msv_result r = msv_smtp_begin(d.s, &env);
			if (r != MSV_E_BAD_ADDRESS) {
				char e[256];
				fail_msg("address \"%s\" (%s) gave %s", esc(e, sizeof(e), bad[i], strlen(bad[i])),
				         where ? "rcpt" : "from", msv_result_name(r));
			}
			assert_int_equal(msv_smtp_error(d.s)->code, MSV_E_BAD_ADDRESS);
			SC(&d, NULL, "", MSV_SMTP_READY);
			drv_close(&d);
		}
	}
}

static void begin_arguments(void **state)
{
	(void)state;
	drv d;
	msv_smtp_options o = plain_opts();
	drv_ready(&d, &o, EHLO_PIPE);
	/* no recipients */
	msv_envelope env = env_of(rcpt1, 0);
	assert_int_not_equal(msv_smtp_begin(d.s, &env), MSV_OK);
	SC(&d, NULL, "", MSV_SMTP_READY);
	/* an empty forward path is not an address */
	static const char *const empty[] = {""};
	env = env_of(empty, 1);
	assert_int_equal(msv_smtp_begin(d.s, &env), MSV_E_BAD_ADDRESS);
	SC(&d, NULL, "", MSV_SMTP_READY);
	/* begin while a transaction is running */
	env = env_of(rcpt1, 1);
	begin_ok(&d, &env);
	assert_int_equal(msv_smtp_begin(d.s, &env), MSV_E_STATE);
	/* body before WANT_BODY */
	assert_int_equal(msv_smtp_body(d.s, "x", 1), MSV_E_STATE);
	assert_int_equal(msv_smtp_body_end(d.s), MSV_E_STATE);
	SC(&d, NULL, "MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n",
	   MSV_SMTP_WANT_READ);
	drv_close(&d);

	/* begin before READY */
	drv_open(&d, &o);
	assert_int_equal(msv_smtp_begin(d.s, &env), MSV_E_STATE);
	assert_int_equal(msv_smtp_noop(d.s), MSV_E_STATE);
	SC(&d, NULL, "", MSV_SMTP_WANT_READ);
	drv_close(&d);
}

/* ---- BDAT ---- */

/* Parses "BDAT n[ LAST]\r\n" + n bytes, repeated, from p.  Returns the
 * number of complete chunks; data collects their bytes; *last is set if
 * the final complete chunk carried LAST.  Fails on anything else. */
static size_t parse_bdat(const char *p, size_t n, msv_buf *data, int *last, size_t *used,
                         size_t *biggest)
{
	size_t off = 0, chunks = 0;
	*last = 0;
	*biggest = 0;
	msv_buf_reset(data);
	while (off < n) {
		const char *eol = mem_find(p + off, n - off, "\r\n", 2);
		if (!eol)
			break;
		size_t ll = (size_t)(eol - (p + off));
		char cmd[64];
		assert_true(ll < sizeof(cmd));
		memcpy(cmd, p + off, ll);
		cmd[ll] = '\0';
		unsigned long long sz = 0;
		int pos = 0;
		assert_int_equal(strncmp(cmd, "BDAT ", 5), 0);
		for (pos = 5; cmd[pos] >= '0' && cmd[pos] <= '9'; pos++)
			sz = sz * 10 + (unsigned long long)(cmd[pos] - '0');
		assert_true(pos > 5);
		int is_last = 0;
		if (!strcmp(cmd + pos, " LAST"))
			is_last = 1;
		else
			assert_string_equal(cmd + pos, "");
		if (n - off - ll - 2 < sz)
			break;
		assert_false(*last); /* nothing after LAST */
		assert_int_equal(msv_buf_add(data, eol + 2, (size_t)sz), MSV_OK);
		if (sz > *biggest)
			*biggest = (size_t)sz;
		off += ll + 2 + (size_t)sz;
		chunks++;
		*last = is_last;
	}
	*used = off;
	return chunks;
}

/* Runs one BDAT transaction with body, answering every chunk with 250;
 * returns the concatenated chunk data in *data. */
static void bdat_run(const char *ehlo, const msv_smtp_options *o, const char *body, size_t len,
                     size_t step, msv_buf *data, size_t *nchunks, size_t *biggest)
{
	drv d;
	drv_ready(&d, o, ehlo);
	msv_envelope env = env_of(rcpt1, 1);
	begin_ok(&d, &env);
	int pipe = (msv_smtp_caps_get(d.s)->flags & MSV_CAP_PIPELINING) != 0;
	if (pipe) {
		SC(&d, NULL, "MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.org>\r\n",
		   MSV_SMTP_WANT_READ);
		SC(&d, "250 ok\r\n250 ok\r\n", "", MSV_SMTP_WANT_BODY);
	} else {
		SC(&d, NULL, "MAIL FROM:<alice@example.com>\r\n", MSV_SMTP_WANT_READ);
		SC(&d, "250 ok\r\n", "RCPT TO:<bob@example.org>\r\n", MSV_SMTP_WANT_READ);
		SC(&d, "250 ok\r\n", "", MSV_SMTP_WANT_BODY);
	}
	assert_false(drv_out_has(&d, "DATA"));
	size_t start = d.out.len;
	size_t answered = 0;
	int last = 0;
	size_t used = 0;
	msv_smtp_event ev = d.last;
	size_t off = 0;
	int ended = 0;
	for (int guard = 0; guard < 100000; guard++) {
		size_t chunks =
			parse_bdat(d.out.data + start, d.out.len - start, data, &last, &used, biggest);
		if (ev == MSV_SMTP_WANT_READ) {
			assert_true(answered < chunks); /* waiting for a reply to a chunk */
			answered++;
			ev = drv_feed(&d, last && answered == chunks ? "250 2.0.0 Ok: queued\r\n"
			                                             : "250 2.0.0 Ok\r\n",
			              last && answered == chunks ? 22 : 14);
			continue;
		}
		if (ev == MSV_SMTP_TXN_DONE) {
			assert_true(ended);
			assert_int_equal(answered, chunks);
			assert_true(last);
			assert_int_equal(used, d.out.len - start); /* nothing but chunks */
			*nchunks = chunks;
			break;
		}
		expect_ev(&d, ev, MSV_SMTP_WANT_BODY);
		assert_false(ended);
		if (off < len) {
			size_t n = step && step < len - off ? step : len - off;
			assert_int_equal(msv_smtp_body(d.s, body + off, n), MSV_OK);
			off += n;
		} else {
			assert_int_equal(msv_smtp_body_end(d.s), MSV_OK);
			ended = 1;
		}
		ev = drv_run(&d);
	}
	expect_ev(&d, ev, MSV_SMTP_TXN_DONE);
	const msv_smtp_txn *t = msv_smtp_result(d.s);
	assert_int_equal(t->accepted, 1);
	assert_int_equal(t->data.code, 250);
	d.seen = d.out.len; /* checked by parse_bdat */
	SC(&d, NULL, "", MSV_SMTP_READY);
	drv_close(&d);
}

static void bdat_chunking(void **state)
{
	(void)state;
	/* not dot-stuffed, line ends normalized, exact octet counts */
	const char *body = "Subject: x\n\n.dot line\r\n\r\n.\r\nbare\rcr\n..two";
	const char *want = "Subject: x\r\n\r\n.dot line\r\n\r\n.\r\nbare\r\ncr\r\n..two\r\n";
	msv_smtp_options o = plain_opts();
	static const char *const ehlos[] = {
		"250-mx.example.net\r\n250-PIPELINING\r\n250 CHUNKING\r\n",
		"250-mx.example.net\r\n250 CHUNKING\r\n",
	};
	for (size_t e = 0; e < 2; e++) {
		for (size_t step = 0; step < 2; step++) {
			msv_buf data;
			msv_buf_init(&data, 1 << 20);
			size_t chunks = 0, biggest = 0;
			bdat_run(ehlos[e], &o, body, strlen(body), step, &data, &chunks, &biggest);
			assert_int_equal(data.len, strlen(want));
			assert_memory_equal(data.data, want, data.len);
			msv_buf_free(&data);
		}
	}
	/* the whole small message in one "BDAT n LAST" */
	drv d;
	drv_ready(&d, &o, "250-mx.example.net\r\n250-PIPELINING\r\n250 CHUNKING\r\n");
	msv_envelope env = env_of(rcpt1, 1);
	begin_ok(&d, &env);
	SC(&d, NULL, "MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.org>\r\n",
	   MSV_SMTP_WANT_READ);
	SC(&d, "250 ok\r\n250 ok\r\n", "", MSV_SMTP_WANT_BODY);
	assert_int_equal(msv_smtp_body(d.s, "Hi.\r\n.\r\n", 8), MSV_OK);
	msv_smtp_event ev = drv_run(&d);
	expect_ev(&d, ev, MSV_SMTP_WANT_BODY);
	assert_int_equal(msv_smtp_body_end(d.s), MSV_OK);
	SC(&d, NULL, "BDAT 8 LAST\r\nHi.\r\n.\r\n", MSV_SMTP_WANT_READ);
	SC(&d, "250 2.0.0 Ok: 8 octets\r\n", "", MSV_SMTP_TXN_DONE);
	drv_close(&d);
}

static void bdat_small_chunks(void **state)
{
	(void)state;
	msv_smtp_options o = plain_opts();
	o.bdat_chunk = 10;
	char body[100], want[200];
	size_t wl = 0;
	for (int i = 0; i < 99; i++) {
		body[i] = (i % 9 == 8) ? '\n' : (char)('a' + i % 26);
		if (body[i] == '\n')
			want[wl++] = '\r';
		want[wl++] = body[i];
	}
	body[99] = '\0';
	if (want[wl - 1] != '\n') {
		want[wl++] = '\r';
		want[wl++] = '\n';
	}
	static const char *const ehlos[] = {
		"250-mx.example.net\r\n250-PIPELINING\r\n250 CHUNKING\r\n",
		"250-mx.example.net\r\n250 CHUNKING\r\n",
	};
	for (size_t e = 0; e < 2; e++) {
		for (size_t step = 0; step < 3; step++) {
			msv_buf data;
			msv_buf_init(&data, 1 << 20);
			size_t chunks = 0, biggest = 0;
			bdat_run(ehlos[e], &o, body, 99, step * 7, &data, &chunks, &biggest);
			assert_int_equal(data.len, wl);
			assert_memory_equal(data.data, want, wl);
			/* 110 octets in chunks of at most bdat_chunk, however the
			 * body was handed in ("BDAT chunk size", smtp.h) */
			if (biggest > o.bdat_chunk)
				fail_msg("body in pieces of %zu: a BDAT chunk of %zu octets, bdat_chunk %zu",
				         step * 7, biggest, o.bdat_chunk);
			assert_true(chunks >= wl / 10);
			msv_buf_free(&data);
		}
	}
}

/* ---- AUTH ---- */

#define TIM "tim"
#define TIM_PW "tanstaaftanstaaf"
#define TIM_PLAIN_B64 "AHRpbQB0YW5zdGFhZnRhbnN0YWFm"
#define TIM_B64 "dGlt"
#define TIM_PW_B64 "dGFuc3RhYWZ0YW5zdGFhZg=="
#define CRAM_CHALLENGE "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+"
#define CRAM_RESPONSE "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw"
#define XO_USER "someuser@example.com"
#define XO_TOKEN "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"
#define XO_TOKEN_B64 "eWEyOS52RjlkZnQ0cW1UYzJOdmIzUmxja0JoZEhSaGRtbHpkR0V1WTI5dENn"
#define XO_B64                                                                           \
	"dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNr" \
	"QmhkSFJoZG1semRHRXVZMjl0Q2cBAQ=="

static void no_secret_in_trace(const drv *d)
{
	static const char *const secrets[] = {
		TIM_PW, TIM_PW_B64, TIM_PLAIN_B64, CRAM_RESPONSE, XO_TOKEN, XO_TOKEN_B64, XO_B64,
		"b913a602c7eda7a495b4e6e7334d3890",
	};
	assert_true(d->ntrace > 0);
	assert_false(d->trace_bad);
	for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
		if (drv_trace_has(d, secrets[i]))
			fail_msg("trace holds \"%s\":\n%s", secrets[i], d->trace.data);
}

static msv_smtp_options auth_opts(msv_auth_mech m)
{
	msv_smtp_options o = plain_opts();
	o.tls = MSV_TLS_STARTTLS;
	o.user = TIM;
	o.secret = TIM_PW;
	o.auth = m;
	return o;
}

#define EHLO_AUTH "250-mx.example.net\r\n250-PIPELINING\r\n250 AUTH LOGIN PLAIN CRAM-MD5\r\n"

static void auth_plain(void **state)
{
	(void)state;
	drv d;
	msv_smtp_options o = auth_opts(MSV_AUTH_PLAIN);
	tls_until_second_ehlo(&d, &o);
	SC(&d, EHLO_AUTH, "AUTH PLAIN " TIM_PLAIN_B64 "\r\n", MSV_SMTP_WANT_READ);
	SC(&d, "235 2.7.0 Authentication successful\r\n", "", MSV_SMTP_READY);
	no_secret_in_trace(&d);
	drv_close(&d);

	/* AUTO over TLS picks PLAIN */
	o = auth_opts(MSV_AUTH_AUTO);
	tls_until_second_ehlo(&d, &o);
	SC(&d, "250-mx.example.net\r\n250 AUTH CRAM-MD5 LOGIN PLAIN\r\n",
	   "AUTH PLAIN " TIM_PLAIN_B64 "\r\n", MSV_SMTP_WANT_READ);
	SC(&d, "235 2.7.0 ok\r\n", "", MSV_SMTP_READY);
	no_secret_in_trace(&d);
	drv_close(&d);

	/* the legacy "AUTH=" line alone is enough */
	tls_until_second_ehlo(&d, &o);
	SC(&d, "250-mx.example.net\r\n250 AUTH=PLAIN\r\n", "AUTH PLAIN " TIM_PLAIN_B64 "\r\n",
	   MSV_SMTP_WANT_READ);
	SC(&d, "235 ok\r\n", "", MSV_SMTP_READY);
	drv_close(&d);
}

static void auth_login(void **state)
{
	(void)state;
	drv d;
	msv_smtp_options o = auth_opts(MSV_AUTH_LOGIN);
	tls_until_second_ehlo(&d, &o);
	SC(&d, EHLO_AUTH, "AUTH LOGIN\r\n", MSV_SMTP_WANT_READ);
	SC(&d, "334 VXNlcm5hbWU6\r\n", TIM_B64 "\r\n", MSV_SMTP_WANT_READ);
	SC(&d, "334 UGFzc3dvcmQ6\r\n", TIM_PW_B64 "\r\n", MSV_SMTP_WANT_READ);
	SC(&d, "235 2.7.0 Authentication successful\r\n", "", MSV_SMTP_READY);
	no_secret_in_trace(&d);
	drv_close(&d);
}

static void auth_cram_md5(void **state)
{
	(void)state;
	/* RFC 2195 section 2's example */
	drv d;
	msv_smtp_options o = auth_opts(MSV_AUTH_CRAM_MD5);
	tls_until_second_ehlo(&d, &o);
	SC(&d, EHLO_AUTH, "AUTH CRAM-MD5\r\n", MSV_SMTP_WANT_READ);
	SC(&d, "334 " CRAM_CHALLENGE "\r\n", CRAM_RESPONSE "\r\n", MSV_SMTP_WANT_READ);
	SC(&d, "235 2.7.0 Authentication successful\r\n", "", MSV_SMTP_READY);
	no_secret_in_trace(&d);
	drv_close(&d);

	/* AUTO without TLS (allowed by name) prefers CRAM-MD5 */
	o = plain_opts();
	o.user = TIM;
	o.secret = TIM_PW;
	o.allow_plaintext_auth = 1;
	drv_open(&d, &o);
	SC(&d, GREETING, "EHLO client.example\r\n", MSV_SMTP_WANT_READ);
	SC(&d, "250-mx.example.net\r\n250 AUTH PLAIN LOGIN CRAM-MD5\r\n", "AUTH CRAM-MD5\r\n",
	   MSV_SMTP_WANT_READ);
	SC(&d, "334 " CRAM_CHALLENGE "\r\n", CRAM_RESPONSE "\r\n", MSV_SMTP_WANT_READ);
	SC(&d, "235 ok\r\n", "", MSV_SMTP_READY);
	no_secret_in_trace(&d);
	drv_close(&d);

	/* a challenge that is not base64 */
	o = auth_opts(MSV_AUTH_CRAM_MD5);
	tls_until_second_ehlo(&d, &o);
	SC(&d, EHLO_AUTH, "AUTH CRAM-MD5\r\n", MSV_SMTP_WANT_READ);
	msv_smtp_event ev = drv_feeds(&d, "334 not*base64\r\n");
	/* either the client cancels the exchange ("*") or fails at once */
	if (ev == MSV_SMTP_WANT_READ) {
		drv_expect_out(&d, "*\r\n");
		ev = drv_feeds(&d, "501 5.7.0 cancelled\r\n");
	}
	expect_ev(&d, ev, MSV_SMTP_FAILED);
	assert_false(drv_out_has(&d, TIM_PW));
	drv_close(&d);
}

static void auth_xoauth2(void **state)
{
	(void)state;
	drv d;
	msv_smtp_options o = auth_opts(MSV_AUTH_AUTO);
	o.user = XO_USER;
	o.secret = XO_TOKEN;
	o.auth_token = 1;
	tls_until_second_ehlo(&d, &o);
	/* XOAUTH2 when it is the only bearer mechanism offered */
	SC(&d, "250-mx.example.net\r\n250 AUTH LOGIN PLAIN XOAUTH2\r\n",
	   "AUTH XOAUTH2 " XO_B64 "\r\n", MSV_SMTP_WANT_READ);
	SC(&d, "235 2.7.0 Accepted\r\n", "", MSV_SMTP_READY);
	no_secret_in_trace(&d);
	drv_close(&d);

	/* refused token: the server's JSON challenge, an empty answer, 535 */
	o.auth = MSV_AUTH_XOAUTH2;
	tls_until_second_ehlo(&d, &o);
	SC(&d, "250-mx.example.net\r\n250 AUTH XOAUTH2\r\n", "AUTH XOAUTH2 " XO_B64 "\r\n",
	   MSV_SMTP_WANT_READ);
	SC(&d,
	   "334 eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIiwic2NvcGUiOiJodHRwczovL21haWwuZ29v"
	   "Z2xlLmNvbS8ifQ==\r\n",
	   "\r\n", MSV_SMTP_WANT_READ);
	expect_ev(&d, drv_feeds(&d, "535-5.7.8 Username and Password not accepted.\r\n535 5.7.8 Learn more\r\n"),
	          MSV_SMTP_FAILED);
	expect_err(&d, MSV_E_AUTH_FAILED, MSV_CLASS_PERMANENT);
	assert_int_equal(msv_smtp_error(d.s)->reply_code, 535);
	/* the driver refreshes the token once: it knows from this */
	assert_true(msv_smtp_token_refused(d.s));
	assert_non_null(strstr(msv_smtp_error(d.s)->server_text, "status=401"));
	no_secret_in_trace(&d);
	drv_close(&d);

	/* a plain 535 without the challenge is not a refused token */
	tls_until_second_ehlo(&d, &o);
	SC(&d, "250-mx.example.net\r\n250 AUTH XOAUTH2\r\n", "AUTH XOAUTH2 " XO_B64 "\r\n",
	   MSV_SMTP_WANT_READ);
	expect_ev(&d, drv_feeds(&d, "535 5.7.8 no\r\n"), MSV_SMTP_FAILED);
	expect_err(&d, MSV_E_AUTH_FAILED, MSV_CLASS_PERMANENT);
	assert_false(msv_smtp_token_refused(d.s));
	drv_close(&d);

	/* a token, but no XOAUTH2 offered: never sent as a password */
	o.auth = MSV_AUTH_AUTO;
	tls_until_second_ehlo(&d, &o);
	expect_ev(&d, drv_feed(&d, EHLO_AUTH, strlen(EHLO_AUTH)), MSV_SMTP_FAILED);
	/* permanent: retrying the same server will not add XOAUTH2 */
	expect_err(&d, MSV_E_NO_AUTH_MECH, MSV_CLASS_PERMANENT);
	assert_false(drv_out_has(&d, "AUTH"));
	drv_close(&d);
}

#define OB_B64                                                                           \
	"bixhPXNvbWV1c2VyQGV4YW1wbGUuY29tLAFob3N0PXNtdHAuZXhhbXBsZS5jb20BcG9ydD01ODcBYXV0aD1C" \
	"ZWFyZXIgeWEyOS52RjlkZnQ0cW1UYzJOdmIzUmxja0JoZEhSaGRtbHpkR0V1WTI5dENnAQE="

/* RFC 7628 3.1: "n,a=USER," ^A host ^A port ^A auth ^A ^A; preferred by
 * AUTO with a token; the error challenge is answered with ^A (3.2.3). */
static void auth_oauthbearer(void **state)
{
	(void)state;
	drv d;
	msv_smtp_options o = auth_opts(MSV_AUTH_AUTO);
	o.user = XO_USER;
	o.secret = XO_TOKEN;
	o.auth_token = 1;
	tls_until_second_ehlo(&d, &o);
	assert_int_equal(msv_smtp_set_server(d.s, "smtp.example.com", 587), MSV_OK);
	SC(&d, "250-mx.example.net\r\n250 AUTH LOGIN PLAIN XOAUTH2 OAUTHBEARER\r\n",
	   "AUTH OAUTHBEARER " OB_B64 "\r\n", MSV_SMTP_WANT_READ);
	SC(&d, "235 2.7.0 Accepted\r\n", "", MSV_SMTP_READY);
	no_secret_in_trace(&d);
	assert_false(drv_trace_has(&d, OB_B64));
	drv_close(&d);

	tls_until_second_ehlo(&d, &o);
	assert_int_equal(msv_smtp_set_server(d.s, "smtp.example.com", 587), MSV_OK);
	SC(&d, "250-mx.example.net\r\n250 AUTH OAUTHBEARER\r\n", "AUTH OAUTHBEARER " OB_B64 "\r\n",
	   MSV_SMTP_WANT_READ);
	SC(&d,
	   "334 eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIiwic2NvcGUiOiJodHRwczovL21haWwuZ29v"
	   "Z2xlLmNvbS8ifQ==\r\n",
	   "AQ==\r\n", MSV_SMTP_WANT_READ);
	expect_ev(&d, drv_feeds(&d, "535 5.7.8 Username and Password not accepted\r\n"),
	          MSV_SMTP_FAILED);
	expect_err(&d, MSV_E_AUTH_FAILED, MSV_CLASS_PERMANENT);
	assert_true(msv_smtp_token_refused(d.s));
	assert_non_null(strstr(msv_smtp_error(d.s)->server_text,
	                       "status=401 schemes=bearer scope=https://mail.google.com/"));
	no_secret_in_trace(&d);
	drv_close(&d);

	/* a name that would break the ^A framing is refused */
	tls_until_second_ehlo(&d, &o);
	assert_int_equal(msv_smtp_set_server(d.s, "evil\001auth=Bearer x", 587), MSV_E_INVALID);
	drv_close(&d);
}

static void auth_refused(void **state)
{
	(void)state;
	drv d;
	msv_smtp_options o = auth_opts(MSV_AUTH_PLAIN);
	tls_until_second_ehlo(&d, &o);
	SC(&d, EHLO_AUTH, "AUTH PLAIN " TIM_PLAIN_B64 "\r\n", MSV_SMTP_WANT_READ);
	expect_ev(&d, drv_feeds(&d, "535 5.7.8 Error: authentication failed\r\n"),
	          MSV_SMTP_FAILED);
	expect_err(&d, MSV_E_AUTH_FAILED, MSV_CLASS_PERMANENT);
	const msv_error *e = msv_smtp_error(d.s);
	assert_int_equal(e->reply_code, 535);
	assert_string_equal(e->enhanced, "5.7.8");
	assert_string_equal(e->server_text, "Error: authentication failed");
	assert_null(strstr(e->message, TIM_PW));
	msv_envelope env = env_of(rcpt1, 1);
	assert_int_not_equal(msv_smtp_begin(d.s, &env), MSV_OK);
	no_secret_in_trace(&d);
	drv_close(&d);

	/* a temporary refusal is temporary */
	tls_until_second_ehlo(&d, &o);
	SC(&d, EHLO_AUTH, "AUTH PLAIN " TIM_PLAIN_B64 "\r\n", MSV_SMTP_WANT_READ);
	expect_ev(&d, drv_feeds(&d, "454 4.7.0 Temporary authentication failure\r\n"),
	          MSV_SMTP_FAILED);
	expect_err(&d, MSV_E_AUTH_FAILED, MSV_CLASS_TEMPORARY);
	drv_close(&d);

	/* LOGIN refused after the password */
	o = auth_opts(MSV_AUTH_LOGIN);
	tls_until_second_ehlo(&d, &o);
	SC(&d, EHLO_AUTH, "AUTH LOGIN\r\n", MSV_SMTP_WANT_READ);
	SC(&d, "334 VXNlcm5hbWU6\r\n", TIM_B64 "\r\n", MSV_SMTP_WANT_READ);
	SC(&d, "334 UGFzc3dvcmQ6\r\n", TIM_PW_B64 "\r\n", MSV_SMTP_WANT_READ);
	expect_ev(&d, drv_feeds(&d, "535 5.7.8 no\r\n"), MSV_SMTP_FAILED);
	expect_err(&d, MSV_E_AUTH_FAILED, MSV_CLASS_PERMANENT);
	no_secret_in_trace(&d);
	drv_close(&d);
}

static void auth_mech_missing(void **state)
{
	(void)state;
	/* asked for CRAM-MD5, server offers PLAIN only */
	drv d;
	msv_smtp_options o = auth_opts(MSV_AUTH_CRAM_MD5);
	tls_until_second_ehlo(&d, &o);
	expect_ev(&d, drv_feeds(&d, "250-mx\r\n250 AUTH PLAIN\r\n"), MSV_SMTP_FAILED);
	assert_int_equal(msv_smtp_error(d.s)->code, MSV_E_NO_AUTH_MECH);
	assert_false(drv_out_has(&d, "AUTH"));
	drv_close(&d);

	/* no AUTH at all, but credentials given */
	o = auth_opts(MSV_AUTH_AUTO);
	tls_until_second_ehlo(&d, &o);
	expect_ev(&d, drv_feeds(&d, "250-mx\r\n250 PIPELINING\r\n"), MSV_SMTP_FAILED);
	assert_int_equal(msv_smtp_error(d.s)->code, MSV_E_NO_AUTH_MECH);
	drv_close(&d);
}

static void auth_plaintext_refused(void **state)
{
	(void)state;
	drv d;
	msv_smtp_options o = plain_opts();
	o.user = TIM;
	o.secret = TIM_PW;
	drv_open(&d, &o);
	SC(&d, GREETING, "EHLO client.example\r\n", MSV_SMTP_WANT_READ);
	expect_ev(&d, drv_feed(&d, EHLO_AUTH, strlen(EHLO_AUTH)), MSV_SMTP_FAILED);
	assert_int_equal(msv_smtp_error(d.s)->code, MSV_E_PLAINTEXT_AUTH);
	assert_false(drv_out_has(&d, "AUTH"));
	assert_false(drv_out_has(&d, TIM_PW_B64));
	assert_false(drv_out_has(&d, TIM_PLAIN_B64));
	drv_close(&d);

	/* allowed by name: it authenticates */
	o.allow_plaintext_auth = 1;
	o.auth = MSV_AUTH_PLAIN;
	drv_open(&d, &o);
	SC(&d, GREETING, "EHLO client.example\r\n", MSV_SMTP_WANT_READ);
	SC(&d, EHLO_AUTH, "AUTH PLAIN " TIM_PLAIN_B64 "\r\n", MSV_SMTP_WANT_READ);
	SC(&d, "235 ok\r\n", "", MSV_SMTP_READY);
	no_secret_in_trace(&d);
	drv_close(&d);
}

static void auth_then_send(void **state)
{
	(void)state;
	/* a full submission session: STARTTLS, AUTH, a message, QUIT */
	drv d;
	msv_smtp_options o = auth_opts(MSV_AUTH_AUTO);
	tls_until_second_ehlo(&d, &o);
	SC(&d,
	   "250-smtp.example.net\r\n250-PIPELINING\r\n250-SIZE 35882577\r\n250-8BITMIME\r\n"
	   "250-AUTH LOGIN PLAIN XOAUTH2\r\n250-ENHANCEDSTATUSCODES\r\n250 CHUNKING\r\n",
	   "AUTH PLAIN " TIM_PLAIN_B64 "\r\n", MSV_SMTP_WANT_READ);
	SC(&d, "235 2.7.0 Accepted\r\n", "", MSV_SMTP_READY);
	msv_envelope env = env_of(rcpt1, 1);
	env.size = strlen(MSG);
	begin_ok(&d, &env);
	char want[200];
	snprintf(want, sizeof(want), "MAIL FROM:<alice@example.com> SIZE=%zu\r\nRCPT TO:<bob@example.org>\r\n",
	         strlen(MSG));
	SC(&d, NULL, want, MSV_SMTP_WANT_READ);
	SC(&d, "250 2.1.0 OK\r\n250 2.1.5 OK\r\n", "", MSV_SMTP_WANT_BODY);
	msv_smtp_event ev = drv_body(&d, MSG, strlen(MSG), 0);
	expect_ev(&d, ev, MSV_SMTP_WANT_READ);
	snprintf(want, sizeof(want), "BDAT %zu LAST\r\n%s", strlen(MSG), MSG);
	drv_expect_out(&d, want);
	SC(&d, "250 2.0.0 OK 1700000000 queued\r\n", "", MSV_SMTP_TXN_DONE);
	SC(&d, NULL, "", MSV_SMTP_READY);
	assert_int_equal(msv_smtp_quit(d.s), MSV_OK);
	SC(&d, NULL, "QUIT\r\n", MSV_SMTP_WANT_READ);
	SC(&d, "221 2.0.0 closing connection\r\n", "", MSV_SMTP_CLOSED);
	SC(&d, NULL, "", MSV_SMTP_CLOSED);
	no_secret_in_trace(&d);
	assert_true(drv_trace_has(&d, "C: MAIL FROM:<alice@example.com>"));
	assert_true(drv_trace_has(&d, "S: 235 2.7.0 Accepted"));
	drv_close(&d);
}

static void implicit_tls(void **state)
{
	(void)state;
	/* TLS from the first byte: no STARTTLS, AUTH allowed */
	msv_smtp_options o = auth_opts(MSV_AUTH_PLAIN);
	o.tls = MSV_TLS_IMPLICIT;
	drv d;
	msv_smtp_event ev = drv_open_ev(&d, &o);
	if (ev == MSV_SMTP_WANT_TLS) { /* the engine may ask for the handshake */
		assert_int_equal(msv_smtp_tls_started(d.s), MSV_OK);
		ev = drv_run(&d);
	}
	drv_expect_out(&d, "");
	expect_ev(&d, ev, MSV_SMTP_WANT_READ);
	assert_int_equal(msv_smtp_tls_active(d.s), 1);
	SC(&d, GREETING, "EHLO client.example\r\n", MSV_SMTP_WANT_READ);
	SC(&d, "250-mx\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n", "AUTH PLAIN " TIM_PLAIN_B64 "\r\n",
	   MSV_SMTP_WANT_READ);
	SC(&d, "235 ok\r\n", "", MSV_SMTP_READY);
	drv_close(&d);
}

/* ---- other commands and errors ---- */

static void rset_noop_quit(void **state)
{
	(void)state;
	drv d;
	msv_smtp_options o = plain_opts();
	drv_ready(&d, &o, EHLO_PIPE);
	assert_int_equal(msv_smtp_noop(d.s), MSV_OK);
	SC(&d, NULL, "NOOP\r\n", MSV_SMTP_WANT_READ);
	SC(&d, "250 2.0.0 Ok\r\n", "", MSV_SMTP_READY);
	assert_int_equal(msv_smtp_rset(d.s), MSV_OK);
	SC(&d, NULL, "RSET\r\n", MSV_SMTP_WANT_READ);
	SC(&d, "250 2.0.0 Ok\r\n", "", MSV_SMTP_READY);
	assert_int_equal(msv_smtp_quit(d.s), MSV_OK);
	SC(&d, NULL, "QUIT\r\n", MSV_SMTP_WANT_READ);
	SC(&d, "221 2.0.0 Bye\r\n", "", MSV_SMTP_CLOSED);
	assert_int_equal(msv_smtp_noop(d.s), MSV_E_STATE);
	SC(&d, NULL, "", MSV_SMTP_CLOSED);
	drv_close(&d);

	/* NOOP refused with 421: the server is going away */
	drv_ready(&d, &o, EHLO_PIPE);
	assert_int_equal(msv_smtp_noop(d.s), MSV_OK);
	SC(&d, NULL, "NOOP\r\n", MSV_SMTP_WANT_READ);
	expect_ev(&d, drv_feeds(&d, "421 4.4.2 timeout\r\n"), MSV_SMTP_FAILED);
	assert_int_equal(msv_smtp_error(d.s)->cls, MSV_CLASS_TEMPORARY);
	drv_close(&d);

	/* the server closes after QUIT without answering: still closed */
	drv_ready(&d, &o, EHLO_PIPE);
	assert_int_equal(msv_smtp_quit(d.s), MSV_OK);
	SC(&d, NULL, "QUIT\r\n", MSV_SMTP_WANT_READ);
	msv_smtp_event ev = drv_feed(&d, "", 0);
	assert_true(ev == MSV_SMTP_CLOSED || ev == MSV_SMTP_FAILED);
	drv_close(&d);
}

static void idle_421_is_close(void **state)
{
	(void)state;
	/* a server timing out an idle session says 421 and closes: not a
	 * protocol violation, a closed connection (temporary) */
	drv d;
	msv_smtp_options o = plain_opts();
	drv_ready(&d, &o, EHLO_PIPE);
	expect_ev(&d, drv_feeds(&d, "421 4.4.2 mx idle timeout\r\n"), MSV_SMTP_FAILED);
	assert_int_equal(msv_smtp_error(d.s)->code, MSV_E_CLOSED);
	assert_int_equal(msv_smtp_error(d.s)->cls, MSV_CLASS_TEMPORARY);
	assert_int_equal(msv_smtp_error(d.s)->reply_code, 421);
	drv_close(&d);
}

static void unsolicited_reply(void **state)
{
	(void)state;
	drv d;
	msv_smtp_options o = plain_opts();
	drv_ready(&d, &o, EHLO_PIPE);
	expect_ev(&d, drv_feeds(&d, "250 surprise\r\n"), MSV_SMTP_FAILED);
	assert_int_equal(msv_smtp_error(d.s)->code, MSV_E_PROTOCOL);
	drv_close(&d);

	/* a partial line when idle is already unsolicited data */
	drv_ready(&d, &o, EHLO_PIPE);
	msv_smtp_event ev = drv_feeds(&d, "25");
	if (ev != MSV_SMTP_FAILED)
		ev = drv_feeds(&d, "0 x\r\n");
	expect_ev(&d, ev, MSV_SMTP_FAILED);
	assert_int_equal(msv_smtp_error(d.s)->code, MSV_E_PROTOCOL);
	drv_close(&d);

	/* two replies to one unpipelined command */
	drv_ready(&d, &o, EHLO_BASIC);
	msv_envelope env = env_of(rcpt1, 1);
	begin_ok(&d, &env);
	SC(&d, NULL, "MAIL FROM:<alice@example.com>\r\n", MSV_SMTP_WANT_READ);
	ev = drv_feeds(&d, "250 ok\r\n250 extra\r\n");
	expect_ev(&d, ev, MSV_SMTP_FAILED);
	assert_int_equal(msv_smtp_error(d.s)->code, MSV_E_PROTOCOL);
	drv_close(&d);

	/* more replies than pipelined commands */
	drv_ready(&d, &o, EHLO_PIPE);
	begin_ok(&d, &env);
	SC(&d, NULL, "MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n",
	   MSV_SMTP_WANT_READ);
	ev = drv_feeds(&d, "250 ok\r\n250 ok\r\n354 go\r\n250 extra\r\n");
	expect_ev(&d, ev, MSV_SMTP_FAILED);
	assert_int_equal(msv_smtp_error(d.s)->code, MSV_E_PROTOCOL);
	drv_close(&d);

	/* a greeting-time garbage line */
	drv_open(&d, &o);
	expect_ev(&d, drv_feeds(&d, "SSH-2.0-OpenSSH_9.2\r\n"), MSV_SMTP_FAILED);
	assert_int_equal(msv_smtp_error(d.s)->code, MSV_E_PROTOCOL);
	drv_close(&d);
}

static void server_close(void **state)
{
	(void)state;
	/* before the greeting */
	drv d;
	msv_smtp_options o = plain_opts();
	drv_open(&d, &o);
	expect_ev(&d, drv_feed(&d, "", 0), MSV_SMTP_FAILED);
	expect_err(&d, MSV_E_CLOSED, MSV_CLASS_TEMPORARY);
	drv_close(&d);

	/* mid-transaction, with half a reply buffered */
	drv_ready(&d, &o, EHLO_PIPE);
	msv_envelope env = env_of(rcpt1, 1);
	begin_ok(&d, &env);
	SC(&d, NULL, "MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n",
	   MSV_SMTP_WANT_READ);
	SC(&d, "250 ok\r\n250 o", "", MSV_SMTP_WANT_READ);
	expect_ev(&d, drv_feed(&d, "", 0), MSV_SMTP_FAILED);
	expect_err(&d, MSV_E_CLOSED, MSV_CLASS_TEMPORARY);
	drv_close(&d);

	/* while the final reply to the data is awaited */
	drv_ready(&d, &o, EHLO_PIPE);
	begin_ok(&d, &env);
	SC(&d, NULL, "MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n",
	   MSV_SMTP_WANT_READ);
	SC(&d, "250 ok\r\n250 ok\r\n354 go\r\n", "", MSV_SMTP_WANT_BODY);
	expect_ev(&d, drv_body(&d, MSG, strlen(MSG), 0), MSV_SMTP_WANT_READ);
	expect_ev(&d, drv_feed(&d, "", 0), MSV_SMTP_FAILED);
	expect_err(&d, MSV_E_CLOSED, MSV_CLASS_TEMPORARY);
	drv_close(&d);

	/* when idle */
	drv_ready(&d, &o, EHLO_PIPE);
	expect_ev(&d, drv_feed(&d, "", 0), MSV_SMTP_FAILED);
	assert_int_equal(msv_smtp_error(d.s)->code, MSV_E_CLOSED);
	drv_close(&d);
}

static void driver_failure(void **state)
{
	(void)state;
	drv d;
	msv_smtp_options o = plain_opts();
	drv_ready(&d, &o, EHLO_PIPE);
	msv_envelope env = env_of(rcpt1, 1);
	begin_ok(&d, &env);
	SC(&d, NULL, "MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n",
	   MSV_SMTP_WANT_READ);
	msv_error err;
	msv_error_clear(&err);
	msv_error_set(&err, MSV_E_TIMEOUT, MSV_CLASS_TEMPORARY, "no reply in %d s", 300);
	msv_smtp_fail(d.s, &err);
	SC(&d, NULL, "", MSV_SMTP_FAILED);
	expect_err(&d, MSV_E_TIMEOUT, MSV_CLASS_TEMPORARY);
	assert_string_equal(msv_smtp_error(d.s)->message, "no reply in 300 s");
	/* feeding a failed session changes nothing */
	drv_feeds(&d, "250 ok\r\n");
	expect_ev(&d, d.last, MSV_SMTP_FAILED);
	expect_err(&d, MSV_E_TIMEOUT, MSV_CLASS_TEMPORARY);
	drv_close(&d);
}

static void long_reply_line(void **state)
{
	(void)state;
	/* a server reply line past MSV_REPLY_LINE_MAX fails the session */
	drv d;
	msv_smtp_options o = plain_opts();
	drv_open(&d, &o);
	char line[MSV_REPLY_LINE_MAX + 100];
	memset(line, 'a', sizeof(line));
	memcpy(line, "220 ", 4);
	msv_smtp_event ev = drv_feed(&d, line, sizeof(line));
	expect_ev(&d, ev, MSV_SMTP_FAILED);
	assert_int_equal(msv_smtp_error(d.s)->code, MSV_E_PROTOCOL);
	drv_close(&d);
}

static void options_copied(void **state)
{
	(void)state;
	/* the engine copies its strings: the caller's may go away */
	char helo[32], user[8], secret[32];
	snprintf(helo, sizeof(helo), "copied.example");
	snprintf(user, sizeof(user), "tim");
	snprintf(secret, sizeof(secret), "tanstaaftanstaaf");
	msv_smtp_options o = plain_opts();
	o.helo = helo;
	o.user = user;
	o.secret = secret;
	o.auth = MSV_AUTH_PLAIN;
	o.allow_plaintext_auth = 1;
	drv d;
	drv_open(&d, &o);
	memset(helo, 'X', sizeof(helo) - 1);
	memset(user, 'X', sizeof(user) - 1);
	memset(secret, 'X', sizeof(secret) - 1);
	SC(&d, GREETING, "EHLO copied.example\r\n", MSV_SMTP_WANT_READ);
	SC(&d, EHLO_AUTH, "AUTH PLAIN " TIM_PLAIN_B64 "\r\n", MSV_SMTP_WANT_READ);
	drv_close(&d);
	msv_smtp_free(NULL);
}

/* ---- the state table (src/smtp/states.c) ---- */

static msv_smtp_state state_of(const drv *d)
{
	const char *name = msv_smtp_state_name(d->s);
	for (int st = 0; st < ST_COUNT; st++)
		if (!strcmp(name, msv__smtp_state_str((msv_smtp_state)st)))
			return (msv_smtp_state)st;
	fail_msg("unknown state name %s", name);
	return ST_FAILED;
}

static void walk_feed(drv *d, const char *srv)
{
	assert_int_equal(msv_smtp_feed(d->s, srv, strlen(srv)), MSV_OK);
	drv_run(d);
}

static void walk_in_state(const drv *d, msv_smtp_state want)
{
	if (state_of(d) != want)
		fail_msg("setup reached %s, expected %s (%s)", msv_smtp_state_name(d->s),
		         msv__smtp_state_str(want), msv_smtp_error(d->s)->message);
}

static msv_smtp_options walk_auth_opts(void)
{
	msv_smtp_options o = plain_opts();
	o.user = "tim";
	o.secret = "tanstaaftanstaaf";
	o.auth = MSV_AUTH_PLAIN;
	o.allow_plaintext_auth = 1;
	return o;
}

#define WALK_EHLO_PIPE_CHUNK "250-mx\r\n250-PIPELINING\r\n250 CHUNKING\r\n"
#define WALK_EHLO_CHUNK "250-mx\r\n250 CHUNKING\r\n"

static const char *const walk_rcpt2[] = {"bob@example.org", "carol@example.org"};

/* Each setup leaves a session in the state it names, waiting. */
static void walk_greeting(drv *d) { msv_smtp_options o = plain_opts(); drv_open(d, &o); }
static void walk_ehlo(drv *d) { walk_greeting(d); walk_feed(d, GREETING); }
static void walk_ehlo_tls(drv *d)
{
	msv_smtp_options o = plain_opts();
	o.tls = MSV_TLS_STARTTLS;
	drv_open(d, &o);
	walk_feed(d, GREETING);
}
static void walk_ehlo_auth(drv *d)
{
	msv_smtp_options o = walk_auth_opts();
	drv_open(d, &o);
	walk_feed(d, GREETING);
}
static void walk_helo(drv *d) { walk_ehlo(d); walk_feed(d, "502 5.5.1 what?\r\n"); }
static void walk_starttls(drv *d) { walk_ehlo_tls(d); walk_feed(d, EHLO_TLS); }
static void walk_tls(drv *d) { walk_starttls(d); walk_feed(d, "220 go ahead\r\n"); }
static void walk_auth(drv *d) { walk_ehlo_auth(d); walk_feed(d, "250-mx\r\n250 AUTH PLAIN\r\n"); }
static void walk_ready_with(drv *d, const char *ehlo)
{
	msv_smtp_options o = plain_opts();
	drv_ready(d, &o, ehlo);
}
static void walk_ready(drv *d) { walk_ready_with(d, EHLO_BASIC); }
static void walk_begin(drv *d, const char *ehlo, const char *const *rcpt, size_t n)
{
	static msv_envelope env;
	env = env_of(rcpt, n);
	walk_ready_with(d, ehlo);
	begin_ok(d, &env);
	drv_run(d);
}
/* ENVELOPE with each kind of command at the head of the queue */
static void walk_env_mail(drv *d) { walk_begin(d, EHLO_BASIC, rcpt1, 1); }
static void walk_env_rcpt(drv *d) { walk_env_mail(d); walk_feed(d, "250 ok\r\n"); }
static void walk_env_data(drv *d) { walk_env_rcpt(d); walk_feed(d, "250 ok\r\n"); }
static void walk_env_pipe(drv *d) { walk_begin(d, EHLO_PIPE, rcpt1, 1); }
static void walk_env_pipe_data_nobody(drv *d)
{
	walk_env_pipe(d);
	walk_feed(d, "250 ok\r\n550 no\r\n");
}
static void walk_env_bdat_last(drv *d)
{
	walk_begin(d, WALK_EHLO_CHUNK, walk_rcpt2, 2);
	walk_feed(d, "250 ok\r\n"); /* MAIL; one RCPT at a time after it */
	walk_feed(d, "250 ok\r\n");
}
static void walk_env_bdat_mail_failed(drv *d)
{
	walk_begin(d, WALK_EHLO_PIPE_CHUNK, rcpt1, 1);
	walk_feed(d, "550 no\r\n");
}
static void walk_env_rset(drv *d)
{
	/* every RCPT refused: the next transaction starts with RSET */
	walk_env_rcpt(d);
	walk_feed(d, "550 no\r\n");
	static msv_envelope env;
	env = env_of(rcpt1, 1);
	begin_ok(d, &env);
	drv_run(d);
}
static void walk_env_prev_dot(drv *d);
static void walk_body(drv *d) { walk_env_data(d); walk_feed(d, "354 go\r\n"); }
static void walk_data_end(drv *d)
{
	walk_body(d);
	assert_int_equal(msv_smtp_body_end(d->s), MSV_OK);
	drv_run(d);
}
static void walk_data_end_discard(drv *d) { walk_env_pipe_data_nobody(d); walk_feed(d, "354 go\r\n"); }
static void walk_env_prev_dot(drv *d)
{
	/* the previous message's "." answers first (RFC 2920 overlap) */
	walk_env_pipe(d);
	walk_feed(d, "250 ok\r\n250 ok\r\n354 go\r\n");
	assert_int_equal(msv_smtp_body_end(d->s), MSV_OK);
	static msv_envelope env;
	env = env_of(rcpt1, 1);
	begin_ok(d, &env);
	drv_run(d);
}
static void walk_txn_done(drv *d)
{
	walk_data_end(d);
	/* fed without a step: TXN_DONE lasts until msv_smtp_step() */
	assert_int_equal(msv_smtp_feed(d->s, "250 ok\r\n", 8), MSV_OK);
}
static void walk_cmd(drv *d, msv_result (*fn)(msv_smtp *))
{
	walk_ready(d);
	assert_int_equal(fn(d->s), MSV_OK);
	drv_run(d);
}
static void walk_rset(drv *d) { walk_cmd(d, msv_smtp_rset); }
static void walk_noop(drv *d) { walk_cmd(d, msv_smtp_noop); }
static void walk_quit(drv *d) { walk_cmd(d, msv_smtp_quit); }
static void walk_closed(drv *d) { walk_quit(d); walk_feed(d, "221 bye\r\n"); }
static void walk_failed(drv *d)
{
	walk_ready(d);
	assert_int_equal(msv_smtp_feed(d->s, "250 unasked\r\n", 13), MSV_E_PROTOCOL);
}

typedef struct walk_case {
	msv_smtp_state st;
	void (*setup)(drv *d);
	const char *extra; /* a reply only this case needs (NULL: none) */
} walk_case;

static const walk_case walk_cases[] = {
	{ST_GREETING, walk_greeting, NULL},
	{ST_EHLO, walk_ehlo, NULL},
	{ST_EHLO, walk_ehlo_tls, EHLO_TLS},
	{ST_EHLO, walk_ehlo_auth, "250-mx\r\n250 AUTH PLAIN\r\n"},
	{ST_HELO, walk_helo, NULL},
	{ST_STARTTLS, walk_starttls, NULL},
	{ST_TLS, walk_tls, NULL},
	{ST_AUTH, walk_auth, NULL},
	{ST_READY, walk_ready, NULL},
	{ST_ENVELOPE, walk_env_mail, NULL},
	{ST_ENVELOPE, walk_env_rcpt, NULL},
	{ST_ENVELOPE, walk_env_data, NULL},
	{ST_ENVELOPE, walk_env_pipe, NULL},
	{ST_ENVELOPE, walk_env_pipe_data_nobody, NULL},
	{ST_ENVELOPE, walk_env_bdat_last, NULL},
	{ST_ENVELOPE, walk_env_bdat_mail_failed, NULL},
	{ST_ENVELOPE, walk_env_rset, NULL},
	{ST_ENVELOPE, walk_env_prev_dot, NULL},
	{ST_BODY, walk_body, NULL},
	{ST_DATA_END, walk_data_end, NULL},
	{ST_DATA_END, walk_data_end_discard, NULL},
	{ST_TXN_DONE, walk_txn_done, NULL},
	{ST_RSET, walk_rset, NULL},
	{ST_NOOP, walk_noop, NULL},
	{ST_QUIT, walk_quit, NULL},
	{ST_CLOSED, walk_closed, NULL},
	{ST_FAILED, walk_failed, NULL},
};

/* Replies of every class, with the codes RFC 5321 4.3.2 names. */
static const char *const walk_replies[] = {
	"220 ready\r\n", "221 bye\r\n", "235 2.7.0 ok\r\n", "250 2.0.0 ok\r\n", "251 ok\r\n",
	"334 VXNlcm5hbWU6\r\n", "354 go\r\n", "421 4.3.2 bye\r\n", "450 busy\r\n",
	"451 4.3.0 later\r\n", "452 full\r\n", "454 no TLS\r\n", "500 what\r\n", "502 no\r\n",
	"535 5.7.8 no\r\n", "550 5.1.1 no\r\n", "554 5.3.0 no\r\n",
};

/* One reply in one state: the engine ends where the table lets that
 * reply class lead, or fails, and never because the table refused a move
 * (that would be a move the engine makes and the table does not list). */
static void walk_one(const walk_case *c, const char *reply, unsigned seen[ST_COUNT][ON_COUNT])
{
	drv d;
	c->setup(&d);
	walk_in_state(&d, c->st);
	msv_smtp_trigger t = msv__smtp_trigger_of((reply[0] - '0') * 100);
	(void)msv_smtp_feed(d.s, reply, strlen(reply));
	msv_smtp_state to = state_of(&d);
	if (!msv__smtp_move_allowed(c->st, t, to) || msv_smtp_error(d.s)->code == MSV_E_STATE)
		fail_msg("%s on %.3s ended in %s: a move the table does not list (%s)",
		         msv__smtp_state_str(c->st), reply, msv__smtp_state_str(to),
		         msv_smtp_error(d.s)->message);
	if (to != c->st && to != ST_FAILED)
		seen[c->st][t] |= 1u << to;
	if (!msv__smtp_moves(c->st, t) && to != ST_FAILED && to != c->st)
		fail_msg("%s on %.3s should fail or stay", msv__smtp_state_str(c->st), reply);
	drv_close(&d);
}

/* The caller's moves: each call in its state goes where the table says. */
static void walk_calls(unsigned seen[ST_COUNT][ON_COUNT])
{
	drv d;
	static msv_envelope env;
	env = env_of(rcpt1, 1);
	struct {
		msv_smtp_state from, to;
	} done[8];
	size_t n = 0;

	walk_tls(&d); /* TLS -> EHLO */
	assert_int_equal(msv_smtp_tls_started(d.s), MSV_OK);
	done[n].from = ST_TLS, done[n++].to = state_of(&d);
	drv_close(&d);
	walk_ready(&d); /* READY -> ENVELOPE */
	assert_int_equal(msv_smtp_begin(d.s, &env), MSV_OK);
	done[n].from = ST_READY, done[n++].to = state_of(&d);
	drv_close(&d);
	walk_rset(&d); /* READY -> RSET, NOOP, QUIT */
	done[n].from = ST_READY, done[n++].to = state_of(&d);
	drv_close(&d);
	walk_noop(&d);
	done[n].from = ST_READY, done[n++].to = state_of(&d);
	drv_close(&d);
	walk_quit(&d); /* QUIT -> CLOSED: the server hangs up */
	done[n].from = ST_READY, done[n++].to = state_of(&d);
	assert_int_equal(msv_smtp_feed(d.s, "", 0), MSV_OK);
	done[n].from = ST_QUIT, done[n++].to = state_of(&d);
	drv_close(&d);
	walk_body(&d); /* BODY -> DATA_END */
	assert_int_equal(msv_smtp_body_end(d.s), MSV_OK);
	done[n].from = ST_BODY, done[n++].to = state_of(&d);
	drv_close(&d);
	walk_txn_done(&d); /* TXN_DONE -> READY */
	assert_int_equal(msv_smtp_step(d.s), MSV_SMTP_TXN_DONE);
	done[n].from = ST_TXN_DONE, done[n++].to = state_of(&d);
	drv_close(&d);
	for (size_t i = 0; i < n; i++) {
		if (!msv__smtp_move_allowed(done[i].from, ON_CALL, done[i].to) ||
		    done[i].to == ST_FAILED)
			fail_msg("call in %s moved to %s", msv__smtp_state_str(done[i].from),
			         msv__smtp_state_str(done[i].to));
		seen[done[i].from][ON_CALL] |= 1u << done[i].to;
	}
	/* DATA_END -> ENVELOPE: the next envelope before "." is answered */
	walk_env_prev_dot(&d);
	walk_in_state(&d, ST_ENVELOPE);
	seen[ST_DATA_END][ON_CALL] |= 1u << ST_ENVELOPE;
	drv_close(&d);
}

static void state_table_walk(void **state)
{
	(void)state;
	unsigned seen[ST_COUNT][ON_COUNT];
	memset(seen, 0, sizeof(seen));
	for (size_t i = 0; i < sizeof(walk_cases) / sizeof(walk_cases[0]); i++) {
		for (size_t j = 0; j < sizeof(walk_replies) / sizeof(walk_replies[0]); j++)
			walk_one(&walk_cases[i], walk_replies[j], seen);
		if (walk_cases[i].extra)
			walk_one(&walk_cases[i], walk_cases[i].extra, seen);
	}
	walk_calls(seen);
	/* Every move the table lists happens: it holds no dead entries a
	 * reader would have to puzzle over. */
	for (int st = 0; st < ST_COUNT; st++)
		for (int t = 0; t < ON_COUNT; t++) {
			unsigned missing = msv__smtp_moves((msv_smtp_state)st, (msv_smtp_trigger)t) & ~seen[st][t];
			for (int to = 0; to < ST_COUNT; to++)
				if (missing & (1u << to))
					fail_msg("the table lets %s move to %s on %s, and no case did",
					         msv__smtp_state_str((msv_smtp_state)st),
					         msv__smtp_state_str((msv_smtp_state)to),
					         msv__smtp_trigger_str((msv_smtp_trigger)t));
		}
	/* Outside the table: the names, staying, FAILED. */
	assert_string_equal(msv__smtp_state_str(ST_COUNT), "?");
	for (int st = 0; st < ST_COUNT; st++) {
		assert_true(msv__smtp_move_allowed((msv_smtp_state)st, ON_2XX, ST_FAILED));
		assert_int_equal(msv__smtp_move_allowed(ST_FAILED, ON_CALL, (msv_smtp_state)st),
		                 st == ST_FAILED);
	}
}

/* set_state() refuses a move the table does not list: the session fails
 * with MSV_E_STATE (class local), the trace says so, nothing is printed. */
static void state_illegal_move(void **state)
{
	(void)state;
	drv d;
	walk_ready(&d);
	msv__smtp_trace_states(d.s, 1);
	assert_int_equal(msv__smtp_force_state(d.s, ST_RSET), MSV_OK); /* listed */
	assert_string_equal(msv_smtp_state_name(d.s), "RSET");
	assert_true(drv_trace_has(&d, "*: state READY -> RSET (on call)"));
	assert_int_equal(msv__smtp_force_state(d.s, ST_BODY), MSV_E_STATE);
	assert_string_equal(msv_smtp_state_name(d.s), "FAILED");
	expect_err(&d, MSV_E_STATE, MSV_CLASS_LOCAL);
	assert_non_null(strstr(msv_smtp_error(d.s)->message, "from RSET to BODY"));
	assert_true(drv_trace_has(&d, "*: state RSET -> FAILED (on call) refused"));
	expect_ev(&d, drv_run(&d), MSV_SMTP_FAILED);
	/* nothing leaves FAILED */
	assert_int_equal(msv__smtp_force_state(d.s, ST_READY), MSV_E_STATE);
	assert_string_equal(msv_smtp_state_name(d.s), "FAILED");
	drv_close(&d);

	/* traced moves in a whole session, when asked for */
	msv_smtp_options o = plain_opts();
	drv_open(&d, &o);
	msv__smtp_trace_states(d.s, 1);
	SC(&d, GREETING, "EHLO client.example\r\n", MSV_SMTP_WANT_READ);
	SC(&d, EHLO_BASIC, "", MSV_SMTP_READY);
	assert_true(drv_trace_has(&d, "*: state GREETING -> EHLO (on 2xx)\n"));
	assert_true(drv_trace_has(&d, "*: state EHLO -> READY (on 2xx)\n"));
	msv__smtp_trace_states(d.s, 0);
	assert_int_equal(msv_smtp_quit(d.s), MSV_OK);
	assert_false(drv_trace_has(&d, "READY -> QUIT"));
	drv_close(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(greeting_then_ehlo),
		cmocka_unit_test(default_helo_is_localhost),
		cmocka_unit_test(greeting_split_bytes),
		cmocka_unit_test(greeting_421),
		cmocka_unit_test(greeting_554),
		cmocka_unit_test(ehlo_refused_helo_fallback),
		cmocka_unit_test(ehlo_421_fails),
		cmocka_unit_test(starttls_flow),
		cmocka_unit_test(starttls_not_offered),
		cmocka_unit_test(starttls_454),
		cmocka_unit_test(starttls_injection),
		cmocka_unit_test(starttls_not_with_tls_none),
		cmocka_unit_test(pipelined_mixed_rcpt),
		cmocka_unit_test(pipelined_replies_bytewise),
		cmocka_unit_test(partial_writes),
		cmocka_unit_test(unpipelined_one_at_a_time),
		cmocka_unit_test(all_refused_unpipelined),
		cmocka_unit_test(all_refused_pipelined_354),
		cmocka_unit_test(all_refused_pipelined_554),
		cmocka_unit_test(mail_refused),
		cmocka_unit_test(data_refused_after_body),
		cmocka_unit_test(data_command_refused),
		cmocka_unit_test(rset_after_all_rcpt_refused),
		cmocka_unit_test(rset_after_pipelined_data_refused),
		cmocka_unit_test(rset_after_data_command_refused),
		cmocka_unit_test(reply_421_mid_envelope),
		cmocka_unit_test(size_param_and_refusal),
		cmocka_unit_test(body_8bitmime),
		cmocka_unit_test(smtputf8),
		cmocka_unit_test(dsn_params),
		cmocka_unit_test(all_params_together),
		cmocka_unit_test(null_sender),
		cmocka_unit_test(bad_addresses),
		cmocka_unit_test(begin_arguments),
		cmocka_unit_test(bdat_chunking),
		cmocka_unit_test(bdat_small_chunks),
		cmocka_unit_test(auth_plain),
		cmocka_unit_test(auth_login),
		cmocka_unit_test(auth_cram_md5),
		cmocka_unit_test(auth_xoauth2),
		cmocka_unit_test(auth_oauthbearer),
		cmocka_unit_test(auth_refused),
		cmocka_unit_test(auth_mech_missing),
		cmocka_unit_test(auth_plaintext_refused),
		cmocka_unit_test(auth_then_send),
		cmocka_unit_test(implicit_tls),
		cmocka_unit_test(rset_noop_quit),
		cmocka_unit_test(idle_421_is_close),
		cmocka_unit_test(overlap_next_envelope),
		cmocka_unit_test(overlap_prev_done_before_failure),
		cmocka_unit_test(unsolicited_reply),
		cmocka_unit_test(server_close),
		cmocka_unit_test(driver_failure),
		cmocka_unit_test(long_reply_line),
		cmocka_unit_test(options_copied),
		cmocka_unit_test(state_table_walk),
		cmocka_unit_test(state_illegal_move),
	};
	return cmocka_run_group_tests_name("smtp engine", tests, NULL, NULL);
}
