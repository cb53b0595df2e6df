/* missive queue: inspect and operate missived's queue.
 *   ls [--state S[,S]] [--limit N]   show ID         stats
 *   retry ID | --all-deferred        dlq ls          dlq requeue ID
 *   purge --state S --older-than DURATION
 * Every subcommand takes --config FILE and --json. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "jsonout.h"
#include "queue_json.h"
#include "submit.h"

static void usage(FILE *f)
{
	fputs("usage: missive queue COMMAND [--config FILE] [--json]\n"
	      "\n"
	      "  ls [--state S[,S...]] [--limit N]  messages with recipients in those states\n"
	      "                                     (default queued,deferred; 'all' for every one)\n"
	      "  show ID                            a message: recipients, states, every attempt\n"
	      "  retry ID | --all-deferred          make pending recipients due now\n"
	      "  dlq ls                             the dead-letter queue (bounced, dead)\n"
	      "  dlq requeue ID                     move a message's dead letters back to queued\n"
	      "  purge --state S --older-than AGE   delete messages whose recipients are all in\n"
	      "                                     state S (e.g. dead, sent) and untouched for\n"
	      "                                     AGE (30d, 12h)\n"
	      "  stats                              recipients by state, messages, oldest pending,\n"
	      "                                     each route's circuit breaker\n"
	      "\n"
	      "States: queued deferred sent bounced dead suppressed.\n"
	      "  --config FILE  configuration (default $MISSIVE_CONFIG, else " APP_CONFIG_DEFAULT ")\n"
	      "  --json         machine-readable output\n"
	      "Exit codes: 0 ok, 64 usage, 65 no such message, 78 configuration error.\n",
	      f);
}

static int parse_states(const char *s, unsigned *mask)
{
	*mask = 0;
	if (!strcmp(s, "all")) {
		*mask = (1u << MSV_RCPT__COUNT) - 1;
		return 0;
	}
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", s);
	char *save = NULL;
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		msv_rcpt_state st;
		if (msv_queue_rcpt_state_parse(t, &st)) {
			cli_err("queue: unknown state '%s' (queued, deferred, sent, bounced, dead, "
			        "suppressed, all)", t);
			return EX_USAGE;
		}
		*mask |= 1u << st;
	}
	return *mask ? 0 : EX_USAGE;
}

static void print_time(int64_t ms, char *out, size_t n)
{
	if (ms <= 0) {
		snprintf(out, n, "-");
		return;
	}
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, n, "%Y-%m-%d %H:%M:%SZ", &tm);
}

static void print_info(const msv_queue_info *m)
{
	char created[40];
	print_time(m->created_ms, created, sizeof(created));
	printf("%s  %s  %zu bytes  from <%s>  route %s\n", m->qid, created, m->size,
	       m->sender ? m->sender : "", m->route ? m->route : "-");
	for (size_t i = 0; i < m->nrcpt; i++) {
		const msv_queue_rcpt_info *r = &m->rcpt[i];
		char next[40];
		print_time(r->state <= MSV_RCPT_DEFERRED ? r->next_attempt_ms : 0, next, sizeof(next));
		printf("    %-10s %s  attempts %u  next %s", msv_queue_rcpt_state_name(r->state), r->address,
		       r->attempts, next);
		if (r->last_code || (r->last_text && *r->last_text))
			printf("  last: %d %s %s", r->last_code, r->last_enhanced ? r->last_enhanced : "",
			       r->last_text ? r->last_text : "");
		putchar('\n');
	}
	for (size_t i = 0; i < m->nattempts; i++) {
		const msv_queue_attempt *a = &m->attempts[i];
		char at[40];
		print_time(a->at_ms, at, sizeof(at));
		const char *addr = "?";
		for (size_t k = 0; k < m->nrcpt; k++)
			if (m->rcpt[k].id == a->rcpt_id)
				addr = m->rcpt[k].address;
		printf("    attempt %s %s via %s: %d %s %s (%lld ms)\n", at, addr,
		       a->server ? a->server : "-", a->reply_code, a->enhanced ? a->enhanced : "",
		       a->text ? a->text : "", (long long)a->latency_ms);
	}
}

static int fail(const msv_error *err)
{
	cli_err("queue: %s", err->message);
	return err->code == MSV_E_INVALID ? EX_DATAERR : cli_exit_code(err);
}

static int do_ls(msv_queue *q, unsigned mask, size_t limit, int json)
{
	msv_queue_info *infos = NULL;
	size_t n = 0;
	msv_error err;
	if (msv_queue_list(q, mask, limit, &infos, &n, &err))
		return fail(&err);
	if (json) {
		cJSON *a = cJSON_CreateArray();
		for (size_t i = 0; i < n; i++)
			cJSON_AddItemToArray(a, app_info_json(&infos[i]));
		cli_json_print(a);
	} else {
		for (size_t i = 0; i < n; i++)
			print_info(&infos[i]);
		if (!n)
			puts("queue is empty (for these states)");
	}
	msv_queue_infos_free(infos, n);
	return EX_OK;
}

static int do_show(msv_queue *q, const char *id, int json)
{
	msv_queue_info info;
	msv_error err;
	if (msv_queue_show(q, id, &info, &err))
		return fail(&err);
	if (json)
		cli_json_print(app_info_json(&info));
	else
		print_info(&info);
	msv_queue_info_free(&info);
	return EX_OK;
}

static int print_changed(const char *what, size_t n, int json)
{
	if (json)
		printf("{\"%s\": %zu}\n", what, n);
	else
		printf("%s: %zu\n", what, n);
	return EX_OK;
}

/* Each route's circuit breaker as missived last wrote it, one line each. */
static void print_routes(const msv_queue_route_state *rs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		printf("route %s: circuit %s", rs[i].route, rs[i].circuit);
		if (rs[i].open_until_ms > 0) {
			char when[40];
			time_t t = (time_t)(rs[i].open_until_ms / 1000);
			struct tm tm;
			gmtime_r(&t, &tm);
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
			printf(" until %s", when);
		}
		printf(", %llu trip%s\n", (unsigned long long)rs[i].trips,
		       rs[i].trips == 1 ? "" : "s");
	}
}

/* Recipients under a live lease, by the node holding them (the last
 * field of "missived:HOST:PID:NODE"; an owner of an older missived as it
 * is): work by node on a queue several missived share. */
typedef struct node_count {
	char node[128];
	unsigned long long n;
} node_count;

static size_t leases_by_node(msv_queue *q, int64_t now, node_count *out, size_t max)
{
	msv_queue_info *in = NULL;
	size_t nin = 0, n = 0;
	msv_error err;
	unsigned pending = (1u << MSV_RCPT_QUEUED) | (1u << MSV_RCPT_DEFERRED);
	if (msv_queue_list(q, pending, 0, &in, &nin, &err))
		return 0;
	for (size_t i = 0; i < nin; i++)
		for (size_t j = 0; j < in[i].nrcpt; j++) {
			const msv_queue_rcpt_info *r = &in[i].rcpt[j];
			if (!r->lease_owner || r->lease_expiry_ms <= now)
				continue;
			const char *node = r->lease_owner;
			int colons = 0;
			for (const char *p = node; *p; p++)
				if (*p == ':' && ++colons == 3)
					node = p + 1;
			size_t k = 0;
			while (k < n && strcmp(out[k].node, node))
				k++;
			if (k == n && n == max)
				continue;
			if (k == n)
				snprintf(out[n++].node, sizeof(out[0].node), "%s", node);
			out[k].n++;
		}
	msv_queue_infos_free(in, nin);
	return n;
}

static int do_stats(msv_queue *q, int json)
{
	node_count nodes[64];
	size_t nn = leases_by_node(q, msv_wall_ms(), nodes, 64);
	msv_queue_stats st;
	msv_error err;
	int64_t now = msv_wall_ms();
	msv_queue_route_state *rs = NULL;
	size_t nrs = 0;
	if (msv_queue_stats_get(q, now, &st, &err) ||
	    msv_queue_route_state_list(q, &rs, &nrs, &err))
		return fail(&err);
	double age = st.oldest_pending_ms < 0 ? 0 : (double)(now - st.oldest_pending_ms) / 1000.0;
	if (json) {
		cJSON *j = cJSON_CreateObject(), *r = cJSON_AddObjectToObject(j, "recipients");
		for (int s = 0; s < MSV_RCPT__COUNT; s++)
			cJSON_AddNumberToObject(r, msv_queue_rcpt_state_name((msv_rcpt_state)s), (double)st.rcpt[s]);
		cJSON_AddNumberToObject(j, "messages", (double)st.messages);
		cJSON_AddNumberToObject(j, "leased", (double)st.leased);
		cJSON *bn = cJSON_AddArrayToObject(j, "leased_by_node");
		for (size_t i = 0; i < nn; i++) {
			cJSON *o = cJSON_CreateObject();
			cJSON_AddStringToObject(o, "node", nodes[i].node);
			cJSON_AddNumberToObject(o, "leased", (double)nodes[i].n);
			cJSON_AddItemToArray(bn, o);
		}
		if (st.oldest_pending_ms < 0)
			cJSON_AddNullToObject(j, "oldest_pending_age_s");
		else
			cJSON_AddNumberToObject(j, "oldest_pending_age_s", age);
		app_route_states_json(j, rs, nrs);
		msv_queue_route_states_free(rs, nrs);
		cli_json_print(j);
		return EX_OK;
	}
	printf("messages %llu, recipients:", (unsigned long long)st.messages);
	for (int s = 0; s < MSV_RCPT__COUNT; s++)
		printf(" %s %llu", msv_queue_rcpt_state_name((msv_rcpt_state)s), (unsigned long long)st.rcpt[s]);
	printf("; leased %llu", (unsigned long long)st.leased);
	for (size_t i = 0; i < nn; i++)
		printf("%s%s %llu", i ? ", " : " (", nodes[i].node, nodes[i].n);
	if (nn)
		putchar(')');
	if (st.oldest_pending_ms >= 0)
		printf("; oldest pending %.0f s", age);
	putchar('\n');
	print_routes(rs, nrs);
	msv_queue_route_states_free(rs, nrs);
	return EX_OK;
}

/* What the command line asked for. */
typedef struct queue_cmd {
	const char *cfgflag, *state, *older;
	const char *op, *id; /* "ls", "show", ...; the queue ID or NULL */
	int json, all_deferred, dlq;
	long limit;
	unsigned mask;       /* recipient states that ls and purge select */
	int64_t age;         /* purge --older-than */
	const app_config *cfg; /* for the audit trail */
} queue_cmd;

/* The flags into qc; -1 to go on, else the exit code (--help, a bad flag). */
static int queue_flags(int argc, char **argv, queue_cmd *qc)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"json", no_argument, NULL, 'j'},
		{"state", required_argument, NULL, 's'},
		{"limit", required_argument, NULL, 'l'},
		{"older-than", required_argument, NULL, 'o'},
		{"all-deferred", no_argument, NULL, 'a'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': qc->cfgflag = optarg; break;
		case 'j': qc->json = 1; break;
		case 's': qc->state = optarg; break;
		case 'l': {
			char *end;
			qc->limit = strtol(optarg, &end, 10);
			if (*end || qc->limit < 0) {
				cli_err("queue: --limit wants a number");
				return EX_USAGE;
			}
			break;
		}
		case 'o': qc->older = optarg; break;
		case 'a': qc->all_deferred = 1; break;
		case 'h': usage(stdout); return EX_OK;
		default: usage(stderr); return EX_USAGE;
		}
	}
	return -1;
}

/* The subcommand and its arguments into qc; -1 to go on, else EX_USAGE. */
static int queue_operation(int nargs, char **args, queue_cmd *qc)
{
	if (nargs < 1) {
		usage(stderr);
		return EX_USAGE;
	}
	int dlq = qc->dlq = !strcmp(args[0], "dlq");
	if (dlq && nargs < 2) {
		cli_err("queue dlq: give ls or requeue ID");
		return EX_USAGE;
	}
	const char *op = qc->op = dlq ? args[1] : args[0];
	int want = dlq ? 2 : 1; /* index of the ID argument */
	int needs_id = !strcmp(op, "show") || (dlq && !strcmp(op, "requeue")) ||
	               (!strcmp(op, "retry") && !qc->all_deferred);
	int known = !strcmp(op, "ls") || !strcmp(op, "stats") || !strcmp(op, "purge") || needs_id ||
	            !strcmp(op, "retry");
	if (!known || (dlq && strcmp(op, "ls") && strcmp(op, "requeue"))) {
		cli_err("queue: unknown command '%s%s' (see 'missive queue --help')", dlq ? "dlq " : "",
		        op);
		return EX_USAGE;
	}
	if (nargs != want + needs_id) {
		cli_err("queue %s%s: %s", dlq ? "dlq " : "", op,
		        needs_id ? "give exactly one queue ID (or --all-deferred for retry)"
		                 : "takes no arguments");
		return EX_USAGE;
	}
	qc->id = needs_id ? args[want] : NULL;
	qc->mask = (1u << MSV_RCPT_QUEUED) | (1u << MSV_RCPT_DEFERRED);
	if (dlq)
		qc->mask = (1u << MSV_RCPT_BOUNCED) | (1u << MSV_RCPT_DEAD);
	if (qc->state && parse_states(qc->state, &qc->mask))
		return EX_USAGE;
	if (!strcmp(op, "purge") &&
	    (!qc->state || !qc->older || app_parse_duration(qc->older, &qc->age))) {
		cli_err("queue purge: needs --state S and --older-than AGE (30d, 12h, 90m)");
		return EX_USAGE;
	}
	return -1;
}

/* Runs the operation on the open queue: the exit code. */
static int queue_run(msv_queue *q, const queue_cmd *qc)
{
	msv_error err;
	size_t n = 0;
	int64_t now = msv_wall_ms();
	const char *op = qc->op;
	if (!strcmp(op, "ls"))
		return do_ls(q, qc->mask, (size_t)qc->limit, qc->json);
	if (!strcmp(op, "show"))
		return do_show(q, qc->id, qc->json);
	if (!strcmp(op, "stats"))
		return do_stats(q, qc->json);
	msv_result rc = !strcmp(op, "retry")     ? msv_queue_retry(q, qc->id, now, &n, &err)
	                : !strcmp(op, "requeue") ? msv_queue_requeue(q, qc->id, now, &n, &err)
	                                         : msv_queue_purge(q, qc->mask, now - qc->age, &n, &err);
	if (rc)
		return fail(&err);
	msv_audit_field f[] = {
		MSV_AUDIT_S("operation", op),
		MSV_AUDIT_I("changed", (long long)n),
		MSV_AUDIT_I("older_than_s", !strcmp(op, "purge") ? qc->age / 1000 : 0),
	};
	cli_audit(qc->cfg, "queue.operator", qc->id && *qc->id ? qc->id : NULL, f, 3);
	return print_changed(!strcmp(op, "retry") ? "retried" : !strcmp(op, "requeue") ? "requeued"
	                                                                              : "purged",
	                     n, qc->json);
}

int cmd_queue(int argc, char **argv)
{
	if (cli_queue_move_is(argc, argv))
		return cmd_queue_move(argc, argv);
	queue_cmd qc;
	memset(&qc, 0, sizeof(qc));
	int rc = queue_flags(argc, argv, &qc);
	if (rc < 0)
		rc = queue_operation(argc - optind, argv + optind, &qc);
	if (rc >= 0)
		return rc;
	app_config cfg;
	msv_queue *q = NULL;
	int ro = !strcmp(qc.op, "ls") || !strcmp(qc.op, "show") || !strcmp(qc.op, "stats");
	rc = cli_config_load(&cfg, qc.cfgflag);
	if (!rc)
		rc = cli_queue_open(&cfg, ro, &q);
	qc.cfg = &cfg;
	if (!rc) {
		rc = queue_run(q, &qc);
		msv_queue_close(q);
	}
	app_config_free(&cfg);
	return rc;
}
