/*
 * scan.c - one scan pass: dirty log, hashing, classification, throttling.
 *
 * Per VM: fetch the dirty log of every range (unshare.c turns it into
 * copy-on-write detection and the "todo" bitmap of pages written since
 * they were last hashed), then hash only the todo pages.  A page written
 * in each of the last K passes is volatile and waits until it settles.
 * Untouched pages (not present: they read zero or the base page and cost
 * nothing) are not read at all, which also keeps a scan from allocating
 * base memfd pages by faulting holes in.
 *
 * Classification of a page, first match wins (one function per stage):
 *   1. zero                          -> ZERO op (discard), or ZERO_MAP
 *                                       where a discard would not read 0
 *      one nonzero byte repeated,    -> FILL: the frame of the byte's
 *      in a run of them                 block at g % 64 (fill.c)
 *   2. base[g] holds this content    -> JOIN_BASE (with the equal pages
 *                                       of the other VMs at g)
 *   3. other VMs hold it at g        -> NEW_BASE for all of them
 *   (the page is hashed here, if stage 2 did not)
 *   4. the store holds it (a frame,  -> JOIN_FRAME
 *      or a base page at another GPA)
 *   5. a candidate page holds it     -> NEW_BASE (same GPA, both on the
 *                                       domain's base) or NEW_FRAME;
 *                                       else it becomes a candidate
 * Every match is a byte comparison (unpaused here, paused again in the
 * batch); a hash match with different bytes counts as a collision.
 */
#include <errno.h>
#include <string.h>
#include <time.h>
#include "internal.h"

/* Collision or change?  The page's current hash tells. */
static bool still_hashes_to(struct ksm *k, const uint8_t *hva, uint64_t h)
{
	return ksm_hash_page(k, hva) == h;
}

static void count_collision(struct ksm *k, struct ksm_vm *vm)
{
	CTR_ADD(k->c.collisions, 1);
	CTR_ADD(vm->c.collisions, 1);
}

/* Equal to the page at the same GPA elsewhere?  full: compare all of
 * it; else a sample at both ends, which the paused batch completes. */
static bool same_gpa_equal(const uint8_t *a, const uint8_t *b, bool full)
{
	if (full)
		return memcmp(a, b, KSM_PAGE) == 0;
	return memcmp(a, b, KSM_SAMPLE) == 0 &&
	       memcmp(a + KSM_PAGE - KSM_SAMPLE, b + KSM_PAGE - KSM_SAMPLE,
		      KSM_SAMPLE) == 0;
}

/* kbase_group() matches: a zero page that may be discarded, and a page
 * equal to arg (a sample, unless either page has nofast set). */
static bool group_zero(struct ksm *k, const struct kpage *p, const void *arg)
{
	(void)k;
	(void)arg;
	return kzero_discardable(p->vm, p->r, p->idx) &&
	       ksm_page_is_zero(kpage_hva(p->vm, p->r, p->idx));
}

struct group_ref {
	const uint8_t *bytes;
	bool full;
};

static bool group_equal(struct ksm *k, const struct kpage *p, const void *arg)
{
	const struct group_ref *g = arg;

	(void)k;
	return same_gpa_equal(kpage_hva(p->vm, p->r, p->idx), g->bytes,
			      g->full || kbit_test(p->vm->r[p->r].nofast,
						   p->idx));
}

/* Look for equal pages at this GPA in the other VMs?  Always while they
 * keep turning up; after 16 misses in a row, on a sparser sample (one
 * page in the power of two at or under misses / 16, at most 1024), so
 * unique memory pays little for it: a sample reads each peer's pagemap
 * (3 reads per 64 pages of 4 unique VMs at a cap of 64 were 60 % of the
 * first pass's pagemap reads).  A page the sample skips is still found
 * at its GPA through the candidate table, after a hash. */
static bool peer_worth(struct ksm_vm *vm)
{
	unsigned m = vm->peer_miss++, every;

	if (m < 16)
		return true;
	every = m >= 16384 ? 1024 : 1u << (31 - __builtin_clz(m / 16));
	return m % every == 0;
}

/* Two VMs now hold equal new content at g while others still share the
 * old base[g], so a merge now could only make a frame (a VMA split per
 * run, undone at the next change).  Identical guests change the same
 * pages at about the same time: wait up to KSM_BASE_WAIT passes after the
 * write.  When the last VM leaves base[g], kbase_unref() has the waiting
 * pages examined again. */
static bool base_busy_wait(struct ksm *k, struct ksm_vm *vm, uint32_t r,
			   uint32_t idx, uint64_t pfn)
{
	struct kdom *d = vm->dom;

	return pfn < d->base_npages && d->base_refs[pfn] &&
	       (uint16_t)(k->pass - vm->r[r].pg[idx].last_dirty) < KSM_BASE_WAIT;
}

/* Hashes the page (a page whose hash is known skips this). */
static uint64_t hash_now(struct ksm *k, struct ksm_vm *vm, uint32_t r,
			 uint32_t idx)
{
	uint64_t h = ksm_hash_page(k, kpage_hva(vm, r, idx));

	CTR_ADD(k->c.pages_hashed, 1);
	CTR_ADD(vm->c.pages_hashed, 1);
	return h;
}

/* One page's classification: what the stages share. */
struct kcls {
	struct ksm *k;
	struct ksm_vm *vm;
	struct kdom *d;
	uint32_t r, idx;
	const uint8_t *hva;
	uint64_t pfn;
	int node;
	unsigned slot, gmax;      /* gmax: pages one op may take */
	struct kpage pg[KSM_GROUP_MAX];
	uint8_t *ref;             /* the op's reference buffer */
	uint64_t h;
	bool hashed;              /* h is the page's hash */
};

/* A stage either ends the page's classification (an op is queued, or the
 * page waits: it changed, or it became a candidate) or passes it on. */
enum kstage { KS_NEXT, KS_DONE };

/* 1. A zero page: discarded where that reads zero, else mapped over with
 * zeros; never kept as shared content. */
static enum kstage stage_zero(struct kcls *c)
{
	struct ksm *k = c->k;
	struct ksm_vm *vm = c->vm;
	unsigned ng;

	if (!ksm_page_is_zero(c->hva))
		return KS_NEXT;
	if (kzero_discardable(vm, c->r, c->idx)) {
		ng = vm->uses_base ? kbase_group(k, vm, c->pfn, c->pg + 1,
				c->gmax - 1, group_zero, NULL) : 0;
		CTR_ADD(k->c.pages_compared, ng);
		kbatch_commit(k, KOP_ZERO, k->zero_hash, 0, c->slot, c->node,
			      c->pg, 1 + ng);
		return KS_DONE;
	}
	/* base[g] holds data, or a frame lies under */
	if (vm->uses_base && vm->ops->zero) {
		kbatch_commit(k, KOP_ZERO_MAP, k->zero_hash, 0, c->slot,
			      c->node, c->pg, 1);
		return KS_DONE;
	}
	c->h = k->zero_hash;
	c->hashed = true;
	return KS_NEXT;
}

/* 1b. One nonzero byte repeated, with a neighbour that holds it too: the
 * byte's fill block, at g % KSM_FILL_RUN, with every VM's equal page at g
 * (a run maps consecutive frames: one VMA per KSM_FILL_RUN pages). */
static enum kstage stage_fill(struct kcls *c)
{
	struct ksm *k = c->k;
	struct ksm_vm *vm = c->vm;
	struct group_ref gr = { c->ref, false };
	int byte = kfill_byte(c->hva);
	unsigned ng = 0;
	uint32_t f;
	uint64_t h;

	if (byte < 0 || !kfill_in_run(k, vm, c->r, c->idx, (uint8_t)byte))
		return KS_NEXT;
	f = kfill_frame(k, c->d, (uint8_t)byte, c->slot, c->pfn, &h);
	if (f == UINT32_MAX)
		return KS_NEXT;
	memset(c->ref, byte, KSM_PAGE);
	if (vm->uses_base)
		ng = kbase_group(k, vm, c->pfn, c->pg + 1, c->gmax - 1,
				 group_equal, &gr);
	CTR_ADD(k->c.pages_compared, 1 + ng);
	kbatch_commit(k, KOP_FILL, h, f, c->slot, c->node, c->pg, 1 + ng);
	return KS_DONE;
}

/* 2. base[g] holds these bytes: join it, with every VM's equal page at g
 * (decided on a sample; the paused batch compares in full and a miss
 * there sets nofast). */
static enum kstage stage_base(struct kcls *c)
{
	struct ksm *k = c->k;
	struct ksm_vm *vm = c->vm;
	const uint8_t *base;
	struct group_ref gr;
	uint64_t bh;
	unsigned ng;

	if (c->hashed || !vm->uses_base || !(base = kbase_ptr(c->d, c->pfn)) ||
	    kbase_hash(k, c->d, c->pfn, &bh) != 0)
		return KS_NEXT;
	if (same_gpa_equal(c->hva, base, kbit_test(vm->r[c->r].nofast, c->idx))) {
		gr = (struct group_ref){ base, false };
		ng = kbase_group(k, vm, c->pfn, c->pg + 1, c->gmax - 1,
				 group_equal, &gr);
		CTR_ADD(k->c.pages_compared, 1 + ng);
		kbatch_commit(k, KOP_JOIN_BASE, bh, 0, c->slot, c->node, c->pg,
			      1 + ng);
		return KS_DONE;
	}
	c->h = hash_now(k, vm, c->r, c->idx);
	c->hashed = true;
	if (c->h == bh) {
		if (!still_hashes_to(k, c->hva, c->h)) {
			kbit_set(vm->r[c->r].todo, c->idx);
			return KS_DONE;
		}
		count_collision(k, vm);
	}
	return KS_NEXT;
}

/* 3. Other VMs hold equal pages at g and base[g] is a hole: a new base
 * page for all of them; the batch hashes the copy and compares every
 * page with it, paused. */
static enum kstage stage_peers(struct kcls *c)
{
	struct ksm *k = c->k;
	struct ksm_vm *vm = c->vm;
	struct group_ref gr = { c->hva, kbit_test(vm->r[c->r].nofast, c->idx) };
	unsigned ng;

	if (c->hashed || !vm->uses_base || kbase_has_data(c->d, c->pfn) ||
	    !peer_worth(vm))
		return KS_NEXT;
	ng = kbase_group(k, vm, c->pfn, c->pg + 1, c->gmax - 1, group_equal,
			 &gr);
	if (!ng)
		return KS_NEXT;
	vm->peer_miss = 0;
	memcpy(c->ref, c->hva, KSM_PAGE);
	CTR_ADD(k->c.pages_compared, 1 + ng);
	kbatch_commit(k, KOP_NEW_BASE, 0, 0, c->slot, c->node, c->pg, 1 + ng);
	return KS_DONE;
}

/* 4. The domain's store holds the bytes (a frame, or a base page named in
 * the store): join it. */
static enum kstage stage_stable(struct kcls *c)
{
	struct ksm *k = c->k;
	struct kdom *d = c->d;
	struct cds_lfht_iter it;
	struct knode *n;
	unsigned walked = 0;

	for (n = d->frames_used ? ktab_first(d->stable[c->slot], c->h, &it) :
				  NULL;
	     n && walked < KSM_WALK_MAX;
	     n = ktab_next(d->stable[c->slot], &it), walked++) {
		struct kframe *fr = &d->frames[n->frame];

		if (fr->used != KF_LIVE ||
		    fr->refs + fr->pending >= k->cfg.max_sharers)
			continue;
		if (kframe_read(d, n->frame, c->ref) != 0)
			continue;
		if (memcmp(c->hva, c->ref, KSM_PAGE) == 0) {
			kbatch_commit(k, KOP_JOIN_FRAME, c->h, n->frame, c->slot,
				      c->node, c->pg, 1);
			return KS_DONE;
		}
		if (!still_hashes_to(k, c->hva, c->h)) {
			kbit_set(c->vm->r[c->r].todo, c->idx);
			return KS_DONE;
		}
		count_collision(k, c->vm);
	}
	return KS_NEXT;
}

/* 5. A candidate holds the bytes: a new base page (same GPA, both on the
 * domain's base) or a new frame for the two; else the page becomes a
 * candidate. */
static enum kstage stage_candidates(struct kcls *c)
{
	struct ksm *k = c->k;
	struct ksm_vm *vm = c->vm;
	struct kdom *d = c->d;
	uint32_t r = c->r, idx = c->idx;
	struct kcand_it it;
	struct kcent *e;
	unsigned walked = 0;

	if (kbatch_pending_new(k, c->h)) {
		/* equal content is about to become shared: wait for it */
		kcand_add(k, d, c->slot, c->h, vm, r, idx);
		return KS_DONE;
	}
	for (e = kcand_first(d, c->slot, c->h, &it);
	     e && walked < KSM_WALK_MAX; e = kcand_next(&it), walked++) {
		struct kpage cp = kcand_page(d, e);
		const uint8_t *chva;
		hv_pstate_t cst;
		bool same_gpa;

		if (cp.vm == vm && cp.r == r && cp.idx == idx)
			continue;
		chva = kpage_hva(cp.vm, cp.r, cp.idx);
		cst = kmap_get(cp.vm, kpage_gpa(cp.vm, cp.r, cp.idx) / KSM_PAGE);
		if (hv_ps_state(cst) != HV_PAGE_PRIVATE ||
		    (hv_ps_flags(cst) & (HV_PF_BUSY | HV_PF_DEVICE))) {
			kcand_del(k, d, e);
			continue;
		}
		if (memcmp(c->hva, chva, KSM_PAGE) != 0) {
			uint64_t ch = ksm_hash_page(k, chva);

			if (khash32(ch) != e->key) {
				/* the candidate changed: rehash it later */
				kbit_set(cp.vm->r[cp.r].todo, cp.idx);
				kcand_del(k, d, e);
				continue;
			}
			if (ch != c->h)
				continue;   /* two contents, one 32-bit key */
			if (!still_hashes_to(k, c->hva, c->h)) {
				kbit_set(vm->r[r].todo, idx);
				return KS_DONE;
			}
			count_collision(k, vm);
			continue;
		}
		same_gpa = vm->uses_base && cp.vm->uses_base &&
			   kpage_gpa(cp.vm, cp.r, cp.idx) == c->pfn * KSM_PAGE;
		if (same_gpa && base_busy_wait(k, vm, r, idx, c->pfn)) {
			/* other VMs still share the old base[g]: they are
			 * likely to follow, and then base[g] takes the new
			 * content for all, with no frame and no VMA; as a
			 * candidate meanwhile, kbase_unref() finds it */
			kbit_set(vm->r[r].todo, idx);
			break;
		}
		memcpy(c->ref, c->hva, KSM_PAGE);
		c->pg[1] = cp;
		kcand_del(k, d, e);
		kbatch_commit(k, same_gpa ? KOP_NEW_BASE : KOP_NEW_FRAME, c->h,
			      0, c->slot, c->node, c->pg, 2);
		return KS_DONE;
	}
	kcand_add(k, d, c->slot, c->h, vm, r, idx);
	return KS_DONE;
}

/* The stages in the order of the head comment.  Zero and same-GPA pages
 * are recognized by comparing, which stops at the first differing byte;
 * only the rest need a hash. */
static void classify(struct ksm *k, struct ksm_vm *vm, uint32_t r,
		     uint32_t idx, int node)
{
	struct kcls c = {
		.k = k, .vm = vm, .d = vm->dom, .r = r, .idx = idx,
		.hva = kpage_hva(vm, r, idx),
		.pfn = kpage_gpa(vm, r, idx) / KSM_PAGE, .node = node,
		.slot = knuma_slot_of(k, node),
		.pg = { { vm, r, idx } },
	};
	unsigned room;

	c.gmax = k->cfg.max_sharers < KSM_GROUP_MAX ? k->cfg.max_sharers :
						      KSM_GROUP_MAX;
	room = kbatch_ensure_room(k, KSM_GROUP_MAX);
	if (c.gmax > room)
		c.gmax = room;
	if (!c.gmax)
		c.gmax = 1;
	c.ref = kbatch_reserve(k);
	if (stage_zero(&c) == KS_DONE || stage_fill(&c) == KS_DONE ||
	    stage_base(&c) == KS_DONE || stage_peers(&c) == KS_DONE)
		return;
	if (!c.hashed)
		c.h = hash_now(k, vm, r, idx);
	kcand_prefetch(c.d, c.slot, c.h);
	if (stage_stable(&c) == KS_DONE)
		return;
	stage_candidates(&c);
}

/* New shared content with this hash exists (a frame, or base[base_pfn]
 * and its base frame): candidates holding the same bytes join it, at
 * base_pfn through the base memfd, elsewhere through the frame.  Equal
 * candidates that cannot (the frame is full, or base[base_pfn] is not in
 * the store) pair into one new frame, whose own flush absorbs the rest. */
void kscan_absorb(struct ksm *k, struct kdom *d, unsigned slot,
		  uint64_t hash, uint32_t frame, uint64_t base_pfn)
{
	struct kcand_it it;
	struct kcent *e, *left = NULL;
	unsigned walked = 0;

	for (e = kcand_first(d, slot, hash, &it);
	     e && walked < KSM_ABSORB_MAX; e = kcand_next(&it), walked++) {
		struct kpage pg[2] = { kcand_page(d, e), { 0 } };
		struct ksm_vm *cvm = pg[0].vm;
		const uint8_t *chva = kpage_hva(cvm, pg[0].r, pg[0].idx);
		uint64_t cgpa = kpage_gpa(cvm, pg[0].r, pg[0].idx);
		hv_pstate_t cst;
		struct kframe *fr;
		uint8_t *ref;

		cst = kmap_get(cvm, cgpa / KSM_PAGE);
		if (hv_ps_state(cst) != HV_PAGE_PRIVATE ||
		    (hv_ps_flags(cst) & (HV_PF_BUSY | HV_PF_DEVICE))) {
			kcand_del(k, d, e);
			continue;
		}
		/* the queue may flush here: that adds no candidate, so the
		 * table (and this iteration) stays as it is */
		kbatch_ensure_room(k, 2);
		if (!kcand_live(e) || (left && !kcand_live(left)))
			break;   /* a flush took them: its own absorb ran */
		ref = kbatch_reserve(k);
		if (base_pfn != UINT64_MAX) {
			const uint8_t *base = kbase_ptr(d, base_pfn);

			if (cvm->uses_base && base &&
			    cgpa == base_pfn * KSM_PAGE &&
			    memcmp(chva, base, KSM_PAGE) == 0) {
				kcand_del(k, d, e);
				kbatch_commit(k, KOP_JOIN_BASE, hash, 0, slot, -1,
					      pg, 1);
				continue;
			}
		}
		if (frame != UINT32_MAX) {
			/* a frame, or base[base_pfn] named in the store:
			 * equal pages at other GPAs map it */
			fr = &d->frames[frame];
			if (fr->used == KF_LIVE &&
			    fr->refs + fr->pending < k->cfg.max_sharers) {
				if (kframe_read(d, frame, ref) == 0 &&
				    memcmp(chva, ref, KSM_PAGE) == 0) {
					kcand_del(k, d, e);
					kbatch_commit(k, KOP_JOIN_FRAME, hash, frame,
						      slot, fr->node, pg, 1);
				}
				continue;
			}
		}
		/* a leftover: pair it with an equal one into a new frame */
		if (!left) {
			left = e;
			continue;
		}
		pg[1] = kcand_page(d, left);
		if (memcmp(chva, kpage_hva(pg[1].vm, pg[1].r, pg[1].idx),
			   KSM_PAGE) != 0)
			continue;
		memcpy(ref, chva, KSM_PAGE);
		kcand_del(k, d, e);
		kcand_del(k, d, left);
		kbatch_commit(k, KOP_NEW_FRAME, hash, 0, slot, -1, pg, 2);
		return;
	}
}

/* ----------------------------------------------------------- throttle */

/* klock() waiters get the lock until they are done, with nothing queued
 * (the batch drained).  Only the scanner thread, at points where what it
 * holds may change under it: a throttle point, between VMs, before and
 * in a sweep, in a dirty-log read.  Only the waiters there now: one that
 * comes meanwhile waits for the next point, so that back-to-back callers
 * (a `stat --check` loop) cannot stop the scan.  True if it let someone
 * in. */
static bool handover(struct ksm *k)
{
	unsigned n = __atomic_load_n(&k->lock_waiters, __ATOMIC_SEQ_CST);

	if (!n)
		return false;
	kbatch_drain(k);
	CTR_ADD(k->c.cpu_ns, ksm_thread_cpu_ns() - k->cpu_mark_ns);
	ksm_rcu_offline();
	/* n callers get in; later ones wait in klock() for the next point */
	k->ho_until = k->lock_served + n;
	k->ho_active = true;
	while (__atomic_load_n(&k->lock_waiters, __ATOMIC_SEQ_CST) &&
	       k->lock_served < k->ho_until && !k->stop_req)
		kcond_wait_ns(&k->handoff, &k->lock, 10000000ULL);
	k->ho_active = false;
	pthread_cond_broadcast(&k->handoff);   /* those held back */
	ksm_rcu_online();
	k->cpu_mark_ns = ksm_thread_cpu_ns();
	return true;
}

bool kscan_waiting(const struct ksm *k)
{
	return k->may_yield &&
	       __atomic_load_n(&k->lock_waiters, __ATOMIC_SEQ_CST);
}

bool kscan_yield(struct ksm *k)
{
	return k->may_yield && handover(k);
}

/* Sleeps (lock released) when the pass runs ahead of pages_per_sec or
 * cpu_percent.  Returns false when the pass must end: the VM went away
 * meanwhile, or ksm_stop() was called. */
static bool throttle(struct ksm *k, struct ksm_vm *vm)
{
	uint64_t now, cpu, elapsed, need = 0, target;
	/* pages examined: hashed, or matched to base[g] by comparison */
	uint64_t hashed = CTR_GET(k->c.pages_hashed) +
			  CTR_GET(k->c.pages_compared) - k->thr_hashed0;
	uint64_t rate = __atomic_load_n(&k->cfg.pages_per_sec,
					__ATOMIC_RELAXED);
	unsigned pct = __atomic_load_n(&k->cfg.cpu_percent, __ATOMIC_RELAXED);

	/* someone waits for the lock (klock): let them in now, not at the
	 * end of the pass, which can be seconds away */
	if (handover(k) && (vm->dead || k->stop_req)) {
		kbatch_drain(k);
		return false;
	}
	now = ksm_now_ns();
	cpu = ksm_thread_cpu_ns();
	elapsed = now - k->thr_t0_ns;

	if (rate) {
		target = hashed * 1000000000ULL / rate;
		if (target > elapsed)
			need = target - elapsed;
	}
	if (pct) {
		target = (cpu - k->thr_cpu0_ns) * 100 / pct;
		if (target > elapsed && target - elapsed > need)
			need = target - elapsed;
	}
	if (elapsed > 2000000000ULL && need == 0) {
		/* a fresh window, so idle time is not banked forever */
		k->thr_t0_ns = now;
		k->thr_cpu0_ns = cpu;
		k->thr_hashed0 += hashed;
	}
	/* CPU so far, so that stats stay current during a long pass */
	CTR_ADD(k->c.cpu_ns, cpu - k->cpu_mark_ns);
	k->cpu_mark_ns = cpu;
	if (k->stop_req) {
		kbatch_drain(k);   /* nothing queued may outlive the pass */
		return false;
	}
	if (need < 1000000ULL)
		return true;
	if (need > 1000000000ULL)
		need = 1000000000ULL;
	kbatch_drain(k);
	CTR_ADD(k->c.cpu_ns, ksm_thread_cpu_ns() - k->cpu_mark_ns);
	ksm_rcu_offline();
	kcond_wait_ns(&k->cv, &k->lock, need);
	ksm_rcu_online();
	k->cpu_mark_ns = ksm_thread_cpu_ns();
	return !vm->dead && !k->stop_req;
}

/* ----------------------------------------------------------------- pass */

static void scan_vm(struct ksm *k, struct ksm_vm *vm, bool throttled)
{
	unsigned K = __atomic_load_n(&k->cfg.volatile_passes, __ATOMIC_RELAXED);
	bool numa = k->cfg.node_of || k->real_nodes > 1;
	uint64_t vol = 0, pm[64], w, bits, idx, pfn, e;
	const uint8_t *hvas[64];
	int nodes[64];
	unsigned i, n, since = 0;
	uint32_t r;
	hv_pstate_t st;

	k->pm_gen++;
	vm->peer_miss = 0;
	/* Reading the log costs the guest a fault per page it keeps
	 * writing, so it is read every dirty_ms, not every pass: pages
	 * written meanwhile are seen (unshared, rehashed) up to dirty_ms
	 * later.  Nothing relies on seeing them sooner: a merge compares
	 * every page in full while the VM is paused, and the kernel's
	 * copy-on-write keeps every write. */
	uint64_t now = ksm_now_ns();
	uint64_t every = (uint64_t)__atomic_load_n(&k->cfg.dirty_ms,
						    __ATOMIC_RELAXED) * 1000000;
	if (vm->read_pass == UINT32_MAX || now - vm->dirty_read_ns >= every) {
		vm->dirty_read_ns = now;
		vm->prev_read_pass = vm->read_pass;
		vm->read_pass = (uint32_t)k->pass;
		for (r = 0; r < vm->nranges; r++) {
			struct ksmvm_range *rg = &vm->r[r];

			/* here and in kunshare_range, between words, the
			 * lock may go to waiters: one may remove the VM */
			kscan_yield(k);
			if (vm->dead)
				return;
			memset(rg->dirty, 0, rg->nwords * sizeof(uint64_t));
			if (vm->ops->dirty_fetch(vm->ctx, r, rg->dirty) == 0)
				kunshare_range(k, vm, r, rg->dirty);
			if (vm->dead)
				return;
		}
	}
	for (r = 0; r < vm->nranges; r++) {
		struct ksmvm_range *rg = &vm->r[r];

		for (w = 0; w < rg->nwords; w++) {
			if (!rg->todo[w])
				continue;
			n = (unsigned)(rg->npages - w * 64 < 64 ?
				       rg->npages - w * 64 : 64);
			if (kpm_read(k, kpage_hva(vm, r, (uint32_t)(w * 64)), n,
				     pm) != 0)
				continue;
			if (numa) {
				for (i = 0; i < n; i++)
					hvas[i] = kpage_hva(vm, r,
							    (uint32_t)(w * 64 + i));
				knuma_nodes(k, hvas, n, nodes);
			} else {
				memset(nodes, 0, sizeof(nodes));
			}
			bits = rg->todo[w];
			while (bits) {
				i = (unsigned)__builtin_ctzll(bits);
				bits &= bits - 1;
				idx = w * 64 + i;
				pfn = kpage_gpa(vm, r, (uint32_t)idx) / KSM_PAGE;
				st = kmap_get(vm, pfn);
				if (hv_ps_flags(st) & HV_PF_BUSY)
					continue;        /* someone's; retry */
				if (hv_ps_state(st) != HV_PAGE_PRIVATE ||
				    (hv_ps_flags(st) & HV_PF_DEVICE)) {
					kbit_clear(rg->todo, idx);
					continue;
				}
				if (K && rg->pg[idx].last_dirty == (uint16_t)vm->read_pass &&
				    rg->pg[idx].streak >= K) {
					vol++;
					continue;        /* volatile */
				}
				e = pm[i];
				kbit_clear(rg->todo, idx);
				if (e & PM_SWAPPED)
					continue;
				if (!(e & PM_PRESENT) &&
				    !(vm->uses_base &&
				      kbase_has_data(vm->dom, pfn)))
					continue;        /* untouched */
				if (vm->anon && (e & PM_PRESENT) &&
				    !(e & (PM_FILE | PM_EXCLUSIVE)))
					continue;        /* the zero page */
				if (rg->pg[idx].pflags & KP_IN_CAND)
					kcand_del_page(k, vm, r, (uint32_t)idx);
				classify(k, vm, r, (uint32_t)idx, nodes[i]);
				since++;
			}
			ksm_rcu_quiescent();   /* no table node held here */
			if (throttled && since >= 64) {
				since = 0;
				if (!throttle(k, vm))
					return;
			}
		}
	}
	kbatch_drain(k);
	CTR_SET(vm->c.volatile_pages, vol);
	CTR_ADD(vm->c.full_scans, 1);
}

/* Every domain's base sweep.  A sweep yields the lock (kscan_yield) to
 * waiters that may remove a domain's last VM, so each domain is pinned
 * (one more in nvms) while it is swept, and let go (freed, if it is
 * empty now) after. */
static void sweep_all(struct ksm *k)
{
	struct kdom *d, *next;

	for (d = k->doms; d; d = next) {
		d->nvms++;
		kbase_sweep(k, d);
		next = d->next;   /* a pinned domain stays linked */
		kdom_put(k, d);
	}
}

int kscan_pass(struct ksm *k, bool throttled)
{
	struct ksm_vm *vm;
	unsigned last = 0;
	bool first = true;

	k->pass++;
	k->cpu_mark_ns = ksm_thread_cpu_ns();
	krel_drain(k);
	if (!k->thr_t0_ns) {
		k->thr_t0_ns = ksm_now_ns();
		k->thr_cpu0_ns = k->cpu_mark_ns;
		k->thr_hashed0 = CTR_GET(k->c.pages_hashed) +
				 CTR_GET(k->c.pages_compared);
	}
	/* before any merge: zero pages the guests' first writes left in
	 * the base memfds go in long runs while no base page has data yet */
	k->may_yield = throttled;
	if (throttled)
		handover(k);
	sweep_all(k);
	k->pm_gen++;
	for (;;) {
		/* by id: the list may change while a throttle sleeps, or a
		 * waiter has the lock between two VMs */
		if (throttled)
			handover(k);
		for (vm = k->vms; vm && !first && vm->id <= last; vm = vm->next)
			;
		if (!vm || (throttled && k->stop_req))
			break;
		first = false;
		last = vm->id;
		vm->refs++;
		scan_vm(k, vm, throttled);
		ksmvm_put(k, vm);
		ksm_rcu_quiescent();
	}
	if (throttled)
		handover(k);
	sweep_all(k);
	k->may_yield = false;
	for (struct kdom *d = k->doms; d; d = d->next)
		kcand_trim(d);
	ktab_reclaim(k);
	CTR_ADD(k->c.full_scans, 1);
	CTR_ADD(k->c.cpu_ns, ksm_thread_cpu_ns() - k->cpu_mark_ns);
	return 0;
}
