# guest: the micro guest (freestanding, static ELF linked at 0x200000).
#
# Built with its own flags, never the host's $(CFLAGS): no sanitizers even
# with SAN=1, no libc, no PIE, no stack protector, SSE2 but no AVX (the host
# enables only OSFXSR/OSXMMEXCPT).  Unwind tables and CET notes are turned
# off so the image holds only what the loader maps.
MICRO_GUEST := $(BUILD)/guest/microguest.elf

GUEST_SRCS    := $(wildcard guest/*.c)
GUEST_OBJS    := $(patsubst %.c,$(BUILD)/%.o,$(GUEST_SRCS))
# The balloon driver's shared core, compiled again with the guest's flags
# (it is freestanding and has no undefined symbols); its hosted build for
# the unit tests is libballoon-driver.a.
GUEST_SHARED  := balloon-driver/balloon_core.c
GUEST_OBJS    += $(patsubst %.c,$(BUILD)/guest/shared/%.o,$(GUEST_SHARED))
GUEST_LDS     := guest/micro.ld
GUEST_CC      ?= $(CC)
GUEST_CFLAGS  := -std=gnu11 -O2 -g -Wall -Wextra -Werror -MMD -MP \
                 -ffreestanding -fno-builtin -nostdlib -fno-pie \
                 -fno-stack-protector -fno-asynchronous-unwind-tables \
                 -fno-unwind-tables -fcf-protection=none -mno-red-zone \
                 -mcmodel=small -I. -Ihv-core -Iguest
GUEST_LDFLAGS := -nostdlib -static -no-pie -Wl,--build-id=none \
                 -Wl,-z,noexecstack -Wl,-z,max-page-size=4096 -T $(GUEST_LDS)

# A more specific pattern than the top-level $(BUILD)/%.o rule, so it wins.
$(BUILD)/guest/%.o: guest/%.c
	@mkdir -p $(dir $@)
	$(GUEST_CC) $(GUEST_CFLAGS) -c $< -o $@

$(BUILD)/guest/shared/%.o: %.c
	@mkdir -p $(dir $@)
	$(GUEST_CC) $(GUEST_CFLAGS) -c $< -o $@

# -lgcc only supplies helpers GCC might call (none expected).
$(MICRO_GUEST): $(GUEST_OBJS) $(GUEST_LDS)
	@mkdir -p $(dir $@)
	$(GUEST_CC) $(GUEST_CFLAGS) $(GUEST_LDFLAGS) -o $@ $(GUEST_OBJS) -lgcc

.PHONY: micro-guest
micro-guest: $(MICRO_GUEST)
