/*
 * Unit tests for the kagami stream (ft/checkpoint/stream.h) and CRC32C:
 * round trips through files and pipes, and every way a stream can be
 * refused. Streams under test live in memfds (files) or pipes; every
 * rejection must be one line naming the section and offset.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>
#include <sys/mman.h>

#include "base/crc32c.h"
#include "ft/checkpoint/stream.h"

#define KiB 1024u

/* --- helpers --- */

/* Payload bytes of a section: a pattern of its kind, instance and offset
 * within the payload, so that a misplaced byte is seen. */
static uint8_t pat(uint16_t kind, uint16_t inst, uint64_t i)
{
	return (uint8_t)(kind * 131u + inst * 17u + i * 7u + (i >> 9));
}

static void fill(uint8_t *b, size_t n, uint16_t kind, uint16_t inst,
		 uint64_t from)
{
	for (size_t i = 0; i < n; i++)
		b[i] = pat(kind, inst, from + i);
}

static int memfd(void)
{
	int fd = memfd_create("stream", MFD_CLOEXEC);
	assert_true(fd >= 0);
	return fd;
}

/* A file holding exactly these bytes, positioned at its start. */
static int fd_of(const uint8_t *buf, size_t len)
{
	int fd = memfd();
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	return fd;
}

/* Everything fd holds, from its start. */
static uint8_t *slurp(int fd, size_t *len)
{
	off_t end = lseek(fd, 0, SEEK_END);
	assert_true(end >= 0);
	uint8_t *buf = malloc((size_t)end + 1);
	assert_non_null(buf);
	assert_int_equal(pread(fd, buf, (size_t)end, 0), end);
	*len = (size_t)end;
	return buf;
}

static void put_section(struct kg_stream_writer *w, uint16_t kind,
			uint16_t inst, size_t len)
{
	struct kg_err e = { 0 };
	uint8_t *b = malloc(len + 1);
	assert_non_null(b);
	fill(b, len, kind, inst, 0);
	int r = kg_writer_section(w, kind, inst, 3, b, len, &e);
	free(b);
	if (r < 0)
		fail_msg("%s", e.msg);
}

/* A streamed section appended in pieces of `piece` bytes. */
static void put_streamed(struct kg_stream_writer *w, uint16_t kind,
			 uint16_t inst, size_t len, size_t piece)
{
	struct kg_err e = { 0 };
	uint8_t *b = malloc(piece);
	assert_non_null(b);
	if (kg_writer_begin(w, kind, inst, 3, len, &e) < 0)
		fail_msg("%s", e.msg);
	for (size_t off = 0; off < len; off += piece) {
		size_t n = len - off < piece ? len - off : piece;
		fill(b, n, kind, inst, off);
		if (kg_writer_append(w, b, n, &e) < 0)
			fail_msg("%s", e.msg);
	}
	free(b);
	if (kg_writer_end_section(w, &e) < 0)
		fail_msg("%s", e.msg);
}

/* The sections of the sample stream, in order (the end marker apart). */
struct spec {
	uint16_t kind, inst;
	size_t len;
	bool streamed;
};

static const struct spec sample[] = {
	{ KG_SEC_VM_CONFIG, 0, 40, false },
	{ KG_SEC_VCPU, 0, 3000, false },
	{ KG_SEC_VCPU, 1, 3000, true },
	{ KG_SEC_IRQCHIP, 0, 512, false },
	{ KG_SEC_IRQCHIP, 1, 512, false },
	{ KG_SEC_IRQCHIP, 2, 256, false },
	{ KG_SEC_PIT, 0, 112, false },
	{ KG_SEC_CLOCK, 0, 0, false },
	{ KG_SEC_DEVICE, 0, 200, false },
	{ KG_SEC_DEVICE, 7, 1, true },
	{ KG_SEC_PAD, 0, 12, false },
	{ KG_SEC_RAM_FULL, 0, 300 * KiB, true },
	{ KG_SEC_DISK, 0, 48, false },
	{ 0x4242, 9, 33, false },  /* unknown, must be understood */
	{ 0x8123, 0, 5, false },   /* unknown, ancillary */
	{ KG_SEC_EPOCH_BEGIN, 0, 16, false },
	{ KG_SEC_RAM_PAGES, 3, 9 * KiB, true },
	{ KG_SEC_DISK, 1, 4 * KiB, true },
	{ KG_SEC_EPOCH_END, 0, 16, false },
};
#define NSAMPLE (sizeof(sample) / sizeof(sample[0]))

static void write_sample(int fd, const struct kg_stream_opts *o)
{
	struct kg_stream_writer w;
	struct kg_err e = { 0 };
	kg_writer_init(&w, fd, o, NULL);
	if (kg_writer_header(&w, NULL, &e) < 0)
		fail_msg("%s", e.msg);
	for (size_t i = 0; i < NSAMPLE; i++) {
		const struct spec *s = &sample[i];
		if (s->streamed)
			put_streamed(&w, s->kind, s->inst, s->len, 4000);
		else
			put_section(&w, s->kind, s->inst, s->len);
	}
	if (kg_writer_end(&w, &e) < 0)
		fail_msg("%s", e.msg);
}

/* Reads the sample back, checking every header and payload byte; payloads
 * are read in pieces of `piece` bytes, or skipped when piece is 0. */
static void check_sample(int fd, size_t piece)
{
	struct kg_stream_reader r;
	struct kg_stream_header h;
	struct kg_section s;
	struct kg_err e = { 0 };
	uint8_t *buf = malloc(piece ? piece : 1);
	assert_non_null(buf);
	kg_reader_init(&r, fd, NULL);
	if (kg_reader_header(&r, &h, &e) < 0)
		fail_msg("%s", e.msg);
	assert_int_equal(h.major, KG_STREAM_MAJOR);
	assert_int_equal(h.minor, KG_STREAM_MINOR);
	assert_int_equal(h.arch, KG_ARCH_X86_64);
	assert_int_equal(h.page_size, 4096);
	uint64_t expect_off = KG_STREAM_HEADER_SIZE;
	for (size_t i = 0; i < NSAMPLE; i++) {
		int rc = kg_reader_next(&r, &s, &e);
		if (rc != 1)
			fail_msg("section %zu: rc %d: %s", i, rc, e.msg);
		assert_int_equal(s.kind, sample[i].kind);
		assert_int_equal(s.instance, sample[i].inst);
		assert_int_equal(s.version, 3);
		assert_int_equal(s.length, sample[i].len);
		assert_int_equal(s.index, i);
		assert_int_equal(s.offset, expect_off);
		expect_off += KG_SECTION_HEADER_SIZE + s.length +
			      KG_SECTION_CRC_SIZE;
		for (uint64_t off = 0; piece && off < s.length; off += piece) {
			size_t n = s.length - off < piece ? s.length - off
							  : piece;
			if (kg_section_read(&r, buf, n, &e) < 0)
				fail_msg("%s", e.msg);
			for (size_t k = 0; k < n; k++)
				assert_int_equal(buf[k],
						 pat(s.kind, s.instance,
						     off + k));
		}
		assert_int_equal(kg_section_remaining(&r), piece ? 0 : s.length);
		/* Without piece the next call finishes the section. */
		if (piece && kg_section_finish(&r, &e) < 0)
			fail_msg("%s", e.msg);
	}
	assert_int_equal(kg_reader_next(&r, &s, &e), 0);
	assert_int_equal(s.kind, KG_SEC_END);
	assert_int_equal(s.index, NSAMPLE);
	assert_int_equal(kg_reader_next(&r, &s, &e), 0); /* stays ended */
	if (kg_reader_expect_eof(&r, &e) < 0)
		fail_msg("%s", e.msg);
	free(buf);
}

/* Reads a whole stream from bytes, payloads in 13-byte pieces; returns the
 * reader's result with the error in *e. */
static int read_bytes(const uint8_t *buf, size_t len,
		      const struct kg_stream_opts *o, struct kg_err *e)
{
	struct kg_stream_reader r;
	struct kg_section s;
	uint8_t piece[13];
	int fd = fd_of(buf, len), rc;
	e->msg[0] = '\0';
	kg_reader_init(&r, fd, o);
	rc = kg_reader_header(&r, NULL, e);
	while (rc == 0 && (rc = kg_reader_next(&r, &s, e)) == 1) {
		while (rc == 1 && kg_section_remaining(&r)) {
			uint64_t left = kg_section_remaining(&r);
			size_t n = left < sizeof(piece) ? left : sizeof(piece);
			if (kg_section_read(&r, piece, n, e) < 0)
				rc = -1;
		}
		if (rc == 1)
			rc = kg_section_finish(&r, e); /* 0: go on */
	}
	if (rc == 0)
		rc = kg_reader_expect_eof(&r, e);
	close(fd);
	/* Every error is one line. */
	assert_null(strchr(e->msg, '\n'));
	return rc;
}

static void expect_error_kind(const uint8_t *buf, size_t len,
			      const struct kg_stream_opts *o, const char *text,
			      enum kg_err_kind kind)
{
	struct kg_err e;
	assert_int_equal(read_bytes(buf, len, o, &e), -1);
	if (!strstr(e.msg, text))
		fail_msg("error '%s' lacks '%s'", e.msg, text);
	if (e.kind != kind)
		fail_msg("error '%s': kind %s, want %s", e.msg,
			 kg_err_kind_name(e.kind), kg_err_kind_name(kind));
}

/* A stream that breaks the format: corrupt. */
static void expect_error(const uint8_t *buf, size_t len,
			 const struct kg_stream_opts *o, const char *text)
{
	expect_error_kind(buf, len, o, text, KG_ERR_CORRUPT);
}

/* A stream this kagami cannot take (version, flags, architecture). */
static void expect_invalid(const uint8_t *buf, size_t len,
			   const struct kg_stream_opts *o, const char *text)
{
	expect_error_kind(buf, len, o, text, KG_ERR_INVALID);
}

static uint8_t *sample_bytes(size_t *len)
{
	int fd = memfd();
	write_sample(fd, NULL);
	uint8_t *b = slurp(fd, len);
	close(fd);
	return b;
}

/* A small stream with every kind, for byte-by-byte tests. */
static uint8_t *small_bytes(size_t *len, uint64_t *offsets, size_t *n)
{
	struct kg_stream_writer w;
	struct kg_err e = { 0 };
	int fd = memfd();
	kg_writer_init(&w, fd, NULL, NULL);
	assert_int_equal(kg_writer_header(&w, NULL, &e), 0);
	static const uint16_t kinds[] = {
		KG_SEC_VM_CONFIG, KG_SEC_VCPU, KG_SEC_IRQCHIP, KG_SEC_PIT,
		KG_SEC_CLOCK, KG_SEC_DEVICE, KG_SEC_RAM_FULL, KG_SEC_DISK,
		KG_SEC_EPOCH_BEGIN, KG_SEC_RAM_PAGES, KG_SEC_EPOCH_END,
	};
	*n = 0;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		offsets[(*n)++] = w.offset;
		put_section(&w, kinds[i], 0, 3 + i);
	}
	offsets[(*n)++] = w.offset;
	assert_int_equal(kg_writer_end(&w, &e), 0);
	uint8_t *b = slurp(fd, len);
	close(fd);
	return b;
}

/* Rewrites the file header's CRC after a test changed its fields. */
static void reseal_header(uint8_t *b, size_t hsize)
{
	uint32_t c = kg_crc32c(0, b, hsize - 4);
	memcpy(b + hsize - 4, &c, 4); /* little-endian host */
}

/* Rewrites a section's CRC after a test changed its header or payload. */
static void reseal_section(uint8_t *b, uint64_t off)
{
	uint64_t len;
	memcpy(&len, b + off + 8, 8);
	uint32_t c = kg_crc32c(0, b + off, KG_SECTION_HEADER_SIZE + len);
	memcpy(b + off + KG_SECTION_HEADER_SIZE + len, &c, 4);
}

/* --- CRC32C --- */

static void test_crc32c_vectors(void **state)
{
	(void)state;
	/* RFC 3720 B.4 and the classic check value. */
	assert_int_equal(kg_crc32c(0, "123456789", 9), 0xe3069283);
	assert_int_equal(kg_crc32c_sw(0, "123456789", 9), 0xe3069283);
	uint8_t z[32] = { 0 }, f[32];
	memset(f, 0xff, sizeof(f));
	assert_int_equal(kg_crc32c(0, z, 32), 0x8a9136aa);
	assert_int_equal(kg_crc32c(0, f, 32), 0x62a8ab43);
	assert_int_equal(kg_crc32c(0, NULL, 0), 0);
}

static void test_crc32c_paths_agree(void **state)
{
	(void)state;
	uint8_t buf[1000];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 2654435761u >> 13);
	/* Every alignment and length, and chained equals whole. */
	for (size_t start = 0; start < 9; start++)
		for (size_t len = 0; len + start <= sizeof(buf); len += 37) {
			uint32_t hw = kg_crc32c(0, buf + start, len);
			assert_int_equal(hw, kg_crc32c_sw(0, buf + start, len));
			size_t half = len / 3;
			uint32_t c = kg_crc32c(0, buf + start, half);
			c = kg_crc32c_sw(c, buf + start + half, len - half);
			assert_int_equal(c, hw);
		}
}

/* --- round trips --- */

static void test_roundtrip_file(void **state)
{
	(void)state;
	int fd = memfd();
	write_sample(fd, NULL);
	static const size_t pieces[] = { 1, 7, 4096, 1 << 20, 0 };
	for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
		assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
		check_sample(fd, pieces[i]);
	}
	close(fd);
}

struct pipe_writer {
	int fd;
	int nonblock;
};

static void *pipe_write_thread(void *arg)
{
	struct pipe_writer *pw = arg;
	if (pw->nonblock)
		fcntl(pw->fd, F_SETFL, O_NONBLOCK);
	write_sample(pw->fd, NULL);
	close(pw->fd);
	return NULL;
}

/* Through a pipe, larger than the pipe's buffer: the writer blocks (or,
 * non-blocking, gets EAGAIN and short writes) while the reader reads. */
static void roundtrip_pipe(int nonblock)
{
	int p[2];
	pthread_t t;
	assert_int_equal(pipe(p), 0);
	struct pipe_writer pw = { p[1], nonblock };
	assert_int_equal(pthread_create(&t, NULL, pipe_write_thread, &pw), 0);
	if (nonblock)
		fcntl(p[0], F_SETFL, O_NONBLOCK);
	check_sample(p[0], 1000);
	pthread_join(t, NULL);
	close(p[0]);
}

static void test_roundtrip_pipe(void **state)
{
	(void)state;
	roundtrip_pipe(0);
}

static void test_roundtrip_pipe_nonblocking(void **state)
{
	(void)state;
	roundtrip_pipe(1);
}

/* A full disk (/dev/full says ENOSPC to every write) is NO_SPACE, so a
 * caller can tell it from other write errors; the writer stays failed. */
static void test_writer_disk_full(void **state)
{
	(void)state;
	int fd = open("/dev/full", O_WRONLY);
	if (fd < 0)
		skip();
	struct kg_stream_writer w;
	struct kg_err e = { 0 };
	kg_writer_init(&w, fd, NULL, NULL);
	assert_int_equal(kg_writer_header(&w, NULL, &e), -1);
	assert_non_null(strstr(e.msg, "No space left on device"));
	assert_int_equal(e.kind, KG_ERR_NO_SPACE);
	assert_int_equal(kg_writer_header(&w, NULL, &e), -1);
	close(fd);
}

static void test_writer_align(void **state)
{
	(void)state;
	struct kg_stream_writer w;
	struct kg_stream_reader r;
	struct kg_section s;
	struct kg_err e = { 0 };
	int fd = memfd();
	kg_writer_init(&w, fd, NULL, NULL);
	assert_int_equal(kg_writer_header(&w, NULL, &e), 0);
	for (uint16_t i = 0; i < 40; i++) {
		put_section(&w, KG_SEC_DEVICE, i, 1 + i * 97u);
		assert_int_equal(kg_writer_align(&w, 4096, &e), 0);
		assert_int_equal((w.offset + KG_SECTION_HEADER_SIZE) % 4096, 0);
		assert_int_equal(kg_writer_align(&w, 4096, &e), 0); /* no-op */
		put_section(&w, KG_SEC_RAM_FULL, 0, 4096);
	}
	assert_int_equal(kg_writer_align(&w, 3, &e), -1);
	assert_int_equal(kg_writer_end(&w, &e), 0);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	kg_reader_init(&r, fd, NULL);
	assert_int_equal(kg_reader_header(&r, NULL, &e), 0);
	int rc, rams = 0;
	while ((rc = kg_reader_next(&r, &s, &e)) == 1)
		if (s.kind == KG_SEC_RAM_FULL) {
			assert_int_equal((s.offset + KG_SECTION_HEADER_SIZE) %
					 4096, 0);
			rams++;
		}
	if (rc < 0)
		fail_msg("%s", e.msg);
	assert_int_equal(rams, 40);
	close(fd);
}

static void test_skip_unverified(void **state)
{
	(void)state;
	struct kg_stream_reader r;
	struct kg_section s;
	struct kg_err e = { 0 };
	size_t len;
	uint8_t *b = sample_bytes(&len);
	int fd = fd_of(b, len), rc;
	kg_reader_init(&r, fd, NULL);
	assert_int_equal(kg_reader_header(&r, NULL, &e), 0);
	while ((rc = kg_reader_next(&r, &s, &e)) == 1) {
		if (s.kind != KG_SEC_RAM_FULL)
			continue;
		uint32_t stored;
		assert_int_equal(kg_section_skip_unverified(&r, &stored, &e), 0);
		assert_int_equal(stored, kg_crc32c(0, b + s.offset,
						   KG_SECTION_HEADER_SIZE +
						   s.length));
	}
	assert_int_equal(rc, 0);
	close(fd);

	/* Cut inside the RAM payload: "truncated", not a seek past EOF. */
	uint64_t ram_off = 0;
	fd = fd_of(b, len);
	kg_reader_init(&r, fd, NULL);
	assert_int_equal(kg_reader_header(&r, NULL, &e), 0);
	while (kg_reader_next(&r, &s, &e) == 1 && s.kind != KG_SEC_RAM_FULL)
		;
	ram_off = s.offset;
	close(fd);
	fd = fd_of(b, ram_off + 1000);
	kg_reader_init(&r, fd, NULL);
	assert_int_equal(kg_reader_header(&r, NULL, &e), 0);
	while (kg_reader_next(&r, &s, &e) == 1 && s.kind != KG_SEC_RAM_FULL)
		;
	uint32_t stored;
	assert_int_equal(kg_section_skip_unverified(&r, &stored, &e), -1);
	assert_non_null(strstr(e.msg, "truncated: section 11 (ram #0)"));
	assert_non_null(strstr(e.msg, "declares 307200 bytes, 984 present"));
	close(fd);

	/* A pipe cannot be skipped unread. */
	int p[2];
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], b, 4096), 4096);
	kg_reader_init(&r, p[0], NULL);
	assert_int_equal(kg_reader_header(&r, NULL, &e), 0);
	assert_int_equal(kg_reader_next(&r, &s, &e), 1);
	assert_int_equal(kg_section_skip_unverified(&r, &stored, &e), -1);
	assert_non_null(strstr(e.msg, "not a file"));
	close(p[0]);
	close(p[1]);
	free(b);
}

/* --- the file header --- */

static void test_bad_magic(void **state)
{
	(void)state;
	size_t len;
	uint8_t *b = sample_bytes(&len);
	b[3] ^= 0x20;
	expect_error(b, len, NULL, "bad magic at offset 0");
	expect_error((const uint8_t *)"hello world\n", 12, NULL,
		     "bad magic at offset 0");
	expect_error((const uint8_t *)"\x7f" "ELF", 4, NULL,
		     "bad magic at offset 0");
	expect_error(b, 0, NULL,
		     "truncated: file header at offset 0 is 32 bytes, 0 "
		     "present");
	free(b);
}

static void test_newer_major(void **state)
{
	(void)state;
	size_t len;
	uint8_t *b = sample_bytes(&len);
	b[8] = 2; /* major 2.0 */
	b[10] = 0;
	reseal_header(b, KG_STREAM_HEADER_SIZE);
	expect_invalid(b, len, NULL,
		       "format version 2.0 is newer than this kagami reads "
		       "(1.x)");
	/* Even without a valid CRC: a 2.x header may be laid out anew. */
	b[28] ^= 1;
	expect_invalid(b, len, NULL, "format version 2.0 is newer");
	b[8] = 0;
	expect_invalid(b, len, NULL, "format version 0.0 is older");
	free(b);
}

static void test_newer_minor_accepted(void **state)
{
	(void)state;
	size_t len;
	struct kg_err e;
	uint8_t *b = sample_bytes(&len);
	b[10] = 9; /* 1.9 */
	b[23] = 0x80; /* an optional flag of a later minor */
	reseal_header(b, KG_STREAM_HEADER_SIZE);
	if (read_bytes(b, len, NULL, &e) < 0)
		fail_msg("%s", e.msg);

	/* A later minor's longer header: the extra bytes are skipped. */
	uint8_t *l = malloc(len + 16);
	assert_non_null(l);
	memcpy(l, b, 28);
	l[14] = 48;
	memset(l + 28, 0xab, 16);
	reseal_header(l, 48);
	memcpy(l + 48, b + 32, len - 32);
	if (read_bytes(l, len + 16, NULL, &e) < 0)
		fail_msg("%s", e.msg);
	/* ... and cut inside it. */
	expect_error(l, 40, NULL, "truncated: file header at offset 0 is 48 "
		     "bytes, 40 present");

	/* A required flag this reader does not know is refused. */
	b[20] = 0x04;
	reseal_header(b, KG_STREAM_HEADER_SIZE);
	expect_invalid(b, len, NULL, "unknown flags 0x4");
	free(l);
	free(b);
}

static void test_arch_mismatch(void **state)
{
	(void)state;
	size_t len;
	struct kg_err e;
	uint8_t *b = sample_bytes(&len);
	b[12] = KG_ARCH_AARCH64;
	reseal_header(b, KG_STREAM_HEADER_SIZE);
	expect_invalid(b, len, NULL,
		       "architecture mismatch: stream is aarch64, this host is "
		       "x86_64");
	struct kg_stream_opts o;
	kg_stream_opts_default(&o);
	o.any_arch = true; /* inspect lists foreign streams */
	assert_int_equal(read_bytes(b, len, &o, &e), 0);
	b[12] = 99;
	reseal_header(b, KG_STREAM_HEADER_SIZE);
	expect_invalid(b, len, NULL, "stream is machine 99");

	/* Same architecture, other page size. */
	b[12] = KG_ARCH_X86_64;
	b[17] = 0x40; /* 16 KiB */
	reseal_header(b, KG_STREAM_HEADER_SIZE);
	expect_invalid(b, len, NULL, "page size mismatch");
	b[17] = 0x30; /* not a power of two */
	reseal_header(b, KG_STREAM_HEADER_SIZE);
	expect_error(b, len, &o, "bad page size 12288");
	free(b);
}

/* Every byte of the file header matters: each corrupted one is refused. */
static void test_header_each_byte(void **state)
{
	(void)state;
	size_t len;
	uint8_t *b = sample_bytes(&len);
	for (size_t i = 0; i < KG_STREAM_HEADER_SIZE; i++) {
		b[i] ^= 0x11;
		const char *want = i < 8 ? "bad magic at offset 0"
				   : i < 10 ? "format version"
				   : i == 14 || i == 15 ? "file header at offset 0"
				   : "file header at offset 0: checksum mismatch";
		/* the version is read before the CRC (a newer major may lay
		 * its header out anew): a flip there reads as "newer" */
		expect_error_kind(b, len, NULL, want,
				  i >= 8 && i < 10 ? KG_ERR_INVALID
						   : KG_ERR_CORRUPT);
		b[i] ^= 0x11;
	}
	free(b);
}

/* --- sections --- */

/* Section 2 of the sample is "vcpu #1": corrupt each byte of its header,
 * payload and CRC in turn. */
static void test_section_each_byte(void **state)
{
	(void)state;
	size_t len;
	uint8_t *b = sample_bytes(&len);
	const uint64_t frame = KG_SECTION_HEADER_SIZE + KG_SECTION_CRC_SIZE;
	uint64_t off = KG_STREAM_HEADER_SIZE + (frame + 40) + (frame + 3000);
	char where[64], crc_msg[96];
	snprintf(where, sizeof(where), "at offset %llu",
		 (unsigned long long)off);
	snprintf(crc_msg, sizeof(crc_msg), "section 2 (vcpu #1) at offset "
		 "%llu: checksum mismatch", (unsigned long long)off);
	for (size_t i = 0; i < KG_SECTION_HEADER_SIZE + 3000 + 4; i++) {
		if (i >= 24 && i < KG_SECTION_HEADER_SIZE + 3000 - 8 && i % 97)
			continue; /* the payload's middle: a sample */
		struct kg_err e;
		b[off + i] ^= 0x40;
		assert_int_equal(read_bytes(b, len, NULL, &e), -1);
		if (!strstr(e.msg, "section 2 (") || !strstr(e.msg, where))
			fail_msg("byte %zu: '%s'", i, e.msg);
		if (i >= KG_SECTION_HEADER_SIZE && strcmp(e.msg, crc_msg))
			fail_msg("byte %zu: '%s'", i, e.msg);
		b[off + i] ^= 0x40;
	}
	free(b);
}

static void sanity_intact(void **state)
{
	(void)state;
	size_t len;
	struct kg_err e;
	uint8_t *b = sample_bytes(&len);
	if (read_bytes(b, len, NULL, &e) < 0)
		fail_msg("%s", e.msg);
	free(b);
}

/* Cut the small stream at every byte: always a clean "truncated" or
 * "missing end marker", the latter exactly at section boundaries. */
static void test_truncate_everywhere(void **state)
{
	(void)state;
	size_t len, n;
	uint64_t offs[32];
	uint8_t *b = small_bytes(&len, offs, &n);
	struct kg_err e;
	assert_int_equal(read_bytes(b, len, NULL, &e), 0);
	for (size_t cut = 0; cut < len; cut++) {
		assert_int_equal(read_bytes(b, cut, NULL, &e), -1);
		bool boundary = false;
		for (size_t k = 0; k < n; k++)
			boundary |= offs[k] == cut;
		if (boundary) {
			if (strncmp(e.msg, "missing end marker", 18))
				fail_msg("cut %zu: '%s'", cut, e.msg);
		} else if (strncmp(e.msg, "truncated: ", 11)) {
			fail_msg("cut %zu: '%s'", cut, e.msg);
		}
	}
	/* The messages, whole. Section 6 is RAM with 9 payload bytes. */
	char want[128];
	snprintf(want, sizeof(want), "truncated: section 6 (ram #0) at offset "
		 "%llu declares 9 bytes, 4 present",
		 (unsigned long long)offs[6]);
	expect_error(b, offs[6] + 20, NULL, want);
	snprintf(want, sizeof(want), "truncated: section 6 (ram #0) at offset "
		 "%llu: checksum missing (2 of 4 bytes present)",
		 (unsigned long long)offs[6]);
	expect_error(b, offs[6] + 16 + 9 + 2, NULL, want);
	snprintf(want, sizeof(want), "truncated: section 3 at offset %llu: "
		 "header is 16 bytes, 5 present", (unsigned long long)offs[3]);
	expect_error(b, offs[3] + 5, NULL, want);
	snprintf(want, sizeof(want), "missing end marker: stream ends at "
		 "offset %llu after 11 sections", (unsigned long long)offs[11]);
	expect_error(b, offs[11], NULL, want);
	free(b);
}

/* A header crafted by hand (the writer refuses these). */
static size_t craft(uint8_t *b, uint16_t kind, uint16_t inst, uint64_t len)
{
	struct kg_stream_header h;
	kg_stream_header_host(&h);
	kg_stream_header_encode(&h, b);
	struct kg_section s = { .kind = kind, .instance = inst, .length = len };
	kg_section_header_encode(&s, b + KG_STREAM_HEADER_SIZE);
	return KG_STREAM_HEADER_SIZE + KG_SECTION_HEADER_SIZE;
}

static void test_oversized(void **state)
{
	(void)state;
	uint8_t b[64];
	size_t n = craft(b, KG_SEC_VCPU, 0, (1 << 20) + 1);
	expect_error(b, n, NULL, "section 0 (vcpu #0) at offset 32: declares "
		     "1048577 bytes, more than the limit of 1048576");
	n = craft(b, KG_SEC_RAM_PAGES, 0, UINT64_MAX);
	expect_error(b, n, NULL, "section 0 (ram-pages #0) at offset 32: "
		     "declares 18446744073709551615 bytes");
	n = craft(b, 0x7777, 0, (1ull << 30) + 1); /* unknown: bulk bound */
	expect_error(b, n, NULL, "section 0 (kind 0x7777 #0) at offset 32: "
		     "declares 1073741825 bytes");
	/* A configured bound for bulk sections, and one for whole RAM
	 * regions (1 TiB by default: a 3 GiB region passes). */
	struct kg_stream_opts o;
	kg_stream_opts_default(&o);
	o.max_bulk = 4096;
	n = craft(b, KG_SEC_RAM_PAGES, 0, 4097);
	expect_error(b, n, &o, "more than the limit of 4096");
	n = craft(b, KG_SEC_RAM_FULL, 0, (1ull << 40) + 1);
	expect_error(b, n, NULL, "section 0 (ram #0) at offset 32: declares "
		     "1099511627777 bytes, more than the limit of "
		     "1099511627776");
	assert_int_equal(kg_sec_max_length(&o, KG_SEC_RAM_FULL), 1ull << 40);
	o.max_ram = 4096;
	n = craft(b, KG_SEC_RAM_FULL, 0, 4097);
	expect_error(b, n, &o, "more than the limit of 4096");
	n = craft(b, KG_SEC_END, 0, 9);
	expect_error(b, n, NULL, "end marker declares 9 bytes, expected 8");
	n = craft(b, 0, 0, 0);
	expect_error(b, n, NULL, "section 0 (kind 0x0000 #0) at offset 32: "
		     "invalid kind 0");
	n = craft(b, KG_SEC_VCPU, 4096, 10);
	expect_error(b, n, NULL, "instance 4096 out of range (at most 4095)");
	n = craft(b, KG_SEC_PIT, 1, 10);
	expect_error(b, n, NULL, "section 0 (pit #1) at offset 32: instance 1 "
		     "out of range (at most 0)");

	/* The writer refuses the same before writing a byte. */
	struct kg_stream_writer w;
	struct kg_err e;
	int fd = memfd();
	kg_writer_init(&w, fd, &o, NULL);
	assert_int_equal(kg_writer_header(&w, NULL, &e), 0);
	assert_int_equal(kg_writer_begin(&w, KG_SEC_VCPU, 0, 1, (1 << 20) + 1,
					 &e), -1);
	assert_string_equal(e.msg, "section 0 (vcpu #0) at offset 32: "
			    "declares 1048577 bytes, more than the limit of "
			    "1048576");
	assert_int_equal(kg_writer_section(&w, KG_SEC_RAM_FULL, 0, 1, b, 4097,
					   &e), -1);
	assert_int_equal(kg_writer_section(&w, KG_SEC_VCPU, 5000, 1, b, 1,
					   &e), -1);
	assert_int_equal(kg_writer_section(&w, 0, 0, 1, b, 1, &e), -1);
	assert_int_equal(w.offset, KG_STREAM_HEADER_SIZE);
	/* ... and stays usable. */
	put_section(&w, KG_SEC_VCPU, 0, 10);
	assert_int_equal(kg_writer_end(&w, &e), 0);
	close(fd);
}

static void test_too_many_sections(void **state)
{
	(void)state;
	struct kg_stream_opts big, small;
	struct kg_err e;
	kg_stream_opts_default(&big);
	kg_stream_opts_default(&small);
	small.max_sections = 5;
	int fd = memfd();
	struct kg_stream_writer w;
	kg_writer_init(&w, fd, &big, NULL);
	assert_int_equal(kg_writer_header(&w, NULL, &e), 0);
	for (int i = 0; i < 6; i++)
		put_section(&w, KG_SEC_DEVICE, (uint16_t)i, 4);
	assert_int_equal(kg_writer_end(&w, &e), 0);
	size_t len;
	uint8_t *b = slurp(fd, &len);
	close(fd);
	expect_error(b, len, &small, "section 5 (device #5) at offset 152: "
		     "more than 5 sections in one snapshot");
	assert_int_equal(read_bytes(b, len, &big, &e), 0);
	free(b);

	/* The bound is per epoch: many small epochs pass... */
	fd = memfd();
	kg_writer_init(&w, fd, &small, NULL);
	assert_int_equal(kg_writer_header(&w, NULL, &e), 0);
	put_section(&w, KG_SEC_VM_CONFIG, 0, 4);
	for (int ep = 0; ep < 10; ep++) {
		put_section(&w, KG_SEC_EPOCH_BEGIN, 0, 8);
		for (int i = 0; i < 3; i++)
			put_section(&w, KG_SEC_RAM_PAGES, 0, 4);
		put_section(&w, KG_SEC_EPOCH_END, 0, 8);
	}
	assert_int_equal(kg_writer_end(&w, &e), 0);
	b = slurp(fd, &len);
	close(fd);
	if (read_bytes(b, len, &small, &e) < 0)
		fail_msg("%s", e.msg);
	free(b);

	/* ... one too big does not (its markers count), and the writer says
	 * so before writing. */
	fd = memfd();
	kg_writer_init(&w, fd, &small, NULL);
	assert_int_equal(kg_writer_header(&w, NULL, &e), 0);
	put_section(&w, KG_SEC_EPOCH_BEGIN, 0, 8);
	for (int i = 0; i < 4; i++)
		put_section(&w, KG_SEC_RAM_PAGES, 0, 4);
	assert_int_equal(kg_writer_section(&w, KG_SEC_EPOCH_END, 0, 1, "x", 1,
					   &e), -1);
	assert_non_null(strstr(e.msg, "more than 5 sections in one epoch"));
	close(fd);
}

static void test_epoch_sequence(void **state)
{
	(void)state;
	struct kg_stream_writer w;
	struct kg_err e;
	int fd = memfd();
	kg_writer_init(&w, fd, NULL, NULL);
	assert_int_equal(kg_writer_header(&w, NULL, &e), 0);
	assert_int_equal(kg_writer_section(&w, KG_SEC_EPOCH_END, 0, 1, "", 0,
					   &e), -1);
	assert_non_null(strstr(e.msg, "epoch end without a begin"));
	put_section(&w, KG_SEC_EPOCH_BEGIN, 0, 0);
	assert_int_equal(kg_writer_section(&w, KG_SEC_EPOCH_BEGIN, 0, 1, "", 0,
					   &e), -1);
	assert_non_null(strstr(e.msg, "epoch begins inside an open epoch"));
	assert_int_equal(kg_writer_end(&w, &e), -1);
	assert_non_null(strstr(e.msg, "end marker inside an open epoch"));
	close(fd);

	/* The reader applies the same rules to a crafted stream. */
	uint8_t b[128];
	size_t n = craft(b, KG_SEC_EPOCH_END, 0, 0);
	reseal_section(b, KG_STREAM_HEADER_SIZE);
	expect_error(b, n + 4, NULL, "section 0 (epoch-end #0) at offset 32: "
		     "epoch end without a begin");
}

static void test_missing_end_marker(void **state)
{
	(void)state;
	struct kg_stream_writer w;
	struct kg_err e;
	int fd = memfd();
	kg_writer_init(&w, fd, NULL, NULL);
	assert_int_equal(kg_writer_header(&w, NULL, &e), 0);
	put_section(&w, KG_SEC_VM_CONFIG, 0, 10);
	size_t len;
	uint8_t *b = slurp(fd, &len);
	expect_error(b, len, NULL, "missing end marker: stream ends at offset "
		     "62 after 1 sections");
	free(b);
	/* A header alone. */
	b = slurp(fd, &len);
	expect_error(b, KG_STREAM_HEADER_SIZE, NULL, "missing end marker");
	free(b);
	close(fd);
}

static void test_end_marker_count(void **state)
{
	(void)state;
	size_t len, n;
	uint64_t offs[32];
	uint8_t *b = small_bytes(&len, offs, &n);
	/* Claim one section more than precede the marker. */
	uint64_t end = offs[n - 1];
	b[end + KG_SECTION_HEADER_SIZE] += 1;
	reseal_section(b, end);
	char want[128];
	snprintf(want, sizeof(want), "section 11 (end #0) at offset %llu: end "
		 "marker counts 12 sections, 11 present",
		 (unsigned long long)end);
	expect_error(b, len, NULL, want);
	free(b);
}

static void test_trailing_data(void **state)
{
	(void)state;
	size_t len;
	uint8_t *b = sample_bytes(&len);
	uint8_t *l = malloc(len + 3);
	assert_non_null(l);
	memcpy(l, b, len);
	memcpy(l + len, "xyz", 3);
	char want[80];
	snprintf(want, sizeof(want), "trailing data after the end marker at "
		 "offset %zu", len);
	expect_error(l, len + 3, NULL, want);
	free(l);
	free(b);
}

static void test_unknown_kinds_skipped(void **state)
{
	(void)state;
	struct kg_stream_reader r;
	struct kg_section s;
	struct kg_err e;
	size_t len;
	uint8_t *b = sample_bytes(&len);
	int fd = fd_of(b, len), rc, unknown = 0;
	kg_reader_init(&r, fd, NULL);
	assert_int_equal(kg_reader_header(&r, NULL, &e), 0);
	/* A consumer that reads only what it knows: next() skips the rest
	 * and still verifies each CRC. */
	while ((rc = kg_reader_next(&r, &s, &e)) == 1) {
		char d[48];
		kg_sec_describe(d, sizeof(d), s.kind, s.instance);
		if (!kg_sec_name(s.kind)) {
			unknown++;
			assert_true(!strcmp(d, "kind 0x4242 #9") ||
				    !strcmp(d, "kind 0x8123 #0"));
		}
	}
	assert_int_equal(rc, 0);
	assert_int_equal(unknown, 2);
	close(fd);
	assert_string_equal(kg_sec_name(KG_SEC_RAM_PAGES), "ram-pages");
	assert_true(0x8123 & KG_SEC_ANCILLARY);
	free(b);
}

/* --- the writer --- */

static void test_streamed_length_mismatch(void **state)
{
	(void)state;
	struct kg_stream_writer w;
	struct kg_err e;
	uint8_t buf[100] = { 0 };
	int fd = memfd();
	kg_writer_init(&w, fd, NULL, NULL);
	assert_int_equal(kg_writer_header(&w, NULL, &e), 0);
	assert_int_equal(kg_writer_begin(&w, KG_SEC_DEVICE, 2, 1, 100, &e), 0);
	assert_int_equal(kg_writer_append(&w, buf, 60, &e), 0);
	/* Too many: refused before writing, the section stays open. */
	assert_int_equal(kg_writer_append(&w, buf, 41, &e), -1);
	assert_string_equal(e.msg, "section 0 (device #2) at offset 32: "
			    "appending 41 bytes to the 60 already appended "
			    "exceeds the 100 declared");
	/* Too few. */
	assert_int_equal(kg_writer_end_section(&w, &e), -1);
	assert_string_equal(e.msg, "section 0 (device #2) at offset 32: 60 "
			    "bytes appended, 100 declared");
	/* Nothing else until the section is complete. */
	assert_int_equal(kg_writer_section(&w, KG_SEC_PIT, 0, 1, buf, 1, &e),
			 -1);
	assert_non_null(strstr(e.msg, "section 0 is still open"));
	assert_int_equal(kg_writer_end(&w, &e), -1);
	assert_int_equal(kg_writer_append(&w, buf, 40, &e), 0);
	assert_int_equal(kg_writer_end_section(&w, &e), 0);
	assert_int_equal(kg_writer_end(&w, &e), 0);
	size_t len;
	uint8_t *b = slurp(fd, &len);
	if (read_bytes(b, len, NULL, &e) < 0)
		fail_msg("%s", e.msg);
	free(b);
	close(fd);
}

static void test_writer_misuse(void **state)
{
	(void)state;
	struct kg_stream_writer w;
	struct kg_err e;
	int fd = memfd();
	kg_writer_init(&w, fd, NULL, NULL);
	assert_int_equal(kg_writer_section(&w, KG_SEC_PIT, 0, 1, "", 0, &e),
			 -1);
	assert_string_equal(e.msg, "snapshot writer: file header not written");
	assert_int_equal(kg_writer_append(&w, "", 0, &e), -1);
	assert_int_equal(kg_writer_header(&w, NULL, &e), 0);
	assert_int_equal(kg_writer_header(&w, NULL, &e), -1);
	assert_int_equal(kg_writer_section(&w, KG_SEC_END, 0, 1, "12345678", 8,
					   &e), -1);
	assert_int_equal(kg_writer_begin(&w, KG_SEC_END, 0, 1, 8, &e), -1);
	assert_int_equal(kg_writer_end(&w, &e), 0);
	assert_int_equal(kg_writer_section(&w, KG_SEC_PIT, 0, 1, "", 0, &e),
			 -1);
	assert_string_equal(e.msg, "snapshot writer: the stream has ended");
	close(fd);
}

static void test_enospc(void **state)
{
	(void)state;
	struct kg_stream_writer w;
	struct kg_err e;
	int fd = open("/dev/full", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		skip();
	kg_writer_init(&w, fd, NULL, NULL);
	assert_int_equal(kg_writer_header(&w, NULL, &e), -1);
	assert_string_equal(e.msg, "writing snapshot: No space left on device");
	/* The stream is cut: the writer refuses to go on. */
	assert_int_equal(kg_writer_section(&w, KG_SEC_PIT, 0, 1, "", 0, &e),
			 -1);
	assert_string_equal(e.msg, "snapshot writer: failed earlier");
	close(fd);
}

/* A file that fills up mid-section, named in the error as the writer's
 * `what`; a closed pipe likewise. */
static void test_write_errors_midway(void **state)
{
	(void)state;
	struct kg_stream_writer w;
	struct kg_err e;
	int full = open("/dev/full", O_WRONLY | O_CLOEXEC);
	if (full < 0)
		skip();
	int fd = memfd();
	kg_writer_init(&w, fd, NULL, "epoch stream");
	assert_int_equal(kg_writer_header(&w, NULL, &e), 0);
	put_section(&w, KG_SEC_VCPU, 0, 100);
	assert_int_equal(kg_writer_begin(&w, KG_SEC_RAM_FULL, 0, 1, 10, &e), 0);
	assert_true(dup2(full, fd) == fd); /* the disk fills up now */
	assert_int_equal(kg_writer_append(&w, "0123456789", 10, &e), -1);
	assert_string_equal(e.msg, "writing epoch stream: No space left on "
			    "device");
	assert_int_equal(kg_writer_end_section(&w, &e), -1);
	close(fd);
	close(full);

	int p[2];
	assert_int_equal(pipe(p), 0);
	close(p[0]);
	void (*old)(int) = signal(SIGPIPE, SIG_IGN);
	kg_writer_init(&w, p[1], NULL, NULL);
	assert_int_equal(kg_writer_header(&w, NULL, &e), -1);
	assert_string_equal(e.msg, "writing snapshot: Broken pipe");
	signal(SIGPIPE, old);
	close(p[1]);
}

static void test_names(void **state)
{
	(void)state;
	char d[48];
	kg_sec_describe(d, sizeof(d), KG_SEC_VCPU, 1);
	assert_string_equal(d, "vcpu #1");
	struct kg_section s = { .kind = KG_SEC_VCPU, .instance = 1,
				.offset = 8192, .index = 3 };
	kg_section_where(d, sizeof(d), &s);
	assert_string_equal(d, "section 3 (vcpu #1) at offset 8192");
	assert_string_equal(kg_arch_name(KG_ARCH_X86_64), "x86_64");
	assert_null(kg_arch_name(1));
	assert_int_equal(kg_arch_host(), KG_ARCH_X86_64);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32c_vectors),
		cmocka_unit_test(test_crc32c_paths_agree),
		cmocka_unit_test(test_names),
		cmocka_unit_test(sanity_intact),
		cmocka_unit_test(test_roundtrip_file),
		cmocka_unit_test(test_roundtrip_pipe),
		cmocka_unit_test(test_roundtrip_pipe_nonblocking),
		cmocka_unit_test(test_writer_align),
		cmocka_unit_test(test_writer_disk_full),
		cmocka_unit_test(test_skip_unverified),
		cmocka_unit_test(test_bad_magic),
		cmocka_unit_test(test_newer_major),
		cmocka_unit_test(test_newer_minor_accepted),
		cmocka_unit_test(test_arch_mismatch),
		cmocka_unit_test(test_header_each_byte),
		cmocka_unit_test(test_section_each_byte),
		cmocka_unit_test(test_truncate_everywhere),
		cmocka_unit_test(test_oversized),
		cmocka_unit_test(test_too_many_sections),
		cmocka_unit_test(test_epoch_sequence),
		cmocka_unit_test(test_missing_end_marker),
		cmocka_unit_test(test_end_marker_count),
		cmocka_unit_test(test_trailing_data),
		cmocka_unit_test(test_unknown_kinds_skipped),
		cmocka_unit_test(test_streamed_length_mismatch),
		cmocka_unit_test(test_writer_misuse),
		cmocka_unit_test(test_enospc),
		cmocka_unit_test(test_write_errors_midway),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
