/*
 * test_ksm_race.c - writers racing the merger for 10 s: zero lost writes.
 *
 * Three fake VMs in one domain (two on a shared base memfd, one anonymous)
 * each run a "vCPU" thread that writes whole pages from a small set of
 * patterns (so pages keep merging: zero pages, same-GPA base pages, frames)
 * and single words (so they keep unsharing), half of the time on a hot set
 * of 32 pages, and checks the whole page against its shadow copy after
 * every access.  The scanner runs flat out (sleep_ms=1, no volatility
 * skip, small batches: many pauses).  A lost write, or a merge of a page
 * that changed between compare and remap, shows up as a mismatch.  The
 * self-check runs every second while all this goes on.
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
#define RUN_S    10

struct writer {
	struct ksm_fake_vm *vm;
	uint8_t *shadow;
	uint64_t rng;
	uint64_t ops, mismatches;
	pthread_t thr;
};

static uint8_t pat[NPAT][PG] __attribute__((aligned(64)));
static atomic_bool stop_writers;

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
			w->mismatches++;
			memcpy(sh, hva, PG);   /* count each loss once */
		}
		ksm_fake_vcpu_exit(w->vm);
		if (++w->ops % 256 == 0)
			usleep(100);
	}
	return NULL;
}

static void test_writers_race_merger(void **state_)
{
	struct ksm_fake_range r = { 0, NPAGES * PG };
	struct writer w[NVMS];
	struct ksm_config cfg;
	struct ksm_stats st;
	struct ksm *k;
	char err[512];
	int base = memfd_create("race-base", MFD_CLOEXEC);
	uint64_t lost = 0, ops = 0, i;
	unsigned v, s;

	(void)state_;
	for (i = 0; i < NPAT; i++)
		ksm_fake_pattern(pat[i], i);   /* pattern 0 is the zero page */
	ksm_config_default(&cfg);
	cfg.sleep_ms = 1;
	cfg.volatile_passes = 0;
	cfg.batch_pages = 32;
	assert_int_equal(ksm_create(&cfg, &k, err, sizeof(err)), 0);
	for (v = 0; v < NVMS; v++) {
		struct ksm_vm *kv;

		memset(&w[v], 0, sizeof(w[v]));
		assert_int_equal(ksm_fake_vm_create("race", v < 2 ? base : -1,
						    &r, 1, &w[v].vm), 0);
		w[v].shadow = calloc(NPAGES, PG);
		assert_non_null(w[v].shadow);
		w[v].rng = 0x9e3779b97f4a7c15ULL * (v + 1);
		/* a starting image with plenty of duplicates */
		for (i = 0; i < NPAGES; i++) {
			ksm_fake_write(w[v].vm, i * PG, pat[i % NPAT], PG);
			memcpy(w[v].shadow + i * PG, pat[i % NPAT], PG);
		}
		assert_int_equal(ksm_add_vm(k, &ksm_fake_ops, w[v].vm, 0, &kv,
					    err, sizeof(err)), 0);
	}
	atomic_store(&stop_writers, false);
	for (v = 0; v < NVMS; v++)
		assert_int_equal(pthread_create(&w[v].thr, NULL, writer_fn,
						&w[v]), 0);
	assert_int_equal(ksm_start(k), 0);
	for (s = 0; s < RUN_S; s++) {
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
	ksm_stats(k, &st);
	printf("[ race ] %llu guest ops, %llu lost; merges %llu unmerges %llu "
	       "races caught %llu zero %llu base %llu sharing %llu; %llu pauses "
	       "p50 %.1f us p99 %.1f us\n",
	       (unsigned long long)ops, (unsigned long long)lost,
	       (unsigned long long)st.merges, (unsigned long long)st.unmerges,
	       (unsigned long long)st.merge_races,
	       (unsigned long long)st.zero_pages,
	       (unsigned long long)st.base_pages,
	       (unsigned long long)st.pages_sharing,
	       (unsigned long long)st.pauses, (double)st.pause_p50_ns / 1e3,
	       (double)st.pause_p99_ns / 1e3);
	assert_int_equal(lost, 0);
	assert_true(st.merges > 1000);
	assert_true(st.unmerges > 100);
	assert_true(st.pauses > 100);
	if (ksm_self_check(k, err, sizeof(err)) != 0) {
		fprintf(stderr, "self-check: %s\n", err);
		fail();
	}
	ksm_destroy(k);
	for (v = 0; v < NVMS; v++) {
		ksm_fake_vm_destroy(w[v].vm);
		free(w[v].shadow);
	}
	close(base);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_writers_race_merger),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
