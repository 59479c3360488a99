/*
 * bh_json.c - a device's stats snapshot as a jansson object, for the
 * control socket and the policy engine.
 *
 * Built from struct balloon_host_stats field by field, never by printing
 * text that is parsed again: the host's own figures (size, target,
 * counters) are always there, whatever the guest sent.  Guest figures are
 * validated where they enter (bh_device.c: bh_read_guest_half), so every
 * value here is below 2^63 and fits a JSON integer; jint() still clamps,
 * as the one place that turns an unsigned count into json_int_t.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "bh_internal.h"

static json_t *jint(uint64_t v)
{
	return json_integer(v > (uint64_t)INT64_MAX ? INT64_MAX : (json_int_t)v);
}

static void set(json_t *o, const char *key, json_t *v)
{
	json_object_set_new(o, key, v);
}

static json_t *guest_object(const struct balloon_stats *g)
{
	static const struct { uint32_t bit; const char *name; size_t off; } gf[] = {
		{ BALLOON_STAT_MEM_TOTAL, "mem_total", offsetof(struct balloon_stats, mem_total) },
		{ BALLOON_STAT_MEM_FREE, "mem_free", offsetof(struct balloon_stats, mem_free) },
		{ BALLOON_STAT_MEM_AVAILABLE, "mem_available", offsetof(struct balloon_stats, mem_available) },
		{ BALLOON_STAT_CACHED, "cached", offsetof(struct balloon_stats, cached) },
		{ BALLOON_STAT_SWAP_IN, "swap_in", offsetof(struct balloon_stats, swap_in) },
		{ BALLOON_STAT_SWAP_OUT, "swap_out", offsetof(struct balloon_stats, swap_out) },
		{ BALLOON_STAT_MAJOR_FAULTS, "major_faults", offsetof(struct balloon_stats, major_faults) },
		{ BALLOON_STAT_MINOR_FAULTS, "minor_faults", offsetof(struct balloon_stats, minor_faults) },
		{ BALLOON_STAT_OOM_KILLS, "oom_kills", offsetof(struct balloon_stats, oom_kills) },
	};
	json_t *o = json_object();
	for (size_t i = 0; o && i < sizeof(gf) / sizeof(gf[0]); i++) {
		uint64_t v;
		if (!(g->valid & gf[i].bit))
			continue;
		memcpy(&v, (const char *)g + gf[i].off, sizeof(v));
		set(o, gf[i].name, jint(v));
	}
	/* PSI in hundredths of a percent on the wire, percent here */
	if (o && (g->valid & BALLOON_STAT_PSI_SOME))
		set(o, "psi_some_avg10", json_real(g->psi_some_avg10 / 100.0));
	if (o && (g->valid & BALLOON_STAT_PSI_FULL))
		set(o, "psi_full_avg10", json_real(g->psi_full_avg10 / 100.0));
	return o;
}

json_t *balloon_host_stats_to_json(const struct balloon_host_stats *s)
{
	json_t *o = json_object(), *rej = json_object();
	if (!o || !rej) {
		json_decref(o);
		json_decref(rej);
		return NULL;
	}
	set(o, "registered", json_boolean(s->registered));
	set(o, "mem_bytes", jint(s->mem_bytes));
	set(o, "size_bytes", jint(s->size_bytes));
	set(o, "target_bytes", jint(s->target_bytes));
	set(o, "guest_balloon_bytes", jint(s->guest_balloon_bytes));
	set(o, "guest_status", jint(s->guest_status));
	set(o, "reporting", json_boolean(s->reporting));
	set(o, "stats_period_ms", jint(s->stats_period_ms));
	set(o, "ring_capacity", jint(s->ring_capacity));
	set(o, "requests", jint(s->requests));
	set(o, "inflated_pages", jint(s->inflated_pages));
	set(o, "deflated_pages", jint(s->deflated_pages));
	set(o, "reported_pages", jint(s->reported_pages));
	set(o, "rejected", jint(s->rejected));
	for (int i = 0; i < BH_REJ_NR; i++)
		set(rej, balloon_host_reject_name((enum balloon_host_reject)i),
		    jint(s->reject[i]));
	set(o, "reject", rej);
	set(o, "busy", jint(s->busy));
	set(o, "io_errors", jint(s->io_errors));
	set(o, "discards", jint(s->discards));
	set(o, "log_suppressed", jint(s->log_suppressed));
	set(o, "target_reached", json_boolean(s->target_reached));
	set(o, "reach_ms", s->reach_ns >= 0 ? json_real(s->reach_ns / 1e6)
					    : json_null());
	set(o, "stats_updates", jint(s->stats_updates));
	set(o, "guest_rejected", jint(s->guest_rejected));
	set(o, "guest", guest_object(&s->guest));
	return o;
}
