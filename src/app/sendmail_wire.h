/* The framing of missived's submission socket, spoken by `missive
 * sendmail` (docs/internals/cli.md).  A request or a reply is a series of
 * fields, each "NAME LEN\n", LEN octets, "\n"; the last one is "end 0\n\n".
 * Lengths, not escapes: a value may hold any octet, and a message goes over
 * exactly as it was read.
 *   request: missive-submit (1), then sender, rcpt (repeated), extract,
 *            from-name, notify, ret, envid, allow-suppressed (each optional),
 *            message, end
 *   reply:   rc (0 when queued, else app_exit_code() of the error: what
 *            `missive sendmail` exits with), then id and recipients, or
 *            error (one line) and, for a refusal of missived's gateway (a
 *            limit, the submitter's reputation), gateway 1: final, the
 *            client must not write the queue itself; then end */
#ifndef MSV_APP_SENDMAIL_WIRE_H
#define MSV_APP_SENDMAIL_WIRE_H

#include "submit.h"

#define APP_WIRE_VERSION "1"
#define APP_WIRE_NAME_MAX 31
/* Largest message accepted, as for sendmail straight into the queue. */
#define APP_MESSAGE_MAX (100u << 20)

typedef struct app_wire_field {
	char name[APP_WIRE_NAME_MAX + 1];
	const char *val; /* into the parsed buffer; not NUL-terminated */
	size_t len;
} app_wire_field;

/* Appends one field (val NULL: nothing).  0, or -1 when out of memory. */
int app_wire_put(msv_buf *b, const char *name, const char *val, size_t len);
/* The field at *off of buf[0..len): 1 with *off moved past it; 0 when buf
 * ends inside it; -1 when malformed, with why set. */
int app_wire_next(const char *buf, size_t len, size_t *off, app_wire_field *f, char *why,
                  size_t whysz);

/* A submission, encoded whole into b.  0, or -1 when out of memory. */
int app_wire_request(msv_buf *b, const app_submit_opts *o, const char *msg, size_t len);

typedef struct app_wire_req {
	app_submit_opts o;
	const char **rcpt; /* o.rcpt's storage */
	const char *msg;
	size_t msglen;
} app_wire_req;

/* Decodes a request from buf[0..len), which it changes: string values are
 * NUL-terminated in place (and refused when they hold a NUL), so r points
 * into buf.  1 when complete, 0 when more is needed, -1 when malformed
 * (why says how; r is freed). */
int app_wire_decode(char *buf, size_t len, app_wire_req *r, char *why, size_t whysz);
/* The same with at most max_rcpt rcpt fields: more is -2 (why names
 * max-recipients), as soon as the buffer holds one too many, so that the
 * answer need not wait for the rest of the request. */
int app_wire_decode_limit(char *buf, size_t len, size_t max_rcpt, app_wire_req *r, char *why,
                          size_t whysz);
void app_wire_req_free(app_wire_req *r);

/* The answer to a request: rc 0 with res's id and nrcpt, or a sysexits
 * code (app_exit_code()) with error.  0, or -1 when out of memory. */
int app_wire_reply(msv_buf *b, int rc, const app_submitted *res, const char *error);
/* Decodes an answer: 1 when complete (*rc, and res->id and res->nrcpt or
 * error set; res->failed APP_SUBMIT_ADMIT for a gateway refusal), 0 when
 * more is needed, -1 when malformed (why set). */
int app_wire_reply_decode(const char *buf, size_t len, int *rc, app_submitted *res, char *error,
                          size_t errsz, char *why, size_t whysz);

/* Makes o a local user's submission: o->local, o->uid, and o->user in
 * buf (NULL when the uid has no passwd entry).  Here, not in submit.c:
 * the sendmail front end (missive-sendmail) links this file without
 * OpenSSL or SQLite. */
void app_local_user(app_submit_opts *o, long uid, char *buf, size_t bufsz);

/* Writes all of p to a socket (no SIGPIPE).  0, or -1 with errno set. */
int app_wire_send(int fd, const char *p, size_t n);

#endif
