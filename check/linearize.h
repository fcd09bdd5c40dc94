/*
 * Per-key linearizability of a key-value history (check/history.h):
 * whether the operations on one key can be ordered so that each takes
 * effect at one instant between its invocation and its completion and the
 * results are those of a single copy of the key. The search is Wing and
 * Gong's, with Lowe's memoisation of (operations done, state) as in
 * Porcupine and Knossos. Operations whose outcome is unknown may take
 * effect at any time after their invocation, or never: they complete at
 * infinity, and taking effect after everything else is the same as never.
 *
 * The model: a key is missing or holds a string. put sets it, del makes it
 * missing, get returns it ("-" when missing), append concatenates (a
 * missing key is empty) and returns the new length, incr treats the
 * string as a decimal integer (missing is 0), adds one and returns it.
 */
#ifndef KG_CHECK_LINEARIZE_H
#define KG_CHECK_LINEARIZE_H

#include <stddef.h>

#include "history.h"

enum lin_verdict { LIN_OK, LIN_VIOLATION, LIN_UNDECIDED };

/* Checks the events ev[idx[0..n)] (all on one key; FAIL events and reads
 * without a result must already be left out). step_budget bounds the
 * search (LIN_UNDECIDED beyond it). On a violation, why gets one line
 * naming the operations involved. */
enum lin_verdict lin_check_key(const struct hist_event *ev, const size_t *idx,
			       size_t n, unsigned long long step_budget,
			       char *why, size_t why_size);

#endif
