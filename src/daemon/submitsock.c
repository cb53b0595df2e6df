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
#include <sysexits.h>
#include <unistd.h>

#include "daemon.h"
#include "wire.h"

#define CONN_MAX 64     /* connections served at once; more are closed unanswered */
#define IO_TIMEOUT_S 60 /* a client that stalls longer is dropped */

typedef struct submitsock submitsock;

typedef struct conn {
	submitsock *s;
	int fd;        /* -1: slot free */
	int reading;   /* the request is not complete yet */
} conn;

struct submitsock {
	daemon_ctx *d;
	int fd, stop[2];
	pthread_t accepter;
	pthread_mutex_t mu;
	pthread_cond_t idle;
	unsigned active;
	conn slots[CONN_MAX];
};

static void answer(int fd, int rc, const app_submitted *res, const char *error)
{
	msv_buf b;
	msv_buf_init(&b, 1 << 16);
	if (!app_wire_reply(&b, rc, res, error))
		app_wire_send(fd, b.data, b.len);
	msv_buf_free(&b);
}

/* Reads one request whole and answers it. */
static void serve(conn *c)
{
	submitsock *s = c->s;
	daemon_ctx *d = s->d;
	int fd = c->fd;
	msv_buf in;
	msv_buf_init(&in, APP_MESSAGE_MAX + (1u << 20));
	app_wire_req rq;
	char why[256] = "";
	int got = 0;
	while (!got) {
		if (msv_buf_reserve(&in, 1 << 16)) {
			snprintf(why, sizeof(why), "the request is larger than %zu octets", in.max);
			got = -1;
			break;
		}
		ssize_t n = read(fd, in.data + in.len, in.cap - in.len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) /* the client went away or stalled: nothing to answer */
			goto out;
		in.len += (size_t)n;
		got = app_wire_decode(in.data, in.len, &rq, why, sizeof(why));
	}
	if (got < 0) {
		char msg[320];
		snprintf(msg, sizeof(msg), "bad submission: %s", why);
		answer(fd, EX_PROTOCOL, NULL, msg);
		goto out;
	}
	/* From here the client waits for its answer, even through SIGTERM. */
	pthread_mutex_lock(&s->mu);
	c->reading = 0;
	pthread_mutex_unlock(&s->mu);
	app_submitted res;
	msv_error err;
	int rc = app_submit(d->cfg, d->q, rq.msg, rq.msglen, &rq.o, &res, &err);
	app_wire_req_free(&rq);
	if (!rc) {
		metrics_submitted(&d->m, 1);
		daemon_wake(d);
		msv_free(res.message_id);
		/* Who submitted, for the audit trail: the uid, not the addresses. */
		struct ucred cr;
		socklen_t crl = sizeof(cr);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crl))
			cr.uid = (uid_t)-1;
		dlog("%s: queued by uid %ld through the socket, %zu recipient%s", res.id, (long)cr.uid,
		     res.nrcpt, res.nrcpt == 1 ? "" : "s");
	}
	answer(fd, rc, &res, rc ? err.message : NULL);
out:
	msv_buf_free(&in);
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
		conn *c = NULL;
		pthread_mutex_lock(&s->mu);
		for (size_t i = 0; !c && i < CONN_MAX; i++)
			if (s->slots[i].fd < 0)
				c = &s->slots[i];
		if (c) {
			c->fd = fd;
			c->reading = 1;
			s->active++;
		}
		pthread_mutex_unlock(&s->mu);
		/* Full (someone holds CONN_MAX connections open), or no thread: the
		 * client hears nothing and writes the queue itself rather than wait. */
		pthread_t t;
		pthread_attr_t a;
		pthread_attr_init(&a);
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
		if (!c) {
			close(fd);
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
static int clear_stale(const char *path, const struct sockaddr_un *sa)
{
	struct stat st;
	if (lstat(path, &st))
		return 0;
	if (!S_ISSOCK(st.st_mode)) {
		dlog("[daemon] socket %s exists and is not a socket", path);
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int live = fd >= 0 && !connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	if (fd >= 0)
		close(fd);
	if (live) {
		dlog("[daemon] socket %s: another missived is listening there", path);
		return -1;
	}
	unlink(path);
	return 0;
}

int submitsock_start(daemon_ctx *d, submitsock **out)
{
	*out = NULL;
	const char *path = d->cfg->socket_path;
	if (!*path)
		return 0;
	struct sockaddr_un sa;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path) + 1); /* length checked by the config */
	if (clear_stale(path, &sa))
		return EX_UNAVAILABLE;
	submitsock *s = msv_calloc(1, sizeof(*s));
	if (!s)
		return EX_OSERR;
	s->d = d;
	s->stop[0] = s->stop[1] = -1;
	for (size_t i = 0; i < CONN_MAX; i++) {
		s->slots[i].s = s;
		s->slots[i].fd = -1;
	}
	s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	/* Created with no more than socket-mode allows, not widened for a
	 * moment by a lax umask (no other thread creates files yet). */
	mode_t um = umask(~(mode_t)d->cfg->socket_mode & 0777);
	int bad = s->fd < 0 || bind(s->fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(um);
	if (bad || chmod(path, d->cfg->socket_mode) || listen(s->fd, 128) || pipe(s->stop)) {
		dlog("[daemon] socket %s: %s", path, strerror(errno));
		if (s->fd >= 0)
			close(s->fd);
		msv_free(s);
		return EX_CANTCREAT;
	}
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->idle, NULL);
	if (pthread_create(&s->accepter, NULL, accept_main, s)) {
		submitsock_stop(s, 0);
		return EX_OSERR;
	}
	*out = s;
	return 0;
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
