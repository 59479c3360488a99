/*
 * images.h - RAM images: guest-physical memory saved from a real guest,
 * replayed as micro-guest RAM content.  The images library's one public
 * header (libimages.a): the on-disk format (write, open, read), loading an
 * image into memory, and the duplicate analysis of a set of images that
 * `densevm image stat` prints.  hv-core knows nothing of it: cli/ext_image.c
 * loads images into VMs through hv-core's RAM ranges.
 *
 * Format: an image is a directory NAME/ holding
 *   memory         the guest-physical bytes [0, ram_bytes), one file offset
 *                  per GPA, as a sparse file: every all-zero 4 KiB page is a
 *                  hole (SEEK_DATA/SEEK_HOLE find the data), so an image
 *                  costs disk only for its nonzero pages and loading it never
 *                  reads (or writes) a zero page;
 *   manifest.json  what it is: format version, name, kernel release,
 *                  packages, workload, seed, RAM size, page counts, capture
 *                  details, and the checksum of the content.
 * The checksum is XXH3-128 over every nonzero page in GPA order, each
 * preceded by its page number (little-endian 64 bits): zero pages add
 * nothing, so it is computed from the data extents alone, and a page that
 * moved, changed or vanished changes it.
 *
 * A writer builds the directory under a temporary name (NAME.tmp-PID) and
 * renames it to NAME only once everything is written and synced: a failed
 * or interrupted capture leaves no half-written image, and an image that
 * exists is whole.
 *
 * Every function returns 0 or -errno and, on error, one line in err.
 */
#ifndef DENSEVM_IMAGES_H
#define DENSEVM_IMAGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IMAGE_PAGE        4096ULL
#define IMAGE_FORMAT      1
#define IMAGE_MEMORY_FILE "memory"
#define IMAGE_MANIFEST    "manifest.json"

/* What manifest.json says.  Strings are "" when unknown. */
struct image_manifest {
	int format;                 /* IMAGE_FORMAT */
	char name[64];
	char kernel[96];            /* uname -r of the captured guest */
	char workload[128];
	char packages[4096];        /* "name=version name=version ..." */
	char accel[16];             /* tcg | kvm | synthetic */
	char created[32];           /* UTC, ISO 8601 */
	uint64_t seed;
	uint64_t ram_bytes;
	uint64_t data_pages;        /* nonzero pages */
	uint64_t zero_pages;
	double capture_s;           /* boot to saved, 0 if not captured */
	char checksum[48];          /* "xxh3-128:" + 32 hex digits */
};

/* ----------------------------------------------------------------- write */

struct image_writer;

/* Starts the image dir (which must not be written by anyone else): a
 * temporary directory beside it, removed by abort or replaced on commit.
 * ram_bytes is the image size, a multiple of 4 KiB. */
int image_writer_open(const char *dir, uint64_t ram_bytes,
		      struct image_writer **out, char *err, size_t errlen);
/* Appends the next len bytes of guest-physical memory (any length; the
 * writer keeps a partial page).  Zero pages become holes. */
int image_writer_write(struct image_writer *w, const void *buf, size_t len,
		       char *err, size_t errlen);
/* Bytes written so far. */
uint64_t image_writer_offset(const struct image_writer *w);
/* Needs exactly ram_bytes written.  Fills m's format, ram_bytes, page
 * counts, checksum and created (if empty), writes manifest.json, syncs and
 * renames the directory to its name (an older image of that name is
 * replaced).  The writer is freed whatever the outcome. */
int image_writer_commit(struct image_writer *w, struct image_manifest *m,
			char *err, size_t errlen);
/* Removes the temporary directory and frees the writer. */
void image_writer_abort(struct image_writer *w);

/* ------------------------------------------------------------------ read */

struct image {
	char dir[512];
	int fd;                     /* memory, read-only */
	uint64_t npages;            /* ram_bytes / 4 KiB */
	struct image_manifest m;
};

/* Opens an image directory and checks its manifest against its memory
 * file (format, size).  The content is checked by image_load/image_verify. */
int image_open(const char *dir, struct image **out, char *err, size_t errlen);
void image_close(struct image *im);
/* Drops the image file's clean pages from the page cache once its content
 * is in guest RAM: otherwise the host holds it twice, and a memory cgroup
 * that read it first stays charged for it.  0, or -errno. */
int image_drop_cache(const struct image *im);

/* Calls fn for each data extent [off, off + len) of the memory file, in
 * order (page aligned; SEEK_DATA/SEEK_HOLE).  A nonzero fn return stops. */
int image_extents(const struct image *im,
		  int (*fn)(void *ctx, uint64_t off, uint64_t len), void *ctx,
		  char *err, size_t errlen);

/* Recomputes the checksum from the data and compares it with the
 * manifest's (and the page counts); -EBADMSG when they differ. */
int image_verify(const struct image *im, char *err, size_t errlen);

/* ------------------------------------------------------------------ load */

/*
 * Loads the image's pages [from, to) (byte offsets == GPAs, page aligned)
 * into dst, where dst[0] stands for offset `from`.  Only nonzero pages are
 * written: dst's pages for zero pages are never touched, so on fresh
 * anonymous or memfd memory they stay unallocated.  Every data page of the
 * image is read (those outside the range into a scratch buffer) so that
 * the checksum is verified as a whole: -EBADMSG when it differs.
 *
 * sums, when not NULL, gets dvm_page_hash (guest/image_sums.h) of every
 * page of the range, (to - from) / 4K entries, zero pages included.
 */
struct image_load_stats {
	uint64_t pages_loaded;      /* nonzero pages written to dst */
	uint64_t pages_zero;        /* zero pages of the range, left alone */
	uint64_t pages_outside;     /* nonzero pages outside the range */
	uint64_t extents;
	double seconds;
};
int image_load(const struct image *im, uint64_t from, uint64_t to, void *dst,
	       uint64_t *sums, struct image_load_stats *st, char *err,
	       size_t errlen);
/* The same, storing each run of nonzero pages of the range through
 * put(ctx, off, src, len) (off: the run's image offset) instead of into
 * a buffer: for memory that a plain store would fault in the wrong way
 * (hv-core's hv_vm_populate).  A put error stops the load. */
typedef int (*image_put_fn)(void *ctx, uint64_t off, const void *src,
			    uint64_t len);
int image_load_put(const struct image *im, uint64_t from, uint64_t to,
		   image_put_fn put, void *ctx, uint64_t *sums,
		   struct image_load_stats *st, char *err, size_t errlen);

/* ------------------------------------------------------------------ stat */

/*
 * Duplicate analysis of n images (byte-exact: XXH3 finds candidates, a
 * compare of the bytes confirms every match; a hash is never trusted).
 * Per image, over its nonzero pages:
 *   distinct    different contents;
 *   unique      pages whose content occurs once in this image;
 *   dup_within  nonzero - distinct: pages sharing within the image saves;
 *   same_gpa    pages whose content another image holds at the same GPA;
 *   other_gpa   the other pages whose content another image holds (at a
 *               different GPA, necessarily).
 * Over the set:
 *   distinct     different nonzero contents of all images;
 *   saving       nonzero - distinct: what ideal sharing saves, in pages
 *                (every copy of a content but one; zero pages are left out:
 *                a loaded image never makes them resident);
 *   same_gpa_saving  the part of it that merging only equal pages at equal
 *                GPAs gets (per GPA: nonzero pages - distinct contents).
 */
struct image_stat_one {
	uint64_t pages, zero, nonzero, distinct, unique, dup_within;
	uint64_t same_gpa, other_gpa;
};

struct image_stat {
	unsigned n;
	struct image_stat_one *img;  /* n of them */
	uint64_t pages, zero, nonzero, distinct;
	uint64_t saving, same_gpa_saving;
	uint64_t same_gpa, other_gpa;
	uint64_t hash_collisions;    /* equal XXH3, different bytes */
	double seconds;
};

/* Pages beyond an image's ram_bytes count as zero; images may differ in
 * size. */
int image_stat(struct image *const *ims, unsigned n, struct image_stat *out,
	       char *err, size_t errlen);
/* The same over the pages [from, to) of each image only (byte offsets ==
 * GPAs; what a replay loads): pages outside are not counted at all. */
int image_stat_range(struct image *const *ims, unsigned n, uint64_t from,
		     uint64_t to, struct image_stat *out, char *err,
		     size_t errlen);
void image_stat_free(struct image_stat *s);

/* ------------------------------------------------------------ synthetic */

/*
 * A synthetic image that mixes content the way VMs running the same
 * software do (for tests and benchmarks where no capture exists): of the
 * RAM, in 2 MiB-granular layout decided by the seed,
 *   low memory     [0, 2 MiB): the same in every image of the family;
 *   kernel         kernel_pct %: the family's kernel pages at a per-seed
 *                  2 MiB-aligned offset (KASLR): same-GPA duplicates where
 *                  two seeds' offsets agree, other-GPA ones elsewhere;
 *   page cache     cache_pct %: pages of the family's shared files at
 *                  per-seed scattered GPAs (cross-GPA duplicates);
 *   repeats        repeat_pct %: a few fill patterns, many times each
 *                  (duplicates within an image and across);
 *   private        private_pct %: unique to the seed;
 *   zero           the rest, as holes.
 * Content is a function of (family, seed, GPA) only: the same parameters
 * give the same bytes.
 */
struct image_synth {
	uint64_t ram_bytes;         /* multiple of 2 MiB, at least 8 MiB */
	uint64_t seed, family;
	unsigned kernel_pct, cache_pct, repeat_pct, private_pct;
};
void image_synth_default(struct image_synth *p, uint64_t ram_bytes,
			 uint64_t seed);
/* Fills page pfn of the synthetic image into page (4 KiB). */
void image_synth_page(const struct image_synth *p, uint64_t pfn, void *page);
/* Writes the image to dir (image_writer: temp name, then rename). */
int image_synth_write(const char *dir, const char *name,
		      const struct image_synth *p, char *err, size_t errlen);

/* ------------------------------------------------------------- helpers */

/* Whether the 4 KiB at p are all zero. */
bool image_page_is_zero(const void *p);
/* Where an image NAME lives: $DENSEVM_IMAGES/NAME, else images/NAME next
 * to the running binary, else ../images/NAME (build/san/densevm uses
 * build/images).  A name with a '/' is a path and is returned as is. */
void image_resolve(const char *name_or_path, char *out, size_t outlen);
/* The directory image_resolve puts names in. */
void image_default_dir(char *out, size_t outlen);
/* Marks dir as a directory of images (for image_default_dir). */
#define IMAGE_DIR_MARKER ".densevm-images"
void image_mark_dir(const char *dir);

#endif
