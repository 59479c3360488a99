/*
 * bench_ksm.c - ksm's figures (issue 3) on real micro guests: hashing
 * throughput on resident guest RAM, merge throughput and the guest stall
 * per merge batch (per path and batch size), convergence of 8 guests of
 * 512 MiB running `fill` then idling (dense engine against Linux KSM at
 * full pace and at its default pace, with the CPU each spent), the
 * scanner's steady-state CPU with idle guests, and the cost of rescans
 * when 0/1/4 % of memory changes per second.  It measures and reports
 * (markdown table, DIR/ksm.json, DIR/ksm.csv, DIR/ksm_convergence.dat and
 * an SVG plot when gnuplot is installed); it asserts nothing.
 *
 * Host memory is a memory cgroup's usage (it charges memfd pages, which
 * PSS misses); the bench moves itself into a child of its own memory
 * cgroup.  Kernel KSM is always left with run=0, on signals too.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>
#include "hv.h"
#include "ksm/ksm.h"
#include "guest/patterns.h"
#include "bench/bench_util.h"
#include "cgroup.h"

#define MIB (1ull << 20)
#define MAXVM 8

static char g_guest[4096] = "build/guest/microguest.elf";
static int g_reps = 3;
static json_t *g_json;     /* every figure, by key */
static FILE *g_csv;

/* ------------------------------------------------------------ helpers */

static double now_s(void)
{
	return (double)hv_now_ns() / 1e9;
}

static double thread_cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* v[n/2] of the sorted sample: the nearest-rank median */
static double median(double *v, int n)
{
	return n > 0 ? bench_pct(v, (size_t)n, 50) : 0;
}

/* One figure: the table row, the JSON key and the CSV line. */
static void figure(const char *key, const char *what, double v,
		   const char *unit, const char *note)
{
	printf("| %s | %.*f %s | %s |\n", what, v >= 100 || v == (long long)v ? 0 : 2,
	       v, unit, note ? note : "");
	fflush(stdout);
	json_object_set_new(g_json, key, json_real(v));
	if (g_csv)
		fprintf(g_csv, "%s,%.6g,%s\n", key, v, unit);
}

static void quiet(struct hv_vm *vm, const char *l, size_t n, void *c)
{
	(void)vm; (void)l; (void)n; (void)c;
}

/* Kernel KSM must not stay on if the bench is interrupted. */
static void on_signal(int sig)
{
	int fd = open("/sys/kernel/mm/ksm/run", O_WRONLY);
	if (fd >= 0) {
		if (write(fd, "0", 1) < 0) {
			/* nothing more to do in a signal handler */
		}
		close(fd);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

/* ------------------------------------------------------------- cgroup */

/* The bench's child memory cgroup is the tests' (tests/support/cgroup.h). */
static double cg_bytes(void)
{
	return cg_dir()[0] ? (double)cg_usage() : 0;
}

/* --------------------------------------------------------------- VMs */

struct vmset {
	unsigned n;
	struct hv_vm *vm[MAXVM];
	int base;          /* the domain's base memfd, or -1 */
	struct ksm *k;
	double t_filled;   /* when the last guest reported its fill */
};

static struct ksm *g_live;   /* destroyed by cleanup on early exits */

static void set_tunable(struct ksm *k, const char *n, unsigned long long v)
{
	char val[32], err[256];
	snprintf(val, sizeof(val), "%llu", v);
	if (ksm_set_tunable(k, n, val, err, sizeof(err)))
		fprintf(stderr, "bench_ksm: %s\n", err);
}

/* n guests of mem bytes running args (one %u: the guest's index, for
 * seeds), registered with a new ksm of that engine (not started). */
static void vmset_create(struct vmset *s, enum ksm_engine engine, unsigned n,
			 uint64_t mem, const char *fmt)
{
	char err[512], name[16], args[256];
	struct ksm_config cfg;
	memset(s, 0, sizeof(*s));
	s->n = n;
	s->base = engine == KSM_ENGINE_DENSE ?
		  memfd_create("bench-ksm-base", MFD_CLOEXEC) : -1;
	for (unsigned i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "b%u", i);
		snprintf(args, sizeof(args), fmt, 1000 + i);
		struct hv_vm_config c = {
			.name = name, .mem_bytes = mem, .ncpus = 1, .image = g_guest,
			.cmdline = args, .base_memfd = s->base, .timeout_s = 1800,
			.console = quiet,
		};
		if (hv_vm_create(&c, &s->vm[i], err, sizeof(err)) < 0) {
			fprintf(stderr, "bench_ksm: %s\n", err);
			exit(1);
		}
	}
	ksm_config_default(&cfg);
	cfg.engine = engine;
	if (ksm_create(&cfg, &s->k, err, sizeof(err))) {
		fprintf(stderr, "bench_ksm: %s\n", err);
		exit(1);
	}
	g_live = s->k;
	for (unsigned i = 0; i < n; i++) {
		struct ksm_vm *kv;
		if (ksm_add_vm(s->k, &ksm_hv_ops, s->vm[i], 0, &kv, err, sizeof(err))) {
			fprintf(stderr, "bench_ksm: %s\n", err);
			exit(1);
		}
	}
}

/* Starts the guests and waits until each reported RESULT key. */
static void vmset_run_until(struct vmset *s, uint64_t key)
{
	for (unsigned i = 0; i < s->n; i++)
		hv_vm_start(s->vm[i]);
	for (unsigned i = 0; i < s->n; i++) {
		uint64_t v;
		while (!hv_vm_result(s->vm[i], key, &v)) {
			if (hv_vm_wait_timeout(s->vm[i], 0.02)) {
				struct hv_exit_status st;
				hv_vm_status(s->vm[i], &st);
				fprintf(stderr, "bench_ksm: guest ended early: %s\n",
					st.reason);
				exit(1);
			}
		}
	}
	s->t_filled = now_s();
}

static void vmset_destroy(struct vmset *s)
{
	ksm_destroy(s->k);
	g_live = NULL;
	for (unsigned i = 0; i < s->n; i++)
		hv_vm_destroy(s->vm[i]);
	if (s->base >= 0)
		close(s->base);
}

/* The guests' working sets, as host pointers (fill's region is
 * contiguous from dvm_first_region_gpa). */
static void region_of(struct hv_vm *vm, uint64_t pages, uint8_t **p)
{
	unsigned nr;
	const struct hv_ram_range *r = hv_vm_ranges(vm, &nr);
	uint64_t gpa = dvm_first_region_gpa(4ull << 20, r[nr - 1].gpa + r[nr - 1].len);
	*p = hv_gpa_to_hva(vm, gpa, pages * 4096);
}

/* ----------------------------------------------------------- hashing */

static void bench_hash(void)
{
	struct vmset s;
	const unsigned n = 4, mib = 480;
	double xx[16], eng = 0;

	fprintf(stderr, "bench_ksm: hashing, %u x 512 MiB of unique pages\n", n);
	vmset_create(&s, KSM_ENGINE_DENSE, n, 512 * MIB,
		     "fill mib=480 seed=%u hold=-1");
	vmset_run_until(&s, DVM_RESULT_FILL_PAGES);
	uint64_t pages = (uint64_t)mib * 256;
	static volatile uint64_t sink;   /* keeps the hashing */
	for (int r = 0; r < g_reps && r < 16; r++) {
		double c0 = thread_cpu_s();
		for (unsigned i = 0; i < n; i++) {
			uint8_t *p;
			region_of(s.vm[i], pages, &p);
			for (uint64_t j = 0; j < pages; j++)
				sink += XXH3_64bits(p + j * 4096, 4096);
		}
		xx[r] = (double)(pages * n) / (thread_cpu_s() - c0);
	}
	/* the engine's first pass: hash, classify, candidate table */
	double c0 = thread_cpu_s();
	ksm_scan_pass(s.k);
	struct ksm_stats st;
	ksm_stats(s.k, &st);
	eng = (double)st.pages_hashed / (thread_cpu_s() - c0);
	vmset_destroy(&s);
	figure("hash_xxh3_pages_per_cpu_s", "XXH3 over resident guest RAM, one core",
	       median(xx, g_reps < 16 ? g_reps : 16), "pages/s",
	       "goal >= 1.5M pages/s per core");
	figure("scan_first_pass_pages_per_cpu_s", "first pass over unique pages "
	       "(hash + classify + candidate table)", eng, "pages/s", "per CPU-second");
}

/* ------------------------------------------------------------- merging */

struct merge_res {
	double pages_per_s, pages_per_cpu_s, p50_us, p99_us, vmas;
};

/* One synchronous first pass over n guests whose pages are all of one
 * kind; merges per second of that pass (hashing included). */
static struct merge_res merge_once(const char *what, unsigned batch)
{
	struct vmset s;
	struct merge_res m;
	const char *fmt = !strcmp(what, "zero") ?
		"fill mib=224 zero=100 seed=%u hold=-1" : !strcmp(what, "base") ?
		"fill mib=224 identical=100 seed=%u hold=-1" :
		"fill mib=100 identical=100 shuffle=1 seed=%u hold=-1";
	uint64_t mem = !strcmp(what, "frame") ? 128 * MIB : 256 * MIB;

	vmset_create(&s, KSM_ENGINE_DENSE, 4, mem, fmt);
	set_tunable(s.k, "batch_pages", batch);
	vmset_run_until(&s, DVM_RESULT_FILL_PAGES);
	double t0 = now_s(), c0 = thread_cpu_s();
	ksm_scan_pass(s.k);
	double wall = now_s() - t0, cpu = thread_cpu_s() - c0;
	struct ksm_stats st;
	ksm_stats(s.k, &st);
	m.pages_per_s = (double)st.merges / wall;
	m.pages_per_cpu_s = (double)st.merges / cpu;
	/* the guest stall either way: a pause, or a write-protect wait */
	m.p50_us = (double)st.stall_p50_ns / 1e3;
	m.p99_us = (double)st.stall_p99_ns / 1e3;
	m.vmas = (double)hv_vma_count();
	if (st.map_failures)
		fprintf(stderr, "bench_ksm: %s: %llu map failures\n", what,
			(unsigned long long)st.map_failures);
	vmset_destroy(&s);
	return m;
}

static void bench_merge(void)
{
	static const char *const kinds[] = { "base", "frame", "zero" };
	static const char *const names[] = {
		"same-GPA duplicates (base memfd)", "cross-GPA duplicates (frames, "
		"shuffled)", "zero pages (discard)" };
	long long old = ksm_sysctl_read("/proc/sys/vm/max_map_count");
	if (old >= 0 && old < 1000000)
		ksm_sysctl_write("/proc/sys/vm/max_map_count", 1000000);
	for (int k = 0; k < 3; k++) {
		double v[16], c[16], p50[16], p99[16];
		int reps = g_reps < 16 ? g_reps : 16;
		fprintf(stderr, "bench_ksm: merge throughput, %s\n", kinds[k]);
		for (int r = 0; r < reps; r++) {
			struct merge_res m = merge_once(kinds[k], 256);
			v[r] = m.pages_per_s;
			c[r] = m.pages_per_cpu_s;
			p50[r] = m.p50_us;
			p99[r] = m.p99_us;
		}
		char key[96], what[160];
		snprintf(key, sizeof(key), "merge_%s_pages_per_s", kinds[k]);
		snprintf(what, sizeof(what), "merge throughput, %s, first pass "
			 "(hashing included)", names[k]);
		figure(key, what, median(v, reps), "pages/s", "goal >= 100k pages/s");
		snprintf(key, sizeof(key), "merge_%s_pages_per_cpu_s", kinds[k]);
		snprintf(what, sizeof(what), "  the same per scanner CPU-second");
		figure(key, what, median(c, reps), "pages/s", NULL);
		snprintf(key, sizeof(key), "pause_%s_p50_us", kinds[k]);
		snprintf(what, sizeof(what), "  guest stall per merge batch (256 "
			 "pages; pause or write-protect wait), p50");
		figure(key, what, median(p50, reps), "us", NULL);
		snprintf(key, sizeof(key), "pause_%s_p99_us", kinds[k]);
		snprintf(what, sizeof(what), "  guest stall per merge batch (256 "
			 "pages; pause or write-protect wait), p99");
		figure(key, what, median(p99, reps), "us", NULL);
	}
	/* the batch size trades pause length against pause count */
	static const unsigned batches[] = { 64, 1024 };
	for (int b = 0; b < 2; b++) {
		fprintf(stderr, "bench_ksm: batch_pages=%u\n", batches[b]);
		struct merge_res m = merge_once("base", batches[b]);
		char key[64], what[128];
		snprintf(key, sizeof(key), "merge_base_batch%u_pages_per_s", batches[b]);
		snprintf(what, sizeof(what), "same-GPA merges with batch_pages=%u",
			 batches[b]);
		figure(key, what, m.pages_per_s, "pages/s", NULL);
		snprintf(key, sizeof(key), "pause_base_batch%u_p50_us", batches[b]);
		snprintf(what, sizeof(what), "  stall per batch of %u, p50", batches[b]);
		figure(key, what, m.p50_us, "us", NULL);
		snprintf(key, sizeof(key), "pause_base_batch%u_p99_us", batches[b]);
		snprintf(what, sizeof(what), "  stall per batch of %u, p99", batches[b]);
		figure(key, what, m.p99_us, "us", NULL);
	}
	if (old >= 0 && old < 1000000)
		ksm_sysctl_write("/proc/sys/vm/max_map_count", old);
}

/* --------------------------------------------------------- convergence */

#define NSAMP 8192
struct conv {
	const char *label;
	double unshared;                 /* bytes before the engine starts */
	double t[NSAMP], saved[NSAMP], cpu[NSAMP];
	unsigned n;
	double final_saved, t90, cpu90, window, cpu_total;
	uint64_t unmerges, races;    /* dense: at the last sample */
	bool settled;
};

/* 8 guests of 512 MiB fill 60/20/20 and idle; the engine starts after
 * the last fill; samples until the saving settles (no gain of 0.2 % of
 * the unshared footprint for `quiet` seconds) or `window` seconds. */
static void converge(struct conv *c, enum ksm_engine engine,
		     unsigned long long pages_per_sec, unsigned sleep_ms,
		     double quiet_s, double window, struct vmset *keep)
{
	struct vmset s;
	double base_usage = cg_bytes();

	fprintf(stderr, "bench_ksm: convergence, %s\n", c->label);
	vmset_create(&s, engine, MAXVM, 512 * MIB,
		     "fill mib=480 identical=60 zero=20 seed=%u hold=-1");
	set_tunable(s.k, "sleep_ms", sleep_ms);
	set_tunable(s.k, "pages_per_sec", pages_per_sec);
	vmset_run_until(&s, DVM_RESULT_FILL_PAGES);
	struct stat fs;
	double mfd = s.base >= 0 && fstat(s.base, &fs) == 0 ?
		     (double)fs.st_blocks * 512 : 0;
	/* a guest write to a base hole allocates a zero page there first:
	 * not part of the guests' own footprint (ksm reclaims them) */
	c->unshared = cg_bytes() - base_usage - mfd;
	int rc;
	for (int i = 0; (rc = ksm_start(s.k)) == -EBUSY && i < 120; i++)
		usleep(500000);
	if (rc) {
		fprintf(stderr, "bench_ksm: %s: ksm_start: %s\n", c->label,
			strerror(-rc));
		c->n = 0;
		vmset_destroy(&s);
		return;
	}
	double t0 = now_s(), last_gain = t0, best = 0;
	c->n = 0;
	c->settled = false;
	while (c->n < NSAMP) {
		usleep(20000);   /* fine enough for a 1 s convergence */
		struct ksm_stats st;
		ksm_stats(s.k, &st);
		double t = now_s() - t0, sv = c->unshared - (cg_bytes() - base_usage);
		c->t[c->n] = t;
		c->saved[c->n] = sv;
		c->cpu[c->n++] = st.cpu_seconds;
		c->unmerges = st.unmerges;
		c->races = st.merge_races;
		if (sv > best + 0.002 * c->unshared) {
			best = sv;
			last_gain = now_s();
		}
		if (best > 0.05 * c->unshared && now_s() - last_gain > quiet_s) {
			c->settled = true;
			break;
		}
		if (t > window)
			break;
	}
	c->window = c->t[c->n - 1];
	c->final_saved = c->saved[c->n - 1];
	c->cpu_total = c->cpu[c->n - 1];
	c->t90 = c->cpu90 = -1;
	/* the 90 % crossing, interpolated between the two samples around it */
	for (unsigned i = 0; i < c->n && c->settled; i++)
		if (c->saved[i] >= 0.9 * c->final_saved) {
			double f = 1;
			if (i > 0 && c->saved[i] > c->saved[i - 1])
				f = (0.9 * c->final_saved - c->saved[i - 1]) /
				    (c->saved[i] - c->saved[i - 1]);
			c->t90 = i ? c->t[i - 1] + f * (c->t[i] - c->t[i - 1])
				   : c->t[i];
			c->cpu90 = i ? c->cpu[i - 1] + f * (c->cpu[i] -
							     c->cpu[i - 1])
				     : c->cpu[i];
			break;
		}
	if (keep)
		*keep = s;   /* the caller measures more, then destroys */
	else
		vmset_destroy(&s);
}

static void write_plot(const char *dir, struct conv *const *c, int n)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/ksm_convergence.dat", dir);
	FILE *f = fopen(path, "w");
	if (!f)
		return;
	for (int k = 0; k < n; k++) {
		fprintf(f, "# %s: seconds, saved MiB, engine CPU seconds\n",
			c[k]->label);
		for (unsigned i = 0; i < c[k]->n; i++)
			fprintf(f, "%.2f %.1f %.3f\n", c[k]->t[i],
				c[k]->saved[i] / MIB, c[k]->cpu[i]);
		fprintf(f, "\n\n");
	}
	fclose(f);
	snprintf(path, sizeof(path), "%s/ksm_convergence.gp", dir);
	f = fopen(path, "w");
	if (!f)
		return;
	fprintf(f, "set terminal svg size 900,500 noenhanced\n"
		"set output '%s/ksm_convergence.svg'\n"
		"set title '8 guests x 512 MiB, fill 60%% identical 20%% zero: host "
		"memory saved'\nset xlabel 'seconds after the engine started'\n"
		"set ylabel 'MiB saved (memory cgroup)'\nset key bottom right\n"
		"set logscale x\nplot ", dir);
	for (int k = 0; k < n; k++)
		fprintf(f, "%s'%s/ksm_convergence.dat' index %d using ($1+0.1):2 "
			"with lines lw 2 title '%s'", k ? ", " : "", dir, k, c[k]->label);
	fprintf(f, "\n");
	fclose(f);
	char cmd[8600];
	snprintf(cmd, sizeof(cmd), "command -v gnuplot >/dev/null && gnuplot "
		 "'%s/ksm_convergence.gp' && echo 'bench_ksm: plot %s/ksm_convergence.svg'"
		 " >&2", dir, dir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench_ksm: no gnuplot: data in %s/ksm_convergence.dat\n",
			dir);
}

static void bench_convergence(const char *dir)
{
	static struct conv ours = { .label = "dense (defaults)" },
			   kfull = { .label = "kernel KSM, pages_to_scan=20000" },
			   kdef = { .label = "kernel KSM default pace (100 pages / 20 ms)" };
	enum { MAXR = 16 };
	double dt[MAXR], dc[MAXR], ds[MAXR], kt[MAXR], kc[MAXR], ks[MAXR];
	double ratio[MAXR], idle_pct = 0, p50 = 0, p99 = 0;
	int reps = g_reps < MAXR ? g_reps : MAXR, nd = 0, nk = 0, nr = 0;
	struct vmset s;
	bool kernel_ok = ksm_sysctl_read("/sys/kernel/mm/ksm/run") == 0;
	char note[96];

	/* dense and kernel alternate, so that drift on this shared machine
	 * hits both alike; medians of the runs that settled */
	for (int r = 0; r < reps; r++) {
		converge(&ours, KSM_ENGINE_DENSE, 0, 50, 3, 120,
			 r == 0 ? &s : NULL);
		if (r == 0) {
			/* steady state: idle guests, the default pace */
			struct ksm_stats a, b;
			ksm_stats(s.k, &a);
			double t0 = now_s();
			sleep(10);
			ksm_stats(s.k, &b);
			idle_pct = 100.0 * (b.cpu_seconds - a.cpu_seconds) /
				   (now_s() - t0);
			p50 = (double)b.stall_p50_ns / 1e3;
			p99 = (double)b.stall_p99_ns / 1e3;
			vmset_destroy(&s);
		}
		fprintf(stderr, "bench_ksm: dense run %d: %.2f CPU-s to 90 %%, "
			"%llu unmerges, %llu races\n", r, ours.cpu90,
			(unsigned long long)ours.unmerges,
			(unsigned long long)ours.races);
		if (ours.t90 >= 0) {
			dt[nd] = ours.t90;
			dc[nd] = ours.cpu90;
			ds[nd++] = ours.final_saved;
		}
		if (!kernel_ok)
			continue;
		/* Linux KSM, as fast as it goes here: 20000 pages per 20 ms */
		converge(&kfull, KSM_ENGINE_KERNEL, 1000000, 20, 5, 150, NULL);
		fprintf(stderr, "bench_ksm: kernel run %d: %.2f CPU-s to 90 %%\n",
			r, kfull.cpu90);
		if (kfull.t90 >= 0) {
			kt[nk] = kfull.t90;
			kc[nk] = kfull.cpu90;
			ks[nk++] = kfull.final_saved;
			if (ours.t90 >= 0 && ours.cpu90 > 0)
				ratio[nr++] = kfull.cpu90 / ours.cpu90;
		}
	}
	snprintf(note, sizeof(note), "median of %d", nd);
	figure("conv_dense_t90_s", "convergence to 90 % of the final saving, 8 x "
	       "512 MiB, dense", median(dt, nd), "s", note);
	figure("conv_dense_cpu90_s", "  scanner CPU spent by then", median(dc, nd),
	       "CPU-s", NULL);
	figure("conv_dense_saved_mib", "  final saving (memory cgroup)",
	       median(ds, nd) / MIB, "MiB", NULL);
	figure("conv_dense_pause_p50_us", "  guest stall per merge batch (pause "
	       "or write-protect wait), p50", p50,
	       "us", NULL);
	figure("conv_dense_pause_p99_us", "  guest stall per merge batch (pause "
	       "or write-protect wait), p99", p99,
	       "us", NULL);
	figure("steady_idle_cpu_pct", "steady-state scanner CPU, idle guests after "
	       "convergence (sleep_ms=50)", idle_pct, "% of a core", "goal < 2 %");
	if (!kernel_ok) {
		fprintf(stderr, "bench_ksm: kernel KSM is running (someone else's): "
			"kernel figures skipped\n");
		write_plot(dir, (struct conv *const[]){ &ours }, 1);
		return;
	}
	snprintf(note, sizeof(note), "median of %d that settled of %d", nk, reps);
	figure("conv_kernel_full_t90_s", "convergence, kernel KSM at "
	       "pages_to_scan=20000 / 20 ms", median(kt, nk), "s", note);
	figure("conv_kernel_full_cpu90_s", "  ksmd CPU spent by then",
	       median(kc, nk), "CPU-s", NULL);
	figure("conv_kernel_full_saved_mib", "  final saving", median(ks, nk) / MIB,
	       "MiB", NULL);
	if (nr) {
		json_t *all = json_array();
		for (int i = 0; i < nr; i++)
			json_array_append_new(all, json_real(ratio[i]));
		json_object_set_new(g_json, "conv_speedup_equal_cpu_runs", all);
		snprintf(note, sizeof(note), "goal >= 5x; runs %.2f..%.2f",
			 bench_pct(ratio, (size_t)nr, 0),
			 bench_pct(ratio, (size_t)nr, 100));
		figure("conv_speedup_equal_cpu", "dense vs kernel at equal CPU "
		       "seconds (CPU-s to 90 %, kernel / dense, median of runs)",
		       median(ratio, nr), "x", note);
	}
	/* Linux KSM at its own default pace, for a bounded window */
	converge(&kdef, KSM_ENGINE_KERNEL, 5000, 20, 1e9, 60, NULL);
	double kpct = 100.0 * kdef.cpu_total / kdef.window;
	figure("kernel_default_cpu_pct", "kernel KSM at its default pace: ksmd CPU",
	       kpct, "% of a core", NULL);
	figure("kernel_default_saved_pct", "  its saving after 60 s, % of dense's "
	       "final saving", 100.0 * kdef.final_saved / median(ds, nd), "%", NULL);
	/* Not waited for: an identical page merges on its second scan at the
	 * earliest (its checksum must hold still), and identical pages are
	 * most of the saving, so 90 % takes more than one full scan of the
	 * guests' 8 x 480 MiB at 5000 pages/s. */
	double scan_s = 8.0 * 480 * 256 / 5000.0;
	figure("kernel_default_t90_lower_s", "  its time to 90 %, lower bound "
	       "(one full scan at 5000 pages/s)", scan_s, "s", "not waited for");
	figure("kernel_default_cpu_to_converge_lower_s", "  its CPU to get there, "
	       "lower bound", scan_s * kpct / 100.0, "CPU-s", NULL);
	figure("dense_cpu_to_converge_s", "dense engine: CPU to converge (all of it)",
	       median(dc, nd), "CPU-s", "goal: no more than KSM at its default pace");
	write_plot(dir, (struct conv *const[]){ &ours, &kfull, &kdef }, 3);
}

/* ---------------------------------------------------------- rescans */

static void bench_rescan(void)
{
	static const unsigned rates[] = { 0, 1, 4 };
	const unsigned n = 4, mib = 224;
	const double total = (double)n * mib * 256;

	for (int r = 0; r < 3; r++) {
		struct vmset s;
		char fmt[128];
		fprintf(stderr, "bench_ksm: rescan cost, %u %%/s\n", rates[r]);
		/* one seed: the guests' pages are equal, so rewritten pages
		 * unshare and reshare as well */
		snprintf(fmt, sizeof(fmt), "dirty mib=%u rate=%u seconds=-1 seed=1",
			 mib, rates[r]);
		vmset_create(&s, KSM_ENGINE_DENSE, n, 256 * MIB, fmt);
		for (unsigned i = 0; i < n; i++)
			hv_vm_start(s.vm[i]);
		ksm_start(s.k);
		sleep(6);   /* the initial write and its merge */
		struct ksm_stats a, b;
		ksm_stats(s.k, &a);
		double t0 = now_s();
		sleep(8);
		ksm_stats(s.k, &b);
		double dt = now_s() - t0;
		vmset_destroy(&s);
		double hashed = (double)(b.pages_hashed - a.pages_hashed) / dt;
		double cpu = 100.0 * (b.cpu_seconds - a.cpu_seconds) / dt;
		char key[64], what[160];
		snprintf(key, sizeof(key), "rescan_%upct_hashed_frac", rates[r]);
		snprintf(what, sizeof(what), "rescan, %u %% of memory changing per "
			 "second: pages hashed per second, %% of all pages", rates[r]);
		figure(key, what, 100.0 * hashed / total, "%/s", NULL);
		snprintf(key, sizeof(key), "rescan_%upct_cpu_pct", rates[r]);
		snprintf(what, sizeof(what), "  scanner CPU (unshare, rehash, "
			 "reshare)");
		figure(key, what, cpu, "% of a core", rates[r] == 1 ?
		       "goal: in proportion to the change" : NULL);
		snprintf(key, sizeof(key), "rescan_%upct_merges_per_s", rates[r]);
		snprintf(what, sizeof(what), "  merges per second (reshares)");
		figure(key, what, (double)(b.merges - a.merges) / dt, "pages/s", NULL);
		snprintf(key, sizeof(key), "rescan_%upct_compared_frac", rates[r]);
		snprintf(what, sizeof(what), "  pages matched at their GPA without "
			 "a hash, per second, %% of all pages");
		figure(key, what, 100.0 * (double)(b.pages_compared -
						   a.pages_compared) / dt / total,
		       "%/s", NULL);
		snprintf(key, sizeof(key), "rescan_%upct_races_per_s", rates[r]);
		snprintf(what, sizeof(what), "  merges refused by the paused compare "
			 "(the page changed), per second");
		figure(key, what, (double)(b.merge_races - a.merge_races) / dt,
		       "pages/s", NULL);
	}
}

/* ------------------------------------------------------------------ main */

static void cleanup(void)
{
	if (g_live)
		ksm_destroy(g_live);   /* kernel engine: run=0, tunables back */
	g_live = NULL;
	cg_leave();
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "out", required_argument, 0, 'o' },
		{ "reps", required_argument, 0, 'r' },
		{ "guest", required_argument, 0, 'g' },
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
		case 'r': g_reps = atoi(optarg) > 0 ? atoi(optarg) : 1; break;
		case 'g': snprintf(g_guest, sizeof(g_guest), "%s", optarg); break;
		case 'O': only = optarg; break;
		case 'h':
			puts("usage: bench_ksm [--out DIR] [--reps N] [--guest ELF] "
			     "[--only hash|merge|conv|rescan]\n"
			     "Measures ksm on micro guests: hashing, merge throughput and "
			     "pauses,\nconvergence against kernel KSM, idle CPU, rescan "
			     "cost.  Writes\nDIR/ksm.json, DIR/ksm.csv and the convergence "
			     "data/plot.");
			return 0;
		default: return 2;
		}
	}
	if (hv_init(err, sizeof(err)) < 0) {
		fprintf(stderr, "bench_ksm: %s\n", err);
		return 1;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	atexit(cleanup);
	if (!cg_enter("bench-ksm"))
		fprintf(stderr, "bench_ksm: no writable memory cgroup: convergence "
			"savings will read 0\n");
	mkdir(out, 0755);
	g_json = json_object();
	snprintf(path, sizeof(path), "%s/ksm.csv", out);
	g_csv = fopen(path, "w");
	if (g_csv)
		fprintf(g_csv, "figure,value,unit\n");

	printf("\nksm figures (medians of %d runs where repeated; 2 shared cores, "
	       "nested KVM)\n| figure | value | goal / note |\n|---|---|---|\n",
	       g_reps);
	if (!only || !strcmp(only, "hash"))
		bench_hash();
	if (!only || !strcmp(only, "merge"))
		bench_merge();
	if (!only || !strcmp(only, "conv"))
		bench_convergence(out);
	if (!only || !strcmp(only, "rescan"))
		bench_rescan();

	snprintf(path, sizeof(path), "%s/ksm.json", out);
	json_object_set_new(g_json, "reps", json_integer(g_reps));
	if (json_dump_file(g_json, path, JSON_INDENT(2)))
		fprintf(stderr, "bench_ksm: cannot write %s\n", path);
	json_decref(g_json);
	if (g_csv)
		fclose(g_csv);
	fprintf(stderr, "bench_ksm: wrote %s/ksm.json and ksm.csv\n", out);
	return 0;
}
