/* The token source's parts (missive/oauth2.h): response parsing, the
 * JWT, the HTTP request, the refresh-token file. */
#ifndef MSV_OAUTH2_INT_H
#define MSV_OAUTH2_INT_H

#include "missive/oauth2.h"

/* Endpoint answers are small JSON objects; anything larger is refused
 * before it is parsed. */
#define MSV_OAUTH2_RESP_MAX 65536

/* One token or device-authorization response (RFC 6749 5.1 and 5.2,
 * RFC 8628 3.2), every field optional; strings owned (freed, the secret
 * ones wiped, by msv__oauth2_resp_free). */
typedef struct msv__oauth2_resp {
	char *access_token;
	char *refresh_token;
	char *token_type;
	char *scope;
	int64_t expires_in; /* seconds; -1 when absent */
	char *error;
	char *error_description;
	char *device_code;
	char *user_code;
	char *verification_uri;
	char *verification_uri_complete;
	int64_t interval; /* seconds; -1 when absent */
} msv__oauth2_resp;

/* Parses json[0..n): MSV_OK when it is a JSON object of at most
 * MSV_OAUTH2_RESP_MAX bytes whose known fields have the right types. */
msv_result msv__oauth2_parse(const char *json, size_t n, msv__oauth2_resp *out, msv_error *err);
void msv__oauth2_resp_free(msv__oauth2_resp *r);

/* A Google service-account key file: client_email, private_key (PEM),
 * token_uri.  Checks the key is RSA. */
typedef struct msv__oauth2_sa {
	char *client_email;
	char *token_uri;
	void *pkey; /* EVP_PKEY */
} msv__oauth2_sa;

msv_result msv__oauth2_sa_load(msv__oauth2_sa *sa, const char *json, size_t n, msv_error *err);
void msv__oauth2_sa_free(msv__oauth2_sa *sa);
/* Appends the signed assertion (RFC 7523 2.1) for aud, scope, sub, valid
 * from now_s for an hour. */
msv_result msv__oauth2_jwt(const msv__oauth2_sa *sa, const char *aud, const char *scope,
                           const char *sub, int64_t now_s, msv_buf *out);
/* base64url without padding (RFC 7515 2). */
msv_result msv__base64url(msv_buf *out, const void *data, size_t n);

/* Writes secret + "\n" to path through path.tmp.XXXXXX: mode 0600,
 * fsync, rename, fsync of the directory. */
msv_result msv__oauth2_write_secret(const char *path, const char *secret, msv_error *err);
/* First line of path, trimmed, into *out (msv_free_secret). */
msv_result msv__oauth2_read_secret(const char *path, char **out, msv_error *err);

/* Appends "k=v" pairs, form-encoded, "&"-separated. */
msv_result msv__form_add(msv_buf *b, const char *key, const char *value);

/* How requests are made: the endpoint's CA, timeouts, loopback http. */
typedef struct msv__http_opts {
	const char *ca_file;
	int connect_timeout_ms, timeout_ms;
	int allow_loopback_http;
} msv__http_opts;

/* POSTs form (application/x-www-form-urlencoded) to url; *status is the
 * HTTP status and body its first MSV_OAUTH2_RESP_MAX bytes (more fails).
 * Transport failures: class TEMPORARY. */
msv_result msv__http_post(const msv__http_opts *h, const char *url, const char *form,
                          long *status, msv_buf *body, msv_error *err);
/* 0 when url may be used: https://, or http://127.0.0.1 when allowed. */
int msv__http_url_ok(const msv__http_opts *h, const char *url);


#include <pthread.h>

struct msv_oauth2 {
	msv_oauth2_options o;
	char *token_url, *client_id, *client_secret, *refresh_token_file, *scope, *subject, *ca_file;
	msv__oauth2_sa sa;
	msv_oauth2_grant grant;
	msv__http_opts http;

	pthread_mutex_t lock;
	pthread_cond_t done;
	char *token, *prev_token; /* current and previous access token */
	char *refresh, *prev_refresh; /* last refresh tokens seen, for redaction */
	int64_t expires_at;       /* clock ms the cache gives it up; 0: no token */
	int64_t expires_real;     /* clock ms it really expires */
	char scope_granted[512];
	char token_type[32];
	int refreshing;
	unsigned long gen;        /* refreshes finished */
	msv_result last_rc;
	msv_error last_err;
	int last_rotated;
	msv_redactor *redact;
};

/* Both grants' requests and the device flow (token.c, device.c). */
typedef struct msv__fetched {
	char *token, *refresh;     /* refresh: rotated by the endpoint, else NULL */
	int64_t expires_in_s;
	char scope[512];
	char token_type[32];
} msv__fetched;

void msv__fetched_free(msv__fetched *f);
/* POSTs form to url and parses the answer; non-2xx answers are parsed
 * too (their error fields).  Transport and parse failures fill err. */
msv_result msv__oauth2_post(msv_oauth2 *o, const char *url, const char *form, long *status,
                            msv__oauth2_resp *resp, msv_error *err);
/* The endpoint said no (status not 2xx): the error for it, its text
 * redacted of o's secrets and of extra (may be NULL). */
msv_result msv__oauth2_refused(msv_oauth2 *o, long status, const msv__oauth2_resp *resp,
                               const char *what, const char *extra, msv_error *err);
/* A successful token answer into f (access_token required). */
msv_result msv__oauth2_take(const msv__oauth2_resp *resp, msv__fetched *f, msv_error *err);
/* Caches f (lock held), learning its secrets; the lifetime with margin. */
msv_result msv__oauth2_store(msv_oauth2 *o, msv__fetched *f);
msv_result msv__oauth2_relearn(msv_oauth2 *o);
int64_t msv__oauth2_now(const msv_oauth2 *o);

#endif
