# densevm top-level build.  Each folder adds itself through its module.mk;
# this file owns the flags, the generic rules and the user-facing targets.
#
#   make              host binaries and the micro guest, into build/
#   make SAN=1        the same with ASan+UBSan, into build/san/
#   make test         unit tests, then integration tests that boot VMs
#   make guest-linux  the Debian cloud kernel + busybox initramfs image
#   make deps         install the Debian packages that are missing
#   make bench        densevm bench default and density: VMs under a budget, every arm
#   make bench-real   densevm bench real: captured Linux images, every arm
#   make bench-micro  the micro-benchmarks (not tests: they measure and report)

BUILD    := build$(if $(SAN),/san,)
CC       ?= gcc
CPPFLAGS := -I. -Ihv-core -Itests/support -D_GNU_SOURCE
CFLAGS   := -std=gnu11 -O2 -g -Wall -Wextra -Werror -MMD -MP -pthread
LDFLAGS  := -pthread
LDLIBS   := -ljemalloc -linih -ljansson -lxxhash -lurcu-qsbr -lurcu-cds -lurcu-common -lnuma -lm
ifneq ($(SAN),)
CFLAGS   += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS  += -fsanitize=address,undefined
# jemalloc and ASan both want to own malloc: sanitizer builds use ASan's.
LDLIBS   := $(filter-out -ljemalloc,$(LDLIBS))
CPPFLAGS += -DDENSEVM_NO_JEMALLOC
endif

DEB_PACKAGES := libxxhash-dev libjemalloc-dev liburcu-dev libnuma-dev \
                libcmocka-dev libinih-dev libjansson-dev busybox-static cpio \
                xz-utils zstd lz4 qemu-system-x86 clang libclang-rt-14-dev jq

.PHONY: all deps test test-build test-unit test-integration test-linux guest-linux bench demo clean
all: $(BUILD)/densevm

deps:
	@scripts/deps.sh $(DEB_PACKAGES)

HOST_LIBS :=
UNIT_TESTS :=
INTEGRATION_TESTS :=

# host_lib NAME DIR: $(BUILD)/libNAME.a from DIR/*.c
define host_lib
$(1)_SRCS := $$(wildcard $(2)/*.c)
$(1)_OBJS := $$(patsubst %.c,$$(BUILD)/%.o,$$($(1)_SRCS))
$$(BUILD)/lib$(1).a: $$($(1)_OBJS)
	@mkdir -p $$(dir $$@)
	$$(AR) rcs $$@ $$^
HOST_LIBS += $$(BUILD)/lib$(1).a
endef

include util/module.mk
include hv-core/module.mk
-include ksm/module.mk
-include balloon-driver/module.mk
-include balloon-host/module.mk
-include policy/module.mk
include guest/module.mk
-include guest/linux/module.mk
# after guest/linux: the images rule names $(LINUX_IMAGE_STAMP)
-include images/module.mk
-include balloon-driver/linux/module.mk
include cli/module.mk
-include tests/module.mk
-include bench/module.mk

$(BUILD)/%.o: %.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

# Every tests/unit/test_*.c and tests/integration/test_*.c is one cmocka
# program linked against all host libraries.
UNIT_TESTS += $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))
INTEGRATION_TESTS += $(patsubst tests/integration/%.c,$(BUILD)/tests/%,$(wildcard tests/integration/test_*.c))
TEST_SUPPORT_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(wildcard tests/support/*.c))

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(TEST_SUPPORT_OBJS) $(HOST_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(TEST_SUPPORT_OBJS) -Wl,--start-group $(HOST_LIBS) -Wl,--end-group $(LDLIBS) -lcmocka
$(BUILD)/tests/%: $(BUILD)/tests/integration/%.o $(TEST_SUPPORT_OBJS) $(HOST_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(TEST_SUPPORT_OBJS) -Wl,--start-group $(HOST_LIBS) -Wl,--end-group $(LDLIBS) -lcmocka

# `make test` is what CI runs: the unit and integration tests, then all of
# them again built with ASan+UBSan, then short libFuzzer runs of the
# balloon device's request path and of the console filter
# (`make fuzz-balloon FUZZ_TIME=600`, `make fuzz-console ...` by hand).
# The builds run on every CPU (test-build), the tests one program at a time.
NPROC := $(shell nproc 2>/dev/null || echo 1)
test:
	$(MAKE) --no-print-directory -j$(NPROC) test-build
	$(MAKE) --no-print-directory test-unit test-integration
	$(MAKE) --no-print-directory -j$(NPROC) SAN=1 test-build
	$(MAKE) --no-print-directory SAN=1 test-unit test-integration
	$(MAKE) --no-print-directory fuzz-balloon FUZZ_TIME=10
	$(MAKE) --no-print-directory fuzz-console FUZZ_TIME=5
# what every test program needs beside itself
TEST_COMMON = $(BUILD)/densevm $(MICRO_GUEST) $(TEST_INTEGRATION_EXTRA)
test-build: $(UNIT_TESTS) $(INTEGRATION_TESTS) $(TEST_COMMON)
test-unit: $(UNIT_TESTS) $(TEST_COMMON)
	@BUILD=$(BUILD) scripts/run-tests.sh unit $(UNIT_TESTS)
test-integration: $(INTEGRATION_TESTS) $(TEST_COMMON)
	@BUILD=$(BUILD) scripts/run-tests.sh integration $(INTEGRATION_TESTS)

# Linux guests to the initramfs's ready marker: hosts with hardware
# virtualization only (on nested software KVM the kernel stops long before).
test-linux: $(BUILD)/densevm $(LINUX_IMAGE_STAMP)
	@scripts/test-linux.sh $(BUILD)/densevm $(LINUX_DIR)

# The main job, for now: a dense consolidation demo (bench/demo.conf) with
# page sharing and ballooning, progress every 2 s.  `make bench` measures.
demo: $(BUILD)/densevm
	@bench/demo.sh $(BUILD)/densevm

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
