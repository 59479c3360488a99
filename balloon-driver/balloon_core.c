/*
 * balloon_core.c - the guest side of the balloon protocol (see balloon.h).
 *
 * Owns: the policy of one balloon instance inside a guest: reading the
 * host's config page, inflating toward the target (2 MiB blocks first, then
 * 4 KiB pages) without crossing the free-memory floor, deflating, giving
 * pages back under pressure, periodic stats, free page reporting, and the
 * bookkeeping of which PFNs the balloon holds.
 *
 * Freestanding: no libc, no globals, no floating point.  Everything the
 * core needs from the OS comes through struct balloon_os.
 *
 * Invariants:
 *   - every PFN in t4k/t2m was accepted (BALLOON_ST_OK) by an INFLATE;
 *   - a page leaves t4k/t2m for the OS only after the host accepted its
 *     DEFLATE, or in a forced path (pressure, stop) where the OS's need or
 *     the host's UNREGISTER makes it safe; forced frees are counted;
 *   - ring entries are built fresh for every batch (status bits 0), and
 *     read back only after the synchronous doorbell returned.
 */
#include "balloon.h"

#define NS_PER_MS 1000000ULL
/* How long balloon_start asks again while the host answers -EBUSY. */
#define REGISTER_BUSY_TRIES 100000u
#define REGISTER_BUSY_NS    (2000 * NS_PER_MS)

/* Ordering for the host-written seqlock.  On x86 these are compiler
 * barriers; __atomic builtins are inline for aligned 64-bit words, so they
 * need no libatomic, hosted, freestanding or in the kernel. */
#define LOAD_ACQ(p)   __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define FENCE_ACQ()   __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define FENCE_REL()   __atomic_thread_fence(__ATOMIC_RELEASE)

static void zero_bytes(void *p, uint64_t n)
{
	volatile unsigned char *c = p;   /* volatile: no memset call emitted */
	while (n--)
		*c++ = 0;
}

/* Struct copy without a memcpy call (clang emits one for `a = b` of a
 * large struct even when freestanding).  Sizes are multiples of 8. */
static void copy_words(void *dst, const void *src, uint64_t bytes)
{
	volatile uint64_t *d = dst;
	const uint64_t *s = src;
	for (uint64_t i = 0; i < bytes / 8; i++)
		d[i] = s[i];
}

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }

static uint64_t held_pages(const struct balloon *b)
{
	return b->t4k.count + b->t2m.count * BALLOON_HUGE_PAGES;
}

/* ------------------------------------------------------------ tracking */

/* Adds one empty tracking page to the spare list. */
static int track_grow(struct balloon *b, struct balloon_track *t)
{
	struct balloon_track_page *pg = b->os.alloc(b->os.ctx, 0);
	if (!pg)
		return -BALLOON_ENOMEM;
	pg->count = 0;
	pg->next = t->spare;
	t->spare = pg;
	t->free_slots += BALLOON_TRACK_SLOTS;
	t->npages++;
	return 0;
}

/* Pushing requires a free slot: callers reserve before they allocate the
 * balloon page, so a push never fails and never allocates. */
static void track_push(struct balloon_track *t, uint32_t pfn)
{
	struct balloon_track_page *h = t->head;
	if (!h || h->count == BALLOON_TRACK_SLOTS) {
		h = t->spare;          /* free_slots > 0 guarantees one */
		t->spare = h->next;
		h->count = 0;
		h->next = t->head;
		t->head = h;
	}
	h->pfn[h->count++] = pfn;
	t->count++;
	t->free_slots--;
}

/* Pages below the head are always full; an emptied head moves to the spare
 * list at once, so a push-back right after a pop always has its slot. */
static uint32_t track_pop(struct balloon_track *t)
{
	struct balloon_track_page *h = t->head;
	uint32_t pfn = h->pfn[--h->count];
	t->count--;
	t->free_slots++;
	if (h->count == 0) {
		t->head = h->next;
		h->next = t->spare;
		t->spare = h;
	}
	return pfn;
}

/* Frees spare tracking pages beyond `keep`. */
static void track_trim(struct balloon *b, struct balloon_track *t,
		       unsigned keep)
{
	struct balloon_track_page **pp = &t->spare;
	unsigned n = 0;
	while (*pp) {
		struct balloon_track_page *pg = *pp;
		if (n < keep) {
			n++;
			pp = &pg->next;
			continue;
		}
		*pp = pg->next;
		b->os.free(b->os.ctx, pg, 0);
		t->free_slots -= BALLOON_TRACK_SLOTS;
		t->npages--;
	}
}

/* ----------------------------------------------------------- host I/O */

/* The guest half of the config page: written before every doorbell so the
 * host always sees the current count and status. */
static void publish(struct balloon *b)
{
	volatile struct balloon_cfg_guest *g = b->cfg_guest;
	if (!g)
		return;
	g->balloon_pages = held_pages(b);
	g->status = b->status;
	g->stats_answered = b->stats_answered;
}

static int64_t doorbell(struct balloon *b, uint64_t op, uint64_t a1,
			uint64_t a2, uint64_t a3, uint64_t a4, uint64_t *ret2)
{
	uint64_t r2 = 0;
	int64_t ret;
	publish(b);
	FENCE_REL();
	b->c.doorbells++;
	ret = b->os.doorbell(b->os.ctx, op, a1, a2, a3, a4, &r2);
	if (ret < 0)
		b->c.doorbell_errors++;
	if (ret2)
		*ret2 = r2;
	return ret;
}

/* Reads the host half as a seqlock.  On a change: takes the new target,
 * clears the backoff (a new target deserves a fresh try) and acks. */
static void read_config(struct balloon *b)
{
	volatile struct balloon_cfg_host *h = b->cfg_host;
	int tries;
	if (!h)
		return;
	for (tries = 0; tries < 1000; tries++) {
		uint64_t s1 = LOAD_ACQ(&h->seq), s2, target;
		uint32_t magic, version, flags, period, req;
		if (s1 & 1)
			continue;
		magic = h->magic;
		version = h->version;
		target = h->target_pages;
		flags = h->flags;
		period = h->stats_period_ms;
		req = h->stats_request;
		FENCE_ACQ();
		s2 = LOAD_ACQ(&h->seq);
		if (s1 != s2)
			continue;
		if (s1 == b->seen_seq)
			return;                        /* nothing new */
		if (magic != BALLOON_CFG_MAGIC || version != BALLOON_PROTO_VERSION)
			return;                        /* not (yet) a valid config */
		b->seen_seq = s1;
		b->target = min_u64(target, b->p.total_pages);
		b->host_flags = flags;
		b->stats_period_ms = period;
		b->stats_request = req;
		b->backoff_until_ns = 0;
		b->cfg_guest->ack_seq = s1;
		return;
	}
}

/* ------------------------------------------------------------- inflate */

static void free_entry(struct balloon *b, uint64_t e)
{
	uint64_t pfn = balloon_ent_gpa(e) >> BALLOON_PAGE_SHIFT;
	unsigned order = (e & BALLOON_ENT_2M) ? BALLOON_HUGE_ORDER : 0;
	b->os.free(b->os.ctx, b->os.pfn_to_va(b->os.ctx, pfn), order);
}

/* Allocates one entry's worth into *e; 0, or -1 when the OS had none.
 * `huge` asks for 2 MiB; on failure the caller retries with 4 KiB.  (The
 * entry itself can be 0: PFN 0 as a 4 KiB entry.) */
static int alloc_entry(struct balloon *b, int huge, uint64_t *e)
{
	unsigned order = huge ? BALLOON_HUGE_ORDER : 0;
	void *va = b->os.alloc(b->os.ctx, order);
	uint64_t pfn;
	if (!va)
		return -1;
	pfn = b->os.va_to_pfn(b->os.ctx, va);
	/* The tracker stores 32-bit PFNs (16 TiB); a misaligned 2 MiB block
	 * would be refused by the host anyway: give such pages back. */
	if (pfn > 0xffffffffULL ||
	    (huge && (pfn & (BALLOON_HUGE_PAGES - 1)))) {
		b->os.free(b->os.ctx, va, order);
		return -1;
	}
	*e = balloon_ent_make(pfn << BALLOON_PAGE_SHIFT, huge);
	return 0;
}

/*
 * Fills one ring with up to `*want` pages, sends it, and keeps what the
 * host accepted.  Sets *stop when this round of inflation should end: the
 * floor, an allocation failure, a doorbell error or a batch refused whole.
 */
static void inflate_batch(struct balloon *b, uint64_t *want, int *stop)
{
	uint64_t avail = b->os.avail_pages(b->os.ctx);
	uint64_t floor = b->c.floor_pages;
	uint64_t n4k = 0, n2m = 0, accepted = 0;
	uint32_t n = 0, i;
	int64_t ret;

	while (n < b->ring_cap && *want > 0) {
		int huge = !(b->p.flags & BALLOON_P_NO_HUGE) && !b->huge_failed &&
			   *want >= BALLOON_HUGE_PAGES;
		uint64_t size = huge ? BALLOON_HUGE_PAGES : 1;
		struct balloon_track *t = huge ? &b->t2m : &b->t4k;
		uint64_t pending = huge ? n2m : n4k;
		uint64_t e;

		/* The floor counts the tracking page we may need too. */
		if (avail < floor + size + 1) {
			if (huge) {
				b->huge_failed = 1;   /* maybe 4 KiB still fits */
				continue;
			}
			b->status |= BALLOON_GST_AT_FLOOR;
			*stop = 1;
			break;
		}
		if (t->free_slots <= pending) {
			if (track_grow(b, t) < 0) {
				b->c.alloc_fail_4k++;
				b->status |= BALLOON_GST_ALLOC_FAIL;
				*stop = 1;
				break;
			}
			avail--;
		}
		if (alloc_entry(b, huge, &e) < 0) {
			if (huge) {
				b->c.alloc_fail_2m++;
				b->huge_failed = 1;
				continue;
			}
			b->c.alloc_fail_4k++;
			b->status |= BALLOON_GST_ALLOC_FAIL;
			*stop = 1;
			break;
		}
		b->ring[n++] = e;
		if (huge)
			n2m++;
		else
			n4k++;
		*want -= size;
		avail -= size;
	}
	if (n == 0)
		return;

	ret = doorbell(b, BALLOON_OP_INFLATE, n, 0, 0, 0, 0);
	for (i = 0; i < n; i++) {
		uint64_t e = b->ring[i];
		int huge = (e & BALLOON_ENT_2M) != 0;
		/* Only the host's OK means the host took the page; an error
		 * from the doorbell means it took none. */
		if (ret >= 0 && balloon_ent_status(e) == BALLOON_ST_OK) {
			uint64_t pfn = balloon_ent_gpa(e) >> BALLOON_PAGE_SHIFT;
			track_push(huge ? &b->t2m : &b->t4k, (uint32_t)pfn);
			accepted += huge ? BALLOON_HUGE_PAGES : 1;
		} else {
			if (ret >= 0)
				b->c.refused++;
			free_entry(b, e);
			*want += huge ? BALLOON_HUGE_PAGES : 1;
		}
	}
	b->c.inflated += accepted;
	if (ret < 0 || accepted == 0)
		*stop = 1;
}

/* ------------------------------------------------------------- deflate */

/*
 * Takes up to `excess` pages out of the balloon in one ring: 2 MiB blocks
 * while at least 2 MiB is to go, else 4 KiB pages, else a 2 MiB block even
 * if it overshoots (inflation then refills with 4 KiB).  Returns the pages
 * given back to the OS.  `force`: the OS needs memory now, so pages the
 * host did not confirm go back too (the host still counts them ballooned;
 * for anonymous RAM they simply fault in again).
 */
static uint64_t deflate_batch(struct balloon *b, uint64_t excess, int force,
			      int *stop)
{
	uint64_t freed = 0;
	uint32_t n = 0, i;
	int64_t ret;

	while (n < b->ring_cap && excess > 0) {
		uint64_t e;
		if (b->t2m.count && (excess >= BALLOON_HUGE_PAGES || !b->t4k.count)) {
			e = balloon_ent_make((uint64_t)track_pop(&b->t2m)
					     << BALLOON_PAGE_SHIFT, 1);
			excess -= min_u64(excess, BALLOON_HUGE_PAGES);
		} else if (b->t4k.count) {
			e = balloon_ent_make((uint64_t)track_pop(&b->t4k)
					     << BALLOON_PAGE_SHIFT, 0);
			excess--;
		} else {
			break;
		}
		b->ring[n++] = e;
	}
	if (n == 0) {
		*stop = 1;
		return 0;
	}

	ret = b->registered ? doorbell(b, BALLOON_OP_DEFLATE, n, 0, 0, 0, 0)
			    : -BALLOON_ENODEV;
	for (i = 0; i < n; i++) {
		uint64_t e = b->ring[i];
		int huge = (e & BALLOON_ENT_2M) != 0;
		uint64_t size = huge ? BALLOON_HUGE_PAGES : 1;
		unsigned st = ret >= 0 ? balloon_ent_status(e) : BALLOON_ST_NONE;
		/* OK: the host gave it back.  A refusal other than BUSY/IO
		 * means the host does not hold the page as ballooned, so it is
		 * ours already.  BUSY/IO/no answer: keep it unless forced. */
		int give = st == BALLOON_ST_OK ||
			   (st != BALLOON_ST_NONE && st != BALLOON_ST_BUSY &&
			    st != BALLOON_ST_IO) ||
			   force;
		if (st != BALLOON_ST_OK && st != BALLOON_ST_NONE)
			b->c.refused++;
		if (give) {
			if (st != BALLOON_ST_OK)
				b->c.forced += size;
			free_entry(b, e);
			freed += size;
		} else {
			track_push(huge ? &b->t2m : &b->t4k,
				   (uint32_t)(balloon_ent_gpa(e) >> BALLOON_PAGE_SHIFT));
		}
	}
	b->c.deflated += freed;
	if (ret < 0 || freed == 0)
		*stop = 1;
	track_trim(b, &b->t4k, 1);
	track_trim(b, &b->t2m, 1);
	return freed;
}

/* Deflates up to `pages`, at most *batches doorbells. */
static uint64_t deflate_pages(struct balloon *b, uint64_t pages, int force,
			      uint32_t *batches)
{
	uint64_t freed = 0;
	int stop = 0;
	while (freed < pages && !stop && *batches > 0 && held_pages(b) > 0) {
		freed += deflate_batch(b, pages - freed, force, &stop);
		(*batches)--;
	}
	return freed;
}

/* ------------------------------------------------------------------ API */

int balloon_init(struct balloon *b, const struct balloon_os *os,
		 const struct balloon_params *p)
{
	uint64_t floor;
	if (!b || !os || !p || !os->alloc || !os->free || !os->va_to_pfn ||
	    !os->pfn_to_va || !os->avail_pages || !os->doorbell ||
	    !os->now_ns || p->total_pages == 0)
		return -BALLOON_EINVAL;
	zero_bytes(b, sizeof(*b));
	copy_words(&b->os, os, sizeof(*os));
	copy_words(&b->p, p, sizeof(*p));
	if (!b->p.poll_ms)
		b->p.poll_ms = 100;
	if (!b->p.backoff_ms)
		b->p.backoff_ms = 1000;
	if (!b->p.pressure_holdoff_ms)
		b->p.pressure_holdoff_ms = 5000;
	if (!b->p.max_batches)
		b->p.max_batches = 64;
	floor = b->p.floor_pages;
	if (!floor) {
		floor = b->p.total_pages / 16;
		if (floor < 4096)
			floor = 4096;
		if (floor > b->p.total_pages / 2)
			floor = b->p.total_pages / 2;
	}
	b->c.floor_pages = min_u64(floor, b->p.total_pages);
	return 0;
}

static void free_shared(struct balloon *b)
{
	if (b->ring)
		b->os.free(b->os.ctx, (void *)b->ring, 0);
	if (b->cfg_va)
		b->os.free(b->os.ctx, b->cfg_va, 0);
	b->ring = 0;
	b->cfg_va = 0;
	b->cfg_host = 0;
	b->cfg_guest = 0;
}

int balloon_start(struct balloon *b)
{
	uint64_t cap = 0, cfg_gpa, ring_gpa, t0;
	unsigned tries;
	int64_t ret;
	if (b->registered)
		return 0;
	b->cfg_va = b->os.alloc(b->os.ctx, 0);
	b->ring = b->os.alloc(b->os.ctx, 0);
	if (!b->cfg_va || !b->ring) {
		free_shared(b);
		return -BALLOON_ENOMEM;
	}
	zero_bytes(b->cfg_va, BALLOON_PAGE_SIZE);
	zero_bytes((void *)b->ring, BALLOON_PAGE_SIZE);
	b->cfg_host = (volatile struct balloon_cfg_host *)b->cfg_va;
	b->cfg_guest = (volatile struct balloon_cfg_guest *)
		((unsigned char *)b->cfg_va + BALLOON_CFG_GUEST_OFF);
	cfg_gpa = b->os.va_to_pfn(b->os.ctx, b->cfg_va) << BALLOON_PAGE_SHIFT;
	ring_gpa = b->os.va_to_pfn(b->os.ctx, (void *)b->ring) << BALLOON_PAGE_SHIFT;
	/* -EBUSY: the host holds one of the pages for a moment (a ksm merge
	 * batch took the freshly zeroed page as a zero page).  Giving up would
	 * leave the guest without a balloon for good, so ask again, within
	 * bounds: a batch lasts milliseconds, a hostile or broken host must
	 * not hang the guest's start. */
	t0 = b->os.now_ns(b->os.ctx);
	for (tries = 0;; tries++) {
		ret = doorbell(b, BALLOON_OP_REGISTER, cfg_gpa, ring_gpa, 1,
			       BALLOON_PROTO_VERSION, &cap);
		if (ret != -BALLOON_EBUSY || tries + 1 >= REGISTER_BUSY_TRIES ||
		    b->os.now_ns(b->os.ctx) - t0 >= REGISTER_BUSY_NS)
			break;
		b->c.register_busy++;
	}
	if (ret >= 0 && cap == 0)
		ret = -BALLOON_EPROTO;
	if (ret < 0) {
		free_shared(b);
		return (int)ret;
	}
	b->ring_cap = (uint32_t)min_u64(cap, BALLOON_RING_PAGE_ENTRIES);
	b->registered = 1;
	b->seen_seq = 0;
	read_config(b);
	b->last_stats_ns = b->os.now_ns(b->os.ctx);
	return 0;
}

void balloon_stop(struct balloon *b)
{
	uint32_t batches = 0xffffffffu;
	struct balloon_track *ts[2] = { &b->t4k, &b->t2m };
	int i;
	if (b->registered) {
		deflate_pages(b, held_pages(b), 0, &batches);
		/* The host forgets what it still holds: those pages read as
		 * zero afterwards and are ours to free. */
		doorbell(b, BALLOON_OP_UNREGISTER, 0, 0, 0, 0, 0);
		b->registered = 0;
	}
	for (i = 0; i < 2; i++) {
		struct balloon_track *t = ts[i];
		unsigned order = t == &b->t2m ? BALLOON_HUGE_ORDER : 0;
		while (t->count) {
			uint64_t pfn = track_pop(t);
			b->os.free(b->os.ctx, b->os.pfn_to_va(b->os.ctx, pfn), order);
			b->c.forced += order ? BALLOON_HUGE_PAGES : 1;
		}
		track_trim(b, t, 0);
	}
	free_shared(b);
}

int balloon_send_stats(struct balloon *b)
{
	struct balloon_stats st;
	int64_t ret;
	if (!b->registered)
		return -BALLOON_ENODEV;
	zero_bytes(&st, sizeof(st));
	if (b->os.read_stats)
		b->os.read_stats(b->os.ctx, &st);
	st.valid &= BALLOON_STAT_ALL;
	st.timestamp_ns = b->os.now_ns(b->os.ctx);
	/* word copy into shared memory: no struct copy, no memcpy call */
	copy_words((void *)&b->cfg_guest->stats, &st, sizeof(st));
	b->stats_answered = b->stats_request;
	b->last_stats_ns = st.timestamp_ns;
	ret = doorbell(b, BALLOON_OP_STATS, 0, 0, 0, 0, 0);
	if (ret < 0)
		return (int)ret;
	b->c.stats_sent++;
	return 0;
}

uint32_t balloon_poll(struct balloon *b)
{
	uint64_t now, held, avail, floor, low, next_ns;
	uint32_t batches;
	int more = 0;

	if (!b->registered)
		return b->p.poll_ms;
	now = b->os.now_ns(b->os.ctx);
	batches = b->p.max_batches;
	b->huge_failed = 0;
	read_config(b);

	if (b->stats_request != b->stats_answered ||
	    (b->stats_period_ms &&
	     now - b->last_stats_ns >= (uint64_t)b->stats_period_ms * NS_PER_MS))
		balloon_send_stats(b);

	if (now >= b->holdoff_until_ns)
		b->status &= ~BALLOON_GST_PRESSURE;
	held = held_pages(b);
	avail = b->os.avail_pages(b->os.ctx);
	floor = b->c.floor_pages;
	low = floor - floor / 8;     /* hysteresis below the floor */

	if (held > 0 && avail < low) {
		/* The OS is eating into the floor: give memory back now and
		 * hold inflation off, whatever the target says. */
		deflate_pages(b, floor - avail, 0, &batches);
		b->holdoff_until_ns = now + (uint64_t)b->p.pressure_holdoff_ms * NS_PER_MS;
		b->status |= BALLOON_GST_PRESSURE | BALLOON_GST_AT_FLOOR;
	} else {
		if (held > b->target) {
			deflate_pages(b, held - b->target, 0, &batches);
			b->status &= ~(BALLOON_GST_AT_FLOOR | BALLOON_GST_ALLOC_FAIL);
			held = held_pages(b);
			more = held > b->target && batches == 0;
		}
		/* also after a deflate that overshot by part of a 2 MiB block */
		if (held < b->target && now >= b->holdoff_until_ns &&
		    now >= b->backoff_until_ns && batches > 0) {
			uint64_t want = b->target - held;
			int stop = 0;
			b->status &= ~(BALLOON_GST_AT_FLOOR | BALLOON_GST_ALLOC_FAIL);
			while (want > 0 && !stop && batches > 0) {
				inflate_batch(b, &want, &stop);
				batches--;
			}
			if (stop && want > 0)
				b->backoff_until_ns = now +
					(uint64_t)b->p.backoff_ms * NS_PER_MS;
			more = want > 0 && !stop;
			track_trim(b, &b->t4k, 1);
			track_trim(b, &b->t2m, 1);
		} else if (held == b->target) {
			b->status &= ~(BALLOON_GST_AT_FLOOR | BALLOON_GST_ALLOC_FAIL);
		}
	}
	publish(b);
	if (more)
		return 0;

	/* Sleep until the next poll, the end of a backoff, or the next stats. */
	next_ns = now + (uint64_t)b->p.poll_ms * NS_PER_MS;
	if (b->stats_period_ms) {
		uint64_t due = b->last_stats_ns +
			       (uint64_t)b->stats_period_ms * NS_PER_MS;
		if (due < next_ns)
			next_ns = due > now ? due : now;
	}
	return (uint32_t)((next_ns - now + NS_PER_MS - 1) / NS_PER_MS);
}

uint64_t balloon_deflate_for_pressure(struct balloon *b, uint64_t pages)
{
	uint32_t batches = 0xffffffffu;
	uint64_t freed, now;
	/* At least 2 MiB per call: an allocator that asks page by page would
	 * otherwise pay one exit per page. */
	if (pages < BALLOON_HUGE_PAGES)
		pages = BALLOON_HUGE_PAGES;
	if (held_pages(b) == 0)
		return 0;
	freed = deflate_pages(b, pages, 1, &batches);
	now = b->os.now_ns(b->os.ctx);
	b->holdoff_until_ns = now + (uint64_t)b->p.pressure_holdoff_ms * NS_PER_MS;
	b->status |= BALLOON_GST_PRESSURE;
	b->c.pressure_events++;
	b->c.pressure_pages += freed;
	publish(b);
	return freed;
}

int balloon_reporting_enabled(const struct balloon *b)
{
	return b->registered && (b->host_flags & BALLOON_CFG_F_REPORTING);
}

/* Sends ring[0..n) as one REPORT; returns 0 or -errno. */
static int report_flush(struct balloon *b, uint32_t n)
{
	uint32_t i;
	int64_t ret;
	if (n == 0)
		return 0;
	ret = doorbell(b, BALLOON_OP_REPORT, n, 0, 0, 0, 0);
	if (ret < 0)
		return (int)ret;
	for (i = 0; i < n; i++) {
		uint64_t e = b->ring[i];
		if (balloon_ent_status(e) == BALLOON_ST_OK)
			b->c.reported += (e & BALLOON_ENT_2M) ? BALLOON_HUGE_PAGES : 1;
		else
			b->c.refused++;
	}
	return 0;
}

int balloon_report(struct balloon *b, const struct balloon_range *r,
		   unsigned n)
{
	uint32_t k = 0;
	unsigned i;
	int ret;
	if (!b->registered)
		return -BALLOON_ENODEV;
	read_config(b);
	if (!(b->host_flags & BALLOON_CFG_F_REPORTING))
		return -BALLOON_EOPNOTSUPP;
	for (i = 0; i < n; i++) {
		uint64_t pfn = r[i].pfn, np = r[i].npages;
		while (np > 0) {
			int huge = !(pfn & (BALLOON_HUGE_PAGES - 1)) &&
				   np >= BALLOON_HUGE_PAGES;
			uint64_t step = huge ? BALLOON_HUGE_PAGES : 1;
			b->ring[k++] = balloon_ent_make(pfn << BALLOON_PAGE_SHIFT, huge);
			pfn += step;
			np -= step;
			if (k == b->ring_cap) {
				ret = report_flush(b, k);
				if (ret < 0)
					return ret;
				k = 0;
			}
		}
	}
	return report_flush(b, k);
}

void balloon_get_info(const struct balloon *b, struct balloon_info *out)
{
	copy_words(out, &b->c, sizeof(*out));
	out->blocks_2m = b->t2m.count;
	out->pages_4k = b->t4k.count;
	out->balloon_pages = held_pages(b);
	out->target_pages = b->target;
	out->track_pages = b->t4k.npages + b->t2m.npages;
	out->status = b->status;
	out->registered = b->registered;
	out->reporting = balloon_reporting_enabled(b);
}
