/*
 * Inside transport/: the ops tables. A backend (tcp, unix, rdma) turns an
 * address into a link, a reliable ordered byte stream to one peer; the
 * fault layer wraps any link; frame.c and auth.c speak the frame format
 * over any link. So framing, authentication and fault injection are
 * written once for every backend.
 */
#ifndef KG_TRANSPORT_LINK_H
#define KG_TRANSPORT_LINK_H

#include <sys/socket.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

#include "transport.h"

struct kg_link;

struct kg_link_ops {
	/* Sends all bytes of iov[0..iovcnt). frame_len[0..nframes) are the
	 * byte lengths of the frames they hold, in order (the fault layer
	 * acts per frame; others ignore them). Waits at most timeout_ms
	 * without progress (< 0: forever). 0 or -1. */
	int (*send)(struct kg_link *l, const struct iovec *iov, int iovcnt,
		    const size_t *frame_len, size_t nframes, int timeout_ms,
		    struct kg_err *e);
	/* Reads exactly n bytes: 1 when done, 0 at end of stream (*got bytes
	 * were read before it), -1 on error or after timeout_ms without
	 * progress. Errors do not name the peer; frame.c adds it. */
	int (*recv)(struct kg_link *l, void *buf, size_t n, int timeout_ms,
		    size_t *got, struct kg_err *e);
	/* Ends the connection in both directions now; the peer sees EOF. */
	void (*shutdown)(struct kg_link *l);
	void (*destroy)(struct kg_link *l);
};

struct kg_link {
	const struct kg_link_ops *ops;
	char peer[160]; /* "tcp:127.0.0.1:7000" */
};

struct kg_tp_listener {
	const struct kg_tp_backend *be;
	struct kg_tp_addr addr;
	struct kg_tp_opts opts; /* key and fault point into this struct */
	struct kg_tp_key key;
	struct kg_tp_fault fault;
	int fd;
	void *priv; /* the backend's */
	char name[160];
};

/* One per backend: how a connection is made. */
struct kg_tp_backend {
	const char *scheme;
	/* Binds l->addr and fills l->fd or l->priv and l->name. */
	int (*listen)(struct kg_tp_listener *l, struct kg_err *e);
	/* One connection, within l->opts.accept_timeout_ms. */
	int (*accept)(struct kg_tp_listener *l, struct kg_link **out,
		      struct kg_err *e);
	void (*unlisten)(struct kg_tp_listener *l);
	int (*connect)(const struct kg_tp_addr *a, const struct kg_tp_opts *o,
		       struct kg_link **out, struct kg_err *e);
};

extern const struct kg_tp_backend kg_tp_tcp, kg_tp_unix, kg_tp_rdma;

/* fdio.c: a link over a connected non-blocking stream socket; takes fd. */
struct kg_link *kg_fd_link_new(int fd, const char *peer, struct kg_err *e);
/* Waits for fd to become ready for events within timeout_ms (< 0:
 * forever): 1 ready, 0 timed out, -1 error (errno). EINTR restarts with
 * the time that remains. */
int kg_fd_wait(int fd, short events, int timeout_ms);

/* fdio.c: accepts one connection on l->fd within l->opts.accept_timeout_ms
 * (retrying aborted or spurious wake-ups); returns the non-blocking fd,
 * the peer's address in *ss (may be NULL), or -1 with e naming l. */
int kg_fd_accept(struct kg_tp_listener *l, struct sockaddr_storage *ss,
		 struct kg_err *e);

/* fault.c: wraps inner so that sends suffer f; takes inner only on
 * success. */
struct kg_link *kg_fault_link_new(struct kg_link *inner,
				  const struct kg_tp_fault *f,
				  struct kg_err *e);

/* Milliseconds on CLOCK_MONOTONIC. */
long long kg_tp_now_ms(void);

#endif
