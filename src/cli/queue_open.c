/* Opening the configured queue for a subcommand (cli.h). */
#include "cli.h"
#include "submit.h"

int cli_queue_open(const app_config *cfg, int read_only, msv_queue **q)
{
	msv_error err;
	if (!app_queue_open(cfg, read_only, q, &err))
		return 0;
	cli_err("%s", err.message);
	return cli_exit_code(&err);
}
