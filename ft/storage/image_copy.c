#include "image_copy.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

bool image_is_zero(const uint8_t *p, size_t n)
{
	/* memcmp against itself shifted: zero iff the first byte is zero
	 * and every byte equals its neighbour. */
	return n == 0 || (p[0] == 0 && !memcmp(p, p + 1, n - 1));
}

static int read_at(struct image_copy *c, uint64_t off, size_t n,
		   struct kg_err *e)
{
	for (size_t done = 0; done < n;) {
		ssize_t r = pread(c->src, c->buf + done, n - done,
				  (off_t)(off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return kg_errno(e, "reading %s", c->src_path);
		if (r == 0)
			return kg_errf(e, "reading %s: unexpected end of file "
				       "at byte %llu (was it truncated?)",
				       c->src_path,
				       (unsigned long long)(off + done));
		done += (size_t)r;
	}
	c->bytes += n;
	return 0;
}

static int write_at(struct image_copy *c, uint64_t off, size_t n,
		    struct kg_err *e)
{
	for (size_t done = 0; done < n;) {
		ssize_t r = pwrite(c->dst, c->buf + done, n - done,
				   (off_t)(off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = EIO;
			return kg_errno(e, "writing %s", c->dst_path);
		}
		done += (size_t)r;
	}
	return 0;
}

static int tick(struct image_copy *c, uint64_t pos, struct kg_err *e)
{
	if (c->tick && !c->tick(c->arg, pos))
		return kg_errf(e, "cancelled");
	return 0;
}

/* The next data extent at or after *pos: [*pos, *end); false when none. */
static int next_extent(struct image_copy *c, uint64_t *pos, uint64_t *end,
		       struct kg_err *e)
{
	off_t d = lseek(c->src, (off_t)*pos, SEEK_DATA);
	if (d < 0 && errno == ENXIO)
		return 0;
	if (d < 0 && errno == EINVAL) { /* no SEEK_DATA here: all data */
		*end = c->size;
		return 1;
	}
	if (d < 0)
		return kg_errno(e, "reading %s: lseek(SEEK_DATA)", c->src_path);
	off_t h = lseek(c->src, d, SEEK_HOLE);
	if (h < 0)
		return kg_errno(e, "reading %s: lseek(SEEK_HOLE)", c->src_path);
	*pos = (uint64_t)d;
	*end = (uint64_t)h < c->size ? (uint64_t)h : c->size;
	return *pos < c->size;
}

int image_copy_data(struct image_copy *c, struct kg_err *e)
{
	uint64_t pos = 0, end = 0;
	int r;
	while (pos < c->size && (r = next_extent(c, &pos, &end, e)) != 0) {
		if (r < 0)
			return -1;
		while (pos < end) {
			size_t n = end - pos < IMAGE_COPY_CHUNK
					   ? (size_t)(end - pos)
					   : IMAGE_COPY_CHUNK;
			if (read_at(c, pos, n, e) < 0)
				return -1;
			if (!image_is_zero(c->buf, n) && write_at(c, pos, n, e) < 0)
				return -1;
			pos += n;
			if (tick(c, pos, e) < 0)
				return -1;
		}
	}
	return 0;
}

static int copy_run(struct image_copy *c, uint64_t off, uint64_t len,
		    struct kg_err *e)
{
	if (off >= c->size)
		return 0;
	if (len > c->size - off)
		len = c->size - off; /* the last block may be short */
	if (read_at(c, off, (size_t)len, e) < 0)
		return -1;
	if (!image_is_zero(c->buf, (size_t)len))
		return write_at(c, off, (size_t)len, e);
	if (fallocate(c->dst, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)off, (off_t)len) == 0)
		return 0;
	if (errno != EOPNOTSUPP)
		return kg_errno(e, "writing %s: punching a hole", c->dst_path);
	return write_at(c, off, (size_t)len, e);
}

int image_copy_blocks(struct image_copy *c, const uint64_t *bits,
		      size_t words, struct kg_err *e)
{
	uint64_t per_run = IMAGE_COPY_CHUNK / c->block;
	uint64_t start = 0, n = 0; /* the run being gathered, in blocks */
	for (size_t w = 0; w < words; w++) {
		uint64_t word = bits[w];
		while (word) {
			uint64_t i = w * 64 + (uint64_t)__builtin_ctzll(word);
			word &= word - 1;
			if (n && (i != start + n || n == per_run)) {
				if (copy_run(c, start * c->block, n * c->block,
					     e) < 0 ||
				    tick(c, start * c->block, e) < 0)
					return -1;
				n = 0;
			}
			if (!n)
				start = i;
			n++;
		}
	}
	if (n && copy_run(c, start * c->block, n * c->block, e) < 0)
		return -1;
	return 0;
}
