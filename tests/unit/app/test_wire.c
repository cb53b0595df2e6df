/* The submission socket's framing (src/app/wire.h): requests and replies
 * round trip, every cut of a valid stream asks for more without harming
 * the bytes already read, and each malformed form is refused by name. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "sendmail_wire.h"

/* A message that would break a framing by delimiters: a NUL, CR LF, and
 * lines that look like the end field. */
static const char MSG[] = "Subject: hi\r\n\r\nNUL:\0:\r\nend 0\n\nend 0\n\n\r\n";
#define MSG_LEN (sizeof(MSG) - 1)

static const char *const RCPT[] = {"a@example.org", "b@example.net", "\"c d\"@example.com"};

static app_submit_opts full_opts(void)
{
	app_submit_opts o = {0};
	o.sender = "bounce@example.org";
	o.rcpt = RCPT;
	o.nrcpt = sizeof(RCPT) / sizeof(RCPT[0]);
	o.extract = 1;
	o.from_name = "Jane \"JD\" Doe";
	o.allow_suppressed = 1;
	o.dsn_notify = "SUCCESS,FAILURE";
	o.dsn_ret = "HDRS";
	o.envid = "env-42";
	return o;
}

static void encode(msv_buf *b, const app_submit_opts *o, const char *msg, size_t len)
{
	msv_buf_init(b, APP_MESSAGE_MAX + (1u << 20));
	assert_int_equal(app_wire_request(b, o, msg, len), 0);
}

/* An exact-size heap copy: ASan catches any read past len. */
static char *copy_of(const char *p, size_t len)
{
	char *c = msv_malloc(len ? len : 1);
	assert_non_null(c);
	if (len)
		memcpy(c, p, len);
	return c;
}

static void assert_str_or_null(const char *a, const char *b)
{
	if (!a || !b)
		assert_ptr_equal(a, b);
	else
		assert_string_equal(a, b);
}

static void assert_same_opts(const app_submit_opts *a, const app_submit_opts *b)
{
	assert_str_or_null(a->sender, b->sender);
	assert_int_equal(a->nrcpt, b->nrcpt);
	for (size_t i = 0; i < a->nrcpt; i++)
		assert_string_equal(a->rcpt[i], b->rcpt[i]);
	assert_int_equal(!!a->extract, !!b->extract);
	assert_str_or_null(a->from_name, b->from_name);
	assert_int_equal(!!a->allow_suppressed, !!b->allow_suppressed);
	assert_str_or_null(a->dsn_notify, b->dsn_notify);
	assert_str_or_null(a->dsn_ret, b->dsn_ret);
	assert_str_or_null(a->envid, b->envid);
}

/* b decodes completely, into the options o. */
static void decodes_to(const msv_buf *b, const app_submit_opts *o)
{
	char *buf = copy_of(b->data, b->len);
	app_wire_req r;
	char why[256] = "";
	assert_int_equal(app_wire_decode(buf, b->len, &r, why, sizeof(why)), 1);
	assert_same_opts(&r.o, o);
	app_wire_req_free(&r);
	msv_free(buf);
}

static void round_trip_full(void **state)
{
	(void)state;
	app_submit_opts o = full_opts();
	msv_buf b;
	encode(&b, &o, MSG, MSG_LEN);
	static const char head[] = "missive-submit 1\n1\nsender 18\nbounce@example.org\nrcpt 13\n";
	assert_memory_equal(b.data, head, sizeof(head) - 1);
	assert_memory_equal(b.data + b.len - 8, "\nend 0\n\n", 8);

	char *buf = copy_of(b.data, b.len);
	app_wire_req r;
	char why[256] = "";
	assert_int_equal(app_wire_decode(buf, b.len, &r, why, sizeof(why)), 1);
	assert_same_opts(&r.o, &o);
	assert_ptr_equal(r.o.rcpt, r.rcpt);
	assert_int_equal(r.msglen, MSG_LEN);
	assert_memory_equal(r.msg, MSG, MSG_LEN);
	/* the values point into buf, not into copies */
	assert_true(r.o.sender >= buf && r.o.sender < buf + b.len);
	assert_true(r.msg >= buf && r.msg + r.msglen <= buf + b.len);

	/* decoded, re-encoded: the same octets */
	msv_buf again;
	encode(&again, &r.o, r.msg, r.msglen);
	assert_int_equal(again.len, b.len);
	assert_memory_equal(again.data, b.data, b.len);
	msv_buf_free(&again);

	app_wire_req_free(&r);
	assert_null(r.rcpt);
	assert_int_equal(r.o.nrcpt, 0);
	msv_free(buf);
	msv_buf_free(&b);
}

static void round_trip_minimal(void **state)
{
	(void)state;
	app_submit_opts o = {0};
	msv_buf b;
	encode(&b, &o, NULL, 0);
	static const char want[] = "missive-submit 1\n1\nmessage 0\n\nend 0\n\n";
	assert_int_equal(b.len, sizeof(want) - 1);
	assert_memory_equal(b.data, want, b.len);

	char *buf = copy_of(b.data, b.len);
	app_wire_req r;
	char why[256] = "";
	assert_int_equal(app_wire_decode(buf, b.len, &r, why, sizeof(why)), 1);
	assert_same_opts(&r.o, &o);
	assert_null(r.o.rcpt);
	assert_non_null(r.msg); /* an empty message is still a message */
	assert_int_equal(r.msglen, 0);
	app_wire_req_free(&r);
	msv_free(buf);
	msv_buf_free(&b);
}

/* Empty strings are values, not absent fields. */
static void round_trip_empty_strings(void **state)
{
	(void)state;
	static const char *const one[] = {""};
	app_submit_opts o = {0};
	o.sender = "";
	o.rcpt = one;
	o.nrcpt = 1;
	o.envid = "";
	msv_buf b;
	encode(&b, &o, "x", 1);
	decodes_to(&b, &o);
	msv_buf_free(&b);
}

/* Many recipients: the decoder's array grows past its first size. */
static void many_recipients(void **state)
{
	(void)state;
	enum { N = 100 };
	char names[N][32];
	const char *rcpt[N];
	for (int i = 0; i < N; i++) {
		snprintf(names[i], sizeof(names[i]), "user%d@example.org", i);
		rcpt[i] = names[i];
	}
	app_submit_opts o = {0};
	o.rcpt = rcpt;
	o.nrcpt = N;
	msv_buf b;
	encode(&b, &o, MSG, MSG_LEN);
	decodes_to(&b, &o);
	msv_buf_free(&b);
}

/* A cut request is "need more" and the bytes stay as read, since the
 * reader appends to them and asks again. */
static void every_prefix_needs_more(void **state)
{
	(void)state;
	app_submit_opts o = full_opts();
	msv_buf b;
	encode(&b, &o, MSG, MSG_LEN);
	for (size_t n = 0; n < b.len; n++) {
		char *buf = copy_of(b.data, n);
		app_wire_req r;
		char why[256] = "";
		int got = app_wire_decode(buf, n, &r, why, sizeof(why));
		if (got != 0)
			fail_msg("prefix of %zu of %zu octets: %d (%s)", n, b.len, got, why);
		assert_memory_equal(buf, b.data, n);
		assert_null(r.rcpt);
		msv_free(buf);
	}
	msv_buf_free(&b);
}

/* As missived reads: one growing buffer, decoded after every read. */
static void fed_in_chunks(void **state)
{
	(void)state;
	app_submit_opts o = full_opts();
	msv_buf b;
	encode(&b, &o, MSG, MSG_LEN);
	static const size_t steps[] = {1, 2, 7, 13, 64, 4096};
	for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
		char *buf = msv_malloc(b.len);
		assert_non_null(buf);
		size_t have = 0;
		int got = 0;
		app_wire_req r;
		char why[256] = "";
		while (!got) {
			assert_true(have < b.len);
			size_t n = b.len - have < steps[s] ? b.len - have : steps[s];
			memcpy(buf + have, b.data + have, n);
			have += n;
			got = app_wire_decode(buf, have, &r, why, sizeof(why));
		}
		if (got != 1)
			fail_msg("chunks of %zu: %d at %zu (%s)", steps[s], got, have, why);
		assert_int_equal(have, b.len);
		assert_same_opts(&r.o, &o);
		assert_int_equal(r.msglen, MSG_LEN);
		assert_memory_equal(r.msg, MSG, MSG_LEN);
		app_wire_req_free(&r);
		msv_free(buf);
	}
	msv_buf_free(&b);
}

/* The fields may come in any order between the version and the message. */
static void any_order(void **state)
{
	(void)state;
	static const char in[] = "missive-submit 1\n1\nenvid 1\ne\nrcpt 1\nx\n"
	                         "allow-suppressed 1\n1\nsender 1\ns\nrcpt 1\ny\n"
	                         "message 2\nhi\nend 0\n\n";
	char *buf = copy_of(in, sizeof(in) - 1);
	app_wire_req r;
	char why[256] = "";
	assert_int_equal(app_wire_decode(buf, sizeof(in) - 1, &r, why, sizeof(why)), 1);
	assert_string_equal(r.o.sender, "s");
	assert_string_equal(r.o.envid, "e");
	assert_int_equal(r.o.nrcpt, 2);
	assert_string_equal(r.o.rcpt[0], "x");
	assert_string_equal(r.o.rcpt[1], "y");
	assert_true(r.o.allow_suppressed);
	assert_false(r.o.extract);
	app_wire_req_free(&r);
	msv_free(buf);
}

#define V "missive-submit 1\n1\n"
#define M "message 2\nhi\n"
#define E "end 0\n\n"
#define CASE(in, why) {in, sizeof(in) - 1, why}

static const struct bad_req {
	const char *in;
	size_t len;
	const char *why; /* a part of the reason given */
} BAD_REQ[] = {
    CASE("missive-submit 1\n2\n" M E, "not a missive-submit version 1"),
    CASE("missive-submit 2\n10\n" M E, "not a missive-submit version 1"),
    CASE("missive-submit 0\n\n" M E, "not a missive-submit version 1"),
    CASE("sender 1\ns\n" M E, "not a missive-submit version 1"),
    CASE(M E, "not a missive-submit version 1"),
    CASE(E, "not a missive-submit version 1"),
    CASE(V "bogus 1\nx\n" M E, "field bogus unknown"),
    CASE(V "missive-submit 1\n1\n" M E, "field missive-submit unknown"),
    CASE(V "sender 3\na\0b\n" M E, "field sender holds a NUL"),
    CASE(V "rcpt 2\na\0\n" M E, "field rcpt holds a NUL"),
    CASE(V "envid 1\n\0\n" M E, "field envid holds a NUL"),
    CASE(V "sender 1\na\nsender 1\nb\n" M E, "field sender given twice"),
    CASE(V "ret 4\nFULL\nret 4\nHDRS\n" M E, "field ret given twice"),
    CASE(V M "rcpt 1\nx\n" E, "field rcpt after the message"),
    CASE(V M M E, "field message after the message"),
    CASE(V "rcpt 1\nx\n" E, "no message field"),
    CASE(V E, "no message field"),
    CASE(V M E "x", "octets after the end field"),
    CASE(V M E E, "octets after the end field"),
    CASE(V M "end 3\nabc\n", "field end is not empty"),
    CASE(V "extract 1\n0\n" M E, "field extract expected 1"),
    CASE(V "allow-suppressed 3\nyes\n" M E, "field allow-suppressed expected 1"),
    CASE(V "sender x1\n", "field sender: expected a decimal length"),
    CASE(V "sender \n", "field sender: expected a decimal length"),
    CASE(V "sender -1\n", "field sender: expected a decimal length"),
    CASE(V "sender 1 \n", "field sender: expected a decimal length"),
    CASE(V "sender 1\r\n", "field sender: expected a decimal length"),
    CASE(V "message 1234567890\n", "field message: length too long"),
    CASE(V "abcdefghijklmnopqrstuvwxyzabcdef 1\nx\n" M E, "expected 1 to 31 letters"),
    CASE(V " 1\nx\n" M E, "expected 1 to 31 letters"),
    CASE(V "Sender 1\ns\n" M E, "unexpected octet 0x53"),
    CASE(V "senDer 1\ns\n" M E, "unexpected octet 0x44"),
    CASE(V "from_name 1\ns\n" M E, "unexpected octet 0x5f"),
    CASE(V "sender\n", "unexpected octet 0x0a"),
    CASE(V "message 104857601\n", "field message: 104857601 octets, more than 104857600"),
    CASE(V "sender 3\nabcX" M E, "field sender: its 3 octets are not followed by a line end"),
    CASE(V "message 2\nhi\r\n" E, "field message: its 2 octets are not followed by a line end"),
    CASE(V M "end 0\nX", "field end: its 0 octets are not followed by a line end"),
};

static void malformed_requests(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(BAD_REQ) / sizeof(BAD_REQ[0]); i++) {
		const struct bad_req *c = &BAD_REQ[i];
		char *buf = copy_of(c->in, c->len);
		app_wire_req r;
		memset(&r, 0x5a, sizeof(r)); /* garbage: decode must reset it */
		char why[256] = "";
		int got = app_wire_decode(buf, c->len, &r, why, sizeof(why));
		if (got != -1 || !strstr(why, c->why))
			fail_msg("case %zu: %d \"%s\", expected -1 \"%s\"", i, got, why, c->why);
		/* r is freed already: freeing it again is harmless */
		assert_null(r.rcpt);
		app_wire_req_free(&r);
		msv_free(buf);
	}
}

/* An error found after recipients were collected frees them (ASan's leak
 * check sees the rest). */
static void malformed_after_recipients(void **state)
{
	(void)state;
	msv_buf in;
	msv_buf_init(&in, 4096);
	assert_int_equal(msv_buf_addstr(&in, V), MSV_OK);
	for (int i = 0; i < 20; i++)
		assert_int_equal(msv_buf_addstr(&in, "rcpt 1\nx\n"), MSV_OK);
	assert_int_equal(msv_buf_addstr(&in, "bogus 0\n\n" M E), MSV_OK);
	size_t len = in.len;
	char *buf = copy_of(in.data, len);
	msv_buf_free(&in);
	app_wire_req r;
	char why[256] = "";
	assert_int_equal(app_wire_decode(buf, len, &r, why, sizeof(why)), -1);
	assert_string_equal(why, "field bogus unknown");
	assert_null(r.rcpt);
	assert_int_equal(r.o.nrcpt, 0);
	msv_free(buf);
}

/* Issue 12: rcpt fields past max-recipients are refused (-2, naming the
 * key) as soon as one too many is in the buffer, before the rest of the
 * request arrives; exactly max is fine. */
static void recipient_cap(void **state)
{
	(void)state;
	msv_buf in;
	msv_buf_init(&in, 1 << 20);
	assert_int_equal(msv_buf_addstr(&in, V), MSV_OK);
	for (int i = 0; i < 5; i++)
		assert_int_equal(msv_buf_addstr(&in, "rcpt 1\nx\n"), MSV_OK);
	size_t five = in.len;
	assert_int_equal(msv_buf_addstr(&in, M E), MSV_OK);
	char *buf = copy_of(in.data, in.len);
	app_wire_req r;
	char why[256] = "";
	assert_int_equal(app_wire_decode_limit(buf, in.len, 5, &r, why, sizeof(why)), 1);
	assert_int_equal(r.o.nrcpt, 5);
	app_wire_req_free(&r);
	msv_free(buf);
	/* A sixth, and the message not even begun. */
	in.len = five;
	assert_int_equal(msv_buf_addstr(&in, "rcpt 1\ny\nmessage 100\nFrom"), MSV_OK);
	buf = copy_of(in.data, in.len);
	assert_int_equal(app_wire_decode_limit(buf, in.len, 5, &r, why, sizeof(why)), -2);
	assert_non_null(strstr(why, "max-recipients (5)"));
	assert_null(r.rcpt);
	assert_int_equal(app_wire_decode_limit(buf, in.len, 6, &r, why, sizeof(why)), 0);
	msv_free(buf);
	msv_buf_free(&in);
}

/* The limits of a field head, one either side. */
static void field_limits(void **state)
{
	(void)state;
	char name[APP_WIRE_NAME_MAX + 2];
	memset(name, 'a', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	char in[128];
	app_wire_field f;
	char why[256];
	size_t off;

	name[APP_WIRE_NAME_MAX] = '\0'; /* 31 letters */
	int n = snprintf(in, sizeof(in), "%s 1\nx\n", name);
	off = 0;
	assert_int_equal(app_wire_next(in, (size_t)n, &off, &f, why, sizeof(why)), 1);
	assert_string_equal(f.name, name);
	assert_int_equal(off, (size_t)n);
	assert_int_equal(f.len, 1);
	assert_int_equal(f.val[0], 'x');

	name[APP_WIRE_NAME_MAX] = 'a'; /* 32 */
	n = snprintf(in, sizeof(in), "%s 1\nx\n", name);
	off = 0;
	assert_int_equal(app_wire_next(in, (size_t)n, &off, &f, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "31 letters"));
	/* 32 letters with nothing after: the 32nd already decides */
	off = 0;
	assert_int_equal(app_wire_next(in, APP_WIRE_NAME_MAX + 1, &off, &f, why, sizeof(why)), -1);
	assert_int_equal(off, 0);

	/* the largest length is accepted (and waits for its octets) */
	n = snprintf(in, sizeof(in), "message %u\n", APP_MESSAGE_MAX);
	off = 0;
	assert_int_equal(app_wire_next(in, (size_t)n, &off, &f, why, sizeof(why)), 0);
	assert_int_equal(off, 0);
	n = snprintf(in, sizeof(in), "message %u\n", APP_MESSAGE_MAX + 1);
	assert_int_equal(app_wire_next(in, (size_t)n, &off, &f, why, sizeof(why)), -1);

	/* leading zeros are only digits */
	static const char z[] = "rcpt 000000001\nx\n";
	off = 0;
	assert_int_equal(app_wire_next(z, sizeof(z) - 1, &off, &f, why, sizeof(why)), 1);
	assert_int_equal(f.len, 1);

	/* fields one after another, and the end of the buffer between them */
	static const char two[] = "a 0\n\nb 1\nq\n";
	off = 0;
	assert_int_equal(app_wire_next(two, sizeof(two) - 1, &off, &f, why, sizeof(why)), 1);
	assert_string_equal(f.name, "a");
	assert_int_equal(f.len, 0);
	assert_int_equal(off, 5);
	assert_int_equal(app_wire_next(two, sizeof(two) - 1, &off, &f, why, sizeof(why)), 1);
	assert_string_equal(f.name, "b");
	assert_int_equal(off, sizeof(two) - 1);
	assert_int_equal(app_wire_next(two, sizeof(two) - 1, &off, &f, why, sizeof(why)), 0);
	assert_int_equal(off, sizeof(two) - 1);
}

static void put_field(void **state)
{
	(void)state;
	msv_buf b;
	msv_buf_init(&b, 1024);
	assert_int_equal(app_wire_put(&b, "sender", NULL, 5), 0);
	assert_int_equal(b.len, 0);
	assert_int_equal(app_wire_put(&b, "x", "a\0\n", 3), 0);
	assert_int_equal(b.len, 8);
	assert_memory_equal(b.data, "x 3\na\0\n\n", 8);
	msv_buf_free(&b);

	/* a buffer whose cap is too small: an error, not a short field */
	msv_buf_init(&b, 8);
	assert_int_equal(app_wire_put(&b, "message", "0123456789", 10), -1);
	msv_buf_free(&b);
}

/* What app_wire_reply_decode() reported. */
typedef struct answer {
	int rc;
	app_submitted res;
	char error[64];
	char why[256];
} answer;

/* Decodes from an exact-size copy into a garbage-filled answer, the error
 * text cut to errsz (0: all the room there is). */
static int decode_answer(const char *in, size_t len, answer *a, size_t errsz)
{
	char *buf = copy_of(in, len);
	memset(a, 0x5a, sizeof(*a));
	a->why[0] = '\0';
	int got = app_wire_reply_decode(buf, len, &a->rc, &a->res, a->error,
	                                errsz ? errsz : sizeof(a->error), a->why, sizeof(a->why));
	msv_free(buf);
	return got;
}

static void reply_ok(void **state)
{
	(void)state;
	app_submitted res = {0};
	memcpy(res.id, "0123456789ABCDEF", MSV_QID_LEN + 1);
	res.nrcpt = 3;
	msv_buf b;
	msv_buf_init(&b, 1024);
	assert_int_equal(app_wire_reply(&b, 0, &res, "ignored"), 0);
	static const char want[] = "rc 1\n0\nid 16\n0123456789ABCDEF\nrecipients 1\n3\nend 0\n\n";
	assert_int_equal(b.len, sizeof(want) - 1);
	assert_memory_equal(b.data, want, b.len);

	answer a;
	assert_int_equal(decode_answer(b.data, b.len, &a, 0), 1);
	assert_int_equal(a.rc, 0);
	assert_string_equal(a.res.id, res.id);
	assert_int_equal(a.res.nrcpt, 3);
	assert_null(a.res.message_id);
	assert_string_equal(a.error, "");
	for (size_t n = 0; n < b.len; n++) {
		int got = decode_answer(b.data, n, &a, 0);
		if (got != 0)
			fail_msg("reply prefix %zu: %d (%s)", n, got, a.why);
	}
	msv_buf_free(&b);
}

static void reply_error(void **state)
{
	(void)state;
	msv_buf b;
	msv_buf_init(&b, 1024);
	static const char err[] = "queue busy\r\n\x1b[31mred\x7f\tend 0\n";
	assert_int_equal(app_wire_reply(&b, 75, NULL, err), 0);
	answer a;
	assert_int_equal(decode_answer(b.data, b.len, &a, 0), 1);
	assert_int_equal(a.rc, 75);
	assert_string_equal(a.error, "queue busy???[31mred??end 0?");
	assert_string_equal(a.res.id, "");
	assert_int_equal(a.res.nrcpt, 0);

	/* cut to the room given, still terminated */
	assert_int_equal(decode_answer(b.data, b.len, &a, 8), 1);
	assert_string_equal(a.error, "queue b");

	/* no error text at all is an empty one */
	msv_buf_reset(&b);
	assert_int_equal(app_wire_reply(&b, 70, NULL, NULL), 0);
	assert_int_equal(decode_answer(b.data, b.len, &a, 0), 1);
	assert_int_equal(a.rc, 70);
	assert_string_equal(a.error, "");
	msv_buf_free(&b);
}

#define NO_RECIPIENTS "field recipients: not a number"

static const struct bad_req BAD_REPLY[] = {
    CASE("id 16\n0123456789ABCDEF\nrecipients 1\n1\nend 0\n\n", "an answer without rc"),
    CASE("error 4\nbusy\nend 0\n\n", "an answer without rc"),
    CASE("end 0\n\n", "an answer without rc"),
    CASE("rc 1\n0\nrecipients 1\n1\nend 0\n\n", "an answer without id"),
    CASE("rc 1\n0\nid 0\n\nend 0\n\n", "an answer without id"),
    CASE("rc 1\n0\nid 17\n0123456789ABCDEFG\nend 0\n\n", "field id: not a queue ID"),
    CASE("rc 1\n0\nid 3\na\0b\nend 0\n\n", "field id: not a queue ID"),
    CASE("rc 2\n-1\nend 0\n\n", "field rc: not a number"),
    CASE("rc 2\n+1\nend 0\n\n", "field rc: not a number"),
    CASE("rc 2\n 1\nend 0\n\n", "field rc: not a number"),
    CASE("rc 2\n\t1\nend 0\n\n", "field rc: not a number"),
    CASE("rc 2\n1 \nend 0\n\n", "field rc: not a number"),
    CASE("rc 0\n\nend 0\n\n", "field rc: not a number"),
    CASE("rc 3\n256\nend 0\n\n", "field rc: not a number"),
    CASE("rc 1\n0\nid 1\nX\nrecipients 10\n1000000001\nend 0\n\n", NO_RECIPIENTS),
    CASE("rc 1\n0\nid 1\nX\nrecipients 20\n99999999999999999999\nend 0\n\n", NO_RECIPIENTS),
    CASE("rc 1\n0\nbogus 0\n\nend 0\n\n", "unknown field bogus"),
    CASE("RC 1\n0\n", "unexpected octet 0x52"),
    CASE("rc 1\n0X", "not followed by a line end"),
};

static void malformed_replies(void **state)
{
	(void)state;
	answer a;
	for (size_t i = 0; i < sizeof(BAD_REPLY) / sizeof(BAD_REPLY[0]); i++) {
		const struct bad_req *c = &BAD_REPLY[i];
		int got = decode_answer(c->in, c->len, &a, 0);
		if (got != -1 || !strstr(a.why, c->why))
			fail_msg("reply case %zu: %d \"%s\", expected -1 \"%s\"", i, got, a.why, c->why);
	}
	/* the limits themselves are numbers, leading zeros too */
	static const char top[] = "rc 4\n0255\nid 1\nX\nrecipients 10\n1000000000\nend 0\n\n";
	assert_int_equal(decode_answer(top, sizeof(top) - 1, &a, 0), 1);
	assert_int_equal(a.rc, 255);
	assert_int_equal(a.res.nrcpt, 1000000000);
}

static void send_all(void **state)
{
	(void)state;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	char out[200000], in[sizeof(out)];
	for (size_t i = 0; i < sizeof(out); i++)
		out[i] = (char)(i * 7);
	/* more than the socket buffer holds: the writer must loop, so write
	 * in a child while the parent reads */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		close(sv[0]);
		_exit(app_wire_send(sv[1], out, sizeof(out)) ? 1 : 0);
	}
	close(sv[1]);
	size_t have = 0;
	while (have < sizeof(in)) {
		ssize_t n = read(sv[0], in + have, sizeof(in) - have);
		if (n < 0 && errno == EINTR)
			continue;
		assert_true(n > 0);
		have += (size_t)n;
	}
	assert_memory_equal(in, out, sizeof(out));
	close(sv[0]);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	/* a peer gone: -1 and EPIPE, no SIGPIPE killing the process */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	close(sv[1]);
	errno = 0;
	assert_int_equal(app_wire_send(sv[0], "x", 1), -1);
	assert_int_equal(errno, EPIPE);
	close(sv[0]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(round_trip_full),
	    cmocka_unit_test(round_trip_minimal),
	    cmocka_unit_test(round_trip_empty_strings),
	    cmocka_unit_test(many_recipients),
	    cmocka_unit_test(every_prefix_needs_more),
	    cmocka_unit_test(fed_in_chunks),
	    cmocka_unit_test(any_order),
	    cmocka_unit_test(malformed_requests),
	    cmocka_unit_test(malformed_after_recipients),
	    cmocka_unit_test(recipient_cap),
	    cmocka_unit_test(field_limits),
	    cmocka_unit_test(put_field),
	    cmocka_unit_test(reply_ok),
	    cmocka_unit_test(reply_error),
	    cmocka_unit_test(malformed_replies),
	    cmocka_unit_test(send_all),
	};
	return cmocka_run_group_tests_name("app wire", tests, NULL, NULL);
}
