/*
 * test_guest_alloc.c - host unit tests for the micro guest's page allocator
 * and regions (guest/palloc.c, guest/region.c), compiled into this program
 * and run over malloc'd fake RAM: a "GPA" here is a host address, which is
 * what the identity-mapped guest sees too.  Pages are never touched by the
 * allocator (only its bitmap), so the fake RAM costs little.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "guest/palloc.c"
#include "guest/region.c"
#include "guest/patterns.h"

#define MIB (1ULL << 20)
#define FAKE_RAM (80 * MIB)

static uint8_t *ram;       /* 2 MiB aligned */
static uint64_t R;         /* (uint64_t)ram */

static int setup(void **state)
{
	(void)state;
	ram = aligned_alloc(GUEST_2M_SIZE, FAKE_RAM);
	if (!ram)
		return -1;
	R = (uint64_t)(uintptr_t)ram;
	guest_alloc_pressure_hook = NULL;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	free(ram);
	guest_alloc_pressure_hook = NULL;
	return 0;
}

/* One range over all fake RAM, heap from 2 MiB. */
static void init_simple(void)
{
	struct hv_memrange r = { R, FAKE_RAM };
	assert_int_equal(palloc_init(&r, 1, R + 2 * MIB), 0);
}

static void test_init_counts(void **state)
{
	(void)state;
	init_simple();
	uint64_t heap_pages = (FAKE_RAM - 2 * MIB) / 4096;
	/* bitmap: 1 bit per page of [heap, end) -> 78 MiB / 4 KiB / 8 bytes
	 * = 2496 bytes = 1 page */
	assert_int_equal(palloc_total_count(), heap_pages);
	assert_int_equal(palloc_free_count(), heap_pages - 1);
	assert_int_equal(palloc_meta_end(), R + 2 * MIB + 4096);
	assert_true(palloc_page_busy(R + 2 * MIB));        /* the bitmap */
	assert_true(palloc_page_busy(R + MIB));            /* below heap */
	assert_false(palloc_page_busy(R + 2 * MIB + 4096));
}

static void test_init_rejects_bad_layouts(void **state)
{
	(void)state;
	struct hv_memrange r = { R, FAKE_RAM };
	assert_int_equal(palloc_init(&r, 0, R + 2 * MIB), -1);
	/* heap_start outside RAM */
	assert_int_equal(palloc_init(&r, 1, R + FAKE_RAM), -1);
	/* unaligned range */
	struct hv_memrange u = { R + 1, FAKE_RAM - 4096 };
	assert_int_equal(palloc_init(&u, 1, R + 2 * MIB), -1);
	/* overlapping ranges */
	struct hv_memrange o[2] = { { R, 40 * MIB }, { R + 30 * MIB, 40 * MIB } };
	assert_int_equal(palloc_init(o, 2, R + 2 * MIB), -1);
	assert_non_null(palloc_error());
}

static void test_pages_exhaust_and_free(void **state)
{
	(void)state;
	init_simple();
	uint64_t n = palloc_free_count();
	uint64_t *got = malloc(n * sizeof(*got));
	assert_non_null(got);
	for (uint64_t i = 0; i < n; i++) {
		got[i] = palloc_alloc_page();
		assert_true(got[i] >= palloc_meta_end());
		assert_true(got[i] < R + FAKE_RAM);
		assert_int_equal(got[i] & 4095, 0);
		/* first-fit over a fresh heap: ascending and distinct */
		if (i)
			assert_true(got[i] > got[i - 1]);
	}
	assert_int_equal(palloc_free_count(), 0);
	assert_int_equal(palloc_alloc_page(), 0);
	assert_int_equal(palloc_alloc_2m(), 0);
	/* free every other page, then all the rest */
	for (uint64_t i = 0; i < n; i += 2)
		assert_int_equal(palloc_free_page(got[i]), 0);
	assert_int_equal(palloc_alloc_contig(2, 1), 0);  /* fragmented */
	assert_int_equal(palloc_alloc_page(), got[0]);   /* lowest first */
	assert_int_equal(palloc_free_page(got[0]), 0);
	for (uint64_t i = 1; i < n; i += 2)
		assert_int_equal(palloc_free_page(got[i]), 0);
	assert_int_equal(palloc_free_count(), n);
	free(got);
}

static void test_bad_frees(void **state)
{
	(void)state;
	init_simple();
	uint64_t p = palloc_alloc_page();
	assert_int_equal(palloc_free_page(p), 0);
	assert_int_equal(palloc_free_page(p), -1);            /* double */
	assert_int_equal(palloc_free_page(R + 2 * MIB), -1);  /* bitmap */
	assert_int_equal(palloc_free_page(R), -1);            /* below */
	assert_int_equal(palloc_free_page(R + FAKE_RAM), -1); /* above */
	assert_int_equal(palloc_free_page(p + 1), -1);        /* unaligned */
	uint64_t b = palloc_alloc_2m();
	assert_int_equal(palloc_free_2m(b + 4096), -1);
	/* a run partly free is refused as a whole */
	assert_int_equal(palloc_free_pages(b, GUEST_2M_PAGES + 1), -1);
	assert_int_equal(palloc_free_2m(b), 0);
}

static void test_2m_blocks(void **state)
{
	(void)state;
	init_simple();
	uint64_t before = palloc_free_count();
	uint64_t b1 = palloc_alloc_2m(), b2 = palloc_alloc_2m();
	/* the first block holds the bitmap: blocks start one further */
	assert_int_equal(b1, R + 4 * MIB);
	assert_int_equal(b2, R + 6 * MIB);
	/* single pages still come from the bitmap's block */
	uint64_t p = palloc_alloc_page();
	assert_int_equal(p, R + 2 * MIB + 4096);
	assert_int_equal(palloc_free_count(), before - 2 * 512 - 1);
	/* aligned contiguous runs */
	uint64_t c = palloc_alloc_contig(3, 4);
	assert_int_equal((c - R) % (4 * 4096), 0);
	assert_int_equal(palloc_free_pages(c, 3), 0);
	assert_int_equal(palloc_free_2m(b1), 0);
	assert_int_equal(palloc_free_2m(b2), 0);
	assert_int_equal(palloc_free_page(p), 0);
	assert_int_equal(palloc_free_count(), before);
	/* bad alignment arguments */
	assert_int_equal(palloc_alloc_contig(1, 3), 0);
	assert_int_equal(palloc_alloc_contig(0, 1), 0);
	/* count every 2 MiB block */
	uint64_t blocks = 0;
	while (palloc_alloc_2m())
		blocks++;
	assert_int_equal(blocks, (FAKE_RAM - 4 * MIB) / (2 * MIB));
	assert_int_equal(palloc_free_count(), 511);
}

/* Free page reporting: only whole free blocks that were handed out since
 * their last claim, never below `keep`, and a claimed block is nobody's. */
static void test_claim_reportable(void **state)
{
	(void)state;
	init_simple();
	uint64_t g[64];
	/* nothing was ever handed out: nothing to report */
	assert_int_equal(palloc_claim_reportable(g, 64, 0), 0);
	uint64_t b1 = palloc_alloc_2m(), b2 = palloc_alloc_2m();
	uint64_t p = palloc_alloc_page();          /* in the bitmap's block */
	uint64_t b3 = palloc_alloc_2m();
	assert_int_equal(palloc_free_2m(b1), 0);
	assert_int_equal(palloc_free_pages(b3 + 4096, 511), 0);  /* keeps 1 */
	/* b1 is free and was used; b2 is in use; b3's block is partly used;
	 * the bitmap's block is never wholly free */
	uint64_t before = palloc_free_count();
	assert_int_equal(palloc_claim_reportable(g, 64, 0), 1);
	assert_int_equal(g[0], b1);
	assert_int_equal(palloc_free_count(), before - 512);
	/* while claimed, no allocation can be handed b1 */
	for (uint64_t x; (x = palloc_try_contig(512, 512));)
		assert_true(x != b1);
	assert_int_equal(palloc_free_2m(b1), 0);
	/* reported once: not again until it is handed out again */
	assert_int_equal(palloc_claim_reportable(g, 64, 0), 0);
	assert_int_equal(palloc_free_2m(b2), 0);
	assert_int_equal(palloc_free_pages(b3, 1), 0);
	assert_int_equal(palloc_free_page(p), 0);
	uint64_t free_now = palloc_free_count();
	/* `keep`: at most what leaves that many pages free */
	assert_int_equal(palloc_claim_reportable(g, 64, free_now - 512), 1);
	assert_int_equal(palloc_free_2m(g[0]), 0);
	assert_int_equal(palloc_claim_reportable(g, 1, 0), 1);   /* max */
	assert_int_equal(palloc_free_2m(g[0]), 0);
}

static void test_ranges_with_hole(void **state)
{
	(void)state;
	/* RAM [0, 30M) and [48M, 80M) relative to R, like the PCI hole */
	struct hv_memrange r[2] = { { R, 30 * MIB }, { R + 48 * MIB, 32 * MIB } };
	assert_int_equal(palloc_init(r, 2, R + 2 * MIB), 0);
	assert_int_equal(palloc_total_count(), (28 + 32) * MIB / 4096);
	uint64_t p;
	while ((p = palloc_alloc_page()) != 0)
		assert_false(p >= R + 30 * MIB && p < R + 48 * MIB);
	assert_int_equal(palloc_free_count(), 0);
}

static uint64_t hook_calls, hook_need;
static uint64_t hook_stash;   /* a page the hook gives back */

static int give_back_hook(uint64_t npages_needed)
{
	hook_calls++;
	hook_need = npages_needed;
	if (!hook_stash)
		return 0;
	assert_int_equal(palloc_free_page(hook_stash), 0);  /* no deadlock */
	hook_stash = 0;
	return 1;
}

static void test_pressure_hook(void **state)
{
	(void)state;
	init_simple();
	hook_calls = 0;
	hook_stash = palloc_alloc_page();
	while (palloc_alloc_page())
		;
	guest_alloc_pressure_hook = give_back_hook;
	/* the previous loop's last call already failed without a hook */
	uint64_t p = palloc_alloc_page();
	assert_int_equal(hook_calls, 1);
	assert_int_equal(hook_need, 1);
	assert_true(p != 0);
	/* nothing left to give: the hook runs once, the allocation fails */
	assert_int_equal(palloc_alloc_page(), 0);
	assert_int_equal(hook_calls, 2);
	assert_int_equal(palloc_try_contig(1, 1), 0);
	assert_int_equal(hook_calls, 2);                 /* try: no hook */
	guest_alloc_pressure_hook = NULL;
}

static void test_region_layout(void **state)
{
	(void)state;
	init_simple();
	uint64_t before = palloc_free_count();
	struct gregion r;
	/* 3.5 MiB: two blocks, the tail of the second given back */
	assert_int_equal(region_alloc(&r, 896), 0);
	assert_true(region_contiguous(&r));
	assert_int_equal(r.npages, 896);
	assert_int_equal(r.ext[0].gpa, R + 4 * MIB);
	assert_int_equal(palloc_free_count(), before - 896);
	assert_int_equal(region_page_gpa(&r, 0), R + 4 * MIB);
	assert_int_equal(region_page_gpa(&r, 895), R + 4 * MIB + 895 * 4096);
	assert_int_equal(region_page_gpa(&r, 896), 0);
	/* matches what host tests compute for a fresh guest */
	assert_int_equal(r.ext[0].gpa,
			 dvm_first_region_gpa(R + 2 * MIB, R + FAKE_RAM) );
	region_free(&r);
	assert_int_equal(palloc_free_count(), before);
	/* too large: fails and leaves nothing allocated */
	assert_int_equal(region_alloc(&r, before + 1), -1);
	assert_int_equal(palloc_free_count(), before);
	/* everything: blocks first, then the bitmap block's leftovers */
	assert_int_equal(region_alloc(&r, before), 0);
	assert_int_equal(palloc_free_count(), 0);
	uint8_t *seen = calloc(FAKE_RAM / 4096, 1);
	assert_non_null(seen);
	for (uint64_t i = 0; i < r.npages; i++) {
		uint64_t g = region_page_gpa(&r, i);
		assert_true(g >= palloc_meta_end() && g < R + FAKE_RAM);
		assert_int_equal(seen[(g - R) / 4096], 0);
		seen[(g - R) / 4096] = 1;
	}
	free(seen);
	region_free(&r);
	assert_int_equal(palloc_free_count(), before);
}

static void test_region_across_hole(void **state)
{
	(void)state;
	struct hv_memrange rr[2] = { { R, 30 * MIB }, { R + 48 * MIB, 32 * MIB } };
	assert_int_equal(palloc_init(rr, 2, R + 2 * MIB), 0);
	struct gregion r;
	assert_int_equal(region_alloc(&r, 40 * 256), 0);   /* 40 MiB */
	assert_false(region_contiguous(&r));
	assert_int_equal(r.ext[0].gpa, R + 4 * MIB);
	assert_int_equal(r.ext[0].npages, 26 * 256);
	assert_int_equal(r.ext[1].gpa, R + 48 * MIB);
	assert_int_equal(region_page_gpa(&r, 26 * 256), R + 48 * MIB);
	region_free(&r);
}

static int stash_hook(uint64_t npages_needed)
{
	(void)npages_needed;
	hook_calls++;
	if (!hook_stash)
		return 0;
	assert_int_equal(palloc_free_2m(hook_stash), 0);
	hook_stash = 0;
	return 1;
}

static void test_region_pressure(void **state)
{
	(void)state;
	init_simple();
	struct gregion r;
	uint64_t all = palloc_free_count();
	hook_stash = palloc_alloc_2m();
	hook_calls = 0;
	guest_alloc_pressure_hook = stash_hook;
	assert_int_equal(region_alloc(&r, all), 0);   /* via the hook */
	assert_int_equal(hook_calls, 1);
	assert_int_equal(palloc_free_count(), 0);
	region_free(&r);
	guest_alloc_pressure_hook = NULL;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_init_counts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_init_rejects_bad_layouts,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_pages_exhaust_and_free,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_frees, setup, teardown),
		cmocka_unit_test_setup_teardown(test_2m_blocks, setup, teardown),
		cmocka_unit_test_setup_teardown(test_claim_reportable, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_ranges_with_hole, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_pressure_hook, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_region_layout, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_region_across_hole, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_region_pressure, setup,
						teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
