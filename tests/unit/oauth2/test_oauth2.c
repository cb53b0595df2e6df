/*
 * The OAuth2 token source (src/oauth2): answer parsing, the JWT bearer
 * assertion checked with the public key, the cache against a fake
 * clock, one refresh for many waiting threads, the refresh-token
 * rotation written back atomically, and the error classes.  The token
 * endpoint is a small HTTP server on 127.0.0.1 in a thread (plain http,
 * allowed for loopback in tests only).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <dirent.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oauth2/oauth2_int.h"

/* ---------------------------------------------------------------- server */

typedef struct server {
	int fd;
	unsigned port;
	pthread_t th;
	pthread_mutex_t lock;
	int requests;
	char last_body[8192];
	int status;          /* what to answer */
	char answer[4096];
	int delay_ms;        /* before answering */
	int stop;
} server;

static void read_request(int c, server *s)
{
	char buf[16384];
	size_t len = 0;
	ssize_t n;
	char *end = NULL;
	while (len < sizeof(buf) - 1 && (n = read(c, buf + len, sizeof(buf) - 1 - len)) > 0) {
		len += (size_t)n;
		buf[len] = '\0';
		if ((end = strstr(buf, "\r\n\r\n"))) {
			char *cl = strstr(buf, "Content-Length:"); /* as curl writes it */
			size_t want = cl ? (size_t)atol(cl + 15) : 0;
			if (len >= (size_t)(end + 4 - buf) + want)
				break;
		}
	}
	pthread_mutex_lock(&s->lock);
	s->requests++;
	snprintf(s->last_body, sizeof(s->last_body), "%s", end ? end + 4 : "");
	pthread_mutex_unlock(&s->lock);
}

static void *serve(void *arg)
{
	server *s = arg;
	for (;;) {
		int c = accept(s->fd, NULL, NULL);
		if (c < 0 || s->stop) {
			if (c >= 0)
				close(c);
			return NULL;
		}
		read_request(c, s);
		if (s->delay_ms)
			usleep((useconds_t)s->delay_ms * 1000);
		char head[256];
		pthread_mutex_lock(&s->lock);
		int hl = snprintf(head, sizeof(head),
		                  "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
		                  "Content-Length: %zu\r\nConnection: close\r\n\r\n",
		                  s->status, strlen(s->answer));
		ssize_t w = write(c, head, (size_t)hl);
		w = write(c, s->answer, strlen(s->answer));
		(void)w;
		pthread_mutex_unlock(&s->lock);
		close(c);
	}
}

static void server_start(server *s)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	s->status = 200;
	s->fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(s->fd, 64), 0);
	getsockname(s->fd, (struct sockaddr *)&a, &al);
	s->port = ntohs(a.sin_port);
	pthread_create(&s->th, NULL, serve, s);
}

static void server_answer(server *s, int status, const char *json)
{
	pthread_mutex_lock(&s->lock);
	s->status = status;
	snprintf(s->answer, sizeof(s->answer), "%s", json);
	pthread_mutex_unlock(&s->lock);
}

static void server_stop(server *s)
{
	s->stop = 1;
	int c = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	                        .sin_port = htons((uint16_t)s->port)};
	if (connect(c, (struct sockaddr *)&a, sizeof(a)) == 0)
		close(c);
	close(c);
	pthread_join(s->th, NULL);
	close(s->fd);
	pthread_mutex_destroy(&s->lock);
}

/* ---------------------------------------------------------------- helpers */

static int64_t fake_now;
static int64_t fake_clock(void *payload)
{
	(void)payload;
	return fake_now;
}

static char tmpdir[256];

static void make_tmpdir(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/msv-oauth2-test.XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	chmod(path, 0600);
}

static void read_file(const char *path, char *out, size_t cap)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	size_t n = fread(out, 1, cap - 1, f);
	out[n] = '\0';
	fclose(f);
}

/* Entries of tmpdir besides "." and "..". */
static int dir_entries(void)
{
	DIR *d = opendir(tmpdir);
	int n = 0;
	for (struct dirent *e; (e = readdir(d));)
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return n;
}

static void url_of(const server *s, char *url, size_t n)
{
	snprintf(url, n, "http://127.0.0.1:%u/token", s->port);
}

static msv_oauth2 *refresh_source(const server *s, const char *rtfile, char *url, size_t n)
{
	url_of(s, url, n);
	msv_oauth2_options o = MSV_OAUTH2_OPTIONS_INIT;
	o.token_url = url;
	o.client_id = "cid";
	o.client_secret = "client-secret-123";
	o.refresh_token_file = rtfile;
	o.scope = "https://mail.google.com/";
	o.allow_loopback_http = 1;
	o.clock = fake_clock;
	msv_oauth2 *src = NULL;
	msv_error err;
	assert_int_equal(msv_oauth2_new(&src, &o, &err), MSV_OK);
	return src;
}

/* ---------------------------------------------------------------- parsing */

static void parse_answers(void **state)
{
	(void)state;
	msv__oauth2_resp r;
	msv_error err;
	const char *ok = "{\"access_token\":\"at-1\",\"token_type\":\"Bearer\",\"expires_in\":\"3599\","
	                 "\"scope\":\"s1 s2\",\"refresh_token\":\"rt-2\",\"extra\":[1]}";
	assert_int_equal(msv__oauth2_parse(ok, strlen(ok), &r, &err), MSV_OK);
	assert_string_equal(r.access_token, "at-1");
	assert_string_equal(r.refresh_token, "rt-2");
	assert_int_equal(r.expires_in, 3599); /* quoted numbers too */
	assert_string_equal(r.scope, "s1 s2");
	assert_int_equal(r.interval, -1);
	msv__oauth2_resp_free(&r);

	const char *bad[] = {"[]", "{\"access_token\":5}", "{\"expires_in\":-1}",
	                     "{\"expires_in\":\"soon\"}", "{", ""};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_not_equal(msv__oauth2_parse(bad[i], strlen(bad[i]), &r, &err), MSV_OK);
		assert_int_equal(err.cls, MSV_CLASS_TEMPORARY);
	}
	/* Larger than 64 KiB: refused before parsing. */
	size_t big = MSV_OAUTH2_RESP_MAX + 1;
	char *huge = malloc(big);
	memset(huge, ' ', big);
	huge[0] = '{';
	huge[big - 1] = '}';
	assert_int_equal(msv__oauth2_parse(huge, big, &r, &err), MSV_E_TOO_LARGE);
	free(huge);

	/* An access token that would break the SASL framing is refused. */
	const char *ctl = "{\"access_token\":\"a\\u0001auth=x\"}";
	assert_int_equal(msv__oauth2_parse(ctl, strlen(ctl), &r, &err), MSV_OK);
	msv__fetched f;
	assert_int_equal(msv__oauth2_take(&r, &f, &err), MSV_E_PROTOCOL);
	msv__oauth2_resp_free(&r);
}

static void form_encoding(void **state)
{
	(void)state;
	msv_buf b;
	msv_buf_init(&b, 1024);
	assert_int_equal(msv__form_add(&b, "scope", "https://mail.google.com/ a+b"), MSV_OK);
	assert_int_equal(msv__form_add(&b, "x", "~-._"), MSV_OK);
	assert_string_equal(b.data, "scope=https%3A%2F%2Fmail.google.com%2F%20a%2Bb&x=~-._");
	msv_buf_free(&b);
}

/* ---------------------------------------------------------------- JWT */

static char *b64url_decode(const char *s, size_t n, size_t *outlen)
{
	char *t = calloc(1, n + 4);
	for (size_t i = 0; i < n; i++)
		t[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
	while (n % 4)
		t[n++] = '=';
	msv_buf b;
	msv_buf_init(&b, 1 << 16);
	assert_int_equal(msv_base64_decode(&b, t, n), MSV_OK);
	free(t);
	*outlen = b.len;
	return b.data;
}

static void jwt_verifies(void **state)
{
	(void)state;
	EVP_PKEY *k = EVP_RSA_gen(2048);
	assert_non_null(k);
	BIO *bio = BIO_new(BIO_s_mem());
	PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL);
	char *pem;
	long pl = BIO_get_mem_data(bio, &pem);
	cJSON *sa = cJSON_CreateObject();
	/* The BIO's memory is not NUL-terminated: copy it by its length. */
	char *pemz = calloc(1, (size_t)pl + 1);
	assert_non_null(pemz);
	memcpy(pemz, pem, (size_t)pl);
	cJSON_AddStringToObject(sa, "client_email", "svc@proj.iam.gserviceaccount.com");
	cJSON_AddStringToObject(sa, "private_key", pemz);
	cJSON_AddStringToObject(sa, "token_uri", "https://oauth2.example/token");
	char *json = cJSON_PrintUnformatted(sa);

	msv__oauth2_sa s;
	msv_error err;
	assert_int_equal(msv__oauth2_sa_load(&s, json, strlen(json), &err), MSV_OK);
	msv_buf jwt;
	msv_buf_init(&jwt, 1 << 16);
	assert_int_equal(msv__oauth2_jwt(&s, "https://oauth2.example/token", "https://mail.google.com/",
	                                 "user@example.org", 1764950400, &jwt),
	                 MSV_OK);
	const char *d1 = strchr(jwt.data, '.'), *d2 = strrchr(jwt.data, '.');
	assert_true(d1 && d2 && d1 != d2);
	assert_null(strpbrk(jwt.data, "+/="));
	size_t hl, cl, sl;
	char *head = b64url_decode(jwt.data, (size_t)(d1 - jwt.data), &hl);
	char *claims = b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &cl);
	char *sig = b64url_decode(d2 + 1, strlen(d2 + 1), &sl);
	assert_string_equal(head, "{\"alg\":\"RS256\",\"typ\":\"JWT\"}");
	cJSON *c = cJSON_Parse(claims);
	assert_string_equal(cJSON_GetObjectItem(c, "iss")->valuestring, "svc@proj.iam.gserviceaccount.com");
	assert_string_equal(cJSON_GetObjectItem(c, "sub")->valuestring, "user@example.org");
	assert_string_equal(cJSON_GetObjectItem(c, "aud")->valuestring, "https://oauth2.example/token");
	assert_string_equal(cJSON_GetObjectItem(c, "scope")->valuestring, "https://mail.google.com/");
	assert_int_equal((int64_t)cJSON_GetObjectItem(c, "iat")->valuedouble, 1764950400);
	assert_int_equal((int64_t)cJSON_GetObjectItem(c, "exp")->valuedouble, 1764950400 + 3600);
	assert_non_null(strstr(claims, "\"iat\":1764950400")); /* an integer, not 1.76e9 */
	/* RS256 over "header.claims", checked with the public key. */
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k), 1);
	assert_int_equal(EVP_DigestVerify(md, (unsigned char *)sig, sl, (unsigned char *)jwt.data,
	                                  (size_t)(d2 - jwt.data)),
	                 1);
	EVP_MD_CTX_free(md);
	/* Not an RSA key: refused when loaded, as a configuration error. */
	const char *nokey = "{\"client_email\":\"a\",\"private_key\":\"junk\"}";
	msv__oauth2_sa bad;
	assert_int_equal(msv__oauth2_sa_load(&bad, nokey, strlen(nokey), &err), MSV_E_CONFIG);

	cJSON_Delete(c);
	free(head);
	free(claims);
	free(sig);
	msv_buf_free(&jwt);
	msv__oauth2_sa_free(&s);
	cJSON_free(json);
	cJSON_Delete(sa);
	free(pemz);
	BIO_free(bio);
	EVP_PKEY_free(k);
}

/* ---------------------------------------------------------------- the cache */

static void cache_until_expiry(void **state)
{
	(void)state;
	server s;
	server_start(&s);
	make_tmpdir();
	char rt[300], url[64];
	snprintf(rt, sizeof(rt), "%s/rt", tmpdir);
	write_file(rt, "rt-1\n");
	fake_now = 1000000;
	msv_oauth2 *src = refresh_source(&s, rt, url, sizeof(url));
	server_answer(&s, 200, "{\"access_token\":\"at-1\",\"expires_in\":100,\"scope\":\"sc\"}");
	msv_buf t;
	msv_buf_init(&t, 4096);
	msv_oauth2_info info;
	msv_error err;
	assert_int_equal(msv_oauth2_token(src, 0, &t, &info, &err), MSV_OK);
	assert_string_equal(t.data, "at-1");
	assert_true(info.refreshed);
	assert_string_equal(info.scope, "sc");
	assert_non_null(strstr(s.last_body, "grant_type=refresh_token"));
	assert_non_null(strstr(s.last_body, "refresh_token=rt-1"));
	assert_non_null(strstr(s.last_body, "client_secret=client-secret-123"));
	/* Cached: 100 s, less a margin of a tenth of it (short tokens). */
	server_answer(&s, 200, "{\"access_token\":\"at-2\",\"expires_in\":100}");
	fake_now += 89000;
	msv_buf_reset(&t);
	assert_int_equal(msv_oauth2_token(src, 0, &t, &info, &err), MSV_OK);
	assert_string_equal(t.data, "at-1");
	assert_false(info.refreshed);
	assert_int_equal(s.requests, 1);
	fake_now += 1000; /* 90 s: inside the margin */
	msv_buf_reset(&t);
	assert_int_equal(msv_oauth2_token(src, 0, &t, &info, &err), MSV_OK);
	assert_string_equal(t.data, "at-2");
	assert_int_equal(s.requests, 2);
	/* force: the server refused the token, ask again at once. */
	msv_buf_reset(&t);
	assert_int_equal(msv_oauth2_token(src, 1, &t, NULL, &err), MSV_OK);
	assert_int_equal(s.requests, 3);
	/* The refresh token file was not touched (no rotation). */
	char buf[64];
	read_file(rt, buf, sizeof(buf));
	assert_string_equal(buf, "rt-1\n");
	msv_buf_free_secret(&t);
	msv_oauth2_free(src);
	unlink(rt);
	rmdir(tmpdir);
	server_stop(&s);
}

typedef struct caller {
	msv_oauth2 *src;
	msv_result r;
	char token[64];
} caller;

static void *call_token(void *arg)
{
	caller *c = arg;
	msv_buf t;
	msv_buf_init(&t, 4096);
	msv_error err;
	c->r = msv_oauth2_token(c->src, 0, &t, NULL, &err);
	if (!c->r)
		snprintf(c->token, sizeof(c->token), "%s", t.data);
	msv_buf_free_secret(&t);
	return NULL;
}

/* Sixteen connections need a token at once: one request, one answer
 * for all, the rotated refresh token written back once. */
static void one_refresh_for_many(void **state)
{
	(void)state;
	server s;
	server_start(&s);
	make_tmpdir();
	char rt[300], url[64];
	snprintf(rt, sizeof(rt), "%s/rt", tmpdir);
	write_file(rt, "rt-old\n");
	fake_now = 5000;
	msv_oauth2 *src = refresh_source(&s, rt, url, sizeof(url));
	server_answer(&s, 200, "{\"access_token\":\"at-x\",\"expires_in\":3600,\"refresh_token\":\"rt-new\"}");
	s.delay_ms = 300;
	enum { N = 16 };
	pthread_t th[N];
	caller c[N];
	for (int i = 0; i < N; i++) {
		c[i] = (caller){.src = src};
		pthread_create(&th[i], NULL, call_token, &c[i]);
	}
	for (int i = 0; i < N; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(c[i].r, MSV_OK);
		assert_string_equal(c[i].token, "at-x");
	}
	assert_int_equal(s.requests, 1);
	char buf[64];
	read_file(rt, buf, sizeof(buf));
	assert_string_equal(buf, "rt-new\n");
	struct stat st;
	assert_int_equal(stat(rt, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(dir_entries(), 1); /* no temporary file left */
	/* The next refresh uses the new token. */
	fake_now += 3600 * 1000;
	msv_buf t;
	msv_buf_init(&t, 4096);
	msv_error err;
	s.delay_ms = 0;
	assert_int_equal(msv_oauth2_token(src, 0, &t, NULL, &err), MSV_OK);
	assert_non_null(strstr(s.last_body, "refresh_token=rt-new"));
	msv_buf_free_secret(&t);
	msv_oauth2_free(src);
	unlink(rt);
	rmdir(tmpdir);
	server_stop(&s);
}

/* Refused: permanent, the provider's words without any secret; down:
 * temporary; the waiting callers get the same failure. */
static void errors_and_redaction(void **state)
{
	(void)state;
	server s;
	server_start(&s);
	make_tmpdir();
	char rt[300], url[64];
	snprintf(rt, sizeof(rt), "%s/rt", tmpdir);
	write_file(rt, "rt-secret-value\n");
	fake_now = 1;
	msv_oauth2 *src = refresh_source(&s, rt, url, sizeof(url));
	server_answer(&s, 400, "{\"error\":\"invalid_grant\",\"error_description\":"
	                       "\"Token rt-secret-value has been revoked; client-secret-123 too\"}");
	msv_buf t;
	msv_buf_init(&t, 4096);
	msv_error err;
	assert_int_equal(msv_oauth2_token(src, 0, &t, NULL, &err), MSV_E_AUTH_FAILED);
	assert_int_equal(err.cls, MSV_CLASS_PERMANENT);
	assert_non_null(strstr(err.message, "invalid_grant"));
	assert_non_null(strstr(err.server_text, "invalid_grant: Token [redacted] has been revoked"));
	assert_null(strstr(err.message, "rt-secret-value"));
	assert_null(strstr(err.message, "client-secret-123"));
	assert_null(strstr(err.server_text, "client-secret-123"));

	server_answer(&s, 503, "<html>down</html>");
	assert_int_equal(msv_oauth2_token(src, 0, &t, NULL, &err), MSV_E_BUSY);
	assert_int_equal(err.cls, MSV_CLASS_TEMPORARY);
	msv_oauth2_free(src);

	/* Nobody listening. */
	server_stop(&s);
	src = refresh_source(&s, rt, url, sizeof(url));
	assert_int_not_equal(msv_oauth2_token(src, 0, &t, NULL, &err), MSV_OK);
	assert_int_equal(err.cls, MSV_CLASS_TEMPORARY);
	msv_oauth2_free(src);
	msv_buf_free_secret(&t);
	unlink(rt);
	rmdir(tmpdir);
}

static void settings_checked(void **state)
{
	(void)state;
	msv_oauth2_options o = MSV_OAUTH2_OPTIONS_INIT;
	msv_oauth2 *src = NULL;
	msv_error err;
	/* nothing to pick a grant from */
	o.token_url = "https://x.example/token";
	assert_int_equal(msv_oauth2_new(&src, &o, &err), MSV_E_CONFIG);
	/* client credentials over http: refused */
	o.client_id = "id";
	o.client_secret = "s3cret";
	o.token_url = "http://x.example/token";
	assert_int_equal(msv_oauth2_new(&src, &o, &err), MSV_E_CONFIG);
	o.token_url = "https://x.example/token";
	assert_int_equal(msv_oauth2_new(&src, &o, &err), MSV_OK);
	assert_int_equal(msv_oauth2_grant_get(src), MSV_OAUTH2_CLIENT_CREDENTIALS);
	msv_oauth2_free(src);
	msv_oauth2_preset p;
	assert_int_equal(msv_oauth2_preset_get("microsoft", &p), 0);
	assert_string_equal(p.scope, "https://outlook.office.com/SMTP.Send offline_access");
	assert_int_equal(msv_oauth2_preset_get("google", &p), 0);
	assert_string_equal(p.scope, "https://mail.google.com/");
	assert_int_equal(msv_oauth2_preset_get("yahoo", &p), -1);
	o.version = MSV_OAUTH2_OPTIONS_VERSION + 1;
	assert_int_equal(msv_oauth2_new(&src, &o, &err), MSV_E_INVALID);
}

static void write_back_atomic(void **state)
{
	(void)state;
	make_tmpdir();
	char p[300];
	snprintf(p, sizeof(p), "%s/token", tmpdir);
	write_file(p, "old\n");
	chmod(p, 0644); /* the new file is 0600 whatever the old one was */
	msv_error err;
	assert_int_equal(msv__oauth2_write_secret(p, "new-token", &err), MSV_OK);
	char buf[64];
	read_file(p, buf, sizeof(buf));
	assert_string_equal(buf, "new-token\n");
	struct stat st;
	stat(p, &st);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(dir_entries(), 1);
	char *got = NULL;
	assert_int_equal(msv__oauth2_read_secret(p, &got, &err), MSV_OK);
	assert_string_equal(got, "new-token");
	msv_free_secret(got);
	/* A directory that cannot take the temporary file: the old file stays. */
	char q[320];
	snprintf(q, sizeof(q), "%s/missing/token", tmpdir);
	assert_int_equal(msv__oauth2_write_secret(q, "x", &err), MSV_E_CANT_CREATE);
	unlink(p);
	rmdir(tmpdir);
}

int main(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parse_answers),
		cmocka_unit_test(form_encoding),
		cmocka_unit_test(jwt_verifies),
		cmocka_unit_test(cache_until_expiry),
		cmocka_unit_test(one_refresh_for_many),
		cmocka_unit_test(errors_and_redaction),
		cmocka_unit_test(settings_checked),
		cmocka_unit_test(write_back_atomic),
	};
	int rc = cmocka_run_group_tests_name("oauth2", tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}
