/* libFuzzer target: the framing of missived's submission socket
 * (src/app/wire.h), the input tried both as a request and as a reply.
 *
 * Cuts of the input must agree with the whole, as missived decodes a
 * growing buffer after every read: a complete request has no cut that is
 * complete or malformed, a malformed cut stays malformed, and a request
 * cut that asks for more leaves its bytes as they were.  A reply is
 * complete at its first end field, so a complete cut decodes as the whole.
 * What decodes is encoded again and must decode to the same fields, and
 * encoding that gives the same octets (one encoding per request). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "missive/core.h"
#include "sendmail_wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CUTS 32
#define ENC_MAX (APP_MESSAGE_MAX + (1u << 20))

/* An exact-size heap copy: ASan catches any read past n. */
static char *copy_of(const void *p, size_t n)
{
	char *c = msv_malloc(n ? n : 1);
	if (!c)
		abort();
	if (n)
		memcpy(c, p, n);
	return c;
}

/* The k-th of at most CUTS + 1 strict prefix lengths, spread over the
 * input and always including the longest; SIZE_MAX when there are no more. */
static size_t cut(size_t size, size_t k)
{
	if (size <= CUTS + 1)
		return k < size ? k : SIZE_MAX;
	if (k < CUTS)
		return size / CUTS * k;
	return k == CUTS ? size - 1 : SIZE_MAX;
}

static int same_str(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

static int inside(const char *s, const char *buf, size_t len)
{
	return !s || (s >= buf && s + strlen(s) < buf + len);
}

static void check_req(const app_wire_req *r, const char *buf, size_t len)
{
	const app_submit_opts *o = &r->o;
	if (o->rcpt != r->rcpt || (o->nrcpt && !o->rcpt) || !r->msg || r->msglen > APP_MESSAGE_MAX)
		abort();
	if (r->msg < buf || r->msg + r->msglen > buf + len)
		abort();
	if (!inside(o->sender, buf, len) || !inside(o->from_name, buf, len) ||
	    !inside(o->dsn_notify, buf, len) || !inside(o->dsn_ret, buf, len) ||
	    !inside(o->envid, buf, len))
		abort();
	for (size_t i = 0; i < o->nrcpt; i++)
		if (!inside(o->rcpt[i], buf, len))
			abort();
	if ((o->extract != 0 && o->extract != 1) ||
	    (o->allow_suppressed != 0 && o->allow_suppressed != 1))
		abort();
}

static void check_same_req(const app_wire_req *a, const app_wire_req *b)
{
	const app_submit_opts *x = &a->o, *y = &b->o;
	if (!same_str(x->sender, y->sender) || x->nrcpt != y->nrcpt || x->extract != y->extract ||
	    !same_str(x->from_name, y->from_name) || !same_str(x->dsn_notify, y->dsn_notify) ||
	    !same_str(x->dsn_ret, y->dsn_ret) || !same_str(x->envid, y->envid) ||
	    x->allow_suppressed != y->allow_suppressed)
		abort();
	for (size_t i = 0; i < x->nrcpt; i++)
		if (strcmp(x->rcpt[i], y->rcpt[i]))
			abort();
	if (a->msglen != b->msglen || (a->msglen && memcmp(a->msg, b->msg, a->msglen)))
		abort();
}

/* Encodes r, decodes that, and checks both agree; then encodes again. */
static void request_round_trip(const app_wire_req *r)
{
	msv_buf e1, e2;
	msv_buf_init(&e1, ENC_MAX);
	msv_buf_init(&e2, ENC_MAX);
	if (app_wire_request(&e1, &r->o, r->msg, r->msglen))
		abort();
	char *buf = copy_of(e1.data, e1.len);
	app_wire_req back;
	char why[256];
	if (app_wire_decode(buf, e1.len, &back, why, sizeof(why)) != 1)
		abort();
	check_req(&back, buf, e1.len);
	check_same_req(r, &back);
	if (app_wire_request(&e2, &back.o, back.msg, back.msglen))
		abort();
	if (e1.len != e2.len || memcmp(e1.data, e2.data, e1.len))
		abort();
	app_wire_req_free(&back);
	msv_free(buf);
	msv_buf_free(&e1);
	msv_buf_free(&e2);
}

static void fuzz_request(const uint8_t *data, size_t size)
{
	char why[256] = "";
	char *whole = copy_of(data, size);
	app_wire_req r;
	int got = app_wire_decode(whole, size, &r, why, sizeof(why));
	if (got < -1 || got > 1 || (got < 0 && !why[0]))
		abort();
	for (size_t k = 0, n; (n = cut(size, k)) != SIZE_MAX; k++) {
		char *part = copy_of(data, n);
		app_wire_req pr;
		int pgot = app_wire_decode(part, n, &pr, why, sizeof(why));
		/* a complete request is preceded only by "need more"; a cut
		 * that is complete leaves octets after the end in the whole */
		if ((got == 1 && pgot != 0) || (pgot != 0 && got != -1))
			abort();
		if (pgot == 0 && n && memcmp(part, data, n))
			abort();
		if (pgot == 1)
			app_wire_req_free(&pr);
		msv_free(part);
	}
	if (got == 1) {
		check_req(&r, whole, size);
		request_round_trip(&r);
		app_wire_req_free(&r);
	}
	msv_free(whole);
}

typedef struct reply {
	int rc;
	app_submitted res;
	char error[256];
} reply;

static int decode_reply(const void *p, size_t n, reply *out)
{
	char why[256] = "";
	char *buf = copy_of(p, n);
	int got = app_wire_reply_decode(buf, n, &out->rc, &out->res, out->error, sizeof(out->error),
	                                why, sizeof(why));
	msv_free(buf);
	if (got < -1 || got > 1 || (got < 0 && !why[0]))
		abort();
	if (got == 1) {
		if (out->rc < 0 || out->rc > 255 || (!out->rc && !out->res.id[0]) ||
		    out->res.message_id)
			abort();
		if (!memchr(out->res.id, '\0', sizeof(out->res.id)) ||
		    !memchr(out->error, '\0', sizeof(out->error)))
			abort();
		for (const char *e = out->error; *e; e++)
			if ((unsigned char)*e < 0x20 || *e == 0x7f)
				abort(); /* control characters replaced */
	}
	return got;
}

/* What a reply says: the id and count when queued, else the error. */
static int same_reply(const reply *a, const reply *b)
{
	if (a->rc != b->rc)
		return 0;
	if (!a->rc)
		return !strcmp(a->res.id, b->res.id) && a->res.nrcpt == b->res.nrcpt;
	return !strcmp(a->error, b->error);
}

static void fuzz_reply(const uint8_t *data, size_t size)
{
	reply whole, part, back, again;
	int got = decode_reply(data, size, &whole);
	for (size_t k = 0, n; (n = cut(size, k)) != SIZE_MAX; k++) {
		int pgot = decode_reply(data, n, &part);
		if (pgot == -1 && got != -1)
			abort();
		/* complete at the same end field: everything alike */
		if (pgot == 1 && (got != 1 || part.rc != whole.rc || part.res.nrcpt != whole.res.nrcpt ||
		                  strcmp(part.res.id, whole.res.id) || strcmp(part.error, whole.error)))
			abort();
	}
	if (got != 1)
		return;
	msv_buf e1, e2;
	msv_buf_init(&e1, 1 << 16);
	msv_buf_init(&e2, 1 << 16);
	if (app_wire_reply(&e1, whole.rc, &whole.res, whole.rc ? whole.error : NULL))
		abort();
	if (decode_reply(e1.data, e1.len, &back) != 1 || !same_reply(&whole, &back))
		abort();
	if (app_wire_reply(&e2, back.rc, &back.res, back.rc ? back.error : NULL))
		abort();
	if (e1.len != e2.len || memcmp(e1.data, e2.data, e1.len))
		abort();
	if (decode_reply(e2.data, e2.len, &again) != 1 || !same_reply(&back, &again))
		abort();
	msv_buf_free(&e1);
	msv_buf_free(&e2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_request(data, size);
	fuzz_reply(data, size);
	return 0;
}
