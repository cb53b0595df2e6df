/* The light programs, `missive` (light_main.c) and the sendmail front end
 * (sendmail_main.c), link neither OpenSSL nor SQLite: loading them costs
 * more than handing a message to missived (docs/internals/cli.md).  What
 * needs them runs in missive-core, the fully linked program, which they
 * exec: every command but sendmail, and sendmail's queue writing when
 * missived does not take the message.  One copy of the library per
 * process: nothing crosses the exec but argv, the environment and stdin. */
#ifndef MSV_CLI_CORE_EXEC_H
#define MSV_CLI_CORE_EXEC_H

#include "sendmail.h"

#define CLI_CORE_NAME "missive-core"

/* Where a light program looks for missive-core, in this order: beside
 * itself (a build tree; /proc/self/exe, so through a symlink too), at
 * from_self relative to its own directory (the install layout: a
 * relocated prefix), in abs_dir (the configured libexecdir/missive).
 * Each program has its own from_self: bindir and sbindir may differ. */
typedef struct cli_core_where {
	const char *from_self;
	const char *abs_dir;
} cli_core_where;

/* Execs missive-core with argv as it is (argv[0] too: messages still say
 * "missive: ").  Returns only on failure, an EX_* code after printing why:
 * 72 (EX_OSFILE) when no missive-core is installed, naming the paths
 * tried. */
int cli_core_exec(const cli_core_where *where, char **argv);

/* The light programs' cli_sendmail_fallback (payload: a cli_core_where):
 * the message, as read, becomes stdin of `missive-core sendmail
 * --missived-declined=... -i ARGS...`, which writes the queue without
 * asking missived again (sendmail.h); exit codes and messages are then
 * missive-core's own. */
int cli_core_sendmail(app_config *cfg, const app_submit_opts *o, const msv_buf *raw,
                      const cli_sendmail_declined *why, int argc, char **argv, app_submitted *res,
                      int *broken, void *payload);

#endif
