/* Shared by the missive subcommands.  The CLI is a client of the public
 * API (include/missive/) and of the application layer (src/app), whose
 * errors it prints and maps to sysexits.h codes. */
#ifndef MSV_CLI_H
#define MSV_CLI_H

#include <stddef.h>
#include <sysexits.h>

#include "config.h"
#include "missive/audit.h"
#include "missive/core.h"
#include "missive/mime.h"
#include "missive/queue.h"

/* Errors to sysexits.h codes: app_exit_code() (src/app/exit_code.h). */
int cli_exit_code(const msv_error *e);

/* Prints "missive: " + message to stderr. */
void cli_err(const char *fmt, ...) MSV_PRINTF(1, 2);
/* Prints "missive: MESSAGE (see 'missive CMD --help')"; returns EX_USAGE. */
int cli_usage(const char *cmd, const char *fmt, ...) MSV_PRINTF(2, 3);

/* Reads a whole file ("-" is stdin) up to max bytes.  Returns 0, or an
 * EX_* code after printing why. */
int cli_read_file(const char *path, size_t max, char **out, size_t *len, const char *what);
/* app_config_load() of the --config flag, $MISSIVE_CONFIG or the default
 * file; 0 or an EX_* code after printing why. */
int cli_config_load(app_config *cfg, const char *flag);
/* The flags of a command that takes only --config, --json and --help:
 * -1 to go on (optind at the first argument), else the exit code. */
int cli_config_json_flags(int argc, char **argv, void (*usage)(FILE *f), const char **cfgflag,
                          int *json);
/* app_queue_open(); 0 or an EX_* code after printing why (queue_open.c:
 * it links SQLite, which the sendmail front end never reaches). */
int cli_queue_open(const app_config *cfg, int read_only, msv_queue **q);
/* Records an operator's change in the audit trail (app_audit_operator);
 * the change is made already, so a failure is a warning on stderr. */
void cli_audit(const app_config *cfg, const char *type, const char *qid,
               const msv_audit_field *fields, size_t n);

int cmd_send(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_build(int argc, char **argv);

/* ---- content flags, shared by `missive build` and `missive send` (cmd_build.c) ---- */

/* getopt codes, clear of each command's own. */
enum {
	CLI_O_FROM_NAME = 2000, CLI_O_SUBJECT, CLI_O_TEXT, CLI_O_TEXT_BODY, CLI_O_HTML,
	CLI_O_ATTACH, CLI_O_INLINE, CLI_O_HEADER, CLI_O_MESSAGE_ID, CLI_O_DATE, CLI_O_REPLY_TO,
	CLI_ADDR_TO, CLI_ADDR_CC, CLI_ADDR_BCC, /* recipients, added by the command */
};

/* Entries for a struct option array (include <getopt.h>). */
#define CLI_CONTENT_LONGOPTS                                       \
	{"from-name", required_argument, NULL, CLI_O_FROM_NAME},       \
	{"subject", required_argument, NULL, CLI_O_SUBJECT},           \
	{"text", required_argument, NULL, CLI_O_TEXT},                 \
	{"text-body", required_argument, NULL, CLI_O_TEXT_BODY},       \
	{"html", required_argument, NULL, CLI_O_HTML},                 \
	{"attach", required_argument, NULL, CLI_O_ATTACH},             \
	{"inline", required_argument, NULL, CLI_O_INLINE},             \
	{"header", required_argument, NULL, CLI_O_HEADER},             \
	{"message-id", required_argument, NULL, CLI_O_MESSAGE_ID},     \
	{"date", required_argument, NULL, CLI_O_DATE},                 \
	{"reply-to", required_argument, NULL, CLI_O_REPLY_TO}

typedef struct cli_content_item {
	int opt; /* CLI_O_* or CLI_ADDR_*, in command-line order */
	const char *arg;
} cli_content_item;

typedef struct cli_content {
	const char *from_name, *subject, *text_file, *text_body, *html_file, *message_id, *date;
	cli_content_item *items; /* room for one per argument */
	size_t nitems;
	int given; /* a content flag was seen */
} cli_content;

int cli_content_init(cli_content *c, int argc);
void cli_content_free(cli_content *c);
/* 0: handled; 1: not a content flag. */
int cli_content_opt(cli_content *c, int opt, const char *arg);
int cli_content_add_addr(cli_content *c, int kind, const char *addr);
/* A sentence for a usage error when required flags are missing, or NULL. */
const char *cli_content_missing(const cli_content *c);
/* Builds the message (files opened and checked, every field validated).
 * Returns 0 or an EX_* code after printing one line naming the flag. */
int cli_content_build(const cli_content *c, const char *from, msv_mime_msg **out);
/* msv_mime_prepare() with errors printed and mapped to EX_* codes. */
int cli_content_prepare(msv_mime_msg *m, unsigned transport, int for_send);
int cmd_dkim(int argc, char **argv);
int cmd_dsn(int argc, char **argv);
int cmd_sendmail(int argc, char **argv);
int cmd_queue(int argc, char **argv);
/* queue migrate, export, import (cmd_queue_move.c); cmd_queue() hands
 * them over when cli_queue_move_is(). */
int cli_queue_move_is(int argc, char **argv);
int cmd_queue_move(int argc, char **argv);
int cmd_bounce(int argc, char **argv);
int cmd_suppression(int argc, char **argv);
int cmd_key(int argc, char **argv);
int cmd_reputation(int argc, char **argv);
int cmd_oauth2(int argc, char **argv);
int cmd_audit(int argc, char **argv);
/* `missive audit forget ADDRESS` (cmd_audit_forget.c), for cmd_audit. */
int cli_audit_forget(const char *cfgflag, const char *addr, int json);

#endif
