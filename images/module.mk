# images: RAM images of real guests (format, load, duplicate analysis),
# libimages.a.  See images/images.h.
$(eval $(call host_lib,images,images))

# The capture initramfs (busybox + python3, redis-server, sqlite3 from
# Debian) and the default image set.  `make images` captures 4 boots of
# 512 MiB running the mixed workload into build/images/boot0..boot3 (about
# a minute under TCG here); a second run finds them in the cache.
IMAGES_DIR       := build/images
IMAGES_USERLAND  := $(IMAGES_DIR)/userland/initramfs.cpio
IMAGES_PACKAGES  := qemu-system-x86 busybox-static cpio
IMAGES_DEFAULT   ?= --mem 512M --boots 4 --workload mixed

.PHONY: images images-userland images-deps
images-deps: | deps      # one apt-get at a time, also under make -j
	@scripts/deps.sh $(IMAGES_PACKAGES)
images-userland: $(IMAGES_USERLAND)
$(IMAGES_USERLAND): guest/linux/build-userland.sh guest/linux/image-init | deps images-deps
	guest/linux/build-userland.sh $(IMAGES_DIR)/userland

images: $(BUILD)/densevm $(LINUX_IMAGE_STAMP) $(IMAGES_USERLAND) | images-deps
	@start=$$(date +%s.%N); \
	$(BUILD)/densevm image capture boot $(IMAGES_DEFAULT) && \
	awk -v s=$$start -v e=$$(date +%s.%N) 'BEGIN { printf "make images: done in %.1f s\n", e - s }' && \
	$(BUILD)/densevm image stat $(IMAGES_DIR)/boot0 $(IMAGES_DIR)/boot1 $(IMAGES_DIR)/boot2 $(IMAGES_DIR)/boot3

# test_image_capture boots QEMU with the capture initramfs.
TEST_INTEGRATION_EXTRA += $(IMAGES_USERLAND)
