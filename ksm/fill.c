/*
 * fill.c - fill pages: a page that is one nonzero byte repeated (freed
 * memory a kernel poisons with 0xcc, blocks of 0xff), shared through a
 * block of frames striped by GPA.
 *
 * A cross-GPA share costs a VMA per run of pages that map consecutive
 * frames.  Pages of one fill byte come in long runs (the four Linux images
 * of `make images` hold 65,402 pages of 0xcc in 42 runs), and mapped to
 * one frame they would cost a VMA each; as base pages, a copy per GPA.
 * So each fill byte has a block of KSM_FILL_RUN consecutive frames of the
 * frames memfd, all holding that byte, and a page at GPA g maps frame
 * first + g % KSM_FILL_RUN: a run maps consecutive frames, one mmap and
 * one VMA per KSM_FILL_RUN pages (batch.c coalesces them).  A frame of
 * the block is written only when a page first maps it, so a block costs
 * at most KSM_FILL_RUN pages.  Only pages in a run take this path (a
 * neighbour holds the same byte); a lone fill page is ordinary content.
 *
 * Invariants (ksm_self_check):
 *   - the block's frames are LIVE (holding the byte, refs > 0, no stable
 *     node) or KF_FILLRES (a hole that no page names), and name the block
 *     back in kframe.fill;
 *   - blk->live counts its LIVE frames; a block with none is freed.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include "internal.h"

int kfill_byte(const void *page)
{
	const uint8_t *p = page;
	uint64_t w;

	memcpy(&w, p, sizeof(w));
	if (w != p[0] * 0x0101010101010101ULL || !p[0])
		return -1;
	/* p[i] == p[i + 8] for every i, and the first 8 are equal */
	return memcmp(p, p + 8, KSM_PAGE - 8) == 0 ? p[0] : -1;
}

static struct kfillblk *block_of(struct kdom *d, uint32_t f)
{
	return &d->fills[d->frames[f].fill - 1];
}

/* The block of this byte in this table slot, made on first use (its
 * frames reserved, unwritten); NULL when no block or frame index is left. */
static struct kfillblk *block_get(struct kdom *d, uint8_t byte, unsigned slot,
				  uint64_t hash)
{
	struct kfillblk *free_blk = NULL;
	uint32_t first, i;
	unsigned b;

	for (b = 0; b < KSM_FILL_BLOCKS; b++) {
		struct kfillblk *blk = &d->fills[b];

		if (blk->byte == byte && blk->slot == slot && blk->byte)
			return blk;
		if (!blk->byte && !free_blk)
			free_blk = blk;
	}
	if (!free_blk || kframe_reserve(d, KSM_FILL_RUN, &first) != 0)
		return NULL;
	*free_blk = (struct kfillblk){ .byte = byte, .slot = (uint8_t)slot,
				       .first = first, .hash = hash };
	for (i = 0; i < KSM_FILL_RUN; i++) {
		d->frames[first + i].used = KF_FILLRES;
		d->frames[first + i].fill = (uint16_t)(free_blk - d->fills + 1);
	}
	return free_blk;
}

uint32_t kfill_frame(struct ksm *k, struct kdom *d, uint8_t byte,
		     unsigned slot, uint64_t pfn, uint64_t *hash)
{
	uint8_t buf[KSM_PAGE];
	struct kfillblk *blk;
	unsigned b;

	for (b = 0; b < KSM_FILL_BLOCKS; b++)
		if (d->fills[b].byte == byte && d->fills[b].slot == slot)
			break;
	if (b < KSM_FILL_BLOCKS) {
		blk = &d->fills[b];
	} else {
		memset(buf, byte, sizeof(buf));
		blk = block_get(d, byte, slot, ksm_hash_page(k, buf));
		if (!blk)
			return UINT32_MAX;
	}
	*hash = blk->hash;
	return blk->first + (uint32_t)(pfn % KSM_FILL_RUN);
}

/* Does the page at idx +- 1 hold the same fill byte?  Only a neighbour
 * that is present is read (a hole of the base memfd would be faulted in);
 * one that already maps this block counts without reading it. */
static bool neighbour_fill(struct ksm *k, struct ksm_vm *vm, uint32_t r,
			   uint32_t idx, uint8_t byte)
{
	struct ksmvm_range *rg = &vm->r[r];
	uint32_t own = kpg_own(&rg->pg[idx]);
	hv_pstate_t st;
	uint64_t e;

	if (hv_ps_state(own) == HV_PAGE_FRAME) {
		uint32_t f = hv_ps_frame(own);

		return f < vm->dom->hwm && vm->dom->frames[f].fill &&
		       block_of(vm->dom, f)->byte == byte;
	}
	st = kmap_get(vm, kpage_gpa(vm, r, idx) / KSM_PAGE);
	if (hv_ps_state(st) != HV_PAGE_PRIVATE ||
	    (hv_ps_flags(st) & (HV_PF_BUSY | HV_PF_DEVICE)))
		return false;
	if (kpm_cached(k, vm, r, idx, &e, false) != 0 || !(e & PM_PRESENT))
		return false;
	return kfill_byte(kpage_hva(vm, r, idx)) == byte;
}

bool kfill_in_run(struct ksm *k, struct ksm_vm *vm, uint32_t r, uint32_t idx,
		  uint8_t byte)
{
	return (idx > 0 && neighbour_fill(k, vm, r, idx - 1, byte)) ||
	       (idx + 1 < vm->r[r].npages &&
		neighbour_fill(k, vm, r, idx + 1, byte));
}

/* A reserved frame gets its first user in this batch: write the byte. */
int kfill_write(struct ksm *k, struct kdom *d, uint32_t f, const void *buf,
		int node)
{
	struct kframe *fr = &d->frames[f];
	struct kfillblk *blk = block_of(d, f);
	int ret;

	if (fr->used == KF_LIVE)
		return 0;
	if (fr->used != KF_FILLRES)
		return -EINVAL;
	ret = kframe_write(k, d, f, buf, node);
	if (ret)
		return ret;
	fr->used = KF_LIVE;
	fr->refs = 0;
	fr->hash = blk->hash;
	fr->slot = blk->slot;
	fr->node = (int16_t)node;
	d->frames_used++;
	blk->live++;
	return 0;
}

/* A block with no live frame and no join queued on any of its frames
 * gives its frame indices back. */
static void block_maybe_free(struct kdom *d, struct kfillblk *blk)
{
	uint32_t i;

	if (blk->live)
		return;
	for (i = 0; i < KSM_FILL_RUN; i++)
		if (d->frames[blk->first + i].pending)
			return;   /* a batch still has joins queued on it */
	for (i = 0; i < KSM_FILL_RUN; i++)
		d->frames[blk->first + i] = (struct kframe){ 0 };
	d->frames_nonfree -= KSM_FILL_RUN;
	kframe_trim(d);
	memset(blk, 0, sizeof(*blk));
}

/* The frame has no user left: a hole again, and the block goes with its
 * last live frame. */
void kfill_release(struct kdom *d, uint32_t f)
{
	struct kframe *fr = &d->frames[f];
	struct kfillblk *blk = block_of(d, f);

	fallocate(d->frames_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		  (off_t)f * KSM_PAGE, KSM_PAGE);
	fr->used = KF_FILLRES;
	fr->refs = 0;
	d->frames_used--;
	blk->live--;
	block_maybe_free(d, blk);
}

/* After a batch's commit of a fill op (claimed or not): a frame it wrote
 * that nobody joined (every page changed before the paused compare) goes
 * back, and so does a block that nobody uses. */
void kfill_settle(struct kdom *d, uint32_t f)
{
	struct kframe *fr = &d->frames[f];

	if (fr->pending)
		return;
	if (fr->used == KF_LIVE && !fr->refs)
		kfill_release(d, f);
	else if (fr->used == KF_FILLRES)
		block_maybe_free(d, block_of(d, f));
}
