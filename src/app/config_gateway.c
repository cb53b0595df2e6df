/* The gateway's configuration (docs/gateway.md): [limits] token buckets
 * per submitter, [reputation], [destination DOMAIN] outbound shaping, and
 * a route's rate and circuit breaker keys. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_int.h"

void cfg_gateway_defaults(app_config *c)
{
	c->limit_key = (app_limit){2.0, 20};           /* 120/m */
	c->limit_uid = (app_limit){2.0, 20};           /* a local user: as a key */
	c->limit_ip = (app_limit){100.0, 1000};        /* 6000/m: many keys share 127.0.0.1 */
	c->limit_sender_domain = (app_limit){0, 0};    /* off */
	c->limit_exempt_trusted = 1;
	c->limit_redis_nodes = 3;
	c->limit_redis_timeout_ms = 50;
	msv_reputation_policy rp = MSV_REPUTATION_POLICY_INIT;
	c->reputation = rp;
}

void cfg_route_defaults(app_route *r)
{
	r->shape = (app_limit){0, 1};
	msv_breaker_policy bp = MSV_BREAKER_POLICY_INIT;
	r->breaker = bp;
}

/* "N/s", "N/m", "N/h" or "off" into l->rate. */
static int rate_value(parse_ctx *p, const char *section, const char *name, const char *value,
                      app_limit *l)
{
	if (msv_rate_parse(value, &l->rate))
		return cfg_fail(p, MSV_E_CONFIG, section, name,
		                "expected a rate (120/m, 10/s, 600/h) or off, got", value);
	return 1;
}

static int burst_value(parse_ctx *p, const char *section, const char *name, const char *value,
                       app_limit *l)
{
	if (cfg_parse_uint(value, 1000000, &l->burst) || !l->burst)
		return cfg_fail(p, MSV_E_CONFIG, section, name,
		                "expected a number from 1 to 1000000, got", value);
	return 1;
}

/* The limit a [limits] key names ("key-rate" -> limit_key), or NULL. */
static app_limit *limit_for(app_config *c, const char *name, const char **what)
{
	static const char *const kinds[] = {"key-", "ip-", "uid-", "sender-domain-"};
	app_limit *slots[] = {&c->limit_key, &c->limit_ip, &c->limit_uid, &c->limit_sender_domain};
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		size_t n = strlen(kinds[i]);
		if (!strncmp(name, kinds[i], n)) {
			*what = name + n;
			return slots[i];
		}
	}
	return NULL;
}

/* redis://HOST:PORT[/DB] (HOST a name or an IPv4 address; no password:
 * Redis on a private network, docs/scale-out.md). */
static int redis_value(parse_ctx *p, const char *section, const char *name, const char *value)
{
	app_config *c = p->c;
	char host[256];
	unsigned port = 0, db = 0;
	const char *h = !strncmp(value, "redis://", 8) ? value + 8 : NULL;
	size_t hl = h ? strcspn(h, ":/") : 0;
	const char *rest = h ? h + hl : NULL;
	char *end = NULL;
	if (h && hl && hl < sizeof(host) && *rest == ':') {
		unsigned long v = strtoul(rest + 1, &end, 10);
		port = end != rest + 1 && v > 0 && v < 65536 ? (unsigned)v : 0;
	}
	if (port && *end == '/') {
		unsigned long v = strtoul(end + 1, &end, 10);
		db = v < 16 ? (unsigned)v : 100;
	}
	if (!port || *end || db >= 16)
		return cfg_fail(p, MSV_E_CONFIG, section, name,
		                "expected redis://HOST:PORT or redis://HOST:PORT/DB (DB 0 to 15), got",
		                value);
	memcpy(host, h, hl);
	host[hl] = '\0';
	c->limit_redis_host = cfg_keep(p, host);
	c->limit_redis_port = port;
	c->limit_redis_db = db;
	return 1;
}

/* The Redis keys of [limits]: 1 taken, 0 failed, -1 not one of them. */
static int redis_key(parse_ctx *p, const char *section, const char *name, const char *value)
{
	app_config *c = p->c;
	if (!strcmp(name, "redis") && !strcmp(value, "off")) {
		c->limit_redis_host = NULL;
		return 1;
	}
	if (!strcmp(name, "redis"))
		return redis_value(p, section, name, value);
	if (!strcmp(name, "redis-fallback-nodes")) {
		if (cfg_parse_uint(value, 1000, &c->limit_redis_nodes) || !c->limit_redis_nodes)
			return cfg_fail(p, MSV_E_CONFIG, section, name,
			                "expected a number from 1 to 1000, got", value);
		return 1;
	}
	if (!strcmp(name, "redis-timeout")) {
		if (app_parse_duration(value, &c->limit_redis_timeout_ms) ||
		    c->limit_redis_timeout_ms < 1 || c->limit_redis_timeout_ms > 10000)
			return cfg_fail(p, MSV_E_CONFIG, section, name,
			                "expected a duration from 1ms to 10s, got", value);
		return 1;
	}
	return -1;
}

int cfg_limits_key(parse_ctx *p, const char *section, const char *name, const char *value)
{
	app_config *c = p->c;
	const char *what = "";
	int taken = redis_key(p, section, name, value);
	if (taken >= 0)
		return taken;
	app_limit *l = limit_for(c, name, &what);
	if (l && !strcmp(what, "rate"))
		return rate_value(p, section, name, value, l);
	if (l && !strcmp(what, "burst"))
		return burst_value(p, section, name, value, l);
	if (!strcmp(name, "exempt-trusted")) {
		if (cfg_parse_bool(value, &c->limit_exempt_trusted))
			return cfg_fail(p, MSV_E_CONFIG, section, name, "expected yes or no, got", value);
		return 1;
	}
	return cfg_fail(p, MSV_E_CONFIG, section, name, "unknown key", NULL);
}

/* A number within lo..hi. */
static int number(const char *s, double lo, double hi, double *out)
{
	char *end;
	double v = strtod(s, &end);
	if (end == s || *end || !isfinite(v) || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

int cfg_reputation_key(parse_ctx *p, const char *section, const char *name, const char *value)
{
	msv_reputation_policy *rp = &p->c->reputation;
	double *weight = !strcmp(name, "delivered")   ? &rp->delivered
	                 : !strcmp(name, "rejected")  ? &rp->rejected
	                 : !strcmp(name, "temporary") ? &rp->temporary
	                                              : NULL;
	if (weight) {
		if (number(value, -100, 100, weight))
			return cfg_fail(p, MSV_E_CONFIG, section, name,
			                "expected a number from -100 to 100, got", value);
		return 1;
	}
	if (!strcmp(name, "start")) {
		if (number(value, 0, 100, &rp->start))
			return cfg_fail(p, MSV_E_CONFIG, section, name,
			                "expected a score from 0 to 100, got", value);
		return 1;
	}
	int64_t *ms = !strcmp(name, "half-life")   ? &rp->half_life_ms
	              : !strcmp(name, "cool-down") ? &rp->cool_down_ms
	                                           : NULL;
	if (ms) {
		if (app_parse_duration(value, ms) || *ms < 1000)
			return cfg_fail(p, MSV_E_CONFIG, section, name,
			                "expected a duration of 1s or more, got", value);
		return 1;
	}
	if (!strcmp(name, "tiers")) {
		char why[128] = "";
		if (msv_reputation_tiers_parse(value, rp, why))
			return cfg_fail(p, MSV_E_CONFIG, section, name, why, value);
		return 1;
	}
	return cfg_fail(p, MSV_E_CONFIG, section, name, "unknown key", NULL);
}

/* A destination domain as written: a host name, lowercased into out. */
static int domain_ok(const char *d, char *out, size_t n)
{
	size_t len = strlen(d);
	if (!len || len > 253 || len >= n || d[0] == '.' || d[0] == '-')
		return 0;
	for (size_t i = 0; i <= len; i++) {
		char ch = d[i];
		if (ch >= 'A' && ch <= 'Z')
			ch = (char)(ch + 32);
		if (ch && !((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '.' ||
		            ch == '-'))
			return 0;
		out[i] = ch;
	}
	return !strstr(out, "..");
}

static app_destination *destination_new(parse_ctx *p, const char *domain)
{
	app_config *c = p->c;
	for (size_t i = 0; i < c->ndests; i++)
		if (!strcmp(c->dests[i]->domain, domain))
			return c->dests[i];
	app_destination **ds = msv_realloc(c->dests, (c->ndests + 1) * sizeof(*ds));
	if (!ds)
		return NULL;
	c->dests = ds;
	app_destination *d = msv_calloc(1, sizeof(*d));
	if (!d || !(d->domain = msv_strdup(domain))) {
		msv_free(d);
		return NULL;
	}
	d->shape = (app_limit){0, 1};
	ds[c->ndests++] = d;
	return d;
}

int cfg_destination_key(parse_ctx *p, const char *section, const char *domain, const char *name,
                        const char *value)
{
	char lower[256];
	if (!domain_ok(domain, lower, sizeof(lower)))
		return cfg_fail(p, MSV_E_CONFIG, section, name,
		                "expected [destination DOMAIN] with a domain name, got", domain);
	app_destination *d = destination_new(p, lower);
	if (!d)
		return cfg_fail(p, MSV_E_NOMEM, section, name, "out of memory", NULL);
	static const char *const keys[] = {"rate", "burst", "max-connections"};
	for (unsigned i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (strcmp(name, keys[i]))
			continue;
		if (d->given & (1u << i))
			return cfg_fail(p, MSV_E_CONFIG, section, name, "given twice (remove one)", NULL);
		d->given |= 1u << i;
	}
	if (!strcmp(name, "rate"))
		return rate_value(p, section, name, value, &d->shape);
	if (!strcmp(name, "burst"))
		return burst_value(p, section, name, value, &d->shape);
	if (!strcmp(name, "max-connections")) {
		if (cfg_parse_uint(value, 100000, &d->max_connections) || !d->max_connections)
			return cfg_fail(p, MSV_E_CONFIG, section, name,
			                "expected a number from 1 to 100000, got", value);
		return 1;
	}
	return cfg_fail(p, MSV_E_CONFIG, section, name, "unknown key", NULL);
}

int cfg_route_shaping_key(parse_ctx *p, app_route *r, const char *section, const char *name,
                          const char *value)
{
	if (!strcmp(name, "rate"))
		return rate_value(p, section, name, value, &r->shape);
	if (!strcmp(name, "burst"))
		return burst_value(p, section, name, value, &r->shape);
	if (!strcmp(name, "breaker-failures")) {
		if (cfg_parse_uint(value, MSV_BREAKER_MAX_FAILURES, &r->breaker.failures))
			return cfg_fail(p, MSV_E_CONFIG, section, name,
			                "expected a number from 0 (off) to 256, got", value);
		return 1;
	}
	int64_t *ms = !strcmp(name, "breaker-window")      ? &r->breaker.window_ms
	              : !strcmp(name, "breaker-cool-down") ? &r->breaker.cool_down_ms
	                                                   : NULL;
	if (!ms)
		return -1;
	if (app_parse_duration(value, ms) || *ms < 100 || *ms > 86400000)
		return cfg_fail(p, MSV_E_CONFIG, section, name,
		                "expected a duration from 100ms to 1d, got", value);
	return 1;
}

const app_destination *app_destination_for(const app_config *c, const char *domain)
{
	for (size_t i = 0; domain && i < c->ndests; i++)
		if (!strcasecmp(c->dests[i]->domain, domain))
			return c->dests[i];
	return NULL;
}

void cfg_destinations_free(app_config *c)
{
	for (size_t i = 0; i < c->ndests; i++) {
		msv_free(c->dests[i]->domain);
		msv_free(c->dests[i]);
	}
	msv_free(c->dests);
	c->dests = NULL;
	c->ndests = 0;
}

void cfg_gateway_example(FILE *f)
{
	fputs("\n"
	      "[limits]\n"
	      "# Token buckets per submitter: an API key, a client IP (every HTTP\n"
	      "# request), a local user (the socket), a sender domain.  Rates N/s, N/m,\n"
	      "# N/h or off; burst: messages that may come at once.  Over the limit:\n"
	      "# HTTP 429 with Retry-After, sendmail exits 75.  A key's own --rate and\n"
	      "# --burst replace key-rate and key-burst; reputation scales them.\n"
	      "key-rate = 120/m\n"
	      "key-burst = 20\n"
	      "ip-rate = 6000/m\n"
	      "ip-burst = 1000\n"
	      "uid-rate = 120/m\n"
	      "uid-burst = 20\n"
	      "sender-domain-rate = off\n"
	      "# sender-domain-burst = 100\n"
	      "# root and [submission] trusted-users are not limited.\n"
	      "exempt-trusted = yes\n"
	      "# Buckets and scores shared by every missived on one queue, in Redis\n"
	      "# (docs/scale-out.md).  While Redis cannot be reached, each node keeps\n"
	      "# local buckets at 1/redis-fallback-nodes of each rate.\n"
	      "# redis = redis://127.0.0.1:6379\n"
	      "# redis-fallback-nodes = 3\n"
	      "# redis-timeout = 50ms\n"
	      "\n"
	      "[reputation]\n"
	      "# A score 0..100 per key, local user and client IP, moved per recipient\n"
	      "# and decaying back to start with half-life.  tiers: floor:factor[:trip],\n"
	      "# the factor scales the rate (0 refuses), trip consecutive rejections\n"
	      "# open the submitter's circuit for cool-down.\n"
	      "start = 100\n"
	      "half-life = 1h\n"
	      "delivered = 1\n"
	      "rejected = -5\n"
	      "temporary = -2\n"
	      "cool-down = 5m\n"
	      "tiers = 90:1, 70:0.5:3, 60:0.05:1, 0:0\n"
	      "\n"
	      "# Outbound shaping per recipient domain, on every route: messages wait\n"
	      "# in the queue for a token.\n"
	      "#   [destination gmail.com]\n"
	      "#   rate = 600/h\n"
	      "#   burst = 1\n"
	      "#   max-connections = 5\n",
	      f);
}
