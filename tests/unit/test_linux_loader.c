/*
 * test_linux_loader.c - the Linux loader (hv-core/linux_boot.c) and the
 * 16550A model (hv-core/serial8250.c), without /dev/kvm.
 *
 * Bad kernels and initrds are made here in a temp dir and must each fail
 * with one line that names the file and the problem.  Good ones (tiny
 * synthetic vmlinux/bzImage, then the real build/linux/ image when `make
 * guest-linux` has run) are loaded into malloc'd fake RAM and the zero page
 * is read back field by field at the offsets of zero-page.rst.
 */
#include <errno.h>
#include <elf.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "linux_boot.h"
#include "serial8250.h"

#define MIB (1ULL << 20)

/* zero page offsets, written out again here on purpose (not shared with
 * the loader) so that a wrong constant there cannot hide */
#define ZP_EXT_RAMDISK_IMAGE 0x0c0
#define ZP_EXT_CMD_LINE_PTR  0x0c8
#define ZP_E820_ENTRIES      0x1e8
#define ZP_BOOT_FLAG         0x1fe
#define ZP_HEADER            0x202
#define ZP_VERSION           0x206
#define ZP_TYPE_OF_LOADER    0x210
#define ZP_LOADFLAGS         0x211
#define ZP_RAMDISK_IMAGE     0x218
#define ZP_RAMDISK_SIZE      0x21c
#define ZP_CMD_LINE_PTR      0x228
#define ZP_E820_TABLE        0x2d0

static char tmpdir[PATH_MAX];

struct fake_ram {
	struct hv_ram_range r[2];
	unsigned n;
};

static void ram_init(struct fake_ram *f, uint64_t low, uint64_t high)
{
	memset(f, 0, sizeof(*f));
	f->r[0] = (struct hv_ram_range){ .gpa = 0, .len = low, .slot = 0 };
	f->r[0].hva = malloc(low);
	assert_non_null(f->r[0].hva);
	/* junk, as a base memfd could hold: the loader must zero its pages */
	memset(f->r[0].hva, 0xa5, 2 * MIB);
	f->n = 1;
	if (high) {
		f->r[1] = (struct hv_ram_range){ .gpa = 1ULL << 32, .len = high,
						 .slot = 1 };
		f->r[1].hva = malloc(high);
		assert_non_null(f->r[1].hva);
		f->n = 2;
	}
}

static void ram_free(struct fake_ram *f)
{
	for (unsigned i = 0; i < f->n; i++)
		free(f->r[i].hva);
}

static uint8_t *ram_at(struct fake_ram *f, uint64_t gpa)
{
	return f->r[0].hva + gpa;
}

static uint16_t rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static void wr16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void wr32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void wr64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

static const char *tpath(const char *name)
{
	static char p[4][PATH_MAX + 64];
	static unsigned k;
	char *s = p[k++ % 4];

	snprintf(s, PATH_MAX + 64, "%s/%s", tmpdir, name);
	return s;
}

static void write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

/* A vmlinux-shaped ELF: one PT_LOAD of `filesz` bytes (a byte pattern),
 * memsz bytes in memory at paddr. */
static void write_elf(const char *path, unsigned cls, uint16_t machine,
		      uint64_t paddr, uint64_t filesz, uint64_t memsz,
		      uint64_t entry)
{
	size_t len = 0x1000 + filesz;
	uint8_t *buf = calloc(1, len);
	Elf64_Ehdr *eh = (Elf64_Ehdr *)buf;
	Elf64_Phdr *ph = (Elf64_Phdr *)(buf + sizeof(*eh));

	assert_non_null(buf);
	memcpy(eh->e_ident, ELFMAG, SELFMAG);
	eh->e_ident[EI_CLASS] = (uint8_t)cls;
	eh->e_ident[EI_DATA] = ELFDATA2LSB;
	eh->e_ident[EI_VERSION] = EV_CURRENT;
	eh->e_type = ET_EXEC;
	eh->e_machine = machine;
	eh->e_version = EV_CURRENT;
	eh->e_entry = entry;
	eh->e_phoff = sizeof(*eh);
	eh->e_ehsize = sizeof(*eh);
	eh->e_phentsize = sizeof(*ph);
	eh->e_phnum = 1;
	ph->p_type = PT_LOAD;
	ph->p_flags = PF_R | PF_X;
	ph->p_offset = 0x1000;
	ph->p_vaddr = 0xffffffff80000000ULL + paddr;
	ph->p_paddr = paddr;
	ph->p_filesz = filesz;
	ph->p_memsz = memsz;
	ph->p_align = 0x200000;
	for (uint64_t i = 0; i < filesz; i++)
		buf[0x1000 + i] = (uint8_t)(i * 7 + 1);
	write_file(path, buf, len);
	free(buf);
}

static void write_good_elf(const char *path)
{
	write_elf(path, ELFCLASS64, EM_X86_64, 0x1000000, 0x3000, 0x5000,
		  0x1000000);
}

/* A bzImage-shaped file: boot sector + setup header, `setup_sects` sectors
 * of setup, then pm_size bytes of "protected-mode code". */
static void write_bzimage(const char *path, bool hdrs, uint16_t version,
			  uint8_t xloadflags, uint32_t init_size, size_t pm_size)
{
	const unsigned setup_sects = 4;
	size_t off = (setup_sects + 1) * 512, len = off + pm_size;
	uint8_t *b = calloc(1, len);

	assert_non_null(b);
	b[0x1f1] = setup_sects;
	wr32(b + 0x1f4, (uint32_t)(pm_size / 16));
	wr16(b + 0x1fe, 0xaa55);
	b[0x200] = 0xeb;
	b[0x201] = 0x6a;
	if (hdrs)
		memcpy(b + 0x202, "HdrS", 4);
	wr16(b + 0x206, version);
	b[0x211] = 0x01;                     /* LOADED_HIGH */
	wr32(b + 0x214, 0x100000);
	wr32(b + 0x22c, 0x7fffffff);
	wr32(b + 0x230, 0x200000);
	b[0x234] = 1;
	b[0x236] = xloadflags;
	wr32(b + 0x238, 2047);
	wr64(b + 0x258, 0x1000000);
	wr32(b + 0x260, init_size);
	for (size_t i = 0; i < pm_size; i++)
		b[off + i] = (uint8_t)(i * 13 + 5);
	write_file(path, b, len);
	free(b);
}

/* Loads and expects failure: rc < 0, and err names `file` and `what`. */
static void expect_fail(const char *kernel, const char *initrd,
			const char *cmdline, uint64_t ram, const char *file,
			const char *what)
{
	struct fake_ram f;
	struct linux_entry e;
	char err[512] = "";
	struct linux_boot_cfg c;
	int rc;

	ram_init(&f, ram, 0);
	c = (struct linux_boot_cfg){ .kernel = kernel, .initrd = initrd,
				     .cmdline = cmdline, .ranges = f.r,
				     .nranges = f.n };
	rc = linux_load(&c, &e, err, sizeof(err));
	ram_free(&f);
	if (rc >= 0 || !strstr(err, file) || !strstr(err, what) ||
	    strchr(err, '\n'))
		fail_msg("expected an error naming %s and \"%s\"; got rc %d: %s",
			 file, what, rc, err);
}

/* ---------------------------------------------------------- bad inputs */

static void missing_kernel(void **state)
{
	(void)state;
	const char *k = tpath("no-such-kernel");

	expect_fail(k, NULL, NULL, 64 * MIB, k, "No such file");
}

static void tiny_and_truncated_kernels(void **state)
{
	(void)state;
	const char *k = tpath("tiny");
	uint8_t *buf;
	size_t len;
	int fd;

	write_file(k, "\x7f" "E", 2);
	expect_fail(k, NULL, NULL, 64 * MIB, k, "too small");

	/* ELF header only: the program headers are cut off */
	write_good_elf(k);
	assert_int_equal(truncate(k, sizeof(Elf64_Ehdr)), 0);
	expect_fail(k, NULL, NULL, 64 * MIB, k, "truncated");

	/* segment data cut off */
	write_good_elf(k);
	assert_int_equal(truncate(k, 0x1800), 0);
	expect_fail(k, NULL, NULL, 64 * MIB, k, "truncated");

	/* bzImage whose protected-mode part is shorter than syssize says */
	write_bzimage(k, true, 0x020f, 1, 8 * MIB, 0x4000);
	fd = open(k, O_RDONLY);
	len = (size_t)lseek(fd, 0, SEEK_END);
	close(fd);
	assert_int_equal(truncate(k, (off_t)(len - 0x1000)), 0);
	expect_fail(k, NULL, NULL, 64 * MIB, k, "truncated");

	buf = calloc(1, 0x100);
	write_file(k, buf, 0x100);
	free(buf);
	expect_fail(k, NULL, NULL, 64 * MIB, k, "bad magic");
}

static void bad_magic(void **state)
{
	(void)state;
	const char *k = tpath("text");
	char buf[8192];

	memset(buf, 'x', sizeof(buf));
	write_file(k, buf, sizeof(buf));
	expect_fail(k, NULL, NULL, 64 * MIB, k, "bad magic");
}

static void elf_class_and_machine(void **state)
{
	(void)state;
	const char *k = tpath("elf");

	write_elf(k, ELFCLASS32, EM_386, 0x1000000, 0x100, 0x100, 0x1000000);
	expect_fail(k, NULL, NULL, 64 * MIB, k, "32-bit");
	write_elf(k, ELFCLASS64, EM_AARCH64, 0x1000000, 0x100, 0x100, 0x1000000);
	expect_fail(k, NULL, NULL, 64 * MIB, k, "not x86-64");
}

static void bzimage_header_checks(void **state)
{
	(void)state;
	const char *k = tpath("bz");

	write_bzimage(k, false, 0x020f, 1, 8 * MIB, 0x1000);
	expect_fail(k, NULL, NULL, 64 * MIB, k, "HdrS");
	write_bzimage(k, true, 0x0205, 1, 8 * MIB, 0x1000);
	expect_fail(k, NULL, NULL, 64 * MIB, k, "boot protocol 2.05 is too old");
	write_bzimage(k, true, 0x020f, 0, 8 * MIB, 0x1000);
	expect_fail(k, NULL, NULL, 64 * MIB, k, "64-bit entry");
}

static void kernel_too_big(void **state)
{
	(void)state;
	const char *k = tpath("big");

	/* vmlinux: 60 MiB in memory at 16 MiB, with 64 MiB of RAM */
	write_elf(k, ELFCLASS64, EM_X86_64, 0x1000000, 0x1000, 60 * MIB,
		  0x1000000);
	expect_fail(k, NULL, NULL, 64 * MIB, k, "does not fit in guest RAM");
	/* bzImage: init_size of 60 MiB from pref_address 16 MiB */
	write_bzimage(k, true, 0x020f, 1, 60 * MIB, 0x1000);
	expect_fail(k, NULL, NULL, 64 * MIB, k, "does not fit in guest RAM");
}

static void cmdline_too_long(void **state)
{
	(void)state;
	const char *k = tpath("good.elf");
	char *cmd = malloc(3000);

	write_good_elf(k);
	memset(cmd, 'a', 2999);
	cmd[2999] = 0;
	expect_fail(k, NULL, cmd, 64 * MIB, k, "cmdline too long");
	cmd[2047] = 0;  /* 2047 fits: COMMAND_LINE_SIZE less the NUL */
	{
		struct fake_ram f;
		struct linux_entry e;
		char err[256] = "";
		struct linux_boot_cfg c;

		ram_init(&f, 64 * MIB, 0);
		c = (struct linux_boot_cfg){ .kernel = k, .cmdline = cmd,
					     .ranges = f.r, .nranges = f.n };
		assert_int_equal(linux_load(&c, &e, err, sizeof(err)), 0);
		assert_string_equal((char *)ram_at(&f, rd32(ram_at(&f, e.rsi + ZP_CMD_LINE_PTR))), cmd);
		ram_free(&f);
	}
	free(cmd);
}

static void bad_initrds(void **state)
{
	(void)state;
	const char *k = tpath("good.elf");
	const char *i = tpath("initrd");
	size_t big = 40 * MIB;
	uint8_t *buf;

	write_good_elf(k);
	expect_fail(k, tpath("no-such-initrd"), NULL, 64 * MIB,
		    tpath("no-such-initrd"), "initrd");
	write_file(i, "", 0);
	expect_fail(k, i, NULL, 64 * MIB, i, "empty");
	/* kernel ends past 16 MiB + 20 KiB; 40 MiB more does not fit in 48 */
	buf = calloc(1, big);
	write_file(i, buf, big);
	free(buf);
	expect_fail(k, i, NULL, 48 * MIB, i, "does not fit in guest RAM");
}

static void ram_must_start_at_zero(void **state)
{
	(void)state;
	const char *k = tpath("good.elf");
	struct hv_ram_range r = { .gpa = 1ULL << 32, .len = 64 * MIB };
	struct linux_boot_cfg c = { .kernel = k, .ranges = &r, .nranges = 1 };
	struct linux_entry e;
	char err[256] = "";

	write_good_elf(k);
	r.hva = malloc(r.len);
	assert_true(linux_load(&c, &e, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "GPA 0"));
	free(r.hva);
}

/* ------------------------------------------------------- good kernels */

struct e820 {
	uint64_t addr, size;
	uint32_t type;
};

static unsigned read_e820(struct fake_ram *f, const struct linux_entry *e,
			  struct e820 *out, unsigned max)
{
	const uint8_t *bp = ram_at(f, e->rsi);
	unsigned n = bp[ZP_E820_ENTRIES];

	assert_true(n <= max);
	for (unsigned i = 0; i < n; i++) {
		const uint8_t *p = bp + ZP_E820_TABLE + i * 20;

		out[i].addr = rd64(p);
		out[i].size = rd64(p + 8);
		out[i].type = rd32(p + 16);
	}
	return n;
}

static void expect_e820(struct e820 *m, unsigned i, uint64_t start,
			uint64_t end, uint32_t type)
{
	if (m[i].addr != start || m[i].addr + m[i].size != end ||
	    m[i].type != type)
		fail_msg("e820[%u] = [0x%llx, 0x%llx) type %u; want [0x%llx, 0x%llx) type %u",
			 i, (unsigned long long)m[i].addr,
			 (unsigned long long)(m[i].addr + m[i].size), m[i].type,
			 (unsigned long long)start, (unsigned long long)end, type);
}

/* Checks shared by every good load: header, cmdline, initrd, e820, boot
 * tables.  RAM is f's, the initrd (if any) holds `initrd` bytes. */
static void check_common(struct fake_ram *f, const struct linux_entry *e,
			 const char *cmdline, const uint8_t *initrd,
			 size_t initrd_len)
{
	const uint8_t *bp = ram_at(f, e->rsi);
	uint32_t rd, rs;
	const uint64_t *gdt, *pml4, *pdpt, *pd;

	assert_int_equal(e->rsi, LINUX_BOOT_PARAMS_GPA);
	assert_int_equal(rd16(bp + ZP_BOOT_FLAG), 0xaa55);
	assert_memory_equal(bp + ZP_HEADER, "HdrS", 4);
	assert_true(rd16(bp + ZP_VERSION) >= 0x020c);
	assert_int_equal(bp[ZP_TYPE_OF_LOADER], 0xff);
	assert_true(bp[ZP_LOADFLAGS] & 1);

	assert_int_equal(rd32(bp + ZP_CMD_LINE_PTR), LINUX_CMDLINE_GPA);
	assert_int_equal(rd32(bp + ZP_EXT_CMD_LINE_PTR), 0);
	assert_string_equal((const char *)ram_at(f, LINUX_CMDLINE_GPA),
			    cmdline ? cmdline : linux_default_cmdline());

	rd = rd32(bp + ZP_RAMDISK_IMAGE);
	rs = rd32(bp + ZP_RAMDISK_SIZE);
	assert_int_equal(rd32(bp + ZP_EXT_RAMDISK_IMAGE), 0);
	if (initrd) {
		assert_int_equal(rs, initrd_len);
		assert_int_equal(rd, e->initrd_gpa);
		assert_int_equal(rd % 4096, 0);
		assert_true(rd >= e->kernel_end);
		assert_true(rd + rs <= f->r[0].len);
		assert_memory_equal(ram_at(f, rd), initrd, initrd_len);
	} else {
		assert_int_equal(rd, 0);
		assert_int_equal(rs, 0);
	}

	/* __BOOT_CS / __BOOT_DS, and the identity map over the entry */
	gdt = (const uint64_t *)ram_at(f, e->gdt_gpa);
	assert_int_equal(gdt[2], 0x00af9b000000ffffULL);
	assert_int_equal(gdt[3], 0x00cf93000000ffffULL);
	assert_true(e->long_mode);
	pml4 = (const uint64_t *)ram_at(f, e->cr3);
	pdpt = (const uint64_t *)ram_at(f, pml4[0] & ~0xfffULL);
	pd = (const uint64_t *)ram_at(f, pdpt[0] & ~0xfffULL);
	assert_int_equal(pd[e->rip >> 21] & ~0x1fffffULL, e->rip & ~0x1fffffULL);
	assert_true(pd[e->rip >> 21] & 0x80);
	/* the junk we left in low RAM is gone where the loader wrote */
	assert_int_equal(ram_at(f, LINUX_GDT_GPA)[0], 0);
}

static void synthetic_vmlinux(void **state)
{
	(void)state;
	const char *k = tpath("good.elf");
	const char *i = tpath("initrd.img");
	uint8_t rd[10000];
	struct fake_ram f;
	struct linux_entry e;
	struct e820 m[8];
	char err[256] = "";
	struct linux_boot_cfg c;
	const uint8_t *seg;

	for (size_t j = 0; j < sizeof(rd); j++)
		rd[j] = (uint8_t)(j ^ 0x5a);
	write_file(i, rd, sizeof(rd));
	write_good_elf(k);
	ram_init(&f, 64 * MIB, 16 * MIB);
	c = (struct linux_boot_cfg){ .kernel = k, .initrd = i,
				     .cmdline = "console=ttyS0 hello",
				     .ranges = f.r, .nranges = f.n };
	assert_int_equal(linux_load(&c, &e, err, sizeof(err)), 0);
	assert_int_equal(e.rip, 0x1000000);
	assert_int_equal(e.kernel_start, 0x1000000);
	assert_int_equal(e.kernel_end, 0x1005000);
	seg = ram_at(&f, 0x1000000);
	for (unsigned j = 0; j < 0x3000; j++)
		if (seg[j] != (uint8_t)(j * 7 + 1))
			fail_msg("segment byte %u not copied", j);
	for (unsigned j = 0x3000; j < 0x5000; j++)
		if (seg[j])
			fail_msg("bss byte 0x%x not zeroed", j);
	check_common(&f, &e, "console=ttyS0 hello", rd, sizeof(rd));
	/* the initrd goes as high as low RAM allows */
	assert_int_equal(e.initrd_gpa, (64 * MIB - sizeof(rd)) & ~4095ULL);

	assert_int_equal(read_e820(&f, &e, m, 8), 4);
	expect_e820(m, 0, 0, 0x9fc00, 1);
	expect_e820(m, 1, 0x9fc00, 0x100000, 2);
	expect_e820(m, 2, 0x100000, 64 * MIB, 1);
	expect_e820(m, 3, 1ULL << 32, (1ULL << 32) + 16 * MIB, 1);
	ram_free(&f);
}

static void synthetic_bzimage(void **state)
{
	(void)state;
	const char *k = tpath("good.bz");
	struct fake_ram f;
	struct linux_entry e;
	struct e820 m[8];
	char err[256] = "";
	struct linux_boot_cfg c;
	const uint8_t *pm;
	const size_t pm_size = 0x8000;

	write_bzimage(k, true, 0x020f, 1, 20 * MIB, pm_size);
	ram_init(&f, 64 * MIB, 0);
	c = (struct linux_boot_cfg){ .kernel = k, .ranges = f.r, .nranges = f.n };
	assert_int_equal(linux_load(&c, &e, err, sizeof(err)), 0);
	/* 64-bit entry: startup_64 is 0x200 into the protected-mode code */
	assert_int_equal(e.rip, 0x100200);
	assert_int_equal(e.kernel_end, 0x1000000 + 20 * MIB);
	pm = ram_at(&f, 0x100000);
	for (size_t j = 0; j < pm_size; j++)
		if (pm[j] != (uint8_t)(j * 13 + 5))
			fail_msg("protected-mode byte %zu not copied", j);
	check_common(&f, &e, NULL, NULL, 0);
	/* the kernel's own header fields came along */
	assert_int_equal(rd32(ram_at(&f, e.rsi) + 0x260), 20 * MIB);
	assert_int_equal(rd16(ram_at(&f, e.rsi) + ZP_VERSION), 0x020f);
	assert_int_equal(read_e820(&f, &e, m, 8), 3);
	expect_e820(m, 2, 0x100000, 64 * MIB, 1);
	ram_free(&f);
}

/* ------------------------------------------------ the real build/linux */

static const char *linux_dir(void)
{
	static char dir[PATH_MAX + 32];
	const char *env = getenv("DENSEVM_LINUX_DIR");
	char exe[PATH_MAX], probe[PATH_MAX + 32];
	ssize_t n;

	if (env && *env)
		return env;
	/* this program is BUILD/tests/x, with BUILD = build or build/san */
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = 0;
		for (int up = 0; up < 4; up++) {
			char *s = strrchr(exe, '/');

			if (!s)
				break;
			*s = 0;
			snprintf(probe, sizeof(probe), "%s/linux/vmlinux", exe);
			if (access(probe, R_OK) == 0) {
				snprintf(dir, sizeof(dir), "%s/linux", exe);
				return dir;
			}
		}
	}
	return "build/linux";
}

static uint8_t *slurp(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY);
	struct stat st;
	uint8_t *buf;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size);
	assert_non_null(buf);
	assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

static bool have_image(const char *file, char *path, size_t len)
{
	snprintf(path, len, "%s/%s", linux_dir(), file);
	if (access(path, R_OK) == 0)
		return true;
	print_message("[  SKIPPED ] %s is absent (run `make guest-linux`)\n", path);
	return false;
}

static void real_kernel(const char *file, uint64_t want_rip)
{
	char kpath[PATH_MAX + 64], ipath[PATH_MAX + 64], err[512] = "";
	struct fake_ram f;
	struct linux_entry e;
	struct e820 m[8];
	struct linux_boot_cfg c;
	uint8_t *initrd;
	size_t initrd_len;

	if (!have_image(file, kpath, sizeof(kpath)) ||
	    !have_image("initramfs.cpio.gz", ipath, sizeof(ipath)))
		skip();
	initrd = slurp(ipath, &initrd_len);
	ram_init(&f, 256 * MIB, 0);
	c = (struct linux_boot_cfg){ .kernel = kpath, .initrd = ipath,
				     .ranges = f.r, .nranges = f.n };
	if (linux_load(&c, &e, err, sizeof(err)))
		fail_msg("%s", err);
	if (want_rip)
		assert_int_equal(e.rip, want_rip);
	check_common(&f, &e, NULL, initrd, initrd_len);
	assert_int_equal(read_e820(&f, &e, m, 8), 3);
	expect_e820(m, 0, 0, 0x9fc00, 1);
	expect_e820(m, 1, 0x9fc00, 0x100000, 2);
	expect_e820(m, 2, 0x100000, 256 * MIB, 1);
	free(initrd);
	ram_free(&f);
}

static void real_vmlinux(void **state)
{
	(void)state;
	char path[PATH_MAX + 64];
	Elf64_Ehdr eh;
	int fd;

	if (!have_image("vmlinux", path, sizeof(path)))
		skip();
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, &eh, sizeof(eh)), sizeof(eh));
	close(fd);
	/* e_entry of an x86 vmlinux is physical: phys_startup_64 */
	real_kernel("vmlinux", eh.e_entry);
}

static void real_bzimage(void **state)
{
	(void)state;
	real_kernel("vmlinuz", 0x100200);
}

/* ------------------------------------------------------------ 16550A */

static char uart_out[256];
static size_t uart_len;
static int uart_irq_level, uart_irq_edges;

static void uart_sink(void *ctx, const char *buf, unsigned len)
{
	(void)ctx;
	for (unsigned i = 0; i < len && uart_len < sizeof(uart_out) - 1; i++)
		uart_out[uart_len++] = buf[i];
}

static void uart_irq(void *ctx, int level)
{
	(void)ctx;
	if (level && !uart_irq_level)
		uart_irq_edges++;
	uart_irq_level = level;
}

static uint8_t uin(struct serial8250 *s, unsigned reg)
{
	uint8_t v = 0;

	assert_true(serial8250_io(s, (uint16_t)(SERIAL_COM1_BASE + reg), false, &v, 1));
	return v;
}

static void uout(struct serial8250 *s, unsigned reg, uint8_t v)
{
	assert_true(serial8250_io(s, (uint16_t)(SERIAL_COM1_BASE + reg), true, &v, 1));
}

static void uart_registers(void **state)
{
	(void)state;
	struct serial8250 s;
	uint8_t v = 0;

	uart_len = 0;
	serial8250_init(&s, uart_sink, NULL);
	assert_false(serial8250_io(&s, 0x2f8, false, &v, 1));
	/* scratch */
	uout(&s, 7, 0x5a);
	assert_int_equal(uin(&s, 7), 0x5a);
	/* divisor latch behind DLAB, not mixed with THR/IER */
	uout(&s, 3, 0x83);
	uout(&s, 0, 0x01);
	uout(&s, 1, 0x00);
	assert_int_equal(uin(&s, 0), 0x01);
	uout(&s, 3, 0x03);
	assert_int_equal(uin(&s, 3), 0x03);
	assert_int_equal(uart_len, 0);
	/* 16550A: FIFO bits in IIR once enabled, none else; IER top bits 0 */
	assert_int_equal(uin(&s, 2), 0x01);
	uout(&s, 2, 0x07);
	assert_int_equal(uin(&s, 2), 0xc1);
	uout(&s, 1, 0xf0);
	assert_int_equal(uin(&s, 1), 0x00);
	/* transmitter always ready, nothing received */
	assert_int_equal(uin(&s, 5) & 0x61, 0x60);
	/* loopback echoes MCR into MSR, and swallows output */
	uout(&s, 4, 0x1a);
	assert_int_equal(uin(&s, 6) & 0xf0, 0x90);
	uout(&s, 0, 'X');
	uout(&s, 4, 0x0b);
	assert_int_equal(uart_len, 0);
	uout(&s, 0, 'o');
	uout(&s, 0, 'k');
	uout(&s, 0, '\n');
	assert_int_equal(uart_len, 3);
	assert_memory_equal(uart_out, "ok\n", 3);
}

static void uart_thre_interrupt(void **state)
{
	(void)state;
	struct serial8250 s;

	uart_len = 0;
	uart_irq_level = uart_irq_edges = 0;
	serial8250_init(&s, uart_sink, NULL);
	serial8250_set_irq(&s, uart_irq);
	assert_int_equal(uart_irq_level, 0);
	/* Linux's check for UARTs that do not re-assert THRE: enable,
	 * read IIR (THRI), disable, enable, read IIR (THRI again) */
	uout(&s, 1, 0x02);
	assert_int_equal(uart_irq_level, 1);
	assert_int_equal(uin(&s, 2) & 0x0f, 0x02);
	assert_int_equal(uart_irq_level, 0);
	assert_int_equal(uin(&s, 2) & 0x0f, 0x01);   /* acknowledged */
	uout(&s, 1, 0x00);
	uout(&s, 1, 0x02);
	assert_int_equal(uin(&s, 2) & 0x0f, 0x02);
	/* the tx path: each byte written after the IIR read raises a new edge */
	int edges = uart_irq_edges;
	uout(&s, 0, 'a');
	assert_int_equal(uart_irq_level, 1);
	assert_int_equal(uart_irq_edges, edges + 1);
	uout(&s, 1, 0x00);                           /* stop_tx */
	assert_int_equal(uart_irq_level, 0);
	assert_int_equal(uin(&s, 2) & 0x0f, 0x01);
}

static int setup_dir(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/densevm-linux-loader-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_dir(void **state)
{
	(void)state;
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(missing_kernel),
		cmocka_unit_test(tiny_and_truncated_kernels),
		cmocka_unit_test(bad_magic),
		cmocka_unit_test(elf_class_and_machine),
		cmocka_unit_test(bzimage_header_checks),
		cmocka_unit_test(kernel_too_big),
		cmocka_unit_test(cmdline_too_long),
		cmocka_unit_test(bad_initrds),
		cmocka_unit_test(ram_must_start_at_zero),
		cmocka_unit_test(synthetic_vmlinux),
		cmocka_unit_test(synthetic_bzimage),
		cmocka_unit_test(real_vmlinux),
		cmocka_unit_test(real_bzimage),
		cmocka_unit_test(uart_registers),
		cmocka_unit_test(uart_thre_interrupt),
	};

	return cmocka_run_group_tests(tests, setup_dir, remove_dir);
}
