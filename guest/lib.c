/*
 * lib.c - the few libc pieces the micro guest needs.
 *
 * Owns: memset/memcpy/memmove/memcmp (GCC may emit calls to them even in
 * freestanding code, e.g. for struct copies), strlen, string compare and
 * integer parsing.  The memory functions use `rep stos/movs`, which are
 * fast on every CPU this runs on and cannot be turned back into calls to
 * themselves by the optimizer (a plain C loop could).
 */
#include "guest.h"

void *memset(void *s, int c, size_t n)
{
	void *d = s;
	__asm__ volatile("rep stosb"
			 : "+D"(d), "+c"(n)
			 : "a"(c)
			 : "memory");
	return s;
}

void *memcpy(void *restrict d, const void *restrict s, size_t n)
{
	void *dd = d;
	__asm__ volatile("rep movsb"
			 : "+D"(dd), "+S"(s), "+c"(n)
			 :
			 : "memory");
	return d;
}

void *memmove(void *d, const void *s, size_t n)
{
	if ((uintptr_t)d - (uintptr_t)s >= n)
		return memcpy(d, s, n);      /* no harmful overlap forward */
	/* d overlaps the tail of s: copy backwards, then restore DF=0 (the
	 * ABI requires it clear at every call boundary). */
	void *de = (char *)d + n - 1;
	const void *se = (const char *)s + n - 1;
	__asm__ volatile("std\n\trep movsb\n\tcld"
			 : "+D"(de), "+S"(se), "+c"(n)
			 :
			 : "memory");
	return d;
}

/* The optimize attribute keeps GCC from recognising this loop as memcmp
 * and emitting a call to itself. */
__attribute__((optimize("no-tree-loop-distribute-patterns")))
int memcmp(const void *a, const void *b, size_t n)
{
	const unsigned char *x = a, *y = b;
	for (size_t i = 0; i < n; i++)
		if (x[i] != y[i])
			return x[i] < y[i] ? -1 : 1;
	return 0;
}

__attribute__((optimize("no-tree-loop-distribute-patterns")))
size_t strlen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

int gstrcmp(const char *a, const char *b)
{
	while (*a && *a == *b) {
		a++;
		b++;
	}
	return (unsigned char)*a - (unsigned char)*b;
}

bool parse_i64(const char *s, int64_t *out)
{
	bool neg = false;
	uint64_t v = 0, base = 10;
	if (*s == '-') {
		neg = true;
		s++;
	}
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	if (!*s)
		return false;
	for (; *s; s++) {
		unsigned d;
		if (*s >= '0' && *s <= '9')
			d = (unsigned)(*s - '0');
		else if (base == 16 && *s >= 'a' && *s <= 'f')
			d = (unsigned)(*s - 'a' + 10);
		else if (base == 16 && *s >= 'A' && *s <= 'F')
			d = (unsigned)(*s - 'A' + 10);
		else
			return false;
		/* Hex may use all 64 bits (seeds); decimal must fit int64. */
		uint64_t lim = base == 16 ? ~0ULL : (uint64_t)INT64_MAX;
		if (v > (lim - d) / base)
			return false;
		v = v * base + d;
	}
	if (neg) {
		if (v > (uint64_t)INT64_MAX)
			return false;
		*out = -(int64_t)v;
	} else {
		*out = (int64_t)v;
	}
	return true;
}
