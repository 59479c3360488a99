/*
 * linux_cpu.c - the VM-wide and per-vCPU KVM state a Linux guest starts with.
 *
 * Owns: the in-kernel irqchip (PIC, IOAPIC, LAPICs) and PIT, the TSS and
 * identity-map addresses Intel hosts need for real-mode emulation, the CPUID
 * table each vCPU sees, and the boot CPU's registers for the 64-bit boot
 * protocol entry prepared by linux_boot.c.
 *
 * On this machine's nested software backend KVM_SET_CPUID2 succeeds but the
 * guest still sees the host's CPUID; the masks below matter on hardware
 * hosts, and the cmdline's clearcpuid= list does the job here.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/kvm.h>

#include "linux_boot.h"

/* In the PCI hole, like QEMU's choice: never RAM, below the LAPIC/IOAPIC
 * MMIO pages (0xfec00000, 0xfee00000 are below; 0xfeffc000.. is unused). */
#define LINUX_IDENTITY_MAP_ADDR 0xfeffc000ULL  /* one page */
#define LINUX_TSS_ADDR          0xfeffd000ULL  /* three pages */

#define CPUID_1_ECX_CX16        (1u << 13)
#define CPUID_1_ECX_HYPERVISOR  (1u << 31)

#define MSR_IA32_MISC_ENABLE    0x000001a0
#define MISC_ENABLE_FAST_STRING (1ULL << 0)

#define APIC_LVT_LINT0          0x350
#define APIC_LVT_LINT1          0x360
#define APIC_MODE_EXTINT        0x700
#define APIC_MODE_NMI           0x400
#define APIC_LVT_MASKED         (1u << 16)

__attribute__((format(printf, 3, 4)))
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	int rc = -errno;
	va_list ap;

	if (rc == 0)
		rc = -EIO;
	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

int linux_vm_init(int vm_fd, char *err, size_t errlen)
{
	struct kvm_pit_config pit = { .flags = 0 };
	uint64_t ident = LINUX_IDENTITY_MAP_ADDR;

	/* Both must precede vCPU creation; only Intel (VMX) uses them, and a
	 * backend without the capability has no use for them either. */
	if (ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SET_IDENTITY_MAP_ADDR) > 0 &&
	    ioctl(vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &ident) < 0)
		return fail(err, errlen, "linux: KVM_SET_IDENTITY_MAP_ADDR: %s",
			    strerror(errno));
	if (ioctl(vm_fd, KVM_SET_TSS_ADDR, (unsigned long)LINUX_TSS_ADDR) < 0)
		return fail(err, errlen, "linux: KVM_SET_TSS_ADDR: %s",
			    strerror(errno));
	/* Linux needs a PIC for the PIT tick in virtual-wire mode and the
	 * LAPICs for SMP; KVM emulates them in the kernel, so timer ticks
	 * never come to userspace. */
	if (ioctl(vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return fail(err, errlen, "linux: KVM_CREATE_IRQCHIP: %s",
			    strerror(errno));
	if (ioctl(vm_fd, KVM_CREATE_PIT2, &pit) < 0)
		return fail(err, errlen, "linux: KVM_CREATE_PIT2: %s",
			    strerror(errno));
	return 0;
}

static int set_cpuid(int kvm_fd, int vcpu_fd, unsigned cpu, uint32_t features,
		     char *err, size_t errlen)
{
	struct kvm_cpuid2 *c = NULL;
	unsigned nent = 64;
	int rc;

	for (;;) {
		c = calloc(1, sizeof(*c) + (nent + 2) * sizeof(c->entries[0]));
		if (!c)
			return fail(err, errlen, "linux: out of memory for CPUID");
		c->nent = nent;
		if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0)
			break;
		if (errno != E2BIG || nent >= 4096) {
			rc = fail(err, errlen, "linux: KVM_GET_SUPPORTED_CPUID: %s",
				  strerror(errno));
			free(c);
			return rc;
		}
		free(c);
		nent *= 2;
	}

	for (unsigned i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *x = &c->entries[i];

		switch (x->function) {
		case 1:
			/* KVM's instruction emulator has no cmpxchg16b, and
			 * SLUB uses it when CX16 is set: a backend that
			 * emulates kernel code would fail there. */
			x->ecx &= ~CPUID_1_ECX_CX16;
			x->ecx |= CPUID_1_ECX_HYPERVISOR;
			/* initial APIC ID in EBX[31:24] */
			x->ebx = (x->ebx & 0x00ffffffu) | (cpu << 24);
			break;
		case 0xb:
		case 0x1f:
			/* x2APIC ID of this CPU for every topology level */
			x->edx = cpu;
			break;
		default:
			break;
		}
	}
	/* densevm's own leaves after KVM's (hv_abi.h); room was left for them */
	struct kvm_cpuid_entry2 *d = &c->entries[c->nent];
	memset(d, 0, 2 * sizeof(*d));
	d[0].function = HV_CPUID_BASE;
	d[0].eax = HV_CPUID_PORTS;
	memcpy(&d[0].ebx, HV_CPUID_SIG, 4);
	memcpy(&d[0].ecx, HV_CPUID_SIG + 4, 4);
	memcpy(&d[0].edx, HV_CPUID_SIG + 8, 4);
	d[1].function = HV_CPUID_PORTS;
	d[1].eax = HV_DOORBELL_PORT;
	d[1].ebx = HV_ARGREG_PORT;
	d[1].ecx = features;
	c->nent += 2;
	rc = 0;
	if (ioctl(vcpu_fd, KVM_SET_CPUID2, c) < 0)
		rc = fail(err, errlen, "linux: KVM_SET_CPUID2 (cpu %u): %s", cpu,
			  strerror(errno));
	free(c);
	return rc;
}

/* What a PC BIOS leaves behind on the boot CPU: LINT0 as ExtINT (the PIC's
 * output) and LINT1 as NMI, so the PIT tick reaches it in virtual-wire mode
 * before Linux programs the LAPIC itself.  (The INIT that starts an AP
 * resets its LAPIC, so APs are left alone.) */
static int set_lapic_lint(int vcpu_fd, unsigned cpu, char *err, size_t errlen)
{
	struct kvm_lapic_state la;
	uint32_t v;

	if (ioctl(vcpu_fd, KVM_GET_LAPIC, &la) < 0)
		return fail(err, errlen, "linux: KVM_GET_LAPIC (cpu %u): %s", cpu,
			    strerror(errno));
	memcpy(&v, &la.regs[APIC_LVT_LINT0], 4);
	v = (v & ~(0x700u | APIC_LVT_MASKED)) | APIC_MODE_EXTINT;
	memcpy(&la.regs[APIC_LVT_LINT0], &v, 4);
	memcpy(&v, &la.regs[APIC_LVT_LINT1], 4);
	v = (v & ~(0x700u | APIC_LVT_MASKED)) | APIC_MODE_NMI;
	memcpy(&la.regs[APIC_LVT_LINT1], &v, 4);
	if (ioctl(vcpu_fd, KVM_SET_LAPIC, &la) < 0)
		return fail(err, errlen, "linux: KVM_SET_LAPIC (cpu %u): %s", cpu,
			    strerror(errno));
	return 0;
}

static void flat_seg(struct kvm_segment *s, uint16_t sel, uint8_t type,
		     bool code64)
{
	*s = (struct kvm_segment){
		.base = 0, .limit = 0xffffffff, .selector = sel, .type = type,
		.present = 1, .dpl = 0, .db = code64 ? 0 : 1, .s = 1,
		.l = code64 ? 1 : 0, .g = 1,
	};
}

static int set_boot_state(int vcpu_fd, const struct linux_entry *e, char *err,
			  size_t errlen)
{
	struct kvm_sregs sr;
	struct kvm_regs r = { 0 };
	struct kvm_fpu fpu = { .fcw = 0x37f, .mxcsr = 0x1f80 };
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry ent[1];
	} msrs = { .hdr.nmsrs = 1,
		   .ent[0] = { .index = MSR_IA32_MISC_ENABLE,
			       .data = MISC_ENABLE_FAST_STRING } };

	if (!e->long_mode)
		return fail(err, errlen, "linux: only the 64-bit entry is supported");
	if (ioctl(vcpu_fd, KVM_GET_SREGS, &sr) < 0)
		return fail(err, errlen, "linux: KVM_GET_SREGS: %s", strerror(errno));

	/* 64-bit boot protocol: long mode, paging on the identity map,
	 * CS = __BOOT_CS, DS/ES/SS = __BOOT_DS, interrupts off. */
	flat_seg(&sr.cs, 0x10, 0xb, true);   /* execute/read, accessed */
	flat_seg(&sr.ds, 0x18, 0x3, false);  /* read/write, accessed */
	sr.es = sr.fs = sr.gs = sr.ss = sr.ds;
	/* VMX wants a usable TR even though nothing switches tasks. */
	sr.tr = (struct kvm_segment){ .base = 0, .limit = 0x67, .selector = 0,
				      .type = 0xb, .present = 1, .s = 0 };
	sr.ldt = (struct kvm_segment){ .unusable = 1, .type = 0x2, .present = 1 };
	sr.gdt.base = e->gdt_gpa;
	sr.gdt.limit = 4 * 8 - 1;
	sr.idt.base = 0;
	sr.idt.limit = 0;
	sr.cr3 = e->cr3;
	sr.cr4 = 0x20;                              /* PAE */
	sr.cr0 = 0x80050033;                        /* PG WP NE ET MP PE */
	sr.efer = 0x500;                            /* LME LMA */
	if (ioctl(vcpu_fd, KVM_SET_SREGS, &sr) < 0)
		return fail(err, errlen, "linux: KVM_SET_SREGS: %s", strerror(errno));

	r.rip = e->rip;
	r.rsi = e->rsi;
	r.rsp = LINUX_STACK_TOP_GPA;
	r.rflags = 0x2;                             /* IF clear */
	if (ioctl(vcpu_fd, KVM_SET_REGS, &r) < 0)
		return fail(err, errlen, "linux: KVM_SET_REGS: %s", strerror(errno));
	if (ioctl(vcpu_fd, KVM_SET_FPU, &fpu) < 0)
		return fail(err, errlen, "linux: KVM_SET_FPU: %s", strerror(errno));
	/* Not essential: a backend that refuses it only loses fast strings. */
	(void)ioctl(vcpu_fd, KVM_SET_MSRS, &msrs);
	return 0;
}

int linux_vcpu_init(int kvm_fd, int vcpu_fd, unsigned cpu, uint32_t features,
		    const struct linux_entry *e, char *err, size_t errlen)
{
	int rc;

	rc = set_cpuid(kvm_fd, vcpu_fd, cpu, features, err, errlen);
	if (rc)
		return rc;
	/* With the in-kernel irqchip, KVM holds every vCPU but 0 in
	 * UNINITIALIZED until Linux sends INIT/SIPI; their registers are
	 * set by the SIPI, not by us. */
	if (cpu != 0)
		return 0;
	rc = set_lapic_lint(vcpu_fd, cpu, err, errlen);
	if (rc)
		return rc;
	return set_boot_state(vcpu_fd, e, err, errlen);
}
