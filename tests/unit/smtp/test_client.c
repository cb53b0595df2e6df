/*
 * The blocking driver against tiny in-process servers on loopback:
 * IPv4 and IPv6, timeouts measured against their settings, the session
 * deadline, cancellation from another thread, refused connections.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "missive/smtp.h"

typedef struct server {
	int lfd;
	unsigned port;
	int greet; /* 0: stay silent after accepting */
	pthread_t th;
} server;

static int listen_on(int family, unsigned *port)
{
	int fd = socket(family, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_storage ss;
	socklen_t sl;
	memset(&ss, 0, sizeof(ss));
	if (family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_addr = in6addr_loopback;
		sl = sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sl = sizeof(*a);
	}
	assert_int_equal(bind(fd, (struct sockaddr *)&ss, sl), 0);
	assert_int_equal(listen(fd, 4), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &sl), 0);
	*port = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
	                                 : ((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

static void say(int fd, const char *s)
{
	size_t n = strlen(s);
	assert_int_equal(send(fd, s, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Reads one command line; returns 0 at EOF. */
static int read_line(int fd, char *buf, size_t cap)
{
	size_t n = 0;
	while (n + 1 < cap) {
		ssize_t r = recv(fd, buf + n, 1, 0);
		if (r <= 0)
			return 0;
		if (buf[n++] == '\n')
			break;
	}
	buf[n] = '\0';
	return 1;
}

static void *serve(void *arg)
{
	server *sv = arg;
	int fd = accept(sv->lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	char line[1024];
	if (sv->greet) {
		say(fd, "220 test ESMTP\r\n");
		while (read_line(fd, line, sizeof(line))) {
			if (!strncmp(line, "EHLO", 4))
				say(fd, "250-test\r\n250 PIPELINING\r\n");
			else if (!strncmp(line, "QUIT", 4)) {
				say(fd, "221 bye\r\n");
				break;
			} else
				say(fd, "502 5.5.1 no\r\n");
		}
	} else {
		/* silent: hold the connection until the client gives up */
		while (recv(fd, line, sizeof(line), 0) > 0)
			;
	}
	close(fd);
	return NULL;
}

static void server_start(server *sv, int family, int greet)
{
	sv->greet = greet;
	sv->lfd = listen_on(family, &sv->port);
	assert_int_equal(pthread_create(&sv->th, NULL, serve, sv), 0);
}

static void server_stop(server *sv)
{
	shutdown(sv->lfd, SHUT_RDWR);
	pthread_join(sv->th, NULL);
	close(sv->lfd);
}

static msv_client *client_for(const char *host, unsigned port, int command_ms, int64_t deadline_ms)
{
	msv_client_options o = MSV_CLIENT_OPTIONS_INIT;
	o.host = host;
	o.port = port;
	o.smtp.tls = MSV_TLS_NONE;
	o.command_timeout_ms = command_ms;
	o.deadline_ms = deadline_ms;
	msv_client *c = NULL;
	msv_error err;
	assert_int_equal(msv_client_new(&c, &o, &err), MSV_OK);
	return c;
}

static void connect_and_quit(int family, const char *host)
{
	server sv;
	server_start(&sv, family, 1);
	msv_client *c = client_for(host, sv.port, 5000, 0);
	assert_int_equal(msv_client_connect(c), MSV_OK);
	assert_true(msv_client_caps_get(c)->flags & MSV_CAP_PIPELINING);
	assert_int_equal(msv_client_quit(c), MSV_OK);
	msv_client_free(c);
	server_stop(&sv);
}

static void test_ipv4(void **state)
{
	(void)state;
	connect_and_quit(AF_INET, "127.0.0.1");
}

static void test_ipv6(void **state)
{
	(void)state;
	connect_and_quit(AF_INET6, "::1");
}

/* The timeout must fire within 10% of its setting. */
static void test_command_timeout(void **state)
{
	(void)state;
	server sv;
	server_start(&sv, AF_INET, 0);
	msv_client *c = client_for("127.0.0.1", sv.port, 800, 0);
	int64_t t0 = msv_now_ms();
	assert_int_equal(msv_client_connect(c), MSV_E_TIMEOUT);
	int64_t took = msv_now_ms() - t0;
	assert_true(took >= 800 && took <= 880);
	assert_int_equal(msv_client_error(c)->cls, MSV_CLASS_TEMPORARY);
	assert_non_null(strstr(msv_client_error(c)->message, "timed out"));
	msv_client_free(c);
	server_stop(&sv);
}

static void test_session_deadline(void **state)
{
	(void)state;
	server sv;
	server_start(&sv, AF_INET, 0);
	msv_client *c = client_for("127.0.0.1", sv.port, 10000, 400);
	int64_t t0 = msv_now_ms();
	assert_int_equal(msv_client_connect(c), MSV_E_TIMEOUT);
	int64_t took = msv_now_ms() - t0;
	assert_true(took >= 400 && took <= 440);
	assert_non_null(strstr(msv_client_error(c)->message, "deadline"));
	msv_client_free(c);
	server_stop(&sv);
}

static void *cancel_later(void *arg)
{
	struct timespec ts = {0, 200 * 1000000L};
	nanosleep(&ts, NULL);
	msv_client_cancel(arg);
	return NULL;
}

static void test_cancel_from_thread(void **state)
{
	(void)state;
	server sv;
	server_start(&sv, AF_INET, 0);
	msv_client *c = client_for("127.0.0.1", sv.port, 10000, 0);
	pthread_t th;
	int64_t t0 = msv_now_ms();
	assert_int_equal(pthread_create(&th, NULL, cancel_later, c), 0);
	assert_int_equal(msv_client_connect(c), MSV_E_CANCELLED);
	int64_t took = msv_now_ms() - t0;
	pthread_join(th, NULL);
	assert_true(took >= 200 && took < 400);
	msv_client_free(c);
	server_stop(&sv);
}

static void test_connection_refused(void **state)
{
	(void)state;
	unsigned port;
	int fd = listen_on(AF_INET, &port);
	close(fd); /* nothing listens there now */
	msv_client *c = client_for("127.0.0.1", port, 2000, 0);
	assert_int_equal(msv_client_connect(c), MSV_E_CONNECT);
	assert_int_equal(msv_client_error(c)->cls, MSV_CLASS_TEMPORARY);
	assert_non_null(strstr(msv_client_error(c)->message, "refused"));
	msv_client_free(c);
}

static void test_send_without_connect(void **state)
{
	(void)state;
	msv_client *c = client_for("127.0.0.1", 25, 1000, 0);
	const char *rcpt[] = {"b@example.test"};
	msv_envelope env = {.from = "a@example.test", .rcpt = rcpt, .nrcpt = 1};
	const msv_smtp_txn *t;
	assert_int_equal(msv_client_send(c, &env, "x", 1, &t), MSV_E_STATE);
	assert_null(t);
	msv_client_free(c);
}

/* ---- a token source (msv_client_options.token) ---- */

typedef struct bearer_server {
	int lfd;
	unsigned port;
	int refuse;            /* connections whose AUTH gets the error challenge */
	int conns;
	char payload[2][512];  /* the decoded AUTH payload of each connection */
	char answer[2][64];    /* the client's answer to the challenge */
	pthread_t th;
} bearer_server;

static void bearer_session(bearer_server *sv, int fd, int i)
{
	char line[2048];
	say(fd, "220 test ESMTP\r\n");
	while (read_line(fd, line, sizeof(line))) {
		if (!strncmp(line, "EHLO", 4)) {
			say(fd, "250-test\r\n250 AUTH XOAUTH2 OAUTHBEARER\r\n");
		} else if (!strncmp(line, "AUTH OAUTHBEARER ", 17)) {
			msv_buf b;
			msv_buf_init(&b, 1024);
			assert_int_equal(msv_base64_decode(&b, line + 17, strcspn(line + 17, "\r\n")), MSV_OK);
			snprintf(sv->payload[i], sizeof(sv->payload[i]), "%.*s", (int)b.len, b.data);
			msv_buf_free(&b);
			if (i >= sv->refuse) {
				say(fd, "235 2.7.0 ok\r\n");
				continue;
			}
			say(fd, "334 eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIn0=\r\n");
			if (read_line(fd, line, sizeof(line)))
				snprintf(sv->answer[i], sizeof(sv->answer[i]), "%.63s", line);
			say(fd, "535 5.7.8 no\r\n");
		} else if (!strncmp(line, "QUIT", 4)) {
			say(fd, "221 bye\r\n");
			break;
		} else {
			say(fd, "502 5.5.1 no\r\n");
		}
	}
}

static void *serve_bearer(void *arg)
{
	bearer_server *sv = arg;
	for (int i = 0; i < 2; i++) {
		int fd = accept(sv->lfd, NULL, NULL);
		if (fd < 0)
			return NULL;
		sv->conns++;
		bearer_session(sv, fd, i);
		close(fd);
	}
	return NULL;
}

typedef struct token_calls {
	int n;
	int force[4];
} token_calls;

static msv_result token_fn(void *payload, int force, msv_buf *out, msv_error *err)
{
	(void)err;
	token_calls *t = payload;
	if (t->n < 4)
		t->force[t->n] = force;
	t->n++;
	return msv_buf_addstr(out, force ? "tok-fresh" : "tok-stale");
}

static msv_result bearer_connect(bearer_server *sv, token_calls *calls, msv_error *err)
{
	sv->lfd = listen_on(AF_INET, &sv->port);
	assert_int_equal(pthread_create(&sv->th, NULL, serve_bearer, sv), 0);
	msv_client_options o = MSV_CLIENT_OPTIONS_INIT;
	o.host = "127.0.0.1";
	o.port = sv->port;
	o.smtp.tls = MSV_TLS_NONE;
	o.smtp.allow_plaintext_auth = 1;
	o.smtp.user = "me@example.org";
	o.command_timeout_ms = 5000;
	o.token = token_fn;
	o.token_payload = calls;
	msv_client *c = NULL;
	assert_int_equal(msv_client_new(&c, &o, err), MSV_OK);
	msv_result r = msv_client_connect(c);
	*err = *msv_client_error(c);
	if (!r)
		(void)msv_client_quit(c);
	msv_client_free(c);
	shutdown(sv->lfd, SHUT_RDWR);
	pthread_join(sv->th, NULL);
	close(sv->lfd);
	return r;
}

/* The server refuses the cached token with its error challenge: one
 * forced renewal, one more connection, with the new token. */
static void test_token_refused_once(void **state)
{
	(void)state;
	bearer_server sv = {.refuse = 1};
	token_calls calls = {0};
	msv_error err;
	assert_int_equal(bearer_connect(&sv, &calls, &err), MSV_OK);
	assert_int_equal(calls.n, 2);
	assert_int_equal(calls.force[0], 0);
	assert_int_equal(calls.force[1], 1);
	assert_int_equal(sv.conns, 2);
	assert_string_equal(sv.answer[0], "AQ==\r\n"); /* RFC 7628 3.2.3 */
	assert_non_null(strstr(sv.payload[0], "auth=Bearer tok-stale\001"));
	assert_non_null(strstr(sv.payload[1], "auth=Bearer tok-fresh\001"));
	char hp[64];
	snprintf(hp, sizeof(hp), "\001host=127.0.0.1\001port=%u\001", sv.port);
	assert_non_null(strstr(sv.payload[1], hp));
	assert_memory_equal(sv.payload[1], "n,a=me@example.org,\001", 20);
}

/* Refused again with the fresh token: final, permanent, the server's
 * JSON status in the error; no third try. */
static void test_token_refused_twice(void **state)
{
	(void)state;
	bearer_server sv = {.refuse = 2};
	token_calls calls = {0};
	msv_error err;
	assert_int_equal(bearer_connect(&sv, &calls, &err), MSV_E_AUTH_FAILED);
	assert_int_equal(err.cls, MSV_CLASS_PERMANENT);
	assert_int_equal(calls.n, 2);
	assert_int_equal(sv.conns, 2);
	assert_non_null(strstr(err.server_text, "status=401"));
}

static void test_bad_ca_file_is_config_error(void **state)
{
	(void)state;
	msv_client_options o = MSV_CLIENT_OPTIONS_INIT;
	o.host = "127.0.0.1";
	o.ca_file = "/nonexistent/ca.pem";
	msv_client *c = NULL;
	msv_error err;
	assert_int_equal(msv_client_new(&c, &o, &err), MSV_E_CONFIG);
	assert_int_equal(err.cls, MSV_CLASS_CONFIG);
	assert_non_null(strstr(err.message, "/nonexistent/ca.pem"));
	assert_null(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ipv4),
		cmocka_unit_test(test_ipv6),
		cmocka_unit_test(test_command_timeout),
		cmocka_unit_test(test_session_deadline),
		cmocka_unit_test(test_cancel_from_thread),
		cmocka_unit_test(test_connection_refused),
		cmocka_unit_test(test_send_without_connect),
		cmocka_unit_test(test_bad_ca_file_is_config_error),
		cmocka_unit_test(test_token_refused_once),
		cmocka_unit_test(test_token_refused_twice),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
