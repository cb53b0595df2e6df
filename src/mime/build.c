/*
 * The message builder: fields and parts in, an RFC 5322 / MIME message
 * out, produced in pieces (contract in missive/mime.h).
 *
 * RFCs: 5322 (fields, Date 3.3, Message-ID 3.6.4), 2045/2046 (MIME),
 * 2047, 2231 and 2183 (file names), 2387 (related), 2392 (Content-ID),
 * 2369 and 8058 (List-Unsubscribe), 6532 (UTF-8 headers).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/core_int.h"
#include "mime/mime_int.h"

#define BODY_MAX_DEFAULT ((size_t)64 << 20)
/* One encoding step: 1024 base64 lines, 57 KiB in and 78 KiB out.  The
 * input chunk is a whole number of 57-octet lines so no line is split
 * across steps.  Small on purpose: every page of the two buffers costs a
 * page fault the first time it is touched (about 16 us each under
 * gVisor), and both stay in L2; 3360 lines took 25% longer for 10 MB. */
#define CHUNK_LINES 1024
#define IBUF_SIZE (57 * CHUNK_LINES)
/* Worst case of any encoder for IBUF_SIZE/8 octets of QP or line-end
 * input is 8x; for base64 78/57. */
#define TEXT_CHUNK (IBUF_SIZE / 8)
#define OBUF_SIZE (IBUF_SIZE * 8 / 5 + 64)
/* Base64 of a file is encoded in place: a chunk is read into obuf at
 * B64_IN_OFF and its lines are written from obuf's start, so one buffer
 * of 78 KiB is touched instead of two (each page touched is a fault).
 * Line j of a chunk is written below 78 * (j + 1) and read from
 * B64_IN_OFF + 57 * j on: with B64_IN_OFF >= 21 * CHUNK_LINES + 57 no
 * line's output reaches its own input (see msv__b64_lines). */
#define B64_IN_OFF (21 * CHUNK_LINES + 64)
_Static_assert(B64_IN_OFF + IBUF_SIZE <= OBUF_SIZE, "in-place base64 chunk fits obuf");
/* Parts and addresses per message: far above any real message; a bound
 * against runaway callers. */
#define ITEMS_MAX 10000
#define SCAN_EARLY 65536 /* octets looked at before giving up on a binary file */
/* The scan's first read: binary data nearly always shows a NUL in its
 * first page, and only what is read gets touched (page faults are what
 * a short run pays for). */
#define SCAN_FIRST 4096

enum { K_TEXT, K_HTML, K_ATTACH, K_INLINE };

typedef struct mpart {
	int kind;
	const char *data; /* memory source */
	size_t len;
	void *owned;
	char *path; /* file source */
	uint64_t fsize;
	char *ctype, *filename, *cid;
	int text; /* any line end is a line break (bodies) */
	msv_mime_encoding enc;
	uint64_t enc_size;
	int last_nl; /* the encoded body ends with a line end */
} mpart;

typedef struct maddr {
	msv_mime_field field;
	char *name;
	char *addr;
} maddr;

typedef struct mhdr {
	char *name;
	char *value;
} mhdr;

typedef struct seg {
	int body;
	size_t off, len; /* literal: range of m->lit */
	size_t part;
} seg;

struct msv_mime_msg {
	msv_error err;
	char *mid_domain;
	size_t body_max;
	maddr *addrs;
	size_t naddrs;
	char *subject;
	char *date;
	char *msgid;
	char *irt, *refs;
	char *lu;
	int one_click;
	mhdr *hdrs;
	size_t nhdrs;
	mpart *parts;
	size_t nparts;
	long text_idx, html_idx;

	/* prepared */
	int prepared;
	unsigned transport;
	msv_buf lit;
	seg *segs;
	size_t nsegs;
	uint64_t size;
	int body_8bit, smtputf8;
	msv_buf wire;
	const char **rcpt;
	size_t nrcpt;

	/* output */
	size_t cur;
	int body_open;
	size_t lit_pos;
	int fd;
	uint64_t fread_total;
	size_t mem_pos;
	int b64_started;
	msv__qp qp;
	int pending_cr;
	size_t carry;
	unsigned char *ibuf;
	char *obuf;
	const char *win;
	size_t winlen;
	int failed;
};

/* ---- small helpers ---- */

static msv_result fail(msv_mime_msg *m, msv_result code, const char *fmt, ...) MSV_PRINTF(3, 4);
static msv_result fail(msv_mime_msg *m, msv_result code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	msv_class cls = code == MSV_E_NOMEM || code == MSV_E_SYSTEM || code == MSV_E_NO_INPUT
	                ? MSV_CLASS_LOCAL
	                : code == MSV_E_NO_SMTPUTF8 ? MSV_CLASS_PERMANENT
	                                             : MSV_CLASS_USAGE;
	msv_error_vset(&m->err, code, cls, fmt, ap);
	va_end(ap);
	return code;
}

static msv_result nomem(msv_mime_msg *m)
{
	return fail(m, MSV_E_NOMEM, "out of memory");
}

static void *grow(void *p, size_t n, size_t size)
{
	/* Arrays grow one item at a time from small counts; doubling at
	 * powers of two keeps it linear. */
	if (n & (n - 1) && n > 4)
		return p;
	size_t cap = n < 4 ? 4 : n * 2, bytes;
	if (msv_mul_size(&bytes, cap, size))
		return NULL;
	return msv_realloc(p, bytes);
}

static char *dupn(const char *s, size_t n)
{
	char *d = msv_malloc(n + 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

/* Text for a header value: valid UTF-8 without CR or LF. */
static msv_result check_value(msv_mime_msg *m, const char *what, const char *s, size_t len)
{
	size_t bad = msv__utf8_check(s, len);
	if (bad < len)
		return fail(m, MSV_E_INVALID, "%s: invalid UTF-8 at octet %zu", what, bad + 1);
	for (size_t i = 0; i < len; i++)
		if (s[i] == '\r' || s[i] == '\n')
			return fail(m, MSV_E_INVALID,
			            "%s: a line break (CR or LF) in a header value is not allowed", what);
	return MSV_OK;
}

static int ascii_printable(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 32 || (unsigned char)s[i] >= 127)
			return 0;
	return 1;
}

static int is_token_char(unsigned char c)
{
	return c > 32 && c < 127 && !strchr("()<>@,;:\\\"/[]?=", c);
}

/* ---- lifetime ---- */

msv_result msv_mime_new(msv_mime_msg **out, const msv_mime_options *opts)
{
	*out = NULL;
	if (opts && !msv__version_ok(opts->version, MSV_MIME_OPTIONS_VERSION))
		return MSV_E_INVALID;
	msv_mime_msg *m = msv_calloc(1, sizeof(*m));
	if (!m)
		return MSV_E_NOMEM;
	m->text_idx = m->html_idx = -1;
	m->fd = -1;
	m->body_max = BODY_MAX_DEFAULT;
	msv_buf_init(&m->lit, MIME_HEADER_MAX);
	msv_buf_init(&m->wire, (size_t)1 << 22);
	if (opts && opts->body_max)
		m->body_max = opts->body_max;
	if (opts && opts->message_id_domain) {
		const char *d = opts->message_id_domain;
		if (!*d || !ascii_printable(d, strlen(d)) || strchr(d, '<') || strchr(d, '>') ||
		    strchr(d, '@')) {
			msv_mime_free(m);
			return MSV_E_INVALID;
		}
		if (!(m->mid_domain = msv_strdup(d))) {
			msv_mime_free(m);
			return MSV_E_NOMEM;
		}
	}
	*out = m;
	return MSV_OK;
}

static void close_body(msv_mime_msg *m)
{
	if (m->fd >= 0)
		close(m->fd);
	m->fd = -1;
	m->body_open = 0;
}

void msv_mime_free(msv_mime_msg *m)
{
	if (!m)
		return;
	close_body(m);
	for (size_t i = 0; i < m->naddrs; i++) {
		msv_free(m->addrs[i].name);
		msv_free(m->addrs[i].addr);
	}
	msv_free(m->addrs);
	for (size_t i = 0; i < m->nhdrs; i++) {
		msv_free(m->hdrs[i].name);
		msv_free(m->hdrs[i].value);
	}
	msv_free(m->hdrs);
	for (size_t i = 0; i < m->nparts; i++) {
		mpart *p = &m->parts[i];
		msv_free(p->owned);
		msv_free(p->path);
		msv_free(p->ctype);
		msv_free(p->filename);
		msv_free(p->cid);
	}
	msv_free(m->parts);
	msv_free(m->mid_domain);
	msv_free(m->subject);
	msv_free(m->date);
	msv_free(m->msgid);
	msv_free(m->irt);
	msv_free(m->refs);
	msv_free(m->lu);
	msv_buf_free(&m->lit);
	msv_buf_free(&m->wire);
	msv_free(m->segs);
	msv_free(m->rcpt);
	msv_free(m->ibuf);
	msv_free(m->obuf);
	msv_free(m);
}

const msv_error *msv_mime_error(const msv_mime_msg *m)
{
	return &m->err;
}

/* Any change after msv_mime_prepare() needs another prepare. */
static void unprepare(msv_mime_msg *m)
{
	close_body(m);
	m->prepared = 0;
}

/* ---- fields ---- */

static const char *const field_names[] = {"From", "Sender", "Reply-To", "To", "Cc", "Bcc"};

msv_result msv_mime_add_address(msv_mime_msg *m, msv_mime_field field, const char *name,
                                const char *addr)
{
	if ((unsigned)field > MSV_MIME_BCC || !addr)
		return fail(m, MSV_E_INVALID, "address field: bad arguments");
	const char *what = field_names[field];
	if (field == MSV_MIME_FROM || field == MSV_MIME_SENDER)
		for (size_t i = 0; i < m->naddrs; i++)
			if (m->addrs[i].field == field)
				return fail(m, MSV_E_INVALID, "%s: only one address allowed", what);
	if (m->naddrs >= ITEMS_MAX)
		return fail(m, MSV_E_TOO_LARGE, "%s: more than %d addresses", what, ITEMS_MAX);
	msv_result r = msv__addr_check(addr, &m->err, what);
	if (r)
		return r;
	if (name && *name) {
		char w[64];
		snprintf(w, sizeof(w), "%s display name", what);
		if ((r = check_value(m, w, name, strlen(name))))
			return r;
	}
	maddr *a = grow(m->addrs, m->naddrs, sizeof(*m->addrs));
	if (!a)
		return nomem(m);
	m->addrs = a;
	maddr *n = &m->addrs[m->naddrs];
	n->field = field;
	n->name = name && *name ? msv_strdup(name) : NULL;
	n->addr = msv_strdup(addr);
	if (!n->addr || (name && *name && !n->name)) {
		msv_free(n->name);
		msv_free(n->addr);
		return nomem(m);
	}
	m->naddrs++;
	unprepare(m);
	return MSV_OK;
}

static msv_result set_str(msv_mime_msg *m, char **slot, const char *v, size_t n)
{
	char *d = dupn(v, n);
	if (!d)
		return nomem(m);
	msv_free(*slot);
	*slot = d;
	unprepare(m);
	return MSV_OK;
}

msv_result msv_mime_set_subject(msv_mime_msg *m, const char *subject)
{
	size_t n = strlen(subject);
	msv_result r = check_value(m, "Subject", subject, n);
	return r ? r : set_str(m, &m->subject, subject, n);
}

/* ---- Date (RFC 5322 3.3) ---- */

static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

static size_t digits(const char *s, size_t *i, size_t min, size_t max, int *v)
{
	size_t n = 0;
	*v = 0;
	while (n < max && s[*i] >= '0' && s[*i] <= '9') {
		*v = *v * 10 + (s[*i] - '0');
		(*i)++;
		n++;
	}
	return n >= min ? n : 0;
}

static int skip_sp(const char *s, size_t *i)
{
	size_t s0 = *i;
	while (s[*i] == ' ' || s[*i] == '\t')
		(*i)++;
	return *i > s0;
}

static int word_in(const char *s, size_t *i, const char *const *list, size_t n)
{
	for (size_t k = 0; k < n; k++)
		if (msv__strcaseeq(s + *i, strlen(list[k]) <= strlen(s + *i) ? strlen(list[k]) : 0,
		                   list[k])) {
			*i += strlen(list[k]);
			return (int)k;
		}
	return -1;
}

static int leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_days(int y, int mo)
{
	static const int n[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	return mo == 1 && leap(y) ? 29 : n[mo];
}

/* Day of the week (0 Sunday) of a Gregorian date; mo 0-11. */
static int weekday(int y, int mo, int d)
{
	/* Sakamoto's method. */
	static const int t[12] = {0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4};
	if (mo < 2)
		y--;
	return (y + y / 4 - y / 100 + y / 400 + t[mo] + d) % 7;
}

static const char date_form[] = "not an RFC 5322 date-time";

/* NULL when s is an RFC 5322 date-time naming a day that exists, else
 * why not.  A receiver cannot sort or trust a message dated 31 April or
 * "Sat" on a Friday, so the builder refuses what RFC 5322 3.3 asks
 * ("the day-of-week ... MUST be the day implied by the date"). */
static const char *date_problem(const char *s)
{
	const char *const form = date_form;
	size_t i = 0;
	int v, d, mo, y, h, mi, sec = 0, wd = -1;
	skip_sp(s, &i);
	if (s[i] >= 'A') {
		if ((wd = word_in(s, &i, days, 7)) < 0 || s[i] != ',')
			return form;
		i++;
		skip_sp(s, &i);
	}
	if (!digits(s, &i, 1, 2, &d) || d < 1 || d > 31 || !skip_sp(s, &i))
		return form;
	if ((mo = word_in(s, &i, months, 12)) < 0 || !skip_sp(s, &i))
		return form;
	if (!digits(s, &i, 4, 4, &y) || y < 1900 || !skip_sp(s, &i))
		return form;
	if (!digits(s, &i, 2, 2, &h) || h > 23 || s[i++] != ':' || !digits(s, &i, 2, 2, &mi) ||
	    mi > 59)
		return form;
	if (s[i] == ':' && (i++, !digits(s, &i, 2, 2, &sec) || sec > 60))
		return form;
	if (!skip_sp(s, &i))
		return form;
	if (s[i] == '+' || s[i] == '-') {
		i++;
		if (digits(s, &i, 4, 4, &v) != 4 || v % 100 > 59)
			return form;
	} else {
		static const char *const zones[] = {"UT", "GMT", "EST", "EDT", "CST", "CDT",
		                                    "MST", "MDT", "PST", "PDT"};
		size_t z0 = i;
		while ((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z'))
			i++;
		int ok = 0;
		for (size_t k = 0; k < 10; k++)
			ok |= msv__strcaseeq(s + z0, i - z0, zones[k]);
		if (!ok)
			return form;
	}
	skip_sp(s, &i);
	if (s[i] != '\0')
		return form;
	if (d > month_days(y, mo))
		return mo == 1 && d == 29 ? "February 29 in a year that is not a leap year"
		                          : "that month has fewer days";
	static const char *const wrong_day[7] = {
		"that date is a Sunday, not the day of the week given",
		"that date is a Monday, not the day of the week given",
		"that date is a Tuesday, not the day of the week given",
		"that date is a Wednesday, not the day of the week given",
		"that date is a Thursday, not the day of the week given",
		"that date is a Friday, not the day of the week given",
		"that date is a Saturday, not the day of the week given",
	};
	int actual = weekday(y, mo, d);
	if (wd >= 0 && wd != actual)
		return wrong_day[actual];
	return NULL;
}

msv_result msv_mime_set_date(msv_mime_msg *m, const char *date)
{
	size_t n = strlen(date);
	msv_result r = check_value(m, "Date", date, n);
	if (r)
		return r;
	const char *why = date_problem(date);
	if (why == date_form)
		return fail(m, MSV_E_INVALID,
		            "Date: \"%.80s\" is %s (e.g. \"Thu, 01 Jan 2026 00:00:00 +0000\")", date,
		            why);
	if (why)
		return fail(m, MSV_E_INVALID, "Date: \"%.80s\": %s", date, why);
	return set_str(m, &m->date, date, n);
}

msv_result msv_mime_set_date_time(msv_mime_msg *m, int64_t unix_time)
{
	time_t t = (time_t)unix_time;
	struct tm tm;
	if (!gmtime_r(&t, &tm) || tm.tm_year + 1900 < 1900 || tm.tm_year + 1900 > 9999)
		return fail(m, MSV_E_INVALID, "Date: time out of range");
	char buf[64];
	int n = snprintf(buf, sizeof(buf), "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday],
	                 tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
	                 tm.tm_sec);
	return set_str(m, &m->date, buf, (size_t)n);
}

/* ---- Message-ID and friends (RFC 5322 3.6.4) ---- */

/* id-left "@" id-right, dot-atom-text each (or a bracketed literal on
 * the right). */
static int msgid_valid(const char *s, size_t n)
{
	const char *at = memchr(s, '@', n);
	if (!at || at == s || at == s + n - 1 || memchr(at + 1, '@', (size_t)(s + n - at - 1)))
		return 0;
	for (const char *p = s; p < s + n; p++) {
		unsigned char c = (unsigned char)*p;
		if (p == at)
			continue;
		if (c == '.') {
			if (p == s || p[-1] == '.' || p[-1] == '@' || p + 1 == s + n || p[1] == '@')
				return 0;
			continue;
		}
		if (p > at && at[1] == '[')
			continue; /* literal: printable checked below */
		if (!msv__is_atext(c))
			return 0;
	}
	return ascii_printable(s, n);
}

static msv_result check_id(msv_mime_msg *m, const char *what, const char *id, size_t n,
                           size_t *inner, size_t *inner_len)
{
	size_t a = 0, b = n;
	if (n && id[0] == '<') {
		if (id[n - 1] != '>')
			return fail(m, MSV_E_INVALID, "%s: unbalanced angle brackets", what);
		a = 1;
		b = n - 1;
	}
	if (!msgid_valid(id + a, b - a)) {
		char shown[128];
		msv_sanitize_utf8(shown, sizeof(shown), id, n);
		return fail(m, MSV_E_INVALID, "%s: \"%s\" is not of the form <left@right> (RFC 5322 3.6.4)",
		            what, shown);
	}
	*inner = a;
	*inner_len = b - a;
	return MSV_OK;
}

msv_result msv_mime_set_message_id(msv_mime_msg *m, const char *id)
{
	size_t n = strlen(id), a, l;
	msv_result r = check_value(m, "Message-ID", id, n);
	if (!r)
		r = check_id(m, "Message-ID", id, n, &a, &l);
	if (r)
		return r;
	char buf[1024];
	if (l + 3 > sizeof(buf))
		return fail(m, MSV_E_TOO_LARGE, "Message-ID: longer than %zu octets", sizeof(buf) - 3);
	snprintf(buf, sizeof(buf), "<%.*s>", (int)l, id + a);
	return set_str(m, &m->msgid, buf, l + 2);
}

const char *msv_mime_message_id(const msv_mime_msg *m)
{
	return m->msgid;
}

static msv_result set_ids(msv_mime_msg *m, const char *what, char **slot, const char *ids)
{
	size_t n = strlen(ids);
	msv_result r = check_value(m, what, ids, n);
	if (r)
		return r;
	msv_buf b;
	msv_buf_init(&b, 65536);
	size_t i = 0;
	while (i < n) {
		while (i < n && (ids[i] == ' ' || ids[i] == '\t' || ids[i] == ','))
			i++;
		if (i == n)
			break;
		size_t s = i;
		while (i < n && ids[i] != ' ' && ids[i] != '\t' && ids[i] != ',')
			i++;
		size_t a, l;
		if (ids[s] != '<')
			r = fail(m, MSV_E_INVALID, "%s: message ids must be in angle brackets", what);
		if (!r)
			r = check_id(m, what, ids + s, i - s, &a, &l);
		if (!r && b.len)
			r = msv_buf_addc(&b, ' ');
		if (!r)
			r = msv_buf_add(&b, ids + s, i - s);
		if (r) {
			msv_buf_free(&b);
			return r == MSV_E_TOO_LARGE || r == MSV_E_NOMEM ? fail(m, r, "%s: too long", what) : r;
		}
	}
	if (!b.len) {
		msv_buf_free(&b);
		return fail(m, MSV_E_INVALID, "%s: no message id given", what);
	}
	r = set_str(m, slot, b.data, b.len);
	msv_buf_free(&b);
	return r;
}

msv_result msv_mime_set_in_reply_to(msv_mime_msg *m, const char *ids)
{
	return set_ids(m, "In-Reply-To", &m->irt, ids);
}

msv_result msv_mime_set_references(msv_mime_msg *m, const char *ids)
{
	return set_ids(m, "References", &m->refs, ids);
}

msv_result msv_mime_set_list_unsubscribe(msv_mime_msg *m, const char *const *uris, size_t n,
                                         int one_click)
{
	msv_buf b;
	msv_buf_init(&b, 16384);
	int https = 0;
	msv_result r = n ? MSV_OK : fail(m, MSV_E_INVALID, "List-Unsubscribe: no URI given");
	for (size_t i = 0; !r && i < n; i++) {
		const char *u = uris[i];
		size_t l = strlen(u);
		if (l && u[0] == '<' && u[l - 1] == '>') {
			u++;
			l -= 2;
		}
		if (!l || !ascii_printable(u, l) || memchr(u, '<', l) || memchr(u, '>', l) ||
		    memchr(u, ',', l))
			r = fail(m, MSV_E_INVALID,
			         "List-Unsubscribe: URI %zu is empty or holds a space, comma, angle bracket "
			         "or non-ASCII character (percent-encode it)",
			         i + 1);
		else if (!(l > 7 && msv__strcaseeq(u, 7, "mailto:")) &&
		         !(l > 8 && msv__strcaseeq(u, 8, "https://")) &&
		         !(l > 7 && msv__strcaseeq(u, 7, "http://")))
			r = fail(m, MSV_E_INVALID, "List-Unsubscribe: URI %zu is not mailto:, http: or https:",
			         i + 1);
		if (!r && l > 8 && msv__strcaseeq(u, 8, "https://"))
			https = 1;
		if (!r && b.len)
			r = msv_buf_addc(&b, ',');
		if (!r)
			r = msv_buf_addc(&b, '<');
		if (!r)
			r = msv_buf_add(&b, u, l);
		if (!r)
			r = msv_buf_addc(&b, '>');
	}
	if (!r && one_click && !https)
		r = fail(m, MSV_E_INVALID,
		         "List-Unsubscribe-Post: one-click unsubscribe needs an https URI (RFC 8058 3.1)");
	if (!r) {
		r = set_str(m, &m->lu, b.data, b.len);
		if (!r)
			m->one_click = one_click;
	} else if (r == MSV_E_NOMEM || r == MSV_E_TOO_LARGE) {
		r = fail(m, r, "List-Unsubscribe: too long");
	}
	msv_buf_free(&b);
	return r;
}

static const char *const reserved[] = {
	"From", "Sender", "Reply-To", "To", "Cc", "Bcc", "Subject", "Date", "Message-ID",
	"In-Reply-To", "References", "MIME-Version", "Content-Type", "Content-Transfer-Encoding",
	"Content-Disposition", "Content-ID", "List-Unsubscribe", "List-Unsubscribe-Post",
};

msv_result msv_mime_add_header(msv_mime_msg *m, const char *name, const char *value)
{
	size_t nl = strlen(name), vl = strlen(value);
	char shown[80];
	msv_sanitize_utf8(shown, sizeof(shown), name, nl);
	if (!nl || nl > 76)
		return fail(m, MSV_E_INVALID, "header field name \"%s\": must be 1 to 76 characters", shown);
	for (size_t i = 0; i < nl; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c <= 32 || c >= 127 || c == ':')
			return fail(m, MSV_E_INVALID,
			            "header field name \"%s\": only printable ASCII without ':' or space "
			            "(RFC 5322 2.2)",
			            shown);
	}
	for (size_t k = 0; k < sizeof(reserved) / sizeof(reserved[0]); k++)
		if (msv__strcaseeq(name, nl, reserved[k]))
			return fail(m, MSV_E_INVALID,
			            "header field %s: set by the builder itself; use its own call or flag",
			            reserved[k]);
	char what[100];
	snprintf(what, sizeof(what), "header %s", shown);
	msv_result r = check_value(m, what, value, vl);
	if (r)
		return r;
	if (m->nhdrs >= ITEMS_MAX)
		return fail(m, MSV_E_TOO_LARGE, "more than %d header fields", ITEMS_MAX);
	mhdr *h = grow(m->hdrs, m->nhdrs, sizeof(*m->hdrs));
	if (!h)
		return nomem(m);
	m->hdrs = h;
	h = &m->hdrs[m->nhdrs];
	h->name = dupn(name, nl);
	h->value = dupn(value, vl);
	if (!h->name || !h->value) {
		msv_free(h->name);
		msv_free(h->value);
		return nomem(m);
	}
	m->nhdrs++;
	unprepare(m);
	return MSV_OK;
}

/* ---- parts ---- */

static mpart *new_part(msv_mime_msg *m)
{
	if (m->nparts >= ITEMS_MAX) {
		fail(m, MSV_E_TOO_LARGE, "more than %d parts", ITEMS_MAX);
		return NULL;
	}
	mpart *p = grow(m->parts, m->nparts, sizeof(*m->parts));
	if (!p) {
		nomem(m);
		return NULL;
	}
	m->parts = p;
	p = &m->parts[m->nparts];
	memset(p, 0, sizeof(*p));
	return p;
}

static msv_result set_body(msv_mime_msg *m, long *idx, int kind, const char *what,
                           const char *data, size_t len)
{
	if (len > m->body_max)
		return fail(m, MSV_E_TOO_LARGE, "%s body: larger than %zu octets", what, m->body_max);
	size_t bad = msv__utf8_check(data, len);
	if (bad < len) {
		size_t line = 1;
		for (size_t i = 0; i < bad; i++)
			line += data[i] == '\n';
		return fail(m, MSV_E_INVALID, "%s body: invalid UTF-8 at octet %zu (line %zu)", what,
		            bad + 1, line);
	}
	char *copy = msv_malloc(len ? len : 1);
	if (!copy)
		return nomem(m);
	if (len)
		memcpy(copy, data, len);
	if (*idx >= 0) {
		mpart *p = &m->parts[*idx];
		msv_free(p->owned);
		p->owned = copy;
		p->data = copy;
		p->len = len;
	} else {
		mpart *p = new_part(m);
		if (!p) {
			msv_free(copy);
			return m->err.code;
		}
		p->kind = kind;
		p->text = 1;
		p->owned = copy;
		p->data = copy;
		p->len = len;
		p->ctype = msv_strdup(kind == K_TEXT ? "text/plain; charset=utf-8"
		                                     : "text/html; charset=utf-8");
		if (!p->ctype) {
			msv_free(copy);
			return nomem(m);
		}
		*idx = (long)m->nparts++;
	}
	unprepare(m);
	return MSV_OK;
}

msv_result msv_mime_set_text(msv_mime_msg *m, const char *data, size_t len)
{
	return set_body(m, &m->text_idx, K_TEXT, "text", data, len);
}

msv_result msv_mime_set_html(msv_mime_msg *m, const char *data, size_t len)
{
	return set_body(m, &m->html_idx, K_HTML, "HTML", data, len);
}

static const struct {
	const char *ext, *type;
} types[] = {
	{"txt", "text/plain"}, {"text", "text/plain"}, {"log", "text/plain"},
	{"html", "text/html"}, {"htm", "text/html"}, {"css", "text/css"},
	{"csv", "text/csv"}, {"md", "text/markdown"}, {"ics", "text/calendar"},
	{"vcf", "text/vcard"}, {"js", "text/javascript"}, {"xml", "application/xml"},
	{"json", "application/json"}, {"pdf", "application/pdf"}, {"zip", "application/zip"},
	{"gz", "application/gzip"}, {"tgz", "application/gzip"}, {"tar", "application/x-tar"},
	{"7z", "application/x-7z-compressed"}, {"rtf", "application/rtf"},
	{"epub", "application/epub+zip"}, {"png", "image/png"}, {"jpg", "image/jpeg"},
	{"jpeg", "image/jpeg"}, {"gif", "image/gif"}, {"webp", "image/webp"},
	{"svg", "image/svg+xml"}, {"bmp", "image/bmp"}, {"tif", "image/tiff"},
	{"tiff", "image/tiff"}, {"ico", "image/vnd.microsoft.icon"}, {"avif", "image/avif"},
	{"mp3", "audio/mpeg"}, {"wav", "audio/wav"}, {"ogg", "audio/ogg"},
	{"mp4", "video/mp4"}, {"webm", "video/webm"}, {"mov", "video/quicktime"},
	{"doc", "application/msword"},
	{"docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
	{"xls", "application/vnd.ms-excel"},
	{"xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
	{"ppt", "application/vnd.ms-powerpoint"},
	{"pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation"},
	{"odt", "application/vnd.oasis.opendocument.text"},
	{"ods", "application/vnd.oasis.opendocument.spreadsheet"},
	{"odp", "application/vnd.oasis.opendocument.presentation"},
};

const char *msv_mime_type_for(const char *filename)
{
	const char *dot = filename ? strrchr(filename, '.') : NULL;
	const char *slash = filename ? strrchr(filename, '/') : NULL;
	if (dot && (!slash || dot > slash) && dot[1])
		for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
			if (msv__strcaseeq(dot + 1, strlen(dot + 1), types[i].ext))
				return types[i].type;
	return "application/octet-stream";
}

/* type "/" subtype, tokens (RFC 2045 5.1), parameters not accepted:
 * the builder writes the ones it needs. */
static int ctype_valid(const char *t)
{
	const char *sl = strchr(t, '/');
	if (!sl || sl == t || !sl[1])
		return 0;
	for (const char *p = t; *p; p++)
		if (p != sl && !is_token_char((unsigned char)*p))
			return 0;
	return 1;
}

static msv_result part_common(msv_mime_msg *m, mpart *p, const msv_mime_part_options *o,
                              const char *default_name, const char *what)
{
	if (o && !msv__version_ok(o->version, MSV_MIME_PART_OPTIONS_VERSION))
		return fail(m, MSV_E_INVALID, "%s: msv_mime_part_options version %u is not between 1 and %u",
		            what, o->version, MSV_MIME_PART_OPTIONS_VERSION);
	const char *fn = o && o->filename ? o->filename : default_name;
	const char *ct = o && o->content_type ? o->content_type : msv_mime_type_for(fn);
	if (!ctype_valid(ct)) {
		char shown[80];
		msv_sanitize_utf8(shown, sizeof(shown), ct, strlen(ct));
		return fail(m, MSV_E_INVALID, "%s: content type \"%s\" is not type/subtype", what, shown);
	}
	if (fn) {
		size_t fl = strlen(fn);
		msv_result r = check_value(m, what, fn, fl);
		if (r)
			return r;
		for (size_t i = 0; i < fl; i++)
			if ((unsigned char)fn[i] < 0x20 || fn[i] == 0x7f)
				return fail(m, MSV_E_INVALID, "%s: control character in the file name", what);
		if (!fl || fl > 1000)
			return fail(m, MSV_E_INVALID, "%s: file name empty or longer than 1000 octets",
			            what);
	}
	if (o && o->content_id) {
		size_t cl = strlen(o->content_id);
		const char *c = o->content_id;
		if (cl >= 2 && c[0] == '<' && c[cl - 1] == '>') {
			c++;
			cl -= 2;
		}
		if (!cl || cl > 250 || !ascii_printable(c, cl) || memchr(c, '<', cl) ||
		    memchr(c, '>', cl) || memchr(c, '"', cl) || memchr(c, '\\', cl))
			return fail(m, MSV_E_INVALID,
			            "%s: Content-ID must be 1 to 250 printable ASCII characters without "
			            "space, quote, backslash or angle brackets",
			            what);
		if (!(p->cid = dupn(c, cl)))
			return nomem(m);
	}
	p->ctype = msv_strdup(ct);
	p->filename = fn ? msv_strdup(fn) : NULL;
	if (!p->ctype || (fn && !p->filename))
		return nomem(m);
	p->kind = p->cid ? K_INLINE : K_ATTACH;
	return MSV_OK;
}

static void part_drop(mpart *p)
{
	msv_free(p->ctype);
	msv_free(p->filename);
	msv_free(p->cid);
	msv_free(p->path);
	msv_free(p->owned);
	memset(p, 0, sizeof(*p));
}

msv_result msv_mime_attach_file(msv_mime_msg *m, const char *path,
                                const msv_mime_part_options *opts)
{
	char what[300];
	char shown[256];
	msv_sanitize_utf8(shown, sizeof(shown), path, strlen(path));
	snprintf(what, sizeof(what), "attachment %s", shown);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(m, MSV_E_NO_INPUT, "%s: cannot open: %s", what, strerror(errno));
	struct stat st;
	int ok = fstat(fd, &st) == 0;
	int e = errno;
	close(fd);
	if (!ok)
		return fail(m, MSV_E_NO_INPUT, "%s: cannot read: %s", what, strerror(e));
	if (!S_ISREG(st.st_mode))
		return fail(m, MSV_E_NO_INPUT, "%s: not a regular file", what);
	mpart *p = new_part(m);
	if (!p)
		return m->err.code;
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	msv_result r = part_common(m, p, opts, *base ? base : NULL, what);
	if (!r && !(p->path = msv_strdup(path)))
		r = nomem(m);
	if (r) {
		part_drop(p);
		return r;
	}
	p->fsize = (uint64_t)st.st_size;
	m->nparts++;
	unprepare(m);
	return MSV_OK;
}

msv_result msv_mime_attach_data(msv_mime_msg *m, const void *data, size_t len,
                                msv_mime_ownership own, const msv_mime_part_options *opts)
{
	msv_result r = MSV_OK;
	void *take = own == MSV_MIME_TAKE ? (void *)(uintptr_t)data : NULL;
	if (len > m->body_max)
		r = fail(m, MSV_E_TOO_LARGE, "attachment: larger than %zu octets", m->body_max);
	mpart *p = r ? NULL : new_part(m);
	if (!r && !p)
		r = m->err.code;
	if (!r)
		r = part_common(m, p, opts, NULL, "attachment");
	if (!r && own == MSV_MIME_COPY) {
		if (!(take = msv_malloc(len ? len : 1)))
			r = nomem(m);
		else if (len)
			memcpy(take, data, len);
		data = take;
	}
	if (r) {
		if (p)
			part_drop(p);
		msv_free(take);
		return r;
	}
	p->data = data;
	p->len = len;
	p->owned = take;
	m->nparts++;
	unprepare(m);
	return MSV_OK;
}

/* ---- choosing encodings ---- */

typedef struct stats {
	uint64_t len;     /* octets after line-end normalization (text) */
	uint64_t high;    /* octets >= 0x80 */
	uint64_t ctrl;    /* other controls (not TAB, CR, LF) */
	uint64_t nul;
	uint64_t bare;    /* CR or LF not in a CRLF pair */
	uint64_t maxline; /* longest line, without its end */
	uint64_t line;
	int pending_cr;
	int last_nl;
} stats;

static void scan(stats *s, const unsigned char *b, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = b[i];
		if (s->pending_cr) {
			s->pending_cr = 0;
			if (c == '\n') {
				s->len++;
				continue;
			}
			s->bare++;
			s->len++; /* a lone CR becomes CRLF in text */
		}
		if (c == '\r' || c == '\n') {
			if (s->line > s->maxline)
				s->maxline = s->line;
			s->line = 0;
			s->len += 1;
			if (c == '\r')
				s->pending_cr = 1;
			else
				s->bare++, s->len++; /* LF becomes CRLF in text */
			s->last_nl = 1;
			continue;
		}
		s->last_nl = 0;
		s->line++;
		s->len++;
		if (c >= 0x80)
			s->high++;
		else if (c == 0)
			s->nul++;
		else if ((c < 0x20 && c != '\t') || c == 0x7f)
			s->ctrl++;
	}
}

static void scan_end(stats *s)
{
	if (s->pending_cr) {
		s->bare++;
		s->len++; /* a lone CR becomes CRLF in text */
		s->pending_cr = 0;
	}
	if (s->line > s->maxline)
		s->maxline = s->line;
}

/* Reads a whole file through fn, a chunk at a time. */
typedef int (*chunk_fn)(void *ctx, const unsigned char *b, size_t n, int last);

static msv_result file_each(msv_mime_msg *m, const mpart *p, unsigned char *buf, size_t first,
                            size_t cap, chunk_fn fn, void *ctx)
{
	int fd = open(p->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(m, MSV_E_NO_INPUT, "attachment %.200s: cannot open: %s", p->path,
		            strerror(errno));
	uint64_t total = 0;
	for (;;) {
		ssize_t n = read(fd, buf, total ? cap : first);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			close(fd);
			return fail(m, MSV_E_NO_INPUT, "attachment %.200s: cannot read: %s", p->path,
			            strerror(e));
		}
		total += (uint64_t)n;
		int stop = fn(ctx, buf, (size_t)n, n == 0);
		if (n == 0 || stop)
			break;
	}
	close(fd);
	return MSV_OK;
}

typedef struct scan_ctx {
	stats st;
	uint64_t seen;
	int binary; /* gave up early: base64 */
} scan_ctx;

static int scan_chunk(void *ctx, const unsigned char *b, size_t n, int last)
{
	scan_ctx *c = ctx;
	if (last)
		return 1;
	/* Binary data shows itself early: a NUL, or many octets that QP
	 * would triple in the first SCAN_EARLY.  Then base64 is certain to be
	 * shorter and the rest of the file need not be read twice.  Judged
	 * at SCAN_EARLY exactly, whatever the sizes of the reads. */
	while (n) {
		size_t k = n;
		if (c->seen < SCAN_EARLY && k > SCAN_EARLY - c->seen)
			k = (size_t)(SCAN_EARLY - c->seen);
		scan(&c->st, b, k);
		c->seen += k;
		b += k;
		n -= k;
		uint64_t odd = c->st.high + c->st.ctrl;
		if (c->st.nul || (c->seen == SCAN_EARLY && odd * 6 > c->seen)) {
			c->binary = 1;
			return 1;
		}
	}
	return 0;
}

typedef struct qp_ctx {
	msv__qp q;
	char *out;
	uint64_t size;
} qp_ctx;

static int qp_count(void *ctx, const unsigned char *b, size_t n, int last)
{
	qp_ctx *c = ctx;
	size_t off = 0;
	do {
		size_t k = n - off > TEXT_CHUNK ? TEXT_CHUNK : n - off;
		c->size += msv__qp_chunk(&c->q, c->out, b + off, k, last && off + k == n);
		off += k;
	} while (off < n);
	return 0;
}

static msv_result choose(msv_mime_msg *m, mpart *p)
{
	stats *st;
	scan_ctx sc;
	memset(&sc, 0, sizeof(sc));
	st = &sc.st;
	if (p->path) {
		msv_result r = file_each(m, p, m->ibuf, SCAN_FIRST, IBUF_SIZE, scan_chunk, &sc);
		if (r)
			return r;
	} else {
		scan(st, (const unsigned char *)p->data, p->len);
	}
	scan_end(st);
	uint64_t raw = p->path ? p->fsize : p->len;
	p->last_nl = st->last_nl;
	int is_message = !strncmp(p->ctype, "message/", 8) || !strncmp(p->ctype, "multipart/", 10);
	if (!sc.binary && !st->nul && st->maxline <= MIME_LINE_MAX && (p->text || !st->bare)) {
		if (!st->high) {
			p->enc = MSV_MIME_ENC_7BIT;
			p->enc_size = p->text ? st->len : raw;
			p->last_nl = st->last_nl;
			return MSV_OK;
		}
		if (m->transport & MSV_MIME_8BITMIME) {
			p->enc = MSV_MIME_ENC_8BIT;
			p->enc_size = p->text ? st->len : raw;
			p->last_nl = st->last_nl;
			return MSV_OK;
		}
	}
	if (is_message)
		return fail(m, MSV_E_INVALID,
		            "attachment %.200s: a %s part must be 7bit or 8bit (RFC 2046 5.2.1): "
		            "give another content type",
		            p->filename ? p->filename : "", p->ctype);
	/* Text is base64-encoded in canonical form: CRLF line ends. */
	uint64_t b64 = msv__b64_size(p->text ? st->len : raw);
	if (sc.binary) {
		p->enc = MSV_MIME_ENC_BASE64;
		p->enc_size = b64;
		return MSV_OK;
	}
	qp_ctx qc;
	memset(&qc, 0, sizeof(qc));
	qc.q.text = p->text;
	qc.out = m->obuf;
	if (p->path) {
		msv_result r = file_each(m, p, m->ibuf, TEXT_CHUNK, TEXT_CHUNK, qp_count, &qc);
		if (r)
			return r;
	} else {
		qp_count(&qc, (const unsigned char *)p->data, p->len, 1);
	}
	if (qc.size <= b64) {
		p->enc = MSV_MIME_ENC_QP;
		p->enc_size = qc.size;
	} else {
		p->enc = MSV_MIME_ENC_BASE64;
		p->enc_size = b64;
	}
	return MSV_OK;
}

/* ---- rendering ---- */

static msv_result lit_add(msv_mime_msg *m, const char *s, size_t n)
{
	return msv_buf_add(&m->lit, s, n);
}

static msv_result lit_str(msv_mime_msg *m, const char *s)
{
	return msv_buf_add(&m->lit, s, strlen(s));
}

static msv_result seg_push(msv_mime_msg *m, int body, size_t part)
{
	/* Close the literal run since the last segment. */
	size_t start = 0;
	if (m->nsegs) {
		seg *l = &m->segs[m->nsegs - 1];
		start = l->body ? l->off : l->off + l->len;
	}
	seg *s = grow(m->segs, m->nsegs, sizeof(*m->segs));
	if (!s)
		return MSV_E_NOMEM;
	m->segs = s;
	if (m->lit.len > start) {
		m->segs[m->nsegs++] = (seg){0, start, m->lit.len - start, 0};
		if (!(s = grow(m->segs, m->nsegs, sizeof(*m->segs))))
			return MSV_E_NOMEM;
		m->segs = s;
	}
	if (body)
		m->segs[m->nsegs++] = (seg){1, m->lit.len, 0, part};
	return MSV_OK;
}

static msv_result header_addrs(msv_mime_msg *m, msv_mime_field field)
{
	size_t count = 0, done = 0;
	for (size_t i = 0; i < m->naddrs; i++)
		count += m->addrs[i].field == field;
	if (!count)
		return MSV_OK;
	const char *name = field_names[field];
	msv_result r = lit_str(m, name);
	if (!r)
		r = lit_add(m, ":", 1);
	msv__fold f = {&m->lit, strlen(name) + 1, 0};
	msv_buf w;
	msv_buf_init(&w, 1024);
	for (size_t i = 0; !r && i < m->naddrs; i++) {
		maddr *a = &m->addrs[i];
		if (a->field != field)
			continue;
		done++;
		msv_buf_reset(&w);
		r = msv__addr_wire(&w, a->addr, m->transport, &m->err, name);
		if (r) {
			msv_buf_free(&w);
			return r;
		}
		if (a->name) {
			r = msv__fold_phrase(&f, 1, a->name, strlen(a->name), m->transport);
			char tok[1100];
			int n = snprintf(tok, sizeof(tok), "<%s>%s", w.data, done < count ? "," : "");
			if (!r)
				r = msv__fold_put(&f, " ", 1, tok, (size_t)n);
		} else {
			char tok[1100];
			int n = snprintf(tok, sizeof(tok), "%s%s", w.data, done < count ? "," : "");
			r = msv__fold_put(&f, " ", 1, tok, (size_t)n);
		}
	}
	msv_buf_free(&w);
	if (!r)
		r = lit_add(m, "\r\n", 2);
	return r;
}

static msv_result header_unstructured(msv_mime_msg *m, const char *name, const char *value)
{
	msv_result r = lit_str(m, name);
	if (!r)
		r = lit_add(m, ":", 1);
	if (!r && *value) {
		msv__fold f = {&m->lit, strlen(name) + 2, 0};
		r = lit_add(m, " ", 1);
		if (!r)
			r = msv__fold_unstructured(&f, value, strlen(value), m->transport);
	}
	if (!r)
		r = lit_add(m, "\r\n", 2);
	return r;
}

/* Space-separated tokens, folded between them. */
static msv_result header_tokens(msv_mime_msg *m, const char *name, const char *value)
{
	msv_result r = lit_str(m, name);
	if (!r)
		r = lit_add(m, ":", 1);
	msv__fold f = {&m->lit, strlen(name) + 1, 0};
	const char *p = value;
	while (!r && *p) {
		const char *e = strchr(p, ' ');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		r = msv__fold_put(&f, " ", 1, p, n);
		p += n;
		if (*p == ' ')
			p++;
	}
	if (!r)
		r = lit_add(m, "\r\n", 2);
	return r;
}

static int attr_char(unsigned char c)
{
	/* RFC 2231 attribute-char, minus "%" and "'" which have meaning. */
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$&+-.^_`|~", c));
}

/* "; name=..." parameters of a file name: a quoted string when the name
 * is short printable ASCII; else RFC 2231 UTF-8 percent-encoding, split
 * into continuations between characters so each fits a line. */
static msv_result param_filename(msv__fold *f, const char *attr, const char *fn)
{
	size_t n = strlen(fn);
	int plain = n + strlen(attr) + 4 <= MIME_FOLD - 2;
	for (size_t i = 0; plain && i < n; i++)
		if ((unsigned char)fn[i] < 0x20 || (unsigned char)fn[i] >= 0x7f)
			plain = 0;
	/* A name that reads as an encoded word would be decoded by readers
	 * that decode RFC 2047 in quoted parameters (Python, Outlook): RFC
	 * 2231 percent-encoding says what it is. */
	if (plain && strstr(fn, "=?"))
		plain = 0;
	char tok[MIME_FOLD * 3 + 32];
	msv_result r;
	if (plain) {
		size_t o = (size_t)snprintf(tok, sizeof(tok), "%s=\"", attr);
		for (size_t i = 0; i < n; i++) {
			if (fn[i] == '"' || fn[i] == '\\')
				tok[o++] = '\\';
			tok[o++] = fn[i];
		}
		tok[o++] = '"';
		return msv__fold_put(f, " ", 1, tok, o);
	}
	static const char hexd[] = "0123456789ABCDEF";
	/* Percent-encode the whole name, then cut it at character starts. */
	size_t sections = 0, i = 0;
	const size_t budget = 50; /* encoded octets per section: lines stay under 78 */
	size_t enc_total = 0;
	for (size_t k = 0; k < n; k++)
		enc_total += attr_char((unsigned char)fn[k]) ? 1 : 3;
	int single = enc_total + strlen(attr) + 10 <= MIME_FOLD - 4;
	while (i < n) {
		size_t o = single ? (size_t)snprintf(tok, sizeof(tok), "%s*=", attr)
		                  : (size_t)snprintf(tok, sizeof(tok), "%s*%zu*=", attr, sections);
		if (sections == 0)
			o += (size_t)snprintf(tok + o, sizeof(tok) - o, "UTF-8''");
		size_t used = 0;
		while (i < n) {
			size_t cl = msv__utf8_seqlen((unsigned char)fn[i]);
			if (i + cl > n)
				cl = n - i;
			size_t cost = 0;
			for (size_t k = 0; k < cl; k++)
				cost += attr_char((unsigned char)fn[i + k]) ? 1 : 3;
			if (!single && used && used + cost > budget)
				break;
			for (size_t k = 0; k < cl; k++) {
				unsigned char c = (unsigned char)fn[i + k];
				if (attr_char(c)) {
					tok[o++] = (char)c;
				} else {
					tok[o++] = '%';
					tok[o++] = hexd[c >> 4];
					tok[o++] = hexd[c & 15];
				}
			}
			used += cost;
			i += cl;
		}
		if (i < n)
			tok[o++] = ';';
		if ((r = msv__fold_put(f, " ", 1, tok, o)))
			return r;
		sections++;
	}
	return MSV_OK;
}

/* The Content-Type name= of old clients: RFC 2047 words in a quoted
 * string when the name is not plain ASCII (what Outlook and Thunderbird
 * read; RFC 2047 5 does not bless it, and Python's parser notes it as a
 * header defect).  Modern readers take the RFC 2231 filename*. */
static msv_result param_name(msv__fold *f, const char *fn)
{
	size_t n = strlen(fn);
	int ascii = 1;
	for (size_t i = 0; ascii && i < n; i++)
		if ((unsigned char)fn[i] < 0x20 || (unsigned char)fn[i] >= 0x7f)
			ascii = 0;
	if (ascii || strstr(fn, "=?")) /* quoted, or RFC 2231 */
		return param_filename(f, "name", fn);
	msv_buf tmp;
	msv_buf_init(&tmp, 65536);
	/* Words short enough that ` name="word";` fits a line. */
	msv__fold g = {&tmp, 0, MIME_FOLD - 12};
	msv_result r = msv__fold_encoded(&g, NULL, 0, fn, n);
	size_t i = 0;
	int first = 1;
	while (!r && i < tmp.len) {
		while (i < tmp.len && (tmp.data[i] == ' ' || tmp.data[i] == '\r' || tmp.data[i] == '\n'))
			i++;
		size_t j = i;
		while (j < tmp.len && tmp.data[j] != ' ' && tmp.data[j] != '\r')
			j++;
		if (j == i)
			break;
		size_t k = j;
		while (k < tmp.len && (tmp.data[k] == ' ' || tmp.data[k] == '\r' || tmp.data[k] == '\n'))
			k++;
		char tok[MIME_FOLD + 16];
		int tl = snprintf(tok, sizeof(tok), "%s%.*s%s", first ? "name=\"" : "", (int)(j - i),
		                  tmp.data + i, k == tmp.len ? "\"" : "");
		r = msv__fold_put(f, " ", 1, tok, (size_t)tl);
		first = 0;
		i = k;
	}
	msv_buf_free(&tmp);
	return r;
}

static const char *enc_name(msv_mime_encoding e)
{
	switch (e) {
	case MSV_MIME_ENC_8BIT: return "8bit";
	case MSV_MIME_ENC_QP: return "quoted-printable";
	case MSV_MIME_ENC_BASE64: return "base64";
	default: return "7bit";
	}
}

static msv_result render_leaf_headers(msv_mime_msg *m, const mpart *p)
{
	msv_result r = lit_str(m, "Content-Type: ");
	if (!r)
		r = lit_str(m, p->ctype);
	if (!r && p->filename && p->kind != K_TEXT && p->kind != K_HTML) {
		msv__fold f = {&m->lit, strlen("Content-Type: ") + strlen(p->ctype) + 1, 0};
		r = lit_add(m, ";", 1);
		if (!r)
			r = param_name(&f, p->filename);
	}
	if (!r)
		r = lit_str(m, "\r\nContent-Transfer-Encoding: ");
	if (!r)
		r = lit_str(m, enc_name(p->enc));
	if (!r)
		r = lit_add(m, "\r\n", 2);
	if (!r && (p->kind == K_ATTACH || p->kind == K_INLINE)) {
		const char *disp = p->kind == K_INLINE ? "inline" : "attachment";
		r = lit_str(m, "Content-Disposition: ");
		if (!r)
			r = lit_str(m, disp);
		if (!r && p->filename) {
			msv__fold f = {&m->lit, strlen("Content-Disposition: ") + strlen(disp) + 1, 0};
			r = lit_add(m, ";", 1);
			if (!r)
				r = param_filename(&f, "filename", p->filename);
		}
		if (!r)
			r = lit_add(m, "\r\n", 2);
	}
	if (!r && p->cid)
		r = msv_buf_addf(&m->lit, "Content-ID: <%s>\r\n", p->cid);
	return r;
}

static msv_result render_leaf(msv_mime_msg *m, size_t idx)
{
	msv_result r = render_leaf_headers(m, &m->parts[idx]);
	if (!r)
		r = lit_add(m, "\r\n", 2);
	if (!r)
		r = seg_push(m, 1, idx);
	return r;
}

static void boundary(char *out, size_t outsz, const unsigned char *rnd, int level)
{
	static const char hexd[] = "0123456789abcdef";
	/* "=_" cannot occur in base64 or quoted-printable output, and 96
	 * random bits cannot be guessed by whoever wrote a 7bit body. */
	size_t o = (size_t)snprintf(out, outsz, "=_msv_%d_", level);
	for (size_t i = 0; i < 12; i++) {
		out[o++] = hexd[rnd[i] >> 4];
		out[o++] = hexd[rnd[i] & 15];
	}
	out[o] = '\0';
}

/* The content at a level: what goes inside multipart/<sub>. */
static msv_result render_content(msv_mime_msg *m, int level, int top);


static msv_result render_entity_list(msv_mime_msg *m, int level, const char *sub,
                                     int first_is_content, const size_t *leaves, size_t n,
                                     int top)
{
	unsigned char rnd[12];
	if (msv__random_bytes(rnd, sizeof(rnd)))
		return fail(m, MSV_E_SYSTEM, "no random bytes for a MIME boundary (getrandom)");
	char b[64];
	boundary(b, sizeof(b), rnd, level);
	msv_result r = msv_buf_addf(&m->lit, "Content-Type: multipart/%s;\r\n boundary=\"%s\"\r\n\r\n",
	                            sub, b);
	(void)top;
	size_t total = n + (first_is_content ? 1 : 0);
	for (size_t i = 0; !r && i < total; i++) {
		r = msv_buf_addf(&m->lit, "%s--%s\r\n", i ? "\r\n" : "", b);
		if (r)
			break;
		if (first_is_content && i == 0)
			r = render_content(m, level + 1, 0);
		else
			r = render_leaf(m, leaves[i - (first_is_content ? 1 : 0)]);
	}
	if (!r)
		r = msv_buf_addf(&m->lit, "\r\n--%s--%s", b, top ? "\r\n" : "");
	return r;
}

/* The tree of the message, outermost first:
 *   mixed(related(alternative(text, html), inline...), attachment...)
 * each level present only when it has parts of its own.  Level 0: mixed
 * (attachments), 1: related (inline parts), 2: alternative or one body. */
static msv_result render_content(msv_mime_msg *m, int level, int top)
{
	for (; level <= 1; level++) {
		int kind = level == 0 ? K_ATTACH : K_INLINE;
		size_t n = 0;
		for (size_t i = 0; i < m->nparts; i++)
			n += m->parts[i].kind == kind;
		if (!n)
			continue;
		size_t *list = msv_calloc(n, sizeof(size_t));
		if (!list)
			return nomem(m);
		size_t k = 0;
		for (size_t i = 0; i < m->nparts; i++)
			if (m->parts[i].kind == kind)
				list[k++] = i;
		msv_result r = render_entity_list(m, level, level == 0 ? "mixed" : "related", 1, list,
		                                  n, top);
		msv_free(list);
		return r;
	}
	if (m->text_idx >= 0 && m->html_idx >= 0) {
		size_t two[2] = {(size_t)m->text_idx, (size_t)m->html_idx};
		return render_entity_list(m, 2, "alternative", 0, two, 2, top);
	}
	return render_leaf(m, (size_t)(m->text_idx >= 0 ? m->text_idx : m->html_idx));
}

static msv_result render(msv_mime_msg *m)
{
	msv_result r = MSV_OK;
	if (!r)
		r = msv_buf_addf(&m->lit, "Date: %s\r\n", m->date);
	for (int f = MSV_MIME_FROM; !r && f <= MSV_MIME_CC; f++)
		r = header_addrs(m, (msv_mime_field)f);
	if (r)
		return r;
	if (!r && m->subject)
		r = header_unstructured(m, "Subject", m->subject);
	if (!r)
		r = msv_buf_addf(&m->lit, "Message-ID: %s\r\n", m->msgid);
	if (!r && m->irt)
		r = header_tokens(m, "In-Reply-To", m->irt);
	if (!r && m->refs)
		r = header_tokens(m, "References", m->refs);
	if (!r && m->lu) {
		/* Tokens separated by ", ": fold after each comma. */
		r = lit_str(m, "List-Unsubscribe:");
		msv__fold f = {&m->lit, strlen("List-Unsubscribe:"), 0};
		const char *p = m->lu;
		while (!r && *p) {
			const char *e = strchr(p, '>');
			size_t n = (size_t)(e - p) + 1 + (e[1] == ',');
			r = msv__fold_put(&f, " ", 1, p, n);
			p += n;
		}
		if (!r)
			r = lit_add(m, "\r\n", 2);
		if (!r && m->one_click)
			r = lit_str(m, "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n");
	}
	for (size_t i = 0; !r && i < m->nhdrs; i++)
		r = header_unstructured(m, m->hdrs[i].name, m->hdrs[i].value);
	if (!r)
		r = lit_str(m, "MIME-Version: 1.0\r\n");
	if (!r)
		r = render_content(m, 0, 1);
	if (!r)
		r = seg_push(m, 0, 0);
	return r;
}

/* ---- prepare ---- */

static msv_result make_msgid(msv_mime_msg *m)
{
	msv_buf d;
	msv_buf_init(&d, 1024);
	msv_result r;
	if (m->mid_domain) {
		r = msv_buf_addstr(&d, m->mid_domain);
	} else {
		const char *from = NULL;
		for (size_t i = 0; i < m->naddrs; i++)
			if (m->addrs[i].field == MSV_MIME_FROM)
				from = m->addrs[i].addr;
		r = msv__addr_domain_ascii(&d, from, &m->err);
	}
	unsigned char rnd[16];
	if (!r && msv__random_bytes(rnd, sizeof(rnd)))
		r = fail(m, MSV_E_SYSTEM, "no random bytes for the Message-ID (getrandom)");
	if (!r) {
		static const char hexd[] = "0123456789abcdef";
		char left[40];
		for (size_t i = 0; i < 16; i++) {
			left[2 * i] = hexd[rnd[i] >> 4];
			left[2 * i + 1] = hexd[rnd[i] & 15];
		}
		left[32] = '\0';
		msv_buf id;
		msv_buf_init(&id, 2048);
		r = msv_buf_addf(&id, "<%s@%s>", left, d.data);
		if (!r)
			r = set_str(m, &m->msgid, id.data, id.len);
		msv_buf_free(&id);
	}
	msv_buf_free(&d);
	return r;
}

static msv_result envelope(msv_mime_msg *m)
{
	msv_buf_reset(&m->wire);
	size_t n = 0;
	for (size_t i = 0; i < m->naddrs; i++) {
		msv_mime_field f = m->addrs[i].field;
		if (f != MSV_MIME_FROM && f != MSV_MIME_TO && f != MSV_MIME_CC && f != MSV_MIME_BCC)
			continue;
		msv_result r = msv__addr_wire(&m->wire, m->addrs[i].addr, m->transport, &m->err,
		                              field_names[f]);
		if (!r)
			r = msv_buf_addc(&m->wire, '\0');
		if (r)
			return r == MSV_E_NOMEM || r == MSV_E_TOO_LARGE ? nomem(m) : r;
		n += f != MSV_MIME_FROM;
	}
	msv_free(m->rcpt);
	m->rcpt = msv_calloc(n + 1, sizeof(char *));
	if (!m->rcpt)
		return nomem(m);
	const char *p = m->wire.data;
	size_t k = 0;
	for (size_t i = 0; i < m->naddrs; i++) {
		msv_mime_field f = m->addrs[i].field;
		if (f != MSV_MIME_FROM && f != MSV_MIME_TO && f != MSV_MIME_CC && f != MSV_MIME_BCC)
			continue;
		if (f != MSV_MIME_FROM)
			m->rcpt[k++] = p;
		p += strlen(p) + 1;
	}
	m->nrcpt = n;
	return MSV_OK;
}

static int has_high(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			return 1;
	return 0;
}

msv_result msv_mime_prepare(msv_mime_msg *m, unsigned transport)
{
	unprepare(m);
	m->transport = transport;
	size_t nfrom = 0;
	for (size_t i = 0; i < m->naddrs; i++)
		nfrom += m->addrs[i].field == MSV_MIME_FROM;
	if (!nfrom)
		return fail(m, MSV_E_INVALID, "From: missing (RFC 5322 3.6 requires it)");
	for (size_t i = 0; i < m->nparts; i++)
		if (m->parts[i].kind == K_INLINE && m->html_idx < 0)
			return fail(m, MSV_E_INVALID,
			            "inline part %s: inline parts are referenced from an HTML body, and "
			            "there is none",
			            m->parts[i].cid);
	if (m->text_idx < 0 && m->html_idx < 0) {
		msv_result r = msv_mime_set_text(m, "", 0);
		if (r)
			return r;
	}
	if (!m->ibuf)
		m->ibuf = msv_malloc(IBUF_SIZE);
	if (!m->obuf)
		m->obuf = msv_malloc(OBUF_SIZE);
	if (!m->ibuf || !m->obuf)
		return nomem(m);
	msv_result r = envelope(m);
	if (r)
		return r;
	for (size_t i = 0; i < m->nparts; i++)
		if ((r = choose(m, &m->parts[i])))
			return r;
	if (!m->msgid && (r = make_msgid(m)))
		return r;
	if (!m->date && (r = msv_mime_set_date_time(m, (int64_t)time(NULL))))
		return r;
	msv_buf_reset(&m->lit);
	m->nsegs = 0;
	r = render(m);
	if (r) {
		if (r == MSV_E_NOMEM || r == MSV_E_TOO_LARGE)
			return fail(m, r, "the header block is too large or memory ran out");
		return m->err.code ? r : fail(m, r, "cannot render the message");
	}
	/* A single-part message ends in CRLF like every other line: a body
	 * without a final line end gets one (as SMTP would add it). */
	if (m->segs[m->nsegs - 1].body) {
		mpart *p = &m->parts[m->segs[m->nsegs - 1].part];
		int ends = p->enc == MSV_MIME_ENC_BASE64 ? 0 : p->last_nl;
		if (p->enc_size && !ends) {
			if (p->enc == MSV_MIME_ENC_QP)
				r = lit_add(m, "=\r\n", 3); /* soft break: adds nothing to the text */
			else
				r = lit_add(m, "\r\n", 2);
			if (!r)
				r = seg_push(m, 0, 0);
			if (r)
				return nomem(m);
		}
	}
	m->size = m->lit.len;
	m->body_8bit = has_high(m->lit.data, m->lit.len);
	m->smtputf8 = m->body_8bit && (transport & MSV_MIME_SMTPUTF8);
	for (size_t i = 0; i < m->nparts; i++) {
		m->size += m->parts[i].enc_size;
		if (m->parts[i].enc == MSV_MIME_ENC_8BIT)
			m->body_8bit = 1;
	}
	const char *w = m->wire.data;
	if (has_high(w, m->wire.len))
		m->smtputf8 = 1;
	m->prepared = 1;
	m->cur = 0;
	m->lit_pos = 0;
	m->failed = 0;
	return MSV_OK;
}

msv_result msv_mime_info_get(const msv_mime_msg *m, msv_mime_info *info)
{
	if (!m->prepared)
		return MSV_E_STATE;
	info->size = m->size;
	info->body_8bit = m->body_8bit;
	info->smtputf8 = m->smtputf8;
	return MSV_OK;
}

const char *msv_mime_sender(const msv_mime_msg *m)
{
	if (!m->prepared)
		return NULL;
	const char *p = m->wire.data;
	for (size_t i = 0; i < m->naddrs; i++) {
		msv_mime_field f = m->addrs[i].field;
		if (f == MSV_MIME_FROM)
			return p;
		if (f == MSV_MIME_TO || f == MSV_MIME_CC || f == MSV_MIME_BCC)
			p += strlen(p) + 1;
	}
	return NULL;
}

const char *const *msv_mime_recipients(const msv_mime_msg *m, size_t *n)
{
	*n = m->prepared ? m->nrcpt : 0;
	return m->prepared ? m->rcpt : NULL;
}

/* ---- output ---- */

msv_result msv_mime_rewind(msv_mime_msg *m)
{
	if (!m->prepared)
		return fail(m, MSV_E_STATE, "the message is not prepared (call msv_mime_prepare)");
	close_body(m);
	m->cur = 0;
	m->lit_pos = 0;
	m->failed = 0;
	return MSV_OK;
}

static msv_result body_open(msv_mime_msg *m, mpart *p)
{
	m->body_open = 1;
	m->mem_pos = 0;
	m->fread_total = 0;
	m->b64_started = 0;
	memset(&m->qp, 0, sizeof(m->qp));
	m->qp.text = p->text;
	m->pending_cr = 0;
	m->carry = 0;
	if (p->path) {
		m->fd = open(p->path, O_RDONLY | O_CLOEXEC);
		if (m->fd < 0)
			return fail(m, MSV_E_NO_INPUT, "attachment %.200s: cannot open: %s", p->path,
			            strerror(errno));
#ifdef POSIX_FADV_SEQUENTIAL
		(void)posix_fadvise(m->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
#endif
	}
	return MSV_OK;
}

/* Next input: up to want octets (a file fills dst after the carry, which
 * the caller left at dst).  Fewer than want only when *last says the
 * source is exhausted after these. */
static msv_result body_input(msv_mime_msg *m, mpart *p, unsigned char *dst, size_t want,
                             const unsigned char **in, size_t *n, int *last)
{
	if (!p->path) {
		size_t k = p->len - m->mem_pos < want ? p->len - m->mem_pos : want;
		*in = (const unsigned char *)p->data + m->mem_pos;
		*n = k;
		m->mem_pos += k;
		*last = m->mem_pos == p->len;
		return MSV_OK;
	}
	size_t have = m->carry;
	*last = 0;
	while (have < want) {
		ssize_t r = read(m->fd, dst + have, want - have);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return fail(m, MSV_E_NO_INPUT, "attachment %.200s: cannot read: %s", p->path,
			            strerror(errno));
		if (r == 0) {
			*last = 1;
			break;
		}
		have += (size_t)r;
		m->fread_total += (uint64_t)r;
	}
	if (m->fread_total > p->fsize || (*last && m->fread_total != p->fsize))
		return fail(m, MSV_E_NO_INPUT,
		            "attachment %.200s: its size changed while the message was produced", p->path);
	if (m->fread_total == p->fsize)
		*last = 1;
	*in = dst;
	*n = have;
	m->carry = 0;
	return MSV_OK;
}

/* Fills the window with the next piece of the message; winlen 0 at the end. */
static msv_result produce(msv_mime_msg *m)
{
	m->winlen = 0;
	while (m->cur < m->nsegs) {
		seg *s = &m->segs[m->cur];
		if (!s->body) {
			if (m->lit_pos < s->len) {
				m->win = m->lit.data + s->off + m->lit_pos;
				m->winlen = s->len - m->lit_pos;
				m->lit_pos = s->len;
				return MSV_OK;
			}
			m->cur++;
			m->lit_pos = 0;
			continue;
		}
		mpart *p = &m->parts[s->part];
		msv_result r;
		if (!m->body_open && (r = body_open(m, p)))
			return r;
		if (m->body_open == 2) { /* source done */
			close_body(m);
			m->cur++;
			continue;
		}
		const unsigned char *in;
		size_t n;
		int last;
		size_t out = 0;
		if (p->enc == MSV_MIME_ENC_BASE64 && p->text) {
			/* Bodies (memory): line ends normalized into ibuf after the
			 * carried partial line, then whole lines encoded. */
			if ((r = body_input(m, p, m->ibuf, TEXT_CHUNK, &in, &n, &last)))
				return r;
			size_t have = m->carry + msv__crlf_chunk(&m->pending_cr, (char *)m->ibuf + m->carry,
			                                         in, n, last);
			size_t whole = last ? have : have / 57 * 57;
			out = msv__b64_lines(m->obuf, m->ibuf, whole, &m->b64_started);
			memmove(m->ibuf, m->ibuf + whole, have - whole);
			m->carry = have - whole;
		} else if (p->enc == MSV_MIME_ENC_BASE64) {
			/* Files in place; memory straight from the caller's bytes.
			 * IBUF_SIZE is whole lines and body_input returns fewer
			 * octets only at the end: no line is split, no carry. */
			unsigned char *dst = (unsigned char *)m->obuf + B64_IN_OFF;
			if ((r = body_input(m, p, dst, IBUF_SIZE, &in, &n, &last)))
				return r;
			out = msv__b64_lines(m->obuf, in, n, &m->b64_started);
		} else if (p->enc == MSV_MIME_ENC_QP) {
			if ((r = body_input(m, p, m->ibuf, TEXT_CHUNK, &in, &n, &last)))
				return r;
			out = msv__qp_chunk(&m->qp, m->obuf, in, n, last);
		} else if (p->text) {
			if ((r = body_input(m, p, m->ibuf, TEXT_CHUNK, &in, &n, &last)))
				return r;
			out = msv__crlf_chunk(&m->pending_cr, m->obuf, in, n, last);
		} else if (!p->path) {
			/* 7bit/8bit from memory: straight from the caller's bytes. */
			m->win = p->data;
			m->winlen = p->len;
			m->body_open = 2;
			if (m->winlen)
				return MSV_OK;
			continue;
		} else {
			if ((r = body_input(m, p, m->ibuf, IBUF_SIZE, &in, &n, &last)))
				return r;
			m->win = (const char *)in;
			m->winlen = n;
			if (last)
				m->body_open = 2;
			if (n)
				return MSV_OK;
			continue;
		}
		if (last)
			m->body_open = 2;
		if (out) {
			m->win = m->obuf;
			m->winlen = out;
			return MSV_OK;
		}
	}
	return MSV_OK;
}

long msv_mime_read(void *msg, char *buf, size_t cap)
{
	msv_mime_msg *m = msg;
	if (!m->prepared || m->failed) {
		if (!m->prepared)
			fail(m, MSV_E_STATE, "the message is not prepared (call msv_mime_prepare)");
		return -1;
	}
	if (cap > (size_t)1 << 30)
		cap = (size_t)1 << 30;
	size_t got = 0;
	while (got < cap) {
		if (!m->winlen) {
			if (produce(m)) {
				m->failed = 1;
				return -1;
			}
			if (!m->winlen)
				break;
		}
		size_t k = m->winlen < cap - got ? m->winlen : cap - got;
		memcpy(buf + got, m->win, k);
		m->win += k;
		m->winlen -= k;
		got += k;
	}
	return (long)got;
}

/* Produces the whole output into put(), which takes what it can of the
 * window and reports how much (0 with an error set on failure). */
typedef size_t (*put_fn)(msv_mime_msg *m, void *to, const char *p, size_t n);

static msv_result drain(msv_mime_msg *m, put_fn put, void *to)
{
	if (!m->prepared)
		return fail(m, MSV_E_STATE, "the message is not prepared (call msv_mime_prepare)");
	for (;;) {
		if (!m->winlen) {
			msv_result r = produce(m);
			if (r) {
				m->failed = 1;
				return r;
			}
			if (!m->winlen)
				return MSV_OK;
		}
		size_t n = put(m, to, m->win, m->winlen);
		if (!n) {
			m->failed = 1;
			return m->err.code;
		}
		m->win += n;
		m->winlen -= n;
	}
}

static size_t put_fd(msv_mime_msg *m, void *to, const char *p, size_t n)
{
	for (;;) {
		ssize_t w = write(*(int *)to, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w > 0)
			return (size_t)w;
		fail(m, MSV_E_SYSTEM, "cannot write the message: %s", w < 0 ? strerror(errno) : "nothing written");
		return 0;
	}
}

static size_t put_buf(msv_mime_msg *m, void *to, const char *p, size_t n)
{
	msv_result r = msv_buf_add(to, p, n);
	if (!r)
		return n;
	fail(m, r, "the message does not fit the buffer: %s", msv_strerror(r));
	return 0;
}

msv_result msv_mime_write_fd(msv_mime_msg *m, int fd)
{
	return drain(m, put_fd, &fd);
}

msv_result msv_mime_write_buf(msv_mime_msg *m, msv_buf *out)
{
	return drain(m, put_buf, out);
}
