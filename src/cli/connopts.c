/* Connection flags to app_conn_set() (connopts.h). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "connopts.h"
#include "exit_code.h"

static const struct option conn_flags[] = {CLI_CONN_LONGOPTS, {NULL, 0, NULL, 0}};

static void trace_stderr(void *payload, msv_trace_dir dir, const char *line, size_t len)
{
	(void)payload;
	static const char prefix[] = {'<', '>', '*'};
	fprintf(stderr, "%c %.*s\n", prefix[dir], (int)len, line);
}

int cli_conn_opt(cli_conn *cc, int c, const char *arg, const char *cmd)
{
	for (const struct option *o = conn_flags; o->name; o++) {
		if (o->val != c)
			continue;
		char flag[48];
		snprintf(flag, sizeof(flag), "--%s", o->name);
		msv_error err;
		if (app_conn_set(cc, flag, arg, &err) < 0)
			return cli_usage(cmd, "%s", err.message);
		return 1;
	}
	return 0;
}

int cli_conn_finish(cli_conn *cc, const char *cmd)
{
	msv_error err;
	if (app_conn_finish(cc, &err) || app_conn_oauth2_start(cc, &err)) {
		if (err.cls == MSV_CLASS_USAGE)
			return cli_usage(cmd, "%s", err.message);
		cli_err("%s", err.message);
		return app_exit_code(&err);
	}
	if (cc->trace)
		cc->co.smtp.trace = trace_stderr;
	if (cc->co.insecure)
		cli_err("warning: TLS certificate verification is disabled (--insecure); "
		        "the connection can be intercepted");
	return 0;
}
