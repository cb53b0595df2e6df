/* The pseudonym key file: created 0600 with the documented layout, the
 * same pseudonyms after reopening, refused when it is not a key file;
 * forget changes the pseudonyms of that address's bucket only; a second
 * object on the same file sees the forget after a refresh; two processes
 * creating the file at once end with one file and the same keys. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <dirent.h>
#include <unistd.h>

#include <cmocka.h>

#include "audit/audit_int.h"

static char dir[256];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/msv-keys-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

/* Every test unlinks its files: the directory is empty again. */
static int teardown(void **state)
{
	(void)state;
	return rmdir(dir);
}

static void path_of(char *buf, size_t n, const char *name)
{
	snprintf(buf, n, "%s/%s", dir, name);
}

/* The pseudonym of addr under k, into out (at least 64 bytes). */
static void pseudo(msv_audit_keys *k, const char *addr, char *out)
{
	msv_masker *m;
	msv_error err;
	msv_buf b;
	msv_buf_init(&b, 1024);
	assert_int_equal(msv_masker_new(&m, k, &err), MSV_OK);
	assert_int_equal(msv_mask_address(m, addr, &b), MSV_OK);
	assert_true(b.len < 64);
	memcpy(out, b.data, b.len + 1);
	msv_buf_free(&b);
	msv_masker_free(m);
}

static long bucket_of(msv_audit_keys *k, const char *addr)
{
	msv__akey_ctx *c = msv__akey_ctx_new(k);
	assert_non_null(c);
	long b = msv__audit_keys_bucket(k, c, addr, strlen(addr));
	msv__akey_ctx_free(c);
	assert_true(b >= 0 && b < 65536);
	return b;
}

static void test_create_and_reopen(void **state)
{
	(void)state;
	char path[300], p1[64], p2[64];
	msv_audit_keys *k;
	msv_error err;
	path_of(path, sizeof(path), "keys");
	assert_int_equal(msv_audit_keys_open(&k, path, &err), MSV_OK);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal((size_t)st.st_size, MSV__AKEY_FILE_SIZE);
	char hdr[16];
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fread(hdr, 1, 16, f), 16);
	fclose(f);
	assert_memory_equal(hdr, "MSVAKEY1", 8);
	assert_int_equal(msv__audit_keys_generation(k), 1);
	pseudo(k, "bob@example.org", p1);
	msv_audit_keys_close(k);
	assert_int_equal(msv_audit_keys_open(&k, path, &err), MSV_OK);
	pseudo(k, "Bob@EXAMPLE.org", p2);
	assert_string_equal(p1, p2);
	msv_audit_keys_close(k);
	/* no temporary file left behind */
	DIR *d = opendir(dir);
	struct dirent *e;
	int files = 0;
	while ((e = readdir(d)))
		files += e->d_name[0] != '.';
	closedir(d);
	assert_int_equal(files, 1);
	unlink(path);
}

static void test_not_a_key_file(void **state)
{
	(void)state;
	char path[300];
	msv_audit_keys *k;
	msv_error err;
	path_of(path, sizeof(path), "short");
	FILE *f = fopen(path, "wb");
	assert_non_null(f);
	fputs("MSVAKEY1 but far too short", f);
	fclose(f);
	assert_int_equal(msv_audit_keys_open(&k, path, &err), MSV_E_CONFIG);
	assert_null(k);
	assert_non_null(strstr(err.message, path));
	/* right size, wrong magic */
	f = fopen(path, "wb");
	for (size_t i = 0; i < MSV__AKEY_FILE_SIZE; i++)
		fputc('k', f);
	fclose(f);
	assert_int_equal(msv_audit_keys_open(&k, path, &err), MSV_E_CONFIG);
	assert_non_null(strstr(err.message, "magic"));
	unlink(path);
	/* a directory that does not exist: cannot create */
	path_of(path, sizeof(path), "missing/dir/keys");
	assert_int_equal(msv_audit_keys_open(&k, path, &err), MSV_E_CANT_CREATE);
}

static void test_forget(void **state)
{
	(void)state;
	char path[300], before[64], after[64], other_before[64], other_after[64];
	msv_audit_keys *k;
	msv_error err;
	path_of(path, sizeof(path), "forget");
	assert_int_equal(msv_audit_keys_open(&k, path, &err), MSV_OK);
	const char *other = "alice@example.org";
	assert_true(bucket_of(k, "bob@example.org") != bucket_of(k, other));
	assert_int_equal(bucket_of(k, "BOB@example.ORG"), bucket_of(k, "bob@example.org"));
	pseudo(k, "bob@example.org", before);
	pseudo(k, other, other_before);
	assert_int_equal(msv_audit_keys_forget(k, "BOB@Example.org", &err), MSV_OK);
	assert_int_equal(msv__audit_keys_generation(k), 2);
	pseudo(k, "bob@example.org", after);
	pseudo(k, other, other_after);
	assert_string_not_equal(before, after);
	assert_string_equal(other_before, other_after);
	msv_audit_keys_close(k);
	/* durable: a fresh open sees the new key */
	assert_int_equal(msv_audit_keys_open(&k, path, &err), MSV_OK);
	pseudo(k, "bob@example.org", before);
	assert_string_equal(before, after);
	msv_audit_keys_close(k);
	unlink(path);

	/* in-memory keys forget too */
	static const unsigned char seed[MSV__AKEY_LEN] = "seed";
	assert_int_equal(msv__audit_keys_mem(&k, seed), MSV_OK);
	pseudo(k, "bob@example.org", before);
	assert_int_equal(msv_audit_keys_forget(k, "bob@example.org", &err), MSV_OK);
	pseudo(k, "bob@example.org", after);
	assert_string_not_equal(before, after);
	msv_audit_keys_close(k);
}

static void test_two_objects_refresh(void **state)
{
	(void)state;
	char path[300], a0[64], b0[64], a1[64], b1[64];
	msv_audit_keys *ka, *kb;
	msv_error err;
	path_of(path, sizeof(path), "shared");
	assert_int_equal(msv_audit_keys_open(&ka, path, &err), MSV_OK);
	assert_int_equal(msv_audit_keys_open(&kb, path, &err), MSV_OK);
	pseudo(ka, "carol@example.org", a0);
	pseudo(kb, "carol@example.org", b0);
	assert_string_equal(a0, b0);
	/* nothing changed: refresh is a no-op */
	assert_int_equal(msv_audit_keys_refresh(kb, &err), MSV_OK);
	assert_int_equal(msv_audit_keys_forget(ka, "carol@example.org", &err), MSV_OK);
	pseudo(ka, "carol@example.org", a1);
	pseudo(kb, "carol@example.org", b1);
	assert_string_not_equal(a0, a1);
	assert_string_equal(b1, b0); /* not refreshed yet */
	assert_int_equal(msv_audit_keys_refresh(kb, &err), MSV_OK);
	pseudo(kb, "carol@example.org", b1);
	assert_string_equal(a1, b1);
	/* and the other way round */
	assert_int_equal(msv_audit_keys_forget(kb, "dave@example.org", &err), MSV_OK);
	assert_int_equal(msv_audit_keys_refresh(ka, &err), MSV_OK);
	assert_int_equal(msv__audit_keys_generation(ka), 3);
	pseudo(ka, "dave@example.org", a1);
	pseudo(kb, "dave@example.org", b1);
	assert_string_equal(a1, b1);
	msv_audit_keys_close(ka);
	msv_audit_keys_close(kb);
	unlink(path);
}

/* Two processes create the same missing file at the same moment (both
 * released by one pipe): both must end up masking with the same keys. */
static void test_creation_race(void **state)
{
	(void)state;
	for (int round = 0; round < 20; round++) {
		char path[300], name[32];
		snprintf(name, sizeof(name), "race%d", round);
		path_of(path, sizeof(path), name);
		int go[2], res[2];
		assert_int_equal(pipe(go), 0);
		assert_int_equal(pipe(res), 0);
		pid_t pids[2];
		for (int c = 0; c < 2; c++) {
			pids[c] = fork();
			assert_true(pids[c] >= 0);
			if (pids[c] == 0) {
				char x, p[64];
				msv_audit_keys *k;
				msv_error err;
				close(go[1]);
				if (read(go[0], &x, 1) < 0)
					_exit(2);
				if (msv_audit_keys_open(&k, path, &err))
					_exit(1);
				pseudo(k, "race@example.org", p);
				msv_audit_keys_close(k);
				if (write(res[1], p, 64) != 64)
					_exit(3);
				_exit(0);
			}
		}
		close(go[0]);
		close(go[1]); /* releases both */
		close(res[1]);
		char got[2][64];
		for (int c = 0; c < 2; c++)
			assert_int_equal(read(res[0], got[c], 64), 64);
		close(res[0]);
		for (int c = 0; c < 2; c++) {
			int st;
			assert_int_equal(waitpid(pids[c], &st, 0), pids[c]);
			assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
		}
		assert_string_equal(got[0], got[1]);
		unlink(path);
	}
	DIR *d = opendir(dir);
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			fail_msg("left behind: %s", e->d_name);
	closedir(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_and_reopen),
		cmocka_unit_test(test_not_a_key_file),
		cmocka_unit_test(test_forget),
		cmocka_unit_test(test_two_objects_refresh),
		cmocka_unit_test(test_creation_race),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
