/*
 * The kagami device (vmm/dev_platform.c) against abi/kagami_platform.h:
 * identity and version, the version 2 ports (MODE, IDLE) and the extent of
 * the port range, read and written through the PIO bus of a real VM; then
 * a guest that reads them from ring 3 (through the TSS I/O bitmap). Skips
 * without /dev/kvm, fails under CI=true.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "vm_fixture.h"
#include "vmm/pvh.h"
#include "abi/kagami_platform.h"

#define RDTSC "build/guests/rdtsc.elf"

static void create(struct vm_run *r, bool deterministic)
{
	struct vm_config cfg;
	struct kg_err e;
	vm_run_config(r, &cfg, 32ull << 20, 1, HELLO, NULL);
	cfg.deterministic = deterministic;
	if (vm_create(&r->vm, &cfg, &e) < 0)
		fail_msg("vm_create: %s", e.msg);
}

static uint32_t port_read(struct vm *vm, uint16_t port)
{
	const struct bus_range *b = bus_find(&vm->pio, port, 4);
	assert_non_null(b);
	assert_string_equal(b->name, "kagami-device");
	uint32_t v;
	b->ops->read(b->opaque, port - b->base, &v, 4);
	return v;
}

static void port_write(struct vm *vm, uint16_t port, uint32_t v)
{
	const struct bus_range *b = bus_find(&vm->pio, port, 4);
	assert_non_null(b);
	b->ops->write(b->opaque, port - b->base, &v, 4);
}

static void test_identity_and_range(void **state)
{
	(void)state;
	if (!kvm_or_skip())
		skip();
	struct vm_run *r = calloc(1, sizeof(*r));
	create(r, false);
	assert_int_equal(KAGAMI_PLATFORM_VERSION, 3);
	assert_int_equal(port_read(&r->vm, KAGAMI_PORT_MAGIC),
			 KAGAMI_DEVICE_MAGIC);
	assert_int_equal(port_read(&r->vm, KAGAMI_PORT_VERSION), 3);
	assert_int_equal(KAGAMI_PORT_MODE, 0xf00);
	assert_int_equal(KAGAMI_PORT_IDLE, 0xf04);
	assert_int_equal(port_read(&r->vm, KAGAMI_PORT_MODE), 0);
	/* 0xee0-0xf07 and not a port more. */
	assert_non_null(bus_find(&r->vm.pio, 0xee0, 1));
	assert_non_null(bus_find(&r->vm.pio, 0xf07, 1));
	assert_null(bus_find(&r->vm.pio, 0xedf, 1));
	assert_null(bus_find(&r->vm.pio, 0xf08, 1));
	vm_destroy(&r->vm);
	free(r);
}

static void test_mode_deterministic(void **state)
{
	(void)state;
	if (!kvm_or_skip())
		skip();
	struct vm_run *r = calloc(1, sizeof(*r));
	create(r, true);
	assert_int_equal(port_read(&r->vm, KAGAMI_PORT_MODE),
			 KAGAMI_MODE_DETERMINISTIC);
	vm_destroy(&r->vm);
	free(r);
}

/* A gate that records what IDLE asks of it. */
struct idle_probe {
	struct gate_ops ops;
	uint64_t last_ns;
	unsigned calls;
};

static struct idle_probe *probe_of(struct gate *g)
{
	return (struct idle_probe *)(void *)g->ops;
}

static void probe_idle(struct gate *g, uint64_t max_ns)
{
	struct idle_probe *p = probe_of(g);
	p->last_ns = max_ns;
	p->calls++;
}

static void test_idle_reaches_gate_bounded(void **state)
{
	(void)state;
	if (!kvm_or_skip())
		skip();
	struct vm_run *r = calloc(1, sizeof(*r));
	create(r, false);
	/* The pass-through gate returns at once, whatever is asked. */
	port_write(&r->vm, KAGAMI_PORT_IDLE, UINT32_MAX);

	struct idle_probe p = { .ops = *r->vm.gate.ops };
	p.ops.idle = probe_idle;
	const struct gate_ops *saved = r->vm.gate.ops;
	r->vm.gate.ops = &p.ops;
	port_write(&r->vm, KAGAMI_PORT_IDLE, 250);
	assert_int_equal(p.calls, 1);
	assert_int_equal(p.last_ns, 250000);
	port_write(&r->vm, KAGAMI_PORT_IDLE, 0);
	assert_int_equal(p.last_ns, 0);
	port_write(&r->vm, KAGAMI_PORT_IDLE, KAGAMI_IDLE_MAX_US + 1);
	assert_int_equal(p.last_ns, 10000000ull);
	port_write(&r->vm, KAGAMI_PORT_IDLE, UINT32_MAX);
	assert_int_equal(p.last_ns, 10000000ull);
	assert_int_equal(p.calls, 4);
	/* Reading IDLE (write-only) does not idle. */
	assert_int_equal(port_read(&r->vm, KAGAMI_PORT_IDLE), 0xffffffffu);
	assert_int_equal(p.calls, 4);
	r->vm.gate.ops = saved;
	vm_destroy(&r->vm);
	free(r);
}

/* The SDK in ring 3 reads VERSION and MODE (a #GP, reported as a crash,
 * if the TSS bitmap did not grant them). */
static void run_rdtsc_guest(bool deterministic, const char *want)
{
	if (!kvm_or_skip())
		skip();
	struct vm_run *r = calloc(1, sizeof(*r));
	struct vm_config cfg;
	struct kg_err e;
	vm_run_config(r, &cfg, 32ull << 20, 1, RDTSC, "rounds=2");
	cfg.deterministic = deterministic;
	if (vm_create(&r->vm, &cfg, &e) < 0)
		fail_msg("vm_create: %s", e.msg);
	vm_run_start(r);
	pthread_join(r->thread, NULL);
	char *out = vm_run_output(r);
	assert_int_equal(r->stop.reason, VM_STOP_EXIT);
	assert_int_equal(r->stop.exit_code, 0);
	if (!strstr(out, want))
		fail_msg("console lacks \"%s\": %.200s", want, out);
	vm_destroy(&r->vm);
	free(out);
	free(r);
}

static void test_guest_sees_version_3(void **state)
{
	(void)state;
	run_rdtsc_guest(false, "rdtsc: platform=3 deterministic=0 rounds=2\n");
}

static void test_guest_sees_deterministic(void **state)
{
	(void)state;
	run_rdtsc_guest(true, "rdtsc: platform=3 deterministic=1 rounds=2\n");
}

/* Version 3: a VM with an in-kernel irqchip has ACPI tables at
 * KAGAMI_ACPI_GPA, named in start_info, and the sleep control register
 * powers it off; a deterministic VM has neither. */
static void test_acpi_tables(void **state)
{
	(void)state;
	if (!kvm_or_skip())
		skip();
	struct vm_run *r = calloc(1, sizeof(*r));
	create(r, false);
	const uint8_t *rsdp = guest_mem_ptr(&r->vm.mem, KAGAMI_ACPI_GPA, 36);
	assert_memory_equal(rsdp, "RSD PTR ", 8);
	uint8_t sum = 0;
	for (int i = 0; i < 36; i++)
		sum = (uint8_t)(sum + rsdp[i]);
	assert_int_equal(sum, 0);
	const struct hvm_start_info *si =
		guest_mem_ptr(&r->vm.mem, KAGAMI_START_INFO_GPA, sizeof(*si));
	assert_int_equal(si->rsdp_paddr, KAGAMI_ACPI_GPA);
	const struct bus_range *b =
		bus_find(&r->vm.pio, KAGAMI_ACPI_SLEEP_CONTROL_PORT, 1);
	assert_non_null(b);
	uint8_t v = 0x34; /* SLP_EN | SLP_TYP 5 */
	b->ops->write(b->opaque, KAGAMI_ACPI_SLEEP_CONTROL_PORT - b->base, &v, 1);
	assert_int_equal(r->vm.stop.reason, VM_STOP_POWEROFF);
	vm_destroy(&r->vm);
	free(r);
	r = calloc(1, sizeof(*r));
	create(r, true);
	rsdp = guest_mem_ptr(&r->vm.mem, KAGAMI_ACPI_GPA, 8);
	assert_memory_not_equal(rsdp, "RSD PTR ", 8);
	vm_destroy(&r->vm);
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_identity_and_range),
		cmocka_unit_test(test_mode_deterministic),
		cmocka_unit_test(test_idle_reaches_gate_bounded),
		cmocka_unit_test(test_guest_sees_version_3),
		cmocka_unit_test(test_acpi_tables),
		cmocka_unit_test(test_guest_sees_deterministic),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
