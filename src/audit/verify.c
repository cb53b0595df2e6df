/*
 * Verification of the chain (docs/audit.md): every line parses,
 * its hash is right, its prev is the previous line's hash and its seq
 * the previous one plus one, across files; the last file's .head says
 * whether whole lines were cut from the end.  The first problem wins.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "audit/chain_int.h"

typedef struct vstate {
	const unsigned char *key;
	size_t keylen;
	msv_audit_verdict *v;
	int have;                      /* a line was checked before */
	uint64_t seq;                  /* the previous line's */
	char prev[MSV__AUDIT_HEX + 1]; /* the previous line's hash */
	const char *prev_file;         /* where the previous line is */
	unsigned long prev_line;
	int head;                      /* the last file has a readable .head */
	uint64_t head_seq;
	char head_hash[MSV__AUDIT_HEX + 1];
} vstate;

static void broken(vstate *s, const char *file, unsigned long line, const char *fmt, ...)
	MSV_PRINTF(4, 5);

static void broken(vstate *s, const char *file, unsigned long line, const char *fmt, ...)
{
	va_list ap;
	s->v->intact = 0;
	snprintf(s->v->file, sizeof(s->v->file), "%s", file);
	s->v->line = line;
	va_start(ap, fmt);
	vsnprintf(s->v->why, sizeof(s->v->why), fmt, ap);
	va_end(ap);
}

int msv__audit_head_read(const char *file, uint64_t *seq, char hash[MSV__AUDIT_HEX + 1])
{
	char path[4200], buf[256];
	if (snprintf(path, sizeof(path), "%s.head", file) >= (int)sizeof(path))
		return 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	const char *h = strstr(buf, ",\"hash\":\"");
	if (strncmp(buf, "{\"seq\":", 7) || msv__audit_json_u64(buf, "seq", seq) || !h ||
	    (size_t)(buf + n - h) < 9 + MSV__AUDIT_HEX + 2 || memcmp(h + 9 + MSV__AUDIT_HEX, "\"}", 2))
		return 0;
	for (int i = 0; i < MSV__AUDIT_HEX; i++) {
		char c = h[9 + i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return 0;
	}
	memcpy(hash, h + 9, MSV__AUDIT_HEX);
	hash[MSV__AUDIT_HEX] = '\0';
	return 1;
}

/* Checks one line; 0 fine, -1 broken (verdict filled). */
static int check_line(vstate *s, const char *file, unsigned long no, const char *line,
                      size_t len, int last_file)
{
	msv__audit_line ev;
	char hash[MSV__AUDIT_HEX + 1];
	if (msv__audit_parse_line(line, len, &ev)) {
		broken(s, file, no, "not an audit event line (edited, or a write cut short)");
		return -1;
	}
	if (msv__audit_hash(s->key, s->keylen, line, ev.covered, hash) ||
	    memcmp(hash, ev.hash, MSV__AUDIT_HEX)) {
		broken(s, file, no, "hash mismatch (line edited, or the wrong key)");
		return -1;
	}
	if (!s->have && ev.seq == 1 && memcmp(ev.prev, msv__audit_zero_hash, MSV__AUDIT_HEX)) {
		broken(s, file, no, "the first event's prev is not zero (lines before it deleted)");
		return -1;
	}
	/* The first line with seq > 1 is anchored on files retention deleted. */
	if (s->have && memcmp(ev.prev, s->prev, MSV__AUDIT_HEX)) {
		if (s->prev_file == file)
			broken(s, file, no, "prev does not match the hash of line %lu "
			       "(line deleted or reordered)", s->prev_line);
		else
			broken(s, file, no, "prev does not match the last line of %s "
			       "(line deleted or reordered)", s->prev_file);
		return -1;
	}
	if (s->have && ev.seq != s->seq + 1) {
		broken(s, file, no, "sequence gap: expected seq %llu, found %llu (line deleted or "
		       "reordered)", (unsigned long long)(s->seq + 1), (unsigned long long)ev.seq);
		return -1;
	}
	if (last_file && s->head && ev.seq == s->head_seq &&
	    memcmp(ev.hash, s->head_hash, MSV__AUDIT_HEX)) {
		broken(s, file, no, "hash differs from the one %s.head records for seq %llu "
		       "(line replaced)", file, (unsigned long long)ev.seq);
		return -1;
	}
	s->have = 1;
	s->seq = ev.seq;
	memcpy(s->prev, ev.hash, MSV__AUDIT_HEX);
	s->prev[MSV__AUDIT_HEX] = '\0';
	s->prev_file = file;
	s->prev_line = no;
	s->v->events++;
	return 0;
}

/* One file; MSV_OK (verdict may say broken), or a read error. */
static msv_result verify_file(vstate *s, const char *file, int last_file, msv_error *err)
{
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return msv_error_set(err, MSV_E_NO_INPUT, MSV_CLASS_LOCAL, "audit trail %s: %s", file,
		                     strerror(errno));
	msv__audit_lines r;
	msv__audit_lines_init(&r, fd, 0);
	const char *line;
	size_t len;
	unsigned long no = 0;
	int got;
	while ((got = msv__audit_lines_next(&r, &line, &len)) == 1)
		if (check_line(s, file, ++no, line, len, last_file))
			break;
	int e = errno;
	if (got == 0 && line)
		broken(s, file, no + 1, "incomplete last line (truncated)");
	else if (got == 0 && last_file && s->head && s->head_seq > s->seq)
		broken(s, file, no + 1, "truncated: the trail ends at seq %llu but %s.head records "
		       "%llu", (unsigned long long)s->seq, file, (unsigned long long)s->head_seq);
	msv__audit_lines_free(&r);
	close(fd);
	if (got < 0 && e == EFBIG)
		broken(s, file, no + 1, "line longer than %d bytes (not an audit event line)",
		       MSV__AUDIT_LINE_MAX);
	else if (got < 0)
		return msv_error_set(err, MSV_E_NO_INPUT, MSV_CLASS_LOCAL, "audit trail %s: %s",
		                     file, strerror(e));
	return MSV_OK;
}

msv_result msv_audit_verify(const char *const *files, size_t n, const unsigned char *hmac_key,
                            size_t hmac_key_len, msv_audit_verdict *v, msv_error *err)
{
	memset(v, 0, sizeof(*v));
	v->intact = 1;
	vstate s;
	memset(&s, 0, sizeof(s));
	s.key = hmac_key;
	s.keylen = hmac_key_len;
	s.v = v;
	if (n)
		s.head = msv__audit_head_read(files[n - 1], &s.head_seq, s.head_hash);
	for (size_t i = 0; i < n && v->intact; i++) {
		msv_result rc = verify_file(&s, files[i], i + 1 == n, err);
		if (rc)
			return rc;
	}
	return MSV_OK;
}
