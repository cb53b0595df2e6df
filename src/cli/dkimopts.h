/* --dkim-key/--dkim-selector/--dkim-domain on the commands that produce
 * mail (send, build): getopt results turned into app_dkim_set() calls,
 * the same keys as a config file's [route] (src/app/dkim_keys.h). */
#ifndef MSV_CLI_DKIMOPTS_H
#define MSV_CLI_DKIMOPTS_H

#include <getopt.h>

#include "dkim_keys.h"

enum { CLI_D_KEY = 4000, CLI_D_SELECTOR, CLI_D_DOMAIN };

#define CLI_DKIM_LONGOPTS                                          \
	{"dkim-key", required_argument, NULL, CLI_D_KEY},              \
	{"dkim-selector", required_argument, NULL, CLI_D_SELECTOR},    \
	{"dkim-domain", required_argument, NULL, CLI_D_DOMAIN}

typedef app_dkim cli_dkim;

/* 1 taken, 0 not a DKIM flag, or EX_USAGE after printing why. */
int cli_dkim_opt(cli_dkim *d, int c, const char *arg);
#define cli_dkim_free app_dkim_free
/* app_dkim_load() and app_dkim_sign() with errors printed (load) and
 * mapped to EX_* codes (dkimopts_load.c).  They link the signer and so
 * OpenSSL. */
int cli_dkim_load(cli_dkim *d);
int cli_dkim_sign(cli_dkim *d, const char *msg, size_t len, msv_buf *out, msv_error *err);

#endif
