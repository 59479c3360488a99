/*
 * image.c - `densevm image`: dispatches to capture (image_capture.c) and
 * owns the small subcommands: `stat` (the duplicate analysis of a set of
 * images, a table or --json), `synth` (a synthetic image, where no capture
 * is possible) and `verify` (checksums).  Names resolve with image_resolve
 * (build/images/NAME), a NAME with a '/' is a path.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "cli.h"
#include "image_cmd.h"
#include "images/images.h"

static const char image_usage[] =
"usage: densevm image COMMAND [ARGS]\n"
"\n"
"RAM images: guest-physical memory of real Linux guests, replayed as micro\n"
"guest RAM (VM key ram_image=NAME|PATH).  An image is a directory NAME/\n"
"with `memory` (sparse: zero pages are holes) and `manifest.json`.\n"
"Names live in build/images/ ($DENSEVM_IMAGES overrides).\n"
"\n"
"commands:\n"
"  capture NAME [--mem SIZE] [--boots N] [--workload W] ...\n"
"            boot Linux under QEMU, run a workload, save its memory\n"
"  stat IMAGE... [--json]\n"
"            zero, unique and duplicate pages per image and across the set,\n"
"            and what ideal page sharing would save\n"
"  synth NAME [--mem SIZE] [--seed S] [--family F]\n"
"            a synthetic image with the duplicate mix of VMs of one family\n"
"  verify IMAGE...\n"
"            recompute each image's checksum\n"
"\n"
"'densevm image COMMAND --help' for a command.\n";

static const char stat_usage[] =
"usage: densevm image stat IMAGE... [--json]\n"
"\n"
"Per image: pages, zero pages, nonzero pages, distinct contents, unique\n"
"pages (content once in the image), duplicates within the image, pages\n"
"whose content another image holds at the same GPA, and at another GPA.\n"
"For the set: the ideal saving of page sharing (every nonzero copy but one\n"
"of each content) and the part of it that same-GPA merging alone gets.\n"
"Comparisons are byte-exact (a hash finds candidates, bytes confirm).\n"
"\n"
"  --json    the figures as JSON on stdout\n"
"  --help    this text\n";

static const char synth_usage[] =
"usage: densevm image synth NAME [--mem SIZE] [--seed S] [--family F]\n"
"\n"
"Writes a synthetic image (for machines without QEMU, and for tests):\n"
"low memory and a kernel (at a per-seed KASLR offset) shared by the\n"
"family, shared page-cache pages at per-seed GPAs, repeated fill patterns,\n"
"private pages, and zero pages as holes.  The same arguments give the same\n"
"bytes.\n"
"\n"
"  --mem SIZE     a multiple of 2M, at least 8M (default 512M)\n"
"  --seed S       this VM (default 1)\n"
"  --family F     the software it runs (default 1)\n"
"  --dir DIR      where it goes (default build/images)\n"
"  --help         this text\n";

static double mib(uint64_t pages)
{
	return (double)pages * IMAGE_PAGE / (1 << 20);
}

static double pct(uint64_t a, uint64_t b)
{
	return b ? 100.0 * (double)a / (double)b : 0;
}

static json_t *one_json(const char *name, const struct image_stat_one *o)
{
	return json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
			 "image", name, "pages", (json_int_t)o->pages,
			 "zero", (json_int_t)o->zero,
			 "nonzero", (json_int_t)o->nonzero,
			 "distinct", (json_int_t)o->distinct,
			 "unique", (json_int_t)o->unique,
			 "dup_within", (json_int_t)o->dup_within,
			 "same_gpa", (json_int_t)o->same_gpa,
			 "other_gpa", (json_int_t)o->other_gpa);
}

static void print_json(struct image *const *ims, const struct image_stat *s)
{
	json_t *arr = json_array();
	for (unsigned i = 0; i < s->n; i++)
		json_array_append_new(arr, one_json(ims[i]->m.name[0] ?
						    ims[i]->m.name : ims[i]->dir,
						    &s->img[i]));
	json_t *o = json_pack(
		"{s:o, s:{s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, "
		"s:f, s:I, s:f}}",
		"images", arr, "set", "images", (int)s->n,
		"pages", (json_int_t)s->pages, "zero", (json_int_t)s->zero,
		"nonzero", (json_int_t)s->nonzero,
		"distinct", (json_int_t)s->distinct,
		"same_gpa", (json_int_t)s->same_gpa,
		"other_gpa", (json_int_t)s->other_gpa,
		"saving_pages", (json_int_t)s->saving,
		"saving_bytes", (json_int_t)(s->saving * IMAGE_PAGE),
		"saving_pct_of_nonzero", pct(s->saving, s->nonzero),
		"saving_pct_of_ram", pct(s->saving, s->pages),
		"same_gpa_saving_pct_of_nonzero", pct(s->same_gpa_saving, s->nonzero),
		"same_gpa_saving_pages", (json_int_t)s->same_gpa_saving,
		"seconds", s->seconds);
	json_dumpf(o, stdout, JSON_INDENT(2));
	putchar('\n');
	json_decref(o);
}

static void print_table(struct image *const *ims, const struct image_stat *s)
{
	printf("%-14s %9s %9s %9s %9s %9s %9s %9s %9s\n", "image", "pages",
	       "zero", "nonzero", "distinct", "unique", "dup-in", "same-GPA",
	       "other-GPA");
	for (unsigned i = 0; i < s->n; i++) {
		const struct image_stat_one *o = &s->img[i];
		printf("%-14.14s %9llu %9llu %9llu %9llu %9llu %9llu %9llu %9llu\n",
		       ims[i]->m.name[0] ? ims[i]->m.name : ims[i]->dir,
		       (unsigned long long)o->pages, (unsigned long long)o->zero,
		       (unsigned long long)o->nonzero,
		       (unsigned long long)o->distinct,
		       (unsigned long long)o->unique,
		       (unsigned long long)o->dup_within,
		       (unsigned long long)o->same_gpa,
		       (unsigned long long)o->other_gpa);
	}
	printf("set of %u: %llu pages (%.0f MiB), %llu zero (%.1f %%), %llu "
	       "nonzero (%.1f MiB), %llu distinct contents\n", s->n,
	       (unsigned long long)s->pages, mib(s->pages),
	       (unsigned long long)s->zero, pct(s->zero, s->pages),
	       (unsigned long long)s->nonzero, mib(s->nonzero),
	       (unsigned long long)s->distinct);
	printf("  identical in another image: at the same GPA %llu pages (%.1f %% "
	       "of nonzero), at another GPA %llu (%.1f %%)\n",
	       (unsigned long long)s->same_gpa, pct(s->same_gpa, s->nonzero),
	       (unsigned long long)s->other_gpa, pct(s->other_gpa, s->nonzero));
	printf("  ideal sharing saves %llu pages = %.1f MiB: %.1f %% of the "
	       "nonzero pages, %.1f %% of RAM\n", (unsigned long long)s->saving,
	       mib(s->saving), pct(s->saving, s->nonzero), pct(s->saving, s->pages));
	printf("  same-GPA merging alone saves %llu pages = %.1f MiB (%.1f %% of "
	       "the nonzero pages)\n", (unsigned long long)s->same_gpa_saving,
	       mib(s->same_gpa_saving), pct(s->same_gpa_saving, s->nonzero));
	printf("  (%.2f s; %llu hash collisions resolved by comparing bytes)\n",
	       s->seconds, (unsigned long long)s->hash_collisions);
}

/* Opens argv's images; NULL after printing why. */
static struct image **open_all(const char *cmd, char **names, int n)
{
	struct image **ims = calloc((size_t)n, sizeof(*ims));
	char path[PATH_MAX], err[PATH_MAX + 200];
	for (int i = 0; ims && i < n; i++) {
		image_resolve(names[i], path, sizeof(path));
		if (image_open(path, &ims[i], err, sizeof(err))) {
			fprintf(stderr, "densevm image %s: %s\n", cmd, err);
			for (int j = 0; j < i; j++)
				image_close(ims[j]);
			free(ims);
			return NULL;
		}
	}
	return ims;
}

static int cmd_stat_images(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "json", no_argument, 0, 'j' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	bool json = false;
	int o;
	optind = 1;
	while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (o == 'j')
			json = true;
		else if (o == 'h') {
			fputs(stat_usage, stdout);
			return 0;
		} else {
			fprintf(stderr, "densevm image stat: see --help\n");
			return 2;
		}
	}
	int n = argc - optind;
	if (n < 1) {
		fprintf(stderr, "densevm image stat: give at least one IMAGE "
			"(see --help)\n");
		return 2;
	}
	struct image **ims = open_all("stat", argv + optind, n);
	if (!ims)
		return 1;
	struct image_stat s;
	char err[600];
	int rc = image_stat(ims, (unsigned)n, &s, err, sizeof(err));
	if (rc)
		fprintf(stderr, "densevm image stat: %s\n", err);
	else if (json)
		print_json(ims, &s);
	else
		print_table(ims, &s);
	image_stat_free(&s);
	for (int i = 0; i < n; i++)
		image_close(ims[i]);
	free(ims);
	return rc ? 1 : 0;
}

static int cmd_synth(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "mem", required_argument, 0, 'm' },
		{ "seed", required_argument, 0, 's' },
		{ "family", required_argument, 0, 'f' },
		{ "dir", required_argument, 0, 'd' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	uint64_t mem = 512ull << 20, seed = 1, family = 1;
	const char *dir = NULL;
	char path[PATH_MAX], base[PATH_MAX], err[600], *end;
	int o;
	optind = 1;
	while ((o = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (o) {
		case 'm':
			if (parse_size(optarg, &mem) || mem < (8ull << 20) ||
			    mem % (2ull << 20)) {
				fprintf(stderr, "densevm image synth: --mem: '%s' must be "
					"a multiple of 2M, at least 8M\n", optarg);
				return 2;
			}
			break;
		case 's': case 'f': {
			uint64_t v = strtoull(optarg, &end, 0);
			if (*end || end == optarg) {
				fprintf(stderr, "densevm image synth: --%s: '%s' is not an "
					"integer\n", o == 's' ? "seed" : "family", optarg);
				return 2;
			}
			*(o == 's' ? &seed : &family) = v;
			break;
		}
		case 'd': dir = optarg; break;
		case 'h': fputs(synth_usage, stdout); return 0;
		default:
			fprintf(stderr, "densevm image synth: see --help\n");
			return 2;
		}
	}
	if (optind != argc - 1 || strchr(argv[optind], '/')) {
		fprintf(stderr, "densevm image synth: give one NAME without '/' "
			"(see --help)\n");
		return 2;
	}
	if (dir)
		snprintf(base, sizeof(base), "%s", dir);
	else
		image_default_dir(base, sizeof(base));
	mkdir(base, 0755);   /* the writer says why if it cannot be made */
	image_mark_dir(base);
	textf(path, sizeof(path), "%s/%s", base, argv[optind]);
	struct image_synth p;
	image_synth_default(&p, mem, seed);
	p.family = family;
	if (image_synth_write(path, argv[optind], &p, err, sizeof(err))) {
		fprintf(stderr, "densevm image synth: %s\n", err);
		return 1;
	}
	printf("%s\n", path);
	return 0;
}

static int cmd_verify(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help")) {
		fputs("usage: densevm image verify IMAGE...\n\nRecomputes each "
		      "image's checksum from its data and compares it with the "
		      "manifest.\n", argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	struct image **ims = open_all("verify", argv + 1, argc - 1);
	if (!ims)
		return 1;
	int bad = 0;
	char err[600];
	for (int i = 0; i < argc - 1; i++) {
		if (image_verify(ims[i], err, sizeof(err))) {
			fprintf(stderr, "densevm image verify: %s\n", err);
			bad++;
		} else {
			printf("%s: ok (%s)\n", ims[i]->dir, ims[i]->m.checksum);
		}
		image_close(ims[i]);
	}
	free(ims);
	return bad ? 1 : 0;
}

int cmd_image(int argc, char **argv)
{
	if (argc < 2) {
		fputs(image_usage, stderr);
		return 2;
	}
	const char *sub = argv[1];
	if (!strcmp(sub, "capture"))
		return cmd_image_capture(argc - 1, argv + 1);
	if (!strcmp(sub, "stat"))
		return cmd_stat_images(argc - 1, argv + 1);
	if (!strcmp(sub, "synth"))
		return cmd_synth(argc - 1, argv + 1);
	if (!strcmp(sub, "verify"))
		return cmd_verify(argc - 1, argv + 1);
	if (!strcmp(sub, "help") || !strcmp(sub, "--help") || !strcmp(sub, "-h")) {
		fputs(image_usage, stdout);
		return 0;
	}
	fprintf(stderr, "densevm image: unknown command '%s' (see 'densevm image "
		"--help')\n", sub);
	return 2;
}
