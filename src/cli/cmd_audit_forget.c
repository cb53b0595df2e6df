/* `missive audit forget ADDRESS`: crypto-shredding of an address's
 * pseudonyms in the audit trail (docs/audit.md, "Right to erasure"). */
#include <stdio.h>
#include <string.h>

#include "audit.h"
#include "cli.h"

/* One address, as suppression takes it: "a@b", not a list or a phrase. */
static int one_address(const char *addr)
{
	msv_buf one;
	msv_buf_init(&one, 4096);
	size_t n = 0;
	msv_error err;
	int bad = msv_mime_address_list(&one, &n, addr, strlen(addr), &err) || n != 1 ||
	          !strchr(addr, '@');
	msv_buf_free(&one);
	return bad ? -1 : 0;
}

int cli_audit_forget(const char *cfgflag, const char *addr, int json)
{
	if (one_address(addr)) {
		cli_err("audit forget: '%s' is not one address", addr);
		return EX_DATAERR;
	}
	app_config cfg;
	int rc = cli_config_load(&cfg, cfgflag);
	if (rc)
		return rc;
	if (!cfg.audit_path) {
		app_config_free(&cfg);
		cli_err("audit forget: the audit trail is off ([audit] path = off): nothing to forget");
		return EX_CONFIG;
	}
	msv_audit_keys *k = NULL;
	msv_error err;
	if (msv_audit_keys_open(&k, cfg.audit_pseudonym_keys, &err) ||
	    msv_audit_keys_forget(k, addr, &err)) {
		cli_err("audit forget: %s", err.message);
		rc = cli_exit_code(&err);
	}
	if (k)
		msv_audit_keys_close(k);
	if (!rc) {
		/* The event says that something was forgotten, never what. */
		msv_audit_field f[] = {MSV_AUDIT_I("subjects", 1)};
		cli_audit(&cfg, "audit.forgotten", NULL, f, 1);
		if (json)
			puts("{\"forgotten\": true}");
		else
			printf("forgotten: the audit trail's pseudonyms of that address can no longer be "
			       "linked to it\n(a running missived takes the new key within a second)\n");
	}
	app_config_free(&cfg);
	return rc;
}
