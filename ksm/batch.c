/*
 * batch.c - verify-and-replace batches: the only place guest backing
 * changes, and the race-freedom argument of the whole engine.
 *
 * The scanner queues ops (zero discard, join/new base page, join/new
 * frame) whose reference content was compared with the page unpaused.
 * A flush then:
 *   1. claims every page (HV_PF_BUSY by CAS on PRIVATE; other owners of
 *      the page-state map leave BUSY pages alone, and we skip theirs);
 *      1b. moves pages that only read base[g]'s hole off it (isolate.c);
 *   2. writes new frames / base pages (nobody maps them yet: for a base
 *      page kbase_writable() proved no VM reads base[g]);
 *   3-6 run one VM at a time (and, write-protected, one run at a time),
 *      so that a guest waits (or stops) only for its own pages' compare
 *      and backing change:
 *   3. guards the VM's claimed pages (guard.c): write-protects them where
 *      the VM can (userfaultfd), else pauses the VM;
 *   4. compares each page with the reference in full: a guest write that
 *      landed after the scan shows up here and the page is skipped
 *      (merge_races), and no write can land between this compare and
 *      step 5: a vCPU that writes a protected page waits in the kernel
 *      (a paused one does not run at all);
 *   5. changes the backing, coalesced over runs: one madvise per run of
 *      discards, one mmap per run of pages mapping consecutive frames;
 *      a write waiting since step 3 lands on the new backing after it;
 *   6. lifts the guard (unprotect, which wakes the waiting writers, or
 *      resume) and records the guest stall;
 *   7. commits: the page-state map (CAS BUSY -> new state), refcounts,
 *      counters; pages that failed go back to PRIVATE and are rehashed.
 * After the flush, pages still in the candidate table that match a new
 * frame or base page are queued to join it (kscan_absorb).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include "batch_int.h"

static unsigned pend_slot(const struct kbatch *b, uint64_t h)
{
	return (unsigned)((h * 0x9e3779b97f4a7c15ULL) >> 32) %
	       b->npend_slots;
}

static void pend_add(struct kbatch *b, uint64_t h)
{
	unsigned i = pend_slot(b, h);

	h |= 1;   /* 0 marks an empty slot; a lost low bit only costs merges */
	while (b->pend[i] && b->pend[i] != h)
		i = (i + 1) % b->npend_slots;
	b->pend[i] = h;
}

bool kbatch_pending_new(const struct ksm *k, uint64_t h)
{
	const struct kbatch *b = k->batch;
	unsigned i = pend_slot(b, h);

	h |= 1;
	for (; b->pend[i]; i = (i + 1) % b->npend_slots)
		if (b->pend[i] == h)
			return true;
	return false;
}

static void batch_free_arrays(struct kbatch *b)
{
	free(b->ops); free(b->bufs); free(b->acts);
	free(b->gpg); free(b->gsp); free(b->gvm); free(b->fu); free(b->pend);
	free(b->spans); free(b->span_act); free(b->iso);
}

int kbatch_resize(struct ksm *k, unsigned pages)
{
	struct kbatch *b = k->batch;
	struct kbatch nb = { .cap = pages };

	if (b && b->n)
		kbatch_flush(k);
	nb.ops = calloc(pages, sizeof(*nb.ops));
	nb.bufs = aligned_alloc(64, (size_t)pages * KSM_PAGE);
	nb.acts = calloc(2 * (size_t)pages, sizeof(*nb.acts));
	nb.fu = calloc(pages, sizeof(*nb.fu));
	nb.npend_slots = 2 * pages;
	nb.pend = calloc(nb.npend_slots, sizeof(*nb.pend));
	nb.spans = calloc(2 * (size_t)pages, sizeof(*nb.spans));
	nb.span_act = calloc(2 * (size_t)pages + 1, sizeof(*nb.span_act));
	nb.iso_cap = 32 * pages;   /* windows of 64 pages, in many VMs */
	nb.iso = calloc(nb.iso_cap, sizeof(*nb.iso));
	/* a batch's claimed pages: up to cap, and one op past it */
	nb.gpg_cap = nb.iso_cap > pages + KSM_GROUP_MAX ?
		     nb.iso_cap : pages + KSM_GROUP_MAX;
	nb.gpg = calloc(nb.gpg_cap, sizeof(*nb.gpg));
	nb.gsp = calloc(nb.gpg_cap, sizeof(*nb.gsp));
	nb.gvm = calloc(nb.gpg_cap, sizeof(*nb.gvm));
	if (!nb.ops || !nb.bufs || !nb.acts || !nb.gpg || !nb.gsp || !nb.gvm ||
	    !nb.fu || !nb.pend || !nb.spans || !nb.span_act || !nb.iso ||
	    (!b && !(b = calloc(1, sizeof(*b))))) {
		batch_free_arrays(&nb);
		return -ENOMEM;
	}
	batch_free_arrays(b);
	*b = nb;
	k->batch = b;
	return 0;
}

int kbatch_init(struct ksm *k)
{
	return kbatch_resize(k, k->cfg.batch_pages);
}

void kbatch_free(struct ksm *k)
{
	struct kbatch *b = k->batch;

	if (!b)
		return;
	batch_free_arrays(b);
	free(b);
	k->batch = NULL;
}

/* Call before any lookup whose result goes into the batch: a flush in
 * the middle would invalidate what the lookup found.  Returns the pages
 * the next op may have (at least min(pages, cap)). */
unsigned kbatch_ensure_room(struct ksm *k, unsigned pages)
{
	struct kbatch *b = k->batch;

	/* a flush may queue more (absorbed joins): flush until it fits */
	while (b->n && (b->n >= b->cap || b->pages + pages > b->cap))
		kbatch_flush(k);
	return b->cap - b->pages;
}

uint8_t *kbatch_reserve(struct ksm *k)
{
	struct kbatch *b = k->batch;

	return b->bufs + (size_t)b->n * KSM_PAGE;
}

void kbatch_commit(struct ksm *k, enum kop_kind kind, uint64_t hash,
		   uint32_t frame, unsigned slot, int node,
		   const struct kpage *pg, unsigned npg)
{
	struct kbatch *b = k->batch;
	struct kop *op = &b->ops[b->n];

	memset(op, 0, sizeof(*op));
	op->kind = (uint8_t)kind;
	op->npg = (uint8_t)npg;
	op->slot = (uint8_t)slot;
	op->node = node;
	op->hash = hash;
	op->frame = frame;
	memcpy(op->pg, pg, npg * sizeof(*pg));
	/* a join of base[g] compares with base[g] itself (base_recheck) */
	op->ref = kind == KOP_ZERO || kind == KOP_ZERO_MAP ?
		  (uint8_t *)ksm_zero_page :
		  kind == KOP_JOIN_BASE ? NULL :
		  b->bufs + (size_t)b->n * KSM_PAGE;
	b->dom = pg[0].vm->dom;
	if (kind == KOP_JOIN_FRAME || kind == KOP_FILL) {
		b->dom->frames[frame].pending += npg;
		op->npend = (uint8_t)npg;
	}
	if (kind == KOP_NEW_FRAME || kind == KOP_NEW_BASE)
		pend_add(b, hash);
	b->n++;
	b->pages += npg;
}

/* -------------------------------------------------------------- flush */

bool kbatch_claim(struct kpage *p, hv_pstate_t *old)
{
	uint64_t pfn = kpage_gpa(p->vm, p->r, p->idx) / KSM_PAGE;
	hv_pstate_t st = kmap_get(p->vm, pfn);

	if (hv_ps_state(st) != HV_PAGE_PRIVATE ||
	    (hv_ps_flags(st) & (HV_PF_BUSY | HV_PF_DEVICE)))
		return false;
	if (!kmap_cas(p->vm, pfn, st, st | HV_PF_BUSY))
		return false;
	*old = st;
	return true;
}

void kbatch_unclaim(struct kpage *p, hv_pstate_t old)
{
	uint64_t pfn = kpage_gpa(p->vm, p->r, p->idx) / KSM_PAGE;

	kmap_cas(p->vm, pfn, old | HV_PF_BUSY, old);
	kbit_set(p->vm->r[p->r].todo, p->idx);
}

static void drop_op(struct kop *op)
{
	unsigned i;

	for (i = 0; i < op->npg; i++)
		if (op->claimed & (1u << i))
			kbatch_unclaim(&op->pg[i], op->old[i]);
	op->claimed = 0;
}

/* Step 2: new content goes into the frames memfd or base[g], unless the
 * domain's store holds it already (base_frame.c): then the pages join it. */
static void prepare(struct ksm *k, struct kdom *d, struct kop *op)
{
	uint64_t pfn = kpage_gpa(op->pg[0].vm, op->pg[0].r, op->pg[0].idx) /
		       KSM_PAGE;
	struct kframe *fr;
	const uint8_t *p;
	uint32_t f;
	uint64_t h;

	switch (op->kind) {
	case KOP_JOIN_FRAME:
		fr = &d->frames[op->frame];
		/* base[g] cannot change under a live base frame; the compare
		 * only makes that a checked fact, not a promise */
		if (fr->used != KF_LIVE ||
		    (fr->bpfn && (!(p = kbase_ptr(d, fr->bpfn - 1)) ||
				  memcmp(p, op->ref, KSM_PAGE) != 0)))
			drop_op(op);
		return;
	case KOP_JOIN_BASE:
		return;   /* checked against the final base in base_recheck */
	case KOP_FILL:
		/* its block's frame at g: written by its first user */
		if (kfill_write(k, d, op->frame, op->ref, op->node) != 0)
			drop_op(op);
		return;
	case KOP_NEW_BASE:
	case KOP_NEW_FRAME:
		op->hash = ksm_hash_page(k, op->ref);
		if (op->kind == KOP_NEW_BASE && kbase_hash(k, d, pfn, &h) == 0 &&
		    h == op->hash) {
			op->kind = KOP_JOIN_BASE;   /* already there? */
			op->was_new = true;          /* (base_recheck compares) */
			return;
		}
		f = kstore_find(k, d, op->slot, op->hash, op->ref, op->npg);
		if (f != UINT32_MAX) {
			op->kind = KOP_JOIN_FRAME;
			op->frame = f;
			op->npend = op->npg;
			op->was_new = true;
			d->frames[f].pending += op->npg;
			return;
		}
		if (__builtin_popcount(op->claimed) < 2) {
			drop_op(op);
			return;
		}
		if (op->kind == KOP_NEW_BASE) {
			if (kbase_writable(k, d, pfn, op->pg, op->npg)) {
				if (kbase_write(d, pfn, op->ref, op->hash) != 0)
					drop_op(op);
				return;
			}
			op->kind = KOP_NEW_FRAME;   /* someone reads base[g] */
		}
		op->frame = kframe_alloc(d);
		if (op->frame == UINT32_MAX) {
			drop_op(op);
			return;
		}
		if (kframe_write(k, d, op->frame, op->ref, op->node) != 0) {
			kframe_release(d, op->frame);
			op->frame = UINT32_MAX;
			drop_op(op);
		}
		return;
	default:
		return;
	}
}

/* After every base write of this flush: a page may only be discarded onto
 * base[g] if base[g] holds its reference bytes, so the verify compares
 * the page with base[g] itself (a hash match is never enough).  A
 * NEW_BASE turned JOIN_BASE carries a copy of its pages: base[g] must
 * equal it. */
static void base_recheck(struct ksm *k, struct kdom *d, struct kop *op)
{
	uint64_t pfn = kpage_gpa(op->pg[0].vm, op->pg[0].r, op->pg[0].idx) /
		       KSM_PAGE;
	const uint8_t *p;

	if (op->kind != KOP_JOIN_BASE || !op->claimed)
		return;
	p = kbase_ptr(d, pfn);
	if (!p || (op->ref && memcmp(p, op->ref, KSM_PAGE) != 0) ||
	    kbase_hash(k, d, pfn, &op->hash) != 0) {
		drop_op(op);
		return;
	}
	op->ref = (uint8_t *)p;
}

static int cmp_act(const void *a, const void *b)
{
	const struct kact *x = a, *y = b;

	return kpage_order(x->vm, x->r, x->idx, y->vm, y->r, y->idx);
}

static void run_failed(struct ksm *k, struct kbatch *b, unsigned i,
		       unsigned j)
{
	CTR_ADD(k->c.map_failures, j - i);
	CTR_ADD(b->acts[i].vm->c.map_failures, j - i);
	for (unsigned m = i; m < j; m++)
		b->ops[b->acts[m].op].ok &= (uint16_t)~(1u << b->acts[m].pg);
}

/* The queued discard runs of one VM: one discard_many call when the
 * backend has it (a run that fails is skipped, the rest retried). */
static void spans_flush(struct ksm *k, struct kbatch *b)
{
	struct ksm_vm *vm = b->span_vm;
	unsigned s = 0, n = b->nspans, done;
	int err;

	b->span_act[n] = b->span_end;
	for (s = 0; s < n; s++)   /* the guest reads base[g] there now */
		kpm_forget(vm, kpage_hva(vm, b->acts[b->span_act[s]].r,
					 b->acts[b->span_act[s]].idx),
			   b->spans[s].len);
	s = 0;
	while (s < n) {
		if (vm->ops->discard_many)
			done = s + vm->ops->discard_many(vm->ctx, b->spans + s,
							 n - s, &err);
		else
			for (done = s; done < n; done++)
				if (vm->ops->discard(vm->ctx, b->spans[done].gpa,
						     b->spans[done].len) != 0)
					break;
		if (done >= n)
			break;
		run_failed(k, b, b->span_act[done], b->span_act[done + 1]);
		s = done + 1;
	}
	b->nspans = 0;
	b->span_vm = NULL;
}

/* Step 5: one backing change per run of acts[lo, nact) (sorted), the
 * discards of a VM in one call; failed runs clear their ok bits. */
static void apply_actions(struct ksm *k, struct kbatch *b, unsigned lo,
			  unsigned nact)
{
	unsigned i, j;
	int ret;

	b->nspans = 0;
	b->span_vm = NULL;
	for (i = lo; i < nact; i = j) {
		struct kact *a = &b->acts[i];
		uint64_t gpa = kpage_gpa(a->vm, a->r, a->idx);

		for (j = i + 1; j < nact; j++) {
			struct kact *c = &b->acts[j], *p = &b->acts[j - 1];

			if (c->vm != a->vm || c->r != a->r ||
			    c->idx != p->idx + 1 || c->fd != a->fd ||
			    (a->fd >= 0 && c->off != p->off + KSM_PAGE))
				break;
		}
		if (b->span_vm && (b->span_vm != a->vm || a->fd != KACT_DISCARD))
			spans_flush(k, b);
		if (a->fd == KACT_DISCARD) {
			b->span_vm = a->vm;
			b->span_act[b->nspans] = i;
			b->spans[b->nspans++] = (struct hv_span){
				gpa, (uint64_t)(j - i) * KSM_PAGE };
			b->span_end = j;
			continue;
		}
		kpm_forget(a->vm, kpage_hva(a->vm, a->r, a->idx),
			   (uint64_t)(j - i) * KSM_PAGE);
		if (a->fd == KACT_ZERO)
			ret = a->vm->ops->zero(a->vm->ctx, gpa,
					       (uint64_t)(j - i) * KSM_PAGE);
		else
			ret = a->vm->ops->replace_backing(a->vm->ctx, gpa,
				(uint64_t)(j - i) * KSM_PAGE, a->fd, a->off);
		if (ret != 0)
			run_failed(k, b, i, j);
	}
	if (b->span_vm)
		spans_flush(k, b);
}

static void commit_page(struct ksm *k, struct kdom *d, struct kop *op,
			unsigned i)
{
	struct kpage *p = &op->pg[i];
	struct ksm_vm *vm = p->vm;
	struct ksmvm_range *rg = &vm->r[p->r];
	uint64_t pfn = kpage_gpa(vm, p->r, p->idx) / KSM_PAGE;
	unsigned flags = hv_ps_flags(op->old[i]) & ~HV_PF_BUSY;
	hv_pstate_t nw;

	switch (op->kind) {
	case KOP_ZERO_MAP:   /* anonymous memory maps it now, not a frame */
		rg->pg[p->idx].pflags &= (uint8_t)~KP_REMAPPED;
		/* fall through */
	case KOP_ZERO:
		nw = hv_ps_make(HV_PAGE_ZERO, flags, 0);
		CTR_ADD(vm->c.zero_pages, 1);
		break;
	case KOP_JOIN_BASE:
	case KOP_NEW_BASE:
		nw = hv_ps_make(HV_PAGE_BASE, flags, 0);
		kbase_ref(d, pfn);
		rg->pg[p->idx].pflags &= (uint8_t)~KP_REMAPPED;
		CTR_ADD(vm->c.pages_sharing, 1);
		CTR_ADD(vm->c.base_pages, 1);
		break;
	default:
		nw = hv_ps_make(HV_PAGE_FRAME, flags, op->frame);
		rg->pg[p->idx].pflags |= KP_REMAPPED;
		CTR_ADD(vm->c.pages_sharing, 1);
		if (op->kind == KOP_FILL)
			CTR_ADD(vm->c.fill_pages, 1);
		break;
	}
	/* BUSY kept everyone else off the entry: this CAS cannot fail */
	kmap_cas(vm, pfn, op->old[i] | HV_PF_BUSY, nw);
	kpg_set_own(&rg->pg[p->idx], kown_of(nw));
	kbit_clear(rg->todo, p->idx);
	CTR_ADD(vm->c.merges, 1);
	CTR_ADD(k->c.merges, 1);
}

static void commit(struct ksm *k, struct kbatch *b, struct kdom *d,
		   struct kop *op)
{
	uint64_t pfn = kpage_gpa(op->pg[0].vm, op->pg[0].r, op->pg[0].idx) /
		       KSM_PAGE;
	unsigned i, nok = 0;

	/* the joins it announced end here, done or not */
	if (op->kind == KOP_JOIN_FRAME || op->kind == KOP_FILL)
		d->frames[op->frame].pending -= op->npend;
	if (!op->claimed) {
		if (op->kind == KOP_FILL)
			kfill_settle(d, op->frame);
		return;
	}
	for (i = 0; i < op->npg; i++) {
		if (!(op->claimed & (1u << i)))
			continue;
		if (op->ok & (1u << i)) {
			commit_page(k, d, op, i);
			nok++;
		} else {
			kbatch_unclaim(&op->pg[i], op->old[i]);
		}
	}
	switch (op->kind) {
	case KOP_NEW_FRAME:
		kframe_commit_new(k, d, op->frame, op->hash, op->slot,
				  op->node, nok);
		if (nok && b->nfu < b->cap)
			b->fu[b->nfu++] = (struct kfollow){ op->slot, op->hash,
							     op->frame, UINT64_MAX };
		break;
	case KOP_FILL:
		for (i = 0; i < nok; i++)
			kframe_ref(d, op->frame);
		kfill_settle(d, op->frame);
		break;
	case KOP_JOIN_FRAME:
		for (i = 0; i < nok; i++)
			kframe_ref(d, op->frame);
		/* candidates that waited for this content (pending new) */
		if (nok && op->was_new && b->nfu < b->cap)
			b->fu[b->nfu++] = (struct kfollow){ op->slot, op->hash,
				op->frame, d->frames[op->frame].bpfn ?
				d->frames[op->frame].bpfn - 1 : UINT64_MAX };
		break;
	case KOP_NEW_BASE:
		if (!nok) {
			kbase_drop_unused(k, d, pfn);
			break;
		}
		kbframe_publish(k, d, pfn, op->hash, op->slot, op->node);
		if (b->nfu < b->cap)
			b->fu[b->nfu++] = (struct kfollow){ op->slot, op->hash,
							     kbframe_of(d, pfn), pfn };
		break;
	case KOP_JOIN_BASE:
		/* base[g] of a pre-populated base, or one published before
		 * the store could name it: name it now */
		if (nok)
			kbframe_publish(k, d, pfn, op->hash, op->slot, op->node);
		if (nok && op->was_new && b->nfu < b->cap)
			b->fu[b->nfu++] = (struct kfollow){ op->slot, op->hash,
							     kbframe_of(d, pfn), pfn };
		break;
	default:
		break;
	}
}

/* The end of the guard window that starts at acts[i]: the VM's acts in
 * the batch when it is paused (one pause per VM and batch), one run when
 * it is write-protected.  A vCPU that writes into the run then waits only
 * for that run's protect, compare, backing change and unprotect: each
 * system call that changes the page tables of a running VM waits for a
 * KVM TLB flush, and under load one can take milliseconds. */
static unsigned window_end(const struct ksm *k, const struct kbatch *b,
			   unsigned i, unsigned nact)
{
	const struct kact *a = &b->acts[i];
	struct ksm_vm *vm = a->vm;
	bool wp;
	unsigned j;

	if (vm->ops->wp_protect && !vm->wp_probed) {   /* can it at all? */
		vm->wp_probed = true;
		vm->wp_off = vm->ops->wp_protect(vm->ctx, NULL, 0) == -EOPNOTSUPP;
	}
	wp = __atomic_load_n(&k->cfg.write_protect, __ATOMIC_RELAXED) &&
	     vm->ops->wp_protect && !vm->wp_off;

	for (j = i + 1; j < nact && b->acts[j].vm == a->vm; j++)
		if (wp && (j - i == KSM_WP_WINDOW || b->acts[j].r != a->r ||
			   b->acts[j].idx > b->acts[j - 1].idx + KSM_WP_GAP + 1))
			break;
	return j;
}

/* The backing change page j of op i gets if it passes its compare. */
static void act_of(struct kbatch *b, struct kdom *d, unsigned i, unsigned j,
		   struct kact *a)
{
	struct kop *op = &b->ops[i];
	struct kpage *p = &op->pg[j];

	a->vm = p->vm;
	a->r = p->r;
	a->idx = p->idx;
	a->op = i;
	a->pg = (uint8_t)j;
	a->fd = KACT_DISCARD;
	a->off = 0;
	if (op->kind == KOP_ZERO_MAP) {
		a->fd = KACT_ZERO;
	} else if (op->kind == KOP_NEW_FRAME || op->kind == KOP_JOIN_FRAME ||
		   op->kind == KOP_FILL) {
		kframe_loc(d, op->frame, &a->fd, &a->off);
	} else if (op->kind != KOP_ZERO && kpage_off_base(p->vm, p->r, p->idx)) {
		/* back to the base mapping, not a discard */
		a->fd = d->base_fd;
		a->off = kpage_gpa(p->vm, p->r, p->idx);
	}
}

/* Step 4 over acts[lo, hi), guarded: each page compared in full with its
 * reference.  The acts that pass move to acts[lo, return), their ok bits
 * set; a page that changed since the scan is a merge race. */
static unsigned verify(struct ksm *k, struct kbatch *b, unsigned lo,
		       unsigned hi)
{
	unsigned n = lo;

	for (unsigned m = lo; m < hi; m++) {
		struct kact *a = &b->acts[m];
		struct kop *op = &b->ops[a->op];
		const uint8_t *hva = kpage_hva(a->vm, a->r, a->idx);

		if (op->kind == KOP_ZERO || op->kind == KOP_ZERO_MAP ?
		    !ksm_page_is_zero(hva) : memcmp(hva, op->ref, KSM_PAGE) != 0) {
			CTR_ADD(k->c.merge_races, 1);
			CTR_ADD(a->vm->c.merge_races, 1);
			if (op->kind == KOP_JOIN_BASE || op->kind == KOP_NEW_BASE)
				kbit_set(a->vm->r[a->r].nofast, a->idx);
			continue;
		}
		op->ok |= (uint16_t)(1u << a->pg);
		b->acts[n++] = *a;
	}
	return n;
}

void kbatch_flush(struct ksm *k)
{
	struct kbatch *b = k->batch;
	struct kdom *d = b->dom;
	struct kfollow *fu;
	unsigned i, j, ok, nact = 0, nfu;

	if (!b->n)
		return;
	/* 1: claim; 1b: pages that only read base[g]'s hole move off it;
	 * 2: write new content */
	for (i = 0; i < b->n; i++) {
		struct kop *op = &b->ops[i];

		for (j = 0; j < op->npg; j++)
			if (kbatch_claim(&op->pg[j], &op->old[j]))
				op->claimed |= (uint16_t)(1u << j);
	}
	kbatch_isolate_readers(k, b, d);
	for (i = 0; i < b->n; i++)
		if (b->ops[i].claimed)
			prepare(k, d, &b->ops[i]);
	for (i = 0; i < b->n; i++)
		base_recheck(k, d, &b->ops[i]);
	/* 3-6, one VM at a time, so that a VM's guest waits (or stops) only
	 * for its own pages' compare and backing change */
	for (i = 0; i < b->n; i++)
		for (j = 0; j < b->ops[i].npg; j++)
			if (b->ops[i].claimed & (1u << j))
				act_of(b, d, i, j, &b->acts[nact++]);
	for (i = 1; i < nact && cmp_act(&b->acts[i - 1], &b->acts[i]) < 0; i++)
		;
	if (i < nact)   /* scan order usually is the order already */
		qsort(b->acts, nact, sizeof(*b->acts), cmp_act);
	for (i = 0; i < nact; i = j) {
		j = window_end(k, b, i, nact);
		if (j - i > b->gpg_cap && kbatch_guard_room(b, j - i) != 0)
			continue;   /* out of memory: not merged, unclaimed */
		for (unsigned m = i; m < j; m++)
			b->gpg[m - i] = (struct kpage){ b->acts[m].vm,
				b->acts[m].r, b->acts[m].idx };
		/* 3: guard the VM's claimed pages: write-protected, or paused */
		kbatch_guard(k, b, j - i, true);
		/* 4: compare in full, with no write landing */
		ok = verify(k, b, i, j);
		/* 5: change the backing */
		apply_actions(k, b, i, ok);
		/* 6: lift the guard */
		kbatch_unguard(k, b);
	}
	kbatch_guard_done(k, b);
	/* 7: commit */
	b->nfu = 0;
	for (i = 0; i < b->n; i++)
		commit(k, b, d, &b->ops[i]);
	b->n = b->pages = 0;
	memset(b->pend, 0, b->npend_slots * sizeof(*b->pend));
	/* let the candidates that match new content join it */
	nfu = b->nfu;
	if (!nfu)
		return;
	fu = malloc(nfu * sizeof(*fu));
	if (!fu)
		return;
	memcpy(fu, b->fu, nfu * sizeof(*fu));
	b->nfu = 0;
	for (i = 0; i < nfu; i++)
		kscan_absorb(k, d, fu[i].slot, fu[i].hash, fu[i].frame,
			     fu[i].base_pfn);
	free(fu);
}

/* Flushes until nothing is queued (absorbed joins queue more). */
void kbatch_drain(struct ksm *k)
{
	while (k->batch->n)
		kbatch_flush(k);
}
