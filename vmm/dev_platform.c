/*
 * Platform ports: isa-debug-exit (0xf4), PC reset control (0xcf9) and the
 * kagami device (0xee0: identity, clock, power, fault report, console,
 * mode, idle).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "devices.h"
#include "acpi.h"
#include "vm.h"
#include "abi/kagami_platform.h"
#include "base/log.h"

struct dev_platform {
	pthread_mutex_t lock;
	uint32_t clock_hi_latch;
	uint8_t reset_reg; /* 0xcf9 */
	struct vm *vm;
};

static uint32_t le32(const void *data, unsigned size)
{
	uint32_t v = 0;
	memcpy(&v, data, size < 4 ? size : 4);
	return v;
}

static void put_le32(void *data, unsigned size, uint32_t v)
{
	memset(data, 0, size);
	memcpy(data, &v, size < 4 ? size : 4);
}

/* --- isa-debug-exit --- */

static void exit_read(void *opaque, uint64_t off, void *data, unsigned size)
{
	(void)opaque, (void)off;
	memset(data, 0xff, size);
}

static void exit_write(void *opaque, uint64_t off, const void *data,
		       unsigned size)
{
	struct dev_platform *d = opaque;
	(void)off;
	vm_request_stop(d->vm, VM_STOP_EXIT, (int)(le32(data, size) & 0xff),
			NULL);
}

static const struct bus_dev_ops exit_ops = { exit_read, exit_write, NULL };

/* --- 0xcf9 reset control --- */

static void reset_read(void *opaque, uint64_t off, void *data, unsigned size)
{
	struct dev_platform *d = opaque;
	(void)off;
	pthread_mutex_lock(&d->lock);
	put_le32(data, size, d->reset_reg);
	pthread_mutex_unlock(&d->lock);
}

static void reset_write(void *opaque, uint64_t off, const void *data,
			unsigned size)
{
	struct dev_platform *d = opaque;
	uint8_t v = (uint8_t)le32(data, size);
	(void)off;
	pthread_mutex_lock(&d->lock);
	d->reset_reg = v & 0x0e;
	pthread_mutex_unlock(&d->lock);
	if (v & 0x04) /* RST_CPU */
		vm_request_stop(d->vm, VM_STOP_RESET, 0, NULL);
}

static const struct bus_dev_ops reset_ops = { reset_read, reset_write, NULL };

/* --- ACPI sleep registers (hardware-reduced FADT) --- */

static void sleep_read(void *opaque, uint64_t off, void *data, unsigned size)
{
	(void)opaque, (void)off;
	put_le32(data, size, 0);
}

/* Linux writes WAK_STS to the status register, then SLP_TYP | SLP_EN to
 * the control register; S5 (\_S5 in the DSDT) is power-off. */
static void sleep_write(void *opaque, uint64_t off, const void *data,
			unsigned size)
{
	struct dev_platform *d = opaque;
	uint32_t v = le32(data, size);
	if (off == 0 && (v & ACPI_SLEEP_EN) &&
	    ((v & ACPI_SLEEP_TYP_MASK) >> ACPI_SLEEP_TYP_SHIFT) ==
		    ACPI_SLEEP_TYP_S5)
		vm_request_stop(d->vm, VM_STOP_POWEROFF, 0, NULL);
}

static const struct bus_dev_ops sleep_ops = { sleep_read, sleep_write, NULL };

/* --- the kagami device --- */

static void kdev_read(void *opaque, uint64_t off, void *data, unsigned size)
{
	struct dev_platform *d = opaque;
	uint32_t v = 0xffffffffu;
	switch (KAGAMI_PORT_BASE + off) {
	case KAGAMI_PORT_MAGIC:
		v = KAGAMI_DEVICE_MAGIC;
		break;
	case KAGAMI_PORT_VERSION:
		v = KAGAMI_PLATFORM_VERSION;
		break;
	case KAGAMI_PORT_CLOCK_LO: {
		uint64_t ns = gate_time_ns(&d->vm->gate);
		pthread_mutex_lock(&d->lock);
		d->clock_hi_latch = (uint32_t)(ns >> 32);
		pthread_mutex_unlock(&d->lock);
		v = (uint32_t)ns;
		break;
	}
	case KAGAMI_PORT_CLOCK_HI:
		pthread_mutex_lock(&d->lock);
		v = d->clock_hi_latch;
		pthread_mutex_unlock(&d->lock);
		break;
	case KAGAMI_PORT_BOOT_COUNT:
		v = d->vm->boot_count;
		break;
	case KAGAMI_PORT_MODE:
		v = d->vm->cfg.deterministic ? KAGAMI_MODE_DETERMINISTIC : 0;
		break;
	}
	put_le32(data, size, v);
}

static const char *const vector_names[32] = {
	"#DE divide error", "#DB debug", "NMI", "#BP breakpoint",
	"#OF overflow", "#BR bound range", "#UD invalid opcode",
	"#NM device not available", "#DF double fault", "coprocessor overrun",
	"#TS invalid TSS", "#NP segment not present", "#SS stack fault",
	"#GP general protection", "#PF page fault", "reserved 15",
	"#MF x87 error", "#AC alignment check", "#MC machine check",
	"#XM SIMD error", "#VE virtualization", "#CP control protection",
};

void fault_frame_format(const void *frame, char *buf, size_t size)
{
	struct kagami_fault_frame f;
	memcpy(&f, frame, sizeof(f));
	const char *name = f.vector < 32 && vector_names[f.vector]
				   ? vector_names[f.vector]
				   : "unknown";
	snprintf(buf, size,
		 "guest fault: vector %llu (%s), error code 0x%llx, "
		 "rip=%016llx cr2=%016llx\n"
		 "  rip=%016llx rsp=%016llx rflags=%016llx cs=%04llx ss=%04llx\n"
		 "  rax=%016llx rbx=%016llx rcx=%016llx rdx=%016llx\n"
		 "  rsi=%016llx rdi=%016llx rbp=%016llx r8 =%016llx\n"
		 "  r9 =%016llx r10=%016llx r11=%016llx r12=%016llx\n"
		 "  r13=%016llx r14=%016llx r15=%016llx",
		 f.vector, name, f.error_code, f.rip, f.cr2, f.rip, f.rsp,
		 f.rflags, f.cs, f.ss, f.rax, f.rbx, f.rcx, f.rdx, f.rsi,
		 f.rdi, f.rbp, f.r8, f.r9, f.r10, f.r11, f.r12, f.r13, f.r14,
		 f.r15);
}

static void fault_report(struct dev_platform *d, uint32_t gpa)
{
	const struct kagami_fault_frame *f = guest_mem_ptr(
		&d->vm->mem, gpa, sizeof(struct kagami_fault_frame));
	if (!f || f->magic != KAGAMI_FAULT_MAGIC) {
		vm_request_stop(d->vm, VM_STOP_CRASH, 0,
				"guest fault: report at 0x%x is %s", gpa,
				f ? "malformed (bad magic)"
				  : "outside guest RAM");
		return;
	}
	char msg[1024];
	fault_frame_format(f, msg, sizeof(msg));
	vm_request_stop(d->vm, VM_STOP_CRASH, 0, "%s", msg);
}

static void console_out(struct dev_platform *d, uint32_t gpa)
{
	struct guest_mem *m = &d->vm->mem;
	const struct kagami_console_buf *b = guest_mem_ptr(m, gpa, sizeof(*b));
	uint32_t len = b ? b->len : 0;
	const void *bytes = b ? guest_mem_ptr(m, gpa + sizeof(*b), len) : NULL;
	if (!bytes || len > KAGAMI_CONSOLE_MAX) {
		/* A guest bug, not a host failure: say so once per write. */
		kg_log(KG_LOG_INFO, "console write at 0x%x ignored: buffer "
			"outside guest RAM or longer than %u bytes", gpa,
			KAGAMI_CONSOLE_MAX);
		return;
	}
	dev_uart_output(d->vm->uart, bytes, len);
}

static void kdev_write(void *opaque, uint64_t off, const void *data,
		       unsigned size)
{
	struct dev_platform *d = opaque;
	uint32_t v = le32(data, size);
	switch (KAGAMI_PORT_BASE + off) {
	case KAGAMI_PORT_POWER:
		if (v == KAGAMI_POWER_OFF)
			vm_request_stop(d->vm, VM_STOP_POWEROFF, 0, NULL);
		else if (v == KAGAMI_POWER_RESET)
			vm_request_stop(d->vm, VM_STOP_RESET, 0, NULL);
		break;
	case KAGAMI_PORT_FAULT:
		fault_report(d, v);
		break;
	case KAGAMI_PORT_CONSOLE:
		console_out(d, v);
		break;
	case KAGAMI_PORT_IDLE: {
		/* Bounded so that a guest cannot keep its vCPU away from a
		 * pause or stop request for long. */
		uint64_t us = v < KAGAMI_IDLE_MAX_US ? v : KAGAMI_IDLE_MAX_US;
		gate_idle(&d->vm->gate, us * 1000u);
		break;
	}
	}
}

static const struct bus_dev_ops kdev_ops = { kdev_read, kdev_write, NULL };

static void reset(void *dev)
{
	struct dev_platform *d = dev;
	pthread_mutex_lock(&d->lock);
	d->clock_hi_latch = 0;
	d->reset_reg = 0;
	pthread_mutex_unlock(&d->lock);
}

static void quiesce(void *dev)
{
	pthread_mutex_lock(&((struct dev_platform *)dev)->lock);
}

static void release(void *dev)
{
	pthread_mutex_unlock(&((struct dev_platform *)dev)->lock);
}

static void destroy(void *dev)
{
	struct dev_platform *d = dev;
	pthread_mutex_destroy(&d->lock);
	free(d);
}

/* Registers 0xf4, 0xcf9, the ACPI sleep registers and the kagami device. */
static int create(struct vm *vm, struct kg_err *e)
{
	struct dev_platform *d = calloc(1, sizeof(*d));
	if (!d)
		return kg_errf(e, "out of memory");
	d->vm = vm;
	pthread_mutex_init(&d->lock, NULL);
	if (bus_add(&vm->pio, KAGAMI_DEBUG_EXIT_PORT, 4, &exit_ops, d,
		    "isa-debug-exit", e) < 0 ||
	    bus_add(&vm->pio, KAGAMI_RESET_PORT, 1, &reset_ops, d,
		    "reset-control", e) < 0 ||
	    bus_add(&vm->pio, KAGAMI_PORT_BASE, KAGAMI_PORT_COUNT, &kdev_ops,
		    d, "kagami-device", e) < 0 ||
	    bus_add(&vm->pio, KAGAMI_ACPI_SLEEP_CONTROL_PORT, 2, &sleep_ops, d,
		    "acpi-sleep", e) < 0 ||
	    vm_device_add(vm, &dev_platform_ops, d, e) < 0) {
		destroy(d);
		return -1;
	}
	return 0;
}

/* --- state --- */

static const struct vs_field platform_fields[] = {
	VS_FIELD(struct dev_platform, clock_hi_latch, VS_U32),
	VS_FIELD(struct dev_platform, reset_reg, VS_U8),
};
static const struct vs_desc platform_vs = { "platform", 1,
					    VS_TABLE(platform_fields), NULL };

static const struct vm_device_table tables[] = {
	{ &platform_vs, 0, sizeof(struct dev_platform), NULL },
};

const struct vm_device_ops dev_platform_ops = {
	.name = "platform", .instance = 1, .ninstances = 1,
	.tables = tables, .ntables = 1,
	.create = create, .reset = reset, .quiesce = quiesce,
	.release = release, .destroy = destroy,
};
