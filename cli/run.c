/*
 * run.c - `densevm run`: builds VM configs from --vm specs and config
 * files, creates every VM before starting any (so bad input leaves nothing
 * half-started), runs them until they end or a signal arrives, and
 * reports how each ended (text on stderr, JSON with --json).
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <libgen.h>
#include <limits.h>
#include "cli.h"
#include "ctl.h"
#include "ext.h"

static const char run_usage[] =
"usage: densevm run [--vm SPEC]... [--config FILE]... [options]\n"
"\n"
"Runs VMs in this process until every one has ended; exit status 0 only\n"
"when every VM exited with status 0.\n"
"\n"
"  --vm SPEC        one VM (repeatable): comma-separated key=value pairs;\n"
"                   quote a value with \"...\" to include commas or spaces\n"
"  --config FILE    VMs from a config file ([vm NAME] sections, same keys);\n"
"                   SIGHUP re-reads it (the policy takes the new values)\n"
"  --timeout SEC    stop any VM still running after SEC seconds (default: none)\n"
"  --json FILE      write a JSON report of every VM to FILE ('-' = stdout)\n"
"  --quiet          do not print guest console lines\n"
"  --ctl PATH       serve the control socket at PATH (default\n"
"                   " CTL_DEFAULT_DIR "/densevm.sock, or densevm-PID.sock\n"
"                   when that one is in use); 'none' = no socket\n"
"  --guest PATH     micro guest ELF (default: guest/microguest.elf beside\n"
"                   the densevm binary)\n"
"  --help           this text\n"
"\n"
"SPEC keys:\n"
"  name=NAME        VM name (default vmN); with count>1, NAME0, NAME1, ...\n"
"  mem=SIZE         guest RAM, a multiple of 2M (default 128M)\n"
"  cpus=N           vCPUs, 1-16 (default 1)\n"
"  kind=micro|linux the guest (default micro)\n"
"  workload=ARGS    micro guest workload, e.g. \"verify mib=64 passes=3\"\n"
"                   (see guest/README.md: fill, verify, dirty, idle, crash, ...)\n"
"  image=PATH       micro guest ELF for this VM\n"
"  kernel=PATH      Linux bzImage or vmlinux (kind=linux)\n"
"  initrd=PATH      Linux initramfs (kind=linux)\n"
"  cmdline=TEXT     Linux command line (kind=linux)\n"
"  count=N          N identical VMs\n"
"  timeout=SEC      per-VM timeout\n"
"  balloon=on|off   the balloon device (default on; see [balloon] in README.md)\n"
"  ram_image=NAME|PATH\n"
"                   load a RAM image (build/images/NAME, `densevm image`)\n"
"                   into a micro guest's RAM before it starts; the image\n"
"                   workload verifies it (workload=\"image churn=1\")\n"
"  console_rate=SIZE\n"
"                   console bytes/s before lines are dropped (default 64K;\n"
"                   0 = no limit; see [console] in README.md)\n"
"  console_burst=SIZE\n"
"                   console bytes at once (default 256K)\n"
"\n"
"example:\n"
"  densevm run --vm name=a,mem=256M,workload=\"verify mib=64\" \\\n"
"              --vm name=b,count=4,workload=\"fill mib=100 identical=60 zero=20\"\n";

const char *default_guest_path(void)
{
	static char path[PATH_MAX];
	char exe[PATH_MAX];
	const char *env = getenv("DENSEVM_GUEST");

	if (env && *env)
		return env;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return "guest/microguest.elf";
	exe[n] = 0;
	snprintf(path, sizeof(path), "%s/guest/microguest.elf", dirname(exe));
	return path;
}

static void quiet_console(struct hv_vm *vm, const char *l, size_t n, void *c)
{
	(void)vm; (void)l; (void)n; (void)c;
}

static int build_and_create(struct run_opts *o, struct run_state *rs)
{
	struct vm_run *runs = rs->runs;
	char err[512];
	unsigned n = 0;

	for (unsigned i = 0; i < o->nspecs; i++) {
		struct vm_spec *s = &o->specs[i];
		for (unsigned k = 0; k < s->count; k++) {
			char name[72];
			if (n >= CLI_MAX_VMS) {
				fprintf(stderr, "densevm run: more than %u VMs\n", CLI_MAX_VMS);
				return -EINVAL;
			}
			spec_vm_name(s, k, n, name, sizeof(name));
			for (unsigned j = 0; j < n; j++)
				if (!strcmp(hv_vm_name(runs[j].vm), name)) {
					fprintf(stderr, "densevm run: %s: name: '%s' is used "
						"twice\n", s->origin, name);
					return -EINVAL;
				}
			struct hv_vm_config c = {
				.name = name, .mem_bytes = s->mem, .ncpus = s->cpus,
				.kind = s->kind, .base_memfd = -1,
				.timeout_s = s->timeout ? s->timeout : o->timeout,
				.console = o->quiet ? quiet_console : NULL,
			};
			if (s->kind == HV_GUEST_MICRO) {
				c.image = s->image ? s->image : o->guest_path;
				c.cmdline = s->workload;
			} else {
				c.image = s->image;
				c.initrd = s->initrd;
				c.cmdline = s->cmdline;
			}
			for (int e = 0; run_exts[e]; e++)
				if (run_exts[e]->prepare_vm &&
				    run_exts[e]->prepare_vm(rs, s, &c, err, sizeof(err))) {
					fprintf(stderr, "densevm run: %s: %s\n", s->origin, err);
					return -EINVAL;
				}
			if (hv_vm_create(&c, &runs[n].vm, err, sizeof(err)) < 0) {
				fprintf(stderr, "densevm run: %s: %s\n", s->origin, err);
				return -EINVAL;
			}
			runs[n++].spec = s;
			rs->n = n;
		}
	}
	return 0;
}

static void report_json(const char *path, struct vm_run *runs, unsigned n)
{
	json_t *arr = json_array();
	for (unsigned i = 0; i < n; i++) {
		struct hv_exit_status st;
		struct hv_vm_counters ct;
		hv_vm_status(runs[i].vm, &st);
		hv_vm_counters(runs[i].vm, &ct);
		uint64_t s0 = hv_vm_start_ns(runs[i].vm);
		uint64_t h = hv_vm_first_hypercall_ns(runs[i].vm);
		json_t *res = json_object();
		for (uint64_t k = 0; k < 16; k++) {
			uint64_t v;
			char key[8];
			if (hv_vm_result(runs[i].vm, k, &v)) {
				snprintf(key, sizeof(key), "%llu", (unsigned long long)k);
				json_object_set_new(res, key, json_integer((json_int_t)v));
			}
		}
		json_array_append_new(arr, json_pack(
			"{s:s, s:s, s:i, s:s, s:I, s:f, s:I, s:I, s:o}",
			"name", hv_vm_name(runs[i].vm),
			"status", hv_exit_kind_name(st.kind), "code", st.code,
			"reason", st.reason,
			"mem_bytes", (json_int_t)hv_vm_mem_bytes(runs[i].vm),
			"first_hypercall_ms", h ? (double)(h - s0) / 1e6 : -1.0,
			"hypercalls", (json_int_t)ct.hypercalls,
			"exits", (json_int_t)ct.exits, "results", res));
	}
	json_t *root = json_pack("{s:o}", "vms", arr);
	int rc = !strcmp(path, "-") ? json_dumpf(root, stdout, JSON_INDENT(2))
				    : json_dump_file(root, path, JSON_INDENT(2));
	if (rc)
		fprintf(stderr, "densevm run: --json %s: cannot write\n", path);
	else if (!strcmp(path, "-"))
		putchar('\n');
	json_decref(root);
}

static int run_vms(struct run_state *rs)
{
	struct vm_run *runs = rs->runs;
	unsigned n = rs->n;
	int stopped_by = 0;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);

	for (unsigned i = 0; i < n; i++)
		hv_vm_start(runs[i].vm);
	for (;;) {
		bool all = true;
		for (unsigned i = 0; i < n; i++)
			if (!hv_vm_wait_timeout(runs[i].vm, 0))
				all = false;
		if (all)
			break;
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		int sig = sigtimedwait(&set, NULL, &ts);
		if (sig == SIGHUP) {
			char err[512];
			if (run_reload(rs, err, sizeof(err)))
				fprintf(stderr, "densevm run: SIGHUP: reload refused, the "
					"old config stays: %s\n", err);
			else
				fprintf(stderr, "densevm run: SIGHUP: config reloaded\n");
		} else if (sig > 0) {
			stopped_by = sig;
			fprintf(stderr, "densevm run: %s: stopping %u VMs\n",
				strsignal(sig), n);
			for (unsigned i = 0; i < n; i++)
				hv_vm_stop(runs[i].vm);
		}
	}
	int bad = 0;
	for (unsigned i = 0; i < n; i++) {
		struct hv_exit_status st;
		hv_vm_status(runs[i].vm, &st);
		double secs = (double)(hv_vm_end_ns(runs[i].vm) -
				       hv_vm_start_ns(runs[i].vm)) / 1e9;
		bool ok = st.kind == HV_EXIT_EXITED && st.code == 0;
		bad += !ok;
		fprintf(stderr, "densevm: %s: %s%s%s%s%s (ran %.2f s)\n",
			hv_vm_name(runs[i].vm), hv_exit_kind_name(st.kind),
			st.reason[0] ? ": " : "", st.reason,
			st.kind == HV_EXIT_STOPPED && stopped_by ? " on SIG" : "",
			st.kind == HV_EXIT_STOPPED && stopped_by ? sigabbrev_np(stopped_by) : "",
			secs);
	}
	return bad;
}

int cmd_run(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "vm", required_argument, 0, 'v' },
		{ "config", required_argument, 0, 'c' },
		{ "timeout", required_argument, 0, 't' },
		{ "json", required_argument, 0, 'j' },
		{ "quiet", no_argument, 0, 'q' },
		{ "guest", required_argument, 0, 'g' },
		{ "ctl", required_argument, 0, 'C' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	/* on the heap, not static: a run is reentrant, and 256 specs are big */
	struct vm_spec *specs = calloc(CLI_MAX_VMS, sizeof(*specs));
	struct vm_run *runs = calloc(CLI_MAX_VMS, sizeof(*runs));
	struct run_domain *dom = calloc(CLI_MAX_VMS + 1, sizeof(*dom));
	struct run_opts o = { .specs = specs };
	struct run_state rs = { .runs = runs, .cfg = &o.cfg, .dom = dom };
	char err[512], origin[32], bound[128];
	const char *ctl_path = NULL;
	struct ctl_server *ctl = NULL;
	unsigned nvm = 0;
	int c, rc = 2;

	if (!specs || !runs || !dom) {
		fprintf(stderr, "densevm run: out of memory\n");
		free(specs); free(runs); free(dom);
		return 1;
	}
	run_config_init(&o.cfg);
	pthread_mutex_init(&rs.lock, NULL);
	optind = 1;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'v':
			snprintf(origin, sizeof(origin), "--vm %u", ++nvm);
			if (o.nspecs >= CLI_MAX_VMS) {
				fprintf(stderr, "densevm run: more than %u --vm\n", CLI_MAX_VMS);
				goto out;
			}
			spec_init(&specs[o.nspecs], origin);
			if (spec_parse(&specs[o.nspecs++], optarg, err, sizeof(err)) ||
			    spec_check(&specs[o.nspecs - 1], err, sizeof(err))) {
				fprintf(stderr, "densevm run: %s: %s\n", origin, err);
				goto out;
			}
			break;
		case 'c':
			if (config_load(optarg, &o, err, sizeof(err))) {
				fprintf(stderr, "densevm run: %s\n", err);
				goto out;
			}
			if (rs.nconfig == RUN_MAX_CONFIGS) {
				fprintf(stderr, "densevm run: more than %d --config\n",
					RUN_MAX_CONFIGS);
				goto out;
			}
			rs.config[rs.nconfig++] = optarg;
			break;
		case 't': {
			char *end;
			o.timeout = strtod(optarg, &end);
			if (end == optarg || *end || o.timeout < 0) {
				fprintf(stderr, "densevm run: --timeout: '%s' must be seconds "
					">= 0\n", optarg);
				goto out;
			}
			break;
		}
		case 'j': o.json_path = optarg; break;
		case 'q': o.quiet = true; break;
		case 'g': o.guest_path = optarg; break;
		case 'C': ctl_path = optarg; break;
		case 'h': fputs(run_usage, stdout); rc = 0; goto out;
		default:
			fprintf(stderr, "densevm run: see 'densevm run --help'\n");
			goto out;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "densevm run: unexpected argument '%s'\n", argv[optind]);
		goto out;
	}
	if (o.nspecs == 0) {
		fprintf(stderr, "densevm run: no VMs: give --vm SPEC or --config FILE "
			"(see --help)\n");
		goto out;
	}
	if (!o.guest_path)
		o.guest_path = default_guest_path();

	/* vCPU threads inherit this mask: only the main thread takes signals */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);   /* reload, see run_reload */
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	if (hv_init(err, sizeof(err)) < 0) {
		fprintf(stderr, "densevm run: %s\n", err);
		rc = 1;
		goto out;
	}
	if (build_and_create(&o, &rs)) {
		rc = 1;
		goto destroy;
	}
	if (!ctl_path || strcmp(ctl_path, "none")) {
		if (ctl_start(ctl_path, &ctl, bound, sizeof(bound), err, sizeof(err))) {
			fprintf(stderr, "densevm run: %s\n", err);
			rc = 1;
			goto destroy;
		}
		run_register_ctl(ctl, &rs);
		fprintf(stderr, "densevm: control socket %s\n", bound);
	}
	int started = 0;
	for (; run_exts[started]; started++)
		if (run_exts[started]->start &&
		    run_exts[started]->start(&rs, ctl, err, sizeof(err))) {
			fprintf(stderr, "densevm run: %s: %s\n", run_exts[started]->name,
				err);
			rc = 1;
			break;
		}
	if (!run_exts[started] && ctl && ctl_serve(ctl, err, sizeof(err))) {
		fprintf(stderr, "densevm run: %s\n", err);
		rc = 1;
	} else if (!run_exts[started]) {
		rc = run_vms(&rs) ? 1 : 0;
	}
	ctl_stop(ctl);
	while (started-- > 0)
		if (run_exts[started]->stop)
			run_exts[started]->stop(&rs);
	proc_figs_stop();
	if (o.json_path)
		report_json(o.json_path, runs, rs.n);
destroy:
	for (unsigned i = 0; i < rs.n; i++)
		hv_vm_destroy(runs[i].vm);
	/* after the VMs: hv-core restores base mappings from these */
	for (unsigned i = 0; i < rs.ndom; i++)
		if (dom[i].memfd >= 0)
			close(dom[i].memfd);
	rs.ndom = 0;
out:
	pthread_mutex_destroy(&rs.lock);
	free(runs);
	free(dom);
	for (unsigned i = 0; i < o.nspecs; i++)
		spec_free(&specs[i]);
	free(specs);
	free(o.owned);
	return rc;
}
