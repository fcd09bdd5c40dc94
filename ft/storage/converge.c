#include "converge.h"

void converge_init(struct converge *c, uint64_t small, unsigned max_rounds)
{
	*c = (struct converge){ .small = small, .max_rounds = max_rounds,
				.best = UINT64_MAX };
}

bool converge_done(struct converge *c, uint64_t dirty)
{
	if (dirty <= c->small || c->rounds >= c->max_rounds)
		return true;
	if (dirty < c->best) {
		c->best = dirty;
		c->stalled = 0;
	} else if (++c->stalled >= CONVERGE_STALL_ROUNDS) {
		return true;
	}
	c->rounds++;
	return false;
}
