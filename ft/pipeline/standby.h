/*
 * The secondary of a protected VM (`kagami secondary`): a state machine
 * over the incoming stream (incoming.h).
 *
 *   state        event                                          next
 *   WAITING      a primary connects, the replica is built        FOLLOWING
 *                a bad configuration (disks, nets, memory)       FAILED
 *   FOLLOWING    the primary's ABORT or orderly end              ENDED
 *                link lost or silent, an epoch committed         TAKING_OVER
 *                corrupted frame or epoch, an epoch committed    HOLDING
 *                lockstep: the first state committed             REPLAYING
 *                anything else (nothing committed)               WAITING
 *   HOLDING      a primary connects (the held replica stays      FOLLOWING
 *                until the new copy commits, or comes back; FT:
 *                only if HELD says it covers what was released)
 *                no primary within 10x the failover timeout      TAKING_OVER
 *                (FT with a lease: within its ttl)
 *                FT with a lease: the primary's promise ran out  WAITING
 *   REPLAYING    the log ended: the replica went live, ran       (done)
 *                diverged, or the lease is elsewhere             WAITING
 *                (its RAM kept for the next copy)
 *   TAKING_OVER  the lease taken (or none), disks flushed        RUNNING
 *                the lease held elsewhere, FT, the primary's     HOLDING
 *                promise lasts: the replica is kept
 *                the lease held elsewhere otherwise, or taken    WAITING
 *                after an FT promise ran out
 *   RUNNING      the guest ends                                  (done)
 *
 * WAITING and HOLDING accept a primary; HOLDING keeps the last committed
 * replica (its images at PATH.held) while a new copy is made, and goes
 * back to it if that copy never commits, because the primary held its
 * outputs past it — an FT primary for as long as it promised (RLINK_HOLD:
 * its beats echo our stamps, each promising a hold window), which is
 * also how long a secondary that stood down keeps its replica. Every
 * transition is logged with the reason.
 */
#ifndef KG_STANDBY_H
#define KG_STANDBY_H

#include <stdint.h>

#include "role.h"
#include "base/err.h"
#include "base/faultpoint.h"
#include "transport/transport.h"
#include "vmm/vm.h"

enum standby_state {
	STANDBY_WAITING,
	STANDBY_FOLLOWING,
	STANDBY_HOLDING,
	STANDBY_REPLAYING,
	STANDBY_TAKING_OVER,
	STANDBY_RUNNING,
	STANDBY_ENDED,  /* the primary ended protection on purpose: exit 0 */
	STANDBY_FAILED, /* this side cannot go on (bad configuration) */
};

const char *standby_state_name(enum standby_state s);

struct standby_opts {
	struct vm_config cfg;        /* host resources: disks, nets, console */
	struct kg_tp_listener *listener;
	unsigned failover_ms;        /* silence that means the primary died */
	const char *lease;           /* NULL: no split-brain guard */
	const struct kg_tp_key *lease_key;
	unsigned lease_ttl_ms;
	const struct kg_faults *faults; /* tests: "replay.corrupt=at:N" */
	/* what the primary may make this side hold (incoming.h); 0: the
	 * default for the VM's RAM */
	uint64_t max_stream_memory;
	struct role_hooks hooks;
};

/* Runs the machine until ENDED, FAILED or the guest's end after a
 * takeover; returns the process exit status. */
int standby_run(const struct standby_opts *o);

#endif
