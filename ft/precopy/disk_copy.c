#include "disk_copy.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

bool disk_copy_is_zero(const uint8_t *p, size_t n)
{
	/* memcmp against itself shifted: zero iff the first byte is zero
	 * and every byte equals its neighbour. */
	return n == 0 || (p[0] == 0 && !memcmp(p, p + 1, n - 1));
}

static int read_at(struct disk_copy *c, uint64_t off, size_t n,
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

static int tick(struct disk_copy *c, uint64_t pos, struct kg_err *e)
{
	if (c->tick && !c->tick(c->arg, pos))
		return kg_errf(e, "cancelled");
	return 0;
}

/* The next data extent at or after *pos: [*pos, *end); 0 when none. */
static int next_extent(struct disk_copy *c, uint64_t *pos, uint64_t *end,
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

int disk_copy_data(struct disk_copy *c, struct kg_err *e)
{
	uint64_t pos = 0, end = 0;
	int r;
	while (pos < c->size && (r = next_extent(c, &pos, &end, e)) != 0) {
		if (r < 0)
			return -1;
		while (pos < end) {
			size_t n = end - pos < DISK_COPY_RUN
					   ? (size_t)(end - pos)
					   : DISK_COPY_RUN;
			if (read_at(c, pos, n, e) < 0)
				return -1;
			if (!disk_copy_is_zero(c->buf, n) &&
			    c->sink->put(c->sink_ctx, pos, c->buf, n, false,
					 e) < 0)
				return -1;
			pos += n;
			if (tick(c, pos, e) < 0)
				return -1;
		}
	}
	return 0;
}

static int copy_run(struct disk_copy *c, uint64_t off, uint64_t len,
		    struct kg_err *e)
{
	if (off >= c->size)
		return 0;
	if (len > c->size - off)
		len = c->size - off; /* the last block may be short */
	if (read_at(c, off, (size_t)len, e) < 0)
		return -1;
	return c->sink->put(c->sink_ctx, off, c->buf, (size_t)len,
			    disk_copy_is_zero(c->buf, (size_t)len), e);
}

int disk_copy_blocks(struct disk_copy *c, const uint64_t *bits,
		     size_t words, struct kg_err *e)
{
	uint64_t per_run = DISK_COPY_RUN / c->block;
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

/* --- the file sink --- */

static int write_at(const struct disk_file *f, uint64_t off,
		    const uint8_t *data, size_t n, struct kg_err *e)
{
	for (size_t done = 0; done < n;) {
		ssize_t r = pwrite(f->fd, data + done, n - done,
				   (off_t)(off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = EIO;
			return kg_errno(e, "writing %s", f->path);
		}
		done += (size_t)r;
	}
	return 0;
}

static int file_put(void *ctx, uint64_t off, const uint8_t *data, size_t len,
		    bool zero, struct kg_err *e)
{
	const struct disk_file *f = ctx;
	if (!zero)
		return write_at(f, off, data, len, e);
	if (fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)off, (off_t)len) == 0)
		return 0;
	if (errno != EOPNOTSUPP)
		return kg_errno(e, "writing %s: punching a hole", f->path);
	return write_at(f, off, data, len, e);
}

const struct disk_copy_sink disk_file_sink = { .put = file_put };
