/*
 * cand.c - the candidate tables: pages hashed once and not shared, found
 * by content hash, so that a second page with the same bytes finds its
 * twin.  One table per domain and NUMA slot.
 *
 * Most of a guest's pages are unique and stay candidates for as long as
 * they do not change, so an entry's size is ksm's memory per guest page:
 * a 12-byte entry in an open-addressing table (linear probing, 5/8 to
 * 3/4 full: about 17 bytes per candidate), where a node of the liburcu
 * table with its bucket cost about 100.  Only the scanner touches these tables,
 * under ksm->lock (lookups, adds, deletes, and the other paths that drop
 * a page's candidacy: unshare, base groups, VM removal), so they need no
 * RCU; the content store (the stable tables, tables.c) keeps liburcu.
 *
 * The key is a 32-bit mix of the page's 64-bit hash (khash32), which the
 * page keeps in kpg.u (internal.h) so that its entry can be found again
 * when it stops being a candidate.  A lookup returns every live entry with
 * that key; the caller compares bytes.  A delete leaves a tombstone, so an
 * iteration may delete the entry it stands on or one it passed; the table
 * is rebuilt only by an add (never during an iteration), when entries and
 * tombstones fill 3/4 of it.
 *
 * Growth doubles the table (to 3/8 full): a first pass adds most of a
 * guest's pages, and growing by the 1.2x that keeps 5/8..3/4 cost 26
 * rebuilds and about 6 re-inserts per candidate (13 % of that pass on
 * 4 x 480 MiB of unique pages).  kcand_trim() brings a table that a pass
 * grew back to 5/8 full at the end of the pass, so the memory per
 * candidate between passes stays what it was.
 */
#include <stdlib.h>
#include <string.h>
#include "internal.h"


/* Any capacity (not only powers of two): a table is rebuilt when entries
 * and tombstones fill 3/4 of it; tight, it is 5/8 full. */
static uint32_t slot_of(const struct kctab *t, uint32_t key)
{
	return (uint32_t)(((uint64_t)(key * 0x9e3779b1u) * t->cap) >> 32);
}

static int table_init(struct kctab *t, uint32_t cap)
{
	t->e = calloc(cap, sizeof(*t->e));
	if (!t->e)
		return -1;
	t->cap = cap;
	t->live = t->tombs = 0;
	return 0;
}

static uint32_t step(const struct kctab *t, uint32_t i)
{
	return i + 1 < t->cap ? i + 1 : 0;
}

static void put(struct kctab *t, const struct kcent *src)
{
	uint32_t i = slot_of(t, src->key);

	while (t->e[i].state == KC_LIVE)
		i = step(t, i);
	if (t->e[i].state == KC_TOMB)
		t->tombs--;
	t->e[i] = *src;
	t->e[i].state = KC_LIVE;
	t->live++;
}

/* 5/8 full: between passes, and after a rebuild for tombstones */
static uint64_t tight_cap(const struct kctab *t)
{
	return (uint64_t)t->live * 8 / 5 + 1024;
}

/* 3/8 full: growth, which doubles the room before the next rebuild */
static uint64_t grow_cap(const struct kctab *t)
{
	return (uint64_t)t->live * 8 / 3 + 1024;
}

/* Rebuilds with room for cap entries (tombstones gone); false when out
 * of memory (the old table stays). */
static bool rebuild(struct kctab *t, uint64_t cap)
{
	struct kctab nt;
	uint32_t i;

	if (cap > UINT32_MAX)
		return false;
	if (!t->e)
		return table_init(t, (uint32_t)cap) == 0;
	if (table_init(&nt, (uint32_t)cap) != 0)
		return false;
	for (i = 0; i < t->cap; i++)
		if (t->e[i].state == KC_LIVE)
			put(&nt, &t->e[i]);
	free(t->e);
	*t = nt;
	return true;
}

void kctab_free(struct kctab *t)
{
	free(t->e);
	memset(t, 0, sizeof(*t));
}

uint64_t kctab_bytes(const struct kctab *t)
{
	return t->e ? (uint64_t)t->cap * sizeof(*t->e) : 0;
}

/* ------------------------------------------------------------- VM slots */

int kcand_vm_attach(struct kdom *d, struct ksm_vm *vm)
{
	uint32_t i;

	for (i = 0; i < d->nvslots && d->vslot[i]; i++)
		;
	if (i == d->nvslots) {
		uint32_t cap = d->nvslots ? d->nvslots * 2 : 16;
		struct ksm_vm **nv;

		if (cap > UINT16_MAX + 1u)
			return -1;
		nv = realloc(d->vslot, cap * sizeof(*nv));
		if (!nv)
			return -1;
		memset(nv + d->nvslots, 0, (cap - d->nvslots) * sizeof(*nv));
		d->vslot = nv;
		d->nvslots = cap;
	}
	d->vslot[i] = vm;
	vm->dslot = (uint16_t)i;
	return 0;
}

void kcand_vm_detach(struct kdom *d, struct ksm_vm *vm)
{
	if (vm->dslot < d->nvslots && d->vslot[vm->dslot] == vm)
		d->vslot[vm->dslot] = NULL;
}

/* ---------------------------------------------------------------- pages */

void kcand_add(struct ksm *k, struct kdom *d, unsigned slot, uint64_t hash,
	       struct ksm_vm *vm, uint32_t r, uint32_t idx)
{
	struct kctab *t = &d->cand[slot];
	struct kcent e = { .key = khash32(hash), .idx = idx,
			   .vm = vm->dslot, .r = (uint8_t)r };

	(void)k;
	/* u holds own for a page ksm made shared and someone else turned
	 * PRIVATE without telling: it is reconciled at its next write */
	if (kpg_own(&vm->r[r].pg[idx]))
		return;
	if ((!t->e || (uint64_t)(t->live + t->tombs + 1) * 4 >
		      (uint64_t)t->cap * 3) &&
	    !rebuild(t, t->tombs > t->live / 4 ? tight_cap(t) : grow_cap(t)))
		return;   /* a missed candidate only costs a missed merge */
	put(t, &e);
	vm->r[r].pg[idx].u = e.key;
	vm->r[r].pg[idx].pflags = (uint8_t)((vm->r[r].pg[idx].pflags & KP_REMAPPED) |
		KP_IN_CAND | (slot << KP_SLOT_SHIFT));
}

/* At the end of a pass: a table that growth left under 1/2 full goes
 * back to 5/8 (one rebuild). */
void kcand_trim(struct kdom *d)
{
	for (unsigned s = 0; s < KSM_MAX_NODES; s++) {
		struct kctab *t = &d->cand[s];

		if (t->e && (uint64_t)t->cap * 4 > tight_cap(t) * 5)
			rebuild(t, tight_cap(t));
	}
}

/* The slot a lookup of this hash starts at, on its way from memory while
 * the stable table is searched. */
void kcand_prefetch(const struct kdom *d, unsigned slot, uint64_t hash)
{
	const struct kctab *t = &d->cand[slot];

	if (t->e)
		__builtin_prefetch(&t->e[slot_of(t, khash32(hash))]);
}

struct kcent *kcand_first(struct kdom *d, unsigned slot, uint64_t hash,
			  struct kcand_it *it)
{
	struct kctab *t = &d->cand[slot];

	it->t = t;
	it->key = khash32(hash);
	if (!t->e || !t->live)
		return NULL;
	it->pos = slot_of(t, it->key);
	it->left = t->cap;
	return kcand_next_at(it);
}

/* The live entry with the key at or after it->pos, or NULL at an empty
 * slot. */
struct kcent *kcand_next_at(struct kcand_it *it)
{
	struct kctab *t = it->t;

	for (; it->left; it->left--, it->pos = step(t, it->pos)) {
		struct kcent *e = &t->e[it->pos];

		if (e->state == KC_EMPTY)
			return NULL;
		if (e->state == KC_LIVE && e->key == it->key)
			return e;
	}
	return NULL;
}

struct kcent *kcand_next(struct kcand_it *it)
{
	if (!it->left)
		return NULL;
	it->left--;
	it->pos = step(it->t, it->pos);
	return kcand_next_at(it);
}

struct kpage kcand_page(const struct kdom *d, const struct kcent *e)
{
	return (struct kpage){ d->vslot[e->vm], e->r, e->idx };
}

void kcand_del(struct ksm *k, struct kdom *d, struct kcent *e)
{
	struct kctab *t = &d->cand[kcand_slot_of(d, e)];
	struct ksm_vm *vm = d->vslot[e->vm];

	(void)k;
	if (e->state != KC_LIVE)
		return;   /* a flush in the middle of an iteration took it */
	/* the page's flag and key are this entry's (not a newer one's) */
	if (vm && vm->r[e->r].pg[e->idx].u == e->key)
		kpg_leave_cand(&vm->r[e->r].pg[e->idx]);
	e->state = KC_TOMB;
	t->live--;
	t->tombs++;
}

/* The table an entry lives in. */
unsigned kcand_slot_of(const struct kdom *d, const struct kcent *e)
{
	for (unsigned s = 0; s < d->nslots; s++)
		if (d->cand[s].e && e >= d->cand[s].e &&
		    e < d->cand[s].e + d->cand[s].cap)
			return s;
	return 0;
}

/* Removes the page's entry, found by the key it keeps in kpg.u. */
void kcand_del_page(struct ksm *k, struct ksm_vm *vm, uint32_t r,
		    uint32_t idx)
{
	struct ksmvm_range *rg = &vm->r[r];
	struct kdom *d = vm->dom;
	struct kcand_it it;
	struct kcent *e;
	unsigned slot;

	if (!(rg->pg[idx].pflags & KP_IN_CAND))
		return;
	slot = rg->pg[idx].pflags >> KP_SLOT_SHIFT;
	it.t = &d->cand[slot];
	it.key = rg->pg[idx].u;
	if (it.t->e) {
		it.pos = slot_of(it.t, it.key);
		it.left = it.t->cap;
		for (e = kcand_next_at(&it); e; e = kcand_next(&it)) {
			if (e->vm == vm->dslot && e->r == r && e->idx == idx) {
				kcand_del(k, d, e);
				return;
			}
		}
	}
	kpg_leave_cand(&rg->pg[idx]);
}

void kcand_del_vm(struct ksm *k, struct ksm_vm *vm)
{
	struct kdom *d = vm->dom;

	for (unsigned s = 0; s < d->nslots; s++) {
		struct kctab *t = &d->cand[s];

		for (uint32_t i = 0; t->e && i < t->cap; i++)
			if (t->e[i].state == KC_LIVE && t->e[i].vm == vm->dslot)
				kcand_del(k, d, &t->e[i]);
	}
}
