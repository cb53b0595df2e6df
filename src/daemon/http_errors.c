/* The one table from error values to HTTP statuses (http_errors.h). */
#include "http_errors.h"

/* First match wins; code MSV_OK and class MSV_CLASS_NONE match any, kind
 * NULL is msv_result_name() of the code. */
static const struct http_error_map {
	enum http_step step;
	msv_result code;
	msv_class cls;
	unsigned status;
	const char *kind;
} http_errors[] = {
	{STEP_PREPARE, MSV_OK, MSV_CLASS_CONFIG, 500, "config"}, /* our settings, not the request */
	/* No recipient at all: named as a missing address since the API's
	 * first version (clients match on it). */
	{STEP_PREPARE, MSV_E_NO_RCPT, MSV_CLASS_NONE, 400, "bad_address"},
	{STEP_PREPARE, MSV_OK, MSV_CLASS_NONE, 400, NULL},       /* the message or envelope */
	{STEP_SUPPRESSED, MSV_OK, MSV_CLASS_NONE, 403, "suppressed"},
	{STEP_BOUNCE_PARSE, MSV_E_NOMEM, MSV_CLASS_NONE, 503, "queue"},
	{STEP_BOUNCE_PARSE, MSV_OK, MSV_CLASS_NONE, 400, "bad_message"},
	{STEP_QUEUE, MSV_OK, MSV_CLASS_NONE, 503, "queue"},      /* busy, full or failing: retry */
	/* The gateway (docs/gateway.md): 401 with WWW-Authenticate, 429
	 * with Retry-After; the name is the result code's. */
	{STEP_ADMIT, MSV_E_UNAUTHORIZED, MSV_CLASS_NONE, 401, NULL},
	{STEP_ADMIT, MSV_E_FORBIDDEN, MSV_CLASS_NONE, 403, NULL},
	{STEP_ADMIT, MSV_E_REPUTATION, MSV_CLASS_NONE, 403, NULL},
	{STEP_ADMIT, MSV_E_RATE_LIMITED, MSV_CLASS_NONE, 429, NULL},
	{STEP_ADMIT, MSV_E_CIRCUIT_OPEN, MSV_CLASS_NONE, 429, NULL},
	{STEP_ADMIT, MSV_OK, MSV_CLASS_NONE, 503, "busy"},
};

const char *http_error_for(enum http_step step, const msv_error *err, unsigned *status)
{
	for (size_t i = 0; i < sizeof(http_errors) / sizeof(http_errors[0]); i++) {
		const struct http_error_map *m = &http_errors[i];
		if (m->step == step && (m->code == MSV_OK || m->code == err->code) &&
		    (m->cls == MSV_CLASS_NONE || m->cls == err->cls)) {
			*status = m->status;
			return m->kind ? m->kind : msv_result_name(err->code);
		}
	}
	*status = 500; /* every step has a catch-all: not reached */
	return "internal";
}
