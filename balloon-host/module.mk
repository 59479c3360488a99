# balloon-host: the balloon device model (libballoon-host.a), its fuzz
# harness replay in `make test`, and `make fuzz-balloon` (libFuzzer).
$(eval $(call host_lib,balloon-host,balloon-host))

# The corpus replay: the libFuzzer harness with a plain main(), no clang
# needed.  It runs with the unit tests.
BALLOON_REPLAY := $(BUILD)/tests/fuzz_balloon_replay
$(BALLOON_REPLAY): $(BUILD)/tests/fuzz/fuzz_balloon_host.o $(BUILD)/tests/fuzz/replay_main.o $(BUILD)/libballoon-host.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ -ljansson
UNIT_TESTS += $(BALLOON_REPLAY)

# libFuzzer run: make fuzz-balloon [FUZZ_TIME=10]; new inputs go to
# build/fuzz/corpus_balloon, the seeds in tests/fuzz/corpus_balloon stay.
FUZZ_CC   ?= clang
FUZZ_TIME ?= 10
# The device is instrumented for coverage; the fake backend (the harness's
# bookkeeping: counting loops over the page-state map) only gets the
# sanitizers, or its loops would dominate the run and steer the fuzzer.
BALLOON_FUZZ_SRCS := tests/fuzz/fuzz_balloon_host.c $(filter-out balloon-host/bh_hv.c balloon-host/bh_fake.c,$(wildcard balloon-host/*.c))
BALLOON_FUZZ_FLAGS := -std=gnu11 -O1 -g -I. -Ihv-core -D_GNU_SOURCE -pthread -fno-sanitize-recover=undefined
.PHONY: fuzz-balloon
fuzz-balloon: build/fuzz/fuzz_balloon_host
	@mkdir -p build/fuzz/corpus_balloon
	build/fuzz/fuzz_balloon_host -max_total_time=$(FUZZ_TIME) -print_final_stats=1 \
		build/fuzz/corpus_balloon tests/fuzz/corpus_balloon
build/fuzz/bh_fake.o: balloon-host/bh_fake.c $(wildcard balloon-host/*.h) balloon-driver/balloon_proto.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(BALLOON_FUZZ_FLAGS) -O2 -fsanitize=address,undefined -c $< -o $@
build/fuzz/fuzz_balloon_host: $(BALLOON_FUZZ_SRCS) build/fuzz/bh_fake.o $(wildcard balloon-host/*.h) balloon-driver/balloon_proto.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(BALLOON_FUZZ_FLAGS) -fsanitize=fuzzer,address,undefined \
		$(BALLOON_FUZZ_SRCS) build/fuzz/bh_fake.o -o $@ -ljansson
