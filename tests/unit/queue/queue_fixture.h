/* The fixture the queue unit tests share: each test gets a fresh
 * directory from mkdtemp (under $TMPDIR, else /tmp) and a fresh queue
 * file in it, removed afterwards.  Define QUEUE_FIXTURE_PREFIX (the
 * directory's name, "msv-keys") before including; include after
 * <cmocka.h>.
 *
 * One test table, two backends: with MSV_TEST_PG_URL set (the queue-pg/
 * variants, run under tests/peers/pg.sh) f->path is that PostgreSQL URI
 * instead (a postgresql:// path selects the backend), its tables dropped
 * before and after each test.  Tests of SQLite's file format start with
 * SQLITE_ONLY(). */
#ifndef MSV_TEST_QUEUE_FIXTURE_H
#define MSV_TEST_QUEUE_FIXTURE_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "missive/queue.h"

#define T0 1700000000000LL /* a fixed "now": tests own the clock */

/* The PostgreSQL URI under test, or NULL for SQLite. */
static const char *fx_pg_url(void)
{
	const char *u = getenv("MSV_TEST_PG_URL");
	return u && *u ? u : NULL;
}

#define SQLITE_ONLY()                                                                       \
	do {                                                                                    \
		if (fx_pg_url())                                                                    \
			skip();                                                                         \
	} while (0)

/* Empties the test database: its schema, with every queue table. */
static int fx_pg_reset(void)
{
	const char *psql = getenv("MSV_TEST_PSQL");
	char cmd[1024];
	snprintf(cmd, sizeof(cmd),
	         "%s -qX -v ON_ERROR_STOP=1 '%s' -c 'DROP SCHEMA public CASCADE; CREATE SCHEMA "
	         "public' >/dev/null 2>&1",
	         psql && *psql ? psql : "psql", fx_pg_url());
	return system(cmd) == 0 ? 0 : -1;
}

typedef struct fixture {
	char dir[200];
	char path[256];
	msv_queue *q;
	msv_error err;
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	const char *tmp = getenv("TMPDIR");
	snprintf(f->dir, sizeof(f->dir), "%s/" QUEUE_FIXTURE_PREFIX "-XXXXXX",
	         tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/queue.db", f->dir);
	if (fx_pg_url()) {
		snprintf(f->path, sizeof(f->path), "%s", fx_pg_url());
		if (fx_pg_reset())
			return -1;
	}
	msv_queue_options o = MSV_QUEUE_OPTIONS_INIT;
	o.path = f->path;
	if (msv_queue_open(&f->q, &o, &f->err) != MSV_OK) {
		fprintf(stderr, "open: %s\n", f->err.message);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	if (f->q)
		msv_queue_close(f->q);
	if (fx_pg_url())
		fx_pg_reset();
	DIR *d = opendir(f->dir);
	if (d) {
		struct dirent *e;
		char p[512];
		while ((e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			snprintf(p, sizeof(p), "%s/%s", f->dir, e->d_name);
			unlink(p);
		}
		closedir(d);
	}
	rmdir(f->dir);
	free(f);
	return 0;
}

#define OK(call)                                                                            \
	do {                                                                                    \
		msv_result r_ = (call);                                                             \
		if (r_ != MSV_OK)                                                                   \
			fail_msg("%s: %s (%s)", #call, msv_result_name(r_), f->err.message);            \
	} while (0)

#endif
