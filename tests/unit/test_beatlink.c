/*
 * Unit tests for the heartbeat link (ft/pipeline/beatlink.h) over unix
 * sockets in a temporary directory: the link found by its session among
 * other peers, or a timeout; beats both ways and the primary's echo;
 * an armed watch that suspects a silent peer and cuts the data link,
 * but not one whose data link still brings frames; after the heartbeat
 * link fails, the data link alone against the base timeout; waiting for
 * a sign of life after a failure, and AGAIN.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "ft/pipeline/beatlink.h"
#include "ft/pipeline/rlink.h"

#define TMO 3000 /* ms: every wait in these tests is bounded by this */
#define SESSION 0x5e5510

static char tmpdir[64];
static unsigned nsock;

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/kg_beatlink.XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static long long now_ms(void)
{
	return (long long)(kg_now_ns() / 1000000);
}

static void opts(struct kg_tp_opts *o)
{
	kg_tp_opts_default(o);
	o->connect_timeout_ms = TMO;
	o->io_timeout_ms = TMO;
	o->accept_timeout_ms = TMO;
}

static struct kg_tp_listener *listen_new(void)
{
	char addr[128];
	struct kg_tp_opts o;
	struct kg_tp_listener *l;
	struct kg_err e = { 0 };
	opts(&o);
	snprintf(addr, sizeof(addr), "unix:%s/s%u.sock", tmpdir, nsock++);
	if (kg_tp_listen(addr, &o, &l, &e) < 0)
		fail_msg("listen %s: %s", addr, e.msg);
	return l;
}

struct acceptor {
	struct kg_tp_listener *l;
	struct kg_transport *t;
	int rc;
	struct kg_err e;
};

static void *accept_main(void *arg)
{
	struct acceptor *a = arg;
	a->rc = kg_tp_accept(a->l, &a->t, &a->e);
	return NULL;
}

/* A connected pair of transports. */
static void tp_pair(struct kg_transport **srv, struct kg_transport **cli)
{
	struct acceptor a = { .l = listen_new() };
	struct kg_tp_opts o;
	struct kg_err e = { 0 };
	opts(&o);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, accept_main, &a), 0);
	int r = kg_tp_connect(kg_tp_listener_addr(a.l), &o, cli, &e);
	pthread_join(th, NULL);
	kg_tp_listener_close(a.l);
	if (r < 0 || a.rc < 0)
		fail_msg("pair: %s %s", e.msg, a.e.msg);
	*srv = a.t;
}

static struct rlink *rl(struct kg_transport *t)
{
	struct kg_err e = { 0 };
	struct rlink *l = rlink_new(t, 0, &e);
	assert_non_null(l);
	return l;
}

static struct beatlink *start(struct kg_transport *t, struct rlink *data,
			      unsigned base_ms, bool echo)
{
	struct beatlink_opts o = { .period_ms = 5, .base_ms = base_ms,
				   .cap_ms = 5 * base_ms, .echo = echo };
	struct kg_err e = { 0 };
	struct beatlink *b = beatlink_start(t, data, &o, &e);
	if (!b)
		fail_msg("beatlink_start: %s", e.msg);
	return b;
}

/* --- finding the link --- */

struct finder {
	struct kg_tp_listener *l;
	int timeout_ms;
	struct kg_transport *t;
	int rc;
	struct kg_err e;
};

static void *find_main(void *arg)
{
	struct finder *f = arg;
	f->rc = beatlink_accept(f->l, SESSION, f->timeout_ms, &f->t, &f->e);
	return NULL;
}

static void test_accept(void **state)
{
	(void)state;
	struct finder f = { .l = listen_new(), .timeout_ms = TMO };
	struct kg_tp_opts o;
	struct kg_err e = { 0 };
	opts(&o);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, find_main, &f), 0);
	const char *addr = kg_tp_listener_addr(f.l);
	/* Another session's heartbeat link is refused: ABORT. */
	struct kg_transport *other, *mine;
	assert_int_equal(beatlink_connect(addr, &o, SESSION + 1, &other, &e), 0);
	uint8_t buf[600];
	struct kg_tp_rx rx;
	struct rlink_msg m;
	assert_int_equal(kg_tp_recv(other, buf, sizeof(buf), &rx, &e), 1);
	assert_int_equal(rlink_msg_parse("x", buf, rx.len, &m, &e), 0);
	assert_int_equal(m.type, RLINK_ABORT);
	kg_tp_close(other);
	/* Ours is taken. */
	assert_int_equal(beatlink_connect(addr, &o, SESSION, &mine, &e), 0);
	pthread_join(th, NULL);
	assert_int_equal(f.rc, 0);
	assert_non_null(f.t);
	kg_tp_close(f.t);
	kg_tp_close(mine);

	/* Nobody comes: a timeout. */
	f.timeout_ms = 150;
	long long t0 = now_ms();
	find_main(&f);
	assert_int_equal(f.rc, -1);
	assert_int_equal(f.e.kind, KG_ERR_TIMEOUT);
	assert_non_null(strstr(f.e.msg, "no heartbeat link within 150 ms"));
	assert_true(now_ms() - t0 >= 140);
	assert_true(now_ms() - t0 < TMO);
	kg_tp_listener_close(f.l);

	/* Nothing listens: the connect's error, named. */
	char gone[128];
	snprintf(gone, sizeof(gone), "unix:%s/none.sock", tmpdir);
	assert_int_equal(beatlink_connect(gone, &o, SESSION, &mine, &e), -1);
	assert_non_null(strstr(e.msg, "heartbeat link"));
}

/* --- beats, echoes, suspicion --- */

static void test_beats_and_echo(void **state)
{
	(void)state;
	struct kg_transport *bs, *bc, *ds, *dc;
	tp_pair(&bs, &bc);
	tp_pair(&ds, &dc);
	struct rlink *dsec = rl(ds), *dpri = rl(dc);
	struct beatlink *sec = start(bs, dsec, 100, false);
	struct beatlink *pri = start(bc, dpri, 100, true);
	usleep(200000);
	struct detector_stats st;
	uint64_t tmo;
	beatlink_stats(sec, &st, &tmo);
	assert_true(st.beats >= 10);
	assert_int_equal(tmo, 100000000ull); /* quiet beats: the base */
	/* The primary echoes our stamps (CLOCK_BOOTTIME ms); we do not. */
	uint64_t echo = beatlink_echo(sec);
	assert_true(echo > 0);
	assert_true(echo <= kg_boottime_ns() / 1000000);
	assert_true(echo + 1000 > kg_boottime_ns() / 1000000);
	assert_true(beatlink_echo_sent_ns(pri) > 0);
	assert_int_equal(beatlink_echo(pri), 0);
	assert_int_equal(beatlink_echo_sent_ns(sec), 0);
	/* Both beat: armed, nothing is suspected. */
	beatlink_arm(sec);
	beatlink_arm(pri);
	usleep(300000);
	assert_false(beatlink_suspected(sec, NULL));
	assert_false(beatlink_suspected(pri, NULL));
	assert_false(beatlink_again(sec));
	assert_true(beatlink_heard_after(sec, kg_now_ns(), TMO));
	/* AGAIN: heard, and said. */
	beatlink_send_again(pri);
	assert_true(beatlink_heard_after(sec, kg_now_ns() + 1000000000ull,
					 TMO));
	assert_true(beatlink_again(sec));
	beatlink_free(pri);
	beatlink_free(sec);
	rlink_free(dpri);
	rlink_free(dsec);
}

/* The peer's heartbeat link is connected but silent, and so is its data
 * link: the watch suspects it after the timeout and a second look, and
 * cuts the data link under a receive waiting on it. */
static void test_silent_peer(void **state)
{
	(void)state;
	struct kg_transport *bs, *bc, *ds, *dc;
	tp_pair(&bs, &bc);
	tp_pair(&ds, &dc);
	struct rlink *data = rl(ds);
	struct kg_err e = { 0 };
	assert_int_equal(rlink_start_reader(data, &e), 0);
	struct beatlink *b = start(bs, data, 50, false);
	/* Not armed: silence is no failure. */
	usleep(150000);
	assert_false(beatlink_suspected(b, NULL));
	long long t0 = now_ms();
	beatlink_arm(b);
	struct rlink_msg m;
	/* The receive on the data link fails when the watch cuts it. */
	assert_int_equal(rlink_wait_msg(data, 1u << RLINK_ACK, TMO, &m, &e), -1);
	long long dt = now_ms() - t0;
	assert_true(dt >= 50);
	assert_true(dt < 1000);
	struct kg_err why = { 0 };
	assert_true(beatlink_suspected(b, &why));
	assert_int_equal(why.kind, KG_ERR_TIMEOUT);
	assert_non_null(strstr(why.msg, "no sign of life for"));
	assert_non_null(strstr(why.msg, "on the data link or the heartbeat link"));
	assert_false(beatlink_heard_after(b, 0, 10));
	struct detector_stats st;
	uint64_t tmo;
	beatlink_stats(b, &st, &tmo);
	assert_int_equal(st.suspicions, 1);
	assert_true(st.doubts >= 1);
	beatlink_free(b);
	rlink_free(data);
	kg_tp_close(bc);
	kg_tp_close(dc);
}

struct chatter {
	struct rlink *l;
	int n;
};

static void *chatter_main(void *arg)
{
	struct chatter *c = arg;
	struct kg_err e;
	for (int i = 0; i < c->n; i++) {
		rlink_send(c->l, RLINK_ACK, (uint64_t)i + 1, 0, NULL, &e);
		usleep(10000);
	}
	return NULL;
}

/* Silent heartbeats, but frames on the data link every 10 ms: alive. */
static void test_data_keeps_alive(void **state)
{
	(void)state;
	struct kg_transport *bs, *bc, *ds, *dc;
	tp_pair(&bs, &bc);
	tp_pair(&ds, &dc);
	struct rlink *data = rl(ds), *peer = rl(dc);
	struct kg_err e = { 0 };
	assert_int_equal(rlink_start_reader(data, &e), 0);
	struct beatlink *b = start(bs, data, 50, false);
	beatlink_arm(b);
	struct chatter c = { peer, 40 };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, chatter_main, &c), 0);
	pthread_join(th, NULL);
	assert_false(beatlink_suspected(b, NULL));
	/* Then the data link falls silent too. */
	usleep(500000);
	assert_true(beatlink_suspected(b, NULL));
	beatlink_free(b);
	rlink_free(peer);
	rlink_free(data);
	kg_tp_close(bc);
}

/* The heartbeat link fails: the data link alone, judged only while a
 * receive waits on it, against the base. */
static void test_beat_link_down(void **state)
{
	(void)state;
	struct kg_transport *bs, *bc, *ds, *dc;
	tp_pair(&bs, &bc);
	tp_pair(&ds, &dc);
	struct rlink *data = rl(ds), *peer = rl(dc);
	struct beatlink *b = start(bs, data, 50, false);
	beatlink_arm(b);
	kg_tp_close(bc);
	/* Its end seen: no sign of life can come that way. */
	assert_false(beatlink_heard_after(b, 0, TMO));
	/* Nobody waits on the data link: no silence to judge. */
	usleep(200000);
	assert_false(beatlink_suspected(b, NULL));
	/* A receive waits, and the peer says nothing. */
	struct kg_err e = { 0 };
	assert_int_equal(rlink_start_reader(data, &e), 0);
	long long t0 = now_ms();
	struct rlink_msg m;
	assert_int_equal(rlink_send(peer, RLINK_ACK, 1, 0, NULL, &e), 0);
	assert_int_equal(rlink_wait_msg(data, 1u << RLINK_ACK, TMO, &m, &e), 1);
	assert_int_equal(rlink_wait_msg(data, 1u << RLINK_ACK, TMO, &m, &e), -1);
	assert_true(now_ms() - t0 >= 50);
	assert_true(now_ms() - t0 < 1000);
	struct kg_err why = { 0 };
	assert_true(beatlink_suspected(b, &why));
	assert_non_null(strstr(why.msg, "(the heartbeat link is down)"));
	beatlink_free(b);
	rlink_free(peer);
	rlink_free(data);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accept),
		cmocka_unit_test(test_beats_and_echo),
		cmocka_unit_test(test_silent_peer),
		cmocka_unit_test(test_data_keeps_alive),
		cmocka_unit_test(test_beat_link_down),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
