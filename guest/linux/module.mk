# guest/linux: the Linux guest image (Debian cloud kernel + busybox
# initramfs), built by guest/linux/build-image.sh into build/linux/.  Not
# under $(BUILD): one image serves the normal and the sanitizer builds.
#
#   make guest-linux    vmlinuz, vmlinux, kernel-release, initramfs.cpio.gz
#
# Tests and targets that boot Linux depend on $(LINUX_IMAGE_STAMP).  A
# feature that ships a guest kernel module adds, in its own module.mk:
#   LINUX_EXTRA_MODULES += path/to/x.ko
#   $(LINUX_IMAGE_STAMP): path/to/x.ko
# and init loads it at boot (see guest/linux/init).
LINUX_DIR          := build/linux
LINUX_VMLINUX      := $(LINUX_DIR)/vmlinux
LINUX_VMLINUZ      := $(LINUX_DIR)/vmlinuz
LINUX_INITRAMFS    := $(LINUX_DIR)/initramfs.cpio.gz
LINUX_RELEASE_FILE := $(LINUX_DIR)/kernel-release
LINUX_IMAGE_STAMP  := $(LINUX_DIR)/.stamp
LINUX_EXTRA_MODULES ?=

# Rebuild when an output went missing even though the stamp is still there.
LINUX_IMAGE_FILES  := $(LINUX_VMLINUX) $(LINUX_VMLINUZ) $(LINUX_INITRAMFS) $(LINUX_RELEASE_FILE)
LINUX_IMAGE_FORCE  := $(if $(filter $(words $(LINUX_IMAGE_FILES)),$(words $(wildcard $(LINUX_IMAGE_FILES)))),,linux-image-missing)

.PHONY: guest-linux linux-image-missing
guest-linux: $(LINUX_IMAGE_STAMP)
linux-image-missing: ;

$(LINUX_IMAGE_STAMP): guest/linux/build-image.sh guest/linux/init $(LINUX_IMAGE_FORCE) | deps
	guest/linux/build-image.sh $(LINUX_DIR) $(LINUX_EXTRA_MODULES)
	@touch $@

# The integration tests boot build/linux/vmlinux (test_linux_banner).
TEST_INTEGRATION_EXTRA += $(LINUX_IMAGE_STAMP)
