/*
 * missive/policy.h - when to try again, and how fast to let mail in and out.
 *
 * Retry schedule: exponential backoff with full jitter.  After the n-th
 * failed attempt (n >= 1) the next one waits a uniformly random time in
 * [0, min(cap, base * factor^(n-1))], so that recipients deferred together
 * (a server restarting, a greylist) do not come back together.  A
 * recipient older than max_age is given up (dead).
 *
 * The functions are pure: randomness comes from the caller.
 */
#ifndef MISSIVE_POLICY_H
#define MISSIVE_POLICY_H

#include "missive/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct msv_retry_policy {
	int64_t base_ms;    /* first backoff ceiling; default 60 s */
	double factor;      /* growth per attempt; default 2 */
	int64_t cap_ms;     /* largest backoff ceiling; default 1 h */
	int64_t max_age_ms; /* give up this long after submission; default 5 days */
} msv_retry_policy;

#define MSV_RETRY_POLICY_INIT                                                    \
	{                                                                            \
		.base_ms = 60000, .factor = 2.0, .cap_ms = 3600000,                      \
		.max_age_ms = 5LL * 86400000,                                            \
	}

/* The ceiling for the wait after the attempts-th failure. */
MSV_EXTERN int64_t msv_retry_ceiling_ms(const msv_retry_policy *p, unsigned attempts);
/* The wait after the attempts-th failure; random is any uniform 64-bit value. */
MSV_EXTERN int64_t msv_retry_delay_ms(const msv_retry_policy *p, unsigned attempts,
                                      uint64_t random);
/* 1 when a message created at created_ms must not be tried after now_ms. */
MSV_EXTERN int msv_retry_expired(const msv_retry_policy *p, int64_t created_ms, int64_t now_ms);

/* ---- rates and token buckets ----
 *
 * A rate is written "N/s", "N/m" or "N/h" (N a decimal number > 0), or
 * "off" (no limit).  A bucket holds at most burst tokens and gains rate
 * tokens per second; taking one token admits one message.  Times are
 * milliseconds from any clock the caller likes (monotonic in missived),
 * given by the caller so that tests control them; a clock that goes back
 * adds nothing and takes nothing away. */

/* 0 with *per_sec set (0 for "off"), or -1 when s is not a rate. */
MSV_EXTERN int msv_rate_parse(const char *s, double *per_sec);
/* The rate as the shortest exact form of "N/s", "N/m", "N/h" (or "off")
 * into out (n bytes, 32 is enough). */
MSV_EXTERN void msv_rate_format(double per_sec, char *out, size_t n);

typedef struct msv_bucket {
	double tokens;   /* tokens held at stamp_ms */
	int64_t stamp_ms;
} msv_bucket;

/* A full bucket. */
MSV_EXTERN void msv_bucket_init(msv_bucket *b, double burst, int64_t now_ms);
/* Takes n tokens when the bucket (refilled to now at rate per second, at
 * most burst) holds them: returns 0.  Otherwise takes nothing and returns
 * the milliseconds until it will hold n (> 0), or -1 when it never will
 * (n > burst, or rate 0 with too few tokens).  rate <= 0 together with
 * burst <= 0 means no limit: always 0. */
MSV_EXTERN int64_t msv_bucket_take(msv_bucket *b, double rate, double burst, double n,
                                   int64_t now_ms);
/* The tokens the bucket would hold at now_ms (no change). */
MSV_EXTERN double msv_bucket_level(const msv_bucket *b, double rate, double burst,
                                   int64_t now_ms);

/* ---- circuit breakers ----
 *
 * closed: everything passes.  open: nothing passes until the cool-down
 * ends.  half-open: the cool-down is over; the first caller gets a single
 * probe, whose outcome closes the circuit (success) or opens it again for
 * another cool-down (failure); others wait while the probe is out. */

typedef enum msv_circuit {
	MSV_CIRCUIT_CLOSED = 0,
	MSV_CIRCUIT_OPEN,
	MSV_CIRCUIT_HALF_OPEN
} msv_circuit;

/* "closed", "open", "half-open". */
MSV_EXTERN const char *msv_circuit_name(msv_circuit c);

/* Opens after `failures` failures within `window_ms` (a route's 421
 * storm).  failures is at most MSV_BREAKER_MAX_FAILURES. */
#define MSV_BREAKER_MAX_FAILURES 256
typedef struct msv_breaker_policy {
	unsigned failures;     /* default 10 */
	int64_t window_ms;     /* default 60 s */
	int64_t cool_down_ms;  /* default 60 s */
} msv_breaker_policy;

#define MSV_BREAKER_POLICY_INIT {.failures = 10, .window_ms = 60000, .cool_down_ms = 60000}

typedef struct msv_breaker {
	int64_t fail_ms[MSV_BREAKER_MAX_FAILURES]; /* ring of the latest failure times */
	unsigned nfail, head;
	int open;               /* tripped; open_until_ms says until when */
	int64_t open_until_ms;
	int probing;            /* half-open and the probe is out */
	int64_t probe_ms;       /* when the probe was granted */
	uint64_t trips;         /* times opened, for metrics */
} msv_breaker;

MSV_EXTERN void msv_breaker_init(msv_breaker *b);
/* The state at now_ms (no change). */
MSV_EXTERN msv_circuit msv_breaker_state(const msv_breaker *b, int64_t now_ms);
/* 1 when a send may go now (closed; or half-open and this caller is the
 * probe, which the breaker then notes).  0 otherwise, with *wait_ms (may
 * be NULL) the time until the cool-down ends, or until the probe is
 * presumed lost (one cool-down after it was granted). */
MSV_EXTERN int msv_breaker_allow(msv_breaker *b, const msv_breaker_policy *p, int64_t now_ms,
                                 int64_t *wait_ms);
/* The outcome of a send that was allowed: ok 1 (the server answered as a
 * working server does, including 5xx), 0 (a temporary failure: 421, 4xx,
 * no connection, a timeout). */
MSV_EXTERN void msv_breaker_record(msv_breaker *b, const msv_breaker_policy *p, int ok,
                                   int64_t now_ms);

/* ---- reputation ----
 *
 * A submitter's score, 0..100, starts at `start`, moves per recipient by
 * what happened to its mail, and decays back toward start with a
 * half-life: score(t) = start + (score - start) * 2^(-(t - stamp)/half_life).
 * The tier is the first (highest) whose floor the score reaches: its
 * factor scales the submitter's rate (0 refuses), and `trip` consecutive
 * permanent rejections open the submitter's circuit for cool_down_ms
 * (0: never); with trip > 1 the circuit opens only while the submitter's
 * tokens are exhausted too, as the tier table of the design says. */

#define MSV_REPUTATION_MAX_TIERS 16
typedef struct msv_tier {
	double floor;   /* lowest score of the tier */
	double factor;  /* rate multiplier; 0: refused */
	unsigned trip;  /* consecutive rejections that open the circuit; 0: never */
} msv_tier;

typedef struct msv_reputation_policy {
	double start;        /* 100 */
	int64_t half_life_ms; /* 1 h */
	double delivered, rejected, temporary; /* +1, -5, -2 */
	int64_t cool_down_ms; /* 5 min */
	msv_tier tiers[MSV_REPUTATION_MAX_TIERS]; /* highest floor first */
	size_t ntiers;
} msv_reputation_policy;

#define MSV_REPUTATION_POLICY_INIT                                               \
	{                                                                            \
		.start = 100, .half_life_ms = 3600000, .delivered = 1, .rejected = -5,   \
		.temporary = -2, .cool_down_ms = 300000,                                 \
		.tiers = {{90, 1, 0}, {70, 0.5, 3}, {60, 0.05, 1}, {0, 0, 0}}, .ntiers = 4, \
	}

/* Parses "90:1, 70:0.5:3, 60:0.05:1, 0:0" (floor:factor[:trip], any
 * order, sorted here highest first; floors 0..100 distinct, factors 0..1,
 * one floor must be 0) into p->tiers.  0, or -1 with why (may be NULL,
 * 128 bytes) saying what is wrong. */
MSV_EXTERN int msv_reputation_tiers_parse(const char *s, msv_reputation_policy *p, char *why);
/* The tiers back as text in that form, parsing back to the same table.
 * 256 bytes is enough for the usual tables (the default takes 31);
 * MSV_REPUTATION_TIERS_TEXT_MAX for any parsed one (16 tiers of
 * 15-digit numbers).  A shorter out is cut, still NUL-terminated. */
#define MSV_REPUTATION_TIERS_TEXT_MAX 768
MSV_EXTERN void msv_reputation_tiers_format(const msv_reputation_policy *p, char *out, size_t n);

typedef enum msv_verdict {
	MSV_VERDICT_DELIVERED = 0, /* a recipient accepted */
	MSV_VERDICT_REJECTED,      /* refused permanently (5xx, a bounce) */
	MSV_VERDICT_TEMPORARY      /* deferred: 4xx, a timeout, no connection */
} msv_verdict;

typedef struct msv_reputation {
	double score;            /* at stamp_ms */
	int64_t stamp_ms;
	unsigned rejections;     /* consecutive permanent rejections */
	msv_breaker circuit;     /* uses only its open/probe fields */
} msv_reputation;

MSV_EXTERN void msv_reputation_init(msv_reputation *r, const msv_reputation_policy *p,
                                    int64_t now_ms);
/* The score decayed to now_ms (no change). */
MSV_EXTERN double msv_reputation_score(const msv_reputation *r, const msv_reputation_policy *p,
                                       int64_t now_ms);
/* The tier of a score: never NULL for a parsed policy (one floor is 0). */
MSV_EXTERN const msv_tier *msv_reputation_tier(const msv_reputation_policy *p, double score);
/* Decays to now_ms, then applies n outcomes of one kind (clamped to
 * 0..100); a rejection extends the streak and, per the tier reached,
 * may open the circuit (exhausted: the submitter's bucket is empty); a
 * delivery ends the streak and closes a half-open circuit. */
MSV_EXTERN void msv_reputation_record(msv_reputation *r, const msv_reputation_policy *p,
                                      msv_verdict v, unsigned n, int exhausted, int64_t now_ms);
/* An operator's override: the score becomes score at now_ms, the streak
 * ends and the circuit closes. */
MSV_EXTERN void msv_reputation_set(msv_reputation *r, double score, int64_t now_ms);

typedef enum msv_admit {
	MSV_ADMIT_OK = 0,
	MSV_ADMIT_RATE,       /* no token: wait_ms until one */
	MSV_ADMIT_CIRCUIT,    /* circuit open: wait_ms until the cool-down ends */
	MSV_ADMIT_REPUTATION  /* the tier's factor is 0: refused */
} msv_admit;

/* Whether a submitter may submit n messages at now_ms: its reputation
 * (may be NULL: none kept) gives the tier and the circuit, and the
 * bucket is taken from at rate * factor (burst unchanged; rate <= 0 and
 * burst <= 0: no limit).  Takes the tokens only on MSV_ADMIT_OK; a
 * half-open circuit admits one probe.  *wait_ms (may be NULL) as above,
 * -1 when never. */
MSV_EXTERN msv_admit msv_reputation_admit(msv_reputation *r, const msv_reputation_policy *p,
                                          msv_bucket *b, double rate, double burst, unsigned n,
                                          int64_t now_ms, int64_t *wait_ms);

#ifdef __cplusplus
}
#endif

#endif
