/* missive dsn: read a bounce, say who failed and why (RFC 3464, RFC 3834,
 * RFC 5965 and non-standard bounces; see missive-dsn(1)). */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "missive/dsn.h"

/* A bounce is small; a returned message with attachments is not, but
 * past this it is not worth reading. */
#define BOUNCE_MAX ((size_t)64 << 20)

static const char dsn_help[] =
	"usage: missive dsn COMMAND [OPTIONS]\n"
	"\n"
	"Commands:\n"
	"  parse    read a bounce, delivery report, auto-reply or feedback report and\n"
	"           classify each recipient\n"
	"\n"
	"'missive dsn COMMAND --help' for each.  See missive-dsn(1).\n";

static const char parse_help[] =
	"usage: missive dsn parse FILE|- [--json] [--verp-prefix P [--verp-domain D]]\n"
	"\n"
	"Reads one message (a file, or stdin for -) and prints what it reports, per\n"
	"recipient: address, action, status code, reason, hard or soft, the diagnostic\n"
	"text, the remote MTA and the rule that decided the reason; and, when found, the\n"
	"original Message-ID, the envelope id (ENVID) and the queue id.\n"
	"\n"
	"Understands RFC 3464 delivery status notifications (and RFC 6533's global form),\n"
	"the plain-text bounces of Exim, qmail, Sendmail, Postfix, Exchange, Gmail, Yahoo\n"
	"and many others, RFC 3834 auto-replies and RFC 5965 feedback reports.\n"
	"\n"
	"  --json             print one JSON object:\n"
	"                     {\"kind\": \"bounce\"|\"delay\"|\"success\"|\"autoreply\"|\"feedback\"|\n"
	"                      \"unknown\", \"envelope_id\", \"original_message_id\", \"queue_id\",\n"
	"                      \"recipients\": [{\"address\", \"action\", \"status\", \"reason\",\n"
	"                      \"hard\", \"diagnostic\", \"remote_mta\", \"rule\", ...}], ...}\n"
	"                     (null for what the message does not say)\n"
	"  --verp-prefix P    take the queue id from a VERP return path P<id>@domain\n"
	"                     (e.g. --verp-prefix bounces+) when there is no ENVID\n"
	"  --verp-domain D    only VERP addresses at domain D\n"
	"  -h, --help         this text\n"
	"\n"
	"Reasons: userunknown, mailboxfull, hostunknown, spamdetected, blocked,\n"
	"policyviolation, expired, ratelimited, toomanyconn, securityerror, suspend,\n"
	"filtered, norelaying, mesgtoobig, systemerror, networkerror, notaccept,\n"
	"contenterror, exceedlimit, hasmoved, rejected, syntaxerror, mailererror, onhold,\n"
	"authfailure, requireptr, notcompliantrfc, badreputation, virusdetected,\n"
	"systemfull, failedstarttls, undefined; and for what is not a failure: delivered,\n"
	"vacation, feedback.  Hard means the address itself is bad (unknown user or\n"
	"domain, moved, null MX): suppress it.  Everything else is soft.\n"
	"\n"
	"Exit: 0 parsed (whatever the message turned out to be); 64 usage; 65 not a\n"
	"message (no header block) or too large; 66 the file cannot be opened or read.\n";

static void add_str(cJSON *o, const char *name, const char *s)
{
	if (s && *s)
		cJSON_AddStringToObject(o, name, s);
	else
		cJSON_AddNullToObject(o, name);
}

static int print_json(const msv_dsn_report *rep)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return EX_OSERR;
	cJSON_AddStringToObject(o, "kind", msv_dsn_kind_name(rep->kind));
	add_str(o, "envelope_id", rep->envelope_id);
	add_str(o, "original_message_id", rep->original_message_id);
	add_str(o, "queue_id", rep->queue_id);
	cJSON *arr = cJSON_AddArrayToObject(o, "recipients");
	for (size_t i = 0; i < rep->nrecipients; i++) {
		const msv_dsn_recipient *r = &rep->recipients[i];
		cJSON *x = cJSON_CreateObject();
		if (!x)
			break;
		cJSON_AddItemToArray(arr, x);
		add_str(x, "address", r->address);
		add_str(x, "action", r->action ? msv_dsn_action_name(r->action) : NULL);
		add_str(x, "status", r->status);
		cJSON_AddStringToObject(x, "reason", msv_dsn_reason_name(r->reason));
		cJSON_AddBoolToObject(x, "hard", r->hard != 0);
		add_str(x, "diagnostic", r->diagnostic);
		add_str(x, "remote_mta", r->remote_mta);
		add_str(x, "rule", r->rule);
		/* Keys beyond the contract. */
		add_str(x, "diagnostic_type", r->diagnostic_type);
		add_str(x, "original_recipient", r->original_recipient);
		add_str(x, "final_recipient", r->final_recipient);
		add_str(x, "status_source", r->status[0] ? msv_dsn_source_name(r->status_source) : NULL);
		if (r->reply_code)
			cJSON_AddNumberToObject(x, "reply_code", r->reply_code);
		else
			cJSON_AddNullToObject(x, "reply_code");
		add_str(x, "command", r->command);
		add_str(x, "last_attempt_date", r->last_attempt_date);
		add_str(x, "will_retry_until", r->will_retry_until);
		cJSON_AddStringToObject(x, "sisimai_reason", msv_dsn_reason_sisimai(r->reason));
	}
	add_str(o, "format", rep->format);
	add_str(o, "reporting_mta", rep->reporting_mta);
	add_str(o, "arrival_date", rep->arrival_date);
	add_str(o, "original_from", rep->original_from);
	add_str(o, "original_subject", rep->original_subject);
	add_str(o, "feedback_type", rep->feedback_type);
	char *s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!s)
		return EX_OSERR;
	int rc = puts(s) < 0 || fflush(stdout) ? EX_IOERR : EX_OK;
	cJSON_free(s);
	return rc;
}

static void line(const char *label, const char *v)
{
	if (v && *v)
		printf("  %-20s %s\n", label, v);
}

static int print_human(const msv_dsn_report *rep)
{
	printf("kind: %s", msv_dsn_kind_name(rep->kind));
	if (rep->format)
		printf(" (read as %s)", rep->format);
	putchar('\n');
	if (rep->original_message_id)
		printf("original message-id: %s\n", rep->original_message_id);
	if (rep->envelope_id)
		printf("envelope id: %s\n", rep->envelope_id);
	if (rep->queue_id)
		printf("queue id: %s\n", rep->queue_id);
	if (rep->reporting_mta)
		printf("reporting mta: %s\n", rep->reporting_mta);
	if (rep->feedback_type)
		printf("feedback type: %s\n", rep->feedback_type);
	if (!rep->nrecipients)
		printf("no recipients reported\n");
	for (size_t i = 0; i < rep->nrecipients; i++) {
		const msv_dsn_recipient *r = &rep->recipients[i];
		printf("\n%s\n", r->address);
		line("original recipient:", r->original_recipient);
		line("final recipient:", r->final_recipient);
		line("action:", r->action ? msv_dsn_action_name(r->action) : NULL);
		if (r->status[0])
			printf("  %-20s %s (%s)\n", "status:", r->status,
			       r->status_source == MSV_DSN_SRC_FIELD      ? "from the report"
			       : r->status_source == MSV_DSN_SRC_TEXT     ? "from the text"
			       : r->status_source == MSV_DSN_SRC_REPLY    ? "from the reply code"
			       : r->status_source == MSV_DSN_SRC_INFERRED ? "inferred from the reason"
			                                                  : "?");
		printf("  %-20s %s, %s\n", "reason:", msv_dsn_reason_name(r->reason),
		       r->hard ? "hard" : "soft");
		if (r->diagnostic && r->diagnostic_type)
			printf("  %-20s %s (%s)\n", "diagnostic:", r->diagnostic, r->diagnostic_type);
		else
			line("diagnostic:", r->diagnostic);
		line("remote mta:", r->remote_mta);
		line("command:", r->command);
		line("last attempt:", r->last_attempt_date);
		line("will retry until:", r->will_retry_until);
		line("rule:", r->rule);
	}
	if (rep->recipients_dropped)
		printf("\n(%zu more recipients not shown: past the limit)\n", rep->recipients_dropped);
	return fflush(stdout) ? EX_IOERR : EX_OK;
}

enum { O_JSON = 256, O_VERP_PREFIX, O_VERP_DOMAIN };

static int cmd_parse(int argc, char **argv)
{
	static const struct option opts[] = {
		{"json", no_argument, NULL, O_JSON},
		{"verp-prefix", required_argument, NULL, O_VERP_PREFIX},
		{"verp-domain", required_argument, NULL, O_VERP_DOMAIN},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int json = 0, c;
	msv_dsn_options o = MSV_DSN_OPTIONS_INIT;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'h': fputs(parse_help, stdout); return EX_OK;
		case O_JSON: json = 1; break;
		case O_VERP_PREFIX:
			if (!*optarg || strchr(optarg, '@'))
				return cli_usage("dsn parse", "bad --verp-prefix '%s': a local-part prefix such as bounces+",
				                   optarg);
			o.verp_prefix = optarg;
			break;
		case O_VERP_DOMAIN:
			if (!*optarg || strchr(optarg, '@'))
				return cli_usage("dsn parse", "bad --verp-domain '%s'", optarg);
			o.verp_domain = optarg;
			break;
		case ':': return cli_usage("dsn parse", "%s needs an argument", argv[optind - 1]);
		default: return cli_usage("dsn parse", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return cli_usage("dsn parse", "%s", "a FILE (or - for stdin) is required");
	if (optind + 1 < argc)
		return cli_usage("dsn parse", "unexpected argument '%s'", argv[optind + 1]);
	if (o.verp_domain && !o.verp_prefix)
		return cli_usage("dsn parse", "%s", "--verp-domain needs --verp-prefix");
	char *data;
	size_t len;
	int rc = cli_read_file(argv[optind], BOUNCE_MAX, &data, &len, "message");
	if (rc)
		return rc == EX_IOERR ? EX_NOINPUT : rc;
	msv_dsn_report *rep;
	msv_error err;
	msv_result r = msv_dsn_parse(&rep, data, len, &o, &err);
	msv_free(data);
	if (r) {
		cli_err("%s: %s", strcmp(argv[optind], "-") ? argv[optind] : "stdin", err.message);
		return r == MSV_E_NOMEM ? EX_OSERR : EX_DATAERR;
	}
	rc = json ? print_json(rep) : print_human(rep);
	msv_dsn_report_free(rep);
	if (rc == EX_IOERR)
		cli_err("cannot write the output");
	return rc;
}

int cmd_dsn(int argc, char **argv)
{
	if (argc < 2) {
		fputs(dsn_help, stderr);
		return EX_USAGE;
	}
	const char *sub = argv[1];
	if (!strcmp(sub, "-h") || !strcmp(sub, "--help") || !strcmp(sub, "help")) {
		fputs(dsn_help, stdout);
		return EX_OK;
	}
	if (!strcmp(sub, "parse"))
		return cmd_parse(argc - 1, argv + 1);
	cli_err("unknown dsn command '%s' (see 'missive dsn --help')", sub);
	return EX_USAGE;
}
