/*
 * unshare.c - what the dirty log says happened since the last pass:
 * copy-on-writes of shared pages (unshare), volatility history, rehash.
 *
 * A dirty bit on a page in state ZERO, BASE or FRAME means the guest
 * wrote it, so the kernel gave it a private copy.  The bit alone is not
 * trusted for refcounts: a write that landed after the scan but before
 * the paused merge leaves a stale bit on a page that still maps the
 * frame, and dropping that reference could free a frame still in use.
 * So the kernel's /proc/self/pagemap confirms each one: only a page that
 * is now the VM's own anonymous copy leaves its shared state.  (The dirty
 * log is what keeps this proportional to the change: pagemap is read
 * only for dirty shared pages.)
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "internal.h"

/* n pagemap entries from hva; 0 or -1. */
int kpm_read(struct ksm *k, const uint8_t *hva, unsigned n, uint64_t *out)
{
	size_t len = (size_t)n * sizeof(uint64_t);
	off_t off = (off_t)((uintptr_t)hva / KSM_PAGE * sizeof(uint64_t));

	return pread(k->pagemap_fd, out, len, off) == (ssize_t)len ? 0 : -1;
}

/* The page left (or is removed from) the shared state ksm gave it: drop
 * what it held, by ksm's own record.  reset_map also sets the map entry
 * back to PRIVATE if it still says what ksm set. */
void kunshare_page_state(struct ksm *k, struct ksm_vm *vm, uint32_t r,
			 uint32_t idx, hv_pstate_t st, bool reset_map)
{
	struct ksmvm_range *rg = &vm->r[r];
	uint64_t pfn = kpage_gpa(vm, r, idx) / KSM_PAGE;
	uint32_t own = kpg_own(&rg->pg[idx]);
	hv_pstate_t cur = st;
	int tries;

	if (!own)
		return;
	kpg_set_own(&rg->pg[idx], 0);
	/* only we change entries we own; retry on flag changes */
	for (tries = 0; reset_map && kown_of(cur) == own && tries < 64; tries++) {
		if (kmap_cas(vm, pfn, cur, hv_ps_make(HV_PAGE_PRIVATE,
						      hv_ps_flags(cur), 0)))
			break;
		cur = kmap_get(vm, pfn);
	}
	switch (hv_ps_state(own)) {
	case HV_PAGE_ZERO:
		if (kbit_test(rg->untouched, idx)) {
			kbit_clear(rg->untouched, idx);
			CTR_SUB(vm->c.untouched_pages, 1);
		} else {
			CTR_SUB(vm->c.zero_pages, 1);
		}
		break;
	case HV_PAGE_BASE:
		CTR_SUB(vm->c.pages_sharing, 1);
		CTR_SUB(vm->c.base_pages, 1);
		kbase_unref(k, vm->dom, pfn, vm->dead ? vm : NULL);
		break;
	case HV_PAGE_FRAME:
		CTR_SUB(vm->c.pages_sharing, 1);
		if (hv_ps_frame(own) < vm->dom->hwm &&
		    vm->dom->frames[hv_ps_frame(own)].fill)
			CTR_SUB(vm->c.fill_pages, 1);
		kframe_unref(k, vm->dom, hv_ps_frame(own));
		break;
	default:
		return;
	}
	if (vm->dead)
		return;   /* removal, not a copy-on-write */
	CTR_ADD(vm->c.unmerges, 1);
	CTR_ADD(k->c.unmerges, 1);
}

/* --------------------------------------------- releases by other owners */

/*
 * Another owner of the page-state map (balloon-host) takes a page ksm had
 * shared; it holds HV_PF_BUSY on it and will discard it or write to it.
 * Runs on that owner's thread (a vCPU thread in a hypercall), so it must
 * not wait for the scanner, which may be pausing this very VM: the
 * reference is dropped at the next pass (krel_drain).  Here only:
 *   - a page still reading the shared content gets its own private copy
 *     (MADV_POPULATE_WRITE: the kernel's copy-on-write, no pause needed),
 *     so punching the frame later cannot change what the page holds;
 *   - base-backed RAM that ksm remapped to a frame gets its base mapping
 *     back with the same bytes, so the owner's discard reads base[g].
 * Anonymous RAM remapped to a frame keeps the frames mapping underneath
 * (hv.h has no way to map anonymous memory back): a later discard reads
 * the frame's content, or zero once the frame is freed.
 */
void ksm_page_released(void *ctx, uint64_t gpa, hv_pstate_t old)
{
	struct ksm_vm *vm = ctx;
	struct ksm *k = vm->ksm;
	uint8_t buf[KSM_PAGE] __attribute__((aligned(64)));
	struct krel *nr;
	uint32_t r, idx;
	uint64_t e;
	uint8_t *hva;

	(void)old;
	if (k->cfg.engine != KSM_ENGINE_DENSE || !ksmvm_locate(vm, gpa, &r, &idx))
		return;
	hva = kpage_hva(vm, r, idx);
	if (kpm_read(k, hva, 1, &e) == 0 && !kpm_private(e))
		madvise(hva, KSM_PAGE, MADV_POPULATE_WRITE);
	if (vm->uses_base && vm->dom &&
	    (__atomic_load_n(&vm->r[r].pg[idx].pflags, __ATOMIC_RELAXED) &
	     KP_REMAPPED)) {
		memcpy(buf, hva, KSM_PAGE);
		if (vm->ops->replace_backing(vm->ctx, gpa & ~(uint64_t)(KSM_PAGE - 1),
					     KSM_PAGE, vm->dom->base_fd,
					     gpa & ~(uint64_t)(KSM_PAGE - 1)) == 0)
			memcpy(hva, buf, KSM_PAGE);
	}
	pthread_mutex_lock(&k->rel_mu);
	if (k->nrel == k->relcap) {
		unsigned cap = k->relcap ? 2 * k->relcap : 256;

		nr = realloc(k->rel, cap * sizeof(*nr));
		if (nr) {
			k->rel = nr;
			k->relcap = cap;
		}
	}
	if (k->nrel < k->relcap)
		k->rel[k->nrel++] = (struct krel){ vm, gpa };
	pthread_mutex_unlock(&k->rel_mu);
}

/* Under k->lock: applies the queued releases. */
void krel_drain(struct ksm *k)
{
	struct krel *list;
	unsigned n, i;
	uint32_t r, idx;

	pthread_mutex_lock(&k->rel_mu);
	list = k->rel;
	n = k->nrel;
	k->rel = NULL;
	k->nrel = k->relcap = 0;
	pthread_mutex_unlock(&k->rel_mu);
	for (i = 0; i < n; i++) {
		struct ksm_vm *vm = list[i].vm;

		if (!ksmvm_locate(vm, list[i].gpa, &r, &idx))
			continue;
		kunshare_page_state(k, vm, r, idx, 0, false);
		/* the page is not remapped any more if its base came back */
		if (vm->uses_base)
			vm->r[r].pg[idx].pflags &= (uint8_t)~KP_REMAPPED;
		kbit_set(vm->r[r].todo, idx);
	}
	free(list);
}

/* Is a release of this page queued (not drained yet)? */
bool krel_queued(struct ksm *k, struct ksm_vm *vm, uint64_t gpa)
{
	bool found = false;

	pthread_mutex_lock(&k->rel_mu);
	for (unsigned i = 0; i < k->nrel && !found; i++)
		found = k->rel[i].vm == vm && k->rel[i].gpa == gpa;
	pthread_mutex_unlock(&k->rel_mu);
	return found;
}

/* Releases queued since the last drain? */
bool krel_pending(struct ksm *k)
{
	bool any;

	pthread_mutex_lock(&k->rel_mu);
	any = k->nrel != 0;
	pthread_mutex_unlock(&k->rel_mu);
	return any;
}

/* Under k->lock, before a VM goes away: its queued releases apply now. */
void krel_purge_vm(struct ksm *k, struct ksm_vm *vm)
{
	(void)vm;
	krel_drain(k);
}

static bool shared_state(hv_pstate_t st)
{
	unsigned s = hv_ps_state(st);

	return s == HV_PAGE_ZERO || s == HV_PAGE_BASE || s == HV_PAGE_FRAME;
}

/* One range's freshly fetched dirty bitmap. */
void kunshare_range(struct ksm *k, struct ksm_vm *vm, uint32_t r,
		    const uint64_t *dirty)
{
	struct ksmvm_range *rg = &vm->r[r];
	uint64_t pm[64];
	uint64_t w, bits, idx, pfn;
	unsigned i, n;
	bool have_pm;
	hv_pstate_t st;

	for (w = 0; w < rg->nwords; w++) {
		bits = dirty[w];
		if (!bits)
			continue;
		/* the scanner's waiters get in (scan.c); a VM removed
		 * meanwhile has had all its pages unshared */
		if (kscan_yield(k) && vm->dead)
			return;
		have_pm = false;
		n = (unsigned)(rg->npages - w * 64 < 64 ? rg->npages - w * 64
							 : 64);
		while (bits) {
			i = (unsigned)__builtin_ctzll(bits);
			bits &= bits - 1;
			idx = w * 64 + i;
			if (i >= n)
				break;
			/* volatility: dirty in consecutive reads of the log */
			if (vm->prev_read_pass != UINT32_MAX &&
			    rg->pg[idx].last_dirty == (uint16_t)vm->prev_read_pass) {
				if (rg->pg[idx].streak < 255)
					rg->pg[idx].streak++;
			} else if (rg->pg[idx].last_dirty != (uint16_t)k->pass) {
				rg->pg[idx].streak = 1;
			}
			rg->pg[idx].last_dirty = (uint16_t)k->pass;
			pfn = kpage_gpa(vm, r, (uint32_t)idx) / KSM_PAGE;
			st = kmap_get(vm, pfn);
			if (hv_ps_flags(st) & HV_PF_BUSY) {
				kbit_set(rg->todo, idx);   /* owner's page */
				continue;
			}
			if (kpg_own(&rg->pg[idx]) && kown_of(st) != kpg_own(&rg->pg[idx])) {
				/* changed by another owner (a ZERO page
				 * ballooned, say): ksm's share is gone */
				kunshare_page_state(k, vm, r, (uint32_t)idx, st,
						    false);
				kbit_set(rg->todo, idx);
				continue;
			}
			if (hv_ps_state(st) == HV_PAGE_PRIVATE) {
				kcand_del_page(k, vm, r, (uint32_t)idx);
				kbit_set(rg->todo, idx);
				continue;
			}
			if (!shared_state(st) || !kpg_own(&rg->pg[idx]))
				continue;          /* not ours */
			if (!have_pm) {
				if (kpm_read(k, kpage_hva(vm, r, (uint32_t)(w * 64)),
					     n, pm) != 0)
					break;     /* retried at the next write */
				have_pm = true;
			}
			if (!kpm_private(pm[i]))
				continue;          /* still shared: stale bit */
			kunshare_page_state(k, vm, r, (uint32_t)idx, st, true);
			kbit_set(rg->todo, idx);
		}
	}
}
