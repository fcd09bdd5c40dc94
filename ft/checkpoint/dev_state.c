#include "dev_state.h"

#include "vmm/devices.h"
#include "vmm/virtio_mmio.h"

static int uart_check(const void *obj, const void *ctx, struct kg_err *e)
{
	const struct uart *u = obj;
	(void)ctx;
	if (u->rx_head >= UART_RX_FIFO || u->rx_count > UART_RX_FIFO)
		return kg_errf(e, "receive FIFO index out of range");
	return 0;
}

static const struct vs_field uart_fields[] = {
	VS_FIELD(struct uart, ier, VS_U8),
	VS_FIELD(struct uart, fcr, VS_U8),
	VS_FIELD(struct uart, lcr, VS_U8),
	VS_FIELD(struct uart, mcr, VS_U8),
	VS_FIELD(struct uart, lsr, VS_U8),
	VS_FIELD(struct uart, msr, VS_U8),
	VS_FIELD(struct uart, scr, VS_U8),
	VS_FIELD(struct uart, dll, VS_U8),
	VS_FIELD(struct uart, dlm, VS_U8),
	VS_FIELD_MAX(struct uart, thr_ipending, VS_U8, 1),
	VS_BYTES_FIELD(struct uart, rx),
	VS_FIELD(struct uart, rx_head, VS_U32),
	VS_FIELD(struct uart, rx_count, VS_U32),
	VS_FIELD_MAX(struct uart, irq_level, VS_U8, 1),
};
const struct vs_desc dev_uart_vs = { "uart", 1, VS_TABLE(uart_fields),
				     uart_check };

static const struct vs_field platform_fields[] = {
	VS_FIELD(struct dev_platform, clock_hi_latch, VS_U32),
	VS_FIELD(struct dev_platform, reset_reg, VS_U8),
};
const struct vs_desc dev_platform_vs = { "platform", 1,
					 VS_TABLE(platform_fields), NULL };

/* The deterministic mode's 8259A pair and 8254 (vmm/pic.h, vmm/pit.h):
 * every field, since the models hold nothing but guest-visible state. */
static int pic_check(const void *obj, const void *ctx, struct kg_err *e)
{
	const struct pic *p = obj;
	(void)ctx;
	for (unsigned i = 0; i < 2; i++) {
		const struct pic_chip *c = &p->chip[i];
		if (c->init_step == 1 || c->init_step > 4 || c->base & 7 ||
		    c->priority_add > 7)
			return kg_errf(e, "chip %u: bad initialisation state", i);
		if ((c->auto_eoi | c->rotate_on_aeoi | c->read_isr | c->poll |
		     c->special_mask) > 1)
			return kg_errf(e, "chip %u: bad flag", i);
	}
	return 0;
}

#define CHIP(f) VS_STRUCT_ARRAY(struct pic, chip, 2, struct pic_chip, f, \
				VS_U8, "chip." #f)
static const struct vs_field pic_fields[] = {
	CHIP(irr), CHIP(isr), CHIP(imr), CHIP(lines), CHIP(base),
	CHIP(init_step), CHIP(icw1), CHIP(icw3), CHIP(icw4), CHIP(auto_eoi),
	CHIP(rotate_on_aeoi), CHIP(priority_add), CHIP(read_isr), CHIP(poll),
	CHIP(special_mask),
};
const struct vs_desc dev_pic_vs = { "pic", 1, VS_TABLE(pic_fields),
				    pic_check };

static int pit_check(const void *obj, const void *ctx, struct kg_err *e)
{
	const struct pit *p = obj;
	(void)ctx;
	if (p->sysctl > 0x0f)
		return kg_errf(e, "port 0x61: 0x%x", p->sysctl);
	for (unsigned i = 0; i < 3; i++) {
		const struct pit_channel *c = &p->ch[i];
		if (c->mode > 5 || c->access < 1 || c->access > 3 ||
		    c->count < 1 || c->count > 65536 || c->latched > 3)
			return kg_errf(e, "counter %u: bad mode, access or "
				       "count", i);
		if ((c->status_latched | c->bcd | c->read_hi | c->write_hi |
		     c->armed | c->counting | c->gate) > 1 ||
		    (c->counting && !c->armed) || (i < 2 && !c->gate))
			return kg_errf(e, "counter %u: bad flag", i);
	}
	return 0;
}

#define CH(f, t) VS_STRUCT_ARRAY(struct pit, ch, 3, struct pit_channel, f, \
				 t, "ch." #f)
static const struct vs_field pit_fields[] = {
	CH(load_ns, VS_U64), CH(base_ticks, VS_U64), CH(edges_seen, VS_U64),
	CH(count, VS_U32), CH(latch, VS_U16), CH(latched, VS_U8),
	CH(status, VS_U8), CH(status_latched, VS_U8), CH(mode, VS_U8),
	CH(access, VS_U8), CH(bcd, VS_U8), CH(read_hi, VS_U8),
	CH(write_hi, VS_U8), CH(write_lo, VS_U8), CH(armed, VS_U8),
	CH(counting, VS_U8), CH(gate, VS_U8),
	VS_FIELD(struct pit, sysctl, VS_U8),
};
const struct vs_desc dev_pit_vs = { "pit", 1, VS_TABLE(pit_fields),
				    pit_check };

static int virtio_check(const void *obj, const void *ctx, struct kg_err *e)
{
	const struct virtio_mmio *t = obj;
	const struct guest_mem *m = ctx;
	for (unsigned i = 0; i < VIRTIO_MAX_QUEUES; i++) {
		const struct virtq *q = &t->queues[i];
		if (q->ready && virtq_check_rings(q, m, e) < 0)
			return kg_err_prefix(e, "queue %u", i);
		if (q->size > VIRTQ_MAX_SIZE)
			return kg_errf(e, "queue %u: size %u", i, q->size);
	}
	return 0;
}

#define Q(f, t) VS_STRUCT_ARRAY(struct virtio_mmio, queues, VIRTIO_MAX_QUEUES, \
				struct virtq, f, t, "queue." #f)
static const struct vs_field virtio_fields[] = {
	VS_FIELD(struct virtio_mmio, status, VS_U32),
	VS_FIELD(struct virtio_mmio, dev_features_sel, VS_U32),
	VS_FIELD(struct virtio_mmio, drv_features_sel, VS_U32),
	VS_FIELD(struct virtio_mmio, queue_sel, VS_U32),
	VS_FIELD(struct virtio_mmio, int_status, VS_U32),
	VS_FIELD(struct virtio_mmio, config_generation, VS_U32),
	VS_FIELD(struct virtio_mmio, driver_features, VS_U64),
	VS_FIELD_MAX(struct virtio_mmio, irq_level, VS_U8, 1),
	Q(size, VS_U16),
	Q(ready, VS_U8),
	Q(desc_gpa, VS_U64),
	Q(avail_gpa, VS_U64),
	Q(used_gpa, VS_U64),
	Q(last_avail, VS_U16),
	Q(used_idx, VS_U16),
};
const struct vs_desc dev_virtio_vs = { "virtio-mmio", 1,
				       VS_TABLE(virtio_fields), virtio_check };
