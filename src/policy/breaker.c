/* Circuit breakers (see missive/policy.h).
 *
 * closed -> open: the failures-th failure within window_ms (the ring
 * holds the latest failure times; the oldest of the last `failures`
 * decides).  open -> half-open: the cool-down ends.  half-open: one
 * probe at a time; its success closes and forgets the failures, its
 * failure opens for another cool-down; a probe unreported for one
 * cool-down is presumed lost and the next caller probes instead. */
#include <string.h>

#include "missive/policy.h"

static int64_t add_sat(int64_t a, int64_t b)
{
	int64_t r;

	if (__builtin_add_overflow(a, b, &r))
		return b > 0 ? INT64_MAX : INT64_MIN;
	return r;
}

/* a - b, saturated: a far-back clock must not wrap into the window */
static int64_t sub_sat(int64_t a, int64_t b)
{
	int64_t r;

	if (__builtin_sub_overflow(a, b, &r))
		return b < 0 ? INT64_MAX : INT64_MIN;
	return r;
}

const char *msv_circuit_name(msv_circuit c)
{
	switch (c) {
	case MSV_CIRCUIT_CLOSED:
		return "closed";
	case MSV_CIRCUIT_OPEN:
		return "open";
	case MSV_CIRCUIT_HALF_OPEN:
		return "half-open";
	}
	return "unknown";
}

void msv_breaker_init(msv_breaker *b)
{
	memset(b, 0, sizeof(*b));
}

msv_circuit msv_breaker_state(const msv_breaker *b, int64_t now_ms)
{
	if (!b->open)
		return MSV_CIRCUIT_CLOSED;
	return now_ms < b->open_until_ms ? MSV_CIRCUIT_OPEN : MSV_CIRCUIT_HALF_OPEN;
}

static int64_t cool_down(const msv_breaker_policy *p)
{
	return p->cool_down_ms > 0 ? p->cool_down_ms : 0;
}

int msv_breaker_allow(msv_breaker *b, const msv_breaker_policy *p, int64_t now_ms,
                      int64_t *wait_ms)
{
	int64_t until;

	if (wait_ms)
		*wait_ms = 0;
	if (p->failures == 0 || !b->open)
		return 1; /* disabled, or closed */
	if (now_ms < b->open_until_ms) {
		if (wait_ms)
			*wait_ms = b->open_until_ms - now_ms;
		return 0;
	}
	until = add_sat(b->probe_ms, cool_down(p));
	if (b->probing && now_ms < until) {
		if (wait_ms)
			*wait_ms = until - now_ms;
		return 0;
	}
	b->probing = 1; /* first caller, or the last probe is lost */
	b->probe_ms = now_ms;
	return 1;
}

static void trip(msv_breaker *b, const msv_breaker_policy *p, int64_t now_ms)
{
	b->open = 1;
	b->open_until_ms = add_sat(now_ms, cool_down(p));
	b->probing = 0;
	b->trips++;
}

void msv_breaker_record(msv_breaker *b, const msv_breaker_policy *p, int ok, int64_t now_ms)
{
	unsigned k = p->failures < MSV_BREAKER_MAX_FAILURES ? p->failures
	                                                    : MSV_BREAKER_MAX_FAILURES;

	if (k == 0)
		return; /* disabled */
	if (b->open) {
		/* Only the probe's answer counts: sends let through before
		 * the trip and answering late say nothing about now.  While
		 * a probe is out, any answer is taken for its answer. */
		if (!b->probing)
			return;
		if (ok) {
			b->open = 0;
			b->probing = 0;
			b->nfail = 0;
			b->head = 0;
		} else {
			trip(b, p, now_ms);
		}
		return;
	}
	if (ok)
		return; /* the window counts failures only, not their ratio */
	b->fail_ms[b->head] = now_ms;
	b->head = (b->head + 1) % MSV_BREAKER_MAX_FAILURES;
	if (b->nfail < MSV_BREAKER_MAX_FAILURES)
		b->nfail++;
	if (b->nfail < k)
		return;
	/* the k-th latest failure, within (now - window, now] */
	int64_t oldest = b->fail_ms[(b->head + MSV_BREAKER_MAX_FAILURES - k) %
	                            MSV_BREAKER_MAX_FAILURES];
	if (sub_sat(now_ms, oldest) < p->window_ms)
		trip(b, p, now_ms); /* the ring is emptied when it closes */
}
