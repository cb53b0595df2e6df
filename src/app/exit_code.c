/* Error values to sysexits.h codes (exit_code.h).  The code decides
 * first where it says more than its class (a suppressed recipient is a
 * permanent failure, but one the operator can lift: EX_NOPERM, as
 * sendmail's); the class decides the rest. */
#include "exit_code.h"

/* The codes whose sysexits code is not their class's; -1: the class's. */
static int by_code(const msv_error *e)
{
	switch (e->code) {
	case MSV_OK:
		return EX_OK;
	case MSV_E_AUTH_FAILED:
		/* A refused login will not fix itself; a 454 will. */
		return e->cls == MSV_CLASS_TEMPORARY ? EX_TEMPFAIL : EX_NOPERM;
	case MSV_E_NOMEM:
		/* A queue that cannot take the message now (class TEMPORARY)
		 * is retried by the caller whatever the reason. */
		return e->cls == MSV_CLASS_TEMPORARY ? EX_TEMPFAIL : EX_OSERR;
	case MSV_E_BAD_MESSAGE:
	case MSV_E_BAD_ADDRESS:
	case MSV_E_TOO_MANY_RCPT: /* the message's fault, not the command line's */
		return EX_DATAERR;
	case MSV_E_SUPPRESSED:
		return EX_NOPERM;
	case MSV_E_NO_USER:
		return EX_NOUSER;
	case MSV_E_NO_RCPT:
		return EX_USAGE;
	case MSV_E_CANT_CREATE:
		return EX_CANTCREAT;
	case MSV_E_BAD_REQUEST:
		return EX_PROTOCOL;
	case MSV_E_RATE_LIMITED: /* callers (PHP, cron) try again later */
	case MSV_E_CIRCUIT_OPEN:
		return EX_TEMPFAIL;
	case MSV_E_REPUTATION:
	case MSV_E_UNAUTHORIZED:
	case MSV_E_FORBIDDEN:
		return EX_NOPERM;
	case MSV_E_NO_INPUT:
		return EX_NOINPUT;
	default:
		return -1;
	}
}

int app_exit_code(const msv_error *e)
{
	int rc = by_code(e);
	if (rc >= 0)
		return rc;
	switch (e->cls) {
	case MSV_CLASS_TEMPORARY: return EX_TEMPFAIL;
	case MSV_CLASS_PERMANENT: return EX_UNAVAILABLE;
	case MSV_CLASS_CONFIG: return EX_CONFIG;
	case MSV_CLASS_USAGE: return EX_USAGE;
	case MSV_CLASS_LOCAL: return EX_SOFTWARE;
	case MSV_CLASS_NONE: return EX_OK;
	}
	return EX_SOFTWARE;
}
