/* missive-commands.so: the commands that need OpenSSL or SQLite, for
 * `missive` to load on first use (module.h). */
#include "cli.h"
#include "module.h"

/* `missive sendmail` when no missived answers: the message straight into
 * the queue. */
static int sendmail_queue(app_config *cfg, const app_submit_opts *o, const char *msg, size_t len,
                          app_submitted *res)
{
	msv_queue *q = NULL;
	int rc = cli_queue_open(cfg, 0, &q);
	if (rc)
		return rc;
	msv_error err;
	if ((rc = app_submit(cfg, q, msg, len, o, res, &err)))
		cli_err("sendmail: %s", err.message);
	msv_queue_close(q);
	return rc;
}

__attribute__((visibility("default"))) const cli_module missive_commands = {
    .id = {MSV_BUILD_COMMIT, CLI_MODULE_LAYOUT},
    .version = MSV_VERSION,
    .commands = {
        {"send", cmd_send},
        {"dkim", cmd_dkim},
        {"queue", cmd_queue},
        {"bounce", cmd_bounce},
        {"suppression", cmd_suppression},
        {"bench", cmd_bench},
    },
    .dkim_load = cli_dkim_load,
    .dkim_sign = cli_dkim_sign,
    .sendmail_queue = sendmail_queue,
};
