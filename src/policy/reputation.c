/* Submitter reputation: score, decay, tiers and the submitter's circuit
 * (see missive/policy.h; the text form of the tiers is in tiers.c). */
#include <limits.h>
#include <math.h>
#include <string.h>

#include "missive/policy.h"

static double clamp_score(double s)
{
	if (!(s > 0)) /* NaN too: a broken weight must not poison the score */
		return 0;
	return s < 100 ? s : 100;
}

static int64_t add_sat(int64_t a, int64_t b)
{
	int64_t r;

	if (__builtin_add_overflow(a, b, &r))
		return b > 0 ? INT64_MAX : INT64_MIN;
	return r;
}

void msv_reputation_init(msv_reputation *r, const msv_reputation_policy *p, int64_t now_ms)
{
	memset(r, 0, sizeof(*r));
	r->score = clamp_score(p->start);
	r->stamp_ms = now_ms;
	msv_breaker_init(&r->circuit);
}

double msv_reputation_score(const msv_reputation *r, const msv_reputation_policy *p,
                            int64_t now_ms)
{
	double start = clamp_score(p->start), dt;

	/* no half-life: no decay; a clock that went back: none either */
	if (p->half_life_ms <= 0 || now_ms <= r->stamp_ms)
		return r->score;
	dt = (double)((uint64_t)now_ms - (uint64_t)r->stamp_ms);
	return start + (r->score - start) * exp2(-dt / (double)p->half_life_ms);
}

const msv_tier *msv_reputation_tier(const msv_reputation_policy *p, double score)
{
	for (size_t i = 0; i < p->ntiers && i < MSV_REPUTATION_MAX_TIERS; i++)
		if (p->tiers[i].floor <= score)
			return &p->tiers[i];
	return NULL;
}

/* Cool-down over, circuit not closed yet. */
static int half_open(const msv_reputation *r, int64_t now_ms)
{
	return r->circuit.open && now_ms >= r->circuit.open_until_ms;
}

static void open_circuit(msv_reputation *r, const msv_reputation_policy *p, int64_t now_ms)
{
	r->circuit.open = 1;
	r->circuit.open_until_ms = add_sat(now_ms, p->cool_down_ms > 0 ? p->cool_down_ms : 0);
	r->circuit.probing = 0;
	r->circuit.trips++;
}

static void close_circuit(msv_reputation *r)
{
	r->circuit.open = 0;
	r->circuit.probing = 0;
}

/* After a rejection: whether the streak, at the tier the score has
 * reached, opens the circuit.  An open circuit is not extended by the
 * rejections of mail admitted before it opened. */
static void after_rejection(msv_reputation *r, const msv_reputation_policy *p, int exhausted,
                            int64_t now_ms)
{
	const msv_tier *t;

	if (half_open(r, now_ms)) {
		open_circuit(r, p, now_ms); /* the probe was rejected */
		return;
	}
	if (r->circuit.open)
		return;
	t = msv_reputation_tier(p, r->score);
	if (!t || t->trip == 0)
		return;
	/* trip 1: one rejection is enough.  trip > 1: a streak alone may be
	 * one bad list; it also needs the submitter to be pushing as hard as
	 * its rate allows (the design's tier table). */
	if (t->trip == 1 || (r->rejections >= t->trip && exhausted))
		open_circuit(r, p, now_ms);
}

void msv_reputation_record(msv_reputation *r, const msv_reputation_policy *p, msv_verdict v,
                           unsigned n, int exhausted, int64_t now_ms)
{
	double w;

	r->score = msv_reputation_score(r, p, now_ms);
	if (now_ms > r->stamp_ms)
		r->stamp_ms = now_ms;
	if (n == 0)
		return;
	switch (v) {
	case MSV_VERDICT_DELIVERED:
		w = p->delivered;
		break;
	case MSV_VERDICT_REJECTED:
		w = p->rejected;
		break;
	case MSV_VERDICT_TEMPORARY:
		w = p->temporary;
		break;
	default:
		return;
	}
	r->score = clamp_score(r->score + w * (double)n);
	if (v == MSV_VERDICT_DELIVERED) {
		r->rejections = 0;
		if (half_open(r, now_ms))
			close_circuit(r);
	} else if (v == MSV_VERDICT_REJECTED) {
		r->rejections = r->rejections > UINT_MAX - n ? UINT_MAX : r->rejections + n;
		after_rejection(r, p, exhausted, now_ms);
	}
	/* a temporary failure says nothing about the submitter's lists:
	 * the streak and the circuit stay as they are */
}

void msv_reputation_set(msv_reputation *r, double score, int64_t now_ms)
{
	r->score = clamp_score(score);
	r->stamp_ms = now_ms;
	r->rejections = 0;
	close_circuit(r);
}

/* The circuit's answer at now_ms: MSV_ADMIT_OK (with *probe set when this
 * admission would be the half-open circuit's probe) or MSV_ADMIT_CIRCUIT. */
static msv_admit circuit_admit(const msv_reputation *r, const msv_reputation_policy *p,
                               int64_t now_ms, int *probe, int64_t *wait)
{
	int64_t until;

	*probe = 0;
	if (!r->circuit.open)
		return MSV_ADMIT_OK;
	if (now_ms < r->circuit.open_until_ms) {
		*wait = r->circuit.open_until_ms - now_ms;
		return MSV_ADMIT_CIRCUIT;
	}
	/* a probe unanswered for a whole cool-down is presumed lost */
	until = add_sat(r->circuit.probe_ms, p->cool_down_ms > 0 ? p->cool_down_ms : 0);
	if (r->circuit.probing && now_ms < until) {
		*wait = until - now_ms;
		return MSV_ADMIT_CIRCUIT;
	}
	*probe = 1;
	return MSV_ADMIT_OK;
}

msv_admit msv_reputation_admit(msv_reputation *r, const msv_reputation_policy *p,
                               msv_bucket *b, double rate, double burst, unsigned n,
                               int64_t now_ms, int64_t *wait_ms)
{
	int64_t wait = 0, got;
	double factor = 1;
	int probe = 0;
	msv_admit a;

	if (r && p) {
		const msv_tier *t;
		a = circuit_admit(r, p, now_ms, &probe, &wait);
		if (a != MSV_ADMIT_OK)
			goto out;
		t = msv_reputation_tier(p, msv_reputation_score(r, p, now_ms));
		factor = t ? t->factor : 1;
		if (!(factor > 0)) {
			a = MSV_ADMIT_REPUTATION;
			wait = -1;
			goto out;
		}
	}
	a = MSV_ADMIT_OK;
	if (b && (rate > 0 || burst > 0)) {
		/* rate <= 0 with a burst: the burst once, never refilled */
		got = msv_bucket_take(b, rate > 0 ? rate * factor : 0, burst, (double)n, now_ms);
		if (got != 0) {
			a = MSV_ADMIT_RATE;
			wait = got;
			goto out;
		}
	}
	if (probe) { /* only an admission that goes ahead is the probe */
		r->circuit.probing = 1;
		r->circuit.probe_ms = now_ms;
	}
out:
	if (wait_ms)
		*wait_ms = wait;
	return a;
}
