# bench: benchmarks (they measure and report; they assert nothing).
# The baselines need QEMU (installed on first use, like every dependency).
BENCH_PROGS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/bench_*.c))
BENCH_PACKAGES := qemu-system-x86 strace gnuplot-nox

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(HOST_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< -Wl,--start-group $(HOST_LIBS) -Wl,--end-group $(LDLIBS)

# benches that weigh a memory cgroup share the tests' helpers
$(BUILD)/bench/bench_image_fleet $(BUILD)/bench/bench_ksm: $(BUILD)/bench/%: $(BUILD)/bench/%.o $(BUILD)/tests/support/cgroup.o $(HOST_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) -Wl,--start-group $(HOST_LIBS) -Wl,--end-group $(LDLIBS)

.PHONY: bench-deps bench-micro
bench-deps:
	@scripts/deps.sh $(BENCH_PACKAGES)

# `make bench`: the dense-consolidation benchmark, the default scenario
# with every arm in its short form (about 3.5 minutes here); results,
# table and plots in build/results/bench-default/.  Longer or other runs:
# build/densevm bench [SCENARIO] [--reps N] (see densevm bench --help).
bench: $(BUILD)/densevm $(MICRO_GUEST)
	@scripts/deps.sh gnuplot-nox
	@$(BUILD)/densevm bench default --quick $(BENCH_ARGS)

# the micro-benchmarks (hashing, merges, balloon, hv, policy, QEMU baselines)
bench-micro: $(BENCH_PROGS) $(BUILD)/densevm $(MICRO_GUEST) $(LINUX_IMAGE_STAMP) | bench-deps
	@mkdir -p $(BUILD)/results
	@for b in $(BENCH_PROGS); do echo "=== $$b"; $$b --out $(BUILD)/results --guest $(MICRO_GUEST) || exit 1; done
	@echo "=== baseline: QEMU host memory per VM"
	@bench/qemu_mem.sh $(BUILD)/results $(LINUX_DIR) 3
	@echo "=== baseline: QEMU virtio-balloon" && bench/qemu_balloon.sh $(BUILD)/results $(LINUX_DIR) 3
