// SPDX-License-Identifier: GPL-2.0
/*
 * core.c - compiles the shared balloon core into densevm_balloon.ko.
 *
 * Owns nothing but this include: the core (balloon_core.c, balloon.h,
 * balloon_proto.h) lives once in balloon-driver/ and is shared with the
 * micro guest and the unit tests; Kbuild puts its directory on the include
 * path (see Kbuild), so the module builds from the repository and from a
 * DKMS tree alike without a copy in this folder.
 */
#include "balloon_core.c"
