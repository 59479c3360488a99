/*
 * base_frame.c - one content store per domain: base pages are frames too.
 *
 * A domain keeps shared content in two places: base[g] of its base memfd
 * (content shared at its own GPA g, with no VMA: merge_base.c) and the
 * frames memfd (content shared at other GPAs: merge_frame.c).  Without a
 * link between them, content that clones share at g and other VMs hold
 * at other GPAs would be stored twice, once in each.  So base[g], once it
 * holds merged content, is also a frame of the store: a "base frame",
 * with a stable-table node under the content's hash.  A page at another
 * GPA with that content joins it like any frame (JOIN_FRAME), and its
 * mapping is base memfd page g (MAP_PRIVATE, copy-on-write by the kernel,
 * as for any frame).  Before a batch stores new content (NEW_BASE,
 * NEW_FRAME), kstore_find() looks for it in the store, so a content is
 * written once per domain, whichever GPA sees it first.
 *
 * Invariants (ksm_self_check):
 *   - base_frame[g] = f + 1 exactly when frame f is LIVE with bpfn g + 1;
 *   - a base frame lives while base_refs[g] > 0 or refs > 0 (refs: pages
 *     at other GPAs), and while it lives base[g] is never written
 *     (kbase_writable) nor punched (base_punch): pages elsewhere read it;
 *   - bframes_alone counts the base frames with base_refs[g] == 0.
 */
#include <stdlib.h>
#include <string.h>
#include "internal.h"

/* base[g] holds shared content with this hash: name it in the store
 * (nothing when it is already named, or when no frame index is left: the
 * content then only serves its own GPA). */
void kbframe_publish(struct ksm *k, struct kdom *d, uint64_t pfn,
		     uint64_t hash, unsigned slot, int node)
{
	struct kframe *fr;
	struct knode *n;
	uint32_t f;

	(void)k;
	if (!d->base_frame || pfn >= d->base_npages ||
	    kbframe_of(d, pfn) != UINT32_MAX || !kbase_ptr(d, pfn))
		return;
	n = calloc(1, sizeof(*n));
	if (!n)
		return;
	f = kframe_alloc(d);
	if (f == UINT32_MAX) {
		free(n);
		return;
	}
	fr = &d->frames[f];
	fr->hash = hash;
	fr->node = (int16_t)node;
	fr->slot = (uint8_t)slot;
	fr->used = KF_LIVE;
	fr->bpfn = pfn + 1;
	fr->sn = n;
	d->frames_used++;
	d->bframes++;
	if (!d->base_refs[pfn])
		d->bframes_alone++;
	d->base_frame[pfn] = f + 1;
	n->hash = hash;
	n->slot = (uint8_t)slot;
	n->frame = f;
	ktab_add(d->stable[slot], n);
}

/* A live frame of the store (a base frame or a frames-memfd frame) with
 * room for npg more sharers that holds exactly these bytes, or
 * UINT32_MAX.  The bytes are compared, never only the hash. */
uint32_t kstore_find(struct ksm *k, struct kdom *d, unsigned slot,
		     uint64_t hash, const uint8_t *bytes, unsigned npg)
{
	struct cds_lfht_iter it;
	struct knode *n;
	unsigned walked = 0;
	uint8_t buf[KSM_PAGE];

	if (!d->frames_used)
		return UINT32_MAX;
	for (n = ktab_first(d->stable[slot], hash, &it);
	     n && walked < KSM_WALK_MAX;
	     n = ktab_next(d->stable[slot], &it), walked++) {
		struct kframe *fr = &d->frames[n->frame];
		const uint8_t *p;

		if (fr->used != KF_LIVE ||
		    fr->refs + fr->pending + npg > k->cfg.max_sharers)
			continue;
		if (fr->bpfn) {
			p = kbase_ptr(d, fr->bpfn - 1);
		} else {
			if (kframe_read(d, n->frame, buf) != 0)
				continue;
			p = buf;
		}
		if (p && memcmp(p, bytes, KSM_PAGE) == 0)
			return n->frame;
	}
	return UINT32_MAX;
}
