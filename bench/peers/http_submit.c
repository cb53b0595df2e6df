/* A small, fast client for missived's HTTP API, for bench/relay.sh:
 * MESSAGES POSTs of one raw message to /v1/messages over CONNECTIONS
 * keep-alive connections (one thread each, plain sockets, one request in
 * flight per connection), each answer read and checked for 202.
 *
 *   http_submit HOST:PORT MESSAGES CONNECTIONS FILE SENDER RCPT
 *
 * FILE is the message (its line ends become CRLF in the JSON).  With
 * HTTP_SUBMIT_KEY set, every request carries "Authorization: Bearer KEY"
 * (an API key, bench/gateway.sh).  Prints one
 * line: ok=N failed=N seconds=S cpu=S (user+system CPU of this process,
 * so that its own cost can be subtracted or reported).  Exit 0 unless
 * nothing could be sent at all. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static struct sockaddr_in addr;
static char *request;      /* the complete HTTP request, identical for every message */
static size_t request_len;
static atomic_long next_msg, ok_count, fail_count;
static long total;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int dial(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr))) {
		close(fd);
		return -1;
	}
	return fd;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Reads one response; returns its status, 0 when the connection must be
 * reopened (closed, malformed, or "Connection: close"), -1 on error. */
static int read_response(int fd, char *buf, size_t cap, int *reopen)
{
	size_t have = 0;
	char *hdr_end = NULL;
	while (!hdr_end) {
		if (have == cap - 1)
			return -1;
		ssize_t r = read(fd, buf + have, cap - 1 - have);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		have += (size_t)r;
		buf[have] = '\0';
		hdr_end = strstr(buf, "\r\n\r\n");
	}
	int status = 0;
	if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
		return -1;
	size_t clen = 0;
	for (char *p = buf; p < hdr_end; p = strstr(p, "\r\n") + 2) {
		if (!strncasecmp(p, "Content-Length:", 15))
			clen = strtoul(p + 15, NULL, 10);
		else if (!strncasecmp(p, "Connection:", 11) && strcasestr(p, "close") &&
		         strcasestr(p, "close") < strstr(p, "\r\n"))
			*reopen = 1;
	}
	size_t body_have = have - (size_t)(hdr_end + 4 - buf);
	while (body_have < clen) {
		char tmp[4096];
		size_t want = clen - body_have < sizeof(tmp) ? clen - body_have : sizeof(tmp);
		ssize_t r = read(fd, tmp, want);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		body_have += (size_t)r;
	}
	return status;
}

static void *worker(void *arg)
{
	(void)arg;
	char buf[16384];
	int fd = -1;
	for (;;) {
		long i = atomic_fetch_add(&next_msg, 1);
		if (i >= total)
			break;
		int done = 0;
		for (int attempt = 0; attempt < 2 && !done; attempt++) {
			if (fd < 0 && (fd = dial()) < 0)
				break;
			int reopen = 0, st = -1;
			if (!write_all(fd, request, request_len))
				st = read_response(fd, buf, sizeof(buf), &reopen);
			if (st < 0 || reopen) {
				close(fd);
				fd = -1;
			}
			if (st == 202) {
				done = 1;
			} else if (st > 0) {
				if (atomic_load(&fail_count) < 3)
					fprintf(stderr, "http_submit: HTTP %d: %.200s\n", st,
					        strstr(buf, "\r\n\r\n") ? strstr(buf, "\r\n\r\n") + 4 : "");
				break; /* an answer, but not 202: do not resend */
			}
		}
		atomic_fetch_add(done ? &ok_count : &fail_count, 1);
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

/* Appends s as a JSON string body (without quotes), LF and CRLF as \r\n. */
static size_t json_escape(char *out, const char *s, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\r')
			continue;
		if (c == '\n') {
			memcpy(out + o, "\\r\\n", 4);
			o += 4;
		} else if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c < 0x20) {
			o += (size_t)sprintf(out + o, "\\u%04x", c);
		} else {
			out[o++] = (char)c;
		}
	}
	return o;
}

int main(int argc, char **argv)
{
	if (argc != 7) {
		fprintf(stderr, "usage: %s HOST:PORT MESSAGES CONNECTIONS FILE SENDER RCPT\n", argv[0]);
		return 64;
	}
	char host[64];
	const char *colon = strrchr(argv[1], ':');
	if (!colon || (size_t)(colon - argv[1]) >= sizeof(host))
		return 64;
	memcpy(host, argv[1], (size_t)(colon - argv[1]));
	host[colon - argv[1]] = '\0';
	addr.sin_family = AF_INET;
	addr.sin_port = htons((unsigned short)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &addr.sin_addr) != 1)
		return 64;
	total = atol(argv[2]);
	int conns = atoi(argv[3]);
	if (total <= 0 || conns <= 0)
		return 64;

	FILE *f = fopen(argv[4], "rb");
	if (!f) {
		perror(argv[4]);
		return 66;
	}
	static char msg[1 << 20];
	size_t mlen = fread(msg, 1, sizeof(msg), f);
	fclose(f);

	size_t cap = mlen * 6 + 4096;
	char *json = malloc(cap);
	const char *key = getenv("HTTP_SUBMIT_KEY");
	if (key && !*key)
		key = NULL;
	if (key && strlen(key) > 256)
		return 64;
	request = malloc(cap + 512 + 300);
	if (!json || !request)
		return 71;
	size_t jl = (size_t)sprintf(json, "{\"raw\":\"");
	jl += json_escape(json + jl, msg, mlen);
	jl += (size_t)sprintf(json + jl, "\",\"recipients\":[\"%s\"],\"sender\":\"%s\"}", argv[6],
	                      argv[5]);
	request_len = (size_t)sprintf(request,
	                              "POST /v1/messages HTTP/1.1\r\nHost: %s\r\n%s%s%s"
	                              "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
	                              argv[1], key ? "Authorization: Bearer " : "", key ? key : "",
	                              key ? "\r\n" : "", jl);
	memcpy(request + request_len, json, jl);
	request_len += jl;
	free(json);

	pthread_t *th = calloc((size_t)conns, sizeof(*th));
	double t0 = now();
	for (int i = 0; i < conns; i++)
		pthread_create(&th[i], NULL, worker, NULL);
	for (int i = 0; i < conns; i++)
		pthread_join(th[i], NULL);
	double t1 = now();
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	             (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
	printf("ok=%ld failed=%ld seconds=%.3f cpu=%.3f\n", atomic_load(&ok_count),
	       atomic_load(&fail_count), t1 - t0, cpu);
	return atomic_load(&ok_count) ? 0 : 1;
}
