/*
 * The oauth2-* route keys and flags (conn.h), parsed without linking the
 * token source (conn_oauth2_src.c makes it): the light programs parse
 * routes too and must load neither libcurl nor OpenSSL.
 */
#include <string.h>

#include "conn.h"

int app_conn_oauth2_set(app_conn *cc, const char *key, const char *v, msv_error *err)
{
	const char *flag = key;
	if (!strncmp(key, "--", 2))
		key += 2;
	if (strncmp(key, "oauth2-", 7))
		return 0;
	app_oauth2_keys *k = &cc->oauth2;
	const char *name = key + 7;
	const char **str = !strcmp(name, "token-url")              ? &k->token_url
	                   : !strcmp(name, "client-id")            ? &k->client_id
	                   : !strcmp(name, "client-secret-file")   ? &k->client_secret_file
	                   : !strcmp(name, "refresh-token-file")   ? &k->refresh_token_file
	                   : !strcmp(name, "scope")                ? &k->scope
	                   : !strcmp(name, "service-account-file") ? &k->service_account_file
	                   : !strcmp(name, "subject")              ? &k->subject
	                   : !strcmp(name, "provider")             ? &k->provider
	                   : !strcmp(name, "device-url")           ? &k->device_url
	                                                           : NULL;
	if (!str)
		return 0;
	msv_oauth2_preset p;
	if (str == &k->provider && msv_oauth2_preset_get(v, &p)) {
		msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE, "bad %s '%s': expected google or microsoft",
		              flag, v);
		return -1;
	}
	*str = v;
	return 1;
}

int app_conn_oauth2_given(const app_conn *cc)
{
	const app_oauth2_keys *k = &cc->oauth2;
	return k->token_url || k->client_id || k->client_secret_file || k->refresh_token_file ||
	       k->scope || k->service_account_file || k->subject || k->provider || k->device_url;
}

const char *app_conn_oauth2_device_url(const app_conn *cc)
{
	msv_oauth2_preset p;
	if (cc->oauth2.device_url)
		return cc->oauth2.device_url;
	return msv_oauth2_preset_get(cc->oauth2.provider, &p) ? NULL : p.device_url;
}
