/*
 * ext_ksm.c - ksm in `densevm run` (struct run_ext, see ext.h): the [ksm]
 * config section (engine and tunables), the per-VM keys domain=NAME and
 * private=1, each sharing domain's base memfd, registering the VMs and
 * running the scanner, vm.max_map_count, the control-socket commands
 * `ksm` and `ksm-set`, ksm's part of `stat` and of `stat --check`, and
 * the balloon's release hook (ksm_page_released).
 *
 * ksm is on when the config has a [ksm] section (engine defaults to dense
 * there) and off otherwise, so runs that never asked for page sharing keep
 * anonymous guest RAM and an untouched host.
 *
 * State is process-wide: one `densevm run` per process.  stop() resets it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "ext.h"
#include "ksm/ksm.h"

#define MAX_TUNABLES 32
#define MAX_MAP_COUNT_PATH "/proc/sys/vm/max_map_count"
/* what a process maps besides guest RAM (the kernel's default limit) */
#define MAP_COUNT_BASE 65530ULL

enum engine_sel { SEL_NONE, SEL_OFF, SEL_DENSE, SEL_KERNEL };

struct domain {
	char name[40];   /* "" = the default domain */
	unsigned id;
	int memfd;       /* its base memfd (dense engine), or -1 */
};

static struct {
	enum engine_sel engine;  /* SEL_NONE: no [ksm] section seen */
	bool any_key;            /* the section has keys: ksm is on */
	struct { char name[32]; char val[32]; } tun[MAX_TUNABLES];
	unsigned ntun;
	struct domain dom[CLI_MAX_VMS + 1];
	unsigned ndom;
	/* after start() */
	struct ksm *k;           /* published last (atomic): ctl reads it */
	struct hv_vm *vm[CLI_MAX_VMS];
	struct ksm_vm *kv[CLI_MAX_VMS];   /* NULL: not registered */
	const char *domname[CLI_MAX_VMS]; /* "default", NAME or "private" */
	unsigned nvm;
} g;

static bool ksm_on(void)
{
	return g.any_key && g.engine != SEL_OFF;
}

static bool kernel_engine(void)
{
	return g.engine == SEL_KERNEL;
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

static int ksm_config_key(const char *key, const char *val, char *err,
			  size_t errlen)
{
	g.any_key = true;
	if (!strcmp(key, "engine")) {
		if (!strcmp(val, "dense"))
			g.engine = SEL_DENSE;
		else if (!strcmp(val, "kernel"))
			g.engine = SEL_KERNEL;
		else if (!strcmp(val, "off"))
			g.engine = SEL_OFF;
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
	for (i = 0; i < g.ntun && strcmp(g.tun[i].name, key); i++)
		;
	if (i == MAX_TUNABLES || strlen(key) >= sizeof(g.tun[0].name) ||
	    strlen(val) >= sizeof(g.tun[0].val)) {
		snprintf(err, errlen, "%s: too many or too long", key);
		return -E2BIG;
	}
	snprintf(g.tun[i].name, sizeof(g.tun[i].name), "%s", key);
	snprintf(g.tun[i].val, sizeof(g.tun[i].val), "%s", val);
	if (i == g.ntun)
		g.ntun++;
	return 0;
}

static bool domain_name_ok(const char *s)
{
	size_t n = strlen(s);
	return n >= 1 && n < sizeof(g.dom[0].name) &&
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
static struct domain *domain_get(const char *name)
{
	for (unsigned i = 0; i < g.ndom; i++)
		if (!strcmp(g.dom[i].name, name))
			return &g.dom[i];
	if (g.ndom == sizeof(g.dom) / sizeof(g.dom[0]))
		return NULL;
	struct domain *d = &g.dom[g.ndom++];
	snprintf(d->name, sizeof(d->name), "%s", name);
	/* the default domain is 0 whenever it is first used */
	d->id = name[0] ? g.ndom : 0;
	d->memfd = -1;
	return d;
}

static int ksm_prepare_vm(const struct vm_spec *s, struct hv_vm_config *c,
			  char *err, size_t errlen)
{
	if (spec_private(s) && spec_ext(s, "domain")) {
		snprintf(err, errlen, "private=1 and domain=%s: a private VM "
			 "shares with nobody", spec_ext(s, "domain"));
		return -EINVAL;
	}
	if (!ksm_on() || kernel_engine() || spec_private(s))
		return 0;   /* anonymous RAM */
	struct domain *d = domain_get(spec_domain(s));
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

static json_t *stats_json(const struct ksm_stats *s)
{
	return json_pack(
		"{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
		"s:I, s:I, s:I, s:I, s:I}",
		"pages_sharing", (json_int_t)s->pages_sharing,
		"base_pages", (json_int_t)s->base_pages,
		"zero_pages", (json_int_t)s->zero_pages,
		"volatile_pages", (json_int_t)s->volatile_pages,
		"full_scans", (json_int_t)s->full_scans,
		"pages_hashed", (json_int_t)s->pages_hashed,
		"pages_compared", (json_int_t)s->pages_compared,
		"merges", (json_int_t)s->merges,
		"unmerges", (json_int_t)s->unmerges,
		"collisions", (json_int_t)s->collisions,
		"merge_races", (json_int_t)s->merge_races,
		"map_failures", (json_int_t)s->map_failures,
		"bytes_saved", (json_int_t)s->bytes_saved,
		"pauses", (json_int_t)s->pauses,
		"pause_p50_ns", (json_int_t)s->pause_p50_ns,
		"pause_p99_ns", (json_int_t)s->pause_p99_ns,
		"pause_max_ns", (json_int_t)s->pause_max_ns);
}

static struct ksm *live(void)
{
	return __atomic_load_n(&g.k, __ATOMIC_ACQUIRE);
}

/* The engine's whole JSON (global, per VM, tunables) as an object. */
static json_t *engine_json(struct ksm *k)
{
	size_t need = ksm_stats_json(k, NULL, 0) + 1;
	char *buf = malloc(need + 4096);   /* counters may grow meanwhile */
	if (!buf)
		return NULL;
	size_t n = ksm_stats_json(k, buf, need + 4096);
	json_t *o = n < need + 4096 ? json_loads(buf, 0, NULL) : NULL;
	free(buf);
	if (o) {
		json_object_set_new(o, "vmas", json_integer(hv_vma_count()));
		json_object_set_new(o, "max_map_count",
				    json_integer(ksm_sysctl_read(MAX_MAP_COUNT_PATH)));
	}
	return o;
}

static json_t *ksm_stat(struct hv_vm *vm)
{
	struct ksm *k = live();
	if (!ksm_on())
		return NULL;
	if (!k)
		return json_pack("{s:s}", "engine", "starting");
	if (!vm) {
		json_t *o = engine_json(k);
		json_object_del(o, "vms");   /* they are in each VM's entry */
		return o;
	}
	for (unsigned i = 0; i < g.nvm; i++) {
		if (g.vm[i] != vm)
			continue;
		json_t *o;
		if (g.kv[i] && !kernel_engine()) {
			struct ksm_stats st;
			ksm_vm_stats(g.kv[i], &st);
			o = stats_json(&st);
		} else {
			/* the kernel has no per-VM figures */
			o = json_object();
		}
		json_object_set_new(o, "domain", json_string(g.domname[i]));
		json_object_set_new(o, "registered", json_boolean(g.kv[i]));
		return o;
	}
	return NULL;
}

/* For the balloon (its start runs after ours): a page it takes that ksm
 * shared must drop ksm's reference first, or the refcounts would lie. */
static void ksm_release_hook(struct hv_vm *vm,
			     void (**fn)(void *ctx, uint64_t gpa, hv_pstate_t old),
			     void **ctx)
{
	*fn = NULL;
	*ctx = NULL;
	if (!live() || kernel_engine())
		return;   /* kernel KSM keeps no page-state of its own */
	for (unsigned i = 0; i < g.nvm; i++)
		if (g.vm[i] == vm && g.kv[i]) {
			*fn = ksm_page_released;
			*ctx = g.kv[i];
		}
}

static int ksm_check(char *err, size_t errlen)
{
	struct ksm *k = live();
	return k ? ksm_self_check(k, err, errlen) : 0;
}

/* --------------------------------------------------------- ctl commands */

static json_t *ctl_ksm(json_t *req, void *ctx, char *err, size_t errlen)
{
	(void)req; (void)ctx;
	if (!live())
		return json_pack("{s:s}", "engine", "off");
	json_t *o = engine_json(live());
	if (!o)
		snprintf(err, errlen, "ksm: out of memory");
	return o;
}

static json_t *ctl_ksm_set(json_t *req, void *ctx, char *err, size_t errlen)
{
	(void)ctx;
	const char *name = ctl_arg(req, 0), *val = ctl_arg(req, 1);
	struct ksm *k = live();
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

static int apply_tunables(struct ksm *k, char *err, size_t errlen)
{
	for (unsigned i = 0; i < g.ntun; i++) {
		char e[256];
		if (ksm_set_tunable(k, g.tun[i].name, g.tun[i].val, e, sizeof(e))) {
			snprintf(err, errlen, "%s", e);
			return -EINVAL;
		}
	}
	return 0;
}

static int ksm_start_ext(struct run_state *st, struct ctl_server *ctl,
			 char *err, size_t errlen)
{
	struct ksm_config cfg;
	struct ksm *k;
	uint64_t pages = 0;
	unsigned ndom = 0, first_dom = 0;
	int rc;

	if (ctl) {
		ctl_register(ctl, "ksm", "page sharing: engine, global and per-VM "
			     "stats, tunables", ctl_ksm, NULL);
		ctl_register(ctl, "ksm-set", "NAME VALUE: change a ksm tunable at "
			     "run time", ctl_ksm_set, NULL);
	}
	if (!ksm_on())
		return 0;
	ksm_config_default(&cfg);
	cfg.engine = kernel_engine() ? KSM_ENGINE_KERNEL : KSM_ENGINE_DENSE;
	if ((rc = ksm_create(&cfg, &k, err, errlen)) != 0)
		return rc;
	if ((rc = apply_tunables(k, err, errlen)) != 0)
		goto fail;
	g.nvm = st->n;
	for (unsigned i = 0; i < st->n; i++) {
		const struct vm_spec *s = st->runs[i].spec;
		unsigned id;
		g.vm[i] = st->runs[i].vm;
		g.kv[i] = NULL;
		g.domname[i] = spec_private(s) ? "private" :
			       spec_ext(s, "domain") ? spec_ext(s, "domain") : "default";
		if (spec_private(s)) {
			/* kernel KSM cannot keep one VM apart: leave it out */
			if (kernel_engine())
				continue;
			id = KSM_DOMAIN_PRIVATE;
		} else {
			struct domain *d = domain_get(spec_domain(s));
			if (!d) {
				snprintf(err, errlen, "ksm: too many domains");
				rc = -E2BIG;
				goto fail;
			}
			id = d->id;
			if (!ndom++)
				first_dom = id;
			else if (kernel_engine() && id != first_dom) {
				snprintf(err, errlen, "engine=kernel: kernel KSM merges "
					 "across every VM, it cannot keep domains apart "
					 "(use engine=dense, or private=1)");
				rc = -EINVAL;
				goto fail;
			}
		}
		rc = ksm_add_vm(k, &ksm_hv_ops, g.vm[i], id, &g.kv[i], err, errlen);
		if (rc)
			goto fail;
		pages += hv_vm_mem_bytes(g.vm[i]) / HV_PAGE_SIZE;
	}
	if (!kernel_engine())
		raise_max_map_count(pages);
	rc = ksm_start(k);
	if (rc) {
		snprintf(err, errlen, rc == -EBUSY ?
			 "engine=kernel: another densevm's kernel engine owns "
			 "/sys/kernel/mm/ksm" : "ksm: start: %s", strerror(-rc));
		goto fail;
	}
	__atomic_store_n(&g.k, k, __ATOMIC_RELEASE);
	fprintf(stderr, "densevm: ksm: engine %s, %u VMs\n", ksm_engine_name(k),
		st->n);
	return 0;
fail:
	ksm_destroy(k);   /* removes the VMs it added */
	return rc;
}

static void ksm_stop_ext(void)
{
	struct ksm *k = live();

	__atomic_store_n(&g.k, NULL, __ATOMIC_RELEASE);
	if (k)
		ksm_destroy(k);   /* stops the scanner; kernel: run=0 */
	/* Every VM has ended (run.c stops extensions after that), so no
	 * restore_backing can still need a base memfd: close them. */
	for (unsigned i = 0; i < g.ndom; i++)
		if (g.dom[i].memfd >= 0)
			close(g.dom[i].memfd);
	memset(&g, 0, sizeof(g));
}

const struct run_ext ksm_ext = {
	.name = "ksm",
	.section = "ksm",
	.config_key = ksm_config_key,
	.vm_key = ksm_vm_key,
	.prepare_vm = ksm_prepare_vm,
	.start = ksm_start_ext,
	.release_hook = ksm_release_hook,
	.stat = ksm_stat,
	.check = ksm_check,
	.stop = ksm_stop_ext,
};
