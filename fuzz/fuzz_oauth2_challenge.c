/* libFuzzer target: the SMTP server's OAuth error challenge (RFC 7628
 * 3.2.2: base64 of a JSON status), decoded for the error message.  The
 * text is always NUL-terminated and printable, whatever the server sent. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/smtp/sasl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char out[256];
	memset(out, 'x', sizeof(out));
	int rc = msv__sasl_oauth_status((const char *)data, size, out, sizeof(out));
	if (rc != 0 && rc != -1)
		abort();
	if (!memchr(out, '\0', sizeof(out)))
		abort();
	for (const char *p = out; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			abort();
	/* The engine's state machine around it: the same bytes as a 334. */
	msv_sasl x = {.mech = MSV_AUTH_OAUTHBEARER, .user = "u", .secret = "t"};
	msv_buf resp;
	msv_buf_init(&resp, 1024);
	if (msv__sasl_step(&x, (const char *)data, size, &resp) != MSV_OK || !x.token_refused ||
	    resp.len != 4 || memcmp(resp.data, "AQ==", 4))
		abort();
	msv_buf_free(&resp);
	return 0;
}
