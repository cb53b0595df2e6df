/*
 * missive/policy.h - when to try again.
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

#ifdef __cplusplus
}
#endif

#endif
