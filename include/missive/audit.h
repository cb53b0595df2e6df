/*
 * missive/audit.h - the audit trail: masking of personal data, a
 * hash-chained, append-only event log (JSON Lines), its verification and
 * the export cursors.  docs/audit.md describes the file format, the
 * guarantees and where each part's code is.
 *
 * Three objects:
 *   msv_audit_keys   the pseudonym keys: 65536 random 32-byte bucket keys
 *                    in one file; an address's pseudonym is keyed by its
 *                    bucket's key, and forgetting an address replaces that
 *                    key (crypto-shredding).
 *   msv_masker       masks addresses (keyed pseudonyms that keep the
 *                    domain), mainland China mobile numbers, resident ID
 *                    numbers, payment card numbers and configured rules.
 *                    Immutable once built, so threads share it.
 *   msv_audit_log    appends events to the chain.  Several processes may
 *                    append to one file (missived and the operator
 *                    commands): each append takes an exclusive flock and
 *                    continues from the file's last hash.
 *
 * Nothing here prints, exits or keeps global state.
 */
#ifndef MISSIVE_AUDIT_H
#define MISSIVE_AUDIT_H

#include "missive/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- pseudonym keys ---- */

typedef struct msv_audit_keys msv_audit_keys;

/* Opens the key file, creating it (mode 0600, random keys) when missing.
 * MSV_OK, or MSV_E_CANT_CREATE / MSV_E_NO_INPUT / MSV_E_CONFIG (a file of
 * the wrong size or format) naming the path. */
MSV_EXTERN msv_result msv_audit_keys_open(msv_audit_keys **out, const char *path,
                                          msv_error *err);
MSV_EXTERN void msv_audit_keys_close(msv_audit_keys *k);
/* Re-reads the buckets when another process forgot an address since the
 * last call (cheap when nothing changed: one pread of the header).
 * Thread-safe against msv_mask*(). */
MSV_EXTERN msv_result msv_audit_keys_refresh(msv_audit_keys *k, msv_error *err);
/* Destroys the key of the address's bucket: writes fresh random bytes
 * over it in place, fsyncs, and bumps the file's generation.  Every
 * pseudonym made before of an address in that bucket can no longer be
 * recomputed.  The address is compared case-insensitively. */
MSV_EXTERN msv_result msv_audit_keys_forget(msv_audit_keys *k, const char *addr,
                                            msv_error *err);

/* ---- masking ---- */

typedef struct msv_masker msv_masker;

/* keys may be NULL: addresses are then masked as "u-" + 12 '*' + "@domain"
 * (no pseudonym).  The masker keeps a pointer to keys. */
MSV_EXTERN msv_result msv_masker_new(msv_masker **out, msv_audit_keys *keys, msv_error *err);
MSV_EXTERN void msv_masker_free(msv_masker *m);
/* Adds a rule "NAME REGEX KEEP-PREFIX KEEP-SUFFIX" ([audit] mask): every
 * match of the POSIX extended REGEX keeps its first KEEP-PREFIX and last
 * KEEP-SUFFIX characters, the rest becomes '*'.  Compiled once; call
 * before the masker is shared.  MSV_E_CONFIG naming what is wrong. */
MSV_EXTERN msv_result msv_masker_add_rule(msv_masker *m, const char *spec, msv_error *err);
/* Appends the masked form of in[0..len) to out.  Linear in len.  The
 * built-in rules, in order: addresses, card numbers (13-19 digits,
 * Luhn-valid, spaces or dashes between groups; an 18-digit run that is a
 * valid resident ID is an ID), resident ID numbers (18
 * characters, ISO 7064 MOD 11-2 check), mobile numbers (1[3-9] and 9
 * digits, not inside a longer digit run); then the configured rules. */
MSV_EXTERN msv_result msv_mask(const msv_masker *m, const char *in, size_t len, msv_buf *out);
/* The pseudonym of one address ("u-" + 12 hex "@" domain) into out. */
MSV_EXTERN msv_result msv_mask_address(const msv_masker *m, const char *addr, msv_buf *out);

/* Streaming: masks a log of any size in bounded memory, a line at a time
 * (a line longer than 64 KiB is masked in pieces of at most 64 KiB, cut
 * between addresses and digit groups, never inside one). */
typedef struct msv_mask_stream msv_mask_stream;
MSV_EXTERN msv_result msv_mask_stream_new(msv_mask_stream **out, const msv_masker *m);
/* Appends to out the masked text of every whole line fed so far. */
MSV_EXTERN msv_result msv_mask_stream_feed(msv_mask_stream *s, const char *in, size_t len,
                                           msv_buf *out);
/* Masks and appends what is left. */
MSV_EXTERN msv_result msv_mask_stream_finish(msv_mask_stream *s, msv_buf *out);
MSV_EXTERN void msv_mask_stream_free(msv_mask_stream *s);

/* ---- events ---- */

typedef enum msv_audit_actor {
	MSV_AUDIT_SYSTEM = 0, /* missived itself */
	MSV_AUDIT_KEY,        /* an API key: id = its name */
	MSV_AUDIT_UID,        /* a local user: id = the uid */
	MSV_AUDIT_OPERATOR,   /* an operator command: id = the login name or uid */
} msv_audit_actor;

/* RAW: a string written as is, not masked: only for values the trail
 * makes itself (file names, hashes, reasons) that a rule could mangle. */
typedef enum msv_audit_kind {
	MSV_AUDIT_STR = 0,
	MSV_AUDIT_INT,
	MSV_AUDIT_BOOL,
	MSV_AUDIT_RAW,
} msv_audit_kind;

/* One member of masked_payload.  Strings are masked by the log. */
typedef struct msv_audit_field {
	const char *key;
	msv_audit_kind kind;
	const char *str;
	long long num; /* INT, or BOOL (0/1) */
} msv_audit_field;

#define MSV_AUDIT_S(k, v) ((msv_audit_field){.key = (k), .kind = MSV_AUDIT_STR, .str = (v)})
#define MSV_AUDIT_I(k, v) ((msv_audit_field){.key = (k), .kind = MSV_AUDIT_INT, .num = (v)})
#define MSV_AUDIT_B(k, v) ((msv_audit_field){.key = (k), .kind = MSV_AUDIT_BOOL, .num = !!(v)})
#define MSV_AUDIT_R(k, v) ((msv_audit_field){.key = (k), .kind = MSV_AUDIT_RAW, .str = (v)})

typedef struct msv_audit_event {
	const char *type;        /* "message.accepted", ... (docs/audit.md) */
	msv_audit_actor actor;
	const char *actor_id;    /* NULL for SYSTEM; masked */
	const char *actor_ip;    /* NULL: none; never masked */
	const char *qid;         /* NULL: none */
	const msv_audit_field *fields;
	size_t nfields;
} msv_audit_event;

/* ---- the chained log ---- */

typedef struct msv_audit_log msv_audit_log;

typedef struct msv_audit_log_options {
	const char *path;              /* the current file; rotations are PATH.YYYYMMDDTHHMMSSZ */
	const unsigned char *hmac_key; /* NULL: plain SHA-256 chain */
	size_t hmac_key_len;
	const msv_masker *masker;      /* required */
	uint64_t rotate_size;          /* bytes; 0: no size rotation */
	int rotate_daily;              /* rotate at the first append of a new UTC day */
	int64_t retention_ms;          /* rotated files older than this are deleted; 0: keep */
	int64_t fsync_ms;              /* fsync at most this often; 0: after every append */
	const char *node;              /* written in each event as "node"; NULL: none */
} msv_audit_log_options;

/* Opens (creating mode 0640) and checks the tail of the file, so the next
 * append continues the chain.  Appends nothing. */
MSV_EXTERN msv_result msv_audit_log_open(msv_audit_log **out, const msv_audit_log_options *o,
                                         msv_error *err);
/* Flushes (fsync) and closes. */
MSV_EXTERN void msv_audit_log_close(msv_audit_log *l);
/* Appends one event (thread-safe).  Rotates first when a size or day
 * limit is reached (the new file starts with an audit.rotated event that
 * carries the old file's name and last hash).  The line is written with
 * one write(2) under the lock; fsync follows the fsync_ms policy. */
MSV_EXTERN msv_result msv_audit_append(msv_audit_log *l, const msv_audit_event *ev,
                                       msv_error *err);
/* Rotates now (SIGHUP). */
MSV_EXTERN msv_result msv_audit_rotate(msv_audit_log *l, msv_error *err);
/* fsyncs when something was appended since the last sync. */
MSV_EXTERN msv_result msv_audit_sync(msv_audit_log *l, msv_error *err);
/* Deletes rotated files whose newest event is older than the retention,
 * each recorded by an audit.expired event (file, events, last hash).
 * *deleted: how many files (may be NULL). */
MSV_EXTERN msv_result msv_audit_expire(msv_audit_log *l, int64_t now_ms, unsigned *deleted,
                                       msv_error *err);

/* The files of a trail, oldest first: PATH's rotations, then PATH.
 * *files is a NULL-terminated array freed with msv_audit_files_free. */
MSV_EXTERN msv_result msv_audit_files(const char *path, char ***files, msv_error *err);
MSV_EXTERN void msv_audit_files_free(char **files);

/* ---- verification ---- */

typedef struct msv_audit_verdict {
	int intact;           /* 1: every line checked out */
	char file[4096];      /* where the first problem is */
	unsigned long line;   /* its line number in that file (1-based) */
	char why[256];        /* "hash mismatch (line edited)", "prev does not match line 41
	                       * (line deleted or reordered)", "incomplete last line
	                       * (truncated)", "sequence gap", ... */
	unsigned long events; /* lines checked */
} msv_audit_verdict;

/* Checks the chain through files[0..n) in order (each file's lines, and
 * across files).  MSV_OK with the verdict filled (intact or not), or an
 * error when a file cannot be read. */
MSV_EXTERN msv_result msv_audit_verify(const char *const *files, size_t n,
                                       const unsigned char *hmac_key, size_t hmac_key_len,
                                       msv_audit_verdict *v, msv_error *err);

/* ---- export cursors ----
 *
 * An exporter's position in the trail, persisted as PATH.cursor-SINK
 * (atomic rename): the sequence number of the last event it has handed
 * over for good, with the file's inode and the offset after that line
 * as a hint to find it quickly. */
typedef struct msv_audit_cursor {
	uint64_t seq;    /* 0: nothing exported yet */
	uint64_t inode;
	uint64_t offset;
} msv_audit_cursor;

MSV_EXTERN msv_result msv_audit_cursor_load(const char *path, const char *sink,
                                            msv_audit_cursor *c, msv_error *err);
MSV_EXTERN msv_result msv_audit_cursor_save(const char *path, const char *sink,
                                            const msv_audit_cursor *c, msv_error *err);
/* The last sequence number written to the trail (0: empty). */
MSV_EXTERN msv_result msv_audit_last_seq(const char *path, uint64_t *seq, msv_error *err);

/* A reader that follows the trail from a cursor across rotations:
 * returns each whole line (without '\n') after the cursor, in order. */
typedef struct msv_audit_reader msv_audit_reader;
MSV_EXTERN msv_result msv_audit_reader_open(msv_audit_reader **out, const char *path,
                                            const msv_audit_cursor *from, msv_error *err);
/* MSV_OK with *line and *len set and *pos the cursor just after that line;
 * MSV_OK with *line = NULL when no whole line is there yet (call again
 * later); an error when the trail cannot be read.  The line stays valid
 * until the next call. */
MSV_EXTERN msv_result msv_audit_reader_next(msv_audit_reader *r, const char **line,
                                            size_t *len, msv_audit_cursor *pos,
                                            msv_error *err);
MSV_EXTERN void msv_audit_reader_close(msv_audit_reader *r);

#ifdef __cplusplus
}
#endif

#endif
