/*
 * Queue submission rate: messages/s committed durably by msv_queue_submit()
 * (SQLite, WAL, synchronous=FULL) in three shapes, each on a fresh file:
 *
 *   single    1 thread, 1 message per call     (one fsync per message)
 *   threads   T threads, 1 message per call    (group commit batches them)
 *   batch     1 thread, N messages per call    (one fsync per N messages)
 *
 * plus a reference without missive: raw SQLite, one INSERT of the same
 * body per transaction with the same pragmas (the fsync floor).
 *
 *   queue_bench DIR SECONDS [THREADS] [BATCH]
 *
 * Prints one line per shape: "name msgs_per_s transactions messages".
 * Built by bench/queue.sh against the build tree; includes the queue's
 * internal header only to read the group-commit counters.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "missive/queue.h"
#include "queue/queue_int.h"

#define BODY_LEN 2048

static char body[BODY_LEN];
static const char *const rcpt[] = {"bob@example.net", "carol@example.com"};
static int64_t secs;

static void die(const char *what, const msv_error *e)
{
	fprintf(stderr, "queue_bench: %s: %s\n", what, e ? e->message : "");
	exit(1);
}

static msv_queue *open_fresh(const char *dir, const char *name)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s.db", dir, name);
	msv_queue_options o = MSV_QUEUE_OPTIONS_INIT;
	o.path = path;
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
	size_t per_call;
	int64_t deadline;
	uint64_t done;
} worker;

static void *run(void *p)
{
	worker *w = p;
	msv_queue_message *m = calloc(w->per_call, sizeof(*m));
	char(*ids)[MSV_QID_LEN + 1] = calloc(w->per_call, sizeof(*ids));
	if (!m || !ids)
		die("out of memory", NULL);
	for (size_t i = 0; i < w->per_call; i++)
		m[i] = message();
	msv_error e;
	while (msv_now_ms() < w->deadline) {
		if (msv_queue_submit(w->q, m, w->per_call, msv_now_ms(), ids, &e))
			die("submit", &e);
		w->done += w->per_call;
	}
	free(m);
	free(ids);
	return NULL;
}

static void shape(const char *dir, const char *name, int threads, size_t per_call)
{
	msv_queue *q = open_fresh(dir, name);
	pthread_t th[64];
	worker w[64];
	int64_t start = msv_now_ms();
	for (int t = 0; t < threads; t++) {
		w[t] = (worker){q, per_call, start + secs * 1000, 0};
		if (pthread_create(&th[t], NULL, run, &w[t]))
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
	printf("%s %.1f %llu %llu\n", name, (double)total * 1000.0 / (double)(ms ? ms : 1),
	       (unsigned long long)c.commits, (unsigned long long)total);
	msv_queue_close(q);
}

/* The floor: what SQLite itself does with one INSERT + COMMIT (one fsync)
 * per message, same journal and sync settings, no missive in between. */
static void raw_sqlite(const char *dir)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/raw.db", dir);
	sqlite3 *db;
	sqlite3_stmt *st;
	if (sqlite3_open(path, &db) ||
	    sqlite3_exec(db,
	                 "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
	                 "CREATE TABLE m (id INTEGER PRIMARY KEY, body BLOB NOT NULL)",
	                 NULL, NULL, NULL) ||
	    sqlite3_prepare_v2(db, "INSERT INTO m (body) VALUES (?1)", -1, &st, NULL)) {
		fprintf(stderr, "queue_bench: raw sqlite: %s\n", sqlite3_errmsg(db));
		exit(1);
	}
	int64_t start = msv_now_ms(), end = start + secs * 1000;
	uint64_t n = 0;
	while (msv_now_ms() < end) {
		sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
		sqlite3_bind_blob(st, 1, body, sizeof(body), SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE) {
			fprintf(stderr, "queue_bench: raw sqlite: %s\n", sqlite3_errmsg(db));
			exit(1);
		}
		sqlite3_reset(st);
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
		n++;
	}
	int64_t ms = msv_now_ms() - start;
	printf("raw %.1f %llu %llu\n", (double)n * 1000.0 / (double)(ms ? ms : 1),
	       (unsigned long long)n, (unsigned long long)n);
	sqlite3_finalize(st);
	sqlite3_close(db);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: queue_bench DIR SECONDS [THREADS] [BATCH]\n");
		return 64;
	}
	const char *dir = argv[1];
	secs = strtol(argv[2], NULL, 10);
	int threads = argc > 3 ? (int)strtol(argv[3], NULL, 10) : 8;
	size_t batch = argc > 4 ? (size_t)strtoul(argv[4], NULL, 10) : 100;
	if (secs <= 0 || threads < 1 || threads > 64 || batch < 1) {
		fprintf(stderr, "queue_bench: bad arguments\n");
		return 64;
	}
	/* A 2 KB message of printable lines, CRLF-terminated. */
	for (size_t i = 0; i < sizeof(body); i++)
		body[i] = (i % 64 == 62) ? '\r' : (i % 64 == 63) ? '\n' : (char)('a' + i % 26);
	raw_sqlite(dir);
	shape(dir, "single", 1, 1);
	shape(dir, "threads", threads, 1);
	shape(dir, "batch", 1, batch);
	return 0;
}
