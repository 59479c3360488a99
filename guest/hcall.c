/*
 * hcall.c - hypercall wrappers.
 *
 * Owns: the doorbell protocol of hv_abi.h: fill this vCPU's argument page,
 * `outl %eax, $HV_DOORBELL_PORT` with eax = the vCPU index; when the `out`
 * completes the host has written `ret` (and `ret2`/`data` for some calls).
 * The page is accessed through a volatile pointer and the `out` clobbers
 * memory, so the compiler neither sinks the argument stores below the exit
 * nor hoists the result loads above it.
 */
#include "guest.h"

static inline volatile struct hv_argpage *argpage(unsigned cpu)
{
	return (volatile struct hv_argpage *)(uintptr_t)
		(HV_ARGPAGE_GPA + (uint64_t)cpu * 4096);
}

static inline void doorbell(unsigned cpu)
{
	__asm__ volatile("outl %%eax, %w1"
			 :
			 : "a"(cpu), "Nd"((uint16_t)HV_DOORBELL_PORT)
			 : "memory");
}

int64_t hc_call(uint64_t nr, uint64_t a0, uint64_t a1, uint64_t *ret2)
{
	unsigned cpu = guest_cpu();
	volatile struct hv_argpage *p = argpage(cpu);
	p->nr = nr;
	p->arg[0] = a0;
	p->arg[1] = a1;
	p->arg[2] = 0;
	p->arg[3] = 0;
	p->arg[4] = 0;
	p->ret = 0;
	p->ret2 = 0;
	doorbell(cpu);
	if (ret2)
		*ret2 = p->ret2;
	return p->ret;
}

int64_t hc_call5(uint64_t nr, const uint64_t a[5], uint64_t *ret2)
{
	unsigned cpu = guest_cpu();
	volatile struct hv_argpage *p = argpage(cpu);
	p->nr = nr;
	for (unsigned i = 0; i < 5; i++)
		p->arg[i] = a[i];
	p->ret = 0;
	p->ret2 = 0;
	doorbell(cpu);
	if (ret2)
		*ret2 = p->ret2;
	return p->ret;
}

void hc_console(const char *s, size_t len)
{
	unsigned cpu = guest_cpu();
	volatile struct hv_argpage *p = argpage(cpu);
	if (len > HV_ARG_DATA_MAX)
		len = HV_ARG_DATA_MAX;
	/* The cast drops volatile for the copy only; the doorbell's memory
	 * clobber orders it before the exit. */
	memcpy((void *)(uintptr_t)p->data, s, len);
	hc_call(HC_CONSOLE, len, 0, 0);
}

uint64_t hc_time(void)
{
	return (uint64_t)hc_call(HC_TIME, 0, 0, 0);
}

int64_t hc_wait(uint64_t timeout_ns)
{
	return hc_call(HC_WAIT, timeout_ns, 0, 0);
}

void hc_nop(void)
{
	hc_call(HC_NOP, 0, 0, 0);
}

int64_t hc_ready(uint64_t tag)
{
	return hc_call(HC_READY, tag, 0, 0);
}

void hc_result(uint64_t key, uint64_t value)
{
	hc_call(HC_RESULT, key, value, 0);
}
