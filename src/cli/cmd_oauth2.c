/* missive oauth2 token|authorize: check a route's OAuth2 token source,
 * or run the device flow once to get a user mailbox's refresh token
 * (docs/oauth2.md, missive-oauth2(1)). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "connopts.h"
#include "jsonout.h"
#include "missive/oauth2.h"

static void usage(FILE *f)
{
	fputs("usage: missive oauth2 token [--config FILE] [--route NAME | FLAGS] [--show] [--json]\n"
	      "       missive oauth2 authorize [--config FILE] [--route NAME | FLAGS]\n"
	      "                                [--oauth2-device-url URL]\n"
	      "\n"
	      "token fetches a fresh access token and prints its expiry and scopes (the token\n"
	      "itself only with --show); authorize runs the device authorization grant\n"
	      "(RFC 8628) and writes the refresh token to --oauth2-refresh-token-file.\n"
	      "  --route NAME   the settings of [route NAME] (\"default\": [route]) of the config\n"
	      "  --config FILE  configuration (default $MISSIVE_CONFIG, else " APP_CONFIG_DEFAULT ")\n"
	      "  --oauth2-provider google|microsoft   token and device URLs, scope\n"
	      "  --oauth2-token-url URL  --oauth2-client-id ID  --oauth2-client-secret-file FILE\n"
	      "  --oauth2-refresh-token-file FILE  --oauth2-scope SCOPES\n"
	      "  --oauth2-service-account-file FILE  --oauth2-subject MAILBOX\n"
	      "  --oauth2-device-url URL  --ca-file FILE  --timeout SECONDS\n"
	      "  --show         print the access token (it is a password: mind where it goes)\n"
	      "  --json         machine-readable output\n"
	      "Exit codes: 0 ok, 64 usage, 75 endpoint unreachable or failing, 77 refused or\n"
	      "revoked, 78 configuration.\n",
	      f);
}

enum { O_CONFIG = 4000, O_ROUTE, O_SHOW, O_JSON };

typedef struct oauth2_args {
	const char *cfgflag, *route;
	int show, json;
	app_conn cc;
	app_config cfg;
	int have_cfg;
} oauth2_args;

static int parse(oauth2_args *a, int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, O_CONFIG}, {"route", required_argument, NULL, O_ROUTE},
		{"show", no_argument, NULL, O_SHOW},           {"json", no_argument, NULL, O_JSON},
		{"help", no_argument, NULL, 'h'},              CLI_CONN_LONGOPTS,
		{NULL, 0, NULL, 0},
	};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case O_CONFIG: a->cfgflag = optarg; break;
		case O_ROUTE: a->route = optarg; break;
		case O_SHOW: a->show = 1; break;
		case O_JSON: a->json = 1; break;
		case 'h': usage(stdout); return EX_OK;
		default: {
			int taken = cli_conn_opt(&a->cc, c, optarg, "oauth2");
			if (taken == 1)
				continue;
			if (taken > 1)
				return taken;
			usage(stderr);
			return EX_USAGE;
		}
		}
	}
	if (optind != argc)
		return cli_usage("oauth2", "unexpected argument '%s'", argv[optind]);
	return -1;
}

/* The settings: [route NAME] of the config file, or the flags. */
static int settings(oauth2_args *a, const app_conn **out)
{
	if (!a->route) {
		if (!app_conn_oauth2_given(&a->cc))
			return cli_usage("oauth2", "give --route NAME or the --oauth2-* flags");
		*out = &a->cc;
		return 0;
	}
	if (app_conn_oauth2_given(&a->cc))
		return cli_usage("oauth2", "give --route or --oauth2-* flags, not both");
	int rc = cli_config_load(&a->cfg, a->cfgflag);
	if (rc)
		return rc;
	a->have_cfg = 1;
	for (size_t i = 0; i < a->cfg.nroutes; i++) {
		if (strcmp(a->cfg.routes[i]->name, a->route))
			continue;
		if (!app_conn_oauth2_given(&a->cfg.routes[i]->conn)) {
			cli_err("[route %s] has no oauth2-* settings", a->route);
			return EX_CONFIG;
		}
		*out = &a->cfg.routes[i]->conn;
		return 0;
	}
	cli_err("no [route %s] in %s", a->route, a->cfg.path ? a->cfg.path : "the configuration");
	return EX_CONFIG;
}

static int fail(const oauth2_args *a, const msv_error *err)
{
	if (a->json) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "status", "failed");
		cli_json_error(o, err);
		cli_json_print(o);
	} else {
		cli_err("%s", err->message);
	}
	return cli_exit_code(err);
}

static void print_token(const oauth2_args *a, msv_oauth2 *o, const msv_buf *tok,
                        const msv_oauth2_info *info)
{
	long secs = (long)(info->expires_in_ms / 1000);
	time_t at = time(NULL) + secs;
	char when[64];
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&at));
	const char *grant = msv_oauth2_grant_name(msv_oauth2_grant_get(o));
	if (a->json) {
		cJSON *j = cJSON_CreateObject();
		cJSON_AddStringToObject(j, "status", "ok");
		cJSON_AddStringToObject(j, "grant", grant);
		cJSON_AddNumberToObject(j, "expires_in", (double)secs);
		cJSON_AddStringToObject(j, "expires_at", when);
		cJSON_AddStringToObject(j, "scope", info->scope);
		cJSON_AddStringToObject(j, "token_type", info->token_type);
		cJSON_AddBoolToObject(j, "refresh_token_rotated", info->rotated);
		if (a->show)
			cJSON_AddStringToObject(j, "access_token", tok->data);
		cli_json_print(j);
		return;
	}
	printf("grant:      %s\n", grant);
	printf("expires in: %ld s (%s)\n", secs, when);
	printf("scope:      %s\n", *info->scope ? info->scope : "(not stated by the endpoint)");
	if (info->rotated)
		printf("refresh token rotated: written back\n");
	if (a->show)
		printf("token:      %s\n", tok->data);
}

static int do_token(const oauth2_args *a, const app_conn *cc)
{
	msv_error err;
	msv_oauth2 *o = NULL;
	if (app_conn_oauth2_new(cc, 0, &o, &err))
		return fail(a, &err);
	msv_buf tok;
	msv_buf_init(&tok, 16384);
	msv_oauth2_info info;
	int rc = EX_OK;
	if (msv_oauth2_token(o, 0, &tok, &info, &err))
		rc = fail(a, &err);
	else
		print_token(a, o, &tok, &info);
	msv_buf_free_secret(&tok);
	msv_oauth2_free(o);
	return rc;
}

static void prompt(void *payload, const char *uri, const char *code, const char *complete,
                   int64_t expires_in_s)
{
	(void)payload;
	/* stderr: stdout may be a pipe to a script that waits for the end. */
	fprintf(stderr, "To authorize missive, open %s\nand enter the code %s", uri, code);
	if (expires_in_s > 0)
		fprintf(stderr, " within %ld minutes", (long)((expires_in_s + 59) / 60));
	fputs(".\n", stderr);
	if (complete)
		fprintf(stderr, "(or open %s)\n", complete);
	fputs("Waiting for the approval...\n", stderr);
	fflush(stderr);
}

static int do_authorize(const oauth2_args *a, const app_conn *cc)
{
	const char *url = app_conn_oauth2_device_url(cc);
	if (!url)
		return cli_usage("oauth2", "authorize needs --oauth2-device-url or --oauth2-provider");
	if (!cc->oauth2.refresh_token_file || !cc->oauth2.client_id)
		return cli_usage("oauth2", "authorize needs --oauth2-client-id and "
		                           "--oauth2-refresh-token-file (where the token goes)");
	msv_error err;
	msv_oauth2 *o = NULL;
	if (app_conn_oauth2_new(cc, 1, &o, &err))
		return fail(a, &err);
	int rc = EX_OK;
	if (msv_oauth2_device_authorize(o, url, prompt, NULL, &err)) {
		rc = fail(a, &err);
	} else if (a->json) {
		cJSON *j = cJSON_CreateObject();
		cJSON_AddStringToObject(j, "status", "ok");
		cJSON_AddStringToObject(j, "refresh_token_file", cc->oauth2.refresh_token_file);
		cli_json_print(j);
	} else {
		printf("authorized: refresh token written to %s\n", cc->oauth2.refresh_token_file);
	}
	msv_oauth2_free(o);
	return rc;
}

int cmd_oauth2(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? EX_USAGE : EX_OK;
	}
	int authorize = !strcmp(argv[1], "authorize");
	if (!authorize && strcmp(argv[1], "token"))
		return cli_usage("oauth2", "unknown subcommand '%s'", argv[1]);
	oauth2_args a = {0};
	app_conn_init(&a.cc);
	int rc = parse(&a, argc - 1, argv + 1);
	const app_conn *cc = NULL;
	if (rc < 0)
		rc = settings(&a, &cc);
	if (!rc)
		rc = authorize ? do_authorize(&a, cc) : do_token(&a, cc);
	app_conn_free(&a.cc);
	if (a.have_cfg)
		app_config_free(&a.cfg);
	return rc;
}
