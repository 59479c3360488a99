/*
 * test_balloon_guest.c - the micro guest's balloon driver against the real
 * device, in this process (hv-core VMs with balloon-host attached, as
 * `densevm run` does), so the test can watch the device's counters.
 *
 * Owns: no lost writes (verify over 200 MiB while the balloon goes to 256M
 * and back 20 times; target-to-reached latency of a busy guest), the floor
 * (a target above what the guest can give stops at the floor), pressure (a
 * growing workload gets the balloon deflated before an allocation fails),
 * free page reporting (free memory goes back to the host with no target),
 * and a guest with no balloon device.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "testvm.h"
#include "balloon-host/balloon_host.h"
#include "guest/patterns.h"

#define MiB (1024ULL * 1024)
#define PG  4096ULL

static void quiet(void *ctx, const char *line)
{
	(void)ctx;
	(void)line;
}

static struct balloon_host *attach(struct testvm *t, uint32_t period_ms,
				   bool reporting)
{
	struct balloon_host_config cfg = {
		.stats_period_ms = period_ms,
		.free_page_reporting = reporting,
		.log = quiet,
	};
	struct balloon_host *dev;
	assert_int_equal(balloon_host_attach(t->vm, &cfg, &dev), 0);
	return dev;
}

static struct balloon_host_stats bstats(struct balloon_host *dev)
{
	struct balloon_host_stats s;
	balloon_host_stats(dev, &s);
	return s;
}

/* Waits until the host holds exactly the target; fails after `secs`. */
static void wait_reached(struct testvm *t, struct balloon_host *dev, double secs)
{
	uint64_t end = hv_now_ns() + (uint64_t)(secs * 1e9);
	struct balloon_host_stats s;
	for (;;) {
		s = bstats(dev);
		if (s.target_reached)
			return;
		if (hv_now_ns() > end)
			break;
		usleep(500);
	}
	fail_msg("balloon: size %llu MiB, target %llu MiB not reached in %.1f s; "
		 "console:\n%s", (unsigned long long)(s.size_bytes >> 20),
		 (unsigned long long)(s.target_bytes >> 20), secs,
		 t->log ? t->log : "");
}

/* Asks the guest for stats and waits for them. */
static struct balloon_host_stats fresh_stats(struct balloon_host *dev)
{
	uint64_t before = bstats(dev).stats_updates;
	assert_int_equal(balloon_host_request_stats(dev), 0);
	for (int i = 0; i < 5000; i++) {
		struct balloon_host_stats s = bstats(dev);
		if (s.stats_updates > before)
			return s;
		usleep(1000);
	}
	fail_msg("the guest did not answer a stats request in 5 s");
	return bstats(dev);
}

static void expect_ok(struct testvm *t, double secs)
{
	struct hv_exit_status st = testvm_wait(t, secs);
	if (st.kind != HV_EXIT_EXITED || st.code != 0)
		fail_msg("%s: %s %d %s; console:\n%s", hv_vm_name(t->vm),
			 hv_exit_kind_name(st.kind), st.code, st.reason,
			 t->log ? t->log : "");
	assert_false(testvm_log_has(t, "MISMATCH"));
	assert_false(testvm_log_has(t, "cannot allocate"));
}

/* verify keeps every write while the balloon moves under it; then a target
 * beyond what the guest can spare stops at the floor. */
static void verify_through_20_cycles_and_floor(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct testvm t;
	double reach[40];
	const uint64_t mem = 512 * MiB, floor = mem / 16;   /* the core's default */

	testvm_create(&t, "bverify", mem, 1, "verify mib=200 seconds=5");
	struct balloon_host *dev = attach(&t, 0, false);
	hv_vm_start(t.vm);
	usleep(200 * 1000);   /* verify has allocated and runs its sweeps */

	for (int i = 0; i < 20; i++) {
		assert_int_equal(balloon_host_set_target(dev, 256 * MiB), 0);
		wait_reached(&t, dev, 5);
		reach[2 * i] = (double)bstats(dev).reach_ns / 1e6;
		assert_int_equal(balloon_host_set_target(dev, 0), 0);
		wait_reached(&t, dev, 5);
		reach[2 * i + 1] = (double)bstats(dev).reach_ns / 1e6;
	}
	struct balloon_host_stats s = bstats(dev);
	assert_int_equal(s.inflated_pages, 20 * 65536);
	assert_int_equal(s.deflated_pages, 20 * 65536);
	assert_int_equal(s.rejected, 0);

	/* 480M cannot be had: 200 MiB are verify's, the floor stays free */
	assert_int_equal(balloon_host_set_target(dev, 480 * MiB), 0);
	for (int i = 0; i < 5000 && !(bstats(dev).guest_status & BALLOON_GST_AT_FLOOR); i++)
		usleep(1000);
	s = fresh_stats(dev);
	print_message("floor: balloon %.1f MiB of 480, guest free %.1f MiB, "
		      "floor %.1f MiB\n", (double)s.size_bytes / MiB,
		      (double)s.guest.mem_free / MiB, (double)floor / MiB);
	assert_true(s.guest_status & BALLOON_GST_AT_FLOOR);
	assert_false(s.target_reached);
	assert_true(s.guest.valid & BALLOON_STAT_MEM_FREE);
	assert_true(s.guest.mem_free >= floor);            /* respected */
	assert_true(s.guest.mem_free < floor + 4 * MiB);   /* and reached */
	assert_true(s.size_bytes > 200 * MiB);
	assert_int_equal(s.size_bytes, s.guest_balloon_bytes);

	assert_int_equal(balloon_host_set_target(dev, 0), 0);
	wait_reached(&t, dev, 5);
	struct hv_exit_status mid;
	hv_vm_status(t.vm, &mid);
	assert_int_equal(mid.kind, HV_EXIT_RUNNING);   /* all of it under verify */

	expect_ok(&t, 60);
	assert_true(testvm_log_has(&t, "mismatches=0"));
	uint64_t passes = 0;
	assert_true(hv_vm_result(t.vm, DVM_RESULT_VERIFY_PASSES, &passes));
	assert_true(passes >= 2);
	print_message("target to reached while verify runs: p50 %.2f ms, max "
		      "%.2f ms (40 changes); %llu verify passes\n",
		      percentile(reach, 40, 50), percentile(reach, 40, 100),
		      (unsigned long long)passes);
	/* the service calls in verify's loop: well under 100 ms */
	assert_true(percentile(reach, 40, 50) < 100);
	balloon_host_detach(dev);
	testvm_destroy(&t);
}

/* The balloon holds 400 of 512 MiB; the workload grows to 320 MiB. */
static void pressure_deflates_before_failure(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct testvm t;

	testvm_create(&t, "bgrow", 512 * MiB, 1,
		      "grow mib=16 step=16 every_ms=40 max=320 hold=1");
	struct balloon_host *dev = attach(&t, 0, false);
	/* set before the start: the guest finds it at registration */
	assert_int_equal(balloon_host_set_target(dev, 400 * MiB), 0);
	hv_vm_start(t.vm);
	expect_ok(&t, 60);

	uint64_t held = 0;
	assert_true(hv_vm_result(t.vm, DVM_RESULT_GROW_MIB, &held));
	assert_int_equal(held, 320);
	assert_true(testvm_log_has(&t, "grow: done mib=320 mismatches=0"));
	struct balloon_host_stats s = bstats(dev);
	print_message("pressure: inflated %.0f MiB, deflated %.0f MiB, balloon "
		      "now %.0f MiB\n", (double)s.inflated_pages / 256,
		      (double)s.deflated_pages / 256, (double)s.size_bytes / MiB);
	/* it really had the 400 MiB, and gave back what the workload needed */
	assert_true(s.inflated_pages >= 400 * 256);
	assert_true(s.deflated_pages > 0);
	assert_true(s.size_bytes < 400 * MiB);
	assert_true(s.size_bytes + 320 * MiB <= 512 * MiB);
	balloon_host_detach(dev);
	testvm_destroy(&t);
}

static uint64_t resident_mib(struct hv_vm *vm)
{
	unsigned n;
	const struct hv_ram_range *r = hv_vm_ranges(vm, &n);
	uint64_t pages = 0;
	for (unsigned i = 0; i < n; i++) {
		size_t np = r[i].len / PG;
		unsigned char *vec = malloc(np);
		assert_int_equal(mincore(r[i].hva, r[i].len, vec), 0);
		for (size_t k = 0; k < np; k++)
			pages += vec[k] & 1;
		free(vec);
	}
	return pages / 256;
}

/* Free memory goes back to the host without a target: the guest reports
 * free 2 MiB blocks it had used. */
static void free_page_reporting(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct testvm t;

	testvm_create(&t, "breport", 256 * MiB, 1, "idle touch=1 seconds=3");
	struct balloon_host *dev = attach(&t, 0, true);
	hv_vm_start(t.vm);
	for (int i = 0; i < 600 && !testvm_log_has(&t, "idle: touched"); i++)
		usleep(10 * 1000);
	assert_true(testvm_log_has(&t, "idle: touched"));
	uint64_t res = 0;
	for (int i = 0; i < 80; i++) {      /* reporting runs every ~2 s */
		res = resident_mib(t.vm);
		if (res < 32)
			break;
		usleep(50 * 1000);
	}
	struct balloon_host_stats s = bstats(dev);
	print_message("reporting: %.0f MiB reported, %llu MiB resident\n",
		      (double)s.reported_pages / 256, (unsigned long long)res);
	assert_true(s.reporting);
	assert_true(s.reported_pages >= 200 * 256);
	assert_true(res < 32);
	assert_int_equal(s.size_bytes, 0);      /* no balloon involved */
	expect_ok(&t, 30);
	balloon_host_detach(dev);
	testvm_destroy(&t);
}

/* Without the device the guest runs as before (the opt-out). */
static void no_balloon_device(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct testvm t;
	testvm_create(&t, "bnone", 64 * MiB, 1, "grow mib=8 step=8 every_ms=1 max=32");
	hv_vm_start(t.vm);
	expect_ok(&t, 30);
	assert_true(testvm_log_has(&t, "balloon=off"));
	assert_true(testvm_log_has(&t, "grow: done mib=32 mismatches=0"));
	testvm_destroy(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(no_balloon_device),
		cmocka_unit_test(pressure_deflates_before_failure),
		cmocka_unit_test(free_page_reporting),
		cmocka_unit_test(verify_through_20_cycles_and_floor),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
