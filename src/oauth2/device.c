/*
 * The device authorization grant (RFC 8628): run once by a person, to
 * get the refresh token a user mailbox's route then uses.
 */
#include <string.h>
#include <time.h>

#include "oauth2_int.h"

#define FORM_MAX 8192
#define DEVICE_GRANT "urn:ietf:params:oauth:grant-type:device_code"
#define DEFAULT_INTERVAL_S 5      /* RFC 8628 3.2 */
#define DEFAULT_DEVICE_LIFE_S 1800

static void sleep_s(int64_t s)
{
	struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = 0};
	while (nanosleep(&ts, &ts) == -1)
		;
}

static msv_result request_code(msv_oauth2 *o, const char *url, msv__oauth2_resp *dev,
                               msv_error *err)
{
	msv_buf form;
	msv_buf_init(&form, FORM_MAX);
	msv_result r = msv__form_add(&form, "client_id", o->client_id);
	if (!r && o->scope)
		r = msv__form_add(&form, "scope", o->scope);
	if (r) {
		msv_buf_free(&form);
		return msv_error_set(err, r, MSV_CLASS_LOCAL, "cannot build the request");
	}
	long status;
	r = msv__oauth2_post(o, url, form.data, &status, dev, err);
	msv_buf_free(&form);
	if (r)
		return r;
	if (status < 200 || status > 299) {
		r = msv__oauth2_refused(o, status, dev, "device authorization", NULL, err);
		msv__oauth2_resp_free(dev);
		return r;
	}
	if (!dev->device_code || !dev->user_code || !dev->verification_uri) {
		msv__oauth2_resp_free(dev);
		return msv_error_set(err, MSV_E_PROTOCOL, MSV_CLASS_TEMPORARY,
		                     "device endpoint answer lacks device_code, user_code or verification_uri");
	}
	return MSV_OK;
}

/* One poll: 1 still pending (*interval maybe raised), 0 done (f filled),
 * <0 failed (-code, err filled). */
static int poll_once(msv_oauth2 *o, const char *form, int64_t *interval, msv__fetched *f,
                     msv_error *err)
{
	long status;
	msv__oauth2_resp resp;
	msv_result r = msv__oauth2_post(o, o->token_url, form, &status, &resp, err);
	if (r)
		return -(int)r;
	int rc;
	if (status >= 200 && status <= 299) {
		r = msv__oauth2_take(&resp, f, err);
		if (!r && !f->refresh) {
			msv__fetched_free(f);
			r = msv_error_set(err, MSV_E_PROTOCOL, MSV_CLASS_PERMANENT,
			                  "token endpoint gave no refresh_token (is offline access in the scope?)");
		}
		rc = -(int)r;
	} else if (resp.error && !strcmp(resp.error, "authorization_pending")) {
		rc = 1;
	} else if (resp.error && !strcmp(resp.error, "slow_down")) {
		*interval += 5; /* RFC 8628 3.5 */
		rc = 1;
	} else {
		rc = -(int)msv__oauth2_refused(o, status, &resp, "device code", NULL, err);
	}
	msv__oauth2_resp_free(&resp);
	return rc;
}

static msv_result poll_token(msv_oauth2 *o, const msv__oauth2_resp *dev, msv__fetched *f,
                             msv_error *err)
{
	msv_buf form;
	msv_buf_init(&form, FORM_MAX);
	msv_result r = msv__form_add(&form, "grant_type", DEVICE_GRANT);
	if (!r)
		r = msv__form_add(&form, "device_code", dev->device_code);
	if (!r)
		r = msv__form_add(&form, "client_id", o->client_id);
	if (!r && o->client_secret)
		r = msv__form_add(&form, "client_secret", o->client_secret);
	if (r) {
		msv_buf_free_secret(&form);
		return msv_error_set(err, r, MSV_CLASS_LOCAL, "cannot build the request");
	}
	int64_t interval = dev->interval >= 0 ? dev->interval : DEFAULT_INTERVAL_S;
	int64_t life = dev->expires_in > 0 ? dev->expires_in : DEFAULT_DEVICE_LIFE_S;
	msv_deadline until = msv_deadline_in(life * 1000);
	int rc;
	for (;;) {
		sleep_s(interval);
		rc = poll_once(o, form.data, &interval, f, err);
		if (rc <= 0)
			break;
		if (msv_now_ms() >= until) {
			rc = -(int)msv_error_set(err, MSV_E_AUTH_FAILED, MSV_CLASS_PERMANENT,
			                         "the device code expired before it was authorized");
			break;
		}
	}
	msv_buf_free_secret(&form);
	return (msv_result)-rc;
}

msv_result msv_oauth2_device_authorize(msv_oauth2 *o, const char *device_url,
                                       msv_oauth2_prompt_fn prompt, void *payload, msv_error *err)
{
	if (!o->client_id || !o->refresh_token_file || !device_url)
		return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
		                     "the device flow needs oauth2-client-id, oauth2-refresh-token-file "
		                     "and oauth2-device-url (or oauth2-provider)");
	if (msv__http_url_ok(&o->http, device_url))
		return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
		                     "oauth2-device-url %s: only https:// URLs are allowed", device_url);
	msv__oauth2_resp dev;
	msv_result r = request_code(o, device_url, &dev, err);
	if (r)
		return r;
	if (prompt)
		prompt(payload, dev.verification_uri, dev.user_code, dev.verification_uri_complete,
		       dev.expires_in);
	msv__fetched f = {0};
	r = poll_token(o, &dev, &f, err);
	msv__oauth2_resp_free(&dev);
	if (!r)
		r = msv__oauth2_write_secret(o->refresh_token_file, f.refresh, err);
	if (!r) {
		pthread_mutex_lock(&o->lock);
		if ((r = msv__oauth2_store(o, &f)))
			msv_error_set(err, r, MSV_CLASS_LOCAL, "out of memory");
		pthread_mutex_unlock(&o->lock);
	}
	msv__fetched_free(&f);
	return r;
}
