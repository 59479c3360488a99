/*
 * ext_list.c - the subsystems plugged into `densevm run` (see ext.h).
 */
#include <stddef.h>
#include "ext.h"

const struct run_ext *const run_exts[] = {
	NULL,
};
