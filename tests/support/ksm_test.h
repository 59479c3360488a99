/*
 * ksm_test.h - helpers shared by the ksm unit tests (tests/unit/test_ksm_*):
 * an engine, fake VMs on memfds, one scan pass, the self-check, and the
 * expected content of a page, each asserting success.
 */
#ifndef DENSEVM_KSM_TEST_H
#define DENSEVM_KSM_TEST_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <cmocka.h>
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "ksm/ksm.h"
#include "ksm/ksm_fake.h"

#define PG 4096ULL

/* The unit tests drive the scanner pass by pass, and each pass reads the
 * dirty log (dirty_ms 0); mk_timed() keeps the config's own dirty_ms. */
static inline struct ksm *mk_timed(const struct ksm_config *cfg)
{
	struct ksm_config def;
	struct ksm *k;
	char err[256];

	if (!cfg) {
		ksm_config_default(&def);
		cfg = &def;
	}
	assert_int_equal(ksm_create(cfg, &k, err, sizeof(err)), 0);
	return k;
}

static inline struct ksm *mk(const struct ksm_config *cfg)
{
	struct ksm_config c;

	if (cfg)
		c = *cfg;
	else
		ksm_config_default(&c);
	c.dirty_ms = 0;
	return mk_timed(&c);
}

static inline struct ksm_fake_vm *vm_new(const char *name, int base_fd,
				  uint64_t npages)
{
	struct ksm_fake_range r = { 0, npages * PG };
	struct ksm_fake_vm *vm;

	assert_int_equal(ksm_fake_vm_create(name, base_fd, &r, 1, &vm), 0);
	return vm;
}

static inline struct ksm_vm *add(struct ksm *k, struct ksm_fake_vm *vm,
			  unsigned domain)
{
	struct ksm_vm *kv;
	char err[256];
	int ret = ksm_add_vm(k, &ksm_fake_ops, vm, domain, &kv, err,
			     sizeof(err));

	if (ret)
		fprintf(stderr, "add_vm: %s\n", err);
	assert_int_equal(ret, 0);
	return kv;
}

static inline void check(struct ksm *k)
{
	char err[512];
	int ret = ksm_self_check(k, err, sizeof(err));

	if (ret)
		fprintf(stderr, "self-check: %s\n", err);
	assert_int_equal(ret, 0);
}

static inline void pass(struct ksm *k)
{
	assert_int_equal(ksm_scan_pass(k), 0);
}

static inline void expect_pattern(struct ksm_fake_vm *vm, uint64_t gpa,
			   uint64_t seed)
{
	static uint8_t buf[PG];

	ksm_fake_pattern(buf, seed);
	assert_memory_equal(ksm_fake_hva(vm, gpa), buf, PG);
}

static inline unsigned state(struct ksm_fake_vm *vm, uint64_t gpa)
{
	return hv_ps_state(ksm_fake_page_state(vm, gpa));
}

/* Allocated bytes of every ksm frames memfd of this process. */
static inline long long frames_blocks_bytes(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	long long total = 0;

	assert_non_null(d);
	while ((de = readdir(d))) {
		char path[300], link[256];
		struct stat st;
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/self/fd/%s", de->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = 0;
		if (strstr(link, "densevm-ksm-frames") && stat(path, &st) == 0)
			total += (long long)st.st_blocks * 512;
	}
	closedir(d);
	return total;
}

static inline long long fd_blocks_bytes(int fd)
{
	struct stat st;

	assert_int_equal(fstat(fd, &st), 0);
	return (long long)st.st_blocks * 512;
}

/* The engine, then its VMs and their base memfd. */
static inline void destroy_all(struct ksm *k, struct ksm_fake_vm **v, unsigned n,
			int base)
{
	ksm_destroy(k);
	for (unsigned j = 0; j < n; j++)
		ksm_fake_vm_destroy(v[j]);
	close(base);
}

#endif
