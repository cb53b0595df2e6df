/*
 * The blocking driver: sockets, poll(2) with deadlines, TLS, and the
 * loop that feeds the sans-I/O engine.  Cancellation comes through a
 * pipe that every wait also polls, so any thread can interrupt.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client.h"
#include "core/core_int.h"

#define READ_CHUNK 16384
#define BODY_CHUNK 65536

struct msv_client {
	msv_client_options o;
	char *host, *ca_file, *ca_path, *tls_name, *client_cert, *client_key;
	char *helo, *user, *secret; /* copies behind o.smtp */
	msv_smtp *smtp;
	msv_tls_ctx *tctx;
	msv_tls *tls;
	int fd;
	int cancel[2];
	atomic_int cancelled;
	msv_deadline session_deadline;
	msv_error err;
	char tls_info[128];
	char peer[300]; /* "host:port" for messages */
};

static void info(msv_client *c, const char *fmt, ...) MSV_PRINTF(2, 3);
static void info(msv_client *c, const char *fmt, ...)
{
	if (!c->o.smtp.trace)
		return;
	char line[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n > 0)
		c->o.smtp.trace(c->o.smtp.trace_payload, MSV_TRACE_INFO, line,
		                (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

static int dup_into(char **dst, const char *src)
{
	*dst = NULL;
	if (!src)
		return 0;
	*dst = msv_strdup(src);
	return *dst ? 0 : -1;
}

static int set_flags(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -1;
	return fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 ? -1 : 0;
}

msv_result msv_client_new(msv_client **out, const msv_client_options *opts, msv_error *err)
{
	return msv__client_new_shared(out, opts, NULL, err);
}

msv_result msv__client_new_shared(msv_client **out, const msv_client_options *opts, msv_tls_ctx *tls,
                                  msv_error *err)
{
	if (!msv__version_ok(opts->version, MSV_CLIENT_OPTIONS_VERSION))
		return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE,
		                     "msv_client_options: version %u is not between 1 and %u", opts->version,
		                     MSV_CLIENT_OPTIONS_VERSION);
	if (!msv__version_ok(opts->smtp.version, MSV_SMTP_OPTIONS_VERSION))
		return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE,
		                     "msv_smtp_options: version %u is not between 1 and %u", opts->smtp.version,
		                     MSV_SMTP_OPTIONS_VERSION);
	if (!opts->host || !*opts->host)
		return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE, "no server host given");
	msv_client *c = msv_calloc(1, sizeof(*c));
	if (!c)
		return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
	c->o = *opts;
	if (opts->version < 2) { /* fields an older caller's struct does not have */
		c->o.token = NULL;
		c->o.token_payload = NULL;
	}
	c->fd = -1;
	c->cancel[0] = c->cancel[1] = -1;
	if (dup_into(&c->host, opts->host) || dup_into(&c->ca_file, opts->ca_file) ||
	    dup_into(&c->ca_path, opts->ca_path) || dup_into(&c->tls_name, opts->tls_name) ||
	    dup_into(&c->client_cert, opts->client_cert) || dup_into(&c->client_key, opts->client_key) ||
	    dup_into(&c->helo, opts->smtp.helo) || dup_into(&c->user, opts->smtp.user) ||
	    dup_into(&c->secret, opts->smtp.secret)) {
		msv_client_free(c);
		return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
	}
	c->o.host = c->host;
	c->o.ca_file = c->ca_file;
	c->o.ca_path = c->ca_path;
	c->o.tls_name = c->tls_name;
	c->o.client_cert = c->client_cert;
	c->o.client_key = c->client_key;
	c->o.smtp.helo = c->helo;
	c->o.smtp.user = c->user;
	c->o.smtp.secret = c->secret;
	if (!c->o.port)
		c->o.port = opts->smtp.tls == MSV_TLS_IMPLICIT ? 465 : opts->smtp.tls == MSV_TLS_NONE ? 25 : 587;
	if (!c->o.connect_timeout_ms)
		c->o.connect_timeout_ms = 30000;
	if (!c->o.command_timeout_ms)
		c->o.command_timeout_ms = 300000;
	if (!c->o.data_timeout_ms)
		c->o.data_timeout_ms = 600000;
	snprintf(c->peer, sizeof(c->peer), strchr(c->host, ':') ? "[%s]:%u" : "%s:%u", c->host, c->o.port);
	if (pipe(c->cancel) || set_flags(c->cancel[0]) || set_flags(c->cancel[1])) {
		msv_error_set(err, MSV_E_SYSTEM, MSV_CLASS_LOCAL, "pipe: %s", strerror(errno));
		msv_client_free(c);
		return MSV_E_SYSTEM;
	}
	if (tls) {
		c->tctx = msv__tls_ctx_ref(tls);
	} else if (c->o.smtp.tls != MSV_TLS_NONE) {
		msv_result r = msv__tls_ctx_new(&c->tctx, &c->o, err);
		if (r) {
			msv_client_free(c);
			return r;
		}
	}
	*out = c;
	return MSV_OK;
}

/* The engine outlives the socket so the last result stays readable. */
static void close_conn(msv_client *c)
{
	msv__tls_free(c->tls);
	c->tls = NULL;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

void msv_client_free(msv_client *c)
{
	if (!c)
		return;
	close_conn(c);
	msv_smtp_free(c->smtp);
	msv__tls_ctx_free(c->tctx);
	for (int i = 0; i < 2; i++)
		if (c->cancel[i] >= 0)
			close(c->cancel[i]);
	msv_free(c->host);
	msv_free(c->ca_file);
	msv_free(c->ca_path);
	msv_free(c->tls_name);
	msv_free(c->client_cert);
	msv_free(c->client_key);
	msv_free(c->helo);
	msv_free_secret(c->user);
	msv_free_secret(c->secret);
	msv_free(c);
}

void msv_client_cancel(msv_client *c)
{
	atomic_store(&c->cancelled, 1);
	ssize_t w = write(c->cancel[1], "x", 1);
	(void)w; /* a full pipe already wakes the waiter */
}

const msv_error *msv_client_error(const msv_client *c)
{
	return &c->err;
}

const msv_smtp_caps *msv_client_caps_get(const msv_client *c)
{
	static const msv_smtp_caps none;
	return c->smtp ? msv_smtp_caps_get(c->smtp) : &none;
}

const char *msv_client_tls_info(const msv_client *c)
{
	return c->tls_info;
}

/* ------------------------------------------------------------- waiting */

/* Waits until fd is ready for events, the deadline passes or someone
 * cancels.  what names the wait in the timeout message. */
static msv_result wait_fd(msv_client *c, short events, int timeout_ms, const char *what)
{
	msv_deadline d = msv_deadline_min(msv_deadline_in(timeout_ms), c->session_deadline);
	for (;;) {
		if (atomic_load(&c->cancelled))
			return msv_error_set(&c->err, MSV_E_CANCELLED, MSV_CLASS_TEMPORARY, "cancelled");
		struct pollfd p[2] = {{c->fd, events, 0}, {c->cancel[0], POLLIN, 0}};
		int ms = msv_deadline_poll_ms(d, msv_now_ms());
		if (ms == 0)
			break;
		int n = poll(p, 2, ms);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return msv_error_set(&c->err, MSV_E_SYSTEM, MSV_CLASS_LOCAL, "poll: %s", strerror(errno));
		if (p[1].revents)
			continue; /* re-checks the flag */
		if (p[0].revents)
			return MSV_OK;
	}
	int overall = c->session_deadline && c->session_deadline <= msv_now_ms();
	return msv_error_set(&c->err, MSV_E_TIMEOUT, MSV_CLASS_TEMPORARY,
	                     "timed out after %.1f s %s %s%s", (overall ? 0 : timeout_ms) / 1000.0, what,
	                     c->peer, overall ? " (session deadline reached)" : "");
}

static int io_timeout(msv_client *c)
{
	return c->smtp && msv_smtp_in_data(c->smtp) ? c->o.data_timeout_ms : c->o.command_timeout_ms;
}

static msv_result tls_wait(msv_client *c, int rc, const char *what)
{
	return wait_fd(c, rc == MSV_TLS_WANT_WRITE ? POLLOUT : POLLIN, io_timeout(c), what);
}

static msv_result io_write(msv_client *c, const char *p, size_t len)
{
	while (len) {
		size_t n = 0;
		if (c->tls) {
			int rc = msv__tls_write(c->tls, p, len, &n, &c->err);
			if (rc == MSV_TLS_ERROR)
				return c->err.code;
			if (rc != MSV_TLS_DONE) {
				msv_result r = tls_wait(c, rc, "writing to");
				if (r)
					return r;
				continue;
			}
		} else {
			ssize_t w = send(c->fd, p, len, MSG_NOSIGNAL);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
				msv_result r = wait_fd(c, POLLOUT, io_timeout(c), "writing to");
				if (r)
					return r;
				continue;
			}
			if (w < 0)
				return msv_error_set(&c->err, MSV_E_IO, MSV_CLASS_TEMPORARY, "cannot write to %s: %s",
				                     c->peer, strerror(errno));
			n = (size_t)w;
		}
		p += n;
		len -= n;
	}
	return MSV_OK;
}

static msv_result io_read(msv_client *c, char *buf, size_t cap, size_t *got)
{
	for (;;) {
		if (c->tls) {
			int rc = msv__tls_read(c->tls, buf, cap, got, &c->err);
			if (rc == MSV_TLS_DONE)
				return MSV_OK;
			if (rc == MSV_TLS_ERROR)
				return c->err.code;
			msv_result r = tls_wait(c, rc, "waiting for");
			if (r)
				return r;
			continue;
		}
		ssize_t n = recv(c->fd, buf, cap, 0);
		if (n >= 0) {
			*got = (size_t)n;
			return MSV_OK;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return msv_error_set(&c->err, MSV_E_IO, MSV_CLASS_TEMPORARY, "cannot read from %s: %s",
			                     c->peer, strerror(errno));
		msv_result r = wait_fd(c, POLLIN, io_timeout(c), "waiting for");
		if (r)
			return r;
	}
}

static msv_result handshake(msv_client *c)
{
	const char *name = c->tls_name ? c->tls_name : c->host;
	msv_result r = msv__tls_new(&c->tls, c->tctx, c->fd, name, &c->err);
	if (r)
		return r;
	for (;;) {
		int rc = msv__tls_handshake(c->tls, &c->err);
		if (rc == MSV_TLS_DONE)
			break;
		if (rc == MSV_TLS_ERROR)
			return c->err.code;
		r = tls_wait(c, rc, "in the TLS handshake with");
		if (r)
			return r;
	}
	msv__tls_describe(c->tls, c->tls_info, sizeof(c->tls_info));
	info(c, "TLS established: %s, %s", c->tls_info,
	     c->o.insecure ? "certificate NOT verified (insecure)" : "certificate verified");
	return MSV_OK;
}

/* ---------------------------------------------------------- connecting */

static msv_result connect_one(msv_client *c, const struct addrinfo *ai, char *why, size_t whyn)
{
	char addr[NI_MAXHOST] = "?";
	getnameinfo(ai->ai_addr, ai->ai_addrlen, addr, sizeof(addr), NULL, 0, NI_NUMERICHOST);
	c->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
	if (c->fd < 0) {
		snprintf(why, whyn, "%s: %s", addr, strerror(errno));
		return MSV_E_CONNECT;
	}
	/* Commands leave in whole bursts; Nagle would only hold the last
	 * segment of a pipelined group back for an ACK. */
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	info(c, "connecting to %s port %u", addr, c->o.port);
	if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return MSV_OK;
	if (errno != EINPROGRESS) {
		snprintf(why, whyn, "%s: %s", addr, strerror(errno));
		goto bad;
	}
	msv_result r = wait_fd(c, POLLOUT, c->o.connect_timeout_ms, "connecting to");
	if (r) {
		snprintf(why, whyn, "%s: %s", addr, r == MSV_E_TIMEOUT ? "timed out" : msv_strerror(r));
		if (r == MSV_E_CANCELLED)
			return r;
		goto bad;
	}
	int soerr = 0;
	socklen_t sl = sizeof(soerr);
	getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
	if (!soerr)
		return MSV_OK;
	snprintf(why, whyn, "%s: %s", addr, strerror(soerr));
bad:
	close(c->fd);
	c->fd = -1;
	return MSV_E_CONNECT;
}

static msv_result open_socket(msv_client *c)
{
	struct addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	char port[16];
	snprintf(port, sizeof(port), "%u", c->o.port);
	int g = getaddrinfo(c->host, port, &hints, &res);
	if (g) {
		/* A name that does not exist is the caller's setting to fix;
		 * a resolver that cannot answer now may answer later. */
		msv_class cls = g == EAI_AGAIN ? MSV_CLASS_TEMPORARY : MSV_CLASS_CONFIG;
		return msv_error_set(&c->err, MSV_E_RESOLVE, cls, "cannot resolve %s: %s", c->host,
		                     gai_strerror(g));
	}
	char why[400] = "no address";
	msv_result r = MSV_E_CONNECT;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		r = connect_one(c, ai, why, sizeof(why));
		if (r == MSV_OK || r == MSV_E_CANCELLED)
			break;
	}
	freeaddrinfo(res);
	if (r == MSV_E_CANCELLED)
		return r;
	if (r)
		return msv_error_set(&c->err, MSV_E_CONNECT, MSV_CLASS_TEMPORARY, "cannot connect to %s (%s)",
		                     c->peer, why);
	return MSV_OK;
}

/* Runs the engine until it needs the caller: READY, WANT_BODY, TXN_DONE
 * or CLOSED.  I/O failures fail the engine too, so its state is final. */
static msv_smtp_event drive(msv_client *c)
{
	char buf[READ_CHUNK];
	for (;;) {
		msv_smtp_event ev = msv_smtp_step(c->smtp);
		msv_result r = MSV_OK;
		switch (ev) {
		case MSV_SMTP_WANT_WRITE: {
			const char *p;
			size_t n;
			msv_smtp_output(c->smtp, &p, &n);
			r = io_write(c, p, n);
			if (!r)
				msv_smtp_written(c->smtp, n);
			break;
		}
		case MSV_SMTP_WANT_READ: {
			size_t n = 0;
			r = io_read(c, buf, sizeof(buf), &n);
			if (!r && msv_smtp_feed(c->smtp, buf, n))
				continue; /* FAILED comes out of the next step */
			break;
		}
		case MSV_SMTP_WANT_TLS:
			r = handshake(c);
			if (!r)
				msv_smtp_tls_started(c->smtp);
			break;
		case MSV_SMTP_FAILED:
			c->err = *msv_smtp_error(c->smtp);
			return ev;
		default:
			return ev;
		}
		if (r)
			msv_smtp_fail(c->smtp, &c->err);
	}
}

static msv_result connect_once(msv_client *c)
{
	close_conn(c);
	msv_smtp_free(c->smtp);
	c->smtp = NULL;
	c->tls_info[0] = '\0';
	c->session_deadline = msv_deadline_in(c->o.deadline_ms);
	msv_result r = open_socket(c);
	if (r)
		return r;
	if (c->o.smtp.tls == MSV_TLS_IMPLICIT && (r = handshake(c)))
		goto fail;
	r = msv_smtp_new(&c->smtp, &c->o.smtp);
	if (r) {
		msv_error_set(&c->err, r, MSV_CLASS_LOCAL, "cannot start SMTP session: %s", msv_strerror(r));
		goto fail;
	}
	if ((r = msv_smtp_set_server(c->smtp, c->host, c->o.port))) {
		msv_error_set(&c->err, r, MSV_CLASS_USAGE, "bad server name for OAUTHBEARER");
		goto fail;
	}
	if (drive(c) == MSV_SMTP_READY)
		return MSV_OK;
	r = c->err.code;
fail:
	close_conn(c);
	return r ? r : MSV_E_PROTOCOL;
}

/* The token source's current token becomes the secret of the next
 * session. */
static msv_result fetch_token(msv_client *c, int force)
{
	msv_buf t;
	msv_buf_init(&t, 16384);
	msv_result r = c->o.token(c->o.token_payload, force, &t, &c->err);
	if (!r && !t.len)
		r = msv_error_set(&c->err, MSV_E_AUTH_FAILED, MSV_CLASS_PERMANENT,
		                  "the token source gave an empty token");
	char *dup = r ? NULL : msv_strdup(t.data);
	msv_buf_free_secret(&t);
	if (!r && !dup)
		r = msv_error_set(&c->err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
	if (r)
		return r;
	msv_free_secret(c->secret);
	c->secret = dup;
	c->o.smtp.secret = c->secret;
	c->o.smtp.auth_token = 1;
	return MSV_OK;
}

/* With a token source: a token the server refuses with its error
 * challenge (expired or revoked early) gets one forced renewal and one
 * more connection; a second refusal is final (EX_NOPERM for the CLI). */
msv_result msv_client_connect(msv_client *c)
{
	if (!c->o.token)
		return connect_once(c);
	msv_result r = fetch_token(c, 0);
	if (r)
		return r;
	r = connect_once(c);
	if (r != MSV_E_AUTH_FAILED || !c->smtp || !msv_smtp_token_refused(c->smtp))
		return r;
	info(c, "bearer token refused (%s): renewing it and retrying once", c->err.server_text);
	if ((r = fetch_token(c, 1)))
		return r;
	return connect_once(c);
}

/* The transaction is over: success if anyone accepted, else the reason
 * nobody did, as a class the caller can act on. */
static msv_result txn_outcome(msv_client *c, const msv_smtp_txn *t)
{
	if (t->accepted)
		return MSV_OK;
	const msv_smtp_reply *first = NULL;
	int any_temp = 0;
	for (size_t i = 0; i < t->nrcpt; i++) {
		const msv_smtp_reply *r = &t->rcpt[i].reply;
		if (!first)
			first = r;
		if (r->code >= 400 && r->code < 500)
			any_temp = 1;
	}
	/* If any refusal was temporary a retry can still succeed; no one
	 * got the message, so a retry cannot duplicate it. */
	msv_error_set(&c->err, MSV_E_REFUSED, any_temp ? MSV_CLASS_TEMPORARY : MSV_CLASS_PERMANENT,
	              "no recipient accepted: %d%s%s %s", first ? first->code : 0,
	              first && first->enhanced[0] ? " " : "", first ? first->enhanced : "",
	              first ? first->text : "");
	if (first) {
		c->err.reply_code = first->code;
		memcpy(c->err.enhanced, first->enhanced, sizeof(c->err.enhanced));
		snprintf(c->err.server_text, sizeof(c->err.server_text), "%s", first->text);
	}
	return MSV_E_REFUSED;
}

static msv_result send_common(msv_client *c, const msv_envelope *env, const char *msg, size_t len,
                              msv_read_fn fn, void *payload, const msv_smtp_txn **txn)
{
	if (txn)
		*txn = NULL;
	if (c->fd < 0)
		return msv_error_set(&c->err, MSV_E_STATE, MSV_CLASS_USAGE, "not connected");
	if (msv_smtp_begin(c->smtp, env)) {
		c->err = *msv_smtp_error(c->smtp);
		return c->err.code;
	}
	char *chunk = NULL;
	size_t off = 0;
	msv_smtp_event ev;
	while ((ev = drive(c)) == MSV_SMTP_WANT_BODY) {
		msv_result r;
		if (fn) {
			if (!chunk && !(chunk = msv_malloc(BODY_CHUNK))) {
				msv_error_set(&c->err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
				break;
			}
			long n = fn(payload, chunk, BODY_CHUNK);
			if (n < 0) {
				/* Never end the data on a failed read: the server would
				 * deliver a truncated message.  Dropping the connection
				 * makes it discard what it has. */
				msv_error_set(&c->err, MSV_E_BAD_MESSAGE, MSV_CLASS_LOCAL,
				              "reading the message failed; the transfer was aborted");
				break;
			}
			r = n ? msv_smtp_body(c->smtp, chunk, (size_t)n) : msv_smtp_body_end(c->smtp);
		} else {
			size_t n = len - off < BODY_CHUNK ? len - off : BODY_CHUNK;
			r = n ? msv_smtp_body(c->smtp, msg + off, n) : MSV_OK;
			off += n;
			/* The last piece and the end of data leave in one write. */
			if (!r && off == len)
				r = msv_smtp_body_end(c->smtp);
		}
		if (r) {
			c->err = *msv_smtp_error(c->smtp);
			break;
		}
	}
	msv_free(chunk);
	if (ev == MSV_SMTP_TXN_DONE) {
		const msv_smtp_txn *t = msv_smtp_result(c->smtp);
		if (txn)
			*txn = t;
		return txn_outcome(c, t);
	}
	/* The session is unusable: whatever state it was in. */
	msv_result code = c->err.code ? c->err.code : MSV_E_PROTOCOL;
	close_conn(c);
	return code;
}

msv_result msv_client_send(msv_client *c, const msv_envelope *env, const char *msg, size_t len,
                           const msv_smtp_txn **txn)
{
	return send_common(c, env, msg, len, NULL, NULL, txn);
}

msv_result msv_client_send_stream(msv_client *c, const msv_envelope *env, msv_read_fn fn,
                                  void *payload, const msv_smtp_txn **txn)
{
	return send_common(c, env, NULL, 0, fn, payload, txn);
}

/* Gives message bytes while the engine wants them; PREV_DONE events met
 * on the way are reported.  Returns the event that ended the body. */
typedef struct many {
	msv_client *c;
	msv_client_done_fn done;
	void *payload;
	size_t prev, cur; /* indexes awaiting their final reply; NONE if none */
} many;

#define NONE ((size_t)-1)

static void report(many *m, size_t *slot, const msv_smtp_txn *t)
{
	msv_result code = txn_outcome(m->c, t);
	m->done(m->payload, *slot, code, t, &m->c->err);
	msv_error_clear(&m->c->err);
	*slot = NONE;
}

/* Runs the engine; PREV_DONE is handled here, anything else returned. */
static msv_smtp_event drive_many(many *m)
{
	for (;;) {
		msv_smtp_event ev = drive(m->c);
		if (ev != MSV_SMTP_PREV_DONE)
			return ev;
		report(m, &m->prev, msv_smtp_prev_result(m->c->smtp));
	}
}

msv_result msv_client_send_many(msv_client *c, const msv_message *msgs, size_t n,
                                msv_client_done_fn done, void *payload)
{
	many m = {c, done, payload, NONE, NONE};
	size_t i = 0;
	msv_smtp_event ev = MSV_SMTP_READY;
	if (c->fd < 0) {
		msv_error_set(&c->err, MSV_E_STATE, MSV_CLASS_USAGE, "not connected");
		goto failed;
	}
	for (; i < n; i++) {
		while (msv_smtp_begin(c->smtp, msgs[i].env)) {
			if (msv_smtp_error(c->smtp)->code != MSV_E_STATE) {
				/* refused before anything was sent (SIZE, address...) */
				c->err = *msv_smtp_error(c->smtp);
				done(payload, i, c->err.code, NULL, &c->err);
				msv_error_clear(&c->err);
				goto next;
			}
			/* the previous one cannot overlap: wait for its end */
			ev = drive_many(&m);
			if (ev != MSV_SMTP_TXN_DONE)
				goto failed;
			report(&m, &m.cur, msv_smtp_result(c->smtp));
		}
		if (m.cur != NONE)
			m.prev = m.cur; /* overlapped: the earlier one finishes aside */
		m.cur = i;
		size_t off = 0;
		while ((ev = drive_many(&m)) == MSV_SMTP_WANT_BODY) {
			size_t k = msgs[i].len - off < BODY_CHUNK ? msgs[i].len - off : BODY_CHUNK;
			msv_result r = k ? msv_smtp_body(c->smtp, msgs[i].data + off, k) : MSV_OK;
			off += k;
			if (!r && off == msgs[i].len) {
				r = msv_smtp_body_end(c->smtp);
				if (!r)
					goto next; /* "." goes out with the next envelope */
			}
			if (r) {
				c->err = *msv_smtp_error(c->smtp);
				goto failed;
			}
		}
		if (ev != MSV_SMTP_TXN_DONE)
			goto failed;
		report(&m, &m.cur, msv_smtp_result(c->smtp)); /* ended without data */
next:;
	}
	while (m.cur != NONE || m.prev != NONE) {
		ev = drive_many(&m);
		if (ev != MSV_SMTP_TXN_DONE)
			goto failed;
		report(&m, &m.cur, msv_smtp_result(c->smtp));
	}
	return MSV_OK;
failed:;
	/* The session is gone: whatever was not reported fails with it. */
	msv_error err = c->err.code ? c->err : *msv_smtp_error(c->smtp);
	if (!err.code)
		msv_error_set(&err, MSV_E_PROTOCOL, MSV_CLASS_TEMPORARY, "session ended unexpectedly");
	close_conn(c);
	if (m.prev != NONE)
		done(payload, m.prev, err.code, msv_smtp_prev_result(c->smtp), &err);
	if (m.cur != NONE)
		done(payload, m.cur, err.code, msv_smtp_result(c->smtp), &err);
	for (size_t k = m.cur != NONE ? m.cur + 1 : i; k < n; k++)
		done(payload, k, err.code, NULL, &err);
	c->err = err;
	return err.code;
}

msv_result msv_client_noop(msv_client *c)
{
	if (c->fd < 0)
		return msv_error_set(&c->err, MSV_E_STATE, MSV_CLASS_USAGE, "not connected");
	if (msv_smtp_noop(c->smtp)) {
		c->err = *msv_smtp_error(c->smtp);
		return c->err.code;
	}
	if (drive(c) == MSV_SMTP_READY)
		return MSV_OK;
	close_conn(c);
	return c->err.code ? c->err.code : MSV_E_PROTOCOL;
}

const msv_smtp_txn *msv_client_last_txn(const msv_client *c)
{
	return c->smtp ? msv_smtp_result(c->smtp) : NULL;
}

int msv_client_connected(const msv_client *c)
{
	return c->fd >= 0;
}

msv_result msv_client_quit(msv_client *c)
{
	msv_result r = MSV_OK;
	if (c->fd >= 0 && msv_smtp_quit(c->smtp) == MSV_OK && drive(c) != MSV_SMTP_CLOSED)
		r = c->err.code;
	if (!r && c->tls)
		msv__tls_close_notify(c->tls);
	close_conn(c);
	return r;
}
