/* missive sendmail: the sendmail(8) command line that PHP, cron, git
 * send-email and mail(1) call.  The message on stdin goes to missived
 * through its submission socket, or, when no missived answers there,
 * into the queue directly (sendmail.h: by missive-core itself, or by the
 * light missive and the front end exec'ing missive-core); exit 0 means it
 * is durable in the queue either way. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"
#include "sendmail.h"
#include "sendmail_wire.h"

#define SENDMAIL_MAX APP_MESSAGE_MAX
/* How long to wait for missived's answer before writing the queue here. */
#define ANSWER_TIMEOUT_S 120

static void usage(FILE *f)
{
	fputs("usage: missive sendmail [-t] [-i|-oi] [-f ADDR] [-F NAME] [--config FILE] [--] [RCPT...]\n"
	      "\n"
	      "Reads a message on stdin and puts it in missived's queue.  Exits 0 only once\n"
	      "the message is durable there, whether or not missived is running: through\n"
	      "missived's submission socket ([daemon] socket) when it answers, else straight\n"
	      "into the queue file.\n"
	      "\n"
	      "  -t             recipients from the To, Cc and Bcc fields (added to RCPT...);\n"
	      "                 Bcc fields are removed from the message\n"
	      "  -i, -oi        a line with a single dot does not end the message\n"
	      "  -f ADDR        envelope sender; -f '<>' for none.  Default: the From address\n"
	      "                 for root and [submission] trusted-users, else USER@myhostname;\n"
	      "                 -f from others adds an X-Authentication-Warning field\n"
	      "  -F NAME        display name for the From field when the message has none\n"
	      "  -N DSN         DSN NOTIFY: never, or success,failure,delay (default: the route's)\n"
	      "  -R RET         DSN RET: full or hdrs\n"
	      "  -V ENVID       DSN envelope ID (default: the queue ID when a DSN is asked for)\n"
	      "  --config FILE  configuration (default $MISSIVE_CONFIG, else " APP_CONFIG_DEFAULT ")\n"
	      "  --allow-suppressed  queue even to addresses on the suppression list\n"
	      "  -v             print the queue ID\n"
	      "  --json         print {\"id\": QUEUE-ID, \"recipients\": N} on success\n"
	      "  -h, --help     this text\n"
	      "Accepted and ignored for compatibility: -odi -odb -oem -oee -om -B TYPE -bm -U\n"
	      "-G -h N -L TAG -X FILE and other -oX.  At most [submission] max-recipients.\n"
	      "\n"
	      "Missing Date, Message-ID and From fields are added; line ends become CRLF; the\n"
	      "route's DKIM keys sign the message.\n"
	      "Exit codes: 0 queued, 64 usage, 65 bad message or address, 67 no user name\n"
	      "for the sender, 72 no missive-core installed to write the queue with,\n"
	      "73 queue not writable (no socket configured), 75 try again\n"
	      "(missived busy or down and the queue not writable here), 77 a recipient is\n"
	      "suppressed, 78 configuration error.\n",
	      f);
}

/* Reads stdin; without -i a line holding only "." ends the message.  Octet
 * by octet, not fgets() + strlen(): that cut a line at a NUL octet and
 * queued the rest of the message without it, instead of refusing it. */
static int read_message(int dot_ends, msv_buf *out)
{
	char line[65536];
	size_t n = 0;
	int c, at_start = 1; /* line[] begins at the start of a line */
	for (;;) {
		c = getc_unlocked(stdin);
		if (c != EOF)
			line[n++] = (char)c;
		if (c != EOF && c != '\n' && n < sizeof(line))
			continue;
		if (dot_ends && at_start && n && line[0] == '.' &&
		    (n == 1 || (n == 2 && line[1] == '\n') || (n == 3 && !memcmp(line + 1, "\r\n", 2))))
			break;
		if (n && msv_buf_add(out, line, n)) {
			cli_err("sendmail: the message is larger than %u bytes", SENDMAIL_MAX);
			return EX_DATAERR;
		}
		at_start = !n || line[n - 1] == '\n';
		n = 0;
		if (c == EOF)
			break;
	}
	if (ferror(stdin)) {
		cli_err("sendmail: cannot read the message from stdin");
		return EX_IOERR;
	}
	return 0;
}

/* Hands the message to missived.  -1 when missived did not take it:
 * nothing listens, it went away before answering (the caller writes the
 * queue itself: a message is queued twice rather than lost), or it
 * answered 75, busy (why says so).  Otherwise missived's answer, an EX_*
 * code, with res filled or the error printed. */
static int via_missived(const app_config *cfg, const app_submit_opts *o, const msv_buf *raw,
                        app_submitted *res, int *refused, char *busy, size_t busysz)
{
	if (!*cfg->socket_path)
		return -1;
	struct sockaddr_un sa;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, cfg->socket_path, strlen(cfg->socket_path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		if (errno == EACCES || errno == EPERM)
			*refused = errno;
		close(fd);
		return -1;
	}
	struct timeval tv = {ANSWER_TIMEOUT_S, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	msv_buf b;
	msv_buf_init(&b, SENDMAIL_MAX + (1u << 20));
	int rc = -1, got = 0;
	char error[MSV_TEXT_MAX], why[256];
	/* Read the answer even when sending failed: missived answers a request
	 * it refuses early (too many recipients, busy) and closes without
	 * reading the rest, and that answer is still there to read. */
	if (!app_wire_request(&b, o, raw->data, raw->len)) {
		int sent = !app_wire_send(fd, b.data, b.len);
		if (sent)
			shutdown(fd, SHUT_WR);
		b.len = 0;
		while (!got && !msv_buf_reserve(&b, 4096)) {
			ssize_t n = read(fd, b.data + b.len, b.cap - b.len);
			if (n <= 0)
				break;
			b.len += (size_t)n;
			got = app_wire_reply_decode(b.data, b.len, &rc, res, error, sizeof(error), why,
			                            sizeof(why));
		}
	}
	close(fd);
	msv_buf_free(&b);
	if (got < 0)
		cli_err("sendmail: missived's answer: %s; writing the queue directly", why);
	if (got <= 0)
		return -1;
	/* Busy: write the queue ourselves.  Over a limit (also 75): never,
	 * that would step around it; the caller tries again later. */
	if (rc == EX_TEMPFAIL && res->failed != APP_SUBMIT_ADMIT) {
		snprintf(busy, busysz, "%s", error);
		return -1;
	}
	if (rc)
		cli_err("sendmail: %s", error);
	return rc;
}

/* What the command line asks for. */
typedef struct sendmail_args {
	app_submit_opts o;
	const char *cfgflag;
	int dot_ends, verbose, json;
	cli_sendmail_declined declined; /* --missived-declined (sendmail.h) */
	int was_declined;
} sendmail_args;

/* --missived-declined=REFUSED:BUSY, from a light program; 0 or -1. */
static int parse_declined(sendmail_args *s, const char *v)
{
	int refused = 0;
	for (; *v >= '0' && *v <= '9' && refused < 100000; v++)
		refused = refused * 10 + (*v - '0');
	if (*v != ':')
		return -1;
	s->declined.refused = refused;
	s->declined.busy = v + 1;
	s->was_declined = 1;
	return 0;
}

/* One flag a, its value val (NULL for none) already taken.  -1 to go on,
 * else the code to exit with (0: --help was printed). */
static int sendmail_flag(sendmail_args *s, const char *a, const char *val)
{
	char f = a[1];
	if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
		usage(stdout);
		return EX_OK;
	} else if (!strcmp(a, "--allow-suppressed")) {
		s->o.allow_suppressed = 1;
	} else if (!strcmp(a, "--json")) {
		s->json = 1;
	} else if (!strcmp(a, "-t")) {
		s->o.extract = 1;
	} else if (!strcmp(a, "-i") || !strcmp(a, "-oi")) {
		s->dot_ends = 0;
	} else if (!strcmp(a, "-v")) {
		s->verbose = 1;
	} else if (f == 'f' || f == 'r') {
		s->o.sender = val;
	} else if (f == 'F') {
		s->o.from_name = val;
	} else if (f == 'N') {
		s->o.dsn_notify = val;
	} else if (f == 'R') {
		s->o.dsn_ret = val;
	} else if (f == 'V') {
		s->o.envid = val;
	} else if (val || !strcmp(a, "-bm") || !strcmp(a, "-U") || !strcmp(a, "-G") ||
	           !strncmp(a, "-o", 2) || !strncmp(a, "-A", 2)) {
		return -1; /* accepted for compatibility */
	} else if (!strncmp(a, "-b", 2)) {
		cli_err("sendmail: mode %s is not supported (only -bm, delivering mail); "
		        "use 'missive queue' to inspect the queue", a);
		return EX_USAGE;
	} else {
		cli_err("sendmail: unknown option %s (see 'missive sendmail --help')", a);
		return EX_USAGE;
	}
	return -1;
}

/* Reads the flags into s and the recipients into s->o.  -1 to go on, else
 * the code to exit with. */
static int sendmail_args_parse(sendmail_args *s, int argc, char **argv)
{
	int i, rc;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (a[0] != '-' || !strcmp(a, "-"))
			break;
		if (!strcmp(a, "--")) {
			i++;
			break;
		}
		/* Flags that take a value: "-f ADDR" or "-fADDR". */
		const char *val = NULL;
		char f = a[1];
		if (a[1] && a[1] != '-' && strchr("fFrBLNRVX", f)) {
			val = a[2] ? a + 2 : (i + 1 < argc ? argv[++i] : NULL);
			if (!val) {
				cli_err("sendmail: -%c needs a value (see 'missive sendmail --help')", f);
				return EX_USAGE;
			}
		}
		/* sendmail's -hN (hop count) is not a request for help: -h 17 printed
		 * this text and exited 0 with the message dropped. */
		if (a[1] == 'h' && (a[2] ? a[2] >= '0' && a[2] <= '9'
		                         : i + 1 < argc && argv[i + 1][0] >= '0' && argv[i + 1][0] <= '9')) {
			i += !a[2];
			continue;
		}
		if (!strncmp(a, CLI_SENDMAIL_DECLINED, sizeof(CLI_SENDMAIL_DECLINED) - 1)) {
			if (parse_declined(s, a + sizeof(CLI_SENDMAIL_DECLINED) - 1)) {
				cli_err("sendmail: bad %s", a);
				return EX_USAGE;
			}
		} else if (!strcmp(a, "--config") || !strncmp(a, "--config=", 9)) {
			s->cfgflag = a[8] ? a + 9 : (i + 1 < argc ? argv[++i] : NULL);
			if (!s->cfgflag) {
				cli_err("sendmail: --config needs a file");
				return EX_USAGE;
			}
		} else if ((rc = sendmail_flag(s, a, val)) >= 0) {
			return rc;
		}
	}
	s->o.rcpt = (const char *const *)argv + i;
	s->o.nrcpt = (size_t)(argc - i);
	return -1;
}

/* Reads the message and puts it in the queue: through missived (unless a
 * light program asked it already), else through fallback.  An EX_* code,
 * after printing why. */
static int sendmail_submit(app_config *cfg, const sendmail_args *s, int argc, char **argv,
                           cli_sendmail_fallback *fallback, void *payload, app_submitted *res)
{
	msv_buf raw;
	msv_buf_init(&raw, SENDMAIL_MAX);
	int rc, refused = s->declined.refused;
	char busy[MSV_TEXT_MAX];
	snprintf(busy, sizeof(busy), "%s", s->declined.busy ? s->declined.busy : "");
	if (s->o.nrcpt > cfg->max_recipients) {
		cli_err("sendmail: too many recipients: more than [submission] max-recipients (%u)",
		        cfg->max_recipients);
		rc = EX_DATAERR;
	} else if (!(rc = read_message(s->dot_ends, &raw)) &&
	           (rc = s->was_declined ? -1
	                                 : via_missived(cfg, &s->o, &raw, res, &refused, busy,
	                                                sizeof(busy))) < 0) {
		int broken = 0;
		cli_sendmail_declined why = {refused, busy};
		rc = fallback(cfg, &s->o, &raw, &why, argc, argv, res, &broken, payload);
		if (rc && refused) /* the real reason this user could not submit */
			cli_err("sendmail: missived's socket %s: %s", cfg->socket_path, strerror(refused));
		/* missived could not take it and this user cannot write the queue:
		 * 75, so that cron, PHP and MTAs keep the message and try again,
		 * never a code that reads as "this will never work" (issue 12).
		 * A fault of the message itself keeps its own code, and so does
		 * a missing missive-core (72: the installation is broken). */
		if (rc && !broken && *cfg->socket_path &&
		    (!res->failed || res->failed == APP_SUBMIT_QUEUE)) {
			if (*busy)
				cli_err("sendmail: %s (and this user cannot write the queue %s)", busy,
				        cfg->queue_path);
			else
				cli_err("sendmail: missived did not take the message and this user cannot "
				        "write the queue %s: try again later", cfg->queue_path);
			rc = EX_TEMPFAIL;
		}
	}
	msv_buf_free(&raw);
	return rc;
}

int cli_sendmail(int argc, char **argv, cli_sendmail_fallback *fallback, void *payload)
{
	sendmail_args s = {.dot_ends = 1};
	int rc = sendmail_args_parse(&s, argc, argv);
	if (rc >= 0)
		return rc;
	app_config cfg;
	rc = cli_config_load(&cfg, s.cfgflag);
	if (rc) {
		app_config_free(&cfg);
		return rc;
	}
	app_submitted res;
	memset(&res, 0, sizeof(res));
	/* Straight into the queue, this is the user who submits (missived
	 * takes it from the socket instead, never from the request). */
	char user[256];
	app_local_user(&s.o, (long)getuid(), user, sizeof(user));
	rc = sendmail_submit(&cfg, &s, argc, argv, fallback, payload, &res);
	if (!rc && s.json)
		printf("{\"id\": \"%s\", \"recipients\": %zu}\n", res.id, res.nrcpt);
	else if (!rc && s.verbose)
		printf("queued as %s for %zu recipient%s\n", res.id, res.nrcpt, res.nrcpt == 1 ? "" : "s");
	msv_free(res.message_id);
	app_config_free(&cfg);
	return rc;
}
