/*
 * The connection pool against an in-process SMTP server on 127.0.0.1
 * that counts sessions and messages and misbehaves on request: closes
 * idle sessions, answers 421 on reuse, drops the connection mid-DATA.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "missive/pool.h"

#define MAX_CONN_THREADS 64

typedef struct server {
	int lfd;
	unsigned port;
	pthread_t acceptor;
	pthread_t th[MAX_CONN_THREADS];
	atomic_int nth;
	atomic_int stop;
	/* behaviour */
	int idle_close_ms;     /* send 421 and close after this much silence */
	int mail_421_after;    /* in each session, 421 to MAIL number N+1 (0: never) */
	int drop_data_msg;     /* drop the connection in the DATA of message N overall (0: never) */
	int hold_data_msg;     /* hold the 250 of message N overall until release (0: never) */
	atomic_int release;    /* set by the test: answer the held message */
	atomic_int hold_timed_out; /* the held 250 went out only after HOLD_MAX_MS */
	/* counters */
	atomic_int sessions;
	atomic_int messages;   /* completed with 250 */
	atomic_int data_seen;  /* DATA commands answered 354 */
	atomic_int concurrent;
	atomic_int max_concurrent;
	atomic_int rsets;
	atomic_int noops;
} server;

typedef struct session {
	server *sv;
	int fd;
	char buf[65536];
	size_t len;
} session;

static void say(int fd, const char *s)
{
	(void)!send(fd, s, strlen(s), MSG_NOSIGNAL);
}

/* Next line into out (without CRLF); 0 on EOF or idle close. */
static int next_line(session *ss, char *out, size_t cap, int idle_ms)
{
	for (;;) {
		char *nl = memchr(ss->buf, '\n', ss->len);
		if (nl) {
			size_t n = (size_t)(nl - ss->buf) + 1;
			size_t l = n >= 2 && ss->buf[n - 2] == '\r' ? n - 2 : n - 1;
			if (l >= cap)
				l = cap - 1;
			memcpy(out, ss->buf, l);
			out[l] = '\0';
			memmove(ss->buf, ss->buf + n, ss->len - n);
			ss->len -= n;
			return 1;
		}
		struct pollfd p = {ss->fd, POLLIN, 0};
		int r = poll(&p, 1, idle_ms > 0 ? idle_ms : 5000);
		if (r == 0 && idle_ms > 0) {
			say(ss->fd, "421 4.4.2 idle timeout, closing\r\n");
			return 0;
		}
		if (r <= 0 || atomic_load(&ss->sv->stop))
			return 0;
		ssize_t n = recv(ss->fd, ss->buf + ss->len, sizeof(ss->buf) - ss->len, 0);
		if (n <= 0)
			return 0;
		ss->len += (size_t)n;
	}
}

/* Longest a held 250 waits for the test to release it. */
#define HOLD_MAX_MS 3000

static void hold(server *sv)
{
	for (int waited = 0; !atomic_load(&sv->release); waited += 5) {
		if (waited >= HOLD_MAX_MS) {
			atomic_store(&sv->hold_timed_out, 1);
			return;
		}
		usleep(5000);
	}
}

static void *serve_session(void *arg)
{
	session *ss = arg;
	server *sv = ss->sv;
	int cur = atomic_fetch_add(&sv->concurrent, 1) + 1;
	int prev = atomic_load(&sv->max_concurrent);
	while (cur > prev && !atomic_compare_exchange_weak(&sv->max_concurrent, &prev, cur))
		;
	atomic_fetch_add(&sv->sessions, 1);
	say(ss->fd, "220 pooltest ESMTP\r\n");
	char line[1024];
	int mails = 0, rcpts_ok = 0;
	/* replies leave at once, as a real server flushes them */
	int one = 1;
	setsockopt(ss->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	while (next_line(ss, line, sizeof(line), sv->idle_close_ms)) {
		if (!strncmp(line, "EHLO", 4)) {
			say(ss->fd, "250-pooltest\r\n250-PIPELINING\r\n250 8BITMIME\r\n");
		} else if (!strncmp(line, "MAIL", 4)) {
			if (sv->mail_421_after && ++mails > sv->mail_421_after) {
				say(ss->fd, "421 4.3.2 shutting down\r\n");
				break;
			}
			rcpts_ok = 0;
			say(ss->fd, "250 2.1.0 ok\r\n");
		} else if (!strncmp(line, "RCPT", 4)) {
			int refuse = strstr(line, "refuse") != NULL;
			rcpts_ok += !refuse;
			say(ss->fd, refuse ? "550 5.1.1 no such user\r\n" : "250 2.1.5 ok\r\n");
		} else if (!strncmp(line, "DATA", 4) && !rcpts_ok) {
			say(ss->fd, "554 5.5.1 no valid recipients\r\n");
		} else if (!strncmp(line, "DATA", 4)) {
			int n = atomic_fetch_add(&sv->data_seen, 1) + 1;
			say(ss->fd, "354 go\r\n");
			int dropped = 0, done = 0;
			while (!done && next_line(ss, line, sizeof(line), 0)) {
				if (sv->drop_data_msg == n) {
					dropped = 1;
					break;
				}
				done = !strcmp(line, ".");
			}
			if (dropped || !done)
				break;
			if (sv->hold_data_msg == n)
				hold(sv);
			atomic_fetch_add(&sv->messages, 1);
			say(ss->fd, "250 2.0.0 queued\r\n");
		} else if (!strncmp(line, "RSET", 4)) {
			rcpts_ok = 0;
			atomic_fetch_add(&sv->rsets, 1);
			say(ss->fd, "250 2.0.0 ok\r\n");
		} else if (!strncmp(line, "NOOP", 4)) {
			atomic_fetch_add(&sv->noops, 1);
			say(ss->fd, "250 2.0.0 ok\r\n");
		} else if (!strncmp(line, "QUIT", 4)) {
			say(ss->fd, "221 2.0.0 bye\r\n");
			break;
		} else {
			say(ss->fd, "502 5.5.2 what\r\n");
		}
	}
	close(ss->fd);
	atomic_fetch_sub(&sv->concurrent, 1);
	free(ss);
	return NULL;
}

static void *acceptor(void *arg)
{
	server *sv = arg;
	for (;;) {
		int fd = accept(sv->lfd, NULL, NULL);
		if (fd < 0 || atomic_load(&sv->stop)) {
			if (fd >= 0)
				close(fd);
			return NULL;
		}
		/* no cmocka asserts off the main thread: they longjmp */
		int i = atomic_fetch_add(&sv->nth, 1);
		session *ss = calloc(1, sizeof(*ss));
		if (i >= MAX_CONN_THREADS || !ss)
			abort();
		ss->sv = sv;
		ss->fd = fd;
		if (pthread_create(&sv->th[i], NULL, serve_session, ss))
			abort();
	}
}

static void server_start(server *sv)
{
	sv->lfd = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	setsockopt(sv->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in a;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t sl = sizeof(a);
	assert_int_equal(bind(sv->lfd, (struct sockaddr *)&a, sl), 0);
	assert_int_equal(listen(sv->lfd, 64), 0);
	assert_int_equal(getsockname(sv->lfd, (struct sockaddr *)&a, &sl), 0);
	sv->port = ntohs(a.sin_port);
	assert_int_equal(pthread_create(&sv->acceptor, NULL, acceptor, sv), 0);
}

static void server_stop(server *sv)
{
	atomic_store(&sv->stop, 1);
	shutdown(sv->lfd, SHUT_RDWR);
	pthread_join(sv->acceptor, NULL);
	for (int i = 0; i < atomic_load(&sv->nth); i++)
		pthread_join(sv->th[i], NULL);
	close(sv->lfd);
}

static msv_client_options route_for(const server *sv)
{
	msv_client_options o = MSV_CLIENT_OPTIONS_INIT;
	o.host = "127.0.0.1";
	o.port = sv->port;
	o.smtp.tls = MSV_TLS_NONE;
	o.command_timeout_ms = 5000;
	return o;
}

static const char MSG[] = "From: a@example.test\r\nTo: b@example.test\r\nSubject: pool\r\n\r\nhello\r\n";
static const char *const RCPT1[] = {"b@example.test"};
static const msv_envelope ENV1 = {.from = "a@example.test", .rcpt = RCPT1, .nrcpt = 1};

static msv_pool *pool_with(unsigned max_conn, unsigned max_msgs)
{
	msv_pool_options po = MSV_POOL_OPTIONS_INIT;
	po.max_connections = max_conn;
	po.max_messages = max_msgs;
	msv_pool *p;
	msv_error err;
	assert_int_equal(msv_pool_new(&p, &po, &err), MSV_OK);
	return p;
}

static void send_ok(msv_pool *p, const msv_client_options *route, msv_pool_result *res)
{
	msv_result r = msv_pool_send(p, route, &ENV1, MSG, sizeof(MSG) - 1, res);
	if (r)
		fail_msg("send failed: %s", res->err.message);
	assert_int_equal(res->accepted, 1);
	assert_int_equal(res->data.code, 250);
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static int open_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	while (d && (e = readdir(d)))
		n += e->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

/* Open descriptors once the in-process server has closed the sessions
 * the pool quit (every 250th message leaves no connection open). */
static int settled_fds(server *sv)
{
	for (int i = 0; i < 2000 && atomic_load(&sv->concurrent); i++)
		sleep_ms(1);
	return open_fds();
}

static void hundred_over_one_connection(void **state)
{
	(void)state;
	server sv = {0};
	server_start(&sv);
	msv_client_options route = route_for(&sv);
	msv_pool *p = pool_with(1, 0);
	for (int i = 0; i < 100; i++) {
		msv_pool_result res;
		send_ok(p, &route, &res);
		assert_int_equal(res.reused, i > 0);
		msv_pool_result_free(&res);
	}
	msv_pool_stats st;
	msv_pool_stats_get(p, &st);
	assert_int_equal(st.connections_opened, 1);
	assert_int_equal(st.connections_reused, 99);
	msv_pool_free(p);
	server_stop(&sv);
	assert_int_equal(atomic_load(&sv.sessions), 1);
	assert_int_equal(atomic_load(&sv.messages), 100);
	/* successful transactions need no RSET */
	assert_int_equal(atomic_load(&sv.rsets), 0);
}

static void batch_over_n_connections(void **state)
{
	(void)state;
	server sv = {0};
	server_start(&sv);
	msv_client_options route = route_for(&sv);
	msv_pool *p = pool_with(4, 0);
	msv_pool_message msgs[100];
	msv_pool_result res[100];
	for (int i = 0; i < 100; i++)
		msgs[i] = (msv_pool_message){&ENV1, MSG, sizeof(MSG) - 1};
	assert_int_equal(msv_pool_send_batch(p, &route, msgs, 100, 8, res, NULL, NULL), MSV_OK);
	for (int i = 0; i < 100; i++) {
		assert_int_equal(res[i].code, MSV_OK);
		msv_pool_result_free(&res[i]);
	}
	msv_pool_free(p);
	server_stop(&sv);
	assert_int_equal(atomic_load(&sv.messages), 100);
	/* in_flight 8 but at most 4 connections per key */
	assert_true(atomic_load(&sv.max_concurrent) <= 4);
	assert_true(atomic_load(&sv.sessions) <= 4);
	assert_true(atomic_load(&sv.sessions) >= 2);
}

static void max_messages_per_connection(void **state)
{
	(void)state;
	server sv = {0};
	server_start(&sv);
	msv_client_options route = route_for(&sv);
	msv_pool *p = pool_with(1, 3);
	for (int i = 0; i < 10; i++) {
		msv_pool_result res;
		send_ok(p, &route, &res);
		msv_pool_result_free(&res);
	}
	msv_pool_free(p);
	server_stop(&sv);
	assert_int_equal(atomic_load(&sv.sessions), 4); /* 3 + 3 + 3 + 1 */
	assert_int_equal(atomic_load(&sv.messages), 10);
}

static void idle_timeout_closes(void **state)
{
	(void)state;
	server sv = {0};
	server_start(&sv);
	msv_client_options route = route_for(&sv);
	msv_pool_options po = MSV_POOL_OPTIONS_INIT;
	po.idle_timeout_ms = 100;
	msv_pool *p;
	msv_error err;
	assert_int_equal(msv_pool_new(&p, &po, &err), MSV_OK);
	msv_pool_result res;
	send_ok(p, &route, &res);
	msv_pool_result_free(&res);
	sleep_ms(250);
	send_ok(p, &route, &res);
	assert_int_equal(res.reused, 0);
	msv_pool_result_free(&res);
	msv_pool_free(p);
	server_stop(&sv);
	assert_int_equal(atomic_load(&sv.sessions), 2);
}

/* The server closes idle sessions (421 + close); the pool finds the dead
 * connection when it reuses it and replaces it, once, transparently. */
static void server_closed_idle_connection(void **state)
{
	(void)state;
	server sv = {0};
	sv.idle_close_ms = 100;
	server_start(&sv);
	msv_client_options route = route_for(&sv);
	msv_pool *p = pool_with(1, 0);
	msv_pool_result res;
	send_ok(p, &route, &res);
	msv_pool_result_free(&res);
	sleep_ms(300);
	send_ok(p, &route, &res);
	assert_int_equal(res.attempts, 2);
	msv_pool_result_free(&res);
	msv_pool_stats st;
	msv_pool_stats_get(p, &st);
	assert_int_equal(st.stale_replaced, 1);
	msv_pool_free(p);
	server_stop(&sv);
	assert_int_equal(atomic_load(&sv.messages), 2);
	assert_int_equal(atomic_load(&sv.sessions), 2);
}

/* A NOOP finds the dead connection before the message is risked. */
static void noop_health_check(void **state)
{
	(void)state;
	server sv = {0};
	sv.idle_close_ms = 150;
	server_start(&sv);
	msv_client_options route = route_for(&sv);
	msv_pool_options po = MSV_POOL_OPTIONS_INIT;
	po.max_connections = 1;
	po.noop_after_ms = 50;
	msv_pool *p;
	msv_error err;
	assert_int_equal(msv_pool_new(&p, &po, &err), MSV_OK);
	msv_pool_result res;
	send_ok(p, &route, &res);
	msv_pool_result_free(&res);
	sleep_ms(80); /* idle past noop_after, still alive: NOOP passes */
	send_ok(p, &route, &res);
	assert_int_equal(res.reused, 1);
	msv_pool_result_free(&res);
	sleep_ms(400); /* now the server has closed it: NOOP fails, new one */
	send_ok(p, &route, &res);
	assert_int_equal(res.reused, 0);
	assert_int_equal(res.attempts, 1);
	msv_pool_result_free(&res);
	msv_pool_free(p);
	server_stop(&sv);
	assert_true(atomic_load(&sv.noops) >= 1);
	assert_int_equal(atomic_load(&sv.messages), 3);
}

/* 421 to MAIL on a reused connection: replaced once, delivered once. */
static void reply_421_on_reuse(void **state)
{
	(void)state;
	server sv = {0};
	sv.mail_421_after = 1;
	server_start(&sv);
	msv_client_options route = route_for(&sv);
	msv_pool *p = pool_with(1, 0);
	for (int i = 0; i < 3; i++) {
		msv_pool_result res;
		send_ok(p, &route, &res);
		assert_int_equal(res.attempts, i ? 2 : 1);
		msv_pool_result_free(&res);
	}
	msv_pool_free(p);
	server_stop(&sv);
	assert_int_equal(atomic_load(&sv.messages), 3); /* none twice, none lost */
}

/* A drop in the middle of DATA: that message fails and is not re-sent by
 * the pool (the server answered MAIL); the others go through. */
static void drop_mid_data_not_resent(void **state)
{
	(void)state;
	server sv = {0};
	sv.drop_data_msg = 2;
	server_start(&sv);
	msv_client_options route = route_for(&sv);
	msv_pool *p = pool_with(1, 0);
	msv_pool_result res[3];
	for (int i = 0; i < 3; i++)
		msv_pool_send(p, &route, &ENV1, MSG, sizeof(MSG) - 1, &res[i]);
	assert_int_equal(res[0].code, MSV_OK);
	assert_int_equal(res[1].code, MSV_E_CLOSED);
	assert_int_equal(res[1].err.cls, MSV_CLASS_TEMPORARY);
	assert_int_equal(res[1].attempts, 1);
	assert_int_equal(res[1].accepted, 0);
	assert_int_equal(res[2].code, MSV_OK);
	for (int i = 0; i < 3; i++)
		msv_pool_result_free(&res[i]);
	msv_pool_free(p);
	server_stop(&sv);
	assert_int_equal(atomic_load(&sv.data_seen), 3);
	assert_int_equal(atomic_load(&sv.messages), 2);
}

/* A refused transaction leaves the connection usable; RSET precedes the
 * next MAIL, and only then. */
static void refused_then_reused_with_rset(void **state)
{
	(void)state;
	server sv = {0};
	server_start(&sv);
	msv_client_options route = route_for(&sv);
	msv_pool *p = pool_with(1, 0);
	static const char *const bad[] = {"refuse@example.test"};
	msv_envelope env = {.from = "a@example.test", .rcpt = bad, .nrcpt = 1};
	msv_pool_result res;
	assert_int_equal(msv_pool_send(p, &route, &env, MSG, sizeof(MSG) - 1, &res), MSV_E_REFUSED);
	assert_int_equal(res.err.cls, MSV_CLASS_PERMANENT);
	assert_int_equal(res.rcpt[0].reply.code, 550);
	msv_pool_result_free(&res);
	send_ok(p, &route, &res);
	assert_int_equal(res.reused, 1);
	msv_pool_result_free(&res);
	msv_pool_free(p);
	server_stop(&sv);
	assert_int_equal(atomic_load(&sv.sessions), 1);
	assert_int_equal(atomic_load(&sv.rsets), 1);
}

/* A batch pipelines messages over one connection; a drop in one
 * message's DATA fails that message only (the server answered its MAIL),
 * and those after it, never answered, go again on a new connection. */
static void batch_drop_mid_data(void **state)
{
	(void)state;
	server sv = {0};
	sv.drop_data_msg = 5;
	server_start(&sv);
	msv_client_options route = route_for(&sv);
	msv_pool *p = pool_with(1, 0);
	msv_pool_message msgs[20];
	msv_pool_result res[20];
	for (int i = 0; i < 20; i++)
		msgs[i] = (msv_pool_message){&ENV1, MSG, sizeof(MSG) - 1};
	assert_int_not_equal(msv_pool_send_batch(p, &route, msgs, 20, 1, res, NULL, NULL), MSV_OK);
	int failed = 0;
	for (int i = 0; i < 20; i++) {
		if (res[i].code) {
			failed++;
			assert_int_equal(i, 4);
			assert_int_equal(res[i].err.cls, MSV_CLASS_TEMPORARY);
		}
		msv_pool_result_free(&res[i]);
	}
	assert_int_equal(failed, 1);
	msv_pool_free(p);
	server_stop(&sv);
	assert_int_equal(atomic_load(&sv.messages), 19); /* none lost, none twice */
}

/* progress fires for each message of a pipelined run as its final reply
 * is read, not when the run ends: missived records each outcome from it,
 * and a kill -9 re-sends only what it had not recorded.  The server holds
 * message 5's 250 until the callback has seen message 4; a pool that
 * reported only at the end of the run would leave it held to the limit. */
typedef struct seen {
	server *sv;
	int calls;
	int order_ok;
} seen;

static void on_progress(void *payload, size_t index, const msv_pool_result *res)
{
	seen *s = payload;
	s->order_ok &= (size_t)s->calls == index && res->code == MSV_OK;
	s->calls++;
	if (index == 3)
		atomic_store(&s->sv->release, 1);
}

static void batch_progress_per_reply(void **state)
{
	(void)state;
	server sv = {0};
	sv.hold_data_msg = 5;
	server_start(&sv);
	msv_client_options route = route_for(&sv);
	msv_pool *p = pool_with(1, 0);
	msv_pool_message msgs[10];
	msv_pool_result res[10];
	for (int i = 0; i < 10; i++)
		msgs[i] = (msv_pool_message){&ENV1, MSG, sizeof(MSG) - 1};
	seen s = {&sv, 0, 1};
	assert_int_equal(msv_pool_send_batch(p, &route, msgs, 10, 1, res, on_progress, &s), MSV_OK);
	for (int i = 0; i < 10; i++)
		msv_pool_result_free(&res[i]);
	msv_pool_free(p);
	server_stop(&sv);
	assert_int_equal(s.calls, 10);
	assert_true(s.order_ok);
	assert_int_equal(atomic_load(&sv.hold_timed_out), 0);
	assert_int_equal(atomic_load(&sv.messages), 10);
}

/* 421 in the middle of a pipelined run: nothing lost, nothing twice. */
static void batch_421_mid_run(void **state)
{
	(void)state;
	server sv = {0};
	sv.mail_421_after = 3;
	server_start(&sv);
	msv_client_options route = route_for(&sv);
	msv_pool *p = pool_with(2, 0);
	msv_pool_message msgs[20];
	msv_pool_result res[20];
	for (int i = 0; i < 20; i++)
		msgs[i] = (msv_pool_message){&ENV1, MSG, sizeof(MSG) - 1};
	msv_result rc = msv_pool_send_batch(p, &route, msgs, 20, 2, res, NULL, NULL);
	for (int i = 0; i < 20; i++) {
		if (res[i].code)
			fail_msg("message %d: %s (attempts %u, reused %d)", i, res[i].err.message,
			         res[i].attempts, res[i].reused);
		msv_pool_result_free(&res[i]);
	}
	assert_int_equal(rc, MSV_OK);
	msv_pool_free(p);
	server_stop(&sv);
	assert_int_equal(atomic_load(&sv.messages), 20);
}

/* Many sends: no leak (LeakSanitizer) and a constant number of open
 * descriptors. */
static void many_sends_constant_fds(void **state)
{
	(void)state;
	server sv = {0};
	server_start(&sv);
	msv_client_options route = route_for(&sv);
	msv_pool *p = pool_with(2, 250);
	int fds_before = -1;
	for (int i = 0; i < 10000; i++) {
		msv_pool_result res;
		send_ok(p, &route, &res);
		msv_pool_result_free(&res);
		if (i == 999)
			fds_before = settled_fds(&sv);
	}
	assert_int_equal(settled_fds(&sv), fds_before);
	msv_pool_free(p);
	server_stop(&sv);
	assert_int_equal(atomic_load(&sv.messages), 10000);
	assert_int_equal(atomic_load(&sv.sessions), 40); /* 10000 / 250 */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(hundred_over_one_connection),
		cmocka_unit_test(batch_over_n_connections),
		cmocka_unit_test(max_messages_per_connection),
		cmocka_unit_test(idle_timeout_closes),
		cmocka_unit_test(server_closed_idle_connection),
		cmocka_unit_test(noop_health_check),
		cmocka_unit_test(reply_421_on_reuse),
		cmocka_unit_test(drop_mid_data_not_resent),
		cmocka_unit_test(refused_then_reused_with_rset),
		cmocka_unit_test(batch_drop_mid_data),
		cmocka_unit_test(batch_421_mid_run),
		cmocka_unit_test(batch_progress_per_reply),
		cmocka_unit_test(many_sends_constant_fds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
