/* libFuzzer target: `missive queue import`'s reader (src/app/queue_import.c).
 * Input: JSON Lines as `missive queue export` writes them.  Checks: no
 * crash, no leak, no undefined conversion of a number (UBSan), and every
 * record taken has what msv_queue_import needs: recipients with an
 * address, keys and rows with their names. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "queue_import.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const msv_queue_import_set *s)
{
	for (size_t i = 0; i < s->nmsgs; i++) {
		if (!s->msgs[i].info.nrcpt || strlen(s->msgs[i].info.qid) != MSV_QID_LEN)
			abort();
		for (size_t j = 0; j < s->msgs[i].info.nrcpt; j++)
			if (!s->msgs[i].info.rcpt[j].address)
				abort();
	}
	for (size_t i = 0; i < s->nkeys; i++)
		if (!s->keys[i].name)
			abort();
	for (size_t i = 0; i < s->nsup; i++)
		if (!s->sup[i].address)
			abort();
	for (size_t i = 0; i < s->nroutes; i++)
		if (!s->routes[i].route || !s->routes[i].circuit)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int hooked;
	if (!hooked) {
		cJSON_Hooks h = {msv_malloc, msv_free};
		cJSON_InitHooks(&h);
		hooked = 1;
	}
	app_import *im;
	msv_error err;
	if (app_import_new(&im, &err))
		return 0;
	const char *p = (const char *)data, *end = p + size;
	int ok = 1;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (app_import_line(im, p, n, &err))
			ok = 0;
		p += n + 1;
	}
	if (ok) {
		msv_queue_import_set set;
		app_import_set(im, &set);
		check(&set);
	}
	app_import_free(im);
	return 0;
}
