/*
 * pagemap_scan.c - which pages of a range map the page cache: one
 * PAGEMAP_SCAN ioctl per range (Linux 6.7), with a fallback to reading
 * /proc/self/pagemap 8 bytes a page where the kernel lacks it.
 *
 * The base memfd's zero-page sweep (merge_base.c) asks this of every VM
 * for every page the memfd holds without data.  Read a page at a time it
 * cost 59 ns a page a VM here (the sweep was 30 % of a first pass over 4
 * VMs of unique pages); the ioctl walks the same page tables in the
 * kernel and returns only the runs that match, 11 ns a page.  Debian 12's
 * headers predate the ioctl, so its ABI (include/uapi/linux/fs.h) is
 * declared here.
 */
#include <errno.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include "internal.h"

struct kpm_region {
	uint64_t start, end, categories;
};

struct kpm_scan_arg {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t category_inverted, category_mask, category_anyof_mask;
	uint64_t return_mask;
};

#define KPM_PAGEMAP_SCAN  _IOWR('f', 16, struct kpm_scan_arg)
#define KPM_IS_FILE       (1ULL << 2)
#define KPM_IS_PRESENT    (1ULL << 3)

static void set_bits(uint64_t *bits, uint64_t a, uint64_t b)
{
	for (uint64_t i = a; i < b; i++)
		bits[i / 64] |= 1ULL << (i % 64);
}

/* The fallback: the same test on the 8-byte entries (present, and not
 * the VM's own anonymous copy). */
static int by_read(struct ksm *k, const uint8_t *hva, uint64_t n,
		   uint64_t *bits, uint64_t bit0)
{
	uint64_t pm[64];

	for (uint64_t i = 0; i < n; i += 64) {
		unsigned c = (unsigned)(n - i < 64 ? n - i : 64);

		if (kpm_read(k, hva + i * KSM_PAGE, c, pm) != 0)
			return -1;
		for (unsigned j = 0; j < c; j++)
			if ((pm[j] & PM_PRESENT) && (pm[j] & PM_FILE))
				set_bits(bits, bit0 + i + j, bit0 + i + j + 1);
	}
	return 0;
}

int kpm_file_mapped(struct ksm *k, const uint8_t *hva, uint64_t n,
		    uint64_t *bits, uint64_t bit0)
{
	uintptr_t start = (uintptr_t)hva, end = start + n * KSM_PAGE;
	struct kpm_region v[64];

	if (k->pm_scan_off)
		return by_read(k, hva, n, bits, bit0);
	while (start < end) {
		struct kpm_scan_arg a = {
			.size = sizeof(a), .start = start, .end = end,
			.vec = (uintptr_t)v, .vec_len = 64,
			.category_mask = KPM_IS_PRESENT | KPM_IS_FILE,
			.return_mask = KPM_IS_PRESENT | KPM_IS_FILE,
		};
		long got = ioctl(k->pagemap_fd, KPM_PAGEMAP_SCAN, &a);

		if (got < 0) {
			/* an older kernel refuses the first call */
			if (start != (uintptr_t)hva ||
			    (errno != ENOTTY && errno != EINVAL &&
			     errno != EOPNOTSUPP))
				return -1;
			k->pm_scan_off = true;
			return by_read(k, hva, n, bits, bit0);
		}
		for (long i = 0; i < got; i++)
			set_bits(bits, bit0 + (v[i].start - (uintptr_t)hva) / KSM_PAGE,
				 bit0 + (v[i].end - (uintptr_t)hva) / KSM_PAGE);
		if (a.walk_end <= start)
			return -1;
		start = a.walk_end;
	}
	return 0;
}
