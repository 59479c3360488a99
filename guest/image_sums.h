/*
 * image_sums.h - the page hash and the checksum table shared by the host
 * (images/, cli/ext_image.c, tests) and the micro guest's `image` workload.
 *
 * Owns: dvm_page_hash (a 64-bit hash of one 4 KiB page) and the layout of
 * the table the host writes into guest RAM when it loads a RAM image: a
 * header (magic, version, the GPA range the image was loaded into) then one
 * dvm_page_hash per page of that range, zero pages included.  The guest
 * finds the table at the GPA given as `sums=` (densevm adds it to the
 * workload's arguments) and checks its pages against it.
 *
 * Freestanding like patterns.h: only <stdint.h> and static inline code,
 * because the guest has no libc.  The hash is not cryptographic and is
 * never trusted for merging (ksm and `image stat` compare bytes): it only
 * tells a guest that a page lost its content.  Four independent lanes of
 * multiply-rotate (xxhash64's round) keep it fast on both sides; the lane
 * and position dependence catch swapped, shifted and zeroed words.
 */
#ifndef DENSEVM_GUEST_IMAGE_SUMS_H
#define DENSEVM_GUEST_IMAGE_SUMS_H

#include <stdint.h>

#define DVM_SUMS_MAGIC    0x736d7573676d6964ULL   /* "dimgsums" */
#define DVM_SUMS_VERSION  1u
#define DVM_SUMS_PAGE     4096u

/* The table's header; sums[npages] follows it at offset 64. */
struct dvm_sums_header {
	uint64_t magic;
	uint32_t version;
	uint32_t header_bytes;   /* 64: where sums[] starts */
	uint64_t first_gpa;      /* the image's page at this GPA is sums[0] */
	uint64_t npages;         /* pages loaded: [first_gpa, + npages * 4K) */
	uint64_t image_pages;    /* pages in the whole image (for messages) */
	uint64_t zero_hash;      /* dvm_page_hash of a zero page */
	uint64_t reserved[2];
};

_Static_assert(sizeof(struct dvm_sums_header) == 64, "sums header is 64 bytes");

/* Bytes of a table for npages, header included. */
static inline uint64_t dvm_sums_bytes(uint64_t npages)
{
	return sizeof(struct dvm_sums_header) + npages * 8;
}

#define DVM_PH_P1 0x9e3779b185ebca87ULL
#define DVM_PH_P2 0xc2b2ae3d27d4eb4fULL
#define DVM_PH_P3 0x165667b19e3779f9ULL

static inline uint64_t dvm_ph_rotl(uint64_t x, unsigned r)
{
	return (x << r) | (x >> (64 - r));
}

static inline uint64_t dvm_ph_round(uint64_t acc, uint64_t w)
{
	acc += w * DVM_PH_P2;
	acc = dvm_ph_rotl(acc, 31);
	return acc * DVM_PH_P1;
}

/* The hash of the 4096 bytes at page (8-byte aligned).  A guest reading
 * memory the host may change puts a compiler barrier before the call. */
static inline uint64_t dvm_page_hash(const void *page)
{
	const uint64_t *p = (const uint64_t *)page;
	uint64_t a = DVM_PH_P1 + DVM_PH_P2, b = DVM_PH_P2, c = 0,
		 d = 0 - DVM_PH_P1;
	for (unsigned w = 0; w < DVM_SUMS_PAGE / 8; w += 4) {
		a = dvm_ph_round(a, p[w]);
		b = dvm_ph_round(b, p[w + 1]);
		c = dvm_ph_round(c, p[w + 2]);
		d = dvm_ph_round(d, p[w + 3]);
	}
	uint64_t h = dvm_ph_rotl(a, 1) + dvm_ph_rotl(b, 7) +
		     dvm_ph_rotl(c, 12) + dvm_ph_rotl(d, 18);
	h ^= h >> 33;
	h *= DVM_PH_P2;
	h ^= h >> 29;
	h *= DVM_PH_P3;
	return h ^ (h >> 32);
}

#endif
