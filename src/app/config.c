/* The INI configuration file (libinih): parsing, checks, routes, example. */
#include <errno.h>
#include <ini.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>
#include <unistd.h>

#include "config_int.h"

const char *app_config_path(const char *flag)
{
	if (flag && *flag)
		return flag;
	const char *env = getenv("MISSIVE_CONFIG");
	return env && *env ? env : APP_CONFIG_DEFAULT;
}

int app_parse_duration(const char *s, int64_t *ms)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (end == s || errno || !(v >= 0))
		return -1;
	double unit = 1000;
	if (!strcmp(end, "ms"))
		unit = 1;
	else if (!*end || !strcmp(end, "s"))
		unit = 1000;
	else if (!strcmp(end, "m"))
		unit = 60000;
	else if (!strcmp(end, "h"))
		unit = 3600000;
	else if (!strcmp(end, "d"))
		unit = 86400000;
	else
		return -1;
	if (v * unit > 9e15)
		return -1;
	*ms = (int64_t)(v * unit + 0.5);
	return 0;
}

int app_dsn_param(const char *value, int ret, char *out, size_t n)
{
	size_t len = strlen(value);
	if (!len || len >= n)
		return -1;
	for (size_t i = 0; i <= len; i++)
		out[i] = (char)(value[i] >= 'a' && value[i] <= 'z' ? value[i] - 32 : value[i]);
	if (ret)
		return strcmp(out, "FULL") && strcmp(out, "HDRS") ? -1 : 0;
	if (!strcmp(out, "NEVER"))
		return 0;
	for (const char *t = out; *t;) {
		size_t k = strcspn(t, ",");
		if (!((k == 7 && !strncmp(t, "SUCCESS", 7)) || (k == 7 && !strncmp(t, "FAILURE", 7)) ||
		      (k == 5 && !strncmp(t, "DELAY", 5))))
			return -1;
		t += k + (t[k] == ',');
		if (t[-1] == ',' && !*t)
			return -1; /* a trailing comma */
	}
	return 0;
}

int cfg_parse_uint(const char *s, unsigned max, unsigned *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (!*s || *end || errno || v > max || *s == '-')
		return -1;
	*out = (unsigned)v;
	return 0;
}

int cfg_parse_bool(const char *s, int *out)
{
	if (!strcasecmp(s, "yes") || !strcasecmp(s, "true") || !strcmp(s, "1") || !strcasecmp(s, "on"))
		*out = 1;
	else if (!strcasecmp(s, "no") || !strcasecmp(s, "false") || !strcmp(s, "0") || !strcasecmp(s, "off"))
		*out = 0;
	else
		return -1;
	return 0;
}

/* Sizes: "25000000", "512k", "25M". */
int cfg_parse_size(const char *s, size_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (!*s || errno || *s == '-')
		return -1;
	if (!strcasecmp(end, "k"))
		v <<= 10;
	else if (!strcasecmp(end, "m"))
		v <<= 20;
	else if (*end)
		return -1;
	*out = (size_t)v;
	return 0;
}

/* A key of [queue], [http], [daemon], ... given twice: the second would
 * silently win, and a reader of the file may well trust the first. */
static int seen_before(parse_ctx *p, const char *section, const char *name)
{
	char k[48];
	snprintf(k, sizeof(k), "%s/%s", section, name);
	for (size_t i = 0; i < p->nseen; i++)
		if (!strcmp(p->seen[i], k))
			return 1;
	if (p->nseen < sizeof(p->seen) / sizeof(p->seen[0]))
		memcpy(p->seen[p->nseen++], k, sizeof(k));
	return 0;
}

/* inih cuts a line longer than its buffer and reads the rest as a line
 * of its own (a long value could smuggle in a key), and a NUL ends a
 * value silently.  The file is checked first: each such line is refused
 * with its number.  0, or -1 with err saying why. */
static int config_text_ok(FILE *f, const char *path, msv_error *err)
{
	int ch, line = 1;
	long col = 0, size = 0;
	while ((ch = getc(f)) != EOF) {
		if (++size > (1L << 20)) {
			msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
			              "%s: larger than 1 MiB: not a configuration file", path);
			return -1;
		}
		if (!ch) {
			msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
			              "%s:%d: a NUL byte: the file is not text", path, line);
			return -1;
		}
		if (ch == '\n') {
			line++;
			col = 0;
		} else if (++col > INI_MAX_LINE - 2) {
			msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
			              "%s:%d: the line is longer than %d characters", path, line,
			              INI_MAX_LINE - 2);
			return -1;
		}
	}
	rewind(f);
	return 0;
}

int cfg_fail(parse_ctx *p, msv_result rc, const char *section, const char *name, const char *why,
                const char *value)
{
	if (!p->rc) {
		p->rc = rc;
		snprintf(p->msg, sizeof(p->msg), "[%s] %s: %s%s%s%s", section, name, why,
		         value ? " '" : "", value ? value : "", value ? "'" : "");
	}
	return 0;
}

/* A copy of v that lives as long as the config.  On failure the load
 * fails too (p->rc), so a key is never silently left at its default. */
const char *cfg_keep(parse_ctx *p, const char *v)
{
	char **n = msv_realloc(p->c->strings, (p->c->nstrings + 1) * sizeof(*n));
	if (n) {
		p->c->strings = n;
		if ((n[p->c->nstrings++] = msv_strdup(v)))
			return n[p->c->nstrings - 1];
	}
	if (!p->rc) {
		p->rc = MSV_E_NOMEM;
		snprintf(p->msg, sizeof(p->msg), "out of memory");
	}
	return NULL;
}

static app_route *route_new(parse_ctx *p, const char *name)
{
	for (size_t i = 0; i < p->c->nroutes; i++)
		if (!strcmp(p->c->routes[i]->name, name))
			return p->c->routes[i];
	app_route **rs = msv_realloc(p->c->routes, (p->c->nroutes + 1) * sizeof(*rs));
	if (!rs)
		return NULL;
	p->c->routes = rs;
	/* Routes are never moved: app_conn points into itself. */
	app_route *r = msv_calloc(1, sizeof(*r));
	if (!r || !(r->name = msv_strdup(name))) {
		msv_free(r);
		return NULL;
	}
	app_conn_init(&r->conn);
	msv_pool_options po = MSV_POOL_OPTIONS_INIT;
	r->pool = po;
	cfg_route_defaults(r);
	rs[p->c->nroutes++] = r;
	return r;
}

/* The route keys that are pool settings, each with where it goes. */
static unsigned *pool_count_key(app_route *r, const char *name)
{
	return !strcmp(name, "max-connections") ? &r->pool.max_connections
	       : !strcmp(name, "max-idle")      ? &r->pool.max_idle
	       : !strcmp(name, "max-messages")  ? &r->pool.max_messages
	                                        : NULL;
}

/* A route's connection or DKIM key (conn.h, dkim_keys.h), the same names
 * as the flags of `missive send`. */
static int conn_or_dkim_key(parse_ctx *p, app_route *r, const char *section, const char *name,
                            const char *value)
{
	int has_value = 1, known = !strncmp(name, "dkim-", 5);
	for (const app_conn_key *k = app_conn_keys; !known && k->name; k++)
		if (!strcmp(k->name, name))
			known = 1, has_value = k->has_value;
	if (!known)
		return cfg_fail(p, MSV_E_CONFIG, section, name, "unknown key", NULL);
	const char *arg = NULL;
	if (!has_value) {
		int on;
		if (cfg_parse_bool(value, &on))
			return cfg_fail(p, MSV_E_CONFIG, section, name, "expected yes or no, got", value);
		if (!on)
			return 1;
	} else if (!(arg = cfg_keep(p, value))) {
		return cfg_fail(p, MSV_E_NOMEM, section, name, "out of memory", NULL);
	}
	msv_error err;
	int rc = app_conn_set(&r->conn, name, arg, &err);
	if (!rc)
		rc = app_dkim_set(&r->dkim, name, arg, &err);
	if (rc < 0)
		return cfg_fail(p, MSV_E_CONFIG, section, name, err.message, NULL);
	return rc ? 1 : cfg_fail(p, MSV_E_CONFIG, section, name, "unknown key", NULL);
}

static int route_key(parse_ctx *p, app_route *r, const char *section, const char *name,
                     const char *value)
{
	int64_t ms;
	unsigned u;
	if (!strcmp(name, "sender-domains")) {
		char *dup = msv_strdup(value), *save = NULL;
		if (!dup)
			return cfg_fail(p, MSV_E_NOMEM, section, name, "out of memory", NULL);
		int oom = 0;
		for (char *t = strtok_r(dup, " ,\t", &save); t && !oom; t = strtok_r(NULL, " ,\t", &save)) {
			char **d = msv_realloc(r->domains, (r->ndomains + 1) * sizeof(*d));
			if (!d) {
				oom = 1;
				break;
			}
			r->domains = d;
			for (char *q = t; *q; q++)
				*q = (char)((*q >= 'A' && *q <= 'Z') ? *q + 32 : *q);
			if (!(r->domains[r->ndomains] = msv_strdup(t)))
				oom = 1;
			else
				r->ndomains++;
		}
		msv_free(dup);
		/* A domain dropped for want of memory would route its mail elsewhere. */
		return oom ? cfg_fail(p, MSV_E_NOMEM, section, name, "out of memory", NULL) : 1;
	}
	if (!strcmp(name, "dsn-notify") || !strcmp(name, "dsn-ret") || !strcmp(name, "return-path")) {
		char up[64];
		if (strcmp(name, "return-path")) {
			/* Checked here, not at the first send, so a typo stops missived at start. */
			int ret = !strcmp(name, "dsn-ret");
			if (app_dsn_param(value, ret, up, sizeof(up)))
				return cfg_fail(p, MSV_E_CONFIG, section, name,
				            ret ? "expected FULL or HDRS, got"
				                : "expected NEVER or a list of SUCCESS, FAILURE, DELAY, got",
				            value);
			value = up;
		}
		const char *v = cfg_keep(p, value);
		if (!strcmp(name, "dsn-notify"))
			r->dsn_notify = v;
		else if (!strcmp(name, "dsn-ret"))
			r->dsn_ret = v;
		else
			r->return_path = v;
		return 1;
	}
	int shaping = cfg_route_shaping_key(p, r, section, name, value);
	if (shaping >= 0)
		return shaping;
	unsigned *count = pool_count_key(r, name);
	if (count) {
		if (cfg_parse_uint(value, 100000, &u))
			return cfg_fail(p, MSV_E_CONFIG, section, name, "expected a whole number, got", value);
		*count = u;
		return 1;
	}
	if (!strcmp(name, "idle-timeout") || !strcmp(name, "noop-after") ||
	    !strcmp(name, "connection-max-age")) {
		if (app_parse_duration(value, &ms) || ms > INT32_MAX)
			return cfg_fail(p, MSV_E_CONFIG, section, name, "expected a duration (30s, 5m), got", value);
		if (!strcmp(name, "idle-timeout"))
			r->pool.idle_timeout_ms = (int)ms;
		else if (!strcmp(name, "noop-after"))
			r->pool.noop_after_ms = (int)ms;
		else
			r->pool.max_age_ms = ms;
		return 1;
	}
	return conn_or_dkim_key(p, r, section, name, value);
}

/* [queue]: where the queue is and how long leases last. */
static int queue_key(parse_ctx *p, const char *section, const char *name, const char *value)
{
	app_config *c = p->c;
	int64_t ms;
	if (!strcmp(name, "path")) {
		if (c->queue_url)
			return cfg_fail(p, MSV_E_CONFIG, section, name,
			                "give path (SQLite) or url (PostgreSQL), not both; got", value);
		c->queue_path = cfg_keep(p, value);
		return 1;
	}
	if (!strcmp(name, "url")) {
		if (strncmp(value, "postgresql://", 13) && strncmp(value, "postgres://", 11))
			return cfg_fail(p, MSV_E_CONFIG, section, name,
			                "expected a postgresql://USER@HOST:PORT/DB URI, got", value);
		if (c->queue_path)
			return cfg_fail(p, MSV_E_CONFIG, section, name,
			                "give path (SQLite) or url (PostgreSQL), not both; got", value);
		c->queue_url = c->queue_path = cfg_keep(p, value);
		return 1;
	}
	if (!strcmp(name, "lease")) {
		if (app_parse_duration(value, &ms) || ms < 1000)
			return cfg_fail(p, MSV_E_CONFIG, section, name, "expected a duration of 1s or more, got", value);
		c->lease_ms = ms;
		return 1;
	}
	return cfg_fail(p, MSV_E_CONFIG, section, name, "unknown key", NULL);
}

/* [http]: the API's address, credentials and resource limits. */
static int http_key(parse_ctx *p, const char *section, const char *name, const char *value)
{
	app_config *c = p->c;
	int64_t ms;
	unsigned u;
	if (!strcmp(name, "listen")) {
		c->http_listen = cfg_keep(p, value);
		return 1;
	}
	if (!strcmp(name, "token-file")) {
		c->http_token_file = cfg_keep(p, value);
		return 1;
	}
	if (!strcmp(name, "trust-loopback")) {
		if (cfg_parse_bool(value, &c->http_trust_loopback))
			return cfg_fail(p, MSV_E_CONFIG, section, name, "expected yes or no, got", value);
		return 1;
	}
	if (!strcmp(name, "max-body")) {
		size_t sz;
		if (cfg_parse_size(value, &sz) || sz < 1024)
			return cfg_fail(p, MSV_E_CONFIG, section, name, "expected a size (25M), got", value);
		c->http_max_body = sz;
		return 1;
	}
	if (!strcmp(name, "max-connections") || !strcmp(name, "max-connections-per-ip")) {
		/* Each connection is a file descriptor; missived raises its
		 * soft limit to the hard one and caps this below that. */
		if (cfg_parse_uint(value, 1000000, &u) || !u)
			return cfg_fail(p, MSV_E_CONFIG, section, name,
			            "expected a number from 1 to 1000000, got", value);
		*(name[15] ? &c->http_max_conns_per_ip : &c->http_max_conns) = u;
		return 1;
	}
	if (!strcmp(name, "header-timeout") || !strcmp(name, "idle-timeout")) {
		if (app_parse_duration(value, &ms) || ms < 1000 || ms > 86400000)
			return cfg_fail(p, MSV_E_CONFIG, section, name,
			            "expected a duration from 1s to 1d, got", value);
		*(!strcmp(name, "header-timeout") ? &c->http_header_timeout_ms : &c->http_idle_timeout_ms) = ms;
		return 1;
	}
	if (!strcmp(name, "max-inflight")) {
		size_t sz;
		if (cfg_parse_size(value, &sz) || sz < 1024)
			return cfg_fail(p, MSV_E_CONFIG, section, name, "expected a size (256M), got", value);
		c->http_max_inflight = sz;
		return 1;
	}
	return cfg_fail(p, MSV_E_CONFIG, section, name, "unknown key", NULL);
}

/* [daemon]: workers, timing, logging and the submission socket. */
static int daemon_key(parse_ctx *p, const char *section, const char *name, const char *value)
{
	app_config *c = p->c;
	int64_t ms;
	unsigned u;
	if (!strcmp(name, "workers") || !strcmp(name, "batch")) {
		if (cfg_parse_uint(value, 1024, &u) || !u)
			return cfg_fail(p, MSV_E_CONFIG, section, name, "expected a number from 1 to 1024, got", value);
		*(!strcmp(name, "workers") ? &c->workers : &c->batch) = u;
		return 1;
	}
	if (!strcmp(name, "grace") || !strcmp(name, "poll-interval")) {
		if (app_parse_duration(value, &ms))
			return cfg_fail(p, MSV_E_CONFIG, section, name, "expected a duration, got", value);
		*(!strcmp(name, "grace") ? &c->grace_ms : &c->poll_ms) = ms;
		return 1;
	}
	if (!strcmp(name, "log-file")) {
		c->log_file = cfg_keep(p, value);
		return 1;
	}
	if (!strcmp(name, "node")) { /* in lease owners, logs, metrics: no ':' or spaces */
		static const char ok[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";
		if (!*value || strlen(value) > 64 || value[strspn(value, ok)])
			return cfg_fail(p, MSV_E_CONFIG, section, name,
			                "expected 1 to 64 of A-Z a-z 0-9 . _ -, got", value);
		c->node = cfg_keep(p, value);
		return 1;
	}
	if (!strcmp(name, "socket")) {
		if (strlen(value) >= sizeof(((struct sockaddr_un *)0)->sun_path))
			return cfg_fail(p, MSV_E_CONFIG, section, name, "longer than a socket path may be (107 octets):", value);
		c->socket_path = cfg_keep(p, value);
		return 1;
	}
	if (!strcmp(name, "socket-mode")) {
		char *end;
		unsigned long m = strtoul(value, &end, 8);
		if (!*value || *end || m > 0777)
			return cfg_fail(p, MSV_E_CONFIG, section, name, "expected an octal mode (0666), got", value);
		c->socket_mode = (unsigned)m;
		return 1;
	}
	if (!strcmp(name, "socket-max-per-uid")) {
		if (cfg_parse_uint(value, 4096, &u) || !u)
			return cfg_fail(p, MSV_E_CONFIG, section, name, "expected a number from 1 to 4096, got", value);
		c->socket_max_per_uid = u;
		return 1;
	}
	if (!strcmp(name, "socket-timeout")) {
		if (app_parse_duration(value, &ms) || ms < 1000 || ms > 3600000)
			return cfg_fail(p, MSV_E_CONFIG, section, name, "expected a duration from 1s to 1h, got", value);
		c->socket_timeout_ms = ms;
		return 1;
	}
	if (!strcmp(name, "socket-max-inflight")) {
		size_t sz;
		if (cfg_parse_size(value, &sz) || sz < (1u << 20) || sz > ((size_t)1 << 40))
			return cfg_fail(p, MSV_E_CONFIG, section, name, "expected a size from 1M to 1T (64M), got", value);
		c->socket_max_inflight = sz;
		return 1;
	}
	return cfg_fail(p, MSV_E_CONFIG, section, name, "unknown key", NULL);
}

/* [submission]: who local users are and how many recipients a message may have. */
static int submission_key(parse_ctx *p, const char *section, const char *name, const char *value)
{
	app_config *c = p->c;
	unsigned u;
	if (!strcmp(name, "myhostname") || !strcmp(name, "trusted-users")) {
		/* Both end up in a header: one line of printable ASCII. */
		for (const char *q = value; *q; q++)
			if (*q < 32 || *q > 126)
				return cfg_fail(p, MSV_E_CONFIG, section, name, "expected printable ASCII, got", value);
		int host = !strcmp(name, "myhostname");
		if (host && (!*value || strlen(value) > 253 || strpbrk(value, " ,;@<>()\"\\[]")))
			return cfg_fail(p, MSV_E_CONFIG, section, name, "expected a host name, got", value);
		*(host ? &c->myhostname : &c->trusted_users) = cfg_keep(p, value);
		return 1;
	}
	if (!strcmp(name, "max-recipients")) {
		/* 5000: the HTTP API's recipient array (src/daemon/http.c). */
		if (cfg_parse_uint(value, 5000, &u) || !u)
			return cfg_fail(p, MSV_E_CONFIG, section, name, "expected a number from 1 to 5000, got", value);
		c->max_recipients = u;
		return 1;
	}
	return cfg_fail(p, MSV_E_CONFIG, section, name, "unknown key", NULL);
}

/* [retry]: the backoff schedule. */
static int retry_key(parse_ctx *p, const char *section, const char *name, const char *value)
{
	app_config *c = p->c;
	if (!strcmp(name, "factor")) {
		char *end;
		double f = strtod(value, &end);
		if (*end || !(f >= 1.0 && f <= 100))
			return cfg_fail(p, MSV_E_CONFIG, section, name, "expected a number from 1 to 100, got", value);
		c->retry.factor = f;
		return 1;
	}
	int64_t *slot = !strcmp(name, "base") ? &c->retry.base_ms
	                : !strcmp(name, "cap") ? &c->retry.cap_ms
	                : !strcmp(name, "max-age") ? &c->retry.max_age_ms : NULL;
	if (slot) {
		if (app_parse_duration(value, slot))
			return cfg_fail(p, MSV_E_CONFIG, section, name, "expected a duration, got", value);
		return 1;
	}
	return cfg_fail(p, MSV_E_CONFIG, section, name, "unknown key", NULL);
}

/* [suppression]: what goes on the suppression list by itself. */
static int suppression_key(parse_ctx *p, const char *section, const char *name, const char *value)
{
	app_config *c = p->c;
	if (!strcmp(name, "hard-bounces")) {
		if (cfg_parse_bool(value, &c->suppress_hard_bounces))
			return cfg_fail(p, MSV_E_CONFIG, section, name, "expected yes or no, got", value);
		return 1;
	}
	return cfg_fail(p, MSV_E_CONFIG, section, name, "unknown key", NULL);
}

static const struct {
	const char *name;
	cfg_section_fn *key;
} sections[] = {
	{"queue", queue_key},           {"http", http_key},
	{"daemon", daemon_key},         {"submission", submission_key},
	{"retry", retry_key},           {"suppression", suppression_key},
	{"limits", cfg_limits_key},     {"reputation", cfg_reputation_key},
	{"audit", cfg_audit_key},
};

/* "route NAME" or "destination DOMAIN": what follows the word, or NULL. */
static const char *section_arg(const char *section, const char *word)
{
	size_t n = strlen(word);
	if (strncmp(section, word, n) || (section[n] && section[n] != ' '))
		return NULL;
	const char *a = section + n;
	while (*a == ' ')
		a++;
	return a;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
	parse_ctx *p = user;
	const char *arg;
	if (!name) /* a section header alone */
		return 1;
	if ((arg = section_arg(section, "route"))) {
		app_route *r = route_new(p, *arg ? arg : "default");
		if (!r)
			return cfg_fail(p, MSV_E_NOMEM, section, name, "out of memory", NULL);
		return route_key(p, r, section, name, value);
	}
	if ((arg = section_arg(section, "destination")))
		return cfg_destination_key(p, section, arg, name, value);
	if (!cfg_audit_repeatable(section, name) && seen_before(p, section, name))
		return cfg_fail(p, MSV_E_CONFIG, section, name, "given twice (remove one)", NULL);
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
		if (!strcmp(section, sections[i].name))
			return sections[i].key(p, section, name, value);
	return cfg_fail(p, MSV_E_CONFIG, section, name, "unknown section", NULL);
}

/* submit.sock beside a queue file; none for other queues or when the
 * path would be too long for a socket (sendmail then writes the queue). */
static const char *default_socket(parse_ctx *p)
{
	const char *q = p->c->queue_path, *slash = q ? strrchr(q, '/') : NULL;
	char s[sizeof(((struct sockaddr_un *)0)->sun_path)];
	if (!q || strstr(q, "://"))
		return "";
	int n = slash ? snprintf(s, sizeof(s), "%.*s/submit.sock", (int)(slash - q), q)
	              : snprintf(s, sizeof(s), "submit.sock");
	if (n < 0 || (size_t)n >= sizeof(s))
		return "";
	return cfg_keep(p, s);
}

/* The parser's first failure (code kept while parsing) as the error
 * value returned; line 0: a check of the whole file. */
static msv_result load_failed(msv_error *err, msv_result code, const char *path, int line,
                              const char *msg)
{
	msv_class cls = code == MSV_E_NOMEM ? MSV_CLASS_LOCAL : MSV_CLASS_CONFIG;
	if (line)
		return msv_error_set(err, code, cls, "%s:%d: %s", path, line, msg);
	return msv_error_set(err, code, cls, "%s: %s", path, msg);
}

/* myhostname unset or empty: the host name if it is fully qualified, else
 * localhost.localdomain.  Resolved once here, not for each submission. */
static const char *default_hostname(parse_ctx *p)
{
	char host[256] = "";
	if (gethostname(host, sizeof(host) - 1))
		host[0] = '\0';
	host[sizeof(host) - 1] = '\0';
	return cfg_keep(p, strchr(host, '.') ? host : "localhost.localdomain");
}

msv_result app_config_load(app_config *c, const char *path, msv_error *err)
{
	memset(c, 0, sizeof(*c));
	msv_retry_policy rp = MSV_RETRY_POLICY_INIT;
	c->retry = rp;
	c->lease_ms = 300000;
	c->http_max_body = 25u << 20;
	c->http_max_conns = 2048;
	c->http_max_conns_per_ip = 128;
	c->http_header_timeout_ms = 10000;
	c->http_idle_timeout_ms = 60000;
	c->http_max_inflight = 256u << 20;
	c->workers = 4;
	c->batch = 64;
	c->grace_ms = 30000;
	c->poll_ms = 1000;
	c->suppress_hard_bounces = 1;
	c->socket_mode = 0666;
	c->socket_max_per_uid = 8;
	c->socket_max_inflight = 64u << 20;
	c->socket_timeout_ms = 120000;
	c->max_recipients = 1000;
	cfg_gateway_defaults(c);
	cfg_audit_defaults(c);
	if (!(c->path = msv_strdup(path))) {
		return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL,
		                     "cannot load the configuration file %s: out of memory", path);
	}
	FILE *f = fopen(path, "r");
	if (!f) {
		return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
		                     "cannot read the configuration file %s: %s (give --config FILE or "
		                     "set MISSIVE_CONFIG)", path, strerror(errno));
	}
	if (config_text_ok(f, path, err)) {
		fclose(f);
		return err->code;
	}
	parse_ctx p = {c, path, MSV_OK, "", {""}, 0};
	int line = ini_parse_file(f, handler, &p);
	fclose(f);
	if (line) {
		if (p.rc)
			return load_failed(err, p.rc, path, line, p.msg);
		return load_failed(err, MSV_E_CONFIG, path, line,
		                   "syntax error (expected [section] or key = value)");
	}
	if (!c->queue_path)
		c->queue_path = cfg_keep(&p, "/var/lib/missive/queue.db");
	if (!c->http_listen)
		c->http_listen = cfg_keep(&p, "127.0.0.1:8025");
	if (!c->socket_path)
		c->socket_path = default_socket(&p);
	if (!c->myhostname || !*c->myhostname)
		c->myhostname = default_hostname(&p);
	if (!c->trusted_users)
		c->trusted_users = cfg_keep(&p, "root");
	cfg_audit_finish(&p);
	if (c->retry.cap_ms < c->retry.base_ms)
		return load_failed(err, MSV_E_CONFIG, path, 0, "[retry] cap is smaller than base");
	if (p.rc) /* cfg_keep() failed: a key or a default would be missing. */
		return load_failed(err, p.rc, path, 0, p.msg);
	return 0;
}

static void route_free(app_route *r)
{
	for (size_t i = 0; i < r->ndomains; i++)
		msv_free(r->domains[i]);
	msv_free(r->domains);
	app_conn_free(&r->conn);
	app_dkim_free(&r->dkim);
	msv_free(r->name);
	msv_free(r);
}

void app_config_free(app_config *c)
{
	for (size_t i = 0; i < c->nroutes; i++)
		route_free(c->routes[i]);
	msv_free(c->routes);
	cfg_destinations_free(c);
	cfg_audit_free(c);
	for (size_t i = 0; i < c->nstrings; i++)
		if (c->strings[i])
			msv_free_secret(c->strings[i]);
	msv_free(c->strings);
	msv_free(c->path);
	memset(c, 0, sizeof(*c));
}

int app_user_trusted(const app_config *c, long uid, const char *name)
{
	if (uid == 0)
		return 1;
	size_t nl = name ? strlen(name) : 0;
	for (const char *t = c->trusted_users; nl && t && *t;) {
		t += strspn(t, " ,\t");
		size_t k = strcspn(t, " ,\t");
		if (k == nl && !memcmp(t, name, nl))
			return 1;
		t += k;
	}
	return 0;
}

app_route *app_route_for(const app_config *c, const char *sender)
{
	const char *at = sender ? strrchr(sender, '@') : NULL;
	app_route *def = NULL;
	for (size_t i = 0; i < c->nroutes; i++) {
		app_route *r = c->routes[i];
		if (!strcmp(r->name, "default"))
			def = r;
		for (size_t j = 0; at && j < r->ndomains; j++)
			if (!strcasecmp(r->domains[j], at + 1))
				return r;
	}
	return def;
}

/* The file's header, [queue] and [http]. */
static void example_queue_http(FILE *f)
{
	fputs("# missive configuration: read by missived and by the missive subcommands\n"
	      "# that touch the queue (sendmail, queue, bounce, suppression).\n"
	      "# Give it with --config FILE or MISSIVE_CONFIG; default " APP_CONFIG_DEFAULT ".\n"
	      "# Durations: 500ms, 30s, 5m, 2h, 7d (a bare number is seconds).\n"
	      "\n"
	      "[queue]\n"
	      "# The SQLite queue (WAL, synchronous=FULL); its directory must exist.\n"
	      "path = /var/lib/missive/queue.db\n"
	      "# How long a worker holds claimed recipients before others may take them.\n"
	      "lease = 5m\n"
	      "\n"
	      "[http]\n"
	      "# The submission and status API; empty to disable.  Anything but a\n"
	      "# loopback address requires token-file.\n"
	      "listen = 127.0.0.1:8025\n"
	      "# A file whose first line is the bearer token clients must send.\n"
	      "# token-file = /etc/missive/http-token\n"
	      "# Every endpoint but /healthz needs 'Authorization: Bearer KEY' (keys:\n"
	      "# missive key add; token-file is one more key, named default), on\n"
	      "# loopback too, unless trust-loopback = yes (one application per host).\n"
	      "trust-loopback = no\n"
	      "# Largest accepted request body.\n"
	      "max-body = 25M\n"
	      "# Connections open at once, in all and from one client address; more\n"
	      "# are refused (closed at once) so that no client can starve the others.\n"
	      "max-connections = 2048\n"
	      "max-connections-per-ip = 128\n"
	      "# A client must send its request line and headers within header-timeout\n"
	      "# (slow-loris); a connection with no traffic for idle-timeout is closed.\n"
	      "header-timeout = 10s\n"
	      "idle-timeout = 60s\n"
	      "# Request bodies held in memory at once, all connections together; a\n"
	      "# request that would go over gets 503 with Retry-After.\n"
	      "max-inflight = 256M\n"
	      "\n",
	      f);
}

/* [daemon] and its submission socket. */
static void example_daemon(FILE *f)
{
	fputs("[daemon]\n"
	      "# Delivery threads, and recipients each claims at once.\n"
	      "workers = 4\n"
	      "batch = 64\n"
	      "# On SIGTERM, how long in-flight sends may take to finish.\n"
	      "grace = 30s\n"
	      "# How often to look for due work when idle (submissions wake workers at once).\n"
	      "poll-interval = 1s\n"
	      "# Log here instead of stderr; reopened on SIGHUP.\n"
	      "# log-file = /var/log/missive.log\n"
	      "# This missived's name among several on one queue (docs/scale-out.md):\n"
	      "# in its leases, log lines, /metrics and audit events.  Default: HOST-PID.\n"
	      "# node = mail1\n"
	      "# Where 'missive sendmail' hands messages to missived (one group commit\n"
	      "# for many, no queue access needed); empty to disable.  Default: submit.sock\n"
	      "# in the queue's directory.  Without missived, sendmail writes the queue.\n"
	      "# socket = /var/lib/missive/submit.sock\n"
	      "# Who may submit through it: 0666 lets every local user (as sendmail(8)).\n"
	      "socket-mode = 0666\n",
	      f);
}

/* The rest of [daemon]: the socket's limits. */
static void example_socket(FILE *f)
{
	fputs("# Connections one local user may hold on the socket at once (root: any);\n"
	      "# more are closed at once and that sendmail writes the queue itself or\n"
	      "# exits 75 (try again later).\n"
	      "socket-max-per-uid = 8\n"
	      "# Request octets held in memory for all socket clients together; a\n"
	      "# request that would go over is answered 75 (try again later).\n"
	      "socket-max-inflight = 64M\n"
	      "# The whole request must arrive within this (sendmail sends at once).\n"
	      "socket-timeout = 2m\n"
	      "\n",
	      f);
}

/* [submission], [retry] and [suppression]. */
static void example_submission(FILE *f)
{
	fputs("[submission]\n"
	      "# The host part of a local user's default sender (user@myhostname) and\n"
	      "# the HOST of X-Authentication-Warning.  Default: the host name if it\n"
	      "# has a dot, else localhost.localdomain.\n"
	      "# myhostname = mail.example.com\n"
	      "# Local users who may set the envelope sender (-f) and From freely.\n"
	      "# Others may too, but -f from them adds X-Authentication-Warning, and\n"
	      "# without -f their envelope sender is user@myhostname, whatever From says.\n"
	      "trusted-users = root\n"
	      "# Recipients per message on every way in (sendmail arguments and -t,\n"
	      "# the socket, the HTTP API), counted as named; more is refused.\n"
	      "max-recipients = 1000\n"
	      "\n"
	      "[retry]\n"
	      "# After the n-th temporary failure, wait a random time in\n"
	      "# [0, min(cap, base * factor^(n-1))] (full jitter); give up at max-age.\n"
	      "base = 1m\n"
	      "factor = 2\n"
	      "cap = 1h\n"
	      "max-age = 5d\n"
	      "\n"
	      "[suppression]\n"
	      "# Put hard-bounced addresses on the suppression list.\n"
	      "hard-bounces = yes\n"
	      "\n",
	      f);
}

/* A route with every key. */
static void example_route(FILE *f)
{
	fputs("# Routes: where mail goes, chosen by the envelope sender's domain; [route\n"
	      "# default] takes the rest.  Keys are the long flags of 'missive send'.\n"
	      "[route default]\n"
	      "# sender-domains = example.com example.org   (other routes only)\n"
	      "server = smtp.example.com:587\n"
	      "tls = starttls\n"
	      "# ca-file = /etc/ssl/certs/my-ca.pem\n"
	      "# insecure = no\n"
	      "# client-cert = /etc/missive/client.pem\n"
	      "# client-key = /etc/missive/client.key\n"
	      "# helo = mail.example.com\n"
	      "# timeout = 60\n"
	      "# deadline = 600\n"
	      "# user = mailer@example.com\n"
	      "# password-file = /etc/missive/smtp-password\n"
	      "# password-env = SMTP_PASSWORD\n"
	      "# oauth-token-file = /etc/missive/token\n"
	      "# Or an OAuth2 token source missive renews itself (docs/oauth2.md):\n"
	      "# oauth2-provider = google\n"
	      "# oauth2-client-id = ID.apps.googleusercontent.com\n"
	      "# oauth2-client-secret-file = /etc/missive/oauth2-secret\n"
	      "# oauth2-refresh-token-file = /var/lib/missive/oauth2-refresh\n"
	      "# oauth2-service-account-file = /etc/missive/sa.json   (with oauth2-subject)\n"
	      "# auth = plain\n"
	      "# allow-plaintext-auth = no\n"
	      "# Messages are DKIM-signed at submission (repeat the three keys to dual-sign).\n"
	      "# dkim-key = /etc/missive/dkim.key\n"
	      "# dkim-selector = mail\n"
	      "# dkim-domain = example.com\n"
	      "# DSN requested for every message; the ENVID is the queue ID.\n"
	      "# dsn-notify = FAILURE,DELAY\n"
	      "# dsn-ret = HDRS\n"
	      "# VERP return path: {id} becomes the queue ID, e.g. bounces+{id}@example.com\n"
	      "# return-path = bounces+{id}@example.com\n"
	      "# Connection pool per route.\n"
	      "max-connections = 8\n"
	      "# max-idle = 8\n"
	      "idle-timeout = 60s\n"
	      "noop-after = 10s\n"
	      "max-messages = 1000\n"
	      "connection-max-age = 10m\n"
	      "# Outbound pace of this route (N/s, N/m, N/h or off): messages wait in\n"
	      "# the queue for a token, none is refused.\n"
	      "# rate = off\n"
	      "# burst = 1\n"
	      "# Circuit breaker: after breaker-failures temporary failures (421, 4xx,\n"
	      "# no connection) within breaker-window, the route pauses for\n"
	      "# breaker-cool-down, then one probe decides; 0 failures disables it.\n"
	      "breaker-failures = 10\n"
	      "breaker-window = 60s\n"
	      "breaker-cool-down = 60s\n",
	      f);
}

void app_config_example(FILE *f)
{
	example_queue_http(f);
	example_daemon(f);
	example_socket(f);
	example_submission(f);
	example_route(f);
	cfg_gateway_example(f);
	cfg_audit_example(f);
}
