/*
 * The MIME parser: a complete message in memory to header spans and a
 * multipart tree (contract in missive/mime.h).  picohttpparser's shape:
 * buffer and length in, spans out, storage from the caller, no read().
 *
 * RFCs: 5322 2.2 (header fields, folding), 2045 5 and 6 (Content-Type,
 * Content-Transfer-Encoding), 2046 5.1 (multipart bodies: delimiters,
 * preamble, epilogue; 5.1.5 digest defaults), 2046 5.2.1
 * (message/rfc822).  Line ends: CRLF, and the bare LF or CR of messages
 * that were stored on disk.
 */
#include <string.h>

#include "mime/mime_int.h"

/* Nesting default: real mail nests 3 or 4 deep; 32 is ample, and each
 * level costs one C stack frame of a few hundred bytes. */
#define DEPTH_DEFAULT 32
#define DEPTH_HARD_MAX 256
/* RFC 2046 5.1.1 says 1 to 70 characters; real mail has longer ones. */
#define BOUNDARY_MAX 200

static const char text_s[] = "text", plain_s[] = "plain";
static const char message_s[] = "message", rfc822_s[] = "rfc822";

typedef struct pctx {
	msv_mime_tree *t;
	msv_error *err;
	const char *buf;
	unsigned max_depth;
} pctx;

/* End of the line starting at i (index of its line end) and the index of
 * the next line. */
static size_t line_end(const char *s, size_t n, size_t i, size_t *next)
{
	while (i < n && s[i] != '\n' && s[i] != '\r')
		i++;
	if (i == n)
		*next = n;
	else if (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n')
		*next = i + 2;
	else
		*next = i + 1;
	return i;
}

static int is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

static int ci_eq(const char *a, size_t al, const char *b)
{
	return msv__strcaseeq(a, al, b);
}

const msv_mime_header *msv_mime_header_get(const msv_mime_tree *t, const msv_mime_node *n,
                                           const char *name)
{
	for (size_t i = 0; i < n->nheaders; i++) {
		const msv_mime_header *h = &t->headers[n->header + i];
		if (ci_eq(h->name.p, h->name.len, name))
			return h;
	}
	return NULL;
}

/* Header block starting at [s, e): fills headers, returns where the body
 * starts. */
static msv_result parse_headers(pctx *c, msv_mime_node *nd, size_t s, size_t e, size_t *body)
{
	const char *b = c->buf;
	msv_mime_tree *t = c->t;
	size_t i = s;
	nd->header = t->nheaders;
	nd->nheaders = 0;
	/* An mbox "From " line before the first field. */
	if (e - i >= 5 && !memcmp(b + i, "From ", 5)) {
		size_t next;
		line_end(b, e, i, &next);
		i = next;
	}
	msv_mime_header *cur = NULL;
	while (i < e) {
		size_t next, le = line_end(b, e, i, &next);
		if (le == i) { /* the empty line */
			*body = next;
			return MSV_OK;
		}
		if (is_wsp(b[i])) {
			if (cur)
				cur->value.len = (size_t)(b + le - cur->value.p);
			/* A continuation before any field: dropped, as Python does. */
			i = next;
			continue;
		}
		size_t k = i;
		while (k < le && b[k] != ':')
			k++;
		size_t ne = k;
		while (ne > i && is_wsp(b[ne - 1]))
			ne--;
		int ok = k < le && ne > i;
		for (size_t j = i; ok && j < ne; j++)
			if ((unsigned char)b[j] <= 32 || (unsigned char)b[j] >= 127)
				ok = 0;
		if (!ok) {
			/* Not a field: the header block ended without its empty line. */
			nd->flags |= MSV_MIME_BAD_HEADER;
			*body = i;
			return MSV_OK;
		}
		if (t->nheaders >= t->max_headers)
			return msv_error_set(c->err, MSV_E_TOO_LARGE, MSV_CLASS_PERMANENT,
			                     "more than %zu header fields", t->max_headers);
		cur = &t->headers[t->nheaders++];
		nd->nheaders++;
		cur->name.p = b + i;
		cur->name.len = ne - i;
		size_t v = k + 1;
		while (v < le && is_wsp(b[v]))
			v++;
		cur->value.p = b + v;
		cur->value.len = le - v;
		i = next;
	}
	*body = e;
	return MSV_OK;
}

static size_t token(const char *s, size_t n, size_t i)
{
	while (i < n) {
		unsigned char ch = (unsigned char)s[i];
		if (ch <= 32 || ch >= 127 || strchr("()<>@,;:\\\"/[]?=", ch))
			break;
		i++;
	}
	return i;
}

static size_t skip_ws(const char *s, size_t n, size_t i)
{
	for (;;) {
		while (i < n && (is_wsp(s[i]) || s[i] == '\r' || s[i] == '\n'))
			i++;
		if (i < n && s[i] == '(') { /* a comment */
			int depth = 0;
			while (i < n) {
				if (s[i] == '\\') {
					i += 2;
					continue;
				}
				if (s[i] == '(')
					depth++;
				else if (s[i] == ')' && --depth == 0)
					break;
				i++;
			}
			if (i < n)
				i++;
			continue;
		}
		return i < n ? i : n;
	}
}

/* The raw boundary parameter (a span: boundaries hold no quote or
 * backslash, RFC 2046 5.1.1). */
static int boundary_param(const char *s, size_t n, msv_mime_span *out)
{
	size_t i = 0;
	int q = 0;
	while (i < n) {
		if (s[i] == '"') {
			q = !q;
			i++;
			continue;
		}
		if (q || s[i] != ';') {
			i++;
			continue;
		}
		i = skip_ws(s, n, i + 1);
		size_t a0 = i;
		i = token(s, n, i);
		size_t a1 = i;
		i = skip_ws(s, n, i);
		if (i >= n || s[i] != '=')
			continue;
		i = skip_ws(s, n, i + 1);
		size_t v0, v1;
		if (i < n && s[i] == '"') {
			v0 = ++i;
			while (i < n && s[i] != '"')
				i++;
			v1 = i;
			if (i < n)
				i++;
		} else {
			v0 = i;
			while (i < n && s[i] != ';' && !is_wsp(s[i]) && s[i] != '\r' && s[i] != '\n')
				i++;
			v1 = i;
		}
		if (ci_eq(s + a0, a1 - a0, "boundary")) {
			/* Trailing spaces are not part of a boundary (5.1.1 bcharsnospace). */
			while (v1 > v0 && is_wsp(s[v1 - 1]))
				v1--;
			out->p = s + v0;
			out->len = v1 - v0;
			return v1 > v0 && v1 - v0 <= BOUNDARY_MAX;
		}
	}
	return 0;
}

static void content_type(msv_mime_node *nd, const msv_mime_header *h, int digest_parent)
{
	if (digest_parent) {
		nd->type = (msv_mime_span){message_s, 7};
		nd->subtype = (msv_mime_span){rfc822_s, 6};
	} else {
		nd->type = (msv_mime_span){text_s, 4};
		nd->subtype = (msv_mime_span){plain_s, 5};
	}
	if (!h)
		return;
	const char *s = h->value.p;
	size_t n = h->value.len;
	size_t i = skip_ws(s, n, 0);
	size_t t0 = i;
	i = token(s, n, i);
	size_t t1 = i;
	i = skip_ws(s, n, i);
	if (t1 == t0 || i >= n || s[i] != '/') {
		nd->flags |= MSV_MIME_BAD_CTYPE;
		return;
	}
	i = skip_ws(s, n, i + 1);
	size_t s0 = i;
	i = token(s, n, i);
	if (i == s0) {
		nd->flags |= MSV_MIME_BAD_CTYPE;
		return;
	}
	nd->type = (msv_mime_span){s + t0, t1 - t0};
	nd->subtype = (msv_mime_span){s + s0, i - s0};
	if (ci_eq(nd->type.p, nd->type.len, "multipart")) {
		if (!boundary_param(s, n, &nd->boundary)) {
			nd->boundary = (msv_mime_span){NULL, 0};
			nd->flags |= MSV_MIME_NO_BOUNDARY;
		}
	}
}

static msv_mime_encoding encoding_of(const msv_mime_header *h)
{
	if (!h)
		return MSV_MIME_ENC_7BIT;
	const char *s = h->value.p;
	size_t n = h->value.len;
	size_t i = skip_ws(s, n, 0);
	size_t e = token(s, n, i);
	static const struct {
		const char *name;
		msv_mime_encoding e;
	} names[] = {
		{"7bit", MSV_MIME_ENC_7BIT}, {"8bit", MSV_MIME_ENC_8BIT},
		{"binary", MSV_MIME_ENC_BINARY}, {"quoted-printable", MSV_MIME_ENC_QP},
		{"base64", MSV_MIME_ENC_BASE64},
	};
	for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++)
		if (ci_eq(s + i, e - i, names[k].name))
			return names[k].e;
	return MSV_MIME_ENC_OTHER;
}

/* A line is a delimiter of boundary bd when it is "--" bd, then "--"
 * for the last one, then only white space (RFC 2046 5.1.1). */
static int delimiter(const char *s, size_t ls, size_t le, const msv_mime_span *bd, int *close)
{
	size_t n = le - ls;
	if (n < 2 + bd->len || s[ls] != '-' || s[ls + 1] != '-' ||
	    memcmp(s + ls + 2, bd->p, bd->len) != 0)
		return 0;
	size_t i = ls + 2 + bd->len;
	*close = 0;
	if (i + 2 <= le && s[i] == '-' && s[i + 1] == '-') {
		*close = 1;
		i += 2;
	}
	while (i < le && is_wsp(s[i]))
		i++;
	return i == le;
}

static msv_result parse_entity(pctx *c, size_t s, size_t e, unsigned depth, long parent,
                               int digest_parent, long *out);

static msv_result add_child(msv_mime_tree *t, long parent, long child, long *last)
{
	if (*last < 0)
		t->nodes[parent].first_child = child;
	else
		t->nodes[*last].next = child;
	*last = child;
	return MSV_OK;
}

static msv_result parse_multipart(pctx *c, long idx, unsigned depth)
{
	msv_mime_tree *t = c->t;
	const char *b = c->buf;
	msv_mime_span bd = t->nodes[idx].boundary;
	size_t s = (size_t)(t->nodes[idx].body.p - b);
	size_t e = s + t->nodes[idx].body.len;
	int digest = ci_eq(t->nodes[idx].subtype.p, t->nodes[idx].subtype.len, "digest");
	size_t i = s;
	long part_start = -1; /* start of the current part's first line */
	long last = -1;
	int closed = 0;
	while (i < e) {
		size_t next, le = line_end(b, e, i, &next);
		int close;
		if (b[i] == '-' && delimiter(b, i, le, &bd, &close)) {
			if (part_start >= 0) {
				/* The line end before the delimiter belongs to it. */
				size_t pe = i;
				if ((long)pe > part_start && b[pe - 1] == '\n')
					pe--;
				if ((long)pe > part_start && b[pe - 1] == '\r')
					pe--;
				long child;
				msv_result r = parse_entity(c, (size_t)part_start, pe < (size_t)part_start
				                                                       ? (size_t)part_start
				                                                       : pe,
				                            depth + 1, idx, digest, &child);
				if (r)
					return r;
				add_child(t, idx, child, &last);
			}
			if (close) {
				closed = 1;
				break;
			}
			part_start = (long)next;
		}
		i = next;
	}
	if (!closed) {
		t->nodes[idx].flags |= MSV_MIME_NO_CLOSE;
		if (part_start >= 0) {
			long child;
			msv_result r = parse_entity(c, (size_t)part_start, e, depth + 1, idx, digest, &child);
			if (r)
				return r;
			add_child(t, idx, child, &last);
		}
	}
	return MSV_OK;
}

static msv_result parse_entity(pctx *c, size_t s, size_t e, unsigned depth, long parent,
                               int digest_parent, long *out)
{
	msv_mime_tree *t = c->t;
	if (depth > c->max_depth)
		return msv_error_set(c->err, MSV_E_TOO_LARGE, MSV_CLASS_PERMANENT,
		                     "MIME parts nested deeper than %u levels", c->max_depth);
	if (t->nnodes >= t->max_nodes)
		return msv_error_set(c->err, MSV_E_TOO_LARGE, MSV_CLASS_PERMANENT,
		                     "more than %zu MIME parts", t->max_nodes);
	long idx = (long)t->nnodes++;
	msv_mime_node *nd = &t->nodes[idx];
	memset(nd, 0, sizeof(*nd));
	nd->parent = parent;
	nd->first_child = nd->next = -1;
	nd->depth = depth;
	size_t body = e;
	msv_result r = parse_headers(c, nd, s, e, &body);
	if (r)
		return r;
	content_type(nd, msv_mime_header_get(t, nd, "Content-Type"), digest_parent);
	nd->encoding = encoding_of(msv_mime_header_get(t, nd, "Content-Transfer-Encoding"));
	nd->body.p = c->buf + body;
	nd->body.len = e - body;
	*out = idx;
	if (ci_eq(nd->type.p, nd->type.len, "multipart") && nd->boundary.p)
		return parse_multipart(c, idx, depth);
	if (ci_eq(nd->type.p, nd->type.len, "message") &&
	    (ci_eq(nd->subtype.p, nd->subtype.len, "rfc822") ||
	     ci_eq(nd->subtype.p, nd->subtype.len, "global")) &&
	    (nd->encoding == MSV_MIME_ENC_7BIT || nd->encoding == MSV_MIME_ENC_8BIT ||
	     nd->encoding == MSV_MIME_ENC_BINARY)) {
		long child;
		r = parse_entity(c, body, e, depth + 1, idx, 0, &child);
		if (r)
			return r;
		t->nodes[idx].first_child = child;
	}
	return MSV_OK;
}

msv_result msv_mime_parse(msv_mime_tree *t, const char *buf, size_t len, msv_error *err)
{
	t->nheaders = 0;
	t->nnodes = 0;
	if (!t->nodes || !t->max_nodes || (!t->headers && t->max_headers))
		return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE,
		                     "msv_mime_parse: no storage for nodes or headers");
	pctx c = {t, err, buf, t->max_depth ? t->max_depth : DEPTH_DEFAULT};
	if (c.max_depth > DEPTH_HARD_MAX)
		c.max_depth = DEPTH_HARD_MAX;
	long root;
	msv_result r = parse_entity(&c, 0, len, 0, -1, 0, &root);
	if (r)
		return r;
	if (!t->nodes[0].nheaders)
		return msv_error_set(err, MSV_E_BAD_MESSAGE, MSV_CLASS_PERMANENT,
		                     "not a message: no header field at the start");
	return MSV_OK;
}
