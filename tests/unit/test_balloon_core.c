/*
 * test_balloon_core.c - the guest balloon core against a fake OS and the
 * real host device model.
 *
 * Owns: cmocka tests of balloon-driver/ end to end without KVM: a fake OS
 * (a page allocator over the fake VM's RAM, a fake clock, stats) whose
 * doorbell calls balloon-host's request path directly, so every ring the
 * core builds is validated by the same code that serves real guests.
 *
 * Fake VM: 64 MiB of RAM at GPA 0; the first 2 MiB are the "image"
 * (allocated and flagged DEVICE, as in the micro guest).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "balloon-driver/balloon.h"
#include "balloon-host/bh_internal.h"

#define MiB     (1024ULL * 1024)
#define PG      4096ULL
#define RAM     (64 * MiB)
#define NPAGES  (RAM / PG)
#define IMAGE   (2 * MiB / PG)
#define MS      1000000ULL

struct fos {
	struct bh_fake *f;
	struct balloon_host *dev;
	uint8_t *ram;
	uint8_t used[NPAGES];
	uint64_t nfree;
	uint64_t cursor;
	bool no_huge;          /* 2 MiB allocations fail */
	uint64_t fail_after;   /* allocations fail once nfree <= this */
	bool detach;           /* the doorbell fails (-ENODEV) */
	uint64_t busy_registers; /* REGISTERs that find the config page BUSY */
	uint64_t doorbells;
	struct balloon b;
};

static void *os_alloc(void *ctx, unsigned order)
{
	struct fos *o = ctx;
	uint64_t n = order ? BALLOON_HUGE_PAGES : 1;
	if (o->nfree < n || o->nfree - n < o->fail_after)
		return NULL;
	if (order) {
		if (o->no_huge)
			return NULL;
		for (uint64_t p = 0; p < NPAGES; p += BALLOON_HUGE_PAGES) {
			uint64_t k;
			for (k = 0; k < BALLOON_HUGE_PAGES && !o->used[p + k]; k++)
				;
			if (k < BALLOON_HUGE_PAGES)
				continue;
			memset(&o->used[p], 1, BALLOON_HUGE_PAGES);
			o->nfree -= BALLOON_HUGE_PAGES;
			return o->ram + p * PG;
		}
		return NULL;
	}
	for (uint64_t i = 0; i < NPAGES; i++) {
		uint64_t p = (o->cursor + i) % NPAGES;
		if (!o->used[p]) {
			o->used[p] = 1;
			o->nfree--;
			o->cursor = p + 1;
			return o->ram + p * PG;
		}
	}
	return NULL;
}

static void os_free(void *ctx, void *va, unsigned order)
{
	struct fos *o = ctx;
	uint64_t p = (uint64_t)((uint8_t *)va - o->ram) / PG;
	uint64_t n = order ? BALLOON_HUGE_PAGES : 1;
	assert_true(p + n <= NPAGES);
	for (uint64_t k = 0; k < n; k++) {
		assert_int_equal(o->used[p + k], 1);   /* no double free */
		o->used[p + k] = 0;
	}
	o->nfree += n;
}

static uint64_t os_va_to_pfn(void *ctx, void *va)
{
	struct fos *o = ctx;
	return (uint64_t)((uint8_t *)va - o->ram) / PG;
}

static void *os_pfn_to_va(void *ctx, uint64_t pfn)
{
	struct fos *o = ctx;
	assert_true(pfn < NPAGES);
	return o->ram + pfn * PG;
}

static uint64_t os_avail(void *ctx)
{
	return ((struct fos *)ctx)->nfree;
}

static void os_stats(void *ctx, struct balloon_stats *st)
{
	struct fos *o = ctx;
	st->valid = BALLOON_STAT_MEM_TOTAL | BALLOON_STAT_MEM_FREE | BALLOON_STAT_PSI_SOME;
	st->mem_total = RAM;
	st->mem_free = o->nfree * PG;
	st->psi_some_avg10 = 1234;
}

static int64_t os_doorbell(void *ctx, uint64_t op, uint64_t a1, uint64_t a2,
			   uint64_t a3, uint64_t a4, uint64_t *ret2)
{
	struct fos *o = ctx;
	uint64_t a[5] = { op, a1, a2, a3, a4 };
	o->doorbells++;
	if (o->detach)
		return -BALLOON_ENODEV;
	if (op == BALLOON_OP_REGISTER && o->busy_registers) {
		/* another host thread (ksm) holds the page for a moment: the
		 * real device answers -EBUSY; 1 ms passes meanwhile */
		uint64_t pfn = a1 / PG;
		hv_pstate_t old = bh_fake_get(o->f, pfn);
		bh_fake_set(o->f, pfn, old | HV_PF_BUSY);
		int64_t r = balloon_host_hypercall(o->dev, a, ret2);
		bh_fake_set(o->f, pfn, old);
		bh_fake_advance(o->f, MS);
		o->busy_registers--;
		return r;
	}
	return balloon_host_hypercall(o->dev, a, ret2);
}

static uint64_t os_now(void *ctx)
{
	struct fos *o = ctx;
	struct bh_backend be;
	bh_fake_backend(o->f, &be);
	return be.now_ns(be.ctx);
}

static void quiet_log(void *ctx, const char *line)
{
	(void)ctx;
	(void)line;
}

static const struct balloon_os fos_ops = {
	.alloc = os_alloc, .free = os_free, .va_to_pfn = os_va_to_pfn,
	.pfn_to_va = os_pfn_to_va, .avail_pages = os_avail,
	.read_stats = os_stats, .doorbell = os_doorbell, .now_ns = os_now,
};

static struct fos *make_fos_busy(uint64_t floor_pages, uint64_t busy,
				  int *start_rc)
{
	struct bh_fake_range r = { 0, RAM };
	struct bh_backend be;
	struct balloon_os os = fos_ops;
	struct balloon_params p = { .total_pages = NPAGES, .floor_pages = floor_pages };
	struct fos *o = calloc(1, sizeof(*o));
	assert_non_null(o);
	o->f = bh_fake_create(&r, 1, false);
	assert_non_null(o->f);
	bh_fake_backend(o->f, &be);
	struct balloon_host_config hc = { .log = quiet_log };
	o->dev = balloon_host_create(&be, &hc);
	assert_non_null(o->dev);
	o->ram = bh_fake_hva(o->f, 0);
	o->nfree = NPAGES;
	for (uint64_t pfn = 0; pfn < IMAGE; pfn++) {
		o->used[pfn] = 1;
		bh_fake_set(o->f, pfn, hv_ps_make(HV_PAGE_PRIVATE, HV_PF_DEVICE, 0));
	}
	o->nfree -= IMAGE;
	o->busy_registers = busy;
	os.ctx = o;
	assert_int_equal(balloon_init(&o->b, &os, &p), 0);
	*start_rc = balloon_start(&o->b);
	return o;
}

static struct fos *make_fos(uint64_t floor_pages)
{
	int rc;
	struct fos *o = make_fos_busy(floor_pages, 0, &rc);
	assert_int_equal(rc, 0);
	return o;
}

static int setup(void **state) { *state = make_fos(1024); return 0; }
static int teardown(void **state)
{
	struct fos *o = *state;
	balloon_stop(&o->b);
	/* everything went back: the OS has all its pages, the host holds none */
	assert_int_equal(o->nfree, NPAGES - IMAGE);
	assert_int_equal(bh_fake_count_state(o->f, HV_PAGE_BALLOONED), 0);
	balloon_host_destroy(o->dev);
	bh_fake_destroy(o->f);
	free(o);
	return 0;
}

static struct balloon_info info(struct fos *o)
{
	struct balloon_info i;
	balloon_get_info(&o->b, &i);
	return i;
}

static struct balloon_host_stats hstats(struct fos *o)
{
	struct balloon_host_stats s;
	balloon_host_stats(o->dev, &s);
	return s;
}

/* Polls until the core says it has nothing to do right now. */
static uint32_t settle(struct fos *o)
{
	uint32_t ms;
	for (int i = 0; i < 1000; i++)
		if ((ms = balloon_poll(&o->b)) != 0)
			return ms;
	fail_msg("balloon_poll never settled");
	return 0;
}

static void check_agree(struct fos *o)
{
	struct balloon_info i = info(o);
	assert_int_equal(hstats(o).size_bytes, i.balloon_pages * PG);
	assert_int_equal(bh_fake_count_state(o->f, HV_PAGE_BALLOONED), i.balloon_pages);
	assert_int_equal(bh_fake_count_flag(o->f, HV_PF_BUSY), 0);
}

/* ------------------------------------------------------------------ tests */

/* A REGISTER that meets a page the host holds for a moment (ksm took the
 * freshly zeroed config page into a zero-page batch) is asked again: the
 * guest must not end up without a balloon (a CI run saw it).  A host that
 * stays busy is given up on after 2 s, not waited for forever. */
static void test_register_waits_out_busy(void **state)
{
	(void)state;
	int rc;
	struct fos *o = make_fos_busy(1024, 5, &rc);
	assert_int_equal(rc, 0);
	assert_int_equal(info(o).registered, 1);
	assert_int_equal(info(o).register_busy, 5);
	assert_int_equal(o->busy_registers, 0);
	assert_int_equal(hstats(o).busy, 5);
	assert_int_equal(balloon_host_set_target(o->dev, 600 * PG), 0);
	settle(o);
	assert_int_equal(info(o).balloon_pages, 600);
	check_agree(o);
	teardown((void **)&o);

	o = make_fos_busy(1024, 1000000, &rc);
	assert_int_equal(rc, -BALLOON_EBUSY);
	assert_int_equal(info(o).registered, 0);
	/* 1 ms a try on the fake clock: about 2000 tries, not 10^6 */
	assert_true(info(o).register_busy >= 1900);
	assert_true(info(o).register_busy <= 2100);
	/* the config and ring pages went back to the OS */
	assert_int_equal(o->nfree, NPAGES - IMAGE);
	balloon_host_destroy(o->dev);
	bh_fake_destroy(o->f);
	free(o);
}

static void test_init_checks(void **state)
{
	(void)state;
	struct balloon b;
	struct balloon_os os = fos_ops;
	struct balloon_params p = { .total_pages = 0 };
	assert_int_equal(balloon_init(&b, &os, &p), -BALLOON_EINVAL);
	p.total_pages = 100;
	os.doorbell = NULL;
	assert_int_equal(balloon_init(&b, &os, &p), -BALLOON_EINVAL);
	os = fos_ops;
	assert_int_equal(balloon_init(&b, &os, &p), 0);
	/* default floor: 16 MiB, but at most half the RAM */
	assert_int_equal(b.c.floor_pages, 50);
	p.total_pages = 1 << 20;
	assert_int_equal(balloon_init(&b, &os, &p), 0);
	assert_int_equal(b.c.floor_pages, (1 << 20) / 16);
	balloon_stop(&b);     /* never started: harmless */
}

static void test_inflate_2m_then_4k(void **state)
{
	struct fos *o = *state;
	uint64_t target = 5 * BALLOON_HUGE_PAGES + 3;
	struct balloon_info i;
	assert_int_equal(balloon_host_set_target(o->dev, target * PG), 0);
	assert_int_equal(settle(o), 100);
	i = info(o);
	assert_int_equal(i.balloon_pages, target);
	assert_int_equal(i.blocks_2m, 5);
	assert_int_equal(i.pages_4k, 3);
	assert_int_equal(i.refused, 0);
	assert_true(hstats(o).target_reached);
	/* a handful of doorbells, not one per page */
	assert_true(o->doorbells < 10);
	check_agree(o);
}

static void test_fragmented_4k_only(void **state)
{
	struct fos *o = *state;
	o->no_huge = true;
	assert_int_equal(balloon_host_set_target(o->dev, 3000 * PG), 0);
	settle(o);
	assert_int_equal(info(o).pages_4k, 3000);
	assert_int_equal(info(o).blocks_2m, 0);
	assert_true(info(o).alloc_fail_2m >= 1);
	/* 3000 pages in 512-entry rings: 6 inflate doorbells */
	assert_true(o->doorbells <= 1 + 6 + 1);
	check_agree(o);
}

static void test_deflate_and_overshoot(void **state)
{
	struct fos *o = *state;
	uint64_t free0 = o->nfree;
	balloon_host_set_target(o->dev, 1024 * PG);
	settle(o);
	assert_int_equal(info(o).blocks_2m, 2);
	/* 1000: one block out, then 488 pages of 4 KiB back in */
	balloon_host_set_target(o->dev, 1000 * PG);
	settle(o);
	assert_int_equal(info(o).balloon_pages, 1000);
	assert_int_equal(info(o).blocks_2m, 1);
	assert_int_equal(info(o).pages_4k, 488);
	check_agree(o);
	/* 100: the 4 KiB pages go first while less than 2 MiB is to go */
	balloon_host_set_target(o->dev, 100 * PG);
	settle(o);
	assert_int_equal(info(o).balloon_pages, 100);
	balloon_host_set_target(o->dev, 0);
	settle(o);
	assert_int_equal(info(o).balloon_pages, 0);
	/* only the spare tracking pages are still held (one per kind at most) */
	assert_true(free0 - o->nfree <= 2);
	/* deflated pages read as zero */
	for (uint64_t p = IMAGE; p < NPAGES; p++)
		if (!o->used[p])
			assert_int_equal(o->ram[p * PG], 0);
	check_agree(o);
}

static void test_floor(void **state)
{
	struct fos *o = *state;
	struct balloon_info i;
	uint32_t ms;
	balloon_host_set_target(o->dev, (NPAGES - IMAGE) * PG);
	ms = settle(o);
	i = info(o);
	assert_true(o->nfree >= 1024);              /* the floor holds */
	assert_true(o->nfree < 1024 + 520);         /* and it got close */
	assert_true(i.status & BALLOON_GST_AT_FLOOR);
	assert_int_equal(ms, 100);
	assert_false(hstats(o).target_reached);
	assert_true(hstats(o).guest_status & BALLOON_GST_AT_FLOOR);
	/* polling again during the backoff does no work */
	uint64_t db = o->doorbells;
	settle(o);
	assert_int_equal(o->doorbells, db);
	check_agree(o);
}

static void test_pressure(void **state)
{
	struct fos *o = *state;
	uint64_t got = 0, want = 6000, held, pressure_calls = 0;
	void **pages = calloc(NPAGES, sizeof(void *));
	assert_non_null(pages);
	balloon_host_set_target(o->dev, 12000 * PG);
	settle(o);
	assert_int_equal(info(o).balloon_pages, 12000);
	/* a workload allocates 6000 pages one by one; its allocator asks the
	 * balloon before it ever fails */
	while (got < want) {
		if ((pages[got] = os_alloc(o, 0))) {
			got++;
			continue;
		}
		assert_true(balloon_deflate_for_pressure(&o->b, 1) > 0);
		pressure_calls++;
	}
	assert_int_equal(got, want);
	assert_true(info(o).pressure_events > 0);
	/* each call gives at least 2 MiB back: few calls, few exits */
	assert_true(pressure_calls <= 5);
	assert_true(info(o).status & BALLOON_GST_PRESSURE);
	check_agree(o);
	/* no re-inflation during the holdoff, even though the target says so */
	held = info(o).balloon_pages;
	bh_fake_advance(o->f, 100 * MS);
	settle(o);
	assert_true(info(o).balloon_pages <= held);
	/* free memory below 7/8 of the floor: polling deflates back to it */
	while (o->nfree > 500)
		assert_non_null(pages[got++] = os_alloc(o, 0));
	settle(o);
	assert_true(o->nfree >= 1024);
	assert_true(hstats(o).guest_status & BALLOON_GST_PRESSURE);
	check_agree(o);
	/* after the holdoff, with the workload gone, the balloon refills */
	while (got)
		os_free(o, pages[--got], 0);
	free(pages);
	bh_fake_advance(o->f, 6000 * MS);
	settle(o);
	assert_int_equal(info(o).balloon_pages, 12000);
	check_agree(o);
}

static void test_stats(void **state)
{
	struct fos *o = *state;
	struct balloon_host_stats s;
	balloon_host_set_stats_period(o->dev, 1000);
	settle(o);
	assert_int_equal(hstats(o).stats_updates, 0);
	bh_fake_advance(o->f, 1000 * MS);
	settle(o);
	s = hstats(o);
	assert_int_equal(s.stats_updates, 1);
	assert_int_equal(s.guest.mem_total, RAM);
	assert_int_equal(s.guest.psi_some_avg10, 1234);
	assert_true(s.guest.valid & BALLOON_STAT_MEM_FREE);
	/* on request */
	balloon_host_request_stats(o->dev);
	settle(o);
	assert_int_equal(hstats(o).stats_updates, 2);
	/* the sleep hint respects the next stats time */
	bh_fake_advance(o->f, 950 * MS);
	assert_true(balloon_poll(&o->b) <= 50);
	assert_int_equal(info(o).stats_sent, 2);
}

static void test_reporting(void **state)
{
	struct fos *o = *state;
	struct balloon_range r[2] = { { 4096, 1024 }, { 9000, 3 } };   /* 2x2M + 3x4K */
	uint64_t db;
	memset(o->ram + 4096 * PG, 0x77, PG);
	assert_int_equal(balloon_report(&o->b, r, 2), -BALLOON_EOPNOTSUPP);
	balloon_host_set_reporting(o->dev, true);
	settle(o);
	assert_true(balloon_reporting_enabled(&o->b));
	db = o->doorbells;
	assert_int_equal(balloon_report(&o->b, r, 2), 0);
	assert_int_equal(o->doorbells, db + 1);
	assert_int_equal(info(o).reported, 1027);
	assert_int_equal(hstats(o).reported_pages, 1027);
	assert_int_equal(o->ram[4096 * PG], 0);
	assert_int_equal(bh_fake_count_state(o->f, HV_PAGE_ZERO), 1027);
	/* the host switches it off again */
	balloon_host_set_reporting(o->dev, false);
	assert_int_equal(balloon_report(&o->b, r, 2), -BALLOON_EOPNOTSUPP);
}

static void test_refused_pages_go_back(void **state)
{
	struct fos *o = *state;
	/* the OS hands out pages the host will not take (DEVICE) */
	for (uint64_t p = 1000; p < 1100; p++)
		bh_fake_set(o->f, p, hv_ps_make(HV_PAGE_PRIVATE, HV_PF_DEVICE, 0));
	o->no_huge = true;
	o->cursor = 1000;
	balloon_host_set_target(o->dev, 300 * PG);
	settle(o);
	bh_fake_advance(o->f, 2000 * MS);     /* past the backoff */
	settle(o);
	assert_int_equal(info(o).balloon_pages, 300);
	assert_true(info(o).refused >= 99);    /* 100 minus a tracking page */
	/* the refused pages were freed back, not leaked (a tracking page of
	 * the core's own may sit there) */
	unsigned still = 0;
	for (uint64_t p = 1000; p < 1100; p++)
		still += o->used[p];
	assert_true(still <= 1);
	check_agree(o);
	for (uint64_t p = 1000; p < 1100; p++)
		bh_fake_set(o->f, p, 0);
}

static void test_host_gone(void **state)
{
	struct fos *o = *state;
	balloon_host_set_target(o->dev, 2000 * PG);
	settle(o);
	assert_int_equal(info(o).balloon_pages, 2000);
	/* the doorbell starts failing: inflation stops, pages go back */
	o->detach = true;
	balloon_host_set_target(o->dev, 4000 * PG);
	settle(o);
	assert_int_equal(info(o).balloon_pages, 2000);
	assert_true(info(o).doorbell_errors > 0);
	/* a normal deflate keeps what the host did not confirm ... */
	balloon_host_set_target(o->dev, 0);
	settle(o);
	assert_int_equal(info(o).balloon_pages, 2000);
	/* ... pressure does not: the OS's need wins */
	assert_int_equal(balloon_deflate_for_pressure(&o->b, 2000), 2000);
	assert_int_equal(info(o).forced, 2000);
	o->detach = false;
	/* the host still counts them; UNREGISTER in teardown makes it forget */
	assert_int_equal(hstats(o).size_bytes, 2000 * PG);
}

static void test_two_instances(void **state)
{
	(void)state;
	struct fos *a = make_fos(1024), *b = make_fos(2048);
	void *sa = a, *sb = b;
	balloon_host_set_target(a->dev, 700 * PG);
	balloon_host_set_target(b->dev, 1500 * PG);
	for (int i = 0; i < 10; i++) {
		balloon_poll(&a->b);
		balloon_poll(&b->b);
	}
	assert_int_equal(info(a).balloon_pages, 700);
	assert_int_equal(info(b).balloon_pages, 1500);
	teardown(&sa);
	teardown(&sb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_checks),
		cmocka_unit_test_setup_teardown(test_inflate_2m_then_4k, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fragmented_4k_only, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deflate_and_overshoot, setup, teardown),
		cmocka_unit_test_setup_teardown(test_floor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pressure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reporting, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_pages_go_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_host_gone, setup, teardown),
		cmocka_unit_test(test_two_instances),
		cmocka_unit_test(test_register_waits_out_busy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
