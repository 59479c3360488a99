/*
 * ext_balloon.c - ballooning in `densevm run` (a struct run_ext, ext.h).
 *
 * Owns: the [balloon] config section (stats_period_ms, free_page_reporting,
 * log_lines_per_sec), the per-VM key balloon=on|off (default on: the device
 * costs nothing until a guest driver registers), attaching balloon-host to
 * every VM before it starts and detaching it after it ended, the control
 * commands `balloon VM SIZE` and `balloon-stat [VM]`, and the balloon's
 * part of `stat`.
 *
 * Its config is run_config.balloon; each VM's device is its vm_run.balloon
 * in the run context (under rs->lock: the control thread serves requests
 * from before start() until after the VMs ended).
 *
 * SIZE in `balloon VM SIZE` is the balloon's size, i.e. how much memory is
 * taken away from the guest (the guest keeps mem - SIZE), as in the issue's
 * "a 512 MiB guest gets `balloon vm0 256M`".  `balloon VM --guest-size
 * SIZE` is the QEMU meaning (the guest keeps SIZE).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "balloon-host/balloon_host.h"
#include "cli.h"
#include "ctl.h"
#include "ext.h"

#include "ksm/ksm.h"

#define DEFAULT_STATS_PERIOD_MS 1000

/* ---------------------------------------------------------- parsing */

static int parse_bool(const char *v, bool *out)
{
	if (!strcmp(v, "on") || !strcmp(v, "true") || !strcmp(v, "yes") ||
	    !strcmp(v, "1"))
		*out = true;
	else if (!strcmp(v, "off") || !strcmp(v, "false") || !strcmp(v, "no") ||
		 !strcmp(v, "0"))
		*out = false;
	else
		return -EINVAL;
	return 0;
}

static int parse_u32(const char *v, uint32_t lo, uint32_t hi, uint32_t *out)
{
	char *end;
	errno = 0;
	unsigned long long x = strtoull(v, &end, 10);
	if (errno || end == v || *end || *v == '-' || x < lo || x > hi)
		return -EINVAL;
	*out = (uint32_t)x;
	return 0;
}

static void balloon_config_init(struct run_config *rc)
{
	rc->balloon = (struct balloon_host_config){
		.stats_period_ms = DEFAULT_STATS_PERIOD_MS,
		.log_lines_per_sec = 5,
	};
}

static int balloon_config_key(struct run_config *rc, const char *key,
			      const char *val, char *err, size_t errlen)
{
	struct balloon_host_config *g = &rc->balloon;
	uint32_t u;
	if (!strcmp(key, "stats_period_ms")) {
		if (parse_u32(val, 0, 3600000, &u)) {
			snprintf(err, errlen, "stats_period_ms: '%s' must be 0 (off) "
				 "to 3600000", val);
			return -EINVAL;
		}
		g->stats_period_ms = u;
	} else if (!strcmp(key, "free_page_reporting")) {
		if (parse_bool(val, &g->free_page_reporting)) {
			snprintf(err, errlen, "free_page_reporting: '%s' must be on "
				 "or off", val);
			return -EINVAL;
		}
	} else if (!strcmp(key, "log_lines_per_sec")) {
		if (parse_u32(val, 1, 100000, &u)) {
			snprintf(err, errlen, "log_lines_per_sec: '%s' must be 1 to "
				 "100000", val);
			return -EINVAL;
		}
		g->log_lines_per_sec = u;
	} else {
		snprintf(err, errlen, "unknown key '%s' (known: stats_period_ms "
			 "free_page_reporting log_lines_per_sec)", key);
		return -EINVAL;
	}
	return 0;
}

static int balloon_vm_key(const char *key, const char *val, char *err,
			  size_t errlen)
{
	bool on;
	if (strcmp(key, "balloon"))
		return -ENOENT;
	if (parse_bool(val, &on)) {
		snprintf(err, errlen, "balloon: '%s' must be on or off", val);
		return -EINVAL;
	}
	return 0;
}

static bool spec_wants_balloon(const struct vm_spec *s)
{
	const char *v = spec_ext(s, "balloon");
	bool on = true;
	if (v)
		parse_bool(v, &on);   /* checked by balloon_vm_key */
	return on;
}

/* The VM offers the device in its spec; hv-core tells the guest. */
static int balloon_prepare_vm(struct run_state *rs, const struct vm_spec *s,
			      struct hv_vm_config *c, char *err, size_t errlen)
{
	(void)rs;
	(void)err;
	(void)errlen;
	if (spec_wants_balloon(s))
		c->features |= HV_FEAT_BALLOON;
	return 0;
}

/* ------------------------------------------------------ control socket */

/* Finds a VM by name; rs->lock held.  NULL with a reason in err. */
static struct vm_run *find_locked(struct run_state *rs, const char *name,
				  char *err, size_t errlen)
{
	for (unsigned i = 0; name && i < rs->n; i++) {
		if (strcmp(hv_vm_name(rs->runs[i].vm), name))
			continue;
		if (!rs->runs[i].balloon) {
			snprintf(err, errlen, "VM '%.64s' has no balloon (balloon=off)",
				 name);
			return NULL;
		}
		return &rs->runs[i];
	}
	snprintf(err, errlen, "no VM named '%.64s'", name ? name : "");
	return NULL;
}

static json_t *stats_object(struct balloon_host *dev)
{
	struct balloon_host_stats s;
	balloon_host_stats(dev, &s);
	json_t *o = balloon_host_stats_to_json(&s);
	return o ? o : json_pack("{s:s}", "error", "out of memory");
}

static const char balloon_usage[] =
	"usage: balloon VM SIZE (the balloon's size: the guest keeps its RAM "
	"minus SIZE; 0 returns everything) | balloon VM --guest-size SIZE "
	"(the guest keeps SIZE)";

static json_t *ctl_balloon(json_t *req, void *ctx, char *err, size_t errlen)
{
	struct run_state *rs = ctx;
	const char *name = ctl_arg(req, 0), *a1 = ctl_arg(req, 1);
	bool guest_size = a1 && !strcmp(a1, "--guest-size");
	const char *size_s = guest_size ? ctl_arg(req, 2) : a1;
	uint64_t size, mem;
	json_t *r = NULL;

	if (!name || !size_s || ctl_arg(req, guest_size ? 3 : 2)) {
		snprintf(err, errlen, "%s", balloon_usage);
		return NULL;
	}
	if (parse_size(size_s, &size)) {
		snprintf(err, errlen, "'%.64s' is not a size (e.g. 256M, 1G, 0)",
			 size_s);
		return NULL;
	}
	pthread_mutex_lock(&rs->lock);
	struct vm_run *b = find_locked(rs, name, err, errlen);
	if (!b)
		goto out;
	mem = hv_vm_mem_bytes(b->vm);
	if (size > mem) {
		snprintf(err, errlen, "%.64s is more than %s's RAM (%" PRIu64 " MiB)",
			 size_s, name, mem >> 20);
		goto out;
	}
	struct hv_exit_status es;
	hv_vm_status(b->vm, &es);
	if (es.kind != HV_EXIT_RUNNING) {
		snprintf(err, errlen, "VM '%s' is not running (%s)", name,
			 hv_exit_kind_name(es.kind));
		goto out;
	}
	int rc = guest_size ? balloon_host_set_guest_size(b->balloon, size)
			    : balloon_host_set_target(b->balloon, size);
	if (rc < 0) {
		snprintf(err, errlen, "setting the target failed (%d)", rc);
		goto out;
	}
	struct balloon_host_stats s;
	balloon_host_stats(b->balloon, &s);
	r = json_pack("{s:s, s:I, s:I, s:I, s:b}", "vm", name,
		      "mem_bytes", (json_int_t)s.mem_bytes,
		      "target_bytes", (json_int_t)s.target_bytes,
		      "size_bytes", (json_int_t)s.size_bytes,
		      "registered", s.registered);
out:
	pthread_mutex_unlock(&rs->lock);
	return r;
}

static json_t *ctl_balloon_stat(json_t *req, void *ctx, char *err,
				size_t errlen)
{
	struct run_state *rs = ctx;
	const char *one = ctl_arg(req, 0);
	json_t *vms = NULL;

	pthread_mutex_lock(&rs->lock);
	if (one && !find_locked(rs, one, err, errlen))
		goto out;
	vms = json_array();
	for (unsigned i = 0; i < rs->n; i++) {
		const char *name = hv_vm_name(rs->runs[i].vm);
		if (!rs->runs[i].balloon || (one && strcmp(one, name)))
			continue;
		json_t *o = stats_object(rs->runs[i].balloon);
		json_object_set_new(o, "name", json_string(name));
		json_array_append_new(vms, o);
	}
out:
	pthread_mutex_unlock(&rs->lock);
	return vms ? json_pack("{s:o}", "vms", vms) : NULL;
}

/* ------------------------------------------------------------- hooks */

static int balloon_start(struct run_state *rs, struct ctl_server *ctl,
			 char *err, size_t errlen)
{
	struct balloon_host **dev = calloc(rs->n ? rs->n : 1, sizeof(*dev));

	if (!dev) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}

	for (unsigned i = 0; i < rs->n; i++) {
		struct vm_run *r = &rs->runs[i];
		if (!spec_wants_balloon(r->spec))
			continue;
		struct balloon_host_config cfg = rs->cfg->balloon;
		/* A page ksm shares must drop ksm's reference before the
		 * balloon takes it, or the refcounts would lie (ksm starts
		 * first; the kernel engine keeps no page state). */
		if (r->ksm && !rs->ksm_kernel) {
			cfg.on_page_released = ksm_page_released;
			cfg.release_ctx = r->ksm;
		}
		int rc = balloon_host_attach(r->vm, &cfg, &dev[i]);
		if (rc < 0) {
			snprintf(err, errlen, "%s: attaching the balloon failed: %s",
				 hv_vm_name(r->vm), strerror(-rc));
			while (i-- > 0)
				balloon_host_detach(dev[i]);
			free(dev);
			return rc;
		}
	}
	pthread_mutex_lock(&rs->lock);
	for (unsigned i = 0; i < rs->n; i++)
		rs->runs[i].balloon = dev[i];
	pthread_mutex_unlock(&rs->lock);
	free(dev);
	if (ctl) {
		ctl_register(ctl, "balloon", "VM SIZE: set the balloon's size (the "
			     "guest keeps its RAM minus SIZE; 0 = give all back); "
			     "VM --guest-size SIZE: the guest keeps SIZE",
			     ctl_balloon, rs);
		ctl_register(ctl, "balloon-stat", "[VM] balloon size, target, "
			     "counters, refusals and the guest's stats",
			     ctl_balloon_stat, rs);
	}
	return 0;
}

static void balloon_vm_figures(struct run_state *rs, const struct vm_run *r,
			       struct vm_figures *f)
{
	(void)rs;
	if (!r->balloon)
		return;
	f->balloon = true;
	balloon_host_stats(r->balloon, &f->balloon_st);
}

static void balloon_run_figures(struct run_state *rs, struct run_figures *f)
{
	f->balloon = rs->n > 0;
	for (unsigned i = 0; i < rs->n; i++) {
		struct balloon_host_stats s;
		if (!rs->runs[i].balloon)
			continue;
		balloon_host_stats(rs->runs[i].balloon, &s);
		f->balloon_size += s.size_bytes;
		f->balloon_target += s.target_bytes;
		f->balloon_vms++;
	}
}

static void balloon_stop(struct run_state *rs)
{
	struct balloon_host **dev = calloc(rs->n ? rs->n : 1, sizeof(*dev));

	if (!dev) {
		/* detaching under the lock is also correct, only slower */
		pthread_mutex_lock(&rs->lock);
		for (unsigned i = 0; i < rs->n; i++) {
			balloon_host_detach(rs->runs[i].balloon);
			rs->runs[i].balloon = NULL;
		}
		pthread_mutex_unlock(&rs->lock);
		return;
	}
	pthread_mutex_lock(&rs->lock);
	for (unsigned i = 0; i < rs->n; i++) {
		dev[i] = rs->runs[i].balloon;
		rs->runs[i].balloon = NULL;
	}
	pthread_mutex_unlock(&rs->lock);
	for (unsigned i = 0; i < rs->n; i++)
		balloon_host_detach(dev[i]);
	free(dev);
}

const struct run_ext balloon_ext = {
	.name = "balloon",
	.section = "balloon",
	.config_init = balloon_config_init,
	.config_key = balloon_config_key,
	.vm_key = balloon_vm_key,
	.prepare_vm = balloon_prepare_vm,
	.start = balloon_start,
	.vm_figures = balloon_vm_figures,
	.run_figures = balloon_run_figures,
	.stop = balloon_stop,
};
