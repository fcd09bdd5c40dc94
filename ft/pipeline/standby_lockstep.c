/* The lockstep replica: replay the primary's log live, go live at its end. */
#include "standby_lockstep.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "guard.h"
#include "incoming.h"
#include "lockstep.h"
#include "rlink.h"
#include "ft/checkpoint/vm_state.h"
#include "ft/record/recorder.h"
#include "ft/replay/replayer.h"
#include "vmm/vm.h"
#include "base/clock.h"
#include "base/log.h"

struct live_ctx {
	const struct standby_lockstep_opts *o;
	struct vm *vm;
	struct lockstep_pump *pump;
	struct replayer *rep;
	struct recorder *rec;
	struct guard *guard;
	enum standby_lockstep_end end;
	uint64_t lost_ns;
	char why[512];
};

/* On the vCPU thread, at the first exit the log does not cover. */
static bool go_live(void *ctx, uint64_t exit_index)
{
	struct live_ctx *c = ctx;
	struct vm *vm = c->vm;
	c->lost_ns = kg_now_ns();
	if (lockstep_pump_ordered(c->pump, c->why, sizeof(c->why))) {
		c->end = LOCKSTEP_ENDED;
		return false;
	}
	if (c->o->lease) {
		struct kg_err ge;
		c->guard = guard_start(vm, c->o->lease, c->o->lease_key,
				       c->o->lease_ttl_ms,
				       2 * c->o->lease_ttl_ms, &ge);
		if (!c->guard) {
			kg_log(KG_LOG_INFO, "primary unreachable (%s), but the "
			       "lease cannot be taken (%s): not taking over",
			       c->why, ge.msg);
			c->end = LOCKSTEP_STOOD_DOWN;
			return false;
		}
	}
	struct kg_err e;
	struct recorder_opts ro = { .digest_ns = LOCKSTEP_DIGEST_MS * 1000000ull,
				    .flush_ns = LOCKSTEP_FLUSH_MS * 1000000ull };
	uint64_t guest_ns = replayer_guest_ns(c->rep);
	c->rec = recorder_new(vm, &ro, &e);
	if (!c->rec) {
		kg_log(KG_LOG_INFO, "going live: %s", e.msg);
		c->end = LOCKSTEP_DROPPED;
		return false;
	}
	/* The guest's clock goes on from the last value the log gave it. */
	vm->gate.clock_base_ns = kg_now_ns() - guest_ns;
	atomic_store(&vm->replaying, false);
	outbuf_discard(vm->out); /* the primary's outputs, replayed */
	vm_devices_resync(vm);
	for (unsigned i = 0; i < vm->cfg.nnets; i++)
		if (virtio_net_announce(vm->nets[i], &e) < 0)
			kg_log(KG_LOG_INFO, "%s", e.msg);
	kg_log(KG_LOG_INFO, "primary lost: %s; replayed the log to exit %"
	       PRIu64 "; the guest runs here", c->why, exit_index);
	c->end = LOCKSTEP_TOOK_OVER;
	return true;
}

enum standby_lockstep_end standby_lockstep(struct incoming *in, struct vm *vm,
					   const struct standby_lockstep_opts *o,
					   int *status)
{
	struct live_ctx c = { .o = o, .vm = vm, .end = LOCKSTEP_STOPPED };
	struct kg_err e;
	*status = 1;
	c.pump = lockstep_pump_start(in->link, epoch_receiver_reader(in->er),
				     in->committed_seq, &e);
	if (!c.pump) {
		kg_log(KG_LOG_INFO, "%s", e.msg);
		return LOCKSTEP_DROPPED;
	}
	struct replayer_opts ro = {
		.src = lockstep_pump_source(c.pump),
		.digests = true,
		.start_anywhere = true,
		.on_end = go_live,
		.on_end_ctx = &c,
		.faults = o->faults,
	};
	c.rep = replayer_new(vm, &ro, &e);
	if (!c.rep) {
		kg_log(KG_LOG_INFO, "%s", e.msg);
		kg_tp_shutdown(rlink_transport(in->link));
		lockstep_pump_free(c.pump);
		return LOCKSTEP_DROPPED;
	}
	outbuf_hold(vm->out, true);
	/* Replaying now: devices run their backends only where the log
	 * leaves them a job (a disk applies the guest's writes). */
	vm_state_activate(vm);
	kg_log(KG_LOG_INFO, "replaying the primary's execution log");
	struct role_serve rs = { 0 };
	*status = o->hooks->serve(o->hooks->ctx, vm, &rs);
	struct replay_stats st;
	replayer_stats(c.rep, &st);
	enum replay_state rst = replayer_state(c.rep);
	if (rst == REPLAY_DIVERGED || rst == REPLAY_FAILED) {
		kg_log(KG_LOG_INFO, "the replica %s after %" PRIu64 " exits; "
		       "dropping it: the primary will send a new copy\n%s",
		       rst == REPLAY_DIVERGED ? "DIVERGED" : "failed", st.exits,
		       replayer_report(c.rep));
		c.end = LOCKSTEP_DROPPED;
	} else if (c.end == LOCKSTEP_ENDED) {
		kg_log(KG_LOG_INFO, "the primary ended protection: %s", c.why);
		*status = 0;
	}
	/* Wake the pump if the link still works (a dropped replica). */
	kg_tp_shutdown(rlink_transport(in->link));
	lockstep_pump_free(c.pump);
	recorder_free(c.rec);
	replayer_free(c.rep);
	guard_stop(c.guard);
	return c.end;
}
