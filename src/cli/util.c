/* Helpers shared by the subcommands: exit codes, errors, reading files. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "exit_code.h"

int cli_exit_code(const msv_error *e)
{
	return app_exit_code(e);
}

void cli_err(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("missive: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

int cli_usage(const char *cmd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("missive: ", stderr);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, " (see 'missive %s --help')\n", cmd);
	va_end(ap);
	return EX_USAGE;
}

static int cli_read_stream(FILE *f, const char *path, size_t max, char **out, size_t *len,
                           const char *what);

int cli_read_file(const char *path, size_t max, char **out, size_t *len, const char *what)
{
	int is_stdin = !strcmp(path, "-");
	FILE *f = is_stdin ? stdin : fopen(path, "rb");
	if (!f) {
		cli_err("cannot open %s %s: %s", what, path, strerror(errno));
		return EX_NOINPUT;
	}
	int rc = cli_read_stream(f, is_stdin ? "-" : path, max, out, len, what);
	if (!is_stdin)
		fclose(f);
	return rc;
}

/* Reads f to its end (path "-": stdin, for messages). */
static int cli_read_stream(FILE *f, const char *path, size_t max, char **out, size_t *len,
                           const char *what)
{
	int is_stdin = !strcmp(path, "-");
	msv_buf b;
	msv_buf_init(&b, max);
	char tmp[65536];
	size_t n;
	int rc = 0;
	while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0) {
		if (msv_buf_add(&b, tmp, n)) {
			cli_err("%s %s is larger than %zu bytes", what, is_stdin ? "on stdin" : path, max);
			rc = EX_DATAERR;
			break;
		}
	}
	if (!rc && ferror(f)) {
		cli_err("cannot read %s %s: %s", what, path, strerror(errno));
		rc = EX_IOERR;
	}
	if (rc) {
		msv_buf_free(&b);
		return rc;
	}
	if (!b.data) {
		/* An empty file: reserve allocates but does not terminate. */
		if (msv_buf_reserve(&b, 1)) {
			cli_err("out of memory");
			return EX_OSERR;
		}
		b.data[0] = '\0';
	}
	*out = b.data;
	*len = b.len;
	return 0;
}

int cli_config_load(app_config *cfg, const char *flag)
{
	msv_error err;
	if (!app_config_load(cfg, app_config_path(flag), &err))
		return 0;
	cli_err("%s", err.message);
	return app_exit_code(&err);
}

int cli_config_json_flags(int argc, char **argv, void (*usage)(FILE *f), const char **cfgflag,
                          int *json)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"json", no_argument, NULL, 'j'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'c': *cfgflag = optarg; break;
		case 'j': *json = 1; break;
		case 'h': usage(stdout); return EX_OK;
		default: usage(stderr); return EX_USAGE;
		}
	}
	return -1;
}
