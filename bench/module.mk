# bench: benchmarks (they measure and report; they assert nothing).
# The baselines need QEMU (installed on first use, like every dependency).
BENCH_PROGS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/bench_*.c))
BENCH_PACKAGES := qemu-system-x86 strace gnuplot-nox

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(HOST_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< -Wl,--start-group $(HOST_LIBS) -Wl,--end-group $(LDLIBS)

# benches that weigh a memory cgroup share the tests' helpers
$(BUILD)/bench/bench_fleet $(BUILD)/bench/bench_ksm: $(BUILD)/bench/%: $(BUILD)/bench/%.o $(BUILD)/tests/support/cgroup.o $(HOST_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) -Wl,--start-group $(HOST_LIBS) -Wl,--end-group $(LDLIBS)
# the control-plane load is the one test_ksm_cli asserts on
$(BUILD)/bench/bench_ctl: $(BUILD)/bench/bench_ctl.o $(BUILD)/tests/support/ctl_load.o $(HOST_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) -Wl,--start-group $(HOST_LIBS) -Wl,--end-group $(LDLIBS)

.PHONY: bench-deps bench-micro
bench-deps:
	@scripts/deps.sh $(BENCH_PACKAGES)

# `make bench`: the dense-consolidation benchmark, every arm in its short
# form: the default scenario (28 s per arm), then the density search (VMs
# arriving one a second into 1 GiB, each arm until its first failure, 26 s
# at most); about 4.5 minutes here.  Results, tables and plots in
# build/results/bench-default/ and bench-density/.  Longer or other runs:
# build/densevm bench [SCENARIO] [--reps N] (see densevm bench --help).
bench: $(BUILD)/densevm $(MICRO_GUEST)
	@scripts/deps.sh gnuplot-nox
	@$(BUILD)/densevm bench default --quick $(BENCH_ARGS)
	@$(BUILD)/densevm bench density --quick $(BENCH_ARGS)

# `make bench-real`: the `real` scenario (8 VMs replaying 4 captured Linux
# boots), every arm, short form; captures the images first when they are
# missing (`make images`, cached).  Results in build/results/bench-real/.
BENCH_REAL_IMAGES := $(foreach i,0 1 2 3,$(IMAGES_DIR)/boot$(i)/manifest.json)
.PHONY: bench-real
bench-real: $(BUILD)/densevm $(MICRO_GUEST)
	@scripts/deps.sh gnuplot-nox
	@for f in $(BENCH_REAL_IMAGES); do [ -f $$f ] || { $(MAKE) --no-print-directory images || exit 1; break; }; done
	@$(BUILD)/densevm bench real --quick $(BENCH_ARGS)

# the micro-benchmarks (hashing, merges, balloon, hv, policy, QEMU baselines)
bench-micro: $(BENCH_PROGS) $(BUILD)/densevm $(MICRO_GUEST) $(LINUX_IMAGE_STAMP) | bench-deps
	@mkdir -p $(BUILD)/results
	@for b in $(BENCH_PROGS); do echo "=== $$b"; $$b --out $(BUILD)/results --guest $(MICRO_GUEST) || exit 1; done
	@echo "=== baseline: QEMU host memory per VM"
	@bench/qemu_mem.sh $(BUILD)/results $(LINUX_DIR) 3
	@echo "=== baseline: QEMU virtio-balloon" && bench/qemu_balloon.sh $(BUILD)/results $(LINUX_DIR) 3
