/*
 * test_console_vm.c - console output of real micro guests (the conflood
 * workload) through HC_CONSOLE and hv-core's console filter: terminal
 * attacks, split across two hypercalls, reach the console callback only
 * escaped; a guest flooding 3.2 MB is cut to its budget, says how much
 * was suppressed, and a quiet VM beside it loses no line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "testvm.h"

static void create(struct testvm *t, const char *name, const char *args,
		   uint64_t rate)
{
	char err[512] = "";
	struct hv_vm_config c = {
		.name = name, .mem_bytes = 16 << 20, .ncpus = 1,
		.kind = HV_GUEST_MICRO, .image = test_guest_path(),
		.cmdline = args, .base_memfd = -1, .timeout_s = 120,
		.console_rate = rate,
	};
	if (testvm_create_cfg(t, &c, err, sizeof(err)))
		fail_msg("create %s: %s", name, err);
}

static void run_ok(struct testvm *t)
{
	struct hv_exit_status st = testvm_wait(t, 120);
	if (st.kind != HV_EXIT_EXITED || st.code != 0)
		fail_msg("%s: %s %d: %s", hv_vm_name(t->vm),
			 hv_exit_kind_name(st.kind), st.code, t->log);
}

static void hostile_text_escaped(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct testvm t;
	struct hv_vm_counters ct;

	create(&t, "hostile", "conflood bytes=200 line=50 esc=1 split=1",
	       HV_CONSOLE_UNLIMITED);
	hv_vm_start(t.vm);
	run_ok(&t);
	for (size_t i = 0; i < t.len; i++) {
		unsigned char b = (unsigned char)t.log[i];
		if ((b < 0x20 && b != '\n' && b != '\t') || b == 0x7f ||
		    (b == 0xc2 && i + 1 < t.len && (unsigned char)t.log[i + 1] < 0xa0))
			fail_msg("raw control 0x%02x at %zu in: %s", b, i, t.log);
	}
	/* the é after the attack comes through as UTF-8 */
	static const char want[] = "\\x1b[31m\\x1b]0;t\\x07\\xc2\\x9b\\x0d\\xff"
				   "\xc3\xa9xxx";
	unsigned n = 0;
	for (const char *p = t.log; (p = strstr(p, want)); p++)
		n++;
	assert_int_equal(n, 4);
	assert_true(testvm_log_has(&t, "conflood: done bytes=200 lines=4"));
	hv_vm_counters(t.vm, &ct);
	assert_int_equal(ct.console_suppressed_lines, 0);
	testvm_destroy(&t);
}

/* Bytes of the guest's own lines in a log (notices left out), and the
 * number of notices. */
static uint64_t guest_bytes(struct testvm *t, unsigned *notices)
{
	uint64_t n = 0;
	*notices = 0;
	for (char *l = t->log, *e; l && *l; l = e + 1) {
		e = strchr(l, '\n');
		if (!strncmp(l, "[densevm: ", 10))
			++*notices;
		else
			n += (uint64_t)(e - l) + 1;
	}
	return n;
}

static void flood_cut_to_budget(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct testvm f, q;
	struct hv_vm_counters cf, cq;

	uint64_t t0 = hv_now_ns();
	create(&f, "flood", "conflood bytes=3200000 line=256", 0);
	create(&q, "quiet", "conflood bytes=4000 line=40", 0);
	hv_vm_start(f.vm);
	hv_vm_start(q.vm);
	run_ok(&q);
	run_ok(&f);
	double secs = (double)(hv_now_ns() - t0) / 1e9;

	/* the quiet VM: all 100 lines and its summary, nothing dropped */
	unsigned notices, lines = 0;
	for (char *p = q.log; (p = strstr(p, "xxx\n")); p++)
		lines++;
	assert_int_equal(lines, 100);
	assert_true(testvm_log_has(&q, "conflood: done bytes=4000 lines=100"));
	hv_vm_counters(q.vm, &cq);
	assert_int_equal(cq.console_suppressed_lines, 0);

	/* the flood: at most the burst and the rate over the run; the rest
	 * counted, and announced */
	uint64_t got = guest_bytes(&f, &notices);
	hv_vm_counters(f.vm, &cf);
	uint64_t most = HV_CONSOLE_BURST_DEFAULT +
			(uint64_t)(secs * HV_CONSOLE_RATE_DEFAULT);
	if (got > most || got < HV_CONSOLE_BURST_DEFAULT - 256)
		fail_msg("flood: %llu bytes passed in %.2f s (at most %llu)",
			 (unsigned long long)got, secs, (unsigned long long)most);
	assert_true(notices >= 1);
	assert_true(testvm_log_has(&f, "lines of console output suppressed"));
	assert_true(cf.console_suppressed_lines > 0);
	/* every byte either passed or was counted (the boot and summary
	 * lines are among them, under 400 bytes) */
	assert_true(got + cf.console_suppressed_bytes >= 3200000);
	assert_true(got + cf.console_suppressed_bytes <= 3200000 + 400);
	print_message("flood: %llu of %llu bytes passed in %.2f s, %u notices\n",
		      (unsigned long long)got,
		      (unsigned long long)(got + cf.console_suppressed_bytes),
		      secs, notices);
	testvm_destroy(&f);
	testvm_destroy(&q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(hostile_text_escaped),
		cmocka_unit_test(flood_cut_to_budget),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
