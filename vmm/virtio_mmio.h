/*
 * virtio-mmio transport, virtio 1.x modern only (Version 2): registers,
 * feature negotiation, queue setup, notification, interrupt status and
 * config space. A device (blk, net) supplies struct virtio_dev_ops and
 * gets its queues, its interrupt and its "broken" switch from here.
 *
 * Locking: `lock` guards the registers and the queues. Register accesses
 * come from vCPU threads; device worker threads take the lock to pop and
 * push. A reset waits until the device has no request in flight
 * (virtio_mmio_begin/end_request), so a vCPU waits for one request at most.
 */
#ifndef KG_VIRTIO_MMIO_H
#define KG_VIRTIO_MMIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"
#include "base/vmstate.h"
#include "virtq.h"

struct vm;

#define VIRTIO_MAX_QUEUES 2
#define VIRTIO_F_VERSION_1 (1ull << 32)

#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER 2
#define VIRTIO_STATUS_DRIVER_OK 4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED 0x80

struct virtio_dev_ops {
	const char *name; /* "virtio-blk", for messages */
	uint32_t device_id;
	unsigned nqueues;
	void (*config_read)(void *dev, uint64_t off, void *data, unsigned size);
	void (*config_write)(void *dev, uint64_t off, const void *data,
			     unsigned size);
	/* The guest notified `queue`; called with the lock held on a vCPU
	 * thread: do little (hand off to a worker) or be quick. */
	void (*notify)(void *dev, unsigned queue);
	/* The driver reset the device; called with the lock held after all
	 * in-flight requests ended. */
	void (*reset)(void *dev);
};

struct virtio_mmio {
	pthread_mutex_t lock;
	pthread_cond_t idle;
	const struct virtio_dev_ops *ops;
	void *dev;
	struct vm *vm;
	uint64_t base;
	unsigned irq;
	uint64_t device_features; /* offered; VERSION_1 always */
	unsigned inflight;
	uint32_t generation; /* bumped by reset: stale requests are dropped */
	/* guest-visible state */
	uint32_t status, dev_features_sel, drv_features_sel, queue_sel;
	uint32_t int_status, config_generation;
	uint64_t driver_features;
	struct virtq queues[VIRTIO_MAX_QUEUES];
	uint8_t irq_level;
	/* host side: eventfds KVM signals on QueueNotify writes (-1: none) */
	int notify_fd[VIRTIO_MAX_QUEUES];
	/* While the VM replays a log (lockstep secondary): keep doing the
	 * device's backend I/O (a disk applies the guest's writes to its
	 * own image) — what it would write into RAM is dropped by the
	 * replaying gate. Otherwise its queues are idle while replaying. */
	bool io_in_replay;
};

/* Registers the transport on the VM's MMIO bus at `base` with `irq`. */
int virtio_mmio_init(struct virtio_mmio *t, struct vm *vm, uint64_t base,
		     unsigned irq, const struct virtio_dev_ops *ops, void *dev,
		     uint64_t features, struct kg_err *e);
void virtio_mmio_destroy(struct virtio_mmio *t);
/* Lets KVM turn the guest's QueueNotify writes for queue q into a signal
 * on fd (KVM_IOEVENTFD) instead of an exit to userspace (~25 us here); the
 * device's thread waits on fd. If KVM refuses, notifications keep exiting
 * and reach ops->notify. */
int virtio_mmio_ioeventfd(struct virtio_mmio *t, unsigned q, int fd,
			  struct kg_err *e);
/* Acts as if the guest had notified every queue: after loading state
 * (restore, replication) a notification the source had not yet served
 * would otherwise never come again. */
void virtio_mmio_kick(struct virtio_mmio *t);
/* A replica going live after replaying a log: its own view of the queues
 * (which requests it took, which it completed) came from its replayed
 * backend, not from what the guest saw. Both indexes restart at the
 * used index in guest RAM, so requests the guest has not seen complete
 * are served again (in-order devices: writes are repeated, frames may be
 * sent twice, which networks allow); then every queue is kicked. */
void virtio_mmio_resync(struct virtio_mmio *t);
/* Registers the eventfds again with a new KVM VM (after a VM reset). */
void virtio_mmio_rearm(struct virtio_mmio *t);
/* Resets the device as a driver writing 0 to Status does (VM reset). */
void virtio_mmio_reset(struct virtio_mmio *t);

/* Takes the lock and waits until no request is in flight, so that the
 * device's state and the guest RAM it writes hold still (checkpoints);
 * virtio_mmio_release ends it. */
void virtio_mmio_quiesce(struct virtio_mmio *t);
void virtio_mmio_release(struct virtio_mmio *t);

/* With the lock held: true when the driver set DRIVER_OK, the queue is
 * ready and the device is not broken. */
bool virtio_mmio_queue_live(const struct virtio_mmio *t, unsigned q);
/* With the lock held: marks the device broken (DEVICE_NEEDS_RESET),
 * logs one line naming the device and the problem, interrupts the guest. */
void virtio_mmio_set_broken(struct virtio_mmio *t, const char *why);
/* With the lock held: signals a used-buffer interrupt for queue q unless
 * the driver suppressed it. */
void virtio_mmio_notify_used(struct virtio_mmio *t, unsigned q);
/* With the lock held: marks one request in flight; returns the generation
 * to pass to end_request. */
uint32_t virtio_mmio_begin_request(struct virtio_mmio *t);
/* With the lock held: ends it; returns false if a reset happened since
 * (the request's result must be dropped, not pushed). */
bool virtio_mmio_end_request(struct virtio_mmio *t, uint32_t generation);

/* The transport's guest-visible state (registers and queues) as a field
 * table; its check, whose ctx is the VM's struct guest_mem, keeps every
 * ready queue's rings inside RAM. */
extern const struct vs_desc virtio_mmio_vs;

#endif
