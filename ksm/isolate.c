/*
 * isolate.c - step 1b of a batch flush: pages that read base[g] only
 * because their VM never wrote g are moved off it (zeros mapped over
 * them, guarded), so that base[g] can take the content other VMs share at
 * g instead of a frame and a VMA per run in every sharer.
 */
#include <limits.h>
#include <stdlib.h>
#include "batch_int.h"

/*
 * Under write-protect an unwritten page of base-memfd RAM has no page but
 * a userfaultfd write-protect marker, which pagemap shows as a swap
 * entry: PM_SWAPPED and PM_UFFD_WP, swap type 31 (SWP_PTE_MARKER) and
 * offset 1 (PTE_MARKER_UFFD_WP) in bits 0-54 (tests/unit/test_wp.c pins
 * it).  A page that was written has a present PTE, or a swap or migration
 * entry of another type, so it is never taken for one.  Where pagemap
 * hides those bits (without CAP_SYS_ADMIN) a marker cannot be told from
 * a swapped page: isolation then pauses instead (wp_markers_visible).
 */
#define PM_UFFD_WP (1ULL << 57)
#define PM_FRAME   ((1ULL << 55) - 1)

static bool pm_wp_marker(uint64_t e)
{
	return (e & (PM_PRESENT | PM_SWAPPED | PM_UFFD_WP)) ==
	       (PM_SWAPPED | PM_UFFD_WP) && (e & PM_FRAME) == (31 | 1u << 5);
}

/* Does pagemap show frame bits to this process (a present page's PFN)? */
static bool wp_markers_visible(struct ksm *k)
{
	static int known;   /* 0 unknown, 1 yes, -1 no; the same for all */
	static volatile uint64_t page[KSM_PAGE / 8]
		__attribute__((aligned(KSM_PAGE)));
	uint64_t e;
	int v = __atomic_load_n(&known, __ATOMIC_RELAXED);

	if (!v) {
		page[0] = 1;
		v = kpm_read(k, (const uint8_t *)page, 1, &e) == 0 &&
		    (e & PM_PRESENT) && (e & PM_FRAME) ? 1 : -1;
		__atomic_store_n(&known, v, __ATOMIC_RELAXED);
	}
	return v > 0;
}

static int cmp_iso(const void *a, const void *b)
{
	const struct kpage *x = &((const struct kiso *)a)->p;
	const struct kpage *y = &((const struct kiso *)b)->p;

	return kpage_order(x->vm, x->r, x->idx, y->vm, y->r, y->idx);
}

/* The other unwritten pages of each isolated page's 64-page window that
 * read zeros from base go too: zeros mapped over a whole untouched
 * stretch are one anonymous VMA, where single pages between file
 * mappings would be one each.  Claimed like the rest; returns the new n. */
static unsigned isolate_widen(struct ksm *k, struct kbatch *b, struct kdom *d,
			      unsigned n)
{
	unsigned i, j, total = n;
	uint64_t e, zmask, pm[64];

	for (i = 0; i < n && total < b->iso_cap; i++) {
		struct kpage *p = &b->iso[i].p;
		struct ksm_vm *vm = p->vm;
		struct ksmvm_range *rg = &vm->r[p->r];
		uint32_t w0 = p->idx & ~63u, cnt;
		uint64_t in_iso = 0, g0 = kpage_gpa(vm, p->r, w0) / KSM_PAGE;

		/* one pass per window: skip windows done already */
		for (j = 0; j < i; j++)
			if (b->iso[j].p.vm == vm && b->iso[j].p.r == p->r &&
			    (b->iso[j].p.idx & ~63u) == w0)
				break;
		if (j < i)
			continue;
		cnt = (uint32_t)(rg->npages - w0 < 64 ? rg->npages - w0 : 64);
		if (g0 + cnt > d->base_npages ||
		    kpm_read(k, kpage_hva(vm, p->r, w0), cnt, pm) != 0)
			continue;
		zmask = kbase_zero_mask(d, g0, cnt);
		for (j = 0; j < total; j++)
			if (b->iso[j].p.vm == vm && b->iso[j].p.r == p->r &&
			    (b->iso[j].p.idx & ~63u) == w0)
				in_iso |= 1ULL << (b->iso[j].p.idx - w0);
		for (j = 0; j < cnt && total < b->iso_cap; j++) {
			uint32_t idx = w0 + j;
			hv_pstate_t st = kmap_get(vm, g0 + j);

			e = pm[j];
			if ((in_iso >> j) & 1 || !((zmask >> j) & 1) ||
			    kpm_private(e) || hv_ps_state(st) != HV_PAGE_PRIVATE ||
			    (hv_ps_flags(st) & (HV_PF_BUSY | HV_PF_DEVICE)) ||
			    kbase_page_elsewhere(vm, p->r, idx, st))
				continue;
			b->iso[total].p = (struct kpage){ vm, p->r, idx };
			if (kbatch_claim(&b->iso[total].p, &b->iso[total].old))
				total++;
		}
	}
	return total;
}

/*
 * Step 1b.  A NEW_BASE at g needs base[g] unread (merge_base.c), and a VM
 * that never wrote g reads it: the hole, zeros.  Such pages (an image's
 * zero pages, memory a guest never touched) would send the merge to a
 * frame and a VMA per run in every VM that shares it.  So they are
 * claimed and guarded (write-protected, or their VMs paused), each is
 * checked again to still be unwritten (pagemap), and zeros are mapped
 * over it (ops->zero: anonymous memory, one call per run): the page reads
 * zeros before and after, and no longer reads base[g].  They become ZERO
 * pages of ksm's.  A page written meanwhile is left alone, and then
 * base[g] stays unwritable (prepare falls back to a frame).  A write
 * that waits on the guard lands on the zeros, after the check.
 */
/* Is p's 64-page window in iso[0..n)?  From the end: the ops of a batch
 * come in GPA order, so the window is most often one just added. */
static bool iso_window_in(const struct kbatch *b, unsigned n,
			  const struct kpage *p)
{
	while (n--) {
		const struct kpage *q = &b->iso[n].p;
		if (q->vm == p->vm && q->r == p->r &&
		    (q->idx & ~63u) == (p->idx & ~63u))
			return true;
	}
	return false;
}

/* One VM's isolated pages iso[lo, hi), guarded: each is checked to be
 * still unwritten (one pagemap read per 64-page window: the list is
 * sorted), then zeros are mapped over the runs.  Returns the failures. */
static int isolate_vm(struct ksm *k, struct kbatch *b, unsigned lo,
		      unsigned hi)
{
	bool wp = kbatch_guarded_wp(b, b->iso[lo].p.vm);
	unsigned i, j;
	int fails = 0;

	for (i = lo; i < hi; i = j) {
		struct kpage *p = &b->iso[i].p;
		uint32_t w0 = p->idx & ~63u, cnt;
		uint64_t pm[64];
		bool got;

		cnt = (uint32_t)(p->vm->r[p->r].npages - w0 < 64 ?
				 p->vm->r[p->r].npages - w0 : 64);
		got = kpm_read(k, kpage_hva(p->vm, p->r, w0), cnt, pm) == 0;
		for (j = i; j < hi && b->iso[j].p.r == p->r &&
		     (b->iso[j].p.idx & ~63u) == w0; j++) {
			uint64_t e = pm[b->iso[j].p.idx - w0];

			b->iso[j].ok = got && (!kpm_private(e) ||
					       (wp && pm_wp_marker(e)));
		}
	}
	for (i = lo; i < hi; i = j) {
		struct kpage *p = &b->iso[i].p;

		for (j = i + 1; j < hi && b->iso[j].p.r == p->r &&
		     b->iso[j].p.idx == b->iso[j - 1].p.idx + 1 &&
		     b->iso[j].ok == b->iso[i].ok; j++)
			;
		if (!b->iso[i].ok)
			continue;
		kpm_forget(p->vm, kpage_hva(p->vm, p->r, p->idx),
			   (uint64_t)(j - i) * KSM_PAGE);
		if (p->vm->ops->zero(p->vm->ctx, kpage_gpa(p->vm, p->r, p->idx),
				     (uint64_t)(j - i) * KSM_PAGE) != 0) {
			fails++;
			for (unsigned m = i; m < j; m++)
				b->iso[m].ok = false;
		}
	}
	return fails;
}

void kbatch_isolate_readers(struct ksm *k, struct kbatch *b, struct kdom *d)
{
	unsigned i, j, got, n = 0, first, v0, v1;
	struct kpage *rd = NULL;
	uint64_t pfn;
	int fails = 0;

	if (d->base_fd < 0)
		return;
	for (i = 0; i < b->n && n < b->iso_cap; i++) {
		struct kop *op = &b->ops[i];

		if (op->kind != KOP_NEW_BASE ||
		    __builtin_popcount(op->claimed) < 2)
			continue;
		pfn = kpage_gpa(op->pg[0].vm, op->pg[0].r, op->pg[0].idx) /
		      KSM_PAGE;
		if (pfn >= d->base_npages || d->base_refs[pfn] ||
		    kbframe_of(d, pfn) != UINT32_MAX ||
		    kbase_writable(k, d, pfn, op->pg, op->npg))
			continue;
		/* every VM of the domain may be one (VMs that have not started
		 * read base everywhere: 27 of 30 in bench density, where a
		 * limit of 16 readers sent every merge to a frame) */
		if (!rd && !(rd = malloc((size_t)d->nvms * sizeof(*rd))))
			break;
		got = kbase_readers(k, d, pfn, op->pg, op->npg, rd, d->nvms);
		/* what they read now must be zeros, as after */
		if (got == UINT_MAX || !got || !kbase_reads_zero(d, pfn))
			continue;
		/* one page per window: isolate_widen() takes the rest of the
		 * window, and so this op's readers in windows already in */
		first = n;
		for (j = 0; j < got; j++) {
			if (iso_window_in(b, n, &rd[j]))
				continue;
			if (n == b->iso_cap)
				break;
			b->iso[n].p = rd[j];
			if (!kbatch_claim(&b->iso[n].p, &b->iso[n].old))
				break;
			n++;
		}
		if (j < got) {   /* someone took one, or full: give this op's back */
			while (n > first) {
				n--;
				kbatch_unclaim(&b->iso[n].p, b->iso[n].old);
			}
		}
	}
	free(rd);
	if (!n)
		return;
	n = isolate_widen(k, b, d, n);
	qsort(b->iso, n, sizeof(*b->iso), cmp_iso);
	for (v0 = 0; v0 < n; v0 = v1) {   /* one VM at a time */
		for (v1 = v0; v1 < n && b->iso[v1].p.vm == b->iso[v0].p.vm; v1++)
			b->gpg[v1 - v0] = b->iso[v1].p;   /* gpg_cap >= iso_cap */
		kbatch_guard(k, b, v1 - v0, wp_markers_visible(k));
		fails += isolate_vm(k, b, v0, v1);
		kbatch_unguard(k, b);
	}
	kbatch_guard_done(k, b);
	CTR_ADD(k->c.map_failures, fails);
	for (i = 0; i < n; i++) {
		struct kpage *p = &b->iso[i].p;
		struct ksmvm_range *rg = &p->vm->r[p->r];
		uint64_t gpfn = kpage_gpa(p->vm, p->r, p->idx) / KSM_PAGE;
		hv_pstate_t nw;

		if (!b->iso[i].ok) {
			kbatch_unclaim(p, b->iso[i].old);
			continue;
		}
		nw = hv_ps_make(HV_PAGE_ZERO, hv_ps_flags(b->iso[i].old) &
				~HV_PF_BUSY, 0);
		kmap_cas(p->vm, gpfn, b->iso[i].old | HV_PF_BUSY, nw);
		kpg_set_own(&rg->pg[p->idx], kown_of(nw));
		rg->pg[p->idx].pflags &= (uint8_t)~KP_REMAPPED;
		kbit_clear(rg->todo, p->idx);
		kbit_set(rg->untouched, p->idx);
		CTR_ADD(p->vm->c.untouched_pages, 1);
	}
}

