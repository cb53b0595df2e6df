/* The half of dkim_keys.h that needs no OpenSSL: which keys were given,
 * and freeing what app_dkim_load made. */
#include <string.h>

#include "dkim_keys.h"

int app_dkim_set(app_dkim *d, const char *key, const char *value, msv_error *err)
{
	const char **slot;
	size_t *n;
	if (!strcmp(key, "dkim-key")) {
		slot = d->key;
		n = &d->nkey;
	} else if (!strcmp(key, "dkim-selector")) {
		slot = d->selector;
		n = &d->nselector;
	} else if (!strcmp(key, "dkim-domain")) {
		slot = d->domain;
		n = &d->ndomain;
	} else {
		return 0;
	}
	if (*n == APP_DKIM_MAX) {
		msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE, "%s: at most %d DKIM keys", key,
		              APP_DKIM_MAX);
		return -1;
	}
	slot[(*n)++] = value;
	return 1;
}

int app_dkim_given(const app_dkim *d)
{
	return d->nkey || d->nselector || d->ndomain;
}

void app_dkim_free(app_dkim *d)
{
	for (size_t i = 0; i < d->n; i++)
		d->signer_free(d->signers[i]);
	d->n = 0;
}
