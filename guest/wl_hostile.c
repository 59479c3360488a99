/*
 * wl_hostile.c - the `hostile` workload: a guest that drives the balloon
 * device by hand, as a hostile driver would, and reads every page it gave
 * away, to check the host's memory-safety invariant (hv-core/hv.h): such a
 * page reads zero or the guest's own data, never another VM's.
 *
 *   hostile mib=N [seed=S]
 *
 * 1. Allocate N MiB (N a multiple of 16) as one contiguous region, the
 *    VM's first allocation (so it starts at dvm_first_region_gpa(), the
 *    GPA where the honest VMs' `fill` regions start), and write every page
 *    with dvm_hostile_base(seed, gpa).
 * 2. HC_RESULT(DVM_RESULT_REGION_GPA), HC_READY(DVM_READY_TOUCHED): the host
 *    lets the other VMs' content merge into the sharing domain's base
 *    memfd, then releases the guest.
 * 3. Registers its own config page and ring (resetting the device if the
 *    boot-time driver had registered), sends stats of all ones (values no
 *    guest can have), then, over eighths of the region:
 *      inflate     parts 0-1 as 2 MiB entries, part 2 as 4 KiB entries
 *      report      part 3, 2 MiB entries (the host must allow reporting)
 *      deflate     parts 0-2
 *      reset       part 4 inflated (4 KiB), then REGISTER again
 *      unregister  part 5 inflated (2 MiB), then UNREGISTER
 *    and after each step reads every page the step touched.  Parts 6-7 are
 *    never given away and must still hold the guest's data at the end.
 *    Each step prints one line
 *      hostile: step=S pages=P accepted=A zero=Z own=O foreign=F
 *    and up to 8 "hostile: FOREIGN gpa=... word0=..." lines in all.
 * 4. RESULT(DVM_RESULT_FOREIGN_PAGES) = foreign pages of all steps; exit 3
 *    if any page was foreign or a control page lost its data, else 0.
 *
 * The guest's own balloon driver never runs meanwhile: it only runs from
 * guest_service()/guest_wait(), which this workload does not call.
 */
#include "workload.h"
#include "balloon-driver/balloon_proto.h"

#define RING_PAGES 8            /* 4096 entries */
#define RING_CAP   (RING_PAGES * 512u)

static struct {
	uint64_t seed, npages, part;   /* part: pages per eighth */
	struct gregion region;
	uint64_t cfg_gpa, ring_gpa;
	volatile uint64_t *ring;
	uint64_t foreign, reported_lines;
	bool lost;
} h;

static void hostile_setup(struct wl_args *a)
{
	uint64_t mib = (uint64_t)args_need(a, "mib", 16, 1 << 16);
	h.seed = args_u64(a, "seed", 3);
	args_done(a);
	if (mib % 16)
		args_fail(a, "mib=%lu must be a multiple of 16", mib);
	h.npages = mib << 8;
	h.part = h.npages / 8;
	if (h.part > RING_CAP)
		args_fail(a, "mib=%lu: an eighth exceeds the ring's %u entries",
			  mib, RING_CAP);
	wl_alloc_region("hostile", &h.region, h.npages);
	if (!region_contiguous(&h.region)) {
		gprintf("hostile: no contiguous %lu MiB in guest RAM\n", mib);
		guest_exit(GUEST_EXIT_NOMEM);
	}
	h.cfg_gpa = wl_alloc_contig("hostile", 1 + RING_PAGES);
	h.ring_gpa = h.cfg_gpa + GUEST_PAGE_SIZE;
	h.ring = (volatile uint64_t *)(uintptr_t)h.ring_gpa;
}

static uint64_t page_gpa(uint64_t i)
{
	return h.region.ext[0].gpa + i * GUEST_PAGE_SIZE;
}

static int64_t balloon(uint64_t op, uint64_t a1, uint64_t a2, uint64_t a3,
		       uint64_t a4)
{
	uint64_t a[5] = { op, a1, a2, a3, a4 }, ret2;
	return hc_call5(HC_BALLOON, a, &ret2);
}

static void do_register(void)
{
	int64_t rc = balloon(BALLOON_OP_REGISTER, h.cfg_gpa, h.ring_gpa,
			     RING_PAGES, BALLOON_PROTO_VERSION);
	if (rc < 0) {
		gprintf("hostile: register failed (%ld)\n", rc);
		guest_exit(DVM_EXIT_PANIC);
	}
}

/* Posts parts [first, first+n) of the region with op; returns accepted
 * pages.  huge: 2 MiB entries, else 4 KiB ones. */
static uint64_t post(uint64_t op, uint64_t first, uint64_t n, bool huge)
{
	uint64_t step = huge ? GUEST_2M_PAGES : 1, cnt = 0, pages = 0;
	for (uint64_t i = first * h.part; i < (first + n) * h.part; i += step)
		h.ring[cnt++] = balloon_ent_make(page_gpa(i), huge);
	int64_t rc = balloon(op, cnt, 0, 0, 0);
	for (uint64_t k = 0; rc > 0 && k < cnt; k++)
		if (balloon_ent_status(h.ring[k]) == BALLOON_ST_OK)
			pages += step;
	return pages;
}

/* Reads parts [first, first+n) and prints the step's line. */
static void check(const char *step, uint64_t first, uint64_t n,
		  uint64_t accepted)
{
	uint64_t zero = 0, own = 0, foreign = 0;
	for (uint64_t i = first * h.part; i < (first + n) * h.part; i++) {
		const uint64_t *p = wl_page(&h.region, i);
		uint64_t gpa = page_gpa(i);
		if (!wl_page_diff(p, 0, true)) {
			zero++;
		} else if (!wl_page_diff(p, dvm_hostile_base(h.seed, gpa), false)) {
			own++;
		} else {
			foreign++;
			if (h.reported_lines++ < 8)
				gprintf("hostile: FOREIGN step=%s gpa=0x%lx "
					"word0=0x%lx\n", step, gpa, p[0]);
		}
	}
	gprintf("hostile: step=%s pages=%lu accepted=%lu zero=%lu own=%lu "
		"foreign=%lu\n", step, n * h.part, accepted, zero, own, foreign);
	h.foreign += foreign;
}

static int hostile_run(unsigned cpu)
{
	(void)cpu;
	uint64_t acc;

	for (uint64_t i = 0; i < h.npages; i++)
		wl_page_write(wl_page(&h.region, i),
			      dvm_hostile_base(h.seed, page_gpa(i)));
	gprintf("hostile: touched pages=%lu gpa=0x%lx\n", h.npages,
		h.region.ext[0].gpa);
	hc_result(DVM_RESULT_REGION_GPA, h.region.ext[0].gpa);
	hc_ready(DVM_READY_TOUCHED);

	do_register();
	/* stats that cannot be true: all ones, a balloon claim above RAM */
	volatile uint64_t *gh = (volatile uint64_t *)(uintptr_t)(h.cfg_gpa +
								 BALLOON_CFG_GUEST_OFF);
	for (unsigned i = 0; i < sizeof(struct balloon_cfg_guest) / 8; i++)
		gh[i] = ~0ull;
	balloon(BALLOON_OP_STATS, 0, 0, 0, 0);
	for (unsigned i = 0; i < sizeof(struct balloon_cfg_guest) / 8; i++)
		gh[i] = 0;
	acc = post(BALLOON_OP_INFLATE, 0, 2, true);
	acc += post(BALLOON_OP_INFLATE, 2, 1, false);
	check("inflate", 0, 3, acc);
	check("report", 3, 1, post(BALLOON_OP_REPORT, 3, 1, true));
	acc = post(BALLOON_OP_DEFLATE, 0, 2, true);
	acc += post(BALLOON_OP_DEFLATE, 2, 1, false);
	check("deflate", 0, 3, acc);
	acc = post(BALLOON_OP_INFLATE, 4, 1, false);
	do_register();                       /* a reset: the host sweeps */
	check("reset", 4, 1, acc);
	acc = post(BALLOON_OP_INFLATE, 5, 1, true);
	balloon(BALLOON_OP_UNREGISTER, 0, 0, 0, 0);
	check("unregister", 5, 1, acc);

	for (uint64_t i = 6 * h.part; i < h.npages; i++)
		if (wl_page_diff(wl_page(&h.region, i),
				 dvm_hostile_base(h.seed, page_gpa(i)), false)) {
			if (!h.lost)
				gprintf("hostile: MISMATCH control page gpa=0x%lx\n",
					page_gpa(i));
			h.lost = true;
		}
	hc_result(DVM_RESULT_FOREIGN_PAGES, h.foreign);
	gprintf("hostile: done foreign=%lu control=%s\n", h.foreign,
		h.lost ? "LOST" : "ok");
	return h.foreign || h.lost ? DVM_EXIT_MISMATCH : GUEST_EXIT_OK;
}

const struct workload wl_hostile = {
	.name = "hostile",
	.usage = "mib=N [seed=S]",
	.setup = hostile_setup,
	.run = hostile_run,
};
