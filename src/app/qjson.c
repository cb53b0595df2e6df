/* Queue records as JSON (see qjson.h). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "qjson.h"

void app_json_time(cJSON *o, const char *key, int64_t ms)
{
	if (ms <= 0) {
		cJSON_AddNullToObject(o, key);
		return;
	}
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	char buf[40];
	gmtime_r(&t, &tm);
	size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, sizeof(buf) - n, ".%03dZ", (int)(ms % 1000));
	cJSON_AddStringToObject(o, key, buf);
}

cJSON *app_info_json(const msv_queue_info *info)
{
	cJSON *j = cJSON_CreateObject();
	cJSON_AddStringToObject(j, "id", info->qid);
	app_json_time(j, "created", info->created_ms);
	cJSON_AddStringToObject(j, "sender", info->sender ? info->sender : "");
	if (info->message_id)
		cJSON_AddStringToObject(j, "message_id", info->message_id);
	cJSON_AddStringToObject(j, "route", info->route ? info->route : "");
	cJSON_AddNumberToObject(j, "size", (double)info->size);
	cJSON *rs = cJSON_AddArrayToObject(j, "recipients");
	for (size_t i = 0; i < info->nrcpt; i++) {
		const msv_queue_rcpt_info *r = &info->rcpt[i];
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "address", r->address);
		cJSON_AddStringToObject(o, "state", msv_rcpt_state_name(r->state));
		cJSON_AddNumberToObject(o, "attempts", r->attempts);
		app_json_time(o, "next_attempt",
		         r->state == MSV_RCPT_QUEUED || r->state == MSV_RCPT_DEFERRED ? r->next_attempt_ms : 0);
		app_json_time(o, "updated", r->updated_ms);
		if (r->last_code || (r->last_text && *r->last_text)) {
			cJSON *l = cJSON_AddObjectToObject(o, "last_reply");
			cJSON_AddNumberToObject(l, "code", r->last_code);
			cJSON_AddStringToObject(l, "enhanced", r->last_enhanced ? r->last_enhanced : "");
			cJSON_AddStringToObject(l, "text", r->last_text ? r->last_text : "");
		} else {
			cJSON_AddNullToObject(o, "last_reply");
		}
		cJSON_AddItemToArray(rs, o);
	}
	if (!info->attempts)
		return j;
	cJSON *as = cJSON_AddArrayToObject(j, "attempts");
	for (size_t i = 0; i < info->nattempts; i++) {
		const msv_queue_attempt *a = &info->attempts[i];
		cJSON *o = cJSON_CreateObject();
		for (size_t k = 0; k < info->nrcpt; k++)
			if (info->rcpt[k].id == a->rcpt_id)
				cJSON_AddStringToObject(o, "recipient", info->rcpt[k].address);
		app_json_time(o, "at", a->at_ms);
		cJSON_AddNumberToObject(o, "latency_ms", (double)a->latency_ms);
		cJSON_AddStringToObject(o, "server", a->server ? a->server : "");
		cJSON_AddNumberToObject(o, "code", a->reply_code);
		cJSON_AddStringToObject(o, "enhanced", a->enhanced ? a->enhanced : "");
		cJSON_AddStringToObject(o, "text", a->text ? a->text : "");
		cJSON_AddItemToArray(as, o);
	}
	return j;
}

