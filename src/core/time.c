/* Monotonic time and deadlines. */
#include <time.h>

#include "missive/core.h"

int64_t msv_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t msv_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

msv_deadline msv_deadline_in(int64_t ms)
{
	if (ms <= 0)
		return 0;
	return msv_now_ms() + ms;
}

msv_deadline msv_deadline_min(msv_deadline a, msv_deadline b)
{
	if (!a)
		return b;
	if (!b)
		return a;
	return a < b ? a : b;
}

int msv_deadline_poll_ms(msv_deadline d, int64_t now)
{
	if (!d)
		return -1;
	if (d <= now)
		return 0;
	int64_t left = d - now;
	return left > INT32_MAX ? INT32_MAX : (int)left;
}
