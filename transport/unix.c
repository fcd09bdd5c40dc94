/*
 * The unix backend: the tcp backend's behaviour over AF_UNIX stream
 * sockets, for two kagami processes on one host. The socket file is mode
 * 0600 (set with fchmod before bind, which Linux applies to the file it
 * creates; unlike umask() that is not process-wide, so other threads'
 * files are unaffected). A stale socket file (nothing accepts on it) is
 * replaced; a live one is "address in use".
 */
#include "link.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static void un_addr(const struct kg_tp_addr *a, struct sockaddr_un *sun)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, a->path, strlen(a->path) + 1);
}

/* True if something accepts connections on the socket file at path. */
static bool socket_alive(const struct sockaddr_un *sun)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return true; /* cannot tell: do not remove it */
	int r = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	int err = errno;
	close(fd);
	return r == 0 || err != ECONNREFUSED;
}

static int unix_listen(struct kg_tp_listener *l, struct kg_err *e)
{
	struct sockaddr_un sun;
	un_addr(&l->addr, &sun);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return kg_errno(e, "listen unix:%s: socket", l->addr.path);
	if (fchmod(fd, 0600) < 0) {
		kg_errno(e, "listen unix:%s: fchmod", l->addr.path);
		close(fd);
		return -1;
	}
	int r = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	if (r < 0 && errno == EADDRINUSE) {
		struct stat st;
		if (lstat(l->addr.path, &st) == 0 && S_ISSOCK(st.st_mode) &&
		    !socket_alive(&sun) && unlink(l->addr.path) == 0)
			r = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
		else
			errno = EADDRINUSE;
	}
	if (r < 0 || listen(fd, 16) < 0) {
		kg_errno(e, "listen unix:%s", l->addr.path);
		close(fd);
		return -1;
	}
	snprintf(l->name, sizeof(l->name), "unix:%s", l->addr.path);
	l->fd = fd;
	return 0;
}

/* "unix:PATH (pid N)": the peer has no address of its own. */
static void peer_name(int fd, const char *path, char *buf, size_t n)
{
	struct ucred c;
	socklen_t sl = sizeof(c);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c, &sl) == 0)
		snprintf(buf, n, "unix:%s (pid %d)", path, (int)c.pid);
	else
		snprintf(buf, n, "unix:%s", path);
}

static int unix_accept(struct kg_tp_listener *l, struct kg_link **out,
		       struct kg_err *e)
{
	int fd = kg_fd_accept(l, NULL, e);
	if (fd < 0)
		return -1;
	char peer[160];
	peer_name(fd, l->addr.path, peer, sizeof(peer));
	*out = kg_fd_link_new(fd, peer, e);
	return *out ? 0 : -1;
}

static void unix_unlisten(struct kg_tp_listener *l)
{
	close(l->fd);
	unlink(l->addr.path);
}

static int unix_connect(const struct kg_tp_addr *a, const struct kg_tp_opts *o,
			struct kg_link **out, struct kg_err *e)
{
	struct sockaddr_un sun;
	un_addr(a, &sun);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return kg_errno(e, "connect unix:%s: socket", a->path);
	int r = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	if (r < 0 && errno == EAGAIN) {
		/* The listener's backlog is full: wait for room. */
		int w = kg_fd_wait(fd, POLLOUT, o->connect_timeout_ms);
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		if (w == 0) {
			close(fd);
			return kg_errk(e, KG_ERR_TIMEOUT,
				       "connect unix:%s: no answer within %d ms",
				       a->path, o->connect_timeout_ms);
		}
		if (w < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
			soerr = errno;
		errno = soerr;
		r = soerr ? -1 : 0;
	}
	if (r < 0) {
		kg_errno(e, "connect unix:%s", a->path);
		close(fd);
		return -1;
	}
	char peer[160];
	peer_name(fd, a->path, peer, sizeof(peer));
	*out = kg_fd_link_new(fd, peer, e);
	return *out ? 0 : -1;
}

const struct kg_tp_backend kg_tp_unix = {
	.scheme = "unix",
	.listen = unix_listen,
	.accept = unix_accept,
	.unlisten = unix_unlisten,
	.connect = unix_connect,
};
