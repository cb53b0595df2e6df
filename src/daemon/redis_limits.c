/*
 * Shared token buckets and scores in Redis (contract in redis_limits.h).
 *
 * One connection, guarded by one mutex: an admission is one round trip
 * on a private network (well under a millisecond), and a command that
 * takes longer than [limits] redis-timeout fails over to the local
 * buckets rather than holding requests.  The connection is only ever
 * made by the reconnect thread, so a request never waits for a connect.
 *
 * Keys: "missive:bucket:ID" (hash tokens, stamp; expires once it would
 * be full again) and "missive:rep:ID" (hash score, stamp; kept).
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "daemon.h"
#include "redis_limits.h"

/* Every bucket of one admission, checked before any is taken.  KEYS: the
 * buckets, then (optional) the reputation key.  ARGV: the number of
 * buckets, the time to keep an idle bucket (ms), the score's start and
 * half-life (ms), then rate (per second) and burst of each bucket.
 * Answers {0 or the 1-based bucket that refused, wait ms, score or ""}. */
static const char take_lua[] =
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
	"local n = tonumber(ARGV[1])\n"
	"local score = ''\n"
	"if #KEYS > n then\n"
	"  local h = redis.call('HMGET', KEYS[n + 1], 'score', 'stamp')\n"
	"  local s, st = tonumber(h[1]), tonumber(h[2])\n"
	"  if s then\n"
	"    local start, hl = tonumber(ARGV[3]), tonumber(ARGV[4])\n"
	"    if now > st and hl > 0 then s = start + (s - start) * 2 ^ (-(now - st) / hl) end\n"
	"    score = tostring(s)\n"
	"  end\n"
	"end\n"
	"local level, stamp = {}, {}\n"
	"for i = 1, n do\n"
	"  local rate, burst = tonumber(ARGV[3 + 2 * i]), tonumber(ARGV[4 + 2 * i])\n"
	"  local h = redis.call('HMGET', KEYS[i], 'tokens', 'stamp')\n"
	"  local tok, st = tonumber(h[1]), tonumber(h[2])\n"
	"  if not tok then tok, st = burst, now end\n"
	"  if now > st then tok = math.min(burst, tok + (now - st) * rate / 1000); st = now end\n"
	"  if tok < 1 then return {i, math.ceil((1 - tok) * 1000 / rate), score} end\n"
	"  level[i], stamp[i] = tok - 1, st\n"
	"end\n"
	"for i = 1, n do\n"
	"  redis.call('HSET', KEYS[i], 'tokens', tostring(level[i]), 'stamp', stamp[i])\n"
	"  redis.call('PEXPIRE', KEYS[i], ARGV[2])\n"
	"end\n"
	"return {0, 0, score}\n";

/* KEYS[1] the reputation key; ARGV start, half-life (ms), then "add" and
 * a delta or "set" and a score.  Answers the new score. */
static const char score_lua[] =
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
	"local start, hl, v = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[4])\n"
	"local s = v\n"
	"if ARGV[3] == 'add' then\n"
	"  local h = redis.call('HMGET', KEYS[1], 'score', 'stamp')\n"
	"  s = tonumber(h[1]) or start\n"
	"  local st = tonumber(h[2]) or now\n"
	"  if now > st and hl > 0 then s = start + (s - start) * 2 ^ (-(now - st) / hl) end\n"
	"  s = s + v\n"
	"end\n"
	"s = math.max(0, math.min(100, s))\n"
	"redis.call('HSET', KEYS[1], 'score', tostring(s), 'stamp', now)\n"
	"return tostring(s)\n";

enum { SCRIPT_TAKE, SCRIPT_SCORE, NSCRIPTS };
static const char *const scripts[NSCRIPTS] = {take_lua, score_lua};

/* Reconnect backoff: first retry soon (a Redis restart), then every 2 s. */
#define RL_BACKOFF_MIN_MS 100
#define RL_BACKOFF_MAX_MS 2000
#define RL_MAX_BUCKETS 4

struct redis_limits {
	const app_config *cfg;
	pthread_mutex_t mu;  /* the connection and what follows */
	redisContext *c;     /* NULL: down */
	char sha[NSCRIPTS][41];
	int ever_up;         /* a first connect has been logged */
	uint64_t fallbacks;  /* changes to the local buckets */
	uint64_t local_admissions;
	/* the reconnect thread */
	pthread_mutex_t th_mu;
	pthread_cond_t cv;
	pthread_t th;
	int stopping, started;
	int kick; /* went down: try now, do not wait out the second */
};

static struct timeval tv_of(int64_t ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
	return tv;
}

/* Drops the connection after a failure (mu held), once per change. */
static void went_down(redis_limits *r, const char *why)
{
	if (!r->c)
		return;
	dlog("limits: Redis at %s:%u failed (%s): local buckets at 1/%u of each rate until it "
	     "answers again", r->cfg->limit_redis_host, r->cfg->limit_redis_port, why,
	     r->cfg->limit_redis_nodes);
	redisFree(r->c);
	r->c = NULL;
	r->fallbacks++;
	pthread_mutex_lock(&r->th_mu);
	r->kick = 1;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->th_mu);
}

static redisReply *command(redisContext *c, int argc, const char **argv, const size_t *lens)
{
	return redisCommandArgv(c, argc, argv, lens);
}

/* Loads the scripts into Redis's cache: 0, or -1 with why. */
static int load_scripts(redisContext *c, char sha[NSCRIPTS][41], char *why, size_t n)
{
	for (int i = 0; i < NSCRIPTS; i++) {
		const char *argv[] = {"SCRIPT", "LOAD", scripts[i]};
		size_t lens[] = {6, 4, strlen(scripts[i])};
		redisReply *rep = command(c, 3, argv, lens);
		int ok = rep && rep->type == REDIS_REPLY_STRING && rep->len == 40;
		if (ok)
			memcpy(sha[i], rep->str, 41);
		else
			snprintf(why, n, "%s", rep && rep->type == REDIS_REPLY_ERROR ? rep->str
			                       : c->errstr[0] ? c->errstr : "SCRIPT LOAD failed");
		if (rep)
			freeReplyObject(rep);
		if (!ok)
			return -1;
	}
	return 0;
}

/* A connection with the scripts loaded and the database selected, or
 * NULL with why. */
static redisContext *dial(const app_config *cfg, char sha[NSCRIPTS][41], char *why, size_t n)
{
	struct timeval tv = tv_of(cfg->limit_redis_timeout_ms);
	redisContext *c = redisConnectWithTimeout(cfg->limit_redis_host, (int)cfg->limit_redis_port, tv);
	if (!c || c->err) {
		snprintf(why, n, "%s", c ? c->errstr : "out of memory");
		if (c)
			redisFree(c);
		return NULL;
	}
	redisSetTimeout(c, tv);
	if (cfg->limit_redis_db) {
		redisReply *rep = redisCommand(c, "SELECT %u", cfg->limit_redis_db);
		int ok = rep && rep->type == REDIS_REPLY_STATUS;
		snprintf(why, n, "%s", rep && rep->type == REDIS_REPLY_ERROR ? rep->str : c->errstr);
		if (rep)
			freeReplyObject(rep);
		if (!ok) {
			redisFree(c);
			return NULL;
		}
	}
	if (load_scripts(c, sha, why, n)) {
		redisFree(c);
		return NULL;
	}
	return c;
}

/* Reconnects while Redis is down.  Never takes mu while holding th_mu:
 * went_down() takes th_mu under mu. */
static void *reconnect_main(void *arg)
{
	redis_limits *r = arg;
	int64_t backoff = 0; /* the first try at once */
	char why[256] = "", last[256] = "";
	for (;;) {
		int up = redis_limits_up(r);
		pthread_mutex_lock(&r->th_mu);
		if (!r->stopping && !r->kick) {
			struct timespec until;
			daemon_abstime(&until, up ? 1000 : backoff);
			pthread_cond_timedwait(&r->cv, &r->th_mu, &until);
		}
		int stop = r->stopping;
		r->kick = 0;
		pthread_mutex_unlock(&r->th_mu);
		if (stop)
			break;
		if (redis_limits_up(r))
			continue;
		char sha[NSCRIPTS][41];
		redisContext *c = dial(r->cfg, sha, why, sizeof(why));
		pthread_mutex_lock(&r->mu);
		if (c) {
			dlog("limits: Redis at %s:%u %s: buckets and scores shared", r->cfg->limit_redis_host,
			     r->cfg->limit_redis_port, r->ever_up ? "answers again" : "connected");
			memcpy(r->sha, sha, sizeof(sha));
			r->c = c;
			r->ever_up = 1;
			backoff = RL_BACKOFF_MIN_MS;
			last[0] = '\0';
		} else {
			if (!r->ever_up && strcmp(why, last)) /* down from the start: said once */
				dlog("limits: cannot reach Redis at %s:%u (%s): local buckets at 1/%u of each "
				     "rate until it answers", r->cfg->limit_redis_host, r->cfg->limit_redis_port,
				     why, r->cfg->limit_redis_nodes);
			if (!r->ever_up && !last[0])
				r->fallbacks++;
			snprintf(last, sizeof(last), "%s", why);
			backoff = backoff < RL_BACKOFF_MIN_MS ? RL_BACKOFF_MIN_MS : backoff * 2;
			if (backoff > RL_BACKOFF_MAX_MS)
				backoff = RL_BACKOFF_MAX_MS;
		}
		pthread_mutex_unlock(&r->mu);
	}
	return NULL;
}

int redis_limits_start(const app_config *c, redis_limits **out)
{
	*out = NULL;
	if (!c->limit_redis_host)
		return 0;
	redis_limits *r = msv_calloc(1, sizeof(*r));
	if (!r)
		return -1;
	r->cfg = c;
	pthread_mutex_init(&r->mu, NULL);
	pthread_mutex_init(&r->th_mu, NULL);
	daemon_cond_init(&r->cv);
	/* A first connect here, so that a node started with Redis up
	 * admits through it from its first request. */
	char why[256];
	r->c = dial(c, r->sha, why, sizeof(why));
	if (r->c) {
		r->ever_up = 1;
		dlog("limits: Redis at %s:%u connected: buckets and scores shared", c->limit_redis_host,
		     c->limit_redis_port);
	}
	if (pthread_create(&r->th, NULL, reconnect_main, r)) {
		redis_limits_stop(r);
		return -1;
	}
	r->started = 1;
	*out = r;
	return 0;
}

void redis_limits_stop(redis_limits *r)
{
	if (!r)
		return;
	if (r->started) {
		pthread_mutex_lock(&r->th_mu);
		r->stopping = 1;
		pthread_cond_signal(&r->cv);
		pthread_mutex_unlock(&r->th_mu);
		pthread_join(r->th, NULL);
	}
	if (r->c)
		redisFree(r->c);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->th_mu);
	pthread_mutex_destroy(&r->mu);
	msv_free(r);
}

int redis_limits_up(redis_limits *r)
{
	if (!r)
		return 0;
	pthread_mutex_lock(&r->mu);
	int up = r->c != NULL;
	pthread_mutex_unlock(&r->mu);
	return up;
}

/* Runs script i with argv[0..argc) laid out as EVALSHA wants from argv[1]
 * on (argv[0] is filled here), mu held: the reply, or NULL after the
 * connection was dropped.  NOSCRIPT (the cache was flushed): EVAL with
 * the text, which caches it again. */
static redisReply *run(redis_limits *r, int i, int argc, const char **argv, size_t *lens)
{
	if (!r->c)
		return NULL;
	argv[0] = "EVALSHA";
	lens[0] = 7;
	argv[1] = r->sha[i];
	lens[1] = 40;
	redisReply *rep = command(r->c, argc, argv, lens);
	if (rep && rep->type == REDIS_REPLY_ERROR && !strncmp(rep->str, "NOSCRIPT", 8)) {
		freeReplyObject(rep);
		argv[0] = "EVAL";
		lens[0] = 4;
		argv[1] = scripts[i];
		lens[1] = strlen(scripts[i]);
		rep = command(r->c, argc, argv, lens);
	}
	if (!rep || rep->type == REDIS_REPLY_ERROR) {
		char why[256];
		snprintf(why, sizeof(why), "%s", rep ? rep->str : r->c->errstr);
		if (rep)
			freeReplyObject(rep);
		went_down(r, why);
		return NULL;
	}
	return rep;
}

/* "missive:bucket:" or "missive:rep:" and id into out. */
static size_t key(char *out, size_t n, const char *kind, const char *id)
{
	int w = snprintf(out, n, "missive:%s:%s", kind, id);
	return w < 0 ? 0 : (size_t)w < n ? (size_t)w : n - 1;
}

int redis_limits_take(redis_limits *r, const rl_bucket *b, size_t n, const char *rep_id,
                      size_t *which, int64_t *wait_ms, double *score)
{
	enum { FIXED = 7 }; /* EVALSHA sha numkeys ... n ttl start half-life */
	char keys[RL_MAX_BUCKETS + 1][160], nums[4 + 2 * RL_MAX_BUCKETS][32];
	const char *argv[FIXED + RL_MAX_BUCKETS * 3 + 1];
	size_t lens[FIXED + RL_MAX_BUCKETS * 3 + 1];
	int argc = 3, nk = 0, nn = 0;
	*score = -1;
	if (!r || n > RL_MAX_BUCKETS)
		return RL_DOWN;
	double keep_ms = 60000;
	for (size_t i = 0; i < n; i++) {
		lens[argc] = key(keys[nk], sizeof(keys[nk]), "bucket", b[i].id);
		argv[argc++] = keys[nk++];
		keep_ms = fmax(keep_ms, 60000 + ceil(b[i].burst / b[i].rate * 1000));
	}
	if (rep_id) {
		lens[argc] = key(keys[nk], sizeof(keys[nk]), "rep", rep_id);
		argv[argc++] = keys[nk++];
	}
	const msv_reputation_policy *p = &r->cfg->reputation;
	snprintf(nums[nn++], 32, "%zu", n);
	snprintf(nums[nn++], 32, "%.0f", fmin(keep_ms, 86400000.0 * 7));
	snprintf(nums[nn++], 32, "%.17g", p->start);
	snprintf(nums[nn++], 32, "%lld", (long long)p->half_life_ms);
	for (size_t i = 0; i < n; i++) {
		snprintf(nums[nn++], 32, "%.17g", b[i].rate);
		snprintf(nums[nn++], 32, "%.17g", b[i].burst);
	}
	for (int i = 0; i < nn; i++) {
		argv[argc] = nums[i];
		lens[argc++] = strlen(nums[i]);
	}
	char numkeys[16];
	snprintf(numkeys, sizeof(numkeys), "%d", nk);
	argv[2] = numkeys;
	lens[2] = strlen(numkeys);
	pthread_mutex_lock(&r->mu);
	redisReply *rep = run(r, SCRIPT_TAKE, argc, argv, lens);
	pthread_mutex_unlock(&r->mu);
	if (!rep)
		return RL_DOWN;
	int rc = RL_DOWN;
	if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 3 &&
	    rep->element[0]->type == REDIS_REPLY_INTEGER && rep->element[1]->type == REDIS_REPLY_INTEGER) {
		long long idx = rep->element[0]->integer;
		const redisReply *s = rep->element[2];
		if (s->type == REDIS_REPLY_STRING && s->len)
			*score = strtod(s->str, NULL);
		rc = idx ? RL_LIMITED : RL_OK;
		*which = idx ? (size_t)(idx - 1) : 0;
		*wait_ms = rep->element[1]->integer;
	}
	freeReplyObject(rep);
	return rc;
}

/* The score script: "add" delta or "set" score. */
static int score_run(redis_limits *r, const char *rep_id, const char *op, double v, double *score)
{
	char k[160], start[32], hl[32], val[32];
	const msv_reputation_policy *p = &r->cfg->reputation;
	snprintf(start, sizeof(start), "%.17g", p->start);
	snprintf(hl, sizeof(hl), "%lld", (long long)p->half_life_ms);
	snprintf(val, sizeof(val), "%.17g", v);
	const char *argv[] = {NULL, NULL, "1", k, start, hl, op, val};
	size_t lens[] = {0, 0, 1, key(k, sizeof(k), "rep", rep_id), strlen(start), strlen(hl),
	                 strlen(op), strlen(val)};
	pthread_mutex_lock(&r->mu);
	redisReply *rep = run(r, SCRIPT_SCORE, 8, argv, lens);
	pthread_mutex_unlock(&r->mu);
	if (!rep)
		return RL_DOWN;
	int ok = rep->type == REDIS_REPLY_STRING;
	if (ok && score)
		*score = strtod(rep->str, NULL);
	freeReplyObject(rep);
	return ok ? RL_OK : RL_DOWN;
}

int redis_limits_outcome(redis_limits *r, const char *rep_id, double delta, double *score)
{
	return r ? score_run(r, rep_id, "add", delta, score) : RL_DOWN;
}

int redis_limits_set_score(redis_limits *r, const char *rep_id, double score)
{
	return r ? score_run(r, rep_id, "set", score, NULL) : RL_DOWN;
}

void redis_limits_fell_back(redis_limits *r)
{
	if (!r)
		return;
	pthread_mutex_lock(&r->mu);
	r->local_admissions++;
	pthread_mutex_unlock(&r->mu);
}

int redis_limits_metrics(redis_limits *r, msv_buf *o)
{
	int up = 0;
	unsigned long long falls = 0, local = 0;
	if (r) {
		pthread_mutex_lock(&r->mu);
		up = r->c != NULL;
		falls = r->fallbacks;
		local = r->local_admissions;
		pthread_mutex_unlock(&r->mu);
	}
	int rc = msv_buf_addf(o,
	                      "# HELP missive_limits_backend Where the submission limits are kept: "
	                      "1 for the one in use.\n"
	                      "# TYPE missive_limits_backend gauge\n"
	                      "missive_limits_backend{backend=\"redis\"} %d\n"
	                      "missive_limits_backend{backend=\"local\"} %d\n"
	                      "# HELP missive_limits_fallback_total Changes from the shared (Redis) "
	                      "limits to the local fallback.\n"
	                      "# TYPE missive_limits_fallback_total counter\n"
	                      "missive_limits_fallback_total %llu\n"
	                      "# HELP missive_limits_fallback_admissions_total Submissions admitted "
	                      "by the local fallback buckets while Redis was down.\n"
	                      "# TYPE missive_limits_fallback_admissions_total counter\n"
	                      "missive_limits_fallback_admissions_total %llu\n",
	                      up, !up, falls, local);
	return rc ? -1 : 0;
}
