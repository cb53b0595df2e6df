/*
 * msv_dsn_parse(): one message in, one report out (contract in
 * missive/dsn.h, design in docs/internals/dsn.md).
 *
 * RFCs: 3464 and 6522 (multipart/report; report-type=delivery-status),
 * 6533 (message/global-delivery-status, message/global,
 * message/global-headers), 3462 (text/rfc822-headers), 3461 4.4 (ENVID
 * in xtext), 5965 (ARF: message/feedback-report), 3834 (Auto-Submitted).
 *
 * The walk: msv_mime_parse() splits the message; the parts outside the
 * returned message are sorted into delivery-status parts, a feedback
 * report, the first text part (the prose) and the returned message or
 * its headers.  Reports are read field by field (rfc3464.c), prose by
 * the plain-text reader (text.c), and every recipient is then classified
 * (classify.c).
 */
#include <string.h>
#include <strings.h>

#include "core/core_int.h"
#include "dsn/dsn_int.h"
#include "mime/mime_int.h"

typedef struct walk {
	dsn_ctx *c;
	const msv_mime_tree *t;
	long text_node, html_node, orig_node, arf_node;
	long ds_nodes[8];
	int ds_utf8[8];
	size_t nds;
	int report_feedback; /* multipart/report; report-type=feedback-report */
	int report_ds;       /* multipart/report; report-type=delivery-status */
	/* The bounce's own header values, decoded (msv_buf data, "" if none). */
	msv_buf subject, from, to, failed, autosub;
	/* Addresses that are the sender's: never recipients. */
	msv_buf skipbuf; /* NUL-separated */
	size_t skipoff[32];
	const char *skip[32];
	size_t nskip;
	/* Decoded prose, LF line ends; cut: where the returned message
	 * starts in it (its length when it does not). */
	msv_buf text;
	size_t cut, orig_start;
	/* The returned message's header block (its own buffer when it had
	 * to be decoded). */
	msv_buf orig_raw;
	msv_mime_header oh[256];
	msv_mime_node on[4];
	msv_mime_tree ot;
	int have_orig;
	msv_buf sent; /* the returned message's To and Cc, decoded (orig_rcpts) */
	int sent_done;
} walk;

static int type_is(const msv_mime_node *n, const char *type, const char *sub)
{
	return msv__dsn_ci_eq(n->type.p, n->type.len, type) &&
	       (!sub || msv__dsn_ci_eq(n->subtype.p, n->subtype.len, sub));
}

static int is_orig_type(const msv_mime_node *n)
{
	return type_is(n, "message", "rfc822") || type_is(n, "message", "global") ||
	       type_is(n, "message", "rfc822-headers") || type_is(n, "text", "rfc822-headers") ||
	       type_is(n, "message", "global-headers") || type_is(n, "text", "rfc822") ||
	       type_is(n, "message", "partial");
}

/* Appends the decoded value of the node's first header called name. */
static void header_text(walk *w, const msv_mime_tree *t, const msv_mime_node *n, const char *name,
                        msv_buf *out)
{
	const msv_mime_header *h = msv_mime_header_get(t, n, name);
	if (!h)
		return;
	msv_error e;
	if (msv_mime_decode_header(out, h->value.p, h->value.len, &e) && e.code == MSV_E_NOMEM)
		w->c->oom = 1;
}

static int is_attachment(const msv_mime_tree *t, const msv_mime_node *n)
{
	const msv_mime_header *h = msv_mime_header_get(t, n, "Content-Disposition");
	return h && msv__dsn_ci_find(h->value.p, h->value.len, "attachment") >= 0 &&
	       msv__dsn_ci_find(h->value.p, h->value.len, "attachment") < 4;
}

static void add_skip(walk *w, const char *a, size_t n)
{
	if (w->nskip >= sizeof(w->skip) / sizeof(w->skip[0]) || !n || n > 255)
		return;
	for (size_t i = 0; i < w->nskip; i++)
		if (msv__dsn_ci_eq(a, n, w->skipbuf.data + w->skipoff[i]))
			return;
	/* Offsets: the buffer may move while it grows; pointers are made
	 * once the list is complete. */
	size_t off = w->skipbuf.len;
	if (msv_buf_add(&w->skipbuf, a, n) || msv_buf_addc(&w->skipbuf, '\0')) {
		/* The failed growth freed the buffer: the entries counted so far
		 * point nowhere now.  Forget them all (the parse fails anyway). */
		w->c->oom = 1;
		w->nskip = 0;
		msv_buf_free(&w->skipbuf);
		return;
	}
	w->skipoff[w->nskip++] = off;
}

static void add_skip_addrs(walk *w, const char *s, size_t n)
{
	size_t i = 0, a0, a1;
	while (msv__dsn_find_addr(s, n, i, &a0, &a1)) {
		add_skip(w, s + a0, a1 - a0);
		i = a1;
	}
}

/* Undoes a part's transfer encoding into out (capped at DSN_TEXT_MAX).
 * Only the first DSN_TEXT_MAX encoded octets are decoded: report parts
 * are small, and the prose that matters comes first; a 10 MB part is
 * read in part rather than refused.  0 on success. */
static int decode_node(const msv_mime_node *n, msv_buf *out)
{
	msv_mime_node cut = *n;
	if (cut.body.len > DSN_TEXT_MAX)
		cut.body.len = DSN_TEXT_MAX;
	msv_error e;
	return msv_mime_decode_body(out, &cut, &e) ? -1 : 0;
}

/* Decodes a part into UTF-8 prose (LF line ends), appended to out. */
static void part_text(walk *w, const msv_mime_node *n, msv_buf *out, int html)
{
	dsn_ctx *c = w->c;
	msv_buf raw, utf;
	msv_buf_init(&raw, DSN_TEXT_MAX);
	msv_buf_init(&utf, DSN_TEXT_MAX * 4);
	msv_error e;
	if (decode_node(n, &raw)) {
		msv_buf_free(&raw);
		return;
	}
	char cs[64] = "utf-8";
	const msv_mime_header *ct = msv_mime_header_get(w->t, n, "Content-Type");
	if (ct) {
		msv_buf b;
		int found = 0;
		msv_buf_init(&b, 256);
		if (!msv_mime_param(&b, &found, ct->value.p, ct->value.len, "charset", &e) && found &&
		    b.len && b.len < sizeof(cs)) {
			memcpy(cs, b.data, b.len);
			cs[b.len] = '\0';
		}
		msv_buf_free(&b);
	}
	msv_result r = MSV_OK;
	const char *src = raw.data ? raw.data : "";
	if (msv__to_utf8(&utf, cs, strlen(cs), src, raw.len, &r) < 0)
		msv__to_utf8(&utf, "utf-8", 5, src, raw.len, &r);
	if (r == MSV_E_NOMEM)
		c->oom = 1;
	msv_buf_free(&raw);
	const char *u = utf.data ? utf.data : "";
	if (html)
		r = msv__dsn_add_html_text(out, u, utf.len);
	else
		r = msv__dsn_add_lf(out, u, utf.len);
	if (r == MSV_E_NOMEM)
		c->oom = 1;
	msv_buf_free(&utf);
}

/* Parses a header block held in w->orig_raw into w->ot. */
static int parse_orig_raw(walk *w)
{
	w->ot = (msv_mime_tree){w->oh, sizeof(w->oh) / sizeof(w->oh[0]), 0, w->on, 1, 0, 1};
	msv_error e;
	/* One node: an encapsulated multipart would need more; its headers
	 * are all we read, so parse the header block alone. */
	const char *s = w->orig_raw.data ? w->orig_raw.data : "";
	size_t n = w->orig_raw.len;
	/* Cut at the end of the header block so the body is never parsed. */
	for (size_t i = 0; i + 1 < n; i++)
		if (s[i] == '\n' && s[i + 1] == '\n') {
			n = i + 1;
			break;
		}
	msv_result r = msv_mime_parse(&w->ot, s, n, &e);
	/* Past a limit (more fields than we keep, a body that turned out to
	 * be a multipart): the parse stopped, but the fields it stored for
	 * node 0 are whole, and the first ones are all we read. */
	return (r == MSV_OK || r == MSV_E_TOO_LARGE) && w->ot.nnodes >= 1;
}

/* The returned message's headers: from the parsed child, or decoded. */
static void find_orig(walk *w, const char *text_cut, size_t text_cut_len)
{
	const msv_mime_tree *t = w->t;
	if (w->orig_node >= 0) {
		const msv_mime_node *n = &t->nodes[w->orig_node];
		if (n->first_child >= 0 && t->nodes[n->first_child].nheaders) {
			/* Already parsed (message/rfc822 in 7bit/8bit/binary). */
			const msv_mime_node *ch = &t->nodes[n->first_child];
			msv_buf_reset(&w->orig_raw);
			if (ch->nheaders) {
				const msv_mime_header *h0 = &t->headers[ch->header];
				const msv_mime_header *hl = &t->headers[ch->header + ch->nheaders - 1];
				const char *s = h0->name.p, *e = hl->value.p + hl->value.len;
				if (msv__dsn_add_lf(&w->orig_raw, s, (size_t)(e - s)) ||
				    msv_buf_add(&w->orig_raw, "\n\n", 2))
					w->c->oom = 1;
			}
		} else {
			msv_buf raw;
			msv_buf_init(&raw, DSN_TEXT_MAX);
			if (!decode_node(n, &raw) && raw.len) {
				/* Skip blank lines some MTAs put first. */
				size_t k = 0;
				while (k < raw.len && (raw.data[k] == '\n' || raw.data[k] == '\r'))
					k++;
				if (msv__dsn_add_lf(&w->orig_raw, raw.data + k, raw.len - k))
					w->c->oom = 1;
			}
			msv_buf_free(&raw);
		}
	}
	if (!w->orig_raw.len && text_cut && text_cut_len) {
		/* The prose carried it: find the first field line. */
		const char *s = text_cut;
		size_t n = text_cut_len, i = 0;
		while (i < n) {
			const char *nl = memchr(s + i, '\n', n - i);
			size_t le = nl ? (size_t)(nl - s) : n;
			size_t k = i;
			while (k < le && s[k] != ':' && s[k] != ' ' && (unsigned char)s[k] > 32)
				k++;
			if (k > i && k < le && s[k] == ':')
				break;
			i = nl ? le + 1 : n;
		}
		if (i < n && msv__dsn_add_lf(&w->orig_raw, s + i, n - i))
			w->c->oom = 1;
	}
	if (w->orig_raw.len)
		w->have_orig = parse_orig_raw(w);
}

static void orig_header(walk *w, const char *name, msv_buf *out)
{
	if (!w->have_orig)
		return;
	header_text(w, &w->ot, &w->ot.nodes[0], name, out);
}

/* Message-ID with its brackets: the first <...> of the value. */
static void set_msgid(dsn_ctx *c, char **field, const char *s, size_t n)
{
	const char *lt = memchr(s, '<', n);
	if (lt) {
		const char *gt = memchr(lt, '>', n - (size_t)(lt - s));
		if (gt && gt > lt + 1) {
			msv__dsn_set_once(c, field, lt, (size_t)(gt - lt) + 1);
			return;
		}
	}
	size_t i = 0;
	while (i < n && (s[i] == ' ' || s[i] == '\t'))
		i++;
	size_t e = i;
	while (e < n && s[e] != ' ' && s[e] != '\t' && s[e] != '\n')
		e++;
	if (e > i && memchr(s + i, '@', e - i)) {
		msv_buf b;
		msv_buf_init(&b, DSN_FIELD_MAX);
		if (msv_buf_addc(&b, '<') || msv_buf_add(&b, s + i, e - i) || msv_buf_addc(&b, '>'))
			c->oom = 1;
		else
			msv__dsn_set_once(c, field, b.data, b.len);
		msv_buf_free(&b);
	}
}

/* The VERP token: the first address in the values whose local part
 * starts with the prefix. */
static void find_verp(walk *w, const char *s, size_t n)
{
	dsn_ctx *c = w->c;
	const msv_dsn_options *o = c->opts;
	if (c->rep->queue_id || !o->verp_prefix || !*o->verp_prefix || !s)
		return;
	size_t i = 0, a0, a1;
	while (msv__dsn_find_addr(s, n, i, &a0, &a1)) {
		i = a1;
		char addr[512];
		if (a1 - a0 >= sizeof(addr))
			continue;
		memcpy(addr, s + a0, a1 - a0);
		addr[a1 - a0] = '\0';
		msv_buf id;
		msv_buf_init(&id, 256);
		if (msv_dsn_verp_decode(&id, addr, o->verp_prefix, o->verp_domain) == MSV_OK) {
			msv__dsn_set_once(c, &c->rep->queue_id, id.data, id.len);
			msv_buf_free(&id);
			return;
		}
		msv_buf_free(&id);
	}
}

static void verp_from_headers(walk *w, const msv_mime_tree *t, const msv_mime_node *n)
{
	static const char *const names[] = {"Delivered-To", "X-Original-To", "Envelope-To",
	                                    "X-Envelope-To", "To", "Return-Path", "Sender",
	                                    "X-Postfix-Sender", "Original-Mail-From", "From"};
	for (size_t k = 0; k < sizeof(names) / sizeof(names[0]) && !w->c->rep->queue_id; k++) {
		for (size_t i = 0; i < n->nheaders; i++) {
			const msv_mime_header *h = &t->headers[n->header + i];
			if (msv__dsn_ci_eq(h->name.p, h->name.len, names[k]))
				find_verp(w, h->value.p, h->value.len);
		}
	}
}

/* ---- ARF (RFC 5965) ---- */

static void read_arf(walk *w)
{
	dsn_ctx *c = w->c;
	msv_dsn_report *rep = c->rep;
	msv_buf body;
	msv_buf_init(&body, DSN_TEXT_MAX);
	if (w->arf_node >= 0) {
		const msv_mime_node *n = &w->t->nodes[w->arf_node];
		msv_buf raw;
		msv_buf_init(&raw, DSN_TEXT_MAX);
		if (!decode_node(n, &raw) && raw.len && msv__dsn_add_lf(&body, raw.data, raw.len))
			c->oom = 1;
		msv_buf_free(&raw);
	}
	/* Fields: one per line, folding allowed (RFC 5965 3.1 uses 5322 syntax). */
	const char *s = body.data ? body.data : "";
	size_t n = body.len, i = 0;
	size_t nrcpt = 0;
	while (i < n) {
		const char *nl = memchr(s + i, '\n', n - i);
		size_t le = nl ? (size_t)(nl - s) : n;
		size_t next = nl ? le + 1 : n;
		while (next < n && (s[next] == ' ' || s[next] == '\t')) { /* folded */
			const char *nl2 = memchr(s + next, '\n', n - next);
			le = nl2 ? (size_t)(nl2 - s) : n;
			next = nl2 ? le + 1 : n;
		}
		const char *colon = memchr(s + i, ':', le - i);
		if (colon) {
			size_t nl0 = (size_t)(colon - (s + i));
			const char *v = colon + 1;
			size_t vl = (size_t)(s + le - v);
			if (msv__dsn_ci_eq(s + i, nl0, "Feedback-Type")) {
				msv__dsn_set_once(c, &rep->feedback_type, v, vl);
			} else if (msv__dsn_ci_eq(s + i, nl0, "Original-Rcpt-To") ||
			           msv__dsn_ci_eq(s + i, nl0, "Removal-Recipient")) {
				size_t a0, a1;
				if (msv__dsn_typed_addr(v, vl, &a0, &a1) && !msv__dsn_rcpt_find(c, v + a0, a1 - a0)) {
					/* Removal-Recipient only counts when there is no Original-Rcpt-To. */
					if (msv__dsn_ci_eq(s + i, nl0, "Removal-Recipient") && nrcpt)
						goto next;
					msv_dsn_recipient *r = msv__dsn_rcpt_new(c);
					if (r) {
						r->address = msv__dsn_str(c, v + a0, a1 - a0);
						nrcpt++;
					}
				}
			} else if (msv__dsn_ci_eq(s + i, nl0, "Reporting-MTA")) {
				const char *semi = memchr(v, ';', vl);
				if (semi)
					msv__dsn_set_once(c, &rep->reporting_mta, semi + 1, (size_t)(v + vl - semi - 1));
				else
					msv__dsn_set_once(c, &rep->reporting_mta, v, vl);
			} else if (msv__dsn_ci_eq(s + i, nl0, "Arrival-Date") ||
			           msv__dsn_ci_eq(s + i, nl0, "Received-Date")) {
				msv__dsn_set_once(c, &rep->arrival_date, v, vl);
			} else if (msv__dsn_ci_eq(s + i, nl0, "Original-Mail-From")) {
				find_verp(w, v, vl);
			}
		}
	next:
		i = next;
	}
	msv_buf_free(&body);
	/* No Original-Rcpt-To: the returned message's To (RFC 5965 does not
	 * require the field; the complained-about recipient is the one the
	 * returned copy was addressed to). */
	if (!nrcpt && w->have_orig) {
		msv_buf to;
		msv_buf_init(&to, DSN_FIELD_MAX);
		orig_header(w, "To", &to);
		if (!to.len)
			orig_header(w, "Delivered-To", &to);
		size_t a0, a1, k = 0;
		while (to.len && msv__dsn_find_addr(to.data, to.len, k, &a0, &a1)) {
			k = a1;
			if (msv__dsn_rcpt_find(c, to.data + a0, a1 - a0))
				continue;
			msv_dsn_recipient *r = msv__dsn_rcpt_new(c);
			if (!r)
				break;
			r->address = msv__dsn_str(c, to.data + a0, a1 - a0);
			nrcpt++;
		}
		msv_buf_free(&to);
	}
	/* Still none: the bounce's own To (mailbox providers send the report
	 * to the list owner with the reported address nowhere else). */
	for (size_t k = 0; k < rep->nrecipients; k++) {
		msv_dsn_recipient *r = &rep->recipients[k];
		r->reason = MSV_DSN_R_FEEDBACK;
	}
	if (!rep->feedback_type)
		rep->feedback_type = msv__dsn_str(c, "abuse", 5);
}

/* ---- kind detection helpers ---- */

/* The bounce says it is one: a delivery-status part, a mailer-daemon
 * sender, a bounce subject, X-Failed-Recipients. */
static int looks_like_bounce(walk *w)
{
	static const char *const from_words[] = {
		"mailer-daemon", "postmaster", "mail delivery", "mail administrator", "mailer daemon",
		"mdaemon", "mail system", "mail-daemon", "mail.delivery", "delivery subsystem",
		"microsoftexchange", "mmdf", "smtp-gateway", "mailerdaemon", "deliverystatus",
		"no-reply@ml.", "bounce", "failure", "delivery", "daemon@", "root@"};
	static const char *const subj_words[] = {
		"undeliver", "undelivered", "delivery status", "delivery fail", "delivery notification",
		"returned mail", "return mail", "mail delivery", "failure notice", "failed delivery",
		"delivery report", "non-delivery", "nondeliver", "non delivery", "could not send",
		"not delivered", "delivery problem", "delivery has failed", "mail failure",
		"error sending", "permanent error", "rejected:", "delayed", "warning:", "bounce",
		"unable to deliver", "failed mail", "message status", "delivery error", "mail error",
		"delivery failure", "delivery unsuccessful", "could not be delivered",
		"mail could not", "mail system error", "notification", "returned to sender", "自動",
		"不達", "配信", "エラー", "返送", "失敗", "недостав", "не доставлено", "failed:",
		"failure", "undelivery", "message you sent", "nicht zustellbar", "mail delivery failed"};
	if (w->nds || w->report_ds || w->failed.len)
		return 1;
	return msv__dsn_ci_find_any(w->from.data, w->from.len, from_words, NWORDS(from_words)) ||
	       msv__dsn_ci_find_any(w->subject.data, w->subject.len, subj_words, NWORDS(subj_words));
}

/* A List-Unsubscribe mailto request (RFC 2369) sent by a mail client
 * on the recipient's behalf: Apple Mail marks them X-Apple-Unsubscribe.
 * The recipient asks to stop: an opt-out, reported as feedback. */
static int read_unsubscribe(walk *w)
{
	dsn_ctx *c = w->c;
	const msv_mime_header *h = msv_mime_header_get(w->t, &w->t->nodes[0], "X-Apple-Unsubscribe");
	if (!h || msv__dsn_ci_find(h->value.p, h->value.len, "true") < 0)
		return 0;
	msv_buf fromraw;
	msv_buf_init(&fromraw, DSN_FIELD_MAX);
	header_text(w, w->t, &w->t->nodes[0], "From", &fromraw);
	size_t a0, a1;
	if (fromraw.len && msv__dsn_find_addr(fromraw.data, fromraw.len, 0, &a0, &a1)) {
		msv_dsn_recipient *r = msv__dsn_rcpt_new(c);
		if (r) {
			r->address = msv__dsn_str(c, fromraw.data + a0, a1 - a0);
			r->reason = MSV_DSN_R_FEEDBACK;
			msv__dsn_set(c, &r->diagnostic, "unsubscribe request", 19);
		}
	}
	msv_buf_free(&fromraw);
	if (!c->rep->feedback_type)
		c->rep->feedback_type = msv__dsn_str(c, "opt-out", 7);
	return 1;
}

static int looks_like_autoreply(walk *w)
{
	const msv_mime_tree *t = w->t;
	const msv_mime_node *root = &t->nodes[0];
	static const char *const hdrs[] = {"X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress",
	                                   "X-Autogenerated", "X-AutoReply-From", "X-Mail-Autoreply",
	                                   "X-Vacation", "X-FC-MachineGenerated"};
	if (w->autosub.len && msv__dsn_ci_find(w->autosub.data, w->autosub.len, "auto-replied") >= 0)
		return 1;
	for (size_t i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++)
		if (msv_mime_header_get(t, root, hdrs[i]))
			return 1;
	const msv_mime_header *p = msv_mime_header_get(t, root, "Precedence");
	if (p && msv__dsn_ci_find(p->value.p, p->value.len, "auto_reply") >= 0)
		return 1;
	static const char *const subj[] = {"auto:",          "automatic reply", "autoreply",
	                                   "auto-reply",     "auto reply",      "out of office",
	                                   "out of the office", "vacation",     "away from",
	                                   "abwesenheit",    "absence",         "away until",
	                                   "autosvar",       "réponse automatique", "不在"};
	return msv__dsn_ci_find_any(w->subject.data, w->subject.len, subj, NWORDS(subj));
}

static void read_autoreply(walk *w)
{
	dsn_ctx *c = w->c;
	/* RFC 3834 5.1: the auto-reply comes from the recipient that was
	 * away; its From is that address. */
	msv_buf fromraw;
	msv_buf_init(&fromraw, DSN_FIELD_MAX);
	header_text(w, w->t, &w->t->nodes[0], "From", &fromraw);
	size_t a0, a1;
	if (fromraw.len && msv__dsn_find_addr(fromraw.data, fromraw.len, 0, &a0, &a1)) {
		msv_dsn_recipient *r = msv__dsn_rcpt_new(c);
		if (r) {
			r->address = msv__dsn_str(c, fromraw.data + a0, a1 - a0);
			r->reason = MSV_DSN_R_VACATION;
			msv__dsn_set(c, &r->diagnostic, w->subject.data, w->subject.len);
		}
	}
	msv_buf_free(&fromraw);
}

/* ---- the walk ---- */

static void sort_parts(walk *w)
{
	const msv_mime_tree *t = w->t;
	for (size_t i = 0; i < t->nnodes; i++) {
		const msv_mime_node *n = &t->nodes[i];
		/* Inside the returned message? */
		int inside = 0;
		for (long p = n->parent; p >= 0; p = t->nodes[p].parent)
			if (is_orig_type(&t->nodes[p])) {
				inside = 1;
				break;
			}
		if (inside)
			continue;
		if (type_is(n, "multipart", "report")) {
			const msv_mime_header *h = msv_mime_header_get(t, n, "Content-Type");
			if (h && msv__dsn_ci_find(h->value.p, h->value.len, "feedback-report") >= 0)
				w->report_feedback = 1;
			if (h && msv__dsn_ci_find(h->value.p, h->value.len, "delivery-status") >= 0)
				w->report_ds = 1;
			continue;
		}
		if (n->first_child >= 0 && !is_orig_type(n))
			continue; /* a multipart: its children follow */
		if (type_is(n, "message", "delivery-status") ||
		    type_is(n, "message", "global-delivery-status") ||
		    type_is(n, "text", "delivery-status") ||
		    type_is(n, "message", "x-delivery-status")) {
			if (w->nds < sizeof(w->ds_nodes) / sizeof(w->ds_nodes[0])) {
				w->ds_utf8[w->nds] = type_is(n, "message", "global-delivery-status");
				w->ds_nodes[w->nds++] = (long)i;
			}
		} else if (type_is(n, "message", "feedback-report")) {
			if (w->arf_node < 0)
				w->arf_node = (long)i;
		} else if (is_orig_type(n)) {
			if (w->orig_node < 0)
				w->orig_node = (long)i;
		} else if (type_is(n, "text", "plain") && !is_attachment(t, n)) {
			if (w->text_node < 0)
				w->text_node = (long)i;
		} else if (type_is(n, "text", "html") && !is_attachment(t, n)) {
			if (w->html_node < 0)
				w->html_node = (long)i;
		}
	}
}

static void set_format(dsn_ctx *c, const char *f)
{
	if (!c->rep->format && f)
		c->rep->format = msv__dsn_str(c, f, strlen(f));
}

static void decide_kind(dsn_ctx *c)
{
	msv_dsn_report *rep = c->rep;
	int failed = 0, delayed = 0, ok = 0;
	for (size_t i = 0; i < rep->nrecipients; i++) {
		switch (rep->recipients[i].action) {
		case MSV_DSN_ACTION_FAILED: failed++; break;
		case MSV_DSN_ACTION_DELAYED: delayed++; break;
		case MSV_DSN_ACTION_DELIVERED:
		case MSV_DSN_ACTION_RELAYED:
		case MSV_DSN_ACTION_EXPANDED: ok++; break;
		default: break;
		}
	}
	if (failed)
		rep->kind = MSV_DSN_BOUNCE;
	else if (delayed)
		rep->kind = MSV_DSN_DELAY;
	else if (ok)
		rep->kind = MSV_DSN_SUCCESS;
	else if (rep->nrecipients)
		rep->kind = MSV_DSN_BOUNCE;
	else
		rep->kind = MSV_DSN_UNKNOWN;
}

/* What the prose says of the message's fate, for reports without an
 * Action field.  Strong words about the future decide ("will be
 * retried", "I've given up"); weak ones ("delayed", a "Warning:"
 * subject) only when the other side said nothing: a permanent failure
 * may mention that earlier attempts were delayed, and a subject may say
 * "Warning" over "no such user here". */
static const char *const delay_strong[] = {
	"will retry", "will be retried", "still trying", "not yet been delivered",
	"delivery attempts will continue", "has not been delivered yet", "could not be delivered yet",
	"continue trying", "warning only", "do not need to resend", "will keep trying",
	"will continue to try", "still being retried"};
static const char *const perm_strong[] = {
	"permanent error", "permanent failure", "failed permanently", "permanently failed",
	"permanently rejected", "given up", "gave up", "giving up", "not going to try again",
	"not be retried", "will not try again", "won't be retried", "no further attempts",
	"will not retry", "unrecoverable error", "fatal error"};

static int text_says(walk *w, const char *const *words, size_t nw)
{
	return msv__dsn_ci_find_any(w->text.data, w->cut, words, nw) ||
	       msv__dsn_ci_find_any(w->subject.data, w->subject.len, words, nw);
}

/* A recipient whose fate the prose must tell: no Action field, and a
 * 4xx code that alone would make it a delay. */
static int fate_open(const msv_dsn_report *rep)
{
	for (size_t i = 0; i < rep->nrecipients; i++) {
		const msv_dsn_recipient *r = &rep->recipients[i];
		if (r->action == MSV_DSN_ACTION_NONE &&
		    (r->status[0] == '4' || (r->reply_code >= 400 && r->reply_code < 500)))
			return 1;
	}
	return 0;
}

/* The fate the prose tells, for the hint.  The permanent words are
 * only looked for when they could change something (weak delay words,
 * or a 4xx code): most bounces need neither scan. */
static void text_fate(walk *w, dsn_hint *h)
{
	static const char *const weak[] = {"delayed", "warning: message", "temporarily deferred"};
	static const char *const subj[] = {"delayed", "delay", "warning", "not yet"};
	h->delay_said = text_says(w, delay_strong, NWORDS(delay_strong));
	int weak_said = !h->delay_said &&
	                (msv__dsn_ci_find_any(w->text.data, w->cut, weak, NWORDS(weak)) ||
	                 msv__dsn_ci_find_any(w->subject.data, w->subject.len, subj, NWORDS(subj)));
	h->permanent = !h->delay_said && (weak_said || fate_open(w->c->rep)) &&
	               text_says(w, perm_strong, NWORDS(perm_strong));
	h->delayed = h->delay_said || (weak_said && !h->permanent);
}

/* The prose says it is a bounce (for bounces from unusual senders with
 * unusual subjects). */
static int prose_bouncy(walk *w)
{
	static const char *const words[] = {
		"could not be delivered", "couldn't be delivered", "undeliverable", "delivery failed",
		"delivery has failed", "permanent error", "permanent fatal error", "failed permanently",
		"unable to deliver", "was not delivered", "were not delivered", "delivery to the following",
		"following address", "error delivering", "invalid user address", "error message below",
		"delivery problem", "could not deliver", "wasn't able to deliver", "not able to deliver",
		"message was not sent", "transcript of session follows", "non-delivered",
		"delivery status notification", "has not been delivered", "could not be sent",
		"delivery failure", "mailbox is full", "returned mail", "delivery error",
		"failed to deliver", "unable to be delivered", "cannot be delivered", "no such user",
		"user unknown", "not delivered to", "not a member of this mailing list"};
	return msv__dsn_ci_find_any(w->text.data, w->cut, words, NWORDS(words));
}

/* Hotmail's JMRP complaints: not ARF, a message/rfc822 with an
 * X-HmXmrOriginalRecipient field, sent by staff@hotmail.com. */
static int read_jmrp(walk *w)
{
	dsn_ctx *c = w->c;
	if (!w->have_orig)
		return 0;
	msv_buf b;
	msv_buf_init(&b, DSN_FIELD_MAX);
	orig_header(w, "X-HmXmrOriginalRecipient", &b);
	int is = b.len > 0 || (w->subject.len && msv__dsn_ci_find(w->subject.data, w->subject.len,
	                                                      "complaint about message from") >= 0);
	if (!is) {
		msv_buf_free(&b);
		return 0;
	}
	if (!b.len)
		orig_header(w, "To", &b);
	size_t a0, a1;
	if (b.len && msv__dsn_find_addr(b.data, b.len, 0, &a0, &a1)) {
		msv_dsn_recipient *r = msv__dsn_rcpt_new(c);
		if (r) {
			r->address = msv__dsn_str(c, b.data + a0, a1 - a0);
			r->reason = MSV_DSN_R_FEEDBACK;
		}
	}
	msv_buf_free(&b);
	if (!c->rep->feedback_type)
		c->rep->feedback_type = msv__dsn_str(c, "abuse", 5);
	return 1;
}

/* Nothing in the prose names a recipient: the returned message's To
 * (and Cc) are who it was sent to.  Only for messages that are clearly
 * bounces, and only a few: a long To list says nothing about who failed. */
static void rcpt_from_orig(walk *w, const char *why, size_t whylen)
{
	dsn_ctx *c = w->c;
	if (!w->have_orig)
		return;
	msv_buf b;
	msv_buf_init(&b, DSN_FIELD_MAX * 4);
	orig_header(w, "To", &b);
	size_t a0, a1, i = 0, found = 0;
	while (b.len && msv__dsn_find_addr(b.data, b.len, i, &a0, &a1) && found < 8) {
		i = a1;
		if (msv__dsn_rcpt_find(c, b.data + a0, a1 - a0))
			continue;
		msv_dsn_recipient *r = msv__dsn_rcpt_new(c);
		if (!r)
			break;
		r->address = msv__dsn_str(c, b.data + a0, a1 - a0);
		found++;
		if (why && whylen) {
			r->diagnostic = msv__dsn_str(c, why, whylen);
			char st[MSV_DSN_STATUS_MAX];
			if (msv__dsn_find_status(why, whylen, st) >= 0) {
				memcpy(r->status, st, sizeof(st));
				r->status_source = MSV_DSN_SRC_TEXT;
			}
		}
	}
	msv_buf_free(&b);
}

/* The returned message's To and Cc (decoded): whom we sent it to.
 * Decoded once, on first use. */
static const msv_buf *orig_rcpts(walk *w)
{
	if (!w->sent_done) {
		w->sent_done = 1;
		orig_header(w, "To", &w->sent);
		if (msv_buf_addc(&w->sent, ','))
			w->c->oom = 1;
		orig_header(w, "Cc", &w->sent);
	}
	return &w->sent;
}

static int is_skipped(const walk *w, const char *a, size_t n)
{
	for (size_t i = 0; i < w->nskip; i++)
		if (msv__dsn_ci_eq(a, n, w->skipbuf.data + w->skipoff[i]))
			return 1;
	return 0;
}

/* The one address of s that is no sender's and no reported recipient's,
 * or 0 when there are none or several. */
static int single_candidate(walk *w, const char *s, size_t n, size_t *c0, size_t *c1)
{
	size_t i = 0, a0, a1, found = 0;
	while (s && msv__dsn_find_addr(s, n, i, &a0, &a1)) {
		i = a1;
		if (is_skipped(w, s + a0, a1 - a0) || msv__dsn_rcpt_find(w->c, s + a0, a1 - a0))
			continue;
		if (found && (a1 - a0 != *c1 - *c0 || strncasecmp(s + a0, s + *c0, a1 - a0)))
			return 0; /* several */
		*c0 = a0;
		*c1 = a1;
		found = 1;
	}
	return (int)found;
}

/* Report groups whose recipient fields name no Internet mailbox (an
 * X.400 name and no Original-Recipient, a pipe, "@host"): the address
 * we sent to is the returned message's only recipient, else the only
 * one X-Failed-Recipients names, when exactly one group lacks it.  With
 * drop set, groups still unnamed are removed: a name that is no mailbox
 * is no use to anyone suppressing addresses. */
static void name_unnamed(walk *w, int drop)
{
	dsn_ctx *c = w->c;
	msv_dsn_report *rep = c->rep;
	size_t unnamed = 0, which = 0;
	for (size_t i = 0; i < rep->nrecipients; i++)
		if (!rep->recipients[i].address) {
			unnamed++;
			which = i;
		}
	if (unnamed == 1) {
		const msv_buf *b = orig_rcpts(w);
		size_t a0 = 0, a1 = 0;
		const char *src = b->data;
		int got = single_candidate(w, b->data, b->len, &a0, &a1);
		if (!got && w->failed.len) {
			src = w->failed.data;
			got = single_candidate(w, w->failed.data, w->failed.len, &a0, &a1);
		}
		if (got)
			rep->recipients[which].address = msv__dsn_str(c, src + a0, a1 - a0);
	}
	for (size_t i = 0; drop && i < rep->nrecipients;) {
		if (!rep->recipients[i].address)
			msv__dsn_rcpt_remove(c, i);
		else
			i++;
	}
}

/* A reporting MTA that changed the case of an address (a local part is
 * case-sensitive, RFC 5321 2.4): the returned message's To or Cc has it
 * as we sent it; that one is reported, the other kept as the final
 * recipient. */
static void sent_case(walk *w)
{
	dsn_ctx *c = w->c;
	if (!w->have_orig)
		return;
	const msv_buf *b = orig_rcpts(w);
	for (size_t k = 0; k < c->rep->nrecipients; k++) {
		msv_dsn_recipient *r = &c->rep->recipients[k];
		size_t i = 0, a0, a1;
		while (r->address && msv__dsn_find_addr(b->data, b->len, i, &a0, &a1)) {
			i = a1;
			if (!msv__dsn_ci_eq(b->data + a0, a1 - a0, r->address) ||
			    !strncmp(b->data + a0, r->address, a1 - a0))
				continue;
			char *sent = msv__dsn_str(c, b->data + a0, a1 - a0);
			if (!sent)
				break;
			if (!r->final_recipient)
				r->final_recipient = r->address;
			else
				msv_free(r->address);
			r->address = sent;
			break;
		}
	}
}

/* The prose, "" when there is none. */
static const char *prose(const walk *w)
{
	return w->text.data ? w->text.data : "";
}

/* The prose: the first text part, else the first HTML part, else a
 * single part that is not a returned message. */
static void read_prose(walk *w)
{
	const msv_mime_tree *t = w->t;
	const msv_mime_node *root = &t->nodes[0];
	if (w->text_node >= 0)
		part_text(w, &t->nodes[w->text_node], &w->text, 0);
	else if (w->html_node >= 0)
		part_text(w, &t->nodes[w->html_node], &w->text, 1);
	else if (root->first_child < 0 && !is_orig_type(root))
		part_text(w, root, &w->text, 0);
	else {
		/* A multipart whose boundary could not be read (a parameter on
		 * an unfolded line): its raw body is the best prose there is. */
		for (size_t i = 0; i < t->nnodes; i++)
			if (t->nodes[i].flags & MSV_MIME_NO_BOUNDARY) {
				part_text(w, &t->nodes[i], &w->text, 0);
				break;
			}
	}
}

/* The returned message: where the prose stops, its header block, and
 * what the report takes from it.  Its From, Return-Path and Sender are
 * the sender's: never recipients. */
static void read_orig(walk *w)
{
	dsn_ctx *c = w->c;
	msv_dsn_report *rep = c->rep;
	size_t orig_start = 0;
	const char *tx = prose(w);
	size_t cut = msv__dsn_text_cut(tx, w->text.len, &orig_start);
	w->cut = cut;
	w->orig_start = orig_start;
	find_orig(w, cut < w->text.len ? tx + orig_start : NULL,
	          cut < w->text.len ? w->text.len - orig_start : 0);
	if (!w->have_orig)
		return;
	const msv_mime_header *h = msv_mime_header_get(&w->ot, &w->ot.nodes[0], "Message-ID");
	if (h)
		set_msgid(c, &rep->original_message_id, h->value.p, h->value.len);
	msv_buf b;
	msv_buf_init(&b, DSN_FIELD_MAX);
	orig_header(w, "Subject", &b);
	msv__dsn_set_once(c, &rep->original_subject, b.data, b.len);
	msv_buf_reset(&b);
	orig_header(w, "From", &b);
	size_t a0, a1;
	if (b.len && msv__dsn_find_addr(b.data, b.len, 0, &a0, &a1)) {
		msv__dsn_set_once(c, &rep->original_from, b.data + a0, a1 - a0);
		add_skip(w, b.data + a0, a1 - a0);
	}
	msv_buf_reset(&b);
	orig_header(w, "Return-Path", &b);
	if (b.len)
		add_skip_addrs(w, b.data, b.len);
	msv_buf_reset(&b);
	orig_header(w, "Sender", &b);
	if (b.len)
		add_skip_addrs(w, b.data, b.len);
	msv_buf_free(&b);
}

/* The bounce's own addresses join the skip list, which is then
 * complete: its offsets become pointers. */
static void skip_own(walk *w)
{
	/* The bounce goes to the sender: its To is never a recipient. */
	if (w->to.len)
		add_skip_addrs(w, w->to.data, w->to.len);
	/* Not Delivered-To or X-Original-To: forwarding rewrites them,
	 * and some MTAs copy the failed recipient there. */
	static const char *const own[] = {"Return-Path"};
	for (size_t k = 0; k < sizeof(own) / sizeof(own[0]); k++) {
		msv_buf b;
		msv_buf_init(&b, DSN_FIELD_MAX);
		header_text(w, w->t, &w->t->nodes[0], own[k], &b);
		if (b.len)
			add_skip_addrs(w, b.data, b.len);
		msv_buf_free(&b);
	}
	for (size_t i = 0; i < w->nskip; i++)
		w->skip[i] = w->skipbuf.data + w->skipoff[i];
}

/* The delivery-status parts (RFC 3464, RFC 6533). */
static void read_ds_parts(walk *w)
{
	dsn_ctx *c = w->c;
	for (size_t i = 0; i < w->nds; i++) {
		msv_buf body, lf;
		msv_buf_init(&body, DSN_TEXT_MAX);
		msv_buf_init(&lf, DSN_TEXT_MAX);
		if (!decode_node(&w->t->nodes[w->ds_nodes[i]], &body) && body.len &&
		    !msv__dsn_add_lf(&lf, body.data, body.len))
			msv__dsn_ds_read(c, lf.data, lf.len, w->ds_utf8[i]);
		msv_buf_free(&body);
		msv_buf_free(&lf);
	}
	name_unnamed(w, 1);
	if (c->rep->nrecipients)
		set_format(c, w->ds_utf8[0] ? "rfc6533" : "rfc3464");
}

/* Feedback that is not ARF, when no delivery-status part named a
 * recipient: Amazon SES notifications, Hotmail's JMRP, unsubscribe
 * requests. */
static void read_other_feedback(walk *w)
{
	dsn_ctx *c = w->c;
	msv_dsn_report *rep = c->rep;
	const char *tx = prose(w);
	msv_dsn_kind fixed = MSV_DSN_UNKNOWN;
	if (!rep->nrecipients && w->text.len &&
	    (msv__dsn_ci_find(tx, w->text.len, "notificationtype\\\"") >= 0 ||
	     msv__dsn_ci_find(tx, w->text.len, "\"notificationtype\"") >= 0 ||
	     msv__dsn_ci_find(tx, w->text.len, "\"eventtype\"") >= 0) &&
	    msv__dsn_ses_read(c, tx, w->text.len, &fixed)) {
		set_format(c, "amazonses");
		if (fixed == MSV_DSN_FEEDBACK)
			rep->kind = MSV_DSN_FEEDBACK;
	}
	if (!rep->nrecipients && read_jmrp(w)) {
		set_format(c, "jmrp");
		rep->kind = MSV_DSN_FEEDBACK;
	}
	if (!rep->nrecipients && read_unsubscribe(w)) {
		set_format(c, "unsubscribe");
		rep->kind = MSV_DSN_FEEDBACK;
	}
}

static void take_autoreply(walk *w)
{
	set_format(w->c, "rfc3834");
	read_autoreply(w);
	w->c->rep->kind = MSV_DSN_AUTOREPLY;
}

/* Recipients and their errors from the prose (text.c), for a report
 * that has recipients or looks like a bounce.  The introduction is
 * every recipient's context when the prose was all there was:
 * *context is then allocated, for the caller to free. */
static void read_prose_rcpts(walk *w, int bouncy, dsn_hint *hint, char **context)
{
	dsn_ctx *c = w->c;
	msv_dsn_report *rep = c->rep;
	const char *tx = prose(w);
	const msv_buf *sent = orig_rcpts(w);
	dsn_text_in in = {tx, w->cut, w->subject.data ? w->subject.data : "",
	                  w->from.data ? w->from.data : "",
	                  w->failed.len ? w->failed.data : NULL, w->skip, w->nskip,
	                  sent->data};
	const char *fmt = NULL;
	size_t prelude = 0;
	int had = rep->nrecipients > 0;
	msv__dsn_text_read(c, &in, &fmt, &prelude);
	name_unnamed(w, 1);
	set_format(c, fmt);
	if (!had && prelude)
		*context = msv__dsn_str(c, tx, prelude);
	hint->context = *context;
	if (!rep->nrecipients && bouncy) {
		rcpt_from_orig(w, tx, w->cut);
		if (rep->nrecipients)
			set_format(c, "text");
	}
	hint->format = rep->format;
	text_fate(w, hint);
	if (!rep->nrecipients && looks_like_autoreply(w))
		take_autoreply(w);
}

/* Every report but ARF: delivery-status parts first, then feedback of
 * other kinds, then the prose of a bounce or an auto-reply. */
static void read_reports(walk *w, dsn_hint *hint, char **context)
{
	msv_dsn_report *rep = w->c->rep;
	read_ds_parts(w);
	read_other_feedback(w);
	int bouncy = rep->kind != MSV_DSN_FEEDBACK && (looks_like_bounce(w) || prose_bouncy(w));
	if (!rep->nrecipients && !bouncy && looks_like_autoreply(w))
		take_autoreply(w);
	else if (rep->kind != MSV_DSN_FEEDBACK && (rep->nrecipients || bouncy))
		read_prose_rcpts(w, bouncy, hint, context);
}

/* Queue ID: ENVID first (we put it there), then a VERP token. */
static void find_queue_id(walk *w)
{
	msv_dsn_report *rep = w->c->rep;
	const msv_mime_tree *t = w->t;
	if (rep->envelope_id)
		rep->queue_id = msv__dsn_str(w->c, rep->envelope_id, strlen(rep->envelope_id));
	if (!rep->queue_id)
		verp_from_headers(w, t, &t->nodes[0]);
	if (!rep->queue_id && w->have_orig)
		verp_from_headers(w, &w->ot, &w->ot.nodes[0]);
	if (!rep->queue_id && w->orig_node >= 0) {
		/* An encapsulated message parsed in place. */
		const msv_mime_node *n = &t->nodes[w->orig_node];
		if (n->first_child >= 0)
			verp_from_headers(w, t, &t->nodes[n->first_child]);
	}
	for (size_t i = 0; i < w->nds && !rep->queue_id; i++) {
		msv_buf body;
		msv_buf_init(&body, DSN_TEXT_MAX);
		if (!decode_node(&t->nodes[w->ds_nodes[i]], &body) && body.len) {
			long k = msv__dsn_ci_find(body.data, body.len, "x-postfix-sender:");
			if (k >= 0) {
				const char *v = body.data + k;
				const char *nl = memchr(v, '\n', body.len - (size_t)k);
				find_verp(w, v, nl ? (size_t)(nl - v) : body.len - (size_t)k);
			}
		}
		msv_buf_free(&body);
	}
}

static void analyze(walk *w, const char *buf, size_t len)
{
	dsn_ctx *c = w->c;
	msv_dsn_report *rep = c->rep;
	const msv_mime_tree *t = w->t;
	const msv_mime_node *root = &t->nodes[0];
	(void)buf;
	(void)len;

	header_text(w, t, root, "Subject", &w->subject);
	header_text(w, t, root, "From", &w->from);
	header_text(w, t, root, "To", &w->to);
	header_text(w, t, root, "X-Failed-Recipients", &w->failed);
	header_text(w, t, root, "Auto-Submitted", &w->autosub);
	sort_parts(w);
	read_prose(w);
	read_orig(w);
	skip_own(w);

	dsn_hint hint = {0, 0, 0, NULL, NULL};
	char *context = NULL;
	if (w->arf_node >= 0 || w->report_feedback) {
		set_format(c, "arf");
		read_arf(w);
		rep->kind = MSV_DSN_FEEDBACK;
	} else {
		read_reports(w, &hint, &context);
	}
	sent_case(w);
	/* Classify. */
	for (size_t i = 0; i < rep->nrecipients; i++)
		msv__dsn_classify_rcpt(c, &rep->recipients[i], &hint);
	msv_free(context);
	if (rep->kind != MSV_DSN_FEEDBACK && rep->kind != MSV_DSN_AUTOREPLY)
		decide_kind(c);
	find_queue_id(w);
}

/* A report inside the returned part: some gateways (and Trend Micro's
 * IMSS) wrap the real DSN as the "returned message" of their own
 * notice.  Returns the encapsulated message's span, or 0. */
static int inner_report(const walk *w, const char **p, size_t *n)
{
	const msv_mime_tree *t = w->t;
	if (w->orig_node < 0)
		return 0;
	const msv_mime_node *o = &t->nodes[w->orig_node];
	if (o->first_child < 0)
		return 0;
	for (size_t i = (size_t)o->first_child; i < t->nnodes; i++) {
		const msv_mime_node *n2 = &t->nodes[i];
		/* Still inside the encapsulated message? */
		long a = n2->parent;
		int inside = (long)i == o->first_child;
		while (!inside && a >= 0) {
			if (a == o->first_child)
				inside = 1;
			a = t->nodes[a].parent;
		}
		if (!inside)
			break;
		if (type_is(n2, "message", "delivery-status") ||
		    type_is(n2, "message", "global-delivery-status")) {
			const msv_mime_node *ch = &t->nodes[o->first_child];
			const msv_mime_header *h0 = &t->headers[ch->header];
			*p = ch->nheaders ? h0->name.p : ch->body.p;
			*n = (size_t)(ch->body.p + ch->body.len - *p);
			return 1;
		}
	}
	return 0;
}

/* Text after the root multipart's closing delimiter that holds another
 * delivery report. */
static int trailing_report(const msv_mime_tree *t, const char **p, size_t *n)
{
	const msv_mime_node *root = &t->nodes[0];
	if (!root->boundary.len || (root->flags & MSV_MIME_NO_CLOSE))
		return 0;
	const char *s = root->body.p;
	size_t len = root->body.len, bl = root->boundary.len;
	for (size_t i = 0; i + bl + 4 <= len; i++) {
		if ((i && s[i - 1] != '\n' && s[i - 1] != '\r') || s[i] != '-' || s[i + 1] != '-' ||
		    memcmp(s + i + 2, root->boundary.p, bl) || s[i + 2 + bl] != '-' ||
		    s[i + 3 + bl] != '-')
			continue;
		size_t k = i + 4 + bl;
		while (k < len && s[k] != '\n')
			k++;
		while (k < len && (s[k] == '\n' || s[k] == '\r'))
			k++;
		if (k >= len || msv__dsn_ci_find(s + k, len - k, "message/delivery-status") < 0)
			return 0;
		*p = s + k;
		*n = len - k;
		return 1;
	}
	return 0;
}

static void walk_bufs_init(walk *w)
{
	msv_buf_init(&w->subject, DSN_FIELD_MAX);
	msv_buf_init(&w->from, DSN_FIELD_MAX);
	msv_buf_init(&w->to, DSN_FIELD_MAX * 4);
	msv_buf_init(&w->failed, DSN_FIELD_MAX * 4);
	msv_buf_init(&w->autosub, 256);
	msv_buf_init(&w->skipbuf, 32 * 512);
	msv_buf_init(&w->text, DSN_TEXT_MAX * 4 + 1);
	msv_buf_init(&w->orig_raw, DSN_TEXT_MAX);
	msv_buf_init(&w->sent, DSN_FIELD_MAX * 4);
}

static void walk_bufs_free(walk *w)
{
	msv_buf_free(&w->subject);
	msv_buf_free(&w->from);
	msv_buf_free(&w->to);
	msv_buf_free(&w->failed);
	msv_buf_free(&w->autosub);
	msv_buf_free(&w->skipbuf);
	msv_buf_free(&w->text);
	msv_buf_free(&w->orig_raw);
	msv_buf_free(&w->sent);
}

static msv_result parse_impl(msv_dsn_report **out, const char *buf, size_t len,
                             const msv_dsn_options *opts, msv_error *err, int depth);

/* The encapsulated report p[0..n) replaces *rep when it names
 * recipients. */
static void use_inner(msv_dsn_report **rep, const char *p, size_t n, const msv_dsn_options *opts,
                      int depth)
{
	msv_dsn_report *in = NULL;
	msv_error ierr;
	if (parse_impl(&in, p, n, opts, &ierr, depth + 1) == MSV_OK && in->nrecipients) {
		msv_dsn_report_free(*rep);
		*rep = in;
	} else {
		msv_dsn_report_free(in);
	}
}

/* A second report after the first one's closing boundary (two reports
 * saved into one file, mbox style): its recipients are added to the
 * first report's.  -1 when out of memory. */
static int add_trailer(msv_dsn_report *rep, const char *p, size_t n, const msv_dsn_options *opts,
                       int depth)
{
	msv_dsn_report *in = NULL;
	msv_error ierr;
	if (parse_impl(&in, p, n, opts, &ierr, depth + 1) == MSV_OK) {
		dsn_ctx c2 = {rep, rep->nrecipients, opts, 0};
		for (size_t i = 0; i < in->nrecipients; i++) {
			msv_dsn_recipient *src = &in->recipients[i];
			msv_dsn_recipient *dst = msv__dsn_rcpt_new(&c2);
			if (!dst)
				break;
			*dst = *src; /* the strings move over */
			memset(src, 0, sizeof(*src));
		}
		if (c2.oom) {
			msv_dsn_report_free(in);
			return -1;
		}
	}
	msv_dsn_report_free(in);
	if (rep->kind == MSV_DSN_DELAY || rep->kind == MSV_DSN_SUCCESS) {
		dsn_ctx c3 = {rep, rep->nrecipients, opts, 0};
		decide_kind(&c3);
	}
	return 0;
}

static msv_result parse_impl(msv_dsn_report **out, const char *buf, size_t len,
                             const msv_dsn_options *opts, msv_error *err, int depth)
{
	*out = NULL;
	if (!len)
		return msv_error_set(err, MSV_E_BAD_MESSAGE, MSV_CLASS_PERMANENT,
		                     "not a message: empty input");
	/* Storage for the MIME tree: room for an ordinary bounce first, the
	 * full limits only when that was not enough (a second parse of a
	 * rare message is cheaper than clearing 200 kB for every one). */
	size_t maxh = DSN_SMALL_HEADERS, maxn = DSN_SMALL_NODES;
	msv_mime_header *headers = NULL;
	msv_mime_node *nodes = NULL;
	walk *w = msv_calloc(1, sizeof(*w));
	msv_dsn_report *rep = msv_calloc(1, sizeof(*rep));
	msv_result r = MSV_OK;
	msv_mime_tree t;
	msv_error perr;
	for (;;) {
		headers = msv_malloc(maxh * sizeof(*headers));
		nodes = msv_malloc(maxn * sizeof(*nodes));
		if (!headers || !nodes || !w || !rep) {
			r = msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
			goto done;
		}
		t = (msv_mime_tree){headers, maxh, 0, nodes, maxn, 0, DSN_MAX_DEPTH};
		r = msv_mime_parse(&t, buf, len, &perr);
		if (r != MSV_E_TOO_LARGE || maxh == DSN_MAX_HEADERS)
			break;
		msv_free(headers);
		msv_free(nodes);
		maxh = DSN_MAX_HEADERS;
		maxn = DSN_MAX_NODES;
	}
	if (r) {
		*err = perr;
		goto done;
	}
	dsn_ctx c = {rep, 0, opts, 0};
	w->c = &c;
	w->t = &t;
	w->text_node = w->html_node = w->orig_node = w->arf_node = -1;
	walk_bufs_init(w);
	analyze(w, buf, len);
	const char *ip = NULL, *tp = NULL;
	size_t il = 0, tl = 0;
	/* The outer notice named no recipient of its own (none, or only the
	 * returned message's To): the encapsulated report knows better. */
	int weak = !rep->nrecipients || (rep->format && !strcmp(rep->format, "text") && w->orig_node >= 0);
	int inner = !c.oom && !depth && weak && !w->nds && inner_report(w, &ip, &il);
	int trailer = !c.oom && !depth && rep->nrecipients && trailing_report(&t, &tp, &tl);
	walk_bufs_free(w);
	if (c.oom) {
		r = msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory reading a report");
		goto done;
	}
	if (inner)
		use_inner(&rep, ip, il, opts, depth);
	if (trailer && add_trailer(rep, tp, tl, opts, depth)) {
		r = msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
		goto done;
	}
	*out = rep;
	rep = NULL;
done:
	msv_dsn_report_free(rep);
	msv_free(headers);
	msv_free(nodes);
	msv_free(w);
	return r;
}

msv_result msv_dsn_parse(msv_dsn_report **out, const char *buf, size_t len,
                         const msv_dsn_options *opts, msv_error *err)
{
	static const msv_dsn_options defaults = MSV_DSN_OPTIONS_INIT;
	msv_error scratch;
	if (!err)
		err = &scratch;
	if (!out)
		return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE, "msv_dsn_parse: out is NULL");
	*out = NULL;
	if (!buf && len)
		return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE, "msv_dsn_parse: buf is NULL");
	if (!opts)
		opts = &defaults;
	if (!msv__version_ok(opts->version, MSV_DSN_OPTIONS_VERSION))
		return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE,
		                     "msv_dsn_options: version %u is not between 1 and %u", opts->version,
		                     MSV_DSN_OPTIONS_VERSION);
	size_t max = opts->max_size ? opts->max_size : DSN_SIZE_DEFAULT;
	if (len > max)
		return msv_error_set(err, MSV_E_TOO_LARGE, MSV_CLASS_PERMANENT,
		                     "message of %zu bytes is larger than the %zu-byte limit", len, max);
	return parse_impl(out, buf, len, opts, err, 0);
}
