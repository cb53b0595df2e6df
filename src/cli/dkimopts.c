/* DKIM signing flags shared by `missive send` and `missive build`: the
 * parsing, which needs no OpenSSL; the keys are loaded and used in
 * dkimsign.c. */
#include "cli.h"
#include "dkimopts.h"

int cli_dkim_opt(cli_dkim *d, int c, const char *arg)
{
	const char **slot;
	size_t *n;
	switch (c) {
	case CLI_D_KEY: slot = d->key; n = &d->nkey; break;
	case CLI_D_SELECTOR: slot = d->selector; n = &d->nselector; break;
	case CLI_D_DOMAIN: slot = d->domain; n = &d->ndomain; break;
	default: return 0;
	}
	if (*n == CLI_DKIM_MAX) {
		cli_err("at most %d DKIM keys", CLI_DKIM_MAX);
		return EX_USAGE;
	}
	slot[(*n)++] = arg;
	return 1;
}
