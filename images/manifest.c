/*
 * manifest.c - manifest.json of a RAM image: struct image_manifest to and
 * from JSON (jansson), and the small helpers the format shares (the zero
 * test, the checksum's text form, where names resolve).
 *
 * Packages are one string of "name=version" words in the struct and a
 * JSON array in the file, so that jq and people read them as a list.
 */
#include <errno.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "images.h"
#include "internal.h"

bool image_page_is_zero(const void *p)
{
	const uint64_t *w = p;
	uint64_t acc = 0;
	/* an early exit every 64 bytes: most nonzero pages differ at once */
	for (unsigned i = 0; i < IMAGE_PAGE / 8; i += 8) {
		acc |= w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] |
		       w[i + 5] | w[i + 6] | w[i + 7];
		if (acc)
			return false;
	}
	return true;
}

void img_checksum_text(const XXH128_hash_t *h, char *out, size_t len)
{
	snprintf(out, len, "xxh3-128:%016llx%016llx",
		 (unsigned long long)h->high64, (unsigned long long)h->low64);
}

void img_checksum_page(XXH3_state_t *st, uint64_t pfn, const void *page)
{
	uint8_t le[8];
	for (int i = 0; i < 8; i++)
		le[i] = (uint8_t)(pfn >> (8 * i));
	XXH3_128bits_update(st, le, sizeof(le));
	XXH3_128bits_update(st, page, IMAGE_PAGE);
}

static void set_str(char *dst, size_t len, json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	snprintf(dst, len, "%s", s ? s : "");
}

int img_manifest_write(const char *path, const struct image_manifest *m,
		       char *err, size_t errlen)
{
	json_t *pk = json_array();
	char buf[sizeof(m->packages)], *save = NULL;
	snprintf(buf, sizeof(buf), "%s", m->packages);
	for (char *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save))
		json_array_append_new(pk, json_string(t));
	json_t *o = json_pack(
		"{s:i, s:s, s:s, s:s, s:o, s:s, s:s, s:I, s:I, s:I, s:I, s:f, s:s}",
		"format", m->format, "name", m->name, "kernel", m->kernel,
		"workload", m->workload, "packages", pk, "accel", m->accel,
		"created", m->created, "seed", (json_int_t)m->seed,
		"ram_bytes", (json_int_t)m->ram_bytes,
		"data_pages", (json_int_t)m->data_pages,
		"zero_pages", (json_int_t)m->zero_pages,
		"capture_seconds", m->capture_s, "checksum", m->checksum);
	if (!o) {
		snprintf(err, errlen, "%s: cannot build the manifest", path);
		return -ENOMEM;
	}
	int rc = json_dump_file(o, path, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(o);
	if (rc) {
		snprintf(err, errlen, "%s: cannot write", path);
		return -EIO;
	}
	return 0;
}

int img_manifest_read(const char *path, struct image_manifest *m, char *err,
		      size_t errlen)
{
	json_error_t je;
	json_t *o = json_load_file(path, 0, &je);

	memset(m, 0, sizeof(*m));
	if (!o) {
		snprintf(err, errlen, "%s: %s", path,
			 access(path, F_OK) ? "missing (not an image)" : je.text);
		return -EINVAL;
	}
	json_t *fmt = json_object_get(o, "format"),
	       *ram = json_object_get(o, "ram_bytes");
	if (!json_is_integer(fmt) || !json_is_integer(ram)) {
		snprintf(err, errlen, "%s: no format or ram_bytes", path);
		json_decref(o);
		return -EINVAL;
	}
	m->format = (int)json_integer_value(fmt);
	m->ram_bytes = (uint64_t)json_integer_value(ram);
	set_str(m->name, sizeof(m->name), o, "name");
	set_str(m->kernel, sizeof(m->kernel), o, "kernel");
	set_str(m->workload, sizeof(m->workload), o, "workload");
	set_str(m->accel, sizeof(m->accel), o, "accel");
	set_str(m->created, sizeof(m->created), o, "created");
	set_str(m->checksum, sizeof(m->checksum), o, "checksum");
	m->seed = (uint64_t)json_integer_value(json_object_get(o, "seed"));
	m->data_pages = (uint64_t)json_integer_value(json_object_get(o, "data_pages"));
	m->zero_pages = (uint64_t)json_integer_value(json_object_get(o, "zero_pages"));
	m->capture_s = json_number_value(json_object_get(o, "capture_seconds"));
	size_t i, off = 0;
	json_t *v;
	json_array_foreach(json_object_get(o, "packages"), i, v) {
		const char *s = json_string_value(v);
		if (s && off < sizeof(m->packages))
			off += (size_t)snprintf(m->packages + off,
						sizeof(m->packages) - off, "%s%s",
						off ? " " : "", s);
	}
	json_decref(o);
	return 0;
}

void img_now_utc(char *out, size_t len)
{
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* A directory of images: it has the marker the writers leave
 * (IMAGE_DIR_MARKER), or the capture userland.  build/images also holds
 * the images library's objects, and build/san/images only those: a plain
 * "is a directory" would pick the wrong one. */
static bool images_dir(const char *d)
{
	char p[PATH_MAX + 32];
	snprintf(p, sizeof(p), "%s/%s", d, IMAGE_DIR_MARKER);
	if (!access(p, F_OK))
		return true;
	snprintf(p, sizeof(p), "%s/userland", d);
	return !access(p, F_OK);
}

void image_mark_dir(const char *dir)
{
	char p[PATH_MAX + 32];
	snprintf(p, sizeof(p), "%s/%s", dir, IMAGE_DIR_MARKER);
	FILE *f = fopen(p, "a");
	if (f)
		fclose(f);
}

void image_default_dir(char *out, size_t outlen)
{
	const char *env = getenv("DENSEVM_IMAGES");
	char exe[PATH_MAX], cand[PATH_MAX + 16];

	if (env && *env) {
		snprintf(out, outlen, "%s", env);
		return;
	}
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0) {
		snprintf(out, outlen, "build/images");
		return;
	}
	exe[n] = 0;
	char *d = dirname(exe);
	/* build/densevm, build/tests/x, build/san/densevm, build/san/tests/x
	 * all find build/images */
	static const char *const up[] = { "/images", "/../images",
					  "/../../images" };
	for (unsigned i = 0; i < 3; i++) {
		snprintf(cand, sizeof(cand), "%s%s", d, up[i]);
		if (images_dir(cand)) {
			snprintf(out, outlen, "%s", cand);
			return;
		}
	}
	snprintf(out, outlen, "%s/images", d);
}

void image_resolve(const char *name, char *out, size_t outlen)
{
	char dir[PATH_MAX];
	if (strchr(name, '/')) {
		snprintf(out, outlen, "%s", name);
		return;
	}
	image_default_dir(dir, sizeof(dir));
	snprintf(out, outlen, "%s/%s", dir, name);
}
