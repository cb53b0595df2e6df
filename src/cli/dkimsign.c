/* Loading DKIM keys and signing with them, for the commands that take
 * --dkim-* flags and for routes with DKIM keys. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "dkimopts.h"

static const char *nth(const char *const *v, size_t n, size_t i)
{
	return n == 1 ? v[0] : v[i];
}

int cli_dkim_load(cli_dkim *d)
{
	if (!d->nkey && !d->nselector && !d->ndomain)
		return 0;
	if (!d->nkey || (d->nselector != 1 && d->nselector != d->nkey) ||
	    (d->ndomain != 1 && d->ndomain != d->nkey)) {
		cli_err("each --dkim-key needs a --dkim-selector and a --dkim-domain "
		        "(given once for all keys, or once per key)");
		return EX_USAGE;
	}
	for (size_t i = 0; i < d->nkey; i++) {
		msv_dkim_options o = MSV_DKIM_OPTIONS_INIT;
		o.selector = nth(d->selector, d->nselector, i);
		o.domain = nth(d->domain, d->ndomain, i);
		msv_error err;
		if (access(d->key[i], R_OK)) {
			cli_err("cannot read DKIM key %s: %s", d->key[i], strerror(errno));
			return EX_NOINPUT;
		}
		if (msv_dkim_signer_load(&d->signers[d->n], &o, d->key[i], &err)) {
			cli_err("DKIM key %s: %s", d->key[i], err.message);
			return EX_CONFIG;
		}
		if (msv_dkim_signer_warnings(d->signers[d->n]) & MSV_DKIM_WARN_SHORT_KEY)
			cli_err("warning: DKIM key %s has %u bits; receivers expect at least 2048", d->key[i],
			        msv_dkim_signer_key_bits(d->signers[d->n]));
		d->n++;
	}
	return 0;
}

int cli_dkim_sign(cli_dkim *d, const char *msg, size_t len, msv_buf *out, msv_error *err)
{
	if (d->n) {
		if (!msv_dkim_sign_message(d->signers, d->n, msg, len, 0, out, err))
			return 0;
		return err->code == MSV_E_BAD_MESSAGE ? EX_DATAERR : EX_SOFTWARE;
	}
	if (msv_buf_add(out, msg, len)) {
		msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
		return EX_OSERR;
	}
	return 0;
}

void cli_dkim_free(cli_dkim *d)
{
	for (size_t i = 0; i < d->n; i++)
		msv_dkim_signer_free(d->signers[i]);
	d->n = 0;
}
