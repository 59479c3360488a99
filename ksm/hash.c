/*
 * hash.c - page hashing (XXH3-64, or a test override) and zero detection.
 *
 * The hash only finds candidates: every merge compares the bytes in full,
 * so a weak or forced hash costs merges, never correctness.
 */
#include <string.h>
#include <xxhash.h>
#include "internal.h"

const uint8_t ksm_zero_page[KSM_PAGE] __attribute__((aligned(64)));

uint64_t ksm_hash_page(const struct ksm *k, const void *page)
{
	if (k->cfg.hash_fn)
		return k->cfg.hash_fn(page, k->cfg.hash_arg);
	return XXH3_64bits(page, KSM_PAGE);
}

/* memcmp against a static zero page: vectorized by libc, early exit. */
bool ksm_page_is_zero(const void *page)
{
	return memcmp(page, ksm_zero_page, KSM_PAGE) == 0;
}
