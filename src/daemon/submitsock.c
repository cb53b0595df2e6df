/* The submission socket: `missive sendmail` hands its message to missived
 * here (framing in src/app/wire.h).  A thread per connection, so that
 * concurrent submissions share one group commit; the reply goes out only
 * once the message is durable.  Any local user the socket's mode admits
 * may submit, as with sendmail(8); nothing can be read back through it. */
#define _GNU_SOURCE /* struct ucred */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "audit_trail.h"
#include "daemon.h"
#include "exit_code.h"
#include "gateway.h"
#include "sendmail_wire.h"

/* Connections served at once.  One local user holds at most
 * [daemon] socket-max-per-uid of them (root: any), so 64 connections held
 * open by one user no longer shut every other user out (issue 12). */
#define CONN_MAX 128
#define IO_TIMEOUT_S 60 /* a client that stalls longer is dropped */
#define READ_CHUNK (1u << 16)

typedef struct submitsock submitsock;

typedef struct conn {
	submitsock *s;
	int fd;        /* -1: slot free */
	int reading;   /* the request is not complete yet */
	long uid;      /* the peer's, from SO_PEERCRED at accept; -1: unknown */
} conn;

struct submitsock {
	daemon_ctx *d;
	int fd, stop[2];
	pthread_t accepter;
	pthread_mutex_t mu;
	pthread_cond_t idle;
	unsigned active;
	size_t inflight; /* octets of request buffers held, all connections */
	conn slots[CONN_MAX];
};

/* The answer to a request: err NULL when queued (res says where), else
 * its sysexits code (app_exit_code(), as `missive sendmail` would exit
 * writing the queue itself) and its message. */
static void answer(int fd, const msv_error *err, const app_submitted *res)
{
	msv_buf b;
	msv_buf_init(&b, 1 << 16);
	if (!app_wire_reply(&b, err ? app_exit_code(err) : 0, res, err ? err->message : NULL))
		app_wire_send(fd, b.data, b.len);
	msv_buf_free(&b);
}

/* Makes room for the next read in c's request buffer, charged against
 * [daemon] socket-max-inflight before the memory is taken: a set of held
 * connections, each sending a large message slowly, raised missived's
 * RSS by 650 MB.  *charged is what this buffer holds of the budget.  0,
 * or -1 (over budget or out of memory: try later) or -2 (larger than a
 * request may be), with why set. */
static int grow(submitsock *s, msv_buf *in, size_t *charged, char *why, size_t whysz)
{
	if (in->len + READ_CHUNK + 1 <= in->cap)
		return 0;
	if (in->len + READ_CHUNK > in->max) {
		snprintf(why, whysz, "the request is larger than %zu octets", in->max);
		return -2;
	}
	/* msv_buf_reserve doubles: the new size is under twice what is needed. */
	size_t need = 2 * (in->len + READ_CHUNK + 1), budget = s->d->cfg->socket_max_inflight;
	if (need > in->max + 1)
		need = in->max + 1;
	int ok;
	pthread_mutex_lock(&s->mu);
	ok = s->inflight - *charged + need <= budget;
	if (ok)
		s->inflight += need - *charged;
	pthread_mutex_unlock(&s->mu);
	if (!ok) {
		snprintf(why, whysz, "missived is busy: the requests in progress hold [daemon] "
		                     "socket-max-inflight (%zu octets); try again later", budget);
		return -1;
	}
	*charged = need;
	int r = msv_buf_reserve(in, READ_CHUNK);
	pthread_mutex_lock(&s->mu);
	s->inflight -= need - (r ? 0 : in->cap); /* what it really took */
	pthread_mutex_unlock(&s->mu);
	*charged = r ? 0 : in->cap;
	if (r) {
		snprintf(why, whysz, "out of memory for the request");
		return -1;
	}
	return 0;
}

/* After an answer sent before the request was read whole (refused early):
 * reads and drops what the client still sends, for at most DRAIN_MS, so
 * the close does not reset the connection: a client blocked sending then
 * got ECONNRESET instead of the answer, and wrote the queue itself or gave
 * up without knowing why. */
#define DRAIN_MS 5000

static void drain(int fd)
{
	char scratch[16384];
	struct timeval tv = {1, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	shutdown(fd, SHUT_WR);
	int64_t end = msv_now_ms() + DRAIN_MS;
	while (msv_now_ms() < end) {
		ssize_t n = read(fd, scratch, sizeof(scratch));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
	}
}

/* Refused at accept: the answer, then the same as drain() but without
 * waiting (the accept thread must not block): what the client already
 * sent is dropped, so the close does not reset the connection. */
static void refuse_now(int fd, const char *msg)
{
	char scratch[16384];
	msv_error busy;
	msv_error_set(&busy, MSV_E_BUSY, MSV_CLASS_TEMPORARY, "%s", msg);
	answer(fd, &busy, NULL);
	shutdown(fd, SHUT_WR);
	for (int i = 0; i < 64 && recv(fd, scratch, sizeof(scratch), MSG_DONTWAIT) > 0; i++)
		;
	close(fd);
}

/* Reads one request whole and answers it. */
static void serve(conn *c)
{
	submitsock *s = c->s;
	daemon_ctx *d = s->d;
	int fd = c->fd;
	msv_buf in;
	msv_buf_init(&in, APP_MESSAGE_MAX + (1u << 20));
	size_t charged = 0;
	app_wire_req rq;
	char why[256] = "";
	int got = 0, busy = 0;
	/* [daemon] socket-timeout bounds the whole request: sendmail reads its
	 * message before it connects, so a request takes milliseconds, and a
	 * client trickling a byte a minute would otherwise keep its slot. */
	int64_t deadline = msv_now_ms() + d->cfg->socket_timeout_ms;
	while (!got) {
		int g = grow(s, &in, &charged, why, sizeof(why));
		if (g) {
			busy = g == -1;
			got = -1;
			break;
		}
		int64_t left = deadline - msv_now_ms();
		struct pollfd pf = {fd, POLLIN, 0};
		if (left <= 0 || poll(&pf, 1, (int)left) == 0) {
			dlog("socket: a request from uid %ld took longer than [daemon] socket-timeout; "
			     "dropped", c->uid);
			goto out;
		}
		ssize_t n = read(fd, in.data + in.len, in.cap - in.len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) /* the client went away or stalled: nothing to answer */
			goto out;
		in.len += (size_t)n;
		got = app_wire_decode_limit(in.data, in.len, d->cfg->max_recipients, &rq, why, sizeof(why));
	}
	if (got < 0) {
		msv_error bad;
		/* Over the budget or out of memory: 75, the client writes the
		 * queue itself or tries later.  A recipient cap: the message's
		 * fault (65).  Anything else: the client's (76). */
		if (busy)
			msv_error_set(&bad, MSV_E_BUSY, MSV_CLASS_TEMPORARY, "%s", why);
		else if (got == -2)
			msv_error_set(&bad, MSV_E_TOO_MANY_RCPT, MSV_CLASS_USAGE, "%s", why);
		else
			msv_error_set(&bad, MSV_E_BAD_REQUEST, MSV_CLASS_USAGE, "bad submission: %s", why);
		if (busy)
			dlog("socket: a request from uid %ld refused: over [daemon] socket-max-inflight",
			     c->uid);
		/* Free the budget first: the drain may take a while. */
		msv_buf_free(&in);
		pthread_mutex_lock(&s->mu);
		s->inflight -= charged;
		charged = 0;
		pthread_mutex_unlock(&s->mu);
		answer(fd, &bad, NULL);
		drain(fd);
		goto out;
	}
	/* From here the client waits for its answer, even through SIGTERM. */
	pthread_mutex_lock(&s->mu);
	c->reading = 0;
	pthread_mutex_unlock(&s->mu);
	/* The submitter is who the kernel says connected, never what the
	 * request claims: it picks the default sender and the trust. */
	char user[256];
	app_local_user(&rq.o, c->uid, user, sizeof(user));
	/* The uid's limits and reputation (gateway.c); sendmail exits 75 or
	 * 77 with the refusal's one line. */
	gw_ident id;
	gateway_uid_ident(d->gw, c->uid, rq.o.user, &id);
	gw_request adm = {d->gw, &id, {NULL, 0, 0}};
	rq.o.admit = gateway_admit_cb;
	rq.o.admit_payload = &adm;
	rq.o.audit = d->audit;
	rq.o.how = "socket";
	app_submitted res;
	msv_error err;
	msv_result rc = app_submit(d->cfg, d->q, rq.msg, rq.msglen, &rq.o, &res, &err);
	app_wire_req_free(&rq);
	if (rc && res.failed == APP_SUBMIT_ADMIT)
		dlog("socket: a message of uid %ld refused: %s", c->uid, err.message);
	if (!rc) {
		metrics_submitted(&d->m, 1);
		daemon_wake(d);
		msv_free(res.message_id);
		/* Who submitted, for the audit trail: the uid, not the addresses. */
		dlog("%s: queued by uid %ld through the socket, %zu recipient%s%s", res.id, c->uid,
		     res.nrcpt, res.nrcpt == 1 ? "" : "s",
		     res.audit_failed ? "; its message.accepted event could not be written" : "");
	}
	answer(fd, rc ? &err : NULL, &res);
out:
	msv_buf_free(&in);
	pthread_mutex_lock(&s->mu);
	s->inflight -= charged;
	pthread_mutex_unlock(&s->mu);
}

static void *conn_main(void *arg)
{
	conn *c = arg;
	submitsock *s = c->s;
	serve(c);
	pthread_mutex_lock(&s->mu);
	close(c->fd);
	c->fd = -1;
	if (!--s->active)
		pthread_cond_broadcast(&s->idle);
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

static void *accept_main(void *arg)
{
	submitsock *s = arg;
	struct pollfd pf[2] = {{s->fd, POLLIN, 0}, {s->stop[0], POLLIN, 0}};
	int backoff = -1; /* poll timeout: after running out of descriptors, 100 ms */
	for (;;) {
		int n = poll(pf, 2, backoff);
		if (n < 0 && errno != EINTR)
			break;
		if (pf[1].revents)
			break;
		int fd = accept(s->fd, NULL, NULL);
		backoff = fd < 0 && (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
		                     errno == ENOMEM) ? 100 : -1;
		if (fd < 0)
			continue;
		fcntl(fd, F_SETFD, FD_CLOEXEC);
		struct timeval tv = {IO_TIMEOUT_S, 0};
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		struct ucred cr;
		socklen_t crl = sizeof(cr);
		long uid = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crl) ? -1 : (long)cr.uid;
		conn *c = NULL;
		unsigned mine = 0;
		pthread_mutex_lock(&s->mu);
		for (size_t i = 0; i < CONN_MAX; i++) {
			if (s->slots[i].fd < 0 && !c)
				c = &s->slots[i];
			else if (s->slots[i].fd >= 0 && s->slots[i].uid == uid)
				mine++;
		}
		if (uid != 0 && mine >= s->d->cfg->socket_max_per_uid)
			c = NULL;
		if (c) {
			c->fd = fd;
			c->reading = 1;
			c->uid = uid;
			s->active++;
		}
		pthread_mutex_unlock(&s->mu);
		/* Full, this user holds socket-max-per-uid connections, or no
		 * thread: 75 at once (a fresh socket's buffer takes it without
		 * blocking), and the client writes the queue itself or tries
		 * later rather than wait. */
		pthread_t t;
		pthread_attr_t a;
		pthread_attr_init(&a);
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
		if (!c) {
			char msg[200];
			snprintf(msg, sizeof(msg), "missived is busy: %s; try again later",
			         uid != 0 && mine >= s->d->cfg->socket_max_per_uid
			         ? "this user holds [daemon] socket-max-per-uid connections"
			         : "every connection slot is taken");
			refuse_now(fd, msg);
		} else if (pthread_create(&t, &a, conn_main, c)) {
			pthread_mutex_lock(&s->mu);
			close(fd);
			c->fd = -1;
			s->active--;
			pthread_mutex_unlock(&s->mu);
		}
		pthread_attr_destroy(&a);
	}
	return NULL;
}

/* Removes a socket left by a missived that died; refuses to take over a
 * live one or to remove anything that is not a socket. */
static msv_result clear_stale(const char *path, const struct sockaddr_un *sa, msv_error *err)
{
	struct stat st;
	if (lstat(path, &st))
		return MSV_OK;
	if (!S_ISSOCK(st.st_mode))
		return msv_error_set(err, MSV_E_SYSTEM, MSV_CLASS_PERMANENT,
		                     "[daemon] socket %s exists and is not a socket", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int live = fd >= 0 && !connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	if (fd >= 0)
		close(fd);
	if (live)
		return msv_error_set(err, MSV_E_SYSTEM, MSV_CLASS_PERMANENT,
		                     "[daemon] socket %s: another missived is listening there", path);
	unlink(path);
	return MSV_OK;
}

msv_result submitsock_start(daemon_ctx *d, submitsock **out, msv_error *err)
{
	*out = NULL;
	const char *path = d->cfg->socket_path;
	if (!*path)
		return MSV_OK;
	struct sockaddr_un sa;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path) + 1); /* length checked by the config */
	if (clear_stale(path, &sa, err))
		return err->code;
	submitsock *s = msv_calloc(1, sizeof(*s));
	if (!s)
		return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL,
		                     "cannot start the submission socket: out of memory");
	s->d = d;
	s->stop[0] = s->stop[1] = -1;
	for (size_t i = 0; i < CONN_MAX; i++) {
		s->slots[i].s = s;
		s->slots[i].fd = -1;
	}
	s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	/* Created with exactly socket-mode: bind() makes the socket 0777 less
	 * the umask, so the umask is set to the mode's complement for that one
	 * call (no other thread creates files yet).  Never chmod() by path
	 * afterwards: between bind and chmod, whoever can write the directory
	 * could put a symlink there, and chmod follows it (issue 12). */
	mode_t um = umask(~(mode_t)d->cfg->socket_mode & 0777);
	int bad = s->fd < 0 || bind(s->fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(um);
	if (bad || listen(s->fd, 128) || pipe(s->stop)) {
		msv_error_set(err, MSV_E_CANT_CREATE, MSV_CLASS_LOCAL, "[daemon] socket %s: %s", path,
		              strerror(errno));
		if (s->fd >= 0)
			close(s->fd);
		msv_free(s);
		return err->code;
	}
	pthread_mutex_init(&s->mu, NULL);
	daemon_cond_init(&s->idle);
	if (pthread_create(&s->accepter, NULL, accept_main, s)) {
		submitsock_stop(s, 0);
		/* No thread to be had: the system is out of resources (71). */
		return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL,
		                     "cannot start the submission socket's thread");
	}
	*out = s;
	return MSV_OK;
}

void submitsock_stop(submitsock *s, int started)
{
	if (!s)
		return;
	if (started) {
		if (write(s->stop[1], "x", 1) < 0)
			dlog("cannot stop the socket's thread: %s", strerror(errno));
		pthread_join(s->accepter, NULL);
	}
	close(s->fd);
	unlink(s->d->cfg->socket_path);
	/* Submissions in progress finish: their clients wait for the answer.
	 * A client still sending (or idle) is cut off: it writes the queue
	 * itself, and SIGTERM's grace period is not spent waiting for it. */
	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < CONN_MAX; i++)
		if (s->slots[i].fd >= 0 && s->slots[i].reading)
			shutdown(s->slots[i].fd, SHUT_RDWR);
	while (s->active)
		pthread_cond_wait(&s->idle, &s->mu);
	pthread_mutex_unlock(&s->mu);
	close(s->stop[0]);
	close(s->stop[1]);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->idle);
	msv_free(s);
}
