/*
 * One HTTPS POST with libcurl: certificate and name verification on, the
 * route's CA file, HTTPS only (redirects too), bounded answers, no
 * signals (threads).  The program called curl_global_init() (oauth2.h).
 */
#include <curl/curl.h>
#include <string.h>

#include "oauth2_int.h"

int msv__http_url_ok(const msv__http_opts *h, const char *url)
{
	if (!strncmp(url, "https://", 8))
		return 0;
	if (h->allow_loopback_http &&
	    (!strncmp(url, "http://127.0.0.1:", 17) || !strncmp(url, "http://127.0.0.1/", 17)))
		return 0;
	return -1;
}

static size_t on_body(char *p, size_t size, size_t n, void *payload)
{
	msv_buf *b = payload;
	/* Returning less than given aborts the transfer (too large). */
	return msv_buf_add(b, p, n) ? 0 : n * size;
}

static msv_result transport_error(CURLcode c, const char *url, const char *why, msv_error *err)
{
	msv_result code = c == CURLE_OPERATION_TIMEDOUT        ? MSV_E_TIMEOUT
	                  : c == CURLE_COULDNT_RESOLVE_HOST     ? MSV_E_RESOLVE
	                  : c == CURLE_COULDNT_CONNECT          ? MSV_E_CONNECT
	                  : c == CURLE_PEER_FAILED_VERIFICATION ? MSV_E_TLS_VERIFY
	                  : c == CURLE_WRITE_ERROR              ? MSV_E_TOO_LARGE
	                  : c == CURLE_SSL_CONNECT_ERROR        ? MSV_E_TLS
	                                                        : MSV_E_IO;
	/* The endpoint may be back later; only the operator fixes a bad
	 * certificate, but retrying costs nothing and a bounce would lose mail. */
	return msv_error_set(err, code, MSV_CLASS_TEMPORARY, "token endpoint %s: %s", url,
	                     *why ? why : curl_easy_strerror(c));
}

static CURLcode setup(CURL *c, const msv__http_opts *h, const char *url, const char *form,
                      msv_buf *body, struct curl_slist *hdr, char *why)
{
	int http = strncmp(url, "https://", 8) != 0;
	CURLcode rc = curl_easy_setopt(c, CURLOPT_URL, url);
	if (!rc)
		rc = curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, http ? "http" : "https");
	if (!rc)
		rc = curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "https");
	if (!rc)
		rc = curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (!rc)
		rc = curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	if (!rc)
		rc = curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	if (!rc && h->ca_file)
		rc = curl_easy_setopt(c, CURLOPT_CAINFO, h->ca_file);
	if (!rc)
		rc = curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
		                      (long)(h->connect_timeout_ms ? h->connect_timeout_ms : 10000));
	if (!rc)
		rc = curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(h->timeout_ms ? h->timeout_ms : 30000));
	if (!rc)
		rc = curl_easy_setopt(c, CURLOPT_POSTFIELDS, form);
	if (!rc)
		rc = curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
	if (!rc)
		rc = curl_easy_setopt(c, CURLOPT_USERAGENT, "missive/" MSV_VERSION);
	if (!rc)
		rc = curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	if (!rc)
		rc = curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
	if (!rc)
		rc = curl_easy_setopt(c, CURLOPT_ERRORBUFFER, why);
	return rc;
}

msv_result msv__http_post(const msv__http_opts *h, const char *url, const char *form,
                          long *status, msv_buf *body, msv_error *err)
{
	if (msv__http_url_ok(h, url))
		return msv_error_set(err, MSV_E_CONFIG, MSV_CLASS_CONFIG,
		                     "token endpoint %s: only https:// URLs are allowed", url);
	CURL *c = curl_easy_init();
	struct curl_slist *hdr = curl_slist_append(NULL, "Accept: application/json");
	if (!c || !hdr) {
		curl_easy_cleanup(c);
		curl_slist_free_all(hdr);
		return msv_error_set(err, MSV_E_NOMEM, MSV_CLASS_LOCAL, "cannot start an HTTP request");
	}
	char why[CURL_ERROR_SIZE] = "";
	msv_buf_reset(body);
	CURLcode rc = setup(c, h, url, form, body, hdr, why);
	if (!rc)
		rc = curl_easy_perform(c);
	msv_result r = MSV_OK;
	if (rc)
		r = transport_error(rc, url, why, err);
	else
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	curl_easy_cleanup(c);
	curl_slist_free_all(hdr);
	return r;
}
