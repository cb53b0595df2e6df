/* Submission: check and complete a raw message, sign it, queue it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "missive/mime.h"
#include "missive/smtp.h"
#include "audit.h"
#include "submit.h"

#define LINE_MAX_OCTETS 998

static msv_result nomem(msv_error *err)
{
	return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
}

/* "line N <what>" as the error. */
static msv_result bad(msv_error *err, size_t line, const char *what)
{
	return msv_error_set(err, MSV_E_BAD_MESSAGE, MSV_CLASS_USAGE, "line %zu %s", line, what);
}

/* A callee's failure as code (err's message kept), unless it ran out of
 * memory, which stays MSV_E_NOMEM. */
static msv_result as_code(msv_error *err, msv_result code)
{
	if (err->code != MSV_E_NOMEM) {
		err->code = code;
		err->cls = MSV_CLASS_USAGE;
	}
	return err->code;
}

/* Copies raw to out with every line ended by CRLF (LF, CR and CRLF in),
 * refusing NUL octets and over-long lines, and telling where the header
 * block ends (the offset of the empty line, or out->len if none). */
static msv_result normalize(msv_buf *out, const char *raw, size_t len, size_t *hdr_end,
                            msv_error *err)
{
	if (msv_buf_reserve(out, len + len / 32 + 2))
		return nomem(err);
	size_t line = 1, col = 0;
	*hdr_end = SIZE_MAX;
	for (size_t i = 0; i < len; i++) {
		char c = raw[i];
		if (c == '\r' || c == '\n') {
			if (c == '\r' && i + 1 < len && raw[i + 1] == '\n')
				i++;
			if (*hdr_end == SIZE_MAX && col == 0)
				*hdr_end = out->len;
			if (msv_buf_add(out, "\r\n", 2))
				return nomem(err);
			line++;
			col = 0;
			continue;
		}
		if (!c)
			return bad(err, line, "holds a NUL octet");
		if (++col > LINE_MAX_OCTETS)
			return bad(err, line, "is longer than 998 octets (RFC 5322 2.1.1)");
		if (msv_buf_addc(out, c))
			return nomem(err);
	}
	if (col && msv_buf_add(out, "\r\n", 2))
		return nomem(err);
	if (*hdr_end == SIZE_MAX)
		*hdr_end = out->len;
	return 0;
}

typedef struct field {
	size_t start, end; /* the whole field with its CRLF, in the normalized message */
	const char *value; /* after the colon */
	size_t vlen;
} field;

/* The next header field at *pos (before hdr_end), folded lines included. */
static msv_result next_field(const msv_buf *m, size_t *pos, size_t hdr_end, field *f, char *name,
                             size_t namesz, msv_error *err)
{
	const char *d = m->data;
	size_t s = *pos, e = s;
	while (e < hdr_end) {
		const char *nl = memchr(d + e, '\n', hdr_end - e);
		e = nl ? (size_t)(nl - d) + 1 : hdr_end;
		if (e >= hdr_end || (d[e] != ' ' && d[e] != '\t'))
			break;
	}
	const char *colon = memchr(d + s, ':', e - s);
	size_t nl = colon ? (size_t)(colon - (d + s)) : 0;
	int ok = colon && nl > 0 && nl < namesz;
	for (size_t i = 0; ok && i < nl; i++)
		ok = d[s + i] > 32 && d[s + i] < 127;
	if (!ok) {
		size_t line = 1;
		for (size_t i = 0; i < s; i++)
			line += d[i] == '\n';
		return bad(err, line, "is not a header field (Name: value) but the header has not ended");
	}
	memcpy(name, d + s, nl);
	name[nl] = '\0';
	f->start = s;
	f->end = e;
	f->value = colon + 1;
	f->vlen = e - (size_t)(colon + 1 - d);
	*pos = e;
	return 0;
}

/* More recipients than [submission] max-recipients: refused on every way
 * in (sendmail, the socket, HTTP) with the key named. */
static msv_result too_many(msv_error *err, const app_config *c, size_t n)
{
	(void)n; /* past the cap nothing is counted further: no exact number */
	return msv_error_set(err, MSV_E_TOO_MANY_RCPT, MSV_CLASS_USAGE,
	                     "too many recipients: more than [submission] max-recipients (%u)",
	                     c->max_recipients);
}

static msv_result add_addresses(const app_config *c, app_prepared *p, const char *v, size_t len,
                                const char *field_name, msv_error *err)
{
	/* An address takes at most 255 octets here (RFC 5321 4.5.3.1.3), so a
	 * list that does not fit names more recipients than are left: the
	 * parse stops there instead of reading 80,000 addresses first. */
	size_t left = c->max_recipients - p->nrcpt;
	msv_buf list;
	msv_buf_init(&list, (left + 1) * 256);
	size_t n = 0;
	if (msv_mime_address_list(&list, &n, v, len, err)) {
		msv_buf_free(&list);
		if (err->code == MSV_E_TOO_LARGE)
			return too_many(err, c, c->max_recipients);
		char why[MSV_TEXT_MAX];
		snprintf(why, sizeof(why), "%s", err->message);
		msv_error_set(err, err->code == MSV_E_NOMEM ? MSV_E_NOMEM : MSV_E_BAD_ADDRESS,
		              MSV_CLASS_USAGE, "%s: %s", field_name, why);
		return err->code;
	}
	if (n > left) {
		msv_buf_free(&list);
		return too_many(err, c, p->nrcpt + n);
	}
	char **r = msv_realloc(p->rcpt, (p->nrcpt + n + 1) * sizeof(*r));
	if (!r) {
		msv_buf_free(&list);
		return nomem(err);
	}
	p->rcpt = r;
	for (size_t off = 0; off < list.len; off += strlen(list.data + off) + 1)
		if (!(p->rcpt[p->nrcpt++] = msv_strdup(list.data + off))) {
			p->nrcpt--;
			msv_buf_free(&list);
			return nomem(err);
		}
	msv_buf_free(&list);
	return 0;
}

/* The submitting user @ myhostname (as Postfix's sendmail): a local
 * message's sender when it may not or did not choose one.  The user is
 * who the kernel says connected (SO_PEERCRED) or runs sendmail, never
 * missived's own user.  0, or MSV_E_NO_USER for a uid without a name. */
static msv_result default_sender(const app_config *c, const app_submit_opts *o, char *out, size_t n,
                                 msv_error *err)
{
	if (!o->user)
		return msv_error_set(err, MSV_E_NO_USER, MSV_CLASS_USAGE,
		                     "sender: uid %ld has no login name to make a sender from; give -f",
		                     o->uid);
	snprintf(out, n, "%s@%s", o->user, c->myhostname);
	return 0;
}

/* Orders addresses as the same mailbox: local parts exactly, domains but
 * for case (RFC 5321 2.4); ties by position, so the first one is kept. */
static int same_cmp(const char *a, const char *b)
{
	const char *at = strrchr(a, '@'), *bt = strrchr(b, '@');
	size_t al = at ? (size_t)(at - a) : strlen(a), bl = bt ? (size_t)(bt - b) : strlen(b);
	int r = memcmp(a, b, al < bl ? al : bl);
	if (r || al != bl)
		return r ? r : al < bl ? -1 : 1;
	if (!at || !bt)
		return !!at - !!bt;
	return strcasecmp(at, bt);
}

typedef struct rcpt_ref {
	const char *addr;
	size_t pos;
} rcpt_ref;

static int ref_cmp(const void *x, const void *y)
{
	const rcpt_ref *a = x, *b = y;
	int r = same_cmp(a->addr, b->addr);
	return r ? r : a->pos < b->pos ? -1 : a->pos > b->pos;
}

/* One address named twice (To and Cc, -t and an argument) would be one
 * queue recipient each and get the message that many times.  Sorted, not
 * compared pairwise: 10,000 recipients took 0.8 s that way, 80,000 40 s. */
static msv_result drop_duplicates(app_prepared *p, msv_error *err)
{
	if (p->nrcpt < 2)
		return 0;
	rcpt_ref *refs = msv_calloc(p->nrcpt, sizeof(*refs));
	unsigned char *drop = msv_calloc(p->nrcpt, 1);
	if (!refs || !drop) {
		msv_free(refs);
		msv_free(drop);
		return nomem(err);
	}
	for (size_t i = 0; i < p->nrcpt; i++)
		refs[i] = (rcpt_ref){p->rcpt[i], i};
	qsort(refs, p->nrcpt, sizeof(*refs), ref_cmp);
	for (size_t i = 1; i < p->nrcpt; i++)
		if (!same_cmp(refs[i - 1].addr, refs[i].addr))
			drop[refs[i].pos] = 1; /* a later position than the kept one */
	size_t k = 0;
	for (size_t i = 0; i < p->nrcpt; i++) {
		if (drop[i])
			msv_free(p->rcpt[i]);
		else
			p->rcpt[k++] = p->rcpt[i];
	}
	p->nrcpt = k;
	msv_free(refs);
	msv_free(drop);
	return 0;
}

static int has_8bit(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			return 1;
	return 0;
}

/* DSN parameters (RFC 3461), upper-cased into the prepared message. */
static msv_result dsn_params(app_prepared *p, const app_submit_opts *o, msv_error *err)
{
	if (o->dsn_notify && app_dsn_param(o->dsn_notify, 0, p->dsn_notify, sizeof(p->dsn_notify))) {
		msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE,
		              "DSN NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY");
		return MSV_E_INVALID;
	}
	if (o->dsn_ret && app_dsn_param(o->dsn_ret, 1, p->dsn_ret, sizeof(p->dsn_ret))) {
		return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE, "DSN RET must be FULL or HDRS");
	}
	if (o->envid) {
		size_t n = strlen(o->envid);
		int ok = n && n <= 100;
		for (size_t i = 0; ok && i < n; i++)
			ok = o->envid[i] > 32 && o->envid[i] < 127;
		if (!ok) {
			msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE,
			              "DSN ENVID must be 1 to 100 printable ASCII characters");
			return MSV_E_INVALID;
		}
		if (!(p->envid = msv_strdup(o->envid)))
			return nomem(err);
	}
	return 0;
}

/* A display name (-F) longer than this would not fit the 998-octet line
 * of a From field as one quoted string (RFC 5322 2.1.1). */
#define FROM_NAME_MAX 300

/* 1 when a -F name holds a control character (it becomes a header) or
 * is too long. */
static int bad_name(const char *s)
{
	size_t n = strlen(s);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 1;
	return n > FROM_NAME_MAX;
}

/* "X-Authentication-Warning: HOST: USER set sender to ADDR using -f", as
 * sendmail(8) writes it, when a user who is not trusted chose the sender:
 * accepted (a PHP application's -f bounce address is common), but the
 * recipient can see who really sent.  in_from: the user wrote a From
 * field ("USER set From: to ADDR").  Not added for the user's own
 * user@myhostname. */
static msv_result auth_warning(const app_config *c, const app_submit_opts *o, const char *sender,
                               int in_from, msv_buf *out, msv_error *err)
{
	const char *host = c->myhostname;
	char own[512] = "", uid[32];
	if (o->user)
		snprintf(own, sizeof(own), "%s@%s", o->user, host);
	if (*own && !strcasecmp(own, sender) && !strncmp(own, sender, strlen(o->user) + 1))
		return 0;
	snprintf(uid, sizeof(uid), "uid %ld", o->uid);
	if (in_from ? msv_buf_addf(out, "X-Authentication-Warning: %s: %s set From: to %s\r\n", host,
	                           o->user ? o->user : uid, sender)
	            : msv_buf_addf(out, "X-Authentication-Warning: %s: %s set sender to %s using -f\r\n",
	                           host, o->user ? o->user : uid, *sender ? sender : "<>"))
		return nomem(err);
	return 0;
}

/* What the header walk found. */
typedef struct header_scan {
	char from[512]; /* the From address; "" when none or unreadable */
	int have_date, have_from;
} header_scan;

/* The first Message-ID, without the white space around it. */
static msv_result keep_message_id(app_prepared *p, const field *f, msv_error *err)
{
	size_t a = 0, b = f->vlen;
	while (a < b && strchr(" \t\r\n", f->value[a]))
		a++;
	while (b > a && strchr(" \t\r\n", f->value[b - 1]))
		b--;
	if (!(p->message_id = msv_malloc(b - a + 1)))
		return nomem(err);
	memcpy(p->message_id, f->value + a, b - a);
	p->message_id[b - a] = '\0';
	return 0;
}

/* The first From field's address into s->from.  Without -f the From
 * address is the envelope sender: an unreadable one is an error, not a
 * silent user@host. */
static msv_result read_from(const app_submit_opts *o, const field *f, header_scan *s,
                            msv_error *err)
{
	msv_buf list;
	msv_buf_init(&list, 1 << 16);
	size_t n = 0;
	msv_result rc = MSV_OK;
	s->have_from = 1;
	if (msv_mime_address_list(&list, &n, f->value, f->vlen, err) == MSV_OK && n)
		snprintf(s->from, sizeof(s->from), "%s", list.data);
	else if (!o->sender) {
		char why[MSV_TEXT_MAX];
		snprintf(why, sizeof(why), "%s", n ? err->message : "no address in it");
		rc = msv_error_set(err, MSV_E_BAD_ADDRESS, MSV_CLASS_USAGE, "From: %s", why);
	}
	msv_buf_free(&list);
	return rc;
}

/* Walks the header: finds From, Date, Message-ID; with -t collects the
 * recipients.  head gets the header as stored: Bcc is never sent, with or
 * without -t (as Postfix's cleanup). */
static msv_result scan_header(const app_config *c, const app_submit_opts *o, app_prepared *p,
                              const msv_buf *m, size_t hdr_end, msv_buf *head, header_scan *s,
                              msv_error *err)
{
	char name[128];
	msv_result rc = MSV_OK;
	for (size_t pos = 0; pos < hdr_end && !rc;) {
		field f = {0, 0, NULL, 0};
		if ((rc = next_field(m, &pos, hdr_end, &f, name, sizeof(name), err)))
			break;
		int is_bcc = !strcasecmp(name, "Bcc");
		if (o->extract && (is_bcc || !strcasecmp(name, "To") || !strcasecmp(name, "Cc")))
			rc = add_addresses(c, p, f.value, f.vlen, name, err);
		if (!strcasecmp(name, "Date"))
			s->have_date = 1;
		else if (!strcasecmp(name, "Message-ID") && !p->message_id)
			rc = rc ? rc : keep_message_id(p, &f, err);
		else if (!strcasecmp(name, "From") && !s->have_from)
			rc = rc ? rc : read_from(o, &f, s, err);
		if (!rc && !is_bcc && msv_buf_add(head, m->data + f.start, f.end - f.start))
			rc = nomem(err);
	}
	return rc;
}

/* A recipient or sender argument is one line: the address parser would
 * read a CR or LF in it as folding, so "a@x\r\nRCPT TO:<b@y>" became the
 * recipient b@y.  Refuse line breaks in arguments outright. */
static msv_result check_arguments(const app_submit_opts *o, msv_error *err)
{
	for (size_t i = 0; i <= o->nrcpt; i++) {
		const char *a = i < o->nrcpt ? o->rcpt[i] : o->sender;
		if (i == o->nrcpt && a && strlen(a) > 254 + 2) { /* + "<>" */
			return msv_error_set(err, MSV_E_BAD_ADDRESS, MSV_CLASS_USAGE,
			                     "sender: longer than 254 octets");
		}
		if (a && strpbrk(a, "\r\n"))
			return msv_error_set(err, MSV_E_BAD_ADDRESS, MSV_CLASS_USAGE,
			                     "%s: a line break (CR or LF) in an address is not allowed",
			                     i < o->nrcpt ? "recipient" : "sender");
	}
	return 0;
}

/* The recipients given as arguments, added to those of -t, duplicates
 * dropped; none at all is a usage error. */
static msv_result envelope_recipients(const app_config *c, const app_submit_opts *o,
                                      app_prepared *p, msv_error *err)
{
	msv_result rc = MSV_OK;
	for (size_t i = 0; !rc && i < o->nrcpt; i++)
		rc = add_addresses(c, p, o->rcpt[i], strlen(o->rcpt[i]), "recipient", err);
	if (!rc)
		rc = drop_duplicates(p, err);
	if (!rc && !p->nrcpt)
		rc = msv_error_set(err, MSV_E_NO_RCPT, MSV_CLASS_USAGE,
		                   o->extract ? "no recipients: the message has no To, Cc or Bcc address"
		                              : "no recipients given (name them, or use -t)");
	return rc;
}

/* The envelope sender: -f ("" or "<>": the null sender), else the From
 * address, else the local user's user@myhostname.  A local user who is
 * not trusted gets user@myhostname whatever From says: bounces go back to
 * who sent, and the route (its DKIM keys) is not chosen by a From anyone
 * can write.  Over HTTP there is no local user to fall back on: a message
 * needs a sender or a From. */
static msv_result choose_sender(const app_config *c, const app_submit_opts *o, const char *from,
                                int trusted, char *sender, size_t n, msv_error *err)
{
	if (o->sender)
		snprintf(sender, n, "%s", strcmp(o->sender, "<>") ? o->sender : "");
	else if (*from && trusted)
		snprintf(sender, n, "%s", from);
	else if (o->local)
		return default_sender(c, o, sender, n, err);
	else
		return msv_error_set(err, MSV_E_BAD_ADDRESS, MSV_CLASS_USAGE,
		                     "no sender: the message has no From field and no \"sender\" was "
		                     "given");
	return 0;
}

/* A non-null sender must be one address; sender gets its canonical form. */
static msv_result check_sender(char *sender, size_t size, msv_error *err)
{
	if (!*sender)
		return 0;
	msv_buf one;
	msv_buf_init(&one, 4096);
	size_t n = 0;
	msv_result rc = MSV_OK;
	msv_error_clear(err); /* an unreadable From was ignored for -f */
	if (msv_mime_address_list(&one, &n, sender, strlen(sender), err)) {
		char why[MSV_TEXT_MAX];
		snprintf(why, sizeof(why), "%s", err->message);
		msv_error_set(err, err->code, MSV_CLASS_USAGE, "sender: %s", why);
		rc = as_code(err, MSV_E_BAD_ADDRESS);
	} else if (n != 1) {
		rc = msv_error_set(err, MSV_E_BAD_ADDRESS, MSV_CLASS_USAGE,
		                   "sender: one address expected, got %zu", n);
	} else {
		snprintf(sender, size, "%s", one.data);
	}
	msv_buf_free(&one);
	return rc;
}

/* A From field for a message without one: -F's name (ASCII: a quoted
 * string; 8-bit or encoded-word look-alikes: RFC 2047 words) and the
 * envelope sender. */
static msv_result add_from(const app_submit_opts *o, const app_prepared *p, msv_buf *full,
                           msv_error *err)
{
	const char *n = o->from_name;
	if (n && strpbrk(n, "\r\n"))
		return msv_error_set(err, MSV_E_BAD_MESSAGE, MSV_CLASS_USAGE,
		                     "-F: the name holds a line break");
	if (n && bad_name(n))
		return msv_error_set(err, MSV_E_BAD_MESSAGE, MSV_CLASS_USAGE,
		                     "-F: the name holds a control character or is longer than %d octets",
		                     FROM_NAME_MAX);
	if (!n || !*n)
		return msv_buf_addf(full, "From: %s\r\n", p->sender) ? nomem(err) : 0;
	msv_buf enc;
	msv_buf_init(&enc, 4096);
	msv_result rc = MSV_OK;
	/* Text that looks like an encoded word is encoded itself (RFC 2047
	 * 5): in quotes, many readers would still show it decoded. */
	if (!has_8bit(n, strlen(n)) && !strstr(n, "=?")) {
		int e = msv_buf_addc(&enc, '"');
		for (; *n && !e; n++)
			e = (*n == '"' || *n == '\\' ? msv_buf_addc(&enc, '\\') : 0) || msv_buf_addc(&enc, *n);
		if (e || msv_buf_addc(&enc, '"'))
			rc = nomem(err);
	} else if (msv_mime_encode_unstructured(&enc, n, strlen(n), 6, 0, err)) {
		rc = as_code(err, MSV_E_BAD_MESSAGE);
	}
	if (!rc && msv_buf_addf(full, "From: %.*s <%s>\r\n", (int)enc.len, enc.data, p->sender))
		rc = nomem(err);
	msv_buf_free(&enc);
	return rc;
}

static msv_result add_date(msv_buf *full, msv_error *err)
{
	time_t t = time(NULL);
	struct tm tm;
	char date[64];
	gmtime_r(&t, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	return msv_buf_addf(full, "Date: %s\r\n", date) ? nomem(err) : 0;
}

/* <time.random@sender's domain>, kept in p->message_id too. */
static msv_result add_message_id(app_prepared *p, msv_buf *full, msv_error *err)
{
	unsigned char rnd[12];
	char id[300];
	const char *at = strrchr(p->sender, '@');
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		memset(rnd, 0, sizeof(rnd));
	int k = snprintf(id, sizeof(id), "<%lld.", (long long)time(NULL));
	for (size_t i = 0; i < sizeof(rnd); i++)
		k += snprintf(id + k, sizeof(id) - (size_t)k, "%02x", rnd[i]);
	snprintf(id + k, sizeof(id) - (size_t)k, "@%s>", at && at[1] ? at + 1 : "localhost");
	if (!(p->message_id = msv_strdup(id)) || msv_buf_addf(full, "Message-ID: %s\r\n", id))
		return nomem(err);
	return 0;
}

/* Fields a message must have (RFC 5322 3.6), added in front of the
 * header, with X-Authentication-Warning for an untrusted local user's
 * sender and a From that is not their own address (kept: the envelope is
 * theirs, but marked). */
static msv_result add_fields(const app_config *c, const app_submit_opts *o, app_prepared *p,
                             const header_scan *s, int trusted, msv_buf *full, msv_error *err)
{
	msv_result rc = MSV_OK;
	if (o->local && !trusted && o->sender)
		rc = auth_warning(c, o, p->sender, 0, full, err);
	if (!rc && o->local && !trusted && *s->from)
		rc = auth_warning(c, o, s->from, 1, full, err);
	if (!rc && !s->have_from)
		rc = add_from(o, p, full, err);
	if (!rc && !s->have_date)
		rc = add_date(full, err);
	if (!rc && !p->message_id)
		rc = add_message_id(p, full, err);
	return rc;
}

/* The body as stored: signed with the route's DKIM keys, if any. */
static msv_result sign_body(const app_config *c, app_prepared *p, const msv_buf *full,
                            msv_error *err)
{
	msv_buf_init(&p->body, SIZE_MAX / 2);
	if (app_route_load_dkim(p->route, c->path, err))
		return err->code;
	if (p->route->dkim.n)
		return app_dkim_sign(&p->route->dkim, full->data, full->len, &p->body, err) ? err->code
		                                                                              : MSV_OK;
	return msv_buf_add(&p->body, full->data, full->len) ? nomem(err) : 0;
}

/* Sender, route and the whole message (new fields, the header as stored,
 * the body), signed. */
static msv_result complete(app_config *c, const app_submit_opts *o, app_prepared *p,
                           const header_scan *s, const msv_buf *m, size_t hdr_end,
                           const msv_buf *head, msv_error *err)
{
	char sender[512];
	int trusted = !o->local || app_user_trusted(c, o->uid, o->user);
	msv_result rc = choose_sender(c, o, s->from, trusted, sender, sizeof(sender), err);
	if (!rc)
		rc = check_sender(sender, sizeof(sender), err);
	if (!rc && !(p->sender = msv_strdup(sender)))
		rc = nomem(err);
	if (!rc && !(p->route = app_route_for(c, p->sender)))
		rc = msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
		                   "no route for sender %s: add [route default] to %s", p->sender,
		                   c->path);
	/* Admission before the costly part: a refused message is never signed. */
	if (!rc && o->admit)
		rc = o->admit(o->admit_payload, p->sender, s->from, err);
	msv_buf full;
	msv_buf_init(&full, SIZE_MAX / 2);
	if (!rc)
		rc = add_fields(c, o, p, s, trusted, &full, err);
	if (!rc && (msv_buf_add(&full, head->data, head->len) ||
	            msv_buf_add(&full, m->data + hdr_end, m->len - hdr_end)))
		rc = nomem(err);
	if (!rc)
		rc = sign_body(c, p, &full, err);
	msv_buf_free(&full);
	return rc;
}

msv_result app_prepare(app_config *c, const char *raw, size_t len, const app_submit_opts *o,
                       app_prepared *p, msv_error *err)
{
	memset(p, 0, sizeof(*p));
	msv_error_clear(err);
	msv_buf m, head;
	msv_buf_init(&m, SIZE_MAX / 2);
	msv_buf_init(&head, SIZE_MAX / 2);
	header_scan s = {"", 0, 0};
	size_t hdr_end = 0;
	/* Counted first: nothing is parsed for a list that is refused anyway. */
	msv_result rc = o->nrcpt > c->max_recipients ? too_many(err, c, o->nrcpt) : MSV_OK;
	if (!rc)
		rc = dsn_params(p, o, err);
	if (!rc)
		rc = normalize(&m, raw, len, &hdr_end, err);
	if (!rc)
		rc = scan_header(c, o, p, &m, hdr_end, &head, &s, err);
	if (!rc)
		rc = check_arguments(o, err);
	if (!rc)
		rc = envelope_recipients(c, o, p, err);
	if (o->submitter)
		snprintf(p->submitter, sizeof(p->submitter), "%s", o->submitter);
	else if (o->local)
		snprintf(p->submitter, sizeof(p->submitter), "uid:%ld", o->uid);
	if (!rc)
		rc = complete(c, o, p, &s, &m, hdr_end, &head, err);
	msv_buf_free(&head);
	msv_buf_free(&m);
	if (!rc) {
		p->body_8bit = has_8bit(p->body.data, p->body.len);
		p->smtputf8 = has_8bit(p->sender, strlen(p->sender));
		for (size_t i = 0; i < p->nrcpt; i++)
			p->smtputf8 |= has_8bit(p->rcpt[i], strlen(p->rcpt[i]));
	}
	if (rc)
		app_prepared_free(p);
	return rc;
}

void app_prepared_free(app_prepared *p)
{
	msv_buf_free(&p->body);
	for (size_t i = 0; i < p->nrcpt; i++)
		msv_free(p->rcpt[i]);
	msv_free(p->rcpt);
	msv_free(p->sender);
	msv_free(p->message_id);
	msv_free(p->envid);
	memset(p, 0, sizeof(*p));
}

msv_result app_check_suppressed(msv_queue *q, const app_prepared *p, msv_error *err)
{
	for (size_t i = 0; i < p->nrcpt; i++) {
		int found = 0;
		char *why = NULL;
		if (msv_queue_suppress_check(q, p->rcpt[i], &found, &why, err))
			return err->code;
		if (found) {
			msv_error_set(err, MSV_E_SUPPRESSED, MSV_CLASS_PERMANENT,
			              "%s is on the suppression list (%s); remove it with "
			              "'missive suppression rm' or override", p->rcpt[i],
			              why && *why ? why : "no reason recorded");
			msv_free(why);
			return MSV_E_SUPPRESSED;
		}
		msv_free(why);
	}
	return 0;
}

msv_result app_enqueue(msv_queue *q, app_prepared *const *p, size_t n,
                       char (*ids)[MSV_QID_LEN + 1], msv_error *err)
{
	msv_queue_message *qm = msv_calloc(n ? n : 1, sizeof(*qm));
	if (!qm)
		return nomem(err);
	for (size_t i = 0; i < n; i++) {
		const app_route *r = p[i]->route;
		qm[i].sender = p[i]->sender;
		qm[i].rcpt = (const char *const *)p[i]->rcpt;
		qm[i].nrcpt = p[i]->nrcpt;
		qm[i].body = p[i]->body.data;
		qm[i].len = p[i]->body.len;
		qm[i].message_id = p[i]->message_id;
		qm[i].route = r->name;
		qm[i].dsn_notify = p[i]->dsn_notify[0] ? p[i]->dsn_notify : r->dsn_notify;
		qm[i].dsn_ret = p[i]->dsn_ret[0] ? p[i]->dsn_ret : r->dsn_ret;
		qm[i].envid = p[i]->envid;
		qm[i].body_8bit = p[i]->body_8bit;
		qm[i].smtputf8 = p[i]->smtputf8;
		qm[i].submitter = p[i]->submitter[0] ? p[i]->submitter : NULL;
	}
	msv_result res = msv_queue_submit(q, qm, n, msv_wall_ms(), ids, err);
	msv_free(qm);
	return res;
}

int app_refused_by_gateway(msv_result code)
{
	return code == MSV_E_UNAUTHORIZED || code == MSV_E_FORBIDDEN ||
	       code == MSV_E_RATE_LIMITED || code == MSV_E_CIRCUIT_OPEN ||
	       code == MSV_E_REPUTATION;
}

/* Our own failures (class LOCAL: a busy, full or failing queue, the
 * signer) are worth a retry: class TEMPORARY, so that sendmail's callers
 * keep the message (75) rather than drop it as a software error.  Memory
 * running out while the message was read stays itself. */
static msv_result retry_later(const app_submitted *res, msv_error *err)
{
	if (err->cls == MSV_CLASS_LOCAL &&
	    (res->failed != APP_SUBMIT_PREPARE || err->code != MSV_E_NOMEM))
		err->cls = MSV_CLASS_TEMPORARY;
	return err->code;
}

/* message.accepted: once the message is durable.  A failure to record
 * it does not take back a message already queued: the caller logs it. */
static msv_result audit_accepted(const app_submit_opts *o, const app_prepared *p,
                                 const char *id, size_t size, msv_error *err)
{
	msv_buf rcpts;
	msv_buf_init(&rcpts, SIZE_MAX / 2);
	for (size_t i = 0; i < p->nrcpt; i++)
		if (msv_buf_add(&rcpts, ",", i ? 1 : 0) || msv_buf_addstr(&rcpts, p->rcpt[i])) {
			msv_buf_free(&rcpts);
			return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "audit: out of memory");
		}
	msv_audit_field f[] = {
		MSV_AUDIT_S("how", o->how ? o->how : "queue"),
		MSV_AUDIT_S("sender", p->sender),
		MSV_AUDIT_S("recipients", rcpts.data ? rcpts.data : ""),
		MSV_AUDIT_I("nrcpt", (long long)p->nrcpt),
		MSV_AUDIT_I("size", (long long)size),
		MSV_AUDIT_S("message_id", p->message_id ? p->message_id : ""),
		MSV_AUDIT_S("route", p->route ? p->route->name : ""),
	};
	msv_audit_event ev = {
		.type = "message.accepted",
		.actor_ip = o->actor_ip,
		.qid = id,
		.fields = f,
		.nfields = sizeof(f) / sizeof(f[0]),
	};
	app_audit_actor(&ev, p->submitter[0] ? p->submitter : NULL);
	msv_result rc = app_audit_emit(o->audit, &ev, err);
	msv_buf_free(&rcpts);
	return rc;
}

/* recipient.suppressed: a message refused for a suppressed recipient
 * (err names it: the masker makes it a pseudonym). */
static void audit_suppressed(const app_submit_opts *o, const app_prepared *p,
                             const msv_error *why)
{
	msv_audit_field f[] = {
		MSV_AUDIT_S("how", o->how ? o->how : "queue"),
		MSV_AUDIT_S("sender", p->sender),
		MSV_AUDIT_S("why", why->message),
	};
	msv_audit_event ev = {
		.type = "recipient.suppressed",
		.actor_ip = o->actor_ip,
		.fields = f,
		.nfields = sizeof(f) / sizeof(f[0]),
	};
	app_audit_actor(&ev, p->submitter[0] ? p->submitter : NULL);
	msv_error err;
	(void)app_audit_emit(o->audit, &ev, &err);
}

msv_result app_submit(app_config *c, msv_queue *q, const char *raw, size_t len,
                      const app_submit_opts *o, app_submitted *res, msv_error *err)
{
	memset(res, 0, sizeof(*res));
	app_prepared p;
	msv_result rc = app_prepare(c, raw, len, o, &p, err);
	if (rc) {
		res->failed = app_refused_by_gateway(rc) ? APP_SUBMIT_ADMIT : APP_SUBMIT_PREPARE;
		return retry_later(res, err);
	}
	if (!o->allow_suppressed && (rc = app_check_suppressed(q, &p, err))) {
		res->failed = rc == MSV_E_SUPPRESSED ? APP_SUBMIT_SUPPRESSED : APP_SUBMIT_QUEUE;
		if (rc == MSV_E_SUPPRESSED)
			audit_suppressed(o, &p, err);
	} else {
		app_prepared *one = &p;
		char id[1][MSV_QID_LEN + 1];
		if ((rc = app_enqueue(q, &one, 1, id, err))) {
			res->failed = APP_SUBMIT_QUEUE;
		} else {
			memcpy(res->id, id[0], sizeof(res->id));
			res->nrcpt = p.nrcpt;
			msv_error aerr;
			if (audit_accepted(o, &p, res->id, p.body.len, &aerr))
				res->audit_failed = 1;
			res->message_id = p.message_id;
			p.message_id = NULL;
		}
	}
	app_prepared_free(&p);
	return rc ? retry_later(res, err) : MSV_OK;
}

msv_result app_queue_open(const app_config *c, int read_only, msv_queue **q, msv_error *err)
{
	msv_queue_options o = MSV_QUEUE_OPTIONS_INIT;
	o.path = c->queue_url ? NULL : c->queue_path;
	o.url = c->queue_url;
	o.read_only = read_only;
	if (!msv_queue_open(q, &o, err))
		return MSV_OK;
	/* Our side failed (a directory we may not write, a file we cannot
	 * create): 73, as sendmail's, not a software error (issue 12). */
	if (err->cls == MSV_CLASS_LOCAL)
		err->code = MSV_E_CANT_CREATE;
	return err->code;
}
