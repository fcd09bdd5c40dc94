/*
 * The control socket: `kagami run --control PATH` listens on a unix socket
 * (mode 0600) speaking JSON lines. Each request is one JSON object with a
 * "cmd" member; each answer is one line, {"ok":true,...} or
 * {"ok":false,"error":"..."}. Commands are registered in a table so later
 * modes add theirs without touching the server.
 */
#ifndef KG_CONTROL_H
#define KG_CONTROL_H

#include <cjson/cJSON.h>

#include "../vmm/err.h"

struct vm;
struct control;

/* A command handler fills `reply` (an object already holding "ok") and
 * returns 0, or returns -1 with e set (the reply becomes an error). */
typedef int (*control_fn)(struct vm *vm, const cJSON *req, cJSON *reply,
			  struct kg_err *e);

struct control_cmd {
	const char *name;
	const char *help;
	control_fn fn;
};

/* The built-in commands: status, pause, resume, quit, help. */
extern const struct control_cmd control_builtin[];

/* `extra` (NULL-terminated, may be NULL) adds a mode's own commands. */
struct control *control_open(const char *path, struct vm *vm,
			     const struct control_cmd *extra,
			     struct kg_err *e);
void control_close(struct control *c);

/* `kagami ctl PATH COMMAND [KEY=VALUE...]`. */
int cmd_ctl(int argc, char **argv);

#endif
