/*
 * PostgreSQL queue against SQLite on this machine (issue 16):
 *
 *   submit   durable submissions/s: THREADS threads, 1 message (2 KB, 2
 *            recipients) per msv_queue_submit() call on one handle, for
 *            SECONDS; the front's group commit batches them on both
 *            backends;
 *   claim    recipients claimed and recorded per second by PROCS
 *            processes contending on one queue (each its own handle, like
 *            nodes), batches of 16, until the N pre-filled messages are all
 *            sent; also checks that no recipient was claimed twice.
 *
 *   queue_pg_bench submit TARGET SECONDS THREADS
 *   queue_pg_bench claim TARGET N PROCS
 *
 * TARGET is a SQLite file path or a postgresql:// URI.  Prints one line:
 * "submit msgs_per_s transactions messages" or "claim rcpts_per_s total
 * duplicates".  Built by bench/queue_pg.sh.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "missive/queue.h"
#include "queue/queue_int.h"

#define BODY_LEN 2048

static char body[BODY_LEN];
static const char *const rcpt[] = {"bob@example.net", "carol@example.com"};

static void die(const char *what, const msv_error *e)
{
	fprintf(stderr, "queue_pg_bench: %s: %s\n", what, e ? e->message : "");
	exit(1);
}

static msv_queue *open_target(const char *target)
{
	msv_queue_options o = MSV_QUEUE_OPTIONS_INIT;
	o.path = target; /* a postgresql:// path selects the PostgreSQL backend */
	msv_queue *q;
	msv_error e;
	if (msv_queue_open(&q, &o, &e))
		die("open", &e);
	return q;
}

static msv_queue_message message(void)
{
	msv_queue_message m;
	memset(&m, 0, sizeof(m));
	m.sender = "alice@example.org";
	m.rcpt = rcpt;
	m.nrcpt = 2;
	m.body = body;
	m.len = sizeof(body);
	m.message_id = "<bench@example.org>";
	return m;
}

typedef struct worker {
	msv_queue *q;
	int64_t deadline;
	uint64_t done;
} worker;

static void *submit_loop(void *p)
{
	worker *w = p;
	msv_queue_message m = message();
	char ids[1][MSV_QID_LEN + 1];
	msv_error e;
	while (msv_now_ms() < w->deadline) {
		if (msv_queue_submit(w->q, &m, 1, msv_now_ms(), ids, &e))
			die("submit", &e);
		w->done++;
	}
	return NULL;
}

static int bench_submit(const char *target, int64_t secs, int threads)
{
	msv_queue *q = open_target(target);
	pthread_t th[64];
	worker w[64];
	int64_t start = msv_now_ms();
	for (int t = 0; t < threads; t++) {
		w[t] = (worker){q, start + secs * 1000, 0};
		if (pthread_create(&th[t], NULL, submit_loop, &w[t]))
			die("pthread_create", NULL);
	}
	uint64_t total = 0;
	for (int t = 0; t < threads; t++) {
		pthread_join(th[t], NULL);
		total += w[t].done;
	}
	int64_t ms = msv_now_ms() - start;
	msv__queue_counters c;
	msv__queue_get_counters(q, &c);
	printf("submit %.1f %llu %llu\n", (double)total * 1000.0 / (double)(ms ? ms : 1),
	       (unsigned long long)c.commits, (unsigned long long)total);
	msv_queue_close(q);
	return 0;
}

/* One contending process: claims and records until nothing is due; its
 * count of recipients goes to fd. */
static void claimer(const char *target, int id, int fd)
{
	msv_queue *q = open_target(target);
	char owner[32];
	snprintf(owner, sizeof(owner), "bench-%d", id);
	uint64_t n = 0;
	msv_error e;
	for (;;) {
		msv_queue_job *jobs;
		size_t nj;
		int64_t now = msv_now_ms();
		if (msv_queue_claim(q, owner, now, 600000, 16, &jobs, &nj, &e))
			die("claim", &e);
		if (!nj)
			break;
		msv_queue_outcome o[16];
		size_t no = 0;
		for (size_t j = 0; j < nj; j++)
			for (size_t k = 0; k < jobs[j].nrcpt && no < 16; k++) {
				memset(&o[no], 0, sizeof(o[no]));
				o[no].rcpt_id = jobs[j].rcpt[k].id;
				o[no].epoch = jobs[j].rcpt[k].epoch;
				o[no].state = MSV_RCPT_SENT;
				o[no].attempted = 1;
				o[no].at_ms = now;
				o[no].reply_code = 250;
				o[no].server = "sink:25";
				no++;
			}
		if (msv_queue_record(q, o, no, msv_now_ms(), &e))
			die("record", &e);
		n += no;
		msv_queue_jobs_free(jobs, nj);
	}
	msv_queue_close(q);
	if (write(fd, &n, sizeof(n)) != (ssize_t)sizeof(n))
		exit(1);
	exit(0);
}

static int bench_claim(const char *target, size_t n, int procs)
{
	msv_queue *q = open_target(target);
	msv_queue_message m = message();
	char ids[1][MSV_QID_LEN + 1];
	msv_error e;
	for (size_t i = 0; i < n; i++)
		if (msv_queue_submit(q, &m, 1, msv_now_ms() - 1000, ids, &e))
			die("fill", &e);
	int fds[2];
	if (pipe(fds))
		die("pipe", NULL);
	int64_t start = msv_now_ms();
	for (int p = 0; p < procs; p++) {
		pid_t pid = fork();
		if (pid == 0)
			claimer(target, p, fds[1]);
		if (pid < 0)
			die("fork", NULL);
	}
	uint64_t total = 0;
	for (int p = 0; p < procs; p++) {
		uint64_t k = 0;
		if (read(fds[0], &k, sizeof(k)) != (ssize_t)sizeof(k))
			die("a claimer failed", NULL);
		total += k;
	}
	while (wait(NULL) > 0)
		;
	int64_t ms = msv_now_ms() - start;
	msv_queue_stats st;
	if (msv_queue_stats_get(q, msv_now_ms(), &st, &e))
		die("stats", &e);
	/* Every recipient recorded once: more recorded than exist = a double claim. */
	uint64_t rcpts = (uint64_t)n * 2;
	printf("claim %.1f %llu %llu\n", (double)total * 1000.0 / (double)(ms ? ms : 1),
	       (unsigned long long)total,
	       (unsigned long long)(total > rcpts ? total - rcpts : 0) +
	           (unsigned long long)(st.rcpt[MSV_RCPT_SENT] != rcpts));
	msv_queue_close(q);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: queue_pg_bench submit TARGET SECONDS THREADS\n"
		                "       queue_pg_bench claim TARGET N PROCS\n");
		return 64;
	}
	for (size_t i = 0; i < sizeof(body); i++)
		body[i] = (i % 64 == 62) ? '\r' : (i % 64 == 63) ? '\n' : (char)('a' + i % 26);
	long a = strtol(argv[3], NULL, 10), b = strtol(argv[4], NULL, 10);
	if (a <= 0 || b < 1 || b > 64)
		return 64;
	if (!strcmp(argv[1], "submit"))
		return bench_submit(argv[2], a, (int)b);
	if (!strcmp(argv[1], "claim"))
		return bench_claim(argv[2], (size_t)a, (int)b);
	return 64;
}
