/* Progress display: "sent/total, failed, rate, ETA", redrawn at most
 * five times a second, and only when stderr is a terminal. */
#include <stdio.h>
#include <unistd.h>

#include "progress.h"

void cli_progress_init(cli_progress *pg, size_t total)
{
	pthread_mutex_init(&pg->lock, NULL);
	pg->done = pg->failed = 0;
	pg->total = total;
	pg->t0 = msv_now_ms();
	pg->last_print = 0;
	pg->tty = isatty(2);
}

void cli_progress_done(cli_progress *pg)
{
	pthread_mutex_destroy(&pg->lock);
}

void cli_progress_cb(void *payload, size_t index, const msv_pool_result *res)
{
	(void)index;
	cli_progress *pg = payload;
	pthread_mutex_lock(&pg->lock);
	pg->done++;
	pg->failed += res->code != MSV_OK;
	int64_t now = msv_now_ms();
	if (pg->tty && (now - pg->last_print >= 200 || pg->done == pg->total)) {
		double secs = (double)(now - pg->t0) / 1000.0;
		double rate = secs > 0 ? (double)pg->done / secs : 0;
		double eta = rate > 0 ? (double)(pg->total - pg->done) / rate : 0;
		fprintf(stderr, "\r%zu/%zu sent, %zu failed, %.0f msg/s, ETA %.0f s   ", pg->done,
		        pg->total, pg->failed, rate, eta);
		if (pg->done == pg->total)
			fputc('\n', stderr);
		pg->last_print = now;
	}
	pthread_mutex_unlock(&pg->lock);
}
