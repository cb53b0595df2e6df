/*
 * Fills a queue for bench/scaleout.sh: N messages of SIZE bytes to one
 * recipient each, committed in batches of 500, due now, on route
 * "default".  Delivery alone is then timed, without the submission.
 *
 *   scaleout_fill QUEUE N SIZE      QUEUE: a file, or postgresql://...
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "missive/queue.h"

#define BATCH 500

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: scaleout_fill QUEUE N SIZE\n");
		return 64;
	}
	long n = atol(argv[2]), size = atol(argv[3]);
	msv_queue_options o = MSV_QUEUE_OPTIONS_INIT;
	if (strstr(argv[1], "://"))
		o.url = argv[1];
	else
		o.path = argv[1];
	msv_queue *q;
	msv_error err;
	if (msv_queue_open(&q, &o, &err)) {
		fprintf(stderr, "scaleout_fill: %s\n", err.message);
		return 1;
	}
	static msv_queue_message m[BATCH];
	static char mid[BATCH][64], (*ids)[MSV_QID_LEN + 1];
	static const char *rcpt[] = {"rcpt@example.test"};
	char *body = malloc((size_t)size + 256);
	ids = calloc(BATCH, sizeof(*ids));
	if (!body || !ids)
		return 1;
	for (long done = 0; done < n;) {
		size_t k = 0;
		for (; k < BATCH && done + (long)k < n; k++) {
			snprintf(mid[k], sizeof(mid[k]), "<fill-%ld@bench.test>", done + (long)k);
			int h = snprintf(body, 256, "From: <b@bench.test>\r\nTo: <rcpt@example.test>\r\n"
			                            "Message-ID: %s\r\nSubject: bench\r\n\r\n", mid[k]);
			long i = h;
			for (; i < size - 2; i++)
				body[i] = (i - h) % 78 == 77 ? '\n' : 'x';
			/* CRLF line ends throughout */
			for (long j = h; j < i; j++)
				if (body[j] == '\n')
					body[j - 1] = '\r';
			memcpy(body + i, "\r\n", 2);
			m[k] = (msv_queue_message){.sender = "b@bench.test", .rcpt = rcpt, .nrcpt = 1,
			                           .body = strndup(body, (size_t)i + 2),
			                           .len = (size_t)i + 2, .message_id = mid[k],
			                           .route = "default"};
		}
		msv_result rc = msv_queue_submit(q, m, k, msv_wall_ms(), ids, &err);
		for (size_t j = 0; j < k; j++)
			free((char *)m[j].body);
		if (rc) {
			fprintf(stderr, "scaleout_fill: %s\n", err.message);
			return 1;
		}
		done += (long)k;
	}
	msv_queue_close(q);
	free(body);
	free(ids);
	return 0;
}
