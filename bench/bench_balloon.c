/*
 * bench_balloon.c - ballooning figures (issue 4) with the micro guest:
 * inflate and deflate throughput with 2 MiB and with 4 KiB balloon pages,
 * time from target set to reached, and host CPU per GiB inflated.  It
 * measures and reports (markdown table, DIR/balloon.json, DIR/balloon.csv);
 * it asserts nothing.
 *
 * Method.  A fresh 4 GiB guest per run runs `idle touch=1`: it writes every
 * free page once and frees it, so its memory is resident on the host, as a
 * guest's that used its memory and released it.  The balloon then goes to
 * 3 GiB and back to 0, then to 3 GiB and back once more (the second
 * inflate finds the memory already returned to the host).  Times are the
 * device's own target-set-to-reached figure (balloon_host_stats.reach_ns);
 * throughput = bytes / that time.  CPU is getrusage(RUSAGE_SELF) over the
 * same interval: the vCPU thread's guest work and the host's discards
 * (system time), plus this thread's polling.  The latency rows use 64 MiB
 * steps on a 512 MiB guest, idle and running `verify`.  Medians over runs.
 *
 * Baseline: QEMU's virtio-balloon, measured by bench/qemu_balloon.sh (TCG
 * here, a 2 GiB guest ballooned by 1 GiB).  `make bench` runs it after this
 * program, so the QEMU column shows DIR/qemu_balloon.json as the previous
 * `make bench` left it (its figures are copied into balloon.json too), or
 * says it was not run.  Compare host-side costs: madvise calls and CPU per
 * GiB; QEMU's times include the emulated guest driver.
 */
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include "hv.h"
#include "balloon-host/balloon_host.h"
#include "bench/bench_util.h"

#define MiB (1024ULL * 1024)
#define GiB (1024ULL * MiB)
#define MAXREPS 32

static char g_guest[4096];

static double median(const double *v, int n)
{
	double s[MAXREPS * 40];
	if (n <= 0)
		return 0;
	memcpy(s, v, (size_t)n * sizeof(*v));
	qsort(s, (size_t)n, sizeof(*s), bench_cmpd);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/* ------------------------------------------------------------- a VM */

struct bvm {
	struct hv_vm *vm;
	struct balloon_host *dev;
	pthread_mutex_t lock;
	bool touched;
};

static void on_console(struct hv_vm *vm, const char *line, size_t len, void *ctx)
{
	struct bvm *b = ctx;
	(void)vm;
	if (len >= 13 && !memcmp(line, "idle: touched", 13)) {
		pthread_mutex_lock(&b->lock);
		b->touched = true;
		pthread_mutex_unlock(&b->lock);
	}
	if (len >= 6 && (!memcmp(line, "panic:", 6) || strstr(line, "FAILED")))
		fprintf(stderr, "bench_balloon: guest: %.*s\n", (int)len, line);
}

static void quiet_log(void *ctx, const char *line)
{
	(void)ctx;
	(void)line;
}

/* --base: guest RAM is MAP_PRIVATE of this memfd, as with [ksm] engine =
 * dense (the balloon then zeroes with anonymous mappings, hv_vm_zero). */
static int g_base_fd = -1;

static void bvm_start(struct bvm *b, const char *name, uint64_t mem,
		      const char *args)
{
	char err[512];
	struct hv_vm_config c = {
		.name = name, .mem_bytes = mem, .ncpus = 1, .image = g_guest,
		.cmdline = args, .base_memfd = g_base_fd, .timeout_s = 600,
		.console = on_console, .ctx = b, .features = HV_FEAT_BALLOON,
	};
	struct balloon_host_config bc = { .log = quiet_log };
	b->touched = false;
	pthread_mutex_init(&b->lock, NULL);
	if (hv_vm_create(&c, &b->vm, err, sizeof(err)) < 0 ||
	    balloon_host_attach(b->vm, &bc, &b->dev) < 0) {
		fprintf(stderr, "bench_balloon: %s\n", err);
		exit(1);
	}
	hv_vm_start(b->vm);
}

static void bvm_end(struct bvm *b)
{
	hv_vm_stop(b->vm);
	hv_vm_wait(b->vm);
	balloon_host_detach(b->dev);
	hv_vm_destroy(b->vm);
	pthread_mutex_destroy(&b->lock);
}

static void wait_touched(struct bvm *b)
{
	for (int i = 0; i < 12000; i++) {
		pthread_mutex_lock(&b->lock);
		bool t = b->touched;
		pthread_mutex_unlock(&b->lock);
		if (t)
			return;
		usleep(10000);
	}
	fprintf(stderr, "bench_balloon: the guest did not touch its memory in 120 s\n");
	exit(1);
}

static double cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static double sys_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

struct move {
	double ms;        /* target set -> reached, by the device */
	double cpu_ms;    /* process CPU over the move */
	double sys_ms;
};

/* Sets the target and waits until the device reports it reached. */
static struct move set_and_wait(struct bvm *b, uint64_t bytes)
{
	struct balloon_host_stats s;
	struct move m;
	double c0 = cpu_s(), s0 = sys_s();
	balloon_host_set_target(b->dev, bytes);
	for (int i = 0;; i++) {
		balloon_host_stats(b->dev, &s);
		if (s.target_reached)
			break;
		if (i > 600000) {
			fprintf(stderr, "bench_balloon: target %" PRIu64 " MiB not "
				"reached (at %" PRIu64 " MiB)\n", bytes >> 20,
				s.size_bytes >> 20);
			exit(1);
		}
		usleep(100);
	}
	m.ms = (double)s.reach_ns / 1e6;
	m.cpu_ms = (cpu_s() - c0) * 1e3;
	m.sys_ms = (sys_s() - s0) * 1e3;
	return m;
}

/* ----------------------------------------------------------- figures */

struct mode {
	const char *name;         /* "2M" or "4K" */
	double infl_gibs[MAXREPS], defl_gibs[MAXREPS], infl2_gibs[MAXREPS];
	double infl_ms[MAXREPS], cpu_per_gib[MAXREPS], sys_per_gib[MAXREPS];
	double exits_per_gib[MAXREPS], discards_per_gib[MAXREPS];
};

static void run_mode(struct mode *md, bool huge, uint64_t mem, uint64_t size,
		     int reps)
{
	char args[128];
	double gib = (double)size / GiB;
	snprintf(args, sizeof(args), "idle touch=1 balloon_huge=%d", huge ? 1 : 0);
	for (int r = 0; r < reps; r++) {
		struct bvm b;
		fprintf(stderr, "bench_balloon: %s pages, run %d/%d: touching %" PRIu64
			" MiB\n", md->name, r + 1, reps, mem >> 20);
		bvm_start(&b, "bb", mem, args);
		wait_touched(&b);
		struct hv_vm_counters c0, c1;
		struct balloon_host_stats d0, d1;
		hv_vm_counters(b.vm, &c0);
		balloon_host_stats(b.dev, &d0);
		struct move in = set_and_wait(&b, size);
		hv_vm_counters(b.vm, &c1);
		balloon_host_stats(b.dev, &d1);
		struct move out = set_and_wait(&b, 0);
		struct move in2 = set_and_wait(&b, size);
		set_and_wait(&b, 0);
		md->infl_ms[r] = in.ms;
		md->infl_gibs[r] = gib / (in.ms / 1e3);
		md->defl_gibs[r] = gib / (out.ms / 1e3);
		md->infl2_gibs[r] = gib / (in2.ms / 1e3);
		md->cpu_per_gib[r] = in.cpu_ms / gib;
		md->sys_per_gib[r] = in.sys_ms / gib;
		md->exits_per_gib[r] = (double)(c1.exits - c0.exits) / gib;
		md->discards_per_gib[r] = (double)(d1.discards - d0.discards) / gib;
		bvm_end(&b);
	}
}

/* 64 MiB up and down `n` times on a 512 MiB guest running args. */
static double latency_p50(const char *args, int n)
{
	double v[MAXREPS * 40];
	struct bvm b;
	bvm_start(&b, "lat", 512 * MiB, args);
	usleep(300 * 1000);
	for (int i = 0; i < n; i++) {
		v[2 * i] = set_and_wait(&b, 64 * MiB).ms;
		v[2 * i + 1] = set_and_wait(&b, 0).ms;
		usleep(20 * 1000);
	}
	bvm_end(&b);
	return median(v, 2 * n);
}

/* The QEMU baseline's figures, if bench/qemu_balloon.sh left them. */
static json_t *qemu_baseline(const char *out)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/qemu_balloon.json", out);
	return json_load_file(path, 0, NULL);
}

/* One cell of the QEMU column: key's value times `scale` in fmt. */
static void qcell(char *buf, size_t len, json_t *q, const char *key,
		  double scale, const char *fmt)
{
	json_t *v = q ? json_object_get(q, key) : NULL;
	if (json_is_number(v))
		snprintf(buf, len, fmt, json_number_value(v) * scale);
	else
		snprintf(buf, len, "%s", q ? "—" : "not run (bench/qemu_balloon.sh)");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "out", required_argument, 0, 'o' },
		{ "reps", required_argument, 0, 'r' },
		{ "guest", required_argument, 0, 'g' },
		{ "mem", required_argument, 0, 'm' },
		{ "size", required_argument, 0, 's' },
		{ "base", no_argument, 0, 'b' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	const char *out = "build/results";
	int reps = 5, c;
	uint64_t mem = 4 * GiB, size = 3 * GiB;
	char err[256];

	snprintf(g_guest, sizeof(g_guest), "%s", "build/guest/microguest.elf");
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'o': out = optarg; break;
		case 'r': reps = atoi(optarg); break;
		case 'g': snprintf(g_guest, sizeof(g_guest), "%s", optarg); break;
		case 'm': mem = strtoull(optarg, NULL, 10) * MiB; break;
		case 's': size = strtoull(optarg, NULL, 10) * MiB; break;
		case 'b':
			g_base_fd = memfd_create("bench_balloon_base", MFD_CLOEXEC);
			if (g_base_fd < 0) {
				perror("bench_balloon: memfd_create");
				return 1;
			}
			break;
		case 'h':
			puts("usage: bench_balloon [--out DIR] [--reps N] [--guest ELF]\n"
			     "                     [--mem MIB] [--size MIB] [--base]\n"
			     "Balloon inflate/deflate throughput (2 MiB and 4 KiB pages),\n"
			     "target-to-reached latency and host CPU per GiB, with the micro\n"
			     "guest (default: 4096 MiB guest, balloon to 3072 MiB and back).\n"
			     "--base: guest RAM on a base memfd, as with [ksm] engine = dense.\n"
			     "Writes DIR/balloon.json and DIR/balloon.csv.");
			return 0;
		default: return 2;
		}
	}
	if (reps < 1)
		reps = 1;
	if (reps > MAXREPS)
		reps = MAXREPS;
	if (size == 0 || size + 256 * MiB > mem) {
		fprintf(stderr, "bench_balloon: --size must leave 256 MiB of --mem\n");
		return 2;
	}
	if (hv_init(err, sizeof(err)) < 0) {
		fprintf(stderr, "bench_balloon: %s\n", err);
		return 1;
	}

	static struct mode modes[2] = { { .name = "2M" }, { .name = "4K" } };
	run_mode(&modes[0], true, mem, size, reps);
	run_mode(&modes[1], false, mem, size, reps);
	fprintf(stderr, "bench_balloon: latency, 64 MiB steps\n");
	double lat_idle = latency_p50("idle", 20);
	double lat_busy = latency_p50("verify mib=200 seconds=3600", 20);

	struct {
		double infl, defl, infl2, ms, cpu, sys, exits, disc;
	} f[2];
	for (int i = 0; i < 2; i++) {
		f[i].infl = median(modes[i].infl_gibs, reps);
		f[i].defl = median(modes[i].defl_gibs, reps);
		f[i].infl2 = median(modes[i].infl2_gibs, reps);
		f[i].ms = median(modes[i].infl_ms, reps);
		f[i].cpu = median(modes[i].cpu_per_gib, reps);
		f[i].sys = median(modes[i].sys_per_gib, reps);
		f[i].exits = median(modes[i].exits_per_gib, reps);
		f[i].disc = median(modes[i].discards_per_gib, reps);
	}

	json_t *q = qemu_baseline(out);
	char qi[96], qd[96], qt[96], qc[96], qm[96];
	qcell(qi, sizeof(qi), q, "inflate_gib_per_s", 1, "%.2f GiB/s");
	qcell(qd, sizeof(qd), q, "deflate_gib_per_s", 1, "%.2f GiB/s");
	qcell(qt, sizeof(qt), q, "inflate_s", 1e3, "%.0f ms (1 GiB)");
	qcell(qc, sizeof(qc), q, "inflate_cpu_s_per_gib", 1e3, "%.0f ms");
	qcell(qm, sizeof(qm), q, "madvise_per_gib_inflate", 1, "%.0f");
	printf("\nballooning, micro guest of %" PRIu64 " MiB, balloon 0 -> %" PRIu64
	       " MiB -> 0 (medians of %d runs)\n", mem >> 20, size >> 20, reps);
	printf("| figure | 2 MiB pages | 4 KiB pages | QEMU virtio-balloon (TCG) |\n");
	printf("|---|---|---|---|\n");
	printf("| inflate, resident memory | %.2f GiB/s | %.2f GiB/s | %s |\n",
	       f[0].infl, f[1].infl, qi);
	printf("| deflate | %.2f GiB/s | %.2f GiB/s | %s |\n", f[0].defl, f[1].defl,
	       qd);
	printf("| inflate, memory already returned to the host | %.2f GiB/s | "
	       "%.2f GiB/s | — |\n", f[0].infl2, f[1].infl2);
	printf("| target set to reached, %" PRIu64 " MiB inflate | %.0f ms | %.0f ms "
	       "| %s |\n", size >> 20, f[0].ms, f[1].ms, qt);
	printf("| host CPU per GiB inflated (user+sys; sys) | %.0f ms; %.0f ms | "
	       "%.0f ms; %.0f ms | %s |\n", f[0].cpu, f[0].sys, f[1].cpu, f[1].sys, qc);
	printf("| VM exits per GiB inflated | %.0f | %.0f | — |\n", f[0].exits,
	       f[1].exits);
	printf("| madvise calls per GiB inflated | %.1f | %.1f | %s |\n", f[0].disc,
	       f[1].disc, qm);
	printf("| target set to reached, 64 MiB, p50: idle guest / busy guest "
	       "(verify) | %.2f / %.2f ms | | |\n", lat_idle, lat_busy);

	mkdir(out, 0755);
	json_t *root = json_object();
	json_object_set_new(root, "reps", json_integer(reps));
	json_object_set_new(root, "mem_mib", json_integer((json_int_t)(mem >> 20)));
	json_object_set_new(root, "balloon_mib", json_integer((json_int_t)(size >> 20)));
	for (int i = 0; i < 2; i++) {
		json_t *m = json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f}",
				      "inflate_gib_s", f[i].infl,
				      "deflate_gib_s", f[i].defl,
				      "inflate_returned_gib_s", f[i].infl2,
				      "inflate_reach_ms", f[i].ms,
				      "cpu_ms_per_gib", f[i].cpu,
				      "sys_ms_per_gib", f[i].sys,
				      "exits_per_gib", f[i].exits,
				      "madvise_per_gib", f[i].disc);
		json_object_set_new(root, i ? "pages_4k" : "pages_2m", m);
	}
	json_object_set_new(root, "latency_64m_idle_p50_ms", json_real(lat_idle));
	json_object_set_new(root, "latency_64m_busy_p50_ms", json_real(lat_busy));
	json_object_set_new(root, "qemu", q ? json_incref(q) : json_null());
	char path[4200];
	snprintf(path, sizeof(path), "%s/balloon.json", out);
	if (json_dump_file(root, path, JSON_INDENT(2) | JSON_REAL_PRECISION(6)))
		fprintf(stderr, "bench_balloon: cannot write %s\n", path);
	json_decref(root);
	json_decref(q);

	snprintf(path, sizeof(path), "%s/balloon.csv", out);
	FILE *fc = fopen(path, "w");
	if (fc) {
		fprintf(fc, "figure,pages,value,unit\n");
		for (int i = 0; i < 2; i++) {
			const char *p = modes[i].name;
			fprintf(fc, "inflate,%s,%.3f,GiB/s\n", p, f[i].infl);
			fprintf(fc, "deflate,%s,%.3f,GiB/s\n", p, f[i].defl);
			fprintf(fc, "inflate_returned,%s,%.3f,GiB/s\n", p, f[i].infl2);
			fprintf(fc, "inflate_reach,%s,%.2f,ms\n", p, f[i].ms);
			fprintf(fc, "cpu_per_gib,%s,%.1f,ms\n", p, f[i].cpu);
			fprintf(fc, "sys_per_gib,%s,%.1f,ms\n", p, f[i].sys);
			fprintf(fc, "exits_per_gib,%s,%.0f,exits\n", p, f[i].exits);
			fprintf(fc, "madvise_per_gib,%s,%.1f,calls\n", p, f[i].disc);
		}
		fprintf(fc, "latency_64m_idle_p50,2M,%.3f,ms\n", lat_idle);
		fprintf(fc, "latency_64m_busy_p50,2M,%.3f,ms\n", lat_busy);
		fclose(fc);
	}
	fprintf(stderr, "bench_balloon: wrote %s/balloon.json and balloon.csv\n", out);
	return 0;
}
