/* missive send: one message over SMTP, now (msmtp-style). */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "batch.h"
#include "cli.h"
#include "connopts.h"
#include "dkimopts.h"
#include "jsonout.h"
#include "missive/mime.h"
#include "missive/smtp.h"

#define MESSAGE_MAX ((size_t)512 << 20)
#define RCPT_MAX 10000

static const char send_help[] =
	"usage: missive send --server HOST[:PORT] --from ADDR --to ADDR [options] [--message FILE|-]\n"
	"       missive send --server HOST[:PORT] --from ADDR --to ADDR [options] --subject TEXT\n"
	"                    (--text FILE|- | --text-body STRING) [content flags]\n"
	"\n"
	"Sends one complete RFC 5322 message (stdin by default) over SMTP, or one built\n"
	"from the content flags (as 'missive build' does).\n"
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
	"  --oauth-token-file FILE  OAuth 2.0 bearer token for OAUTHBEARER or XOAUTH2\n"
	"  --oauth2-*               a token source missive renews ('missive oauth2 --help')\n"
	"  --auth MECH              plain, login, cram-md5, xoauth2, oauthbearer (default:\n"
	"                           the best offered: PLAIN, LOGIN, CRAM-MD5 in that order)\n"
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
	"DKIM (repeat the three for dual RSA + Ed25519 signing):\n"
	"  --dkim-key KEY.pem --dkim-selector S --dkim-domain D\n"
	"\n"
	"Many messages through pooled connections:\n"
	"  --batch FILE.jsonl|-     one message per line: {\"from\", \"to\": [...], \"cc\", \"bcc\",\n"
	"                           \"subject\", \"text\", \"html\", \"attach\": [files]}; a progress\n"
	"                           line on a terminal; with --json one result line per message\n"
	"  --connections N          connections (and messages in flight) for --batch (default 4)\n"
	"\n"
	"Content (instead of --message; see 'missive build --help'):\n"
	"  --from-name NAME, --subject TEXT, --text FILE|-, --text-body STRING, --html FILE,\n"
	"  --attach FILE[:TYPE], --inline FILE:CID, --reply-to ADDR, --header 'Name: value',\n"
	"  --message-id ID, --date DATE.  --to and --cc are written into the headers, --bcc\n"
	"  never; the message uses 8bit and UTF-8 headers only when the server offers\n"
	"  8BITMIME and SMTPUTF8.\n"
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
	"missing (or an --attach, --text or --html file); 77 authentication refused; 78\n"
	"configuration (CA file, password file).\n";

enum {
	O_FROM = 256, O_TO, O_CC, O_BCC, O_MESSAGE, O_DSN_NOTIFY, O_DSN_RET, O_ENVID, O_JSON, O_BATCH,
	O_CONNECTIONS,
};

static const struct option longopts[] = {
	CLI_CONN_LONGOPTS,
	CLI_DKIM_LONGOPTS,
	{"from", required_argument, NULL, O_FROM},
	{"to", required_argument, NULL, O_TO},
	{"cc", required_argument, NULL, O_CC},
	{"bcc", required_argument, NULL, O_BCC},
	{"message", required_argument, NULL, O_MESSAGE},
	{"dsn-notify", required_argument, NULL, O_DSN_NOTIFY},
	{"dsn-ret", required_argument, NULL, O_DSN_RET},
	{"envid", required_argument, NULL, O_ENVID},
	{"json", no_argument, NULL, O_JSON},
	{"batch", required_argument, NULL, O_BATCH},
	{"connections", required_argument, NULL, O_CONNECTIONS},
	{"verbose", no_argument, NULL, 'v'},
	{"help", no_argument, NULL, 'h'},
	CLI_CONTENT_LONGOPTS,
	{NULL, 0, NULL, 0},
};

typedef struct send_args {
	cli_conn cc;   /* server, TLS, auth */
	cli_dkim dkim; /* --dkim-key, ... */
	const char *message, *batch;
	unsigned connections;
	const char *from;
	const char *rcpt[RCPT_MAX];
	int rcpt_kind[RCPT_MAX]; /* CLI_ADDR_TO, _CC or _BCC */
	size_t nrcpt;
	cli_content content; /* --subject, --text, ...: build the message */
	char dsn_notify[64], dsn_ret[8];
	const char *envid;
	int json, verbose;
} send_args;

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
	msv_sanitize_utf8(shown, sizeof(shown), addr, strlen(addr));
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

static int parse_args(send_args *a, int argc, char **argv)
{
	int c;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":hv", longopts, NULL)) != -1) {
		int taken = cli_conn_opt(&a->cc, c, optarg, "send");
		if (!taken)
			taken = cli_dkim_opt(&a->dkim, c, optarg);
		if (taken > 1)
			return taken;
		if (taken)
			continue;
		switch (c) {
		case 'h':
			fputs(send_help, stdout);
			return -1;
		case 'v': a->verbose = 1; break;
		case O_FROM: a->from = optarg; break;
		case O_TO:
		case O_CC:
		case O_BCC:
			if (a->nrcpt == RCPT_MAX)
				return cli_usage("send", "more than %s recipients", "10000");
			a->rcpt_kind[a->nrcpt] = c == O_TO ? CLI_ADDR_TO : c == O_CC ? CLI_ADDR_CC : CLI_ADDR_BCC;
			a->rcpt[a->nrcpt++] = optarg;
			break;
		case O_MESSAGE: a->message = optarg; break;
		case O_DSN_NOTIFY:
			if (upper_copy(a->dsn_notify, sizeof(a->dsn_notify), optarg))
				return cli_usage("send", "bad --dsn-notify '%s'", optarg);
			break;
		case O_DSN_RET:
			if (upper_copy(a->dsn_ret, sizeof(a->dsn_ret), optarg) ||
			    (strcmp(a->dsn_ret, "FULL") && strcmp(a->dsn_ret, "HDRS")))
				return cli_usage("send", "bad --dsn-ret '%s': expected full or hdrs", optarg);
			break;
		case O_ENVID: a->envid = optarg; break;
		case O_JSON: a->json = 1; break;
		case O_BATCH: a->batch = optarg; break;
		case O_CONNECTIONS: {
			char *end;
			long n = strtol(optarg, &end, 10);
			if (!*optarg || *end || n < 1 || n > 1000)
				return cli_usage("send", "bad --connections '%s': expected 1 to 1000", optarg);
			a->connections = (unsigned)n;
			break;
		}
		case ':':
			return cli_usage("send", "%s needs an argument", argv[optind - 1]);
		default:
			if (c != '?' && !cli_content_opt(&a->content, c, optarg))
				break;
			return cli_usage("send", "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return cli_usage("send", "unexpected argument '%s'", argv[optind]);
	if (a->batch) {
		/* every line carries its own sender, recipients and content */
		if (a->from || a->nrcpt || a->message || a->content.given)
			return cli_usage("send", "%s", "--batch takes sender, recipients and content from each line");
		return 0;
	}
	if (!a->from)
		return cli_usage("send", "%s", "--from is required");
	if (!a->nrcpt)
		return cli_usage("send", "%s", "at least one --to is required");
	if (a->content.given && a->message)
		return cli_usage("send", "%s", "--message cannot be combined with content flags "
		                         "(--subject, --text, --html, --attach, ...)");
	if (a->content.given && cli_content_missing(&a->content))
		return cli_usage("send", "%s", cli_content_missing(&a->content));
	return 0;
}

static int check_message(const char *msg, size_t len, msv_body_info *info)
{
	msv_smtp_body_scan(info, msg, len, 998);
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

static void print_json(const send_args *a, const char *peer, const msv_smtp_txn *t,
                       const msv_error *err, const char *status)
{
	cJSON *root = cJSON_CreateObject();
	cJSON_AddStringToObject(root, "status", status);
	cJSON_AddStringToObject(root, "server", peer);
	cJSON *list = cJSON_AddArrayToObject(root, "recipients");
	/* The transaction's own list when there is one: a built message's
	 * envelope has converted (A-label) addresses in header order. */
	size_t n = t ? t->nrcpt : a->nrcpt;
	for (size_t i = 0; i < n; i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "address", t ? t->rcpt[i].address : a->rcpt[i]);
		cJSON_AddBoolToObject(o, "accepted", t && t->rcpt[i].accepted);
		cli_json_reply(o, t ? &t->rcpt[i].reply : NULL);
		cJSON_AddItemToArray(list, o);
	}
	if (t && t->data.code)
		cli_json_reply(cJSON_AddObjectToObject(root, "data"), &t->data);
	if (err->code)
		cli_json_error(root, err);
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
		msv_sanitize_utf8(shown, sizeof(shown), r->address, strlen(r->address));
		fprintf(r->accepted ? stdout : stderr, "missive: %s <%s>: %d%s%s %s\n",
		        r->accepted ? "accepted" : "refused", shown, r->reply.code,
		        r->reply.enhanced[0] ? " " : "", r->reply.enhanced, r->reply.text);
	}
	if (err->code && err->code != MSV_E_REFUSED)
		cli_err("%s", err->message);
	else if (err->code && t && t->accepted)
		cli_err("%s", err->message);
}

/* The transport flags the builder may use: what the server offered. */
static unsigned transport_of(const msv_smtp_caps *caps)
{
	unsigned t = 0;
	if (caps->flags & MSV_CAP_8BITMIME)
		t |= MSV_MIME_8BITMIME;
	if (caps->flags & MSV_CAP_SMTPUTF8)
		t |= MSV_MIME_SMTPUTF8;
	return t;
}

/*
 * One session: connect, send, QUIT, report.  The message is either msg
 * (--message, already checked and signed) or m, built from the content
 * flags: its transfer encodings depend on the server's 8BITMIME and
 * SMTPUTF8, so it is prepared after EHLO, and the envelope takes its
 * converted addresses (A-label domains without SMTPUTF8).  Unsigned, it
 * streams to the server and is never held whole in memory; DKIM needs the
 * whole message first, so a signed one is built into memory once.
 */
static int deliver(send_args *a, const char *msg, size_t len, const msv_body_info *scan,
                   msv_mime_msg *m)
{
	msv_error err;
	msv_error_clear(&err);
	msv_client *c = NULL;
	const msv_smtp_txn *t = NULL;
	int local_rc = 0; /* the message failed on our side, not the server */
	msv_buf raw, signed_msg;
	msv_buf_init(&raw, MESSAGE_MAX);
	msv_buf_init(&signed_msg, MESSAGE_MAX);
	msv_envelope env = {
		.from = a->from,
		.rcpt = a->rcpt,
		.nrcpt = a->nrcpt,
		.size = scan ? scan->size : 0,
		.body_8bit = scan ? scan->has_8bit : 0,
		.dsn_notify = a->dsn_notify[0] ? a->dsn_notify : NULL,
		.dsn_ret = a->dsn_ret[0] ? a->dsn_ret : NULL,
		.envid = a->envid,
	};
	msv_result r = msv_client_new(&c, &a->cc.co, &err);
	if (!r)
		r = msv_client_connect(c);
	if (!r && m) {
		msv_mime_info info;
		if (msv_mime_prepare(m, transport_of(msv_client_caps_get(c))) || msv_mime_info_get(m, &info)) {
			err = *msv_mime_error(m);
			local_rc = err.code == MSV_E_NO_INPUT ? EX_NOINPUT
			           : err.code == MSV_E_NO_SMTPUTF8 ? EX_UNAVAILABLE
			           : err.code == MSV_E_NOMEM ? EX_OSERR : EX_DATAERR;
		} else {
			env.from = msv_mime_sender(m);
			env.rcpt = msv_mime_recipients(m, &env.nrcpt);
			env.size = info.size;
			env.body_8bit = info.body_8bit;
			env.smtputf8 = info.smtputf8;
			if (!a->dkim.n) {
				r = msv_client_send_stream(c, &env, msv_mime_read, m, &t);
				if (r && msv_mime_error(m)->code) {
					/* the stream failed on our side (an attachment changed) */
					err = *msv_mime_error(m);
					local_rc = err.code == MSV_E_NO_INPUT ? EX_NOINPUT : EX_DATAERR;
				}
			} else if (msv_mime_write_buf(m, &raw)) {
				err = *msv_mime_error(m);
				local_rc = EX_NOINPUT;
			} else if (!(local_rc = cli_dkim_sign(&a->dkim, raw.data, raw.len, &signed_msg, &err))) {
				env.size = signed_msg.len;
				r = msv_client_send(c, &env, signed_msg.data, signed_msg.len, &t);
			}
		}
	} else if (!r) {
		r = msv_client_send(c, &env, msg, len, &t);
	}
	if (r && c && !local_rc)
		err = *msv_client_error(c);
	/* Said only while the session is alive; its outcome changes nothing
	 * about what was sent. */
	if (c)
		(void)msv_client_quit(c);
	if (!r && !local_rc && t && t->accepted < t->nrcpt)
		partial_error(&err, t);

	const char *status = !err.code ? "sent" : (t && t->accepted) ? "partial" : "failed";
	if (a->json)
		print_json(a, a->cc.peer, t, &err, status);
	else
		print_text(a, t, &err);
	int rc = local_rc ? local_rc : cli_exit_code(&err);
	msv_client_free(c);
	msv_buf_free(&raw);
	msv_buf_free(&signed_msg);
	return rc;
}

static int run(send_args *a)
{
	if (a->batch)
		return cli_send_batch(&a->cc.co, a->batch, a->connections ? a->connections : 4, a->json,
		                      &a->dkim);
	if (a->content.given) {
		msv_mime_msg *m = NULL;
		for (size_t i = 0; i < a->nrcpt; i++)
			cli_content_add_addr(&a->content, a->rcpt_kind[i], a->rcpt[i]);
		int rc = cli_content_build(&a->content, a->from, &m);
		if (!rc)
			rc = deliver(a, NULL, 0, NULL, m);
		msv_mime_free(m);
		return rc;
	}
	char *msg = NULL;
	size_t len = 0;
	msv_buf signed_msg;
	msv_buf_init(&signed_msg, MESSAGE_MAX);
	msv_body_info info;
	msv_error err;
	int rc = cli_read_file(a->message ? a->message : "-", MESSAGE_MAX, &msg, &len, "message");
	if (!rc)
		rc = check_message(msg, len, &info);
	if (!rc && a->dkim.n) {
		/* sign, then check again what will really be sent */
		if ((rc = cli_dkim_sign(&a->dkim, msg, len, &signed_msg, &err)))
			cli_err("DKIM signing failed: %s", err.message);
		else
			rc = check_message(signed_msg.data, signed_msg.len, &info);
	}
	if (!rc)
		rc = a->dkim.n ? deliver(a, signed_msg.data, signed_msg.len, &info, NULL)
		               : deliver(a, msg, len, &info, NULL);
	msv_buf_free(&signed_msg);
	msv_free(msg);
	return rc;
}

int cmd_send(int argc, char **argv)
{
	send_args a;
	memset(&a, 0, sizeof(a));
	cli_conn_init(&a.cc);
	int rc = cli_content_init(&a.content, argc);
	if (!rc)
		rc = parse_args(&a, argc, argv);
	if (rc) {
		cli_content_free(&a.content);
		return rc < 0 ? EX_OK : rc;
	}
	rc = a.from ? check_address("--from", a.from, 1) : 0;
	for (size_t i = 0; !rc && i < a.nrcpt; i++)
		rc = check_address("recipient", a.rcpt[i], 0);
	if (!rc)
		rc = cli_conn_finish(&a.cc, "send");
	if (!rc)
		rc = cli_dkim_load(&a.dkim);
	if (!rc)
		rc = run(&a);
	cli_dkim_free(&a.dkim);
	cli_conn_free(&a.cc);
	cli_content_free(&a.content);
	return rc;
}
