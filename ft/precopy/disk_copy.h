/*
 * The one disk-copy engine: reads a raw image while the guest may write
 * it — its data extents once, then chosen (dirty) blocks — and hands the
 * runs to a sink. Storage migration's sink writes them into the new file
 * (disk_file_sink); the replication stream's (ft/pipeline/disk_sync.c)
 * puts them into DISK_BLOCKS sections (migrate --with-storage, HA/FT).
 * The caller handles dirty tracking, ordering and durability.
 *
 * The data pass assumes a destination that reads as zeros: holes
 * (SEEK_DATA/SEEK_HOLE; the whole file when the filesystem cannot say) and
 * chunks that read as zeros are not handed on. The block pass hands every
 * run, marking those that read as zeros, since the destination may hold
 * data there.
 *
 * Errors name the file and the direction: "reading PATH: ...",
 * "writing PATH: ...". Reads are positional, so the source fd may be
 * shared with a device worker.
 */
#ifndef KG_DISK_COPY_H
#define KG_DISK_COPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define DISK_COPY_RUN (1u << 20) /* bytes per run at most */

struct disk_copy_sink {
	/* [off, off+len) of the source, read into data (the engine's buf);
	 * zero: it reads as zeros (block pass only). */
	int (*put)(void *ctx, uint64_t off, const uint8_t *data, size_t len,
		   bool zero, struct kg_err *e);
};

struct disk_copy {
	int src;
	const char *src_path;
	uint64_t size;     /* bytes of the source to copy */
	uint64_t block;    /* bytes per dirty bit */
	uint8_t *buf;      /* DISK_COPY_RUN bytes, the caller's */
	uint64_t bytes;    /* read so far (grows; the caller may reset it) */
	const struct disk_copy_sink *sink;
	void *sink_ctx;
	/* Called between runs with the position reached; returning false
	 * stops the copy with "cancelled". May be NULL. */
	bool (*tick)(void *arg, uint64_t pos);
	void *arg;
};

/* Every data extent of the source, in runs of at most DISK_COPY_RUN;
 * runs that read as zeros are skipped. */
int disk_copy_data(struct disk_copy *c, struct kg_err *e);

/* The blocks whose bits are set in bits[0..words), neighbours merged into
 * runs of at most DISK_COPY_RUN; the last block may be short. */
int disk_copy_blocks(struct disk_copy *c, const uint64_t *bits,
		     size_t words, struct kg_err *e);

/* Whether n bytes at p are all zero (pure). */
bool disk_copy_is_zero(const uint8_t *p, size_t n);

/* A sink writing into a file of the same length that starts all holes:
 * data is written, zero runs are punched out (written where punching is
 * unsupported). */
struct disk_file {
	int fd;
	const char *path;
};
extern const struct disk_copy_sink disk_file_sink; /* ctx: struct disk_file */

#endif
