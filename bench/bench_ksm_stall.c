/*
 * bench_ksm_stall.c - what a merge batch costs the guests (issue 12's
 * "guest pauses"): write-protect against pause, in the same run.
 *
 * 1. The mixed fleet of issue 12: 8 micro guests of 384 MiB, 1 vCPU each,
 *    filling 320 MiB (4 clones: identical 60 %, zero 20 %; 2 with the same
 *    content shuffled to other GPAs; 2 unique-heavy: 10 % / 10 %), started
 *    together with the scanner at its defaults, for --seconds (40).  Per
 *    batch, the guest stall: in pause mode the pause (every vCPU of the VM
 *    stopped, 8 VMs' vCPU threads on 2 cores); in write-protect mode the
 *    longest wait a vCPU had on a protected page (0 when none wrote into
 *    the batch), and the protect-to-unprotect window that bounds it.  Pause
 *    mode runs as before this change: write_protect=0 and RAM not even
 *    registered (no_write_protect).  The modes alternate, the order
 *    flipping each repetition; medians over --reps (3).
 * 2. Merge throughput, one synchronous first pass over 4 guests holding
 *    pages of one kind (same-GPA, cross-GPA shuffled, zero), both modes:
 *    merges per second and per scanner CPU-second.  The guests idle, so
 *    this is the guard's own cost (protect/unprotect system calls against
 *    pause/resume).
 * Writes DIR/ksm_stall.json.  Measures and reports; asserts nothing.  Run
 * it under `flock /work/bench.lock` where other jobs share the machine.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "hv.h"
#include "ksm/ksm.h"
#include "guest/patterns.h"
#include "bench/bench_util.h"

#define MIB (1ull << 20)
#define NVM 8
#define MAXREP 16

static char g_guest[4096] = "build/guest/microguest.elf";
static int g_reps = 3;
static double g_seconds = 40;
static unsigned g_mem = 384, g_fill = 320;

static void quiet(struct hv_vm *vm, const char *l, size_t n, void *c)
{
	(void)vm; (void)l; (void)n; (void)c;
}

static double thread_cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *err)
{
	fprintf(stderr, "bench_ksm_stall: %s: %s\n", what, err);
	exit(1);
}

/* n guests (args(i) their workload) in one domain on one base memfd. */
struct fleet {
	unsigned n;
	struct hv_vm *vm[NVM];
	int base;
	struct ksm *k;
};

static void fleet_create(struct fleet *f, unsigned n, uint64_t mem, bool wp,
			 void (*args)(unsigned i, char *buf, size_t len))
{
	char err[512], name[16], a[256];
	struct ksm_config cfg;

	memset(f, 0, sizeof(*f));
	f->n = n;
	f->base = memfd_create("bench-stall-base", MFD_CLOEXEC);
	for (unsigned i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "s%u", i);
		args(i, a, sizeof(a));
		struct hv_vm_config c = {
			.name = name, .mem_bytes = mem, .ncpus = 1,
			.image = g_guest, .cmdline = a, .base_memfd = f->base,
			.timeout_s = 1800, .console = quiet,
			.no_write_protect = !wp,
		};
		if (hv_vm_create(&c, &f->vm[i], err, sizeof(err)) < 0)
			die("hv_vm_create", err);
		const char *why;
		if (wp && !hv_vm_wp_enabled(f->vm[i], &why))
			die("write-protect", why);
	}
	ksm_config_default(&cfg);
	cfg.write_protect = wp;
	if (ksm_create(&cfg, &f->k, err, sizeof(err)))
		die("ksm_create", err);
	for (unsigned i = 0; i < n; i++) {
		struct ksm_vm *kv;
		if (ksm_add_vm(f->k, &ksm_hv_ops, f->vm[i], 0, &kv, err,
			       sizeof(err)))
			die("ksm_add_vm", err);
	}
}

static void fleet_destroy(struct fleet *f)
{
	ksm_destroy(f->k);
	for (unsigned i = 0; i < f->n; i++)
		hv_vm_destroy(f->vm[i]);
	close(f->base);
}

/* ------------------------------------------------------ the mixed fleet */

static void mixed_args(unsigned i, char *buf, size_t len)
{
	bool uniq = i >= 6, shuf = i >= 4 && i < 6;

	snprintf(buf, len, "fill mib=%u identical=%u zero=%u seed=%u "
		 "shuffle=%d hold=-1", g_fill, uniq ? 10 : 60, uniq ? 10 : 20,
		 7001 + i, shuf);
}

struct live {
	double stall[3], win[3], pause[3];   /* p50, p99, max; us */
	double batches, wp_batches, waits, merges, cpu_s, saved_mib, fill_s;
	double vmas;
	uint64_t faults, strays, late;   /* hv-core's, over the VMs */
};

static void live_run(bool wp, struct live *o)
{
	struct fleet f;
	struct ksm_stats st;
	uint64_t t0, filled = 0, v;

	fprintf(stderr, "bench_ksm_stall: mixed fleet, %s\n",
		wp ? "write-protect" : "pause");
	fleet_create(&f, NVM, (uint64_t)g_mem * MIB, wp, mixed_args);
	if (ksm_start(f.k))
		die("ksm_start", "failed");
	t0 = hv_now_ns();
	for (unsigned i = 0; i < f.n; i++)
		hv_vm_start(f.vm[i]);
	while ((double)(hv_now_ns() - t0) / 1e9 < g_seconds) {
		usleep(100000);
		unsigned done = 0;
		for (unsigned i = 0; i < f.n; i++)
			done += hv_vm_result(f.vm[i], DVM_RESULT_FILL_PAGES, &v);
		if (done == f.n && !filled)
			filled = hv_now_ns();
	}
	ksm_stats(f.k, &st);
	o->faults = o->strays = o->late = 0;
	for (unsigned i = 0; i < f.n; i++) {
		struct hv_vm_counters hc;
		hv_vm_counters(f.vm[i], &hc);
		o->faults += hc.wp_faults;
		o->strays += hc.wp_strays;
		o->late += hc.wp_late_registers;
	}
	o->stall[0] = st.stall_p50_ns / 1e3;
	o->stall[1] = st.stall_p99_ns / 1e3;
	o->stall[2] = st.stall_max_ns / 1e3;
	o->win[0] = st.wp_window_p50_ns / 1e3;
	o->win[1] = st.wp_window_p99_ns / 1e3;
	o->win[2] = st.wp_window_max_ns / 1e3;
	o->pause[0] = st.pause_p50_ns / 1e3;
	o->pause[1] = st.pause_p99_ns / 1e3;
	o->pause[2] = st.pause_max_ns / 1e3;
	o->batches = (double)(st.pauses + st.wp_batches);
	o->wp_batches = (double)st.wp_batches;
	o->waits = (double)st.wp_waits;
	o->merges = (double)st.merges;
	o->cpu_s = st.cpu_seconds;
	o->saved_mib = (double)st.bytes_saved / MIB;
	o->fill_s = filled ? (double)(filled - t0) / 1e9 : -1;
	o->vmas = (double)hv_vma_count();
	fprintf(stderr, "  stall p50/p99/max %.0f/%.0f/%.0f us, window p99 %.0f "
		"us, %.0f batches (%.0f protected, %.0f writes waited), %.0f "
		"merges, scanner %.2f CPU-s, %.0f MiB saved, filled in %.1f s, "
		"%.0f VMAs; hv-core: %llu write faults, %llu strays, %llu late "
		"registrations\n", o->stall[0], o->stall[1], o->stall[2],
		o->win[1], o->batches, o->wp_batches, o->waits, o->merges,
		o->cpu_s, o->saved_mib, o->fill_s, o->vmas,
		(unsigned long long)o->faults, (unsigned long long)o->strays,
		(unsigned long long)o->late);
	fleet_destroy(&f);
}

/* ----------------------------------------------------------- throughput */

static const char *g_kind;

static void kind_args(unsigned i, char *buf, size_t len)
{
	snprintf(buf, len, !strcmp(g_kind, "zero") ?
		 "fill mib=224 zero=100 seed=%u hold=-1" : !strcmp(g_kind, "base") ?
		 "fill mib=224 identical=100 seed=%u hold=-1" :
		 "fill mib=100 identical=100 shuffle=1 seed=%u hold=-1", 1000 + i);
}

static void merge_once(const char *kind, bool wp, double *per_s,
		       double *per_cpu_s)
{
	struct fleet f;
	struct ksm_stats st;
	uint64_t v, t0;
	double c0;

	g_kind = kind;
	fleet_create(&f, 4, !strcmp(kind, "frame") ? 128 * MIB : 256 * MIB,
		     wp, kind_args);
	for (unsigned i = 0; i < f.n; i++)
		hv_vm_start(f.vm[i]);
	for (unsigned i = 0; i < f.n; i++)
		while (!hv_vm_result(f.vm[i], DVM_RESULT_FILL_PAGES, &v))
			usleep(20000);
	t0 = hv_now_ns();
	c0 = thread_cpu_s();
	ksm_scan_pass(f.k);
	double wall = (double)(hv_now_ns() - t0) / 1e9, cpu = thread_cpu_s() - c0;
	ksm_stats(f.k, &st);
	*per_s = (double)st.merges / wall;
	*per_cpu_s = (double)st.merges / cpu;
	fleet_destroy(&f);
}

/* ----------------------------------------------------------------- main */

static json_t *g_json;

static void row(const char *key, const char *what, double pause, double wp,
		const char *unit)
{
	printf("| %s | %.0f %s | %.0f %s |\n", what, pause, unit, wp, unit);
	json_object_set_new(g_json, key, json_pack("{s:f, s:f, s:s}", "pause",
						   pause, "wp", wp, "unit", unit));
}

static double med(double *v, int n)
{
	return bench_pct(v, (size_t)n, 50);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "out", required_argument, 0, 'o' },
		{ "reps", required_argument, 0, 'r' },
		{ "guest", required_argument, 0, 'g' },
		{ "seconds", required_argument, 0, 's' },
		{ "mem", required_argument, 0, 'm' },
		{ "fill", required_argument, 0, 'f' },
		{ "only", required_argument, 0, 'O' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	const char *out = "build/results", *only = NULL;
	char err[256], path[4200];
	int c;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'o': out = optarg; break;
		case 'r': g_reps = atoi(optarg); break;
		case 'g': snprintf(g_guest, sizeof(g_guest), "%s", optarg); break;
		case 's': g_seconds = atof(optarg); break;
		case 'm': g_mem = (unsigned)atoi(optarg); break;
		case 'f': g_fill = (unsigned)atoi(optarg); break;
		case 'O': only = optarg; break;
		case 'h':
			puts("usage: bench_ksm_stall [--out DIR] [--reps N] [--guest ELF]"
			     " [--seconds S] [--mem MiB] [--fill MiB] [--only live|merge]\n"
			     "Guest stall per merge batch on issue 12's mixed fleet, and "
			     "merge throughput,\nwrite-protect against pause in the same "
			     "run.  Writes DIR/ksm_stall.json.");
			return 0;
		default: return 2;
		}
	}
	g_reps = g_reps < 1 ? 1 : g_reps > MAXREP ? MAXREP : g_reps;
	if (hv_init(err, sizeof(err)) < 0)
		die("hv_init", err);
	if (hv_wp_supported(err, sizeof(err)))
		die("write-protect unavailable", err);
	long long old = ksm_sysctl_read("/proc/sys/vm/max_map_count");
	if (old >= 0 && old < 1000000)
		ksm_sysctl_write("/proc/sys/vm/max_map_count", 1000000);
	mkdir(out, 0755);
	g_json = json_object();
	printf("\nguest stall per merge batch, pause vs write-protect (medians of "
	       "%d runs, modes alternating; 2 shared cores, nested KVM)\n"
	       "| figure | pause | write-protect |\n|---|---|---|\n", g_reps);

	if (!only || !strcmp(only, "live")) {
		static struct live lv[2][MAXREP];
		double v[2][MAXREP];
		for (int r = 0; r < g_reps; r++)
			for (int m = 0; m < 2; m++) {
				bool wp = (m + r) % 2;   /* order flips */
				live_run(wp, &lv[wp][r]);
			}
#define MED(field) ({ for (int m_ = 0; m_ < 2; m_++)			\
		for (int r_ = 0; r_ < g_reps; r_++)			\
			v[m_][r_] = lv[m_][r_].field;			\
		})
		char what[160];
		snprintf(what, sizeof(what), "%u x %u MiB filling %u (4 clones, 2 "
			 "shuffled, 2 unique-heavy), %.0f s", NVM, g_mem, g_fill,
			 g_seconds);
		printf("| **mixed fleet** | %s | |\n", what);
		static const char *const pn[3] = { "p50", "p99", "max" };
		for (int p = 0; p < 6; p++) {
			char key[64], w[96];
			if (p < 3)
				MED(stall[p]);
			else
				MED(win[p - 3]);
			snprintf(key, sizeof(key), p < 3 ? "stall_%s_us" :
				 "wp_window_%s_us", pn[p % 3]);
			snprintf(w, sizeof(w), p < 3 ? "guest stall per batch, %s "
				 "(goal: p99 <= 1 ms, max <= 5 ms)" : "  write-protect "
				 "window (bounds a wait), %s", pn[p % 3]);
			row(key, w, med(v[0], g_reps), med(v[1], g_reps), "us");
		}
		MED(batches);
		row("batches", "batches", med(v[0], g_reps), med(v[1], g_reps), "");
		MED(waits);
		row("wp_waits", "  writes that waited on a protected page",
		    med(v[0], g_reps), med(v[1], g_reps), "");
		MED(merges);
		row("merges", "pages merged", med(v[0], g_reps), med(v[1], g_reps), "");
		MED(cpu_s);
		printf("| scanner CPU | %.2f s | %.2f s |\n", med(v[0], g_reps),
		       med(v[1], g_reps));
		json_object_set_new(g_json, "scanner_cpu_s", json_pack("{s:f, s:f}",
			"pause", med(v[0], g_reps), "wp", med(v[1], g_reps)));
		for (int m = 0; m < 2; m++)
			for (int r = 0; r < g_reps; r++)
				v[m][r] = lv[m][r].merges / lv[m][r].cpu_s;
		row("merges_per_cpu_s", "pages merged per scanner CPU-second",
		    med(v[0], g_reps), med(v[1], g_reps), "");
		MED(saved_mib);
		row("saved_mib", "saved (ksm's bytes_saved)", med(v[0], g_reps),
		    med(v[1], g_reps), "MiB");
		MED(fill_s);
		printf("| time for all 8 to fill | %.1f s | %.1f s |\n",
		       med(v[0], g_reps), med(v[1], g_reps));
		MED(vmas);
		row("vmas", "VMAs of the process at the end", med(v[0], g_reps),
		    med(v[1], g_reps), "");
#undef MED
	}
	if (!only || !strcmp(only, "merge")) {
		static const char *const kinds[] = { "base", "frame", "zero" };
		static const char *const names[] = { "same-GPA", "cross-GPA "
			"(shuffled)", "zero" };
		for (int kk = 0; kk < 3; kk++) {
			double s[2][MAXREP], cp[2][MAXREP];
			char key[64], w[128];
			fprintf(stderr, "bench_ksm_stall: merge throughput, %s\n",
				kinds[kk]);
			for (int r = 0; r < g_reps; r++)
				for (int m = 0; m < 2; m++) {
					bool wp = (m + r) % 2;
					merge_once(kinds[kk], wp, &s[wp][r], &cp[wp][r]);
				}
			snprintf(key, sizeof(key), "merge_%s_pages_per_s", kinds[kk]);
			snprintf(w, sizeof(w), "merge throughput, %s, 4 guests, first "
				 "pass (hashing included)", names[kk]);
			row(key, w, med(s[0], g_reps), med(s[1], g_reps), "pages/s");
			snprintf(key, sizeof(key), "merge_%s_pages_per_cpu_s",
				 kinds[kk]);
			row(key, "  the same per scanner CPU-second", med(cp[0], g_reps),
			    med(cp[1], g_reps), "pages/s");
		}
	}
	if (old >= 0 && old < 1000000)
		ksm_sysctl_write("/proc/sys/vm/max_map_count", old);
	snprintf(path, sizeof(path), "%s/ksm_stall.json", out);
	json_object_set_new(g_json, "reps", json_integer(g_reps));
	if (json_dump_file(g_json, path, JSON_INDENT(2)))
		fprintf(stderr, "bench_ksm_stall: cannot write %s\n", path);
	json_decref(g_json);
	fprintf(stderr, "bench_ksm_stall: wrote %s\n", path);
	return 0;
}
