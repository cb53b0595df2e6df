/* The HTTP JSON API (libmicrohttpd + cJSON):
 *   POST /v1/messages      queue a message (raw, or the fields of `missive build`)
 *   GET  /v1/messages/ID   per-recipient state and attempts
 *   GET  /healthz          liveness and queue reachability
 *   GET  /metrics          Prometheus text format
 * Every error is a JSON object {"error": {"code", "message"}} and queues
 * nothing.  See docs/http-api.md. */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "daemon.h"
#include "missive/mime.h"
#include "bounce.h"
#include "cli.h"
#include "qjson.h"
#include "submit.h"

typedef struct request {
	msv_buf body;
	int too_large;
} request;

static enum MHD_Result send_text(struct MHD_Connection *c, daemon_ctx *d, unsigned status,
                                 const char *type, const char *text, size_t len)
{
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", type);
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	metrics_http(&d->m, status);
	return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *c, daemon_ctx *d, unsigned status,
                                 cJSON *j)
{
	char *s = j ? cJSON_PrintUnformatted(j) : NULL;
	cJSON_Delete(j);
	if (!s)
		return send_text(c, d, 500, "application/json",
		                 "{\"error\":{\"code\":\"nomem\",\"message\":\"out of memory\"}}", 56);
	enum MHD_Result ret = send_text(c, d, status, "application/json", s, strlen(s));
	cJSON_free(s);
	return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *c, daemon_ctx *d, unsigned status,
                                  const char *code, const char *msg)
{
	cJSON *j = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(j, "error");
	cJSON_AddStringToObject(e, "code", code);
	cJSON_AddStringToObject(e, "message", msg);
	return send_json(c, d, status, j);
}

/* ---- POST /v1/messages ---- */

typedef struct strs {
	const char *v[256];
	size_t n;
} strs;

/* A string or an array of strings into s; 0, or -1 with why set. */
static int get_list(const cJSON *j, const char *key, strs *s, char *why, size_t whysz)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
	if (!v)
		return 0;
	if (cJSON_IsString(v)) {
		s->v[s->n++] = v->valuestring;
		return 0;
	}
	if (!cJSON_IsArray(v)) {
		snprintf(why, whysz, "\"%s\" must be a string or an array of strings", key);
		return -1;
	}
	const cJSON *e;
	cJSON_ArrayForEach(e, v) {
		if (!cJSON_IsString(e) || s->n == sizeof(s->v) / sizeof(s->v[0])) {
			snprintf(why, whysz, "\"%s\" must hold at most 256 strings", key);
			return -1;
		}
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
	strs to = {{0}, 0}, cc = {{0}, 0}, bcc = {{0}, 0};
	if (get_list(j, "to", &to, why, whysz) || get_list(j, "cc", &cc, why, whysz) ||
	    get_list(j, "bcc", &bcc, why, whysz))
		return -1;
	if (!to.n && !cc.n && !bcc.n) {
		snprintf(why, whysz, "missing field: \"to\" (or \"cc\", \"bcc\")");
		return -1;
	}
	msv_mime_msg *m = NULL;
	if (msv_mime_new(&m, NULL)) {
		snprintf(why, whysz, "out of memory");
		return -1;
	}
	msv_result r = msv_mime_add_address(m, MSV_MIME_FROM, from_name, from);
	for (size_t i = 0; !r && i < to.n; i++)
		r = msv_mime_add_address(m, MSV_MIME_TO, NULL, to.v[i]);
	for (size_t i = 0; !r && i < cc.n; i++)
		r = msv_mime_add_address(m, MSV_MIME_CC, NULL, cc.v[i]);
	for (size_t i = 0; !r && i < bcc.n; i++)
		r = msv_mime_add_address(m, MSV_MIME_BCC, NULL, bcc.v[i]);
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
	const cJSON *h = cJSON_GetObjectItemCaseSensitive(j, "headers"), *e;
	if (!r && h && !cJSON_IsObject(h)) {
		snprintf(why, whysz, "\"headers\" must be an object of name: value strings");
		goto fail_why;
	}
	cJSON_ArrayForEach(e, h) {
		if (r)
			break;
		if (!cJSON_IsString(e)) {
			snprintf(why, whysz, "header \"%.100s\" must have a string value", e->string);
			goto fail_why;
		}
		r = msv_mime_add_header(m, e->string, e->valuestring);
	}
	const cJSON *atts = cJSON_GetObjectItemCaseSensitive(j, "attachments");
	if (!r && atts && !cJSON_IsArray(atts)) {
		snprintf(why, whysz, "\"attachments\" must be an array");
		goto fail_why;
	}
	cJSON_ArrayForEach(e, atts) {
		if (r)
			break;
		int bt = 0;
		const char *fn = get_str(e, "filename", &bt), *ct = get_str(e, "content_type", &bt),
		           *b64 = get_str(e, "content_base64", &bt), *cid = get_str(e, "content_id", &bt);
		if (bt || !b64) {
			snprintf(why, whysz, "each attachment needs \"content_base64\" (and optional "
			                     "\"filename\", \"content_type\", \"content_id\" strings)");
			goto fail_why;
		}
		msv_buf data;
		msv_buf_init(&data, SIZE_MAX / 2);
		if (msv_base64_decode(&data, b64, strlen(b64))) {
			msv_buf_free(&data);
			snprintf(why, whysz, "attachment \"%.100s\": content_base64 is not valid base64",
			         fn ? fn : "(unnamed)");
			goto fail_why;
		}
		msv_mime_part_options po = MSV_MIME_PART_OPTIONS_INIT;
		po.filename = fn;
		po.content_type = ct ? ct : fn ? msv_mime_type_for(fn) : "application/octet-stream";
		po.content_id = cid;
		r = msv_mime_attach_data(m, data.data ? data.data : "", data.len, MSV_MIME_COPY, &po);
		msv_buf_free(&data);
	}
	if (!r)
		r = msv_mime_prepare(m, MSV_MIME_8BITMIME);
	if (!r)
		r = msv_mime_write_buf(m, out);
	if (r) {
		snprintf(why, whysz, "%s", msv_mime_error(m)->message);
		msv_mime_free(m);
		return -1;
	}
	size_t n;
	const char *const *all = msv_mime_recipients(m, &n);
	/* The envelope recipients (Bcc included) must outlive m: they are
	 * kept in out's spare room after the message, NUL-separated. */
	size_t msglen = out->len;
	/* More than rcpt holds would be dropped from the envelope without a
	 * word while the client hears 202: refuse instead. */
	if (n > sizeof(rcpt->v) / sizeof(rcpt->v[0])) {
		snprintf(why, whysz, "too many recipients: %zu in to, cc and bcc (at most %zu)", n,
		         sizeof(rcpt->v) / sizeof(rcpt->v[0]));
		goto fail_why;
	}
	for (size_t i = 0; i < n; i++)
		if (msv_buf_add(out, all[i], strlen(all[i]) + 1)) {
			snprintf(why, whysz, "out of memory");
			goto fail_why;
		}
	msv_mime_free(m);
	for (size_t off = msglen; off < out->len && rcpt->n < 256; off += strlen(out->data + off) + 1)
		rcpt->v[rcpt->n++] = out->data + off;
	out->len = msglen;
	return 0;
fail_why:
	msv_mime_free(m);
	return -1;
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

static enum MHD_Result post_message(struct MHD_Connection *c, daemon_ctx *d, request *rq)
{
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
	if (rc && res.failed == APP_SUBMIT_PREPARE)
		return send_error(c, d, rc == EX_CONFIG ? 500 : 400,
		                  rc == EX_CONFIG ? "config" : msv_result_name(err.code), err.message);
	if (rc)
		return res.failed == APP_SUBMIT_SUPPRESSED ? send_error(c, d, 403, "suppressed", err.message)
		                                           : send_error(c, d, 503, "queue", err.message);
	metrics_submitted(&d->m, 1);
	daemon_wake(d);
	dlog("%s: queued through the HTTP API, %zu recipient%s", res.id, res.nrcpt,
	     res.nrcpt == 1 ? "" : "s");
	cJSON *reply = cJSON_CreateObject();
	cJSON_AddStringToObject(reply, "id", res.id);
	cJSON_AddStringToObject(reply, "message_id", res.message_id);
	cJSON_AddNumberToObject(reply, "recipients", (double)res.nrcpt);
	msv_free(res.message_id);
	return send_json(c, d, 202, reply);
}

/* ---- GET /v1/messages/ID ---- */

static enum MHD_Result get_message(struct MHD_Connection *c, daemon_ctx *d, const char *id)
{
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
	if (ct && !strncmp(ct, "application/json", 16)) {
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
	int rc = app_apply_bounce(d->cfg, d->q, msg, len, &res, &err);
	cJSON_Delete(j);
	if (rc)
		return send_error(c, d, rc == EX_DATAERR ? 400 : 503,
		                  rc == EX_DATAERR ? "bad_message" : "queue", err.message);
	return send_json(c, d, 200, res);
}

/* ---- dispatch ---- */

static int authorized(struct MHD_Connection *c, daemon_ctx *d)
{
	if (!d->http_token)
		return 1;
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
	size_t tl = strlen(d->http_token);
	if (!h || strncmp(h, "Bearer ", 7) || strlen(h + 7) != tl)
		return 0;
	return CRYPTO_memcmp(h + 7, d->http_token, tl) == 0;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **state)
{
	(void)version;
	daemon_ctx *d = cls;
	request *rq = *state;
	if (!rq) {
		if (!(rq = msv_calloc(1, sizeof(*rq))))
			return MHD_NO;
		msv_buf_init(&rq->body, d->cfg->http_max_body);
		*state = rq;
		const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
		/* Without the token nothing of the body is kept (it will get 401):
		 * no client buffers max-body bytes here before authenticating. */
		if ((cl && strtoull(cl, NULL, 10) > d->cfg->http_max_body) || !authorized(c, d))
			rq->too_large = 1;
		return MHD_YES;
	}
	if (*upload_size) {
		if (!rq->too_large && msv_buf_add(&rq->body, upload, *upload_size))
			rq->too_large = 1;
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
		if (msv_queue_stats_get(d->q, msv_wall_ms(), &qs, &err))
			return send_error(c, d, 503, "queue", err.message);
		return send_text(c, d, 200, "application/json", "{\"status\":\"ok\"}", 15);
	}
	if (!authorized(c, d))
		return send_error(c, d, 401, "unauthorized",
		                  "missing or wrong 'Authorization: Bearer TOKEN' header");
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
	if (!strcmp(url, "/v1/messages")) {
		if (!post)
			return send_error(c, d, 405, "method", "use POST");
		if (rq->too_large) {
			char why[128];
			snprintf(why, sizeof(why), "the body is larger than max-body (%zu bytes)",
			         d->cfg->http_max_body);
			return send_error(c, d, 413, "too_large", why);
		}
		return post_message(c, d, rq);
	}
	if (!strcmp(url, "/v1/bounces")) {
		if (!post)
			return send_error(c, d, 405, "method", "use POST");
		if (rq->too_large)
			return send_error(c, d, 413, "too_large", "the body is larger than max-body");
		return post_bounce(c, d, rq);
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
	(void)cls;
	(void)c;
	(void)toe;
	request *rq = *state;
	if (rq) {
		msv_buf_free(&rq->body);
		msv_free(rq);
	}
	*state = NULL;
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

int http_check(const app_config *c, int have_token)
{
	struct sockaddr_storage ss;
	int loopback = 0;
	if (parse_listen(c->http_listen, &ss, &loopback)) {
		cli_err("%s: [http] listen = %s: expected ADDRESS:PORT (127.0.0.1:8025, [::1]:8025)",
		        c->path, c->http_listen);
		return EX_CONFIG;
	}
	if (!loopback && !have_token) {
		cli_err("%s: [http] listen = %s is not a loopback address: set token-file so that "
		        "clients must authenticate", c->path, c->http_listen);
		return EX_CONFIG;
	}
	return 0;
}

struct MHD_Daemon *http_start(daemon_ctx *d)
{
	struct sockaddr_storage ss;
	int loopback = 0;
	if (parse_listen(d->cfg->http_listen, &ss, &loopback)) /* checked by http_check() */
		return NULL;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	/* Several threads, so concurrent submissions share a group commit. */
	struct MHD_Daemon *h = MHD_start_daemon(
	    flags, 0, NULL, NULL, handle, d, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
	    MHD_OPTION_THREAD_POOL_SIZE, (unsigned)8, MHD_OPTION_NOTIFY_COMPLETED, completed, d,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60, MHD_OPTION_END);
	if (!h)
		dlog("cannot listen on %s (in use, or not an address of this machine)",
		     d->cfg->http_listen);
	return h;
}

void http_stop(struct MHD_Daemon *h)
{
	if (h)
		MHD_stop_daemon(h);
}
