/*
 * The sink of a migration (`kagami receive`): accepts one source on a
 * listener, learns the VM's shape (HELLO, DISK sizes, the stream's
 * configuration) so the caller can build an empty VM, then applies live
 * rounds and stages the final epoch until GO. The caller takes the disk
 * locks, starts the VM and reports RUNNING; after that it keeps answering
 * QUERY connections on the listener (incoming_answer_*), so that a source
 * that lost the connection at hand-over learns the guest runs here.
 *
 * A failure before GO (cut link, bad checksum, the source's ABORT) leaves
 * the sink with a VM that must never run: the caller discards it.
 */
#ifndef KG_INCOMING_H
#define KG_INCOMING_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "transport/transport.h"
#include "base/budget.h"
#include "base/err.h"
#include "base/faultpoint.h"
#include "ft/checkpoint/epoch.h"
#include "ft/checkpoint/vm_state.h"

struct vm;
struct rlink;

struct incoming {
	struct rlink *link;
	struct epoch_receiver *er;
	uint64_t session;
	uint64_t mode;           /* HELLO's b: RLINK_MODE_* | RLINK_F_* */
	unsigned ndisk_sizes;
	uint64_t disk_size[8];   /* from DISK messages */
	uint64_t rounds, epochs; /* live rounds, committed epochs */
	uint64_t bytes;          /* stream bytes received */
	/* tests: "receive.hello", ".round", ".final" or ".go" armed with
	 * kill (base/faultpoint.h) */
	const struct kg_faults *faults;
	/* The secondary of FT/HA: accept those modes instead of migrate,
	 * and beat every beat_ms (0: 1000). */
	bool standby;
	unsigned beat_ms;
	int failover_ms; /* standby: the link's timeout once committed */
	/* standby: called once, at the first committed epoch */
	void (*on_first_commit)(void *ctx);
	void *commit_ctx;
	uint64_t committed_seq;
	/* lockstep: RAM bytes of a replica this side holds (announced with
	 * HAVE: the primary may then send page hashes instead of pages);
	 * after a hash round, how many pages differed */
	uint64_t have_mem;
	bool hash_round;
	uint64_t needed_pages;
	/* What the peer may make this side hold (staged epochs, queued log
	 * sections: base/budget.h): max_stream_memory bytes, or 0 for
	 * kg_budget_default of the incoming VM's RAM; set up per connection
	 * by incoming_begin. Beyond it the stream is refused (corrupt). */
	uint64_t max_stream_memory;
	struct kg_budget budget;
	/* standby: the heartbeat link, when the primary opened one
	 * (beatlink.h): from the first commit on, it decides when silence
	 * is the primary's death */
	struct beatlink *beats;
	/* FT standby: the primary's hold window (RLINK_HOLD, ms; 0: none)
	 * and where its held output begins (RLINK_HELD) */
	uint64_t hold_ms;
	bool have_held;
	uint64_t held_session, held_seq;
	/* Heartbeats to the source while it streams (it would otherwise hear
	 * nothing for a whole first round and take us for dead). */
	pthread_t beat;
	bool beating;
	atomic_bool beat_stop;
};

/* Waits (listener's accept timeout) for a source and reads HELLO, the
 * disk sizes and the configuration into *c. QUERY connections that come
 * first are answered "not running here" and closed. */
int incoming_begin(struct incoming *in, struct kg_tp_listener *l,
		   struct vm_state_config *c, struct kg_err *e);
/* Applies rounds and epochs to vm (built from *c, not running) until GO:
 * 0 when GO came after a committed epoch; -1 otherwise (an ABORT is sent
 * to the source when the link still works). */
int incoming_receive(struct incoming *in, struct vm *vm,
		     const struct epoch_disk_sink *disk, void *ctx,
		     struct kg_err *e);
/* The secondary (standby): applies rounds and epochs, ACKing each, until
 * the primary goes away. Errors are judged by incoming_error_verdict
 * (verdict.h), on their kind, and with a heartbeat link by
 * incoming_beats_verdict: 1: the link closed or went silent (e says
 * how) — fail over if an epoch is committed; 2: a frame or epoch was
 * corrupted (nothing of it applied), or the data link failed while the
 * primary still beats: the primary is alive and will reconnect; 0: the
 * primary said not to take over (its ABORT; e has its words);
 * 3: lockstep: the first state is committed and the execution log
 * follows on the same stream (ft/pipeline/lockstep.h); -1: this side
 * failed. */
int incoming_follow(struct incoming *in, struct vm *vm,
		    const struct epoch_disk_sink *disk, void *ctx,
		    struct kg_err *e);
/* The newest of our BEAT stamps (CLOCK_BOOTTIME ms) the primary echoed
 * on either link: with hold_ms, how long it promised to keep output the
 * replica has not acknowledged (RLINK_HOLD). 0: none. */
uint64_t incoming_echo(const struct incoming *in);
/* Tells the source the guest runs here (a failure is only reported: the
 * source can still learn it by QUERY). */
int incoming_running(struct incoming *in, struct kg_err *e);
/* Refuses the migration: ABORT with why, if the link works. */
void incoming_abort(struct incoming *in, const char *why);
void incoming_end(struct incoming *in);

struct incoming_answerer;
/* Answers QUERY connections on l with "session runs here" on a thread. */
struct incoming_answerer *incoming_answer_start(struct kg_tp_listener *l,
						uint64_t session,
						struct kg_err *e);
void incoming_answer_stop(struct incoming_answerer *a);

#endif
