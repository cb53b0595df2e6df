/* Secret files (secret_file.h). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "secret_file.h"

#define SECRET_MAX 16384

/* "WHAT PATH" and why: every error names the file. */
static int config_err(msv_error *err, const char *what, const char *path, const char *why)
{
	msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG, "%s %s%s", what, path, why);
	return -1;
}

/* "cannot open WHAT PATH: strerror(errno)". */
static int sys_err(msv_error *err, const char *verb, const char *what, const char *path)
{
	msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG, "%s %s %s: %s", verb, what, path,
	              strerror(errno));
	return -1;
}

/* Like ssh with a private key: a secret that others can read is no
 * longer a secret, and one owned by another user (not root) may have been
 * put there by them; refuse both, naming the file and its mode.  Checked
 * on the open descriptor, so the file cannot be swapped after the check. */
static int secret_file_ok(int fd, const char *path, const char *what, msv_error *err)
{
	struct stat st;
	if (fstat(fd, &st))
		return sys_err(err, "cannot read", what, path);
	if (!S_ISREG(st.st_mode))
		return config_err(err, what, path, " is not a regular file");
	if (st.st_mode & 077) {
		msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
		              "%s %s: mode %04o is accessible by others; chmod 600 it", what, path,
		              (unsigned)(st.st_mode & 07777));
		return -1;
	}
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
		              "%s %s is owned by uid %lu, not by this user (uid %lu) or root; chown it",
		              what, path, (unsigned long)st.st_uid, (unsigned long)geteuid());
		return -1;
	}
	return 0;
}

/* Reads the whole (small) file; the secret is wiped from every buffer
 * that is given up. */
static int read_all(int fd, const char *path, const char *what, msv_buf *b, msv_error *err)
{
	char tmp[4096];
	ssize_t n;
	int rc = 0;
	while (!rc && (n = read(fd, tmp, sizeof(tmp))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			rc = sys_err(err, "cannot read", what, path);
		else if (msv_buf_add(b, tmp, (size_t)n))
			rc = config_err(err, what, path, " is larger than 16 KiB");
	}
	msv_wipe(tmp, sizeof(tmp));
	return rc;
}

static int read_secret(const char *path, const char *what, int whole, char **out, msv_error *err)
{
	*out = NULL;
	int fd = open(path, O_RDONLY | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return sys_err(err, "cannot open", what, path);
	msv_buf b;
	msv_buf_init(&b, SECRET_MAX);
	int rc = secret_file_ok(fd, path, what, err);
	if (!rc)
		rc = read_all(fd, path, what, &b, err);
	close(fd);
	if (!rc && msv_buf_reserve(&b, 1)) {
		msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "reading %s %s: out of memory", what,
		              path);
		rc = -1;
	}
	if (rc) {
		if (b.data)
			msv_wipe(b.data, b.len);
		msv_buf_free(&b);
		return rc;
	}
	b.data[b.len] = '\0';
	size_t end = whole ? b.len : strcspn(b.data, "\r\n");
	msv_wipe(b.data + end, b.len - end);
	if (!end) {
		msv_free_secret(b.data);
		return config_err(err, what, path, " is empty");
	}
	*out = b.data;
	return 0;
}

msv_result app_read_secret_file(const char *path, const char *what, char **out, msv_error *err)
{
	return read_secret(path, what, 0, out, err) ? err->code : MSV_OK;
}

msv_result app_read_secret_file_all(const char *path, const char *what, char **out, msv_error *err)
{
	return read_secret(path, what, 1, out, err) ? err->code : MSV_OK;
}
