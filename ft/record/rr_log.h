/*
 * The execution log: what a deterministic VM took from outside, as typed
 * records, so that a replayer can re-execute it exactly (record/replay,
 * lockstep FT). Shared by ft/record (encode) and ft/replay (decode).
 *
 * A recording is one kagami stream (ft/checkpoint/stream.h): the VM's
 * configuration, one full epoch (the state at exit 0), then KG_SEC_EXEC_LOG
 * sections, then the end marker. Each log section's payload:
 *
 *    0  flags           u8  (RR_SEC_LZ4: the records are LZ4-compressed)
 *    1  reserved        3 bytes, 0
 *    4  records length  u32 (uncompressed)
 *    8  first exit      u64 (index of the first EXIT record in it)
 *   16  record count    u64
 *   24  records (or their LZ4 block)
 *
 * Records follow each other; each starts with its kind (u8, enum
 * rr_kind: the numbering is the format, never renumber). Integers are
 * LEB128 varints unless said otherwise. Every synchronous exit (port I/O,
 * MMIO, HLT) has one EXIT record, numbered implicitly from 0; the records
 * after it up to the next EXIT are the inputs that entered at that exit's
 * end (the only points where a deterministic VM takes asynchronous input):
 *
 *   EXIT    type u8, size u8, addr, count, register mask, then for each
 *           register in the mask (order of enum rr_reg) its value XOR the
 *           previous EXIT's, then the data: reads carry the value the
 *           guest got (size * count bytes); writes carry it when at most
 *           16 bytes, else its XXH32 (u32) — outputs are checked, not
 *           replayed.
 *   TIME    guest clock read inside the exit: ns since the previous TIME
 *   WRITE   device bytes into guest RAM: gpa, length, bytes
 *   IRQ     vector u8 injected (KVM_INTERRUPT) before the guest resumes
 *   DIGEST  RAM hash u64, then RR_NREGS registers and cr0, cr3, cr4, efer
 *           as u64 (fixed width): the replayer compares its own
 *
 * Version 1 of KG_SEC_EXEC_LOG. A reader refuses kinds it does not know.
 */
#ifndef KG_RR_LOG_H
#define KG_RR_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define RR_LOG_VERSION 1
#define RR_SEC_HEADER 24
#define RR_SEC_LZ4 0x01u
#define RR_SEC_MAX_RAW (1u << 20) /* records per section, uncompressed */
#define RR_DATA_MAX 4096u          /* an exit's data (string I/O page) */
#define RR_WRITE_MAX (1u << 20)    /* one WRITE record's bytes */

enum rr_kind {
	RR_EXIT = 1,
	RR_TIME = 2,
	RR_WRITE = 3,
	RR_IRQ = 4,
	RR_DIGEST = 5,
};

enum rr_exit_type {
	RR_PIO_IN = 0,
	RR_PIO_OUT = 1,
	RR_MMIO_READ = 2,
	RR_MMIO_WRITE = 3,
	RR_HLT = 4,
	RR_EXIT_TYPES
};

enum rr_reg {
	RR_RAX, RR_RBX, RR_RCX, RR_RDX, RR_RSI, RR_RDI, RR_RSP, RR_RBP,
	RR_R8, RR_R9, RR_R10, RR_R11, RR_R12, RR_R13, RR_R14, RR_R15,
	RR_RIP, RR_RFLAGS, RR_NREGS
};

struct rr_exit {
	uint8_t type, size;
	uint64_t addr;  /* port or guest-physical address */
	uint32_t count; /* port I/O repetitions (string I/O), else 1 */
	uint64_t regs[RR_NREGS];
	uint32_t len;   /* data bytes as recorded */
	bool hashed;    /* data is the XXH32 of a longer write */
	uint8_t data[RR_DATA_MAX];
};

struct rr_digest {
	uint64_t ram_hash;
	uint64_t regs[RR_NREGS];
	uint64_t cr0, cr3, cr4, efer;
};

/* One decoded record. WRITE data points into the decoder's buffer. */
struct rr_record {
	uint8_t kind;
	union {
		struct rr_exit *exit; /* the decoder's; valid until next */
		uint64_t time_delta;
		struct {
			uint64_t gpa;
			uint32_t len;
			const uint8_t *data;
		} write;
		uint8_t vector;
		struct rr_digest digest;
	} u;
};

const char *rr_kind_name(unsigned kind);
const char *rr_exit_type_name(unsigned type);
const char *rr_reg_name(unsigned reg);

/* --- encoding (a growable buffer of records) --- */

struct rr_buf {
	uint8_t *data;
	size_t len, cap;
	uint64_t nrecords;
	uint64_t first_exit; /* of this batch */
	uint64_t prev_regs[RR_NREGS]; /* carried across batches */
};

void rr_buf_free(struct rr_buf *b);
/* x->len bytes of x->data are written as given (the caller hashes long
 * writes and sets x->hashed). */
int rr_put_exit(struct rr_buf *b, const struct rr_exit *x, struct kg_err *e);
int rr_put_time(struct rr_buf *b, uint64_t delta_ns, struct kg_err *e);
int rr_put_write(struct rr_buf *b, uint64_t gpa, const void *data,
		 uint32_t len, struct kg_err *e);
int rr_put_irq(struct rr_buf *b, uint8_t vector, struct kg_err *e);
int rr_put_digest(struct rr_buf *b, const struct rr_digest *d,
		  struct kg_err *e);

/* The section payload for b's records (compressed when that is smaller);
 * *out is malloc'd. Empties b (keeping the register context). */
int rr_seal(struct rr_buf *b, uint64_t next_first_exit, uint8_t **out,
	    size_t *out_len, struct kg_err *e);

/* --- decoding --- */

struct rr_decoder {
	uint8_t *raw;      /* this section's records, uncompressed */
	size_t raw_len, pos;
	uint64_t nrecords, done;
	uint64_t first_exit;
	uint64_t exit_index; /* of the next EXIT record */
	uint64_t regs[RR_NREGS];
	struct rr_exit exit;
};

void rr_decoder_init(struct rr_decoder *d);
void rr_decoder_free(struct rr_decoder *d);
/* Loads one section's payload (verified by the stream layer already):
 * header checks, decompression. Its first_exit must continue the previous
 * section's EXIT numbering. */
int rr_decoder_load(struct rr_decoder *d, const uint8_t *payload, size_t len,
		    struct kg_err *e);
/* 1 with *r filled, 0 when the section's records are used up, -1 on a
 * malformed record: e names the record's number and byte offset within
 * the section's records. */
int rr_decoder_next(struct rr_decoder *d, struct rr_record *r,
		    struct kg_err *e);

#endif
