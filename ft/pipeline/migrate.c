#include "migrate.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "vmm/vm.h"
#include "rlink.h"
#include "verdict.h"
#include "base/clock.h"
#include "ft/precopy/precopy.h"

#define READY_TIMEOUT_MS 10000
#define RUNNING_TIMEOUT_MS 5000
#define QUERY_DEADLINE_MS 20000
#define THROTTLE_PERIOD_MS 20

static void sleep_ms(double ms)
{
	struct timespec ts = { (time_t)(ms / 1000),
			       (long)((ms - (double)(time_t)(ms / 1000) * 1000) *
				      1e6) };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* --- auto-converge: the vCPUs paused for pct% of every period --- */

struct throttle {
	struct vm *vm;
	pthread_t thread;
	bool on;
	atomic_uint pct;
	atomic_bool stop;
};

static void *throttle_thread(void *arg)
{
	struct throttle *t = arg;
	while (!atomic_load(&t->stop)) {
		unsigned pct = atomic_load(&t->pct);
		vm_pause(t->vm);
		sleep_ms(THROTTLE_PERIOD_MS * pct / 100.0);
		vm_resume(t->vm);
		sleep_ms(THROTTLE_PERIOD_MS * (100 - pct) / 100.0);
	}
	return NULL;
}

static int throttle_set(struct throttle *t, unsigned pct, struct kg_err *e)
{
	atomic_store(&t->pct, pct);
	if (t->on)
		return 0;
	int r = pthread_create(&t->thread, NULL, throttle_thread, t);
	if (r) {
		errno = r;
		return kg_errno(e, "auto-converge: pthread_create");
	}
	t->on = true;
	return 0;
}

static void throttle_stop(struct throttle *t)
{
	if (!t->on)
		return;
	atomic_store(&t->stop, true);
	pthread_join(t->thread, NULL);
	t->on = false;
}

/* --- the run --- */

struct run {
	struct vm *vm;
	const struct migrate_opts *o;
	migrate_progress_fn fn;
	void *ctx;
	struct migrate_result *res;
	struct migrate_progress p;
	struct rlink *link;
	struct epoch_sender *es;
	struct throttle *th;
	unsigned round;
	uint64_t session;
	uint64_t t0;
	uint64_t last_progress_ns;
};

static void progress(struct run *r, bool force)
{
	uint64_t now = kg_now_ns();
	if (!r->fn || (!force && now - r->last_progress_ns < 200000000u))
		return;
	r->last_progress_ns = now;
	r->fn(r->ctx, &r->p);
}

static void round_progress(void *ctx, uint64_t done, uint64_t total)
{
	struct run *r = ctx;
	r->p.percent = total ? 100.0 * (double)done / (double)total : 100;
	progress(r, false);
}

static int connect_peer(struct run *r, struct kg_err *e)
{
	struct kg_tp_opts to;
	kg_tp_opts_default(&to);
	to.key = r->o->key;
	to.fault = r->o->fault;
	to.max_frame = RLINK_MAX_FRAME;
	struct kg_transport *t;
	if (kg_tp_connect(r->o->addr, &to, &t, e) < 0)
		return -1;
	r->link = rlink_new(t, r->o->bandwidth, e);
	if (!r->link || rlink_start_reader(r->link, e) < 0)
		return -1;
	snprintf(r->res->dest, sizeof(r->res->dest), "%s", rlink_peer(r->link));
	uint64_t mode = RLINK_MODE_MIGRATE | (r->o->disk ? RLINK_F_STORAGE : 0);
	if (rlink_send(r->link, RLINK_HELLO, r->session, mode, NULL, e) < 0)
		return -1;
	/* The sizes let the destination check (shared storage) or create
	 * (--with-storage) its images before it builds the VM. */
	for (unsigned i = 0; i < r->vm->cfg.ndisks; i++)
		if (rlink_send(r->link, RLINK_DISK, i,
			       virtio_blk_size(r->vm->blks[i]), NULL, e) < 0)
			return -1;
	return 0;
}

/* After a send failed: the sink's ABORT, if it said why. */
static void explain_failure(struct run *r, struct kg_err *e)
{
	struct rlink_msg m;
	struct kg_err ignore;
	if (r->link && rlink_wait_msg(r->link, 0, 200, &m, &ignore) == 1)
		kg_errf(e, "the destination gave up: %s", m.text);
}

/* Until the destination has applied round seq: a round is only done when
 * it is there (not in socket buffers), or the pause would wait for the
 * backlog, and the throughput measured would be the sender's alone. */
static int wait_applied(struct run *r, uint64_t seq, struct kg_err *e)
{
	for (;;) {
		struct rlink_msg m;
		int k = rlink_wait_msg(r->link, 1u << RLINK_ACK, READY_TIMEOUT_MS,
				       &m, e);
		if (k < 0)
			return -1;
		if (k == 0)
			return kg_errf(e, "the destination did not apply round "
				       "%llu within %d ms", (unsigned long long)seq,
				       READY_TIMEOUT_MS);
		if (m.type == RLINK_ABORT)
			return kg_errf(e, "the destination gave up: %s", m.text);
		if (m.a >= seq)
			return 0;
	}
}

/* Pre-copy rounds: every page, then those dirtied meanwhile. */
static int send_round(void *ctx, bool first, struct precopy_round *pr,
		      struct kg_err *e)
{
	struct run *r = ctx;
	if (r->vm->req == VM_REQ_STOP)
		return kg_errf(e, "the VM stopped during the migration");
	r->p.round = ++r->round;
	r->p.percent = 0;
	struct epoch_stats st;
	if (epoch_send_live(r->es, first, round_progress, r, &st, e) < 0 ||
	    wait_applied(r, st.seq, e) < 0)
		return -1;
	r->res->rounds = r->round;
	r->p.percent = 100;
	pr->units = st.dirty_pages;
	pr->bytes = st.stream_bytes;
	return 0;
}

static int count_dirty(void *ctx, uint64_t *dirty, struct kg_err *e)
{
	struct run *r = ctx;
	return epoch_dirty_pending(r->es, dirty, e);
}

static void round_report(void *ctx, const struct precopy_state *s,
			 enum precopy_decision d)
{
	struct run *r = ctx;
	(void)d;
	r->p.dirty_pages = s->dirty;
	r->p.expected_downtime_ms = s->predicted_ms;
	r->p.mbps = s->rate / 1e6;
	progress(r, true);
}

/* Auto-converge. */
static int slow_down(void *ctx, unsigned pct, struct kg_err *e)
{
	struct run *r = ctx;
	r->p.throttle_pct = pct;
	if (pct > r->res->throttle_pct)
		r->res->throttle_pct = pct;
	return throttle_set(r->th, pct, e);
}

static const struct precopy_ops migrate_precopy = {
	.round = send_round, .pending = count_dirty, .report = round_report,
	.throttle = slow_down,
};

static int precopy(struct run *r, struct kg_err *e)
{
	struct precopy_policy p = precopy_policy_migrate(r->o->downtime_limit_ms,
							 r->o->max_rounds);
	struct precopy_state s;
	r->p.phase = "precopy";
	return precopy_run(&s, &p, &migrate_precopy, r, e);
}

/* The guest paused here: the last pages and the state, then READY. */
static int stop_and_copy(struct run *r, struct kg_err *e)
{
	r->p.phase = "stop-and-copy";
	progress(r, true);
	if (kg_fault_hit(r->o->faults, "migrate.stop-and-copy", NULL))
		kg_tp_shutdown(rlink_transport(r->link));
	struct epoch_stats st;
	uint64_t t = kg_now_ns();
	if (epoch_send_final(r->es, &st, e) < 0)
		return -1;
	r->res->copy_ms = (double)(kg_now_ns() - t) / 1e6;
	t = kg_now_ns();
	r->res->final_pages = st.dirty_pages;
	struct rlink_msg m;
	int k = rlink_wait_msg(r->link, 1u << RLINK_READY, READY_TIMEOUT_MS, &m,
			       e);
	if (k == 0)
		return kg_errf(e, "the destination did not commit the final "
			       "epoch within %d ms", READY_TIMEOUT_MS);
	if (k < 0)
		return -1;
	if (m.type == RLINK_ABORT)
		return kg_errf(e, "the destination gave up: %s", m.text);
	if (m.a != st.seq)
		return kg_errf(e, "the destination committed epoch %llu, not "
			       "%llu", (unsigned long long)m.a,
			       (unsigned long long)st.seq);
	r->res->commit_ms = (double)(kg_now_ns() - t) / 1e6;
	return 0;
}

/* Drops (or takes back) this side's disk locks, so that the destination
 * can take them when it shares the images. */
static int disks_lock(struct vm *vm, bool lock, struct kg_err *e)
{
	for (unsigned i = 0; i < vm->cfg.ndisks; i++)
		if (vm->blks[i] && virtio_blk_lock(vm->blks[i], lock, e) < 0)
			return -1;
	return 0;
}

enum doubt { DOUBT_UNKNOWN, DOUBT_RUNS_THERE, DOUBT_NOT_THERE };

/* RUNNING never came: ask the destination's listener. */
static enum doubt resolve_doubt(struct run *r, struct kg_err *why)
{
	uint64_t deadline = kg_now_ns() + QUERY_DEADLINE_MS * 1000000ull;
	while (kg_now_ns() < deadline) {
		struct kg_tp_opts to;
		kg_tp_opts_default(&to);
		to.key = r->o->key;
		to.connect_timeout_ms = 1000;
		to.io_timeout_ms = 2000;
		struct kg_transport *t;
		struct kg_err e;
		if (kg_tp_connect(r->o->addr, &to, &t, &e) < 0) {
			if (migrate_doubt_verdict(e.kind) == DOUBT_NOT_RUNNING) {
				*why = e;
				return DOUBT_NOT_THERE;
			}
			*why = e;
			sleep_ms(500);
			continue;
		}
		struct rlink *l = rlink_new(t, 0, &e);
		struct rlink_msg m;
		int k = -1;
		if (l && rlink_start_reader(l, &e) == 0 &&
		    rlink_send(l, RLINK_HELLO, r->session, RLINK_MODE_QUERY,
			       NULL, &e) == 0)
			k = rlink_wait_msg(l, 1u << RLINK_ANSWER, 2000, &m, &e);
		rlink_free(l);
		if (k == 1 && m.type == RLINK_ANSWER && m.a == r->session)
			return m.b ? DOUBT_RUNS_THERE : DOUBT_NOT_THERE;
		*why = e;
		sleep_ms(500);
	}
	return DOUBT_UNKNOWN;
}

/* GO, then RUNNING. 0: the guest runs there; -1: it must resume here,
 * unless res->in_doubt. */
static int handover(struct run *r, struct kg_err *e)
{
	r->p.phase = "handover";
	uint64_t t = kg_now_ns();
	if (disks_lock(r->vm, false, e) < 0)
		return -1;
	if (rlink_send(r->link, RLINK_GO, r->session, 0, NULL, e) < 0) {
		/* Not sent: the destination cannot run it. */
		struct kg_err e2;
		if (disks_lock(r->vm, true, &e2) < 0)
			kg_err_prefix(e, "%s; and retaking the disk lock "
				      "failed", e2.msg);
		return -1;
	}
	if (kg_fault_hit(r->o->faults, "migrate.handover", NULL))
		kg_tp_shutdown(rlink_transport(r->link));
	struct rlink_msg m;
	struct kg_err le = { 0 };
	/* The injected cut stands for a link lost right after GO: a
	 * RUNNING that slipped through before it is not looked at. */
	bool cut = kg_fault_hit(r->o->faults, "migrate.handover", NULL);
	int k = cut ? kg_errf(&le, "the link was cut after GO (test injection)")
		    : rlink_wait_msg(r->link, 1u << RLINK_RUNNING,
				     RUNNING_TIMEOUT_MS, &m, &le);
	if (k == 1 && m.type == RLINK_RUNNING) {
		r->res->resume_ms = (double)(kg_now_ns() - t) / 1e6;
		return 0;
	}
	if (k == 1) { /* ABORT: it says it will not run the guest */
		kg_errf(e, "the destination gave up at hand-over: %s", m.text);
	} else {
		if (k == 0)
			kg_errf(&le, "no answer within %d ms", RUNNING_TIMEOUT_MS);
		switch (resolve_doubt(r, e)) {
		case DOUBT_RUNS_THERE:
			r->res->by_query = true;
			return 0;
		case DOUBT_NOT_THERE:
			kg_errf(e, "hand-over failed (%s); the destination does "
				"not run the guest", le.msg);
			break;
		case DOUBT_UNKNOWN:
			r->res->in_doubt = true;
			return kg_errf(e, "hand-over in doubt: GO was sent but "
				       "%s, and the destination cannot be asked "
				       "(%s); the guest stays PAUSED here so it "
				       "cannot run twice — 'resume' only if it "
				       "does not run at %s", le.msg, e->msg,
				       r->o->addr);
		}
	}
	struct kg_err e2;
	if (disks_lock(r->vm, true, &e2) < 0)
		kg_err_prefix(e, "%s; and retaking the disk lock failed",
			      e2.msg);
	return -1;
}

int migrate_run(struct vm *vm, const struct migrate_opts *o,
		migrate_progress_fn fn, void *ctx, struct migrate_result *res,
		struct kg_err *e)
{
	memset(res, 0, sizeof(*res));
	struct throttle th = { .vm = vm };
	struct run r = { .vm = vm, .o = o, .fn = fn, .ctx = ctx, .res = res,
			 .th = &th };
	r.t0 = kg_now_ns();
	r.p.phase = "connect";
	if (getrandom(&r.session, sizeof(r.session), 0) != sizeof(r.session))
		return kg_errno(e, "getrandom");
	pthread_mutex_lock(&vm->lock);
	bool was_paused = vm->req == VM_REQ_PAUSE;
	pthread_mutex_unlock(&vm->lock);
	int rc = -1;
	bool paused_here = false;
	uint64_t pause_ns = 0;
	if (connect_peer(&r, e) < 0)
		goto out;
	r.es = epoch_sender_new_io(vm, &rlink_stream_io, r.link, e);
	if (!r.es)
		goto fail_explained;
	if (o->disk)
		epoch_sender_set_disk(r.es, o->disk, o->disk_ctx);
	if (precopy(&r, e) < 0)
		goto fail_explained;
	throttle_stop(&th);
	pause_ns = kg_now_ns();
	if (!vm_pause_checked(vm)) {
		kg_errf(e, "the VM stopped during the migration");
		goto out;
	}
	paused_here = true;
	res->pause_ms = (double)(kg_now_ns() - pause_ns) / 1e6;
	if (stop_and_copy(&r, e) < 0)
		goto fail_explained;
	if (handover(&r, e) < 0)
		goto out;
	res->downtime_ms = (double)(kg_now_ns() - pause_ns) / 1e6;
	rc = 0;
	goto out;
fail_explained:
	explain_failure(&r, e);
out:
	throttle_stop(&th);
	if (r.link)
		res->bytes = rlink_stream_bytes(r.link);
	if (rc < 0 && r.link && !res->in_doubt) {
		/* Tell the destination, if it still listens, to discard. */
		struct kg_err ignore;
		rlink_send(r.link, RLINK_ABORT, r.session, 0, e->msg, &ignore);
	}
	epoch_sender_free(r.es);
	rlink_free(r.link);
	if (rc < 0 && paused_here && !res->in_doubt && !was_paused)
		vm_resume(vm);
	res->total_ms = (double)(kg_now_ns() - r.t0) / 1e6;
	r.p.phase = rc == 0 ? "done" : "failed";
	progress(&r, true);
	return rc;
}
