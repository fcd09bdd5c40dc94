/*
 * The page codec: guest pages of an incremental epoch, encoded into the
 * payload of a KG_SEC_RAM_PAGES section (section version 1) and decoded
 * back into the receiver's staging copy of guest RAM.
 *
 * Payload, all integers little-endian:
 *    0  count   u32   records that follow
 *    4  flags   u32   bits 0-15 must be understood (none defined in v1),
 *                     bits 16-31 may be ignored; the encoder writes 0
 *    8  count records, each:
 *         0  word    u64   gpa | coding: the gpa is page aligned, so its low
 *                          12 bits carry the coding
 *         8  length  u32   bytes of data
 *        12  data    length bytes
 * Records are in strictly increasing gpa order (so a batch never names a
 * page twice) and end exactly at the end of the payload.
 *
 * Codings (0 and 5..4095 are invalid):
 *   1 ZERO   length 0: the page is all zeros.
 *   2 RAW    length 4096: the page itself.
 *   3 LZ4    1..4095 bytes: an LZ4 block (LZ4_compress_fast, acceleration
 *            1) that decodes to exactly 4096 bytes. The encoder keeps it
 *            only below 3/4 of a page.
 *   4 DELTA  8 + n bytes: XXH3_64bits of the resulting page (u64), then a
 *            zero-run stream of the XOR between the page and the copy the
 *            receiver holds. The stream is tokens of
 *                uleb128 skip, uleb128 n (n >= 1), n bytes
 *            each meaning: leave `skip` bytes as they are, XOR the next n
 *            bytes with the given ones. Bytes after the last token stay as
 *            they are; a varint is at most 2 bytes; no token may reach past
 *            byte 4096. The hash makes the receiver prove that its copy
 *            was the one the sender diffed against: a disagreement is a
 *            decode error, not silent corruption.
 * A page identical to the copy the receiver holds is not sent at all (the
 * encoder counts it as `same`): the receiver already has it.
 *
 * The contract between the two sides. The encoder keeps a shadow of what
 * the receiver holds: for each page, unknown (never sent: no delta is
 * possible), known zero, or known with the shadow copy. The shadow changes
 * only in page_encoder_commit(), which applies a batch's own payload to it
 * with the decoder's code, so it equals what the receiver computes. Call
 * commit once the receiver has applied the batch, in the order the batches
 * were encoded (or, on a reliable in-order stream where any receiver error
 * ends the session, once the batch is written); call page_encoder_abort()
 * for a batch the receiver will never apply, and page_encoder_reset() when
 * the receiver's RAM is no longer known (a new receiver, a failed batch).
 * Until a batch is committed or aborted its pages are pending and encoding
 * any of them again is an error: their delta would be against a copy the
 * receiver may not have yet.
 *
 * Decoding validates the whole batch before it writes a byte (two passes:
 * validate, then apply; LZ4 and deltas are decoded twice), so a failed
 * decode leaves the destination untouched without staging a batch's pages.
 * The destination must not change during page_decode().
 */
#ifndef KG_PAGE_CODEC_H
#define KG_PAGE_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "vmm/mem.h"

#define PAGE_CODEC_VERSION 1 /* the KG_SEC_RAM_PAGES section version */
#define PAGE_CODEC_PAGE 4096u
#define PAGE_CODEC_BATCH_HEADER 8u
#define PAGE_CODEC_RECORD_HEADER 12u
/* The smallest output buffer: a batch header and one RAW record, so that
 * every call makes progress. */
#define PAGE_CODEC_MIN_OUT \
	(PAGE_CODEC_BATCH_HEADER + PAGE_CODEC_RECORD_HEADER + PAGE_CODEC_PAGE)
#define PAGE_CODEC_FLAGS_REQUIRED 0x0000ffffu
#define PAGE_CODEC_FLAGS_KNOWN 0u

enum page_coding {
	KG_PAGE_ZERO = 1,
	KG_PAGE_RAW = 2,
	KG_PAGE_LZ4 = 3,
	KG_PAGE_DELTA = 4,
	KG_PAGE_NCODINGS /* arrays indexed by coding; [0] is unused */
};

/* "zero", "raw", "lz4", "delta"; NULL for anything else. */
const char *page_coding_name(unsigned coding);

/* Per batch (one encode or decode call); page_codec_stats_add sums them. */
struct page_codec_stats {
	uint64_t pages[KG_PAGE_NCODINGS]; /* records per coding */
	uint64_t bytes[KG_PAGE_NCODINGS]; /* their payload bytes, headers in */
	uint64_t same;      /* encoder: pages skipped, unchanged */
	uint64_t bytes_in;  /* encoder: 4 KiB per page consumed; decoder:
			       payload bytes */
	uint64_t bytes_out; /* encoder: payload bytes; decoder: 4 KiB per
			       record */
};

void page_codec_stats_add(struct page_codec_stats *sum,
			  const struct page_codec_stats *s);

/* --- sender --- */

struct page_encoder;

/* An encoder reading the live pages of `src`, which must outlive it. The
 * shadow is one MAP_NORESERVE mapping the size of src's RAM: only pages
 * sent with data (not ZERO) ever occupy memory. Every page starts unknown.
 * One thread at a time; to encode on several threads, give each thread
 * its own encoder and a disjoint set of pages. */
struct page_encoder *page_encoder_new(const struct guest_mem *src,
				      struct kg_err *e);
void page_encoder_free(struct page_encoder *pe);
/* Reads pages from another copy of the same RAM layout from now on (the
 * encoder copies each page once before it looks at it, so src may be the
 * live RAM of a running guest; the shadow is kept). */
void page_encoder_set_src(struct page_encoder *pe, const struct guest_mem *src);
/* Off: committed pages with data are forgotten (unknown: sent whole next
 * time) instead of copied into the shadow. A first full copy of a large
 * guest would otherwise fill and copy a shadow as large as its RAM, when
 * most of those pages are never sent again. Zero pages stay known. */
void page_encoder_set_shadowing(struct page_encoder *pe, bool on);

/* Encodes pages from gpas[0..n) (page aligned, strictly increasing, inside
 * src's RAM, none pending) into out[0..cap), cap >= PAGE_CODEC_MIN_OUT.
 * Returns how many pages it consumed (encoded or skipped as unchanged),
 * fewer than n when out is full: pass the rest to the next batch. *len is
 * the payload size (PAGE_CODEC_BATCH_HEADER with no record: nothing needs
 * sending). st (may be NULL) is overwritten with this batch's figures.
 * On error returns -1 and no page of this call stays pending. */
long page_encode(struct page_encoder *pe, const uint64_t *gpas, size_t n,
		 void *out, size_t cap, size_t *len,
		 struct page_codec_stats *st, struct kg_err *e);

/* The receiver has applied this payload (one page_encode() produced it):
 * the shadow takes its pages' new contents. On error (not a payload of
 * this encoder, or committed twice) nothing changes, except if applying
 * fails midway, which resets the encoder. */
int page_encoder_commit(struct page_encoder *pe, const void *payload,
			size_t len, struct kg_err *e);
/* The receiver will not apply this payload: its pages are no longer
 * pending and keep their previous shadow. */
void page_encoder_abort(struct page_encoder *pe, const void *payload,
			size_t len);
/* Forgets everything: every page unknown, none pending, shadow released. */
void page_encoder_reset(struct page_encoder *pe);
/* The receiver's RAM is all zeros (a fresh VM): every page known zero, so
 * zero pages are never sent and others go as deltas against zero. */
void page_encoder_assume_zero(struct page_encoder *pe);

/* --- receiver --- */

/* Decodes a payload of section version `version` into dst's pages (the
 * receiver's staging copy, which holds what earlier batches left there).
 * All or nothing: on error dst is untouched, and e names the page index
 * and gpa ("page 3 at gpa 0x5000: LZ4 data does not decode to 4096
 * bytes"), kind KG_ERR_CORRUPT (KG_ERR_INVALID: a version or required
 * flag this kagami does not know). st (may be NULL) is overwritten. */
int page_decode(const struct guest_mem *dst, uint32_t version,
		const void *payload, size_t len, struct page_codec_stats *st,
		struct kg_err *e);

#endif
