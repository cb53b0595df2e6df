/*
 * missive/oauth2.h - an OAuth 2.0 access-token source for SMTP (XOAUTH2,
 * OAUTHBEARER): Gmail and Microsoft 365 user mailboxes, Microsoft 365
 * app-only, Google service accounts.
 *
 * RFCs: 6749 (OAuth 2.0: 4.4 client credentials, 6 refresh), 7523 (JWT
 * bearer grant), 7515/7519 (JWS, JWT), 8628 (device authorization).
 *
 * THE GRANT follows from what is configured:
 *   service_account_json          -> JWT bearer (RS256, sub = subject)
 *   refresh_token_file            -> refresh grant
 *   client_id and client_secret   -> client credentials
 *
 * PROGRAMS must call curl_global_init(CURL_GLOBAL_DEFAULT) once, before
 * any thread starts, and before msv_oauth2_new(): the library keeps no
 * globals and cannot do it safely itself.
 *
 * THREADS
 *   One msv_oauth2 is shared by every connection of a route: the token is
 *   cached until expires_in minus a margin, and when it must be renewed
 *   one caller asks the endpoint while the others wait for its answer.
 *
 * SECRETS
 *   Tokens, the client secret and signed JWTs are learnt by the object's
 *   redactor (msv_oauth2_redact()), and no error text carries them.  A
 *   refresh token the endpoint rotates is written back to
 *   refresh_token_file atomically (temporary file, fsync, rename, 0600).
 *
 * ERRORS
 *   The endpoint refused (400/401, invalid_grant, ...): MSV_E_AUTH_FAILED,
 *   class PERMANENT, the provider's error and error_description in
 *   server_text.  The endpoint unreachable, timing out or failing (5xx):
 *   class TEMPORARY.  Bad settings: MSV_E_CONFIG, class CONFIG.
 */
#ifndef MISSIVE_OAUTH2_H
#define MISSIVE_OAUTH2_H

#include "missive/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum msv_oauth2_grant {
	MSV_OAUTH2_NONE = 0,
	MSV_OAUTH2_REFRESH,            /* RFC 6749 6 */
	MSV_OAUTH2_CLIENT_CREDENTIALS, /* RFC 6749 4.4 */
	MSV_OAUTH2_JWT_BEARER,         /* RFC 7523 2.1 */
} msv_oauth2_grant;

MSV_EXTERN const char *msv_oauth2_grant_name(msv_oauth2_grant g);

typedef struct msv_oauth2_options {
	unsigned version;                 /* MSV_OAUTH2_OPTIONS_VERSION */
	const char *token_url;            /* https://...; a service account's token_uri otherwise */
	const char *client_id;
	const char *client_secret;        /* the secret itself, not its file */
	const char *refresh_token_file;   /* read at each refresh, rotated tokens written back */
	const char *scope;                /* space-separated; NULL: none sent */
	const char *service_account_json; /* the key file's content (Google's JSON) */
	const char *subject;              /* JWT sub: the mailbox to act for */
	const char *ca_file;              /* PEM bundle for the endpoint; NULL: system store */
	int64_t margin_ms;                /* renew this long before expiry; 0: 60 s (capped
	                                   * at a tenth of the token's lifetime) */
	int connect_timeout_ms;           /* 0: 10 s */
	int timeout_ms;                   /* whole request; 0: 30 s */
	/* Tests only: plain http:// to 127.0.0.1 is accepted. */
	int allow_loopback_http;
	/* NULL: the monotonic clock (msv_now_ms).  Tests set a fake one. */
	int64_t (*clock)(void *payload);
	void *clock_payload;
} msv_oauth2_options;

#define MSV_OAUTH2_OPTIONS_VERSION 1
#define MSV_OAUTH2_OPTIONS_INIT { .version = MSV_OAUTH2_OPTIONS_VERSION }

/* A provider's endpoints and scopes (oauth2-provider = google|microsoft). */
typedef struct msv_oauth2_preset {
	const char *token_url;
	const char *device_url;
	const char *scope;     /* for user mailboxes (refresh, device, JWT) */
	const char *app_scope; /* for client credentials */
} msv_oauth2_preset;

/* 0 and *out filled for "google" or "microsoft", -1 otherwise. */
MSV_EXTERN int msv_oauth2_preset_get(const char *provider, msv_oauth2_preset *out);

typedef struct msv_oauth2 msv_oauth2;

/* Checks the settings (grant, URL scheme, the service account's key) and
 * copies them; no request is made yet. */
MSV_EXTERN MSV_WUR msv_result msv_oauth2_new(msv_oauth2 **out, const msv_oauth2_options *opts,
                                             msv_error *err);
MSV_EXTERN void msv_oauth2_free(msv_oauth2 *o);
MSV_EXTERN msv_oauth2_grant msv_oauth2_grant_get(const msv_oauth2 *o);

/* What msv_oauth2_token() learnt with the token. */
typedef struct msv_oauth2_info {
	int64_t expires_in_ms; /* left from now */
	char scope[512];       /* as granted ("" when the endpoint did not say) */
	char token_type[32];
	int refreshed;         /* 1: this call asked the endpoint */
	int rotated;           /* 1: a new refresh token was written back */
} msv_oauth2_info;

/* Appends a valid access token to out (a buffer the caller wipes with
 * msv_buf_free_secret).  force: the last token was refused, ask the
 * endpoint again (unless another caller did while this one waited).
 * info may be NULL.  Thread-safe. */
MSV_EXTERN MSV_WUR msv_result msv_oauth2_token(msv_oauth2 *o, int force, msv_buf *out,
                                               msv_oauth2_info *info, msv_error *err);
/* msv_oauth2_token() as an msv_token_fn (missive/smtp.h): payload is the
 * msv_oauth2. */
MSV_EXTERN msv_result msv_oauth2_token_fn(void *payload, int force, msv_buf *out, msv_error *err);

/* Copies text to out with every secret the object has seen redacted. */
MSV_EXTERN MSV_WUR msv_result msv_oauth2_redact(msv_oauth2 *o, msv_buf *out, const char *text,
                                                size_t n);

/* The device authorization grant (RFC 8628), for user mailboxes: asks
 * device_url for a code, calls prompt with where the user goes and what
 * they type, polls the token endpoint at the interval the server asks
 * (slow_down adds 5 s), and writes the refresh token to
 * refresh_token_file (atomically, 0600).  Needs client_id and
 * refresh_token_file.  Expired or denied: MSV_E_AUTH_FAILED. */
typedef void (*msv_oauth2_prompt_fn)(void *payload, const char *verification_uri,
                                     const char *user_code, const char *verification_uri_complete,
                                     int64_t expires_in_s);
MSV_EXTERN MSV_WUR msv_result msv_oauth2_device_authorize(msv_oauth2 *o, const char *device_url,
                                                          msv_oauth2_prompt_fn prompt,
                                                          void *payload, msv_error *err);

#ifdef __cplusplus
}
#endif
#endif
