/*
 * test_linux_banner.c - a Linux guest boots through hv.h far enough to
 * print its banner and the e820 map we gave it, on the serial console.
 *
 * This machine's nested KVM emulates guest kernel code (~1000x slower), so
 * the test boots the uncompressed build/linux/vmlinux (no decompressor) and
 * stops the VM once the map is out (~12 s in); Linux userspace cannot run
 * here (see shared/README.md), so the ready marker is not waited for.
 * Skipped by name without /dev/kvm or without `make guest-linux`.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "testvm.h"

#define MIB (1ULL << 20)
#define BANNER_TIMEOUT_S 90.0

/* build/linux, next to BUILD (build or build/san) */
static const char *linux_dir(void)
{
	static char dir[PATH_MAX + 64];
	const char *env = getenv("DENSEVM_LINUX_DIR");
	char probe[PATH_MAX + 96];

	if (env && *env)
		return env;
	snprintf(dir, sizeof(dir), "%s/linux", test_build_dir());
	snprintf(probe, sizeof(probe), "%s/vmlinux", dir);
	if (access(probe, R_OK) == 0)
		return dir;
	snprintf(dir, sizeof(dir), "%s/../linux", test_build_dir());
	return dir;
}

static bool linux_file(const char *name, char *path, size_t len)
{
	snprintf(path, len, "%s/%s", linux_dir(), name);
	return access(path, R_OK) == 0;
}

#define SKIP_WITHOUT_IMAGE(path, name)                                        \
	do {                                                                  \
		if (!linux_file(name, path, sizeof(path))) {                  \
			print_message("[  SKIPPED ] %s: %s is absent (make guest-linux)\n", \
				      __func__, path);                         \
			skip();                                               \
		}                                                             \
	} while (0)

struct range {
	unsigned long long start, end; /* end exclusive */
	bool usable;
};

/*
 * The map is "BIOS-provided physical RAM map:" followed by one
 * "BIOS-e820: [mem 0xSTART-0xLAST] TYPE" line per entry.  Returns the
 * number of entries once a line after them shows the map is complete,
 * else -1.
 */
static int parse_e820(const char *log, struct range *r, int max)
{
	const char *p = log ? strstr(log, "BIOS-provided physical RAM map:") : NULL;
	int n = 0;

	if (!p)
		return -1;
	p = strchr(p, '\n');
	while (p && *++p) {
		const char *eol = strchr(p, '\n');
		const char *m = strstr(p, "BIOS-e820: [mem ");

		if (!eol)
			return -1;       /* the line after the map is not out yet */
		if (!m || m > eol)
			return n;        /* first line past the map */
		if (n == max)
			fail_msg("more than %d e820 lines", max);
		char type[32] = "";
		if (sscanf(m, "BIOS-e820: [mem %llx-%llx] %31s", &r[n].start,
			   &r[n].end, type) != 3)
			fail_msg("cannot parse: %.*s", (int)(eol - p), p);
		r[n].end += 1;
		r[n].usable = strcmp(type, "usable") == 0;
		n++;
		p = eol;
	}
	return -1;
}

/* What we expect the kernel to call usable: every RAM range, less the
 * legacy hole [0x9fc00, 1 MiB). */
static int expected_usable(struct hv_vm *vm, struct range *r, int max)
{
	unsigned nr;
	const struct hv_ram_range *rr = hv_vm_ranges(vm, &nr);
	int n = 0;

	for (unsigned i = 0; i < nr; i++) {
		unsigned long long s = rr[i].gpa, e = rr[i].gpa + rr[i].len;

		if (s < 0x9fc00) {
			assert_true(n < max);
			r[n++] = (struct range){ s, e < 0x9fc00 ? e : 0x9fc00, true };
		}
		if (e > 0x100000) {
			assert_true(n < max);
			r[n++] = (struct range){ s > 0x100000 ? s : 0x100000, e, true };
		}
	}
	return n;
}

static void boots_to_e820_map(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	char vmlinux[PATH_MAX + 64], initrd[PATH_MAX + 64], relfile[PATH_MAX + 64];
	SKIP_WITHOUT_IMAGE(vmlinux, "vmlinux");
	bool have_initrd = linux_file("initramfs.cpio.gz", initrd, sizeof(initrd));

	struct testvm t;
	char err[512] = "";
	struct hv_vm_config c = {
		.name = "linux", .mem_bytes = 256 * MIB, .ncpus = 1,
		.kind = HV_GUEST_LINUX, .image = vmlinux,
		.initrd = have_initrd ? initrd : NULL,
		.cmdline = NULL,       /* hv-core's default: works on this backend */
		.base_memfd = -1, .timeout_s = 0,
	};
	if (testvm_create_cfg(&t, &c, err, sizeof(err)) < 0)
		fail_msg("hv_vm_create: %s", err);
	assert_int_equal(hv_vm_start(t.vm), 0);

	uint64_t t0 = hv_now_ns(), banner_ns = 0;
	struct range got[32];
	int n = -1;
	bool ended = false;
	while ((hv_now_ns() - t0) / 1e9 < BANNER_TIMEOUT_S) {
		if (hv_vm_wait_timeout(t.vm, 0.2)) {
			ended = true;
			break;
		}
		if (!banner_ns && testvm_log_has(&t, "Linux version"))
			banner_ns = hv_now_ns();
		pthread_mutex_lock(&t.lock);
		n = parse_e820(t.log, got, 32);
		pthread_mutex_unlock(&t.lock);
		if (banner_ns && n >= 0)
			break;
	}
	double secs = (double)(hv_now_ns() - t0) / 1e9;
	hv_vm_stop(t.vm);
	hv_vm_wait(t.vm);
	struct hv_exit_status st;
	hv_vm_status(t.vm, &st);

	if (!banner_ns || n < 0)
		fail_msg("no %s after %.1f s (VM %s: %s %s); console:\n%s",
			 banner_ns ? "complete e820 map" : "Linux banner", secs,
			 ended ? "ended" : "still running", hv_exit_kind_name(st.kind),
			 st.reason, t.log ? t.log : "(nothing)");
	print_message("[   INFO   ] banner %.1f s, e820 map %.1f s after start\n",
		      (double)(banner_ns - t0) / 1e9, secs);

	/* the banner names the kernel we built */
	if (linux_file("kernel-release", relfile, sizeof(relfile))) {
		char rel[128] = "", want[160];
		FILE *f = fopen(relfile, "r");
		assert_non_null(f);
		assert_non_null(fgets(rel, sizeof(rel), f));
		fclose(f);
		rel[strcspn(rel, "\n")] = 0;
		snprintf(want, sizeof(want), "Linux version %s ", rel);
		assert_true(testvm_log_has(&t, want));
	}

	/* the usable ranges are our RAM, nothing more, nothing less */
	struct range want[8];
	int nw = expected_usable(t.vm, want, 8), nu = 0;
	unsigned long long usable = 0, ram = 0;
	for (int i = 0; i < n; i++) {
		if (!got[i].usable)
			continue;
		if (nu >= nw || got[i].start != want[nu].start ||
		    got[i].end != want[nu].end)
			fail_msg("usable e820 range %d is [0x%llx, 0x%llx); want [0x%llx, 0x%llx)",
				 nu, got[i].start, got[i].end,
				 nu < nw ? want[nu].start : 0, nu < nw ? want[nu].end : 0);
		usable += got[i].end - got[i].start;
		nu++;
	}
	assert_int_equal(nu, nw);
	for (int i = 0; i < nw; i++)
		ram += want[i].end - want[i].start;
	assert_int_equal(usable, ram);
	/* 256 MiB less the 384 KiB legacy hole */
	assert_int_equal(usable, 256 * MIB - (0x100000 - 0x9fc00));
	/* and the legacy hole is reserved */
	bool hole = false;
	for (int i = 0; i < n; i++)
		hole |= !got[i].usable && got[i].start == 0x9fc00 &&
			got[i].end == 0x100000;
	assert_true(hole);

	assert_false(ended);  /* it was still booting when we stopped it */
	testvm_destroy(&t);
}

static void bad_kernel_is_named(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct testvm t;
	char err[512] = "";
	const char *k = "/nonexistent/densevm-vmlinux";
	struct hv_vm_config c = {
		.name = "nolinux", .mem_bytes = 64 * MIB, .ncpus = 1,
		.kind = HV_GUEST_LINUX, .image = k, .base_memfd = -1,
	};
	assert_true(testvm_create_cfg(&t, &c, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, k));
	free(t.log);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(bad_kernel_is_named),
		cmocka_unit_test(boots_to_e820_map),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
