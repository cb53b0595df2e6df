/*
 * missive send --batch FILE.jsonl: one message per line, built with the
 * MIME layer and sent through the connection pool, a result per line.
 *
 * Lines are read and sent in chunks, so a file of a million messages
 * never sits in memory at once.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "batch.h"
#include "cli.h"
#include "jsonout.h"
#include "missive/mime.h"
#include "missive/pool.h"
#include "progress.h"

#define CHUNK 512
#define LINE_MAX_OCTETS ((size_t)16 << 20)

typedef struct item {
	size_t line;
	msv_mime_msg *m;
	msv_buf raw;
	msv_envelope env;
	msv_error err; /* a line that could not be built */
} item;

static const char *str_field(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Adds "field" (a string or an array of strings) as addresses. */
static msv_result add_list(item *it, const cJSON *o, const char *name, msv_mime_field f)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	if (!v)
		return MSV_OK;
	if (cJSON_IsString(v))
		return msv_mime_add_address(it->m, f, NULL, v->valuestring);
	if (!cJSON_IsArray(v))
		return msv_error_set(&it->err, MSV_E_INVALID, MSV_CLASS_USAGE,
		                     "\"%s\" must be a string or an array of strings", name);
	const cJSON *e;
	cJSON_ArrayForEach(e, v)
	{
		if (!cJSON_IsString(e))
			return msv_error_set(&it->err, MSV_E_INVALID, MSV_CLASS_USAGE,
			                     "\"%s\" must hold strings", name);
		msv_result r = msv_mime_add_address(it->m, f, NULL, e->valuestring);
		if (r)
			return r;
	}
	return MSV_OK;
}

static msv_result add_attachments(item *it, const cJSON *o)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "attach");
	if (!v)
		return MSV_OK;
	if (!cJSON_IsArray(v))
		return msv_error_set(&it->err, MSV_E_INVALID, MSV_CLASS_USAGE,
		                     "\"attach\" must be an array of file names");
	const cJSON *e;
	cJSON_ArrayForEach(e, v)
	{
		if (!cJSON_IsString(e))
			return msv_error_set(&it->err, MSV_E_INVALID, MSV_CLASS_USAGE,
			                     "\"attach\" must hold file names");
		msv_result r = msv_mime_attach_file(it->m, e->valuestring, NULL);
		if (r)
			return r;
	}
	return MSV_OK;
}

/* Builds one line's message; on failure it->err says why. */
static void build_item(item *it, const char *line, size_t len, cli_dkim *dkim)
{
	cJSON *o = cJSON_ParseWithLength(line, len);
	msv_result r = MSV_OK;
	if (!o || !cJSON_IsObject(o)) {
		msv_error_set(&it->err, MSV_E_INVALID, MSV_CLASS_USAGE, "not a JSON object");
		goto done;
	}
	const char *from = str_field(o, "from"), *subject = str_field(o, "subject");
	const char *text = str_field(o, "text"), *html = str_field(o, "html");
	if (!from || !cJSON_GetObjectItemCaseSensitive(o, "to")) {
		msv_error_set(&it->err, MSV_E_INVALID, MSV_CLASS_USAGE, "\"from\" and \"to\" are required");
		goto done;
	}
	if ((r = msv_mime_new(&it->m, NULL))) {
		msv_error_set(&it->err, r, MSV_CLASS_LOCAL, "cannot build: %s", msv_strerror(r));
		goto done;
	}
	r = msv_mime_add_address(it->m, MSV_MIME_FROM, str_field(o, "from_name"), from);
	if (!r)
		r = add_list(it, o, "to", MSV_MIME_TO);
	if (!r)
		r = add_list(it, o, "cc", MSV_MIME_CC);
	if (!r)
		r = add_list(it, o, "bcc", MSV_MIME_BCC);
	if (!r && subject)
		r = msv_mime_set_subject(it->m, subject);
	if (!r && text)
		r = msv_mime_set_text(it->m, text, strlen(text));
	if (!r && html)
		r = msv_mime_set_html(it->m, html, strlen(html));
	if (!r)
		r = add_attachments(it, o);
	/* The server's extensions are unknown until connected: build for a
	 * 7-bit transport, which every server takes. */
	if (!r)
		r = msv_mime_prepare(it->m, 0);
	msv_buf built;
	msv_buf_init(&built, (size_t)1 << 30);
	if (!r)
		r = msv_mime_write_buf(it->m, &built);
	if (r && !it->err.code)
		it->err = *msv_mime_error(it->m);
	if (!r && cli_dkim_sign(dkim, built.data, built.len, &it->raw, &it->err))
		r = it->err.code;
	msv_buf_free(&built);
	if (!r) {
		it->env.from = msv_mime_sender(it->m);
		it->env.rcpt = msv_mime_recipients(it->m, &it->env.nrcpt);
		it->env.size = it->raw.len;
	}
done:
	cJSON_Delete(o);
}

static void item_free(item *it)
{
	msv_mime_free(it->m);
	msv_buf_free(&it->raw);
	memset(it, 0, sizeof(*it));
}

static const char *status_of(const item *it, const msv_pool_result *res)
{
	if (it->err.code || res->code)
		return res->accepted ? "partial" : "failed";
	return res->accepted == res->nrcpt ? "sent" : "partial";
}

static void print_result(const item *it, const msv_pool_result *res, int json)
{
	const msv_error *e = it->err.code ? &it->err : &res->err;
	const char *status = status_of(it, res);
	if (!json) {
		if (strcmp(status, "sent"))
			cli_err("line %zu: %s: %s", it->line, status, e->message);
		return;
	}
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "line", (double)it->line);
	cJSON_AddStringToObject(o, "status", status);
	if (it->m && msv_mime_message_id(it->m))
		cJSON_AddStringToObject(o, "message_id", msv_mime_message_id(it->m));
	cJSON *list = cJSON_AddArrayToObject(o, "recipients");
	for (size_t i = 0; i < res->nrcpt; i++) {
		cJSON *r = cJSON_CreateObject();
		cJSON_AddStringToObject(r, "address", it->env.rcpt[i]);
		cJSON_AddBoolToObject(r, "accepted", res->rcpt[i].accepted);
		cli_json_reply(r, &res->rcpt[i].reply);
		cJSON_AddItemToArray(list, r);
	}
	if (strcmp(status, "sent"))
		cli_json_error(o, e);
	char *s = cJSON_PrintUnformatted(o);
	if (s)
		puts(s);
	cJSON_free(s);
	cJSON_Delete(o);
}

/* Reads the next line (without its end) into b; 0 at end of file. */
static int read_line(FILE *f, msv_buf *b, int *too_long)
{
	msv_buf_reset(b);
	*too_long = 0;
	int c, any = 0;
	while ((c = getc(f)) != EOF) {
		any = 1;
		if (c == '\n')
			break;
		if (!*too_long && msv_buf_addc(b, (char)c))
			*too_long = 1;
	}
	if (b->len && b->data[b->len - 1] == '\r')
		b->data[--b->len] = '\0';
	return any;
}

int cli_send_batch(const msv_client_options *route, const char *path, unsigned conns, int json,
                   cli_dkim *dkim)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
	if (!f) {
		cli_err("cannot open batch file %s", path);
		return EX_NOINPUT;
	}
	msv_pool_options po = MSV_POOL_OPTIONS_INIT;
	po.max_connections = conns;
	msv_pool *pool = NULL;
	msv_error err;
	/* items[] in file order; msgs[] and res[] in send order (built lines only) */
	item *items = msv_calloc(CHUNK, sizeof(*items));
	msv_pool_message *msgs = msv_calloc(CHUNK, sizeof(*msgs));
	msv_pool_result *res = msv_calloc(CHUNK, sizeof(*res));
	msv_buf line;
	msv_buf_init(&line, LINE_MAX_OCTETS);
	size_t lineno = 0, sent = 0, failed = 0;
	int worst = 0, eof = 0;
	cli_progress pg;
	cli_progress_init(&pg, 0);
	if (!items || !msgs || !res || msv_pool_new(&pool, &po, &err)) {
		cli_err("cannot start: out of memory");
		worst = EX_OSERR;
		eof = 1;
	}
	while (!eof) {
		size_t n = 0, nsend = 0;
		while (n < CHUNK) {
			int too_long;
			if (!read_line(f, &line, &too_long)) {
				eof = 1;
				break;
			}
			lineno++;
			if (!line.len && !too_long)
				continue; /* blank lines are allowed */
			item *it = &items[n++];
			it->line = lineno;
			msv_buf_init(&it->raw, (size_t)1 << 30);
			if (too_long)
				msv_error_set(&it->err, MSV_E_TOO_LARGE, MSV_CLASS_USAGE, "line longer than 16 MiB");
			else
				build_item(it, line.data, line.len, dkim);
			if (!it->err.code)
				msgs[nsend++] = (msv_pool_message){&it->env, it->raw.data, it->raw.len};
		}
		pthread_mutex_lock(&pg.lock);
		pg.total += nsend;
		pthread_mutex_unlock(&pg.lock);
		if (nsend)
			msv_pool_send_batch(pool, route, msgs, nsend, conns, res, cli_progress_cb, &pg);
		for (size_t i = 0, k = 0; i < n; i++) {
			item *it = &items[i];
			msv_pool_result bad, *r = &bad;
			if (it->err.code) {
				memset(&bad, 0, sizeof(bad));
				bad.code = it->err.code;
				bad.err = it->err;
			} else {
				r = &res[k++];
			}
			print_result(it, r, json);
			int code = !strcmp(status_of(it, r), "sent") ? 0
			           : it->err.code                     ? EX_DATAERR
			                                              : cli_exit_code(&r->err);
			if (!code && r->accepted < r->nrcpt)
				code = EX_TEMPFAIL;
			if (code) {
				failed++;
				/* The exit code tells the most actionable: retry (75) over
				 * give up (69 and the like) over bad lines (65). */
				if (!worst || code == EX_TEMPFAIL || worst == EX_DATAERR)
					worst = code;
			} else {
				sent++;
			}
			msv_pool_result_free(r);
			item_free(it);
		}
	}
	cli_progress_done(&pg);
	if (!json && pool)
		fprintf(stderr, "missive: %zu sent, %zu failed\n", sent, failed);
	msv_buf_free(&line);
	msv_pool_free(pool);
	msv_free(items);
	msv_free(msgs);
	msv_free(res);
	if (f != stdin)
		fclose(f);
	return worst;
}
