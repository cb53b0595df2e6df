/* Helpers of the audit chain tests (test_chain.c, test_verify.c,
 * test_reader.c): a private directory, a log with test options, events,
 * whole-file reads and writes. */
#ifndef MSV_TEST_CHAIN_HELPERS_H
#define MSV_TEST_CHAIN_HELPERS_H

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/chain_int.h"
#include "missive/audit.h"

typedef struct tdir {
	char dir[256];
	char path[300]; /* dir/audit.jsonl */
	msv_masker *masker;
} tdir;

static inline void tdir_rm(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[600];
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2])))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(dir);
}

static inline void tdir_init(tdir *t)
{
	snprintf(t->dir, sizeof(t->dir), "/tmp/msv-audit-XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	snprintf(t->path, sizeof(t->path), "%s/audit.jsonl", t->dir);
	msv_error err;
	assert_int_equal(msv_masker_new(&t->masker, NULL, &err), MSV_OK);
}

static inline void tdir_done(tdir *t)
{
	msv_masker_free(t->masker);
	tdir_rm(t->dir);
}

static inline msv_audit_log *log_open(tdir *t, const char *key, uint64_t rotate_size)
{
	msv_audit_log_options o = {
		.path = t->path,
		.hmac_key = (const unsigned char *)key,
		.hmac_key_len = key ? strlen(key) : 0,
		.masker = t->masker,
		.rotate_size = rotate_size,
		/* Tests are not about fsync: a long interval keeps them fast. */
		.fsync_ms = 3600000,
	};
	msv_audit_log *l = NULL;
	msv_error err;
	msv_result rc = msv_audit_log_open(&l, &o, &err);
	if (rc)
		fprintf(stderr, "log_open: %s\n", err.message);
	assert_int_equal(rc, MSV_OK);
	return l;
}

static inline void emit(msv_audit_log *l, int i)
{
	char qid[32];
	snprintf(qid, sizeof(qid), "Q%06d", i);
	msv_audit_field f[] = {MSV_AUDIT_S("rcpt", "someone@example.org"), MSV_AUDIT_I("n", i),
	                       MSV_AUDIT_B("ok", i % 2)};
	msv_audit_event ev = {.type = "recipient.sent", .actor = MSV_AUDIT_KEY, .actor_id = "web",
	                      .actor_ip = "192.0.2.7", .qid = qid, .fields = f, .nfields = 3};
	msv_error err;
	msv_result rc = msv_audit_append(l, &ev, &err);
	if (rc)
		fprintf(stderr, "append: %s\n", err.message);
	assert_int_equal(rc, MSV_OK);
}

/* The whole file (NUL-terminated); *len its size. */
static inline char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *s = malloc((size_t)n + 1);
	assert_non_null(s);
	assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
	s[n] = '\0';
	fclose(f);
	if (len)
		*len = (size_t)n;
	return s;
}

static inline void spit(const char *path, const char *s, size_t len)
{
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(s, 1, len, f), len);
	fclose(f);
}

static inline size_t count_lines_in(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* Start of line no (1-based) in s. */
static inline char *line_at(char *s, size_t no)
{
	while (--no && s)
		s = strchr(s, '\n') ? strchr(s, '\n') + 1 : NULL;
	assert_non_null(s);
	return s;
}

static inline msv_audit_verdict verify_path(const char *path, const char *key)
{
	char **files;
	msv_error err;
	assert_int_equal(msv_audit_files(path, &files, &err), MSV_OK);
	size_t n = 0;
	while (files[n])
		n++;
	msv_audit_verdict v;
	assert_int_equal(msv_audit_verify((const char *const *)files, n, (const unsigned char *)key,
	                                  key ? strlen(key) : 0, &v, &err),
	                 MSV_OK);
	msv_audit_files_free(files);
	if (!v.intact)
		fprintf(stderr, "verdict: %s:%lu: %s\n", v.file, v.line, v.why);
	return v;
}

static inline size_t nfiles(const char *path)
{
	char **files;
	msv_error err;
	assert_int_equal(msv_audit_files(path, &files, &err), MSV_OK);
	size_t n = 0;
	while (files[n])
		n++;
	msv_audit_files_free(files);
	return n;
}

#endif
