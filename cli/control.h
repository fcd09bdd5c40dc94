/*
 * The control socket: `kagami run --control PATH` listens on a unix socket
 * (mode 0600) speaking JSON lines. Each request is one JSON object with a
 * "cmd" member; each answer is one line, {"ok":true,...} or
 * {"ok":false,"error":"...","kind":"..."} (kind: kg_err_kind_name, e.g.
 * "corrupt", "timeout", "invalid"). Commands are registered in a table so
 * later modes add theirs without touching the server.
 */
#ifndef KG_CONTROL_H
#define KG_CONTROL_H

#include <stdbool.h>

#include <cjson/cJSON.h>

#include "base/err.h"

struct vm;
struct control;

/* One request being answered. */
struct control_call {
	struct vm *vm;
	void *ctx;         /* control_open's ctx: the mode's own state */
	const cJSON *req;  /* the request object */
	cJSON *reply;      /* the answer, filled by the handler */
	int fd;            /* the client, for control_event */
};

/* A command handler fills call->reply and returns 0, or returns -1 with e
 * set (the reply becomes {"ok":false,"error":...,"kind":...}). */
typedef int (*control_fn)(struct control_call *call, struct kg_err *e);

struct control_cmd {
	const char *name;
	const char *help;
	control_fn fn;
	/* A long job (migrate, storage-migrate): it runs on its own thread,
	 * so the socket keeps answering status meanwhile; one job at a
	 * time. Its client receives control_event lines, then the reply. */
	bool job;
};

/* Sends one progress line to the caller before the reply: the event
 * object gets "event":name and is consumed. Jobs only. */
void control_event(struct control_call *call, const char *name, cJSON *ev);

/* The built-in commands: status, pause, resume, quit, help. */
extern const struct control_cmd control_builtin[];

/* `extra` (NULL-terminated, may be NULL) adds a mode's own commands;
 * their handlers get ctx in call->ctx. */
struct control *control_open(const char *path, struct vm *vm,
			     const struct control_cmd *extra, void *ctx,
			     struct kg_err *e);
void control_close(struct control *c);

/* cmd_storage.c: `storage-migrate NEWPATH [--disk N]`, a job. */
int cmd_storage_migrate(struct control_call *call, struct kg_err *e);

#endif
