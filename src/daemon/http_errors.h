/* Error values to HTTP statuses and the API's error codes: the one table
 * (docs/http-api.md).  Apart from http.c, which needs libmicrohttpd, so a
 * unit test reads the same table missived answers with. */
#ifndef MSV_DAEMON_HTTP_ERRORS_H
#define MSV_DAEMON_HTTP_ERRORS_H

#include "missive/core.h"

/* Where an application-layer call failed: the same error value means
 * another thing at another step (a queue write that fails is the
 * server's trouble, a message that fails to parse is the client's). */
enum http_step {
	STEP_PREPARE = 1,
	STEP_SUPPRESSED,
	STEP_BOUNCE_PARSE,
	STEP_QUEUE,
	STEP_ADMIT /* the gateway: credentials, limits, reputation (gateway.h) */
};

/* The status for err at step into *status; returns the JSON error code
 * ("error": {"code"}).  Never fails: an unknown step is 500 "internal". */
const char *http_error_for(enum http_step step, const msv_error *err, unsigned *status);

#endif
