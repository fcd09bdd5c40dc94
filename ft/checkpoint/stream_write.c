/*
 * The stream writer: sequential writes to a file descriptor, never a seek,
 * so the same code writes snapshot files, pipes and sockets. Each section
 * is checked against the rules its reader applies before a byte of it is
 * written. Durability (fsync) is the caller's decision.
 */
#include "stream.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "base/crc32c.h"
#include "base/le.h"

enum { W_INIT, W_READY, W_SECTION, W_ENDED, W_FAILED };

void kg_writer_init(struct kg_stream_writer *w, int fd,
		    const struct kg_stream_opts *opts, const char *what)
{
	memset(w, 0, sizeof(*w));
	w->fd = fd;
	if (opts)
		w->opts = *opts;
	else
		kg_stream_opts_default(&w->opts);
	w->what = what ? what : "snapshot";
	w->state = W_INIT;
}

void kg_writer_set_io(struct kg_stream_writer *w,
		      const struct kg_stream_io *io, void *ctx)
{
	w->io = io;
	w->io_ctx = ctx;
}

int kg_writer_flush(struct kg_stream_writer *w, struct kg_err *e)
{
	if (w->state == W_FAILED)
		return kg_errf(e, "%s writer: failed earlier", w->what);
	if (!w->io || !w->io->flush)
		return 0;
	if (w->io->flush(w->io_ctx, e) < 0) {
		w->state = W_FAILED;
		return kg_err_prefix(e, "writing %s", w->what);
	}
	return 0;
}

/* Writes every byte of iov[0..cnt) (cnt <= 3): retries EINTR and short
 * writes, waits on a non-blocking fd. A failure leaves a cut stream, so
 * the writer fails for good. */
static int write_all(struct kg_stream_writer *w, struct iovec *iov, int cnt,
		     struct kg_err *e)
{
	if (w->io) {
		if (w->io->writev(w->io_ctx, iov, cnt, e) < 0) {
			w->state = W_FAILED;
			return kg_err_prefix(e, "writing %s", w->what);
		}
		for (int i = 0; i < cnt; i++)
			w->offset += iov[i].iov_len;
		return 0;
	}
	while (cnt > 0) {
		ssize_t k = writev(w->fd, iov, cnt);
		if (k == 0 && iov->iov_len) { /* no progress: never spin */
			errno = EIO;
			k = -1;
		}
		if (k < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				struct pollfd p = { .fd = w->fd,
						    .events = POLLOUT };
				if (poll(&p, 1, -1) >= 0 || errno == EINTR)
					continue;
			}
			w->state = W_FAILED;
			return kg_errno(e, "writing %s", w->what);
		}
		w->offset += (uint64_t)k;
		size_t left = (size_t)k;
		while (cnt > 0 && left >= iov->iov_len) {
			left -= iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt > 0) {
			iov->iov_base = (char *)iov->iov_base + left;
			iov->iov_len -= left;
		}
	}
	return 0;
}

static int state_err(const struct kg_stream_writer *w, struct kg_err *e)
{
	switch (w->state) {
	case W_INIT:
		return kg_errf(e, "%s writer: file header not written",
			       w->what);
	case W_SECTION:
		return kg_errf(e, "%s writer: section %" PRIu64 " is still "
			       "open", w->what, w->cur.index);
	case W_ENDED:
		return kg_errf(e, "%s writer: the stream has ended", w->what);
	default:
		return kg_errf(e, "%s writer: failed earlier", w->what);
	}
}

int kg_writer_header(struct kg_stream_writer *w,
		     const struct kg_stream_header *h, struct kg_err *e)
{
	struct kg_stream_header host;
	uint8_t buf[KG_STREAM_HEADER_SIZE];
	if (w->state != W_INIT)
		return kg_errf(e, "%s writer: header already written",
			       w->what);
	if (!h) {
		kg_stream_header_host(&host);
		h = &host;
	}
	kg_stream_header_encode(h, buf);
	struct iovec iov = { buf, sizeof(buf) };
	if (write_all(w, &iov, 1, e) < 0)
		return -1;
	w->state = W_READY;
	return 0;
}

/* Checks a new section against the format's rules and, if it passes,
 * counts it: *s is ready to be written at the current offset. */
static int open_section(struct kg_stream_writer *w, struct kg_section *s,
			struct kg_err *e)
{
	char where[128];
	if (w->state != W_READY)
		return state_err(w, e);
	s->offset = w->offset;
	s->index = w->nsections;
	bool in_epoch = w->in_epoch;
	uint64_t count = w->unit_count;
	if (kg_section_check(&w->opts, s, e) < 0 ||
	    kg_section_sequence(&w->opts, &in_epoch, &count, s->kind, e) < 0) {
		kg_section_where(where, sizeof(where), s);
		return kg_err_prefix(e, "%s", where);
	}
	w->in_epoch = in_epoch;
	w->unit_count = count;
	w->nsections++;
	return 0;
}

/* Header, payload and CRC in one writev. */
static int write_whole(struct kg_stream_writer *w, struct kg_section *s,
		       const void *buf, struct kg_err *e)
{
	uint8_t hb[KG_SECTION_HEADER_SIZE], cb[KG_SECTION_CRC_SIZE];
	if (open_section(w, s, e) < 0)
		return -1;
	kg_section_header_encode(s, hb);
	uint32_t crc = kg_crc32c(0, hb, sizeof(hb));
	crc = kg_crc32c(crc, buf, s->length);
	le32_put(cb, crc);
	struct iovec iov[3] = {
		{ hb, sizeof(hb) },
		{ (void *)buf, s->length },
		{ cb, sizeof(cb) },
	};
	return write_all(w, iov, 3, e);
}

int kg_writer_section(struct kg_stream_writer *w, uint16_t kind,
		      uint16_t instance, uint32_t version, const void *buf,
		      uint64_t len, struct kg_err *e)
{
	if (kind == KG_SEC_END)
		return kg_errf(e, "%s writer: the end marker is written by "
			       "kg_writer_end", w->what);
	struct kg_section s = { .kind = kind, .instance = instance,
				.version = version, .length = len };
	return write_whole(w, &s, buf, e);
}

int kg_writer_begin(struct kg_stream_writer *w, uint16_t kind,
		    uint16_t instance, uint32_t version, uint64_t len,
		    struct kg_err *e)
{
	if (kind == KG_SEC_END)
		return kg_errf(e, "%s writer: the end marker is written by "
			       "kg_writer_end", w->what);
	struct kg_section s = { .kind = kind, .instance = instance,
				.version = version, .length = len };
	uint8_t hb[KG_SECTION_HEADER_SIZE];
	if (open_section(w, &s, e) < 0)
		return -1;
	kg_section_header_encode(&s, hb);
	struct iovec iov = { hb, sizeof(hb) };
	if (write_all(w, &iov, 1, e) < 0)
		return -1;
	w->cur = s;
	w->done = 0;
	w->crc = kg_crc32c(0, hb, sizeof(hb));
	w->state = W_SECTION;
	return 0;
}

int kg_writer_append(struct kg_stream_writer *w, const void *buf, size_t n,
		     struct kg_err *e)
{
	char where[128];
	if (w->state != W_SECTION)
		return kg_errf(e, "%s writer: no section open", w->what);
	if (n > w->cur.length - w->done) {
		/* Refused before writing: the stream is still intact. */
		kg_section_where(where, sizeof(where), &w->cur);
		return kg_errf(e, "%s: appending %zu bytes to the %" PRIu64
			       " already appended exceeds the %" PRIu64
			       " declared", where, n, w->done, w->cur.length);
	}
	struct iovec iov = { (void *)buf, n };
	if (write_all(w, &iov, 1, e) < 0)
		return -1;
	w->crc = kg_crc32c(w->crc, buf, n);
	w->done += n;
	return 0;
}

int kg_writer_end_section(struct kg_stream_writer *w, struct kg_err *e)
{
	char where[128];
	uint8_t cb[KG_SECTION_CRC_SIZE];
	if (w->state != W_SECTION)
		return kg_errf(e, "%s writer: no section open", w->what);
	if (w->done != w->cur.length) {
		kg_section_where(where, sizeof(where), &w->cur);
		return kg_errf(e, "%s: %" PRIu64 " bytes appended, %" PRIu64
			       " declared", where, w->done, w->cur.length);
	}
	le32_put(cb, w->crc);
	struct iovec iov = { cb, sizeof(cb) };
	if (write_all(w, &iov, 1, e) < 0)
		return -1;
	w->state = W_READY;
	return 0;
}

int kg_writer_align(struct kg_stream_writer *w, uint32_t align,
		    struct kg_err *e)
{
	static const uint8_t zeros[4096];
	if (!align || (align & (align - 1)) || align > 65536)
		return kg_errf(e, "%s writer: bad alignment %u", w->what,
			       align);
	uint64_t mask = align - 1;
	if (((w->offset + KG_SECTION_HEADER_SIZE) & mask) == 0)
		return 0;
	/* A pad section adds 20 bytes of framing around its zeros. */
	uint64_t frame = KG_SECTION_HEADER_SIZE + KG_SECTION_CRC_SIZE;
	uint64_t len = (0 - (w->offset + frame + KG_SECTION_HEADER_SIZE)) & mask;
	if (kg_writer_begin(w, KG_SEC_PAD, 0, 1, len, e) < 0)
		return -1;
	while (w->done < len) {
		uint64_t n = len - w->done;
		if (n > sizeof(zeros))
			n = sizeof(zeros);
		if (kg_writer_append(w, zeros, (size_t)n, e) < 0)
			return -1;
	}
	return kg_writer_end_section(w, e);
}

int kg_writer_end(struct kg_stream_writer *w, struct kg_err *e)
{
	uint8_t p[KG_END_PAYLOAD_SIZE];
	le64_put(p, w->nsections);
	struct kg_section s = { .kind = KG_SEC_END,
				.length = KG_END_PAYLOAD_SIZE };
	if (write_whole(w, &s, p, e) < 0)
		return -1;
	w->state = W_ENDED;
	return 0;
}

int kg_writer_reserve(struct kg_stream_writer *w, uint16_t kind,
		      uint16_t instance, uint32_t version, uint64_t len,
		      uint64_t *payload_offset, uint32_t *header_crc,
		      struct kg_err *e)
{
	struct kg_section s = { .kind = kind, .instance = instance,
				.version = version, .length = len };
	uint8_t hb[KG_SECTION_HEADER_SIZE];
	if (kind == KG_SEC_END)
		return kg_errf(e, "%s writer: cannot reserve the end marker",
			       w->what);
	if (open_section(w, &s, e) < 0)
		return -1;
	kg_section_header_encode(&s, hb);
	struct iovec iov = { hb, sizeof(hb) };
	if (write_all(w, &iov, 1, e) < 0)
		return -1;
	*payload_offset = w->offset;
	*header_crc = kg_crc32c(0, hb, sizeof(hb));
	if (lseek(w->fd, (off_t)(len + KG_SECTION_CRC_SIZE), SEEK_CUR) < 0) {
		w->state = W_FAILED;
		return kg_errno(e, "%s: reserving %" PRIu64 " bytes", w->what,
				len);
	}
	w->offset += len + KG_SECTION_CRC_SIZE;
	return 0;
}

int kg_writer_patch_crc(struct kg_stream_writer *w, uint64_t payload_offset,
			uint64_t len, uint32_t crc, struct kg_err *e)
{
	uint8_t cb[KG_SECTION_CRC_SIZE];
	le32_put(cb, crc);
	if (pwrite(w->fd, cb, sizeof(cb), (off_t)(payload_offset + len)) !=
	    (ssize_t)sizeof(cb))
		return kg_errno(e, "writing %s", w->what);
	return 0;
}
