/* Token buckets (see missive/policy.h).
 *
 * The bucket keeps the tokens it held at its stamp and nothing else; the
 * level at any later time is computed from the whole elapsed time, so a
 * bucket looked at every millisecond holds exactly what one looked at
 * once holds (no rounding creeps in per look).  Only a successful take
 * moves the stamp. */
#include <math.h>
#include <stdint.h>

#include "missive/policy.h"

/* Beyond this a wait is "never": 10^15 ms is 31 700 years, and the
 * double to int64 conversion stays defined. */
#define NEVER_MS 1e15

void msv_bucket_init(msv_bucket *b, double burst, int64_t now_ms)
{
	b->tokens = burst > 0 ? burst : 0;
	b->stamp_ms = now_ms;
}

double msv_bucket_level(const msv_bucket *b, double rate, double burst, int64_t now_ms)
{
	double t = b->tokens;

	/* a clock that went back adds nothing */
	if (now_ms > b->stamp_ms && rate > 0) {
		/* the unsigned difference is exact even where the signed one
		 * would overflow */
		double elapsed = (double)((uint64_t)now_ms - (uint64_t)b->stamp_ms);
		t += rate * elapsed / 1000.0;
	}
	return t < burst ? t : burst;
}

/* The fewest whole ms after now_ms at which the bucket holds n, given
 * that it does not now: the exact time rounded up, then checked against
 * msv_bucket_level itself so that a take at now + wait succeeds and one
 * a millisecond earlier would not (whatever the rounding did). */
static int64_t wait_for(const msv_bucket *b, double rate, double burst, double n,
                        int64_t now_ms)
{
	double need = n - msv_bucket_level(b, rate, burst, now_ms);
	double from = now_ms < b->stamp_ms ? (double)b->stamp_ms - (double)now_ms : 0;
	double est = from + ceil(need * 1000.0 / rate);
	int64_t w;

	if (!(est < NEVER_MS))
		return -1;
	w = est < 1 ? 1 : (int64_t)est;
	if (now_ms > INT64_MAX - w - 8)
		return -1; /* the end of the clock comes first */
	/* rounding moves the answer by a millisecond at most; the bound
	 * only guards against a rate that is not a number */
	for (int i = 0; i < 8 && w > 1 && msv_bucket_level(b, rate, burst, now_ms + w - 1) >= n; i++)
		w--;
	for (int i = 0; i < 8 && msv_bucket_level(b, rate, burst, now_ms + w) < n; i++)
		w++;
	return w;
}

int64_t msv_bucket_take(msv_bucket *b, double rate, double burst, double n, int64_t now_ms)
{
	double level;

	if (rate <= 0 && burst <= 0)
		return 0; /* no limit */
	if (!(n > 0))
		return 0;
	if (n > burst)
		return -1; /* never holds that many */
	level = msv_bucket_level(b, rate, burst, now_ms);
	if (level >= n) {
		b->tokens = level - n;
		if (now_ms > b->stamp_ms)
			b->stamp_ms = now_ms;
		return 0;
	}
	if (!(rate > 0))
		return -1;
	return wait_for(b, rate, burst, n, now_ms);
}
