/* libFuzzer target: the address-list parser.  Whatever it accepts must be
 * a list of checked addresses: NUL-separated, each with an '@', no white
 * space or angle brackets left, the count matching. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "missive/mime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	msv_buf out;
	msv_buf_init(&out, 1 << 20);
	msv_error err;
	size_t n = 0;
	if (msv_mime_address_list(&out, &n, (const char *)data, size, &err) == MSV_OK) {
		size_t seen = 0;
		for (size_t i = 0; i < out.len; seen++) {
			const char *a = out.data + i;
			size_t l = strlen(a);
			if (!l || !strchr(a, '@') || strpbrk(a, " \t\r\n<>"))
				abort();
			i += l + 1;
		}
		if (seen != n)
			abort();
	} else if (!err.message[0]) {
		abort();
	}
	msv_buf_free(&out);
	return 0;
}
