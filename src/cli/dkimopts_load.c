/* Loading the --dkim-* keys and signing with them (dkimopts.h); they link
 * the signer and OpenSSL, which the sendmail front end never reaches. */
#include "cli.h"
#include "dkimopts.h"

int cli_dkim_load(cli_dkim *d)
{
	msv_error err;
	if (app_dkim_load(d, &err)) {
		cli_err("%s", err.message);
		return err.cls == MSV_CLASS_USAGE   ? EX_USAGE
		       : err.code == MSV_E_SYSTEM   ? EX_NOINPUT
		       : err.code == MSV_E_NOMEM    ? EX_OSERR
		                                    : EX_CONFIG;
	}
	if (d->warning[0])
		cli_err("warning: %s", d->warning);
	return 0;
}

int cli_dkim_sign(cli_dkim *d, const char *msg, size_t len, msv_buf *out, msv_error *err)
{
	if (!app_dkim_sign(d, msg, len, out, err))
		return 0;
	return err->code == MSV_E_BAD_MESSAGE ? EX_DATAERR
	       : err->code == MSV_E_NOMEM      ? EX_OSERR
	                                       : EX_SOFTWARE;
}
