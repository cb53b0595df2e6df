/* Shared by the missive subcommands.  The CLI is a client of the public
 * API: it includes only include/missive/ and this header. */
#ifndef MSV_CLI_H
#define MSV_CLI_H

#include <stddef.h>
#include <sysexits.h>

#include "missive/core.h"

/* One function maps errors to sysexits.h codes, as msmtp's smtp_exitcode. */
int cli_exit_code(const msv_error *e);

/* Prints "missive: " + message to stderr. */
void cli_err(const char *fmt, ...) MSV_PRINTF(1, 2);

/* Reads a whole file ("-" is stdin) up to max bytes.  Returns 0, or an
 * EX_* code after printing why. */
int cli_read_file(const char *path, size_t max, char **out, size_t *len, const char *what);
/* Reads a secret from a file: the first line, without its line end. */
int cli_read_secret_file(const char *path, char **out, const char *what);

int cmd_send(int argc, char **argv);

#endif
