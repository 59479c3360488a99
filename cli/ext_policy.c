/*
 * ext_policy.c - the overcommit policy in `densevm run` (a struct run_ext,
 * ext.h): the [policy] section and the per-VM keys shares/min/max, the
 * policy thread (one tick every period_ms, or at once when host memory
 * crosses into trouble), applying its balloon targets and the scanner's
 * rate, the decision log, reload, and the control commands `policy`,
 * `policy set KEY VALUE` and `policy reload`.
 *
 * The decisions are policy/'s (a pure core: inputs in, decisions out);
 * this file only measures and applies.  It reads the run context (each
 * VM's balloon and ksm handles, under rs->lock) and talks to balloon-host
 * and ksm through their public headers.  Without a [policy] section the
 * run behaves as without this file.
 *
 * Inputs per tick: the host budget and usage (host_mem.c: the memory
 * cgroup, else meminfo), PSI, ksm's global figures, and per VM with a
 * balloon: its RAM, balloon size and target, the guest's stats (total,
 * free, available; at floor / pressure / failed allocations) and its
 * working set (wss.c).  VMs without a balloon, or that ended, are left out.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include "ext.h"

#define WSS_WINDOW_NS (10ull * 1000000000)   /* the working-set window */

struct pvm {
	struct vm_run *r;
	struct policy_vm_config cfg;     /* live, under pol.lock */
	struct policy_vm_config snap;    /* this tick's copy (policy thread) */
	struct wss wss;
	bool wss_on;
	uint64_t active;                 /* last estimate */
	struct policy_vm_out last;       /* last decision */
	bool in_last;                    /* it took part in the last tick */
};

struct pol {
	struct run_state *rs;
	pthread_mutex_t lock;            /* cfg, pvm cfgs, last figures */
	struct policy_config cfg;        /* live; replaced by reload/set */
	struct policy_state st;
	struct host_mem hm;
	struct pvm *vms;
	unsigned n;
	pthread_t thread;
	int wake_fd;                     /* eventfd: stop, reload, set */
	bool stop;
	bool dirty_cfg;                  /* re-arm, reopen the log */
	FILE *log;
	char log_path[1024];
	uint64_t armed_at;               /* the threshold armed, bytes */
	/* last tick, for `ctl policy` */
	struct host_mem_sample hs;
	struct policy_out out;
	uint64_t ticks, fast_wakes, applied, apply_errors;
	double cpu_s;                    /* this thread's CPU time */
	char signals[256];
};

static struct pol *g_pol;   /* the one run of this process (ctl reads it) */

/* ------------------------------------------------------------- config */

static void policy_config_init(struct run_config *rc)
{
	policy_config_default(&rc->policy);
	rc->policy_on = false;
}

static void policy_config_section(struct run_config *rc)
{
	rc->policy_on = true;
}

static int policy_config_key(struct run_config *rc, const char *key,
			     const char *val, char *err, size_t errlen)
{
	rc->policy_on = true;
	return policy_config_set(&rc->policy, key, val, err, errlen);
}

static int policy_config_done(struct run_config *rc, char *err, size_t errlen)
{
	return rc->policy_on ? policy_config_check(&rc->policy, err, errlen) : 0;
}

static int policy_vm_key_ext(const char *key, const char *val, char *err,
			     size_t errlen)
{
	struct policy_vm_config scratch;
	policy_vm_config_default(&scratch);
	return policy_vm_key(&scratch, key, val, err, errlen);
}

/* A spec's shares/min/max (checked when it was parsed). */
static int spec_vm_config(const struct vm_spec *s, uint64_t ram,
			  struct policy_vm_config *v, char *err, size_t errlen)
{
	static const char *const keys[] = { "shares", "min", "max" };
	policy_vm_config_default(v);
	for (int i = 0; i < 3; i++) {
		const char *val = spec_ext(s, keys[i]);
		if (val && policy_vm_key(v, keys[i], val, err, errlen))
			return -EINVAL;
	}
	return policy_vm_check(v, ram, err, errlen);
}

/* -------------------------------------------------------------- ticks */

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static double thread_cpu_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static uint64_t current_scan_rate(struct run_state *rs)
{
	char v[32];
	struct ksm *k = __atomic_load_n(&rs->ksm, __ATOMIC_ACQUIRE);
	if (!k || ksm_get_tunable(k, "pages_per_sec", v, sizeof(v)))
		return 0;
	return strtoull(v, NULL, 10);
}

/* Fills in; returns how many VMs take part (those with a running balloon). */
static unsigned gather(struct pol *p, const struct policy_config *c,
		       struct policy_in *in, struct policy_vm_in *vin,
		       unsigned *idx)
{
	struct run_state *rs = p->rs;
	struct run_figures rf;
	unsigned n = 0;
	uint64_t t = now_ns();

	host_mem_read(&p->hm, c->reserve, &p->hs);
	run_run_figures(rs, &rf);
	memset(in, 0, sizeof(*in));
	in->now_ns = t;
	in->budget = c->host_budget ? c->host_budget : p->hs.budget;
	in->usage = p->hs.usage;
	in->psi_some10 = p->hs.psi_some10;
	in->psi_full10 = p->hs.psi_full10;
	if (rf.ksm && !rf.ksm_starting) {
		in->ksm_saved_bytes = rf.ksm_global.bytes_saved;
		in->ksm_cpu_s = rf.ksm_global.cpu_seconds;
		in->ksm_merges = rf.ksm_global.merges;
		in->ksm_scan_rate = current_scan_rate(rs);
	}
	for (unsigned i = 0; i < p->n && n < POLICY_MAX_VMS; i++) {
		struct pvm *v = &p->vms[i];
		struct vm_figures f;
		struct hv_exit_status es;
		v->in_last = false;
		hv_vm_status(v->r->vm, &es);
		if (es.kind != HV_EXIT_RUNNING)
			continue;
		run_vm_figures(rs, v->r, &f);
		if (!f.balloon || !f.balloon_st.registered)
			continue;
		if (v->wss_on) {
			wss_set_sample(&v->wss, (uint64_t)c->wss_sample_ms * 1000000ull);
			v->active = wss_sample(&v->wss, t);
		}
		struct policy_vm_in *x = &vin[n];
		const struct balloon_host_stats *b = &f.balloon_st;
		const uint32_t need = BALLOON_STAT_MEM_TOTAL | BALLOON_STAT_MEM_FREE |
				      BALLOON_STAT_MEM_AVAILABLE;
		memset(x, 0, sizeof(*x));
		snprintf(x->name, sizeof(x->name), "%s", hv_vm_name(v->r->vm));
		x->ram = b->mem_bytes;
		x->cfg = v->snap;
		x->balloon_size = b->size_bytes;
		x->balloon_target = b->target_bytes;
		x->stats_valid = (b->guest.valid & need) == need && b->stats_updates;
		x->g_total = b->guest.mem_total;
		x->g_free = b->guest.mem_free;
		x->g_available = b->guest.mem_available;
		/* at its floor, the guest gives no more: nothing above what it
		 * has available now may be taken */
		x->g_floor = b->guest_status & BALLOON_GST_AT_FLOOR ?
			     b->guest.mem_available : 0;
		x->g_pressure = b->guest_status &
				(BALLOON_GST_PRESSURE | BALLOON_GST_ALLOC_FAIL);
		x->active_bytes = v->active;
		x->ksm_saved = f.ksm_per_vm ? f.ksm_st.bytes_saved : 0;
		v->in_last = true;
		idx[n++] = i;
	}
	in->nvms = n;
	in->vms = vin;
	return n;
}

static void apply(struct pol *p, const struct policy_config *c,
		  const struct policy_in *in, const struct policy_out *out,
		  const unsigned *idx)
{
	struct run_state *rs = p->rs;

	if (c->mode != POLICY_MODE_ON)
		return;
	pthread_mutex_lock(&rs->lock);
	for (unsigned k = 0; k < out->nvms; k++) {
		struct vm_run *r = p->vms[idx[k]].r;
		if (!r->balloon || out->vms[k].target == in->vms[k].balloon_target)
			continue;
		if (balloon_host_set_target(r->balloon, out->vms[k].target) < 0)
			p->apply_errors++;
		else
			p->applied++;
	}
	pthread_mutex_unlock(&rs->lock);
	struct ksm *k = __atomic_load_n(&rs->ksm, __ATOMIC_ACQUIRE);
	if (k && out->scan_rate != in->ksm_scan_rate) {
		char v[32], e[256];
		/* 0 (MOM stopping ksm) has no tunable of its own: crawl */
		snprintf(v, sizeof(v), "%" PRIu64, out->scan_rate ? out->scan_rate : 1);
		if (ksm_set_tunable(k, "pages_per_sec", v, e, sizeof(e)))
			p->apply_errors++;
	}
}

static void open_log(struct pol *p, const struct policy_config *c)
{
	if (p->log && !strcmp(p->log_path, c->log))
		return;
	if (p->log)
		fclose(p->log);
	p->log = NULL;
	snprintf(p->log_path, sizeof(p->log_path), "%s", c->log);
	if (!c->log[0])
		return;
	p->log = fopen(c->log, "ae");
	if (!p->log)
		fprintf(stderr, "densevm: policy: log %s: %s (no decision log)\n",
			c->log, strerror(errno));
}

static void tick(struct pol *p)
{
	static struct policy_vm_in vin[POLICY_MAX_VMS];
	static unsigned idx[POLICY_MAX_VMS];
	struct policy_config c;
	struct policy_in in;
	struct policy_out out;

	pthread_mutex_lock(&p->lock);
	c = p->cfg;
	for (unsigned i = 0; i < p->n; i++)
		p->vms[i].snap = p->vms[i].cfg;
	bool re = p->dirty_cfg;
	p->dirty_cfg = false;
	pthread_mutex_unlock(&p->lock);
	if (re)
		open_log(p, &c);

	gather(p, &c, &in, vin, idx);
	policy_tick(&c, &p->st, &in, &out);
	apply(p, &c, &in, &out, idx);
	if (p->log) {
		char *line = policy_tick_dumps(&in, &out);
		if (line) {
			fputs(line, p->log);
			fputc('\n', p->log);
			fflush(p->log);
			free(line);
		}
	}
	/* wake at once when usage crosses into SOFT (free below soft) */
	uint64_t thr = (uint64_t)((double)in.budget * (1.0 - c.soft));
	if (thr != p->armed_at) {
		host_mem_arm(&p->hm, thr);
		p->armed_at = thr;
		host_mem_describe(&p->hm, p->signals, sizeof(p->signals));
	}
	pthread_mutex_lock(&p->lock);
	p->out = out;
	for (unsigned k = 0; k < out.nvms; k++)
		p->vms[idx[k]].last = out.vms[k];
	p->ticks++;
	p->cpu_s = thread_cpu_s();
	pthread_mutex_unlock(&p->lock);
}

/*
 * A fast signal moves the next tick forward, but never closer than a
 * quarter period (at least 50 ms) to the last one: usage that hovers at a
 * v1 threshold fires its eventfd at every crossing, both ways, and would
 * otherwise tick the policy at the crossing rate.
 */
static void *policy_thread(void *arg)
{
	struct pol *p = arg;
	uint64_t next = now_ns(), last = 0;

	for (;;) {
		pthread_mutex_lock(&p->lock);
		bool stop = p->stop;
		unsigned period = policy_period_ms(&p->cfg);
		pthread_mutex_unlock(&p->lock);
		if (stop)
			break;
		uint64_t t = now_ns();
		uint64_t gap = (uint64_t)period * 250000ull;   /* period / 4 */
		if (gap < 50000000ull)
			gap = 50000000ull;
		if (t >= next) {
			tick(p);
			last = t;
			/* short of memory (HARD, LOW), a target capped by max_step
			 * is asked again a quarter period later, not a whole one */
			pthread_mutex_lock(&p->lock);
			bool tight = p->out.state >= POLICY_HARD;
			pthread_mutex_unlock(&p->lock);
			next = t + (tight ? gap : (uint64_t)period * 1000000ull);
			continue;
		}
		int why = host_mem_wait(&p->hm, (int)((next - t) / 1000000ull) + 1,
					p->wake_fd);
		if (why & HOST_MEM_WOKE_EXTRA) {
			uint64_t v;
			if (read(p->wake_fd, &v, sizeof(v)) < 0)
				continue;
			next = now_ns();   /* a new config: tick now */
		} else if (why) {
			p->fast_wakes++;
			if (last + gap < next)
				next = last + gap;
		}
	}
	return NULL;
}

static void wake(struct pol *p)
{
	uint64_t one = 1;
	if (write(p->wake_fd, &one, sizeof(one)) != sizeof(one))
		perror("densevm: policy: eventfd");
}

/* --------------------------------------------------------- ctl commands */

static json_t *ctl_policy_show(struct pol *p)
{
	json_t *vms = json_array();
	pthread_mutex_lock(&p->lock);
	for (unsigned i = 0; i < p->n; i++) {
		struct pvm *v = &p->vms[i];
		struct vm_figures f;
		run_vm_figures(p->rs, v->r, &f);
		json_array_append_new(vms, json_pack(
			"{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:s}",
			"name", hv_vm_name(v->r->vm),
			"shares", (json_int_t)v->cfg.shares,
			"min", (json_int_t)v->cfg.min, "max", (json_int_t)v->cfg.max,
			"ram", (json_int_t)hv_vm_mem_bytes(v->r->vm),
			"balloon_size", (json_int_t)(f.balloon ? f.balloon_st.size_bytes : 0),
			"target", (json_int_t)(f.balloon ? f.balloon_st.target_bytes : 0),
			"active", (json_int_t)v->active,
			"managed", v->in_last,
			"reason", v->in_last ? policy_reason_name(v->last.reason) : "not managed"));
	}
	json_t *r = json_pack(
		"{s:s, s:s, s:i, s:s, s:I, s:I, s:s, s:s, s:f, s:I, s:I, s:I, s:I, "
		"s:I, s:f, s:s, s:o}",
		"mode", p->cfg.mode == POLICY_MODE_ON ? "on" :
			p->cfg.mode == POLICY_MODE_ADVISE ? "advise" : "off",
		"strategy", p->cfg.strategy == POLICY_STRATEGY_MOM ? "mom" : "shares",
		"period_ms", (int)policy_period_ms(&p->cfg),
		"state", policy_state_name(p->out.state),
		"budget", (json_int_t)(p->cfg.host_budget ? p->cfg.host_budget : p->hs.budget),
		"usage", (json_int_t)p->hs.usage,
		"budget_from", p->cfg.host_budget ? "host_budget" :
			       p->hs.budget_from ? p->hs.budget_from : "",
		"usage_from", p->hs.usage_from ? p->hs.usage_from : "",
		"free", p->out.free,
		"scan_rate", (json_int_t)p->out.scan_rate,
		"ticks", (json_int_t)p->ticks,
		"fast_wakes", (json_int_t)p->fast_wakes,
		"targets_applied", (json_int_t)p->applied,
		"oom_kills", (json_int_t)p->hs.oom_kills,
		"cpu_seconds", p->cpu_s,
		"signals", p->signals, "vms", vms);
	pthread_mutex_unlock(&p->lock);
	return r;
}

/* `policy set KEY VALUE`: one key of [policy], or VM:shares|min|max. */
static int policy_set_one(struct pol *p, const char *key, const char *val,
			  char *err, size_t errlen)
{
	const char *colon = strchr(key, ':');
	int rc;
	pthread_mutex_lock(&p->lock);
	if (colon) {
		struct pvm *v = NULL;
		for (unsigned i = 0; i < p->n; i++)
			if (!strncmp(hv_vm_name(p->vms[i].r->vm), key, (size_t)(colon - key)) &&
			    !hv_vm_name(p->vms[i].r->vm)[colon - key])
				v = &p->vms[i];
		struct policy_vm_config nc = v ? v->cfg : (struct policy_vm_config){ 0 };
		if (!v) {
			snprintf(err, errlen, "no VM named '%.*s'", (int)(colon - key), key);
			rc = -ENOENT;
		} else if ((rc = policy_vm_key(&nc, colon + 1, val, err, errlen)) == 0 &&
			   (rc = policy_vm_check(&nc, hv_vm_mem_bytes(v->r->vm), err,
						 errlen)) == 0) {
			v->cfg = nc;
		} else if (rc == -ENOENT) {
			snprintf(err, errlen, "%s: a VM's keys are shares, min, max",
				 colon + 1);
		}
	} else {
		struct policy_config nc = p->cfg;
		rc = policy_config_set(&nc, key, val, err, errlen);
		if (!rc)
			rc = policy_config_check(&nc, err, errlen);
		if (!rc) {
			p->cfg = nc;
			p->dirty_cfg = true;
		}
	}
	pthread_mutex_unlock(&p->lock);
	if (!rc)
		wake(p);
	return rc;
}

static bool policy_is_reload(json_t *req)
{
	const char *sub = ctl_arg(req, 0);
	return sub && !strcmp(sub, "reload");
}

static json_t *ctl_policy(json_t *req, void *ctx, char *err, size_t errlen)
{
	struct run_state *rs = ctx;
	struct pol *p = __atomic_load_n(&g_pol, __ATOMIC_ACQUIRE);
	const char *sub = ctl_arg(req, 0);

	if (!p) {
		if (sub && strcmp(sub, "show")) {
			snprintf(err, errlen, "the policy is off: the run has no "
				 "[policy] section");
			return NULL;
		}
		return json_pack("{s:s}", "mode", "off");
	}
	if (!sub || !strcmp(sub, "show"))
		return ctl_policy_show(p);
	if (!strcmp(sub, "set")) {
		const char *k = ctl_arg(req, 1), *v = ctl_arg(req, 2);
		if (!k || !v || ctl_arg(req, 3)) {
			snprintf(err, errlen, "usage: policy set KEY VALUE (a [policy] "
				 "key, or VM:shares|min|max)");
			return NULL;
		}
		if (policy_set_one(p, k, v, err, errlen))
			return NULL;
		return json_pack("{s:s, s:s}", "set", k, "value", v);
	}
	if (!strcmp(sub, "reload")) {
		if (run_reload(rs, err, errlen))
			return NULL;
		return json_pack("{s:s}", "reloaded", "ok");
	}
	snprintf(err, errlen, "usage: policy [show | set KEY VALUE | reload]");
	return NULL;
}

/* ------------------------------------------------------------ lifecycle */

static int policy_start(struct run_state *rs, struct ctl_server *ctl,
			char *err, size_t errlen)
{
	if (ctl)   /* a reload reads files and sets ksm's tunables */
		ctl_register_slow(ctl, "policy", "[show | set KEY VALUE | reload]: "
				  "the overcommit policy's state, signals, targets "
				  "and reasons", ctl_policy, rs, policy_is_reload);
	if (!rs->cfg->policy_on || rs->cfg->policy.mode == POLICY_MODE_OFF)
		return 0;
	struct pol *p = calloc(1, sizeof(*p));
	if (!p || !(p->vms = calloc(rs->n ? rs->n : 1, sizeof(*p->vms)))) {
		free(p);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	p->rs = rs;
	p->cfg = rs->cfg->policy;
	p->n = rs->n;
	pthread_mutex_init(&p->lock, NULL);
	policy_init(&p->st, rs->n);
	host_mem_open(&p->hm, NULL);
	uint64_t t = now_ns();
	for (unsigned i = 0; i < rs->n; i++) {
		struct pvm *v = &p->vms[i];
		v->r = &rs->runs[i];
		if (spec_vm_config(v->r->spec, hv_vm_mem_bytes(v->r->vm), &v->cfg, err,
				   errlen)) {
			char m[400];
			snprintf(m, sizeof(m), "%s: %s", hv_vm_name(v->r->vm), err);
			snprintf(err, errlen, "%s", m);
			goto fail;
		}
		v->wss_on = !wss_start(&v->wss, v->r->vm, WSS_WINDOW_NS,
				       (uint64_t)p->cfg.wss_sample_ms * 1000000ull, t);
	}
	open_log(p, &p->cfg);
	p->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	host_mem_arm(&p->hm, UINT64_MAX / 2);   /* armed for real at tick 1 */
	host_mem_describe(&p->hm, p->signals, sizeof(p->signals));
	if (p->wake_fd < 0 || pthread_create(&p->thread, NULL, policy_thread, p)) {
		snprintf(err, errlen, "policy: cannot start its thread");
		goto fail;
	}
	__atomic_store_n(&g_pol, p, __ATOMIC_RELEASE);
	fprintf(stderr, "densevm: policy: %s, strategy %s, every %u ms; signals: %s\n",
		p->cfg.mode == POLICY_MODE_ADVISE ? "advise" : "on",
		p->cfg.strategy == POLICY_STRATEGY_MOM ? "mom" : "shares",
		policy_period_ms(&p->cfg), p->signals);
	return 0;
fail:
	for (unsigned i = 0; i < p->n; i++)
		if (p->vms[i].wss_on)
			wss_stop(&p->vms[i].wss);
	if (p->wake_fd > 0)
		close(p->wake_fd);
	host_mem_close(&p->hm);
	if (p->log)
		fclose(p->log);
	free(p->vms);
	free(p);
	return -EINVAL;
}

static void policy_stop(struct run_state *rs)
{
	(void)rs;
	struct pol *p = __atomic_exchange_n(&g_pol, NULL, __ATOMIC_ACQ_REL);
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_mutex_unlock(&p->lock);
	wake(p);
	pthread_join(p->thread, NULL);
	for (unsigned i = 0; i < p->n; i++)
		if (p->vms[i].wss_on)
			wss_stop(&p->vms[i].wss);
	close(p->wake_fd);
	host_mem_close(&p->hm);
	if (p->log)
		fclose(p->log);
	pthread_mutex_destroy(&p->lock);
	free(p->vms);
	free(p);
}

/* The new [policy] and the VMs' shares/min/max, all or nothing. */
static int policy_reload(struct run_state *rs, const struct run_opts *o,
			 char *err, size_t errlen)
{
	struct pol *p = __atomic_load_n(&g_pol, __ATOMIC_ACQUIRE);
	(void)rs;
	if (!p)
		return o->cfg.policy_on ? (snprintf(err, errlen, "the run started "
			"without a [policy] section: restart it to add one"), -EINVAL) : 0;
	struct policy_vm_config *nv = calloc(p->n ? p->n : 1, sizeof(*nv));
	if (!nv) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (unsigned i = 0; i < p->n; i++) {
		const char *name = hv_vm_name(p->vms[i].r->vm);
		const struct vm_spec *s = run_opts_spec_of(o, name);
		char e[300];
		if (!s) {
			nv[i] = p->vms[i].cfg;   /* not in the new files: unchanged */
			continue;
		}
		if (spec_vm_config(s, hv_vm_mem_bytes(p->vms[i].r->vm), &nv[i], e,
				   sizeof(e))) {
			snprintf(err, errlen, "%s: %s", s->origin, e);
			free(nv);
			return -EINVAL;
		}
	}
	pthread_mutex_lock(&p->lock);
	if (o->cfg.policy_on)
		p->cfg = o->cfg.policy;
	else
		p->cfg.mode = POLICY_MODE_OFF;
	for (unsigned i = 0; i < p->n; i++)
		p->vms[i].cfg = nv[i];
	p->dirty_cfg = true;
	pthread_mutex_unlock(&p->lock);
	free(nv);
	wake(p);
	return 0;
}

const struct run_ext policy_ext = {
	.name = "policy",
	.section = "policy",
	.config_init = policy_config_init,
	.config_section = policy_config_section,
	.config_key = policy_config_key,
	.config_done = policy_config_done,
	.vm_key = policy_vm_key_ext,
	.start = policy_start,
	.stop = policy_stop,
	.reload = policy_reload,
};
