# kagami — build, test and demo. `make` builds build/kagami and the guest
# images; `make test` runs the whole suite; `make demo` runs the main job.
CC ?= cc
BUILD := build
VERSION := 0.1.0

WARN := -Wall -Wextra -Wshadow -Wmissing-prototypes -Werror
HOST_CFLAGS := -std=c11 -D_GNU_SOURCE -pthread -g $(WARN) \
	-DKAGAMI_VERSION='"$(VERSION)"' -I/usr/include/x86_64-linux-gnu
HOST_LIBS := -pthread -lunwind -lcjson -llz4 -lxxhash -lcrypto -libverbs -lrdmacm
SAN := -fsanitize=address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=undefined

VMM_SRC := $(wildcard vmm/*.c)
FT_SRC := $(wildcard ft/*/*.c)
TRANSPORT_SRC := $(wildcard transport/*.c)
CLI_SRC := $(wildcard cli/*.c)
HOST_HDR := $(wildcard vmm/*.h cli/*.h ft/*/*.h transport/*.h guests/sdk/kagami_platform.h)

GUEST_CFLAGS := -std=c11 -ffreestanding -fno-pie -fno-pic -nostdlib \
	-mno-red-zone -fno-stack-protector -fno-asynchronous-unwind-tables \
	-fcf-protection=none -O2 -g $(WARN) -Iguests
GUEST_LDFLAGS := -static -no-pie -nostdlib -Wl,-T,guests/sdk/guest.ld \
	-Wl,--build-id=none -Wl,-z,noexecstack -Wl,-z,max-page-size=4096 -Wl,--no-warn-rwx-segments
SDK_SRC := $(wildcard guests/sdk/*.c) guests/sdk/entry.S
SDK_HDR := $(wildcard guests/sdk/*.h guests/*.h) guests/sdk/guest.ld
GUESTS := hello memstress crashme kvstore blktest hostile rdtsc ticks
GUEST_ELFS := $(GUESTS:%=$(BUILD)/guests/%.elf)

UNIT_TESTS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))

.PHONY: all test demo bench clean deps unit guests
all: $(BUILD)/kagami $(GUEST_ELFS)
guests: $(GUEST_ELFS)

$(BUILD)/kagami: $(VMM_SRC) $(FT_SRC) $(TRANSPORT_SRC) $(CLI_SRC) $(HOST_HDR)
	@mkdir -p $(@D)
	$(CC) $(HOST_CFLAGS) -O2 -o $@ $(VMM_SRC) $(FT_SRC) $(TRANSPORT_SRC) $(CLI_SRC) $(HOST_LIBS)

# The binary the tests run: the same sources under ASan and UBSan.
$(BUILD)/asan/kagami: $(VMM_SRC) $(FT_SRC) $(TRANSPORT_SRC) $(CLI_SRC) $(HOST_HDR)
	@mkdir -p $(@D)
	$(CC) $(HOST_CFLAGS) -O1 $(SAN) -o $@ $(VMM_SRC) $(FT_SRC) $(TRANSPORT_SRC) $(CLI_SRC) $(HOST_LIBS)

$(BUILD)/guests/%.elf: guests/%.c $(SDK_SRC) $(SDK_HDR)
	@mkdir -p $(@D)
	$(CC) $(GUEST_CFLAGS) $(GUEST_LDFLAGS) -o $@ $< $(SDK_SRC)

# Unit tests link the pure vmm/ modules they test (see tests/unit/*.c).
$(BUILD)/tests/test_%: tests/unit/test_%.c $(VMM_SRC) $(FT_SRC) $(TRANSPORT_SRC) $(HOST_HDR)
	@mkdir -p $(@D)
	$(CC) $(HOST_CFLAGS) -O1 $(SAN) -o $@ $< \
		$(filter-out vmm/crash.c,$(VMM_SRC)) $(FT_SRC) $(TRANSPORT_SRC) -lcmocka $(HOST_LIBS)

# Writes sample streams for tests/integration/50_inspect.sh (nothing else
# writes snapshots yet).
STREAM_SRC := $(wildcard ft/checkpoint/stream*.c) ft/checkpoint/crc32c.c
$(BUILD)/tests/mkstream: tests/tools/mkstream.c $(STREAM_SRC) vmm/err.c $(HOST_HDR)
	@mkdir -p $(@D)
	$(CC) $(HOST_CFLAGS) -O1 $(SAN) -o $@ $< $(STREAM_SRC) vmm/err.c $(HOST_LIBS)

# The host half of guests/disksum.h (tests/integration/85_storage_migrate.sh).
$(BUILD)/tests/disksum: tests/tools/disksum.c guests/disksum.h
	@mkdir -p $(@D)
	$(CC) $(HOST_CFLAGS) -O2 -o $@ $<

$(BUILD)/bench/memstress_host: bench/memstress_host.c guests/memstress_core.h
	@mkdir -p $(@D)
	$(CC) -std=c11 -D_GNU_SOURCE -O2 $(WARN) -Iguests -o $@ $<

$(BUILD)/bench/tsc_khz: bench/tsc_khz.c
	@mkdir -p $(@D)
	$(CC) -std=c11 -D_GNU_SOURCE -O2 $(WARN) -o $@ $<

$(BUILD)/bench/tcpbw: bench/tcpbw.c
	@mkdir -p $(@D)
	$(CC) -std=c11 -D_GNU_SOURCE -O2 $(WARN) -o $@ $<

$(BUILD)/guests/exitbench.elf: bench/exitbench.c $(SDK_SRC) $(SDK_HDR)
	@mkdir -p $(@D)
	$(CC) $(GUEST_CFLAGS) $(GUEST_LDFLAGS) -o $@ $< $(SDK_SRC)

deps:
	@scripts/install-deps --check >/dev/null 2>&1 || scripts/install-deps

unit: $(UNIT_TESTS)

test: deps
	$(MAKE) all $(BUILD)/asan/kagami $(UNIT_TESTS) $(BUILD)/tests/mkstream \
		$(BUILD)/tests/disksum
	tests/run.sh

demo: deps
	$(MAKE) all
	scripts/demo.sh

bench: all $(BUILD)/bench/memstress_host $(BUILD)/guests/exitbench.elf $(BUILD)/bench/codec $(BUILD)/bench/checkpoint $(BUILD)/bench/tsc_khz $(BUILD)/bench/tcpbw
	bench/run.sh
	bench/kvstore.sh
	bench/migration.sh
	bench/replication.sh
	bench/record.sh
	$(BUILD)/bench/codec
	$(BUILD)/bench/checkpoint 3

# The page codec alone (no KVM, no guest): bench/codec.c.
.PHONY: bench-codec
bench-codec: $(BUILD)/bench/codec
	$(BUILD)/bench/codec

$(BUILD)/bench/codec: bench/codec.c ft/checkpoint/page_codec.c vmm/mem.c vmm/err.c vmm/kvm.c $(HOST_HDR)
	@mkdir -p $(@D)
	$(CC) $(HOST_CFLAGS) -O2 -o $@ $(filter %.c,$^) -llz4 -lxxhash

clean:
	rm -rf $(BUILD)

# libFuzzer over the virtqueue parser and the page codec (clang); not part
# of `make test`. `make fuzz` runs each for FUZZ_SECONDS.
FUZZ_SECONDS ?= 60
FUZZ_CC := clang -std=c11 -D_GNU_SOURCE -g -O1 $(WARN) -fsanitize=fuzzer,address,undefined
$(BUILD)/fuzz/fuzz_virtq: tests/fuzz/fuzz_virtq.c vmm/virtq.c vmm/gate.c vmm/mem.c vmm/err.c vmm/kvm.c $(HOST_HDR)
	@mkdir -p $(@D)
	$(FUZZ_CC) -o $@ $(filter %.c,$^)

$(BUILD)/fuzz/fuzz_page_codec: tests/fuzz/fuzz_page_codec.c ft/checkpoint/page_codec.c vmm/mem.c vmm/err.c vmm/kvm.c $(HOST_HDR)
	@mkdir -p $(@D)
	$(FUZZ_CC) -o $@ $(filter %.c,$^) -llz4 -lxxhash

.PHONY: fuzz
fuzz: $(BUILD)/fuzz/fuzz_virtq $(BUILD)/fuzz/fuzz_page_codec
	@mkdir -p $(BUILD)/fuzz/corpus $(BUILD)/fuzz/corpus_page_codec
	$(BUILD)/fuzz/fuzz_virtq -max_total_time=$(FUZZ_SECONDS) -max_len=70000 \
		$(BUILD)/fuzz/corpus
	$(BUILD)/fuzz/fuzz_page_codec -max_total_time=$(FUZZ_SECONDS) \
		-max_len=70000 $(BUILD)/fuzz/corpus_page_codec

$(BUILD)/bench/checkpoint: bench/checkpoint.c $(filter-out vmm/crash.c,$(VMM_SRC)) $(FT_SRC) $(HOST_HDR)
	@mkdir -p $(@D)
	$(CC) $(HOST_CFLAGS) -O2 -o $@ bench/checkpoint.c \
		$(filter-out vmm/crash.c,$(VMM_SRC)) $(FT_SRC) $(HOST_LIBS)
