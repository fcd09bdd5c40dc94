/*
 * When pre-copy rounds should stop: the dirty set is small enough to copy
 * in the final pause, or it stopped shrinking (the guest writes as fast
 * as we copy: more rounds only cost time), or the round budget is spent.
 * Pure, so the policy is unit-tested apart from any disk.
 */
#ifndef KG_CONVERGE_H
#define KG_CONVERGE_H

#include <stdbool.h>
#include <stdint.h>

#define CONVERGE_STALL_ROUNDS 3

struct converge {
	uint64_t small;      /* dirty blocks that fit the final pause */
	unsigned max_rounds; /* pre-copy rounds after the full copy */
	/* progress so far */
	unsigned rounds;
	unsigned stalled;    /* rounds in a row without a new minimum */
	uint64_t best;       /* the smallest dirty set seen */
};

void converge_init(struct converge *c, uint64_t small, unsigned max_rounds);
/* Given the dirty set found before a round, true when the caller should
 * stop rounding and do the final copy instead; otherwise counts a round. */
bool converge_done(struct converge *c, uint64_t dirty);

#endif
