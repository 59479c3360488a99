/*
 * size.h - parse_size(), the one size syntax of every config key and CLI
 * argument ("512M", "2GiB", "4096"), shared by cli/ and policy/.
 *
 * Header-only and libc-only so that any folder may include it without a
 * library to link or a dependency between subsystems (policy/ must not
 * include cli/).
 */
#ifndef DENSEVM_UTIL_SIZE_H
#define DENSEVM_UTIL_SIZE_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Bytes, or K/M/G/T (KiB units) with an optional "iB" or "B" after it.
 * A digit first: no sign, no space.  0, or -EINVAL for anything else,
 * including a value that does not fit in 64 bits. */
static inline int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned shift = 0;
	unsigned long long v;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	case 't': case 'T': shift = 40; end++; break;
	}
	if (shift && (!strcmp(end, "iB") || !strcmp(end, "B")))
		end += strlen(end);
	if (*end || (shift && v > (~0ull >> shift)))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}

#endif
