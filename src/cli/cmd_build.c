/* missive build: a MIME message from flags, written to stdout.  The
 * content flags are shared with `missive send` (content.c). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "dkimopts.h"
#include "missive/mime.h"

static const char build_help[] =
	"usage: missive build --from ADDR [--from-name NAME] [--to ADDR ...] --subject TEXT\n"
	"                     (--text FILE|- | --text-body STRING) [options]\n"
	"\n"
	"Writes one MIME message (RFC 5322, CRLF line ends) to standard output.\n"
	"\n"
	"Content (the same flags as 'missive send'):\n"
	"  --from ADDR              author address (From:)\n"
	"  --from-name NAME         its display name (UTF-8)\n"
	"  --to ADDR, --cc ADDR     recipients written in To: and Cc:; repeat for more\n"
	"  --bcc ADDR               accepted for symmetry with send; never written\n"
	"  --reply-to ADDR          Reply-To:; repeat for more\n"
	"  --subject TEXT           Subject: (UTF-8; RFC 2047 encoded where needed)\n"
	"  --text FILE|-            the plain text body (UTF-8)\n"
	"  --text-body STRING       the plain text body, given inline\n"
	"  --html FILE              an HTML body (multipart/alternative, text first)\n"
	"  --attach FILE[:TYPE]     an attachment; TYPE defaults from the extension\n"
	"  --inline FILE:CID        an inline part for <img src=\"cid:CID\"> in the HTML\n"
	"  --header 'Name: value'   any other header field; repeat for more\n"
	"  --message-id ID          Message-ID (default: random @ the From domain)\n"
	"  --date DATE              Date, RFC 5322 (default: now, UTC)\n"
	"\n"
	"Transport (build only; 'send' asks the server):\n"
	"  --8bitmime               the transport has 8BITMIME: 8bit parts allowed\n"
	"  --smtputf8               the transport has SMTPUTF8: UTF-8 headers and addresses\n"
	"  --dkim-key KEY.pem --dkim-selector S --dkim-domain D\n"
	"                           sign with DKIM (repeat the three for dual signing)\n"
	"  -h, --help               this text\n"
	"\n"
	"Exit: 0 written; 64 usage; 65 bad data (a CR or LF in a header value, invalid\n"
	"UTF-8, a malformed address or A-label, a malformed or impossible date, a bad\n"
	"Message-ID); 66 a file missing or unreadable; 74 output error.\n";

enum {
	O_FROM = 1000, O_TO, O_CC, O_BCC, O_8BITMIME, O_SMTPUTF8,
};

static const struct option build_longopts[] = {
	{"from", required_argument, NULL, O_FROM},
	{"to", required_argument, NULL, O_TO},
	{"cc", required_argument, NULL, O_CC},
	{"bcc", required_argument, NULL, O_BCC},
	{"8bitmime", no_argument, NULL, O_8BITMIME},
	{"smtputf8", no_argument, NULL, O_SMTPUTF8},
	{"help", no_argument, NULL, 'h'},
	CLI_CONTENT_LONGOPTS,
	CLI_DKIM_LONGOPTS,
	{NULL, 0, NULL, 0},
};

static int usage_error(const char *msg, const char *arg)
{
	return arg ? cli_usage("build", "%s '%s'", msg, arg) : cli_usage("build", "%s", msg);
}

int cmd_build(int argc, char **argv)
{
	cli_content c;
	int rc = cli_content_init(&c, argc);
	if (rc)
		return rc;
	const char *from = NULL;
	unsigned transport = 0;
	cli_dkim dkim;
	memset(&dkim, 0, sizeof(dkim));
	int opt;
	opterr = 0;
	optind = 1;
	while (!rc && (opt = getopt_long(argc, argv, ":h", build_longopts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			fputs(build_help, stdout);
			cli_content_free(&c);
			return EX_OK;
		case O_FROM: from = optarg; break;
		case O_TO: cli_content_add_addr(&c, CLI_ADDR_TO, optarg); break;
		case O_CC: cli_content_add_addr(&c, CLI_ADDR_CC, optarg); break;
		case O_BCC: cli_content_add_addr(&c, CLI_ADDR_BCC, optarg); break;
		case O_8BITMIME: transport |= MSV_MIME_8BITMIME; break;
		case O_SMTPUTF8: transport |= MSV_MIME_SMTPUTF8; break;
		case ':': rc = usage_error("missing argument for", argv[optind - 1]); break;
		case '?': rc = usage_error("unknown option", argv[optind - 1]); break;
		default: {
			int taken = cli_dkim_opt(&dkim, opt, optarg);
			if (taken > 1)
				rc = taken;
			else if (!taken && cli_content_opt(&c, opt, optarg))
				rc = usage_error("unknown option", argv[optind - 1]);
			break;
		}
		}
	}
	if (!rc && optind < argc)
		rc = usage_error("unexpected argument", argv[optind]);
	if (!rc && !from)
		rc = usage_error("--from is required", NULL);
	const char *missing = rc ? NULL : cli_content_missing(&c);
	if (missing)
		rc = usage_error(missing, NULL);
	if (!rc && app_dkim_given(&dkim))
		rc = cli_dkim_load(&dkim);
	msv_mime_msg *m = NULL;
	if (!rc)
		rc = cli_content_build(&c, from, &m);
	if (!rc)
		rc = cli_content_prepare(m, transport, 0);
	if (!rc && dkim.n) {
		/* DKIM needs the whole message: build it in memory, sign, write */
		msv_buf raw, out;
		msv_error err;
		msv_buf_init(&raw, (size_t)1 << 30);
		msv_buf_init(&out, (size_t)1 << 30);
		if (msv_mime_write_buf(m, &raw)) {
			cli_err("%s", msv_mime_error(m)->message);
			rc = EX_NOINPUT;
		} else if ((rc = cli_dkim_sign(&dkim, raw.data, raw.len, &out, &err))) {
			cli_err("DKIM signing failed: %s", err.message);
		} else if (fwrite(out.data, 1, out.len, stdout) != out.len || fflush(stdout)) {
			cli_err("cannot write the message to stdout");
			rc = EX_IOERR;
		}
		msv_buf_free(&raw);
		msv_buf_free(&out);
	} else if (!rc && msv_mime_write_fd(m, STDOUT_FILENO)) {
		const msv_error *e = msv_mime_error(m);
		cli_err("%s", e->message);
		/* An attachment that cannot be read is the input's fault (66,
		 * app_exit_code()); anything else failed writing stdout. */
		rc = e->code == MSV_E_NO_INPUT ? cli_exit_code(e) : EX_IOERR;
	}
	msv_mime_free(m);
	cli_dkim_free(&dkim);
	cli_content_free(&c);
	return rc;
}
