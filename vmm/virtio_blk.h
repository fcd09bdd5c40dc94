/*
 * virtio-blk on a raw image file: read, write, flush (fdatasync: a write
 * is durable once a later flush completes), get-id, discard (punches a
 * hole). Requests run on the device's own worker thread; a vCPU's notify
 * only wakes it, so no vCPU waits for disk I/O (except a reset, which waits
 * for the one request in flight). The image is locked (flock) so two VMs
 * cannot write it at once.
 *
 * For storage migration the device can track which blocks the guest wrote
 * (virtio_blk_track/take_dirty) and, while quiesced, switch to another
 * backing file (virtio_blk_switch). For live migration over shared storage
 * the lock can be deferred and taken or dropped later (virtio_blk_lock):
 * the source drops it at hand-over, the destination takes it just before
 * it resumes.
 *
 * Threads: the worker runs requests; everything else here is called by one
 * controlling thread at a time (the VM's owner or one control job).
 */
#ifndef KG_VIRTIO_BLK_H
#define KG_VIRTIO_BLK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "base/err.h"

struct vm;
struct virtio_blk;
struct virtio_mmio;

/* Dirty tracking granularity, bytes: one bit per block of the image. */
#define DISK_TRACK_BLOCK 4096u

struct disk_spec {
	char path[4096];
	bool readonly;
	/* Set by code, never parsed: open the image but do not lock it at
	 * create (a migration destination locks it before resuming). */
	bool defer_lock;
	/* Set by code: no image at all (replaying a recording, where the
	 * device exists for its registers and never does I/O). */
	bool detached;
};

/* Parses "PATH[,readonly]" (pure). */
int disk_spec_parse(const char *s, struct disk_spec *d, struct kg_err *e);

struct virtio_blk *virtio_blk_create(struct vm *vm, const struct disk_spec *d,
				     uint64_t base, unsigned irq,
				     struct kg_err *e);
void virtio_blk_reset(struct virtio_blk *b);
/* Its transport (state tables, quiesce). */
struct virtio_mmio *virtio_blk_transport(struct virtio_blk *b);
void virtio_blk_destroy(struct virtio_blk *b);

/* Takes (lock: flock LOCK_EX|LOCK_NB, LOCK_SH for a read-only disk) or
 * drops the image's lock; a no-op when already so. Fails with "disk PATH:
 * locked by another process (...)" when someone else holds it. */
int virtio_blk_lock(struct virtio_blk *b, bool lock, struct kg_err *e);

/* Starts (on) or stops dirty-block tracking; it briefly quiesces the
 * device. Starting clears nothing from before: every block starts clean,
 * so the caller copies the whole image once after starting. Starting
 * twice fails (one tracker at a time). A block is marked only after the
 * write or discard covering it has completed on the image. */
int virtio_blk_track(struct virtio_blk *b, bool on, struct kg_err *e);
/* ORs the dirty bits (bit i = bytes [i, i+1) * DISK_TRACK_BLOCK) into
 * bits[0..words) and clears them in the device; returns how many it
 * took. Safe against the worker; 0 when tracking is off. */
uint64_t virtio_blk_take_dirty(struct virtio_blk *b, uint64_t *bits,
			       size_t words);

/* The image: its fd (for reading while the guest runs: pread only), its
 * size in bytes (at create; images do not grow), its path. */
int virtio_blk_fd(const struct virtio_blk *b);
uint64_t virtio_blk_size(const struct virtio_blk *b);
const char *virtio_blk_path(const struct virtio_blk *b);

/* Only while the device is quiesced (virtio_mmio_quiesce on its
 * transport): makes fd, a regular file of the same size, the backing
 * image. If the device holds its lock (not deferred), it locks fd first
 * and fails without change if it cannot; then it closes the old fd, which
 * drops the old image's lock. On success the device owns fd, and both its
 * spec and vm->cfg.disks[i].path say path: they change under the transport
 * lock, so another thread reads that path while holding it (quiesce). Tracking, if on, goes on. The
 * guest-visible serial stays the one derived from the first image. */
int virtio_blk_switch(struct virtio_blk *b, int fd, const char *path,
		      struct kg_err *e);

/* Pure helpers behind the tracking, exposed for tests: the bitmap words
 * for an image of `size` bytes, and marking the blocks [off, off+len)
 * touches (bits beyond `words` are ignored; bits may be NULL). */
size_t disk_track_words(uint64_t size);
void disk_track_mark(_Atomic uint64_t *bits, size_t words, uint64_t off,
		     uint64_t len);

#endif
