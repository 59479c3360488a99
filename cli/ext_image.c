/*
 * ext_image.c - RAM images in `densevm run` (a struct run_ext, ext.h): the
 * per-VM key ram_image=NAME|PATH loads an image (images/images.h) into a
 * micro guest's RAM before it starts, with the checksum table the guest's
 * `image` workload verifies against (guest/image_sums.h).
 *
 * Layout of a micro guest with an image (GPA == image offset, so an
 * image's same-GPA duplicates stay same-GPA between VMs):
 *   [0, first)        not loaded: the micro guest's own low pages (boot
 *                     info, argument pages, page tables, stacks), its ELF
 *                     image and the heap's allocator bitmap; `first` is
 *                     dvm_first_region_gpa(heap_start, RAM end), 6 MiB for
 *                     any guest under 64 GiB;
 *   [first, end)      the image's pages, zero pages left untouched (they
 *                     stay unallocated);
 *   [table, RAM end)  the checksum table: at the top of RAM below the PCI
 *                     hole, 2 MiB aligned; image pages there are not
 *                     loaded (give the VM a few MiB more RAM than the image
 *                     to load all of it).
 * The log line names both skipped ranges.
 *
 * prepare_vm opens the image (a bad name fails before any VM exists) and,
 * for the `image` workload, adds sums=TABLE to its arguments; start loads
 * every VM.  It runs before ksm's start (ext_list.c): the scanner must not
 * see RAM that the host is still writing behind the dirty log's back.
 * Loading the guest's own image keeps the memory-safety invariant: every
 * page then holds what this guest's image says, or zero.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "ext.h"
#include "images/images.h"
#include "guest/image_sums.h"
#include "guest/patterns.h"

#define ALIGN_2M (2ull << 20)

static int image_vm_key(const char *key, const char *val, char *err,
			size_t errlen)
{
	if (strcmp(key, "ram_image"))
		return -ENOENT;
	if (!*val) {
		snprintf(err, errlen, "ram_image: give an image NAME (build/images/"
			 "NAME) or a PATH");
		return -EINVAL;
	}
	return 0;
}

/* The end of the guest's first RAM range (RAM starts at GPA 0 and breaks
 * at the PCI hole). */
static uint64_t low_ram_end(uint64_t mem)
{
	return mem < HV_PCI_HOLE_START ? mem : HV_PCI_HOLE_START;
}

/* Where the checksum table goes for a guest of mem bytes. */
static uint64_t table_gpa(uint64_t mem)
{
	uint64_t end = low_ram_end(mem);
	uint64_t bytes = dvm_sums_bytes(end / IMAGE_PAGE);
	return (end - bytes) & ~(ALIGN_2M - 1);
}

/* 0 when no mem below the PCI hole holds it (cli.h) */
uint64_t image_vm_mem(uint64_t image_bytes)
{
	uint64_t img = (image_bytes + ALIGN_2M - 1) & ~(ALIGN_2M - 1);
	uint64_t mem = img + ALIGN_2M;
	if (mem < 16ull << 20)
		mem = 16ull << 20;
	/* the table sits below the top, 2 MiB aligned: grow until it is
	 * above the image and the free 2 MiB */
	while (table_gpa(mem) < img + ALIGN_2M)
		if ((mem += ALIGN_2M) >= HV_PCI_HOLE_START)
			return 0;   /* the image reaches the PCI hole */
	return mem;
}

static bool image_workload(const char *w)
{
	return w && !strncmp(w, "image", 5) && (w[5] == 0 || w[5] == ' ');
}

static int open_spec_image(const struct vm_spec *s, struct image **im,
			   char *err, size_t errlen)
{
	char path[PATH_MAX], e[PATH_MAX + 200];
	image_resolve(spec_ext(s, "ram_image"), path, sizeof(path));
	int rc = image_open(path, im, e, sizeof(e));
	if (rc)
		snprintf(err, errlen, "ram_image: %s", e);
	return rc;
}

static int image_prepare_vm(struct run_state *rs, const struct vm_spec *s,
			    struct hv_vm_config *c, char *err, size_t errlen)
{
	/* Arguments with sums= added.  hv_vm_create copies them into the boot
	 * info, and run.c creates each VM right after preparing it, so one
	 * buffer serves every VM in turn. */
	static char args[HV_ARGS_MAX];
	struct image *im;
	(void)rs;

	if (!spec_ext(s, "ram_image"))
		return 0;
	if (s->kind != HV_GUEST_MICRO) {
		snprintf(err, errlen, "ram_image: only micro guests take a RAM "
			 "image (Linux boots its own)");
		return -EINVAL;
	}
	if (s->mem < 16ull << 20) {
		snprintf(err, errlen, "ram_image: mem=%lluM is too small for an "
			 "image (at least 16M)", (unsigned long long)(s->mem >> 20));
		return -EINVAL;
	}
	int rc = open_spec_image(s, &im, err, errlen);
	if (rc)
		return rc;
	image_close(im);
	if (image_workload(c->cmdline) && !strstr(c->cmdline, "sums=")) {
		int n = snprintf(args, sizeof(args), "%s sums=0x%llx", c->cmdline,
				 (unsigned long long)table_gpa(s->mem));
		if (n < 0 || (size_t)n >= sizeof(args)) {
			snprintf(err, errlen, "workload: too long with sums= added");
			return -E2BIG;
		}
		c->cmdline = args;
	}
	return 0;
}

/* Loads the image of one VM; one log line. */
/* image_load_put's store: a run of the image's pages at GPA = offset. */
static int put_pages(void *ctx, uint64_t off, const void *src, uint64_t len)
{
	return hv_vm_populate(ctx, off, src, len);
}

static int load_vm(struct vm_run *r, char *err, size_t errlen)
{
	struct hv_vm *vm = r->vm;
	const struct hv_bootinfo *bi = hv_gpa_to_hva(vm, HV_BOOTINFO_GPA,
						     sizeof(*bi));
	unsigned nr;
	const struct hv_ram_range *rr = hv_vm_ranges(vm, &nr);
	struct image *im;
	char e[PATH_MAX + 300];

	if (!bi || !nr || rr[0].gpa != 0) {
		snprintf(err, errlen, "%s: ram_image: no micro guest boot info",
			 hv_vm_name(vm));
		return -EINVAL;
	}
	uint64_t ram_end = 0;
	for (unsigned i = 0; i < nr; i++)
		if (rr[i].gpa + rr[i].len > ram_end)
			ram_end = rr[i].gpa + rr[i].len;
	uint64_t first = dvm_first_region_gpa(bi->heap_start, ram_end);
	uint64_t table = table_gpa(hv_vm_mem_bytes(vm));
	if (table + dvm_sums_bytes(0) > rr[0].len || first >= table) {
		snprintf(err, errlen, "%s: ram_image: no room between the guest's "
			 "own pages (below %#llx) and the table at %#llx",
			 hv_vm_name(vm), (unsigned long long)first,
			 (unsigned long long)table);
		return -ENOSPC;
	}
	int rc = open_spec_image(r->spec, &im, e, sizeof(e));
	if (rc) {
		snprintf(err, errlen, "%s: %s", hv_vm_name(vm), e);
		return rc;
	}
	uint64_t end = im->m.ram_bytes < table ? im->m.ram_bytes : table;
	uint64_t from = first < end ? first : end;
	uint64_t npages = (end - from) / IMAGE_PAGE;
	uint64_t tbytes = dvm_sums_bytes(npages);
	struct dvm_sums_header *h = hv_gpa_to_hva(vm, table, tbytes);
	if (!h) {
		snprintf(err, errlen, "%s: ram_image: the table does not fit RAM",
			 hv_vm_name(vm));
		image_close(im);
		return -ENOSPC;
	}
	struct image_load_stats st;
	struct hv_populate *pop;
	rc = hv_vm_populate_begin(vm, from, end - from, &pop);
	if (!rc) {
		rc = image_load_put(im, from, end, put_pages, pop,
				    (uint64_t *)(h + 1), &st, e, sizeof(e));
		hv_vm_populate_end(pop);
	} else {
		snprintf(e, sizeof(e), "%s", strerror(-rc));
	}
	if (rc) {
		snprintf(err, errlen, "%s: ram_image: %s", hv_vm_name(vm), e);
		image_close(im);
		return rc;
	}
	uint8_t zero[IMAGE_PAGE] __attribute__((aligned(8))) = { 0 };
	*h = (struct dvm_sums_header){
		.magic = DVM_SUMS_MAGIC, .version = DVM_SUMS_VERSION,
		.header_bytes = sizeof(*h), .first_gpa = from, .npages = npages,
		.image_pages = im->npages, .zero_hash = dvm_page_hash(zero),
	};
	/* KVM logs only the guest's writes: tell the dirty log's consumers
	 * (hv_vm_populate marked the image's pages; zero pages stay out) */
	hv_dirty_mark(vm, table, tbytes);
	fprintf(stderr, "densevm: %s: ram_image %s: loaded %llu pages (%.1f MiB) "
		"of [%#llx, %#llx) in %.3f s, %llu zero pages left untouched; "
		"skipped [0, %#llx) (the micro guest's low pages, ELF and heap "
		"bitmap)%s%s; checksums at %#llx\n", hv_vm_name(vm),
		im->m.name[0] ? im->m.name : im->dir,
		(unsigned long long)st.pages_loaded,
		(double)st.pages_loaded * IMAGE_PAGE / (1 << 20),
		(unsigned long long)from, (unsigned long long)end, st.seconds,
		(unsigned long long)st.pages_zero, (unsigned long long)from,
		im->m.ram_bytes > end ? " and the image above " : "",
		im->m.ram_bytes > end ? "the table" : "",
		(unsigned long long)table);
	image_close(im);
	return 0;
}

static int image_start(struct run_state *rs, struct ctl_server *ctl,
		       char *err, size_t errlen)
{
	unsigned loaded = 0;
	(void)ctl;
	for (unsigned i = 0; i < rs->n; i++) {
		if (!spec_ext(rs->runs[i].spec, "ram_image"))
			continue;
		int rc = load_vm(&rs->runs[i], err, errlen);
		if (rc)
			return rc;
		loaded++;
	}
	/* The content is in guest RAM now.  The images' page cache would be
	 * a second copy, charged to the memory cgroup that read it first and
	 * reclaimed only under its limit: in `bench real` an arm that never
	 * neared its limit kept ~700 MiB of it in its usage.  Dropped after
	 * every VM loaded, so VMs that share an image read it once. */
	for (unsigned i = 0; i < rs->n; i++) {
		struct image *im;
		char e[PATH_MAX + 300];
		if (!spec_ext(rs->runs[i].spec, "ram_image") ||
		    open_spec_image(rs->runs[i].spec, &im, e, sizeof(e)))
			continue;
		int rc = image_drop_cache(im);
		if (rc)
			fprintf(stderr, "densevm: %s: ram_image: could not drop the "
				"image's page cache: %s\n", hv_vm_name(rs->runs[i].vm),
				strerror(-rc));
		image_close(im);
	}
	if (loaded)
		fprintf(stderr, "densevm: %u VM(s) loaded from RAM images; the "
			"images' page cache dropped\n", loaded);
	return 0;
}

const struct run_ext image_ext = {
	.name = "image",
	.vm_key = image_vm_key,
	.prepare_vm = image_prepare_vm,
	.start = image_start,
};
