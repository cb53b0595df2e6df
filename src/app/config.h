/* The configuration file shared by missived and the missive subcommands
 * that touch the queue (sendmail, queue, bounce, suppression).  One INI
 * file; route keys are the long flag names of `missive send`, so nothing
 * has two names.  See docs/config.md. */
#ifndef MSV_APP_CONFIG_H
#define MSV_APP_CONFIG_H

#include <stdio.h>

#include "conn.h"
#include "dkim_keys.h"
#include "missive/policy.h"
#include "missive/pool.h"

#define APP_CONFIG_DEFAULT "/etc/missive/missive.conf"

/* A token bucket's settings: rate in messages per second, burst in
 * messages; rate 0: no limit ("off"), whatever burst says. */
typedef struct app_limit {
	double rate;
	unsigned burst;
} app_limit;

typedef struct app_route {
	char *name;         /* "default", or the NAME of [route NAME] */
	char **domains;     /* sender-domains: lowercase */
	size_t ndomains;
	app_conn conn;      /* server, tls, ca-file, user, password-file, ... */
	app_dkim dkim;      /* dkim-key, dkim-selector, dkim-domain */
	msv_pool_options pool; /* max-connections, max-idle, idle-timeout, max-messages */
	const char *dsn_notify, *dsn_ret; /* notify, ret */
	const char *return_path;          /* VERP envelope sender template, or NULL */
	app_limit shape;                  /* rate, burst: outbound pace of the route */
	msv_breaker_policy breaker;       /* breaker-failures, -window, -cool-down */
} app_route;

/* [destination DOMAIN]: outbound shaping for one recipient domain, on
 * every route. */
typedef struct app_destination {
	char *domain;              /* lowercase */
	app_limit shape;           /* rate, burst */
	unsigned max_connections;  /* sessions carrying its mail at once; 0: any */
	unsigned given;            /* the parser's: keys seen, one bit each */
} app_destination;

typedef struct app_config {
	char *path;
	/* [queue] */
	const char *queue_path;
	/* [queue] url: a PostgreSQL queue (docs/scale-out.md); queue_path
	 * then holds the same URI, for messages and default_socket(). */
	const char *queue_url;
	int64_t lease_ms;
	/* [http] */
	const char *http_listen; /* "" disables the API */
	const char *http_token_file; /* read by missived only */
	size_t http_max_body;
	unsigned http_max_conns;        /* max-connections: open at once, all clients */
	unsigned http_max_conns_per_ip; /* max-connections-per-ip */
	int64_t http_header_timeout_ms; /* header-timeout: request line and headers */
	int64_t http_idle_timeout_ms;   /* idle-timeout: a connection with no traffic */
	size_t http_max_inflight;       /* max-inflight: request bodies held at once */
	int http_trust_loopback;        /* trust-loopback: no key needed from 127/8, ::1 */
	/* [daemon] */
	unsigned workers, batch;
	int64_t grace_ms, poll_ms;
	const char *log_file;    /* NULL: stderr */
	const char *socket_path; /* submission socket; "": none */
	const char *node;        /* node: this missived's name among several; NULL: HOST-PID */
	unsigned socket_mode;
	unsigned socket_max_per_uid; /* socket-max-per-uid: connections of one uid at once */
	size_t socket_max_inflight;  /* socket-max-inflight: request octets held at once */
	int64_t socket_timeout_ms;   /* socket-timeout: a whole request must arrive within */
	/* [submission] */
	const char *myhostname;      /* as set, else the host's name (filled at load) */
	const char *trusted_users;   /* who may set the sender: login names, space/comma list */
	unsigned max_recipients;     /* max-recipients: per message, every way in */
	/* [retry] */
	msv_retry_policy retry;
	/* [route ...] */
	app_route **routes;
	size_t nroutes;
	/* [suppression] */
	int suppress_hard_bounces;
	/* [limits]: token buckets per submitter (config_gateway.c) */
	app_limit limit_key, limit_ip, limit_uid, limit_sender_domain;
	int limit_exempt_trusted;    /* exempt-trusted: root and trusted-users unlimited */
	const char *limit_redis_host; /* redis = redis://HOST:PORT[/DB]: shared buckets; NULL: none */
	unsigned limit_redis_port, limit_redis_db;
	unsigned limit_redis_nodes;  /* redis-fallback-nodes: Redis down, each bucket at rate/N */
	int64_t limit_redis_timeout_ms; /* redis-timeout: connect and each command */
	/* [reputation] */
	msv_reputation_policy reputation;
	/* [destination DOMAIN] */
	app_destination **dests;
	size_t ndests;
	/* [audit] (config_audit.c, docs/audit.md) */
	const char *audit_path;          /* path: the trail; NULL: off ("off") */
	int audit_path_set;              /* path given (off included) */
	const char *audit_key_file;      /* key-file: HMAC key; NULL: SHA-256 chain */
	const char *audit_pseudonym_keys; /* pseudonym-keys: default PATH.keys */
	const char **audit_masks;        /* mask = NAME REGEX KEEP-PREFIX KEEP-SUFFIX, each */
	size_t naudit_masks;
	uint64_t audit_rotate_size;      /* rotate-size: bytes; 0: none (default 100M) */
	int audit_rotate_daily;          /* rotate-daily (default yes) */
	int64_t audit_retention_ms;      /* retention (default 180d); 0: keep all */
	int64_t audit_fsync_ms;          /* fsync-interval (default 1s); 0: every event */
	const char *audit_kafka_brokers; /* kafka-brokers: NULL: no Kafka export */
	const char *audit_kafka_topic;   /* kafka-topic (default missive-audit) */
	const char **audit_kafka_props;  /* kafka.NAME = VALUE, as "NAME=VALUE", passed to librdkafka */
	size_t naudit_kafka_props;
	const char *audit_syslog;        /* syslog = tcp://HOST:PORT or tls://HOST:PORT; NULL: none */
	const char *audit_syslog_ca_file; /* syslog-ca-file: for tls:// (default: the system's) */
	char **strings;          /* every value kept, freed together */
	size_t nstrings;
} app_config;

/* The path to use: the --config flag, else $MISSIVE_CONFIG, else the default. */
const char *app_config_path(const char *flag);
/* Loads and checks the file.  MSV_OK, or the code of err (MSV_E_CONFIG,
 * or MSV_E_NOMEM), which names the file, line, section and key
 * ("FILE:LINE: [SECTION] KEY: WHY").  Prints nothing. */
msv_result app_config_load(app_config *c, const char *path, msv_error *err);
void app_config_free(app_config *c);
/* Writes a commented config with every key and its default. */
void app_config_example(FILE *f);

/* The route for an envelope sender: the route listing its domain, else
 * "default", else NULL. */
app_route *app_route_for(const app_config *c, const char *sender);
/* Loads the route's DKIM keys (idempotent; what submission needs).
 * MSV_OK, or the code of err (MSV_E_CONFIG, or MSV_E_NOMEM) naming the
 * file, the route's section and line, and the key. */
msv_result app_route_load_dkim(app_route *r, const char *cfgpath, msv_error *err);
/* Checks the route's connection keys, fills their defaults and reads its
 * password or token (idempotent; what delivery needs).  MSV_OK, or the
 * code of err as app_route_load_dkim. */
msv_result app_route_load_conn(app_route *r, const char *cfgpath, msv_error *err);

/* A DSN NOTIFY (ret = 0: NEVER, or a list of SUCCESS, FAILURE, DELAY) or
 * RET (ret = 1: FULL or HDRS) value, upper-cased into out (n bytes).
 * 0, or -1 when invalid or too long. */
int app_dsn_param(const char *value, int ret, char *out, size_t n);

/* 1 when the local user name (NULL: none) with uid may set the envelope
 * sender and From freely: root, or a name in [submission] trusted-users. */
int app_user_trusted(const app_config *c, long uid, const char *name);

/* The [destination] section for a recipient domain (case-insensitive),
 * or NULL. */
const app_destination *app_destination_for(const app_config *c, const char *domain);

/* Durations as in the file: "30", "30s", "500ms", "5m", "2h", "7d". */
int app_parse_duration(const char *s, int64_t *ms);

#endif
