/*
 * The one pre-copy policy: when rounds copied while the guest runs should
 * stop, so that what is left fits the pause (snapshot passes, migration
 * rounds, the first copy before HA/FT epochs, storage migration rounds).
 * Pure: it sees only numbers — the dirty count before each round, what
 * each round moved and how long it took — and each mode is a different
 * set of settings, not a different function.
 *
 * A run is: the first round (everything), then, before every further
 * round, an observation of the dirty set (precopy_decide) and the
 * round's outcome (precopy_round_done). Units are the tracker's: pages
 * for RAM, DISK_TRACK_BLOCK blocks for a disk.
 */
#ifndef KG_PRECOPY_POLICY_H
#define KG_PRECOPY_POLICY_H

#include <stdbool.h>
#include <stdint.h>

enum precopy_decision {
	PRECOPY_ROUND,    /* copy the dirty set again, the guest running */
	PRECOPY_THROTTLE, /* the same, with the vCPUs throttled harder
			     first (to state.throttle_pct) */
	PRECOPY_LAST,     /* copy_taken: copy the set taken once more, the
			     guest running, then stop */
	PRECOPY_STOP,     /* stop: what is dirty goes in the pause */
};

struct precopy_policy {
	/* Stop once at most this many units are dirty. */
	uint64_t small;
	/* Rounds in all, the first included: with this many done, stop
	 * (with copy_taken, after the one copying what was taken). */
	unsigned max_rounds;
	/* Stop once this many observations in a row found no new smallest
	 * dirty set (the guest writes as fast as we copy); 0: never. */
	unsigned stall_rounds;
	/* Observing takes the dirty set out of a tracker that cannot hold it
	 * for the pause (KVM's log read by a snapshot): what was taken is
	 * always copied, so a stop is PRECOPY_LAST, not PRECOPY_STOP. */
	bool copy_taken;
	/* Predicted downtime (ms): dirty units x bytes per unit / rate +
	 * fixed_ms; unknown rate: PRECOPY_UNKNOWN_MS. With a limit (0: none)
	 * rounds stop once the prediction fits it and either the dirty set
	 * no longer shrinks by a quarter or the prediction is at most
	 * target_ms: the limit is a ceiling, not a target, while a short
	 * extra round still shrinks the set. */
	double limit_ms, target_ms, fixed_ms;
	/* Bytes per unit until a round measures it. */
	uint64_t unit_bytes;
	/* The rate comes from rounds that moved at least rate_min_bytes (a
	 * tiny round says little); rate_first_any: while there is none, from
	 * any round. */
	uint64_t rate_min_bytes;
	bool rate_first_any;
	/* Auto-converge (throttle_first 0: never): every throttle_after-th
	 * observation (over the run, not in a row) whose dirty set shrank by
	 * less than a fifth throttles the vCPUs: throttle_first %, then
	 * throttle_step % more each time, at most throttle_max %. */
	unsigned throttle_first, throttle_step, throttle_max, throttle_after;
};

/* What the decisions need; read it for progress reports. */
struct precopy_state {
	struct precopy_policy p;
	unsigned rounds;      /* rounds done, the first included */
	uint64_t dirty;       /* the last observation */
	double predicted_ms;  /* its predicted downtime */
	uint64_t prev;        /* the observation before (at first: the first
				 round's units) */
	uint64_t best;        /* the smallest observation */
	unsigned stalled;     /* observations in a row without a new best */
	unsigned stuck;       /* slow-shrinking observations since the last
				 throttle */
	unsigned throttle_pct;
	double unit_bytes;    /* bytes per unit, as last measured */
	double rate;          /* bytes/s; 0: not measured yet */
};

#define PRECOPY_UNKNOWN_MS 1e9

void precopy_init(struct precopy_state *s, const struct precopy_policy *p);
/* A round is done: it carried units, moved bytes, took ns. */
void precopy_round_done(struct precopy_state *s, uint64_t units,
			uint64_t bytes, uint64_t ns);
/* dirty units are waiting: what next. */
enum precopy_decision precopy_decide(struct precopy_state *s, uint64_t dirty);
/* The downtime n dirty units would cost at the current estimates. */
double precopy_predict_ms(const struct precopy_state *s, uint64_t n);

/* Each mode's settings (modes.c), the one place they are written down. */
/* Snapshot passes over RAM in the file: until a pass is at most 1 MiB or
 * no smaller than the one before, 8 passes at most. */
struct precopy_policy precopy_policy_snapshot(void);
/* Live migration: until the predicted downtime fits limit_ms (0: 50),
 * with auto-converge; max_rounds (0: 60) rounds in all. */
struct precopy_policy precopy_policy_migrate(unsigned limit_ms,
					     unsigned max_rounds);
/* The first copy to an HA/FT/lockstep secondary: until the first paused
 * epoch is at most ~8 MiB of pages, 30 rounds at most. */
struct precopy_policy precopy_policy_first_copy(void);
/* Storage migration: until final_blocks (0: 256) or fewer are left, or 3
 * rounds found no new minimum; max_rounds (0: 30) rounds after the full
 * copy. */
struct precopy_policy precopy_policy_storage(uint64_t final_blocks,
					     unsigned max_rounds);

#endif
