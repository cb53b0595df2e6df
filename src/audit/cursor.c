/*
 * Export cursors and the reader that follows the trail from one
 * (docs/audit.md): PATH.cursor-SINK holds the last sequence number
 * a sink has taken for good, with the inode and offset after that line as
 * a hint; the reader moves on to the next file when PATH was rotated.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/chain_int.h"

int msv__audit_json_u64(const char *json, const char *key, uint64_t *out)
{
	char pat[64];
	if (snprintf(pat, sizeof(pat), "\"%s\":", key) >= (int)sizeof(pat))
		return -1;
	const char *p = strstr(json, pat);
	if (!p)
		return -1;
	p += strlen(pat);
	uint64_t v = 0;
	const char *d = p;
	while (*p >= '0' && *p <= '9') {
		unsigned c = (unsigned)(*p++ - '0');
		if (v > (UINT64_MAX - c) / 10)
			return -1;
		v = v * 10 + c;
	}
	if (p == d || (*p != ',' && *p != '}'))
		return -1;
	*out = v;
	return 0;
}

/* PATH.cursor-SINK into out; the sink name is a plain word. */
static msv_result cursor_path(const char *path, const char *sink, char *out, size_t n,
                              msv_error *err)
{
	size_t sl = sink ? strlen(sink) : 0;
	if (!path || !sl || sl > 64 ||
	    strspn(sink, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != sl)
		return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE,
		                     "audit cursor: bad sink name '%s'", sink ? sink : "");
	if (snprintf(out, n, "%s.cursor-%s", path, sink) >= (int)n)
		return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE, "audit cursor: path too long");
	return MSV_OK;
}

msv_result msv_audit_cursor_load(const char *path, const char *sink, msv_audit_cursor *c,
                                 msv_error *err)
{
	char file[4200], buf[256];
	memset(c, 0, sizeof(*c));
	msv_result rc = cursor_path(path, sink, file, sizeof(file), err);
	if (rc)
		return rc;
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return MSV_OK; /* nothing exported yet */
	if (fd < 0)
		return msv_error_set(err, MSV_E_NO_INPUT, MSV_CLASS_LOCAL, "audit cursor %s: %s", file,
		                     strerror(errno));
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	if (n <= 0 || buf[0] != '{' || msv__audit_json_u64(buf, "seq", &c->seq) ||
	    msv__audit_json_u64(buf, "inode", &c->inode) ||
	    msv__audit_json_u64(buf, "offset", &c->offset)) {
		memset(c, 0, sizeof(*c));
		return msv_error_set(err, MSV_E_NO_INPUT, MSV_CLASS_LOCAL,
		                     "audit cursor %s: not a cursor file", file);
	}
	return MSV_OK;
}

msv_result msv_audit_cursor_save(const char *path, const char *sink, const msv_audit_cursor *c,
                                 msv_error *err)
{
	char file[4200], tmp[4300], body[128];
	msv_result rc = cursor_path(path, sink, file, sizeof(file), err);
	if (rc)
		return rc;
	snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", file, (long)getpid());
	int n = snprintf(body, sizeof(body), "{\"seq\":%llu,\"inode\":%llu,\"offset\":%llu}\n",
	                 (unsigned long long)c->seq, (unsigned long long)c->inode,
	                 (unsigned long long)c->offset);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return msv_error_set(err, MSV_E_CANT_CREATE, MSV_CLASS_LOCAL, "audit cursor %s: %s",
		                     tmp, strerror(errno));
	/* fsync before rename: after a crash the cursor is the old or the
	 * new one, never an empty file. */
	int bad = write(fd, body, (size_t)n) != n || fsync(fd);
	int e = errno;
	close(fd);
	if (bad || rename(tmp, file)) {
		e = bad ? e : errno;
		unlink(tmp);
		return msv_error_set(err, MSV_E_CANT_CREATE, MSV_CLASS_LOCAL, "audit cursor %s: %s",
		                     file, strerror(e));
	}
	return MSV_OK;
}

msv_result msv_audit_last_seq(const char *path, uint64_t *seq, msv_error *err)
{
	*seq = 0;
	char **files;
	msv_result rc = msv_audit_files(path, &files, err);
	if (rc)
		return rc;
	msv_buf line;
	msv_buf_init(&line, MSV__AUDIT_LINE_MAX);
	size_t n = 0;
	while (files[n])
		n++;
	/* The newest file with an event (PATH is empty right after a
	 * rotation that was cut short). */
	for (size_t i = n; i-- > 0 && !rc;) {
		msv__audit_line ev;
		int bad, got = msv__audit_file_last(files[i], &line, &ev, &bad);
		if (got < 0 || bad)
			rc = msv_error_set(err, MSV_E_NO_INPUT, MSV_CLASS_LOCAL,
			                   "audit trail %s: %s", files[i],
			                   bad ? "the last line is not an audit event" : strerror(errno));
		if (got == 1) {
			*seq = ev.seq;
			break;
		}
	}
	msv_buf_free(&line);
	msv_audit_files_free(files);
	return rc;
}

/* ---- the reader ---- */

struct msv_audit_reader {
	char *path;
	int fd;
	dev_t dev;
	ino_t ino;
	msv__audit_lines lines;
	uint64_t skip; /* the last seq handed out (or the cursor's) */
};

static void reader_close_file(msv_audit_reader *r)
{
	if (r->fd >= 0) {
		msv__audit_lines_free(&r->lines);
		close(r->fd);
	}
	r->fd = -1;
}

/* Makes fd (of stat st) the file read, from offset (0 when the hint is
 * past its end). */
static void reader_take(msv_audit_reader *r, int fd, const struct stat *st, uint64_t offset)
{
	reader_close_file(r);
	if (offset > (uint64_t)st->st_size || lseek(fd, (off_t)offset, SEEK_SET) < 0)
		offset = 0;
	lseek(fd, (off_t)offset, SEEK_SET);
	r->fd = fd;
	r->dev = st->st_dev;
	r->ino = st->st_ino;
	msv__audit_lines_init(&r->lines, fd, offset);
}

/* open and fstat: the descriptor, -1 gone (ENOENT), -2 error. */
static int open_stat(const char *file, struct stat *st, msv_error *err)
{
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return -1; /* gone meanwhile: the caller looks again */
	if (fd < 0 || fstat(fd, st)) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		msv_error_set(err, MSV_E_NO_INPUT, MSV_CLASS_LOCAL, "audit trail %s: %s", file,
		              strerror(e));
		return -2;
	}
	return fd;
}

/* The index in files of the file with inode ino, or -1. */
static long find_inode(char **files, dev_t dev, uint64_t ino, int any_dev)
{
	for (long i = 0; files[i]; i++) {
		struct stat st;
		if (stat(files[i], &st) == 0 && (uint64_t)st.st_ino == ino &&
		    (any_dev || st.st_dev == dev))
			return i;
	}
	return -1;
}

static int same_files(char **a, char **b)
{
	size_t i = 0;
	for (; a[i] && b[i]; i++)
		if (strcmp(a[i], b[i]))
			return 0;
	return !a[i] && !b[i];
}

static uint64_t path_inode(const char *path)
{
	struct stat st;
	return stat(path, &st) ? 0 : (uint64_t)st.st_ino;
}

/* msv_audit_files() while a writer may rotate: a rename during readdir
 * can hide the file just renamed, which would make the reader skip it.
 * Two listings alike, with PATH the same inode after each, missed none;
 * *path_ino: that inode. */
static msv_result files_stable(const char *path, char ***files, uint64_t *path_ino,
                               msv_error *err)
{
	char **prev = NULL;
	uint64_t prev_ino = 0;
	for (int tries = 0;; tries++) {
		char **cur;
		msv_result rc = msv_audit_files(path, &cur, err);
		if (rc) {
			msv_audit_files_free(prev);
			return rc;
		}
		uint64_t ino = path_inode(path);
		int stable = prev && ino == prev_ino && same_files(prev, cur);
		msv_audit_files_free(prev);
		if (stable || tries == 100) {
			*files = cur;
			*path_ino = ino;
			return MSV_OK;
		}
		prev = cur;
		prev_ino = ino;
	}
}

/* Opens the file after the current one (or, with none current or the
 * current one expired, the oldest). */
static msv_result reader_advance(msv_audit_reader *r, msv_error *err)
{
	for (int tries = 0;; tries++) {
		char **files;
		uint64_t path_ino;
		msv_result rc = files_stable(r->path, &files, &path_ino, err);
		if (rc)
			return rc;
		long at = r->fd >= 0 ? find_inode(files, r->dev, (uint64_t)r->ino, 0) : -1;
		const char *next = files[at + 1];
		int is_path = next && !files[at + 2];
		struct stat st;
		int fd = next ? open_stat(next, &st, err) : -1;
		msv_audit_files_free(files);
		if (fd == -2)
			return err->code;
		/* PATH rotated again between the listing and the open: this is
		 * a newer file than the one after ours.  List again. */
		if (fd >= 0 && is_path && (uint64_t)st.st_ino != path_ino && tries < 100) {
			close(fd);
			continue;
		}
		if (fd >= 0)
			reader_take(r, fd, &st, 0);
		else if (!next)
			reader_close_file(r);
		return MSV_OK;
	}
}

/* Opens the file the cursor's inode names at its offset or, when
 * retention deleted it, the oldest file from its start (the lines up to
 * the cursor's seq are skipped either way). */
static msv_result reader_start(msv_audit_reader *r, const msv_audit_cursor *from,
                               msv_error *err)
{
	for (int tries = 0;; tries++) {
		char **files;
		uint64_t path_ino;
		msv_result rc = files_stable(r->path, &files, &path_ino, err);
		if (rc)
			return rc;
		long at = from && from->seq && from->inode ? find_inode(files, 0, from->inode, 1) : -1;
		const char *file = at >= 0 ? files[at] : files[0];
		uint64_t want = at >= 0 ? from->inode : file && !files[1] ? path_ino : 0;
		struct stat st;
		int fd = file ? open_stat(file, &st, err) : -1;
		msv_audit_files_free(files);
		if (fd == -2)
			return err->code;
		/* A rename between the listing and the open: not that file. */
		if (fd >= 0 && want && (uint64_t)st.st_ino != want && tries < 100) {
			close(fd);
			continue;
		}
		if (fd >= 0)
			reader_take(r, fd, &st, at >= 0 ? from->offset : 0);
		return MSV_OK;
	}
}

msv_result msv_audit_reader_open(msv_audit_reader **out, const char *path,
                                 const msv_audit_cursor *from, msv_error *err)
{
	*out = NULL;
	msv_audit_reader *r = msv_calloc(1, sizeof(*r));
	if (!r || !(r->path = msv_strdup(path))) {
		msv_free(r);
		return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "audit reader: out of memory");
	}
	r->fd = -1;
	r->skip = from ? from->seq : 0;
	msv_result rc = reader_start(r, from, err);
	if (rc) {
		msv_audit_reader_close(r);
		return rc;
	}
	*out = r;
	return MSV_OK;
}

/* 1: PATH is still the file we read; 0: it was rotated (or removed). */
static int reader_current(const msv_audit_reader *r)
{
	struct stat st;
	return stat(r->path, &st) == 0 && st.st_ino == r->ino && st.st_dev == r->dev;
}

msv_result msv_audit_reader_next(msv_audit_reader *r, const char **line, size_t *len,
                                 msv_audit_cursor *pos, msv_error *err)
{
	*line = NULL;
	*len = 0;
	int rechecked = 0;
	for (int moves = 0; moves < 10000;) {
		if (r->fd < 0) {
			msv_result rc = reader_advance(r, err);
			if (rc || r->fd < 0)
				return rc; /* no file yet */
		}
		const char *l;
		size_t n;
		int got = msv__audit_lines_next(&r->lines, &l, &n);
		if (got < 0)
			return msv_error_set(err, MSV_E_NO_INPUT, MSV_CLASS_LOCAL, "audit trail %s: %s",
			                     r->path, strerror(errno));
		if (got == 1) {
			msv__audit_line ev;
			/* A damaged line (verify reports it) has no seq to
			 * export by: it is passed over. */
			if (msv__audit_parse_line(l, n, &ev) || ev.seq <= r->skip)
				continue;
			r->skip = ev.seq;
			pos->seq = ev.seq;
			pos->inode = (uint64_t)r->ino;
			pos->offset = r->lines.offset;
			*line = l;
			*len = n;
			return MSV_OK;
		}
		if (reader_current(r))
			return MSV_OK; /* nothing whole yet */
		/* Rotated: what was written before the rename is in the file
		 * by now; read to its end once more, then move on. */
		if (!rechecked) {
			rechecked = 1;
			continue;
		}
		msv_result rc = reader_advance(r, err);
		if (rc)
			return rc;
		if (r->fd < 0)
			return MSV_OK;
		rechecked = 0;
		moves++;
	}
	return MSV_OK;
}

void msv_audit_reader_close(msv_audit_reader *r)
{
	if (!r)
		return;
	reader_close_file(r);
	msv_free(r->path);
	msv_free(r);
}
