/*
 * The replayer: the input gate of a VM re-executing an execution log
 * (ft/record/rr_log.h). Every synchronous exit is checked against the
 * log's EXIT record — type, port or address, size, registers, the data
 * of writes — and reads get the recorded value; at the exit's end the
 * recorded device writes, interrupts and digests are applied or checked.
 * Devices do no I/O meanwhile (vm->replaying). The first divergence
 * stops the VM and is kept as a precise report.
 *
 * Threads: the hooks run on the vCPU thread; the source may block there
 * (lockstep waits for the primary's log).
 */
#ifndef KG_REPLAYER_H
#define KG_REPLAYER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/faultpoint.h"

struct vm;

/* Where log sections come from: 1 with *payload (malloc'd; the replayer
 * frees it) and *where naming its place ("section 12 at offset 4096"),
 * 0 at the end of the log, -1 on error. */
struct rr_source {
	int (*next)(void *ctx, uint8_t **payload, size_t *len, char *where,
		    size_t where_size, struct kg_err *e);
	void *ctx;
};

enum replay_state {
	REPLAY_RUNNING,
	REPLAY_DIVERGED, /* the guest did something the log does not say */
	REPLAY_UNTIL,    /* reached --until: the VM is paused */
	REPLAY_END,      /* the log ended: the VM stopped, or went live */
	REPLAY_FAILED,   /* the log could not be read (corrupt, cut) */
};

/* Called on the vCPU thread when the log ends, at the first exit it does
 * not cover: return true if the VM goes on live from here (lockstep
 * failover; the hook has put a live gate in place and this exit is
 * served by it), false to stop the VM. */
typedef bool (*replay_end_fn)(void *ctx, uint64_t exit_index);

struct replayer_opts {
	const struct rr_source *src;
	bool until_set;
	uint64_t until; /* pause once this exit has been served */
	replay_end_fn on_end;
	void *on_end_ctx;
	bool digests; /* compute and compare DIGEST records (default on) */
	/* The log may start at any exit (a lockstep session begun while the
	 * primary ran): the first section's first exit is the start. */
	bool start_anywhere;
	/* tests: "replay.corrupt=at:N" flips a RAM byte at exit N, a
	 * divergence the next digest must catch (base/faultpoint.h) */
	const struct kg_faults *faults;
};

struct replay_stats {
	uint64_t exits, digests, writes, write_bytes, irqs, times;
	uint64_t dropped_device_writes; /* devices' own, while replaying */
};

struct replayer;

/* Installs the replayer as vm's gate and sets vm->replaying. The VM
 * holds the recording's initial state and has not run. */
struct replayer *replayer_new(struct vm *vm, const struct replayer_opts *o,
			      struct kg_err *e);
enum replay_state replayer_state(struct replayer *p);
/* The divergence report or the error (several lines), "" if none. */
const char *replayer_report(struct replayer *p);
void replayer_stats(struct replayer *p, struct replay_stats *st);
/* The last guest clock value the log gave (a replica going live starts
 * its clock there). */
uint64_t replayer_guest_ns(struct replayer *p);
/* Restores the pass-through gate (unless the end hook installed another)
 * and clears vm->replaying. */
void replayer_free(struct replayer *p);

#endif
