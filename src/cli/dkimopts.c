/* DKIM flags to app_dkim_set() (dkimopts.h): the parsing, which needs no
 * OpenSSL; loading and signing are in dkimopts_load.c. */
#include <string.h>

#include "cli.h"
#include "dkimopts.h"

static const struct option dkim_flags[] = {CLI_DKIM_LONGOPTS, {NULL, 0, NULL, 0}};

int cli_dkim_opt(cli_dkim *d, int c, const char *arg)
{
	for (const struct option *o = dkim_flags; o->name; o++) {
		if (o->val != c)
			continue;
		msv_error err;
		if (app_dkim_set(d, o->name, arg, &err) < 0) {
			cli_err("%s", err.message);
			return EX_USAGE;
		}
		return 1;
	}
	return 0;
}
