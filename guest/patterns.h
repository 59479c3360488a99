/*
 * patterns.h - the micro guest's deterministic content and selection
 * functions, shared with host tests.
 *
 * Owns: splitmix64, the seeded permutation of [0, n), and every function
 * that decides what a workload writes where (verify, fill, dirty, dirtyset),
 * plus the HC_RESULT keys and exit statuses a host test looks for.  Host
 * tests include this file to compute what a guest wrote, so it is
 * freestanding: only <stdint.h>, macros and static inline functions.
 *
 * A page's content is always "a base value, then one 64-bit word per
 * index": word w = base + w * DVM_GOLDEN (dvm_word).  Two pages are equal
 * iff their bases are equal, and every word of a page differs from every
 * other, so any page-sized misplacement is caught by comparing words.
 *
 * Finding the dirtyset region from the host: the guest reports its start
 * GPA with HC_RESULT(DVM_RESULT_REGION_GPA) before HC_READY(1); the region
 * is contiguous, npages = mib * 256, and page i is at gpa + i * 4096.  The
 * same address is dvm_first_region_gpa(bootinfo.heap_start, RAM end) when
 * the region is the VM's first allocation and 2 MiB blocks are left, which
 * is the case for dirtyset (and fill, and cpu 0 of verify/dirty).
 */
#ifndef DENSEVM_GUEST_PATTERNS_H
#define DENSEVM_GUEST_PATTERNS_H

#include <stdint.h>

/* HC_RESULT keys (arg0). */
#define DVM_RESULT_VERIFY_PASSES  1  /* verify: passes completed */
#define DVM_RESULT_FILL_PAGES     2  /* fill: pages written */
#define DVM_RESULT_REGION_GPA     3  /* dirtyset: region start GPA */
#define DVM_RESULT_HC_MEDIAN_NS   4  /* hcbench: median round trip, ns */
#define DVM_RESULT_DIRTY_REWRITES 5  /* dirty: page rewrites, all vCPUs */
#define DVM_RESULT_GROW_MIB       6  /* grow: MiB held at the end */
#define DVM_RESULT_FOREIGN_PAGES  7  /* hostile: pages that read neither
					zero nor the guest's own data */
#define DVM_RESULT_IMAGE_PAGES    8  /* image: pages verified at the end */
#define DVM_RESULT_IMAGE_REWRITES 9  /* image: churn rewrites */
#define DVM_RESULT_WORK          10  /* report_ms=: work done so far (dirty:
					pages checked and rewritten) */

/* HC_EXIT statuses. */
#define DVM_EXIT_OK        0
#define DVM_EXIT_BADARGS   2   /* unknown workload/key or bad value */
#define DVM_EXIT_MISMATCH  3   /* memory did not hold what was written */
#define DVM_EXIT_NOMEM     4   /* the guest heap is too small */
#define DVM_EXIT_BADBOOT   90  /* boot-info magic/version/layout wrong */
#define DVM_EXIT_PANIC     99  /* guest internal error */

/* HC_READY tags of dirtyset. */
#define DVM_READY_TOUCHED  1   /* every region page written once */
#define DVM_READY_DIRTIED  2   /* the K selected pages written */

#define DVM_GOLDEN        0x9e3779b97f4a7c15ULL
#define DVM_PAGE_WORDS    512u

/* Salts keep the workloads' streams independent of each other. */
#define DVM_SALT_VERIFY   0x7665726966790001ULL
#define DVM_SALT_IDENT    0x6964656e74000002ULL
#define DVM_SALT_UNIQUE   0x756e697175650003ULL
#define DVM_SALT_CLASS    0x636c617373000004ULL
#define DVM_SALT_SHUFFLE  0x73687566666c0005ULL
#define DVM_SALT_DIRTY    0x6469727479000006ULL
#define DVM_SALT_DSET     0x6473657400000007ULL
#define DVM_SALT_PERM     0x7065726d00000008ULL
#define DVM_SALT_HOSTILE  0x686f73740000000aULL
#define DVM_SALT_IMAGE    0x696d61676500000bULL

/* splitmix64's output function (a bijective 64-bit mixer). */
static inline uint64_t dvm_mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* splitmix64 generator: advances *state, returns the next value. */
static inline uint64_t dvm_splitmix64(uint64_t *state)
{
	*state += DVM_GOLDEN;
	return dvm_mix64(*state);
}

static inline uint64_t dvm_hash2(uint64_t a, uint64_t b)
{
	return dvm_mix64(dvm_mix64(a + DVM_GOLDEN) ^ b);
}

static inline uint64_t dvm_hash3(uint64_t a, uint64_t b, uint64_t c)
{
	return dvm_hash2(dvm_hash2(a, b), c);
}

/* Word w of a page whose base is `base`. */
static inline uint64_t dvm_word(uint64_t base, unsigned w)
{
	return base + (uint64_t)w * DVM_GOLDEN;
}

/*
 * A seeded bijection of [0, n): a 4-round Feistel network over the
 * smallest even-bit power-of-two domain >= n, with cycle walking to stay
 * below n (the domain is < 4n, so < 4 rounds of walking on average).
 * dvm_perm(key, n, i) for i = 0..n-1 visits every value exactly once.
 */
static inline uint64_t dvm_perm(uint64_t key, uint64_t n, uint64_t i)
{
	if (n <= 1)
		return 0;
	unsigned bits = 64u - (unsigned)__builtin_clzll(n - 1);
	unsigned half = (bits + 1) / 2;
	uint64_t mask = (half >= 64) ? ~0ULL : ((1ULL << half) - 1);
	uint64_t k = dvm_mix64(key ^ DVM_SALT_PERM);
	uint64_t x = i;
	do {
		uint64_t l = x >> half, r = x & mask;
		for (unsigned round = 0; round < 4; round++) {
			uint64_t f = dvm_hash2(k + round, r) & mask;
			uint64_t nl = r;
			r = l ^ f;
			l = nl;
		}
		x = (l << half) | r;
	} while (x >= n);
	return x;
}

/* ------------------------------------------------------------------ verify */

/* Base of global page `page` in pass `pass` (pass >= 1). */
static inline uint64_t dvm_verify_base(uint64_t seed, uint64_t pass,
				       uint64_t page)
{
	return dvm_hash3(seed ^ DVM_SALT_VERIFY, pass, page);
}

/* -------------------------------------------------------------------- fill */

enum dvm_fill_class {
	DVM_FILL_IDENTICAL = 0,  /* same content in every VM: depends on c only */
	DVM_FILL_ZERO      = 1,  /* all zero */
	DVM_FILL_UNIQUE    = 2,  /* depends on the seed: differs per VM */
};

/*
 * Class of content index c for identical=p %, zero=q % (p + q <= 100).
 * Within each aligned block of 100 indices the classes are a permutation
 * of 0..99 (x -> 71x + offset mod 100, 71 coprime to 100), so every full
 * block holds exactly p identical and q zero pages; the offset varies per
 * block so the pattern does not repeat every 100 pages.
 */
static inline unsigned dvm_fill_class(uint64_t c, unsigned p, unsigned q)
{
	uint64_t blk = c / 100;
	unsigned x = (unsigned)(c % 100);
	unsigned off = (unsigned)(dvm_mix64(blk ^ DVM_SALT_CLASS) % 100);
	unsigned r = (x * 71u + off) % 100u;
	return r < p ? DVM_FILL_IDENTICAL : r < p + q ? DVM_FILL_ZERO
						      : DVM_FILL_UNIQUE;
}

/* Content index of region page i: i itself, or (shuffle) a seeded
 * permutation so identical content sits at different GPAs per seed. */
static inline uint64_t dvm_fill_content_index(uint64_t seed, int shuffle,
					      uint64_t npages, uint64_t i)
{
	return shuffle ? dvm_perm(seed ^ DVM_SALT_SHUFFLE, npages, i) : i;
}

/* Base of content index c (for class IDENTICAL or UNIQUE; ZERO is 0s). */
static inline uint64_t dvm_fill_base(unsigned cls, uint64_t seed, uint64_t c)
{
	if (cls == DVM_FILL_IDENTICAL)
		return dvm_hash2(DVM_SALT_IDENT, c);
	return dvm_hash3(DVM_SALT_UNIQUE, seed, c);
}

/* ----------------------------------------------------------------- hostile */

/* Base of the page at GPA gpa written by the `hostile` workload. */
static inline uint64_t dvm_hostile_base(uint64_t seed, uint64_t gpa)
{
	return dvm_hash2(seed ^ DVM_SALT_HOSTILE, gpa);
}

/* ------------------------------------------------------------------- dirty */

/* The j-th rewrite of a working set of n pages goes to this page. */
static inline uint64_t dvm_dirty_page(uint64_t seed, uint64_t n, uint64_t j)
{
	return dvm_perm(seed ^ DVM_SALT_DIRTY, n, j % n);
}

/* Base of global page `page` at version `version` (versions start at 1). */
static inline uint64_t dvm_dirty_base(uint64_t seed, uint64_t page,
				      uint64_t version)
{
	return dvm_hash3(seed ^ DVM_SALT_DIRTY, page, version);
}

/* ---------------------------------------------------------------- dirtyset */

/* The k-th (k < count <= npages) page written between READY 1 and 2;
 * distinct for distinct k. */
static inline uint64_t dvm_dirtyset_page(uint64_t seed, uint64_t npages,
					 uint64_t k)
{
	return dvm_perm(seed ^ DVM_SALT_DSET, npages, k);
}

/* The one word (word 0) dirtyset writes into page i in phase 1 or 2. */
static inline uint64_t dvm_dirtyset_value(uint64_t seed, uint64_t i,
					  unsigned phase)
{
	return dvm_hash3(seed ^ DVM_SALT_DSET, i, phase);
}

/* --------------------------------------------------------------- layout */

/*
 * Where the first region allocation of a freshly booted guest starts:
 * the allocator's bitmap (1 bit per page of [heap_start, ram_end),
 * rounded up to whole pages) sits at heap_start, and regions take whole
 * 2 MiB blocks first.  heap_start is 2 MiB aligned (hv_abi.h).
 */
static inline uint64_t dvm_first_region_gpa(uint64_t heap_start,
					    uint64_t ram_end)
{
	uint64_t npages = (ram_end - heap_start) >> 12;
	uint64_t bm_bytes = ((npages + 63) / 64) * 8;
	uint64_t meta_end = heap_start + ((bm_bytes + 4095) & ~4095ULL);
	return (meta_end + (2ULL << 20) - 1) & ~((2ULL << 20) - 1);
}

#endif
