/* Submission: from a raw message and an envelope to a queued message.
 * Shared by `missive sendmail` and missived's HTTP API so both accept the
 * same messages the same way. */
#ifndef MSV_APP_SUBMIT_H
#define MSV_APP_SUBMIT_H

#include "config.h"
#include "missive/queue.h"

typedef struct app_submit_opts {
	const char *sender;       /* envelope sender (-f); NULL: the From address */
	const char *const *rcpt;  /* envelope recipients given explicitly */
	size_t nrcpt;
	int extract;              /* -t: recipients from To, Cc, Bcc; Bcc removed */
	const char *from_name;    /* -F: display name when a From field is added */
	int allow_suppressed;     /* queue even to suppressed addresses */
	const char *dsn_notify;   /* -N: NEVER or SUCCESS,FAILURE,DELAY; NULL: the route's */
	const char *dsn_ret;      /* -R: FULL or HDRS; NULL: the route's */
	const char *envid;        /* -V: DSN envelope ID; NULL: the queue ID */
	/* Who submits.  local 1: a local user (sendmail into the queue, or
	 * missived's socket), uid from getuid() or the socket's SO_PEERCRED,
	 * never from the request; user its login name (NULL: the uid has none).
	 * local 0: not a local user (HTTP API): no default sender. */
	int local;
	long uid;
	const char *user;
	/* Who submits, stored with the message for reputation ("key:NAME",
	 * "ip:ADDR"); NULL: "uid:N" for a local user, else nobody. */
	const char *submitter;
	/* missived's gateway: called once the envelope sender and the From
	 * address ("" when none) are known, before the message is signed or
	 * stored.  MSV_OK admits; else the code of err refuses the message
	 * (res->failed APP_SUBMIT_ADMIT).  NULL: no admission check. */
	msv_result (*admit)(void *payload, const char *sender, const char *from, msv_error *err);
	void *admit_payload;
	/* The audit trail (NULL: none): app_submit() records message.accepted
	 * with how ("http", "socket", "queue") and the client's address. */
	struct app_audit *audit;
	const char *how;
	const char *actor_ip;
} app_submit_opts;


/* What is stored: the message as it will be sent. */
typedef struct app_prepared {
	msv_buf body;             /* CRLF, missing fields added, DKIM-signed */
	char *sender;
	char **rcpt;
	size_t nrcpt;
	char *message_id;         /* without angle brackets' surroundings: "<...>" */
	app_route *route;
	int body_8bit, smtputf8;
	char dsn_notify[40], dsn_ret[8]; /* "" : the route's */
	char *envid;
	char submitter[96];       /* o->submitter, or "uid:N"; "": none */
} app_prepared;

/* Checks and completes a message: line ends to CRLF, Date, Message-ID
 * and From added when missing, -t recipients, route chosen, DKIM-signed
 * with the route's keys.  MSV_OK, or the code of err, which says what
 * was wrong (nothing printed): MSV_E_BAD_MESSAGE, MSV_E_BAD_ADDRESS,
 * MSV_E_TOO_MANY_RCPT, MSV_E_NO_RCPT, MSV_E_NO_USER (a local uid without
 * a login name), MSV_E_INVALID (a DSN parameter), class CONFIG for the
 * route's settings, or o->admit's refusal.  app_exit_code() makes it a sysexits code. */
msv_result app_prepare(app_config *c, const char *raw, size_t len, const app_submit_opts *o,
                       app_prepared *out, msv_error *err);
void app_prepared_free(app_prepared *p);

/* Refuses (MSV_E_SUPPRESSED, err naming it) a recipient on the
 * suppression list; a queue failure is the queue's code. */
msv_result app_check_suppressed(msv_queue *q, const app_prepared *p, msv_error *err);

/* Stores n prepared messages durably; ids[i] gets message i's queue ID. */
msv_result app_enqueue(msv_queue *q, app_prepared *const *p, size_t n,
                       char (*ids)[MSV_QID_LEN + 1], msv_error *err);

/* 1 for the codes only an admission check gives (unauthorized,
 * forbidden, rate_limited, circuit_open, reputation). */
int app_refused_by_gateway(msv_result code);

/* What app_submit() did. */
typedef struct app_submitted {
	char id[MSV_QID_LEN + 1]; /* the queue ID */
	char *message_id;         /* as stored ("<...>"); msv_free() it */
	size_t nrcpt;
	int audit_failed;         /* queued, but message.accepted could not be recorded */
	enum {
		APP_SUBMIT_PREPARE = 1,
		APP_SUBMIT_SUPPRESSED,
		APP_SUBMIT_QUEUE,
		APP_SUBMIT_ADMIT /* o->admit refused it (or, over the socket, missived's gateway) */
	} failed;
} app_submitted;

/* One submission, the same for every way in (sendmail, missived's
 * socket and HTTP API): app_prepare(), the suppression check unless
 * o->allow_suppressed, app_enqueue().  MSV_OK, or the code of err with
 * res->failed naming the step; a busy or failing queue (and any other
 * failure of our own side) has class TEMPORARY: the caller may retry. */
msv_result app_submit(app_config *c, msv_queue *q, const char *raw, size_t len,
                      const app_submit_opts *o, app_submitted *res, msv_error *err);

/* Opens the configured queue.  MSV_OK, or the code of err, which names
 * the queue (MSV_E_CANT_CREATE when it cannot be created or written);
 * prints nothing. */
msv_result app_queue_open(const app_config *c, int read_only, msv_queue **q, msv_error *err);

#endif
