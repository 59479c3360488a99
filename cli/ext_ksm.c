/*
 * ext_ksm.c - ksm in `densevm run` (struct run_ext, see ext.h): the [ksm]
 * config section (engine and tunables), the per-VM keys domain=NAME and
 * private=1, each sharing domain's base memfd, registering the VMs and
 * running the scanner, vm.max_map_count, the control-socket commands
 * `ksm` and `ksm-set`, and ksm's part of `stat` (its figures) and of
 * `stat --check`.  ext_balloon.c wires the balloon's release hook to
 * ksm_page_released through vm_run.ksm.
 *
 * ksm is on when the config has a [ksm] section (engine defaults to dense
 * there) and off otherwise, so runs that never asked for page sharing keep
 * anonymous guest RAM and an untouched host.
 *
 * Its config is run_config.ksm; its live state is the run context's: the
 * engine (rs->ksm, published last: the control thread reads it), each VM's
 * registration (vm_run.ksm) and the sharing domains (rs->dom).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "ext.h"
#include "ksm/ksm.h"

#define MAX_MAP_COUNT_PATH "/proc/sys/vm/max_map_count"
/* what a process maps besides guest RAM (the kernel's default limit) */
#define MAP_COUNT_BASE 65530ULL

static bool ksm_on(const struct run_config *rc)
{
	return rc->ksm.any_key && rc->ksm.engine != KSM_SEL_OFF;
}

static bool kernel_engine(const struct run_config *rc)
{
	return rc->ksm.engine == KSM_SEL_KERNEL;
}

static struct ksm *live(struct run_state *rs)
{
	return __atomic_load_n(&rs->ksm, __ATOMIC_ACQUIRE);
}

/* ------------------------------------------------------------- config */

/* Checks name=value against the engine's own ranges, on a scratch
 * instance: the messages and limits stay those of ksm_set_tunable. */
static int validate_tunable(const char *key, const char *val, char *err,
			    size_t errlen)
{
	struct ksm *scratch;
	char e[256];
	int rc = ksm_create(NULL, &scratch, e, sizeof(e));

	if (rc) {
		snprintf(err, errlen, "%s", e);
		return rc;
	}
	rc = ksm_set_tunable(scratch, key, val, e, sizeof(e));
	ksm_destroy(scratch);
	if (rc == -ENOENT) {
		char known[400] = "engine";
		for (const char *const *n = ksm_tunable_names(); *n; n++)
			snprintf(known + strlen(known), sizeof(known) - strlen(known),
				 " %s", *n);
		snprintf(err, errlen, "unknown key '%s' (known: %s)", key, known);
	} else if (rc) {
		/* "ksm: NAME must be ..." : the section already says ksm */
		snprintf(err, errlen, "%s", strncmp(e, "ksm: ", 5) ? e : e + 5);
	}
	return rc;
}

static int ksm_config_key(struct run_config *cfg, const char *key,
			  const char *val, char *err, size_t errlen)
{
	typeof(cfg->ksm) *g = &cfg->ksm;

	g->any_key = true;
	if (!strcmp(key, "engine")) {
		if (!strcmp(val, "dense"))
			g->engine = KSM_SEL_DENSE;
		else if (!strcmp(val, "kernel"))
			g->engine = KSM_SEL_KERNEL;
		else if (!strcmp(val, "off"))
			g->engine = KSM_SEL_OFF;
		else {
			snprintf(err, errlen, "engine: '%s' must be dense, kernel "
				 "or off", val);
			return -EINVAL;
		}
		return 0;
	}
	int rc = validate_tunable(key, val, err, errlen);
	if (rc)
		return rc;
	unsigned i;
	for (i = 0; i < g->ntun && strcmp(g->tun[i].name, key); i++)
		;
	if (i == RUN_MAX_TUNABLES || strlen(key) >= sizeof(g->tun[0].name) ||
	    strlen(val) >= sizeof(g->tun[0].val)) {
		snprintf(err, errlen, "%s: too many or too long", key);
		return -E2BIG;
	}
	snprintf(g->tun[i].name, sizeof(g->tun[i].name), "%s", key);
	snprintf(g->tun[i].val, sizeof(g->tun[i].val), "%s", val);
	if (i == g->ntun)
		g->ntun++;
	return 0;
}

static bool domain_name_ok(const char *s)
{
	size_t n = strlen(s);
	return n >= 1 && n < sizeof(((struct run_domain *)0)->name) &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		      "0123456789_.-") == n;
}

static int ksm_vm_key(const char *key, const char *val, char *err,
		      size_t errlen)
{
	if (!strcmp(key, "domain")) {
		if (!domain_name_ok(val)) {
			snprintf(err, errlen, "domain: '%s' must be 1-39 characters "
				 "of [A-Za-z0-9_.-]", val);
			return -EINVAL;
		}
		return 0;
	}
	if (!strcmp(key, "private")) {
		if (strcmp(val, "0") && strcmp(val, "1")) {
			snprintf(err, errlen, "private: '%s' must be 0 or 1", val);
			return -EINVAL;
		}
		return 0;
	}
	return -ENOENT;
}

/* ------------------------------------------------------------ domains */

static bool spec_private(const struct vm_spec *s)
{
	const char *p = spec_ext(s, "private");
	return p && !strcmp(p, "1");
}

static const char *spec_domain(const struct vm_spec *s)
{
	const char *d = spec_ext(s, "domain");
	return d ? d : "";
}

/* The domain of that name, created on first use (ids: 0 = default). */
static struct run_domain *domain_get(struct run_state *rs, const char *name)
{
	for (unsigned i = 0; i < rs->ndom; i++)
		if (!strcmp(rs->dom[i].name, name))
			return &rs->dom[i];
	if (rs->ndom == CLI_MAX_VMS + 1)
		return NULL;
	struct run_domain *d = &rs->dom[rs->ndom++];
	snprintf(d->name, sizeof(d->name), "%s", name);
	/* the default domain is 0 whenever it is first used */
	d->id = name[0] ? rs->ndom : 0;
	d->memfd = -1;
	return d;
}

static int ksm_prepare_vm(struct run_state *rs, const struct vm_spec *s,
			  struct hv_vm_config *c, char *err, size_t errlen)
{
	if (spec_private(s) && spec_ext(s, "domain")) {
		snprintf(err, errlen, "private=1 and domain=%s: a private VM "
			 "shares with nobody", spec_ext(s, "domain"));
		return -EINVAL;
	}
	if (!ksm_on(rs->cfg) || kernel_engine(rs->cfg) || spec_private(s))
		return 0;   /* anonymous RAM */
	struct run_domain *d = domain_get(rs, spec_domain(s));
	if (!d) {
		snprintf(err, errlen, "ksm: too many domains");
		return -E2BIG;
	}
	if (d->memfd < 0) {
		char name[64];
		snprintf(name, sizeof(name), "densevm-ksm-base-%s",
			 d->name[0] ? d->name : "default");
		d->memfd = memfd_create(name, MFD_CLOEXEC);
		if (d->memfd < 0) {
			int e = errno;
			snprintf(err, errlen, "ksm: memfd_create: %s", strerror(e));
			return -e;
		}
	}
	/* same-GPA duplicates of the domain merge through this file */
	c->base_memfd = d->memfd;
	return 0;
}

/* ------------------------------------------------------ max_map_count */

/* Cross-GPA merges cost up to one mapping per shared page (shuffled
 * duplicates rarely form runs), so the limit must cover guest RAM in
 * pages; the kernel's default stops near 32k merges.  Never lowered: a
 * lower value could break other processes that raised it. */
static void raise_max_map_count(uint64_t guest_pages)
{
	long long cur = ksm_sysctl_read(MAX_MAP_COUNT_PATH);
	unsigned long long want = MAP_COUNT_BASE + guest_pages;

	if (want > 0x7fffffffULL)
		want = 0x7fffffffULL;
	if (cur < 0 || (unsigned long long)cur >= want)
		return;
	if (geteuid() == 0 &&
	    ksm_sysctl_write(MAX_MAP_COUNT_PATH, (long long)want) == 0) {
		fprintf(stderr, "densevm: ksm: raised vm.max_map_count from %lld to "
			"%llu (cross-GPA merges map up to one VMA per page)\n",
			cur, want);
		return;
	}
	fprintf(stderr, "densevm: ksm: vm.max_map_count is %lld; cross-GPA "
		"merges fail past about %lld pages (map_failures): raise it to "
		"%llu as root\n", cur, cur / 2, want);
}

/* -------------------------------------------------------------- stats */

/* The engine's whole JSON (global, per VM, tunables) as an object: the
 * `ksm` command's reply. */
static json_t *engine_json(struct ksm *k)
{
	json_t *o = ksm_stats_json(k);
	struct proc_figs pf;
	if (o) {
		proc_figs_get(&pf, PROC_FIGS_VMAS);   /* at most 1 s old: cli.h */
		json_object_set_new(o, "vmas", json_integer(pf.vmas));
		json_object_set_new(o, "max_map_count",
				    json_integer(ksm_sysctl_read(MAX_MAP_COUNT_PATH)));
	}
	return o;
}

static void ksm_vm_figures(struct run_state *rs, const struct vm_run *r,
			   struct vm_figures *f)
{
	struct ksm *k = live(rs);
	if (!ksm_on(rs->cfg))
		return;
	f->ksm = true;
	f->ksm_starting = !k;
	if (!k)
		return;
	f->ksm_domain = r->ksm_domain;
	f->ksm_registered = r->ksm;
	/* the kernel has no per-VM figures */
	f->ksm_per_vm = r->ksm && !rs->ksm_kernel;
	if (f->ksm_per_vm)
		ksm_vm_stats(r->ksm, &f->ksm_st);
}

static void ksm_run_figures(struct run_state *rs, struct run_figures *f)
{
	struct ksm *k = live(rs);
	const char *const *names = ksm_tunable_names();
	if (!ksm_on(rs->cfg))
		return;
	f->ksm = true;
	f->ksm_starting = !k;
	if (!k)
		return;
	f->ksm_engine = ksm_engine_name(k);
	ksm_stats(k, &f->ksm_global);
	for (f->ksm_ntun = 0; names[f->ksm_ntun] && f->ksm_ntun < RUN_MAX_TUNABLES;
	     f->ksm_ntun++) {
		snprintf(f->ksm_tun[f->ksm_ntun].name, sizeof(f->ksm_tun[0].name),
			 "%s", names[f->ksm_ntun]);
		ksm_get_tunable(k, names[f->ksm_ntun], f->ksm_tun[f->ksm_ntun].val,
				sizeof(f->ksm_tun[0].val));
	}
	struct proc_figs pf;
	/* not a walk of every VMA under rs->lock */
	proc_figs_get(&pf, PROC_FIGS_VMAS);
	f->vmas = pf.vmas;
	f->max_map_count = ksm_sysctl_read(MAX_MAP_COUNT_PATH);
}

static int ksm_check(struct run_state *rs, char *err, size_t errlen)
{
	struct ksm *k = live(rs);
	return k ? ksm_self_check(k, err, errlen) : 0;
}

/* --------------------------------------------------------- ctl commands */

static json_t *ctl_ksm(json_t *req, void *ctx, char *err, size_t errlen)
{
	(void)req;
	struct ksm *k = live(ctx);
	if (!k)
		return json_pack("{s:s}", "engine", "off");
	json_t *o = engine_json(k);
	if (!o)
		snprintf(err, errlen, "ksm: out of memory");
	return o;
}

static json_t *ctl_ksm_set(json_t *req, void *ctx, char *err, size_t errlen)
{
	const char *name = ctl_arg(req, 0), *val = ctl_arg(req, 1);
	struct ksm *k = live(ctx);
	char e[256], now[32];

	if (!k) {
		snprintf(err, errlen, "ksm is off (a [ksm] section in the config "
			 "turns it on)");
		return NULL;
	}
	if (!name || !val || ctl_arg(req, 2)) {
		char known[400] = "";
		for (const char *const *n = ksm_tunable_names(); *n; n++)
			snprintf(known + strlen(known), sizeof(known) - strlen(known),
				 " %s", *n);
		snprintf(err, errlen, "usage: ksm-set NAME VALUE (NAME:%s)", known);
		return NULL;
	}
	if (ksm_set_tunable(k, name, val, e, sizeof(e))) {
		snprintf(err, errlen, "%s", e);
		return NULL;
	}
	ksm_get_tunable(k, name, now, sizeof(now));
	return json_pack("{s:s, s:s}", "name", name, "value", now);
}

/* ------------------------------------------------------------ lifecycle */

static int apply_tunables(const struct run_config *rc, struct ksm *k, char *err,
			  size_t errlen)
{
	for (unsigned i = 0; i < rc->ksm.ntun; i++) {
		char e[256];
		if (ksm_set_tunable(k, rc->ksm.tun[i].name, rc->ksm.tun[i].val, e,
				    sizeof(e))) {
			snprintf(err, errlen, "%s", e);
			return -EINVAL;
		}
	}
	return 0;
}

static int ksm_start_ext(struct run_state *rs, struct ctl_server *ctl,
			 char *err, size_t errlen)
{
	const struct run_config *conf = rs->cfg;
	struct ksm_config cfg;
	struct ksm *k;
	uint64_t pages = 0;
	unsigned ndom = 0, first_dom = 0;
	int rc;

	if (ctl) {
		ctl_register(ctl, "ksm", "page sharing: engine, global and per-VM "
			     "stats, tunables", ctl_ksm, rs);
		/* slow: it takes ksm's lock, at the scanner's next
		 * handover point */
		ctl_register_slow(ctl, "ksm-set", "NAME VALUE: change a ksm "
				  "tunable at run time", ctl_ksm_set, rs, NULL);
	}
	if (!ksm_on(conf))
		return 0;
	ksm_config_default(&cfg);
	cfg.engine = kernel_engine(conf) ? KSM_ENGINE_KERNEL : KSM_ENGINE_DENSE;
	if ((rc = ksm_create(&cfg, &k, err, errlen)) != 0)
		return rc;
	if ((rc = apply_tunables(conf, k, err, errlen)) != 0)
		goto fail;
	pthread_mutex_lock(&rs->lock);
	rs->ksm_kernel = kernel_engine(conf);
	for (unsigned i = 0; i < rs->n; i++) {
		struct vm_run *r = &rs->runs[i];
		const struct vm_spec *s = r->spec;
		unsigned id;
		r->ksm = NULL;
		r->ksm_domain = spec_private(s) ? "private" :
				spec_ext(s, "domain") ? spec_ext(s, "domain") : "default";
		if (spec_private(s)) {
			/* kernel KSM cannot keep one VM apart: leave it out */
			if (kernel_engine(conf))
				continue;
			id = KSM_DOMAIN_PRIVATE;
		} else {
			struct run_domain *d = domain_get(rs, spec_domain(s));
			if (!d) {
				snprintf(err, errlen, "ksm: too many domains");
				rc = -E2BIG;
				goto fail_locked;
			}
			id = d->id;
			if (!ndom++)
				first_dom = id;
			else if (kernel_engine(conf) && id != first_dom) {
				snprintf(err, errlen, "engine=kernel: kernel KSM merges "
					 "across every VM, it cannot keep domains apart "
					 "(use engine=dense, or private=1)");
				rc = -EINVAL;
				goto fail_locked;
			}
		}
		rc = ksm_add_vm(k, &ksm_hv_ops, r->vm, id, &r->ksm, err, errlen);
		if (rc)
			goto fail_locked;
		pages += hv_vm_mem_bytes(r->vm) / HV_PAGE_SIZE;
	}
	pthread_mutex_unlock(&rs->lock);
	if (!kernel_engine(conf))
		raise_max_map_count(pages);
	rc = ksm_start(k);
	if (rc) {
		snprintf(err, errlen, rc == -EBUSY ?
			 "engine=kernel: another densevm's kernel engine owns "
			 "/sys/kernel/mm/ksm" : "ksm: start: %s", strerror(-rc));
		goto fail;
	}
	__atomic_store_n(&rs->ksm, k, __ATOMIC_RELEASE);
	fprintf(stderr, "densevm: ksm: engine %s, %u VMs\n", ksm_engine_name(k),
		rs->n);
	return 0;
fail:
	pthread_mutex_lock(&rs->lock);
fail_locked:
	for (unsigned i = 0; i < rs->n; i++)
		rs->runs[i].ksm = NULL;
	pthread_mutex_unlock(&rs->lock);
	ksm_destroy(k);   /* removes the VMs it added */
	return rc;
}

static void ksm_stop_ext(struct run_state *rs)
{
	struct ksm *k = live(rs);

	pthread_mutex_lock(&rs->lock);
	__atomic_store_n(&rs->ksm, NULL, __ATOMIC_RELEASE);
	for (unsigned i = 0; i < rs->n; i++)
		rs->runs[i].ksm = NULL;
	pthread_mutex_unlock(&rs->lock);
	if (k)
		ksm_destroy(k);   /* stops the scanner; kernel: run=0 */
	/* The domains' memfds outlive this: run.c closes them after the VMs
	 * are destroyed, on every path (a failed start included). */
}

static void ksm_config_init(struct run_config *rc)
{
	memset(&rc->ksm, 0, sizeof(rc->ksm));
}

const struct run_ext ksm_ext = {
	.name = "ksm",
	.section = "ksm",
	.config_init = ksm_config_init,
	.config_key = ksm_config_key,
	.vm_key = ksm_vm_key,
	.prepare_vm = ksm_prepare_vm,
	.start = ksm_start_ext,
	.vm_figures = ksm_vm_figures,
	.run_figures = ksm_run_figures,
	.check = ksm_check,
	.stop = ksm_stop_ext,
};
