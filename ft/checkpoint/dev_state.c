#include "dev_state.h"

#include "../../vmm/devices.h"
#include "../../vmm/virtio_mmio.h"

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
