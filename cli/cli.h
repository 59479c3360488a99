/*
 * cli.h - the densevm command's internal interface: VM specs (from --vm
 * and from config files), size parsing, and the subcommands.
 */
#ifndef DENSEVM_CLI_H
#define DENSEVM_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "hv.h"

#define CLI_MAX_VMS 256

struct vm_spec {
	char name[64];
	uint64_t mem;
	unsigned cpus;
	enum hv_guest_kind kind;
	char *image;      /* micro guest ELF override, or the Linux kernel */
	char *initrd;
	char *cmdline;    /* Linux cmdline */
	char *workload;   /* micro guest arguments */
	unsigned count;   /* replicate: name0, name1, ... */
	double timeout;
	char origin[300]; /* "--vm 2" or "file.conf:12", for messages */
	struct { char key[32]; char *val; } ext[8]; /* keys extensions own */
	unsigned next;
};

/* The value of a per-VM key that an extension claimed, or NULL. */
const char *spec_ext(const struct vm_spec *s, const char *key);

struct run_opts {
	struct vm_spec *specs;
	unsigned nspecs;
	double timeout;        /* default per VM */
	const char *json_path; /* NULL, "-" or a file */
	bool quiet;
	const char *guest_path;
	char *owned;           /* a path the config file gave, freed at the end */
};

/* Parses a size such as 4096, 64K, 512M, 2G, 1T (binary units; an optional
 * trailing "iB" or "B").  Returns 0 or -EINVAL. */
int parse_size(const char *s, uint64_t *out);

void spec_init(struct vm_spec *s, const char *origin);
void spec_free(struct vm_spec *s);
/* Applies key=value to a spec; on error writes "key: what is wrong". */
int spec_set(struct vm_spec *s, const char *key, const char *val,
	     char *err, size_t errlen);
/* Parses "k=v,k=v,..." (values may be "double quoted" to hold commas). */
int spec_parse(struct vm_spec *s, const char *text, char *err, size_t errlen);
/* Final checks of a spec (required keys for its kind). */
int spec_check(const struct vm_spec *s, char *err, size_t errlen);

/* Reads a config file's [vm NAME] sections (and [run] defaults) into
 * opts.  Errors name FILE:LINE. */
int config_load(const char *path, struct run_opts *opts, char *err,
		size_t errlen);

struct vm_run {
	struct hv_vm *vm;
	struct vm_spec *spec;
};

struct run_state {
	struct vm_run *runs;
	unsigned n;
};

struct ctl_server;
/* list, stat, stop: the control-socket commands of a running process */
void run_register_ctl(struct ctl_server *s, struct run_state *st);

int cmd_run(int argc, char **argv);
/* densevm policy replay ... (cmd_policy.c) */
int cmd_policy(int argc, char **argv);
const char *default_guest_path(void);

#endif
