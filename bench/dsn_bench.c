/* Bounce parsing rate of libmissive: msv_dsn_parse() over a set of
 * messages held in memory, round after round, on one thread.
 *   dsn_bench SECONDS FILE...
 * Prints "<reports/s> <MB/s> <messages> <recipients per round>" on stdout.
 * Files are read once before timing; each parse is freed before the
 * next, as a bounce handler would. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "missive/dsn.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

typedef struct item {
	char *data;
	size_t len;
} item;

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: dsn_bench SECONDS FILE...\n");
		return 64;
	}
	double secs = strtod(argv[1], NULL);
	if (secs <= 0)
		secs = 3;
	size_t n = (size_t)argc - 2;
	item *items = calloc(n, sizeof(item));
	size_t bytes = 0;
	for (size_t i = 0; i < n; i++) {
		FILE *f = fopen(argv[i + 2], "rb");
		if (!f) {
			perror(argv[i + 2]);
			return 66;
		}
		fseek(f, 0, SEEK_END);
		long sz = ftell(f);
		fseek(f, 0, SEEK_SET);
		items[i].data = malloc(sz > 0 ? (size_t)sz : 1);
		items[i].len = fread(items[i].data, 1, sz > 0 ? (size_t)sz : 0, f);
		fclose(f);
		bytes += items[i].len;
	}
	/* One warm-up round, which also counts the recipients. */
	size_t rcpts = 0, failed = 0;
	for (size_t i = 0; i < n; i++) {
		msv_dsn_report *r;
		msv_error err;
		if (msv_dsn_parse(&r, items[i].data, items[i].len, NULL, &err) == MSV_OK) {
			rcpts += r->nrecipients;
			msv_dsn_report_free(r);
		} else {
			failed++;
		}
	}
	size_t parses = 0, done_bytes = 0;
	double t0 = now_s(), t = t0;
	while (t - t0 < secs) {
		for (size_t i = 0; i < n; i++) {
			msv_dsn_report *r;
			msv_error err;
			if (msv_dsn_parse(&r, items[i].data, items[i].len, NULL, &err) == MSV_OK)
				msv_dsn_report_free(r);
			parses++;
			done_bytes += items[i].len;
		}
		t = now_s();
	}
	double el = t - t0;
	printf("%.0f %.1f %zu %zu %zu\n", (double)parses / el, (double)done_bytes / el / 1e6, n, rcpts,
	       failed);
	for (size_t i = 0; i < n; i++)
		free(items[i].data);
	free(items);
	(void)bytes;
	return 0;
}
