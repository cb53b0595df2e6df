/* missive suppression ls|add|rm: addresses the queue refuses to mail
 * (hard bounces land here; operators add and remove by hand). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "jsonout.h"
#include "queue_json.h"
#include "submit.h"

static void usage(FILE *f)
{
	fputs("usage: missive suppression ls [--json]\n"
	      "       missive suppression add ADDRESS [--reason TEXT]\n"
	      "       missive suppression rm ADDRESS\n"
	      "\n"
	      "Submissions (sendmail, HTTP) to a listed address are refused unless overridden\n"
	      "(--allow-suppressed, \"allow_suppressed\": true).  Addresses compare without case.\n"
	      "  --config FILE  configuration (default $MISSIVE_CONFIG, else " APP_CONFIG_DEFAULT ")\n"
	      "  --json         machine-readable output\n"
	      "Exit codes: 0 ok, 1 rm: the address was not listed, 64 usage, 78 configuration.\n",
	      f);
}

int cmd_suppression(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"json", no_argument, NULL, 'j'},
		{"reason", required_argument, NULL, 'r'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *cfgflag = NULL, *reason = "added by hand";
	int json = 0, c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': cfgflag = optarg; break;
		case 'j': json = 1; break;
		case 'r': reason = optarg; break;
		case 'h': usage(stdout); return EX_OK;
		default: usage(stderr); return EX_USAGE;
		}
	}
	int nargs = argc - optind;
	const char *op = nargs ? argv[optind] : "";
	int ls = !strcmp(op, "ls"), add = !strcmp(op, "add"), rm = !strcmp(op, "rm");
	if (!(ls || add || rm) || nargs != (ls ? 1 : 2)) {
		usage(stderr);
		return EX_USAGE;
	}
	const char *addr = ls ? NULL : argv[optind + 1];
	msv_error err;
	if (addr) {
		msv_buf one;
		msv_buf_init(&one, 4096);
		size_t n = 0;
		int bad = msv_mime_address_list(&one, &n, addr, strlen(addr), &err) || n != 1;
		msv_buf_free(&one);
		if (bad) {
			cli_err("suppression: '%s' is not one address%s%s", addr, n ? "" : ": ",
			        n ? "" : err.message);
			return EX_DATAERR;
		}
	}
	app_config cfg;
	msv_queue *q = NULL;
	int rc = cli_config_load(&cfg, cfgflag);
	if (!rc)
		rc = cli_queue_open(&cfg, ls, &q);
	if (rc) {
		app_config_free(&cfg);
		return rc;
	}
	if (ls) {
		msv_suppression *s = NULL;
		size_t n = 0;
		if (msv_queue_suppress_list(q, &s, &n, &err)) {
			cli_err("suppression: %s", err.message);
			rc = cli_exit_code(&err);
		} else if (json) {
			cJSON *a = cJSON_CreateArray();
			for (size_t i = 0; i < n; i++) {
				cJSON *o = cJSON_CreateObject();
				cJSON_AddStringToObject(o, "address", s[i].address);
				cJSON_AddStringToObject(o, "reason", s[i].reason ? s[i].reason : "");
				cJSON_AddStringToObject(o, "source", s[i].source ? s[i].source : "");
				app_json_time(o, "created", s[i].created_ms);
				cJSON_AddItemToArray(a, o);
			}
			cli_json_print(a);
		} else {
			for (size_t i = 0; i < n; i++)
				printf("%s\t%s\t%s\n", s[i].address, s[i].source ? s[i].source : "",
				       s[i].reason ? s[i].reason : "");
		}
		msv_queue_suppressions_free(s, n);
	} else if (add) {
		if (msv_queue_suppress_add(q, addr, reason, "manual", msv_wall_ms(), &err)) {
			cli_err("suppression: %s", err.message);
			rc = cli_exit_code(&err);
		}
	} else {
		int removed = 0;
		if (msv_queue_suppress_rm(q, addr, &removed, &err)) {
			cli_err("suppression: %s", err.message);
			rc = cli_exit_code(&err);
		} else if (!removed) {
			cli_err("suppression: %s was not listed", addr);
			rc = 1;
		}
	}
	if (!rc && !ls) {
		msv_audit_field f[] = {
			MSV_AUDIT_S("action", add ? "add" : "remove"),
			MSV_AUDIT_S("address", addr),
			MSV_AUDIT_S("reason", add && reason ? reason : ""),
			MSV_AUDIT_S("source", "manual"),
		};
		cli_audit(&cfg, "suppression.changed", NULL, f, 4);
	}
	msv_queue_close(q);
	app_config_free(&cfg);
	return rc;
}
