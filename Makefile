# kagami — build, test and demo. `make` builds build/kagami and the guest
# images; `make test` runs the whole suite; `make demo` runs the main job.
#
# The host code is built in layers, each a static library, once per flavour
# (rel: -O2 for build/kagami; asan: ASan+UBSan for the binary the tests run
# and for the unit tests). A layer may use only the layers listed in its
# LAYER_DEPS, and a unit test links only the layers it names, so a call
# across the layering is a link error, not a silent dependency. Objects
# carry -MMD dependency files: `make -j` rebuilds exactly what changed.
CC ?= cc
BUILD := build
VERSION := 0.1.0

WARN := -Wall -Wextra -Wshadow -Wmissing-prototypes -Werror
HOST_CFLAGS := -std=c11 -D_GNU_SOURCE -pthread -g $(WARN) -I. -MMD -MP \
	-DKAGAMI_VERSION='"$(VERSION)"' -I/usr/include/x86_64-linux-gnu
HOST_LIBS := -pthread -lunwind -lcjson -llz4 -lxxhash -lcrypto -libverbs -lrdmacm
SAN := -fsanitize=address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=undefined
CFLAGS_rel := -O2
CFLAGS_asan := -O1 $(SAN)

# Layers, bottom first. LAYER_DEPS lists every layer below that one may use
# (transitively closed); link order puts a layer before its dependencies.
LAYERS := base vmm transport kv check precopy checkpoint lease storage record replay pipeline
LAYER_DIR_base := base
LAYER_DIR_vmm := vmm
LAYER_DIR_transport := transport
LAYER_DIR_kv := kv
LAYER_DIR_check := check
LAYER_DIR_precopy := ft/precopy
LAYER_DIR_checkpoint := ft/checkpoint
LAYER_DIR_lease := ft/lease
LAYER_DIR_storage := ft/storage
LAYER_DIR_record := ft/record
LAYER_DIR_replay := ft/replay
LAYER_DIR_pipeline := ft/pipeline
LAYER_DEPS_base :=
LAYER_DEPS_vmm := base
LAYER_DEPS_transport := base
LAYER_DEPS_kv := base
LAYER_DEPS_check := base
LAYER_DEPS_precopy := base
LAYER_DEPS_checkpoint := precopy vmm base
LAYER_DEPS_lease := transport base
LAYER_DEPS_storage := precopy vmm base
LAYER_DEPS_record := checkpoint precopy vmm base
LAYER_DEPS_replay := record checkpoint precopy vmm base
LAYER_DEPS_pipeline := replay record storage lease checkpoint precopy transport vmm base

LINK_ORDER := pipeline replay record storage lease checkpoint precopy check kv transport vmm base
# The libraries for a set of layers with their dependencies, in link order.
layer_libs = $(foreach l,$(filter $(sort $(1) $(foreach x,$(1),$(LAYER_DEPS_$(x)))),$(LINK_ORDER)),$(BUILD)/$(2)/lib/lib$(l).a)

CLI_SRC := $(wildcard cli/*.c)

GUEST_CFLAGS := -std=c11 -ffreestanding -fno-pie -fno-pic -nostdlib \
	-mno-red-zone -fno-stack-protector -fno-asynchronous-unwind-tables \
	-fcf-protection=none -O2 -g $(WARN) -I. -MMD -MP
GUEST_LDFLAGS := -static -no-pie -nostdlib -Wl,-T,guests/sdk/guest.ld \
	-Wl,--build-id=none -Wl,-z,noexecstack -Wl,-z,max-page-size=4096 -Wl,--no-warn-rwx-segments
SDK_OBJ := $(patsubst %,$(BUILD)/guests/obj/%.o,$(basename $(wildcard guests/sdk/*.c)) guests/sdk/entry)
GUESTS := hello memstress crashme kvstore blktest hostile rdtsc ticks
GUEST_ELFS := $(GUESTS:%=$(BUILD)/guests/%.elf)

# Unit tests: the layers each one tests (its link line holds nothing else).
UNIT_LAYERS_test_acpi := vmm
UNIT_LAYERS_test_budget := checkpoint
UNIT_LAYERS_test_beatlink := pipeline
UNIT_LAYERS_test_check := check
UNIT_LAYERS_test_cpuid := vmm
UNIT_LAYERS_test_cpuid_state := checkpoint
UNIT_LAYERS_test_cpu_state := checkpoint
UNIT_LAYERS_test_detector := pipeline
UNIT_LAYERS_test_devspec := vmm
UNIT_LAYERS_test_disk_switch := vmm
UNIT_LAYERS_test_elf := vmm
UNIT_LAYERS_test_faultpoint := base
UNIT_LAYERS_test_history_check := base
UNIT_LAYERS_test_epoch := checkpoint
UNIT_LAYERS_test_epoch_live := checkpoint
UNIT_LAYERS_test_kv := kv
UNIT_LAYERS_test_lease := lease
UNIT_LAYERS_test_linuxboot := vmm
UNIT_LAYERS_test_mem_lazy := vmm
UNIT_LAYERS_test_misc := vmm
UNIT_LAYERS_test_outbuf := vmm
UNIT_LAYERS_test_page_codec := checkpoint
UNIT_LAYERS_test_parse := base
UNIT_LAYERS_test_pic := vmm
UNIT_LAYERS_test_pit := vmm
UNIT_LAYERS_test_precopy := precopy
UNIT_LAYERS_test_platform := vmm
UNIT_LAYERS_test_pvh := vmm
UNIT_LAYERS_test_rlink := pipeline
UNIT_LAYERS_test_rr_log := record
UNIT_LAYERS_test_rtc := vmm
UNIT_LAYERS_test_size := vmm
UNIT_LAYERS_test_state := checkpoint
UNIT_LAYERS_test_storage := storage
UNIT_LAYERS_test_stream := checkpoint
UNIT_LAYERS_test_transport := transport
UNIT_LAYERS_test_transport_rdma := transport
UNIT_LAYERS_test_uart := vmm
UNIT_LAYERS_test_verdict := pipeline
UNIT_LAYERS_test_virtq := vmm
UNIT_LAYERS_test_vm := vmm
# Objects outside the layers that a unit test links besides them.
UNIT_OBJS_test_history_check := $(BUILD)/asan/tests/tools/history.o
UNIT_NAMES := $(patsubst tests/unit/%.c,%,$(wildcard tests/unit/test_*.c))
UNIT_TESTS := $(UNIT_NAMES:%=$(BUILD)/tests/%)

BENCH_BINS := $(BUILD)/bench/memstress_host $(BUILD)/guests/exitbench.elf \
	$(BUILD)/bench/codec $(BUILD)/bench/checkpoint $(BUILD)/bench/tsc_khz \
	$(BUILD)/bench/tcpbw

.PHONY: all test demo bench bench-build clean deps unit guests
all: $(BUILD)/kagami $(GUEST_ELFS)
guests: $(GUEST_ELFS)

# --- objects and layer libraries, per flavour ---
define flavour
$(BUILD)/$(1)/%.o: %.c
	@mkdir -p $$(@D)
	$$(CC) $$(HOST_CFLAGS) $$(CFLAGS_$(1)) -c -o $$@ $$<
endef
$(foreach f,rel asan,$(eval $(call flavour,$(f))))

define layer
$(BUILD)/$(2)/lib/lib$(1).a: $(patsubst %.c,$(BUILD)/$(2)/%.o,$(wildcard $(LAYER_DIR_$(1))/*.c))
	@mkdir -p $$(@D)
	rm -f $$@
	ar rcs $$@ $$^
endef
$(foreach f,rel asan,$(foreach l,$(LAYERS),$(eval $(call layer,$(l),$(f)))))

ALL_LIBS_rel := $(call layer_libs,$(LAYERS),rel)
ALL_LIBS_asan := $(call layer_libs,$(LAYERS),asan)

$(BUILD)/kagami: $(CLI_SRC:%.c=$(BUILD)/rel/%.o) $(ALL_LIBS_rel)
	$(CC) -o $@ $^ $(HOST_LIBS)

# The binary the tests run: the same sources under ASan and UBSan.
$(BUILD)/asan/kagami: $(CLI_SRC:%.c=$(BUILD)/asan/%.o) $(ALL_LIBS_asan)
	$(CC) $(SAN) -o $@ $^ $(HOST_LIBS)

define unit
$(BUILD)/tests/$(1): $(BUILD)/asan/tests/unit/$(1).o $(UNIT_OBJS_$(1)) $(call layer_libs,$(UNIT_LAYERS_$(1)),asan)
	@mkdir -p $$(@D)
	$$(CC) $$(SAN) -o $$@ $$^ -lcmocka $$(HOST_LIBS)
endef
$(foreach t,$(UNIT_NAMES),$(eval $(call unit,$(t))))

# --- guests ---
$(BUILD)/guests/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(GUEST_CFLAGS) -c -o $@ $<

$(BUILD)/guests/obj/%.o: %.S
	@mkdir -p $(@D)
	$(CC) $(GUEST_CFLAGS) -c -o $@ $<

$(BUILD)/guests/%.elf: $(BUILD)/guests/obj/guests/%.o $(SDK_OBJ) guests/sdk/guest.ld
	$(CC) $(GUEST_CFLAGS) $(GUEST_LDFLAGS) -o $@ $(filter %.o,$^)

$(BUILD)/guests/exitbench.elf: $(BUILD)/guests/obj/bench/exitbench.o $(SDK_OBJ) guests/sdk/guest.ld
	$(CC) $(GUEST_CFLAGS) $(GUEST_LDFLAGS) -o $@ $(filter %.o,$^)

# --- test tools ---
# Writes sample streams for tests/integration/50_inspect.sh, and plays a
# hostile source for 81_receive_hostile.sh.
$(BUILD)/tests/mkstream: $(BUILD)/asan/tests/tools/mkstream.o $(call layer_libs,pipeline,asan)
	$(CC) $(SAN) -o $@ $^ $(HOST_LIBS)

# ACPI tables as files, for iasl (tests/integration/22_acpi.sh).
$(BUILD)/tests/acpidump: $(BUILD)/asan/tests/tools/acpidump.o $(call layer_libs,vmm,asan)
	$(CC) $(SAN) -o $@ $^ $(HOST_LIBS)

# The host half of guests/disksum.h (tests/integration/85_storage_migrate.sh).
$(BUILD)/tests/disksum: $(BUILD)/rel/tests/tools/disksum.o
	@mkdir -p $(@D)
	$(CC) -o $@ $^

# A redis client that records a history, and the history's checker, which
# share nothing with kagami kv/check (tests/integration/46_history.sh).
$(BUILD)/tests/redis-history: $(BUILD)/asan/tests/tools/redis_history.o \
		$(BUILD)/asan/tests/tools/history.o $(call layer_libs,base,asan)
	@mkdir -p $(@D)
	$(CC) $(SAN) -o $@ $^ -lhiredis $(HOST_LIBS)

$(BUILD)/tests/history-check: $(BUILD)/asan/tests/tools/history_check.o \
		$(BUILD)/asan/tests/tools/history.o $(call layer_libs,base,asan)
	@mkdir -p $(@D)
	$(CC) $(SAN) -o $@ $^ $(HOST_LIBS)

# --- benchmarks ---
$(BUILD)/bench/memstress_host: $(BUILD)/rel/bench/memstress_host.o
	@mkdir -p $(@D)
	$(CC) -o $@ $^

$(BUILD)/bench/tsc_khz: $(BUILD)/rel/bench/tsc_khz.o
	@mkdir -p $(@D)
	$(CC) -o $@ $^

$(BUILD)/bench/tcpbw: $(BUILD)/rel/bench/tcpbw.o
	@mkdir -p $(@D)
	$(CC) -o $@ $^

# The page codec alone (no KVM, no guest): bench/codec.c.
$(BUILD)/bench/codec: $(BUILD)/rel/bench/codec.o $(call layer_libs,checkpoint,rel)
	@mkdir -p $(@D)
	$(CC) -o $@ $^ $(HOST_LIBS)

$(BUILD)/bench/checkpoint: $(BUILD)/rel/bench/checkpoint.o $(call layer_libs,checkpoint,rel)
	@mkdir -p $(@D)
	$(CC) -o $@ $^ $(HOST_LIBS)

deps:
	@scripts/install-deps --check >/dev/null 2>&1 || scripts/install-deps

unit: $(UNIT_TESTS)

# Every bench binary is built by `make test` too, so a bench that stops
# linking turns the suite red.
test: deps
	$(MAKE) all $(BUILD)/asan/kagami $(UNIT_TESTS) $(BUILD)/tests/mkstream \
		$(BUILD)/tests/disksum $(BUILD)/tests/acpidump \
		$(BUILD)/tests/redis-history $(BUILD)/tests/history-check $(BENCH_BINS)
	tests/run.sh

demo: deps
	$(MAKE) all
	scripts/demo.sh

bench-build: all $(BENCH_BINS) $(BUILD)/tests/redis-history $(BUILD)/tests/history-check

bench: bench-build
	bench/run.sh
	bench/kvstore.sh
	bench/migration.sh
	bench/replication.sh
	bench/record.sh
	bench/linux.sh
	bench/linux_modes.sh
	$(BUILD)/bench/codec
	$(BUILD)/bench/checkpoint 3

.PHONY: bench-codec
bench-codec: $(BUILD)/bench/codec
	$(BUILD)/bench/codec

clean:
	rm -rf $(BUILD)

# libFuzzer over the virtqueue parser and the page codec (clang); not part
# of `make test`. `make fuzz` runs each for FUZZ_SECONDS.
FUZZ_SECONDS ?= 60
FUZZ_CC := clang -std=c11 -D_GNU_SOURCE -g -O1 $(WARN) -I. -fsanitize=fuzzer,address,undefined
FUZZ_VMM := $(wildcard vmm/*.c base/*.c)
$(BUILD)/fuzz/fuzz_virtq: tests/fuzz/fuzz_virtq.c $(FUZZ_VMM)
	@mkdir -p $(@D)
	$(FUZZ_CC) -o $@ $^ -pthread

$(BUILD)/fuzz/fuzz_page_codec: tests/fuzz/fuzz_page_codec.c ft/checkpoint/page_codec.c $(FUZZ_VMM)
	@mkdir -p $(@D)
	$(FUZZ_CC) -o $@ $^ -pthread -llz4 -lxxhash

.PHONY: fuzz
fuzz: $(BUILD)/fuzz/fuzz_virtq $(BUILD)/fuzz/fuzz_page_codec
	@mkdir -p $(BUILD)/fuzz/corpus $(BUILD)/fuzz/corpus_page_codec
	$(BUILD)/fuzz/fuzz_virtq -max_total_time=$(FUZZ_SECONDS) -max_len=70000 \
		$(BUILD)/fuzz/corpus
	$(BUILD)/fuzz/fuzz_page_codec -max_total_time=$(FUZZ_SECONDS) \
		-max_len=70000 $(BUILD)/fuzz/corpus_page_codec

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
