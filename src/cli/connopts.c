/* Server, TLS and authentication flags shared by the connecting commands. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "connopts.h"

static void trace_stderr(void *payload, msv_trace_dir dir, const char *line, size_t len)
{
	(void)payload;
	static const char prefix[] = {'<', '>', '*'};
	fprintf(stderr, "%c %.*s\n", prefix[dir], (int)len, line);
}

void cli_conn_init(cli_conn *cc)
{
	memset(cc, 0, sizeof(*cc));
	msv_client_options init = MSV_CLIENT_OPTIONS_INIT;
	cc->co = init;
}

/* HOST, HOST:PORT, [V6]:PORT, or a bare IPv6 address. */
static int parse_server(cli_conn *cc, const char *s)
{
	const char *host = s, *port = NULL;
	size_t hl;
	if (*s == '[') {
		const char *e = strchr(s, ']');
		if (!e || (e[1] && e[1] != ':'))
			return -1;
		host = s + 1;
		hl = (size_t)(e - host);
		port = e[1] ? e + 2 : NULL;
	} else {
		const char *c = strchr(s, ':');
		if (c && !strchr(c + 1, ':')) {
			hl = (size_t)(c - s);
			port = c + 1;
		} else {
			hl = strlen(s);
		}
	}
	if (!hl || hl >= sizeof(cc->host))
		return -1;
	memcpy(cc->host, host, hl);
	cc->host[hl] = '\0';
	if (port) {
		char *end;
		long p = strtol(port, &end, 10);
		if (!*port || *end || p < 1 || p > 65535)
			return -1;
		cc->co.port = (unsigned)p;
	}
	cc->co.host = cc->host;
	return 0;
}

static int parse_seconds(const char *s, int64_t *ms)
{
	char *end;
	double v = strtod(s, &end);
	if (!*s || *end || !(v > 0) || v > 86400.0 * 365)
		return -1;
	*ms = (int64_t)(v * 1000.0 + 0.5);
	return 0;
}

static int bad(const char *cmd, const char *what, const char *arg, const char *expected)
{
	cli_err("bad %s '%s': expected %s (see 'missive %s --help')", what, arg, expected, cmd);
	return EX_USAGE;
}

int cli_conn_opt(cli_conn *cc, int c, const char *arg, const char *cmd)
{
	int64_t ms;
	switch (c) {
	case CLI_C_SERVER:
		if (parse_server(cc, arg))
			return bad(cmd, "--server", arg, "HOST, HOST:PORT or [IPV6]:PORT");
		return 1;
	case CLI_C_TLS:
		if (!strcmp(arg, "starttls"))
			cc->co.smtp.tls = MSV_TLS_STARTTLS;
		else if (!strcmp(arg, "implicit"))
			cc->co.smtp.tls = MSV_TLS_IMPLICIT;
		else if (!strcmp(arg, "none"))
			cc->co.smtp.tls = MSV_TLS_NONE;
		else
			return bad(cmd, "--tls", arg, "starttls, implicit or none");
		return 1;
	case CLI_C_CA_FILE: cc->co.ca_file = arg; return 1;
	case CLI_C_INSECURE: cc->co.insecure = 1; return 1;
	case CLI_C_CLIENT_CERT: cc->co.client_cert = arg; return 1;
	case CLI_C_CLIENT_KEY: cc->co.client_key = arg; return 1;
	case CLI_C_HELO: cc->co.smtp.helo = arg; return 1;
	case CLI_C_TIMEOUT:
		if (parse_seconds(arg, &ms) || ms > INT32_MAX)
			return bad(cmd, "--timeout", arg, "seconds > 0");
		cc->co.connect_timeout_ms = cc->co.command_timeout_ms = cc->co.data_timeout_ms = (int)ms;
		return 1;
	case CLI_C_DEADLINE:
		if (parse_seconds(arg, &ms))
			return bad(cmd, "--deadline", arg, "seconds > 0");
		cc->co.deadline_ms = ms;
		return 1;
	case CLI_C_USER: cc->co.smtp.user = arg; return 1;
	case CLI_C_PASSWORD_FILE: cc->password_file = arg; return 1;
	case CLI_C_PASSWORD_ENV: cc->password_env = arg; return 1;
	case CLI_C_OAUTH_TOKEN_FILE: cc->token_file = arg; return 1;
	case CLI_C_AUTH:
		if (msv_auth_mech_parse(arg, &cc->co.smtp.auth) || cc->co.smtp.auth == MSV_AUTH_AUTO)
			return bad(cmd, "--auth", arg, "plain, login, cram-md5 or xoauth2");
		return 1;
	case CLI_C_ALLOW_PLAINTEXT_AUTH: cc->co.smtp.allow_plaintext_auth = 1; return 1;
	case CLI_C_TRACE: cc->trace = 1; return 1;
	default: return 0;
	}
}

static int load_secret(cli_conn *cc)
{
	if (cc->password_env) {
		const char *v = getenv(cc->password_env);
		if (!v || !*v) {
			cli_err("environment variable %s (from --password-env) is unset or empty", cc->password_env);
			return EX_CONFIG;
		}
		if (!(cc->secret = msv_strdup(v)))
			return EX_OSERR;
	} else if (cc->password_file) {
		int rc = cli_read_secret_file(cc->password_file, &cc->secret, "password file");
		if (rc)
			return rc;
	} else if (cc->token_file) {
		int rc = cli_read_secret_file(cc->token_file, &cc->secret, "OAuth token file");
		if (rc)
			return rc;
		cc->co.smtp.auth_token = 1;
	}
	cc->co.smtp.secret = cc->secret;
	return 0;
}

int cli_conn_finish(cli_conn *cc, const char *cmd)
{
	const char *why = NULL;
	int sources = !!cc->password_file + !!cc->password_env + !!cc->token_file;
	if (!cc->co.host)
		why = "--server is required";
	else if (sources > 1)
		why = "give only one of --password-file, --password-env, --oauth-token-file";
	else if (cc->co.smtp.user && !sources)
		why = "--user needs --password-file, --password-env or --oauth-token-file";
	else if (!cc->co.smtp.user && sources)
		why = "a password or token needs --user";
	else if (cc->co.smtp.tls == MSV_TLS_NONE && (cc->co.ca_file || cc->co.insecure || cc->co.client_cert))
		why = "TLS options given with --tls none";
	if (why) {
		cli_err("%s (see 'missive %s --help')", why, cmd);
		return EX_USAGE;
	}
	if (!cc->co.port)
		cc->co.port = cc->co.smtp.tls == MSV_TLS_IMPLICIT ? 465 : cc->co.smtp.tls == MSV_TLS_NONE ? 25 : 587;
	snprintf(cc->peer, sizeof(cc->peer), strchr(cc->host, ':') ? "[%s]:%u" : "%s:%u", cc->host,
	         cc->co.port);
	if (cc->trace)
		cc->co.smtp.trace = trace_stderr;
	int rc = load_secret(cc);
	if (!rc && cc->co.insecure)
		cli_err("warning: TLS certificate verification is disabled (--insecure); "
		        "the connection can be intercepted");
	return rc;
}

void cli_conn_free(cli_conn *cc)
{
	msv_free_secret(cc->secret);
	cc->secret = NULL;
}
