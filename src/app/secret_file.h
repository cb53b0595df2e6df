/* Reading passwords and tokens from files, with the permission check
 * that makes a secret file a secret: shared by route settings, the CLI's
 * --password-file and missived's [http] token-file. */
#ifndef MSV_APP_SECRET_FILE_H
#define MSV_APP_SECRET_FILE_H

#include "missive/core.h"

/* The first line of the file, without its line end, into *out (free with
 * msv_free_secret).  The file must be a regular file of this user or
 * root, mode 0600 or stricter, not empty.  MSV_OK, or the code of err
 * (MSV_E_CONFIG, or MSV_E_NOMEM) naming what (e.g. "password file"), the file and its mode. */
msv_result app_read_secret_file(const char *path, const char *what, char **out,
                                msv_error *err);

/* The same checks, the whole file (a JSON key file, at most 16 KiB). */
msv_result app_read_secret_file_all(const char *path, const char *what, char **out,
                                    msv_error *err);

#endif
