# bench: benchmarks (they measure and report; they assert nothing).
BENCH_PROGS := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/bench_*.c))

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(HOST_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< -Wl,--start-group $(HOST_LIBS) -Wl,--end-group $(LDLIBS)

bench: $(BENCH_PROGS) $(BUILD)/densevm $(MICRO_GUEST)
	@mkdir -p $(BUILD)/results
	@for b in $(BENCH_PROGS); do echo "=== $$b"; $$b --out $(BUILD)/results --guest $(MICRO_GUEST) || exit 1; done
