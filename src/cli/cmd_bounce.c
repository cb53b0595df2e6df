/* missive bounce: a bounce on stdin (a Postfix or Exim pipe alias) marks
 * the queued recipient bounced and suppresses hard-bounced addresses. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "bounce.h"
#include "cli.h"
#include "jsonout.h"
#include "submit.h"

#define BOUNCE_MAX (64u << 20)

static void usage(FILE *f)
{
	fputs("usage: missive bounce [--config FILE] [--json] [FILE|-]\n"
	      "\n"
	      "Reads a bounce (delivery status notification, or a provider's plain-text\n"
	      "report) from FILE or stdin, as a pipe alias would deliver it:\n"
	      "    bounces: \"|/usr/local/bin/missive bounce --config /etc/missive/missive.conf\"\n"
	      "Each failed recipient of a message still in the queue (found by the DSN\n"
	      "envelope ID or the route's VERP return-path) is marked bounced with its\n"
	      "reason; its hard bounces go on the suppression list ([suppression]\n"
	      "hard-bounces).  A bounce that matches no recipient of a queued message is\n"
	      "reported but changes nothing: a forged one cannot suppress an address.\n"
	      "\n"
	      "  --config FILE  configuration (default $MISSIVE_CONFIG, else " APP_CONFIG_DEFAULT ")\n"
	      "  --json         print what was found and done\n"
	      "Exit codes: 0 applied (also for auto-replies and unmatched bounces), 65 not a\n"
	      "message, 66 unreadable file, 73 queue not writable, 78 configuration error.\n",
	      f);
}

static void print_result(cJSON *res, int json)
{
	if (json) {
		cli_json_print(res);
		return;
	}
	const cJSON *r, *qid = cJSON_GetObjectItem(res, "queue_id");
	printf("%s, queue ID %s\n", cJSON_GetObjectItem(res, "kind")->valuestring,
	       cJSON_IsString(qid) ? qid->valuestring : "not found");
	cJSON_ArrayForEach(r, cJSON_GetObjectItem(res, "recipients"))
		printf("  %s %s %s %s%s%s\n", cJSON_GetObjectItem(r, "address")->valuestring,
		       cJSON_GetObjectItem(r, "action")->valuestring,
		       cJSON_GetObjectItem(r, "status")->valuestring,
		       cJSON_GetObjectItem(r, "reason")->valuestring,
		       cJSON_IsTrue(cJSON_GetObjectItem(r, "matched")) ? ", marked bounced" : "",
		       cJSON_IsTrue(cJSON_GetObjectItem(r, "suppressed")) ? ", suppressed" : "");
}

/* bounce.received (and suppression.changed) by the operator who fed it. */
static void audit_bounce(const app_config *cfg, const cJSON *res)
{
	app_audit *a = NULL;
	msv_error err;
	char who[256];
	if (app_audit_open(cfg, NULL, &a, &err) ||
	    app_audit_bounce(a, res, MSV_AUDIT_OPERATOR, app_audit_operator_id(who, sizeof(who)),
	                     NULL, &err))
		cli_err("warning: the bounce is applied, but the audit trail did not take it: %s",
		        err.message);
	app_audit_close(a);
}

int cmd_bounce(int argc, char **argv)
{
	const char *cfgflag = NULL;
	int json = 0, rc = cli_config_json_flags(argc, argv, usage, &cfgflag, &json);
	if (rc >= 0)
		return rc;
	if (argc - optind > 1) {
		usage(stderr);
		return EX_USAGE;
	}
	const char *path = optind < argc ? argv[optind] : "-";
	app_config cfg;
	rc = cli_config_load(&cfg, cfgflag);
	char *msg = NULL;
	size_t len = 0;
	if (!rc)
		rc = cli_read_file(path, BOUNCE_MAX, &msg, &len, "bounce");
	msv_queue *q = NULL;
	if (!rc)
		rc = cli_queue_open(&cfg, 0, &q);
	if (!rc) {
		cJSON *res = NULL;
		msv_error err;
		app_bounce_step step;
		if (app_apply_bounce(&cfg, q, msg, len, &res, &step, &err)) {
			cli_err("bounce: %s", err.message);
			rc = cli_exit_code(&err);
		} else {
			audit_bounce(&cfg, res);
			print_result(res, json);
			if (json)
				res = NULL;
		}
		cJSON_Delete(res);
		msv_queue_close(q);
	}
	msv_free(msg);
	app_config_free(&cfg);
	return rc;
}
