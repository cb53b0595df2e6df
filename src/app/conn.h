/* Route and connection settings: server, TLS and authentication, one
 * parser for the config file's [route] keys and the flags of the
 * connecting commands (send, bench), so a setting means the same
 * everywhere.  Keys are the config key names, which are also the long flag
 * names without "--".  Nothing here prints: errors come back as msv_error
 * values naming the key. */
#ifndef MSV_APP_CONN_H
#define MSV_APP_CONN_H

#include "missive/smtp.h"

typedef struct app_conn {
	msv_client_options co;
	char host[256];
	char peer[300]; /* "host:port" once finished */
	const char *password_file, *password_env, *token_file;
	char *secret;
	int trace;      /* trace = yes: the caller installs co.smtp.trace */
	int finished;   /* app_conn_finish() succeeded */
} app_conn;

/* Every connection key, NULL-terminated, and whether it takes a value
 * (0: a switch, "yes"/"no" in the file, a bare flag on the command line). */
typedef struct app_conn_key {
	const char *name;
	int has_value;
} app_conn_key;
extern const app_conn_key app_conn_keys[];

void app_conn_init(app_conn *cc);
/* Sets one key; value is kept by reference (NULL for a switch turned on).
 * The key may be given as its flag ("--server"): errors then name the
 * flag.  1 taken, 0 not a connection key, -1 with err naming what was
 * wrong. */
int app_conn_set(app_conn *cc, const char *key, const char *value, msv_error *err);
/* After the last key: checks the combination, fills defaults, reads the
 * password or token (secret-file rules, app_read_secret_file).  MSV_OK,
 * or the code of err (class CONFIG or USAGE) naming the keys.  Prints nothing: the
 * caller warns about insecure and installs a tracer when trace is set. */
msv_result app_conn_finish(app_conn *cc, msv_error *err);
void app_conn_free(app_conn *cc);

#endif
