/*
 * virtio-blk driver over virtio.h: 512-byte sectors, one request queue,
 * polled. Requests are queued (several in flight, published in the avail
 * ring as they are added) and the device is notified once per batch, by
 * blk_complete() or when the queue fills up. Requests are not
 * range-checked here: the device is the authority (an out-of-range
 * request must come back IOERR).
 */
#ifndef KAGAMI_SDK_BLK_H
#define KAGAMI_SDK_BLK_H

#include "virtio.h"

#define BLK_SECTOR 512u

/* Results: 0, or one of these. */
#define BLK_EIO (-1)     /* the device answered VIRTIO_BLK_S_IOERR */
#define BLK_EUNSUPP (-2) /* VIRTIO_BLK_S_UNSUPP, or feature not offered */
#define BLK_EDEV (-3)    /* device needs a reset or answered nonsense */
#define BLK_ENODEV (-4)  /* no such device on the command line */
#define BLK_EINVAL (-5)  /* bad arguments */
const char *blk_strerror(int err);

/* Request slot, one per possible chain head (the device writes status). */
struct blk_slot;

struct blk_dev {
	struct virtio_dev dev;
	struct virtq q;
	struct blk_slot *slots;
	uint64_t capacity;          /* sectors */
	uint32_t max_req_sectors;   /* per request: from size_max, <= 256 */
	uint32_t max_discard_sectors, discard_align;
	bool has_flush, has_discard, read_only;
	unsigned inflight;
	int err; /* first error since the last blk_complete */
};

/* Finds and sets up the `nth` virtio-blk device (feature bits used:
 * VERSION_1 required; SIZE_MAX, RO, FLUSH, DISCARD when offered). */
int blk_open(struct blk_dev *b, unsigned nth, const char **why);

/* Batch interface: queue requests, then blk_complete() notifies once and
 * waits for all of them; it returns the first error among them (0 if
 * none). A full queue is kicked and drained as needed while queueing. */
int blk_queue_read(struct blk_dev *b, uint64_t sector, void *buf,
		   uint32_t nsect);
int blk_queue_write(struct blk_dev *b, uint64_t sector, const void *buf,
		    uint32_t nsect);
int blk_complete(struct blk_dev *b);

/* Synchronous helpers (each ends with blk_complete). */
int blk_read(struct blk_dev *b, uint64_t sector, void *buf, uint32_t nsect);
int blk_write(struct blk_dev *b, uint64_t sector, const void *buf,
	      uint32_t nsect);
/* Completes what is in flight, then flushes the device's write cache.
 * Without VIRTIO_BLK_F_FLUSH the device has no cache to flush (virtio
 * 5.2.6.3): returns 0 after the writes complete. */
int blk_flush(struct blk_dev *b);
/* The device's serial, NUL-terminated (up to 20 bytes). */
int blk_get_id(struct blk_dev *b, char id[21]);
/* Discards (trims) a range; BLK_EUNSUPP without VIRTIO_BLK_F_DISCARD. */
int blk_discard(struct blk_dev *b, uint64_t sector, uint64_t nsect);

#endif
