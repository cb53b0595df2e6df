/* libFuzzer target: msv_smtp_parse_ehlo on the lines of an EHLO reply.
 * Checks that only known bits come out, that the parse is deterministic
 * and that it never reads past len. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "missive/smtp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define KNOWN_CAPS                                                                      \
	(MSV_CAP_PIPELINING | MSV_CAP_CHUNKING | MSV_CAP_SIZE | MSV_CAP_8BITMIME |          \
	 MSV_CAP_SMTPUTF8 | MSV_CAP_DSN | MSV_CAP_ENHANCEDSTATUSCODES | MSV_CAP_STARTTLS |  \
	 MSV_CAP_AUTH | MSV_CAP_BINARYMIME)
#define KNOWN_MECHS                                                                     \
	((1u << MSV_AUTH_PLAIN) | (1u << MSV_AUTH_LOGIN) | (1u << MSV_AUTH_CRAM_MD5) |      \
	 (1u << MSV_AUTH_XOAUTH2) | (1u << MSV_AUTH_OAUTHBEARER))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = msv_malloc(size ? size : 1);
	if (!buf)
		return 0;
	if (size)
		memcpy(buf, data, size);
	msv_smtp_caps a, b;
	memset(&a, 0, sizeof(a));
	memset(&b, 0xff, sizeof(b)); /* every field is set by the parse */
	msv_result ra = msv_smtp_parse_ehlo(&a, buf, size);
	msv_result rb = msv_smtp_parse_ehlo(&b, buf, size);
	if (ra < 0 || ra >= MSV__RESULT_COUNT)
		abort();
	if (ra == MSV_OK) {
		if (a.flags & ~KNOWN_CAPS)
			abort();
		if (a.auth_mechs & ~KNOWN_MECHS)
			abort();
		if (a.auth_mechs && !(a.flags & MSV_CAP_AUTH))
			abort();
		if (a.size_max && !(a.flags & MSV_CAP_SIZE))
			abort();
	}
	/* same input, same answer, whatever the struct held before */
	if (ra != rb)
		abort();
	if (ra == MSV_OK && (a.flags != b.flags || a.auth_mechs != b.auth_mechs ||
	                     a.size_max != b.size_max))
		abort();
	msv_free(buf);
	return 0;
}
