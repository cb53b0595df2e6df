/*
 * audit_int.h - internals of the audit layer shared between its files,
 * tests, fuzzers and benchmarks; not part of the API.
 */
#ifndef MSV_AUDIT_INT_H
#define MSV_AUDIT_INT_H

#include <regex.h>
#include <stddef.h>
#include <stdint.h>

#include "missive/audit.h"

/* ---- pseudonym keys (keys.c) ----
 * The key file: "MSVAKEY1", the generation (u64, little-endian), the
 * 32-byte index key, then 65536 bucket keys of 32 bytes each. */
#define MSV__AKEY_MAGIC "MSVAKEY1"
#define MSV__AKEY_LEN 32
#define MSV__AKEY_BUCKETS 65536u
#define MSV__AKEY_GEN_OFF 8
#define MSV__AKEY_INDEX_OFF 16
#define MSV__AKEY_HDR 48
#define MSV__AKEY_FILE_SIZE ((size_t)MSV__AKEY_HDR + (size_t)MSV__AKEY_BUCKETS * MSV__AKEY_LEN)

/* Keys held in memory only, derived from seed (tests, fuzzers, benchmarks:
 * reproducible pseudonyms without a file).  forget works on the memory. */
msv_result msv__audit_keys_mem(msv_audit_keys **out, const unsigned char seed[MSV__AKEY_LEN]);

/* HMAC state for one thread: made once per msv_mask call or stream and
 * reused for every address, so masking does not allocate per address. */
typedef struct msv__akey_ctx msv__akey_ctx;
msv__akey_ctx *msv__akey_ctx_new(const msv_audit_keys *k);
void msv__akey_ctx_free(msv__akey_ctx *c);
/* The bucket of an address (compared case-insensitively): 0..65535, or -1
 * when HMAC fails. */
long msv__audit_keys_bucket(const msv_audit_keys *k, msv__akey_ctx *c, const char *addr,
                            size_t n);
/* The 12 lowercase hex digits of the address's pseudonym into hex (not
 * NUL-terminated): 0, or -1 when HMAC fails. */
int msv__audit_keys_pseudonym(const msv_audit_keys *k, msv__akey_ctx *c, const char *addr,
                              size_t n, char hex[12]);
/* The file's generation as last read (tests). */
uint64_t msv__audit_keys_generation(const msv_audit_keys *k);

/* ---- masking (mask.c) ---- */
/* Masking works on pieces: a line, or a 64 KiB piece of a longer line
 * (cut after its last space, or at 64 KiB when there is none). */
#define MSV__MASK_PIECE_MAX 65536u
/* The most configured rules a masker takes. */
#define MSV__MASK_RULES_MAX 32
/* Keep-prefix and keep-suffix of a configured rule. */
#define MASK_KEEP_MAX 1000

typedef struct mask_rule {
	char name[64];
	regex_t re;
	unsigned keep_pre, keep_suf;
} mask_rule;

/* mask_rule.c: built there, with no HMAC, so that the config loader can
 * check rules without pulling the masker (and OpenSSL) into the light
 * programs. */
struct msv_masker {
	msv_audit_keys *keys;
	size_t nrules;
	mask_rule rules[MSV__MASK_RULES_MAX];
};

#endif
