/*
 * test_images.c - the RAM image library (images/images.h) without VMs:
 *   - format round trip: zero pages are holes (SEEK_DATA/SEEK_HOLE find
 *     exactly the nonzero pages, st_blocks counts only them), the manifest
 *     comes back, the checksum verifies, and one changed byte is caught;
 *   - loading writes only the nonzero pages (mincore: the zero pages of
 *     fresh anonymous memory stay unallocated) and gives the guest's sums;
 *   - a failed or aborted write leaves nothing, a commit replaces an older
 *     image of the name;
 *   - image_stat gives exact counts on a hand-made set, and agrees with a
 *     brute-force reference on a random set of unequal sizes;
 *   - synthetic images are deterministic and have the mix they promise.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <unistd.h>
#include "testvm.h"
#include "images/images.h"
#include "guest/image_sums.h"
#include "guest/patterns.h"

#define PG 4096ull

static char g_dir[128];

static int setup(void **state)
{
	(void)state;
	snprintf(g_dir, sizeof(g_dir), "/tmp/densevm-test-images-%d", (int)getpid());
	mkdir(g_dir, 0755);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[200];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", g_dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* Page content for id (0 = zero). */
static void fill_id(void *page, unsigned id)
{
	uint64_t *w = page;
	for (unsigned i = 0; i < 512; i++)
		w[i] = id ? dvm_word(dvm_hash2(id, 77), i) : 0;
}

/* Writes an image whose page i has content ids[i], in chunks of `chunk`
 * bytes (odd sizes test partial pages). */
static void write_ids(const char *name, const unsigned *ids, size_t n,
		      size_t chunk)
{
	char path[256], err[256];
	struct image_writer *w;
	uint8_t *buf = malloc(n * PG);
	for (size_t i = 0; i < n; i++)
		fill_id(buf + i * PG, ids[i]);
	snprintf(path, sizeof(path), "%s/%s", g_dir, name);
	assert_int_equal(image_writer_open(path, n * PG, &w, err, sizeof(err)), 0);
	for (size_t off = 0; off < n * PG; off += chunk) {
		size_t len = n * PG - off < chunk ? n * PG - off : chunk;
		assert_int_equal(image_writer_write(w, buf + off, len, err,
						    sizeof(err)), 0);
	}
	struct image_manifest m = { 0 };
	snprintf(m.name, sizeof(m.name), "%s", name);
	snprintf(m.kernel, sizeof(m.kernel), "6.1.0-test");
	snprintf(m.workload, sizeof(m.workload), "unit");
	snprintf(m.packages, sizeof(m.packages), "busybox=1 python3=3.11");
	m.seed = 42;
	if (image_writer_commit(w, &m, err, sizeof(err)))
		fail_msg("commit: %s", err);
	free(buf);
}

static struct image *open_img(const char *name)
{
	char path[256], err[256];
	struct image *im;
	snprintf(path, sizeof(path), "%s/%s", g_dir, name);
	if (image_open(path, &im, err, sizeof(err)))
		fail_msg("open %s: %s", path, err);
	return im;
}

static bool exists(const char *name)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", g_dir, name);
	return access(path, F_OK) == 0;
}

static void round_trip(void **state)
{
	(void)state;
	enum { N = 2048 };
	static unsigned ids[N];
	uint64_t nonzero = 0;
	for (unsigned i = 0; i < N; i++) {
		/* zero at both ends and in runs in between */
		bool zero = i < 3 || i >= N - 5 || (i / 7) % 3 == 0;
		ids[i] = zero ? 0 : 1 + i % 500;
		nonzero += !zero;
	}
	write_ids("rt", ids, N, 1000);
	assert_false(exists("rt.tmp-0"));
	char tmp[64];
	snprintf(tmp, sizeof(tmp), "rt.tmp-%d", (int)getpid());
	assert_false(exists(tmp));

	struct image *im = open_img("rt");
	assert_int_equal(im->m.format, IMAGE_FORMAT);
	assert_int_equal(im->m.ram_bytes, N * PG);
	assert_int_equal(im->m.data_pages, nonzero);
	assert_int_equal(im->m.zero_pages, N - nonzero);
	assert_int_equal(im->m.seed, 42);
	assert_string_equal(im->m.kernel, "6.1.0-test");
	assert_string_equal(im->m.packages, "busybox=1 python3=3.11");
	assert_int_equal(strncmp(im->m.checksum, "xxh3-128:", 9), 0);
	assert_int_equal(strlen(im->m.checksum), 9 + 32);

	/* holes: exactly the zero pages */
	struct stat st;
	assert_int_equal(fstat(im->fd, &st), 0);
	assert_true((uint64_t)st.st_blocks * 512 >= nonzero * PG);
	assert_true((uint64_t)st.st_blocks * 512 <= nonzero * PG + 64 * 1024);
	for (unsigned i = 0; i < N; i++) {
		off_t d = lseek(im->fd, (off_t)(i * PG), SEEK_DATA);
		if (ids[i])
			assert_int_equal(d, (off_t)(i * PG));
		else
			assert_true(d < 0 || d > (off_t)(i * PG));
		off_t h = lseek(im->fd, (off_t)(i * PG), SEEK_HOLE);
		if (!ids[i])
			assert_int_equal(h, (off_t)(i * PG));
		else
			assert_true(h > (off_t)(i * PG));
	}
	char err[256];
	assert_int_equal(image_verify(im, err, sizeof(err)), 0);

	/* load the range [16 pages, N - 2): only nonzero pages touched */
	uint64_t from = 16 * PG, to = (N - 2) * PG, np = (to - from) / PG;
	uint8_t *dst = mmap(NULL, to - from, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(dst != MAP_FAILED);
	uint64_t *sums = calloc(np, 8);
	struct image_load_stats ls;
	if (image_load(im, from, to, dst, sums, &ls, err, sizeof(err)))
		fail_msg("load: %s", err);
	unsigned char *inc = malloc(np);
	assert_int_equal(mincore(dst, to - from, inc), 0);
	uint64_t want_loaded = 0;
	uint8_t page[PG] __attribute__((aligned(8)));
	for (uint64_t i = 0; i < np; i++) {
		unsigned id = ids[16 + i];
		want_loaded += id != 0;
		assert_int_equal(inc[i] & 1, id != 0);
		fill_id(page, id);
		assert_int_equal(sums[i], dvm_page_hash(page));
		if (id)
			assert_memory_equal(dst + i * PG, page, PG);
	}
	assert_int_equal(ls.pages_loaded, want_loaded);
	assert_int_equal(ls.pages_zero, np - want_loaded);
	assert_int_equal(ls.pages_loaded + ls.pages_outside, nonzero);
	munmap(dst, to - from);
	free(inc);
	free(sums);
	image_close(im);

	/* one byte changed: the checksum catches it */
	char path[256];
	snprintf(path, sizeof(path), "%s/rt/memory", g_dir);
	int fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	unsigned bad = 0;
	while (!ids[bad])
		bad++;
	assert_int_equal(pwrite(fd, "x", 1, (off_t)(bad * PG + 100)), 1);
	close(fd);
	im = open_img("rt");
	assert_int_equal(image_verify(im, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "corrupt"));
	uint8_t *d2 = malloc(N * PG);
	assert_int_equal(image_load(im, 0, N * PG, d2, NULL, NULL, err,
				    sizeof(err)), -EBADMSG);
	free(d2);
	image_close(im);
}

static void failed_writes_leave_nothing(void **state)
{
	(void)state;
	char path[256], err[256];
	struct image_writer *w;
	uint8_t page[PG];
	memset(page, 0xab, sizeof(page));

	snprintf(path, sizeof(path), "%s/short", g_dir);
	assert_int_equal(image_writer_open(path, 4 * PG, &w, err, sizeof(err)), 0);
	assert_int_equal(image_writer_write(w, page, PG, err, sizeof(err)), 0);
	struct image_manifest m = { 0 };
	assert_int_equal(image_writer_commit(w, &m, err, sizeof(err)), -EIO);
	assert_non_null(strstr(err, "4096 of 16384 bytes"));
	assert_false(exists("short"));

	assert_int_equal(image_writer_open(path, 4 * PG, &w, err, sizeof(err)), 0);
	assert_int_equal(image_writer_write(w, page, PG, err, sizeof(err)), 0);
	image_writer_abort(w);
	assert_false(exists("short"));
	char tmp[64];
	snprintf(tmp, sizeof(tmp), "short.tmp-%d", (int)getpid());
	assert_false(exists(tmp));

	assert_true(image_writer_open(path, 1000, &w, err, sizeof(err)) < 0);
	struct image *im;
	assert_int_equal(image_open(path, &im, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "no such image"));

	/* a second commit of a name replaces the first */
	unsigned a[4] = { 1, 0, 2, 0 }, b[4] = { 0, 3, 0, 0 };
	write_ids("again", a, 4, PG);
	write_ids("again", b, 4, PG);
	im = open_img("again");
	assert_int_equal(im->m.data_pages, 1);
	assert_int_equal(image_verify(im, err, sizeof(err)), 0);
	image_close(im);
	snprintf(tmp, sizeof(tmp), "again.old-%d", (int)getpid());
	assert_false(exists(tmp));
}

static void stat_exact(void **state)
{
	(void)state;
	unsigned A[8] = { 0, 1, 2, 2, 3, 0, 4, 5 };
	unsigned B[8] = { 0, 1, 3, 2, 6, 0, 0, 5 };
	unsigned C[8] = { 7, 1, 7, 7, 0, 0, 4, 8 };
	write_ids("sa", A, 8, PG);
	write_ids("sb", B, 8, PG);
	write_ids("sc", C, 8, PG);
	struct image *ims[3] = { open_img("sa"), open_img("sb"), open_img("sc") };
	struct image_stat s;
	char err[256];
	assert_int_equal(image_stat(ims, 3, &s, err, sizeof(err)), 0);
	const struct image_stat_one want[3] = {
		{ .pages = 8, .zero = 2, .nonzero = 6, .distinct = 5, .unique = 4,
		  .dup_within = 1, .same_gpa = 4, .other_gpa = 2 },
		{ .pages = 8, .zero = 3, .nonzero = 5, .distinct = 5, .unique = 5,
		  .dup_within = 0, .same_gpa = 3, .other_gpa = 1 },
		{ .pages = 8, .zero = 2, .nonzero = 6, .distinct = 4, .unique = 3,
		  .dup_within = 2, .same_gpa = 2, .other_gpa = 0 },
	};
	for (int i = 0; i < 3; i++)
		assert_memory_equal(&s.img[i], &want[i], sizeof(want[i]));
	assert_int_equal(s.pages, 24);
	assert_int_equal(s.zero, 7);
	assert_int_equal(s.nonzero, 17);
	assert_int_equal(s.distinct, 8);
	assert_int_equal(s.saving, 9);
	assert_int_equal(s.same_gpa_saving, 5);
	assert_int_equal(s.same_gpa, 9);
	assert_int_equal(s.other_gpa, 3);
	assert_int_equal(s.hash_collisions, 0);
	image_stat_free(&s);
	for (int i = 0; i < 3; i++)
		image_close(ims[i]);
}

/* The definitions of images.h, computed the slow way. */
static void reference(unsigned *const *ids, const size_t *n, unsigned k,
		      struct image_stat_one *o, uint64_t *distinct,
		      uint64_t *same_saving)
{
	memset(o, 0, k * sizeof(*o));
	unsigned maxid = 0;
	size_t maxn = 0;
	for (unsigned i = 0; i < k; i++) {
		maxn = n[i] > maxn ? n[i] : maxn;
		for (size_t p = 0; p < n[i]; p++)
			maxid = ids[i][p] > maxid ? ids[i][p] : maxid;
	}
	*distinct = 0;
	for (unsigned id = 1; id <= maxid; id++) {
		bool any = false;
		for (unsigned i = 0; i < k; i++)
			for (size_t p = 0; p < n[i]; p++)
				any |= ids[i][p] == id;
		*distinct += any;
	}
	*same_saving = 0;
	for (size_t p = 0; p < maxn; p++)
		for (unsigned i = 0; i < k; i++) {
			if (p >= n[i] || !ids[i][p])
				continue;
			bool first = true;
			for (unsigned j = 0; j < i; j++)
				first &= !(p < n[j] && ids[j][p] == ids[i][p]);
			*same_saving += !first;
		}
	for (unsigned i = 0; i < k; i++) {
		o[i].pages = n[i];
		for (size_t p = 0; p < n[i]; p++) {
			unsigned id = ids[i][p];
			if (!id) {
				o[i].zero++;
				continue;
			}
			o[i].nonzero++;
			size_t same = 0, firstp = p;
			for (size_t q = 0; q < n[i]; q++)
				if (ids[i][q] == id) {
					same++;
					firstp = q < firstp ? q : firstp;
				}
			o[i].distinct += firstp == p;
			o[i].unique += same == 1;
			bool sg = false, og = false;
			for (unsigned j = 0; j < k; j++) {
				if (j == i)
					continue;
				sg |= p < n[j] && ids[j][p] == id;
				for (size_t q = 0; q < n[j]; q++)
					og |= ids[j][q] == id;
			}
			o[i].same_gpa += sg;
			o[i].other_gpa += !sg && og;
		}
		o[i].dup_within = o[i].nonzero - o[i].distinct;
	}
}

static void stat_matches_reference(void **state)
{
	(void)state;
	size_t n[3] = { 300, 280, 320 };
	unsigned *ids[3];
	uint64_t rng = 5;
	const char *names[3] = { "r0", "r1", "r2" };
	for (int i = 0; i < 3; i++) {
		ids[i] = calloc(n[i], sizeof(unsigned));
		for (size_t p = 0; p < n[i]; p++) {
			uint64_t r = dvm_splitmix64(&rng);
			/* zero, a small shared alphabet, or a private id */
			ids[i][p] = r % 4 == 0 ? 0 : r % 4 == 1 ? 1000 + i * 1000 + p
					       : 1 + (r >> 8) % 60;
		}
		write_ids(names[i], ids[i], n[i], 3 * PG + 17);
	}
	struct image *ims[3] = { open_img("r0"), open_img("r1"), open_img("r2") };
	struct image_stat s;
	char err[256];
	assert_int_equal(image_stat(ims, 3, &s, err, sizeof(err)), 0);
	struct image_stat_one ref[3];
	uint64_t distinct, same_saving;
	reference(ids, n, 3, ref, &distinct, &same_saving);
	uint64_t nonzero = 0;
	for (int i = 0; i < 3; i++) {
		assert_memory_equal(&s.img[i], &ref[i], sizeof(ref[i]));
		nonzero += ref[i].nonzero;
	}
	assert_int_equal(s.distinct, distinct);
	assert_int_equal(s.saving, nonzero - distinct);
	assert_int_equal(s.same_gpa_saving, same_saving);
	image_stat_free(&s);
	for (int i = 0; i < 3; i++) {
		image_close(ims[i]);
		free(ids[i]);
	}
}

static void synthetic(void **state)
{
	(void)state;
	struct image_synth p;
	char path[256], err[256];
	uint8_t a[PG], b[PG];

	image_synth_default(&p, 64ull << 20, 1);
	snprintf(path, sizeof(path), "%s/syn1", g_dir);
	assert_int_equal(image_synth_write(path, "syn1", &p, err, sizeof(err)), 0);
	p.seed = 2;
	snprintf(path, sizeof(path), "%s/syn2", g_dir);
	assert_int_equal(image_synth_write(path, "syn2", &p, err, sizeof(err)), 0);
	/* the same parameters, the same bytes */
	image_synth_page(&p, 5000, a);
	image_synth_page(&p, 5000, b);
	assert_memory_equal(a, b, PG);

	struct image *ims[2] = { open_img("syn1"), open_img("syn2") };
	assert_int_equal(image_verify(ims[0], err, sizeof(err)), 0);
	assert_string_equal(ims[0]->m.accel, "synthetic");
	struct image_stat s;
	assert_int_equal(image_stat(ims, 2, &s, err, sizeof(err)), 0);
	/* about 43 % of each image holds data, and of it the family's
	 * kernel, cache, low memory and repeats are shared */
	double nz = (double)s.img[0].nonzero / (double)s.img[0].pages;
	assert_true(nz > 0.38 && nz < 0.48);
	assert_true(s.img[0].dup_within > 0);
	assert_true(s.other_gpa > s.nonzero / 4);
	assert_true(s.same_gpa > 0);
	assert_true(s.saving > s.nonzero / 4 && s.saving < s.nonzero / 2);
	image_stat_free(&s);
	image_close(ims[0]);
	image_close(ims[1]);
}

/* Pages of path in the page cache (mincore over a mapping of the file). */
static size_t cached_pages(const char *path)
{
	int fd = open(path, O_RDONLY);
	struct stat st;
	assert_true(fd >= 0 && fstat(fd, &st) == 0);
	size_t n = ((size_t)st.st_size + PG - 1) / PG, in = 0;
	void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	assert_true(m != MAP_FAILED);
	unsigned char *v = malloc(n);
	assert_non_null(v);
	assert_int_equal(mincore(m, (size_t)st.st_size, v), 0);
	for (size_t i = 0; i < n; i++)
		in += v[i] & 1;
	free(v);
	munmap(m, (size_t)st.st_size);
	close(fd);
	return in;
}

/* After a load the image's file is in the page cache; image_drop_cache
 * takes it out (densevm run calls it once every VM is loaded: the content
 * is in guest RAM, and a cached copy would stay charged to the memory
 * cgroup that read it). */
static void drop_cache(void **state)
{
	(void)state;
	struct image_synth p;
	char path[256], mem[300], err[256];
	struct statfs fs;

	if (statfs(g_dir, &fs) == 0 && fs.f_type == TMPFS_MAGIC) {
		print_message("[  SKIPPED ] drop_cache: %s is tmpfs (its pages "
			      "are the file)\n", g_dir);
		skip();
	}
	image_synth_default(&p, 16ull << 20, 3);
	snprintf(path, sizeof(path), "%s/cache", g_dir);
	assert_int_equal(image_synth_write(path, "cache", &p, err, sizeof(err)), 0);
	snprintf(mem, sizeof(mem), "%s/memory", path);
	int fd = open(mem, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(fsync(fd), 0);     /* dirty pages are not dropped */
	close(fd);
	struct image *im = open_img("cache");
	assert_int_equal(image_verify(im, err, sizeof(err)), 0);   /* reads it */
	size_t before = cached_pages(mem);
	assert_true(before >= im->npages / 4);   /* its data: about 43 % */
	assert_int_equal(image_drop_cache(im), 0);
	size_t after = cached_pages(mem);
	print_message("drop_cache: %zu of the file's pages cached after a "
		      "read, %zu after the drop\n", before, after);
	assert_int_equal(after, 0);
	image_close(im);
}

static void resolve(void **state)
{
	(void)state;
	char out[512];
	image_resolve("./x/y", out, sizeof(out));
	assert_string_equal(out, "./x/y");
	setenv("DENSEVM_IMAGES", "/srv/img", 1);
	image_resolve("boot0", out, sizeof(out));
	assert_string_equal(out, "/srv/img/boot0");
	unsetenv("DENSEVM_IMAGES");
	image_resolve("boot0", out, sizeof(out));
	assert_non_null(strstr(out, "images/boot0"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(round_trip),
		cmocka_unit_test(failed_writes_leave_nothing),
		cmocka_unit_test(stat_exact),
		cmocka_unit_test(stat_matches_reference),
		cmocka_unit_test(synthetic),
		cmocka_unit_test(drop_cache),
		cmocka_unit_test(resolve),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
