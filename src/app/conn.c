/* Route and connection settings (conn.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "secret_file.h"

const app_conn_key app_conn_keys[] = {
	{"server", 1}, {"tls", 1}, {"ca-file", 1}, {"insecure", 0}, {"client-cert", 1},
	{"client-key", 1}, {"helo", 1}, {"timeout", 1}, {"deadline", 1}, {"user", 1},
	{"password-file", 1}, {"password-env", 1}, {"oauth-token-file", 1}, {"auth", 1},
	{"allow-plaintext-auth", 0}, {"trace", 0},
	{"oauth2-token-url", 1}, {"oauth2-client-id", 1}, {"oauth2-client-secret-file", 1},
	{"oauth2-refresh-token-file", 1}, {"oauth2-scope", 1}, {"oauth2-service-account-file", 1},
	{"oauth2-subject", 1}, {"oauth2-provider", 1}, {"oauth2-device-url", 1},
	{NULL, 0},
};

void app_conn_init(app_conn *cc)
{
	memset(cc, 0, sizeof(*cc));
	msv_client_options init = MSV_CLIENT_OPTIONS_INIT;
	cc->co = init;
}

/* HOST, HOST:PORT, [V6]:PORT, or a bare IPv6 address. */
static int parse_server(app_conn *cc, const char *s)
{
	const char *host = s, *port = NULL;
	size_t hl;
	if (*s == '[') {
		const char *e = strchr(s, ']');
		if (!e || (e[1] && e[1] != ':'))
			return -1;
		host = s + 1;
		hl = (size_t)(e - host);
		port = e[1] ? e + 2 : NULL;
	} else {
		const char *c = strchr(s, ':');
		if (c && !strchr(c + 1, ':')) {
			hl = (size_t)(c - s);
			port = c + 1;
		} else {
			hl = strlen(s);
		}
	}
	if (!hl || hl >= sizeof(cc->host))
		return -1;
	memcpy(cc->host, host, hl);
	cc->host[hl] = '\0';
	if (port) {
		char *end;
		long p = strtol(port, &end, 10);
		if (!*port || *end || p < 1 || p > 65535)
			return -1;
		cc->co.port = (unsigned)p;
	}
	cc->co.host = cc->host;
	return 0;
}

static int parse_seconds(const char *s, int64_t *ms)
{
	char *end;
	double v = strtod(s, &end);
	if (!*s || *end || !(v > 0) || v > 86400.0 * 365)
		return -1;
	*ms = (int64_t)(v * 1000.0 + 0.5);
	return 0;
}

static int bad(msv_error *err, const char *key, const char *value, const char *expected)
{
	msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE, "bad %s '%s': expected %s", key, value,
	              expected);
	return -1;
}

static int set_tls(app_conn *cc, const char *key, const char *v, msv_error *err)
{
	static const struct { const char *name; msv_tls_mode mode; } modes[] = {
		{"starttls", MSV_TLS_STARTTLS}, {"implicit", MSV_TLS_IMPLICIT}, {"none", MSV_TLS_NONE},
	};
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		if (!strcmp(v, modes[i].name)) {
			cc->co.smtp.tls = modes[i].mode;
			return 1;
		}
	}
	return bad(err, key, v, "starttls, implicit or none");
}

/* The keys that take a time or a choice: parsed and checked.  name is
 * key without a flag's "--"; messages say key as the caller gave it. */
static int set_parsed(app_conn *cc, const char *name, const char *key, const char *v,
                      msv_error *err)
{
	int64_t ms;
	if (!strcmp(name, "server"))
		return parse_server(cc, v) ? bad(err, key, v, "HOST, HOST:PORT or [IPV6]:PORT") : 1;
	if (!strcmp(name, "tls"))
		return set_tls(cc, key, v, err);
	if (!strcmp(name, "timeout")) {
		if (parse_seconds(v, &ms) || ms > INT32_MAX)
			return bad(err, key, v, "seconds > 0");
		cc->co.connect_timeout_ms = cc->co.command_timeout_ms = cc->co.data_timeout_ms = (int)ms;
		return 1;
	}
	if (!strcmp(name, "deadline")) {
		if (parse_seconds(v, &ms))
			return bad(err, key, v, "seconds > 0");
		cc->co.deadline_ms = ms;
		return 1;
	}
	if (!strcmp(name, "auth")) {
		if (msv_smtp_auth_mech_parse(v, &cc->co.smtp.auth) || cc->co.smtp.auth == MSV_AUTH_AUTO)
			return bad(err, key, v, "plain, login, cram-md5, xoauth2 or oauthbearer");
		return 1;
	}
	return 0;
}

int app_conn_set(app_conn *cc, const char *key, const char *v, msv_error *err)
{
	const char *flag = key;
	if (!strncmp(key, "--", 2))
		key += 2;
	/* Values kept as given: where each one goes. */
	const char **str = !strcmp(key, "ca-file")            ? &cc->co.ca_file
	                   : !strcmp(key, "client-cert")      ? &cc->co.client_cert
	                   : !strcmp(key, "client-key")       ? &cc->co.client_key
	                   : !strcmp(key, "helo")             ? &cc->co.smtp.helo
	                   : !strcmp(key, "user")             ? &cc->co.smtp.user
	                   : !strcmp(key, "password-file")    ? &cc->password_file
	                   : !strcmp(key, "password-env")     ? &cc->password_env
	                   : !strcmp(key, "oauth-token-file") ? &cc->token_file
	                                                      : NULL;
	if (str) {
		*str = v;
		return 1;
	}
	/* Switches. */
	int *on = !strcmp(key, "insecure")               ? &cc->co.insecure
	          : !strcmp(key, "allow-plaintext-auth") ? &cc->co.smtp.allow_plaintext_auth
	          : !strcmp(key, "trace")                ? &cc->trace
	                                                 : NULL;
	if (on) {
		*on = 1;
		return 1;
	}
	int taken = app_conn_oauth2_set(cc, flag, v, err);
	if (taken)
		return taken;
	return set_parsed(cc, key, flag, v, err);
}

static int load_secret(app_conn *cc, msv_error *err)
{
	if (cc->password_env) {
		const char *v = getenv(cc->password_env);
		if (!v || !*v) {
			msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
			              "environment variable %s (from password-env) is unset or empty",
			              cc->password_env);
			return -1;
		}
		if (!(cc->secret = msv_strdup(v))) {
			msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "out of memory");
			return -1;
		}
	} else if (cc->password_file) {
		if (app_read_secret_file(cc->password_file, "password file", &cc->secret, err))
			return -1;
	} else if (cc->token_file) {
		if (app_read_secret_file(cc->token_file, "OAuth token file", &cc->secret, err))
			return -1;
		cc->co.smtp.auth_token = 1;
	}
	cc->co.smtp.secret = cc->secret;
	return 0;
}

/* The combination of keys: a sentence naming them, or NULL. */
static const char *combination_error(const app_conn *cc)
{
	int sources = !!cc->password_file + !!cc->password_env + !!cc->token_file +
	              app_conn_oauth2_given(cc);
	if (!cc->co.host)
		return "server is required";
	if (sources > 1)
		return "give only one of password-file, password-env, oauth-token-file, oauth2-*";
	if (cc->co.smtp.user && !sources)
		return "user needs password-file, password-env, oauth-token-file or oauth2-*";
	if (!cc->co.smtp.user && sources)
		return "a password or token needs user";
	if (cc->co.smtp.tls == MSV_TLS_NONE && (cc->co.ca_file || cc->co.insecure || cc->co.client_cert))
		return "TLS settings (ca-file, insecure, client-cert) given with tls none";
	return NULL;
}

msv_result app_conn_finish(app_conn *cc, msv_error *err)
{
	if (cc->finished)
		return MSV_OK;
	const char *why = combination_error(cc);
	if (why)
		return msv_error_set(err, MSV_E_INVALID, MSV_CLASS_USAGE, "%s", why);
	if (!cc->co.port)
		cc->co.port = cc->co.smtp.tls == MSV_TLS_IMPLICIT ? 465 : cc->co.smtp.tls == MSV_TLS_NONE ? 25 : 587;
	snprintf(cc->peer, sizeof(cc->peer), strchr(cc->host, ':') ? "[%s]:%u" : "%s:%u", cc->host,
	         cc->co.port);
	if (load_secret(cc, err))
		return err->code;
	cc->finished = 1;
	return MSV_OK;
}

void app_conn_free(app_conn *cc)
{
	msv_free_secret(cc->secret);
	cc->secret = NULL;
	cc->co.smtp.secret = NULL;
	if (cc->oauth2_src)
		cc->oauth2_free(cc->oauth2_src);
	cc->oauth2_src = NULL;
	cc->co.token = NULL;
	cc->co.token_payload = NULL;
}
