/* Server, TLS and authentication flags for the commands that connect
 * (send, bench): getopt results turned into app_conn_set() calls, the
 * same keys as a config file's [route], so a flag means the same
 * everywhere (src/app/conn.h). */
#ifndef MSV_CLI_CONNOPTS_H
#define MSV_CLI_CONNOPTS_H

#include <getopt.h>

#include "conn.h"

enum {
	CLI_C_SERVER = 3000, CLI_C_TLS, CLI_C_CA_FILE, CLI_C_INSECURE, CLI_C_CLIENT_CERT,
	CLI_C_CLIENT_KEY, CLI_C_HELO, CLI_C_TIMEOUT, CLI_C_DEADLINE, CLI_C_USER,
	CLI_C_PASSWORD_FILE, CLI_C_PASSWORD_ENV, CLI_C_OAUTH_TOKEN_FILE, CLI_C_AUTH,
	CLI_C_ALLOW_PLAINTEXT_AUTH, CLI_C_TRACE,
	CLI_C_OAUTH2_TOKEN_URL, CLI_C_OAUTH2_CLIENT_ID, CLI_C_OAUTH2_CLIENT_SECRET_FILE,
	CLI_C_OAUTH2_REFRESH_TOKEN_FILE, CLI_C_OAUTH2_SCOPE, CLI_C_OAUTH2_SERVICE_ACCOUNT_FILE,
	CLI_C_OAUTH2_SUBJECT, CLI_C_OAUTH2_PROVIDER, CLI_C_OAUTH2_DEVICE_URL,
};

#define CLI_CONN_LONGOPTS                                                          \
	{"server", required_argument, NULL, CLI_C_SERVER},                             \
	{"tls", required_argument, NULL, CLI_C_TLS},                                   \
	{"ca-file", required_argument, NULL, CLI_C_CA_FILE},                           \
	{"insecure", no_argument, NULL, CLI_C_INSECURE},                               \
	{"client-cert", required_argument, NULL, CLI_C_CLIENT_CERT},                   \
	{"client-key", required_argument, NULL, CLI_C_CLIENT_KEY},                     \
	{"helo", required_argument, NULL, CLI_C_HELO},                                 \
	{"timeout", required_argument, NULL, CLI_C_TIMEOUT},                           \
	{"deadline", required_argument, NULL, CLI_C_DEADLINE},                         \
	{"user", required_argument, NULL, CLI_C_USER},                                 \
	{"password-file", required_argument, NULL, CLI_C_PASSWORD_FILE},               \
	{"password-env", required_argument, NULL, CLI_C_PASSWORD_ENV},                 \
	{"oauth-token-file", required_argument, NULL, CLI_C_OAUTH_TOKEN_FILE},         \
	{"auth", required_argument, NULL, CLI_C_AUTH},                                 \
	{"allow-plaintext-auth", no_argument, NULL, CLI_C_ALLOW_PLAINTEXT_AUTH},       \
	{"trace", no_argument, NULL, CLI_C_TRACE},                                     \
	CLI_OAUTH2_LONGOPTS

/* The oauth2-* flags alone, for `missive oauth2` (cmd_oauth2.c). */
#define CLI_OAUTH2_LONGOPTS                                                        \
	{"oauth2-token-url", required_argument, NULL, CLI_C_OAUTH2_TOKEN_URL},         \
	{"oauth2-client-id", required_argument, NULL, CLI_C_OAUTH2_CLIENT_ID},         \
	{"oauth2-client-secret-file", required_argument, NULL, CLI_C_OAUTH2_CLIENT_SECRET_FILE}, \
	{"oauth2-refresh-token-file", required_argument, NULL, CLI_C_OAUTH2_REFRESH_TOKEN_FILE}, \
	{"oauth2-scope", required_argument, NULL, CLI_C_OAUTH2_SCOPE},                 \
	{"oauth2-service-account-file", required_argument, NULL, CLI_C_OAUTH2_SERVICE_ACCOUNT_FILE}, \
	{"oauth2-subject", required_argument, NULL, CLI_C_OAUTH2_SUBJECT},             \
	{"oauth2-provider", required_argument, NULL, CLI_C_OAUTH2_PROVIDER},           \
	{"oauth2-device-url", required_argument, NULL, CLI_C_OAUTH2_DEVICE_URL}

typedef app_conn cli_conn;

#define cli_conn_init app_conn_init
#define cli_conn_free app_conn_free
/* Handles one getopt result: 1 taken, 0 not a connection flag, or an EX_*
 * code (> 1) after printing why; cmd names the command in messages. */
int cli_conn_opt(cli_conn *cc, int c, const char *arg, const char *cmd);
/* After parsing: app_conn_finish(), then the --insecure warning and the
 * --trace printer.  0 or an EX_* code after printing why. */
int cli_conn_finish(cli_conn *cc, const char *cmd);

#endif
