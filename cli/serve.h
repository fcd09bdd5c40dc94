/*
 * Running a built VM to its end, shared by run, restore and receive: the
 * signal thread (SIGINT/SIGTERM/SIGHUP and --timeout become stop
 * requests), the control socket with the VM commands (snapshot, migrate,
 * storage-migrate), the exit status and the summary.
 */
#ifndef KG_SERVE_H
#define KG_SERVE_H

#include <signal.h>
#include <stdbool.h>

#include "control.h"

struct vm;

struct serve_opts {
	const char *name;          /* "kagami run": prefixes errors */
	const char *control_path;  /* NULL: no control socket */
	double timeout_s;          /* 0: none */
	bool summary;
	/* Called once the control socket is up, just before the vCPUs
	 * start (receive reports RUNNING here); may be NULL. */
	void (*started)(void *ctx);
	void *ctx;
};

/* Blocks the stop signals in the calling thread (before any other thread
 * exists, so that only the signal thread takes them); *old to restore. */
void serve_block_signals(sigset_t *old);
/* Runs vm to its end; returns the exit status (see 'kagami run --help'). */
int serve_vm(struct vm *vm, const struct serve_opts *o);

/* The commands every running VM's control socket adds to the built-ins. */
extern const struct control_cmd vm_commands[];

/* cmd_migrate.c: the migrate job. */
int ctl_migrate(struct control_call *call, struct kg_err *e);

#endif
