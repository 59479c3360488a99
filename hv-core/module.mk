# hv-core: the hypervisor core library, and the console filter's fuzz
# harness (its replay in `make test`, and `make fuzz-console`).
$(eval $(call host_lib,hv,hv-core))

# The console filter's fuzz harness (tests/fuzz/fuzz_console.c): its corpus
# replay runs with the unit tests (any compiler), `make fuzz-console
# [FUZZ_TIME=10]` is the libFuzzer run; new inputs go to
# build/fuzz/corpus_console, the seeds in tests/fuzz/corpus_console stay.
CONSOLE_REPLAY := $(BUILD)/tests/fuzz_console_replay
$(CONSOLE_REPLAY): $(BUILD)/tests/fuzz/fuzz_console.o $(BUILD)/tests/fuzz/replay_main.o $(BUILD)/hv-core/console_filter.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^
UNIT_TESTS += $(CONSOLE_REPLAY)

FUZZ_CC   ?= clang
FUZZ_TIME ?= 10
CONSOLE_FUZZ_SRCS := tests/fuzz/fuzz_console.c hv-core/console_filter.c
.PHONY: fuzz-console
fuzz-console: build/fuzz/fuzz_console
	@mkdir -p build/fuzz/corpus_console
	build/fuzz/fuzz_console -max_total_time=$(FUZZ_TIME) -print_final_stats=1 \
		build/fuzz/corpus_console tests/fuzz/corpus_console
build/fuzz/fuzz_console: $(CONSOLE_FUZZ_SRCS) hv-core/console_filter.h hv-core/hv.h hv-core/hv_abi.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -std=gnu11 -O1 -g -I. -Ihv-core -D_GNU_SOURCE \
		-fno-sanitize-recover=undefined -fsanitize=fuzzer,address,undefined \
		$(CONSOLE_FUZZ_SRCS) -o $@
