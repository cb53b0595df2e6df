/* What the parts of the config parser share (config.c, config_gateway.c):
 * the parse state and the value parsers.  Not for use outside. */
#ifndef MSV_APP_CONFIG_INT_H
#define MSV_APP_CONFIG_INT_H

#include "config.h"

typedef struct parse_ctx {
	app_config *c;
	const char *path;
	msv_result rc;    /* first error: MSV_E_CONFIG, or MSV_E_NOMEM */
	char msg[1024];   /* and what it was (a key's error: up to MSV_TEXT_MAX); inih gives its line */
	char seen[64][48]; /* "section/key" of the single-valued sections */
	size_t nseen;
} parse_ctx;

/* Records the first error ("[SECTION] KEY: WHY 'VALUE'"); returns 0, the
 * inih handler's "stop". */
int cfg_fail(parse_ctx *p, msv_result rc, const char *section, const char *name, const char *why,
             const char *value);
/* A copy of v that lives as long as the config; NULL (and the load
 * fails) when out of memory. */
const char *cfg_keep(parse_ctx *p, const char *v);
int cfg_parse_uint(const char *s, unsigned max, unsigned *out);
int cfg_parse_bool(const char *s, int *out);
int cfg_parse_size(const char *s, size_t *out);

/* One section's keys: 1 taken, 0 after cfg_fail(). */
typedef int cfg_section_fn(parse_ctx *p, const char *section, const char *name,
                           const char *value);
/* config_gateway.c */
cfg_section_fn cfg_limits_key, cfg_reputation_key;
/* [destination DOMAIN] key (domain as written after "destination "). */
int cfg_destination_key(parse_ctx *p, const char *section, const char *domain, const char *name,
                        const char *value);
/* A route's shaping and breaker keys: 1 taken, 0 failed, -1 not one of them. */
int cfg_route_shaping_key(parse_ctx *p, app_route *r, const char *section, const char *name,
                          const char *value);
void cfg_gateway_defaults(app_config *c);
void cfg_route_defaults(app_route *r);
void cfg_destinations_free(app_config *c);
void cfg_gateway_example(FILE *f);
/* config_audit.c */
cfg_section_fn cfg_audit_key;
int cfg_audit_repeatable(const char *section, const char *name);
void cfg_audit_defaults(app_config *c);
void cfg_audit_finish(parse_ctx *p);
void cfg_audit_free(app_config *c);
void cfg_audit_example(FILE *f);

#endif
