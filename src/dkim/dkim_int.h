/* Internals of src/dkim shared by its files and its unit tests.
 * Nothing here is public API (see include/missive/dkim.h).  Functions are
 * msv__dkim_*: the library's one internal prefix, so libmissive.a cannot
 * clash with a program's names (tests/symbols/check_symbols.sh). */
#ifndef MSV_DKIM_INT_H
#define MSV_DKIM_INT_H

#include <stdint.h>

#include <openssl/evp.h>

#include "missive/dkim.h"

/* Where canonical bytes go.  Returns 0, or -1 to fail the pass. */
typedef int (*dkim_sink)(void *arg, const char *p, size_t n);

/* ---- line ends (RFC 6376 5.3) ----
 * The normalizer turns every bare LF and bare CR into CRLF, the form the
 * SMTP layer puts on the wire.  lf_only keeps a bare CR as an ordinary
 * byte (what go-msgauth and OpenDKIM's FixCRLF do); only the unit tests
 * that replay go-msgauth's cases use it. */
typedef struct dkim_norm {
	int pending_cr;
	int lf_only;
} dkim_norm;

void msv__dkim_norm_init(dkim_norm *m, int lf_only);
int msv__dkim_norm_feed(dkim_norm *m, const char *p, size_t n, dkim_sink fn, void *arg);
int msv__dkim_norm_end(dkim_norm *m, dkim_sink fn, void *arg);

/* ---- body canonicalization (RFC 6376 3.4.3, 3.4.4) ----
 * Streaming: any chunking gives the same output.  It does its own line
 * end handling (same rules as dkim_norm), so it takes raw bytes.
 * Output is staged and handed to the sink in large pieces (one sink
 * call per word would dominate the cost of signing small messages). */
#define DKIM_STAGE 4096

typedef struct dkim_body {
	msv_dkim_canon canon;
	int lf_only;
	int pending_cr;        /* a CR was the last byte: the next decides */
	int line_start;        /* nothing of the current line emitted yet */
	int pending_wsp;       /* relaxed: WSP run seen inside the line */
	int failed;            /* the sink failed */
	uint64_t empty_lines;  /* empty lines not yet emitted (may be trailing) */
	uint64_t total;        /* canonical octets produced (before the limit), once flushed */
	uint64_t hashed;       /* octets passed to the sink */
	uint64_t limit;        /* l=: octets passed to the sink at most */
	dkim_sink fn;
	void *arg;
	size_t staged;
	char stage[DKIM_STAGE];
} dkim_body;

void msv__dkim_body_init(dkim_body *b, msv_dkim_canon c, int lf_only, uint64_t limit, dkim_sink fn,
                    void *arg);
void msv__dkim_body_feed(dkim_body *b, const char *p, size_t n);
/* Flushes; returns 0 or -1 when the sink failed. */
int msv__dkim_body_end(dkim_body *b);

/* ---- header canonicalization (RFC 6376 3.4.1, 3.4.2) ----
 * field is one complete header field: name, colon, value with its
 * folding, and (usually) the final CRLF.  Appends the canonical form,
 * always ending in CRLF unless no_crlf (the DKIM-Signature field
 * itself, RFC 6376 3.7). */
msv_result msv__dkim_header_canon(msv_buf *out, msv_dkim_canon c, const char *field, size_t len, int no_crlf);

/* ---- header block ---- */
typedef struct dkim_field {
	const char *p;   /* start of the name */
	size_t len;      /* through the final CRLF, when there is one */
	size_t name_len; /* name without trailing WSP */
} dkim_field;

/* Splits a CRLF-normalized header block into fields.  Returns the number
 * of fields, or -1 when a line is neither a field nor a continuation
 * (*bad_line gets its 1-based number) or there are more than max. */
long msv__dkim_split_fields(const char *p, size_t len, dkim_field *out, size_t max, size_t *bad_line);

/* Case-insensitive ASCII compare of a span with a NUL-terminated name. */
int msv__dkim_name_eq(const char *p, size_t n, const char *name);

/* ---- tag lists (RFC 6376 3.2) ---- */
#define DKIM_TAGS_MAX 32

typedef struct dkim_tag {
	const char *name;
	size_t name_len;
	const char *value;  /* surrounding FWS trimmed; interior FWS kept */
	size_t value_len;
	size_t value_start; /* offset of the byte after '=' in the text */
	size_t value_end;   /* offset of the ';' or the end of the text */
} dkim_tag;

/* Returns the number of tags, or -1 on a syntax error or a duplicate
 * tag (*why gets a static phrase). */
long msv__dkim_parse_tags(const char *p, size_t len, dkim_tag *tags, size_t max, const char **why);
const dkim_tag *msv__dkim_find_tag(const dkim_tag *tags, size_t n, const char *name);

/* Base64 with FWS removed (b=, bh=, p=). */
msv_result msv__dkim_b64_decode_fws(msv_buf *out, const char *p, size_t n);

/* ---- signing internals used by the vector tests ----
 * Hashes the selected fields and the signature field prefix (which
 * ends in "b=") and signs the SHA-256 digest with the signer's key,
 * appending the raw signature to sig. */
msv_result msv__dkim_sign_fields(msv_dkim_signer *s, msv_dkim_canon hc, const dkim_field *const *fields,
                             size_t nfields, const char *sig_prefix, size_t prefix_len, msv_buf *sig,
                             msv_error *err);
/* Canonicalizes and hashes a body; out gets the base64 of SHA-256. */
msv_result msv__dkim_body_hash(msv_dkim_canon c, const char *body, size_t len, uint64_t limit,
                           msv_buf *out_b64);

/* Shared key helpers (key.c). */
EVP_PKEY *msv__dkim_pkey_from_pem(const char *pem, size_t len, int want_private, msv_error *err);
msv_result msv__dkim_record_for_pkey(EVP_PKEY *pk, msv_buf *out);
int msv__dkim_pkey_kind(EVP_PKEY *pk); /* MSV_DKIM_RSA_SHA256, MSV_DKIM_ED25519_SHA256 or 0 */

/* Verification keys (key.c). */
EVP_PKEY *msv__dkim_key_pkey(const msv_dkim_key *k);
int msv__dkim_key_matches(const msv_dkim_key *k, const char *selector, const char *domain, int kind);
/* NULL when the key may check this signature, else why not. */
const char *msv__dkim_key_unusable(const msv_dkim_key *k, const char *sdid, const char *auid_domain);

/* memmem(3) is a GNU extension; the build is POSIX. */
const char *msv__dkim_memmem(const char *h, size_t hn, const char *n, size_t nn);

/* Validates a domain or selector: LDH labels separated by dots. */
int msv__dkim_valid_dns_name(const char *s);

#endif
