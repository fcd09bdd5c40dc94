/*
 * What the platform's devices offer each other and the tests, beyond the
 * device interface (device.h) through which the VM builds, holds, saves
 * and destroys them (see kagami_platform.h for the guest's view). Each
 * keeps its guest-visible state apart from host resources and its own
 * lock, since any vCPU thread may access it.
 */
#ifndef KG_DEVICES_H
#define KG_DEVICES_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include "gate.h"
#include "pic.h"
#include "pit.h"

struct vm;

/* COM1 (vm->uart). Console output that bypasses the UART registers (the
 * kagami device's batched console port); written and flushed at once. */
struct dev_uart;
void dev_uart_output(struct dev_uart *d, const void *data, size_t n);
/* Writes out what the console buffered (the end of a run). */
void dev_uart_flush(struct dev_uart *d);

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
 *
 * Built only for a deterministic VM, which then has
 * vm->gate.irqchip == &d->hooks and hooks.ctx == d; the struct is here
 * for tests that set chip state directly.
 */
struct dev_irq {
	pthread_mutex_t lock;
	struct pic pic;
	struct pit pit;
	struct vm *vm;
	struct gate_irqchip hooks; /* ctx: this struct */
};

#endif
