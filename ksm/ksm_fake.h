/*
 * ksm_fake.h - memfd- or anonymous-memory-backed fake VMs implementing
 * struct ksm_vm_ops, for ksm's unit tests and benchmarks without /dev/kvm.
 * Not part of ksm's API for the rest of densevm (that is ksm.h).
 *
 * A fake VM is RAM ranges in this process (MAP_PRIVATE of a base memfd at
 * offset GPA, or anonymous), a page-state map, a dirty log, and "vCPUs":
 * any thread that brackets its guest accesses with ksm_fake_vcpu_enter()
 * and ksm_fake_vcpu_exit().  Pause waits until no thread is inside such a
 * bracket and keeps new ones out until resume, as hv_vm_pause does for
 * real vCPUs.  Writes made through ksm_fake_write() are dirty-logged the
 * way KVM logs guest writes.
 */
#ifndef DENSEVM_KSM_FAKE_H
#define DENSEVM_KSM_FAKE_H

#include "ksm.h"

struct ksm_fake_vm;

struct ksm_fake_range {
	uint64_t gpa, len;   /* page aligned */
};

/* base_fd >= 0: RAM is MAP_PRIVATE of it at offset GPA (grown to cover
 * the RAM); -1: anonymous.  At most 8 ranges.  Returns 0 or -errno. */
int ksm_fake_vm_create(const char *name, int base_fd,
		       const struct ksm_fake_range *r, unsigned n,
		       struct ksm_fake_vm **out);
void ksm_fake_vm_destroy(struct ksm_fake_vm *vm);

extern const struct ksm_vm_ops ksm_fake_ops;   /* ctx = struct ksm_fake_vm * */
/* The same with ops->zero, so that ksm may isolate pages a VM never wrote
 * from base[g] (ksm/isolate.c), as it does for real VMs. */
extern const struct ksm_vm_ops ksm_fake_ops_zero;

/* Registers the VM's RAM for write-protect (hv-core's wp.c): 0, or
 * -errno and why when this kernel or process cannot.  With
 * ksm_fake_ops_wp, ksm then guards its batches by write-protecting the
 * pages instead of pausing, and a writer thread's store into a protected
 * page waits in the kernel, as a vCPU's does. */
int ksm_fake_vm_enable_wp(struct ksm_fake_vm *vm, char *err, size_t errlen);
/* ksm_fake_ops_zero with write-protect. */
extern const struct ksm_vm_ops ksm_fake_ops_wp;

/* Host pointer of a GPA, NULL outside RAM. */
uint8_t *ksm_fake_hva(struct ksm_fake_vm *vm, uint64_t gpa);
hv_pstate_t ksm_fake_page_state(struct ksm_fake_vm *vm, uint64_t gpa);

/* vCPU side. */
void ksm_fake_vcpu_enter(struct ksm_fake_vm *vm);
void ksm_fake_vcpu_exit(struct ksm_fake_vm *vm);
/* Marks [gpa, gpa+len) dirty; call after the write, inside the bracket. */
void ksm_fake_mark_dirty(struct ksm_fake_vm *vm, uint64_t gpa, uint64_t len);
/* enter + memcpy + mark dirty + exit. */
void ksm_fake_write(struct ksm_fake_vm *vm, uint64_t gpa, const void *src,
		    size_t len);
/* Fills whole pages with a pattern derived from seed (0 = zeros). */
void ksm_fake_fill_pages(struct ksm_fake_vm *vm, uint64_t gpa,
			 uint64_t npages, uint64_t seed);
void ksm_fake_pattern(void *page, uint64_t seed);

uint64_t ksm_fake_pauses(struct ksm_fake_vm *vm);
/* VMAs overlapping the VM's RAM (lines of /proc/self/maps). */
long ksm_fake_vma_count(struct ksm_fake_vm *vm);

#endif
