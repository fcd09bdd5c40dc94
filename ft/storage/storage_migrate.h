/*
 * Storage live migration: moves a running VM's disk to a new image file
 * without stopping the guest.
 *
 * The new file is created exclusively (an existing file is refused), sized
 * like the old one, and filled with the old image's data extents (holes
 * stay holes) while the device tracks the blocks the guest writes
 * meanwhile. Rounds then copy only those blocks while the guest goes on,
 * until few are left or their number stops shrinking. Then only the disk
 * device is quiesced — the vCPUs keep running, and only one that touches
 * this disk's registers waits — for the last blocks, an fdatasync of the
 * new file, and the switch of the device to it (the old image's lock is
 * dropped as the device closes it). A guest flush acknowledged before the
 * switch is durable in the old image; after it, in the new one.
 *
 * On any failure before the switch the VM runs on, untouched, on the old
 * image, and the new file is removed. Snapshots do not hold disk contents
 * (the user copies the images next to them), so existing snapshot files
 * neither block nor are affected by a migration.
 */
#ifndef KG_STORAGE_MIGRATE_H
#define KG_STORAGE_MIGRATE_H

#include <stdint.h>

#include "base/err.h"

struct vm;

struct storage_migrate_progress {
	unsigned round;        /* 0: the full copy; then the dirty rounds */
	uint64_t bytes;        /* copied so far, all rounds */
	uint64_t image_bytes;  /* the image's size */
	double percent;        /* of the image known to be in the new file */
	uint64_t dirty_blocks; /* DISK_TRACK_BLOCK blocks left to copy */
	double mbps;           /* copy rate of the last round, MB/s */
	double expected_downtime_ms; /* the dirty blocks at that rate */
};

struct storage_migrate_opts {
	unsigned max_rounds;   /* dirty rounds; 0: 30 */
	uint64_t final_blocks; /* stop rounding at this many; 0: 256 (1 MiB) */
	/* Called a few times a second and after each round; may be NULL. */
	void (*progress)(void *arg, const struct storage_migrate_progress *p);
	void *arg;
};

struct storage_migrate_stats {
	uint64_t total_us;     /* the whole migration */
	uint64_t pause_us;     /* the disk device quiesced (vCPUs ran on) */
	uint64_t bytes;        /* read from the old image and copied */
	unsigned rounds;       /* dirty rounds, plus the final one */
	uint64_t final_blocks; /* copied while quiesced */
};

/* Moves disk `disk` (0-based, --disk order) of a running VM to newpath.
 * o may be NULL for the defaults. Errors start "storage-migrate: ". */
int storage_migrate(struct vm *vm, unsigned disk, const char *newpath,
		    const struct storage_migrate_opts *o,
		    struct storage_migrate_stats *st, struct kg_err *e);

#endif
