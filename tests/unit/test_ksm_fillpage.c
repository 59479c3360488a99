/*
 * test_ksm_fillpage.c - fill pages (ksm/fill.c) on fake VMs sharing a base
 * memfd: runs of one repeated nonzero byte map a block of at most 64
 * frames by GPA, so a run costs one VMA per 64 pages and the domain at
 * most 64 pages of content, whatever the runs' GPAs; a lone fill page is
 * ordinary content; a write unshares one page and leaves the others; the
 * block is freed with its last user.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/mman.h>

#include "ksm_test.h"

#define NP     512u
#define FILL   0xccu
#define RUN0   8u      /* vm0: fill pages [8, 208) */
#define RUN1   100u    /* vm1: fill pages [100, 300): other GPAs too */
#define RUNLEN 200u
#define LONE   400u    /* vm0: one fill page with no fill neighbour */

static void fill_page(struct ksm_fake_vm *v, unsigned i, uint8_t byte)
{
	memset(ksm_fake_hva(v, i * PG), byte, PG);
}

static bool is_fill(struct ksm_fake_vm *v, unsigned i, uint8_t byte)
{
	const uint8_t *p = ksm_fake_hva(v, i * PG);

	for (unsigned j = 0; j < PG; j++)
		if (p[j] != byte)
			return false;
	return true;
}

static struct ksm_fake_vm *fill_vm(const char *name, int base, unsigned seed,
				   unsigned run0)
{
	struct ksm_fake_vm *v = vm_new(name, base, NP);

	for (unsigned i = 0; i < NP; i++)
		ksm_fake_fill_pages(v, i * PG, 1, seed + i);
	for (unsigned i = run0; i < run0 + RUNLEN; i++)
		fill_page(v, i, FILL);
	return v;
}

struct fleet {
	struct ksm *k;
	struct ksm_fake_vm *v[2];
	int base;
};

static void fleet_up(struct fleet *f)
{
	f->k = mk(NULL);
	f->base = memfd_create("fill-base", MFD_CLOEXEC);
	assert_true(f->base >= 0);
	f->v[0] = fill_vm("vm0", f->base, 1000, RUN0);
	f->v[1] = fill_vm("vm1", f->base, 9000, RUN1);
	fill_page(f->v[0], LONE, FILL);
	add(f->k, f->v[0], 0);
	add(f->k, f->v[1], 0);
	pass(f->k);
}

static void test_runs_share_one_block(void **state_)
{
	struct ksm_stats st;
	struct fleet f;

	(void)state_;
	fleet_up(&f);
	ksm_stats(f.k, &st);
	/* both runs, not the lone page */
	assert_int_equal(st.fill_pages, 2 * RUNLEN);
	assert_int_equal(state(f.v[0], LONE * PG), HV_PAGE_PRIVATE);
	for (unsigned i = RUN0; i < RUN0 + RUNLEN; i++)
		assert_int_equal(state(f.v[0], i * PG), HV_PAGE_FRAME);
	for (unsigned i = RUN1; i < RUN1 + RUNLEN; i++)
		assert_int_equal(state(f.v[1], i * PG), HV_PAGE_FRAME);
	/* 400 pages of content in at most one block of 64 frames */
	assert_true(frames_blocks_bytes() <= 64 * (long long)PG);
	assert_true(frames_blocks_bytes() > 0);
	/* a run of 200 maps consecutive frames: 4-5 VMAs, not 200 */
	assert_true(ksm_fake_vma_count(f.v[0]) <= 12);
	assert_true(ksm_fake_vma_count(f.v[1]) <= 12);
	for (unsigned i = 0; i < NP; i++) {
		bool in0 = (i >= RUN0 && i < RUN0 + RUNLEN) || i == LONE;
		bool in1 = i >= RUN1 && i < RUN1 + RUNLEN;

		if (in0)
			assert_true(is_fill(f.v[0], i, FILL));
		else
			expect_pattern(f.v[0], i * PG, 1000 + i);
		if (in1)
			assert_true(is_fill(f.v[1], i, FILL));
		else
			expect_pattern(f.v[1], i * PG, 9000 + i);
	}
	check(f.k);
	destroy_all(f.k, f.v, 2, f.base);
}

/* A write to one fill page gives it a private copy; every other page of
 * both runs still reads the byte, and the block stays. */
static void test_write_unshares_one(void **state_)
{
	uint8_t buf[PG];
	struct ksm_stats st;
	struct fleet f;

	(void)state_;
	fleet_up(&f);
	memset(buf, 0x5a, sizeof(buf));
	ksm_fake_write(f.v[0], 150 * PG, buf, PG);
	pass(f.k);
	ksm_stats(f.k, &st);
	assert_int_equal(st.fill_pages, 2 * RUNLEN - 1);
	assert_int_equal(state(f.v[0], 150 * PG), HV_PAGE_PRIVATE);
	assert_memory_equal(ksm_fake_hva(f.v[0], 150 * PG), buf, PG);
	for (unsigned i = RUN1; i < RUN1 + RUNLEN; i++)
		assert_true(is_fill(f.v[1], i, FILL));
	for (unsigned i = RUN0; i < RUN0 + RUNLEN; i++)
		if (i != 150)
			assert_true(is_fill(f.v[0], i, FILL));
	check(f.k);
	destroy_all(f.k, f.v, 2, f.base);
}

/* Every fill page rewritten: the block goes, its frames are holes again,
 * and a later run of another byte gets a block of its own. */
static void test_block_freed_with_last_user(void **state_)
{
	struct ksm_stats st;
	struct fleet f;

	(void)state_;
	fleet_up(&f);
	for (unsigned j = 0; j < 2; j++) {
		unsigned r0 = j ? RUN1 : RUN0;

		for (unsigned i = r0; i < r0 + RUNLEN; i++) {
			uint8_t buf[PG];

			ksm_fake_pattern(buf, 50000 + 1000 * j + i);
			ksm_fake_write(f.v[j], i * PG, buf, PG);
		}
	}
	pass(f.k);
	ksm_stats(f.k, &st);
	assert_int_equal(st.fill_pages, 0);
	assert_int_equal(frames_blocks_bytes(), 0);
	check(f.k);
	/* 0xff in runs now: a new block, content intact */
	for (unsigned i = 0; i < 100; i++) {
		uint8_t buf[PG];

		memset(buf, 0xff, sizeof(buf));
		ksm_fake_write(f.v[1], (RUN1 + i) * PG, buf, PG);
	}
	pass(f.k);   /* written in two reads in a row: volatile, waits */
	pass(f.k);
	ksm_stats(f.k, &st);
	assert_int_equal(st.fill_pages, 100);
	for (unsigned i = 0; i < 100; i++)
		assert_true(is_fill(f.v[1], RUN1 + i, 0xff));
	check(f.k);
	destroy_all(f.k, f.v, 2, f.base);
}

/* The same runs at the same GPAs in both VMs: one op per GPA takes both
 * pages, onto the same frame. */
static void test_same_gpa_runs(void **state_)
{
	struct ksm *k = mk(NULL);
	struct ksm_fake_vm *v[2];
	struct ksm_stats st;
	int base = memfd_create("fill-base2", MFD_CLOEXEC);

	(void)state_;
	v[0] = fill_vm("a", base, 1000, 64);
	v[1] = fill_vm("b", base, 9000, 64);
	add(k, v[0], 0);
	add(k, v[1], 0);
	pass(k);
	ksm_stats(k, &st);
	assert_int_equal(st.fill_pages, 2 * RUNLEN);
	assert_true(frames_blocks_bytes() <= 64 * (long long)PG);
	for (unsigned i = 64; i < 64 + RUNLEN; i++)
		assert_int_equal(hv_ps_frame(ksm_fake_page_state(v[0], i * PG)),
				 hv_ps_frame(ksm_fake_page_state(v[1], i * PG)));
	check(k);
	destroy_all(k, v, 2, base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_runs_share_one_block),
		cmocka_unit_test(test_write_unshares_one),
		cmocka_unit_test(test_block_freed_with_last_user),
		cmocka_unit_test(test_same_gpa_runs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
