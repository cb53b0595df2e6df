/* missive send: one message over SMTP, now (msmtp-style). */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"
#include "missive/smtp.h"

#define MESSAGE_MAX ((size_t)512 << 20)
#define RCPT_MAX 10000

static const char send_help[] =
	"usage: missive send --server HOST[:PORT] --from ADDR --to ADDR [options] [--message FILE|-]\n"
	"\n"
	"Sends one complete RFC 5322 message (stdin by default) over SMTP.\n"
	"\n"
	"Server and TLS:\n"
	"  --server HOST[:PORT]     SMTP server; IPv6 as [ADDR]:PORT. Default port: 587\n"
	"                           (starttls), 465 (implicit), 25 (none)\n"
	"  --tls MODE               starttls (default: required and verified), implicit\n"
	"                           (TLS from the first byte), none (plaintext)\n"
	"  --ca-file FILE           trust these PEM CA certificates instead of the system's\n"
	"  --insecure               do not verify the server certificate (warns)\n"
	"  --client-cert FILE       TLS client certificate (PEM chain)\n"
	"  --client-key FILE        its key (PEM), if not in --client-cert\n"
	"  --helo NAME              name to give in EHLO (default: localhost)\n"
	"  --timeout SECONDS        connect, per-command and data timeout (default: 30/300/600)\n"
	"  --deadline SECONDS       limit for the whole session\n"
	"\n"
	"Authentication (only over TLS unless --allow-plaintext-auth):\n"
	"  --user NAME              log in as NAME, with one of:\n"
	"  --password-file FILE     password: first line of FILE\n"
	"  --password-env VAR       password: environment variable VAR\n"
	"  --oauth-token-file FILE  OAuth 2.0 bearer token for XOAUTH2\n"
	"  --auth MECH              plain, login, cram-md5 or xoauth2 (default: the best\n"
	"                           offered: PLAIN, LOGIN, CRAM-MD5 in that order)\n"
	"  --allow-plaintext-auth   allow credentials on an unencrypted connection\n"
	"\n"
	"Envelope and message:\n"
	"  --from ADDR              envelope sender (MAIL FROM)\n"
	"  --to ADDR                recipient; repeat for more\n"
	"  --cc ADDR, --bcc ADDR    more recipients (the message is sent as given)\n"
	"  --message FILE|-         the message (default: stdin)\n"
	"  --dsn-notify LIST        NEVER, or SUCCESS,FAILURE,DELAY (when the server offers DSN)\n"
	"  --dsn-ret full|hdrs      what a bounce returns\n"
	"  --envid ID               DSN envelope identifier\n"
	"\n"
	"Output:\n"
	"  --json                   print one JSON object with the result per recipient\n"
	"  --trace                  print the SMTP dialogue on stderr (credentials redacted)\n"
	"  -v, --verbose            print a line per recipient on success too\n"
	"  -h, --help               this text\n"
	"\n"
	"Exit: 0 all recipients accepted; 75 temporary failure (retry later); 69 permanent\n"
	"failure; partial acceptance exits 69 if a refusal was permanent, else 75 (see\n"
	"--json for who got it); 64 usage; 65 bad message or address; 66 message file\n"
	"missing; 77 authentication refused; 78 configuration (CA file, password file).\n";

enum {
	O_SERVER = 256, O_TLS, O_CA_FILE, O_INSECURE, O_CLIENT_CERT, O_CLIENT_KEY, O_HELO, O_TIMEOUT,
	O_DEADLINE, O_USER, O_PASSWORD_FILE, O_PASSWORD_ENV, O_OAUTH_TOKEN_FILE, O_AUTH,
	O_ALLOW_PLAINTEXT_AUTH, O_FROM, O_TO, O_CC, O_BCC, O_MESSAGE, O_DSN_NOTIFY, O_DSN_RET, O_ENVID,
	O_JSON, O_TRACE,
};

static const struct option longopts[] = {
	{"server", required_argument, NULL, O_SERVER},
	{"tls", required_argument, NULL, O_TLS},
	{"ca-file", required_argument, NULL, O_CA_FILE},
	{"insecure", no_argument, NULL, O_INSECURE},
	{"client-cert", required_argument, NULL, O_CLIENT_CERT},
	{"client-key", required_argument, NULL, O_CLIENT_KEY},
	{"helo", required_argument, NULL, O_HELO},
	{"timeout", required_argument, NULL, O_TIMEOUT},
	{"deadline", required_argument, NULL, O_DEADLINE},
	{"user", required_argument, NULL, O_USER},
	{"password-file", required_argument, NULL, O_PASSWORD_FILE},
	{"password-env", required_argument, NULL, O_PASSWORD_ENV},
	{"oauth-token-file", required_argument, NULL, O_OAUTH_TOKEN_FILE},
	{"auth", required_argument, NULL, O_AUTH},
	{"allow-plaintext-auth", no_argument, NULL, O_ALLOW_PLAINTEXT_AUTH},
	{"from", required_argument, NULL, O_FROM},
	{"to", required_argument, NULL, O_TO},
	{"cc", required_argument, NULL, O_CC},
	{"bcc", required_argument, NULL, O_BCC},
	{"message", required_argument, NULL, O_MESSAGE},
	{"dsn-notify", required_argument, NULL, O_DSN_NOTIFY},
	{"dsn-ret", required_argument, NULL, O_DSN_RET},
	{"envid", required_argument, NULL, O_ENVID},
	{"json", no_argument, NULL, O_JSON},
	{"trace", no_argument, NULL, O_TRACE},
	{"verbose", no_argument, NULL, 'v'},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

typedef struct send_args {
	msv_client_options co;
	char host[256];
	const char *server, *password_file, *password_env, *token_file, *message;
	const char *from;
	const char *rcpt[RCPT_MAX];
	size_t nrcpt;
	char dsn_notify[64], dsn_ret[8];
	const char *envid;
	int json, trace, verbose;
	char *secret;
} send_args;

static void trace_stderr(void *payload, msv_trace_dir dir, const char *line, size_t len)
{
	(void)payload;
	static const char prefix[] = {'<', '>', '*'};
	fprintf(stderr, "%c %.*s\n", prefix[dir], (int)len, line);
}

/* HOST, HOST:PORT, [V6]:PORT, or a bare IPv6 address. */
static int parse_server(send_args *a, const char *s)
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
	if (!hl || hl >= sizeof(a->host))
		return -1;
	memcpy(a->host, host, hl);
	a->host[hl] = '\0';
	if (port) {
		char *end;
		long p = strtol(port, &end, 10);
		if (!*port || *end || p < 1 || p > 65535)
			return -1;
		a->co.port = (unsigned)p;
	}
	a->co.host = a->host;
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

/* The CLI checks addresses more strictly than the engine (which only
 * stops command injection): local@domain, nothing that cannot be sent. */
static int check_address(const char *flag, const char *addr, int allow_empty)
{
	if (allow_empty && !*addr)
		return 0;
	const char *why = NULL;
	const char *at = strrchr(addr, '@');
	if (strlen(addr) > 254)
		why = "longer than 254 octets";
	else if (!at || at == addr || !at[1])
		why = "not of the form local@domain";
	for (const char *p = addr; !why && *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '\r' || c == '\n')
			why = "contains a line break";
		else if (c < 0x20 || c == 0x7f)
			why = "contains a control character";
		else if (c == ' ' || c == '<' || c == '>')
			why = "contains a space or angle bracket";
	}
	if (!why)
		return 0;
	char shown[128];
	msv_sanitize(shown, sizeof(shown), addr, strlen(addr));
	cli_err("invalid %s address \"%s\": %s", flag, shown, why);
	return EX_DATAERR;
}

static int upper_copy(char *dst, size_t n, const char *src)
{
	size_t l = strlen(src);
	if (l >= n)
		return -1;
	for (size_t i = 0; i <= l; i++)
		dst[i] = (src[i] >= 'a' && src[i] <= 'z') ? (char)(src[i] - 32) : src[i];
	return 0;
}

static int usage_error(const char *fmt, ...) MSV_PRINTF(1, 2);
static int usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("missive: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputs(" (see 'missive send --help')\n", stderr);
	va_end(ap);
	return EX_USAGE;
}

static int parse_args(send_args *a, int argc, char **argv)
{
	int c;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":hv", longopts, NULL)) != -1) {
		int64_t ms;
		switch (c) {
		case 'h':
			fputs(send_help, stdout);
			return -1;
		case 'v': a->verbose = 1; break;
		case O_SERVER:
			if (parse_server(a, optarg))
				return usage_error("bad --server '%s': expected HOST, HOST:PORT or [IPV6]:PORT", optarg);
			break;
		case O_TLS:
			if (!strcmp(optarg, "starttls"))
				a->co.smtp.tls = MSV_TLS_STARTTLS;
			else if (!strcmp(optarg, "implicit"))
				a->co.smtp.tls = MSV_TLS_IMPLICIT;
			else if (!strcmp(optarg, "none"))
				a->co.smtp.tls = MSV_TLS_NONE;
			else
				return usage_error("bad --tls '%s': expected starttls, implicit or none", optarg);
			break;
		case O_CA_FILE: a->co.ca_file = optarg; break;
		case O_INSECURE: a->co.insecure = 1; break;
		case O_CLIENT_CERT: a->co.client_cert = optarg; break;
		case O_CLIENT_KEY: a->co.client_key = optarg; break;
		case O_HELO: a->co.smtp.helo = optarg; break;
		case O_TIMEOUT:
			if (parse_seconds(optarg, &ms) || ms > INT32_MAX)
				return usage_error("bad --timeout '%s': expected seconds > 0", optarg);
			a->co.connect_timeout_ms = a->co.command_timeout_ms = a->co.data_timeout_ms = (int)ms;
			break;
		case O_DEADLINE:
			if (parse_seconds(optarg, &ms))
				return usage_error("bad --deadline '%s': expected seconds > 0", optarg);
			a->co.deadline_ms = ms;
			break;
		case O_USER: a->co.smtp.user = optarg; break;
		case O_PASSWORD_FILE: a->password_file = optarg; break;
		case O_PASSWORD_ENV: a->password_env = optarg; break;
		case O_OAUTH_TOKEN_FILE: a->token_file = optarg; break;
		case O_AUTH:
			if (msv_auth_mech_parse(optarg, &a->co.smtp.auth) || a->co.smtp.auth == MSV_AUTH_AUTO)
				return usage_error("bad --auth '%s': expected plain, login, cram-md5 or xoauth2", optarg);
			break;
		case O_ALLOW_PLAINTEXT_AUTH: a->co.smtp.allow_plaintext_auth = 1; break;
		case O_FROM: a->from = optarg; break;
		case O_TO:
		case O_CC:
		case O_BCC:
			if (a->nrcpt == RCPT_MAX)
				return usage_error("more than %s recipients", "10000");
			a->rcpt[a->nrcpt++] = optarg;
			break;
		case O_MESSAGE: a->message = optarg; break;
		case O_DSN_NOTIFY:
			if (upper_copy(a->dsn_notify, sizeof(a->dsn_notify), optarg))
				return usage_error("bad --dsn-notify '%s'", optarg);
			break;
		case O_DSN_RET:
			if (upper_copy(a->dsn_ret, sizeof(a->dsn_ret), optarg) ||
			    (strcmp(a->dsn_ret, "FULL") && strcmp(a->dsn_ret, "HDRS")))
				return usage_error("bad --dsn-ret '%s': expected full or hdrs", optarg);
			break;
		case O_ENVID: a->envid = optarg; break;
		case O_JSON: a->json = 1; break;
		case O_TRACE: a->trace = 1; break;
		case ':':
			return usage_error("%s needs an argument", argv[optind - 1]);
		default:
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	if (!a->server && !a->co.host)
		return usage_error("%s", "--server is required");
	if (!a->from)
		return usage_error("%s", "--from is required");
	if (!a->nrcpt)
		return usage_error("%s", "at least one --to is required");
	int sources = !!a->password_file + !!a->password_env + !!a->token_file;
	if (sources > 1)
		return usage_error("%s", "give only one of --password-file, --password-env, --oauth-token-file");
	if (a->co.smtp.user && !sources)
		return usage_error("%s", "--user needs --password-file, --password-env or --oauth-token-file");
	if (!a->co.smtp.user && sources)
		return usage_error("%s", "a password or token needs --user");
	if (!a->co.port)
		a->co.port = a->co.smtp.tls == MSV_TLS_IMPLICIT ? 465 : a->co.smtp.tls == MSV_TLS_NONE ? 25 : 587;
	if (a->co.smtp.tls == MSV_TLS_NONE && (a->co.ca_file || a->co.insecure || a->co.client_cert))
		return usage_error("%s", "TLS options given with --tls none");
	return 0;
}

static int load_secret(send_args *a)
{
	if (a->password_env) {
		const char *v = getenv(a->password_env);
		if (!v || !*v) {
			cli_err("environment variable %s (from --password-env) is unset or empty", a->password_env);
			return EX_CONFIG;
		}
		a->secret = msv_strdup(v);
		if (!a->secret)
			return EX_OSERR;
	} else if (a->password_file) {
		int rc = cli_read_secret_file(a->password_file, &a->secret, "password file");
		if (rc)
			return rc;
	} else if (a->token_file) {
		int rc = cli_read_secret_file(a->token_file, &a->secret, "OAuth token file");
		if (rc)
			return rc;
		a->co.smtp.auth_token = 1;
	}
	a->co.smtp.secret = a->secret;
	return 0;
}

/* Refuses before connecting what would fail in the middle of DATA. */
static int check_message(const char *msg, size_t len, msv_body_info *info)
{
	msv_body_scan(info, msg, len, 998);
	if (info->nul_line_no) {
		cli_err("message line %zu contains a NUL byte, which SMTP cannot carry", info->nul_line_no);
		return EX_DATAERR;
	}
	if (info->long_line_no) {
		cli_err("message line %zu is longer than 998 octets (RFC 5322 2.1.1); encode the body",
		        info->long_line_no);
		return EX_DATAERR;
	}
	/* The first line must be a header field "name:" (RFC 5322 2.2). */
	size_t i = 0;
	while (i < len && msg[i] > 32 && msg[i] < 127 && msg[i] != ':')
		i++;
	if (!len || i == 0 || i == len || msg[i] != ':') {
		cli_err("the message does not begin with a header field (give a complete RFC 5322 message)");
		return EX_DATAERR;
	}
	return 0;
}

static cJSON *reply_fields(cJSON *o, const msv_smtp_reply *r)
{
	if (r && r->code) {
		cJSON_AddNumberToObject(o, "code", r->code);
		if (r->enhanced[0])
			cJSON_AddStringToObject(o, "enhanced", r->enhanced);
		else
			cJSON_AddNullToObject(o, "enhanced");
		cJSON_AddStringToObject(o, "text", r->text);
	} else {
		cJSON_AddNullToObject(o, "code");
		cJSON_AddNullToObject(o, "enhanced");
		cJSON_AddNullToObject(o, "text");
	}
	return o;
}

static void print_json(const send_args *a, const char *peer, const msv_smtp_txn *t,
                       const msv_error *err, const char *status)
{
	cJSON *root = cJSON_CreateObject();
	cJSON_AddStringToObject(root, "status", status);
	cJSON_AddStringToObject(root, "server", peer);
	cJSON *list = cJSON_AddArrayToObject(root, "recipients");
	for (size_t i = 0; i < a->nrcpt; i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "address", a->rcpt[i]);
		cJSON_AddBoolToObject(o, "accepted", t && t->rcpt[i].accepted);
		reply_fields(o, t ? &t->rcpt[i].reply : NULL);
		cJSON_AddItemToArray(list, o);
	}
	if (t && t->data.code)
		reply_fields(cJSON_AddObjectToObject(root, "data"), &t->data);
	if (err->code) {
		cJSON *e = cJSON_AddObjectToObject(root, "error");
		cJSON_AddStringToObject(e, "class", msv_class_name(err->cls));
		if (err->reply_code)
			cJSON_AddNumberToObject(e, "code", err->reply_code);
		else
			cJSON_AddNullToObject(e, "code");
		if (err->enhanced[0])
			cJSON_AddStringToObject(e, "enhanced", err->enhanced);
		else
			cJSON_AddNullToObject(e, "enhanced");
		cJSON_AddStringToObject(e, "message", err->message);
		cJSON_AddStringToObject(e, "reason", msv_result_name(err->code));
	}
	char *s = cJSON_PrintUnformatted(root);
	if (s)
		puts(s);
	cJSON_free(s);
	cJSON_Delete(root);
}

/* Some but not all recipients accepted: an error describing the refused. */
static void partial_error(msv_error *err, const msv_smtp_txn *t)
{
	const msv_smtp_reply *first = NULL;
	int any_perm = 0;
	for (size_t i = 0; i < t->nrcpt; i++) {
		if (t->rcpt[i].accepted)
			continue;
		if (!first)
			first = &t->rcpt[i].reply;
		if (t->rcpt[i].reply.code >= 500)
			any_perm = 1;
	}
	msv_error_set(err, MSV_E_REFUSED, any_perm ? MSV_CLASS_PERMANENT : MSV_CLASS_TEMPORARY,
	              "%zu of %zu recipients refused; the others accepted the message",
	              t->nrcpt - t->accepted, t->nrcpt);
	if (first) {
		err->reply_code = first->code;
		memcpy(err->enhanced, first->enhanced, sizeof(err->enhanced));
	}
}

static void print_text(const send_args *a, const msv_smtp_txn *t, const msv_error *err)
{
	for (size_t i = 0; t && i < t->nrcpt; i++) {
		const msv_rcpt_result *r = &t->rcpt[i];
		if (r->accepted && !a->verbose)
			continue;
		char shown[300];
		msv_sanitize(shown, sizeof(shown), a->rcpt[i], strlen(a->rcpt[i]));
		fprintf(r->accepted ? stdout : stderr, "missive: %s <%s>: %d%s%s %s\n",
		        r->accepted ? "accepted" : "refused", shown, r->reply.code,
		        r->reply.enhanced[0] ? " " : "", r->reply.enhanced, r->reply.text);
	}
	if (err->code && err->code != MSV_E_REFUSED)
		cli_err("%s", err->message);
	else if (err->code && t && t->accepted)
		cli_err("%s", err->message);
}

static int run(send_args *a)
{
	char *msg = NULL;
	size_t len = 0;
	msv_body_info info;
	int rc = cli_read_file(a->message ? a->message : "-", MESSAGE_MAX, &msg, &len, "message");
	if (!rc)
		rc = check_message(msg, len, &info);
	if (rc) {
		msv_free(msg);
		return rc;
	}
	msv_envelope env = {
		.from = a->from,
		.rcpt = a->rcpt,
		.nrcpt = a->nrcpt,
		.size = info.size,
		.body_8bit = info.has_8bit,
		.dsn_notify = a->dsn_notify[0] ? a->dsn_notify : NULL,
		.dsn_ret = a->dsn_ret[0] ? a->dsn_ret : NULL,
		.envid = a->envid,
	};
	if (a->co.insecure)
		cli_err("warning: TLS certificate verification is disabled (--insecure); "
		        "the connection can be intercepted");
	if (a->trace)
		a->co.smtp.trace = trace_stderr;

	msv_error err;
	msv_error_clear(&err);
	msv_client *c = NULL;
	const msv_smtp_txn *t = NULL;
	msv_result r = msv_client_new(&c, &a->co, &err);
	char peer[300];
	snprintf(peer, sizeof(peer), strchr(a->host, ':') ? "[%s]:%u" : "%s:%u", a->host, a->co.port);
	if (!r)
		r = msv_client_connect(c);
	if (!r) {
		r = msv_client_send(c, &env, msg, len, &t);
	}
	if (r && c)
		err = *msv_client_error(c);
	/* Said only while the session is alive; its outcome changes nothing
	 * about what was sent. */
	if (c)
		(void)msv_client_quit(c);
	if (!r && t && t->accepted < t->nrcpt)
		partial_error(&err, t);

	const char *status = !err.code ? "sent" : (t && t->accepted) ? "partial" : "failed";
	if (a->json)
		print_json(a, peer, t, &err, status);
	else
		print_text(a, t, &err);
	rc = cli_exit_code(&err);
	msv_client_free(c);
	msv_free(msg);
	return rc;
}

int cmd_send(int argc, char **argv)
{
	send_args a;
	memset(&a, 0, sizeof(a));
	msv_client_options init = MSV_CLIENT_OPTIONS_INIT;
	a.co = init;
	a.co.connect_timeout_ms = 30000;
	int rc = parse_args(&a, argc, argv);
	if (rc)
		return rc < 0 ? EX_OK : rc;
	rc = check_address("--from", a.from, 1);
	for (size_t i = 0; !rc && i < a.nrcpt; i++)
		rc = check_address("recipient", a.rcpt[i], 0);
	if (!rc)
		rc = load_secret(&a);
	if (!rc)
		rc = run(&a);
	msv_free_secret(a.secret);
	return rc;
}
