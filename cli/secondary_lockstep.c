/* The lockstep replica: replay the primary's log live, go live at its end. */
#include "secondary_lockstep.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "serve.h"
#include "ft/checkpoint/vm_state.h"
#include "ft/pipeline/guard.h"
#include "ft/pipeline/incoming.h"
#include "ft/pipeline/lockstep.h"
#include "ft/pipeline/rlink.h"
#include "ft/record/recorder.h"
#include "ft/replay/replayer.h"
#include "vmm/vm.h"
#include "base/clock.h"

struct live_ctx {
	const struct secondary_lockstep_opts *o;
	struct vm *vm;
	struct lockstep_pump *pump;
	struct replayer *rep;
	struct recorder *rec;
	struct guard *guard;
	enum secondary_lockstep_end end;
	uint64_t lost_ns;
	char why[512];
};

/* On the vCPU thread, at the first exit the log does not cover. */
static bool go_live(void *ctx, uint64_t exit_index)
{
	struct live_ctx *c = ctx;
	struct vm *vm = c->vm;
	const char *name = c->o->name;
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
			fprintf(stderr, "%s: primary unreachable (%s), but the "
				"lease cannot be taken (%s): not taking over\n",
				name, c->why, ge.msg);
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
		fprintf(stderr, "%s: going live: %s\n", name, e.msg);
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
			fprintf(stderr, "%s: %s\n", name, e.msg);
	fprintf(stderr, "%s: primary lost: %s; replayed the log to exit %"
		PRIu64 "; the guest runs here\n", name, c->why, exit_index);
	c->end = LOCKSTEP_TOOK_OVER;
	return true;
}

enum secondary_lockstep_end secondary_lockstep(struct incoming *in,
					       struct vm *vm,
					       const struct secondary_lockstep_opts *o,
					       int *status)
{
	struct live_ctx c = { .o = o, .vm = vm, .end = LOCKSTEP_STOPPED };
	struct kg_err e;
	*status = 1;
	c.pump = lockstep_pump_start(in->link, epoch_receiver_reader(in->er),
				     in->committed_seq, &e);
	if (!c.pump) {
		fprintf(stderr, "%s: %s\n", o->name, e.msg);
		return LOCKSTEP_DROPPED;
	}
	struct replayer_opts ro = {
		.src = lockstep_pump_source(c.pump),
		.digests = true,
		.start_anywhere = true,
		.on_end = go_live,
		.on_end_ctx = &c,
		.test_corrupt_at = o->test_corrupt_at,
	};
	c.rep = replayer_new(vm, &ro, &e);
	if (!c.rep) {
		fprintf(stderr, "%s: %s\n", o->name, e.msg);
		kg_tp_shutdown(rlink_transport(in->link));
		lockstep_pump_free(c.pump);
		return LOCKSTEP_DROPPED;
	}
	outbuf_hold(vm->out, true);
	/* Replaying now: devices run their backends only where the log
	 * leaves them a job (a disk applies the guest's writes). */
	vm_state_activate(vm);
	fprintf(stderr, "%s: replaying the primary's execution log\n", o->name);
	struct serve_opts so = { .name = o->name,
				 .control_path = o->control_path,
				 .timeout_s = o->timeout_s,
				 .summary = o->summary };
	*status = serve_vm(vm, &so);
	struct replay_stats st;
	replayer_stats(c.rep, &st);
	enum replay_state rs = replayer_state(c.rep);
	if (rs == REPLAY_DIVERGED || rs == REPLAY_FAILED) {
		fprintf(stderr, "%s: the replica %s after %" PRIu64 " exits; "
			"dropping it: the primary will send a new copy\n%s\n",
			o->name, rs == REPLAY_DIVERGED ? "DIVERGED" : "failed",
			st.exits, replayer_report(c.rep));
		c.end = LOCKSTEP_DROPPED;
	} else if (c.end == LOCKSTEP_ENDED) {
		fprintf(stderr, "%s: the primary ended protection: %s\n",
			o->name, c.why);
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
