/*
 * Continuous replication at the primary (`kagami run --replicate ft|ha`):
 * the migration pipeline run forever instead of converging once.
 *
 * A thread connects to the secondary (retrying until it answers), sends
 * HELLO and the disk sizes, copies the VM over while it runs (live rounds
 * with the disks' contents, as migrate --with-storage), then takes a
 * paused epoch every epoch_ms (FT) or interval_ms (HA): the vCPUs stop
 * only to capture the dirty pages, the disk blocks written and the device
 * state; the secondary stages each epoch whole, commits it and ACKs it.
 *
 * FT holds the guest's outputs (vm->out: network frames, console bytes)
 * from the first epoch on and releases an epoch's outputs when its ACK
 * arrives (the output rule: RPO zero). HA emits outputs at once, so a
 * failover loses at most the last interval.
 *
 * Lockstep (ft/pipeline/lockstep.h) shares the link, the first copy and
 * the reconnect logic, then streams the execution log instead of epochs.
 *
 * When the link fails (secondary killed, cut, corrupt frame, silence
 * longer than the failover timeout), the primary keeps running the guest,
 * UNPROTECTED: held outputs are released, the state says why, and
 * protect_start can begin again with a new secondary (ctl protect).
 */
#ifndef KG_PROTECT_H
#define KG_PROTECT_H

#include <stdbool.h>
#include <stdint.h>

#include "transport/transport.h"
#include "base/err.h"

struct vm;

enum protect_mode { PROTECT_FT = 1, PROTECT_HA, PROTECT_LOCKSTEP };

struct protect_opts {
	enum protect_mode mode;
	char peer[256];              /* tcp:HOST:PORT of `kagami secondary` */
	bool have_key;
	struct kg_tp_key key;
	unsigned epoch_ms;           /* FT, default 10 */
	unsigned interval_ms;        /* HA, default 1000 */
	unsigned failover_ms;        /* silence that ends the link: 100 */
	bool have_fault;             /* tests */
	struct kg_tp_fault fault;
	struct guard *guard;         /* split-brain guard (may be NULL) */
};

/* "ft", "ha" or "lockstep". */
const char *protect_mode_name(enum protect_mode m);

struct protect_status {
	bool protected_;         /* an epoch is committed at the secondary */
	bool running;            /* the replication thread is alive */
	char state[64];          /* connecting, syncing, protected, unprotected */
	char why[512];           /* the last failure, if unprotected */
	uint64_t epochs, acked;
	double pause_p50_us, pause_p99_us;
	double ack_p50_us, ack_p99_us; /* epoch paused to its ACK */
	double bytes_per_epoch;
	double hold_p50_us, hold_p99_us; /* outputs held (FT) */
	/* sessions that ended in a failure while the VM ran (the link cut,
	 * silent or corrupted, or the secondary's ABORT) */
	uint64_t links_lost;
	/* The RAM bytes that brought a secondary's RAM in place, the last
	 * time: a full first round; a log-assisted one (page hashes plus the
	 * round with the pages that differed and those dirtied meanwhile). */
	uint64_t full_copy_ram_bytes, assisted_copy_ram_bytes;
	/* lockstep: log-assisted resynchronisations (page hashes) */
	uint64_t hash_resyncs, resync_hash_bytes, resync_pages_needed,
		 resync_data_pages;
};

struct protect;
struct protect *protect_start(struct vm *vm, const struct protect_opts *o,
			      struct kg_err *e);
/* Stops replicating (outputs released) and frees. */
void protect_stop(struct protect *p);
void protect_get_status(struct protect *p, struct protect_status *st);

#endif
