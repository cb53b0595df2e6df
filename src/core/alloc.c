/* Allocation wrappers: one place to count, fail or replace allocations.
 *
 * Built with MSV_ALLOC_TORTURE (cmake -DMSV_ALLOC_TORTURE=ON, or the
 * torture copies of missived and the unit tests in tests/torture), the
 * wrappers count every allocation and fail the Nth, as curl's torture
 * tests do (docs/internals/torture.md):
 *
 *   MSV_ALLOC_FAIL=N     the Nth allocation returns NULL, the others work
 *   MSV_ALLOC_FAIL=N+    the Nth and every one after it return NULL
 *   MSV_ALLOC_COUNT=FILE at exit, "TOTAL FAILED\n" goes into FILE: how
 *                        many allocations were made and how many failed
 *   MSV_ALLOC_SQLITE=0   leave SQLite's allocations alone (not counted)
 *
 * SQLite's allocations share the count (its malloc and realloc, through
 * SQLITE_CONFIG_MALLOC), so our handling of SQLITE_NOMEM is exercised too.
 * That state is global, which the library never is otherwise: it exists
 * in torture builds only. */
#include <stdlib.h>
#include <string.h>

#include "missive/core.h"

#ifdef MSV_ALLOC_TORTURE
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

static atomic_ulong torture_count;  /* allocations so far, failed ones too */
static atomic_ulong torture_failed; /* allocations made to fail */
static unsigned long torture_fail_at; /* 0: none fails */
static int torture_fail_rest;       /* and every one after fail_at */
static const char *torture_count_file;
static pid_t torture_pid;           /* a forked child does not write the count */
static sqlite3_mem_methods torture_sqlite;

/* 1 when this allocation is the one to fail. */
static int torture_fails(void)
{
	unsigned long n = atomic_fetch_add(&torture_count, 1) + 1;
	if (!torture_fail_at || n < torture_fail_at || (n > torture_fail_at && !torture_fail_rest))
		return 0;
	atomic_fetch_add(&torture_failed, 1);
	return 1;
}

static void *torture_sqlite_malloc(int n)
{
	return torture_fails() ? NULL : torture_sqlite.xMalloc(n);
}

static void *torture_sqlite_realloc(void *p, int n)
{
	return torture_fails() ? NULL : torture_sqlite.xRealloc(p, n);
}

static void torture_write_count(void)
{
	if (!torture_count_file || getpid() != torture_pid)
		return;
	FILE *f = fopen(torture_count_file, "w");
	if (!f)
		return;
	fprintf(f, "%lu %lu\n", (unsigned long)atomic_load(&torture_count),
	        (unsigned long)atomic_load(&torture_failed));
	fclose(f);
}

/* Before main, so before any thread and before SQLite initializes (it
 * takes SQLITE_CONFIG_MALLOC only then). */
__attribute__((constructor)) static void torture_init(void)
{
	const char *v = getenv("MSV_ALLOC_FAIL");
	if (v && *v) {
		char *end;
		torture_fail_at = strtoul(v, &end, 10);
		torture_fail_rest = *end == '+';
	}
	torture_count_file = getenv("MSV_ALLOC_COUNT");
	torture_pid = getpid();
	if (torture_count_file && *torture_count_file)
		atexit(torture_write_count);
	const char *sq = getenv("MSV_ALLOC_SQLITE");
	sqlite3_mem_methods m;
	if (!(sq && !strcmp(sq, "0")) && sqlite3_config(SQLITE_CONFIG_GETMALLOC, &torture_sqlite) == SQLITE_OK) {
		m = torture_sqlite;
		m.xMalloc = torture_sqlite_malloc;
		m.xRealloc = torture_sqlite_realloc;
		sqlite3_config(SQLITE_CONFIG_MALLOC, &m);
	}
}
#define TORTURE_FAILS() torture_fails()
#else
#define TORTURE_FAILS() 0
#endif

void *msv_malloc(size_t n)
{
	if (TORTURE_FAILS())
		return NULL;
	return malloc(n ? n : 1);
}

void *msv_calloc(size_t count, size_t size)
{
	if (TORTURE_FAILS())
		return NULL;
	return calloc(count ? count : 1, size ? size : 1);
}

void *msv_realloc(void *p, size_t n)
{
	if (TORTURE_FAILS())
		return NULL;
	return realloc(p, n ? n : 1);
}

void msv_free(void *p)
{
	free(p);
}

char *msv_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = msv_malloc(n);
	if (d)
		memcpy(d, s, n);
	return d;
}

void msv_wipe(void *p, size_t n)
{
	/* A volatile function pointer keeps the compiler from proving the
	 * stores dead and dropping them. */
	static void *(*const volatile do_memset)(void *, int, size_t) = memset;
	if (p && n)
		do_memset(p, 0, n);
}

void msv_free_secret(char *s)
{
	if (!s)
		return;
	msv_wipe(s, strlen(s));
	msv_free(s);
}
