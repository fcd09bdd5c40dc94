/*
 * Live migration: the replication pipeline run once to convergence, then
 * handed over. The source (this side) connects to `kagami receive`, sends
 * HELLO and the stream's configuration, then pre-copy rounds while the
 * guest runs (epoch_send_live: every page, then the pages dirtied during
 * the previous round). Before each round it predicts the downtime — the
 * pages dirty now times the bytes each cost on the stream, over the
 * throughput the last round achieved — and stops iterating once that fits
 * the downtime limit. When rounds stop shrinking it throttles the vCPUs
 * (auto-converge: paused for a growing share of every 20 ms). The rounds
 * are the pre-copy engine's (ft/precopy/, precopy_policy_migrate).
 *
 * Then stop-and-copy and hand-over:
 *   source: pause, the last dirty pages + state (+ disk) as one epoch
 *   sink:   stages it whole, commits, READY
 *   source: releases its disk locks (shared storage), GO
 *   sink:   takes the disk locks, resumes the guest, RUNNING
 *   source: done; the caller stops this VM (it now runs over there).
 *
 * Nothing is lost on failure. Before GO is sent, any failure (peer dead,
 * link cut, checksum error, refused key, ABORT) resumes the guest here,
 * and the sink, which never got GO, discards what it staged. After GO the
 * outcome is in doubt only if RUNNING never arrives: the source keeps the
 * guest paused and asks the sink's listener (a new authenticated
 * connection, QUERY with the session id) whether it runs the guest; a
 * refused connection means the sink process is gone, so the guest resumes
 * here; an answer settles it; an unreachable sink leaves the guest paused
 * here, said plainly, because resuming could run it twice.
 */
#ifndef KG_MIGRATE_H
#define KG_MIGRATE_H

#include <stdbool.h>
#include <stdint.h>

#include "transport/transport.h"
#include "base/err.h"
#include "base/faultpoint.h"
#include "ft/checkpoint/epoch.h"

struct vm;

struct migrate_opts {
	const char *addr;             /* tcp:HOST:PORT, unix:PATH, rdma:... */
	const struct kg_tp_key *key;  /* NULL: no authentication */
	const struct kg_tp_fault *fault; /* tests: faults on what we send */
	unsigned downtime_limit_ms;   /* 0: 50 */
	uint64_t bandwidth;           /* bytes/s; 0: unlimited */
	unsigned max_rounds;          /* 0: 60; then stop-and-copy anyway */
	/* Disk contents in the stream (migrate --with-storage). */
	const struct epoch_disk_ops *disk;
	void *disk_ctx;
	/* tests: "migrate.stop-and-copy=fail" cuts the link after pausing,
	 * "migrate.handover=fail" right after sending GO
	 * (base/faultpoint.h). */
	const struct kg_faults *faults;
};

struct migrate_progress {
	const char *phase; /* "connect", "precopy", "stop-and-copy", ... */
	unsigned round;
	double percent;    /* of this round's pages */
	double mbps;       /* stream throughput of the last round, MB/s */
	uint64_t dirty_pages;
	double expected_downtime_ms;
	unsigned throttle_pct;
};
typedef void (*migrate_progress_fn)(void *ctx, const struct migrate_progress *p);

struct migrate_result {
	double total_ms;
	double downtime_ms;   /* vCPUs paused here until RUNNING arrived */
	/* Its parts: pausing and writing the last epoch; until the
	 * destination committed it (READY); from GO to RUNNING. */
	double pause_ms, copy_ms, commit_ms, resume_ms;
	uint64_t bytes;       /* stream bytes sent */
	unsigned rounds;      /* live rounds */
	uint64_t final_pages; /* pages in the stop-and-copy epoch */
	unsigned throttle_pct;/* the highest auto-converge throttle */
	bool by_query;        /* hand-over confirmed by QUERY, not RUNNING */
	bool in_doubt;        /* hand-over unknown: the guest stays paused */
	/* How the source can tell the sink's fate. */
	char dest[160];
};

/* Runs one migration of vm. 0: the guest runs at the destination (the
 * caller stops this VM). -1 with e: it still runs here (or, if
 * res->in_doubt, stays paused here: see above). */
int migrate_run(struct vm *vm, const struct migrate_opts *o,
		migrate_progress_fn fn, void *ctx, struct migrate_result *res,
		struct kg_err *e);

#endif
