/*
 * wl_image.c - the `image` workload: a guest whose RAM the host filled
 * from a RAM image of a real Linux guest (VM key ram_image=), which keeps
 * that content, optionally churns it the way a running guest does, and
 * proves at the end that nothing was lost.
 *
 *   image sums=GPA [hold=H] [churn=PCT] [seconds=S|-1 | end_ms=T] [seed=X]
 *
 * end_ms=T ends the hold and the churn at T ms from the epoch (sched.c;
 * without epoch=, from boot) instead of after `seconds`, and after the
 * final check the VM keeps its memory and waits until it is stopped:
 * densevm bench gives every image VM the end of its run less a margin, so
 * the final check runs inside the run whenever the VM started, and the
 * run's usage stays what it was to the end.  With report_ms=
 * (sched.c) the churn reports its rewrites so far as the work done.
 *
 * sums= is where the host put the checksum table (guest/image_sums.h:
 * the loaded range and one dvm_page_hash per page); densevm adds it to
 * the arguments.  Setup takes the table's and the image's pages from the
 * allocator, so nothing else (the balloon included) is handed them.
 *
 * Then: every nonzero page is checked once (the guest reads what the host
 * loaded; zero pages are left untouched so they stay unallocated), the
 * content is held unchanged for `hold` seconds (where a test weighs what
 * page sharing saves on the image as it is), then for `seconds` churn=PCT % of the image's pages per second are rewritten
 * with the current content of another page of the image (as a running
 * guest copies, moves and frees data), in at most 100 steps per second
 * with HC_WAIT sleeps in between.  A rewrite first checks both pages.
 * Each page carries the index of the image page whose content it must
 * hold now (cur[], initially itself), so at the end every page, rewritten
 * or not, zero or not, is checked against sums[cur[i]]; with end_ms the
 * image's holes that were never written are left unread, as at the start.
 */
#include "workload.h"
#include "image_sums.h"

#define STEP_MIN_NS   (10 * NS_PER_MS)
#define PROGRESS_NS   (5 * NS_PER_SEC)

static struct {
	const struct dvm_sums_header *hdr;
	const uint64_t *sums;
	uint64_t first, npages, churn, seed, hold;
	int64_t seconds;
	uint64_t end;       /* end_ms on the now_ns() clock; 0 = seconds */
	uint64_t end_ms;
	uint32_t *cur;      /* the image page whose content page i holds */
	uint64_t bad;       /* mismatched pages */
} im;

/* True when [gpa, gpa + len) is RAM (a fault would end the VM). */
static bool in_ram(uint64_t gpa, uint64_t len)
{
	const struct hv_bootinfo *bi = guest_bootinfo();
	for (unsigned i = 0; i < bi->nranges; i++) {
		uint64_t s = bi->ranges[i].gpa, e = s + bi->ranges[i].len;
		if (gpa >= s && gpa <= e && len <= e - gpa)
			return true;
	}
	return false;
}

static void image_setup(struct wl_args *a)
{
	if (!args_has(a, "sums"))
		args_fail(a, "sums=GPA missing: run this VM with ram_image=NAME "
			  "(densevm adds sums=)");
	uint64_t sums = args_u64(a, "sums", 0);
	im.hold = (uint64_t)args_int(a, "hold", 0, 0, 100000000);
	im.churn = (uint64_t)args_int(a, "churn", 0, 0, 10000);
	im.seconds = args_int(a, "seconds", 10, -1, 100000000);
	im.seed = args_u64(a, "seed", 1);
	if (args_has(a, "end_ms")) {
		if (args_has(a, "seconds"))
			args_fail(a, "end_ms and seconds: give one of them");
		im.end_ms = (uint64_t)args_need(a, "end_ms", 1, 86400000);
		im.end = sched_epoch_ns(im.end_ms);
	}
	args_done(a);

	if (sums & 4095 || !in_ram(sums, sizeof(struct dvm_sums_header)))
		args_fail(a, "sums=0x%lx is not a page in RAM", sums);
	im.hdr = (const struct dvm_sums_header *)(uintptr_t)sums;
	if (im.hdr->magic != DVM_SUMS_MAGIC ||
	    im.hdr->version != DVM_SUMS_VERSION ||
	    im.hdr->header_bytes != sizeof(struct dvm_sums_header))
		args_fail(a, "no checksum table at sums=0x%lx (magic 0x%lx)", sums,
			  im.hdr->magic);
	im.first = im.hdr->first_gpa;
	im.npages = im.hdr->npages;
	uint64_t tbytes = dvm_sums_bytes(im.npages);
	if (!im.npages || im.npages > (1ull << 32) || im.first & 4095 ||
	    !in_ram(sums, tbytes) ||
	    !in_ram(im.first, im.npages << GUEST_PAGE_SHIFT))
		args_fail(a, "the checksum table's range [0x%lx, +%lu pages) is "
			  "not RAM", im.first, im.npages);
	im.sums = (const uint64_t *)(uintptr_t)(sums + im.hdr->header_bytes);
	uint64_t tpages = (tbytes + GUEST_PAGE_SIZE - 1) >> GUEST_PAGE_SHIFT;
	if (palloc_take(sums, tpages) || palloc_take(im.first, im.npages)) {
		gprintf("image: the table at 0x%lx (%lu pages) or the image at "
			"0x%lx (%lu pages) is not free guest heap\n", sums, tpages,
			im.first, im.npages);
		guest_exit(GUEST_EXIT_NOMEM);
	}
	uint64_t cpages = (im.npages * 4 + GUEST_PAGE_SIZE - 1) >> GUEST_PAGE_SHIFT;
	im.cur = (uint32_t *)(uintptr_t)wl_alloc_contig("image", cpages);
	for (uint64_t i = 0; i < im.npages; i++)
		im.cur[i] = (uint32_t)i;
	if (im.end)
		gprintf("image: pages=%lu at 0x%lx-0x%lx of %lu image pages, "
			"churn=%lu%%/s end_ms=%lu seed=0x%lx\n", im.npages, im.first,
			im.first + (im.npages << GUEST_PAGE_SHIFT),
			im.hdr->image_pages, im.churn, im.end_ms, im.seed);
	else
		gprintf("image: pages=%lu at 0x%lx-0x%lx of %lu image pages, "
			"churn=%lu%%/s seconds=%ld seed=0x%lx\n", im.npages, im.first,
			im.first + (im.npages << GUEST_PAGE_SHIFT),
			im.hdr->image_pages, im.churn, im.seconds, im.seed);
}

static uint8_t *page(uint64_t i)
{
	return (uint8_t *)(uintptr_t)(im.first + (i << GUEST_PAGE_SHIFT));
}

/* Checks page i against the content it must hold; false on a mismatch. */
static bool check(uint64_t i, const char *when)
{
	guest_barrier();
	uint64_t got = dvm_page_hash(page(i));
	uint64_t want = im.sums[im.cur[i]];
	if (got == want)
		return true;
	if (im.bad++ < 10) {
		/* what it holds instead, where that is cheap to tell: its own
		 * image content (a rewrite was lost), zeros, or neither */
		const char *what = got == im.sums[i] ? "its content before the "
			"rewrites (a lost write)" : got == im.hdr->zero_hash ?
			"zeros" : "other content";
		gprintf("image: MISMATCH %s gpa=0x%lx holds image page %u: "
			"expected hash 0x%lx, got 0x%lx: %s\n", when,
			(uint64_t)(uintptr_t)page(i), im.cur[i], want, got, what);
	}
	return false;
}

static int failed(const char *when)
{
	gprintf("image: FAILED %s: %lu pages differ\n", when, im.bad);
	return GUEST_EXIT_MISMATCH;
}

static int image_run(unsigned cpu)
{
	(void)cpu;
	uint64_t zero = im.hdr->zero_hash, loaded = 0;
	for (uint64_t i = 0; i < im.npages; i++) {
		guest_service_every(i);
		if (im.sums[i] == zero)
			continue;   /* a hole: reading it would allocate it */
		loaded++;
		check(i, "at start");
	}
	if (im.bad)
		return failed("at start");
	gprintf("image: start ok: %lu nonzero pages hold the image\n", loaded);
	uint64_t hold_end = now_ns() + im.hold * NS_PER_SEC;
	if (im.end && hold_end > im.end)
		hold_end = im.end;
	for (uint64_t now; (now = now_ns()) < hold_end;)
		guest_wait(hold_end - now);

	double pps = (double)im.npages * (double)im.churn / 100.0;
	uint64_t step = pps > 0 ? (uint64_t)((double)NS_PER_SEC / pps) : NS_PER_SEC;
	if (step < STEP_MIN_NS)
		step = STEP_MIN_NS;
	if (step > NS_PER_SEC)
		step = NS_PER_SEC;
	uint64_t rng = im.seed ^ DVM_SALT_IMAGE, j = 0;
	uint64_t t0 = now_ns(), last = t0;
	uint64_t limit = im.seconds < 0 ? ~0ULL : (uint64_t)im.seconds * NS_PER_SEC;
	if (im.end)
		limit = im.end > t0 ? im.end - t0 : 0;
	for (;;) {
		uint64_t t = now_ns() - t0;
		if (t >= limit)
			break;
		uint64_t due = (uint64_t)(pps * (double)t / (double)NS_PER_SEC);
		for (; j < due && im.npages > 1; j++) {
			guest_service_every(j);
			uint64_t dst = dvm_splitmix64(&rng) % im.npages;
			uint64_t src = dvm_splitmix64(&rng) % (im.npages - 1);
			src += src >= dst;   /* another page */
			if (!check(dst, "before rewrite") ||
			    !check(src, "as a source"))
				return failed("while churning");
			memcpy(page(dst), page(src), GUEST_PAGE_SIZE);
			im.cur[dst] = im.cur[src];
		}
		uint64_t now = now_ns();
		sched_report(j, now);
		if (now - last >= PROGRESS_NS) {
			gprintf("image: t=%lus rewrites=%lu\n", (now - t0) / NS_PER_SEC, j);
			last = now;
		}
		/* to the next step, the next report or the end */
		uint64_t next = (t / step + 1) * step, rep = sched_report_due(now);
		if (rep != ~0ULL && rep > now && rep - t0 < next)
			next = rep - t0;
		if (next > limit)
			next = limit;
		if (now - t0 < next)
			guest_wait(next - (now - t0));
	}
	uint64_t unread = 0, c0 = now_ns();
	for (uint64_t i = 0; i < im.npages; i++) {
		guest_service_every(i);
		/* end_ms (the bench): a page that was a hole of the image and
		 * was never written stays unread, as at the start: reading it
		 * faults it in (about 200 us each on a nested host, 12 s for a
		 * boot image's 58k holes) and allocates it in a memfd's RAM,
		 * which would move the usage the bench measures */
		if (im.end && im.cur[i] == i && im.sums[i] == zero) {
			unread++;
			continue;
		}
		check(i, "at the end");
	}
	if (im.bad)
		return failed("at the end");
	gprintf("image: done pages=%lu rewrites=%lu unread_holes=%lu "
		"check_ms=%lu mismatches=0\n", im.npages, j, unread,
		(now_ns() - c0) / NS_PER_MS);
	hc_result(DVM_RESULT_IMAGE_REWRITES, j);
	hc_result(DVM_RESULT_IMAGE_PAGES, im.npages);
	/* end_ms: the run goes on (the bench stops it at its end): keep the
	 * memory as it is rather than exit, so the run's usage does not end
	 * early */
	while (im.end)
		guest_wait(NS_PER_SEC);
	return GUEST_EXIT_OK;
}

const struct workload wl_image = {
	.name = "image",
	.usage = "sums=GPA [hold=H] [churn=PCT] [seconds=S|-1 | end_ms=T] [seed=X]",
	.setup = image_setup,
	.run = image_run,
};
