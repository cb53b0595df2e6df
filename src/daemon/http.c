/* The HTTP JSON API (libmicrohttpd + cJSON):
 *   POST /v1/messages      queue a message (raw, or the fields of `missive build`)
 *   GET  /v1/messages/ID   per-recipient state and attempts
 *   GET  /healthz          liveness and queue reachability
 *   GET  /metrics          Prometheus text format
 * Every error is a JSON object {"error": {"code", "message"}} and queues
 * nothing.  See docs/http-api.md. */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "audit_trail.h"
#include "daemon.h"
#include "gateway.h"
#include "http_errors.h"
#include "missive/mime.h"
#include "bounce.h"
#include "queue_json.h"
#include "submit.h"

/* A request body held in memory.  Not an msv_buf: its capacity is
 * exactly what is charged to max-inflight (msv_buf rounds up to powers of
 * two, which would let real memory run past the budget). */
typedef struct body {
	char *data;
	size_t len, cap;
} body;

typedef struct request {
	body body;
	int too_large;   /* over max-body, or unauthorized: the body is discarded */
	int over_budget; /* max-inflight was full: discarded, answered 503 */
	size_t reserved; /* bytes of max-inflight this request holds (body.cap) */
	int authed;      /* id holds who sends (gateway.c); 0: 401 for all but /healthz */
	gw_ident id;
} request;

/* One open connection, for the header timeout.  MHD's own timeout counts
 * idleness, so a client sending a byte every few seconds would keep a
 * connection forever (slow-loris); the watchdog closes any connection
 * whose headers are not complete by its deadline. */
typedef struct conn_track {
	struct conn_track *prev, *next;
	int fd;
	int64_t deadline_ms; /* monotonic; 0 while a request is handled */
	int shut;
} conn_track;

struct http_server {
	daemon_ctx *d;
	struct MHD_Daemon *mhd;
	pthread_mutex_t mu; /* guards everything below */
	conn_track conns;   /* circular list head */
	size_t inflight;    /* bytes of request bodies held now */
	pthread_cond_t stop_cv;
	pthread_t watchdog;
	int stopping, watchdog_ok;
};

/* hname and hval (may be NULL): one more header (Retry-After,
 * WWW-Authenticate). */
static enum MHD_Result send_text_h(struct MHD_Connection *c, daemon_ctx *d, unsigned status,
                                   const char *type, const char *text, size_t len,
                                   const char *hname, const char *hval)
{
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", type);
	if (hname)
		MHD_add_response_header(r, hname, hval);
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	metrics_http(&d->m, status);
	return ret;
}

static enum MHD_Result send_text(struct MHD_Connection *c, daemon_ctx *d, unsigned status,
                                 const char *type, const char *text, size_t len)
{
	return send_text_h(c, d, status, type, text, len, NULL, NULL);
}

static enum MHD_Result send_json(struct MHD_Connection *c, daemon_ctx *d, unsigned status,
                                 cJSON *j)
{
	char *s = j ? cJSON_PrintUnformatted(j) : NULL;
	cJSON_Delete(j);
	static const char nomem[] = "{\"error\":{\"code\":\"nomem\",\"message\":\"out of memory\"}}";
	if (!s)
		return send_text(c, d, 500, "application/json", nomem, sizeof(nomem) - 1);
	enum MHD_Result ret = send_text(c, d, status, "application/json", s, strlen(s));
	cJSON_free(s);
	return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *c, daemon_ctx *d, unsigned status,
                                  const char *code, const char *msg)
{
	cJSON *j = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(j, "error");
	if (!cJSON_AddStringToObject(e, "code", code) || !cJSON_AddStringToObject(e, "message", msg)) {
		/* Out of memory: the status and code still say what happened
		 * (codes are fixed identifiers, no escaping). */
		cJSON_Delete(j);
		char s[160];
		int n = snprintf(s, sizeof(s),
		                 "{\"error\":{\"code\":\"%s\",\"message\":\"out of memory\"}}", code);
		return send_text(c, d, status, "application/json", s,
		                 n > 0 && (size_t)n < sizeof(s) ? (size_t)n : 0);
	}
	return send_json(c, d, status, j);
}

static enum MHD_Result send_app_error(struct MHD_Connection *c, daemon_ctx *d, enum http_step step,
                                      const msv_error *err)
{
	unsigned status;
	const char *kind = http_error_for(step, err, &status);
	return send_error(c, d, status, kind, err->message);
}

/* The gateway's refusals: the usual error object with what a client
 * needs to wait or fix (scope, retry_after, score), and Retry-After or
 * WWW-Authenticate (RFC 6750 3) as the status asks. */
static enum MHD_Result send_refusal(struct MHD_Connection *c, daemon_ctx *d, const msv_error *err,
                                    const gw_refusal *why)
{
	unsigned status;
	const char *kind = http_error_for(STEP_ADMIT, err, &status);
	cJSON *j = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(j, "error");
	int bad = !cJSON_AddStringToObject(e, "code", kind) ||
	          !cJSON_AddStringToObject(e, "message", err->message);
	if (err->code == MSV_E_RATE_LIMITED && why->scope)
		bad |= !cJSON_AddStringToObject(e, "scope", why->scope);
	if (status == 429)
		bad |= !cJSON_AddNumberToObject(e, "retry_after", (double)why->retry_after);
	if (err->code == MSV_E_REPUTATION)
		bad |= !cJSON_AddNumberToObject(e, "score", floor(why->score * 10 + 0.5) / 10);
	char *s = bad ? NULL : cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	if (!s)
		return send_error(c, d, status, kind, err->message);
	char ra[24];
	snprintf(ra, sizeof(ra), "%lld", (long long)why->retry_after);
	enum MHD_Result ret = send_text_h(c, d, status, "application/json", s, strlen(s),
	                                  status == 429 ? "Retry-After"
	                                  : status == 401 ? "WWW-Authenticate" : NULL,
	                                  status == 429 ? ra : "Bearer");
	cJSON_free(s);
	return ret;
}

/* ---- POST /v1/messages ---- */

/* Recipients as named in the request.  One more than the largest
 * [submission] max-recipients (5000): a longer list keeps that many and
 * app_prepare() refuses it, naming the key, with the same
 * "too_many_recipients" code and 400 as any list over the configured
 * limit (issue 12: the same limit on every way in). */
#define STRS_MAX 5001

typedef struct strs {
	const char *v[STRS_MAX];
	size_t n;
} strs;

/* A string or an array of strings appended to s (past STRS_MAX, only
 * counted as full); 0, or -1 with why set. */
static int get_list(const cJSON *j, const char *key, strs *s, char *why, size_t whysz)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
	if (!v)
		return 0;
	if (cJSON_IsString(v)) {
		if (s->n < STRS_MAX)
			s->v[s->n++] = v->valuestring;
		return 0;
	}
	if (!cJSON_IsArray(v)) {
		snprintf(why, whysz, "\"%s\" must be a string or an array of strings", key);
		return -1;
	}
	const cJSON *e;
	cJSON_ArrayForEach(e, v) {
		if (!cJSON_IsString(e)) {
			snprintf(why, whysz, "\"%s\" must be a string or an array of strings", key);
			return -1;
		}
		if (s->n == STRS_MAX)
			break; /* too many whatever follows: refused by count */
		s->v[s->n++] = e->valuestring;
	}
	return 0;
}

static const char *get_str(const cJSON *j, const char *key, int *bad)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
	if (!v || cJSON_IsNull(v))
		return NULL;
	if (!cJSON_IsString(v)) {
		*bad = 1;
		return NULL;
	}
	return v->valuestring;
}

/* "headers": {"Name": "value", ...} onto m; *r gets a refusal from m.
 * -1 with why when the JSON is not of that form. */
static int json_headers(msv_mime_msg *m, const cJSON *j, msv_result *r, char *why, size_t whysz)
{
	const cJSON *h = cJSON_GetObjectItemCaseSensitive(j, "headers"), *e;
	if (h && !cJSON_IsObject(h)) {
		snprintf(why, whysz, "\"headers\" must be an object of name: value strings");
		return -1;
	}
	cJSON_ArrayForEach(e, h) {
		if (*r)
			break;
		if (!cJSON_IsString(e)) {
			snprintf(why, whysz, "header \"%.100s\" must have a string value", e->string);
			return -1;
		}
		*r = msv_mime_add_header(m, e->string, e->valuestring);
	}
	return 0;
}

/* "attachments": [{"content_base64", "filename", "content_type",
 * "content_id"}, ...] onto m, as json_headers. */
static int json_attachments(msv_mime_msg *m, const cJSON *j, msv_result *r, char *why,
                            size_t whysz)
{
	const cJSON *atts = cJSON_GetObjectItemCaseSensitive(j, "attachments"), *e;
	if (atts && !cJSON_IsArray(atts)) {
		snprintf(why, whysz, "\"attachments\" must be an array");
		return -1;
	}
	cJSON_ArrayForEach(e, atts) {
		if (*r)
			break;
		int bt = 0;
		const char *fn = get_str(e, "filename", &bt), *ct = get_str(e, "content_type", &bt),
		           *b64 = get_str(e, "content_base64", &bt), *cid = get_str(e, "content_id", &bt);
		if (bt || !b64) {
			snprintf(why, whysz, "each attachment needs \"content_base64\" (and optional "
			                     "\"filename\", \"content_type\", \"content_id\" strings)");
			return -1;
		}
		msv_buf data;
		msv_buf_init(&data, SIZE_MAX / 2);
		if (msv_base64_decode(&data, b64, strlen(b64))) {
			msv_buf_free(&data);
			snprintf(why, whysz, "attachment \"%.100s\": content_base64 is not valid base64",
			         fn ? fn : "(unnamed)");
			return -1;
		}
		msv_mime_part_options po = MSV_MIME_PART_OPTIONS_INIT;
		po.filename = fn;
		po.content_type = ct ? ct : fn ? msv_mime_type_for(fn) : "application/octet-stream";
		po.content_id = cid;
		*r = msv_mime_attach_data(m, data.data ? data.data : "", data.len, MSV_MIME_COPY, &po);
		msv_buf_free(&data);
	}
	return 0;
}

/* The envelope recipients of the built message m (Bcc included) into
 * rcpt.  They must outlive m: they are kept in out's spare room after
 * the message, NUL-separated.  0, or -1 with why. */
static int envelope_rcpts(msv_mime_msg *m, msv_buf *out, strs *rcpt, char *why, size_t whysz)
{
	size_t n;
	const char *const *all = msv_mime_recipients(m, &n);
	size_t msglen = out->len;
	/* More than rcpt holds would be dropped from the envelope without a
	 * word while the client hears 202: refuse instead. */
	if (n > sizeof(rcpt->v) / sizeof(rcpt->v[0])) {
		snprintf(why, whysz, "too many recipients: %zu in to, cc and bcc (at most %zu)", n,
		         sizeof(rcpt->v) / sizeof(rcpt->v[0]));
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		if (msv_buf_add(out, all[i], strlen(all[i]) + 1)) {
			snprintf(why, whysz, "out of memory");
			return -1;
		}
	rcpt->n = 0; /* from the names as given to the envelope's */
	for (size_t off = msglen; off < out->len && rcpt->n < STRS_MAX; off += strlen(out->data + off) + 1)
		rcpt->v[rcpt->n++] = out->data + off;
	out->len = msglen;
	return 0;
}

/* Builds the message from the fields of `missive build`.  0, or -1 with
 * why set. */
static int build_structured(const cJSON *j, msv_buf *out, strs *rcpt, char *why, size_t whysz)
{
	int badtype = 0;
	const char *from = get_str(j, "from", &badtype), *from_name = get_str(j, "from_name", &badtype),
	           *subject = get_str(j, "subject", &badtype), *text = get_str(j, "text", &badtype),
	           *html = get_str(j, "html", &badtype), *mid = get_str(j, "message_id", &badtype),
	           *date = get_str(j, "date", &badtype), *reply_to = get_str(j, "reply_to", &badtype);
	if (badtype) {
		snprintf(why, whysz, "from, from_name, subject, text, html, message_id, date and "
		                     "reply_to must be strings");
		return -1;
	}
	if (!from || !subject || (!text && !html)) {
		snprintf(why, whysz, "missing field: a structured message needs \"from\", \"subject\" "
		                     "and \"text\" or \"html\" (or give \"raw\")");
		return -1;
	}
	/* to, cc and bcc one after the other in rcpt itself (40 KB each on
	 * the stack otherwise); it gets the envelope recipients at the end. */
	strs *a = rcpt;
	a->n = 0;
	if (get_list(j, "to", a, why, whysz))
		return -1;
	size_t nto = a->n;
	if (get_list(j, "cc", a, why, whysz))
		return -1;
	size_t ncc = a->n - nto;
	if (get_list(j, "bcc", a, why, whysz))
		return -1;
	if (!a->n) {
		snprintf(why, whysz, "missing field: \"to\" (or \"cc\", \"bcc\")");
		return -1;
	}
	if (a->n == STRS_MAX)
		return 0; /* more than any max-recipients: refused by count, nothing built */
	msv_mime_msg *m = NULL;
	if (msv_mime_new(&m, NULL)) {
		snprintf(why, whysz, "out of memory");
		return -1;
	}
	msv_result r = msv_mime_add_address(m, MSV_MIME_FROM, from_name, from);
	for (size_t i = 0; !r && i < a->n; i++)
		r = msv_mime_add_address(m, i < nto ? MSV_MIME_TO : i < nto + ncc ? MSV_MIME_CC
		                                                   : MSV_MIME_BCC, NULL, a->v[i]);
	if (!r && reply_to)
		r = msv_mime_add_address(m, MSV_MIME_REPLY_TO, NULL, reply_to);
	if (!r)
		r = msv_mime_set_subject(m, subject);
	if (!r && text)
		r = msv_mime_set_text(m, text, strlen(text));
	if (!r && html)
		r = msv_mime_set_html(m, html, strlen(html));
	if (!r && mid)
		r = msv_mime_set_message_id(m, mid);
	if (!r && date)
		r = msv_mime_set_date(m, date);
	if (!r && (json_headers(m, j, &r, why, whysz) || json_attachments(m, j, &r, why, whysz)))
		goto fail_why;
	if (!r)
		r = msv_mime_prepare(m, MSV_MIME_8BITMIME);
	if (!r)
		r = msv_mime_write_buf(m, out);
	if (r) {
		snprintf(why, whysz, "%s", msv_mime_error(m)->message);
		msv_mime_free(m);
		return -1;
	}
	if (envelope_rcpts(m, out, rcpt, why, whysz))
		goto fail_why;
	msv_mime_free(m);
	return 0;
fail_why:
	msv_mime_free(m);
	return -1;
}

/* Length of the valid UTF-8 sequence at s (RFC 3629: no overlong forms,
 * no surrogates, nothing past U+10FFFF), or 0 when it is not one. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t len = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3
	           : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
	if (!len || len > n)
		return 0;
	for (size_t i = 1; i < len; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f) || (c == 0xf0 && s[1] < 0x90) ||
	    (c == 0xf4 && s[1] > 0x8f))
		return 0; /* overlong, a surrogate, or past U+10FFFF */
	return len;
}

/* A body that must be JSON: RFC 8259 requires UTF-8, and any NUL byte
 * (raw, or the \u0000 escape) would end a cJSON string early, so the
 * message would be queued cut short while the client hears 202.  0, or
 * -1 with why set naming the byte offset. */
static int check_text(const char *s, size_t n, int utf8, char *why, size_t whysz)
{
	const unsigned char *u = (const unsigned char *)s;
	for (size_t i = 0; i < n;) {
		if (!u[i]) {
			snprintf(why, whysz, "the body holds a NUL byte (at offset %zu): no field may "
			                     "contain one", i);
			return -1;
		}
		size_t k = utf8 ? utf8_seq(u + i, n - i) : 1;
		if (!k) {
			snprintf(why, whysz, "the body is not valid UTF-8 (at offset %zu); JSON must be "
			                     "UTF-8 (RFC 8259)", i);
			return -1;
		}
		i += k;
	}
	return 0;
}

/* 1 when the JSON text has a \u0000 escape.  cJSON keeps strings
 * NUL-terminated, so such a string would silently end there ("raw" cut
 * short and queued).  A backslash occurs only inside strings in valid
 * JSON, and each escape is skipped whole, so "\\u0000" is not one. */
static int has_nul_escape(const char *s, size_t n)
{
	for (size_t i = 0; s && i + 1 < n; i++) {
		if (s[i] != '\\')
			continue;
		if (s[i + 1] == 'u' && i + 5 < n && !memcmp(s + i + 2, "0000", 4))
			return 1;
		i++; /* the escaped character */
	}
	return 0;
}

/* 202 for a queued message: its ID, Message-ID and recipient count. */
static enum MHD_Result send_accepted(struct MHD_Connection *c, daemon_ctx *d, app_submitted *res)
{
	health_write_result(d, NULL);
	metrics_submitted(&d->m, 1);
	daemon_wake(d);
	dlog("%s: queued through the HTTP API, %zu recipient%s%s", res->id, res->nrcpt,
	     res->nrcpt == 1 ? "" : "s",
	     res->audit_failed ? "; its message.accepted event could not be written" : "");
	cJSON *reply = cJSON_CreateObject();
	if (!cJSON_AddStringToObject(reply, "id", res->id) ||
	    (res->message_id && !cJSON_AddStringToObject(reply, "message_id", res->message_id)) ||
	    !cJSON_AddNumberToObject(reply, "recipients", (double)res->nrcpt)) {
		/* Out of memory, but queued: a 500 would have the client send it
		 * again.  The ID is hex: no escaping, no allocation. */
		cJSON_Delete(reply);
		msv_free(res->message_id);
		char s[80];
		int n = snprintf(s, sizeof(s), "{\"id\":\"%s\",\"recipients\":%zu}", res->id,
		                 res->nrcpt);
		return send_text(c, d, 202, "application/json", s, (size_t)n);
	}
	msv_free(res->message_id);
	return send_json(c, d, 202, reply);
}

static enum MHD_Result post_message(struct MHD_Connection *c, daemon_ctx *d, request *rq)
{
	char bad[160];
	if (check_text(rq->body.data, rq->body.len, 1, bad, sizeof(bad)))
		return send_error(c, d, 400, "invalid", bad);
	if (has_nul_escape(rq->body.data, rq->body.len))
		return send_error(c, d, 400, "invalid",
		                  "a string holds a NUL (\\u0000): no message field may contain one");
	cJSON *j = cJSON_ParseWithLength(rq->body.data ? rq->body.data : "", rq->body.len);
	if (!j || !cJSON_IsObject(j)) {
		cJSON_Delete(j);
		return send_error(c, d, 400, "bad_json", "the body is not a JSON object");
	}
	char why[MSV_TEXT_MAX] = "";
	int badtype = 0;
	const char *raw = get_str(j, "raw", &badtype), *sender = get_str(j, "sender", &badtype);
	const cJSON *allow = cJSON_GetObjectItemCaseSensitive(j, "allow_suppressed");
	strs rcpt = {{0}, 0};
	msv_buf built;
	msv_buf_init(&built, SIZE_MAX / 2);
	int rc = 0;
	if (badtype) {
		snprintf(why, sizeof(why), "\"raw\" and \"sender\" must be strings");
		rc = -1;
	} else if (raw) {
		rc = get_list(j, "recipients", &rcpt, why, sizeof(why));
	} else {
		rc = build_structured(j, &built, &rcpt, why, sizeof(why));
	}
	if (rc) {
		msv_buf_free(&built);
		cJSON_Delete(j);
		return send_error(c, d, 400, "invalid", why);
	}
	app_submit_opts o = {0};
	o.sender = sender;
	/* Who sends (a key, or the loopback address), judged by the gateway
	 * once the sender domain is known, and stored for its reputation. */
	gw_request adm = {d->gw, &rq->id, {NULL, 0, 0}};
	o.submitter = rq->id.id;
	o.admit = gateway_admit_cb;
	o.admit_payload = &adm;
	o.audit = d->audit;
	o.how = "http";
	o.actor_ip = rq->id.ip;
	o.rcpt = rcpt.v;
	o.nrcpt = rcpt.n;
	o.extract = raw && !rcpt.n; /* like sendmail -t */
	if (allow && !cJSON_IsBool(allow)) {
		msv_buf_free(&built);
		cJSON_Delete(j);
		return send_error(c, d, 400, "invalid", "\"allow_suppressed\" must be true or false");
	}
	o.allow_suppressed = cJSON_IsTrue(allow);
	const cJSON *dsn = cJSON_GetObjectItemCaseSensitive(j, "dsn");
	if (dsn) {
		int bt = !cJSON_IsObject(dsn);
		o.dsn_notify = get_str(dsn, "notify", &bt);
		o.dsn_ret = get_str(dsn, "ret", &bt);
		o.envid = get_str(dsn, "envid", &bt);
		if (bt) {
			msv_buf_free(&built);
			cJSON_Delete(j);
			return send_error(c, d, 400, "invalid",
			                  "\"dsn\" must be {\"notify\", \"ret\", \"envid\"} strings");
		}
	}
	app_submitted res;
	msv_error err;
	rc = raw ? app_submit(d->cfg, d->q, raw, strlen(raw), &o, &res, &err)
	         : app_submit(d->cfg, d->q, built.data, built.len, &o, &res, &err);
	msv_buf_free(&built);
	cJSON_Delete(j);
	if (rc && res.failed == APP_SUBMIT_ADMIT) {
		/* Rate refusals are not logged one by one (a client hammering
		 * would fill the log); /metrics counts them. */
		if (err.code != MSV_E_RATE_LIMITED)
			dlog("HTTP submission of %s refused: %s", rq->id.id, err.message);
		return send_refusal(c, d, &err, &adm.why);
	}
	if (rc && res.failed != APP_SUBMIT_QUEUE)
		return send_app_error(c, d, res.failed == APP_SUBMIT_PREPARE ? STEP_PREPARE
		                                                             : STEP_SUPPRESSED, &err);
	if (rc) {
		/* The client will retry; the operator must hear of it (queue
		 * errors name the file, never an address). */
		health_write_result(d, &err);
		dlog("HTTP submission refused with 503: %s", err.message);
		return send_app_error(c, d, STEP_QUEUE, &err);
	}
	return send_accepted(c, d, &res);
}

/* ---- GET /v1/messages/ID ---- */

static enum MHD_Result get_message(struct MHD_Connection *c, daemon_ctx *d, const char *id)
{
	/* Queue IDs are MSV_QID_LEN hex digits; anything else is no message. */
	size_t n = strspn(id, "0123456789abcdefABCDEF");
	if (n != MSV_QID_LEN || id[n])
		return send_error(c, d, 404, "not_found", "no such message (IDs are 16 hex digits)");
	msv_queue_info info;
	msv_error err;
	if (msv_queue_show(d->q, id, &info, &err))
		return err.code == MSV_E_INVALID ? send_error(c, d, 404, "not_found", "no such message")
		                                 : send_error(c, d, 503, "queue", err.message);
	cJSON *j = app_info_json(&info);
	msv_queue_info_free(&info);
	return send_json(c, d, 200, j);
}

/* ---- POST /v1/bounces ---- */

/* The body is the bounce itself, or {"raw": "..."} with Content-Type
 * application/json. */
static enum MHD_Result post_bounce(struct MHD_Connection *c, daemon_ctx *d, request *rq)
{
	const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
	const char *msg = rq->body.data ? rq->body.data : "";
	size_t len = rq->body.len;
	cJSON *j = NULL;
	char bad[160];
	int json = ct && !strncasecmp(ct, "application/json", 16);
	/* A bounce itself may be 8-bit in any charset; JSON must be UTF-8. */
	if (check_text(msg, len, json, bad, sizeof(bad)))
		return send_error(c, d, 400, "invalid", bad);
	if (json && has_nul_escape(msg, len))
		return send_error(c, d, 400, "invalid",
		                  "\"raw\" holds a NUL (\\u0000): a bounce cannot contain one");
	if (json) {
		j = cJSON_ParseWithLength(msg, len);
		const cJSON *raw = cJSON_GetObjectItemCaseSensitive(j, "raw");
		if (!cJSON_IsString(raw)) {
			cJSON_Delete(j);
			return send_error(c, d, 400, "invalid", "expected {\"raw\": \"the bounce message\"}");
		}
		msg = raw->valuestring;
		len = strlen(msg);
	}
	cJSON *res = NULL;
	msv_error err;
	app_bounce_step step;
	int rc = app_apply_bounce(d->cfg, d->q, msg, len, &res, &step, &err);
	cJSON_Delete(j);
	if (!rc) {
		daemon_audit_bounce(d, res, rq->id.id, rq->id.ip);
		return send_json(c, d, 200, res);
	}
	if (step == APP_BOUNCE_PARSE)
		return send_app_error(c, d, STEP_BOUNCE_PARSE, &err);
	health_write_result(d, &err);
	dlog("HTTP bounce refused with 503: %s", err.message);
	return send_app_error(c, d, STEP_QUEUE, &err);
}

/* ---- limits: the in-flight body budget and the header deadline ---- */

/* Takes n bytes of max-inflight: 0, or -1 when that would go over. */
static int budget_take(http_server *h, size_t n)
{
	int ok;
	pthread_mutex_lock(&h->mu);
	ok = n <= h->d->cfg->http_max_inflight && h->inflight <= h->d->cfg->http_max_inflight - n;
	if (ok)
		h->inflight += n;
	pthread_mutex_unlock(&h->mu);
	return ok ? 0 : -1;
}

static void budget_give(http_server *h, size_t n)
{
	pthread_mutex_lock(&h->mu);
	h->inflight -= n;
	pthread_mutex_unlock(&h->mu);
}

static void body_drop(http_server *h, request *rq)
{
	msv_free(rq->body.data);
	memset(&rq->body, 0, sizeof(rq->body));
	budget_give(h, rq->reserved);
	rq->reserved = 0;
}

/* Makes room for n more body bytes, charging max-inflight for the whole
 * allocation before it is made.  0; -1 over max-body; -2 over budget. */
static int body_room(http_server *h, request *rq, size_t n)
{
	size_t max = h->d->cfg->http_max_body, need = rq->body.len + n;
	if (n > max || rq->body.len > max - n)
		return -1;
	if (need + 1 <= rq->body.cap)
		return 0;
	/* Unknown length (chunked): double, from 64 KiB, up to max-body. */
	size_t cap = rq->body.cap < 32768 ? 65536 : rq->body.cap * 2;
	if (cap > max + 1)
		cap = max + 1;
	if (cap < need + 1)
		cap = need + 1;
	if (budget_take(h, cap - rq->reserved))
		return -2;
	rq->reserved = cap;
	char *p = msv_realloc(rq->body.data, cap);
	if (!p)
		return -2;
	rq->body.data = p;
	rq->body.cap = cap;
	return 0;
}

static conn_track *track_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci ? ci->socket_context : NULL;
}

/* Sets the connection's header deadline to now + ms (ms 0: disarm); with
 * tighten, only moves it earlier. */
static void track_deadline(http_server *h, struct MHD_Connection *c, int64_t ms, int tighten)
{
	conn_track *t = track_of(c);
	if (!t)
		return;
	int64_t at = ms ? msv_now_ms() + ms : 0;
	pthread_mutex_lock(&h->mu);
	if (!tighten || (t->deadline_ms && at < t->deadline_ms))
		t->deadline_ms = at;
	pthread_mutex_unlock(&h->mu);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
	http_server *h = cls;
	conn_track *t = *socket_context;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci =
		    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		if (!ci || !(t = msv_calloc(1, sizeof(*t))))
			return; /* untracked: only MHD's idle timeout applies */
		t->fd = ci->connect_fd;
		t->deadline_ms = msv_now_ms() + h->d->cfg->http_header_timeout_ms;
		pthread_mutex_lock(&h->mu);
		t->next = h->conns.next;
		t->prev = &h->conns;
		t->next->prev = t;
		h->conns.next = t;
		pthread_mutex_unlock(&h->mu);
		*socket_context = t;
		return;
	}
	/* CLOSED comes before MHD closes the descriptor: once unlinked here,
	 * the watchdog can no longer shut down a reused descriptor number. */
	if (t) {
		pthread_mutex_lock(&h->mu);
		t->prev->next = t->next;
		t->next->prev = t->prev;
		pthread_mutex_unlock(&h->mu);
		msv_free(t);
	}
	*socket_context = NULL;
}

/* The request line of a (kept-alive) connection's next request has
 * arrived: its headers are due within header-timeout. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
	(void)uri;
	http_server *h = cls;
	track_deadline(h, c, h->d->cfg->http_header_timeout_ms, 1);
	return NULL;
}

static void *watchdog_main(void *arg)
{
	http_server *h = arg;
	pthread_mutex_lock(&h->mu);
	while (!h->stopping) {
		struct timespec until;
		daemon_abstime(&until, 250);
		pthread_cond_timedwait(&h->stop_cv, &h->mu, &until);
		int64_t now = msv_now_ms();
		unsigned closed = 0;
		for (conn_track *t = h->conns.next; t != &h->conns; t = t->next)
			if (t->deadline_ms && !t->shut && now >= t->deadline_ms) {
				/* MHD sees end of file and closes it in its own thread. */
				shutdown(t->fd, SHUT_RDWR);
				t->shut = 1;
				closed++;
			}
		if (closed)
			dlog("HTTP: closed %u connection%s that had not sent a complete request within "
			     "header-timeout (%lld ms)",
			     closed, closed == 1 ? "" : "s", (long long)h->d->cfg->http_header_timeout_ms);
	}
	pthread_mutex_unlock(&h->mu);
	return NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) MSV_PRINTF(2, 0);
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	char line[512];
	vsnprintf(line, sizeof(line), fmt, ap);
	size_t n = strlen(line);
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	dlog("HTTP (libmicrohttpd): %s", line);
}

/* ---- dispatch ---- */

/* The peer's address as text ("::ffff:" dropped from a mapped IPv4
 * address, so one client has one name) and whether it is loopback. */
static void peer_address(struct MHD_Connection *c, char *ip, size_t n, int *loopback)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;
	*loopback = 0;
	snprintf(ip, n, "unknown");
	if (sa && sa->sa_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &a->sin_addr, ip, (socklen_t)n);
		*loopback = (ntohl(a->sin_addr.s_addr) >> 24) == 127;
	} else if (sa && sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr)) {
			inet_ntop(AF_INET, a->sin6_addr.s6_addr + 12, ip, (socklen_t)n);
			*loopback = a->sin6_addr.s6_addr[12] == 127;
		} else {
			inet_ntop(AF_INET6, &a->sin6_addr, ip, (socklen_t)n);
			*loopback = IN6_IS_ADDR_LOOPBACK(&a->sin6_addr);
		}
	}
}

/* Who sends: a key (Bearer), or the loopback address under
 * trust-loopback.  1 when known, 0: 401 (gateway.c). */
static int authenticate(http_server *h, struct MHD_Connection *c, request *rq)
{
	char ip[64];
	int loopback;
	peer_address(c, ip, sizeof(ip), &loopback);
	const char *authz = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
	return gateway_http_ident(h->d->gw, authz, ip, loopback, &rq->id) == 0;
}

/* Content-Length as a number: 0 and *n set, 1 when absent, -1 when not a
 * plain decimal number (strtoull would take "-1" or " 5"). */
static int content_length(struct MHD_Connection *c, unsigned long long *n)
{
	const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
	if (!cl)
		return 1;
	if (!*cl || strspn(cl, "0123456789") != strlen(cl) || strlen(cl) > 19)
		return -1;
	*n = strtoull(cl, NULL, 10);
	return 0;
}

/* The first call for a request: headers are complete. */
static void request_start(http_server *h, struct MHD_Connection *c, request *rq)
{
	daemon_ctx *d = h->d;
	track_deadline(h, c, 0, 0);
	unsigned long long cl = 0;
	int have = content_length(c, &cl);
	/* Without the token nothing of the body is kept (it will get 401):
	 * no client buffers max-body bytes here before authenticating. */
	rq->authed = authenticate(h, c, rq);
	if (have < 0 || (!have && cl > d->cfg->http_max_body) || !rq->authed) {
		rq->too_large = 1;
		return;
	}
	if (have || !cl)
		return;
	/* The whole declared body is charged now, before a byte of it is
	 * held, so slow senders cannot together hold more than the budget. */
	int r = body_room(h, rq, (size_t)cl);
	if (r == -2) {
		rq->over_budget = 1;
		body_drop(h, rq);
	}
}

static enum MHD_Result over_budget(struct MHD_Connection *c, daemon_ctx *d)
{
	dlog("HTTP request refused with 503: its body would go over max-inflight (%zu bytes held "
	     "by requests in progress)",
	     d->cfg->http_max_inflight);
	cJSON *j = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(j, "error");
	cJSON_AddStringToObject(e, "code", "busy");
	cJSON_AddStringToObject(e, "message", "too many request bodies in progress (max-inflight); "
	                                      "retry later");
	char *s = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	static const char fallback[] = "{\"error\":{\"code\":\"busy\",\"message\":\"retry later\"}}";
	struct MHD_Response *r = MHD_create_response_from_buffer(
	    s ? strlen(s) : sizeof(fallback) - 1, s ? s : (void *)fallback, MHD_RESPMEM_MUST_COPY);
	cJSON_free(s);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", "application/json");
	MHD_add_response_header(r, "Retry-After", "5");
	enum MHD_Result ret = MHD_queue_response(c, 503, r);
	MHD_destroy_response(r);
	metrics_http(&d->m, 503);
	return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **state)
{
	(void)version;
	http_server *hs = cls;
	daemon_ctx *d = hs->d;
	request *rq = *state;
	if (!rq) {
		if (!(rq = msv_calloc(1, sizeof(*rq))))
			return MHD_NO;
		*state = rq;
		request_start(hs, c, rq);
		return MHD_YES;
	}
	if (*upload_size) {
		if (!rq->too_large && !rq->over_budget) {
			int r = body_room(hs, rq, *upload_size);
			if (r) {
				*(r == -1 ? &rq->too_large : &rq->over_budget) = 1;
				body_drop(hs, rq);
			} else {
				memcpy(rq->body.data + rq->body.len, upload, *upload_size);
				rq->body.len += *upload_size;
				rq->body.data[rq->body.len] = '\0';
			}
		}
		*upload_size = 0;
		return MHD_YES;
	}
	int get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
	int post = !strcmp(method, "POST");
	if (!strcmp(url, "/healthz")) {
		if (!get)
			return send_error(c, d, 405, "method", "use GET");
		msv_queue_stats qs;
		msv_error err;
		char why[MSV_TEXT_MAX + 64];
		if (msv_queue_stats_get(d->q, msv_wall_ms(), &qs, &err))
			return send_error(c, d, 503, "queue", err.message);
		if (health_check(d, why, sizeof(why)))
			return send_error(c, d, 503, "queue_write", why);
		return send_text(c, d, 200, "application/json", "{\"status\":\"ok\"}", 15);
	}
	if (!rq->authed) {
		msv_error e;
		msv_error_set(&e, MSV_E_UNAUTHORIZED, MSV_CLASS_PERMANENT,
		              "missing or wrong 'Authorization: Bearer TOKEN' header (an API key: "
		              "missive key add)");
		gw_refusal none = {NULL, 0, 0};
		gateway_auth_failed(d->gw, &rq->id,
		                    MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization") != NULL);
		return send_refusal(c, d, &e, &none);
	}
	if (!strcmp(url, "/metrics")) {
		if (!get)
			return send_error(c, d, 405, "method", "use GET");
		msv_buf o;
		msv_buf_init(&o, 1 << 20);
		enum MHD_Result r = metrics_render(d, &o)
		                        ? send_error(c, d, 500, "nomem", "out of memory")
		                        : send_text(c, d, 200, "text/plain; version=0.0.4", o.data, o.len);
		msv_buf_free(&o);
		return r;
	}
	int msgs = !strcmp(url, "/v1/messages"), bounces = !strcmp(url, "/v1/bounces");
	if (msgs || bounces) {
		if (!post)
			return send_error(c, d, 405, "method", "use POST");
		if (rq->too_large) {
			char why[128];
			snprintf(why, sizeof(why), "the body is larger than max-body (%zu bytes)",
			         d->cfg->http_max_body);
			return send_error(c, d, 413, "too_large", why);
		}
		if (rq->over_budget)
			return over_budget(c, d);
		return msgs ? post_message(c, d, rq) : post_bounce(c, d, rq);
	}
	if (!strncmp(url, "/v1/messages/", 13)) {
		if (!get)
			return send_error(c, d, 405, "method", "use GET");
		return get_message(c, d, url + 13);
	}
	return send_error(c, d, 404, "not_found", "no such endpoint");
}

static void completed(void *cls, struct MHD_Connection *c, void **state,
                      enum MHD_RequestTerminationCode toe)
{
	(void)toe;
	http_server *h = cls;
	request *rq = *state;
	if (rq) {
		body_drop(h, rq);
		msv_free(rq);
	}
	*state = NULL;
	/* Kept alive: the next request's line must come within idle-timeout
	 * (MHD closes a silent connection then), its headers within
	 * header-timeout of that (on_uri). */
	track_deadline(h, c, h->d->cfg->http_idle_timeout_ms + h->d->cfg->http_header_timeout_ms, 0);
}

/* "HOST:PORT" or "[V6]:PORT" into a socket address. */
static int parse_listen(const char *s, struct sockaddr_storage *ss, int *loopback)
{
	char host[128];
	const char *colon = strrchr(s, ':');
	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	char *end;
	long port = strtol(colon + 1, &end, 10);
	if (*end || port < 0 || port > 65535)
		return -1;
	memset(ss, 0, sizeof(*ss));
	if (host[0] == '[') {
		size_t hl = strlen(host);
		if (hl < 3 || host[hl - 1] != ']')
			return -1;
		host[hl - 1] = '\0';
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1)
			return -1;
		*loopback = IN6_IS_ADDR_LOOPBACK(&a->sin6_addr);
		return 0;
	}
	struct sockaddr_in *a = (struct sockaddr_in *)ss;
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, !strcmp(host, "localhost") ? "127.0.0.1" : host, &a->sin_addr) != 1)
		return -1;
	*loopback = (ntohl(a->sin_addr.s_addr) >> 24) == 127;
	return 0;
}

msv_result http_check(const app_config *c, int have_token, msv_error *err)
{
	struct sockaddr_storage ss;
	int loopback = 0;
	if (parse_listen(c->http_listen, &ss, &loopback))
		return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
		                     "%s: [http] listen = %s: expected ADDRESS:PORT (127.0.0.1:8025, "
		                     "[::1]:8025)", c->path, c->http_listen);
	if (!loopback && !have_token)
		return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
		                     "%s: [http] listen = %s is not a loopback address: set token-file "
		                     "so that clients must authenticate", c->path, c->http_listen);
	return MSV_OK;
}

/* max-connections, less what the descriptor limit cannot give (the queue,
 * the submission socket and SMTP connections need some too). */
static unsigned conn_limit(const app_config *c)
{
	struct rlimit rl;
	unsigned want = c->http_max_conns;
	if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur == RLIM_INFINITY)
		return want;
	rlim_t spare = 64 + 4 * (rlim_t)c->workers;
	rlim_t can = rl.rlim_cur > spare + 16 ? rl.rlim_cur - spare : 16;
	if (want > can) {
		dlog("HTTP: max-connections %u lowered to %llu: the open-files limit is %llu "
		     "(raise it, e.g. LimitNOFILE= in the service unit)",
		     want, (unsigned long long)can, (unsigned long long)rl.rlim_cur);
		want = (unsigned)can;
	}
	return want;
}

http_server *http_start(daemon_ctx *d)
{
	struct sockaddr_storage ss;
	int loopback = 0;
	if (parse_listen(d->cfg->http_listen, &ss, &loopback)) /* checked by http_check() */
		return NULL;
	http_server *h = msv_calloc(1, sizeof(*h));
	if (!h) {
		dlog("HTTP: out of memory");
		return NULL;
	}
	h->d = d;
	h->conns.next = h->conns.prev = &h->conns;
	pthread_mutex_init(&h->mu, NULL);
	daemon_cond_init(&h->stop_cv);
	/* MHD_USE_AUTO: epoll on Linux; select() could not watch a descriptor
	 * past FD_SETSIZE (1024), so a thousand idle connections would lock
	 * real clients out. */
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	unsigned idle_s = (unsigned)((d->cfg->http_idle_timeout_ms + 999) / 1000);
	/* Several threads, so concurrent submissions share a group commit.
	 * The logger must come first: MHD logs while reading later options. */
	h->mhd = MHD_start_daemon(
	    flags, 0, NULL, NULL, handle, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
	    MHD_OPTION_THREAD_POOL_SIZE, (unsigned)8, MHD_OPTION_NOTIFY_COMPLETED, completed, h,
	    MHD_OPTION_NOTIFY_CONNECTION, on_connection, h, MHD_OPTION_URI_LOG_CALLBACK, on_uri, h,
	    MHD_OPTION_CONNECTION_TIMEOUT, idle_s,
	    MHD_OPTION_CONNECTION_LIMIT, conn_limit(d->cfg), MHD_OPTION_PER_IP_CONNECTION_LIMIT,
	    d->cfg->http_max_conns_per_ip, MHD_OPTION_END);
	if (!h->mhd) {
		dlog("cannot listen on %s (in use, or not an address of this machine)",
		     d->cfg->http_listen);
		http_stop(h);
		return NULL;
	}
	if (pthread_create(&h->watchdog, NULL, watchdog_main, h)) {
		dlog("HTTP: cannot start the header-timeout thread");
		http_stop(h);
		return NULL;
	}
	h->watchdog_ok = 1;
	return h;
}

void http_stop(http_server *h)
{
	if (!h)
		return;
	if (h->watchdog_ok) {
		pthread_mutex_lock(&h->mu);
		h->stopping = 1;
		pthread_cond_signal(&h->stop_cv);
		pthread_mutex_unlock(&h->mu);
		pthread_join(h->watchdog, NULL);
	}
	if (h->mhd)
		MHD_stop_daemon(h->mhd);
	pthread_cond_destroy(&h->stop_cv);
	pthread_mutex_destroy(&h->mu);
	msv_free(h);
}
