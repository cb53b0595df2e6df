/*
 * core_int.h - helpers shared by the library layers, not part of the API.
 */
#ifndef MSV_CORE_INT_H
#define MSV_CORE_INT_H

/*
 * Option structs grow only by appending fields, and each growth bumps the
 * struct's *_VERSION (include/missive/core.h, OPTION STRUCTS).  A program
 * built against an older header passes a smaller version and must keep
 * working: refusing it would break every caller at every bump.  0 is a
 * struct nobody initialized; a version above ours comes from a newer
 * header whose extra fields we cannot honour.  When a struct grows, the
 * code that copies it must copy only the fields the caller's version had
 * and take defaults for the rest.
 */
static inline int msv__version_ok(unsigned version, unsigned current)
{
	return version > 0 && version <= current;
}

#include <stddef.h>

/* n random bytes from the kernel's generator (getrandom(2), interrupted
 * calls retried): 0, or -1 with errno set.  Queue IDs, MIME boundaries
 * and Message-IDs need uniqueness, not secrecy; this spares each process
 * OpenSSL's DRBG setup. */
int msv__random_bytes(void *buf, size_t n);

#endif
