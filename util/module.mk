# util: small libc-only helpers every folder may use (libutil.a); util/
# depends on nothing.  Header-only ones (size.h) need no library.
$(eval $(call host_lib,util,util))
