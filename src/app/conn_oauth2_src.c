/*
 * A route's token source from its oauth2-* keys (conn.h): the secret
 * files read with the secret-file rules, the grant following from the
 * keys (missive/oauth2.h).  Apart from conn.c and conn_oauth2.c, which
 * the light programs link: this file brings libcurl and OpenSSL.
 */
#include <string.h>

#include "conn.h"
#include "secret_file.h"

#define DEFAULT_JWT_SCOPE "https://mail.google.com/" /* service accounts are Google's */

/* The secret files: read (and so checked) now, so a bad mode fails at
 * start, not at the first refresh. */
static msv_result read_secrets(const app_conn *cc, int for_authorize, char **secret, char **sa,
                               msv_error *err)
{
	const app_oauth2_keys *k = &cc->oauth2;
	msv_result r = MSV_OK;
	if (k->client_secret_file)
		r = app_read_secret_file(k->client_secret_file, "oauth2-client-secret-file", secret, err);
	if (!r && k->service_account_file)
		r = app_read_secret_file_all(k->service_account_file, "oauth2-service-account-file", sa,
		                             err);
	if (!r && k->refresh_token_file && !for_authorize) {
		char *rt = NULL;
		r = app_read_secret_file(k->refresh_token_file, "oauth2-refresh-token-file", &rt, err);
		msv_free_secret(rt);
	}
	return r;
}

msv_result app_conn_oauth2_new(const app_conn *cc, int for_authorize, msv_oauth2 **out,
                               msv_error *err)
{
	const app_oauth2_keys *k = &cc->oauth2;
	msv_oauth2_options o = MSV_OAUTH2_OPTIONS_INIT;
	msv_oauth2_preset p;
	int preset = k->provider && !msv_oauth2_preset_get(k->provider, &p);
	o.token_url = k->token_url ? k->token_url : preset ? p.token_url : NULL;
	o.client_id = k->client_id;
	o.refresh_token_file = k->refresh_token_file;
	o.subject = k->subject;
	o.ca_file = cc->co.ca_file;
	o.connect_timeout_ms = cc->co.connect_timeout_ms;
	o.timeout_ms = cc->co.command_timeout_ms;
	/* Client credentials (app-only) ask for the provider's .default. */
	int app_only = !k->refresh_token_file && !k->service_account_file && !for_authorize;
	o.scope = k->scope ? k->scope : preset ? (app_only ? p.app_scope : p.scope) : NULL;
	if (!o.scope && k->service_account_file)
		o.scope = DEFAULT_JWT_SCOPE;
	char *secret = NULL, *sa = NULL;
	msv_result r = read_secrets(cc, for_authorize, &secret, &sa, err);
	if (!r) {
		o.client_secret = secret;
		o.service_account_json = sa;
		r = msv_oauth2_new(out, &o, err);
	}
	msv_free_secret(secret);
	msv_free_secret(sa);
	return r;
}

static void free_src(msv_oauth2 *o)
{
	msv_oauth2_free(o);
}

msv_result app_conn_oauth2_start(app_conn *cc, msv_error *err)
{
	if (!app_conn_oauth2_given(cc) || cc->oauth2_src)
		return MSV_OK;
	/* One source per route: the pool's connections share its cache. */
	msv_result r = app_conn_oauth2_new(cc, 0, &cc->oauth2_src, err);
	if (r)
		return r;
	cc->oauth2_free = free_src;
	cc->co.token = msv_oauth2_token_fn;
	cc->co.token_payload = cc->oauth2_src;
	cc->co.smtp.auth_token = 1;
	return MSV_OK;
}
