/*
 * The refresh-token file: read at every refresh (another process, or
 * `missive oauth2 authorize`, may have replaced it), and written back
 * when the endpoint rotates the token, so that a crash leaves either the
 * old token or the new one, never half of one: write to a temporary file
 * beside it (0600 from creation), fsync, rename over, fsync the directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oauth2_int.h"

#define TOKEN_FILE_MAX 16384

msv_result msv__oauth2_read_secret(const char *path, char **out, msv_error *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG, "cannot read %s: %s", path,
		                     strerror(errno));
	char *buf = msv_malloc(TOKEN_FILE_MAX + 1);
	if (!buf) {
		close(fd);
		return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
	}
	size_t len = 0;
	ssize_t n;
	while (len < TOKEN_FILE_MAX && (n = read(fd, buf + len, TOKEN_FILE_MAX - len)) > 0)
		len += (size_t)n;
	close(fd);
	buf[len] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	size_t l = strlen(buf);
	while (l && (buf[l - 1] == ' ' || buf[l - 1] == '\t'))
		buf[--l] = '\0';
	if (!l) {
		msv_free_secret(buf);
		return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG, "%s holds no token", path);
	}
	*out = buf;
	return MSV_OK;
}

static void sync_dir(const char *path)
{
	char *copy = msv_strdup(path);
	if (!copy)
		return;
	int dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd); /* the rename is done; this only makes it durable sooner */
		close(dfd);
	}
	msv_free(copy);
}

msv_result msv__oauth2_write_secret(const char *path, const char *secret, msv_error *err)
{
	size_t pl = strlen(path);
	char *tmp = msv_malloc(pl + 16);
	if (!tmp)
		return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
	snprintf(tmp, pl + 16, "%s.tmp.XXXXXX", path);
	/* mkstemp creates 0600 (POSIX 2008); no umask games in a library. */
	int fd = mkstemp(tmp);
	if (fd < 0) {
		msv_error_set(err, MSV_E_CANT_CREATE, MSV_CLASS_LOCAL, "cannot create %s: %s", tmp,
		              strerror(errno));
		msv_free(tmp);
		return MSV_E_CANT_CREATE;
	}
	size_t sl = strlen(secret), off = 0;
	int ok = fchmod(fd, 0600) == 0;
	while (ok && off < sl) {
		ssize_t n = write(fd, secret + off, sl - off);
		if (n < 0 && errno == EINTR)
			continue;
		ok = n > 0;
		off += ok ? (size_t)n : 0;
	}
	ok = ok && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
	ok = close(fd) == 0 && ok;
	if (!ok || rename(tmp, path)) {
		int e = errno;
		unlink(tmp);
		msv_error_set(err, MSV_E_CANT_CREATE, MSV_CLASS_LOCAL, "cannot write %s: %s", path,
		              strerror(e));
		msv_free(tmp);
		return MSV_E_CANT_CREATE;
	}
	msv_free(tmp);
	sync_dir(path);
	return MSV_OK;
}
