/* Route and connection settings: server, TLS and authentication, one
 * parser for the config file's [route] keys and the flags of the
 * connecting commands (send, bench), so a setting means the same
 * everywhere.  Keys are the config key names, which are also the long flag
 * names without "--".  Nothing here prints: errors come back as msv_error
 * values naming the key. */
#ifndef MSV_APP_CONN_H
#define MSV_APP_CONN_H

#include "missive/oauth2.h"
#include "missive/smtp.h"

/* The oauth2-* keys (conn_oauth2.c), kept by reference as given. */
typedef struct app_oauth2_keys {
	const char *token_url, *client_id, *client_secret_file, *refresh_token_file, *scope,
		*service_account_file, *subject, *provider, *device_url;
} app_oauth2_keys;

typedef struct app_conn {
	msv_client_options co;
	char host[256];
	char peer[300]; /* "host:port" once finished */
	const char *password_file, *password_env, *token_file;
	char *secret;
	int trace;      /* trace = yes: the caller installs co.smtp.trace */
	int finished;   /* app_conn_finish() succeeded */
	app_oauth2_keys oauth2;
	/* Made by app_conn_oauth2_start() when an oauth2-* key is set: the
	 * token source every connection of the route shares (co.token).
	 * Freed through the pointer so that conn.c links no libcurl. */
	msv_oauth2 *oauth2_src;
	void (*oauth2_free)(msv_oauth2 *o);
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
 * password or token (secret-file rules, app_read_secret_file); an OAuth2
 * source is app_conn_oauth2_start()'s.  MSV_OK,
 * or the code of err (class CONFIG or USAGE) naming the keys.  Prints nothing: the
 * caller warns about insecure and installs a tracer when trace is set. */
msv_result app_conn_finish(app_conn *cc, msv_error *err);
void app_conn_free(app_conn *cc);

/* conn_oauth2.c: 1 taken (an oauth2-* key), 0 not one, -1 bad value. */
int app_conn_oauth2_set(app_conn *cc, const char *key, const char *value, msv_error *err);
/* 1 when any oauth2-* key is set. */
int app_conn_oauth2_given(const app_conn *cc);
/* conn_oauth2_src.c (libcurl, OpenSSL): a token source from the oauth2-*
 * keys, ca-file and timeout: the secret files read and checked
 * (secret-file rules).  for_authorize: the refresh-token file is to be
 * written, it need not exist yet. */
msv_result app_conn_oauth2_new(const app_conn *cc, int for_authorize, msv_oauth2 **out,
                               msv_error *err);
/* After app_conn_finish() for a connecting caller (send, missived's
 * routes): makes the route's token source and installs it in co. */
msv_result app_conn_oauth2_start(app_conn *cc, msv_error *err);
/* The device URL: oauth2-device-url, else the provider's; NULL: none. */
const char *app_conn_oauth2_device_url(const app_conn *cc);

#endif
