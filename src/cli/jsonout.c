/* JSON pieces shared by the commands' --json output. */
#include <stdio.h>

#include "jsonout.h"

static void add_or_null(cJSON *o, const char *name, const char *s)
{
	if (s && *s)
		cJSON_AddStringToObject(o, name, s);
	else
		cJSON_AddNullToObject(o, name);
}

void cli_json_reply(cJSON *o, const msv_smtp_reply *r)
{
	if (r && r->code) {
		cJSON_AddNumberToObject(o, "code", r->code);
		add_or_null(o, "enhanced", r->enhanced);
		cJSON_AddStringToObject(o, "text", r->text);
	} else {
		cJSON_AddNullToObject(o, "code");
		cJSON_AddNullToObject(o, "enhanced");
		cJSON_AddNullToObject(o, "text");
	}
}

void cli_json_error(cJSON *o, const msv_error *err)
{
	cJSON *e = cJSON_AddObjectToObject(o, "error");
	cJSON_AddStringToObject(e, "class", msv_class_name(err->cls));
	if (err->reply_code)
		cJSON_AddNumberToObject(e, "code", err->reply_code);
	else
		cJSON_AddNullToObject(e, "code");
	add_or_null(e, "enhanced", err->enhanced);
	cJSON_AddStringToObject(e, "message", err->message);
	cJSON_AddStringToObject(e, "reason", msv_result_name(err->code));
}

void cli_json_print(cJSON *j)
{
	char *s = cJSON_Print(j);
	if (s)
		puts(s);
	cJSON_free(s);
	cJSON_Delete(j);
}
