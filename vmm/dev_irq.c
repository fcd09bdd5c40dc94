/*
 * The deterministic mode's interrupt controller and timer as a device:
 * the pure 8259A and 8254 models behind one lock, their ports on the PIO
 * bus, and the gate_irqchip hooks (see devices.h and gate.h).
 */
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "devices.h"
#include "vm.h"

/* Latches the OUT0 edges due by now_ns into IRR 0. Several edges the
 * guest has not taken yet are one request, as the IRR holds one. */
static void advance(struct pic *pic, struct pit *pit, uint64_t now_ns)
{
	if (pit_irq0_edges(pit, now_ns)) {
		pic_set_irq(pic, 0, 1);
		pic_set_irq(pic, 0, 0);
	}
}

/* --- ports --- */

static void io_read(void *opaque, uint16_t port, void *data, unsigned size)
{
	struct dev_irq *d = opaque;
	/* Before the lock: the gate may take its own around the read. */
	uint64_t now = gate_time_ns(&d->vm->gate);
	uint8_t *b = data;
	pthread_mutex_lock(&d->lock);
	advance(&d->pic, &d->pit, now);
	for (unsigned i = 0; i < size; i++) {
		uint16_t p = (uint16_t)(port + i);
		b[i] = (p >= PIT_PORT_BASE && p <= PIT_PORT_CONTROL) ||
				       p == PIT_PORT_SYSCTL
			       ? pit_io_read(&d->pit, p, now)
			       : pic_io_read(&d->pic, p);
	}
	pthread_mutex_unlock(&d->lock);
}

static void io_write(void *opaque, uint16_t port, const void *data,
		     unsigned size)
{
	struct dev_irq *d = opaque;
	uint64_t now = gate_time_ns(&d->vm->gate);
	const uint8_t *b = data;
	pthread_mutex_lock(&d->lock);
	/* Edges due before a reprogramming happened before it. */
	advance(&d->pic, &d->pit, now);
	for (unsigned i = 0; i < size; i++) {
		uint16_t p = (uint16_t)(port + i);
		if ((p >= PIT_PORT_BASE && p <= PIT_PORT_CONTROL) ||
		    p == PIT_PORT_SYSCTL)
			pit_io_write(&d->pit, p, b[i], now);
		else
			pic_io_write(&d->pic, p, b[i]);
	}
	pthread_mutex_unlock(&d->lock);
}

#define PORT_OPS(name, base)                                               \
	static void name##_read(void *o, uint64_t off, void *data,         \
				unsigned size)                             \
	{                                                                  \
		io_read(o, (uint16_t)((base) + off), data, size);          \
	}                                                                  \
	static void name##_write(void *o, uint64_t off, const void *data,  \
				 unsigned size)                            \
	{                                                                  \
		io_write(o, (uint16_t)((base) + off), data, size);         \
	}                                                                  \
	static const struct bus_dev_ops name##_ops = { name##_read,        \
						       name##_write, NULL }

PORT_OPS(master, PIC_MASTER_CMD);
PORT_OPS(slave, PIC_SLAVE_CMD);
PORT_OPS(pit, PIT_PORT_BASE);
PORT_OPS(sysctl, PIT_PORT_SYSCTL);

/* --- gate hooks --- */

static void hook_set_line(void *ctx, unsigned irq, int level)
{
	struct dev_irq *d = ctx;
	pthread_mutex_lock(&d->lock);
	pic_set_irq(&d->pic, irq, level);
	pthread_mutex_unlock(&d->lock);
}

static int hook_ack(void *ctx, uint64_t now_ns)
{
	struct dev_irq *d = ctx;
	int vec = -1;
	pthread_mutex_lock(&d->lock);
	advance(&d->pic, &d->pit, now_ns);
	if (pic_pending(&d->pic))
		vec = pic_ack(&d->pic);
	pthread_mutex_unlock(&d->lock);
	return vec;
}

/* The models are plain values: the questions that must not change state
 * are answered on copies. */
static bool hook_pending(void *ctx, uint64_t now_ns)
{
	struct dev_irq *d = ctx;
	pthread_mutex_lock(&d->lock);
	struct pic pic = d->pic;
	struct pit pit = d->pit;
	pthread_mutex_unlock(&d->lock);
	advance(&pic, &pit, now_ns);
	return pic_pending(&pic);
}

/* Only an edge that would make an interrupt deliverable is a deadline:
 * one that finds IRQ 0 masked, already requested or outranked changes
 * nothing until the guest acts, and the guest acts at an exit, where the
 * gate asks again. */
static uint64_t hook_next_deadline(void *ctx, uint64_t now_ns)
{
	struct dev_irq *d = ctx;
	pthread_mutex_lock(&d->lock);
	struct pic pic = d->pic;
	struct pit pit = d->pit;
	pthread_mutex_unlock(&d->lock);
	advance(&pic, &pit, now_ns);
	uint64_t t = pit_next_edge_ns(&pit, now_ns);
	if (t == UINT64_MAX)
		return t;
	advance(&pic, &pit, t);
	return pic_pending(&pic) ? t : UINT64_MAX;
}

static void reset(void *dev)
{
	struct dev_irq *d = dev;
	pthread_mutex_lock(&d->lock);
	pic_reset(&d->pic);
	pit_reset(&d->pit);
	pthread_mutex_unlock(&d->lock);
}

static void quiesce(void *dev)
{
	pthread_mutex_lock(&((struct dev_irq *)dev)->lock);
}

static void release(void *dev)
{
	pthread_mutex_unlock(&((struct dev_irq *)dev)->lock);
}

static void destroy(void *dev)
{
	struct dev_irq *d = dev;
	pthread_mutex_destroy(&d->lock);
	free(d);
}

/* A deterministic VM only: its ports on vm->pio, its hooks in the gate. */
static int create(struct vm *vm, struct kg_err *e)
{
	if (!vm->cfg.deterministic)
		return 0;
	struct dev_irq *d = calloc(1, sizeof(*d));
	if (!d)
		return kg_errf(e, "out of memory");
	pthread_mutex_init(&d->lock, NULL);
	d->vm = vm;
	pic_init(&d->pic);
	pit_init(&d->pit);
	d->hooks = (struct gate_irqchip){
		.ctx = d,
		.set_line = hook_set_line,
		.ack = hook_ack,
		.pending = hook_pending,
		.next_deadline = hook_next_deadline,
	};
	if (bus_add(&vm->pio, PIC_MASTER_CMD, 2, &master_ops, d, "pic-master",
		    e) < 0 ||
	    bus_add(&vm->pio, PIC_SLAVE_CMD, 2, &slave_ops, d, "pic-slave",
		    e) < 0 ||
	    bus_add(&vm->pio, PIT_PORT_BASE, 4, &pit_ops, d, "pit", e) < 0 ||
	    bus_add(&vm->pio, PIT_PORT_SYSCTL, 1, &sysctl_ops, d,
		    "system-control-b", e) < 0 ||
	    vm_device_add(vm, &dev_irq_ops, d, e) < 0) {
		destroy(d);
		return -1;
	}
	vm->gate.irqchip = &d->hooks;
	return 0;
}

/* Staging copies start at power-on values. */
static void pic_defaults(void *obj)
{
	pic_init(obj);
}

static void pit_defaults(void *obj)
{
	pit_init(obj);
}

static const struct vm_device_table tables[] = {
	{ &pic_vs, offsetof(struct dev_irq, pic), sizeof(struct pic),
	  pic_defaults },
	{ &pit_vs, offsetof(struct dev_irq, pit), sizeof(struct pit),
	  pit_defaults },
};

const struct vm_device_ops dev_irq_ops = {
	.name = "pic/pit", .instance = 2, .ninstances = 2,
	.tables = tables, .ntables = 2, .irqchip = true,
	.create = create, .reset = reset, .quiesce = quiesce,
	.release = release, .destroy = destroy,
};
