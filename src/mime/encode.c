/*
 * Header encoding: RFC 2047 encoded words, RFC 5322 folding, phrases
 * (display names) and unstructured text (Subject and other fields).
 *
 * RFCs: 5322 2.2.3 and 3.2.5 (folding, phrases), 2047 (encoded words:
 * 2 for the 75-character limit, 5 for where they may appear and the
 * restricted Q alphabet in phrases), 6532 (raw UTF-8 with SMTPUTF8).
 */
#include <string.h>

#include "mime/mime_int.h"

static const char hexd[] = "0123456789ABCDEF";

size_t msv__utf8_seqlen(unsigned char c)
{
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return 2;
	if (c >= 0xe0 && c <= 0xef)
		return 3;
	if (c >= 0xf0 && c <= 0xf4)
		return 4;
	return 1;
}

size_t msv__utf8_check(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;
	while (i < len) {
		unsigned char c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t n = msv__utf8_seqlen(c);
		if (n == 1 || i + n > len)
			return i;
		unsigned char c1 = s[i + 1];
		/* Second-octet ranges of RFC 3629 section 4 exclude overlongs,
		 * surrogates and code points past U+10FFFF. */
		unsigned char lo = 0x80, hi = 0xbf;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
		else if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
		if (c1 < lo || c1 > hi)
			return i;
		for (size_t k = 2; k < n; k++)
			if ((s[i + k] & 0xc0) != 0x80)
				return i;
		i += n;
	}
	return len;
}

int msv__is_atext(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return 1;
	return c && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

int msv__strcaseeq(const char *a, size_t alen, const char *b)
{
	size_t bl = strlen(b);
	if (alen != bl)
		return 0;
	for (size_t i = 0; i < alen; i++) {
		unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
		if (x >= 'A' && x <= 'Z')
			x = (unsigned char)(x + 32);
		if (y >= 'A' && y <= 'Z')
			y = (unsigned char)(y + 32);
		if (x != y)
			return 0;
	}
	return 1;
}

msv_result msv__fold_put(msv__fold *f, const char *ws, size_t wslen, const char *s, size_t len)
{
	msv_result r;
	if (wslen && f->col + wslen + len > MIME_FOLD) {
		/* Fold: the line break goes before the white space, which stays
		 * (RFC 5322 2.2.3: unfolding removes only the CRLF). */
		if ((r = msv_buf_add(f->out, "\r\n", 2)))
			return r;
		f->col = 0;
	}
	if (wslen && (r = msv_buf_add(f->out, ws, wslen)))
		return r;
	if (len && (r = msv_buf_add(f->out, s, len)))
		return r;
	f->col += wslen + len;
	return MSV_OK;
}

/* Q is safe for these everywhere an encoded word may stand, phrases
 * included (RFC 2047 5(3)); everything else is =XX, space is "_". */
static int q_plain(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '!' || c == '*' || c == '+' || c == '-' || c == '/';
}

static size_t q_cost(unsigned char c)
{
	return (q_plain(c) || c == ' ') ? 1 : 3;
}

#define EW_OVERHEAD 12 /* "=?UTF-8?Q?" and "?=" */

/* Longest prefix of text (whole UTF-8 characters) that fits an encoded
 * word of at most max characters, and whether B is the shorter. */
static size_t ew_take(const char *text, size_t len, size_t max, int *use_b)
{
	size_t room = max > EW_OVERHEAD ? max - EW_OVERHEAD : 0;
	size_t i = 0, qlen = 0, nq = 0, nb = 0;
	int q_open = 1, b_open = 1;
	while (i < len && (q_open || b_open)) {
		size_t n = msv__utf8_seqlen((unsigned char)text[i]);
		if (i + n > len)
			n = len - i;
		size_t qc = 0;
		for (size_t k = 0; k < n; k++)
			qc += q_cost((unsigned char)text[i + k]);
		if (q_open && qlen + qc <= room) {
			qlen += qc;
			nq = i + n;
		} else {
			q_open = 0;
		}
		if (b_open && 4 * ((i + n + 2) / 3) <= room)
			nb = i + n;
		else
			b_open = 0;
		i += n;
	}
	if (nb > nq) {
		*use_b = 1;
		return nb;
	}
	if (nq > nb) {
		*use_b = 0;
		return nq;
	}
	/* Same text either way: the shorter word. */
	size_t ql = 0;
	for (size_t k = 0; k < nq; k++)
		ql += q_cost((unsigned char)text[k]);
	*use_b = 4 * ((nb + 2) / 3) < ql;
	return nq;
}

static size_t ew_write(char *dst, const char *text, size_t n, int use_b)
{
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *s = (const unsigned char *)text;
	char *o = dst;
	memcpy(o, use_b ? "=?UTF-8?B?" : "=?UTF-8?Q?", 10);
	o += 10;
	if (use_b) {
		size_t i = 0;
		for (; i + 3 <= n; i += 3) {
			unsigned v = (unsigned)s[i] << 16 | (unsigned)s[i + 1] << 8 | s[i + 2];
			*o++ = b64[v >> 18];
			*o++ = b64[(v >> 12) & 63];
			*o++ = b64[(v >> 6) & 63];
			*o++ = b64[v & 63];
		}
		if (i < n) {
			unsigned v = (unsigned)s[i] << 16 | (i + 1 < n ? (unsigned)s[i + 1] << 8 : 0);
			*o++ = b64[v >> 18];
			*o++ = b64[(v >> 12) & 63];
			*o++ = i + 1 < n ? b64[(v >> 6) & 63] : '=';
			*o++ = '=';
		}
	} else {
		for (size_t i = 0; i < n; i++) {
			if (q_plain(s[i])) {
				*o++ = (char)s[i];
			} else if (s[i] == ' ') {
				*o++ = '_';
			} else {
				*o++ = '=';
				*o++ = hexd[s[i] >> 4];
				*o++ = hexd[s[i] & 15];
			}
		}
	}
	*o++ = '?';
	*o++ = '=';
	return (size_t)(o - dst);
}

msv_result msv__fold_encoded(msv__fold *f, const char *ws, size_t wslen, const char *text,
                             size_t len)
{
	char word[MIME_EW_MAX + 8];
	size_t i = 0;
	int first = 1;
	do {
		const char *sep = first ? ws : " ";
		size_t seplen = first ? wslen : 1;
		/* The first word of a header may start right after "Name: "; if
		 * little room is left there, fold first (with white space to
		 * fold at) or accept a shorter word. */
		size_t avail = MIME_FOLD > f->col + seplen ? MIME_FOLD - f->col - seplen : 0;
		if (avail < EW_OVERHEAD + 16 && seplen) {
			msv_result r = msv_buf_add(f->out, "\r\n", 2);
			if (r)
				return r;
			f->col = 0;
			avail = MIME_FOLD - seplen;
		}
		size_t wmax = f->ew_max && f->ew_max < MIME_EW_MAX ? f->ew_max : MIME_EW_MAX;
		if (avail > wmax)
			avail = wmax;
		if (avail < EW_OVERHEAD + 8)
			avail = EW_OVERHEAD + 8; /* a long field name: the line runs long */
		int use_b;
		size_t n = ew_take(text + i, len - i, avail, &use_b);
		if (!n) /* cannot happen: 8 octets always fit */
			return MSV_E_INVALID;
		size_t wl = ew_write(word, text + i, n, use_b);
		msv_result r = msv__fold_put(f, sep, seplen, word, wl);
		if (r)
			return r;
		i += n;
		first = 0;
	} while (i < len);
	return MSV_OK;
}

static int is_ws(char c)
{
	return c == ' ' || c == '\t';
}

/* A word of unstructured text that cannot stand as is. */
static int word_needs_ew(const char *w, size_t n, unsigned transport)
{
	if (n > MIME_FOLD - 2)
		return 1; /* could never fit a line: encoded words can be split */
	if (n >= 2)
		for (size_t i = 0; i + 1 < n; i++)
			if (w[i] == '=' && w[i + 1] == '?')
				return 1; /* would read as an encoded word */
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)w[i];
		if (c < 0x20 || c == 0x7f)
			return 1;
		if (c >= 0x80 && !(transport & MSV_MIME_SMTPUTF8))
			return 1;
		/* A quote could open a quoted string for a structured-minded
		 * decoder and hide the encoded words after it. */
		if (c == '"')
			return 1;
	}
	return 0;
}

#define MAX_WS_RUN 8

msv_result msv__fold_unstructured(msv__fold *f, const char *text, size_t len, unsigned transport)
{
	/* Words are maximal runs without space or tab.  A word that must be
	 * encoded joins its encoded neighbours into one segment, white space
	 * included (white space between encoded words is dropped by
	 * decoders, RFC 2047 6.2, so it must travel inside them).  Leading or
	 * trailing white space, and long runs of it, also travel encoded:
	 * folding could not keep them. */
	size_t i = 0;
	size_t seg_start = 0;
	int in_seg = 0;
	const char *pend_ws = NULL;
	size_t pend_wslen = 0;
	while (i < len) {
		size_t ws0 = i;
		while (i < len && is_ws(text[i]))
			i++;
		size_t wsn = i - ws0;
		size_t w0 = i;
		while (i < len && !is_ws(text[i]))
			i++;
		size_t wn = i - w0;
		int enc = wn ? word_needs_ew(text + w0, wn, transport) : 1;
		if ((ws0 == 0 && wsn) || wsn > MAX_WS_RUN)
			enc = 1;
		/* The first word cannot fold before it: if it does not fit after
		 * "Name: ", encoded words can be cut to the room left. */
		if (w0 == 0 && f->col + wn > MIME_FOLD)
			enc = 1;
		/* Folded, a word starts its line after its white space. */
		if (wsn + wn > MIME_FOLD)
			enc = 1;
		/* Trailing white space: this word (or the run alone) is encoded. */
		size_t after = i;
		while (after < len && is_ws(text[after]))
			after++;
		int trailing_ws = after == len && after > i;
		int long_run_next = after - i > MAX_WS_RUN;
		if (trailing_ws || long_run_next)
			enc = 1;
		if (enc) {
			if (!in_seg) {
				in_seg = 1;
				/* Leading or long white space goes into the segment. */
				if ((ws0 == 0 && wsn) || wsn > MAX_WS_RUN) {
					seg_start = ws0;
					pend_ws = NULL;
					pend_wslen = 0;
					if (ws0 > 0) { /* keep one space to fold at */
						seg_start = ws0 + 1;
						pend_ws = text + ws0;
						pend_wslen = 1;
					}
				} else {
					seg_start = w0;
					pend_ws = text + ws0;
					pend_wslen = wsn;
				}
			}
			if (trailing_ws)
				i = after; /* take it in */
			continue;
		}
		/* A plain word: first close any open segment. */
		msv_result r;
		if (in_seg) {
			if ((r = msv__fold_encoded(f, pend_ws, pend_wslen, text + seg_start,
			                           ws0 - seg_start)))
				return r;
			in_seg = 0;
		}
		if ((r = msv__fold_put(f, text + ws0, wsn, text + w0, wn)))
			return r;
	}
	if (in_seg)
		return msv__fold_encoded(f, pend_ws, pend_wslen, text + seg_start, len - seg_start);
	return MSV_OK;
}

/* How a word of a display name (a run between single spaces) can be
 * written. */
enum { W_ATOM, W_QUOTE, W_ENC };

static int word_class(const char *w, size_t n, unsigned transport)
{
	int cls = n ? W_ATOM : W_QUOTE;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)w[i];
		if (c >= 0x80 && (transport & MSV_MIME_SMTPUTF8))
			continue; /* RFC 6532 3.2: UTF8-non-ascii is atext and qtext */
		if (c <= 0x20 || c >= 0x7f)
			return W_ENC;
		/* Text that reads as an encoded word must itself be encoded
		 * (RFC 2047 5): decoders, Python's among them, decode such
		 * words even inside quoted strings. */
		if (c == '=' && i + 1 < n && w[i + 1] == '?')
			return W_ENC;
		if (!msv__is_atext(c))
			cls = W_QUOTE;
	}
	return cls;
}

/* A quoted string or an atom longer than this cannot be written within
 * RFC 5322's 998-octet line limit after a field name: encoded words
 * can be split, so such a group is encoded instead. */
#define PHRASE_TOKEN_MAX (MIME_LINE_MAX - 100)

static msv_result put_quoted(msv__fold *f, const char *ws, size_t wsl, const char *s, size_t n)
{
	msv_buf q;
	msv_buf_init(&q, 2 * MIME_LINE_MAX + 4);
	msv_result r = msv_buf_addc(&q, '"');
	for (size_t i = 0; !r && i < n; i++) {
		if (s[i] == '"' || s[i] == '\\')
			r = msv_buf_addc(&q, '\\');
		if (!r)
			r = msv_buf_addc(&q, s[i]);
	}
	if (!r)
		r = msv_buf_addc(&q, '"');
	if (!r)
		r = msv__fold_put(f, ws, wsl, q.data, q.len);
	msv_buf_free(&q);
	return r;
}

/* One group of a phrase: words that must travel in one token (or one
 * run of encoded words) with the spaces between them. */
static msv_result put_group(msv__fold *f, const char *ws, size_t wsl, const char *s, size_t n,
                            int cls)
{
	if (cls != W_ENC && n > PHRASE_TOKEN_MAX)
		cls = W_ENC;
	if (cls == W_ATOM)
		return msv__fold_put(f, ws, wsl, s, n); /* may pass 78 columns: RFC 5322 2.1.1 */
	if (cls == W_QUOTE)
		return put_quoted(f, ws, wsl, s, n);
	return msv__fold_encoded(f, ws, wsl, s, n);
}

/* The tokens of a phrase on their way out: a run of words to encode is
 * held back, as the next word may have to join it. */
typedef struct phrase_out {
	msv__fold *f;
	const char *name;
	const char *ws;
	size_t wsl;
	size_t e0, e1; /* held run of words to encode [e0, e1) */
	int held;
} phrase_out;

static msv_result phrase_put(phrase_out *o, const char *s, size_t n, int cls)
{
	msv_result r = put_group(o->f, o->ws, o->wsl, s, n, cls);
	o->ws = " ";
	o->wsl = 1;
	return r;
}

static msv_result phrase_flush(phrase_out *o)
{
	if (!o->held)
		return MSV_OK;
	o->held = 0;
	return phrase_put(o, o->name + o->e0, o->e1 - o->e0, W_ENC);
}

/* n spaces as a quoted string (n may be 0: ""). */
static msv_result phrase_spaces(phrase_out *o, size_t n)
{
	static const char sp[] = "                                ";
	msv_result r = phrase_flush(o);
	if (r)
		return r;
	if (n < sizeof(sp))
		return phrase_put(o, sp, n, W_QUOTE);
	char *run = msv_malloc(n);
	if (!run)
		return MSV_E_NOMEM;
	memset(run, ' ', n);
	r = phrase_put(o, run, n, W_QUOTE);
	msv_free(run);
	return r;
}

msv_result msv__fold_phrase(msv__fold *f, int lead_ws, const char *name, size_t len,
                            unsigned transport)
{
	phrase_out o = {f, name, lead_ws ? " " : NULL, lead_ws ? 1 : 0, 0, 0, 0};
	msv_result r;
	/* A short name that needs no encoding is one quoted string, as
	 * people write it ("Doe, John"), when it is not plain atoms. */
	int worst = W_ATOM;
	for (size_t i = 0, w0 = 0; i <= len; i++)
		if (i == len || name[i] == ' ') {
			int c = word_class(name + w0, i - w0, transport);
			worst = c > worst ? c : worst;
			w0 = i + 1;
		}
	if (worst == W_QUOTE && len <= MIME_FOLD - 10)
		return put_quoted(f, o.ws, o.wsl, name, len);
	/* Else each word (a run between spaces) is an atom, a quoted string
	 * or encoded words, whichever it needs, so plain text stays plain
	 * however long the name (encoding ASCII just to fold it made some
	 * readers show spaces between the pieces).  One space between words
	 * is the folding white space between their tokens; words to encode
	 * that follow each other share encoded words (RFC 2047 6.2: readers
	 * drop white space between encoded words).  Other spaces (leading,
	 * trailing, runs) travel in quoted strings, which every reader keeps
	 * as they are (Python collapses runs inside encoded words):
	 * "a" + FWS + "  " + FWS + "b" is "a    b". */
	size_t i = 0;
	while (i < len) {
		size_t s0 = i;
		while (i < len && name[i] == ' ')
			i++;
		size_t sp = i - s0;
		size_t w0 = i;
		while (i < len && name[i] != ' ')
			i++;
		size_t wn = i - w0;
		int first = s0 == 0;
		/* Spaces beyond the one folding white space stands for. */
		size_t extra = first || !wn ? sp : sp - 1;
		if (first && !wn) /* nothing but spaces */
			return phrase_spaces(&o, sp);
		if (extra && (r = phrase_spaces(&o, extra - 1)))
			return r;
		if (!wn)
			break;
		int cls = wn > PHRASE_TOKEN_MAX ? W_ENC : word_class(name + w0, wn, transport);
		if (cls == W_ENC) {
			if (o.held && !extra) {
				o.e1 = w0 + wn; /* joins the run, its space inside */
			} else {
				if ((r = phrase_flush(&o)))
					return r;
				o.e0 = w0;
				o.e1 = w0 + wn;
				o.held = 1;
			}
			continue;
		}
		if ((r = phrase_flush(&o)) || (r = phrase_put(&o, name + w0, wn, cls)))
			return r;
	}
	return phrase_flush(&o);
}

msv_result msv_mime_encode_unstructured(msv_buf *out, const char *text, size_t len,
                                        size_t name_len, unsigned transport, msv_error *err)
{
	size_t bad = msv__utf8_check(text, len);
	if (bad < len)
		return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE,
		                     "invalid UTF-8 at octet %zu", bad);
	if (memchr(text, '\r', len) || memchr(text, '\n', len))
		return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE,
		                     "a line break (CR or LF) in a header value");
	msv__fold f = {out, name_len + 2, 0};
	msv_result r = msv__fold_unstructured(&f, text, len, transport);
	if (r)
		return msv_error_set(err, r, MSV_CLASS_LOCAL, "cannot encode the header: %s",
		                     msv_strerror(r));
	return MSV_OK;
}
