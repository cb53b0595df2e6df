/* `missive queue import`'s reader (queue_import.h). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "queue_import.h"

/* A body is at most this large once decoded (the queue's own limit is
 * checked again by msv_queue_import). */
#define BODY_MAX ((size_t)512 * 1024 * 1024)

/* The strings of the records stay in the parsed trees (kept until the
 * import is written): the rows only point into them. */
struct app_import {
	cJSON **trees;
	size_t ntrees, cap_trees;
	msv_queue_dump *msgs;
	size_t nmsgs, cap_msgs;
	msv_suppression *sup;
	size_t nsup, cap_sup;
	msv_queue_key *keys;
	size_t nkeys, cap_keys;
	msv_queue_reputation *reps;
	size_t nreps, cap_reps;
	msv_queue_route_state *routes;
	size_t nroutes, cap_routes;
};

/* Field readers: a field of the wrong type, or a number that is not a
 * whole number within range, sets *bad to its name. */
typedef struct reader {
	const char *bad;
} reader;

static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	size_t n = *cap ? *cap * 2 : 16;
	void *p = msv_realloc(*arr, n * elem);
	if (!p)
		return -1;
	memset((char *)p + *cap * elem, 0, (n - *cap) * elem);
	*arr = p;
	*cap = n;
	return 0;
}

static char *str(reader *rd, const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	if (v && !cJSON_IsString(v) && !cJSON_IsNull(v) && !rd->bad)
		rd->bad = k;
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static char *need_str(reader *rd, const cJSON *o, const char *k)
{
	char *s = str(rd, o, k);
	if (!s && !rd->bad)
		rd->bad = k;
	return s;
}

/* A whole number from lo to hi; absent: 0. */
static int64_t whole(reader *rd, const cJSON *o, const char *k, double lo, double hi)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	if (!v)
		return 0;
	double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
	if (!(d >= lo && d <= hi) || d != floor(d)) {
		if (!rd->bad)
			rd->bad = k;
		return 0;
	}
	return (int64_t)d;
}

#define MS(o, k) whole(rd, o, k, -9.0e15, 9.0e15)
#define COUNT(o, k) whole(rd, o, k, 0, 4294967295.0)

static double real(reader *rd, const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	if (!v)
		return 0;
	if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) {
		if (!rd->bad)
			rd->bad = k;
		return 0;
	}
	return v->valuedouble;
}

/* The array under k (absent: none); not an array: bad. */
static const cJSON *array(reader *rd, const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	if (v && !cJSON_IsArray(v) && !rd->bad)
		rd->bad = k;
	return cJSON_IsArray(v) ? v : NULL;
}

static void parse_rcpt(reader *rd, const cJSON *x, msv_queue_rcpt_info *ri)
{
	ri->id = MS(x, "id");
	ri->address = need_str(rd, x, "address");
	if (msv_queue_rcpt_state_parse(str(rd, x, "state"), &ri->state) && !rd->bad)
		rd->bad = "state";
	ri->attempts = (unsigned)COUNT(x, "attempts");
	ri->next_attempt_ms = MS(x, "next_attempt_ms");
	ri->updated_ms = MS(x, "updated_ms");
	ri->last_code = (int)whole(rd, x, "last_code", 0, 999);
	ri->last_enhanced = str(rd, x, "last_enhanced");
	ri->last_text = str(rd, x, "last_text");
	ri->lease_owner = str(rd, x, "lease_owner");
	ri->lease_expiry_ms = MS(x, "lease_expiry_ms");
	ri->lease_epoch = (uint64_t)MS(x, "lease_epoch");
}

static void parse_attempt(reader *rd, const cJSON *x, msv_queue_attempt *a)
{
	a->rcpt_id = MS(x, "rcpt");
	a->at_ms = MS(x, "at_ms");
	a->latency_ms = MS(x, "latency_ms");
	a->server = str(rd, x, "server");
	a->reply_code = (int)whole(rd, x, "reply_code", 0, 999);
	a->enhanced = str(rd, x, "enhanced");
	a->text = str(rd, x, "text");
}

static msv_result parse_message(reader *rd, const cJSON *o, msv_queue_dump *d)
{
	msv_queue_info *in = &d->info;
	const char *qid = need_str(rd, o, "qid"), *body = need_str(rd, o, "body");
	if (qid && strlen(qid) != MSV_QID_LEN && !rd->bad)
		rd->bad = "qid";
	if (rd->bad)
		return MSV_E_BAD_MESSAGE;
	memcpy(in->qid, qid, MSV_QID_LEN + 1);
	in->created_ms = MS(o, "created_ms");
	in->sender = str(rd, o, "sender");
	in->route = str(rd, o, "route");
	in->message_id = str(rd, o, "message_id");
	in->envid = str(rd, o, "envid");
	d->dsn_notify = str(rd, o, "dsn_notify");
	d->dsn_ret = str(rd, o, "dsn_ret");
	d->body_8bit = (int)whole(rd, o, "body_8bit", 0, 1);
	d->smtputf8 = (int)whole(rd, o, "smtputf8", 0, 1);
	d->submitter = str(rd, o, "submitter");
	msv_buf b;
	msv_buf_init(&b, BODY_MAX);
	if (msv_base64_decode(&b, body, strlen(body))) {
		msv_buf_free(&b);
		if (!rd->bad)
			rd->bad = "body";
		return MSV_E_BAD_MESSAGE;
	}
	d->body = b.data; /* NULL for an empty body */
	d->len = b.len;
	in->size = b.len;
	const cJSON *rs = array(rd, o, "recipients"), *as = array(rd, o, "attempts"), *x;
	in->rcpt = msv_calloc((size_t)cJSON_GetArraySize(rs) + 1, sizeof(*in->rcpt));
	in->attempts = msv_calloc((size_t)cJSON_GetArraySize(as) + 1, sizeof(*in->attempts));
	if (!in->rcpt || !in->attempts)
		return MSV_E_NOMEM;
	cJSON_ArrayForEach(x, rs)
		parse_rcpt(rd, x, &in->rcpt[in->nrcpt++]);
	cJSON_ArrayForEach(x, as)
		parse_attempt(rd, x, &in->attempts[in->nattempts++]);
	if (!in->nrcpt && !rd->bad)
		rd->bad = "recipients";
	return rd->bad ? MSV_E_BAD_MESSAGE : MSV_OK;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int hex32(const char *h, unsigned char out[32])
{
	if (!h || strlen(h) != 64)
		return -1;
	for (int i = 0; i < 32; i++) {
		int hi = hexval(h[2 * i]), lo = hexval(h[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

static void parse_suppression(reader *rd, const cJSON *o, msv_suppression *s)
{
	s->address = need_str(rd, o, "address");
	s->reason = str(rd, o, "reason");
	s->source = str(rd, o, "source");
	s->created_ms = MS(o, "created_ms");
}

static void parse_key(reader *rd, const cJSON *o, msv_queue_key *k)
{
	k->name = need_str(rd, o, "name");
	k->sender_domains = str(rd, o, "sender_domains");
	k->rate = real(rd, o, "rate");
	k->burst = (unsigned)whole(rd, o, "burst", 0, 1000000);
	k->created_ms = MS(o, "created_ms");
	k->rotated_ms = MS(o, "rotated_ms");
	if (hex32(str(rd, o, "sha256"), k->hash) && !rd->bad)
		rd->bad = "sha256";
}

static void parse_reputation(reader *rd, const cJSON *o, msv_queue_reputation *v)
{
	v->identity = need_str(rd, o, "identity");
	v->score = real(rd, o, "score");
	v->stamp_ms = MS(o, "stamp_ms");
	v->rejections = (unsigned)COUNT(o, "rejections");
	v->open_until_ms = MS(o, "open_until_ms");
	v->changed_ms = MS(o, "changed_ms");
	v->why = str(rd, o, "why");
}

static void parse_route_state(reader *rd, const cJSON *o, msv_queue_route_state *r)
{
	r->route = need_str(rd, o, "route");
	r->circuit = need_str(rd, o, "circuit");
	r->open_until_ms = MS(o, "open_until_ms");
	r->trips = (uint64_t)MS(o, "trips");
	r->changed_ms = MS(o, "changed_ms");
}

/* Room for one more row of a kind: its slot, or NULL. */
#define SLOT(im, arr, n, cap) \
	(grow((void **)&(im)->arr, &(im)->cap, (im)->n + 1, sizeof(*(im)->arr)) \
	     ? NULL : &(im)->arr[(im)->n++])

static msv_result parse_record(app_import *im, reader *rd, const cJSON *o, const char *type)
{
	if (!strcmp(type, "meta"))
		return MSV_OK;
	if (!strcmp(type, "message")) {
		msv_queue_dump *d = SLOT(im, msgs, nmsgs, cap_msgs);
		return d ? parse_message(rd, o, d) : MSV_E_NOMEM;
	}
	if (!strcmp(type, "suppression")) {
		msv_suppression *s = SLOT(im, sup, nsup, cap_sup);
		if (s)
			parse_suppression(rd, o, s);
		return s ? MSV_OK : MSV_E_NOMEM;
	}
	if (!strcmp(type, "key")) {
		msv_queue_key *k = SLOT(im, keys, nkeys, cap_keys);
		if (k)
			parse_key(rd, o, k);
		return k ? MSV_OK : MSV_E_NOMEM;
	}
	if (!strcmp(type, "reputation")) {
		msv_queue_reputation *v = SLOT(im, reps, nreps, cap_reps);
		if (v)
			parse_reputation(rd, o, v);
		return v ? MSV_OK : MSV_E_NOMEM;
	}
	if (!strcmp(type, "route_state")) {
		msv_queue_route_state *r = SLOT(im, routes, nroutes, cap_routes);
		if (r)
			parse_route_state(rd, o, r);
		return r ? MSV_OK : MSV_E_NOMEM;
	}
	rd->bad = "type";
	return MSV_E_BAD_MESSAGE;
}

msv_result app_import_new(app_import **out, msv_error *err)
{
	if (!(*out = msv_calloc(1, sizeof(**out))))
		return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
	return MSV_OK;
}

msv_result app_import_line(app_import *im, const char *line, size_t len, msv_error *err)
{
	if (!len)
		return MSV_OK;
	cJSON *o = cJSON_ParseWithLength(line, len);
	if (!o || !cJSON_IsObject(o)) {
		cJSON_Delete(o);
		return msv_error_set(err, MSV_E_BAD_MESSAGE, MSV_CLASS_USAGE, "not a JSON object");
	}
	if (grow((void **)&im->trees, &im->cap_trees, im->ntrees + 1, sizeof(*im->trees))) {
		cJSON_Delete(o);
		return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
	}
	im->trees[im->ntrees++] = o;
	reader rd = {NULL};
	const char *type = need_str(&rd, o, "type");
	msv_result rc = type ? parse_record(im, &rd, o, type) : MSV_E_BAD_MESSAGE;
	if (rc == MSV_E_NOMEM)
		return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
	if (rc || rd.bad)
		return msv_error_set(err, MSV_E_BAD_MESSAGE, MSV_CLASS_USAGE,
		                     "not a queue export record: field \"%s\" missing or malformed",
		                     rd.bad ? rd.bad : "type");
	return MSV_OK;
}

void app_import_set(const app_import *im, msv_queue_import_set *set)
{
	*set = (msv_queue_import_set){im->msgs,  im->nmsgs, im->sup,    im->nsup,
	                              im->keys,  im->nkeys, im->reps,   im->nreps,
	                              im->routes, im->nroutes};
}

void app_import_free(app_import *im)
{
	if (!im)
		return;
	for (size_t i = 0; i < im->nmsgs; i++) {
		msv_free(im->msgs[i].info.rcpt);
		msv_free(im->msgs[i].info.attempts);
		/* msv_base64_decode's buffer (msv_buf: the library's allocator). */
		msv_buf b = {im->msgs[i].body, 0, 0, 0};
		msv_buf_free(&b);
	}
	msv_free(im->msgs);
	msv_free(im->sup);
	msv_free(im->keys);
	msv_free(im->reps);
	msv_free(im->routes);
	for (size_t i = 0; i < im->ntrees; i++)
		cJSON_Delete(im->trees[i]);
	msv_free(im->trees);
	msv_free(im);
}
