/*
 * The lockstep replica at the secondary (standby.h, state REPLAYING): once
 * the first state is committed, the VM runs replaying the primary's
 * execution log as it arrives (lockstep.h), its outputs suppressed. When
 * the link ends, the replayer consumes every section it has; then, unless
 * the primary ended protection in order, the replica goes live at the
 * first exit the log does not cover: the lease (if any) is taken, kagami's
 * recorder replaces the replayer as the gate (the guest clock goes on
 * from the last logged value), the devices resume from what the guest
 * saw, the MAC is announced, and the VM serves to its end.
 */
#ifndef KG_STANDBY_LOCKSTEP_H
#define KG_STANDBY_LOCKSTEP_H

#include <stdint.h>

#include "role.h"
#include "base/faultpoint.h"
#include "transport/transport.h"

struct vm;
struct incoming;

struct standby_lockstep_opts {
	const char *lease;
	const struct kg_tp_key *lease_key;
	unsigned lease_ttl_ms;
	const struct kg_faults *faults; /* "replay.corrupt=at:N" */
	const struct role_hooks *hooks;
};

enum standby_lockstep_end {
	LOCKSTEP_TOOK_OVER,  /* ran live to the guest's end: *status */
	LOCKSTEP_ENDED,      /* the primary ended protection */
	LOCKSTEP_STOOD_DOWN, /* the lease is not ours: the primary lives */
	LOCKSTEP_DROPPED,    /* diverged or failed: wait for a new copy */
	LOCKSTEP_STOPPED,    /* stopped here (signal, ctl) */
};

/* vm: built from the stream, parked, its first state committed by in. */
enum standby_lockstep_end standby_lockstep(struct incoming *in, struct vm *vm,
					   const struct standby_lockstep_opts *o,
					   int *status);

#endif
