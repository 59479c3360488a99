/*
 * bench_image.c - how fast a RAM image loads (images/images.h image_load):
 * a 512 MiB image (build/images/boot0 when `make images` captured it,
 * else a synthetic one written to build/images/bench-synth) loaded into
 * fresh memory, as `densevm run` does for ram_image=:
 *   anon       private anonymous memory (RAM without ksm);
 *   memfd      MAP_PRIVATE of an empty memfd (RAM of a dense-ksm domain);
 *   memfd-2nd  the second VM of that domain: another MAP_PRIVATE mapping
 *              of the same memfd, after the first VM loaded its image;
 * each with and without the guest's per-page sums, and the page cache
 * warm (the file was read once before).  Reports medians of --reps runs,
 * the pages touched (mincore: only nonzero pages may be resident) and
 * writes build/results/image.json.  A benchmark: it asserts nothing, but
 * says whether the 0.5 s goal was met.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "bench_util.h"
#include "images/images.h"

#define GOAL_S 0.5

struct variant {
	const char *name;
	bool memfd, sums, second;
	double med, best;
	uint64_t resident;
};

static uint8_t *fresh(bool memfd, uint64_t len, int *fd)
{
	*fd = -1;
	if (memfd) {
		*fd = memfd_create("bench-image-base", MFD_CLOEXEC);
		if (*fd < 0 || ftruncate(*fd, (off_t)len))
			return NULL;
	}
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       memfd ? MAP_PRIVATE : MAP_PRIVATE | MAP_ANONYMOUS, *fd, 0);
	if (p == MAP_FAILED)
		return NULL;
	madvise(p, len, MADV_NOHUGEPAGE);   /* as guest RAM is mapped */
	return p;
}

static uint64_t resident_pages(uint8_t *p, uint64_t len)
{
	size_t n = len / IMAGE_PAGE;
	unsigned char *v = malloc(n);
	uint64_t r = 0;
	if (v && !mincore(p, len, v))
		for (size_t i = 0; i < n; i++)
			r += v[i] & 1;
	free(v);
	return r;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "out", required_argument, 0, 'o' },
		{ "guest", required_argument, 0, 'g' },
		{ "reps", required_argument, 0, 'r' },
		{ "image", required_argument, 0, 'i' },
		{ 0, 0, 0, 0 },
	};
	const char *out = "build/results", *img = NULL;
	int reps = 5, o;
	char path[PATH_MAX], err[PATH_MAX + 200];
	while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (o == 'o')
			out = optarg;
		else if (o == 'r')
			reps = atoi(optarg) > 0 ? atoi(optarg) : 1;
		else if (o == 'i')
			img = optarg;
		else if (o != 'g') {
			fprintf(stderr, "usage: bench_image [--out DIR] [--reps N] "
				"[--image NAME|PATH]\n");
			return 2;
		}
	}
	if (!img) {
		image_resolve("boot0", path, sizeof(path));
		if (access(path, F_OK)) {
			struct image_synth p;
			image_resolve("bench-synth", path, sizeof(path));
			char dir[PATH_MAX];
			image_default_dir(dir, sizeof(dir));
			mkdir(dir, 0755);
			image_synth_default(&p, 512ull << 20, 1);
			if (access(path, F_OK) &&
			    image_synth_write(path, "bench-synth", &p, err, sizeof(err))) {
				fprintf(stderr, "bench_image: %s\n", err);
				return 1;
			}
		}
	} else {
		image_resolve(img, path, sizeof(path));
	}
	struct image *im;
	if (image_open(path, &im, err, sizeof(err))) {
		fprintf(stderr, "bench_image: %s\n", err);
		return 1;
	}
	uint64_t len = im->m.ram_bytes;
	/* warm the page cache: a load measures memory, not the disk */
	if (image_verify(im, err, sizeof(err))) {
		fprintf(stderr, "bench_image: %s\n", err);
		return 1;
	}
	uint64_t *sums = malloc(len / IMAGE_PAGE * 8);
	struct variant v[] = {
		{ "anon", false, false, false, 0, 0, 0 },
		{ "anon+sums", false, true, false, 0, 0, 0 },
		{ "memfd", true, false, false, 0, 0, 0 },
		{ "memfd+sums", true, true, false, 0, 0, 0 },
		{ "memfd-2nd", true, true, true, 0, 0, 0 },
	};
	printf("bench_image: %s (%s), %llu MiB, %llu data pages; %d reps, "
	       "medians\n", im->dir, im->m.accel, (unsigned long long)(len >> 20),
	       (unsigned long long)im->m.data_pages, reps);
	for (size_t k = 0; k < sizeof(v) / sizeof(v[0]); k++) {
		double t[64];
		int n = reps < 64 ? reps : 64;
		for (int r = 0; r < n; r++) {
			int fd;
			uint8_t *dst = fresh(v[k].memfd, len, &fd), *first = NULL;
			struct image_load_stats st;
			if (dst && v[k].second) {
				/* the first VM of the domain loads; we time the next */
				first = dst;
				if (image_load(im, 0, len, first, sums, &st, err,
					       sizeof(err)))
					return 1;
				dst = mmap(NULL, len, PROT_READ | PROT_WRITE,
					   MAP_PRIVATE, fd, 0);
				if (dst == MAP_FAILED)
					dst = NULL;
				else
					madvise(dst, len, MADV_NOHUGEPAGE);
			}
			if (!dst || image_load(im, 0, len, dst, v[k].sums ? sums : NULL,
					       &st, err, sizeof(err))) {
				fprintf(stderr, "bench_image: %s: %s\n", v[k].name,
					dst ? err : strerror(errno));
				return 1;
			}
			t[r] = st.seconds;
			v[k].resident = resident_pages(dst, len);
			munmap(dst, len);
			if (first)
				munmap(first, len);
			if (fd >= 0)
				close(fd);
		}
		v[k].best = bench_pct(t, (size_t)n, 0);
		v[k].med = bench_pct(t, (size_t)n, 50);
		printf("  %-11s %.3f s (best %.3f s, %.2f GiB/s of data), %llu pages "
		       "resident after: %s\n", v[k].name, v[k].med, v[k].best,
		       (double)im->m.data_pages * IMAGE_PAGE / v[k].med / (1 << 30),
		       (unsigned long long)v[k].resident,
		       v[k].med < GOAL_S ? "under the 0.5 s goal" : "OVER the 0.5 s goal");
	}
	json_t *arr = json_array();
	for (size_t k = 0; k < sizeof(v) / sizeof(v[0]); k++)
		json_array_append_new(arr, json_pack(
			"{s:s, s:f, s:f, s:I}", "variant", v[k].name,
			"median_s", v[k].med, "best_s", v[k].best,
			"resident_pages", (json_int_t)v[k].resident));
	json_t *root = json_pack("{s:s, s:I, s:I, s:f, s:o}", "image", im->dir,
				 "ram_bytes", (json_int_t)len,
				 "data_pages", (json_int_t)im->m.data_pages,
				 "goal_s", GOAL_S, "loads", arr);
	char jp[PATH_MAX];
	mkdir(out, 0755);
	snprintf(jp, sizeof(jp), "%s/image.json", out);
	if (json_dump_file(root, jp, JSON_INDENT(2)))
		fprintf(stderr, "bench_image: cannot write %s\n", jp);
	else
		printf("bench_image: wrote %s\n", jp);
	json_decref(root);
	free(sums);
	image_close(im);
	return 0;
}
