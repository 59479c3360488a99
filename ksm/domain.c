/*
 * domain.c - sharing domains (their tables, frames memfd and base state),
 * VM lifetime helpers, and the self-check of every refcount invariant.
 *
 * Pages merge only within a domain (ESX-style salting: a VM in its own
 * domain shares with nobody).  A domain lives while it has VMs; its
 * frames memfd is closed when the last one leaves, which frees the frames
 * once no mapping holds them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "internal.h"

bool ksmvm_locate(const struct ksm_vm *vm, uint64_t gpa, uint32_t *r,
		uint32_t *idx)
{
	uint32_t i;

	for (i = 0; i < vm->nranges; i++) {
		if (gpa >= vm->r[i].gpa && gpa - vm->r[i].gpa < vm->r[i].len) {
			*r = i;
			*idx = (uint32_t)((gpa - vm->r[i].gpa) / KSM_PAGE);
			return true;
		}
	}
	return false;
}

void ksmvm_put(struct ksm *k, struct ksm_vm *vm)
{
	uint32_t r;

	(void)k;
	if (--vm->refs)
		return;
	for (r = 0; r < vm->nranges; r++) {
		free(vm->r[r].pg);
		free(vm->r[r].todo);
		free(vm->r[r].dirty);
		free(vm->r[r].nofast);
		free(vm->r[r].untouched);
	}
	free(vm->r);
	pthread_mutex_destroy(&vm->pause.mu);
	free(vm);
}

int kdom_grow_base(struct kdom *d, uint64_t npages)
{
	uint16_t *refs;
	uint8_t *flags;
	uint64_t *hash, old = d->base_npages;
	uint32_t *bf;

	if (npages <= old)
		return 0;
	bf = realloc(d->base_frame, npages * sizeof(*bf));
	if (!bf)
		return -ENOMEM;
	d->base_frame = bf;
	memset(bf + old, 0, (npages - old) * sizeof(*bf));
	refs = realloc(d->base_refs, npages * sizeof(*refs));
	if (refs)
		d->base_refs = refs;
	flags = realloc(d->base_flags, npages * sizeof(*flags));
	if (flags)
		d->base_flags = flags;
	hash = realloc(d->base_hash, npages * sizeof(*hash));
	if (hash)
		d->base_hash = hash;
	if (!refs || !flags || !hash)
		return -ENOMEM;
	memset(refs + old, 0, (npages - old) * sizeof(*refs));
	memset(flags + old, 0, (npages - old) * sizeof(*flags));
	memset(hash + old, 0, (npages - old) * sizeof(*hash));
	d->base_npages = npages;
	return 0;
}

static void kdom_free(struct kdom *d)
{
	unsigned s;

	for (s = 0; s < d->nslots; s++) {
		ktab_destroy(d->stable[s]);
		kctab_free(&d->cand[s]);
	}
	free(d->vslot);
	if (d->frames_fd >= 0)
		close(d->frames_fd);
	kbase_unmap(d);
	if (d->base_fd >= 0)
		close(d->base_fd);
	free(d->frames);
	free(d->base_refs);
	free(d->base_flags);
	free(d->base_hash);
	free(d->base_frame);
	free(d);
}

static int kdom_set_base(struct ksm *k, struct kdom *d, int base_fd,
			 uint64_t npages)
{
	struct stat st;
	int ret;

	d->base_fd = fcntl(base_fd, F_DUPFD_CLOEXEC, 3);
	if (d->base_fd < 0)
		return -errno;
	if (fstat(d->base_fd, &st) != 0)
		return -errno;
	d->base_dev = st.st_dev;
	d->base_ino = st.st_ino;
	ret = kdom_grow_base(d, npages) ?: kbase_map(d);
	return ret ? ret : kbase_init(k, d);
}

/* The domain `id` (created on first use), with one more VM in it. */
struct kdom *kdom_get(struct ksm *k, unsigned id, int base_fd,
		      uint64_t gpa_end, char *err, size_t errlen)
{
	uint64_t npages = (gpa_end + KSM_PAGE - 1) / KSM_PAGE;
	struct kdom *d = NULL;
	unsigned s;
	int ret;

	if (id != KSM_DOMAIN_PRIVATE)
		for (d = k->doms; d && (d->id != id || d->private_dom);
		     d = d->next)
			;
	if (!d) {
		d = calloc(1, sizeof(*d));
		if (!d)
			goto nomem;
		d->private_dom = id == KSM_DOMAIN_PRIVATE;
		d->id = d->private_dom ? 0x80000000u + k->next_private_dom++ : id;
		d->base_fd = -1;
		d->frames_fd = memfd_create("densevm-ksm-frames", MFD_CLOEXEC);
		d->nslots = knuma_slots(k);
		for (s = 0; s < d->nslots; s++) {
			d->stable[s] = ktab_new();
			if (!d->stable[s]) {
				kdom_free(d);
				goto nomem;
			}
		}
		if (d->frames_fd < 0) {
			snprintf(err, errlen, "ksm: memfd_create: %s",
				 strerror(errno));
			kdom_free(d);
			return NULL;
		}
		pthread_rwlock_wrlock(&k->list_lock);
		d->next = k->doms;
		k->doms = d;
		pthread_rwlock_unlock(&k->list_lock);
	}
	ret = 0;
	if (base_fd >= 0 && d->base_fd < 0)
		ret = kdom_set_base(k, d, base_fd, npages);
	else if (d->base_fd >= 0 && npages > d->base_npages)
		ret = kdom_grow_base(d, npages) ?: kbase_map(d) ?:
		      kbase_init(k, d);
	if (ret) {
		snprintf(err, errlen, "ksm: domain %u base memfd: %s", d->id,
			 strerror(-ret));
		if (d->nvms == 0) {
			d->nvms = 1;
			kdom_put(k, d);
		}
		return NULL;
	}
	d->nvms++;
	return d;
nomem:
	snprintf(err, errlen, "ksm: out of memory for domain %u", id);
	return NULL;
}

void kdom_put(struct ksm *k, struct kdom *d)
{
	struct kdom **pp;

	if (--d->nvms)
		return;
	pthread_rwlock_wrlock(&k->list_lock);
	for (pp = &k->doms; *pp && *pp != d; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = d->next;
	pthread_rwlock_unlock(&k->list_lock);
	kdom_free(d);
}

/* ----------------------------------------------------------- self-check */

#define FAIL(...) do { snprintf(err, errlen, __VA_ARGS__); \
		       ret = -EUCLEAN; goto out; } while (0)

/* Each fill block: its frames name it, its live count is right, and each
 * live frame holds its byte in full (the content every mapper reads). */
static int check_fill(struct kdom *d, char *err, size_t errlen)
{
	uint8_t buf[KSM_PAGE];
	unsigned b, i;
	int ret = 0;

	for (b = 0; b < KSM_FILL_BLOCKS; b++) {
		struct kfillblk *blk = &d->fills[b];
		uint32_t live = 0;

		if (!blk->byte)
			continue;
		for (i = 0; i < KSM_FILL_RUN; i++) {
			uint32_t f = blk->first + i;
			struct kframe *fr = &d->frames[f];

			if (f >= d->hwm || fr->fill != b + 1)
				FAIL("domain %u fill block %u: frame %u is not "
				     "its own", d->id, b, f);
			if (fr->used != KF_LIVE)
				continue;
			live++;
			if (kframe_read(d, f, buf) != 0 ||
			    kfill_byte(buf) != blk->byte)
				FAIL("domain %u fill frame %u does not hold "
				     "byte %#x", d->id, f, blk->byte);
		}
		if (live != blk->live)
			FAIL("domain %u fill block %u: %u live frames, counter "
			     "says %u", d->id, b, live, blk->live);
	}
out:
	return ret;
}

static int check_domain(struct ksm *k, struct kdom *d, char *err,
			size_t errlen)
{
	uint32_t *cnt = calloc((size_t)d->hwm + 1, sizeof(*cnt));
	uint32_t *bcnt = calloc(d->base_npages + 1, sizeof(*bcnt));
	uint64_t live = 0, bused = 0, bframes = 0, alone = 0, idx, pfn, p;
	struct ksm_vm *vm;
	off_t pos, end, size;
	uint32_t r, f;
	int ret = 0;
	char vmerr[256] = "";

	if (!cnt || !bcnt)
		FAIL("self-check: out of memory");
	for (vm = k->vms; vm; vm = vm->next) {
		uint64_t sharing = 0, base = 0, zero = 0, untouched = 0;

		if (vm->dom != d)
			continue;
		for (r = 0; r < vm->nranges; r++) {
			for (idx = 0; idx < vm->r[r].npages; idx++) {
				uint32_t own = kpg_own(&vm->r[r].pg[idx]);
				hv_pstate_t st;

				pfn = kpage_gpa(vm, r, (uint32_t)idx) / KSM_PAGE;
				st = kmap_get(vm, pfn);
				if (!own) {
					if (hv_ps_state(st) == HV_PAGE_FRAME)
						FAIL("vm '%s' gpa %#llx names frame %u, "
						     "which ksm did not map there",
						     vm->name,
						     (unsigned long long)(pfn * KSM_PAGE),
						     hv_ps_frame(st));
					continue;
				}
				/* another owner may take a ZERO page without
				 * telling (no reference to drop): reconciled
				 * at the page's next write */
				/* a release queued since the drain is one in
				 * flight: the owner queues it, then changes
				 * the state */
				if (kown_of(st) != own &&
				    !(hv_ps_flags(st) & HV_PF_BUSY) &&
				    hv_ps_state(own) != HV_PAGE_ZERO &&
				    !krel_queued(k, vm, pfn * KSM_PAGE))
					FAIL("vm '%s' gpa %#llx: ksm made it %s %u but "
					     "the map says state %u frame %u (changed "
					     "without ksm_page_released)", vm->name,
					     (unsigned long long)(pfn * KSM_PAGE),
					     hv_ps_state(own) == HV_PAGE_FRAME ?
					     "frame" : "base", hv_ps_frame(own),
					     hv_ps_state(st), hv_ps_frame(st));
				switch (hv_ps_state(own)) {
				case HV_PAGE_FRAME:
					f = hv_ps_frame(own);
					if (f >= d->hwm ||
					    d->frames[f].used != KF_LIVE)
						FAIL("vm '%s' gpa %#llx names frame %u, "
						     "which is not live", vm->name,
						     (unsigned long long)(pfn * KSM_PAGE), f);
					cnt[f]++;
					sharing++;
					break;
				case HV_PAGE_BASE:
					if (!vm->uses_base)
						FAIL("vm '%s' gpa %#llx is BASE but the VM "
						     "does not map the domain's base",
						     vm->name,
						     (unsigned long long)(pfn * KSM_PAGE));
					bcnt[pfn]++;
					sharing++;
					base++;
					break;
				case HV_PAGE_ZERO:
					if (kbit_test(vm->r[r].untouched, idx))
						untouched++;
					else
						zero++;
					break;
				}
			}
		}
		/* reported after the refcounts, which say more */
		if (!vmerr[0] && (sharing != CTR_GET(vm->c.pages_sharing) ||
				  base != CTR_GET(vm->c.base_pages) ||
				  zero != CTR_GET(vm->c.zero_pages) ||
				  untouched != CTR_GET(vm->c.untouched_pages)))
			snprintf(vmerr, sizeof(vmerr),
				 "vm '%s': map has %llu sharing (%llu base), "
				 "%llu zero, %llu untouched; counters say %llu "
				 "(%llu), %llu, %llu",
				 vm->name, (unsigned long long)sharing,
				 (unsigned long long)base,
				 (unsigned long long)zero,
				 (unsigned long long)untouched,
				 (unsigned long long)CTR_GET(vm->c.pages_sharing),
				 (unsigned long long)CTR_GET(vm->c.base_pages),
				 (unsigned long long)CTR_GET(vm->c.zero_pages),
				 (unsigned long long)CTR_GET(vm->c.untouched_pages));
	}
	for (f = 0; f < d->hwm; f++) {
		struct kframe *fr = &d->frames[f];

		if (fr->used == KF_LIVE) {
			live++;
			if (fr->refs != cnt[f] || (fr->refs == 0 && !fr->bpfn))
				FAIL("domain %u frame %u: refcount %u but %u pages "
				     "map it", d->id, f, fr->refs, cnt[f]);
			if (fr->bpfn) {
				p = fr->bpfn - 1;
				bframes++;
				if (p >= d->base_npages || d->base_frame[p] != f + 1 ||
				    !(d->base_flags[p] & KB_DATA))
					FAIL("domain %u frame %u names base page gpa "
					     "%#llx, which does not name it back or "
					     "holds no data", d->id, f,
					     (unsigned long long)(p * KSM_PAGE));
				if (!d->base_refs[p] && !fr->refs)
					FAIL("domain %u base frame %u (gpa %#llx) has "
					     "no users", d->id, f,
					     (unsigned long long)(p * KSM_PAGE));
				alone += !d->base_refs[p];
			}
			if (fr->pending)
				FAIL("domain %u frame %u: %u joins pending outside "
				     "a batch", d->id, f, fr->pending);
		} else if (fr->used == KF_PENDING) {
			FAIL("domain %u frame %u: pending outside a batch",
			     d->id, f);
		}
		if (fr->fill && (fr->fill > KSM_FILL_BLOCKS ||
				 !d->fills[fr->fill - 1].byte ||
				 f - d->fills[fr->fill - 1].first >= KSM_FILL_RUN))
			FAIL("domain %u frame %u names fill block %u, which does "
			     "not hold it", d->id, f, fr->fill - 1);
		if ((fr->used == KF_FILLRES) != (fr->fill && fr->used != KF_LIVE))
			FAIL("domain %u frame %u: state %u, fill block %u",
			     d->id, f, fr->used, fr->fill);
	}
	ret = check_fill(d, err, errlen);
	if (ret)
		goto out;
	if (live != d->frames_used)
		FAIL("domain %u: %llu live frames, counter says %llu", d->id,
		     (unsigned long long)live,
		     (unsigned long long)d->frames_used);
	/* every allocated block of the frames memfd belongs to a live frame */
	size = (off_t)(d->frames_file_pages * KSM_PAGE);
	for (pos = 0; pos < size; pos = end) {
		pos = lseek(d->frames_fd, pos, SEEK_DATA);
		if (pos < 0)
			break;
		end = lseek(d->frames_fd, pos, SEEK_HOLE);
		if (end < 0)
			end = size;
		for (p = (uint64_t)pos / KSM_PAGE;
		     p < (uint64_t)end / KSM_PAGE; p++)
			if (p >= d->hwm || d->frames[p].used != KF_LIVE)
				FAIL("domain %u frame %llu is free but its memfd "
				     "page is still allocated", d->id,
				     (unsigned long long)p);
	}
	for (p = 0; p < d->base_npages; p++) {
		if (d->base_refs[p] != bcnt[p])
			FAIL("domain %u base page gpa %#llx: refcount %u but %u "
			     "pages are BASE there", d->id,
			     (unsigned long long)(p * KSM_PAGE), d->base_refs[p],
			     bcnt[p]);
		if (d->base_refs[p] && !(d->base_flags[p] & KB_DATA))
			FAIL("domain %u base page gpa %#llx has users but no data",
			     d->id, (unsigned long long)(p * KSM_PAGE));
		bused += d->base_refs[p] != 0;
		f = d->base_frame[p];
		if (f && (f - 1 >= d->hwm || d->frames[f - 1].used != KF_LIVE ||
			  d->frames[f - 1].bpfn != p + 1))
			FAIL("domain %u base page gpa %#llx names frame %u, which "
			     "is not its live base frame", d->id,
			     (unsigned long long)(p * KSM_PAGE), f - 1);
	}
	if (bframes != d->bframes || alone != d->bframes_alone)
		FAIL("domain %u: %llu base frames (%llu without BASE pages), "
		     "counters say %llu (%llu)", d->id,
		     (unsigned long long)bframes, (unsigned long long)alone,
		     (unsigned long long)d->bframes,
		     (unsigned long long)d->bframes_alone);
	if (bused != d->base_used)
		FAIL("domain %u: %llu base pages in use, counter says %llu",
		     d->id, (unsigned long long)bused,
		     (unsigned long long)d->base_used);
	if (vmerr[0])
		FAIL("%s", vmerr);
out:
	free(cnt);
	free(bcnt);
	return ret;
}

int ksm_self_check(struct ksm *k, char *err, size_t errlen)
{
	if (errlen)
		err[0] = 0;
	return k->eng->self_check(k, err, errlen);
}

int kdense_self_check(struct ksm *k, char *err, size_t errlen)
{
	struct kdom *d;
	int ret = 0;

	klock(k);
	ksm_rcu_online();
	/* Another owner of the page-state map (the balloon) queues its
	 * release of a shared page before it changes the page's state, so a
	 * mismatch with that page's release queued is a release in flight,
	 * not a broken invariant (check_domain skips it).  Other failures
	 * with releases queued meanwhile are checked again after a drain. */
	for (int tries = 0; tries < 3; tries++) {
		krel_drain(k);
		ret = 0;
		for (d = k->doms; d && !ret; d = d->next)
			ret = check_domain(k, d, err, errlen);
		if (!ret || !krel_pending(k))
			break;
	}
	ksm_rcu_offline();
	kunlock(k);
	return ret;
}
