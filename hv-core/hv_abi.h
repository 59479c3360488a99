/*
 * hv_abi.h - the binary interface between hv-core and the micro guest.
 *
 * Owns: the micro guest's fixed guest-physical layout, the boot-info page,
 * the hypercall argument page and the hypercall numbers.  Every side
 * includes this file: the host (hosted C), guest/ (freestanding C) and the
 * Linux balloon module (kernel C; its build copies or points at this file),
 * so it uses only fixed-width types and no libc, and nothing can drift.
 *
 * The micro guest runs at CPL3 in 64-bit mode with IOPL=3.  It has no IDT:
 * any exception becomes a triple fault (KVM_EXIT_SHUTDOWN), which ends that
 * VM only.  A hypercall is: fill the vCPU's argument page, then
 * `outl %eax, $HV_DOORBELL_PORT` with eax = the vCPU index.  The host
 * copies the page before it trusts anything in it (the guest is hostile)
 * and writes the result back into `ret` (and, for some calls, `data`).
 * A port-I/O exit costs ~28 us on this machine: batch, never one per page.
 */
#ifndef DENSEVM_HV_ABI_H
#define DENSEVM_HV_ABI_H

#if defined(__KERNEL__)
#include <linux/types.h>
#else
#include <stdint.h>
#endif

/* ---- fixed guest-physical layout (all below 2 MiB, then the ELF image) ---- */
#define HV_BOOTINFO_GPA   0x1000ULL   /* one page, struct hv_bootinfo */
#define HV_ARGPAGE_GPA    0x2000ULL   /* + cpu * 4096, one page per vCPU */
#define HV_MAX_VCPUS      16
#define HV_PGTABLE_GPA    0x20000ULL  /* PML4, PDPT, then one PD per GiB */
#define HV_PGTABLE_MAXPD  64          /* => micro guests up to 64 GiB of GPA */
#define HV_STACK_TOP_GPA  0x200000ULL /* vCPU n's stack: top - n * HV_STACK_SIZE */
#define HV_STACK_SIZE     0x10000ULL
#define HV_IMAGE_GPA      0x200000ULL /* the guest ELF is linked here */

#define HV_DOORBELL_PORT  0x00e0      /* outl: eax = vCPU index */

/*
 * Linux guests have no boot-info page: a driver finds densevm through the
 * CPUID leaf HV_CPUID_BASE (scanning 0x40000000 + n * 0x100 for the
 * signature; a module parameter is the fallback where CPUID cannot be set,
 * as on nested software KVM), registers one argument page for the whole VM
 * with outl(page GPA >> 12, HV_ARGREG_PORT) (0 unregisters), and then makes
 * hypercalls with outl(0, HV_DOORBELL_PORT).  The driver serializes its
 * calls: the page is the VM's, not a vCPU's.  Linux may use HC_NOP, HC_TIME,
 * HC_RESULT and the device calls.
 */
#define HV_ARGREG_PORT    0x00e4
#define HV_CPUID_BASE     0x40000100u /* eax = max leaf, ebx ecx edx = sig */
#define HV_CPUID_SIG      "densevm-hv01"  /* 12 bytes: ebx, ecx, edx */
#define HV_CPUID_PORTS    0x40000101u /* eax = doorbell, ebx = argreg port,
                                         ecx = HV_FEAT_* */

/* ---- boot-info page, written by the host before the first instruction ---- */
#define HV_BOOTINFO_MAGIC   0x6d76657365646e65ULL /* "endsevm" + 'm' */
#define HV_BOOTINFO_VERSION 1
#define HV_MAX_MEMRANGES    4
#define HV_ARGS_MAX         1024

struct hv_memrange {
	uint64_t gpa;
	uint64_t len;
};

struct hv_bootinfo {
	uint64_t magic;
	uint32_t version;
	uint32_t ncpus;
	uint64_t tsc_khz;          /* from KVM_GET_TSC_KHZ; 0 if unknown */
	uint64_t ram_bytes;        /* sum of the ranges */
	uint64_t heap_start;       /* first free GPA after the image, 2 MiB aligned */
	uint32_t nranges;
	uint32_t features;         /* HV_FEAT_* */
	struct hv_memrange ranges[HV_MAX_MEMRANGES];
	uint64_t balloon_port;     /* reserved for the balloon device; 0 = absent */
	uint64_t reserved[15];
	char args[HV_ARGS_MAX];    /* NUL-terminated workload arguments */
};

#define HV_FEAT_BALLOON  (1u << 0)

/* ---- hypercall argument page (one per vCPU) ---- */
#define HV_ARG_DATA_MAX  (4096 - 64)

struct hv_argpage {
	uint64_t nr;                 /* HC_* */
	uint64_t arg[5];
	int64_t  ret;                /* written by the host; <0 = -errno */
	uint64_t ret2;               /* second result where a call has one */
	uint8_t  data[HV_ARG_DATA_MAX]; /* inline payload (console text, ...) */
};

_Static_assert(sizeof(struct hv_argpage) == 4096, "argpage is one page");
_Static_assert(sizeof(struct hv_bootinfo) <= 4096, "bootinfo fits a page");

/*
 * Hypercalls.  Numbers below 64 belong to hv-core; 64 and up are device
 * calls that hv-core forwards to a registered handler (hv_vm_set_hypercall()).
 */
enum {
	HC_CONSOLE   = 1,  /* arg0 = len: write data[0..len) to the console */
	HC_EXIT      = 2,  /* arg0 = status 0-255 (0 = success; more reads as 255,
			    * reported); ends this vCPU's work */
	HC_TIME      = 3,  /* ret = host CLOCK_MONOTONIC in ns */
	HC_WAIT      = 4,  /* arg0 = timeout ns (0 = poll, ~0 = forever): block until
	                      a notification or the timeout; ret = 1 if notified */
	HC_NOP       = 5,  /* round trip only (benchmarks) */
	HC_READY     = 6,  /* arg0 = tag: a rendezvous point for tests; blocks
	                      like HC_WAIT until the host releases it (notify) */
	HC_RESULT    = 7,  /* arg0 = key, arg1 = value: a machine-readable
	                      result; the host records and prints it */
	HC_DEVICE_BASE = 64,
	HC_BALLOON     = 64, /* balloon-driver protocol, see balloon_proto.h */
	HC_MAX         = 96,
};

#endif
