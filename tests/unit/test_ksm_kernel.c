/*
 * test_ksm_kernel.c - ksm.engine=kernel: MADV_MERGEABLE on fake VMs plus
 * /sys/kernel/mm/ksm tuning behind the same API; stop always leaves
 * run=0 and the kernel's tunables as they were.  Skipped when the kernel
 * has no KSM, when sysfs is read-only, or when KSM is already running
 * (someone else's: we would stop it).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ksm/ksm.h"
#include "ksm/ksm_fake.h"

#define PG 4096ULL

static int sysfs_read(const char *name, char *buf, size_t len)
{
	char path[128];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/sys/kernel/mm/ksm/%s", name);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = 0;
	buf[strcspn(buf, "\n")] = 0;
	return 0;
}

static void test_kernel_engine(void **state_)
{
	struct ksm_fake_range r = { 0, 2048 * PG };
	struct ksm_fake_vm *a, *b;
	struct ksm_vm *kv;
	struct ksm_config cfg;
	struct ksm_stats st;
	struct ksm *k;
	char err[256], run[16], pts0[32], pts[32];
	uint64_t i;
	int tries;

	(void)state_;
	if (sysfs_read("run", run, sizeof(run)) != 0 ||
	    access("/sys/kernel/mm/ksm/run", W_OK) != 0)
		skip();
	if (strcmp(run, "0") != 0) {
		printf("[ kernel ] KSM already running (run=%s): skipped\n", run);
		skip();
	}
	assert_int_equal(sysfs_read("pages_to_scan", pts0, sizeof(pts0)), 0);
	ksm_config_default(&cfg);
	cfg.engine = KSM_ENGINE_KERNEL;
	cfg.pages_per_sec = 200000;
	cfg.sleep_ms = 10;
	assert_int_equal(ksm_create(&cfg, &k, err, sizeof(err)), 0);
	assert_string_equal(ksm_engine_name(k), "kernel");
	assert_int_equal(ksm_fake_vm_create("ka", -1, &r, 1, &a), 0);
	assert_int_equal(ksm_fake_vm_create("kb", -1, &r, 1, &b), 0);
	for (i = 0; i < 1024; i++) {
		ksm_fake_fill_pages(a, i * PG, 1, 5000 + i);
		ksm_fake_fill_pages(b, i * PG, 1, 5000 + i);
	}
	assert_int_equal(ksm_add_vm(k, &ksm_fake_ops, a, 0, &kv, err,
				    sizeof(err)), 0);
	assert_int_equal(ksm_add_vm(k, &ksm_fake_ops, b, 0, &kv, err,
				    sizeof(err)), 0);
	/* without ksm_start there is no pass to wait for */
	assert_int_equal(ksm_scan_pass(k), -EINVAL);
	if (ksm_start(k) == -EBUSY) {
		/* another process's kernel engine holds the host-wide lock */
		printf("[ kernel ] another kernel engine is running: skipped\n");
		ksm_destroy(k);
		ksm_fake_vm_destroy(a);
		ksm_fake_vm_destroy(b);
		skip();
	}
	/* the probe other runs wait on sees our engine's lock */
	assert_true(ksm_kernel_engine_busy());
	assert_int_equal(sysfs_read("run", run, sizeof(run)), 0);
	assert_string_equal(run, "1");
	assert_int_equal(sysfs_read("pages_to_scan", pts, sizeof(pts)), 0);
	assert_string_equal(pts, "2000");      /* 200000/s at 10 ms */
	for (tries = 0; tries < 6; tries++) {
		assert_int_equal(ksm_scan_pass(k), 0);
		ksm_stats(k, &st);
		if (st.pages_sharing >= 2000)
			break;
	}
	json_t *j = ksm_stats_json(k);
	char *json = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	ksm_stop(k);
	printf("[ kernel ] %s\n", json);
	assert_true(st.pages_sharing >= 2000);
	assert_true(st.frames >= 1000);
	assert_int_equal(sysfs_read("run", run, sizeof(run)), 0);
	assert_string_equal(run, "0");
	assert_int_equal(sysfs_read("pages_to_scan", pts, sizeof(pts)), 0);
	assert_string_equal(pts, pts0);        /* restored */
	assert_non_null(strstr(json, "\"engine\":\"kernel\""));
	free(json);
	/* contents intact after the kernel's merging */
	for (i = 0; i < 1024; i += 97)
		assert_memory_equal(ksm_fake_hva(a, i * PG),
				    ksm_fake_hva(b, i * PG), PG);
	ksm_destroy(k);
	assert_int_equal(sysfs_read("run", run, sizeof(run)), 0);
	assert_string_equal(run, "0");
	ksm_fake_vm_destroy(a);
	ksm_fake_vm_destroy(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kernel_engine),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
