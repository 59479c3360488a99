/*
 * synth.c - synthetic RAM images with the duplicate structure of VMs that
 * run the same software (see images.h for the layout), for tests and
 * benchmarks on machines where no capture exists.
 *
 * Every page's content is a function of (family, seed, pfn): a content key
 * K gives the page dvm_word(K, w) for each word w (guest/patterns.h), so
 * two pages are equal iff their keys are.  Keys of family content depend
 * on the family alone (shared by every seed), private keys on the seed.
 * The page cache's pages are placed by a seeded bijection of the page
 * numbers, so an image holds each cache page at most once and at a GPA
 * that differs from seed to seed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "images.h"
#include "guest/patterns.h"

#define BLOCK_PAGES 512ull   /* 2 MiB */

#define SALT_LOW     0x6c6f770000000001ULL
#define SALT_KERNEL  0x6b65726e00000002ULL
#define SALT_KASLR   0x6b61736c00000003ULL
#define SALT_PLACE   0x706c616300000004ULL
#define SALT_CACHE   0x6361636800000005ULL
#define SALT_REPEAT  0x7265706500000006ULL
#define SALT_PRIV    0x7072697600000007ULL

void image_synth_default(struct image_synth *p, uint64_t ram_bytes,
			 uint64_t seed)
{
	memset(p, 0, sizeof(*p));
	p->ram_bytes = ram_bytes;
	p->seed = seed;
	p->family = 1;
	p->kernel_pct = 6;
	p->cache_pct = 20;
	p->repeat_pct = 2;
	p->private_pct = 15;
}

/* The content key of page pfn; 0 = a zero page. */
static uint64_t page_key(const struct image_synth *p, uint64_t pfn)
{
	uint64_t n = p->ram_bytes / IMAGE_PAGE, blocks = n / BLOCK_PAGES;
	uint64_t kblocks = blocks * p->kernel_pct / 100;
	/* KASLR: a 2 MiB-aligned start in the first quarter of RAM */
	uint64_t span = blocks / 4 > kblocks ? blocks / 4 - kblocks : 1;
	uint64_t kstart = 1 + dvm_hash2(p->seed ^ SALT_KASLR, p->family) % span;

	if (pfn < BLOCK_PAGES) {
		/* low memory: BIOS data, tables; a quarter of it zero */
		if (dvm_hash2(p->family ^ SALT_LOW, pfn) % 4 == 0)
			return 0;
		return dvm_hash3(p->family, SALT_LOW, pfn) | 1;
	}
	uint64_t blk = pfn / BLOCK_PAGES;
	if (blk >= kstart && blk < kstart + kblocks) {
		uint64_t k = pfn - kstart * BLOCK_PAGES;   /* page of the kernel */
		if (dvm_hash2(p->family ^ SALT_KERNEL, k) % 10 == 0)
			return 0;   /* bss not yet written */
		return dvm_hash3(p->family, SALT_KERNEL, k) | 1;
	}
	uint64_t q = dvm_perm(p->seed ^ SALT_PLACE, n, pfn);
	uint64_t c1 = n * p->cache_pct / 100;
	uint64_t c2 = c1 + n * p->repeat_pct / 100;
	uint64_t c3 = c2 + n * p->private_pct / 100;
	if (q < c1)
		return dvm_hash3(p->family, SALT_CACHE, q) | 1;
	if (q < c2)
		return dvm_hash3(p->family, SALT_REPEAT, q % 8) | 1;
	if (q < c3)
		return dvm_hash3(p->seed, SALT_PRIV, pfn) | 1;
	return 0;
}

void image_synth_page(const struct image_synth *p, uint64_t pfn, void *page)
{
	uint64_t key = page_key(p, pfn), *w = page;
	for (unsigned i = 0; i < DVM_PAGE_WORDS; i++)
		w[i] = key ? dvm_word(key, i) : 0;
}

int image_synth_write(const char *dir, const char *name,
		      const struct image_synth *p, char *err, size_t errlen)
{
	const size_t len = BLOCK_PAGES * IMAGE_PAGE;
	struct image_writer *w;
	int rc;

	if (p->ram_bytes < (8ull << 20) || p->ram_bytes % (BLOCK_PAGES * IMAGE_PAGE) ||
	    p->kernel_pct + p->cache_pct + p->repeat_pct + p->private_pct > 100) {
		snprintf(err, errlen, "synthetic image: RAM must be a multiple of "
			 "2 MiB and at least 8 MiB, and the shares add up to at "
			 "most 100 %%");
		return -EINVAL;
	}
	uint64_t *buf = malloc(len);
	if (!buf) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if ((rc = image_writer_open(dir, p->ram_bytes, &w, err, errlen))) {
		free(buf);
		return rc;
	}
	uint64_t n = p->ram_bytes / IMAGE_PAGE;
	for (uint64_t pfn = 0; pfn < n; pfn += BLOCK_PAGES) {
		for (uint64_t i = 0; i < BLOCK_PAGES; i++)
			image_synth_page(p, pfn + i, buf + i * DVM_PAGE_WORDS);
		if ((rc = image_writer_write(w, buf, len, err, errlen))) {
			image_writer_abort(w);
			free(buf);
			return rc;
		}
	}
	free(buf);
	struct image_manifest m = { 0 };
	snprintf(m.name, sizeof(m.name), "%s", name);
	snprintf(m.workload, sizeof(m.workload), "synthetic family=%llu "
		 "kernel=%u%% cache=%u%% repeat=%u%% private=%u%%",
		 (unsigned long long)p->family, p->kernel_pct, p->cache_pct,
		 p->repeat_pct, p->private_pct);
	snprintf(m.accel, sizeof(m.accel), "synthetic");
	m.seed = p->seed;
	return image_writer_commit(w, &m, err, errlen);
}
