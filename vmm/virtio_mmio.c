#include "virtio_mmio.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "kvm.h"
#include "vm.h"
#include "abi/kagami_platform.h"
#include "base/log.h"

enum {
	REG_MAGIC = 0x000, REG_VERSION = 0x004, REG_DEVICE_ID = 0x008,
	REG_VENDOR_ID = 0x00c, REG_DEV_FEATURES = 0x010,
	REG_DEV_FEATURES_SEL = 0x014, REG_DRV_FEATURES = 0x020,
	REG_DRV_FEATURES_SEL = 0x024, REG_QUEUE_SEL = 0x030,
	REG_QUEUE_NUM_MAX = 0x034, REG_QUEUE_NUM = 0x038,
	REG_QUEUE_READY = 0x044, REG_QUEUE_NOTIFY = 0x050,
	REG_INT_STATUS = 0x060, REG_INT_ACK = 0x064, REG_STATUS = 0x070,
	REG_QUEUE_DESC_LO = 0x080, REG_QUEUE_DESC_HI = 0x084,
	REG_QUEUE_DRIVER_LO = 0x090, REG_QUEUE_DRIVER_HI = 0x094,
	REG_QUEUE_DEVICE_LO = 0x0a0, REG_QUEUE_DEVICE_HI = 0x0a4,
	REG_CONFIG_GEN = 0x0fc, REG_CONFIG = 0x100,
};
#define VIRTIO_MMIO_MAGIC 0x74726976u
#define VIRTIO_VENDOR 0x4b474d49u /* "KGMI" */
#define INT_USED 1u
#define INT_CONFIG 2u

static void update_irq(struct virtio_mmio *t)
{
	uint8_t level = t->int_status != 0;
	if (level == t->irq_level)
		return;
	t->irq_level = level;
	struct kg_err e;
	if (gate_irq_line(&t->vm->gate, t->irq, level, &e) < 0)
		kg_log(KG_LOG_INFO, "%s: interrupt: %s", t->ops->name,
			e.msg);
}

static struct virtq *cur_queue(struct virtio_mmio *t)
{
	return t->queue_sel < t->ops->nqueues ? &t->queues[t->queue_sel] : NULL;
}

static void device_reset(struct virtio_mmio *t)
{
	t->generation++;
	while (t->inflight)
		pthread_cond_wait(&t->idle, &t->lock);
	t->ops->reset(t->dev);
	t->status = t->dev_features_sel = t->drv_features_sel = 0;
	t->queue_sel = t->int_status = 0;
	t->driver_features = 0;
	memset(t->queues, 0, sizeof(t->queues));
	update_irq(t);
}

static void set_status(struct virtio_mmio *t, uint32_t v)
{
	if (v == 0) {
		device_reset(t);
		return;
	}
	if ((v & VIRTIO_STATUS_FEATURES_OK) &&
	    !(t->status & VIRTIO_STATUS_FEATURES_OK)) {
		/* Only features we offered, and a modern driver. */
		if ((t->driver_features & ~t->device_features) ||
		    !(t->driver_features & VIRTIO_F_VERSION_1))
			v &= ~(uint32_t)VIRTIO_STATUS_FEATURES_OK;
	}
	t->status = (v & ~(uint32_t)VIRTIO_STATUS_NEEDS_RESET) |
		    (t->status & VIRTIO_STATUS_NEEDS_RESET);
}

static void set_queue_ready(struct virtio_mmio *t, struct virtq *q, uint32_t v)
{
	if (!v) {
		q->ready = 0;
		return;
	}
	struct kg_err e;
	if (virtq_check_rings(q, &t->vm->mem, &e) < 0) {
		virtio_mmio_set_broken(t, e.msg);
		return;
	}
	q->ready = 1;
	q->last_avail = q->used_idx = 0;
}

static void set_addr(uint64_t *a, bool hi, uint32_t v)
{
	*a = hi ? (*a & 0xffffffffull) | ((uint64_t)v << 32)
		: (*a & ~0xffffffffull) | v;
}

static void mmio_read(void *opaque, uint64_t off, void *data, unsigned size)
{
	struct virtio_mmio *t = opaque;
	uint32_t v = 0;
	pthread_mutex_lock(&t->lock);
	if (off >= REG_CONFIG) {
		memset(data, 0, size);
		t->ops->config_read(t->dev, off - REG_CONFIG, data, size);
		pthread_mutex_unlock(&t->lock);
		return;
	}
	struct virtq *q = cur_queue(t);
	switch (off) {
	case REG_MAGIC: v = VIRTIO_MMIO_MAGIC; break;
	case REG_VERSION: v = 2; break;
	case REG_DEVICE_ID: v = t->ops->device_id; break;
	case REG_VENDOR_ID: v = VIRTIO_VENDOR; break;
	case REG_DEV_FEATURES:
		v = t->dev_features_sel > 1
			? 0 : (uint32_t)(t->device_features >>
					(32 * t->dev_features_sel));
		break;
	case REG_QUEUE_NUM_MAX: v = q ? VIRTQ_MAX_SIZE : 0; break;
	case REG_QUEUE_NUM: v = q ? q->size : 0; break;
	case REG_QUEUE_READY: v = q ? q->ready : 0; break;
	case REG_INT_STATUS: v = t->int_status; break;
	case REG_STATUS: v = t->status; break;
	case REG_CONFIG_GEN: v = t->config_generation; break;
	case REG_QUEUE_DESC_LO: v = q ? (uint32_t)q->desc_gpa : 0; break;
	case REG_QUEUE_DESC_HI: v = q ? (uint32_t)(q->desc_gpa >> 32) : 0; break;
	case REG_QUEUE_DRIVER_LO: v = q ? (uint32_t)q->avail_gpa : 0; break;
	case REG_QUEUE_DRIVER_HI: v = q ? (uint32_t)(q->avail_gpa >> 32) : 0; break;
	case REG_QUEUE_DEVICE_LO: v = q ? (uint32_t)q->used_gpa : 0; break;
	case REG_QUEUE_DEVICE_HI: v = q ? (uint32_t)(q->used_gpa >> 32) : 0; break;
	}
	pthread_mutex_unlock(&t->lock);
	memset(data, 0, size);
	memcpy(data, &v, size < 4 ? size : 4);
}

static void mmio_write(void *opaque, uint64_t off, const void *data,
		       unsigned size)
{
	struct virtio_mmio *t = opaque;
	uint32_t v = 0;
	memcpy(&v, data, size < 4 ? size : 4);
	pthread_mutex_lock(&t->lock);
	if (off >= REG_CONFIG) {
		t->ops->config_write(t->dev, off - REG_CONFIG, data, size);
		pthread_mutex_unlock(&t->lock);
		return;
	}
	struct virtq *q = cur_queue(t);
	/* Queue layout may change only while the queue is not ready. */
	bool q_writable = q && !q->ready;
	switch (off) {
	case REG_DEV_FEATURES_SEL: t->dev_features_sel = v; break;
	case REG_DRV_FEATURES:
		if (t->drv_features_sel < 2 &&
		    !(t->status & VIRTIO_STATUS_FEATURES_OK)) {
			unsigned sh = 32 * t->drv_features_sel;
			t->driver_features =
				(t->driver_features & ~(0xffffffffull << sh)) |
				((uint64_t)v << sh);
		}
		break;
	case REG_DRV_FEATURES_SEL: t->drv_features_sel = v; break;
	case REG_QUEUE_SEL: t->queue_sel = v; break;
	case REG_QUEUE_NUM:
		if (q_writable)
			q->size = (uint16_t)(v <= VIRTQ_MAX_SIZE ? v : 0);
		break;
	case REG_QUEUE_READY:
		if (q)
			set_queue_ready(t, q, v);
		break;
	case REG_QUEUE_NOTIFY:
		if (v < t->ops->nqueues && virtio_mmio_queue_live(t, v))
			t->ops->notify(t->dev, v);
		break;
	case REG_INT_ACK:
		t->int_status &= ~v;
		update_irq(t);
		break;
	case REG_STATUS: set_status(t, v); break;
	case REG_QUEUE_DESC_LO: case REG_QUEUE_DESC_HI:
		if (q_writable)
			set_addr(&q->desc_gpa, off == REG_QUEUE_DESC_HI, v);
		break;
	case REG_QUEUE_DRIVER_LO: case REG_QUEUE_DRIVER_HI:
		if (q_writable)
			set_addr(&q->avail_gpa, off == REG_QUEUE_DRIVER_HI, v);
		break;
	case REG_QUEUE_DEVICE_LO: case REG_QUEUE_DEVICE_HI:
		if (q_writable)
			set_addr(&q->used_gpa, off == REG_QUEUE_DEVICE_HI, v);
		break;
	}
	pthread_mutex_unlock(&t->lock);
}

static const struct bus_dev_ops mmio_ops = { mmio_read, mmio_write, NULL };

int virtio_mmio_init(struct virtio_mmio *t, struct vm *vm, uint64_t base,
		     unsigned irq, const struct virtio_dev_ops *ops, void *dev,
		     uint64_t features, struct kg_err *e)
{
	memset(t, 0, sizeof(*t));
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->idle, NULL);
	t->ops = ops;
	t->dev = dev;
	t->vm = vm;
	t->base = base;
	t->irq = irq;
	t->device_features = features | VIRTIO_F_VERSION_1;
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
		t->notify_fd[q] = -1;
	return bus_add(&vm->mmio, base, KAGAMI_VIRTIO_SIZE, &mmio_ops, t,
		       ops->name, e);
}

static int register_ioeventfd(struct virtio_mmio *t, unsigned q,
			      struct kg_err *e)
{
	struct kvm_ioeventfd io = {
		.datamatch = q,
		.addr = t->base + REG_QUEUE_NOTIFY,
		.len = 4,
		.fd = t->notify_fd[q],
		.flags = KVM_IOEVENTFD_FLAG_DATAMATCH,
	};
	return kvm_ioctl(t->vm->vm_fd, KVM_IOEVENTFD, &io, e) < 0 ? -1 : 0;
}

int virtio_mmio_ioeventfd(struct virtio_mmio *t, unsigned q, int fd,
			  struct kg_err *e)
{
	t->notify_fd[q] = fd;
	if (register_ioeventfd(t, q, e) < 0) {
		t->notify_fd[q] = -1;
		return -1;
	}
	return 0;
}

void virtio_mmio_resync(struct virtio_mmio *t)
{
	pthread_mutex_lock(&t->lock);
	for (unsigned i = 0; i < t->ops->nqueues; i++) {
		struct virtq *q = &t->queues[i];
		const uint8_t *used = q->ready ? guest_mem_ptr(&t->vm->mem,
						q->used_gpa + 2, 2) : NULL;
		if (!used)
			continue;
		uint16_t idx = (uint16_t)(used[0] | used[1] << 8);
		q->used_idx = q->last_avail = idx;
	}
	pthread_mutex_unlock(&t->lock);
	virtio_mmio_kick(t);
}

void virtio_mmio_kick(struct virtio_mmio *t)
{
	for (unsigned q = 0; q < t->ops->nqueues; q++) {
		if (t->notify_fd[q] >= 0) {
			uint64_t one = 1;
			ssize_t w = write(t->notify_fd[q], &one, sizeof(one));
			(void)w; /* fails only when already signalled */
			continue;
		}
		pthread_mutex_lock(&t->lock);
		if (virtio_mmio_queue_live(t, q))
			t->ops->notify(t->dev, q);
		pthread_mutex_unlock(&t->lock);
	}
}

void virtio_mmio_rearm(struct virtio_mmio *t)
{
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
		struct kg_err e;
		if (t->notify_fd[q] >= 0 && register_ioeventfd(t, q, &e) < 0) {
			/* the exit path still works: just slower */
			kg_log(KG_LOG_INFO, "%s: %s", t->ops->name, e.msg);
			t->notify_fd[q] = -1;
		}
	}
}

void virtio_mmio_destroy(struct virtio_mmio *t)
{
	if (!t->vm)
		return;
	pthread_cond_destroy(&t->idle);
	pthread_mutex_destroy(&t->lock);
	t->vm = NULL;
}

void virtio_mmio_reset(struct virtio_mmio *t)
{
	pthread_mutex_lock(&t->lock);
	device_reset(t);
	t->status = 0;
	pthread_mutex_unlock(&t->lock);
}

void virtio_mmio_quiesce(struct virtio_mmio *t)
{
	pthread_mutex_lock(&t->lock);
	while (t->inflight)
		pthread_cond_wait(&t->idle, &t->lock);
}

void virtio_mmio_release(struct virtio_mmio *t)
{
	pthread_mutex_unlock(&t->lock);
}

bool virtio_mmio_queue_live(const struct virtio_mmio *t, unsigned q)
{
	/* A replaying VM's devices only keep their registers: what they
	 * would write into RAM comes from the log. */
	return (t->io_in_replay ||
		!atomic_load_explicit(&t->vm->replaying, memory_order_relaxed)) &&
	       q < t->ops->nqueues && t->queues[q].ready &&
	       (t->status & VIRTIO_STATUS_DRIVER_OK) &&
	       !(t->status & VIRTIO_STATUS_NEEDS_RESET);
}

void virtio_mmio_set_broken(struct virtio_mmio *t, const char *why)
{
	if (!(t->status & VIRTIO_STATUS_NEEDS_RESET))
		kg_log(KG_LOG_INFO, "%s at 0x%llx: guest error, device "
			"needs reset: %s", t->ops->name,
			(unsigned long long)t->base, why);
	t->status |= VIRTIO_STATUS_NEEDS_RESET;
	t->int_status |= INT_CONFIG;
	update_irq(t);
}

void virtio_mmio_notify_used(struct virtio_mmio *t, unsigned q)
{
	if (!virtq_wants_interrupt(&t->queues[q], &t->vm->mem))
		return;
	t->int_status |= INT_USED;
	update_irq(t);
}

uint32_t virtio_mmio_begin_request(struct virtio_mmio *t)
{
	t->inflight++;
	return t->generation;
}

bool virtio_mmio_end_request(struct virtio_mmio *t, uint32_t generation)
{
	if (--t->inflight == 0)
		pthread_cond_broadcast(&t->idle);
	return generation == t->generation;
}

/* --- state: the registers and queues a driver set up; the check keeps
 * queue rings inside guest RAM --- */

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
const struct vs_desc virtio_mmio_vs = { "virtio-mmio", 1,
				       VS_TABLE(virtio_fields), virtio_check };
