/* RFC 5322 address lists (To, Cc, Bcc, From) reduced to their addr-specs:
 * display names, comments, groups and obsolete routes dropped.  Used by
 * `missive sendmail -t` and for the From address of a submission.
 *
 * RFC 5322 3.4 (address, mailbox, group, name-addr, addr-spec), 4.4
 * (obs-local-part, obs-domain, obs-route: CFWS around the dots and the
 * '@' is allowed, so "john . smith @ example.org" is john.smith@example.org),
 * RFC 5321 4.1.2 (a quoted local part that is a dot-atom is the same
 * mailbox unquoted).  Two words with only white space between them are a
 * display name, never an address: "John Smith john@example.org" (no angle
 * brackets) used to become JohnSmithjohn@example.org, a stranger's mailbox;
 * it is refused.  A quoted string is one word, whatever it holds ('@',
 * ',', '<'), so "\"bob@example.com via Lists\" <lists@example.com>" is one
 * mailbox.  Lenient only where nothing can be misread: ';' outside a group
 * separates like ',', and a group may end without its ';'. */
#include <string.h>

#include "mime_int.h"
#include "missive/mime.h"

/* Far above any valid address (254 octets, RFC 5321 4.5.3.1.3), so the
 * check that refuses it says why; it only bounds the buffers. */
#define SPEC_MAX (1u << 16)

enum { T_END, T_ATOM, T_QSTR, T_DLIT, T_SPECIAL };

typedef struct tok {
	int type;
	const char *p; /* the token as written (quotes and brackets included) */
	size_t n;
} tok;

typedef struct lexer {
	const char *v;
	size_t len, i;
	msv_error *err;
} lexer;

/* One addr-spec as it is read, word by word. */
typedef struct spec {
	msv_buf local;  /* the local part: its words' content (quotes undone) joined by dots */
	msv_buf domain; /* the domain as written: atoms and dots, or one literal */
	int quoted;     /* a word of the local part was a quoted string */
	int at;         /* the '@' was read */
	int last;       /* what came last: 0, 'w' a word, '.', '@' */
	int adjacent;   /* two words with nothing but white space between them */
	int bad_domain; /* a quoted string or a misplaced literal in the domain */
	int tokens;
} spec;

static msv_result malformed(msv_error *err, const char *why)
{
	return msv_error_set(err, MSV_E_BAD_ADDRESS, MSV_CLASS_USAGE, "malformed address list: %s", why);
}

static msv_result nomem(msv_error *err)
{
	return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
}

/* A buffer error while reading an address: its cap (SPEC_MAX), or memory. */
static msv_result buf_failed(msv_error *err, msv_result r)
{
	return r == MSV_E_TOO_LARGE ? malformed(err, "an address longer than 64 KiB") : nomem(err);
}

/* atext, and UTF-8 octets (RFC 6532 3.2). */
static int atom_char(unsigned char c)
{
	return c >= 0x80 || msv__is_atext(c);
}

/* Skips white space and comments (nested, with quoted pairs). */
static msv_result skip_cfws(lexer *x)
{
	while (x->i < x->len) {
		char c = x->v[x->i];
		if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
			x->i++;
			continue;
		}
		if (c != '(')
			break;
		int depth = 0;
		for (; x->i < x->len; x->i++) {
			char d = x->v[x->i];
			if (d == '\\' && x->i + 1 < x->len)
				x->i++;
			else if (d == '(')
				depth++;
			else if (d == ')' && --depth == 0)
				break;
		}
		if (x->i == x->len)
			return malformed(x->err, "unterminated comment");
		x->i++;
	}
	return MSV_OK;
}

/* The span from x->i up to the closing octet close (quoted pairs skipped). */
static msv_result delimited(lexer *x, char close, tok *t, const char *what)
{
	size_t j = x->i + 1;
	for (; j < x->len && x->v[j] != close; j++)
		if (x->v[j] == '\\' && j + 1 < x->len)
			j++;
	if (j >= x->len)
		return malformed(x->err, what);
	t->p = x->v + x->i;
	t->n = j + 1 - x->i;
	x->i = j + 1;
	return MSV_OK;
}

static msv_result next(lexer *x, tok *t)
{
	msv_result r = skip_cfws(x);
	if (r)
		return r;
	t->type = T_END;
	t->p = x->v + x->i;
	t->n = 0;
	if (x->i == x->len)
		return MSV_OK;
	char c = x->v[x->i];
	if (c == '"') {
		t->type = T_QSTR;
		return delimited(x, '"', t, "unterminated quoted string");
	}
	if (c == '[') {
		t->type = T_DLIT;
		return delimited(x, ']', t, "unterminated domain literal");
	}
	if (strchr("<>@,;:.", c)) {
		t->type = T_SPECIAL;
		t->n = 1;
		x->i++;
		return MSV_OK;
	}
	if (c == ')')
		return malformed(x->err, "')' without '('");
	if (!atom_char((unsigned char)c))
		return malformed(x->err, c == ']' ? "']' without '['"
		                        : "a character that is not allowed outside quotes");
	size_t j = x->i;
	while (j < x->len && atom_char((unsigned char)x->v[j]))
		j++;
	t->type = T_ATOM;
	t->n = j - x->i;
	x->i = j;
	return MSV_OK;
}

static void spec_reset(spec *s)
{
	msv_buf_reset(&s->local);
	msv_buf_reset(&s->domain);
	s->quoted = s->at = s->last = s->adjacent = s->bad_domain = s->tokens = 0;
}

/* Adds a word, a dot, an '@' or a literal to the addr-spec being read;
 * a buffer's error as it is. */
static msv_result spec_add(spec *s, const tok *t)
{
	int is_word = t->type != T_SPECIAL;
	msv_buf *b = s->at ? &s->domain : &s->local;
	msv_result r = MSV_OK;
	s->tokens++;
	if (s->at && s->domain.len && s->domain.data[0] == '[')
		s->bad_domain = 1; /* anything after the literal */
	if (is_word && s->last == 'w')
		s->adjacent = 1;
	if (t->type == T_SPECIAL && t->p[0] == '@') {
		if (s->at)
			s->bad_domain = 1; /* a second '@' */
		s->at = 1;
	} else if (t->type == T_QSTR && !s->at) {
		s->quoted = 1;
		for (size_t i = 1; !r && i + 1 < t->n; i++) {
			if (t->p[i] == '\\' && i + 2 < t->n)
				i++;
			r = msv_buf_addc(b, t->p[i]);
		}
	} else if ((t->type == T_QSTR && s->at) || (t->type == T_DLIT && (!s->at || b->len))) {
		s->bad_domain = 1;
	} else {
		r = msv_buf_add(b, t->p, t->n);
	}
	s->last = is_word ? 'w' : t->p[0];
	return r;
}

static int is_dot_atom(const char *p, size_t n)
{
	if (!n || p[0] == '.' || p[n - 1] == '.')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (p[i] == '.' ? p[i + 1] == '.' : !atom_char((unsigned char)p[i]))
			return 0;
	return 1;
}

/* Appends the addr-spec read into s to out (NUL-terminated) once checked. */
static msv_result spec_emit(spec *s, msv_buf *out, size_t *n, msv_buf *tmp, msv_error *err)
{
	if (!s->tokens)
		return MSV_OK; /* an empty list element (RFC 5322 4.4), or <> */
	if (s->adjacent)
		return malformed(err, "words separated only by white space are not an address "
		                      "(a display name needs the address in <>)");
	if (s->bad_domain)
		return malformed(err, "the domain is not a dot-atom or one [literal]");
	msv_buf_reset(tmp);
	msv_result r = MSV_OK;
	if (s->quoted && !is_dot_atom(s->local.data, s->local.len)) {
		/* Not a dot-atom: one quoted string (RFC 5321 Quoted-string). */
		r = msv_buf_addc(tmp, '"');
		for (size_t i = 0; !r && i < s->local.len; i++) {
			char c = s->local.data[i];
			if (c == '"' || c == '\\')
				r = msv_buf_addc(tmp, '\\');
			if (!r)
				r = msv_buf_addc(tmp, c);
		}
		if (!r)
			r = msv_buf_addc(tmp, '"');
	} else {
		r = msv_buf_add(tmp, s->local.data ? s->local.data : "", s->local.len);
	}
	if (!r && s->at)
		r = msv_buf_addc(tmp, '@');
	if (!r)
		r = msv_buf_add(tmp, s->domain.data ? s->domain.data : "", s->domain.len);
	if (!r)
		r = msv_buf_addc(tmp, '\0');
	if (r)
		return buf_failed(err, r);
	if ((r = msv__addr_check(tmp->data, err, "address")))
		return r;
	if ((r = msv_buf_add(out, tmp->data, tmp->len)))
		return r == MSV_E_TOO_LARGE
		       ? msv_error_set(err, MSV_E_TOO_LARGE, MSV_CLASS_USAGE,
		                       "too many addresses (more than %zu octets of them)", out->max)
		       : nomem(err);
	(*n)++;
	spec_reset(s);
	return MSV_OK;
}

/* The inside of <...>, after the '<': [obs-route] addr-spec '>'. */
static msv_result angle_addr(lexer *x, spec *s, msv_buf *out, size_t *n, msv_buf *tmp)
{
	tok t;
	msv_result r = next(x, &t);
	if (!r && t.type == T_SPECIAL && t.p[0] == '@') {
		/* obs-route "@a.example,@b.example:" (RFC 5322 4.4): dropped. */
		while (!r && !(t.type == T_SPECIAL && t.p[0] == ':') && t.type != T_END &&
		       !(t.type == T_SPECIAL && t.p[0] == '>'))
			r = next(x, &t);
		if (!r && !(t.type == T_SPECIAL && t.p[0] == ':'))
			return malformed(x->err, "a route in <> without its ':'");
		if (!r)
			r = next(x, &t);
	}
	for (; !r; r = next(x, &t)) {
		if (t.type == T_END)
			return malformed(x->err, "unterminated angle address");
		if (t.type == T_SPECIAL && t.p[0] == '>')
			break;
		if (t.type == T_SPECIAL && !strchr(".@", t.p[0]))
			return malformed(x->err, t.p[0] == '<' ? "'<' inside an angle address"
			                                       : "a ',', ';' or ':' inside an angle address");
		if ((r = spec_add(s, &t)))
			return buf_failed(x->err, r);
	}
	return r ? r : spec_emit(s, out, n, tmp, x->err);
}

msv_result msv_mime_address_list(msv_buf *out, size_t *n, const char *v, size_t len,
                                 msv_error *err)
{
	*n = 0;
	if (memchr(v, '\0', len))
		return malformed(err, "a NUL octet");
	lexer x = {v, len, 0, err};
	spec s;
	memset(&s, 0, sizeof(s));
	msv_buf tmp;
	msv_buf_init(&s.local, SPEC_MAX);
	msv_buf_init(&s.domain, SPEC_MAX);
	msv_buf_init(&tmp, 2 * SPEC_MAX + 8);
	int in_group = 0, done_angle = 0; /* a <...> closed this mailbox */
	int unquoted_at = 0;              /* the words so far hold an '@' */
	msv_result r = MSV_OK;
	for (tok t; !r && !(r = next(&x, &t));) {
		char c = t.type == T_SPECIAL ? t.p[0] : 0;
		if (t.type == T_END || c == ',' || c == ';') {
			if (!done_angle)
				r = spec_emit(&s, out, n, &tmp, err);
			spec_reset(&s);
			done_angle = unquoted_at = 0;
			if (c == ';')
				in_group = 0;
			if (t.type == T_END)
				break;
		} else if (done_angle) {
			r = malformed(err, "text after '>' where ',' was expected");
		} else if (c == '<') {
			if (unquoted_at)
				r = malformed(err, "'<' after an address");
			spec_reset(&s); /* the words before were the display name */
			if (!r && !(r = angle_addr(&x, &s, out, n, &tmp)))
				done_angle = 1;
		} else if (c == '>') {
			r = malformed(err, "'>' without '<'");
		} else if (c == ':') {
			if (in_group)
				r = malformed(err, "a group inside a group");
			else if (unquoted_at)
				r = malformed(err, "':' after an address");
			in_group = 1; /* the words before were the group's name */
			spec_reset(&s);
		} else {
			unquoted_at |= c == '@';
			if ((r = spec_add(&s, &t)))
				r = buf_failed(err, r);
		}
	}
	msv_buf_free(&s.local);
	msv_buf_free(&s.domain);
	msv_buf_free(&tmp);
	return r;
}
