/*
 * policy_log.c - the decision log's format: one tick (all its inputs and,
 * optionally, its decisions) as one JSON object, and back.
 *
 * Owns the field names (policy.h lists them) and their validation.  The
 * reader trusts nothing: every field is checked for presence, type and
 * range, and an error names the field by its path ("vms[2].ram: missing",
 * "out.vms[0].reason: unknown 'x'") so replay can add LOG:LINE.  Integers
 * are JSON integers (jansson's are signed 64-bit: byte counts stay below
 * 2^63); doubles are JSON reals, dumped with 17 significant digits, which
 * is enough for any double to read back as itself - the replay's promise
 * of identical decisions rests on that.  Unknown fields are ignored, so a
 * newer writer's log still replays.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "policy_internal.h"

/* ---------------------------------------------------------------- write */

static json_t *jreal(double v)
{
	return json_real(isfinite(v) ? v : -1.0);
}

static json_t *vm_to_json(const struct policy_vm_in *v)
{
	return json_pack("{s:s%, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:I, s:I, s:I,"
			 " s:I, s:b, s:I, s:I}",
			 "name", v->name, strnlen(v->name, sizeof(v->name)),
			 "ram", (json_int_t)v->ram,
			 "shares", (json_int_t)v->cfg.shares,
			 "min", (json_int_t)v->cfg.min,
			 "max", (json_int_t)v->cfg.max,
			 "balloon_size", (json_int_t)v->balloon_size,
			 "balloon_target", (json_int_t)v->balloon_target,
			 "stats_valid", v->stats_valid,
			 "g_total", (json_int_t)v->g_total,
			 "g_free", (json_int_t)v->g_free,
			 "g_available", (json_int_t)v->g_available,
			 "g_floor", (json_int_t)v->g_floor,
			 "g_pressure", v->g_pressure,
			 "active_bytes", (json_int_t)v->active_bytes,
			 "ksm_saved", (json_int_t)v->ksm_saved);
}

json_t *policy_tick_to_json(const struct policy_in *in,
			    const struct policy_out *out)
{
	json_t *vms = json_array();
	json_t *j;

	for (unsigned i = 0; i < in->nvms; i++)
		json_array_append_new(vms, vm_to_json(&in->vms[i]));
	j = json_pack("{s:I, s:I, s:I, s:o, s:o, s:{s:I, s:o, s:I, s:I}, s:o}",
		      "now_ns", (json_int_t)in->now_ns,
		      "budget", (json_int_t)in->budget,
		      "usage", (json_int_t)in->usage,
		      "psi_some10", jreal(in->psi_some10),
		      "psi_full10", jreal(in->psi_full10),
		      "ksm",
		      "saved", (json_int_t)in->ksm_saved_bytes,
		      "cpu_s", jreal(in->ksm_cpu_s),
		      "merges", (json_int_t)in->ksm_merges,
		      "scan_rate", (json_int_t)in->ksm_scan_rate,
		      "vms", vms);
	if (!j || !out)
		return j;
	json_t *ovms = json_array();
	for (unsigned i = 0; i < out->nvms; i++)
		json_array_append_new(ovms, json_pack("{s:I, s:s}",
				      "target", (json_int_t)out->vms[i].target,
				      "reason",
				      policy_reason_name(out->vms[i].reason)));
	json_object_set_new(j, "out", json_pack("{s:s, s:I, s:o, s:I, s:o}",
			    "state", policy_state_name(out->state),
			    "scan_rate", (json_int_t)out->scan_rate,
			    "free", jreal(out->free),
			    "want", (json_int_t)out->want,
			    "vms", ovms));
	return j;
}

char *policy_tick_dumps(const struct policy_in *in,
			const struct policy_out *out)
{
	json_t *j = policy_tick_to_json(in, out);
	char *s = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER |
				 JSON_REAL_PRECISION(17)) : NULL;

	json_decref(j);
	return s;
}

/* ----------------------------------------------------------------- read */

struct rd {
	char *err;
	size_t errlen;
	char path[64];     /* "" or "vms[2]." */
};

static int fail(struct rd *r, const char *key, const char *what)
{
	snprintf(r->err, r->errlen, "%s%s: %s", r->path, key, what);
	return -EINVAL;
}

static json_t *field(struct rd *r, json_t *o, const char *key, int *rc)
{
	json_t *v = json_object_get(o, key);

	if (!v)
		*rc = fail(r, key, "missing");
	return v;
}

static int get_u64(struct rd *r, json_t *o, const char *key, uint64_t *out)
{
	int rc = 0;
	json_t *v = field(r, o, key, &rc);

	if (!v)
		return rc;
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return fail(r, key, "must be an integer >= 0");
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

static int get_i64(struct rd *r, json_t *o, const char *key, int64_t *out)
{
	int rc = 0;
	json_t *v = field(r, o, key, &rc);

	if (!v)
		return rc;
	if (!json_is_integer(v))
		return fail(r, key, "must be an integer");
	*out = json_integer_value(v);
	return 0;
}

static int get_double(struct rd *r, json_t *o, const char *key, double *out)
{
	int rc = 0;
	json_t *v = field(r, o, key, &rc);

	if (!v)
		return rc;
	if (!json_is_number(v) || !isfinite(json_number_value(v)))
		return fail(r, key, "must be a number");
	*out = json_number_value(v);
	return 0;
}

static int get_bool(struct rd *r, json_t *o, const char *key, bool *out)
{
	int rc = 0;
	json_t *v = field(r, o, key, &rc);

	if (!v)
		return rc;
	if (!json_is_boolean(v))
		return fail(r, key, "must be true or false");
	*out = json_is_true(v);
	return 0;
}

static int get_array(struct rd *r, json_t *o, const char *key, json_t **out)
{
	int rc = 0;
	json_t *v = field(r, o, key, &rc);

	if (!v)
		return rc;
	if (!json_is_array(v))
		return fail(r, key, "must be an array");
	if (json_array_size(v) > POLICY_MAX_VMS) {
		char m[64];
		snprintf(m, sizeof(m), "more than %d entries", POLICY_MAX_VMS);
		return fail(r, key, m);
	}
	*out = v;
	return 0;
}

static int vm_from_json(struct rd *r, json_t *o, struct policy_vm_in *v)
{
	json_t *name;
	int rc = 0;

	if (!json_is_object(o)) {
		r->path[strlen(r->path) - 1] = 0;   /* "vms[2]": the entry */
		snprintf(r->err, r->errlen, "%s: must be an object", r->path);
		return -EINVAL;
	}
	name = field(r, o, "name", &rc);
	if (!name)
		return rc;
	if (!json_is_string(name))
		return fail(r, "name", "must be a string");
	if (json_string_length(name) >= sizeof(v->name) ||
	    strlen(json_string_value(name)) != json_string_length(name))
		return fail(r, "name", "longer than 63 bytes or holds a NUL");
	snprintf(v->name, sizeof(v->name), "%s", json_string_value(name));
	if (get_u64(r, o, "ram", &v->ram) ||
	    get_u64(r, o, "shares", &v->cfg.shares) ||
	    get_u64(r, o, "min", &v->cfg.min) ||
	    get_u64(r, o, "max", &v->cfg.max) ||
	    get_u64(r, o, "balloon_size", &v->balloon_size) ||
	    get_u64(r, o, "balloon_target", &v->balloon_target) ||
	    get_bool(r, o, "stats_valid", &v->stats_valid) ||
	    get_u64(r, o, "g_total", &v->g_total) ||
	    get_u64(r, o, "g_free", &v->g_free) ||
	    get_u64(r, o, "g_available", &v->g_available) ||
	    get_u64(r, o, "g_floor", &v->g_floor) ||
	    get_bool(r, o, "g_pressure", &v->g_pressure) ||
	    get_u64(r, o, "active_bytes", &v->active_bytes) ||
	    get_u64(r, o, "ksm_saved", &v->ksm_saved))
		return -EINVAL;
	if (!v->cfg.shares)
		return fail(r, "shares", "must be > 0");
	if (v->balloon_target > v->ram)
		return fail(r, "balloon_target", "is above ram");
	return 0;
}

static int out_from_json(struct rd *r, json_t *o, unsigned nvms,
			 struct policy_out *out)
{
	json_t *vms, *v;
	size_t i;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if (!json_is_object(o)) {
		snprintf(r->err, r->errlen, "out: must be an object");
		return -EINVAL;
	}
	snprintf(r->path, sizeof(r->path), "out.");
	v = field(r, o, "state", &rc);
	if (!v)
		return rc;
	if (!json_is_string(v) ||
	    policy_state_parse(json_string_value(v), &out->state))
		return fail(r, "state", "must be HIGH, SOFT, HARD or LOW");
	if (get_u64(r, o, "scan_rate", &out->scan_rate) ||
	    get_double(r, o, "free", &out->free) ||
	    get_i64(r, o, "want", &out->want) ||
	    get_array(r, o, "vms", &vms))
		return -EINVAL;
	if (json_array_size(vms) != nvms) {
		char m[80];
		snprintf(m, sizeof(m), "%zu entries for %u VMs",
			 json_array_size(vms), nvms);
		return fail(r, "vms", m);
	}
	out->nvms = nvms;
	json_array_foreach(vms, i, v) {
		snprintf(r->path, sizeof(r->path), "out.vms[%zu].", i);
		if (!json_is_object(v)) {
			snprintf(r->err, r->errlen, "out.vms[%zu]: must be an object", i);
			return -EINVAL;
		}
		if (get_u64(r, v, "target", &out->vms[i].target))
			return -EINVAL;
		json_t *why = field(r, v, "reason", &rc);
		if (!why)
			return rc;
		if (!json_is_string(why) ||
		    policy_reason_parse(json_string_value(why),
					&out->vms[i].reason)) {
			char m[96];
			snprintf(m, sizeof(m), "unknown '%.60s'",
				 json_is_string(why) ? json_string_value(why) : "?");
			return fail(r, "reason", m);
		}
	}
	return 0;
}

void policy_in_free(struct policy_in *in)
{
	free(in->vms);
	in->vms = NULL;
	in->nvms = 0;
}

int policy_tick_from_json(json_t *j, struct policy_in *in,
			  struct policy_out *recorded, char *err,
			  size_t errlen)
{
	struct rd r = { .err = err, .errlen = errlen };
	json_t *ksm, *vms, *v;
	size_t i;
	int rc = 0;

	memset(in, 0, sizeof(*in));
	if (!json_is_object(j)) {
		snprintf(err, errlen, "not a JSON object");
		return -EINVAL;
	}
	if (get_u64(&r, j, "now_ns", &in->now_ns) ||
	    get_u64(&r, j, "budget", &in->budget) ||
	    get_u64(&r, j, "usage", &in->usage) ||
	    get_double(&r, j, "psi_some10", &in->psi_some10) ||
	    get_double(&r, j, "psi_full10", &in->psi_full10))
		return -EINVAL;
	ksm = field(&r, j, "ksm", &rc);
	if (!ksm)
		return rc;
	if (!json_is_object(ksm))
		return fail(&r, "ksm", "must be an object");
	snprintf(r.path, sizeof(r.path), "ksm.");
	if (get_u64(&r, ksm, "saved", &in->ksm_saved_bytes) ||
	    get_double(&r, ksm, "cpu_s", &in->ksm_cpu_s) ||
	    get_u64(&r, ksm, "merges", &in->ksm_merges) ||
	    get_u64(&r, ksm, "scan_rate", &in->ksm_scan_rate))
		return -EINVAL;
	r.path[0] = 0;
	if (get_array(&r, j, "vms", &vms))
		return -EINVAL;
	in->nvms = (unsigned)json_array_size(vms);
	in->vms = calloc(in->nvms ? in->nvms : 1, sizeof(*in->vms));
	if (!in->vms) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	json_array_foreach(vms, i, v) {
		snprintf(r.path, sizeof(r.path), "vms[%zu].", i);
		if (vm_from_json(&r, v, &in->vms[i]))
			goto bad;
	}
	if (recorded) {
		r.path[0] = 0;
		json_t *o = field(&r, j, "out", &rc);
		if (!o || out_from_json(&r, o, in->nvms, recorded))
			goto bad;
	}
	return 0;
bad:
	policy_in_free(in);
	return -EINVAL;
}
