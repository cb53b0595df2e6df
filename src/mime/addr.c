/*
 * Addresses: syntax checks and the form written for a transport.
 *
 * RFCs: 5322 3.4.1 (addr-spec: a dot-atom local part, or one quoted
 * string as RFC 5321 4.1.2 writes it; a quoted local part that is a
 * dot-atom is unquoted by the address-list reader), 5321 4.5.3.1 (64-octet local part, 255-octet domain,
 * 254-octet path), 5890/5891 (IDNA 2008 via libidn2, TR46
 * non-transitional), 6531/6532 (UTF-8 local parts need SMTPUTF8).
 */
#include <idn2.h>
#include <string.h>
#include <strings.h>

#include "mime/mime_int.h"

#define LOCAL_MAX 64   /* RFC 5321 4.5.3.1.1 */
#define LABEL_MAX 63   /* RFC 1035 2.3.4 */
#define ADDR_MAX 254   /* RFC 5321 4.5.3.1.3: 256 for the path, minus the brackets */

static int has_8bit(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] >= 0x80)
			return 1;
	return 0;
}

static msv_result bad(msv_error *err, const char *what, const char *addr, const char *why)
{
	char shown[128];
	msv_sanitize_utf8(shown, sizeof(shown), addr, strlen(addr));
	return msv_error_set(err, MSV_E_BAD_ADDRESS, MSV_CLASS_USAGE, "%s: invalid address \"%s\": %s",
	                     what, shown, why);
}

/* Converts a domain to A-labels (NUL-terminated copy in out). */
static msv_result domain_alabel(msv_buf *out, const char *dom, size_t n, const char **why)
{
	char tmp[512];
	if (n >= sizeof(tmp)) {
		*why = "domain too long";
		return MSV_E_BAD_ADDRESS;
	}
	memcpy(tmp, dom, n);
	tmp[n] = '\0';
	char *a = NULL;
	int rc = idn2_to_ascii_8z(tmp, &a, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
	if (rc != IDN2_OK) {
		*why = idn2_strerror(rc);
		return MSV_E_BAD_ADDRESS;
	}
	msv_result r = msv_buf_addstr(out, a);
	idn2_free(a);
	return r;
}

/* A quoted-string local part (RFC 5321 4.1.2 Quoted-string): '"', then
 * printable ASCII or UTF-8 with '"' and '\\' escaped, then '"' right
 * before the '@'.  0 when it is one.  No space and no angle bracket,
 * although RFC 5321 allows them: the SMTP client refuses to send those
 * (src/smtp), so such a message would stay queued, deferred forever. */
static int quoted_local(const char *p, size_t n)
{
	if (n < 2 || p[n - 1] != '"')
		return -1;
	for (size_t i = 1; i + 1 < n; i++) {
		if (p[i] == ' ' || p[i] == '<' || p[i] == '>')
			return -1;
		if (p[i] == '\\') {
			if (++i + 1 >= n)
				return -1; /* the escape took the closing quote */
		} else if (p[i] == '"') {
			return -1;
		}
	}
	return 0;
}

static msv_result domain_check(const char *addr, const char *dom, size_t dl, msv_error *err,
                               const char *what);

/* NULL when the label (n octets, starting "xn--") is an IDNA 2008
 * A-label, else why not.  RFC 5891 5.4 and 5890 2.3.2.1: it must be
 * Punycode, decode to a valid U-label with a non-ASCII character, and
 * encode back to itself (DNS compares ASCII case-insensitively).  A
 * server would refuse such a domain, or read it as another one. */
static const char *alabel_problem(const char *label, size_t n)
{
	char a[LABEL_MAX + 1];
	if (n > LABEL_MAX)
		return "a domain label is longer than 63 octets";
	memcpy(a, label, n);
	a[n] = '\0';
	char *u = NULL, *back = NULL;
	const char *why = NULL;
	if (idn2_to_unicode_8z8z(a, &u, 0) != IDN2_OK || !u)
		why = "an xn-- label that is not valid Punycode";
	else if (!has_8bit(u, strlen(u)))
		why = "an xn-- label that decodes to ASCII only";
	else if (idn2_lookup_u8((const uint8_t *)u, (uint8_t **)&back,
	                        IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL) != IDN2_OK ||
	         !back)
		why = "an xn-- label that decodes to characters IDNA 2008 does not allow";
	else if (!msv__strcaseeq(a, n, back))
		why = "an xn-- label that is not the canonical form of what it decodes to";
	idn2_free(u);
	idn2_free(back);
	return why;
}

msv_result msv__addr_check(const char *addr, msv_error *err, const char *what)
{
	size_t len = strlen(addr);
	if (!len)
		return bad(err, what, addr, "empty");
	if (len > ADDR_MAX)
		return bad(err, what, addr, "longer than 254 octets");
	if (msv__utf8_check(addr, len) < len)
		return bad(err, what, addr, "invalid UTF-8");
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)addr[i];
		if (c == '\r' || c == '\n')
			return bad(err, what, addr, "contains a line break");
		if (c < 0x20 || c == 0x7f)
			return bad(err, what, addr, "contains a control character");
	}
	const char *at = strrchr(addr, '@');
	if (!at || at == addr || !at[1])
		return bad(err, what, addr, "not of the form local@domain");
	size_t ll = (size_t)(at - addr);
	if (ll > LOCAL_MAX)
		return bad(err, what, addr, "local part longer than 64 octets");
	if (addr[0] == '"')
		return quoted_local(addr, ll) ? bad(err, what, addr, "a quoted local part that is malformed "
		                                                   "or holds a space or angle bracket")
		                              : domain_check(addr, at + 1, len - ll - 1, err, what);
	if (addr[0] == '.' || addr[ll - 1] == '.')
		return bad(err, what, addr, "local part starts or ends with a dot");
	for (size_t i = 0; i < ll; i++) {
		unsigned char c = (unsigned char)addr[i];
		if (c == '.' && addr[i + 1] == '.')
			return bad(err, what, addr, "two dots in a row in the local part");
		if (c != '.' && c < 0x80 && !msv__is_atext(c))
			return bad(err, what, addr,
			           "local part holds a character outside RFC 5322 dot-atom text");
	}
	return domain_check(addr, at + 1, len - ll - 1, err, what);
}

/* The domain of addr: a host name (A-labels or U-labels) or an address
 * literal. */
static msv_result domain_check(const char *addr, const char *dom, size_t dl, msv_error *err,
                               const char *what)
{
	if (dom[0] == '[') {
		if (dom[dl - 1] != ']' || dl < 3)
			return bad(err, what, addr, "unterminated address literal");
		for (size_t i = 1; i + 1 < dl; i++) {
			unsigned char c = (unsigned char)dom[i];
			/* '<' '>' would end the SMTP path it is written into. */
			if (c == '[' || c == ']' || c == '\\' || c == ' ' || c == '<' || c == '>' ||
			    c >= 0x7f)
				return bad(err, what, addr, "bad character in the address literal");
		}
		return MSV_OK;
	}
	size_t lab = 0;
	for (size_t i = 0; i <= dl; i++) {
		unsigned char c = i < dl ? (unsigned char)dom[i] : '.';
		if (c == '.') {
			if (!lab)
				return bad(err, what, addr, "empty label in the domain");
			if (dom[i - 1] == '-' || dom[i - lab] == '-')
				return bad(err, what, addr, "a domain label starts or ends with a hyphen");
			const char *why = lab >= 4 && !strncasecmp(dom + i - lab, "xn--", 4)
			                      ? alabel_problem(dom + i - lab, lab)
			                      : NULL;
			if (why)
				return bad(err, what, addr, why);
			lab = 0;
			continue;
		}
		if (c < 0x80 && !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		                  (c >= '0' && c <= '9') || c == '-'))
			return bad(err, what, addr, "the domain holds a character not allowed in host names");
		if (++lab > LABEL_MAX && c < 0x80)
			return bad(err, what, addr, "a domain label is longer than 63 octets");
	}
	if (has_8bit(dom, dl)) {
		msv_buf tmp;
		msv_buf_init(&tmp, 1024);
		const char *why = NULL;
		msv_result r = domain_alabel(&tmp, dom, dl, &why);
		msv_buf_free(&tmp);
		if (r == MSV_E_NOMEM)
			return msv_error_set(err, r, MSV_CLASS_LOCAL, "out of memory");
		if (r)
			return bad(err, what, addr, why ? why : "not a valid internationalized domain");
	}
	return MSV_OK;
}

msv_result msv__addr_wire(msv_buf *out, const char *addr, unsigned transport, msv_error *err,
                          const char *what)
{
	const char *at = strrchr(addr, '@');
	size_t ll = (size_t)(at - addr);
	msv_result r;
	if (transport & MSV_MIME_SMTPUTF8)
		return msv_buf_addstr(out, addr);
	if (has_8bit(addr, ll)) {
		char shown[128];
		msv_sanitize_utf8(shown, sizeof(shown), addr, strlen(addr));
		return msv_error_set(err, MSV_E_NO_SMTPUTF8, MSV_CLASS_PERMANENT,
		                     "%s: address \"%s\" has a non-ASCII local part, which needs "
		                     "SMTPUTF8 (RFC 6531)",
		                     what, shown);
	}
	if ((r = msv_buf_add(out, addr, ll + 1)))
		return r;
	const char *why = NULL;
	r = has_8bit(at + 1, strlen(at + 1)) ? domain_alabel(out, at + 1, strlen(at + 1), &why)
	                                      : msv_buf_addstr(out, at + 1);
	if (r == MSV_E_BAD_ADDRESS)
		return bad(err, what, addr, why ? why : "not a valid internationalized domain");
	return r;
}

msv_result msv__addr_domain_ascii(msv_buf *out, const char *addr, msv_error *err)
{
	const char *at = strrchr(addr, '@');
	const char *dom = at ? at + 1 : addr;
	const char *why = NULL;
	msv_result r = has_8bit(dom, strlen(dom)) ? domain_alabel(out, dom, strlen(dom), &why)
	                                          : msv_buf_addstr(out, dom);
	if (r == MSV_E_BAD_ADDRESS)
		return bad(err, "Message-ID", addr, why ? why : "bad domain");
	return r;
}
