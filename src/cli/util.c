/* Helpers shared by the subcommands: exit codes, errors, reading files. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

int cli_exit_code(const msv_error *e)
{
	switch (e->code) {
	case MSV_OK:
		return EX_OK;
	case MSV_E_AUTH_FAILED:
		/* A refused login will not fix itself; a 454 will. */
		return e->cls == MSV_CLASS_TEMPORARY ? EX_TEMPFAIL : EX_NOPERM;
	case MSV_E_BAD_MESSAGE:
	case MSV_E_BAD_ADDRESS:
		return EX_DATAERR;
	default:
		break;
	}
	switch (e->cls) {
	case MSV_CLASS_TEMPORARY: return EX_TEMPFAIL;
	case MSV_CLASS_PERMANENT: return EX_UNAVAILABLE;
	case MSV_CLASS_CONFIG: return EX_CONFIG;
	case MSV_CLASS_USAGE: return EX_USAGE;
	case MSV_CLASS_LOCAL: return EX_SOFTWARE;
	case MSV_CLASS_NONE: return EX_OK;
	}
	return EX_SOFTWARE;
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

int cli_read_file(const char *path, size_t max, char **out, size_t *len, const char *what)
{
	int is_stdin = !strcmp(path, "-");
	FILE *f = is_stdin ? stdin : fopen(path, "rb");
	if (!f) {
		cli_err("cannot open %s %s: %s", what, path, strerror(errno));
		return EX_NOINPUT;
	}
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
	if (!is_stdin)
		fclose(f);
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

int cli_read_secret_file(const char *path, char **out, const char *what)
{
	char *data;
	size_t len;
	int rc = cli_read_file(path, 16384, &data, &len, what);
	if (rc)
		return rc == EX_NOINPUT ? EX_CONFIG : rc;
	size_t end = strcspn(data, "\r\n");
	data[end] = '\0';
	if (!end) {
		msv_free_secret(data);
		cli_err("%s %s is empty", what, path);
		return EX_CONFIG;
	}
	msv_wipe(data + end, len - end);
	*out = data;
	return 0;
}
