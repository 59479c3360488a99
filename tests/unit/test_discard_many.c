/*
 * test_discard_many.c - hv_dontneed_many(): many MADV_DONTNEED ranges in
 * one call (process_madvise, or one madvise each on older kernels).
 * Discarded pages read zero, every other page keeps its bytes, more
 * ranges than one system call takes still all go, and a bad range stops
 * the call at that range with its error.  No /dev/kvm needed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>

#include "hv.h"

#define PG 4096u
#define NPAGES 6000u   /* 2400 ranges: more than one call's 1024 */

static uint8_t *map_filled(void)
{
	uint8_t *m = mmap(NULL, (size_t)NPAGES * PG, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	assert_true(m != MAP_FAILED);
	for (unsigned i = 0; i < NPAGES; i++)
		memset(m + (size_t)i * PG, (int)(i % 251) + 1, PG);
	return m;
}

/* ranges of 2 pages at every 5th page pair: pages 5k, 5k+1 go */
static bool discarded(unsigned i)
{
	return i % 5 < 2;
}

static void test_many_ranges(void **state)
{
	static struct iovec iov[NPAGES / 5];
	uint8_t *m = map_filled();
	unsigned n = 0, i;
	int err = -1;

	(void)state;
	for (i = 0; i + 1 < NPAGES; i += 5)
		iov[n++] = (struct iovec){ m + (size_t)i * PG, 2 * PG };
	assert_int_equal(hv_dontneed_many(iov, n, &err), n);
	assert_int_equal(err, 0);
	for (i = 0; i < NPAGES; i++) {
		uint8_t want = discarded(i) ? 0 : (uint8_t)(i % 251 + 1);
		const uint8_t *p = m + (size_t)i * PG;

		assert_int_equal(p[0], want);
		assert_int_equal(p[PG - 1], want);
	}
	munmap(m, (size_t)NPAGES * PG);
}

static void test_bad_range_stops_there(void **state)
{
	uint8_t *m = map_filled();
	struct iovec iov[4] = {
		{ m, PG },
		{ m + 2 * PG, PG },
		{ m + 4 * PG + 1, PG },     /* not page-aligned */
		{ m + 6 * PG, PG },
	};
	int err = 0;

	(void)state;
	assert_int_equal(hv_dontneed_many(iov, 4, &err), 2);
	assert_int_equal(err, -EINVAL);
	assert_int_equal(m[0], 0);
	assert_int_equal(m[2 * PG], 0);
	assert_int_equal(m[6 * PG], 7);    /* after the bad one: untouched */
	assert_int_equal(m[1 * PG], 2);
	munmap(m, (size_t)NPAGES * PG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_many_ranges),
		cmocka_unit_test(test_bad_range_stops_there),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
