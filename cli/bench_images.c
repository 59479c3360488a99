/*
 * bench_images.c - real guest content in `densevm bench`: a group's
 * `image = NAME|PATH ...` key gives its VMs RAM images (images/images.h,
 * loaded by `densevm run`'s ram_image=, cli/ext_image.c), VM k taking
 * image k % n of the list, and its `image` workload (guest/wl_image.c)
 * keeps, churns and verifies that content.
 *
 * Owns the key's parsing, the checks that need the whole file (the key
 * and the `image` workload go together; every image exists, so a missing
 * one is an error at load, before any arm runs; mem holds the largest
 * image, or is derived from it), and the workload's end: an `image`
 * workload that sets neither seconds= nor end_ms= gets end_ms at
 * BENCH_IMAGE_END_FRAC of the run, so each VM's final check of every page
 * runs inside the run (a VM the bench stopped first would prove nothing);
 * it then keeps its memory to the end.  bench_config.c writes the config
 * lines and bench_arm.c counts the checks that passed.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include "bench.h"
#include "cli.h"
#include "images/images.h"

#define MiB (1024.0 * 1024.0)

bool bench_wl_image(const char *wl)
{
	return !strncmp(wl, "image", 5) && (wl[5] == 0 || wl[5] == ' ');
}

int bench_images_key(struct bench_group *g, const char *section,
		     const char *val, char *msg, size_t msglen)
{
	char buf[512];
	snprintf(buf, sizeof(buf), "%s", val);
	g->nimages = 0;
	for (char *save, *t = strtok_r(buf, " \t,", &save); t;
	     t = strtok_r(NULL, " \t,", &save)) {
		if (g->nimages == BENCH_MAX_IMAGES) {
			snprintf(msg, msglen, "[%s] image: more than %d images",
				 section, BENCH_MAX_IMAGES);
			return -1;
		}
		if (strlen(t) >= 128 || strchr(t, '"')) {
			snprintf(msg, msglen, "[%s] image: '%.40s...' must be a NAME in "
				 "build/images or a PATH under 128 characters, no '\"'",
				 section, t);
			return -1;
		}
		snprintf(g->image[g->nimages++], sizeof(g->image[0]), "%s", t);
	}
	if (!g->nimages) {
		snprintf(msg, msglen, "[%s] image: name one or more images "
			 "(NAME in build/images, or PATH)", section);
		return -1;
	}
	return 0;
}

/* The group's workloads against its image key. */
static int check_workloads(const struct bench_scenario *sc,
			   const struct bench_group *g, char *err,
			   size_t errlen)
{
	const char *wls[2] = { g->workload, g->quick_workload };
	for (int i = 0; i < 2; i++) {
		if (!wls[i][0])
			continue;
		bool img = bench_wl_image(wls[i]);
		if (g->nimages && !img) {
			snprintf(err, errlen, "%s:%d: [group %s] image: the group's %s "
				 "must be an `image ...` workload (it is '%.40s')",
				 sc->path, g->image_line, g->name,
				 i ? "quick_workload" : "workload", wls[i]);
			return -EINVAL;
		}
		if (!g->nimages && img) {
			snprintf(err, errlen, "%s:%d: [group %s] an `image` workload "
				 "needs RAM images: add image = NAME (build/images) or "
				 "PATH", sc->path, g->workload_line, g->name);
			return -EINVAL;
		}
	}
	return 0;
}

/* Opens image i of group g; its path replaces the name, and *bytes gets
 * its size. */
static int open_one(const struct bench_scenario *sc, struct bench_group *g,
		    unsigned i, uint64_t *bytes, char *err, size_t errlen)
{
	char path[PATH_MAX], dir[PATH_MAX], e[PATH_MAX + 200];
	const char *name = g->image[i];
	image_resolve(name, path, sizeof(path));
	struct image *im;
	int rc = image_open(path, &im, e, sizeof(e));
	if (rc == -ENOENT || rc == -ENOTDIR) {
		image_default_dir(dir, sizeof(dir));
		if (strchr(name, '/'))
			snprintf(err, errlen, "%s:%d: [group %s] image: no image at %s",
				 sc->path, g->image_line, g->name, name);
		else
			snprintf(err, errlen, "%s:%d: [group %s] image: no image %s in "
				 "%s: run `make images` (or densevm image synth %s)",
				 sc->path, g->image_line, g->name, name, dir, name);
		return -EINVAL;
	}
	if (rc) {
		snprintf(err, errlen, "%s:%d: [group %s] image %s: %s", sc->path,
			 g->image_line, g->name, name, e);
		return -EINVAL;
	}
	*bytes = im->m.ram_bytes;
	image_close(im);
	if (strlen(path) >= 160) {
		/* it goes on one line of the run config (inih: 199 characters) */
		snprintf(err, errlen, "%s:%d: [group %s] image %s: its path is "
			 "longer than 159 characters", sc->path, g->image_line,
			 g->name, name);
		return -EINVAL;
	}
	snprintf(g->image[i], sizeof(g->image[0]), "%s", path);
	return 0;
}

int bench_images_resolve(struct bench_scenario *sc, char *err, size_t errlen)
{
	for (unsigned gi = 0; gi < sc->ngroups; gi++) {
		struct bench_group *g = &sc->group[gi];
		if (check_workloads(sc, g, err, errlen))
			return -EINVAL;
		uint64_t need = 0, largest = 0;
		char big[128] = "";
		for (unsigned i = 0; i < g->nimages; i++) {
			uint64_t bytes;
			char name[128];
			snprintf(name, sizeof(name), "%s", g->image[i]);   /* < 128 */
			if (open_one(sc, g, i, &bytes, err, errlen))
				return -EINVAL;
			uint64_t m = image_vm_mem(bytes);
			if (!m) {
				snprintf(err, errlen, "%s:%d: [group %s] image %s: %.0f MiB "
					 "does not fit a micro guest's RAM below the PCI "
					 "hole", sc->path, g->image_line, g->name, name,
					 (double)bytes / MiB);
				return -EINVAL;
			}
			if (m > need) {
				need = m;
				largest = bytes;
				snprintf(big, sizeof(big), "%s", name);
			}
		}
		if (!g->nimages)
			continue;
		if (!g->mem_set) {
			g->mem = need;
		} else if (g->mem < need) {
			snprintf(err, errlen, "%s:%d: [group %s] mem: %lluM cannot hold "
				 "image %s (%.0f MiB) with its checksum table and 2 MiB "
				 "of guest heap: at least %lluM (or leave mem out: it is "
				 "derived)", sc->path, g->mem_line, g->name,
				 (unsigned long long)(g->mem >> 20), big,
				 (double)largest / MiB,
				 (unsigned long long)(need >> 20));
			return -EINVAL;
		}
	}
	return 0;
}

void bench_images_workload(const char *wl, double duration, char *out,
			   size_t outlen)
{
	bool set = strstr(wl, "seconds=") || strstr(wl, "end_ms=");
	double end = duration * BENCH_IMAGE_END_FRAC;
	if (!bench_wl_image(wl) || set || end < 1)
		snprintf(out, outlen, "%s", wl);
	else
		snprintf(out, outlen, "%s end_ms=%.0f", wl, end * 1000);
}
