/*
 * pagemap.c - the per-page state map of guest-physical memory: one 32-bit
 * word per 4 KiB page (encoding in hv.h).  It is a lazily populated
 * anonymous mapping, so a VM whose pages never change state pays nothing
 * for it; all updates are single-word atomics, so readers need no lock.
 */
#include "vm_internal.h"

hv_pstate_t *hv_vm_pagemap(const struct hv_vm *vm, uint64_t *npages)
{
	if (npages)
		*npages = vm->npages;
	return vm->pagemap;
}

hv_pstate_t hv_page_get(const struct hv_vm *vm, uint64_t pfn)
{
	if (pfn >= vm->npages)
		return HV_PAGE_PRIVATE;
	return __atomic_load_n(&vm->pagemap[pfn], __ATOMIC_ACQUIRE);
}

bool hv_page_cas(struct hv_vm *vm, uint64_t pfn, hv_pstate_t old,
		 hv_pstate_t new)
{
	if (pfn >= vm->npages)
		return false;
	return __atomic_compare_exchange_n(&vm->pagemap[pfn], &old, new, false,
					   __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

void hv_vm_page_counts(const struct hv_vm *vm, uint64_t counts[8])
{
	for (int i = 0; i < 8; i++)
		counts[i] = 0;
	for (unsigned r = 0; r < vm->nranges; r++) {
		uint64_t first = vm->ranges[r].gpa >> HV_PAGE_SHIFT;
		uint64_t n = vm->ranges[r].len >> HV_PAGE_SHIFT;
		for (uint64_t p = first; p < first + n; p++)
			counts[hv_ps_state(__atomic_load_n(&vm->pagemap[p],
							   __ATOMIC_RELAXED))]++;
	}
}
