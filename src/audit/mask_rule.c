/* The masker's construction and its configured rules ("NAME REGEX
 * KEEP-PREFIX KEEP-SUFFIX").  Apart from mask.c, which masks: the config
 * loader checks rules through here, and a program that only loads the
 * configuration (the light missive) must not link the HMAC code. */
#include <regex.h>
#include <string.h>

#include "audit/audit_int.h"

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* ---- the masker ---- */

msv_result msv_masker_new(msv_masker **out, msv_audit_keys *keys, msv_error *err)
{
	*out = msv_calloc(1, sizeof(**out));
	if (!*out)
		return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
	(*out)->keys = keys;
	return MSV_OK;
}

void msv_masker_free(msv_masker *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nrules; i++)
		regfree(&m->rules[i].re);
	msv_free(m);
}

static int is_space(char c)
{
	return c == ' ' || c == '\t';
}

/* The last whitespace-separated word of s[0..*n) as a number (at most
 * MASK_KEEP_MAX); *n shrinks to what is before it.  -1: not a number. */
static int last_number(const char *s, size_t *n, unsigned *v)
{
	size_t e = *n;
	while (e && is_space(s[e - 1]))
		e--;
	size_t b = e;
	while (b && !is_space(s[b - 1]))
		b--;
	if (b == e || e - b > 4)
		return -1;
	*v = 0;
	for (size_t i = b; i < e; i++) {
		if (!is_digit(s[i]))
			return -1;
		*v = *v * 10 + (unsigned)(s[i] - '0');
	}
	*n = b;
	return *v <= MASK_KEEP_MAX ? 0 : -1;
}

msv_result msv_masker_add_rule(msv_masker *m, const char *spec, msv_error *err)
{
	if (m->nrules == MSV__MASK_RULES_MAX)
		return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
		                     "audit mask rule: more than %d rules", MSV__MASK_RULES_MAX);
	mask_rule *rule = &m->rules[m->nrules];
	while (is_space(*spec))
		spec++;
	size_t nl = strspn(spec, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-");
	if (!nl || nl >= sizeof(rule->name) || !is_space(spec[nl]))
		return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
		                     "audit mask rule \"%.80s\": expected NAME REGEX KEEP-PREFIX "
		                     "KEEP-SUFFIX, NAME of letters, digits, _ and -", spec);
	memcpy(rule->name, spec, nl);
	rule->name[nl] = '\0';
	for (size_t i = 0; i < m->nrules; i++)
		if (!strcmp(m->rules[i].name, rule->name))
			return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
			                     "audit mask rule %s: defined twice", rule->name);
	const char *re = spec + nl;
	size_t n = strlen(re);
	if (last_number(re, &n, &rule->keep_suf) || last_number(re, &n, &rule->keep_pre))
		return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
		                     "audit mask rule %s: KEEP-PREFIX and KEEP-SUFFIX must be numbers "
		                     "from 0 to %d", rule->name, MASK_KEEP_MAX);
	while (n && is_space(re[n - 1]))
		n--;
	while (n && is_space(*re))
		re++, n--;
	if (!n)
		return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
		                     "audit mask rule %s: no regular expression", rule->name);
	char *pat = msv_malloc(n + 1);
	if (!pat)
		return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
	memcpy(pat, re, n);
	pat[n] = '\0';
	int rc = regcomp(&rule->re, pat, REG_EXTENDED);
	msv_free(pat);
	if (rc) {
		char why[200];
		regerror(rc, &rule->re, why, sizeof(why));
		return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
		                     "audit mask rule %s: bad regular expression: %s", rule->name, why);
	}
	m->nrules++;
	return MSV_OK;
}

