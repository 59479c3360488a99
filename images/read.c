/*
 * read.c - opening a RAM image, walking its data extents (SEEK_DATA /
 * SEEK_HOLE: holes are zero pages and are never read), checking its
 * checksum, and loading it into memory (image_load, see images.h).
 *
 * Loading reads each data extent in chunks of at most LOAD_CHUNK straight
 * into the destination, then hashes the chunk while it is in the cache:
 * the checksum (every data page, the whole image) and the guest's
 * per-page sums (the range only).  Pages outside the range go through a
 * scratch buffer, for the checksum alone; so do all pages when a put
 * function stores them (image_load_put), which gets the runs of nonzero
 * pages of the range.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "images.h"
#include "internal.h"
#include "guest/image_sums.h"

#define LOAD_CHUNK (1ull << 20)

int image_open(const char *dir, struct image **out, char *err, size_t errlen)
{
	char path[sizeof(((struct image *)0)->dir) + 32];
	struct stat st;
	struct image *im = calloc(1, sizeof(*im));
	int rc;

	if (!im) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	im->fd = -1;
	snprintf(im->dir, sizeof(im->dir), "%s", dir);
	if (stat(dir, &st) || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s: no such image (a directory with %s "
			 "and %s)", dir, IMAGE_MEMORY_FILE, IMAGE_MANIFEST);
		rc = -ENOENT;
		goto fail;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, IMAGE_MANIFEST);
	if ((rc = img_manifest_read(path, &im->m, err, errlen)))
		goto fail;
	if (im->m.format != IMAGE_FORMAT) {
		snprintf(err, errlen, "%s: format %d, this densevm reads %d", path,
			 im->m.format, IMAGE_FORMAT);
		rc = -EINVAL;
		goto fail;
	}
	if (!im->m.ram_bytes || im->m.ram_bytes % IMAGE_PAGE) {
		snprintf(err, errlen, "%s: ram_bytes %llu is not a multiple of 4 KiB",
			 path, (unsigned long long)im->m.ram_bytes);
		rc = -EINVAL;
		goto fail;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, IMAGE_MEMORY_FILE);
	im->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (im->fd < 0 || fstat(im->fd, &st)) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(-rc));
		goto fail;
	}
	if ((uint64_t)st.st_size != im->m.ram_bytes) {
		snprintf(err, errlen, "%s: %lld bytes, the manifest says %llu", path,
			 (long long)st.st_size, (unsigned long long)im->m.ram_bytes);
		rc = -EINVAL;
		goto fail;
	}
	im->npages = im->m.ram_bytes / IMAGE_PAGE;
	*out = im;
	return 0;
fail:
	image_close(im);
	return rc;
}

void image_close(struct image *im)
{
	if (!im)
		return;
	if (im->fd >= 0)
		close(im->fd);
	free(im);
}

int image_drop_cache(const struct image *im)
{
	int rc = posix_fadvise(im->fd, 0, 0, POSIX_FADV_DONTNEED);
	return -rc;
}

int image_extents(const struct image *im,
		  int (*fn)(void *ctx, uint64_t off, uint64_t len), void *ctx,
		  char *err, size_t errlen)
{
	uint64_t size = im->m.ram_bytes, off = 0;
	while (off < size) {
		off_t d = lseek(im->fd, (off_t)off, SEEK_DATA);
		if (d < 0 && errno == ENXIO)
			return 0;   /* only a hole is left */
		if (d < 0) {
			int e = errno;
			snprintf(err, errlen, "%s: SEEK_DATA: %s", im->dir, strerror(e));
			return -e;
		}
		off_t h = lseek(im->fd, d, SEEK_HOLE);
		if (h < 0) {
			int e = errno;
			snprintf(err, errlen, "%s: SEEK_HOLE: %s", im->dir, strerror(e));
			return -e;
		}
		/* file systems report blocks; the format speaks pages */
		uint64_t s = (uint64_t)d & ~(IMAGE_PAGE - 1);
		uint64_t e = ((uint64_t)h + IMAGE_PAGE - 1) & ~(IMAGE_PAGE - 1);
		if (e > size)
			e = size;
		if (s < off)
			s = off;
		if (e > s) {
			int rc = fn(ctx, s, e - s);
			if (rc)
				return rc;
		}
		off = e > off ? e : off + IMAGE_PAGE;
	}
	return 0;
}

static int read_full(const struct image *im, void *dst, uint64_t len,
		     uint64_t off, char *err, size_t errlen)
{
	uint8_t *p = dst;
	while (len) {
		ssize_t n = pread(im->fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? errno : EIO;
			snprintf(err, errlen, "%s: read at %llu: %s", im->dir,
				 (unsigned long long)off, n < 0 ? strerror(e)
							       : "short file");
			return -e;
		}
		p += n;
		len -= (uint64_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

struct load_ctx {
	const struct image *im;
	uint64_t from, to;
	uint8_t *dst;
	image_put_fn put;
	void *put_ctx;
	uint64_t *sums;
	uint8_t *scratch;
	XXH3_state_t *sum;
	uint64_t data_pages;
	struct image_load_stats *st;
	char *err;
	size_t errlen;
};

/* Hashes the pages [off, off + len) now at p; the range's go to sums. */
static void hash_chunk(struct load_ctx *c, const uint8_t *p, uint64_t off,
		       uint64_t len, bool in_range)
{
	for (uint64_t i = 0; i < len; i += IMAGE_PAGE) {
		const uint8_t *pg = p + i;
		if (image_page_is_zero(pg)) {
			/* a written-out zero page (not from our writer): no
			 * checksum part, and its sum stays the zero hash */
			if (in_range)
				c->st->pages_zero++;
			continue;
		}
		c->data_pages++;
		img_checksum_page(c->sum, (off + i) / IMAGE_PAGE, pg);
		if (in_range) {
			c->st->pages_loaded++;
			if (c->sums)
				c->sums[(off + i - c->from) / IMAGE_PAGE] =
					dvm_page_hash(pg);
		} else {
			c->st->pages_outside++;
		}
	}
}

/* The runs of nonzero pages of a chunk in the range, to c->put. */
static int put_runs(struct load_ctx *c, const uint8_t *p, uint64_t off,
		    uint64_t len)
{
	for (uint64_t i = 0, j; i < len; i = j) {
		if (image_page_is_zero(p + i)) {
			j = i + IMAGE_PAGE;
			continue;
		}
		for (j = i + IMAGE_PAGE; j < len && !image_page_is_zero(p + j);)
			j += IMAGE_PAGE;
		int rc = c->put(c->put_ctx, off + i, p + i, j - i);
		if (rc) {
			snprintf(c->err, c->errlen, "%s: storing the pages at "
				 "%#llx: %s", c->im->dir,
				 (unsigned long long)(off + i), strerror(-rc));
			return rc;
		}
	}
	return 0;
}

static int load_extent(void *ctx, uint64_t off, uint64_t len)
{
	struct load_ctx *c = ctx;
	c->st->extents++;
	for (uint64_t end = off + len; off < end;) {
		uint64_t n = end - off < LOAD_CHUNK ? end - off : LOAD_CHUNK;
		bool in = off >= c->from && off < c->to;
		/* never straddle a range boundary */
		if (in && off + n > c->to)
			n = c->to - off;
		if (!in && off < c->from && off + n > c->from)
			n = c->from - off;
		uint8_t *p = in && !c->put ? c->dst + (off - c->from) :
					     c->scratch;
		int rc = read_full(c->im, p, n, off, c->err, c->errlen);
		if (rc)
			return rc;
		hash_chunk(c, p, off, n, in);
		if (in && c->put && (rc = put_runs(c, p, off, n)))
			return rc;
		off += n;
	}
	return 0;
}

static int load(const struct image *im, uint64_t from, uint64_t to, void *dst,
		image_put_fn put, void *put_ctx, uint64_t *sums,
		struct image_load_stats *st, char *err, size_t errlen)
{
	struct image_load_stats local;
	uint64_t t0 = 0;
	struct timespec ts;
	int rc;

	if (!st)
		st = &local;
	memset(st, 0, sizeof(*st));
	clock_gettime(CLOCK_MONOTONIC, &ts);
	t0 = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	if (from % IMAGE_PAGE || to % IMAGE_PAGE || from > to ||
	    to > im->m.ram_bytes) {
		snprintf(err, errlen, "%s: load range [%#llx, %#llx) is not page "
			 "aligned inside the image's %llu bytes", im->dir,
			 (unsigned long long)from, (unsigned long long)to,
			 (unsigned long long)im->m.ram_bytes);
		return -EINVAL;
	}
	struct load_ctx c = {
		.im = im, .from = from, .to = to, .dst = dst, .put = put,
		.put_ctx = put_ctx, .sums = sums, .st = st, .err = err,
		.errlen = errlen,
	};
	c.scratch = malloc(LOAD_CHUNK);
	c.sum = XXH3_createState();
	if (!c.scratch || !c.sum) {
		snprintf(err, errlen, "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	XXH3_128bits_reset(c.sum);
	if (sums) {
		uint8_t zero[IMAGE_PAGE] __attribute__((aligned(8))) = { 0 };
		uint64_t zh = dvm_page_hash(zero);
		for (uint64_t i = 0; i < (to - from) / IMAGE_PAGE; i++)
			sums[i] = zh;
	}
	if ((rc = image_extents(im, load_extent, &c, err, errlen)))
		goto out;
	XXH128_hash_t h = XXH3_128bits_digest(c.sum);
	char got[48];
	img_checksum_text(&h, got, sizeof(got));
	if (strcmp(got, im->m.checksum) || c.data_pages != im->m.data_pages) {
		snprintf(err, errlen, "%s: corrupt: checksum %s and %llu data pages, "
			 "the manifest says %s and %llu", im->dir, got,
			 (unsigned long long)c.data_pages, im->m.checksum,
			 (unsigned long long)im->m.data_pages);
		rc = -EBADMSG;
		goto out;
	}
	st->pages_zero = (to - from) / IMAGE_PAGE - st->pages_loaded;
out:
	clock_gettime(CLOCK_MONOTONIC, &ts);
	st->seconds = ((double)((uint64_t)ts.tv_sec * 1000000000ull +
				(uint64_t)ts.tv_nsec) - (double)t0) / 1e9;
	XXH3_freeState(c.sum);
	free(c.scratch);
	return rc;
}

int image_load(const struct image *im, uint64_t from, uint64_t to, void *dst,
	       uint64_t *sums, struct image_load_stats *st, char *err,
	       size_t errlen)
{
	return load(im, from, to, dst, NULL, NULL, sums, st, err, errlen);
}

int image_load_put(const struct image *im, uint64_t from, uint64_t to,
		   image_put_fn put, void *ctx, uint64_t *sums,
		   struct image_load_stats *st, char *err, size_t errlen)
{
	return load(im, from, to, NULL, put, ctx, sums, st, err, errlen);
}

int image_verify(const struct image *im, char *err, size_t errlen)
{
	/* a load of the empty range: every data page through the scratch */
	return image_load(im, 0, 0, NULL, NULL, NULL, err, errlen);
}
