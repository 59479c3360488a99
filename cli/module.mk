# cli: the densevm command.  Everything but main() is libcli.a, so that
# unit tests can exercise spec and config parsing directly.
cli_SRCS := $(filter-out cli/main.c,$(wildcard cli/*.c))
cli_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(cli_SRCS))
$(BUILD)/libcli.a: $(cli_OBJS)
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^
HOST_LIBS += $(BUILD)/libcli.a

$(BUILD)/densevm: $(BUILD)/cli/main.o $(HOST_LIBS) $(MICRO_GUEST)
	$(CC) $(LDFLAGS) -o $@ $(BUILD)/cli/main.o -Wl,--start-group $(HOST_LIBS) -Wl,--end-group $(LDLIBS)
