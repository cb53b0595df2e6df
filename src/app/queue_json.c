/* Queue records as JSON (queue_json.h). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "queue_json.h"

/* cJSON's adders return NULL when out of memory and leave the object a
 * field short: ok tracks it, so what is built is whole or not at all (a
 * reply without its "state" would be read as a different answer). */
#define ADD(ok, call) ((ok) = (ok) && (call) != NULL)

int app_json_time(cJSON *o, const char *key, int64_t ms)
{
	if (ms <= 0)
		return cJSON_AddNullToObject(o, key) != NULL;
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	char buf[40];
	gmtime_r(&t, &tm);
	size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, sizeof(buf) - n, ".%03dZ", (int)(ms % 1000));
	return cJSON_AddStringToObject(o, key, buf) != NULL;
}

/* Appends item to array, or deletes it: 0 when either is missing. */
static int append(cJSON *array, cJSON *item)
{
	if (array && item && cJSON_AddItemToArray(array, item))
		return 1;
	cJSON_Delete(item);
	return 0;
}

static cJSON *rcpt_json(const msv_queue_rcpt_info *r)
{
	cJSON *o = cJSON_CreateObject();
	int ok = o != NULL;
	ADD(ok, cJSON_AddStringToObject(o, "address", r->address));
	ADD(ok, cJSON_AddStringToObject(o, "state", msv_queue_rcpt_state_name(r->state)));
	ADD(ok, cJSON_AddNumberToObject(o, "attempts", r->attempts));
	ok = ok && app_json_time(o, "next_attempt",
	                         r->state == MSV_RCPT_QUEUED || r->state == MSV_RCPT_DEFERRED
	                             ? r->next_attempt_ms : 0);
	ok = ok && app_json_time(o, "updated", r->updated_ms);
	if (r->last_code || (r->last_text && *r->last_text)) {
		cJSON *l = ok ? cJSON_AddObjectToObject(o, "last_reply") : NULL;
		ADD(ok, l);
		ADD(ok, cJSON_AddNumberToObject(l, "code", r->last_code));
		ADD(ok, cJSON_AddStringToObject(l, "enhanced", r->last_enhanced ? r->last_enhanced : ""));
		ADD(ok, cJSON_AddStringToObject(l, "text", r->last_text ? r->last_text : ""));
	} else {
		ADD(ok, cJSON_AddNullToObject(o, "last_reply"));
	}
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static cJSON *attempt_json(const msv_queue_info *info, const msv_queue_attempt *a)
{
	cJSON *o = cJSON_CreateObject();
	int ok = o != NULL;
	for (size_t k = 0; k < info->nrcpt; k++)
		if (info->rcpt[k].id == a->rcpt_id)
			ADD(ok, cJSON_AddStringToObject(o, "recipient", info->rcpt[k].address));
	ok = ok && app_json_time(o, "at", a->at_ms);
	ADD(ok, cJSON_AddNumberToObject(o, "latency_ms", (double)a->latency_ms));
	ADD(ok, cJSON_AddStringToObject(o, "server", a->server ? a->server : ""));
	ADD(ok, cJSON_AddNumberToObject(o, "code", a->reply_code));
	ADD(ok, cJSON_AddStringToObject(o, "enhanced", a->enhanced ? a->enhanced : ""));
	ADD(ok, cJSON_AddStringToObject(o, "text", a->text ? a->text : ""));
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

cJSON *app_info_json(const msv_queue_info *info)
{
	cJSON *j = cJSON_CreateObject();
	int ok = j != NULL;
	ADD(ok, cJSON_AddStringToObject(j, "id", info->qid));
	ok = ok && app_json_time(j, "created", info->created_ms);
	ADD(ok, cJSON_AddStringToObject(j, "sender", info->sender ? info->sender : ""));
	if (info->message_id)
		ADD(ok, cJSON_AddStringToObject(j, "message_id", info->message_id));
	ADD(ok, cJSON_AddStringToObject(j, "route", info->route ? info->route : ""));
	ADD(ok, cJSON_AddNumberToObject(j, "size", (double)info->size));
	cJSON *rs = ok ? cJSON_AddArrayToObject(j, "recipients") : NULL;
	ADD(ok, rs);
	for (size_t i = 0; ok && i < info->nrcpt; i++)
		ok = append(rs, rcpt_json(&info->rcpt[i]));
	if (ok && info->attempts) {
		cJSON *as = cJSON_AddArrayToObject(j, "attempts");
		ADD(ok, as);
		for (size_t i = 0; ok && i < info->nattempts; i++)
			ok = append(as, attempt_json(info, &info->attempts[i]));
	}
	if (!ok) {
		cJSON_Delete(j);
		return NULL;
	}
	return j;
}

int app_route_states_json(cJSON *o, const msv_queue_route_state *s, size_t n)
{
	cJSON *a = cJSON_AddArrayToObject(o, "routes");
	int ok = a != NULL;
	for (size_t i = 0; ok && i < n; i++) {
		cJSON *r = cJSON_CreateObject();
		ok = r != NULL;
		ADD(ok, cJSON_AddStringToObject(r, "route", s[i].route));
		ADD(ok, cJSON_AddStringToObject(r, "circuit", s[i].circuit));
		ok = ok && app_json_time(r, "open_until", s[i].open_until_ms);
		ADD(ok, cJSON_AddNumberToObject(r, "trips", (double)s[i].trips));
		ok = append(ok ? a : NULL, r);
	}
	return ok;
}
