/*
 * test_cli.c - the densevm command's input handling: sizes, --vm specs,
 * config files (errors name FILE:LINE), and the binary's exit statuses and
 * messages for bad command lines.  Needs no /dev/kvm, except the cases that
 * load a guest image, which are skipped by name without it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "testvm.h"
#include "cli/cli.h"
#include "cli/ext.h"

static void sizes(void **state)
{
	(void)state;
	uint64_t v;
	assert_int_equal(parse_size("4096", &v), 0); assert_int_equal(v, 4096);
	assert_int_equal(parse_size("64K", &v), 0); assert_int_equal(v, 65536);
	assert_int_equal(parse_size("512M", &v), 0); assert_int_equal(v, 512ull << 20);
	assert_int_equal(parse_size("2GiB", &v), 0); assert_int_equal(v, 2ull << 30);
	assert_int_equal(parse_size("1T", &v), 0); assert_int_equal(v, 1ull << 40);
	assert_true(parse_size("", &v) < 0);
	assert_true(parse_size("-5M", &v) < 0);
	assert_true(parse_size("12X", &v) < 0);
	assert_true(parse_size("M", &v) < 0);
	assert_true(parse_size("99999999999999999999", &v) < 0);
	assert_true(parse_size("17179869184T", &v) < 0);  /* overflows */
}

static void specs(void **state)
{
	(void)state;
	struct vm_spec s;
	char err[400];

	spec_init(&s, "--vm 1");
	assert_int_equal(spec_parse(&s, "name=a,mem=256M,cpus=2,workload=\"verify "
				    "mib=64, passes=2\"", err, sizeof(err)), 0);
	assert_string_equal(s.name, "a");
	assert_int_equal(s.mem, 256ull << 20);
	assert_int_equal(s.cpus, 2);
	assert_string_equal(s.workload, "verify mib=64, passes=2");
	assert_int_equal(spec_check(&s, err, sizeof(err)), 0);
	spec_free(&s);

	static const struct { const char *spec, *msg; } bad[] = {
		{ "mem=lots", "mem: 'lots' is not a size" },
		{ "cpus=0", "cpus: '0' must be 1 to 16" },
		{ "cpus=99", "cpus: '99'" },
		{ "colour=blue", "unknown key 'colour'" },
		{ "kind=windows", "kind: 'windows' must be micro or linux" },
		{ "name=a b", "name: 'a b'" },
		{ "justtext", "'justtext' is not key=value" },
		{ "workload=\"open", "workload: unterminated quote" },
		{ "count=0", "count: '0'" },
		{ "count=1025", "count: '1025' must be 1 to 1024" },
		{ "timeout=-1", "timeout: '-1'" },
		{ "console_rate=fast", "console_rate: 'fast' must be bytes per second" },
		{ "console_burst=100", "console_burst: '100' must be a size of at least 257" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		spec_init(&s, "--vm 1");
		err[0] = 0;
		assert_true(spec_parse(&s, bad[i].spec, err, sizeof(err)) < 0);
		if (!strstr(err, bad[i].msg))
			fail_msg("%s: expected '%s', got '%s'", bad[i].spec, bad[i].msg, err);
		spec_free(&s);
	}
	spec_init(&s, "--vm 1");
	assert_int_equal(spec_parse(&s, "count=1024", err, sizeof(err)), 0);
	assert_int_equal(s.count, 1024);
	spec_free(&s);
	spec_init(&s, "--vm 1");
	assert_int_equal(spec_parse(&s, "kind=linux", err, sizeof(err)), 0);
	assert_true(spec_check(&s, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "kernel: required"));
	spec_free(&s);
	spec_init(&s, "--vm 1");
	assert_true(spec_check(&s, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "workload: required"));
}

static char *tmpfile_with(const char *text)
{
	char *p = strdup("/tmp/densevm-conf-XXXXXX");
	int fd = mkstemp(p);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return p;
}

static void config_files(void **state)
{
	(void)state;
	static struct vm_spec sp[CLI_MAX_VMS];
	struct run_opts o = { .specs = sp };
	run_config_init(&o.cfg);
	char err[600], want[700];

	char *p = tmpfile_with("# two VMs\n[run]\ntimeout = 5\n\n[vm web]\n"
			       "mem = 256M\nworkload = idle seconds=1\nballoon = off\n"
			       "[vm db]\ncount = 3\nworkload = verify mib=8\n"
			       "[balloon]\nstats_period_ms = 250\n"
			       "free_page_reporting = on\nlog_lines_per_sec = 2\n");
	assert_int_equal(config_load(p, &o, err, sizeof(err)), 0);
	assert_int_equal(o.nspecs, 2);
	assert_string_equal(sp[0].name, "web");
	assert_string_equal(spec_ext(&sp[0], "balloon"), "off");
	assert_null(spec_ext(&sp[1], "balloon"));
	assert_int_equal(sp[0].mem, 256ull << 20);
	assert_int_equal(sp[1].count, 3);
	assert_true(o.timeout == 5.0);
	unlink(p); free(p);
	for (unsigned i = 0; i < o.nspecs; i++)
		spec_free(&sp[i]);

	static const struct { const char *text; int line; const char *msg; } bad[] = {
		{ "[vm a]\nworkload = idle\nmem = huge\n", 3, "mem: 'huge'" },
		{ "[vm a]\nwork = idle\n", 2, "unknown key 'work'" },
		{ "mem = 1G\n", 1, "outside any section" },
		{ "[ksmm]\nx = 1\n", 1, "unknown section [ksmm]" },
		{ "[vm a]\nworkload = idle\n[ksmm]\n\n[vm b]\n", 3,
		  "unknown section [ksmm]" },
		{ "[vm a]\nworkload = idle\n\n[vm b]\nworkload = idle\n"
		  "# again\n ; x\n\n  [vm a]\nmem = 1G\n", 9, "[vm a] repeats " },
		{ "[balloon]\n[run]\n[balloon]\n", 3, "[balloon] repeats " },
		{ "# a comment longer than inih's 200-byte line buffer ................"
		  "...................................................................."
		  "....................................................................\n"
		  "[run]\n[run]\n", 3, "[run] repeats " },
		{ "\xEF\xBB\xBF[vm a]\nworkload = idle\n[vm a]\n", 3, "[vm a] repeats " },
		{ "[vm a]\nthis is not ini\n", 2, "syntax error" },
		{ "[run]\nspeed = 3\n", 2, "[run] unknown key 'speed'" },
		{ "[balloon]\nstats_period_ms = soon\n", 2,
		  "[balloon] stats_period_ms: 'soon'" },
		{ "[balloon]\nfree_page_reporting = maybe\n", 2,
		  "free_page_reporting: 'maybe' must be on or off" },
		{ "[balloon]\nsize = 1G\n", 2, "[balloon] unknown key 'size'" },
		{ "[vm a]\nworkload = idle\nballoon = sometimes\n", 3,
		  "balloon: 'sometimes' must be on or off" },
		{ "[console]\nrate = -1\n", 2, "[console] rate: '-1' must be bytes" },
		{ "[console]\nburst = 1K\nburst = 256\n", 3,
		  "[console] burst: '256' must be a size of at least 257" },
		{ "[console]\nlines = 5\n", 2, "[console] unknown key 'lines'" },
		{ "[vm a]\nworkload = idle\nconsole_rate = lots\n", 3,
		  "[vm a] console_rate: 'lots'" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		for (unsigned k = 0; k < o.nspecs; k++)
			spec_free(&sp[k]);
		o.nspecs = 0;
		p = tmpfile_with(bad[i].text);
		err[0] = 0;
		assert_true(config_load(p, &o, err, sizeof(err)) < 0);
		snprintf(want, sizeof(want), "%s:%d: ", p, bad[i].line);
		if (strncmp(err, want, strlen(want)) || !strstr(err, bad[i].msg))
			fail_msg("case %zu: expected '%s...%s', got '%s'", i, want,
				 bad[i].msg, err);
		unlink(p); free(p);
	}
	/* the exact form, naming both lines */
	for (unsigned k = 0; k < o.nspecs; k++)
		spec_free(&sp[k]);
	o.nspecs = 0;
	p = tmpfile_with("[run]\n[vm a]\nworkload = idle\n[vm b]\nworkload = idle\n"
			 "\n\n\n[vm a]\nmem = 64M\n");
	assert_true(config_load(p, &o, err, sizeof(err)) < 0);
	snprintf(want, sizeof(want), "%s:9: [vm a] repeats %s:2", p, p);
	assert_string_equal(err, want);
	unlink(p); free(p);
	for (unsigned k = 0; k < o.nspecs; k++)
		spec_free(&sp[k]);
	o.nspecs = 0;
	assert_true(config_load("/nonexistent.conf", &o, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "/nonexistent.conf"));
}

extern const struct run_ext console_ext;
extern const struct run_ext balloon_ext;

/* Only a VM with a balloon is told it has one (the feature bit is the
 * spec's; it used to be set for every Linux guest). */
static void balloon_feature_from_spec(void **state)
{
	(void)state;
	static struct vm_spec sp[CLI_MAX_VMS];
	struct run_opts o = { .specs = sp };
	struct run_state rs = { .cfg = &o.cfg };
	run_config_init(&o.cfg);
	struct hv_vm_config c[2];
	char err[600];
	char *p = tmpfile_with("[vm on]\nworkload = idle\n"
			       "[vm off]\nworkload = idle\nballoon = off\n");
	assert_int_equal(config_load(p, &o, err, sizeof(err)), 0);
	for (unsigned i = 0; i < 2; i++) {
		memset(&c[i], 0, sizeof(c[i]));
		assert_int_equal(balloon_ext.prepare_vm(&rs, &sp[i], &c[i], err,
							sizeof(err)), 0);
	}
	assert_int_equal(c[0].features, HV_FEAT_BALLOON);
	assert_int_equal(c[1].features, 0);
	unlink(p); free(p);
	for (unsigned i = 0; i < o.nspecs; i++)
		spec_free(&sp[i]);
}

/* [console] sets every VM's budget; console_rate=/console_burst= override
 * it per VM; 0 is no limit. */
static void console_keys(void **state)
{
	(void)state;
	static struct vm_spec sp[CLI_MAX_VMS];
	struct run_opts o = { .specs = sp };
	struct run_state rs = { .cfg = &o.cfg };
	run_config_init(&o.cfg);
	struct hv_vm_config c[3];
	char err[600];

	char *p = tmpfile_with("[console]\nrate = 1K\nburst = 4K\n"
			       "[vm a]\nworkload = idle\nconsole_rate = 0\n"
			       "[vm b]\nworkload = idle\n"
			       "[vm c]\nworkload = idle\nconsole_rate = 2M\n"
			       "console_burst = 257\n");
	assert_int_equal(config_load(p, &o, err, sizeof(err)), 0);
	assert_int_equal(o.nspecs, 3);
	for (unsigned i = 0; i < 3; i++) {
		memset(&c[i], 0, sizeof(c[i]));
		assert_int_equal(console_ext.prepare_vm(&rs, &sp[i], &c[i], err,
							sizeof(err)), 0);
	}
	assert_true(c[0].console_rate == HV_CONSOLE_UNLIMITED);
	assert_int_equal(c[0].console_burst, 4096);
	assert_int_equal(c[1].console_rate, 1024);
	assert_int_equal(c[1].console_burst, 4096);
	assert_int_equal(c[2].console_rate, 2u << 20);
	assert_int_equal(c[2].console_burst, 257);
	unlink(p); free(p);
	for (unsigned i = 0; i < o.nspecs; i++)
		spec_free(&sp[i]);
	o.nspecs = 0;

	/* back to the defaults, which a VM without keys then gets */
	p = tmpfile_with("[console]\nrate = 64K\nburst = 256KiB\n"
			 "[vm d]\nworkload = idle\n");
	assert_int_equal(config_load(p, &o, err, sizeof(err)), 0);
	memset(&c[0], 0, sizeof(c[0]));
	assert_int_equal(console_ext.prepare_vm(&rs, &sp[0], &c[0], err, sizeof(err)), 0);
	assert_int_equal(c[0].console_rate, HV_CONSOLE_RATE_DEFAULT);
	assert_int_equal(c[0].console_burst, HV_CONSOLE_BURST_DEFAULT);
	unlink(p); free(p);
	spec_free(&sp[0]);
}

/* A parse fills its own run_config: a second one (a reload) leaves the
 * first, live one as it was, and a fresh one has every default. */
static void config_parses_are_independent(void **state)
{
	(void)state;
	static struct vm_spec sp1[CLI_MAX_VMS], sp2[CLI_MAX_VMS];
	struct run_opts a = { .specs = sp1 }, b = { .specs = sp2 };
	char err[600];
	run_config_init(&a.cfg);
	run_config_init(&b.cfg);
	assert_int_equal(b.cfg.console.rate, HV_CONSOLE_RATE_DEFAULT);
	assert_int_equal(b.cfg.balloon.stats_period_ms, 1000);
	assert_int_equal(b.cfg.ksm.engine, KSM_SEL_NONE);
	char *p = tmpfile_with("[console]\nrate = 1K\n[balloon]\n"
			       "stats_period_ms = 250\n[ksm]\nengine = kernel\n"
			       "[vm a]\nworkload = idle\n");
	char *q = tmpfile_with("[console]\nrate = 2K\n[ksm]\nengine = off\n"
			       "[vm a]\nworkload = idle\n");
	assert_int_equal(config_load(p, &a, err, sizeof(err)), 0);
	assert_int_equal(config_load(q, &b, err, sizeof(err)), 0);
	assert_int_equal(a.cfg.console.rate, 1024);
	assert_int_equal(a.cfg.balloon.stats_period_ms, 250);
	assert_int_equal(a.cfg.ksm.engine, KSM_SEL_KERNEL);
	assert_int_equal(b.cfg.console.rate, 2048);
	assert_int_equal(b.cfg.balloon.stats_period_ms, 1000);
	assert_int_equal(b.cfg.ksm.engine, KSM_SEL_OFF);
	unlink(p); free(p);
	unlink(q); free(q);
	spec_free(&sp1[0]);
	spec_free(&sp2[0]);
}

/* A reload finds each running VM's spec in the new files by its name. */
static void spec_of_vm_name(void **state)
{
	(void)state;
	static struct vm_spec sp[CLI_MAX_VMS];
	struct run_opts o = { .specs = sp };
	char err[600], name[72];
	run_config_init(&o.cfg);
	char *p = tmpfile_with("[vm web]\ncount = 3\nworkload = idle\n"
			       "[vm db]\nworkload = idle\n");
	assert_int_equal(config_load(p, &o, err, sizeof(err)), 0);
	spec_vm_name(&sp[0], 2, 2, name, sizeof(name));
	assert_string_equal(name, "web2");
	spec_vm_name(&sp[1], 0, 3, name, sizeof(name));
	assert_string_equal(name, "db");
	assert_ptr_equal(run_opts_spec_of(&o, "web0"), &sp[0]);
	assert_ptr_equal(run_opts_spec_of(&o, "web2"), &sp[0]);
	assert_ptr_equal(run_opts_spec_of(&o, "db"), &sp[1]);
	assert_null(run_opts_spec_of(&o, "web3"));
	assert_null(run_opts_spec_of(&o, "web"));
	unlink(p); free(p);
	for (unsigned i = 0; i < o.nspecs; i++)
		spec_free(&sp[i]);
}

static void binary_bad_input(void **state)
{
	(void)state;
	char *out;
	static const struct { const char *a1, *a2, *a3, *msg; int rc; } cases[] = {
		{ "run", NULL, NULL, "no VMs", 2 },
		{ "run", "--vm", "mem=12Q,workload=idle", "--vm 1: mem: '12Q'", 2 },
		{ "run", "--bogus", NULL, "densevm run --help", 2 },
		{ "frobnicate", NULL, NULL, "unknown command 'frobnicate'", 2 },
		{ "run", "--config", "/nonexistent.conf", "/nonexistent.conf", 2 },
		{ "run", "--timeout", "soon", "--timeout: 'soon'", 2 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *argv[] = { "densevm", (char *)cases[i].a1, (char *)cases[i].a2,
				 (char *)cases[i].a3, NULL };
		int rc = run_densevm(argv, &out);
		if (rc != cases[i].rc || !strstr(out, cases[i].msg))
			fail_msg("case %zu: rc %d (want %d), output: %s", i, rc,
				 cases[i].rc, out);
		free(out);
	}
	char *help[] = { "densevm", "run", "--help", NULL };
	assert_int_equal(run_densevm(help, &out), 0);
	assert_non_null(strstr(out, "SPEC keys"));
	free(out);
}

static void binary_bad_images(void **state)
{
	(void)state;
	SKIP_WITHOUT_KVM();
	char *out;
	char *argv[] = { "densevm", "run", "--vm",
			 "name=x,workload=idle,image=/nonexistent.elf", NULL };
	assert_int_equal(run_densevm(argv, &out), 1);
	assert_non_null(strstr(out, "/nonexistent.elf"));
	free(out);
	char *argv2[] = { "densevm", "run", "--vm",
			  "name=x,workload=idle,image=/etc/passwd", NULL };
	assert_int_equal(run_densevm(argv2, &out), 1);
	assert_non_null(strstr(out, "/etc/passwd: not an ELF file"));
	free(out);
	/* the second VM is bad: the first must not have been left running */
	char *argv3[] = { "densevm", "run", "--vm", "name=ok,workload=idle",
			  "--vm", "name=bad,mem=1M,workload=idle", NULL };
	assert_int_equal(run_densevm(argv3, &out), 1);
	assert_non_null(strstr(out, "--vm 2"));
	assert_null(strstr(out, "[ok]"));
	free(out);
	/* a good run through the binary, with its JSON report */
	char json[] = "/tmp/densevm-json-XXXXXX";
	int fd = mkstemp(json);
	close(fd);
	char *argv4[] = { "densevm", "run", "--vm",
			  "name=g,mem=64M,workload=\"verify mib=8 passes=2\"",
			  "--json", json, NULL };
	int rc = run_densevm(argv4, &out);
	if (rc)
		fail_msg("rc %d: %s", rc, out);
	assert_non_null(strstr(out, "[g] verify: done"));
	free(out);
	FILE *f = fopen(json, "r");
	char buf[4096] = "";
	fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	unlink(json);
	assert_non_null(strstr(buf, "\"status\": \"exited\""));
	assert_non_null(strstr(buf, "\"name\": \"g\""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(sizes),
		cmocka_unit_test(specs),
		cmocka_unit_test(config_files),
		cmocka_unit_test(console_keys),
		cmocka_unit_test(balloon_feature_from_spec),
		cmocka_unit_test(config_parses_are_independent),
		cmocka_unit_test(spec_of_vm_name),
		cmocka_unit_test(binary_bad_input),
		cmocka_unit_test(binary_bad_images),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
