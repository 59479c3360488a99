/*
 * test_balloon_leak.c - the memory-safety invariant against a hostile
 * guest: pages a guest gave away or took back read zero or its own data,
 * never another VM's.
 *
 * Three micro guests of one sharing domain: two honest ones run `fill`
 * (half of their pages identical, the rest unique to distinct seeds) at
 * the same GPAs as the hostile one, which first writes its own data there.
 * The dense ksm engine merges the honest VMs' identical pages into the
 * domain's base memfd, right under the hostile guest's private copies.
 * Then the hostile guest (`hostile` workload) drives the balloon by hand:
 * inflate (2 MiB and 4 KiB entries), free page reporting, deflate, a
 * device reset (REGISTER again) and UNREGISTER, reading every page after
 * each step.  The test asserts every page read zero or its own data, that
 * the host accepted every entry, that the base memfd really held the
 * honest VMs' data under those pages (so a plain discard would have shown
 * it: it did before hv_vm_zero), and that ksm's self-check holds.  The same
 * scenario runs on anonymous RAM.  Skipped without /dev/kvm.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "testvm.h"
#include "guest/patterns.h"
#include "ksm_test.h"
#include "balloon-host/balloon_host.h"

#define MIB (1ull << 20)
#define REGION_MIB 64
#define NPAGES (REGION_MIB * 256)

static struct ksm *g_ksm;

static int teardown(void **state)
{
	(void)state;
	if (g_ksm)
		ksm_destroy(g_ksm);
	g_ksm = NULL;
	return 0;
}

static void quiet(void *ctx, const char *line)
{
	(void)ctx;
	(void)line;
}

/* Pages of the region at gpa whose base[g] holds the honest VMs'
 * identical content. */
static uint64_t base_pages_with_honest_data(int fd, uint64_t gpa)
{
	static uint64_t buf[512];
	uint64_t n = 0;
	for (uint64_t i = 0; i < NPAGES; i++) {
		if (dvm_fill_class(i, 50, 0) != DVM_FILL_IDENTICAL)
			continue;
		if (pread(fd, buf, sizeof(buf), (off_t)(gpa + i * 4096)) !=
		    (ssize_t)sizeof(buf))
			continue;
		uint64_t b = dvm_fill_base(DVM_FILL_IDENTICAL, 0, i);
		n += buf[0] == dvm_word(b, 0) && buf[511] == dvm_word(b, 511);
	}
	return n;
}

/* The hostile guest's line for one step: asserts all accepted, none
 * foreign. */
static void expect_step(struct testvm *t, const char *step, uint64_t pages)
{
	char want[96];
	snprintf(want, sizeof(want), "hostile: step=%s pages=%llu accepted=%llu ",
		 step, (unsigned long long)pages, (unsigned long long)pages);
	if (!testvm_log_has(t, want))
		fail_msg("no '%s' line:\n%s", want, t->log);
	snprintf(want, sizeof(want), "hostile: step=%s ", step);
	const char *l = strstr(t->log, want);
	assert_non_null(l);
	const char *f = strstr(l, "foreign=");
	assert_non_null(f);
	if (strtoull(f + 8, NULL, 10) != 0)
		fail_msg("step %s: pages read another VM's data:\n%s", step, t->log);
}

static void scenario(bool dense)
{
	enum { HOSTILE = 0, NVM = 3 };
	struct testvm t[NVM];
	struct ksm_vm *kv[NVM];
	struct balloon_host *dev;
	char err[512], args[NVM][96];
	const char *names[NVM] = { "hostile", "honest1", "honest2" };
	int base = dense ? memfd_create("leak-base", MFD_CLOEXEC) : -1;
	uint64_t gpa = 0, part = NPAGES / 8;

	if (dense)
		assert_true(base >= 0);
	snprintf(args[0], sizeof(args[0]), "hostile mib=%d seed=3", REGION_MIB);
	for (int i = 1; i < NVM; i++)
		snprintf(args[i], sizeof(args[i]),
			 "fill mib=%d identical=50 seed=%d hold=-1", REGION_MIB, i);
	for (int i = 0; i < NVM; i++) {
		struct hv_vm_config c = {
			.name = names[i], .mem_bytes = 128 * MIB, .ncpus = 1,
			.kind = HV_GUEST_MICRO, .image = test_guest_path(),
			.cmdline = args[i], .base_memfd = base, .timeout_s = 120,
			.features = i == HOSTILE ? HV_FEAT_BALLOON : 0,
		};
		if (testvm_create_cfg(&t[i], &c, err, sizeof(err)))
			fail_msg("create %s: %s", names[i], err);
	}
	assert_int_equal(ksm_create(NULL, &g_ksm, err, sizeof(err)), 0);
	assert_int_equal(ksm_set_tunable(g_ksm, "sleep_ms", "10", err,
					 sizeof(err)), 0);
	for (int i = 0; i < NVM; i++)
		if (ksm_add_vm(g_ksm, &ksm_hv_ops, t[i].vm, 0, &kv[i], err,
			       sizeof(err)))
			fail_msg("ksm_add_vm: %s", err);
	struct balloon_host_config bc = {
		.log = quiet, .free_page_reporting = true,
		.on_page_released = ksm_page_released, .release_ctx = kv[HOSTILE],
	};
	assert_int_equal(balloon_host_attach(t[HOSTILE].vm, &bc, &dev), 0);

	/* the hostile guest writes first: base[g] can then take the honest
	 * VMs' content (nobody reads the base hole any more) */
	assert_int_equal(hv_vm_start(t[HOSTILE].vm), 0);
	assert_int_equal(hv_vm_wait_ready(t[HOSTILE].vm, DVM_READY_TOUCHED, 60), 0);
	assert_true(hv_vm_result(t[HOSTILE].vm, DVM_RESULT_REGION_GPA, &gpa));
	for (int i = 1; i < NVM; i++)
		assert_int_equal(hv_vm_start(t[i].vm), 0);
	for (int i = 1; i < NVM; i++)
		for (int w = 0; !testvm_log_has(&t[i], "fill: done"); w++) {
			assert_true(w < 600);
			usleep(100000);
		}
	assert_int_equal(ksm_start(g_ksm), 0);
	/* until the identical half of the honest VMs is shared */
	struct ksm_stats st;
	for (int w = 0;; w++) {
		ksm_stats(g_ksm, &st);
		if (st.pages_sharing >= 2 * (NPAGES / 2) * 9 / 10)
			break;
		if (w >= 600)
			fail_msg("only %llu pages shared",
				 (unsigned long long)st.pages_sharing);
		usleep(100000);
	}
	uint64_t under = dense ? base_pages_with_honest_data(base, gpa) : 0;
	print_message("[ leak ] %s: %llu pages shared (%llu through the base); "
		      "%llu of the hostile guest's pages have honest data in "
		      "base[g]\n", dense ? "dense" : "anonymous",
		      (unsigned long long)st.pages_sharing,
		      (unsigned long long)st.base_pages, (unsigned long long)under);
	if (dense)   /* else the test would prove nothing */
		assert_true(under >= (NPAGES / 2) * 9 / 10);

	hv_vm_notify(t[HOSTILE].vm);          /* release HC_READY */
	struct hv_exit_status es = testvm_wait(&t[HOSTILE], 60);
	if (es.kind != HV_EXIT_EXITED || es.code != 0)
		fail_msg("hostile: %s %d %s\n%s", hv_exit_kind_name(es.kind),
			 es.code, es.reason, t[HOSTILE].log);
	expect_step(&t[HOSTILE], "inflate", 3 * part);
	expect_step(&t[HOSTILE], "report", part);
	expect_step(&t[HOSTILE], "deflate", 3 * part);
	expect_step(&t[HOSTILE], "reset", part);
	expect_step(&t[HOSTILE], "unregister", part);
	assert_true(testvm_log_has(&t[HOSTILE], "hostile: done foreign=0 control=ok"));
	uint64_t foreign = 1;
	assert_true(hv_vm_result(t[HOSTILE].vm, DVM_RESULT_FOREIGN_PAGES, &foreign));
	assert_int_equal(foreign, 0);

	struct balloon_host_stats bs;
	balloon_host_stats(dev, &bs);
	assert_int_equal(bs.size_bytes, 0);      /* everything went back */
	assert_int_equal(bs.rejected, 0);
	/* the all-ones stats were refused, and the host's figures stay */
	assert_true(bs.guest_rejected >= 1);
	assert_int_equal(bs.stats_updates, 0);
	json_t *js = balloon_host_stats_to_json(&bs);
	assert_non_null(js);
	assert_true(json_is_integer(json_object_get(js, "size_bytes")));
	assert_true(json_is_integer(json_object_get(js, "inflated_pages")));
	assert_int_equal(json_integer_value(json_object_get(js, "inflated_pages")),
			 5 * part);
	json_decref(js);
	check(g_ksm);
	ksm_stop(g_ksm);
	for (int i = 1; i < NVM; i++)
		hv_vm_stop(t[i].vm);
	for (int i = 1; i < NVM; i++)
		testvm_wait(&t[i], 30);
	check(g_ksm);
	ksm_destroy(g_ksm);
	g_ksm = NULL;
	balloon_host_detach(dev);
	for (int i = 0; i < NVM; i++)
		testvm_destroy(&t[i]);
	if (base >= 0)
		close(base);
}

static void hostile_guest_dense(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	scenario(true);
}

static void hostile_guest_anonymous(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	scenario(false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(hostile_guest_dense, teardown),
		cmocka_unit_test_teardown(hostile_guest_anonymous, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
