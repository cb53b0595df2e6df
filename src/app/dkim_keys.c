/* Loading DKIM keys and signing with them (dkim_keys.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dkim_keys.h"

static const char *nth(const char *const *v, size_t n, size_t i)
{
	return n == 1 ? v[0] : v[i];
}

static int load_one(app_dkim *d, size_t i, msv_error *err)
{
	msv_dkim_options o = MSV_DKIM_OPTIONS_INIT;
	o.selector = nth(d->selector, d->nselector, i);
	o.domain = nth(d->domain, d->ndomain, i);
	if (access(d->key[i], R_OK)) {
		/* MSV_E_SYSTEM: the file, not its content (the CLI exits EX_NOINPUT). */
		msv_error_set(err, MSV_E_SYSTEM, MSV_CLASS_CONFIG, "cannot read DKIM key %s: %s",
		              d->key[i], strerror(errno));
		return -1;
	}
	msv_error e;
	if (msv_dkim_signer_load(&d->signers[d->n], &o, d->key[i], &e)) {
		msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG, "DKIM key %s: %s", d->key[i],
		              e.message);
		return -1;
	}
	msv_dkim_signer *s = d->signers[d->n++];
	if ((msv_dkim_signer_warnings(s) & MSV_DKIM_WARN_SHORT_KEY) && !d->warning[0])
		snprintf(d->warning, sizeof(d->warning),
		         "DKIM key %s has %u bits; receivers expect at least 2048", d->key[i],
		         msv_dkim_signer_key_bits(s));
	return 0;
}

msv_result app_dkim_load(app_dkim *d, msv_error *err)
{
	if (d->n || !app_dkim_given(d))
		return MSV_OK;
	if (!d->nkey || (d->nselector != 1 && d->nselector != d->nkey) ||
	    (d->ndomain != 1 && d->ndomain != d->nkey)) {
		msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE,
		              "each dkim-key needs a dkim-selector and a dkim-domain "
		              "(given once for all keys, or once per key)");
		return MSV_E_INVALID;
	}
	d->signer_free = msv_dkim_signer_free;
	for (size_t i = 0; i < d->nkey; i++) {
		if (load_one(d, i, err)) {
			app_dkim_free(d);
			return err->code;
		}
	}
	return MSV_OK;
}

msv_result app_dkim_sign(app_dkim *d, const char *msg, size_t len, msv_buf *out,
                         msv_error *err)
{
	if (d->n)
		return msv_dkim_sign_message(d->signers, d->n, msg, len, 0, out, err);
	if (msv_buf_add(out, msg, len))
		return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
	return MSV_OK;
}
