/*
 * Asking the token endpoint (RFC 6749 4.4, 6; RFC 7523 2.1) and the
 * cache in front of it (oauth2.c says how the lock is used).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "oauth2_int.h"

#define FORM_MAX 32768
#define DEFAULT_MARGIN_MS 60000
#define DEFAULT_EXPIRES_S 3600 /* RFC 6749 5.1: expires_in is only RECOMMENDED */
#define JWT_GRANT "urn:ietf:params:oauth:grant-type:jwt-bearer"

void msv__fetched_free(msv__fetched *f)
{
	msv_free_secret(f->token);
	msv_free_secret(f->refresh);
	memset(f, 0, sizeof(*f));
}

msv_result msv__oauth2_post(msv_oauth2 *o, const char *url, const char *form, long *status,
                            msv__oauth2_resp *resp, msv_error *err)
{
	msv_buf body;
	msv_buf_init(&body, MSV_OAUTH2_RESP_MAX);
	*status = 0;
	msv_result r = msv__http_post(&o->http, url, form, status, &body, err);
	if (!r) {
		r = msv__oauth2_parse(body.data ? body.data : "", body.len, resp, err);
		/* A proxy's or server's HTML error page: the status says enough. */
		if (r && (*status < 200 || *status > 299)) {
			memset(resp, 0, sizeof(*resp));
			resp->expires_in = resp->interval = -1;
			r = MSV_OK;
		}
	}
	msv_buf_free_secret(&body);
	return r;
}

msv_result msv__oauth2_refused(msv_oauth2 *o, long status, const msv__oauth2_resp *resp,
                               const char *what, const char *extra, msv_error *err)
{
	char raw[MSV_TEXT_MAX];
	snprintf(raw, sizeof(raw), "%s%s%s", resp->error ? resp->error : "",
	         resp->error && resp->error_description ? ": " : "",
	         resp->error_description ? resp->error_description : "");
	msv_redactor *x = NULL;
	msv_buf a, b;
	msv_buf_init(&a, MSV_TEXT_MAX * 4);
	msv_buf_init(&b, MSV_TEXT_MAX * 4);
	if (!msv_redactor_new(&x) && (!extra || !msv_redactor_add(x, extra, strlen(extra))) &&
	    !msv_redact(x, &a, raw, strlen(raw)) && !msv_oauth2_redact(o, &b, a.data, a.len))
		snprintf(raw, sizeof(raw), "%s", b.data);
	else
		snprintf(raw, sizeof(raw), "%s", resp->error ? resp->error : "");
	msv_redactor_free(x);
	msv_buf_free_secret(&a);
	msv_buf_free_secret(&b);
	msv_result code = MSV_E_AUTH_FAILED;
	msv_class cls = MSV_CLASS_PERMANENT;
	if (status == 408 || status == 429 || status >= 500) {
		code = MSV_E_BUSY;
		cls = MSV_CLASS_TEMPORARY;
	} else if (status != 400 && status != 401 && status != 403) {
		code = MSV_E_CONFIG; /* 404 and friends: the URL is wrong */
		cls = MSV_CLASS_CONFIG;
	}
	msv_error_set(err, code, cls, "token endpoint %s refused the %s request (HTTP %ld)%s%s", o->token_url,
	              what, status, *raw ? ": " : "", raw);
	msv_sanitize(err->server_text, sizeof(err->server_text), raw, strlen(raw));
	return code;
}

msv_result msv__oauth2_take(const msv__oauth2_resp *resp, msv__fetched *f, msv_error *err)
{
	memset(f, 0, sizeof(*f));
	if (!resp->access_token || !*resp->access_token)
		return msv_error_set(err, MSV_E_PROTOCOL, MSV_CLASS_TEMPORARY,
		                     "token endpoint answer has no access_token");
	if (strpbrk(resp->access_token, "\001\r\n"))
		return msv_error_set(err, MSV_E_PROTOCOL, MSV_CLASS_TEMPORARY,
		                     "token endpoint answer: access_token holds control characters");
	f->token = msv_strdup(resp->access_token);
	if (resp->refresh_token && *resp->refresh_token)
		f->refresh = msv_strdup(resp->refresh_token);
	if (!f->token || (resp->refresh_token && *resp->refresh_token && !f->refresh)) {
		msv__fetched_free(f);
		return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
	}
	f->expires_in_s = resp->expires_in >= 0 ? resp->expires_in : DEFAULT_EXPIRES_S;
	msv_sanitize(f->scope, sizeof(f->scope), resp->scope ? resp->scope : "",
	             resp->scope ? strlen(resp->scope) : 0);
	msv_sanitize(f->token_type, sizeof(f->token_type), resp->token_type ? resp->token_type : "",
	             resp->token_type ? strlen(resp->token_type) : 0);
	return MSV_OK;
}

static int64_t margin_for(const msv_oauth2 *o, int64_t lifetime_ms)
{
	int64_t m = o->o.margin_ms > 0 ? o->o.margin_ms : DEFAULT_MARGIN_MS;
	/* Short-lived tokens (tests, some providers) keep most of their life. */
	return m > lifetime_ms / 10 ? lifetime_ms / 10 : m;
}

msv_result msv__oauth2_store(msv_oauth2 *o, msv__fetched *f)
{
	int64_t now = msv__oauth2_now(o), life = f->expires_in_s * 1000;
	msv_free_secret(o->prev_token);
	o->prev_token = o->token;
	o->token = f->token;
	f->token = NULL;
	if (f->refresh) {
		msv_free_secret(o->prev_refresh);
		o->prev_refresh = o->refresh;
		o->refresh = msv_strdup(f->refresh);
	}
	o->expires_real = now + life;
	o->expires_at = now + life - margin_for(o, life);
	snprintf(o->scope_granted, sizeof(o->scope_granted), "%s", f->scope);
	snprintf(o->token_type, sizeof(o->token_type), "%s", f->token_type);
	return msv__oauth2_relearn(o);
}

/* The grant's request body; *extra gets the secret it carries that o
 * does not know yet (the JWT), for redaction. */
static msv_result grant_form(msv_oauth2 *o, const char *rt, msv_buf *form, char **extra)
{
	msv_result r = MSV_OK;
	switch (o->grant) {
	case MSV_OAUTH2_REFRESH:
		r = msv__form_add(form, "grant_type", "refresh_token");
		if (!r)
			r = msv__form_add(form, "refresh_token", rt);
		break;
	case MSV_OAUTH2_CLIENT_CREDENTIALS:
		r = msv__form_add(form, "grant_type", "client_credentials");
		break;
	case MSV_OAUTH2_JWT_BEARER: {
		msv_buf jwt;
		msv_buf_init(&jwt, FORM_MAX);
		r = msv__oauth2_jwt(&o->sa, o->token_url, o->scope, o->subject, (int64_t)time(NULL), &jwt);
		if (!r)
			r = msv__form_add(form, "grant_type", JWT_GRANT);
		if (!r)
			r = msv__form_add(form, "assertion", jwt.data);
		if (!r && !(*extra = msv_strdup(jwt.data)))
			r = MSV_E_NOMEM;
		msv_buf_free_secret(&jwt);
		return r; /* the scope is inside the JWT */
	}
	default:
		return MSV_E_INVALID;
	}
	if (!r && o->client_id)
		r = msv__form_add(form, "client_id", o->client_id);
	if (!r && o->client_secret)
		r = msv__form_add(form, "client_secret", o->client_secret);
	if (!r && o->scope)
		r = msv__form_add(form, "scope", o->scope);
	return r;
}

/* One request to the endpoint, without the lock.  *rt: the refresh
 * token it used (the refresh grant), to see whether it was rotated. */
static msv_result fetch(msv_oauth2 *o, msv__fetched *f, char **rt, msv_error *err)
{
	char *extra = NULL;
	msv_buf form;
	msv_buf_init(&form, FORM_MAX);
	msv_result r = MSV_OK;
	if (o->grant == MSV_OAUTH2_REFRESH)
		r = msv__oauth2_read_secret(o->refresh_token_file, rt, err);
	if (!r && (r = grant_form(o, *rt, &form, &extra)))
		msv_error_set(err, r, MSV_CLASS_LOCAL, "cannot build the token request: %s", msv_strerror(r));
	long status = 0;
	msv__oauth2_resp resp;
	if (!r && !(r = msv__oauth2_post(o, o->token_url, form.data, &status, &resp, err))) {
		if (status >= 200 && status <= 299)
			r = msv__oauth2_take(&resp, f, err);
		else
			r = msv__oauth2_refused(o, status, &resp, msv_oauth2_grant_name(o->grant),
			                        extra ? extra : *rt, err);
		msv__oauth2_resp_free(&resp);
	}
	msv_free_secret(extra);
	msv_buf_free_secret(&form);
	return r;
}

/* A rotated refresh token goes to the file before anyone uses the new
 * access token: the old one may already be dead at the provider. */
static msv_result write_back(msv_oauth2 *o, msv__fetched *f, const char *rt, msv_error *err)
{
	if (o->grant != MSV_OAUTH2_REFRESH || !f->refresh || (rt && !strcmp(rt, f->refresh)))
		return MSV_OK;
	return msv__oauth2_write_secret(o->refresh_token_file, f->refresh, err);
}

static msv_result give(msv_oauth2 *o, msv_buf *out, msv_oauth2_info *info, int refreshed)
{
	if (info) {
		memset(info, 0, sizeof(*info));
		info->expires_in_ms = o->expires_real - msv__oauth2_now(o);
		snprintf(info->scope, sizeof(info->scope), "%s", o->scope_granted);
		snprintf(info->token_type, sizeof(info->token_type), "%s", o->token_type);
		info->refreshed = refreshed;
		info->rotated = refreshed && o->last_rotated;
	}
	return msv_buf_addstr(out, o->token);
}

static int valid(const msv_oauth2 *o)
{
	return o->token && msv__oauth2_now(o) < o->expires_at;
}

/* Under the lock: 1 when the caller should refresh, 0 when it has its
 * answer (*rc: MSV_OK with a valid token, or the failure it waited for). */
static int must_refresh(msv_oauth2 *o, int force, msv_result *rc, msv_error *err)
{
	unsigned long seen = o->gen;
	while (o->refreshing)
		pthread_cond_wait(&o->done, &o->lock);
	*rc = MSV_OK;
	if (o->gen != seen) {
		/* Someone asked the endpoint while this caller waited: its
		 * answer is this caller's too, failure included. */
		if (o->last_rc) {
			*err = o->last_err;
			*rc = o->last_rc;
			return 0;
		}
		return !valid(o);
	}
	return force || !valid(o);
}

msv_result msv_oauth2_token(msv_oauth2 *o, int force, msv_buf *out, msv_oauth2_info *info,
                            msv_error *err)
{
	msv_result r;
	pthread_mutex_lock(&o->lock);
	if (!must_refresh(o, force, &r, err)) {
		if (!r)
			r = give(o, out, info, 0);
		pthread_mutex_unlock(&o->lock);
		return r;
	}
	o->refreshing = 1;
	pthread_mutex_unlock(&o->lock);

	msv__fetched f = {0};
	char *rt = NULL;
	r = fetch(o, &f, &rt, err);
	int rotated = !r && o->grant == MSV_OAUTH2_REFRESH && f.refresh && strcmp(rt, f.refresh);
	if (!r)
		r = write_back(o, &f, rt, err);

	pthread_mutex_lock(&o->lock);
	if (!r && (r = msv__oauth2_store(o, &f)))
		msv_error_set(err, r, MSV_CLASS_LOCAL, "cannot keep the token: %s", msv_strerror(r));
	o->last_rotated = rotated;
	o->last_rc = r;
	if (r)
		o->last_err = *err;
	o->refreshing = 0;
	o->gen++;
	pthread_cond_broadcast(&o->done);
	if (!r)
		r = give(o, out, info, 1);
	pthread_mutex_unlock(&o->lock);
	msv__fetched_free(&f);
	msv_free_secret(rt);
	return r;
}

msv_result msv_oauth2_token_fn(void *payload, int force, msv_buf *out, msv_error *err)
{
	return msv_oauth2_token(payload, force, out, NULL, err);
}
