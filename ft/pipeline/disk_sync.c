#include "disk_sync.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ft/checkpoint/stream.h"
#include "ft/precopy/disk_copy.h"

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
	if (!(d->buf = malloc(8 + DISK_COPY_RUN)))
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

/* The engine reads each run into d->buf + 8, so that the section's
 * payload (u64 offset, then the data) is one buffer. */
struct stream_sink {
	struct disk_sync *d;
	uint16_t disk;
	struct kg_stream_writer *w;
	uint64_t *bytes;
};

/* Every run goes, zeros included: after the first round the destination
 * may hold data there. */
static int put_section(void *ctx, uint64_t off, const uint8_t *data,
		       size_t len, bool zero, struct kg_err *e)
{
	struct stream_sink *s = ctx;
	(void)data; /* at s->d->buf + 8 */
	(void)zero;
	memcpy(s->d->buf, &off, 8);
	*s->bytes += len;
	return kg_writer_section(s->w, KG_SEC_DISK_BLOCKS, s->disk, 1,
				 s->d->buf, 8 + len, e);
}

static const struct disk_copy_sink stream_sink = { .put = put_section };

/* The first round sends the data extents (the destination's new image
 * reads as zeros elsewhere), later ones the blocks written since. */
static int sync_send(void *ctx, struct kg_stream_writer *w, bool first,
		     uint64_t *bytes, struct kg_err *e)
{
	struct disk_sync *d = ctx;
	for (unsigned i = 0; i < d->vm->cfg.ndisks; i++) {
		struct virtio_blk *b = d->vm->blks[i];
		size_t words = words_of(b);
		uint64_t *bits = d->bits[i];
		/* Taken even on the first round, which sends everything:
		 * writes from here on are dirty for the next one. */
		memset(bits, 0, words * 8);
		virtio_blk_take_dirty(b, bits, words);
		struct stream_sink sink = { d, (uint16_t)i, w, bytes };
		struct disk_copy c = {
			.src = virtio_blk_fd(b), .src_path = virtio_blk_path(b),
			.size = virtio_blk_size(b), .block = DISK_TRACK_BLOCK,
			.buf = d->buf + 8, .sink = &stream_sink,
			.sink_ctx = &sink,
		};
		if ((first ? disk_copy_data(&c, e)
			   : disk_copy_blocks(&c, bits, words, e)) < 0)
			return -1;
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
