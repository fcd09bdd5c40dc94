#include "beatlink.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rlink.h"
#include "base/clock.h"
#include "base/log.h"

#define MS 1000000ull
/* Beats arrive whole or not at all: a message with no text. */
#define FRAME_CAP (RLINK_MSG_HEADER + RLINK_TEXT_MAX)

struct beatlink {
	struct kg_transport *t;
	struct rlink *data;
	struct beatlink_opts o;
	char peer[160];
	pthread_t tx, rx;
	bool tx_on, rx_on;
	pthread_mutex_t send_lock; /* the beats' thread and send_again */
	pthread_mutex_t lock;      /* everything below */
	pthread_cond_t cond;
	bool stop, armed, dead, again, suspected;
	uint64_t armed_ns;
	uint64_t last_beat_ns;  /* the peer's last BEAT here (0: none) */
	uint64_t peer_stamp;    /* its a */
	uint64_t echo;          /* the largest b: our stamp, echoed */
	struct detector d;      /* on the beats */
	struct detector fixed;  /* the data link alone, once this one died */
	struct kg_err why;
	_Atomic uint64_t echo_sent_ns;
};

void beatlink_opts_default(struct beatlink_opts *o, unsigned failover_ms,
			   unsigned base_ms)
{
	unsigned p = failover_ms / 5;
	*o = (struct beatlink_opts){
		.period_ms = p < 2 ? 2 : p > 20 ? 20 : p,
		.base_ms = base_ms,
		.cap_ms = 5 * base_ms,
	};
}

int beatlink_data_timeout_ms(unsigned failover_ms)
{
	return failover_ms * 10 < 2000 ? 2000 : (int)failover_ms * 10;
}

/* --- making the link --- */

static int send_msg(struct kg_transport *t, uint32_t type, uint64_t a,
		    uint64_t b, struct kg_err *e)
{
	uint8_t hdr[RLINK_MSG_HEADER];
	rlink_msg_pack(hdr, type, a, b);
	struct iovec v = { hdr, sizeof(hdr) };
	struct kg_tp_frame f = { &v, 1, RLINK_MSG };
	return kg_tp_send(t, &f, 1, e);
}

int beatlink_connect(const char *addr, const struct kg_tp_opts *to,
		     uint64_t session, struct kg_transport **out,
		     struct kg_err *e)
{
	if (kg_tp_connect(addr, to, out, e) < 0)
		return kg_err_prefix(e, "heartbeat link");
	if (send_msg(*out, RLINK_HELLO, session, RLINK_MODE_BEAT, e) < 0) {
		kg_tp_close(*out);
		*out = NULL;
		return kg_err_prefix(e, "heartbeat link");
	}
	return 0;
}

/* A peer met while waiting for the heartbeat link: 1 it is the link,
 * 0 someone else (answered and closed), -1 it failed. */
static int check_peer(struct kg_transport *t, uint64_t session,
		      struct kg_err *e)
{
	uint8_t buf[FRAME_CAP];
	struct kg_tp_rx rx;
	struct rlink_msg m;
	int r = kg_tp_recv(t, buf, sizeof(buf), &rx, e);
	if (r == 0)
		return kg_errk(e, KG_ERR_PEER_GONE, "%s closed before HELLO",
			       kg_tp_peer(t));
	if (r < 0)
		return -1;
	if (rx.flags != RLINK_MSG ||
	    rlink_msg_parse(kg_tp_peer(t), buf, rx.len, &m, e) < 0 ||
	    m.type != RLINK_HELLO)
		return kg_errk(e, KG_ERR_CORRUPT, "%s: expected HELLO first",
			       kg_tp_peer(t));
	unsigned mode = m.b & 0xff;
	if (mode == RLINK_MODE_BEAT && m.a == session)
		return 1;
	struct kg_err ignore;
	if (mode == RLINK_MODE_QUERY)
		send_msg(t, RLINK_ANSWER, m.a, 0, &ignore);
	else
		send_msg(t, RLINK_ABORT, m.a, 0, &ignore);
	return 0;
}

int beatlink_accept(struct kg_tp_listener *l, uint64_t session,
		    int timeout_ms, struct kg_transport **out,
		    struct kg_err *e)
{
	uint64_t deadline = kg_now_ns() + (uint64_t)timeout_ms * MS;
	for (;;) {
		uint64_t now = kg_now_ns();
		if (now >= deadline)
			return kg_errk(e, KG_ERR_TIMEOUT, "no heartbeat link "
				       "within %d ms", timeout_ms);
		int left = (int)((deadline - now + MS - 1) / MS);
		kg_tp_listener_set_timeout(l, left);
		struct kg_transport *t;
		if (kg_tp_accept(l, &t, e) < 0) {
			if (e->kind == KG_ERR_AUTH)
				continue; /* logged by the transport */
			if (e->kind == KG_ERR_TIMEOUT)
				return kg_errk(e, KG_ERR_TIMEOUT, "no heartbeat "
					       "link within %d ms", timeout_ms);
			return kg_err_prefix(e, "heartbeat link");
		}
		kg_tp_set_io_timeout(t, left < 1000 ? left : 1000);
		struct kg_err pe = { 0 };
		int r = check_peer(t, session, &pe);
		if (r == 1) {
			*out = t;
			return 0;
		}
		if (r < 0)
			kg_log(KG_LOG_INFO, "waiting for the heartbeat link: "
			       "%s", pe.msg);
		kg_tp_close(t);
	}
}

/* --- beating and watching --- */

static uint64_t boot_ms(void)
{
	return kg_boottime_ns() / MS;
}

static void send_beat(struct beatlink *b, uint64_t now)
{
	pthread_mutex_lock(&b->lock);
	uint64_t echo = b->o.echo ? b->peer_stamp : 0;
	pthread_mutex_unlock(&b->lock);
	/* Noted before it leaves: the promise runs from the echo's
	 * sending, which is no earlier. */
	if (echo)
		atomic_store(&b->echo_sent_ns, now);
	struct kg_err e;
	pthread_mutex_lock(&b->send_lock);
	int r = send_msg(b->t, RLINK_BEAT, boot_ms(), echo, &e);
	pthread_mutex_unlock(&b->send_lock);
	if (r < 0) {
		pthread_mutex_lock(&b->lock);
		b->dead = true;
		pthread_cond_broadcast(&b->cond);
		pthread_mutex_unlock(&b->lock);
	}
}

static uint64_t max3(uint64_t a, uint64_t b, uint64_t c)
{
	uint64_t m = a > b ? a : b;
	return m > c ? m : c;
}

/* Locked. True when the peer is to be given up. */
static bool watch(struct beatlink *b, uint64_t now)
{
	uint64_t last_rx = rlink_last_rx_ns(b->data);
	if (!b->dead) {
		/* Anything on either link is a sign of life. */
		uint64_t last = max3(b->last_beat_ns, last_rx, b->armed_ns);
		uint64_t silence = now > last ? now - last : 0;
		if (detector_check(&b->d, silence) != DETECTOR_SUSPECT)
			return false;
		kg_errk(&b->why, KG_ERR_TIMEOUT, "%s: no sign of life for "
			"%llu ms on the data link or the heartbeat link "
			"(timeout %llu ms)", b->peer,
			(unsigned long long)(silence / MS),
			(unsigned long long)(detector_timeout(&b->d) / MS));
		return true;
	}
	/* The data link alone: silent only while someone waits on it. */
	uint64_t waiting = rlink_rx_wait_ns(b->data);
	uint64_t silence = 0;
	if (waiting) {
		uint64_t last = max3(waiting, last_rx, b->armed_ns);
		silence = now > last ? now - last : 0;
	}
	if (detector_check(&b->fixed, silence) != DETECTOR_SUSPECT)
		return false;
	kg_errk(&b->why, KG_ERR_TIMEOUT, "%s: no data for %llu ms (the "
		"heartbeat link is down)", b->peer,
		(unsigned long long)(silence / MS));
	return true;
}

/* Beats must not wait for a CPU behind the guest's vCPUs, the encoder or
 * anyone else's load: a thread that sleeps almost always and sends a few
 * bytes runs at the lowest real-time priority when this process may set
 * it (CAP_SYS_NICE), and as it is otherwise. */
static void beat_priority(void)
{
	struct sched_param sp = { .sched_priority = 1 };
	int r = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);
	if (r)
		kg_log(KG_LOG_DEBUG, "heartbeat link: no real-time priority "
		       "(%s)", strerror(r));
}

static void *tx_thread(void *arg)
{
	struct beatlink *b = arg;
	beat_priority();
	uint64_t period = (uint64_t)b->o.period_ms * MS;
	uint64_t check = (uint64_t)b->o.base_ms * MS / 10;
	if (check < MS)
		check = MS;
	if (check > period)
		check = period;
	uint64_t next_beat = 0;
	pthread_mutex_lock(&b->lock);
	while (!b->stop) {
		uint64_t now = kg_now_ns();
		if (now >= next_beat) {
			pthread_mutex_unlock(&b->lock);
			send_beat(b, now);
			pthread_mutex_lock(&b->lock);
			next_beat = now + period;
		}
		if (b->armed && !b->suspected && watch(b, kg_now_ns())) {
			b->suspected = true;
			pthread_cond_broadcast(&b->cond);
			/* Whoever waits on the data link learns it now. */
			kg_tp_shutdown(rlink_transport(b->data));
		}
		uint64_t wake = now + check < next_beat ? now + check
							: next_beat;
		struct timespec ts = { (time_t)(wake / 1000000000u),
				       (long)(wake % 1000000000u) };
		while (!b->stop && kg_now_ns() < wake &&
		       pthread_cond_timedwait(&b->cond, &b->lock, &ts) == 0)
			;
	}
	pthread_mutex_unlock(&b->lock);
	return NULL;
}

static void *rx_thread(void *arg)
{
	struct beatlink *b = arg;
	beat_priority();
	uint8_t buf[FRAME_CAP];
	for (;;) {
		struct kg_tp_rx rx;
		struct rlink_msg m;
		struct kg_err e = { 0 };
		int r = kg_tp_recv(b->t, buf, sizeof(buf), &rx, &e);
		uint64_t now = kg_now_ns();
		bool ok = r > 0 && rx.flags == RLINK_MSG &&
			  rlink_msg_parse(b->peer, buf, rx.len, &m, &e) == 0 &&
			  (m.type == RLINK_BEAT || m.type == RLINK_AGAIN);
		pthread_mutex_lock(&b->lock);
		if (ok && m.type == RLINK_BEAT) {
			detector_beat(&b->d, now);
			b->last_beat_ns = now;
			b->peer_stamp = m.a;
			if (m.b > b->echo)
				b->echo = m.b;
		} else if (ok) {
			b->again = true;
		} else {
			if (!b->stop && r != 0 && !b->suspected)
				kg_log(KG_LOG_DEBUG, "heartbeat link: %s",
				       r > 0 ? "unexpected frame" : e.msg);
			b->dead = true;
		}
		pthread_cond_broadcast(&b->cond);
		pthread_mutex_unlock(&b->lock);
		if (!ok)
			return NULL;
	}
}

struct beatlink *beatlink_start(struct kg_transport *t, struct rlink *data,
				const struct beatlink_opts *o,
				struct kg_err *e)
{
	struct beatlink *b = calloc(1, sizeof(*b));
	if (!b) {
		kg_tp_close(t);
		kg_errk(e, KG_ERR_NOMEM, "out of memory");
		return NULL;
	}
	b->t = t;
	b->data = data;
	b->o = *o;
	snprintf(b->peer, sizeof(b->peer), "%s", kg_tp_peer(t));
	detector_init(&b->d, (uint64_t)o->base_ms * MS,
		      (uint64_t)o->cap_ms * MS);
	detector_init(&b->fixed, (uint64_t)o->base_ms * MS,
		      (uint64_t)o->base_ms * MS);
	/* Its waits bound only a peer gone for good: the watch judges
	 * silence long before. */
	kg_tp_set_io_timeout(t, (int)o->cap_ms * 4);
	pthread_mutex_init(&b->send_lock, NULL);
	pthread_mutex_init(&b->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&b->cond, &ca);
	pthread_condattr_destroy(&ca);
	int r = pthread_create(&b->rx, NULL, rx_thread, b);
	if (r == 0) {
		b->rx_on = true;
		r = pthread_create(&b->tx, NULL, tx_thread, b);
		b->tx_on = r == 0;
	}
	if (r) {
		beatlink_free(b);
		errno = r;
		kg_errno(e, "heartbeat link: pthread_create");
		return NULL;
	}
	return b;
}

void beatlink_arm(struct beatlink *b)
{
	pthread_mutex_lock(&b->lock);
	b->armed = true;
	b->armed_ns = kg_now_ns();
	pthread_mutex_unlock(&b->lock);
}

bool beatlink_suspected(struct beatlink *b, struct kg_err *why)
{
	pthread_mutex_lock(&b->lock);
	bool s = b->suspected;
	if (s && why)
		*why = b->why;
	pthread_mutex_unlock(&b->lock);
	return s;
}

bool beatlink_again(struct beatlink *b)
{
	pthread_mutex_lock(&b->lock);
	bool a = b->again;
	pthread_mutex_unlock(&b->lock);
	return a;
}

bool beatlink_heard_after(struct beatlink *b, uint64_t since_ns, int wait_ms)
{
	struct timespec dl = kg_deadline(CLOCK_MONOTONIC, wait_ms);
	pthread_mutex_lock(&b->lock);
	bool heard;
	for (;;) {
		heard = b->again || b->last_beat_ns > since_ns;
		if (heard || b->dead || b->suspected)
			break;
		if (pthread_cond_timedwait(&b->cond, &b->lock, &dl) ==
		    ETIMEDOUT) {
			heard = b->again || b->last_beat_ns > since_ns;
			break;
		}
	}
	pthread_mutex_unlock(&b->lock);
	return heard;
}

uint64_t beatlink_echo(struct beatlink *b)
{
	pthread_mutex_lock(&b->lock);
	uint64_t v = b->echo;
	pthread_mutex_unlock(&b->lock);
	return v;
}

uint64_t beatlink_echo_sent_ns(struct beatlink *b)
{
	return atomic_load(&b->echo_sent_ns);
}

void beatlink_send_again(struct beatlink *b)
{
	struct kg_err ignore;
	pthread_mutex_lock(&b->send_lock);
	send_msg(b->t, RLINK_AGAIN, 0, 0, &ignore);
	pthread_mutex_unlock(&b->send_lock);
}

void beatlink_stats(struct beatlink *b, struct detector_stats *st,
		    uint64_t *timeout_ns)
{
	pthread_mutex_lock(&b->lock);
	*st = b->d.st;
	*timeout_ns = detector_timeout(&b->d);
	pthread_mutex_unlock(&b->lock);
}

void beatlink_free(struct beatlink *b)
{
	if (!b)
		return;
	pthread_mutex_lock(&b->lock);
	b->stop = true;
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
	if (b->tx_on)
		pthread_join(b->tx, NULL);
	/* The receiver is blocked in recv: cut the link under it. */
	kg_tp_shutdown(b->t);
	if (b->rx_on)
		pthread_join(b->rx, NULL);
	if (b->tx_on) {
		const struct detector_stats *st = &b->d.st;
		kg_log(KG_LOG_INFO, "heartbeats from %s: %llu, longest gap "
		       "%.1f ms, %llu after more than %u ms; timeout %.0f ms "
		       "at the end", b->peer, (unsigned long long)st->beats,
		       (double)st->max_gap_ns / 1e6,
		       (unsigned long long)st->late, b->o.base_ms,
		       (double)detector_timeout(&b->d) / 1e6);
	}
	kg_tp_close(b->t);
	pthread_mutex_destroy(&b->send_lock);
	pthread_mutex_destroy(&b->lock);
	pthread_cond_destroy(&b->cond);
	free(b);
}
