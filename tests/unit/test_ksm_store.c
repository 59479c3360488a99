/*
 * test_ksm_store.c - one content store per domain (ksm/base_frame.c), on
 * fake VMs sharing a base memfd: content that base[g] holds for pages at
 * g is not stored again for pages at other GPAs, whichever is seen first;
 * base[g] stays as it is while pages elsewhere map it, even after every
 * page at g left it; and it is punched once the last user leaves.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/mman.h>

#include "ksm_test.h"

#define NP   64u   /* pages per VM */
#define NSH  32u   /* shared pages */
#define SHIFT 24u  /* the shuffled VM holds page i's content at i + SHIFT */

/* The clones hold seed 500 + i at page i; the shuffled VM at i + SHIFT. */
static struct ksm_fake_vm *clone_vm(int base, unsigned j)
{
	struct ksm_fake_vm *v = vm_new(j ? "clone1" : "clone0", base, NP);

	for (unsigned i = NSH; i < NP; i++)
		ksm_fake_fill_pages(v, i * PG, 1, 7000 + 100 * j + i);  /* own */
	for (unsigned i = 0; i < NSH; i++)
		ksm_fake_fill_pages(v, i * PG, 1, 500 + i);
	return v;
}

/* Its other pages hold its own content: a page it never wrote would read
 * base[g], which then could not take the clones' content (merge_base.c). */
static struct ksm_fake_vm *shuffled_vm(int base)
{
	struct ksm_fake_vm *v = vm_new("shuffled", base, NP);

	for (unsigned i = 0; i < NP; i++)
		ksm_fake_fill_pages(v, i * PG, 1, 8000 + i);
	for (unsigned i = 0; i < NSH; i++)
		ksm_fake_fill_pages(v, (i + SHIFT) * PG, 1, 500 + i);
	return v;
}

static struct ksm_fake_vm *own_vm(int base, const char *name, unsigned seed)
{
	struct ksm_fake_vm *v = vm_new(name, base, NP);

	for (unsigned i = 0; i < NP; i++)
		ksm_fake_fill_pages(v, i * PG, 1, seed + i);
	return v;
}

static void expect_all(struct ksm_fake_vm **v)
{
	for (unsigned i = 0; i < NSH; i++) {
		expect_pattern(v[0], i * PG, 500 + i);
		expect_pattern(v[1], i * PG, 500 + i);
		expect_pattern(v[2], (i + SHIFT) * PG, 500 + i);
	}
}

/* Converged: 32 contents stored once each, all in the base memfd; the
 * shuffled VM maps base pages at other GPAs (state FRAME, no frames
 * memfd page). */
static void expect_one_copy(struct ksm *k, struct ksm_fake_vm **v, int base)
{
	struct ksm_stats st;

	ksm_stats(k, &st);
	assert_int_equal(st.pages_sharing, 3 * NSH);
	assert_int_equal(st.base_pages, 2 * NSH);
	assert_int_equal(st.frames, NSH);
	assert_true(frames_blocks_bytes() == 0);
	assert_true(fd_blocks_bytes(base) == NSH * (long long)PG);
	for (unsigned i = 0; i < NSH; i++) {
		assert_int_equal(state(v[0], i * PG), HV_PAGE_BASE);
		assert_int_equal(state(v[2], (i + SHIFT) * PG), HV_PAGE_FRAME);
	}
	expect_all(v);
	check(k);
}

/* The clones are scanned first: base[g] exists when the shuffled VM's
 * pages are hashed, and they join it from the stable table. */
/* Two clones and a shuffled VM, added in order (VM ids are scan order). */
static struct ksm *fleet(struct ksm_fake_vm **v, int *base,
			 const unsigned order[3])
{
	struct ksm *k = mk(NULL);

	*base = memfd_create("store-base", MFD_CLOEXEC);
	v[0] = clone_vm(*base, 0);
	v[1] = clone_vm(*base, 1);
	v[2] = shuffled_vm(*base);
	for (unsigned j = 0; j < 3; j++)
		add(k, v[order[j]], 0);
	return k;
}

static void test_shuffled_joins_base(void **state_)
{
	static const unsigned order[3] = { 0, 1, 2 };
	struct ksm_fake_vm *v[3];
	int base;
	struct ksm *k = fleet(v, &base, order);

	(void)state_;
	pass(k);
	expect_one_copy(k, v, base);
	destroy_all(k, v, 3, base);
}

/* The shuffled VM is scanned first: its pages wait as candidates, and
 * the clones' new base pages absorb them (no frame made in between). */
static void test_base_absorbs_earlier_candidates(void **state_)
{
	static const unsigned order[3] = { 2, 0, 1 };
	struct ksm_fake_vm *v[3];
	int base;
	struct ksm *k = fleet(v, &base, order);

	(void)state_;
	pass(k);
	pass(k);
	expect_one_copy(k, v, base);
	destroy_all(k, v, 3, base);
}

/* Two shuffled VMs pair into new content, which the store already holds
 * in base[g]: the pair joins base[g] instead of writing a frame. */
static void test_new_pair_finds_base(void **state_)
{
	struct ksm *k = mk(NULL);
	int base = memfd_create("store-base", MFD_CLOEXEC);
	struct ksm_fake_vm *v[4];
	struct ksm_stats st;

	(void)state_;
	v[0] = clone_vm(base, 0);
	v[1] = clone_vm(base, 1);
	v[2] = own_vm(base, "x", 20000);
	v[3] = own_vm(base, "y", 30000);
	for (unsigned j = 0; j < 4; j++)
		add(k, v[j], 0);
	pass(k);
	/* later, both write base page 3's content at page 40 */
	ksm_fake_fill_pages(v[2], 40 * PG, 1, 503);
	ksm_fake_fill_pages(v[3], 40 * PG, 1, 503);
	pass(k);
	pass(k);
	ksm_stats(k, &st);
	assert_int_equal(st.pages_sharing, 2 * NSH + 2);
	assert_int_equal(st.frames, NSH);
	assert_true(frames_blocks_bytes() == 0);
	expect_pattern(v[2], 40 * PG, 503);
	expect_pattern(v[3], 40 * PG, 503);
	check(k);
	destroy_all(k, v, 4, base);
}

/* The memory-safety case: every page at g leaves base[g] (the clones
 * rewrite it, both with the same new content, which would make base[g]
 * writable again) while the shuffled VM still maps it.  base[g] must keep
 * its content: the shuffled VM reads what it wrote.  When the shuffled VM
 * writes too, base[g] is punched. */
static void test_base_kept_for_other_gpas(void **state_)
{
	static const unsigned order[3] = { 0, 1, 2 };
	struct ksm_fake_vm *v[3];
	struct ksm_stats st;
	uint64_t w = 42;
	unsigned i;
	int base;
	struct ksm *k = fleet(v, &base, order);

	(void)state_;
	pass(k);
	expect_one_copy(k, v, base);
	/* the clones rewrite pages 0..7 with equal new content */
	for (i = 0; i < 8; i++) {
		ksm_fake_fill_pages(v[0], i * PG, 1, 9100 + i);
		ksm_fake_fill_pages(v[1], i * PG, 1, 9100 + i);
	}
	for (int p = 0; p < 12; p++)   /* past KSM_BASE_WAIT */
		pass(k);
	for (i = 0; i < 8; i++) {
		expect_pattern(v[0], i * PG, 9100 + i);
		expect_pattern(v[1], i * PG, 9100 + i);
		expect_pattern(v[2], (i + SHIFT) * PG, 500 + i);
		assert_int_equal(state(v[2], (i + SHIFT) * PG), HV_PAGE_FRAME);
	}
	check(k);
	/* 32 old contents still stored (8 only for the shuffled VM) and 8
	 * new ones, which the clones share as frames: base[g] was busy */
	ksm_stats(k, &st);
	assert_int_equal(st.frames, NSH + 8);
	assert_int_equal(st.pages_sharing, 3 * NSH + 2 * 8 - 2 * 8);
	/* the shuffled VM writes its copies of pages 0..7: base[0..7] goes */
	for (i = 0; i < 8; i++)
		ksm_fake_write(v[2], (i + SHIFT) * PG, &w, sizeof(w));
	pass(k);
	ksm_stats(k, &st);
	assert_int_equal(st.frames, NSH - 8 + 8);
	assert_true(fd_blocks_bytes(base) == (NSH - 8) * (long long)PG);
	for (i = 8; i < NSH; i++)
		expect_pattern(v[2], (i + SHIFT) * PG, 500 + i);
	check(k);
	destroy_all(k, v, 3, base);
}

/*
 * Many VMs that never wrote anything (VMs not started yet: 27 of 30 in
 * bench density) read base[g]'s hole at every g.  Each is isolated (zeros
 * of its own mapped over it) so that base[g] can still take the clones'
 * content: the clones share base pages, not frames.  A limit of 16
 * readers per merge sent every merge to a frame.  The isolated pages read
 * zeros and are counted apart, not as zero pages saved.
 */
#define NEMPTY 20u
static void test_many_unwritten_readers(void **state_)
{
	struct ksm_fake_vm *v[2 + NEMPTY];
	struct ksm *k = mk(NULL);
	struct ksm_stats st;
	struct ksm_vm *kv;
	char err[256], name[16];
	int base = memfd_create("store-base", MFD_CLOEXEC);

	(void)state_;
	v[0] = clone_vm(base, 0);
	v[1] = clone_vm(base, 1);
	for (unsigned j = 0; j < NEMPTY; j++) {
		snprintf(name, sizeof(name), "empty%u", j);
		v[2 + j] = vm_new(name, base, NP);
	}
	for (unsigned j = 0; j < 2 + NEMPTY; j++)
		assert_int_equal(ksm_add_vm(k, &ksm_fake_ops_zero, v[j], 0, &kv,
					    err, sizeof(err)), 0);
	pass(k);
	pass(k);
	ksm_stats(k, &st);
	assert_int_equal(st.base_pages, 2 * NSH);
	assert_int_equal(st.pages_sharing, 2 * NSH);
	assert_int_equal(st.frames, NSH);
	assert_true(frames_blocks_bytes() == 0);
	assert_true(fd_blocks_bytes(base) == NSH * (long long)PG);
	/* never written, so never a saving */
	assert_int_equal(st.zero_pages, 0);
	assert_true(st.untouched_pages >= NEMPTY * NSH);
	assert_int_equal(st.bytes_saved, NSH * (uint64_t)PG);
	for (unsigned i = 0; i < NSH; i++) {
		expect_pattern(v[0], i * PG, 500 + i);
		expect_pattern(v[1], i * PG, 500 + i);
	}
	for (unsigned j = 2; j < 2 + NEMPTY; j++)
		for (unsigned i = 0; i < NP; i++)
			expect_pattern(v[j], i * PG, 0);
	check(k);
	/* an isolated page the guest writes is its own, and counted out */
	uint64_t w = 0x5eed;
	ksm_fake_write(v[2], 0, &w, sizeof(w));
	pass(k);
	ksm_stats(k, &st);
	assert_true(st.untouched_pages < NEMPTY * NP);
	assert_int_equal(st.zero_pages, 0);
	assert_int_equal(*(uint64_t *)ksm_fake_hva(v[2], 0), 0x5eed);
	expect_pattern(v[3], 0, 0);
	check(k);
	destroy_all(k, v, 2 + NEMPTY, base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shuffled_joins_base),
		cmocka_unit_test(test_base_absorbs_earlier_candidates),
		cmocka_unit_test(test_new_pair_finds_base),
		cmocka_unit_test(test_base_kept_for_other_gpas),
		cmocka_unit_test(test_many_unwritten_readers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
