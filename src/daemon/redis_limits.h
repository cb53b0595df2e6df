/* Shared limits (issue 16, docs/scale-out.md "Redis"): the gateway's
 * token buckets and reputation scores kept in Redis, so that every
 * missived on one queue draws from the same buckets.  Each update is one
 * server-side Lua script (EVALSHA, EVAL when the script cache lost it)
 * run on Redis's own clock (TIME): atomic across nodes, and no node's
 * clock skew gives or takes tokens.
 *
 * Redis unreachable never stops admission: the calls answer RL_DOWN at
 * once (no waiting for a connect), the gateway falls back to its local
 * buckets at 1/N of each rate, and a background thread reconnects with
 * backoff.  Each change between the two is logged once.  Every function
 * is safe to call from any thread. */
#ifndef MSV_DAEMON_REDIS_LIMITS_H
#define MSV_DAEMON_REDIS_LIMITS_H

#include <stddef.h>
#include <stdint.h>

#include "missive/core.h"

typedef struct app_config app_config;
typedef struct redis_limits redis_limits;

enum { RL_OK = 0, RL_LIMITED, RL_DOWN };

/* One bucket of an admission: id as the gateway names it ("key:NAME",
 * "ip:ADDR", "domain:NAME"), rate per second (> 0), burst. */
typedef struct rl_bucket {
	const char *id;
	double rate, burst;
} rl_bucket;

/* NULL *out when [limits] redis is not set.  Does not wait for Redis:
 * an unreachable one is the fallback, not an error.  0, or -1 out of
 * memory. */
int redis_limits_start(const app_config *c, redis_limits **out);
void redis_limits_stop(redis_limits *r);
/* 1 while the shared buckets are in use. */
int redis_limits_up(redis_limits *r);

/* Takes one token from each of the n buckets when every one holds one
 * (all or none, in one script): RL_OK.  RL_LIMITED: bucket *which has
 * none, *wait_ms until it will.  RL_DOWN: Redis cannot be asked now.
 * With rep_id, *score is that identity's shared score decayed to now
 * (-1 when Redis holds none). */
int redis_limits_take(redis_limits *r, const rl_bucket *b, size_t n, const char *rep_id,
                      size_t *which, int64_t *wait_ms, double *score);
/* Moves rep_id's shared score by delta (decayed to now first): RL_OK
 * with *score the new score, or RL_DOWN. */
int redis_limits_outcome(redis_limits *r, const char *rep_id, double delta, double *score);
/* An operator's override: the shared score becomes score. */
int redis_limits_set_score(redis_limits *r, const char *rep_id, double score);

/* missive_limits_backend{backend}, missive_limits_fallback_total and
 * missive_limits_fallback_admissions_total: 0, or -1 out of memory. */
int redis_limits_metrics(redis_limits *r, msv_buf *o);
/* Counts an admission decided by the local fallback buckets. */
void redis_limits_fell_back(redis_limits *r);

#endif
