#include "virtio_blk.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "virtio_mmio.h"
#include "vm.h"
#include "base/log.h"

#define VIRTIO_ID_BLOCK 2
#define VIRTIO_BLK_F_SEG_MAX (1ull << 2)
#define VIRTIO_BLK_F_RO (1ull << 5)
#define VIRTIO_BLK_F_BLK_SIZE (1ull << 6)
#define VIRTIO_BLK_F_FLUSH (1ull << 9)
#define VIRTIO_BLK_F_DISCARD (1ull << 13)

enum { T_IN = 0, T_OUT = 1, T_FLUSH = 4, T_GET_ID = 8, T_DISCARD = 11 };
enum { S_OK = 0, S_IOERR = 1, S_UNSUPP = 2 };

#define SECTOR 512u
#define BOUNCE (1u << 20)
#define ID_BYTES 20
#define MAX_DISCARD_SEG 32

struct virtio_blk {
	struct virtio_mmio t;
	struct vm *vm;
	struct disk_spec spec;
	int fd, kick_fd;
	uint64_t capacity; /* sectors */
	char serial[ID_BYTES];
	pthread_t worker;
	bool worker_started;
	atomic_bool stop;
	struct virtq_chain chain; /* worker-owned */
	uint8_t *bounce;
	uint64_t size;   /* bytes, the image's length at create */
	bool locked;     /* holds its flock on fd */
	/* Dirty tracking: one bit per DISK_TRACK_BLOCK, NULL when off. The
	 * pointer changes only while the transport is quiesced, so the
	 * worker (which reads it only inside a request) never sees it move;
	 * the words are atomic because take_dirty runs concurrently. */
	_Atomic uint64_t *dirty;
	size_t dirty_words;
};

int disk_spec_parse(const char *s, struct disk_spec *d, struct kg_err *e)
{
	memset(d, 0, sizeof(*d));
	const char *comma = strchr(s, ',');
	size_t n = comma ? (size_t)(comma - s) : strlen(s);
	if (n == 0)
		return kg_errf(e, "bad disk '%s': empty path", s);
	if (n >= sizeof(d->path))
		return kg_errf(e, "bad disk '%.64s...': path too long (over "
			       "%zu bytes)", s, sizeof(d->path) - 1);
	memcpy(d->path, s, n);
	while (comma) {
		const char *opt = comma + 1;
		comma = strchr(opt, ',');
		size_t len = comma ? (size_t)(comma - opt) : strlen(opt);
		if (len == 8 && !strncmp(opt, "readonly", 8))
			d->readonly = true;
		else
			return kg_errf(e, "bad disk option '%.*s' (known: "
				       "readonly)", (int)len, opt);
	}
	return 0;
}

/* Locks fd the way the device locks its image: shared when read-only. */
static int lock_fd(int fd, bool readonly, const char *path, struct kg_err *e)
{
	if (flock(fd, (readonly ? LOCK_SH : LOCK_EX) | LOCK_NB) == 0)
		return 0;
	if (errno == EWOULDBLOCK)
		return kg_errf(e, "disk %s: locked by another process (is "
			       "another kagami using it?)", path);
	return kg_errno(e, "disk %s: flock", path);
}

int virtio_blk_lock(struct virtio_blk *b, bool lock, struct kg_err *e)
{
	if (lock == b->locked)
		return 0;
	if (lock) {
		if (lock_fd(b->fd, b->spec.readonly, b->spec.path, e) < 0)
			return -1;
	} else if (flock(b->fd, LOCK_UN) < 0) {
		return kg_errno(e, "disk %s: flock(LOCK_UN)", b->spec.path);
	}
	b->locked = lock;
	return 0;
}

static void config_read(void *dev, uint64_t off, void *data, unsigned size)
{
	struct virtio_blk *b = dev;
	uint8_t cfg[48] = { 0 };
	uint32_t seg_max = VIRTQ_MAX_SIZE - 2, blk_size = SECTOR;
	uint32_t max_discard = UINT32_MAX, discard_seg = MAX_DISCARD_SEG;
	uint32_t align = 1;
	memcpy(cfg + 0, &b->capacity, 8);
	memcpy(cfg + 12, &seg_max, 4);
	memcpy(cfg + 20, &blk_size, 4);
	memcpy(cfg + 36, &max_discard, 4);
	memcpy(cfg + 40, &discard_seg, 4);
	memcpy(cfg + 44, &align, 4);
	if (off < sizeof(cfg) && size <= sizeof(cfg) - off)
		memcpy(data, cfg + off, size);
}

static void config_write(void *dev, uint64_t off, const void *data,
			 unsigned size)
{
	(void)dev, (void)off, (void)data, (void)size; /* read-only config */
}

static void notify(void *dev, unsigned queue)
{
	struct virtio_blk *b = dev;
	uint64_t one = 1;
	(void)queue;
	ssize_t r = write(b->kick_fd, &one, sizeof(one));
	(void)r; /* an eventfd write fails only on overflow: already kicked */
}

static void dev_reset(void *dev)
{
	(void)dev; /* no device state beyond the transport's */
}

static const struct virtio_dev_ops blk_ops = {
	.name = "virtio-blk", .device_id = VIRTIO_ID_BLOCK, .nqueues = 1,
	.config_read = config_read, .config_write = config_write,
	.notify = notify, .reset = dev_reset,
};

static void log_io_error(struct virtio_blk *b, const char *op, uint64_t sector)
{
	kg_log(KG_LOG_INFO, "virtio-blk %s: %s at sector %llu: %s",
		b->spec.path, op, (unsigned long long)sector, strerror(errno));
}

static bool in_range(const struct virtio_blk *b, uint64_t sector,
		     uint64_t bytes)
{
	uint64_t n = bytes / SECTOR;
	return bytes % SECTOR == 0 && sector <= b->capacity &&
	       n <= b->capacity - sector;
}

/* Returns the status; *written counts bytes put into the data buffers. */
static uint8_t do_read(struct virtio_blk *b, uint64_t sector, uint64_t len,
		       uint64_t *written)
{
	if (!in_range(b, sector, len))
		return S_IOERR;
	struct kg_err e;
	for (uint64_t done = 0; done < len;) {
		size_t chunk = len - done < BOUNCE ? (size_t)(len - done) : BOUNCE;
		ssize_t r = pread(b->fd, b->bounce, chunk,
				  (off_t)(sector * SECTOR + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = EIO;
			log_io_error(b, "read", sector);
			return S_IOERR;
		}
		if (virtq_chain_write(&b->chain, &b->vm->gate, done, b->bounce,
				      (uint64_t)r, &e) < 0)
			return S_IOERR;
		done += (uint64_t)r;
		*written = done;
	}
	return S_OK;
}

size_t disk_track_words(uint64_t size)
{
	uint64_t blocks = (size + DISK_TRACK_BLOCK - 1) / DISK_TRACK_BLOCK;
	return (size_t)((blocks + 63) / 64);
}

void disk_track_mark(_Atomic uint64_t *bits, size_t words, uint64_t off,
		     uint64_t len)
{
	if (!bits || !len)
		return;
	uint64_t first = off / DISK_TRACK_BLOCK;
	uint64_t last = (off + len - 1) / DISK_TRACK_BLOCK;
	for (uint64_t i = first; i <= last && i / 64 < words; i++)
		atomic_fetch_or(&bits[i / 64], 1ull << (i % 64));
}

/* Called only once the write or discard has reached the image. A copier
 * takes the bits, then reads the blocks: if this write completed before
 * the take, the copier's read sees its data; if it completes after, the
 * bit is set again here and the next round copies the block again. Marking
 * before the write would let the copier clear the bit, read the old data,
 * and never learn of the new. */
static void mark_dirty(struct virtio_blk *b, uint64_t off, uint64_t len)
{
	disk_track_mark(b->dirty, b->dirty_words, off, len);
}

static uint8_t do_write(struct virtio_blk *b, uint64_t sector, uint64_t len)
{
	if (b->spec.readonly || !in_range(b, sector, len))
		return S_IOERR;
	for (uint64_t done = 0; done < len;) {
		size_t chunk = len - done < BOUNCE ? (size_t)(len - done) : BOUNCE;
		virtq_chain_read(&b->chain, &b->vm->mem, 16 + done, b->bounce,
				 chunk);
		size_t off = 0;
		while (off < chunk) {
			ssize_t r = pwrite(b->fd, b->bounce + off, chunk - off,
					   (off_t)(sector * SECTOR + done + off));
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				if (r == 0)
					errno = EIO;
				log_io_error(b, "write", sector);
				return S_IOERR;
			}
			off += (size_t)r;
		}
		mark_dirty(b, sector * SECTOR + done, chunk);
		done += chunk;
	}
	return S_OK;
}

static uint8_t do_discard(struct virtio_blk *b, uint64_t data_len)
{
	struct {
		uint64_t sector;
		uint32_t num, flags;
	} seg;
	if (b->spec.readonly || data_len % sizeof(seg) ||
	    data_len / sizeof(seg) > MAX_DISCARD_SEG)
		return S_IOERR;
	for (uint64_t off = 0; off < data_len; off += sizeof(seg)) {
		virtq_chain_read(&b->chain, &b->vm->mem, 16 + off, &seg,
				 sizeof(seg));
		if (!in_range(b, seg.sector, (uint64_t)seg.num * SECTOR))
			return S_IOERR;
		if (seg.num && fallocate(b->fd, FALLOC_FL_PUNCH_HOLE |
						FALLOC_FL_KEEP_SIZE,
					 (off_t)(seg.sector * SECTOR),
					 (off_t)seg.num * SECTOR) < 0) {
			log_io_error(b, "discard", seg.sector);
			return S_IOERR;
		}
		mark_dirty(b, seg.sector * SECTOR, (uint64_t)seg.num * SECTOR);
	}
	return S_OK;
}

/* Handles one chain; returns the used length, or -1 when the request is
 * unanswerable (no status byte): the device is then broken. */
static int64_t handle(struct virtio_blk *b)
{
	struct virtq_chain *c = &b->chain;
	struct {
		uint32_t type, reserved;
		uint64_t sector;
	} hdr = { 0 };
	if (c->writable_len < 1)
		return -1;
	uint64_t data_in = c->writable_len - 1; /* before the status byte */
	uint64_t written = 0;
	uint8_t st;
	if (virtq_chain_read(c, &b->vm->mem, 0, &hdr, sizeof(hdr)) <
	    sizeof(hdr)) {
		st = S_IOERR;
	} else {
		uint64_t data_out = c->readable_len - sizeof(hdr);
		switch (hdr.type) {
		case T_IN:
			st = do_read(b, hdr.sector, data_in, &written);
			break;
		case T_OUT:
			st = do_write(b, hdr.sector, data_out);
			break;
		case T_FLUSH:
			st = S_OK;
			if (!b->spec.readonly && fdatasync(b->fd) < 0) {
				log_io_error(b, "flush", 0);
				st = S_IOERR;
			}
			break;
		case T_GET_ID: {
			uint64_t n = data_in < ID_BYTES ? data_in : ID_BYTES;
			struct kg_err e;
			st = virtq_chain_write(c, &b->vm->gate, 0, b->serial, n,
					       &e) < 0 ? S_IOERR : S_OK;
			written = n;
			break;
		}
		case T_DISCARD:
			st = do_discard(b, data_out);
			break;
		default:
			st = S_UNSUPP;
		}
	}
	struct kg_err e;
	if (virtq_chain_write(c, &b->vm->gate, data_in, &st, 1, &e) < 0)
		return -1;
	return (int64_t)(written + 1);
}

static void process_queue(struct virtio_blk *b)
{
	struct virtio_mmio *t = &b->t;
	struct kg_err e;
	pthread_mutex_lock(&t->lock);
	while (virtio_mmio_queue_live(t, 0)) {
		struct virtq *q = &t->queues[0];
		int r = virtq_pop(q, &b->vm->mem, &b->chain, &e);
		if (r < 0)
			virtio_mmio_set_broken(t, e.msg);
		if (r <= 0)
			break;
		uint32_t gen = virtio_mmio_begin_request(t);
		pthread_mutex_unlock(&t->lock);
		int64_t used = handle(b);
		pthread_mutex_lock(&t->lock);
		/* A reset, or the queue taken down, meanwhile: the result
		 * has nowhere to go. */
		if (!virtio_mmio_end_request(t, gen) ||
		    !virtio_mmio_queue_live(t, 0))
			continue;
		if (used < 0) {
			virtio_mmio_set_broken(t, "request without a writable "
					       "status byte");
			break;
		}
		if (virtq_push(q, &b->vm->gate, b->chain.head, (uint32_t)used,
			       &e) < 0) {
			virtio_mmio_set_broken(t, e.msg);
			break;
		}
		virtio_mmio_notify_used(t, 0);
	}
	pthread_mutex_unlock(&t->lock);
}

static void *worker(void *arg)
{
	struct virtio_blk *b = arg;
	for (;;) {
		uint64_t n;
		ssize_t r = read(b->kick_fd, &n, sizeof(n));
		if (r < 0 && errno == EINTR)
			continue;
		if (atomic_load(&b->stop))
			return NULL;
		process_queue(b);
	}
}

struct virtio_blk *virtio_blk_create(struct vm *vm, const struct disk_spec *d,
				     uint64_t base, unsigned irq,
				     struct kg_err *e)
{
	struct virtio_blk *b = calloc(1, sizeof(*b));
	if (!b) {
		kg_errf(e, "out of memory");
		return NULL;
	}
	b->vm = vm;
	b->spec = *d;
	b->kick_fd = -1;
	b->fd = -1;
	if (d->detached)
		goto no_image;
	b->fd = open(d->path, (d->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (b->fd < 0) {
		kg_errno(e, "disk %s", d->path);
		goto fail;
	}
	struct stat st;
	if (fstat(b->fd, &st) < 0) {
		kg_errno(e, "disk %s: fstat", d->path);
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		kg_errf(e, "disk %s: not a regular file (raw images only)",
			d->path);
		goto fail;
	}
	if (!d->defer_lock && virtio_blk_lock(b, true, e) < 0)
		goto fail;
	b->size = (uint64_t)st.st_size;
	b->capacity = (uint64_t)st.st_size / SECTOR;
	snprintf(b->serial, sizeof(b->serial), "kg%llx-%llx",
		 (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);
no_image:
	b->bounce = malloc(BOUNCE);
	if (!b->bounce) {
		kg_errf(e, "disk %s: out of memory", d->path);
		goto fail;
	}
	b->kick_fd = eventfd(0, EFD_CLOEXEC);
	if (b->kick_fd < 0) {
		kg_errno(e, "disk %s: eventfd", d->path);
		goto fail;
	}
	uint64_t features = VIRTIO_BLK_F_SEG_MAX | VIRTIO_BLK_F_BLK_SIZE |
			    VIRTIO_BLK_F_FLUSH | VIRTIO_BLK_F_DISCARD |
			    (d->readonly ? VIRTIO_BLK_F_RO : 0);
	if (virtio_mmio_init(&b->t, vm, base, irq, &blk_ops, b, features, e) < 0)
		goto fail;
	b->t.io_in_replay = !d->detached;
	/* Notifications go straight to the worker; if KVM refuses, they
	 * exit and notify() forwards them. */
	struct kg_err ignored;
	virtio_mmio_ioeventfd(&b->t, 0, b->kick_fd, &ignored);
	int r = pthread_create(&b->worker, NULL, worker, b);
	if (r) {
		errno = r;
		kg_errno(e, "disk %s: pthread_create", d->path);
		goto fail;
	}
	b->worker_started = true;
	return b;
fail:
	virtio_blk_destroy(b);
	return NULL;
}

void virtio_blk_reset(struct virtio_blk *b)
{
	virtio_mmio_reset(&b->t);
}

void virtio_blk_destroy(struct virtio_blk *b)
{
	if (!b)
		return;
	if (b->worker_started) {
		uint64_t one = 1;
		atomic_store(&b->stop, true);
		ssize_t r = write(b->kick_fd, &one, sizeof(one));
		(void)r;
		pthread_join(b->worker, NULL);
	}
	virtio_mmio_destroy(&b->t);
	if (b->kick_fd >= 0)
		close(b->kick_fd);
	if (b->fd >= 0)
		close(b->fd); /* releases the flock */
	free(b->bounce);
	free((void *)b->dirty);
	free(b);
}

struct virtio_mmio *virtio_blk_transport(struct virtio_blk *b)
{
	return &b->t;
}

int virtio_blk_track(struct virtio_blk *b, bool on, struct kg_err *e)
{
	if (on == (b->dirty != NULL))
		return on ? kg_errf(e, "disk %s: dirty tracking is already on "
				    "(another storage migration?)", b->spec.path)
			  : 0;
	_Atomic uint64_t *bits = NULL;
	size_t words = disk_track_words(b->size);
	if (on && !(bits = calloc(words ? words : 1, sizeof(*bits))))
		return kg_errf(e, "disk %s: out of memory for the dirty bitmap",
			       b->spec.path);
	/* No request in flight while the pointer moves (see struct). */
	virtio_mmio_quiesce(&b->t);
	_Atomic uint64_t *old = b->dirty;
	b->dirty = bits;
	b->dirty_words = on ? words : 0;
	virtio_mmio_release(&b->t);
	free((void *)old);
	return 0;
}

uint64_t virtio_blk_take_dirty(struct virtio_blk *b, uint64_t *bits,
			       size_t words)
{
	uint64_t n = 0;
	if (!b->dirty)
		return 0;
	if (words > b->dirty_words)
		words = b->dirty_words;
	for (size_t i = 0; i < words; i++) {
		uint64_t w = atomic_exchange(&b->dirty[i], 0);
		bits[i] |= w;
		n += (uint64_t)__builtin_popcountll(w);
	}
	return n;
}

int virtio_blk_fd(const struct virtio_blk *b)
{
	return b->fd;
}

uint64_t virtio_blk_size(const struct virtio_blk *b)
{
	return b->size;
}

const char *virtio_blk_path(const struct virtio_blk *b)
{
	return b->spec.path;
}

int virtio_blk_switch(struct virtio_blk *b, int fd, const char *path,
		      struct kg_err *e)
{
	size_t n = strlen(path);
	if (n == 0 || n >= sizeof(b->spec.path))
		return kg_errf(e, "disk %s: new path is empty or too long",
			       b->spec.path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return kg_errno(e, "disk %s: fstat", path);
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != b->size)
		return kg_errf(e, "disk %s: not a regular file of %llu bytes "
			       "(the size of %s)", path,
			       (unsigned long long)b->size, b->spec.path);
	if (b->locked && lock_fd(fd, b->spec.readonly, path, e) < 0)
		return -1;
	/* Closing drops the old image's lock: only now may another process
	 * (the migration's other end) take it. */
	if (close(b->fd) < 0)
		kg_log(KG_LOG_INFO, "disk %s: close: %s", b->spec.path,
			strerror(errno));
	b->fd = fd;
	memcpy(b->spec.path, path, n + 1);
	for (unsigned i = 0; i < VM_MAX_DISKS; i++)
		if (b->vm->blks[i] == b)
			memcpy(b->vm->cfg.disks[i].path, path, n + 1);
	return 0;
}
