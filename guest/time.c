/*
 * time.c - the micro guest's clock.
 *
 * Owns: TSC-based time.  rdtsc is native at CPL3 (~9 ns), a hypercall is
 * ~28 us, so time comes from the TSC: bootinfo.tsc_khz when the host knows
 * it, else one calibration against HC_TIME at boot (~50 ms).  Conversion
 * is ns = (cycles * mult) >> 32 with mult = 2^32 * 1e6 / khz: a 128-bit
 * multiply, no division, no libgcc helper, no overflow for centuries.
 */
#include "guest.h"

static uint64_t tsc0;      /* TSC at time_init */
static uint64_t mult;      /* ns per cycle, 32.32 fixed point */
static uint64_t khz;

#define CALIBRATE_NS 50000000ULL

void time_init(void)
{
	khz = guest_bootinfo()->tsc_khz;
	if (khz == 0) {
		uint64_t t0 = hc_time(), c0 = guest_rdtsc();
		uint64_t t1, c1;
		do {    /* HC_WAIT may return early on a notification */
			hc_wait(CALIBRATE_NS);
			t1 = hc_time();
			c1 = guest_rdtsc();
		} while (t1 - t0 < CALIBRATE_NS);
		/* cycles over ~50 ms times 1e6 stays far below 2^64. */
		khz = (c1 - c0) * 1000000ULL / (t1 - t0);
		if (khz == 0)
			khz = 1;
	}
	mult = (1000000ULL << 32) / khz;
	tsc0 = guest_rdtsc();
}

uint64_t tsc_khz(void)
{
	return khz;
}

uint64_t tsc_to_ns(uint64_t cycles)
{
	return (uint64_t)(((unsigned __int128)cycles * mult) >> 32);
}

uint64_t now_ns(void)
{
	/* Another vCPU's TSC may trail vCPU 0's by a little: clamp, so a
	 * time read never wraps to ~2^64. */
	int64_t d = (int64_t)(guest_rdtsc() - tsc0);
	return d > 0 ? tsc_to_ns((uint64_t)d) : 0;
}

void sleep_ns(uint64_t ns)
{
	uint64_t end = now_ns() + ns;
	for (uint64_t t = now_ns(); t < end; t = now_ns())
		guest_wait(end - t);
}
