/* Finding and exec'ing missive-core from the light programs (core_exec.h). */
#define _GNU_SOURCE /* memfd_create */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core_exec.h"

#define TRIED_MAX (3 * (PATH_MAX + 64))

/* Fills path with the first executable missive-core of where (the order
 * of core_exec.h); 0, or -1 with tried listing every path looked at. */
static int core_find(const cli_core_where *where, char *path, size_t pathsz, char *tried,
                     size_t triedsz)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash = n > 0 ? (exe[n] = '\0', strrchr(exe, '/')) : NULL;
	if (slash)
		*slash = '\0';
	const char *dirs[] = {slash ? exe : NULL, slash ? exe : NULL, where->abs_dir};
	const char *subs[] = {"", where->from_self, ""};
	*tried = '\0';
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		if (!dirs[i])
			continue;
		snprintf(path, pathsz, "%s%s%s/" CLI_CORE_NAME, dirs[i], *subs[i] ? "/" : "", subs[i]);
		size_t tl = strlen(tried);
		snprintf(tried + tl, triedsz - tl, "%s%s", tl ? ", " : "", path);
		if (!access(path, X_OK))
			return 0;
	}
	return -1;
}

int cli_core_exec(const cli_core_where *where, char **argv)
{
	char path[PATH_MAX + 64], tried[TRIED_MAX];
	char *noargs[] = {"missive", NULL};
	if (!argv[0])
		argv = noargs;
	if (core_find(where, path, sizeof(path), tried, sizeof(tried))) {
		cli_err("%s%s%s needs " CLI_CORE_NAME ", which is not installed (looked for %s); "
		        "reinstall missive",
		        argv[1] ? "'missive " : "missive", argv[1] ? argv[1] : "", argv[1] ? "'" : "",
		        tried);
		return EX_OSFILE;
	}
	fflush(NULL);
	execv(path, argv);
	cli_err("cannot run %s: %s", path, strerror(errno));
	return EX_OSFILE;
}

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

/* The message becomes missive-core's stdin, at offset 0, the dot rule
 * already applied (hence -i). */
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

int cli_core_sendmail(app_config *cfg, const app_submit_opts *o, const msv_buf *raw,
                      const cli_sendmail_declined *why, int argc, char **argv, app_submitted *res,
                      int *broken, void *payload)
{
	(void)cfg;
	(void)o;
	(void)res;
	*broken = 1;
	char path[PATH_MAX + 64], tried[TRIED_MAX];
	if (core_find(payload, path, sizeof(path), tried, sizeof(tried))) {
		cli_err("sendmail: missived did not take the message and writing the queue needs "
		        CLI_CORE_NAME ", which is not installed (looked for %s); reinstall missive",
		        tried);
		return EX_OSFILE;
	}
	/* missive-core sendmail --missived-declined=... -i argv[1..]; the NULL
	 * at the end from calloc.  argv[0] is the path, never "sendmail": that
	 * name alone would make missive-core read "sendmail" as a recipient. */
	char declined[sizeof(CLI_SENDMAIL_DECLINED) + 16 + MSV_TEXT_MAX];
	snprintf(declined, sizeof(declined), CLI_SENDMAIL_DECLINED "%d:%s", why->refused, why->busy);
	char **args = msv_calloc((size_t)argc + 5, sizeof(*args));
	if (!args) {
		cli_err("sendmail: out of memory");
		return EX_OSERR;
	}
	args[0] = path;
	args[1] = "sendmail";
	args[2] = declined;
	args[3] = "-i";
	for (int i = 1; i < argc; i++)
		args[i + 3] = argv[i];
	int rc = EX_OSFILE;
	if (message_as_stdin(raw)) {
		cli_err("sendmail: cannot hand the message to %s: %s", path, strerror(errno));
		rc = EX_OSERR;
	} else {
		fflush(NULL);
		execv(path, args);
		cli_err("sendmail: cannot run %s: %s", path, strerror(errno));
	}
	msv_free(args);
	return rc;
}
