/* A progress line on stderr for long runs, shown only on a terminal. */
#ifndef MSV_CLI_PROGRESS_H
#define MSV_CLI_PROGRESS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "missive/pool.h"

typedef struct cli_progress {
	pthread_mutex_t lock;
	size_t done, failed, total;
	int64_t t0, last_print;
	int tty;
} cli_progress;

void cli_progress_init(cli_progress *pg, size_t total);
void cli_progress_done(cli_progress *pg);
/* An msv_pool_progress_fn: payload is the cli_progress. */
void cli_progress_cb(void *payload, size_t index, const msv_pool_result *res);

#endif
