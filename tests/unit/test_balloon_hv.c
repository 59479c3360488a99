/*
 * test_balloon_hv.c - the balloon device on real hv-core guest memory.
 *
 * Owns: checks of balloon-host/bh_hv.c, the backend over hv-core, on a
 * micro guest VM that is created but never started (the hypercalls are
 * made from the test, as the guest would make them): the boot-info feature
 * bit, DEVICE flagging of hv-core's low pages and of the registered pages,
 * that an inflate really gives the memory back to the host (mincore), the
 * page-state map, and that base-memfd RAM reads zero, never base[g], once
 * ballooned or given back.
 * Skipped without /dev/kvm.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <cmocka.h>
#include "testvm.h"
#include "balloon-host/bh_internal.h"

#define MiB (1024ULL * 1024)
#define PG  4096ULL

static void quiet(void *ctx, const char *line)
{
	(void)ctx;
	(void)line;
}

static int64_t hc(struct balloon_host *dev, uint64_t op, uint64_t a1,
		  uint64_t a2, uint64_t a3, uint64_t a4)
{
	uint64_t a[5] = { op, a1, a2, a3, a4 }, r2;
	return balloon_host_hypercall(dev, a, &r2);
}

/* Resident 4 KiB pages of [hva, hva+len). */
static uint64_t resident(void *hva, uint64_t len)
{
	unsigned char vec[512];
	uint64_t n = 0;
	assert_true(len / PG <= sizeof(vec));
	assert_int_equal(mincore(hva, len, vec), 0);
	for (uint64_t i = 0; i < len / PG; i++)
		n += vec[i] & 1;
	return n;
}

struct fixture {
	struct testvm t;
	struct balloon_host *dev;
	uint64_t heap;
	volatile uint64_t *ring;
};

static void setup_vm(struct fixture *fx, int base_memfd)
{
	char err[512] = "";
	struct hv_vm_config c = {
		.name = "balloon", .mem_bytes = 64 * MiB, .ncpus = 1,
		.kind = HV_GUEST_MICRO, .image = test_guest_path(),
		.cmdline = "idle", .base_memfd = base_memfd, .timeout_s = 30,
		.features = HV_FEAT_BALLOON,
	};
	struct balloon_host_config cfg = { .log = quiet };
	const struct hv_bootinfo *bi;
	if (testvm_create_cfg(&fx->t, &c, err, sizeof(err)))
		fail_msg("create: %s", err);
	assert_int_equal(balloon_host_attach(fx->t.vm, &cfg, &fx->dev), 0);
	bi = hv_gpa_to_hva(fx->t.vm, HV_BOOTINFO_GPA, sizeof(*bi));
	assert_non_null(bi);
	assert_true(bi->features & HV_FEAT_BALLOON);
	fx->heap = bi->heap_start;
	assert_int_equal(hc(fx->dev, BALLOON_OP_REGISTER, fx->heap, fx->heap + PG, 1,
			    BALLOON_PROTO_VERSION), 0);
	fx->ring = hv_gpa_to_hva(fx->t.vm, fx->heap + PG, PG);
	assert_true(hv_ps_flags(hv_page_get(fx->t.vm, fx->heap / PG)) & HV_PF_DEVICE);
	assert_true(hv_ps_flags(hv_page_get(fx->t.vm, fx->heap / PG + 1)) & HV_PF_DEVICE);
}

static void teardown_vm(struct fixture *fx)
{
	assert_int_equal(hc(fx->dev, BALLOON_OP_UNREGISTER, 0, 0, 0, 0), 0);
	balloon_host_detach(fx->dev);
	testvm_destroy(&fx->t);
}

static void test_hv_inflate_deflate(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct fixture fx;
	uint64_t blk, counts[8];
	uint8_t *p;
	setup_vm(&fx, -1);
	blk = (fx.heap + 4 * MiB) & ~(2 * MiB - 1);
	p = hv_gpa_to_hva(fx.t.vm, blk, 2 * MiB);
	memset(p, 0x5a, 2 * MiB);
	assert_int_equal(resident(p, 2 * MiB), 512);

	fx.ring[0] = balloon_ent_make(blk, 1);
	fx.ring[1] = balloon_ent_make(HV_ARGPAGE_GPA, 0);      /* hv-core's DEVICE */
	fx.ring[2] = balloon_ent_make(hv_vm_gpa_end(fx.t.vm), 0);
	fx.ring[3] = balloon_ent_make(fx.heap + PG, 0);        /* the ring */
	assert_int_equal(hc(fx.dev, BALLOON_OP_INFLATE, 4, 0, 0, 0), 1);
	assert_int_equal(balloon_ent_status(fx.ring[1]), BALLOON_ST_DEVICE);
	assert_int_equal(balloon_ent_status(fx.ring[2]), BALLOON_ST_RANGE);
	assert_int_equal(balloon_ent_status(fx.ring[3]), BALLOON_ST_DEVICE);
	/* the host really got the memory back */
	assert_int_equal(resident(p, 2 * MiB), 0);
	hv_vm_page_counts(fx.t.vm, counts);
	assert_int_equal(counts[HV_PAGE_BALLOONED], 512);

	fx.ring[0] = balloon_ent_make(blk, 1);
	assert_int_equal(hc(fx.dev, BALLOON_OP_DEFLATE, 1, 0, 0, 0), 1);
	for (uint64_t i = 0; i < 2 * MiB; i += 997)
		assert_int_equal(p[i], 0);
	assert_int_equal(hv_ps_state(hv_page_get(fx.t.vm, blk / PG)), HV_PAGE_ZERO);
	teardown_vm(&fx);
}

/* The feature bits are the VM spec's, written by hv-core: without
 * HV_FEAT_BALLOON the guest is not told of a balloon and none attaches. */
static void test_hv_feature_from_spec(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	char err[512] = "";
	struct testvm t;
	struct hv_vm_config c = {
		.name = "nofeat", .mem_bytes = 16 * MiB, .ncpus = 1,
		.kind = HV_GUEST_MICRO, .image = test_guest_path(),
		.cmdline = "idle", .base_memfd = -1, .timeout_s = 30,
	};
	struct balloon_host_config cfg = { .log = quiet };
	struct balloon_host *dev = NULL;
	if (testvm_create_cfg(&t, &c, err, sizeof(err)))
		fail_msg("create: %s", err);
	const struct hv_bootinfo *bi = hv_gpa_to_hva(t.vm, HV_BOOTINFO_GPA,
						     sizeof(*bi));
	assert_non_null(bi);
	assert_int_equal(bi->features, 0);
	assert_int_equal(hv_vm_features(t.vm), 0);
	assert_int_equal(balloon_host_attach(t.vm, &cfg, &dev), -ENODEV);
	assert_null(dev);
	testvm_destroy(&t);
}

static void test_hv_base_backed(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct fixture fx;
	uint64_t pg;
	uint8_t *p, pattern[PG];
	int fd = memfd_create("balloon_base", 0);
	assert_true(fd >= 0);
	setup_vm(&fx, fd);
	/* a base page with content: what a discard reverts to */
	pg = fx.heap + 3 * MiB;
	memset(pattern, 0x6b, sizeof(pattern));
	assert_int_equal(pwrite(fd, pattern, PG, (off_t)pg), (ssize_t)PG);
	p = hv_gpa_to_hva(fx.t.vm, pg, PG);
	memset(p, 1, PG);                           /* a private copy */
	fx.ring[0] = balloon_ent_make(pg, 0);
	assert_int_equal(hc(fx.dev, BALLOON_OP_INFLATE, 1, 0, 0, 0), 1);
	assert_int_equal(resident(p, PG), 0);       /* the memory is gone */
	for (unsigned i = 0; i < PG; i++)
		assert_int_equal(p[i], 0);            /* zero, never base[g] */
	assert_true(hv_vm_page_off_base(fx.t.vm, pg));
	fx.ring[0] = balloon_ent_make(pg, 0);
	assert_int_equal(hc(fx.dev, BALLOON_OP_DEFLATE, 1, 0, 0, 0), 1);
	for (unsigned i = 0; i < PG; i++)
		assert_int_equal(p[i], 0);
	assert_int_equal(hv_ps_state(hv_page_get(fx.t.vm, pg / PG)), HV_PAGE_ZERO);
	/* a neighbour the balloon never took still reads its base page */
	assert_int_equal(pwrite(fd, pattern, PG, (off_t)(pg + PG)), (ssize_t)PG);
	assert_int_equal(((uint8_t *)hv_gpa_to_hva(fx.t.vm, pg + PG, PG))[7], 0x6b);
	assert_false(hv_vm_page_off_base(fx.t.vm, pg + PG));
	teardown_vm(&fx);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hv_inflate_deflate),
		cmocka_unit_test(test_hv_base_backed),
		cmocka_unit_test(test_hv_feature_from_spec),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
