/*
 * stats.c - global and per-VM statistics, and their JSON form.
 *
 * Counters are relaxed atomics bumped by the scanner; reading them needs
 * only list_lock (the VM and domain lists), never the scanner's lock, so
 * `densevm stat` does not wait for a pass.  Gauges (pages_sharing,
 * zero_pages, ...) live per VM and are summed for the global view.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "internal.h"

void kstats_fill(struct ksm *k, const struct kctr *c, struct kpause *p,
		 struct ksm_stats *st)
{
	(void)k;
	st->pages_sharing = CTR_GET(c->pages_sharing);
	st->base_pages = CTR_GET(c->base_pages);
	st->zero_pages = CTR_GET(c->zero_pages);
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
	kpause_percentiles(p, &st->pause_p50_ns, &st->pause_p99_ns,
			   &st->pause_max_ns);
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
	g->pages_sharing = g->base_pages = g->zero_pages = 0;
	g->volatile_pages = 0;
	pthread_rwlock_rdlock(&k->list_lock);
	for (vm = k->vms; vm; vm = vm->next) {
		g->pages_sharing += CTR_GET(vm->c.pages_sharing);
		g->base_pages += CTR_GET(vm->c.base_pages);
		g->zero_pages += CTR_GET(vm->c.zero_pages);
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

struct jbuf {
	char *p;
	size_t len, n;
};

__attribute__((format(printf, 2, 3)))
static void jp(struct jbuf *j, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vsnprintf(j->n < j->len ? j->p + j->n : NULL,
		      j->n < j->len ? j->len - j->n : 0, fmt, ap);
	va_end(ap);
	if (r > 0)
		j->n += (size_t)r;
}

/* A JSON string: quotes, backslashes and control bytes escaped. */
static void jstr(struct jbuf *j, const char *s)
{
	jp(j, "\"");
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			jp(j, "\\%c", c);
		else if (c < 0x20)
			jp(j, "\\u%04x", c);
		else
			jp(j, "%c", c);
	}
	jp(j, "\"");
}

static void jstats(struct jbuf *j, const struct ksm_stats *s, bool global)
{
	jp(j, "{");
	if (global)
		jp(j, "\"frames\":%llu,", (unsigned long long)s->frames);
	jp(j, "\"pages_sharing\":%llu,\"base_pages\":%llu,\"zero_pages\":%llu,"
	   "\"volatile_pages\":%llu,\"full_scans\":%llu,\"pages_hashed\":%llu,"
	   "\"pages_compared\":%llu,"
	   "\"merges\":%llu,\"unmerges\":%llu,\"collisions\":%llu,"
	   "\"merge_races\":%llu,\"map_failures\":%llu,",
	   (unsigned long long)s->pages_sharing,
	   (unsigned long long)s->base_pages,
	   (unsigned long long)s->zero_pages,
	   (unsigned long long)s->volatile_pages,
	   (unsigned long long)s->full_scans,
	   (unsigned long long)s->pages_hashed,
	   (unsigned long long)s->pages_compared,
	   (unsigned long long)s->merges, (unsigned long long)s->unmerges,
	   (unsigned long long)s->collisions,
	   (unsigned long long)s->merge_races,
	   (unsigned long long)s->map_failures);
	if (global)
		jp(j, "\"cpu_seconds\":%.6f,\"base_zero_reclaimed\":%llu,",
		   s->cpu_seconds,
		   (unsigned long long)s->base_zero_reclaimed);
	jp(j, "\"bytes_saved\":%llu,\"pauses\":%llu,\"pause_p50_ns\":%llu,"
	   "\"pause_p99_ns\":%llu,\"pause_max_ns\":%llu}",
	   (unsigned long long)s->bytes_saved, (unsigned long long)s->pauses,
	   (unsigned long long)s->pause_p50_ns,
	   (unsigned long long)s->pause_p99_ns,
	   (unsigned long long)s->pause_max_ns);
}

size_t ksm_stats_json(struct ksm *k, char *buf, size_t len)
{
	struct jbuf j = { buf, len, 0 };
	const char *const *names = ksm_tunable_names();
	struct ksm_stats s;
	struct ksm_vm *vm;
	char v[32];
	bool first = true;
	unsigned i;

	if (len)
		buf[0] = 0;
	ksm_stats(k, &s);
	jp(&j, "{\"engine\":\"%s\",\"global\":", ksm_engine_name(k));
	jstats(&j, &s, true);
	jp(&j, ",\"vms\":[");
	pthread_rwlock_rdlock(&k->list_lock);
	for (vm = k->vms; vm; vm = vm->next) {
		ksm_vm_stats(vm, &s);
		jp(&j, "%s{\"name\":", first ? "" : ",");
		jstr(&j, vm->name);
		jp(&j, ",\"domain\":%u,\"stats\":", vm->dom ? vm->dom->id : 0);
		jstats(&j, &s, false);
		jp(&j, "}");
		first = false;
	}
	pthread_rwlock_unlock(&k->list_lock);
	jp(&j, "],\"tunables\":{");
	for (i = 0; names[i]; i++) {
		ksm_get_tunable(k, names[i], v, sizeof(v));
		jp(&j, "%s\"%s\":%s", i ? "," : "", names[i], v);
	}
	jp(&j, "}}");
	return j.n;
}
