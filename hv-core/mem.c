/*
 * mem.c - guest RAM: its GPA layout around the PCI hole, the host mapping
 * (private anonymous, or MAP_PRIVATE of a sharing domain's base memfd at
 * offset == GPA) and the KVM memslots.  What backs each page afterwards
 * (replace, restore, zero, discard) is backing.c's; the dirty log is
 * dirty.c's.
 *
 * The whole GPA span [0, gpa_end) is one VA reservation, so hva = ram + gpa
 * for every RAM page and the PCI hole stays PROT_NONE.  THP is disabled on
 * guest RAM: sharing and ballooning work on 4 KiB pages, and a huge page
 * would have to be split by the first discard anyway.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "vm_internal.h"

#define ALIGN_2M (2ull << 20)

static void layout(struct hv_vm *vm)
{
	uint64_t mem = vm->cfg.mem_bytes;

	vm->nranges = 0;
	if (mem <= HV_PCI_HOLE_START) {
		vm->ranges[vm->nranges++] = (struct hv_ram_range){ 0, mem, NULL, 0 };
	} else {
		vm->ranges[vm->nranges++] =
			(struct hv_ram_range){ 0, HV_PCI_HOLE_START, NULL, 0 };
		vm->ranges[vm->nranges++] = (struct hv_ram_range){
			HV_PCI_HOLE_END, mem - HV_PCI_HOLE_START, NULL, 1 };
	}
	const struct hv_ram_range *last = &vm->ranges[vm->nranges - 1];
	vm->gpa_end = last->gpa + last->len;
}

int mem_setup(struct hv_vm *vm, char *err, size_t errlen)
{
	int fd = vm->cfg.base_memfd;

	layout(vm);
	if (fd >= 0) {
		struct stat st;
		if (fstat(fd, &st) < 0) {
			snprintf(err, errlen, "%s: base memfd: %s", vm->name, strerror(errno));
			return -errno;
		}
		if ((uint64_t)st.st_size < vm->gpa_end &&
		    ftruncate(fd, (off_t)vm->gpa_end) < 0) {
			snprintf(err, errlen, "%s: base memfd: grow to %llu: %s", vm->name,
				 (unsigned long long)vm->gpa_end, strerror(errno));
			return -errno;
		}
	}
	vm->ram_map_len = vm->gpa_end + ALIGN_2M;
	vm->ram_raw = mmap(NULL, vm->ram_map_len, PROT_NONE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (vm->ram_raw == MAP_FAILED) {
		vm->ram_raw = NULL;
		snprintf(err, errlen, "%s: reserve %llu bytes of address space: %s",
			 vm->name, (unsigned long long)vm->gpa_end, strerror(errno));
		return -ENOMEM;
	}
	vm->ram = (uint8_t *)(((uintptr_t)vm->ram_raw + ALIGN_2M - 1) & ~(ALIGN_2M - 1));

	for (unsigned i = 0; i < vm->nranges; i++) {
		struct hv_ram_range *r = &vm->ranges[i];
		int flags = MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE;
		void *p = mmap(vm->ram + r->gpa, r->len, PROT_READ | PROT_WRITE,
			       fd >= 0 ? flags : flags | MAP_ANONYMOUS, fd,
			       fd >= 0 ? (off_t)r->gpa : 0);
		if (p == MAP_FAILED) {
			snprintf(err, errlen, "%s: map guest RAM: %s", vm->name,
				 strerror(errno));
			return -ENOMEM;
		}
		madvise(p, r->len, MADV_NOHUGEPAGE);
		r->hva = p;
	}

	wp_setup(vm);
	if (fd >= 0 && backing_setup(vm) < 0) {
		snprintf(err, errlen, "%s: backing bitmaps: out of memory", vm->name);
		return -ENOMEM;
	}
	vm->npages = vm->gpa_end >> HV_PAGE_SHIFT;
	vm->pagemap = mmap(NULL, vm->npages * sizeof(hv_pstate_t),
			   PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (vm->pagemap == MAP_FAILED) {
		vm->pagemap = NULL;
		snprintf(err, errlen, "%s: page-state map: %s", vm->name, strerror(errno));
		return -ENOMEM;
	}
	if (mem_set_slots(vm) < 0) {
		snprintf(err, errlen, "%s: KVM_SET_USER_MEMORY_REGION: %s", vm->name,
			 strerror(errno));
		return -errno;
	}
	return 0;
}

int mem_set_slots(struct hv_vm *vm)
{
	for (unsigned i = 0; i < vm->nranges; i++) {
		const struct hv_ram_range *r = &vm->ranges[i];
		struct kvm_userspace_memory_region reg = {
			.slot = r->slot,
			.flags = vm->dirty_logging ? KVM_MEM_LOG_DIRTY_PAGES : 0,
			.guest_phys_addr = r->gpa,
			.memory_size = r->len,
			.userspace_addr = (uintptr_t)r->hva,
		};
		if (ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &reg) < 0)
			return -errno;
	}
	return 0;
}

void mem_teardown(struct hv_vm *vm)
{
	dirty_teardown(vm);
	wp_teardown(vm);
	for (unsigned i = 0; i < HV_MAX_RANGES; i++) {
		free(vm->off_base[i]);
		free(vm->anon[i]);
	}
	if (vm->ram_raw)
		munmap(vm->ram_raw, vm->ram_map_len);
	if (vm->pagemap)
		munmap(vm->pagemap, vm->npages * sizeof(hv_pstate_t));
	vm->ram_raw = NULL;
	vm->pagemap = NULL;
}

const struct hv_ram_range *hv_vm_ranges(const struct hv_vm *vm, unsigned *n)
{
	*n = vm->nranges;
	return vm->ranges;
}

uint64_t hv_vm_gpa_end(const struct hv_vm *vm) { return vm->gpa_end; }

void *hv_gpa_to_hva(const struct hv_vm *vm, uint64_t gpa, uint64_t len)
{
	for (unsigned i = 0; i < vm->nranges; i++) {
		const struct hv_ram_range *r = &vm->ranges[i];
		/* written to be overflow-safe for hostile gpa/len */
		if (gpa >= r->gpa && gpa - r->gpa <= r->len &&
		    len <= r->len - (gpa - r->gpa))
			return r->hva + (gpa - r->gpa);
	}
	return NULL;
}

int hv_vm_check_range(struct hv_vm *vm, uint64_t gpa, uint64_t len)
{
	if ((gpa | len) & (HV_PAGE_SIZE - 1) || len == 0)
		return -EINVAL;
	return hv_gpa_to_hva(vm, gpa, len) ? 0 : -ERANGE;
}

long hv_vma_count(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	if (!f)
		return -1;
	long n = 0;
	int c;
	while ((c = getc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}


/* Guest RAM the host holds for the VM now, by mincore over its mappings:
 * exact for anonymous RAM; for a base-memfd mapping it counts the pages
 * the file or the private copies hold at those offsets. */
uint64_t hv_vm_resident_bytes(const struct hv_vm *vm)
{
	uint64_t pages = 0;
	unsigned char vec[4096];
	for (unsigned i = 0; i < vm->nranges; i++) {
		const struct hv_ram_range *r = &vm->ranges[i];
		for (uint64_t off = 0; off < r->len; off += sizeof(vec) << HV_PAGE_SHIFT) {
			uint64_t len = r->len - off;
			if (len > (uint64_t)sizeof(vec) << HV_PAGE_SHIFT)
				len = (uint64_t)sizeof(vec) << HV_PAGE_SHIFT;
			if (mincore((uint8_t *)r->hva + off, len, vec))
				break;
			for (uint64_t k = 0; k < len >> HV_PAGE_SHIFT; k++)
				pages += vec[k] & 1;
		}
	}
	return pages << HV_PAGE_SHIFT;
}
