/*
 * linux_boot.h - hv-core internal: booting Linux through the x86 boot
 * protocol (Documentation/arch/x86/boot.rst).
 *
 * Owns: parsing and validating a bzImage or an uncompressed vmlinux ELF,
 * placing kernel, initrd, cmdline and a boot_params "zero page" with an
 * e820 map into guest RAM, and the initial vCPU/VM state (in-kernel irqchip,
 * PIT, CPUID, registers) a Linux guest needs.  Only vm.c and vcpu.c use it.
 *
 * Implemented by linux_boot.c (images, boot_params, e820, boot page tables)
 * and linux_cpu.c (VM and vCPU state).
 */
#ifndef DENSEVM_LINUX_BOOT_H
#define DENSEVM_LINUX_BOOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hv.h"

/*
 * The cmdline used when linux_boot_cfg.cmdline is NULL: linux_default_cmdline()
 * is the base line, plus the emulation line on a host whose KVM is the
 * kvm_pvm software backend (/sys/module/kvm_pvm).  There KVM_SET_CPUID2 has
 * no effect and guest CPL0 code runs in KVM's instruction emulator, which
 * has no cmpxchg16b (SLUB uses it when CX16 is set) and no xsave/xrstor (the
 * FPU code uses them; clearing xsave also clears avx and the rest that
 * depend on it).  Measured here: the banner and e820 map come out with or
 * without the list; either way the kernel then stops about a minute in at
 * int3_selftest(), because the emulator cannot deliver INT3 in long mode.
 * acpi=off pci=off: the VM has no ACPI tables and no PCI host bridge.
 * Hardware hosts keep every CPU feature.
 */
#define LINUX_BOOT_CMDLINE_BASE \
	"console=ttyS0,115200 earlyprintk=serial,ttyS0,115200 " \
	"acpi=off pci=off tsc=reliable panic=-1 loglevel=8"
#define LINUX_BOOT_CMDLINE_EMULATED " clearcpuid=cx16,xsave"

const char *linux_default_cmdline(void);

/*
 * Guest-physical layout of what the loader writes besides kernel and initrd.
 * All of it lies below 64 KiB, which Linux keeps reserved (the whole first
 * MiB since 5.13, the first 64 KiB before), so the e820 map can call it
 * usable RAM and the kernel never reuses it while it still needs it.
 */
#define LINUX_GDT_GPA          0x1000ULL  /* boot GDT: 0x10 code, 0x18 data */
#define LINUX_PML4_GPA         0x2000ULL  /* identity map of [0, 4 GiB) */
#define LINUX_PDPT_GPA         0x3000ULL
#define LINUX_PD_GPA           0x4000ULL  /* 4 pages, 2 MiB mappings */
#define LINUX_STACK_TOP_GPA    0x9000ULL  /* a scratch stack page below */
#define LINUX_BOOT_PARAMS_GPA  0x9000ULL  /* the zero page */
#define LINUX_CMDLINE_GPA      0xa000ULL  /* up to LINUX_CMDLINE_MAX bytes */
#define LINUX_CMDLINE_MAX      0x6000ULL
#define LINUX_BZIMAGE_GPA      0x100000ULL /* protected-mode part of a bzImage */

struct linux_boot_cfg {
	const char *kernel;            /* bzImage or vmlinux ELF path */
	const char *initrd;            /* may be NULL */
	const char *cmdline;           /* NULL = linux_default_cmdline() */
	const struct hv_ram_range *ranges; /* guest RAM, host-mapped */
	unsigned nranges;
};

/* Where and how the boot CPU starts. */
struct linux_entry {
	uint64_t rip;
	uint64_t rsi;          /* GPA of boot_params */
	bool     long_mode;    /* 64-bit entry (vmlinux ELF, or bzImage startup_64) */
	uint64_t cr3;          /* long mode: GPA of identity page tables */
	uint64_t gdt_gpa;      /* GPA of the boot GDT */
	/* What was placed where (for logs and tests). */
	uint64_t kernel_start; /* lowest GPA the kernel occupies */
	uint64_t kernel_end;   /* first GPA past it (bzImage: past init_size) */
	uint64_t initrd_gpa;   /* 0 when there is no initrd */
	uint64_t initrd_size;
};

/* Loads the kernel into guest RAM.  Checks magic, class, machine and the
 * boot protocol version; returns 0 or -errno with one line in err naming the
 * file and what is wrong with it.  Guest RAM must include GPA 0 (the boot
 * structures live below 64 KiB). */
int linux_load(const struct linux_boot_cfg *cfg, struct linux_entry *out,
	       char *err, size_t errlen);

/* VM-wide state a Linux guest needs: TSS/identity-map addresses, in-kernel
 * irqchip and PIT.  Called once, before any vCPU is created.  The addresses
 * used lie in the PCI hole (no memslot may cover 0xfeffc000..0xfeffffff). */
int linux_vm_init(int vm_fd, char *err, size_t errlen);

/* Sets CPUID (KVM_GET_SUPPORTED_CPUID, CX16 masked; densevm's leaves with
 * the VM's HV_FEAT_* bits), MSRs, sregs and regs of one vCPU.  Only cpu 0
 * starts at the entry; others wait for INIT/SIPI. */
int linux_vcpu_init(int kvm_fd, int vcpu_fd, unsigned cpu, uint32_t features,
		    const struct linux_entry *e, char *err, size_t errlen);

#endif
