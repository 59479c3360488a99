/*
 * write.c - writing a RAM image (see images.h for the format): a stream of
 * guest-physical bytes becomes a sparse memory file whose zero pages are
 * holes, plus manifest.json, built in NAME.tmp-PID and renamed to NAME at
 * the end so that no reader ever sees half an image.
 *
 * Nonzero pages that follow each other in the stream go out in one pwrite;
 * a zero page only advances the offset, and the final ftruncate gives the
 * file its size (a trailing run of zero pages is a hole too).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "images.h"
#include "internal.h"

struct image_writer {
	char dir[PATH_MAX], tmp[PATH_MAX + 32];
	int fd;
	uint64_t ram_bytes, off;      /* off: bytes taken from the stream */
	uint64_t data_pages, zero_pages;
	uint8_t part[IMAGE_PAGE];     /* a partial page, npart bytes */
	size_t npart;
	XXH3_state_t *sum;
};

void img_remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			unlinkat(dirfd(d), e->d_name, 0);
	closedir(d);
	rmdir(dir);
}

int image_writer_open(const char *dir, uint64_t ram_bytes,
		      struct image_writer **out, char *err, size_t errlen)
{
	char path[PATH_MAX + 64];
	if (!ram_bytes || ram_bytes % IMAGE_PAGE) {
		snprintf(err, errlen, "%s: size %llu is not a multiple of 4 KiB",
			 dir, (unsigned long long)ram_bytes);
		return -EINVAL;
	}
	struct image_writer *w = calloc(1, sizeof(*w));
	if (!w || !(w->sum = XXH3_createState())) {
		free(w);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	XXH3_128bits_reset(w->sum);
	snprintf(w->dir, sizeof(w->dir), "%s", dir);
	snprintf(w->tmp, sizeof(w->tmp), "%s.tmp-%d", dir, (int)getpid());
	w->ram_bytes = ram_bytes;
	img_remove_dir(w->tmp);   /* a stale one of a dead process with our pid */
	if (mkdir(w->tmp, 0755)) {
		int e = errno;
		snprintf(err, errlen, "%s: mkdir: %s", w->tmp, strerror(e));
		XXH3_freeState(w->sum);
		free(w);
		return -e;
	}
	snprintf(path, sizeof(path), "%s/%s", w->tmp, IMAGE_MEMORY_FILE);
	w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (w->fd < 0) {
		int e = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(e));
		image_writer_abort(w);
		return -e;
	}
	*out = w;
	return 0;
}

uint64_t image_writer_offset(const struct image_writer *w)
{
	return w->off;
}

static int put_run(struct image_writer *w, const uint8_t *p, size_t len,
		   uint64_t off, char *err, size_t errlen)
{
	while (len) {
		ssize_t n = pwrite(w->fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? errno : EIO;
			snprintf(err, errlen, "%s/%s: write: %s", w->tmp,
				 IMAGE_MEMORY_FILE, strerror(e));
			return -e;
		}
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* Whole pages at stream offset off: runs of nonzero pages are written in
 * one call, zero pages skipped. */
static int put_pages(struct image_writer *w, const uint8_t *p, size_t npages,
		     uint64_t off, char *err, size_t errlen)
{
	size_t run = 0;   /* nonzero pages pending, ending before page i */
	for (size_t i = 0; i <= npages; i++) {
		bool zero = i == npages || image_page_is_zero(p + i * IMAGE_PAGE);
		if (i < npages) {
			if (zero) {
				w->zero_pages++;
			} else {
				w->data_pages++;
				img_checksum_page(w->sum, off / IMAGE_PAGE + i,
						  p + i * IMAGE_PAGE);
			}
		}
		if (!zero) {
			run++;
			continue;
		}
		if (run) {
			size_t first = i - run;
			int rc = put_run(w, p + first * IMAGE_PAGE, run * IMAGE_PAGE,
					 off + first * IMAGE_PAGE, err, errlen);
			if (rc)
				return rc;
			run = 0;
		}
	}
	return 0;
}

int image_writer_write(struct image_writer *w, const void *buf, size_t len,
		       char *err, size_t errlen)
{
	const uint8_t *p = buf;
	int rc;

	if (w->off + w->npart + len > w->ram_bytes) {
		snprintf(err, errlen, "%s: more than %llu bytes", w->dir,
			 (unsigned long long)w->ram_bytes);
		return -EFBIG;
	}
	if (w->npart) {
		size_t take = IMAGE_PAGE - w->npart < len ? IMAGE_PAGE - w->npart : len;
		memcpy(w->part + w->npart, p, take);
		w->npart += take;
		p += take;
		len -= take;
		if (w->npart < IMAGE_PAGE)
			return 0;
		if ((rc = put_pages(w, w->part, 1, w->off, err, errlen)))
			return rc;
		w->off += IMAGE_PAGE;
		w->npart = 0;
	}
	size_t pages = len / IMAGE_PAGE;
	if (pages) {
		if ((rc = put_pages(w, p, pages, w->off, err, errlen)))
			return rc;
		w->off += pages * IMAGE_PAGE;
		p += pages * IMAGE_PAGE;
		len -= pages * IMAGE_PAGE;
	}
	memcpy(w->part, p, len);
	w->npart = len;
	return 0;
}

static int sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = fsync(fd) ? -errno : 0;
	close(fd);
	return rc;
}

int image_writer_commit(struct image_writer *w, struct image_manifest *m,
			char *err, size_t errlen)
{
	char path[PATH_MAX + 64], old[PATH_MAX + 32], parent[PATH_MAX];
	int rc = 0;

	if (w->off != w->ram_bytes || w->npart) {
		snprintf(err, errlen, "%s: %llu of %llu bytes written", w->dir,
			 (unsigned long long)(w->off + w->npart),
			 (unsigned long long)w->ram_bytes);
		rc = -EIO;
		goto fail;
	}
	if (ftruncate(w->fd, (off_t)w->ram_bytes) || fsync(w->fd)) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", w->tmp, strerror(-rc));
		goto fail;
	}
	XXH128_hash_t h = XXH3_128bits_digest(w->sum);
	m->format = IMAGE_FORMAT;
	m->ram_bytes = w->ram_bytes;
	m->data_pages = w->data_pages;
	m->zero_pages = w->zero_pages;
	img_checksum_text(&h, m->checksum, sizeof(m->checksum));
	if (!m->created[0])
		img_now_utc(m->created, sizeof(m->created));
	snprintf(path, sizeof(path), "%s/%s", w->tmp, IMAGE_MANIFEST);
	if ((rc = img_manifest_write(path, m, err, errlen)))
		goto fail;
	sync_dir(w->tmp);
	/* replace an older image of that name: move it aside, move ours in,
	 * then drop the old one (rename cannot replace a full directory) */
	snprintf(old, sizeof(old), "%s.old-%d", w->dir, (int)getpid());
	bool had_old = rename(w->dir, old) == 0;
	if (rename(w->tmp, w->dir)) {
		rc = -errno;
		snprintf(err, errlen, "%s -> %s: %s", w->tmp, w->dir, strerror(-rc));
		if (had_old)
			rename(old, w->dir);
		goto fail;
	}
	if (had_old)
		img_remove_dir(old);
	snprintf(parent, sizeof(parent), "%s", w->dir);
	char *slash = strrchr(parent, '/');
	if (slash) {
		*slash = 0;
		sync_dir(parent[0] ? parent : "/");
	} else {
		sync_dir(".");
	}
	close(w->fd);
	XXH3_freeState(w->sum);
	free(w);
	return 0;
fail:
	image_writer_abort(w);
	return rc;
}

void image_writer_abort(struct image_writer *w)
{
	if (!w)
		return;
	if (w->fd >= 0)
		close(w->fd);
	img_remove_dir(w->tmp);
	XXH3_freeState(w->sum);
	free(w);
}
