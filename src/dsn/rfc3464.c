/*
 * The message/delivery-status body (RFC 3464 2.1-2.4) and its RFC 6533
 * global form: one group of per-message fields, then one group per
 * recipient, groups separated by empty lines; fields folded as in RFC
 * 5322; comments allowed in structured fields (RFC 3464 2.1.1 uses RFC
 * 822 lexical rules); unknown fields ignored (2.4 extension fields and
 * X- fields).
 *
 * Leniency, all of it for reports seen in the wild: a recipient group
 * not separated from the per-message group (a Final-Recipient starts a
 * recipient wherever it is), a second Final-Recipient in one group
 * (starts the next recipient), an address without its type, field
 * names in any case, blank lines inside a group (a field continues
 * only on a line that starts with white space).
 */
#include <string.h>

#include "dsn/dsn_int.h"

static int wsp(char c)
{
	return c == ' ' || c == '\t';
}

msv_result msv__dsn_xtext_decode(msv_buf *out, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (ch == '+' && i + 2 < n) {
			int hi = -1, lo = -1;
			char a = s[i + 1], b = s[i + 2];
			if (a >= '0' && a <= '9')
				hi = a - '0';
			else if (a >= 'A' && a <= 'F')
				hi = a - 'A' + 10;
			else if (a >= 'a' && a <= 'f')
				hi = a - 'a' + 10;
			if (b >= '0' && b <= '9')
				lo = b - '0';
			else if (b >= 'A' && b <= 'F')
				lo = b - 'A' + 10;
			else if (b >= 'a' && b <= 'f')
				lo = b - 'a' + 10;
			if (hi >= 0 && lo >= 0) {
				msv_result r = msv_buf_addc(out, (char)(hi * 16 + lo));
				if (r)
					return r;
				i += 2;
				continue;
			}
		}
		msv_result r = msv_buf_addc(out, ch);
		if (r)
			return r;
	}
	return MSV_OK;
}

/* Removes (comments) from a structured value into out (quoted strings
 * kept as they are). */
static msv_result uncomment(msv_buf *out, const char *s, size_t n)
{
	int depth = 0, q = 0;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (ch == '\\' && i + 1 < n && (q || depth)) {
			if (!depth) {
				msv_result r = msv_buf_add(out, s + i, 2);
				if (r)
					return r;
			}
			i++;
			continue;
		}
		if (!depth && ch == '"')
			q = !q;
		if (!q) {
			if (ch == '(') {
				depth++;
				continue;
			}
			if (ch == ')' && depth) {
				depth--;
				continue;
			}
		}
		if (depth)
			continue;
		msv_result r = msv_buf_addc(out, ch == '\n' || ch == '\r' || ch == '\t' ? ' ' : ch);
		if (r)
			return r;
	}
	return MSV_OK;
}

int msv__dsn_typed_addr(const char *s, size_t n, size_t *a0, size_t *a1)
{
	size_t i = 0;
	/* "addr-type ;" : an atom then ';' */
	const char *semi = memchr(s, ';', n);
	if (semi) {
		size_t k = 0;
		while (k < (size_t)(semi - s) && s[k] != '@' && s[k] != '<')
			k++;
		if (k == (size_t)(semi - s))
			i = k + 1;
	}
	while (i < n && (wsp(s[i]) || s[i] == '<' || s[i] == '"'))
		i++;
	/* A program or a file (Exim, Sendmail: "|/usr/bin/procmail",
	 * "/var/mail/box"): the whole value. */
	if (i < n && (s[i] == '|' || s[i] == '/')) {
		size_t e = n;
		while (e > i && (wsp(s[e - 1]) || s[e - 1] == '\n' || s[e - 1] == '\r'))
			e--;
		*a0 = i;
		*a1 = e;
		return 1;
	}
	size_t e = n;
	while (e > i && (wsp(s[e - 1]) || s[e - 1] == '>' || s[e - 1] == '"' || s[e - 1] == '\n' ||
	                 s[e - 1] == '\r' || s[e - 1] == ';' || s[e - 1] == ','))
		e--;
	/* "Name <addr>" (seen from some gateways): take the bracketed part. */
	for (size_t k = i; k < e; k++) {
		if (s[k] == '<') {
			size_t m = k + 1;
			while (m < e && s[m] != '>')
				m++;
			i = k + 1;
			e = m;
			break;
		}
	}
	/* A space inside: keep the first word holding an '@'. */
	for (size_t k = i; k < e; k++) {
		if (wsp(s[k])) {
			const char *at = memchr(s + i, '@', k - i);
			if (at) {
				e = k;
				break;
			}
			i = k + 1;
		}
	}
	if (i >= e)
		return 0;
	*a0 = i;
	*a1 = e;
	return 1;
}

/* Decodes RFC 6533 3 unitext/xtext escapes "\x{HHHH}" into UTF-8. */
static msv_result add_utf8_escapes(msv_buf *out, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\\' && i + 3 < n && s[i + 1] == 'x' && s[i + 2] == '{') {
			size_t k = i + 3;
			unsigned long cp = 0;
			while (k < n && k - i < 10 && s[k] != '}') {
				char h = s[k];
				int v = h >= '0' && h <= '9' ? h - '0'
				        : h >= 'A' && h <= 'F' ? h - 'A' + 10
				        : h >= 'a' && h <= 'f' ? h - 'a' + 10
				                               : -1;
				if (v < 0)
					break;
				cp = cp * 16 + (unsigned long)v;
				k++;
			}
			if (k < n && s[k] == '}' && k > i + 3 && cp && cp <= 0x10FFFF &&
			    !(cp >= 0xD800 && cp <= 0xDFFF)) {
				char u[4];
				size_t ul;
				if (cp < 0x80) {
					u[0] = (char)cp;
					ul = 1;
				} else if (cp < 0x800) {
					u[0] = (char)(0xC0 | (cp >> 6));
					u[1] = (char)(0x80 | (cp & 0x3F));
					ul = 2;
				} else if (cp < 0x10000) {
					u[0] = (char)(0xE0 | (cp >> 12));
					u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
					u[2] = (char)(0x80 | (cp & 0x3F));
					ul = 3;
				} else {
					u[0] = (char)(0xF0 | (cp >> 18));
					u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
					u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
					u[3] = (char)(0x80 | (cp & 0x3F));
					ul = 4;
				}
				msv_result r = msv_buf_add(out, u, ul);
				if (r)
					return r;
				i = k;
				continue;
			}
		}
		msv_result r = msv_buf_addc(out, s[i]);
		if (r)
			return r;
	}
	return MSV_OK;
}

/* Field names. */
enum {
	F_OTHER = 0,
	/* per message */
	F_ENVID, F_REPORTING_MTA, F_ARRIVAL_DATE, F_DSN_GATEWAY, F_RECEIVED_FROM,
	/* per recipient */
	F_ORIGINAL_RCPT, F_FINAL_RCPT, F_ACTUAL_RCPT, F_ACTION, F_STATUS, F_REMOTE_MTA,
	F_DIAGNOSTIC, F_LAST_ATTEMPT, F_WILL_RETRY, F_FINAL_LOG_ID,
};

static const struct {
	const char *name;
	int id;
} field_names[] = {
	{"original-envelope-id", F_ENVID},
	{"reporting-mta", F_REPORTING_MTA},
	{"arrival-date", F_ARRIVAL_DATE},
	{"dsn-gateway", F_DSN_GATEWAY},
	{"received-from-mta", F_RECEIVED_FROM},
	{"original-recipient", F_ORIGINAL_RCPT},
	{"final-recipient", F_FINAL_RCPT},
	{"x-actual-recipient", F_ACTUAL_RCPT},
	{"action", F_ACTION},
	{"status", F_STATUS},
	{"remote-mta", F_REMOTE_MTA},
	{"diagnostic-code", F_DIAGNOSTIC},
	{"last-attempt-date", F_LAST_ATTEMPT},
	{"will-retry-until", F_WILL_RETRY},
	{"final-log-id", F_FINAL_LOG_ID},
};

typedef struct ds_state {
	dsn_ctx *c;
	int utf8;
	msv_dsn_recipient *cur; /* recipient of the current group, or NULL */
	size_t added;
	int have_final, have_orig, have_action, have_status, have_diag;
	int after_final; /* an Action, Status or Diagnostic-Code followed the Final-Recipient */
	msv_buf tmp;
	int skip_group; /* the group's recipient was dropped (limit) */
} ds_state;

static void new_group(ds_state *st)
{
	st->cur = NULL;
	st->have_final = st->have_orig = st->have_action = st->have_status = st->have_diag = 0;
	st->after_final = 0;
	st->skip_group = 0;
}

static msv_dsn_recipient *cur_rcpt(ds_state *st)
{
	if (!st->cur && !st->skip_group) {
		st->cur = msv__dsn_rcpt_new(st->c);
		if (!st->cur)
			st->skip_group = 1;
		else
			st->added++;
	}
	return st->cur;
}

/* Value without its "type;" prefix (Remote-MTA: dns; host, Diagnostic-Code:
 * smtp; 550 ...). */
static void strip_type(const char **v, size_t *n)
{
	const char *s = *v;
	size_t len = *n;
	const char *semi = memchr(s, ';', len);
	if (!semi)
		return;
	size_t k = (size_t)(semi - s);
	for (size_t i = 0; i < k; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		      ch == '-' || ch == '_' || wsp((char)ch)))
			return;
	}
	*v = semi + 1;
	*n = len - k - 1;
	while (*n && (wsp(**v) || **v == '\n')) {
		(*v)++;
		(*n)--;
	}
}

/* Keeps a recipient field's value whole, type included ("rfc822;
 * a@b", "X400; /S=Doe/"), comments removed and RFC 6533 escapes
 * decoded: which address it gives is decided once the group is read
 * (resolve_group). */
static void set_addr(ds_state *st, char **field, const char *v, size_t n)
{
	dsn_ctx *c = st->c;
	msv_buf_reset(&st->tmp);
	if (uncomment(&st->tmp, v, n)) {
		c->oom = 1;
		return;
	}
	const char *s = st->tmp.data ? st->tmp.data : "";
	size_t len = st->tmp.len;
	if (st->utf8 || memchr(s, '\\', len)) {
		msv_buf dec;
		msv_buf_init(&dec, DSN_FIELD_MAX * 4);
		if (add_utf8_escapes(&dec, s, len)) {
			msv_buf_free(&dec);
			c->oom = 1;
			return;
		}
		msv__dsn_set(c, field, dec.data, dec.len);
		msv_buf_free(&dec);
		return;
	}
	msv__dsn_set(c, field, s, len);
}

/* The canonical mailbox of a kept field value, or NULL (no Internet
 * mailbox, or out of memory: c->oom). */
static char *mailbox_of(dsn_ctx *c, const char *v)
{
	if (!v)
		return NULL;
	msv_buf b;
	msv_buf_init(&b, DSN_FIELD_MAX);
	int ok = 0;
	if (msv__dsn_mailbox(&b, &ok, v, strlen(v)) == MSV_E_NOMEM)
		c->oom = 1;
	char *r = ok ? msv__dsn_str(c, b.data, b.len) : NULL;
	msv_buf_free(&b);
	return r;
}

/* A kept value as a person reads it: "rfc822;" dropped and the value
 * without its brackets; another type kept in front ("X400; /S=Doe/"),
 * so nobody takes it for a mailbox. */
static char *shown_of(dsn_ctx *c, const char *v)
{
	size_t tl, n = strlen(v);
	int type = msv__dsn_addr_type(v, n, &tl);
	const char *a = v + tl;
	size_t an = n - tl;
	while (an && (*a == ' ' || *a == '<')) {
		a++;
		an--;
	}
	while (an && (a[an - 1] == ' ' || a[an - 1] == '>'))
		an--;
	if (type != DSN_ADDR_OTHER)
		return msv__dsn_str(c, a, an);
	msv_buf b;
	msv_buf_init(&b, DSN_FIELD_MAX);
	if (msv_buf_add(&b, v, tl) || msv_buf_addc(&b, ' ') || msv_buf_add(&b, a, an))
		c->oom = 1;
	char *r = msv__dsn_str(c, b.data, b.len);
	msv_buf_free(&b);
	return r;
}

/* Which address a recipient group is about.  The address we sent to is
 * the Original-Recipient (RFC 3464 2.3.1: the ORCPT we gave, or the
 * address as the reporting MTA received it) when it is an Internet
 * mailbox: the Final-Recipient is what that MTA made of it (an internal
 * routing name such as user@ims-ms-daemon, another case, an alias's
 * target, an X.400 name).  Else the Final-Recipient, else
 * X-Actual-Recipient, when they are mailboxes.  address stays NULL when
 * none is: the caller looks elsewhere (the returned message) or drops
 * the group.  The Final-Recipient is kept in final_recipient when it is
 * not the address reported. */
static void resolve_group(dsn_ctx *c, msv_dsn_recipient *r)
{
	char *actual = r->address;
	r->address = NULL;
	char *om = mailbox_of(c, r->original_recipient);
	char *fm = mailbox_of(c, r->final_recipient);
	char *am = fm ? NULL : mailbox_of(c, actual);
	const char *fin = r->final_recipient ? r->final_recipient : actual;
	char *shown = fm ? NULL : fin ? shown_of(c, fin) : NULL;
	r->address = om ? om : fm ? fm : am;
	if (om) {
		msv_free(r->original_recipient);
		r->original_recipient = msv__dsn_str(c, om, strlen(om));
	} else if (r->original_recipient) {
		char *o = shown_of(c, r->original_recipient);
		msv_free(r->original_recipient);
		r->original_recipient = o;
	}
	msv_free(r->final_recipient);
	r->final_recipient = NULL;
	const char *f = fm ? fm : shown;
	if (f && (!r->address || strcmp(f, r->address)))
		r->final_recipient = msv__dsn_str(c, f, strlen(f));
	if (om)
		msv_free(fm);
	if (om || fm)
		msv_free(am);
	msv_free(shown);
	msv_free(actual);
}

static int field_id(const char *name, size_t nl)
{
	for (size_t i = 0; i < sizeof(field_names) / sizeof(field_names[0]); i++)
		if (msv__dsn_ci_eq(name, nl, field_names[i].name))
			return field_names[i].id;
	return F_OTHER;
}

/* The value without its comments, in st->tmp.  -1 when out of memory
 * (c->oom set). */
static int uncomment_tmp(ds_state *st, const char *v, size_t n)
{
	msv_buf_reset(&st->tmp);
	if (uncomment(&st->tmp, v, n)) {
		st->c->oom = 1;
		return -1;
	}
	return 0;
}

/* Original-Envelope-Id, Reporting-MTA and Arrival-Date: the report's. */
static void message_field(ds_state *st, int id, const char *v, size_t n)
{
	dsn_ctx *c = st->c;
	msv_dsn_report *rep = c->rep;
	switch (id) {
	case F_ENVID:
		msv_buf_reset(&st->tmp);
		if (msv__dsn_xtext_decode(&st->tmp, v, n)) {
			c->oom = 1;
			return;
		}
		msv__dsn_set_once(c, &rep->envelope_id, st->tmp.data, st->tmp.len);
		return;
	case F_REPORTING_MTA:
		strip_type(&v, &n);
		if (!uncomment_tmp(st, v, n))
			msv__dsn_set_once(c, &rep->reporting_mta, st->tmp.data, st->tmp.len);
		return;
	case F_ARRIVAL_DATE:
		msv__dsn_set_once(c, &rep->arrival_date, v, n);
		return;
	default:
		return;
	}
}

/* Final-Recipient and X-Actual-Recipient.  A second Final-Recipient in
 * a group starts the next one. */
static void final_field(ds_state *st, int id, const char *v, size_t n)
{
	if (id == F_FINAL_RCPT) {
		if (st->have_final)
			new_group(st);
		st->have_final = 1;
	}
	if (!cur_rcpt(st))
		return;
	if (id == F_FINAL_RCPT)
		set_addr(st, &st->cur->final_recipient, v, n);
	else if (!st->cur->address)
		set_addr(st, &st->cur->address, v, n); /* X-Actual-Recipient, until resolved */
}

/* RFC 3464 2.3 puts Original-Recipient first; after the Action, Status
 * or Diagnostic-Code that followed a group's Final-Recipient, it starts
 * the next group (reports without blank lines).  Amazon SES writes
 * Action first, then Final- and Original-Recipient: one group. */
static void original_field(ds_state *st, const char *v, size_t n)
{
	if (st->have_orig || st->after_final)
		new_group(st);
	st->have_orig = 1;
	if (cur_rcpt(st))
		set_addr(st, &st->cur->original_recipient, v, n);
}

/* Action, Status and Diagnostic-Code: a second one in a group that has
 * its Final-Recipient starts the next group.  *have is the field's
 * have_ flag.  Returns the group's recipient, or NULL. */
static msv_dsn_recipient *group_field(ds_state *st, int *have)
{
	st->after_final |= st->have_final;
	if (*have && st->have_final)
		new_group(st);
	*have = 1;
	return cur_rcpt(st);
}

/* action_field, status_field, diagnostic_field: called with the
 * group's recipient in st->cur. */
static void action_field(ds_state *st, const char *v, size_t n)
{
	static const struct {
		const char *w;
		msv_dsn_action a;
	} acts[] = {{"failed", MSV_DSN_ACTION_FAILED},     {"failure", MSV_DSN_ACTION_FAILED},
	            {"delayed", MSV_DSN_ACTION_DELAYED},   {"delivered", MSV_DSN_ACTION_DELIVERED},
	            {"relayed", MSV_DSN_ACTION_RELAYED},   {"expanded", MSV_DSN_ACTION_EXPANDED},
	            {"deliverable", MSV_DSN_ACTION_DELIVERED}};
	if (uncomment_tmp(st, v, n))
		return;
	const char *a = st->tmp.data ? st->tmp.data : "";
	size_t al = st->tmp.len, k = 0;
	while (k < al && wsp(a[k]))
		k++;
	a += k;
	al -= k;
	for (size_t i = 0; i < sizeof(acts) / sizeof(acts[0]); i++)
		if (msv__dsn_ci_prefix(a, al, acts[i].w)) {
			st->cur->action = acts[i].a;
			break;
		}
}

static void status_field(ds_state *st, const char *v, size_t n)
{
	if (uncomment_tmp(st, v, n))
		return;
	char status[MSV_DSN_STATUS_MAX];
	if (st->tmp.len && msv__dsn_status_norm(st->tmp.data, st->tmp.len, status)) {
		memcpy(st->cur->status, status, sizeof(status));
		st->cur->status_source = MSV_DSN_SRC_FIELD;
	}
}

/* Diagnostic-Code: the text, and its type ("smtp") lowercased. */
static void diagnostic_field(ds_state *st, const char *v, size_t n)
{
	dsn_ctx *c = st->c;
	const char *v0 = v;
	strip_type(&v, &n);
	if (v != v0 && !st->cur->diagnostic_type) {
		size_t tl = 0;
		while (v0 + tl < v && v0[tl] != ';')
			tl++;
		char *ty = msv__dsn_str(c, v0, tl);
		for (char *q = ty; q && *q; q++)
			*q = (char)msv__dsn_lower((unsigned char)*q);
		st->cur->diagnostic_type = ty;
	}
	msv__dsn_set_once(c, &st->cur->diagnostic, v, n);
}

/* One field: name[0..nl), its value v[0..n) with any folding. */
static void field(ds_state *st, const char *name, size_t nl, const char *v, size_t n)
{
	dsn_ctx *c = st->c;
	int id = field_id(name, nl);
	/* Trim the value. */
	while (n && (wsp(*v) || *v == '\n')) {
		v++;
		n--;
	}
	while (n && (wsp(v[n - 1]) || v[n - 1] == '\n'))
		n--;
	switch (id) {
	case F_ENVID:
	case F_REPORTING_MTA:
	case F_ARRIVAL_DATE:
		message_field(st, id, v, n);
		return;
	case F_FINAL_RCPT:
	case F_ACTUAL_RCPT:
		final_field(st, id, v, n);
		return;
	case F_ORIGINAL_RCPT:
		original_field(st, v, n);
		return;
	case F_ACTION:
		if (group_field(st, &st->have_action))
			action_field(st, v, n);
		return;
	case F_STATUS:
		if (group_field(st, &st->have_status))
			status_field(st, v, n);
		return;
	case F_REMOTE_MTA:
		if (!cur_rcpt(st))
			return;
		strip_type(&v, &n);
		if (!uncomment_tmp(st, v, n))
			msv__dsn_set_once(c, &st->cur->remote_mta, st->tmp.data, st->tmp.len);
		return;
	case F_DIAGNOSTIC:
		if (group_field(st, &st->have_diag))
			diagnostic_field(st, v, n);
		return;
	case F_LAST_ATTEMPT:
		if (cur_rcpt(st))
			msv__dsn_set_once(c, &st->cur->last_attempt_date, v, n);
		return;
	case F_WILL_RETRY:
		if (cur_rcpt(st))
			msv__dsn_set_once(c, &st->cur->will_retry_until, v, n);
		return;
	default:
		return;
	}
}

size_t msv__dsn_ds_read(dsn_ctx *c, const char *s, size_t n, int utf8)
{
	ds_state st;
	memset(&st, 0, sizeof(st));
	st.c = c;
	st.utf8 = utf8;
	msv_buf_init(&st.tmp, DSN_FIELD_MAX * 2);
	size_t first = c->rep->nrecipients;
	new_group(&st);
	size_t i = 0;
	const char *name = NULL, *val = NULL;
	size_t nl = 0, vl = 0;
	while (i < n) {
		const char *nlp = memchr(s + i, '\n', n - i);
		size_t le = nlp ? (size_t)(nlp - s) : n;
		size_t next = nlp ? le + 1 : n;
		size_t k = i;
		while (k < le && wsp(s[k]))
			k++;
		if (k == le) { /* empty line: end of a group */
			if (name)
				field(&st, name, nl, val, vl);
			name = NULL;
			new_group(&st);
			i = next;
			continue;
		}
		if (k > i && name) { /* continuation */
			vl = le - (size_t)(val - s);
			i = next;
			continue;
		}
		if (name)
			field(&st, name, nl, val, vl);
		name = NULL;
		const char *colon = memchr(s + k, ':', le - k);
		if (colon) {
			size_t ne = (size_t)(colon - s);
			while (ne > k && wsp(s[ne - 1]))
				ne--;
			int ok = ne > k;
			for (size_t j = k; ok && j < ne; j++)
				if ((unsigned char)s[j] <= 32 || (unsigned char)s[j] >= 127)
					ok = 0;
			if (ok) {
				name = s + k;
				nl = ne - k;
				val = colon + 1;
				vl = le - (size_t)(val - s);
			}
		}
		i = next;
	}
	if (name)
		field(&st, name, nl, val, vl);
	msv_buf_free(&st.tmp);
	/* Groups that name no recipient at all are dropped; those whose
	 * names are no mailbox keep a NULL address for the caller. */
	size_t j = first;
	while (j < c->rep->nrecipients) {
		msv_dsn_recipient *r = &c->rep->recipients[j];
		if (!r->address && !r->original_recipient && !r->final_recipient) {
			msv__dsn_rcpt_remove(c, j);
			continue;
		}
		resolve_group(c, r);
		j++;
	}
	return c->rep->nrecipients - first;
}
