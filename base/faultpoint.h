/*
 * Test-only failure points: the one way tests make library code fail at a
 * chosen moment. A point has a name "area.point" ("receive.go",
 * "migrate.handover", "replay.corrupt") and, when armed, an action:
 *
 *   kill     SIGKILL this process there (a host that dies mid-step)
 *   fail     the step fails as if its link had been cut
 *   at N     the step happens at count N (replay.corrupt: the exit index)
 *
 * A spec arms several: "receive.round=kill,replay.corrupt=at:1234".
 * Library code asks kg_fault_hit(faults, "receive.go") where a test may
 * want to intervene; a NULL set (production) arms nothing. Wire damage
 * (cut, flip, drop a frame) is the transport's own fault layer
 * (transport.h), which stands for a bad network, not a failing step.
 */
#ifndef KG_FAULTPOINT_H
#define KG_FAULTPOINT_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"

#define KG_FAULTS_MAX 8

enum kg_fault_action { KG_FAULT_KILL = 1, KG_FAULT_FAIL, KG_FAULT_AT };

struct kg_fault {
	char point[32];
	enum kg_fault_action action;
	uint64_t at;
};

struct kg_faults {
	unsigned n;
	struct kg_fault f[KG_FAULTS_MAX];
};

/* Adds the points of spec to *f (which may hold some already). Errors
 * name the spec; the point names are not checked here (known ones are
 * listed by whoever offers the option). */
int kg_faults_parse(const char *spec, struct kg_faults *f, struct kg_err *e);

/* Whether point is armed (with *at its count for KG_FAULT_AT; at may be
 * NULL). KG_FAULT_KILL does not return: it logs and kills the process. */
bool kg_fault_hit(const struct kg_faults *f, const char *point,
		  uint64_t *at);

#endif
