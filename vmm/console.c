#include "console.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define OUT_BUF 4096

struct console {
	struct console_spec spec;
	pthread_mutex_t lock;
	int out_fd;    /* stdout or the file; -1 for unix */
	int in_fd;     /* terminal input, or -1 */
	int listen_fd; /* unix */
	int client_fd; /* unix, -1 when none connected */
	int stop_pipe[2];
	bool thread_started;
	pthread_t thread;
	console_rx_fn rx;
	console_quit_fn quit;
	void *opaque;
	bool raw;             /* stdin's terminal is in raw mode ... */
	struct termios saved; /* ... and this is how it was */
	bool escape;          /* Ctrl-A seen, its command key next */
	size_t out_len;
	uint8_t out[OUT_BUF];
	/* unix: ring of recent output while no client is connected */
	uint8_t *backlog;
	size_t backlog_start, backlog_len;
};

int console_parse(const char *s, struct console_spec *spec, struct kg_err *e)
{
	memset(spec, 0, sizeof(*spec));
	const char *path = NULL;
	if (!strcmp(s, "stdio")) {
		spec->kind = CONSOLE_STDIO;
		return 0;
	}
	if (!strcmp(s, "none")) {
		spec->kind = CONSOLE_NONE;
		return 0;
	}
	if (!strncmp(s, "file:", 5)) {
		spec->kind = CONSOLE_FILE;
		path = s + 5;
	} else if (!strncmp(s, "unix:", 5)) {
		spec->kind = CONSOLE_UNIX;
		path = s + 5;
	} else {
		return kg_errf(e, "bad console '%s': expected stdio, none, "
			       "file:PATH or unix:PATH", s);
	}
	if (!*path)
		return kg_errf(e, "bad console '%s': empty path", s);
	if (strlen(path) >= sizeof(spec->path))
		return kg_errf(e, "bad console '%s': path longer than %zu "
			       "bytes", s, sizeof(spec->path) - 1);
	strcpy(spec->path, path);
	return 0;
}

static void write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* a vanished reader must not stop the guest */
		p += w;
		n -= (size_t)w;
	}
}

static void backlog_add(struct console *c, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		size_t pos = (c->backlog_start + c->backlog_len) %
			     CONSOLE_BACKLOG;
		c->backlog[pos] = p[i];
		if (c->backlog_len < CONSOLE_BACKLOG)
			c->backlog_len++;
		else
			c->backlog_start = (c->backlog_start + 1) %
					   CONSOLE_BACKLOG;
	}
}

/* Called with the lock held. */
static void flush_locked(struct console *c)
{
	if (!c->out_len)
		return;
	if (c->spec.kind == CONSOLE_UNIX) {
		if (c->client_fd >= 0)
			write_all(c->client_fd, c->out, c->out_len);
		else
			backlog_add(c, c->out, c->out_len);
	} else if (c->out_fd >= 0) {
		write_all(c->out_fd, c->out, c->out_len);
	}
	c->out_len = 0;
}

void console_write(struct console *c, const uint8_t *data, size_t n)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	while (n) {
		size_t room = OUT_BUF - c->out_len, take = n < room ? n : room;
		memcpy(c->out + c->out_len, data, take);
		c->out_len += take;
		data += take;
		n -= take;
		if (c->out_len == OUT_BUF)
			flush_locked(c);
	}
	pthread_mutex_unlock(&c->lock);
}

void console_flush(struct console *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	flush_locked(c);
	pthread_mutex_unlock(&c->lock);
}

/* Offers input to the device until it is all taken or we are stopping. */
static void deliver(struct console *c, const uint8_t *p, size_t n)
{
	while (n) {
		size_t took = c->rx ? c->rx(c->opaque, p, n) : n;
		p += took;
		n -= took;
		if (n) {
			struct pollfd s = { c->stop_pipe[0], POLLIN, 0 };
			if (poll(&s, 1, 1) > 0)
				return;
		}
	}
}

#define ESCAPE_KEY 0x01 /* Ctrl-A */

static const char escape_help[] =
	"\r\nkagami console keys:\r\n"
	"  C-a x    quit (stop the VM)\r\n"
	"  C-a C-a  send C-a to the guest\r\n"
	"  C-a h    this help\r\n";

/* Terminal input: the escape key's commands are kagami's, the rest the
 * guest's. */
static void terminal_input(struct console *c, const uint8_t *p, size_t n)
{
	size_t start = 0;
	for (size_t i = 0; i < n; i++) {
		if (!c->escape) {
			if (p[i] != ESCAPE_KEY)
				continue;
			deliver(c, p + start, i - start);
			start = i + 1;
			c->escape = true;
			continue;
		}
		c->escape = false;
		start = i + 1;
		if (p[i] == ESCAPE_KEY) {
			deliver(c, p + i, 1);
		} else if (p[i] == 'x' || p[i] == 'X') {
			if (c->quit)
				c->quit(c->opaque);
			return;
		} else if (p[i] == 'h' || p[i] == '?') {
			write_all(STDOUT_FILENO, (const uint8_t *)escape_help,
				  sizeof(escape_help) - 1);
		}
	}
	deliver(c, p + start, n - start);
}

static void accept_client(struct console *c)
{
	/* Non-blocking: a client that does not read loses output instead of
	 * stalling the vCPU that writes it. */
	int fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	pthread_mutex_lock(&c->lock);
	if (c->client_fd >= 0) {
		pthread_mutex_unlock(&c->lock);
		static const char busy[] = "kagami: console already in use\n";
		write_all(fd, (const uint8_t *)busy, sizeof(busy) - 1);
		close(fd);
		return;
	}
	c->client_fd = fd;
	size_t first = CONSOLE_BACKLOG - c->backlog_start;
	if (first > c->backlog_len)
		first = c->backlog_len;
	write_all(fd, c->backlog + c->backlog_start, first);
	write_all(fd, c->backlog, c->backlog_len - first);
	c->backlog_start = c->backlog_len = 0;
	pthread_mutex_unlock(&c->lock);
}

static void *input_thread(void *arg)
{
	struct console *c = arg;
	uint8_t buf[256];
	for (;;) {
		struct pollfd p[3] = { { c->stop_pipe[0], POLLIN, 0 },
				       { -1, POLLIN, 0 },
				       { -1, POLLIN, 0 } };
		p[1].fd = c->spec.kind == CONSOLE_UNIX ? c->listen_fd : c->in_fd;
		pthread_mutex_lock(&c->lock);
		p[2].fd = c->client_fd;
		pthread_mutex_unlock(&c->lock);
		if (poll(p, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			return NULL;
		}
		if (p[0].revents)
			return NULL;
		if (p[1].revents && c->spec.kind == CONSOLE_UNIX) {
			accept_client(c);
		} else if (p[1].revents) {
			ssize_t n = read(c->in_fd, buf, sizeof(buf));
			if (n <= 0)
				c->in_fd = -1; /* EOF: no more input */
			else if (c->raw)
				terminal_input(c, buf, (size_t)n);
			else
				deliver(c, buf, (size_t)n);
		}
		if (p[2].revents) {
			ssize_t n = read(p[2].fd, buf, sizeof(buf));
			if (n <= 0) {
				pthread_mutex_lock(&c->lock);
				close(c->client_fd);
				c->client_fd = -1;
				pthread_mutex_unlock(&c->lock);
			} else {
				deliver(c, buf, (size_t)n);
			}
		}
	}
}

static int open_unix(struct console *c, struct kg_err *e)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct stat st;
	strcpy(a.sun_path, c->spec.path);
	if (lstat(c->spec.path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return kg_errf(e, "console %s: exists and is not a "
				       "socket", c->spec.path);
		unlink(c->spec.path); /* a stale socket from a dead run */
	}
	c->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->listen_fd < 0)
		return kg_errno(e, "console socket");
	mode_t old = umask(0177); /* socket mode 0600 */
	int r = bind(c->listen_fd, (struct sockaddr *)&a, sizeof(a));
	umask(old);
	if (r < 0)
		return kg_errno(e, "console %s: bind", c->spec.path);
	if (listen(c->listen_fd, 4) < 0)
		return kg_errno(e, "console %s: listen", c->spec.path);
	c->backlog = malloc(CONSOLE_BACKLOG);
	if (!c->backlog)
		return kg_errf(e, "console: out of memory");
	return 0;
}

/* Raw input for the guest; output keeps the terminal's newline
 * translation, which guests that print bare \n rely on. */
static int make_raw(struct console *c, struct kg_err *e)
{
	if (tcgetattr(STDIN_FILENO, &c->saved) < 0)
		return kg_errno(e, "console: tcgetattr");
	struct termios t = c->saved;
	t.c_iflag &= ~(unsigned)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR |
				 IGNCR | ICRNL | IXON);
	t.c_lflag &= ~(unsigned)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
	t.c_cflag &= ~(unsigned)(CSIZE | PARENB);
	t.c_cflag |= CS8;
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) < 0)
		return kg_errno(e, "console: tcsetattr");
	c->raw = true;
	return 0;
}

struct console *console_open(const struct console_spec *spec,
			     console_rx_fn rx, console_quit_fn quit,
			     void *opaque, struct kg_err *e)
{
	struct console *c = calloc(1, sizeof(*c));
	if (!c) {
		kg_errf(e, "console: out of memory");
		return NULL;
	}
	c->spec = *spec;
	c->rx = rx;
	c->quit = quit;
	c->opaque = opaque;
	c->out_fd = c->in_fd = c->listen_fd = c->client_fd = -1;
	c->stop_pipe[0] = c->stop_pipe[1] = -1;
	pthread_mutex_init(&c->lock, NULL);
	switch (spec->kind) {
	case CONSOLE_NONE:
		return c;
	case CONSOLE_STDIO:
		c->out_fd = STDOUT_FILENO;
		if (isatty(STDIN_FILENO)) {
			c->in_fd = STDIN_FILENO;
			if (make_raw(c, e) < 0)
				goto fail;
		}
		break;
	case CONSOLE_FILE:
		c->out_fd = open(spec->path,
				 O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (c->out_fd < 0) {
			kg_errno(e, "console %s", spec->path);
			goto fail;
		}
		break;
	case CONSOLE_UNIX:
		if (open_unix(c, e) < 0)
			goto fail;
		break;
	}
	if (c->in_fd >= 0 || c->listen_fd >= 0) {
		if (pipe2(c->stop_pipe, O_CLOEXEC) < 0) {
			kg_errno(e, "console: pipe2");
			goto fail;
		}
		int r = pthread_create(&c->thread, NULL, input_thread, c);
		if (r) {
			errno = r;
			kg_errno(e, "console: pthread_create");
			goto fail;
		}
		c->thread_started = true;
	}
	return c;
fail:
	console_close(c);
	return NULL;
}

void console_close(struct console *c)
{
	if (!c)
		return;
	console_flush(c);
	if (c->thread_started) {
		ssize_t w = write(c->stop_pipe[1], "x", 1);
		(void)w;
		pthread_join(c->thread, NULL);
	}
	for (int i = 0; i < 2; i++)
		if (c->stop_pipe[i] >= 0)
			close(c->stop_pipe[i]);
	if (c->spec.kind == CONSOLE_FILE && c->out_fd >= 0)
		close(c->out_fd);
	if (c->client_fd >= 0)
		close(c->client_fd);
	if (c->listen_fd >= 0) {
		close(c->listen_fd);
		unlink(c->spec.path);
	}
	if (c->raw)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &c->saved);
	free(c->backlog);
	pthread_mutex_destroy(&c->lock);
	free(c);
}
