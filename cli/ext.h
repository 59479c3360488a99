/*
 * ext.h - how a subsystem (ksm, balloon, console, policy) plugs into
 * `densevm run` without run.c knowing it: it owns a config section, may
 * claim per-VM keys, may set up each VM's config before creation (e.g. a
 * sharing domain's base memfd), attaches to the created VMs, registers its
 * own control-socket commands, and fills its part of the figures that
 * `stat` and the JSON report show.  The list of extensions is
 * cli/ext_list.c.
 *
 * Order in a run: config_init, then config_key/vm_key while parsing (into
 * a struct run_config, never into a live run); prepare_vm before each
 * hv_vm_create; start after all VMs exist (before they run); figures and
 * check on request (any thread); reload on SIGHUP or a control request;
 * stop after every VM ended, before the VMs are destroyed.  Every hook may be NULL.  Errors are one line in err;
 * run.c adds the file:line or --vm origin.
 *
 * Figures are structs, not JSON: a reader such as the policy engine uses
 * them as numbers, and run_stats.c alone turns them into `stat`'s JSON.
 */
#ifndef DENSEVM_EXT_H
#define DENSEVM_EXT_H

#include <jansson.h>
#include "cli.h"
#include "ctl.h"
#include "ksm/ksm.h"

/* One VM's figures, filled by each extension's vm_figures. */
struct vm_figures {
	bool balloon;                    /* a device is attached */
	struct balloon_host_stats balloon_st;
	bool ksm;                        /* ksm is on for this run */
	bool ksm_starting;               /* on, but not started yet */
	bool ksm_registered;
	bool ksm_per_vm;                 /* ksm_st is valid (dense engine) */
	const char *ksm_domain;
	struct ksm_stats ksm_st;
	bool console;
	uint64_t console_suppressed_lines, console_suppressed_bytes;
};

/* The run's process-wide figures, filled by each extension's run_figures. */
struct run_figures {
	bool ksm, ksm_starting;
	const char *ksm_engine;
	struct ksm_stats ksm_global;
	struct { char name[32]; char val[32]; } ksm_tun[RUN_MAX_TUNABLES];
	unsigned ksm_ntun;
	long long vmas, max_map_count;
	bool balloon;                    /* the run has balloon devices */
	unsigned balloon_vms;
	uint64_t balloon_size, balloon_target;
};

struct run_ext {
	const char *name;
	const char *section;   /* the config section it owns ([ksm]) or NULL */
	void (*config_init)(struct run_config *rc);   /* its defaults */
	/* its section's header was seen (a section may have no keys) */
	void (*config_section)(struct run_config *rc);
	/* after a whole file: checks across keys; err without FILE */
	int (*config_done)(struct run_config *rc, char *err, size_t errlen);
	/* a key of its section; an unknown key is an error */
	int (*config_key)(struct run_config *rc, const char *key, const char *val,
			  char *err, size_t errlen);
	/* a per-VM key: -ENOENT = not mine; 0 = accepted (stored in the spec,
	 * read back with spec_ext()); other = error in err */
	int (*vm_key)(const char *key, const char *val, char *err, size_t errlen);
	int (*prepare_vm)(struct run_state *rs, const struct vm_spec *s,
			  struct hv_vm_config *c, char *err, size_t errlen);
	int (*start)(struct run_state *rs, struct ctl_server *ctl, char *err,
		     size_t errlen);
	/* its part of one VM's figures / of the run's; rs->lock is held */
	void (*vm_figures)(struct run_state *rs, const struct vm_run *r,
			   struct vm_figures *f);
	void (*run_figures)(struct run_state *rs, struct run_figures *f);
	/* `stat --check`: its consistency self-check; 0 = consistent, else
	 * one line in err and `stat` replies with an error */
	int (*check)(struct run_state *rs, char *err, size_t errlen);
	void (*stop)(struct run_state *rs);
	/* A reload (SIGHUP, `ctl policy reload`): o holds the config files
	 * parsed anew, rs->cfg is still the old one.  Take what it may change
	 * at run time; an error keeps the old values (one line in err). */
	int (*reload)(struct run_state *rs, const struct run_opts *o, char *err,
		      size_t errlen);
};

extern const struct run_ext *const run_exts[];   /* NULL-terminated */

/* run_stats.c: the figures of one VM / of the run, from every extension
 * (takes rs->lock), and the JSON `stat` shows for them. */
void run_vm_figures(struct run_state *rs, const struct vm_run *r,
		    struct vm_figures *f);
void run_run_figures(struct run_state *rs, struct run_figures *f);
json_t *vm_figures_json(const struct vm_figures *f, json_t *into);
json_t *run_figures_json(const struct run_figures *f, json_t *into);

#endif
