/* missive reputation ls|set: submitters' scores as missived keeps them in
 * the queue database, and an operator's override. */
#include <arpa/inet.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api_keys.h"
#include "cli.h"
#include "jsonout.h"
#include "missive/policy.h"
#include "queue_json.h"
#include "submit.h"

static void usage(FILE *f)
{
	fputs("usage: missive reputation ls [--json]\n"
	      "       missive reputation set IDENTITY SCORE\n"
	      "\n"
	      "Scores (0 to 100) of the submitters missived has seen, decayed to now with\n"
	      "[reputation] half-life; the tier is the floor of the score's tier.  set makes\n"
	      "IDENTITY's score SCORE, ends its rejection streak and closes its circuit;\n"
	      "a running missived applies it within a second.\n"
	      "IDENTITY is key:NAME, uid:NUMBER or ip:ADDRESS (IPv4 or IPv6).\n"
	      "  --config FILE  configuration (default $MISSIVE_CONFIG, else " APP_CONFIG_DEFAULT ")\n"
	      "  --json         machine-readable output\n"
	      "Exit codes: 0 ok, 64 usage, 65 bad identity or score, 78 configuration.\n",
	      f);
}

/* Scores are shown rounded down to two decimals, so that a shown score
 * never reaches a tier the real one has not. */
static double shown(double score)
{
	return floor(score * 100.0) / 100.0;
}

static const char *circuit_of(const msv_queue_reputation *x, int64_t now)
{
	/* Without the daemon's memory we cannot tell a probe in flight:
	 * a cool-down that ended is reported half-open until a delivery
	 * closes the circuit (and missived writes open_until 0). */
	if (x->open_until_ms == 0)
		return msv_circuit_name(MSV_CIRCUIT_CLOSED);
	return now < x->open_until_ms ? msv_circuit_name(MSV_CIRCUIT_OPEN)
	                               : msv_circuit_name(MSV_CIRCUIT_HALF_OPEN);
}

static double score_now(const msv_queue_reputation *x, const msv_reputation_policy *p,
                        int64_t now)
{
	msv_reputation r;
	memset(&r, 0, sizeof(r));
	r.score = x->score;
	r.stamp_ms = x->stamp_ms;
	return msv_reputation_score(&r, p, now);
}

static void print_text(const msv_queue_reputation *v, size_t n, const msv_reputation_policy *p,
                       int64_t now)
{
	if (!n) {
		puts("no reputations recorded");
		return;
	}
	int w = 8;
	for (size_t i = 0; i < n; i++)
		if ((int)strlen(v[i].identity) > w)
			w = (int)strlen(v[i].identity);
	printf("%-*s  %6s  %4s  %-9s  %-20s  %s\n", w, "IDENTITY", "SCORE", "TIER", "CIRCUIT",
	       "CHANGED", "WHY");
	for (size_t i = 0; i < n; i++) {
		double sc = score_now(&v[i], p, now);
		const msv_tier *t = msv_reputation_tier(p, sc);
		char tier[16] = "-", changed[32] = "-";
		if (t)
			snprintf(tier, sizeof(tier), "%g", t->floor);
		if (v[i].changed_ms > 0) {
			time_t tt = (time_t)(v[i].changed_ms / 1000);
			struct tm tm;
			gmtime_r(&tt, &tm);
			strftime(changed, sizeof(changed), "%Y-%m-%dT%H:%M:%SZ", &tm);
		}
		printf("%-*s  %6.2f  %4s  %-9s  %-20s  %s\n", w, v[i].identity, shown(sc), tier,
		       circuit_of(&v[i], now), changed, v[i].why ? v[i].why : "");
	}
}

static int do_ls(msv_queue *q, const msv_reputation_policy *p, int json)
{
	msv_queue_reputation *v = NULL;
	size_t n = 0;
	msv_error err;
	if (msv_queue_reputation_list(q, &v, &n, &err)) {
		cli_err("reputation: %s", err.message);
		return cli_exit_code(&err);
	}
	int64_t now = msv_wall_ms();
	if (!json) {
		print_text(v, n, p, now);
		msv_queue_reputations_free(v, n);
		return EX_OK;
	}
	cJSON *a = cJSON_CreateArray();
	for (size_t i = 0; i < n; i++) {
		cJSON *o = cJSON_CreateObject();
		double sc = score_now(&v[i], p, now);
		const msv_tier *t = msv_reputation_tier(p, sc);
		cJSON_AddStringToObject(o, "identity", v[i].identity);
		cJSON_AddNumberToObject(o, "score", shown(sc));
		if (t)
			cJSON_AddNumberToObject(o, "tier", t->floor);
		else
			cJSON_AddNullToObject(o, "tier");
		cJSON_AddStringToObject(o, "circuit", circuit_of(&v[i], now));
		app_json_time(o, "changed", v[i].changed_ms);
		cJSON_AddStringToObject(o, "why", v[i].why ? v[i].why : "");
		cJSON_AddItemToArray(a, o);
	}
	cli_json_print(a);
	msv_queue_reputations_free(v, n);
	return EX_OK;
}

/* The identity in the form missived writes it into out: key:NAME,
 * uid:DIGITS, ip:ADDRESS (as inet_ntop prints it, so "ip:::0001" finds
 * "ip:::1").  0, or -1 when it is none of them. */
static int identity_normalize(const char *id, char *out, size_t n)
{
	if (!strncmp(id, "key:", 4))
		return app_key_name_valid(id + 4) && snprintf(out, n, "%s", id) < (int)n ? 0 : -1;
	if (!strncmp(id, "uid:", 4)) {
		const char *d = id + 4;
		size_t len = strlen(d);
		/* uid_t is 32 bits: at most 10 digits, and no more than 4294967295. */
		if (len == 0 || len > 10 || strspn(d, "0123456789") != len ||
		    strtoull(d, NULL, 10) > 4294967295ULL)
			return -1;
		snprintf(out, n, "uid:%llu", strtoull(d, NULL, 10));
		return 0;
	}
	if (!strncmp(id, "ip:", 3)) {
		unsigned char addr[16];
		char text[INET6_ADDRSTRLEN];
		int v4 = inet_pton(AF_INET, id + 3, addr) == 1;
		if (!v4 && inet_pton(AF_INET6, id + 3, addr) != 1)
			return -1;
		if (!inet_ntop(v4 ? AF_INET : AF_INET6, addr, text, sizeof(text)))
			return -1;
		snprintf(out, n, "ip:%s", text);
		return 0;
	}
	return -1;
}

static int do_set(msv_queue *q, const char *identity, double score)
{
	msv_error err;
	if (msv_queue_reputation_override(q, identity, score, msv_wall_ms(), &err)) {
		cli_err("reputation: %s", err.message);
		return err.code == MSV_E_INVALID ? EX_DATAERR : cli_exit_code(&err);
	}
	printf("%s: score set to %g; a running missived applies it within a second\n", identity,
	       score);
	return EX_OK;
}

/* The arguments of set, checked; 0 or EX_DATAERR. */
static int set_args(const char *id_arg, const char *score_arg, char *identity, size_t n,
                    double *score)
{
	if (identity_normalize(id_arg, identity, n)) {
		cli_err("reputation: '%s' is not an identity (key:NAME, uid:NUMBER or ip:ADDRESS)",
		        id_arg);
		return EX_DATAERR;
	}
	/* Plain decimals only ("87", "87.5"): strtod alone would take "1e1",
	 * "0x10" and "inf". */
	size_t ip = strspn(score_arg, "0123456789"), fp = 0;
	if (score_arg[ip] == '.')
		fp = 1 + strspn(score_arg + ip + 1, "0123456789");
	char *end;
	*score = strtod(score_arg, &end);
	if (ip == 0 || fp == 1 || score_arg[ip + fp] || *end || !isfinite(*score) || *score < 0 ||
	    *score > 100) {
		cli_err("reputation: score '%s' is not a number from 0 to 100", score_arg);
		return EX_DATAERR;
	}
	return 0;
}

int cmd_reputation(int argc, char **argv)
{
	const char *cfgflag = NULL;
	int json = 0, rc = cli_config_json_flags(argc, argv, usage, &cfgflag, &json);
	if (rc >= 0)
		return rc;
	int nargs = argc - optind;
	const char *op = nargs ? argv[optind] : "";
	int ls = !strcmp(op, "ls"), set = !strcmp(op, "set");
	if (!(ls || set) || nargs != (ls ? 1 : 3)) {
		usage(stderr);
		return EX_USAGE;
	}
	if (set && json)
		return cli_usage("reputation", "'reputation set' has no --json output");
	char identity[400];
	double score = 0;
	if (set && (rc = set_args(argv[optind + 1], argv[optind + 2], identity, sizeof(identity),
	                          &score)))
		return rc;
	app_config cfg;
	msv_queue *q = NULL;
	rc = cli_config_load(&cfg, cfgflag);
	if (!rc)
		rc = cli_queue_open(&cfg, ls, &q);
	if (!rc)
		rc = ls ? do_ls(q, &cfg.reputation, json) : do_set(q, identity, score);
	if (!rc && set) {
		char s[32];
		snprintf(s, sizeof(s), "%g", score);
		msv_audit_field f[] = {MSV_AUDIT_S("identity", identity), MSV_AUDIT_S("score", s)};
		cli_audit(&cfg, "reputation.changed", NULL, f, 2);
	}
	msv_queue_close(q);
	app_config_free(&cfg);
	return rc;
}
