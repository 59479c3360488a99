/*
 * test_backing.c - hv-core's backing changes on a real VM's RAM (created,
 * never started): hv_vm_zero() on base-memfd RAM reads zero, never the
 * base page under it (which holds other VMs' content), frees the private
 * copies (weighed in a memory cgroup where one can be made), coalesces
 * contiguous zeroed pages into few VMAs, and keeps the off-base bitmap
 * right through zero, restore and replace (also from a dup of the base
 * memfd, as ksm maps it).  On anonymous RAM it is a plain
 * discard.  hv_vm_populate() stores content on base-memfd RAM without
 * allocating a page of the memfd.  Skipped without /dev/kvm.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "testvm.h"
#include "cgroup.h"

#define MiB (1024ULL * 1024)
#define PG  4096ULL
#define REGION (16 * MiB)            /* GPA of the tested run */
#define LEN    (8 * MiB)

static bool page_is(const uint8_t *p, uint8_t v)
{
	for (unsigned i = 0; i < PG; i++)
		if (p[i] != v)
			return false;
	return true;
}

static uint64_t resident(void *hva, uint64_t len)
{
	static unsigned char vec[LEN / PG];
	uint64_t n = 0;
	assert_int_equal(mincore(hva, len, vec), 0);
	for (uint64_t i = 0; i < len / PG; i++)
		n += vec[i] & 1;
	return n;
}

static void create(struct testvm *t, int base_fd)
{
	char err[512] = "";
	struct hv_vm_config c = {
		.name = "backing", .mem_bytes = 64 * MiB, .ncpus = 1,
		.kind = HV_GUEST_MICRO, .image = test_guest_path(),
		.cmdline = "idle", .base_memfd = base_fd, .timeout_s = 30,
	};
	if (testvm_create_cfg(t, &c, err, sizeof(err)))
		fail_msg("create: %s", err);
}

static void zero_on_base_reads_zero_and_frees(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct testvm t;
	int fd = memfd_create("backing_base", 0);
	uint8_t *other = malloc(LEN), *p;
	bool in_cg = cg_enter("backing");
	assert_true(fd >= 0 && other);
	/* base[g] holds another VM's content (as after a same-GPA merge) */
	memset(other, 0x6b, LEN);
	assert_int_equal(pwrite(fd, other, LEN, (off_t)REGION), (ssize_t)LEN);
	create(&t, fd);
	p = hv_gpa_to_hva(t.vm, REGION, LEN);
	assert_true(page_is(p, 0x6b));     /* unwritten: the base page shows */
	memset(p, 0x11, LEN);               /* this VM's own copies */

	int64_t before = in_cg ? cg_pages() : 0;
	long vmas = hv_vma_count();
	/* 2 MiB in one call, then 2 MiB as 512 single pages (4 KiB balloon
	 * entries), contiguous with it */
	assert_int_equal(hv_vm_zero(t.vm, REGION, 2 * MiB), 0);
	for (uint64_t g = REGION + 2 * MiB; g < REGION + 4 * MiB; g += PG)
		assert_int_equal(hv_vm_zero(t.vm, g, PG), 0);
	long grown = hv_vma_count() - vmas;
	assert_int_equal(resident(p, 4 * MiB), 0);
	if (in_cg) {
		int64_t freed = before - cg_pages();
		print_message("[ backing ] zeroing 4 MiB freed %.2f MiB (cgroup); "
			      "VMAs +%ld\n", freed / (double)MiB, grown);
		assert_true(freed >= (int64_t)(4 * MiB * 95 / 100));
	} else {
		print_message("[  SKIPPED ] memory freed: needs a writable "
			      "memory cgroup (v1); VMAs +%ld\n", grown);
	}
	/* one anonymous run split out of the base mapping: at most 2 more */
	assert_true(grown >= 1 && grown <= 2);
	for (uint64_t off = 0; off < 4 * MiB; off += PG) {
		assert_true(page_is(p + off, 0));
		assert_true(hv_vm_page_off_base(t.vm, REGION + off));
	}
	/* the neighbours keep this VM's own data and the base mapping */
	assert_true(page_is(p + 4 * MiB, 0x11));
	assert_false(hv_vm_page_off_base(t.vm, REGION + 4 * MiB));
	assert_false(hv_vm_page_off_base(t.vm, REGION - PG));

	/* zeroing an anonymous run again: a discard, no VMA change */
	memset(p, 0x22, PG);
	vmas = hv_vma_count();
	assert_int_equal(hv_vm_zero(t.vm, REGION, 2 * MiB), 0);
	assert_int_equal(hv_vma_count(), vmas);
	assert_true(page_is(p, 0));

	/* separate runs: VMAs grow with runs, not with pages */
	vmas = hv_vma_count();
	for (unsigned i = 0; i < 8; i++)
		assert_int_equal(hv_vm_zero(t.vm, REGION + 5 * MiB + i * 2 * PG,
					    PG), 0);
	grown = hv_vma_count() - vmas;
	assert_true(grown <= 16);
	assert_true(page_is(p + 5 * MiB + PG, 0x11));   /* a gap page */

	/* restore: the base mapping again (it reads base[g], by design) */
	assert_int_equal(hv_vm_restore_backing(t.vm, REGION, PG), 0);
	assert_false(hv_vm_page_off_base(t.vm, REGION));
	assert_true(page_is(p, 0x6b));
	/* replace with the base at offset GPA is a restore; anything else
	 * is off the base */
	int fd2 = memfd_create("backing_other", 0);
	assert_true(fd2 >= 0 && ftruncate(fd2, (off_t)PG) == 0);
	assert_int_equal(hv_vm_replace_backing(t.vm, REGION + PG, PG, fd2, 0), 0);
	assert_true(hv_vm_page_off_base(t.vm, REGION + PG));
	assert_int_equal(hv_vm_replace_backing(t.vm, REGION + PG, PG, fd,
					       REGION + PG), 0);
	assert_false(hv_vm_page_off_base(t.vm, REGION + PG));
	/* and a frame mapping is not anonymous: zeroing remaps it */
	assert_int_equal(hv_vm_replace_backing(t.vm, REGION + PG, PG, fd2, 0), 0);
	assert_int_equal(pwrite(fd2, other, PG, 0), (ssize_t)PG);
	assert_int_equal(hv_vm_zero(t.vm, REGION + PG, PG), 0);
	assert_true(page_is(p + PG, 0));

	testvm_destroy(&t);
	if (in_cg)
		cg_leave();
	close(fd2);
	close(fd);
	free(other);
}

/* Why the balloon must not use hv_vm_discard on base-backed RAM. */
static void discard_on_base_reads_base(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct testvm t;
	int fd = memfd_create("backing_base", 0);
	uint8_t pat[PG], *p;
	assert_true(fd >= 0);
	memset(pat, 0x6b, PG);
	assert_int_equal(pwrite(fd, pat, PG, (off_t)REGION), (ssize_t)PG);
	create(&t, fd);
	p = hv_gpa_to_hva(t.vm, REGION, PG);
	memset(p, 0x11, PG);
	assert_int_equal(hv_vm_discard(t.vm, REGION, PG), 0);
	assert_true(page_is(p, 0x6b));
	assert_false(hv_vm_page_off_base(t.vm, REGION));
	testvm_destroy(&t);
	close(fd);
}

static void zero_on_anonymous_ram(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct testvm t;
	uint8_t *p;
	create(&t, -1);
	p = hv_gpa_to_hva(t.vm, REGION, LEN);
	memset(p, 0x11, LEN);
	long vmas = hv_vma_count();
	assert_int_equal(hv_vm_zero(t.vm, REGION, LEN), 0);
	assert_int_equal(hv_vma_count(), vmas);
	assert_int_equal(resident(p, LEN), 0);
	for (uint64_t off = 0; off < LEN; off += PG)
		assert_true(page_is(p + off, 0));
	assert_false(hv_vm_page_off_base(t.vm, REGION));
	assert_int_equal(hv_vm_zero(t.vm, REGION + 1, PG), -EINVAL);
	assert_int_equal(hv_vm_zero(t.vm, hv_vm_gpa_end(t.vm), PG), -ERANGE);
	testvm_destroy(&t);
}

/* ksm maps the base memfd through its own dup: restoring a page from the
 * dup at offset GPA is the VM's own backing again (a discard reads
 * base[g]), while another memfd, or the base at another offset, stays
 * off base; only hv_vm_zero's memory is anonymous. */
static void replace_from_a_dup_of_the_base(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct testvm t;
	int fd = memfd_create("backing_base", 0);
	int frames = memfd_create("backing_frames", 0);
	uint8_t pat[PG], *p;
	assert_true(fd >= 0 && frames >= 0);
	memset(pat, 0x6b, PG);
	assert_int_equal(pwrite(fd, pat, PG, (off_t)REGION), (ssize_t)PG);
	memset(pat, 0x3c, PG);
	assert_int_equal(pwrite(frames, pat, PG, 0), (ssize_t)PG);
	create(&t, fd);
	int dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	assert_true(dup_fd >= 0 && dup_fd != fd);
	p = hv_gpa_to_hva(t.vm, REGION, PG);

	assert_int_equal(hv_vm_replace_backing(t.vm, REGION, PG, frames, 0), 0);
	assert_true(page_is(p, 0x3c));
	assert_true(hv_vm_page_off_base(t.vm, REGION));
	assert_false(hv_vm_page_anon(t.vm, REGION));

	assert_int_equal(hv_vm_replace_backing(t.vm, REGION, PG, dup_fd, REGION), 0);
	assert_true(page_is(p, 0x6b));
	assert_false(hv_vm_page_off_base(t.vm, REGION));
	memset(p, 0, PG);   /* a guest's zeros, then a discard: base[g] */
	assert_int_equal(hv_vm_discard(t.vm, REGION, PG), 0);
	assert_true(page_is(p, 0x6b));

	/* the base at another offset is not the page's own backing */
	assert_int_equal(hv_vm_replace_backing(t.vm, REGION + PG, PG, dup_fd,
					       REGION), 0);
	assert_true(hv_vm_page_off_base(t.vm, REGION + PG));

	assert_int_equal(hv_vm_zero(t.vm, REGION, PG), 0);
	assert_true(hv_vm_page_off_base(t.vm, REGION));
	assert_true(hv_vm_page_anon(t.vm, REGION));
	assert_true(page_is(p, 0));
	assert_int_equal(hv_vm_replace_backing(t.vm, REGION, PG, dup_fd, REGION), 0);
	assert_false(hv_vm_page_anon(t.vm, REGION));
	assert_false(hv_vm_page_off_base(t.vm, REGION));
	testvm_destroy(&t);
	close(dup_fd);
	close(frames);
	close(fd);
}

/* The image loader's store: the pages read the content, are the VM's
 * own copies, and the base memfd stays empty (a plain store would have
 * allocated a zero page of it per page first); a page present already
 * takes a copy. */
static void populate_leaves_base_empty(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	struct testvm t;
	int fd = memfd_create("backing_pop", 0);
	uint8_t *src = malloc(LEN), *p;
	struct hv_populate *pop;
	struct stat st;
	assert_true(fd >= 0 && src);
	for (uint64_t i = 0; i < LEN; i++)
		src[i] = (uint8_t)(i / PG * 7 + 1);
	create(&t, fd);
	p = hv_gpa_to_hva(t.vm, REGION, LEN);
	p[5 * PG] = 0x33;   /* present before the fill: faults a memfd page */
	assert_int_equal(hv_vm_populate_begin(t.vm, REGION, LEN, &pop), 0);
	assert_true(hv_vm_populate_direct(pop));
	assert_int_equal(hv_vm_populate(pop, REGION, src, LEN), 0);
	assert_int_equal(hv_vm_populate(pop, REGION + LEN, src, PG), -EINVAL);
	hv_vm_populate_end(pop);
	assert_memory_equal(p, src, LEN);
	assert_int_equal(fstat(fd, &st), 0);
	/* only the page touched before the fill */
	assert_true(st.st_blocks * 512 <= (off_t)PG);
	/* they are private copies: a write changes this VM only */
	p[0] ^= 0xff;
	assert_int_equal(fstat(fd, &st), 0);
	assert_true(st.st_blocks * 512 <= (off_t)PG);
	testvm_destroy(&t);
	close(fd);
	free(src);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(zero_on_base_reads_zero_and_frees),
		cmocka_unit_test(discard_on_base_reads_base),
		cmocka_unit_test(zero_on_anonymous_ram),
		cmocka_unit_test(replace_from_a_dup_of_the_base),
		cmocka_unit_test(populate_leaves_base_empty),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
