/*
 * micro_boot.c - starting the micro guest: validating and loading its static
 * ELF, building its identity page tables and boot-info page, and the
 * initial state of each vCPU (64-bit mode at CPL3 with IOPL=3, see
 * ../shared/README.md for why nothing runs at CPL0).
 *
 * Layout (hv_abi.h): boot info at 0x1000, argument pages from 0x2000, page
 * tables from 0x20000, stacks below 0x200000, the image from 0x200000.
 * Everything below the heap is flagged HV_PF_DEVICE in the page-state map.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include "vm_internal.h"

#define MICRO_IMAGE_MAX (64u << 20)
#define PTE_P  0x1ull
#define PTE_RW 0x2ull
#define PTE_US 0x4ull
#define PTE_PS 0x80ull

static int read_file(const char *path, uint8_t **buf, size_t *len,
		     char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -errno;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		close(fd);
		return -EINVAL;
	}
	if (st.st_size > MICRO_IMAGE_MAX) {
		snprintf(err, errlen, "%s: %lld bytes; a micro guest image is at most "
			 "%u MiB", path, (long long)st.st_size, MICRO_IMAGE_MAX >> 20);
		close(fd);
		return -EFBIG;
	}
	*len = (size_t)st.st_size;
	*buf = malloc(*len ? *len : 1);
	ssize_t n = *buf ? pread(fd, *buf, *len, 0) : -1;
	close(fd);
	if (n < 0 || (size_t)n != *len) {
		snprintf(err, errlen, "%s: read failed", path);
		free(*buf);
		return -EIO;
	}
	return 0;
}

/* Checks the ELF header and every program header against the file and the
 * guest's RAM; on success *end is the highest GPA the image occupies. */
static int check_elf(const char *path, const uint8_t *b, size_t len,
		     struct hv_vm *vm, uint64_t *end, char *err, size_t errlen)
{
	const Elf64_Ehdr *eh = (const void *)b;

	if (len < EI_NIDENT || memcmp(b, ELFMAG, SELFMAG) != 0) {
		snprintf(err, errlen, "%s: not an ELF file (bad magic)", path);
		return -ENOEXEC;
	}
	if (b[EI_CLASS] != ELFCLASS64) {
		snprintf(err, errlen, "%s: ELF class %u, the micro guest must be "
			 "ELFCLASS64", path, b[EI_CLASS]);
		return -ENOEXEC;
	}
	if (len < sizeof(*eh)) {
		snprintf(err, errlen, "%s: truncated ELF header", path);
		return -ENOEXEC;
	}
	if (b[EI_DATA] != ELFDATA2LSB || eh->e_machine != EM_X86_64) {
		snprintf(err, errlen, "%s: ELF machine %u, need x86-64 (%u), little "
			 "endian", path, eh->e_machine, EM_X86_64);
		return -ENOEXEC;
	}
	if (eh->e_type != ET_EXEC) {
		snprintf(err, errlen, "%s: ELF type %u, need ET_EXEC (static, "
			 "non-PIE)", path, eh->e_type);
		return -ENOEXEC;
	}
	if (eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phnum == 0 ||
	    eh->e_phoff > len ||
	    (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > len - eh->e_phoff) {
		snprintf(err, errlen, "%s: bad or truncated program headers", path);
		return -ENOEXEC;
	}
	const Elf64_Phdr *ph = (const void *)(b + eh->e_phoff);
	bool entry_ok = false;
	*end = 0;
	for (unsigned i = 0; i < eh->e_phnum; i++) {
		if (ph[i].p_type != PT_LOAD)
			continue;
		uint64_t pa = ph[i].p_paddr, msz = ph[i].p_memsz;
		if (ph[i].p_filesz > msz || ph[i].p_offset > len ||
		    ph[i].p_filesz > len - ph[i].p_offset) {
			snprintf(err, errlen, "%s: segment %u is truncated or larger "
				 "than the file", path, i);
			return -ENOEXEC;
		}
		if (pa < HV_IMAGE_GPA || msz > HV_PCI_HOLE_START ||
		    !hv_gpa_to_hva(vm, pa, msz)) {
			snprintf(err, errlen, "%s: segment %u [0x%llx, +0x%llx) is not "
				 "inside guest RAM above 0x%llx (mem too small?)", path,
				 i, (unsigned long long)pa, (unsigned long long)msz,
				 (unsigned long long)HV_IMAGE_GPA);
			return -ENOEXEC;
		}
		if (eh->e_entry >= ph[i].p_vaddr && eh->e_entry - ph[i].p_vaddr < msz)
			entry_ok = true;
		if (pa + msz > *end)
			*end = pa + msz;
	}
	if (!entry_ok) {
		snprintf(err, errlen, "%s: entry 0x%llx is not in a loadable segment",
			 path, (unsigned long long)eh->e_entry);
		return -ENOEXEC;
	}
	return 0;
}

static void build_page_tables(struct hv_vm *vm)
{
	uint64_t *pml4 = hv_gpa_to_hva(vm, HV_PGTABLE_GPA, HV_PAGE_SIZE);
	uint64_t *pdpt = hv_gpa_to_hva(vm, HV_PGTABLE_GPA + HV_PAGE_SIZE, HV_PAGE_SIZE);
	uint64_t ngib = (vm->gpa_end + (1ull << 30) - 1) >> 30;

	pml4[0] = (HV_PGTABLE_GPA + HV_PAGE_SIZE) | PTE_P | PTE_RW | PTE_US;
	for (uint64_t g = 0; g < ngib; g++) {
		uint64_t pd_gpa = HV_PGTABLE_GPA + (2 + g) * HV_PAGE_SIZE;
		uint64_t *pd = hv_gpa_to_hva(vm, pd_gpa, HV_PAGE_SIZE);
		pdpt[g] = pd_gpa | PTE_P | PTE_RW | PTE_US;
		for (uint64_t j = 0; j < 512; j++) {
			uint64_t gpa = (g << 30) | (j << 21);
			if (hv_gpa_to_hva(vm, gpa, 2ull << 20))
				pd[j] = gpa | PTE_P | PTE_RW | PTE_US | PTE_PS;
		}
	}
}

int micro_load(struct hv_vm *vm, char *err, size_t errlen)
{
	uint8_t *img = NULL;
	size_t len = 0;
	uint64_t end;
	const char *path = vm->image;

	if (vm->gpa_end > (uint64_t)HV_PGTABLE_MAXPD << 30) {
		snprintf(err, errlen, "%s: mem: a micro guest spans at most %u GiB of "
			 "guest-physical space", vm->name, HV_PGTABLE_MAXPD);
		return -EINVAL;
	}
	if (strlen(vm->cmdline ? vm->cmdline : "") >= HV_ARGS_MAX) {
		snprintf(err, errlen, "%s: args: longer than %u bytes", vm->name,
			 HV_ARGS_MAX - 1);
		return -EINVAL;
	}
	int rc = read_file(path, &img, &len, err, errlen);
	if (rc)
		return rc;
	rc = check_elf(path, img, len, vm, &end, err, errlen);
	if (rc) {
		free(img);
		return rc;
	}
	uint64_t heap = (end + (2ull << 20) - 1) & ~((2ull << 20) - 1);
	if (!hv_gpa_to_hva(vm, heap, 2ull << 20)) {
		snprintf(err, errlen, "%s: mem: %llu MiB leaves no heap after the "
			 "image (needs more than %llu MiB)", vm->name,
			 (unsigned long long)(vm->cfg.mem_bytes >> 20),
			 (unsigned long long)(heap >> 20));
		free(img);
		return -EINVAL;
	}

	/* Base-backed RAM may already hold a domain's shared content: clear
	 * everything the guest expects to find zero below the heap.  Mapped
	 * over with zeros (hv_vm_zero), not written: a memset would give
	 * every VM ~1000 private zero pages that nobody can share (all of
	 * this range is HV_PF_DEVICE, which ksm leaves alone). */
	rc = hv_vm_zero(vm, 0, heap);
	if (rc) {
		snprintf(err, errlen, "%s: zeroing the low %llu MiB: %s", vm->name,
			 (unsigned long long)(heap >> 20), strerror(-rc));
		free(img);
		return rc;
	}
	const Elf64_Ehdr *eh = (const void *)img;
	const Elf64_Phdr *ph = (const void *)(img + eh->e_phoff);
	for (unsigned i = 0; i < eh->e_phnum; i++)
		if (ph[i].p_type == PT_LOAD)
			memcpy(vm->ram + ph[i].p_paddr, img + ph[i].p_offset,
			       ph[i].p_filesz);
	vm->micro_entry = eh->e_entry;
	free(img);

	build_page_tables(vm);

	struct hv_bootinfo *bi = hv_gpa_to_hva(vm, HV_BOOTINFO_GPA, sizeof(*bi));
	bi->magic = HV_BOOTINFO_MAGIC;
	bi->version = HV_BOOTINFO_VERSION;
	bi->ncpus = vm->ncpus;
	bi->features = vm->cfg.features;
	bi->ram_bytes = vm->cfg.mem_bytes;
	bi->heap_start = heap;
	bi->nranges = vm->nranges;
	for (unsigned i = 0; i < vm->nranges; i++)
		bi->ranges[i] = (struct hv_memrange){ vm->ranges[i].gpa, vm->ranges[i].len };
	snprintf(bi->args, sizeof(bi->args), "%s", vm->cmdline ? vm->cmdline : "");

	for (uint64_t p = 0; p < heap >> HV_PAGE_SHIFT; p++)
		vm->pagemap[p] = hv_ps_make(HV_PAGE_PRIVATE, HV_PF_DEVICE, 0);
	return 0;
}

static void seg(struct kvm_segment *s, uint16_t sel, uint8_t type, bool code)
{
	*s = (struct kvm_segment){
		.base = 0, .limit = 0xffffffff, .selector = sel, .type = type,
		.present = 1, .dpl = 3, .db = code ? 0 : 1, .s = 1,
		.l = code ? 1 : 0, .g = 1,
	};
}

int micro_vcpu_init(struct hv_vm *vm, struct hv_vcpu *v, char *err, size_t errlen)
{
	struct kvm_sregs sr;
	struct kvm_regs r;
	struct kvm_fpu fpu;

	v->argpage = hv_gpa_to_hva(vm, HV_ARGPAGE_GPA + v->idx * HV_PAGE_SIZE,
				   HV_PAGE_SIZE);
	if (ioctl(v->fd, KVM_GET_SREGS, &sr) < 0)
		goto fail;
	seg(&sr.cs, 0x2b, 0xb, true);
	seg(&sr.ss, 0x23, 0x3, false);
	sr.ds = sr.es = sr.fs = sr.gs = sr.ss;
	sr.tr = (struct kvm_segment){ .limit = 0x67, .selector = 0x30, .type = 0xb,
				      .present = 1 };
	sr.ldt = (struct kvm_segment){ .selector = 0, .type = 0x2, .unusable = 1 };
	/* no IDT: any exception escalates to a triple fault (KVM_EXIT_SHUTDOWN) */
	sr.gdt.base = 0;
	sr.gdt.limit = 0;
	sr.idt.base = 0;
	sr.idt.limit = 0;
	sr.cr0 = 0x80050033;            /* PG WP NE ET MP PE */
	sr.cr4 = 0x20 | 0x200 | 0x400;  /* PAE OSFXSR OSXMMEXCPT: SSE at CPL3 */
	sr.cr3 = HV_PGTABLE_GPA;
	sr.efer = 0x500;                /* LME LMA */
	if (ioctl(v->fd, KVM_SET_SREGS, &sr) < 0)
		goto fail;

	memset(&fpu, 0, sizeof(fpu));
	fpu.fcw = 0x37f;
	fpu.mxcsr = 0x1f80;
	if (ioctl(v->fd, KVM_SET_FPU, &fpu) < 0)
		goto fail;

	memset(&r, 0, sizeof(r));
	r.rip = vm->micro_entry;
	r.rsp = HV_STACK_TOP_GPA - v->idx * HV_STACK_SIZE;
	r.rdi = v->idx;
	r.rflags = 0x3002;              /* IOPL=3: `out` works at CPL3 */
	if (ioctl(v->fd, KVM_SET_REGS, &r) < 0)
		goto fail;

	if (v->idx == 0) {
		struct hv_bootinfo *bi = hv_gpa_to_hva(vm, HV_BOOTINFO_GPA, sizeof(*bi));
		int khz = ioctl(v->fd, KVM_GET_TSC_KHZ, 0);
		bi->tsc_khz = khz > 0 ? (uint64_t)khz : 0;
	}
	return 0;
fail:
	snprintf(err, errlen, "%s: vcpu%u: set up registers: %s", vm->name, v->idx,
		 strerror(errno));
	return -errno;
}
