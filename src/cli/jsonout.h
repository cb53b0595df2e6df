/* JSON pieces shared by the commands' --json output, so a reply or an
 * error has one shape everywhere. */
#ifndef MSV_CLI_JSONOUT_H
#define MSV_CLI_JSONOUT_H

#include <cjson/cJSON.h>

#include "missive/smtp.h"

/* Adds "code", "enhanced", "text" to o (nulls when there was no reply). */
void cli_json_reply(cJSON *o, const msv_smtp_reply *r);
/* Adds "error": {"class", "code", "enhanced", "message", "reason"} to o. */
void cli_json_error(cJSON *o, const msv_error *err);

/* Prints j indented on stdout, then deletes it. */
void cli_json_print(cJSON *j);

#endif
