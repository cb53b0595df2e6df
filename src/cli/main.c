/* missive-core: the command line front end of libmissive, every command
 * fully linked; the light missive (light_main.c) execs it (docs/internals/cli.md). */
#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f)
{
	fputs("usage: missive COMMAND [OPTIONS]\n"
	      "\n"
	      "Commands:\n"
	      "  send      send one message over SMTP now (TLS verified by default)\n"
	      "  build     build a MIME message from flags and write it to stdout\n"
	      "  dkim      DKIM keys, signing and verification (keygen, sign, verify, record)\n"
	      "  sendmail  queue a message from stdin for missived (sendmail(8) interface)\n"
	      "  queue     inspect and operate the delivery queue (ls, show, retry, dlq, purge, stats)\n"
	      "  dsn       parse and classify a bounce (delivery status notification)\n"
	      "  bounce    apply a bounce read on stdin to the queue and suppression list\n"
	      "  suppression  the suppression list (ls, add, rm)\n"
	      "  key       API keys for missived's HTTP API (add, ls, rm, rotate)\n"
	      "  reputation  submitters' reputation scores (ls, set)\n"
	      "  audit     the audit trail: verify its hash chain, status, forget an address\n"
	      "  bench     benchmarks: 'bench smtp' sends generated mail through the pool\n"
	      "  oauth2    OAuth2 token sources: check one (token), authorize a mailbox (authorize)\n"
	      "\n"
	      "Options:\n"
	      "  -h, --help     this text; 'missive COMMAND --help' for a command\n"
	      "  -V, --version  print the version\n"
	      "\n"
	      "Exit codes follow sysexits.h: 0 ok, 64 usage, 65 bad data, 69 permanent failure,\n"
	      "73 queue not writable, 75 temporary failure,\n"
	      "77 authentication refused, 78 configuration error.\n"
	      "See missive(1) and missive-send(1).\n",
	      f);
}

int main(int argc, char **argv)
{
	/* Called by the name sendmail, missive speaks sendmail(8) (installed,
	 * that name is the small front end, sendmail_main.c). */
	const char *self = argc > 0 ? strrchr(argv[0], '/') : NULL;
	if (argc > 0 && !strcmp(self ? self + 1 : argv[0], "sendmail"))
		return cmd_sendmail(argc, argv);
	if (argc < 2) {
		usage(stderr);
		return EX_USAGE;
	}
	/* libmissive keeps no globals: libcurl's one-time setup is the
	 * program's (missive/oauth2.h), before any thread. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
		cli_err("cannot initialize libcurl");
		return EX_SOFTWARE;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
		usage(stdout);
		return EX_OK;
	}
	if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version")) {
		printf("missive %s\n", MSV_VERSION);
		return EX_OK;
	}
	static const struct {
		const char *name;
		int (*run)(int argc, char **argv);
	} commands[] = {
	    {"send", cmd_send},   {"build", cmd_build},   {"dkim", cmd_dkim},
	    {"sendmail", cmd_sendmail}, {"queue", cmd_queue}, {"dsn", cmd_dsn},
	    {"bounce", cmd_bounce}, {"suppression", cmd_suppression}, {"bench", cmd_bench},
	    {"key", cmd_key}, {"reputation", cmd_reputation}, {"oauth2", cmd_oauth2},
	    {"audit", cmd_audit},
	};
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(cmd, commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	cli_err("unknown command '%s' (see 'missive --help')", cmd);
	return EX_USAGE;
}
