/*
 * Disk contents over the replication stream (migrate --with-storage, HA,
 * FT): the source side is an epoch_disk_ops that sends each image's data
 * extents on the first round (holes and all-zero runs skipped: the
 * destination's new image reads as zeros) and then the blocks the guest
 * wrote since (virtio_blk tracking) — the pre-copy engine's disk copy
 * (ft/precopy/disk_copy.h) with a sink that makes DISK_BLOCKS sections;
 * the sink side is an epoch_disk_sink that writes them into the
 * destination's images, bounds-checked against each image's size.
 */
#ifndef KG_DISK_SYNC_H
#define KG_DISK_SYNC_H

#include <stdint.h>

#include "base/err.h"
#include "vmm/vm.h"
#include "ft/checkpoint/epoch.h"

struct disk_sync {
	struct vm *vm;
	uint64_t *bits[VM_MAX_DISKS];
	uint8_t *buf; /* a section payload: u64 offset, then data */
};

/* Turns tracking on for every disk of vm. */
int disk_sync_init(struct disk_sync *d, struct vm *vm, struct kg_err *e);
/* Tracking off; frees. */
void disk_sync_fini(struct disk_sync *d);
extern const struct epoch_disk_ops disk_sync_ops; /* ctx: struct disk_sync */

/* ctx: the receiving struct vm. */
extern const struct epoch_disk_sink disk_sync_sink;
/* fdatasync every disk of vm (before the guest runs on them). */
int disk_sync_flush(struct vm *vm, struct kg_err *e);

#endif
