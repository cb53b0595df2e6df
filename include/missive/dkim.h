/*
 * missive/dkim.h - DKIM signing and verification.
 *
 * RFCs: 6376 (DKIM), 8463 (ed25519-sha256), 8301 (RSA key sizes,
 * no rsa-sha1), 5322 (header fields).
 *
 * SYNOPSIS
 *   msv_dkim_signer *s;
 *   msv_dkim_options o = MSV_DKIM_OPTIONS_INIT;
 *   o.domain = "example.com";
 *   o.selector = "mail2025";
 *   if (msv_dkim_signer_load(&s, &o, "/etc/missive/dkim.pem", &err))
 *       ... err.message says why (unreadable file, short key, ...);
 *   msv_buf sig;
 *   msv_buf_init(&sig, MSV_DKIM_HEADER_MAX);
 *   if (msv_dkim_sign(s, msg, len, 0, &sig, &err) == MSV_OK)
 *       ... send sig.data (the DKIM-Signature field, CRLF-terminated)
 *           followed by the message ...
 *   msv_dkim_signer_free(s);
 *
 * DESCRIPTION
 *   A signer holds one private key, parsed once, with its d=, s= and the
 *   signing choices.  Signing a message costs one streaming pass over
 *   its bytes (the body hash) and one private-key operation, so keep the
 *   signer and reuse it for every message.
 *
 *   Dual signing (RFC 8463 section 6: an rsa-sha256 and an
 *   ed25519-sha256 signature on one message) is msv_dkim_sign_multi()
 *   with two signers: the body is canonicalized and hashed once per
 *   canonicalization, and each signer adds its own field.
 *
 *   Line ends: RFC 6376 5.3 wants the message in its SMTP form before it
 *   is signed.  Every bare LF and every bare CR in the input is treated
 *   as CRLF, exactly as the SMTP layer (src/smtp) sends it, so what is
 *   signed is what arrives.  msv_dkim_sign_message() writes the message
 *   out in that form.
 *
 *   Defaults, each overridable in msv_dkim_options: relaxed/relaxed;
 *   the header fields of MSV_DKIM_DEFAULT_HEADERS that the message has,
 *   every instance of each; From listed once more than it occurs, so no
 *   From field can be added after signing; t= always; no x=, i= or l=.
 *
 * THREADS
 *   A signer keeps OpenSSL contexts that it reuses for every message:
 *   use it from one thread at a time (one signer per worker thread).
 *   Keys (msv_dkim_key) are read-only after creation and may be shared.
 *
 * ERROR CONTRACT
 *   Functions return MSV_OK or an msv_result and fill the msv_error they
 *   are given on failure (left untouched on success).  Key problems
 *   (unreadable, wrong type, RSA under 1024 bits) are MSV_E_CONFIG with
 *   class MSV_CLASS_CONFIG; a message that cannot be signed (no From
 *   field, a header line that is not a field) is MSV_E_BAD_MESSAGE.  A signature that does not verify is not an
 *   error: msv_dkim_verify() returns MSV_OK and reports it per
 *   signature in msv_dkim_result.
 *
 * SECURITY
 *   Private key bytes read from files are wiped (msv_wipe) as soon as
 *   OpenSSL has parsed them; OpenSSL clears its copy when the signer is
 *   freed.  Nothing here logs or prints.
 */
#ifndef MISSIVE_DKIM_H
#define MISSIVE_DKIM_H

#include "missive/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum msv_dkim_algo {
	MSV_DKIM_ALGO_AUTO = 0,  /* from the key: RSA -> rsa-sha256, Ed25519 -> ed25519-sha256 */
	MSV_DKIM_RSA_SHA256,     /* "rsa-sha256" (RFC 6376) */
	MSV_DKIM_ED25519_SHA256, /* "ed25519-sha256" (RFC 8463) */
} msv_dkim_algo;

typedef enum msv_dkim_canon {
	MSV_DKIM_RELAXED = 0, /* the default for header and body */
	MSV_DKIM_SIMPLE,
} msv_dkim_canon;

/* "rsa-sha256", "ed25519-sha256" ("" for AUTO); "relaxed", "simple". */
MSV_EXTERN const char *msv_dkim_algo_name(msv_dkim_algo a);
MSV_EXTERN const char *msv_dkim_canon_name(msv_dkim_canon c);
/* Parses "rsa", "rsa-sha256", "ed25519", "ed25519-sha256" (any case).
 * Returns 0, or -1 for anything else. */
MSV_EXTERN int msv_dkim_algo_parse(const char *s, msv_dkim_algo *out);
/* Parses "HEADER/BODY" such as "relaxed/simple".  Returns 0 or -1. */
MSV_EXTERN int msv_dkim_canon_parse(const char *s, msv_dkim_canon *header, msv_dkim_canon *body);

/* The header fields signed by default, when present, in this order. */
#define MSV_DKIM_DEFAULT_HEADERS                                                       \
	"From:To:Cc:Subject:Date:Message-ID:Reply-To:In-Reply-To:References:MIME-Version:" \
	"Content-Type:Content-Transfer-Encoding:List-Unsubscribe:List-Unsubscribe-Post"

/* Limits.  A DKIM-Signature field we write stays far below this; the
 * cap bounds what a caller's buffer must allow (8 KiB RSA keys give
 * 1366-character b= values). */
#define MSV_DKIM_HEADER_MAX 16384
/* The header block of a message being signed or verified is held in
 * memory (it is hashed after the body hash is known); bodies stream. */
#define MSV_DKIM_HEADER_BLOCK_MAX ((size_t)1 << 20)
/* Verification checks at most this many DKIM-Signature fields (RFC
 * 6376 6.1 lets a verifier limit the work an attacker can ask for). */
#define MSV_DKIM_VERIFY_MAX_SIGNATURES 16

typedef struct msv_dkim_options {
	unsigned version;           /* MSV_DKIM_OPTIONS_VERSION */
	const char *domain;         /* d=, required */
	const char *selector;       /* s=, required */
	msv_dkim_algo algo;         /* AUTO: from the key; else must match the key */
	msv_dkim_canon header_canon;
	msv_dkim_canon body_canon;
	/* Names of the header fields to sign, separated by ':' or ','; each
	 * is signed as often as it occurs.  NULL: MSV_DKIM_DEFAULT_HEADERS.
	 * From is always signed, whether listed or not. */
	const char *headers;
	int no_oversign;            /* 1: do not list From once more than it occurs */
	const char *identity;       /* i= (an address or @domain within d=); NULL: none */
	int64_t expire_seconds;     /* x= t= + this; 0: no x= */
	int body_length;            /* 1: add l= (the signed body length); see docs/dkim.md */
} msv_dkim_options;

#define MSV_DKIM_OPTIONS_VERSION 1
#define MSV_DKIM_OPTIONS_INIT                                                    \
	{                                                                            \
		.version = MSV_DKIM_OPTIONS_VERSION, .algo = MSV_DKIM_ALGO_AUTO,         \
		.header_canon = MSV_DKIM_RELAXED, .body_canon = MSV_DKIM_RELAXED,        \
	}

/* Set in msv_dkim_signer_warnings(): the key works but deserves a word
 * from the caller (the library cannot print it). */
#define MSV_DKIM_WARN_SHORT_KEY (1u << 0) /* RSA under 2048 bits (RFC 8301 3.2) */

typedef struct msv_dkim_signer msv_dkim_signer;

/*
 * Creates a signer from a PEM private key (PKCS#8 "PRIVATE KEY", or
 * "RSA PRIVATE KEY"), RSA or Ed25519.  RSA keys under 1024 bits are
 * refused (MSV_E_CONFIG); under 2048 bits they are accepted with
 * MSV_DKIM_WARN_SHORT_KEY.  The options are copied (strings too).
 */
MSV_EXTERN MSV_WUR msv_result msv_dkim_signer_new(msv_dkim_signer **out, const msv_dkim_options *opts,
                                                  const char *key_pem, size_t key_len, msv_error *err);
/* The same from a key file (read, parsed, its bytes wiped). */
MSV_EXTERN MSV_WUR msv_result msv_dkim_signer_load(msv_dkim_signer **out, const msv_dkim_options *opts,
                                                   const char *key_path, msv_error *err);
MSV_EXTERN void msv_dkim_signer_free(msv_dkim_signer *s);

MSV_EXTERN msv_dkim_algo msv_dkim_signer_algo(const msv_dkim_signer *s);
/* RSA modulus size in bits; 256 for Ed25519. */
MSV_EXTERN unsigned msv_dkim_signer_key_bits(const msv_dkim_signer *s);
/* MSV_DKIM_WARN_* flags. */
MSV_EXTERN unsigned msv_dkim_signer_warnings(const msv_dkim_signer *s);
/* Appends the key record for the signer's public key:
 * "v=DKIM1; k=rsa; p=..." (no quotes, no splitting). */
MSV_EXTERN MSV_WUR msv_result msv_dkim_signer_record(const msv_dkim_signer *s, msv_buf *out);

/*
 * Signs a complete message (header, empty line, body; any line ends)
 * and appends the DKIM-Signature field, folded at 78 columns and ending
 * in CRLF, to out.  Prepend it to the message.  now is the t= value in
 * seconds since the epoch; 0 takes the current time.
 */
MSV_EXTERN MSV_WUR msv_result msv_dkim_sign(msv_dkim_signer *s, const char *msg, size_t len,
                                            int64_t now, msv_buf *out, msv_error *err);
/* Signs with each signer in turn (dual signing), appending one field
 * per signer, in order.  The body is hashed once per body
 * canonicalization, whatever the number of signers. */
MSV_EXTERN MSV_WUR msv_result msv_dkim_sign_multi(msv_dkim_signer *const *signers, size_t n,
                                                  const char *msg, size_t len, int64_t now,
                                                  msv_buf *out, msv_error *err);
/* Appends the signed message: the field(s), then the message with every
 * line end as CRLF and a final CRLF if it had none (the form that was
 * signed, and the form SMTP delivers). */
MSV_EXTERN MSV_WUR msv_result msv_dkim_sign_message(msv_dkim_signer *const *signers, size_t n,
                                                    const char *msg, size_t len, int64_t now,
                                                    msv_buf *out, msv_error *err);

/*
 * Streaming: feed the message in chunks of any size, then finish.
 *   msv_dkim_stream *st;
 *   msv_dkim_stream_new(&st, signers, n, &err);
 *   for each chunk: msv_dkim_stream_update(st, p, len);
 *   msv_dkim_stream_final(st, now, &out);
 *   msv_dkim_stream_reset(st);   -- next message, no new allocation
 * The header block (up to MSV_DKIM_HEADER_BLOCK_MAX) is kept; the body
 * is hashed as it passes and never stored.  The signers must outlive
 * the stream and are used by it (one thread at a time).  After an error
 * the stream stays failed until reset; msv_dkim_stream_error() says why.
 */
typedef struct msv_dkim_stream msv_dkim_stream;

MSV_EXTERN MSV_WUR msv_result msv_dkim_stream_new(msv_dkim_stream **out, msv_dkim_signer *const *signers,
                                                  size_t n, msv_error *err);
MSV_EXTERN MSV_WUR msv_result msv_dkim_stream_update(msv_dkim_stream *st, const void *data, size_t len);
MSV_EXTERN MSV_WUR msv_result msv_dkim_stream_final(msv_dkim_stream *st, int64_t now, msv_buf *out);
MSV_EXTERN void msv_dkim_stream_reset(msv_dkim_stream *st);
MSV_EXTERN const msv_error *msv_dkim_stream_error(const msv_dkim_stream *st);
MSV_EXTERN void msv_dkim_stream_free(msv_dkim_stream *st);

/* ---- keys and DNS records ---- */

/*
 * Generates a private key: Ed25519, or RSA with bits in [1024, 16384]
 * (2048 when 0).  Appends the PKCS#8 PEM to pem (wipe it with
 * msv_buf_free_secret) and the key record "v=DKIM1; k=...; p=..." to
 * record.
 */
MSV_EXTERN MSV_WUR msv_result msv_dkim_keygen(msv_dkim_algo algo, unsigned bits, msv_buf *pem,
                                              msv_buf *record, msv_error *err);
/* Appends the zone-file line
 *   SELECTOR._domainkey.DOMAIN. IN TXT "v=DKIM1; ..." "..."
 * with the record split into character-strings of at most 255 octets
 * (RFC 1035 3.3.14; DNS joins them back). */
MSV_EXTERN MSV_WUR msv_result msv_dkim_dns_txt(msv_buf *out, const char *selector, const char *domain,
                                               const char *record);

/* ---- verification (for tests and operators; no DNS) ---- */

typedef struct msv_dkim_key msv_dkim_key;

/*
 * A public key from a key record: either the record text
 * ("v=DKIM1; k=ed25519; p=..."), or a zone-file line as
 * msv_dkim_dns_txt() writes it, whose quoted strings are joined and
 * whose owner name (SELECTOR._domainkey.DOMAIN) then restricts the key
 * to signatures with that s= and d=.  A record with an empty p=
 * (revoked) loads; signatures checked with it fail.
 */
MSV_EXTERN MSV_WUR msv_result msv_dkim_key_from_record(msv_dkim_key **out, const char *text, size_t len,
                                                       msv_error *err);
/* A public key from PEM ("PUBLIC KEY"; a private key PEM also works). */
MSV_EXTERN MSV_WUR msv_result msv_dkim_key_from_pem(msv_dkim_key **out, const char *pem, size_t len,
                                                    msv_error *err);
MSV_EXTERN void msv_dkim_key_free(msv_dkim_key *k);

typedef enum msv_dkim_status {
	MSV_DKIM_PASS = 0,
	MSV_DKIM_FAIL_BODY_HASH, /* the body is not the one signed */
	MSV_DKIM_FAIL_SIGNATURE, /* the signed header fields changed, or another key signed */
	MSV_DKIM_FAIL_EXPIRED,   /* x= is in the past */
	MSV_DKIM_PERMERROR,      /* malformed or unsupported signature */
	MSV_DKIM_NO_KEY,         /* no key given for this s=/d= and algorithm */
	MSV_DKIM_KEY_ERROR,      /* key revoked, unusable, too short or of the wrong type */
} msv_dkim_status;

/* "pass", "body_hash_mismatch", "signature_mismatch", "expired",
 * "permerror", "no_key", "key_error". */
MSV_EXTERN const char *msv_dkim_status_name(msv_dkim_status s);

typedef struct msv_dkim_result {
	msv_dkim_status status;
	char domain[256];   /* d=, sanitized; "" when absent */
	char selector[256]; /* s= */
	char algo[32];      /* a= */
	char canon[40];     /* c= as given, "simple/simple" when absent */
	int64_t timestamp;  /* t=, -1 when absent */
	int64_t expires;    /* x=, -1 when absent */
	char reason[MSV_TEXT_MAX]; /* one sentence; "" on pass */
} msv_dkim_result;

typedef struct msv_dkim_verify_options {
	unsigned version;                /* MSV_DKIM_VERIFY_OPTIONS_VERSION */
	const msv_dkim_key *const *keys; /* tried for every signature they match */
	size_t nkeys;
	int64_t now;                     /* for x=; 0: the current time */
} msv_dkim_verify_options;

#define MSV_DKIM_VERIFY_OPTIONS_VERSION 1
#define MSV_DKIM_VERIFY_OPTIONS_INIT {.version = MSV_DKIM_VERIFY_OPTIONS_VERSION}

/*
 * Checks every DKIM-Signature field of msg, top to bottom (at most
 * MSV_DKIM_VERIFY_MAX_SIGNATURES).  *out receives an array of *count
 * results (free it with msv_free; NULL when *count is 0, i.e. the
 * message is unsigned).  A key matches a signature when its owner name
 * (if it has one) is s=._domainkey.d= and its type fits a=.
 * Returns MSV_OK whatever the signatures' fate; errors are for bad
 * arguments, memory and a header block over its limit.
 */
MSV_EXTERN MSV_WUR msv_result msv_dkim_verify(const msv_dkim_verify_options *opts, const char *msg,
                                              size_t len, msv_dkim_result **out, size_t *count,
                                              msv_error *err);

#ifdef __cplusplus
}
#endif
#endif
