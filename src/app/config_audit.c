/* [audit]: the audit trail's file, chain key, masking rules, rotation and
 * export (docs/audit.md). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_int.h"
#include "missive/audit.h"

void cfg_audit_defaults(app_config *c)
{
	c->audit_rotate_size = 100ull << 20;
	c->audit_rotate_daily = 1;
	c->audit_retention_ms = 180LL * 86400000;
	c->audit_fsync_ms = 1000;
}

/* "100M", "1G", "512k", "0" (off) into bytes. */
static int parse_bytes(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	if (*s < '0' || *s > '9')
		return -1;
	unsigned long long v = strtoull(s, &end, 10);
	unsigned shift = 0;
	if (!strcasecmp(end, "k"))
		shift = 10;
	else if (!strcasecmp(end, "m"))
		shift = 20;
	else if (!strcasecmp(end, "g"))
		shift = 30;
	else if (*end)
		return -1;
	if (errno || v > (1ull << 40) >> shift)
		return -1;
	*out = v << shift;
	return 0;
}

/* tcp://HOST:PORT or tls://HOST:PORT, with a port from 1 to 65535. */
static int syslog_url_ok(const char *v)
{
	if (strncmp(v, "tcp://", 6) && strncmp(v, "tls://", 6))
		return 0;
	const char *host = v + 6, *colon = strrchr(host, ':');
	if (!colon || colon == host || strchr(host, '/'))
		return 0;
	char *end;
	errno = 0;
	long port = strtol(colon + 1, &end, 10);
	return !errno && !*end && port >= 1 && port <= 65535 && colon[1] != '-' && colon[1] != '+';
}

/* Appends a kept copy of v to a list of strings. */
static int list_add(parse_ctx *p, const char ***list, size_t *n, const char *section,
                    const char *name, const char *v)
{
	const char *k = cfg_keep(p, v);
	const char **l = k ? msv_realloc((void *)*list, (*n + 1) * sizeof(*l)) : NULL;
	if (!l)
		return cfg_fail(p, MSV_E_NOMEM, section, name, "out of memory", NULL);
	l[(*n)++] = k;
	*list = l;
	return 1;
}

/* A mask rule is compiled here once, so a bad one is refused at load with
 * its line rather than at missived's first event. */
static int mask_rule(parse_ctx *p, const char *section, const char *name, const char *value)
{
	msv_masker *m = NULL;
	msv_error err;
	if (msv_masker_new(&m, NULL, &err))
		return cfg_fail(p, err.code, section, name, err.message, NULL);
	msv_result rc = msv_masker_add_rule(m, value, &err);
	msv_masker_free(m);
	if (rc)
		return cfg_fail(p, rc, section, name, err.message, NULL);
	return list_add(p, &p->c->audit_masks, &p->c->naudit_masks, section, name, value);
}

/* kafka.NAME = VALUE: a librdkafka property (security.protocol,
 * sasl.mechanism, ssl.ca.location, ...), checked by librdkafka when
 * missived starts. */
static int kafka_prop(parse_ctx *p, const char *section, const char *name, const char *value)
{
	const char *prop = name + 6;
	if (!*prop || strchr(prop, '='))
		return cfg_fail(p, MSV_E_CONFIG, section, name, "expected kafka.PROPERTY", NULL);
	size_t n = strlen(prop) + strlen(value) + 2;
	char *kv = msv_malloc(n);
	if (!kv)
		return cfg_fail(p, MSV_E_NOMEM, section, name, "out of memory", NULL);
	snprintf(kv, n, "%s=%s", prop, value);
	int ok = list_add(p, &p->c->audit_kafka_props, &p->c->naudit_kafka_props, section, name, kv);
	msv_free_secret(kv); /* sasl.password may be among them */
	return ok;
}

/* Keys that may be given more than once. */
int cfg_audit_repeatable(const char *section, const char *name)
{
	return !strcmp(section, "audit") && (!strcmp(name, "mask") || !strncmp(name, "kafka.", 6));
}

/* A value that may not be empty; what: "a path", ... for the error. */
static int some_value(parse_ctx *p, const char *section, const char *name, const char *value,
                      const char *what, const char **slot)
{
	if (!*value) {
		char why[64];
		snprintf(why, sizeof(why), "expected %s", what);
		return cfg_fail(p, MSV_E_CONFIG, section, name, why, NULL);
	}
	return (*slot = cfg_keep(p, value)) ? 1 : 0;
}

int cfg_audit_key(parse_ctx *p, const char *section, const char *name, const char *value)
{
	app_config *c = p->c;
	if (!strcmp(name, "mask"))
		return mask_rule(p, section, name, value);
	if (!strncmp(name, "kafka.", 6))
		return kafka_prop(p, section, name, value);
	if (!strcmp(name, "path")) {
		c->audit_path_set = 1;
		if (!strcmp(value, "off")) {
			c->audit_path = NULL;
			return 1;
		}
		return some_value(p, section, name, value, "a path", &c->audit_path);
	}
	if (!strcmp(name, "key-file"))
		return some_value(p, section, name, value, "a path", &c->audit_key_file);
	if (!strcmp(name, "pseudonym-keys"))
		return some_value(p, section, name, value, "a path", &c->audit_pseudonym_keys);
	if (!strcmp(name, "kafka-brokers"))
		return some_value(p, section, name, value, "HOST:PORT[,HOST:PORT...]",
		                  &c->audit_kafka_brokers);
	if (!strcmp(name, "kafka-topic"))
		return some_value(p, section, name, value, "a topic name", &c->audit_kafka_topic);
	if (!strcmp(name, "syslog-ca-file"))
		return some_value(p, section, name, value, "a path", &c->audit_syslog_ca_file);
	if (!strcmp(name, "syslog")) {
		if (!syslog_url_ok(value))
			return cfg_fail(p, MSV_E_CONFIG, section, name,
			                "expected tcp://HOST:PORT or tls://HOST:PORT, got", value);
		return (c->audit_syslog = cfg_keep(p, value)) ? 1 : 0;
	}
	if (!strcmp(name, "rotate-size")) {
		if (parse_bytes(value, &c->audit_rotate_size))
			return cfg_fail(p, MSV_E_CONFIG, section, name,
			                "expected a size (100M, 1G) or 0 for none, got", value);
		return 1;
	}
	if (!strcmp(name, "rotate-daily")) {
		if (cfg_parse_bool(value, &c->audit_rotate_daily))
			return cfg_fail(p, MSV_E_CONFIG, section, name, "expected yes or no, got", value);
		return 1;
	}
	int64_t *ms = !strcmp(name, "retention")        ? &c->audit_retention_ms
	              : !strcmp(name, "fsync-interval") ? &c->audit_fsync_ms
	                                                : NULL;
	if (ms) {
		if (app_parse_duration(value, ms))
			return cfg_fail(p, MSV_E_CONFIG, section, name, "expected a duration (180d, 1s), got",
			                value);
		return 1;
	}
	return cfg_fail(p, MSV_E_CONFIG, section, name, "unknown key", NULL);
}

/* The trail beside a queue file unless [audit] path says otherwise; its
 * pseudonym keys beside the trail. */
void cfg_audit_finish(parse_ctx *p)
{
	app_config *c = p->c;
	const char *q = c->queue_path;
	if (!c->audit_path_set && q && !strstr(q, "://")) {
		const char *slash = strrchr(q, '/');
		char buf[4096];
		int n = slash ? snprintf(buf, sizeof(buf), "%.*s/audit.jsonl", (int)(slash - q), q)
		              : snprintf(buf, sizeof(buf), "audit.jsonl");
		if (n > 0 && (size_t)n < sizeof(buf))
			c->audit_path = cfg_keep(p, buf);
	}
	if (c->audit_path && !c->audit_pseudonym_keys) {
		char buf[4096];
		int n = snprintf(buf, sizeof(buf), "%s.keys", c->audit_path);
		if (n > 0 && (size_t)n < sizeof(buf))
			c->audit_pseudonym_keys = cfg_keep(p, buf);
	}
	if (!c->audit_kafka_topic)
		c->audit_kafka_topic = cfg_keep(p, "missive-audit");
}

void cfg_audit_free(app_config *c)
{
	msv_free((void *)c->audit_masks);
	msv_free((void *)c->audit_kafka_props);
}

void cfg_audit_example(FILE *f)
{
	fputs("\n[audit]\n"
	      "# The audit trail (docs/audit.md): one JSON event per line, personal data\n"
	      "# masked, each line chained to the one before by its hash.  Default: audit.jsonl\n"
	      "# beside the queue file; off turns the trail off.\n"
	      "# path = /var/lib/missive/audit.jsonl\n"
	      "# HMAC-SHA-256 key for the chain (any bytes, 32 or more); without one the\n"
	      "# chain is plain SHA-256, which shows accidents but not a forger.\n"
	      "# key-file = /etc/missive/audit.key\n"
	      "# The keys of the address pseudonyms (missive audit forget); default PATH.keys.\n"
	      "# pseudonym-keys = /var/lib/missive/audit.jsonl.keys\n"
	      "# Extra masking rules, one per line: NAME REGEX KEEP-PREFIX KEEP-SUFFIX\n"
	      "# mask = order ORD-[0-9]{8} 4 2\n"
	      "rotate-size = 100M\n"
	      "rotate-daily = yes\n"
	      "# Rotated files older than this are deleted (an audit.expired event says so).\n"
	      "retention = 180d\n"
	      "# Events are written at once and fsynced at most this often (0: each one).\n"
	      "fsync-interval = 1s\n"
	      "# Export, at least once, from a cursor into the file:\n"
	      "# kafka-brokers = kafka1.example.com:9093,kafka2.example.com:9093\n"
	      "# kafka-topic = missive-audit\n"
	      "# kafka.security.protocol = SASL_SSL\n"
	      "# kafka.sasl.mechanism = SCRAM-SHA-512\n"
	      "# syslog = tls://siem.example.com:6514\n"
	      "# syslog-ca-file = /etc/ssl/certs/siem-ca.pem\n",
	      f);
}
