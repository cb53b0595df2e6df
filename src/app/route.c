/* Finishing a route after the file is read (config.h): its DKIM keys and
 * its connection settings.  Apart from config.c so that a program that
 * only reads the file (`missive sendmail` handing over to missived)
 * links neither the signer nor OpenSSL. */
#include <stdio.h>
#include <string.h>

#include "config.h"

/* The line of "[route NAME]" (or "[route]" for default) in the file, 0
 * when not found: a route's error names where to look, as a key's does. */
static int section_line(const char *cfgpath, const char *name)
{
	FILE *f = fopen(cfgpath, "r");
	if (!f)
		return 0;
	char buf[512];
	int line = 0, found = 0;
	while (!found && fgets(buf, sizeof(buf), f)) {
		line++;
		char *s = buf + strspn(buf, " \t");
		if (strncmp(s, "[route", 6))
			continue;
		s += 6;
		s += strspn(s, " \t");
		size_t n = strcspn(s, "]");
		while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
			n--;
		found = s[strcspn(s, "]")] == ']' &&
		        ((n == strlen(name) && !strncmp(s, name, n)) || (!n && !strcmp(name, "default")));
	}
	fclose(f);
	return found ? line : 0;
}

/* Rewrites err as "FILE:LINE: [route NAME] why": the class becomes CONFIG
 * (a usage error of a flag is a configuration error in a file), except
 * for memory. */
static msv_result route_error(const app_route *r, const char *cfgpath, msv_error *err)
{
	char why[sizeof(err->message)];
	snprintf(why, sizeof(why), "%s", err->message);
	msv_result code = err->code == MSV_E_NOMEM ? MSV_E_NOMEM : MSV_E_CONFIG;
	msv_class cls = err->code == MSV_E_NOMEM ? MSV_CLASS_LOCAL : MSV_CLASS_CONFIG;
	int line = section_line(cfgpath, r->name);
	if (line)
		msv_error_set(err, code, cls, "%s:%d: [route %s] %s", cfgpath, line, r->name, why);
	else
		msv_error_set(err, code, cls, "%s: [route %s] %s", cfgpath, r->name, why);
	return code;
}

msv_result app_route_load_dkim(app_route *r, const char *cfgpath, msv_error *err)
{
	return app_dkim_load(&r->dkim, err) ? route_error(r, cfgpath, err) : MSV_OK;
}

msv_result app_route_load_conn(app_route *r, const char *cfgpath, msv_error *err)
{
	if (app_conn_finish(&r->conn, err) || app_conn_oauth2_start(&r->conn, err))
		return route_error(r, cfgpath, err);
	return MSV_OK;
}
