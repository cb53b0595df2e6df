/* Random bytes from the kernel (core_int.h). */
#include <errno.h>
#include <sys/random.h>

#include "core/core_int.h"

int msv__random_bytes(void *buf, size_t n)
{
	unsigned char *p = buf;
	while (n) {
		ssize_t got = getrandom(p, n, 0);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return -1;
		p += got;
		n -= (size_t)got;
	}
	return 0;
}
