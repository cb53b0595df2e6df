/* The syslog sink of the audit export (docs/audit.md): each event
 * as one RFC 5424 message,
 *     <86>1 TS HOST missived PID TYPE - {"seq":...}
 * (facility authpriv, severity info; the event's own ts; MSGID its type;
 * no structured data: the JSON is the message), framed by octet counting
 * (RFC 6587 3.4.1: "LEN SP MSG") over TCP, or TLS (RFC 5425) verifying
 * the server's certificate and name.
 *
 * Syslog over TCP has no acknowledgements.  An event counts as taken
 * when the server's TCP stack has acknowledged its last byte: the bytes
 * written to the socket minus those still unacknowledged (SIOCOUTQ).
 * What the server's kernel acknowledged and the server then lost
 * (killed before reading its socket) is the one loss left; a reset
 * connection loses nothing, the events after the cursor are sent again. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/sockios.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "audit_export.h"

#define PRI_AUTHPRIV_INFO 86 /* facility 10 * 8 + severity 6 */
#define IO_TIMEOUT_MS 10000
#define MARKS 16384          /* more than the engine keeps in flight */
#define MSG_MAX (16u << 20)

typedef struct mark {
	uint64_t id;
	uint64_t end; /* the wire bytes written once the event's last one was */
} mark;

typedef struct syslog_sink {
	const app_config *cfg;
	exporter *e;
	char host[256], port[8];
	int tls;
	char hostname[256];
	long pid;
	SSL_CTX *ctx;
	SSL *ssl;
	int fd;
	uint64_t written; /* plain TCP: bytes written on this connection */
	mark *marks;      /* the events written and not yet acknowledged */
	uint64_t mhead, mtail;
	msv_buf msg;
} syslog_sink;

/* RFC 5424 header fields: printable US-ASCII without space, at most max
 * characters, "-" when nothing is left. */
static void field(char *dst, size_t dstsz, const char *src, size_t max)
{
	size_t n = 0;
	for (; *src && n < max && n + 1 < dstsz; src++)
		if (*src > ' ' && *src < 127)
			dst[n++] = *src;
	if (!n)
		dst[n++] = '-';
	dst[n] = '\0';
}

static int tls_err(syslog_sink *ss, const char *what, msv_error *err)
{
	char buf[256] = "";
	unsigned long e = ERR_get_error();
	long v = ss->ssl ? SSL_get_verify_result(ss->ssl) : X509_V_OK;
	if (v != X509_V_OK)
		snprintf(buf, sizeof(buf), "certificate: %s", X509_verify_cert_error_string(v));
	else if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	else
		snprintf(buf, sizeof(buf), "%s", errno ? strerror(errno) : "connection closed");
	ERR_clear_error();
	msv_error_set(err, MSV_E_TLS, MSV_CLASS_TEMPORARY, "%s %s:%s: %s", what, ss->host, ss->port,
	              buf);
	return -1;
}

/* Waits for events on the socket: 1 ready, 0 timed out, -1 error. */
static int wait_fd(int fd, short events, int ms)
{
	struct pollfd p = {fd, events, 0};
	int n;
	do
		n = poll(&p, 1, ms);
	while (n < 0 && errno == EINTR);
	return n;
}

static void disconnect(syslog_sink *ss)
{
	if (ss->ssl)
		SSL_free(ss->ssl);
	ss->ssl = NULL;
	if (ss->fd >= 0)
		close(ss->fd);
	ss->fd = -1;
	ss->written = 0;
	ss->mhead = ss->mtail = 0;
}

/* Drives SSL_connect/SSL_write/SSL_read's wants: 0 to retry, -1 failed. */
static int tls_want(syslog_sink *ss, int rc, int64_t until)
{
	int e = SSL_get_error(ss->ssl, rc);
	int ms = (int)(until - msv_now_ms());
	if (ms <= 0 || (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE))
		return -1;
	return wait_fd(ss->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, ms) > 0 ? 0 : -1;
}

static int tls_start(syslog_sink *ss, msv_error *err)
{
	unsigned char ip[16];
	if (!(ss->ssl = SSL_new(ss->ctx)) || !SSL_set_fd(ss->ssl, ss->fd))
		return tls_err(ss, "TLS to", err);
	if (inet_pton(AF_INET, ss->host, ip) == 1 || inet_pton(AF_INET6, ss->host, ip) == 1) {
		if (!X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ss->ssl), ss->host))
			return tls_err(ss, "TLS to", err);
	} else if (!SSL_set_tlsext_host_name(ss->ssl, ss->host) || !SSL_set1_host(ss->ssl, ss->host)) {
		return tls_err(ss, "TLS to", err);
	}
	int64_t until = msv_now_ms() + IO_TIMEOUT_MS;
	int rc;
	errno = 0;
	while ((rc = SSL_connect(ss->ssl)) != 1)
		if (tls_want(ss, rc, until))
			return tls_err(ss, "TLS handshake with", err);
	return 0;
}

static int connect_one(const struct addrinfo *ai)
{
	int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
	                ai->ai_protocol);
	if (fd < 0)
		return -1;
	int soerr = 0;
	socklen_t sl = sizeof(soerr);
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) && errno != EINPROGRESS)
		soerr = errno;
	else if (wait_fd(fd, POLLOUT, IO_TIMEOUT_MS) <= 0)
		soerr = ETIMEDOUT;
	else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl))
		soerr = errno;
	if (soerr) {
		close(fd);
		errno = soerr;
		return -1;
	}
	return fd;
}

static int reconnect(syslog_sink *ss, msv_error *err)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res, *ai;
	disconnect(ss);
	int gai = getaddrinfo(ss->host, ss->port, &hints, &res);
	if (gai) {
		msv_error_set(err, MSV_E_RESOLVE, MSV_CLASS_TEMPORARY, "cannot resolve %s: %s", ss->host,
		              gai_strerror(gai));
		return -1;
	}
	errno = 0;
	for (ai = res; ai && ss->fd < 0; ai = ai->ai_next)
		ss->fd = connect_one(ai);
	freeaddrinfo(res);
	if (ss->fd < 0) {
		msv_error_set(err, MSV_E_CONNECT, MSV_CLASS_TEMPORARY, "cannot connect to %s:%s: %s",
		              ss->host, ss->port, strerror(errno ? errno : ECONNREFUSED));
		return -1;
	}
	if (ss->tls && tls_start(ss, err)) {
		disconnect(ss);
		return -1;
	}
	return 0;
}

static int write_all(syslog_sink *ss, const char *p, size_t n, msv_error *err)
{
	int64_t until = msv_now_ms() + IO_TIMEOUT_MS;
	while (n) {
		if (ss->ssl) {
			int rc = SSL_write(ss->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
			if (rc > 0) {
				p += rc, n -= (size_t)rc;
			} else if (tls_want(ss, rc, until)) {
				return tls_err(ss, "cannot write to", err);
			}
			continue;
		}
		ssize_t w = send(ss->fd, p, n, MSG_NOSIGNAL);
		if (w > 0) {
			p += w, n -= (size_t)w, ss->written += (uint64_t)w;
		} else if (w < 0 && errno != EAGAIN && errno != EINTR) {
			break;
		} else if (w < 0 && errno == EAGAIN &&
		           wait_fd(ss->fd, POLLOUT, (int)(until - msv_now_ms())) <= 0) {
			errno = ETIMEDOUT;
			break;
		}
	}
	if (!n)
		return 0;
	msv_error_set(err, MSV_E_IO, MSV_CLASS_TEMPORARY, "cannot write to %s:%s: %s", ss->host,
	              ss->port, strerror(errno));
	return -1;
}

/* The bytes of this connection the server's TCP has acknowledged. */
static uint64_t acked_bytes(syslog_sink *ss)
{
	int unacked = 0;
	uint64_t wire = ss->ssl ? BIO_number_written(SSL_get_wbio(ss->ssl)) : ss->written;
	if (ioctl(ss->fd, SIOCOUTQ, &unacked) || unacked < 0)
		return 0;
	return wire - (uint64_t)unacked;
}

static int syslog_send(void *s, uint64_t id, const char *line, size_t len,
                       const audit_event_meta *m, msv_error *err)
{
	syslog_sink *ss = s;
	char ts[64], type[40];
	if (ss->fd < 0 && reconnect(ss, err))
		return -1;
	field(ts, sizeof(ts), m->ts, 48);
	field(type, sizeof(type), m->type, 32);
	msv_buf_reset(&ss->msg);
	int hdr = snprintf(NULL, 0, "<%d>1 %s %s missived %ld %s - ", PRI_AUTHPRIV_INFO, ts,
	                   ss->hostname, ss->pid, type);
	if (msv_buf_addf(&ss->msg, "%zu <%d>1 %s %s missived %ld %s - ", (size_t)hdr + len,
	                 PRI_AUTHPRIV_INFO, ts, ss->hostname, ss->pid, type) ||
	    msv_buf_add(&ss->msg, line, len)) {
		msv_error_set(err, MSV_E_TOO_LARGE, MSV_CLASS_LOCAL, "event %llu is too large",
		              (unsigned long long)m->seq);
		return -1;
	}
	if (write_all(ss, ss->msg.data, ss->msg.len, err))
		return -1;
	ss->marks[ss->mtail++ % MARKS] =
		(mark){id, ss->ssl ? BIO_number_written(SSL_get_wbio(ss->ssl)) : ss->written};
	return 0;
}

/* The server sends nothing (but TLS session tickets): readable means
 * closed or failed. */
static int check_peer(syslog_sink *ss, msv_error *err)
{
	char buf[512];
	if (ss->ssl) {
		int rc = SSL_read(ss->ssl, buf, sizeof(buf));
		int e = rc > 0 ? SSL_ERROR_NONE : SSL_get_error(ss->ssl, rc);
		if (e == SSL_ERROR_NONE || e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
			return 0;
		return tls_err(ss, "connection lost to", err);
	}
	ssize_t r = recv(ss->fd, buf, sizeof(buf), MSG_DONTWAIT);
	if (r > 0 || (r < 0 && (errno == EAGAIN || errno == EINTR)))
		return 0;
	msv_error_set(err, MSV_E_IO, MSV_CLASS_TEMPORARY, "connection lost to %s:%s: %s", ss->host,
	              ss->port, r ? strerror(errno) : "closed by the server");
	return -1;
}

static int syslog_poll(void *s, int ms, msv_error *err)
{
	syslog_sink *ss = s;
	if (ss->fd < 0) {
		poll(NULL, 0, ms);
		return 0;
	}
	/* Acknowledgements raise no event: pending ones are checked often. */
	int r = wait_fd(ss->fd, POLLIN, ss->mhead < ss->mtail && ms > 20 ? 20 : ms);
	if (r > 0 && check_peer(ss, err)) {
		disconnect(ss);
		return -1;
	}
	if (ss->mhead == ss->mtail)
		return 0;
	uint64_t acked = acked_bytes(ss);
	while (ss->mhead < ss->mtail && ss->marks[ss->mhead % MARKS].end <= acked)
		audit_export_done(ss->e, ss->marks[ss->mhead++ % MARKS].id, 1);
	return 0;
}

static void syslog_reset(void *s)
{
	disconnect(s);
}

static void syslog_flush(void *s, int ms)
{
	syslog_sink *ss = s;
	msv_error err;
	int64_t until = msv_now_ms() + ms;
	while (ss->fd >= 0 && ss->mhead < ss->mtail && msv_now_ms() < until)
		if (syslog_poll(ss, 20, &err))
			break;
}

static void syslog_destroy(void *s)
{
	syslog_sink *ss = s;
	disconnect(ss);
	SSL_CTX_free(ss->ctx);
	msv_buf_free(&ss->msg);
	msv_free(ss->marks);
	msv_free(ss);
}

static msv_result make_ctx(syslog_sink *ss, const app_config *c, msv_error *err)
{
	if (!(ss->ctx = SSL_CTX_new(TLS_client_method())) ||
	    !SSL_CTX_set_min_proto_version(ss->ctx, TLS1_2_VERSION))
		return msv_error_set(err, MSV_E_TLS, MSV_CLASS_LOCAL, "audit export: cannot set up TLS");
	SSL_CTX_set_verify(ss->ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_mode(ss->ctx, SSL_MODE_AUTO_RETRY);
	int ok = c->audit_syslog_ca_file
	                 ? SSL_CTX_load_verify_locations(ss->ctx, c->audit_syslog_ca_file, NULL)
	                 : SSL_CTX_set_default_verify_paths(ss->ctx);
	ERR_clear_error();
	if (!ok)
		return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
		                     "%s: [audit] syslog-ca-file %s: cannot load the certificates",
		                     c->path, c->audit_syslog_ca_file ? c->audit_syslog_ca_file : "");
	return MSV_OK;
}

/* tcp://HOST:PORT, tls://HOST:PORT, [IPv6] in brackets (checked by the
 * config loader). */
static void parse_url(syslog_sink *ss, const char *url)
{
	ss->tls = !strncmp(url, "tls://", 6);
	const char *h = url + 6, *colon = strrchr(h, ':');
	size_t hl = (size_t)(colon - h);
	if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']')
		h++, hl -= 2;
	snprintf(ss->host, sizeof(ss->host), "%.*s", (int)hl, h);
	snprintf(ss->port, sizeof(ss->port), "%s", colon + 1);
}

static msv_result syslog_create(void **out, const app_config *c, exporter *e, msv_error *err)
{
	syslog_sink *ss = msv_calloc(1, sizeof(*ss));
	if (!ss || !(ss->marks = msv_calloc(MARKS, sizeof(*ss->marks)))) {
		msv_free(ss);
		return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "audit export: out of memory");
	}
	ss->cfg = c;
	ss->e = e;
	ss->fd = -1;
	ss->pid = (long)getpid();
	msv_buf_init(&ss->msg, MSG_MAX);
	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	field(ss->hostname, sizeof(ss->hostname), host, 255);
	parse_url(ss, c->audit_syslog);
	if (ss->tls && make_ctx(ss, c, err)) {
		syslog_destroy(ss);
		return err->code;
	}
	*out = ss;
	return MSV_OK;
}

const audit_sink_ops audit_syslog_ops = {
	"syslog", syslog_create, syslog_send, syslog_poll, syslog_reset, syslog_flush, syslog_destroy,
};
