#include "disk_sync.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ft/checkpoint/stream.h"

#define RUN_MAX (1u << 20) /* data bytes per section */

static size_t words_of(const struct virtio_blk *b)
{
	uint64_t blocks = (virtio_blk_size(b) + DISK_TRACK_BLOCK - 1) /
			  DISK_TRACK_BLOCK;
	return (size_t)((blocks + 63) / 64);
}

void disk_sync_fini(struct disk_sync *d)
{
	for (unsigned i = 0; d->vm && i < d->vm->cfg.ndisks; i++) {
		struct kg_err e;
		if (d->bits[i])
			virtio_blk_track(d->vm->blks[i], false, &e);
		free(d->bits[i]);
		d->bits[i] = NULL;
	}
	free(d->buf);
	d->buf = NULL;
}

int disk_sync_init(struct disk_sync *d, struct vm *vm, struct kg_err *e)
{
	memset(d, 0, sizeof(*d));
	d->vm = vm;
	if (!(d->buf = malloc(8 + RUN_MAX)))
		return kg_errf(e, "out of memory");
	for (unsigned i = 0; i < vm->cfg.ndisks; i++) {
		if (!(d->bits[i] = calloc(words_of(vm->blks[i]), 8))) {
			disk_sync_fini(d);
			return kg_errf(e, "out of memory");
		}
		if (virtio_blk_track(vm->blks[i], true, e) < 0) {
			free(d->bits[i]);
			d->bits[i] = NULL;
			disk_sync_fini(d);
			return -1;
		}
	}
	return 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

/* Sends [off, off+len) of disk i as one section (unless first and zero). */
static int send_run(struct disk_sync *d, unsigned i, uint64_t off,
		    size_t len, bool first, struct kg_stream_writer *w,
		    uint64_t *bytes, struct kg_err *e)
{
	struct virtio_blk *b = d->vm->blks[i];
	size_t done = 0;
	while (done < len) {
		ssize_t k = pread(virtio_blk_fd(b), d->buf + 8 + done,
				  len - done, (off_t)(off + done));
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return kg_errno(e, "disk %s: pread", virtio_blk_path(b));
		if (k == 0) /* past the end: reads as zeros */
			break;
		done += (size_t)k;
	}
	memset(d->buf + 8 + done, 0, len - done);
	if (first && all_zero(d->buf + 8, len))
		return 0;
	memcpy(d->buf, &off, 8);
	*bytes += len;
	return kg_writer_section(w, KG_SEC_DISK_BLOCKS, (uint16_t)i, 1, d->buf,
				 8 + len, e);
}

static int sync_send(void *ctx, struct kg_stream_writer *w, bool first,
		     uint64_t *bytes, struct kg_err *e)
{
	struct disk_sync *d = ctx;
	for (unsigned i = 0; i < d->vm->cfg.ndisks; i++) {
		struct virtio_blk *b = d->vm->blks[i];
		uint64_t size = virtio_blk_size(b);
		size_t words = words_of(b);
		uint64_t *bits = d->bits[i];
		/* Taken even on the first round, which sends everything:
		 * writes from here on are dirty for the next one. */
		memset(bits, 0, words * 8);
		virtio_blk_take_dirty(b, bits, words);
		uint64_t nblocks = (size + DISK_TRACK_BLOCK - 1) / DISK_TRACK_BLOCK;
		for (uint64_t blk = 0; blk < nblocks;) {
			if (!first && !(bits[blk / 64] >> (blk % 64) & 1)) {
				blk++;
				continue;
			}
			uint64_t end = blk + 1;
			while (end < nblocks &&
			       (end - blk) * DISK_TRACK_BLOCK < RUN_MAX &&
			       (first || bits[end / 64] >> (end % 64) & 1))
				end++;
			uint64_t off = blk * DISK_TRACK_BLOCK;
			uint64_t len = end * DISK_TRACK_BLOCK - off;
			if (off + len > size)
				len = size - off;
			if (send_run(d, i, off, (size_t)len, first, w, bytes, e) < 0)
				return -1;
			blk = end;
		}
	}
	return 0;
}

const struct epoch_disk_ops disk_sync_ops = { .send = sync_send };

static int sink_apply(void *ctx, uint16_t disk, uint64_t offset,
		      const uint8_t *data, size_t len, struct kg_err *e)
{
	struct vm *vm = ctx;
	if (disk >= vm->cfg.ndisks)
		return kg_errk(e, KG_ERR_CORRUPT,
			       "disk-blocks for disk %u; this VM has %u",
			       disk, vm->cfg.ndisks);
	struct virtio_blk *b = vm->blks[disk];
	uint64_t size = virtio_blk_size(b);
	if (offset % 512 || offset > size || len > size - offset)
		return kg_errk(e, KG_ERR_CORRUPT,
			       "disk-blocks at offset %llu + %zu outside "
			       "disk %u (%llu bytes)",
			       (unsigned long long)offset, len, disk,
			       (unsigned long long)size);
	for (size_t done = 0; done < len;) {
		ssize_t k = pwrite(virtio_blk_fd(b), data + done, len - done,
				   (off_t)(offset + done));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return kg_errno(e, "disk %s: pwrite", virtio_blk_path(b));
		done += (size_t)k;
	}
	return 0;
}

const struct epoch_disk_sink disk_sync_sink = { .apply = sink_apply };

int disk_sync_flush(struct vm *vm, struct kg_err *e)
{
	for (unsigned i = 0; i < vm->cfg.ndisks; i++)
		if (fdatasync(virtio_blk_fd(vm->blks[i])) < 0)
			return kg_errno(e, "disk %s: fdatasync",
					virtio_blk_path(vm->blks[i]));
	return 0;
}
