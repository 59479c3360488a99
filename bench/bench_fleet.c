/*
 * bench_fleet.c - what page sharing saves on a fleet, dense against Linux
 * KSM, and how soon and at what CPU: through the real `densevm run`, in
 * a fresh memory cgroup per run (tests/support/cgroup.c).  Two fleets:
 *   images - 4 micro guests replay the captured Linux images boot0..boot3
 *            (`make images`) and hold them (issue 11);
 *   mixed  - issue 12's: 8 guests of 384 MiB fill 320 MiB (4 clones 60 %
 *            identical and 20 % zero, 2 with that content shuffled to
 *            other GPAs, 2 unique-heavy 10 % / 10 %) and hold it.
 *
 * Arms, alternating in every repetition so drift hits all alike:
 *   off    - no sharing: the unshared footprint;
 *   dense  - our engine (sleep_ms 20);
 *   kernel - Linux KSM at pages_to_scan 20000 / 20 ms (ksmtuned's top
 *            rate is 1250 per 60 s tick; this is 20x faster than that).
 * Figures per run, from the cgroup's usage sampled at 10 Hz, less the
 * page cache of regular files (cache - shmem: the images just read, which
 * the kernel drops under pressure; memfds are shmem and stay counted):
 *   loaded  - the time the last VM's image was in RAM, or the last fill
 *             was done (its log line);
 *   final   - the median usage over the last 5 s of the hold;
 *   saving  - off's final less this arm's final (medians over reps);
 *   t90     - from `loaded` to the first sample at or under
 *             off_final - 0.9 * saving;
 *   cpu90   - the engine's CPU seconds (the scanner thread's, or ksmd's)
 *             from its start to that sample (ctl ksm, polled with it);
 *   host    - final plus what no cgroup is charged for (Linux KSM's rmap
 *             items): what the arm costs the host, and off's final less it.
 * Writes DIR/FLEET_fleet.json and .csv (the timelines).
 * Measures; asserts nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>
#include "bench_util.h"
#include "cgroup.h"
#include "ksm/ksm.h"
#include "cli/ctl.h"

#define MiB (1ull << 20)
#define MAXVM 8
#define MAXS 3000           /* samples per run: 300 s at 10 Hz */

/* The fleet being measured: its VMs and the log line that says a VM's
 * content is in place. */
static struct {
	const char *name;
	unsigned nvm, mem_mib;
	const char *ready;          /* one per VM, in the run's log */
	char img[MAXVM][PATH_MAX];  /* images */
} g_fleet;

extern char **environ;

static const char *const arms[] = { "off", "dense", "kernel" };
#define NARMS 3

struct run {
	double t[MAXS], mib[MAXS], meta[MAXS], cpu[MAXS];
	unsigned n;
	double loaded, final, final_meta, t90;
	int status;
};

static double kernel_ksm_meta_mib(void)
{
	return (double)ksm_kernel_uncharged_bytes() / MiB;
}

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double median(double *v, unsigned n)
{
	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), bench_cmpd);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* How many "ram_image ... loaded" lines the run's log holds. */
static unsigned ready_lines(const char *log)
{
	FILE *f = fopen(log, "r");
	char line[1024];
	unsigned n = 0;
	while (f && fgets(line, sizeof(line), f))
		n += strstr(line, g_fleet.ready) != NULL;
	if (f)
		fclose(f);
	return n;
}

/* The engine's CPU seconds so far (ctl ksm), or -1. */
static double engine_cpu(const char *sock)
{
	char err[256];
	json_t *req = json_pack("{s:s}", "cmd", "ksm");
	json_t *r = ctl_request(sock, req, 2000, err, sizeof(err));
	double v = -1;

	json_decref(req);
	if (r) {
		json_t *c = json_object_get(json_object_get(r, "global"),
					    "cpu_seconds");
		if (json_is_number(c))
			v = json_number_value(c);
		json_decref(r);
	}
	return v;
}

/* mixed: guest i's workload (the clones, then the shuffled, then the
 * unique-heavy), the fill held for `hold` s after it is done */
static void mixed_workload(unsigned i, int hold, char *buf, size_t len)
{
	bool uniq = i >= 6, shuf = i >= 4 && i < 6;

	snprintf(buf, len, "fill mib=320 identical=%u zero=%u seed=%u "
		 "shuffle=%d hold=%d", uniq ? 10 : 60, uniq ? 10 : 20,
		 7001 + i, shuf, hold);
}

static int one_run(const char *densevm, const char *guest, const char *arm,
		   int hold, struct run *out)
{
	char conf[64], log[64], sock[64], wl[160];
	snprintf(conf, sizeof(conf), "/tmp/bench-fleet-%d.conf", (int)getpid());
	snprintf(log, sizeof(log), "/tmp/bench-fleet-%d.log", (int)getpid());
	snprintf(sock, sizeof(sock), "/tmp/bench-fleet-%d.sock", (int)getpid());
	FILE *f = fopen(conf, "w");
	if (!f)
		return -errno;
	fprintf(f, "[run]\ntimeout = %d\n", hold + 120);
	if (strcmp(arm, "off"))
		fprintf(f, "\n[ksm]\nengine = %s\nsleep_ms = 20\n%s", arm,
			strcmp(arm, "kernel") ? "" : "pages_per_sec = 1000000\n");
	for (unsigned i = 0; i < g_fleet.nvm; i++) {
		if (g_fleet.img[i][0])
			fprintf(f, "\n[vm img%u]\nmem = %uM\nram_image = %s\n"
				"workload = image hold=%d seconds=0\n", i,
				g_fleet.mem_mib, g_fleet.img[i], hold);
		else {
			mixed_workload(i, hold, wl, sizeof(wl));
			fprintf(f, "\n[vm m%u]\nmem = %uM\nworkload = %s\n", i,
				g_fleet.mem_mib, wl);
		}
	}
	fclose(f);

	if (!cg_enter("fleet")) {
		fprintf(stderr, "bench_fleet: no writable memory cgroup\n");
		return -EPERM;
	}
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC,
					 0644);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	char *argv[] = { (char *)densevm, "run", "--ctl", sock, "--guest",
			 (char *)guest, "--config", conf, NULL };
	pid_t pid;
	double t0 = now_s();
	int rc = posix_spawn(&pid, densevm, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc) {
		cg_leave();
		return -rc;
	}
	memset(out, 0, sizeof(*out));
	out->loaded = -1;
	for (;;) {
		usleep(100000);
		double t = now_s() - t0;
		if (out->n < MAXS) {
			out->t[out->n] = t;
			out->meta[out->n] = strcmp(arm, "kernel") ? 0 :
					    kernel_ksm_meta_mib();
			out->cpu[out->n] = strcmp(arm, "off") ? engine_cpu(sock) : 0;
			out->mib[out->n++] = (double)(cg_usage() - cg_stat("cache") +
						      cg_stat("shmem")) / MiB;
		}
		if (out->loaded < 0 && ready_lines(log) == g_fleet.nvm)
			out->loaded = t;
		if (waitpid(pid, &out->status, WNOHANG) == pid)
			break;
	}
	cg_leave();
	/* the hold ends about `hold` s after the load; the last 5 s of it */
	double end = out->loaded + hold - 1, from = end - 5;
	double v[64], m[64];
	unsigned nv = 0;
	for (unsigned i = 0; i < out->n && nv < 64; i++)
		if (out->t[i] >= from && out->t[i] <= end) {
			m[nv] = out->meta[i];
			v[nv++] = out->mib[i];
		}
	out->final = median(v, nv);
	out->final_meta = median(m, nv);
	unlink(conf);
	if (WIFEXITED(out->status) && WEXITSTATUS(out->status) == 0)
		unlink(log);
	else
		fprintf(stderr, "bench_fleet: %s run failed, see %s\n", arm, log);
	return 0;
}

/* From `loaded` to the first sample at or under target (MiB), and the
 * engine's CPU seconds at that sample. */
static double time_to(const struct run *r, double target, double *cpu)
{
	*cpu = -1;
	for (unsigned i = 0; i < r->n; i++)
		if (r->t[i] >= r->loaded && r->mib[i] <= target) {
			*cpu = r->cpu[i];
			return r->t[i] - r->loaded;
		}
	return -1;
}

static void usage(FILE *f)
{
	fputs("usage: bench_fleet [--fleet images|mixed] [--reps N] [--hold S]\n"
	      "                   [--out DIR] [--guest ELF] [--images DIR]\n\n"
	      "A fleet in a fresh memory cgroup per run: no sharing, dense ksm and\n"
	      "kernel KSM, alternating.  images: 4 micro guests replay the captured\n"
	      "images boot0..boot3 (make images); mixed: 8 x 384 MiB filling 320 MiB\n"
	      "(4 clones, 2 shuffled, 2 unique-heavy).  Reports each engine's saving,\n"
	      "its time to 90 % of it and the CPU that took.\n"
	      "Writes DIR/FLEET_fleet.json and DIR/FLEET_fleet.csv.\n", f);
}

int main(int argc, char **argv)
{
	static struct run runs[NARMS][9];
	const char *out_dir = "build/results", *guest = NULL, *dir = NULL;
	const char *fleet = "images";
	int reps = 3, hold = 40;
	static const struct option lo[] = {
		{ "reps", 1, 0, 'r' }, { "hold", 1, 0, 'H' }, { "out", 1, 0, 'o' },
		{ "guest", 1, 0, 'g' }, { "images", 1, 0, 'i' },
		{ "fleet", 1, 0, 'f' }, { "help", 0, 0, 'h' }, { 0, 0, 0, 0 } };
	int c;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'r': reps = atoi(optarg); break;
		case 'H': hold = atoi(optarg); break;
		case 'o': out_dir = optarg; break;
		case 'g': guest = optarg; break;
		case 'i': dir = optarg; break;
		case 'f': fleet = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (reps < 1 || reps > 9 || hold < 10 || hold > 150 ||
	    (strcmp(fleet, "images") && strcmp(fleet, "mixed"))) {
		fprintf(stderr, "bench_fleet: --fleet images|mixed, --reps 1-9 and "
			"--hold 10-150\n");
		return 2;
	}
	char self[PATH_MAX], densevm[PATH_MAX], guest_buf[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return 1;
	self[n] = 0;
	*strrchr(self, '/') = 0;   /* build/bench */
	snprintf(densevm, sizeof(densevm), "%.4000s/../densevm", self);
	if (!guest) {
		snprintf(guest_buf, sizeof(guest_buf), "%.4000s/../guest/microguest.elf", self);
		guest = guest_buf;
	}
	g_fleet.name = fleet;
	if (!strcmp(fleet, "mixed")) {
		g_fleet.nvm = 8;
		g_fleet.mem_mib = 384;
		g_fleet.ready = "fill: done";
	} else {
		g_fleet.nvm = 4;
		g_fleet.ready = ": ram_image ";
	}
	for (unsigned i = 0; !strcmp(fleet, "images") && i < g_fleet.nvm; i++) {
		char man[PATH_MAX + 20], *img = g_fleet.img[i];
		if (dir)
			snprintf(img, PATH_MAX, "%.4000s/boot%u", dir, i);
		else
			snprintf(img, PATH_MAX, "%.4000s/../images/boot%u", self, i);
		snprintf(man, sizeof(man), "%s/manifest.json", img);
		json_t *m = json_load_file(man, 0, NULL);
		if (!m) {
			fprintf(stderr, "bench_fleet: %s: no captured image; run "
				"`make images` first: skipped\n", img);
			return 0;
		}
		unsigned mb = (unsigned)(json_integer_value(
			json_object_get(m, "ram_bytes")) / MiB);
		json_decref(m);
		if (mb + 8 > g_fleet.mem_mib)
			g_fleet.mem_mib = mb + 8;   /* the whole image above 6 MiB */
	}
	if (!cg_enter("fleetprobe")) {
		fprintf(stderr, "bench_fleet: no writable memory cgroup: skipped\n");
		return 0;
	}
	cg_leave();

	for (int r = 0; r < reps; r++)
		for (int k = 0; k < NARMS; k++) {
			int a = (k + r) % NARMS;   /* rotate the order */
			fprintf(stderr, "bench_fleet: %s, rep %d/%d, %s...\n", fleet,
				r + 1, reps, arms[a]);
			if (one_run(densevm, guest, arms[a], hold, &runs[a][r]))
				return 1;
			fprintf(stderr, "  ready at %.1f s, final %.0f MiB\n",
				runs[a][r].loaded, runs[a][r].final);
		}

	double off_final[9], v[9];
	for (int r = 0; r < reps; r++)
		off_final[r] = runs[0][r].final;
	double off = median(off_final, (unsigned)reps);
	json_t *js = json_object(), *ja = json_object();
	json_object_set_new(js, "fleet", json_string(fleet));
	json_object_set_new(js, "vms", json_integer(g_fleet.nvm));
	json_object_set_new(js, "mem_mib", json_integer(g_fleet.mem_mib));
	json_object_set_new(js, "reps", json_integer(reps));
	json_object_set_new(js, "off_final_mib", json_real(off));
	printf("\n%s fleet: %u VMs of %u MiB, %d reps (medians):\n", fleet,
	       g_fleet.nvm, g_fleet.mem_mib, reps);
	printf("%-8s %10s %10s %10s %10s %9s %11s %10s %11s\n", "arm",
	       "final MiB", "saved MiB", "t90 s", "t90 range", "cpu90 s",
	       "+uncharged", "host MiB", "host saved");
	for (int a = 0; a < NARMS; a++) {
		double fin[9], sav[9], t9[9], c9[9], mt9[9], lo = 1e9, hi = -1;
		for (int r = 0; r < reps; r++) {
			/* each run against the median unshared footprint */
			mt9[r] = runs[a][r].final_meta;
			fin[r] = runs[a][r].final;
			sav[r] = off - fin[r];
			c9[r] = 0;
			t9[r] = a ? time_to(&runs[a][r], off - 0.9 * sav[r], &c9[r])
				  : 0;
			lo = t9[r] < lo ? t9[r] : lo;
			hi = t9[r] > hi ? t9[r] : hi;
			v[r] = t9[r];
		}
		double mf = median(fin, (unsigned)reps), ms = median(sav, (unsigned)reps);
		double mt = median(v, (unsigned)reps);
		double mc = median(c9, (unsigned)reps);
		double mm = median(mt9, (unsigned)reps);
		double host[9];
		json_t *per = json_array();
		for (int r = 0; r < reps; r++) {
			host[r] = fin[r] + mt9[r];
			json_array_append_new(per, json_pack("{s:f, s:f, s:f, s:f}",
				"final_mib", fin[r], "uncharged_meta_mib", mt9[r],
				"t90_s", t9[r], "cpu90_s", c9[r]));
		}
		double mh = median(host, (unsigned)reps);
		printf("%-8s %10.0f %10.0f %10.1f %4.1f-%-5.1f %9.2f %11.0f %10.0f "
		       "%11.0f\n", arms[a], mf, ms, mt, lo, hi, mc, mm, mh,
		       off - mh);
		json_t *o = json_object();
		json_object_set_new(o, "runs", per);
		json_object_set_new(o, "host_mib", json_real(mh));
		json_object_set_new(o, "host_saved_mib", json_real(off - mh));
		json_object_set_new(o, "uncharged_meta_mib", json_real(mm));
		json_object_set_new(o, "final_mib", json_real(mf));
		json_object_set_new(o, "saved_mib", json_real(ms));
		json_object_set_new(o, "t90_s", json_real(mt));
		json_object_set_new(o, "t90_min_s", json_real(lo));
		json_object_set_new(o, "t90_max_s", json_real(hi));
		json_object_set_new(o, "cpu90_s", json_real(mc));
		json_object_set_new(ja, arms[a], o);
	}
	json_object_set_new(js, "arms", ja);
	char path[PATH_MAX];
	if (mkdir(out_dir, 0755) && errno != EEXIST)
		fprintf(stderr, "bench_fleet: mkdir %s: %s\n", out_dir,
			strerror(errno));
	snprintf(path, sizeof(path), "%s/%s_fleet.json", out_dir, fleet);
	if (json_dump_file(js, path, JSON_INDENT(2)))
		fprintf(stderr, "bench_fleet: cannot write %s\n", path);
	json_decref(js);
	snprintf(path, sizeof(path), "%s/%s_fleet.csv", out_dir, fleet);
	FILE *cf = fopen(path, "w");
	if (cf) {
		fprintf(cf, "arm,rep,t_s,usage_mib,engine_cpu_s\n");
		for (int a = 0; a < NARMS; a++)
			for (int r = 0; r < reps; r++)
				for (unsigned i = 0; i < runs[a][r].n; i++)
					fprintf(cf, "%s,%d,%.2f,%.1f,%.3f\n", arms[a],
						r, runs[a][r].t[i],
						runs[a][r].mib[i],
						runs[a][r].cpu[i]);
		fclose(cf);
	}
	printf("t90: from the fleet's content in place to 90 %% of the arm's "
	       "saving; cpu90: the engine's CPU seconds to then.\n"
	       "+uncharged: Linux KSM's rmap items (general_profit), slab no "
	       "cgroup pays for; dense's metadata is in its usage.\n"
	       "host MiB = final + uncharged: what each costs the host; host "
	       "saved = off's final less that.\n"
	       "wrote %s/%s_fleet.json and .csv\n", out_dir, fleet);
	return 0;
}
