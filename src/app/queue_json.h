/* Queue records as JSON, one shape for `missive queue --json` and the
 * HTTP API (docs/http-api.md). */
#ifndef MSV_APP_QUEUE_JSON_H
#define MSV_APP_QUEUE_JSON_H

#include <cjson/cJSON.h>

#include "missive/queue.h"

/* {"id", "created", "sender", "message_id", "route", "size", "recipients":
 * [{"address", "state", "attempts", "next_attempt", "updated", "last_reply"}],
 * "attempts": [...]} ("attempts" only when info has them); NULL when out of
 * memory (never an object with fields missing). */
cJSON *app_info_json(const msv_queue_info *info);
/* ISO 8601 UTC with milliseconds, or null for ms <= 0.  0 when out of memory. */
int app_json_time(cJSON *o, const char *key, int64_t ms);
/* Adds "routes": [{"route", "circuit", "open_until" (null when closed),
 * "trips"}] to o, as `missive queue stats` shows them.  0 when out of
 * memory. */
int app_route_states_json(cJSON *o, const msv_queue_route_state *s, size_t n);

#endif
