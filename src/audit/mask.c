/* The masking engine: addresses, card, resident ID and mobile numbers,
 * configured rules (docs/audit.md describes the rules).
 *
 * One pass over the text, left to right.  An '@' is the only thing that
 * makes the scanner look back (over the local part, never past what it
 * has already emitted) and forward (over the domain), so every byte is
 * looked at a bounded number of times.  The text between addresses goes
 * to the digit rules, which take each maximal run of digits (groups joined
 * by single spaces or dashes) whole.  Configured rules then run on the
 * masked text, a regexec per match, never inside a pseudonym.
 *
 * Masking must be idempotent (mask(mask(x)) == mask(x)): a log line
 * masked twice, by missived and again by an exporter, must not change,
 * and a re-scan of the output must find nothing to mask.  One pass is
 * enough except when what it kept can form something new: the digits a
 * rule keeps (a phone's first 3 and last 4) joining neighbouring groups of
 * the same run into a card number, or a configured rule's '*' completing
 * an address.  Only then the piece is masked again, until nothing changes
 * (MASK_ROUNDS at most: each round only ever masks more). */
#include <regex.h>
#include <stdio.h>
#include <string.h>

#include "audit/audit_int.h"

/* Rounds until a piece is stable.  Every round that changes something
 * turns characters into '*' or removes digits, so this converges; real
 * text settles in two.  The cap bounds the work on crafted input. */
#define MASK_ROUNDS 8
/* Working buffers of one piece: 64 KiB of input, an address of 5 bytes
 * ("a@b.c") becomes 18 ("u-" + 12 + "@b.c"). */
#define MASK_WORK_MAX (8u * MSV__MASK_PIECE_MAX)

typedef struct span {
	size_t a, b;
} span;

/* State of one msv_mask call or stream: reused across pieces. */
typedef struct mask_work {
	const msv_masker *m;
	msv__akey_ctx *ctx; /* made at the first address */
	msv_buf cur, next;
	span *spans;        /* pseudonyms in next: configured rules skip them */
	size_t nspans, spancap;
	int again;          /* this round made something the next may mask */
} mask_work;

struct msv_mask_stream {
	mask_work w;
	msv_buf pending;
};

static void work_init(mask_work *w, const msv_masker *m)
{
	memset(w, 0, sizeof(*w));
	w->m = m;
	msv_buf_init(&w->cur, MASK_WORK_MAX);
	msv_buf_init(&w->next, MASK_WORK_MAX);
}

static void work_free(mask_work *w)
{
	msv__akey_ctx_free(w->ctx);
	msv_buf_free(&w->cur);
	msv_buf_free(&w->next);
	msv_free(w->spans);
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int is_alnum(char c)
{
	return is_digit(c) || is_alpha(c);
}

static int is_high(char c)
{
	return (unsigned char)c >= 0x80;
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

/* ---- digit rules ---- */

/* Luhn over n digits (the last one the check digit). */
static int luhn_ok(const char *d, size_t n)
{
	unsigned sum = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned v = (unsigned)(d[n - 1 - i] - '0');
		if (i & 1) {
			v *= 2;
			if (v > 9)
				v -= 9;
		}
		sum += v;
	}
	return sum % 10 == 0;
}

/* GB 11643: 17 digits and an ISO 7064 MOD 11-2 check character. */
static int id_ok(const char *s)
{
	static const unsigned w[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
	unsigned sum = 0;
	for (int i = 0; i < 17; i++)
		sum += (unsigned)(s[i] - '0') * w[i];
	char want = "10X98765432"[sum % 11];
	char got = s[17] == 'x' ? 'X' : s[17];
	return got == want;
}

/* Masks one group of digits in[p..ge) (no digit on either side) into rep;
 * an ID's X must lie before lim (the end of the text being masked).
 * Returns the end of what was masked (past an ID's X), or 0 for none. */
static size_t mask_group(const char *in, size_t n, size_t lim, size_t p, size_t ge, char *rep,
                         size_t *replen)
{
	size_t len = ge - p;
	char prev = p ? in[p - 1] : ' ';
	char next = ge < n ? in[ge] : ' ';
	/* Resident ID first: an 18-digit run can pass Luhn too. */
	if (len == 18 || (len == 17 && ge < lim && (next == 'X' || next == 'x'))) {
		size_t end = p + 18;
		char after = end < n ? in[end] : ' ';
		if (!is_alnum(prev) && !is_alnum(after) && id_ok(in + p)) {
			memcpy(rep, in + p, 6);
			memset(rep + 6, '*', 11);
			rep[17] = in[end - 1];
			*replen = 18;
			return end;
		}
	}
	if (len >= 13 && len <= 19 && luhn_ok(in + p, len)) {
		memcpy(rep, "****", 4);
		memcpy(rep + 4, in + ge - 4, 4);
		*replen = 8;
		return ge;
	}
	if (len == 11 && in[p] == '1' && in[p + 1] >= '3' && in[p + 1] <= '9') {
		memcpy(rep, in + p, 3);
		memcpy(rep + 3, "****", 4);
		memcpy(rep + 7, in + p + 7, 4);
		*replen = 11;
		return ge;
	}
	return 0;
}

static int is_sep(char c)
{
	return c == ' ' || c == '-';
}

/* The run at in[s]: digit groups joined by single separators.  Returns
 * its end; *groups and *ndig (all digits) say what it holds, the first 19
 * digits are copied to dig. */
static size_t digit_run(const char *in, size_t b, size_t s, size_t *groups, size_t *ndig,
                        char dig[19])
{
	size_t end = s;
	*groups = 0;
	*ndig = 0;
	for (;;) {
		for (; end < b && is_digit(in[end]); end++, (*ndig)++)
			if (*ndig < 19)
				dig[*ndig] = in[end];
		(*groups)++;
		if (end + 1 < b && is_sep(in[end]) && is_digit(in[end + 1])) {
			end++;
			continue;
		}
		return end;
	}
}

static int dom_char(char c);

/* Masking in[a..b) turns what borders its neighbours into '*': an ID
 * number refused for the letter beside it may then qualify, and a domain
 * label refused for the digits at its end may become a top-level one. */
static int touches_alnum(const char *in, size_t n, size_t a, size_t b)
{
	return (a && dom_char(in[a - 1])) || (b < n && dom_char(in[b]));
}

/* Text between addresses, in[a..b) of a piece of n bytes: copies it to
 * out with the digit rules applied. */
static int is_hex(char c)
{
	return is_digit(c) || (lower(c) >= 'a' && lower(c) <= 'f');
}

/* The end of the identifier around the digit at i, or 0: a word of hex
 * digits with a letter among them, as long as machine identifiers are (a
 * multiple of 8, 16 or more: queue IDs, hashes, tokens), is a name, not a
 * number; a mobile number inside a queue ID must not make its log lines
 * unfindable.  Words that touch an address's region edge (a or b) are
 * not taken. */
static size_t hex_word_end(const char *in, size_t n, size_t a, size_t b, size_t i)
{
	size_t s = i, e = i;
	int letter = 0;
	while (s > a && is_hex(in[s - 1]))
		letter |= !is_digit(in[--s]);
	while (e < b && is_hex(in[e]))
		letter |= !is_digit(in[e++]);
	if (!letter || e - s < 16 || (e - s) % 8 || (s > 0 && (is_alnum(in[s - 1]) || is_high(in[s - 1]))) ||
	    (e < n && (is_alnum(in[e]) || is_high(in[e]))))
		return 0;
	/* Joined to digit groups by a space or dash, it is part of their run. */
	if ((s >= 2 && is_sep(in[s - 1]) && is_digit(in[s - 2])) ||
	    (e + 1 < n && is_sep(in[e]) && is_digit(in[e + 1])))
		return 0;
	return e;
}

static msv_result mask_digits(mask_work *w, const char *in, size_t n, size_t a, size_t b,
                              msv_buf *out)
{
	size_t copied = a, i = a;
	msv_result r;
	while (i < b) {
		if (!is_digit(in[i])) {
			i++;
			continue;
		}
		size_t id_end = hex_word_end(in, n, a, b, i);
		if (id_end) {
			i = id_end;
			continue;
		}
		size_t groups, ndig;
		char dig[19], rep[19];
		size_t end = digit_run(in, b, i, &groups, &ndig, dig);
		/* A card written in groups: the run as a whole. */
		if (groups > 1 && ndig >= 13 && ndig <= 19 && luhn_ok(dig, ndig)) {
			if ((r = msv_buf_add(out, in + copied, i - copied)) ||
			    (r = msv_buf_add(out, "****", 4)) || (r = msv_buf_add(out, dig + ndig - 4, 4)))
				return r;
			w->again |= touches_alnum(in, n, i, end);
			copied = i = end;
			continue;
		}
		for (size_t p = i; p < end;) {
			size_t ge = p, replen = 0, done;
			while (ge < end && is_digit(in[ge]))
				ge++;
			if ((done = mask_group(in, n, b, p, ge, rep, &replen))) {
				if ((r = msv_buf_add(out, in + copied, p - copied)) ||
				    (r = msv_buf_add(out, rep, replen)))
					return r;
				copied = done;
				/* What it kept may join the run's other groups; a
				 * letter beside it may now border a '*' instead. */
				w->again |= groups > 1 || touches_alnum(in, n, p, done);
			}
			p = (done > ge ? done : ge) + 1; /* past the separator */
		}
		i = end > copied ? end : copied;
	}
	return msv_buf_add(out, in + copied, b - copied);
}

/* ---- addresses ---- */

/* The local part: letters, digits and ". _ % + - = * ~" (and UTF-8).
 * Narrower than RFC 5322 atext on purpose: ' { } | / ? & ! # $ ` wrap
 * or join addresses in logs, URLs and JSON far more often than they
 * appear in them. */
static int local_char(char c)
{
	return is_alnum(c) || is_high(c) || (c && strchr("._%+-=*~", c));
}

static int dom_char(char c)
{
	return is_alnum(c) || is_high(c) || c == '-';
}

/* A top-level label: letters (or UTF-8), two at least, or xn--. */
static int tld_ok(const char *s, size_t n)
{
	if (n >= 5 && lower(s[0]) == 'x' && lower(s[1]) == 'n' && s[2] == '-' && s[3] == '-')
		return 1;
	if (n < 2)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!is_alpha(s[i]) && !is_high(s[i]))
			return 0;
	return 1;
}

/* The length of the domain at s: the longest run of two or more labels
 * that ends in a top-level label; 0 for none. */
static size_t domain_len(const char *s, size_t n)
{
	size_t p = 0, best = 0;
	for (int labels = 1;; labels++) {
		size_t ls = p;
		while (p < n && dom_char(s[p]))
			p++;
		if (p == ls)
			break;
		if (labels >= 2 && tld_ok(s + ls, p - ls))
			best = p;
		if (p + 1 < n && s[p] == '.' && dom_char(s[p + 1]))
			p++;
		else
			break;
	}
	return best;
}

/* "to=bob@x" in a log line: a leading "key=" is not part of the
 * address.  Returns where the address starts. */
static size_t skip_key(const char *in, size_t ls, size_t at)
{
	size_t p = ls;
	while (p < at && (is_alpha(in[p]) || in[p] == '_'))
		p++;
	return p > ls && p + 1 < at && in[p] == '=' ? p + 1 : ls;
}

static size_t skip_punct(const char *in, size_t ls, size_t at)
{
	while (ls < at && !is_alnum(in[ls]) && !is_high(in[ls]))
		ls++;
	return ls;
}

/* Already a pseudonym: "u-" and 12 lowercase hex digits, or 12 '*'. */
static int is_pseudonym(const char *s, size_t n)
{
	if (n != 14 || s[0] != 'u' || s[1] != '-')
		return 0;
	int stars = 0, hex = 0;
	for (size_t i = 2; i < 14; i++) {
		stars += s[i] == '*';
		hex += is_digit(s[i]) || (s[i] >= 'a' && s[i] <= 'f');
	}
	return stars == 12 || hex == 12;
}

static msv_result add_span(mask_work *w, size_t a, size_t b)
{
	if (w->nspans == w->spancap) {
		size_t cap = w->spancap ? 2 * w->spancap : 16, bytes;
		if (msv_mul_size(&bytes, cap, sizeof(span)))
			return MSV_E_NOMEM;
		span *p = msv_realloc(w->spans, bytes);
		if (!p)
			return MSV_E_NOMEM;
		w->spans = p;
		w->spancap = cap;
	}
	w->spans[w->nspans++] = (span){a, b};
	return MSV_OK;
}

/* Appends the pseudonym of addr (n bytes, local@domain, '@' at at). */
static msv_result emit_address(mask_work *w, const char *addr, size_t n, size_t at, msv_buf *out)
{
	char hex[12];
	msv_result r;
	size_t start = out->len;
	if (is_pseudonym(addr, at)) {
		if ((r = msv_buf_add(out, addr, n)))
			return r;
		return add_span(w, start, out->len);
	}
	if (!w->m->keys) {
		memset(hex, '*', sizeof(hex));
	} else {
		if (!w->ctx && !(w->ctx = msv__akey_ctx_new(w->m->keys)))
			return MSV_E_NOMEM;
		if (msv__audit_keys_pseudonym(w->m->keys, w->ctx, addr, n, hex))
			return MSV_E_SYSTEM;
	}
	if ((r = msv_buf_add(out, "u-", 2)) || (r = msv_buf_add(out, hex, 12)) ||
	    (r = msv_buf_reserve(out, n - at)))
		return r;
	for (size_t i = at; i < n; i++)
		out->data[out->len++] = lower(addr[i]);
	out->data[out->len] = '\0';
	return add_span(w, start, out->len);
}

/* One round of the built-in rules over in[0..n) into out. */
static msv_result mask_builtin(mask_work *w, const char *in, size_t n, msv_buf *out)
{
	size_t e = 0; /* emitted up to here */
	msv_result r;
	for (size_t i = 0; i < n; i++) {
		if (in[i] != '@')
			continue;
		size_t ls = i;
		while (ls > e && local_char(in[ls - 1]))
			ls--;
		/* An address starts with a letter or digit: "=bob@x", ".bob@x" in
		 * text keep their "=" and ".", and a pseudonym is never glued to
		 * the domain before it (which would hide both from a second pass). */
		ls = skip_punct(in, ls, i);
		ls = skip_punct(in, skip_key(in, ls, i), i);
		if (ls == i)
			continue;
		size_t dl = domain_len(in + i + 1, n - i - 1);
		if (!dl)
			continue;
		if ((r = mask_digits(w, in, n, e, ls, out)) ||
		    (r = emit_address(w, in + ls, i + 1 + dl - ls, i - ls, out)))
			return r;
		e = i + 1 + dl;
		i = e - 1;
	}
	return mask_digits(w, in, n, e, n, out);
}

/* ---- configured rules ---- */

/* Replaces m[so..eo) by '*' but for its first keep_pre and last keep_suf
 * characters (UTF-8 sequences count as one and are never cut). */
static int star_match(const mask_rule *rule, char *t, size_t so, size_t eo)
{
	size_t ps = so, pe = eo;
	for (unsigned k = 0; k < rule->keep_pre && ps < eo; k++)
		for (ps++; ps < eo && ((unsigned char)t[ps] & 0xc0) == 0x80; ps++)
			;
	for (unsigned k = 0; k < rule->keep_suf && pe > ps; k++)
		for (pe--; pe > ps && ((unsigned char)t[pe] & 0xc0) == 0x80; pe--)
			;
	int changed = 0;
	for (size_t i = ps; i < pe; i++) {
		changed |= t[i] != '*';
		t[i] = '*';
	}
	return changed;
}

/* One rule over t[a..z) of a piece of len bytes: a regexec from the end
 * of each match onward, so the calls are linear in the matches. */
static int apply_rule(const mask_rule *rule, char *t, size_t len, size_t a, size_t z)
{
	int changed = 0;
	for (size_t pos = a; pos < z;) {
		regmatch_t mt[1];
		mt[0].rm_so = (regoff_t)pos;
		mt[0].rm_eo = (regoff_t)z;
		int flags = REG_STARTEND | (pos ? REG_NOTBOL : 0) | (z < len ? REG_NOTEOL : 0);
		if (regexec(&rule->re, t, 1, mt, flags))
			break;
		size_t so = (size_t)mt[0].rm_so, eo = (size_t)mt[0].rm_eo;
		if (eo == so) { /* an empty match: step over one byte */
			pos = so + 1;
			continue;
		}
		changed |= star_match(rule, t, so, eo);
		pos = eo;
	}
	return changed;
}

/* The configured rules over the masked piece, between its pseudonyms. */
static void mask_rules(mask_work *w, msv_buf *b)
{
	for (size_t r = 0; r < w->m->nrules; r++) {
		size_t a = 0;
		for (size_t s = 0; s <= w->nspans; s++) {
			size_t z = s < w->nspans ? w->spans[s].a : b->len;
			if (apply_rule(&w->m->rules[r], b->data, b->len, a, z))
				w->again = 1;
			if (s < w->nspans)
				a = w->spans[s].b;
		}
	}
}

/* One piece (no newline) to out: rounds until stable. */
static msv_result mask_piece(mask_work *w, const char *in, size_t n, msv_buf *out)
{
	const char *src = in;
	size_t len = n;
	msv_result r;
	for (int round = 0; round < MASK_ROUNDS; round++) {
		msv_buf_reset(&w->next);
		w->nspans = 0;
		w->again = 0;
		if ((r = msv_buf_reserve(&w->next, len)) || (r = mask_builtin(w, src, len, &w->next)))
			return r;
		if (w->m->nrules)
			mask_rules(w, &w->next);
		msv_buf t = w->cur;
		w->cur = w->next;
		w->next = t;
		src = w->cur.data;
		len = w->cur.len;
		if (!w->again)
			break;
	}
	return msv_buf_add(out, src, len);
}

/* A byte that no address, pseudonym or digit group (digits joined by
 * single spaces or dashes) contains: a cut after it splits nothing a rule
 * looks at.  A cut inside an address would leave the start of its local
 * part unmasked. */
static int cuts_nothing(char c)
{
	return !is_alnum(c) && !is_high(c) && !strchr(".-_%+=*~@ ", c);
}

/* A space between two digits may join the groups of a card number. */
static int space_cuts_nothing(const char *s, size_t i)
{
	return s[i - 1] == ' ' && !(i >= 2 && is_digit(s[i - 2]) && is_digit(s[i]));
}

/* The length of the next piece of s[0..avail): up to the newline, or, for
 * a line longer than MSV__MASK_PIECE_MAX, a piece of it cut after the
 * last byte that splits nothing (a comma, a bracket, ...), else after its
 * last space outside a digit run, else at MSV__MASK_PIECE_MAX.  0 with
 * *more set: the stream needs more input to know. */
static size_t piece_len(const char *s, size_t avail, int final, int *more)
{
	size_t lim = avail < MSV__MASK_PIECE_MAX + 1 ? avail : MSV__MASK_PIECE_MAX + 1;
	const char *nl = memchr(s, '\n', lim);
	*more = 0;
	if (nl)
		return (size_t)(nl - s);
	if (avail <= MSV__MASK_PIECE_MAX) {
		*more = !final;
		return final ? avail : 0;
	}
	for (size_t i = MSV__MASK_PIECE_MAX; i > 0; i--)
		if (cuts_nothing(s[i - 1]))
			return i;
	for (size_t i = MSV__MASK_PIECE_MAX; i > 0; i--)
		if (space_cuts_nothing(s, i))
			return i;
	return MSV__MASK_PIECE_MAX;
}

/* Masks the pieces of s[0..n) into out; *used: how much was consumed. */
static msv_result mask_pieces(mask_work *w, const char *s, size_t n, int final, msv_buf *out,
                              size_t *used)
{
	size_t p = 0;
	msv_result r = MSV_OK;
	while (p < n) {
		int more;
		size_t len = piece_len(s + p, n - p, final, &more);
		if (more)
			break;
		if ((r = mask_piece(w, s + p, len, out)))
			break;
		p += len;
		if (p < n && s[p] == '\n') {
			if ((r = msv_buf_addc(out, '\n')))
				break;
			p++;
		}
	}
	*used = p;
	return r;
}

msv_result msv_mask(const msv_masker *m, const char *in, size_t len, msv_buf *out)
{
	mask_work w;
	size_t used;
	work_init(&w, m);
	msv_result r = mask_pieces(&w, in, len, 1, out, &used);
	work_free(&w);
	return r;
}

msv_result msv_mask_address(const msv_masker *m, const char *addr, msv_buf *out)
{
	const char *at = strrchr(addr, '@');
	size_t n = strlen(addr);
	if (!at || at == addr || !at[1])
		return MSV_E_BAD_ADDRESS;
	mask_work w;
	work_init(&w, m);
	msv_result r = emit_address(&w, addr, n, (size_t)(at - addr), out);
	work_free(&w);
	return r;
}

/* ---- streaming ---- */

msv_result msv_mask_stream_new(msv_mask_stream **out, const msv_masker *m)
{
	msv_mask_stream *s = msv_calloc(1, sizeof(*s));
	*out = s;
	if (!s)
		return MSV_E_NOMEM;
	work_init(&s->w, m);
	/* At most a piece and the next chunk fed (see feed). */
	msv_buf_init(&s->pending, 2 * (MSV__MASK_PIECE_MAX + 1));
	return MSV_OK;
}

msv_result msv_mask_stream_feed(msv_mask_stream *s, const char *in, size_t len, msv_buf *out)
{
	while (len) {
		/* Chunks of a piece's size keep pending within its cap. */
		size_t take = len < MSV__MASK_PIECE_MAX + 1 ? len : MSV__MASK_PIECE_MAX + 1;
		size_t used;
		msv_result r = msv_buf_add(&s->pending, in, take);
		if (r)
			return r;
		/* Only a newline or a full piece makes work: a long line fed a
		 * byte at a time must not be searched again at every byte. */
		int ready = memchr(in, '\n', take) || s->pending.len > MSV__MASK_PIECE_MAX;
		in += take;
		len -= take;
		if (!ready)
			continue;
		r = mask_pieces(&s->w, s->pending.data, s->pending.len, 0, out, &used);
		if (used)
			msv_buf_consume(&s->pending, used);
		if (r)
			return r;
	}
	return MSV_OK;
}

msv_result msv_mask_stream_finish(msv_mask_stream *s, msv_buf *out)
{
	size_t used;
	msv_result r = mask_pieces(&s->w, s->pending.data, s->pending.len, 1, out, &used);
	msv_buf_consume(&s->pending, used);
	return r;
}

void msv_mask_stream_free(msv_mask_stream *s)
{
	if (!s)
		return;
	work_free(&s->w);
	msv_buf_free(&s->pending);
	msv_free(s);
}
