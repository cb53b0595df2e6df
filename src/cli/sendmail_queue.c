/* `missive sendmail` in missive-core, when no missived takes the message:
 * straight into the queue (sendmail.h). */
#include "sendmail.h"

static int sendmail_queue(app_config *cfg, const app_submit_opts *o, const msv_buf *raw,
                          const cli_sendmail_declined *why, int argc, char **argv,
                          app_submitted *res, int *broken, void *payload)
{
	(void)why;
	(void)argc;
	(void)argv;
	(void)payload;
	*broken = 0;
	msv_queue *q = NULL;
	int rc = cli_queue_open(cfg, 0, &q);
	if (rc)
		return rc;
	msv_error err;
	if (app_submit(cfg, q, raw->data ? raw->data : "", raw->len, o, res, &err)) {
		cli_err("sendmail: %s", err.message);
		rc = cli_exit_code(&err);
	}
	msv_queue_close(q);
	return rc;
}

int cmd_sendmail(int argc, char **argv)
{
	return cli_sendmail(argc, argv, sendmail_queue, NULL);
}
