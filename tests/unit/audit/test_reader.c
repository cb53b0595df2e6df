/* Export cursors and the reader (src/audit/cursor.c): every line once,
 * in order, across rotations, restarts from a saved cursor and files
 * deleted by retention. */
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "audit/chain_helpers.h"

/* Reads what is there; checks seq continues from *next; returns count. */
static int drain(msv_audit_reader *r, uint64_t *next, msv_audit_cursor *pos)
{
	int n = 0;
	for (;;) {
		const char *line;
		size_t len;
		msv_error err;
		assert_int_equal(msv_audit_reader_next(r, &line, &len, pos, &err), MSV_OK);
		if (!line)
			return n;
		msv__audit_line ev;
		assert_int_equal(msv__audit_parse_line(line, len, &ev), 0);
		assert_int_equal(ev.seq, *next);
		assert_int_equal(pos->seq, ev.seq);
		(*next)++;
		n++;
	}
}

static void cursor_roundtrip(void **state)
{
	(void)state;
	tdir t;
	tdir_init(&t);
	msv_audit_cursor c = {.seq = 123456789012ULL, .inode = 42, .offset = 4096}, d;
	msv_error err;
	assert_int_equal(msv_audit_cursor_load(t.path, "kafka", &d, &err), MSV_OK);
	assert_int_equal(d.seq, 0); /* none yet */
	assert_int_equal(msv_audit_cursor_save(t.path, "kafka", &c, &err), MSV_OK);
	assert_int_equal(msv_audit_cursor_load(t.path, "kafka", &d, &err), MSV_OK);
	assert_int_equal(d.seq, c.seq);
	assert_int_equal(d.inode, 42);
	assert_int_equal(d.offset, 4096);
	assert_int_equal(msv_audit_cursor_save(t.path, "../x", &c, &err), MSV_E_INVALID);
	char p[400];
	snprintf(p, sizeof(p), "%s.cursor-syslog", t.path);
	spit(p, "garbage", 7);
	assert_int_equal(msv_audit_cursor_load(t.path, "syslog", &d, &err), MSV_E_NO_INPUT);
	assert_non_null(strstr(err.message, "cursor-syslog"));
	tdir_done(&t);
}

static void follows_rotation_and_restart(void **state)
{
	(void)state;
	tdir t;
	tdir_init(&t);
	msv_audit_log *l = log_open(&t, NULL, 0);
	msv_audit_reader *r;
	msv_error err;
	msv_audit_cursor pos = {0};
	/* Nothing there yet. */
	assert_int_equal(msv_audit_reader_open(&r, t.path, NULL, &err), MSV_OK);
	uint64_t next = 1;
	assert_int_equal(drain(r, &next, &pos), 0);
	for (int i = 0; i < 5; i++)
		emit(l, i);
	assert_int_equal(drain(r, &next, &pos), 5);
	/* The reader sits at the end of the file that gets rotated. */
	for (int i = 0; i < 3; i++)
		emit(l, i);
	assert_int_equal(msv_audit_rotate(l, &err), MSV_OK);
	for (int i = 0; i < 3; i++)
		emit(l, i);
	assert_int_equal(msv_audit_rotate(l, &err), MSV_OK);
	emit(l, 0);
	assert_int_equal(drain(r, &next, &pos), 3 + 1 + 3 + 1 + 1);
	assert_int_equal(next, 15);
	msv_audit_reader_close(r);
	/* Restart from a cursor saved in the middle of a rotated file. */
	msv_audit_cursor mid = {0};
	assert_int_equal(msv_audit_reader_open(&r, t.path, NULL, &err), MSV_OK);
	next = 1;
	for (int i = 0; i < 7; i++) {
		const char *line;
		size_t len;
		assert_int_equal(msv_audit_reader_next(r, &line, &len, &mid, &err), MSV_OK);
		assert_non_null(line);
		next++;
	}
	msv_audit_reader_close(r);
	assert_int_equal(mid.seq, 7);
	assert_int_equal(msv_audit_cursor_save(t.path, "kafka", &mid, &err), MSV_OK);
	msv_audit_cursor loaded;
	assert_int_equal(msv_audit_cursor_load(t.path, "kafka", &loaded, &err), MSV_OK);
	assert_int_equal(msv_audit_reader_open(&r, t.path, &loaded, &err), MSV_OK);
	assert_int_equal(drain(r, &next, &pos), 7);
	emit(l, 1);
	assert_int_equal(drain(r, &next, &pos), 1);
	msv_audit_reader_close(r);
	uint64_t last;
	assert_int_equal(msv_audit_last_seq(t.path, &last, &err), MSV_OK);
	assert_int_equal(last, 15);
	msv_audit_log_close(l);
	tdir_done(&t);
}

/* The cursor's file was deleted by retention: the reader starts at the
 * oldest file left and skips what the cursor already covers. */
static void cursor_file_expired(void **state)
{
	(void)state;
	tdir t;
	tdir_init(&t);
	msv_audit_log *l = log_open(&t, NULL, 0);
	msv_error err;
	for (int i = 0; i < 4; i++)
		emit(l, i);
	assert_int_equal(msv_audit_rotate(l, &err), MSV_OK); /* seq 5 */
	for (int i = 0; i < 4; i++)
		emit(l, i); /* 6..9 */
	msv_audit_reader *r;
	msv_audit_cursor pos = {0};
	uint64_t next = 1;
	assert_int_equal(msv_audit_reader_open(&r, t.path, NULL, &err), MSV_OK);
	for (int i = 0; i < 3; i++) {
		const char *line;
		size_t len;
		assert_int_equal(msv_audit_reader_next(r, &line, &len, &pos, &err), MSV_OK);
		next++;
	}
	msv_audit_reader_close(r);
	/* Delete the first file (as retention would; the reader does not
	 * care who did). */
	char **files;
	assert_int_equal(msv_audit_files(t.path, &files, &err), MSV_OK);
	assert_int_equal(unlink(files[0]), 0);
	msv_audit_files_free(files);
	assert_int_equal(msv_audit_reader_open(&r, t.path, &pos, &err), MSV_OK);
	next = 5; /* 4 went with the file: the first line left is seq 5 */
	assert_int_equal(drain(r, &next, &pos), 5);
	msv_audit_reader_close(r);
	/* A cursor past everything reads nothing. */
	msv_audit_cursor end = {.seq = 9};
	assert_int_equal(msv_audit_reader_open(&r, t.path, &end, &err), MSV_OK);
	next = 10;
	assert_int_equal(drain(r, &next, &pos), 0);
	msv_audit_reader_close(r);
	msv_audit_log_close(l);
	tdir_done(&t);
}

/* A partial last line is not handed out until it is whole. */
static void whole_lines_only(void **state)
{
	(void)state;
	tdir t;
	tdir_init(&t);
	msv_audit_log *l = log_open(&t, NULL, 0);
	emit(l, 0);
	emit(l, 1);
	msv_audit_log_close(l);
	size_t len;
	char *s = slurp(t.path, &len);
	char *l2 = line_at(s, 2);
	spit(t.path, s, (size_t)(l2 - s) + 20);
	msv_audit_reader *r;
	msv_audit_cursor pos;
	msv_error err;
	uint64_t next = 1;
	assert_int_equal(msv_audit_reader_open(&r, t.path, NULL, &err), MSV_OK);
	assert_int_equal(drain(r, &next, &pos), 1);
	FILE *f = fopen(t.path, "ab");
	fwrite(l2 + 20, 1, len - (size_t)(l2 - s) - 20, f);
	fclose(f);
	assert_int_equal(drain(r, &next, &pos), 1);
	msv_audit_reader_close(r);
	free(s);
	tdir_done(&t);
}

static atomic_int writer_done;

static void *writer_main(void *arg)
{
	msv_audit_log *l = arg;
	for (int i = 0; i < 2000; i++)
		emit(l, i);
	atomic_store(&writer_done, 1);
	return NULL;
}

/* The reader follows a writer that rotates every few KiB, at the same
 * time: every seq once, in order, none missed at a rotation. */
static void follows_live_writer(void **state)
{
	(void)state;
	tdir t;
	tdir_init(&t);
	msv_audit_log *l = log_open(&t, NULL, 8 * 1024);
	msv_audit_reader *r;
	msv_error err;
	assert_int_equal(msv_audit_reader_open(&r, t.path, NULL, &err), MSV_OK);
	pthread_t th;
	atomic_store(&writer_done, 0);
	assert_int_equal(pthread_create(&th, NULL, writer_main, l), 0);
	uint64_t next = 1, last = 0;
	msv_audit_cursor pos;
	for (int idle = 0; idle < 200;) {
		int got = drain(r, &next, &pos);
		uint64_t end;
		assert_int_equal(msv_audit_last_seq(t.path, &end, &err), MSV_OK);
		if (got || end > last) {
			idle = 0;
			last = end;
		} else {
			idle++;
			usleep(1000);
		}
		if (atomic_load(&writer_done) && next == end + 1)
			break;
	}
	pthread_join(th, NULL);
	drain(r, &next, &pos);
	uint64_t end;
	assert_int_equal(msv_audit_last_seq(t.path, &end, &err), MSV_OK);
	assert_true(nfiles(t.path) > 10);
	assert_int_equal(next, end + 1);
	msv_audit_reader_close(r);
	msv_audit_log_close(l);
	tdir_done(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(cursor_roundtrip),
		cmocka_unit_test(follows_rotation_and_restart),
		cmocka_unit_test(cursor_file_expired),
		cmocka_unit_test(whole_lines_only),
		cmocka_unit_test(follows_live_writer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
