/* The gateway's state (src/daemon/gateway.c, issue 14) on a real queue in
 * a temp dir: a refusal takes no token from any bucket, memory stays
 * bounded (a full table drops what remembers nothing, else refuses),
 * outcomes move a score that a restart reads back, and an operator's
 * override is found without a write transaction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

/* A table of 8, and entries idle at once: the bound is reachable here. */
#define GW_MAX_ENTRIES 8
#define GW_IDLE_MS 0
#include "daemon/gateway.c"
#include "daemon/redis_limits.c"
#include "daemon/timing.c"
#include "submit.h"

/* What gateway.c needs of missived. */
void dlog(const char *fmt, ...)
{
	(void)fmt;
}

void vdlog(const char *fmt, va_list ap)
{
	(void)fmt;
	(void)ap;
}

/* The audit trail's events are tested end to end (test_audit_events.py). */
void daemon_audit_refused(daemon_ctx *d, const char *type, const char *submitter, const char *ip,
                          const char *reason, const char *scope, long long retry_after,
                          const char *why)
{
	(void)d, (void)type, (void)submitter, (void)ip, (void)reason, (void)scope;
	(void)retry_after, (void)why;
}

typedef struct fixture {
	char dir[64];
	app_config cfg;
	daemon_ctx d;
	gateway *g;
} fixture;

static const char LIMITS[] = "[limits]\nkey-rate = 1/h\nkey-burst = 5\nip-rate = 1/h\n"
                             "ip-burst = 1\n";

static void start(fixture *f, const char *extra)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/missive.conf", f->dir);
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fprintf(fp, "[queue]\npath = %s/queue.db\n[http]\ntrust-loopback = yes\n%s"
	            "[route default]\nserver = 127.0.0.1:9\ntls = none\n",
	        f->dir, extra);
	fclose(fp);
	msv_error err;
	assert_int_equal(app_config_load(&f->cfg, path, &err), MSV_OK);
	f->d.cfg = &f->cfg;
	assert_int_equal(app_queue_open(&f->cfg, 0, &f->d.q, &err), MSV_OK);
	assert_int_equal(gateway_start(&f->d, &f->g), 0);
}

static void stop(fixture *f)
{
	gateway_stop(f->g);
	msv_queue_close(f->d.q);
	app_config_free(&f->cfg);
	memset(&f->d, 0, sizeof(f->d));
}

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));
	strcpy(f->dir, "/tmp/msv-test-gateway-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	char cmd[160];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void add_key(fixture *f, const char *name, const char *secret)
{
	msv_queue_key k = {0};
	msv_error err;
	k.name = (char *)name;
	k.sender_domains = (char *)"";
	assert_int_equal(app_key_hash(secret, strlen(secret), k.hash, &err), MSV_OK);
	assert_int_equal(msv_queue_key_add(f->d.q, &k, &err), MSV_OK);
}

static double tokens(gateway *g, const char *id)
{
	pthread_mutex_lock(&g->mu);
	gw_entry *e = find(g, id);
	double t = e ? e->bucket.tokens : -2;
	pthread_mutex_unlock(&g->mu);
	return t;
}

/* The IP's bucket refuses: the key's bucket keeps the token it would
 * have given. */
static void refusal_takes_no_token(void **state)
{
	fixture *f = *state;
	start(f, LIMITS);
	add_key(f, "a", "secret-a");
	keys_refresh(f->g);
	gw_ident id;
	assert_int_equal(gateway_http_ident(f->g, "Bearer secret-a", "192.0.2.7", 0, &id), 0);
	assert_string_equal(id.id, "key:a");
	assert_int_equal(gateway_http_ident(f->g, "Bearer secret-b", "127.0.0.1", 1, &id), -1);
	assert_int_equal(gateway_http_ident(f->g, "Bearer secret-a", "192.0.2.7", 0, &id), 0);
	gw_refusal why;
	msv_error err;
	assert_int_equal(gateway_admit(f->g, &id, "s@example.org", "", &why, &err), MSV_OK);
	double before = tokens(f->g, "key:a");
	assert_true(before > 3.9 && before < 4.1);
	assert_int_equal(gateway_admit(f->g, &id, "s@example.org", "", &why, &err),
	                 MSV_E_RATE_LIMITED);
	assert_string_equal(why.scope, "ip");
	assert_true(why.retry_after > 3500);
	assert_true(tokens(f->g, "key:a") >= before);
	/* Without credentials only a loopback peer under trust-loopback. */
	assert_int_equal(gateway_http_ident(f->g, NULL, "127.0.0.1", 1, &id), 0);
	assert_string_equal(id.id, "ip:127.0.0.1");
	assert_int_equal(gateway_http_ident(f->g, NULL, "192.0.2.7", 0, &id), -1);
	stop(f);
}

/* Eight entries at most: busy ones are kept and a ninth identity waits;
 * ones that remember nothing make room. */
static void memory_is_bounded(void **state)
{
	fixture *f = *state;
	start(f, "[limits]\nip-rate = 10/s\nip-burst = 1\n");
	gw_ident id;
	gw_refusal why;
	msv_error err;
	char ip[32];
	for (int i = 0; i < GW_MAX_ENTRIES; i++) {
		snprintf(ip, sizeof(ip), "127.0.0.%d", i + 1);
		assert_int_equal(gateway_http_ident(f->g, NULL, ip, 1, &id), 0);
		assert_int_equal(gateway_admit(f->g, &id, "s@example.org", "", &why, &err), MSV_OK);
	}
	assert_int_equal(f->g->nentries, GW_MAX_ENTRIES);
	/* Their buckets are empty (burst 1, just taken): nothing to drop. */
	assert_int_equal(gateway_http_ident(f->g, NULL, "127.0.0.99", 1, &id), 0);
	assert_int_equal(gateway_admit(f->g, &id, "s@example.org", "", &why, &err),
	                 MSV_E_RATE_LIMITED);
	assert_int_equal(why.retry_after, 1);
	usleep(150000); /* 10/s: every bucket is full again */
	assert_int_equal(gateway_admit(f->g, &id, "s@example.org", "", &why, &err), MSV_OK);
	assert_true(f->g->nentries <= GW_MAX_ENTRIES);
	/* A score away from the start is never dropped. */
	gateway_outcome(f->g, "uid:1000", MSV_RCPT_BOUNCED);
	for (int i = 0; i < 3 * GW_MAX_ENTRIES; i++) {
		snprintf(ip, sizeof(ip), "127.0.1.%d", i + 1);
		usleep(120000); /* 10/s: the oldest buckets are full again */
		assert_int_equal(gateway_http_ident(f->g, NULL, ip, 1, &id), 0);
		assert_int_equal(gateway_admit(f->g, &id, "s@example.org", "", &why, &err), MSV_OK);
	}
	assert_non_null(find(f->g, "uid:1000"));
	assert_true(f->g->nentries <= GW_MAX_ENTRIES);
	stop(f);
}

/* Outcomes move the score; it is written, and read back at start. */
static void scores_survive_restart(void **state)
{
	fixture *f = *state;
	static const char rep[] = "[reputation]\ncool-down = 1s\n";
	start(f, rep);
	for (int i = 0; i < 10; i++)
		gateway_outcome(f->g, "key:bad", MSV_RCPT_BOUNCED);
	gateway_outcome(f->g, "key:bad", MSV_RCPT_SUPPRESSED); /* says nothing */
	gateway_outcome(f->g, "uid:7", MSV_RCPT_SENT);
	gateway_flush(f->g);
	msv_queue_reputation *r = NULL;
	size_t n = 0;
	msv_error err;
	assert_int_equal(msv_queue_reputation_list(f->d.q, &r, &n, &err), MSV_OK);
	assert_int_equal(n, 2);
	assert_string_equal(r[0].identity, "key:bad");
	assert_true(r[0].score < 51 && r[0].score > 49);
	assert_string_equal(r[0].why, "0 delivered, 10 rejected, 0 temporary");
	msv_queue_reputations_free(r, n);
	stop(f);
	start(f, rep);
	/* An identity that needs no key look-up, with key:bad's entry.  Its
	 * circuit opened on the way down (tier 60: any rejection); once the
	 * cool-down is over, the score itself refuses. */
	gw_ident id = {GW_IP, "key:bad", "", 0};
	gw_refusal why;
	usleep(1100 * 1000);
	pthread_mutex_lock(&f->g->mu);
	gw_entry *e = find(f->g, "key:bad");
	assert_non_null(e);
	assert_true(msv_reputation_score(&e->rep, &f->cfg.reputation, msv_wall_ms()) < 51);
	pthread_mutex_unlock(&f->g->mu);
	assert_int_equal(gateway_admit(f->g, &id, "s@example.org", "", &why, &err),
	                 MSV_E_REPUTATION);
	assert_true(why.score < 51);
	/* An operator's override, taken and applied. */
	assert_int_equal(msv_queue_reputation_override(f->d.q, "key:bad", 95, msv_wall_ms(), &err),
	                 MSV_OK);
	overrides_take(f->g);
	assert_int_equal(gateway_admit(f->g, &id, "s@example.org", "", &why, &err), MSV_OK);
	/* Taken: nothing pending any more. */
	msv_queue_reputation *left = NULL;
	size_t nleft = 0;
	assert_int_equal(msv_queue_reputation_take_overrides(f->d.q, &left, &nleft, &err), MSV_OK);
	assert_int_equal(nleft, 0);
	msv_queue_reputations_free(left, nleft);
	stop(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(refusal_takes_no_token, setup, teardown),
	    cmocka_unit_test_setup_teardown(memory_is_bounded, setup, teardown),
	    cmocka_unit_test_setup_teardown(scores_survive_restart, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
