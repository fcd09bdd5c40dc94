/* virtio-blk driver (virtio 1.x, 5.2): see blk.h. */
#include "blk.h"

#define VIRTIO_BLK_F_SIZE_MAX (1ull << 1)
#define VIRTIO_BLK_F_RO (1ull << 5)
#define VIRTIO_BLK_F_FLUSH (1ull << 9)
#define VIRTIO_BLK_F_DISCARD (1ull << 13)

/* Configuration space offsets (struct virtio_blk_config). */
#define CFG_CAPACITY 0
#define CFG_SIZE_MAX 8
#define CFG_MAX_DISCARD_SECTORS 36
#define CFG_DISCARD_ALIGN 44

#define T_IN 0u
#define T_OUT 1u
#define T_FLUSH 4u
#define T_GET_ID 8u
#define T_DISCARD 11u

#define S_OK 0u
#define S_IOERR 1u
#define S_UNSUPP 2u
#define S_PENDING 0xffu /* ours: the device never wrote the status */

#define QUEUE_WANT 256u
#define MAX_REQ_SECTORS 256u /* 128 KiB per request: a bound hosts accept */
#define ID_BYTES 20u

struct blk_slot {
	struct {
		uint32_t type, reserved;
		uint64_t sector;
	} hdr;
	struct { /* the one segment of a discard request */
		uint64_t sector;
		uint32_t num_sectors, flags;
	} seg;
	uint8_t status;
};

const char *blk_strerror(int err)
{
	switch (err) {
	case 0: return "ok";
	case BLK_EIO: return "I/O error (IOERR)";
	case BLK_EUNSUPP: return "unsupported (UNSUPP)";
	case BLK_EDEV: return "device needs reset";
	case BLK_ENODEV: return "no virtio-blk device";
	case BLK_EINVAL: return "invalid argument";
	default: return "unknown error";
	}
}

int blk_open(struct blk_dev *b, unsigned nth, const char **why)
{
	memset(b, 0, sizeof(*b));
	if (!virtio_find(VIRTIO_ID_BLK, nth, &b->dev)) {
		*why = "no virtio-blk device";
		return BLK_ENODEV;
	}
	uint64_t want = VIRTIO_BLK_F_SIZE_MAX | VIRTIO_BLK_F_RO |
			VIRTIO_BLK_F_FLUSH | VIRTIO_BLK_F_DISCARD;
	if (virtio_init(&b->dev, want, 0, why) < 0)
		return BLK_EDEV;
	uint64_t f = b->dev.features;
	b->capacity = virtio_cfg64(&b->dev, CFG_CAPACITY);
	b->max_req_sectors = MAX_REQ_SECTORS;
	if (f & VIRTIO_BLK_F_SIZE_MAX) {
		uint32_t m = virtio_cfg32(&b->dev, CFG_SIZE_MAX) / BLK_SECTOR;
		if (m && m < b->max_req_sectors)
			b->max_req_sectors = m;
	}
	b->has_flush = f & VIRTIO_BLK_F_FLUSH;
	b->read_only = f & VIRTIO_BLK_F_RO;
	if (f & VIRTIO_BLK_F_DISCARD) {
		b->has_discard = true;
		b->max_discard_sectors =
			virtio_cfg32(&b->dev, CFG_MAX_DISCARD_SECTORS);
		b->discard_align = virtio_cfg32(&b->dev, CFG_DISCARD_ALIGN);
		if (!b->max_discard_sectors)
			b->max_discard_sectors = UINT32_MAX;
	}
	if (virtq_setup(&b->dev, &b->q, 0, QUEUE_WANT, why) < 0)
		return BLK_EDEV;
	b->slots = sdk_alloc(sizeof(struct blk_slot) * b->q.size);
	if (!b->slots) {
		*why = "out of memory for request slots";
		return BLK_EDEV;
	}
	virtio_ready(&b->dev);
	return 0;
}

static void note_err(struct blk_dev *b, int err)
{
	if (!b->err)
		b->err = err;
}

/* Takes every finished request off the used ring (memory reads only). */
static void reap(struct blk_dev *b)
{
	uint32_t id, len;
	while (virtq_get(&b->q, &id, &len)) {
		uint8_t s = b->slots[id].status;
		b->inflight--;
		if (s == S_IOERR)
			note_err(b, BLK_EIO);
		else if (s == S_UNSUPP)
			note_err(b, BLK_EUNSUPP);
		else if (s != S_OK)
			note_err(b, BLK_EDEV);
	}
	if (b->dev.broken)
		note_err(b, BLK_EDEV);
}

/* Kicks, then waits until `need` descriptors are free or, with need 0,
 * until no request is in flight. False if the device broke meanwhile. */
static bool wait_for(struct blk_dev *b, unsigned need)
{
	uint64_t spins = 0;
	virtq_kick(&b->q);
	for (;;) {
		reap(b);
		if (need ? b->q.num_free >= need : b->inflight == 0)
			return true;
		if (!virtio_wait_step(&b->dev, &spins)) {
			note_err(b, BLK_EDEV);
			return false;
		}
	}
}

/* Queues one request: header, optional data buffer, status. */
static int submit(struct blk_dev *b, uint32_t type, uint64_t sector,
		  const void *data, uint32_t len, bool device_writes)
{
	if (b->dev.broken)
		return BLK_EDEV;
	unsigned n = len ? 3 : 2;
	if (b->q.num_free < n && !wait_for(b, n))
		return BLK_EDEV;
	struct virtq_buf bufs[3];
	/* The head id is the free-list head; its slot is ours until used. */
	struct blk_slot *s = &b->slots[b->q.free_head];
	s->hdr.type = type;
	s->hdr.reserved = 0;
	s->hdr.sector = sector;
	s->status = S_PENDING;
	unsigned k = 0;
	bufs[k++] = (struct virtq_buf){ &s->hdr, sizeof(s->hdr), false };
	if (len)
		bufs[k++] = (struct virtq_buf){ data, len, device_writes };
	bufs[k++] = (struct virtq_buf){ &s->status, 1, true };
	if (virtq_add(&b->q, bufs, k) < 0)
		return BLK_EDEV;
	b->inflight++;
	return 0;
}

static int queue_rw(struct blk_dev *b, uint32_t type, uint64_t sector,
		    const void *buf, uint32_t nsect)
{
	const uint8_t *p = buf;
	while (nsect) {
		uint32_t n = nsect < b->max_req_sectors ? nsect
							: b->max_req_sectors;
		int r = submit(b, type, sector, p, n * BLK_SECTOR,
			       type == T_IN);
		if (r < 0)
			return r;
		sector += n;
		p += (size_t)n * BLK_SECTOR;
		nsect -= n;
	}
	return 0;
}

int blk_queue_read(struct blk_dev *b, uint64_t sector, void *buf,
		   uint32_t nsect)
{
	return queue_rw(b, T_IN, sector, buf, nsect);
}

int blk_queue_write(struct blk_dev *b, uint64_t sector, const void *buf,
		    uint32_t nsect)
{
	return queue_rw(b, T_OUT, sector, buf, nsect);
}

int blk_complete(struct blk_dev *b)
{
	wait_for(b, 0);
	int err = b->err;
	b->err = 0;
	return err;
}

int blk_read(struct blk_dev *b, uint64_t sector, void *buf, uint32_t nsect)
{
	int r = blk_queue_read(b, sector, buf, nsect);
	int c = blk_complete(b);
	return r ? r : c;
}

int blk_write(struct blk_dev *b, uint64_t sector, const void *buf,
	      uint32_t nsect)
{
	int r = blk_queue_write(b, sector, buf, nsect);
	int c = blk_complete(b);
	return r ? r : c;
}

int blk_flush(struct blk_dev *b)
{
	/* A flush covers only completed writes: finish them first. */
	int r = blk_complete(b);
	if (r || !b->has_flush)
		return r;
	r = submit(b, T_FLUSH, 0, NULL, 0, false);
	int c = blk_complete(b);
	return r ? r : c;
}

int blk_get_id(struct blk_dev *b, char id[21])
{
	memset(id, 0, 21);
	int r = submit(b, T_GET_ID, 0, id, ID_BYTES, true);
	int c = blk_complete(b);
	id[ID_BYTES] = 0;
	return r ? r : c;
}

int blk_discard(struct blk_dev *b, uint64_t sector, uint64_t nsect)
{
	if (!b->has_discard)
		return BLK_EUNSUPP;
	int r = 0;
	while (nsect && !r) {
		uint32_t n = nsect < b->max_discard_sectors
				     ? (uint32_t)nsect
				     : b->max_discard_sectors;
		if (b->dev.broken)
			return BLK_EDEV;
		if (b->q.num_free < 3 && !wait_for(b, 3))
			break;
		struct blk_slot *s = &b->slots[b->q.free_head];
		s->seg.sector = sector;
		s->seg.num_sectors = n;
		s->seg.flags = 0;
		r = submit(b, T_DISCARD, 0, &s->seg, sizeof(s->seg), false);
		sector += n;
		nsect -= n;
	}
	int c = blk_complete(b);
	return r ? r : c;
}
