/* TLS for the blocking driver.  OpenSSL names stay inside tls.c. */
#ifndef MSV_SMTP_TLS_H
#define MSV_SMTP_TLS_H

#include "missive/smtp.h"

typedef struct msv_tls_ctx msv_tls_ctx;
typedef struct msv_tls msv_tls;

enum { MSV_TLS_DONE = 1, MSV_TLS_WANT_READ = -2, MSV_TLS_WANT_WRITE = -3, MSV_TLS_ERROR = -1 };

/* Verification settings, CA store, client certificate, TLS 1.2 minimum. */
msv_result msv__tls_ctx_new(msv_tls_ctx **out, const msv_client_options *o, msv_error *err);
/* Contexts are shared by reference; free drops one reference. */
msv_tls_ctx *msv__tls_ctx_ref(msv_tls_ctx *ctx);
void msv__tls_ctx_free(msv_tls_ctx *ctx);

/* A TLS session over a connected non-blocking socket; name is checked
 * against the certificate and sent as SNI unless it is an IP address. */
msv_result msv__tls_new(msv_tls **out, msv_tls_ctx *ctx, int fd, const char *name, msv_error *err);
void msv__tls_free(msv_tls *t);

/* Non-blocking steps: MSV_TLS_DONE / _WANT_READ / _WANT_WRITE / _ERROR
 * (err set).  read/write return bytes moved in *n; read sets *n = 0 at
 * the peer's end of stream. */
int msv__tls_handshake(msv_tls *t, msv_error *err);
int msv__tls_read(msv_tls *t, char *buf, size_t cap, size_t *n, msv_error *err);
int msv__tls_write(msv_tls *t, const char *buf, size_t len, size_t *n, msv_error *err);
/* Sends close_notify after a clean QUIT. */
void msv__tls_close_notify(msv_tls *t);
/* "TLSv1.3 TLS_AES_256_GCM_SHA384", plus " (resumed)" for a resumed session */
void msv__tls_describe(const msv_tls *t, char *buf, size_t n);

#endif
