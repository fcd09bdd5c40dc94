/*
 * Inside struct lease: what lease.c shares with its two backends
 * (lease_witness.c, lease_file.c). Not for users of lease.h.
 */
#ifndef KG_LEASE_IMPL_H
#define KG_LEASE_IMPL_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "lease.h"
#include "witness_proto.h"

struct lease_ops {
	/* As lease_acquire; ttl_ms > 0 is checked by lease.c. */
	int (*acquire)(struct lease *l, unsigned ttl_ms, long long *until_ms,
		       struct kg_err *e);
	/* Called only while we hold the lease by our own clock. */
	int (*release)(struct lease *l, struct kg_err *e);
};

struct lease {
	const struct lease_ops *ops;
	char holder[LEASE_HOLDER_MAX + 1];
	/* Set by the backend's acquire on a grant: */
	uint64_t gen;       /* our last grant's generation; 0: none yet */
	bool renewed;       /* that grant renewed the one before it */
	long long until_ms; /* CLOCK_BOOTTIME end of our lease; 0: none */

	/* witness: */
	char addr[300];
	char name[LEASE_NAME_MAX + 1];
	bool has_key;
	struct kg_tp_key key;
	char token[WITNESS_TOKEN_HEX + 1]; /* our grant's; "": none */

	/* file: */
	char path[PATH_MAX];
	uint64_t seen_gen;           /* the highest in the file, ever */
	long long no_claim_until_ms; /* after a too-slow write (lease_file.c) */
};

extern const struct lease_ops lease_witness_ops;
extern const struct lease_ops lease_file_ops;

/* Milliseconds on CLOCK_BOOTTIME (which counts a suspend: a lease must
 * run out while its host sleeps) / CLOCK_REALTIME (lease_clock.c). */
int lease_boot_ms(long long *ms, struct kg_err *e);
int lease_real_ms(long long *ms, struct kg_err *e);

#endif
