/*
 * stat.c - the duplicate analysis of a set of RAM images (image_stat, see
 * images.h for what each count means).
 *
 * Every nonzero page of every image becomes one entry (XXH3-64 of its
 * bytes, image, page number); holes are zero pages and are never read.
 * The entries are sorted by hash, and each run of equal hashes is split
 * into contents by comparing bytes against the run's representatives, so
 * a hash collision can never merge two different pages: the counts are
 * exact.  Each content's entries are then sorted by page number, which
 * groups the copies at the same GPA.
 *
 * The images are mapped read-only (MAP_SHARED of the memory file) and only
 * their data extents are touched.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <xxhash.h>
#include "images.h"

struct entry {
	uint64_t hash;
	uint64_t pfn;
	uint32_t img;
	uint32_t cls;     /* content within its hash run */
};

struct scan {
	struct image *const *ims;
	const uint8_t **map;
	struct entry *e;
	size_t n, cap;
	uint32_t cur;
	uint64_t from, to;    /* byte range counted */
	struct image_stat *out;
};

static int add_extent(void *ctx, uint64_t off, uint64_t len)
{
	struct scan *s = ctx;
	const uint8_t *base = s->map[s->cur];
	uint64_t s0 = off > s->from ? off : s->from;
	uint64_t e0 = off + len < s->to ? off + len : s->to;
	for (uint64_t o = s0; o < e0; o += IMAGE_PAGE) {
		const uint8_t *p = base + o;
		if (image_page_is_zero(p))
			continue;   /* a written-out zero page counts as zero */
		if (s->n == s->cap) {
			size_t nc = s->cap ? s->cap * 2 : 1 << 16;
			struct entry *ne = realloc(s->e, nc * sizeof(*ne));
			if (!ne)
				return -ENOMEM;
			s->e = ne;
			s->cap = nc;
		}
		s->e[s->n++] = (struct entry){
			.hash = XXH3_64bits(p, IMAGE_PAGE), .pfn = o / IMAGE_PAGE,
			.img = s->cur,
		};
	}
	return 0;
}

static int by_hash(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	if (x->img != y->img)
		return x->img < y->img ? -1 : 1;
	return x->pfn < y->pfn ? -1 : x->pfn > y->pfn;
}

static int by_cls_pfn(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	if (x->cls != y->cls)
		return x->cls < y->cls ? -1 : 1;
	if (x->pfn != y->pfn)
		return x->pfn < y->pfn ? -1 : 1;
	return x->img < y->img ? -1 : x->img > y->img;
}

static const uint8_t *page_of(const struct scan *s, const struct entry *e)
{
	return s->map[e->img] + e->pfn * IMAGE_PAGE;
}

/* One content: entries c[0..k), sorted by page number. */
static void count_content(struct scan *s, const struct entry *c, size_t k,
			  uint32_t *cnt)
{
	struct image_stat *o = s->out;
	unsigned nimg = 0;

	o->distinct++;
	for (size_t i = 0; i < k; i++)
		if (cnt[c[i].img]++ == 0)
			nimg++;
	for (size_t i = 0; i < k; i++) {
		uint32_t m = c[i].img;
		if (cnt[m]) {
			o->img[m].distinct++;
			if (cnt[m] == 1)
				o->img[m].unique++;
			cnt[m] = 0;   /* counted; also resets for the next content */
		}
	}
	for (size_t i = 0; i < k;) {
		size_t j = i;
		while (j < k && c[j].pfn == c[i].pfn)
			j++;
		/* j - i copies at one GPA, one per image */
		o->same_gpa_saving += j - i - 1;
		for (size_t x = i; x < j; x++) {
			if (j - i >= 2)
				o->img[c[x].img].same_gpa++;
			else if (nimg >= 2)
				o->img[c[x].img].other_gpa++;
		}
		i = j;
	}
}

/* A run of equal hashes: split it into contents by bytes, count each. */
static int split_run(struct scan *s, struct entry *r, size_t k, uint32_t *cnt)
{
	size_t nrep = 0, caprep = 4;
	size_t *rep = malloc(caprep * sizeof(*rep));
	if (!rep)
		return -ENOMEM;
	for (size_t i = 0; i < k; i++) {
		size_t c;
		for (c = 0; c < nrep; c++)
			if (!memcmp(page_of(s, &r[rep[c]]), page_of(s, &r[i]),
				    IMAGE_PAGE))
				break;
		if (c == nrep) {
			if (nrep == caprep) {
				size_t *nr = realloc(rep, 2 * caprep * sizeof(*rep));
				if (!nr) {
					free(rep);
					return -ENOMEM;
				}
				rep = nr;
				caprep *= 2;
			}
			rep[nrep++] = i;
		}
		r[i].cls = (uint32_t)c;
	}
	free(rep);
	s->out->hash_collisions += nrep - 1;
	qsort(r, k, sizeof(*r), by_cls_pfn);
	for (size_t i = 0; i < k;) {
		size_t j = i;
		while (j < k && r[j].cls == r[i].cls)
			j++;
		count_content(s, r + i, j - i, cnt);
		i = j;
	}
	return 0;
}

int image_stat(struct image *const *ims, unsigned n, struct image_stat *out,
	       char *err, size_t errlen)
{
	return image_stat_range(ims, n, 0, UINT64_MAX, out, err, errlen);
}

int image_stat_range(struct image *const *ims, unsigned n, uint64_t from,
		     uint64_t to, struct image_stat *out, char *err,
		     size_t errlen)
{
	struct scan s = { .ims = ims, .out = out, .from = from, .to = to };
	struct timespec t0, t1;
	uint32_t *cnt = NULL;
	int rc = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	memset(out, 0, sizeof(*out));
	out->n = n;
	out->img = calloc(n ? n : 1, sizeof(*out->img));
	s.map = calloc(n ? n : 1, sizeof(*s.map));
	cnt = calloc(n ? n : 1, sizeof(*cnt));
	if (!out->img || !s.map || !cnt) {
		rc = -ENOMEM;
		goto nomem;
	}
	for (unsigned i = 0; i < n; i++) {
		void *m = mmap(NULL, ims[i]->m.ram_bytes, PROT_READ, MAP_SHARED,
			       ims[i]->fd, 0);
		if (m == MAP_FAILED) {
			rc = -errno;
			snprintf(err, errlen, "%s: mmap: %s", ims[i]->dir,
				 strerror(-rc));
			goto out;
		}
		s.map[i] = m;
		s.cur = i;
		size_t before = s.n;
		rc = image_extents(ims[i], add_extent, &s, err, errlen);
		if (rc == -ENOMEM)
			goto nomem;
		if (rc)
			goto out;
		uint64_t e = to < ims[i]->m.ram_bytes ? to : ims[i]->m.ram_bytes;
		out->img[i].pages = e > from ? (e - from) / IMAGE_PAGE : 0;
		out->img[i].nonzero = s.n - before;
		out->img[i].zero = out->img[i].pages - out->img[i].nonzero;
		out->pages += out->img[i].pages;
		out->zero += out->img[i].zero;
		out->nonzero += out->img[i].nonzero;
	}
	qsort(s.e, s.n, sizeof(*s.e), by_hash);
	for (size_t i = 0; i < s.n;) {
		size_t j = i + 1;
		while (j < s.n && s.e[j].hash == s.e[i].hash)
			j++;
		if ((rc = split_run(&s, s.e + i, j - i, cnt)))
			goto nomem;
		i = j;
	}
	out->saving = out->nonzero - out->distinct;
	for (unsigned i = 0; i < n; i++) {
		struct image_stat_one *o = &out->img[i];
		o->dup_within = o->nonzero - o->distinct;
		out->same_gpa += o->same_gpa;
		out->other_gpa += o->other_gpa;
	}
	goto out;
nomem:
	snprintf(err, errlen, "image stat: out of memory");
	rc = -ENOMEM;
out:
	for (unsigned i = 0; s.map && i < n; i++)
		if (s.map[i])
			munmap((void *)s.map[i], ims[i]->m.ram_bytes);
	free(s.map);
	free(s.e);
	free(cnt);
	if (rc) {
		free(out->img);
		out->img = NULL;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	out->seconds = (double)(t1.tv_sec - t0.tv_sec) +
		       (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	return rc;
}

void image_stat_free(struct image_stat *s)
{
	free(s->img);
	s->img = NULL;
}
