/* Helpers shared by the subcommands: exit codes, errors, reading files. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* Like ssh with a private key: a secret that others can read is no
 * longer a secret, and one owned by another user (not root) may have been
 * put there by them; refuse both, naming the file and its mode.  Checked
 * on the open descriptor, so the file cannot be swapped after the check. */
static int secret_file_ok(int fd, const char *path, const char *what)
{
	struct stat st;
	if (fstat(fd, &st)) {
		cli_err("cannot read %s %s: %s", what, path, strerror(errno));
		return EX_CONFIG;
	}
	if (!S_ISREG(st.st_mode)) {
		cli_err("%s %s is not a regular file", what, path);
		return EX_CONFIG;
	}
	if (st.st_mode & 077) {
		cli_err("%s %s: mode %04o is accessible by others; chmod 600 it", what, path,
		        (unsigned)(st.st_mode & 07777));
		return EX_CONFIG;
	}
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		cli_err("%s %s is owned by uid %lu, not by this user (uid %lu) or root; chown it",
		        what, path, (unsigned long)st.st_uid, (unsigned long)geteuid());
		return EX_CONFIG;
	}
	return 0;
}

int cli_read_secret_file(const char *path, char **out, const char *what)
{
	char *data;
	size_t len;
	int fd = open(path, O_RDONLY | O_NOCTTY | O_CLOEXEC);
	if (fd < 0) {
		cli_err("cannot open %s %s: %s", what, path, strerror(errno));
		return EX_CONFIG;
	}
	int rc = secret_file_ok(fd, path, what);
	FILE *f = rc ? NULL : fdopen(fd, "rb");
	if (!f) {
		close(fd);
		return rc ? rc : EX_OSERR;
	}
	rc = cli_read_stream(f, path, 16384, &data, &len, what);
	fclose(f);
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
