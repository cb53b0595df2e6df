/* missive audit verify|status|forget: checks the audit trail's chain,
 * shows its files and the export cursors' lag (docs/audit.md). */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "cli.h"
#include "jsonout.h"
#include "secret_file.h"

static void usage(FILE *f)
{
	fputs("usage: missive audit verify [--config FILE] [--key-file FILE] [--json] [FILE...]\n"
	      "       missive audit status [--config FILE] [--json]\n"
	      "       missive audit forget [--config FILE] [--json] ADDRESS\n"
	      "\n"
	      "verify checks the hash chain of the trail: FILE... in order, or the configured\n"
	      "[audit] path and its rotations, oldest first.  It reports the first line that\n"
	      "was edited, deleted, reordered or truncated as FILE:LINE: why.\n"
	      "status shows the trail's files, events, last sequence number and, per export\n"
	      "sink (kafka, syslog), the cursor and its lag.\n"
	      "forget makes every pseudonym of ADDRESS in the trail unlinkable.\n"
	      "  --config FILE    configuration (default $MISSIVE_CONFIG, else " APP_CONFIG_DEFAULT ")\n"
	      "  --key-file FILE  the chain's HMAC key (default: [audit] key-file)\n"
	      "  --json           machine-readable output\n"
	      "Exit codes: 0 intact (verify) or ok, 1 chain broken, 64 usage, 66 a file\n"
	      "cannot be read, 78 configuration.\n",
	      f);
}

typedef struct audit_args {
	const char *cfgflag;
	const char *key_file;
	int json;
} audit_args;

/* Flags; -1 to go on with optind at the subcommand's first argument. */
static int parse_flags(int argc, char **argv, audit_args *a)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"key-file", required_argument, NULL, 'k'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': a->cfgflag = optarg; break;
		case 'k': a->key_file = optarg; break;
		case 'j': a->json = 1; break;
		case 'h': usage(stdout); return EX_OK;
		default: usage(stderr); return EX_USAGE;
		}
	}
	return -1;
}

/* The HMAC key: --key-file, else the configuration's [audit] key-file
 * (app_audit_hmac_key: secret-file rules); NULL for a SHA-256 chain. */
static int load_key(const audit_args *a, const app_config *cfg, char **key, size_t *len)
{
	msv_error err;
	app_config only;
	if (a->key_file) {
		memset(&only, 0, sizeof(only));
		only.audit_key_file = a->key_file;
		cfg = &only;
	}
	if (cfg && app_audit_hmac_key(cfg, key, len, &err)) {
		cli_err("audit: %s", err.message);
		return cli_exit_code(&err);
	}
	return 0;
}

static void print_verdict(const msv_audit_verdict *v, int json)
{
	if (!json) {
		if (v->intact)
			printf("%lu events, chain intact\n", v->events);
		else
			printf("%s:%lu: %s\n", v->file, v->line, v->why);
		return;
	}
	cJSON *o = cJSON_CreateObject();
	cJSON_AddBoolToObject(o, "intact", v->intact);
	cJSON_AddNumberToObject(o, "events", (double)v->events);
	if (v->intact) {
		cJSON_AddNullToObject(o, "file");
		cJSON_AddNullToObject(o, "line");
		cJSON_AddNullToObject(o, "why");
	} else {
		cJSON_AddStringToObject(o, "file", v->file);
		cJSON_AddNumberToObject(o, "line", (double)v->line);
		cJSON_AddStringToObject(o, "why", v->why);
	}
	cli_json_print(o);
}

/* Whether a configuration is there to be read without being asked for:
 * FILE arguments alone must work on a machine without one. */
static int config_present(const audit_args *a)
{
	return a->cfgflag || getenv("MISSIVE_CONFIG") || access(APP_CONFIG_DEFAULT, R_OK) == 0;
}

/* The configured trail's files; 0 or an EX_* code after printing why. */
static int configured_files(const app_config *cfg, char ***files)
{
	msv_error err;
	if (!cfg->audit_path) {
		cli_err("audit: the audit trail is off ([audit] path)");
		return EX_CONFIG;
	}
	if (msv_audit_files(cfg->audit_path, files, &err)) {
		cli_err("audit: %s", err.message);
		return cli_exit_code(&err);
	}
	if (!(*files)[0]) {
		cli_err("audit: %s: no audit trail there", cfg->audit_path);
		msv_audit_files_free(*files);
		*files = NULL;
		return EX_NOINPUT;
	}
	return 0;
}

static int same_list(char **a, char **b)
{
	size_t i = 0;
	for (; a[i] && b[i]; i++)
		if (strcmp(a[i], b[i]))
			return 0;
	return !a[i] && !b[i];
}

static int do_verify(const audit_args *a, int nargs, char **args)
{
	app_config cfg;
	int have_cfg = 0, rc = 0;
	if (!nargs || (!a->key_file && config_present(a))) {
		if ((rc = cli_config_load(&cfg, a->cfgflag)))
			return rc;
		have_cfg = 1;
	}
	char **found = NULL, *key = NULL;
	size_t keylen = 0, n = (size_t)nargs;
	const char *const *files = (const char *const *)args;
	if (!nargs && !(rc = configured_files(&cfg, &found))) {
		files = (const char *const *)found;
		for (n = 0; found[n]; n++)
			;
	}
	if (!rc)
		rc = load_key(a, have_cfg ? &cfg : NULL, &key, &keylen);
	msv_audit_verdict v;
	msv_error err;
	/* A live trail may rotate between the listing and the reading (PATH
	 * is then a newer file), or end in a line being written: a verdict
	 * that broke in PATH, or after the files changed, is checked again.
	 * Tampering stays broken once the files stand still. */
	for (int tries = 0, same = 0; !rc; tries++) {
		if (msv_audit_verify(files, n, (const unsigned char *)key, keylen, &v, &err)) {
			cli_err("audit verify: %s", err.message);
			rc = err.code == MSV_E_NO_INPUT ? EX_NOINPUT : cli_exit_code(&err);
			break;
		}
		if (v.intact || nargs || tries == 100)
			break;
		char **again = NULL;
		if ((rc = configured_files(&cfg, &again)))
			break;
		int changed = !same_list(found, again);
		msv_audit_files_free(found);
		found = again;
		files = (const char *const *)found;
		for (n = 0; found[n]; n++)
			;
		if (!changed && (strcmp(v.file, cfg.audit_path) || ++same > 2))
			break;
		if (!changed)
			usleep(200 * 1000);
	}
	if (!rc) {
		print_verdict(&v, a->json);
		rc = v.intact ? EX_OK : 1;
	}
	if (key)
		msv_free_secret(key);
	msv_audit_files_free(found);
	if (have_cfg)
		app_config_free(&cfg);
	return rc;
}

/* The first sequence number still on disk (0: none). */
static uint64_t first_seq(const char *path)
{
	msv_audit_reader *r;
	msv_audit_cursor pos;
	msv_error err;
	const char *line;
	size_t len;
	uint64_t seq = 0;
	if (msv_audit_reader_open(&r, path, NULL, &err))
		return 0;
	if (!msv_audit_reader_next(r, &line, &len, &pos, &err) && line)
		seq = pos.seq;
	msv_audit_reader_close(r);
	return seq;
}

typedef struct sink_state {
	const char *name;
	int configured;
	int have_cursor;
	msv_audit_cursor cur;
} sink_state;

static void print_status(const char *path, char **files, uint64_t first, uint64_t last,
                         const sink_state *s, size_t ns, int json)
{
	uint64_t events = last && first ? last - first + 1 : 0;
	if (!json) {
		size_t n = 0;
		while (files[n])
			n++;
		printf("trail:   %s (%zu file%s)\n", path, n, n == 1 ? "" : "s");
		for (size_t i = 0; i < n; i++)
			printf("  %s\n", files[i]);
		printf("events:  %" PRIu64 " on disk, seq %" PRIu64 " to %" PRIu64 "\n", events, first,
		       last);
		for (size_t i = 0; i < ns; i++) {
			if (!s[i].configured && !s[i].have_cursor)
				printf("sink %-7s not configured\n", s[i].name);
			else
				printf("sink %-7s cursor %" PRIu64 ", lag %" PRIu64 "%s\n", s[i].name,
				       s[i].cur.seq, last - (s[i].cur.seq < last ? s[i].cur.seq : last),
				       s[i].configured ? "" : " (not configured)");
		}
		return;
	}
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "path", path);
	cJSON *fa = cJSON_AddArrayToObject(o, "files");
	for (size_t i = 0; files[i]; i++)
		cJSON_AddItemToArray(fa, cJSON_CreateString(files[i]));
	cJSON_AddNumberToObject(o, "events", (double)events);
	cJSON_AddNumberToObject(o, "first_seq", (double)first);
	cJSON_AddNumberToObject(o, "last_seq", (double)last);
	cJSON *sa = cJSON_AddArrayToObject(o, "sinks");
	for (size_t i = 0; i < ns; i++) {
		cJSON *x = cJSON_CreateObject();
		cJSON_AddStringToObject(x, "sink", s[i].name);
		cJSON_AddBoolToObject(x, "configured", s[i].configured);
		cJSON_AddNumberToObject(x, "cursor_seq", (double)s[i].cur.seq);
		cJSON_AddNumberToObject(x, "lag",
		                        (double)(last - (s[i].cur.seq < last ? s[i].cur.seq : last)));
		cJSON_AddItemToArray(sa, x);
	}
	cli_json_print(o);
}

static int do_status(const audit_args *a)
{
	app_config cfg;
	int rc = cli_config_load(&cfg, a->cfgflag);
	if (rc)
		return rc;
	char **files = NULL;
	uint64_t last = 0;
	msv_error err;
	sink_state s[] = {{"kafka", cfg.audit_kafka_brokers != NULL, 0, {0, 0, 0}},
	                  {"syslog", cfg.audit_syslog != NULL, 0, {0, 0, 0}}};
	rc = configured_files(&cfg, &files);
	if (!rc && msv_audit_last_seq(cfg.audit_path, &last, &err)) {
		cli_err("audit status: %s", err.message);
		rc = err.code == MSV_E_NO_INPUT ? EX_NOINPUT : cli_exit_code(&err);
	}
	for (size_t i = 0; !rc && i < sizeof(s) / sizeof(s[0]); i++) {
		if (msv_audit_cursor_load(cfg.audit_path, s[i].name, &s[i].cur, &err)) {
			cli_err("audit status: %s", err.message);
			rc = EX_DATAERR;
		}
		s[i].have_cursor = s[i].cur.seq > 0;
	}
	if (!rc)
		print_status(cfg.audit_path, files, first_seq(cfg.audit_path), last, s,
		             sizeof(s) / sizeof(s[0]), a->json);
	msv_audit_files_free(files);
	app_config_free(&cfg);
	return rc;
}

int cmd_audit(int argc, char **argv)
{
	audit_args a = {0};
	int rc = parse_flags(argc, argv, &a);
	if (rc >= 0)
		return rc;
	int nargs = argc - optind;
	const char *op = nargs ? argv[optind] : "";
	if (!strcmp(op, "verify"))
		return do_verify(&a, nargs - 1, argv + optind + 1);
	if (a.key_file)
		return cli_usage("audit", "--key-file is for 'audit verify'");
	if (!strcmp(op, "status") && nargs == 1)
		return do_status(&a);
	if (!strcmp(op, "forget") && nargs == 2)
		return cli_audit_forget(a.cfgflag, argv[optind + 1], a.json);
	usage(stderr);
	return EX_USAGE;
}
