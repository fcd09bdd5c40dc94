/*
 * The control socket: `kagami run --control PATH` listens on a unix socket
 * (mode 0600) speaking JSON lines. Each request is one JSON object with a
 * "cmd" member; each answer is one line, {"ok":true,...} or
 * {"ok":false,"error":"...","kind":"..."} (kind: kg_err_kind_name, e.g.
 * "corrupt", "timeout", "invalid"). Commands are registered in a table so
 * later modes add theirs without touching the server.
 *
 * The code: control.c the server (clients, jobs on their own thread),
 * control_builtin.c the built-in commands, control_args.c reading a
 * request, and one control_*.c per VM command that is more than a line
 * or two (migrate, storage-migrate, protect): each reads its request and
 * calls the library that does the work. The VM's table (vm_commands) is
 * serve.c's; `kagami ctl` (cmd_ctl.c) is the client.
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
/* help's handler: the server itself adds the list of commands. */
int control_help(struct control_call *call, struct kg_err *e);

/* `extra` (NULL-terminated, may be NULL) adds a mode's own commands;
 * their handlers get ctx in call->ctx. */
struct control *control_open(const char *path, struct vm *vm,
			     const struct control_cmd *extra, void *ctx,
			     struct kg_err *e);
void control_close(struct control *c);

/*
 * Reading a request (control_args.c), as `kagami ctl` sends it:
 * positional arguments in "args", --some-key VALUE as "some_key" (numbers
 * and true/false typed, --with-storage alone as true).
 */
/* The string member name, or NULL if absent or not a string. */
const char *control_str(const struct control_call *call, const char *name);
/* How many positional arguments; the i-th if it is a string, or NULL. */
int control_npos(const struct control_call *call);
const char *control_pos(const struct control_call *call, int i);
/* Whether switch member name is given, other than as false. */
bool control_flag(const struct control_call *call, const char *name);
/* Number member name into *out (left as it is when absent): 0, or -1
 * with e "CMD: --NAME: expected a number from MIN to MAX". */
int control_num(const struct control_call *call, const char *name,
		double min, double max, double *out, struct kg_err *e);

/* The VM's commands beyond the built-ins (serve.c's vm_commands). */
/* control_migrate.c: `migrate ADDR [--downtime-limit MS] [--bandwidth
 * MBPS] [--with-storage] [--key FILE]`, a job (ft/pipeline/migrate.h). */
int ctl_migrate(struct control_call *call, struct kg_err *e);
/* control_storage.c: `storage-migrate NEWPATH [--disk N]`, a job
 * (ft/storage/storage_migrate.h). */
int ctl_storage_migrate(struct control_call *call, struct kg_err *e);
/* control_protect.c: `protection` (the replication's state) and `protect
 * --peer ADDR [--mode M] [--key FILE]` (ft/pipeline/protect.h); their
 * call->ctx is serve.h's struct serve_ctx. */
int ctl_protection(struct control_call *call, struct kg_err *e);
int ctl_protect(struct control_call *call, struct kg_err *e);

#endif
