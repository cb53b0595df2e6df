/* Internals shared by the files of src/dsn (not installed).  How the
 * pieces fit: docs/internals/dsn.md.  Functions are msv__dsn_*: the
 * library's one internal prefix (tests/symbols/check_symbols.sh). */
#ifndef MSV_DSN_INT_H
#define MSV_DSN_INT_H

#include <stddef.h>

#include "missive/dsn.h"
#include "missive/mime.h"

/* Every text field of a report is cut here: a diagnostic longer than
 * this is a transcript or a returned body, not a reason. */
#define DSN_FIELD_MAX 4096
/* Recipients per report: real reports name a handful; a list past this
 * is an attack on the caller's memory or its suppression list. */
#define DSN_RCPT_MAX 1000
/* MIME limits for msv_mime_parse(): far above any real bounce (Exchange
 * nests four levels, a digest of returned messages a few dozen parts). */
#define DSN_MAX_HEADERS 4096
#define DSN_MAX_NODES 512
#define DSN_MAX_DEPTH 32
/* What a first parse gets: enough for nearly every real bounce. */
#define DSN_SMALL_HEADERS 512
#define DSN_SMALL_NODES 64
/* Default cap on the input. */
#define DSN_SIZE_DEFAULT ((size_t)64 << 20)
/* Decoded text kept for the plain-text reader: bounce prose is short;
 * the returned message after it is not needed past its header block. */
#define DSN_TEXT_MAX ((size_t)4 << 20)

typedef struct dsn_ctx {
	msv_dsn_report *rep;
	size_t rcap;
	const msv_dsn_options *opts;
	int oom; /* an allocation failed: the parse fails with MSV_E_NOMEM */
} dsn_ctx;

/* ---- report.c ---- */
/* A copy of s[0..n) as a clean one-line string: CR, LF and tabs become
 * spaces, runs of spaces one space, ends trimmed, other control octets
 * dropped, cut at DSN_FIELD_MAX (on a UTF-8 boundary).  NULL when
 * nothing is left or memory ran out (c->oom set). */
char *msv__dsn_str(dsn_ctx *c, const char *s, size_t n);
/* Replaces *field by a copy (nothing when the copy is empty). */
void msv__dsn_set(dsn_ctx *c, char **field, const char *s, size_t n);
/* Sets *field only if it is NULL. */
void msv__dsn_set_once(dsn_ctx *c, char **field, const char *s, size_t n);
/* A new recipient (zeroed, address NULL), or NULL past the limit / OOM. */
msv_dsn_recipient *msv__dsn_rcpt_new(dsn_ctx *c);
/* The recipient with this address (case-insensitive), or NULL. */
msv_dsn_recipient *msv__dsn_rcpt_find(dsn_ctx *c, const char *addr, size_t n);
void msv__dsn_rcpt_clear(msv_dsn_recipient *r);
/* Removes recipient i, keeping order. */
void msv__dsn_rcpt_remove(dsn_ctx *c, size_t i);

/* ---- text utilities (util.c) ---- */
int msv__dsn_lower(int ch);
int msv__dsn_ci_eq(const char *a, size_t an, const char *b);       /* a[0..an) == b, ASCII case-insensitive */
int msv__dsn_ci_prefix(const char *a, size_t an, const char *b);   /* a starts with b */
/* Index of needle (lowercase ASCII) in s[0..n), case-insensitive, or -1. */
long msv__dsn_ci_find(const char *s, size_t n, const char *needle);
#define NWORDS(a) (sizeof(a) / sizeof((a)[0]))
/* 1 when s[0..n) holds any of the nw needles (case-insensitive). */
int msv__dsn_ci_find_any(const char *s, size_t n, const char *const *needles, size_t nw);
/* Finds an address (local@domain, dot-atom-ish) in s[from..n): sets its
 * span, returns 1; 0 when none. */
int msv__dsn_find_addr(const char *s, size_t n, size_t from, size_t *a0, size_t *a1);
/* Is s[0..n) exactly one address, after trimming blanks, <>, quotes and a
 * trailing ':' or ','? Sets the address span. */
int msv__dsn_is_addr(const char *s, size_t n, size_t *a0, size_t *a1);
/* First RFC 3463 enhanced status code ("5.1.1") in s: copied into out
 * (size MSV_DSN_STATUS_MAX), its offset returned, -1 when none. */
long msv__dsn_find_status(const char *s, size_t n, char *out);
/* First SMTP reply code (a 3-digit number 2xx..5xx standing alone,
 * "550 " or "550-" or "550" at the end) in s, or 0. */
int msv__dsn_find_reply_code(const char *s, size_t n);
/* Normalizes a status: strips comments and blanks, checks the shape
 * class.subject.detail (class 2, 4 or 5; 1..3 digits each).  Returns 1
 * and fills out when valid. */
int msv__dsn_status_norm(const char *s, size_t n, char *out);
/* The address type of a typed field value ("rfc822; a@b"): *tl is the
 * length of "type;" (0 when untyped). */
enum { DSN_ADDR_UNTYPED = 0, DSN_ADDR_INTERNET, DSN_ADDR_OTHER };
int msv__dsn_addr_type(const char *s, size_t n, size_t *tl);
/* The RFC 5321 mailbox a recipient field names, canonical (type,
 * brackets, "SMTP:"/"SMTP=" prefixes and source routes removed; a
 * dot-atom local part unquoted, any other quoted), appended to out with
 * *ok = 1.  *ok = 0 (nothing appended) for what is no Internet mailbox:
 * another address type (X400, LEGACYEXCHANGEDN, x-local), a program or
 * a file, no local part, a routing name without a dotted domain
 * (user@ims-ms-daemon).  s has no comments (the caller removed them).
 * Fails only with MSV_E_NOMEM or MSV_E_TOO_LARGE. */
msv_result msv__dsn_mailbox(msv_buf *out, int *ok, const char *s, size_t n);
/* Appends s[0..n) to out with CRLF and CR line ends made LF. */
msv_result msv__dsn_add_lf(msv_buf *out, const char *s, size_t n);
/* Appends the visible text of HTML (tags dropped, block tags as line
 * ends, the common entities decoded). */
msv_result msv__dsn_add_html_text(msv_buf *out, const char *s, size_t n);

/* ---- rfc3464.c ---- */
/* Reads a delivery-status body (decoded, LF line ends): per-message
 * fields into the report, per-recipient groups as recipients.  utf8: the
 * RFC 6533 global form.  Returns how many recipients it added. */
size_t msv__dsn_ds_read(dsn_ctx *c, const char *s, size_t n, int utf8);
/* Address from a typed field value ("rfc822; <a@b>", "utf-8; a@b",
 * "a@b"): the address span (comments, brackets and blanks removed). */
int msv__dsn_typed_addr(const char *s, size_t n, size_t *a0, size_t *a1);
/* RFC 3461 4 xtext decoding ("+2B" -> '+'), appended to out. */
msv_result msv__dsn_xtext_decode(msv_buf *out, const char *s, size_t n);

/* ---- text.c: the plain-text reader ---- */
typedef struct dsn_text_in {
	const char *text;         /* decoded report prose, LF line ends, */
	size_t len;               /* cut before the returned message (msv__dsn_text_cut) */
	const char *subject;      /* the bounce's Subject (decoded) or "" */
	const char *from;         /* the bounce's From (decoded) or "" */
	const char *failed_hdr;   /* X-Failed-Recipients or NULL */
	const char *const *skip;  /* addresses that are not recipients (the sender's) */
	size_t nskip;
	const char *orig_to;      /* the returned message's To and Cc, or NULL */
} dsn_text_in;

/* Finds recipients and their error text in plain prose.  When the report
 * already has recipients (from a delivery-status part) it only fills in
 * their missing diagnostic, status and remote MTA; else it adds the
 * recipients it finds.  Returns the number it added; sets *format to a
 * static name of the layout it recognized ("exim", "qmail", ...) and
 * *prelude to the length of the introduction before the first
 * recipient (the context of every recipient's error). */
size_t msv__dsn_text_read(dsn_ctx *c, const dsn_text_in *in, const char **format, size_t *prelude);
/* The offset in text where the returned message starts (after a marker
 * line such as "------ This is a copy of the message ..."), or len. */
size_t msv__dsn_text_cut(const char *text, size_t len, size_t *orig_start);

/* ---- ses.c ---- */
/* An Amazon SES notification (JSON in the body): adds its recipients,
 * sets *kind; returns how many it added (0: not one). */
int msv__dsn_ses_read(dsn_ctx *c, const char *s, size_t n, msv_dsn_kind *kind);

/* ---- classify.c ---- */
typedef struct dsn_hint {
	int delayed;          /* the report says delayed / will retry */
	int permanent;        /* the prose says the sender's MTA gave up (qmail's "I've given up") */
	int delay_said;       /* the prose says outright it will retry ("will be retried") */
	const char *format;   /* reader name, some rules depend on it */
	const char *context;  /* extra text that applies to every recipient (the prose intro), or NULL */
} dsn_hint;

/* Fills reason, hard, status (when empty), reply_code (when 0) and rule
 * of one recipient from its action, status and diagnostic.  The rule
 * string is allocated (c->oom on failure). */
void msv__dsn_classify_rcpt(dsn_ctx *c, msv_dsn_recipient *r, const dsn_hint *h);

#endif
