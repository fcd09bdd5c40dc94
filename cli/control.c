#include "control.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/clock.h"

#define CONTROL_MAX_CLIENTS 16
#define CONTROL_LINE_MAX 65536
/* A client that sends requests but does not read its answers is cut off
 * once this much is waiting for it, so it cannot stall the server. */
#define CONTROL_OUT_MAX (1u << 20)
/* A client silent this long is closed; so is the one idle longest when a
 * new client needs its slot. */
#define CONTROL_IDLE_MS 60000
/* A job's progress lines go to its client with this send timeout: a job
 * never waits on a client that stopped reading. */
#define CONTROL_JOB_SEND_MS 2000

struct client {
	int fd;
	size_t len;
	char *buf;
	char *out; /* answers not yet taken by the client */
	size_t out_len;
	uint64_t active_ns; /* the last request or accept */
};

struct control {
	char path[108];
	struct vm *vm;
	const struct control_cmd *extra;
	void *ctx;
	int listen_fd, stop_pipe[2];
	/* The one long job (control_cmd.job) and its thread. */
	pthread_mutex_t job_lock;
	pthread_t job;
	bool job_running, job_done;
	pthread_t thread;
	bool started, bound; /* bound: path is ours to unlink */
	struct client clients[CONTROL_MAX_CLIENTS];
};

static void list_commands(const struct control *c, cJSON *reply)
{
	cJSON *cmds = cJSON_AddObjectToObject(reply, "commands");
	for (const struct control_cmd *k = control_builtin; k->name; k++)
		cJSON_AddStringToObject(cmds, k->name, k->help);
	for (const struct control_cmd *k = c->extra; k && k->name; k++)
		cJSON_AddStringToObject(cmds, k->name, k->help);
}

static const struct control_cmd *lookup(const struct control *c,
					const char *name)
{
	for (const struct control_cmd *k = control_builtin; k->name; k++)
		if (!strcmp(k->name, name))
			return k;
	for (const struct control_cmd *k = c->extra; k && k->name; k++)
		if (!strcmp(k->name, name))
			return k;
	return NULL;
}

/* The reply object as the line sent: ok true, or ok false and the error. */
static char *finish_reply(cJSON *reply, int r, const struct kg_err *e)
{
	if (r < 0) {
		cJSON_Delete(reply);
		reply = cJSON_CreateObject();
		cJSON_AddBoolToObject(reply, "ok", 0);
		cJSON_AddStringToObject(reply, "error", e->msg);
		cJSON_AddStringToObject(reply, "kind",
					kg_err_kind_name(e->kind));
	} else {
		cJSON_AddBoolToObject(reply, "ok", 1);
	}
	char *text = cJSON_PrintUnformatted(reply);
	cJSON_Delete(reply);
	return text;
}

static void send_line(int fd, const char *text);

void control_event(struct control_call *call, const char *name, cJSON *ev)
{
	cJSON_AddStringToObject(ev, "event", name);
	char *text = cJSON_PrintUnformatted(ev);
	cJSON_Delete(ev);
	if (text && call->fd >= 0)
		send_line(call->fd, text);
	free(text);
}

struct job {
	struct control *c;
	const struct control_cmd *k;
	cJSON *req;
	int fd;
};

static void *job_thread(void *arg)
{
	struct job *j = arg;
	struct kg_err e = { 0 };
	struct control_call call = { j->c->vm, j->c->ctx, j->req,
				     cJSON_CreateObject(), j->fd };
	int r = j->k->fn(&call, &e);
	char *text = finish_reply(call.reply, r, &e);
	if (text)
		send_line(j->fd, text);
	free(text);
	close(j->fd);
	cJSON_Delete(j->req);
	pthread_mutex_lock(&j->c->job_lock);
	j->c->job_done = true;
	pthread_mutex_unlock(&j->c->job_lock);
	free(j);
	return NULL;
}

/* Joins a finished job; true if no job runs now. */
static bool job_reap(struct control *c, bool wait)
{
	pthread_mutex_lock(&c->job_lock);
	bool done = c->job_done;
	pthread_mutex_unlock(&c->job_lock);
	if (!c->job_running || (!done && !wait))
		return !c->job_running;
	pthread_join(c->job, NULL);
	c->job_running = false;
	c->job_done = false;
	return true;
}

/* Starts a job on the client's fd (which the job then owns): 0, or -1
 * with e set and the fd still the caller's. */
static int job_start(struct control *c, const struct control_cmd *k,
		     cJSON *req, int fd, struct kg_err *e)
{
	if (!job_reap(c, false))
		return kg_errf(e, "%s: another job is running (one at a time)",
			       k->name);
	struct timeval tv = { CONTROL_JOB_SEND_MS / 1000,
			      (CONTROL_JOB_SEND_MS % 1000) * 1000 };
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
		return kg_errno(e, "%s: the client's socket", k->name);
	struct job *j = malloc(sizeof(*j));
	if (!j)
		return kg_errf(e, "out of memory");
	*j = (struct job){ c, k, req, fd };
	int r = pthread_create(&c->job, NULL, job_thread, j);
	if (r) {
		free(j);
		errno = r;
		return kg_errno(e, "%s: pthread_create", k->name);
	}
	c->job_running = true;
	return 0;
}

/* Answers one request line: returns the malloc'd reply text, or NULL
 * when a job took the client (*taken). */
static char *handle_line(struct control *c, struct client *cl, bool *taken)
{
	const char *line = cl->buf;
	int fd = cl->fd;
	cJSON *reply = cJSON_CreateObject();
	struct kg_err e = { 0 };
	int r = -1;
	cJSON *req = cJSON_Parse(line);
	const cJSON *cmd = req ? cJSON_GetObjectItemCaseSensitive(req, "cmd")
			       : NULL;
	if (!req) {
		kg_errk(&e, KG_ERR_INVALID, "request is not valid JSON");
	} else if (!cJSON_IsString(cmd)) {
		kg_errk(&e, KG_ERR_INVALID, "request has no \"cmd\" string");
	} else {
		const struct control_cmd *k = lookup(c, cmd->valuestring);
		if (!k) {
			kg_errk(&e, KG_ERR_INVALID,
				"unknown command '%.64s' (try help)",
				cmd->valuestring);
		} else if (k->job && cl->out_len) {
			/* the job writes to the fd directly: earlier answers
			 * must not be overtaken */
			kg_errf(&e, "%s: earlier answers are still unread",
				k->name);
		} else if (k->job) {
			if (job_start(c, k, req, fd, &e) == 0) {
				cJSON_Delete(reply);
				*taken = true;
				return NULL;
			}
		} else {
			struct control_call call = { c->vm, c->ctx, req, reply,
						     fd };
			r = k->fn(&call, &e);
		}
		if (k && k->fn == control_help)
			list_commands(c, reply);
	}
	cJSON_Delete(req);
	return finish_reply(reply, r, &e);
}

static void client_close(struct client *cl)
{
	if (cl->fd >= 0)
		close(cl->fd);
	free(cl->buf);
	free(cl->out);
	*cl = (struct client){ .fd = -1 };
}

/* A job's client (a blocking fd with a send timeout): a line, or nothing
 * if the client stopped reading. */
static void send_line(int fd, const char *text)
{
	size_t n = strlen(text);
	char *line = malloc(n + 1);
	if (!line)
		return;
	memcpy(line, text, n);
	line[n] = '\n';
	for (size_t off = 0; off <= n;) {
		ssize_t w = send(fd, line + off, n + 1 - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	free(line);
}

/* Sends what the client's buffer holds, as far as its socket takes it
 * (the fd is non-blocking); closes it on an error. */
static void client_flush(struct client *cl)
{
	size_t off = 0;
	while (off < cl->out_len) {
		ssize_t w = send(cl->fd, cl->out + off, cl->out_len - off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (w <= 0) {
			client_close(cl);
			return;
		}
		off += (size_t)w;
	}
	memmove(cl->out, cl->out + off, cl->out_len - off);
	cl->out_len -= off;
}

/* Queues one answer line; a client whose unread answers pass
 * CONTROL_OUT_MAX is closed instead. */
static void client_send(struct client *cl, const char *text)
{
	size_t n = strlen(text);
	if (cl->out_len + n + 1 > CONTROL_OUT_MAX) {
		client_close(cl);
		return;
	}
	if (!cl->out && !(cl->out = malloc(CONTROL_OUT_MAX))) {
		client_close(cl);
		return;
	}
	memcpy(cl->out + cl->out_len, text, n);
	cl->out[cl->out_len + n] = '\n';
	cl->out_len += n + 1;
	client_flush(cl);
}

/* Reads what is there; answers each complete line. */
static void client_read(struct control *c, struct client *cl)
{
	if (!cl->buf && !(cl->buf = malloc(CONTROL_LINE_MAX))) {
		client_close(cl);
		return;
	}
	ssize_t n = read(cl->fd, cl->buf + cl->len, CONTROL_LINE_MAX - cl->len);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		client_close(cl);
		return;
	}
	cl->len += (size_t)n;
	cl->active_ns = kg_now_ns();
	char *nl;
	while (cl->fd >= 0 && (nl = memchr(cl->buf, '\n', cl->len))) {
		*nl = 0;
		bool taken = false;
		char *reply = handle_line(c, cl, &taken);
		if (taken) {
			/* The job answers and closes; the rest of the
			 * client's input is dropped with it. */
			cl->fd = -1;
			client_close(cl);
			return;
		}
		if (reply)
			client_send(cl, reply);
		free(reply);
		size_t used = (size_t)(nl - cl->buf) + 1;
		memmove(cl->buf, nl + 1, cl->len - used);
		cl->len -= used;
	}
	if (cl->fd >= 0 && cl->len == CONTROL_LINE_MAX) {
		client_send(cl, "{\"ok\":false,\"error\":\"request line "
				"longer than 64 KiB\"}");
		client_close(cl);
	}
}

/* A slot for a new client: a free one, or the one idle longest (told
 * why); -1 when every client is in the middle of a request. */
static int take_slot(struct control *c)
{
	int best = -1;
	for (int i = 0; i < CONTROL_MAX_CLIENTS; i++) {
		struct client *cl = &c->clients[i];
		if (cl->fd < 0)
			return i;
		if (cl->len == 0 && (best < 0 || cl->active_ns <
					 c->clients[best].active_ns))
			best = i;
	}
	if (best >= 0) {
		client_send(&c->clients[best], "{\"ok\":false,\"error\":"
			    "\"closed: idle while another client needed the "
			    "slot\"}");
		client_close(&c->clients[best]);
	}
	return best;
}

static void accept_client(struct control *c)
{
	int fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	int slot = take_slot(c);
	if (slot < 0) {
		static const char busy[] = "{\"ok\":false,\"error\":\"too many "
					   "control clients\"}\n";
		ssize_t w = send(fd, busy, sizeof(busy) - 1,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		(void)w;
		close(fd);
		return;
	}
	c->clients[slot] = (struct client){ .fd = fd,
					    .active_ns = kg_now_ns() };
}

static void *control_thread(void *arg)
{
	struct control *c = arg;
	for (;;) {
		struct pollfd p[2 + CONTROL_MAX_CLIENTS];
		p[0] = (struct pollfd){ c->stop_pipe[0], POLLIN, 0 };
		p[1] = (struct pollfd){ c->listen_fd, POLLIN, 0 };
		uint64_t now = kg_now_ns();
		for (int i = 0; i < CONTROL_MAX_CLIENTS; i++) {
			struct client *cl = &c->clients[i];
			if (cl->fd >= 0 &&
			    now - cl->active_ns > CONTROL_IDLE_MS * 1000000ull)
				client_close(cl);
			/* Busy reading a client's answers: no new requests
			 * from it until they are taken. */
			short ev = cl->out_len ? POLLOUT : POLLIN;
			p[2 + i] = (struct pollfd){ cl->fd, ev, 0 };
		}
		if (poll(p, 2 + CONTROL_MAX_CLIENTS, 1000) < 0) {
			if (errno == EINTR)
				continue;
			return NULL;
		}
		if (p[0].revents)
			return NULL;
		if (p[1].revents)
			accept_client(c);
		for (int i = 0; i < CONTROL_MAX_CLIENTS; i++) {
			struct client *cl = &c->clients[i];
			if (p[2 + i].fd < 0 || !p[2 + i].revents ||
			    cl->fd != p[2 + i].fd)
				continue;
			if (p[2 + i].revents & POLLOUT)
				client_flush(cl);
			else
				client_read(c, cl);
		}
	}
}

/* Whether a kagami answers on the socket at path (a live owner), or it is
 * stale: only then may it be replaced. */
static bool socket_live(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	strcpy(a.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return true; /* cannot tell: do not take it */
	int r = connect(fd, (struct sockaddr *)&a, sizeof(a));
	int err = errno;
	close(fd);
	return r == 0 || (err != ECONNREFUSED && err != ENOENT);
}

/* Binds a listening socket at path with mode 0600 without touching the
 * process's umask: bound inside a private directory next to path, made
 * 0600 there, then renamed into place. */
static int bind_private(int fd, const char *path, struct kg_err *e)
{
	char dir[4096], tmp[4200];
	const char *slash = strrchr(path, '/');
	int dlen = slash ? (int)(slash - path) : 0;
	snprintf(dir, sizeof(dir), "%.*s%s.kagami-ctl.XXXXXX", dlen, path,
		 slash ? "/" : "");
	if (!mkdtemp(dir))
		return kg_errno(e, "control socket %s: mkdtemp", path);
	snprintf(tmp, sizeof(tmp), "%s/s", dir);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int rc = -1;
	if (strlen(tmp) >= sizeof(a.sun_path)) {
		kg_errf(e, "control socket %s: path too long to bind safely",
			path);
		goto out;
	}
	strcpy(a.sun_path, tmp);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		kg_errno(e, "control socket %s: bind", path);
		goto out;
	}
	if (chmod(tmp, 0600) < 0 || rename(tmp, path) < 0) {
		kg_errno(e, "control socket %s", path);
		unlink(tmp);
		goto out;
	}
	rc = 0;
out:
	rmdir(dir);
	return rc;
}

struct control *control_open(const char *path, struct vm *vm,
			     const struct control_cmd *extra, void *ctx,
			     struct kg_err *e)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct stat st;
	if (strlen(path) >= sizeof(a.sun_path)) {
		kg_errf(e, "control socket %s: path longer than %zu bytes", path,
			sizeof(a.sun_path) - 1);
		return NULL;
	}
	struct control *c = calloc(1, sizeof(*c));
	if (!c) {
		kg_errf(e, "out of memory");
		return NULL;
	}
	c->vm = vm;
	c->extra = extra;
	c->ctx = ctx;
	pthread_mutex_init(&c->job_lock, NULL);
	c->stop_pipe[0] = c->stop_pipe[1] = -1;
	for (int i = 0; i < CONTROL_MAX_CLIENTS; i++)
		c->clients[i].fd = -1;
	strcpy(c->path, path);
	c->listen_fd = -1;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			kg_errf(e, "control socket %s: exists and is not a "
				"socket", path);
			goto fail;
		}
		if (socket_live(path)) {
			kg_errf(e, "control socket %s: in use by a running "
				"kagami", path);
			goto fail;
		}
		/* stale, from a dead run: replaced by the rename below */
	}
	c->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->listen_fd < 0) {
		kg_errno(e, "control socket: socket");
		goto fail;
	}
	if (bind_private(c->listen_fd, path, e) < 0)
		goto fail;
	int r;
	c->bound = true;
	if (listen(c->listen_fd, 8) < 0) {
		kg_errno(e, "control socket %s: listen", path);
		goto fail;
	}
	if (pipe2(c->stop_pipe, O_CLOEXEC) < 0) {
		kg_errno(e, "control socket: pipe2");
		goto fail;
	}
	r = pthread_create(&c->thread, NULL, control_thread, c);
	if (r) {
		errno = r;
		kg_errno(e, "control socket: pthread_create");
		goto fail;
	}
	c->started = true;
	return c;
fail:
	control_close(c);
	return NULL;
}

void control_close(struct control *c)
{
	if (!c)
		return;
	if (c->started) {
		ssize_t w = write(c->stop_pipe[1], "x", 1);
		(void)w;
		pthread_join(c->thread, NULL);
	}
	/* A job in flight ends with the VM (it checks for a stopping VM). */
	job_reap(c, true);
	pthread_mutex_destroy(&c->job_lock);
	for (int i = 0; i < CONTROL_MAX_CLIENTS; i++)
		client_close(&c->clients[i]);
	for (int i = 0; i < 2; i++)
		if (c->stop_pipe[i] >= 0)
			close(c->stop_pipe[i]);
	if (c->listen_fd >= 0)
		close(c->listen_fd);
	if (c->bound)
		unlink(c->path);
	free(c);
}
