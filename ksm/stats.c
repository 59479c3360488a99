/*
 * stats.c - global and per-VM statistics, and their JSON form.
 *
 * Counters are relaxed atomics bumped by the scanner; reading them needs
 * only list_lock (the VM and domain lists), never the scanner's lock, so
 * `densevm stat` does not wait for a pass.  Gauges (pages_sharing,
 * zero_pages, ...) live per VM and are summed for the global view.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

void kstats_fill(struct ksm *k, const struct kctr *c, struct kpause *p,
		 struct ksm_stats *st)
{
	(void)k;
	st->pages_sharing = CTR_GET(c->pages_sharing);
	st->base_pages = CTR_GET(c->base_pages);
	st->fill_pages = CTR_GET(c->fill_pages);
	st->zero_pages = CTR_GET(c->zero_pages);
	st->untouched_pages = CTR_GET(c->untouched_pages);
	st->volatile_pages = CTR_GET(c->volatile_pages);
	st->full_scans = CTR_GET(c->full_scans);
	st->pages_hashed = CTR_GET(c->pages_hashed);
	st->pages_compared = CTR_GET(c->pages_compared);
	st->merges = CTR_GET(c->merges);
	st->unmerges = CTR_GET(c->unmerges);
	st->collisions = CTR_GET(c->collisions);
	st->merge_races = CTR_GET(c->merge_races);
	st->map_failures = CTR_GET(c->map_failures);
	st->cpu_seconds = (double)CTR_GET(c->cpu_ns) / 1e9;
	st->pauses = CTR_GET(c->pauses);
	st->base_zero_reclaimed = CTR_GET(c->base_zero_reclaimed);
	st->wp_batches = CTR_GET(c->wp_batches);
	st->wp_waits = CTR_GET(c->wp_waits);
	kpause_percentiles(p, KRING_PAUSE, &st->pause_p50_ns,
			   &st->pause_p99_ns, &st->pause_max_ns);
	kpause_percentiles(p, KRING_WPWIN, &st->wp_window_p50_ns,
			   &st->wp_window_p99_ns, &st->wp_window_max_ns);
	kpause_percentiles(p, KRING_STALL, &st->stall_p50_ns,
			   &st->stall_p99_ns, &st->stall_max_ns);
}

void ksm_vm_stats(struct ksm_vm *vm, struct ksm_stats *st)
{
	memset(st, 0, sizeof(*st));
	kstats_fill(vm->ksm, &vm->c, &vm->pause, st);
	st->cpu_seconds = 0;
	st->bytes_saved = (st->pages_sharing + st->zero_pages) * KSM_PAGE;
}

void ksm_stats(struct ksm *k, struct ksm_stats *g)
{
	memset(g, 0, sizeof(*g));
	k->eng->stats(k, g);
}

void kdense_stats(struct ksm *k, struct ksm_stats *g)
{
	struct ksm_vm *vm;
	struct kdom *d;

	kstats_fill(k, &k->c, &k->pause, g);
	/* gauges: per VM, summed */
	g->pages_sharing = g->base_pages = g->zero_pages = g->fill_pages = 0;
	g->untouched_pages = 0;
	g->volatile_pages = 0;
	pthread_rwlock_rdlock(&k->list_lock);
	for (vm = k->vms; vm; vm = vm->next) {
		g->pages_sharing += CTR_GET(vm->c.pages_sharing);
		g->base_pages += CTR_GET(vm->c.base_pages);
		g->fill_pages += CTR_GET(vm->c.fill_pages);
		g->zero_pages += CTR_GET(vm->c.zero_pages);
		g->untouched_pages += CTR_GET(vm->c.untouched_pages);
		g->volatile_pages += CTR_GET(vm->c.volatile_pages);
	}
	/* stored contents: frames-memfd frames, base pages in use at their
	 * GPA, and base pages only other GPAs map (a base frame counts
	 * once, as its base page) */
	for (d = k->doms; d; d = d->next)
		g->frames += __atomic_load_n(&d->frames_used, __ATOMIC_RELAXED) -
			     __atomic_load_n(&d->bframes, __ATOMIC_RELAXED) +
			     __atomic_load_n(&d->base_used, __ATOMIC_RELAXED) +
			     __atomic_load_n(&d->bframes_alone, __ATOMIC_RELAXED);
	pthread_rwlock_unlock(&k->list_lock);
	g->bytes_saved = (g->pages_sharing > g->frames ?
			  g->pages_sharing - g->frames : 0) * KSM_PAGE +
			 g->zero_pages * KSM_PAGE;
}

/* ---------------------------------------------------------------- JSON */

/* The fields of struct ksm_stats, turned into JSON in one place. */
#define F(name, global) { #name, offsetof(struct ksm_stats, name), global }
static const struct { const char *name; size_t off; bool global; } fields[] = {
	F(frames, true), F(pages_sharing, false), F(base_pages, false),
	F(fill_pages, false), F(zero_pages, false), F(untouched_pages, false), F(volatile_pages, false), F(full_scans, false),
	F(pages_hashed, false), F(pages_compared, false), F(merges, false),
	F(unmerges, false), F(collisions, false), F(merge_races, false),
	F(map_failures, false), F(base_zero_reclaimed, true),
	F(bytes_saved, false), F(pauses, false), F(pause_p50_ns, false),
	F(pause_p99_ns, false), F(pause_max_ns, false), F(wp_batches, false),
	F(wp_waits, false), F(wp_window_p50_ns, false),
	F(wp_window_p99_ns, false), F(wp_window_max_ns, false),
	F(stall_p50_ns, false), F(stall_p99_ns, false), F(stall_max_ns, false),
};
#undef F

json_t *ksm_stats_fields_json(const struct ksm_stats *s, bool global)
{
	json_t *o = json_object();

	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (global || !fields[i].global)
			json_object_set_new(o, fields[i].name, json_integer(
				(json_int_t)*(const uint64_t *)
				((const char *)s + fields[i].off)));
	if (global)
		json_object_set_new(o, "cpu_seconds", json_real(s->cpu_seconds));
	return o;
}

json_t *ksm_stats_json(struct ksm *k)
{
	const char *const *names = ksm_tunable_names();
	json_t *o = json_object(), *vms = json_array(), *tun = json_object();
	struct ksm_stats s;
	struct ksm_vm *vm;
	char v[32];

	ksm_stats(k, &s);
	json_object_set_new(o, "engine", json_string(ksm_engine_name(k)));
	json_object_set_new(o, "global", ksm_stats_fields_json(&s, true));
	pthread_rwlock_rdlock(&k->list_lock);
	for (vm = k->vms; vm; vm = vm->next) {
		ksm_vm_stats(vm, &s);
		json_array_append_new(vms, json_pack("{s:s, s:i, s:o}", "name",
			vm->name, "domain", (json_int_t)(vm->dom ? vm->dom->id : 0),
			"stats", ksm_stats_fields_json(&s, false)));
	}
	pthread_rwlock_unlock(&k->list_lock);
	json_object_set_new(o, "vms", vms);
	for (unsigned i = 0; names[i]; i++) {
		ksm_get_tunable(k, names[i], v, sizeof(v));
		json_object_set_new(tun, names[i],
				    json_integer(strtoll(v, NULL, 10)));
	}
	json_object_set_new(o, "tunables", tun);
	return o;
}
