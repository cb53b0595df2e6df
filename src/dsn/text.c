/*
 * The plain-text reader: bounces written as prose (Exim, qmail, Sendmail
 * without MIME, Gmail, Yahoo, DragonFly, Exchange 2003, mail gateways,
 * and the prose part of RFC 3464 reports).
 *
 * No MTA writes the same layout, but nearly all follow one shape: some
 * introduction, then for each failed recipient its address on a line of
 * its own (or at the start of a line, followed by ':'), then the error
 * in the lines below; then a marker line and the returned message.  So:
 *
 *   1. cut the prose at the marker (msv__dsn_text_cut);
 *   2. find anchor lines: an address alone, "<addr>:", "addr: text",
 *      or a phrase that introduces one ("delivering your mail to <a>");
 *   3. each recipient's block runs from its anchor to the next anchor;
 *      the error text, status code, reply code, remote host and SMTP
 *      command are read from the block;
 *   4. no anchors: X-Failed-Recipients (Exim) names the recipients, or,
 *      last, every address mentioned that is not the sender's.
 *
 * The introduction before the first anchor is kept as context: some
 * MTAs say why only there ("This is a permanent error", "delivery
 * time expired").
 */
#include <string.h>
#include <strings.h>

#include "dsn/dsn_int.h"

typedef struct span {
	size_t s, e;
} span;

static int wsp(char c)
{
	return c == ' ' || c == '\t';
}

/* Trims blanks and the separator characters marker lines are drawn with. */
static span trim_line(const char *t, size_t s, size_t e)
{
	while (s < e && (wsp(t[s]) || t[s] == '\r'))
		s++;
	while (e > s && (wsp(t[e - 1]) || t[e - 1] == '\r'))
		e--;
	return (span){s, e};
}

/* Marker lines that start the returned message. */
static int is_marker(const char *t, size_t s, size_t e)
{
	span l = trim_line(t, s, e);
	const char *p = t + l.s;
	size_t n = l.e - l.s;
	if (!n)
		return 0;
	size_t deco = 0;
	while (deco < n && strchr("-=_*#[<>|+~", p[deco]))
		deco++;
	/* A marker is a short line. */
	if (n > 200)
		return 0;
	static const char *const decorated[] = {
		"original message", "copy of the message", "copy of your message", "returned mail",
		"returned message", "message follows", "headers follow", "original mail",
		"undelivered message", "unsent message", "message header", "the message, including",
		"body of the message", "message text", "included message", "original header",
		"copy of the original", "original email", "message attached", "returned content",
		"message as sent", "original text", "header of original", "headers of the original",
		"元のメッセージ", "原文", "исходное сообщение", "original-message"};
	static const char *const plain[] = {
		"message headers follow", "below this line is a copy of the message",
		"original message headers", "original message follows", "unsent message below",
		"the original message headers", "your message reads (in part)",
		"your original message headers", "the text you sent follows",
		"here is a copy of the first part of the message", "original message header:",
		"a copy of the original message below", "headers of your message follow",
		"--- the header of the original message is following. ---",
		"content-type: message/rfc822", "the headers of your message were",
		"original message:"};
	if (deco >= 2) {
		for (size_t i = 0; i < sizeof(decorated) / sizeof(decorated[0]); i++)
			if (msv__dsn_ci_find(p, n, decorated[i]) >= 0)
				return 1;
	}
	/* Undecorated markers start the line (after at most 8 octets of
	 * punctuation): only that much of a long line is searched. */
	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		size_t pl = strlen(plain[i]);
		if (msv__dsn_ci_find(p, n < pl + 8 ? n : pl + 8, plain[i]) >= 0)
			return 1;
	}
	return 0;
}

size_t msv__dsn_text_cut(const char *text, size_t len, size_t *orig_start)
{
	size_t i = 0;
	while (i < len) {
		const char *nl = memchr(text + i, '\n', len - i);
		size_t le = nl ? (size_t)(nl - text) : len;
		if (is_marker(text, i, le)) {
			*orig_start = nl ? le + 1 : len;
			return i;
		}
		i = nl ? le + 1 : len;
	}
	*orig_start = len;
	return len;
}

/* ---- anchors ---- */

typedef struct anchor {
	size_t line;       /* index into lines */
	size_t a0, a1;     /* the address */
	size_t o0, o1;     /* "(expanded from <x>)": the original recipient, or 0,0 */
	size_t rest;       /* where the error text on the anchor line starts */
	int own_line;      /* the error is on the anchor line only (Sendmail transcripts:
	                      the lines around it belong to other recipients) */
} anchor;

#define MAX_LINES 20000
#define MAX_ANCHORS 1000

typedef struct tctx {
	dsn_ctx *c;
	const dsn_text_in *in;
	const char *t;
	size_t n;
	span *lines;
	size_t nlines, maxlines;
	anchor *anchors;
	size_t nanchors, maxanchors;
	/* Addresses seen after "MAIL FROM:": the sender's. */
	char dyn_skip[8][256];
	size_t ndyn;
	/* Second pass: a recipient may be the sender's own address (a
	 * message to oneself): when no other anchor exists, only the
	 * transcript's MAIL FROM is excluded. */
	int lenient;
} tctx;

static int skipped_local(const char *a, size_t n)
{
	static const char *const locals[] = {"postmaster@", "mailer-daemon@", "mailerdaemon@",
	                                     "noreply@", "no-reply@", "abuse@", "hostmaster@",
	                                     "double-bounce@", "root@", "daemon@"};
	for (size_t i = 0; i < sizeof(locals) / sizeof(locals[0]); i++)
		if (msv__dsn_ci_prefix(a, n, locals[i]))
			return 1;
	return 0;
}

/* The sender's addresses (the bounce's To, the returned message's From
 * and Return-Path, "MAIL FROM:<...>" in a transcript). */
static int is_sender(tctx *x, const char *a, size_t n)
{
	for (size_t i = 0; i < x->in->nskip && !x->lenient; i++)
		if (msv__dsn_ci_eq(a, n, x->in->skip[i]))
			return 1;
	for (size_t i = 0; i < x->ndyn; i++)
		if (msv__dsn_ci_eq(a, n, x->dyn_skip[i]))
			return 1;
	return msv__dsn_ci_prefix(a, n, "mailer-daemon@");
}

static int is_skip(tctx *x, const char *a, size_t n)
{
	for (size_t i = 0; i < x->in->nskip; i++)
		if (msv__dsn_ci_eq(a, n, x->in->skip[i]))
			return 1;
	for (size_t i = 0; i < x->ndyn; i++)
		if (msv__dsn_ci_eq(a, n, x->dyn_skip[i]))
			return 1;
	return skipped_local(a, n);
}

/* Lines that quote headers or name the sender: their addresses are not
 * recipients. */
static int header_line(const char *p, size_t n)
{
	static const char *const h[] = {"message-id:", "in-reply-to:", "references:", "return-path:",
	                                "from:", "reply-to:", "sender:", "x-", "received:",
	                                "envelope-from", "dkim-", "list-", "errors-to:", "cc:",
	                                "date:", "subject:", "mime-version:", "content-", "to:"};
	for (size_t i = 0; i < sizeof(h) / sizeof(h[0]); i++)
		if (msv__dsn_ci_prefix(p, n, h[i]))
			return 1;
	return 0;
}

/* Lines that give an address for help or as an example, never a
 * recipient's: "contact postmaster@...", "e.g. name@example.com". */
static int help_line(const char *p, size_t n)
{
	static const char *const h[] = {"contact", "write to", "send mail to", "e.g.", "for example",
	                                "such as", "help", "question", "reply to", "in the form",
	                                "do not reply", "administrator", "support@"};
	return msv__dsn_ci_find_any(p, n, h, NWORDS(h));
}

/* Does the address list s (NULL: none) hold a[0..n), case-insensitively? */
static int in_list(const char *s, const char *a, size_t n)
{
	size_t i = 0, a0, a1, sl = s ? strlen(s) : 0;
	while (s && msv__dsn_find_addr(s, sl, i, &a0, &a1)) {
		i = a1;
		if (a1 - a0 == n && !strncasecmp(s + a0, a, n))
			return 1;
	}
	return 0;
}

static int list_has_addr(const char *s)
{
	size_t a0, a1;
	return s && msv__dsn_find_addr(s, strlen(s), 0, &a0, &a1);
}

/* The list holds exactly one address (repeats aside): its span. */
static int single_addr(const char *s, size_t *s0, size_t *s1)
{
	size_t i = 0, a0, a1, sl = s ? strlen(s) : 0, found = 0;
	while (s && msv__dsn_find_addr(s, sl, i, &a0, &a1)) {
		i = a1;
		if (found && (a1 - a0 != *s1 - *s0 || strncasecmp(s + a0, s + *s0, a1 - a0)))
			return 0;
		*s0 = a0;
		*s1 = a1;
		found = 1;
	}
	return (int)found;
}

/* Notes addresses after "MAIL FROM:" (and "sender") as the sender's. */
static void note_sender(tctx *x, const char *p, size_t n)
{
	/* The last ones are prose: "not accepting mail from <a>", "the
	 * message from <a> to <b>", Office 365's "Sender Address: <a>". */
	static const char *const ctx[] = {"mail from:", "mail from: ", "envelope-from <",
	                                  "sender address <", "return-path: <", "from:<",
	                                  "sender address:", "envelope sender:", "envelope-sender:",
	                                  "sender:", "originator:", "return path:", "mail from ",
	                                  "message from ", "messages from ", "sent by "};
	/* Every phrase holds one of these: most lines hold none, and are
	 * done with in five scans rather than sixteen. */
	static const char *const keys[] = {"from", "sender", "originator", "return", "sent by"};
	if (!msv__dsn_ci_find_any(p, n, keys, NWORDS(keys)))
		return;
	for (size_t k = 0; k < sizeof(ctx) / sizeof(ctx[0]); k++) {
		long f = msv__dsn_ci_find(p, n, ctx[k]);
		if (f < 0)
			continue;
		size_t a0, a1;
		size_t from = (size_t)f + strlen(ctx[k]);
		if (msv__dsn_find_addr(p, n, from, &a0, &a1) && a0 - from <= 2 && a1 - a0 < 256 &&
		    x->ndyn < 8) {
			memcpy(x->dyn_skip[x->ndyn], p + a0, a1 - a0);
			x->dyn_skip[x->ndyn][a1 - a0] = '\0';
			x->ndyn++;
		}
	}
}

/* Phrases after which the address on the same line is a recipient. */
static const char *const lead_phrases[] = {
	"delivering your mail to ", "delivery to the following recipient",
	"wasn't delivered to ", "deliver message to ",
	"could not be delivered to", "failed recipient:", "recipient address:", "recipient:",
	"original recipient:", "unknown recipient:", "invalid recipient:", "your message to ",
	"unable to deliver message to ", "was not delivered to", "could not deliver to",
	"delivery to ", "message to ", "addressed to ", "for the recipient ", "rcpt to:",
	"undeliverable to ", "bad recipient", "address:", "mailbox "};

/* "(expanded from <x>)" or "(user not found)" after an address at
 * p[*e]: x is the original recipient (a->o0, a->o1).  Returns whether
 * the line is an anchor; *e is left where its error text starts. */
static int paren_end(const char *p, size_t n, size_t base, size_t *e, anchor *a)
{
	int ok = 0;
	size_t paren = *e;
	long f = msv__dsn_ci_find(p + *e, n - *e, "from ");
	if (f >= 0) {
		size_t o0, o1;
		if (msv__dsn_find_addr(p, n, *e + (size_t)f, &o0, &o1)) {
			a->o0 = base + o0;
			a->o1 = base + o1;
		}
	}
	const char *close = memchr(p + *e, ')', n - *e);
	if (close) {
		size_t c2 = (size_t)(close - p) + 1;
		while (c2 < n && wsp(p[c2]))
			c2++;
		ok = c2 >= n || p[c2] == ':';
		/* "addr (user not found)" (GroupWise): the words in
		 * parentheses are the error; "(expanded from <x>):" is
		 * followed by it. */
		*e = f < 0 && c2 >= n ? paren : c2;
	}
	return ok;
}

/* "553 <a>... Domain of sender address a does not exist", "<a>: Sender
 * address rejected": our own address, refused.  Only words right after
 * the address (at p[e]) say so: "<rcpt>: host said: 553 <us>: Sender
 * address rejected" is a recipient's failure whose cause is the sender. */
static int sender_refused(const char *p, size_t n, size_t e)
{
	static const char *const sender_words[] = {
		"sender address", "domain of sender", "not accepting mail from", "sender rejected",
		"sender verify", "sender domain", "envelope sender"};
	size_t w = e;
	while (w < n && (wsp(p[w]) || p[w] == ':' || p[w] == '.' || p[w] == '>'))
		w++;
	for (size_t q = 0; q < NWORDS(sender_words); q++)
		if (msv__dsn_ci_prefix(p + w, n - w, sender_words[q]))
			return 1;
	return 0;
}

/* An address first, then ':' or "(expanded from ...)" or "...";
 * Sendmail's transcript puts the reply code first ("550 <a>... User
 * unknown").  p[0..n) is the trimmed line, at offset base of the text.
 * Returns 1 with a filled in when the line is such an anchor; a->o0 and
 * a->o1 may be set even when it is not. */
static int addr_first(const char *p, size_t n, size_t base, anchor *a)
{
	size_t k = 0, a0, a1;
	if (n > 4 && p[0] >= '2' && p[0] <= '5' && p[1] >= '0' && p[1] <= '9' && p[2] >= '0' &&
	    p[2] <= '9' && p[3] == ' ' && p[4] == '<')
		k = 4;
	int coded = k > 0;
	while (k < n && (p[k] == '<' || p[k] == '"'))
		k++;
	if (!msv__dsn_find_addr(p, n, k, &a0, &a1) || a0 != k)
		return 0;
	size_t e = a1;
	if (e < n && (p[e] == '>' || p[e] == '"'))
		e++;
	while (e < n && wsp(p[e]))
		e++;
	int ok = 0;
	if (e < n && p[e] == ':')
		ok = 1;
	else if (e < n && p[e] == '(')
		ok = paren_end(p, n, base, &e, a);
	else if (e + 3 <= n && !memcmp(p + e, "...", 3))
		ok = 1;
	else if (e < n && (p[e] == ',' || p[e] == ';'))
		ok = 1;
	else if (!coded && e > a1 && e < n)
		ok = 1; /* "addr Invalid Address, ...", "addr on <date>", "addr [User unknown]" */
	if (!ok || sender_refused(p, n, e))
		return 0;
	a->a0 = base + a0;
	a->a1 = base + a1;
	if (e < n && (p[e] == ':' || p[e] == ',' || p[e] == ';'))
		e++;
	a->rest = base + e;
	a->own_line = coded;
	return 1;
}

/* A phrase that introduces the address on the line ("delivering your
 * mail to <a>").  Same arguments as addr_first. */
static int phrase_anchor(tctx *x, const char *p, size_t n, size_t base, anchor *a)
{
	for (size_t q = 0; q < sizeof(lead_phrases) / sizeof(lead_phrases[0]); q++) {
		size_t a0, a1;
		long f = msv__dsn_ci_find(p, n, lead_phrases[q]);
		if (f < 0)
			continue;
		size_t from = (size_t)f + strlen(lead_phrases[q]);
		if (!msv__dsn_find_addr(p, n, from, &a0, &a1))
			continue;
		/* Close to the phrase: at most a few words between. */
		if (a0 - from > 12)
			continue;
		if (is_sender(x, p + a0, a1 - a0))
			continue;
		a->a0 = base + a0;
		a->a1 = base + a1;
		/* The whole line: "User's mailbox is full: <a>" says why
		 * before the address. */
		a->rest = base;
		return 1;
	}
	return 0;
}

/* Is line i an anchor?  Fills a. */
static int anchor_line(tctx *x, size_t i, anchor *a)
{
	const char *t = x->t;
	span l = trim_line(t, x->lines[i].s, x->lines[i].e);
	const char *p = t + l.s;
	size_t n = l.e - l.s;
	if (!n)
		return 0;
	size_t a0, a1;
	memset(a, 0, sizeof(*a));
	a->line = i;
	/* Exim's deliveries to a file or a program: "save to /path",
	 * "pipe to |command" (the report's Final-Recipient says the same). */
	if (msv__dsn_ci_prefix(p, n, "save to /") || msv__dsn_ci_prefix(p, n, "pipe to |")) {
		a->a0 = l.s + 8;
		a->a1 = l.e;
		a->rest = l.e;
		return 1;
	}
	if (!memchr(p, '@', n) || header_line(p, n))
		return 0;
	/* An address alone. */
	if (msv__dsn_is_addr(p, n, &a0, &a1)) {
		a->a0 = l.s + a0;
		a->a1 = l.s + a1;
		a->rest = l.e;
		return !is_sender(x, t + a->a0, a->a1 - a->a0);
	}
	if (addr_first(p, n, l.s, a))
		return !is_sender(x, t + a->a0, a->a1 - a->a0);
	return phrase_anchor(x, p, n, l.s, a);
}

/* Does anchor j's line name the original address of the one before
 * ("Original address: a@b" under "Recipient address: a@ims-ms-daemon",
 * Sun/Oracle Messaging Server)? */
static int original_line(const tctx *x, size_t j)
{
	static const char *const w[] = {"original address:", "original recipient:",
	                                "original-recipient:", "original address :"};
	span l = trim_line(x->t, x->lines[x->anchors[j].line].s, x->lines[x->anchors[j].line].e);
	for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++)
		if (msv__dsn_ci_prefix(x->t + l.s, l.e - l.s, w[i]))
			return 1;
	return 0;
}

/* Exim's "  a@b\n    generated by alias@c" and Sendmail's "<a@b>\n
 * (expanded from: <alias@c>)" under a recipient: the alias is what we
 * sent to. */
static void generated_by(tctx *x)
{
	static const char *const w[] = {"generated by ", "(expanded from: ", "(expanded from "};
	for (size_t j = 0; j < x->nanchors; j++) {
		anchor *a = &x->anchors[j];
		size_t end = j + 1 < x->nanchors ? x->anchors[j + 1].line : x->nlines;
		for (size_t i = a->line + 1; !a->o1 && i < end && i <= a->line + 3; i++) {
			span l = trim_line(x->t, x->lines[i].s, x->lines[i].e);
			for (size_t k = 0; k < sizeof(w) / sizeof(w[0]); k++) {
				size_t a0, a1, wl = strlen(w[k]);
				if (msv__dsn_ci_prefix(x->t + l.s, l.e - l.s, w[k]) &&
				    msv__dsn_find_addr(x->t, l.e, l.s + wl, &a0, &a1) && a0 <= l.s + wl + 1) {
					a->o0 = a0;
					a->o1 = a1;
					break;
				}
			}
		}
	}
}

/* Folds an "Original address:" anchor into the recipient anchor just
 * above or below it: one recipient, known by two names. */
static void pair_original(tctx *x)
{
	size_t k = 0;
	for (size_t j = 0; j < x->nanchors; j++) {
		anchor *a = &x->anchors[j];
		if (original_line(x, j) && k > 0 && !x->anchors[k - 1].o1 &&
		    a->line - x->anchors[k - 1].line <= 2 && !original_line(x, j - 1)) {
			x->anchors[k - 1].o0 = a->a0;
			x->anchors[k - 1].o1 = a->a1;
			continue;
		}
		if (original_line(x, j) && j + 1 < x->nanchors && !x->anchors[j + 1].o1 &&
		    x->anchors[j + 1].line - a->line <= 2 && !original_line(x, j + 1)) {
			x->anchors[j + 1].o0 = a->a0;
			x->anchors[j + 1].o1 = a->a1;
			continue;
		}
		x->anchors[k++] = *a;
	}
	x->nanchors = k;
}

/* ---- reading a block ---- */

static void block_host(const char *s, size_t n, size_t *h0, size_t *h1)
{
	static const char *const pre[] = {"while talking to ", "remote host ", "host ", "server ",
	                                  "by ", "mta "};
	*h0 = *h1 = 0;
	for (size_t q = 0; q < sizeof(pre) / sizeof(pre[0]); q++) {
		size_t from = 0;
		for (;;) {
			long f = msv__dsn_ci_find(s + from, n - from, pre[q]);
			if (f < 0)
				break;
			size_t i = from + (size_t)f + strlen(pre[q]);
			from = i;
			/* The word before must not be a letter ("ghost "). */
			size_t w0 = from - strlen(pre[q]);
			if (w0 && ((s[w0 - 1] >= 'a' && s[w0 - 1] <= 'z') || (s[w0 - 1] >= 'A' && s[w0 - 1] <= 'Z')))
				continue;
			size_t e = i;
			while (e < n && (((s[e] | 32) >= 'a' && (s[e] | 32) <= 'z') ||
			                 (s[e] >= '0' && s[e] <= '9') || s[e] == '.' || s[e] == '-' ||
			                 s[e] == '_'))
				e++;
			size_t ee = e;
			while (ee > i && s[ee - 1] == '.')
				ee--;
			/* A host name has a dot and a letter. */
			const char *dot = memchr(s + i, '.', ee - i);
			int letter = 0, digit_only = 1;
			for (size_t k = i; k < ee; k++) {
				if (((s[k] | 32) >= 'a' && (s[k] | 32) <= 'z'))
					letter = 1;
				if (!((s[k] >= '0' && s[k] <= '9') || s[k] == '.'))
					digit_only = 0;
			}
			if (dot && (letter || digit_only) && ee - i >= 4) {
				*h0 = i;
				*h1 = ee;
				return;
			}
		}
	}
}

static const char *block_command(const char *raw, size_t rn)
{
	/* Folded: "SMTP command\nDATA" and "in reply to RCPT TO\n command". */
	char s[DSN_FIELD_MAX];
	size_t n = 0;
	int sp = 0;
	for (size_t i = 0; i < rn && n + 1 < sizeof(s); i++) {
		char ch = raw[i];
		if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r') {
			sp = 1;
			continue;
		}
		if (sp && n)
			s[n++] = ' ';
		sp = 0;
		if (n + 1 < sizeof(s))
			s[n++] = ch;
	}
	static const struct {
		const char *w, *cmd;
	} cmds[] = {
		{"after rcpt to", "RCPT"},          {"rcpt to:", "RCPT"},
		{"in reply to rcpt", "RCPT"},       {"[rcpt_to]", "RCPT"},
		{"rcpt to response", "RCPT"},       {"after mail from", "MAIL"},
		{"in reply to mail from", "MAIL"},  {"mail from:", "MAIL"},
		{"[mail_from]", "MAIL"},            {"after end of data", "DATA"},
		{"after data", "DATA"},             {"final data", "DATA"},
		{"end of data", "DATA"},            {"in reply to data", "DATA"},
		{"in reply to end of data", "DATA"}, {"after sending message", "DATA"},
		{"after the end of data", "DATA"},  {"after helo", "HELO"},
		{"after ehlo", "EHLO"},             {"in reply to ehlo", "EHLO"},
		{"after initial connection", "CONN"}, {"after starttls", "STARTTLS"},
		{"after auth", "AUTH"},             {"after bdat", "DATA"},
		{">>> data", "DATA"},               {">>> rcpt to", "RCPT"},
		{">>> mail from", "MAIL"},          {"smtp command data", "DATA"},
		{"command: data", "DATA"},          {"[data]", "DATA"},
		{"does not like recipient", "RCPT"}, {"after rcpt", "RCPT"},
	};
	long best = -1;
	const char *bc = NULL;
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		long f = msv__dsn_ci_find(s, n, cmds[i].w);
		if (f >= 0 && (best < 0 || f < best)) {
			best = f;
			bc = cmds[i].cmd;
		}
	}
	return bc;
}

/* Fills a recipient from block text s[0..n) (LF lines). */
static void fill_from_block(dsn_ctx *c, msv_dsn_recipient *r, const char *s, size_t n,
                            int diag_only_if_empty)
{
	if (!n)
		return;
	if (!r->diagnostic || !diag_only_if_empty)
		msv__dsn_set(c, &r->diagnostic, s, n);
	if (!r->status[0]) {
		/* The first failure code: a transcript shows "250 2.1.5 Ok"
		 * before the "451 4.3.0" that matters. */
		char st[MSV_DSN_STATUS_MAX];
		size_t from = 0;
		long k;
		while ((k = msv__dsn_find_status(s + from, n - from, st)) >= 0) {
			if (st[0] != '2') {
				memcpy(r->status, st, sizeof(st));
				r->status_source = MSV_DSN_SRC_TEXT;
				break;
			}
			from += (size_t)k + strlen(st);
		}
	}
	if (!r->reply_code)
		r->reply_code = msv__dsn_find_reply_code(s, n);
	if (!r->remote_mta) {
		size_t h0, h1;
		block_host(s, n, &h0, &h1);
		if (h1 > h0)
			r->remote_mta = msv__dsn_str(c, s + h0, h1 - h0);
	}
	if (!r->command) {
		const char *cmd = block_command(s, n);
		if (cmd)
			r->command = msv__dsn_str(c, cmd, strlen(cmd));
	}
}

static void split_lines(tctx *x)
{
	size_t i = 0;
	while (i < x->n && x->nlines < x->maxlines) {
		const char *nl = memchr(x->t + i, '\n', x->n - i);
		size_t le = nl ? (size_t)(nl - x->t) : x->n;
		x->lines[x->nlines++] = (span){i, le};
		i = nl ? le + 1 : x->n;
	}
}

/* Does line i start a returned message's header block (no marker line
 * before it)?  "Received:" or "Return-Path:", quoted or not. */
static int returned_start(const tctx *x, size_t i)
{
	const char *p = x->t + x->lines[i].s;
	size_t n = x->lines[i].e - x->lines[i].s;
	while (n && (*p == '>' || *p == ' ')) {
		p++;
		n--;
	}
	return msv__dsn_ci_prefix(p, n, "received: ") || msv__dsn_ci_prefix(p, n, "return-path:") ||
	       msv__dsn_ci_prefix(p, n, "received:from ");
}

/* Text of a block: lines [l0, l1), starting at offset from on line l0,
 * ending early where a returned message starts. */
static span block_span(tctx *x, size_t l0, size_t from, size_t l1)
{
	for (size_t i = l0 + 1; i < l1 && i < x->nlines; i++)
		if (returned_start(x, i)) {
			l1 = i;
			break;
		}
	size_t s = from ? from : x->lines[l0].s;
	size_t e = l1 < x->nlines ? x->lines[l1].s : x->n;
	if (e < s)
		e = s;
	return (span){s, e};
}

/* A line of a Sendmail transcript: ">>> command", "<<< reply", or
 * Sendmail's own "421 host (smtp)... Deferred: ..." note. */
static int transcript_line(const tctx *x, size_t i)
{
	const char *p = x->t + x->lines[i].s;
	size_t n = x->lines[i].e - x->lines[i].s;
	if (msv__dsn_ci_prefix(p, n, ">>> ") || msv__dsn_ci_prefix(p, n, "<<< "))
		return 1;
	return n > 4 && p[0] >= '2' && p[0] <= '5' && p[3] == ' ' && msv__dsn_ci_find(p, n, " (smtp)... ") > 0;
}

/* Index of the first anchor after j naming another address: lines
 * that repeat the same address ("<a>: host said: 550 <a>... unknown")
 * belong to one block. */
static size_t next_other(const tctx *x, size_t j)
{
	const anchor *a = &x->anchors[j];
	size_t k = j + 1;
	while (k < x->nanchors && x->anchors[k].a1 - x->anchors[k].a0 == a->a1 - a->a0 &&
	       !strncasecmp(x->t + x->anchors[k].a0, x->t + a->a0, a->a1 - a->a0))
		k++;
	return k;
}

static int has_rfc3464_fields(const char *t, size_t n)
{
	static const char *const f[] = {"\nfinal-recipient:", "\noriginal-recipient:"};
	for (size_t i = 0; i < 2; i++) {
		if (msv__dsn_ci_prefix(t, n, f[i] + 1))
			return 1;
		if (msv__dsn_ci_find(t, n, f[i]) >= 0)
			return 1;
	}
	return 0;
}

/* The lines, the senders they name and the anchors: what every reader
 * below works from.  -1 when out of memory. */
static int find_anchors(tctx *x)
{
	/* Sized to the prose: most bounces have a few dozen lines. */
	size_t nl = 1;
	for (const char *q = x->t; (q = memchr(q, '\n', (size_t)(x->t + x->n - q))) != NULL; q++)
		if (++nl >= MAX_LINES)
			break;
	x->maxlines = nl;
	x->maxanchors = nl < MAX_ANCHORS ? nl : MAX_ANCHORS;
	x->lines = msv_calloc(x->maxlines, sizeof(span));
	x->anchors = msv_calloc(x->maxanchors, sizeof(anchor));
	if (!x->lines || !x->anchors)
		return -1;
	split_lines(x);
	for (size_t i = 0; i < x->nlines; i++) {
		span l = trim_line(x->t, x->lines[i].s, x->lines[i].e);
		note_sender(x, x->t + l.s, l.e - l.s);
	}
	for (x->lenient = 0; x->lenient < 2 && !x->nanchors; x->lenient++) {
		for (size_t i = 0; i < x->nlines && x->nanchors < x->maxanchors; i++) {
			anchor a;
			if (anchor_line(x, i, &a))
				x->anchors[x->nanchors++] = a;
		}
	}
	x->lenient = 0;
	pair_original(x);
	generated_by(x);
	return 0;
}

/* Anchor j's block: up to the next anchor naming another address. */
static span anchor_block(tctx *x, size_t j)
{
	const anchor *a = &x->anchors[j];
	size_t nx = next_other(x, j);
	size_t l1 = nx < x->nanchors ? x->anchors[nx].line : x->nlines;
	return block_span(x, a->line, a->rest, l1);
}

/* Does anchor a name recipient r, by any of its names? */
static int anchor_names(const tctx *x, const anchor *a, const msv_dsn_recipient *r)
{
	return (r->address && msv__dsn_ci_eq(x->t + a->a0, a->a1 - a->a0, r->address)) ||
	       (r->final_recipient && msv__dsn_ci_eq(x->t + a->a0, a->a1 - a->a0, r->final_recipient)) ||
	       (r->address && a->o1 > a->o0 && msv__dsn_ci_eq(x->t + a->o0, a->o1 - a->o0, r->address)) ||
	       (r->original_recipient && msv__dsn_ci_eq(x->t + a->a0, a->a1 - a->a0, r->original_recipient));
}

/* The report already has recipients: fill what it left out from the
 * prose. */
static void complement_rcpts(tctx *x)
{
	dsn_ctx *c = x->c;
	for (size_t k = 0; k < c->rep->nrecipients; k++) {
		msv_dsn_recipient *r = &c->rep->recipients[k];
		if (r->diagnostic && r->status[0] && r->command)
			continue;
		for (size_t j = 0; j < x->nanchors; j++) {
			if (!anchor_names(x, &x->anchors[j], r))
				continue;
			span b = anchor_block(x, j);
			fill_from_block(c, r, x->t + b.s, b.e - b.s, 1);
			break;
		}
	}
}

/* A recipient X-Failed-Recipients names, filled from anchor j's block.
 * When the anchor says which alias the address was expanded from, the
 * alias is reported: it is what we sent to. */
static void failed_from_anchor(tctx *x, msv_dsn_recipient *r, size_t j)
{
	dsn_ctx *c = x->c;
	span b = anchor_block(x, j);
	fill_from_block(c, r, x->t + b.s, b.e - b.s, 0);
	const anchor *aj = &x->anchors[j];
	char *o = aj->o1 > aj->o0 ? msv__dsn_str(c, x->t + aj->o0, aj->o1 - aj->o0) : NULL;
	if (o && !msv__dsn_rcpt_find(c, o, strlen(o))) {
		r->final_recipient = r->address;
		r->address = o;
		r->original_recipient = msv__dsn_str(c, o, strlen(o));
	} else {
		msv_free(o);
	}
}

/* X-Failed-Recipients (Exim, Gmail) names the recipients for sure; the
 * prose only says why.  Prose lines that start with some other address
 * (a greeting, a list owner) are not recipients.  A recipient without
 * an anchor gets the whole prose as its block. */
static void failed_rcpts(tctx *x)
{
	dsn_ctx *c = x->c;
	const char *h = x->in->failed_hdr;
	size_t hl = strlen(h), i = 0, a0, a1;
	while (msv__dsn_find_addr(h, hl, i, &a0, &a1)) {
		i = a1;
		if (msv__dsn_rcpt_find(c, h + a0, a1 - a0))
			continue;
		msv_dsn_recipient *r = msv__dsn_rcpt_new(c);
		if (!r)
			break;
		r->address = msv__dsn_str(c, h + a0, a1 - a0);
		size_t j;
		for (j = 0; j < x->nanchors; j++)
			if (x->anchors[j].a1 - x->anchors[j].a0 == a1 - a0 &&
			    !strncasecmp(x->t + x->anchors[j].a0, h + a0, a1 - a0))
				break;
		if (j < x->nanchors)
			failed_from_anchor(x, r, j);
		else
			fill_from_block(c, r, x->t, x->n, 0);
	}
}

/* Sendmail's transcript: the server's reply ("<<< 550 ...") and our
 * command (">>> MAIL From:") come in the lines just above "554
 * <addr>... Remote protocol error" (anchor j). */
static span transcript_block(const tctx *x, size_t j)
{
	const anchor *a = &x->anchors[j];
	size_t l0 = a->line, floor = j ? x->anchors[j - 1].line + 1 : 0;
	while (l0 > floor && transcript_line(x, l0 - 1))
		l0--;
	return (span){x->lines[l0].s, x->lines[a->line].e};
}

/* A new recipient for anchor a, reported as t[e0..e1).  "<final>
 * (expanded from <alias>)", "Original address:": the alias is the
 * address we sent to; the final one is what the MTA made of it. */
static msv_dsn_recipient *anchor_rcpt_new(tctx *x, const anchor *a, size_t e0, size_t e1)
{
	dsn_ctx *c = x->c;
	msv_dsn_recipient *r = msv__dsn_rcpt_new(c);
	if (!r)
		return NULL;
	r->address = msv__dsn_str(c, x->t + e0, e1 - e0);
	if (a->o1 > a->o0) {
		r->original_recipient = msv__dsn_str(c, x->t + a->o0, a->o1 - a->o0);
		if (a->a1 - a->a0 != e1 - e0 || memcmp(x->t + a->a0, x->t + e0, e1 - e0))
			r->final_recipient = msv__dsn_str(c, x->t + a->a0, a->a1 - a->a0);
	}
	return r;
}

/* One recipient per anchored address.  Several anchors for one address
 * (Sendmail names it in the list and again in the transcript): the
 * first block wins, the others add to it only when it has no error
 * text. */
static void anchor_rcpts(tctx *x)
{
	dsn_ctx *c = x->c;
	for (size_t j = 0; j < x->nanchors; j = next_other(x, j)) {
		anchor *a = &x->anchors[j];
		span b = a->own_line ? transcript_block(x, j) : anchor_block(x, j);
		int orig = a->o1 > a->o0;
		size_t e0 = orig ? a->o0 : a->a0, e1 = orig ? a->o1 : a->a1;
		msv_dsn_recipient *r = msv__dsn_rcpt_find(c, x->t + e0, e1 - e0);
		if (!r) {
			r = anchor_rcpt_new(x, a, e0, e1);
			if (!r)
				break;
			fill_from_block(c, r, x->t + b.s, b.e - b.s, 0);
		} else if (!r->status[0] && b.e > b.s) {
			char st[MSV_DSN_STATUS_MAX];
			if (msv__dsn_find_status(x->t + b.s, b.e - b.s, st) >= 0 || !r->diagnostic) {
				msv_free(r->diagnostic);
				r->diagnostic = NULL;
				fill_from_block(c, r, x->t + b.s, b.e - b.s, 0);
			}
		}
	}
}

/* The last resort's candidates: addresses the prose mentions, each
 * with the line it is first seen on. */
#define MAX_MENTIONED 64

typedef struct mentioned {
	size_t line[MAX_MENTIONED], a0[MAX_MENTIONED], a1[MAX_MENTIONED];
	size_t n;
	size_t in_orig; /* how many of them the returned message's To or Cc has */
} mentioned;

/* t[a0..a1) is no candidate: the sender's, in a URL, already a
 * candidate or already a recipient. */
static int not_candidate(tctx *x, const mentioned *m, size_t a0, size_t a1)
{
	if (is_skip(x, x->t + a0, a1 - a0))
		return 1;
	/* Not in a URL. */
	if (a0 >= 7 && msv__dsn_ci_find(x->t + (a0 >= 60 ? a0 - 60 : 0),
	                                a0 - (a0 >= 60 ? a0 - 60 : 0), "://") >= 0)
		return 1;
	for (size_t j = 0; j < m->n; j++)
		if (m->a1[j] - m->a0[j] == a1 - a0 && !strncasecmp(x->t + m->a0[j], x->t + a0, a1 - a0))
			return 1;
	return msv__dsn_rcpt_find(x->c, x->t + a0, a1 - a0) != NULL;
}

/* Every address mentioned that is not the sender's, nor one the prose
 * gives for help or as an example. */
static void collect_mentioned(tctx *x, mentioned *m)
{
	for (size_t i = 0; i < x->nlines && m->n < MAX_MENTIONED; i++) {
		span l = trim_line(x->t, x->lines[i].s, x->lines[i].e);
		if (header_line(x->t + l.s, l.e - l.s) || help_line(x->t + l.s, l.e - l.s))
			continue;
		size_t k = l.s, a0, a1;
		while (m->n < MAX_MENTIONED && msv__dsn_find_addr(x->t, l.e, k, &a0, &a1)) {
			k = a1;
			if (not_candidate(x, m, a0, a1))
				continue;
			m->line[m->n] = i;
			m->a0[m->n] = a0;
			m->a1[m->n] = a1;
			m->in_orig += in_list(x->in->orig_to, x->t + a0, a1 - a0);
			m->n++;
		}
	}
}

/* The returned message says whom it was sent to: addresses the prose
 * names besides those are someone else's; when it names none of them,
 * the caller takes the returned To.  Drops the candidates that are no
 * recipient. */
static void keep_sent(tctx *x, mentioned *m)
{
	const char *orig_to = x->in->orig_to;
	size_t s0, s1;
	if (m->n == 1 && !m->in_orig && single_addr(orig_to, &s0, &s1)) {
		/* One address in the prose, another in the returned To
		 * ("Invalid final delivery userid: a@mail.example" for
		 * a@example): the MTA's rewriting of ours. */
		msv_dsn_recipient *r = msv__dsn_rcpt_new(x->c);
		if (r) {
			r->address = msv__dsn_str(x->c, orig_to + s0, s1 - s0);
			r->final_recipient = msv__dsn_str(x->c, x->t + m->a0[0], m->a1[0] - m->a0[0]);
			span b = block_span(x, m->line[0], 0, x->nlines);
			fill_from_block(x->c, r, x->t + b.s, b.e - b.s, 0);
		}
		m->n = 0;
	}
	if (list_has_addr(orig_to)) {
		size_t k = 0;
		for (size_t j = 0; j < m->n; j++)
			if (m->in_orig && in_list(orig_to, x->t + m->a0[j], m->a1[j] - m->a0[j])) {
				m->line[k] = m->line[j];
				m->a0[k] = m->a0[j];
				m->a1[k++] = m->a1[j];
			}
		m->n = k;
	}
}

/* The last resort: every address the prose mentions that can be a
 * recipient is one.  Returns how many candidates became recipients
 * (the MTA's rewriting of the returned To's address not counted). */
static size_t mentioned_rcpts(tctx *x)
{
	mentioned m;
	memset(&m, 0, sizeof(m));
	collect_mentioned(x, &m);
	keep_sent(x, &m);
	for (size_t j = 0; j < m.n; j++) {
		msv_dsn_recipient *r = msv__dsn_rcpt_new(x->c);
		if (!r)
			break;
		r->address = msv__dsn_str(x->c, x->t + m.a0[j], m.a1[j] - m.a0[j]);
		size_t l0 = m.line[j];
		size_t l1 = j + 1 < m.n && m.line[j + 1] > l0 ? m.line[j + 1] : x->nlines;
		span b = block_span(x, l0, 0, l1);
		fill_from_block(x->c, r, x->t + b.s, b.e - b.s, 0);
	}
	return m.n;
}

/* Recipients from the prose alone.  Returns the format, or NULL when
 * the prose named none. */
static const char *prose_rcpts(tctx *x)
{
	const char *h = x->in->failed_hdr;
	size_t a0, a1;
	if (h && msv__dsn_find_addr(h, strlen(h), 0, &a0, &a1)) {
		failed_rcpts(x);
		return "text";
	}
	if (x->nanchors) {
		anchor_rcpts(x);
		return "text";
	}
	/* An X-Failed-Recipients that names no address still makes this
	 * a text report, with no recipient: the guess below is not made. */
	if (h)
		return "text";
	return mentioned_rcpts(x) ? "text" : NULL;
}

size_t msv__dsn_text_read(dsn_ctx *c, const dsn_text_in *in, const char **format, size_t *prelude)
{
	*format = NULL;
	*prelude = 0;
	size_t n = in->len; /* already cut at the returned message */
	tctx x;
	memset(&x, 0, sizeof(x));
	x.c = c;
	x.in = in;
	x.t = in->text ? in->text : "";
	x.n = n;
	size_t before = c->rep->nrecipients;
	int complement = before > 0;

	/* Prose that carries RFC 3464 fields ("Technical report:" of
	 * Amazon WorkMail, some gateways). */
	if (!complement && has_rfc3464_fields(x.t, n)) {
		if (msv__dsn_ds_read(c, x.t, n, 0)) {
			*format = "rfc3464-text";
			complement = 1;
		}
	}

	if (find_anchors(&x)) {
		c->oom = 1;
	} else if (complement) {
		complement_rcpts(&x);
	} else {
		*prelude = x.nanchors ? x.lines[x.anchors[0].line].s : n;
		*format = prose_rcpts(&x);
	}
	msv_free(x.lines);
	msv_free(x.anchors);
	return c->rep->nrecipients - before;
}
