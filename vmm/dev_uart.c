/* COM1: the 16550 model on the PIO bus, wired to a console backend. */
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "devices.h"
#include "uart.h"
#include "vm.h"
#include "abi/kagami_platform.h"
#include "base/clock.h"

struct dev_uart {
	pthread_mutex_t lock;
	struct uart uart;
	struct console *console; /* host resource, not state */
	struct vm *vm;
};

static void note_first_output(struct dev_uart *d)
{
	uint64_t zero = 0;
	atomic_compare_exchange_strong(&d->vm->stats.first_output_ns, &zero,
				       kg_now_ns() - d->vm->stats.run_start_ns);
}

static void emit(void *ctx, const void *data, size_t n)
{
	struct console *c = ctx;
	console_write(c, data, n);
	console_flush(c);
}

static void uart_tx(void *opaque, uint8_t byte)
{
	struct dev_uart *d = opaque;
	note_first_output(d);
	if (d->vm->out && outbuf_holding(d->vm->out))
		outbuf_put(d->vm->out, emit, d->console, &byte, 1);
	else
		console_write(d->console, &byte, 1);
}

void dev_uart_output(struct dev_uart *d, const void *data, size_t n)
{
	note_first_output(d);
	if (d->vm->out)
		outbuf_put(d->vm->out, emit, d->console, data, n);
	else
		emit(d->console, data, n);
}

static void uart_irq(void *opaque, int level)
{
	struct dev_uart *d = opaque;
	struct kg_err e;
	if (gate_irq_line(&d->vm->gate, KAGAMI_COM1_IRQ, level, &e) < 0)
		vm_request_stop(d->vm, VM_STOP_ERROR, 0, "COM1 interrupt: %s",
				e.msg);
}

static void bus_read(void *opaque, uint64_t off, void *data, unsigned size)
{
	struct dev_uart *d = opaque;
	memset(data, 0, size);
	pthread_mutex_lock(&d->lock);
	*(uint8_t *)data = uart_read(&d->uart, (unsigned)off);
	pthread_mutex_unlock(&d->lock);
}

static void bus_write(void *opaque, uint64_t off, const void *data,
		      unsigned size)
{
	struct dev_uart *d = opaque;
	(void)size;
	pthread_mutex_lock(&d->lock);
	uart_write(&d->uart, (unsigned)off, *(const uint8_t *)data);
	pthread_mutex_unlock(&d->lock);
}

static void bus_flush(void *opaque)
{
	struct dev_uart *d = opaque;
	console_flush(d->console);
}

static const struct bus_dev_ops uart_ops = {
	.read = bus_read, .write = bus_write, .flush = bus_flush,
};

static size_t console_rx(void *opaque, const uint8_t *data, size_t n)
{
	struct dev_uart *d = opaque;
	pthread_mutex_lock(&d->lock);
	size_t took = uart_receive(&d->uart, data, n);
	pthread_mutex_unlock(&d->lock);
	return took;
}

static void console_quit(void *opaque)
{
	struct dev_uart *d = opaque;
	vm_request_stop(d->vm, VM_STOP_REQUEST, 0,
			"stopped from the console (Ctrl-A x)");
}

void dev_uart_flush(struct dev_uart *d)
{
	console_flush(d->console);
}

static void reset(void *dev)
{
	struct dev_uart *d = dev;
	pthread_mutex_lock(&d->lock);
	uart_reset(&d->uart);
	pthread_mutex_unlock(&d->lock);
}

static void quiesce(void *dev)
{
	pthread_mutex_lock(&((struct dev_uart *)dev)->lock);
}

static void release(void *dev)
{
	pthread_mutex_unlock(&((struct dev_uart *)dev)->lock);
}

static void destroy(void *dev)
{
	struct dev_uart *d = dev;
	console_close(d->console);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

/* Registers COM1 on the PIO bus and opens the console. */
static int create(struct vm *vm, struct kg_err *e)
{
	struct dev_uart *d = calloc(1, sizeof(*d));
	if (!d)
		return kg_errf(e, "out of memory");
	d->vm = vm;
	pthread_mutex_init(&d->lock, NULL);
	uart_init(&d->uart, uart_tx, uart_irq, d);
	if (bus_add(&vm->pio, KAGAMI_COM1_PORT, 8, &uart_ops, d, "COM1", e) < 0 ||
	    !(d->console = console_open(&vm->cfg.console, console_rx,
					   console_quit, d, e)) ||
	    vm_device_add(vm, &dev_uart_ops, d, e) < 0) {
		destroy(d);
		return -1;
	}
	vm->uart = d;
	return 0;
}

/* A staging copy starts at power-on values, without callbacks. */
static void uart_defaults(void *obj)
{
	uart_init(obj, NULL, NULL, NULL);
}

static const struct vm_device_table tables[] = {
	{ &uart_vs, offsetof(struct dev_uart, uart), sizeof(struct uart),
	  uart_defaults },
};

const struct vm_device_ops dev_uart_ops = {
	.name = "uart", .instance = 0, .ninstances = 1,
	.tables = tables, .ntables = 1,
	.create = create, .reset = reset, .quiesce = quiesce,
	.release = release, .destroy = destroy,
};
