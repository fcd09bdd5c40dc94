/*
 * Guest RAM loaded after the guest starts (restore): RAM stays the VM's
 * memfd — dirty logging, snapshots, replication work on it as on any VM —
 * and is registered with userfaultfd in MISSING mode, so the first touch
 * of a page not yet in the memfd, by the guest (through KVM) or by the
 * VMM, waits until a loader thread has read that page (and its
 * neighbours) from a source, had the source verify it, and copied it in
 * (UFFDIO_COPY). A second thread loads the rest in the background, in
 * memfd order; once every page is in, the range is unregistered: RAM is
 * an ordinary memfd again and the source is released (a snapshot file is
 * no longer read, and may change freely).
 *
 * Pages the source says hold zeros are never read: one that is touched
 * gets a zero page; the others stay holes of the memfd.
 *
 * A page the source cannot give (damaged, cut short) fails the load once:
 * the source's `failed` runs (it stops the VM with its one line), then
 * the range is unregistered so that no thread waits forever; pages not
 * loaded read as zeros from then on, for a VM that is stopping.
 *
 * Without userfaultfd (an old kernel, a sandbox), guest_mem_load_eager
 * copies every page before the guest starts: the same guarantee, slower.
 */
#ifndef KG_MEM_LAZY_H
#define KG_MEM_LAZY_H

#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"

struct guest_mem;

/* Pages per source read: the background load's unit (1 MiB). */
#define MEM_LAZY_BATCH 256u
/* Pages loaded around a faulting page (aligned; 64 KiB). */
#define MEM_LAZY_FAULT_BATCH 16u

struct mem_source {
	/* Pages [first, first + n) of the memfd (n <= MEM_LAZY_BATCH, all
	 * in one region): sets bit i of zero[] for each page known to hold
	 * zeros (not read) and reads every other one, verified, into buf +
	 * i * 4096. 0, or -1 with e (one line). Called from two threads at
	 * once. */
	int (*read)(void *ctx, uint64_t first, unsigned n, uint8_t *buf,
		    uint64_t zero[MEM_LAZY_BATCH / 64], struct kg_err *e);
	/* The load failed (called once, from a loader thread). */
	void (*failed)(void *ctx, const struct kg_err *e);
	/* The source is no longer needed. */
	void (*release)(void *ctx);
	void *ctx;
};

struct mem_lazy_opts {
	/* tests: the background load starts this late (pages still come
	 * in on demand meanwhile) */
	unsigned prefetch_delay_ms;
};

struct mem_lazy_stats {
	uint64_t faults;      /* page faults served */
	uint64_t pages;       /* pages copied in */
	uint64_t zero_pages;  /* zero pages given to a fault */
	uint64_t done_ns;     /* from the start until every page was in */
};

/* Starts loading m (no vCPU running, no page in the memfd that the
 * source should provide: it punches the memfd empty first). On success
 * the loader owns src (released at the end); on failure (userfaultfd
 * unavailable: kind INVALID, or a failed system call) src is the
 * caller's. */
int guest_mem_lazy_start(struct guest_mem *m, const struct mem_source *src,
			 const struct mem_lazy_opts *o, struct kg_err *e);
/* Every page now, on the caller's thread (the fallback). src stays the
 * caller's. */
int guest_mem_load_eager(struct guest_mem *m, const struct mem_source *src,
			 struct kg_err *e);
/* Whether pages may still be missing: the memfd's holes are not zeros
 * then (SEEK_DATA walks must read through the mapping instead). */
bool guest_mem_lazy(const struct guest_mem *m);
/* Waits until every page is in: 0, or -1 with the load's error. */
int guest_mem_lazy_wait(struct guest_mem *m, struct kg_err *e);
/* Counts so far; false if m never loaded lazily. */
bool guest_mem_lazy_stats(const struct guest_mem *m, struct mem_lazy_stats *st);
/* Stops loading (reset, destroy): threads joined, the range unregistered
 * (a waiting thread gets a zero page), the source released. */
void guest_mem_lazy_stop(struct guest_mem *m);

#endif
