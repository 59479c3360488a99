/*
 * ext_list.c - the subsystems plugged into `densevm run` (see ext.h).
 */
#include <stddef.h>
#include "ext.h"

extern const struct run_ext balloon_ext;

const struct run_ext *const run_exts[] = {
	&balloon_ext,
	NULL,
};
