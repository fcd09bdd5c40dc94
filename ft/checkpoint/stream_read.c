/*
 * The stream reader: sequential reads from a file descriptor (file, pipe,
 * socket), no seeks, no buffering beyond what the caller asks for. Every
 * error names the section and its byte offset, and leaves the reader
 * failed: a stream that went wrong once is not trusted further. Kinds:
 * whatever fails a check of the format is KG_ERR_CORRUPT; a stream this
 * kagami cannot read (newer version, other architecture) KG_ERR_INVALID;
 * a failed read keeps the kind of its cause (errno, or the transport's).
 */
#include "stream.h"

#include <stdlib.h>

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "base/crc32c.h"
#include "base/le.h"

enum { R_INIT, R_READY, R_SECTION, R_ENDED, R_FAILED };

void kg_reader_init(struct kg_stream_reader *r, int fd,
		    const struct kg_stream_opts *opts)
{
	memset(r, 0, sizeof(*r));
	r->fd = fd;
	if (opts)
		r->opts = *opts;
	else
		kg_stream_opts_default(&r->opts);
	r->state = R_INIT;
}

static int fail(struct kg_stream_reader *r)
{
	r->state = R_FAILED;
	return -1;
}

/* A format error (KG_ERR_CORRUPT), and the reader is failed. */
__attribute__((format(printf, 3, 4)))
static int failf(struct kg_stream_reader *r, struct kg_err *e,
		 const char *fmt, ...)
{
	if (e) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
		va_end(ap);
		e->kind = KG_ERR_CORRUPT;
	}
	return fail(r);
}

void kg_reader_set_io(struct kg_stream_reader *r,
		      const struct kg_stream_io *io, void *ctx)
{
	r->io = io;
	r->io_ctx = ctx;
}

/* Reads up to n bytes, fewer only at end of file (*got says how many).
 * Retries EINTR and short reads; waits on a non-blocking fd. */
static int read_full(struct kg_stream_reader *r, void *buf, size_t n,
		     size_t *got, struct kg_err *e)
{
	if (r->io) {
		if (r->io->read(r->io_ctx, buf, n, got, e) < 0)
			return kg_err_prefix(e, "reading stream at offset %"
					     PRIu64, r->offset);
		r->offset += *got;
		return 0;
	}
	size_t done = 0;
	while (done < n) {
		ssize_t k = read(r->fd, (char *)buf + done, n - done);
		if (k > 0) {
			done += (size_t)k;
			continue;
		}
		if (k == 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			struct pollfd p = { .fd = r->fd, .events = POLLIN };
			if (poll(&p, 1, -1) >= 0 || errno == EINTR)
				continue;
		}
		r->offset += done;
		return kg_errno(e, "reading stream at offset %" PRIu64,
				r->offset);
	}
	r->offset += done;
	*got = done;
	return 0;
}

static const char *arch_str(uint16_t arch, char *buf, size_t n)
{
	const char *name = kg_arch_name(arch);
	if (name)
		return name;
	snprintf(buf, n, "machine %u", arch);
	return buf;
}

/* The checks after the CRC: what this host can run. */
static int header_host_checks(struct kg_stream_reader *r,
			      const struct kg_stream_header *h,
			      struct kg_err *e)
{
	uint32_t ps = h->page_size;
	if (ps < 4096 || ps > 65536 || (ps & (ps - 1)))
		return kg_errk(e, KG_ERR_CORRUPT,
			       "file header at offset 0: bad page size %u", ps);
	uint32_t unknown = h->flags & KG_STREAM_FLAGS_REQUIRED &
			   ~KG_STREAM_FLAGS_KNOWN;
	if (unknown)
		return kg_errk(e, KG_ERR_INVALID,
			       "file header at offset 0: unknown flags "
			       "0x%x (the stream needs a newer kagami)",
			       unknown);
	if (r->opts.any_arch)
		return 0;
	struct kg_stream_header host;
	kg_stream_header_host(&host);
	char a[32], b[32];
	if (h->arch != host.arch)
		return kg_errk(e, KG_ERR_INVALID,
			       "architecture mismatch: stream is %s, this "
			       "host is %s", arch_str(h->arch, a, sizeof(a)),
			       arch_str(host.arch, b, sizeof(b)));
	if (h->page_size != host.page_size)
		return kg_errk(e, KG_ERR_INVALID,
			       "page size mismatch: stream has %u-byte "
			       "pages, this host %u", h->page_size,
			       host.page_size);
	return 0;
}

int kg_reader_header(struct kg_stream_reader *r, struct kg_stream_header *h,
		     struct kg_err *e)
{
	uint8_t buf[KG_STREAM_HEADER_MAX];
	size_t got;
	if (r->state != R_INIT)
		return kg_errf(e, "stream reader: header already read");
	if (read_full(r, buf, KG_STREAM_HEADER_SIZE, &got, e) < 0)
		return fail(r);
	/* Magic first, even in a short file: "not a stream" beats
	 * "truncated" for a file that is something else. */
	if (memcmp(buf, KG_STREAM_MAGIC, got < 8 ? got : 8))
		return failf(r, e, "bad magic at offset 0");
	if (got < KG_STREAM_HEADER_SIZE)
		return failf(r, e, "truncated: file header at offset 0 is %d "
			       "bytes, %zu present", KG_STREAM_HEADER_SIZE,
			       got);
	struct kg_stream_header hd = {
		.major = le16_get(buf + 8),
		.minor = le16_get(buf + 10),
		.arch = le16_get(buf + 12),
		.header_size = le16_get(buf + 14),
		.page_size = le32_get(buf + 16),
		.flags = le32_get(buf + 20),
	};
	/* The version before the CRC: a newer major may lay its header out
	 * differently, and "too new" is the useful answer then. */
	if (hd.major != KG_STREAM_MAJOR) {
		kg_errk(e, KG_ERR_INVALID, "format version %u.%u is %s than "
			"this kagami reads (%d.x)", hd.major, hd.minor,
			hd.major > KG_STREAM_MAJOR ? "newer" : "older",
			KG_STREAM_MAJOR);
		return fail(r);
	}
	if (hd.header_size < KG_STREAM_HEADER_SIZE ||
	    hd.header_size > KG_STREAM_HEADER_MAX)
		return failf(r, e, "file header at offset 0: bad header size "
			       "%u", hd.header_size);
	if (hd.header_size > KG_STREAM_HEADER_SIZE) {
		size_t more = hd.header_size - KG_STREAM_HEADER_SIZE, got2;
		if (read_full(r, buf + KG_STREAM_HEADER_SIZE, more, &got2,
			      e) < 0)
			return fail(r);
		if (got2 < more)
			return failf(r, e, "truncated: file header at offset 0 "
				       "is %u bytes, %zu present",
				       hd.header_size, got + got2);
	}
	size_t body = hd.header_size - KG_SECTION_CRC_SIZE;
	if (kg_crc32c(0, buf, body) != le32_get(buf + body))
		return failf(r, e, "file header at offset 0: checksum "
			       "mismatch");
	if (header_host_checks(r, &hd, e) < 0)
		return fail(r);
	r->hdr = hd;
	if (h)
		*h = hd;
	r->state = R_READY;
	return 0;
}

/* Prefixes "section N (kind #i) at offset X: " to e. */
static int section_err(struct kg_stream_reader *r, const struct kg_section *s,
		       struct kg_err *e)
{
	char where[128];
	kg_section_where(where, sizeof(where), s);
	kg_err_prefix(e, "%s", where);
	kg_err_as(e, KG_ERR_CORRUPT);
	return fail(r);
}

/* The end marker's payload: the number of sections before it. */
static int read_end_marker(struct kg_stream_reader *r, struct kg_err *e)
{
	uint8_t p[KG_END_PAYLOAD_SIZE];
	if (kg_section_read(r, p, sizeof(p), e) < 0 ||
	    kg_section_finish(r, e) < 0)
		return -1;
	uint64_t n = le64_get(p);
	if (n != r->cur.index) {
		kg_errf(e, "end marker counts %" PRIu64 " sections, %" PRIu64
			" present", n, r->cur.index);
		return section_err(r, &r->cur, e);
	}
	r->state = R_ENDED;
	return 0;
}

int kg_reader_next(struct kg_stream_reader *r, struct kg_section *s,
		   struct kg_err *e)
{
	if (r->state == R_SECTION && kg_section_finish(r, e) < 0)
		return -1;
	if (r->state == R_ENDED)
		return 0;
	if (r->state != R_READY)
		return kg_errf(e, "stream reader: %s", r->state == R_INIT
			       ? "file header not read" : "failed earlier");

	uint8_t hb[KG_SECTION_HEADER_SIZE];
	size_t got;
	struct kg_section sec = { .offset = r->offset,
				  .index = r->nsections };
	if (read_full(r, hb, sizeof(hb), &got, e) < 0)
		return fail(r);
	if (got == 0)
		return failf(r, e, "missing end marker: stream ends at offset "
			       "%" PRIu64 " after %" PRIu64 " sections",
			       r->offset, r->nsections);
	if (got < sizeof(hb))
		return failf(r, e, "truncated: section %" PRIu64 " at offset "
			       "%" PRIu64 ": header is %d bytes, %zu present",
			       sec.index, sec.offset, KG_SECTION_HEADER_SIZE,
			       got);
	kg_section_header_decode(hb, &sec);
	if (kg_section_check(&r->opts, &sec, e) < 0 ||
	    kg_section_sequence(&r->opts, &r->in_epoch, &r->unit_count,
				sec.kind, e) < 0)
		return section_err(r, &sec, e);

	r->nsections++;
	r->cur = sec;
	r->done = 0;
	r->crc = kg_crc32c(0, hb, sizeof(hb));
	r->state = R_SECTION;
	if (s)
		*s = sec;
	if (sec.kind == KG_SEC_END)
		return read_end_marker(r, e) < 0 ? -1 : 0;
	return 1;
}

uint64_t kg_section_remaining(const struct kg_stream_reader *r)
{
	return r->state == R_SECTION ? r->cur.length - r->done : 0;
}

int kg_section_read(struct kg_stream_reader *r, void *buf, size_t n,
		    struct kg_err *e)
{
	if (r->state != R_SECTION)
		return kg_errf(e, "stream reader: no section open");
	if (n > r->cur.length - r->done) {
		/* A caller bug, not a stream error: the reader stays usable. */
		char where[128];
		kg_section_where(where, sizeof(where), &r->cur);
		return kg_errf(e, "%s: reading %zu bytes, %" PRIu64 " remain",
			       where, n, r->cur.length - r->done);
	}
	size_t got;
	if (read_full(r, buf, n, &got, e) < 0)
		return fail(r);
	r->crc = kg_crc32c(r->crc, buf, got);
	r->done += got;
	if (got < n) {
		char where[128];
		kg_section_where(where, sizeof(where), &r->cur);
		kg_errk(e, KG_ERR_CORRUPT, "truncated: %s declares %" PRIu64
			" bytes, %" PRIu64 " present", where, r->cur.length,
			r->done);
		return fail(r);
	}
	return 0;
}

int kg_section_finish(struct kg_stream_reader *r, struct kg_err *e)
{
	uint8_t skip[32 << 10];
	if (r->state != R_SECTION)
		return kg_errf(e, "stream reader: no section open");
	while (r->done < r->cur.length) {
		uint64_t left = r->cur.length - r->done;
		size_t n = left < sizeof(skip) ? (size_t)left : sizeof(skip);
		if (kg_section_read(r, skip, n, e) < 0)
			return -1;
	}
	uint8_t cb[KG_SECTION_CRC_SIZE];
	size_t got;
	if (read_full(r, cb, sizeof(cb), &got, e) < 0)
		return fail(r);
	if (got < sizeof(cb)) {
		char where[128];
		kg_section_where(where, sizeof(where), &r->cur);
		return failf(r, e, "truncated: %s: checksum missing (%zu of %d "
			     "bytes present)", where, got, KG_SECTION_CRC_SIZE);
	}
	if (le32_get(cb) != r->crc) {
		kg_errf(e, "checksum mismatch");
		return section_err(r, &r->cur, e);
	}
	r->state = R_READY;
	return 0;
}

int kg_reader_expect_eof(struct kg_stream_reader *r, struct kg_err *e)
{
	if (r->state != R_ENDED)
		return kg_errf(e, "stream reader: end marker not read");
	uint8_t b;
	size_t got;
	uint64_t at = r->offset;
	if (read_full(r, &b, 1, &got, e) < 0)
		return fail(r);
	if (got)
		return failf(r, e, "trailing data after the end marker at "
			       "offset %" PRIu64, at);
	return 0;
}

/* Seeks over the rest of the payload (a mapped RAM section is never read
 * here); the file's size tells a truncated payload apart first, since a
 * seek past the end of a file succeeds. */
int kg_section_skip_unverified(struct kg_stream_reader *r, uint32_t *crc,
			       struct kg_err *e)
{
	char where[128];
	struct stat st;
	if (r->state != R_SECTION)
		return kg_errf(e, "stream reader: no section open");
	kg_section_where(where, sizeof(where), &r->cur);
	off_t pos = lseek(r->fd, 0, SEEK_CUR);
	if (pos < 0 || fstat(r->fd, &st) < 0 || !S_ISREG(st.st_mode))
		return kg_errf(e, "%s: the payload cannot be skipped unread: "
			       "the stream is not a file", where);
	uint64_t left = r->cur.length - r->done;
	uint64_t avail = (uint64_t)st.st_size > (uint64_t)pos
			 ? (uint64_t)st.st_size - (uint64_t)pos : 0;
	if (avail < left)
		return failf(r, e, "truncated: %s declares %" PRIu64 " bytes, "
			     "%" PRIu64 " present", where, r->cur.length,
			     r->done + avail);
	if (lseek(r->fd, (off_t)left, SEEK_CUR) < 0) {
		kg_errno(e, "%s: seeking over the payload", where);
		return fail(r);
	}
	r->offset += left;
	r->done = r->cur.length;
	uint8_t cb[KG_SECTION_CRC_SIZE];
	size_t got;
	if (read_full(r, cb, sizeof(cb), &got, e) < 0)
		return fail(r);
	if (got < sizeof(cb))
		return failf(r, e, "truncated: %s: checksum missing (%zu of %d "
			     "bytes present)", where, got, KG_SECTION_CRC_SIZE);
	*crc = le32_get(cb);
	r->state = R_READY;
	return 0;
}

void kg_reader_set_budget(struct kg_stream_reader *r, struct kg_budget *b)
{
	r->budget = b;
}

struct kg_budget *kg_reader_budget(const struct kg_stream_reader *r)
{
	return r->budget;
}

uint8_t *kg_section_read_all(struct kg_stream_reader *r,
			     const struct kg_section *s, struct kg_err *e)
{
	char where[128];
	kg_section_where(where, sizeof(where), s);
	if (kg_budget_charge(r->budget, s->length, where, e) < 0) {
		fail(r);
		return NULL;
	}
	uint8_t *buf = malloc(s->length ? s->length : 1);
	if (!buf) {
		kg_budget_release(r->budget, s->length);
		kg_errk(e, KG_ERR_NOMEM, "%s: out of memory", where);
		return NULL;
	}
	if (kg_section_read(r, buf, s->length, e) < 0 ||
	    kg_section_finish(r, e) < 0) {
		kg_section_free(r, buf, s->length);
		return NULL;
	}
	return buf;
}

void kg_section_free(struct kg_stream_reader *r, uint8_t *buf, uint64_t len)
{
	if (!buf)
		return;
	kg_budget_release(r->budget, len);
	free(buf);
}
