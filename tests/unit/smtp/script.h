/*
 * script.h - a scripted driver for the sans-I/O SMTP engine (tests only).
 *
 * The driver plays the server: it feeds scripted reply bytes to an
 * msv_smtp, writes out everything the engine produces into one
 * transcript buffer, and lets a test compare the exact bytes the client
 * sent since the last check (curl's <servercmd>/<protocol> pair).
 *
 *   drv d;
 *   drv_open(&d, &opts);                                // expects WANT_READ
 *   SC(&d, "220 mx ESMTP\r\n", "EHLO me\r\n", MSV_SMTP_WANT_READ);
 *   SC(&d, "250 mx\r\n", "", MSV_SMTP_READY);
 *   drv_close(&d);
 *
 * Include after <cmocka.h>.  Every function is static and may be unused.
 */
#ifndef MSV_TEST_SCRIPT_H
#define MSV_TEST_SCRIPT_H

#include <stdio.h>
#include <string.h>

#include "missive/smtp.h"

#define SCRIPT_FN static __attribute__((unused))

#define DRV_OUT_MAX (1u << 24)
#define DRV_TRACE_MAX (1u << 24)

typedef struct drv {
	msv_smtp *s;
	msv_buf out;          /* every byte the client wrote, in order */
	size_t seen;          /* bytes of out already compared */
	size_t writes;        /* output chunks taken (msv_smtp_written calls) */
	size_t write_step;    /* 0: take whole chunks; n: at most n bytes a call */
	msv_result feed_rc;   /* what the last msv_smtp_feed returned */
	msv_smtp_event last;  /* the last event drv_run returned */
	msv_buf trace;        /* "<dir> <line>\n" per trace call */
	size_t ntrace;
	int trace_bad;        /* a trace line held CR or LF */
} drv;

/* memmem without _GNU_SOURCE. */
SCRIPT_FN const char *mem_find(const void *hay, size_t hn, const void *needle, size_t nn)
{
	const char *h = hay;
	if (!nn)
		return h;
	for (size_t i = 0; h && i + nn <= hn; i++)
		if (h[i] == *(const char *)needle && !memcmp(h + i, needle, nn))
			return h + i;
	return NULL;
}

SCRIPT_FN const char *ev_name(msv_smtp_event ev)
{
	switch (ev) {
	case MSV_SMTP_WANT_WRITE: return "WANT_WRITE";
	case MSV_SMTP_WANT_READ: return "WANT_READ";
	case MSV_SMTP_WANT_TLS: return "WANT_TLS";
	case MSV_SMTP_READY: return "READY";
	case MSV_SMTP_WANT_BODY: return "WANT_BODY";
	case MSV_SMTP_TXN_DONE: return "TXN_DONE";
	case MSV_SMTP_CLOSED: return "CLOSED";
	case MSV_SMTP_FAILED: return "FAILED";
	case MSV_SMTP_PREV_DONE: return "PREV_DONE";
	}
	return "?";
}

/* C-escapes n bytes into dst for failure messages. */
SCRIPT_FN const char *esc(char *dst, size_t dstsz, const char *p, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < n && o + 8 < dstsz; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c == '\r')
			o += (size_t)snprintf(dst + o, dstsz - o, "\\r");
		else if (c == '\n')
			o += (size_t)snprintf(dst + o, dstsz - o, "\\n");
		else if (c == '\\')
			o += (size_t)snprintf(dst + o, dstsz - o, "\\\\");
		else if (c < 0x20 || c >= 0x7f)
			o += (size_t)snprintf(dst + o, dstsz - o, "\\x%02x", c);
		else
			dst[o++] = (char)c;
	}
	if (o + 8 >= dstsz && dstsz > 4)
		o = (size_t)snprintf(dst + dstsz - 4, 4, "...") + dstsz - 4;
	dst[o < dstsz ? o : dstsz - 1] = '\0';
	return dst;
}

SCRIPT_FN void drv_trace_cb(void *payload, msv_trace_dir dir, const char *line, size_t len)
{
	drv *d = payload;
	if (memchr(line, '\r', len) || memchr(line, '\n', len))
		d->trace_bad = 1;
	const char *tag = dir == MSV_TRACE_IN ? "S: " : dir == MSV_TRACE_OUT ? "C: " : "*: ";
	if (msv_buf_addstr(&d->trace, tag) || msv_buf_add(&d->trace, line, len) ||
	    msv_buf_addc(&d->trace, '\n'))
		d->trace_bad = 1;
	d->ntrace++;
}

/* Runs the engine until it needs something other than a write; every
 * write is appended to the transcript. */
SCRIPT_FN msv_smtp_event drv_run_at(const char *file, int line, drv *d)
{
	for (int guard = 0; guard < 1000000; guard++) {
		msv_smtp_event ev = msv_smtp_step(d->s);
		if (ev != MSV_SMTP_WANT_WRITE) {
			d->last = ev;
			return ev;
		}
		const char *p = NULL;
		size_t n = 0;
		msv_smtp_output(d->s, &p, &n);
		if (!n || !p) {
			print_error("%s:%d: WANT_WRITE with nothing to write (state %s)\n", file, line,
			            msv_smtp_state_name(d->s));
			fail();
		}
		size_t take = d->write_step && d->write_step < n ? d->write_step : n;
		assert_int_equal(msv_buf_add(&d->out, p, take), MSV_OK);
		msv_smtp_written(d->s, take);
		d->writes++;
	}
	print_error("%s:%d: engine loops on WANT_WRITE\n", file, line);
	fail();
	return MSV_SMTP_FAILED;
}
#define drv_run(d) drv_run_at(__FILE__, __LINE__, d)

/* Creates the session with opts, its trace routed to the driver unless
 * opts has its own, and runs it to its first event. */
SCRIPT_FN msv_smtp_event drv_open_ev(drv *d, const msv_smtp_options *opts)
{
	memset(d, 0, sizeof(*d));
	msv_buf_init(&d->out, DRV_OUT_MAX);
	msv_buf_init(&d->trace, DRV_TRACE_MAX);
	msv_smtp_options o = *opts;
	if (!o.trace) {
		o.trace = drv_trace_cb;
		o.trace_payload = d;
	}
	assert_int_equal(msv_smtp_new(&d->s, &o), MSV_OK);
	assert_non_null(d->s);
	return drv_run(d);
}

SCRIPT_FN void drv_close(drv *d)
{
	msv_smtp_free(d->s);
	d->s = NULL;
	msv_buf_free(&d->out);
	msv_buf_free(&d->trace);
}

/* Feeds bytes (len 0: the server closed) and runs. */
SCRIPT_FN msv_smtp_event drv_feed(drv *d, const char *p, size_t n)
{
	d->feed_rc = msv_smtp_feed(d->s, p, n);
	return drv_run(d);
}

/* Feeds a NUL-terminated string (not for the close: use drv_feed(d, "", 0)). */
#define drv_feeds(d, str) drv_feed(d, str, strlen(str))

/* Feeds one byte at a time, running after each. */
SCRIPT_FN msv_smtp_event drv_feed_bytes(drv *d, const char *p, size_t n)
{
	msv_smtp_event ev = d->last;
	for (size_t i = 0; i < n; i++) {
		d->feed_rc = msv_smtp_feed(d->s, p + i, 1);
		ev = drv_run(d);
		if (ev == MSV_SMTP_FAILED)
			break;
	}
	return ev;
}

/* The client bytes written since the last check. */
SCRIPT_FN const char *drv_new(drv *d, size_t *n)
{
	*n = d->out.len - d->seen;
	const char *p = d->out.data ? d->out.data + d->seen : "";
	d->seen = d->out.len;
	return p;
}

SCRIPT_FN void drv_expect_out_at(const char *file, int line, drv *d, const char *want)
{
	size_t n;
	const char *got = drv_new(d, &n);
	if (n != strlen(want) || memcmp(got, want, n)) {
		char a[8192], b[8192];
		print_error("%s:%d: client wrote\n  \"%s\"\nexpected\n  \"%s\"\n", file, line,
		            esc(a, sizeof(a), got, n), esc(b, sizeof(b), want, strlen(want)));
		fail();
	}
}
#define drv_expect_out(d, want) drv_expect_out_at(__FILE__, __LINE__, d, want)

SCRIPT_FN void expect_ev_at(const char *file, int line, drv *d, msv_smtp_event got,
                            msv_smtp_event want)
{
	if (got != want) {
		const msv_error *e = msv_smtp_error(d->s);
		print_error("%s:%d: event %s, expected %s (state %s; error %s/%s reply %d \"%s\" "
		            "\"%s\")\n",
		            file, line, ev_name(got), ev_name(want), msv_smtp_state_name(d->s),
		            msv_result_name(e->code), msv_class_name(e->cls), e->reply_code,
		            e->server_text, e->message);
		fail();
	}
}
#define expect_ev(d, got, want) expect_ev_at(__FILE__, __LINE__, d, got, want)

/* One exchange: the server says srv (NULL: nothing), then the client
 * must have written exactly cli and the engine must report ev. */
SCRIPT_FN void sc_at(const char *file, int line, drv *d, const char *srv, const char *cli,
                     msv_smtp_event ev)
{
	msv_smtp_event got = srv ? drv_feed(d, srv, strlen(srv)) : drv_run(d);
	drv_expect_out_at(file, line, d, cli);
	expect_ev_at(file, line, d, got, ev);
}
#define SC(d, srv, cli, ev) sc_at(__FILE__, __LINE__, d, srv, cli, ev)

/* The same, the server's bytes arriving one at a time. */
SCRIPT_FN void sc_bytes_at(const char *file, int line, drv *d, const char *srv, const char *cli,
                           msv_smtp_event ev)
{
	msv_smtp_event got = drv_feed_bytes(d, srv, strlen(srv));
	drv_expect_out_at(file, line, d, cli);
	expect_ev_at(file, line, d, got, ev);
}
#define SC_BYTES(d, srv, cli, ev) sc_bytes_at(__FILE__, __LINE__, d, srv, cli, ev)

SCRIPT_FN void drv_open_at(const char *file, int line, drv *d, const msv_smtp_options *opts)
{
	msv_smtp_event ev = drv_open_ev(d, opts);
	drv_expect_out_at(file, line, d, "");
	expect_ev_at(file, line, d, ev, MSV_SMTP_WANT_READ);
}
#define drv_open(d, opts) drv_open_at(__FILE__, __LINE__, d, opts)

/* Greeting and EHLO: the session is READY with the capabilities in
 * ehlo (a complete 250 reply).  opts->tls must not need STARTTLS. */
SCRIPT_FN void drv_ready_at(const char *file, int line, drv *d, const msv_smtp_options *opts,
                            const char *ehlo)
{
	drv_open_at(file, line, d, opts);
	char want[300];
	snprintf(want, sizeof(want), "EHLO %s\r\n", opts->helo ? opts->helo : "localhost");
	sc_at(file, line, d, "220 mx.example.net ESMTP ready\r\n", want, MSV_SMTP_WANT_READ);
	sc_at(file, line, d, ehlo, "", MSV_SMTP_READY);
}
#define drv_ready(d, opts, ehlo) drv_ready_at(__FILE__, __LINE__, d, opts, ehlo)

/* Plaintext options for most engine tests. */
SCRIPT_FN msv_smtp_options plain_opts(void)
{
	msv_smtp_options o = MSV_SMTP_OPTIONS_INIT;
	o.helo = "client.example";
	o.tls = MSV_TLS_NONE;
	return o;
}

SCRIPT_FN int drv_trace_has(const drv *d, const char *needle)
{
	if (!d->trace.data || !needle[0])
		return 0;
	return mem_find(d->trace.data, d->trace.len, needle, strlen(needle)) != NULL;
}

SCRIPT_FN int drv_out_has(const drv *d, const char *needle)
{
	if (!d->out.data || !needle[0])
		return 0;
	return mem_find(d->out.data, d->out.len, needle, strlen(needle)) != NULL;
}

SCRIPT_FN void expect_err_at(const char *file, int line, drv *d, msv_result code, msv_class cls)
{
	const msv_error *e = msv_smtp_error(d->s);
	if (e->code != code || e->cls != cls) {
		print_error("%s:%d: error %s/%s, expected %s/%s (reply %d \"%s\" \"%s\")\n", file, line,
		            msv_result_name(e->code), msv_class_name(e->cls), msv_result_name(code),
		            msv_class_name(cls), e->reply_code, e->server_text, e->message);
		fail();
	}
}
#define expect_err(d, code, cls) expect_err_at(__FILE__, __LINE__, d, code, cls)

/* ---- body helpers ---- */

/* Gives the body to a session in WANT_BODY (whole, or one byte per
 * msv_smtp_body call), ends it, and returns the event after the end.
 * During the body, any WANT_READ is answered by bdat_reply (NULL: a
 * WANT_READ there fails the test). */
SCRIPT_FN msv_smtp_event drv_body_at(const char *file, int line, drv *d, const char *body,
                                     size_t len, size_t step, const char *bdat_reply)
{
	size_t off = 0;
	msv_smtp_event ev = d->last;
	while (off < len) {
		if (ev == MSV_SMTP_WANT_READ && bdat_reply) {
			ev = drv_feed(d, bdat_reply, strlen(bdat_reply));
			continue;
		}
		expect_ev_at(file, line, d, ev, MSV_SMTP_WANT_BODY);
		size_t n = step && step < len - off ? step : len - off;
		msv_result r = msv_smtp_body(d->s, body + off, n);
		if (r != MSV_OK) {
			print_error("%s:%d: msv_smtp_body at offset %zu returned %s (%s)\n", file, line,
			            off, msv_result_name(r), msv_smtp_error(d->s)->message);
			fail();
		}
		off += n;
		ev = drv_run(d);
	}
	while (ev == MSV_SMTP_WANT_READ && bdat_reply)
		ev = drv_feed(d, bdat_reply, strlen(bdat_reply));
	expect_ev_at(file, line, d, ev, MSV_SMTP_WANT_BODY);
	msv_result r = msv_smtp_body_end(d->s);
	if (r != MSV_OK) {
		print_error("%s:%d: msv_smtp_body_end returned %s (%s)\n", file, line,
		            msv_result_name(r), msv_smtp_error(d->s)->message);
		fail();
	}
	return drv_run(d);
}
#define drv_body(d, body, len, step) drv_body_at(__FILE__, __LINE__, d, body, len, step, NULL)

#endif
