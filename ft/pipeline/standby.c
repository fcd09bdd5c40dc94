#include "standby.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "disk_sync.h"
#include "guard.h"
#include "incoming.h"
#include "replica_disks.h"
#include "rlink.h"
#include "standby_lockstep.h"
#include "verdict.h"
#include "ft/checkpoint/vm_state.h"
#include "base/clock.h"
#include "base/log.h"

static const char *const state_names[] = {
	[STANDBY_WAITING] = "waiting", [STANDBY_FOLLOWING] = "following",
	[STANDBY_HOLDING] = "holding", [STANDBY_REPLAYING] = "replaying",
	[STANDBY_TAKING_OVER] = "taking over", [STANDBY_RUNNING] = "running",
	[STANDBY_ENDED] = "ended", [STANDBY_FAILED] = "failed",
};

const char *standby_state_name(enum standby_state s)
{
	return state_names[s];
}

struct standby {
	const struct standby_opts *o;
	struct vm_config cfg;
	struct vm *vm;   /* the replica */
	struct vm *prev; /* HOLDING: the last committed replica */
	bool created[VM_MAX_DISKS];
	uint64_t committed, prev_committed;
	/* Lockstep: a dropped replica's RAM (its memfd, read-only), kept so
	 * the next copy fetches only the pages that differ. */
	struct guest_mem ls_ram;
	struct incoming in;
	bool in_open;
	struct kg_err why; /* why the primary is considered lost */
	uint64_t lost_ns;
	int status;
	/* FT: the sessions whose epochs vm and prev hold, and what the
	 * primary said about the output it holds past them (RLINK_HOLD,
	 * RLINK_HELD). promises: the replica's session announced a hold
	 * window; promise_ms: CLOCK_BOOTTIME ms until which the primary
	 * releases no output the replica lacks (0: none known). */
	uint64_t session, prev_session;
	bool promises;
	uint64_t promise_ms;
	bool stood_down; /* HOLDING because the lease is elsewhere */
	char hold_why[200]; /* why HOLDING began */
};

static uint64_t boot_ms(void)
{
	return kg_boottime_ns() / 1000000u;
}

/* The session's last word on its promise, before the session ends. */
static void note_promise(struct standby *s)
{
	uint64_t echo = incoming_echo(&s->in), now = boot_ms();
	/* A stamp from our future was never ours. */
	if (!echo || !s->in.hold_ms || echo > now)
		return;
	if (echo + s->in.hold_ms > s->promise_ms)
		s->promise_ms = echo + s->in.hold_ms;
}

/* With a lease, an FT replica is resumed only while the primary's
 * promise lasts: after it, the primary may have gone on unprotected and
 * released output the replica lacks. (Without a lease a cut link and a
 * dead primary look alike anyway.) */
static bool promise_checked(const struct standby *s)
{
	return s->o->lease && s->promises;
}

static long long promise_left_ms(const struct standby *s)
{
	return (long long)s->promise_ms - (long long)boot_ms();
}

static void drop_vm(struct vm **vm)
{
	if (!*vm)
		return;
	vm_state_unpark(*vm);
	vm_destroy(*vm);
	free(*vm);
	*vm = NULL;
}

/* The held replica is no longer needed: the new copy committed. */
static void drop_prev(struct standby *s)
{
	if (!s->prev)
		return;
	drop_vm(&s->prev);
	replica_disks_drop_held(&s->cfg);
}

static void on_first_commit(void *ctx)
{
	drop_prev(ctx);
}

static void keep_ram(struct standby *s)
{
	struct guest_mem *ram = &s->ls_ram;
	ram->fd = dup(s->vm->mem.fd);
	ram->size = s->vm->mem.size;
	void *p = ram->fd < 0 ? MAP_FAILED
			      : mmap(NULL, ram->size, PROT_READ, MAP_SHARED,
				     ram->fd, 0);
	ram->base = p == MAP_FAILED ? NULL : p;
	if (!ram->base && ram->fd >= 0) {
		close(ram->fd);
		ram->fd = -1;
	}
}

static void release_ram(struct guest_mem *ram)
{
	if (ram->base)
		munmap(ram->base, ram->size);
	if (ram->fd >= 0)
		close(ram->fd);
	ram->base = NULL;
	ram->fd = -1;
}

/* A stop signal while nothing runs: the images made here go. */
static void cleanup(void *ctx)
{
	struct standby *s = ctx;
	replica_disks_remove(&s->cfg, s->created);
}

static void set_idle(struct standby *s, bool idle)
{
	s->o->hooks.idle(s->o->hooks.ctx, idle, cleanup, s);
}

static void end_session(struct standby *s)
{
	if (s->in_open)
		incoming_end(&s->in);
	s->in_open = false;
}

/* A new session: a new VM and images, built from the stream's shape.
 * The replica of a HOLDING side stays (prev) until the new one commits. */
static int build_replica(struct standby *s, const struct vm_state_config *sc,
			 bool holding, struct kg_err *e)
{
	drop_prev(s);
	if (holding) {
		s->prev = s->vm;
		s->prev_committed = s->committed;
		s->prev_session = s->session;
		replica_disks_hold(&s->cfg, s->created, true);
	} else {
		drop_vm(&s->vm);
		replica_disks_remove(&s->cfg, s->created);
		s->promise_ms = 0;
	}
	s->vm = NULL;
	s->cfg.mem_size = sc->mem_size;
	s->cfg.ncpus = sc->ncpus;
	s->cfg.deterministic = sc->flags & VM_STATE_CONFIG_DETERMINISTIC;
	struct vm *vm = calloc(1, sizeof(*vm));
	if (!vm)
		return kg_errk(e, KG_ERR_NOMEM, "out of memory");
	if (replica_disks_prepare(&s->cfg, &s->in, s->created, e) < 0 ||
	    vm_create(vm, &s->cfg, e) < 0) {
		free(vm);
		return -1;
	}
	vm_state_park(vm);
	if (s->ls_ram.base) {
		if (s->ls_ram.size == vm->mem.size)
			guest_mem_copy_data(&vm->mem, &s->ls_ram);
		release_ram(&s->ls_ram);
	}
	s->vm = vm;
	return 0;
}

/* WAITING or HOLDING: a primary connects and the copy begins. */
static enum standby_state st_accept(struct standby *s, bool holding)
{
	const struct standby_opts *o = s->o;
	struct kg_err e = { 0 };
	struct vm_state_config sc;
	if (holding && promise_checked(s) && promise_left_ms(s) <= 0) {
		kg_log(KG_LOG_INFO, "the primary's promise to hold its output "
		       "past epoch %llu ran out %lld ms ago: it may have "
		       "released output this replica lacks; dropping it and "
		       "waiting for a primary",
		       (unsigned long long)s->committed, -promise_left_ms(s));
		drop_vm(&s->vm);
		s->stood_down = false;
		return STANDBY_WAITING;
	}
	s->in = (struct incoming){ .standby = true,
				   .beat_ms = o->failover_ms / 4,
				   .failover_ms = (int)o->failover_ms,
				   .max_stream_memory = o->max_stream_memory };
	s->in.have_mem = s->ls_ram.base ? s->ls_ram.size : 0;
	int wait = (int)(o->failover_ms * 10 < 1000 ? 1000
						    : o->failover_ms * 10);
	/* Try the lease again soon: the primary may die before it comes
	 * back, and its promise does not last for ever. */
	if (promise_checked(s) && wait > (int)o->lease_ttl_ms)
		wait = o->lease_ttl_ms < 100 ? 100 : (int)o->lease_ttl_ms;
	kg_tp_listener_set_timeout(o->listener, holding ? wait : -1);
	if (incoming_begin(&s->in, o->listener, &sc, &e) < 0) {
		if (standby_begin_verdict(e.kind, holding) == STANDBY_FAIL_OVER) {
			kg_errf(&s->why, "the primary did not come back "
				"(held since: %s)", s->hold_why);
			return STANDBY_TAKING_OVER;
		}
		kg_log(KG_LOG_INFO, "%s; waiting for a primary", e.msg);
		return holding ? STANDBY_HOLDING : STANDBY_WAITING;
	}
	s->in_open = true;
	s->stood_down = false;
	/* The held replica is worth keeping only if all the primary has
	 * released since is in it. */
	if (holding && s->promises &&
	    !(s->in.have_held && s->in.held_session == s->session &&
	      s->in.held_seq <= s->committed)) {
		kg_log(KG_LOG_INFO, "the primary released output past epoch "
		       "%llu: dropping that replica",
		       (unsigned long long)s->committed);
		holding = false;
	}
	if (sc.ndisks != s->cfg.ndisks || sc.nnets != s->cfg.nnets) {
		kg_errk(&e, KG_ERR_INVALID, "the protected VM has %u disk(s) "
			"and %u network(s); give as many --disk and --net (%u "
			"and %u given)", sc.ndisks, sc.nnets, s->cfg.ndisks,
			s->cfg.nnets);
		goto failed;
	}
	if (build_replica(s, &sc, holding, &e) < 0)
		goto failed;
	unsigned mode = s->in.mode & 0xff;
	s->promises = mode == RLINK_MODE_FT && s->in.hold_ms;
	kg_log(KG_LOG_INFO, "protecting a %s VM for %s",
	       mode == RLINK_MODE_FT ? "FT" : mode == RLINK_MODE_HA ? "HA"
								    : "lockstep",
	       rlink_peer(s->in.link));
	return STANDBY_FOLLOWING;
failed:
	incoming_abort(&s->in, e.msg);
	end_session(s);
	kg_log(KG_LOG_INFO, "%s", e.msg);
	return STANDBY_FAILED;
}

/* FOLLOWING: epochs until the session ends one way or another. */
static enum standby_state st_follow(struct standby *s)
{
	struct kg_err e = { 0 };
	s->in.on_first_commit = on_first_commit;
	s->in.commit_ctx = s;
	int r = incoming_follow(&s->in, s->vm, &disk_sync_sink, s->vm, &e);
	s->committed = s->in.committed_seq;
	if (s->committed)
		s->session = s->in.session;
	note_promise(s);
	if (r == 3) {
		if (s->in.hash_round)
			kg_log(KG_LOG_INFO, "log-assisted copy: %llu page(s) "
			       "differed from the replica's",
			       (unsigned long long)s->in.needed_pages);
		return STANDBY_REPLAYING;
	}
	end_session(s);
	snprintf(s->hold_why, sizeof(s->hold_why), "%.190s", e.msg);
	if (!s->committed && s->prev) {
		/* The new copy never committed: back to the last. */
		drop_vm(&s->vm);
		replica_disks_remove(&s->cfg, s->created);
		replica_disks_hold(&s->cfg, s->created, false);
		s->vm = s->prev;
		s->prev = NULL;
		s->committed = s->prev_committed;
		s->session = s->prev_session;
		if (r > 0)
			r = 2;
		snprintf(s->hold_why, sizeof(s->hold_why), "its new copy "
			 "failed: %.170s", e.msg);
	}
	if (r == 0) {
		kg_log(KG_LOG_INFO, "the primary ended protection: %s", e.msg);
		s->status = 0;
		return STANDBY_ENDED;
	}
	if (r == 2 && s->committed) {
		kg_log(KG_LOG_INFO, "%s; keeping epoch %llu while the primary "
		       "reconnects", e.msg, (unsigned long long)s->committed);
		return STANDBY_HOLDING;
	}
	drop_prev(s);
	if (r != 1 || !s->committed) {
		kg_log(KG_LOG_INFO, "%s%s; waiting for a primary", e.msg,
		       r > 0 ? " (no epoch committed yet: nothing to resume)"
			     : "");
		drop_vm(&s->vm);
		return STANDBY_WAITING;
	}
	s->why = e;
	return STANDBY_TAKING_OVER;
}

static void on_started(void *ctx)
{
	struct standby *s = ctx;
	struct kg_err e;
	for (unsigned i = 0; i < s->vm->cfg.nnets; i++)
		if (virtio_net_announce(s->vm->nets[i], &e) < 0)
			kg_log(KG_LOG_INFO, "%s", e.msg);
	kg_log(KG_LOG_INFO, "the guest runs here (%.1f ms after the primary "
	       "was declared lost)", (double)(kg_now_ns() - s->lost_ns) / 1e6);
}

/* REPLAYING: the lockstep replica runs the log (standby_lockstep.h). */
static enum standby_state st_replay(struct standby *s)
{
	const struct standby_opts *o = s->o;
	struct standby_lockstep_opts lo = {
		.lease = o->lease, .lease_key = o->lease_key,
		.lease_ttl_ms = o->lease_ttl_ms, .faults = o->faults,
		.hooks = &o->hooks,
	};
	drop_prev(s);
	set_idle(s, false);
	int st = 1;
	enum standby_lockstep_end how = standby_lockstep(&s->in, s->vm, &lo,
							 &st);
	end_session(s);
	switch (how) {
	case LOCKSTEP_TOOK_OVER:
	case LOCKSTEP_STOPPED:
		s->status = st;
		return STANDBY_RUNNING; /* it ran here, to its end */
	case LOCKSTEP_ENDED:
		s->status = 0;
		return STANDBY_ENDED;
	case LOCKSTEP_STOOD_DOWN:
	case LOCKSTEP_DROPPED:
		break;
	}
	/* Its RAM is most of the next copy. */
	keep_ram(s);
	drop_vm(&s->vm);
	replica_disks_remove(&s->cfg, s->created);
	set_idle(s, true);
	kg_log(KG_LOG_INFO, "waiting for a primary");
	return STANDBY_WAITING;
}

/* TAKING_OVER, the lease held elsewhere: the primary lives (or could
 * not be told from a living one). An FT replica is kept while the
 * primary's promise lasts (it may die before its next copy commits);
 * otherwise it goes. */
static enum standby_state stand_down(struct standby *s,
				     const struct kg_err *ge)
{
	bool keep = promise_checked(s) && promise_left_ms(s) > 0;
	if (s->stood_down)
		kg_log(KG_LOG_INFO, "still no lease (%s)%s", ge->msg,
		       keep ? "" : "; dropping the replica");
	else
		kg_log(KG_LOG_INFO, "primary unreachable (%s), but the lease "
		       "cannot be taken (%s): the primary may be alive and go "
		       "on without us, so we do not take over; %s epoch %llu "
		       "and waiting for it to reconnect", s->why.msg, ge->msg,
		       keep ? "keeping" : "dropping",
		       (unsigned long long)s->committed);
	if (keep) {
		if (!s->stood_down) {
			kg_log(KG_LOG_INFO, "the primary holds its output past "
			       "epoch %llu for %lld ms more: the replica stays "
			       "until then", (unsigned long long)s->committed,
			       promise_left_ms(s));
			snprintf(s->hold_why, sizeof(s->hold_why), "it was "
				 "lost with the lease in its hands: %.150s",
				 s->why.msg);
		}
		s->stood_down = true;
		return STANDBY_HOLDING;
	}
	drop_vm(&s->vm);
	s->stood_down = false;
	return STANDBY_WAITING;
}

/* TAKING_OVER: the lease, the disks made durable, then the guest runs. */
static enum standby_state st_take_over(struct standby *s, struct guard **g)
{
	const struct standby_opts *o = s->o;
	struct kg_err e = { 0 };
	s->lost_ns = kg_now_ns();
	if (o->lease) {
		struct kg_err ge;
		*g = guard_start(s->vm, o->lease, o->lease_key, o->lease_ttl_ms,
				 2 * o->lease_ttl_ms, &ge);
		if (!*g)
			return stand_down(s, &ge);
		if (promise_checked(s) && promise_left_ms(s) <= 0) {
			kg_log(KG_LOG_INFO, "primary unreachable (%s) and the "
			       "lease taken, but its promise to hold its output "
			       "past epoch %llu ran out %lld ms ago: it may "
			       "have released output this replica lacks; "
			       "dropping it and waiting for a primary",
			       s->why.msg, (unsigned long long)s->committed,
			       -promise_left_ms(s));
			guard_stop(*g);
			*g = NULL;
			drop_vm(&s->vm);
			s->stood_down = false;
			return STANDBY_WAITING;
		}
	}
	kg_log(KG_LOG_INFO, "primary lost: %s; resuming epoch %llu", s->why.msg,
	       (unsigned long long)s->committed);
	if (disk_sync_flush(s->vm, &e) < 0) {
		kg_log(KG_LOG_INFO, "%s", e.msg);
		guard_stop(*g);
		*g = NULL;
		return STANDBY_FAILED;
	}
	return STANDBY_RUNNING;
}

static void st_run(struct standby *s, struct guard *g)
{
	const struct role_hooks *h = &s->o->hooks;
	set_idle(s, false);
	vm_state_activate(s->vm);
	struct role_serve rs = { .guard = g, .started = on_started,
				 .started_ctx = s };
	s->status = h->serve(h->ctx, s->vm, &rs);
}

int standby_run(const struct standby_opts *o)
{
	struct standby s = { .o = o, .cfg = o->cfg, .status = 1,
			     .ls_ram = { .fd = -1 } };
	enum standby_state state = STANDBY_WAITING;
	struct guard *g = NULL;
	set_idle(&s, true);
	while (state != STANDBY_ENDED && state != STANDBY_FAILED) {
		enum standby_state next = state;
		switch (state) {
		case STANDBY_WAITING:
		case STANDBY_HOLDING:
			next = st_accept(&s, state == STANDBY_HOLDING);
			break;
		case STANDBY_FOLLOWING:
			next = st_follow(&s);
			break;
		case STANDBY_REPLAYING:
			next = st_replay(&s);
			if (next == STANDBY_RUNNING)
				next = STANDBY_ENDED; /* it ran its course */
			break;
		case STANDBY_TAKING_OVER:
			next = st_take_over(&s, &g);
			break;
		case STANDBY_RUNNING:
			st_run(&s, g);
			next = STANDBY_ENDED;
			break;
		case STANDBY_ENDED:
		case STANDBY_FAILED:
			break;
		}
		if (next != state)
			kg_log(KG_LOG_DEBUG, "standby: %s -> %s",
			       standby_state_name(state),
			       standby_state_name(next));
		state = next;
	}
	guard_stop(g);
	end_session(&s);
	drop_prev(&s);
	release_ram(&s.ls_ram);
	drop_vm(&s.vm);
	return s.status;
}
