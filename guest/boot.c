/*
 * boot.c - the micro guest's entry and vCPU start-up.
 *
 * Owns: _start, the entry contract with hv-core, boot-info validation, the
 * release of secondary vCPUs, and exit/fault.
 *
 * Entry contract (hv-core sets this up; see hv_abi.h): 64-bit mode, CPL3,
 * identity-mapped RAM, IOPL=3, SSE enabled, rdi = vCPU index,
 * rsp = HV_STACK_TOP_GPA - cpu * HV_STACK_SIZE (16-byte aligned), other
 * GPRs zero.  No IDT: any exception ends the VM, so this code validates
 * what it reads before using it.
 *
 * vCPU 0 boots (zeroes .bss, validates the boot info, calibrates time,
 * initialises the allocator and the balloon, sets the workload up) while the others wait
 * on boot_state; it then releases them with RUN, or with FAILED and the
 * exit status it is about to use itself.
 */
#include "workload.h"

/* _start: clear DF and the frame pointer, call C with rdi untouched (the
 * vCPU index).  The call leaves rsp = 8 mod 16 in guest_entry, as the ABI
 * wants.  guest_entry never returns; ud2 makes sure of it. */
__asm__(".section .text._start, \"ax\", @progbits\n"
	".globl _start\n"
	".type _start, @function\n"
	"_start:\n"
	"	cld\n"
	"	xorl %ebp, %ebp\n"
	"	call guest_entry\n"
	"1:	ud2\n"
	"	jmp 1b\n"
	".size _start, . - _start\n"
	".previous\n");

extern char __bss_start[], __bss_end[], __image_end[];

enum { BOOT_WAIT = 0, BOOT_RUN = 1, BOOT_FAILED = 2 };
static int boot_state;         /* written by vCPU 0 only */
static int boot_status;        /* exit status when FAILED */
static unsigned ncpus = 1;

__attribute__((noreturn)) void guest_entry(uint64_t cpu_arg);

unsigned guest_ncpus(void)
{
	return ncpus;
}

void guest_fault(void)
{
	console_flush();
	for (;;)
		*(volatile uint64_t *)0x8000000000000000ULL = 0xdead;
}

void guest_exit(int status)
{
	unsigned cpu = guest_cpu();
	console_flush();
	/* vCPU 0 exiting during boot: the others are still waiting. */
	if (cpu == 0 &&
	    __atomic_load_n(&boot_state, __ATOMIC_RELAXED) == BOOT_WAIT) {
		boot_status = status;
		__atomic_store_n(&boot_state, BOOT_FAILED, __ATOMIC_RELEASE);
	}
	hc_call(HC_EXIT, (uint64_t)(int64_t)status, 0, 0);
	/* HC_EXIT returned: the host broke the contract; end the VM loudly
	 * rather than run on or spin. */
	guest_fault();
}

static __attribute__((noreturn, format(printf, 1, 2)))
void bad_boot(const char *fmt, ...)
{
	va_list ap;
	gprintf("boot: ");
	va_start(ap, fmt);
	gvprintf(fmt, ap);
	va_end(ap);
	gprintf("\n");
	guest_exit(GUEST_EXIT_BADBOOT);
}

static void check_bootinfo(const volatile struct hv_bootinfo *bi)
{
	if (bi->magic != HV_BOOTINFO_MAGIC)
		bad_boot("bad boot-info magic 0x%lx (want 0x%lx)",
			 (uint64_t)bi->magic, (uint64_t)HV_BOOTINFO_MAGIC);
	if (bi->version != HV_BOOTINFO_VERSION)
		bad_boot("bad boot-info version %u (want %u)",
			 (unsigned)bi->version, (unsigned)HV_BOOTINFO_VERSION);
	if (bi->ncpus == 0 || bi->ncpus > HV_MAX_VCPUS)
		bad_boot("bad ncpus %u (want 1..%u)", (unsigned)bi->ncpus,
			 (unsigned)HV_MAX_VCPUS);
	if (bi->nranges == 0 || bi->nranges > HV_MAX_MEMRANGES)
		bad_boot("bad nranges %u", (unsigned)bi->nranges);
	/* The ranges themselves are checked by palloc_init. */
	uint64_t hs = bi->heap_start;
	if (hs & (GUEST_2M_SIZE - 1) || hs < (uintptr_t)__image_end)
		bad_boot("bad heap_start 0x%lx (image ends at 0x%lx)", hs,
			 (uint64_t)(uintptr_t)__image_end);
	bool nul = false;
	for (unsigned i = 0; i < HV_ARGS_MAX && !nul; i++)
		nul = bi->args[i] == '\0';
	if (!nul)
		bad_boot("args are not NUL-terminated");
}

static void boot_cpu0(void)
{
	/* The loader zeroes memsz beyond filesz, but do not depend on it.
	 * Safe while others wait: they only read boot_state, and zero is
	 * BOOT_WAIT. */
	memset(__bss_start, 0, (size_t)(__bss_end - __bss_start));

	const struct hv_bootinfo *bi = guest_bootinfo();
	check_bootinfo(bi);
	ncpus = bi->ncpus;
	time_init();
	if (palloc_init(bi->ranges, bi->nranges, bi->heap_start) < 0)
		bad_boot("allocator: %s", palloc_error());
	/* Before the workload allocates: the balloon's two shared pages
	 * then sit beside the allocator bitmap, not inside a region. */
	guest_balloon_init();
	gprintf("microguest: cpus=%u ram=%lu MiB heap=0x%lx free=%lu MiB "
		"tsc_khz=%lu balloon=%s args='%s'\n",
		ncpus, bi->ram_bytes >> 20, bi->heap_start,
		palloc_free_count() >> 8, tsc_khz(),
		guest_balloon_active() ? "on" : "off", bi->args);
	wl_setup();
	__atomic_store_n(&boot_state, BOOT_RUN, __ATOMIC_RELEASE);
}

/* Secondary vCPUs: spin briefly (boot is usually sub-millisecond), then
 * poll in HC_WAIT so that a slow boot (TSC calibration) does not burn a
 * host CPU that the other vCPUs need. */
static void wait_for_boot(void)
{
	for (unsigned spins = 0;; spins++) {
		int st = __atomic_load_n(&boot_state, __ATOMIC_ACQUIRE);
		if (st == BOOT_RUN)
			return;
		if (st == BOOT_FAILED)
			guest_exit(__atomic_load_n(&boot_status,
						   __ATOMIC_RELAXED));
		if (spins < 100000)
			guest_cpu_relax();
		else
			hc_wait(NS_PER_MS);
	}
}

void guest_entry(uint64_t cpu_arg)
{
	unsigned cpu = guest_cpu();
	/* rsp and rdi must agree, or every per-vCPU address is wrong. */
	if (cpu != cpu_arg || cpu >= HV_MAX_VCPUS)
		guest_fault();
	if (cpu == 0) {
		boot_cpu0();
	} else {
		wait_for_boot();
		if (cpu >= ncpus)
			bad_boot("vCPU %u started but bootinfo.ncpus = %u", cpu,
				 ncpus);
	}
	wl_run(cpu);
}
