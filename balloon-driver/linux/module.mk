# balloon-driver/linux/module.mk - densevm_balloon.ko in the Linux guest
# image.  Included from the top-level Makefile after guest/linux/module.mk
# (it uses LINUX_DIR, LINUX_RELEASE_FILE and LINUX_IMAGE_STAMP).
#
# Owns: installing the headers of the exact kernel `make guest-linux`
# fetched (the release is read from build/linux/kernel-release at build
# time, never written down; install-headers.sh has apt install
# linux-headers-<release>, which pulls linux-headers-*-common and
# linux-kbuild, and refuses a plan that would install a kernel image),
# building the module against them warning-free into build/linux/kmod/,
# adding it to the initramfs, and its unit test.
#
#   make linux-module    build/linux/kmod/densevm_balloon.ko
#   make linux-headers   just the headers (and kmod, for modinfo)
#
# The build directory is a farm of symlinks to the sources laid out like a
# DKMS tree (the shared core in core/): Kbuild writes its objects there,
# never into the source tree, and `make clean` removes them with build/.
DVB_KMOD_DIR := $(LINUX_DIR)/kmod
DVB_KO       := $(DVB_KMOD_DIR)/densevm_balloon.ko
DVB_LINUX    := Kbuild Makefile dkms.conf linux_glue.c core.c
DVB_CORE     := balloon_core.c balloon.h balloon_proto.h
DVB_SRCS     := $(addprefix balloon-driver/linux/,$(DVB_LINUX)) \
                $(addprefix balloon-driver/,$(DVB_CORE)) hv-core/hv_abi.h

.PHONY: linux-module linux-headers
linux-module: $(DVB_KO)

# The release is known once the kernel package was fetched; on a fresh
# tree that is the image build itself (it runs again, with the module,
# for the stamp: the kernel is extracted once, the initramfs takes ~1 s).
$(LINUX_RELEASE_FILE): | deps
	guest/linux/build-image.sh $(LINUX_DIR)

linux-headers: $(LINUX_RELEASE_FILE)
	@balloon-driver/linux/install-headers.sh $$(cat $(LINUX_RELEASE_FILE))

# -Werror (Kbuild) catches compiler warnings; modpost's warnings do not
# fail a build, so the log is checked too.
$(DVB_KO): $(DVB_SRCS) $(LINUX_RELEASE_FILE) | linux-headers
	@rel=$$(cat $(LINUX_RELEASE_FILE)); kdir=/usr/src/linux-headers-$$rel; \
	 [ -d "$$kdir" ] || { echo "linux-module: $$kdir is missing (make linux-headers)" >&2; exit 1; }; \
	 rm -rf $(DVB_KMOD_DIR) && mkdir -p $(DVB_KMOD_DIR)/core && \
	 for f in $(DVB_LINUX); do ln -s $(CURDIR)/balloon-driver/linux/$$f $(DVB_KMOD_DIR)/$$f; done && \
	 for f in $(DVB_CORE); do ln -s $(CURDIR)/balloon-driver/$$f $(DVB_KMOD_DIR)/core/$$f; done && \
	 ln -s $(CURDIR)/hv-core/hv_abi.h $(DVB_KMOD_DIR)/core/hv_abi.h && \
	 echo "linux-module: densevm_balloon.ko for $$rel" && \
	 $(MAKE) --no-print-directory -C $$kdir M=$(CURDIR)/$(DVB_KMOD_DIR) modules >$(DVB_KMOD_DIR)/build.log 2>&1; \
	 rc=$$?; cat $(DVB_KMOD_DIR)/build.log; \
	 if [ $$rc -ne 0 ] || grep -qi 'warning' $(DVB_KMOD_DIR)/build.log; then \
		echo "linux-module: the build failed or warned" >&2; rm -f $@; exit 1; fi

LINUX_EXTRA_MODULES += $(DVB_KO)
$(LINUX_IMAGE_STAMP): $(DVB_KO)

# Builds the module afresh against the same headers, checks the log and
# modinfo, and loads it into the same kernel under QEMU where QEMU exists.
UNIT_TESTS += tests/unit/test_balloon_linux_module.sh
