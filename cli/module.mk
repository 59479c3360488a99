# cli: the densevm command (run, ctl, stat), linked against every library.
cli_SRCS := $(wildcard cli/*.c)
cli_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(cli_SRCS))
$(BUILD)/densevm: $(cli_OBJS) $(HOST_LIBS) $(MICRO_GUEST)
	$(CC) $(LDFLAGS) -o $@ $(cli_OBJS) -Wl,--start-group $(HOST_LIBS) -Wl,--end-group $(LDLIBS)
