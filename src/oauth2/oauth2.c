/*
 * The token source (missive/oauth2.h): settings, the grants, the cache
 * shared by a route's connections, and the rotation write-back.
 *
 * Locking: o->lock guards the cache, the redactor and the refresh state.
 * A refresh runs without the lock (it waits on the network); the callers
 * that need a token meanwhile wait on o->done and take its result, so an
 * expiry costs one request whatever the number of connections.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/core_int.h"
#include "oauth2_int.h"

#define GOOGLE_TOKEN_URL "https://oauth2.googleapis.com/token" /* a key file without token_uri */


int64_t msv__oauth2_now(const msv_oauth2 *o)
{
	return o->o.clock ? o->o.clock(o->o.clock_payload) : msv_now_ms();
}

void msv_oauth2_free(msv_oauth2 *o)
{
	if (!o)
		return;
	pthread_mutex_destroy(&o->lock);
	pthread_cond_destroy(&o->done);
	msv_free(o->token_url);
	msv_free(o->client_id);
	msv_free_secret(o->client_secret);
	msv_free(o->refresh_token_file);
	msv_free(o->scope);
	msv_free(o->subject);
	msv_free(o->ca_file);
	msv__oauth2_sa_free(&o->sa);
	msv_free_secret(o->token);
	msv_free_secret(o->prev_token);
	msv_free_secret(o->refresh);
	msv_free_secret(o->prev_refresh);
	msv_redactor_free(o->redact);
	msv_free(o);
}

msv_oauth2_grant msv_oauth2_grant_get(const msv_oauth2 *o)
{
	return o->grant;
}

/* Rebuilt from what is current, so it never fills up however many
 * tokens a long-lived daemon sees.  Lock held (or not yet shared). */
msv_result msv__oauth2_relearn(msv_oauth2 *o)
{
	msv_redactor *r;
	msv_result rc = msv_redactor_new(&r);
	const char *secrets[] = {o->client_secret, o->token, o->prev_token, o->refresh, o->prev_refresh};
	for (size_t i = 0; !rc && i < sizeof(secrets) / sizeof(secrets[0]); i++)
		if (secrets[i])
			rc = msv_redactor_add(r, secrets[i], strlen(secrets[i]));
	if (rc) {
		msv_redactor_free(r);
		return rc;
	}
	msv_redactor_free(o->redact);
	o->redact = r;
	return MSV_OK;
}

static int dup_all(msv_oauth2 *o, const msv_oauth2_options *opts)
{
	const char *src[] = {opts->token_url, opts->client_id, opts->client_secret,
	                     opts->refresh_token_file, opts->scope, opts->subject, opts->ca_file};
	char **dst[] = {&o->token_url, &o->client_id, &o->client_secret, &o->refresh_token_file,
	                &o->scope, &o->subject, &o->ca_file};
	for (size_t i = 0; i < sizeof(src) / sizeof(src[0]); i++)
		if (src[i] && *src[i] && !(*dst[i] = msv_strdup(src[i])))
			return -1;
	return 0;
}

/* The grant follows from what is configured (oauth2.h). */
static msv_result pick_grant(msv_oauth2 *o, const msv_oauth2_options *opts, msv_error *err)
{
	if (opts->service_account_json) {
		msv_result r = msv__oauth2_sa_load(&o->sa, opts->service_account_json,
		                                   strlen(opts->service_account_json), err);
		if (r)
			return r;
		o->grant = MSV_OAUTH2_JWT_BEARER;
		if (!o->token_url && !(o->token_url = msv_strdup(o->sa.token_uri ? o->sa.token_uri
		                                                                  : GOOGLE_TOKEN_URL)))
			return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
	} else if (o->refresh_token_file) {
		o->grant = MSV_OAUTH2_REFRESH;
		if (!o->client_id)
			return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
			                     "oauth2-refresh-token-file needs oauth2-client-id");
	} else if (o->client_id && o->client_secret) {
		o->grant = MSV_OAUTH2_CLIENT_CREDENTIALS;
	} else {
		return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
		                     "OAuth2 needs oauth2-service-account-file, oauth2-refresh-token-file, "
		                     "or oauth2-client-id with oauth2-client-secret-file");
	}
	if (!o->token_url)
		return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
		                     "OAuth2 needs oauth2-token-url or oauth2-provider");
	if (msv__http_url_ok(&o->http, o->token_url))
		return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
		                     "oauth2-token-url %s: only https:// URLs are allowed", o->token_url);
	return MSV_OK;
}

msv_result msv_oauth2_new(msv_oauth2 **out, const msv_oauth2_options *opts, msv_error *err)
{
	if (!msv__version_ok(opts->version, MSV_OAUTH2_OPTIONS_VERSION))
		return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE,
		                     "msv_oauth2_options: version %u is not between 1 and %u",
		                     opts->version, MSV_OAUTH2_OPTIONS_VERSION);
	msv_oauth2 *o = msv_calloc(1, sizeof(*o));
	if (!o)
		return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
	if (pthread_mutex_init(&o->lock, NULL) || pthread_cond_init(&o->done, NULL)) {
		msv_free(o);
		return msv_error_set(err, MSV_E_SYSTEM, MSV_CLASS_LOCAL, "cannot create a lock");
	}
	o->o = *opts;
	if (dup_all(o, opts) || msv__oauth2_relearn(o)) {
		msv_oauth2_free(o);
		return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
	}
	o->http.ca_file = o->ca_file;
	o->http.connect_timeout_ms = opts->connect_timeout_ms;
	o->http.timeout_ms = opts->timeout_ms;
	o->http.allow_loopback_http = opts->allow_loopback_http;
	msv_result r = pick_grant(o, opts, err);
	if (r) {
		msv_oauth2_free(o);
		return r;
	}
	*out = o;
	return MSV_OK;
}

msv_result msv_oauth2_redact(msv_oauth2 *o, msv_buf *out, const char *text, size_t n)
{
	pthread_mutex_lock(&o->lock);
	msv_result r = msv_redact(o->redact, out, text, n);
	pthread_mutex_unlock(&o->lock);
	return r;
}
