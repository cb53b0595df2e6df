/* DKIM key sets: dkim-key, dkim-selector, dkim-domain, from a [route] or
 * from the --dkim-* flags of the commands that produce mail (send,
 * build).  Repeatable: one signature per key (RSA and Ed25519 together
 * for dual signing, RFC 8463).  Setting keys needs no OpenSSL
 * (dkim_keyset.c); loading and signing do (dkim_keys.c), so a program
 * that only parses the config links none. */
#ifndef MSV_APP_DKIM_KEYS_H
#define MSV_APP_DKIM_KEYS_H

#include "missive/dkim.h"

#define APP_DKIM_MAX 4

typedef struct app_dkim {
	const char *key[APP_DKIM_MAX], *selector[APP_DKIM_MAX], *domain[APP_DKIM_MAX];
	size_t nkey, nselector, ndomain;
	msv_dkim_signer *signers[APP_DKIM_MAX];
	size_t n; /* loaded */
	/* Set by app_dkim_load: freeing goes through it, so that the light
	 * half does not pull in the signer (and OpenSSL). */
	void (*signer_free)(msv_dkim_signer *s);
	char warning[256]; /* a short key: for the caller to show, "" if none */
} app_dkim;

/* 1 taken, 0 not a DKIM key, -1 with err (too many keys).  value is kept
 * by reference. */
int app_dkim_set(app_dkim *d, const char *key, const char *value, msv_error *err);
/* 1 when keys, selectors or domains were given. */
int app_dkim_given(const app_dkim *d);
/* Loads the keys (idempotent).  A single selector or domain applies to
 * every key.  MSV_OK, or the code of err: USAGE for a wrong combination, CONFIG
 * naming an unreadable or bad key file. */
msv_result app_dkim_load(app_dkim *d, msv_error *err);
/* Signs a complete message: out gets the DKIM-Signature field(s) and then
 * the message in the CRLF form that was signed.  Without keys, out gets
 * the message as it is.  MSV_OK, or the code of err. */
msv_result app_dkim_sign(app_dkim *d, const char *msg, size_t len, msv_buf *out,
                         msv_error *err);
void app_dkim_free(app_dkim *d);

#endif
