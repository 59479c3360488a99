/*
 * test_bench_scenario.c - `densevm bench` scenario files: the shipped ones
 * parse, keys land where they should (the workload phases too), every
 * error names FILE:LINE (or the
 * file, for what the whole file lacks), arm lists, and the binary's exit
 * statuses and messages for --help and bad input.  Needs no /dev/kvm.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <jansson.h>
#include "testvm.h"
#include "cli/bench.h"
#include "cli/cli.h"

static char *tmpfile_with(const char *text)
{
	char *p = strdup("/tmp/densevm-scenario-XXXXXX");
	int fd = mkstemp(p);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return p;
}

/* Synthetic images boot0..boot3 of 16 MiB in a folder of their own,
 * found by name through DENSEVM_IMAGES (the shipped `real` scenario names
 * them; `make images` captures the real ones, which a unit test cannot
 * wait for). */
static char g_images[64];

static int make_images(void **state)
{
	(void)state;
	snprintf(g_images, sizeof(g_images), "/tmp/densevm-scimg-%d", (int)getpid());
	mkdir(g_images, 0755);
	for (int i = 0; i < 4; i++) {
		char name[16], seed[8], *out;
		snprintf(name, sizeof(name), "boot%d", i);
		snprintf(seed, sizeof(seed), "%d", i + 1);
		char *argv[] = { "densevm", "image", "synth", name, "--mem", "16M",
				 "--seed", seed, "--dir", g_images, NULL };
		int rc = run_densevm(argv, &out);
		if (rc)
			fprintf(stderr, "image synth %s: exit %d: %s\n", name, rc, out);
		free(out);
		if (rc)
			return -1;
	}
	setenv("DENSEVM_IMAGES", g_images, 1);
	return 0;
}

static int drop_images(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_images);
	if (system(cmd)) {}
	return 0;
}

static void shipped_scenarios(void **state)
{
	(void)state;
	static const char *const names[] = { "default", "clones", "mixed",
					     "squeeze", "density", "phases",
					     "many", "real" };
	static struct bench_scenario sc;
	char err[600], p[256];
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(p, sizeof(p), "bench/scenarios/%s.ini", names[i]);
		if (bench_scenario_load(p, &sc, err, sizeof(err)))
			fail_msg("%s: %s", p, err);
		assert_string_equal(sc.name, names[i]);
		assert_true(sc.ngroups > 0);
		assert_true(sc.sample_hz >= 10);
		assert_true(sc.quick_duration <= sc.duration);
	}
}

static void keys(void **state)
{
	(void)state;
	static struct bench_scenario sc;
	char err[600];
	char *p = tmpfile_with(
		"; a test\n[scenario]\nname = t1\nbudget = 1G\nduration = 40\n"
		"quick_duration = 10\nsample_hz = 20\n"
		"[group web]\ncount = 3\nmem = 64M\nworkload = idle\n"
		"quick_workload = idle seconds=5\nshares = 3000\nmin = 16M\n"
		"max = 48M\nactive = 1\n"
		"[group db]\nworkload = verify mib=8\ncount = 4\nstart = 2\n"
		"arrive_every = 3\n"
		"[phase squeeze]\nat = 20\nbudget = 50%\n"
		"[phase free]\nat = 30\nquick_at = 9\nbudget = none\n");
	assert_int_equal(bench_scenario_load(p, &sc, err, sizeof(err)), 0);
	assert_string_equal(sc.name, "t1");
	assert_int_equal(sc.budget, 1ull << 30);
	assert_true(sc.duration == 40 && sc.quick_duration == 10);
	assert_true(sc.sample_hz == 20);
	assert_int_equal(sc.ngroups, 2);
	assert_string_equal(sc.group[0].name, "web");
	assert_int_equal(sc.group[0].count, 3);
	assert_int_equal(sc.group[0].mem, 64ull << 20);
	assert_string_equal(sc.group[0].workload, "idle");
	assert_string_equal(sc.group[0].quick_workload, "idle seconds=5");
	assert_int_equal(sc.group[0].shares, 3000);
	assert_int_equal(sc.group[0].min, 16ull << 20);
	assert_int_equal(sc.group[0].max, 48ull << 20);
	assert_true(sc.group[0].active);
	assert_int_equal(sc.group[1].count, 4);
	assert_true(bench_vm_start(&sc, 1, 0, false) == 2);
	assert_true(bench_vm_start(&sc, 1, 3, false) == 11);
	assert_true(bench_vm_start(&sc, 1, 3, true) == 11.0 / 4);   /* scaled */
	assert_true(bench_vm_start(&sc, 0, 2, false) == 0);
	assert_false(sc.density);
	assert_int_equal(sc.group[1].mem, 128ull << 20);
	assert_false(sc.group[1].active);
	assert_int_equal(bench_scenario_ram(&sc), (3 * 64ull + 4 * 128) << 20);
	assert_int_equal(sc.nphases, 2);
	assert_true(sc.phase[0].budget_rel && sc.phase[0].budget_pct == 50);
	assert_true(bench_phase_at(&sc, 0, false) == 20);
	assert_true(bench_phase_at(&sc, 0, true) == 5);   /* scaled */
	assert_true(bench_phase_at(&sc, 1, true) == 9);   /* its own */
	assert_int_equal(sc.phase[1].budget, 0);
	unlink(p);
	free(p);
}

static void errors(void **state)
{
	(void)state;
	static const struct { const char *text; int line; const char *msg; } bad[] = {
		{ "[scenario]\nname = a\n[group g]\nworkload = idle\nmem = huge\n", 5,
		  "[group g] mem: 'huge' must be a size" },
		{ "[scenario]\nname = a\n[group g]\nworkload = idle\nmem = 3M\n", 5,
		  "multiple of 2M" },
		{ "[scenario]\nname = a\nbudget = lots\n", 3,
		  "[scenario] budget: 'lots' must be a size like 512M or none" },
		{ "[scenario]\nname = a\nduration = 0\n", 3, "duration: '0'" },
		{ "[scenario]\nname = a\nsample_hz = 1000\n", 3, "[1, 100]" },
		{ "[scenario]\nnmae = a\n", 2, "unknown key 'nmae'" },
		{ "name = a\n", 1, "outside any section" },
		{ "[scenario]\nname = a\n[groups g]\n", 3, "unknown section [groups g]" },
		{ "[scenario]\nname = a\n[group g]\nworkload = idle\n\n[group g]\n", 6,
		  "[group g] repeats " },
		{ "[scenario]\nname = a\n[group g h]\n", 3, "a name is 1-39" },
		{ "[scenario]\nname = a\n[group g]\nworkload = idle\ncount = 0\n", 5,
		  "count: '0' must be an integer in [1, 1024]" },
		{ "[scenario]\nname = a\n[group g]\nworkload = idle\nshares = x\n", 5,
		  "shares: 'x'" },
		{ "[scenario]\nname = a\n[group g]\nworkload = idle\nactive = yes\n", 5,
		  "active: 'yes' must be 0 or 1" },
		{ "[scenario]\nname = a\n[group g]\nworkload = idle\ncolour = red\n", 5,
		  "[group g] unknown key 'colour'" },
		{ "[scenario]\nname = a\n[group g]\nworkload = idle\n[phase p]\n"
		  "at = soon\n", 6, "[phase p] at: 'soon' must be seconds" },
		{ "[scenario]\nname = a\n[group g]\nworkload = idle\n[phase p]\n"
		  "at = 1\nbudget = 0%\n", 7, "1%-1000%" },
		{ "[scenario]\nname = a\nduration = 30\n[group d]\nworkload = dirty mib=8 rate=10\n[group g]\nworkload = grow mib=8 step=8 every_ms=100 max=32\n[group i]\ncount = 3\nworkload = idle\n[phase p]\nat = 5\n"
		  "start = nosuch\n", 13, "[phase p] start: no [group nosuch]" },
		{ "[scenario]\nname = a\nduration = 30\n[group d]\nworkload = dirty mib=8 rate=10\n[group g]\nworkload = grow mib=8 step=8 every_ms=100 max=32\n[group i]\ncount = 3\nworkload = idle\n[phase p]\nat = 5\n"
		  "idle = g\n", 13, "group g's workload is not dirty" },
		{ "[scenario]\nname = a\nduration = 30\n[group d]\nworkload = dirty mib=8 rate=10\n[group g]\nworkload = grow mib=8 step=8 every_ms=100 max=32\n[group i]\ncount = 3\nworkload = idle\n[phase p]\nat = 5\n"
		  "grow = d\n", 13, "group d's workload is not grow" },
		{ "[scenario]\nname = a\nduration = 30\n[group d]\nworkload = dirty mib=8 rate=10\n[group g]\nworkload = grow mib=8 step=8 every_ms=100 max=32\n[group i]\ncount = 3\nworkload = idle\n[phase p]\nat = 5\n"
		  "activate = d d\n", 13, "group d is named twice" },
		{ "[scenario]\nname = a\nduration = 30\n[group d]\nworkload = dirty mib=8 rate=10\n[group g]\nworkload = grow mib=8 step=8 every_ms=100 max=32\n[group i]\ncount = 3\nworkload = idle\n[phase p]\nat = 5\n"
		  "idle = , ,\n", 13, "[phase p] idle: name one or more groups" },
		{ "[scenario]\nname = a\nduration = 30\n[group d]\nworkload = dirty mib=8 rate=10\n[group g]\nworkload = grow mib=8 step=8 every_ms=100 max=32\n[group i]\ncount = 3\nworkload = idle\n[phase p]\nat = 5\n"
		  "idle = d\nactivate = d\n", 13, "cannot go idle and active at once" },
		{ "[scenario]\nname = a\nduration = 30\n[group d]\nworkload = dirty mib=8 rate=10\n[group g]\nworkload = grow mib=8 step=8 every_ms=100 max=32\n[group i]\ncount = 3\nworkload = idle\n[phase p]\nat = 5\n"
		  "start = i\n[phase q]\nat = 6\nstart = i\n", 16,
		  "group i already starts at another phase" },
		{ "[scenario]\nname = a\nduration = 30\n[group d]\nworkload = dirty mib=8 rate=10\n[group g]\nworkload = grow mib=8 step=8 every_ms=100 max=32\n[group i]\ncount = 3\nworkload = idle\n[phase p]\nat = 5\n"
		  "quick_at = 1\n", 11, "[phase p] does nothing" },
		{ "[scenario]\nname = a\nduration = 10\n[group i]\ncount = 3\n"
		  "arrive_every = 2\nworkload = idle\n[phase p]\nat = 7\nstart = i\n",
		  10, "group i's last VM would start at 11 s" },
		{ "[scenario]\nname = a\n[group i]\nstart = 2\nworkload = idle\n"
		  "[phase p]\nat = 7\nstart = i\n", 8, "already starts at its own start" },
		{ "[scenario]\nname = a\n[group g]\nworkload = idle\n[phase p]\n"
		  "at = 1\nstop = g\n", 7, "unknown key 'stop' (known: at quick_at "
		  "budget start idle activate grow)" },
		{ "[scenario]\nname = a\n[group g]\nworkload = idle\n[phase p]\n"
		  "budget = 1G\n", 5, "[phase p] needs at = SECONDS" },
		{ "[scenario]\nname = a\nduration = 10\n[group g]\nworkload = idle\n"
		  "[phase p]\nat = 20\n", 6, "not within the duration" },
		{ "[scenario]\nname = a\n[group g]\nworkload = idle\n[phase p]\n"
		  "at = 20\n[phase q]\nat = 10\n", 7, "comes before [phase p]" },
		{ "[scenario]\nname = a\n[group g]\nmem = 64M\n", 3,
		  "[group g] needs a workload" },
		{ "[scenario]\nname = a\n[group g]\nworkload = idle\nmin = 1G\n"
		  "max = 512M\n", 3, "min is above max" },
		{ "[scenario]\nname = a\n[group g]\nworkload = idle\nthis is not ini\n",
		  5, "syntax error" },
		{ "[scenario]\nname = a\n[group g]\nworkload = idle\nstart = -1\n", 5,
		  "[group g] start: '-1' must be seconds" },
		{ "[scenario]\nname = a\ndensity = yes\n", 3,
		  "density: 'yes' must be 0 or 1" },
		{ "[scenario]\nname = a\nhost_cost = 2\n", 3,
		  "host_cost: '2' must be 0 or 1" },
		{ "[scenario]\nname = a\nduration = 10\n[group g]\nworkload = idle\n"
		  "count = 5\narrive_every = 3\n", 4, "its last VM would start at 12 s" },
	};
	static struct bench_scenario sc;
	char err[600], want[700];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *p = tmpfile_with(bad[i].text);
		int rc = bench_scenario_load(p, &sc, err, sizeof(err));
		snprintf(want, sizeof(want), "%s:%d: ", p, bad[i].line);
		if (rc == 0 || strncmp(err, want, strlen(want)) ||
		    !strstr(err, bad[i].msg))
			fail_msg("case %zu: rc %d, '%s' (want '%s... %s')", i, rc, err,
				 want, bad[i].msg);
		unlink(p);
		free(p);
	}
	/* what the whole file lacks: FILE: why */
	static const struct { const char *text, *msg; } whole[] = {
		{ "[group g]\nworkload = idle\n", "no [scenario] section" },
		{ "[scenario]\nduration = 5\n[group g]\nworkload = idle\n",
		  "[scenario] needs a name" },
		{ "[scenario]\nname = a\n", "no [group NAME] section: a scenario needs VMs" },
	};
	for (size_t i = 0; i < sizeof(whole) / sizeof(whole[0]); i++) {
		char *p = tmpfile_with(whole[i].text);
		int rc = bench_scenario_load(p, &sc, err, sizeof(err));
		snprintf(want, sizeof(want), "%s: %s", p, whole[i].msg);
		if (rc == 0 || strcmp(err, want))
			fail_msg("whole case %zu: rc %d, '%s' (want '%s')", i, rc, err, want);
		unlink(p);
		free(p);
	}
	assert_int_not_equal(bench_scenario_load("/nonexistent.ini", &sc, err,
						 sizeof(err)), 0);
	assert_non_null(strstr(err, "/nonexistent.ini: No such file"));
}

/* The workload phases: each key lands on the right groups, a group started
 * by a phase starts then (quick: at quick_at), and each VM's schedule is
 * the phases' times in ms. */
static void phases(void **state)
{
	(void)state;
	static struct bench_scenario sc;
	char err[600], buf[300];
	char *p = tmpfile_with(
		"[scenario]\nname = ph\nduration = 40\nquick_duration = 20\n"
		"[phase rest]\nat = 0\nidle = busy\n"
		"[phase go]\nat = 10\nquick_at = 4\nactivate = busy\n"
		"grow = grower\nstart = late, grower\nbudget = 80%\n"
		"[group busy]\ncount = 2\nworkload = dirty mib=8 rate=100\n"
		"[group grower]\nworkload = grow mib=8 step=8 every_ms=100 max=32\n"
		"[group late]\ncount = 3\narrive_every = 2\nworkload = idle\n");
	if (bench_scenario_load(p, &sc, err, sizeof(err)))
		fail_msg("%s", err);
	assert_int_equal(sc.nphases, 2);
	assert_false(sc.phase[0].budget_set);
	assert_true(sc.phase[1].budget_set);
	assert_int_equal(sc.phase[0].act_mask[ACT_IDLE], 1u << 0);
	assert_int_equal(sc.phase[1].act_mask[ACT_ACTIVATE], 1u << 0);
	assert_int_equal(sc.phase[1].act_mask[ACT_GROW], 1u << 1);
	assert_int_equal(sc.phase[1].act_mask[ACT_START], 1u << 1 | 1u << 2);
	assert_true(bench_vm_start(&sc, 0, 1, false) == 0);
	assert_true(bench_vm_start(&sc, 2, 0, false) == 10);
	assert_true(bench_vm_start(&sc, 2, 2, false) == 14);
	assert_true(bench_vm_start(&sc, 2, 2, true) == 4 + 2);   /* 4 s scaled by 1/2 */
	bench_phase_sched(&sc, 0, false, buf, sizeof(buf));
	assert_string_equal(buf, " sched=0:idle,10000:active");
	bench_phase_sched(&sc, 1, true, buf, sizeof(buf));
	assert_string_equal(buf, " sched=4000:grow");
	bench_phase_sched(&sc, 2, false, buf, sizeof(buf));
	assert_string_equal(buf, "");
	unlink(p);
	free(p);
}

/* The reader is the run config's (cli/ini_file.c): a UTF-8 BOM is
 * skipped, a repeated section names both lines, a long comment is
 * harmless and a long key line is refused at its own line. */
static void ini_reader(void **state)
{
	(void)state;
	static struct bench_scenario sc;
	char err[600], want[700];
	char *p = tmpfile_with("\xEF\xBB\xBF[scenario]\nname = bom\n"
			       "[group g]\nworkload = idle\n");
	if (bench_scenario_load(p, &sc, err, sizeof(err)))
		fail_msg("a scenario with a BOM: %s", err);
	assert_string_equal(sc.name, "bom");
	assert_int_equal(sc.ngroups, 1);
	unlink(p);
	free(p);

	p = tmpfile_with("[scenario]\nname = a\n[group g]\nworkload = idle\n"
			 "; again\n\n[group g]\ncount = 2\n");
	assert_int_not_equal(bench_scenario_load(p, &sc, err, sizeof(err)), 0);
	snprintf(want, sizeof(want), "%s:7: [group g] repeats %s:3", p, p);
	assert_string_equal(err, want);
	unlink(p);
	free(p);

	char text[1024], pad[400];
	memset(pad, '.', sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = 0;
	snprintf(text, sizeof(text), "# %s\n[scenario]\nname = a\n[group g]\n"
		 "workload = idle\n", pad);
	p = tmpfile_with(text);
	if (bench_scenario_load(p, &sc, err, sizeof(err)))
		fail_msg("a long comment: %s", err);
	unlink(p);
	free(p);
	/* 199 characters and the newline: the longest line inih takes */
	snprintf(text, sizeof(text), "[scenario]\nname = a\ndescription = "
		 "%.185s\n[group g]\nworkload = idle\n", pad);
	p = tmpfile_with(text);
	if (bench_scenario_load(p, &sc, err, sizeof(err)))
		fail_msg("a 199-character line: %s", err);
	unlink(p);
	free(p);
	snprintf(text, sizeof(text), "[scenario]\nname = a\n[group g]\n"
		 "workload = idle %s\n", pad);
	p = tmpfile_with(text);
	assert_int_not_equal(bench_scenario_load(p, &sc, err, sizeof(err)), 0);
	snprintf(want, sizeof(want), "%s:4: line longer than 199 characters", p);
	assert_string_equal(err, want);
	unlink(p);
	free(p);
}

/* The group key image: the list lands in order as paths, VM k takes
 * image k % n (one [vm] section each, with its own churn seed and the
 * workload's end_ms), mem is derived or checked, and every misuse is a
 * FILE:LINE error; a missing image is one at load. */
static void images(void **state)
{
	(void)state;
	static struct bench_scenario sc;
	char err[700], want[900], p0[128];
	char *p = tmpfile_with(
		"[scenario]\nname = img\nduration = 30\nquick_duration = 10\n"
		"[group churn]\ncount = 3\nimage = boot0, boot1\n"
		"workload = image churn=2\nactive = 1\n"
		"[group fixed]\nimage = boot2\nmem = 64M\nworkload = image\n"
		"[group other]\nworkload = idle\n");
	if (bench_scenario_load(p, &sc, err, sizeof(err)))
		fail_msg("%s", err);
	assert_int_equal(sc.group[0].nimages, 2);
	snprintf(p0, sizeof(p0), "%s/boot1", g_images);
	assert_string_equal(sc.group[0].image[1], p0);
	assert_int_equal(sc.group[0].mem, 20ull << 20);   /* derived */
	assert_int_equal(image_vm_mem(16ull << 20), 20ull << 20);
	assert_int_equal(image_vm_mem(512ull << 20), 516ull << 20);
	assert_int_equal(sc.group[1].mem, 64ull << 20);   /* as given */
	assert_int_equal(sc.group[2].nimages, 0);
	assert_int_equal(bench_scenario_ram(&sc), (3 * 20ull + 64 + 128) << 20);

	/* the arm's run config */
	char conf[] = "/tmp/densevm-scconf-XXXXXX";
	int fd = mkstemp(conf);
	assert_true(fd >= 0);
	close(fd);
	struct bench_opts o = { .sc = &sc, .quick = true, .reps = 1 };
	assert_int_equal(bench_write_config(&o, ARM_DENSE, conf, "/dev/null", 42), 0);
	FILE *f = fopen(conf, "r");
	assert_non_null(f);
	char text[8192];
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = 0;
	fclose(f);
	unlink(conf);
	static const char *const lines[] = {
		"[vm churn0]\nworkload = image churn=2 end_ms=5000 epoch=42 "
		"report_ms=500 seed=1000\nmem = 20M\nram_image = %s/boot0\n",
		"[vm churn1]\nworkload = image churn=2 end_ms=5000 epoch=42 "
		"report_ms=500 seed=1001\nmem = 20M\nram_image = %s/boot1\n",
		"[vm churn2]\nworkload = image churn=2 end_ms=5000 epoch=42 "
		"report_ms=500 seed=1002\nmem = 20M\nram_image = %s/boot0\n",
		"[vm fixed]\ncount = 1\nworkload = image end_ms=5000 epoch=42 "
		"seed=2000\nmem = 64M\nram_image = %s/boot2\n",
		"[vm other]\ncount = 1\nworkload = idle epoch=42\nmem = 128M\n",
	};
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		snprintf(want, sizeof(want), lines[i], g_images);
		if (!strstr(text, want))
			fail_msg("the config lacks:\n%s\nit is:\n%s", want, text);
	}
	assert_null(strstr(text, "[vm other]\ncount = 1\nworkload = idle epoch=42\n"
			    "mem = 128M\nram_image"));
	unlink(p);
	free(p);

	static const struct { const char *text; int line; const char *msg; } bad[] = {
		{ "[scenario]\nname = a\n[group g]\nimage = boot0\nworkload = idle\n",
		  4, "[group g] image: the group's workload must be an `image ...` "
		  "workload (it is 'idle')" },
		{ "[scenario]\nname = a\n[group g]\nimage = boot0\nworkload = image\n"
		  "quick_workload = idle\n", 4, "the group's quick_workload must be" },
		{ "[scenario]\nname = a\n[group g]\ncount = 2\nworkload = image churn=1\n",
		  5, "[group g] an `image` workload needs RAM images: add image = NAME" },
		{ "[scenario]\nname = a\n[group g]\nworkload = image\nimage = boot0 nosuch\n",
		  5, "[group g] image: no image nosuch in %s: run `make images`" },
		{ "[scenario]\nname = a\n[group g]\nworkload = image\n"
		  "image = /nonexistent/img\n", 5,
		  "[group g] image: no image at /nonexistent/img" },
		{ "[scenario]\nname = a\n[group g]\nworkload = image\nimage = boot0\n"
		  "mem = 18M\n", 6, "[group g] mem: 18M cannot hold image boot0 "
		  "(16 MiB) with its checksum table and 2 MiB of guest heap: at least 20M" },
		{ "[scenario]\nname = a\n[group g]\nworkload = image\nimage = , ,\n", 5,
		  "[group g] image: name one or more images" },
		{ "[scenario]\nname = a\n[group g]\nworkload = image\n"
		  "image = a b c d e f g h i\n", 5, "[group g] image: more than 8 images" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char msg[300];
		p = tmpfile_with(bad[i].text);
		snprintf(msg, sizeof(msg), bad[i].msg, g_images);
		int rc = bench_scenario_load(p, &sc, err, sizeof(err));
		snprintf(want, sizeof(want), "%s:%d: ", p, bad[i].line);
		if (rc == 0 || strncmp(err, want, strlen(want)) || !strstr(err, msg))
			fail_msg("case %zu: rc %d, '%s' (want '%s... %s')", i, rc, err,
				 want, msg);
		unlink(p);
		free(p);
	}
}

/* Loads scenario text into sc; fails the test on an error. */
static void load_text(const char *text, struct bench_scenario *sc)
{
	char err[600], *p = tmpfile_with(text);
	if (bench_scenario_load(p, sc, err, sizeof(err)))
		fail_msg("%s", err);
	unlink(p);
	free(p);
}

/* The goals block of results r: its JSON (root) and Markdown (*md). */
static json_t *goals_of(const struct bench_opts *o, struct bench_result *r,
			size_t n, unsigned mask, char **md)
{
	size_t mdlen;
	json_t *root = json_object();
	FILE *f = open_memstream(md, &mdlen);
	assert_non_null(f);
	bench_goals(o, r, n, mask, f, root);
	fclose(f);
	return root;
}

static const char *goal_text(json_t *root, size_t i, json_t **met)
{
	json_t *g = json_array_get(json_object_get(root, "goals"), i);
	assert_non_null(g);
	*met = json_object_get(g, "met");
	return json_string_value(json_object_get(g, "measured"));
}

/* What the summary may claim, and the goals block computed from results:
 * ratios with the numbers they came from, n/a with the reason. */
static void goals(void **state)
{
	(void)state;
	static struct bench_scenario sc;
	load_text("[scenario]\nname = g\nbudget = 1G\nduration = 30\ndensity = 1\n"
		  "[group busy]\nworkload = dirty mib=8 rate=100\nactive = 1\n", &sc);
	struct bench_opts o = { .sc = &sc, .quick = true, .reps = 1 };
	struct bench_result r[3] = {
		{ .arm = ARM_NONE, .ran = true, .vms_fit = 8, .t_fail = 8.4,
		  .oom_kills = 1, .t_steady = 3, .throughput_pct = 100 },
		{ .arm = ARM_KERNEL_MOM, .ran = true, .vms_fit = 8, .t_fail = 8.5,
		  .oom_kills = 1, .t_steady = 4, .reclaimed_gib = 20.0 / 1024,
		  .reclaim_cpu = 0.04, .throughput_pct = 100 },
		{ .arm = ARM_DENSE_POLICY, .ran = true, .vms_fit = 18, .t_fail = 20,
		  .oom_kills = 1, .t_steady = 9, .reclaimed_gib = 1, .reclaim_cpu = 5,
		  .throughput_pct = 101, .tput_worst_pct = 97 },
	};
	/* no claim where it would not be true */
	assert_true(bench_t_steady(&r[1]) < 0);          /* it does not fit */
	assert_true(bench_cpu_per_gib(&r[1]) < 0);       /* 20 MiB: noise */
	assert_true(bench_cpu_per_gib(&r[2]) == 5);
	unsigned mask = 1u << ARM_NONE | 1u << ARM_KERNEL_MOM | 1u << ARM_DENSE_POLICY;
	char *md;
	json_t *met, *root = goals_of(&o, r, 3, mask, &md);
	const char *t = goal_text(root, 0, &met);
	assert_string_equal(t, "18 vs 8 VMs = 2.25x");
	assert_true(json_is_true(met));
	assert_string_equal(goal_text(root, 1, &met), "18 vs 8 VMs = 2.25x");
	t = goal_text(root, 2, &met);
	assert_non_null(strstr(t, "n/a: dense+policy does not fit"));
	assert_true(json_is_null(met));
	t = goal_text(root, 3, &met);
	assert_string_equal(t, "n/a: kernel+mom reclaimed at most 20 MiB against "
			    "none (under 64 MiB)");
	t = goal_text(root, 4, &met);
	assert_string_equal(t, "dense+policy 101.0 % of none's; worst 2 s window "
			    "97.0 %");
	assert_true(json_is_true(met));
	assert_non_null(strstr(goal_text(root, 5, &met), "n/a: no arm's memory fit"));
	assert_non_null(strstr(md, "## Against the goals"));
	json_decref(root);
	free(md);

	/* both fit: the time to steady and CPU per GiB ratios; a lower bound
	 * of the reference is no ratio */
	sc.density = false;
	for (int i = 0; i < 3; i++) {
		r[i].oom_kills = 0;
		r[i].fits = true;
		r[i].t_fail = -1;
	}
	r[1].t_steady = 20;
	r[1].reclaimed_gib = 0.25;
	r[1].reclaim_cpu = 0.5;      /* 2 s/GiB */
	r[2].t_steady = 4;
	r[2].reclaim_cpu = 1;        /* 1 s/GiB over 1 GiB */
	r[2].mismatches = 1;         /* counted although it "fits" */
	r[2].fits = false;
	root = goals_of(&o, r, 3, mask, &md);
	assert_non_null(strstr(goal_text(root, 0, &met), "not a density scenario"));
	t = goal_text(root, 2, &met);
	assert_non_null(strstr(t, "n/a: dense+policy does not fit"));
	r[2].mismatches = 0;
	r[2].fits = true;
	json_decref(root);
	free(md);
	root = goals_of(&o, r, 3, mask, &md);
	t = goal_text(root, 2, &met);
	assert_string_equal(t, "kernel+mom 20.0 s / dense+policy 4.0 s = 5.00x "
			    "sooner");
	assert_true(json_is_true(met));
	t = goal_text(root, 3, &met);
	assert_string_equal(t, "dense+policy 1.00 s/GiB (1.00 CPU-s over 1024 "
			    "MiB) / kernel+mom 2.00 s/GiB (0.50 CPU-s over 256 "
			    "MiB) = 0.50");
	assert_true(json_is_false(met));
	t = goal_text(root, 5, &met);
	assert_non_null(strstr(t, "0 allocation failures, 0 mismatches, 0 crashed "
			       "VMs in the runs whose memory fit (none 1/1, "
			       "kernel+mom 1/1, dense+policy 1/1)"));
	assert_true(json_is_true(met));
	json_decref(root);
	free(md);
	sc.density = true;
	r[0].t_fail = -1;   /* none without a failure: a lower bound */
	root = goals_of(&o, r, 3, mask, &md);
	assert_non_null(strstr(goal_text(root, 0, &met), "n/a: none had no "
			       "failure in the run"));
	json_decref(root);
	free(md);
}

/* A run's figures: overcommit over the VMs that had started (a run that
 * ended at 12 s saw 3 of 4 arrivals), and what was reclaimed as the
 * median over the steady window, not a spike (a stale kernel counter). */
static void figures(void **state)
{
	(void)state;
	static struct bench_scenario sc;
	load_text("[scenario]\nname = f\nduration = 30\n[group g]\ncount = 4\n"
		  "arrive_every = 5\nmem = 128M\nworkload = idle\n", &sc);
	struct bench_opts o = { .sc = &sc, .reps = 1 };
	struct bench_result r = { .ran = true, .ns = 121 };
	r.s = calloc(r.ns, sizeof(*r.s));
	assert_non_null(r.s);
	for (size_t i = 0; i < r.ns; i++) {
		r.s[i].t = (double)i / 10;
		r.s[i].usage = 100ull << 20;
		r.s[i].saved = (i == 20 ? 1000ull : 10ull) << 20;
	}
	bench_result_figures(&o, &r);
	print_message("steady %.0f MiB, overcommit %.2fx, reclaimed %.0f MiB\n",
		      r.steady / 1048576, r.ratio, r.saved_gib * 1024);
	assert_true(fabs(r.ratio - 3 * 128.0 / 100) < 1e-9);
	assert_true(fabs(r.saved_gib * 1024 - 10) < 1e-9);
	assert_true(bench_cpu_per_gib(&r) < 0);   /* 10 MiB: no claim */
	free(r.s);
}

/* The summary's CPU per GiB is over what the host got back against none
 * in the same repetition, whatever the engines' counters say. */
static void summary(void **state)
{
	(void)state;
	static struct bench_scenario sc;
	load_text("[scenario]\nname = s\nbudget = 2G\nduration = 30\n"
		  "[group g]\nworkload = idle\n", &sc);
	char dir[] = "/tmp/densevm-scsum-XXXXXX", p[128];
	assert_non_null(mkdtemp(dir));
	struct bench_opts o = { .sc = &sc, .out = dir, .quick = true, .reps = 1 };
	struct bench_result r[3] = {
		{ .arm = ARM_NONE, .ran = true, .steady = 1000.0 * 1048576 },
		/* its counters say 1 GiB, the host got nothing: it holds more
		 * than none */
		{ .arm = ARM_KERNEL_MOM, .ran = true, .steady = 1010.0 * 1048576,
		  .saved_gib = 1, .reclaim_cpu = 0.2 },
		{ .arm = ARM_DENSE, .ran = true, .steady = 600.0 * 1048576,
		  .saved_gib = 0.5, .reclaim_cpu = 2 },
	};
	for (int i = 0; i < 3; i++)
		r[i].t_fail = r[i].throughput_pct = r[i].tput_worst_pct = -1;
	unsigned mask = 1u << ARM_NONE | 1u << ARM_KERNEL_MOM | 1u << ARM_DENSE;
	assert_int_equal(bench_report(&o, r, 3, mask), 0);
	assert_true(fabs(r[2].reclaimed_gib * 1024 - 400) < 1e-9);
	assert_true(r[1].reclaimed_gib == 0);
	snprintf(p, sizeof(p), "%s/summary.json", dir);
	json_t *j = json_load_file(p, 0, NULL), *met;
	assert_non_null(j);
	json_t *arms = json_object_get(j, "arms");
	json_t *km = json_object_get(json_object_get(arms, "kernel+mom"),
				     "reclaim_cpu_s_per_gib_saved");
	json_t *dn = json_object_get(json_object_get(arms, "dense"),
				     "reclaim_cpu_s_per_gib_saved");
	assert_true(json_is_null(km));
	assert_true(fabs(json_number_value(json_object_get(dn, "median")) -
			 2 / (400.0 / 1024)) < 1e-6);
	assert_non_null(strstr(goal_text(j, 3, &met), "n/a: dense+policy did "
			       "not run"));
	json_decref(j);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static void arms(void **state)
{
	(void)state;
	unsigned m;
	char err[300];
	assert_int_equal(bench_arms_parse("none,dense", &m, err, sizeof(err)), 0);
	assert_int_equal(m, (1u << ARM_NONE) | (1u << ARM_DENSE));
	assert_int_equal(bench_arms_parse("all", &m, err, sizeof(err)), 0);
	assert_int_equal(m, (1u << ARM_COUNT) - 1);
	assert_int_equal(bench_arms_parse("kernel+mom,dense+policy,kernel-ksm,policy",
					  &m, err, sizeof(err)), 0);
	assert_int_equal(m, (1u << ARM_KERNEL_MOM) | (1u << ARM_DENSE_POLICY) |
			    (1u << ARM_KERNEL_KSM) | (1u << ARM_POLICY));
	assert_int_not_equal(bench_arms_parse("none,qemu", &m, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "unknown arm 'qemu' (known: none kernel-ksm"));
	assert_int_not_equal(bench_arms_parse(",", &m, err, sizeof(err)), 0);
}

static void binary(void **state)
{
	(void)state;
	char *out;
	char *bad = tmpfile_with("[scenario]\nname = a\n[group g]\nworkload = idle\n"
				 "mem = 12Q\n");
	char want[300];
	snprintf(want, sizeof(want), "%s:5: [group g] mem: '12Q'", bad);
	static const struct { const char *a1, *a2, *a3, *msg; int rc; } cases[] = {
		{ "bench", "--arms", "none,qemu", "unknown arm 'qemu'", 2 },
		{ "bench", "nosuchscenario", NULL, "no scenario 'nosuchscenario'", 2 },
		{ "bench", "--reps", "0", "--reps '0'", 2 },
		{ "bench", "--bogus", NULL, "densevm bench --help", 2 },
		{ "bench", "default", "clones", "one SCENARIO at most", 2 },
		{ "bench", NULL, NULL, NULL, 2 },   /* the bad file: FILE:LINE */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *argv[] = { "densevm", (char *)cases[i].a1,
				 (char *)(cases[i].a2 ? cases[i].a2 : bad),
				 (char *)cases[i].a3, NULL };
		const char *msg = cases[i].msg ? cases[i].msg : want;
		int rc = run_densevm(argv, &out);
		if (rc != cases[i].rc || !strstr(out, msg))
			fail_msg("case %zu: rc %d (want %d), output: %s", i, rc,
				 cases[i].rc, out);
		free(out);
	}
	unlink(bad);
	free(bad);
	char *help[] = { "densevm", "bench", "--help", NULL };
	assert_int_equal(run_densevm(help, &out), 0);
	assert_non_null(strstr(out, "--arms LIST"));
	assert_non_null(strstr(out, "dense+policy"));
	free(out);
}

/* 10 Hz samples of one active group: rate ref from from_s on, and low
 * instead of it in [lo0, lo1). */
static void samples(struct bench_result *r, double end, double from_s,
		    double rate, double low, double lo0, double lo1)
{
	r->ns = (size_t)(end * 10);
	r->s = calloc(r->ns, sizeof(*r->s));
	assert_non_null(r->s);
	for (size_t i = 0; i < r->ns; i++) {
		double t = (double)i / 10;
		r->s[i].t = t;
		r->s[i].tput[0] = t < from_s ? 0 : t >= lo0 && t < lo1 ? low : rate;
	}
	r->ran = true;
	r->t_fail = -1;
}

/* The worst 2 s window against none's, and where it first falls under
 * 90 %: not in a window that holds a VM's start, not after none failed. */
static void worst_window(void **state)
{
	(void)state;
	static struct bench_scenario sc;
	char err[600];
	char *p = tmpfile_with(
		"[scenario]\nname = w\nbudget = 1G\nduration = 30\n"
		"[group busy]\nworkload = dirty mib=8 rate=100\nactive = 1\n"
		"start = 3\n");
	assert_int_equal(bench_scenario_load(p, &sc, err, sizeof(err)), 0);
	struct bench_result ref = { 0 }, r = { 0 };
	double tb;

	samples(&ref, 30, 3.5, 100e3, 0, 0, 0);
	/* same as none: no window under 90 % */
	samples(&r, 30, 3.5, 100e3, 0, 0, 0);
	assert_true(fabs(bench_tput_worst(&sc, false, &r, &ref, 0.9, &tb) - 1) < 1e-9);
	assert_true(tb < 0);
	free(r.s);
	/* a late first report only, in the start's window: not a failure */
	samples(&r, 30, 4.0, 100e3, 0, 0, 0);
	assert_true(bench_tput_worst(&sc, false, &r, &ref, 0.9, &tb) > 0.99);
	assert_true(tb < 0);
	free(r.s);
	/* a stall at 12-14 s, and another after none's failure at 20 s */
	samples(&r, 30, 3.5, 100e3, 40e3, 12, 14);
	for (size_t i = 0; i < r.ns; i++)
		if (r.s[i].t >= 22 && r.s[i].t < 24)
			r.s[i].tput[0] = 0;
	ref.t_fail = 20;
	assert_true(fabs(bench_tput_worst(&sc, false, &r, &ref, 0.9, &tb) - 0.4) < 1e-9);
	assert_true(fabs(tb - 12) < 1e-9);
	/* 95 % of it passes a 90 % floor */
	for (size_t i = 0; i < r.ns; i++)
		if (r.s[i].t >= 12 && r.s[i].t < 14)
			r.s[i].tput[0] = 95e3;
	assert_true(fabs(bench_tput_worst(&sc, false, &r, &ref, 0.9, &tb) - 0.95) < 1e-9);
	assert_true(tb < 0);
	free(r.s);
	free(ref.s);
	unlink(p);
	free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(shipped_scenarios),
		cmocka_unit_test(keys),
		cmocka_unit_test(errors),
		cmocka_unit_test(phases),
		cmocka_unit_test(ini_reader),
		cmocka_unit_test(arms),
		cmocka_unit_test(binary),
		cmocka_unit_test(worst_window),
		cmocka_unit_test(images),
		cmocka_unit_test(goals),
		cmocka_unit_test(figures),
		cmocka_unit_test(summary),
	};
	return cmocka_run_group_tests(tests, make_images, drop_images);
}
