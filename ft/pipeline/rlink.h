/*
 * The replication link: a kagami stream (snapshot format: header, config,
 * epochs) and small control messages, multiplexed over one transport/
 * connection. Every mode (migrate, HA, FT) talks over it.
 *
 * Stream bytes travel in frames with flag RLINK_STREAM: small sections are
 * gathered into frames of up to RLINK_GATHER bytes, a large payload goes
 * as its own frame without a copy, and rlink_flush (called by the epoch
 * sender at every epoch end) sends what is gathered, so an epoch ends at a
 * frame boundary. Control messages are frames with flag RLINK_MSG and a
 * fixed layout (all little-endian):
 *
 *    0  type     u32 (enum rlink_msg_type)
 *    4  reserved u32 (0)
 *    8  a, b     u64 each (meaning per type)
 *   24  text     the rest, up to RLINK_TEXT_MAX bytes, not NUL-terminated
 *
 * Receiving has two styles: the stream's consumer reads stream bytes
 * through rlink_stream_io (control messages met on the way are queued for
 * rlink_next), or a reader thread (rlink_start_reader) takes every frame
 * as a message, for the side that only expects messages back; then
 * rlink_wait_msg waits for one.
 *
 * One thread may send (stream and messages are serialised by a lock)
 * while another receives. Errors follow base/err.h and name the peer; a
 * malformed or unexpected message is KG_ERR_CORRUPT, a peer that closed
 * the connection (seen by the reader thread) KG_ERR_PEER_GONE, and the
 * transport's errors keep their kinds.
 */
#ifndef KG_RLINK_H
#define KG_RLINK_H

#include <stdbool.h>
#include <stdint.h>

#include "transport/transport.h"
#include "ft/checkpoint/stream.h"

#define RLINK_STREAM 1u
#define RLINK_MSG 2u
#define RLINK_GATHER (256u << 10)
#define RLINK_MAX_FRAME (4u << 20)
#define RLINK_TEXT_MAX 480
#define RLINK_MSG_HEADER 24

enum rlink_msg_type {
	RLINK_HELLO = 1,   /* source: a = session id, b = mode | flags */
	RLINK_READY = 2,   /* sink: epoch a is committed, ready to run */
	RLINK_GO = 3,      /* source: run now; the guest is yours */
	RLINK_RUNNING = 4, /* sink: the guest runs here */
	RLINK_ABORT = 5,   /* either: giving up; text says why */
	RLINK_ACK = 6,     /* sink: round or epoch a applied / committed */
	RLINK_QUERY = 7,   /* source in doubt: a = session id */
	RLINK_ANSWER = 8,  /* sink: a = session id, b = 1 if it runs it */
	RLINK_BEAT = 9,    /* heartbeat: a = sender's clock in ms */
	RLINK_DISK = 10,   /* source, after HELLO: disk a has b bytes */
	/* sink (lockstep), after HELLO: it holds a replica of a bytes of RAM
	 * (0: none) close enough for a hash round (epoch_send_hashes) */
	RLINK_HAVE = 11,
	/* sink, after a hash round: of pages a..a+b-1, those whose bit is
	 * set in the text (hex, 4 pages per digit, lowest page in the
	 * lowest bit) differ; a = UINT64_MAX ends the list (b = how many
	 * pages in all) */
	RLINK_NEED = 12,
	/* FT primary, after HELLO: a = ms. Each BEAT it sends with b != 0
	 * echoes a stamp of the secondary's (a BEAT's a, CLOCK_BOOTTIME ms
	 * there) and promises that no output the secondary has not
	 * acknowledged is released until a ms after that echo left: the
	 * secondary may resume its replica until its stamp b + a. */
	RLINK_HOLD = 13,
	/* FT primary, after HELLO: the outputs it holds are all those after
	 * epoch b of session a, whose ACK released the last ones; nothing
	 * since was released unacknowledged. Absent: a secondary's older
	 * replica is stale. */
	RLINK_HELD = 14,
	/* primary, on the heartbeat link: this session ends and the primary,
	 * alive, will start another: keep the replica. */
	RLINK_AGAIN = 15,
};
#define RLINK_NEED_PAGES (4u * 480u) /* pages per NEED: the text's hex */

/* HELLO's b: the mode in bits 0-7, flags above. */
enum { RLINK_MODE_MIGRATE = 1, RLINK_MODE_FT = 2, RLINK_MODE_HA = 3,
       RLINK_MODE_QUERY = 4, RLINK_MODE_LOCKSTEP = 5,
       /* the heartbeat link of session a (beatlink.h) */
       RLINK_MODE_BEAT = 6 };
#define RLINK_F_STORAGE (1u << 8) /* disk contents travel in the stream */
/* a heartbeat link (a second connection, HELLO mode BEAT with the same
 * session) follows the HELLO */
#define RLINK_F_BEATS (1u << 9)

struct rlink_msg {
	uint32_t type;
	uint64_t a, b;
	char text[RLINK_TEXT_MAX + 1]; /* NUL-terminated copy */
};

/* "ready", "go", ...; "?" for anything else. */
const char *rlink_msg_name(uint32_t type);
/* A message's fixed part, for a link that carries messages only
 * (beatlink.c). */
void rlink_msg_pack(uint8_t hdr[RLINK_MSG_HEADER], uint32_t type, uint64_t a,
		    uint64_t b);
/* Parses a message frame of len bytes; a bad length or type is
 * KG_ERR_CORRUPT naming peer. */
int rlink_msg_parse(const char *peer, const uint8_t *p, size_t len,
		    struct rlink_msg *m, struct kg_err *e);

struct rlink;

/* Takes t (closed by rlink_free). bandwidth: bytes/s for the stream, 0
 * unlimited. */
struct rlink *rlink_new(struct kg_transport *t, uint64_t bandwidth,
			struct kg_err *e);
/* Joins the reader thread, closes the transport (in order if healthy). */
void rlink_free(struct rlink *l);
const char *rlink_peer(const struct rlink *l);
struct kg_transport *rlink_transport(struct rlink *l);

/* The kg_stream_io to give a writer or reader (ctx = the rlink). */
extern const struct kg_stream_io rlink_stream_io;
/* Sends what the stream gathered. */
int rlink_flush(struct rlink *l, struct kg_err *e);
/* Stream bytes sent so far (frame payloads). */
uint64_t rlink_stream_bytes(const struct rlink *l);

int rlink_send(struct rlink *l, uint32_t type, uint64_t a, uint64_t b,
	       const char *text, struct kg_err *e);

/* Stream consumer: what comes next. 1: a message (*m); 0: stream bytes
 * (read them through rlink_stream_io); 2: the peer closed in order;
 * -1: error. */
int rlink_next(struct rlink *l, struct rlink_msg *m, struct kg_err *e);

/* Signs of life for a failure detector (beatlink.h), any thread:
 * kg_now_ns() when the last frame arrived (0: none yet), and when the
 * receive waiting now began (0: none waits: the receiving side is busy
 * elsewhere, or done). */
uint64_t rlink_last_rx_ns(const struct rlink *l);
uint64_t rlink_rx_wait_ns(const struct rlink *l);
/* Of the BEATs received: the newest one's a (the peer's stamp), and the
 * largest b (an echo of one of ours; 0: none). */
uint64_t rlink_peer_stamp(const struct rlink *l);
uint64_t rlink_echo(const struct rlink *l);

/* Message-only side: a thread receives every frame; a stream frame or a
 * malformed message is an error. */
int rlink_start_reader(struct rlink *l, struct kg_err *e);
/* Waits up to timeout_ms (< 0: forever) for a message of a type in mask
 * (bit 1 << type) or RLINK_ABORT, skipping others (heartbeats): 1 with *m,
 * 0 on timeout, -1 if the link failed or closed (e says how). */
int rlink_wait_msg(struct rlink *l, uint32_t mask, int timeout_ms,
		   struct rlink_msg *m, struct kg_err *e);

#endif
