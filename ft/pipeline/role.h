/*
 * What the receiving roles (standby.h, receiver.h) need from the program
 * that runs them: they decide what happens to a VM, the program owns how
 * a VM is served (signals, control socket, summary: cli/serve.c) and what
 * a stop signal means while nothing runs.
 */
#ifndef KG_ROLE_H
#define KG_ROLE_H

#include <stdbool.h>

struct vm;
struct guard;

struct role_serve {
	struct guard *guard;         /* the lease this side holds, or NULL */
	void (*started)(void *ctx);  /* once the guest is about to run */
	void *started_ctx;
};

struct role_hooks {
	/* Runs vm until it ends; returns the process exit status. */
	int (*serve)(void *ctx, struct vm *vm, const struct role_serve *s);
	/* Whether nothing runs on this side: while idle the program takes
	 * stop signals itself, calls cleanup(cleanup_ctx) (it removes images
	 * made for a VM that never ran) and exits; `serve` takes them while a
	 * VM runs. */
	void (*idle)(void *ctx, bool idle, void (*cleanup)(void *),
		     void *cleanup_ctx);
	void *ctx;
};

#endif
