/* The audit chain writer (src/audit/log.c, event.c): the line format,
 * HMAC and plain chains, rotation by size, day and request, several
 * processes and threads appending to one file, retention. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/wait.h>

#include <cJSON.h>
#include <cmocka.h>

#include "audit/chain_helpers.h"

static const char *member_name(const cJSON *o, int i)
{
	const cJSON *c = o->child;
	while (i-- && c)
		c = c->next;
	return c ? c->string : "";
}

/* Members in the documented order, values as given, strings escaped so
 * that the line is JSON (controls, quotes, bytes that are not UTF-8). */
static void line_format(void **state)
{
	(void)state;
	tdir t;
	tdir_init(&t);
	msv_audit_log_options o = {.path = t.path, .masker = t.masker, .node = "mx1"};
	msv_audit_log *l;
	msv_error err;
	assert_int_equal(msv_audit_log_open(&l, &o, &err), MSV_OK);
	msv_audit_field f[] = {MSV_AUDIT_S("text", "a\"b\\c\x01\n\xff\xc3\xa9 end"),
	                       MSV_AUDIT_I("size", -42), MSV_AUDIT_B("tls", 1),
	                       MSV_AUDIT_R("raw", "4111111111111111")};
	msv_audit_event ev = {.type = "message.accepted", .qid = "Q1", .fields = f, .nfields = 4};
	assert_int_equal(msv_audit_append(l, &ev, &err), MSV_OK);
	msv_audit_event sys = {.type = "audit.started"};
	assert_int_equal(msv_audit_append(l, &sys, &err), MSV_OK);
	msv_audit_log_close(l);

	char *s = slurp(t.path, NULL);
	assert_int_equal(count_lines_in(s), 2);
	assert_memory_equal(s, "{\"seq\":1,\"event_id\":\"", 21);
	char *nl = strchr(s, '\n');
	cJSON *j = cJSON_ParseWithLength(s, (size_t)(nl - s));
	assert_non_null(j);
	static const char *order[] = {"seq",  "event_id", "ts",  "type", "node", "actor", "actor_ip",
	                              "qid",  "masked_payload", "prev", "hash"};
	for (int i = 0; i < 11; i++)
		assert_string_equal(member_name(j, i), order[i]);
	const char *id = cJSON_GetObjectItem(j, "event_id")->valuestring;
	assert_int_equal(strlen(id), 36);
	assert_int_equal(id[14], '7'); /* UUIDv7 */
	assert_non_null(strchr("89ab", id[19]));
	const char *ts = cJSON_GetObjectItem(j, "ts")->valuestring;
	assert_int_equal(strlen(ts), 24);
	assert_int_equal(ts[23], 'Z');
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "actor_ip")));
	cJSON *actor = cJSON_GetObjectItem(j, "actor");
	assert_string_equal(cJSON_GetObjectItem(actor, "kind")->valuestring, "system");
	assert_null(cJSON_GetObjectItem(actor, "id"));
	cJSON *p = cJSON_GetObjectItem(j, "masked_payload");
	assert_string_equal(cJSON_GetObjectItem(p, "text")->valuestring,
	                    "a\"b\\c\x01\n\xef\xbf\xbd\xc3\xa9 end");
	assert_true(cJSON_GetObjectItem(p, "size")->valuedouble == -42);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(p, "tls")));
	/* RAW strings are the trail's own values: not masked. */
	assert_string_equal(cJSON_GetObjectItem(p, "raw")->valuestring, "4111111111111111");
	assert_string_equal(cJSON_GetObjectItem(j, "prev")->valuestring, msv__audit_zero_hash);
	assert_non_null(strstr(s, "\\u0001\\u000a"));
	/* hash = SHA-256 of the bytes before ,"hash":" */
	char *h = strstr(s, ",\"hash\":\"");
	char hex[65];
	assert_int_equal(msv__audit_hash(NULL, 0, s, (size_t)(h - s), hex), 0);
	assert_string_equal(cJSON_GetObjectItem(j, "hash")->valuestring, hex);
	cJSON_Delete(j);
	/* The second line chains on the first. */
	cJSON *j2 = cJSON_Parse(nl + 1);
	assert_non_null(j2);
	assert_int_equal(cJSON_GetObjectItem(j2, "seq")->valuedouble, 2);
	assert_memory_equal(cJSON_GetObjectItem(j2, "prev")->valuestring, h + 9, 64);
	cJSON_Delete(j2);
	free(s);
	tdir_done(&t);
}

/* The masker runs on every string: an address in the payload and the
 * actor's id never reach the file. */
static void strings_masked(void **state)
{
	(void)state;
	tdir t;
	tdir_init(&t);
	msv_audit_log *l = log_open(&t, NULL, 0);
	msv_audit_field f[] = {MSV_AUDIT_S("reply", "550 5.1.1 <alice@example.org> unknown")};
	msv_audit_event ev = {.type = "recipient.bounced", .actor = MSV_AUDIT_OPERATOR,
	                      .actor_id = "bob@example.net", .fields = f, .nfields = 1};
	msv_error err;
	assert_int_equal(msv_audit_append(l, &ev, &err), MSV_OK);
	msv_audit_log_close(l);
	char *s = slurp(t.path, NULL);
	assert_null(strstr(s, "alice@"));
	assert_null(strstr(s, "bob@"));
	assert_non_null(strstr(s, "@example.org"));
	free(s);
	tdir_done(&t);
}

static void hmac_vs_plain(void **state)
{
	(void)state;
	tdir t;
	tdir_init(&t);
	msv_audit_log *l = log_open(&t, "0123456789abcdef0123456789abcdef", 0);
	for (int i = 0; i < 5; i++)
		emit(l, i);
	msv_audit_log_close(l);
	assert_true(verify_path(t.path, "0123456789abcdef0123456789abcdef").intact);
	msv_audit_verdict v = verify_path(t.path, NULL);
	assert_false(v.intact);
	assert_int_equal(v.line, 1);
	assert_non_null(strstr(v.why, "hash mismatch"));
	v = verify_path(t.path, "another key of thirty-two bytes!!");
	assert_false(v.intact);
	assert_int_equal(v.line, 1);
	/* The HMAC is the documented one: recompute line 1. */
	char *s = slurp(t.path, NULL);
	char *h = strstr(s, ",\"hash\":\""), hex[65];
	const char *key = "0123456789abcdef0123456789abcdef";
	assert_int_equal(msv__audit_hash((const unsigned char *)key, strlen(key), s,
	                                 (size_t)(h - s), hex), 0);
	assert_memory_equal(h + 9, hex, 64);
	free(s);
	tdir_done(&t);
}

/* Reopening continues the chain from the file's last line. */
static void reopen_continues(void **state)
{
	(void)state;
	tdir t;
	tdir_init(&t);
	for (int round = 0; round < 3; round++) {
		msv_audit_log *l = log_open(&t, NULL, 0);
		for (int i = 0; i < 4; i++)
			emit(l, i);
		msv_audit_log_close(l);
	}
	msv_audit_verdict v = verify_path(t.path, NULL);
	assert_true(v.intact);
	assert_int_equal(v.events, 12);
	uint64_t last;
	msv_error err;
	assert_int_equal(msv_audit_last_seq(t.path, &last, &err), MSV_OK);
	assert_int_equal(last, 12);
	tdir_done(&t);
}

static void rotate_by_size_and_request(void **state)
{
	(void)state;
	tdir t;
	tdir_init(&t);
	msv_audit_log *l = log_open(&t, "k3y-k3y-k3y-k3y-k3y-k3y-k3y-k3y", 4000);
	for (int i = 0; i < 60; i++)
		emit(l, i);
	size_t after_size = nfiles(t.path);
	assert_true(after_size >= 4);
	msv_error err;
	/* Twice in one second: the second name takes a -N. */
	assert_int_equal(msv_audit_rotate(l, &err), MSV_OK);
	assert_int_equal(msv_audit_rotate(l, &err), MSV_OK);
	emit(l, 99);
	msv_audit_log_close(l);
	assert_int_equal(nfiles(t.path), after_size + 2);
	msv_audit_verdict v = verify_path(t.path, "k3y-k3y-k3y-k3y-k3y-k3y-k3y-k3y");
	assert_true(v.intact);
	/* 61 events and one audit.rotated per rotation. */
	assert_int_equal(v.events, 61 + after_size + 1);
	char *s = slurp(t.path, NULL);
	assert_non_null(strstr(s, "\"type\":\"audit.rotated\""));
	assert_non_null(strstr(s, "\"reason\":\"signal\""));
	assert_non_null(strstr(s, "\"previous_file\":\"audit.jsonl."));
	free(s);
	/* The files come oldest first, the current one last. */
	char **files;
	assert_int_equal(msv_audit_files(t.path, &files, &err), MSV_OK);
	uint64_t prev_seq = 0;
	for (size_t i = 0; files[i]; i++) {
		msv_buf line;
		msv_buf_init(&line, MSV__AUDIT_LINE_MAX);
		msv__audit_line ev;
		int bad;
		assert_int_equal(msv__audit_file_last(files[i], &line, &ev, &bad), 1);
		assert_true(ev.seq > prev_seq);
		prev_seq = ev.seq;
		msv_buf_free(&line);
	}
	assert_string_equal(files[after_size + 1], t.path);
	msv_audit_files_free(files);
	tdir_done(&t);
}

static void rotate_daily(void **state)
{
	(void)state;
	tdir t;
	tdir_init(&t);
	msv_audit_log_options o = {.path = t.path, .masker = t.masker, .rotate_daily = 1};
	msv_audit_log *l;
	msv_error err;
	assert_int_equal(msv_audit_log_open(&l, &o, &err), MSV_OK);
	int64_t day = 86400000, t0 = 20000 * day + 3600000;
	msv_audit_event ev = {.type = "config.loaded"};
	assert_int_equal(msv__audit_append_at(l, &ev, t0, &err), MSV_OK);
	assert_int_equal(msv__audit_append_at(l, &ev, t0 + 3600000, &err), MSV_OK);
	assert_int_equal(nfiles(t.path), 1);
	assert_int_equal(msv__audit_append_at(l, &ev, t0 + day, &err), MSV_OK);
	msv_audit_log_close(l);
	assert_int_equal(nfiles(t.path), 2);
	char *s = slurp(t.path, NULL);
	assert_non_null(strstr(s, "\"reason\":\"daily\""));
	assert_int_equal(count_lines_in(s), 2);
	free(s);
	assert_true(verify_path(t.path, NULL).intact);
	tdir_done(&t);
}

/* Two processes, 1000 events each, with size rotations on the way: one
 * chain, seq 1..N without a gap. */
static void two_processes(void **state)
{
	(void)state;
	tdir t;
	tdir_init(&t);
	pid_t kids[2];
	for (int k = 0; k < 2; k++) {
		kids[k] = fork();
		assert_true(kids[k] >= 0);
		if (kids[k] == 0) {
			msv_audit_log *l = log_open(&t, "shared key, thirty-two bytes...", 64 * 1024);
			for (int i = 0; i < 1000; i++)
				emit(l, k * 1000 + i);
			msv_audit_log_close(l);
			_exit(0);
		}
	}
	for (int k = 0; k < 2; k++) {
		int st;
		assert_int_equal(waitpid(kids[k], &st, 0), kids[k]);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	msv_audit_verdict v = verify_path(t.path, "shared key, thirty-two bytes...");
	assert_true(v.intact);
	size_t rotations = nfiles(t.path) - 1;
	assert_true(rotations >= 2);
	assert_int_equal(v.events, 2000 + rotations);
	uint64_t last;
	msv_error err;
	assert_int_equal(msv_audit_last_seq(t.path, &last, &err), MSV_OK);
	assert_int_equal(last, 2000 + rotations);
	tdir_done(&t);
}

static void *thread_main(void *arg)
{
	msv_audit_log *l = arg;
	for (int i = 0; i < 250; i++)
		emit(l, i);
	return NULL;
}

static void threads(void **state)
{
	(void)state;
	tdir t;
	tdir_init(&t);
	msv_audit_log *l = log_open(&t, NULL, 32 * 1024);
	pthread_t th[4];
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&th[i], NULL, thread_main, l), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	msv_error err;
	assert_int_equal(msv_audit_sync(l, &err), MSV_OK);
	msv_audit_log_close(l);
	msv_audit_verdict v = verify_path(t.path, NULL);
	assert_true(v.intact);
	assert_int_equal(v.events, 1000 + nfiles(t.path) - 1);
	tdir_done(&t);
}

/* Retention deletes whole rotated files older than the limit, oldest
 * first, never the current one, and records each deletion; verify then
 * anchors on the oldest file left. */
static void expire_old_files(void **state)
{
	(void)state;
	tdir t;
	tdir_init(&t);
	int64_t day = 86400000, d0 = 20000 * day;
	msv_audit_log_options o = {.path = t.path, .masker = t.masker, .rotate_daily = 1,
	                           .retention_ms = day + 1800000};
	msv_audit_log *l;
	msv_error err;
	assert_int_equal(msv_audit_log_open(&l, &o, &err), MSV_OK);
	msv_audit_event ev = {.type = "config.loaded"};
	for (int i = 0; i < 3; i++)
		assert_int_equal(msv__audit_append_at(l, &ev, d0 + i, &err), MSV_OK);
	assert_int_equal(msv__audit_append_at(l, &ev, d0 + day + 12 * 3600000, &err), MSV_OK);
	assert_int_equal(msv__audit_append_at(l, &ev, d0 + 2 * day, &err), MSV_OK);
	assert_int_equal(nfiles(t.path), 3);
	char **files;
	assert_int_equal(msv_audit_files(t.path, &files, &err), MSV_OK);
	char oldest[512], middle[512];
	snprintf(oldest, sizeof(oldest), "%s", files[0]);
	snprintf(middle, sizeof(middle), "%s", files[1]);
	msv_audit_files_free(files);
	unsigned deleted = 99;
	/* Nothing is old enough yet. */
	assert_int_equal(msv_audit_expire(l, d0 + day, &deleted, &err), MSV_OK);
	assert_int_equal(deleted, 0);
	assert_int_equal(msv_audit_expire(l, d0 + 2 * day + 3600000, &deleted, &err), MSV_OK);
	assert_int_equal(deleted, 1);
	msv_audit_log_close(l);
	struct stat st;
	assert_int_equal(stat(oldest, &st), -1);
	assert_int_equal(stat(middle, &st), 0);
	assert_int_equal(nfiles(t.path), 2);
	char *s = slurp(t.path, NULL);
	const char *base = strrchr(oldest, '/') + 1;
	char want[300];
	snprintf(want, sizeof(want), "\"masked_payload\":{\"file\":\"%s\",\"events\":3,\"last_seq\":3,"
	         "\"last_hash\":\"", base);
	assert_non_null(strstr(s, "\"type\":\"audit.expired\""));
	assert_non_null(strstr(s, want));
	free(s);
	msv_audit_verdict v = verify_path(t.path, NULL);
	assert_true(v.intact);
	/* middle: rotated + 1; current: rotated + 1 + expired */
	assert_int_equal(v.events, 5);
	tdir_done(&t);
}

/* A crash mid-write leaves a partial line: the writer starts a new line,
 * the chain continues from the last whole line, verify points at it. */
static void partial_line_kept(void **state)
{
	(void)state;
	tdir t;
	tdir_init(&t);
	msv_audit_log *l = log_open(&t, NULL, 0);
	for (int i = 0; i < 3; i++)
		emit(l, i);
	msv_audit_log_close(l);
	FILE *f = fopen(t.path, "ab");
	fputs("{\"seq\":4,\"event_id\":\"0190", f);
	fclose(f);
	l = log_open(&t, NULL, 0);
	emit(l, 4);
	msv_audit_log_close(l);
	char *s = slurp(t.path, NULL);
	assert_int_equal(count_lines_in(s), 5);
	msv__audit_line a, b;
	char *l3 = line_at(s, 3), *l5 = line_at(s, 5);
	assert_int_equal(msv__audit_parse_line(l3, (size_t)(strchr(l3, '\n') - l3), &a), 0);
	assert_int_equal(msv__audit_parse_line(l5, (size_t)(strchr(l5, '\n') - l5), &b), 0);
	assert_int_equal(b.seq, 4);
	assert_memory_equal(b.prev, a.hash, 64);
	free(s);
	msv_audit_verdict v = verify_path(t.path, NULL);
	assert_false(v.intact);
	assert_int_equal(v.line, 4);
	assert_non_null(strstr(v.why, "not an audit event line"));
	tdir_done(&t);
}

/* A trail whose last line is not an event cannot be continued. */
static void refuses_foreign_tail(void **state)
{
	(void)state;
	tdir t;
	tdir_init(&t);
	spit(t.path, "hello\n", 6);
	msv_audit_log_options o = {.path = t.path, .masker = t.masker};
	msv_audit_log *l = NULL;
	msv_error err;
	assert_int_equal(msv_audit_log_open(&l, &o, &err), MSV_E_CANT_CREATE);
	assert_null(l);
	assert_non_null(strstr(err.message, t.path));
	tdir_done(&t);
}

/* PATH.head follows the fsyncs: at each append with fsync_ms 0, only at
 * msv_audit_sync (or close) within a long interval. */
static void head_follows_fsync(void **state)
{
	(void)state;
	tdir t;
	tdir_init(&t);
	char head[400];
	snprintf(head, sizeof(head), "%s.head", t.path);
	msv_audit_log *l = log_open(&t, NULL, 0); /* fsync_ms: an hour */
	emit(l, 1);
	emit(l, 2);
	struct stat st;
	assert_int_equal(stat(head, &st), -1);
	msv_error err;
	assert_int_equal(msv_audit_sync(l, &err), MSV_OK);
	char *h = slurp(head, NULL);
	assert_memory_equal(h, "{\"seq\":2,\"hash\":\"", 17);
	free(h);
	msv_audit_log_close(l);
	msv_audit_log_options o = {.path = t.path, .masker = t.masker, .fsync_ms = 0};
	assert_int_equal(msv_audit_log_open(&l, &o, &err), MSV_OK);
	emit(l, 3);
	h = slurp(head, NULL);
	assert_memory_equal(h, "{\"seq\":3,\"hash\":\"", 17);
	/* The head holds the last line's hash. */
	char *s = slurp(t.path, NULL);
	assert_memory_equal(strstr(line_at(s, 3), ",\"hash\":\"") + 9, h + 17, 64);
	free(s);
	free(h);
	msv_audit_log_close(l);
	tdir_done(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(line_format),       cmocka_unit_test(strings_masked),
		cmocka_unit_test(hmac_vs_plain),     cmocka_unit_test(reopen_continues),
		cmocka_unit_test(rotate_by_size_and_request), cmocka_unit_test(rotate_daily),
		cmocka_unit_test(two_processes),     cmocka_unit_test(threads),
		cmocka_unit_test(expire_old_files),  cmocka_unit_test(partial_line_kept),
		cmocka_unit_test(refuses_foreign_tail), cmocka_unit_test(head_follows_fsync),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
