/*
 * test_memory_ops.c - hv-core's memory interfaces under a running guest:
 * dirty logging reports exactly the pages the guest wrote; pause/resume
 * 1000 times loses no write; replacing a page range's backing with a memfd
 * keeps the guest's data and leaves the memfd unchanged after guest writes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "testvm.h"
#include "guest/patterns.h"

static void dirty_log_is_exact(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	const uint64_t mib = 16, count = 777, seed = 12345;
	char args[128];
	struct testvm t;

	snprintf(args, sizeof(args), "dirtyset mib=%llu count=%llu seed=%llu",
		 (unsigned long long)mib, (unsigned long long)count,
		 (unsigned long long)seed);
	testvm_create(&t, "dirty", 64 << 20, 1, args);
	assert_int_equal(hv_dirty_enable(t.vm, HV_DIRTY_KSM, true), 0);
	assert_int_equal(hv_dirty_enable(t.vm, HV_DIRTY_WSS, true), 0);
	hv_vm_start(t.vm);
	assert_int_equal(hv_vm_wait_ready(t.vm, DVM_READY_TOUCHED, 60), 0);

	uint64_t region;
	assert_true(hv_vm_result(t.vm, DVM_RESULT_REGION_GPA, &region));
	unsigned nr;
	const struct hv_ram_range *r = hv_vm_ranges(t.vm, &nr);
	assert_int_equal(nr, 1);
	uint64_t npages = r[0].len >> 12;
	uint64_t *bm = calloc((npages + 63) / 64, 8);
	uint64_t *bm2 = calloc((npages + 63) / 64, 8);
	assert_int_equal(hv_dirty_fetch(t.vm, HV_DIRTY_KSM, 0, bm), 0);  /* clear */
	assert_int_equal(hv_dirty_fetch(t.vm, HV_DIRTY_WSS, 0, bm2), 0);
	assert_int_equal(hv_dirty_fetch(t.vm, HV_DIRTY_KSM, 0, bm), 0);

	hv_vm_notify(t.vm);
	assert_int_equal(hv_vm_wait_ready(t.vm, DVM_READY_DIRTIED, 60), 0);
	assert_int_equal(hv_dirty_fetch(t.vm, HV_DIRTY_KSM, 0, bm), 0);

	uint64_t rp = mib * 256, first = region >> 12;
	uint8_t *want = calloc(rp, 1);
	for (uint64_t k = 0; k < count; k++)
		want[dvm_dirtyset_page(seed, rp, k)] = 1;
	uint64_t got_in = 0, missing = 0, extra = 0, outside = 0;
	for (uint64_t p = 0; p < npages; p++) {
		bool d = bm[p / 64] >> (p % 64) & 1;
		if (p >= first && p < first + rp) {
			bool w = want[p - first];
			got_in += d;
			missing += w && !d;
			extra += d && !w;
		} else if (d) {
			/* only hv-core's own pages (stack, argument page, page
			 * tables) may be written outside the region */
			outside++;
			assert_true(p < first);
		}
	}
	print_message("dirty log: %llu pages in region (want %llu), %llu below it\n",
		      (unsigned long long)got_in, (unsigned long long)count,
		      (unsigned long long)outside);
	assert_int_equal(missing, 0);
	assert_int_equal(extra, 0);
	/* the second consumer sees the very same writes, though ksm's fetch
	 * cleared KVM's log (hv-core kept them for it) */
	memset(bm2, 0, (npages + 63) / 64 * 8);
	assert_int_equal(hv_dirty_fetch(t.vm, HV_DIRTY_WSS, 0, bm2), 0);
	for (uint64_t p = first; p < first + rp; p++)
		if ((bm[p / 64] >> (p % 64) & 1) != (bm2[p / 64] >> (p % 64) & 1))
			fail_msg("page %llu: ksm saw %d, wss saw %d",
				 (unsigned long long)p, (int)(bm[p / 64] >> (p % 64) & 1),
				 (int)(bm2[p / 64] >> (p % 64) & 1));
	memset(bm2, 0, (npages + 63) / 64 * 8);
	assert_int_equal(hv_dirty_fetch(t.vm, HV_DIRTY_WSS, 0, bm2), 0);
	for (uint64_t p = first; p < first + rp; p++)
		assert_false(bm2[p / 64] >> (p % 64) & 1);   /* once, not twice */
	/* and the data is there: each selected page's word 0 */
	for (uint64_t k = 0; k < count; k++) {
		uint64_t i = dvm_dirtyset_page(seed, rp, k);
		uint64_t *w = hv_gpa_to_hva(t.vm, region + i * 4096, 8);
		assert_int_equal(*w, dvm_dirtyset_value(seed, i, 2));
	}
	/* host-side writes are reported through hv_dirty_mark(), once */
	hv_dirty_mark(t.vm, region + 5 * 4096 + 100, 4096);  /* 2 pages */
	assert_int_equal(hv_dirty_fetch(t.vm, HV_DIRTY_KSM, 0, bm), 0);
	uint64_t marked = 0;
	for (uint64_t p = first; p < first + rp; p++)
		marked += bm[p / 64] >> (p % 64) & 1;
	assert_int_equal(marked, 2);
	assert_true(bm[(first + 5) / 64] >> ((first + 5) % 64) & 1);
	assert_true(bm[(first + 6) / 64] >> ((first + 6) % 64) & 1);
	assert_int_equal(hv_dirty_fetch(t.vm, HV_DIRTY_WSS, 0, bm2), 0);
	assert_true(bm2[(first + 5) / 64] >> ((first + 5) % 64) & 1);
	assert_true(bm2[(first + 6) / 64] >> ((first + 6) % 64) & 1);
	/* a consumer that is off gets nothing, and keeps nothing */
	assert_int_equal(hv_dirty_enable(t.vm, HV_DIRTY_WSS, false), 0);
	assert_int_equal(hv_dirty_fetch(t.vm, HV_DIRTY_WSS, 0, bm2), -ENOENT);
	assert_int_equal(hv_dirty_fetch(t.vm, HV_DIRTY_KSM, 0, bm), 0);
	for (uint64_t p = first; p < first + rp; p++)
		assert_false(bm[p / 64] >> (p % 64) & 1);

	hv_vm_notify(t.vm);
	struct hv_exit_status st = testvm_wait(&t, 60);
	assert_int_equal(st.kind, HV_EXIT_EXITED);
	assert_int_equal(st.code, 0);
	free(want);
	free(bm);
	free(bm2);
	testvm_destroy(&t);
}

static void pause_resume_1000(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct testvm t;
	static double lat[1000];

	testvm_create(&t, "pauser", 128 << 20, 2, "verify mib=48 seconds=12");
	hv_vm_start(t.vm);
	usleep(300 * 1000);
	for (int i = 0; i < 1000; i++) {
		lat[i] = (double)hv_vm_pause(t.vm) / 1000.0;
		hv_vm_resume(t.vm);
		usleep(2000);
	}
	struct hv_exit_status mid;
	hv_vm_status(t.vm, &mid);
	assert_int_equal(mid.kind, HV_EXIT_RUNNING);  /* paused a live guest */
	struct hv_exit_status st = testvm_wait(&t, 120);
	if (st.kind != HV_EXIT_EXITED || st.code != 0)
		fail_msg("%s %d %s", hv_exit_kind_name(st.kind), st.code, st.reason);
	assert_false(testvm_log_has(&t, "MISMATCH"));
	print_message("pause latency over 1000 pauses of 2 vCPUs: p50 %.1f us, "
		      "p99 %.1f us, max %.1f us\n", percentile(lat, 1000, 50),
		      percentile(lat, 1000, 99), percentile(lat, 1000, 100));
	testvm_destroy(&t);
}

static void replace_backing_under_guest(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct testvm t;
	const uint64_t len = 4 << 20;

	testvm_create(&t, "replace", 128 << 20, 1, "verify mib=32 seconds=6");
	hv_vm_start(t.vm);
	usleep(1500 * 1000);   /* a few passes: the range holds a pattern */

	const struct hv_bootinfo *bi = hv_gpa_to_hva(t.vm, HV_BOOTINFO_GPA, 4096);
	uint64_t region = dvm_first_region_gpa(bi->heap_start, bi->ranges[0].len);
	uint64_t gpa = region + (2 << 20);
	int fd = memfd_create("replace-test", 0);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)len), 0);
	uint8_t *snap = malloc(len);

	hv_vm_pause(t.vm);
	uint8_t *hva = hv_gpa_to_hva(t.vm, gpa, len);
	memcpy(snap, hva, len);
	assert_int_equal(pwrite(fd, snap, len, 0), (ssize_t)len);
	long vmas_before = hv_vma_count();
	assert_int_equal(hv_vm_replace_backing(t.vm, gpa, len, fd, 0), 0);
	assert_true(hv_vma_count() > vmas_before);  /* the mapping really changed */
	assert_memory_equal(hva, snap, len);
	hv_vm_resume(t.vm);

	struct hv_exit_status st = testvm_wait(&t, 120);
	if (st.kind != HV_EXIT_EXITED || st.code != 0)
		fail_msg("%s %d %s", hv_exit_kind_name(st.kind), st.code, st.reason);
	assert_false(testvm_log_has(&t, "MISMATCH"));

	/* the guest rewrote the range: its view moved on, the memfd did not */
	uint8_t *frame = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	assert_true(frame != MAP_FAILED);
	assert_memory_equal(frame, snap, len);
	assert_memory_not_equal(hva, snap, len);
	/* and the original (anonymous) backing comes back, reading zero */
	assert_int_equal(hv_vm_restore_backing(t.vm, gpa, len), 0);
	for (uint64_t i = 0; i < len; i += 8)
		if (*(uint64_t *)(hva + i))
			fail_msg("restored page not zero at +%llu", (unsigned long long)i);
	assert_memory_equal(frame, snap, len);
	munmap(frame, len);
	close(fd);
	free(snap);
	testvm_destroy(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(dirty_log_is_exact),
		cmocka_unit_test(pause_resume_1000),
		cmocka_unit_test(replace_backing_under_guest),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
