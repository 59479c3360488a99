/*
 * bench_image_fleet.c - what page sharing saves on a fleet of real Linux
 * guest memory: 4 micro guests replay the captured images boot0..boot3
 * (`make images`) and hold them, through the real `densevm run`, in a
 * fresh memory cgroup per run (tests/support/cgroup.c).
 *
 * Arms, alternating in every repetition so drift hits all alike:
 *   off    - no sharing: the unshared footprint;
 *   dense  - our engine (sleep_ms 20);
 *   kernel - Linux KSM at pages_to_scan 20000 / 20 ms (ksmtuned's top
 *            rate is 1250 per 60 s tick; this is 20x faster than that).
 * Figures per run, from the cgroup's usage sampled at 10 Hz, less the
 * page cache of regular files (cache - shmem: the images just read, which
 * the kernel drops under pressure; memfds are shmem and stay counted):
 *   loaded  - the time the last VM's image was in RAM (its log line);
 *   final   - the median usage over the last 5 s of the hold;
 *   saving  - off's final less this arm's final (medians over reps);
 *   t90     - from `loaded` to the first sample at or under
 *             off_final - 0.9 * saving;
 *   host    - final plus what no cgroup is charged for (Linux KSM's rmap
 *             items): what the arm costs the host, and off's final less it.
 * Writes DIR/image_fleet.json and DIR/image_fleet.csv (the timelines).
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

#define MiB (1ull << 20)
#define NVM 4
#define MAXS 2000           /* samples per run: 200 s at 10 Hz */

extern char **environ;

static const char *const arms[] = { "off", "dense", "kernel" };
#define NARMS 3

struct run {
	double t[MAXS], mib[MAXS], meta[MAXS];
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
static int loaded_lines(const char *log)
{
	FILE *f = fopen(log, "r");
	char line[1024];
	int n = 0;
	while (f && fgets(line, sizeof(line), f))
		n += strstr(line, ": ram_image ") && strstr(line, " loaded ");
	if (f)
		fclose(f);
	return n;
}

static int one_run(const char *densevm, const char *guest, const char *arm,
		   char img[NVM][PATH_MAX], unsigned mem_mib, int hold,
		   struct run *out)
{
	char conf[64], log[64];
	snprintf(conf, sizeof(conf), "/tmp/bench-imgfleet-%d.conf", (int)getpid());
	snprintf(log, sizeof(log), "/tmp/bench-imgfleet-%d.log", (int)getpid());
	FILE *f = fopen(conf, "w");
	if (!f)
		return -errno;
	fprintf(f, "[run]\ntimeout = %d\n", hold + 120);
	if (strcmp(arm, "off"))
		fprintf(f, "\n[ksm]\nengine = %s\nsleep_ms = 20\n%s", arm,
			strcmp(arm, "kernel") ? "" : "pages_per_sec = 1000000\n");
	for (int i = 0; i < NVM; i++)
		fprintf(f, "\n[vm img%d]\nmem = %uM\nram_image = %s\n"
			"workload = image hold=%d seconds=0\n", i, mem_mib, img[i], hold);
	fclose(f);

	if (!cg_enter("imgfleet")) {
		fprintf(stderr, "bench_image_fleet: no writable memory cgroup\n");
		return -EPERM;
	}
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC,
					 0644);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	char *argv[] = { (char *)densevm, "run", "--ctl", "none", "--guest",
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
			out->mib[out->n++] = (double)(cg_usage() - cg_stat("cache") +
						      cg_stat("shmem")) / MiB;
		}
		if (out->loaded < 0 && loaded_lines(log) == NVM)
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
		fprintf(stderr, "bench_image_fleet: %s run failed, see %s\n", arm, log);
	return 0;
}

/* From `loaded` to the first sample at or under target (MiB). */
static double time_to(const struct run *r, double target)
{
	for (unsigned i = 0; i < r->n; i++)
		if (r->t[i] >= r->loaded && r->mib[i] <= target)
			return r->t[i] - r->loaded;
	return -1;
}

static void usage(FILE *f)
{
	fputs("usage: bench_image_fleet [--reps N] [--hold S] [--out DIR] [--guest ELF]\n"
	      "                         [--images DIR]\n\n"
	      "4 micro guests replay the captured images boot0..boot3 (make images)\n"
	      "in a fresh memory cgroup per run: no sharing, dense ksm and kernel KSM,\n"
	      "alternating.  Reports each engine's saving and its time to 90 %% of it.\n"
	      "Writes DIR/image_fleet.json and DIR/image_fleet.csv.\n", f);
}

int main(int argc, char **argv)
{
	static struct run runs[NARMS][9];
	const char *out_dir = "build/results", *guest = NULL, *dir = NULL;
	int reps = 3, hold = 40;
	static const struct option lo[] = {
		{ "reps", 1, 0, 'r' }, { "hold", 1, 0, 'H' }, { "out", 1, 0, 'o' },
		{ "guest", 1, 0, 'g' }, { "images", 1, 0, 'i' }, { "help", 0, 0, 'h' },
		{ 0, 0, 0, 0 } };
	int c;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'r': reps = atoi(optarg); break;
		case 'H': hold = atoi(optarg); break;
		case 'o': out_dir = optarg; break;
		case 'g': guest = optarg; break;
		case 'i': dir = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (reps < 1 || reps > 9 || hold < 10 || hold > 150) {
		fprintf(stderr, "bench_image_fleet: --reps 1-9 and --hold 10-150\n");
		return 2;
	}
	char self[PATH_MAX], densevm[PATH_MAX], guest_buf[PATH_MAX], img[NVM][PATH_MAX];
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
	unsigned mem_mib = 0;
	for (int i = 0; i < NVM; i++) {
		char man[PATH_MAX + 20];
		if (dir)
			snprintf(img[i], sizeof(img[i]), "%.4000s/boot%d", dir, i);
		else
			snprintf(img[i], sizeof(img[i]), "%.4000s/../images/boot%d", self, i);
		snprintf(man, sizeof(man), "%s/manifest.json", img[i]);
		json_t *m = json_load_file(man, 0, NULL);
		if (!m) {
			fprintf(stderr, "bench_image_fleet: %s: no captured image; run "
				"`make images` first: skipped\n", img[i]);
			return 0;
		}
		unsigned mb = (unsigned)(json_integer_value(
			json_object_get(m, "ram_bytes")) / MiB);
		json_decref(m);
		if (mb + 8 > mem_mib)
			mem_mib = mb + 8;   /* the whole image loads above 6 MiB */
	}
	if (!cg_enter("imgprobe")) {
		fprintf(stderr, "bench_image_fleet: no writable memory cgroup: skipped\n");
		return 0;
	}
	cg_leave();

	for (int r = 0; r < reps; r++)
		for (int k = 0; k < NARMS; k++) {
			int a = (k + r) % NARMS;   /* rotate the order */
			fprintf(stderr, "bench_image_fleet: rep %d/%d, %s...\n", r + 1,
				reps, arms[a]);
			if (one_run(densevm, guest, arms[a], img, mem_mib, hold,
				    &runs[a][r]))
				return 1;
			fprintf(stderr, "  loaded at %.1f s, final %.0f MiB\n",
				runs[a][r].loaded, runs[a][r].final);
		}

	double off_final[9], v[9];
	for (int r = 0; r < reps; r++)
		off_final[r] = runs[0][r].final;
	double off = median(off_final, (unsigned)reps);
	json_t *js = json_object(), *ja = json_object();
	json_object_set_new(js, "vms", json_integer(NVM));
	json_object_set_new(js, "mem_mib", json_integer(mem_mib));
	json_object_set_new(js, "reps", json_integer(reps));
	json_object_set_new(js, "off_final_mib", json_real(off));
	printf("\n4 VMs of %u MiB replaying boot0..3, %d reps (medians):\n", mem_mib, reps);
	printf("%-8s %10s %10s %10s %10s %11s %10s %11s\n", "arm", "final MiB",
	       "saved MiB", "t90 s", "t90 range", "+uncharged", "host MiB",
	       "host saved");
	for (int a = 0; a < NARMS; a++) {
		double fin[9], sav[9], t9[9], mt9[9], lo = 1e9, hi = -1;
		for (int r = 0; r < reps; r++) {
			/* each run against the median unshared footprint */
			mt9[r] = runs[a][r].final_meta;
			fin[r] = runs[a][r].final;
			sav[r] = off - fin[r];
			t9[r] = a ? time_to(&runs[a][r], off - 0.9 * sav[r]) : 0;
			lo = t9[r] < lo ? t9[r] : lo;
			hi = t9[r] > hi ? t9[r] : hi;
			v[r] = t9[r];
		}
		double mf = median(fin, (unsigned)reps), ms = median(sav, (unsigned)reps);
		double mt = median(v, (unsigned)reps);
		double mm = median(mt9, (unsigned)reps);
		double host[9];
		json_t *per = json_array();
		for (int r = 0; r < reps; r++) {
			host[r] = fin[r] + mt9[r];
			json_array_append_new(per, json_pack("{s:f, s:f, s:f}",
				"final_mib", fin[r], "uncharged_meta_mib", mt9[r],
				"t90_s", t9[r]));
		}
		double mh = median(host, (unsigned)reps);
		printf("%-8s %10.0f %10.0f %10.1f %4.1f-%-5.1f %11.0f %10.0f %11.0f\n",
		       arms[a], mf, ms, mt, lo, hi, mm, mh, off - mh);
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
		json_object_set_new(ja, arms[a], o);
	}
	json_object_set_new(js, "arms", ja);
	char path[PATH_MAX];
	if (mkdir(out_dir, 0755) && errno != EEXIST)
		fprintf(stderr, "bench_image_fleet: mkdir %s: %s\n", out_dir,
			strerror(errno));
	snprintf(path, sizeof(path), "%s/image_fleet.json", out_dir);
	if (json_dump_file(js, path, JSON_INDENT(2)))
		fprintf(stderr, "bench_image_fleet: cannot write %s\n", path);
	json_decref(js);
	snprintf(path, sizeof(path), "%s/image_fleet.csv", out_dir);
	FILE *cf = fopen(path, "w");
	if (cf) {
		fprintf(cf, "arm,rep,t_s,usage_mib\n");
		for (int a = 0; a < NARMS; a++)
			for (int r = 0; r < reps; r++)
				for (unsigned i = 0; i < runs[a][r].n; i++)
					fprintf(cf, "%s,%d,%.2f,%.1f\n", arms[a], r,
						runs[a][r].t[i], runs[a][r].mib[i]);
		fclose(cf);
	}
	printf("+uncharged: Linux KSM's rmap items (from general_profit), slab no "
	       "cgroup pays for; dense's metadata is in its usage.\n"
	       "host MiB = final + uncharged: what each costs the host; host "
	       "saved = off's final less that.\n"
	       "wrote %s/image_fleet.json and .csv\n", out_dir);
	return 0;
}
