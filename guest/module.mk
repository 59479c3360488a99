# guest: the micro guest (freestanding, static ELF linked at 0x200000).
MICRO_GUEST := $(BUILD)/guest/microguest.elf
