/* libcurl as a benchmark peer: N messages over one reused easy handle. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct src { const char *p; size_t len, off; };

static size_t reader(char *buf, size_t size, size_t n, void *arg)
{
	struct src *s = arg;
	size_t want = size * n, left = s->len - s->off;
	if (want > left)
		want = left;
	memcpy(buf, s->p + s->off, want);
	s->off += want;
	return want;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s smtp://HOST:PORT MESSAGES SIZE\n", argv[0]);
		return 64;
	}
	int n = atoi(argv[2]);
	size_t size = (size_t)atoi(argv[3]);
	char *msg = malloc(size + 200);
	size_t len = (size_t)sprintf(msg, "From: <bench@localhost>\r\nTo: <sink@localhost>\r\nSubject: bench\r\n\r\n");
	while (len + 78 <= size) {
		memset(msg + len, 'x', 76);
		memcpy(msg + len + 76, "\r\n", 2);
		len += 78;
	}
	CURL *c = curl_easy_init();
	struct curl_slist *rcpt = curl_slist_append(NULL, "<sink@localhost>");
	curl_easy_setopt(c, CURLOPT_URL, argv[1]);
	curl_easy_setopt(c, CURLOPT_MAIL_FROM, "<bench@localhost>");
	curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt);
	curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(c, CURLOPT_READFUNCTION, reader);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < n; i++) {
		struct src s = {msg, len, 0};
		curl_easy_setopt(c, CURLOPT_READDATA, &s);
		CURLcode r = curl_easy_perform(c);
		if (r) {
			fprintf(stderr, "curl: %s\n", curl_easy_strerror(r));
			return 1;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("%.1f\n", n / ((double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9));
	curl_slist_free_all(rcpt);
	curl_easy_cleanup(c);
	free(msg);
	return 0;
}
