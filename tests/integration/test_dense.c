/*
 * test_dense.c - many micro guests in one process: 32 guests of 128 MiB
 * run at once and one of them crashes on purpose; the other 31 finish
 * their work.  Then 8 guests run `verify` for 30 s with no mismatch.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testvm.h"
#include "guest/patterns.h"

#define NVM 32

static void thirty_two_guests_one_crash(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	static struct testvm t[NVM];
	char name[16];
	uint64_t t0 = hv_now_ns();

	for (int i = 0; i < NVM; i++) {
		snprintf(name, sizeof(name), "d%02d", i);
		testvm_create(&t[i], name, 128 << 20, 1,
			      i == 7 ? "crash after_ms=200" : "verify mib=16 passes=4");
	}
	for (int i = 0; i < NVM; i++)
		hv_vm_start(t[i].vm);
	int exited = 0;
	for (int i = 0; i < NVM; i++) {
		struct hv_exit_status st = testvm_wait(&t[i], 300);
		if (i == 7) {
			assert_int_equal(st.kind, HV_EXIT_CRASHED);
			continue;
		}
		if (st.kind != HV_EXIT_EXITED || st.code != 0)
			fail_msg("%s: %s %d %s", name, hv_exit_kind_name(st.kind),
				 st.code, st.reason);
		assert_true(testvm_log_has(&t[i], "verify: done passes=4 mismatches=0"));
		exited++;
	}
	assert_int_equal(exited, NVM - 1);
	print_message("32 guests: %.2f s from start to the last exit\n",
		      (double)(hv_now_ns() - t0) / 1e9);
	for (int i = 0; i < NVM; i++)
		testvm_destroy(&t[i]);
}

static void eight_guests_verify_30s(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct testvm t[8];
	char name[16], args[64];
	/* a plain build's soak: the sanitizer build's finds its faults sooner */
	int secs = test_san_light() ? 10 : 30;
	if (secs != 30)
		print_message("sanitizer build: %d s (the plain build: 30 s; "
			      "DENSEVM_TEST_FULL=1 here)\n", secs);
	snprintf(args, sizeof(args), "verify mib=32 seconds=%d", secs);

	for (int i = 0; i < 8; i++) {
		snprintf(name, sizeof(name), "soak%d", i);
		testvm_create(&t[i], name, 128 << 20, 1, args);
	}
	for (int i = 0; i < 8; i++)
		hv_vm_start(t[i].vm);
	for (int i = 0; i < 8; i++) {
		struct hv_exit_status st = testvm_wait(&t[i], 120);
		if (st.kind != HV_EXIT_EXITED || st.code != 0)
			fail_msg("soak%d: %s %d %s", i, hv_exit_kind_name(st.kind),
				 st.code, st.reason);
		assert_false(testvm_log_has(&t[i], "MISMATCH"));
		uint64_t passes = 0;
		assert_true(hv_vm_result(t[i].vm, DVM_RESULT_VERIFY_PASSES, &passes));
		assert_true(passes >= 2);
		print_message("soak%d: %llu passes in %d s\n", i,
			      (unsigned long long)passes, secs);
	}
	for (int i = 0; i < 8; i++)
		testvm_destroy(&t[i]);
}

/* More VMs than the old cap of 256, in one `densevm run`: they all start
 * and exit 0 (the density benchmark must not stop at a limit of ours). */
static void more_than_256_vms(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	char *out;
	char *argv[] = { "densevm", "run", "--quiet", "--ctl", "none", "--vm",
			 "name=m,count=300,mem=16M,workload=idle seconds=1", NULL };
	uint64_t t0 = hv_now_ns();
	int rc = run_densevm(argv, &out);
	int ok = 0;
	for (char *p = out; (p = strstr(p, ": exited: exit status 0")); p++)
		ok++;
	print_message("300 VMs: %d exited 0 in %.2f s\n", ok,
		      (double)(hv_now_ns() - t0) / 1e9);
	if (rc != 0 || ok != 300)
		fail_msg("rc %d, %d of 300 exited 0:\n%.2000s", rc, ok, out);
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(thirty_two_guests_one_crash),
		cmocka_unit_test(eight_guests_verify_30s),
		cmocka_unit_test(more_than_256_vms),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
