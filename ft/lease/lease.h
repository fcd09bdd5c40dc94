/*
 * ft/lease/: split-brain prevention. A side may run the protected guest
 * only while it holds the lease; the primary and the secondary both ask
 * for it, and whoever is refused must not run the guest. Two backends
 * behind one interface, chosen by the spec:
 *
 *   witness:ADDR[#NAME]  a `kagami witness` server (witness.h) at ADDR, a
 *                        transport address (tcp:HOST:PORT, unix:PATH);
 *                        NAME (default "default") tells apart the leases
 *                        of several VMs on one witness
 *   file:PATH            a lease file on storage both hosts share
 *                        (lease_file.c: its clock and race assumptions)
 *
 * Times: until_ms is CLOCK_BOOTTIME milliseconds on this host (the same
 * as kg_boottime_ns() / 1000000; it counts a suspend, so a host that
 * wakes up finds its lease over instead of still running), computed
 * conservatively as the time the request started + ttl. The witness (or
 * the other host reading the file) counts from a later instant, so as
 * long as clocks run at the same rate, our lease always ends here before
 * anyone else may take it. The caller must stop the guest before until_ms
 * unless a renewal succeeded meanwhile; renew well before (e.g. every
 * ttl/3), since a renewal can fail (-1) when the witness is unreachable.
 *
 * Only the backend assigns generations: each fresh grant gets the next
 * one, a renewal keeps it, and nothing a refused client says moves it. A
 * holder that comes back from a partition learns whether its lease was
 * kept for it (lease_renewed) or granted afresh — then someone else may
 * have run the guest meanwhile. On a witness the grant is bound to a
 * secret token it gave the holder (witness_proto.h): only the holder
 * renews or releases it, whatever name others claim.
 *
 * Errors follow base/err.h. A struct lease is used by one thread at a time.
 */
#ifndef KG_LEASE_H
#define KG_LEASE_H

#include <stdbool.h>
#include <stdint.h>

#include "transport/transport.h"
#include "base/err.h"

#define LEASE_HOLDER_MAX 127 /* bytes of a holder name */
#define LEASE_NAME_MAX 127   /* bytes of a witness lease name */

struct lease; /* opaque */

/* spec: as above. holder: who we are ("primary@hostA"), unique per side,
 * printable, 1..LEASE_HOLDER_MAX bytes. key: the witness's transport key
 * (copied; NULL: none; ignored by file:). Opening does no I/O: an
 * unreachable witness shows at the first lease_acquire. */
struct lease *lease_open(const char *spec, const char *holder,
			 const struct kg_tp_key *key, struct kg_err *e);
/* Releases the lease if held (errors are ignored: it expires anyway). */
void lease_close(struct lease *l);
/* Takes or extends the lease for ttl_ms (> 0) from now. 1: we hold it
 * until *until_ms; 0: someone else holds it (e says who and for how long);
 * -1: cannot tell (witness unreachable, authentication refused, I/O
 * error, corrupt lease file) — the caller must treat this as NOT holding
 * it once its current lease runs out. A witness may grant less than
 * ttl_ms (its --max-ttl); *until_ms reflects what was granted. */
int lease_acquire(struct lease *l, unsigned ttl_ms, long long *until_ms,
		  struct kg_err *e);
/* Gives the lease up now, so the other side may take it at once. 0 also
 * when we did not hold it; -1 when we held it and could not tell the
 * backend (it will expire on its own). */
int lease_release(struct lease *l, struct kg_err *e);
/* The generation of our last grant (0: none yet). */
uint64_t lease_generation(const struct lease *l);
/* After lease_acquire returned 1: true when the grant renewed the one
 * this side held before, with no gap in which anyone else could hold the
 * lease (same witness token, same lease file record); false for a first
 * grant and for any fresh one — after a release, after another holder,
 * after a witness that forgot us. A witness counts generations from 1
 * again after a restart, so only this, not the number, tells. */
bool lease_renewed(const struct lease *l);

#endif
