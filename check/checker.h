/*
 * The verdict on a client history (check/history.h), computed from the
 * history alone: every key's operations must be linearizable
 * (check/linearize.h) — so every acknowledged write is visible to the reads
 * that follow it, no read returns a value that was never written or that a
 * later acknowledged write replaced — and something must have been
 * acknowledged at all. The outage is the longest time within the load
 * (start to end) in which no operation completed successfully, including
 * one that lasts to the end of the load.
 */
#ifndef KG_CHECK_CHECKER_H
#define KG_CHECK_CHECKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "history.h"

struct check_report {
	size_t ops, ok, failed, unknown; /* unknown: info or never completed */
	size_t acked_writes, reads;      /* completed ok */
	size_t keys, keys_bad, keys_undecided;
	char problem[512];               /* the first bad key, explained */
	uint64_t outage_ns;              /* longest gap without an ok */
	uint64_t outage_from_ns;         /* its start, from the load's start */
	bool outage_trailing;            /* it lasted to the end of the load */
	uint64_t window_ns;              /* the load: end - start */
	bool pass;
	const char *verdict;             /* why it passed or failed, briefly */
};

/* step_budget bounds each key's search (0: a default of 10 million). */
int check_history(const struct history *h, unsigned long long step_budget,
		  struct check_report *r, struct kg_err *e);

#endif
