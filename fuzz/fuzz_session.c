/* libFuzzer target: a whole msv_smtp session against a fuzzed server.
 *
 * Input: four option bytes, then the server's bytes.
 *   byte 0: bits 0-1 TLS mode (0 none, 1 STARTTLS, 2 implicit, 3 none);
 *           bit 2 credentials; bit 3 allow plaintext AUTH; bit 4 the
 *           secret is a token; bits 5-7 mechanism (modulo 5, 0 = AUTO)
 *   byte 1: bit 0 prepend a canned greeting and EHLO reply offering
 *           bit 1 PIPELINING, bit 2 CHUNKING, bit 3 AUTH (all four
 *           mechanisms), and always 8BITMIME, SMTPUTF8, DSN, SIZE;
 *           bit 4 BDAT chunks of 7 octets; bit 5 8-bit body;
 *           bit 6 a UTF-8 recipient; bit 7 DSN parameters
 *   byte 2: server bytes per feed (0: all at once); bit 7 set: the
 *           driver writes at most 5 octets per msv_smtp_written call
 *   byte 3: bits 0-1 recipients - 1; bits 2-5 body bytes per
 *           msv_smtp_body call (0: whole); bit 6 declare a SIZE
 * The driver does what the engine asks (begin twice, then QUIT), and
 * closes the connection when the server's bytes run out.  Checks: no
 * crash, no leak, no loop, no secret in any trace line, events
 * consistent with the calls. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "missive/smtp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SECRET "fuzz-Secret-pw-42"
#define SECRET_B64 "ZnV6ei1TZWNyZXQtcHctNDI="

static const char body_text[] =
	"From: a@example.com\r\nSubject: fuzz\n\r\n.line\r\n..\n.\r\n\rlast\xc3\xa9 line";

static const char *mem_find(const char *h, size_t hn, const char *n)
{
	size_t nn = strlen(n);
	for (size_t i = 0; i + nn <= hn; i++)
		if (!memcmp(h + i, n, nn))
			return h + i;
	return NULL;
}

/* payload: non-NULL when the session holds the secret */
static void trace_cb(void *payload, msv_trace_dir dir, const char *line, size_t len)
{
	(void)dir;
	if (len && !line)
		abort();
	if (payload && (mem_find(line, len, SECRET) || mem_find(line, len, SECRET_B64)))
		abort(); /* a secret in a trace, even one the server echoed */
	if (memchr(line, '\n', len))
		abort(); /* one line per call */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 4)
		return 0;
	uint8_t o0 = data[0], o1 = data[1], o2 = data[2], o3 = data[3];
	data += 4;
	size -= 4;

	/* the server's bytes, after an optional canned prefix */
	msv_buf srv;
	msv_buf_init(&srv, 1 << 22);
	int ok = 1;
	if (o1 & 1) {
		ok = !msv_buf_addstr(&srv, "220 fuzz.example ESMTP\r\n250-fuzz.example\r\n");
		if (ok && (o1 & 2))
			ok = !msv_buf_addstr(&srv, "250-PIPELINING\r\n");
		if (ok && (o1 & 4))
			ok = !msv_buf_addstr(&srv, "250-CHUNKING\r\n");
		if (ok && (o1 & 8))
			ok = !msv_buf_addstr(&srv, "250-AUTH PLAIN LOGIN CRAM-MD5 XOAUTH2\r\n");
		if (ok)
			ok = !msv_buf_addstr(&srv, "250-SIZE 100000\r\n250-DSN\r\n250-SMTPUTF8\r\n"
			                           "250 8BITMIME\r\n");
	}
	if (ok && size)
		ok = !msv_buf_add(&srv, data, size);
	if (!ok) {
		msv_buf_free(&srv);
		return 0;
	}

	msv_smtp_options opts = MSV_SMTP_OPTIONS_INIT;
	static const msv_tls_mode modes[4] = {MSV_TLS_NONE, MSV_TLS_STARTTLS, MSV_TLS_IMPLICIT,
	                                      MSV_TLS_NONE};
	opts.tls = modes[o0 & 3];
	opts.helo = "client.fuzz";
	if (o0 & 4) {
		opts.user = "fuzzuser";
		opts.secret = SECRET;
	}
	opts.allow_plaintext_auth = (o0 >> 3) & 1;
	opts.auth_token = (o0 >> 4) & 1;
	opts.auth = (msv_auth_mech)((o0 >> 5) % 5);
	opts.bdat_chunk = (o1 & 16) ? 7 : 0;
	opts.trace = trace_cb;
	opts.trace_payload = opts.secret ? &opts : NULL;

	static const char *const rcpts_ascii[4] = {"r1@example.org", "r2+x@example.org",
	                                           "r3@example.net", "r4@example.com"};
	const char *rcpts[4];
	memcpy(rcpts, rcpts_ascii, sizeof(rcpts));
	if (o1 & 64)
		rcpts[0] = "j\xc3\xb6rg@example.org";
	msv_envelope env;
	memset(&env, 0, sizeof(env));
	env.from = "sender@example.com";
	env.rcpt = rcpts;
	env.nrcpt = (size_t)(o3 & 3) + 1;
	env.body_8bit = (o1 >> 5) & 1;
	if (o1 & 128) {
		env.dsn_notify = "SUCCESS,FAILURE";
		env.dsn_ret = "HDRS";
		env.envid = "fuzz=id+1";
	}
	if (o3 & 64)
		env.size = sizeof(body_text) + 8;
	size_t feed_step = o2 & 127;
	size_t write_max = (o2 & 128) ? 5 : 0;
	size_t body_step = (o3 >> 2) & 15;

	msv_smtp *s = NULL;
	if (msv_smtp_new(&s, &opts) != MSV_OK) {
		msv_buf_free(&srv);
		return 0;
	}
	size_t pos = 0, body_off = 0;
	int closed = 0, quit = 0, txns = 0, body_ended = 0;
	for (int iter = 0;; iter++) {
		if (iter > 200000)
			abort(); /* the engine stopped making progress */
		msv_smtp_event ev = msv_smtp_step(s);
		if (ev == MSV_SMTP_CLOSED || ev == MSV_SMTP_FAILED) {
			const msv_error *e = msv_smtp_error(s);
			if (ev == MSV_SMTP_FAILED && e->code == MSV_OK)
				abort(); /* failed without saying why */
			break;
		}
		switch (ev) {
		case MSV_SMTP_WANT_WRITE: {
			const char *p = NULL;
			size_t n = 0;
			msv_smtp_output(s, &p, &n);
			if (!n || !p)
				abort();
			if (opts.secret && mem_find(p, n, SECRET))
				abort(); /* the plain password never goes on the wire */
			msv_smtp_written(s, write_max && write_max < n ? write_max : n);
			break;
		}
		case MSV_SMTP_WANT_READ:
			if (closed)
				abort(); /* reading after the close was reported */
			if (pos >= srv.len) {
				(void)msv_smtp_feed(s, "", 0);
				closed = 1;
			} else {
				size_t n = feed_step && feed_step < srv.len - pos ? feed_step : srv.len - pos;
				(void)msv_smtp_feed(s, srv.data + pos, n);
				pos += n;
			}
			break;
		case MSV_SMTP_WANT_TLS:
			if (msv_smtp_tls_started(s) != MSV_OK) {
				msv_error err;
				msv_error_clear(&err);
				msv_error_set(&err, MSV_E_TLS, MSV_CLASS_TEMPORARY, "handshake refused");
				msv_smtp_fail(s, &err);
			}
			break;
		case MSV_SMTP_READY:
			if (txns < 2) {
				txns++;
				body_off = 0;
				body_ended = 0;
				if (msv_smtp_begin(s, &env) == MSV_OK)
					break;
				if (msv_smtp_step(s) != MSV_SMTP_READY)
					abort(); /* a refused begin leaves the session READY */
			}
			if (!quit) {
				quit = 1;
				if (msv_smtp_quit(s) != MSV_OK)
					abort();
			} else {
				abort(); /* READY after QUIT */
			}
			break;
		case MSV_SMTP_WANT_BODY:
			if (body_ended)
				abort(); /* body asked for again after its end */
			if (body_off < sizeof(body_text) - 1) {
				size_t left = sizeof(body_text) - 1 - body_off;
				size_t n = body_step && body_step < left ? body_step : left;
				if (msv_smtp_body(s, body_text + body_off, n) != MSV_OK)
					abort();
				body_off += n;
			} else {
				if (msv_smtp_body_end(s) != MSV_OK)
					abort();
				body_ended = 1;
			}
			break;
		case MSV_SMTP_TXN_DONE: {
			const msv_smtp_txn *t = msv_smtp_result(s);
			if (!t || t->nrcpt != env.nrcpt || t->accepted > t->nrcpt)
				abort();
			size_t acc = 0;
			for (size_t i = 0; i < t->nrcpt; i++) {
				if (t->rcpt[i].address != rcpts[i])
					abort();
				acc += t->rcpt[i].accepted ? 1 : 0;
			}
			if (acc != t->accepted)
				abort();
			/* the next step must be READY */
			if (msv_smtp_step(s) != MSV_SMTP_READY)
				abort();
			break;
		}
		case MSV_SMTP_PREV_DONE:
			abort(); /* no transaction here begins before the last one ended */
		case MSV_SMTP_CLOSED:
		case MSV_SMTP_FAILED:
			break;
		}
	}
	msv_smtp_free(s);
	msv_buf_free(&srv);
	return 0;
}
