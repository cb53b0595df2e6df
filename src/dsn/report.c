/*
 * Reports and recipients: ownership, names, VERP addresses (contract in
 * missive/dsn.h).  A report owns every string it points to; each was
 * allocated on its own with msv_malloc and is freed by
 * msv_dsn_report_free().
 */
#include <string.h>

#include "dsn/dsn_int.h"

/* ---- names ---- */

static const struct {
	const char *name;
	int hard;
	const char *text;
} reasons[] = {
#define MSV__DSN_ROW(sym, num, name, hard, text) [num] = {name, hard, text},
	MSV_DSN_REASONS(MSV__DSN_ROW)
#undef MSV__DSN_ROW
};

const char *msv_dsn_reason_name(msv_dsn_reason r)
{
	if ((unsigned)r >= MSV__DSN_REASON_COUNT || !reasons[r].name)
		return "?";
	return reasons[r].name;
}

const char *msv_dsn_reason_text(msv_dsn_reason r)
{
	if ((unsigned)r >= MSV__DSN_REASON_COUNT || !reasons[r].text)
		return "?";
	return reasons[r].text;
}

/* The reason table's hard column: 1 hard, 2 hard only when permanent. */
int msv__dsn_reason_hard_col(msv_dsn_reason r);
int msv__dsn_reason_hard_col(msv_dsn_reason r)
{
	if ((unsigned)r >= MSV__DSN_REASON_COUNT)
		return 0;
	return reasons[r].hard;
}

/* Where our name differs from Sisimai's (docs/dsn.md, "Taxonomy"). */
static const struct {
	msv_dsn_reason r;
	const char *sisimai;
} sisimai_names[] = {
	{MSV_DSN_R_RATELIMITED, "speeding"},
};

const char *msv_dsn_reason_sisimai(msv_dsn_reason r)
{
	for (size_t i = 0; i < sizeof(sisimai_names) / sizeof(sisimai_names[0]); i++)
		if (sisimai_names[i].r == r)
			return sisimai_names[i].sisimai;
	return msv_dsn_reason_name(r);
}

int msv_dsn_reason_from_name(const char *name)
{
	if (!name)
		return -1;
	for (int i = 0; i < MSV__DSN_REASON_COUNT; i++)
		if (reasons[i].name && msv__dsn_ci_eq(name, strlen(name), reasons[i].name))
			return i;
	for (size_t i = 0; i < sizeof(sisimai_names) / sizeof(sisimai_names[0]); i++)
		if (msv__dsn_ci_eq(name, strlen(name), sisimai_names[i].sisimai))
			return (int)sisimai_names[i].r;
	/* Sisimai 5 renamed mesgtoobig. */
	if (msv__dsn_ci_eq(name, strlen(name), "emailtoolarge"))
		return MSV_DSN_R_MESGTOOBIG;
	return -1;
}

const char *msv_dsn_kind_name(msv_dsn_kind k)
{
	static const char *const names[] = {"unknown", "bounce", "delay", "success", "autoreply",
	                                    "feedback"};
	return (unsigned)k < sizeof(names) / sizeof(names[0]) ? names[k] : "?";
}

const char *msv_dsn_action_name(msv_dsn_action a)
{
	static const char *const names[] = {"none", "failed", "delayed", "delivered", "relayed",
	                                    "expanded"};
	return (unsigned)a < sizeof(names) / sizeof(names[0]) ? names[a] : "?";
}

const char *msv_dsn_source_name(msv_dsn_source s)
{
	static const char *const names[] = {"none", "field", "text", "reply", "inferred"};
	return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}

/* ---- strings ---- */

char *msv__dsn_str(dsn_ctx *c, const char *s, size_t n)
{
	if (!s)
		return NULL;
	size_t cap = n < DSN_FIELD_MAX ? n : DSN_FIELD_MAX;
	char *o = msv_malloc(cap + 1);
	if (!o) {
		c->oom = 1;
		return NULL;
	}
	size_t k = 0;
	int space = 0;
	for (size_t i = 0; i < n && k < cap; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '\r' || ch == '\n' || ch == '\t' || ch == ' ') {
			space = 1;
			continue;
		}
		if (ch < 32 || ch == 127)
			continue;
		if (space && k) {
			o[k++] = ' ';
			if (k >= cap)
				break;
		}
		space = 0;
		o[k++] = (char)ch;
	}
	/* Do not leave half a UTF-8 sequence at a cut. */
	if (k == cap && k < n) {
		size_t j = k;
		while (j > 0 && ((unsigned char)o[j - 1] & 0xC0) == 0x80)
			j--;
		if (j > 0 && (unsigned char)o[j - 1] >= 0xC0)
			k = j - 1;
	}
	while (k && o[k - 1] == ' ')
		k--;
	if (!k) {
		msv_free(o);
		return NULL;
	}
	o[k] = '\0';
	return o;
}

void msv__dsn_set(dsn_ctx *c, char **field, const char *s, size_t n)
{
	char *v = msv__dsn_str(c, s, n);
	if (!v)
		return;
	msv_free(*field);
	*field = v;
}

void msv__dsn_set_once(dsn_ctx *c, char **field, const char *s, size_t n)
{
	if (!*field)
		*field = msv__dsn_str(c, s, n);
}

/* ---- recipients ---- */

msv_dsn_recipient *msv__dsn_rcpt_new(dsn_ctx *c)
{
	msv_dsn_report *rep = c->rep;
	if (rep->nrecipients >= DSN_RCPT_MAX) {
		rep->recipients_dropped++;
		return NULL;
	}
	if (rep->nrecipients == c->rcap) {
		size_t ncap = c->rcap ? c->rcap * 2 : 4, bytes;
		if (msv_mul_size(&bytes, ncap, sizeof(msv_dsn_recipient))) {
			c->oom = 1;
			return NULL;
		}
		msv_dsn_recipient *p = msv_realloc(rep->recipients, bytes);
		if (!p) {
			c->oom = 1;
			return NULL;
		}
		rep->recipients = p;
		c->rcap = ncap;
	}
	msv_dsn_recipient *r = &rep->recipients[rep->nrecipients++];
	memset(r, 0, sizeof(*r));
	return r;
}

msv_dsn_recipient *msv__dsn_rcpt_find(dsn_ctx *c, const char *addr, size_t n)
{
	for (size_t i = 0; i < c->rep->nrecipients; i++) {
		msv_dsn_recipient *r = &c->rep->recipients[i];
		if (r->address && msv__dsn_ci_eq(addr, n, r->address))
			return r;
	}
	return NULL;
}

void msv__dsn_rcpt_clear(msv_dsn_recipient *r)
{
	msv_free(r->address);
	msv_free(r->original_recipient);
	msv_free(r->diagnostic);
	msv_free(r->diagnostic_type);
	msv_free(r->remote_mta);
	msv_free(r->last_attempt_date);
	msv_free(r->will_retry_until);
	msv_free(r->command);
	msv_free(r->rule);
	msv_free(r->final_recipient);
	memset(r, 0, sizeof(*r));
}

void msv__dsn_rcpt_remove(dsn_ctx *c, size_t i)
{
	msv_dsn_report *rep = c->rep;
	if (i >= rep->nrecipients)
		return;
	msv__dsn_rcpt_clear(&rep->recipients[i]);
	memmove(&rep->recipients[i], &rep->recipients[i + 1],
	        (rep->nrecipients - i - 1) * sizeof(msv_dsn_recipient));
	rep->nrecipients--;
}

void msv_dsn_report_free(msv_dsn_report *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nrecipients; i++)
		msv__dsn_rcpt_clear(&r->recipients[i]);
	msv_free(r->recipients);
	msv_free(r->format);
	msv_free(r->envelope_id);
	msv_free(r->original_message_id);
	msv_free(r->queue_id);
	msv_free(r->reporting_mta);
	msv_free(r->arrival_date);
	msv_free(r->original_from);
	msv_free(r->original_subject);
	msv_free(r->feedback_type);
	msv_free(r);
}

/* ---- VERP ---- */

/* Characters a VERP id may hold: they pass through every MTA unchanged
 * and need no quoting in a local part (RFC 5321 4.1.2 atext subset). */
static int verp_char(unsigned char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '-' || ch == '.' || ch == '_' || ch == '=';
}

/* RFC 5321 4.5.3.1.1: a local part is at most 64 octets; the id gets
 * what the prefix leaves, and never more than 128. */
#define VERP_ID_MAX 128

msv_result msv_dsn_verp_encode(msv_buf *out, const char *prefix, const char *id,
                               const char *domain)
{
	if (!out || !prefix || !id || !domain || !*domain)
		return MSV_E_INVALID;
	size_t n = strlen(id);
	if (!n || n > VERP_ID_MAX)
		return MSV_E_INVALID;
	for (size_t i = 0; i < n; i++)
		if (!verp_char((unsigned char)id[i]))
			return MSV_E_INVALID;
	for (const char *p = prefix; *p; p++)
		if ((unsigned char)*p <= 32 || (unsigned char)*p >= 127 || strchr("@<>()[]\\,;:\"", *p))
			return MSV_E_INVALID;
	for (const char *p = domain; *p; p++)
		if ((unsigned char)*p <= 32 || (unsigned char)*p >= 127 || strchr("@<>()\\,;:\"", *p))
			return MSV_E_INVALID;
	msv_result r = msv_buf_addstr(out, prefix);
	if (!r)
		r = msv_buf_add(out, id, n);
	if (!r)
		r = msv_buf_addc(out, '@');
	if (!r)
		r = msv_buf_addstr(out, domain);
	return r;
}

msv_result msv_dsn_verp_decode(msv_buf *out, const char *addr, const char *prefix,
                               const char *domain)
{
	if (!out || !addr || !prefix || !*prefix)
		return MSV_E_INVALID;
	const char *at = strrchr(addr, '@');
	size_t pl = strlen(prefix);
	if (!at || !msv__dsn_ci_prefix(addr, (size_t)(at - addr), prefix))
		return MSV_E_INVALID;
	const char *id = addr + pl;
	size_t n = (size_t)(at - id);
	if (!n || n > VERP_ID_MAX)
		return MSV_E_INVALID;
	for (size_t i = 0; i < n; i++)
		if (!verp_char((unsigned char)id[i]))
			return MSV_E_INVALID;
	if (domain && !msv__dsn_ci_eq(at + 1, strlen(at + 1), domain))
		return MSV_E_INVALID;
	return msv_buf_add(out, id, n);
}
