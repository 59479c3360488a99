/*
 * batch_int.h - what batch.c shares with isolate.c and guard.c: the
 * batch, its ops, claiming pages and guarding them (write-protect or
 * pause).  Nothing else includes it.
 */
#ifndef DENSEVM_KSM_BATCH_INT_H
#define DENSEVM_KSM_BATCH_INT_H

#include "internal.h"

struct kop {
	uint8_t kind, npg;
	uint16_t claimed, ok;   /* bit i: pg[i] */
	uint8_t npend;          /* joins it adds to frames[frame].pending */
	bool was_new;           /* queued as new content, which the store
				 * or base[g] held already */
	uint8_t slot;
	int node;
	uint64_t hash;
	uint32_t frame;
	struct kpage pg[KSM_GROUP_MAX];
	hv_pstate_t old[KSM_GROUP_MAX];
	uint8_t *ref;
};

#define KACT_DISCARD (-1)
#define KACT_ZERO    (-2)   /* ops->zero */
struct kact {
	struct ksm_vm *vm;
	uint32_t r, idx;
	int fd;             /* a memfd to map, or KACT_* */
	uint64_t off;
	uint32_t op;
	uint8_t pg;
};

struct kfollow {
	unsigned slot;
	uint64_t hash;
	uint32_t frame;     /* UINT32_MAX: none (a base page not in the store) */
	uint64_t base_pfn;  /* UINT64_MAX: not a base page */
};

/* One VM's part of a guard: its runs b->gsp[s0, s0 + ns), protected,
 * or the VM paused; since t0. */
struct kguard {
	struct ksm_vm *vm;
	unsigned s0, ns;
	bool wp;
	uint64_t t0;
};

struct kbatch {
	unsigned cap;       /* pages per batch */
	unsigned n, pages;
	struct kop *ops;
	uint8_t *bufs;
	struct kact *acts;
	/* the guard (guard.c): its pages (gpg_cap: a batch's claimed pages,
	 * or iso_cap isolated ones), their runs, one kguard per VM */
	struct kpage *gpg;
	unsigned gpg_cap;
	struct hv_span *gsp;
	struct kguard *gvm;
	unsigned ngvm;
	/* the worst of the guards since kbatch_guard_done() */
	struct { uint64_t pause, win, stall; bool paused, wp; } acc;
	struct kfollow *fu;
	unsigned nfu;
	struct kdom *dom;
	/* discard runs of one VM, sent in one discard_many call */
	struct hv_span *spans;
	unsigned *span_act;   /* first act of span i; span i ends at the
			       * first act of span i+1 or at span_end */
	unsigned nspans, span_end;
	struct ksm_vm *span_vm;
	/* pages isolated from base[g] before a NEW_BASE (isolate.c) */
	struct kiso { struct kpage p; hv_pstate_t old; bool ok; } *iso;
	unsigned iso_cap;
	/* hashes of the NEW ops queued: later equal pages wait as candidates
	 * and join the new content after the flush, instead of making a
	 * second frame for it.  Open addressing, 2*cap slots, 0 = empty. */
	uint64_t *pend;
	unsigned npend_slots;
};

/* Page order: VM id, range, index (scan order, and runs adjacent). */
static inline int kpage_order(const struct ksm_vm *va, uint32_t ra,
			      uint32_t ia, const struct ksm_vm *vb,
			      uint32_t rb, uint32_t ib)
{
	if (va->id != vb->id)
		return va->id < vb->id ? -1 : 1;
	if (ra != rb)
		return ra < rb ? -1 : 1;
	return ia < ib ? -1 : ia > ib;
}

/* HV_PF_BUSY by CAS on a PRIVATE page; false if someone else has it. */
bool kbatch_claim(struct kpage *p, hv_pstate_t *old);
/* Gives the page back unchanged and asks for a rehash next pass. */
void kbatch_unclaim(struct kpage *p, hv_pstate_t old);
/* Pages between two runs of a VM that are write-protected as one run: a
 * protect and an unprotect cost a system call and, while the VM runs, a
 * KVM TLB flush with an IPI each, a page of a run far less. */
#define KSM_WP_GAP 8u
/* Acts of one write-protect window at most (batch.c): each window is one
 * run, so a vCPU waits for one run's compare and backing change. */
#define KSM_WP_WINDOW 64u

/* guard.c: keeps the VMs of b->gpg[0..n) from writing those pages until
 * kbatch_unguard(): write-protects them where the VM can (wp_ok: the
 * caller can work with protected pages; write_protect on), else pauses
 * the VM.  kbatch_unguard() lifts it and records each VM's stall;
 * kbatch_guard_done() records the batch's (the worst of its guards). */
void kbatch_guard(struct ksm *k, struct kbatch *b, unsigned n, bool wp_ok);
void kbatch_guard_done(struct ksm *k, struct kbatch *b);
/* Grows b->gpg (and the runs) to n pages: 0, or -1 out of memory. */
int kbatch_guard_room(struct kbatch *b, unsigned n);
void kbatch_unguard(struct ksm *k, struct kbatch *b);
/* vm's pages in the current guard are write-protected (not paused). */
bool kbatch_guarded_wp(const struct kbatch *b, const struct ksm_vm *vm);

/* Step 1b of a flush (isolate.c). */
void kbatch_isolate_readers(struct ksm *k, struct kbatch *b, struct kdom *d);

#endif
