# balloon-driver: the guest-side balloon core, built hosted into
# libballoon-driver.a for the unit tests.  The wildcard takes
# balloon-driver/*.c only: the Linux module lives in balloon-driver/linux/
# (its own Kbuild) and is never part of this library.
$(eval $(call host_lib,balloon-driver,balloon-driver))
