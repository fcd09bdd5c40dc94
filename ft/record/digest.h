/*
 * State digests for record/replay: the vCPU's registers plus one hash of
 * all guest RAM, computed at the same exit on both sides. The RAM hash is
 * XXH3 over an array of per-page XXH3 hashes; only pages dirtied since the
 * last digest (KVM's dirty log and the VMM's own writes) are hashed again,
 * so a digest costs what the guest wrote, not the size of its RAM.
 *
 * It owns KVM's dirty log while it lives: snapshots and epochs, which use
 * the log too, must not run concurrently (the recorder takes its initial
 * epoch before it starts).
 */
#ifndef KG_RR_DIGEST_H
#define KG_RR_DIGEST_H

#include <stdint.h>

#include "base/err.h"
#include "rr_log.h"

struct vm;

struct rr_hasher {
	struct vm *vm;
	uint64_t npages;
	uint64_t *page_hash;
	uint64_t *bits;
	uint32_t resets; /* vm->stats.resets when page_hash was filled */
};

/* Turns dirty logging on and hashes every page. */
int rr_hasher_init(struct rr_hasher *h, struct vm *vm, struct kg_err *e);
/* Digest of vCPU 0 (stopped at an exit) and RAM now. */
int rr_hasher_digest(struct rr_hasher *h, struct rr_digest *d,
		     struct kg_err *e);
void rr_hasher_free(struct rr_hasher *h);

struct kvm_run;
/* Fills x's type, address, size, count and (for writes) data from the
 * exit in run; not its registers. */
void rr_exit_describe(const struct kvm_run *run, struct rr_exit *x);

/* The registers in enum rr_reg order. */
void rr_regs_from_kvm(const void *kvm_regs, uint64_t out[RR_NREGS]);

#endif
