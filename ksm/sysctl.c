/*
 * sysctl.c - one number in a kernel tunable file (files of /sys/kernel/mm/ksm,
 * /proc/sys/vm/max_map_count), for the CLI, the bench and the tests that
 * set or check what ksm depends on; and what Linux KSM's metadata costs.
 */
#include <stdio.h>
#include "ksm.h"

long long ksm_sysctl_read(const char *path)
{
	FILE *f = fopen(path, "r");
	long long v = -1;

	if (f) {
		if (fscanf(f, "%lld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

int ksm_sysctl_write(const char *path, long long v)
{
	FILE *f = fopen(path, "w");
	int ok;

	if (!f)
		return -1;
	ok = fprintf(f, "%lld\n", v) > 0;
	/* the kernel takes the value at the close: that is where it fails */
	return fclose(f) == 0 && ok ? 0 : -1;
}

/* general_profit = (pages_sharing + ksm_zero_pages) * 4K less the rmap
 * items' slab, which KSM keeps per page it scans and no memory cgroup is
 * charged for: a comparison of host memory must add it to the kernel
 * engine's usage. */
long long ksm_kernel_uncharged_bytes(void)
{
	long long sharing = ksm_sysctl_read("/sys/kernel/mm/ksm/pages_sharing");
	long long zero = ksm_sysctl_read("/sys/kernel/mm/ksm/ksm_zero_pages");
	long long profit = ksm_sysctl_read("/sys/kernel/mm/ksm/general_profit");
	long long v;

	if (sharing < 0 || zero < 0 || profit < -(1LL << 50))
		return 0;
	v = (sharing + zero) * 4096 - profit;
	return v > 0 ? v : 0;
}
