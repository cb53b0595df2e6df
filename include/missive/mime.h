/*
 * missive/mime.h - building and parsing Internet messages.
 *
 * RFCs: 5322 (message format), 2045/2046 (MIME bodies and multiparts),
 * 2047 (encoded words in headers), 2231 (parameter values with charset
 * and continuations), 2183 (Content-Disposition), 2392 (Content-ID),
 * 2387 (multipart/related), 5890/5891 (IDNA: A-labels via libidn2),
 * 6531/6532 (SMTPUTF8: raw UTF-8 headers), 6152 (8BITMIME),
 * 2369/8058 (List-Unsubscribe, one-click).
 *
 * BUILDING
 *   msv_mime_new() gives an empty message.  Set its headers and bodies
 *   with the msv_mime_set_* / msv_mime_add_* / msv_mime_attach_* calls:
 *   each one checks its input at once (CR or LF in a value, invalid
 *   UTF-8, a malformed address or field name, an unreadable file) so the
 *   error names the field it came from.  msv_mime_prepare() then fixes
 *   what depends on the transport (8BITMIME, SMTPUTF8): it picks every
 *   part's transfer encoding, renders the headers, draws the boundaries
 *   and the Message-ID, and computes the exact size.  The message is then
 *   produced in pieces by msv_mime_read() (an msv_read_fn, so
 *   msv_client_send_stream() can pull it), or written whole to a file
 *   descriptor or an msv_buf.  Attachments given as files are read while
 *   the message is produced, a piece at a time: a message is never held
 *   in memory unless written to an msv_buf.
 *
 * PARSING
 *   msv_mime_parse() splits a complete message held in memory into its
 *   header fields and its multipart tree.  Like picohttpparser it takes a
 *   buffer and a length and returns spans into that buffer; it never
 *   reads, never copies, and stores into arrays the caller provides.
 *   Decoding (RFC 2047 words, RFC 2231 parameters, base64 and
 *   quoted-printable bodies) is done on request into an msv_buf.
 *
 * ERROR CONTRACT
 *   Builder calls return MSV_OK or an msv_result and, on failure, leave
 *   msv_mime_error(msg) describing it: one sentence naming the field
 *   ("Subject: invalid UTF-8 at octet 7").  The message is unchanged by
 *   a failed call, and stays usable.  Codes: MSV_E_INVALID (bad data or
 *   call out of order), MSV_E_BAD_ADDRESS, MSV_E_NO_SMTPUTF8 (the address
 *   needs SMTPUTF8 and the transport lacks it), MSV_E_NO_INPUT (an
 *   attached file could not be opened or read, or changed size),
 *   MSV_E_SYSTEM (no random bytes, the output not written),
 *   MSV_E_TOO_LARGE, MSV_E_NOMEM.  Parser
 *   and decoder functions take an msv_error * they fill on failure and
 *   leave untouched on success.
 *
 * THREADS
 *   No global state.  One thread per msv_mime_msg at a time.
 */
#ifndef MISSIVE_MIME_H
#define MISSIVE_MIME_H

#include "missive/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- building ---- */

typedef struct msv_mime_msg msv_mime_msg;

typedef struct msv_mime_options {
	unsigned version;             /* MSV_MIME_OPTIONS_VERSION */
	/* Domain of generated Message-IDs; NULL: the domain of From. */
	const char *message_id_domain;
	/* Largest text body, HTML body or in-memory attachment; 0: 64 MiB.
	 * File attachments have no limit: they are streamed. */
	size_t body_max;
} msv_mime_options;

#define MSV_MIME_OPTIONS_VERSION 1
#define MSV_MIME_OPTIONS_INIT {.version = MSV_MIME_OPTIONS_VERSION}

/* opts may be NULL for the defaults; strings are copied. */
MSV_EXTERN MSV_WUR msv_result msv_mime_new(msv_mime_msg **out, const msv_mime_options *opts);
/* Frees the message, closes any file it has open. */
MSV_EXTERN void msv_mime_free(msv_mime_msg *m);
MSV_EXTERN const msv_error *msv_mime_error(const msv_mime_msg *m);

/* Address fields.  FROM and SENDER take one address, the others any
 * number.  BCC recipients are never written into the message: they are
 * kept for the caller's envelope (msv_mime_recipients()). */
typedef enum msv_mime_field {
	MSV_MIME_FROM = 0,
	MSV_MIME_SENDER,
	MSV_MIME_REPLY_TO,
	MSV_MIME_TO,
	MSV_MIME_CC,
	MSV_MIME_BCC,
} msv_mime_field;

/*
 * Adds an address.  name is the display name (UTF-8; NULL or "" for none):
 * written as atoms, a quoted string or RFC 2047 encoded words, whichever
 * is needed.  addr is local@domain: the local part a dot-atom (UTF-8 is
 * allowed but needs SMTPUTF8 at msv_mime_prepare() time), the domain a
 * host name (U-labels are converted to A-labels unless the transport has
 * SMTPUTF8) or an address literal in brackets.
 */
MSV_EXTERN MSV_WUR msv_result msv_mime_add_address(msv_mime_msg *m, msv_mime_field field,
                                                   const char *name, const char *addr);
/* Subject (UTF-8, unstructured: RFC 2047 words where needed). */
MSV_EXTERN MSV_WUR msv_result msv_mime_set_subject(msv_mime_msg *m, const char *subject);
/* Date: an RFC 5322 date-time ("Thu, 01 Jan 2026 00:00:00 +0000"),
 * checked and written as given.  Without it msv_mime_prepare() writes
 * the current time in UTC. */
MSV_EXTERN MSV_WUR msv_result msv_mime_set_date(msv_mime_msg *m, const char *date);
/* The same from a time_t (written in UTC). */
MSV_EXTERN MSV_WUR msv_result msv_mime_set_date_time(msv_mime_msg *m, int64_t unix_time);
/* Message-ID: "left@right", with or without the angle brackets.
 * Without it msv_mime_prepare() makes a unique one: 128 random bits
 * (OpenSSL RAND_bytes) "@" the configured domain or From's domain. */
MSV_EXTERN MSV_WUR msv_result msv_mime_set_message_id(msv_mime_msg *m, const char *id);
/* The Message-ID as it is (or will be) written, with brackets; NULL
 * before msv_mime_prepare() when none was set. */
MSV_EXTERN const char *msv_mime_message_id(const msv_mime_msg *m);
/* In-Reply-To and References: one or more "<id>" separated by spaces. */
MSV_EXTERN MSV_WUR msv_result msv_mime_set_in_reply_to(msv_mime_msg *m, const char *ids);
MSV_EXTERN MSV_WUR msv_result msv_mime_set_references(msv_mime_msg *m, const char *ids);
/* List-Unsubscribe (RFC 2369) with n URIs (mailto:, https:), written in
 * angle brackets.  one_click adds "List-Unsubscribe-Post:
 * List-Unsubscribe=One-Click" (RFC 8058), which needs an https URI. */
MSV_EXTERN MSV_WUR msv_result msv_mime_set_list_unsubscribe(msv_mime_msg *m,
                                                            const char *const *uris, size_t n,
                                                            int one_click);
/* Any other header field.  The name must be printable ASCII without ':'
 * (RFC 5322 2.2) and not one the builder writes itself (From, To, Date,
 * MIME-Version, Content-*, ...: use the calls above).  The value is
 * UTF-8 unstructured text; a CR or LF in it is an error, never stripped. */
MSV_EXTERN MSV_WUR msv_result msv_mime_add_header(msv_mime_msg *m, const char *name,
                                                  const char *value);

/* Text bodies: UTF-8 (checked), any line ends (written as CRLF).  With
 * both, the message is multipart/alternative, text first.  The data is
 * copied. */
MSV_EXTERN MSV_WUR msv_result msv_mime_set_text(msv_mime_msg *m, const char *data, size_t len);
MSV_EXTERN MSV_WUR msv_result msv_mime_set_html(msv_mime_msg *m, const char *data, size_t len);

/* Options of an attachment or inline part. */
typedef struct msv_mime_part_options {
	unsigned version;         /* MSV_MIME_PART_OPTIONS_VERSION */
	const char *content_type; /* "type/subtype"; NULL: from the file name's extension */
	const char *filename;     /* UTF-8; NULL: the path's last component (files), none (memory) */
	/* Content-ID without brackets: the part is inline, inside
	 * multipart/related next to the HTML that says src="cid:...". */
	const char *content_id;
} msv_mime_part_options;

#define MSV_MIME_PART_OPTIONS_VERSION 1
#define MSV_MIME_PART_OPTIONS_INIT {.version = MSV_MIME_PART_OPTIONS_VERSION}

/* How msv_mime_attach_data() treats the caller's bytes (curl's
 * curl_mime_data / take-ownership choice, made explicit). */
typedef enum msv_mime_ownership {
	MSV_MIME_COPY = 0, /* copied now */
	MSV_MIME_BORROW,   /* used in place: keep it alive and unchanged until msv_mime_free() */
	MSV_MIME_TAKE,     /* the message owns it and frees it with msv_free() (also on failure) */
} msv_mime_ownership;

/* Attaches a file.  The file is opened now to check it can be read
 * (MSV_E_NO_INPUT if not), and read again while the message is produced;
 * if its size changed in between, producing fails (MSV_E_NO_INPUT too). */
MSV_EXTERN MSV_WUR msv_result msv_mime_attach_file(msv_mime_msg *m, const char *path,
                                                   const msv_mime_part_options *opts);
MSV_EXTERN MSV_WUR msv_result msv_mime_attach_data(msv_mime_msg *m, const void *data, size_t len,
                                                   msv_mime_ownership own,
                                                   const msv_mime_part_options *opts);

/* Content type for a file name, from its extension ("application/octet-stream"
 * when unknown).  Never NULL. */
MSV_EXTERN const char *msv_mime_type_for(const char *filename);

/* What the transport offers, for msv_mime_prepare(). */
#define MSV_MIME_8BITMIME 1u /* 8bit parts allowed (RFC 6152) */
#define MSV_MIME_SMTPUTF8 2u /* raw UTF-8 headers and addresses allowed (RFC 6531/6532) */

/*
 * Fixes the message for a transport (MSV_MIME_* flags): converts the
 * addresses, picks each part's transfer encoding (the cheapest correct
 * one: 7bit, 8bit only with MSV_MIME_8BITMIME, else quoted-printable or
 * base64, whichever is shorter), renders the headers and starts the
 * output at its first byte.  Needs From.  May be called again (with other
 * flags, after more fields are set); the Message-ID and Date, once
 * generated, are kept.
 */
MSV_EXTERN MSV_WUR msv_result msv_mime_prepare(msv_mime_msg *m, unsigned transport);

typedef struct msv_mime_info {
	uint64_t size; /* exact octets of the message, CRLF line ends */
	int body_8bit; /* an octet >= 0x80 somewhere: BODY=8BITMIME */
	int smtputf8;  /* raw UTF-8 in a header or address: SMTPUTF8 */
} msv_mime_info;

/* After msv_mime_prepare(). */
MSV_EXTERN MSV_WUR msv_result msv_mime_info_get(const msv_mime_msg *m, msv_mime_info *info);

/*
 * Produces the next bytes of the message into buf: returns how many, 0
 * at the end, -1 on error (msv_mime_error() says which, e.g. a file that
 * shrank).  Its type is msv_read_fn: pass the msv_mime_msg as payload to
 * msv_client_send_stream().  Every line ends in CRLF.
 */
MSV_EXTERN long msv_mime_read(void *msg, char *buf, size_t cap);
/* Starts the output again from its first byte (e.g. after a first pass
 * that computed a DKIM body hash). */
MSV_EXTERN MSV_WUR msv_result msv_mime_rewind(msv_mime_msg *m);
/* The whole output (from its current position) to a file descriptor, or
 * appended to a buffer. */
MSV_EXTERN MSV_WUR msv_result msv_mime_write_fd(msv_mime_msg *m, int fd);
MSV_EXTERN MSV_WUR msv_result msv_mime_write_buf(msv_mime_msg *m, msv_buf *out);

/*
 * The addresses of the envelope: From's address and every To, Cc and Bcc
 * address, as msv_mime_prepare() converted them for the transport (domain
 * A-labels unless SMTPUTF8).  Valid until the next prepare or free.
 */
MSV_EXTERN const char *msv_mime_sender(const msv_mime_msg *m);
MSV_EXTERN const char *const *msv_mime_recipients(const msv_mime_msg *m, size_t *n);

/* ---- header encoding on its own (used by the builder; fuzzed) ---- */

/*
 * Appends to out the folded value of an unstructured header (RFC 5322
 * 3.2.5/2.2.3): text where it can stay as is, RFC 2047 encoded words
 * (B or Q, whichever is shorter, <= 75 characters each, never splitting a
 * UTF-8 character) where it cannot, lines folded at 78 columns with the
 * first line starting after a name of name_len octets plus ": ".  With
 * MSV_MIME_SMTPUTF8 in transport UTF-8 stays raw (RFC 6532).  text must
 * be valid UTF-8 without CR or LF.
 */
MSV_EXTERN MSV_WUR msv_result msv_mime_encode_unstructured(msv_buf *out, const char *text,
                                                           size_t len, size_t name_len,
                                                           unsigned transport, msv_error *err);

/* ---- parsing ---- */

/* A piece of the caller's buffer (or of a static default string). */
typedef struct msv_mime_span {
	const char *p;
	size_t len;
} msv_mime_span;

typedef struct msv_mime_header {
	msv_mime_span name;  /* without trailing white space */
	msv_mime_span value; /* raw: after "name:" and leading white space, folding included */
} msv_mime_header;

typedef enum msv_mime_encoding {
	MSV_MIME_ENC_7BIT = 0,
	MSV_MIME_ENC_8BIT,
	MSV_MIME_ENC_BINARY,
	MSV_MIME_ENC_QP,
	MSV_MIME_ENC_BASE64,
	MSV_MIME_ENC_OTHER, /* an unknown token: the body is handed over as is */
} msv_mime_encoding;

/* Node flags: tolerated defects the caller may want to know about. */
#define MSV_MIME_NO_CLOSE 1u     /* multipart without its closing delimiter */
#define MSV_MIME_NO_BOUNDARY 2u  /* multipart without a boundary: treated as a leaf */
#define MSV_MIME_BAD_HEADER 4u   /* a header line without a colon ended the header block */
#define MSV_MIME_BAD_CTYPE 8u    /* unparsable Content-Type: text/plain assumed */

typedef struct msv_mime_node {
	size_t header;                /* first header in msv_mime_tree.headers */
	size_t nheaders;
	msv_mime_span type, subtype;  /* lowercase-insensitive; text/plain by default */
	msv_mime_span boundary;       /* multiparts: without quotes; else empty */
	msv_mime_encoding encoding;
	msv_mime_span body;           /* encoded body; for a multipart everything after the headers */
	long parent, first_child, next; /* node indexes, -1 for none */
	unsigned depth;               /* 0 for the message itself */
	unsigned flags;               /* MSV_MIME_NO_CLOSE ... */
} msv_mime_node;

/*
 * The caller provides the arrays and their sizes; the parse fills them.
 * Limits: max_depth (0: 32) nested multiparts or message/rfc822 parts;
 * max_headers header fields and max_nodes nodes in all.  Past a limit the
 * parse fails with MSV_E_TOO_LARGE rather than truncate silently.
 */
typedef struct msv_mime_tree {
	msv_mime_header *headers;
	size_t max_headers;
	size_t nheaders;
	msv_mime_node *nodes;
	size_t max_nodes;
	size_t nnodes;
	unsigned max_depth;
} msv_mime_tree;

/*
 * Parses a complete message (any of CRLF, LF or CR line ends).  Node 0 is
 * the message; a multipart's children are its parts (preamble and
 * epilogue dropped); a message/rfc822 part has the encapsulated message as
 * its one child.  Returns MSV_OK, MSV_E_TOO_LARGE (a limit above) or
 * MSV_E_BAD_MESSAGE (no header block at all).  Lenient where real mail is
 * broken and the meaning is still clear; the flags say where.
 */
MSV_EXTERN MSV_WUR msv_result msv_mime_parse(msv_mime_tree *t, const char *buf, size_t len,
                                             msv_error *err);
/* The first header of node n named name (case-insensitive), or NULL. */
MSV_EXTERN const msv_mime_header *msv_mime_header_get(const msv_mime_tree *t,
                                                      const msv_mime_node *n,
                                                      const char *name);
/*
 * Unfolds a header value and decodes its RFC 2047 encoded words into
 * UTF-8, appended to out.  Words in UTF-8, US-ASCII and every charset
 * iconv knows are decoded; white space between adjacent encoded words is
 * dropped (RFC 2047 6.2); a word in an unknown charset, or malformed,
 * stays as written.  Raw octets that are not UTF-8 are taken as Latin-1.
 */
MSV_EXTERN MSV_WUR msv_result msv_mime_decode_header(msv_buf *out, const char *value, size_t len,
                                                     msv_error *err);
/*
 * The value of parameter name (case-insensitive) of a structured value
 * such as Content-Type or Content-Disposition, decoded into UTF-8 and
 * appended to out: quoted strings unquoted, RFC 2231 charset'lang'value
 * and continuations joined, and RFC 2047 words in it decoded.  *found is
 * set to 0 when there is no such parameter.
 */
MSV_EXTERN MSV_WUR msv_result msv_mime_param(msv_buf *out, int *found, const char *value,
                                             size_t len, const char *name, msv_error *err);
/*
 * The addresses of an RFC 5322 address list (a To, Cc, Bcc or From
 * value), each appended to out NUL-terminated; *n counts them.  Display
 * names, comments, groups and obsolete routes are dropped.  An unterminated
 * quote, comment or angle bracket, or an address that is not local@domain,
 * fails with MSV_E_BAD_ADDRESS naming it.
 */
MSV_EXTERN MSV_WUR msv_result msv_mime_address_list(msv_buf *out, size_t *n, const char *value,
                                                    size_t len, msv_error *err);
/* Undoes the node's transfer encoding, appending the octets to out.
 * Lenient as RFC 2045 asks (6.7 and 6.8): base64 ignores characters
 * outside its alphabet, quoted-printable keeps malformed escapes. */
MSV_EXTERN MSV_WUR msv_result msv_mime_decode_body(msv_buf *out, const msv_mime_node *n,
                                                   msv_error *err);

#ifdef __cplusplus
}
#endif
#endif
