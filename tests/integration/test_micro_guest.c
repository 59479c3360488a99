/*
 * test_micro_guest.c - a micro guest boots, runs its workload and reports
 * back; guest faults and bad images end only the VM, with a reason.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "testvm.h"
#include "guest/patterns.h"

static void verify_64m_exits_zero(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct testvm t;
	testvm_create(&t, "verify64", 128 << 20, 1, "verify mib=64 passes=3");
	hv_vm_start(t.vm);
	struct hv_exit_status st = testvm_wait(&t, 120);
	assert_int_equal(st.kind, HV_EXIT_EXITED);
	assert_int_equal(st.code, 0);
	assert_true(testvm_log_has(&t, "verify: done passes=3 mismatches=0"));
	assert_false(testvm_log_has(&t, "MISMATCH"));
	uint64_t passes = 0;
	assert_true(hv_vm_result(t.vm, DVM_RESULT_VERIFY_PASSES, &passes));
	assert_int_equal(passes, 3);
	assert_true(hv_vm_first_hypercall_ns(t.vm) >= hv_vm_start_ns(t.vm));
	testvm_destroy(&t);
}

static void crash_ends_only_the_vm(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct testvm t;
	testvm_create(&t, "crasher", 64 << 20, 1, "crash");
	hv_vm_start(t.vm);
	struct hv_exit_status st = testvm_wait(&t, 60);
	assert_int_equal(st.kind, HV_EXIT_CRASHED);
	assert_non_null(strstr(st.reason, "triple fault"));
	testvm_destroy(&t);
}

static void bad_workload_args_exit_2(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct testvm t;
	testvm_create(&t, "badargs", 64 << 20, 1, "verify mib=64 bogus=1");
	hv_vm_start(t.vm);
	struct hv_exit_status st = testvm_wait(&t, 60);
	assert_int_equal(st.kind, HV_EXIT_EXITED);
	assert_int_equal(st.code, DVM_EXIT_BADARGS);
	assert_true(testvm_log_has(&t, "bogus"));
	testvm_destroy(&t);
}

/* HC_EXIT's status is a process's, 0-255: the rest reads 255 and the
 * exit line says what the guest sent (an int cast made 2^32 a success). */
static void exit_status_range(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	static const struct { const char *wl; int code; const char *reason; } c[] = {
		{ "idle seconds=0 status=7", 7, "exit status 7" },
		{ "idle seconds=0 status=255", 255, "exit status 255" },
		{ "idle seconds=0 status=0x100000000", 255,
		  "exit status 255 (the guest said 0x100000000, outside 0-255)" },
		{ "idle seconds=0 status=256", 255, "the guest said 0x100, outside" },
		{ "idle seconds=0 status=-1", 255, "0xffffffffffffffff, outside" },
		{ "idle seconds=0 status=0", 0, "exit status 0" },
	};
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		struct testvm t;
		testvm_create(&t, "exiter", 16 << 20, 1, c[i].wl);
		hv_vm_start(t.vm);
		struct hv_exit_status st = testvm_wait(&t, 60);
		assert_int_equal(st.kind, HV_EXIT_EXITED);
		if (st.code != c[i].code || !strstr(st.reason, c[i].reason))
			fail_msg("%s: code %d reason '%s', want %d '%s'", c[i].wl,
				 st.code, st.reason, c[i].code, c[i].reason);
		testvm_destroy(&t);
	}
}

static void multi_vcpu_verify(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct testvm t;
	testvm_create(&t, "smp", 128 << 20, 2, "verify mib=32 passes=2");
	hv_vm_start(t.vm);
	struct hv_exit_status st = testvm_wait(&t, 120);
	assert_int_equal(st.kind, HV_EXIT_EXITED);
	assert_int_equal(st.code, 0);
	testvm_destroy(&t);
}

/* Over 3 GiB, RAM continues above the PCI hole at 4 GiB in a second
 * memslot, and the guest is told so in its boot info. */
static void ram_around_pci_hole(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct testvm t;
	testvm_create(&t, "big", 3584ull << 20, 1, "verify mib=16 passes=2");
	unsigned n;
	const struct hv_ram_range *r = hv_vm_ranges(t.vm, &n);
	assert_int_equal(n, 2);
	assert_int_equal(r[0].gpa, 0);
	assert_int_equal(r[0].len, HV_PCI_HOLE_START);
	assert_int_equal(r[1].gpa, HV_PCI_HOLE_END);
	assert_int_equal(r[1].len, 512ull << 20);
	assert_null(hv_gpa_to_hva(t.vm, HV_PCI_HOLE_START, 4096));
	assert_null(hv_gpa_to_hva(t.vm, HV_PCI_HOLE_END - 4096, 8192));
	assert_non_null(hv_gpa_to_hva(t.vm, HV_PCI_HOLE_END + (512ull << 20) - 4096, 4096));
	assert_null(hv_gpa_to_hva(t.vm, HV_PCI_HOLE_END + (512ull << 20) - 4096, 4097));
	const struct hv_bootinfo *bi = hv_gpa_to_hva(t.vm, HV_BOOTINFO_GPA, 4096);
	assert_int_equal(bi->nranges, 2);
	assert_int_equal(bi->ranges[1].gpa, HV_PCI_HOLE_END);
	hv_vm_start(t.vm);
	struct hv_exit_status st = testvm_wait(&t, 120);
	assert_int_equal(st.kind, HV_EXIT_EXITED);
	assert_int_equal(st.code, 0);
	testvm_destroy(&t);
}

static void timeout_stops_hung_guest(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct testvm t;
	char err[256];
	struct hv_vm_config c = {
		.name = "idler", .mem_bytes = 64 << 20, .ncpus = 1,
		.image = test_guest_path(), .cmdline = "idle", .base_memfd = -1,
		.timeout_s = 1.0,
	};
	assert_int_equal(testvm_create_cfg(&t, &c, err, sizeof(err)), 0);
	hv_vm_start(t.vm);
	struct hv_exit_status st = testvm_wait(&t, 30);
	assert_int_equal(st.kind, HV_EXIT_TIMEOUT);
	testvm_destroy(&t);
}

/* ---- loader bad input: each gives one line naming the file ---- */

static char *write_tmp(const void *data, size_t len)
{
	char *path = strdup("/tmp/densevm-elf-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
	return path;
}

static void expect_load_error(const char *path, const char *what)
{
	char err[512] = "";
	struct hv_vm *vm = NULL;
	struct hv_vm_config c = {
		.name = "bad", .mem_bytes = 64 << 20, .ncpus = 1,
		.image = path, .cmdline = "idle", .base_memfd = -1,
	};
	int rc = hv_vm_create(&c, &vm, err, sizeof(err));
	assert_true(rc < 0);
	assert_null(vm);
	if (!strstr(err, what) || !strstr(err, path))
		fail_msg("expected '%s' naming %s, got: %s", what, path, err);
}

static void loader_rejects_bad_images(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	/* start from the real guest ELF and break one thing at a time */
	FILE *f = fopen(test_guest_path(), "rb");
	assert_non_null(f);
	static unsigned char img[4 << 20];
	size_t n = fread(img, 1, sizeof(img), f);
	fclose(f);
	assert_true(n > 64);

	expect_load_error("/nonexistent/guest.elf", "No such file");
	char *p = write_tmp("hello", 5);
	expect_load_error(p, "bad magic");
	unlink(p); free(p);

	unsigned char *b = malloc(n);
	memcpy(b, img, n); b[4] = 1;               /* ELFCLASS32 */
	p = write_tmp(b, n); expect_load_error(p, "ELFCLASS64"); unlink(p); free(p);
	memcpy(b, img, n); b[18] = 40; b[19] = 0;  /* EM_ARM */
	p = write_tmp(b, n); expect_load_error(p, "machine"); unlink(p); free(p);
	memcpy(b, img, n); b[16] = 3;              /* ET_DYN */
	p = write_tmp(b, n); expect_load_error(p, "ET_EXEC"); unlink(p); free(p);
	p = write_tmp(img, 100);                   /* truncated */
	expect_load_error(p, "truncated"); unlink(p); free(p);
	free(b);

	/* a valid image, but RAM too small for it */
	char err[512] = "";
	struct hv_vm *vm = NULL;
	struct hv_vm_config c = {
		.name = "tiny", .mem_bytes = 2 << 20, .ncpus = 1,
		.image = test_guest_path(), .cmdline = "idle", .base_memfd = -1,
	};
	assert_true(hv_vm_create(&c, &vm, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "mem"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(verify_64m_exits_zero),
		cmocka_unit_test(crash_ends_only_the_vm),
		cmocka_unit_test(bad_workload_args_exit_2),
		cmocka_unit_test(exit_status_range),
		cmocka_unit_test(multi_vcpu_verify),
		cmocka_unit_test(ram_around_pci_hole),
		cmocka_unit_test(timeout_stops_hung_guest),
		cmocka_unit_test(loader_rejects_bad_images),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
