/* missive-sendmail, installed as sendmail: the sendmail(8) front end, as
 * Postfix's sendmail is to postdrop.  It hands the message to missived's
 * submission socket and so links neither OpenSSL nor SQLite: loading them
 * would cost more than the hand-over (docs/internals/cli.md).  When
 * missived does not take the message, it execs the fully linked missive
 * with the message as read, which writes the queue (sendmail.h). */
#define _GNU_SOURCE /* memfd_create */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sendmail.h"

/* Writes the whole message to fd; 0 or -1. */
static int write_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The message becomes missive's stdin, at offset 0, the dot rule already
 * applied (hence -i). */
static int message_as_stdin(const msv_buf *raw)
{
	int fd = memfd_create("missive-sendmail", 0);
	if (fd < 0)
		return -1;
	int ok = !write_all(fd, raw->data ? raw->data : "", raw->len) &&
	         lseek(fd, 0, SEEK_SET) == 0 && dup2(fd, STDIN_FILENO) == STDIN_FILENO;
	close(fd);
	return ok ? 0 : -1;
}

/* missive beside this program (a build tree), at the install layout's
 * path from sbindir to bindir (a relocated prefix), in the configured
 * bindir; execs the first that is there.  Returns only on failure, after
 * printing what was tried. */
static int exec_missive(app_config *cfg, const app_submit_opts *o, const msv_buf *raw,
                        int argc, char **argv, app_submitted *res, int *broken)
{
	(void)cfg;
	(void)o;
	(void)res;
	*broken = 1;
	char exe[PATH_MAX], path[PATH_MAX + 64], tried[3 * (PATH_MAX + 64)] = "";
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash = n > 0 ? (exe[n] = '\0', strrchr(exe, '/')) : NULL;
	if (slash)
		*slash = '\0';
	const char *dirs[] = {slash ? exe : NULL, slash ? exe : NULL, MSV_BINDIR_ABS};
	const char *subs[] = {"", ("/" MSV_BIN_FROM_SBIN), ""};
	/* missive sendmail -i argv[1..]; the NULL at the end from calloc. */
	char **args = msv_calloc((size_t)argc + 4, sizeof(*args));
	if (!args) {
		cli_err("sendmail: out of memory");
		return EX_OSERR;
	}
	args[1] = "sendmail";
	args[2] = "-i";
	for (int i = 1; i < argc; i++)
		args[i + 2] = argv[i];
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		if (!dirs[i])
			continue;
		snprintf(path, sizeof(path), "%s%s/missive", dirs[i], subs[i]);
		size_t tl = strlen(tried);
		snprintf(tried + tl, sizeof(tried) - tl, "%s%s", tl ? ", " : "", path);
		if (access(path, X_OK))
			continue;
		if (message_as_stdin(raw)) {
			cli_err("sendmail: cannot hand the message to %s: %s", path, strerror(errno));
			msv_free(args);
			return EX_OSERR;
		}
		fflush(NULL);
		args[0] = path;
		execv(path, args);
		cli_err("sendmail: cannot run %s: %s", path, strerror(errno));
		msv_free(args);
		return EX_OSFILE;
	}
	cli_err("sendmail: missived did not take the message and writing the queue needs missive, "
	        "which is not installed (looked for %s); reinstall missive",
	        tried);
	msv_free(args);
	return EX_OSFILE;
}

int main(int argc, char **argv)
{
	return cli_sendmail(argc, argv, exec_missive);
}
