/*
 * The output rule of checkpoint FT: what the guest sends out — network
 * frames, console bytes — is held until the secondary has committed the
 * epoch whose state produced it, so that no client ever sees a reply
 * whose state the secondary lacks.
 *
 * Devices hand each output to outbuf_put with the function that would
 * have emitted it. Outputs belong to the open epoch; outbuf_seal(seq),
 * called while the vCPUs are stopped for epoch seq, closes it;
 * outbuf_release(seq), on the secondary's ACK, emits every output of
 * epochs <= seq in the order they were put. outbuf_release_all emits
 * everything (the primary goes on unprotected, or stops holding).
 * A disabled outbuf (outbuf_hold(o, false), the default) emits at once.
 *
 * Thread-safe: puts come from vCPU threads and the console; releases
 * from the replication thread. Emitting happens outside the buffer's
 * lock but one release at a time, so order is kept.
 */
#ifndef KG_OUTBUF_H
#define KG_OUTBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

typedef void (*outbuf_emit_fn)(void *ctx, const void *buf, size_t len);

struct outbuf;

/* max_bytes: held bytes beyond which a put is dropped (counted), as a
 * full wire drops: the guest's protocols retransmit. */
struct outbuf *outbuf_new(size_t max_bytes, struct kg_err *e);
void outbuf_free(struct outbuf *o);

/* Turns holding on or off; turning it off releases everything. */
void outbuf_hold(struct outbuf *o, bool on);
bool outbuf_holding(struct outbuf *o);

/* Emits now (not holding) or copies and holds. */
void outbuf_put(struct outbuf *o, outbuf_emit_fn fn, void *ctx,
		const void *buf, size_t len);
void outbuf_seal(struct outbuf *o, uint64_t seq);
/* Whether outputs were held since the last seal (lockstep seals the log
 * early for them, so that they wait less). */
bool outbuf_unsealed(struct outbuf *o);
/* Seals everything held, sealed before or not, with seq. */
void outbuf_reseal(struct outbuf *o, uint64_t seq);
void outbuf_release(struct outbuf *o, uint64_t seq);
void outbuf_release_all(struct outbuf *o);
/* Drops everything held, unsent (another side took over: what this copy
 * produced since its last acknowledged epoch never happened), and stops
 * holding. */
void outbuf_discard(struct outbuf *o);

struct outbuf_stats {
	uint64_t held_items, held_bytes; /* now */
	uint64_t released, dropped;
	/* How long released outputs were held, µs: p50 and p99 over the
	 * last OUTBUF_SAMPLES releases. */
	double hold_p50_us, hold_p99_us;
};
#define OUTBUF_SAMPLES 4096
void outbuf_stats(struct outbuf *o, struct outbuf_stats *st);

#endif
