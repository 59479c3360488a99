/*
 * run_ctl.c - the control-socket commands of a `densevm run` process:
 * list, stat (host, process and per-VM figures), results (the guests'
 * HC_RESULT values with their arrival times: cheap enough to poll at
 * 10 Hz, which stat with its page counts is not) and stop.
 * `stat --check` runs on the control socket's worker threads (it waits
 * for ksm's lock and walks every page), and checks asked for at once
 * share one run of the self-checks (run_checks).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifndef DENSEVM_NO_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif
#include "cli.h"
#include "ctl.h"
#include "ext.h"

static struct vm_run *find_vm(struct run_state *st, const char *name)
{
	for (unsigned i = 0; name && i < st->n; i++)
		if (!strcmp(hv_vm_name(st->runs[i].vm), name))
			return &st->runs[i];
	return NULL;
}

static json_t *vm_brief(struct hv_vm *vm)
{
	struct hv_exit_status es;
	hv_vm_status(vm, &es);
	return json_pack("{s:s, s:s, s:I, s:i}", "name", hv_vm_name(vm),
			 "state", hv_exit_kind_name(es.kind),
			 "mem_bytes", (json_int_t)hv_vm_mem_bytes(vm),
			 "cpus", (int)hv_vm_ncpus(vm));
}

static json_t *ctl_list(json_t *req, void *ctx, char *err, size_t errlen)
{
	(void)req; (void)err; (void)errlen;
	struct run_state *st = ctx;
	json_t *a = json_array();
	for (unsigned i = 0; i < st->n; i++)
		json_array_append_new(a, vm_brief(st->runs[i].vm));
	return json_pack("{s:o}", "vms", a);
}

/* {"KEY": {"value": V, "ns": T}} for each result the guest sent; T is the
 * host's CLOCK_MONOTONIC at its arrival. */
static json_t *vm_results(struct hv_vm *vm)
{
	json_t *res = json_object();
	for (uint64_t k = 0; k < 16; k++) {
		uint64_t v, ns;
		char key[8];
		if (hv_vm_result_at(vm, k, &v, &ns)) {
			snprintf(key, sizeof(key), "%u", (unsigned)k);
			json_object_set_new(res, key, json_pack("{s:I, s:I}",
				"value", (json_int_t)v, "ns", (json_int_t)ns));
		}
	}
	return res;
}

static json_t *ctl_results(json_t *req, void *ctx, char *err, size_t errlen)
{
	struct run_state *st = ctx;
	const char *opt = ctl_arg(req, 0);
	if (opt && strcmp(opt, "resident")) {
		snprintf(err, errlen, "usage: results [resident]");
		return NULL;
	}
	json_t *a = json_array();
	for (unsigned i = 0; i < st->n; i++) {
		struct hv_vm *vm = st->runs[i].vm;
		json_t *o = vm_brief(vm);
		json_object_set_new(o, "start_ns",
				    json_integer((json_int_t)hv_vm_start_ns(vm)));
		json_object_set_new(o, "first_hypercall_ns", json_integer(
			(json_int_t)hv_vm_first_hypercall_ns(vm)));
		json_object_set_new(o, "results", vm_results(vm));
		if (opt)   /* mincore over its RAM: not for every poll */
			json_object_set_new(o, "resident_bytes", json_integer(
				(json_int_t)hv_vm_resident_bytes(vm)));
		json_array_append_new(a, o);
	}
	return json_pack("{s:I, s:o}", "now_ns", (json_int_t)hv_now_ns(), "vms", a);
}

static json_t *vm_stat(struct run_state *rs, const struct vm_run *r)
{
	struct hv_vm *vm = r->vm;
	struct vm_figures f;
	static const char *names[] = { "private", "zero", "base", "frame",
				       "ballooned" };
	uint64_t counts[8];
	struct hv_vm_counters c;
	json_t *o = vm_brief(vm);
	json_t *pages = json_object();

	hv_vm_page_counts(vm, counts);
	for (int i = 0; i < 5; i++)
		json_object_set_new(pages, names[i], json_integer((json_int_t)counts[i]));
	hv_vm_counters(vm, &c);
	json_object_set_new(o, "pages", pages);
	json_object_set_new(o, "hypercalls", json_integer((json_int_t)c.hypercalls));
	json_object_set_new(o, "exits", json_integer((json_int_t)c.exits));
	json_object_set_new(o, "bad_hypercalls",
			    json_integer((json_int_t)c.bad_hypercalls));
	json_object_set_new(o, "pauses", json_integer((json_int_t)c.pauses));
	json_object_set_new(o, "results", vm_results(vm));
	run_vm_figures(rs, r, &f);
	return vm_figures_json(&f, o);
}

/* Lines "Key:   123 kB" of a /proc file, as an object of kB values. */
static json_t *proc_kb(const char *path, const char *const keys[])
{
	json_t *o = json_object();
	FILE *f = fopen(path, "r");
	char line[256];
	while (f && fgets(line, sizeof(line), f)) {
		for (int i = 0; keys[i]; i++) {
			size_t kl = strlen(keys[i]);
			if (!strncmp(line, keys[i], kl) && line[kl] == ':')
				json_object_set_new(o, keys[i], json_integer(
					strtoll(line + kl + 1, NULL, 10)));
		}
	}
	if (f)
		fclose(f);
	return o;
}

static json_t *psi_memory(void)
{
	FILE *f = fopen("/proc/pressure/memory", "r");
	double some = -1, full = -1;
	char line[256];
	while (f && fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "some", 4))
			sscanf(line, "some avg10=%lf", &some);
		else if (!strncmp(line, "full", 4))
			sscanf(line, "full avg10=%lf", &full);
	}
	if (f)
		fclose(f);
	return json_pack("{s:f, s:f}", "some_avg10", some, "full_avg10", full);
}

static json_t *jemalloc_stats(void)
{
#ifndef DENSEVM_NO_JEMALLOC
	uint64_t epoch = 1;
	size_t sz = sizeof(epoch);
	mallctl("epoch", &epoch, &sz, &epoch, sz);
	static const char *keys[] = { "stats.allocated", "stats.active",
				      "stats.metadata", "stats.resident",
				      "stats.mapped", "stats.retained" };
	json_t *o = json_object();
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		size_t v = 0, vs = sizeof(v);
		if (mallctl(keys[i], &v, &vs, NULL, 0) == 0)
			json_object_set_new(o, keys[i] + 6, json_integer((json_int_t)v));
	}
	return o;
#else
	return json_null();   /* sanitizer builds use ASan's allocator */
#endif
}

/* Every extension's self-check, for any number of `stat --check`s at
 * once: a run of the checks that started after a request arrived answers
 * it, so N clients asking together cost at most two runs, one at a time,
 * not N in a row.  One run per process, hence static. */
static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool running;
	uint64_t started, done;   /* runs begun; the last one finished */
	int rc;                   /* and its result */
	char err[480];
} g_check = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static int run_checks(struct run_state *st, char *err, size_t errlen)
{
	pthread_mutex_lock(&g_check.mu);
	uint64_t want = g_check.started + 1;
	while (g_check.done < want) {
		if (g_check.running) {
			pthread_cond_wait(&g_check.cv, &g_check.mu);
			continue;
		}
		uint64_t run = ++g_check.started;
		g_check.running = true;
		pthread_mutex_unlock(&g_check.mu);
		char e[sizeof(g_check.err)] = "";
		int rc = 0;
		for (int i = 0; run_exts[i] && !rc; i++) {
			char m[400] = "";
			if (run_exts[i]->check && run_exts[i]->check(st, m, sizeof(m))) {
				snprintf(e, sizeof(e), "%s: %s", run_exts[i]->name, m);
				rc = -1;
			}
		}
		pthread_mutex_lock(&g_check.mu);
		g_check.running = false;
		g_check.done = run;
		g_check.rc = rc;
		memcpy(g_check.err, e, sizeof(e));
		pthread_cond_broadcast(&g_check.cv);
	}
	int rc = g_check.rc;
	snprintf(err, errlen, "%s", g_check.err);
	pthread_mutex_unlock(&g_check.mu);
	return rc;
}

static bool stat_is_check(json_t *req)
{
	return json_is_true(json_object_get(req, "check"));
}

static json_t *ctl_stat(json_t *req, void *ctx, char *err, size_t errlen)
{
	struct run_state *st = ctx;
	const char *one = ctl_arg(req, 0);
	static const char *const mem_keys[] = { "MemTotal", "MemFree",
		"MemAvailable", "Cached", NULL };

	if (one && !find_vm(st, one)) {
		snprintf(err, errlen, "no VM named '%.64s'", one);
		return NULL;
	}
	json_t *vms = json_array();
	for (unsigned i = 0; i < st->n; i++)
		if (!one || !strcmp(one, hv_vm_name(st->runs[i].vm)))
			json_array_append_new(vms, vm_stat(st, &st->runs[i]));
	json_t *host = proc_kb("/proc/meminfo", mem_keys);
	json_object_set_new(host, "psi_memory", psi_memory());
	/* read at most once a second by proc_figs.c: they walk every VMA
	 * and page table, 0.1 s or more on a large fleet */
	struct proc_figs pf;
	proc_figs_get(&pf, PROC_FIGS_VMAS | PROC_FIGS_PSS);
	json_t *proc = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}",
				 "Rss", (json_int_t)pf.rss_kb,
				 "Pss", (json_int_t)pf.pss_kb,
				 "Pss_Anon", (json_int_t)pf.pss_anon_kb,
				 "Pss_Shmem", (json_int_t)pf.pss_shmem_kb,
				 "vmas", (json_int_t)pf.vmas,
				 "age_ms", (json_int_t)pf.age_ms);
	json_object_set_new(proc, "jemalloc", jemalloc_stats());
	json_t *r = json_pack("{s:o, s:o, s:o}", "host", host, "process", proc,
			      "vms", vms);
	struct run_figures rf;
	run_run_figures(st, &rf);
	run_figures_json(&rf, r);
	/* `stat --check`: every extension's self-check, or an error reply */
	if (stat_is_check(req)) {
		char e[sizeof(g_check.err)];
		if (run_checks(st, e, sizeof(e))) {
			snprintf(err, errlen, "check failed: %s", e);
			json_decref(r);
			return NULL;
		}
		json_object_set_new(r, "check", json_string("ok"));
	}
	return r;
}

static json_t *ctl_stop_vm(json_t *req, void *ctx, char *err, size_t errlen)
{
	struct vm_run *r = find_vm(ctx, ctl_arg(req, 0));
	if (!r) {
		snprintf(err, errlen, "usage: stop VM (a name from 'list')");
		return NULL;
	}
	hv_vm_stop(r->vm);
	return json_object();
}

void run_register_ctl(struct ctl_server *s, struct run_state *st)
{
	ctl_register(s, "list", "the VMs and their state", ctl_list, st);
	ctl_register_slow(s, "stat", "[VM] host, process (PSS, VMAs, jemalloc) "
			  "and per-VM statistics; with \"check\": true, the "
			  "self-checks too", ctl_stat, st, stat_is_check);
	ctl_register(s, "results", "[resident] each VM's guest results "
		     "(HC_RESULT) with the host time they arrived; with resident, "
		     "its resident guest RAM too", ctl_results, st);
	ctl_register(s, "stop", "VM: stop one VM", ctl_stop_vm, st);
}
