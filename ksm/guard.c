/*
 * guard.c - keeping guests from writing a batch's pages between the full
 * compare and the backing change (batch.c steps 3-6, isolate.c), and the
 * figures of what that cost the guests.
 *
 * Two ways, chosen per VM and batch:
 *   - write-protect (where the VM's ops can and the write_protect tunable
 *     is on): the batch's pages, coalesced into runs per VM, are
 *     protected; a vCPU that writes one waits in the kernel until the
 *     unprotect and then writes the new backing; every other vCPU runs
 *     on.  The protect returns after the TLB flush and KVM's MMU
 *     notifier, so a write the compare did not see cannot land in a
 *     compared page: it waits, and after the replace it lands on the new
 *     mapping (a copy-on-write of identical content), after a discard on
 *     what the discard left (zeros, or base[g] which holds the same
 *     bytes).  hv-core keeps RAM registered across every backing change
 *     and wakes the waiters of a replaced page (hv-core/wp.c);
 *   - pause (the fallback: no write-protect on this VM or kernel, a
 *     protect that failed, or write_protect=0): every vCPU of the VM is
 *     stopped, as before.
 * Runs closer than KSM_WP_GAP pages are protected as one: a protect and
 * an unprotect cost about 1.6 us of system call each, a page of a run
 * 0.15 us, and only a write into the gap pays for it.  While the VM's
 * vCPUs run, each also costs a KVM TLB flush: an IPI to every vCPU in
 * guest mode, 27 us at the median here but up to milliseconds on these
 * 2 busy cores, which is why batch.c gives each run a window of its own.
 *
 * A batch guards its VMs one at a time (batch.c): each VM waits only
 * for its own pages.  Figures (struct kpause rings, per VM per guard, and
 * per batch the worst of its VMs): KRING_PAUSE the pause of each paused
 * batch (the pause_* stats; since guards are per VM, a pause no longer
 * includes stopping the batch's other VMs); KRING_WPWIN how long a
 * protected batch's pages stayed protected, the bound on any wait;
 * KRING_STALL each batch's guest stall either way: the pause, or the
 * longest write-protect wait a vCPU had (0 when none wrote into it).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "batch_int.h"

void kpause_record(struct kpause *p, unsigned ring, uint64_t ns)
{
	pthread_mutex_lock(&p->mu);
	p->ns[ring][p->n[ring] % KSM_PAUSE_RING] = ns;
	p->n[ring]++;
	pthread_mutex_unlock(&p->mu);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

void kpause_percentiles(struct kpause *p, unsigned ring, uint64_t *p50,
			uint64_t *p99, uint64_t *max)
{
	uint64_t *tmp;
	size_t n;

	*p50 = *p99 = *max = 0;
	tmp = malloc(sizeof(p->ns[ring]));
	if (!tmp)
		return;
	pthread_mutex_lock(&p->mu);
	n = p->n[ring] < KSM_PAUSE_RING ? p->n[ring] : KSM_PAUSE_RING;
	memcpy(tmp, p->ns[ring], n * sizeof(*tmp));
	pthread_mutex_unlock(&p->mu);
	if (n) {
		qsort(tmp, n, sizeof(*tmp), cmp_u64);
		*p50 = tmp[(n - 1) / 2];
		*p99 = tmp[(n - 1) * 99 / 100];
		*max = tmp[n - 1];
	}
	free(tmp);
}

int kbatch_guard_room(struct kbatch *b, unsigned n)
{
	struct kpage *pg = realloc(b->gpg, n * sizeof(*pg));
	struct hv_span *sp;
	struct kguard *g;

	if (!pg)
		return -1;
	b->gpg = pg;
	if (!(sp = realloc(b->gsp, n * sizeof(*sp))))
		return -1;
	b->gsp = sp;
	if (!(g = realloc(b->gvm, n * sizeof(*g))))
		return -1;
	b->gvm = g;
	b->gpg_cap = n;
	return 0;
}

static int cmp_kpage(const void *a, const void *b)
{
	const struct kpage *x = a, *y = b;

	return kpage_order(x->vm, x->r, x->idx, y->vm, y->r, y->idx);
}

/* b->gpg[0..n) sorted, as runs per VM into b->gsp and b->gvm. */
static void runs(struct kbatch *b, unsigned n)
{
	struct kguard *g = NULL;
	struct hv_span *sp = NULL;
	uint32_t last_r = 0;
	unsigned i, ns = 0;

	for (i = 1; i < n && cmp_kpage(&b->gpg[i - 1], &b->gpg[i]) <= 0; i++)
		;
	if (i < n)   /* the ops of a batch mostly come in scan order */
		qsort(b->gpg, n, sizeof(*b->gpg), cmp_kpage);
	b->ngvm = 0;
	for (i = 0; i < n; i++) {
		const struct kpage *p = &b->gpg[i];
		uint64_t gpa = kpage_gpa(p->vm, p->r, p->idx);

		if (!g || g->vm != p->vm) {
			g = &b->gvm[b->ngvm++];
			*g = (struct kguard){ .vm = p->vm, .s0 = ns };
			sp = NULL;
		}
		/* a gap inside one RAM range is RAM too */
		if (sp && p->r == last_r &&
		    gpa <= sp->gpa + sp->len + KSM_WP_GAP * KSM_PAGE) {
			if (gpa + KSM_PAGE > sp->gpa + sp->len)
				sp->len = gpa + KSM_PAGE - sp->gpa;
			continue;
		}
		sp = &b->gsp[ns++];
		*sp = (struct hv_span){ gpa, KSM_PAGE };
		last_r = p->r;
		g->ns++;
	}
}

void kbatch_guard(struct ksm *k, struct kbatch *b, unsigned n, bool wp_ok)
{
	bool wp = wp_ok && __atomic_load_n(&k->cfg.write_protect,
					   __ATOMIC_RELAXED);

	runs(b, n);
	for (unsigned i = 0; i < b->ngvm; i++) {
		struct kguard *g = &b->gvm[i];
		const struct ksm_vm_ops *ops = g->vm->ops;

		int rc = -EOPNOTSUPP;

		g->t0 = ksm_now_ns();
		if (wp && !g->vm->wp_off && ops->wp_protect && ops->wp_unprotect)
			rc = k->cfg.test_unguarded ? 0 :
			     ops->wp_protect(g->vm->ctx, b->gsp + g->s0, g->ns);
		g->wp = rc == 0;
		if (rc == -EOPNOTSUPP && wp)   /* it never will: not per run */
			g->vm->wp_off = true;
		if (!g->wp)
			ops->pause(g->vm->ctx);
	}
}

bool kbatch_guarded_wp(const struct kbatch *b, const struct ksm_vm *vm)
{
	for (unsigned i = 0; i < b->ngvm; i++)
		if (b->gvm[i].vm == vm)
			return b->gvm[i].wp;
	return false;
}

void kbatch_unguard(struct ksm *k, struct kbatch *b)
{
	uint64_t d;

	for (unsigned i = 0; i < b->ngvm; i++) {
		struct kguard *g = &b->gvm[i];
		struct ksm_vm *vm = g->vm;
		struct hv_wp_waits w = { 0, 0 };

		if (g->wp) {
			if (!k->cfg.test_unguarded)
				vm->ops->wp_unprotect(vm->ctx, b->gsp + g->s0,
						      g->ns, &w);
			d = ksm_now_ns() - g->t0;
			kpause_record(&vm->pause, KRING_WPWIN, d);
			kpause_record(&vm->pause, KRING_STALL, w.max_ns);
			CTR_ADD(vm->c.wp_batches, 1);
			CTR_ADD(vm->c.wp_waits, w.n);
			CTR_ADD(k->c.wp_waits, w.n);
			b->acc.win = d > b->acc.win ? d : b->acc.win;
			b->acc.stall = w.max_ns > b->acc.stall ? w.max_ns :
				       b->acc.stall;
			b->acc.wp = true;
		} else {
			vm->ops->resume(vm->ctx);
			d = ksm_now_ns() - g->t0;
			kpause_record(&vm->pause, KRING_PAUSE, d);
			kpause_record(&vm->pause, KRING_STALL, d);
			CTR_ADD(vm->c.pauses, 1);
			b->acc.pause = d > b->acc.pause ? d : b->acc.pause;
			b->acc.stall = d > b->acc.stall ? d : b->acc.stall;
			b->acc.paused = true;
		}
	}
	b->ngvm = 0;
}

void kbatch_guard_done(struct ksm *k, struct kbatch *b)
{
	if (b->acc.paused) {
		kpause_record(&k->pause, KRING_PAUSE, b->acc.pause);
		CTR_ADD(k->c.pauses, 1);
	}
	if (b->acc.wp) {
		kpause_record(&k->pause, KRING_WPWIN, b->acc.win);
		CTR_ADD(k->c.wp_batches, 1);
	}
	if (b->acc.paused || b->acc.wp)
		kpause_record(&k->pause, KRING_STALL, b->acc.stall);
	memset(&b->acc, 0, sizeof(b->acc));
}
