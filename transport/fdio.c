/*
 * A link over a connected stream socket (tcp and unix). The socket is
 * non-blocking and every wait is a poll() with a timeout, so a peer that
 * stops reading or writing is an error after io_timeout_ms, never a hang.
 * Writes use sendmsg(MSG_NOSIGNAL): a peer gone away is EPIPE, not a
 * SIGPIPE that kills the process.
 */
#include "link.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct fd_link {
	struct kg_link base;
	int fd;
};

long long kg_tp_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int kg_fd_wait(int fd, short events, int timeout_ms)
{
	long long deadline = timeout_ms < 0 ? 0 : kg_tp_now_ms() + timeout_ms;
	for (;;) {
		int left = -1;
		if (timeout_ms >= 0) {
			long long l = deadline - kg_tp_now_ms();
			left = l < 0 ? 0 : (int)l;
		}
		struct pollfd p = { .fd = fd, .events = events };
		int n = poll(&p, 1, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		return n > 0;
	}
}

static int fd_send(struct kg_link *l, const struct iovec *iov, int iovcnt,
		   const size_t *frame_len, size_t nframes, int timeout_ms,
		   struct kg_err *e)
{
	(void)frame_len;
	(void)nframes;
	struct fd_link *f = (struct fd_link *)l;
	/* A private copy: short writes advance it. */
	struct iovec stackv[64];
	struct iovec *v = stackv;
	if (iovcnt > 64) {
		v = malloc(sizeof(*v) * (size_t)iovcnt);
		if (!v)
			return kg_errk(e, KG_ERR_NOMEM, "send: out of memory");
	}
	memcpy(v, iov, sizeof(*v) * (size_t)iovcnt);
	int i = 0, r = 0;
	while (i < iovcnt) {
		if (v[i].iov_len == 0) {
			i++;
			continue;
		}
		struct msghdr m = { .msg_iov = v + i,
				    .msg_iovlen = (size_t)(iovcnt - i < IOV_MAX ? iovcnt - i : IOV_MAX) };
		ssize_t n = sendmsg(f->fd, &m, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int w = kg_fd_wait(f->fd, POLLOUT, timeout_ms);
			if (w < 0) {
				r = kg_errno(e, "send: poll");
				break;
			}
			if (w == 0) {
				r = kg_errk(e, KG_ERR_TIMEOUT,
					    "send: no progress for %d ms (peer not reading)",
					    timeout_ms);
				break;
			}
			continue;
		}
		if (n < 0) {
			r = kg_errno(e, "send");
			break;
		}
		size_t done = (size_t)n;
		while (i < iovcnt && done >= v[i].iov_len)
			done -= v[i++].iov_len;
		if (i < iovcnt) {
			v[i].iov_base = (char *)v[i].iov_base + done;
			v[i].iov_len -= done;
		}
	}
	if (v != stackv)
		free(v);
	return r;
}

static int fd_recv(struct kg_link *l, void *buf, size_t n, int timeout_ms,
		   size_t *got, struct kg_err *e)
{
	struct fd_link *f = (struct fd_link *)l;
	size_t have = 0;
	*got = 0;
	while (have < n) {
		ssize_t r = recv(f->fd, (char *)buf + have, n - have, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int w = kg_fd_wait(f->fd, POLLIN, timeout_ms);
			if (w < 0)
				return kg_errno(e, "receive: poll");
			if (w == 0)
				return kg_errk(e, KG_ERR_TIMEOUT,
					       "no data for %d ms (peer stalled or dead)",
					       timeout_ms);
			continue;
		}
		if (r < 0)
			return kg_errno(e, "receive");
		if (r == 0) {
			*got = have;
			return 0;
		}
		have += (size_t)r;
	}
	*got = have;
	return 1;
}

static void fd_shutdown(struct kg_link *l)
{
	shutdown(((struct fd_link *)l)->fd, SHUT_RDWR);
}

static void fd_destroy(struct kg_link *l)
{
	struct fd_link *f = (struct fd_link *)l;
	close(f->fd);
	free(f);
}

static const struct kg_link_ops fd_ops = {
	.send = fd_send,
	.recv = fd_recv,
	.shutdown = fd_shutdown,
	.destroy = fd_destroy,
};

struct kg_link *kg_fd_link_new(int fd, const char *peer, struct kg_err *e)
{
	struct fd_link *f = calloc(1, sizeof(*f));
	if (!f) {
		close(fd);
		kg_errk(e, KG_ERR_NOMEM, "%s: out of memory", peer);
		return NULL;
	}
	f->base.ops = &fd_ops;
	snprintf(f->base.peer, sizeof(f->base.peer), "%s", peer);
	f->fd = fd;
	return &f->base;
}

int kg_fd_accept(struct kg_tp_listener *l, struct sockaddr_storage *ss,
		 struct kg_err *e)
{
	for (;;) {
		int w = kg_fd_wait(l->fd, POLLIN, l->opts.accept_timeout_ms);
		if (w < 0)
			return kg_errno(e, "accept %s: poll", l->name);
		if (w == 0)
			return kg_errk(e, KG_ERR_TIMEOUT,
				       "accept %s: no peer within %d ms", l->name,
				       l->opts.accept_timeout_ms);
		socklen_t sl = sizeof(*ss);
		int fd = accept4(l->fd, (struct sockaddr *)ss, ss ? &sl : NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0 && (errno == EINTR || errno == EAGAIN ||
			       errno == ECONNABORTED))
			continue;
		if (fd < 0)
			return kg_errno(e, "accept %s", l->name);
		return fd;
	}
}
