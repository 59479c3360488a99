/*
 * cmd_policy.c - `densevm policy`: offline tools for the overcommit
 * policy's decision log (policy/policy.h).
 *
 *   densevm policy replay LOG [--config FILE] [--out FILE] [--json]
 *
 * replays LOG with a config (the defaults, or FILE's [policy] section and
 * its [vm NAME] sections' shares/min/max, which override what the log
 * recorded for that VM), prints a summary table (or JSON) and optionally
 * writes the replay's own decisions as a log.  Everything else in FILE is
 * another command's and is not read here, so a `densevm run` config
 * replays as it is.  Errors name FILE:LINE or LOG:LINE.
 */
#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cli.h"
#include "policy/policy.h"

static const char policy_usage[] =
"usage: densevm policy replay LOG [--config FILE] [--out FILE] [--json]\n"
"\n"
"Re-runs the policy over every tick of a decision log (the [policy] log,\n"
"one JSON object per line) from a fresh state, and compares each decision\n"
"with the recorded one.  With the config that wrote the log every decision\n"
"comes out the same; with another one, the summary shows what it would\n"
"have done: memory reclaimed, each VM's shortfall against its share of\n"
"memory, and balloon churn (target reversals per minute).\n"
"\n"
"  --config FILE  an INI file: its [policy] keys and the shares, min and\n"
"                 max of its [vm NAME] sections (they override the log's\n"
"                 for VM NAME); everything else in it is ignored.\n"
"                 Default: the built-in defaults.\n"
"  --out FILE     write the replay's decisions as a log (- = stdout)\n"
"  --json         the summary as JSON\n"
"  -h, --help     this text\n"
"\n"
"Exit status: 0 done, 1 a bad config or log, 2 a bad command line.\n";

struct pcfg {
	const char *path;
	FILE *f;
	int line;
	bool midline;
	struct policy_config *cfg;
	struct policy_vm_override *vms;
	unsigned nvms;
	int check_line;       /* last line of a key policy_config_check sees */
	char msg[512];
	int err_line;
};

/* fgets for inih that counts lines, so errors can name them */
static char *pcfg_reader(char *buf, int size, void *user)
{
	struct pcfg *p = user;

	if (p->err_line || !fgets(buf, size, p->f))
		return NULL;
	p->midline = !strchr(buf, '\n');
	if (!p->midline)
		p->line++;
	return buf;
}

static int pcfg_handler(void *user, const char *section, const char *key,
			const char *val)
{
	struct pcfg *p = user;
	char err[400];
	int line = p->line + (p->midline ? 1 : 0);

	if (p->err_line)
		return 0;
	if (!strcmp(section, "policy")) {
		if (policy_config_set(p->cfg, key, val, err, sizeof(err))) {
			snprintf(p->msg, sizeof(p->msg), "[policy] %s", err);
			goto fail;
		}
		if (!strcmp(key, "high") || !strcmp(key, "soft") ||
		    !strcmp(key, "hard") || !strcmp(key, "low") ||
		    !strcmp(key, "scan_min") || !strcmp(key, "scan_max"))
			p->check_line = line;
		return 1;
	}
	if (strncmp(section, "vm ", 3) || !policy_vm_key_bit(key))
		return 1;     /* not the policy's */
	const char *name = section + 3;
	struct policy_vm_override *o = NULL;
	for (unsigned i = 0; i < p->nvms; i++)
		if (!strcmp(p->vms[i].name, name))
			o = &p->vms[i];
	if (!o) {
		if (strlen(name) >= sizeof(o->name)) {
			snprintf(p->msg, sizeof(p->msg), "[%s]: VM name longer than "
				 "63 bytes", section);
			goto fail;
		}
		if (p->nvms == POLICY_MAX_VMS) {
			snprintf(p->msg, sizeof(p->msg), "more than %d VMs",
				 POLICY_MAX_VMS);
			goto fail;
		}
		o = &p->vms[p->nvms++];
		memset(o, 0, sizeof(*o));
		snprintf(o->name, sizeof(o->name), "%s", name);
		policy_vm_config_default(&o->cfg);
	}
	if (policy_vm_key(&o->cfg, key, val, err, sizeof(err))) {
		snprintf(p->msg, sizeof(p->msg), "[%s] %s", section, err);
		goto fail;
	}
	o->set |= policy_vm_key_bit(key);
	return 1;
fail:
	p->err_line = line;
	return 0;
}

static int load_config(struct pcfg *p)
{
	p->f = fopen(p->path, "re");
	if (!p->f) {
		fprintf(stderr, "densevm policy: %s: %s\n", p->path, strerror(errno));
		return 1;
	}
	int rc = ini_parse_stream(pcfg_reader, p, pcfg_handler, p);
	fclose(p->f);
	if (p->err_line) {
		fprintf(stderr, "densevm policy: %s:%d: %s\n", p->path, p->err_line,
			p->msg);
		return 1;
	}
	if (rc < 0) {
		fprintf(stderr, "densevm policy: %s: out of memory\n", p->path);
		return 1;
	}
	if (rc) {
		fprintf(stderr, "densevm policy: %s:%d: syntax error (expected "
			"[section] or key = value)\n", p->path, rc);
		return 1;
	}
	char err[400];
	if (policy_config_check(p->cfg, err, sizeof(err))) {
		fprintf(stderr, "densevm policy: %s:%d: [policy] %s\n", p->path,
			p->check_line, err);
		return 1;
	}
	return 0;
}

struct progress {
	long size;
	bool tty;
	bool shown;
};

static void on_progress(void *ctx, uint64_t ticks, long pos)
{
	struct progress *pr = ctx;

	fprintf(stderr, "%sdensevm policy: %llu ticks replayed", pr->tty ? "\r" : "",
		(unsigned long long)ticks);
	if (pr->size > 0 && pos >= 0)
		fprintf(stderr, " (%.0f%% of the log)", 100.0 * (double)pos /
			(double)pr->size);
	fputs(pr->tty ? "" : "\n", stderr);
	pr->shown = true;
}

static double mib(uint64_t b) { return (double)b / (1 << 20); }

static void print_table(const char *log, const struct policy_replay_summary *s)
{
	printf("%s: %llu ticks over %.1f s; %llu decisions differ from the "
	       "recorded ones, in %llu ticks\n", log, (unsigned long long)s->ticks,
	       s->duration_s, (unsigned long long)s->differ,
	       (unsigned long long)s->differ_ticks);
	printf("reclaimed %.1f MiB in all; host state HIGH %llu, SOFT %llu, HARD "
	       "%llu, LOW %llu ticks\n\n", mib(s->reclaimed),
	       (unsigned long long)s->state_ticks[POLICY_HIGH],
	       (unsigned long long)s->state_ticks[POLICY_SOFT],
	       (unsigned long long)s->state_ticks[POLICY_HARD],
	       (unsigned long long)s->state_ticks[POLICY_LOW]);
	printf("%-20s %7s %13s %13s %9s %9s %14s %14s %7s\n", "VM", "ticks",
	       "reclaimed", "deflated", "reversals", "churn/min", "shortfall avg",
	       "shortfall max", "differ");
	for (unsigned k = 0; k < s->nvms; k++) {
		const struct policy_replay_vm *v = &s->vms[k];
		printf("%-20s %7llu %9.1f MiB %9.1f MiB %9llu %9.2f %10.1f MiB "
		       "%10.1f MiB %7llu\n", v->name, (unsigned long long)v->ticks,
		       mib(v->reclaimed), mib(v->deflated),
		       (unsigned long long)v->reversals, v->churn_per_min,
		       v->shortfall_avg / (1 << 20), mib(v->shortfall_max),
		       (unsigned long long)v->differ);
	}
}

static int replay(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "out", required_argument, NULL, 'o' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct policy_vm_override vms[POLICY_MAX_VMS];
	struct policy_config cfg;
	struct pcfg p = { .cfg = &cfg, .vms = vms };
	const char *out_path = NULL;
	bool json = false;
	int c, rc = 1;
	FILE *log = NULL, *out = NULL;
	struct policy_replay_summary *sum = NULL;

	policy_config_default(&cfg);
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'c': p.path = optarg; break;
		case 'o': out_path = optarg; break;
		case 'j': json = true; break;
		case 'h': fputs(policy_usage, stdout); return 0;
		default:
			fprintf(stderr, "densevm policy replay: see 'densevm policy "
				"--help'\n");
			return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "densevm policy replay: %s (see 'densevm policy "
			"--help')\n", optind >= argc ? "LOG is missing" :
			"one LOG only");
		return 2;
	}
	if (json && out_path && !strcmp(out_path, "-")) {
		fprintf(stderr, "densevm policy replay: --json and --out - would both "
			"write stdout\n");
		return 2;
	}
	const char *log_path = argv[optind];
	if (p.path && load_config(&p))
		return 1;
	log = fopen(log_path, "re");
	if (!log) {
		fprintf(stderr, "densevm policy: %s: %s\n", log_path, strerror(errno));
		return 1;
	}
	if (out_path) {
		out = strcmp(out_path, "-") ? fopen(out_path, "we") : stdout;
		if (!out) {
			fprintf(stderr, "densevm policy: --out %s: %s\n", out_path,
				strerror(errno));
			goto done;
		}
	}
	struct stat sb;
	struct progress pr = {
		.size = fstat(fileno(log), &sb) ? -1 : (long)sb.st_size,
		.tty = isatty(2),
	};
	struct policy_replay_opts opts = {
		.vms = vms, .nvms = p.nvms, .progress = on_progress, .ctx = &pr,
		.every = 10000,
	};
	char err[600];
	sum = malloc(sizeof(*sum));
	if (!sum) {
		fprintf(stderr, "densevm policy: out of memory\n");
		goto done;
	}
	int r = policy_replay_ex(log, log_path, &cfg, &opts, sum, out, err,
				 sizeof(err));
	if (pr.shown && pr.tty)
		fputc('\n', stderr);
	if (r) {
		fprintf(stderr, "densevm policy: %s\n", err);
		goto done;
	}
	if (out && out != stdout && fclose(out)) {
		out = NULL;
		fprintf(stderr, "densevm policy: --out %s: %s\n", out_path,
			strerror(errno));
		goto done;
	}
	if (out != stdout)
		out = NULL;
	if (json) {
		json_t *j = policy_replay_summary_json(sum);
		json_object_set_new(j, "log", json_string(log_path));
		json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER |
			   JSON_REAL_PRECISION(17));
		putchar('\n');
		json_decref(j);
	} else {
		print_table(log_path, sum);
	}
	rc = 0;
done:
	if (out && out != stdout)
		fclose(out);
	fclose(log);
	free(sum);
	return rc;
}

int cmd_policy(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		fputs(policy_usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "replay"))
		return replay(argc - 1, argv + 1);
	fprintf(stderr, "densevm policy: unknown subcommand '%s' (see 'densevm "
		"policy --help')\n", argv[1]);
	return 2;
}
