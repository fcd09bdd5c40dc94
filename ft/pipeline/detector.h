/*
 * The failure detector of a replication pair: has the peer been silent
 * for longer than its heartbeats' recent jitter allows? Pure: times come
 * in as arguments (CLOCK_MONOTONIC ns in use, a hand clock in
 * tests/unit/test_detector.c); the heartbeat link (beatlink.h) feeds it
 * and acts on its verdicts.
 *
 * The timeout adapts: DETECTOR_FACTOR times the longest gap between the
 * last DETECTOR_WINDOW heartbeats, never below base (the configured
 * --failover-timeout: what an idle pair detects in) nor above cap (how
 * long a dead peer can go unnoticed however jittery the beats were). A
 * host under load that delays beats raises it for as long as the delays
 * stay in the window; a quiet one brings it back to base.
 *
 * A silence beyond the timeout is first a doubt, and a suspicion only if
 * it still holds at the next check: the thread that receives beats may
 * have been starved along with the one that checks, and the beats it has
 * not read yet are not silence. A check that finds the silence over
 * clears the doubt.
 */
#ifndef KG_DETECTOR_H
#define KG_DETECTOR_H

#include <stdbool.h>
#include <stdint.h>

#define DETECTOR_WINDOW 256
#define DETECTOR_FACTOR 2

enum detector_verdict {
	DETECTOR_OK,      /* heard within the timeout */
	DETECTOR_DOUBT,   /* silent too long: look again before acting */
	DETECTOR_SUSPECT, /* still silent at the second look: the peer is lost */
};

struct detector_stats {
	uint64_t beats;       /* heartbeats seen */
	/* heartbeats that came after a gap longer than base: each one a
	 * live peer that a fixed base timeout on beats alone would have
	 * suspected */
	uint64_t late;
	uint64_t max_gap_ns;  /* the longest gap between two heartbeats */
	uint64_t doubts;      /* checks that doubted */
	uint64_t suspicions;  /* checks that suspected */
};

struct detector {
	uint64_t base_ns, cap_ns;
	uint64_t last_beat_ns; /* 0: none yet */
	uint64_t gap_ns[DETECTOR_WINDOW];
	unsigned ngaps, next;
	bool doubt;
	struct detector_stats st;
};

/* base_ns <= cap_ns; a cap below base is taken as base. */
void detector_init(struct detector *d, uint64_t base_ns, uint64_t cap_ns);
/* A heartbeat arrived at now_ns (never earlier than the last one's). */
void detector_beat(struct detector *d, uint64_t now_ns);
/* The silence, in ns, that the detector tolerates now. */
uint64_t detector_timeout(const struct detector *d);
/* silence_ns: how long the peer has been silent on every path (the
 * caller knows the paths). Counts doubts and suspicions. */
enum detector_verdict detector_check(struct detector *d, uint64_t silence_ns);

#endif
