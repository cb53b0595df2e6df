/*
 * Amazon SES notifications delivered by e-mail (SNS): a JSON document
 * in the body, {"notificationType": "Bounce" | "Complaint" | "Delivery",
 * "bounce": {"bouncedRecipients": [{"emailAddress", "action", "status",
 * "diagnosticCode"}], "reportingMTA"}, "complaint": {"complainedRecipients":
 * [...], "complaintFeedbackType"}, "delivery": {"recipients": [...],
 * "smtpResponse", "reportingMTA"}, "mail": {...}}.  ("eventType" instead
 * of "notificationType" in the event-publishing form.)
 *
 * The library has no JSON dependency, and needs none for this: only
 * string values are read, by key, inside the object that holds them,
 * with the escapes of RFC 8259 7 decoded.  Anything unexpected ends
 * the reading with what was found so far.
 */
#include <string.h>

#include "dsn/dsn_int.h"

/* Reads the JSON string starting at s[i] == '"' into out; returns the
 * index after it, or 0 on a malformed string. */
static size_t json_string(const char *s, size_t n, size_t i, msv_buf *out)
{
	if (i >= n || s[i] != '"')
		return 0;
	for (i++; i < n; i++) {
		char ch = s[i];
		if (ch == '"')
			return i + 1;
		if (ch == '\n' || ch == '\r')
			continue; /* mail transport wrapped the line */
		if (ch == '\\' && i + 1 < n) {
			char e = s[++i];
			const char *map = "\"\"\\\\//b\bf\fn\nr\rt\t";
			const char *m = strchr(map, e);
			if (e == 'u' && i + 4 < n) {
				unsigned v = 0;
				for (int k = 1; k <= 4; k++) {
					char h = s[i + (size_t)k];
					v = v * 16 + (unsigned)(h >= '0' && h <= '9'   ? h - '0'
					                        : h >= 'a' && h <= 'f' ? h - 'a' + 10
					                        : h >= 'A' && h <= 'F' ? h - 'A' + 10
					                                               : 0);
				}
				i += 4;
				char u[3];
				size_t ul = 0;
				if (v < 0x80)
					u[ul++] = (char)v;
				else if (v < 0x800) {
					u[ul++] = (char)(0xC0 | (v >> 6));
					u[ul++] = (char)(0x80 | (v & 0x3F));
				} else {
					u[ul++] = (char)(0xE0 | (v >> 12));
					u[ul++] = (char)(0x80 | ((v >> 6) & 0x3F));
					u[ul++] = (char)(0x80 | (v & 0x3F));
				}
				if (msv_buf_add(out, u, ul))
					return 0;
				continue;
			}
			if (e && m && ((m - map) % 2 == 0)) {
				if (msv_buf_addc(out, m[1]))
					return 0;
				continue;
			}
			continue;
		}
		if (msv_buf_addc(out, ch))
			return 0;
	}
	return 0;
}

/* Where "key" (quoted, first occurrence) ends in s[0..n), or -1. */
static long json_key(const char *s, size_t n, const char *key)
{
	char pat[64];
	size_t kl = strlen(key);
	if (kl + 3 > sizeof(pat))
		return -1;
	pat[0] = '"';
	memcpy(pat + 1, key, kl);
	pat[kl + 1] = '"';
	pat[kl + 2] = '\0';
	long f = msv__dsn_ci_find(s, n, pat);
	return f < 0 ? -1 : f + (long)kl + 2;
}

/* The string value of "key" in s[0..n) (first occurrence), into out. */
static int json_get(const char *s, size_t n, const char *key, msv_buf *out)
{
	long f = json_key(s, n, key);
	if (f < 0)
		return 0;
	size_t i = (size_t)f;
	while (i < n && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t'))
		i++;
	if (i >= n || s[i] != ':')
		return 0;
	i++;
	while (i < n && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t'))
		i++;
	msv_buf_reset(out);
	return json_string(s, n, i, out) != 0;
}

/* The extent of the array value of "key": [a0, a1). */
static int json_array(const char *s, size_t n, const char *key, size_t *a0, size_t *a1)
{
	long f = json_key(s, n, key);
	if (f < 0)
		return 0;
	size_t i = (size_t)f;
	while (i < n && s[i] != '[' && s[i] != '{' && s[i] != '"')
		i++;
	if (i >= n || s[i] != '[')
		return 0;
	int depth = 0, q = 0;
	for (size_t k = i; k < n; k++) {
		char ch = s[k];
		if (q) {
			if (ch == '\\')
				k++;
			else if (ch == '"')
				q = 0;
			continue;
		}
		if (ch == '"')
			q = 1;
		else if (ch == '[' || ch == '{')
			depth++;
		else if ((ch == ']' || ch == '}') && --depth == 0) {
			*a0 = i + 1;
			*a1 = k;
			return 1;
		}
	}
	return 0;
}

/* Calls fn for each element of an array span: objects {..} or strings. */
static void each_elem(const char *s, size_t a0, size_t a1,
                      void (*fn)(dsn_ctx *, const char *, size_t, const char *), dsn_ctx *c,
                      const char *kind)
{
	size_t i = a0;
	while (i < a1) {
		while (i < a1 && s[i] != '{' && s[i] != '"')
			i++;
		if (i >= a1)
			return;
		if (s[i] == '"') {
			size_t e = i + 1;
			while (e < a1 && s[e] != '"') {
				if (s[e] == '\\')
					e++;
				e++;
			}
			fn(c, s + i, e + 1 <= a1 ? e + 1 - i : a1 - i, kind);
			i = e + 1;
			continue;
		}
		int depth = 0, q = 0;
		size_t k;
		for (k = i; k < a1; k++) {
			char ch = s[k];
			if (q) {
				if (ch == '\\')
					k++;
				else if (ch == '"')
					q = 0;
				continue;
			}
			if (ch == '"')
				q = 1;
			else if (ch == '{')
				depth++;
			else if (ch == '}' && --depth == 0)
				break;
		}
		fn(c, s + i, (k < a1 ? k + 1 : a1) - i, kind);
		i = k + 1;
	}
}

static void add_rcpt(dsn_ctx *c, const char *s, size_t n, const char *kind)
{
	msv_buf v;
	msv_buf_init(&v, DSN_FIELD_MAX);
	msv_dsn_recipient *r = NULL;
	if (s[0] == '"') {
		if (json_string(s, n, 0, &v) && v.len) {
			r = msv__dsn_rcpt_new(c);
			if (r)
				r->address = msv__dsn_str(c, v.data, v.len);
		}
	} else if (json_get(s, n, "emailAddress", &v) && v.len) {
		r = msv__dsn_rcpt_new(c);
		if (r)
			r->address = msv__dsn_str(c, v.data, v.len);
	}
	if (!r || !r->address) {
		msv_buf_free(&v);
		return;
	}
	/* The SES form of an address: "Name <a@b>". */
	{
		const char *a = r->address;
		const char *lt = strchr(a, '<');
		const char *gt = lt ? strchr(lt, '>') : NULL;
		if (lt && gt && gt > lt + 1) {
			char *x = msv__dsn_str(c, lt + 1, (size_t)(gt - lt - 1));
			if (x) {
				msv_free(r->address);
				r->address = x;
			}
		}
	}
	if (!strcmp(kind, "complaint")) {
		r->reason = MSV_DSN_R_FEEDBACK;
	} else if (!strcmp(kind, "delivery")) {
		r->action = MSV_DSN_ACTION_DELIVERED;
	} else {
		if (json_get(s, n, "action", &v) && v.len) {
			if (msv__dsn_ci_prefix(v.data, v.len, "failed"))
				r->action = MSV_DSN_ACTION_FAILED;
			else if (msv__dsn_ci_prefix(v.data, v.len, "delayed"))
				r->action = MSV_DSN_ACTION_DELAYED;
		}
		if (json_get(s, n, "status", &v) && v.len &&
		    msv__dsn_status_norm(v.data, v.len, r->status))
			r->status_source = MSV_DSN_SRC_FIELD;
		if (json_get(s, n, "diagnosticCode", &v) && v.len) {
			const char *d = v.data;
			size_t dl = v.len;
			const char *semi = memchr(d, ';', dl < 12 ? dl : 12);
			if (semi) {
				dl -= (size_t)(semi + 1 - d);
				d = semi + 1;
			}
			r->diagnostic = msv__dsn_str(c, d, dl);
		}
	}
	msv_buf_free(&v);
}

int msv__dsn_ses_read(dsn_ctx *c, const char *s, size_t n, msv_dsn_kind *kind)
{
	msv_buf v;
	/* An SNS envelope carries the notification as a JSON string in its
	 * "Message" field: read that instead. */
	msv_buf_init(&v, DSN_TEXT_MAX);
	if (json_get(s, n, "Type", &v) && msv__dsn_ci_eq(v.data, v.len, "notification") &&
	    json_get(s, n, "Message", &v) && v.len && msv__dsn_ci_find(v.data, v.len, "notificationtype") >= 0) {
		int r = msv__dsn_ses_read(c, v.data, v.len, kind);
		msv_buf_free(&v);
		return r;
	}
	msv_buf_free(&v);
	msv_buf_init(&v, DSN_FIELD_MAX);
	int ok = json_get(s, n, "notificationType", &v) || json_get(s, n, "eventType", &v);
	if (!ok || !v.len) {
		msv_buf_free(&v);
		return 0;
	}
	size_t before = c->rep->nrecipients, a0, a1;
	if (msv__dsn_ci_eq(v.data, v.len, "bounce")) {
		*kind = MSV_DSN_BOUNCE;
		if (json_array(s, n, "bouncedRecipients", &a0, &a1))
			each_elem(s, a0, a1, add_rcpt, c, "bounce");
	} else if (msv__dsn_ci_eq(v.data, v.len, "complaint")) {
		*kind = MSV_DSN_FEEDBACK;
		if (json_array(s, n, "complainedRecipients", &a0, &a1))
			each_elem(s, a0, a1, add_rcpt, c, "complaint");
		if (json_get(s, n, "complaintFeedbackType", &v) && v.len)
			msv__dsn_set_once(c, &c->rep->feedback_type, v.data, v.len);
	} else if (msv__dsn_ci_eq(v.data, v.len, "delivery")) {
		*kind = MSV_DSN_SUCCESS;
		long d = msv__dsn_ci_find(s, n, "\"delivery\"");
		if (d >= 0) {
			const char *ds = s + d;
			size_t dn = n - (size_t)d;
			if (json_array(ds, dn, "recipients", &a0, &a1))
				each_elem(ds, a0, a1, add_rcpt, c, "delivery");
			if (json_get(ds, dn, "smtpResponse", &v) && v.len) {
				for (size_t i = before; i < c->rep->nrecipients; i++) {
					msv_dsn_recipient *r = &c->rep->recipients[i];
					msv__dsn_set_once(c, &r->diagnostic, v.data, v.len);
					if (msv__dsn_find_status(v.data, v.len, r->status) >= 0)
						r->status_source = MSV_DSN_SRC_TEXT;
					r->reply_code = msv__dsn_find_reply_code(v.data, v.len);
				}
			}
			if (json_get(ds, dn, "reportingMTA", &v) && v.len)
				msv__dsn_set_once(c, &c->rep->reporting_mta, v.data, v.len);
		}
	}
	if (json_get(s, n, "reportingMTA", &v) && v.len) {
		const char *m = v.data;
		size_t ml = v.len;
		const char *semi = memchr(m, ';', ml);
		if (semi) {
			ml -= (size_t)(semi + 1 - m);
			m = semi + 1;
		}
		msv__dsn_set_once(c, &c->rep->reporting_mta, m, ml);
	}
	msv_buf_free(&v);
	return (int)(c->rep->nrecipients - before);
}
