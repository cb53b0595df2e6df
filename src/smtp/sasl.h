/* SASL client mechanisms (RFC 4954 framing is the engine's job). */
#ifndef MSV_SMTP_SASL_H
#define MSV_SMTP_SASL_H

#include "missive/smtp.h"

typedef struct msv_sasl {
	msv_auth_mech mech;
	int step;
	const char *user;
	const char *secret;
} msv_sasl;

/* Picks a mechanism among the offered ones (bit 1 << mech), or AUTO when
 * none fits.  forced != AUTO is taken only if offered. */
msv_auth_mech msv__sasl_choose(unsigned offered, int tls, int token, msv_auth_mech forced);
/* Appends the base64 initial response to ir (nothing when the mechanism
 * waits for a challenge). */
msv_result msv__sasl_start(msv_sasl *x, msv_buf *ir);
/* Given a 334 challenge (base64), appends the base64 response. */
msv_result msv__sasl_step(msv_sasl *x, const char *challenge, size_t n, msv_buf *resp);

#endif
