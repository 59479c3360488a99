/*
 * test_ksm_race.c - writers racing the merger: zero lost writes.
 *
 * Three fake VMs in one domain (two on a shared base memfd, one anonymous,
 * all with zero maps: ksm_fake_ops_zero, or ksm_fake_ops_wp)
 * each run a "vCPU" thread that writes whole pages from a small set of
 * patterns (so pages keep merging: zero pages, same-GPA base pages, frames)
 * and single words (so they keep unsharing), half of the time on a hot set
 * of 32 pages, and checks the whole page against its shadow copy after
 * every access.  The scanner runs flat out (sleep_ms=1, no volatility
 * skip, small batches: many guarded batches).  A lost write, or a merge of
 * a page that changed between compare and remap, shows up as a mismatch.
 * The self-check runs every second while all this goes on.
 *
 * Three runs: batches guarded by pausing the VMs (5 s); by write-protect
 * (5 s: the writers' stores into a batch's pages wait in the kernel, and
 * must have waited); and, to show the test can fail, the engine broken on
 * purpose (test_unguarded: batches neither protected nor paused), which
 * must lose a write within 8 s.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ksm/ksm.h"
#include "ksm/ksm_fake.h"

#define PG       4096ULL
#define NPAGES   512
#define NVMS     3
#define HOT      32
#define NPAT     8
#define RUN_S    5

struct writer {
	struct ksm_fake_vm *vm;
	uint8_t *shadow;
	uint64_t rng;
	uint64_t ops, mismatches;
	pthread_t thr;
};

static uint8_t pat[NPAT][PG] __attribute__((aligned(64)));
static atomic_bool stop_writers;

static bool ksm_page_zero_for_race(const uint8_t *p)
{
	for (unsigned i = 0; i < PG; i++)
		if (p[i])
			return false;
	return true;
}

static uint64_t xs(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void *writer_fn(void *arg)
{
	struct writer *w = arg;

	while (!atomic_load(&stop_writers)) {
		uint64_t r = xs(&w->rng);
		uint64_t p = (r & 1) ? (r >> 8) % HOT : (r >> 8) % NPAGES;
		unsigned act = (unsigned)((r >> 40) % 100);
		uint8_t *hva = ksm_fake_hva(w->vm, p * PG);
		uint8_t *sh = w->shadow + p * PG;

		ksm_fake_vcpu_enter(w->vm);
		if (act < 60) {
			const uint8_t *src = pat[(r >> 48) % NPAT];

			memcpy(hva, src, PG);
			memcpy(sh, src, PG);
			ksm_fake_mark_dirty(w->vm, p * PG, PG);
		} else if (act < 85) {
			uint64_t off = ((r >> 20) % (PG / 8)) * 8, v = xs(&w->rng);

			memcpy(hva + off, &v, 8);
			memcpy(sh + off, &v, 8);
			ksm_fake_mark_dirty(w->vm, p * PG + off, 8);
		}
		if (memcmp(hva, sh, PG) != 0) {
			if (w->mismatches < 3)   /* what it reads instead */
				fprintf(stderr, "lost: page %llu (state %u) "
					"reads %s\n", (unsigned long long)p,
					hv_ps_state(ksm_fake_page_state(w->vm,
									p * PG)),
					ksm_page_zero_for_race(hva) ? "zeros" :
					"other bytes");
			w->mismatches++;
			memcpy(sh, hva, PG);   /* count each loss once */
		}
		ksm_fake_vcpu_exit(w->vm);
		if (++w->ops % 256 == 0)
			usleep(100);
	}
	return NULL;
}

enum guard { G_PAUSE, G_WP, G_NONE };

static unsigned run_race(enum guard g, struct ksm_stats *st, uint64_t *opsp)
{
	struct ksm_fake_range r = { 0, NPAGES * PG };
	struct writer w[NVMS];
	struct ksm_config cfg;
	struct ksm *k;
	char err[512];
	int base = memfd_create("race-base", MFD_CLOEXEC);
	uint64_t lost = 0, ops = 0, i;
	unsigned v, s;

	for (i = 0; i < NPAT; i++)
		ksm_fake_pattern(pat[i], i);   /* pattern 0 is the zero page */
	ksm_config_default(&cfg);
	cfg.sleep_ms = 1;
	cfg.volatile_passes = 0;
	cfg.batch_pages = 32;
	cfg.write_protect = g != G_PAUSE;
	cfg.test_unguarded = g == G_NONE;
	assert_int_equal(ksm_create(&cfg, &k, err, sizeof(err)), 0);
	for (v = 0; v < NVMS; v++) {
		struct ksm_vm *kv;

		memset(&w[v], 0, sizeof(w[v]));
		assert_int_equal(ksm_fake_vm_create("race", v < 2 ? base : -1,
						    &r, 1, &w[v].vm), 0);
		if (g != G_PAUSE &&
		    ksm_fake_vm_enable_wp(w[v].vm, err, sizeof(err)) != 0) {
			print_message("[  SKIPPED ] no write-protect: %s\n", err);
			skip();
		}
		w[v].shadow = calloc(NPAGES, PG);
		assert_non_null(w[v].shadow);
		w[v].rng = 0x9e3779b97f4a7c15ULL * (v + 1);
		/* a starting image with plenty of duplicates */
		for (i = 0; i < NPAGES; i++) {
			ksm_fake_write(w[v].vm, i * PG, pat[i % NPAT], PG);
			memcpy(w[v].shadow + i * PG, pat[i % NPAT], PG);
		}
		assert_int_equal(ksm_add_vm(k, g == G_PAUSE ? &ksm_fake_ops_zero :
					    &ksm_fake_ops_wp, w[v].vm, 0, &kv,
					    err, sizeof(err)), 0);
	}
	atomic_store(&stop_writers, false);
	for (v = 0; v < NVMS; v++)
		assert_int_equal(pthread_create(&w[v].thr, NULL, writer_fn,
						&w[v]), 0);
	assert_int_equal(ksm_start(k), 0);
	for (s = 0; s < (g == G_NONE ? 80 : RUN_S); s++) {
		if (g == G_NONE) {   /* until the first loss */
			usleep(100000);
			for (v = 0; v < NVMS && !w[v].mismatches; v++)
				;
			if (v < NVMS)
				break;
			continue;
		}
		sleep(1);
		if (ksm_self_check(k, err, sizeof(err)) != 0) {
			fprintf(stderr, "self-check at %us: %s\n", s, err);
			fail();
		}
	}
	atomic_store(&stop_writers, true);
	for (v = 0; v < NVMS; v++) {
		pthread_join(w[v].thr, NULL);
		lost += w[v].mismatches;
		ops += w[v].ops;
	}
	ksm_stop(k);
	assert_int_equal(ksm_scan_pass(k), 0);   /* settle the last writes */
	for (v = 0; v < NVMS; v++)
		for (i = 0; i < NPAGES; i++)
			if (memcmp(ksm_fake_hva(w[v].vm, i * PG),
				   w[v].shadow + i * PG, PG) != 0)
				lost++;
	ksm_stats(k, st);
	print_message("[ race ] %s: %llu guest ops, %llu lost; merges %llu "
		      "unmerges %llu races caught %llu zero %llu base %llu "
		      "sharing %llu; %llu pauses p50 %.1f us p99 %.1f us; %llu "
		      "write-protected batches, %llu writes waited (stall p99 "
		      "%.1f us)\n", g == G_PAUSE ? "pause" : g == G_WP ?
		      "write-protect" : "unguarded (broken on purpose)",
		      (unsigned long long)ops, (unsigned long long)lost,
		      (unsigned long long)st->merges,
		      (unsigned long long)st->unmerges,
		      (unsigned long long)st->merge_races,
		      (unsigned long long)st->zero_pages,
		      (unsigned long long)st->base_pages,
		      (unsigned long long)st->pages_sharing,
		      (unsigned long long)st->pauses,
		      (double)st->pause_p50_ns / 1e3,
		      (double)st->pause_p99_ns / 1e3,
		      (unsigned long long)st->wp_batches,
		      (unsigned long long)st->wp_waits,
		      (double)st->stall_p99_ns / 1e3);
	if (g != G_NONE && ksm_self_check(k, err, sizeof(err)) != 0) {
		fprintf(stderr, "self-check: %s\n", err);
		fail();
	}
	ksm_destroy(k);
	for (v = 0; v < NVMS; v++) {
		ksm_fake_vm_destroy(w[v].vm);
		free(w[v].shadow);
	}
	close(base);
	*opsp = ops;
	return (unsigned)lost;
}

static void writers_race_paused_merger(void **state)
{
	struct ksm_stats st;
	uint64_t ops;

	(void)state;
	assert_int_equal(run_race(G_PAUSE, &st, &ops), 0);
	assert_true(st.merges > 1000);
	assert_true(st.unmerges > 100);
	assert_true(st.pauses > 100);
	assert_int_equal(st.wp_batches, 0);
}

static void writers_race_write_protected_merger(void **state)
{
	struct ksm_stats st;
	uint64_t ops;

	(void)state;
	assert_int_equal(run_race(G_WP, &st, &ops), 0);
	assert_true(st.merges > 1000);
	assert_true(st.unmerges > 100);
	assert_true(st.wp_batches > 100);
	assert_true(st.wp_waits > 0);      /* the race really was run */
	assert_int_equal(st.pauses, 0);
}

static void unguarded_merger_loses_writes(void **state)
{
	struct ksm_stats st;
	uint64_t ops;

	(void)state;
	assert_true(run_race(G_NONE, &st, &ops) > 0);
}

/* A VM that cannot write-protect (here: write-protect not enabled on the
 * fake) is paused instead, once per batch, not once per run. */
static void fallback_pauses_once_per_batch(void **state)
{
	struct ksm_fake_range r = { 0, NPAGES * PG };
	struct ksm_fake_vm *vm[2];
	struct ksm_stats st, vs;
	struct ksm_vm *kv[2];
	struct ksm_config cfg;
	struct ksm *k;
	char err[256];
	int base = memfd_create("race-fb", MFD_CLOEXEC);

	(void)state;
	ksm_config_default(&cfg);
	cfg.dirty_ms = 0;
	assert_true(cfg.write_protect);
	assert_int_equal(ksm_create(&cfg, &k, err, sizeof(err)), 0);
	for (unsigned v = 0; v < 2; v++) {
		assert_int_equal(ksm_fake_vm_create("fb", base, &r, 1, &vm[v]), 0);
		/* every other page equal across the VMs: many short runs */
		for (unsigned i = 0; i < NPAGES; i++)
			ksm_fake_fill_pages(vm[v], i * PG, 1,
					    i % 2 ? 1000 + i : 5000 + i * 2 + v);
		assert_int_equal(ksm_add_vm(k, &ksm_fake_ops_wp, vm[v], 0,
					    &kv[v], err, sizeof(err)), 0);
	}
	assert_int_equal(ksm_scan_pass(k), 0);
	ksm_stats(k, &st);
	ksm_vm_stats(kv[0], &vs);
	assert_true(st.merges >= NPAGES);
	assert_int_equal(st.wp_batches, 0);
	assert_true(st.pauses > 0);
	assert_true(vs.pauses <= st.pauses);   /* not one per run */
	ksm_destroy(k);
	for (unsigned v = 0; v < 2; v++)
		ksm_fake_vm_destroy(vm[v]);
	close(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(writers_race_paused_merger),
		cmocka_unit_test(writers_race_write_protected_merger),
		cmocka_unit_test(unguarded_merger_loses_writes),
		cmocka_unit_test(fallback_pauses_once_per_batch),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
