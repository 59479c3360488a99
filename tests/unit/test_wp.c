/*
 * test_wp.c - hv-core's write-protect (wp.c) on real VMs' RAM: a write
 * into a protected page waits, and lands intact after the unprotect; the
 * kernel facts the merge protocol rests on.
 *
 *  - a running micro guest (`dirtyset`) writing through KVM into a
 *    protected region stops at its first write, no write lands, the
 *    handler sees the fault; while it waits, the page it waits on gets a
 *    new backing (a memfd page with equal content, as a merge maps it)
 *    and another target page is zeroed; after the unprotect every write
 *    lands (on the new backing, which is copied on write: the memfd keeps
 *    its bytes) and the wait is reported; on anonymous and on base-memfd
 *    RAM;
 *  - after the replace, protection re-arms (backing.c re-registered the
 *    new mapping) and holds a host thread's write;
 *  - base-memfd RAM: a discard (MADV_DONTNEED) of a protected page keeps
 *    it protected (a write-protect marker, whose pagemap encoding
 *    ksm/isolate.c decodes), and the write lands on base[g]'s copy after
 *    the unprotect; anonymous RAM: the protection goes with the page;
 *  - a VM created with no_write_protect says so and refuses to protect.
 * Skipped without /dev/kvm.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "testvm.h"
#include "guest/patterns.h"

#define MiB (1024ULL * 1024)
#define PG  4096ULL

static void create(struct testvm *t, const char *args, int base_fd, bool no_wp)
{
	char err[512] = "";
	struct hv_vm_config c = {
		.name = "wp", .mem_bytes = 64 * MiB, .ncpus = 1,
		.kind = HV_GUEST_MICRO, .image = test_guest_path(),
		.cmdline = args, .base_memfd = base_fd, .timeout_s = 60,
		.no_write_protect = no_wp,
	};
	if (testvm_create_cfg(t, &c, err, sizeof(err)))
		fail_msg("create: %s", err);
}

static void need_wp(struct testvm *t)
{
	const char *why;
	if (!hv_vm_wp_enabled(t->vm, &why)) {
		print_message("[  SKIPPED ] write-protect unavailable: %s\n", why);
		testvm_destroy(t);
		skip();
	}
}

/* ------------------------------------------------- a host thread's write */

struct writer {
	volatile uint64_t *at;
	uint64_t val;
	volatile int done;
	pthread_t thr;
};

static void *write_fn(void *arg)
{
	struct writer *w = arg;
	*w->at = w->val;
	__atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void write_start(struct writer *w, void *at, uint64_t val)
{
	w->at = at;
	w->val = val;
	w->done = 0;
	assert_int_equal(pthread_create(&w->thr, NULL, write_fn, w), 0);
}

static bool write_landed_within(struct writer *w, unsigned ms)
{
	for (unsigned i = 0; i < ms && !__atomic_load_n(&w->done, __ATOMIC_ACQUIRE); i++)
		usleep(1000);
	return __atomic_load_n(&w->done, __ATOMIC_ACQUIRE);
}

/* ---------------------------------------------------------- KVM writes */

static void kvm_write_waits_and_lands(int base_fd)
{
	const uint64_t mib = 8, count = 64, seed = 4242, n = mib * 256;
	struct testvm t;
	char args[96];
	uint64_t region, i0, i1;
	uint8_t want0[PG], *p0, *p1;
	int mfd = memfd_create("wp-frame", MFD_CLOEXEC);

	snprintf(args, sizeof(args), "dirtyset mib=%llu count=%llu seed=%llu",
		 (unsigned long long)mib, (unsigned long long)count,
		 (unsigned long long)seed);
	create(&t, args, base_fd, false);
	need_wp(&t);
	hv_vm_start(t.vm);
	assert_int_equal(hv_vm_wait_ready(t.vm, DVM_READY_TOUCHED, 60), 0);
	assert_true(hv_vm_result(t.vm, DVM_RESULT_REGION_GPA, &region));
	struct hv_span all = { region, n * PG };
	assert_int_equal(hv_vm_wp_protect(t.vm, &all, 1), 0);
	hv_vm_notify(t.vm);   /* release: it writes word 0 of `count` pages */

	/* it stops at its first write: nothing lands, the guest waits */
	assert_int_not_equal(hv_vm_wait_ready(t.vm, DVM_READY_DIRTIED, 0.3), 0);
	for (uint64_t k = 0; k < count; k++) {
		uint64_t i = dvm_dirtyset_page(seed, n, k);
		uint64_t *w = hv_gpa_to_hva(t.vm, region + i * PG, 8);
		assert_int_equal(*w, dvm_dirtyset_value(seed, i, 1));
	}
	struct hv_vm_counters c;
	hv_vm_counters(t.vm, &c);
	assert_true(c.wp_faults >= 1);

	/* while it waits on page i0: i0 gets a memfd page of equal content
	 * (a merge), i1 (written later) is zeroed (a balloon inflate) */
	i0 = dvm_dirtyset_page(seed, n, 0);
	i1 = dvm_dirtyset_page(seed, n, 1);
	p0 = hv_gpa_to_hva(t.vm, region + i0 * PG, PG);
	p1 = hv_gpa_to_hva(t.vm, region + i1 * PG, PG);
	memcpy(want0, p0, PG);
	assert_int_equal(pwrite(mfd, p0, PG, 0), (ssize_t)PG);
	assert_int_equal(hv_vm_replace_backing(t.vm, region + i0 * PG, PG, mfd, 0), 0);
	assert_int_equal(hv_vm_zero(t.vm, region + i1 * PG, PG), 0);
	struct hv_wp_waits w;
	assert_int_equal(hv_vm_wp_unprotect(t.vm, &all, 1, &w), 0);
	assert_int_equal(hv_vm_wait_ready(t.vm, DVM_READY_DIRTIED, 30), 0);
	assert_true(w.n >= 1);
	assert_true(w.max_ns >= 200000000ull);   /* it waited 0.3 s and more */
	double held_ms = (double)w.max_ns / 1e6;

	/* every write landed; i0's on the new backing, copied on write */
	for (uint64_t k = 0; k < count; k++) {
		uint64_t i = dvm_dirtyset_page(seed, n, k);
		uint64_t *v = hv_gpa_to_hva(t.vm, region + i * PG, 8);
		assert_int_equal(*v, dvm_dirtyset_value(seed, i, 2));
	}
	assert_memory_equal(p0 + 8, want0 + 8, PG - 8);
	uint64_t f0;
	assert_int_equal(pread(mfd, &f0, 8, 0), 8);
	assert_int_equal(f0, dvm_dirtyset_value(seed, i0, 1));
	for (unsigned b = 8; b < PG; b++)
		assert_int_equal(p1[b], 0);

	/* protection re-arms over the new mappings and holds a write */
	struct writer wr;
	assert_int_equal(hv_vm_wp_protect(t.vm, &all, 1), 0);
	write_start(&wr, p0 + 64, 0x5151);
	assert_false(write_landed_within(&wr, 100));
	assert_int_equal(hv_vm_wp_unprotect(t.vm, &all, 1, &w), 0);
	pthread_join(wr.thr, NULL);
	assert_int_equal(*(uint64_t *)(p0 + 64), 0x5151);
	assert_int_equal(w.n, 1);
	print_message("[ wp ] %s RAM: KVM write held %.0f ms, landed on the "
		      "replaced page\n", base_fd >= 0 ? "base-memfd" : "anonymous",
		      held_ms);
	testvm_destroy(&t);
	close(mfd);
}

static void kvm_write_anon(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	kvm_write_waits_and_lands(-1);
}

static void kvm_write_base_memfd(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	int fd = memfd_create("wp-base", MFD_CLOEXEC);
	assert_true(fd >= 0);
	kvm_write_waits_and_lands(fd);
	close(fd);
}

/* ------------------------------------------------- discard of a protected */

#define PM_PRESENT (1ULL << 63)
#define PM_SWAP    (1ULL << 62)
#define PM_UFFD_WP (1ULL << 57)

static uint64_t pagemap(const void *p)
{
	uint64_t e = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &e, 8, (off_t)((uintptr_t)p / PG * 8)), 8);
	close(fd);
	return e;
}

static void discard_of_protected_page(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	for (int base = 0; base < 2; base++) {
		struct testvm t;
		int fd = base ? memfd_create("wp-base2", MFD_CLOEXEC) : -1;
		const uint64_t g = 16 * MiB, hole = g + PG;
		uint8_t *p, *q;
		struct writer wr;
		struct hv_wp_waits w;

		if (base) {   /* base[g] holds a merged content */
			uint8_t c[PG];
			memset(c, 0x3c, PG);
			assert_int_equal(pwrite(fd, c, PG, (off_t)g), (ssize_t)PG);
		}
		create(&t, "idle", fd, false);
		need_wp(&t);
		p = hv_gpa_to_hva(t.vm, g, PG);
		q = hv_gpa_to_hva(t.vm, hole, PG);
		memset(p, 0x77, PG);          /* the VM's own copy */
		struct hv_span s = { g, 2 * PG };
		assert_int_equal(hv_vm_wp_protect(t.vm, &s, 1), 0);
		/* q was never touched: protected all the same (a marker on
		 * base RAM, UFFD_FEATURE_WP_UNPOPULATED on anonymous RAM) */
		write_start(&wr, q, 0x99);
		assert_false(write_landed_within(&wr, 50));
		assert_int_equal(hv_vm_wp_unprotect(t.vm, &s, 1, &w), 0);
		pthread_join(wr.thr, NULL);
		assert_int_equal(*(uint64_t *)q, 0x99);

		assert_int_equal(hv_vm_wp_protect(t.vm, &s, 1), 0);
		assert_int_equal(hv_vm_discard(t.vm, g, PG), 0);
		uint64_t e = pagemap(p);
		write_start(&wr, p + 8, 0x1234);
		if (base) {
			/* a marker: PM_SWAP | PM_UFFD_WP, no page; where the
			 * swap bits show, type 31 offset 1 (ksm/isolate.c) */
			assert_true((e & (PM_PRESENT | PM_SWAP | PM_UFFD_WP)) ==
				    (PM_SWAP | PM_UFFD_WP));
			if (e & ((1ULL << 55) - 1))
				assert_int_equal(e & ((1ULL << 55) - 1),
						 31 | 1 << 5);
			assert_false(write_landed_within(&wr, 50));
			assert_int_equal(hv_vm_wp_unprotect(t.vm, &s, 1, &w), 0);
			pthread_join(wr.thr, NULL);
			assert_int_equal(w.n, 1);
			/* base[g] with the write on its copy; base intact */
			assert_int_equal(*(uint64_t *)(p + 8), 0x1234);
			assert_int_equal(p[0], 0x3c);
			assert_int_equal(p[100], 0x3c);
			uint8_t b;
			assert_int_equal(pread(fd, &b, 1, (off_t)g + 8), 1);
			assert_int_equal(b, 0x3c);
		} else {
			/* the protection went with the page: it lands on a
			 * fresh zero page (after the discard, as it must) */
			assert_true(write_landed_within(&wr, 1000));
			pthread_join(wr.thr, NULL);
			assert_int_equal(*(uint64_t *)(p + 8), 0x1234);
			assert_int_equal(p[0], 0);
			assert_int_equal(hv_vm_wp_unprotect(t.vm, &s, 1, &w), 0);
		}
		testvm_destroy(&t);
		if (fd >= 0)
			close(fd);
	}
}

static void no_write_protect_config(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct testvm t;
	const char *why;
	struct hv_span s = { 16 * MiB, PG };

	create(&t, "idle", -1, true);
	assert_false(hv_vm_wp_enabled(t.vm, &why));
	assert_non_null(strstr(why, "config"));
	assert_int_equal(hv_vm_wp_protect(t.vm, &s, 1), -EOPNOTSUPP);
	testvm_destroy(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(kvm_write_anon),
		cmocka_unit_test(kvm_write_base_memfd),
		cmocka_unit_test(discard_of_protected_page),
		cmocka_unit_test(no_write_protect_config),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
