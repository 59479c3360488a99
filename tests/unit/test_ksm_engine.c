/*
 * test_ksm_engine.c - ksm's engine on fake VMs (ksm_fake.h): dirty-log
 * guided scanning and volatility, NUMA slots (faked nodes), max_sharers,
 * tunables and their errors, the scanner thread and stats JSON, the
 * pages_per_sec cap, the self-check catching a corrupted map, and a
 * throughput measurement (printed, not asserted), and self-checks in a
 * loop beside the scanner thread.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "ksm_test.h"


static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---------------------------------------------- dirty-log guided scans */

/* dirty_ms: the log is read at most that often, so a write between two
 * reads is seen at the next read, not at the next pass; the tunable takes
 * effect at once. */
static void test_dirty_read_interval(void **state_)
{
	struct ksm_config cfg;
	struct ksm *k;
	struct ksm_fake_vm *a = vm_new("a", -1, 64);
	struct ksm_stats st;
	char err[128];
	uint64_t x;

	(void)state_;
	ksm_config_default(&cfg);
	assert_int_equal(cfg.dirty_ms, 1000);   /* the documented default */
	cfg.dirty_ms = 0;
	k = mk_timed(&cfg);
	for (x = 0; x < 32; x++)
		ksm_fake_fill_pages(a, x * PG, 1, 500 + x);
	add(k, a, 0);
	pass(k);
	pass(k);                        /* two reads: the fill is not volatile */
	ksm_stats(k, &st);
	assert_int_equal(st.pages_hashed, 32);
	assert_int_equal(ksm_set_tunable(k, "dirty_ms", "60000", err, sizeof(err)), 0);
	ksm_fake_fill_pages(a, 3 * PG, 1, 1);
	pass(k);
	pass(k);                        /* within dirty_ms: not read */
	ksm_stats(k, &st);
	assert_int_equal(st.pages_hashed, 32);
	assert_int_equal(ksm_set_tunable(k, "dirty_ms", "0", err, sizeof(err)), 0);
	pass(k);                        /* read now: the write is seen */
	ksm_stats(k, &st);
	assert_int_equal(st.pages_hashed, 33);
	assert_int_equal(ksm_set_tunable(k, "dirty_ms", "60001", err, sizeof(err)),
			 -EINVAL);
	ksm_destroy(k);
	ksm_fake_vm_destroy(a);
}

static void test_dirty_guided_and_volatile(void **state_)
{
	struct ksm_config cfg;
	struct ksm *k;
	struct ksm_fake_vm *a = vm_new("a", -1, 256);
	struct ksm_stats st, st2;
	uint64_t x;
	unsigned p;

	(void)state_;
	ksm_config_default(&cfg);
	cfg.volatile_passes = 2;
	k = mk(&cfg);
	for (x = 0; x < 200; x++)
		ksm_fake_fill_pages(a, x * PG, 1, 10000 + x);
	add(k, a, 0);
	pass(k);
	ksm_stats(k, &st);
	assert_int_equal(st.pages_hashed, 200);
	pass(k);                        /* nothing written: nothing hashed */
	ksm_stats(k, &st2);
	assert_int_equal(st2.pages_hashed, 200);
	ksm_fake_fill_pages(a, 3 * PG, 1, 1);
	pass(k);
	ksm_stats(k, &st2);
	assert_int_equal(st2.pages_hashed, 201);
	/* page 7 written before every pass: volatile from the 2nd on */
	for (p = 0; p < 4; p++) {
		x = p + 1;
		ksm_fake_write(a, 7 * PG, &x, sizeof(x));
		pass(k);
	}
	ksm_stats(k, &st);
	assert_int_equal(st.volatile_pages, 1);
	assert_int_equal(st.pages_hashed, 201 + 1);   /* only the first */
	pass(k);                       /* settled: hashed again */
	ksm_stats(k, &st2);
	assert_int_equal(st2.volatile_pages, 0);
	assert_int_equal(st2.pages_hashed, 203);
	check(k);
	ksm_destroy(k);
	ksm_fake_vm_destroy(a);
}

/* ------------------------------------------------------------- NUMA */

static int fake_node(const void *hva, void *arg)
{
	uintptr_t base = *(uintptr_t *)arg;

	/* pages [0,32) of VM a are node 0; everything else node 1 */
	return ((uintptr_t)hva >= base && (uintptr_t)hva < base + 32 * PG) ?
	       0 : 1;
}

static void test_numa_slots(void **state_)
{
	struct ksm_config cfg;
	struct ksm *k;
	struct ksm_fake_vm *a = vm_new("a", -1, 64), *b = vm_new("b", -1, 64);
	uintptr_t abase = (uintptr_t)ksm_fake_hva(a, 0);
	struct ksm_stats st;
	char err[256];

	(void)state_;
	ksm_config_default(&cfg);
	cfg.merge_across_nodes = false;
	cfg.node_of = fake_node;
	cfg.node_arg = &abase;
	cfg.nr_nodes = 2;
	k = mk(&cfg);
	ksm_fake_fill_pages(a, 0, 1, 61);        /* node 0 */
	ksm_fake_fill_pages(b, 0, 1, 61);        /* node 1 */
	ksm_fake_fill_pages(a, 40 * PG, 1, 62);  /* node 1 */
	ksm_fake_fill_pages(b, 1 * PG, 1, 62);   /* node 1 */
	add(k, a, 0);
	add(k, b, 0);
	pass(k);
	assert_int_equal(state(a, 0), HV_PAGE_PRIVATE);   /* across nodes */
	assert_int_equal(state(b, 0), HV_PAGE_PRIVATE);
	assert_int_equal(state(a, 40 * PG), HV_PAGE_FRAME);  /* same node */
	assert_int_equal(state(b, 1 * PG), HV_PAGE_FRAME);
	check(k);
	/* cannot change while pages are merged */
	assert_int_equal(ksm_set_tunable(k, "merge_across_nodes", "1", err,
					 sizeof(err)), -EBUSY);
	assert_non_null(strstr(err, "merge_across_nodes"));
	ksm_stats(k, &st);
	assert_int_equal(st.frames, 1);
	ksm_destroy(k);
	ksm_fake_vm_destroy(a);
	ksm_fake_vm_destroy(b);

	/* with merging across nodes, the node-0/node-1 pair merges */
	a = vm_new("a", -1, 64);
	b = vm_new("b", -1, 64);
	abase = (uintptr_t)ksm_fake_hva(a, 0);
	k = mk(&cfg);
	ksm_fake_fill_pages(a, 0, 1, 61);
	ksm_fake_fill_pages(b, 0, 1, 61);
	add(k, a, 0);
	add(k, b, 0);
	assert_int_equal(ksm_set_tunable(k, "merge_across_nodes", "1", err,
					 sizeof(err)), 0);
	pass(k);
	assert_int_equal(state(a, 0), HV_PAGE_FRAME);
	check(k);
	ksm_destroy(k);
	ksm_fake_vm_destroy(a);
	ksm_fake_vm_destroy(b);
}

/* ------------------------------------------- max sharers, tunables, etc */

static void test_max_sharers(void **state_)
{
	struct ksm *k = mk(NULL);
	struct ksm_fake_vm *a = vm_new("a", -1, 64);
	struct ksm_stats st;
	char err[256];

	(void)state_;
	assert_int_equal(ksm_set_tunable(k, "max_sharers", "4", err,
					 sizeof(err)), 0);
	ksm_fake_fill_pages(a, 0, 10, 808);
	add(k, a, 0);
	pass(k);
	ksm_stats(k, &st);
	/* 10 equal pages, at most 4 per frame: 4 + 4 + 2 */
	assert_int_equal(st.pages_sharing, 10);
	assert_int_equal(st.frames, 3);
	check(k);
	ksm_destroy(k);
	ksm_fake_vm_destroy(a);
}

static void test_tunables(void **state_)
{
	struct ksm *k = mk(NULL);
	char err[256], v[32];
	const char *const *names = ksm_tunable_names();

	(void)state_;
	assert_int_equal(ksm_set_tunable(k, "no_such", "1", err, sizeof(err)),
			 -ENOENT);
	assert_non_null(strstr(err, "no_such"));
	assert_int_equal(ksm_set_tunable(k, "cpu_percent", "101", err,
					 sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "cpu_percent"));
	assert_int_equal(ksm_set_tunable(k, "batch_pages", "abc", err,
					 sizeof(err)), -EINVAL);
	assert_int_equal(ksm_set_tunable(k, "batch_pages", "-5", err,
					 sizeof(err)), -EINVAL);
	assert_int_equal(ksm_set_tunable(k, "batch_pages", "64", err,
					 sizeof(err)), 0);
	assert_int_equal(ksm_get_tunable(k, "batch_pages", v, sizeof(v)), 0);
	assert_string_equal(v, "64");
	assert_int_equal(ksm_set_tunable(k, "pages_per_sec", "100000", err,
					 sizeof(err)), 0);
	assert_int_equal(ksm_set_tunable(k, "volatile_passes", "0", err,
					 sizeof(err)), 0);
	assert_int_equal(ksm_set_tunable(k, "sleep_ms", "5", err,
					 sizeof(err)), 0);
	for (; *names; names++)
		assert_int_equal(ksm_get_tunable(k, *names, v, sizeof(v)), 0);
	ksm_destroy(k);
}

static void test_stats_json_and_scanner_thread(void **state_)
{
	struct ksm *k = mk(NULL);
	struct ksm_fake_vm *a = vm_new("vm \"q\"", -1, 64),
			   *b = vm_new("b", -1, 64);
	char err[64];
	struct ksm_stats st;
	int i;

	(void)state_;
	ksm_fake_fill_pages(a, 0, 16, 71);
	ksm_fake_fill_pages(b, 0, 16, 71);
	add(k, a, 0);
	add(k, b, 0);
	assert_int_equal(ksm_set_tunable(k, "sleep_ms", "1", err, sizeof(err)),
			 0);
	assert_int_equal(ksm_start(k), 0);
	for (i = 0; i < 500; i++) {
		ksm_stats(k, &st);
		if (st.pages_sharing == 32)
			break;
		usleep(2000);
	}
	ksm_stop(k);
	assert_int_equal(st.pages_sharing, 32);
	assert_true(st.pauses >= 1);
	assert_true(st.pause_p99_ns >= st.pause_p50_ns);
	json_t *j = ksm_stats_json(k);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "engine")),
			    "dense");
	json_t *g = json_object_get(j, "global");
	assert_int_equal(json_integer_value(json_object_get(g, "pages_sharing")),
			 32);
	assert_int_equal(json_integer_value(json_object_get(g, "pause_p99_ns")),
			 st.pause_p99_ns);
	assert_true(json_is_real(json_object_get(g, "cpu_seconds")));
	json_t *v0 = json_array_get(json_object_get(j, "vms"), 0);
	assert_string_equal(json_string_value(json_object_get(v0, "name")),
			    "vm \"q\"");
	/* per-VM figures have no global-only fields */
	assert_null(json_object_get(json_object_get(v0, "stats"), "frames"));
	assert_int_equal(json_integer_value(json_object_get(
		json_object_get(j, "tunables"), "pages_per_sec")), 0);
	/* it serializes to valid JSON, quotes in the name escaped */
	char *text = json_dumps(j, JSON_COMPACT);
	assert_non_null(strstr(text, "\"name\":\"vm \\\"q\\\"\""));
	json_t *back = json_loads(text, 0, NULL);
	assert_non_null(back);
	json_decref(back);
	free(text);
	json_decref(j);
	check(k);
	ksm_destroy(k);
	ksm_fake_vm_destroy(a);
	ksm_fake_vm_destroy(b);
}

/* pages_per_sec caps the scanner thread's hashing rate. */
static void test_rate_limit(void **state_)
{
	struct ksm *k = mk(NULL);
	struct ksm_fake_vm *a = vm_new("a", -1, 8192);
	struct ksm_stats st;
	char err[128];
	uint64_t i;

	(void)state_;
	for (i = 0; i < 8192; i++)
		ksm_fake_fill_pages(a, i * PG, 1, 70000 + i);
	add(k, a, 0);
	assert_int_equal(ksm_set_tunable(k, "pages_per_sec", "4000", err,
					 sizeof(err)), 0);
	assert_int_equal(ksm_start(k), 0);
	usleep(500000);
	ksm_stop(k);
	ksm_stats(k, &st);
	printf("[ rate ] 4000 pages/s for 0.5 s: %llu hashed\n",
	       (unsigned long long)st.pages_hashed);
	assert_true(st.pages_hashed >= 1000 && st.pages_hashed <= 3500);
	ksm_destroy(k);
	ksm_fake_vm_destroy(a);
}

static void test_self_check_catches_inconsistency(void **state_)
{
	struct ksm *k = mk(NULL);
	struct ksm_fake_vm *a = vm_new("a", -1, 16), *b = vm_new("b", -1, 16);
	struct ksm_vm_ops ops;
	hv_pstate_t old;
	uint64_t n;
	char err[512];

	(void)state_;
	ksm_fake_fill_pages(a, 0, 1, 5);
	ksm_fake_fill_pages(b, 0, 1, 5);
	add(k, a, 0);
	add(k, b, 0);
	pass(k);
	check(k);
	/* someone else rewrites a's entry behind ksm's back */
	ops = ksm_fake_ops;
	old = ops.pagemap(a, &n)[0];
	assert_true(ops.page_cas(a, 0, old,
				 hv_ps_make(HV_PAGE_PRIVATE, 0, 0)));
	assert_int_equal(ksm_self_check(k, err, sizeof(err)), -EUCLEAN);
	assert_non_null(strstr(err, "frame 0"));
	assert_true(ops.page_cas(a, 0, hv_ps_make(HV_PAGE_PRIVATE, 0, 0), old));
	check(k);
	ksm_destroy(k);
	ksm_fake_vm_destroy(a);
	ksm_fake_vm_destroy(b);
}

/* ------------------------------------------------------- throughput */

static void test_throughput(void **state_)
{
	const uint64_t np = 16384;            /* 64 MiB per VM */
	struct ksm *k = mk(NULL);
	int base = memfd_create("perf-base", MFD_CLOEXEC);
	struct ksm_fake_vm *u = vm_new("u", -1, np);
	struct ksm_fake_vm *a = vm_new("a", base, np), *b = vm_new("b", base, np);
	struct ksm_fake_vm *c = vm_new("c", -1, np), *d = vm_new("d", -1, np);
	struct ksm_stats s0, s1;
	volatile uint64_t sink = 0;
	double t0, t1;
	uint64_t i;

	(void)state_;
	for (i = 0; i < np; i++) {
		ksm_fake_fill_pages(u, i * PG, 1, 1 + i);
		ksm_fake_fill_pages(a, i * PG, 1, 1000000 + i);
		ksm_fake_fill_pages(b, i * PG, 1, 1000000 + i);
		ksm_fake_fill_pages(c, i * PG, 1, 2000000 + i);
		ksm_fake_fill_pages(d, ((i + 7) % np) * PG, 1, 2000000 + i);
	}
	/* raw XXH3 over resident memory */
	t0 = now_s();
	for (i = 0; i < np; i++)
		sink += XXH3_64bits(ksm_fake_hva(u, i * PG), PG);
	t1 = now_s();
	printf("[ perf ] XXH3 on resident memory: %.2f M pages/s\n",
	       (double)np / (t1 - t0) / 1e6);
	/* a full first pass over unique pages: hash + candidate insert */
	add(k, u, 7);
	t0 = now_s();
	pass(k);
	t1 = now_s();
	ksm_stats(k, &s0);
	printf("[ perf ] scan pass, %llu unique pages: %.2f M pages/s\n",
	       (unsigned long long)s0.pages_hashed,
	       (double)s0.pages_hashed / (t1 - t0) / 1e6);
	/* same-GPA merges through the base memfd */
	add(k, a, 1);
	add(k, b, 1);
	t0 = now_s();
	pass(k);
	t1 = now_s();
	ksm_stats(k, &s1);
	printf("[ perf ] same-GPA base merges: %llu pages in %.3f s = %.0f k "
	       "pages/s (pass incl. hashing %llu pages)\n",
	       (unsigned long long)(s1.merges - s0.merges), t1 - t0,
	       (double)(s1.merges - s0.merges) / (t1 - t0) / 1e3,
	       (unsigned long long)(s1.pages_hashed - s0.pages_hashed));
	s0 = s1;
	/* cross-GPA frame merges (shifted by 7 pages: long runs) */
	add(k, c, 2);
	add(k, d, 2);
	t0 = now_s();
	pass(k);
	t1 = now_s();
	ksm_stats(k, &s1);
	printf("[ perf ] cross-GPA frame merges: %llu pages in %.3f s = %.0f k "
	       "pages/s; vmas c=%ld d=%ld; pause p50 %.1f us p99 %.1f us\n",
	       (unsigned long long)(s1.merges - s0.merges), t1 - t0,
	       (double)(s1.merges - s0.merges) / (t1 - t0) / 1e3,
	       ksm_fake_vma_count(c), ksm_fake_vma_count(d),
	       (double)s1.pause_p50_ns / 1e3, (double)s1.pause_p99_ns / 1e3);
	assert_int_equal(s1.merges, 4 * np);
	/* an idle pass after convergence */
	t0 = now_s();
	pass(k);
	t1 = now_s();
	printf("[ perf ] idle pass over %llu pages: %.3f ms\n",
	       (unsigned long long)(5 * np), (t1 - t0) * 1e3);
	check(k);
	(void)sink;
	ksm_destroy(k);
	ksm_fake_vm_destroy(u);
	ksm_fake_vm_destroy(a);
	ksm_fake_vm_destroy(b);
	ksm_fake_vm_destroy(c);
	ksm_fake_vm_destroy(d);
	close(base);
}

/* Self-checks back to back from two threads, the scanner at full speed
 * (sleep_ms 0) over same-GPA and cross-GPA duplicates and a base memfd
 * full of zero pages to sweep: the scanner hands its lock to the waiters
 * that are there at each of its points (throttle, sweep, dirty-log read),
 * not to every one that comes meanwhile (those wait for its next point),
 * so it still converges (0.2-0.6 s here, two of these tests at once; up
 * to 6.4 s, and once 10 s unconverged, while the scanner waited for every
 * waiter or could lose the mutex to the checkers); and every check finds
 * a consistent state at those points. */
struct checker {
	struct ksm *k;
	atomic_bool *stop;
	unsigned n, failed;
	char err[256];
	pthread_t thr;
};

static void *check_loop(void *arg)
{
	struct checker *c = arg;

	while (!atomic_load(c->stop)) {
		char e[256];

		if (ksm_self_check(c->k, e, sizeof(e)) && !c->failed++)
			snprintf(c->err, sizeof(c->err), "%s", e);
		c->n++;
	}
	return NULL;
}

static void test_checks_in_a_loop_leave_the_scanner_room(void **state_)
{
	const uint64_t nb = 8192, nc = 4096;
	struct ksm *k = mk(NULL);
	int base = memfd_create("loop-base", MFD_CLOEXEC);
	struct ksm_fake_vm *a = vm_new("a", base, nb), *b = vm_new("b", base, nb);
	struct ksm_fake_vm *c = vm_new("c", -1, nc), *d = vm_new("d", -1, nc);
	static uint8_t zero[64 * PG];
	enum { NCHK = 2 };
	struct checker ck[NCHK];
	unsigned checks = 0, failed = 0;
	char first[256] = "";
	atomic_bool stop = false;
	struct ksm_stats st;
	char err[128];
	uint64_t i;
	double t0, t;

	(void)state_;
	for (i = 0; i < nb; i++) {
		ksm_fake_fill_pages(a, i * PG, 1, 3000000 + i);
		ksm_fake_fill_pages(b, i * PG, 1, 3000000 + i);
	}
	for (i = 0; i < nc; i++) {
		ksm_fake_fill_pages(c, i * PG, 1, 4000000 + i);
		ksm_fake_fill_pages(d, ((i + 5) % nc) * PG, 1, 4000000 + i);
	}
	/* allocated zero pages nobody maps (the VMs wrote their own copies):
	 * the first pass sweeps them out, a long stretch of its own */
	for (i = 0; i < nb; i += 64)
		assert_int_equal(pwrite(base, zero, sizeof(zero), (off_t)(i * PG)),
				 (ssize_t)sizeof(zero));
	add(k, a, 0);
	add(k, b, 0);
	add(k, c, 1);
	add(k, d, 1);
	assert_int_equal(ksm_set_tunable(k, "sleep_ms", "0", err, sizeof(err)), 0);
	for (i = 0; i < NCHK; i++) {
		ck[i] = (struct checker){ .k = k, .stop = &stop };
		assert_int_equal(pthread_create(&ck[i].thr, NULL, check_loop, &ck[i]), 0);
	}
	assert_int_equal(ksm_start(k), 0);
	t0 = now_s();
	do {
		usleep(10000);
		ksm_stats(k, &st);
		t = now_s() - t0;
	} while (st.pages_sharing < 2 * (nb + nc) && t < 5);
	atomic_store(&stop, true);
	for (i = 0; i < NCHK; i++) {
		pthread_join(ck[i].thr, NULL);
		checks += ck[i].n;
		if (ck[i].failed && !failed++)
			snprintf(first, sizeof(first), "%s", ck[i].err);
	}
	ksm_stop(k);
	printf("[ loop ] %d threads checking back to back: %llu of %llu pages "
	       "shared after %.2f s, %u checks, %u failed, %llu base zero "
	       "pages swept\n", NCHK, (unsigned long long)st.pages_sharing,
	       (unsigned long long)(2 * (nb + nc)), t, checks, failed,
	       (unsigned long long)st.base_zero_reclaimed);
	if (failed)
		fail_msg("%u checks failed, the first: %s", failed, first);
	assert_int_equal(st.pages_sharing, 2 * (nb + nc));
	assert_true(checks >= 20);
	check(k);
	ksm_destroy(k);
	ksm_fake_vm_destroy(a);
	ksm_fake_vm_destroy(b);
	ksm_fake_vm_destroy(c);
	ksm_fake_vm_destroy(d);
	close(base);
}

/* VMs joining and leaving a domain of their own, each time over a base
 * memfd full of zero pages to sweep, while the scanner sweeps at full
 * speed and yields its lock inside the sweep: a domain whose last VM
 * leaves then is freed after its sweep, not under it (ASan would see). */
#define CHURN_PAGES 8192

struct churner {
	struct ksm *k;
	atomic_bool *stop;
	int base;
	unsigned rounds;
};

static void *churn_loop(void *arg)
{
	struct churner *c = arg;
	static uint8_t zero[64 * PG];

	while (!atomic_load(c->stop)) {
		struct ksm_fake_vm *e = vm_new("e", c->base, CHURN_PAGES);
		struct ksm_vm *kv;
		char err[256];

		for (uint64_t i = 0; i < CHURN_PAGES; i += 64)
			if (pwrite(c->base, zero, sizeof(zero), (off_t)(i * PG)) !=
			    (ssize_t)sizeof(zero))
				abort();
		ksm_fake_fill_pages(e, 0, CHURN_PAGES, 0);   /* its own zero copies */
		if (ksm_add_vm(c->k, &ksm_fake_ops, e, 5, &kv, err, sizeof(err))) {
			fprintf(stderr, "churn: add_vm: %s\n", err);
			abort();
		}
		/* gone again at once: often while its domain is swept */
		usleep(c->rounds % 4 * 500);
		ksm_remove_vm(c->k, kv);
		ksm_fake_vm_destroy(e);
		c->rounds++;
	}
	return NULL;
}

static void test_domains_go_while_swept(void **state_)
{
	struct ksm *k = mk(NULL);
	int base = memfd_create("churn-base", MFD_CLOEXEC);
	struct ksm_fake_vm *a = vm_new("a", -1, 4096), *b = vm_new("b", -1, 4096);
	atomic_bool stop = false;
	struct churner ch = { .k = k, .stop = &stop, .base = base };
	struct checker ck = { .k = k, .stop = &stop };
	pthread_t thr;
	char err[128];

	(void)state_;
	for (uint64_t i = 0; i < 4096; i++) {
		ksm_fake_fill_pages(a, i * PG, 1, 5000000 + i);
		ksm_fake_fill_pages(b, i * PG, 1, 5000000 + i);
	}
	add(k, a, 0);
	add(k, b, 0);
	assert_int_equal(ksm_set_tunable(k, "sleep_ms", "0", err, sizeof(err)), 0);
	assert_int_equal(ksm_start(k), 0);
	assert_int_equal(pthread_create(&thr, NULL, churn_loop, &ch), 0);
	assert_int_equal(pthread_create(&ck.thr, NULL, check_loop, &ck), 0);
	usleep(1500000);
	atomic_store(&stop, true);
	pthread_join(thr, NULL);
	pthread_join(ck.thr, NULL);
	ksm_stop(k);
	printf("[ churn ] %u rounds of a VM joining and leaving its domain, "
	       "%u checks (%u failed)\n", ch.rounds, ck.n, ck.failed);
	if (ck.failed)
		fail_msg("a check failed: %s", ck.err);
	assert_true(ch.rounds >= 3);
	check(k);
	ksm_destroy(k);
	ksm_fake_vm_destroy(a);
	ksm_fake_vm_destroy(b);
	close(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dirty_read_interval),
		cmocka_unit_test(test_dirty_guided_and_volatile),
		cmocka_unit_test(test_numa_slots),
		cmocka_unit_test(test_max_sharers),
		cmocka_unit_test(test_tunables),
		cmocka_unit_test(test_stats_json_and_scanner_thread),
		cmocka_unit_test(test_rate_limit),
		cmocka_unit_test(test_self_check_catches_inconsistency),
		cmocka_unit_test(test_throughput),
		cmocka_unit_test(test_checks_in_a_loop_leave_the_scanner_room),
		cmocka_unit_test(test_domains_go_while_swept),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
