/*
 * virtio-mmio (virtio 1.x, "modern", Version 2) transport and split
 * virtqueues for ring-3 guests.
 *
 * Devices are found only through the `virtio_mmio.device=SIZE@BASE:IRQ`
 * entries that kagami and QEMU (microvm, acpi=off) append to the command
 * line. Every register access is a VM exit (~22 us under kagami), so the
 * drivers touch registers only at setup, for QueueNotify (at most once per
 * batch) and, rarely, to read Status while waiting for a stuck device. The
 * rings live in RAM and are polled there: the SDK runs with interrupts off,
 * and asks devices not to interrupt (VRING_AVAIL_F_NO_INTERRUPT). In
 * deterministic mode (sdk_deterministic) what a device writes to the rings
 * becomes visible only at an exit, so every wait goes through sdk_idle.
 *
 * RAM is identity-mapped, so a buffer's address is its guest-physical one.
 */
#ifndef KAGAMI_SDK_VIRTIO_H
#define KAGAMI_SDK_VIRTIO_H

#include "sdk.h"

#define VIRTIO_ID_NET 1u
#define VIRTIO_ID_BLK 2u

#define VIRTIO_F_VERSION_1 (1ull << 32)

#define VIRTIO_STATUS_ACKNOWLEDGE 0x01u
#define VIRTIO_STATUS_DRIVER 0x02u
#define VIRTIO_STATUS_DRIVER_OK 0x04u
#define VIRTIO_STATUS_FEATURES_OK 0x08u
#define VIRTIO_STATUS_NEEDS_RESET 0x40u
#define VIRTIO_STATUS_FAILED 0x80u

/* One device found on the command line and (after virtio_init) set up. */
struct virtio_dev {
	uintptr_t base; /* MMIO registers */
	uint32_t irq, device_id;
	uint64_t features; /* negotiated */
	uint32_t status;   /* the last value we wrote to Status */
	bool broken;       /* DEVICE_NEEDS_RESET seen, or setup failed */
};

/* Finds the `nth` (0-based) device of `device_id` among the command-line
 * entries (reads Magic, Version and DeviceID of each). Only Version 2
 * devices count. Returns false when there is no such device. */
bool virtio_find(uint32_t device_id, unsigned nth, struct virtio_dev *d);

/* Reset, ACKNOWLEDGE, DRIVER, negotiate features: accepts the offered
 * bits of `wanted`; fails (and sets FAILED) unless VERSION_1 and every
 * bit of `required` are offered or FEATURES_OK does not stick. The
 * device's queues are then set up with virtq_setup, and virtio_ready
 * sets DRIVER_OK. Return 0 or -1 with a one-line reason in `why`. */
int virtio_init(struct virtio_dev *d, uint64_t wanted, uint64_t required,
		const char **why);
void virtio_ready(struct virtio_dev *d);
/* Reads Status (one exit); true, and marks the device broken, when it
 * asks for a reset. Call it rarely: while a wait makes no progress. */
bool virtio_check_broken(struct virtio_dev *d);

/* Device configuration space, accessed at the natural width of each field
 * (as Linux does); 64-bit fields as two 32-bit reads under a stable
 * ConfigGeneration. */
uint8_t virtio_cfg8(struct virtio_dev *d, unsigned off);
uint16_t virtio_cfg16(struct virtio_dev *d, unsigned off);
uint32_t virtio_cfg32(struct virtio_dev *d, unsigned off);
uint64_t virtio_cfg64(struct virtio_dev *d, unsigned off);

/* Split virtqueue rings (virtio 1.x layout). */
struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
};
#define VRING_DESC_F_NEXT 1u
#define VRING_DESC_F_WRITE 2u

struct vring_avail {
	uint16_t flags, idx;
	uint16_t ring[];
};
#define VRING_AVAIL_F_NO_INTERRUPT 1u

struct vring_used_elem {
	uint32_t id, len;
};
struct vring_used {
	uint16_t flags, idx;
	struct vring_used_elem ring[];
};
#define VRING_USED_F_NO_NOTIFY 1u

struct virtq {
	struct virtio_dev *dev;
	uint16_t index, size; /* size: a power of two */
	struct vring_desc *desc;
	volatile struct vring_avail *avail;
	volatile struct vring_used *used;
	uint16_t free_head, num_free;
	uint16_t avail_idx; /* next avail slot (driver's copy) */
	uint16_t last_used; /* next used slot to consume */
	uint16_t unkicked;  /* chains added since the last notify */
};

/* A buffer of a chain: device-readable ("out") or device-writable. */
struct virtq_buf {
	const void *addr;
	uint32_t len;
	bool device_writes;
};

/* Sets up queue `index` with at most `want` entries (rounded down to a
 * power of two and to QueueNumMax); rings come from sdk_alloc. */
int virtq_setup(struct virtio_dev *d, struct virtq *q, unsigned index,
		unsigned want, const char **why);
/* Adds one chain of `n` buffers (readable ones first) and publishes it in
 * the avail ring; no notify. Returns the head id (the `id` the used ring
 * gives back), or -1 when there are not `n` free descriptors. */
int virtq_add(struct virtq *q, const struct virtq_buf *bufs, unsigned n);
/* Notifies the device once for everything added since the last kick,
 * unless the device said it does not need it (VRING_USED_F_NO_NOTIFY). */
void virtq_kick(struct virtq *q);
/* Takes the next used element, if any (memory reads only): its head id
 * and the bytes the device wrote; frees its descriptors. */
bool virtq_get(struct virtq *q, uint32_t *id, uint32_t *len);
/* True when the device has returned something not yet taken. */
static inline bool virtq_has_used(const struct virtq *q)
{
	return q->used->idx != q->last_used;
}

/* Wait helper for drivers: call once per empty poll. It idles through
 * sdk_idle (a `pause`; in deterministic mode an exit, at which the
 * device's answer is delivered), every so many steps reads Status (one
 * exit: every 2^20 steps, every 64 in deterministic mode) and returns
 * false if the device is broken. `spins` is the caller's counter. */
bool virtio_wait_step(struct virtio_dev *d, uint64_t *spins);

/* Barriers: x86 keeps stores ordered and loads ordered, so the compiler
 * barrier suffices between ring writes; store->load needs mfence. */
#define virtio_barrier() __asm__ volatile("" ::: "memory")
#define virtio_mb() __asm__ volatile("mfence" ::: "memory")

#endif
