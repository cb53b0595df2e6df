/* missive bench smtp: generated messages through the connection pool. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "connopts.h"
#include "progress.h"
#include "missive/pool.h"

static const char bench_help[] =
	"usage: missive bench smtp --server HOST:PORT --messages N [--size BYTES] [--connections C]\n"
	"                          [server, TLS and auth flags as in 'missive send'] [--json]\n"
	"\n"
	"Sends N generated messages through the connection pool with up to C connections\n"
	"(and C messages in flight) and prints accepted messages/s, latency percentiles\n"
	"and how many connections were opened.  On a terminal, progress is shown on stderr.\n"
	"\n"
	"  --messages N              how many messages (default 1000)\n"
	"  --size BYTES              size of each message (default 1024)\n"
	"  --connections C           connections and messages in flight (default 1)\n"
	"  --max-per-connection N    messages per connection before reconnecting (default 1000)\n"
	"  --from ADDR, --to ADDR    envelope (default bench@localhost, sink@localhost)\n"
	"  --json                    one JSON object: messages, failed, seconds, rate (of\n"
	"                            accepted messages per second),\n"
	"                            latency_ms {p50, p99, max}, connections_opened, tls_resumed\n"
	"\n"
	"Exit: 0 when every message was accepted, 75 when some failed, 64 usage.\n";

enum { O_MESSAGES = 256, O_SIZE, O_CONNECTIONS, O_MAX_PER_CONN, O_FROM, O_TO, O_JSON };

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* A message of about size octets: headers, then 76-column lines. */
static char *make_message(size_t size, const char *from, const char *to, size_t *len)
{
	msv_buf b;
	msv_buf_init(&b, size + 4096);
	msv_result r = msv_buf_addf(&b,
	                            "From: <%s>\r\nTo: <%s>\r\nSubject: missive bench\r\n"
	                            "Message-ID: <bench.%ld@localhost>\r\n\r\n",
	                            from, to, (long)getpid());
	static const char line[] = "abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789ABCD\r\n";
	while (!r && b.len + sizeof(line) - 1 <= size)
		r = msv_buf_addstr(&b, line);
	/* the last line makes up the rest, at least "." and CRLF */
	size_t rest = b.len + 3 < size ? size - b.len - 2 : 1;
	if (!r)
		r = msv_buf_add(&b, line, rest);
	if (!r)
		r = msv_buf_add(&b, "\r\n", 2);
	if (r) {
		msv_buf_free(&b);
		return NULL;
	}
	*len = b.len;
	return b.data;
}

/* What the command line asks for. */
typedef struct bench_args {
	cli_conn cc;
	long messages, size, conns, per_conn;
	const char *from, *to;
	int json;
} bench_args;

/* 0 to go on, -1 after --help, else an EX_* code after printing why. */
static int bench_parse(bench_args *a, int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_CONN_LONGOPTS,
		{"messages", required_argument, NULL, O_MESSAGES},
		{"size", required_argument, NULL, O_SIZE},
		{"connections", required_argument, NULL, O_CONNECTIONS},
		{"max-per-connection", required_argument, NULL, O_MAX_PER_CONN},
		{"from", required_argument, NULL, O_FROM},
		{"to", required_argument, NULL, O_TO},
		{"json", no_argument, NULL, O_JSON},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c, rc = 0;
	opterr = 0;
	optind = 1;
	while (!rc && (c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		int t = cli_conn_opt(&a->cc, c, optarg, "bench smtp");
		if (t == 1)
			continue;
		if (t > 1)
			return t;
		long *num = NULL, max = 0;
		switch (c) {
		case 'h': fputs(bench_help, stdout); return -1;
		case O_MESSAGES: num = &a->messages; max = 100000000; break;
		case O_SIZE: num = &a->size; max = 64L << 20; break;
		case O_CONNECTIONS: num = &a->conns; max = 1000; break;
		case O_MAX_PER_CONN: num = &a->per_conn; max = 100000000; break;
		case O_FROM: a->from = optarg; break;
		case O_TO: a->to = optarg; break;
		case O_JSON: a->json = 1; break;
		case ':': cli_err("%s needs an argument", argv[optind - 1]); rc = EX_USAGE; break;
		default: cli_err("unknown option '%s' (see 'missive bench smtp --help')", argv[optind - 1]); rc = EX_USAGE;
		}
		if (num) {
			char *end;
			*num = strtol(optarg, &end, 10);
			if (!*optarg || *end || *num < 1 || *num > max) {
				cli_err("bad %s '%s': expected 1 to %ld", argv[optind - 2], optarg, max);
				rc = EX_USAGE;
			}
		}
	}
	return rc ? rc : cli_conn_finish(&a->cc, "bench smtp");
}

/* Prints the figures of a finished run of a->messages messages of len
 * octets; 0 when all were accepted, else EX_TEMPFAIL. */
static int bench_report(const bench_args *a, const msv_pool_result *res, int64_t *lat,
                        size_t len, double secs, const msv_pool_stats *st)
{
	long messages = a->messages;
	size_t failed = 0;
	const msv_error *first = NULL;
	for (long i = 0; i < messages; i++) {
		lat[i] = res[i].latency_ms;
		if (res[i].code) {
			failed++;
			if (!first)
				first = &res[i].err;
		}
	}
	qsort(lat, (size_t)messages, sizeof(*lat), cmp_i64);
	int64_t p50 = lat[(messages - 1) / 2], p99 = lat[(messages * 99 - 1) / 100], pmax = lat[messages - 1];
	/* Only accepted messages count: a run where the server refuses
	 * everything quickly must not look fast. */
	double rate = secs > 0 ? (double)((size_t)messages - failed) / secs : 0;
	if (a->json) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "server", a->cc.peer);
		cJSON_AddNumberToObject(o, "messages", (double)messages);
		cJSON_AddNumberToObject(o, "failed", (double)failed);
		cJSON_AddNumberToObject(o, "size", (double)len);
		cJSON_AddNumberToObject(o, "connections", (double)a->conns);
		cJSON_AddNumberToObject(o, "seconds", secs);
		cJSON_AddNumberToObject(o, "rate", rate);
		cJSON *l = cJSON_AddObjectToObject(o, "latency_ms");
		cJSON_AddNumberToObject(l, "p50", (double)p50);
		cJSON_AddNumberToObject(l, "p99", (double)p99);
		cJSON_AddNumberToObject(l, "max", (double)pmax);
		cJSON_AddNumberToObject(o, "connections_opened", (double)st->connections_opened);
		cJSON_AddNumberToObject(o, "tls_resumed", (double)st->tls_resumed);
		cJSON_AddNumberToObject(o, "stale_replaced", (double)st->stale_replaced);
		if (first)
			cJSON_AddStringToObject(o, "first_error", first->message);
		char *s = cJSON_PrintUnformatted(o);
		if (s)
			puts(s);
		cJSON_free(s);
		cJSON_Delete(o);
	} else {
		printf("%ld messages of %zu bytes to %s over %ld connection(s) in %.2f s\n", messages, len,
		       a->cc.peer, a->conns, secs);
		printf("  %.0f messages/s, latency p50 %lld ms, p99 %lld ms, max %lld ms\n", rate,
		       (long long)p50, (long long)p99, (long long)pmax);
		printf("  connections opened %llu (TLS resumed %llu), failed %zu\n",
		       (unsigned long long)st->connections_opened, (unsigned long long)st->tls_resumed, failed);
		if (first)
			cli_err("first failure: %s", first->message);
	}
	return failed ? EX_TEMPFAIL : EX_OK;
}

static int bench_smtp(int argc, char **argv)
{
	bench_args a = {.messages = 1000, .size = 1024, .conns = 1,
	                .from = "bench@localhost", .to = "sink@localhost"};
	cli_conn_init(&a.cc);
	int rc = bench_parse(&a, argc, argv);
	if (rc) {
		cli_conn_free(&a.cc);
		return rc < 0 ? EX_OK : rc;
	}
	long messages = a.messages;
	size_t len = 0;
	char *msg = make_message((size_t)a.size, a.from, a.to, &len);
	msv_pool_message *msgs = msv_calloc((size_t)messages, sizeof(*msgs));
	msv_pool_result *res = msv_calloc((size_t)messages, sizeof(*res));
	int64_t *lat = msv_calloc((size_t)messages, sizeof(*lat));
	msv_pool_options po = MSV_POOL_OPTIONS_INIT;
	po.max_connections = (unsigned)a.conns;
	po.max_messages = (unsigned)a.per_conn;
	msv_pool *pool = NULL;
	msv_error err;
	if (!msg || !msgs || !res || !lat) {
		cli_err("out of memory");
		rc = EX_OSERR;
	} else if (msv_pool_new(&pool, &po, &err)) {
		cli_err("%s", err.message);
		rc = cli_exit_code(&err);
	} else {
		const char *rcpt[] = {a.to};
		msv_envelope env = {.from = a.from, .rcpt = rcpt, .nrcpt = 1, .size = len};
		for (long i = 0; i < messages; i++)
			msgs[i] = (msv_pool_message){&env, msg, len};
		cli_progress pg;
		cli_progress_init(&pg, (size_t)messages);
		int64_t t0 = msv_now_ms();
		msv_pool_send_batch(pool, &a.cc.co, msgs, (size_t)messages, (unsigned)a.conns, res,
		                    cli_progress_cb, &pg);
		double secs = (double)(msv_now_ms() - t0) / 1000.0;
		cli_progress_done(&pg);
		msv_pool_stats st;
		msv_pool_stats_get(pool, &st);
		rc = bench_report(&a, res, lat, len, secs, &st);
	}
	for (long i = 0; res && i < messages; i++)
		msv_pool_result_free(&res[i]);
	msv_pool_free(pool);
	msv_free(lat);
	msv_free(res);
	msv_free(msgs);
	msv_free(msg);
	cli_conn_free(&a.cc);
	return rc;
}

int cmd_bench(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "smtp"))
		return bench_smtp(argc - 1, argv + 1);
	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		fputs(bench_help, stdout);
		return EX_OK;
	}
	cli_err("usage: missive bench smtp ... (see 'missive bench smtp --help')");
	return EX_USAGE;
}
