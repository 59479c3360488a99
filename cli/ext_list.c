/*
 * ext_list.c - the subsystems plugged into `densevm run` (see ext.h).
 */
#include <stddef.h>
#include "ext.h"

extern const struct run_ext ksm_ext;
extern const struct run_ext balloon_ext;
extern const struct run_ext console_ext;
extern const struct run_ext image_ext;

/* ksm before balloon: the balloon's start asks for ksm's release_hook;
 * images before ksm: RAM is loaded before the scanner may read it */
const struct run_ext *const run_exts[] = {
	&image_ext,
	&ksm_ext,
	&balloon_ext,
	&console_ext,
	NULL,
};
