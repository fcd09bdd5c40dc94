/*
 * Running a built VM to its end, shared by run, restore and receive: the
 * signal thread (SIGINT/SIGTERM/SIGHUP and --timeout become stop
 * requests), the control socket with the VM commands (snapshot, migrate,
 * storage-migrate), the exit status and the summary.
 */
#ifndef KG_SERVE_H
#define KG_SERVE_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>

#include "control.h"
#include "ft/pipeline/protect.h"
#include "ft/pipeline/role.h"

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
	/* Protect the VM from the start (run --replicate); NULL: not. */
	const struct protect_opts *protect;
	/* Split-brain guard: the lease held while the guest runs (run
	 * --lease, secondary --lease); NULL: none. An already started guard
	 * (the secondary's, taken before it resumes) is passed in guard. */
	const char *lease;
	const struct kg_tp_key *lease_key;
	unsigned lease_ttl_ms;
	struct guard *guard;
};

/* --console, --disk and --net, which run, restore, receive and secondary
 * share: parses arg for option opt ("console", "disk", "net") into cfg.
 * 0, or -1 after printing one line prefixed with name. */
struct vm_config;
int serve_resource_opt(const char *name, const char *opt, const char *arg,
		       struct vm_config *cfg);

/* --max-stream-memory SIZE (receive, secondary): what a peer may make
 * this side hold (ft/pipeline/incoming.h). 0, or -1 after one line. */
int serve_stream_memory_opt(const char *name, const char *arg,
			    uint64_t *out);

/* Blocks the stop signals in the calling thread (before any other thread
 * exists, so that only the signal thread takes them); *old to restore. */
void serve_block_signals(sigset_t *old);
/* Before a VM runs (receive and secondary waiting for a stream), the
 * stop signals are blocked already: this thread takes them, calls
 * cleanup (removes images created for the incoming VM) and exits the
 * process with 128+N — nothing runs yet, so there is nothing to stop in
 * order. Stop it before serve_vm, which has its own. */
struct early_signals;
struct early_signals *early_signals_start(const char *name,
					  void (*cleanup)(void *ctx),
					  void *ctx);
void early_signals_stop(struct early_signals *s);
/* Runs vm to its end; returns the exit status (see 'kagami run --help'). */
int serve_vm(struct vm *vm, const struct serve_opts *o);

/* The commands every running VM's control socket adds to the built-ins. */
extern const struct control_cmd vm_commands[];

/* The control socket's context: the replication of this VM. */
struct serve_ctx {
	pthread_mutex_t lock;
	struct protect *prot;
	struct protect_opts popts;
	bool have_popts;
};

/* The receiving roles' hooks (ft/pipeline/role.h) as the CLI provides
 * them: serve a VM with serve_vm, and take stop signals while idle. */
struct serve_role {
	const char *name;
	const char *control_path;
	double timeout_s;
	bool summary;
	struct early_signals *es; /* while idle */
};
struct role_hooks serve_role_hooks(struct serve_role *r);

/* What a replicating command was told about authentication and split
 * brain: kagami refuses to run unauthenticated links or FT/HA without a
 * lease unless told so explicitly (--insecure, --no-lease), and then
 * says what that costs. */
struct link_policy {
	const char *keyfile;       /* --key */
	bool insecure;             /* --insecure */
	const char *lease;         /* --lease */
	const char *lease_keyfile; /* --lease-key */
	bool no_lease;             /* --no-lease */
	bool need_lease;           /* FT, HA, lockstep */
};
/* 0, or prints one line and returns KG_EXIT_USAGE. */
int serve_link_policy(const char *name, const struct link_policy *p);
/* What --insecure and --no-lease cost, said once the command is set up
 * (so that a usage error stays one line). */
void serve_link_warnings(const char *name, const struct link_policy *p);

/* --listen and --key of receive and secondary: loads the key, listens,
 * says where. 0, or the exit status after printing one line. */
int serve_listen(const char *name, const char *addr, const char *keyfile,
		 int io_timeout_ms, struct kg_tp_key *key,
		 struct kg_tp_listener **l);

#endif
