/*
 * ksm_hv.c - the ksm VM backend over hv-core (ctx = struct hv_vm *).
 * The only file of ksm/ that calls hv_* functions.
 */
#include "ksm.h"

static const char *hvb_name(void *ctx)
{
	return hv_vm_name(ctx);
}

static const struct hv_ram_range *hvb_ranges(void *ctx, unsigned *n)
{
	return hv_vm_ranges(ctx, n);
}

static hv_pstate_t *hvb_pagemap(void *ctx, uint64_t *npages)
{
	return hv_vm_pagemap(ctx, npages);
}

static bool hvb_page_cas(void *ctx, uint64_t pfn, hv_pstate_t old,
			 hv_pstate_t new_)
{
	return hv_page_cas(ctx, pfn, old, new_);
}

static uint64_t hvb_pause(void *ctx)
{
	return hv_vm_pause(ctx);
}

static void hvb_resume(void *ctx)
{
	hv_vm_resume(ctx);
}

static int hvb_replace(void *ctx, uint64_t gpa, uint64_t len, int memfd,
		       uint64_t off)
{
	return hv_vm_replace_backing(ctx, gpa, len, memfd, off);
}

static int hvb_discard(void *ctx, uint64_t gpa, uint64_t len)
{
	return hv_vm_discard(ctx, gpa, len);
}

static unsigned hvb_discard_many(void *ctx, const struct hv_span *s,
				 unsigned n, int *err)
{
	return hv_vm_discard_many(ctx, s, n, err);
}

static int hvb_dirty_enable(void *ctx, bool on)
{
	return hv_dirty_enable(ctx, HV_DIRTY_KSM, on);
}

static int hvb_dirty_fetch(void *ctx, unsigned range, uint64_t *bitmap)
{
	return hv_dirty_fetch(ctx, HV_DIRTY_KSM, range, bitmap);
}

static int hvb_base_memfd(void *ctx)
{
	return hv_vm_base_memfd(ctx);
}

static bool hvb_off_base(void *ctx, uint64_t gpa)
{
	return hv_vm_page_off_base(ctx, gpa);
}

static int hvb_zero(void *ctx, uint64_t gpa, uint64_t len)
{
	return hv_vm_zero(ctx, gpa, len);
}

static bool hvb_anon_backed(void *ctx, uint64_t gpa)
{
	return hv_vm_page_anon(ctx, gpa);
}

static int hvb_wp_protect(void *ctx, const struct hv_span *s, unsigned n)
{
	return hv_vm_wp_protect(ctx, s, n);
}

static int hvb_wp_unprotect(void *ctx, const struct hv_span *s, unsigned n,
			    struct hv_wp_waits *w)
{
	return hv_vm_wp_unprotect(ctx, s, n, w);
}

const struct ksm_vm_ops ksm_hv_ops = {
	.name = hvb_name,
	.ranges = hvb_ranges,
	.pagemap = hvb_pagemap,
	.page_cas = hvb_page_cas,
	.pause = hvb_pause,
	.resume = hvb_resume,
	.replace_backing = hvb_replace,
	.discard = hvb_discard,
	.discard_many = hvb_discard_many,
	.dirty_enable = hvb_dirty_enable,
	.dirty_fetch = hvb_dirty_fetch,
	.base_memfd = hvb_base_memfd,
	.off_base = hvb_off_base,
	.zero = hvb_zero,
	.anon_backed = hvb_anon_backed,
	.wp_protect = hvb_wp_protect,
	.wp_unprotect = hvb_wp_unprotect,
};
