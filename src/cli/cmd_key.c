/* missive key add|ls|rm|rotate: the HTTP API's keys, kept in the queue
 * database (only the SHA-256 of a secret is stored; a secret is shown
 * once, when it is made). */
#include <getopt.h>
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

/* A burst above this is no limit at all; below 1 admits nothing. */
#define KEY_BURST_MAX 100000

static void usage(FILE *f)
{
	fputs("usage: missive key add NAME [--sender-domains D,...] [--rate R] [--burst N] [--json]\n"
	      "       missive key ls [--json]\n"
	      "       missive key rm NAME\n"
	      "       missive key rotate NAME [--json]\n"
	      "\n"
	      "API keys for missived's HTTP API (Authorization: Bearer SECRET).  add and rotate\n"
	      "print the new secret once: only its SHA-256 is kept.  NAME is 1 to 64 of\n"
	      "A-Z a-z 0-9 . _ -.\n"
	      "  --sender-domains D,...  the key may send only as these domains (default: any)\n"
	      "  --rate R       the key's rate, N/s, N/m or N/h (default: [limits] key-rate)\n"
	      "  --burst N      the key's burst, 1 to 100000 (default: [limits] key-burst)\n"
	      "  --config FILE  configuration (default $MISSIVE_CONFIG, else " APP_CONFIG_DEFAULT ")\n"
	      "  --json         machine-readable output\n"
	      "Exit codes: 0 ok, 64 usage, 65 bad name, rate, burst or domain, or the key\n"
	      "exists, 67 no such key, 78 configuration.\n",
	      f);
}

typedef struct key_args {
	const char *cfgflag, *domains, *rate, *burst;
	int json;
} key_args;

/* "a.org,b.net" as ["a.org", "b.net"]; "" as []. */
static cJSON *domains_json(const char *list)
{
	cJSON *a = cJSON_CreateArray();
	for (const char *p = list; a && p && *p;) {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		char one[256];
		snprintf(one, sizeof(one), "%.*s", (int)(n < sizeof(one) ? n : sizeof(one) - 1), p);
		cJSON_AddItemToArray(a, cJSON_CreateString(one));
		p = end ? end + 1 : p + n;
	}
	return a;
}

static void add_rate_burst(cJSON *o, const msv_queue_key *k)
{
	char rate[32];
	if (k->rate > 0) {
		msv_rate_format(k->rate, rate, sizeof(rate));
		cJSON_AddStringToObject(o, "rate", rate);
	} else {
		cJSON_AddNullToObject(o, "rate");
	}
	if (k->burst)
		cJSON_AddNumberToObject(o, "burst", k->burst);
	else
		cJSON_AddNullToObject(o, "burst");
}

/* add and rotate: the secret alone on stdout (scripts read it), the note
 * that it is not kept on stderr; or one JSON object. */
static void print_secret(const msv_queue_key *k, const char *secret, int json)
{
	if (json) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "name", k->name);
		cJSON_AddStringToObject(o, "secret", secret);
		cJSON_AddItemToObject(o, "sender_domains", domains_json(k->sender_domains));
		add_rate_burst(o, k);
		char *s = cJSON_Print(o);
		if (s) {
			puts(s);
			msv_wipe(s, strlen(s));
		}
		cJSON_free(s);
		cJSON_Delete(o); /* cJSON's copy of the secret goes unwiped: short-lived */
	} else {
		puts(secret);
	}
	fflush(stdout);
	fprintf(stderr, "missive: key %s: this secret is shown only now; missive keeps only its "
	                "hash\n", k->name);
}

static void time_text(int64_t ms, char *out, size_t n)
{
	if (ms <= 0) {
		snprintf(out, n, "-");
		return;
	}
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int do_ls(msv_queue *q, int json)
{
	msv_queue_key *k = NULL;
	size_t n = 0;
	msv_error err;
	if (msv_queue_key_list(q, &k, &n, &err)) {
		cli_err("key: %s", err.message);
		return cli_exit_code(&err);
	}
	if (json) {
		cJSON *a = cJSON_CreateArray();
		for (size_t i = 0; i < n; i++) {
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "name", k[i].name);
			cJSON_AddItemToObject(o, "sender_domains", domains_json(k[i].sender_domains));
			add_rate_burst(o, &k[i]);
			app_json_time(o, "created", k[i].created_ms);
			app_json_time(o, "rotated", k[i].rotated_ms);
			cJSON_AddItemToArray(a, o);
		}
		cli_json_print(a);
	} else if (n) {
		int w = 4;
		for (size_t i = 0; i < n; i++)
			if ((int)strlen(k[i].name) > w)
				w = (int)strlen(k[i].name);
		printf("%-*s  %-8s  %-7s  %-20s  %-20s  %s\n", w, "NAME", "RATE", "BURST", "CREATED",
		       "ROTATED", "SENDER-DOMAINS");
		for (size_t i = 0; i < n; i++) {
			char rate[32] = "default", burst[16] = "default", created[32], rotated[32];
			if (k[i].rate > 0)
				msv_rate_format(k[i].rate, rate, sizeof(rate));
			if (k[i].burst)
				snprintf(burst, sizeof(burst), "%u", k[i].burst);
			time_text(k[i].created_ms, created, sizeof(created));
			time_text(k[i].rotated_ms, rotated, sizeof(rotated));
			printf("%-*s  %-8s  %-7s  %-20s  %-20s  %s\n", w, k[i].name, rate, burst, created,
			       rotated, *k[i].sender_domains ? k[i].sender_domains : "any");
		}
	} else {
		puts("no keys");
	}
	msv_queue_keys_free(k, n);
	return EX_OK;
}

/* Checks add's values into k (domains allocated); 0 or EX_DATAERR. */
static int add_values(const key_args *a, msv_queue_key *k)
{
	msv_error err;
	if (app_key_domains_normalize(a->domains, &k->sender_domains, &err)) {
		cli_err("key: %s", err.message);
		return EX_DATAERR;
	}
	if (a->rate && (msv_rate_parse(a->rate, &k->rate) || !(k->rate > 0))) {
		cli_err("key: --rate '%s' is not a rate (N/s, N/m or N/h, N > 0)", a->rate);
		return EX_DATAERR;
	}
	if (a->burst) {
		char *end;
		unsigned long b = strtoul(a->burst, &end, 10);
		if (!*a->burst || *end || a->burst[0] == '-' || b < 1 || b > KEY_BURST_MAX) {
			cli_err("key: --burst '%s' is not a number from 1 to %d", a->burst,
			        KEY_BURST_MAX);
			return EX_DATAERR;
		}
		k->burst = (unsigned)b;
	}
	return 0;
}

/* k: checked by add_values(). */
static int do_add(msv_queue *q, msv_queue_key *k, int json)
{
	char secret[APP_KEY_SECRET_LEN + 1];
	msv_error err;
	int rc = EX_OK;
	k->created_ms = msv_wall_ms();
	if (app_key_new(secret, k->hash, &err)) {
		cli_err("key: %s", err.message);
		return cli_exit_code(&err);
	}
	if (msv_queue_key_add(q, k, &err)) {
		if (err.code == MSV_E_INVALID) {
			cli_err("key: %s (use 'missive key rotate %s' for a new secret)", err.message,
			        k->name);
			rc = EX_DATAERR;
		} else {
			cli_err("key: %s", err.message);
			rc = cli_exit_code(&err);
		}
	} else {
		print_secret(k, secret, json);
	}
	msv_wipe(secret, sizeof(secret));
	return rc;
}

static int do_rotate(msv_queue *q, const char *name, int json)
{
	char secret[APP_KEY_SECRET_LEN + 1];
	unsigned char hash[APP_KEY_HASH_LEN];
	msv_error err;
	int found = 0, rc = EX_OK;
	if (app_key_new(secret, hash, &err) ||
	    msv_queue_key_rotate(q, name, hash, msv_wall_ms(), &found, &err)) {
		cli_err("key: %s", err.message);
		rc = cli_exit_code(&err);
	} else if (!found) {
		cli_err("key: no key %s (see 'missive key ls')", name);
		rc = EX_NOUSER;
	} else {
		/* The key's other settings, for the same output as add's. */
		msv_queue_key *k = NULL, *mine = NULL;
		size_t n = 0;
		if (msv_queue_key_list(q, &k, &n, &err) == MSV_OK)
			for (size_t i = 0; i < n && !mine; i++)
				if (!strcmp(k[i].name, name))
					mine = &k[i];
		msv_queue_key fallback = {.name = (char *)name, .sender_domains = (char *)""};
		print_secret(mine ? mine : &fallback, secret, json);
		msv_queue_keys_free(k, n);
	}
	msv_wipe(secret, sizeof(secret));
	return rc;
}

static int do_rm(msv_queue *q, const char *name)
{
	msv_error err;
	int removed = 0;
	if (msv_queue_key_rm(q, name, &removed, &err)) {
		cli_err("key: %s", err.message);
		return cli_exit_code(&err);
	}
	if (!removed) {
		cli_err("key: no key %s (see 'missive key ls')", name);
		return EX_NOUSER;
	}
	return EX_OK;
}

/* key.created, key.rotated, key.revoked: the name and settings, never
 * the secret or its hash. */
static void audit_key(const app_config *cfg, const char *type, const msv_queue_key *k)
{
	char rate[32] = "default";
	if (k->rate > 0)
		msv_rate_format(k->rate, rate, sizeof(rate));
	msv_audit_field f[] = {
		MSV_AUDIT_S("name", k->name),
		MSV_AUDIT_S("sender_domains", k->sender_domains ? k->sender_domains : ""),
		MSV_AUDIT_S("rate", rate),
		MSV_AUDIT_I("burst", (long long)k->burst),
	};
	cli_audit(cfg, type, NULL, f, strcmp(type, "key.created") ? 1 : 4);
}

/* Options into a; 0, or an EX_* code (help printed: -1 for EX_OK). */
static int parse_opts(int argc, char **argv, key_args *a)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"json", no_argument, NULL, 'j'},
		{"sender-domains", required_argument, NULL, 'd'},
		{"rate", required_argument, NULL, 'r'},
		{"burst", required_argument, NULL, 'b'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;
	memset(a, 0, sizeof(*a));
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': a->cfgflag = optarg; break;
		case 'j': a->json = 1; break;
		case 'd': a->domains = optarg; break;
		case 'r': a->rate = optarg; break;
		case 'b': a->burst = optarg; break;
		case 'h': usage(stdout); return -1;
		default: usage(stderr); return EX_USAGE;
		}
	}
	return 0;
}

int cmd_key(int argc, char **argv)
{
	key_args a;
	int rc = parse_opts(argc, argv, &a);
	if (rc)
		return rc < 0 ? EX_OK : rc;
	int nargs = argc - optind;
	const char *op = nargs ? argv[optind] : "";
	int ls = !strcmp(op, "ls"), add = !strcmp(op, "add"), rm = !strcmp(op, "rm"),
	    rotate = !strcmp(op, "rotate");
	if (!(ls || add || rm || rotate) || nargs != (ls ? 1 : 2)) {
		usage(stderr);
		return EX_USAGE;
	}
	if (!add && (a.domains || a.rate || a.burst))
		return cli_usage("key", "--sender-domains, --rate and --burst go with 'key add'");
	if (rm && a.json)
		return cli_usage("key", "'key rm' has no --json output");
	const char *name = ls ? NULL : argv[optind + 1];
	if (name && !app_key_name_valid(name)) {
		cli_err("key: '%s' is not a key name (1 to %d of A-Z a-z 0-9 . _ -)", name,
		        MSV_KEY_NAME_MAX);
		return EX_DATAERR;
	}
	/* Bad values fail before the queue is touched. */
	msv_queue_key k = {.name = (char *)name};
	if (add && (rc = add_values(&a, &k))) {
		msv_free(k.sender_domains);
		return rc;
	}
	app_config cfg;
	msv_queue *q = NULL;
	rc = cli_config_load(&cfg, a.cfgflag);
	if (!rc)
		rc = cli_queue_open(&cfg, ls, &q);
	if (!rc) {
		if (ls)
			rc = do_ls(q, a.json);
		else if (add)
			rc = do_add(q, &k, a.json);
		else if (rotate)
			rc = do_rotate(q, name, a.json);
		else
			rc = do_rm(q, name);
		if (!rc && !ls)
			audit_key(&cfg, add ? "key.created" : rotate ? "key.rotated" : "key.revoked", &k);
	}
	msv_free(k.sender_domains);
	msv_queue_close(q);
	app_config_free(&cfg);
	return rc;
}
