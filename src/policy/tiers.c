/* The reputation tier table as config text writes it:
 * "90:1, 70:0.5:3, 60:0.05:1, 0:0" (see missive/policy.h). */
#include <stdio.h>
#include <string.h>

#include "missive/policy.h"
#include "policy/policy_int.h"

#define WHY_LEN 128
/* A submitter rejected a thousand times in a row is not worth waiting
 * for; a larger trip is a typo. */
#define MAX_TRIP 1000

static int is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* s[0..len) without blanks around it. */
static void trim(const char **s, size_t *len)
{
	while (*len && is_blank(**s)) {
		(*s)++;
		(*len)--;
	}
	while (*len && is_blank((*s)[*len - 1]))
		(*len)--;
}

static int parse_trip(const char *s, size_t len, unsigned *out)
{
	unsigned v = 0;

	if (len == 0 || len > 4)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > MAX_TRIP)
		return -1;
	*out = v;
	return 0;
}

/* One "floor:factor[:trip]" of s[0..len); idx counts from 1 for why. */
static int parse_tier(const char *s, size_t len, unsigned idx, msv_tier *t, char *why)
{
	const char *f[3];
	size_t flen[3], nf = 0;
	const char *p = s, *end = s + len;

	while (nf < 3) {
		const char *c = memchr(p, ':', (size_t)(end - p));
		f[nf] = p;
		flen[nf] = (size_t)((c ? c : end) - p);
		trim(&f[nf], &flen[nf]);
		nf++;
		if (!c)
			break;
		p = c + 1;
		if (nf == 3) { /* a fourth field */
			snprintf(why, WHY_LEN, "tier %u: \"%.*s\" is not floor:factor[:trip]", idx,
			         (int)(len > 40 ? 40 : len), s);
			return -1;
		}
	}
	if (nf < 2 || msv__decimal_parse(f[0], flen[0], &t->floor) < 0 ||
	    msv__decimal_parse(f[1], flen[1], &t->factor) < 0) {
		snprintf(why, WHY_LEN, "tier %u: \"%.*s\" is not floor:factor[:trip]", idx,
		         (int)(len > 40 ? 40 : len), s);
		return -1;
	}
	if (t->floor > 100) {
		snprintf(why, WHY_LEN, "tier %u: floor %.*s is not between 0 and 100", idx,
		         (int)flen[0], f[0]);
		return -1;
	}
	if (t->factor > 1) {
		snprintf(why, WHY_LEN, "tier %u: factor %.*s is not between 0 and 1", idx,
		         (int)(flen[1] > 40 ? 40 : flen[1]), f[1]);
		return -1;
	}
	t->trip = 0;
	if (nf == 3 && parse_trip(f[2], flen[2], &t->trip) < 0) {
		snprintf(why, WHY_LEN, "tier %u: trip \"%.*s\" is not a whole number 0..%d", idx,
		         (int)(flen[2] > 40 ? 40 : flen[2]), f[2], MAX_TRIP);
		return -1;
	}
	return 0;
}

/* Highest floor first; floors are distinct and one is 0. */
static int check_and_sort(msv_tier *t, size_t nt, char *why)
{
	for (size_t i = 1; i < nt; i++) {
		msv_tier x = t[i];
		size_t j = i;
		for (; j > 0 && t[j - 1].floor < x.floor; j--)
			t[j] = t[j - 1];
		t[j] = x;
	}
	for (size_t i = 1; i < nt; i++) {
		if (t[i].floor == t[i - 1].floor) {
			char fl[32];
			msv__decimal_format(t[i].floor, fl, sizeof(fl), NULL);
			snprintf(why, WHY_LEN, "floor %s appears twice", fl);
			return -1;
		}
	}
	if (t[nt - 1].floor != 0) {
		snprintf(why, WHY_LEN, "no tier has floor 0: a low score would have no tier");
		return -1;
	}
	return 0;
}

int msv_reputation_tiers_parse(const char *s, msv_reputation_policy *p, char *why)
{
	msv_tier t[MSV_REPUTATION_MAX_TIERS];
	size_t nt = 0;
	char dummy[WHY_LEN];

	if (!why)
		why = dummy;
	why[0] = '\0';
	if (!s) {
		snprintf(why, WHY_LEN, "no tiers");
		return -1;
	}
	for (const char *p0 = s;;) {
		const char *c = strchr(p0, ',');
		const char *e = c ? c : p0 + strlen(p0);
		const char *f = p0;
		size_t len = (size_t)(e - p0);
		trim(&f, &len);
		if (len == 0) {
			if (nt || c)
				snprintf(why, WHY_LEN, "tier %zu is empty", nt + 1);
			else
				snprintf(why, WHY_LEN, "no tiers");
			return -1;
		}
		if (nt == MSV_REPUTATION_MAX_TIERS) {
			snprintf(why, WHY_LEN, "more than %d tiers", MSV_REPUTATION_MAX_TIERS);
			return -1;
		}
		if (parse_tier(f, len, (unsigned)nt + 1, &t[nt], why) < 0)
			return -1;
		nt++;
		if (!c)
			break;
		p0 = c + 1;
	}
	if (check_and_sort(t, nt, why) < 0)
		return -1;
	memcpy(p->tiers, t, nt * sizeof(t[0]));
	p->ntiers = nt;
	return 0;
}

void msv_reputation_tiers_format(const msv_reputation_policy *p, char *out, size_t n)
{
	size_t len = 0;

	if (!n)
		return;
	out[0] = '\0';
	for (size_t i = 0; i < p->ntiers && i < MSV_REPUTATION_MAX_TIERS; i++) {
		char fl[32], fa[32];
		const msv_tier *t = &p->tiers[i];
		int w;
		if (!msv__decimal_format(t->floor, fl, sizeof(fl), NULL))
			snprintf(fl, sizeof(fl), "%g", t->floor);
		if (!msv__decimal_format(t->factor, fa, sizeof(fa), NULL))
			snprintf(fa, sizeof(fa), "%g", t->factor);
		if (t->trip)
			w = snprintf(out + len, n - len, "%s%s:%s:%u", i ? ", " : "", fl, fa, t->trip);
		else
			w = snprintf(out + len, n - len, "%s%s:%s", i ? ", " : "", fl, fa);
		if (w < 0 || (size_t)w >= n - len)
			return; /* truncated, still NUL-terminated */
		len += (size_t)w;
	}
}
