/* Rates as config text writes them: "120/m", "0.5/s", "off" (see
 * missive/policy.h). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "missive/policy.h"
#include "policy/policy_int.h"

/* Above a million messages a second a limit limits nothing, and a typo
 * ("1000000000/s") is likelier than intent. */
#define MAX_PER_SEC 1e6

static const struct {
	char unit;
	double seconds;
} units[] = {{'s', 1}, {'m', 60}, {'h', 3600}};

static int is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int msv_rate_parse(const char *s, double *per_sec)
{
	size_t len;
	double n;

	if (!s)
		return -1;
	while (is_blank(*s))
		s++;
	len = strlen(s);
	while (len && is_blank(s[len - 1]))
		len--;
	if (len == 3 && memcmp(s, "off", 3) == 0) {
		*per_sec = 0;
		return 0;
	}
	if (len < 3 || s[len - 2] != '/')
		return -1;
	for (size_t u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
		if (s[len - 1] != units[u].unit)
			continue;
		/* "0/m" is refused: only "off" means no limit, so a zero
		 * typed by mistake never silently lifts a limit. */
		if (msv__decimal_parse(s, len - 2, &n) < 0 || n <= 0)
			return -1;
		n /= units[u].seconds;
		if (!(n > 0) || n > MAX_PER_SEC)
			return -1;
		*per_sec = n;
		return 0;
	}
	return -1;
}

/* The shortest "N/u" that parses back to per_sec exactly, into best
 * (32 bytes): its length, or 0 when no unit has one. */
static size_t shortest_exact(double per_sec, char *best)
{
	char cand[32];
	size_t best_len = 0;
	double back;

	for (size_t u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
		for (int prec = 1; prec <= MSV__DECIMAL_DIGITS; prec++) {
			size_t len = msv__decimal_fixed(per_sec * units[u].seconds, prec, cand,
			                                sizeof(cand) - 2);
			if (!len)
				break;
			cand[len++] = '/';
			cand[len++] = units[u].unit;
			cand[len] = '\0';
			/* the whole text, as the multiplication by the unit may
			 * have rounded */
			if (msv_rate_parse(cand, &back) < 0 || back != per_sec)
				continue;
			if (!best_len || len < best_len) {
				memcpy(best, cand, len + 1);
				best_len = len;
			}
			break;
		}
	}
	return best_len;
}

void msv_rate_format(double per_sec, char *out, size_t n)
{
	char best[32];

	if (!n)
		return;
	/* no rate, or an endless one, is no limit */
	if (!(per_sec > 0) || isinf(per_sec))
		snprintf(out, n, "off");
	else if (shortest_exact(per_sec, best))
		snprintf(out, n, "%s", best);
	else /* not a rate msv_rate_parse gives: the closest /s form */
		snprintf(out, n, "%.*g/s", MSV__DECIMAL_DIGITS, per_sec);
}
