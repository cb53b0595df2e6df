/* Helpers shared by the policy files: plain decimal numbers as config
 * text writes them, parsed and printed the same way so that a value
 * printed by one parses back to the same double. */
#ifndef MSV_POLICY_INT_H
#define MSV_POLICY_INT_H

#include <stddef.h>

/* Significant digits a policy number may have: 15 decimal digits always
 * survive a trip through a double, so parse and format agree exactly. */
#define MSV__DECIMAL_DIGITS 15

/*
 * Parses an unsigned decimal "D[.D]" (no sign, no exponent, no hex, no
 * inf/nan: strtod takes all of those, and a locale's decimal comma) from
 * s[0..len).  At most MSV__DECIMAL_DIGITS significant digits and as many
 * decimals (trailing zeros of the fraction do not count).  0 with *out
 * set, or -1.
 */
int msv__decimal_parse(const char *s, size_t len, double *out);

/* v >= 0 rounded to prec (1..MSV__DECIMAL_DIGITS) significant digits, in
 * fixed notation without trailing zeros, into out (n bytes): its length,
 * or 0 when it does not fit. */
size_t msv__decimal_fixed(double v, int prec, char *out, size_t n);

/*
 * Writes v >= 0 in fixed notation with the fewest significant digits
 * (up to MSV__DECIMAL_DIGITS) that msv__decimal_parse reads back as v
 * exactly, or the closest 15-digit form when none does.  Returns the
 * length, or 0 when it does not fit in n bytes or v is not finite and
 * >= 0 (out is then "").  exact (may be NULL) is set to 1 when the form
 * reads back as v.
 */
size_t msv__decimal_format(double v, char *out, size_t n, int *exact);

#endif
