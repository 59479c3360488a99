/*
 * test_policy_replay.c - the decision log and its replay: a tick survives
 * JSON bit for bit; 200 ticks of a simulated run (budget steps, a growing
 * guest, guest pressure, ksm counters) replayed with the config that
 * recorded them give 0 differences, also the replay's own output and a
 * MOM run; other shares give differences and another summary; a broken
 * log is refused with LOG:LINE and the field; and `densevm policy
 * replay` itself (the built binary): table, --json, --out, --config and
 * its FILE:LINE errors.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "policy_sim.h"
#include "testvm.h"

/* 200 ticks of a run with some of everything, one JSON line each. */
static void record(struct sim *s, FILE *f, unsigned ticks)
{
	for (unsigned t = 0; t < ticks; t++) {
		if (t == 40)
			s->in.budget = 9 * GiB;
		if (t == 120)
			s->in.budget = 12 * GiB;
		if (t >= 60 && t < 100) {
			s->used[2] += 16 * MiB;           /* a growing guest */
			s->overhead += 12 * MiB;          /* and host usage */
		}
		s->vm[1].g_pressure = t >= 80 && t < 83;
		s->in.psi_some10 = 0.37 * (t % 7);
		s->in.psi_full10 = t % 5 ? 0.1 * (t % 5) : -1;
		sim_measure(s);
		policy_tick(&s->cfg, &s->st, &s->in, &s->out);
		char *line = policy_tick_dumps(&s->in, &s->out);
		assert_non_null(line);
		fprintf(f, "%s\n", line);
		free(line);
		for (unsigned i = 0; i < s->in.nvms; i++)
			s->vm[i].balloon_target = s->out.vms[i].target;
		s->in.ksm_scan_rate = s->out.scan_rate;
		s->tick++;
	}
	fflush(f);
}

static void setup_run(struct sim *s)
{
	sim_init(s, 4, 4 * GiB, 18 * GiB);
	const uint64_t shares[4] = { 1000, 2000, 1000, 500 };
	for (unsigned i = 0; i < 4; i++) {
		s->vm[i].cfg.shares = shares[i];
		s->activity[i] = 0.1 * (i + 1);
		s->used[i] = (300 + 100 * i) * MiB;
	}
	s->vm[3].cfg.max = 3 * GiB;
	s->vm[0].cfg.min = 1 * GiB;
	s->saved_per_tick = 1e8 / 3;          /* not round: doubles matter */
	s->cpu_per_tick = 0.1;
}

static FILE *tmp(char *path)
{
	strcpy(path, "/tmp/test_policy_replay.XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	FILE *f = fdopen(fd, "w+");
	assert_non_null(f);
	return f;
}

static void test_tick_round_trip(void **state_)
{
	struct sim *s = calloc(1, sizeof(*s));
	struct policy_in in;
	struct policy_out *rec = malloc(sizeof(*rec));
	char err[256];

	(void)state_;
	setup_run(s);
	s->in.psi_some10 = 0.1;
	s->in.ksm_cpu_s = 1.0 / 3;
	s->vm[2].g_pressure = true;
	s->vm[1].g_floor = 77777;
	sim_measure(s);
	s->in.ksm_cpu_s = 1.0 / 3;
	s->in.ksm_merges = 123456789012ull;
	policy_tick(&s->cfg, &s->st, &s->in, &s->out);
	char *line = policy_tick_dumps(&s->in, &s->out);
	json_error_t je;
	json_t *j = json_loads(line, 0, &je);
	assert_non_null(j);
	assert_int_equal(policy_tick_from_json(j, &in, rec, err, sizeof(err)), 0);
	assert_int_equal(in.nvms, 4);
	assert_memory_equal(in.vms, s->vm, 4 * sizeof(*in.vms));
	assert_true(in.psi_some10 == 0.1 && in.ksm_cpu_s == 1.0 / 3);
	assert_true(in.psi_full10 == -1);
	assert_int_equal(in.ksm_merges, 123456789012ull);
	assert_int_equal(in.now_ns, s->in.now_ns);
	assert_int_equal(in.usage, s->in.usage);
	assert_int_equal(rec->state, s->out.state);
	assert_true(rec->free == s->out.free);
	assert_int_equal(rec->want, s->out.want);
	for (unsigned i = 0; i < 4; i++) {
		assert_int_equal(rec->vms[i].target, s->out.vms[i].target);
		assert_int_equal(rec->vms[i].reason, s->out.vms[i].reason);
	}
	printf("[ log ] one tick of 4 VMs: %zu bytes\n", strlen(line));
	policy_in_free(&in);
	json_decref(j);
	free(line);
	free(rec);
	free(s);
}

static void test_replay_determinism(void **state_)
{
	struct sim *s = calloc(1, sizeof(*s));
	struct policy_replay_summary *sum = malloc(sizeof(*sum));
	struct policy_replay_summary *sum2 = malloc(sizeof(*sum2));
	char path[64], path2[64], err[512];
	FILE *f, *out;

	(void)state_;
	setup_run(s);
	f = tmp(path);
	record(s, f, 200);

	/* same config: every decision again */
	rewind(f);
	out = tmp(path2);
	assert_int_equal(policy_replay(f, "LOG", &s->cfg, sum, out, err,
				       sizeof(err)), 0);
	printf("[ replay ] same config: %llu ticks, %llu differences, %llu MiB "
	       "reclaimed, %.0f s; HIGH %llu SOFT %llu HARD %llu LOW %llu ticks\n",
	       (unsigned long long)sum->ticks, (unsigned long long)sum->differ,
	       (unsigned long long)(sum->reclaimed / MiB), sum->duration_s,
	       (unsigned long long)sum->state_ticks[POLICY_HIGH],
	       (unsigned long long)sum->state_ticks[POLICY_SOFT],
	       (unsigned long long)sum->state_ticks[POLICY_HARD],
	       (unsigned long long)sum->state_ticks[POLICY_LOW]);
	assert_int_equal(sum->ticks, 200);
	assert_int_equal(sum->differ, 0);
	assert_int_equal(sum->differ_ticks, 0);
	assert_true(sum->reclaimed > 4 * GiB);
	assert_true(sum->duration_s == 199.0);
	assert_int_equal(sum->nvms, 4);
	assert_true(sum->state_ticks[POLICY_HIGH] > 0);
	assert_true(sum->state_ticks[POLICY_SOFT] > 0);
	assert_true(sum->state_ticks[POLICY_LOW] > 0);
	for (unsigned k = 0; k < 4; k++) {
		const struct policy_replay_vm *v = &sum->vms[k];
		printf("[ replay ]   %s: reclaimed %llu MiB, deflated %llu MiB, "
		       "%llu reversals (%.2f/min), shortfall avg %.0f MiB max %llu "
		       "MiB\n", v->name, (unsigned long long)(v->reclaimed / MiB),
		       (unsigned long long)(v->deflated / MiB),
		       (unsigned long long)v->reversals, v->churn_per_min,
		       v->shortfall_avg / MiB,
		       (unsigned long long)(v->shortfall_max / MiB));
		assert_int_equal(v->ticks, 200);
	}
	/* the pressure on vm1 at 80..82 then the step up at 120: reversals */
	assert_true(sum->vms[1].reversals >= 1);

	/* the replay's output is a log too, and replays the same */
	rewind(out);
	assert_int_equal(policy_replay(out, "OUT", &s->cfg, sum2, NULL, err,
				       sizeof(err)), 0);
	assert_int_equal(sum2->ticks, 200);
	assert_int_equal(sum2->differ, 0);
	assert_int_equal(sum2->reclaimed, sum->reclaimed);

	/* other shares: other decisions, another summary */
	struct policy_vm_override ov = { .name = "vm3", .set = POLICY_VM_SET_SHARES,
					 .cfg = { .shares = 8000 } };
	struct policy_replay_opts opts = { .vms = &ov, .nvms = 1 };
	rewind(f);
	assert_int_equal(policy_replay_ex(f, "LOG", &s->cfg, &opts, sum2, NULL,
					  err, sizeof(err)), 0);
	printf("[ replay ] vm3 shares 500 -> 8000: %llu differences in %llu "
	       "ticks; vm3 reclaimed %llu -> %llu MiB, vm1 shortfall avg %.0f -> "
	       "%.0f MiB\n", (unsigned long long)sum2->differ,
	       (unsigned long long)sum2->differ_ticks,
	       (unsigned long long)(sum->vms[3].reclaimed / MiB),
	       (unsigned long long)(sum2->vms[3].reclaimed / MiB),
	       sum->vms[1].shortfall_avg / MiB, sum2->vms[1].shortfall_avg / MiB);
	assert_true(sum2->differ > 0);
	assert_true(sum2->vms[3].differ > 0);
	assert_true(sum2->vms[3].reclaimed < sum->vms[3].reclaimed);
	assert_true(sum2->vms[3].shortfall_avg != sum->vms[3].shortfall_avg);

	/* another config: other decisions too */
	struct policy_config c2 = s->cfg;
	c2.idle_tax = 0;
	rewind(f);
	assert_int_equal(policy_replay(f, "LOG", &c2, sum2, NULL, err,
				       sizeof(err)), 0);
	assert_true(sum2->differ > 0);

	json_t *js = policy_replay_summary_json(sum);
	assert_non_null(js);
	assert_int_equal(json_integer_value(json_object_get(js, "ticks")), 200);
	assert_int_equal(json_array_size(json_object_get(js, "vms")), 4);
	json_decref(js);

	fclose(f);
	fclose(out);
	unlink(path);
	unlink(path2);
	free(sum);
	free(sum2);
	free(s);
}

static void test_replay_mom(void **state_)
{
	struct sim *s = calloc(1, sizeof(*s));
	struct policy_replay_summary *sum = malloc(sizeof(*sum));
	char path[64], err[512];
	FILE *f;

	(void)state_;
	setup_run(s);
	assert_int_equal(policy_config_set(&s->cfg, "strategy", "mom", err, 512), 0);
	f = tmp(path);
	record(s, f, 200);          /* ticks 1 s apart: MOM runs every 10th */
	rewind(f);
	assert_int_equal(policy_replay(f, "LOG", &s->cfg, sum, NULL, err,
				       sizeof(err)), 0);
	assert_int_equal(sum->ticks, 200);
	assert_int_equal(sum->differ, 0);
	assert_true(sum->reclaimed > 0);
	printf("[ replay ] mom: %llu ticks, %llu differences, %llu MiB "
	       "reclaimed\n", (unsigned long long)sum->ticks,
	       (unsigned long long)sum->differ,
	       (unsigned long long)(sum->reclaimed / MiB));
	/* the same log under shares: different decisions */
	struct policy_config c2;
	policy_config_default(&c2);
	rewind(f);
	assert_int_equal(policy_replay(f, "LOG", &c2, sum, NULL, err,
				       sizeof(err)), 0);
	assert_true(sum->differ > 0);
	fclose(f);
	unlink(path);
	free(sum);
	free(s);
}

/* One broken line among good ones: the error names LOG:LINE and the field. */
static void expect_log_error(const char *good, const char *bad,
			     const char *msg)
{
	struct policy_config c;
	struct policy_replay_summary *sum = malloc(sizeof(*sum));
	char path[64], err[512] = "";
	FILE *f = tmp(path);

	policy_config_default(&c);
	fprintf(f, "%s\n\n%s\n%s\n", good, bad, good);
	rewind(f);
	assert_int_equal(policy_replay(f, "LOG", &c, sum, NULL, err,
				       sizeof(err)), -EINVAL);
	assert_string_equal(err, msg);
	fclose(f);
	unlink(path);
	free(sum);
}

static char *replace(const char *s, const char *from, const char *to)
{
	const char *p = strstr(s, from);
	assert_non_null(p);
	char *r = malloc(strlen(s) + strlen(to) + 1);
	sprintf(r, "%.*s%s%s", (int)(p - s), s, to, p + strlen(from));
	return r;
}

static void test_log_errors(void **state_)
{
	struct sim *s = calloc(1, sizeof(*s));
	char *good, *bad;

	(void)state_;
	setup_run(s);
	s->vm[1].ram = 4 * GiB + 2 * MiB;    /* a unique figure to edit */
	sim_measure(s);
	policy_tick(&s->cfg, &s->st, &s->in, &s->out);
	good = policy_tick_dumps(&s->in, &s->out);

	bad = replace(good, "\"ram\":4297064448,", "");
	expect_log_error(good, bad, "LOG:3: vms[1].ram: missing");
	free(bad);
	bad = replace(good, "\"ram\":4297064448", "\"ram\":-5");
	expect_log_error(good, bad, "LOG:3: vms[1].ram: must be an integer >= 0");
	free(bad);
	bad = replace(good, "\"ram\":4297064448", "\"ram\":\"4G\"");
	expect_log_error(good, bad, "LOG:3: vms[1].ram: must be an integer >= 0");
	free(bad);
	bad = replace(good, "\"g_pressure\":false", "\"g_pressure\":0");
	expect_log_error(good, bad, "LOG:3: vms[0].g_pressure: must be true or "
			 "false");
	free(bad);
	bad = replace(good, "\"cpu_s\":", "\"cpu\":");
	expect_log_error(good, bad, "LOG:3: ksm.cpu_s: missing");
	free(bad);
	bad = replace(good, "\"state\":\"", "\"state\":\"X");
	expect_log_error(good, bad, "LOG:3: out.state: must be HIGH, SOFT, HARD "
			 "or LOW");
	free(bad);
	bad = replace(good, "\"reason\":\"", "\"reason\":\"zz");
	char *p = strstr(bad, "\"reason\":\"zz") + 12;
	char msg[200], word[40];
	sscanf(p, "%39[^\"]", word);
	snprintf(msg, sizeof(msg), "LOG:3: out.vms[0].reason: unknown 'zz%s'",
		 word);
	expect_log_error(good, bad, msg);
	free(bad);
	bad = replace(good, ",\"out\":", ",\"output\":");
	expect_log_error(good, bad, "LOG:3: out: missing");
	free(bad);
	bad = replace(good, "{\"target\":", "{\"target\":1},{\"target\":");
	expect_log_error(good, bad, "LOG:3: out.vms: 5 entries for 4 VMs");
	free(bad);
	bad = replace(good, "\"name\":\"vm2\"", "\"name\":7");
	expect_log_error(good, bad, "LOG:3: vms[2].name: must be a string");
	free(bad);
	expect_log_error(good, "[1, 2]", "LOG:3: not a JSON object");
	expect_log_error(good, "{\"now_ns\": 1,", "LOG:3: not JSON: string or '}' "
			 "expected near end of file (column 13)");
	free(good);
	free(s);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_cmd_policy_replay(void **state_)
{
	struct sim *s = calloc(1, sizeof(*s));
	char log[64], conf[64], outp[64], *out;
	FILE *f;

	(void)state_;
	setup_run(s);
	f = tmp(log);
	record(s, f, 200);
	fclose(f);
	strcpy(conf, "/tmp/test_policy_conf.XXXXXX");
	close(mkstemp(conf));
	strcpy(outp, "/tmp/test_policy_out.XXXXXX");
	close(mkstemp(outp));

	char *a1[] = { "densevm", "policy", "replay", log, "--out", outp, NULL };
	assert_int_equal(run_densevm(a1, &out), 0);
	assert_non_null(strstr(out, ": 200 ticks over 199.0 s; 0 decisions differ"));
	assert_non_null(strstr(out, "\nvm3 "));
	free(out);
	/* --out is a log that replays the same */
	char *a2[] = { "densevm", "policy", "replay", outp, "--json", NULL };
	assert_int_equal(run_densevm(a2, &out), 0);
	json_error_t je;
	json_t *j = json_loads(out, 0, &je);
	assert_non_null(j);
	assert_int_equal(json_integer_value(json_object_get(j, "ticks")), 200);
	assert_int_equal(json_integer_value(json_object_get(j, "differ")), 0);
	json_decref(j);
	free(out);

	/* a run's config: [policy] and [vm NAME] shares/min/max count, the
	 * rest is ignored */
	write_file(conf, "[run]\ntimeout = 5\n[policy]\nmax_step = 10%\n"
		   "[vm vm3]\nmem = 4G\nshares = 8000\n[ksm]\nmode = dense\n");
	char *a3[] = { "densevm", "policy", "replay", log, "--config", conf,
		       "--json", NULL };
	assert_int_equal(run_densevm(a3, &out), 0);
	j = json_loads(out, 0, &je);
	assert_non_null(j);
	assert_true(json_integer_value(json_object_get(j, "differ")) > 0);
	json_decref(j);
	free(out);

	const struct { const char *text, *msg; } bad[] = {
		{ "[policy]\n; comment\nhost_budget = lots\n",
		  ":3: [policy] host_budget: 'lots' must be auto or a size like 12G" },
		{ "[policy]\nsoft = 5%\nhard = 1%\n\nhigh = 5%\n",
		  ":5: [policy] high: 5% must be above soft 5% (thresholds must be "
		  "strictly decreasing: high > soft > hard > low)" },
		{ "[policy]\nhigh = 3%\n",
		  ":2: [policy] high: 3% must be above soft 4% (its default)" },
		{ "[vm a]\nmem = 1G\n\nmax = 1X\n",
		  ":4: [vm a] max: '1X' must be a size like 1G (0 = unlimited)" },
		{ "[policy]\nmode = on\nfrobnicate = 1\n",
		  ":3: [policy] unknown key 'frobnicate' (known: mode" },
		{ "[policy\n", ":1: syntax error" },
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char want[256];
		write_file(conf, bad[i].text);
		char *a[] = { "densevm", "policy", "replay", log, "--config", conf,
			      NULL };
		assert_int_equal(run_densevm(a, &out), 1);
		snprintf(want, sizeof(want), "densevm policy: %s%s", conf,
			 bad[i].msg);
		if (!strstr(out, want))
			fail_msg("got '%s', want '%s'", out, want);
		free(out);
	}
	/* a broken log names its line */
	write_file(outp, "{}\n");
	char *a4[] = { "densevm", "policy", "replay", outp, NULL };
	assert_int_equal(run_densevm(a4, &out), 1);
	char want[128];
	snprintf(want, sizeof(want), "densevm policy: %s:1: now_ns: missing", outp);
	assert_non_null(strstr(out, want));
	free(out);
	/* the command line */
	char *a5[] = { "densevm", "policy", "replay", NULL };
	assert_int_equal(run_densevm(a5, &out), 2);
	assert_non_null(strstr(out, "LOG is missing"));
	free(out);
	char *a6[] = { "densevm", "policy", "--help", NULL };
	assert_int_equal(run_densevm(a6, &out), 0);
	assert_non_null(strstr(out, "usage: densevm policy replay LOG"));
	free(out);
	char *a7[] = { "densevm", "policy", "replay", log, "--bogus", NULL };
	assert_int_equal(run_densevm(a7, &out), 2);
	free(out);
	unlink(log);
	unlink(conf);
	unlink(outp);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tick_round_trip),
		cmocka_unit_test(test_replay_determinism),
		cmocka_unit_test(test_replay_mom),
		cmocka_unit_test(test_log_errors),
		cmocka_unit_test(test_cmd_policy_replay),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
