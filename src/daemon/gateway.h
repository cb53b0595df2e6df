/* The gateway (issue 14, docs/gateway.md): who submits, and whether they
 * may submit now.  missived keeps the policy state in memory: the API keys
 * (re-read from the queue every GW_REFRESH_MS), one token bucket and one
 * reputation per identity ("key:NAME", "uid:1000", "ip:192.0.2.1") and a
 * bucket per sender domain.  Scores move with the outcomes the recorder
 * commits and are written back to the queue after each of its commits, so
 * a restart keeps them.  Every function is safe to call from any thread. */
#ifndef MSV_DAEMON_GATEWAY_H
#define MSV_DAEMON_GATEWAY_H

#include <stdint.h>

#include "missive/core.h"
#include "missive/queue.h"

struct daemon_ctx;
typedef struct gateway gateway;

/* Keys added, removed or rotated, and operators' score overrides, are
 * picked up this often (the issue asks for "within a second"). */
#define GW_REFRESH_MS 250

enum gw_kind { GW_KEY = 1, GW_IP, GW_UID };

/* Who submits: decided once per request, from the credentials (a key),
 * the peer (loopback under trust-loopback) or the socket (SO_PEERCRED). */
typedef struct gw_ident {
	enum gw_kind kind;
	char id[96];     /* "key:NAME", "ip:ADDR", "uid:N": the message's submitter */
	char ip[64];     /* the HTTP client's address; "" on the socket */
	int exempt;      /* root or a trusted user with [limits] exempt-trusted */
} gw_ident;

/* Why a submission was refused, for the answer (HTTP fields, sendmail's line). */
typedef struct gw_refusal {
	const char *scope;   /* "key", "ip", "uid", "sender_domain"; NULL: none */
	int64_t retry_after; /* whole seconds, rounded up: rate_limited, circuit_open */
	double score;        /* reputation: the score that was too low */
} gw_refusal;

/* Loads the keys (and d->http_token as the key "default") and the stored
 * scores, then starts the refresh thread.  0, or -1 after logging why. */
int gateway_start(struct daemon_ctx *d, gateway **out);
/* Stops the thread, writes the scores still unwritten, frees g. */
void gateway_stop(gateway *g);

/* The identity of an HTTP request: a key from "Bearer SECRET" (authz may
 * be NULL), or ip:ADDR without credentials when [http] trust-loopback is
 * set and the peer is loopback.  0, or -1: unauthorized (401). */
int gateway_http_ident(gateway *g, const char *authz, const char *ip, int loopback,
                       gw_ident *out);
/* A local user on the submission socket; user may be NULL. */
void gateway_uid_ident(gateway *g, long uid, const char *user, gw_ident *out);
/* Counts a request answered 401, for /metrics, and records auth.failed. */
void gateway_auth_failed(gateway *g, const gw_ident *id, int had_credentials);

/* Whether id may submit one message now, from sender (the envelope
 * sender, "" for the null sender) with From address from ("": none).
 * Every limit is checked before any token is taken, so a refusal costs
 * no bucket anything.  MSV_OK, or err with MSV_E_UNAUTHORIZED (the key
 * went away), MSV_E_FORBIDDEN (a sender domain the key may not use),
 * MSV_E_RATE_LIMITED, MSV_E_CIRCUIT_OPEN or MSV_E_REPUTATION, and *why. */
msv_result gateway_admit(gateway *g, const gw_ident *id, const char *sender, const char *from,
                         gw_refusal *why, msv_error *err);

/* app_submit_opts.admit for a request: payload is a gw_request. */
typedef struct gw_request {
	gateway *g;
	const gw_ident *id;
	gw_refusal why; /* filled on a refusal */
} gw_request;
msv_result gateway_admit_cb(void *payload, const char *sender, const char *from, msv_error *err);

/* One recipient's committed outcome for its message's submitter (NULL:
 * untracked): sent, bounced, deferred or dead move the score. */
void gateway_outcome(gateway *g, const char *submitter, msv_rcpt_state state);
/* The scores changed since they were last taken, as rows for
 * msv_queue_record_with() (the recorder writes them with its next
 * commit); *rows to msv_queue_reputations_free().  Their count. */
size_t gateway_scores_take(gateway *g, msv_queue_reputation **rows);
/* The commit that carried rows failed: they are written next time. */
void gateway_scores_untake(gateway *g, const msv_queue_reputation *rows, size_t n);
/* Writes the scores changed since they were last taken, in a
 * transaction of their own (at shutdown, or after a quiet spell). */
void gateway_flush(gateway *g);

/* The gateway's series for /metrics, appended to o: 0, or -1 out of memory. */
int gateway_metrics(gateway *g, msv_buf *o);

#endif
