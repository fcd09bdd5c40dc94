#include "budget.h"

#include <inttypes.h>

uint64_t kg_budget_default(uint64_t ram)
{
	return 2 * ram + (64ull << 20);
}

void kg_budget_init(struct kg_budget *b, uint64_t limit)
{
	b->limit = limit;
	atomic_store(&b->used, 0);
	atomic_store(&b->peak, 0);
}

int kg_budget_charge(struct kg_budget *b, uint64_t n, const char *what,
		     struct kg_err *e)
{
	if (!b)
		return 0;
	uint64_t used = atomic_load(&b->used);
	do {
		if (n > b->limit || used > b->limit - n)
			return kg_errk(e, KG_ERR_CORRUPT, "%s would hold %" PRIu64
				       " bytes more with %" PRIu64 " held: "
				       "beyond the stream memory budget of %"
				       PRIu64 "%s (--max-stream-memory)",
				       what, n, used,
				       b->limit % (1u << 20) ? b->limit
							     : b->limit >> 20,
				       b->limit % (1u << 20) ? " bytes" : " MiB");
	} while (!atomic_compare_exchange_weak(&b->used, &used, used + n));
	uint64_t peak = atomic_load(&b->peak);
	while (used + n > peak &&
	       !atomic_compare_exchange_weak(&b->peak, &peak, used + n))
		;
	return 0;
}

void kg_budget_release(struct kg_budget *b, uint64_t n)
{
	if (b)
		atomic_fetch_sub(&b->used, n);
}
