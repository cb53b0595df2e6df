/* missive send --batch (batch.c). */
#ifndef MSV_CLI_BATCH_H
#define MSV_CLI_BATCH_H

#include "dkimopts.h"
#include "missive/smtp.h"

/* Sends every message of a JSON-lines file ("-": stdin) to route with up
 * to conns connections, each signed with dkim's keys (if any); prints a
 * result per line (JSON with json).
 * Returns 0 when all were sent to every recipient, else the most
 * actionable sysexits code (75 over 69 over 65). */
int cli_send_batch(const msv_client_options *route, const char *path, unsigned conns, int json,
                   cli_dkim *dkim);

#endif
