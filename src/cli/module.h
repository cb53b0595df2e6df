/* The command module.  `missive` itself links neither OpenSSL nor SQLite:
 * starting them costs more than `missive build` or a `missive sendmail`
 * handed to missived spend on their work.  Everything that needs them
 * lives in missive-commands.so, which `missive` loads on first use
 * (modload.c).  See docs/internals/cli.md. */
#ifndef MSV_CLI_MODULE_H
#define MSV_CLI_MODULE_H

#include "dkimopts.h"
#include "submit.h"

#define CLI_MODULE_FILE "missive-commands.so"
#define CLI_MODULE_SYMBOL "missive_commands"

/* The build ID: `missive` and the module share structs (the config, the
 * submission options, DKIM key sets), so both must come from one build.
 * The commit they were configured at (MSV_BUILD_COMMIT, CMake) and the
 * size of every struct that crosses, in a fixed-size prefix of the table
 * that is compared before anything else in it is read. */
#define CLI_MODULE_LAYOUT                                                                  	{sizeof(struct cli_module), sizeof(app_config), sizeof(app_route), sizeof(app_conn),    	 sizeof(app_dkim), sizeof(app_submit_opts), sizeof(app_submitted), sizeof(msv_buf),     	 sizeof(msv_error), sizeof(msv_client_options), sizeof(msv_pool_options)}
#define CLI_MODULE_NLAYOUT 11

typedef struct cli_module_id {
	char commit[48];                   /* MSV_BUILD_COMMIT */
	size_t layout[CLI_MODULE_NLAYOUT]; /* CLI_MODULE_LAYOUT */
} cli_module_id;

typedef struct cli_module {
	cli_module_id id;    /* first: checked before the rest is trusted */
	const char *version; /* MSV_VERSION of the module's build, for messages */
	struct {
		const char *name;
		int (*run)(int argc, char **argv);
	} commands[8];
	/* dkimopts.h, for `missive build --dkim-*` (freeing needs no module:
	 * app_dkim_free goes through the pointer the loader set). */
	int (*dkim_load)(cli_dkim *d);
	int (*dkim_sign)(cli_dkim *d, const char *msg, size_t len, msv_buf *out, msv_error *err);
	/* `missive sendmail` without missived: straight into the queue. */
	int (*sendmail_queue)(app_config *cfg, const app_submit_opts *o, const char *msg,
	                      size_t len, app_submitted *res);
} cli_module;

/* The module, loaded on the first call; NULL after printing why. */
const cli_module *cli_module_get(void);

#endif
