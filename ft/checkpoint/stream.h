/*
 * The kagami stream: the one container for snapshots (a file) and for
 * replication epochs (a pipe or socket). This layer frames and checks;
 * what a section's payload means belongs to its encoder.
 *
 * All integers are little-endian. The format version is independent of
 * kagami's version: a reader accepts any minor version of its major (minor
 * versions only add section kinds, header bytes, flag bits 16-31 and
 * fields at the end of payloads) and refuses a newer major.
 *
 * File header (KG_STREAM_HEADER_SIZE = 32 bytes in 1.0):
 *    0  magic "KAGAMIST"          8 bytes
 *    8  major, minor              u16 each
 *   12  architecture              u16, ELF e_machine (62 = x86_64)
 *   14  header size               u16, 32 in 1.0; a newer minor may grow it
 *   16  page size                 u32, power of two, 4 KiB .. 64 KiB
 *   20  flags                     u32, bits 0-15 must be understood,
 *                                 bits 16-31 may be ignored
 *   24  reserved                  u32, written as 0, ignored
 *   28  CRC32C of the header bytes before it (it is always the header's
 *       last 4 bytes: at header size - 4)
 *
 * Then sections, each:
 *    0  kind      u16 (enum kg_sec_kind)
 *    2  instance  u16 (vCPU index, device slot, RAM region, ...)
 *    4  version   u32 (of this kind's payload; checked by its decoder)
 *    8  length    u64 (payload bytes; bounded per kind)
 *   16  payload   length bytes
 *   ..  CRC32C of the 16 header bytes and the payload, u32
 *
 * The writer knows every length before it writes a section, so streams
 * never need a seek. The last section is KG_SEC_END, whose 8-byte payload
 * is the number of sections before it: a stream without it was cut short.
 * An epoch is the sections from KG_SEC_EPOCH_BEGIN to KG_SEC_EPOCH_END;
 * epochs do not nest. Readers bound every declared length (by kind), the
 * instance id (by kind) and the sections per snapshot or epoch, before
 * reading a payload byte.
 */
#ifndef KG_STREAM_H
#define KG_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "base/budget.h"
#include "base/err.h"

#define KG_STREAM_MAGIC "KAGAMIST"
#define KG_STREAM_MAJOR 1
#define KG_STREAM_MINOR 4 /* 1.1: disk-blocks, epoch-begin v2; 1.2: exec-log,
			   page-hashes; 1.3: ram-hashes; 1.4: cpuid */
#define KG_STREAM_HEADER_SIZE 32
#define KG_STREAM_HEADER_MAX 4096 /* header size a 1.x reader accepts */
#define KG_SECTION_HEADER_SIZE 16
#define KG_SECTION_CRC_SIZE 4
#define KG_END_PAYLOAD_SIZE 8

/* Architectures, as ELF e_machine values. */
enum kg_arch {
	KG_ARCH_X86_64 = 62,
	KG_ARCH_AARCH64 = 183,
	KG_ARCH_RISCV = 243,
};

/* Flag bits 0-15 change how a stream must be read: a reader refuses any it
 * does not know. None is defined in 1.0. */
#define KG_STREAM_FLAGS_REQUIRED 0x0000ffffu
#define KG_STREAM_FLAGS_KNOWN 0u

enum kg_sec_kind {
	KG_SEC_VM_CONFIG = 0x0001,   /* RAM size, vCPU count, devices */
	KG_SEC_VCPU = 0x0002,        /* one vCPU: instance = index */
	KG_SEC_IRQCHIP = 0x0003,     /* in-kernel PIC/IOAPIC: instance = chip */
	KG_SEC_PIT = 0x0004,
	KG_SEC_CLOCK = 0x0005,
	KG_SEC_DEVICE = 0x0006,      /* one device: instance = slot */
	KG_SEC_PAD = 0x0007,         /* zeros: aligns the next payload */
	KG_SEC_RAM_FULL = 0x0010,    /* a span of guest RAM, raw */
	KG_SEC_RAM_PAGES = 0x0011,   /* a batch of encoded pages */
	KG_SEC_PAGE_HASHES = 0x0012, /* u64 first page, then u64 XXH3 each */
	KG_SEC_DISK = 0x0020,        /* disk identity */
	KG_SEC_DISK_BLOCKS = 0x0021, /* disk contents: u64 offset, data */
	KG_SEC_EPOCH_BEGIN = 0x0030, /* opens an epoch */
	KG_SEC_EPOCH_END = 0x0031,   /* closes it: the epoch is complete */
	KG_SEC_EXEC_LOG = 0x0040,    /* execution log records (ft/record) */
	KG_SEC_END = 0x7fff,         /* mandatory last section */
	/* A snapshot's per-page hashes of a RAM section (instance = region;
	 * layout in ft/checkpoint/snapshot_ram.h): ancillary, a reader
	 * without them verifies the RAM section's checksum instead. */
	KG_SEC_RAM_HASHES = 0x8013,
	/* The CPUID the guest sees (vCPU 0; ft/checkpoint/cpuid_state.h):
	 * a receiver lacking one of its features refuses the VM. */
	KG_SEC_CPUID = 0x8014,
};

/* An unknown kind with this bit set is ancillary: a consumer may skip it.
 * An unknown kind without it means the stream needs a newer kagami, and a
 * restore must refuse it (inspect lists both). Kind 0 is invalid. */
#define KG_SEC_ANCILLARY 0x8000u

/* Bounds a reader enforces and a writer respects. Per snapshot or per epoch
 * means: counted since the stream start or the last KG_SEC_EPOCH_END. */
struct kg_stream_opts {
	uint64_t max_state;    /* state sections; default 1 MiB */
	uint64_t max_bulk;     /* RAM pages, disk and unknown kinds; default
				* 1 GiB */
	/* A whole RAM region (KG_SEC_RAM_FULL): never read into a buffer —
	 * mapped, copied or checked in pieces — so bounded by the largest
	 * guest, 1 TiB (a 3 GiB region 0 is common) */
	uint64_t max_ram;
	uint64_t max_sections; /* per snapshot or epoch; default 1 << 22 */
	bool any_arch;         /* reader: accept another architecture */
};

#define KG_STREAM_DEFAULT_MAX_STATE (1ull << 20)
#define KG_STREAM_DEFAULT_MAX_BULK (1ull << 30)
#define KG_STREAM_DEFAULT_MAX_RAM (1ull << 40)
#define KG_STREAM_DEFAULT_MAX_SECTIONS (1ull << 22)

struct kg_stream_header {
	uint16_t major, minor;
	uint16_t arch;
	uint16_t header_size;
	uint32_t page_size;
	uint32_t flags;
};

struct kg_section {
	uint16_t kind;
	uint16_t instance;
	uint32_t version;
	uint64_t length;
	uint64_t offset; /* of its header, from the stream start */
	uint64_t index;  /* 0 for the first section */
};

/* --- the format (stream.c) --- */

void kg_stream_opts_default(struct kg_stream_opts *o);
/* This host: current version, architecture and page size, no flags. */
void kg_stream_header_host(struct kg_stream_header *h);
uint16_t kg_arch_host(void);
/* "x86_64", "aarch64", "riscv"; NULL if unknown. */
const char *kg_arch_name(uint16_t arch);

/* "vcpu", "ram-pages", ...; NULL for a kind this kagami does not know. */
const char *kg_sec_name(uint16_t kind);
/* Largest payload a section of this kind may declare under o. */
uint64_t kg_sec_max_length(const struct kg_stream_opts *o, uint16_t kind);
/* Largest instance id of this kind (65535 for unknown kinds). */
unsigned kg_sec_max_instance(uint16_t kind);
/* "vcpu #1", or "kind 0x7001 #0" for an unknown kind. */
void kg_sec_describe(char *buf, size_t n, uint16_t kind, uint16_t instance);

/* "section 3 (vcpu #1) at offset 8192": how every error names a section. */
void kg_section_where(char *buf, size_t n, const struct kg_section *s);
/* An error about section s, named once where it is made: "section 3 (ram
 * #0) at offset 4096: <fmt...>", with the given kind. Returns -1. */
int kg_sec_err(struct kg_err *e, const struct kg_section *s,
		   enum kg_err_kind kind, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* The per-section rules shared by reader and writer: kind not 0, instance
 * and length within bounds, END's length. Fills e with the rule broken,
 * without the section's name (the caller prefixes kg_section_where). */
int kg_section_check(const struct kg_stream_opts *o,
		     const struct kg_section *s, struct kg_err *e);
/* The sequence rules: epochs do not nest, END is outside any epoch, at most
 * o->max_sections per snapshot or epoch. Updates *in_epoch and *count. */
int kg_section_sequence(const struct kg_stream_opts *o, bool *in_epoch,
			uint64_t *count, uint16_t kind, struct kg_err *e);

/* Byte images. encode writes KG_STREAM_HEADER_SIZE bytes with its CRC
 * (header_size is forced to 32). */
void kg_stream_header_encode(const struct kg_stream_header *h,
			     uint8_t out[KG_STREAM_HEADER_SIZE]);
void kg_section_header_encode(const struct kg_section *s,
			      uint8_t out[KG_SECTION_HEADER_SIZE]);
void kg_section_header_decode(const uint8_t in[KG_SECTION_HEADER_SIZE],
			      struct kg_section *s);

/* A carrier other than a file descriptor (the replication pipeline runs
 * streams over transport/ frames). Either hook may be NULL when unused. */
struct kg_stream_io {
	/* Writes every byte of iov[0..cnt): 0, or -1 with e set. */
	int (*writev)(void *ctx, const struct iovec *iov, int cnt,
		      struct kg_err *e);
	/* Reads up to n bytes, fewer only at the end of the stream: 0 with
	 * *got set, or -1 with e set. */
	int (*read)(void *ctx, void *buf, size_t n, size_t *got,
		    struct kg_err *e);
	/* Pushes out what the carrier gathered (may be NULL). */
	int (*flush)(void *ctx, struct kg_err *e);
};

/* --- reading (stream_read.c) --- */

struct kg_stream_reader {
	int fd;
	const struct kg_stream_io *io; /* NULL: read(fd) */
	void *io_ctx;
	struct kg_stream_opts opts;
	struct kg_stream_header hdr;
	int state;
	uint64_t offset;      /* bytes consumed from fd */
	uint64_t nsections;   /* sections started, END included */
	uint64_t unit_count;  /* sections in this snapshot or epoch */
	bool in_epoch;
	struct kg_section cur;
	uint64_t done;        /* payload bytes of cur consumed */
	uint32_t crc;         /* running CRC of cur */
	struct kg_budget *budget; /* the peer's (NULL: unlimited) */
};

/* opts NULL: defaults. Reads nothing yet; fd stays the caller's. */
void kg_reader_init(struct kg_stream_reader *r, int fd,
		    const struct kg_stream_opts *opts);
/* Reads through io instead of the fd (before the header). */
void kg_reader_set_io(struct kg_stream_reader *r,
		      const struct kg_stream_io *io, void *ctx);
/* Reads and checks the file header: magic, major version, size, CRC,
 * architecture (unless opts.any_arch), page size, required flags. */
int kg_reader_header(struct kg_stream_reader *r, struct kg_stream_header *h,
		     struct kg_err *e);
/* The next section's header, checked against the limits: 1 with *s filled,
 * 0 at the end marker (*s describes it; its payload is checked and nothing
 * after it is read), -1 on error. Finishes the previous section first if
 * the caller has not. */
int kg_reader_next(struct kg_stream_reader *r, struct kg_section *s,
		   struct kg_err *e);
/* Reads exactly n payload bytes of the current section (n at most what
 * remains). The data is not verified until kg_section_finish succeeds:
 * stage it, do not apply it before. */
int kg_section_read(struct kg_stream_reader *r, void *buf, size_t n,
		    struct kg_err *e);
uint64_t kg_section_remaining(const struct kg_stream_reader *r);
/* What a peer makes this reader hold is charged to b (base/budget.h):
 * kg_section_read_all's buffers; consumers that stage payloads charge
 * theirs to kg_reader_budget(r). NULL: unlimited (the default). */
void kg_reader_set_budget(struct kg_stream_reader *r, struct kg_budget *b);
struct kg_budget *kg_reader_budget(const struct kg_stream_reader *r);
/* The current section's whole payload in a malloc'd buffer, verified
 * (kg_section_finish done): NULL with e set on error. Charged to the
 * reader's budget before it is allocated (a section declaring more than
 * the budget allows is refused unread, its kind KG_ERR_CORRUPT); free
 * it with kg_section_free, or release the charge when handing it on. */
uint8_t *kg_section_read_all(struct kg_stream_reader *r,
			     const struct kg_section *s, struct kg_err *e);
void kg_section_free(struct kg_stream_reader *r, uint8_t *buf, uint64_t len);
/* Skips what remains of the payload and verifies the section's CRC. */
int kg_section_finish(struct kg_stream_reader *r, struct kg_err *e);

/* Seekable streams only: skips the rest of the payload without reading
 * it and returns the section's stored CRC, which the caller must verify
 * itself (a snapshot's RAM is mapped, then checked in the background). */
int kg_section_skip_unverified(struct kg_stream_reader *r, uint32_t *crc,
			       struct kg_err *e);
/* After the end marker: fails if the fd holds more bytes (files). */
int kg_reader_expect_eof(struct kg_stream_reader *r, struct kg_err *e);

/* --- writing (stream_write.c) --- */

struct kg_stream_writer {
	int fd;
	const struct kg_stream_io *io; /* NULL: writev(fd) */
	void *io_ctx;
	struct kg_stream_opts opts;
	const char *what;     /* names the stream in errors: "snapshot" */
	int state;
	uint64_t offset;
	uint64_t nsections;
	uint64_t unit_count;
	bool in_epoch;
	struct kg_section cur;
	uint64_t done;
	uint32_t crc;
};

/* opts NULL: defaults; what NULL: "snapshot". Write errors read
 * "writing snapshot: No space left on device". After a failed write the
 * stream is cut mid-section and every later call fails. */
void kg_writer_init(struct kg_stream_writer *w, int fd,
		    const struct kg_stream_opts *opts, const char *what);
/* Writes through io instead of the fd (before the header). */
void kg_writer_set_io(struct kg_stream_writer *w,
		      const struct kg_stream_io *io, void *ctx);
/* Makes what was written leave now (a carrier that gathers small
 * sections); a no-op on a file descriptor. */
int kg_writer_flush(struct kg_stream_writer *w, struct kg_err *e);
/* h NULL: kg_stream_header_host(). */
int kg_writer_header(struct kg_stream_writer *w,
		     const struct kg_stream_header *h, struct kg_err *e);
/* A whole section from one buffer (one writev). */
int kg_writer_section(struct kg_stream_writer *w, uint16_t kind,
		      uint16_t instance, uint32_t version, const void *buf,
		      uint64_t len, struct kg_err *e);
/* A streamed section: declare its length, append exactly that many bytes in
 * any number of pieces, then end it. */
int kg_writer_begin(struct kg_stream_writer *w, uint16_t kind,
		    uint16_t instance, uint32_t version, uint64_t len,
		    struct kg_err *e);
int kg_writer_append(struct kg_stream_writer *w, const void *buf, size_t n,
		     struct kg_err *e);
int kg_writer_end_section(struct kg_stream_writer *w, struct kg_err *e);
/* Writes a KG_SEC_PAD section, if needed, so that the next section's
 * payload starts at a multiple of align (a power of two, at most 64 KiB)
 * from the stream start: RAM payloads aligned to pages can be mapped from
 * a snapshot file. */
int kg_writer_align(struct kg_stream_writer *w, uint32_t align,
		    struct kg_err *e);
/* Files only: writes a section's header and leaves its payload and CRC as
 * a hole the caller fills with pwrite at *payload_offset (later sections
 * append after it), then seals with kg_writer_patch_crc. *header_crc
 * starts the CRC (continue it over the payload). A snapshot uses it to
 * write RAM in place while the guest runs, and checksum it at the end. */
int kg_writer_reserve(struct kg_stream_writer *w, uint16_t kind,
		      uint16_t instance, uint32_t version, uint64_t len,
		      uint64_t *payload_offset, uint32_t *header_crc,
		      struct kg_err *e);
int kg_writer_patch_crc(struct kg_stream_writer *w, uint64_t payload_offset,
			uint64_t len, uint32_t crc, struct kg_err *e);
/* The end marker; the stream is complete once this returns 0. */
int kg_writer_end(struct kg_stream_writer *w, struct kg_err *e);

#endif
