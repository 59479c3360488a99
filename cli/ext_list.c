/*
 * ext_list.c - the subsystems plugged into `densevm run` (see ext.h).
 * Start order is this order, stop the reverse: images first (RAM is
 * loaded before the scanner may read it), ksm before balloon (the
 * balloon wires ksm's release hook through vm_run.ksm), policy after both
 * (it steers the balloons and the scanner they set up).
 */
#include <stddef.h>
#include "ext.h"

extern const struct run_ext ksm_ext;
extern const struct run_ext balloon_ext;
extern const struct run_ext console_ext;
extern const struct run_ext image_ext;
extern const struct run_ext policy_ext;

const struct run_ext *const run_exts[] = {
	&image_ext,
	&ksm_ext,
	&balloon_ext,
	&console_ext,
	&policy_ext,
	NULL,
};
