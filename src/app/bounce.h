/* Applying a bounce to the queue: shared by `missive bounce` and
 * POST /v1/bounces. */
#ifndef MSV_APP_BOUNCE_H
#define MSV_APP_BOUNCE_H

#include <cjson/cJSON.h>

#include "config.h"
#include "missive/queue.h"

/* Which step of app_apply_bounce() failed. */
typedef enum app_bounce_step {
	APP_BOUNCE_OK = 0,
	APP_BOUNCE_PARSE, /* the message is not a report we can read */
	APP_BOUNCE_QUEUE, /* the queue did not take the change */
} app_bounce_step;

/* Parses msg (docs/dsn.md); for each failed recipient marks the queued
 * recipient bounced (matched by the queue ID from the envelope ID or the
 * route's VERP return path, and by the address being a recipient of that
 * message) and, for matched hard failures when [suppression] hard-bounces
 * is on, adds the address to the suppression list.  An unmatched bounce
 * is reported ("matched": false) and changes nothing: a forged DSN must
 * not suppress an address we never sent to.
 * *out gets {"kind", "queue_id", "original_message_id", "recipients":
 * [{"address", "action", "status", "reason", "hard", "matched",
 * "suppressed"}]}.  MSV_OK, or the code of err with *failed naming the
 * step: MSV_E_BAD_MESSAGE (or MSV_E_NOMEM) when the message cannot be
 * read, the queue's code when the queue refused a change. */
msv_result app_apply_bounce(const app_config *c, msv_queue *q, const char *msg, size_t len,
                            cJSON **out, app_bounce_step *failed, msv_error *err);

#endif
