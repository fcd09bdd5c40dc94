/*
 * The split-brain guard of a protected VM (run --lease, secondary
 * --lease): a side runs the guest only while it holds the lease
 * (ft/lease/). The guard takes it, renews it every ttl/3 on a thread, and
 * stops this side's VM as soon as the lease is seen in another holder's
 * hands, or granted afresh (the other side may have run the guest: this
 * copy is stale).
 *
 * A lease that cannot be renewed is not waited out: a watchdog thread
 * fences the VM ttl/6 before the lease ends unconfirmed — paused with
 * vm_fence, so that nothing else (an epoch, ctl resume) resumes it, its
 * held output staying held — however long a renewal blocks and however
 * long the host slept (the lease is on CLOCK_BOOTTIME). The next renewal
 * that succeeds lifts the fence. The decisions around failover:
 *   - the secondary takes over only after guard_start succeeds (the
 *     primary's lease must have run out: a primary cut off from us but
 *     alive keeps renewing it, and the secondary stands down);
 *   - the primary, having lost its secondary, releases held output and
 *     goes on only after guard_confirm says it still holds the lease;
 *     otherwise the guest stays fenced until it does.
 */
#ifndef KG_GUARD_H
#define KG_GUARD_H

#include <stdbool.h>

#include "transport/transport.h"
#include "base/err.h"

struct vm;
struct guard;

/* Takes the lease for vm, trying for up to wait_ms (the other holder's
 * lease must run out first): NULL with e when it cannot (held by someone
 * else: e names them). ttl_ms: the lease's length (renewed every ttl/3). */
struct guard *guard_start(struct vm *vm, const char *spec,
			  const struct kg_tp_key *key, unsigned ttl_ms,
			  unsigned wait_ms, struct kg_err *e);
/* Renews now: true if we hold the lease (a fence of ours is lifted);
 * false and the VM is fenced until a renewal succeeds (or, when another
 * side holds the lease, stopping). */
bool guard_confirm(struct guard *g, struct kg_err *e);
/* True once the lease was seen with another holder: this copy is stale,
 * and its held output must be dropped, never emitted. */
bool guard_fenced(struct guard *g);
/* The lease's length, ms (g may be NULL: 0). */
unsigned guard_ttl_ms(const struct guard *g);
/* Releases the lease (the VM ended) and frees; a fence in place stays.
 * g may be NULL. */
void guard_stop(struct guard *g);

#endif
