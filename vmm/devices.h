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
#include "err.h"
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

/* Formats a guest's fault frame (pure; for the report and unit tests). */
void fault_frame_format(const void *frame, char *buf, size_t size);

#endif
