/* `missive sendmail` in missive-core, when no missived takes the message:
 * straight into the queue (sendmail.h). */
#include "audit.h"
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
	/* message.accepted, by the uid: a trail this user may not write is a
	 * warning, never a reason to refuse the mail. */
	app_submit_opts with = *o;
	with.how = "queue";
	if (app_audit_open(cfg, NULL, &with.audit, &err))
		cli_err("warning: the audit trail: %s", err.message);
	if (app_submit(cfg, q, raw->data ? raw->data : "", raw->len, &with, res, &err)) {
		cli_err("sendmail: %s", err.message);
		rc = cli_exit_code(&err);
	} else if (res->audit_failed) {
		cli_err("warning: queued as %s, but the audit trail did not take its event", res->id);
	}
	app_audit_close(with.audit);
	msv_queue_close(q);
	return rc;
}

int cmd_sendmail(int argc, char **argv)
{
	return cli_sendmail(argc, argv, sendmail_queue, NULL);
}
