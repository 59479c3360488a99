/*
 * linux_boot.h - hv-core internal: booting Linux through the x86 boot
 * protocol (Documentation/arch/x86/boot.rst).
 *
 * Owns: parsing and validating a bzImage or an uncompressed vmlinux ELF,
 * placing kernel, initrd, cmdline and a boot_params "zero page" with an
 * e820 map into guest RAM, and the initial vCPU/VM state (in-kernel irqchip,
 * PIT, CPUID, registers) a Linux guest needs.  Only vm.c and vcpu.c use it.
 */
#ifndef DENSEVM_LINUX_BOOT_H
#define DENSEVM_LINUX_BOOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hv.h"

struct linux_boot_cfg {
	const char *kernel;            /* bzImage or vmlinux ELF path */
	const char *initrd;            /* may be NULL */
	const char *cmdline;           /* may be NULL */
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
};

/* Loads the kernel into guest RAM.  Checks magic, class, machine and the
 * boot protocol version; returns 0 or -errno with one line in err naming the
 * file and what is wrong with it. */
int linux_load(const struct linux_boot_cfg *cfg, struct linux_entry *out,
	       char *err, size_t errlen);

/* VM-wide state a Linux guest needs: TSS/identity-map addresses, in-kernel
 * irqchip and PIT.  Called once, before any vCPU is created. */
int linux_vm_init(int vm_fd, char *err, size_t errlen);

/* Sets CPUID (KVM_GET_SUPPORTED_CPUID, CX16 masked), MSRs, sregs and regs
 * of one vCPU.  Only cpu 0 starts at the entry; others wait for INIT/SIPI. */
int linux_vcpu_init(int kvm_fd, int vcpu_fd, unsigned cpu,
		    const struct linux_entry *e, char *err, size_t errlen);

#endif
