/* Exponential backoff with full jitter (see missive/policy.h). */
#include "missive/policy.h"

int64_t msv_retry_ceiling_ms(const msv_retry_policy *p, unsigned attempts)
{
	double c = (double)(p->base_ms > 0 ? p->base_ms : 0);
	for (unsigned i = 1; i < attempts && c < (double)p->cap_ms; i++)
		c *= p->factor > 1.0 ? p->factor : 1.0;
	if (c > (double)p->cap_ms)
		c = (double)p->cap_ms;
	return (int64_t)c;
}

int64_t msv_retry_delay_ms(const msv_retry_policy *p, unsigned attempts, uint64_t random)
{
	int64_t ceil = msv_retry_ceiling_ms(p, attempts);
	if (ceil <= 0)
		return 0;
	return (int64_t)(random % ((uint64_t)ceil + 1));
}

int msv_retry_expired(const msv_retry_policy *p, int64_t created_ms, int64_t now_ms)
{
	return p->max_age_ms > 0 && now_ms - created_ms >= p->max_age_ms;
}
