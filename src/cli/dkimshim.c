/* dkimopts.h for `missive` itself, which does not link OpenSSL: DKIM keys
 * are loaded and used by the command module, loaded only when a command
 * was given keys. */
#include <string.h>

#include "cli.h"
#include "module.h"

int cli_dkim_load(cli_dkim *d)
{
	if (!d->nkey && !d->nselector && !d->ndomain)
		return 0;
	const cli_module *m = cli_module_get();
	return m ? m->dkim_load(d) : EX_OSFILE;
}

int cli_dkim_sign(cli_dkim *d, const char *msg, size_t len, msv_buf *out, msv_error *err)
{
	if (d->n) /* keys were loaded: the module is */
		return cli_module_get()->dkim_sign(d, msg, len, out, err);
	if (msv_buf_add(out, msg, len)) {
		msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
		return EX_OSERR;
	}
	return 0;
}

void cli_dkim_free(cli_dkim *d)
{
	if (d->n)
		cli_module_get()->dkim_free(d);
}
