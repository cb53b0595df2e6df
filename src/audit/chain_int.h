/*
 * chain_int.h - the audit chain's internals shared by log.c, event.c,
 * verify.c and cursor.c (docs/audit.md): the line format, its
 * parser, a bounded line reader and the tail of a file.
 */
#ifndef MSV_AUDIT_CHAIN_INT_H
#define MSV_AUDIT_CHAIN_INT_H

#include <stdint.h>
#include <sys/types.h>

#include "missive/audit.h"

/* A line is at most this long, '\n' excluded: the writer refuses longer
 * events, readers reject longer lines, the tail is read within it. */
#define MSV__AUDIT_LINE_MAX (1024 * 1024)
#define MSV__AUDIT_HEX 64 /* a hash in lowercase hex */

/* The suffix after the covered bytes: ,"hash":"<64 hex>"} */
#define MSV__AUDIT_HASH_SUFFIX (9 + MSV__AUDIT_HEX + 2)
/* The end of the covered bytes: ,"prev":"<64 hex>" */
#define MSV__AUDIT_PREV_SUFFIX (9 + MSV__AUDIT_HEX + 1)

extern const char msv__audit_zero_hash[MSV__AUDIT_HEX + 1];

/* What the parser takes from a line; pointers into the line. */
typedef struct msv__audit_line {
	uint64_t seq;
	int64_t ts_ms;
	const char *type; /* not NUL-terminated: type_len */
	size_t type_len;
	const char *prev; /* 64 hex */
	const char *hash; /* 64 hex */
	size_t covered;   /* bytes the hash covers: line[0..covered) */
} msv__audit_line;

/* Parses one line (without '\n').  0, or -1 when it is not a line of the
 * chain's format (the fuzz target's entry). */
int msv__audit_parse_line(const char *line, size_t len, msv__audit_line *out);

/* The chain hash of data into hex (65 bytes, NUL-terminated): HMAC-SHA-256
 * under key, or SHA-256 when key is NULL.  0, or -1 (OpenSSL failed). */
int msv__audit_hash(const unsigned char *key, size_t keylen, const char *data, size_t len,
                    char hex[MSV__AUDIT_HEX + 1]);

/* Appends to out the event line (with its hash and '\n'), seq and prev
 * continuing the chain, ts_ms the event's time.  *hash receives its hash. */
typedef struct msv__audit_ctx {
	const msv_masker *masker;
	const unsigned char *key;
	size_t keylen;
	const char *node;
} msv__audit_ctx;
msv_result msv__audit_format(const msv__audit_ctx *c, uint64_t seq, int64_t ts_ms,
                             const char *prev, const msv_audit_event *ev, msv_buf *out,
                             char hash[MSV__AUDIT_HEX + 1]);

/* JSON string body of in[0..len) (no quotes): '"', '\\' and controls
 * escaped, bytes that are not UTF-8 replaced by U+FFFD. */
msv_result msv__audit_json_escape(msv_buf *out, const char *in, size_t len);
/* "YYYY-MM-DDTHH:MM:SS.mmmZ" (25 bytes with the NUL). */
void msv__audit_ts(char out[25], int64_t ms);
/* A UUIDv7 for ms (37 bytes with the NUL).  0, or -1 (no randomness). */
int msv__audit_uuidv7(char out[37], int64_t ms);

/* Reads a file a line at a time in bounded memory. */
typedef struct msv__audit_lines {
	int fd;
	msv_buf buf;
	size_t pos;      /* start of the next line in buf */
	int eof;
	uint64_t offset; /* file offset of buf[pos] */
} msv__audit_lines;
void msv__audit_lines_init(msv__audit_lines *r, int fd, uint64_t offset);
void msv__audit_lines_free(msv__audit_lines *r);
/* 1 with a whole line (no '\n'), 0 at the end, where *len and *line give a
 * partial last line if there is one (*line NULL otherwise); -1 with errno
 * (EFBIG for a line over MSV__AUDIT_LINE_MAX). */
int msv__audit_lines_next(msv__audit_lines *r, const char **line, size_t *len);

/* The last whole line of an open file of size size, into out (without its
 * '\n'); *partial set when bytes follow it without a '\n'.  0 (out empty
 * when there is no whole line), or -1 with errno. */
int msv__audit_tail(int fd, uint64_t size, msv_buf *out, int *partial);
/* The last event of the file at path: 1 found, 0 none (empty, missing or
 * unparseable tail: *bad set for the last), -1 with errno. */
int msv__audit_file_last(const char *path, msv_buf *line, msv__audit_line *ev, int *bad);

/* msv_audit_append with the event's time given (tests: daily rotation). */
msv_result msv__audit_append_at(msv_audit_log *l, const msv_audit_event *ev, int64_t now_ms,
                                msv_error *err);

/* The unsigned number of member "key" in a small JSON object of ours
 * ({"seq":12,...}): 0, or -1 when missing or not a plain number. */
int msv__audit_json_u64(const char *json, const char *key, uint64_t *out);

/* FILE.head, the writer's record of the chain's end: 1 read, 0 none or
 * unreadable. */
int msv__audit_head_read(const char *file, uint64_t *seq, char hash[MSV__AUDIT_HEX + 1]);

#endif
