/*
 * bench_arm.c - one arm of `densevm bench`, once: writes the `densevm run`
 * config for the arm (bench_config.c), starts the real `densevm run`
 * inside a fresh memory cgroup whose limit is the scenario's budget,
 * samples it at sample_hz
 * (cgroup usage and limit, OOM kills, ksm's savings by source and CPU
 * through the control socket, the policy's CPU and balloons, the process's
 * CPU, PSI, pauses, VMAs, the active groups' throughput from the guests'
 * reports, bench_tput.c) into DIR/timeline-ARM-REP.csv|json, applies the
 * budget phases at their offsets (the workload phases are the guests' own
 * schedule, given in their args with the run's start as epoch), stops the
 * run at the end, and reads the guests' results (mismatches, allocation
 * failures, crashes, the image VMs' final checks) from its output and
 * JSON report.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "bench.h"

#define MiB (1024.0 * 1024.0)

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* The arm's name as a file name part: kernel+mom -> kernel_mom. */
static void arm_file(enum bench_arm_id a, char *buf, size_t len)
{
	snprintf(buf, len, "%s", bench_arm_names[a]);
	for (char *c = buf; *c; c++)
		if (*c == '+')
			*c = '_';
}

json_t *bench_ctl_req(const char *sock, const char *cmd, const char *a1,
		      const char *a2, const char *a3)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	struct timeval tv = { .tv_sec = 1 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (void *)&sa, sizeof(sa))) {
		close(fd);
		return NULL;
	}
	json_t *args = json_array();
	const char *a[] = { a1, a2, a3 };
	for (int i = 0; i < 3 && a[i]; i++)
		json_array_append_new(args, json_string(a[i]));
	json_t *req = json_pack("{s:s, s:o}", "cmd", cmd, "args", args);
	char *t = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	size_t n = strlen(t);
	char *line = malloc(n + 2);
	memcpy(line, t, n);
	line[n] = '\n';
	free(t);
	ssize_t w = send(fd, line, n + 1, MSG_NOSIGNAL);
	free(line);
	size_t cap = 1 << 16, got = 0;
	char *buf = malloc(cap);
	while (w > 0) {
		if (got + 1 >= cap)
			buf = realloc(buf, cap *= 2);
		ssize_t r = recv(fd, buf + got, cap - 1 - got, 0);
		if (r <= 0)
			break;
		got += (size_t)r;
		if (buf[got - 1] == '\n')
			break;
	}
	buf[got] = 0;
	close(fd);
	json_t *j = got ? json_loads(buf, 0, NULL) : NULL;
	free(buf);
	return j;
}

static uint64_t jint(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);
	return json_is_integer(v) ? (uint64_t)json_integer_value(v) :
	       json_is_real(v) ? (uint64_t)json_real_value(v) : 0;
}

static double proc_cpu(pid_t pid)
{
	char p[64], b[1024];
	snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(p, "re");
	if (!f)
		return -1;
	size_t n = fread(b, 1, sizeof(b) - 1, f);
	fclose(f);
	b[n] = 0;
	char *c = strrchr(b, ')');
	unsigned long long ut = 0, st = 0;
	if (!c || sscanf(c + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
			 &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double psi_some10(void)
{
	char b[256];
	FILE *f = fopen("/proc/pressure/memory", "re");
	if (!f)
		return -1;
	double v = -1;
	if (fgets(b, sizeof(b), f) && strstr(b, "avg10="))
		v = strtod(strstr(b, "avg10=") + 6, NULL);
	fclose(f);
	return v;
}

static pid_t spawn_run(const struct bench_opts *o, const struct bench_cg *cg,
		       const char *conf, const char *sock, const char *out,
		       const char *report)
{
	const char *argv[16];
	int n = 0;
	argv[n++] = o->densevm;
	argv[n++] = "run";
	argv[n++] = "--config";
	argv[n++] = conf;
	argv[n++] = "--ctl";
	argv[n++] = sock;
	argv[n++] = "--json";
	argv[n++] = report;
	if (o->guest) {
		argv[n++] = "--guest";
		argv[n++] = o->guest;
	}
	argv[n] = NULL;
	int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		if (bench_cg_join(cg))
			_exit(126);
		dup2(fd, 1);
		dup2(fd, 2);
		setpgid(0, 0);
		execv(argv[0], (char **)argv);
		_exit(127);
	}
	close(fd);
	return pid;
}

static void push(struct bench_result *r, const struct bench_sample *s)
{
	if (r->ns == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 1024;
		r->s = realloc(r->s, r->cap * sizeof(*r->s));
	}
	r->s[r->ns++] = *s;
}

/* The control-socket figures, polled by a thread of their own: a busy
 * densevm can take 200 ms to answer, and the cgroup's usage is sampled
 * on time regardless (each sample carries the latest reply). */
struct ctl_poll {
	pthread_t th;
	pthread_mutex_t lock;
	const char *sock;
	enum bench_arm_id arm;
	double period;
	volatile bool stop;
	struct bench_sample last;   /* only the ctl fields */
	struct bench_tput *tput;    /* NULL: no active group */
};

static void *ctl_poll_main(void *arg)
{
	struct ctl_poll *c = arg;
	while (!c->stop) {
		double t = now_s();
		struct bench_sample s = { 0 };
		if (bench_arm_ksm(c->arm)) {
			json_t *k = bench_ctl_req(c->sock, "ksm", NULL, NULL, NULL);
			json_t *g = json_object_get(k, "global");
			s.base_pages = jint(g, "base_pages");
			s.sharing_pages = jint(g, "pages_sharing");
			s.zero_pages = jint(g, "zero_pages");
			s.saved = jint(g, "bytes_saved");
			s.pauses = jint(g, "pauses");
			s.ksm_cpu = json_number_value(json_object_get(g, "cpu_seconds"));
			s.vmas = jint(k, "vmas");
			if (!k)
				s = c->last;   /* not up yet, or gone: keep the last */
			json_decref(k);
		}
		if (bench_arm_policy(c->arm)) {
			json_t *p = bench_ctl_req(c->sock, "policy", NULL, NULL, NULL);
			if (p) {
				s.policy_cpu = json_number_value(json_object_get(p, "cpu_seconds"));
				json_t *vms = json_object_get(p, "vms"), *v;
				size_t i;
				json_array_foreach(vms, i, v)
					s.ballooned += jint(v, "balloon_size");
			} else {
				s.policy_cpu = c->last.policy_cpu;
				s.ballooned = c->last.ballooned;
			}
			json_decref(p);
		}
		json_t *res = c->tput ? bench_ctl_req(c->sock, "results", NULL, NULL, NULL)
				      : NULL;
		pthread_mutex_lock(&c->lock);
		c->last = s;
		if (res)
			bench_tput_update(c->tput, res);
		pthread_mutex_unlock(&c->lock);
		json_decref(res);
		double sl = c->period - (now_s() - t);
		if (sl > 0)
			usleep((useconds_t)(sl * 1e6));
	}
	return NULL;
}

static void sample(struct ctl_poll *cp, const struct bench_cg *cg, pid_t pid,
		   double t, struct bench_sample *s)
{
	pthread_mutex_lock(&cp->lock);
	*s = cp->last;
	if (cp->tput)
		bench_tput_rates(cp->tput, (uint64_t)(now_s() * 1e9), s->tput);
	pthread_mutex_unlock(&cp->lock);
	s->t = t;
	s->usage = bench_cg_usage(cg);
	s->limit = bench_cg_limit(cg);
	s->oom_kills = bench_cg_oom_kills(cg);
	s->proc_cpu = proc_cpu(pid);
	s->psi_some10 = psi_some10();
}

static int write_timeline(const struct bench_scenario *sc, const char *dir,
			  const char *af, int rep, const struct bench_result *r)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/timeline-%s-%d.csv", dir, af, rep);
	FILE *f = fopen(p, "we");
	if (!f)
		return -errno;
	fprintf(f, "t_s,usage_mib,limit_mib,same_gpa_mib,cross_gpa_mib,zero_mib,"
		"saved_mib,ballooned_mib,ksm_cpu_s,policy_cpu_s,proc_cpu_s,"
		"psi_some10,pauses,vmas,oom_kills,active_kpps");
	for (unsigned g = 0; g < sc->ngroups; g++)
		if (sc->group[g].active)
			fprintf(f, ",kpps_%s", sc->group[g].name);
	fputc('\n', f);
	for (size_t i = 0; i < r->ns; i++) {
		const struct bench_sample *s = &r->s[i];
		fprintf(f, "%.3f,%.2f,%.2f,%.2f,%.2f,%.2f,%.2f,%.2f,%.4f,%.4f,%.3f,"
			"%.2f,%llu,%llu,%llu", s->t, s->usage / MiB, s->limit / MiB,
			s->base_pages * 4096.0 / MiB,
			(s->sharing_pages > s->base_pages ? s->sharing_pages - s->base_pages : 0) *
			4096.0 / MiB,
			s->zero_pages * 4096.0 / MiB, s->saved / MiB,
			s->ballooned / MiB, s->ksm_cpu, s->policy_cpu, s->proc_cpu,
			s->psi_some10, (unsigned long long)s->pauses,
			(unsigned long long)s->vmas, (unsigned long long)s->oom_kills);
		double all = 0;
		for (unsigned g = 0; g < sc->ngroups; g++)
			all += sc->group[g].active ? s->tput[g] : 0;
		fprintf(f, ",%.3f", all / 1000);
		for (unsigned g = 0; g < sc->ngroups; g++)
			if (sc->group[g].active)
				fprintf(f, ",%.3f", s->tput[g] / 1000);
		fputc('\n', f);
	}
	fclose(f);
	snprintf(p, sizeof(p), "%s/timeline-%s-%d.json", dir, af, rep);
	json_t *j = bench_timeline_json(r);
	json_t *smp = json_object_get(j, "samples");
	for (size_t i = 0; i < r->ns; i++) {
		json_t *tp = json_object();
		for (unsigned g = 0; g < sc->ngroups; g++)
			if (sc->group[g].active)
				json_object_set_new(tp, sc->group[g].name,
						    json_real(r->s[i].tput[g]));
		json_object_set_new(json_array_get(smp, i), "tput_pps", tp);
	}
	int rc = json_dump_file(j, p, JSON_COMPACT) ? -EIO : 0;
	json_decref(j);
	return rc;
}

json_t *bench_timeline_json(const struct bench_result *r)
{
	json_t *a = json_array();
	for (size_t i = 0; i < r->ns; i++) {
		const struct bench_sample *s = &r->s[i];
		json_array_append_new(a, json_pack(
			"{s:f, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:f,"
			" s:I, s:I, s:I}",
			"t", s->t, "usage", (json_int_t)s->usage,
			"limit", (json_int_t)s->limit,
			"same_gpa_pages", (json_int_t)s->base_pages,
			"cross_gpa_pages", (json_int_t)(s->sharing_pages > s->base_pages ?
				s->sharing_pages - s->base_pages : 0),
			"zero_pages", (json_int_t)s->zero_pages,
			"saved", (json_int_t)s->saved, "ballooned", (json_int_t)s->ballooned,
			"ksm_cpu_s", s->ksm_cpu, "policy_cpu_s", s->policy_cpu,
			"proc_cpu_s", s->proc_cpu, "psi_some10", s->psi_some10,
			"pauses", (json_int_t)s->pauses, "vmas", (json_int_t)s->vmas,
			"oom_kills", (json_int_t)s->oom_kills));
	}
	return json_pack("{s:s, s:i, s:o}", "arm", bench_arm_names[r->arm], "rep",
			 r->rep, "samples", a);
}

/* Mismatches from the run's output: the guests' MISMATCH lines; and the
 * image VMs' final checks that passed. */
static void read_output(const char *out, struct bench_result *r)
{
	FILE *f = fopen(out, "re");
	char line[2048];
	while (f && fgets(line, sizeof(line), f)) {
		if (strstr(line, "MISMATCH"))
			r->mismatches++;
		if (strstr(line, "] image: done ") && strstr(line, " mismatches=0"))
			r->img_verified++;
	}
	if (f)
		fclose(f);
}

/* VM outcomes from the JSON report (absent: the process died). */
static void read_report(const char *path, struct bench_result *r)
{
	json_t *j = json_load_file(path, 0, NULL), *v;
	size_t i;
	if (!j) {
		r->crashed = r->vms;
		return;
	}
	json_array_foreach(json_object_get(j, "vms"), i, v) {
		const char *st = json_string_value(json_object_get(v, "status"));
		int code = (int)json_integer_value(json_object_get(v, "code"));
		if (!st)
			continue;
		if (!strcmp(st, "exited") && code == 3)
			r->mismatches += r->mismatches ? 0 : 1;
		else if (!strcmp(st, "exited") && code == 4)
			r->alloc_fail++;
		else if (!strcmp(st, "crashed") || (!strcmp(st, "exited") && code))
			r->crashed++;
		else
			r->vms_ok++;
	}
	json_decref(j);
}

static void progress(const struct bench_opts *o, const struct bench_result *r,
		     const char *phase, double t, double d,
		     const struct bench_sample *s, double *last_line)
{
	if (o->progress_tty) {
		fprintf(stderr, "\r%-12s rep %d/%u  phase %-10s %5.1f/%.0f s (%.0f s "
			"left)  usage %6.0f / %s MiB  ", bench_arm_names[r->arm],
			r->rep + 1, o->reps, phase, t, d, fmax(d - t, 0), s->usage / MiB,
			s->limit ? "" : "unlimited");
		if (s->limit)
			fprintf(stderr, "\b\b\b\b\b\b\b\b\b\b\b\b\b\b%.0f MiB   ",
				s->limit / MiB);
	} else if (t - *last_line >= 5) {
		*last_line = t;
		fprintf(stderr, "bench: %s rep %d/%u phase %s %.0f/%.0f s usage %.0f "
			"MiB limit %.0f MiB\n", bench_arm_names[r->arm], r->rep + 1,
			o->reps, phase, t, d, s->usage / MiB, s->limit / MiB);
	}
}

int bench_arm_run(const struct bench_opts *o, enum bench_arm_id arm, int rep,
		  struct bench_result *r)
{
	const struct bench_scenario *sc = o->sc;
	char af[32], conf[512], sock[108], out[512], report[512], plog[512];
	memset(r, 0, sizeof(*r));
	r->arm = arm;
	r->rep = rep;
	r->throughput_pct = -1;
	r->tput_worst_pct = -1;
	r->tput_failed = false;
	for (unsigned i = 0; i < sc->ngroups; i++) {
		r->vms += sc->group[i].count;
		r->img_vms += sc->group[i].nimages ? sc->group[i].count : 0;
	}
	arm_file(arm, af, sizeof(af));
	snprintf(conf, sizeof(conf), "%s/run-%s-%d.conf", o->out, af, rep);
	snprintf(out, sizeof(out), "%s/run-%s-%d.out", o->out, af, rep);
	snprintf(report, sizeof(report), "%s/run-%s-%d.json", o->out, af, rep);
	snprintf(plog, sizeof(plog), "%s/policy-%s-%d.jsonl", o->out, af, rep);
	snprintf(sock, sizeof(sock), "/tmp/densevm-bench-%d.sock", (int)getpid());
	unlink(plog);
	unlink(report);
	unlink(sock);
	if (bench_arm_kernel(arm) &&
	    access("/sys/kernel/mm/ksm/run", W_OK)) {
		snprintf(r->skipped, sizeof(r->skipped), "kernel KSM: "
			 "/sys/kernel/mm/ksm/run is not writable (%s)", strerror(errno));
		return 0;
	}
	/* the run's time 0, and the guests' epoch: the schedule is theirs */
	double t0 = now_s();
	if (bench_write_config(o, arm, conf, plog, (uint64_t)(t0 * 1e9))) {
		snprintf(r->skipped, sizeof(r->skipped), "cannot write %.150s", conf);
		return 0;
	}
	struct bench_cg cg;
	char err[700];
	if (bench_cg_create(&cg, af, err, sizeof(err))) {
		snprintf(r->skipped, sizeof(r->skipped), "%.199s", err);
		return 0;
	}
	if (sc->budget && bench_cg_set_limit(&cg, sc->budget)) {
		snprintf(r->skipped, sizeof(r->skipped), "cannot set the budget");
		bench_cg_remove(&cg);
		return 0;
	}
	/* densevm run restores kernel KSM's sysfs when it ends; an OOM kill
	 * does not let it, so the bench does */
	static const char *const ksm_files[] = { "run", "pages_to_scan",
						 "sleep_millisecs" };
	char ksm_saved[3][32] = { "", "", "" };
	bool kernel = bench_arm_kernel(arm);
	for (int i = 0; kernel && i < 3; i++) {
		char kp[64];
		snprintf(kp, sizeof(kp), "/sys/kernel/mm/ksm/%s", ksm_files[i]);
		FILE *kf = fopen(kp, "re");
		if (kf && fgets(ksm_saved[i], sizeof(ksm_saved[i]), kf))
			ksm_saved[i][strcspn(ksm_saved[i], "\n")] = 0;
		if (kf)
			fclose(kf);
	}
	double d = bench_duration(sc, o->quick);
	double spawn_t = now_s();
	pid_t pid = spawn_run(o, &cg, conf, sock, out, report);
	if (pid < 0) {
		snprintf(r->skipped, sizeof(r->skipped), "cannot start %.150s", o->densevm);
		bench_cg_remove(&cg);
		return 0;
	}
	r->ran = true;
	struct ctl_poll cp = { .sock = sock, .arm = arm, .period = 1.0 / sc->sample_hz };
	pthread_mutex_init(&cp.lock, NULL);
	if (bench_tput_wanted(sc))
		cp.tput = bench_tput_new(sc, o->quick);
	bool polling = (bench_arm_ksm(arm) || bench_arm_policy(arm) || cp.tput) &&
		       !pthread_create(&cp.th, NULL, ctl_poll_main, &cp);
	double period = 1.0 / sc->sample_hz, next = t0, last_line = -5;
	unsigned ph = 0;
	const char *phase = "start";
	uint64_t budget = sc->budget, pending = 0;
	int st = 0;
	bool exited = false, cost_tried = false;
	for (;;) {
		double t = now_s() - t0;
		if (t >= d)
			break;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			exited = true;
			break;
		}
		while (ph < sc->nphases && t >= bench_phase_at(sc, ph, o->quick)) {
			const struct bench_phase *p = &sc->phase[ph++];
			phase = p->name;
			if (!p->budget_set)
				continue;   /* a workload phase: the guests' own */
			pending = p->budget_rel ? (uint64_t)((double)budget * p->budget_pct / 100)
						: p->budget;
			pending = pending ? pending : UINT64_MAX;   /* none */
			if (bench_arm_policy(arm)) {
				char b[32];
				snprintf(b, sizeof(b), "%llu", pending == UINT64_MAX ? 0ull :
					 (unsigned long long)pending);
				json_decref(bench_ctl_req(sock, "policy", "set", "host_budget",
						    pending == UINT64_MAX ? "auto" : b));
			}
		}
		if (pending) {
			/* lowering below usage is refused (EBUSY): retry until the
			 * reclaim makes room, or the run ends */
			if (!bench_cg_set_limit(&cg, pending == UINT64_MAX ? 0 : pending)) {
				budget = pending == UINT64_MAX ? 0 : pending;
				pending = 0;
			}
		}
		if (sc->host_cost && !cost_tried && t >= BENCH_COST_AT * d) {
			cost_tried = true;
			bench_cost_measure(sock, pid, (double)bench_cg_usage(&cg), spawn_t,
					   t, &r->cost);
		}
		struct bench_sample s;
		sample(&cp, &cg, pid, t, &s);
		push(r, &s);
		progress(o, r, phase, t, d, &s, &last_line);
		next += period;
		double sl = next - now_s();
		if (sl > 0)
			usleep((useconds_t)(sl * 1e6));
		else if (sl < -period)
			next = now_s();   /* over a period late: do not burst */
	}
	if (polling) {
		cp.stop = true;
		pthread_join(cp.th, NULL);
	}
	pthread_mutex_destroy(&cp.lock);
	r->budget_missed = pending != 0;
	if (!exited) {
		kill(pid, SIGTERM);
		for (int i = 0; i < 200; i++) {
			if (waitpid(pid, &st, WNOHANG) == pid) {
				exited = true;
				break;
			}
			usleep(50000);
		}
		if (!exited) {
			kill(-pid, SIGKILL);
			waitpid(pid, &st, 0);
		}
	}
	if (o->progress_tty)
		fputc('\n', stderr);
	r->exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	for (int i = kernel && WIFSIGNALED(st) ? 2 : -1; i >= 0; i--) {
		/* tunables first, run last */
		char kp[64];
		snprintf(kp, sizeof(kp), "/sys/kernel/mm/ksm/%s", ksm_files[i]);
		FILE *kf = ksm_saved[i][0] ? fopen(kp, "we") : NULL;
		if (kf) {
			fputs(ksm_saved[i], kf);
			fclose(kf);
		}
	}
	r->oom_kills = (unsigned)bench_cg_oom_kills(&cg);
	char line[512] = "", last[512] = "";
	FILE *of = fopen(out, "re");
	while (of && fgets(line, sizeof(line), of))
		if (!strncmp(line, "densevm run: ", 13))
			snprintf(last, sizeof(last), "%s", line);
	if (of)
		fclose(of);
	last[strcspn(last, "\n")] = 0;
	if (exited && WIFEXITED(st) && WEXITSTATUS(st) && !r->oom_kills && last[0] &&
	    now_s() - t0 < 5) {
		/* refused at start (a bad config, the kernel KSM lock held by
		 * another run): skipped, with densevm run's own reason */
		snprintf(r->skipped, sizeof(r->skipped), "%.190s", last);
		r->ran = false;
		free(r->s);
		r->s = NULL;
		r->ns = r->cap = 0;
		bench_tput_free(cp.tput);
		bench_cg_remove(&cg);
		unlink(sock);
		return 0;
	}
	read_output(out, r);
	if (cp.tput)
		r->throughput = bench_tput_total(cp.tput, r->ns ? r->s[r->ns - 1].t : 0);
	bench_tput_free(cp.tput);
	read_report(report, r);
	if (sc->host_cost)
		bench_cost_write(o->out, af, rep, &r->cost);
	bench_cg_remove(&cg);
	unlink(sock);
	bench_result_figures(o, r);
	return write_timeline(sc, o->out, af, rep, r);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

void bench_result_figures(const struct bench_opts *o, struct bench_result *r)
{
	if (!r->ns)
		return;
	double d = bench_duration(o->sc, o->quick), from = d * (1 - o->sc->steady_tail);
	/* the steady window: the samples from `from` on, or the last quarter
	 * of a run that ended early */
	size_t i0 = 0;
	while (i0 < r->ns && r->s[i0].t < from)
		i0++;
	if (i0 == r->ns)
		i0 = r->ns * 3 / 4;
	uint64_t *tail = malloc(2 * (r->ns - i0) * sizeof(*tail));
	uint64_t *stail = tail + (r->ns - i0);
	size_t nt = r->ns - i0;
	double peak = 0;
	for (size_t i = 0; i < r->ns; i++)
		peak = fmax(peak, (double)r->s[i].usage);
	for (size_t i = i0; i < r->ns; i++) {
		tail[i - i0] = r->s[i].usage;
		stail[i - i0] = r->s[i].saved + r->s[i].ballooned;
	}
	qsort(tail, nt, sizeof(*tail), cmp_u64);
	qsort(stail, nt, sizeof(*stail), cmp_u64);
	r->steady = (double)tail[nt / 2];
	/* what the arm holds reclaimed over the same window (a median, not the
	 * peak: kernel KSM's counters are the host's, and an arm that starts
	 * right after another kernel arm reads its stale pages_sharing for a
	 * few hundred ms) */
	double saved = (double)stail[nt / 2];
	free(tail);
	r->peak = peak;
	/* guest RAM over steady usage: of the VMs that had started by the
	 * run's end (a density run ends at its OOM kill, with most of the
	 * fleet not yet arrived) */
	double ram = 0, end = r->s[r->ns - 1].t;
	for (unsigned g = 0; g < o->sc->ngroups; g++)
		for (unsigned k = 0; k < o->sc->group[g].count; k++)
			if (bench_vm_start(o->sc, g, k, o->quick) < end)
				ram += (double)o->sc->group[g].mem;
	r->ratio = r->steady > 0 ? ram / r->steady : 0;
	/* time to steady: after the last sample outside the band */
	double band = fmax(0.05 * r->steady, 32 * MiB);
	r->t_steady = 0;
	for (size_t i = 0; i < r->ns && r->s[i].t < from; i++)
		if (fabs((double)r->s[i].usage - r->steady) > band)
			r->t_steady = i + 1 < r->ns ? r->s[i + 1].t : r->s[i].t;
	const struct bench_sample *l = &r->s[r->ns - 1];
	r->reclaim_cpu = l->ksm_cpu + l->policy_cpu;
	r->proc_cpu = l->proc_cpu;
	r->saved_gib = saved / (1024 * MiB);
	r->fits = r->ran && !r->oom_kills && !r->alloc_fail && !r->mismatches &&
		  !r->crashed && !r->budget_missed;
	/* the first failure: an OOM kill, or the process gone before the end */
	r->t_fail = -1;
	for (size_t i = 0; i < r->ns && r->t_fail < 0; i++)
		if (r->s[i].oom_kills)
			r->t_fail = r->s[i].t;
	if (r->t_fail < 0 && !r->fits)
		r->t_fail = l->t < d - 1 ? l->t : d;
	bench_density_fit(o, r);
}

/* The VMs started before the first failure, less the last one (which broke
 * it); a failure without a time (a mismatch) counts at the end.  Without a
 * failure, the VMs that started before the run's end (a lower bound: with
 * quick_timing = keep, --quick ends the run before the last arrivals). */
void bench_density_fit(const struct bench_opts *o, struct bench_result *r)
{
	r->vms_fit = 0;
	r->fit_ram = 0;
	double last_t = -1, last_mem = 0;
	double until = r->t_fail >= 0 ? r->t_fail :
		       r->ns ? r->s[r->ns - 1].t : bench_duration(o->sc, o->quick);
	for (unsigned g = 0; g < o->sc->ngroups; g++)
		for (unsigned k = 0; k < o->sc->group[g].count; k++) {
			double st = bench_vm_start(o->sc, g, k, o->quick);
			if (st >= until)
				continue;
			r->vms_fit++;
			r->fit_ram += (double)o->sc->group[g].mem;
			if (st >= last_t) {
				last_t = st;
				last_mem = (double)o->sc->group[g].mem;
			}
		}
	if (r->t_fail >= 0 && r->vms_fit) {
		r->vms_fit--;
		r->fit_ram -= last_mem;
	}
}
