/* Error values to sysexits.h codes (exit_code.h). */
#include "exit_code.h"

int app_exit_code(const msv_error *e)
{
	switch (e->code) {
	case MSV_OK:
		return EX_OK;
	case MSV_E_AUTH_FAILED:
		/* A refused login will not fix itself; a 454 will. */
		return e->cls == MSV_CLASS_TEMPORARY ? EX_TEMPFAIL : EX_NOPERM;
	case MSV_E_BAD_MESSAGE:
	case MSV_E_BAD_ADDRESS:
		return EX_DATAERR;
	default:
		break;
	}
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
