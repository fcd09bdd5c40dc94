/*
 * The tcp backend (the default). Socket options and why:
 * - TCP_NODELAY: a batch is one writev; Nagle would hold its tail back
 *   waiting for an ACK, adding up to 40 ms to an epoch's last frame.
 * - SO_SNDBUF/SO_RCVBUF 4 MiB, set before listen/connect so the window
 *   scale is negotiated for them: a page batch fits in flight on a fast
 *   link (the kernel caps them at net.core.[rw]mem_max).
 * - SO_KEEPALIVE with 5 s idle, 1 s interval, 3 probes, and
 *   TCP_USER_TIMEOUT: a peer that died silently (power loss, cut cable)
 *   is noticed in seconds even on an idle connection, which is what a
 *   failover decision needs.
 */
#include "link.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define TCP_BUF_BYTES (4 << 20)
#define KEEPIDLE_S 5
#define KEEPINTVL_S 1
#define KEEPCNT 3

static void set_int(int fd, int level, int opt, int v)
{
	/* Best effort: a kernel without an option still gives a working
	 * connection, only a slower or less watchful one. */
	(void)setsockopt(fd, level, opt, &v, sizeof(v));
}

static void set_buffers(int fd)
{
	set_int(fd, SOL_SOCKET, SO_SNDBUF, TCP_BUF_BYTES);
	set_int(fd, SOL_SOCKET, SO_RCVBUF, TCP_BUF_BYTES);
}

static void set_conn_opts(int fd, int io_timeout_ms)
{
	set_int(fd, IPPROTO_TCP, TCP_NODELAY, 1);
	set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
	set_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, KEEPIDLE_S);
	set_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, KEEPINTVL_S);
	set_int(fd, IPPROTO_TCP, TCP_KEEPCNT, KEEPCNT);
	/* Unacknowledged data older than this kills the connection. */
	set_int(fd, IPPROTO_TCP, TCP_USER_TIMEOUT,
		io_timeout_ms > 0 ? io_timeout_ms : 10000);
}

/* "tcp:1.2.3.4:5" or "tcp:[::1]:5". */
static void sa_name(const struct sockaddr *sa, char *buf, size_t n)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)sa;
		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		port = ntohs(s4->sin_port);
		snprintf(buf, n, "tcp:%s:%u", host, port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;
		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		port = ntohs(s6->sin6_port);
		snprintf(buf, n, "tcp:[%s]:%u", host, port);
	} else {
		snprintf(buf, n, "tcp:?");
	}
}

static int resolve(const struct kg_tp_addr *a, bool passive,
		   struct addrinfo **res, struct kg_err *e)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0) };
	int r = getaddrinfo(a->host, a->port, &hints, res);
	if (r != 0)
		return kg_errf(e, "tcp:%s:%s: %s", a->host, a->port,
			       r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
	return 0;
}

static int tcp_listen(struct kg_tp_listener *l, struct kg_err *e)
{
	struct addrinfo *res;
	if (resolve(&l->addr, true, &res, e) < 0)
		return -1;
	int fd = -1, err = 0;
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family,
			    ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			err = errno;
			continue;
		}
		set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1);
		set_buffers(fd); /* inherited by accepted sockets */
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 16) == 0)
			break;
		err = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		errno = err;
		return kg_errno(e, "listen tcp:%s:%s", l->addr.host, l->addr.port);
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		sa_name((struct sockaddr *)&ss, l->name, sizeof(l->name));
	l->fd = fd;
	return 0;
}

static int tcp_accept(struct kg_tp_listener *l, struct kg_link **out,
		      struct kg_err *e)
{
	struct sockaddr_storage ss;
	int fd = kg_fd_accept(l, &ss, e);
	if (fd < 0)
		return -1;
	set_conn_opts(fd, l->opts.io_timeout_ms);
	char peer[160];
	sa_name((struct sockaddr *)&ss, peer, sizeof(peer));
	*out = kg_fd_link_new(fd, peer, e);
	return *out ? 0 : -1;
}

static void tcp_unlisten(struct kg_tp_listener *l)
{
	close(l->fd);
}

/* One non-blocking connect within timeout_ms: the fd, or -1 with errno. */
static int connect_one(const struct addrinfo *ai, int timeout_ms)
{
	int fd = socket(ai->ai_family,
			ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	set_buffers(fd);
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
		return fd;
	if (errno != EINPROGRESS) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	int w = kg_fd_wait(fd, POLLOUT, timeout_ms);
	int soerr = 0;
	socklen_t sl = sizeof(soerr);
	if (w == 0)
		soerr = ETIMEDOUT;
	else if (w < 0)
		soerr = errno;
	else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
		soerr = errno;
	if (soerr) {
		close(fd);
		errno = soerr;
		return -1;
	}
	return fd;
}

static int tcp_connect(const struct kg_tp_addr *a, const struct kg_tp_opts *o,
		       struct kg_link **out, struct kg_err *e)
{
	struct addrinfo *res;
	if (resolve(a, false, &res, e) < 0)
		return -1;
	int fd = -1, err = 0;
	char peer[160] = "";
	for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
		fd = connect_one(ai, o->connect_timeout_ms);
		if (fd < 0)
			err = errno;
		else
			sa_name(ai->ai_addr, peer, sizeof(peer));
	}
	freeaddrinfo(res);
	if (fd < 0) {
		if (err == ETIMEDOUT)
			return kg_errk(e, KG_ERR_TIMEOUT,
				       "connect tcp:%s:%s: no answer within %d ms",
				       a->host, a->port, o->connect_timeout_ms);
		errno = err;
		return kg_errno(e, "connect tcp:%s:%s", a->host, a->port);
	}
	set_conn_opts(fd, o->io_timeout_ms);
	*out = kg_fd_link_new(fd, peer, e);
	return *out ? 0 : -1;
}

const struct kg_tp_backend kg_tp_tcp = {
	.scheme = "tcp",
	.listen = tcp_listen,
	.accept = tcp_accept,
	.unlisten = tcp_unlisten,
	.connect = tcp_connect,
};
