/*
 * Decoding what the parser found: RFC 2047 encoded words (6: display),
 * RFC 2231 parameter values (3: continuations, 4: charset and language),
 * base64 and quoted-printable bodies (RFC 2045 6.7, 6.8), charsets into
 * UTF-8 (iconv for anything but UTF-8, US-ASCII and Latin-1).
 */
#include <errno.h>
#include <iconv.h>
#include <string.h>

#include "mime/mime_int.h"

#define CHARSET_MAX 64
#define SECTIONS_MAX 100 /* RFC 2231 continuations per parameter */

static int lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = lower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static msv_result add_latin1(msv_buf *out, const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		msv_result r;
		if (s[i] < 0x80) {
			r = msv_buf_addc(out, (char)s[i]);
		} else {
			char two[2] = {(char)(0xc0 | s[i] >> 6), (char)(0x80 | (s[i] & 0x3f))};
			r = msv_buf_add(out, two, 2);
		}
		if (r)
			return r;
	}
	return MSV_OK;
}

/* UTF-8 that may be broken: valid runs copied, each bad octet U+FFFD. */
static msv_result add_utf8_lossy(msv_buf *out, const char *s, size_t n)
{
	while (n) {
		size_t ok = msv__utf8_check(s, n);
		msv_result r = msv_buf_add(out, s, ok);
		if (r)
			return r;
		if (ok == n)
			break;
		if ((r = msv_buf_add(out, "\xef\xbf\xbd", 3)))
			return r;
		s += ok + 1;
		n -= ok + 1;
	}
	return MSV_OK;
}

int msv__to_utf8(msv_buf *out, const char *cs, size_t cslen, const char *s, size_t n,
                 msv_result *r)
{
	char name[CHARSET_MAX];
	*r = MSV_OK;
	/* RFC 2231 5: "charset*language". */
	const char *star = memchr(cs, '*', cslen);
	if (star)
		cslen = (size_t)(star - cs);
	if (!cslen || cslen >= sizeof(name))
		return -1;
	for (size_t i = 0; i < cslen; i++)
		name[i] = (char)lower((unsigned char)cs[i]);
	name[cslen] = '\0';
	if (!strcmp(name, "utf-8") || !strcmp(name, "utf8")) {
		*r = add_utf8_lossy(out, s, n);
		return 0;
	}
	if (!strcmp(name, "us-ascii") || !strcmp(name, "ascii") || !strcmp(name, "iso-8859-1") ||
	    !strcmp(name, "latin1") || !strcmp(name, "iso_8859-1")) {
		*r = add_latin1(out, (const unsigned char *)s, n);
		return 0;
	}
	iconv_t cd = iconv_open("UTF-8", name);
	if (cd == (iconv_t)-1)
		return -1;
	char tmp[1024];
	char *in = (char *)(uintptr_t)s;
	size_t left = n;
	while (left) {
		char *o = tmp;
		size_t room = sizeof(tmp);
		size_t rc = iconv(cd, &in, &left, &o, &room);
		if ((*r = msv_buf_add(out, tmp, (size_t)(o - tmp))))
			break;
		if (rc == (size_t)-1 && errno != E2BIG) {
			/* An octet the charset does not define: U+FFFD, go on. */
			if ((*r = msv_buf_add(out, "\xef\xbf\xbd", 3)))
				break;
			in++;
			left--;
		}
	}
	iconv_close(cd);
	return 0;
}

/* ---- RFC 2047 ---- */

/* If s[0..n) starts an encoded word, its length and decoded form. */
static size_t encoded_word(const char *s, size_t n, msv_buf *out, msv_result *r)
{
	*r = MSV_OK;
	if (n < 8 || s[0] != '=' || s[1] != '?')
		return 0;
	size_t i = 2;
	while (i < n && s[i] != '?' && s[i] > ' ' && s[i] < 127)
		i++;
	if (i == n || s[i] != '?' || i == 2)
		return 0;
	size_t cs0 = 2, csl = i - 2;
	if (i + 2 >= n || s[i + 2] != '?')
		return 0;
	int enc = lower((unsigned char)s[i + 1]);
	if (enc != 'q' && enc != 'b')
		return 0;
	size_t t0 = i + 3, t = t0;
	while (t + 1 < n && !(s[t] == '?' && s[t + 1] == '=')) {
		if (s[t] == ' ' || s[t] == '\t' || s[t] == '\r' || s[t] == '\n')
			return 0;
		t++;
	}
	if (t + 1 >= n)
		return 0;
	size_t end = t + 2;
	/* Decode the octets, then convert. */
	msv_buf raw;
	msv_buf_init(&raw, n);
	if (enc == 'q') {
		for (size_t k = t0; k < t && !*r; k++) {
			if (s[k] == '_') {
				*r = msv_buf_addc(&raw, ' ');
			} else if (s[k] == '=' && k + 2 < t && hexval(s[k + 1]) >= 0 &&
			           hexval(s[k + 2]) >= 0) {
				*r = msv_buf_addc(&raw, (char)(hexval(s[k + 1]) << 4 | hexval(s[k + 2])));
				k += 2;
			} else {
				*r = msv_buf_addc(&raw, s[k]);
			}
		}
	} else {
		unsigned acc = 0, bits = 0;
		for (size_t k = t0; k < t && !*r; k++) {
			int v = msv_base64_value((unsigned char)s[k]);
			if (s[k] == '=')
				break;
			if (v < 0) {
				msv_buf_free(&raw);
				return 0; /* not base64: leave the word as written */
			}
			acc = (acc << 6 | (unsigned)v) & 0xffffff;
			bits += 6;
			if (bits >= 8) {
				bits -= 8;
				*r = msv_buf_addc(&raw, (char)(acc >> bits & 0xff));
			}
		}
	}
	if (*r) {
		msv_buf_free(&raw);
		return 0;
	}
	size_t mark = out->len;
	int known = msv__to_utf8(out, s + cs0, csl, raw.data ? raw.data : "", raw.len, r) == 0;
	msv_buf_free(&raw);
	if (*r)
		return 0;
	if (!known) {
		out->len = mark; /* RFC 2047 6.2: unknown charset, show the word as is */
		if (out->data)
			out->data[mark] = '\0';
		return 0;
	}
	return end;
}

static int ws(char c)
{
	return c == ' ' || c == '\t';
}

msv_result msv_mime_decode_header(msv_buf *out, const char *value, size_t len, msv_error *err)
{
	/* Unfold first (RFC 5322 2.2.3): drop CR and LF, keep the WSP. */
	msv_buf u;
	msv_buf_init(&u, len + 1);
	msv_result r = MSV_OK;
	for (size_t i = 0; i < len && !r; i++)
		if (value[i] != '\r' && value[i] != '\n')
			r = msv_buf_addc(&u, value[i]);
	const char *s = u.data ? u.data : "";
	size_t n = u.len;
	size_t i = 0;
	int prev_ew = 0;   /* the last token was an encoded word */
	size_t ws_start = 0, ws_len = 0;
	int quoted = 0;
	while (!r && i < n) {
		char c = s[i];
		if (quoted) {
			if (c == '\\' && i + 1 < n) {
				r = msv_buf_add(out, s + i, 2);
				i += 2;
				continue;
			}
			if (c == '"')
				quoted = 0;
			r = msv_buf_addc(out, c);
			i++;
			continue;
		}
		if (ws(c)) {
			ws_start = i;
			while (i < n && ws(s[i]))
				i++;
			ws_len = i - ws_start;
			/* Held back: dropped if an encoded word follows an encoded word. */
			if (i == n)
				r = msv_buf_add(out, s + ws_start, ws_len);
			continue;
		}
		/* An encoded word must stand alone: after white space, "(" or the
		 * start, and before white space, ")" or the end. */
		int at_start = i == 0 || ws(s[i - 1]) || s[i - 1] == '(';
		size_t wl = 0;
		if (at_start && c == '=') {
			msv_buf tmp;
			msv_buf_init(&tmp, n * 4 + 16);
			wl = encoded_word(s + i, n - i, &tmp, &r);
			if (wl && i + wl < n && !ws(s[i + wl]) && s[i + wl] != ')')
				wl = 0;
			if (wl) {
				if (!(prev_ew && ws_len && ws_start + ws_len == i))
					if (ws_len && ws_start + ws_len == i)
						r = msv_buf_add(out, s + ws_start, ws_len);
				if (!r)
					r = msv_buf_add(out, tmp.data ? tmp.data : "", tmp.len);
			}
			msv_buf_free(&tmp);
		}
		if (wl) {
			i += wl;
			prev_ew = 1;
			ws_len = 0;
			continue;
		}
		/* A plain token: pending white space first. */
		if (ws_len && ws_start + ws_len == i && !r)
			r = msv_buf_add(out, s + ws_start, ws_len);
		ws_len = 0;
		size_t t0 = i;
		while (i < n && !ws(s[i]) && s[i] != '"' && s[i] != '(' && s[i] != ')')
			i++;
		if (i == t0) { /* a lone quote or parenthesis */
			if (s[i] == '"')
				quoted = 1;
			i++;
		}
		if (!r) {
			size_t ok = msv__utf8_check(s + t0, i - t0);
			r = ok == i - t0 ? msv_buf_add(out, s + t0, i - t0)
			                 : add_latin1(out, (const unsigned char *)s + t0, i - t0);
		}
		prev_ew = 0;
	}
	msv_buf_free(&u);
	if (r)
		return msv_error_set(err, r, MSV_CLASS_LOCAL, "cannot decode a header: %s",
		                     msv_strerror(r));
	return MSV_OK;
}

/* ---- parameters ---- */

typedef struct pval {
	const char *p;
	size_t len;
	int quoted;
	int ext; /* RFC 2231 extended (percent-encoded) */
} pval;

static size_t skip_cfws(const char *s, size_t n, size_t i)
{
	for (;;) {
		while (i < n && (ws(s[i]) || s[i] == '\r' || s[i] == '\n'))
			i++;
		if (i < n && s[i] == '(') {
			int depth = 0;
			while (i < n) {
				if (s[i] == '\\' && i + 1 < n) {
					i += 2;
					continue;
				}
				if (s[i] == '(')
					depth++;
				else if (s[i] == ')' && --depth == 0) {
					i++;
					break;
				}
				i++;
			}
			continue;
		}
		return i;
	}
}

static msv_result unquote(msv_buf *out, const char *p, size_t n)
{
	msv_result r = MSV_OK;
	for (size_t i = 0; i < n && !r; i++) {
		if (p[i] == '\\' && i + 1 < n)
			i++;
		if (p[i] == '\r' || p[i] == '\n')
			continue;
		r = msv_buf_addc(out, p[i]);
	}
	return r;
}

msv_result msv_mime_param(msv_buf *out, int *found, const char *value, size_t len,
                          const char *name, msv_error *err)
{
	size_t nl = strlen(name);
	pval plain = {NULL, 0, 0, 0}, ext = {NULL, 0, 0, 0};
	pval sec[SECTIONS_MAX];
	size_t nsec = 0;
	memset(sec, 0, sizeof(sec));
	*found = 0;
	size_t i = 0;
	/* Skip the value before the first ';' (quoted strings respected). */
	int q = 0;
	while (i < len && (q || value[i] != ';')) {
		if (value[i] == '"')
			q = !q;
		else if (q && value[i] == '\\')
			i++;
		i++;
	}
	while (i < len) {
		i++; /* the ';' */
		i = skip_cfws(value, len, i);
		size_t a0 = i;
		while (i < len && value[i] != '=' && value[i] != ';' && !ws(value[i]) &&
		       value[i] != '\r' && value[i] != '\n')
			i++;
		size_t a1 = i;
		i = skip_cfws(value, len, i);
		if (i >= len || value[i] != '=') {
			while (i < len && value[i] != ';')
				i++;
			continue;
		}
		i = skip_cfws(value, len, i + 1);
		pval v = {value + i, 0, 0, 0};
		if (i < len && value[i] == '"') {
			size_t v0 = ++i;
			while (i < len && value[i] != '"') {
				if (value[i] == '\\' && i + 1 < len)
					i++;
				i++;
			}
			v.p = value + v0;
			v.len = (i < len ? i : len) - v0;
			v.quoted = 1;
			if (i < len)
				i++;
			while (i < len && value[i] != ';')
				i++;
		} else {
			size_t v0 = i;
			while (i < len && value[i] != ';' && !ws(value[i]) && value[i] != '\r' &&
			       value[i] != '\n')
				i++;
			v.len = i - v0;
			while (i < len && value[i] != ';')
				i++;
		}
		const char *an = value + a0;
		size_t al = a1 - a0;
		if (al < nl || !msv__strcaseeq(an, nl, name))
			continue;
		if (al == nl) {
			if (!plain.p)
				plain = v;
		} else if (al == nl + 1 && an[nl] == '*') {
			v.ext = 1;
			if (!ext.p)
				ext = v;
		} else if (an[nl] == '*') {
			/* name*N or name*N* */
			size_t k = nl + 1, num = 0, dg = 0;
			while (k < al && an[k] >= '0' && an[k] <= '9' && dg < 3) {
				num = num * 10 + (size_t)(an[k] - '0');
				k++;
				dg++;
			}
			if (!dg || (dg > 1 && an[nl + 1] == '0'))
				continue;
			if (k < al && an[k] == '*' && k + 1 == al)
				v.ext = 1;
			else if (k != al)
				continue;
			if (num < SECTIONS_MAX && !sec[num].p) {
				sec[num] = v;
				if (num + 1 > nsec)
					nsec = num + 1;
			}
		}
	}
	msv_result r = MSV_OK;
	msv_buf raw;
	msv_buf_init(&raw, len + 1);
	const char *cs = NULL;
	size_t csl = 0;
	int have = 0;
	if (nsec && sec[0].p) {
		/* Continuations: sections in order until the first gap (RFC 2231 3). */
		for (size_t k = 0; k < nsec && sec[k].p && !r; k++) {
			const char *p = sec[k].p;
			size_t n = sec[k].len;
			if (sec[k].ext) {
				if (k == 0) {
					const char *a = memchr(p, '\'', n);
					const char *b = a ? memchr(a + 1, '\'', (size_t)(p + n - a - 1)) : NULL;
					if (b) {
						cs = p;
						csl = (size_t)(a - p);
						n -= (size_t)(b + 1 - p);
						p = b + 1;
					}
				}
				for (size_t j = 0; j < n && !r; j++) {
					if (p[j] == '%' && j + 2 < n && hexval(p[j + 1]) >= 0 &&
					    hexval(p[j + 2]) >= 0) {
						r = msv_buf_addc(&raw, (char)(hexval(p[j + 1]) << 4 | hexval(p[j + 2])));
						j += 2;
					} else {
						r = msv_buf_addc(&raw, p[j]);
					}
				}
			} else {
				r = unquote(&raw, p, n);
			}
		}
		have = 1;
	} else if (ext.p) {
		const char *p = ext.p;
		size_t n = ext.len;
		const char *a = memchr(p, '\'', n);
		const char *b = a ? memchr(a + 1, '\'', (size_t)(p + n - a - 1)) : NULL;
		if (b) {
			cs = p;
			csl = (size_t)(a - p);
			n -= (size_t)(b + 1 - p);
			p = b + 1;
		}
		for (size_t j = 0; j < n && !r; j++) {
			if (p[j] == '%' && j + 2 < n && hexval(p[j + 1]) >= 0 && hexval(p[j + 2]) >= 0) {
				r = msv_buf_addc(&raw, (char)(hexval(p[j + 1]) << 4 | hexval(p[j + 2])));
				j += 2;
			} else {
				r = msv_buf_addc(&raw, p[j]);
			}
		}
		have = 1;
	} else if (plain.p) {
		r = plain.quoted ? unquote(&raw, plain.p, plain.len) : msv_buf_add(&raw, plain.p, plain.len);
		if (!r) {
			/* RFC 2047 words in a name= (what old clients write). */
			msv_buf d;
			msv_buf_init(&d, len * 4 + 16);
			msv_error e2;
			r = msv_mime_decode_header(&d, raw.data ? raw.data : "", raw.len, &e2);
			if (!r)
				r = msv_buf_add(out, d.data ? d.data : "", d.len);
			msv_buf_free(&d);
			msv_buf_free(&raw);
			if (r)
				return msv_error_set(err, r, MSV_CLASS_LOCAL, "cannot decode a parameter");
			*found = 1;
			return MSV_OK;
		}
		have = 1;
	}
	if (!r && have) {
		if (csl) {
			if (msv__to_utf8(out, cs, csl, raw.data ? raw.data : "", raw.len, &r) != 0)
				r = add_latin1(out, (const unsigned char *)(raw.data ? raw.data : ""), raw.len);
		} else {
			r = add_utf8_lossy(out, raw.data ? raw.data : "", raw.len);
		}
		*found = 1;
	}
	msv_buf_free(&raw);
	if (r)
		return msv_error_set(err, r, MSV_CLASS_LOCAL, "cannot decode a parameter: %s",
		                     msv_strerror(r));
	return MSV_OK;
}

/* ---- bodies ---- */

static msv_result b64_lenient(msv_buf *out, const char *s, size_t n)
{
	unsigned acc = 0, bits = 0;
	char tmp[4096];
	size_t t = 0;
	for (size_t i = 0; i < n; i++) {
		int v = msv_base64_value((unsigned char)s[i]);
		if (v < 0)
			continue; /* RFC 2045 6.8: ignore what is not in the alphabet */
		acc = (acc << 6 | (unsigned)v) & 0xffffff;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			tmp[t++] = (char)(acc >> bits & 0xff);
			if (t == sizeof(tmp)) {
				msv_result r = msv_buf_add(out, tmp, t);
				if (r)
					return r;
				t = 0;
			}
		}
	}
	return msv_buf_add(out, tmp, t);
}

static msv_result qp_decode(msv_buf *out, const char *s, size_t n)
{
	msv_result r = msv_buf_reserve(out, n);
	if (r)
		return r;
	size_t i = 0;
	while (i < n) {
		char c = s[i];
		if (c == '=') {
			/* Soft line break, white space allowed before it (6.7 rule 3). */
			size_t k = i + 1;
			while (k < n && ws(s[k]))
				k++;
			if (k == n) {
				i = n;
				continue;
			}
			if (s[k] == '\r' || s[k] == '\n') {
				i = k + (s[k] == '\r' && k + 1 < n && s[k + 1] == '\n' ? 2 : 1);
				continue;
			}
			if (i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
				out->data[out->len++] = (char)(hexval(s[i + 1]) << 4 | hexval(s[i + 2]));
				i += 3;
				continue;
			}
		}
		if (ws(c)) {
			/* Trailing white space on a line was added in transport: drop it. */
			size_t k = i;
			while (k < n && ws(s[k]))
				k++;
			if (k == n || s[k] == '\r' || s[k] == '\n') {
				i = k;
				continue;
			}
		}
		out->data[out->len++] = c;
		i++;
	}
	out->data[out->len] = '\0';
	return MSV_OK;
}

msv_result msv_mime_decode_body(msv_buf *out, const msv_mime_node *n, msv_error *err)
{
	msv_result r;
	switch (n->encoding) {
	case MSV_MIME_ENC_BASE64:
		r = b64_lenient(out, n->body.p, n->body.len);
		break;
	case MSV_MIME_ENC_QP:
		r = qp_decode(out, n->body.p, n->body.len);
		break;
	default:
		r = msv_buf_add(out, n->body.p, n->body.len);
		break;
	}
	if (r)
		return msv_error_set(err, r, r == MSV_E_NOMEM ? MSV_CLASS_LOCAL : MSV_CLASS_PERMANENT,
		                     "cannot decode a body: %s", msv_strerror(r));
	return MSV_OK;
}
