/*
 * The platform's devices (see kagami_platform.h for the guest's view):
 * COM1, the isa-debug-exit port, the 0xcf9 reset port and the kagami
 * device (identity, clock, power, fault report). Each keeps its
 * guest-visible state apart from host resources and its own lock, since
 * any vCPU thread may access it.
 */
#ifndef KG_DEVICES_H
#define KG_DEVICES_H

#include <pthread.h>
#include <stdint.h>
#include "console.h"
#include "base/err.h"
#include "base/vmstate.h"
#include "gate.h"
#include "pic.h"
#include "pit.h"
#include "uart.h"

struct vm;

struct dev_uart {
	pthread_mutex_t lock;
	struct uart uart;
	struct console *console; /* host resource, not state */
	struct vm *vm;
};

struct dev_platform {
	pthread_mutex_t lock;
	uint32_t clock_hi_latch;
	uint8_t reset_reg; /* 0xcf9 */
	struct vm *vm;
};

/* Registers COM1 on the PIO bus and opens the console. */
int dev_uart_init(struct dev_uart *d, struct vm *vm,
		  const struct console_spec *spec, struct kg_err *e);
void dev_uart_reset(struct dev_uart *d);
/* Console output that bypasses the UART registers (the kagami device's
 * batched console port); written and flushed at once. */
void dev_uart_output(struct dev_uart *d, const void *data, size_t n);
void dev_uart_destroy(struct dev_uart *d);

/* Registers 0xf4, 0xcf9 and the kagami device. */
int dev_platform_init(struct dev_platform *d, struct vm *vm, struct kg_err *e);
void dev_platform_reset(struct dev_platform *d);
void dev_platform_destroy(struct dev_platform *d);
/* The platform's state (the clock latch, the reset register). */
extern const struct vs_desc dev_platform_vs;

/* Formats a guest's fault frame (pure; for the report and unit tests). */
void fault_frame_format(const void *frame, char *buf, size_t size);

/*
 * The userspace interrupt controller and timer of deterministic mode: the
 * 8259A pair and the 8254 (pic.h, pit.h) on ports 0x20/0x21, 0xa0/0xa1,
 * 0x40-0x43 and 0x61, and the hooks the input gate drives (gate.h). Time
 * comes only from gate_time_ns() on port accesses and from the now_ns the
 * gate passes to the hooks, so replaying the gate's inputs replays every
 * count the guest reads and every IRQ 0 edge. IRQ 0 is the PIT's: the
 * edges due by a time are collected (coalesced into one IRR latch, as
 * the 8259A keeps one request per line) before anything else is done at
 * that time. The lock covers pic and pit; it is taken last (after any
 * device's lock) and nothing is called while it is held.
 */
struct dev_irq {
	pthread_mutex_t lock;
	struct pic pic;
	struct pit pit;
	struct vm *vm;
	struct gate_irqchip hooks; /* ctx: this struct */
};

/* Registers the ports on vm->pio and fills hooks (the caller sets
 * vm->gate.irqchip = &d->hooks). */
int dev_irq_init(struct dev_irq *d, struct vm *vm, struct kg_err *e);
/* Power-on state of both chips (a guest reboot). */
void dev_irq_reset(struct dev_irq *d);
/* Safe on a zeroed, never initialised struct. */
void dev_irq_destroy(struct dev_irq *d);

#endif
