/* `missive sendmail` and the sendmail(8) front end share the command line
 * and the socket path (cmd_sendmail.c); they differ in what happens when
 * missived does not take the message:
 *   missive           writes the queue itself (sendmail_queue.c, SQLite);
 *   missive-sendmail  execs missive to do it (sendmail_main.c), so that it
 *                     links neither SQLite nor OpenSSL.
 * docs/internals/cli.md. */
#ifndef MSV_CLI_SENDMAIL_H
#define MSV_CLI_SENDMAIL_H

#include "cli.h"
#include "submit.h"

/* The message raw (as read: the dot rule applied), the sendmail arguments
 * argv[1..argc-1].  Returns an EX_* code after printing why; sets *broken
 * when the installation is at fault (no queue was tried: the caller keeps
 * the code instead of asking to try again). */
typedef int cli_sendmail_fallback(app_config *cfg, const app_submit_opts *o, const msv_buf *raw,
                                  int argc, char **argv, app_submitted *res, int *broken);

/* The sendmail command line; argv[0] is the command's name. */
int cli_sendmail(int argc, char **argv, cli_sendmail_fallback *fallback);

#endif
