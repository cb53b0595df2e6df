/*
 * missive/smtp.h - the SMTP client: a sans-I/O protocol engine and a
 * blocking driver with TLS.
 *
 * RFCs: 5321 (SMTP), 1869/5321 (EHLO), 2920 (PIPELINING), 3030 (CHUNKING,
 * BDAT), 1870 (SIZE), 6152 (8BITMIME), 6531 (SMTPUTF8), 3461 (DSN),
 * 2034/3463 (enhanced status codes), 3207 (STARTTLS), 8314 (implicit TLS),
 * 4954 (AUTH), 4616 (PLAIN), 2195 (CRAM-MD5), Google's XOAUTH2, 7628
 * (OAUTHBEARER).
 *
 * TWO WAYS TO USE IT
 *   msv_client_* is what most callers want: it resolves, connects, does
 *   TLS and AUTH, and sends messages, blocking with timeouts.
 *
 *   msv_smtp_* is the protocol engine underneath.  It never touches a
 *   socket: the caller feeds it the bytes the server sent, writes out the
 *   bytes it produces, and reacts to the events msv_smtp_step() returns.
 *   An event loop drives thousands of sessions with it.
 *
 * ERROR CONTRACT
 *   Functions return MSV_OK or an msv_result.  On failure the handle's
 *   msv_error (msv_smtp_error(), msv_client_error()) says what and why;
 *   on success it is untouched.  A session that failed stays failed: free
 *   it.  Refused recipients are not session errors: they are reported per
 *   recipient in msv_smtp_txn.
 *
 * SECURITY DEFAULTS
 *   TLS is required (STARTTLS) and verified unless the caller says
 *   otherwise; a server that does not offer STARTTLS fails the session,
 *   never downgrades it.  Credentials are never sent without TLS unless
 *   allow_plaintext_auth is set.  Bytes the server sends together with its
 *   220 reply to STARTTLS fail the session (command injection).  Traces
 *   never contain AUTH payloads or any registered secret.
 */
#ifndef MISSIVE_SMTP_H
#define MISSIVE_SMTP_H

#include "missive/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum msv_tls_mode {
	MSV_TLS_STARTTLS = 0, /* STARTTLS required and verified (default) */
	MSV_TLS_IMPLICIT,     /* TLS from the first byte (port 465) */
	MSV_TLS_NONE,         /* plaintext: only when asked for by name */
} msv_tls_mode;

typedef enum msv_auth_mech {
	MSV_AUTH_AUTO = 0, /* best offered: see msv_smtp_options.auth */
	MSV_AUTH_PLAIN,
	MSV_AUTH_LOGIN,
	MSV_AUTH_CRAM_MD5,
	MSV_AUTH_XOAUTH2,
	MSV_AUTH_OAUTHBEARER, /* RFC 7628 */
} msv_auth_mech;

/* Returns "PLAIN", "LOGIN", ... and parses them (case-insensitive). */
MSV_EXTERN const char *msv_smtp_auth_mech_name(msv_auth_mech m);
MSV_EXTERN int msv_smtp_auth_mech_parse(const char *s, msv_auth_mech *out);

/* EHLO capabilities (RFC 5321 4.1.1.1 and the extension RFCs). */
#define MSV_CAP_PIPELINING (1u << 0)
#define MSV_CAP_CHUNKING (1u << 1)
#define MSV_CAP_SIZE (1u << 2)
#define MSV_CAP_8BITMIME (1u << 3)
#define MSV_CAP_SMTPUTF8 (1u << 4)
#define MSV_CAP_DSN (1u << 5)
#define MSV_CAP_ENHANCEDSTATUSCODES (1u << 6)
#define MSV_CAP_STARTTLS (1u << 7)
#define MSV_CAP_AUTH (1u << 8)
#define MSV_CAP_BINARYMIME (1u << 9)

typedef struct msv_smtp_caps {
	unsigned flags;      /* MSV_CAP_* */
	unsigned auth_mechs; /* bit (1u << msv_auth_mech) per offered mechanism */
	uint64_t size_max;   /* SIZE argument; 0 when absent or unlimited */
	int esmtp;           /* 1 after EHLO, 0 after the HELO fallback */
} msv_smtp_caps;

/*
 * Parses the lines of a 250 reply to EHLO (everything after "250-" or
 * "250 ", lines separated by CRLF) into caps.  The first line (the
 * server's name) is skipped.  Unknown keywords are ignored.
 */
MSV_EXTERN msv_result msv_smtp_parse_ehlo(msv_smtp_caps *caps, const char *text, size_t len);

/* ---- replies ---- */

/* RFC 5321 4.5.3.1.5 allows 512 octets per reply line; real servers send
 * longer ones (long EHLO AUTH lists, banner art), so allow 8x that.
 * Counted without the CRLF. */
#define MSV_REPLY_LINE_MAX 4096
/* Bounds a multi-line reply so a hostile server cannot grow it forever. */
#define MSV_REPLY_MAX 65536
#define MSV_REPLY_LINES_MAX 256

/* A reply as reported to callers. */
typedef struct msv_smtp_reply {
	int code;                        /* 0: no reply (command never answered) */
	char enhanced[MSV_ENHANCED_MAX]; /* "5.1.1", or "" */
	/* Every line's text after the code, joined by single spaces, with an
	 * enhanced code that only repeats the first line's dropped (so a
	 * multi-line 550 reads as one sentence); sanitized, truncated. */
	char text[MSV_TEXT_MAX];
} msv_smtp_reply;

/*
 * Reply accumulator: feeds bytes, reports when a complete reply has
 * arrived.  Protocol-agnostic (SMTP and LMTP share it).
 *
 * msv_smtp_reply_parse() looks at buf[0..len) and returns:
 *   >0  the number of bytes forming one complete reply, filled into *out;
 *       lines holds the reply's text lines after "NNN-"/"NNN " joined by
 *       CRLF (for EHLO parsing), when lines is not NULL;
 *    0  more bytes are needed;
 *   <0  -msv_result: the reply is malformed or too large (err says why).
 * Enhanced codes are sanitized as Postfix does: a class digit that does
 * not match the reply's first digit turns the code into "<c>.0.0", c
 * being the reply's first digit.
 */
MSV_EXTERN long msv_smtp_reply_parse(const char *buf, size_t len, msv_smtp_reply *out,
                                     msv_buf *lines, msv_error *err);

/* ---- envelope and results ---- */

typedef struct msv_envelope {
	const char *from;           /* reverse path; "" for the null sender <> */
	const char *const *rcpt;    /* forward paths */
	size_t nrcpt;
	uint64_t size;              /* message size in octets with CRLF line ends; 0: unknown */
	int body_8bit;              /* message has octets >= 0x80: BODY=8BITMIME */
	int smtputf8;               /* message needs SMTPUTF8 (also set when an address is UTF-8) */
	const char *dsn_notify;     /* "NEVER" or a list of SUCCESS,FAILURE,DELAY; NULL: none */
	const char *dsn_ret;        /* "FULL" or "HDRS"; NULL: none */
	const char *envid;          /* DSN envelope id; NULL: none */
} msv_envelope;

typedef struct msv_rcpt_result {
	const char *address; /* points into the caller's envelope */
	int accepted;        /* 1: the server took responsibility for this recipient */
	msv_smtp_reply reply; /* RCPT reply; when RCPT was accepted but the
	                         data was refused, that final reply */
} msv_rcpt_result;

typedef struct msv_smtp_txn {
	msv_smtp_reply mail;  /* reply to MAIL */
	msv_smtp_reply data;  /* final reply after the data (or DATA's refusal) */
	msv_rcpt_result *rcpt;
	size_t nrcpt;
	size_t accepted;      /* how many recipients were accepted */
} msv_smtp_txn;

/* ---- the sans-I/O engine ---- */

typedef enum msv_trace_dir {
	MSV_TRACE_IN = 0, /* from the server */
	MSV_TRACE_OUT,    /* to the server */
	MSV_TRACE_INFO,   /* what the client did (TLS, connection) */
} msv_trace_dir;

/* One protocol line without its CRLF; AUTH payloads already redacted. */
typedef void (*msv_trace_fn)(void *payload, msv_trace_dir dir, const char *line, size_t len);

typedef struct msv_smtp_options {
	unsigned version;      /* MSV_SMTP_OPTIONS_VERSION */
	const char *helo;      /* EHLO/HELO name; NULL: "localhost" */
	msv_tls_mode tls;
	const char *user;      /* NULL: no AUTH */
	const char *secret;    /* password, or the bearer token for XOAUTH2 */
	/* AUTO picks, among the mechanisms offered: OAUTHBEARER, else
	 * XOAUTH2, when the secret is a token (auth_token set); else over TLS PLAIN, LOGIN, CRAM-MD5;
	 * without TLS (only when allowed) CRAM-MD5 first, as it does not
	 * reveal the password. */
	msv_auth_mech auth;
	int auth_token;        /* secret is an OAuth bearer token */
	int allow_plaintext_auth;
	size_t body_line_max;  /* longest body line, without CRLF; 0: 998 (RFC 5321 4.5.3.1.6) */
	size_t bdat_chunk;     /* largest BDAT chunk; 0: 64 KiB */
	msv_trace_fn trace;
	void *trace_payload;
} msv_smtp_options;

#define MSV_SMTP_OPTIONS_VERSION 1
#define MSV_SMTP_OPTIONS_INIT                                                    \
	{                                                                            \
		.version = MSV_SMTP_OPTIONS_VERSION, .tls = MSV_TLS_STARTTLS,            \
		.auth = MSV_AUTH_AUTO,                                                   \
	}

typedef enum msv_smtp_event {
	MSV_SMTP_WANT_WRITE = 0, /* write msv_smtp_output(), then msv_smtp_written() */
	MSV_SMTP_WANT_READ,      /* read from the server, then msv_smtp_feed() */
	MSV_SMTP_WANT_TLS,       /* do the TLS handshake, then msv_smtp_tls_started() */
	MSV_SMTP_READY,          /* session idle: msv_smtp_begin(), _noop(), _rset(), _quit() */
	MSV_SMTP_WANT_BODY,      /* give message bytes with msv_smtp_body(), then _body_end() */
	MSV_SMTP_TXN_DONE,       /* msv_smtp_result() holds the outcome; next step is READY */
	MSV_SMTP_CLOSED,         /* QUIT answered: close the connection */
	MSV_SMTP_FAILED,         /* msv_smtp_error() says why: close the connection */
	MSV_SMTP_PREV_DONE,      /* msv_smtp_prev_result() holds the previous transaction's outcome */
} msv_smtp_event;

typedef struct msv_smtp msv_smtp;

/* Copies what it needs from opts (strings included). */
MSV_EXTERN MSV_WUR msv_result msv_smtp_new(msv_smtp **out, const msv_smtp_options *opts);
/* The server's name and port as the client connected to them, for
 * OAUTHBEARER's host= and port= (RFC 7628 3.1); before AUTH. */
MSV_EXTERN MSV_WUR msv_result msv_smtp_set_server(msv_smtp *s, const char *host, unsigned port);
/* Wipes the secret and frees everything. */
MSV_EXTERN void msv_smtp_free(msv_smtp *s);

/* Tells what the session needs next.  Call after every other call. */
MSV_EXTERN msv_smtp_event msv_smtp_step(msv_smtp *s);

/* Bytes to send.  The pointer stays valid until the next call other
 * than msv_smtp_output() itself. */
MSV_EXTERN void msv_smtp_output(const msv_smtp *s, const char **data, size_t *len);
MSV_EXTERN void msv_smtp_written(msv_smtp *s, size_t n);

/* Bytes the server sent.  len 0 means the server closed the connection. */
MSV_EXTERN msv_result msv_smtp_feed(msv_smtp *s, const char *data, size_t len);
/* The driver's TLS handshake succeeded: the engine says EHLO again and
 * forgets the capabilities it learnt before TLS (RFC 3207 4.2). */
MSV_EXTERN msv_result msv_smtp_tls_started(msv_smtp *s);
/* The driver hit an error (I/O, timeout, TLS): the session fails with it. */
MSV_EXTERN void msv_smtp_fail(msv_smtp *s, const msv_error *err);

/* Starts a transaction: when READY, or right after msv_smtp_body_end()
 * while "." is still unanswered if the server offers PIPELINING and not
 * CHUNKING: the end of one message and the next envelope then share a
 * write (one round trip per message), and MSV_SMTP_PREV_DONE reports the
 * earlier one when its reply arrives.  MAIL, every RCPT and DATA go out in
 * one write when the server offers PIPELINING.  Checks before sending:
 * addresses (no CR, LF, NUL, spaces or angle brackets), SIZE against the
 * server's limit, SMTPUTF8 and 8BITMIME availability.  On failure nothing
 * was sent and the session stays READY. */
MSV_EXTERN MSV_WUR msv_result msv_smtp_begin(msv_smtp *s, const msv_envelope *env);
/* Message bytes (WANT_BODY only), split anywhere.  Line ends are
 * normalized (bare CR and bare LF become CRLF), lines starting with "."
 * are dot-stuffed for DATA, so the end-of-data sequence can never appear
 * inside the message.  A NUL octet or a line over body_line_max fails the
 * session (MSV_E_BAD_MESSAGE) without ending the data, so the server
 * discards it.  Step after each call and write the output before giving
 * more; one call may carry at most 256 MiB. */
MSV_EXTERN MSV_WUR msv_result msv_smtp_body(msv_smtp *s, const char *data, size_t len);
/* Ends the message: terminates the last line, sends the final "." or the
 * last BDAT chunk. */
MSV_EXTERN MSV_WUR msv_result msv_smtp_body_end(msv_smtp *s);
/* Result of the last transaction; valid until the next msv_smtp_begin(). */
MSV_EXTERN const msv_smtp_txn *msv_smtp_result(const msv_smtp *s);
/* After MSV_SMTP_PREV_DONE: the overlapped earlier transaction's result,
 * valid until the next msv_smtp_begin(). */
MSV_EXTERN const msv_smtp_txn *msv_smtp_prev_result(const msv_smtp *s);

MSV_EXTERN MSV_WUR msv_result msv_smtp_rset(msv_smtp *s);
MSV_EXTERN MSV_WUR msv_result msv_smtp_noop(msv_smtp *s);
MSV_EXTERN MSV_WUR msv_result msv_smtp_quit(msv_smtp *s);

MSV_EXTERN const msv_error *msv_smtp_error(const msv_smtp *s);
/* 1 when AUTH failed after the server's error challenge to a bearer
 * token (XOAUTH2, OAUTHBEARER): a new token may succeed. */
MSV_EXTERN int msv_smtp_token_refused(const msv_smtp *s);
MSV_EXTERN const msv_smtp_caps *msv_smtp_caps_get(const msv_smtp *s);
/* 1 while the body is being sent or its final reply awaited: the driver
 * uses its data timeout then, its command timeout otherwise. */
MSV_EXTERN int msv_smtp_in_data(const msv_smtp *s);
/* 1 when the session is encrypted (implicit TLS, or after STARTTLS). */
MSV_EXTERN int msv_smtp_tls_active(const msv_smtp *s);
/* Name of the current state, for traces and tests. */
MSV_EXTERN const char *msv_smtp_state_name(const msv_smtp *s);

/* ---- message scanning ---- */

typedef struct msv_body_info {
	uint64_t size;       /* octets once every line ends in CRLF */
	int has_8bit;        /* an octet >= 0x80 */
	size_t longest_line; /* without its line end */
	size_t long_line_no; /* first line (from 1) longer than the limit; 0: none */
	size_t nul_line_no;  /* first line holding a NUL octet; 0: none */
} msv_body_info;

/* Measures a message before sending: SIZE=, BODY=8BITMIME and the checks
 * that must fail before MAIL rather than in the middle of DATA. */
MSV_EXTERN void msv_smtp_body_scan(msv_body_info *info, const char *data, size_t len,
                                   size_t line_max);

/* ---- the blocking driver ---- */

/* Appends a bearer token to out (wiped by the caller).  force: the last
 * one was refused, get a new one.  missive/oauth2.h's msv_oauth2_token_fn
 * is one.  Called by the driver (msv_client, and so the pool, whose
 * connections of a route then share one source); it may block. */
typedef msv_result (*msv_token_fn)(void *payload, int force, msv_buf *out, msv_error *err);

typedef struct msv_client_options {
	unsigned version;        /* MSV_CLIENT_OPTIONS_VERSION */
	const char *host;        /* name or address; IPv6 literals without brackets */
	unsigned port;           /* 0: 587 for STARTTLS, 465 implicit, 25 plaintext */
	msv_smtp_options smtp;   /* tls, helo, auth, trace: see above */
	const char *ca_file;     /* PEM bundle; NULL: the system store */
	const char *ca_path;     /* hashed directory; NULL: the system store */
	int insecure;            /* skip certificate and name checks: callers must warn */
	const char *tls_name;    /* name to verify and send as SNI; NULL: host */
	const char *client_cert; /* PEM certificate chain for TLS client auth */
	const char *client_key;  /* its PEM key; NULL: in client_cert */
	int connect_timeout_ms;  /* per address tried; 0: 30 s */
	int command_timeout_ms;  /* per wait for a reply or a write; 0: 300 s (RFC 5321 4.5.3.2) */
	int data_timeout_ms;     /* per wait while sending data and for its final reply; 0: 600 s */
	int64_t deadline_ms;     /* whole session from msv_client_connect(); 0: none */
	/* version 2 */
	/* A bearer-token source: asked for the token before each AUTH
	 * (smtp.auth_token implied, smtp.secret ignored); when the server
	 * refuses the token with its error challenge, asked again with
	 * force = 1 and the connection retried once.  NULL: none. */
	msv_token_fn token;
	void *token_payload;
} msv_client_options;

#define MSV_CLIENT_OPTIONS_VERSION 2
#define MSV_CLIENT_OPTIONS_INIT                                                  \
	{                                                                            \
		.version = MSV_CLIENT_OPTIONS_VERSION, .smtp = MSV_SMTP_OPTIONS_INIT,    \
	}

typedef struct msv_client msv_client;

/* Reads a message body in pieces: returns bytes put in buf, 0 at the end,
 * -1 on error (the send fails with MSV_E_BAD_MESSAGE). */
typedef long (*msv_read_fn)(void *payload, char *buf, size_t cap);

MSV_EXTERN MSV_WUR msv_result msv_client_new(msv_client **out, const msv_client_options *opts,
                                             msv_error *err);
MSV_EXTERN void msv_client_free(msv_client *c);

/* Resolves, connects (each address in turn), greets, TLS, EHLO, AUTH. */
MSV_EXTERN MSV_WUR msv_result msv_client_connect(msv_client *c);
/* One transaction from a buffer.  Returns MSV_OK when the server accepted
 * the message for at least one recipient (check txn->accepted against
 * env->nrcpt for partial acceptance), MSV_E_REFUSED when none was
 * accepted, or a session error.  *txn is valid until the next send,
 * connect or free. */
MSV_EXTERN MSV_WUR msv_result msv_client_send(msv_client *c, const msv_envelope *env,
                                              const char *msg, size_t len,
                                              const msv_smtp_txn **txn);
/* The same, reading the message through fn. */
MSV_EXTERN MSV_WUR msv_result msv_client_send_stream(msv_client *c, const msv_envelope *env,
                                                     msv_read_fn fn, void *payload,
                                                     const msv_smtp_txn **txn);
/* One message of msv_client_send_many(). */
typedef struct msv_message {
	const msv_envelope *env;
	const char *data;
	size_t len;
} msv_message;

/* Called once per message, in order: code MSV_OK (at least one recipient
 * accepted), MSV_E_REFUSED, or an error; txn as far as the server
 * answered (NULL when the message was never started); err says why. */
typedef void (*msv_client_done_fn)(void *payload, size_t index, msv_result code,
                                   const msv_smtp_txn *txn, const msv_error *err);

/* Sends n messages over this session, each message's end of data and the
 * next one's envelope in one write when the server offers PIPELINING (one
 * round trip per message).  When the session fails, every message not yet
 * reported gets done() with that error; one whose txn->mail.code is 0 was
 * never answered and can be retried elsewhere.  Returns MSV_OK while the
 * session is still usable, else the session error. */
MSV_EXTERN MSV_WUR msv_result msv_client_send_many(msv_client *c, const msv_message *msgs, size_t n,
                                                   msv_client_done_fn done, void *payload);
/* NOOP: checks that an idle session still answers.  A failure closes it. */
MSV_EXTERN MSV_WUR msv_result msv_client_noop(msv_client *c);
/* The last transaction as far as it went, also when the send failed:
 * txn->mail.code == 0 means the server never answered MAIL, so it
 * cannot have taken the message.  NULL before any connect. */
MSV_EXTERN const msv_smtp_txn *msv_client_last_txn(const msv_client *c);
/* 1 while the connection is open and usable. */
MSV_EXTERN int msv_client_connected(const msv_client *c);
/* Says QUIT and closes; errors past this point change nothing sent. */
MSV_EXTERN msv_result msv_client_quit(msv_client *c);
/* From any thread: the blocked call returns MSV_E_CANCELLED promptly. */
MSV_EXTERN void msv_client_cancel(msv_client *c);

MSV_EXTERN const msv_error *msv_client_error(const msv_client *c);
MSV_EXTERN const msv_smtp_caps *msv_client_caps_get(const msv_client *c);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384" after a handshake, else "". */
MSV_EXTERN const char *msv_client_tls_info(const msv_client *c);

#ifdef __cplusplus
}
#endif
#endif
