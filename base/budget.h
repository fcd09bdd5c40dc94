/*
 * A memory budget: how much a peer may make this side hold for it.
 * Whatever a receiver allocates because of what a peer sent — a section's
 * payload read whole, an epoch's staged sections, a queue of log sections
 * — is charged to the connection's budget before it is allocated and
 * released when freed; a charge beyond the limit fails with one line
 * (kind KG_ERR_CORRUPT: a peer asking for more than this side takes sends
 * a value out of range; the decision tables treat it as damage, so a
 * secondary keeps its replica).
 *
 * Thread-safe (a pump thread charges, a replayer releases). A NULL budget
 * is unlimited: files and local streams have none.
 */
#ifndef KG_BUDGET_H
#define KG_BUDGET_H

#include <stdatomic.h>
#include <stdint.h>

#include "err.h"

struct kg_budget {
	uint64_t limit;
	_Atomic uint64_t used;
	_Atomic uint64_t peak;
};

/* The default per connection for a guest of ram bytes: a whole epoch of
 * every page raw, twice over (staged while the last is applied, with
 * their framing), and 64 MiB for everything else. */
uint64_t kg_budget_default(uint64_t ram);
void kg_budget_init(struct kg_budget *b, uint64_t limit);
/* Takes n bytes for `what` ("section 5 (ram-pages #0) at offset 96"):
 * 0, or -1 with e ("... would hold N bytes more with M held: beyond the
 * stream memory budget of L MiB (--max-stream-memory)"). */
int kg_budget_charge(struct kg_budget *b, uint64_t n, const char *what,
		     struct kg_err *e);
void kg_budget_release(struct kg_budget *b, uint64_t n);

#endif
