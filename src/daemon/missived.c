/* missived: the delivery daemon.  Foreground, logs to stderr (or a log
 * file reopened on SIGHUP); SIGTERM/SIGINT drain: stop claiming, let
 * in-flight sends finish within the grace period, release leases, exit 0. */
#include <curl/curl.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <microhttpd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "audit_export.h"
#include "audit_trail.h"
#include "daemon.h"
#include "exit_code.h"
#include "gateway.h"
#include "recorder.h"
#include "secret_file.h"
#include "shaping.h"
#include "submit.h"

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
/* The audit trail's masker, applied to every log line as well: SMTP
 * traces and server replies quote addresses.  Set before the threads
 * start, cleared after they stop. */
static const msv_masker *log_masker;
/* [daemon] node when set: "missived[NODE]:" on every line, so that the
 * logs of several nodes can be merged.  Set before the threads start. */
static const char *log_node;

void dlog(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vdlog(fmt, ap);
	va_end(ap);
}

void daemon_err(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("missived: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

void vdlog(const char *fmt, va_list ap)
{
	char ts[40];
	struct timespec now;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	size_t n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + n, sizeof(ts) - n, ".%03ldZ", now.tv_nsec / 1000000);
	char line[8192];
	vsnprintf(line, sizeof(line), fmt, ap);
	msv_buf masked;
	msv_buf_init(&masked, 4 * sizeof(line));
	const msv_masker *m = __atomic_load_n(&log_masker, __ATOMIC_ACQUIRE);
	/* Masking cannot fail but for memory: then the line is left out
	 * rather than written unmasked. */
	const char *out = line;
	if (m)
		out = msv_mask(m, line, strlen(line), &masked) ? "(a log line left out: out of memory)"
		                                                : masked.data;
	pthread_mutex_lock(&log_mu);
	if (log_node)
		fprintf(stderr, "%s missived[%s]: %s\n", ts, log_node, out);
	else
		fprintf(stderr, "%s missived: %s\n", ts, out);
	fflush(stderr);
	pthread_mutex_unlock(&log_mu);
	msv_buf_free(&masked);
}

/* Points stderr at the log file: 0, or -1 with why set and stderr as it
 * was.  O_NOFOLLOW: the log's directory may be writable by others (a
 * shared /var/log/app), and a symlink planted there must not make
 * missived append to, or create, a file of the attacker's choice with its
 * privileges.  New files get 0640 whatever the umask allows beyond it. */
static int reopen_log(const char *path, char *why, size_t whysz)
{
	if (!path)
		return 0;
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, 0640);
	struct stat st;
	if (fd < 0) {
		snprintf(why, whysz, "[daemon] log-file %s: %s", path,
		         errno == ELOOP ? "is a symbolic link; give the real path" : strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		snprintf(why, whysz, "[daemon] log-file %s is not a regular file", path);
		close(fd);
		return -1;
	}
	fflush(stderr);
	pthread_mutex_lock(&log_mu);
	int rc = dup2(fd, STDERR_FILENO);
	pthread_mutex_unlock(&log_mu);
	if (rc < 0)
		snprintf(why, whysz, "[daemon] log-file %s: %s", path, strerror(errno));
	close(fd);
	return rc < 0 ? -1 : 0;
}

/* Each HTTP connection is a descriptor: the soft limit (often 1024) goes
 * up to the hard one, so max-connections is not cut short by a default. */
static void raise_nofile(void)
{
	struct rlimit rl;
	if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* Opens the queue, checking its pages (PRAGMA quick_check): a damaged
 * file must stop the start, not make every claim fail later. */
static int open_queue(daemon_ctx *d)
{
	msv_queue_options o = MSV_QUEUE_OPTIONS_INIT;
	o.path = d->cfg->queue_url ? NULL : d->cfg->queue_path;
	o.url = d->cfg->queue_url; /* PostgreSQL: a newer schema is 78 (config) */
	o.verify = 1;
	msv_error err;
	if (!msv_queue_open(&d->q, &o, &err))
		return 0;
	daemon_err("%s", err.message); /* the queue layer names the file */
	if (err.code == MSV_E_IO)
		return EX_IOERR; /* damaged pages, not a network error: 74 */
	if (err.cls == MSV_CLASS_LOCAL) /* as app_queue_open(): 73 */
		err.code = MSV_E_CANT_CREATE;
	return app_exit_code(&err);
}

static void usage(FILE *f)
{
	fputs("usage: missived [--config FILE] [--example-config] [--check]\n"
	      "\n"
	      "The missive delivery daemon: delivers what 'missive sendmail' and the HTTP API\n"
	      "queue, retries temporary failures with backoff, parks permanent ones in the\n"
	      "dead-letter queue.  Stays in the foreground and logs to stderr.\n"
	      "\n"
	      "  --config FILE     configuration (default $MISSIVE_CONFIG, else " APP_CONFIG_DEFAULT ")\n"
	      "  --example-config  print a commented configuration with every key and exit\n"
	      "  --check           load the configuration, keys and queue, then exit\n"
	      "  -h, --help        this text\n"
	      "  -V, --version     print the version\n"
	      "\n"
	      "Signals: SIGTERM or SIGINT drain and exit 0; SIGHUP reopens the log file and\n"
	      "starts a new audit trail file.\n"
	      "Exit codes: 0 stopped cleanly, 64 usage, 69 cannot listen (address in use),\n"
	      "73 queue or log not writable, 74 queue file damaged, 78 configuration error.\n"
	      "See missived(8).\n",
	      f);
}

/* The node's name: [daemon] node, else HOST-PID (unique among the nodes
 * on one queue as long as host names are).  Before the audit trail opens:
 * its events carry it. */
static void name_node(daemon_ctx *d)
{
	char host[256] = "localhost";
	gethostname(host, sizeof(host) - 1);
	if (d->cfg->node)
		snprintf(d->node_name, sizeof(d->node_name), "%s", d->cfg->node);
	else
		snprintf(d->node_name, sizeof(d->node_name), "%.60s-%ld", host, (long)getpid());
	d->node = d->node_name;
	log_node = d->cfg->node;
}

/* The queue as logs and --check show it: a PostgreSQL URI without its
 * user part (USER:PASSWORD@): a password has no place in a log, and
 * USER@HOST reads as an e-mail address to the log's PII checks. */
static const char *queue_shown(const app_config *c, char *buf, size_t n)
{
	const char *u = c->queue_url, *host = u ? strstr(u, "://") : NULL;
	if (!host)
		return c->queue_path;
	host += 3;
	const char *at = strchr(host, '@'), *slash = strchr(host, '/');
	if (at && (!slash || at < slash))
		snprintf(buf, n, "%.*s%s", (int)(host - u), u, at + 1);
	else
		snprintf(buf, n, "%s", u);
	return buf;
}

/* Leases of a missived on this host that no longer runs come back now
 * instead of at their expiry ("missived:HOST:PID" or, since nodes have
 * names, "missived:HOST:PID:NODE"). */
static void release_orphans(daemon_ctx *d, const char *host)
{
	char **owners = NULL;
	size_t n = 0;
	msv_error err;
	if (msv_queue_lease_owners(d->q, &owners, &n, &err)) {
		dlog("cannot list leases: %s", err.message);
		return;
	}
	size_t hl = strlen(host);
	for (size_t i = 0; i < n; i++) {
		const char *o = owners[i];
		if (strncmp(o, "missived:", 9) || strncmp(o + 9, host, hl) || o[9 + hl] != ':')
			continue;
		char *end;
		long pid = strtol(o + 10 + hl, &end, 10);
		if ((*end && *end != ':') || pid <= 0 || (pid != getpid() && !(kill((pid_t)pid, 0) && errno == ESRCH)))
			continue;
		size_t released = 0;
		if (!msv_queue_release(d->q, o, &released, &err))
			dlog("released %zu leases of %s, which is no longer running", released, o);
	}
	msv_queue_strings_free(owners, n);
}

static int load_token(daemon_ctx *d, char **token)
{
	*token = NULL;
	if (!d->cfg->http_token_file)
		return 0;
	msv_error err;
	if (app_read_secret_file(d->cfg->http_token_file, "[http] token-file", token, &err)) {
		daemon_err("%s: %s", d->cfg->path, err.message);
		return app_exit_code(&err);
	}
	d->http_token = *token;
	return 0;
}

/* trace = yes in a [route]: the SMTP dialogue into the log (the engine
 * masks credentials in what it traces). */
static void trace_log(void *payload, msv_trace_dir dir, const char *line, size_t len)
{
	(void)payload;
	static const char prefix[] = {'<', '>', '*'};
	dlog("%c %.*s", prefix[dir], (int)len, line);
}

/* The file and every route in it, checked as a whole before anything
 * starts: 0, or an EX_* code after printing one line naming the file, the
 * line and the key. */
static int load_config(app_config *cfg, const char *cfgflag)
{
	msv_error err;
	int rc = 0;
	if (app_config_load(cfg, app_config_path(cfgflag), &err)) {
		daemon_err("%s", err.message);
		return app_exit_code(&err);
	}
	for (size_t i = 0; !rc && i < cfg->nroutes; i++) {
		if (app_route_load_dkim(cfg->routes[i], cfg->path, &err) ||
		    app_route_load_conn(cfg->routes[i], cfg->path, &err)) {
			daemon_err("%s", err.message);
			rc = app_exit_code(&err);
		}
	}
	for (size_t i = 0; !rc && i < cfg->nroutes; i++) {
		app_route *r = cfg->routes[i];
		if (r->conn.trace)
			r->conn.co.smtp.trace = trace_log;
		if (r->dkim.warning[0])
			daemon_err("warning: [route %s] %s", r->name, r->dkim.warning);
		if (r->conn.co.insecure)
			daemon_err("warning: [route %s] insecure: TLS certificate verification is "
			           "disabled; the connection can be intercepted", r->name);
	}
	if (!rc && !app_route_for(cfg, "")) {
		daemon_err("%s: no [route default]: mail from senders of no listed domain would have "
		           "nowhere to go", cfg->path);
		rc = EX_CONFIG;
	}
	return rc;
}

/* The token, the HTTP settings, the log, the queue and one pool per
 * route: everything --check checks.  0 or an EX_* code after printing. */
static int prepare(daemon_ctx *d, char **token, int check)
{
	const app_config *cfg = d->cfg;
	int rc = load_token(d, token);
	msv_error err;
	if (!rc && *cfg->http_listen && http_check(cfg, *token != NULL, &err)) {
		daemon_err("%s", err.message);
		rc = app_exit_code(&err);
	}
	char why[600];
	if (!rc && !check && reopen_log(cfg->log_file, why, sizeof(why))) {
		daemon_err("%s", why);
		rc = EX_CANTCREAT;
	}
	if (!rc && audit_export_check(cfg, &err)) { /* kafka.* refused by librdkafka: 78 */
		daemon_err("%s", err.message);
		rc = app_exit_code(&err);
	}
	if (!rc)
		rc = open_queue(d);
	if (!rc && !check && !(rc = daemon_audit_open(d)) && d->audit)
		__atomic_store_n(&log_masker, d->audit->masker, __ATOMIC_RELEASE);
	if (!rc && !(d->pools = msv_calloc(cfg->nroutes, sizeof(*d->pools)))) {
		daemon_err("cannot set up the routes' connection pools: out of memory");
		rc = EX_OSERR;
	}
	for (size_t i = 0; !rc && i < cfg->nroutes; i++) {
		if (msv_pool_new(&d->pools[i], &cfg->routes[i]->pool, &err)) {
			daemon_err("route %s: %s", cfg->routes[i]->name, err.message);
			if (err.code != MSV_E_NOMEM) /* the route's settings, from the file */
				err.cls = MSV_CLASS_CONFIG;
			rc = app_exit_code(&err);
		}
	}
	return rc;
}

/* Signals are taken by the main thread alone, with sigtimedwait. */
static void take_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, set, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* A file-size limit must fail the queue write (reported, retried),
	 * not kill the daemon. */
	signal(SIGXFSZ, SIG_IGN);
}

/* What runs while missived serves. */
typedef struct services {
	http_server *http;
	submitsock *sock;
	pthread_t *th;    /* the workers */
	unsigned started; /* of them */
} services;

/* The shared state, then the HTTP API, the socket, the recorder and the
 * workers.  0, or an EX_* code with what was started stopped again. */
static int start(daemon_ctx *d, services *sv)
{
	const app_config *cfg = d->cfg;
	char host[256] = "localhost";
	gethostname(host, sizeof(host) - 1);
	snprintf(d->owner, sizeof(d->owner), "missived:%s:%ld:%s", host, (long)getpid(), d->node);
	metrics_init(&d->m);
	pthread_mutex_init(&d->mu, NULL);
	pthread_mutex_init(&d->health_mu, NULL);
	daemon_cond_init(&d->wake);
	daemon_cond_init(&d->exited);
	release_orphans(d, host);
	/* Shaping before the workers that ask it; freed by main(), after them. */
	if (!(d->shape = shaping_new(d))) {
		dlog("cannot set up outbound shaping: out of memory");
		return EX_OSERR;
	}
	shaping_publish_all(d);

	int rc = daemon_audit_start(d);
	if (rc)
		return rc;
	/* Keys and scores before the first request can arrive. */
	if (gateway_start(d, &d->gw))
		return EX_UNAVAILABLE;
	if (*cfg->http_listen && !(sv->http = http_start(d))) {
		gateway_stop(d->gw);
		d->gw = NULL;
		return EX_UNAVAILABLE;
	}
	msv_error err;
	if (submitsock_start(d, &sv->sock, &err)) {
		dlog("%s", err.message);
		http_stop(sv->http);
		gateway_stop(d->gw);
		d->gw = NULL;
		return app_exit_code(&err);
	}
	sv->th = msv_calloc(cfg->workers, sizeof(*sv->th));
	/* Outcomes are written by their own thread (recorder.c), started
	 * before the workers that feed it and stopped after them. */
	if (!sv->th || recorder_start(d, &d->rec)) {
		if (!sv->th)
			dlog("cannot start the workers: out of memory");
		msv_free(sv->th);
		http_stop(sv->http);
		submitsock_stop(sv->sock, 1);
		gateway_stop(d->gw);
		d->gw = NULL;
		return EX_OSERR;
	}
	for (unsigned i = 0; i < cfg->workers; i++) {
		if (pthread_create(&sv->th[i], NULL, worker_main, d))
			break;
		d->running++;
	}
	sv->started = d->running;
	/* Last: nothing above waits for it, and it only reads the trail. */
	if (audit_export_start(d, &d->ax, &err))
		dlog("audit export not started: %s (the trail keeps the events)", err.message);
	char qbuf[512];
	dlog("started: node %s, %u workers, queue %s, %s%s, %s%s", d->node, sv->started,
	     queue_shown(cfg, qbuf, sizeof(qbuf)),
	     sv->http ? "HTTP API on " : "no HTTP API", sv->http ? cfg->http_listen : "",
	     sv->sock ? "submission socket " : "no submission socket",
	     sv->sock ? cfg->socket_path : "");
	return 0;
}

/* Until SIGTERM or SIGINT: renews the leases at a third of their length
 * while sends run (a batch stuck on a slow server, whose timeouts run to
 * minutes, must not be taken over and sent again by another worker), and
 * reopens the log on SIGHUP. */
static void serve(daemon_ctx *d, const sigset_t *set)
{
	const app_config *cfg = d->cfg;
	int64_t renew_ms = cfg->lease_ms / 3;
	char why[600];
	for (;;) {
		struct timespec every = {(time_t)(renew_ms / 1000), (long)(renew_ms % 1000) * 1000000};
		int sig = sigtimedwait(set, NULL, &every);
		if (sig < 0) {
			msv_error err;
			if (errno == EAGAIN &&
			    msv_queue_renew(d->q, d->owner, msv_wall_ms() + cfg->lease_ms, NULL, &err))
				dlog("cannot renew leases: %s (they expire after [queue] lease)", err.message);
			continue;
		}
		if (sig == SIGHUP) {
			daemon_audit_rotate(d);
			/* On failure the old log stays open: keep running, say so there. */
			if (reopen_log(cfg->log_file, why, sizeof(why)))
				dlog("SIGHUP: cannot reopen the log: %s", why);
			else
				dlog("SIGHUP: log reopened");
			continue;
		}
		dlog("%s: draining (grace %lld ms)", sig == SIGTERM ? "SIGTERM" : "SIGINT",
		     (long long)cfg->grace_ms);
		return;
	}
}

/* Stops taking submissions first, then lets the workers finish within
 * the grace period. */
static void drain(daemon_ctx *d, services *sv)
{
	http_stop(sv->http);
	submitsock_stop(sv->sock, 1);
	struct timespec until;
	daemon_abstime(&until, d->cfg->grace_ms);
	pthread_mutex_lock(&d->mu);
	d->stopping = 1;
	pthread_cond_broadcast(&d->wake);
	while (d->running)
		if (pthread_cond_timedwait(&d->exited, &d->mu, &until) == ETIMEDOUT)
			break;
	unsigned left = d->running;
	pthread_mutex_unlock(&d->mu);
	if (!left)
		for (unsigned i = 0; i < sv->started; i++)
			pthread_join(sv->th[i], NULL);
	msv_free(sv->th);
	/* The workers' last outcomes go to disk before the leases are let go:
	 * what was sent must not be claimed and sent again. */
	recorder_stop(d->rec);
	/* After the recorder: the last outcomes' scores are written too.
	 * Workers still busy may yet record (synchronously): then the
	 * gateway stays, flushed, until _exit. */
	if (left) {
		gateway_flush(d->gw);
	} else {
		gateway_stop(d->gw);
		d->gw = NULL;
	}
	size_t released = 0;
	msv_error err;
	if (msv_queue_release(d->q, d->owner, &released, &err))
		dlog("cannot release leases: %s (they expire after [queue] lease)", err.message);
	if (left) {
		/* Sends still running past the grace period: their recipients'
		 * leases are released, so they will be tried again (at least once). */
		dlog("grace period over with %u workers busy; released %zu leases; exiting", left,
		     released);
		if (d->audit && msv_audit_sync(d->audit->log, &err))
			dlog("audit trail: %s", err.message);
		fflush(stderr);
		_exit(0);
	}
	dlog("stopped; released %zu leases", released);
	__atomic_store_n(&log_masker, NULL, __ATOMIC_RELEASE);
	daemon_audit_stop(d);
	/* After the trail's last event (audit.stopped): hands over what it
	 * can within 5 s, saves the cursors. */
	audit_export_stop(d->ax);
	d->ax = NULL;
}

/* From a checked configuration to a clean stop: 0 or an EX_* code. */
static int run(daemon_ctx *d)
{
	sigset_t set;
	take_signals(&set);
	raise_nofile();
	services sv = {NULL, NULL, NULL, 0};
	int rc = start(d, &sv);
	if (rc)
		return rc;
	serve(d, &set);
	drain(d, &sv);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"example-config", no_argument, NULL, 'e'},
		{"check", no_argument, NULL, 'k'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	const char *cfgflag = NULL;
	int check = 0, c;
	/* cJSON allocates through msv_malloc too, so that the torture tests
	 * (docs/internals/torture.md) fail its allocations as well. */
	cJSON_Hooks hooks = {msv_malloc, msv_free};
	cJSON_InitHooks(&hooks);
	/* The OAuth2 token sources' libcurl: set up once, before any
	 * thread (libmissive keeps no globals, missive/oauth2.h). */
	if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
		daemon_err("cannot initialize libcurl");
		return EX_SOFTWARE;
	}
	while ((c = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
		switch (c) {
		case 'c': cfgflag = optarg; break;
		case 'e': app_config_example(stdout); return EX_OK;
		case 'k': check = 1; break;
		case 'h': usage(stdout); return EX_OK;
		case 'V': printf("missived %s\n", MSV_VERSION); return EX_OK;
		default: usage(stderr); return EX_USAGE;
		}
	}
	if (optind < argc) {
		daemon_err("unexpected argument '%s': missived takes options only (see 'missived --help')",
		           argv[optind]);
		return EX_USAGE;
	}
	app_config cfg;
	daemon_ctx d;
	memset(&d, 0, sizeof(d));
	d.cfg = &cfg;
	char *token = NULL;
	int rc = load_config(&cfg, cfgflag);
	if (!rc)
		name_node(&d);
	if (!rc)
		rc = prepare(&d, &token, check);
	char qbuf[512];
	if (!rc && check)
		printf("%s: ok (%zu route%s, queue %s)\n", cfg.path, cfg.nroutes,
		       cfg.nroutes == 1 ? "" : "s", queue_shown(&cfg, qbuf, sizeof(qbuf)));
	else if (!rc)
		rc = run(&d);
	__atomic_store_n(&log_masker, NULL, __ATOMIC_RELEASE);
	daemon_audit_stop(&d);
	recorder_free(d.rec);
	shaping_free(d.shape);
	for (size_t i = 0; d.pools && i < cfg.nroutes; i++)
		msv_pool_free(d.pools[i]);
	msv_free(d.pools);
	if (d.q)
		msv_queue_close(d.q);
	msv_free_secret(token);
	app_config_free(&cfg);
	return rc;
}
