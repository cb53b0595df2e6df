/*
 * The sans-I/O SMTP client engine (RFC 5321 and extensions; see
 * missive/smtp.h).  Bytes in through msv_smtp_feed(), bytes out through
 * msv_smtp_output(), decisions through msv_smtp_step().
 *
 * Every command sent is pushed on a queue of expected replies; replies
 * are matched to commands strictly in order (RFC 2920 3.1), so a reply
 * with nothing outstanding is a protocol violation, not something to
 * guess about.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "body.h"
#include "core/core_int.h"
#include "sasl.h"
#include "states.h"

/* Input may hold a whole reply plus whatever else one read brought. */
#define IN_MAX (MSV_REPLY_MAX + 65536)
/* Output holds commands and at most one transformed body chunk. */
#define OUT_MAX ((size_t)1 << 30)
#define CMD_MAX 2048   /* one command line; addresses are at most 256 octets */
#define AUTH_STEPS_MAX 8 /* a server that keeps sending 334 is looping */
#define BDAT_CHUNK_DEFAULT 65536

typedef enum cmd {
	C_GREETING,
	C_EHLO,
	C_HELO,
	C_STARTTLS,
	C_AUTH,
	C_MAIL,
	C_RCPT,
	C_DATA,
	C_DOT,
	C_BDAT,
	C_RSET,
	C_NOOP,
	C_QUIT,
} cmd;

/* Everything the engine remembers about where it is, besides its state
 * and the queue of pending commands.  Each flag is set in one place and
 * read where a reply's meaning depends on it. */
typedef struct engine_flags {
	/* the session */
	bool tls_active;   /* encrypted: implicit TLS, or after STARTTLS */
	bool trace_states; /* trace every state move (debug builds, tests) */
	/* the current transaction; msv_smtp_begin() sets or clears them */
	bool bdat;        /* CHUNKING offered: the body goes as BDAT chunks */
	bool mail_failed; /* MAIL refused: the RCPT replies after it are not results */
	bool data_failed; /* the data (a BDAT chunk, or ".") was refused: later replies are not the result */
	bool discard;     /* 354 although nobody was accepted: end the data empty */
	bool utf8;        /* the envelope needs SMTPUTF8 */
	/* The server may still hold a transaction open (MAIL accepted, data
	 * never ended): RSET before the next MAIL, or it answers "503 nested
	 * MAIL" and every recipient of the next message is bounced. */
	bool need_rset;
	bool mail_after_rset; /* no PIPELINING: MAIL waits for RSET's reply */
	/* the previous transaction, overlapped with this one (see prev) */
	bool prev_pending; /* its final reply is outstanding */
	bool prev_done;    /* it arrived: MSV_SMTP_PREV_DONE is due */
} engine_flags;

typedef struct pending {
	cmd c;
	size_t idx; /* recipient index for C_RCPT, 1 for the last BDAT */
	uint64_t end; /* its last byte, counted in all bytes ever queued */
} pending;

struct msv_smtp {
	msv_smtp_options o;
	char *helo;
	char *user;
	char *secret;
	char server_host[256]; /* OAUTHBEARER host= and port= */
	unsigned server_port;
	msv_redactor *redact;
	msv_smtp_state state;  /* changed by set_state() only */
	msv_smtp_trigger trigger; /* what is moving it: the reply being handled, or a call */
	engine_flags f;
	msv_error err;
	msv_smtp_caps caps;

	msv_buf in;
	msv_buf out;
	size_t out_off;
	uint64_t written; /* bytes ever handed to msv_smtp_written() */
	msv_buf lines;  /* text lines of the last reply, for EHLO and 334 */
	msv_buf scratch; /* trace and command assembly */

	pending *pend;
	size_t pend_head, pend_len, pend_cap;

	msv_sasl sasl;

	/* the transaction */
	msv_smtp_txn txn;
	size_t rcpt_cap;
	const msv_envelope *env;
	msv_body_xf xf;
	msv_buf chunk; /* BDAT: transformed bytes not yet framed */

	/* The previous transaction while its reply to "." is outstanding and
	 * the next one has begun: RFC 2920 lets the end of one message's data
	 * and the next envelope share a write, one round trip per message. */
	msv_smtp_txn prev;
	size_t prev_cap;
};

const char *msv_smtp_state_name(const msv_smtp *s)
{
	return msv__smtp_state_str(s->state);
}

/* ---------------------------------------------------------------- util */

static void trace(msv_smtp *s, msv_trace_dir dir, const char *line, size_t n)
{
	if (!s->o.trace)
		return;
	msv_buf t;
	msv_buf_init(&t, CMD_MAX * 4);
	if (msv_redact(s->redact, &t, line, n) == MSV_OK)
		s->o.trace(s->o.trace_payload, dir, t.data ? t.data : "", t.len);
	msv_buf_free_secret(&t);
}

static void trace_reply(msv_smtp *s, const char *raw, size_t n)
{
	/* one trace line per reply line, without CRLF */
	size_t pos = 0;
	while (pos < n) {
		const char *e = memchr(raw + pos, '\n', n - pos);
		size_t end = e ? (size_t)(e - raw) : n;
		size_t len = end - pos;
		if (len && raw[pos + len - 1] == '\r')
			len--;
		trace(s, MSV_TRACE_IN, raw + pos, len);
		pos = end + 1;
	}
}

/* "state EHLO -> STARTTLS (on 2xx)", as curl's debug builds say it. */
static void trace_move(msv_smtp *s, msv_smtp_state from, msv_smtp_state to, const char *note)
{
	char line[96];
	int n = snprintf(line, sizeof(line), "state %s -> %s (on %s)%s", msv__smtp_state_str(from),
	                 msv__smtp_state_str(to), msv__smtp_trigger_str(s->trigger), note);
	if (n > 0)
		trace(s, MSV_TRACE_INFO, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

/* The only place the state changes (states.c has the table of moves).
 * A move the table does not list is a bug in the engine: the session
 * fails with MSV_E_STATE rather than carry on in a state whose replies
 * nobody planned for, which could send a message twice or report a
 * refused one as delivered. */
static void set_state(msv_smtp *s, msv_smtp_state to)
{
	msv_smtp_state from = s->state;
	if (from == to)
		return;
	bool legal = msv__smtp_move_allowed(from, s->trigger, to);
	if (!legal) {
		msv_error_set(&s->err, MSV_E_STATE, MSV_CLASS_LOCAL,
		              "internal error: illegal SMTP state change from %s to %s (on %s)",
		              msv__smtp_state_str(from), msv__smtp_state_str(to),
		              msv__smtp_trigger_str(s->trigger));
		to = ST_FAILED;
	}
	if (s->f.trace_states)
		trace_move(s, from, to, legal ? "" : " refused");
	s->state = to;
}

msv_result msv__smtp_force_state(msv_smtp *s, msv_smtp_state to)
{
	s->trigger = ON_CALL;
	set_state(s, to);
	return s->state == to ? MSV_OK : s->err.code;
}

void msv__smtp_trace_states(msv_smtp *s, int on)
{
	s->f.trace_states = on != 0;
}

static msv_result refuse(msv_smtp *s, msv_result code, msv_class cls, const char *fmt, ...)
	MSV_PRINTF(4, 5);
static msv_result fail(msv_smtp *s, msv_result code, msv_class cls, const char *fmt, ...)
	MSV_PRINTF(4, 5);

/* A call cannot be carried out: report it, send nothing, keep the state. */
static msv_result refuse(msv_smtp *s, msv_result code, msv_class cls, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	msv_error_vset(&s->err, code, cls, fmt, ap);
	va_end(ap);
	return code;
}

/* The session cannot go on. */
static msv_result fail(msv_smtp *s, msv_result code, msv_class cls, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	msv_error_vset(&s->err, code, cls, fmt, ap);
	va_end(ap);
	set_state(s, ST_FAILED);
	return code;
}

static void copy_reply_into_err(msv_error *e, const msv_smtp_reply *r)
{
	e->reply_code = r->code;
	memcpy(e->enhanced, r->enhanced, sizeof(e->enhanced));
	snprintf(e->server_text, sizeof(e->server_text), "%s", r->text);
}

/* The session fails because of this reply; its class decides retry. */
static msv_result fail_reply(msv_smtp *s, msv_result code, const msv_smtp_reply *r, const char *what)
{
	msv_class cls = msv_class_of_reply(r->code);
	if (cls == MSV_CLASS_NONE)
		cls = MSV_CLASS_PERMANENT;
	fail(s, code, cls, "%s: %d%s%s %s", what, r->code, r->enhanced[0] ? " " : "", r->enhanced,
	     r->text);
	copy_reply_into_err(&s->err, r);
	return code;
}

static msv_result push_pending(msv_smtp *s, cmd c, size_t idx)
{
	if (s->pend_head + s->pend_len == s->pend_cap) {
		if (s->pend_head) {
			memmove(s->pend, s->pend + s->pend_head, s->pend_len * sizeof(*s->pend));
			s->pend_head = 0;
		} else {
			size_t cap = s->pend_cap ? s->pend_cap * 2 : 16, bytes;
			if (msv_mul_size(&bytes, cap, sizeof(*s->pend)))
				return MSV_E_TOO_LARGE;
			pending *p = msv_realloc(s->pend, bytes);
			if (!p)
				return MSV_E_NOMEM;
			s->pend = p;
			s->pend_cap = cap;
		}
	}
	s->pend[s->pend_head + s->pend_len].c = c;
	s->pend[s->pend_head + s->pend_len].idx = idx;
	s->pend[s->pend_head + s->pend_len].end = s->written + (s->out.len - s->out_off);
	s->pend_len++;
	return MSV_OK;
}

/* Queues one command line.  traced, when not NULL, replaces the line in
 * the trace (AUTH payloads). */
static msv_result send_line(msv_smtp *s, cmd c, size_t idx, const char *line, size_t n,
                            const char *traced)
{
	msv_result r = msv_buf_add(&s->out, line, n);
	if (!r)
		r = msv_buf_add(&s->out, "\r\n", 2);
	if (!r)
		r = push_pending(s, c, idx);
	if (r)
		return fail(s, r, MSV_CLASS_LOCAL, "cannot queue command: %s", msv_strerror(r));
	if (traced)
		trace(s, MSV_TRACE_OUT, traced, strlen(traced));
	else
		trace(s, MSV_TRACE_OUT, line, n);
	return MSV_OK;
}

static msv_result send_cmd(msv_smtp *s, cmd c, size_t idx, const char *fmt, ...) MSV_PRINTF(4, 5);
static msv_result send_cmd(msv_smtp *s, cmd c, size_t idx, const char *fmt, ...)
{
	char line[CMD_MAX];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line))
		return fail(s, MSV_E_TOO_LARGE, MSV_CLASS_USAGE, "command line too long");
	return send_line(s, c, idx, line, (size_t)n, NULL);
}

/* ------------------------------------------------------------ lifecycle */

static char *dup_opt(const char *s)
{
	return s ? msv_strdup(s) : NULL;
}

msv_result msv_smtp_new(msv_smtp **out, const msv_smtp_options *opts)
{
	if (!msv__version_ok(opts->version, MSV_SMTP_OPTIONS_VERSION))
		return MSV_E_INVALID;
	msv_smtp *s = msv_calloc(1, sizeof(*s));
	if (!s)
		return MSV_E_NOMEM;
	s->o = *opts;
	s->helo = msv_strdup(opts->helo ? opts->helo : "localhost");
	s->user = dup_opt(opts->user);
	s->secret = dup_opt(opts->secret);
	msv_result r = msv_redactor_new(&s->redact);
	if (!s->helo || (opts->user && !s->user) || (opts->secret && !s->secret))
		r = MSV_E_NOMEM;
	if (!r && s->secret)
		r = msv_redactor_add(s->redact, s->secret, strlen(s->secret));
	if (r) {
		msv_smtp_free(s);
		return r;
	}
	s->o.helo = s->helo;
	s->o.user = s->user;
	s->o.secret = s->secret;
	msv_buf_init(&s->in, IN_MAX);
	msv_buf_init(&s->out, OUT_MAX);
	msv_buf_init(&s->lines, MSV_REPLY_MAX);
	msv_buf_init(&s->scratch, CMD_MAX * 4);
	msv_buf_init(&s->chunk, OUT_MAX);
	s->f.tls_active = opts->tls == MSV_TLS_IMPLICIT;
#ifndef NDEBUG
	s->f.trace_states = true;
#endif
	/* s->state is GREETING, the first state, from calloc (states.c) */
	r = push_pending(s, C_GREETING, 0);
	if (r) {
		msv_smtp_free(s);
		return r;
	}
	*out = s;
	return MSV_OK;
}

void msv_smtp_free(msv_smtp *s)
{
	if (!s)
		return;
	msv_free(s->helo);
	msv_free_secret(s->user);
	msv_free_secret(s->secret);
	msv_redactor_free(s->redact);
	msv_buf_free(&s->in);
	/* output may hold AUTH payloads */
	msv_buf_free_secret(&s->out);
	msv_buf_free(&s->lines);
	msv_buf_free_secret(&s->scratch);
	msv_buf_free(&s->chunk);
	msv_free(s->pend);
	msv_free(s->txn.rcpt);
	msv_free(s->prev.rcpt);
	msv_free(s);
}

const msv_error *msv_smtp_error(const msv_smtp *s)
{
	return &s->err;
}

msv_result msv_smtp_set_server(msv_smtp *s, const char *host, unsigned port)
{
	if (!host || strlen(host) >= sizeof(s->server_host) || strpbrk(host, "\001\r\n"))
		return MSV_E_INVALID;
	snprintf(s->server_host, sizeof(s->server_host), "%s", host);
	s->server_port = port;
	return MSV_OK;
}

int msv_smtp_token_refused(const msv_smtp *s)
{
	return s->sasl.token_refused && s->err.code == MSV_E_AUTH_FAILED;
}

const msv_smtp_caps *msv_smtp_caps_get(const msv_smtp *s)
{
	return &s->caps;
}

int msv_smtp_tls_active(const msv_smtp *s)
{
	return s->f.tls_active;
}

int msv_smtp_in_data(const msv_smtp *s)
{
	return s->state == ST_BODY || s->state == ST_DATA_END;
}

const msv_smtp_txn *msv_smtp_result(const msv_smtp *s)
{
	return &s->txn;
}

const msv_smtp_txn *msv_smtp_prev_result(const msv_smtp *s)
{
	return &s->prev;
}

/* --------------------------------------------------------- session setup */

static void start_auth(msv_smtp *s)
{
	/* Decided here, before any credential leaves: no AUTH on a session
	 * an attacker could read, unless the caller asked for exactly that. */
	if (!s->f.tls_active && !s->o.allow_plaintext_auth) {
		fail(s, MSV_E_PLAINTEXT_AUTH, MSV_CLASS_CONFIG,
		     "refusing to send credentials over a plaintext connection "
		     "(use TLS, or allow plaintext authentication explicitly)");
		return;
	}
	if (!(s->caps.flags & MSV_CAP_AUTH) || !s->caps.auth_mechs) {
		fail(s, MSV_E_NO_AUTH_MECH, MSV_CLASS_PERMANENT, "server does not offer AUTH");
		return;
	}
	msv_auth_mech m = msv__sasl_choose(s->caps.auth_mechs, s->f.tls_active, s->o.auth_token, s->o.auth);
	if (m == MSV_AUTH_AUTO) {
		if (s->o.auth != MSV_AUTH_AUTO)
			fail(s, MSV_E_NO_AUTH_MECH, MSV_CLASS_PERMANENT,
			     "server does not offer AUTH %s", msv_smtp_auth_mech_name(s->o.auth));
		else
			fail(s, MSV_E_NO_AUTH_MECH, MSV_CLASS_PERMANENT,
			     "server offers no supported AUTH mechanism");
		return;
	}
	s->sasl.mech = m;
	s->sasl.user = s->user;
	s->sasl.secret = s->secret ? s->secret : "";
	s->sasl.host = s->server_host;
	s->sasl.port = s->server_port;
	msv_buf *b = &s->scratch;
	msv_buf_reset(b);
	msv_result r = msv_buf_addf(b, "AUTH %s", msv_smtp_auth_mech_name(m));
	size_t cmdlen = b->len;
	if (!r)
		r = msv_buf_addc(b, ' ');
	if (!r)
		r = msv__sasl_start(&s->sasl, b);
	if (r) {
		fail(s, r, MSV_CLASS_LOCAL, "cannot start AUTH %s: %s", msv_smtp_auth_mech_name(m),
		     msv_strerror(r));
		return;
	}
	if (b->len == cmdlen + 1)
		b->len = cmdlen; /* no initial response */
	char traced[64];
	snprintf(traced, sizeof(traced), "AUTH %s%s", msv_smtp_auth_mech_name(m),
	         b->len > cmdlen ? " [redacted]" : "");
	set_state(s, ST_AUTH);
	send_line(s, C_AUTH, 0, b->data, b->len, traced);
	msv_wipe(b->data, b->len);
	msv_buf_reset(b);
}

/* Capabilities are known: STARTTLS if due, then AUTH, then idle. */
static void after_hello(msv_smtp *s)
{
	if (!s->f.tls_active && s->o.tls == MSV_TLS_STARTTLS) {
		if (!(s->caps.flags & MSV_CAP_STARTTLS)) {
			/* Never fall back to plaintext: that is the downgrade an
			 * attacker who strips STARTTLS from EHLO wants. */
			fail(s, MSV_E_NO_STARTTLS, MSV_CLASS_TEMPORARY,
			     "server does not offer STARTTLS, and TLS is required");
			return;
		}
		set_state(s, ST_STARTTLS);
		send_cmd(s, C_STARTTLS, 0, "STARTTLS");
		return;
	}
	if (s->user) {
		start_auth(s);
		return;
	}
	set_state(s, ST_READY);
}

static void send_ehlo(msv_smtp *s)
{
	set_state(s, ST_EHLO);
	send_cmd(s, C_EHLO, 0, "EHLO %s", s->helo);
}

msv_result msv_smtp_tls_started(msv_smtp *s)
{
	if (s->state != ST_TLS)
		return msv_error_set(&s->err, MSV_E_STATE, MSV_CLASS_USAGE,
		                     "TLS started outside STARTTLS (state %s)", msv__smtp_state_str(s->state));
	s->f.tls_active = true;
	/* RFC 3207 4.2: forget everything learnt before TLS. */
	memset(&s->caps, 0, sizeof(s->caps));
	send_ehlo(s);
	return s->state == ST_FAILED ? s->err.code : MSV_OK;
}

/* Appends " (status)" to the text in dst if it fits. */
static void append_status(char *dst, size_t cap, const char *status)
{
	size_t n = strlen(dst);
	if (n + 4 < cap)
		snprintf(dst + n, cap - n, " (%.*s)", (int)(cap - n - 4), status);
}

static void on_auth_reply(msv_smtp *s, const msv_smtp_reply *r)
{
	if (r->code == 235) {
		set_state(s, ST_READY);
		return;
	}
	if (r->code != 334) {
		fail_reply(s, MSV_E_AUTH_FAILED, r,
		           s->sasl.token_refused ? "bearer token refused" : "authentication refused");
		if (s->sasl.token_refused) { /* the provider's JSON status says why */
			append_status(s->err.server_text, sizeof(s->err.server_text), s->sasl.status);
			append_status(s->err.message, sizeof(s->err.message), s->sasl.status);
		}
		return;
	}
	if (s->sasl.step >= AUTH_STEPS_MAX) {
		fail(s, MSV_E_PROTOCOL, MSV_CLASS_TEMPORARY, "server kept the AUTH exchange going");
		return;
	}
	/* The challenge is the raw text after "334 " (lines holds it). */
	const char *ch = s->lines.data ? s->lines.data : "";
	size_t chn = s->lines.len;
	msv_buf *b = &s->scratch;
	msv_buf_reset(b);
	msv_result rc = msv__sasl_step(&s->sasl, ch, chn, b);
	if (rc) {
		fail(s, MSV_E_PROTOCOL, MSV_CLASS_TEMPORARY, "unexpected AUTH %s challenge from server",
		     msv_smtp_auth_mech_name(s->sasl.mech));
		return;
	}
	send_line(s, C_AUTH, 0, b->data ? b->data : "", b->len, "[redacted]");
	msv_wipe(b->data, b->len);
	msv_buf_reset(b);
}

/* --------------------------------------------------------- transactions */

static int is_2xx(const msv_smtp_reply *r)
{
	return r->code >= 200 && r->code < 300;
}

/* ended: the server answered the end of the data, which closes the
 * transaction on its side whatever the answer. */
static void txn_done(msv_smtp *s, int ended)
{
	s->f.need_rset = !s->f.mail_failed && !ended;
	set_state(s, ST_TXN_DONE);
}

/* The data was refused after RCPTs were accepted: nobody got it. */
static void data_refused(msv_smtp_txn *t, const msv_smtp_reply *r)
{
	t->data = *r;
	for (size_t i = 0; i < t->nrcpt; i++)
		if (t->rcpt[i].accepted) {
			t->rcpt[i].accepted = 0;
			t->rcpt[i].reply = *r;
		}
	t->accepted = 0;
}

static int pipelining(const msv_smtp *s)
{
	return (s->caps.flags & MSV_CAP_PIPELINING) != 0;
}

static void send_rcpt(msv_smtp *s, size_t i);
static void send_envelope(msv_smtp *s);

/* Envelope replies are all in: body, or done. */
static void envelope_complete(msv_smtp *s)
{
	if (s->f.mail_failed || !s->txn.accepted) {
		txn_done(s, 0);
		return;
	}
	msv__body_init(&s->xf, !s->f.bdat, s->o.body_line_max);
	set_state(s, ST_BODY);
}

/* MAIL (RFC 5321 4.3.2: S: 250  E: 451, 452, 455, 503, 550, 552, 553,
 * 555).  Refused: every recipient gets this reply; with PIPELINING the
 * RCPTs and DATA already sent are still answered, and DATA's reply ends
 * the transaction. */
static void on_mail_reply(msv_smtp *s, const msv_smtp_reply *r)
{
	s->txn.mail = *r;
	if (!is_2xx(r)) {
		s->f.mail_failed = true;
		for (size_t i = 0; i < s->txn.nrcpt; i++)
			s->txn.rcpt[i].reply = *r;
		if (!pipelining(s))
			txn_done(s, 0);
		return;
	}
	if (!pipelining(s))
		send_rcpt(s, 0);
}

/* RCPT (S: 250, 251  E: 450, 451, 452, 455, 503, 550-553, 555): one
 * result per recipient; the last one decides what follows. */
static void on_rcpt_reply(msv_smtp *s, size_t idx, const msv_smtp_reply *r)
{
	if (!s->f.mail_failed) {
		s->txn.rcpt[idx].reply = *r;
		if (is_2xx(r)) {
			s->txn.rcpt[idx].accepted = 1;
			s->txn.accepted++;
		}
	}
	if (idx + 1 < s->txn.nrcpt) {
		if (!pipelining(s))
			send_rcpt(s, idx + 1);
		return;
	}
	if (s->f.bdat)
		envelope_complete(s);
	else if (!pipelining(s)) {
		if (s->txn.accepted)
			send_cmd(s, C_DATA, 0, "DATA");
		else
			txn_done(s, 0);
	}
}

/* DATA (I: 354  E: 451, 503, 554). */
static void on_data_reply(msv_smtp *s, const msv_smtp_reply *r)
{
	if (r->code != 354) {
		if (!s->f.mail_failed && s->txn.accepted)
			data_refused(&s->txn, r);
		else
			s->txn.data = *r;
		txn_done(s, 0);
		return;
	}
	if (s->f.mail_failed || !s->txn.accepted) {
		/* RFC 2920 3.1: the server took DATA although it refused
		 * everyone; end the data at once, sending nothing. */
		s->f.discard = true;
		set_state(s, ST_DATA_END);
		send_cmd(s, C_DOT, 0, ".");
		return;
	}
	envelope_complete(s);
}

/* "." or a BDAT chunk (S: 250  E: 450, 451, 452, 550, 552, 554).  A "."
 * marked idx 1 answers the previous, overlapped transaction. */
static void on_data_end_reply(msv_smtp *s, const pending *p, const msv_smtp_reply *r)
{
	if (p->c == C_DOT && p->idx) {
		if (is_2xx(r))
			s->prev.data = *r;
		else
			data_refused(&s->prev, r);
		s->f.prev_pending = false;
		s->f.prev_done = true;
		return;
	}
	if (!s->f.discard && !s->f.data_failed && !is_2xx(r)) {
		s->f.data_failed = true;
		data_refused(&s->txn, r);
	}
	if (p->c == C_DOT || p->idx) { /* the end of the data */
		if (!s->f.data_failed && !s->f.discard)
			s->txn.data = *r;
		/* RFC 3030 leaves the state after a failed chunk vague */
		txn_done(s, !(s->f.bdat && s->f.data_failed));
	}
}

/* ------------------------------------------------------------ dispatch */

/* CONNECTION ESTABLISHMENT (S: 220  E: 554). */
static void on_greeting_reply(msv_smtp *s, const msv_smtp_reply *r)
{
	if (r->code != 220) {
		fail_reply(s, MSV_E_REPLY, r, "server refused the session at greeting");
		return;
	}
	send_ehlo(s);
}

/* EHLO (S: 250  E: 502, 504, 550). */
static void on_ehlo_reply(msv_smtp *s, const msv_smtp_reply *r)
{
	if (is_2xx(r)) {
		msv_smtp_parse_ehlo(&s->caps, s->lines.data ? s->lines.data : "", s->lines.len);
		after_hello(s);
	} else if (r->code >= 500) {
		/* RFC 5321 3.2: an old server that does not know EHLO */
		set_state(s, ST_HELO);
		send_cmd(s, C_HELO, 0, "HELO %s", s->helo);
	} else {
		fail_reply(s, MSV_E_REPLY, r, "server refused EHLO");
	}
}

/* HELO (S: 250  E: 502, 504, 550). */
static void on_helo_reply(msv_smtp *s, const msv_smtp_reply *r)
{
	if (!is_2xx(r)) {
		fail_reply(s, MSV_E_REPLY, r, "server refused HELO");
		return;
	}
	memset(&s->caps, 0, sizeof(s->caps));
	after_hello(s);
}

/* STARTTLS (RFC 3207 4: S: 220  E: 454, 501). */
static void on_starttls_reply(msv_smtp *s, const msv_smtp_reply *r)
{
	if (r->code != 220) {
		fail_reply(s, MSV_E_TLS, r, "server refused STARTTLS");
		return;
	}
	set_state(s, ST_TLS); /* process_input() checks what follows */
}

/* RSET and NOOP (S: 250).  An RSET sent before MAIL (need_rset) leaves
 * the state in ENVELOPE; without PIPELINING its reply lets MAIL go. */
static void on_rset_noop_reply(msv_smtp *s, cmd c, const msv_smtp_reply *r)
{
	if (!is_2xx(r)) {
		fail_reply(s, MSV_E_REPLY, r, c == C_RSET ? "server refused RSET" : "server refused NOOP");
		return;
	}
	if (s->f.mail_after_rset) {
		s->f.mail_after_rset = false;
		send_envelope(s);
	} else if (s->state != ST_ENVELOPE) {
		set_state(s, ST_READY);
	}
}

/* Takes the oldest pending command off the queue for reply r; 0 when r
 * answers nothing we sent (the session has failed then). */
static int pop_pending(msv_smtp *s, const msv_smtp_reply *r, pending *out)
{
	if (!s->pend_len && r->code == 421) {
		/* An idle session timed out on the server's side: it says so
		 * and closes.  Not a violation; the connection is just gone. */
		fail_reply(s, MSV_E_CLOSED, r, "server closed the idle session");
		return 0;
	}
	if (!s->pend_len) {
		fail(s, MSV_E_PROTOCOL, MSV_CLASS_TEMPORARY,
		     "server sent a reply nobody asked for: %d %s", r->code, r->text);
		return 0;
	}
	*out = s->pend[s->pend_head];
	/* A reply to a command still in our output buffer was sent before
	 * the server could have read the command. */
	if (out->end > s->written) {
		fail(s, MSV_E_PROTOCOL, MSV_CLASS_TEMPORARY,
		     "server replied before the command was sent: %d %s", r->code, r->text);
		return 0;
	}
	s->pend_head++;
	if (!--s->pend_len)
		s->pend_head = 0;
	return 1;
}

/* One reply, matched to the command it answers: one handler per command
 * (curl's *_resp), each moving the state as states.c's table says. */
static void dispatch_reply(msv_smtp *s, const msv_smtp_reply *r)
{
	pending p;
	if (!pop_pending(s, r, &p))
		return;
	/* 421: the server is shutting this session down, whatever was asked
	 * (RFC 5321 3.8).  Recipients not yet answered are not refused: the
	 * whole attempt is temporary. */
	if (r->code == 421 && p.c != C_QUIT && p.c != C_GREETING) {
		fail_reply(s, MSV_E_REPLY, r, "server is closing the connection");
		return;
	}
	switch (p.c) {
	case C_GREETING: on_greeting_reply(s, r); return;
	case C_EHLO: on_ehlo_reply(s, r); return;
	case C_HELO: on_helo_reply(s, r); return;
	case C_STARTTLS: on_starttls_reply(s, r); return;
	case C_AUTH: on_auth_reply(s, r); return;
	case C_MAIL: on_mail_reply(s, r); return;
	case C_RCPT: on_rcpt_reply(s, p.idx, r); return;
	case C_DATA: on_data_reply(s, r); return;
	case C_DOT:
	case C_BDAT: on_data_end_reply(s, &p, r); return;
	case C_RSET:
	case C_NOOP: on_rset_noop_reply(s, p.c, r); return;
	case C_QUIT: set_state(s, ST_CLOSED); return;
	}
}

/* While a reply is handled, its class is what moves the state. */
static void on_reply(msv_smtp *s, const msv_smtp_reply *r)
{
	s->trigger = msv__smtp_trigger_of(r->code);
	dispatch_reply(s, r);
	s->trigger = ON_CALL;
}

static void process_input(msv_smtp *s)
{
	while (s->in.len && s->state != ST_FAILED && s->state != ST_TLS) {
		msv_smtp_reply r;
		long n = msv_smtp_reply_parse(s->in.data, s->in.len, &r, &s->lines, &s->err);
		if (n < 0) {
			set_state(s, ST_FAILED);
			return;
		}
		if (n == 0)
			return;
		trace_reply(s, s->in.data, (size_t)n);
		msv_buf_consume(&s->in, (size_t)n);
		on_reply(s, &r);
	}
	/* Anything buffered after the 220 to STARTTLS was sent in plaintext
	 * and would be read as if it came through TLS: command injection
	 * (CVE-2011-0411 and its many relatives). */
	if (s->state == ST_TLS && s->in.len)
		fail(s, MSV_E_PROTOCOL, MSV_CLASS_TEMPORARY,
		     "server sent %zu unexpected bytes after its STARTTLS reply (possible command injection)",
		     s->in.len);
}

msv_result msv_smtp_feed(msv_smtp *s, const char *data, size_t len)
{
	if (s->state == ST_FAILED)
		return s->err.code;
	if (!len) {
		if (s->state == ST_QUIT || s->state == ST_CLOSED) {
			set_state(s, ST_CLOSED);
			return MSV_OK;
		}
		if (s->in.len)
			return fail(s, MSV_E_CLOSED, MSV_CLASS_TEMPORARY,
			            "server closed the connection in the middle of a reply (truncated reply)");
		return fail(s, MSV_E_CLOSED, MSV_CLASS_TEMPORARY,
		            "server closed the connection (state %s)", msv__smtp_state_str(s->state));
	}
	msv_result r = msv_buf_add(&s->in, data, len);
	if (r)
		return fail(s, MSV_E_PROTOCOL, MSV_CLASS_TEMPORARY, "server sent too much data at once");
	process_input(s);
	return s->state == ST_FAILED ? s->err.code : MSV_OK;
}

msv_smtp_event msv_smtp_step(msv_smtp *s)
{
	process_input(s);
	/* Before FAILED: the earlier message's final reply is definitive even
	 * when the session broke right after it (a 421 to the next MAIL). */
	if (s->f.prev_done) {
		s->f.prev_done = false;
		return MSV_SMTP_PREV_DONE;
	}
	if (s->state == ST_FAILED)
		return MSV_SMTP_FAILED;
	if (s->out_off < s->out.len)
		return MSV_SMTP_WANT_WRITE;
	switch (s->state) {
	case ST_TLS:
		return MSV_SMTP_WANT_TLS;
	case ST_READY:
		return MSV_SMTP_READY;
	case ST_BODY:
		return MSV_SMTP_WANT_BODY;
	case ST_TXN_DONE:
		set_state(s, ST_READY);
		return MSV_SMTP_TXN_DONE;
	case ST_CLOSED:
		return MSV_SMTP_CLOSED;
	default:
		return MSV_SMTP_WANT_READ;
	}
}

void msv_smtp_output(const msv_smtp *s, const char **data, size_t *len)
{
	*data = s->out.data ? s->out.data + s->out_off : "";
	*len = s->out.len - s->out_off;
}

void msv_smtp_written(msv_smtp *s, size_t n)
{
	size_t left = s->out.len - s->out_off;
	n = n < left ? n : left;
	s->out_off += n;
	s->written += n;
	if (s->out_off == s->out.len) {
		/* wipe: the buffer may have carried an AUTH payload */
		msv_wipe(s->out.data, s->out.len);
		msv_buf_reset(&s->out);
		s->out_off = 0;
	}
}

void msv_smtp_fail(msv_smtp *s, const msv_error *err)
{
	if (s->state == ST_FAILED)
		return;
	s->err = *err;
	set_state(s, ST_FAILED);
}

/* ------------------------------------------------------ transaction API */

/* Forward paths and reverse paths as they may appear between < and >:
 * no controls, spaces or brackets (command injection), at most 256
 * octets (RFC 5321 4.5.3.1.3). */
static int address_ok(const char *a, int *utf8)
{
	size_t n = strlen(a);
	if (n > 256)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)a[i];
		if (c <= 0x20 || c == 0x7f || c == '<' || c == '>')
			return 0;
		if (c >= 0x80)
			*utf8 = 1;
	}
	return 1;
}

/* RFC 3461 4: xtext, so '+', '=' and controls cannot break the line. */
static msv_result add_xtext(msv_buf *b, const char *v)
{
	msv_result r = MSV_OK;
	for (; *v && !r; v++) {
		unsigned char c = (unsigned char)*v;
		if (c < 33 || c > 126 || c == '+' || c == '=')
			r = msv_buf_addf(b, "+%02X", c);
		else
			r = msv_buf_addc(b, (char)c);
	}
	return r;
}

static int notify_ok(const char *v)
{
	if (!strcmp(v, "NEVER"))
		return 1;
	const char *p = v;
	while (*p) {
		size_t n = strcspn(p, ",");
		if (!((n == 7 && !strncmp(p, "SUCCESS", 7)) || (n == 7 && !strncmp(p, "FAILURE", 7)) ||
		      (n == 5 && !strncmp(p, "DELAY", 5))))
			return 0;
		p += n;
		if (*p == ',' && *++p == '\0')
			return 0;
	}
	return *v != '\0';
}

static int use_dsn(const msv_smtp *s)
{
	return (s->caps.flags & MSV_CAP_DSN) != 0;
}

static void send_rcpt(msv_smtp *s, size_t i)
{
	const char *a = s->env->rcpt[i];
	msv_buf *b = &s->scratch;
	msv_buf_reset(b);
	msv_result r = msv_buf_addf(b, "RCPT TO:<%s>", a);
	if (!r && use_dsn(s) && s->env->dsn_notify) {
		r = msv_buf_addf(b, " NOTIFY=%s", s->env->dsn_notify);
		int utf8 = 0;
		address_ok(a, &utf8);
		if (!r && !utf8) {
			r = msv_buf_addstr(b, " ORCPT=rfc822;");
			if (!r)
				r = add_xtext(b, a);
		}
	}
	if (r) {
		fail(s, r, MSV_CLASS_LOCAL, "cannot build RCPT: %s", msv_strerror(r));
		return;
	}
	send_line(s, C_RCPT, i, b->data, b->len, NULL);
}

static msv_result check_envelope(msv_smtp *s, const msv_envelope *env, int *utf8)
{
	char shown[96];
	if (!env->from || !env->nrcpt || !env->rcpt)
		return refuse(s, MSV_E_INVALID, MSV_CLASS_USAGE, "a sender and at least one recipient are required");
	if (!address_ok(env->from, utf8)) {
		msv_sanitize_utf8(shown, sizeof(shown), env->from, strlen(env->from));
		return refuse(s, MSV_E_BAD_ADDRESS, MSV_CLASS_USAGE,
		              "sender address \"%s\" contains a space, control character or angle bracket, or is too long",
		              shown);
	}
	for (size_t i = 0; i < env->nrcpt; i++) {
		const char *a = env->rcpt[i];
		if (!a || !*a || !address_ok(a, utf8)) {
			msv_sanitize_utf8(shown, sizeof(shown), a ? a : "", a ? strlen(a) : 0);
			return refuse(s, MSV_E_BAD_ADDRESS, MSV_CLASS_USAGE,
			              "recipient address \"%s\" is empty, contains a space, control character or angle bracket, or is too long",
			              shown);
		}
	}
	if (env->dsn_notify && !notify_ok(env->dsn_notify))
		return refuse(s, MSV_E_INVALID, MSV_CLASS_USAGE,
		              "DSN NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY");
	if (env->dsn_ret && strcmp(env->dsn_ret, "FULL") && strcmp(env->dsn_ret, "HDRS"))
		return refuse(s, MSV_E_INVALID, MSV_CLASS_USAGE, "DSN RET must be FULL or HDRS");
	if (env->envid) {
		size_t n = strlen(env->envid);
		int bad = n == 0 || n > 100; /* RFC 3461 4.4: at most 100 characters */
		for (size_t i = 0; i < n && !bad; i++)
			bad = (unsigned char)env->envid[i] < 32 || (unsigned char)env->envid[i] > 126;
		if (bad)
			return refuse(s, MSV_E_INVALID, MSV_CLASS_USAGE,
			              "DSN envelope id must be 1 to 100 printable ASCII characters");
	}
	if ((*utf8 || env->smtputf8) && !(s->caps.flags & MSV_CAP_SMTPUTF8))
		return refuse(s, MSV_E_NO_SMTPUTF8, MSV_CLASS_PERMANENT,
		              "an address or the message needs SMTPUTF8, which the server does not offer");
	if (env->body_8bit && !(s->caps.flags & (MSV_CAP_8BITMIME | MSV_CAP_SMTPUTF8)))
		return refuse(s, MSV_E_NO_8BITMIME, MSV_CLASS_PERMANENT,
		              "the message has 8-bit data and the server does not offer 8BITMIME");
	if (s->caps.size_max && env->size > s->caps.size_max)
		return refuse(s, MSV_E_MSG_TOO_BIG, MSV_CLASS_PERMANENT,
		              "message of %llu octets exceeds the server's limit of %llu (SIZE)",
		              (unsigned long long)env->size, (unsigned long long)s->caps.size_max);
	return MSV_OK;
}

/* The next transaction may begin before "." is answered: PIPELINING,
 * DATA (not BDAT, whose chunks are answered one by one), a real message
 * (not an emptied one), and only one transaction in that overlap. */
static int can_overlap(const msv_smtp *s)
{
	return s->state == ST_DATA_END && pipelining(s) && !s->f.bdat && !s->f.discard &&
	       !s->f.prev_pending && !s->f.prev_done && s->pend_len &&
	       s->pend[s->pend_head + s->pend_len - 1].c == C_DOT;
}

msv_result msv_smtp_begin(msv_smtp *s, const msv_envelope *env)
{
	int overlap = can_overlap(s);
	if (s->state != ST_READY && !overlap)
		return refuse(s, MSV_E_STATE, MSV_CLASS_USAGE, "cannot start a transaction in state %s",
		              msv__smtp_state_str(s->state));
	int utf8 = 0;
	msv_result r = check_envelope(s, env, &utf8);
	if (r)
		return r;
	/* Grow the recipient array the new transaction will use (with an
	 * overlap, the one of prev) before anything moves: a refusal must
	 * leave the engine as it was, or the finishing transaction would be
	 * reported as PREV_DONE to a caller that never saw a new one begin. */
	msv_smtp_txn *next = overlap ? &s->prev : &s->txn;
	size_t *next_cap = overlap ? &s->prev_cap : &s->rcpt_cap;
	if (env->nrcpt > *next_cap) {
		size_t bytes;
		if (msv_mul_size(&bytes, env->nrcpt, sizeof(*next->rcpt)))
			return refuse(s, MSV_E_TOO_LARGE, MSV_CLASS_USAGE, "too many recipients");
		msv_rcpt_result *p = msv_realloc(next->rcpt, bytes);
		if (!p)
			return refuse(s, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
		next->rcpt = p;
		*next_cap = env->nrcpt;
	}
	if (overlap) {
		/* the finishing transaction moves aside; "." now answers for it */
		msv_smtp_txn t = s->prev;
		size_t cap = s->prev_cap;
		s->prev = s->txn;
		s->prev_cap = s->rcpt_cap;
		s->txn = t;
		s->rcpt_cap = cap;
		s->f.prev_pending = true;
		s->pend[s->pend_head + s->pend_len - 1].idx = 1;
	}
	memset(&s->txn.mail, 0, sizeof(s->txn.mail));
	memset(&s->txn.data, 0, sizeof(s->txn.data));
	s->txn.nrcpt = env->nrcpt;
	s->txn.accepted = 0;
	for (size_t i = 0; i < env->nrcpt; i++) {
		memset(&s->txn.rcpt[i], 0, sizeof(s->txn.rcpt[i]));
		s->txn.rcpt[i].address = env->rcpt[i];
	}
	s->env = env;
	s->f.bdat = (s->caps.flags & MSV_CAP_CHUNKING) != 0;
	s->f.mail_failed = s->f.data_failed = s->f.discard = false;
	msv_buf_reset(&s->chunk);

	s->f.utf8 = utf8 || env->smtputf8;
	set_state(s, ST_ENVELOPE);
	if (s->f.need_rset) {
		s->f.need_rset = false;
		send_cmd(s, C_RSET, 0, "RSET");
		/* Without PIPELINING, MAIL must wait for RSET's reply. */
		if (!pipelining(s)) {
			s->f.mail_after_rset = true;
			return s->state == ST_FAILED ? s->err.code : MSV_OK;
		}
	}
	send_envelope(s);
	return s->state == ST_FAILED ? s->err.code : MSV_OK;
}

static void send_envelope(msv_smtp *s)
{
	const msv_envelope *env = s->env;
	msv_buf *b = &s->scratch;
	msv_buf_reset(b);
	msv_result r = msv_buf_addf(b, "MAIL FROM:<%s>", env->from);
	if (!r && (s->caps.flags & MSV_CAP_SIZE) && env->size)
		r = msv_buf_addf(b, " SIZE=%llu", (unsigned long long)env->size);
	if (!r && env->body_8bit && (s->caps.flags & MSV_CAP_8BITMIME))
		r = msv_buf_addstr(b, " BODY=8BITMIME");
	if (!r && s->f.utf8)
		r = msv_buf_addstr(b, " SMTPUTF8");
	if (!r && use_dsn(s) && env->dsn_ret)
		r = msv_buf_addf(b, " RET=%s", env->dsn_ret);
	if (!r && use_dsn(s) && env->envid) {
		r = msv_buf_addstr(b, " ENVID=");
		if (!r)
			r = add_xtext(b, env->envid);
	}
	if (r) {
		fail(s, r, MSV_CLASS_LOCAL, "cannot build MAIL: %s", msv_strerror(r));
		return;
	}
	send_line(s, C_MAIL, 0, b->data, b->len, NULL);
	if (pipelining(s)) {
		/* RFC 2920: the whole envelope in one write, one round trip. */
		for (size_t i = 0; i < env->nrcpt && s->state != ST_FAILED; i++)
			send_rcpt(s, i);
		if (!s->f.bdat && s->state != ST_FAILED)
			send_cmd(s, C_DATA, 0, "DATA");
	}
}

/* Frames the first n bytes of the chunk buffer as one BDAT. */
static msv_result bdat_flush(msv_smtp *s, size_t n, int last)
{
	char head[64];
	int hn = snprintf(head, sizeof(head), "BDAT %zu%s", n, last ? " LAST" : "");
	msv_result r = msv_buf_add(&s->out, head, (size_t)hn);
	if (!r)
		r = msv_buf_add(&s->out, "\r\n", 2);
	if (!r)
		r = msv_buf_add(&s->out, s->chunk.data ? s->chunk.data : "", n);
	if (!r)
		r = push_pending(s, C_BDAT, (size_t)last);
	if (r)
		return fail(s, r, MSV_CLASS_LOCAL, "cannot queue BDAT: %s", msv_strerror(r));
	trace(s, MSV_TRACE_OUT, head, (size_t)hn);
	msv_buf_consume(&s->chunk, n);
	return MSV_OK;
}

static msv_result body_error(msv_smtp *s, msv_result r, size_t bad_line)
{
	/* The data cannot be ended cleanly any more: the connection must be
	 * dropped, and the server discards what it got (RFC 5321 4.1.1.4). */
	if (r == MSV_E_BAD_MESSAGE && s->xf.nul)
		return fail(s, r, MSV_CLASS_USAGE, "message line %zu contains a NUL octet", bad_line);
	if (r == MSV_E_BAD_MESSAGE)
		return fail(s, r, MSV_CLASS_USAGE, "message line %zu is longer than %zu octets", bad_line,
		            s->xf.line_max);
	return fail(s, r, MSV_CLASS_LOCAL, "cannot queue message data: %s", msv_strerror(r));
}

msv_result msv_smtp_body(msv_smtp *s, const char *data, size_t len)
{
	if (s->state != ST_BODY)
		return refuse(s, MSV_E_STATE, MSV_CLASS_USAGE, "message data not expected in state %s",
		              msv__smtp_state_str(s->state));
	size_t bad = 0;
	msv_buf *dst = s->f.bdat ? &s->chunk : &s->out;
	msv_result r = msv__body_add(&s->xf, dst, data, len, &bad);
	if (r)
		return body_error(s, r, bad);
	size_t chunk = s->o.bdat_chunk ? s->o.bdat_chunk : BDAT_CHUNK_DEFAULT;
	while (s->f.bdat && s->chunk.len >= chunk && !r)
		r = bdat_flush(s, chunk, 0);
	return r;
}

msv_result msv_smtp_body_end(msv_smtp *s)
{
	if (s->state != ST_BODY)
		return refuse(s, MSV_E_STATE, MSV_CLASS_USAGE, "end of data not expected in state %s",
		              msv__smtp_state_str(s->state));
	msv_result r = msv__body_finish(&s->xf, s->f.bdat ? &s->chunk : &s->out);
	if (r)
		return body_error(s, r, 0);
	set_state(s, ST_DATA_END);
	if (s->f.bdat)
		return bdat_flush(s, s->chunk.len, 1);
	return send_cmd(s, C_DOT, 0, ".");
}

static msv_result simple_cmd(msv_smtp *s, cmd c, msv_smtp_state st, const char *word)
{
	if (s->state != ST_READY)
		return refuse(s, MSV_E_STATE, MSV_CLASS_USAGE, "cannot send %s in state %s", word,
		              msv__smtp_state_str(s->state));
	set_state(s, st);
	return send_cmd(s, c, 0, "%s", word);
}

msv_result msv_smtp_rset(msv_smtp *s)
{
	msv_result r = simple_cmd(s, C_RSET, ST_RSET, "RSET");
	if (!r)
		s->f.need_rset = false;
	return r;
}

msv_result msv_smtp_noop(msv_smtp *s)
{
	return simple_cmd(s, C_NOOP, ST_NOOP, "NOOP");
}

msv_result msv_smtp_quit(msv_smtp *s)
{
	return simple_cmd(s, C_QUIT, ST_QUIT, "QUIT");
}
