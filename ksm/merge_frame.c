/*
 * merge_frame.c - the cross-GPA merge path: frames of a per-domain memfd.
 *
 * A frame holds one shared content; guest pages map it MAP_PRIVATE (the
 * kernel copy-on-writes a guest write).  Invariants, checked by
 * ksm_self_check():
 *   - a LIVE frame has refs > 0, refs == the number of pages in state
 *     FRAME naming it over every VM of the domain, and one stable node
 *     (a base frame, base_frame.c, may have refs == 0 while pages at its
 *     own GPA share base[g]);
 *   - a FREE frame is a hole in the memfd (punched when it lost its last
 *     user) and no page names it;
 *   - a PENDING frame exists only inside a batch flush.
 * Allocation is next-fit from a cursor, so consecutive new frames of one
 * batch get consecutive indices and a run of duplicate pages maps a run
 * of frames with one mmap (batch.c coalesces them).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "internal.h"

#define FRAMES_FILE_STEP (16384u)   /* grow the memfd 64 MiB at a time */

static int frames_grow(struct kdom *d, uint32_t need)
{
	uint64_t pages;
	uint32_t cap;
	struct kframe *nf;

	if (need > d->frames_cap) {
		cap = d->frames_cap ? d->frames_cap : 1024;
		while (cap < need)
			cap *= 2;
		nf = realloc(d->frames, (size_t)cap * sizeof(*nf));
		if (!nf)
			return -ENOMEM;
		memset(nf + d->frames_cap, 0,
		       (size_t)(cap - d->frames_cap) * sizeof(*nf));
		d->frames = nf;
		d->frames_cap = cap;
	}
	if (need > d->frames_file_pages) {
		pages = ((uint64_t)need + FRAMES_FILE_STEP - 1) /
			FRAMES_FILE_STEP * FRAMES_FILE_STEP;
		if (ftruncate(d->frames_fd, (off_t)(pages * KSM_PAGE)) != 0)
			return -errno;
		d->frames_file_pages = pages;
	}
	return 0;
}

/* A free frame index, marked PENDING; UINT32_MAX when none is left. */
uint32_t kframe_alloc(struct kdom *d)
{
	uint32_t f, i;

	if (d->frames_nonfree < d->hwm) {
		/* next-fit over the holes, starting at the cursor */
		for (i = 0; i < d->hwm; i++) {
			f = (d->cursor + i) % d->hwm;
			if (d->frames[f].used == KF_FREE)
				goto found;
		}
	}
	if (d->hwm > HV_PS_FRAME_MAX || frames_grow(d, d->hwm + 1) != 0)
		return UINT32_MAX;
	f = d->hwm++;
found:
	memset(&d->frames[f], 0, sizeof(d->frames[f]));
	d->frames[f].used = KF_PENDING;
	d->frames_nonfree++;
	d->cursor = f + 1;
	return f;
}

/* n consecutive frame indices at the top, reserved (KF_FILLRES) for a
 * fill block; their memfd pages stay holes until written. */
int kframe_reserve(struct kdom *d, uint32_t n, uint32_t *first)
{
	uint32_t i;
	int ret;

	if ((uint64_t)d->hwm + n > HV_PS_FRAME_MAX)
		return -ENOSPC;
	ret = frames_grow(d, d->hwm + n);
	if (ret)
		return ret;
	*first = d->hwm;
	for (i = 0; i < n; i++) {
		memset(&d->frames[d->hwm + i], 0, sizeof(d->frames[0]));
		d->frames[d->hwm + i].used = KF_FILLRES;
	}
	d->hwm += n;
	d->frames_nonfree += n;
	return 0;
}

/* The high-water mark drops over free frames at the top. */
void kframe_trim(struct kdom *d)
{
	while (d->hwm && d->frames[d->hwm - 1].used == KF_FREE)
		d->hwm--;
	if (d->cursor > d->hwm)
		d->cursor = d->hwm;
}

/* Back to FREE and a hole: nobody maps it.  A base frame's page of the
 * frames memfd was never written; base[g] is the caller's (kbase_left). */
void kframe_release(struct kdom *d, uint32_t f)
{
	struct kframe *fr = &d->frames[f];

	if (fr->bpfn) {
		d->base_frame[fr->bpfn - 1] = 0;
		d->bframes--;
	} else {
		fallocate(d->frames_fd, FALLOC_FL_PUNCH_HOLE |
			  FALLOC_FL_KEEP_SIZE, (off_t)f * KSM_PAGE, KSM_PAGE);
	}
	memset(fr, 0, sizeof(*fr));
	d->frames_nonfree--;
	if (f + 1 == d->hwm)
		kframe_trim(d);
}

int kframe_write(struct ksm *k, struct kdom *d, uint32_t f, const void *buf,
		 int node)
{
	ssize_t n;

	knuma_prefer(k, node);
	n = pwrite(d->frames_fd, buf, KSM_PAGE, (off_t)f * KSM_PAGE);
	knuma_unprefer(k, node);
	return n == KSM_PAGE ? 0 : -EIO;
}

int kframe_read(struct kdom *d, uint32_t f, void *buf)
{
	const uint8_t *p;

	if (d->frames[f].bpfn) {
		if (!(p = kbase_ptr(d, d->frames[f].bpfn - 1)))
			return -EIO;
		memcpy(buf, p, KSM_PAGE);
		return 0;
	}
	return pread(d->frames_fd, buf, KSM_PAGE, (off_t)f * KSM_PAGE) ==
	       KSM_PAGE ? 0 : -EIO;
}

/* After a batch: the new frame has refs users (0 = nobody matched). */
void kframe_commit_new(struct ksm *k, struct kdom *d, uint32_t f,
		       uint64_t hash, unsigned slot, int node, unsigned refs)
{
	struct kframe *fr = &d->frames[f];
	struct knode *n;

	(void)k;
	if (refs == 0) {
		kframe_release(d, f);
		return;
	}
	fr->hash = hash;
	fr->refs = refs;
	fr->node = (int16_t)node;
	fr->slot = (uint8_t)slot;
	fr->used = KF_LIVE;
	d->frames_used++;
	/* without a node the frame still works; it only takes no joins */
	n = calloc(1, sizeof(*n));
	if (n) {
		n->hash = hash;
			n->slot = (uint8_t)slot;
		n->frame = f;
		fr->sn = n;
		ktab_add(d->stable[slot], n);
	}
}

void kframe_ref(struct kdom *d, uint32_t f)
{
	d->frames[f].refs++;
}

/* A page stopped naming the frame; the last one frees it.  A base frame
 * lives on while pages at its own GPA share base[g] (base_refs). */
void kframe_unref(struct ksm *k, struct kdom *d, uint32_t f)
{
	struct kframe *fr;
	uint64_t g = UINT64_MAX;

	if (f >= d->hwm || d->frames[f].used != KF_LIVE)
		return;
	fr = &d->frames[f];
	if (--fr->refs)
		return;
	if (fr->fill) {
		kfill_release(d, f);
		return;
	}
	if (fr->bpfn) {
		g = fr->bpfn - 1;
		if (d->base_refs[g])
			return;
		d->bframes_alone--;
	}
	if (fr->sn)
		ktab_del(k, d->stable[fr->slot], fr->sn);
	d->frames_used--;
	kframe_release(d, f);
	if (g != UINT64_MAX)
		kbase_left(k, d, g, NULL);
}

void kframe_loc(const struct kdom *d, uint32_t f, int *fd, uint64_t *off)
{
	if (d->frames[f].bpfn) {
		*fd = d->base_fd;
		*off = (d->frames[f].bpfn - 1) * KSM_PAGE;
	} else {
		*fd = d->frames_fd;
		*off = (uint64_t)f * KSM_PAGE;
	}
}
