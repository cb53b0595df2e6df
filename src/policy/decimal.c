/* Plain decimal numbers for policy text (see policy_int.h). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "policy/policy_int.h"

/* Exact powers of ten: every one up to 1e22 is a double exactly, so one
 * division by them rounds correctly. */
static const double pow10_tab[MSV__DECIMAL_DIGITS + 1] = {
	1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
};

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

int msv__decimal_parse(const char *s, size_t len, double *out)
{
	size_t i = 0, int_end, frac_end;
	uint_least64_t mant = 0;
	unsigned sig = 0, decimals = 0;

	while (i < len && is_digit(s[i]))
		i++;
	int_end = i;
	if (int_end == 0)
		return -1;
	frac_end = int_end;
	if (i < len && s[i] == '.') {
		i++;
		while (i < len && is_digit(s[i]))
			i++;
		if (i == int_end + 1)
			return -1; /* "5." */
		frac_end = i;
		/* trailing zeros of the fraction change nothing */
		while (frac_end > int_end + 1 && s[frac_end - 1] == '0')
			frac_end--;
		if (frac_end == int_end + 1)
			frac_end = int_end;
	}
	if (i != len)
		return -1;
	for (size_t j = 0; j < frac_end; j++) {
		if (j == int_end)
			continue; /* the point */
		if (j > int_end)
			decimals++;
		if (sig == 0 && s[j] == '0')
			continue;
		if (++sig > MSV__DECIMAL_DIGITS)
			return -1;
		mant = mant * 10 + (uint_least64_t)(s[j] - '0');
	}
	if (decimals > MSV__DECIMAL_DIGITS)
		return -1;
	/* with 15 significant digits mant < 2^53: an exact double */
	*out = (double)mant / pow10_tab[decimals];
	return 0;
}

/* v with prec significant digits in fixed notation, from the digits and
 * exponent printf's %e gives (so no locale or %f length surprises). */
size_t msv__decimal_fixed(double v, int prec, char *out, size_t n)
{
	char e[40], digits[MSV__DECIMAL_DIGITS + 1];
	int exp10, nd = 0;
	size_t len = 0;

	snprintf(e, sizeof(e), "%.*e", prec - 1, v);
	for (const char *p = e; *p && *p != 'e'; p++)
		if (is_digit(*p) && nd < MSV__DECIMAL_DIGITS)
			digits[nd++] = *p;
	const char *x = strchr(e, 'e');
	if (!x || nd == 0)
		return 0;
	exp10 = 0;
	for (const char *p = x + 2; is_digit(*p); p++)
		exp10 = exp10 * 10 + (*p - '0');
	if (x[1] == '-')
		exp10 = -exp10;
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	/* the integer part, then the fraction */
	char buf[64];
	if (exp10 < -MSV__DECIMAL_DIGITS - 1 || exp10 > 20)
		return 0;
	if (exp10 < 0) {
		buf[len++] = '0';
		buf[len++] = '.';
		for (int z = 0; z < -exp10 - 1; z++)
			buf[len++] = '0';
		for (int d = 0; d < nd; d++)
			buf[len++] = digits[d];
	} else {
		for (int d = 0; d <= exp10; d++)
			buf[len++] = d < nd ? digits[d] : '0';
		if (nd > exp10 + 1) {
			buf[len++] = '.';
			for (int d = exp10 + 1; d < nd; d++)
				buf[len++] = digits[d];
		}
	}
	if (len + 1 > n)
		return 0;
	memcpy(out, buf, len);
	out[len] = '\0';
	return len;
}

size_t msv__decimal_format(double v, char *out, size_t n, int *exact)
{
	size_t len = 0;
	double back;

	if (exact)
		*exact = 0;
	if (n)
		out[0] = '\0';
	if (!isfinite(v) || v < 0)
		return 0;
	for (int prec = 1; prec <= MSV__DECIMAL_DIGITS; prec++) {
		len = msv__decimal_fixed(v, prec, out, n);
		if (len && msv__decimal_parse(out, len, &back) == 0 && back == v) {
			if (exact)
				*exact = 1;
			return len;
		}
	}
	if (!len && n)
		out[0] = '\0';
	return len;
}
