/* API keys of missived's HTTP API: making secrets, hashing them, finding
 * the key a presented secret belongs to, and the sender domains a key may
 * use.  Keys are stored in the queue (msv_queue_key_*, missive/queue.h);
 * only the SHA-256 of a secret is kept.  Nothing here prints. */
#ifndef MSV_APP_API_KEYS_H
#define MSV_APP_API_KEYS_H

#include <stddef.h>

#include "missive/core.h"
#include "missive/queue.h"

/* A secret is "msk_" + 64 lowercase hex digits: 256 random bits, and a
 * prefix that secret scanners and people recognize. */
#define APP_KEY_PREFIX "msk_"
#define APP_KEY_SECRET_LEN (4 + 64)
#define APP_KEY_HASH_LEN 32

/* 1 when name is 1..MSV_KEY_NAME_MAX of [A-Za-z0-9._-]. */
int app_key_name_valid(const char *name);

/* A new secret (256 bits from getrandom(2)) into secret (NUL-terminated)
 * and its hash.  MSV_OK, or MSV_E_SYSTEM.  Wipe the secret (msv_wipe)
 * once it is shown. */
msv_result app_key_new(char secret[APP_KEY_SECRET_LEN + 1], unsigned char hash[APP_KEY_HASH_LEN],
                       msv_error *err);

/* SHA-256 of the len octets at secret.  MSV_OK, or MSV_E_NOMEM/MSV_E_SYSTEM. */
msv_result app_key_hash(const char *secret, size_t len, unsigned char hash[APP_KEY_HASH_LEN],
                        msv_error *err);

/* The index of the key in keys[0..n) whose hash is hash, or -1.  Every
 * key is compared, each with CRYPTO_memcmp, whatever matched before: the
 * time taken says nothing about which key (or which prefix of a hash)
 * came close. */
long app_key_find(const msv_queue_key *keys, size_t n, const unsigned char hash[APP_KEY_HASH_LEN]);

/* app_key_hash() of a presented secret, then app_key_find(): *index is
 * the key's index or -1 (no such key; also for a secret of the wrong
 * form, which is hashed and compared all the same). */
msv_result app_key_lookup(const msv_queue_key *keys, size_t n, const char *secret, size_t len,
                          long *index, msv_error *err);

/* Normalizes a sender-domain list: "Example.org, b.net" becomes
 * "example.org,b.net" in *out (msv_free it); "" (or only blanks) stays ""
 * (any domain).  Each entry must be a host name (ASCII letters, digits,
 * hyphens, dot-separated labels of 1..63, 253 octets in all; IDNs as
 * A-labels).  MSV_OK, or MSV_E_INVALID naming the bad entry, or MSV_E_NOMEM. */
msv_result app_key_domains_normalize(const char *in, char **out, msv_error *err);

/* 1 when a key limited to domains (a normalized list; "" any) may send
 * as domain (exact match, ASCII case-insensitive); an empty or NULL
 * domain (the null sender) passes only an unlimited key. */
int app_key_domain_allowed(const char *domains, const char *domain);

#endif
