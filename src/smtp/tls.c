/*
 * TLS with OpenSSL 3 (RFC 3207 STARTTLS, RFC 8314 implicit TLS).
 * Verification is on unless the caller set insecure: the chain against
 * the system store or ca_file, and the host name with OpenSSL's own
 * matcher (RFC 6125), never a hand-rolled one.  TLS 1.2 is the floor
 * (RFC 8996 retired 1.0 and 1.1).
 */
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tls.h"

/* Shared by every connection to one destination (the pool's key), so a
 * reconnect can resume the last TLS session instead of a full handshake. */
struct msv_tls_ctx {
	SSL_CTX *ctx;
	BIO_METHOD *bio; /* sockets written with MSG_NOSIGNAL */
	int insecure;
	atomic_int refs;
	pthread_mutex_t lock; /* guards session */
	SSL_SESSION *session; /* newest resumable session */
};

struct msv_tls {
	SSL *ssl;
	char name[256];
	int insecure;
};

static void openssl_reason(char *buf, size_t n)
{
	unsigned long e = ERR_peek_last_error();
	if (!e) {
		snprintf(buf, n, "unknown error");
		return;
	}
	const char *r = ERR_reason_error_string(e);
	snprintf(buf, n, "%s", r ? r : "unknown error");
	ERR_clear_error();
}

static msv_result ctx_error(msv_error *err, msv_tls_ctx *c, const char *what, const char *file)
{
	char why[160];
	openssl_reason(why, sizeof(why));
	msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG, "%s%s%s: %s", what, file ? " " : "",
	              file ? file : "", why);
	msv__tls_ctx_free(c);
	return MSV_E_CONFIG;
}

/*
 * OpenSSL's socket BIO writes with write(2): a peer that reset the
 * connection would kill the caller's process with SIGPIPE, and a library
 * must not change the process's signal handling to prevent it.  This BIO
 * does the same job with send(MSG_NOSIGNAL) and recv.
 */
static int bio_write(BIO *b, const char *data, int len)
{
	BIO_clear_retry_flags(b);
	ssize_t n = send(BIO_get_fd(b, NULL), data, (size_t)len, MSG_NOSIGNAL);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		BIO_set_retry_write(b);
	return (int)n;
}

static int bio_read(BIO *b, char *data, int len)
{
	BIO_clear_retry_flags(b);
	ssize_t n = recv(BIO_get_fd(b, NULL), data, (size_t)len, 0);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		BIO_set_retry_read(b);
	return (int)n;
}

static int bio_puts(BIO *b, const char *str)
{
	return bio_write(b, str, (int)strlen(str));
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	switch (cmd) {
	case BIO_C_SET_FD:
		BIO_set_data(b, (void *)(intptr_t)(*(int *)ptr + 1)); /* +1: fd 0 is valid */
		BIO_set_init(b, 1);
		(void)num;
		return 1;
	case BIO_C_GET_FD: {
		int fd = (int)(intptr_t)BIO_get_data(b) - 1;
		if (ptr)
			*(int *)ptr = fd;
		return fd;
	}
	case BIO_CTRL_FLUSH:
	case BIO_CTRL_DUP:
		return 1;
	default:
		return 0;
	}
}

/* OpenSSL hands over each new session (TLS 1.3: each ticket); keep the
 * newest for the next connection. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
	msv_tls_ctx *c = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	if (!SSL_SESSION_is_resumable(sess))
		return 0;
	pthread_mutex_lock(&c->lock);
	SSL_SESSION *old = c->session;
	c->session = sess;
	pthread_mutex_unlock(&c->lock);
	SSL_SESSION_free(old);
	return 1; /* we keep the reference */
}

msv_result msv__tls_ctx_new(msv_tls_ctx **out, const msv_client_options *o, msv_error *err)
{
	msv_tls_ctx *c = msv_calloc(1, sizeof(*c));
	if (!c)
		return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
	atomic_init(&c->refs, 1);
	pthread_mutex_init(&c->lock, NULL);
	ERR_clear_error();
	c->ctx = SSL_CTX_new(TLS_client_method());
	c->bio = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR,
	                      "missive socket");
	if (!c->ctx || !c->bio || !BIO_meth_set_write(c->bio, bio_write) ||
	    !BIO_meth_set_read(c->bio, bio_read) || !BIO_meth_set_puts(c->bio, bio_puts) ||
	    !BIO_meth_set_ctrl(c->bio, bio_ctrl))
		return ctx_error(err, c, "cannot create TLS context", NULL);
	c->insecure = o->insecure;
	SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
	/* SMTP replies delimit themselves: a missing close_notify cannot
	 * truncate anything unnoticed, and many servers never send one. */
	SSL_CTX_set_options(c->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	SSL_CTX_set_mode(c->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_verify(c->ctx, o->insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_app_data(c->ctx, c);
	SSL_CTX_set_session_cache_mode(c->ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(c->ctx, on_new_session);
	/* OpenSSL's reason for an unreadable file is "system lib": say which. */
	const char *files[] = {o->ca_file, o->client_cert, o->client_key};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		if (files[i] && access(files[i], R_OK)) {
			msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG, "cannot read %s: %s", files[i],
			              strerror(errno));
			msv__tls_ctx_free(c);
			return MSV_E_CONFIG;
		}
	if (o->ca_file || o->ca_path) {
		if (!SSL_CTX_load_verify_locations(c->ctx, o->ca_file, o->ca_path))
			return ctx_error(err, c, "cannot load CA certificates from",
			                 o->ca_file ? o->ca_file : o->ca_path);
	} else if (!SSL_CTX_set_default_verify_paths(c->ctx)) {
		return ctx_error(err, c, "cannot load the system CA certificates", NULL);
	}
	if (o->client_cert) {
		if (SSL_CTX_use_certificate_chain_file(c->ctx, o->client_cert) != 1)
			return ctx_error(err, c, "cannot load client certificate", o->client_cert);
		const char *key = o->client_key ? o->client_key : o->client_cert;
		if (SSL_CTX_use_PrivateKey_file(c->ctx, key, SSL_FILETYPE_PEM) != 1)
			return ctx_error(err, c, "cannot load client key", key);
		if (SSL_CTX_check_private_key(c->ctx) != 1)
			return ctx_error(err, c, "client key does not match certificate", o->client_cert);
	}
	*out = c;
	return MSV_OK;
}

msv_tls_ctx *msv__tls_ctx_ref(msv_tls_ctx *c)
{
	atomic_fetch_add(&c->refs, 1);
	return c;
}

void msv__tls_ctx_free(msv_tls_ctx *c)
{
	if (!c || atomic_fetch_sub(&c->refs, 1) != 1)
		return;
	SSL_SESSION_free(c->session);
	SSL_CTX_free(c->ctx);
	BIO_meth_free(c->bio);
	pthread_mutex_destroy(&c->lock);
	msv_free(c);
}

static int is_ip(const char *name)
{
	unsigned char tmp[16];
	return inet_pton(AF_INET, name, tmp) == 1 || inet_pton(AF_INET6, name, tmp) == 1;
}

msv_result msv__tls_new(msv_tls **out, msv_tls_ctx *ctx, int fd, const char *name, msv_error *err)
{
	msv_tls *t = msv_calloc(1, sizeof(*t));
	if (!t)
		return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->insecure = ctx->insecure;
	ERR_clear_error();
	t->ssl = SSL_new(ctx->ctx);
	BIO *bio = t->ssl ? BIO_new(ctx->bio) : NULL;
	if (!bio) {
		SSL_free(t->ssl);
		t->ssl = NULL;
		goto fail;
	}
	BIO_set_fd(bio, fd, BIO_NOCLOSE);
	SSL_set_bio(t->ssl, bio, bio); /* the SSL owns the BIO now */
	if (is_ip(name)) {
		/* RFC 6066 3: no IP addresses in SNI; check the iPAddress SAN. */
		X509_VERIFY_PARAM *vp = SSL_get0_param(t->ssl);
		if (X509_VERIFY_PARAM_set1_ip_asc(vp, name) != 1)
			goto fail;
	} else {
		if (SSL_set_tlsext_host_name(t->ssl, name) != 1 || SSL_set1_host(t->ssl, name) != 1)
			goto fail;
		SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	}
	/* Each connection resumes from its own copy: handshakes in other
	 * threads must not see this one update the session it resumes. */
	pthread_mutex_lock(&ctx->lock);
	SSL_SESSION *copy = ctx->session ? SSL_SESSION_dup(ctx->session) : NULL;
	pthread_mutex_unlock(&ctx->lock);
	if (copy) {
		int set = SSL_set_session(t->ssl, copy) == 1;
		SSL_SESSION_free(copy); /* the SSL holds its own reference */
		if (!set)
			goto fail;
	}
	SSL_set_connect_state(t->ssl);
	*out = t;
	return MSV_OK;
fail:;
	char why[160];
	openssl_reason(why, sizeof(why));
	msv__tls_free(t);
	return msv_error_set(err, MSV_E_TLS, MSV_CLASS_LOCAL, "cannot set up TLS for %s: %s", name, why);
}

void msv__tls_free(msv_tls *t)
{
	if (!t)
		return;
	SSL_free(t->ssl);
	msv_free(t);
}

static const char *verify_hint(long v)
{
	switch (v) {
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
		return " (issued by an unknown CA)";
	case X509_V_ERR_HOSTNAME_MISMATCH:
	case X509_V_ERR_IP_ADDRESS_MISMATCH:
		return " (the certificate is for another host name)";
	default:
		return "";
	}
}

/* Maps an OpenSSL failure into err; returns MSV_TLS_ERROR. */
static int tls_fail(msv_tls *t, int ret, const char *what, msv_error *err)
{
	int e = SSL_get_error(t->ssl, ret);
	if (e == SSL_ERROR_WANT_READ)
		return MSV_TLS_WANT_READ;
	if (e == SSL_ERROR_WANT_WRITE)
		return MSV_TLS_WANT_WRITE;
	long v = SSL_get_verify_result(t->ssl);
	if (!t->insecure && v != X509_V_OK) {
		msv_error_set(err, MSV_E_TLS_VERIFY, MSV_CLASS_TEMPORARY,
		              "TLS certificate verification failed for %s: %s%s", t->name,
		              X509_verify_cert_error_string(v), verify_hint(v));
		ERR_clear_error();
		return MSV_TLS_ERROR;
	}
	char why[160];
	if (e == SSL_ERROR_SYSCALL && !ERR_peek_last_error())
		snprintf(why, sizeof(why), "connection closed by server");
	else
		openssl_reason(why, sizeof(why));
	msv_error_set(err, MSV_E_TLS, MSV_CLASS_TEMPORARY, "TLS %s with %s failed: %s", what, t->name, why);
	return MSV_TLS_ERROR;
}

int msv__tls_handshake(msv_tls *t, msv_error *err)
{
	ERR_clear_error();
	int r = SSL_connect(t->ssl);
	if (r == 1)
		return MSV_TLS_DONE;
	return tls_fail(t, r, "handshake", err);
}

int msv__tls_read(msv_tls *t, char *buf, size_t cap, size_t *n, msv_error *err)
{
	ERR_clear_error();
	*n = 0;
	int r = SSL_read_ex(t->ssl, buf, cap, n);
	if (r == 1)
		return MSV_TLS_DONE;
	int e = SSL_get_error(t->ssl, r);
	if (e == SSL_ERROR_ZERO_RETURN) {
		*n = 0;
		return MSV_TLS_DONE;
	}
	return tls_fail(t, r, "read", err);
}

int msv__tls_write(msv_tls *t, const char *buf, size_t len, size_t *n, msv_error *err)
{
	ERR_clear_error();
	*n = 0;
	int r = SSL_write_ex(t->ssl, buf, len, n);
	if (r == 1)
		return MSV_TLS_DONE;
	return tls_fail(t, r, "write", err);
}

void msv__tls_close_notify(msv_tls *t)
{
	/* One try, no wait for the peer's reply: enough for OpenSSL to keep
	 * the session resumable (it discards sessions of connections that
	 * were not shut down). */
	ERR_clear_error();
	(void)SSL_shutdown(t->ssl);
	ERR_clear_error();
}

void msv__tls_describe(const msv_tls *t, char *buf, size_t n)
{
	snprintf(buf, n, "%s %s%s", SSL_get_version(t->ssl), SSL_get_cipher_name(t->ssl),
	         SSL_session_reused(t->ssl) ? " (resumed)" : "");
}
