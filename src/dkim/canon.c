/*
 * DKIM canonicalization (RFC 6376 3.4), line-end normalization (5.3),
 * header field splitting and tag-list parsing (3.2).
 *
 * Everything here streams or works on spans of the caller's bytes; the
 * only allocations are the caller's output buffers.
 */
#include <string.h>

#include "dkim/dkim_int.h"

/* ---- line ends ---- */

void msv__dkim_norm_init(dkim_norm *m, int lf_only)
{
	m->pending_cr = 0;
	m->lf_only = lf_only;
}

static const char CRLF[2] = {'\r', '\n'};

int msv__dkim_norm_feed(dkim_norm *m, const char *p, size_t n, dkim_sink fn, void *arg)
{
	size_t i = 0;
	while (i < n) {
		if (m->pending_cr) {
			m->pending_cr = 0;
			if (p[i] == '\n') {
				if (fn(arg, CRLF, 2))
					return -1;
				i++;
				continue;
			}
			/* A bare CR: a line end, or (lf_only) an ordinary byte. */
			if (fn(arg, m->lf_only ? "\r" : CRLF, m->lf_only ? 1 : 2))
				return -1;
		}
		size_t j = i;
		while (j < n && p[j] != '\r' && p[j] != '\n')
			j++;
		if (j > i && fn(arg, p + i, j - i))
			return -1;
		if (j == n)
			break;
		if (p[j] == '\r') {
			m->pending_cr = 1;
		} else if (fn(arg, CRLF, 2)) { /* bare LF */
			return -1;
		}
		i = j + 1;
	}
	return 0;
}

int msv__dkim_norm_end(dkim_norm *m, dkim_sink fn, void *arg)
{
	if (!m->pending_cr)
		return 0;
	m->pending_cr = 0;
	return fn(arg, m->lf_only ? "\r" : CRLF, m->lf_only ? 1 : 2);
}

/* ---- body ---- */

void msv__dkim_body_init(dkim_body *b, msv_dkim_canon c, int lf_only, uint64_t limit, dkim_sink fn,
                    void *arg)
{
	b->canon = c;
	b->lf_only = lf_only;
	b->pending_cr = 0;
	b->line_start = 1;
	b->pending_wsp = 0;
	b->failed = 0;
	b->empty_lines = 0;
	b->total = 0;
	b->hashed = 0;
	b->limit = limit;
	b->fn = fn;
	b->arg = arg;
	b->staged = 0;
}

/* Hands the staged bytes to the sink, never more than l= allows. */
static void body_flush(dkim_body *b)
{
	size_t n = b->staged;
	b->staged = 0;
	b->total += n;
	if (b->hashed >= b->limit || b->failed || !n)
		return;
	if (b->limit - b->hashed < n)
		n = (size_t)(b->limit - b->hashed);
	b->hashed += n;
	if (b->fn(b->arg, b->stage, n))
		b->failed = 1;
}

static inline void body_put(dkim_body *b, char c)
{
	b->stage[b->staged++] = c;
	if (b->staged == sizeof(b->stage))
		body_flush(b);
}

/* Before the first byte of a line: the empty lines it proves were not
 * trailing, then a pending WSP run as one SP (relaxed). */
static inline void body_line_content(dkim_body *b)
{
	if (b->line_start) {
		for (; b->empty_lines; b->empty_lines--) {
			body_put(b, '\r');
			body_put(b, '\n');
		}
		b->line_start = 0;
	}
	if (b->pending_wsp) {
		body_put(b, ' ');
		b->pending_wsp = 0;
	}
}

static void body_eol(dkim_body *b)
{
	b->pending_wsp = 0; /* relaxed: WSP at the end of a line goes */
	if (b->line_start) {
		b->empty_lines++;
	} else {
		body_put(b, '\r');
		body_put(b, '\n');
		b->line_start = 1;
	}
}

/* Bytes that end a run of ordinary bytes: [0] simple, [1] relaxed. */
static const unsigned char SPECIAL[2][256] = {
	{['\r'] = 1, ['\n'] = 1},
	{['\r'] = 1, ['\n'] = 1, [' '] = 1, ['\t'] = 1},
};

/* Byte classes: 0 ordinary, 1 WSP (relaxed only), 2 CR, 3 LF. */
static unsigned char byte_class(int relaxed, unsigned char c)
{
	if (c == '\r')
		return 2;
	if (c == '\n')
		return 3;
	return (relaxed && (c == ' ' || c == '\t')) ? 1 : 0;
}

void msv__dkim_body_feed(dkim_body *b, const char *p, size_t n)
{
	int relaxed = b->canon == MSV_DKIM_RELAXED;
	size_t i = 0;
	while (i < n) {
		unsigned char c = (unsigned char)p[i];
		if (b->pending_cr) {
			b->pending_cr = 0;
			if (c == '\n') {
				body_eol(b);
				i++;
				continue;
			}
			if (b->lf_only) {
				body_line_content(b);
				body_put(b, '\r');
			} else {
				body_eol(b);
			}
		}
		switch (byte_class(relaxed, c)) {
		case 1:
			b->pending_wsp = 1;
			i++;
			continue;
		case 2:
			b->pending_cr = 1;
			i++;
			continue;
		case 3:
			body_eol(b);
			i++;
			continue;
		default:
			break;
		}
		body_line_content(b);
		/* the hot loop: ordinary bytes straight into the stage */
		char *d = b->stage + b->staged;
		size_t room = sizeof(b->stage) - b->staged, k = 0, j = 0, avail = n - i;
		const unsigned char *stop = SPECIAL[relaxed];
		const unsigned char *src = (const unsigned char *)p + i;
		while (j < avail && k < room) {
			unsigned char ch = src[j];
			if (!stop[ch]) {
				d[k++] = (char)ch;
				j++;
			} else if (relaxed && ch == ' ' && j + 1 < avail && !stop[src[j + 1]] && k + 2 <= room) {
				/* one SP between two words stays as it is: the
				 * common case of text, kept inside this loop */
				d[k++] = ' ';
				d[k++] = (char)src[j + 1];
				j += 2;
			} else {
				break;
			}
		}
		i += j;
		b->staged += k;
		if (b->staged == sizeof(b->stage))
			body_flush(b);
	}
}

int msv__dkim_body_end(dkim_body *b)
{
	if (b->pending_cr) {
		b->pending_cr = 0;
		if (b->lf_only) {
			body_line_content(b);
			body_put(b, '\r');
		} else {
			body_eol(b);
		}
	}
	b->pending_wsp = 0;
	if (!b->line_start) /* a last line without its line end gets one */
		body_eol(b);
	/* Trailing empty lines are dropped; an empty body is one CRLF in
	 * simple (RFC 6376 3.4.3) and nothing in relaxed (3.4.4). */
	if (b->canon == MSV_DKIM_SIMPLE && b->total + b->staged == 0) {
		body_put(b, '\r');
		body_put(b, '\n');
	}
	b->empty_lines = 0;
	body_flush(b);
	return b->failed ? -1 : 0;
}

/* ---- header fields ---- */

static int is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

msv_result msv__dkim_header_canon(msv_buf *out, msv_dkim_canon c, const char *field, size_t len, int no_crlf)
{
	msv_result r;
	if (c == MSV_DKIM_SIMPLE) {
		size_t n = len;
		if (n >= 2 && field[n - 2] == '\r' && field[n - 1] == '\n')
			n -= 2;
		r = msv_buf_add(out, field, n);
		if (!r && !no_crlf)
			r = msv_buf_add(out, CRLF, 2);
		return r;
	}
	const char *colon = memchr(field, ':', len);
	if (!colon)
		return MSV_E_INVALID;
	size_t name_len = (size_t)(colon - field);
	while (name_len && (is_wsp(field[name_len - 1]) || field[name_len - 1] == '\r' ||
	                    field[name_len - 1] == '\n'))
		name_len--;
	r = msv_buf_reserve(out, len + 2);
	if (r)
		return r;
	char *d = out->data + out->len;
	for (size_t i = 0; i < name_len; i++) {
		char ch = field[i];
		*d++ = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
	}
	*d++ = ':';
	/* Unfold (drop CR and LF), turn WSP runs into one SP, drop WSP at
	 * both ends of the value. */
	int space = 0, any = 0;
	for (const char *p = colon + 1, *e = field + len; p < e; p++) {
		char ch = *p;
		if (ch == '\r' || ch == '\n')
			continue;
		if (is_wsp(ch)) {
			space = any;
			continue;
		}
		if (space)
			*d++ = ' ';
		space = 0;
		any = 1;
		*d++ = ch;
	}
	if (!no_crlf) {
		*d++ = '\r';
		*d++ = '\n';
	}
	out->len = (size_t)(d - out->data);
	out->data[out->len] = '\0';
	return MSV_OK;
}

long msv__dkim_split_fields(const char *p, size_t len, dkim_field *out, size_t max, size_t *bad_line)
{
	size_t n = 0, i = 0, line = 0;
	while (i < len) {
		line++;
		const char *nl = memchr(p + i, '\n', len - i);
		size_t end = nl ? (size_t)(nl - p) + 1 : len;
		if (is_wsp(p[i])) {
			if (!n) { /* a continuation with no field before it */
				*bad_line = line;
				return -1;
			}
			out[n - 1].len = end - (size_t)(out[n - 1].p - p);
		} else {
			size_t k = i;
			while (k < end && p[k] != ':' && (unsigned char)p[k] > 32 && p[k] != 127)
				k++;
			size_t name_end = k;
			while (k < end && is_wsp(p[k]))
				k++;
			if (k == end || p[k] != ':' || name_end == i || n == max) {
				*bad_line = line;
				return -1;
			}
			out[n].p = p + i;
			out[n].len = end - i;
			out[n].name_len = name_end - i;
			n++;
		}
		i = end;
	}
	return (long)n;
}

int msv__dkim_name_eq(const char *p, size_t n, const char *name)
{
	size_t i = 0;
	for (; i < n; i++) {
		char a = p[i], b = name[i];
		if (!b)
			return 0;
		if (a >= 'A' && a <= 'Z')
			a = (char)(a + 32);
		if (b >= 'A' && b <= 'Z')
			b = (char)(b + 32);
		if (a != b)
			return 0;
	}
	return name[i] == '\0';
}

/* ---- tag lists ---- */

static int is_fws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_alnum_(char c)
{
	return is_alpha(c) || (c >= '0' && c <= '9') || c == '_';
}

long msv__dkim_parse_tags(const char *p, size_t len, dkim_tag *tags, size_t max, const char **why)
{
	size_t n = 0, i = 0;
	for (;;) {
		while (i < len && is_fws(p[i]))
			i++;
		if (i == len)
			break; /* end, possibly after a trailing ';' */
		if (!is_alpha(p[i])) {
			*why = "a tag name must start with a letter";
			return -1;
		}
		size_t ns = i;
		while (i < len && is_alnum_(p[i]))
			i++;
		size_t ne = i;
		while (i < len && is_fws(p[i]))
			i++;
		if (i == len || p[i] != '=') {
			*why = "a tag has no '='";
			return -1;
		}
		i++;
		size_t vstart = i;
		while (i < len && is_fws(p[i]))
			i++;
		size_t vs = i;
		while (i < len && p[i] != ';')
			i++;
		size_t vend = i, ve = i;
		while (ve > vs && is_fws(p[ve - 1]))
			ve--;
		for (size_t k = 0; k < n; k++) {
			if (tags[k].name_len == ne - ns && !memcmp(tags[k].name, p + ns, ne - ns)) {
				*why = "a tag appears twice";
				return -1;
			}
		}
		if (n == max) {
			*why = "too many tags";
			return -1;
		}
		tags[n].name = p + ns;
		tags[n].name_len = ne - ns;
		tags[n].value = p + vs;
		tags[n].value_len = ve - vs;
		tags[n].value_start = vstart;
		tags[n].value_end = vend;
		n++;
		if (i == len)
			break;
		i++; /* the ';' */
	}
	return (long)n;
}

const dkim_tag *msv__dkim_find_tag(const dkim_tag *tags, size_t n, const char *name)
{
	size_t l = strlen(name);
	for (size_t i = 0; i < n; i++)
		if (tags[i].name_len == l && !memcmp(tags[i].name, name, l))
			return &tags[i];
	return NULL;
}

msv_result msv__dkim_b64_decode_fws(msv_buf *out, const char *p, size_t n)
{
	msv_buf tmp;
	msv_buf_init(&tmp, n + 1);
	msv_result r = msv_buf_reserve(&tmp, n + 1);
	if (r)
		return r;
	for (size_t i = 0; i < n; i++)
		if (!is_fws(p[i]))
			tmp.data[tmp.len++] = p[i];
	tmp.data[tmp.len] = '\0';
	r = msv_base64_decode(out, tmp.data, tmp.len);
	msv_buf_free(&tmp);
	return r;
}

int msv__dkim_valid_dns_name(const char *s)
{
	size_t n = strlen(s), label = 0;
	if (!n || n > 253)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '.') {
			if (!label || s[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!is_alnum_(c) && c != '-')
			return 0;
		if (c == '-' && !label)
			return 0;
		if (++label > 63)
			return 0;
	}
	return label > 0 && s[n - 1] != '-';
}

const char *msv__dkim_memmem(const char *h, size_t hn, const char *n, size_t nn)
{
	if (!nn)
		return h;
	for (size_t i = 0; i + nn <= hn; i++)
		if (h[i] == n[0] && !memcmp(h + i, n, nn))
			return h + i;
	return NULL;
}
