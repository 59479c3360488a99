/*
 * bench.h - `densevm bench`, the dense-consolidation benchmark: its
 * scenario files (bench_scenario.c), their workload phases
 * (bench_phase.c) and RAM images (bench_images.c), the memory cgroup each
 * arm runs in (bench_cgroup.c), one arm's `densevm run` config
 * (bench_config.c), its run and timeline (bench_arm.c), the guests' throughput
 * (bench_tput.c), the host's cost per VM (bench_cost.c), the summary,
 * tables and plots (bench_report.c), the goals block (bench_goals.c) and
 * the command (cmd_bench.c).
 *
 * A scenario is a fleet of VM groups under a host budget (a memory cgroup
 * limit) for a duration, with phases at time offsets that move the budget,
 * start groups, turn their workloads idle or active, or make them grow.
 * An arm is one way of reclaiming memory (none, kernel-ksm, kernel+mom,
 * dense, policy, dense+policy); each arm runs the whole scenario through a
 * real `densevm run` in a fresh memory cgroup.
 */
#ifndef DENSEVM_BENCH_H
#define DENSEVM_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <jansson.h>
#include "util/cgroup.h"

#define BENCH_MAX_GROUPS 16
#define BENCH_MAX_PHASES 16
#define BENCH_MAX_IMAGES 8

struct bench_group {
	char name[40];
	unsigned count;
	uint64_t mem;
	bool mem_set;               /* else derived from its images */
	char workload[256];
	char quick_workload[256];   /* with --quick; "" = workload */
	/* RAM images (bench_images.c): VM k loads image[k % nimages], a
	 * path after the load (names resolved in build/images) */
	char image[BENCH_MAX_IMAGES][256];
	unsigned nimages;
	int image_line, mem_line, workload_line;
	unsigned shares;            /* 0 = the default */
	uint64_t min, max;
	bool active;                /* its throughput is measured */
	double start;               /* seconds before its first VM starts */
	double arrive_every;        /* seconds between its VMs' starts */
	unsigned start_phase;       /* 1 + the phase that starts it; 0 = none */
	int line;
};

/* What a phase does to groups (bench_phase.c), besides the budget. */
enum bench_act { ACT_START, ACT_IDLE, ACT_ACTIVATE, ACT_GROW, ACT_COUNT };

struct bench_phase {
	char name[40];
	double at;                  /* seconds from the start */
	double quick_at;            /* with --quick; < 0 = at scaled */
	uint64_t budget;            /* the new cgroup limit; 0 = none */
	bool budget_rel;            /* budget_pct is a fraction of the old one */
	double budget_pct;
	bool budget_set;            /* the phase has a budget key */
	char groups[ACT_COUNT][256];   /* the keys' group lists, as written */
	int act_line[ACT_COUNT];       /* their lines; 0 = key absent */
	uint32_t act_mask[ACT_COUNT];  /* the groups, after the load */
	int line;
};

struct bench_scenario {
	char path[256];
	char name[64];
	char desc[256];
	uint64_t budget;            /* the cgroup limit at start; 0 = none */
	double duration, quick_duration;
	bool quick_keep;            /* quick_timing = keep: --quick ends the run
				     * sooner but keeps starts, arrivals and
				     * phases at their times (else scaled) */
	double sample_hz;
	double steady_tail;         /* steady usage: median of this last fraction */
	bool density;               /* report VMs that arrived before a failure */
	bool host_cost;             /* measure the host's cost per VM */
	struct bench_group group[BENCH_MAX_GROUPS];
	unsigned ngroups;
	struct bench_phase phase[BENCH_MAX_PHASES];
	unsigned nphases;
};

/* Reads a scenario file.  Errors are "FILE:LINE: why" (or "FILE: why" for
 * what the whole file lacks).  0 or -errno. */
int bench_scenario_load(const char *path, struct bench_scenario *sc,
			char *err, size_t errlen);
/* What --quick multiplies starts, arrivals and phase times by: 1 without
 * it or with quick_timing = keep, else quick_duration / duration. */
double bench_quick_scale(const struct bench_scenario *sc, bool quick);
/* When VM k of group g starts (seconds from the run's start). */
double bench_vm_start(const struct bench_scenario *sc, unsigned g, unsigned k,
		      bool quick);
/* ---------------------------------------- RAM images (bench_images.c) */

/* A group's `image = NAME|PATH ...` (spaces or commas): 0, or -1 with
 * msg saying why. */
int bench_images_key(struct bench_group *g, const char *section,
		     const char *val, char *msg, size_t msglen);
/* After the file is read: an `image` workload needs the key and the key
 * an `image` workload, every image exists (names become paths), and mem
 * holds the largest (derived when the group has no mem).  "FILE:LINE:
 * why" in err; 0 or -EINVAL. */
int bench_images_resolve(struct bench_scenario *sc, char *err, size_t errlen);
/* The image workload's own end: end_ms= at this fraction of the run, so
 * that its final check of every page runs inside the run.  The check
 * reads every page the image holds, and under a sharing arm each merged
 * page read faults: 2-10 s per 512 MiB boot image here, 12 s at worst
 * with 8 of them on 2 CPUs; the second half of the run leaves room. */
#define BENCH_IMAGE_END_FRAC 0.5
/* wl plus " end_ms=MS" for an `image` workload that sets neither end_ms
 * nor seconds (out holds wl otherwise). */
void bench_images_workload(const char *wl, double duration, char *out,
			   size_t outlen);
/* True when wl is an `image` workload. */
bool bench_wl_image(const char *wl);

/* ------------------------------------------- phases (bench_phase.c) */

/* A phase's group keys (start, idle, activate, grow = GROUP...): 1 taken,
 * 0 not one of them, -1 bad (msg says why). */
int bench_phase_key(struct bench_phase *p, const char *key, const char *val,
		    int line, char *msg, size_t msglen);
/* After the file is read: group names to masks, and the checks that need
 * the whole file (the group exists, its workload takes the action, a group
 * starts once).  "FILE:LINE: why" in err; 0 or -EINVAL. */
int bench_phase_resolve(struct bench_scenario *sc, char *err, size_t errlen);
/* When group g's first VM starts (its own start, or its start phase). */
double bench_group_start(const struct bench_scenario *sc, unsigned g,
			 bool quick);
/* The guest's schedule for group g, " sched=MS:ACT,..." from the phases'
 * idle/activate/grow (ms from the run's start), or "". */
void bench_phase_sched(const struct bench_scenario *sc, unsigned g, bool quick,
		       char *buf, size_t len);

/* Guest RAM of the whole fleet, bytes. */
uint64_t bench_scenario_ram(const struct bench_scenario *sc);
/* The duration and a phase's offset for a run (quick or not). */
double bench_duration(const struct bench_scenario *sc, bool quick);
double bench_phase_at(const struct bench_scenario *sc, unsigned i, bool quick);

/* ------------------------------------- throughput (bench_tput.c) */

#define BENCH_REPORT_MS 500   /* the active guests' report_ms */

struct bench_tput;
/* The group VM name belongs to (GROUP, or GROUPk with k in *k), or -1. */
int bench_vm_group(const struct bench_scenario *sc, const char *vm,
		   unsigned *k);
bool bench_tput_wanted(const struct bench_scenario *sc);   /* an active group */
struct bench_tput *bench_tput_new(const struct bench_scenario *sc, bool quick);
void bench_tput_free(struct bench_tput *t);
/* A `results` reply of the control socket. */
void bench_tput_update(struct bench_tput *t, json_t *reply);
/* Per group, pages per second (checked and rewritten) at host time now. */
void bench_tput_rates(const struct bench_tput *t, uint64_t now_ns,
		      double rate[BENCH_MAX_GROUPS]);
/* The active VMs' last totals over their run time up to end_s, summed. */
double bench_tput_total(const struct bench_tput *t, double end_s);
#define BENCH_TPUT_WINDOW_S 2.0
struct bench_result;
/* The lowest ratio of r's active groups' rate to ref's in the same
 * BENCH_TPUT_WINDOW_S window, over the windows where both ran and ref had
 * work reported; -1 without one.  *t_below: the start of the first window
 * under floor, or -1. */
double bench_tput_worst(const struct bench_scenario *sc, bool quick,
			const struct bench_result *r,
			const struct bench_result *ref, double floor,
			double *t_below);

/* ------------------------------------------------------------ arms */

enum bench_arm_id {
	ARM_NONE, ARM_KERNEL_KSM, ARM_KERNEL_MOM, ARM_DENSE, ARM_POLICY,
	ARM_DENSE_POLICY, ARM_COUNT
};
extern const char *const bench_arm_names[ARM_COUNT];
/* "none,dense" into a mask; err names an unknown arm.  0 or -EINVAL. */
int bench_arms_parse(const char *list, unsigned *mask, char *err, size_t errlen);

/* ------------------------------------------------------- the cgroup */

struct bench_cg {
	struct memcg cg;       /* util/cgroup.h: v1 or v2 */
};
/* A fresh child "densevm-bench-TAG-PID" of this process's memory cgroup;
 * err says why not (no writable memory cgroup, v2 without delegation). */
int bench_cg_create(struct bench_cg *cg, const char *tag, char *err,
		    size_t errlen);
/* 0 = unlimited.  -EBUSY when usage cannot be reclaimed below it. */
int bench_cg_set_limit(const struct bench_cg *cg, uint64_t limit);
uint64_t bench_cg_usage(const struct bench_cg *cg);
uint64_t bench_cg_limit(const struct bench_cg *cg);   /* 0 = unlimited */
uint64_t bench_cg_oom_kills(const struct bench_cg *cg);
/* Moves the calling process in (for a child between fork and exec). */
int bench_cg_join(const struct bench_cg *cg);
void bench_cg_remove(struct bench_cg *cg);

/* ---------------------------------- host cost per VM (bench_cost.c) */

/* With [scenario] host_cost = 1, once, at BENCH_COST_AT of the run: what
 * the host pays per VM beyond its guest RAM. */
#define BENCH_COST_AT 0.6
struct bench_cost {
	bool measured;
	unsigned vms, started;       /* VMs, and those that made a hypercall */
	double usage, resident;      /* cgroup usage, guest RAM resident; bytes */
	double beyond_per_vm;        /* (usage - resident) / vms, bytes */
	unsigned threads;            /* of the densevm process */
	double fleet_start_s;        /* spawn to the last VM's first hypercall */
	double boot_ms_p50, boot_ms_max;   /* VM start to its first hypercall */
	double t;                    /* when measured, s from the start */
};
void bench_cost_measure(const char *sock, pid_t pid, double usage,
			double spawn_s, double t, struct bench_cost *c);
/* DIR/host-cost-ARM-REP.json and a line on stderr. */
void bench_cost_write(const char *dir, const char *af, int rep,
		      const struct bench_cost *c);

/* ------------------------------------------------------- one arm run */

struct bench_sample {
	double t;
	uint64_t usage, limit;
	uint64_t base_pages, sharing_pages, zero_pages, saved, ballooned;
	double ksm_cpu, policy_cpu, proc_cpu, psi_some10;
	uint64_t pauses, vmas, oom_kills;
	double tput[BENCH_MAX_GROUPS];   /* pages/s per group (active ones) */
};

struct bench_result {
	enum bench_arm_id arm;
	int rep;
	bool ran;
	char skipped[200];          /* why the arm did not run, or "" */
	struct bench_sample *s;
	size_t ns, cap;
	/* figures */
	double peak, steady, ratio, t_steady, reclaim_cpu, proc_cpu;
	double saved_gib;           /* saved + ballooned, median over the
				     * steady window (as steady usage): what
				     * the engines say */
	double reclaimed_gib;       /* none's steady usage less this arm's,
				     * same rep: what the host got; -1 = no
				     * reference (bench_report) */
	double throughput;          /* active groups' pages rewritten per second */
	double throughput_pct;      /* of none's in the same rep; -1 = n/a */
	unsigned oom_kills, alloc_fail, mismatches, crashed, vms_ok, vms;
	unsigned img_vms, img_verified;   /* image VMs; their final checks
					   * that passed ("image: done") */
	bool budget_missed;         /* a budget phase could not be applied */
	double t_fail;              /* first failure (OOM kill, early death, or
				     * in density a throughput window below
				     * 90 % of none's); -1 = none */
	bool tput_failed;           /* density: that failure was throughput */
	double tput_worst_pct;      /* worst window against none's; -1 = n/a */
	unsigned vms_fit;           /* density: VMs started before t_fail */
	double fit_ram;             /* their guest RAM, bytes */
	bool fits;
	int exit_status;
	struct bench_cost cost;     /* with host_cost */
};

struct bench_opts {
	const struct bench_scenario *sc;
	const char *densevm;        /* the binary, /proc/self/exe */
	const char *guest;          /* micro guest ELF or NULL */
	const char *out;            /* the results folder */
	bool quick, progress_tty;
	unsigned reps;
};

/* Which arms run a ksm engine, which Linux KSM's, and which the policy
 * (bench_config.c). */
bool bench_arm_ksm(enum bench_arm_id a);
bool bench_arm_kernel(enum bench_arm_id a);
bool bench_arm_policy(enum bench_arm_id a);
/* Writes the arm's `densevm run` config to conf (bench_config.c); the
 * policy logs to plog, and the guests' schedules count from epoch_ns. */
int bench_write_config(const struct bench_opts *o, enum bench_arm_id arm,
		       const char *conf, const char *plog, uint64_t epoch_ns);
/* Runs one arm once; fills r (r->skipped when it could not run). */
int bench_arm_run(const struct bench_opts *o, enum bench_arm_id arm, int rep,
		  struct bench_result *r);
/* The figures from r's timeline and guest results (bench_arm.c). */
void bench_result_figures(const struct bench_opts *o, struct bench_result *r);
/* density: vms_fit and fit_ram from r->t_fail */
void bench_density_fit(const struct bench_opts *o, struct bench_result *r);
json_t *bench_timeline_json(const struct bench_result *r);

/* One request to a run's control socket; the reply, or NULL (1 s
 * timeout).  bench_arm.c. */
json_t *bench_ctl_req(const char *sock, const char *cmd, const char *a1,
		      const char *a2, const char *a3);

/* ----------------------------------------------------------- report */

/* The median and min-max of the values >= 0 of v (n of them at most 64
 * count); n = how many; -1s without one. */
struct bench_stat { double med, lo, hi; int n; };
struct bench_stat bench_stat(const double *v, int n);
/* What the summary may claim (bench_goals.c): the time to steady only in
 * a repetition the arm fits, the reclaim CPU per GiB only over at least
 * BENCH_MIN_RECLAIM_MIB reclaimed (reclaimed_gib: measured on the host's
 * side, against none); -1 otherwise. */
#define BENCH_MIN_RECLAIM_MIB 64
double bench_t_steady(const struct bench_result *r);
double bench_cpu_per_gib(const struct bench_result *r);
/* The "against the goals" block: the ratios from the run (or
 * "n/a: why"), on stdout, as a section of md, and as root's "goals". */
void bench_goals(const struct bench_opts *o, const struct bench_result *res,
		 size_t nres, unsigned mask, FILE *md, json_t *root);

/* Summary table on stdout, DIR/summary.md, DIR/summary.json. */
int bench_report(const struct bench_opts *o, struct bench_result *res,
		 size_t nres, unsigned mask);
/* DIR/budget.csv: the scenario's budget over time (for the plots). */
int bench_write_budget(const struct bench_opts *o);
/* gnuplot: DIR/usage.png|svg from DIR/timeline-ARM-REP.csv; returns 0,
 * or -ENOENT without gnuplot (a line says so). */
int bench_plot(const char *dir);

#endif
