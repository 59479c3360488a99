/*
 * test_ksm_merge.c - ksm's merge paths on fake VMs (memfd or anonymous
 * RAM in this process, ksm_fake.h): identical pages, copy-on-write, zero
 * pages, frame refcounts and freeing (memfd blocks shrink), forced hash
 * collisions, domains, same-GPA merges through the base memfd (VMA count
 * unchanged, base zero pages reclaimed), sampled same-GPA matches checked
 * in full, a VM still reading the base hole,
 * and cross-GPA run coalescing (VMAs and mmap calls counted).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ksm_test.h"


/* ------------------------------------------------------------ merging */

static void test_identical_pages_merge(void **state_)
{
	struct ksm *k = mk(NULL);
	struct ksm_fake_vm *a = vm_new("a", -1, 128), *b = vm_new("b", -1, 128);
	struct ksm_stats st;
	uint64_t i;

	(void)state_;
	for (i = 0; i < 64; i++) {
		ksm_fake_fill_pages(a, i * PG, 1, 100 + i);
		ksm_fake_fill_pages(b, i * PG, 1, 100 + i);
	}
	ksm_fake_fill_pages(a, 64 * PG, 1, 7777);   /* unique */
	add(k, a, 0);
	add(k, b, 0);
	pass(k);
	ksm_stats(k, &st);
	assert_int_equal(st.frames, 64);
	assert_int_equal(st.pages_sharing, 128);
	assert_int_equal(st.bytes_saved, 64 * PG);
	for (i = 0; i < 64; i++) {
		assert_int_equal(state(a, i * PG), HV_PAGE_FRAME);
		assert_int_equal(state(b, i * PG), HV_PAGE_FRAME);
		expect_pattern(a, i * PG, 100 + i);
		expect_pattern(b, i * PG, 100 + i);
	}
	assert_int_equal(state(a, 64 * PG), HV_PAGE_PRIVATE);
	expect_pattern(a, 64 * PG, 7777);
	assert_true(frames_blocks_bytes() == 64 * (long long)PG);
	check(k);
	ksm_destroy(k);
	ksm_fake_vm_destroy(a);
	ksm_fake_vm_destroy(b);
}

static void test_cow_keeps_written_data(void **state_)
{
	struct ksm *k = mk(NULL);
	struct ksm_fake_vm *a = vm_new("a", -1, 64), *b = vm_new("b", -1, 64);
	struct ksm_stats st;
	uint64_t word = 0x1122334455667788ULL;

	(void)state_;
	ksm_fake_fill_pages(a, 0, 8, 42);
	ksm_fake_fill_pages(b, 0, 8, 42);
	add(k, a, 0);
	add(k, b, 0);
	pass(k);
	assert_int_equal(state(a, 3 * PG), HV_PAGE_FRAME);
	/* a guest write to a shared page: the kernel copies it */
	ksm_fake_write(a, 3 * PG + 128, &word, sizeof(word));
	assert_memory_equal(ksm_fake_hva(a, 3 * PG + 128), &word, sizeof(word));
	expect_pattern(b, 3 * PG, 42);          /* the other VM unchanged */
	pass(k);
	ksm_stats(k, &st);
	assert_int_equal(st.unmerges, 1);
	assert_int_equal(state(a, 3 * PG), HV_PAGE_PRIVATE);
	assert_int_equal(state(b, 3 * PG), HV_PAGE_FRAME);
	assert_memory_equal(ksm_fake_hva(a, 3 * PG + 128), &word, sizeof(word));
	expect_pattern(b, 3 * PG, 42);
	/* 8 contents at 8 GPAs... all merged into one frame per content? no:
	 * seed 42 everywhere: all 16 pages share one frame (refs 16 - 1) */
	assert_int_equal(st.frames, 1);
	assert_int_equal(st.pages_sharing, 15);
	check(k);
	ksm_destroy(k);
	ksm_fake_vm_destroy(a);
	ksm_fake_vm_destroy(b);
}

static void test_zero_pages(void **state_)
{
	struct ksm *k = mk(NULL);
	struct ksm_fake_vm *a = vm_new("a", -1, 64);
	struct ksm_stats st;
	uint64_t one = 1, i, e;
	int pm = open("/proc/self/pagemap", O_RDONLY);

	(void)state_;
	ksm_fake_fill_pages(a, 0, 16, 0);       /* written zeros: allocated */
	for (i = 16; i < 20; i++)
		ksm_fake_fill_pages(a, i * PG, 1, 5 + i);
	add(k, a, 0);
	pass(k);
	ksm_stats(k, &st);
	assert_int_equal(st.zero_pages, 16);
	assert_int_equal(st.pages_sharing, 0);
	assert_int_equal(st.frames, 0);
	for (i = 0; i < 16; i++) {
		assert_int_equal(state(a, i * PG), HV_PAGE_ZERO);
		assert_int_equal(pread(pm, &e, 8,
				       (off_t)((uintptr_t)ksm_fake_hva(a, i * PG) /
					       PG * 8)), 8);
		assert_false(e >> 63);          /* freed: not present */
		assert_memory_equal(ksm_fake_hva(a, i * PG),
				    ksm_fake_hva(a, 40 * PG), PG);
	}
	ksm_fake_write(a, 2 * PG, &one, sizeof(one));
	pass(k);
	ksm_stats(k, &st);
	assert_int_equal(st.zero_pages, 15);
	assert_int_equal(state(a, 2 * PG), HV_PAGE_PRIVATE);
	assert_int_equal(*(uint64_t *)ksm_fake_hva(a, 2 * PG), 1);
	check(k);
	close(pm);
	ksm_destroy(k);
	ksm_fake_vm_destroy(a);
}

/* ------------------------------------------------- refcounts, collisions */

static void test_frame_refcount_and_free(void **state_)
{
	struct ksm *k = mk(NULL);
	struct ksm_fake_vm *v[3];
	struct ksm_vm *kv[3];
	struct ksm_stats st;
	uint64_t x = 9;
	unsigned i;

	(void)state_;
	for (i = 0; i < 3; i++) {
		v[i] = vm_new("v", -1, 32);
		ksm_fake_fill_pages(v[i], 0, 4, 1000);      /* 12 sharers */
		ksm_fake_fill_pages(v[i], 4 * PG, 1, 2000); /* 3 sharers */
		kv[i] = add(k, v[i], 0);
	}
	pass(k);
	ksm_stats(k, &st);
	assert_int_equal(st.frames, 2);
	assert_int_equal(st.pages_sharing, 15);
	assert_true(frames_blocks_bytes() == 2 * (long long)PG);
	check(k);
	/* the 3 users of seed 2000 write: its frame loses its last user */
	for (i = 0; i < 3; i++)
		ksm_fake_write(v[i], 4 * PG, &x, sizeof(x));
	pass(k);
	ksm_stats(k, &st);
	assert_int_equal(st.frames, 1);
	assert_int_equal(st.pages_sharing, 12);
	assert_int_equal(st.unmerges, 3);
	assert_true(frames_blocks_bytes() == 1 * (long long)PG);  /* punched */
	check(k);
	/* removing two VMs leaves the frame to the third one's 4 pages */
	ksm_remove_vm(k, kv[0]);
	ksm_remove_vm(k, kv[1]);
	check(k);
	ksm_stats(k, &st);
	assert_int_equal(st.pages_sharing, 4);
	assert_true(frames_blocks_bytes() == 1 * (long long)PG);
	/* its last users write: the frame is punched, the memfd empty */
	for (i = 0; i < 4; i++) {
		x = 100 + i;    /* distinct: they must not merge again */
		ksm_fake_write(v[2], i * PG, &x, sizeof(x));
	}
	pass(k);
	ksm_stats(k, &st);
	assert_int_equal(st.pages_sharing, 0);
	assert_true(frames_blocks_bytes() == 0);
	check(k);
	ksm_destroy(k);
	for (i = 0; i < 3; i++)
		ksm_fake_vm_destroy(v[i]);
}

static uint64_t const_hash(const void *page, void *arg)
{
	(void)page;
	(void)arg;
	return 42;
}

static void test_forced_collision_does_not_merge(void **state_)
{
	struct ksm_config cfg;
	struct ksm *k;
	struct ksm_fake_vm *a = vm_new("a", -1, 16), *b = vm_new("b", -1, 16);
	struct ksm_stats st;

	(void)state_;
	ksm_config_default(&cfg);
	cfg.hash_fn = const_hash;        /* every page hashes the same */
	k = mk(&cfg);
	ksm_fake_fill_pages(a, 0, 1, 11);
	ksm_fake_fill_pages(b, 0, 1, 22);  /* same hash, other bytes */
	ksm_fake_fill_pages(a, PG, 1, 33);
	ksm_fake_fill_pages(b, 5 * PG, 1, 33);  /* really equal */
	add(k, a, 0);
	add(k, b, 0);
	pass(k);
	ksm_stats(k, &st);
	assert_true(st.collisions >= 1);
	assert_int_equal(state(a, 0), HV_PAGE_PRIVATE);
	assert_int_equal(state(b, 0), HV_PAGE_PRIVATE);
	expect_pattern(a, 0, 11);
	expect_pattern(b, 0, 22);
	/* equal bytes still merge under the same forced hash */
	assert_int_equal(state(a, PG), HV_PAGE_FRAME);
	assert_int_equal(state(b, 5 * PG), HV_PAGE_FRAME);
	expect_pattern(b, 5 * PG, 33);
	assert_int_equal(st.pages_sharing, 2);
	check(k);
	/* and a colliding page meeting the stable frame does not join it */
	ksm_fake_fill_pages(b, 7 * PG, 1, 44);
	pass(k);
	assert_int_equal(state(b, 7 * PG), HV_PAGE_PRIVATE);
	expect_pattern(b, 7 * PG, 44);
	check(k);
	ksm_destroy(k);
	ksm_fake_vm_destroy(a);
	ksm_fake_vm_destroy(b);
}

/* ------------------------------------------------------------ domains */

static void test_domains(void **state_)
{
	struct ksm *k = mk(NULL);
	struct ksm_fake_vm *v[4];
	struct ksm_stats st;
	unsigned i, dom[4] = { 1, 2, KSM_DOMAIN_PRIVATE, 1 };

	(void)state_;
	for (i = 0; i < 4; i++) {
		v[i] = vm_new("v", -1, 16);
		ksm_fake_fill_pages(v[i], 0, 4, 555);
		add(k, v[i], dom[i]);
	}
	pass(k);
	/* only v0 and v3 (domain 1) share; v1 alone in domain 2 shares its
	 * 4 equal pages with itself; the private VM likewise */
	assert_int_equal(state(v[0], 0), HV_PAGE_FRAME);
	assert_int_equal(state(v[3], 0), HV_PAGE_FRAME);
	ksm_stats(k, &st);
	assert_int_equal(st.frames, 3);           /* one per domain */
	assert_int_equal(st.pages_sharing, 16);
	{
		json_t *j = ksm_stats_json(k), *v;
		unsigned seen = 0;
		size_t i;

		json_array_foreach(json_object_get(j, "vms"), i, v) {
			json_int_t dom = json_integer_value(json_object_get(v,
								"domain"));
			if (dom >= 0 && dom < 8)
				seen |= 1u << dom;
		}
		assert_true((seen & 6) == 6);   /* domains 1 and 2 named */
		json_decref(j);
	}
	check(k);
	ksm_destroy(k);
	for (i = 0; i < 4; i++)
		ksm_fake_vm_destroy(v[i]);
}

/* ------------------------------------------------ base memfd (same GPA) */

/* The base memfd's zero-page sweep punches the zero pages the guests'
 * first writes left there, and keeps the ones some VM maps (it read them
 * and wrote nothing), whether the VMs' page tables are read by
 * PAGEMAP_SCAN or 8 bytes a page.  v0 writes pages 0..95; v1 reads the
 * holes 128..191; on 256..511 v0 writes every 2nd page and v1 reads it
 * (128 one-page runs: more than one PAGEMAP_SCAN call's worth).  The
 * regions lie apart so that the kernel's fault-around (up to 16 pages
 * about a read fault) maps nothing of another region into v1. */
static bool page_zero(const uint8_t *p)
{
	for (unsigned j = 0; j < PG; j++)
		if (p[j])
			return false;
	return true;
}

static void sweep_once(bool no_scan, unsigned long long *reclaimed,
		       long long *blocks)
{
	struct ksm_config cfg;
	int base = memfd_create("test-base", MFD_CLOEXEC);
	struct ksm_fake_vm *v[2];
	struct ksm_stats st;
	struct ksm *k;
	volatile uint8_t sink = 0;
	uint64_t i;

	ksm_config_default(&cfg);
	cfg.test_no_pagemap_scan = no_scan;
	k = mk(&cfg);
	v[0] = vm_new("w", base, 512);
	v[1] = vm_new("r", base, 512);
	for (i = 0; i < 96; i++)
		ksm_fake_fill_pages(v[0], i * PG, 1, 31000 + i);
	for (i = 256; i < 512; i += 2)
		ksm_fake_fill_pages(v[0], i * PG, 1, 32000 + i);
	for (i = 128; i < 192; i++)
		sink += *ksm_fake_hva(v[1], i * PG);
	for (i = 256; i < 512; i += 2)
		sink += *ksm_fake_hva(v[1], i * PG);
	assert_int_equal(sink, 0);
	assert_true(fd_blocks_bytes(base) == (96 + 64 + 128) * (long long)PG);
	add(k, v[0], 0);
	add(k, v[1], 0);
	pass(k);
	ksm_stats(k, &st);
	*reclaimed = st.base_zero_reclaimed;
	*blocks = fd_blocks_bytes(base);
	for (i = 0; i < 96; i++)
		expect_pattern(v[0], i * PG, 31000 + i);
	for (i = 96; i < 512; i++)
		assert_true(page_zero(ksm_fake_hva(v[1], i * PG)));
	check(k);
	destroy_all(k, v, 2, base);
}

static void test_sweep_keeps_mapped_zero_pages(void **state_)
{
	unsigned long long rec[2];
	long long blk[2];

	(void)state_;
	sweep_once(false, &rec[0], &blk[0]);
	sweep_once(true, &rec[1], &blk[1]);
	printf("[ sweep ] PAGEMAP_SCAN: %llu reclaimed, %lld pages left; "
	       "pagemap reads: %llu, %lld\n", rec[0], blk[0] / (long long)PG,
	       rec[1], blk[1] / (long long)PG);
	/* v0's 96 written pages, which v1 does not map, go; the 64 + 128
	 * that v1 maps stay */
	for (int m = 0; m < 2; m++) {
		assert_int_equal(rec[m], 96);
		assert_true(blk[m] == (64 + 128) * (long long)PG);
	}
}

static void test_same_gpa_base_merge(void **state_)
{
	struct ksm *k = mk(NULL);
	int base = memfd_create("test-base", MFD_CLOEXEC);
	struct ksm_fake_vm *v[4];
	long vmas[4];
	struct ksm_stats st;
	uint64_t i, w = 77;
	unsigned j;

	(void)state_;
	for (j = 0; j < 4; j++) {
		v[j] = vm_new("b", base, 256);
		ksm_fake_fill_pages(v[j], 0, 128, 0);          /* zero */
		for (i = 0; i < 96; i++)                       /* equal */
			ksm_fake_fill_pages(v[j], i * PG, 1, 500 + i);
		for (i = 96; i < 112; i++)                     /* unique */
			ksm_fake_fill_pages(v[j], i * PG, 1, 9000 + 100 * j + i);
		vmas[j] = ksm_fake_vma_count(v[j]);
		assert_int_equal(vmas[j], 1);
	}
	for (j = 0; j < 4; j++)
		add(k, v[j], 0);
	pass(k);
	ksm_stats(k, &st);
	assert_int_equal(st.base_pages, 4 * 96);
	assert_int_equal(st.pages_sharing, 4 * 96);
	assert_int_equal(st.zero_pages, 4 * 16);   /* pages 112..127 */
	assert_int_equal(st.frames, 96);           /* base pages in use */
	for (j = 0; j < 4; j++) {
		assert_int_equal(ksm_fake_vma_count(v[j]), vmas[j]);
		for (i = 0; i < 96; i++) {
			assert_int_equal(state(v[j], i * PG), HV_PAGE_BASE);
			expect_pattern(v[j], i * PG, 500 + i);
		}
		expect_pattern(v[j], 100 * PG, 9000 + 100 * j + 100);
		assert_int_equal(state(v[j], 100 * PG), HV_PAGE_PRIVATE);
	}
	/* the base holds one copy of each shared page, and the zero pages
	 * that the guests' first writes to holes put there are reclaimed:
	 * all 128, by the sweep that runs before the pass merges anything */
	assert_true(fd_blocks_bytes(base) == 96 * (long long)PG);
	assert_int_equal(st.base_zero_reclaimed, 128);
	check(k);
	/* copy-on-write from the base page */
	ksm_fake_write(v[2], 5 * PG, &w, sizeof(w));
	assert_int_equal(*(uint64_t *)ksm_fake_hva(v[2], 5 * PG), 77);
	expect_pattern(v[1], 5 * PG, 505);
	pass(k);
	assert_int_equal(state(v[2], 5 * PG), HV_PAGE_PRIVATE);
	assert_int_equal(state(v[1], 5 * PG), HV_PAGE_BASE);
	for (j = 0; j < 4; j++)
		assert_int_equal(ksm_fake_vma_count(v[j]), vmas[j]);
	check(k);
	destroy_all(k, v, 4, base);
}

/* Same-GPA pages of all VMs are merged in one op without a hash, on a
 * sample of both ends:
 * a page equal to base[g] there but not in the middle must be refused by
 * the paused full compare (once: later passes compare it in full). */
static void test_sampled_match_is_verified(void **state_)
{
	struct ksm *k = mk(NULL);
	int base = memfd_create("test-base", MFD_CLOEXEC);
	struct ksm_fake_vm *v[4];
	struct ksm_stats st;
	uint8_t odd = 0x5a, got;
	uint64_t i;
	unsigned j, pass_no;

	(void)state_;
	for (j = 0; j < 4; j++) {
		v[j] = vm_new("s", base, 16);
		for (i = 0; i < 8; i++)
			ksm_fake_fill_pages(v[j], i * PG, 1, 300 + i);
	}
	/* VM 3, page 3: one byte off in the middle */
	ksm_fake_write(v[3], 3 * PG + PG / 2, &odd, 1);
	for (j = 0; j < 4; j++)
		add(k, v[j], 0);
	for (pass_no = 0; pass_no < 3; pass_no++) {
		pass(k);
		ksm_stats(k, &st);
		assert_int_equal(state(v[3], 3 * PG), HV_PAGE_PRIVATE);
		memcpy(&got, ksm_fake_hva(v[3], 3 * PG + PG / 2), 1);
		assert_int_equal(got, odd);
		assert_int_equal(st.merge_races, 1);
		assert_int_equal(st.base_pages, 4 * 8 - 1);
		assert_true(st.pages_compared >= 4 * 8 - 1);
		/* each GPA went in one op for all four VMs, with no hash;
		 * only the odd page, compared in full after its miss, was */
		assert_int_equal(st.pages_hashed, 1);
		check(k);
	}
	for (j = 0; j < 4; j++)
		for (i = 0; i < 8; i++)
			if (j != 3 || i != 3) {
				assert_int_equal(state(v[j], i * PG), HV_PAGE_BASE);
				expect_pattern(v[j], i * PG, 300 + i);
			}
	ksm_destroy(k);
	for (j = 0; j < 4; j++)
		ksm_fake_vm_destroy(v[j]);
	close(base);
}

/* Identical guests rewrite a shared page one after another: the first
 * two with equal new content wait while the others still share the old
 * base page, and once all have written it, base[g] takes the new content
 * for all four, with no frame and no new VMA. */
static void test_rewrite_reshares_through_base(void **state_)
{
	struct ksm *k = mk(NULL);
	int base = memfd_create("test-base", MFD_CLOEXEC);
	struct ksm_fake_vm *v[4];
	static uint8_t x[PG];
	long vmas[4];
	unsigned j;

	(void)state_;
	for (j = 0; j < 4; j++) {
		v[j] = vm_new("w", base, 16);
		ksm_fake_fill_pages(v[j], 5 * PG, 1, 4242);
	}
	for (j = 0; j < 4; j++)
		add(k, v[j], 0);
	pass(k);
	for (j = 0; j < 4; j++) {
		assert_int_equal(state(v[j], 5 * PG), HV_PAGE_BASE);
		vmas[j] = ksm_fake_vma_count(v[j]);
	}
	ksm_fake_pattern(x, 5151);
	ksm_fake_write(v[0], 5 * PG, x, PG);
	ksm_fake_write(v[1], 5 * PG, x, PG);
	pass(k);
	pass(k);
	/* waiting: no frame while v2 and v3 still read the old base page */
	for (j = 0; j < 4; j++) {
		assert_int_equal(state(v[j], 5 * PG),
				 j < 2 ? HV_PAGE_PRIVATE : HV_PAGE_BASE);
		expect_pattern(v[j], 5 * PG, j < 2 ? 5151 : 4242);
	}
	ksm_fake_write(v[2], 5 * PG, x, PG);
	ksm_fake_write(v[3], 5 * PG, x, PG);
	pass(k);
	pass(k);
	for (j = 0; j < 4; j++) {
		assert_int_equal(state(v[j], 5 * PG), HV_PAGE_BASE);
		expect_pattern(v[j], 5 * PG, 5151);
		assert_int_equal(ksm_fake_vma_count(v[j]), vmas[j]);
	}
	check(k);
	destroy_all(k, v, 4, base);
}

/* A VM that never wrote g reads base[g]: base[g] must not change under it,
 * so the pair takes the frame path instead. */
static void test_base_respects_unwritten_reader(void **state_)
{
	struct ksm *k = mk(NULL);
	int base = memfd_create("test-base2", MFD_CLOEXEC);
	struct ksm_fake_vm *a = vm_new("a", base, 16), *b = vm_new("b", base, 16),
			   *c = vm_new("c", base, 16);

	(void)state_;
	ksm_fake_fill_pages(a, 0, 1, 31);
	ksm_fake_fill_pages(b, 0, 1, 31);
	/* c never touches page 0: it reads the base hole (zeros) */
	add(k, a, 0);
	add(k, b, 0);
	add(k, c, 0);
	pass(k);
	assert_int_equal(state(a, 0), HV_PAGE_FRAME);
	assert_int_equal(state(b, 0), HV_PAGE_FRAME);
	assert_memory_equal(ksm_fake_hva(c, 0), ksm_fake_hva(c, 8 * PG), PG);
	assert_int_equal(*(uint64_t *)ksm_fake_hva(c, 0), 0);
	expect_pattern(a, 0, 31);
	check(k);
	ksm_destroy(k);
	ksm_fake_vm_destroy(a);
	ksm_fake_vm_destroy(b);
	ksm_fake_vm_destroy(c);
	close(base);
}

/* --------------------------------------------- cross-GPA run coalescing */

static int replace_calls;
static struct ksm_vm_ops counting_ops;

static int count_replace(void *ctx, uint64_t gpa, uint64_t len, int fd,
			 uint64_t off)
{
	replace_calls++;
	return ksm_fake_ops.replace_backing(ctx, gpa, len, fd, off);
}

static void test_cross_gpa_runs_coalesce(void **state_)
{
	struct ksm *k = mk(NULL);
	struct ksm_fake_vm *a = vm_new("a", -1, 256), *b = vm_new("b", -1, 256);
	struct ksm_vm *kv;
	struct ksm_stats st;
	char err[256];
	uint64_t i;

	(void)state_;
	counting_ops = ksm_fake_ops;
	counting_ops.replace_backing = count_replace;
	replace_calls = 0;
	for (i = 0; i < 64; i++) {
		ksm_fake_fill_pages(a, i * PG, 1, 3000 + i);
		ksm_fake_fill_pages(b, (100 + i) * PG, 1, 3000 + i);
	}
	assert_int_equal(ksm_fake_vma_count(a), 1);
	assert_int_equal(ksm_fake_vma_count(b), 1);
	assert_int_equal(ksm_add_vm(k, &counting_ops, a, 0, &kv, err,
				    sizeof(err)), 0);
	assert_int_equal(ksm_add_vm(k, &counting_ops, b, 0, &kv, err,
				    sizeof(err)), 0);
	pass(k);
	ksm_stats(k, &st);
	assert_int_equal(st.frames, 64);
	assert_int_equal(st.pages_sharing, 128);
	/* one mmap per run, not per page */
	assert_int_equal(replace_calls, 2);
	/* a: [frames 0-63][anon]; b: [anon][frames 0-63][anon] */
	assert_int_equal(ksm_fake_vma_count(a), 2);
	assert_int_equal(ksm_fake_vma_count(b), 3);
	for (i = 0; i < 64; i++) {
		expect_pattern(a, i * PG, 3000 + i);
		expect_pattern(b, (100 + i) * PG, 3000 + i);
	}
	check(k);
	ksm_destroy(k);
	ksm_fake_vm_destroy(a);
	ksm_fake_vm_destroy(b);
}

/* ---------------------------------------- other owners of the page map */

/* What balloon-host does to a page: BUSY, the ksm hook for FRAME/BASE
 * pages, discard, then its own final state. */
static void balloon_take(struct ksm_fake_vm *v, struct ksm_vm *kv,
			 uint64_t gpa, hv_pstate_t final, bool hook)
{
	hv_pstate_t old = ksm_fake_page_state(v, gpa);

	assert_true(ksm_fake_ops.page_cas(v, gpa / PG, old, old | HV_PF_BUSY));
	if (hook)
		ksm_page_released(kv, gpa, old);
	assert_int_equal(ksm_fake_ops.discard(v, gpa, PG), 0);
	assert_true(ksm_fake_ops.page_cas(v, gpa / PG, old | HV_PF_BUSY, final));
}

static void test_released_by_other_owner(void **state_)
{
	struct ksm *k = mk(NULL);
	int base = memfd_create("rel-base", MFD_CLOEXEC);
	struct ksm_fake_vm *a = vm_new("a", base, 16), *b = vm_new("b", base, 16);
	struct ksm_vm *ka, *kb;
	struct ksm_stats st;
	uint64_t w = 5;

	(void)state_;
	ksm_fake_fill_pages(a, 0, 1, 71);          /* same GPA: base */
	ksm_fake_fill_pages(b, 0, 1, 71);
	ksm_fake_fill_pages(a, 1 * PG, 1, 72);     /* cross GPA: frame */
	ksm_fake_fill_pages(b, 5 * PG, 1, 72);
	ksm_fake_fill_pages(a, 3 * PG, 1, 0);      /* zero */
	ka = add(k, a, 0);
	kb = add(k, b, 0);
	pass(k);
	assert_int_equal(state(a, 0), HV_PAGE_BASE);
	assert_int_equal(state(a, PG), HV_PAGE_FRAME);
	assert_int_equal(state(a, 3 * PG), HV_PAGE_ZERO);
	/* inflate a's frame page: the hook gives it its base mapping back,
	 * so the discard makes it read the base hole, zero */
	balloon_take(a, ka, PG, hv_ps_make(HV_PAGE_BALLOONED, 0, 0), true);
	assert_int_equal(*(uint64_t *)ksm_fake_hva(a, PG), 0);
	assert_memory_equal(ksm_fake_hva(a, PG), ksm_fake_hva(a, 9 * PG), PG);
	/* inflate a's base page and, without the hook, its zero page */
	balloon_take(a, ka, 0, hv_ps_make(HV_PAGE_BALLOONED, 0, 0), true);
	balloon_take(a, ka, 3 * PG, hv_ps_make(HV_PAGE_BALLOONED, 0, 0), false);
	check(k);                      /* releases applied, zero tolerated */
	pass(k);
	ksm_stats(k, &st);
	assert_int_equal(st.pages_sharing, 2);     /* b's two pages */
	expect_pattern(b, 0, 71);
	expect_pattern(b, 5 * PG, 72);
	/* deflate: the balloon puts a's page 0 in BASE itself (it reads the
	 * base page): not ksm's, so its copy-on-write must not touch the
	 * base refcount that b's page holds */
	balloon_take(a, ka, 0, hv_ps_make(HV_PAGE_BASE, 0, 0), false);
	ksm_fake_write(a, 0, &w, sizeof(w));
	pass(k);
	assert_int_equal(state(b, 0), HV_PAGE_BASE);
	expect_pattern(b, 0, 71);
	check(k);
	(void)kb;
	ksm_destroy(k);
	ksm_fake_vm_destroy(a);
	ksm_fake_vm_destroy(b);
	close(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_identical_pages_merge),
		cmocka_unit_test(test_cow_keeps_written_data),
		cmocka_unit_test(test_zero_pages),
		cmocka_unit_test(test_frame_refcount_and_free),
		cmocka_unit_test(test_forced_collision_does_not_merge),
		cmocka_unit_test(test_domains),
		cmocka_unit_test(test_same_gpa_base_merge),
		cmocka_unit_test(test_sweep_keeps_mapped_zero_pages),
		cmocka_unit_test(test_sampled_match_is_verified),
		cmocka_unit_test(test_rewrite_reshares_through_base),
		cmocka_unit_test(test_base_respects_unwritten_reader),
		cmocka_unit_test(test_cross_gpa_runs_coalesce),
		cmocka_unit_test(test_released_by_other_owner),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
