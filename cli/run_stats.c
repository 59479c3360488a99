/*
 * run_stats.c - the run's figures: each extension fills its part of a
 * struct vm_figures / run_figures (ext.h) under the run context's lock,
 * and this file alone turns them into the JSON of `stat` (and of `stat
 * VM`).  Readers that want numbers (the policy engine) use the structs.
 */
#include <stdlib.h>
#include <string.h>
#include "ext.h"

void run_vm_figures(struct run_state *rs, const struct vm_run *r,
		    struct vm_figures *f)
{
	memset(f, 0, sizeof(*f));
	pthread_mutex_lock(&rs->lock);
	for (int i = 0; run_exts[i]; i++)
		if (run_exts[i]->vm_figures)
			run_exts[i]->vm_figures(rs, r, f);
	pthread_mutex_unlock(&rs->lock);
}

void run_run_figures(struct run_state *rs, struct run_figures *f)
{
	memset(f, 0, sizeof(*f));
	pthread_mutex_lock(&rs->lock);
	for (int i = 0; run_exts[i]; i++)
		if (run_exts[i]->run_figures)
			run_exts[i]->run_figures(rs, f);
	pthread_mutex_unlock(&rs->lock);
}

#define J(x) json_integer((json_int_t)(x))

json_t *vm_figures_json(const struct vm_figures *f, json_t *o)
{
	if (f->ksm) {
		json_t *k;
		if (f->ksm_starting) {
			k = json_pack("{s:s}", "engine", "starting");
		} else {
			k = f->ksm_per_vm ? ksm_stats_fields_json(&f->ksm_st, false)
					  : json_object();
			json_object_set_new(k, "domain",
					    json_string(f->ksm_domain ? f->ksm_domain : ""));
			json_object_set_new(k, "registered",
					    json_boolean(f->ksm_registered));
		}
		json_object_set_new(o, "ksm", k);
	}
	if (f->balloon) {
		json_t *b = balloon_host_stats_to_json(&f->balloon_st);
		json_object_set_new(o, "balloon", b ? b : json_pack("{s:s}", "error",
								    "out of memory"));
	}
	if (f->console)
		json_object_set_new(o, "console", json_pack("{s:I, s:I}",
			"suppressed_lines", (json_int_t)f->console_suppressed_lines,
			"suppressed_bytes", (json_int_t)f->console_suppressed_bytes));
	return o;
}

json_t *run_figures_json(const struct run_figures *f, json_t *o)
{
	if (f->ksm) {
		json_t *k;
		if (f->ksm_starting) {
			k = json_pack("{s:s}", "engine", "starting");
		} else {
			json_t *tun = json_object();
			for (unsigned i = 0; i < f->ksm_ntun; i++) {
				/* a tunable prints as a JSON number */
				json_t *v = json_loads(f->ksm_tun[i].val, JSON_DECODE_ANY,
						       NULL);
				json_object_set_new(tun, f->ksm_tun[i].name,
						    v ? v : json_string(f->ksm_tun[i].val));
			}
			k = json_pack("{s:s, s:o, s:o, s:I, s:I}",
				      "engine", f->ksm_engine ? f->ksm_engine : "",
				      "global", ksm_stats_fields_json(&f->ksm_global, true),
				      "tunables", tun,
				      "vmas", (json_int_t)f->vmas,
				      "max_map_count", (json_int_t)f->max_map_count);
		}
		json_object_set_new(o, "ksm", k);
	}
	if (f->balloon)
		json_object_set_new(o, "balloon", json_pack("{s:i, s:I, s:I}",
			"vms", (int)f->balloon_vms,
			"size_bytes", (json_int_t)f->balloon_size,
			"target_bytes", (json_int_t)f->balloon_target));
	return o;
}
