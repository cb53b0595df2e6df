/* Operator commands' audit events (docs/audit.md).  Its own file: the
 * light programs link util.c, and must not pull in the audit trail (and
 * with it OpenSSL) through it. */
#include "audit.h"
#include "cli.h"

void cli_audit(const app_config *cfg, const char *type, const char *qid,
               const msv_audit_field *fields, size_t n)
{
	msv_error err;
	if (app_audit_operator(cfg, type, qid, fields, n, &err))
		cli_err("warning: the change is made, but the audit trail did not take its %s event: %s",
		        type, err.message);
}
