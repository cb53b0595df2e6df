/* The submission socket's fields: see wire.h. */
#include <errno.h>
#include <pwd.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "sendmail_wire.h"

#define HEAD_MAX (APP_WIRE_NAME_MAX + 1 + 10 + 1) /* "NAME LEN\n" */

int app_wire_put(msv_buf *b, const char *name, const char *val, size_t len)
{
	if (!val)
		return 0;
	char head[HEAD_MAX + 1];
	int n = snprintf(head, sizeof(head), "%s %zu\n", name, len);
	if (n < 0 || (size_t)n >= sizeof(head))
		return -1;
	if (msv_buf_add(b, head, (size_t)n) || msv_buf_add(b, val, len) || msv_buf_add(b, "\n", 1))
		return -1;
	return 0;
}

int app_wire_next(const char *buf, size_t len, size_t *off, app_wire_field *f, char *why,
                  size_t whysz)
{
	const char *p = buf + *off, *end = buf + len;
	size_t i = 0;
	while (p + i < end && i < APP_WIRE_NAME_MAX && p[i] != ' ') {
		char c = p[i];
		if (!((c >= 'a' && c <= 'z') || c == '-')) {
			snprintf(why, whysz, "field name: unexpected octet 0x%02x", (unsigned char)c);
			return -1;
		}
		f->name[i++] = c;
	}
	if (p + i == end)
		return 0;
	if (!i || p[i] != ' ') {
		snprintf(why, whysz, "field name: expected 1 to %d letters and a space", APP_WIRE_NAME_MAX);
		return -1;
	}
	f->name[i++] = '\0';
	size_t v = 0, digits = 0;
	for (; p + i < end && p[i] >= '0' && p[i] <= '9'; i++) {
		if (++digits > 9) {
			snprintf(why, whysz, "field %s: length too long", f->name);
			return -1;
		}
		v = v * 10 + (size_t)(p[i] - '0');
	}
	if (p + i == end)
		return 0;
	if (!digits || p[i] != '\n') {
		snprintf(why, whysz, "field %s: expected a decimal length and a line end", f->name);
		return -1;
	}
	if (v > APP_MESSAGE_MAX) {
		snprintf(why, whysz, "field %s: %zu octets, more than %u", f->name, v, APP_MESSAGE_MAX);
		return -1;
	}
	i++;
	if ((size_t)(end - (p + i)) < v + 1)
		return 0;
	if (p[i + v] != '\n') {
		snprintf(why, whysz, "field %s: its %zu octets are not followed by a line end", f->name, v);
		return -1;
	}
	f->val = p + i;
	f->len = v;
	*off += i + v + 1;
	return 1;
}

static int put_str(msv_buf *b, const char *name, const char *s)
{
	return s ? app_wire_put(b, name, s, strlen(s)) : 0;
}

int app_wire_request(msv_buf *b, const app_submit_opts *o, const char *msg, size_t len)
{
#define STR(name, s) put_str(b, name, s)
	int r = STR("missive-submit", APP_WIRE_VERSION) | STR("sender", o->sender);
	for (size_t i = 0; i < o->nrcpt; i++)
		r |= STR("rcpt", o->rcpt[i]);
	r |= STR("extract", o->extract ? "1" : NULL) | STR("from-name", o->from_name) |
	     STR("notify", o->dsn_notify) | STR("ret", o->dsn_ret) | STR("envid", o->envid) |
	     STR("allow-suppressed", o->allow_suppressed ? "1" : NULL);
	r |= app_wire_put(b, "message", msg ? msg : "", len) | app_wire_put(b, "end", "", 0);
#undef STR
	return r ? -1 : 0;
}

/* The string fields of a request and where each goes. */
static const char **slot_for(app_wire_req *r, const char *name)
{
	static const struct {
		const char *name;
		size_t off;
	} fields[] = {
	    {"sender", offsetof(app_submit_opts, sender)},
	    {"from-name", offsetof(app_submit_opts, from_name)},
	    {"notify", offsetof(app_submit_opts, dsn_notify)},
	    {"ret", offsetof(app_submit_opts, dsn_ret)},
	    {"envid", offsetof(app_submit_opts, envid)},
	};
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (!strcmp(name, fields[i].name))
			return (const char **)((char *)&r->o + fields[i].off);
	return NULL;
}

/* "field NAME WHAT", or WHAT alone without a name. */
static int bad(app_wire_req *r, char *why, size_t whysz, const char *name, const char *what)
{
	snprintf(why, whysz, "%s%s%s%s", name ? "field " : "", name ? name : "", name ? " " : "", what);
	app_wire_req_free(r);
	return -1;
}

int app_wire_decode(char *buf, size_t len, app_wire_req *r, char *why, size_t whysz)
{
	return app_wire_decode_limit(buf, len, SIZE_MAX, r, why, whysz);
}

int app_wire_decode_limit(char *buf, size_t len, size_t max_rcpt, app_wire_req *r, char *why,
                          size_t whysz)
{
	memset(r, 0, sizeof(*r));
	app_wire_field f;
	size_t off = 0, nrcpt = 0;
	int got;
	/* First only whether it is complete: the second pass writes NULs over
	 * the line ends that a partial buffer must keep for the next try.
	 * This pass runs again after every read, so it must stay short: the
	 * recipient cap stops it (and the client) after max_rcpt + 1 fields
	 * instead of walking millions of tiny rcpt fields each time. */
	for (int n = 0; (got = app_wire_next(buf, len, &off, &f, why, whysz)) == 1; n++) {
		/* Another protocol is told so at once, not once it stops sending. */
		if (!n && (strcmp(f.name, "missive-submit") || f.len != 1 || f.val[0] != APP_WIRE_VERSION[0]))
			return bad(r, why, whysz, NULL, "not a missive-submit version 1 request");
		if (!strcmp(f.name, "rcpt") && ++nrcpt > max_rcpt) {
			bad(r, why, whysz, NULL, "");
			snprintf(why, whysz, "too many recipients: more than [submission] max-recipients (%zu)",
			         max_rcpt);
			return -2;
		}
		if (!strcmp(f.name, "end")) {
			if (f.len)
				return bad(r, why, whysz, "end", "is not empty");
			break;
		}
	}
	if (got <= 0)
		return got;
	if (off != len)
		return bad(r, why, whysz, NULL, "octets after the end field");
	off = 0;
	size_t cap = 0;
	for (int n = 0; app_wire_next(buf, len, &off, &f, why, whysz) == 1; n++) {
		char *val = (char *)f.val;
		if (!n)
			continue; /* the version, checked above */
		if (!strcmp(f.name, "end"))
			break;
		if (r->msg)
			return bad(r, why, whysz, f.name, "after the message");
		if (!strcmp(f.name, "message")) {
			r->msg = val;
			r->msglen = f.len;
			continue;
		}
		if (memchr(val, '\0', f.len))
			return bad(r, why, whysz, f.name, "holds a NUL");
		val[f.len] = '\0';
		const char **slot = slot_for(r, f.name);
		if (slot) {
			if (*slot)
				return bad(r, why, whysz, f.name, "given twice");
			*slot = val;
		} else if (!strcmp(f.name, "rcpt")) {
			if (r->o.nrcpt == cap) {
				cap = cap ? 2 * cap : 8;
				const char **n2 = msv_realloc(r->rcpt, cap * sizeof(*n2));
				if (!n2)
					return bad(r, why, whysz, NULL, "out of memory");
				r->rcpt = n2;
			}
			r->rcpt[r->o.nrcpt++] = val;
		} else if (!strcmp(f.name, "extract") || !strcmp(f.name, "allow-suppressed")) {
			if (strcmp(val, "1"))
				return bad(r, why, whysz, f.name, "expected 1");
			*(!strcmp(f.name, "extract") ? &r->o.extract : &r->o.allow_suppressed) = 1;
		} else {
			return bad(r, why, whysz, f.name, "unknown");
		}
	}
	if (!r->msg)
		return bad(r, why, whysz, NULL, "no message field");
	r->o.rcpt = r->rcpt;
	return 1;
}

void app_wire_req_free(app_wire_req *r)
{
	msv_free(r->rcpt);
	memset(r, 0, sizeof(*r));
}

int app_wire_reply(msv_buf *b, int rc, const app_submitted *res, const char *error)
{
	char num[24], n2[24];
	snprintf(num, sizeof(num), "%d", rc);
	int r = app_wire_put(b, "rc", num, strlen(num));
	if (!rc) {
		snprintf(n2, sizeof(n2), "%zu", res->nrcpt);
		r |= app_wire_put(b, "id", res->id, strlen(res->id)) |
		     app_wire_put(b, "recipients", n2, strlen(n2));
	} else {
		r |= app_wire_put(b, "error", error ? error : "", error ? strlen(error) : 0);
		/* A limit or a reputation refusal: the client must not write
		 * the queue itself instead, which would step around the limit. */
		if (res && res->failed == APP_SUBMIT_ADMIT)
			r |= app_wire_put(b, "gateway", "1", 1);
	}
	return r | app_wire_put(b, "end", "", 0) ? -1 : 0;
}

/* A decimal field value up to max; -1 when it is not one.  Digits only:
 * strtol() would also take leading white space and a sign. */
static long decimal(const app_wire_field *f, long max)
{
	if (!f->len)
		return -1;
	long v = 0;
	for (size_t i = 0; i < f->len; i++) {
		int d = f->val[i] - '0';
		if (d < 0 || d > 9 || v > (max - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	return v;
}

int app_wire_reply_decode(const char *buf, size_t len, int *rc, app_submitted *res, char *error,
                          size_t errsz, char *why, size_t whysz)
{
	memset(res, 0, sizeof(*res));
	*rc = -1;
	error[0] = '\0';
	app_wire_field f;
	size_t off = 0;
	int got;
	while ((got = app_wire_next(buf, len, &off, &f, why, whysz)) == 1) {
		long v = 0;
		if (!strcmp(f.name, "end")) {
			if (*rc < 0 || (!*rc && !res->id[0])) {
				snprintf(why, whysz, "an answer without %s", *rc < 0 ? "rc" : "id");
				return -1;
			}
			return 1;
		} else if (!strcmp(f.name, "rc") || !strcmp(f.name, "recipients")) {
			int is_rc = !strcmp(f.name, "rc");
			if ((v = decimal(&f, is_rc ? 255 : 1000000000)) < 0) {
				snprintf(why, whysz, "field %s: not a number", f.name);
				return -1;
			}
			if (is_rc)
				*rc = (int)v;
			else
				res->nrcpt = (size_t)v;
		} else if (!strcmp(f.name, "id")) {
			if (f.len >= sizeof(res->id) || memchr(f.val, '\0', f.len)) {
				snprintf(why, whysz, "field id: not a queue ID");
				return -1;
			}
			memcpy(res->id, f.val, f.len);
			res->id[f.len] = '\0';
		} else if (!strcmp(f.name, "gateway")) {
			res->failed = APP_SUBMIT_ADMIT;
		} else if (!strcmp(f.name, "error")) {
			/* Printed to a terminal: control characters go. */
			size_t n = 0;
			for (size_t i = 0; i < f.len && n + 1 < errsz; i++)
				error[n++] = (unsigned char)f.val[i] < 0x20 || f.val[i] == 0x7f ? '?' : f.val[i];
			error[n] = '\0';
		} else {
			snprintf(why, whysz, "unknown field %s", f.name);
			return -1;
		}
	}
	return got;
}

int app_wire_send(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

void app_local_user(app_submit_opts *o, long uid, char *buf, size_t bufsz)
{
	struct passwd pw, *res = NULL;
	char pwbuf[4096];
	o->local = 1;
	o->uid = uid;
	o->user = NULL;
	if (uid >= 0 && getpwuid_r((uid_t)uid, &pw, pwbuf, sizeof(pwbuf), &res) == 0 && res &&
	    strlen(res->pw_name) < bufsz) {
		memcpy(buf, res->pw_name, strlen(res->pw_name) + 1);
		o->user = buf;
	}
}
