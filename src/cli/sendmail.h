/* `missive sendmail` and the sendmail(8) front end share the command line
 * and the socket path (cmd_sendmail.c); they differ in what happens when
 * missived does not take the message:
 *   missive-core      writes the queue itself (sendmail_queue.c, SQLite);
 *   missive and       exec missive-core to do it (core_exec.c), so that
 *   missive-sendmail  they link neither SQLite nor OpenSSL (light_main.c,
 *                     sendmail_main.c).
 * docs/internals/cli.md. */
#ifndef MSV_CLI_SENDMAIL_H
#define MSV_CLI_SENDMAIL_H

#include "cli.h"
#include "submit.h"

/* Why missived did not take the message: refused, the errno of a
 * connect() it refused (EACCES, EPERM), else 0; busy, its answer when it
 * answered 75, else "".  Said only when the queue cannot be written
 * either. */
typedef struct cli_sendmail_declined {
	int refused;
	const char *busy;
} cli_sendmail_declined;

/* The message raw (as read: the dot rule applied), why missived did not
 * take it, the sendmail arguments argv[1..argc-1], payload as given to
 * cli_sendmail().  Returns an EX_* code after printing why; sets *broken
 * when the installation is at fault (no queue was tried: the caller keeps
 * the code instead of asking to try again). */
typedef int cli_sendmail_fallback(app_config *cfg, const app_submit_opts *o, const msv_buf *raw,
                                  const cli_sendmail_declined *why, int argc, char **argv,
                                  app_submitted *res, int *broken, void *payload);

/* Passed by the light programs to `missive-core sendmail` as its first
 * argument, "--missived-declined=REFUSED:BUSY": missived was asked once
 * and did not take the message, so missive-core writes the queue without
 * asking again (a busy missived would only be asked twice, and a
 * submission counted twice by anyone watching the socket), and says why
 * as the light program would have. */
#define CLI_SENDMAIL_DECLINED "--missived-declined="

/* The sendmail command line; argv[0] is the command's name. */
int cli_sendmail(int argc, char **argv, cli_sendmail_fallback *fallback, void *payload);

#endif
