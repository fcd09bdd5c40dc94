#include "incoming.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm/vm.h"
#include "beatlink.h"
#include "rlink.h"
#include "verdict.h"
#include "base/clock.h"
#include "base/log.h"

#define ANSWER_POLL_MS 300
/* How long the primary's heartbeat link may take to follow its HELLO. */
#define BEATS_ACCEPT_MS 2000

static void maybe_die(const struct incoming *in, const char *phase)
{
	char point[32];
	snprintf(point, sizeof(point), "receive.%s", phase);
	kg_fault_hit(in->faults, point, NULL);
}

static int accept_link(struct kg_tp_listener *l, struct rlink **out,
		       struct kg_err *e)
{
	struct kg_transport *t;
	if (kg_tp_accept(l, &t, e) < 0)
		return -1;
	*out = rlink_new(t, 0, e);
	return *out ? 0 : -1;
}

/* The first message of a connection: HELLO, within the I/O timeout. */
static int read_hello(struct rlink *l, struct rlink_msg *m, struct kg_err *e)
{
	int k = rlink_next(l, m, e);
	if (k < 0)
		return -1;
	if (k != 1 || m->type != RLINK_HELLO)
		return kg_errk(e, KG_ERR_CORRUPT, "%s: expected HELLO first",
			       rlink_peer(l));
	return 0;
}

#define BEAT_MS 1000

static void *beat_thread(void *arg)
{
	struct incoming *in = arg;
	while (!atomic_load(&in->beat_stop)) {
		struct kg_err e;
		/* CLOCK_BOOTTIME: an FT primary echoes it (RLINK_HOLD), and a
		 * promise must run out across a suspend. */
		if (rlink_send(in->link, RLINK_BEAT,
			       kg_boottime_ns() / 1000000, 0, NULL, &e) < 0)
			return NULL; /* the main loop meets the error too */
		unsigned ms = in->beat_ms ? in->beat_ms : BEAT_MS;
		for (unsigned i = 0; i < ms && !atomic_load(&in->beat_stop);
		     i += 5)
			usleep(5000);
	}
	return NULL;
}

static void beat_stop(struct incoming *in)
{
	if (!in->beating)
		return;
	atomic_store(&in->beat_stop, true);
	pthread_join(in->beat, NULL);
	in->beating = false;
}

/* The primary's second connection, for heartbeats; without it the data
 * link's I/O timeout detects failure, as it did before. */
static void start_beats(struct incoming *in, struct kg_tp_listener *l)
{
	struct kg_transport *t;
	struct kg_err e = { 0 };
	unsigned fo = in->failover_ms > 0 ? (unsigned)in->failover_ms : 100;
	if (beatlink_accept(l, in->session, BEATS_ACCEPT_MS, &t, &e) < 0) {
		kg_log(KG_LOG_INFO, "%s: failure detection on the data link "
		       "alone", e.msg);
		return;
	}
	struct beatlink_opts bo;
	beatlink_opts_default(&bo, fo, fo);
	in->beats = beatlink_start(t, in->link, &bo, &e);
	if (!in->beats)
		kg_log(KG_LOG_INFO, "%s: failure detection on the data link "
		       "alone", e.msg);
}

int incoming_begin(struct incoming *in, struct kg_tp_listener *l,
		   struct vm_state_config *c, struct kg_err *e)
{
	struct rlink_msg m;
	for (;;) {
		if (accept_link(l, &in->link, e) < 0)
			return -1;
		if (read_hello(in->link, &m, e) < 0)
			goto fail;
		if ((m.b & 0xff) != RLINK_MODE_QUERY)
			break;
		/* A source in doubt about another session: not here. */
		struct kg_err ignore;
		rlink_send(in->link, RLINK_ANSWER, m.a, 0, NULL, &ignore);
		rlink_free(in->link);
		in->link = NULL;
	}
	in->session = m.a;
	in->mode = m.b;
	unsigned mode = m.b & 0xff;
	bool ok = in->standby ? mode == RLINK_MODE_FT || mode == RLINK_MODE_HA ||
				mode == RLINK_MODE_LOCKSTEP
			      : mode == RLINK_MODE_MIGRATE;
	if (!ok) {
		kg_errk(e, KG_ERR_INVALID, "%s: mode %u is not %s",
			rlink_peer(in->link), mode,
			in->standby ? "ft, ha or lockstep (this is a secondary)"
				    : "a migration (this is kagami receive)");
		goto refuse;
	}
	maybe_die(in, "hello");
	if (mode == RLINK_MODE_LOCKSTEP &&
	    rlink_send(in->link, RLINK_HAVE, in->have_mem, 0, NULL, e) < 0)
		goto fail;
	if (in->standby && (in->mode & RLINK_F_BEATS))
		start_beats(in, l);
	atomic_store(&in->beat_stop, false);
	if (pthread_create(&in->beat, NULL, beat_thread, in) == 0)
		in->beating = true;
	for (;;) {
		int k = rlink_next(in->link, &m, e);
		if (k < 0)
			goto fail;
		if (k == 2) {
			kg_errk(e, KG_ERR_PEER_GONE,
				"%s closed before the configuration",
				rlink_peer(in->link));
			goto fail;
		}
		if (k == 0)
			break; /* the stream starts */
		if (m.type == RLINK_ABORT) {
			kg_errk(e, KG_ERR_REFUSED, "the source gave up: %s",
				m.text);
			goto fail;
		}
		if (m.type == RLINK_HOLD && in->standby) {
			in->hold_ms = m.a;
			continue;
		}
		if (m.type == RLINK_HELD && in->standby) {
			in->have_held = true;
			in->held_session = m.a;
			in->held_seq = m.b;
			continue;
		}
		if (m.type != RLINK_DISK || m.a != in->ndisk_sizes ||
		    m.a >= sizeof(in->disk_size) / sizeof(in->disk_size[0])) {
			kg_errk(e, KG_ERR_CORRUPT, "%s: unexpected %s message "
				"before the stream", rlink_peer(in->link),
				rlink_msg_name(m.type));
			goto refuse;
		}
		in->disk_size[in->ndisk_sizes++] = m.b;
	}
	in->er = epoch_receiver_new_io(&rlink_stream_io, in->link, c, e);
	if (!in->er)
		goto refuse;
	kg_budget_init(&in->budget, in->max_stream_memory
					    ? in->max_stream_memory
					    : kg_budget_default(c->mem_size));
	kg_reader_set_budget(epoch_receiver_reader(in->er), &in->budget);
	if (c->ndisks != in->ndisk_sizes) {
		kg_errk(e, KG_ERR_CORRUPT,
			"the source announced %u disk sizes for %u disks",
			in->ndisk_sizes, c->ndisks);
		goto refuse;
	}
	return 0;
refuse:
	incoming_abort(in, e->msg);
fail:
	beat_stop(in);
	beatlink_free(in->beats);
	in->beats = NULL;
	rlink_free(in->link);
	in->link = NULL;
	return -1;
}

void incoming_abort(struct incoming *in, const char *why)
{
	struct kg_err ignore;
	if (in->link)
		rlink_send(in->link, RLINK_ABORT, in->session, 0, why, &ignore);
}

int incoming_receive(struct incoming *in, struct vm *vm,
		     const struct epoch_disk_sink *disk, void *ctx,
		     struct kg_err *e)
{
	epoch_receiver_attach(in->er, vm);
	if (disk)
		epoch_receiver_set_disk(in->er, disk, ctx);
	for (;;) {
		struct rlink_msg m;
		int k = rlink_next(in->link, &m, e);
		if (k < 0)
			goto fail;
		if (k == 2) {
			kg_errk(e, KG_ERR_PEER_GONE,
				"%s closed the connection before hand-over",
				rlink_peer(in->link));
			goto fail;
		}
		if (k == 1) {
			if (m.type == RLINK_ABORT) {
				kg_errk(e, KG_ERR_REFUSED, "the source gave up: %s",
					m.text);
				goto fail;
			}
			if (m.type == RLINK_GO && m.a == in->session &&
			    epoch_receiver_committed(in->er)) {
				maybe_die(in, "go");
				return 0;
			}
			if (m.type == RLINK_BEAT)
				continue;
			kg_errk(e, KG_ERR_CORRUPT, "%s: unexpected %s",
				rlink_peer(in->link), rlink_msg_name(m.type));
			goto refuse;
		}
		struct epoch_stats st;
		int r = epoch_receive(in->er, &st, e);
		in->bytes += st.stream_bytes;
		if (r < 0)
			goto refuse;
		if (r == 0) {
			kg_errf(e, "the stream ended before hand-over");
			goto refuse;
		}
		if (st.live) {
			in->rounds++;
			maybe_die(in, "round");
			if (rlink_send(in->link, RLINK_ACK, st.seq, 0, NULL, e) < 0)
				goto fail;
			continue;
		}
		in->epochs++;
		maybe_die(in, "final");
		if (rlink_send(in->link, RLINK_READY, st.seq, 0, NULL, e) < 0)
			goto fail;
	}
refuse:
	incoming_abort(in, e->msg);
fail:
	return -1;
}

/* incoming_follow's answer to an error, by verdict.h's table: 1 fail
 * over, 2 keep the replica, -1 drop it. The primary hears ABORT when the
 * error came with an epoch (the link's own errors leave it to see the
 * connection end). */
static int follow_error(struct incoming *in, enum incoming_phase phase,
			struct kg_err *e)
{
	uint64_t at = kg_now_ns();
	/* The watch cut the link: that is the error to judge. */
	bool silent = in->beats && beatlink_suspected(in->beats, e);
	enum incoming_verdict v = incoming_error_verdict(e->kind, phase);
	if (in->beats && !silent && v == INCOMING_FAIL_OVER) {
		/* A cut data link is not a dead primary if it still beats
		 * (or said AGAIN): a beat after the failure shows it. */
		bool heard = beatlink_heard_after(in->beats, at,
						  in->failover_ms > 0
							  ? in->failover_ms
							  : 100);
		v = incoming_beats_verdict(v, heard);
		if (heard)
			kg_err_prefix(e, "the data link failed while the "
				      "primary beats on the heartbeat link");
	}
	switch (v) {
	case INCOMING_FAIL_OVER:
		return 1;
	case INCOMING_KEEP:
		if (phase != INCOMING_AT_MESSAGE)
			incoming_abort(in, e->msg);
		return 2;
	case INCOMING_DROP:
		break;
	}
	incoming_abort(in, e->msg);
	return -1;
}

/* After a hash round: the pages that differ here, as bitmap chunks in
 * hex (RLINK_NEED_PAGES pages per message; chunks with none are not
 * sent), then the end of the list. The primary sends them next round. */
static int send_needed(struct incoming *in, struct kg_err *e)
{
	uint64_t n;
	const uint64_t *bits = epoch_receiver_needed(in->er, &n);
	uint64_t npages = n ? in->have_mem / 4096 : 0;
	in->hash_round = true;
	in->needed_pages = n;
	for (uint64_t p = 0; p < npages; p += RLINK_NEED_PAGES) {
		uint64_t k = npages - p < RLINK_NEED_PAGES ? npages - p
							   : RLINK_NEED_PAGES;
		char hex[RLINK_NEED_PAGES / 4 + 1];
		bool any = false;
		for (uint64_t b = 0; b < k; b += 4) {
			unsigned v = 0;
			for (unsigned j = 0; j < 4 && b + j < k; j++) {
				uint64_t q = p + b + j;
				if (bits[q / 64] >> (q % 64) & 1)
					v |= 1u << j;
			}
			any |= v != 0;
			hex[b / 4] = "0123456789abcdef"[v];
		}
		hex[(k + 3) / 4] = 0;
		if (any && rlink_send(in->link, RLINK_NEED, p, k, hex, e) < 0)
			return -1;
	}
	return rlink_send(in->link, RLINK_NEED, UINT64_MAX, n, NULL, e);
}

/* The first commit: from now on silence means the primary is gone. The
 * heartbeat link's watch decides when, if there is one (the data link
 * then only bounds a link that moves nothing while the primary beats). */
static void arm_detection(struct incoming *in)
{
	struct kg_transport *t = rlink_transport(in->link);
	if (!in->beats) {
		kg_tp_set_io_timeout(t, in->failover_ms);
		return;
	}
	kg_tp_set_io_timeout(t, beatlink_data_timeout_ms(
					(unsigned)in->failover_ms));
	beatlink_arm(in->beats);
}

int incoming_follow(struct incoming *in, struct vm *vm,
		    const struct epoch_disk_sink *disk, void *ctx,
		    struct kg_err *e)
{
	epoch_receiver_attach(in->er, vm);
	if (disk)
		epoch_receiver_set_disk(in->er, disk, ctx);
	for (;;) {
		struct rlink_msg m;
		int k = rlink_next(in->link, &m, e);
		if (k < 0)
			return follow_error(in, INCOMING_AT_MESSAGE, e);
		if (k == 2) {
			kg_errk(e, KG_ERR_PEER_GONE, "%s closed the connection",
				rlink_peer(in->link));
			return follow_error(in, INCOMING_AT_MESSAGE, e);
		}
		if (k == 1) {
			if (m.type == RLINK_ABORT) {
				kg_errk(e, KG_ERR_REFUSED, "%s", m.text);
				return 0;
			}
			continue; /* heartbeats */
		}
		struct epoch_stats st;
		int r = epoch_receive(in->er, &st, e);
		in->bytes += st.stream_bytes;
		if (r < 0)
			return follow_error(in, st.apply_failed
						    ? INCOMING_APPLYING
						    : INCOMING_IN_EPOCH, e);
		if (r == 0) {
			kg_errf(e, "the primary ended the stream");
			return 0;
		}
		if (st.live && st.hashes && send_needed(in, e) < 0)
			return follow_error(in, INCOMING_AT_MESSAGE, e);
		if (st.live) {
			in->rounds++;
		} else {
			/* Something to fail over to: from now on silence
			 * means the primary is gone. */
			if (!in->epochs && in->failover_ms > 0)
				arm_detection(in);
			if (!in->epochs && in->on_first_commit)
				in->on_first_commit(in->commit_ctx);
			in->epochs++;
			in->committed_seq = st.seq;
		}
		if (rlink_send(in->link, RLINK_ACK, st.seq, 0, NULL, e) < 0)
			return follow_error(in, INCOMING_AT_MESSAGE, e);
		/* Lockstep: the execution log follows the first state. */
		if (!st.live && (in->mode & 0xff) == RLINK_MODE_LOCKSTEP)
			return 3;
	}
}

int incoming_running(struct incoming *in, struct kg_err *e)
{
	return rlink_send(in->link, RLINK_RUNNING, in->session, 0, NULL, e);
}

uint64_t incoming_echo(const struct incoming *in)
{
	uint64_t a = in->link ? rlink_echo(in->link) : 0;
	uint64_t b = in->beats ? beatlink_echo(in->beats) : 0;
	return a > b ? a : b;
}

void incoming_end(struct incoming *in)
{
	beat_stop(in);
	beatlink_free(in->beats);
	in->beats = NULL;
	epoch_receiver_free(in->er);
	rlink_free(in->link);
	in->er = NULL;
	in->link = NULL;
}

/* --- answering a source in doubt --- */

struct incoming_answerer {
	struct kg_tp_listener *l;
	uint64_t session;
	pthread_t thread;
	atomic_bool stop;
};

static void *answer_thread(void *arg)
{
	struct incoming_answerer *a = arg;
	while (!atomic_load(&a->stop)) {
		struct rlink *l;
		struct rlink_msg m;
		struct kg_err e;
		if (accept_link(a->l, &l, &e) < 0)
			continue; /* timeout, or a refused peer (logged) */
		if (read_hello(l, &m, &e) == 0) {
			bool mine = (m.b & 0xff) == RLINK_MODE_QUERY &&
				    m.a == a->session;
			if ((m.b & 0xff) == RLINK_MODE_QUERY)
				rlink_send(l, RLINK_ANSWER, m.a, mine, NULL, &e);
			else
				rlink_send(l, RLINK_ABORT, m.a, 0,
					   "this kagami already runs a guest",
					   &e);
		}
		rlink_free(l);
	}
	return NULL;
}

struct incoming_answerer *incoming_answer_start(struct kg_tp_listener *l,
						uint64_t session,
						struct kg_err *e)
{
	struct incoming_answerer *a = calloc(1, sizeof(*a));
	if (!a) {
		kg_errf(e, "out of memory");
		return NULL;
	}
	a->l = l;
	a->session = session;
	kg_tp_listener_set_timeout(l, ANSWER_POLL_MS);
	int r = pthread_create(&a->thread, NULL, answer_thread, a);
	if (r) {
		free(a);
		errno = r;
		kg_errno(e, "incoming: pthread_create");
		return NULL;
	}
	return a;
}

void incoming_answer_stop(struct incoming_answerer *a)
{
	if (!a)
		return;
	atomic_store(&a->stop, true);
	pthread_join(a->thread, NULL);
	free(a);
}
