/*
 * The one pre-copy loop: snapshot passes, migration rounds, the first copy
 * before HA/FT epochs and storage migration rounds all run here, under the
 * one policy (policy.h) with their own settings. The loop knows nothing of
 * pages, disks or streams: a mode gives it callbacks.
 *
 *   round(first)    copy everything (first), then the dirty set
 *   pending         count what the next round would carry now
 *   precopy_decide  the policy, on that count
 *   report          progress (optional)
 *   throttle        slow the vCPUs (modes that let the policy throttle)
 *
 * It returns when the policy stops; the mode's final step (the pause, the
 * quiesced disk) follows in the caller. Each round is timed here, so the
 * rate the policy predicts with is measured the same way for every mode.
 */
#ifndef KG_PRECOPY_H
#define KG_PRECOPY_H

#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"
#include "policy.h"

/* What one round moved. */
struct precopy_round {
	uint64_t units; /* pages or blocks carried */
	uint64_t bytes; /* bytes moved (on the stream, or copied) */
};

struct precopy_ops {
	/* One round while the guest runs; a mode that can be cancelled
	 * checks for it here. */
	int (*round)(void *ctx, bool first, struct precopy_round *r,
		     struct kg_err *e);
	/* The units the next round would carry, as of now. */
	int (*pending)(void *ctx, uint64_t *dirty, struct kg_err *e);
	/* After each decision, before it is acted on; may be NULL. */
	void (*report)(void *ctx, const struct precopy_state *s,
		       enum precopy_decision d);
	/* Throttle the vCPUs to pct%; NULL for a policy that never
	 * throttles. */
	int (*throttle)(void *ctx, unsigned pct, struct kg_err *e);
};

/* Runs rounds until the policy stops. s is the caller's, so that its
 * callbacks can read the estimates; it is initialised from p here.
 * -1: a callback failed (its error in e). */
int precopy_run(struct precopy_state *s, const struct precopy_policy *p,
		const struct precopy_ops *ops, void *ctx, struct kg_err *e);

#endif
