/* The config tests' fixture (include after <cmocka.h>): a private
 * directory holding missive.conf, and loading a text written into it. */
#ifndef MSV_TEST_CONFIG_FIXTURE_H
#define MSV_TEST_CONFIG_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static char dir[64], cfgpath[128];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/msv-test-config-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(cfgpath, sizeof(cfgpath), "%s/missive.conf", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(cfgpath);
	rmdir(dir);
	return 0;
}

/* Writes [queue] path = DIR/queue.db (when queue), then before, text and
 * after, and loads the file. */
static msv_result load_config_text(app_config *c, int queue, const char *before,
                                   const char *text, const char *after, msv_error *err)
{
	FILE *f = fopen(cfgpath, "w");
	assert_non_null(f);
	if (queue)
		fprintf(f, "[queue]\npath = %s/queue.db\n", dir);
	fputs(before, f);
	fputs(text, f);
	fputs(after, f);
	fclose(f);
	return app_config_load(c, cfgpath, err);
}

#endif
