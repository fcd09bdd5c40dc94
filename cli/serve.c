/* serve_vm: run a built VM to its end (run, restore, receive). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "serve.h"
#include "ft/pipeline/guard.h"
#include "ft/pipeline/rlink.h"
#include "ft/checkpoint/snapshot.h"
#include "vmm/size.h"
#include "vmm/vm.h"
#include "base/clock.h"

struct signal_waiter {
	struct vm *vm;
	double timeout_s; /* 0: none */
	atomic_bool done;
	int signo; /* the signal or timeout that stopped the VM, 0 if none */
};

/* Turns SIGINT/SIGTERM/SIGHUP (blocked everywhere) and the timeout into a
 * stop request, outside any signal handler. */
static void *signal_thread(void *arg)
{
	struct signal_waiter *w = arg;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR2); /* the controlling thread's wake-up */
	uint64_t deadline = w->timeout_s > 0
		? kg_now_ns() + (uint64_t)(w->timeout_s * 1e9) : 0;
	while (!atomic_load(&w->done)) {
		struct timespec slice = { 0, 100 * 1000 * 1000 };
		int sig = sigtimedwait(&set, NULL, &slice);
		if (sig == SIGUSR2)
			continue;
		/* Keep listening after a request: a later signal must still
		 * be taken from the queue (it matters if the first one raced
		 * with a guest reset). */
		if (sig > 0) {
			w->signo = sig;
			vm_request_stop(w->vm, VM_STOP_REQUEST, 128 + sig,
					"stopped by SIG%s", sigabbrev_np(sig));
		}
		if (deadline && kg_now_ns() >= deadline) {
			w->signo = -1;
			deadline = 0;
			vm_request_stop(w->vm, VM_STOP_REQUEST, KG_EXIT_TIMEOUT,
					"stopped: --timeout of %g s expired",
					w->timeout_s);
		}
	}
	return NULL;
}

static const char *reason_name(enum vm_stop_reason r)
{
	switch (r) {
	case VM_STOP_EXIT: return "guest exit";
	case VM_STOP_POWEROFF: return "power-off";
	case VM_STOP_CRASH: return "guest crash";
	case VM_STOP_ERROR: return "host error";
	case VM_STOP_REQUEST: return "stopped by host";
	default: return "?";
	}
}

static void print_summary(struct vm *vm, const struct vm_stop *st, int status)
{
	struct vm_stats *s = &vm->stats;
	double run_ms = (double)(kg_now_ns() - s->run_start_ns) / 1e6;
	uint64_t first = atomic_load(&s->first_output_ns);
	fprintf(stderr,
		"kagami: summary\n"
		"  guest        %s%s%s%s\n"
		"  machine      %llu MiB RAM, %u vCPU%s\n"
		"  result       %s, exit status %d\n"
		"  run time     %.1f ms",
		vm->cfg.kernel_path ? vm->cfg.kernel_path : "restored from a snapshot",
		vm->cfg.cmdline ? " (cmdline \"" : "",
		vm->cfg.cmdline ? vm->cfg.cmdline : "",
		vm->cfg.cmdline ? "\")" : "",
		(unsigned long long)(vm->cfg.mem_size >> 20), vm->ncpus,
		vm->ncpus == 1 ? "" : "s", reason_name(st->reason), status,
		run_ms);
	if (first)
		fprintf(stderr, ", first console output after %.2f ms",
			(double)first / 1e6);
	fprintf(stderr,
		"\n  exits        pio %llu, mmio %llu, other %llu\n"
		"  input gate   pio-in %llu, mmio-read %llu, guest-write %llu, "
		"irq %llu, time %llu (%s)\n"
		"  resets       %u\n",
		(unsigned long long)s->exits[VM_EXIT_PIO],
		(unsigned long long)s->exits[VM_EXIT_MMIO],
		(unsigned long long)s->exits[VM_EXIT_OTHER],
		(unsigned long long)vm->gate.count[GATE_PIO_IN],
		(unsigned long long)vm->gate.count[GATE_MMIO_READ],
		(unsigned long long)vm->gate.count[GATE_GUEST_WRITE],
		(unsigned long long)vm->gate.count[GATE_IRQ],
		(unsigned long long)vm->gate.count[GATE_TIME],
		vm->gate.ops->name, s->resets);
}

static int status_of(const struct vm_stop *st)
{
	switch (st->reason) {
	case VM_STOP_EXIT: return st->exit_code;
	case VM_STOP_POWEROFF: return 0;
	case VM_STOP_CRASH: return KG_EXIT_CRASH;
	case VM_STOP_REQUEST: return st->exit_code;
	default: return KG_EXIT_HOST;
	}
}

/* The control socket's snapshot command. */
static int do_snapshot(struct control_call *call, struct kg_err *e)
{
	struct vm *vm = call->vm;
	const cJSON *req = call->req;
	cJSON *reply = call->reply;
	const cJSON *path = cJSON_GetObjectItemCaseSensitive(req, "path");
	const cJSON *args = cJSON_GetObjectItemCaseSensitive(req, "args");
	if (!cJSON_IsString(path) && cJSON_GetArraySize(args) > 0)
		path = cJSON_GetArrayItem(args, 0);
	if (!cJSON_IsString(path) || !*path->valuestring)
		return kg_errf(e, "snapshot needs a path (--path FILE)");
	struct snapshot_stats st;
	if (snapshot_save(vm, path->valuestring, &st, e) < 0)
		return -1;
	cJSON_AddStringToObject(reply, "path", path->valuestring);
	cJSON_AddNumberToObject(reply, "bytes", (double)st.bytes);
	cJSON_AddNumberToObject(reply, "pause_us", (double)st.pause_us);
	cJSON_AddNumberToObject(reply, "total_ms", (double)st.total_us / 1e3);
	cJSON_AddNumberToObject(reply, "second_pass_pages",
				(double)st.second_pass_pages);
	return 0;
}

const struct control_cmd vm_commands[] = {
	{ "snapshot", "save the VM to --path FILE while it runs "
		      "(kagami restore FILE resumes it)", do_snapshot, false },
	{ "migrate", "move the running VM to 'kagami receive' at ADDR "
		     "(tcp:HOST:PORT) [--downtime-limit MS] [--bandwidth MBPS] "
		     "[--with-storage] [--key FILE | --insecure]", ctl_migrate, true },
	{ "protection", "the replication state: protected or not, and why; "
			"epoch pause, ACK and output-hold latencies",
	  ctl_protection, false },
	{ "protect", "--peer ADDR [--mode ft|ha] [--key FILE | --insecure] "
		     "[--failover-timeout MS] [--epoch-ms MS] [--interval MS]: "
		     "protect the VM onto a (new) secondary without stopping "
		     "it (one still trying to reach a lost secondary gives way)",
	  ctl_protect, false },
	{ "storage-migrate", "NEWPATH [--disk N]: move disk N (default 0) "
			     "to a new image while the guest runs",
	  ctl_storage_migrate, true },
	{ NULL, NULL, NULL, false },
};

struct early_signals {
	const char *name;
	void (*cleanup)(void *ctx);
	void *ctx;
	pthread_t thread;
	atomic_bool stop;
};

static void *early_thread(void *arg)
{
	struct early_signals *s = arg;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR2); /* early_signals_stop's wake-up */
	while (!atomic_load(&s->stop)) {
		struct timespec slice = { 0, 100 * 1000 * 1000 };
		int sig = sigtimedwait(&set, NULL, &slice);
		if (sig <= 0 || sig == SIGUSR2)
			continue;
		fprintf(stderr, "%s: stopped by SIG%s before any guest ran "
			"here\n", s->name, sigabbrev_np(sig));
		if (s->cleanup)
			s->cleanup(s->ctx);
		_exit(128 + sig);
	}
	return NULL;
}

struct early_signals *early_signals_start(const char *name,
					  void (*cleanup)(void *ctx),
					  void *ctx)
{
	struct early_signals *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	*s = (struct early_signals){ .name = name, .cleanup = cleanup,
				     .ctx = ctx };
	if (pthread_create(&s->thread, NULL, early_thread, s)) {
		free(s);
		return NULL;
	}
	return s;
}

void early_signals_stop(struct early_signals *s)
{
	if (!s)
		return;
	atomic_store(&s->stop, true);
	pthread_kill(s->thread, SIGUSR2);
	pthread_join(s->thread, NULL);
	free(s);
}

int serve_stream_memory_opt(const char *name, const char *arg,
			    uint64_t *out)
{
	struct kg_err e = { 0 };
	if (size_parse(arg, out, &e) < 0) {
		fprintf(stderr, "%s: --max-stream-memory: %s\n", name, e.msg);
		return -1;
	}
	return 0;
}

int serve_resource_opt(const char *name, const char *opt, const char *arg,
		       struct vm_config *cfg)
{
	struct kg_err e = { 0 };
	int r;
	if (!strcmp(opt, "disk")) {
		if (cfg->ndisks == VM_MAX_DISKS) {
			fprintf(stderr, "%s: at most %d --disk\n", name,
				VM_MAX_DISKS);
			return -1;
		}
		r = disk_spec_parse(arg, &cfg->disks[cfg->ndisks++], &e);
	} else if (!strcmp(opt, "net")) {
		if (cfg->nnets == VM_MAX_NETS) {
			fprintf(stderr, "%s: at most %d --net\n", name,
				VM_MAX_NETS);
			return -1;
		}
		r = net_spec_parse(arg, &cfg->nets[cfg->nnets++], &e);
	} else {
		r = console_parse(arg, &cfg->console, &e);
	}
	if (r < 0)
		fprintf(stderr, "%s: --%s: %s\n", name, opt, e.msg);
	return r;
}

void serve_block_signals(sigset_t *old)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &set, old);
}

int serve_vm(struct vm *vm, const struct serve_opts *o)
{
	struct kg_err e = { 0 };
	struct control *ctl = NULL;
	struct serve_ctx sc = { .prot = NULL };
	pthread_mutex_init(&sc.lock, NULL);
	if (o->protect) {
		sc.popts = *o->protect;
		sc.have_popts = true;
	}
	if (o->control_path &&
	    !(ctl = control_open(o->control_path, vm, vm_commands, &sc, &e))) {
		fprintf(stderr, "%s: %s\n", o->name, e.msg);
		pthread_mutex_destroy(&sc.lock);
		return KG_EXIT_USAGE;
	}
	struct signal_waiter w = { .vm = vm, .timeout_s = o->timeout_s };
	pthread_t st;
	int r = pthread_create(&st, NULL, signal_thread, &w);
	if (r) {
		fprintf(stderr, "%s: pthread_create: %s\n", o->name,
			strerror(r));
		control_close(ctl);
		return KG_EXIT_HOST;
	}
	if (o->started)
		o->started(o->ctx);
	struct guard *guard = o->guard;
	if (!guard && o->lease) {
		/* Another holder's lease must run out first; one that keeps
		 * renewing runs this guest already. */
		guard = guard_start(vm, o->lease, o->lease_key, o->lease_ttl_ms,
				    o->lease_ttl_ms * 2, &e);
		if (!guard) {
			fprintf(stderr, "%s: %s: not starting the guest (it may "
				"run elsewhere)\n", o->name, e.msg);
			atomic_store(&w.done, true);
			pthread_kill(st, SIGUSR2);
			pthread_join(st, NULL);
			control_close(ctl);
			pthread_mutex_destroy(&sc.lock);
			return KG_EXIT_USAGE;
		}
	}
	if (o->protect) {
		struct protect_opts po = *o->protect;
		po.guard = guard;
		sc.popts.guard = guard;
		if (!(sc.prot = protect_start(vm, &po, &e)))
			fprintf(stderr, "%s: %s (the VM runs UNPROTECTED)\n",
				o->name, e.msg);
	}
	struct vm_stop stop;
	int status;
	if (vm_run(vm, &stop, &e) < 0) {
		fprintf(stderr, "%s: %s\n", o->name, e.msg);
		stop.reason = VM_STOP_ERROR;
		status = KG_EXIT_HOST;
	} else {
		status = status_of(&stop);
		if (stop.reason == VM_STOP_CRASH || stop.reason == VM_STOP_ERROR ||
		    stop.reason == VM_STOP_REQUEST)
			fprintf(stderr, "kagami: %s\n", stop.message);
	}
	atomic_store(&w.done, true);
	pthread_kill(st, SIGUSR2);
	pthread_join(st, NULL);
	control_close(ctl);
	protect_stop(sc.prot);
	if (guard != o->guard)
		guard_stop(guard); /* ours; a caller's guard is the caller's */
	pthread_mutex_destroy(&sc.lock);
	if (o->summary)
		print_summary(vm, &stop, status);
	return status;
}

static int role_serve(void *ctx, struct vm *vm, const struct role_serve *s)
{
	struct serve_role *r = ctx;
	struct serve_opts so = { .name = r->name,
				 .control_path = r->control_path,
				 .timeout_s = r->timeout_s, .summary = r->summary,
				 .started = s->started, .ctx = s->started_ctx,
				 .guard = s->guard };
	return serve_vm(vm, &so);
}

static void role_idle(void *ctx, bool idle, void (*cleanup)(void *),
		      void *cleanup_ctx)
{
	struct serve_role *r = ctx;
	early_signals_stop(r->es);
	r->es = idle ? early_signals_start(r->name, cleanup, cleanup_ctx)
		     : NULL;
}

struct role_hooks serve_role_hooks(struct serve_role *r)
{
	return (struct role_hooks){ role_serve, role_idle, r };
}

int serve_listen(const char *name, const char *addr, const char *keyfile,
		 int io_timeout_ms, struct kg_tp_key *key,
		 struct kg_tp_listener **l)
{
	struct kg_err e = { 0 };
	struct kg_tp_opts to;
	kg_tp_opts_default(&to);
	to.max_frame = RLINK_MAX_FRAME;
	if (io_timeout_ms > 0)
		to.io_timeout_ms = io_timeout_ms;
	if (keyfile) {
		if (kg_tp_key_load(keyfile, key, &e) < 0) {
			fprintf(stderr, "%s: --key: %s\n", name, e.msg);
			return KG_EXIT_USAGE;
		}
		to.key = key;
	}
	if (kg_tp_listen(addr, &to, l, &e) < 0) {
		fprintf(stderr, "%s: %s\n", name, e.msg);
		return KG_EXIT_USAGE;
	}
	fprintf(stderr, "%s: listening on %s\n", name,
		kg_tp_listener_addr(*l));
	return 0;
}

int serve_link_policy(const char *name, const struct link_policy *p)
{
	if (p->insecure && p->keyfile) {
		fprintf(stderr, "%s: --insecure and --key exclude each other\n",
			name);
		return KG_EXIT_USAGE;
	}
	if (!p->keyfile && !p->insecure) {
		fprintf(stderr, "%s: no key: links must be authenticated; "
			"give --key FILE (the same on both sides; --lease-key for "
			"a witness), or --insecure to run without\n", name);
		return KG_EXIT_USAGE;
	}
	bool witness = p->lease && !strncmp(p->lease, "witness:", 8);
	if (witness && !p->lease_keyfile && !p->insecure) {
		fprintf(stderr, "%s: --lease %s needs --lease-key FILE (the "
			"witness's key), or --insecure\n", name, p->lease);
		return KG_EXIT_USAGE;
	}
	if (p->no_lease && p->lease) {
		fprintf(stderr, "%s: --no-lease and --lease exclude each other\n",
			name);
		return KG_EXIT_USAGE;
	}
	if (p->need_lease && !p->lease && !p->no_lease) {
		fprintf(stderr, "%s: FT and HA need a split-brain guard: give "
			"--lease witness:tcp:HOST:PORT or file:PATH (the same on "
			"both sides), or --no-lease to run without one (a cut "
			"link then runs the guest on both sides)\n", name);
		return KG_EXIT_USAGE;
	}
	return 0;
}

void serve_link_warnings(const char *name, const struct link_policy *p)
{
	if (p->insecure)
		fprintf(stderr, "%s: warning: --insecure: the links are not "
			"authenticated: whoever reaches them can read the "
			"guest's memory or feed this side a guest\n", name);
	if (p->no_lease)
		fprintf(stderr, "%s: warning: --no-lease: without a lease, a "
			"network partition makes both sides run the guest\n",
			name);
}
