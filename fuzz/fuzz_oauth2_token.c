/* libFuzzer target: a token endpoint's answer (RFC 6749 5.1/5.2, RFC 8628
 * 3.2), as the token source parses it.  Accepted or not, nothing leaks
 * and the fields keep their contracts: access_token taken only when it
 * has no control character that would break the SASL framing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/oauth2/oauth2_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	msv__oauth2_resp r;
	msv_error err;
	err.message[0] = '\0';
	if (msv__oauth2_parse((const char *)data, size, &r, &err) != MSV_OK) {
		if (!err.message[0])
			abort();
		return 0;
	}
	if (r.expires_in < -1 || r.interval < -1 || r.expires_in > 86400LL * 366)
		abort();
	msv__fetched f;
	if (msv__oauth2_take(&r, &f, &err) == MSV_OK) {
		if (!f.token || !*f.token || strpbrk(f.token, "\001\r\n") || f.expires_in_s < 0)
			abort();
		msv__fetched_free(&f);
	} else if (r.access_token && *r.access_token && !strpbrk(r.access_token, "\001\r\n")) {
		abort(); /* a usable token was refused */
	}
	msv__oauth2_resp_free(&r);
	return 0;
}
