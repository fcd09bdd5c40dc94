/*
 * Epochs: the unit of replication. A stream (the kagami stream format over
 * a pipe, socket or file) starts with the VM's configuration, then carries
 * epochs: EPOCH_BEGIN, encoded pages (page_codec: zero, delta against what
 * the receiver holds, LZ4 or raw) in RAM_PAGES sections of at most
 * EPOCH_BATCH bytes, the consistent state (vm_state), EPOCH_END. The first
 * epoch is full (every non-zero page); later ones carry the pages dirtied
 * since — KVM's dirty log (bitmap: its clean read costs microseconds here,
 * see docs) united with the VMM's own writes.
 *
 * The sender stops the vCPUs and holds the devices only to take the dirty
 * set, copy those pages to a staging area and write the state; the guest
 * then runs on while the epoch's encoder thread turns the staged pages
 * into sections through one bounded output buffer (EPOCH_BATCH).
 * The receiver reads an epoch completely — every section's checksum
 * verified, pages and state staged — before it applies any of it: a cut or
 * corrupted epoch leaves the receiving VM as it was.
 *
 * Live rounds (pre-copy: a migration's rounds, or the initial copy before
 * continuous replication) carry pages, and disk blocks, read while the
 * guest runs, without state: EPOCH_BEGIN version 2 carries flags after the
 * sequence number, and EPOCH_F_LIVE marks such a round. A receiver applies
 * a live round's sections as they arrive — it has nothing committed to
 * protect yet — and refuses one once it has committed an epoch with state.
 * The last, paused epoch makes the copy consistent.
 */
#ifndef KG_EPOCH_H
#define KG_EPOCH_H

#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"
#include "page_codec.h"
#include "vm_state.h"

#define EPOCH_BATCH (1u << 20)
#define EPOCH_BEGIN_VERSION 2 /* 1: seq only; 2: seq, flags */
#define EPOCH_F_LIVE 1u      /* pages (and disk) only, read while running */
#define EPOCH_F_HASHES 2u    /* with LIVE: page hashes instead of pages */

struct vm;

struct epoch_stats {
	uint64_t seq;
	bool live;
	bool hashes;            /* a hash round (epoch_send_hashes) */
	uint64_t disk_bytes;    /* disk payload bytes in this epoch */
	uint64_t dirty_pages;   /* pages named by the dirty set */
	uint64_t stream_bytes;  /* bytes of this epoch on the stream */
	uint64_t pause_us;      /* vCPUs stopped (sender) */
	uint64_t encode_us;     /* of which encoding pages */
	struct page_codec_stats codec;
	/* receiver, on error: it came while applying verified data, so the
	 * VM may be partly changed (else nothing of the epoch was applied) */
	bool apply_failed;
};

struct epoch_sender;
/* Writes the stream header and the configuration to fd, turns KVM's dirty
 * logging on. The receiver's RAM is assumed all zeros at first. */
struct epoch_sender *epoch_sender_new(struct vm *vm, int fd, struct kg_err *e);
/* The same over another carrier (the replication link); every epoch ends
 * with kg_writer_flush. */
struct epoch_sender *epoch_sender_new_io(struct vm *vm,
					 const struct kg_stream_io *io,
					 void *ctx, struct kg_err *e);

/* Disk contents in the stream (migrate --with-storage). send writes
 * KG_SEC_DISK sections for the blocks written since its last call (every
 * block on the first): in a live round while the guest runs, and in a
 * paused epoch with the vCPUs stopped and the devices held. */
struct epoch_disk_ops {
	int (*send)(void *ctx, struct kg_stream_writer *w, bool first,
		    uint64_t *bytes, struct kg_err *e);
};
void epoch_sender_set_disk(struct epoch_sender *s,
			   const struct epoch_disk_ops *ops, void *ctx);

/* Called while the vCPUs are stopped for paused epoch seq (FT seals the
 * outputs of the epoch there). */
typedef void (*epoch_pause_fn)(void *ctx, uint64_t seq);
void epoch_sender_set_pause_hook(struct epoch_sender *s, epoch_pause_fn fn,
				 void *ctx);

/* Called during a live round: pages encoded so far of the round's total. */
typedef void (*epoch_progress_fn)(void *ctx, uint64_t done, uint64_t total);
/* One live round on the caller's thread, while the guest runs: every page
 * (all) or those dirtied since the last round or epoch, then the disk.
 * Returns when the round is on the stream (flushed). */
int epoch_send_live(struct epoch_sender *s, bool all, epoch_progress_fn fn,
		    void *ctx, struct epoch_stats *st, struct kg_err *e);
/* Starts one epoch: full (every page) or incremental (the dirty set). A
 * VM that was paused before stays paused. Returns once the guest runs
 * again; the encoder thread finishes the epoch and fills *st (which must
 * stay valid) by the next epoch_send, epoch_wait or epoch_sender_finish,
 * which report its error. */
int epoch_send(struct epoch_sender *s, bool full, struct epoch_stats *st,
	       struct kg_err *e);
/* The last epoch of a migration, on the caller's thread, with the VM
 * paused by the caller (and staying paused): dirty pages read in place,
 * state, disk. Returns once it is on the stream. */
int epoch_send_final(struct epoch_sender *s, struct epoch_stats *st,
		     struct kg_err *e);
/* How many pages the next epoch or round would carry now: the dirty logs
 * are taken (kept for that epoch), not cleared of meaning. */
int epoch_dirty_pending(struct epoch_sender *s, uint64_t *npages,
			struct kg_err *e);
/* Log-assisted resynchronisation, for a receiver that already holds a
 * copy close to this VM (a lockstep replica that replayed the log): a live
 * round of page hashes instead of pages (and the disk, whole, as a first
 * round sends it). Pages dirtied from here on go in later rounds as
 * usual; the receiver answers with the pages whose hash differs from its
 * own, which the caller hands to epoch_sender_need for the next round.
 * *data_pages: pages a full first round would have read (not holes). */
int epoch_send_hashes(struct epoch_sender *s, struct epoch_stats *st,
		      uint64_t *data_pages, struct kg_err *e);
/* Pages [first, first+n) (memfd order) go in the next round. */
void epoch_sender_need(struct epoch_sender *s, uint64_t first, uint64_t n);
/* Waits until the epoch in flight is on the stream. */
int epoch_wait(struct epoch_sender *s, struct kg_err *e);
/* The end marker: the stream is complete. */
int epoch_sender_finish(struct epoch_sender *s, struct kg_err *e);
void epoch_sender_free(struct epoch_sender *s);

struct epoch_receiver;
/* Reads the header and the configuration from fd: *c tells the caller
 * which VM to build (no image) before epoch_receiver_attach. */
struct epoch_receiver *epoch_receiver_new(int fd, struct vm_state_config *c,
					  struct kg_err *e);
struct epoch_receiver *epoch_receiver_new_io(const struct kg_stream_io *io,
					     void *ctx,
					     struct vm_state_config *c,
					     struct kg_err *e);
void epoch_receiver_attach(struct epoch_receiver *r, struct vm *vm);
/* Where KG_SEC_DISK sections go (instance = disk index; payload: u64
 * byte offset, then the data): applied at once in a live round, at
 * commit otherwise. Without it, disk data in the stream is an error. */
struct epoch_disk_sink {
	int (*apply)(void *ctx, uint16_t disk, uint64_t offset,
		     const uint8_t *data, size_t len, struct kg_err *e);
};
void epoch_receiver_set_disk(struct epoch_receiver *r,
			     const struct epoch_disk_sink *sink, void *ctx);
/* After a hash round: the pages whose hash differed from this side's RAM,
 * as a bitmap (memfd page order; valid until the next epoch_receive) and
 * their count. */
const uint64_t *epoch_receiver_needed(struct epoch_receiver *r,
				      uint64_t *count);
/* Whether an epoch with state has been committed. */
bool epoch_receiver_committed(const struct epoch_receiver *r);
/* Receives one whole epoch, then applies it to the attached VM (whose
 * vCPUs must not run): 1 applied, 0 the stream ended cleanly, -1 error
 * (nothing of this epoch applied, unless decoding failed after the
 * checksums passed: then st->apply_failed is set and e says the receiver
 * needs a full epoch). Kinds: a stream or epoch that breaks the format
 * or the protocol is KG_ERR_CORRUPT, one this side cannot take (a newer
 * version, disk blocks without a disk) KG_ERR_INVALID; transport errors
 * keep theirs. */
int epoch_receive(struct epoch_receiver *r, struct epoch_stats *st,
		  struct kg_err *e);
void epoch_receiver_free(struct epoch_receiver *r);

/* The streams underneath, for sections that follow epochs (a recording's
 * execution log): use only between epochs, with no epoch in flight. */
struct kg_stream_writer *epoch_sender_writer(struct epoch_sender *s);
struct kg_stream_reader *epoch_receiver_reader(struct epoch_receiver *r);

#endif
