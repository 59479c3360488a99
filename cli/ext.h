/*
 * ext.h - how a subsystem (ksm, balloon, policy) plugs into `densevm run`
 * without run.c knowing it: it owns a config section, may claim per-VM
 * keys, may set up each VM's config before creation (e.g. a sharing
 * domain's base memfd), attaches to the created VMs, registers its own
 * control-socket commands, and adds its figures to `stat` and the JSON
 * report.  The list of extensions is cli/ext_list.c.
 *
 * Order in a run: config_key/vm_key while parsing; prepare_vm before each
 * hv_vm_create; start after all VMs exist (before they run); stat/report
 * on request; stop after every VM ended, before the VMs are destroyed.
 * Every hook may be NULL.  Errors are one line in err; run.c adds the
 * file:line or --vm origin.
 */
#ifndef DENSEVM_EXT_H
#define DENSEVM_EXT_H

#include <jansson.h>
#include "cli.h"
#include "ctl.h"

struct run_ext {
	const char *name;
	const char *section;   /* the config section it owns ([ksm]) or NULL */
	/* a key of its section; an unknown key is an error */
	int (*config_key)(const char *key, const char *val, char *err,
			  size_t errlen);
	/* a per-VM key: -ENOENT = not mine; 0 = accepted (stored in the spec,
	 * read back with spec_ext()); other = error in err */
	int (*vm_key)(const char *key, const char *val, char *err, size_t errlen);
	int (*prepare_vm)(const struct vm_spec *s, struct hv_vm_config *c,
			  char *err, size_t errlen);
	int (*start)(struct run_state *st, struct ctl_server *ctl, char *err,
		     size_t errlen);
	/* A page-sharing extension gives the balloon the hook that drops its
	 * reference to a page before the balloon discards it (see
	 * balloon_host.h, on_page_released).  Called from the balloon's start,
	 * so the sharing extension comes first in run_exts[].  *fn = NULL when
	 * it does not manage this VM. */
	void (*release_hook)(struct hv_vm *vm,
			     void (**fn)(void *ctx, uint64_t gpa, hv_pstate_t old),
			     void **ctx);
	/* its part of `stat` (NULL = nothing); vm NULL = process-wide */
	json_t *(*stat)(struct hv_vm *vm);
	/* `stat --check`: its consistency self-check; 0 = consistent, else
	 * one line in err and `stat` replies with an error */
	int (*check)(char *err, size_t errlen);
	void (*stop)(void);
};

extern const struct run_ext *const run_exts[];   /* NULL-terminated */

#endif
