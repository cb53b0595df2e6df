/*
 * missive/dsn.h - reading what comes back: delivery status notifications,
 * non-standard bounces, auto-replies and feedback reports.
 *
 * RFCs: 3464 (delivery status notifications: multipart/report,
 * message/delivery-status), 3462/6522 (multipart/report), 3463 (enhanced
 * status codes), 6533 (message/global-delivery-status, utf-8 address
 * types), 3461 (ENVID, ORCPT), 3834 (auto-replies, Auto-Submitted), 5965
 * (ARF feedback reports), 3798/8098 are not handled (read receipts are
 * "unknown").
 *
 * SYNOPSIS
 *   msv_dsn_report *rep;
 *   msv_dsn_options o = MSV_DSN_OPTIONS_INIT;
 *   o.verp_prefix = "bounces+";
 *   if (msv_dsn_parse(&rep, buf, len, &o, &err) == MSV_OK) {
 *       for (size_t i = 0; i < rep->nrecipients; i++)
 *           use(rep->recipients[i].address, rep->recipients[i].reason,
 *               rep->recipients[i].hard);
 *       msv_dsn_report_free(rep);
 *   }
 *
 * DESCRIPTION
 *   msv_dsn_parse() takes one whole message in memory (any of CRLF, LF or
 *   CR line ends) and tells what it is (msv_dsn_kind) and, for each
 *   recipient it reports on (by the address we sent to: docs/dsn.md,
 *   "Which address is reported"), what happened and why.  It reads RFC 3464
 *   and RFC 6533 reports field by field, and falls back to the plain-text
 *   bounces that Exim, qmail, Sendmail, Postfix, Exchange, Gmail, Yahoo
 *   and many others still send.  Every recipient gets:
 *     - a status code (RFC 3463 "x.y.z"): the report's own, or one found
 *       in the diagnostic text, or one inferred from the reason
 *       (status_source says which);
 *     - a reason from a fixed taxonomy (msv_dsn_reason; docs/dsn.md has
 *       the table and its mapping to Sisimai's names);
 *     - action: the report's Action field as RFC 3464 defines it
 *       (failed: the reporting MTA will not retry; delayed: it will);
 *       decided from the prose for plain-text bounces;
 *     - hard or soft: hard means the address itself is bad (unknown user,
 *       unknown host, moved, the domain accepts no mail): sending to it
 *       again cannot succeed, so it belongs on a suppression list.  A
 *       refusal of this message (spam, policy, size, full mailbox) is
 *       soft even when permanent: suppressing the address for it would
 *       lose a working address;
 *     - the rule that decided the reason ("status 5.1.1", "diagnostic
 *       matches 'user unknown'"), for people who ask why.
 *   The message the bounce returns (message/rfc822, text/rfc822-headers,
 *   or the headers after a "copy of the message follows" line) gives the
 *   original Message-ID; the queue ID is the report's ENVID
 *   (Original-Envelope-Id), else a VERP token ("bounces+ID@domain", the
 *   prefix given in the options) found in the returned headers.
 *
 *   The result is a copy: it does not point into buf, which may be freed
 *   at once.  Strings are UTF-8 (RFC 2047 words and charsets decoded),
 *   unfolded, without CR or LF; NULL when unknown.
 *
 * ERROR CONTRACT
 *   msv_dsn_parse() returns MSV_OK and a report whenever buf is a
 *   message, even one that is not a bounce (kind MSV_DSN_UNKNOWN, no
 *   recipients): malformed reports get a best-effort reading, never an
 *   error.  It fails with MSV_E_BAD_MESSAGE (no header block: not a
 *   message), MSV_E_TOO_LARGE (past options.max_size, or more MIME parts
 *   or nesting than the limits below), MSV_E_INVALID (bad arguments) or
 *   MSV_E_NOMEM; *out is then NULL and err describes it.  err is left
 *   untouched on success.
 *
 * LIMITS
 *   options.max_size (default 64 MiB) for the message; 4096 header
 *   fields, 512 MIME parts, 32 levels of nesting (msv_mime_parse limits);
 *   1000 recipients per report (more are dropped, recipients_dropped
 *   says how many); each text field is cut at 4096 octets.
 *
 * THREADS
 *   No global state.  A report belongs to its caller; free it once.
 */
#ifndef MISSIVE_DSN_H
#define MISSIVE_DSN_H

#include "missive/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum msv_dsn_kind {
	MSV_DSN_UNKNOWN = 0, /* not a report we recognize (or an ordinary message) */
	MSV_DSN_BOUNCE,      /* at least one recipient failed */
	MSV_DSN_DELAY,       /* delivery delayed, still trying (none failed) */
	MSV_DSN_SUCCESS,     /* delivered, relayed or expanded (none failed or delayed) */
	MSV_DSN_AUTOREPLY,   /* RFC 3834 auto-reply: vacation, out of office */
	MSV_DSN_FEEDBACK,    /* RFC 5965 ARF feedback report (abuse, opt-out, ...) */
} msv_dsn_kind;

/* RFC 3464 2.3.3 Action. */
typedef enum msv_dsn_action {
	MSV_DSN_ACTION_NONE = 0, /* not stated */
	MSV_DSN_ACTION_FAILED,
	MSV_DSN_ACTION_DELAYED,
	MSV_DSN_ACTION_DELIVERED,
	MSV_DSN_ACTION_RELAYED,
	MSV_DSN_ACTION_EXPANDED,
} msv_dsn_action;

/*
 * Reasons.  Append only: numbers are never reused.  The names are
 * Sisimai's where Sisimai has the same reason (docs/dsn.md maps the rest:
 * ratelimited is Sisimai's "speeding").  Each row: symbol, number, name,
 * hard (1: the address is bad, see above; 2: hard for a permanent
 * failure, soft for a temporary one), sentence.
 */
#define MSV_DSN_REASONS(X)                                                                    \
	X(MSV_DSN_R_UNDEFINED, 0, "undefined", 0, "no rule matched")                              \
	X(MSV_DSN_R_USERUNKNOWN, 1, "userunknown", 1, "the mailbox does not exist")               \
	X(MSV_DSN_R_MAILBOXFULL, 2, "mailboxfull", 0, "the mailbox is full or over quota")        \
	X(MSV_DSN_R_HOSTUNKNOWN, 3, "hostunknown", 1, "the domain does not exist or has no mail host") \
	X(MSV_DSN_R_SPAMDETECTED, 4, "spamdetected", 0, "the message was judged to be spam")     \
	X(MSV_DSN_R_BLOCKED, 5, "blocked", 0, "the sending host or its IP address is blocked")   \
	X(MSV_DSN_R_POLICYVIOLATION, 6, "policyviolation", 0, "refused by the receiver's policy") \
	X(MSV_DSN_R_EXPIRED, 7, "expired", 0, "delivery time expired: gave up retrying")         \
	X(MSV_DSN_R_RATELIMITED, 8, "ratelimited", 0, "too many messages or recipients: rate limited") \
	X(MSV_DSN_R_TOOMANYCONN, 9, "toomanyconn", 0, "too many connections")                    \
	X(MSV_DSN_R_SECURITYERROR, 10, "securityerror", 0, "a security or authentication problem") \
	X(MSV_DSN_R_SUSPEND, 11, "suspend", 0, "the mailbox is suspended or disabled")           \
	X(MSV_DSN_R_FILTERED, 12, "filtered", 0, "refused by the recipient's filter")            \
	X(MSV_DSN_R_NORELAYING, 13, "norelaying", 0, "relaying denied")                          \
	X(MSV_DSN_R_MESGTOOBIG, 14, "mesgtoobig", 0, "the message is too big")                   \
	X(MSV_DSN_R_SYSTEMERROR, 15, "systemerror", 0, "an error on the receiving system")       \
	X(MSV_DSN_R_NETWORKERROR, 16, "networkerror", 0, "a network or DNS error, or a mail loop") \
	X(MSV_DSN_R_NOTACCEPT, 17, "notaccept", 2, "the domain accepts no mail (null MX)")       \
	X(MSV_DSN_R_CONTENTERROR, 18, "contenterror", 0, "the content is malformed or refused")  \
	X(MSV_DSN_R_EXCEEDLIMIT, 19, "exceedlimit", 0, "the message exceeds a per-mailbox limit") \
	X(MSV_DSN_R_HASMOVED, 20, "hasmoved", 1, "the recipient has moved to another address")   \
	X(MSV_DSN_R_REJECTED, 21, "rejected", 0, "the envelope sender was refused")              \
	X(MSV_DSN_R_SYNTAXERROR, 22, "syntaxerror", 0, "an SMTP syntax error")                   \
	X(MSV_DSN_R_MAILERERROR, 23, "mailererror", 0, "a local mailer program failed")          \
	X(MSV_DSN_R_ONHOLD, 24, "onhold", 0, "not enough information to decide")                 \
	X(MSV_DSN_R_VACATION, 25, "vacation", 0, "an auto-reply, not a failure")                 \
	X(MSV_DSN_R_FEEDBACK, 26, "feedback", 0, "a feedback (complaint) report, not a failure") \
	X(MSV_DSN_R_DELIVERED, 27, "delivered", 0, "delivered, not a failure")                   \
	X(MSV_DSN_R_AUTHFAILURE, 28, "authfailure", 0, "SPF, DKIM or DMARC checks failed")       \
	X(MSV_DSN_R_REQUIREPTR, 29, "requireptr", 0, "the sending IP has no valid reverse DNS")   \
	X(MSV_DSN_R_NOTCOMPLIANTRFC, 30, "notcompliantrfc", 0, "the message breaks an RFC (e.g. duplicate headers)") \
	X(MSV_DSN_R_BADREPUTATION, 31, "badreputation", 0, "the sender's reputation is too low") \
	X(MSV_DSN_R_VIRUSDETECTED, 32, "virusdetected", 0, "the message carries a virus")        \
	X(MSV_DSN_R_SYSTEMFULL, 33, "systemfull", 0, "the receiving system is out of disk space") \
	X(MSV_DSN_R_FAILEDSTARTTLS, 34, "failedstarttls", 0, "STARTTLS was required and failed")

typedef enum msv_dsn_reason {
#define MSV__DSN_ENUM(sym, num, name, hard, text) sym = num,
	MSV_DSN_REASONS(MSV__DSN_ENUM)
#undef MSV__DSN_ENUM
	MSV__DSN_REASON_COUNT
} msv_dsn_reason;

/* Where a recipient's status code came from. */
typedef enum msv_dsn_source {
	MSV_DSN_SRC_NONE = 0,  /* no status (success reports of some MTAs, feedback, auto-replies) */
	MSV_DSN_SRC_FIELD,     /* the report's Status: field */
	MSV_DSN_SRC_TEXT,      /* an enhanced status code in the diagnostic text */
	MSV_DSN_SRC_REPLY,     /* from the SMTP reply code alone (550 -> 5.0.0) */
	MSV_DSN_SRC_INFERRED,  /* derived from the reason: nothing in the message said it */
} msv_dsn_source;

#define MSV_DSN_STATUS_MAX 16

typedef struct msv_dsn_recipient {
	/* The address we sent to, an RFC 5321 mailbox; never NULL: the
	 * Original-Recipient when it is a mailbox, else the Final-Recipient
	 * (or, in prose, the alias a rewritten address came from); never
	 * the envelope sender or the returned message's From. */
	char *address;
	char *original_recipient;  /* Original-Recipient (ORCPT), or NULL */
	msv_dsn_action action;
	char status[MSV_DSN_STATUS_MAX]; /* "5.1.1"; "" when none */
	msv_dsn_source status_source;
	int reply_code;            /* SMTP reply code in the diagnostic (550), or 0 */
	msv_dsn_reason reason;
	int hard;                  /* 1: the address is bad (see above); 0: soft, or not a failure */
	char *diagnostic;          /* Diagnostic-Code without its type, or the text that says why */
	char *diagnostic_type;     /* the Diagnostic-Code type, lowercase ("smtp", "x-unix"), or NULL */
	char *remote_mta;          /* Remote-MTA without its type, or the host the text names */
	char *last_attempt_date;   /* Last-Attempt-Date as written */
	char *will_retry_until;    /* Will-Retry-Until as written */
	char *command;             /* SMTP command the failure followed ("RCPT", "DATA"), or NULL */
	char *rule;                /* why this reason: "status 5.1.1", "diagnostic matches '...'" */
	/* The address the reporting MTA delivered to, as it wrote it
	 * (Final-Recipient, or the rewritten address of a plain-text
	 * report), when that is not address: an internal routing name
	 * (user@ims-ms-daemon), another case, the target of an alias, or
	 * another address type, kept with its type ("x400; /S=Doe/...").
	 * NULL when it is address itself or the report names none. */
	char *final_recipient;
} msv_dsn_recipient;

typedef struct msv_dsn_report {
	msv_dsn_kind kind;
	char *format;              /* the reader that understood it: "rfc3464", "exim", "qmail", ... */
	char *envelope_id;         /* Original-Envelope-Id (RFC 3461 ENVID), xtext decoded */
	char *original_message_id; /* Message-ID of the returned message, with brackets */
	char *queue_id;            /* the envelope id, else the VERP token */
	char *reporting_mta;       /* Reporting-MTA without its type */
	char *arrival_date;        /* Arrival-Date as written */
	char *original_from;       /* From of the returned message (address only) */
	char *original_subject;    /* Subject of the returned message, decoded */
	char *feedback_type;       /* ARF Feedback-Type ("abuse"), feedback reports only */
	msv_dsn_recipient *recipients;
	size_t nrecipients;
	size_t recipients_dropped; /* past the 1000-recipient limit */
} msv_dsn_report;

typedef struct msv_dsn_options {
	unsigned version;          /* MSV_DSN_OPTIONS_VERSION */
	/* VERP return paths: the local part starts with this prefix, the rest
	 * up to '@' is the queue ID ("bounces+" matches bounces+Q123@example.com).
	 * NULL or "": no VERP matching. */
	const char *verp_prefix;
	/* Only take VERP tokens at this domain (case-insensitive); NULL: any. */
	const char *verp_domain;
	/* Largest message accepted; 0: 64 MiB. */
	size_t max_size;
} msv_dsn_options;

#define MSV_DSN_OPTIONS_VERSION 1
#define MSV_DSN_OPTIONS_INIT {.version = MSV_DSN_OPTIONS_VERSION}

/*
 * Parses and classifies one message.  opts may be NULL (no VERP, default
 * limits).  On MSV_OK *out is a report to free with msv_dsn_report_free().
 */
MSV_EXTERN MSV_WUR msv_result msv_dsn_parse(msv_dsn_report **out, const char *buf, size_t len,
                                            const msv_dsn_options *opts, msv_error *err);
MSV_EXTERN void msv_dsn_report_free(msv_dsn_report *r);

/*
 * Classifies one failure outside any report: an SMTP reply to our own
 * RCPT or DATA (status "5.1.1" or NULL, reply_code or 0, text the
 * server's words, command "RCPT", "DATA" or NULL).  Fills reason, hard,
 * status (inferred when none is given) and rule (the same sentence a
 * report's recipient gets).  Used by the daemon so
 * that synchronous refusals and bounces land in the same taxonomy.
 */
#define MSV_DSN_RULE_MAX 160

typedef struct msv_dsn_verdict {
	msv_dsn_reason reason;
	int hard;
	char status[MSV_DSN_STATUS_MAX];
	msv_dsn_source status_source;
	char rule[MSV_DSN_RULE_MAX];
} msv_dsn_verdict;

MSV_EXTERN void msv_dsn_classify(msv_dsn_verdict *out, const char *status, int reply_code,
                                 const char *text, const char *command);

/*
 * A VERP return path: prefix + id + "@" + domain appended to out
 * ("bounces+" "Q123" "@" "example.com").  id must be 1..128 characters of
 * letters, digits and "-._=" (so it survives every MTA unchanged);
 * MSV_E_INVALID otherwise.  msv_dsn_verp_decode() is the reverse: it
 * appends the id to out and returns MSV_OK, or MSV_E_INVALID when addr
 * is not such an address (domain compared only when domain is not NULL).
 */
MSV_EXTERN MSV_WUR msv_result msv_dsn_verp_encode(msv_buf *out, const char *prefix,
                                                  const char *id, const char *domain);
MSV_EXTERN MSV_WUR msv_result msv_dsn_verp_decode(msv_buf *out, const char *addr,
                                                  const char *prefix, const char *domain);

/* Names: "bounce", "failed", "userunknown"; never NULL ("?" when out of range). */
MSV_EXTERN const char *msv_dsn_kind_name(msv_dsn_kind k);
MSV_EXTERN const char *msv_dsn_action_name(msv_dsn_action a);
MSV_EXTERN const char *msv_dsn_reason_name(msv_dsn_reason r);
MSV_EXTERN const char *msv_dsn_reason_text(msv_dsn_reason r);
MSV_EXTERN const char *msv_dsn_source_name(msv_dsn_source s);
/* The reason whose name is name ("userunknown", also Sisimai's names:
 * "speeding"), or -1. */
MSV_EXTERN int msv_dsn_reason_from_name(const char *name);
/* Sisimai's name for a reason (the same name for all but ratelimited). */
MSV_EXTERN const char *msv_dsn_reason_sisimai(msv_dsn_reason r);

#ifdef __cplusplus
}
#endif
#endif
