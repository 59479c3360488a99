/*
 * main.c - the densevm command: dispatches to its subcommands.
 */
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"
#include "ctl.h"
#include "image_cmd.h"

#ifndef DENSEVM_NO_JEMALLOC
/* jemalloc's own defaults keep freed pages for 10 s (dirty_decay_ms) and
 * cache per-arena slack: host memory a dense host cannot spare, and which
 * a memory cgroup charges.  Freed metadata (ksm's rebuilt tables, batch
 * scratch) goes back within a second here, from a background thread: on
 * the 4-image fleet that was 7 MiB less usage at steady state.  The
 * MALLOC_CONF environment variable still overrides it. */
const char *malloc_conf = "dirty_decay_ms:1000,muzzy_decay_ms:0,"
			  "background_thread:true";
#endif

static const char usage[] =
"usage: densevm COMMAND [ARGS]\n"
"\n"
"densevm runs many KVM virtual machines densely in one process, reclaiming\n"
"memory by content-based page sharing and ballooning.\n"
"\n"
"commands:\n"
"  run       run VMs (micro guests or Linux) until they end\n"
"  ctl       send a command to a running densevm (control socket)\n"
"  stat      statistics of a running densevm, as JSON\n"
"  image     RAM images of real Linux guests: capture, stat, synth, verify\n"
"  policy    the overcommit policy offline: replay a decision log\n"
"  bench     the dense-consolidation benchmark (scenarios, arms, plots)\n"
"  help      this text; 'densevm COMMAND --help' for a command\n"
"  version   print the version\n";

int main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(usage, stderr);
		return 2;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "run"))
		return cmd_run(argc - 1, argv + 1);
	if (!strcmp(cmd, "ctl"))
		return cmd_ctl(argc - 1, argv + 1);
	if (!strcmp(cmd, "stat"))
		return cmd_stat(argc - 1, argv + 1);
	if (!strcmp(cmd, "image"))
		return cmd_image(argc - 1, argv + 1);
	if (!strcmp(cmd, "bench"))
		return cmd_bench(argc - 1, argv + 1);
	if (!strcmp(cmd, "policy"))
		return cmd_policy(argc - 1, argv + 1);
	if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
		fputs(usage, stdout);
		return 0;
	}
	if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
		puts("densevm 0.1");
		return 0;
	}
	fprintf(stderr, "densevm: unknown command '%s' (see 'densevm help')\n", cmd);
	return 2;
}
