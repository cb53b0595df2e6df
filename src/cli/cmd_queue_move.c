/*
 * missive queue migrate | export | import: the schema and moving a queue
 * between backends (docs/scale-out.md, "Moving up from SQLite").
 *
 * export writes JSON Lines to stdout, one object per line, its "type"
 * first: "meta", then "message" (every field, the body in base64, every
 * recipient with state, attempts, schedule and lease, every attempt of
 * the history), "suppression", "key" (the SHA-256, in hex: never a
 * secret), "reputation", "route_state".  import reads that from stdin
 * and writes it all in one transaction (msv_queue_import): nothing is
 * stored unless everything is.  A target that already holds messages,
 * suppressions or keys is refused unless --force, which replaces rows
 * with the same key.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "queue_import.h"

#define LINE_MAX_BYTES ((size_t)512 * 1024 * 1024)

static void usage(FILE *f)
{
	fputs("usage: missive queue migrate [--config FILE]\n"
	      "       missive queue export [--config FILE] > queue.jsonl\n"
	      "       missive queue import [--config FILE] [--force] < queue.jsonl\n",
	      f);
}

static int fail(const msv_error *e)
{
	cli_err("%s", e->message);
	return cli_exit_code(e);
}

/* ---- export ---- */

static void add_str(cJSON *o, const char *k, const char *v)
{
	if (v)
		cJSON_AddStringToObject(o, k, v);
	else
		cJSON_AddNullToObject(o, k);
}

static void add_num(cJSON *o, const char *k, double v)
{
	cJSON_AddNumberToObject(o, k, v);
}

static int emit(cJSON *o)
{
	char *s = o ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	if (!s) {
		cli_err("queue export: out of memory");
		return EX_SOFTWARE;
	}
	int bad = puts(s) < 0;
	cJSON_free(s);
	return bad ? EX_IOERR : 0;
}

static cJSON *message_json(const msv_queue_dump *d)
{
	const msv_queue_info *in = &d->info;
	cJSON *o = cJSON_CreateObject();
	msv_buf b64;
	msv_buf_init(&b64, LINE_MAX_BYTES);
	cJSON_AddStringToObject(o, "type", "message");
	cJSON_AddStringToObject(o, "qid", in->qid);
	add_num(o, "created_ms", (double)in->created_ms);
	add_str(o, "sender", in->sender);
	add_str(o, "route", in->route);
	add_str(o, "message_id", in->message_id);
	add_str(o, "envid", in->envid);
	add_str(o, "dsn_notify", d->dsn_notify);
	add_str(o, "dsn_ret", d->dsn_ret);
	add_num(o, "body_8bit", d->body_8bit);
	add_num(o, "smtputf8", d->smtputf8);
	add_str(o, "submitter", d->submitter);
	add_num(o, "size", (double)d->len);
	if (msv_base64_encode(&b64, d->body, d->len)) { /* NUL-terminated */
		msv_buf_free(&b64);
		cJSON_Delete(o);
		return NULL;
	}
	cJSON_AddStringToObject(o, "body", b64.data);
	msv_buf_free(&b64);
	cJSON *rs = cJSON_AddArrayToObject(o, "recipients");
	for (size_t i = 0; i < in->nrcpt; i++) {
		const msv_queue_rcpt_info *ri = &in->rcpt[i];
		cJSON *r = cJSON_CreateObject();
		add_num(r, "id", (double)ri->id);
		add_str(r, "address", ri->address);
		add_str(r, "state", msv_queue_rcpt_state_name(ri->state));
		add_num(r, "attempts", ri->attempts);
		add_num(r, "next_attempt_ms", (double)ri->next_attempt_ms);
		add_num(r, "updated_ms", (double)ri->updated_ms);
		add_num(r, "last_code", ri->last_code);
		add_str(r, "last_enhanced", ri->last_enhanced);
		add_str(r, "last_text", ri->last_text);
		add_str(r, "lease_owner", ri->lease_owner);
		add_num(r, "lease_expiry_ms", (double)ri->lease_expiry_ms);
		add_num(r, "lease_epoch", (double)ri->lease_epoch);
		cJSON_AddItemToArray(rs, r);
	}
	cJSON *as = cJSON_AddArrayToObject(o, "attempts");
	for (size_t i = 0; i < in->nattempts; i++) {
		const msv_queue_attempt *at = &in->attempts[i];
		cJSON *a = cJSON_CreateObject();
		add_num(a, "rcpt", (double)at->rcpt_id);
		add_num(a, "at_ms", (double)at->at_ms);
		add_num(a, "latency_ms", (double)at->latency_ms);
		add_str(a, "server", at->server);
		add_num(a, "reply_code", at->reply_code);
		add_str(a, "enhanced", at->enhanced);
		add_str(a, "text", at->text);
		cJSON_AddItemToArray(as, a);
	}
	return o;
}

static int export_messages(msv_queue *q)
{
	msv_error err;
	char **ids = NULL;
	size_t n = 0;
	int rc = 0;
	if (msv_queue_qids(q, &ids, &n, &err))
		return fail(&err);
	for (size_t i = 0; i < n && !rc; i++) {
		msv_queue_dump d;
		if (msv_queue_dump_message(q, ids[i], &d, &err)) {
			rc = fail(&err);
			break;
		}
		rc = emit(message_json(&d));
		msv_queue_dump_free(&d);
	}
	msv_queue_strings_free(ids, n);
	return rc;
}

static int export_rest(msv_queue *q)
{
	msv_error err;
	msv_suppression *s;
	msv_queue_key *k;
	msv_queue_reputation *v;
	msv_queue_route_state *rs;
	size_t n;
	int rc = 0;
	if (msv_queue_suppress_list(q, &s, &n, &err))
		return fail(&err);
	for (size_t i = 0; i < n && !rc; i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "type", "suppression");
		add_str(o, "address", s[i].address);
		add_str(o, "reason", s[i].reason);
		add_str(o, "source", s[i].source);
		add_num(o, "created_ms", (double)s[i].created_ms);
		rc = emit(o);
	}
	msv_queue_suppressions_free(s, n);
	if (rc || msv_queue_key_list(q, &k, &n, &err))
		return rc ? rc : fail(&err);
	for (size_t i = 0; i < n && !rc; i++) {
		char hex[65];
		for (int j = 0; j < 32; j++)
			snprintf(hex + 2 * j, 3, "%02x", k[i].hash[j]);
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "type", "key");
		add_str(o, "name", k[i].name);
		add_str(o, "sha256", hex);
		add_str(o, "sender_domains", k[i].sender_domains);
		add_num(o, "rate", k[i].rate);
		add_num(o, "burst", k[i].burst);
		add_num(o, "created_ms", (double)k[i].created_ms);
		add_num(o, "rotated_ms", (double)k[i].rotated_ms);
		rc = emit(o);
	}
	msv_queue_keys_free(k, n);
	if (rc || msv_queue_reputation_list(q, &v, &n, &err))
		return rc ? rc : fail(&err);
	for (size_t i = 0; i < n && !rc; i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "type", "reputation");
		add_str(o, "identity", v[i].identity);
		add_num(o, "score", v[i].score);
		add_num(o, "stamp_ms", (double)v[i].stamp_ms);
		add_num(o, "rejections", v[i].rejections);
		add_num(o, "open_until_ms", (double)v[i].open_until_ms);
		add_num(o, "changed_ms", (double)v[i].changed_ms);
		add_str(o, "why", v[i].why);
		rc = emit(o);
	}
	msv_queue_reputations_free(v, n);
	if (rc || msv_queue_route_state_list(q, &rs, &n, &err))
		return rc ? rc : fail(&err);
	for (size_t i = 0; i < n && !rc; i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "type", "route_state");
		add_str(o, "route", rs[i].route);
		add_str(o, "circuit", rs[i].circuit);
		add_num(o, "open_until_ms", (double)rs[i].open_until_ms);
		add_num(o, "trips", (double)rs[i].trips);
		add_num(o, "changed_ms", (double)rs[i].changed_ms);
		rc = emit(o);
	}
	msv_queue_route_states_free(rs, n);
	return rc;
}

static int do_export(msv_queue *q)
{
	cJSON *m = cJSON_CreateObject();
	cJSON_AddStringToObject(m, "type", "meta");
	add_num(m, "schema", MSV_QUEUE_SCHEMA_VERSION);
	add_str(m, "backend", msv_queue_backend(q));
	int rc = emit(m);
	if (!rc)
		rc = export_messages(q);
	if (!rc)
		rc = export_rest(q);
	if (!rc && fflush(stdout) != 0) {
		cli_err("queue export: writing stdout failed");
		rc = EX_IOERR;
	}
	return rc;
}

/* ---- import ---- */

static int do_import(msv_queue *q, int force)
{
	app_import *im = NULL;
	char *all = NULL;
	size_t total = 0, lineno = 0;
	msv_error err;
	int rc = cli_read_file("-", LINE_MAX_BYTES, &all, &total, "the export");
	if (!rc && app_import_new(&im, &err))
		rc = fail(&err);
	for (char *line = all, *end; !rc && line && line < all + total; line = end + 1) {
		lineno++;
		end = memchr(line, '\n', (size_t)(all + total - line));
		if (!end)
			end = all + total;
		if (app_import_line(im, line, (size_t)(end - line), &err)) {
			cli_err("queue import: line %zu: %s", lineno, err.message);
			rc = err.code == MSV_E_NOMEM ? EX_OSERR : EX_DATAERR;
		}
	}
	msv_free(all);
	if (!rc) {
		msv_queue_import_set set;
		app_import_set(im, &set);
		if (msv_queue_import(q, &set, force, &err))
			rc = fail(&err);
		else
			fprintf(stderr,
			        "missive: imported %zu messages, %zu suppressions, %zu keys, %zu "
			        "reputations, %zu route states\n",
			        set.nmsgs, set.nsup, set.nkeys, set.nreps, set.nroutes);
	}
	app_import_free(im);
	return rc;
}

/* ---- migrate ---- */

static int do_migrate(const app_config *cfg)
{
	msv_queue_options o = MSV_QUEUE_OPTIONS_INIT;
	o.path = cfg->queue_url ? NULL : cfg->queue_path;
	o.url = cfg->queue_url;
	int from = 0, to = 0;
	msv_error err;
	if (msv_queue_migrate(&o, &from, &to, &err))
		return fail(&err);
	if (from == to)
		printf("queue schema %d: up to date\n", to);
	else if (from == 0)
		printf("queue schema %d: created\n", to);
	else
		printf("queue schema %d: migrated from %d\n", to, from);
	return EX_OK;
}

/* 1 when argv's subcommand is one of ours. */
int cli_queue_move_is(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--config") || !strcmp(argv[i], "-c")) {
			i++;
			continue;
		}
		if (argv[i][0] == '-')
			continue;
		return !strcmp(argv[i], "migrate") || !strcmp(argv[i], "export") ||
		       !strcmp(argv[i], "import");
	}
	return 0;
}

int cmd_queue_move(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"force", no_argument, NULL, 'f'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *cfgflag = NULL;
	int force = 0, c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': cfgflag = optarg; break;
		case 'f': force = 1; break;
		case 'h': usage(stdout); return EX_OK;
		default: usage(stderr); return EX_USAGE;
		}
	}
	if (argc - optind != 1) {
		usage(stderr);
		return EX_USAGE;
	}
	const char *op = argv[optind];
	app_config cfg;
	int rc = cli_config_load(&cfg, cfgflag);
	if (rc)
		return rc;
	if (!strcmp(op, "migrate")) {
		rc = do_migrate(&cfg);
	} else {
		msv_queue *q = NULL;
		int export = !strcmp(op, "export");
		rc = cli_queue_open(&cfg, export, &q);
		if (!rc) {
			rc = export ? do_export(q) : do_import(q, force);
			msv_queue_close(q);
		}
	}
	app_config_free(&cfg);
	return rc;
}
