/*
 * The chained audit log (docs/audit.md): appends under an in-process
 * mutex and an exclusive flock on the file, continuing from whatever the
 * file ends with (other processes append too); rotation, the head file,
 * fsync policy and retention.
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit/chain_int.h"

struct msv_audit_log {
	pthread_mutex_t mu;
	char *path;
	char *node;
	unsigned char *key;
	size_t keylen;
	const msv_masker *masker;
	uint64_t rotate_size;
	int rotate_daily;
	int64_t retention_ms;
	int64_t fsync_ms;
	int fd;
	dev_t dev;
	ino_t ino;
	uint64_t seen;    /* the file's size when we last looked, UINT64_MAX: never */
	uint64_t seq;     /* the trail's last event */
	char prev[MSV__AUDIT_HEX + 1];
	int64_t last_ts;  /* its time, 0: none */
	int need_nl;      /* the file ends inside a line (a crash mid-write) */
	int dirty;        /* appended since the last fsync */
	int64_t synced;   /* msv_now_ms() of the last fsync */
	msv_buf line;
	msv_buf tail;
};

static msv_result sys_fail(msv_error *err, const char *what, const char *path)
{
	int e = errno;
	return msv_error_set(err, e == ENOSPC ? MSV_E_CANT_CREATE : MSV_E_SYSTEM, MSV_CLASS_LOCAL,
	                     "audit trail %s: %s: %s", path, what, strerror(e));
}

static int flock_ex(int fd)
{
	int rc;
	while ((rc = flock(fd, LOCK_EX)) < 0 && errno == EINTR)
		;
	return rc;
}

/* Makes fd (open on PATH) the current file. */
static msv_result adopt_fd(msv_audit_log *l, int fd, msv_error *err)
{
	struct stat st;
	if (fstat(fd, &st)) {
		close(fd);
		return sys_fail(err, "fstat", l->path);
	}
	if (l->fd >= 0)
		close(l->fd);
	l->fd = fd;
	l->dev = st.st_dev;
	l->ino = st.st_ino;
	l->seen = UINT64_MAX;
	return MSV_OK;
}

static msv_result open_file(msv_audit_log *l, msv_error *err)
{
	int fd = open(l->path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0)
		return sys_fail(err, "cannot open", l->path);
	return adopt_fd(l, fd, err);
}

/* The chain's end when PATH holds no event: the newest rotation's last
 * event (a rotation interrupted before its first event), else nothing. */
static msv_result continue_from_rotations(msv_audit_log *l, msv_error *err)
{
	char **files;
	msv_result rc = msv_audit_files(l->path, &files, err);
	if (rc)
		return rc;
	size_t n = 0;
	while (files[n])
		n++;
	/* files ends with PATH itself when it exists. */
	const char *last = NULL;
	for (size_t i = n; i-- > 0 && !last;)
		if (strcmp(files[i], l->path))
			last = files[i];
	msv__audit_line ev;
	int bad = 0, got = last ? msv__audit_file_last(last, &l->tail, &ev, &bad) : 0;
	if (got < 0)
		rc = sys_fail(err, "cannot read the last rotation", last);
	else if (bad)
		rc = msv_error_set(err, MSV_E_CANT_CREATE, MSV_CLASS_LOCAL,
		                   "audit trail %s: the last line is not an audit event, the chain "
		                   "cannot continue (missive audit verify)", last);
	if (!rc && got == 1) {
		l->seq = ev.seq;
		memcpy(l->prev, ev.hash, MSV__AUDIT_HEX);
		l->last_ts = ev.ts_ms;
	}
	/* PATH.head further on: PATH was deleted with events in it.  Going
	 * on from the head leaves the hole for verify to see, where going on
	 * from the rotation would close it. */
	uint64_t hseq;
	char hhash[MSV__AUDIT_HEX + 1];
	if (!rc && msv__audit_head_read(l->path, &hseq, hhash) && hseq > l->seq) {
		l->seq = hseq;
		memcpy(l->prev, hhash, sizeof(l->prev));
	}
	msv_audit_files_free(files);
	return rc;
}

/* Under the flock: picks up what other processes appended since we
 * last looked (the file's size changed). */
static msv_result refresh(msv_audit_log *l, msv_error *err)
{
	struct stat st;
	if (fstat(l->fd, &st))
		return sys_fail(err, "fstat", l->path);
	uint64_t size = (uint64_t)st.st_size;
	if (size == l->seen)
		return MSV_OK;
	int partial;
	if (msv__audit_tail(l->fd, size, &l->tail, &partial))
		return sys_fail(err, "cannot read the last line", l->path);
	l->seq = 0;
	l->last_ts = 0;
	memcpy(l->prev, msv__audit_zero_hash, sizeof(l->prev));
	/* A partial last line stays, as evidence: the next line starts after
	 * a '\n' of its own and verify reports the partial one. */
	l->need_nl = partial;
	if (l->tail.len) {
		msv__audit_line ev;
		if (msv__audit_parse_line(l->tail.data, l->tail.len, &ev))
			return msv_error_set(err, MSV_E_CANT_CREATE, MSV_CLASS_LOCAL,
			                     "audit trail %s: the last line is not an audit event, the "
			                     "chain cannot continue (missive audit verify)", l->path);
		l->seq = ev.seq;
		memcpy(l->prev, ev.hash, MSV__AUDIT_HEX);
		l->last_ts = ev.ts_ms;
	} else {
		msv_result rc = continue_from_rotations(l, err);
		if (rc)
			return rc;
	}
	l->seen = size;
	return MSV_OK;
}

/* Takes the flock on the current PATH, reopening when another process
 * rotated it away from our descriptor, and refreshes the chain's end. */
static msv_result lock_file(msv_audit_log *l, msv_error *err)
{
	/* A rotation that failed half-way left no file open. */
	if (l->fd < 0) {
		msv_result rc = open_file(l, err);
		if (rc)
			return rc;
	}
	for (int tries = 0;; tries++) {
		if (flock_ex(l->fd))
			return sys_fail(err, "flock", l->path);
		struct stat st;
		int gone = stat(l->path, &st);
		if (!gone && st.st_dev == l->dev && st.st_ino == l->ino)
			return refresh(l, err);
		/* Rotated away (or deleted) under us: the new PATH is next. */
		if ((gone && errno != ENOENT) || tries > 1000) {
			msv_result rc = sys_fail(err, "stat", l->path);
			flock(l->fd, LOCK_UN);
			return rc;
		}
		flock(l->fd, LOCK_UN);
		msv_result rc = open_file(l, err);
		if (rc)
			return rc;
	}
}

static void unlock_file(msv_audit_log *l)
{
	if (l->fd >= 0)
		flock(l->fd, LOCK_UN);
}

/* PATH.head: the chain's end, for verify to see whole lines cut from the
 * end.  Written after the trail is fsynced, so it never runs ahead. */
static msv_result write_head(msv_audit_log *l, msv_error *err)
{
	if (fsync(l->fd))
		return sys_fail(err, "fsync", l->path);
	l->dirty = 0;
	l->synced = msv_now_ms();
	char tmp[4200], head[4200], body[128];
	if (snprintf(head, sizeof(head), "%s.head", l->path) >= (int)sizeof(head) ||
	    snprintf(tmp, sizeof(tmp), "%s.head.%ld.tmp", l->path, (long)getpid()) >=
	        (int)sizeof(tmp))
		return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE, "audit trail: path too long");
	int n = snprintf(body, sizeof(body), "{\"seq\":%llu,\"hash\":\"%s\"}\n",
	                 (unsigned long long)l->seq, l->prev);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return sys_fail(err, "cannot create", tmp);
	int bad = write(fd, body, (size_t)n) != n || fsync(fd);
	int e = errno;
	close(fd);
	if (bad || rename(tmp, head)) {
		errno = bad ? e : errno;
		msv_result rc = sys_fail(err, "cannot write", head);
		unlink(tmp);
		return rc;
	}
	return MSV_OK;
}

static msv_result write_line(msv_audit_log *l, const char *p, size_t n, msv_error *err)
{
	while (n) {
		ssize_t w = write(l->fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			/* Part of a line may be there: look again next time, so
			 * the next line starts on a line of its own. */
			l->seen = UINT64_MAX;
			return sys_fail(err, "cannot append", l->path);
		}
		/* A regular file takes the whole line in one write(2); a short
		 * write (a full disk) is finished or reported. */
		p += w;
		n -= (size_t)w;
		l->seen += (uint64_t)w;
	}
	return MSV_OK;
}

static msv_result append_line(msv_audit_log *l, const msv_audit_event *ev, int64_t now,
                              msv_error *err)
{
	msv__audit_ctx c = {l->masker, l->key, l->keylen, l->node};
	char hash[MSV__AUDIT_HEX + 1];
	msv_buf_reset(&l->line);
	msv_result rc = l->need_nl ? msv_buf_addc(&l->line, '\n') : MSV_OK;
	if (!rc)
		rc = msv__audit_format(&c, l->seq + 1, now, l->prev, ev, &l->line, hash);
	if (rc)
		return msv_error_set(err, rc, rc == MSV_E_INVALID ? MSV_CLASS_USAGE : MSV_CLASS_LOCAL,
		                     "audit trail %s: cannot format the %s event: %s", l->path,
		                     ev && ev->type ? ev->type : "(untyped)", msv_strerror(rc));
	rc = write_line(l, l->line.data, l->line.len, err);
	if (rc)
		return rc;
	l->need_nl = 0;
	l->seq++;
	memcpy(l->prev, hash, sizeof(l->prev));
	l->last_ts = now;
	l->dirty = 1;
	if (l->fsync_ms == 0 || msv_now_ms() - l->synced >= l->fsync_ms)
		return write_head(l, err);
	return MSV_OK;
}

/* PATH.YYYYMMDDTHHMMSSZ, with -N when taken. */
static msv_result rotated_name(const msv_audit_log *l, int64_t now, char *out, size_t n,
                               msv_error *err)
{
	time_t t = (time_t)(now / 1000);
	struct tm tm;
	char stamp[32];
	gmtime_r(&t, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	for (unsigned i = 0; i < 100000; i++) {
		int w = i ? snprintf(out, n, "%s.%s-%u", l->path, stamp, i)
		          : snprintf(out, n, "%s.%s", l->path, stamp);
		if (w < 0 || (size_t)w >= n)
			break;
		struct stat st;
		if (lstat(out, &st) && errno == ENOENT)
			return MSV_OK;
	}
	return msv_error_set(err, MSV_E_CANT_CREATE, MSV_CLASS_LOCAL,
	                     "audit trail %s: no free name to rotate to", l->path);
}

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');
	return s ? s + 1 : p;
}

/* Under the flock of the current file: renames it away, starts PATH
 * with an audit.rotated event that continues the chain. */
static msv_result rotate_locked(msv_audit_log *l, const char *reason, int64_t now,
                                msv_error *err)
{
	char to[4200];
	msv_result rc = rotated_name(l, now, to, sizeof(to), err);
	if (rc)
		return rc;
	if (fsync(l->fd))
		return sys_fail(err, "fsync", l->path);
	/* PATH never goes missing (a reader or `audit verify` listing the
	 * trail meanwhile would find no current file): the old file gets its
	 * rotated name as a second link, and a new, locked file replaces PATH
	 * in one rename. */
	char tmp[4300];
	snprintf(tmp, sizeof(tmp), "%s.new-%ld", l->path, (long)getpid());
	if (link(l->path, to))
		return sys_fail(err, "cannot link", l->path);
	int nfd = open(tmp, O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
	if (nfd < 0 || flock_ex(nfd) || rename(tmp, l->path)) {
		rc = sys_fail(err, "cannot replace", l->path);
		if (nfd >= 0) {
			close(nfd);
			unlink(tmp);
		}
		unlink(to);
		return rc;
	}
	/* Keep the old file locked until the new one is: a process waiting on
	 * the old lock then finds PATH changed and moves over. */
	int old = l->fd;
	l->fd = -1;
	rc = adopt_fd(l, nfd, err);
	flock(old, LOCK_UN);
	close(old);
	if (rc)
		return rc;
	uint64_t seq = l->seq;
	char prev[MSV__AUDIT_HEX + 1];
	memcpy(prev, l->prev, sizeof(prev));
	/* Someone may have created PATH between our rename and open. */
	rc = refresh(l, err);
	if (!rc && l->seq == 0) {
		l->seq = seq;
		memcpy(l->prev, prev, sizeof(prev));
	}
	msv_audit_field f[] = {MSV_AUDIT_R("previous_file", base_name(to)),
	                       MSV_AUDIT_R("reason", reason)};
	msv_audit_event ev = {.type = "audit.rotated", .fields = f, .nfields = 2};
	if (!rc)
		rc = append_line(l, &ev, now, err);
	return rc ? rc : write_head(l, err);
}

/* The rotation an append at now needs first, or NULL. */
static const char *rotation_due(const msv_audit_log *l, int64_t now)
{
	if (!l->seen || l->seen == UINT64_MAX)
		return NULL;
	if (l->rotate_size && l->seen >= l->rotate_size)
		return "size";
	if (l->rotate_daily && l->last_ts && l->last_ts / 86400000 != now / 86400000)
		return "daily";
	return NULL;
}

msv_result msv__audit_append_at(msv_audit_log *l, const msv_audit_event *ev, int64_t now,
                                msv_error *err)
{
	if (!l || !ev || !ev->type)
		return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE, "audit: no event");
	pthread_mutex_lock(&l->mu);
	msv_result rc = lock_file(l, err);
	const char *why = rc ? NULL : rotation_due(l, now);
	if (!rc && why)
		rc = rotate_locked(l, why, now, err);
	if (!rc)
		rc = append_line(l, ev, now, err);
	unlock_file(l);
	pthread_mutex_unlock(&l->mu);
	return rc;
}

msv_result msv_audit_append(msv_audit_log *l, const msv_audit_event *ev, msv_error *err)
{
	return msv__audit_append_at(l, ev, msv_wall_ms(), err);
}

msv_result msv_audit_rotate(msv_audit_log *l, msv_error *err)
{
	pthread_mutex_lock(&l->mu);
	msv_result rc = lock_file(l, err);
	if (!rc)
		rc = rotate_locked(l, "signal", msv_wall_ms(), err);
	unlock_file(l);
	pthread_mutex_unlock(&l->mu);
	return rc;
}

msv_result msv_audit_sync(msv_audit_log *l, msv_error *err)
{
	msv_result rc = MSV_OK;
	pthread_mutex_lock(&l->mu);
	if (l->dirty) {
		/* Our lines may be in a file another process has rotated since:
		 * flush that one first, then record the current end. */
		if (fsync(l->fd))
			rc = sys_fail(err, "fsync", l->path);
		if (!rc)
			rc = lock_file(l, err);
		if (!rc)
			rc = write_head(l, err);
		unlock_file(l);
	}
	pthread_mutex_unlock(&l->mu);
	return rc;
}

msv_result msv_audit_log_open(msv_audit_log **out, const msv_audit_log_options *o,
                              msv_error *err)
{
	*out = NULL;
	if (!o || !o->path || !*o->path || !o->masker || (o->hmac_key_len && !o->hmac_key))
		return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE,
		                     "audit trail: a path and a masker are required");
	msv_audit_log *l = msv_calloc(1, sizeof(*l));
	if (!l)
		return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "audit trail: out of memory");
	l->fd = -1;
	pthread_mutex_init(&l->mu, NULL);
	msv_buf_init(&l->line, MSV__AUDIT_LINE_MAX + 2);
	msv_buf_init(&l->tail, MSV__AUDIT_LINE_MAX);
	l->path = msv_strdup(o->path);
	l->node = o->node ? msv_strdup(o->node) : NULL;
	if (o->hmac_key) {
		/* +1: a zero-length key is still "keyed" and malloc(0) may be NULL. */
		l->key = msv_malloc(o->hmac_key_len + 1);
		if (l->key)
			memcpy(l->key, o->hmac_key, o->hmac_key_len);
		l->keylen = o->hmac_key_len;
	}
	l->masker = o->masker;
	l->rotate_size = o->rotate_size;
	l->rotate_daily = o->rotate_daily;
	l->retention_ms = o->retention_ms;
	l->fsync_ms = o->fsync_ms < 0 ? 0 : o->fsync_ms;
	l->synced = msv_now_ms();
	memcpy(l->prev, msv__audit_zero_hash, sizeof(l->prev));
	msv_result rc = MSV_OK;
	if (!l->path || (o->node && !l->node) || (o->hmac_key && !l->key))
		rc = msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "audit trail: out of memory");
	if (!rc)
		rc = open_file(l, err);
	/* Reads the tail now, so that a trail we cannot continue is refused
	 * at start rather than at the first event. */
	if (!rc) {
		rc = lock_file(l, err);
		unlock_file(l);
	}
	if (rc) {
		msv_audit_log_close(l);
		return rc;
	}
	*out = l;
	return MSV_OK;
}

void msv_audit_log_close(msv_audit_log *l)
{
	if (!l)
		return;
	if (l->fd >= 0 && l->seen != UINT64_MAX) {
		msv_error e;
		/* The head is best effort here: there is no one to tell. */
		if (!lock_file(l, &e))
			(void)write_head(l, &e);
		unlock_file(l);
	}
	if (l->fd >= 0)
		close(l->fd);
	pthread_mutex_destroy(&l->mu);
	msv_free(l->path);
	msv_free(l->node);
	if (l->key) {
		msv_wipe(l->key, l->keylen);
		msv_free(l->key);
	}
	msv_buf_free(&l->line);
	msv_buf_free(&l->tail);
	msv_free(l);
}

/* Counts the lines of a file (partial last line included). */
static int count_lines(const char *path, uint64_t *n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	msv__audit_lines r;
	msv__audit_lines_init(&r, fd, 0);
	const char *line;
	size_t len;
	int got;
	*n = 0;
	while ((got = msv__audit_lines_next(&r, &line, &len)) == 1)
		(*n)++;
	if (got == 0 && line)
		(*n)++;
	int e = errno;
	msv__audit_lines_free(&r);
	close(fd);
	errno = e;
	return got < 0 ? -1 : 0;
}

/* Deletes one rotated file whose last event is older than cutoff and
 * records it; 1 deleted, 0 kept (young, or undatable), or an error. */
static msv_result expire_one(msv_audit_log *l, const char *file, int64_t now, int64_t cutoff,
                             int *deleted, msv_error *err)
{
	msv__audit_line ev;
	msv_buf line;
	msv_buf_init(&line, MSV__AUDIT_LINE_MAX);
	int bad, got = msv__audit_file_last(file, &line, &ev, &bad);
	uint64_t n = 0;
	msv_result rc = MSV_OK;
	*deleted = 0;
	if (got < 0 || (got == 1 && ev.ts_ms < cutoff && count_lines(file, &n)))
		rc = sys_fail(err, "cannot read", file);
	if (rc || got != 1 || ev.ts_ms >= cutoff) {
		msv_buf_free(&line);
		return rc;
	}
	char hash[MSV__AUDIT_HEX + 1];
	memcpy(hash, ev.hash, MSV__AUDIT_HEX);
	hash[MSV__AUDIT_HEX] = '\0';
	uint64_t last = ev.seq;
	msv_buf_free(&line);
	if (unlink(file))
		return errno == ENOENT ? MSV_OK : sys_fail(err, "cannot delete", file);
	*deleted = 1;
	msv_audit_field f[] = {MSV_AUDIT_R("file", base_name(file)), MSV_AUDIT_I("events", (long long)n),
	                       MSV_AUDIT_I("last_seq", (long long)last), MSV_AUDIT_R("last_hash", hash)};
	msv_audit_event e = {.type = "audit.expired", .fields = f, .nfields = 4};
	return append_line(l, &e, now, err);
}

msv_result msv_audit_expire(msv_audit_log *l, int64_t now_ms, unsigned *deleted, msv_error *err)
{
	if (deleted)
		*deleted = 0;
	if (!l->retention_ms)
		return MSV_OK;
	char **files = NULL;
	pthread_mutex_lock(&l->mu);
	/* Listed under the lock: no rotation renames a file meanwhile. */
	msv_result rc = lock_file(l, err);
	if (!rc)
		rc = msv_audit_files(l->path, &files, err);
	/* Oldest first, and only a prefix of the trail: verify anchors on the
	 * oldest file left, so no hole may open between two kept files. */
	for (size_t i = 0; !rc && files && files[i] && strcmp(files[i], l->path); i++) {
		int gone;
		rc = expire_one(l, files[i], now_ms, now_ms - l->retention_ms, &gone, err);
		if (!gone)
			break;
		if (deleted)
			(*deleted)++;
	}
	unlock_file(l);
	pthread_mutex_unlock(&l->mu);
	msv_audit_files_free(files);
	return rc;
}

/* The -N of a rotation's name after base.YYYYMMDDTHHMMSSZ (0 for none),
 * or -1 when the name is not one. */
static long rotation_suffix(const char *name, const char *base)
{
	static const char shape[] = ".ddddddddTddddddZ";
	size_t bl = strlen(base);
	if (strncmp(name, base, bl))
		return -1;
	const char *p = name + bl;
	for (int i = 0; shape[i]; i++)
		if (shape[i] == 'd' ? (p[i] < '0' || p[i] > '9') : p[i] != shape[i])
			return -1;
	p += sizeof(shape) - 1;
	if (!*p)
		return 0;
	if (*p != '-' || !p[1] || p[1] == '0' || strspn(p + 1, "0123456789") != strlen(p + 1) ||
	    strlen(p + 1) > 9)
		return -1;
	return strtol(p + 1, NULL, 10);
}

/* Time order: the stamp, then the -N (numerically: -10 after -9). */
static int by_rotation(const void *a, const void *b)
{
	const char *x = *(char *const *)a, *y = *(char *const *)b;
	const char *dx = strrchr(x, '.'), *dy = strrchr(y, '.');
	int c = strncmp(dx, dy, 17);
	if (c)
		return c;
	long nx = dx[17] ? strtol(dx + 18, NULL, 10) : 0, ny = dy[17] ? strtol(dy + 18, NULL, 10) : 0;
	return (nx > ny) - (nx < ny);
}

static msv_result files_push(char ***v, size_t *n, size_t *cap, char *s)
{
	if (!s)
		return MSV_E_NOMEM;
	if (*n + 2 > *cap) {
		size_t c = *cap ? *cap * 2 : 16;
		char **nv = msv_realloc(*v, c * sizeof(**v));
		if (!nv) {
			msv_free(s);
			return MSV_E_NOMEM;
		}
		*v = nv;
		*cap = c;
	}
	(*v)[(*n)++] = s;
	(*v)[*n] = NULL;
	return MSV_OK;
}

msv_result msv_audit_files(const char *path, char ***files, msv_error *err)
{
	*files = NULL;
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	size_t dlen = slash ? (size_t)(slash - path) : 0;
	char dir[4200];
	if (dlen + 2 > sizeof(dir) || !*base)
		return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE, "audit trail %s: bad path",
		                     path);
	snprintf(dir, sizeof(dir), "%.*s", (int)(slash ? (dlen ? dlen : 1) : 1),
	         slash ? path : ".");
	DIR *d = opendir(dir);
	if (!d)
		return sys_fail(err, "cannot list the directory of", path);
	size_t n = 0, cap = 16;
	char **v = msv_calloc(cap, sizeof(*v));
	msv_result rc = v ? MSV_OK : MSV_E_NOMEM;
	struct dirent *e;
	while (!rc && (e = readdir(d))) {
		if (rotation_suffix(e->d_name, base) < 0)
			continue;
		size_t len = strlen(e->d_name) + (slash ? (size_t)(base - path) : 0) + 1;
		char *full = msv_malloc(len);
		if (full)
			snprintf(full, len, "%.*s%s", (int)(base - path), path, e->d_name);
		rc = files_push(&v, &n, &cap, full);
	}
	closedir(d);
	if (!rc && n > 1)
		qsort(v, n, sizeof(*v), by_rotation);
	struct stat st;
	if (!rc && stat(path, &st) == 0)
		rc = files_push(&v, &n, &cap, msv_strdup(path));
	if (rc) {
		msv_audit_files_free(v);
		return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "audit trail: out of memory");
	}
	*files = v;
	return MSV_OK;
}

void msv_audit_files_free(char **files)
{
	if (!files)
		return;
	for (size_t i = 0; files[i]; i++)
		msv_free(files[i]);
	msv_free(files);
}
