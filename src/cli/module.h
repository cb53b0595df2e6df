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
/* Bumped when this table changes: a module of another build is refused. */
#define CLI_MODULE_ABI 1

typedef struct cli_module {
	int abi;
	const char *version; /* MSV_VERSION of the module's build */
	struct {
		const char *name;
		int (*run)(int argc, char **argv);
	} commands[8];
	/* dkimopts.h, for `missive build --dkim-*` */
	int (*dkim_load)(cli_dkim *d);
	int (*dkim_sign)(cli_dkim *d, const char *msg, size_t len, msv_buf *out, msv_error *err);
	void (*dkim_free)(cli_dkim *d);
	/* `missive sendmail` without missived: straight into the queue. */
	int (*sendmail_queue)(app_config *cfg, const app_submit_opts *o, const char *msg,
	                      size_t len, app_submitted *res);
} cli_module;

/* The module, loaded on the first call; NULL after printing why. */
const cli_module *cli_module_get(void);

#endif
