/*
 * Error reporting below main(): functions return -1 (or NULL) and fill a
 * caller-provided struct kg_err with one line naming what failed, e.g.
 * "KVM_SET_SREGS: Invalid argument", and with a kind saying what sort of
 * failure it is. Nothing below main() exits or aborts, so the replication
 * layer can decide what a failure means — and it decides on the kind,
 * never on the text: a message can be reworded without changing what
 * kagami does (docs/architecture.md, "Errors").
 */
#ifndef KG_ERR_H
#define KG_ERR_H

/*
 * What sort of failure. The kind is set where the error is made, by the
 * code that knows (the transport knows a MAC mismatch is damage, not
 * silence); prefixes keep it. Decisions switch on it in one table each
 * (ft/pipeline/verdict.h, witness_accept_verdict). A new kind must be
 * placed in every table: the switches have no default, so the compiler
 * names each one.
 */
enum kg_err_kind {
	/* Not classified where it was made (kg_errf): a bug, or a failure
	 * no decision depends on. Tables treat it as "this side failed". */
	KG_ERR_UNSPECIFIED = 0,
	/* Not acceptable as given: bad arguments, options or files from the
	 * user, or input this kagami does not support (a newer format, two
	 * sides set up differently). Trying again will not help. */
	KG_ERR_INVALID,
	/* A local read, write or system call failed (errno not below). */
	KG_ERR_IO,
	/* A disk or quota is full: ENOSPC, EDQUOT. */
	KG_ERR_NO_SPACE,
	/* Out of memory: ENOMEM, or an allocation failed. */
	KG_ERR_NOMEM,
	/* Data that arrived, or was read back, fails a check: a checksum,
	 * CRC or MAC, a frame sequence number, a length or value out of
	 * range, a message or section where the protocol has none. The
	 * sender, if any, was alive: it sent bytes. */
	KG_ERR_CORRUPT,
	/* The peer could not be authenticated: anything that goes wrong in
	 * the transport's handshake (wrong or missing key, not a kagami
	 * peer, a peer that hangs up or goes silent before proving itself). */
	KG_ERR_AUTH,
	/* A wait ran out: the peer (or a listener's peers) stayed silent. */
	KG_ERR_TIMEOUT,
	/* The connection, or the way to the peer, is lost: closed, reset
	 * or cut (ECONNRESET, EPIPE, ENOTCONN), host or network unreachable
	 * (EHOSTUNREACH, ENETUNREACH). */
	KG_ERR_PEER_GONE,
	/* The peer said no: connection refused (ECONNREFUSED: nothing
	 * listens there), or it declined with a reason (ABORT). */
	KG_ERR_REFUSED,
	/* The guest did something invalid (a malformed virtqueue). */
	KG_ERR_GUEST,
};
#define KG_ERR_KINDS (KG_ERR_GUEST + 1)

/* Initialise with `struct kg_err e = { 0 };` (no message, unspecified);
 * `{ "" }` no longer compiles under -Wextra. */
struct kg_err {
	char msg[512];
	enum kg_err_kind kind;
};

/* Formats into e (may be NULL) with kind KG_ERR_UNSPECIFIED; returns -1. */
int kg_errf(struct kg_err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Formats into e (may be NULL) with the given kind; returns -1. */
int kg_errk(struct kg_err *e, enum kg_err_kind kind, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* "<what>: strerror(errno)", kind kg_err_kind_of_errno(errno); returns -1
 * and preserves errno. */
int kg_errno(struct kg_err *e, const char *what, ...)
	__attribute__((format(printf, 2, 3)));
/* Prefixes an existing message: "<prefix>: <old message>"; the kind is
 * kept. Returns -1. */
int kg_err_prefix(struct kg_err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Reclassifies e (may be NULL), for a layer that knows what any failure
 * means at its level (every failure inside the handshake is an
 * authentication failure). Returns -1. */
int kg_err_as(struct kg_err *e, enum kg_err_kind kind);

/* ECONNREFUSED: REFUSED; ENOSPC, EDQUOT: NO_SPACE; ETIMEDOUT: TIMEOUT;
 * ECONNRESET, ECONNABORTED, EPIPE, ENOTCONN, EHOSTUNREACH, ENETUNREACH,
 * ENETDOWN, EHOSTDOWN: PEER_GONE; ENOMEM, ENOBUFS: NOMEM; anything else
 * IO. */
enum kg_err_kind kg_err_kind_of_errno(int errnum);
/* "unspecified", "invalid", "io", "no-space", "nomem", "corrupt", "auth",
 * "timeout", "peer-gone", "refused", "guest"; "?" outside the enum. For
 * logs and JSON: stable names. */
const char *kg_err_kind_name(enum kg_err_kind kind);

#endif
