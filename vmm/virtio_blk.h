/*
 * virtio-blk on a raw image file: read, write, flush (fdatasync: a write
 * is durable once a later flush completes), get-id, discard (punches a
 * hole). Requests run on the device's own worker thread; a vCPU's notify
 * only wakes it, so no vCPU waits for disk I/O (except a reset, which waits
 * for the one request in flight). The image is locked (flock) so two VMs
 * cannot write it at once.
 */
#ifndef KG_VIRTIO_BLK_H
#define KG_VIRTIO_BLK_H

#include <stdbool.h>
#include <stdint.h>
#include "err.h"

struct vm;
struct virtio_blk;
struct virtio_mmio;

struct disk_spec {
	char path[4096];
	bool readonly;
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

#endif
