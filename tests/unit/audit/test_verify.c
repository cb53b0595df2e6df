/* msv_audit_verify (src/audit/verify.c): an untouched trail passes; an
 * edited byte, a deleted line, two swapped lines, a truncated tail and
 * whole lines cut from the end each fail at the right line with the right
 * why, in one file and across rotations. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "audit/chain_helpers.h"

#define KEY "verify-test-key-of-32-bytes-....."

/* A closed trail of n events in t (one file), with its .head. */
static void build(tdir *t, int n)
{
	tdir_init(t);
	msv_audit_log *l = log_open(t, KEY, 0);
	for (int i = 0; i < n; i++)
		emit(l, i);
	msv_audit_log_close(l);
}

static void expect_broken(const char *path, unsigned long line, const char *why)
{
	msv_audit_verdict v = verify_path(path, KEY);
	assert_false(v.intact);
	if (v.line != line || !strstr(v.why, why))
		fprintf(stderr, "expected line %lu '%s', got %lu '%s'\n", line, why, v.line, v.why);
	assert_int_equal(v.line, line);
	assert_non_null(strstr(v.why, why));
	assert_non_null(strstr(v.file, "audit.jsonl"));
}

static void untouched(void **state)
{
	(void)state;
	tdir t;
	build(&t, 10);
	msv_audit_verdict v = verify_path(t.path, KEY);
	assert_true(v.intact);
	assert_int_equal(v.events, 10);
	tdir_done(&t);
}

static void edited_byte(void **state)
{
	(void)state;
	tdir t;
	build(&t, 10);
	size_t len;
	char *s = slurp(t.path, &len);
	char *l5 = line_at(s, 5);
	char *q = strstr(l5, "Q0000"), orig = q[5];
	q[5] = orig == '9' ? '8' : '9';
	spit(t.path, s, len);
	expect_broken(t.path, 5, "hash mismatch (line edited");
	/* An edit of the prev (covered by the hash) is an edit too. */
	q[5] = orig;
	char *p = strstr(line_at(s, 7), "\"prev\":\"") + 8;
	p[0] = p[0] == 'a' ? 'b' : 'a';
	spit(t.path, s, len);
	expect_broken(t.path, 7, "hash mismatch");
	free(s);
	tdir_done(&t);
}

static void deleted_line(void **state)
{
	(void)state;
	tdir t;
	build(&t, 10);
	size_t len;
	char *s = slurp(t.path, &len);
	char *l5 = line_at(s, 5), *l6 = line_at(s, 6);
	memmove(l5, l6, len - (size_t)(l6 - s) + 1);
	spit(t.path, s, strlen(s));
	expect_broken(t.path, 5, "prev does not match the hash of line 4 (line deleted or reordered)");
	free(s);
	tdir_done(&t);
}

static void swapped_lines(void **state)
{
	(void)state;
	tdir t;
	build(&t, 10);
	size_t len;
	char *s = slurp(t.path, &len);
	char *l4 = line_at(s, 4), *l5 = line_at(s, 5), *l6 = line_at(s, 6);
	size_t a = (size_t)(l5 - l4), b = (size_t)(l6 - l5);
	char *tmp = malloc(a + b);
	memcpy(tmp, l5, b);
	memcpy(tmp + b, l4, a);
	memcpy(l4, tmp, a + b);
	free(tmp);
	spit(t.path, s, len);
	expect_broken(t.path, 4, "deleted or reordered");
	free(s);
	tdir_done(&t);
}

static void truncated_tail(void **state)
{
	(void)state;
	tdir t;
	build(&t, 10);
	size_t len;
	char *s = slurp(t.path, &len);
	spit(t.path, s, len - 30);
	expect_broken(t.path, 10, "incomplete last line (truncated)");
	/* Cut right after a '\n' of the content would be whole lines: */
	free(s);
	tdir_done(&t);
}

/* Whole lines cut from the end leave a valid chain: only the .head the
 * writer keeps tells. */
static void cut_whole_lines(void **state)
{
	(void)state;
	tdir t;
	build(&t, 10);
	size_t len;
	char *s = slurp(t.path, &len);
	char *l9 = line_at(s, 9);
	spit(t.path, s, (size_t)(l9 - s));
	expect_broken(t.path, 9, "truncated: the trail ends at seq 8 but");
	msv_audit_verdict v = verify_path(t.path, KEY);
	assert_non_null(strstr(v.why, "audit.jsonl.head records 10"));
	/* A replaced last line with the head's seq but another hash. */
	free(s);
	tdir_done(&t);
}

/* Without its head (a copy of the file), cut lines cannot be seen: the
 * documented limit. */
static void no_head_no_claim(void **state)
{
	(void)state;
	tdir t;
	build(&t, 10);
	char head[400];
	snprintf(head, sizeof(head), "%s.head", t.path);
	assert_int_equal(unlink(head), 0);
	size_t len;
	char *s = slurp(t.path, &len);
	spit(t.path, s, (size_t)(line_at(s, 9) - s));
	assert_true(verify_path(t.path, KEY).intact);
	free(s);
	tdir_done(&t);
}

/* Rotated trails: intact passes, a deleted line at a file boundary and
 * a deleted middle file are caught where the chain breaks. */
static void across_rotations(void **state)
{
	(void)state;
	tdir t;
	tdir_init(&t);
	msv_audit_log *l = log_open(&t, KEY, 3000);
	for (int i = 0; i < 40; i++)
		emit(l, i);
	msv_audit_log_close(l);
	assert_true(nfiles(t.path) >= 4);
	assert_true(verify_path(t.path, KEY).intact);
	char **files;
	msv_error err;
	assert_int_equal(msv_audit_files(t.path, &files, &err), MSV_OK);
	/* The first line (audit.rotated) of the second file goes. */
	size_t len;
	char *s = slurp(files[1], &len);
	char *l2 = line_at(s, 2);
	spit(files[1], l2, len - (size_t)(l2 - s));
	msv_audit_verdict v = verify_path(t.path, KEY);
	assert_false(v.intact);
	assert_string_equal(v.file, files[1]);
	assert_int_equal(v.line, 1);
	assert_non_null(strstr(v.why, "prev does not match the last line of"));
	spit(files[1], s, len);
	assert_true(verify_path(t.path, KEY).intact);
	free(s);
	/* A whole middle file removed. */
	assert_int_equal(unlink(files[1]), 0);
	v = verify_path(t.path, KEY);
	assert_false(v.intact);
	assert_string_equal(v.file, files[2]);
	assert_int_equal(v.line, 1);
	assert_non_null(strstr(v.why, "deleted or reordered"));
	msv_audit_files_free(files);
	tdir_done(&t);
}

/* A first event with seq 1 must start from zero. */
static void first_prev_zero(void **state)
{
	(void)state;
	tdir t;
	build(&t, 3);
	size_t len;
	char *s = slurp(t.path, &len);
	/* Lines 2..3 alone start at seq 2: accepted as retention's anchor. */
	char *l2 = line_at(s, 2);
	char head[400];
	snprintf(head, sizeof(head), "%s.head", t.path);
	spit(t.path, l2, len - (size_t)(l2 - s));
	msv_audit_verdict v = verify_path(t.path, KEY);
	assert_true(v.intact);
	assert_int_equal(v.events, 2);
	free(s);
	tdir_done(&t);
}

static void garbage_line(void **state)
{
	(void)state;
	tdir t;
	build(&t, 4);
	size_t len;
	char *s = slurp(t.path, &len);
	char *l3 = line_at(s, 3);
	char *out = malloc(len + 16);
	size_t pre = (size_t)(l3 - s);
	memcpy(out, s, pre);
	memcpy(out + pre, "junk\n", 5);
	memcpy(out + pre + 5, l3, len - pre);
	spit(t.path, out, len + 5);
	expect_broken(t.path, 3, "not an audit event line");
	free(out);
	free(s);
	tdir_done(&t);
}

/* The current file deleted: the writer goes on from PATH.head, so the
 * new file does not chain onto the last rotation and verify says so. */
static void current_file_deleted(void **state)
{
	(void)state;
	tdir t;
	tdir_init(&t);
	msv_audit_log *l = log_open(&t, KEY, 0);
	for (int i = 0; i < 3; i++)
		emit(l, i);
	msv_error err;
	assert_int_equal(msv_audit_rotate(l, &err), MSV_OK);
	for (int i = 0; i < 3; i++)
		emit(l, i);
	msv_audit_log_close(l);
	assert_true(verify_path(t.path, KEY).intact);
	assert_int_equal(unlink(t.path), 0);
	l = log_open(&t, KEY, 0);
	emit(l, 9);
	msv_audit_log_close(l);
	msv_audit_verdict v = verify_path(t.path, KEY);
	assert_false(v.intact);
	assert_string_equal(v.file, t.path);
	assert_int_equal(v.line, 1);
	assert_non_null(strstr(v.why, "deleted or reordered"));
	tdir_done(&t);
}

/* Without a key a forger can recompute every prev and hash after taking
 * a line out; the seq numbers still show the gap. */
static void sequence_gap(void **state)
{
	(void)state;
	tdir t;
	tdir_init(&t);
	msv_audit_log *l = log_open(&t, NULL, 0);
	for (int i = 0; i < 8; i++)
		emit(l, i);
	msv_audit_log_close(l);
	size_t len;
	char *s = slurp(t.path, &len);
	char *l5 = line_at(s, 5), *l6 = line_at(s, 6);
	memmove(l5, l6, len - (size_t)(l6 - s) + 1);
	char prev[65];
	msv__audit_line ev;
	char *l4 = line_at(s, 4);
	assert_int_equal(msv__audit_parse_line(l4, (size_t)(strchr(l4, '\n') - l4), &ev), 0);
	memcpy(prev, ev.hash, 64);
	for (size_t no = 5; no <= 7; no++) {
		char *ln = line_at(s, no);
		size_t n = (size_t)(strchr(ln, '\n') - ln);
		assert_int_equal(msv__audit_parse_line(ln, n, &ev), 0);
		memcpy((char *)ev.prev, prev, 64);
		char hex[65];
		assert_int_equal(msv__audit_hash(NULL, 0, ln, ev.covered, hex), 0);
		memcpy((char *)ev.hash, hex, 64);
		memcpy(prev, hex, 64);
	}
	spit(t.path, s, strlen(s));
	char head[400];
	snprintf(head, sizeof(head), "%s.head", t.path);
	unlink(head);
	msv_audit_verdict v = verify_path(t.path, NULL);
	assert_false(v.intact);
	assert_int_equal(v.line, 5);
	assert_non_null(strstr(v.why, "sequence gap: expected seq 5, found 6"));
	free(s);
	tdir_done(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(untouched),        cmocka_unit_test(edited_byte),
		cmocka_unit_test(deleted_line),     cmocka_unit_test(swapped_lines),
		cmocka_unit_test(truncated_tail),   cmocka_unit_test(cut_whole_lines),
		cmocka_unit_test(no_head_no_claim), cmocka_unit_test(across_rotations),
		cmocka_unit_test(first_prev_zero),  cmocka_unit_test(garbage_line),
		cmocka_unit_test(current_file_deleted), cmocka_unit_test(sequence_gap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
