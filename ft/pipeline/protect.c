#include "protect.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "vmm/vm.h"
#include "ft/checkpoint/epoch.h"
#include "beatlink.h"
#include "disk_sync.h"
#include "ft/record/recorder.h"
#include "guard.h"
#include "lockstep.h"
#include "rlink.h"
#include "verdict.h"
#include "base/clock.h"
#include "base/log.h"
#include "ft/precopy/precopy.h"

#define SAMPLES 2048
#define CONNECT_RETRY_MS 200
#define MAX_UNACKED 3        /* epochs in flight before we wait */
#define BEAT_MS 20
/* How long the primary keeps its outputs held and tries to reach the
 * secondary again before going on unprotected, at least: from the link's
 * loss, and (FT) from the last echo of the secondary's stamps, which
 * promises as much (RLINK_HOLD); the secondary keeps its replica while
 * the promise lasts. With a lease, long enough for the secondary to take
 * it once ours has run out (protect_start). */
#define RECONNECT_WINDOW_MS 1000

struct protect {
	struct vm *vm;
	struct protect_opts o;
	pthread_t thread;
	atomic_bool stop;
	pthread_mutex_t lock; /* guards the status fields below */
	struct protect_status st;
	uint32_t pause_us[SAMPLES], ack_us[SAMPLES];
	uint64_t npause, nack;
	uint64_t bytes;
	/* the epochs in flight: seq -> the time it was paused */
	uint64_t sent_ns[MAX_UNACKED + 1], sent_seq[MAX_UNACKED + 1];
	bool reseal;       /* the next paused epoch is a session's first */
	uint64_t lost_ns;  /* when the link was lost; 0 while protected */
	unsigned hold_ms;  /* the reconnect window (RLINK_HOLD) */
	/* FT: kg_now_ns() of the last echo sent on either link (the hold
	 * window runs from it too) */
	_Atomic uint64_t echo_ns;
	/* FT: the session now, and where the output held begins: after
	 * epoch rel_seq of session rel_session, released by its ACK;
	 * rel_intact while nothing since went out unacknowledged */
	uint64_t session, rel_session, rel_seq;
	bool rel_intact;
	/* lockstep: the recorder (ours unless the VM had one) and the sink */
	struct recorder *rec;
	bool own_rec;
	struct lockstep_sink *sink;
};

const char *protect_mode_name(enum protect_mode m)
{
	return m == PROTECT_FT ? "ft" : m == PROTECT_HA ? "ha" : "lockstep";
}

/* Outputs held until acknowledged: FT and lockstep. */
static bool holds_output(const struct protect *p)
{
	return p->o.mode != PROTECT_HA;
}

static void set_state(struct protect *p, const char *state, const char *why)
{
	pthread_mutex_lock(&p->lock);
	snprintf(p->st.state, sizeof(p->st.state), "%s", state);
	if (why)
		snprintf(p->st.why, sizeof(p->st.why), "%s", why);
	pthread_mutex_unlock(&p->lock);
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static struct rlink *connect_secondary(struct protect *p, struct kg_err *e)
{
	struct kg_tp_opts to;
	kg_tp_opts_default(&to);
	to.max_frame = RLINK_MAX_FRAME;
	to.connect_timeout_ms = 1000;
	/* The handshake must not hold up a stop for long; the first copy
	 * is then streamed patiently (replicate() tightens it after). */
	to.io_timeout_ms = 2000;
	if (p->o.have_key)
		to.key = &p->o.key;
	if (p->o.have_fault)
		to.fault = &p->o.fault;
	struct kg_transport *t;
	if (kg_tp_connect(p->o.peer, &to, &t, e) < 0)
		return NULL;
	kg_tp_set_io_timeout(t, 10000);
	return rlink_new(t, 0, e);
}

static void on_pause(void *ctx, uint64_t seq)
{
	struct protect *p = ctx;
	if (p->o.mode != PROTECT_FT)
		return;
	/* A new session's epoch numbers start over: what is still held
	 * from the last one belongs to its first epoch. */
	if (p->reseal)
		outbuf_reseal(p->vm->out, seq);
	else
		outbuf_seal(p->vm->out, seq);
	p->reseal = false;
}

static int wait_ack(struct rlink *l, uint64_t seq, struct kg_err *e)
{
	for (;;) {
		struct rlink_msg m;
		int k = rlink_wait_msg(l, 1u << RLINK_ACK, 5000, &m, e);
		if (k < 0)
			return -1;
		if (k == 0)
			return kg_errf(e, "no acknowledgement of round %llu",
				       (unsigned long long)seq);
		if (m.type == RLINK_ABORT)
			return kg_errf(e, "the secondary gave up: %s", m.text);
		if (m.a >= seq)
			return 0;
	}
}

/* The initial copy while the guest runs, as a migration's pre-copy (the
 * pre-copy engine's rounds, precopy_policy_first_copy). */
struct first_copy {
	struct protect *p;
	struct rlink *l;
	struct epoch_sender *es;
	bool first_all; /* false after a hash round: its pages are asked for */
	uint64_t *acked;
};

static int sync_round(void *ctx, bool first, struct precopy_round *r,
		      struct kg_err *e)
{
	struct first_copy *fc = ctx;
	struct protect *p = fc->p;
	struct epoch_stats st;
	if (atomic_load(&p->stop))
		return kg_errf(e, "stopped");
	if (epoch_send_live(fc->es, first && fc->first_all, NULL, NULL, &st,
			    e) < 0 ||
	    wait_ack(fc->l, st.seq, e) < 0)
		return -1;
	*fc->acked = st.seq;
	if (first) {
		uint64_t b = st.stream_bytes - st.disk_bytes;
		pthread_mutex_lock(&p->lock);
		if (fc->first_all)
			p->st.full_copy_ram_bytes = b;
		else
			p->st.assisted_copy_ram_bytes =
				p->st.resync_hash_bytes + b;
		pthread_mutex_unlock(&p->lock);
	}
	r->units = st.dirty_pages;
	r->bytes = st.stream_bytes;
	return 0;
}

static int sync_pending(void *ctx, uint64_t *dirty, struct kg_err *e)
{
	struct first_copy *fc = ctx;
	return epoch_dirty_pending(fc->es, dirty, e);
}

static const struct precopy_ops first_copy_precopy = {
	.round = sync_round, .pending = sync_pending,
};

static int sync_live(struct protect *p, struct rlink *l,
		     struct epoch_sender *es, bool first_all, uint64_t *acked,
		     struct kg_err *e)
{
	set_state(p, "syncing", NULL);
	struct first_copy fc = { p, l, es, first_all, acked };
	struct precopy_policy pp = precopy_policy_first_copy();
	struct precopy_state s;
	/* The first paused epoch takes what is left. */
	return precopy_run(&s, &pp, &first_copy_precopy, &fc, e);
}

static void sample(uint32_t *arr, uint64_t *n, uint64_t us)
{
	arr[(*n)++ % SAMPLES] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static void percentiles(const uint32_t *arr, uint64_t n, double *p50,
			double *p99)
{
	size_t k = n < SAMPLES ? (size_t)n : SAMPLES;
	*p50 = *p99 = 0;
	if (!k)
		return;
	uint32_t *c = malloc(k * sizeof(*c));
	if (!c)
		return;
	memcpy(c, arr, k * sizeof(*c));
	qsort(c, k, sizeof(*c), cmp_u32);
	*p50 = c[k / 2];
	*p99 = c[k * 99 / 100];
	free(c);
}

/* ACKs that arrived: release their outputs; 0 or -1 (link failed). */
static int take_acks(struct protect *p, struct rlink *l, int timeout_ms,
		     uint64_t *acked, struct kg_err *e)
{
	struct rlink_msg m;
	int k = rlink_wait_msg(l, 1u << RLINK_ACK, timeout_ms, &m, e);
	if (k < 0)
		return -1;
	if (k == 0)
		return 0;
	if (m.type == RLINK_ABORT)
		return kg_errf(e, "the secondary gave up: %s", m.text);
	if (m.a <= *acked)
		return 0;
	*acked = m.a;
	if (holds_output(p))
		outbuf_release(p->vm->out, m.a);
	if (p->o.mode == PROTECT_FT) {
		p->rel_session = p->session;
		p->rel_seq = m.a;
		p->rel_intact = true;
	}
	uint64_t now = kg_now_ns();
	pthread_mutex_lock(&p->lock);
	for (unsigned i = 0; i <= MAX_UNACKED; i++)
		if (p->sent_seq[i] == m.a)
			sample(p->ack_us, &p->nack, (now - p->sent_ns[i]) / 1000);
	p->st.acked = m.a;
	p->st.protected_ = true;
	p->lost_ns = 0;
	p->st.why[0] = 0;
	snprintf(p->st.state, sizeof(p->st.state), "protected");
	pthread_mutex_unlock(&p->lock);
	return 0;
}

/* Lockstep, a secondary that still holds a replica (one that diverged,
 * or a link that broke): a round of page hashes instead of pages, and
 * only the pages that differ go in the next round. 1 done, 0 not
 * possible here (a full copy follows), -1 the link failed. */
static int sync_by_hashes(struct protect *p, struct rlink *l,
			  struct epoch_sender *es, uint64_t *acked,
			  struct kg_err *e)
{
	struct rlink_msg m;
	int k = rlink_wait_msg(l, 1u << RLINK_HAVE, 2000, &m, e);
	if (k < 0)
		return -1;
	if (k == 0 || m.type != RLINK_HAVE || m.a != p->vm->mem.size)
		return 0;
	set_state(p, "syncing", NULL);
	struct epoch_stats st;
	uint64_t data_pages, needed = 0;
	if (epoch_send_hashes(es, &st, &data_pages, e) < 0)
		return -1;
	for (;;) {
		k = rlink_wait_msg(l, 1u << RLINK_NEED, 5000, &m, e);
		if (k < 0)
			return -1;
		if (k == 0)
			return kg_errf(e, "no answer to the page hashes");
		if (m.type == RLINK_ABORT)
			return kg_errf(e, "the secondary gave up: %s", m.text);
		if (m.a == UINT64_MAX)
			break;
		size_t len = strlen(m.text);
		for (uint64_t b = 0; b < m.b && b / 4 < len; b++) {
			char c = m.text[b / 4];
			unsigned v = c >= 'a' ? (unsigned)(c - 'a' + 10)
					      : (unsigned)(c - '0');
			if (v < 16 && (v >> (b % 4) & 1)) {
				epoch_sender_need(es, m.a + b, 1);
				needed++;
			}
		}
	}
	if (wait_ack(l, st.seq, e) < 0)
		return -1;
	*acked = st.seq;
	pthread_mutex_lock(&p->lock);
	p->st.hash_resyncs++;
	p->st.resync_hash_bytes = st.stream_bytes - st.disk_bytes;
	p->st.resync_pages_needed = needed;
	p->st.resync_data_pages = data_pages;
	pthread_mutex_unlock(&p->lock);
	return 1;
}

/* Lockstep: one paused epoch (the state at the log's first exit), then
 * the log; ACKs release the outputs each section sealed. */
static int follow_log(struct protect *p, struct rlink *l,
		      struct epoch_sender *es, struct kg_err *e)
{
	struct vm *vm = p->vm;
	struct epoch_stats st;
	uint64_t t = kg_now_ns();
	outbuf_hold(vm->out, true);
	if (!vm_pause_checked(vm)) {
		vm_resume(vm);
		return kg_errf(e, "the VM is stopping");
	}
	int rc = epoch_send_final(es, &st, e);
	if (rc == 0) {
		/* What is held belongs to the state just sent. */
		outbuf_reseal(vm->out, st.seq);
		rc = lockstep_sink_attach(p->sink, l, epoch_sender_writer(es),
					  st.seq, e);
	}
	uint64_t paused_us = (kg_now_ns() - t) / 1000;
	vm_resume(vm);
	if (rc < 0)
		return -1;
	pthread_mutex_lock(&p->lock);
	sample(p->pause_us, &p->npause, paused_us);
	p->st.epochs = st.seq;
	p->sent_seq[0] = st.seq;
	p->sent_ns[0] = t;
	pthread_mutex_unlock(&p->lock);
	kg_tp_set_io_timeout(rlink_transport(l), (int)p->o.failover_ms * 2);
	uint64_t acked = 0, last_beat = 0;
	uint64_t ack_ms = p->o.failover_ms * 5 < 1000
				  ? 1000 : (uint64_t)p->o.failover_ms * 5;
	while (!atomic_load(&p->stop)) {
		char why[600];
		if (lockstep_sink_failed(p->sink, why, sizeof(why)))
			return kg_errf(e, "%s", why);
		uint64_t sent = lockstep_sink_sent(p->sink);
		uint64_t before = acked;
		/* One ACK per section: take all that queued up. */
		for (int i = 0; i < 4096; i++) {
			uint64_t was = acked;
			if (take_acks(p, l, i ? 0 : 5, &acked, e) < 0)
				return -1;
			if (acked == was)
				break;
		}
		uint64_t now = kg_now_ns();
		if (acked > before) {
			uint64_t ts = lockstep_sink_sent_ns(p->sink, acked);
			pthread_mutex_lock(&p->lock);
			if (ts)
				sample(p->ack_us, &p->nack, (now - ts) / 1000);
			p->st.epochs = sent;
			p->bytes = rlink_stream_bytes(l);
			pthread_mutex_unlock(&p->lock);
		}
		uint64_t oldest = lockstep_sink_sent_ns(p->sink, acked + 1);
		/* The vCPU may have sent it after `now` was read. */
		if (oldest && now > oldest && now - oldest > ack_ms * 1000000u)
			return kg_errf(e, "the secondary acknowledged no log for "
				       "%llu ms", (unsigned long long)ack_ms);
		/* An idle guest sends no log: show we are alive. */
		if (now - last_beat >= (uint64_t)BEAT_MS * 1000000u) {
			if (rlink_send(l, RLINK_BEAT, now / 1000000, 0, NULL,
				       e) < 0)
				return -1;
			last_beat = now;
		}
	}
	/* The guest ended (no vCPU runs): its last exits go too, so the
	 * replica can replay to the same end. */
	if (vm->req == VM_REQ_STOP) {
		struct kg_err ignore;
		recorder_flush(p->rec, &ignore);
	}
	return 0;
}

/* The heartbeat link of this session (beatlink.h), right after HELLO;
 * without one (it failed, or the secondary never took it) failure
 * detection is the data link's I/O timeout, as before. */
static struct beatlink *start_beats(struct protect *p, struct rlink *l,
				    uint64_t session)
{
	struct kg_tp_opts to;
	kg_tp_opts_default(&to);
	to.connect_timeout_ms = 1000;
	to.io_timeout_ms = 2000;
	if (p->o.have_key)
		to.key = &p->o.key;
	struct kg_transport *t;
	struct kg_err e = { 0 };
	if (beatlink_connect(p->o.peer, &to, session, &t, &e) < 0) {
		kg_log(KG_LOG_INFO, "%s: failure detection on the data link "
		       "alone", e.msg);
		return NULL;
	}
	/* Silence from the secondary was judged over 2x the failover
	 * timeout here, and still is. */
	struct beatlink_opts bo;
	beatlink_opts_default(&bo, p->o.failover_ms, 2 * p->o.failover_ms);
	bo.echo = p->o.mode == PROTECT_FT;
	struct beatlink *b = beatlink_start(t, l, &bo, &e);
	if (!b)
		kg_log(KG_LOG_INFO, "%s: failure detection on the data link "
		       "alone", e.msg);
	return b;
}

/* An FT data-link BEAT echoes the secondary's newest stamp (RLINK_HOLD). */
static int send_beat(struct protect *p, struct rlink *l, struct kg_err *e)
{
	uint64_t echo = p->o.mode == PROTECT_FT ? rlink_peer_stamp(l) : 0;
	uint64_t now = kg_now_ns();
	if (echo)
		atomic_store(&p->echo_ns, now);
	return rlink_send(l, RLINK_BEAT, now / 1000000, echo, NULL, e);
}

static int replicate(struct protect *p, struct rlink *l, struct kg_err *e)
{
	struct vm *vm = p->vm;
	uint64_t session;
	if (getrandom(&session, sizeof(session), 0) != sizeof(session))
		return kg_errno(e, "getrandom");
	bool beats = p->o.mode != PROTECT_LOCKSTEP;
	uint64_t mode = (p->o.mode == PROTECT_FT ? RLINK_MODE_FT
			 : p->o.mode == PROTECT_HA ? RLINK_MODE_HA
						   : RLINK_MODE_LOCKSTEP) |
			RLINK_F_STORAGE | (beats ? RLINK_F_BEATS : 0);
	if (rlink_start_reader(l, e) < 0 ||
	    rlink_send(l, RLINK_HELLO, session, mode, NULL, e) < 0)
		return -1;
	struct beatlink *bl = beats ? start_beats(p, l, session) : NULL;
	int rc = -1;
	if (p->o.mode == PROTECT_FT) {
		/* What the replica this secondary may still hold can rely on:
		 * our promise, and where our held output begins. */
		if (rlink_send(l, RLINK_HOLD, p->hold_ms, 0, NULL, e) < 0 ||
		    (p->rel_intact && outbuf_holding(vm->out) &&
		     rlink_send(l, RLINK_HELD, p->rel_session, p->rel_seq,
				NULL, e) < 0))
			goto out_beats;
	}
	p->session = session;
	for (unsigned i = 0; i < vm->cfg.ndisks; i++)
		if (rlink_send(l, RLINK_DISK, i, virtio_blk_size(vm->blks[i]),
			       NULL, e) < 0)
			goto out_beats;
	struct disk_sync ds;
	if (vm->cfg.ndisks && disk_sync_init(&ds, vm, e) < 0)
		goto out_beats;
	struct epoch_sender *es = epoch_sender_new_io(vm, &rlink_stream_io, l, e);
	if (!es)
		goto out;
	if (vm->cfg.ndisks)
		epoch_sender_set_disk(es, &disk_sync_ops, &ds);
	epoch_sender_set_pause_hook(es, on_pause, p);
	uint64_t acked = 0;
	bool first_all = true;
	if (p->o.mode == PROTECT_LOCKSTEP) {
		int h = sync_by_hashes(p, l, es, &acked, e);
		if (h < 0)
			goto out;
		first_all = h == 0;
	}
	if (sync_live(p, l, es, first_all, &acked, e) < 0)
		goto out;
	if (p->o.mode == PROTECT_LOCKSTEP) {
		rc = follow_log(p, l, es, e);
		goto out;
	}
	/* From here the secondary beats every failover_ms / 4: silence
	 * this long means it is gone. With a heartbeat link, its watch
	 * judges silence on both links. */
	if (bl) {
		kg_tp_set_io_timeout(rlink_transport(l),
				     beatlink_data_timeout_ms(p->o.failover_ms));
		beatlink_arm(bl);
	} else {
		kg_tp_set_io_timeout(rlink_transport(l),
				     (int)p->o.failover_ms * 2);
	}
	if (p->o.mode == PROTECT_FT) {
		outbuf_hold(vm->out, true);
		/* Whatever went out so far, every epoch of this session
		 * covers it. */
		if (!p->rel_intact) {
			p->rel_session = session;
			p->rel_seq = 0;
			p->rel_intact = true;
		}
	}
	unsigned period = p->o.mode == PROTECT_FT ? p->o.epoch_ms
						  : p->o.interval_ms;
	uint64_t next = kg_now_ns();
	p->reseal = true;
	/* The encoder thread fills st after epoch_send returns: it must
	 * outlive the loop until epoch_sender_free joins that thread. */
	struct epoch_stats st;
	while (!atomic_load(&p->stop)) {
		uint64_t t = kg_now_ns();
		if (epoch_send(es, false, &st, e) < 0)
			goto out;
		pthread_mutex_lock(&p->lock);
		sample(p->pause_us, &p->npause, st.pause_us);
		p->sent_seq[st.seq % (MAX_UNACKED + 1)] = st.seq;
		p->sent_ns[st.seq % (MAX_UNACKED + 1)] = t;
		p->st.epochs = st.seq;
		pthread_mutex_unlock(&p->lock);
		/* Until the next epoch is due, take ACKs; never more than
		 * MAX_UNACKED epochs in flight. */
		next += (uint64_t)period * 1000000u;
		for (;;) {
			uint64_t now = kg_now_ns();
			bool behind = st.seq - acked >= MAX_UNACKED;
			if (!behind && now >= next)
				break;
			/* A secondary that hears us but acknowledges nothing
			 * (a one-way cut) is as gone as a silent one. */
			uint64_t oldest = p->sent_ns[(acked + 1) %
						     (MAX_UNACKED + 1)];
			/* Generous: a large epoch takes a while to apply,
			 * and the secondary's silence detection is the
			 * fast path; this catches a one-way cut. With a
			 * heartbeat link a one-way cut silences beats too,
			 * and a slow but beating secondary gets the data
			 * link's backstop. */
			uint64_t ack_ms = p->o.failover_ms * 5 < 1000
				? 1000 : (uint64_t)p->o.failover_ms * 5;
			if (bl)
				ack_ms = (uint64_t)beatlink_data_timeout_ms(
					p->o.failover_ms);
			if (behind && now - oldest > ack_ms * 1000000u) {
				kg_errf(e, "the secondary acknowledged nothing "
					"for %llu ms", (unsigned long long)ack_ms);
				goto out;
			}
			int wait = behind ? 5
				: (int)((next - now) / 1000000u) + 1;
			if (wait > BEAT_MS)
				wait = BEAT_MS;
			if (take_acks(p, l, wait, &acked, e) < 0)
				goto out;
			/* A long HA interval: show we are alive. */
			if (!behind && kg_now_ns() < next &&
			    send_beat(p, l, e) < 0)
				goto out;
			if (atomic_load(&p->stop))
				break;
		}
		if (kg_now_ns() > next + (uint64_t)period * 1000000u)
			next = kg_now_ns(); /* fell behind: no burst */
		if (epoch_wait(es, e) < 0)
			goto out;
		p->bytes += st.stream_bytes;
	}
	rc = 0;
out:
	if (p->sink) {
		/* The digests' page hashes give the dirty log back to the
		 * next session's first copy. */
		lockstep_sink_down(p->sink);
		bool paused = vm_pause_checked(vm);
		struct kg_err ignore;
		recorder_set_sink(p->rec, NULL, &ignore);
		if (paused)
			vm_resume(vm);
	}
	epoch_sender_free(es);
	if (vm->cfg.ndisks)
		disk_sync_fini(&ds);
out_beats:
	if (bl) {
		/* The watch cut the link: silence is the reason. */
		if (rc < 0)
			beatlink_suspected(bl, e);
		/* Not a stop: another session follows (or, its window
		 * over, the guest goes on unprotected, and the secondary's
		 * promise runs out first): the secondary, alive, should
		 * keep its replica rather than take over. */
		if (rc < 0 && !atomic_load(&p->stop) &&
		    vm->req != VM_REQ_STOP)
			beatlink_send_again(bl);
		uint64_t sent = beatlink_echo_sent_ns(bl);
		if (sent > atomic_load(&p->echo_ns))
			atomic_store(&p->echo_ns, sent);
		beatlink_free(bl);
	}
	return rc;
}

/* The secondary is gone or cut off: with a guard, go on only while the
 * lease is ours (else the secondary may be taking over). A failed
 * guard_confirm has fenced the VM (paused, whatever else would resume
 * it); wait until the lease is confirmed, which lifts the fence, or until
 * the guard sees another holder (the guard stops the VM then). */
static void fence(struct protect *p, const struct kg_err *why)
{
	struct kg_err ge;
	if (!p->o.guard || guard_confirm(p->o.guard, &ge))
		return;
	kg_log(KG_LOG_INFO, "the secondary is unreachable (%s) and the "
		"lease cannot be confirmed (%s): the guest is PAUSED so that "
		"it cannot run twice", why->msg, ge.msg);
	set_state(p, "fenced", ge.msg);
	while (!atomic_load(&p->stop) && p->vm->req != VM_REQ_STOP &&
	       !guard_fenced(p->o.guard)) {
		sleep_ms(100);
		if (guard_confirm(p->o.guard, &ge)) {
			kg_log(KG_LOG_INFO, "the lease is ours again: the "
				"guest resumes, unprotected");
			return;
		}
	}
	if (guard_fenced(p->o.guard))
		vm_request_stop(p->vm, VM_STOP_ERROR, 0, "split-brain guard: "
				"another side holds the lease; this copy stops");
}

/* Connects, replicates until the link fails, and starts over: a secondary
 * that comes back (or the same one after a corrupted link) gets a fresh
 * copy. Until then the VM runs UNPROTECTED, and says so once. */
static void *protect_thread(void *arg)
{
	struct protect *p = arg;
	bool said = false;
	while (!atomic_load(&p->stop)) {
		struct kg_err e = { 0 };
		set_state(p, said ? "unprotected" : "connecting", NULL);
		struct rlink *l = connect_secondary(p, &e);
		/* A test's fault applies to the first connection only. */
		p->o.have_fault = false;
		int r = l ? replicate(p, l, &e) : -1;
		bool vm_stopping = p->vm->req == VM_REQ_STOP;
		if (l && r < 0 && !atomic_load(&p->stop) && !vm_stopping) {
			pthread_mutex_lock(&p->lock);
			p->st.links_lost++;
			pthread_mutex_unlock(&p->lock);
		}
		if (l && (atomic_load(&p->stop) || vm_stopping)) {
			/* Not a failure: tell the secondary not to take over. */
			struct kg_err ignore;
			rlink_send(l, RLINK_ABORT, 0, 0, "the primary stopped "
				   "protecting the VM (it ended or was stopped)",
				   &ignore);
			/* Until the secondary closes: closing first, with its
			 * ACKs unread, would reset the connection and could
			 * lose the ABORT on the way. */
			struct rlink_msg m;
			rlink_wait_msg(l, 0, 1000, &m, &ignore);
		}
		rlink_free(l);
		bool ending = atomic_load(&p->stop) || vm_stopping || r == 0;
		pthread_mutex_lock(&p->lock);
		if (!p->lost_ns)
			p->lost_ns = kg_now_ns();
		uint64_t since = p->lost_ns;
		pthread_mutex_unlock(&p->lock);
		/* Our promise (RLINK_HOLD) runs from the last echo. */
		if (atomic_load(&p->echo_ns) > since)
			since = atomic_load(&p->echo_ns);
		bool in_window = kg_now_ns() - since <
				 (uint64_t)p->hold_ms * 1000000u;
		/* Refused: no secondary process, so no replica to respect. */
		bool gone = !l && protect_connect_verdict(e.kind) ==
					  PROTECT_SECONDARY_GONE;
		if (!ending && !gone && holds_output(p) && in_window &&
		    outbuf_holding(p->vm->out)) {
			/* A corrupted frame or a blip: the secondary keeps its
			 * replica for a while. Outputs stay held — the guest
			 * runs on, unseen — until a new session covers them or
			 * the window closes. */
			if (l)
				kg_log(KG_LOG_INFO, "replication to %s lost: %s; "
				       "reconnecting, outputs held", p->o.peer,
				       e.msg);
			set_state(p, "reconnecting", e.msg);
			sleep_ms(50);
			continue;
		}
		if (!ending)
			fence(p, &e);
		/* Whatever happened, nothing waits for an ACK any more: held
		 * output goes out, unless another side took over. */
		if (guard_fenced(p->o.guard))
			outbuf_discard(p->vm->out);
		else
			outbuf_hold(p->vm->out, false);
		p->rel_intact = false;
		pthread_mutex_lock(&p->lock);
		p->st.protected_ = false;
		pthread_mutex_unlock(&p->lock);
		if (atomic_load(&p->stop) || vm_stopping || r == 0) {
			set_state(p, "stopped", NULL);
			break;
		}
		if (!said)
			kg_log(KG_LOG_INFO, "replication to %s %s: %s; the "
				"VM runs UNPROTECTED (reconnecting; 'ctl protect "
				"--peer ADDR' for another secondary)",
				p->o.peer, p->st.acked ? "lost" : "not established",
				e.msg);
		/* At once after a lost link (a corrupted one: the secondary
		 * holds its replica for us), then every second. */
		int wait = said ? 10 : 1;
		/* The outage's first reason is the one worth showing: later
		 * attempts mostly fail to connect. */
		set_state(p, "unprotected", said ? NULL : e.msg);
		said = true;
		for (int i = 0; i < wait && !atomic_load(&p->stop); i++)
			sleep_ms(CONNECT_RETRY_MS / 2);
	}
	pthread_mutex_lock(&p->lock);
	p->st.running = false;
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* The log is recorded from the guest's first exit (or, after a takeover,
 * by the recorder already in place); it reaches a secondary once synced. */
static int start_lockstep(struct protect *p, struct kg_err *e)
{
	if (!p->vm->cfg.deterministic)
		return kg_errf(e, "--replicate lockstep needs a deterministic VM "
			       "(one vCPU, kagami's PIC and PIT): start it with "
			       "'kagami run --replicate lockstep'");
	p->rec = recorder_of(p->vm);
	if (!p->rec) {
		struct recorder_opts ro = {
			.digest_ns = LOCKSTEP_DIGEST_MS * 1000000ull,
			.flush_ns = LOCKSTEP_FLUSH_MS * 1000000ull,
		};
		if (!(p->rec = recorder_new(p->vm, &ro, e)))
			return -1;
		p->own_rec = true;
	}
	if (!(p->sink = lockstep_sink_new(p->vm, p->rec, e))) {
		if (p->own_rec)
			recorder_free(p->rec);
		return -1;
	}
	return 0;
}

static void stop_lockstep(struct protect *p)
{
	if (p->sink) {
		lockstep_sink_down(p->sink);
		struct kg_err e;
		recorder_set_sink(p->rec, NULL, &e);
	}
	lockstep_sink_free(p->sink);
	if (p->own_rec)
		recorder_free(p->rec);
	p->sink = NULL;
	p->rec = NULL;
}

struct protect *protect_start(struct vm *vm, const struct protect_opts *o,
			      struct kg_err *e)
{
	struct protect *p = calloc(1, sizeof(*p));
	if (!p) {
		kg_errf(e, "out of memory");
		return NULL;
	}
	p->vm = vm;
	p->o = *o;
	if (!p->o.epoch_ms)
		p->o.epoch_ms = 10;
	if (!p->o.interval_ms)
		p->o.interval_ms = 1000;
	if (!p->o.failover_ms)
		p->o.failover_ms = 100;
	/* With a lease the secondary can resume only once ours has run
	 * out, which may take a ttl after our death, and its tries take
	 * up to two more: it must still hold our promise by then (FT; the
	 * window stays as it was for lockstep). */
	unsigned ttl = guard_ttl_ms(o->guard);
	p->hold_ms = RECONNECT_WINDOW_MS;
	if (o->mode == PROTECT_FT && 3 * ttl + 2 * p->o.failover_ms > p->hold_ms)
		p->hold_ms = 3 * ttl + 2 * p->o.failover_ms;
	if (o->mode == PROTECT_LOCKSTEP && start_lockstep(p, e) < 0) {
		free(p);
		return NULL;
	}
	pthread_mutex_init(&p->lock, NULL);
	p->st.running = true;
	int r = pthread_create(&p->thread, NULL, protect_thread, p);
	if (r) {
		pthread_mutex_destroy(&p->lock);
		stop_lockstep(p);
		free(p);
		errno = r;
		kg_errno(e, "replication: pthread_create");
		return NULL;
	}
	return p;
}

void protect_stop(struct protect *p)
{
	if (!p)
		return;
	atomic_store(&p->stop, true);
	pthread_join(p->thread, NULL);
	stop_lockstep(p);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

void protect_get_status(struct protect *p, struct protect_status *st)
{
	pthread_mutex_lock(&p->lock);
	*st = p->st;
	percentiles(p->pause_us, p->npause, &st->pause_p50_us,
		    &st->pause_p99_us);
	percentiles(p->ack_us, p->nack, &st->ack_p50_us, &st->ack_p99_us);
	st->bytes_per_epoch = st->epochs ? (double)p->bytes / (double)st->epochs
					 : 0;
	pthread_mutex_unlock(&p->lock);
	struct outbuf_stats os;
	outbuf_stats(p->vm->out, &os);
	st->hold_p50_us = os.hold_p50_us;
	st->hold_p99_us = os.hold_p99_us;
}
