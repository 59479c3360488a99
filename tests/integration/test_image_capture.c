/*
 * test_image_capture.c - `densevm image capture` end to end, small: one
 * boot of the Debian cloud kernel under QEMU (TCG here) with the capture
 * initramfs, 256 MiB, the short workload (python3 + sqlite3), into a
 * temporary images directory:
 *   - it prints each stage with its seconds and ends with a whole image:
 *     manifest with the kernel release, workload, seed, RAM size and the
 *     packages (python3, redis-server, sqlite3, busybox-static), a
 *     checksum that verifies, and zero pages as holes (st_blocks below the
 *     size); a second run takes it from the cache;
 *   - failures say where and leave no image and no temporary directory:
 *     a boot timeout (1 s), a missing kernel, bad arguments (exit 2).
 * Where qemu-system-x86_64 is missing it prints a SKIPPED line; so it does
 * where the kernel or the capture initramfs was not built (make images).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "testvm.h"
#include "images/images.h"

static char g_dir[96];

static int teardown(void **state)
{
	(void)state;
	char cmd[160];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", g_dir);
	return system(cmd) ? -1 : 0;
}

static bool have(const char *path)
{
	return access(path, R_OK) == 0;
}

/* Entries of g_dir other than . .. and the console logs. */
static int leftovers(char *names, size_t len)
{
	DIR *d = opendir(g_dir);
	struct dirent *e;
	int n = 0;
	names[0] = 0;
	while (d && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
		    !strcmp(e->d_name, IMAGE_DIR_MARKER) ||
		    strstr(e->d_name, ".console.log"))
			continue;
		n++;
		strncat(names, e->d_name, len - strlen(names) - 2);
		strncat(names, " ", len - strlen(names) - 1);
	}
	if (d)
		closedir(d);
	return n;
}

static void capture_small(void **state)
{
	(void)state;
	char kernel[600], initrd[600], out_dir[200];
	/* the binary's build/ (build/san/ for sanitizer builds shares build/) */
	const char *b = test_build_dir();
	snprintf(kernel, sizeof(kernel), "%s/linux/vmlinuz", b);
	snprintf(initrd, sizeof(initrd), "%s/images/userland/initramfs.cpio", b);
	if (!have(kernel))
		snprintf(kernel, sizeof(kernel), "%s/../linux/vmlinuz", b);
	if (!have(initrd))
		snprintf(initrd, sizeof(initrd), "%s/../images/userland/initramfs.cpio", b);
	if (system("command -v qemu-system-x86_64 >/dev/null 2>&1")) {
		print_message("[  SKIPPED ] %s: needs qemu-system-x86_64 (Debian "
			      "package qemu-system-x86)\n", __func__);
		skip();
	}
	if (!have(kernel) || !have(initrd)) {
		print_message("[  SKIPPED ] %s: needs %s and %s (make images)\n",
			      __func__, kernel, initrd);
		skip();
	}
	snprintf(g_dir, sizeof(g_dir), "/tmp/densevm-test-capture-%d", (int)getpid());
	snprintf(out_dir, sizeof(out_dir), "%s/small", g_dir);

	char *argv[] = { "densevm", "image", "capture", "small", "--mem", "256M",
			 "--workload", "short", "--seed", "7", "--timeout", "110",
			 "--kernel", kernel, "--initrd", initrd, "--dir", g_dir, NULL };
	char *out;
	uint64_t t0 = hv_now_ns();
	int rc = run_densevm(argv, &out);
	double secs = (double)(hv_now_ns() - t0) / 1e9;
	if (rc)
		fail_msg("capture failed (%d):\n%s", rc, out);
	print_message("captured 256 MiB in %.1f s\n", secs);
	assert_non_null(strstr(out, "stage init"));
	assert_non_null(strstr(out, "stage run"));
	assert_non_null(strstr(out, "marker seen"));
	assert_non_null(strstr(out, " s  "));   /* seconds on every stage */
	free(out);

	struct image *im;
	char err[600];
	if (image_open(out_dir, &im, err, sizeof(err)))
		fail_msg("%s", err);
	assert_int_equal(im->m.ram_bytes, 256ull << 20);
	assert_int_equal(im->m.seed, 7);
	assert_string_equal(im->m.workload, "short");
	assert_true(strlen(im->m.kernel) > 3);
	assert_true(!strcmp(im->m.accel, "tcg") || !strcmp(im->m.accel, "kvm"));
	assert_true(im->m.capture_s > 1);
	for (const char *p = "python3= redis-server= sqlite3= busybox-static= libc6=";
	     *p;) {
		char want[40];
		size_t n = strcspn(p, " ");
		snprintf(want, sizeof(want), "%.*s", (int)n, p);
		if (!strstr(im->m.packages, want))
			fail_msg("no %s in the packages: %s", want, im->m.packages);
		p += n + (p[n] == ' ');
	}
	assert_int_equal(image_verify(im, err, sizeof(err)), 0);
	assert_true(im->m.data_pages > 10000);
	assert_true(im->m.zero_pages > 0);
	struct stat st;
	assert_int_equal(fstat(im->fd, &st), 0);
	assert_true((uint64_t)st.st_blocks * 512 < im->m.ram_bytes);
	assert_true((uint64_t)st.st_blocks * 512 <= im->m.data_pages * 4096 + 65536);
	image_close(im);

	/* the same capture again: the cache */
	rc = run_densevm(argv, &out);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "cached"));
	assert_non_null(strstr(out, "1 from the cache"));
	free(out);

	/* a boot that cannot make it: says where, leaves nothing */
	char *to[] = { "densevm", "image", "capture", "late", "--mem", "256M",
		       "--workload", "short", "--timeout", "1", "--kernel", kernel,
		       "--initrd", initrd, "--dir", g_dir, NULL };
	rc = run_densevm(to, &out);
	assert_int_equal(rc, 1);
	if (!strstr(out, "boot timeout") || !strstr(out, "marker"))
		fail_msg("expected a boot timeout:\n%s", out);
	free(out);
	char names[512];
	int n = leftovers(names, sizeof(names));
	if (n != 1)   /* only small/ */
		fail_msg("left behind in %s: %s", g_dir, names);

	char *nok[] = { "densevm", "image", "capture", "x", "--kernel",
			"/nonexistent/vmlinuz", "--dir", g_dir, NULL };
	assert_int_equal(run_densevm(nok, &out), 1);
	assert_non_null(strstr(out, "no kernel at /nonexistent/vmlinuz"));
	free(out);
	char *bad[] = { "densevm", "image", "capture", "x", "--workload", "bogus",
			NULL };
	assert_int_equal(run_densevm(bad, &out), 2);
	assert_non_null(strstr(out, "--workload: 'bogus'"));
	free(out);
	char *badmem[] = { "densevm", "image", "capture", "x", "--mem", "3M", NULL };
	assert_int_equal(run_densevm(badmem, &out), 2);
	assert_non_null(strstr(out, "multiple of 2M"));
	free(out);
	char *help[] = { "densevm", "image", "capture", "--help", NULL };
	assert_int_equal(run_densevm(help, &out), 0);
	assert_non_null(strstr(out, "usage: densevm image capture"));
	free(out);
}

static void stat_cli(void **state)
{
	(void)state;
	/* `densevm image stat` on two synthetic images: table and JSON */
	snprintf(g_dir, sizeof(g_dir), "/tmp/densevm-test-imgstat-%d", (int)getpid());
	mkdir(g_dir, 0755);
	char *out;
	for (int s = 1; s <= 2; s++) {
		char seed[8], name[8];
		snprintf(seed, sizeof(seed), "%d", s);
		snprintf(name, sizeof(name), "s%d", s);
		char *argv[] = { "densevm", "image", "synth", name, "--mem", "16M",
				 "--seed", seed, "--dir", g_dir, NULL };
		assert_int_equal(run_densevm(argv, &out), 0);
		free(out);
	}
	char a[200], b[200];
	snprintf(a, sizeof(a), "%s/s1", g_dir);
	snprintf(b, sizeof(b), "%s/s2", g_dir);
	char *st[] = { "densevm", "image", "stat", a, b, NULL };
	assert_int_equal(run_densevm(st, &out), 0);
	assert_non_null(strstr(out, "ideal sharing saves"));
	assert_non_null(strstr(out, "same-GPA"));
	free(out);
	char *sj[] = { "densevm", "image", "stat", a, b, "--json", NULL };
	assert_int_equal(run_densevm(sj, &out), 0);
	assert_non_null(strstr(out, "\"saving_bytes\""));
	free(out);
	char *missing[] = { "densevm", "image", "stat", "/nonexistent/img", NULL };
	assert_int_equal(run_densevm(missing, &out), 1);
	assert_non_null(strstr(out, "no such image"));
	free(out);
	char *none[] = { "densevm", "image", "stat", NULL };
	assert_int_equal(run_densevm(none, &out), 2);
	free(out);
	char *unk[] = { "densevm", "image", "frobnicate", NULL };
	assert_int_equal(run_densevm(unk, &out), 2);
	assert_non_null(strstr(out, "unknown command 'frobnicate'"));
	free(out);
	/* ram_image names a missing image: one line, before any VM runs */
	char *run[] = { "densevm", "run", "--ctl", "none", "--vm",
			"mem=64M,ram_image=/nonexistent/img,workload=image", NULL };
	assert_int_equal(run_densevm(run, &out), 1);
	assert_non_null(strstr(out, "ram_image: /nonexistent/img: no such image"));
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(stat_cli, teardown),
		cmocka_unit_test_teardown(capture_small, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
