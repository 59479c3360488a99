/*
 * wl_misc.c - the small workloads: idle, crash, hcbench and conflood.
 *
 *   idle [seconds=S|-1] [touch=0|1] [status=N]
 *                           wait in HC_WAIT (never spin); default forever;
 *                           status=N then says HC_EXIT(N) as given, any
 *                           64-bit value (the host's range check is tested);
 *                           touch=1 first writes every free 2 MiB block once
 *                           and frees it again (memory a guest used and
 *                           released: what a balloon or reporting reclaims)
 *   crash [after_ms=N]      fault on purpose after N ms (triple fault)
 *   hcbench [count=N]       N HC_NOP round trips timed with the TSC
 *   conflood [bytes=N] [line=L] [esc=1] [split=1]
 *                           floods the console with N bytes in lines of L
 *                           (hostile escapes with esc=1), then exits 0
 */
#include "workload.h"

/* ------------------------------------------------------------------ idle */

static int64_t idle_seconds;
static bool idle_touch;
static bool idle_status_set;
static uint64_t idle_status;

static void idle_setup(struct wl_args *a)
{
	idle_seconds = args_int(a, "seconds", -1, -1, 100000000);
	idle_touch = args_int(a, "touch", 0, 0, 1);
	idle_status_set = args_has(a, "status");
	idle_status = args_u64(a, "status", 0);
	args_done(a);
}

/* Takes every free 2 MiB block (never through the pressure hook: the
 * balloon keeps what it has), writes one word per page so the host backs
 * it, and frees the blocks.  The blocks are chained through their first
 * word, so this needs no memory of its own. */
static void idle_touch_free(void)
{
	uint64_t head = 0, n = 0, gpa;
	while ((gpa = palloc_try_contig(GUEST_2M_PAGES, GUEST_2M_PAGES))) {
		uint64_t *blk = (uint64_t *)(uintptr_t)gpa;
		for (uint64_t pg = 1; pg < GUEST_2M_PAGES; pg++)
			blk[pg * DVM_PAGE_WORDS] = gpa + (pg << GUEST_PAGE_SHIFT);
		blk[0] = head;
		head = gpa;
		n++;
	}
	while (head) {
		uint64_t next = *(uint64_t *)(uintptr_t)head;
		palloc_free_2m(head);
		head = next;
	}
	gprintf("idle: touched %lu MiB\n", n * 2);
}

static int idle_run(unsigned cpu)
{
	(void)cpu;
	if (idle_touch)
		idle_touch_free();
	if (idle_seconds < 0) {
		gprintf("idle: waiting until stopped\n");
		for (;;)
			guest_wait(HC_WAIT_FOREVER);
	}
	sleep_ns((uint64_t)idle_seconds * NS_PER_SEC);
	gprintf("idle: done seconds=%ld\n", idle_seconds);
	if (idle_status_set) {
		/* raw, not through guest_exit's int */
		console_flush();
		hc_call(HC_EXIT, idle_status, 0, 0);
		guest_fault();
	}
	return GUEST_EXIT_OK;
}

const struct workload wl_idle = {
	.name = "idle",
	.usage = "[seconds=S|-1] [touch=0|1] [status=N]",
	.setup = idle_setup,
	.run = idle_run,
};

/* ----------------------------------------------------------------- crash */

static uint64_t crash_after_ms;

static void crash_setup(struct wl_args *a)
{
	crash_after_ms = (uint64_t)args_int(a, "after_ms", 0, 0, 100000000);
	args_done(a);
}

static int crash_run(unsigned cpu)
{
	(void)cpu;
	sleep_ns(crash_after_ms * NS_PER_MS);
	gprintf("crash: faulting now (after %lu ms)\n", crash_after_ms);
	guest_fault();
}

const struct workload wl_crash = {
	.name = "crash",
	.usage = "[after_ms=N]",
	.setup = crash_setup,
	.run = crash_run,
};

/* --------------------------------------------------------------- hcbench */

#define HCBENCH_WARMUP 16

static uint64_t hb_count;
static uint64_t *hb_samples;

static void hcbench_setup(struct wl_args *a)
{
	hb_count = (uint64_t)args_int(a, "count", 1000, 1, 10000000);
	args_done(a);
	uint64_t pages = (hb_count * sizeof(uint64_t) + GUEST_PAGE_SIZE - 1) >>
			 GUEST_PAGE_SHIFT;
	hb_samples = (uint64_t *)(uintptr_t)wl_alloc_contig("hcbench", pages);
}

static void sift_down(uint64_t *a, uint64_t i, uint64_t n)
{
	for (;;) {
		uint64_t c = 2 * i + 1;
		if (c >= n)
			return;
		if (c + 1 < n && a[c + 1] > a[c])
			c++;
		if (a[i] >= a[c])
			return;
		uint64_t t = a[i];
		a[i] = a[c];
		a[c] = t;
		i = c;
	}
}

/* Heapsort: O(n log n), in place, no recursion on a 64 KiB stack. */
static void sort_u64(uint64_t *a, uint64_t n)
{
	for (uint64_t i = n / 2; i-- > 0;)
		sift_down(a, i, n);
	for (uint64_t end = n; end-- > 1;) {
		uint64_t t = a[0];
		a[0] = a[end];
		a[end] = t;
		sift_down(a, 0, end);
	}
}

static int hcbench_run(unsigned cpu)
{
	(void)cpu;
	for (unsigned i = 0; i < HCBENCH_WARMUP; i++)
		hc_nop();
	for (uint64_t i = 0; i < hb_count; i++) {
		uint64_t t0 = guest_rdtsc_ordered();
		hc_nop();
		hb_samples[i] = guest_rdtsc_ordered() - t0;
	}
	sort_u64(hb_samples, hb_count);
	uint64_t p99 = hb_count * 99 / 100;
	if (p99 >= hb_count)
		p99 = hb_count - 1;
	uint64_t min = tsc_to_ns(hb_samples[0]);
	uint64_t med = tsc_to_ns(hb_samples[hb_count / 2]);
	uint64_t q99 = tsc_to_ns(hb_samples[p99]);
	uint64_t max = tsc_to_ns(hb_samples[hb_count - 1]);
	gprintf("hcbench: count=%lu min=%lu median=%lu p99=%lu max=%lu ns\n",
		hb_count, min, med, q99, max);
	hc_result(DVM_RESULT_HC_MEDIAN_NS, med);
	return GUEST_EXIT_OK;
}

const struct workload wl_hcbench = {
	.name = "hcbench",
	.usage = "[count=N]",
	.setup = hcbench_setup,
	.run = hcbench_run,
};

/* -------------------------------------------------------------- conflood */

/* Hostile console text for the host's console filter and budget: `bytes`
 * bytes in lines of `line` bytes (the '\n' included), each sent with its
 * own HC_CONSOLE (no gprintf: raw bytes, no per-vCPU buffer).  With esc=1
 * every line starts with a terminal attack (CSI, OSC with BEL, a C1 CSI
 * in UTF-8, a lone CR, an ill-formed byte) before a UTF-8 'é'; with
 * split=1 each line goes in two calls cut inside the escape sequence. */
static uint64_t cf_bytes, cf_line;
static bool cf_esc, cf_split;

static const char cf_attack[] = "\x1b[31m\x1b]0;t\x07\xc2\x9b\r\xff\xc3\xa9";

static void conflood_setup(struct wl_args *a)
{
	cf_bytes = (uint64_t)args_int(a, "bytes", 1 << 20, 1, 1ll << 32);
	cf_line = (uint64_t)args_int(a, "line", 256, sizeof(cf_attack) + 1, 512);
	cf_esc = args_int(a, "esc", 0, 0, 1);
	cf_split = args_int(a, "split", 0, 0, 1);
	args_done(a);
}

static int conflood_run(unsigned cpu)
{
	char buf[512];
	uint64_t sent = 0, lines = 0;

	(void)cpu;
	memset(buf, 'x', sizeof(buf));
	if (cf_esc)
		memcpy(buf, cf_attack, sizeof(cf_attack) - 1);
	while (sent < cf_bytes) {
		uint64_t n = cf_bytes - sent < cf_line ? cf_bytes - sent : cf_line;
		buf[n - 1] = '\n';
		if (cf_split && n > 3) {
			hc_console(buf, 3);           /* ESC [ 3 | 1 m ... */
			hc_console(buf + 3, n - 3);
		} else {
			hc_console(buf, n);
		}
		buf[n - 1] = 'x';
		sent += n;
		lines++;
	}
	gprintf("conflood: done bytes=%lu lines=%lu\n", sent, lines);
	return GUEST_EXIT_OK;
}

const struct workload wl_conflood = {
	.name = "conflood",
	.usage = "[bytes=N] [line=L] [esc=0|1] [split=0|1]",
	.setup = conflood_setup,
	.run = conflood_run,
};
