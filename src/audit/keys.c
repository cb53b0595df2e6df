/* Pseudonym keys: the key file, forgetting an address, refreshing.
 *
 * Why buckets: an address's pseudonym is HMAC-SHA-256 keyed by the key of
 * its bucket (the first two bytes of HMAC(index key, address)), and there
 * are 65536 bucket keys in one file of fixed size (2 MiB).  A key per
 * address would need a write (and a lock, and an fsync) for every address
 * ever seen, a file that grows without bound, and a list of the addresses
 * themselves, which is the very thing the trail must not keep.  With
 * buckets, masking never writes, and forgetting an address is one pwrite
 * over its bucket's key: every pseudonym made before with that key can no
 * longer be recomputed, by us or by anyone who later gets the file.
 *
 * The collateral: the other addresses of that bucket (about 1 in 65536 of
 * all addresses) get new pseudonyms from then on too, so their events
 * before and after the forget no longer correlate.  Nothing is lost from
 * the trail itself (events are never rewritten, the chain still verifies);
 * only that link is.
 *
 * Several processes share the file (missived masks, `missive audit forget`
 * forgets): a forget writes under flock(LOCK_EX) and bumps the generation
 * in the header; msv_audit_keys_refresh() reads the generation (one pread)
 * and re-reads the buckets when it changed.  Masking threads take the
 * rwlock only to copy one 32-byte key. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "audit/audit_int.h"
#include "core/core_int.h"

struct msv_audit_keys {
	int fd;                  /* -1: keys in memory only */
	int writable;
	char *path;
	pthread_rwlock_t lock;   /* guards gen and buckets */
	uint64_t gen;
	unsigned char index_key[MSV__AKEY_LEN];
	unsigned char *buckets;  /* MSV__AKEY_BUCKETS * MSV__AKEY_LEN */
	EVP_MAC *mac;
};

struct msv__akey_ctx {
	EVP_MAC_CTX *index; /* keyed once with the index key */
	EVP_MAC_CTX *bucket;
};

static const size_t buckets_size = (size_t)MSV__AKEY_BUCKETS * MSV__AKEY_LEN;

static uint64_t get_le64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static void put_le64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++, v >>= 8)
		p[i] = (unsigned char)v;
}

static int full_pread(int fd, void *buf, size_t n, off_t off)
{
	unsigned char *p = buf;
	while (n) {
		ssize_t got = pread(fd, p, n, off);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return -1;
		p += got;
		n -= (size_t)got;
		off += got;
	}
	return 0;
}

static int full_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	const unsigned char *p = buf;
	while (n) {
		ssize_t put = pwrite(fd, p, n, off);
		if (put < 0 && errno == EINTR)
			continue;
		if (put <= 0)
			return -1;
		p += put;
		n -= (size_t)put;
		off += put;
	}
	return 0;
}

static int lock_file(int fd, int op)
{
	int rc;
	while ((rc = flock(fd, op)) < 0 && errno == EINTR)
		;
	return rc;
}

static msv_result sys_fail(msv_error *err, msv_result code, const char *what, const char *path)
{
	return msv_error_set(err, code, code == MSV_E_CONFIG ? MSV_CLASS_CONFIG : MSV_CLASS_LOCAL,
	                     "audit key file %s: %s: %s", path, what, strerror(errno));
}

/* fsync of the directory holding path, so a new name survives a crash. */
static void sync_dir(const char *path)
{
	char dir[4096];
	const char *slash = strrchr(path, '/');
	if (!slash) {
		dir[0] = '.';
		dir[1] = '\0';
	} else {
		size_t n = (size_t)(slash - path);
		if (n >= sizeof(dir))
			return;
		memcpy(dir, path, n ? n : 1);
		dir[n ? n : 1] = '\0';
	}
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

/* Writes a complete key file under a temporary name, then link(2)s it to
 * path: link fails with EEXIST when another process got there first, so
 * of two creating at once exactly one file wins and both use it (rename
 * would let the second replace the file the first already masks with). */
static msv_result create_file(const char *path, msv_error *err)
{
	char tmp[4096];
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >= sizeof(tmp))
		return msv_error_set(err, MSV_E_CANT_CREATE, MSV_CLASS_CONFIG,
		                     "audit key file %s: path too long", path);
	unsigned char *data = msv_malloc(MSV__AKEY_FILE_SIZE);
	if (!data)
		return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
	memcpy(data, MSV__AKEY_MAGIC, 8);
	put_le64(data + MSV__AKEY_GEN_OFF, 1);
	msv_result r = MSV_OK;
	if (msv__random_bytes(data + MSV__AKEY_INDEX_OFF, MSV__AKEY_FILE_SIZE - MSV__AKEY_INDEX_OFF)) {
		r = sys_fail(err, MSV_E_SYSTEM, "getrandom", path);
		goto out;
	}
	int fd = mkstemp(tmp); /* O_EXCL, mode 0600 */
	if (fd < 0) {
		r = sys_fail(err, MSV_E_CANT_CREATE, "create", tmp);
		goto out;
	}
	if (fchmod(fd, 0600) || full_pwrite(fd, data, MSV__AKEY_FILE_SIZE, 0) || fsync(fd)) {
		r = sys_fail(err, MSV_E_CANT_CREATE, "write", tmp);
	} else if (link(tmp, path) && errno != EEXIST) {
		r = sys_fail(err, MSV_E_CANT_CREATE, "link", path);
	}
	close(fd);
	unlink(tmp);
	if (r == MSV_OK)
		sync_dir(path);
out:
	msv_wipe(data, MSV__AKEY_FILE_SIZE);
	msv_free(data);
	return r;
}

/* Reads the generation and all buckets into a new array.  The caller
 * holds a flock so no forget is half-written. */
static msv_result read_buckets(msv_audit_keys *k, unsigned char **out, uint64_t *gen,
                               msv_error *err)
{
	unsigned char hdr[8];
	unsigned char *b = msv_malloc(buckets_size);
	if (!b)
		return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
	if (full_pread(k->fd, hdr, 8, MSV__AKEY_GEN_OFF) ||
	    full_pread(k->fd, b, buckets_size, MSV__AKEY_HDR)) {
		msv_free(b);
		return sys_fail(err, MSV_E_NO_INPUT, "read", k->path);
	}
	*out = b;
	*gen = get_le64(hdr);
	return MSV_OK;
}

/* Replaces the buckets by fresh ones (frees the old array). */
static void swap_buckets(msv_audit_keys *k, unsigned char *b, uint64_t gen)
{
	pthread_rwlock_wrlock(&k->lock);
	unsigned char *old = k->buckets;
	k->buckets = b;
	k->gen = gen;
	pthread_rwlock_unlock(&k->lock);
	if (old) {
		msv_wipe(old, buckets_size);
		msv_free(old);
	}
}

static msv_audit_keys *keys_alloc(void)
{
	msv_audit_keys *k = msv_calloc(1, sizeof(*k));
	if (!k)
		return NULL;
	k->fd = -1;
	k->mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (!k->mac || pthread_rwlock_init(&k->lock, NULL)) {
		EVP_MAC_free(k->mac);
		msv_free(k);
		return NULL;
	}
	return k;
}

/* Opens an existing file and checks its size and magic. */
static msv_result open_existing(msv_audit_keys *k, msv_error *err)
{
	struct stat st;
	unsigned char hdr[MSV__AKEY_HDR];
	if (fstat(k->fd, &st))
		return sys_fail(err, MSV_E_NO_INPUT, "stat", k->path);
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != MSV__AKEY_FILE_SIZE)
		return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
		                     "audit key file %s: %lld bytes, expected %zu: not a key file",
		                     k->path, (long long)st.st_size, MSV__AKEY_FILE_SIZE);
	if (full_pread(k->fd, hdr, sizeof(hdr), 0))
		return sys_fail(err, MSV_E_NO_INPUT, "read", k->path);
	if (memcmp(hdr, MSV__AKEY_MAGIC, 8))
		return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
		                     "audit key file %s: bad magic: not a key file", k->path);
	memcpy(k->index_key, hdr + MSV__AKEY_INDEX_OFF, MSV__AKEY_LEN);
	msv_wipe(hdr, sizeof(hdr));
	unsigned char *b;
	uint64_t gen;
	if (lock_file(k->fd, LOCK_SH))
		return sys_fail(err, MSV_E_NO_INPUT, "flock", k->path);
	msv_result r = read_buckets(k, &b, &gen, err);
	lock_file(k->fd, LOCK_UN);
	if (r == MSV_OK)
		swap_buckets(k, b, gen);
	return r;
}

msv_result msv_audit_keys_open(msv_audit_keys **out, const char *path, msv_error *err)
{
	*out = NULL;
	msv_audit_keys *k = keys_alloc();
	if (!k || !(k->path = msv_strdup(path))) {
		msv_audit_keys_close(k);
		return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
	}
	msv_result r = MSV_OK;
	/* Twice at most: missing, created (by us or a racing process), opened. */
	for (int tries = 0; tries < 2; tries++) {
		k->writable = 1;
		k->fd = open(path, O_RDWR | O_CLOEXEC);
		if (k->fd < 0 && (errno == EACCES || errno == EROFS)) {
			k->writable = 0; /* masking works; forget will fail */
			k->fd = open(path, O_RDONLY | O_CLOEXEC);
		}
		if (k->fd >= 0 || errno != ENOENT || tries)
			break;
		if ((r = create_file(path, err)))
			break;
	}
	if (r == MSV_OK && k->fd < 0)
		r = sys_fail(err, MSV_E_NO_INPUT, "open", path);
	if (r == MSV_OK)
		r = open_existing(k, err);
	if (r) {
		msv_audit_keys_close(k);
		return r;
	}
	*out = k;
	return MSV_OK;
}

msv_result msv__audit_keys_mem(msv_audit_keys **out, const unsigned char seed[MSV__AKEY_LEN])
{
	*out = NULL;
	msv_audit_keys *k = keys_alloc();
	unsigned char *b = k ? msv_malloc(buckets_size) : NULL;
	if (!b) {
		msv_audit_keys_close(k);
		return MSV_E_NOMEM;
	}
	/* A cheap deterministic expansion: these keys protect nothing. */
	uint64_t x = 0x9e3779b97f4a7c15ull;
	for (size_t i = 0; i < MSV__AKEY_LEN; i++)
		x = (x ^ seed[i]) * 0x100000001b3ull;
	for (size_t i = 0; i < MSV__AKEY_LEN + buckets_size; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		unsigned char v = (unsigned char)(x >> 24);
		if (i < MSV__AKEY_LEN)
			k->index_key[i] = v;
		else
			b[i - MSV__AKEY_LEN] = v;
	}
	swap_buckets(k, b, 1);
	*out = k;
	return MSV_OK;
}

void msv_audit_keys_close(msv_audit_keys *k)
{
	if (!k)
		return;
	if (k->fd >= 0)
		close(k->fd);
	if (k->buckets) {
		msv_wipe(k->buckets, buckets_size);
		msv_free(k->buckets);
	}
	msv_wipe(k->index_key, sizeof(k->index_key));
	EVP_MAC_free(k->mac);
	pthread_rwlock_destroy(&k->lock);
	msv_free(k->path);
	msv_free(k);
}

uint64_t msv__audit_keys_generation(const msv_audit_keys *k)
{
	msv_audit_keys *w = (msv_audit_keys *)k;
	pthread_rwlock_rdlock(&w->lock);
	uint64_t g = w->gen;
	pthread_rwlock_unlock(&w->lock);
	return g;
}

msv_result msv_audit_keys_refresh(msv_audit_keys *k, msv_error *err)
{
	if (k->fd < 0)
		return MSV_OK;
	unsigned char hdr[8];
	if (full_pread(k->fd, hdr, 8, MSV__AKEY_GEN_OFF))
		return sys_fail(err, MSV_E_NO_INPUT, "read", k->path);
	if (get_le64(hdr) == msv__audit_keys_generation(k))
		return MSV_OK;
	unsigned char *b;
	uint64_t gen;
	if (lock_file(k->fd, LOCK_SH))
		return sys_fail(err, MSV_E_NO_INPUT, "flock", k->path);
	msv_result r = read_buckets(k, &b, &gen, err);
	lock_file(k->fd, LOCK_UN);
	if (r == MSV_OK)
		swap_buckets(k, b, gen);
	return r;
}

/* Writes fresh random bytes over one bucket key and bumps the
 * generation, under the exclusive flock, then re-reads every bucket (other
 * processes may have forgotten others since our last refresh). */
static msv_result forget_bucket(msv_audit_keys *k, unsigned bucket, msv_error *err)
{
	unsigned char key[MSV__AKEY_LEN], hdr[8];
	if (msv__random_bytes(key, sizeof(key)))
		return sys_fail(err, MSV_E_SYSTEM, "getrandom", k->path ? k->path : "(memory)");
	if (k->fd < 0) {
		pthread_rwlock_wrlock(&k->lock);
		memcpy(k->buckets + (size_t)bucket * MSV__AKEY_LEN, key, sizeof(key));
		k->gen++;
		pthread_rwlock_unlock(&k->lock);
		msv_wipe(key, sizeof(key));
		return MSV_OK;
	}
	if (!k->writable) {
		errno = EACCES;
		return sys_fail(err, MSV_E_CANT_CREATE, "open for writing", k->path);
	}
	if (lock_file(k->fd, LOCK_EX))
		return sys_fail(err, MSV_E_CANT_CREATE, "flock", k->path);
	msv_result r = MSV_OK;
	off_t off = (off_t)(MSV__AKEY_HDR + (size_t)bucket * MSV__AKEY_LEN);
	if (full_pwrite(k->fd, key, sizeof(key), off) ||
	    full_pread(k->fd, hdr, sizeof(hdr), MSV__AKEY_GEN_OFF)) {
		r = sys_fail(err, MSV_E_CANT_CREATE, "write", k->path);
		goto unlock;
	}
	put_le64(hdr, get_le64(hdr) + 1);
	/* The key first, then the generation: a reader that sees the new
	 * generation finds the new key. */
	if (full_pwrite(k->fd, hdr, sizeof(hdr), MSV__AKEY_GEN_OFF) || fsync(k->fd)) {
		r = sys_fail(err, MSV_E_CANT_CREATE, "write", k->path);
		goto unlock;
	}
	unsigned char *b;
	uint64_t gen;
	if ((r = read_buckets(k, &b, &gen, err)) == MSV_OK)
		swap_buckets(k, b, gen);
unlock:
	lock_file(k->fd, LOCK_UN);
	msv_wipe(key, sizeof(key));
	return r;
}

msv_result msv_audit_keys_forget(msv_audit_keys *k, const char *addr, msv_error *err)
{
	msv__akey_ctx *c = msv__akey_ctx_new(k);
	if (!c)
		return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
	long b = msv__audit_keys_bucket(k, c, addr, strlen(addr));
	msv__akey_ctx_free(c);
	if (b < 0)
		return msv_error_set(err, MSV_E_SYSTEM, MSV_CLASS_LOCAL, "HMAC-SHA-256 failed");
	return forget_bucket(k, (unsigned)b, err);
}

/* ---- HMAC ---- */

/* The digest is set once per context (setting it per key would fetch
 * SHA-256 again for every address). */
static int mac_digest(EVP_MAC_CTX *ctx)
{
	OSSL_PARAM params[2];
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	return EVP_MAC_CTX_set_params(ctx, params) ? 0 : -1;
}

static int mac_init(EVP_MAC_CTX *ctx, const unsigned char *key)
{
	return EVP_MAC_init(ctx, key, MSV__AKEY_LEN, NULL) ? 0 : -1;
}

msv__akey_ctx *msv__akey_ctx_new(const msv_audit_keys *k)
{
	msv__akey_ctx *c = msv_calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->index = EVP_MAC_CTX_new(k->mac);
	c->bucket = EVP_MAC_CTX_new(k->mac);
	if (!c->index || !c->bucket || mac_digest(c->index) || mac_digest(c->bucket) ||
	    mac_init(c->index, k->index_key)) {
		msv__akey_ctx_free(c);
		return NULL;
	}
	return c;
}

void msv__akey_ctx_free(msv__akey_ctx *c)
{
	if (!c)
		return;
	EVP_MAC_CTX_free(c->index);
	EVP_MAC_CTX_free(c->bucket);
	msv_free(c);
}

/* HMAC of the lowercased address; ctx already keyed (a NULL key re-inits
 * with the key set before). */
static int mac_lower(EVP_MAC_CTX *ctx, const char *s, size_t n, unsigned char out[32],
                     int reinit)
{
	char chunk[256];
	size_t outlen = 0;
	if (reinit && !EVP_MAC_init(ctx, NULL, 0, NULL))
		return -1;
	while (n) {
		size_t m = n < sizeof(chunk) ? n : sizeof(chunk);
		for (size_t i = 0; i < m; i++)
			chunk[i] = s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] + 32) : s[i];
		if (!EVP_MAC_update(ctx, (const unsigned char *)chunk, m))
			return -1;
		s += m;
		n -= m;
	}
	return EVP_MAC_final(ctx, out, &outlen, 32) && outlen == 32 ? 0 : -1;
}

long msv__audit_keys_bucket(const msv_audit_keys *k, msv__akey_ctx *c, const char *addr,
                            size_t n)
{
	(void)k; /* the index key never changes: c was keyed with it */
	unsigned char h[32];
	if (mac_lower(c->index, addr, n, h, 1))
		return -1;
	return (long)h[0] << 8 | h[1];
}

int msv__audit_keys_pseudonym(const msv_audit_keys *k, msv__akey_ctx *c, const char *addr,
                              size_t n, char hex[12])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char key[MSV__AKEY_LEN], h[32];
	long b = msv__audit_keys_bucket(k, c, addr, n);
	if (b < 0)
		return -1;
	msv_audit_keys *w = (msv_audit_keys *)k;
	pthread_rwlock_rdlock(&w->lock);
	memcpy(key, w->buckets + (size_t)b * MSV__AKEY_LEN, sizeof(key));
	pthread_rwlock_unlock(&w->lock);
	int rc = mac_init(c->bucket, key) || mac_lower(c->bucket, addr, n, h, 0) ? -1 : 0;
	msv_wipe(key, sizeof(key));
	for (int i = 0; i < 6 && !rc; i++) {
		hex[2 * i] = digits[h[i] >> 4];
		hex[2 * i + 1] = digits[h[i] & 15];
	}
	return rc;
}
