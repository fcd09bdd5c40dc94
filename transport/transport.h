/*
 * transport/: moves frames between two kagami processes, the replication
 * stream's carrier. One interface, several backends chosen by the address:
 *
 *   tcp:HOST:PORT   default; HOST is a name, an IPv4 address or [IPv6]
 *   unix:PATH       same host; the listening socket is mode 0600
 *   rdma:HOST:PORT  libibverbs reliable connection (rdma.c)
 *
 * A frame is one message of up to opts.max_frame bytes, sent in batches
 * with scatter-gather (one iovec array per frame) and received one at a
 * time into a caller buffer. On the wire (all integers little-endian):
 *
 *    0  magic     u32  0x4654474b ("KGTF")
 *    4  flags     u32  bits 0-30 the caller's; bit 31 = orderly close
 *    8  sequence  u64  0 for the first frame in each direction, then +1
 *   16  length    u32  payload bytes, at most the receiver's max_frame
 *   20  hdr crc   u32  CRC32C of bytes 0-19: a corrupted length is caught
 *                      before the receiver waits for a payload
 *   24  payload   length bytes
 *   ..  trailer   16 bytes: with a key, HMAC-SHA256 (per-direction session
 *                 key) over bytes 0-23 and the payload, truncated to 128
 *                 bits as RFC 2104 section 5 allows; without a key,
 *                 XXH3-128 of the same bytes (a checksum, no protection
 *                 against a forger)
 *
 * The receiver refuses a bad magic, header CRC, length (over max_frame or
 * the caller's buffer), a sequence number other than the next expected one
 * (a replayed, dropped or reordered frame: the sequence number is under the
 * MAC, so it cannot be rewritten) and a bad trailer, each with one line
 * naming the peer and the sequence number. After any error the connection
 * is unusable: every later call fails and the caller closes it.
 *
 * Authentication (auth.c), when a key is given: both peers hold the same
 * pre-shared key file (kg_tp_key_load). At connect, each side sends a
 * 32-byte nonce from getrandom(); each proves it knows the key with
 * HMAC-SHA256(key, role || client nonce || server nonce), in both
 * directions, and the per-direction session keys are HMAC-SHA256(key,
 * direction || nonces): a frame from another session or a frame reflected
 * back to its sender fails its MAC. A peer without the key, with another
 * key, or without a key when this side has one is refused, and a listener
 * logs the refusal (base/log.h) with the peer's address: whoever can write
 * this stream can write the guest's memory.
 *
 * Errors follow base/err.h: -1 and one line in struct kg_err. Timeouts bound
 * every wait (connect, accept if asked, each read and write), so a dead or
 * stalled peer is an error, never a hang. Kinds: a wait that runs out is
 * KG_ERR_TIMEOUT (accept's "no peer within" too); a connection closed
 * without an orderly close, reset or cut is KG_ERR_PEER_GONE, and so is
 * any failed socket read or write; a bad frame (magic, header CRC,
 * sequence, length, MAC or checksum) is KG_ERR_CORRUPT; any failure inside
 * the handshake is KG_ERR_AUTH; a refused connect is KG_ERR_REFUSED; bad
 * addresses, options and key files are KG_ERR_INVALID. A broken direction
 * repeats the kind of the error that broke it. One thread may send while another
 * receives on the same transport; two senders (or receivers) must not.
 */
#ifndef KG_TRANSPORT_H
#define KG_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "base/err.h"

#define KG_FRAME_MAGIC 0x4654474bu
#define KG_FRAME_HEADER_SIZE 24
#define KG_FRAME_TRAILER_SIZE 16
#define KG_FRAME_CLOSE 0x80000000u   /* the transport's own: orderly close */
#define KG_FRAME_USER_FLAGS 0x7fffffffu
#define KG_FRAME_MAX_LIMIT (1u << 30) /* max_frame may not exceed 1 GiB */

/* --- addresses (addr.c) --- */

enum kg_tp_kind { KG_TP_TCP = 1, KG_TP_UNIX, KG_TP_RDMA };

struct kg_tp_addr {
	enum kg_tp_kind kind;
	char host[256]; /* tcp, rdma: without the brackets of [IPv6] */
	char port[8];   /* tcp, rdma: decimal 0..65535 (0: listen on any) */
	char path[108]; /* unix: sun_path, NUL-terminated */
};

/* Parses "tcp:HOST:PORT", "unix:PATH" or "rdma:HOST:PORT". Errors name the
 * address and what is wrong ("tcp:host: missing :PORT"). */
int kg_tp_addr_parse(const char *s, struct kg_tp_addr *a, struct kg_err *e);

/* --- the pre-shared key (key.c) --- */

#define KG_TP_KEY_MIN 32
#define KG_TP_KEY_MAX 4096

struct kg_tp_key {
	size_t len;
	uint8_t bytes[KG_TP_KEY_MAX];
};

/* Loads a key file: a regular file of 32..4096 bytes (all of them are the
 * key, a trailing newline included), owned by the effective user and
 * neither readable nor writable by its group or others (chmod 600).
 * Refuses anything else with one line naming the file. */
int kg_tp_key_load(const char *path, struct kg_tp_key *k, struct kg_err *e);

/* --- fault injection (fault.c) --- */

/* Faults act on what this side sends, counted from the first frame after
 * the handshake: frame indexes from 0, byte offsets from the first byte of
 * that frame's header. Tests switch them on through opts.fault. */
enum {
	KG_FAULT_DELAY = 1u << 0, /* sleep delay_ms before each frame */
	KG_FAULT_STALL = 1u << 1, /* frames from index stall_after on vanish */
	KG_FAULT_CUT = 1u << 2,   /* after cut_after bytes, shut the link */
	KG_FAULT_FLIP = 1u << 3,  /* invert the byte at flip_offset */
	KG_FAULT_DROP = 1u << 4,  /* frame drop_frame is not sent */
	KG_FAULT_DUP = 1u << 5,   /* frame dup_frame is sent twice (replay) */
	/* frame reseq_frame goes out numbered reseq_to, its header CRC made
	 * to match: what anyone on the wire can forge, since only the
	 * trailer (MAC) covers the sequence number with a secret */
	KG_FAULT_RESEQ = 1u << 6,
	/* once, before the frame that crosses byte pause_after: sleep
	 * pause_ms (1000 unless given), the sender holding everything up as
	 * a starved or stuck sender would */
	KG_FAULT_PAUSE = 1u << 7,
};

struct kg_tp_fault {
	unsigned on; /* KG_FAULT_* */
	unsigned delay_ms;
	uint64_t stall_after, cut_after, flip_offset, drop_frame, dup_frame;
	uint64_t reseq_frame, reseq_to;
	uint64_t pause_after;
	unsigned pause_ms;
};

/* "delay=5,stall=10,cut=4096,flip=100,drop=3,dup=3,pause=N,pause_ms=MS"
 * (any subset), for tools and integration tests. */
int kg_tp_fault_parse(const char *s, struct kg_tp_fault *f, struct kg_err *e);

/* --- options --- */

struct kg_rdma_ops; /* rdma_ops.h: the verbs function table */

struct kg_tp_opts {
	int connect_timeout_ms; /* default 5000 */
	int io_timeout_ms;      /* longest wait without progress on a read or
				   write, handshake included; default 10000;
				   < 0: forever */
	int accept_timeout_ms;  /* default -1: wait for a peer forever */
	uint32_t max_frame;     /* largest payload accepted; default 64 MiB */
	const struct kg_tp_key *key;     /* NULL: checksums only */
	const struct kg_tp_fault *fault; /* NULL: none */
	const struct kg_rdma_ops *rdma;  /* NULL: the real libibverbs */
	size_t rdma_staging;             /* receiver staging; default 8 MiB */
};

void kg_tp_opts_default(struct kg_tp_opts *o);

/* --- connections (frame.c) --- */

struct kg_transport;
struct kg_tp_listener;

/* One frame to send: its payload is the concatenation of iov[0..iovcnt). */
struct kg_tp_frame {
	const struct iovec *iov;
	int iovcnt;
	uint32_t flags; /* KG_FRAME_USER_FLAGS only */
};

/* What kg_tp_recv received. */
struct kg_tp_rx {
	uint64_t seq;
	uint32_t len;
	uint32_t flags;
};

/* opts are copied (key and fault included); NULL means the defaults. */
int kg_tp_listen(const char *addr, const struct kg_tp_opts *o,
		 struct kg_tp_listener **out, struct kg_err *e);
/* The bound address, e.g. "tcp:127.0.0.1:41234" after listening on port 0. */
const char *kg_tp_listener_addr(const struct kg_tp_listener *l);
/* Waits (accept_timeout_ms) for a peer and authenticates it. A refused
 * peer is logged (base/log.h) and returned as an error; the listener stays
 * usable, so a caller may accept again. */
int kg_tp_accept(struct kg_tp_listener *l, struct kg_transport **out,
		 struct kg_err *e);
/* Changes how long kg_tp_accept waits (< 0: forever). */
void kg_tp_listener_set_timeout(struct kg_tp_listener *l, int accept_ms);
/* Closes the listener (and removes a unix socket's file). */
void kg_tp_listener_close(struct kg_tp_listener *l);

int kg_tp_connect(const char *addr, const struct kg_tp_opts *o,
		  struct kg_transport **out, struct kg_err *e);

/* Serving many peers at once. kg_tp_accept authenticates before it
 * returns, so a server accepting on one thread runs one handshake at a
 * time, and a few silent peers hold everyone up. Such a server takes the
 * bare connection with kg_tp_accept_conn (nothing read or written yet:
 * it can count and refuse per source first) and authenticates it on a
 * thread of its own with kg_tp_conn_establish. */
struct kg_tp_conn;
/* Waits (accept_timeout_ms) for a connection; no handshake. */
int kg_tp_accept_conn(struct kg_tp_listener *l, struct kg_tp_conn **out,
		      struct kg_err *e);
/* The peer without its port ("tcp:10.0.0.1", "tcp:[::1]", "unix:PATH"):
 * what a per-source limit counts. */
const char *kg_tp_conn_source(const struct kg_tp_conn *c);
const char *kg_tp_conn_peer(const struct kg_tp_conn *c);
/* Authenticates c as kg_tp_accept does (a refusal is logged) and makes it
 * a transport, which c keeps: *out is valid until kg_tp_conn_free. Any
 * thread; l must outlive the call. */
int kg_tp_conn_establish(struct kg_tp_listener *l, struct kg_tp_conn *c,
			 struct kg_transport **out, struct kg_err *e);
/* Cuts c now, in its handshake or after: whatever waits on it fails.
 * Any thread, until kg_tp_conn_free (the caller keeps the two apart). */
void kg_tp_conn_cut(struct kg_tp_conn *c);
/* Closes c's transport (kg_tp_close) or the bare connection; frees c.
 * c may be NULL. */
void kg_tp_conn_free(struct kg_tp_conn *c);

/* Sends n frames in one batch, each with the next sequence number; returns
 * when all bytes are handed to the kernel (or the RDMA queue). */
int kg_tp_send(struct kg_transport *t, const struct kg_tp_frame *frames,
	       size_t n, struct kg_err *e);
/* Receives the next frame into buf (at most cap bytes): 1 with *rx filled,
 * 0 when the peer closed in order (kg_tp_close), -1 on error, a connection
 * that ends without that close frame included. */
int kg_tp_recv(struct kg_transport *t, void *buf, size_t cap,
	       struct kg_tp_rx *rx, struct kg_err *e);
/* "tcp:127.0.0.1:7000", "unix:/run/k.sock (pid 42)": how errors name it. */
const char *kg_tp_peer(const struct kg_transport *t);
/* Changes the longest wait without progress for later reads and writes
 * (< 0: forever): a replication link is patient while a first copy
 * streams, and strict once failover depends on it. */
void kg_tp_set_io_timeout(struct kg_transport *t, int io_ms);
/* Cuts the connection now, both directions, without the close frame: the
 * peer sees a broken link, and a send or recv blocked on another thread
 * returns an error. t stays allocated until kg_tp_close. For abandoning a
 * peer (failover) and for failure injection. */
void kg_tp_shutdown(struct kg_transport *t);
/* Sends the orderly-close frame if the connection is healthy (bounded by
 * io_timeout_ms), then frees everything. t may be NULL. */
void kg_tp_close(struct kg_transport *t);

#endif
