/*
 * sysctl.c - one number in a kernel tunable file (files of /sys/kernel/mm/ksm,
 * /proc/sys/vm/max_map_count), for the CLI, the bench and the tests that
 * set or check what ksm depends on.
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
