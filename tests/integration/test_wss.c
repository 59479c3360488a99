/*
 * test_wss.c - cli/wss.c on real guests: a VM rewriting a 32 MiB working
 * set shows about 32 MiB, an idle VM whose memory was touched once shows
 * next to nothing after a window, a VM that turns idle drops within
 * two windows, and the dirty log is read once per window, not per call.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "testvm.h"
#include "cli/cli.h"

#define MiB (1ull << 20)

static void estimates_follow_the_writes(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct testvm busy, idle;
	struct wss wb, wi;
	const uint64_t win = 2000000000ull;   /* 2 s */

	testvm_create(&busy, "busy", 256 * MiB, 1, "dirty mib=32 rate=50 seconds=7");
	testvm_create(&idle, "idle", 256 * MiB, 1, "idle touch=1 seconds=30");
	hv_vm_start(busy.vm);
	hv_vm_start(idle.vm);
	usleep(1000000);   /* both set up: regions written, idle's touch done */
	uint64_t t = hv_now_ns();
	assert_int_equal(wss_start(&wb, busy.vm, win, 0, t), 0);
	assert_int_equal(wss_start(&wi, idle.vm, win, 0, t), 0);
	uint64_t b = 0, i = 0, bmax = 0;
	for (int k = 0; k < 10; k++) {   /* 5 s: two full windows */
		usleep(500000);
		t = hv_now_ns();
		b = wss_sample(&wb, t);
		i = wss_sample(&wi, t);
		if (b > bmax)
			bmax = b;
	}
	print_message("wss: busy %.1f MiB (max %.1f), idle %.2f MiB\n",
		      (double)b / MiB, (double)bmax / MiB, (double)i / MiB);
	assert_true(b >= 28 * MiB && b <= 40 * MiB);
	assert_true(i < 1 * MiB);
	/* once per window (a short first one), not at every call: each
	 * fetch makes the guest fault again on every page it rewrites */
	print_message("wss: %llu fetches in 10 calls\n",
		      (unsigned long long)wb.fetches);
	assert_true(wb.fetches >= 2 && wb.fetches <= 4);
	/* busy stops writing at 7 s: within two windows it reads idle */
	struct hv_exit_status st = testvm_wait(&busy, 60);
	assert_int_equal(st.kind, HV_EXIT_EXITED);
	assert_int_equal(st.code, 0);
	for (int k = 0; k < 9; k++) {
		usleep(500000);
		b = wss_sample(&wb, hv_now_ns());
	}
	print_message("wss: busy after exit %.2f MiB\n", (double)b / MiB);
	assert_true(b < 1 * MiB);
	wss_stop(&wb);
	wss_stop(&wi);
	hv_vm_stop(idle.vm);
	testvm_destroy(&busy);
	testvm_destroy(&idle);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(estimates_follow_the_writes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
