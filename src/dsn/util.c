/* Small text helpers for the DSN readers: case-insensitive search,
 * addresses, status and reply codes in free text, line ends, HTML. */
#include <string.h>

#include "dsn/dsn_int.h"

int msv__dsn_lower(int ch)
{
	return ch >= 'A' && ch <= 'Z' ? ch + 32 : ch;
}

int msv__dsn_ci_eq(const char *a, size_t an, const char *b)
{
	size_t bn = strlen(b);
	if (an != bn)
		return 0;
	for (size_t i = 0; i < an; i++)
		if (msv__dsn_lower((unsigned char)a[i]) != msv__dsn_lower((unsigned char)b[i]))
			return 0;
	return 1;
}

int msv__dsn_ci_prefix(const char *a, size_t an, const char *b)
{
	size_t bn = strlen(b);
	if (an < bn)
		return 0;
	for (size_t i = 0; i < bn; i++)
		if (msv__dsn_lower((unsigned char)a[i]) != msv__dsn_lower((unsigned char)b[i]))
			return 0;
	return 1;
}

long msv__dsn_ci_find(const char *s, size_t n, const char *needle)
{
	size_t m = strlen(needle);
	if (!m)
		return 0;
	if (m > n)
		return -1;
	/* memchr for the first octet in either case, then compare. */
	int lo = msv__dsn_lower((unsigned char)needle[0]);
	int up = lo >= 'a' && lo <= 'z' ? lo - 32 : lo;
	const char *p = s, *end = s + (n - m) + 1;
	while (p < end) {
		const char *a = memchr(p, lo, (size_t)(end - p));
		const char *b = up != lo ? memchr(p, up, (size_t)((a ? a : end) - p)) : NULL;
		const char *q = b ? b : a;
		if (!q)
			return -1;
		size_t k = 1;
		while (k < m && msv__dsn_lower((unsigned char)q[k]) == msv__dsn_lower((unsigned char)needle[k]))
			k++;
		if (k == m)
			return (long)(q - s);
		p = q + 1;
	}
	return -1;
}

int msv__dsn_ci_find_any(const char *s, size_t n, const char *const *needles, size_t nw)
{
	for (size_t i = 0; i < nw; i++)
		if (msv__dsn_ci_find(s, n, needles[i]) >= 0)
			return 1;
	return 0;
}

/* Octets of a local part we accept in free text: atext (RFC 5322 3.2.3)
 * and '.', plus UTF-8 (RFC 6531). */
static int local_char(unsigned char ch)
{
	if (ch >= 0x80)
		return 1;
	if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
		return 1;
	return ch && strchr("!#$%&'*+-/=?^_`{|}~.", ch) != NULL;
}

static int domain_char(unsigned char ch)
{
	return ch >= 0x80 || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_';
}

int msv__dsn_find_addr(const char *s, size_t n, size_t from, size_t *a0, size_t *a1)
{
	for (size_t i = from; i < n; i++) {
		if (s[i] != '@')
			continue;
		size_t l = i;
		while (l > from && local_char((unsigned char)s[l - 1]))
			l--;
		/* A quoted local part ("a b"@x) is rare in bounces; accept the
		 * simple form only. */
		while (l < i && (s[l] == '.' || s[l] == '\'' || s[l] == '`' || s[l] == '{' || s[l] == '|'))
			l++;
		size_t r = i + 1;
		if (r < n && s[r] == '[') { /* address literal */
			size_t k = r + 1;
			while (k < n && k - r < 64 && s[k] != ']' && s[k] != '\n')
				k++;
			if (k < n && s[k] == ']')
				r = k + 1;
		} else {
			while (r < n && domain_char((unsigned char)s[r]))
				r++;
			while (r > i + 1 && (s[r - 1] == '.' || s[r - 1] == '-'))
				r--;
		}
		if (l == i || r <= i + 1)
			continue;
		/* Needs a dot in the domain, or be a literal; "user@localhost"
		 * style names are accepted too when the domain is a word. */
		*a0 = l;
		*a1 = r;
		return 1;
	}
	return 0;
}

int msv__dsn_is_addr(const char *s, size_t n, size_t *a0, size_t *a1)
{
	size_t i = 0, e = n;
	while (i < e && strchr(" \t<\"'(", s[i]))
		i++;
	while (e > i && strchr(" \t>\"':,;.)", s[e - 1]))
		e--;
	if (i >= e)
		return 0;
	size_t x0, x1;
	if (!msv__dsn_find_addr(s, e, i, &x0, &x1))
		return 0;
	if (x0 != i || x1 != e)
		return 0;
	/* mailto:a@b */
	*a0 = x0;
	*a1 = x1;
	return 1;
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Reads "d.d{1,3}.d{1,3}" at s[i], the class in 245: returns its end or 0. */
static size_t status_at(const char *s, size_t n, size_t i)
{
	if (i >= n || !(s[i] == '2' || s[i] == '4' || s[i] == '5'))
		return 0;
	size_t k = i + 1;
	if (k >= n || s[k] != '.')
		return 0;
	k++;
	size_t d = 0;
	while (k < n && is_digit(s[k]) && d < 4) {
		k++;
		d++;
	}
	if (!d || d > 3 || k >= n || s[k] != '.')
		return 0;
	k++;
	d = 0;
	while (k < n && is_digit(s[k]) && d < 4) {
		k++;
		d++;
	}
	if (!d || d > 3)
		return 0;
	return k;
}

long msv__dsn_find_status(const char *s, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++) {
		size_t e = status_at(s, n, i);
		if (!e)
			continue;
		/* Not part of a longer dotted number (an IP address, a version). */
		if (e < n && (is_digit(s[e]) || (s[e] == '.' && e + 1 < n && is_digit(s[e + 1]))))
			continue;
		if (i && (s[i - 1] == '.' || is_digit(s[i - 1])))
			continue;
		size_t len = e - i;
		if (len >= MSV_DSN_STATUS_MAX)
			continue;
		memcpy(out, s + i, len);
		out[len] = '\0';
		return (long)i;
	}
	return -1;
}

int msv__dsn_find_reply_code(const char *s, size_t n)
{
	for (size_t i = 0; i + 3 <= n; i++) {
		if (!(s[i] == '2' || s[i] == '4' || s[i] == '5') || !is_digit(s[i + 1]) ||
		    !is_digit(s[i + 2]))
			continue;
		if (i && (is_digit(s[i - 1]) || s[i - 1] == '.' || s[i - 1] == '-' || s[i - 1] == ':' ||
		          s[i - 1] == '/' || s[i - 1] == '#' || (s[i - 1] >= 'A' && s[i - 1] <= 'z')))
			continue;
		size_t e = i + 3;
		if (e < n && !(s[e] == ' ' || s[e] == '-' || s[e] == '\n' || s[e] == '\t' ||
		               s[e] == ']' || s[e] == ')' || s[e] == ','))
			continue;
		/* RFC 5321 4.2: the second digit is 0..5. */
		if (s[i + 1] > '5')
			continue;
		int code = (s[i] - '0') * 100 + (s[i + 1] - '0') * 10 + (s[i + 2] - '0');
		if (code < 200 || code > 559)
			continue;
		return code;
	}
	return 0;
}

int msv__dsn_status_norm(const char *s, size_t n, char *out)
{
	size_t i = 0;
	while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
		i++;
	size_t e = status_at(s, n, i);
	if (!e || e - i >= MSV_DSN_STATUS_MAX)
		return 0;
	if (e < n && (is_digit(s[e]) || s[e] == '.'))
		return 0;
	memcpy(out, s + i, e - i);
	out[e - i] = '\0';
	return 1;
}

msv_result msv__dsn_add_lf(msv_buf *out, const char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		const char *cr = memchr(s + i, '\r', n - i);
		size_t run = cr ? (size_t)(cr - (s + i)) : n - i;
		msv_result r = msv_buf_add(out, s + i, run);
		if (r)
			return r;
		i += run;
		if (i < n) {
			r = msv_buf_addc(out, '\n');
			if (r)
				return r;
			i++;
			if (i < n && s[i] == '\n')
				i++;
		}
	}
	return MSV_OK;
}

msv_result msv__dsn_add_html_text(msv_buf *out, const char *s, size_t n)
{
	static const struct {
		const char *ent;
		const char *txt;
	} ents[] = {{"&lt;", "<"},  {"&gt;", ">"},   {"&amp;", "&"},  {"&quot;", "\""},
	            {"&#39;", "'"}, {"&nbsp;", " "}, {"&apos;", "'"}, {"&#160;", " "}};
	size_t i = 0;
	msv_result r = MSV_OK;
	int skip = 0; /* inside <style> or <script> */
	while (i < n && !r) {
		char ch = s[i];
		if (ch == '<') {
			size_t k = i + 1;
			while (k < n && s[k] != '>')
				k++;
			size_t tl = k - i - 1;
			const char *tag = s + i + 1;
			if (msv__dsn_ci_prefix(tag, tl, "style") || msv__dsn_ci_prefix(tag, tl, "script"))
				skip = 1;
			else if (msv__dsn_ci_prefix(tag, tl, "/style") || msv__dsn_ci_prefix(tag, tl, "/script"))
				skip = 0;
			else if (msv__dsn_ci_prefix(tag, tl, "br") || msv__dsn_ci_prefix(tag, tl, "p") ||
			         msv__dsn_ci_prefix(tag, tl, "/p") || msv__dsn_ci_prefix(tag, tl, "div") ||
			         msv__dsn_ci_prefix(tag, tl, "/div") || msv__dsn_ci_prefix(tag, tl, "tr") ||
			         msv__dsn_ci_prefix(tag, tl, "/tr") || msv__dsn_ci_prefix(tag, tl, "li") ||
			         msv__dsn_ci_prefix(tag, tl, "/table") || msv__dsn_ci_prefix(tag, tl, "h"))
				r = msv_buf_addc(out, '\n');
			else if (msv__dsn_ci_prefix(tag, tl, "td") || msv__dsn_ci_prefix(tag, tl, "/td"))
				r = msv_buf_addc(out, ' ');
			i = k < n ? k + 1 : n;
			continue;
		}
		if (skip) {
			i++;
			continue;
		}
		if (ch == '&') {
			size_t e;
			for (e = 0; e < sizeof(ents) / sizeof(ents[0]); e++) {
				size_t el = strlen(ents[e].ent);
				if (n - i >= el && msv__dsn_ci_prefix(s + i, n - i, ents[e].ent)) {
					r = msv_buf_addstr(out, ents[e].txt);
					i += el;
					break;
				}
			}
			if (e < sizeof(ents) / sizeof(ents[0]))
				continue;
		}
		if (ch == '\r') {
			r = msv_buf_addc(out, '\n');
			i++;
			if (i < n && s[i] == '\n')
				i++;
			continue;
		}
		r = msv_buf_addc(out, ch);
		i++;
	}
	return r;
}

/* ---- RFC 5321 mailboxes in report fields ---- */

/* atext (RFC 5322 3.2.3), with UTF-8 (RFC 6531 3.3). */
static int atext(unsigned char ch)
{
	return ch >= 0x80 || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9') || (ch && strchr("!#$%&'*+-/=?^_`{|}~", ch));
}

/* A dot-atom: atoms of atext joined by single dots. */
static int dot_atom(const char *s, size_t n)
{
	if (!n || s[0] == '.' || s[n - 1] == '.')
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '.' ? i + 1 < n && s[i + 1] == '.' : !atext((unsigned char)s[i]))
			return 0;
	}
	return 1;
}

/* A domain an Internet mailbox can have: an address literal, or at least
 * two labels of letters, digits, '-', '_' or UTF-8 (a routing name such
 * as "ims-ms-daemon" or "localhost" has one label: it is no Internet
 * domain). */
static int inet_domain(const char *s, size_t n)
{
	if (n >= 3 && s[0] == '[' && s[n - 1] == ']')
		return 1;
	size_t labels = 0, len = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i == n || s[i] == '.') {
			if (!len || len > 63)
				return 0;
			labels++;
			len = 0;
			continue;
		}
		unsigned char ch = (unsigned char)s[i];
		if (!(ch >= 0x80 || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
			return 0;
		len++;
	}
	return labels >= 2;
}

int msv__dsn_addr_type(const char *s, size_t n, size_t *tl)
{
	const char *semi = memchr(s, ';', n);
	*tl = 0;
	if (!semi)
		return DSN_ADDR_UNTYPED;
	size_t k = (size_t)(semi - s);
	for (size_t i = 0; i < k; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		      ch == '-' || ch == '_' || ch == ' ' || ch == '\t'))
			return DSN_ADDR_UNTYPED; /* the ';' is inside the address */
	}
	*tl = k + 1;
	size_t a = 0, e = k;
	while (a < e && (s[a] == ' ' || s[a] == '\t'))
		a++;
	while (e > a && (s[e - 1] == ' ' || s[e - 1] == '\t'))
		e--;
	/* RFC 3464 2.3.2 rfc822, RFC 6533 3 utf-8; "smtp" and "internet"
	 * are what some gateways write for the same thing. */
	if (msv__dsn_ci_eq(s + a, e - a, "rfc822") || msv__dsn_ci_eq(s + a, e - a, "utf-8") ||
	    msv__dsn_ci_eq(s + a, e - a, "utf8") || msv__dsn_ci_eq(s + a, e - a, "smtp") ||
	    msv__dsn_ci_eq(s + a, e - a, "internet"))
		return DSN_ADDR_INTERNET;
	return DSN_ADDR_OTHER;
}

msv_result msv__dsn_mailbox(msv_buf *out, int *ok, const char *s, size_t n)
{
	*ok = 0;
	size_t tl;
	if (msv__dsn_addr_type(s, n, &tl) == DSN_ADDR_OTHER)
		return MSV_OK;
	s += tl;
	n -= tl;
	size_t i = 0, e = n;
	while (i < e && (s[i] == ' ' || s[i] == '\t'))
		i++;
	while (e > i && strchr(" \t,;", s[e - 1]))
		e--;
	/* "Name <a@b>", "<a@b>": the bracketed part. */
	const char *lt = memchr(s + i, '<', e - i);
	if (lt) {
		const char *gt = memchr(lt, '>', (size_t)(s + e - lt));
		if (!gt)
			return MSV_OK;
		i = (size_t)(lt - s) + 1;
		e = (size_t)(gt - s);
	}
	/* Gateway prefixes: Exchange's "SMTP:a@b" and "SMTP=a@b", a
	 * repeated "rfc822;", "mailto:". */
	static const char *const pre[] = {"smtp:", "smtp=", "rfc822;", "mailto:"};
	for (size_t k = 0; k < sizeof(pre) / sizeof(pre[0]); k++)
		if (msv__dsn_ci_prefix(s + i, e - i, pre[k])) {
			i += strlen(pre[k]);
			while (i < e && s[i] == ' ')
				i++;
		}
	/* A source route "@relay:a@b" (RFC 5321 4.1.2, obsolete). */
	if (i < e && s[i] == '@') {
		const char *colon = memchr(s + i, ':', e - i);
		if (!colon)
			return MSV_OK;
		i = (size_t)(colon - s) + 1;
	}
	while (e > i && s[e - 1] == '.')
		e--; /* "a@example.com." */
	if (i >= e)
		return MSV_OK;
	/* The domain follows the last '@' (a quoted local part may hold one). */
	size_t at = e;
	while (at > i && s[at - 1] != '@')
		at--;
	if (at <= i + 1 || !inet_domain(s + at, e - at))
		return MSV_OK;
	const char *lp = s + i;
	size_t ll = at - 1 - i;
	msv_buf local;
	msv_buf_init(&local, 1024);
	msv_result r = MSV_OK;
	if (ll >= 2 && lp[0] == '"' && lp[ll - 1] == '"') {
		for (size_t k = 1; k + 1 < ll && !r; k++) {
			if (lp[k] == '\\' && k + 2 < ll)
				k++;
			r = msv_buf_addc(&local, lp[k]);
		}
	} else {
		for (size_t k = 0; k < ll; k++)
			if (!atext((unsigned char)lp[k]) && lp[k] != '.') {
				msv_buf_free(&local);
				return MSV_OK; /* blanks, a program, a file: no mailbox */
			}
		r = msv_buf_add(&local, lp, ll);
	}
	const char *l = local.data ? local.data : "";
	if (!r && !local.len) {
		msv_buf_free(&local);
		return MSV_OK;
	}
	/* The canonical form: a local part that is a dot-atom unquoted
	 * ("jdoe"@x is jdoe@x), any other quoted (RFC 5321 4.1.2). */
	if (!r && dot_atom(l, local.len)) {
		r = msv_buf_add(out, l, local.len);
	} else if (!r) {
		r = msv_buf_addc(out, '"');
		for (size_t k = 0; k < local.len && !r; k++) {
			if (l[k] == '"' || l[k] == '\\')
				r = msv_buf_addc(out, '\\');
			if (!r)
				r = msv_buf_addc(out, l[k]);
		}
		if (!r)
			r = msv_buf_addc(out, '"');
	}
	msv_buf_free(&local);
	if (!r)
		r = msv_buf_add(out, s + at - 1, e - at + 1);
	if (!r)
		*ok = 1;
	return r;
}
