/*
 * Copying a raw disk image while something else may write it: the data
 * extents once (holes stay holes), then chosen blocks again. Used by
 * storage migration; the caller handles dirty tracking and ordering.
 *
 * Errors name the file and the direction: "reading PATH: ...",
 * "writing PATH: ...". Reads are positional, so the source fd may be
 * shared with a device worker.
 */
#ifndef KG_IMAGE_COPY_H
#define KG_IMAGE_COPY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define IMAGE_COPY_CHUNK (1u << 20)

struct image_copy {
	int src, dst;
	const char *src_path, *dst_path;
	uint64_t size;     /* bytes; both files have this length */
	uint64_t block;    /* bytes per dirty bit */
	uint8_t *buf;      /* IMAGE_COPY_CHUNK bytes, the caller's */
	uint64_t bytes;    /* read so far (grows; the caller may reset it) */
	/* Called between chunks with the position reached; returning false
	 * stops the copy with "cancelled". May be NULL. */
	bool (*tick)(void *arg, uint64_t pos);
	void *arg;
};

/* Copies every data extent of src (SEEK_DATA/SEEK_HOLE; the whole file
 * when the filesystem cannot say) into dst, which must be all holes:
 * chunks that read as zeros are not written, so dst stays sparse. */
int image_copy_data(struct image_copy *c, struct kg_err *e);

/* Copies the blocks whose bits are set in bits[0..words), merging
 * neighbours into runs of up to IMAGE_COPY_CHUNK. A run that reads as
 * zeros is punched out of dst (written when punching is unsupported). */
int image_copy_blocks(struct image_copy *c, const uint64_t *bits,
		      size_t words, struct kg_err *e);

/* Whether n bytes at p are all zero (pure). */
bool image_is_zero(const uint8_t *p, size_t n);

#endif
