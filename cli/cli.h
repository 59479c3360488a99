/*
 * cli.h - the densevm command's internal interface: VM specs (from --vm
 * and from config files), the parsed config (struct run_config), the run
 * context every extension reads (struct run_state), size parsing, and the
 * subcommands.
 *
 * Parsing fills a run_config and never touches a live run, so a reload can
 * parse a new file beside the one in use.  The run context holds every
 * live handle (each VM's balloon and ksm registration, the run's ksm):
 * one extension reaches another's through it, never through file statics.
 */
#ifndef DENSEVM_CLI_H
#define DENSEVM_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include "hv.h"
#include "balloon-host/balloon_host.h"
#include "policy/policy.h"
#include "util/size.h"   /* parse_size(): one syntax for cli/ and policy/ */

#define CLI_MAX_VMS 1024   /* KVM here made 1000 VMs in 1.08 s in one process */

struct vm_spec {
	char name[64];
	uint64_t mem;
	unsigned cpus;
	enum hv_guest_kind kind;
	char *image;      /* micro guest ELF override, or the Linux kernel */
	char *initrd;
	char *cmdline;    /* Linux cmdline */
	char *workload;   /* micro guest arguments */
	unsigned count;   /* replicate: name0, name1, ... */
	double timeout;
	char origin[300]; /* "--vm 2" or "file.conf:12", for messages */
	struct { char key[32]; char *val; } ext[16]; /* keys extensions own */
	unsigned next;
};

/* The value of a per-VM key that an extension claimed, or NULL. */
const char *spec_ext(const struct vm_spec *s, const char *key);

#define RUN_MAX_TUNABLES 32

/* What `[ksm]` said; the engine is chosen at start. */
enum ksm_sel { KSM_SEL_NONE, KSM_SEL_OFF, KSM_SEL_DENSE, KSM_SEL_KERNEL };

/* The config's sections, parsed (config_init sets each one's defaults). */
struct run_config {
	struct {
		enum ksm_sel engine;   /* KSM_SEL_NONE: no [ksm] section seen */
		bool any_key;          /* the section has keys: ksm is on */
		struct { char name[32]; char val[32]; } tun[RUN_MAX_TUNABLES];
		unsigned ntun;
	} ksm;
	struct balloon_host_config balloon;   /* [balloon]; no hooks set */
	struct { uint64_t rate, burst; } console;
	struct policy_config policy;          /* [policy] */
	bool policy_on;                       /* the file has a [policy] section */
};

/* Sets every section's defaults (each extension's config_init). */
void run_config_init(struct run_config *rc);

struct run_opts {
	struct run_config cfg;
	struct vm_spec *specs;
	unsigned nspecs;
	double timeout;        /* default per VM */
	const char *json_path; /* NULL, "-" or a file */
	bool quiet;
	const char *guest_path;
	char *owned;           /* a path the config file gave, freed at the end */
};


void spec_init(struct vm_spec *s, const char *origin);
void spec_free(struct vm_spec *s);
/* Applies key=value to a spec; on error writes "key: what is wrong". */
int spec_set(struct vm_spec *s, const char *key, const char *val,
	     char *err, size_t errlen);
/* Parses "k=v,k=v,..." (values may be "double quoted" to hold commas). */
int spec_parse(struct vm_spec *s, const char *text, char *err, size_t errlen);
/* The name of replica k of spec s, which is VM number n of the run:
 * vmN without a name, NAMEk with count > 1, else NAME. */
void spec_vm_name(const struct vm_spec *s, unsigned k, unsigned n, char *buf,
		  size_t len);
/* Final checks of a spec (required keys for its kind). */
int spec_check(const struct vm_spec *s, char *err, size_t errlen);

/* ext_image.c: the smallest mem (a multiple of 2M, at least 16M) in which
 * a micro guest with ram_image= loads all of an image of image_bytes, with
 * 2 MiB of its heap free above the image (the `image` workload's page map
 * and the balloon's pages): 516M for a 512 MiB image; 0 when none below
 * the PCI hole does. */
uint64_t image_vm_mem(uint64_t image_bytes);

/* Reads a config file's [vm NAME] sections, [run] defaults and the
 * extensions' sections into opts (opts->cfg must have been through
 * run_config_init; a second file adds to the first).  Errors name
 * FILE:LINE. */
int config_load(const char *path, struct run_opts *opts, char *err,
		size_t errlen);

struct ksm_vm;
struct ksm;

/* One VM of the run and the handles the extensions hold on it.  The
 * handles are set by an extension's start and cleared by its stop, under
 * run_state.lock; readers on other threads (the control socket, policy)
 * take the lock too. */
struct vm_run {
	struct hv_vm *vm;
	struct vm_spec *spec;
	struct balloon_host *balloon;   /* NULL: balloon = off, or not yet */
	struct ksm_vm *ksm;             /* NULL: not registered with ksm */
	const char *ksm_domain;         /* "default", NAME or "private" */
};

/* A sharing domain: VMs whose RAM maps one base memfd (dense engine). */
struct run_domain {
	char name[40];   /* "" = the default domain */
	unsigned id;
	int memfd;       /* its base memfd, or -1 */
};

#define RUN_MAX_CONFIGS 8

/* The run context: created before the first VM, freed after the last. */
struct run_state {
	const char *config[RUN_MAX_CONFIGS];   /* --config files, in order */
	unsigned nconfig;
	struct vm_run *runs;
	unsigned n;
	const struct run_config *cfg;   /* the config the run started with */
	pthread_mutex_t lock;           /* guards the handles below and in runs */
	struct ksm *ksm;                /* NULL: ksm off, or not yet started */
	bool ksm_kernel;                /* the kernel engine (no page state) */
	struct run_domain *dom;         /* CLI_MAX_VMS + 1 of them */
	unsigned ndom;
};

/* host_mem.c: the host's memory budget, usage, pressure and the signals
 * that wake the policy. */
#define HOST_MEM_PATH 256
enum host_mem_kind { HOST_MEM_NONE, HOST_MEM_V1, HOST_MEM_V2 };

struct host_mem {
	char root[64];            /* "" = the real "/" */
	enum host_mem_kind kind;
	char dir[HOST_MEM_PATH];  /* this process's memory cgroup */
	int event_fd;             /* v1 usage threshold, or -1 */
	int events_fd;            /* v2 memory.events, or -1 */
	int psi_fd;               /* a PSI trigger the kernel took, or -1 */
	bool threshold_live, events_live, psi_live, psi_tried;
};

struct host_mem_sample {
	uint64_t mem_total, mem_available;
	uint64_t cgroup_limit;    /* 0 = none or unlimited */
	uint64_t budget;          /* the cgroup limit, else MemTotal - reserve */
	uint64_t usage;           /* the cgroup's usage, else MemTotal - MemAvailable */
	const char *budget_from, *usage_from;
	uint64_t oom_kills;       /* the cgroup's count */
	double psi_some10, psi_full10;   /* -1 = unreadable */
};

#define HOST_MEM_WOKE_THRESHOLD 1
#define HOST_MEM_WOKE_EVENTS    2
#define HOST_MEM_WOKE_PSI       4
#define HOST_MEM_WOKE_EXTRA     8

/* root NULL or "/" for the real host; a test passes a fake tree. */
void host_mem_open(struct host_mem *h, const char *root);
int host_mem_read(struct host_mem *h, uint64_t reserve,
		  struct host_mem_sample *s);
/* (Re)arms the fast signals: a v1 threshold at `threshold` bytes of
 * usage, v2 memory.events, a PSI trigger (tried once). */
int host_mem_arm(struct host_mem *h, uint64_t threshold);
/* Waits up to timeout_ms for a signal or extra_fd (-1 = none); returns
 * the HOST_MEM_WOKE_* bits, 0 on timeout. */
int host_mem_wait(struct host_mem *h, int timeout_ms, int extra_fd);
/* "cgroup v1 usage-threshold eventfd, PSI trigger refused, ..." */
void host_mem_describe(const struct host_mem *h, char *buf, size_t len);
void host_mem_close(struct host_mem *h);

/* wss.c: a VM's working set, the distinct pages written in a window
 * (hv-core's dirty log, as its HV_DIRTY_WSS consumer), fetched every
 * sample_ns and at each window's end: each fetch makes the guest fault
 * again on its next write to every page it reports. */
#define WSS_MAX_RANGES 4
struct wss {
	struct hv_vm *vm;
	uint64_t window_ns, sample_ns, win_start, last_fetch;
	bool first;                      /* the short first window */
	unsigned nranges;
	uint64_t words[WSS_MAX_RANGES];
	uint64_t *win[WSS_MAX_RANGES];   /* pages written in this window */
	uint64_t *scratch;
	uint64_t prev_pages, cur_pages;
	uint64_t fetches;                /* dirty-log fetches so far */
};
/* sample_ns 0 (or above window_ns): one fetch per window. */
int wss_start(struct wss *w, struct hv_vm *vm, uint64_t window_ns,
	      uint64_t sample_ns, uint64_t now_ns);
/* Changes the fetch interval (a reload); same rule as wss_start's. */
void wss_set_sample(struct wss *w, uint64_t sample_ns);
/* Bytes: the larger of the last full window's and this window's (fetches
 * only when one is due). */
uint64_t wss_sample(struct wss *w, uint64_t now_ns);
void wss_stop(struct wss *w);

/* run_reload.c: re-reads the run's config files into a new run_config
 * and hands it to every extension's reload hook; the live config is not
 * touched when a file is bad (err gets FILE:LINE: why).  Serialized: the
 * signal loop and the control socket may both ask. */
int run_reload(struct run_state *rs, char *err, size_t errlen);
/* The spec that VM `name` came from in opts, or NULL. */
const struct vm_spec *run_opts_spec_of(const struct run_opts *o,
				       const char *name);

/* proc_figs.c: the process's VMA count and smaps_rollup figures (kB, -1
 * = unreadable).  Reading them walks every VMA and page table (0.1 s at
 * 110k VMAs), so a thread reads each at most once per
 * PROC_FIGS_MAX_AGE_MS, while someone asks for it; a reader gets the last
 * reading and its age (of the oldest figure in `what`) at once, only the
 * first one waits.  proc_figs_stop() ends the thread; later readers read
 * the files themselves. */
#define PROC_FIGS_MAX_AGE_MS 1000
#define PROC_FIGS_VMAS 1u   /* vmas */
#define PROC_FIGS_PSS 2u    /* rss_kb and the pss_*_kb */
struct proc_figs {
	long vmas;
	long long rss_kb, pss_kb, pss_anon_kb, pss_shmem_kb;
	int64_t age_ms;
};
void proc_figs_get(struct proc_figs *f, unsigned what);
void proc_figs_stop(void);

struct ctl_server;
/* list, stat, stop: the control-socket commands of a running process */
void run_register_ctl(struct ctl_server *s, struct run_state *st);

int cmd_run(int argc, char **argv);
/* densevm policy replay ... (cmd_policy.c) */
int cmd_policy(int argc, char **argv);
/* densevm bench ... (cmd_bench.c, bench.h) */
int cmd_bench(int argc, char **argv);
const char *default_guest_path(void);

#endif
