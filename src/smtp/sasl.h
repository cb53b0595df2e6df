/* SASL client mechanisms (RFC 4954 framing is the engine's job). */
#ifndef MSV_SMTP_SASL_H
#define MSV_SMTP_SASL_H

#include "missive/smtp.h"

typedef struct msv_sasl {
	msv_auth_mech mech;
	int step;
	const char *user;
	const char *secret;
	const char *host; /* OAUTHBEARER's host= and port= (RFC 7628 3.1) */
	unsigned port;
	/* The server answered a bearer token with its error challenge
	 * (RFC 7628 3.2.2): the token was refused; the status, as text. */
	int token_refused;
	char status[256];
} msv_sasl;

/* Picks a mechanism among the offered ones (bit 1 << mech), or AUTO when
 * none fits.  forced != AUTO is taken only if offered. */
msv_auth_mech msv__sasl_choose(unsigned offered, int tls, int token, msv_auth_mech forced);
/* Appends the base64 initial response to ir (nothing when the mechanism
 * waits for a challenge). */
msv_result msv__sasl_start(msv_sasl *x, msv_buf *ir);
/* Given a 334 challenge (base64), appends the base64 response. */
msv_result msv__sasl_step(msv_sasl *x, const char *challenge, size_t n, msv_buf *resp);

/* Decodes an OAUTHBEARER/XOAUTH2 error challenge (base64 of a JSON
 * object: status, schemes, scope) into out as printable text
 * ("status=401 schemes=bearer scope=..."), the raw decoding sanitized
 * when it is not such an object.  0, or -1 when not base64. */
int msv__sasl_oauth_status(const char *challenge, size_t n, char *out, size_t cap);

#endif
