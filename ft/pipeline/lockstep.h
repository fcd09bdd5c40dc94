/*
 * Lockstep FT (`run --replicate lockstep`): the primary records its
 * deterministic execution (ft/record) and streams the log, section by
 * section, over the replication link to a secondary that replays it in a
 * live VM (ft/replay) with its outputs suppressed. The output rule is
 * VMware FT's: an output leaves the primary once the secondary has
 * acknowledged the log up to it — each section seals the outputs held
 * so far with its sequence number, and the secondary ACKs a section as
 * soon as it has it (not once replayed: the log is what it needs).
 *
 * The link starts like checkpoint FT's (HELLO, disks, live rounds), then
 * the primary pauses once for a final epoch — the state at the log's
 * first exit — and attaches the log. A new session (after a lost link,
 * or a secondary that diverged and dropped its copy) starts the same way:
 * resynchronisation is a fresh checkpoint over the same pipeline, while
 * the primary runs on.
 *
 * This file holds both ends' log plumbing: the primary's sink (sections
 * onto the stream, outputs sealed) and the secondary's pump (sections off
 * the stream into a queue the replayer reads, each ACKed on arrival).
 */
#ifndef KG_LOCKSTEP_H
#define KG_LOCKSTEP_H

#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"
#include "ft/replay/replayer.h"

struct vm;
struct rlink;
struct recorder;
struct kg_stream_writer;
struct kg_stream_reader;

#define LOCKSTEP_FLUSH_MS 2   /* a section at least this often */
#define LOCKSTEP_DIGEST_MS 100

/* --- primary --- */

struct lockstep_sink;
struct lockstep_sink *lockstep_sink_new(struct vm *vm, struct recorder *rec,
					struct kg_err *e);
/* Attaches a new session (VM paused): sections go to w (the epoch
 * sender's writer on l) numbered base_seq + 1, 2, ... */
int lockstep_sink_attach(struct lockstep_sink *s, struct rlink *l,
			 struct kg_stream_writer *w, uint64_t base_seq,
			 struct kg_err *e);
/* The link is gone: sections are dropped from now on (the guest runs on
 * unprotected; a new session re-attaches). Any thread. */
void lockstep_sink_down(struct lockstep_sink *s);
/* Sections sent in this session (the last seq), and when the oldest one
 * after `acked` was sent (0 if none): stall detection. */
uint64_t lockstep_sink_sent(struct lockstep_sink *s);
uint64_t lockstep_sink_sent_ns(struct lockstep_sink *s, uint64_t seq);
/* Whether the sink failed to send (the session is over). */
bool lockstep_sink_failed(struct lockstep_sink *s, char *why, size_t n);
void lockstep_sink_free(struct lockstep_sink *s);

/* --- secondary --- */

struct lockstep_pump;
/* Reads log sections from the link's stream (r, over l) on a thread and
 * ACKs each as base_seq + n when it has it. */
struct lockstep_pump *lockstep_pump_start(struct rlink *l,
					  struct kg_stream_reader *r,
					  uint64_t base_seq, struct kg_err *e);
/* The replayer's source (replayer.h): blocks for the next section; 0
 * once the link ended and every section was taken. */
const struct rr_source *lockstep_pump_source(struct lockstep_pump *p);
/* After the end: why the link ended, and whether the primary said so in
 * order (ABORT: it stopped protecting; do not take over). */
bool lockstep_pump_ordered(struct lockstep_pump *p, char *why, size_t n);
/* After an end that was not ordered: the kind of why (base/err.h), for
 * the decision tables — a section beyond the connection's memory budget
 * (kg_reader_set_budget on r) or a corrupted one is KG_ERR_CORRUPT: the
 * primary is alive. */
enum kg_err_kind lockstep_pump_end_kind(struct lockstep_pump *p);
uint64_t lockstep_pump_sections(struct lockstep_pump *p);
/* Stops reading (the link must have been shut down first, or ended). */
void lockstep_pump_free(struct lockstep_pump *p);

#endif
