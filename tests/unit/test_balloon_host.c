/*
 * test_balloon_host.c - the balloon device model against hostile requests.
 *
 * Owns: cmocka tests of balloon-host/ over the fake backend (no KVM): every
 * malformed request is refused with the right status, counted under the
 * right reason and leaves the page-state map consistent; the good paths
 * (inflate, deflate, report, stats, target) do what the protocol says.
 *
 * The fake VM: RAM [0, 33 MiB) and [4 GiB, 4 GiB + 8 MiB), so there is a
 * gap, the PCI hole and a range end that a 2 MiB entry can straddle.  The
 * first 1 MiB is flagged DEVICE, as hv-core flags the micro guest's low
 * pages.  Config page at 16 MiB, ring (one page) right after it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "balloon-host/bh_internal.h"

#define MiB      (1024ULL * 1024)
#define GiB      (1024ULL * MiB)
#define PG       4096ULL
#define R0_LEN   (33 * MiB)
#define R1_GPA   (4 * GiB)
#define R1_LEN   (8 * MiB)
#define CFG_GPA  (16 * MiB)
#define RING_GPA (16 * MiB + PG)

struct env {
	struct bh_fake *f;
	struct balloon_host *dev;
	volatile uint64_t *ring;
	unsigned log_lines;
	char last_log[256];
	unsigned released;
	uint64_t released_gpa;
	hv_pstate_t released_old;
};

static void log_cb(void *ctx, const char *line)
{
	struct env *e = ctx;
	e->log_lines++;
	snprintf(e->last_log, sizeof(e->last_log), "%s", line);
}

static void release_cb(void *ctx, uint64_t gpa, hv_pstate_t old)
{
	struct env *e = ctx;
	e->released++;
	e->released_gpa = gpa;
	e->released_old = old;
}

static int64_t hc(struct env *e, uint64_t op, uint64_t a1, uint64_t a2,
		  uint64_t a3, uint64_t a4, uint64_t *ret2)
{
	uint64_t a[5] = { op, a1, a2, a3, a4 }, r2;
	int64_t r = balloon_host_hypercall(e->dev, a, &r2);
	if (ret2)
		*ret2 = r2;
	return r;
}

static struct env *make_env(bool base, bool hook)
{
	struct bh_fake_range r[2] = { { 0, R0_LEN }, { R1_GPA, R1_LEN } };
	struct balloon_host_config cfg = { 0 };
	struct bh_backend be;
	struct env *e = calloc(1, sizeof(*e));
	assert_non_null(e);
	e->f = bh_fake_create(r, 2, base);
	assert_non_null(e->f);
	for (uint64_t p = 0; p < MiB / PG; p++)
		bh_fake_set(e->f, p, hv_ps_make(HV_PAGE_PRIVATE, HV_PF_DEVICE, 0));
	bh_fake_backend(e->f, &be);
	cfg.log = log_cb;
	cfg.log_ctx = e;
	if (hook) {
		cfg.on_page_released = release_cb;
		cfg.release_ctx = e;
	}
	e->dev = balloon_host_create(&be, &cfg);
	assert_non_null(e->dev);
	e->ring = bh_fake_hva(e->f, RING_GPA);
	return e;
}

static void reg(struct env *e)
{
	uint64_t cap = 0;
	assert_int_equal(hc(e, BALLOON_OP_REGISTER, CFG_GPA, RING_GPA, 1,
			    BALLOON_PROTO_VERSION, &cap), 0);
	assert_int_equal(cap, 512);
}

static int setup(void **state) { struct env *e = make_env(false, false); reg(e); *state = e; return 0; }
static int setup_unreg(void **state) { *state = make_env(false, false); return 0; }
static int setup_base(void **state) { struct env *e = make_env(true, false); reg(e); *state = e; return 0; }
static int setup_hook(void **state) { struct env *e = make_env(false, true); reg(e); *state = e; return 0; }
static int teardown(void **state)
{
	struct env *e = *state;
	balloon_host_destroy(e->dev);
	bh_fake_destroy(e->f);
	free(e);
	return 0;
}

/* Posts entries and rings `op`; returns ret, stores ret2. */
static int64_t post(struct env *e, uint64_t op, const uint64_t *ents, unsigned n,
		    uint64_t *refused)
{
	for (unsigned i = 0; i < n; i++)
		e->ring[i] = ents[i];
	return hc(e, op, n, 0, 0, 0, refused);
}

static unsigned status(struct env *e, unsigned i)
{
	return balloon_ent_status(e->ring[i]);
}

static struct balloon_host_stats stats(struct env *e)
{
	struct balloon_host_stats s;
	balloon_host_stats(e->dev, &s);
	return s;
}

static unsigned state_of(struct env *e, uint64_t gpa)
{
	return hv_ps_state(bh_fake_get(e->f, gpa / PG));
}

/* Every page is either BALLOONED or not BUSY; BALLOONED never DEVICE; and
 * the device's size equals the BALLOONED count. */
static void check_consistent(struct env *e)
{
	assert_int_equal(bh_fake_count_flag(e->f, HV_PF_BUSY), 0);
	assert_int_equal(stats(e).size_bytes,
			 bh_fake_count_state(e->f, HV_PAGE_BALLOONED) * PG);
}

/* ------------------------------------------------------------- register */

static void test_register_flags_device(void **state)
{
	struct env *e = *state;
	const volatile struct balloon_cfg_host *h = bh_fake_hva(e->f, CFG_GPA);
	assert_true(hv_ps_flags(bh_fake_get(e->f, CFG_GPA / PG)) & HV_PF_DEVICE);
	assert_true(hv_ps_flags(bh_fake_get(e->f, RING_GPA / PG)) & HV_PF_DEVICE);
	assert_int_equal(h->magic, BALLOON_CFG_MAGIC);
	assert_int_equal(h->version, BALLOON_PROTO_VERSION);
	assert_int_equal(h->ring_capacity, 512);
	assert_true(h->seq >= 2 && (h->seq & 1) == 0);
	assert_int_equal(hc(e, BALLOON_OP_UNREGISTER, 0, 0, 0, 0, NULL), 0);
	assert_false(hv_ps_flags(bh_fake_get(e->f, CFG_GPA / PG)) & HV_PF_DEVICE);
	assert_false(hv_ps_flags(bh_fake_get(e->f, RING_GPA / PG)) & HV_PF_DEVICE);
	/* the low DEVICE pages are hv-core's: left alone */
	assert_int_equal(bh_fake_count_flag(e->f, HV_PF_DEVICE), MiB / PG);
	/* and ring operations are refused once unregistered */
	assert_int_equal(hc(e, BALLOON_OP_INFLATE, 1, 0, 0, 0, NULL), -BALLOON_ENODEV);
	assert_int_equal(stats(e).reject[BH_REJ_UNREG], 1);
}

static void test_register_device_page_stays_flagged(void **state)
{
	struct env *e = *state;
	/* the config page in the low DEVICE area (e.g. a static in the image) */
	assert_int_equal(hc(e, BALLOON_OP_REGISTER, 0x80000, RING_GPA, 1, 1, NULL), 0);
	assert_int_equal(hc(e, BALLOON_OP_UNREGISTER, 0, 0, 0, 0, NULL), 0);
	assert_true(hv_ps_flags(bh_fake_get(e->f, 0x80000 / PG)) & HV_PF_DEVICE);
	assert_int_equal(bh_fake_count_flag(e->f, HV_PF_DEVICE), MiB / PG);
}

static void test_register_bad(void **state)
{
	struct env *e = *state;
	struct { uint64_t cfg, ring, pages, ver; int64_t err; } bad[] = {
		{ CFG_GPA, RING_GPA, 1, 2, -BALLOON_EPROTO },          /* version */
		{ CFG_GPA, RING_GPA, 0, 1, -BALLOON_EINVAL },          /* no ring */
		{ CFG_GPA, RING_GPA, 17, 1, -BALLOON_EINVAL },         /* too big */
		{ CFG_GPA + 8, RING_GPA, 1, 1, -BALLOON_EINVAL },      /* unaligned */
		{ CFG_GPA, RING_GPA + 16, 1, 1, -BALLOON_EINVAL },
		{ 0xc0000000, RING_GPA, 1, 1, -BALLOON_ERANGE },       /* PCI hole */
		{ CFG_GPA, 0xfffff000, 1, 1, -BALLOON_ERANGE },
		{ 64 * MiB, RING_GPA, 1, 1, -BALLOON_ERANGE },         /* gap */
		{ CFG_GPA, R0_LEN - PG, 2, 1, -BALLOON_ERANGE },       /* straddles end */
		{ CFG_GPA, R1_GPA + R1_LEN, 1, 1, -BALLOON_ERANGE },   /* past the end */
		{ CFG_GPA, 0xfffffffffffff000ULL, 16, 1, -BALLOON_ERANGE }, /* wraps */
		{ RING_GPA + PG, RING_GPA, 2, 1, -BALLOON_EINVAL },    /* cfg in ring */
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(hc(e, BALLOON_OP_REGISTER, bad[i].cfg, bad[i].ring,
				    bad[i].pages, bad[i].ver, NULL), bad[i].err);
	assert_int_equal(stats(e).reject[BH_REJ_REGISTER], sizeof(bad) / sizeof(bad[0]));
	assert_false(stats(e).registered);
	assert_int_equal(bh_fake_count_flag(e->f, HV_PF_DEVICE), MiB / PG);
}

static void test_register_ballooned_page(void **state)
{
	struct env *e = *state;
	/* config fine, second ring page ballooned: refused, and the config
	 * page's DEVICE flag is rolled back */
	bh_fake_set(e->f, (RING_GPA + PG) / PG, hv_ps_make(HV_PAGE_BALLOONED, 0, 0));
	assert_int_equal(hc(e, BALLOON_OP_REGISTER, CFG_GPA, RING_GPA, 2, 1, NULL),
			 -BALLOON_EINVAL);
	assert_false(stats(e).registered);
	assert_int_equal(bh_fake_count_flag(e->f, HV_PF_DEVICE), MiB / PG);
	assert_int_equal(bh_fake_count_flag(e->f, HV_PF_BUSY), 0);
	assert_int_equal(stats(e).reject[BH_REJ_REGISTER], 1);
	/* a page someone else holds BUSY: -EBUSY, not counted as hostile */
	bh_fake_set(e->f, (RING_GPA + PG) / PG, hv_ps_make(HV_PAGE_PRIVATE, HV_PF_BUSY, 0));
	assert_int_equal(hc(e, BALLOON_OP_REGISTER, CFG_GPA, RING_GPA, 2, 1, NULL),
			 -BALLOON_EBUSY);
	assert_int_equal(stats(e).reject[BH_REJ_REGISTER], 1);
	assert_int_equal(stats(e).busy, 1);
	bh_fake_set(e->f, (RING_GPA + PG) / PG, 0);
	/* a re-register over the balloon's own pages works: the reset forgot
	 * them first */
	reg(e);
	uint64_t ent = balloon_ent_make(20 * MiB, 0);
	assert_int_equal(post(e, BALLOON_OP_INFLATE, &ent, 1, NULL), 1);
	assert_int_equal(hc(e, BALLOON_OP_REGISTER, 20 * MiB, RING_GPA, 1, 1, NULL), 0);
	assert_int_equal(bh_fake_get(e->f, 20 * MiB / PG),
			 hv_ps_make(HV_PAGE_PRIVATE, HV_PF_DEVICE, 0));
	check_consistent(e);
}

/* --------------------------------------------------------- good paths */

static void test_inflate_deflate(void **state)
{
	struct env *e = *state;
	uint8_t *p4 = bh_fake_hva(e->f, 20 * MiB), *p2 = bh_fake_hva(e->f, 22 * MiB);
	uint64_t ents[3] = { balloon_ent_make(20 * MiB, 0),
			     balloon_ent_make(20 * MiB + PG, 0),
			     balloon_ent_make(22 * MiB, 1) };
	uint64_t refused = 99;
	memset(p4, 0x11, 2 * PG);
	memset(p2, 0x22, 2 * MiB);
	assert_int_equal(post(e, BALLOON_OP_INFLATE, ents, 3, &refused), 3);
	assert_int_equal(refused, 0);
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(status(e, i), BALLOON_ST_OK);
	assert_int_equal(stats(e).size_bytes, 2 * PG + 2 * MiB);
	assert_int_equal(state_of(e, 22 * MiB + 511 * PG), HV_PAGE_BALLOONED);
	assert_int_equal(p4[0], 0);            /* discarded */
	/* contiguous entries share one discard: 20M..20M+8K is one run */
	assert_int_equal(bh_fake_discards(e->f), 2);
	/* a guest that writes to a ballooned page still gets zero back */
	p2[100] = 0x33;
	assert_int_equal(post(e, BALLOON_OP_DEFLATE, ents, 3, &refused), 3);
	assert_int_equal(p2[100], 0);
	assert_int_equal(state_of(e, 22 * MiB), HV_PAGE_ZERO);
	assert_int_equal(stats(e).size_bytes, 0);
	assert_int_equal(stats(e).rejected, 0);
	check_consistent(e);
}

static void test_base_backed_zero_fill(void **state)
{
	struct env *e = *state;
	uint8_t *p = bh_fake_hva(e->f, 20 * MiB);
	uint64_t ent = balloon_ent_make(20 * MiB, 0);
	uint8_t *q = bh_fake_hva(e->f, 21 * MiB);
	memset(p, 0x11, PG);
	/* the base page under it holds other content: a ballooned page must
	 * read zero while ballooned, never the base page */
	assert_int_equal(post(e, BALLOON_OP_INFLATE, &ent, 1, NULL), 1);
	for (unsigned i = 0; i < PG; i++)
		assert_int_equal(p[i], 0);
	assert_int_equal(post(e, BALLOON_OP_DEFLATE, &ent, 1, NULL), 1);
	for (unsigned i = 0; i < PG; i++)
		assert_int_equal(p[i], 0);
	assert_int_equal(state_of(e, 20 * MiB), HV_PAGE_ZERO);
	/* a reported page reads zero too, not its base page */
	memset(q, 0x22, PG);
	ent = balloon_ent_make(21 * MiB, 0);
	balloon_host_set_reporting(e->dev, true);
	assert_int_equal(post(e, BALLOON_OP_REPORT, &ent, 1, NULL), 1);
	for (unsigned i = 0; i < PG; i++)
		assert_int_equal(q[i], 0);
	assert_int_equal(state_of(e, 21 * MiB), HV_PAGE_ZERO);
	/* the untouched neighbour still reads its base page */
	assert_int_equal(((uint8_t *)bh_fake_hva(e->f, 22 * MiB))[0], BH_FAKE_PATTERN);
	check_consistent(e);
}

static void test_report(void **state)
{
	struct env *e = *state;
	uint64_t ents[2] = { balloon_ent_make(24 * MiB, 1), balloon_ent_make(20 * MiB, 0) };
	uint8_t *p = bh_fake_hva(e->f, 24 * MiB);
	memset(p, 0x44, PG);
	/* reporting is off: refused whole, but that is not the guest's fault */
	assert_int_equal(post(e, BALLOON_OP_REPORT, ents, 2, NULL), -BALLOON_EOPNOTSUPP);
	assert_int_equal(stats(e).rejected, 0);
	balloon_host_set_reporting(e->dev, true);
	assert_int_equal(post(e, BALLOON_OP_REPORT, ents, 2, NULL), 2);
	assert_int_equal(p[0], 0);
	assert_int_equal(state_of(e, 24 * MiB), HV_PAGE_ZERO);
	assert_int_equal(stats(e).reported_pages, 513);
	assert_int_equal(stats(e).size_bytes, 0);     /* still the guest's */
	/* a reported page can be inflated later; a ballooned one not reported */
	assert_int_equal(post(e, BALLOON_OP_INFLATE, &ents[1], 1, NULL), 1);
	assert_int_equal(post(e, BALLOON_OP_REPORT, &ents[1], 1, NULL), 0);
	assert_int_equal(status(e, 0), BALLOON_ST_STATE);
	check_consistent(e);
}

/* -------------------------------------------------------- hostile input */

static void test_out_of_range(void **state)
{
	struct env *e = *state;
	uint64_t ents[] = {
		balloon_ent_make(R1_GPA + R1_LEN, 0),            /* past the end */
		balloon_ent_make(64 * MiB, 0),                   /* gap below the hole */
		balloon_ent_make(HV_PCI_HOLE_START, 0),          /* PCI hole */
		balloon_ent_make(HV_PCI_HOLE_END - PG, 0),
		balloon_ent_make(HV_PCI_HOLE_START, 1),
		balloon_ent_make(32 * MiB, 1),                   /* straddles range 0's end */
		balloon_ent_make(0xfffffffffffff000ULL, 0),      /* wraps */
		balloon_ent_make(0xffffffffffe00000ULL, 1),
	};
	unsigned n = sizeof(ents) / sizeof(ents[0]);
	uint64_t refused;
	assert_int_equal(post(e, BALLOON_OP_INFLATE, ents, n, &refused), 0);
	assert_int_equal(refused, n);
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(status(e, i), BALLOON_ST_RANGE);
	assert_int_equal(post(e, BALLOON_OP_DEFLATE, ents, n, &refused), 0);
	assert_int_equal(stats(e).reject[BH_REJ_RANGE], 2 * n);
	assert_int_equal(bh_fake_discards(e->f), 0);
	/* the last page of each range is fine */
	ents[0] = balloon_ent_make(R0_LEN - PG, 0);
	ents[1] = balloon_ent_make(R1_GPA + R1_LEN - 2 * MiB, 1);
	assert_int_equal(post(e, BALLOON_OP_INFLATE, ents, 2, NULL), 2);
	check_consistent(e);
}

static void test_unaligned_2m(void **state)
{
	struct env *e = *state;
	uint64_t ents[2] = { balloon_ent_make(20 * MiB + PG, 1),
			     balloon_ent_make(R1_GPA + MiB, 1) };
	assert_int_equal(post(e, BALLOON_OP_INFLATE, ents, 2, NULL), 0);
	assert_int_equal(status(e, 0), BALLOON_ST_ALIGN);
	assert_int_equal(status(e, 1), BALLOON_ST_ALIGN);
	assert_int_equal(stats(e).reject[BH_REJ_ALIGN], 2);
	assert_int_equal(state_of(e, 20 * MiB + PG), HV_PAGE_PRIVATE);
	check_consistent(e);
}

static void test_duplicate_inflate(void **state)
{
	struct env *e = *state;
	uint64_t ents[3] = { balloon_ent_make(20 * MiB, 0), balloon_ent_make(20 * MiB, 0),
			     balloon_ent_make(20 * MiB, 1) };
	uint64_t refused;
	/* the same page twice in a batch, then inside a 2 MiB entry */
	assert_int_equal(post(e, BALLOON_OP_INFLATE, ents, 3, &refused), 1);
	assert_int_equal(refused, 2);
	assert_int_equal(status(e, 0), BALLOON_ST_OK);
	assert_int_equal(status(e, 1), BALLOON_ST_STATE);
	assert_int_equal(status(e, 2), BALLOON_ST_STATE);
	/* the refused 2 MiB entry took nothing: its other pages are untouched */
	assert_int_equal(state_of(e, 20 * MiB + PG), HV_PAGE_PRIVATE);
	/* and again in a later batch */
	assert_int_equal(post(e, BALLOON_OP_INFLATE, ents, 1, NULL), 0);
	assert_int_equal(stats(e).reject[BH_REJ_STATE], 3);
	assert_int_equal(stats(e).size_bytes, PG);
	check_consistent(e);
}

static void test_deflate_not_ballooned(void **state)
{
	struct env *e = *state;
	uint64_t ents[2] = { balloon_ent_make(20 * MiB, 0), balloon_ent_make(22 * MiB, 1) };
	assert_int_equal(post(e, BALLOON_OP_DEFLATE, ents, 2, NULL), 0);
	assert_int_equal(status(e, 0), BALLOON_ST_STATE);
	assert_int_equal(status(e, 1), BALLOON_ST_STATE);
	/* inflate, deflate, deflate again */
	assert_int_equal(post(e, BALLOON_OP_INFLATE, ents, 1, NULL), 1);
	assert_int_equal(post(e, BALLOON_OP_DEFLATE, ents, 1, NULL), 1);
	assert_int_equal(post(e, BALLOON_OP_DEFLATE, ents, 1, NULL), 0);
	/* a 2 MiB deflate over a block only partly ballooned takes nothing */
	assert_int_equal(post(e, BALLOON_OP_INFLATE, &ents[1], 1, NULL), 1);
	ents[0] = balloon_ent_make(22 * MiB + PG, 0);
	assert_int_equal(post(e, BALLOON_OP_DEFLATE, ents, 1, NULL), 1);
	assert_int_equal(post(e, BALLOON_OP_DEFLATE, &ents[1], 1, NULL), 0);
	assert_int_equal(state_of(e, 22 * MiB), HV_PAGE_BALLOONED);
	assert_int_equal(stats(e).reject[BH_REJ_STATE], 4);
	check_consistent(e);
}

static void test_device_pages(void **state)
{
	struct env *e = *state;
	uint64_t ents[] = {
		balloon_ent_make(RING_GPA, 0),     /* the ring itself */
		balloon_ent_make(CFG_GPA, 0),      /* the config page */
		balloon_ent_make(CFG_GPA, 1),      /* a 2 MiB block holding both */
		balloon_ent_make(0x5000, 0),       /* hv-core's low DEVICE pages */
		balloon_ent_make(0, 1),
	};
	unsigned n = sizeof(ents) / sizeof(ents[0]);
	uint64_t ops[3] = { BALLOON_OP_INFLATE, BALLOON_OP_REPORT, BALLOON_OP_DEFLATE };
	balloon_host_set_reporting(e->dev, true);
	/* one entry per request: overlapping entries in one request would be
	 * refused as duplicates first */
	for (unsigned o = 0; o < 3; o++) {
		for (unsigned i = 0; i < n; i++) {
			assert_int_equal(post(e, ops[o], &ents[i], 1, NULL), 0);
			assert_int_equal(status(e, 0), BALLOON_ST_DEVICE);
		}
	}
	assert_int_equal(stats(e).reject[BH_REJ_DEVICE], 3 * n);
	/* in one request: the first two are DEVICE, the 2 MiB block overlapping
	 * them a duplicate */
	assert_int_equal(post(e, BALLOON_OP_INFLATE, ents, 3, NULL), 0);
	assert_int_equal(status(e, 0), BALLOON_ST_DEVICE);
	assert_int_equal(status(e, 2), BALLOON_ST_STATE);
	assert_int_equal(bh_fake_discards(e->f), 0);
	/* the 2 MiB block at 16 MiB was rolled back: no stray BUSY */
	assert_int_equal(state_of(e, CFG_GPA + 2 * PG), HV_PAGE_PRIVATE);
	check_consistent(e);
}

static void test_counts_and_args(void **state)
{
	struct env *e = *state;
	assert_int_equal(hc(e, BALLOON_OP_INFLATE, 513, 0, 0, 0, NULL), -BALLOON_E2BIG);
	assert_int_equal(hc(e, BALLOON_OP_DEFLATE, UINT64_MAX, 0, 0, 0, NULL), -BALLOON_E2BIG);
	assert_int_equal(hc(e, BALLOON_OP_REPORT, 1ULL << 40, 0, 0, 0, NULL),
			 -BALLOON_EOPNOTSUPP);     /* reporting off: checked first */
	balloon_host_set_reporting(e->dev, true);
	assert_int_equal(hc(e, BALLOON_OP_REPORT, 1ULL << 40, 0, 0, 0, NULL), -BALLOON_E2BIG);
	assert_int_equal(stats(e).reject[BH_REJ_COUNT], 3);
	assert_int_equal(hc(e, BALLOON_OP_INFLATE, 1, 1, 0, 0, NULL), -BALLOON_EINVAL);
	assert_int_equal(hc(e, BALLOON_OP_STATS, 1, 0, 0, 0, NULL), -BALLOON_EINVAL);
	assert_int_equal(hc(e, BALLOON_OP_UNREGISTER, 0, 0, 0, 7, NULL), -BALLOON_EINVAL);
	assert_int_equal(stats(e).reject[BH_REJ_ARGS], 3);
	assert_int_equal(hc(e, 0, 0, 0, 0, 0, NULL), -BALLOON_ENOSYS);
	assert_int_equal(hc(e, 1000, 0, 0, 0, 0, NULL), -BALLOON_ENOSYS);
	assert_int_equal(hc(e, UINT64_MAX, 0, 0, 0, 0, NULL), -BALLOON_ENOSYS);
	assert_int_equal(stats(e).reject[BH_REJ_OP], 3);
	/* a full ring is fine; zero entries is a no-op */
	for (unsigned i = 0; i < 512; i++)
		e->ring[i] = balloon_ent_make(20 * MiB + i * PG, 0);
	assert_int_equal(hc(e, BALLOON_OP_INFLATE, 512, 0, 0, 0, NULL), 512);
	assert_int_equal(hc(e, BALLOON_OP_INFLATE, 0, 0, 0, 0, NULL), 0);
	assert_true(stats(e).registered);
	check_consistent(e);
}

static void test_ops_before_register(void **state)
{
	struct env *e = *state;
	uint64_t ops[] = { BALLOON_OP_UNREGISTER, BALLOON_OP_INFLATE, BALLOON_OP_DEFLATE,
			   BALLOON_OP_REPORT, BALLOON_OP_STATS };
	for (unsigned i = 0; i < 5; i++)
		assert_int_equal(hc(e, ops[i], 0, 0, 0, 0, NULL), -BALLOON_ENODEV);
	assert_int_equal(stats(e).reject[BH_REJ_UNREG], 5);
}

static void test_reserved_bits(void **state)
{
	struct env *e = *state;
	uint64_t ents[3] = { balloon_ent_make(20 * MiB, 0) | 0x2,
			     balloon_ent_make(20 * MiB, 0) | (1ULL << BALLOON_ENT_ST_SHIFT),
			     balloon_ent_make(20 * MiB, 0) | 0x80 };
	assert_int_equal(post(e, BALLOON_OP_INFLATE, ents, 3, NULL), 0);
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(status(e, i), BALLOON_ST_INVALID);
	assert_int_equal(stats(e).reject[BH_REJ_INVALID], 3);
	check_consistent(e);
}

static void test_busy_and_frame(void **state)
{
	struct env *e = *state;
	uint64_t ent = balloon_ent_make(20 * MiB, 0);
	/* someone else (ksm) holds the page: refused as BUSY, not hostile */
	bh_fake_set(e->f, 20 * MiB / PG, hv_ps_make(HV_PAGE_PRIVATE, HV_PF_BUSY, 0));
	assert_int_equal(post(e, BALLOON_OP_INFLATE, &ent, 1, NULL), 0);
	assert_int_equal(status(e, 0), BALLOON_ST_BUSY);
	assert_int_equal(stats(e).busy, 1);
	assert_int_equal(stats(e).rejected, 0);
	/* a shared frame with no one to drop its reference: BUSY too */
	bh_fake_set(e->f, 20 * MiB / PG, hv_ps_make(HV_PAGE_FRAME, 0, 1234));
	assert_int_equal(post(e, BALLOON_OP_INFLATE, &ent, 1, NULL), 0);
	assert_int_equal(status(e, 0), BALLOON_ST_BUSY);
	check_consistent(e);
}

static void test_frame_hook(void **state)
{
	struct env *e = *state;
	uint64_t ent = balloon_ent_make(20 * MiB, 1);
	bh_fake_set(e->f, 20 * MiB / PG + 7, hv_ps_make(HV_PAGE_FRAME, HV_PF_USER1, 1234));
	assert_int_equal(post(e, BALLOON_OP_INFLATE, &ent, 1, NULL), 1);
	assert_int_equal(e->released, 1);
	assert_int_equal(e->released_gpa, 20 * MiB + 7 * PG);
	assert_int_equal(hv_ps_state(e->released_old), HV_PAGE_FRAME);
	assert_int_equal(hv_ps_frame(e->released_old), 1234);
	assert_false(e->released_old & HV_PF_BUSY);
	assert_int_equal(bh_fake_get(e->f, 20 * MiB / PG + 7),
			 hv_ps_make(HV_PAGE_BALLOONED, 0, 0));
	check_consistent(e);
}

static void test_discard_failure(void **state)
{
	struct env *e = *state;
	uint64_t ents[2] = { balloon_ent_make(20 * MiB, 0), balloon_ent_make(22 * MiB, 1) };
	bh_fake_fail_discard(e->f, true);
	assert_int_equal(post(e, BALLOON_OP_INFLATE, ents, 2, NULL), 0);
	assert_int_equal(status(e, 0), BALLOON_ST_IO);
	assert_int_equal(status(e, 1), BALLOON_ST_IO);
	assert_int_equal(stats(e).io_errors, 2);
	assert_int_equal(state_of(e, 22 * MiB), HV_PAGE_PRIVATE);
	bh_fake_fail_discard(e->f, false);
	assert_int_equal(post(e, BALLOON_OP_INFLATE, ents, 2, NULL), 2);
	check_consistent(e);
	/* a deflate whose discard fails keeps the pages ballooned ... */
	bh_fake_fail_discard(e->f, true);
	assert_int_equal(post(e, BALLOON_OP_DEFLATE, ents, 2, NULL), 0);
	assert_int_equal(stats(e).size_bytes, PG + 2 * MiB);
	check_consistent(e);
	/* ... and the sweep at UNREGISTER zero-fills them instead (found by
	 * the fuzzer: it used to forget them while they stayed BALLOONED) */
	uint8_t *p = bh_fake_hva(e->f, 22 * MiB);
	p[7] = 1;
	assert_int_equal(hc(e, BALLOON_OP_UNREGISTER, 0, 0, 0, 0, NULL), 0);
	assert_int_equal(p[7], 0);
	assert_int_equal(state_of(e, 22 * MiB), HV_PAGE_PRIVATE);
	assert_int_equal(stats(e).io_errors, 4 + 513);
	check_consistent(e);
}

static void test_log_rate_limited(void **state)
{
	struct env *e = *state;
	unsigned before = e->log_lines;
	for (unsigned k = 0; k < 10; k++) {
		for (unsigned i = 0; i < 512; i++)
			e->ring[i] = balloon_ent_make(HV_PCI_HOLE_START + i * PG, 0);
		assert_int_equal(hc(e, BALLOON_OP_INFLATE, 512, 0, 0, 0, NULL), 0);
	}
	assert_int_equal(stats(e).reject[BH_REJ_RANGE], 5120);
	assert_true(e->log_lines - before <= 5);
	assert_true(stats(e).log_suppressed >= 5110);
	/* next second: one "suppressed" line, then room again */
	bh_fake_advance(e->f, 1000000000ULL);
	before = e->log_lines;
	assert_int_equal(hc(e, BALLOON_OP_INFLATE, 1, 0, 0, 0, NULL), 0);
	assert_int_equal(e->log_lines - before, 2);
	assert_non_null(strstr(e->last_log, "invalid"));   /* status bits left set */
}

/* A guest that sends impossible stats cannot hide the host's figures, nor
 * replace its last good stats. */
static void test_hostile_stats(void **state)
{
	struct env *e = *state;
	volatile struct balloon_cfg_guest *g =
		(void *)((uint8_t *)bh_fake_hva(e->f, CFG_GPA) + BALLOON_CFG_GUEST_OFF);
	uint64_t ent = balloon_ent_make(20 * MiB, 1);
	struct balloon_host_stats s;
	json_t *o;

	assert_int_equal(balloon_host_set_target(e->dev, 2 * MiB), 0);
	assert_int_equal(post(e, BALLOON_OP_INFLATE, &ent, 1, NULL), 1);
	/* good stats first */
	g->balloon_pages = 512;
	g->stats.valid = BALLOON_STAT_MEM_TOTAL | BALLOON_STAT_MEM_FREE;
	g->stats.mem_total = 40 * MiB;
	g->stats.mem_free = 10 * MiB;
	assert_int_equal(hc(e, BALLOON_OP_STATS, 0, 0, 0, 0, NULL), 0);
	assert_int_equal(stats(e).stats_updates, 1);

	struct { const char *what; uint64_t total, free, faults; } bad[] = {
		{ "all ones", UINT64_MAX, UINT64_MAX, UINT64_MAX },
		{ "free > total", 20 * MiB, 30 * MiB, 0 },
		{ "total > RAM", 64 * GiB, MiB, 0 },
		{ "count >= 2^63", 20 * MiB, MiB, 1ull << 63 },
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		g->stats.valid = BALLOON_STAT_ALL;
		g->stats.mem_total = bad[i].total;
		g->stats.mem_free = bad[i].free;
		g->stats.mem_available = 0;
		g->stats.cached = 0;
		g->stats.minor_faults = bad[i].faults;
		g->balloon_pages = UINT64_MAX;       /* a claim above RAM */
		assert_int_equal(hc(e, BALLOON_OP_STATS, 0, 0, 0, 0, NULL), 0);
		s = stats(e);
		print_message("%s: guest_rejected %llu\n", bad[i].what,
			      (unsigned long long)s.guest_rejected);
		assert_int_equal(s.stats_updates, 1);
		assert_int_equal(s.guest.mem_total, 40 * MiB);   /* the good ones */
		assert_int_equal(s.guest.mem_free, 10 * MiB);
		assert_int_equal(s.guest_balloon_bytes, 2 * MiB);
		o = balloon_host_stats_to_json(&s);
		assert_non_null(o);
		assert_int_equal(json_integer_value(json_object_get(o, "size_bytes")), 2 * MiB);
		assert_int_equal(json_integer_value(json_object_get(o, "target_bytes")), 2 * MiB);
		assert_non_null(json_object_get(o, "rejected"));
		assert_int_equal(json_integer_value(json_object_get(
			json_object_get(o, "guest"), "mem_free")), 10 * MiB);
		char *txt = json_dumps(o, JSON_COMPACT);
		json_t *back = json_loads(txt, 0, NULL);
		assert_non_null(back);                       /* it parses again */
		json_decref(back);
		free(txt);
		json_decref(o);
	}
	/* every bad stats update counted; the bad claim counted once */
	assert_int_equal(stats(e).guest_rejected, 4 + 1);
}

static void test_target_and_stats(void **state)
{
	struct env *e = *state;
	const volatile struct balloon_cfg_host *h = bh_fake_hva(e->f, CFG_GPA);
	volatile struct balloon_cfg_guest *g =
		(void *)((uint8_t *)bh_fake_hva(e->f, CFG_GPA) + BALLOON_CFG_GUEST_OFF);
	uint64_t seq = h->seq, notifies = bh_fake_notifies(e->f);
	uint64_t ents[2] = { balloon_ent_make(20 * MiB, 1), balloon_ent_make(22 * MiB, 1) };
	struct balloon_host_stats s;
	json_t *o;

	assert_int_equal(balloon_host_set_target(e->dev, 4 * MiB + 100), 0);
	assert_int_equal(h->target_pages, 1024);
	assert_int_equal(h->seq, seq + 2);
	assert_int_equal(bh_fake_notifies(e->f), notifies + 1);
	assert_int_equal(balloon_host_set_target(e->dev, 64 * GiB), -BALLOON_ERANGE);
	assert_int_equal(balloon_host_set_guest_size(e->dev, 41 * MiB - 4 * MiB), 0);
	assert_int_equal(h->target_pages, 1024);
	assert_false(stats(e).target_reached);
	bh_fake_advance(e->f, 7000000);     /* 7 ms later the guest gets there */
	assert_int_equal(post(e, BALLOON_OP_INFLATE, ents, 2, NULL), 2);
	s = stats(e);
	assert_true(s.target_reached);
	assert_int_equal(s.reach_ns, 7000000);

	/* stats from the guest, sanitized */
	g->balloon_pages = 1024;
	g->stats.valid = BALLOON_STAT_MEM_TOTAL | BALLOON_STAT_PSI_SOME | 0x80000000u;
	g->stats.mem_total = 41 * MiB;
	g->stats.psi_some_avg10 = 123456;
	assert_int_equal(hc(e, BALLOON_OP_STATS, 0, 0, 0, 0, NULL), 0);
	s = stats(e);
	assert_int_equal(s.stats_updates, 1);
	assert_int_equal(s.guest.valid, BALLOON_STAT_MEM_TOTAL | BALLOON_STAT_PSI_SOME);
	assert_int_equal(s.guest.psi_some_avg10, 10000);
	assert_int_equal(s.guest_balloon_bytes, 4 * MiB);
	o = balloon_host_stats_to_json(&s);
	assert_non_null(o);
	assert_int_equal(json_integer_value(json_object_get(o, "size_bytes")), 4 * MiB);
	assert_true(json_real_value(json_object_get(o, "reach_ms")) == 7.0);
	json_t *go = json_object_get(o, "guest");
	assert_int_equal(json_integer_value(json_object_get(go, "mem_total")), 41 * MiB);
	assert_true(json_real_value(json_object_get(go, "psi_some_avg10")) == 100.0);
	assert_null(json_object_get(go, "mem_free"));
	json_decref(o);

	/* the other setters bump seq and wake the guest */
	seq = h->seq;
	balloon_host_set_stats_period(e->dev, 250);
	balloon_host_request_stats(e->dev);
	assert_int_equal(h->stats_period_ms, 250);
	assert_int_equal(h->stats_request, 1);
	assert_int_equal(h->seq, seq + 4);
}

static void test_unregister_forgets(void **state)
{
	struct env *e = *state;
	uint64_t ents[2] = { balloon_ent_make(20 * MiB, 0), balloon_ent_make(R1_GPA, 1) };
	uint8_t *p = bh_fake_hva(e->f, R1_GPA);
	assert_int_equal(post(e, BALLOON_OP_INFLATE, ents, 2, NULL), 2);
	p[5] = 9;           /* the guest scribbles on a ballooned page */
	assert_int_equal(hc(e, BALLOON_OP_UNREGISTER, 0, 0, 0, 0, NULL), 0);
	assert_int_equal(bh_fake_count_state(e->f, HV_PAGE_BALLOONED), 0);
	assert_int_equal(p[5], 0);
	assert_int_equal(stats(e).size_bytes, 0);
	/* register again (a reset): a fresh balloon, same pages */
	reg(e);
	assert_int_equal(post(e, BALLOON_OP_INFLATE, ents, 2, NULL), 2);
	reg(e);
	assert_int_equal(bh_fake_count_state(e->f, HV_PAGE_BALLOONED), 0);
	assert_int_equal(bh_fake_count_flag(e->f, HV_PF_DEVICE), MiB / PG + 2);
	check_consistent(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_register_flags_device, setup, teardown),
		cmocka_unit_test_setup_teardown(test_register_device_page_stays_flagged, setup_unreg, teardown),
		cmocka_unit_test_setup_teardown(test_register_bad, setup_unreg, teardown),
		cmocka_unit_test_setup_teardown(test_register_ballooned_page, setup_unreg, teardown),
		cmocka_unit_test_setup_teardown(test_inflate_deflate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_base_backed_zero_fill, setup_base, teardown),
		cmocka_unit_test_setup_teardown(test_report, setup, teardown),
		cmocka_unit_test_setup_teardown(test_out_of_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unaligned_2m, setup, teardown),
		cmocka_unit_test_setup_teardown(test_duplicate_inflate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deflate_not_ballooned, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_pages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_counts_and_args, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ops_before_register, setup_unreg, teardown),
		cmocka_unit_test_setup_teardown(test_reserved_bits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_busy_and_frame, setup, teardown),
		cmocka_unit_test_setup_teardown(test_frame_hook, setup_hook, teardown),
		cmocka_unit_test_setup_teardown(test_discard_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_log_rate_limited, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_stats, setup, teardown),
		cmocka_unit_test_setup_teardown(test_target_and_stats, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unregister_forgets, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
