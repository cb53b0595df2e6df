/* --dkim-key/--dkim-selector/--dkim-domain on the commands that produce
 * mail (send, build): repeatable, one signature per key (RSA and Ed25519
 * together for dual signing, RFC 8463). */
#ifndef MSV_CLI_DKIMOPTS_H
#define MSV_CLI_DKIMOPTS_H

#include <getopt.h>

#include "missive/dkim.h"

#define CLI_DKIM_MAX 4

enum { CLI_D_KEY = 4000, CLI_D_SELECTOR, CLI_D_DOMAIN };

#define CLI_DKIM_LONGOPTS                                          \
	{"dkim-key", required_argument, NULL, CLI_D_KEY},              \
	{"dkim-selector", required_argument, NULL, CLI_D_SELECTOR},    \
	{"dkim-domain", required_argument, NULL, CLI_D_DOMAIN}

typedef struct cli_dkim {
	const char *key[CLI_DKIM_MAX], *selector[CLI_DKIM_MAX], *domain[CLI_DKIM_MAX];
	size_t nkey, nselector, ndomain;
	msv_dkim_signer *signers[CLI_DKIM_MAX];
	size_t n;
} cli_dkim;

/* 1 taken, 0 not a DKIM flag, or EX_USAGE after printing why. */
int cli_dkim_opt(cli_dkim *d, int c, const char *arg);
/* Loads the keys.  A single --dkim-selector or --dkim-domain applies to
 * every key.  0 or an EX_* code after printing why. */
int cli_dkim_load(cli_dkim *d);
/* Signs a complete message: out gets the DKIM-Signature field(s) and then
 * the message in the CRLF form that was signed.  Without keys, out gets
 * the message as it is.  0, or an EX_* code with err saying why. */
int cli_dkim_sign(cli_dkim *d, const char *msg, size_t len, msv_buf *out, msv_error *err);
void cli_dkim_free(cli_dkim *d);

#endif
