/*
 * linux_boot.c - loading a Linux kernel into guest RAM (x86 boot protocol,
 * Documentation/arch/x86/boot.rst and zero-page.rst).
 *
 * Owns: recognising and validating the kernel file (an uncompressed vmlinux
 * ELF, or a bzImage), copying it, the initrd and the cmdline into guest RAM,
 * and building the boot_params zero page (setup header, e820 map) plus the
 * boot GDT and identity page tables that the 64-bit entry needs.
 * linux_cpu.c turns the resulting struct linux_entry into vCPU state.
 *
 * Both formats are entered through the 64-bit boot protocol:
 *   vmlinux: PT_LOAD segments at their physical addresses, entry at e_entry
 *            (startup_64 of the kernel proper).  No decompressor runs, which
 *            matters where CPL0 code is emulated (~1000x slower here).
 *   bzImage: the protected-mode part at 1 MiB, entry at 1 MiB + 0x200 (the
 *            decompressor's startup_64).  We chose the 64-bit entry over
 *            code32_start so that one vCPU setup (long mode, identity map,
 *            __BOOT_CS/__BOOT_DS GDT) serves both formats and no 32-bit
 *            protected-mode state has to be right as well; it needs boot
 *            protocol 2.12 (XLF_KERNEL_64), which every x86-64 kernel since
 *            3.8 has.  The decompressor then moves itself to pref_address
 *            (or a KASLR slot) and needs init_size bytes there.
 *
 * Guest RAM is trusted to be ours (the guest has not run yet); the files are
 * not: every size and offset in them is checked before anything is copied.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "linux_boot.h"

/* boot_params (zero page) offsets, zero-page.rst */
#define BP_EXT_RAMDISK_IMAGE  0x0c0
#define BP_EXT_RAMDISK_SIZE   0x0c4
#define BP_EXT_CMD_LINE_PTR   0x0c8
#define BP_ALT_MEM_K          0x1e0
#define BP_E820_ENTRIES       0x1e8
#define BP_HDR                0x1f1
#define BP_HDR_LIMIT          0x290  /* the setup header ends before this */
#define BP_E820_TABLE         0x2d0
#define BP_E820_MAX           128
#define BP_E820_ENTRY_SIZE    20

/* setup header fields, at the same offsets in the file and the zero page */
#define HDR_SETUP_SECTS       0x1f1
#define HDR_SYSSIZE           0x1f4
#define HDR_VID_MODE          0x1fa
#define HDR_BOOT_FLAG         0x1fe
#define HDR_JUMP              0x200
#define HDR_MAGIC             0x202
#define HDR_VERSION           0x206
#define HDR_TYPE_OF_LOADER    0x210
#define HDR_LOADFLAGS         0x211
#define HDR_RAMDISK_IMAGE     0x218
#define HDR_RAMDISK_SIZE      0x21c
#define HDR_CMD_LINE_PTR      0x228
#define HDR_INITRD_ADDR_MAX   0x22c
#define HDR_KERNEL_ALIGNMENT  0x230
#define HDR_RELOCATABLE       0x234
#define HDR_XLOADFLAGS        0x236
#define HDR_CMDLINE_SIZE      0x238
#define HDR_PREF_ADDRESS      0x258
#define HDR_INIT_SIZE         0x260
#define HDR_NEEDED_END        0x264  /* we read fields up to init_size */

#define HDR_MAGIC_VALUE       0x53726448u /* "HdrS" */
#define BOOT_FLAG_VALUE       0xaa55
#define LOADED_HIGH           0x01
#define XLF_KERNEL_64         0x01
#define MIN_BZIMAGE_PROTOCOL  0x020c  /* 2.12: xloadflags, 64-bit entry */
#define SYNTH_PROTOCOL        0x020f  /* what we claim for a bare vmlinux */
#define LOADER_UNDEFINED      0xff    /* type_of_loader: no assigned id */

#define E820_RAM              1
#define E820_RESERVED         2
#define LOW_RAM_END           0x9fc00ULL  /* conventional memory, less EBDA */
#define HIGH_RAM_START        0x100000ULL

/* vmlinux has no setup header; these are x86-64 Linux's own defaults
 * (COMMAND_LINE_SIZE - 1, initrd below 2 GiB as the bzImage header says). */
#define VMLINUX_CMDLINE_SIZE  2047u
#define VMLINUX_INITRD_MAX    0x7fffffffULL
#define VMLINUX_ALIGN         0x200000u

#define BOOT_AREA_START       LINUX_GDT_GPA
#define BOOT_AREA_END         (LINUX_CMDLINE_GPA + LINUX_CMDLINE_MAX)
#define PAGE_4K               4096ULL
#define PAGE_2M               (2ULL << 20)
#define MIB                   (1ULL << 20)

struct loader {
	const struct linux_boot_cfg *cfg;
	const char *path;        /* the file being read, for messages */
	int fd;
	uint64_t size;
	uint8_t head[4096];      /* the file's first bytes (zero padded) */
	uint8_t *bp;             /* the zero page, host pointer */
	uint64_t low_end;        /* end of the RAM range that starts at 0 */
	uint64_t ram_total;
	uint64_t initrd_max;     /* highest byte the kernel lets the initrd use */
	uint64_t cmdline_size;   /* longest cmdline the kernel takes (no NUL) */
	char *err;
	size_t errlen;
};

__attribute__((format(printf, 3, 4)))
static int fail(struct loader *l, int rc, const char *fmt, ...)
{
	va_list ap;

	if (l->err && l->errlen) {
		va_start(ap, fmt);
		vsnprintf(l->err, l->errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint16_t get16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

/* Host pointer to [gpa, gpa+len) when it lies wholly in one RAM range. */
static uint8_t *gpa_ptr(const struct linux_boot_cfg *cfg, uint64_t gpa,
			uint64_t len)
{
	for (unsigned i = 0; i < cfg->nranges; i++) {
		const struct hv_ram_range *r = &cfg->ranges[i];

		if (gpa >= r->gpa && len <= r->len && gpa - r->gpa <= r->len - len)
			return r->hva + (gpa - r->gpa);
	}
	return NULL;
}

/* pread() all of it; a short read means the file changed under us. */
static int read_at(struct loader *l, void *buf, uint64_t len, uint64_t off)
{
	uint8_t *p = buf;

	while (len) {
		size_t chunk = len > (1u << 30) ? (1u << 30) : (size_t)len;
		ssize_t n = pread(l->fd, p, chunk, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fail(l, -errno, "%s: read failed: %s", l->path,
				    strerror(errno));
		if (n == 0)
			return fail(l, -EIO, "%s: file ended early (changed while loading?)",
				    l->path);
		p += n;
		off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

static int open_file(struct loader *l, const char *path, const char *what)
{
	struct stat st;

	l->path = path;
	l->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (l->fd < 0)
		return fail(l, -errno, "%s: cannot open %s: %s", path, what,
			    strerror(errno));
	if (fstat(l->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		int rc = fail(l, -EINVAL, "%s: %s is not a regular file", path, what);
		close(l->fd);
		l->fd = -1;
		return rc;
	}
	l->size = (uint64_t)st.st_size;
	return 0;
}

/* ------------------------------------------------------------- vmlinux */

static int load_vmlinux(struct loader *l, struct linux_entry *e)
{
	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)l->head;
	Elf64_Phdr ph[64];
	uint64_t start = UINT64_MAX, end = 0, entry;
	unsigned nload = 0;
	int rc;

	if (l->size < sizeof(*eh))
		return fail(l, -ENOEXEC, "%s: too small for an ELF header (%llu bytes)",
			    l->path, (unsigned long long)l->size);
	if (eh->e_ident[EI_CLASS] != ELFCLASS64)
		return fail(l, -ENOEXEC, "%s: %s ELF; a 64-bit x86-64 vmlinux is needed",
			    l->path, eh->e_ident[EI_CLASS] == ELFCLASS32 ?
			    "32-bit (ELFCLASS32)" : "unknown-class");
	if (eh->e_ident[EI_DATA] != ELFDATA2LSB)
		return fail(l, -ENOEXEC, "%s: big-endian ELF; an x86-64 vmlinux is needed",
			    l->path);
	if (eh->e_machine != EM_X86_64)
		return fail(l, -ENOEXEC, "%s: ELF machine %u is not x86-64 (%u)",
			    l->path, eh->e_machine, EM_X86_64);
	if (eh->e_type != ET_EXEC)
		return fail(l, -ENOEXEC, "%s: ELF type %u is not an executable (ET_EXEC)",
			    l->path, eh->e_type);
	if (eh->e_phentsize != sizeof(Elf64_Phdr) || eh->e_phnum == 0 ||
	    eh->e_phnum > 64)
		return fail(l, -ENOEXEC, "%s: bad ELF program header table (%u entries of %u bytes)",
			    l->path, eh->e_phnum, eh->e_phentsize);
	if (eh->e_phoff > l->size ||
	    (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > l->size - eh->e_phoff)
		return fail(l, -ENOEXEC, "%s: truncated: program headers lie past the end of the file",
			    l->path);
	rc = read_at(l, ph, (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr), eh->e_phoff);
	if (rc)
		return rc;

	/* Check every segment before copying any. */
	for (unsigned i = 0; i < eh->e_phnum; i++) {
		const Elf64_Phdr *p = &ph[i];

		if (p->p_type != PT_LOAD || p->p_memsz == 0)
			continue;
		if (p->p_filesz > p->p_memsz)
			return fail(l, -ENOEXEC, "%s: PT_LOAD %u has filesz > memsz",
				    l->path, i);
		if (p->p_offset > l->size || p->p_filesz > l->size - p->p_offset)
			return fail(l, -ENOEXEC, "%s: truncated: PT_LOAD %u data [0x%llx, +0x%llx) lies past the end of the file (%llu bytes)",
				    l->path, i, (unsigned long long)p->p_offset,
				    (unsigned long long)p->p_filesz,
				    (unsigned long long)l->size);
		if (p->p_paddr < HIGH_RAM_START)
			return fail(l, -ENOEXEC, "%s: PT_LOAD %u at 0x%llx overlaps the boot area below 1 MiB",
				    l->path, i, (unsigned long long)p->p_paddr);
		if (!gpa_ptr(l->cfg, p->p_paddr, p->p_memsz))
			return fail(l, -ENOMEM, "%s: kernel does not fit in guest RAM: PT_LOAD %u [0x%llx, 0x%llx) is outside the %llu MiB of RAM",
				    l->path, i, (unsigned long long)p->p_paddr,
				    (unsigned long long)(p->p_paddr + p->p_memsz),
				    (unsigned long long)(l->ram_total / MIB));
		if (p->p_paddr < start)
			start = p->p_paddr;
		if (p->p_paddr + p->p_memsz > end)
			end = p->p_paddr + p->p_memsz;
		nload++;
	}
	if (!nload)
		return fail(l, -ENOEXEC, "%s: ELF has no PT_LOAD segment", l->path);

	/* Linux links e_entry physical (phys_startup_64); accept a virtual
	 * entry too, translated through the segment that holds it. */
	entry = eh->e_entry;
	if (entry < start || entry >= end) {
		bool found = false;

		for (unsigned i = 0; i < eh->e_phnum && !found; i++) {
			const Elf64_Phdr *p = &ph[i];

			if (p->p_type == PT_LOAD && entry >= p->p_vaddr &&
			    entry - p->p_vaddr < p->p_memsz) {
				entry = p->p_paddr + (entry - p->p_vaddr);
				found = true;
			}
		}
		if (!found)
			return fail(l, -ENOEXEC, "%s: ELF entry 0x%llx is in no PT_LOAD segment",
				    l->path, (unsigned long long)eh->e_entry);
	}

	for (unsigned i = 0; i < eh->e_phnum; i++) {
		const Elf64_Phdr *p = &ph[i];
		uint8_t *dst;

		if (p->p_type != PT_LOAD || p->p_memsz == 0)
			continue;
		dst = gpa_ptr(l->cfg, p->p_paddr, p->p_memsz);
		rc = read_at(l, dst, p->p_filesz, p->p_offset);
		if (rc)
			return rc;
		memset(dst + p->p_filesz, 0, p->p_memsz - p->p_filesz);
	}

	/* A bare vmlinux brings no setup header: synthesize the fields the
	 * kernel reads, as a bzImage of the same kernel would carry them. */
	put16(l->bp + HDR_BOOT_FLAG, BOOT_FLAG_VALUE);
	l->bp[HDR_JUMP] = 0xeb;
	l->bp[HDR_JUMP + 1] = (uint8_t)(HDR_NEEDED_END - (HDR_JUMP + 2));
	put32(l->bp + HDR_MAGIC, HDR_MAGIC_VALUE);
	put16(l->bp + HDR_VERSION, SYNTH_PROTOCOL);
	put32(l->bp + HDR_INITRD_ADDR_MAX, (uint32_t)VMLINUX_INITRD_MAX);
	put32(l->bp + HDR_KERNEL_ALIGNMENT, VMLINUX_ALIGN);
	put16(l->bp + HDR_XLOADFLAGS, XLF_KERNEL_64);
	put32(l->bp + HDR_CMDLINE_SIZE, VMLINUX_CMDLINE_SIZE);
	put64(l->bp + HDR_PREF_ADDRESS, start);
	put32(l->bp + HDR_INIT_SIZE, (uint32_t)(end - start));

	l->cmdline_size = VMLINUX_CMDLINE_SIZE;
	l->initrd_max = VMLINUX_INITRD_MAX;
	e->rip = entry;
	e->kernel_start = start;
	e->kernel_end = end;
	return 0;
}

/* ------------------------------------------------------------- bzImage */

static int load_bzimage(struct loader *l, struct linux_entry *e)
{
	const uint8_t *h = l->head;
	unsigned setup_sects, hdr_end;
	uint64_t pm_off, pm_size, syssize, align, pref, init_size, run_start;
	uint16_t version;
	int rc;

	if (l->size < HDR_NEEDED_END)
		return fail(l, -ENOEXEC, "%s: too small for a bzImage setup header (%llu bytes)",
			    l->path, (unsigned long long)l->size);
	if (get32(h + HDR_MAGIC) != HDR_MAGIC_VALUE)
		return fail(l, -ENOEXEC, "%s: boot sector without a \"HdrS\" setup header (an old zImage?); a bzImage is needed",
			    l->path);
	version = get16(h + HDR_VERSION);
	if (version < MIN_BZIMAGE_PROTOCOL)
		return fail(l, -ENOEXEC, "%s: boot protocol %u.%02u is too old; 2.12 or newer is needed for the 64-bit entry",
			    l->path, version >> 8, version & 0xff);
	if (!(h[HDR_LOADFLAGS] & LOADED_HIGH))
		return fail(l, -ENOEXEC, "%s: not a bzImage (LOADED_HIGH is clear)",
			    l->path);
	if (!(get16(h + HDR_XLOADFLAGS) & XLF_KERNEL_64))
		return fail(l, -ENOEXEC, "%s: kernel has no 64-bit entry point (XLF_KERNEL_64 clear)",
			    l->path);

	setup_sects = h[HDR_SETUP_SECTS] ? h[HDR_SETUP_SECTS] : 4;
	pm_off = (setup_sects + 1ULL) * 512;
	syssize = (uint64_t)get32(h + HDR_SYSSIZE) * 16;
	if (pm_off >= l->size || syssize > l->size - pm_off)
		return fail(l, -ENOEXEC, "%s: truncated: the setup header promises %llu bytes of kernel after offset %llu, the file has %llu bytes",
			    l->path, (unsigned long long)syssize,
			    (unsigned long long)pm_off, (unsigned long long)l->size);
	pm_size = l->size - pm_off;

	align = get32(h + HDR_KERNEL_ALIGNMENT);
	if (align < PAGE_4K || (align & (align - 1)))
		align = PAGE_2M;
	pref = get64(h + HDR_PREF_ADDRESS);
	init_size = get32(h + HDR_INIT_SIZE);
	/* The decompressor runs from max(load address rounded up to
	 * kernel_alignment, LOAD_PHYSICAL_ADDR == pref_address) and needs
	 * init_size bytes there; the image itself sits at 1 MiB meanwhile. */
	run_start = (LINUX_BZIMAGE_GPA + align - 1) & ~(align - 1);
	if (pref > run_start)
		run_start = pref;
	e->kernel_start = LINUX_BZIMAGE_GPA;
	e->kernel_end = run_start + init_size;
	if (LINUX_BZIMAGE_GPA + pm_size > e->kernel_end)
		e->kernel_end = LINUX_BZIMAGE_GPA + pm_size;
	if (e->kernel_end > l->low_end)
		return fail(l, -ENOMEM, "%s: kernel does not fit in guest RAM: it needs RAM up to 0x%llx (init_size %llu MiB at 0x%llx), low RAM ends at 0x%llx",
			    l->path, (unsigned long long)e->kernel_end,
			    (unsigned long long)(init_size / MIB),
			    (unsigned long long)run_start,
			    (unsigned long long)l->low_end);

	rc = read_at(l, gpa_ptr(l->cfg, LINUX_BZIMAGE_GPA, pm_size), pm_size, pm_off);
	if (rc)
		return rc;

	/* The setup header goes into the zero page as the kernel wrote it;
	 * its length is given by the jump at 0x200. */
	hdr_end = HDR_JUMP + 2 + h[HDR_JUMP + 1];
	if (hdr_end < HDR_NEEDED_END)
		hdr_end = HDR_NEEDED_END;
	if (hdr_end > BP_HDR_LIMIT)
		hdr_end = BP_HDR_LIMIT;
	memcpy(l->bp + BP_HDR, h + BP_HDR, hdr_end - BP_HDR);

	l->cmdline_size = get32(h + HDR_CMDLINE_SIZE);
	l->initrd_max = get32(h + HDR_INITRD_ADDR_MAX);
	e->rip = LINUX_BZIMAGE_GPA + 0x200;
	return 0;
}

/* ---------------------------------------------------------- the rest */

static int load_initrd(struct loader *l, struct linux_entry *e)
{
	const char *path = l->cfg->initrd;
	uint64_t top, gpa;
	int rc;

	e->initrd_gpa = e->initrd_size = 0;
	if (!path)
		return 0;
	rc = open_file(l, path, "initrd");
	if (rc)
		return rc;
	if (l->size == 0) {
		rc = fail(l, -EINVAL, "%s: initrd is empty", path);
		goto out;
	}
	/* As high as the kernel allows, below the PCI hole, in low RAM: the
	 * kernel reserves it early and frees it after unpacking. */
	top = l->low_end;
	if (top > l->initrd_max + 1)
		top = l->initrd_max + 1;
	gpa = 0;
	if (top >= l->size)
		gpa = (top - l->size) & ~(PAGE_4K - 1);
	if (top < l->size || gpa < e->kernel_end) {
		rc = fail(l, -ENOMEM, "%s: initrd (%llu bytes) does not fit in guest RAM between the kernel end 0x%llx and 0x%llx",
			  path, (unsigned long long)l->size,
			  (unsigned long long)e->kernel_end,
			  (unsigned long long)top);
		goto out;
	}
	rc = read_at(l, gpa_ptr(l->cfg, gpa, l->size), l->size, 0);
	if (rc)
		goto out;
	e->initrd_gpa = gpa;
	e->initrd_size = l->size;
out:
	close(l->fd);
	l->fd = -1;
	return rc;
}

static int add_e820(uint8_t *bp, uint64_t start, uint64_t end, uint32_t type)
{
	unsigned n = bp[BP_E820_ENTRIES];
	uint8_t *ent;

	if (end <= start)
		return 0;
	if (n >= BP_E820_MAX)
		return -E2BIG;
	ent = bp + BP_E820_TABLE + n * BP_E820_ENTRY_SIZE;
	put64(ent, start);
	put64(ent + 8, end - start);
	put32(ent + 16, type);
	bp[BP_E820_ENTRIES] = (uint8_t)(n + 1);
	return 0;
}

/* usable [0, 0x9fc00), reserved to 1 MiB, then each RAM range usable. */
static int build_e820(struct loader *l)
{
	const struct linux_boot_cfg *cfg = l->cfg;
	uint64_t prev = 0;

	for (;;) {
		const struct hv_ram_range *r = NULL;
		uint64_t s, e;
		int rc = 0;

		/* next range by address: hv-core's order is not our contract */
		for (unsigned i = 0; i < cfg->nranges; i++) {
			const struct hv_ram_range *c = &cfg->ranges[i];

			if (c->len && c->gpa + c->len > prev &&
			    (!r || c->gpa < r->gpa))
				r = c;
		}
		if (!r)
			return 0;
		s = r->gpa < prev ? prev : r->gpa;
		e = r->gpa + r->len;
		prev = e;
		rc |= add_e820(l->bp, s, e < LOW_RAM_END ? e : LOW_RAM_END, E820_RAM);
		rc |= add_e820(l->bp, s > LOW_RAM_END ? s : LOW_RAM_END,
			       e < HIGH_RAM_START ? e : HIGH_RAM_START, E820_RESERVED);
		rc |= add_e820(l->bp, s > HIGH_RAM_START ? s : HIGH_RAM_START, e,
			       E820_RAM);
		if (rc)
			return fail(l, -E2BIG, "guest RAM has too many ranges for the e820 map (max %d entries)",
				    BP_E820_MAX);
	}
}

/* GDT and identity page tables for the 64-bit entry. */
static void build_boot_tables(struct loader *l, struct linux_entry *e)
{
	uint64_t *gdt = (uint64_t *)gpa_ptr(l->cfg, LINUX_GDT_GPA, PAGE_4K);
	uint64_t *pml4 = (uint64_t *)gpa_ptr(l->cfg, LINUX_PML4_GPA, PAGE_4K);
	uint64_t *pdpt = (uint64_t *)gpa_ptr(l->cfg, LINUX_PDPT_GPA, PAGE_4K);
	uint64_t *pd = (uint64_t *)gpa_ptr(l->cfg, LINUX_PD_GPA, 4 * PAGE_4K);

	/* boot.rst: __BOOT_CS = 0x10 (flat, execute/read; L=1 for 64-bit) and
	 * __BOOT_DS = 0x18 (flat, read/write). */
	gdt[2] = 0x00af9b000000ffffULL;
	gdt[3] = 0x00cf93000000ffffULL;

	/* Identity map [0, 4 GiB) with 2 MiB pages: it covers the kernel at
	 * any place in low RAM, the zero page, cmdline and initrd, which is
	 * what the 64-bit entry asks for.  The kernel builds its own tables
	 * right away. */
	pml4[0] = LINUX_PDPT_GPA | 0x3;               /* present, writable */
	for (unsigned i = 0; i < 4; i++) {
		pdpt[i] = (LINUX_PD_GPA + i * PAGE_4K) | 0x3;
		for (unsigned j = 0; j < 512; j++)
			pd[i * 512 + j] = ((uint64_t)i << 30) |
					  ((uint64_t)j << 21) | 0x83; /* +PS */
	}
	e->long_mode = true;
	e->cr3 = LINUX_PML4_GPA;
	e->gdt_gpa = LINUX_GDT_GPA;
}

const char *linux_default_cmdline(void)
{
	static const char base[] = LINUX_BOOT_CMDLINE_BASE;
	static const char emulated[] = LINUX_BOOT_CMDLINE_BASE
				       LINUX_BOOT_CMDLINE_EMULATED;

	return access("/sys/module/kvm_pvm", F_OK) == 0 ? emulated : base;
}

int linux_load(const struct linux_boot_cfg *cfg, struct linux_entry *out,
	       char *err, size_t errlen)
{
	struct loader l = { .cfg = cfg, .fd = -1, .err = err, .errlen = errlen };
	struct linux_entry e = { 0 };
	const char *cmdline;
	size_t cmdlen;
	ssize_t n;
	int rc;

	if (err && errlen)
		err[0] = '\0';
	if (!cfg || !out || !cfg->kernel || !cfg->kernel[0])
		return fail(&l, -EINVAL, "linux: no kernel image given");
	for (unsigned i = 0; i < cfg->nranges; i++) {
		l.ram_total += cfg->ranges[i].len;
		if (cfg->ranges[i].gpa == 0)
			l.low_end = cfg->ranges[i].len;
	}
	if (l.low_end < 2 * MIB || !gpa_ptr(cfg, 0, 2 * MIB))
		return fail(&l, -EINVAL, "%s: guest RAM must start at GPA 0 and cover at least 2 MiB",
			    cfg->kernel);

	/* Zero what we build: RAM may be a base memfd with old contents. */
	l.bp = gpa_ptr(cfg, LINUX_BOOT_PARAMS_GPA, PAGE_4K);
	memset(gpa_ptr(cfg, BOOT_AREA_START, BOOT_AREA_END - BOOT_AREA_START), 0,
	       BOOT_AREA_END - BOOT_AREA_START);

	rc = open_file(&l, cfg->kernel, "kernel");
	if (rc)
		return rc;
	memset(l.head, 0, sizeof(l.head));
	do
		n = pread(l.fd, l.head, sizeof(l.head), 0);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		rc = fail(&l, -errno, "%s: read failed: %s", l.path, strerror(errno));
	} else if (l.size < 4) {
		rc = fail(&l, -ENOEXEC, "%s: too small to be a kernel (%llu bytes)",
			  l.path, (unsigned long long)l.size);
	} else if (!memcmp(l.head, ELFMAG, SELFMAG)) {
		rc = load_vmlinux(&l, &e);
	} else if (l.size >= HDR_BOOT_FLAG + 2 &&
		   get16(l.head + HDR_BOOT_FLAG) == BOOT_FLAG_VALUE) {
		rc = load_bzimage(&l, &e);
	} else {
		rc = fail(&l, -ENOEXEC, "%s: bad magic: neither an ELF vmlinux nor a bzImage",
			  l.path);
	}
	close(l.fd);
	l.fd = -1;
	if (rc)
		return rc;

	cmdline = cfg->cmdline ? cfg->cmdline : linux_default_cmdline();
	cmdlen = strlen(cmdline);
	if (cmdlen > l.cmdline_size || cmdlen >= LINUX_CMDLINE_MAX)
		return fail(&l, -E2BIG, "%s: cmdline too long: %zu bytes, this kernel takes at most %llu",
			    cfg->kernel, cmdlen,
			    (unsigned long long)(l.cmdline_size < LINUX_CMDLINE_MAX - 1 ?
						 l.cmdline_size : LINUX_CMDLINE_MAX - 1));
	memcpy(gpa_ptr(cfg, LINUX_CMDLINE_GPA, cmdlen + 1), cmdline, cmdlen + 1);

	rc = load_initrd(&l, &e);
	if (rc)
		return rc;
	rc = build_e820(&l);
	if (rc)
		return rc;

	/* The fields a boot loader must write (boot.rst "obligatory"), plus
	 * where we put things.  type_of_loader must be nonzero or the kernel
	 * ignores the initrd. */
	l.bp[HDR_TYPE_OF_LOADER] = LOADER_UNDEFINED;
	l.bp[HDR_LOADFLAGS] |= LOADED_HIGH;
	put16(l.bp + HDR_VID_MODE, 0xffff);           /* "normal" */
	put32(l.bp + HDR_CMD_LINE_PTR, (uint32_t)LINUX_CMDLINE_GPA);
	put32(l.bp + BP_EXT_CMD_LINE_PTR, 0);
	put32(l.bp + HDR_RAMDISK_IMAGE, (uint32_t)e.initrd_gpa);
	put32(l.bp + HDR_RAMDISK_SIZE, (uint32_t)e.initrd_size);
	put32(l.bp + BP_EXT_RAMDISK_IMAGE, (uint32_t)(e.initrd_gpa >> 32));
	put32(l.bp + BP_EXT_RAMDISK_SIZE, (uint32_t)(e.initrd_size >> 32));
	/* KiB above 1 MiB, for kernels that look before the e820 map */
	put32(l.bp + BP_ALT_MEM_K, (uint32_t)((l.low_end - HIGH_RAM_START) >> 10));

	build_boot_tables(&l, &e);
	e.rsi = LINUX_BOOT_PARAMS_GPA;
	*out = e;
	return 0;
}
