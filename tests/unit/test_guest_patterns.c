/*
 * test_guest_patterns.c - host unit tests for guest/patterns.h, the pure
 * functions that decide what the micro guest writes where.  Host tests of
 * hv-core, ksm and dirty logging rely on computing the same values, so
 * these pin their properties: the permutation is a bijection, dirtyset
 * picks K distinct in-range pages, patterns change with every pass,
 * fill classes have exact ratios, identical content ignores the seed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "guest/patterns.h"

static void test_splitmix64_reference(void **state)
{
	(void)state;
	/* The published first outputs of splitmix64 seeded with 0. */
	uint64_t s = 0;
	assert_int_equal(dvm_splitmix64(&s), 0xe220a8397b1dcdafULL);
	assert_int_equal(dvm_splitmix64(&s), 0x6e789e6aa1b965f4ULL);
	assert_int_equal(dvm_splitmix64(&s), 0x06c45d188009454fULL);
}

static void check_bijection(uint64_t key, uint64_t n)
{
	uint8_t *seen = calloc(n, 1);
	assert_non_null(seen);
	for (uint64_t i = 0; i < n; i++) {
		uint64_t x = dvm_perm(key, n, i);
		assert_true(x < n);
		assert_int_equal(seen[x], 0);
		seen[x] = 1;
	}
	free(seen);
}

static void test_perm_is_bijection(void **state)
{
	(void)state;
	for (uint64_t n = 1; n <= 300; n++)
		check_bijection(n * 7919, n);
	check_bijection(1, 1024);
	check_bijection(2, 1025);
	check_bijection(3, (1 << 20) + 7);   /* just past a power of two */
	check_bijection(4, 3 << 18);
}

static void test_perm_depends_on_key(void **state)
{
	(void)state;
	uint64_t n = 100000, same = 0;
	for (uint64_t i = 0; i < n; i++)
		same += dvm_perm(1, n, i) == dvm_perm(2, n, i);
	/* Two random permutations agree on ~1 point. */
	assert_true(same < 20);
}

static void test_dirtyset_distinct_in_range(void **state)
{
	(void)state;
	const uint64_t npages = 4096;
	const uint64_t counts[] = { 0, 1, 10, 1000, 4096 };
	for (unsigned c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
		uint8_t seen[4096] = { 0 };
		for (uint64_t k = 0; k < counts[c]; k++) {
			uint64_t p = dvm_dirtyset_page(42, npages, k);
			assert_true(p < npages);
			assert_int_equal(seen[p], 0);
			seen[p] = 1;
		}
	}
	/* Different seeds choose different sets. */
	unsigned same = 0;
	for (uint64_t k = 0; k < 100; k++)
		same += dvm_dirtyset_page(1, npages, k) ==
			dvm_dirtyset_page(2, npages, k);
	assert_true(same < 10);
	/* The two phases write different values. */
	assert_true(dvm_dirtyset_value(7, 3, 1) != dvm_dirtyset_value(7, 3, 2));
}

static void test_verify_patterns_change(void **state)
{
	(void)state;
	/* Every word of a page differs between any two passes, and between
	 * any two pages of the same pass: a stale or misplaced page is
	 * caught at every word, not just somewhere. */
	for (uint64_t page = 0; page < 64; page++) {
		for (uint64_t p = 1; p <= 8; p++) {
			for (uint64_t q = p + 1; q <= 8; q++) {
				uint64_t a = dvm_verify_base(5, p, page);
				uint64_t b = dvm_verify_base(5, q, page);
				for (unsigned w = 0; w < DVM_PAGE_WORDS; w++)
					assert_true(dvm_word(a, w) !=
						    dvm_word(b, w));
			}
			assert_true(dvm_verify_base(5, p, page) !=
				    dvm_verify_base(5, p, page + 1));
			assert_true(dvm_verify_base(5, p, page) !=
				    dvm_verify_base(6, p, page));
		}
	}
	/* Within a page all words differ (so a shifted copy is caught). */
	uint64_t b = dvm_verify_base(1, 1, 0);
	for (unsigned w = 1; w < DVM_PAGE_WORDS; w++)
		assert_true(dvm_word(b, w) != dvm_word(b, w - 1));
}

static void count_classes(uint64_t n, unsigned p, unsigned q, int shuffle,
			  uint64_t seed, uint64_t counts[3])
{
	counts[0] = counts[1] = counts[2] = 0;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t c = dvm_fill_content_index(seed, shuffle, n, i);
		counts[dvm_fill_class(c, p, q)]++;
	}
}

static void test_fill_class_ratios(void **state)
{
	(void)state;
	const struct { unsigned p, q; } cases[] = {
		{ 0, 0 }, { 40, 20 }, { 80, 10 }, { 100, 0 }, { 0, 100 },
		{ 33, 33 }, { 1, 1 },
	};
	for (unsigned k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		uint64_t counts[3];
		unsigned p = cases[k].p, q = cases[k].q;
		/* Exact on whole blocks of 100. */
		count_classes(100000, p, q, 0, 0, counts);
		assert_int_equal(counts[DVM_FILL_IDENTICAL], 1000 * p);
		assert_int_equal(counts[DVM_FILL_ZERO], 1000 * q);
		assert_int_equal(counts[DVM_FILL_UNIQUE], 1000 * (100 - p - q));
		/* Within 1 % on a size that is not a multiple of 100. */
		uint64_t n = 100037;
		count_classes(n, p, q, 0, 0, counts);
		assert_true(llabs((long long)(counts[DVM_FILL_IDENTICAL] * 100) -
				  (long long)(n * p)) <= (long long)n);
		assert_true(llabs((long long)(counts[DVM_FILL_ZERO] * 100) -
				  (long long)(n * q)) <= (long long)n);
		/* Shuffling moves content, it does not change the counts. */
		uint64_t shuffled[3];
		count_classes(n, p, q, 1, 99, shuffled);
		assert_memory_equal(counts, shuffled, sizeof(counts));
	}
}

static void test_fill_class_not_periodic(void **state)
{
	(void)state;
	/* Block offsets vary, so the class of x does not repeat every 100. */
	unsigned differ = 0;
	for (uint64_t c = 0; c < 10000; c++)
		differ += dvm_fill_class(c, 50, 0) !=
			  dvm_fill_class(c + 100, 50, 0);
	assert_true(differ > 1000);
}

static void test_fill_content_seed_dependence(void **state)
{
	(void)state;
	for (uint64_t c = 0; c < 1000; c++) {
		/* identical: the same for every seed */
		assert_int_equal(dvm_fill_base(DVM_FILL_IDENTICAL, 1, c),
				 dvm_fill_base(DVM_FILL_IDENTICAL, 2, c));
		/* unique: differs per seed and from the identical content */
		assert_true(dvm_fill_base(DVM_FILL_UNIQUE, 1, c) !=
			    dvm_fill_base(DVM_FILL_UNIQUE, 2, c));
		assert_true(dvm_fill_base(DVM_FILL_UNIQUE, 1, c) !=
			    dvm_fill_base(DVM_FILL_IDENTICAL, 1, c));
		/* distinct content indices give distinct pages */
		assert_true(dvm_fill_base(DVM_FILL_IDENTICAL, 1, c) !=
			    dvm_fill_base(DVM_FILL_IDENTICAL, 1, c + 1));
	}
	/* shuffle=0 is the identity; shuffle=1 depends on the seed */
	assert_int_equal(dvm_fill_content_index(5, 0, 1000, 17), 17);
	unsigned same = 0;
	for (uint64_t i = 0; i < 1000; i++)
		same += dvm_fill_content_index(5, 1, 1000, i) ==
			dvm_fill_content_index(6, 1, 1000, i);
	assert_true(same < 20);
}

static void test_dirty_pattern(void **state)
{
	(void)state;
	/* A rewrite cycle visits every page once. */
	uint64_t n = 777;
	uint8_t *seen = calloc(n, 1);
	assert_non_null(seen);
	for (uint64_t j = n; j < 2 * n; j++) {
		uint64_t p = dvm_dirty_page(3, n, j);
		assert_true(p < n);
		assert_int_equal(seen[p], 0);
		seen[p] = 1;
	}
	free(seen);
	for (uint64_t v = 1; v < 50; v++)
		assert_true(dvm_dirty_base(3, 10, v) !=
			    dvm_dirty_base(3, 10, v + 1));
}

static void test_first_region_gpa(void **state)
{
	(void)state;
	/* 128 MiB VM, heap at 4 MiB: one bitmap page, region at 6 MiB. */
	assert_int_equal(dvm_first_region_gpa(0x400000, 128ULL << 20),
			 0x600000);
	/* Up to 64 GiB - 2 MiB the bitmap (< 2 MiB) keeps it there. */
	assert_int_equal(dvm_first_region_gpa(0x400000, 60ULL << 30),
			 0x600000);
	/* A bitmap of exactly 2 MiB ends on the boundary... */
	assert_int_equal(dvm_first_region_gpa(0x400000,
					      0x400000 + (64ULL << 30)),
			 0x600000);
	/* ...one byte more pushes the region one block further. */
	assert_int_equal(dvm_first_region_gpa(0x400000,
					      0x400000 + (65ULL << 30)),
			 0x800000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_splitmix64_reference),
		cmocka_unit_test(test_perm_is_bijection),
		cmocka_unit_test(test_perm_depends_on_key),
		cmocka_unit_test(test_dirtyset_distinct_in_range),
		cmocka_unit_test(test_verify_patterns_change),
		cmocka_unit_test(test_fill_class_ratios),
		cmocka_unit_test(test_fill_class_not_periodic),
		cmocka_unit_test(test_fill_content_seed_dependence),
		cmocka_unit_test(test_dirty_pattern),
		cmocka_unit_test(test_first_region_gpa),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
