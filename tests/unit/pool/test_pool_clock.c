/*
 * The pool's wait for a free connection is a timeout and must not follow
 * the wall clock (issue 13: condition variables on CLOCK_REALTIME).  This
 * program replaces clock_gettime() for the statically linked library and
 * moves CLOCK_REALTIME an hour back, as a clock step would: a wait whose
 * deadline was computed on CLOCK_REALTIME then ends at once, one on
 * CLOCK_MONOTONIC still lasts wait_timeout_ms.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "missive/pool.h"

/* ---- the clock step ---- */

static atomic_int realtime_back;

/* Replaces libc's for this program and the libmissive.a linked into it;
 * the system call is the real clock (no vDSO, which is fine here). */
int clock_gettime(clockid_t id, struct timespec *ts)
{
	long r = syscall(SYS_clock_gettime, id, ts);
	if (r == 0 && id == CLOCK_REALTIME && atomic_load(&realtime_back))
		ts->tv_sec -= 3600;
	return (int)r;
}

/* ---- a one-connection SMTP server that holds the 250 after DATA ---- */

typedef struct server {
	int lfd;
	unsigned port;
	pthread_t th;
	atomic_int in_data; /* the message is in, its 250 is held */
	atomic_int release; /* set by the test: answer it */
} server;

static void say(int fd, const char *s)
{
	(void)!send(fd, s, strlen(s), MSG_NOSIGNAL);
}

/* One line without CRLF into out; 0 on EOF or after 5 s of silence. */
static int next_line(int fd, char *buf, size_t *len, size_t cap, char *out, size_t outcap)
{
	for (;;) {
		char *nl = memchr(buf, '\n', *len);
		if (nl) {
			size_t n = (size_t)(nl - buf) + 1;
			size_t l = n >= 2 && buf[n - 2] == '\r' ? n - 2 : n - 1;
			l = l < outcap ? l : outcap - 1;
			memcpy(out, buf, l);
			out[l] = '\0';
			memmove(buf, buf + n, *len - n);
			*len -= n;
			return 1;
		}
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, 5000) <= 0)
			return 0;
		ssize_t n = recv(fd, buf + *len, cap - *len, 0);
		if (n <= 0)
			return 0;
		*len += (size_t)n;
	}
}

static void hold(server *sv)
{
	atomic_store(&sv->in_data, 1);
	for (int waited = 0; !atomic_load(&sv->release) && waited < 5000; waited += 5)
		usleep(5000);
}

static void *serve(void *arg)
{
	server *sv = arg;
	int fd = accept(sv->lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	char buf[8192], line[1024];
	size_t len = 0;
	int in_body = 0;
	say(fd, "220 clocktest ESMTP\r\n");
	while (next_line(fd, buf, &len, sizeof(buf), line, sizeof(line))) {
		if (in_body) {
			if (!strcmp(line, ".")) {
				in_body = 0;
				hold(sv);
				say(fd, "250 2.0.0 queued\r\n");
			}
		} else if (!strncmp(line, "EHLO", 4)) {
			say(fd, "250-clocktest\r\n250 PIPELINING\r\n");
		} else if (!strncmp(line, "DATA", 4)) {
			in_body = 1;
			say(fd, "354 go\r\n");
		} else if (!strncmp(line, "QUIT", 4)) {
			say(fd, "221 2.0.0 bye\r\n");
			break;
		} else {
			say(fd, "250 2.0.0 ok\r\n");
		}
	}
	close(fd);
	return NULL;
}

static void server_start(server *sv)
{
	sv->lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t sl = sizeof(a);
	assert_int_equal(bind(sv->lfd, (struct sockaddr *)&a, sl), 0);
	assert_int_equal(listen(sv->lfd, 4), 0);
	assert_int_equal(getsockname(sv->lfd, (struct sockaddr *)&a, &sl), 0);
	sv->port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&sv->th, NULL, serve, sv), 0);
}

/* ---- the test ---- */

static const char MSG[] = "From: a@example.test\r\nTo: b@example.test\r\nSubject: clock\r\n\r\nhi\r\n";
static const char *const RCPT[] = {"b@example.test"};
static const msv_envelope ENV = {.from = "a@example.test", .rcpt = RCPT, .nrcpt = 1};

typedef struct sender {
	msv_pool *p;
	const msv_client_options *route;
	msv_pool_result res;
	msv_result r;
} sender;

static void *send_one(void *arg)
{
	sender *s = arg;
	s->r = msv_pool_send(s->p, s->route, &ENV, MSG, sizeof(MSG) - 1, &s->res);
	return NULL;
}

#define WAIT_MS 800

static void wait_ignores_clock_step(void **state)
{
	(void)state;
	server sv = {0};
	server_start(&sv);
	msv_client_options route = MSV_CLIENT_OPTIONS_INIT;
	route.host = "127.0.0.1";
	route.port = sv.port;
	route.smtp.tls = MSV_TLS_NONE;
	route.command_timeout_ms = 10000;
	msv_pool_options po = MSV_POOL_OPTIONS_INIT;
	po.max_connections = 1;
	po.wait_timeout_ms = WAIT_MS;
	msv_pool *p;
	msv_error err;
	assert_int_equal(msv_pool_new(&p, &po, &err), MSV_OK);

	/* The only connection is borrowed until the server answers DATA. */
	sender a = {.p = p, .route = &route};
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, send_one, &a), 0);
	for (int i = 0; i < 1000 && !atomic_load(&sv.in_data); i++)
		usleep(5000);
	assert_true(atomic_load(&sv.in_data));

	atomic_store(&realtime_back, 1);
	msv_pool_result res;
	int64_t t0 = msv_now_ms();
	msv_result r = msv_pool_send(p, &route, &ENV, MSG, sizeof(MSG) - 1, &res);
	int64_t waited = msv_now_ms() - t0;
	atomic_store(&realtime_back, 0);
	assert_int_equal(r, MSV_E_TIMEOUT);
	msv_pool_result_free(&res);
	/* The full wait, not cut short by the step (nor stretched by it). */
	if (waited < WAIT_MS - 100 || waited > WAIT_MS + 3000)
		fail_msg("waited %lld ms for a free connection, want about %d", (long long)waited, WAIT_MS);

	atomic_store(&sv.release, 1);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(a.r, MSV_OK);
	msv_pool_result_free(&a.res);
	msv_pool_free(p);
	assert_int_equal(pthread_join(sv.th, NULL), 0);
	close(sv.lfd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(wait_ignores_clock_step),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
