/*
 * The recorder: the input gate of a deterministic VM. It counts
 * synchronous exits (port I/O, MMIO, HLT); bytes that devices write into
 * guest RAM wait in a queue and enter at the end of the next exit, and an
 * interrupt enters only there (KVM_INTERRUPT), so that a replayer can put
 * every asynchronous input at the same point of the instruction stream.
 * With a sink, every input is logged (rr_log.h) and a state digest is
 * taken every digest_ns; without one (`run --deterministic`) inputs are
 * only placed deterministically.
 *
 * Threads: the exit hooks, TIME and the log run on the vCPU thread (one
 * vCPU); device threads only queue writes and raise lines.
 */
#ifndef KG_RECORDER_H
#define KG_RECORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

struct vm;

/* Where sealed log sections go (a recording file, a lockstep link). The
 * sink is called on the vCPU thread; exits is the number of exits the
 * log covers once this section is applied. A failure stops the VM. */
struct rr_sink {
	int (*put)(void *ctx, const uint8_t *payload, size_t len,
		   uint64_t exits, struct kg_err *e);
	/* Optional: true when what is buffered should go now (outputs wait
	 * for it); asked at every exit and while the guest idles. */
	bool (*want_flush)(void *ctx);
	void *ctx;
};

struct recorder_opts {
	const struct rr_sink *sink; /* NULL: deterministic, no log */
	uint64_t digest_ns;         /* 0: no digests */
	/* Seal and pass on a section at least this often (lockstep: the
	 * log must reach the secondary before outputs can be released);
	 * 0: only when a section fills up. */
	uint64_t flush_ns;
};

struct recorder_stats {
	uint64_t exits, inputs, writes, write_bytes, irqs, time_reads;
	uint64_t digests, sections, raw_bytes, log_bytes;
	uint64_t idle_waits;
};

struct recorder;

/* Installs the recorder as vm's gate (the VM must be deterministic and
 * not running). */
struct recorder *recorder_new(struct vm *vm, const struct recorder_opts *o,
			      struct kg_err *e);
/* Starts logging into sink from the next exit on (NULL: stops), with a
 * fresh register context and fresh page hashes (digests own KVM's dirty
 * log only while a sink is set): the log a new sink gets starts at this
 * exit. The VM must be paused (or not yet running). */
int recorder_set_sink(struct recorder *r, const struct rr_sink *sink,
		      struct kg_err *e);
/* Seals what is buffered and passes it to the sink (the VM stopped or
 * paused); a recording's last section. */
int recorder_flush(struct recorder *r, struct kg_err *e);
/* The first error that stopped recording, or NULL. */
const char *recorder_error(const struct recorder *r);
void recorder_stats(struct recorder *r, struct recorder_stats *st);
/* Exits so far (the next exit's index). */
uint64_t recorder_exits(struct recorder *r);
/* The recorder that is vm's gate now, or NULL. */
struct recorder *recorder_of(struct vm *vm);
/* Puts the pass-through gate back and frees. */
void recorder_free(struct recorder *r);

#endif
