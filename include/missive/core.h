/*
 * missive/core.h - results, errors, buffers, base64, deadlines, redaction.
 *
 * SYNOPSIS
 *   Every layer of libmissive reports failure the same way: a function
 *   returns an msv_result, and, where it has one, fills the msv_error of
 *   the handle it works on.  A caller decides "retry later" versus
 *   "give up" from msv_error.cls alone.
 *
 * ERROR CONTRACT
 *   On failure a function returns a code other than MSV_OK and leaves the
 *   handle's msv_error describing it.  On success the msv_error is left
 *   untouched.  No function allocates to report an error: all text fields
 *   are fixed-size and always NUL-terminated.
 *
 * OPTION STRUCTS
 *   Every options struct of the library starts with an unsigned version,
 *   set by its MSV_*_INIT macro (a designated initializer: the fields it
 *   does not name are zero).  Structs only grow by appending, and each
 *   growth bumps MSV_*_VERSION.  A function taking one accepts any version
 *   from 1 to the current one, so a program built against an older header
 *   keeps working; 0 and newer versions fail with MSV_E_INVALID.
 *
 * NAMES
 *   Public symbols are msv_* and declared in include/missive/; the
 *   library's internal globals are all msv__* and not exported by the
 *   shared library.
 *
 * THREADS
 *   Nothing here keeps global state.  Objects are not locked: one thread
 *   per object at a time.
 */
#ifndef MISSIVE_CORE_H
#define MISSIVE_CORE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MSV_EXTERN __attribute__((visibility("default")))
#define MSV_WUR __attribute__((warn_unused_result))
#define MSV_PRINTF(f, a) __attribute__((format(printf, f, a)))

/* MSV_VERSION, MSV_VERSION_NUM: generated from the project() version. */
#include "missive/version.h"

/*
 * Result codes.  Append only: a number is never reused, a retired value
 * stays as a placeholder.  Each row: symbol, number, short name (used in
 * JSON and logs), sentence.
 */
#define MSV_RESULTS(X)                                                                  \
	X(MSV_OK, 0, "ok", "no error")                                                      \
	X(MSV_E_NOMEM, 1, "nomem", "out of memory")                                         \
	X(MSV_E_TOO_LARGE, 2, "too_large", "data exceeds its size limit")                   \
	X(MSV_E_INVALID, 3, "invalid", "invalid argument")                                  \
	X(MSV_E_RESOLVE, 4, "resolve", "host name could not be resolved")                   \
	X(MSV_E_CONNECT, 5, "connect", "could not connect to the server")                   \
	X(MSV_E_TIMEOUT, 6, "timeout", "timed out")                                         \
	X(MSV_E_IO, 7, "io", "network read or write failed")                                \
	X(MSV_E_CLOSED, 8, "closed", "server closed the connection")                        \
	X(MSV_E_PROTOCOL, 9, "protocol", "server violated the SMTP protocol")               \
	X(MSV_E_TLS, 10, "tls", "TLS failed")                                               \
	X(MSV_E_TLS_VERIFY, 11, "tls_verify", "TLS certificate verification failed")        \
	X(MSV_E_NO_STARTTLS, 12, "no_starttls", "server does not offer STARTTLS")           \
	X(MSV_E_NO_AUTH_MECH, 13, "no_auth_mech", "no usable authentication mechanism")     \
	X(MSV_E_AUTH_FAILED, 14, "auth_failed", "authentication refused")                   \
	X(MSV_E_PLAINTEXT_AUTH, 15, "plaintext_auth", "refusing to authenticate without TLS") \
	X(MSV_E_REPLY, 16, "reply", "server refused the command")                           \
	X(MSV_E_MSG_TOO_BIG, 17, "message_too_big", "message exceeds the server's size limit") \
	X(MSV_E_NO_SMTPUTF8, 18, "no_smtputf8", "server lacks SMTPUTF8 for an international address") \
	X(MSV_E_NO_8BITMIME, 19, "no_8bitmime", "server lacks 8BITMIME for an 8-bit message") \
	X(MSV_E_BAD_ADDRESS, 20, "bad_address", "malformed address")                        \
	X(MSV_E_BAD_MESSAGE, 21, "bad_message", "malformed message")                        \
	X(MSV_E_CANCELLED, 22, "cancelled", "cancelled")                                    \
	X(MSV_E_STATE, 23, "state", "call not valid in this session state")                 \
	X(MSV_E_CONFIG, 24, "config", "configuration error")                                \
	X(MSV_E_REFUSED, 25, "refused", "no recipient was accepted")                        \
	X(MSV_E_SYSTEM, 26, "system", "system call failed")                                 \
	X(MSV_E_TOO_MANY_RCPT, 27, "too_many_recipients", "more recipients than allowed") \
	X(MSV_E_SUPPRESSED, 28, "suppressed", "recipient is on the suppression list")       \
	X(MSV_E_NO_USER, 29, "no_user", "no such user")                                     \
	X(MSV_E_NO_RCPT, 30, "no_recipients", "no recipients given")                        \
	X(MSV_E_CANT_CREATE, 31, "cant_create", "cannot create or write a file")            \
	X(MSV_E_BUSY, 32, "busy", "busy: try again later")                                  \
	X(MSV_E_BAD_REQUEST, 33, "bad_request", "malformed request")                        \
	X(MSV_E_RATE_LIMITED, 34, "rate_limited", "rate limit reached: try again later")    \
	X(MSV_E_CIRCUIT_OPEN, 35, "circuit_open", "paused after repeated rejections: try again later") \
	X(MSV_E_REPUTATION, 36, "reputation", "refused: the sender's reputation is too low") \
	X(MSV_E_UNAUTHORIZED, 37, "unauthorized", "missing or invalid credentials")         \
	X(MSV_E_FORBIDDEN, 38, "forbidden", "not allowed for these credentials")            \
	X(MSV_E_NO_INPUT, 39, "no_input", "cannot read an input file")

typedef enum msv_result {
#define MSV__ENUM(sym, num, name, text) sym = num,
	MSV_RESULTS(MSV__ENUM)
#undef MSV__ENUM
	MSV__RESULT_COUNT
} msv_result;

/* How a caller should react.  Only the class decides retry versus give up. */
typedef enum msv_class {
	MSV_CLASS_NONE = 0,  /* no error */
	MSV_CLASS_TEMPORARY, /* 4xx, timeouts, connection and TLS failures: retry later */
	MSV_CLASS_PERMANENT, /* 5xx and what no retry can fix: give up, bounce */
	MSV_CLASS_LOCAL,     /* our side failed (memory, system call): retry later */
	MSV_CLASS_CONFIG,    /* settings are wrong or unreadable: fix them first */
	MSV_CLASS_USAGE,     /* the caller passed bad data or called out of order */
} msv_class;

#define MSV_ENHANCED_MAX 16
#define MSV_TEXT_MAX 512

/*
 * One error value for every layer.  reply_code, enhanced and server_text
 * are set when the server's reply caused the error, else 0 and "".
 * server_text has every byte outside printable ASCII replaced by '?'.
 */
typedef struct msv_error {
	msv_result code;
	msv_class cls;
	int reply_code;
	char enhanced[MSV_ENHANCED_MAX];
	char server_text[MSV_TEXT_MAX];
	char message[MSV_TEXT_MAX]; /* one human sentence, no newline */
} msv_error;

MSV_EXTERN const char *msv_strerror(msv_result r);
MSV_EXTERN const char *msv_result_name(msv_result r);
MSV_EXTERN const char *msv_class_name(msv_class c);
MSV_EXTERN msv_class msv_class_of_reply(int reply_code);

MSV_EXTERN void msv_error_clear(msv_error *e);
/* Sets code, class and message; clears the reply fields.  Returns code. */
MSV_EXTERN msv_result msv_error_set(msv_error *e, msv_result code, msv_class cls,
                                    const char *fmt, ...) MSV_PRINTF(4, 5);
MSV_EXTERN msv_result msv_error_vset(msv_error *e, msv_result code, msv_class cls,
                                     const char *fmt, va_list ap) MSV_PRINTF(4, 0);
/* Copies len bytes into dst (size dstsz), non-printables as '?'. */
MSV_EXTERN void msv_sanitize(char *dst, size_t dstsz, const char *src, size_t len);
/* msv_sanitize for text a person reads (error messages quoting a name or an
 * address): valid UTF-8 is kept whole (never cut inside a character); other
 * non-printable octets, C1 controls and bidirectional overrides become '?'. */
MSV_EXTERN void msv_sanitize_utf8(char *dst, size_t dstsz, const char *src, size_t len);

/* ---- allocation: every allocation in libmissive goes through these ---- */
MSV_EXTERN void *msv_malloc(size_t n);
MSV_EXTERN void *msv_calloc(size_t count, size_t size);
MSV_EXTERN void *msv_realloc(void *p, size_t n);
MSV_EXTERN void msv_free(void *p);
MSV_EXTERN char *msv_strdup(const char *s);
/* Zeroes n bytes in a way the compiler may not remove (key and password memory). */
MSV_EXTERN void msv_wipe(void *p, size_t n);
/* Wipes a NUL-terminated secret, then frees it. */
MSV_EXTERN void msv_free_secret(char *s);

/* Overflow-checked size arithmetic: return 0 on success, -1 on wrap. */
static inline int msv_add_size(size_t *out, size_t a, size_t b)
{
	return __builtin_add_overflow(a, b, out) ? -1 : 0;
}
static inline int msv_mul_size(size_t *out, size_t a, size_t b)
{
	return __builtin_mul_overflow(a, b, out) ? -1 : 0;
}

/* ---- growable buffer ----
 * A cap is required at init and named per use.  Growth doubles but never
 * passes the cap; past it an add returns MSV_E_TOO_LARGE.  On any failure
 * the buffer frees its memory (and stays usable, empty).  The content is
 * always NUL-terminated but length-based (binary-safe). */
typedef struct msv_buf {
	char *data;
	size_t len;
	size_t cap;
	size_t max;
} msv_buf;

MSV_EXTERN void msv_buf_init(msv_buf *b, size_t max);
MSV_EXTERN void msv_buf_free(msv_buf *b);
/* Empties the buffer but keeps its memory. */
MSV_EXTERN void msv_buf_reset(msv_buf *b);
MSV_EXTERN MSV_WUR msv_result msv_buf_add(msv_buf *b, const void *p, size_t n);
MSV_EXTERN MSV_WUR msv_result msv_buf_addstr(msv_buf *b, const char *s);
MSV_EXTERN MSV_WUR msv_result msv_buf_addc(msv_buf *b, char c);
MSV_EXTERN MSV_WUR msv_result msv_buf_addf(msv_buf *b, const char *fmt, ...) MSV_PRINTF(2, 3);
/* Makes room for n more bytes without changing len. */
MSV_EXTERN MSV_WUR msv_result msv_buf_reserve(msv_buf *b, size_t n);
/* Drops the first n bytes. */
MSV_EXTERN void msv_buf_consume(msv_buf *b, size_t n);
/* Wipes the content before freeing (for buffers that held secrets). */
MSV_EXTERN void msv_buf_free_secret(msv_buf *b);

/* ---- base64 (RFC 4648 section 4, with padding, no line breaks) ---- */
MSV_EXTERN size_t msv_base64_encoded_len(size_t n);
MSV_EXTERN MSV_WUR msv_result msv_base64_encode(msv_buf *out, const void *data, size_t n);
/* Strict: rejects characters outside the alphabet, bad padding and
 * non-zero trailing bits.  Appends the decoded bytes to out. */
MSV_EXTERN MSV_WUR msv_result msv_base64_decode(msv_buf *out, const char *s, size_t n);
/* The 6-bit value of one base64 character, or -1 outside the alphabet
 * ('=' included): for decoders with their own leniency rules. */
MSV_EXTERN int msv_base64_value(unsigned char c);

/* ---- time and deadlines (milliseconds) ---- */
/* CLOCK_MONOTONIC, for timeouts. */
MSV_EXTERN int64_t msv_now_ms(void);
/* Wall-clock time: milliseconds since the Unix epoch (queue times). */
MSV_EXTERN int64_t msv_wall_ms(void);
/* A deadline is an absolute monotonic time; 0 means none. */
typedef int64_t msv_deadline;
MSV_EXTERN msv_deadline msv_deadline_in(int64_t ms);
/* The earlier of two deadlines, treating 0 as "none". */
MSV_EXTERN msv_deadline msv_deadline_min(msv_deadline a, msv_deadline b);
/* Milliseconds left for poll(2): -1 for no deadline, 0 if passed. */
MSV_EXTERN int msv_deadline_poll_ms(msv_deadline d, int64_t now);

/* ---- redaction ----
 * A redactor holds secrets (passwords, tokens, their encodings) and
 * replaces every occurrence of any of them by "[redacted]" in text that
 * is about to be logged or traced.  Secrets are wiped when freed. */
typedef struct msv_redactor msv_redactor;

MSV_EXTERN MSV_WUR msv_result msv_redactor_new(msv_redactor **out);
MSV_EXTERN void msv_redactor_free(msv_redactor *r);
/* Adds a secret and its base64 form.  Secrets shorter than 3 bytes are
 * ignored: masking them would shred ordinary text. */
MSV_EXTERN MSV_WUR msv_result msv_redactor_add(msv_redactor *r, const char *secret, size_t n);
/* Appends text to out with every secret replaced. */
MSV_EXTERN MSV_WUR msv_result msv_redact(const msv_redactor *r, msv_buf *out, const char *text,
                                         size_t n);

/* ---- logging ----
 * The library never prints.  It hands log lines to a callback the caller
 * installs; lines have already passed through the redactor if one is set. */
typedef enum msv_log_level {
	MSV_LOG_ERROR = 0,
	MSV_LOG_WARN,
	MSV_LOG_INFO,
	MSV_LOG_DEBUG,
} msv_log_level;

typedef void (*msv_log_fn)(void *payload, msv_log_level level, const char *line);

typedef struct msv_logger {
	msv_log_fn fn;
	void *payload;
	msv_log_level level;        /* lines above this level are dropped */
	const msv_redactor *redact; /* may be NULL */
} msv_logger;

MSV_EXTERN void msv_log(const msv_logger *lg, msv_log_level level, const char *fmt, ...)
	MSV_PRINTF(3, 4);

#ifdef __cplusplus
}
#endif
#endif
