/*
 * The heartbeat link of a replication session: a second transport
 * connection between the primary and the secondary, carrying only BEATs
 * (and the primary's AGAIN), so that signs of life never wait behind
 * epoch data — not behind the data link's send lock or socket buffers, a
 * primary's encoder starved of CPU, or a secondary busy applying an
 * epoch. The primary connects it right after the data link's HELLO
 * (which carries RLINK_F_BEATS); its first frame is a HELLO of mode
 * RLINK_MODE_BEAT with the session's id. It is authenticated as the data
 * link is (the same transport options and key).
 *
 * Each side runs one: a thread sends a BEAT every period (a = this side's
 * CLOCK_BOOTTIME ms; b = the newest of the peer's stamps, if it echoes:
 * the FT primary's promise, RLINK_HOLD) and, once armed, watches the
 * peer: it is silent while neither link brings a frame, and the detector
 * (detector.h: an adaptive timeout between base and cap) decides when
 * silence means death. Then the data link is cut (kg_tp_shutdown), so
 * that whoever waits on it fails at once and asks beatlink_suspected
 * why. Another thread receives.
 *
 * If the heartbeat link fails (closed, cut, an error), the watch goes on
 * with the data link alone, as its I/O timeout did before: silence while
 * a receive waits on it, against base.
 *
 * The data link's owner gives it a generous I/O timeout once armed (the
 * watch decides), frees the beatlink before the data link, and logs
 * nothing about it: beatlink_free logs the heartbeats' figures.
 */
#ifndef KG_BEATLINK_H
#define KG_BEATLINK_H

#include <stdbool.h>
#include <stdint.h>

#include "detector.h"
#include "transport/transport.h"

struct rlink;

struct beatlink_opts {
	unsigned period_ms; /* a BEAT every period */
	unsigned base_ms;   /* silence always tolerated */
	unsigned cap_ms;    /* silence never tolerated */
	bool echo;          /* echo the peer's stamps (an FT primary) */
};

/* From a failover timeout: a beat every failover/5 (2..20 ms), the
 * detector between base_ms and 5 x base_ms. */
void beatlink_opts_default(struct beatlink_opts *o, unsigned failover_ms,
			   unsigned base_ms);
/* The data link's I/O timeout once a beatlink watches it: a link that
 * moves nothing for this long while the peer beats is broken. */
int beatlink_data_timeout_ms(unsigned failover_ms);

/* The primary: connects to addr (to: the data link's options) and says
 * HELLO for session. */
int beatlink_connect(const char *addr, const struct kg_tp_opts *to,
		     uint64_t session, struct kg_transport **out,
		     struct kg_err *e);
/* The secondary: waits up to timeout_ms on l (whose accept timeout it
 * changes) for the heartbeat link of session. Other peers are answered
 * (a QUERY: not here) or refused, and waited past. */
int beatlink_accept(struct kg_tp_listener *l, uint64_t session,
		    int timeout_ms, struct kg_transport **out,
		    struct kg_err *e);

struct beatlink;
/* Starts beating on t (taken: closed by beatlink_free, or here on
 * failure) for the session whose data link is data. Not armed: it beats
 * and measures, and suspects nothing yet. */
struct beatlink *beatlink_start(struct kg_transport *t, struct rlink *data,
				const struct beatlink_opts *o,
				struct kg_err *e);
/* From now on silence is failure: something is committed to fail over
 * to (the secondary), or the first copy is done (the primary). */
void beatlink_arm(struct beatlink *b);
/* True once the watch cut the data link for silence; *why says so (kind
 * KG_ERR_TIMEOUT). */
bool beatlink_suspected(struct beatlink *b, struct kg_err *why);
/* True once the peer said AGAIN (it ends the session, alive). */
bool beatlink_again(struct beatlink *b);
/* Waits up to wait_ms for a sign that the peer is alive after since_ns
 * (kg_now_ns): a BEAT that arrives later, or AGAIN. False if none came,
 * or the heartbeat link failed, or the peer was suspected. */
bool beatlink_heard_after(struct beatlink *b, uint64_t since_ns, int wait_ms);
/* The newest of our stamps the peer echoed (0: none). */
uint64_t beatlink_echo(struct beatlink *b);
/* kg_now_ns() when this side last sent an echo (0: never). */
uint64_t beatlink_echo_sent_ns(struct beatlink *b);
/* The primary, ending a session it will follow with another. */
void beatlink_send_again(struct beatlink *b);
/* The detector's figures and its timeout now. */
void beatlink_stats(struct beatlink *b, struct detector_stats *st,
		    uint64_t *timeout_ns);
/* Stops and closes; logs the heartbeats' figures. b may be NULL. */
void beatlink_free(struct beatlink *b);

#endif
