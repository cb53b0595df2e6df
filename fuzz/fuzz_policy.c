/* libFuzzer target: the policy texts, msv_rate_parse and
 * msv_reputation_tiers_parse, on the whole input as a string.  Checks
 * that what is taken is within the documented limits, that a refusal
 * says why and changes nothing, and that format -> parse gives back the
 * same value (and the same text again). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "missive/core.h"
#include "missive/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_rate(const char *s)
{
	char text[32], again[32];
	double v = -1, w = -1;

	if (msv_rate_parse(s, &v) < 0) {
		if (v != -1)
			abort(); /* refused, yet written */
		return;
	}
	if (!isfinite(v) || v < 0 || v > 1e6)
		abort();
	msv_rate_format(v, text, sizeof(text));
	if (msv_rate_parse(text, &w) < 0 || w != v)
		abort();
	msv_rate_format(w, again, sizeof(again));
	if (strcmp(text, again) != 0)
		abort();
}

static int same_tiers(const msv_reputation_policy *a, const msv_reputation_policy *b)
{
	if (a->ntiers != b->ntiers)
		return 0;
	for (size_t i = 0; i < a->ntiers; i++)
		if (a->tiers[i].floor != b->tiers[i].floor ||
		    a->tiers[i].factor != b->tiers[i].factor || a->tiers[i].trip != b->tiers[i].trip)
			return 0;
	return 1;
}

static void check_table(const msv_reputation_policy *p)
{
	if (p->ntiers < 1 || p->ntiers > MSV_REPUTATION_MAX_TIERS)
		abort();
	for (size_t i = 0; i < p->ntiers; i++) {
		const msv_tier *t = &p->tiers[i];
		if (!(t->floor >= 0 && t->floor <= 100) || !(t->factor >= 0 && t->factor <= 1) ||
		    t->trip > 1000)
			abort();
		if (i && !(p->tiers[i - 1].floor > t->floor))
			abort(); /* highest first, distinct */
	}
	if (p->tiers[p->ntiers - 1].floor != 0)
		abort();
}

static void check_tiers(const char *s)
{
	msv_reputation_policy p = MSV_REPUTATION_POLICY_INIT, d = MSV_REPUTATION_POLICY_INIT;
	msv_reputation_policy q = MSV_REPUTATION_POLICY_INIT;
	char why[128], text[MSV_REPUTATION_TIERS_TEXT_MAX], again[MSV_REPUTATION_TIERS_TEXT_MAX];

	memset(why, 'x', sizeof(why));
	if (msv_reputation_tiers_parse(s, &p, why) < 0) {
		if (!memchr(why, '\0', sizeof(why)) || why[0] == '\0' || !same_tiers(&p, &d))
			abort();
		return;
	}
	if (why[0] != '\0')
		abort();
	check_table(&p);
	/* every score has a tier */
	if (!msv_reputation_tier(&p, 0) || msv_reputation_tier(&p, 100) != &p.tiers[0])
		abort();
	msv_reputation_tiers_format(&p, text, sizeof(text));
	if (strlen(text) >= sizeof(text) - 1)
		abort(); /* MSV_REPUTATION_TIERS_TEXT_MAX is not enough */
	if (msv_reputation_tiers_parse(text, &q, NULL) < 0 || !same_tiers(&p, &q))
		abort();
	msv_reputation_tiers_format(&q, again, sizeof(again));
	if (strcmp(text, again) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = msv_malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0'; /* a NUL inside ends the text early, as in C */
	check_rate(s);
	check_tiers(s);
	msv_free(s);
	return 0;
}
