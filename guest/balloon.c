/*
 * balloon.c - the micro guest's balloon front end.
 *
 * Owns: the OS glue between the shared balloon core (balloon-driver/,
 * linked into this image) and the micro guest: discovery through the
 * boot-info page, pages from palloc (va == GPA), stats from the allocator,
 * the HC_BALLOON doorbell, the TSC clock; the allocator's pressure hook;
 * the service calls that stand in for interrupts (guest_service,
 * guest_wait); and free page reporting of whole free 2 MiB blocks.
 *
 * Serialization: the core is not thread-safe, and any vCPU may call in.
 * One spinlock: service calls only try it (another vCPU is already doing
 * the work), the pressure hook waits for it (it must not fail while the
 * balloon holds memory).  Lock order is balloon, then palloc: the core's
 * allocations use palloc_try_contig(), which never calls the pressure
 * hook, so nothing under this lock re-enters it.
 */
#include "guest.h"
#include "balloon-driver/balloon.h"

#define NS_PER_MS_B   1000000ULL
#define POLL_MS       1000      /* idle re-check; changes wake us anyway */
#define REPORT_NS     (2000 * NS_PER_MS_B)
#define REPORT_BATCH  64        /* 2 MiB blocks per REPORT */
#define REPORT_ROUNDS 8         /* at most 1 GiB per service call */

static struct {
	struct balloon b;
	bool on;
	int lock;
	uint64_t last_seq;       /* config seq seen by the last poll */
	uint64_t due_tsc;        /* the core wants a poll from here on */
	uint64_t next_report_ns;
} bl;

/* ------------------------------------------------------------- OS glue */

static void *os_alloc(void *ctx, unsigned order)
{
	(void)ctx;
	/* try_contig: never the pressure hook, so never back into the core */
	uint64_t gpa = order ? palloc_try_contig(GUEST_2M_PAGES, GUEST_2M_PAGES)
			     : palloc_try_contig(1, 1);
	return (void *)(uintptr_t)gpa;
}

static void os_free(void *ctx, void *va, unsigned order)
{
	(void)ctx;
	uint64_t gpa = (uint64_t)(uintptr_t)va;
	if (palloc_free_pages(gpa, order ? GUEST_2M_PAGES : 1) < 0)
		gpanic("balloon: freeing 0x%lx (order %u) failed", gpa, order);
}

static uint64_t os_va_to_pfn(void *ctx, void *va)
{
	(void)ctx;
	return (uint64_t)(uintptr_t)va >> GUEST_PAGE_SHIFT;
}

static void *os_pfn_to_va(void *ctx, uint64_t pfn)
{
	(void)ctx;
	return (void *)(uintptr_t)(pfn << GUEST_PAGE_SHIFT);
}

static uint64_t os_avail(void *ctx)
{
	(void)ctx;
	return palloc_free_count();
}

/* The micro guest has no page cache, swap, faults, PSI or OOM killer:
 * those stay unset in the mask. */
static void os_stats(void *ctx, struct balloon_stats *st)
{
	(void)ctx;
	st->valid = BALLOON_STAT_MEM_TOTAL | BALLOON_STAT_MEM_FREE |
		    BALLOON_STAT_MEM_AVAILABLE;
	st->mem_total = palloc_total_count() << GUEST_PAGE_SHIFT;
	st->mem_free = palloc_free_count() << GUEST_PAGE_SHIFT;
	st->mem_available = st->mem_free;
}

static int64_t os_doorbell(void *ctx, uint64_t op, uint64_t a1, uint64_t a2,
			   uint64_t a3, uint64_t a4, uint64_t *ret2)
{
	(void)ctx;
	uint64_t a[5] = { op, a1, a2, a3, a4 };
	return hc_call5(HC_BALLOON, a, ret2);
}

static uint64_t os_now(void *ctx)
{
	(void)ctx;
	return now_ns();
}

/* ---------------------------------------------------------------- lock */

static bool bl_trylock(void)
{
	return !__atomic_exchange_n(&bl.lock, 1, __ATOMIC_ACQUIRE);
}

static void bl_lock(void)
{
	while (!bl_trylock())
		while (__atomic_load_n(&bl.lock, __ATOMIC_RELAXED))
			guest_cpu_relax();
}

static void bl_unlock(void)
{
	__atomic_store_n(&bl.lock, 0, __ATOMIC_RELEASE);
}

/* ---------------------------------------------------- free page reporting */

/* Reports free 2 MiB blocks that were handed out since their last report:
 * the host may drop their contents (they read as zero afterwards, which no
 * user of a free page relies on either way).  The blocks are taken out of
 * the allocator while the host works on them, so no vCPU can be handed a
 * page the host is discarding.  The floor stays free for the others. */
static void report_free(void)
{
	uint64_t gpa[REPORT_BATCH];
	struct balloon_range r[REPORT_BATCH];
	uint64_t now = now_ns();

	if (!balloon_reporting_enabled(&bl.b) || now < bl.next_report_ns)
		return;
	bl.next_report_ns = now + REPORT_NS;
	for (unsigned round = 0; round < REPORT_ROUNDS; round++) {
		unsigned n = palloc_claim_reportable(gpa, REPORT_BATCH,
						     bl.b.c.floor_pages);
		for (unsigned i = 0; i < n; i++) {
			r[i].pfn = gpa[i] >> GUEST_PAGE_SHIFT;
			r[i].npages = GUEST_2M_PAGES;
		}
		int rc = n ? balloon_report(&bl.b, r, n) : 0;
		for (unsigned i = 0; i < n; i++)
			if (palloc_free_2m(gpa[i]) < 0)
				gpanic("balloon: reported block 0x%lx lost", gpa[i]);
		if (n < REPORT_BATCH || rc < 0)
			break;
	}
}

/* ------------------------------------------------------------- service */

static uint64_t cfg_seq(void)
{
	return __atomic_load_n(&bl.b.cfg_host->seq, __ATOMIC_ACQUIRE);
}

/* One poll of the core if no other vCPU is doing one: returns the ms until
 * the core wants the next, or -1 when the lock was taken. */
static int64_t service_locked_try(void)
{
	if (!bl_trylock())
		return -1;
	__atomic_store_n(&bl.last_seq, cfg_seq(), __ATOMIC_RELAXED);
	uint32_t ms = balloon_poll(&bl.b);
	report_free();
	__atomic_store_n(&bl.due_tsc, guest_rdtsc() + (uint64_t)ms * tsc_khz(),
			 __ATOMIC_RELAXED);
	bl_unlock();
	return ms;
}

void guest_service(void)
{
	if (!bl.on)
		return;
	/* The fast path: one load from the config page and one rdtsc. */
	if (cfg_seq() == __atomic_load_n(&bl.last_seq, __ATOMIC_RELAXED) &&
	    (int64_t)(guest_rdtsc() -
		      __atomic_load_n(&bl.due_tsc, __ATOMIC_RELAXED)) < 0)
		return;
	service_locked_try();
}

void guest_wait(uint64_t timeout_ns)
{
	if (bl.on) {
		int64_t ms = -1;
		if (cfg_seq() != __atomic_load_n(&bl.last_seq, __ATOMIC_RELAXED) ||
		    (int64_t)(guest_rdtsc() -
			      __atomic_load_n(&bl.due_tsc, __ATOMIC_RELAXED)) >= 0)
			ms = service_locked_try();
		if (ms == 0)
			return;          /* more balloon work: the caller loops */
		int64_t d = (int64_t)(__atomic_load_n(&bl.due_tsc, __ATOMIC_RELAXED) -
				      guest_rdtsc());
		/* Another vCPU holds the lock: look again in 1 ms. */
		uint64_t until = d > 0 ? tsc_to_ns((uint64_t)d) : NS_PER_MS_B;
		if (until < timeout_ns)
			timeout_ns = until;
	}
	hc_wait(timeout_ns);
}

/* ---------------------------------------------------- pressure and boot */

/* The allocator is about to fail: give memory back first, whatever the
 * target says (the core holds inflation off for a while afterwards). */
static int pressure_hook(uint64_t npages)
{
	bl_lock();
	uint64_t freed = balloon_deflate_for_pressure(&bl.b, npages);
	bl_unlock();
	return freed > 0;
}

void guest_balloon_set_huge(bool on)
{
	bl_lock();
	if (on)
		bl.b.p.flags &= ~BALLOON_P_NO_HUGE;
	else
		bl.b.p.flags |= BALLOON_P_NO_HUGE;
	bl_unlock();
}

bool guest_balloon_active(void)
{
	return bl.on;
}

void guest_balloon_init(void)
{
	const struct hv_bootinfo *bi = guest_bootinfo();
	struct balloon_os os = {
		.alloc = os_alloc, .free = os_free, .va_to_pfn = os_va_to_pfn,
		.pfn_to_va = os_pfn_to_va, .avail_pages = os_avail,
		.read_stats = os_stats, .doorbell = os_doorbell, .now_ns = os_now,
	};
	struct balloon_params p = {
		.total_pages = bi->ram_bytes >> GUEST_PAGE_SHIFT,
		.poll_ms = POLL_MS,
	};

	if (!(bi->features & HV_FEAT_BALLOON))
		return;
	if (balloon_init(&bl.b, &os, &p) < 0)
		return;
	int rc = balloon_start(&bl.b);
	if (rc < 0) {
		gprintf("balloon: register failed (%d): running without\n", rc);
		return;
	}
	bl.last_seq = ~0ULL;         /* poll at the first service call */
	bl.due_tsc = guest_rdtsc();
	__atomic_store_n(&guest_alloc_pressure_hook, pressure_hook,
			 __ATOMIC_RELEASE);
	__atomic_store_n(&bl.on, true, __ATOMIC_RELEASE);
}
