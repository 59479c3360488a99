/*
 * zero.c - when a zero page may simply be discarded.
 *
 * A discard (MADV_DONTNEED) makes the page read what lies under the
 * private mapping: zeros for anonymous RAM, base[g] for base-backed RAM,
 * and the frame for a page that was ever remapped to the frames memfd.
 * So a zero page is discarded only when that is zero: anonymous RAM, a
 * base page known to be a hole, or a base-backed page that hv-core says
 * is mapped from anonymous memory (hv_vm_zero's), and never a page ksm
 * remapped.  Being off base is not enough: a page hv-core wrongly thought
 * off base once had its zeros discarded onto base[g]'s data.  Other zero
 * pages take the content path (a shared zero frame or base page).  The
 * discard itself runs in a paused batch (batch.c) like any merge: the
 * page is verified zero while the VM is paused, right before it.
 * Discarded pages are state ZERO and counted in zero_pages, not in
 * pages_sharing.
 */
#include "internal.h"

bool kzero_discardable(const struct ksm_vm *vm, uint32_t r, uint32_t idx)
{
	if (vm->r[r].pg[idx].pflags & KP_REMAPPED)
		return false;
	if (vm->anon)
		return true;
	if (!vm->uses_base)
		return false;   /* some other memfd we know nothing of */
	if (kpage_off_base(vm, r, idx))   /* not KP_REMAPPED */
		return vm->ops->anon_backed &&
		       vm->ops->anon_backed(vm->ctx, kpage_gpa(vm, r, idx));
	return !kbase_has_data(vm->dom, kpage_gpa(vm, r, idx) / KSM_PAGE);
}
