/*
 * bench_hv.c - hv-core's figures (issue 2): process start to the micro
 * guest's first hypercall (1 and 32 guests), hv-core's own host memory per
 * VM beyond guest RAM (PSS), VM pause/resume latency, and the hypercall
 * round trip.  It measures and reports (table, JSON, CSV); it asserts
 * nothing.  Medians over repetitions; absolute times drift on a shared
 * machine, so compare figures from the same run.
 */
#include <getopt.h>
#include <inttypes.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "hv.h"
#include "bench/bench_util.h"
#include "guest/patterns.h"

extern char **environ;
static char g_guest[4096];
static uint64_t g_main_ns;

static void quiet(struct hv_vm *vm, const char *l, size_t n, void *c)
{
	(void)vm; (void)l; (void)n; (void)c;
}

static struct hv_vm *mkvm(const char *name, uint64_t mem, unsigned cpus,
			  const char *args)
{
	char err[512];
	struct hv_vm *vm;
	struct hv_vm_config c = {
		.name = name, .mem_bytes = mem, .ncpus = cpus, .image = g_guest,
		.cmdline = args, .base_memfd = -1, .timeout_s = 600,
		.console = quiet,
	};
	if (hv_vm_create(&c, &vm, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench_hv: %s\n", err);
		exit(1);
	}
	return vm;
}

/* Child mode: start n guests, print each one's first hypercall time
 * (CLOCK_MONOTONIC ns) on stdout, one per line. */
static int child_start(unsigned n)
{
	struct hv_vm *vm[64];
	char name[16], err[512];
	for (unsigned i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "s%u", i);
		struct hv_vm_config c = {
			.name = name, .mem_bytes = 64 << 20, .ncpus = 1, .image = g_guest,
			.cmdline = "idle seconds=0", .base_memfd = -1, .console = quiet,
		};
		if (hv_vm_create(&c, &vm[i], err, sizeof(err)) < 0) {
			fprintf(stderr, "%s\n", err);
			return 1;
		}
	}
	for (unsigned i = 0; i < n; i++)
		hv_vm_start(vm[i]);
	for (unsigned i = 0; i < n; i++) {
		hv_vm_wait(vm[i]);
		printf("%" PRIu64 "\n", hv_vm_first_hypercall_ns(vm[i]));
	}
	for (unsigned i = 0; i < n; i++)
		hv_vm_destroy(vm[i]);
	return 0;
}

/* Spawns `self --child-start n`; returns ms from spawn to the first
 * hypercall, the median over guests in *med and the last in *last. */
static void start_once(const char *self, unsigned n, double *med, double *last)
{
	int p[2];
	char nb[16];
	pid_t pid;
	snprintf(nb, sizeof(nb), "%u", n);
	char *argv[] = { (char *)self, "--child-start", nb, "--guest", g_guest, NULL };
	if (pipe(p) < 0)
		exit(1);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_addclose(&fa, p[0]);
	uint64_t t0 = hv_now_ns();
	if (posix_spawn(&pid, self, &fa, NULL, argv, environ) != 0)
		exit(1);
	close(p[1]);
	FILE *f = fdopen(p[0], "r");
	double v[64];
	unsigned k = 0;
	uint64_t ns;
	while (k < n && fscanf(f, "%" SCNu64, &ns) == 1)
		v[k++] = ns ? (double)(ns - t0) / 1e6 : -1;
	fclose(f);
	waitpid(pid, NULL, 0);
	*last = 0;
	for (unsigned i = 0; i < k; i++)
		if (v[i] > *last)
			*last = v[i];
	*med = k ? bench_pct(v, k, 50) : -1;
}

static uint64_t smaps_pss_kb(uint8_t **lo, uint8_t **hi, unsigned nr,
			     uint64_t *inside_kb)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	uint64_t total = 0, inside = 0;
	bool in = false;
	while (f && fgets(line, sizeof(line), f)) {
		unsigned long a, b;
		unsigned long long kb;
		if (sscanf(line, "%lx-%lx ", &a, &b) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			in = false;
			for (unsigned i = 0; i < nr; i++)
				if ((uint8_t *)a >= lo[i] && (uint8_t *)a < hi[i])
					in = true;
		} else if (sscanf(line, "Pss: %llu kB", &kb) == 1) {
			total += kb;
			if (in)
				inside += kb;
		}
	}
	if (f)
		fclose(f);
	*inside_kb = inside;
	return total;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "out", required_argument, 0, 'o' },
		{ "reps", required_argument, 0, 'r' },
		{ "guest", required_argument, 0, 'g' },
		{ "child-start", required_argument, 0, 'c' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	const char *out = "build/results";
	int reps = 7, c, child = -1;
	char err[256];

	g_main_ns = hv_now_ns();
	snprintf(g_guest, sizeof(g_guest), "%s", "build/guest/microguest.elf");
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'o': out = optarg; break;
		case 'r': reps = atoi(optarg); break;
		case 'g': snprintf(g_guest, sizeof(g_guest), "%s", optarg); break;
		case 'c': child = atoi(optarg); break;
		case 'h':
			puts("usage: bench_hv [--out DIR] [--reps N] [--guest ELF]\n"
			     "Measures hv-core: start to first hypercall (1 and 32 guests),\n"
			     "host memory per VM beyond guest RAM, pause latency, hypercall\n"
			     "round trip.  Writes DIR/hv.json and DIR/hv.csv.");
			return 0;
		default: return 2;
		}
	}
	if (hv_init(err, sizeof(err)) < 0) {
		fprintf(stderr, "bench_hv: %s\n", err);
		return 1;
	}
	if (child > 0)
		return child_start((unsigned)child);
	if (reps < 1)
		reps = 1;
	char self[4096];
	ssize_t sl = readlink("/proc/self/exe", self, sizeof(self) - 1);
	self[sl > 0 ? sl : 0] = 0;

	/* 1. start to first hypercall */
	double s1[64], s32m[64], s32l[64], dummy;
	for (int r = 0; r < reps; r++) {
		fprintf(stderr, "bench_hv: start latency, rep %d/%d\n", r + 1, reps);
		start_once(self, 1, &s1[r], &dummy);
		start_once(self, 32, &s32m[r], &s32l[r]);
	}
	double start1 = bench_pct(s1, reps, 50), start32m = bench_pct(s32m, reps, 50),
	       start32l = bench_pct(s32l, reps, 50);

	/* 2. host memory per VM beyond guest RAM: 16 idle 512 MiB guests */
	enum { NMEM = 16 };
	struct hv_vm *vms[NMEM];
	uint8_t *rlo[NMEM * 2], *rhi[NMEM * 2];
	unsigned nr = 0;
	uint64_t in0, base_kb = smaps_pss_kb(rlo, rhi, 0, &in0);
	fprintf(stderr, "bench_hv: memory, %d idle guests of 512 MiB\n", NMEM);
	for (int i = 0; i < NMEM; i++) {
		char name[16];
		snprintf(name, sizeof(name), "m%d", i);
		vms[i] = mkvm(name, 512 << 20, 1, "idle");
		unsigned n;
		const struct hv_ram_range *rr = hv_vm_ranges(vms[i], &n);
		for (unsigned k = 0; k < n; k++) {
			rlo[nr] = rr[k].hva;
			rhi[nr++] = rr[k].hva + rr[k].len;
		}
	}
	for (int i = 0; i < NMEM; i++)
		hv_vm_start(vms[i]);
	sleep(2);
	uint64_t inside_kb, total_kb = smaps_pss_kb(rlo, rhi, nr, &inside_kb);
	double per_vm_kib = ((double)total_kb - (double)inside_kb - (double)base_kb) / NMEM;
	for (int i = 0; i < NMEM; i++)
		hv_vm_destroy(vms[i]);

	/* 3. pause/resume latency, 2 vCPUs running verify */
	fprintf(stderr, "bench_hv: pause latency\n");
	enum { NP = 2000 };
	static double lat[NP];
	struct hv_vm *pv = mkvm("pause", 256 << 20, 2, "verify mib=64 seconds=3600");
	hv_vm_start(pv);
	usleep(300000);
	for (int i = 0; i < NP; i++) {
		lat[i] = (double)hv_vm_pause(pv) / 1000.0;
		hv_vm_resume(pv);
		usleep(1000);
	}
	hv_vm_destroy(pv);
	double p50 = bench_pct(lat, NP, 50), p99 = bench_pct(lat, NP, 99);

	/* 4. hypercall round trip (the guest times HC_NOP with its TSC) */
	fprintf(stderr, "bench_hv: hypercall round trip\n");
	double rtt[64];
	for (int r = 0; r < reps; r++) {
		struct hv_vm *hv = mkvm("hc", 64 << 20, 1, "hcbench count=20000");
		hv_vm_start(hv);
		hv_vm_wait(hv);
		uint64_t med = 0;
		hv_vm_result(hv, DVM_RESULT_HC_MEDIAN_NS, &med);
		rtt[r] = (double)med / 1000.0;
		hv_vm_destroy(hv);
	}
	double rtt50 = bench_pct(rtt, reps, 50);

	printf("\nhv-core figures (medians of %d runs unless noted)\n", reps);
	printf("| figure | value |\n|---|---|\n");
	printf("| start to first hypercall, 1 guest | %.1f ms |\n", start1);
	printf("| start to first hypercall, 32 guests (median guest) | %.1f ms |\n", start32m);
	printf("| start to first hypercall, 32 guests (last guest) | %.1f ms |\n", start32l);
	printf("| hv-core host memory per idle 512 MiB VM beyond guest RAM (PSS) | %.0f KiB |\n", per_vm_kib);
	printf("| pause+resume of 2 vCPUs, p50 / p99 (%d pauses) | %.1f / %.1f us |\n", NP, p50, p99);
	printf("| hypercall round trip (HC_NOP), median | %.1f us |\n", rtt50);

	mkdir(out, 0755);
	char path[4200];
	snprintf(path, sizeof(path), "%s/hv.json", out);
	FILE *f = fopen(path, "w");
	if (f) {
		fprintf(f, "{\"reps\": %d, \"start_1_ms\": %.3f, \"start_32_median_ms\": %.3f, "
			"\"start_32_last_ms\": %.3f, \"mem_per_vm_kib\": %.1f, "
			"\"pause_p50_us\": %.2f, \"pause_p99_us\": %.2f, "
			"\"hypercall_rtt_us\": %.2f}\n", reps, start1, start32m, start32l,
			per_vm_kib, p50, p99, rtt50);
		fclose(f);
	}
	snprintf(path, sizeof(path), "%s/hv.csv", out);
	f = fopen(path, "w");
	if (f) {
		fprintf(f, "figure,value,unit\nstart_1,%.3f,ms\nstart_32_median,%.3f,ms\n"
			"start_32_last,%.3f,ms\nmem_per_vm,%.1f,KiB\npause_p50,%.2f,us\n"
			"pause_p99,%.2f,us\nhypercall_rtt,%.2f,us\n", start1, start32m,
			start32l, per_vm_kib, p50, p99, rtt50);
		fclose(f);
	}
	fprintf(stderr, "bench_hv: wrote %s/hv.json and hv.csv\n", out);
	return 0;
}
