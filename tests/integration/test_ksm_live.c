/*
 * test_ksm_live.c - ksm merging under guests that keep writing: two
 * 2-vCPU guests run `verify` with the same seed (so each pass leaves
 * equal content at equal GPAs in both), their sweeps started together on
 * the host's clock every 400 ms (period_ms: without it the guests drift
 * out of phase and merges are luck, 26 to 90k in a run), while the
 * scanner runs at full
 * speed with no volatility skip: pages merge between the guests' sweeps
 * and copy-on-write under them.  No guest may see a mismatch, merges and
 * unmerges must both happen, and the self-check must hold during the run
 * and after it.  The batches are guarded both ways in turn: write-protect
 * (the default: a vCPU writing a batch's page waits in the kernel) and
 * pause (write_protect=0, the fallback), switched every 0.7 s.
 *
 * Then two 1-vCPU guests running `dirty` with the same seed (equal pages
 * merge between rewrites) rewrite their 8 MiB at 1000 %/s, and the
 * scanner merges in batches of 512 what they are about to rewrite: their
 * vCPUs write into pages of write-protected batches, so writes wait
 * (wp_waits > 0: 20-118 in a run here), and none is lost (each rewrite
 * checks the page's previous version, and every page is checked at the
 * end); no batch pauses.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "testvm.h"
#include "guest/patterns.h"
#include "ksm_test.h"

static struct ksm *g_ksm;

static int teardown(void **state)
{
	(void)state;
	if (g_ksm)
		ksm_destroy(g_ksm);
	g_ksm = NULL;
	return 0;
}

static void set(struct ksm *k, const char *name, const char *val)
{
	char err[256];
	if (ksm_set_tunable(k, name, val, err, sizeof(err)))
		fail_msg("%s", err);
}

static void verify_while_merging_full_speed(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	enum { NVM = 2, SECONDS = 8 };
	struct testvm t[NVM];
	struct ksm_vm *kv[NVM];
	char err[512], name[16], args[96];
	int base = memfd_create("ksm-live-base", MFD_CLOEXEC);

	assert_true(base >= 0);
	snprintf(args, sizeof(args),
		 "verify mib=96 seconds=%d seed=77 period_ms=400", SECONDS);
	for (int i = 0; i < NVM; i++) {
		snprintf(name, sizeof(name), "live%d", i);
		struct hv_vm_config c = {
			.name = name, .mem_bytes = 128 << 20, .ncpus = 2,
			.kind = HV_GUEST_MICRO, .image = test_guest_path(),
			.cmdline = args, .base_memfd = base, .timeout_s = 120,
		};
		if (testvm_create_cfg(&t[i], &c, err, sizeof(err)))
			fail_msg("create %s: %s", name, err);
	}
	assert_int_equal(ksm_create(NULL, &g_ksm, err, sizeof(err)), 0);
	/* full speed: no sleep, no rate or CPU cap, never skip a page */
	set(g_ksm, "sleep_ms", "0");
	set(g_ksm, "pages_per_sec", "0");
	set(g_ksm, "cpu_percent", "0");
	set(g_ksm, "volatile_passes", "0");
	set(g_ksm, "batch_pages", "64");
	for (int i = 0; i < NVM; i++)
		if (ksm_add_vm(g_ksm, &ksm_hv_ops, t[i].vm, 0, &kv[i], err,
			       sizeof(err)))
			fail_msg("ksm_add_vm: %s", err);
	assert_int_equal(ksm_start(g_ksm), 0);
	for (int i = 0; i < NVM; i++)
		hv_vm_start(t[i].vm);

	/* the self-check holds at any point of the run, in either mode */
	unsigned checks = 0;
	bool running = true;
	while (running) {
		usleep(700000);
		check(g_ksm);
		set(g_ksm, "write_protect", checks % 2 ? "1" : "0");
		checks++;
		running = false;
		for (int i = 0; i < NVM; i++)
			if (!hv_vm_wait_timeout(t[i].vm, 0))
				running = true;
		assert_true(checks < 100);
	}
	ksm_stop(g_ksm);
	check(g_ksm);

	struct ksm_stats st;
	ksm_stats(g_ksm, &st);
	/* hv-core's own count of the page-state map agrees with ksm's */
	uint64_t shared = 0, zero = 0;
	for (int i = 0; i < NVM; i++) {
		uint64_t c[8];
		hv_vm_page_counts(t[i].vm, c);
		shared += c[HV_PAGE_BASE] + c[HV_PAGE_FRAME];
		zero += c[HV_PAGE_ZERO];
	}
	assert_int_equal(shared, st.pages_sharing);
	assert_int_equal(zero, st.zero_pages + st.untouched_pages);
	for (int i = 0; i < NVM; i++) {
		struct hv_exit_status es = testvm_wait(&t[i], 10);
		if (es.kind != HV_EXIT_EXITED || es.code != 0)
			fail_msg("%s: %s %d %s\n%s", hv_vm_name(t[i].vm),
				 hv_exit_kind_name(es.kind), es.code, es.reason,
				 t[i].log);
		assert_false(testvm_log_has(&t[i], "MISMATCH"));
		assert_true(testvm_log_has(&t[i], "mismatches=0"));
		uint64_t passes = 0;
		assert_true(hv_vm_result(t[i].vm, DVM_RESULT_VERIFY_PASSES, &passes));
		assert_true(passes >= 2);
	}
	print_message("[ live ] %d x verify 96 MiB for %d s under a full-speed "
		      "scanner: %llu passes, %llu hashed, %llu merges, %llu unmerges, "
		      "%llu races, %llu pauses (p50 %.0f us, p99 %.0f us), %llu "
		      "write-protected batches (window p99 %.0f us, %llu writes "
		      "waited, stall p99 %.0f us), scanner cpu %.2f s, %u "
		      "self-checks\n", NVM, SECONDS,
		      (unsigned long long)st.full_scans,
		      (unsigned long long)st.pages_hashed,
		      (unsigned long long)st.merges, (unsigned long long)st.unmerges,
		      (unsigned long long)st.merge_races,
		      (unsigned long long)st.pauses, st.pause_p50_ns / 1e3,
		      st.pause_p99_ns / 1e3, (unsigned long long)st.wp_batches,
		      st.wp_window_p99_ns / 1e3, (unsigned long long)st.wp_waits,
		      st.stall_p99_ns / 1e3, st.cpu_seconds, checks);
	/* pages really merged under the guests, and were written afterwards */
	assert_true(st.merges >= 300);
	assert_true(st.unmerges >= 100);
	assert_true(st.pauses >= 10);
	assert_true(st.wp_batches >= 10);
	assert_true(st.full_scans >= 10);
	assert_int_equal(st.collisions, 0);
	ksm_destroy(g_ksm);
	g_ksm = NULL;
	for (int i = 0; i < NVM; i++)
		testvm_destroy(&t[i]);
	close(base);
}

static void dirty_writes_wait_on_protected_batches(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	enum { NVM = 2 };
	struct testvm t[NVM];
	struct ksm_vm *kv;
	char err[512], name[16];
	int base = memfd_create("ksm-live-dirty", MFD_CLOEXEC);

	assert_true(base >= 0);
	for (int i = 0; i < NVM; i++) {
		snprintf(name, sizeof(name), "dirty%d", i);
		struct hv_vm_config c = {
			.name = name, .mem_bytes = 64 << 20, .ncpus = 1,
			.kind = HV_GUEST_MICRO, .image = test_guest_path(),
			.cmdline = "dirty mib=8 rate=1000 seconds=4 seed=5",
			.base_memfd = base, .timeout_s = 120,
		};
		if (testvm_create_cfg(&t[i], &c, err, sizeof(err)))
			fail_msg("create %s: %s", name, err);
		const char *why;
		if (!hv_vm_wp_enabled(t[i].vm, &why)) {
			print_message("[  SKIPPED ] %s: no write-protect: %s\n",
				      __func__, why);
			for (int j = 0; j <= i; j++)
				testvm_destroy(&t[j]);
			close(base);
			skip();
		}
	}
	assert_int_equal(ksm_create(NULL, &g_ksm, err, sizeof(err)), 0);
	set(g_ksm, "sleep_ms", "0");
	set(g_ksm, "volatile_passes", "0");
	/* the log read every 100 ms, a rewrite cycle (8 MiB at 1000 %/s):
	 * a batch merges what the guests are about to rewrite again */
	set(g_ksm, "dirty_ms", "100");
	set(g_ksm, "batch_pages", "512");
	for (int i = 0; i < NVM; i++)
		if (ksm_add_vm(g_ksm, &ksm_hv_ops, t[i].vm, 0, &kv, err,
			       sizeof(err)))
			fail_msg("ksm_add_vm: %s", err);
	assert_int_equal(ksm_start(g_ksm), 0);
	for (int i = 0; i < NVM; i++)
		hv_vm_start(t[i].vm);
	for (int i = 0; i < NVM; i++) {
		while (!hv_vm_wait_timeout(t[i].vm, 0.7))
			check(g_ksm);
		struct hv_exit_status es = testvm_wait(&t[i], 10);
		if (es.kind != HV_EXIT_EXITED || es.code != 0)
			fail_msg("%s: %s %d %s\n%s", hv_vm_name(t[i].vm),
				 hv_exit_kind_name(es.kind), es.code, es.reason,
				 t[i].log);
		assert_true(testvm_log_has(&t[i], "mismatches=0"));
	}
	ksm_stop(g_ksm);
	check(g_ksm);
	struct ksm_stats st;
	ksm_stats(g_ksm, &st);
	print_message("[ live ] 2 x dirty 8 MiB at 1000 %%/s: %llu merges, %llu "
		      "unmerges, %llu races, %llu write-protected batches "
		      "(window p99 %.0f us), %llu writes waited (stall p99 %.0f "
		      "us, max %.0f us), %llu pauses\n",
		      (unsigned long long)st.merges, (unsigned long long)st.unmerges,
		      (unsigned long long)st.merge_races,
		      (unsigned long long)st.wp_batches, st.wp_window_p99_ns / 1e3,
		      (unsigned long long)st.wp_waits, st.stall_p99_ns / 1e3,
		      st.stall_max_ns / 1e3, (unsigned long long)st.pauses);
	assert_true(st.merges >= 100);
	assert_true(st.unmerges >= 100);
	assert_int_equal(st.pauses, 0);
	/* the sanitizer build scans several times slower: a handful of
	 * batches in the 4 s (9 in one run), too few to promise a wait */
	if (!test_san_light()) {
		assert_true(st.wp_batches >= 10);
		assert_true(st.wp_waits >= 1);
	}
	ksm_destroy(g_ksm);
	g_ksm = NULL;
	for (int i = 0; i < NVM; i++)
		testvm_destroy(&t[i]);
	close(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(verify_while_merging_full_speed, teardown),
		cmocka_unit_test_teardown(dirty_writes_wait_on_protected_batches,
					  teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
