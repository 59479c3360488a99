/*
 * fuzz_balloon_host.c - libFuzzer harness for the balloon device's request
 * path (balloon-host/ over the fake backend; no KVM).
 *
 * Owns: turning fuzzer bytes into a hostile guest's session (REGISTER with
 * odd pages, rings full of chosen or raw entries, every op with chosen or
 * raw counts and arguments, stats pages full of garbage) interleaved with
 * host-side calls (targets, reporting, stats, JSON), and checking after
 * every step that the page-state map is still consistent:
 *   - no page is left HV_PF_BUSY;
 *   - the device's size equals the number of BALLOONED pages;
 *   - no BALLOONED page is DEVICE, and the low DEVICE pages stay DEVICE;
 *   - the config and ring pages of a registered device are DEVICE.
 * The fake backend aborts on any page-state lookup or discard outside RAM,
 * so a missed range check is a crash too.
 *
 * Input format (all little endian, reading past the end yields zeros):
 *   byte 0: bit 0 = base-memfd-backed RAM, bit 1 = ksm hook present,
 *           bits 2-3 = number of FRAME/BUSY pages to plant (x4)
 *   then steps, each: one command byte (value % 9) and its operands.
 * Command 8 also plants a BUSY page (a ksm pass in flight) and switches
 * discard failures on and off, so the rollback paths run too.
 * Built by `make fuzz-balloon` (clang -fsanitize=fuzzer) and, with
 * replay_main.c, by `make test` (any compiler).  BALLOON_FUZZ_DEBUG=1 in
 * the environment prints the device's stats after each input.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "balloon-host/bh_internal.h"

#define MiB     (1024ULL * 1024)
#define GiB     (1024ULL * MiB)
#define PG      4096ULL
#define R0_LEN  (8 * MiB)
#define R1_GPA  (4 * GiB)
#define R1_LEN  (4 * MiB)
#define LOW_DEV (MiB / PG)       /* pages flagged DEVICE, like hv-core's */
#define MAX_STEPS 48

struct rd {
	const uint8_t *p;
	size_t n;
};

static uint8_t u8(struct rd *r)
{
	if (!r->n)
		return 0;
	r->n--;
	return *r->p++;
}

/* Reads are sequenced statement by statement: the order of calls inside
 * one expression is unspecified in C. */
static uint16_t u16(struct rd *r)
{
	uint16_t lo = u8(r);
	uint16_t hi = u8(r);
	return (uint16_t)(lo | hi << 8);
}

static uint64_t u64(struct rd *r)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)u8(r) << (8 * i);
	return v;
}

struct session {
	struct bh_fake *f;
	struct balloon_host *dev;
	bool registered;
	uint64_t cfg_gpa, ring_gpa, ring_pages;
};

static void quiet(void *ctx, const char *line)
{
	(void)ctx;
	(void)line;
}

static void hook(void *ctx, uint64_t gpa, hv_pstate_t old)
{
	unsigned s = hv_ps_state(old);
	(void)ctx;
	/* called only for pages of RAM, never BUSY, only FRAME/BASE */
	if ((old & HV_PF_BUSY) || (s != HV_PAGE_FRAME && s != HV_PAGE_BASE) ||
	    gpa % PG)
		abort();
}

/* An address that is interesting more often than a random one would be. */
static uint64_t pick_gpa(struct rd *r, struct session *s)
{
	switch (u8(r) % 12) {
	case 0:  return (u16(r) % (R0_LEN / PG)) * PG;
	case 1:  return R1_GPA + (u16(r) % (R1_LEN / PG)) * PG;
	case 2:  return (u8(r) % (R0_LEN / (2 * MiB))) * 2 * MiB;
	case 3:  return R1_GPA + (u8(r) % (R1_LEN / (2 * MiB))) * 2 * MiB;
	case 4:  return HV_PCI_HOLE_START + (uint64_t)u16(r) * PG;
	case 5:  return R0_LEN + (uint64_t)u16(r) * PG;            /* the gap */
	case 6:  return R0_LEN - (u8(r) % 4) * PG;
	case 7:  return R1_GPA + R1_LEN - (u8(r) % 4) * PG;
	case 8:  return u8(r) & 1 ? s->cfg_gpa : s->ring_gpa + (u8(r) % 4) * PG;
	case 9:  return u64(r);
	case 10: return (u8(r) % LOW_DEV) * PG;
	default: return R1_GPA + R1_LEN + (uint64_t)u8(r) * PG;
	}
}

static uint64_t pick_count(struct rd *r, uint64_t written)
{
	switch (u8(r) % 4) {
	case 0:  return written;
	case 1:  return u8(r);
	case 2: {                                    /* around capacities */
		uint64_t pages = u8(r) % 18;
		return 512ULL * pages + u8(r) % 3;
	}
	default: return u64(r);
	}
}

static int64_t call(struct session *s, uint64_t op, uint64_t a1, uint64_t a2,
		    uint64_t a3, uint64_t a4)
{
	uint64_t a[5] = { op, a1, a2, a3, a4 }, r2 = 0;
	int64_t ret = balloon_host_hypercall(s->dev, a, &r2);
	/* ret2 is the refused count for ring ops: never more than asked */
	if ((op == BALLOON_OP_INFLATE || op == BALLOON_OP_DEFLATE ||
	     op == BALLOON_OP_REPORT) && ret >= 0 && (uint64_t)ret + r2 != a1)
		abort();
	return ret;
}

/* After every step; `full` (at the end of an input) also reads the
 * ballooned pages, which costs a page-table walk each. */
/* Guest figures that cannot be true got through validation. */
static bool stats_bad(const struct session *s, const struct balloon_host_stats *st)
{
	const struct balloon_stats *g = &st->guest;
	const uint64_t *w = &g->mem_total;
	(void)s;
	if (st->guest_balloon_bytes > st->mem_bytes || g->valid & ~BALLOON_STAT_ALL ||
	    g->psi_some_avg10 > 10000 || g->psi_full_avg10 > 10000)
		return true;
	for (unsigned i = 0; i < 9; i++)
		if (w[i] >> 63 || (i < 4 && w[i] > st->mem_bytes))
			return true;
	return (g->valid & BALLOON_STAT_MEM_TOTAL) &&
	       (((g->valid & BALLOON_STAT_MEM_FREE) && g->mem_free > g->mem_total) ||
		((g->valid & BALLOON_STAT_MEM_AVAILABLE) &&
		 g->mem_available > g->mem_total) ||
		((g->valid & BALLOON_STAT_CACHED) && g->cached > g->mem_total));
}

/* The JSON form always carries the host's own figures, exactly. */
static void check_stats_json(const struct session *s,
			     const struct balloon_host_stats *st)
{
	json_t *o = balloon_host_stats_to_json(st);
	(void)s;
	if (!o || json_integer_value(json_object_get(o, "size_bytes")) !=
		      (json_int_t)st->size_bytes ||
	    json_integer_value(json_object_get(o, "target_bytes")) !=
		    (json_int_t)st->target_bytes ||
	    json_integer_value(json_object_get(o, "rejected")) !=
		    (json_int_t)st->rejected ||
	    !json_is_object(json_object_get(o, "guest")))
		abort();
	char *txt = json_dumps(o, JSON_COMPACT);
	json_t *back = txt ? json_loads(txt, 0, NULL) : NULL;
	if (!back)   /* what the control socket sends must parse again */
		abort();
	json_decref(back);
	free(txt);
	json_decref(o);
}

static void check(struct session *s, bool full)
{
	struct balloon_host_stats st;
	uint64_t states[8], flags[8], ballooned;
	bh_fake_census(s->f, states, flags);
	ballooned = states[HV_PAGE_BALLOONED];
	balloon_host_stats(s->dev, &st);
	if (flags[4] != 0)                      /* HV_PF_BUSY == 1 << 4 */
		abort();
	if (st.size_bytes != ballooned * PG)
		abort();
	if (st.registered != s->registered)
		abort();
	for (uint64_t p = 0; p < LOW_DEV; p++)
		if (!(hv_ps_flags(bh_fake_get(s->f, p)) & HV_PF_DEVICE))
			abort();
	if (s->registered) {
		if (!(hv_ps_flags(bh_fake_get(s->f, s->cfg_gpa / PG)) & HV_PF_DEVICE))
			abort();
		for (uint64_t k = 0; k < s->ring_pages; k++)
			if (!(hv_ps_flags(bh_fake_get(s->f, s->ring_gpa / PG + k)) & HV_PF_DEVICE))
				abort();
	}
	/* what the guest sent is never shown unless it can be true */
	if (stats_bad(s, &st))
		abort();
	/* BALLOONED pages carry no flags and were zeroed: they read zero, on
	 * base-backed RAM too (never the base pattern: the invariant) */
	static const struct { uint64_t gpa, len; } rr[2] = { { 0, R0_LEN }, { R1_GPA, R1_LEN } };
	for (int i = 0; i < 2 && ballooned && full; i++) {
		for (uint64_t g = rr[i].gpa; g < rr[i].gpa + rr[i].len; g += PG) {
			hv_pstate_t v = bh_fake_get(s->f, g / PG);
			const uint8_t *p;
			if (hv_ps_state(v) != HV_PAGE_BALLOONED)
				continue;
			if (hv_ps_flags(v))
				abort();
			p = bh_fake_hva(s->f, g);
			if (p[0] != 0 || p[PG - 1] != 0)
				abort();
		}
	}
}

/* Tracks the registration after a REGISTER: a success takes the new pages;
 * a failure either kept the old registration (refused before the reset) or
 * left none (refused after it). */
static void after_register(struct session *s, int64_t ret, uint64_t cfg,
			   uint64_t ring, uint64_t pages)
{
	struct balloon_host_stats st;
	if (ret == 0) {
		s->registered = true;
		s->cfg_gpa = cfg;
		s->ring_gpa = ring;
		s->ring_pages = pages;
		return;
	}
	balloon_host_stats(s->dev, &st);
	s->registered = st.registered;
}

static struct bh_fake *fake(bool base)
{
	/* created once per process and reset per input: mmap is the slow part */
	static struct bh_fake *f[2];
	if (!f[base]) {
		struct bh_fake_range r[2] = { { 0, R0_LEN }, { R1_GPA, R1_LEN } };
		f[base] = bh_fake_create(r, 2, base);
		if (!f[base])
			abort();
	}
	bh_fake_reset(f[base]);
	return f[base];
}

static void step(struct rd *r, struct session *s)
{
	uint8_t cmd = u8(r) % 9;
	switch (cmd) {
	case 0: {                                  /* REGISTER */
		uint64_t cfg = pick_gpa(r, s), ring = pick_gpa(r, s);
		uint64_t pages = u8(r) % 18, ver = u8(r) % 8 ? BALLOON_PROTO_VERSION : u64(r);
		int64_t ret = call(s, BALLOON_OP_REGISTER, cfg, ring, pages, ver);
		after_register(s, ret, cfg, ring, pages);
		break;
	}
	case 1: {                                  /* fill the ring */
		uint64_t n = u16(r) % 600, cap = s->ring_pages * 512;
		volatile uint64_t *ring;
		if (!s->registered)
			break;
		ring = bh_fake_hva(s->f, s->ring_gpa);
		if (n > cap)
			n = cap;
		for (uint64_t i = 0; i < n && r->n; i++) {
			uint8_t fl = u8(r);
			uint64_t e = balloon_ent_make(pick_gpa(r, s), fl & 1);
			if (fl & 0x40)
				e |= (uint64_t)(fl & 0x3e) << 1 | (fl & 0x80 ? 0x300 : 0);
			ring[i] = fl == 0xff ? u64(r) : e;
		}
		break;
	}
	case 2: case 3: case 4: {                  /* INFLATE, DEFLATE, REPORT */
		static const uint64_t ops[3] = { BALLOON_OP_INFLATE, BALLOON_OP_DEFLATE,
						 BALLOON_OP_REPORT };
		uint64_t op = ops[cmd - 2], cnt = pick_count(r, u16(r) % 520);
		uint64_t a2 = u8(r) % 16 ? 0 : u64(r);
		call(s, op, cnt, a2, 0, 0);
		break;
	}
	case 5: {                                  /* STATS with a garbage page */
		if (s->registered) {
			uint8_t *g = (uint8_t *)bh_fake_hva(s->f, s->cfg_gpa) +
				     BALLOON_CFG_GUEST_OFF;
			size_t len = u8(r) % 200;
			uint8_t fill = u8(r);
			for (size_t i = 0; i < len; i++)
				g[i] = fill >= 0xf0 ? 0xff : u8(r);  /* all-ones too */
		}
		call(s, BALLOON_OP_STATS, u8(r) % 8 ? 0 : 1, 0, 0, 0);
		break;
	}
	case 6: {                                  /* a raw hypercall */
		uint64_t a[5];
		for (int i = 0; i < 5; i++)
			a[i] = u64(r);
		a[0] %= 9;
		int64_t ret = call(s, a[0], a[1], a[2], a[3], a[4]);
		if (a[0] == BALLOON_OP_REGISTER)
			after_register(s, ret, a[1], a[2], a[3]);
		else if (a[0] == BALLOON_OP_UNREGISTER && ret == 0)
			s->registered = false;
		break;
	}
	case 7: {                                  /* the host side */
		struct balloon_host_stats st;
		switch (u8(r) % 5) {
		case 0: balloon_host_set_target(s->dev, u64(r) % (16 * MiB)); break;
		case 1: balloon_host_set_reporting(s->dev, u8(r) & 1); break;
		case 2: balloon_host_request_stats(s->dev); break;
		case 3: balloon_host_set_stats_period(s->dev, u16(r)); break;
		default: balloon_host_set_guest_size(s->dev, u64(r)); break;
		}
		balloon_host_stats(s->dev, &st);
		check_stats_json(s, &st);
		break;
	}
	default: {                                 /* time, unregister, plant */
		uint8_t k = u8(r);
		if (k < 128) {
			bh_fake_advance(s->f, (uint64_t)u16(r) * 1000000ULL);
		} else if (k < 192) {
			if (call(s, BALLOON_OP_UNREGISTER, 0, 0, 0, 0) == 0)
				s->registered = false;
		} else if (k >= 240) {
			/* the host's madvise fails for a while (k odd: on) */
			bh_fake_fail_discard(s->f, k & 1);
		} else {
			/* a page ksm is merging right now: BUSY, briefly */
			uint64_t pfn = (u16(r) % (R0_LEN / PG));
			hv_pstate_t v = bh_fake_get(s->f, pfn);
			if (hv_ps_state(v) != HV_PAGE_BALLOONED && !(v & HV_PF_BUSY)) {
				bh_fake_set(s->f, pfn, v | HV_PF_BUSY);
				call(s, BALLOON_OP_INFLATE, 1, 0, 0, 0);
				bh_fake_set(s->f, pfn, v);
			}
		}
		break;
	}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rd r = { data, size };
	uint8_t mode = u8(&r);
	struct session s = { 0 };
	struct balloon_host_config cfg = { .log = quiet };
	struct bh_backend be;

	s.f = fake(mode & 1);
	for (uint64_t p = 0; p < LOW_DEV; p++)
		bh_fake_set(s.f, p, hv_ps_make(HV_PAGE_PRIVATE, HV_PF_DEVICE, 0));
	/* plant shared frames and base pages for the hook paths */
	for (unsigned i = 0; i < ((mode >> 2) & 3) * 4u; i++) {
		uint64_t pfn = LOW_DEV + u16(&r) % (R0_LEN / PG - LOW_DEV);
		bh_fake_set(s.f, pfn, hv_ps_make(i & 1 ? HV_PAGE_FRAME : HV_PAGE_BASE,
						 HV_PF_USER1, i));
	}
	if (mode & 2) {
		cfg.on_page_released = hook;
	}
	bh_fake_backend(s.f, &be);
	s.dev = balloon_host_create(&be, &cfg);
	if (!s.dev)
		abort();
	for (int i = 0; i < MAX_STEPS && r.n; i++) {
		step(&r, &s);
		check(&s, false);
	}
	check(&s, true);
	if (getenv("BALLOON_FUZZ_DEBUG")) {   /* to see what an input did */
		struct balloon_host_stats st;
		balloon_host_stats(s.dev, &st);
		json_t *o = balloon_host_stats_to_json(&st);
		char *txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
		fprintf(stderr, "%s\n", txt ? txt : "(no json)");
		free(txt);
		json_decref(o);
	}
	balloon_host_destroy(s.dev);
	return 0;
}
