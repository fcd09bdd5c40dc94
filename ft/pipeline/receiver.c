#include "receiver.h"

#include <stdlib.h>

#include "disk_sync.h"
#include "incoming.h"
#include "replica_disks.h"
#include "rlink.h"
#include "verdict.h"
#include "ft/checkpoint/vm_state.h"
#include "base/log.h"

static const char *const state_names[] = {
	[RECEIVER_WAITING] = "waiting", [RECEIVER_PREPARING] = "preparing",
	[RECEIVER_RECEIVING] = "receiving", [RECEIVER_STARTING] = "starting",
	[RECEIVER_RUNNING] = "running", [RECEIVER_DONE] = "done",
	[RECEIVER_FAILED] = "failed",
};

const char *receiver_state_name(enum receiver_state s)
{
	return state_names[s];
}

struct receiver {
	const struct receiver_opts *o;
	struct vm_config cfg;
	struct incoming in;
	struct vm_state_config sc;
	struct vm *vm;
	bool created[VM_MAX_DISKS];
	struct incoming_answerer *ans;
	struct kg_err e;
	int status;
};

static void cleanup(void *ctx)
{
	struct receiver *r = ctx;
	replica_disks_remove(&r->cfg, r->created);
}

static enum receiver_state st_wait(struct receiver *r)
{
	if (incoming_begin(&r->in, r->o->listener, &r->sc, &r->e) == 0)
		return RECEIVER_PREPARING;
	/* A refused peer (wrong key) is logged; wait for the next. */
	if (receive_begin_verdict(r->e.kind) == RECEIVE_GIVE_UP)
		return RECEIVER_FAILED;
	kg_log(KG_LOG_INFO, "%s; waiting for another source", r->e.msg);
	return RECEIVER_WAITING;
}

static enum receiver_state st_prepare(struct receiver *r)
{
	const struct vm_state_config *sc = &r->sc;
	if (sc->ndisks != r->cfg.ndisks || sc->nnets != r->cfg.nnets) {
		kg_errk(&r->e, KG_ERR_INVALID, "the incoming VM has %u disk(s) "
			"and %u network(s); give as many --disk and --net (%u "
			"and %u given)", sc->ndisks, sc->nnets, r->cfg.ndisks,
			r->cfg.nnets);
		goto refuse;
	}
	r->cfg.mem_size = sc->mem_size;
	r->cfg.ncpus = sc->ncpus;
	r->cfg.deterministic = sc->flags & VM_STATE_CONFIG_DETERMINISTIC;
	if (replica_disks_prepare(&r->cfg, &r->in, r->created, &r->e) < 0)
		goto refuse;
	r->vm = calloc(1, sizeof(*r->vm));
	if (!r->vm) {
		kg_errk(&r->e, KG_ERR_NOMEM, "out of memory");
		goto refuse;
	}
	if (vm_create(r->vm, &r->cfg, &r->e) < 0) {
		free(r->vm);
		r->vm = NULL;
		goto refuse;
	}
	vm_state_park(r->vm);
	return RECEIVER_RECEIVING;
refuse:
	incoming_abort(&r->in, r->e.msg);
	return RECEIVER_FAILED;
}

static bool with_storage(const struct receiver *r)
{
	return r->in.mode & RLINK_F_STORAGE;
}

static enum receiver_state st_receive(struct receiver *r)
{
	if (incoming_receive(&r->in, r->vm,
			     with_storage(r) ? &disk_sync_sink : NULL, r->vm,
			     &r->e) < 0)
		return RECEIVER_FAILED;
	return RECEIVER_STARTING;
}

/* GO: the guest is ours. Take the shared images' locks, or make the
 * copied ones durable, before it runs. */
static enum receiver_state st_start(struct receiver *r)
{
	bool storage = with_storage(r);
	for (unsigned i = 0; i < r->cfg.ndisks && !storage; i++)
		if (virtio_blk_lock(r->vm->blks[i], true, &r->e) < 0)
			goto refuse;
	if (storage && disk_sync_flush(r->vm, &r->e) < 0)
		goto refuse;
	return RECEIVER_RUNNING;
refuse:
	incoming_abort(&r->in, r->e.msg);
	return RECEIVER_FAILED;
}

static void on_started(void *ctx)
{
	struct receiver *r = ctx;
	struct kg_err e;
	if (incoming_running(&r->in, &e) < 0)
		kg_log(KG_LOG_INFO, "%s (the source can still ask)", e.msg);
	for (unsigned i = 0; i < r->vm->cfg.nnets; i++)
		if (virtio_net_announce(r->vm->nets[i], &e) < 0)
			kg_log(KG_LOG_INFO, "%s", e.msg);
	r->ans = incoming_answer_start(r->o->listener, r->in.session, &e);
	if (!r->ans)
		kg_log(KG_LOG_INFO, "%s", e.msg);
	kg_log(KG_LOG_INFO, "the guest runs here (%llu rounds, %.1f MB "
	       "received)", (unsigned long long)r->in.rounds,
	       (double)r->in.bytes / 1e6);
}

static void st_run(struct receiver *r)
{
	const struct role_hooks *h = &r->o->hooks;
	h->idle(h->ctx, false, cleanup, r);
	vm_state_activate(r->vm);
	struct role_serve rs = { .started = on_started, .started_ctx = r };
	r->status = h->serve(h->ctx, r->vm, &rs);
	incoming_answer_stop(r->ans);
}

int receiver_run(const struct receiver_opts *o)
{
	struct receiver r = { .o = o, .cfg = o->cfg, .status = 1,
			      .in.faults = o->faults,
			      .in.max_stream_memory = o->max_stream_memory };
	enum receiver_state state = RECEIVER_WAITING;
	o->hooks.idle(o->hooks.ctx, true, cleanup, &r);
	while (state != RECEIVER_DONE && state != RECEIVER_FAILED) {
		enum receiver_state next = state;
		switch (state) {
		case RECEIVER_WAITING: next = st_wait(&r); break;
		case RECEIVER_PREPARING: next = st_prepare(&r); break;
		case RECEIVER_RECEIVING: next = st_receive(&r); break;
		case RECEIVER_STARTING: next = st_start(&r); break;
		case RECEIVER_RUNNING:
			st_run(&r);
			next = RECEIVER_DONE;
			break;
		case RECEIVER_DONE:
		case RECEIVER_FAILED:
			break;
		}
		if (next != state)
			kg_log(KG_LOG_DEBUG, "receiver: %s -> %s",
			       receiver_state_name(state),
			       receiver_state_name(next));
		state = next;
	}
	if (state == RECEIVER_FAILED) {
		kg_log(KG_LOG_INFO, "incoming migration failed: %s; nothing "
		       "runs here", r.e.msg);
		replica_disks_remove(&r.cfg, r.created);
		r.status = 1;
	}
	incoming_end(&r.in);
	if (r.vm) {
		vm_state_unpark(r.vm);
		vm_destroy(r.vm);
		free(r.vm);
	}
	return r.status;
}
