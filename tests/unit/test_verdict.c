/*
 * Unit tests for the decision tables (ft/pipeline/verdict.h and
 * witness_accept_verdict in ft/lease/witness.h): one test per row — every
 * kind in every phase of every table — against the tables as written out
 * here, independently of the code; then a few real errors from the
 * transport, made the way the pipeline meets them, through the tables.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ft/lease/witness.h"
#include "ft/pipeline/verdict.h"
#include "transport/transport.h"

enum table { T_INCOMING, T_STANDBY, T_RECEIVE, T_PROTECT, T_DOUBT, T_WITNESS };

struct row {
	enum table table;
	enum kg_err_kind kind;
	int where; /* incoming: the phase; standby: holding */
	int want;
	char name[96];
};

#define U KG_ERR_UNSPECIFIED
#define INV KG_ERR_INVALID
#define IO KG_ERR_IO
#define NOSP KG_ERR_NO_SPACE
#define NOMEM KG_ERR_NOMEM
#define COR KG_ERR_CORRUPT
#define AUTH KG_ERR_AUTH
#define TMO KG_ERR_TIMEOUT
#define GONE KG_ERR_PEER_GONE
#define REF KG_ERR_REFUSED
#define GST KG_ERR_GUEST

/* The tables, written out: kind, then the verdict per phase or flag. */
static const struct {
	enum kg_err_kind kind;
	enum incoming_verdict at_message, in_epoch, applying;
} incoming_rows[] = {
	{ U, INCOMING_FAIL_OVER, INCOMING_DROP, INCOMING_DROP },
	{ INV, INCOMING_FAIL_OVER, INCOMING_DROP, INCOMING_DROP },
	{ IO, INCOMING_FAIL_OVER, INCOMING_DROP, INCOMING_DROP },
	{ NOSP, INCOMING_FAIL_OVER, INCOMING_DROP, INCOMING_DROP },
	{ NOMEM, INCOMING_FAIL_OVER, INCOMING_DROP, INCOMING_DROP },
	{ COR, INCOMING_KEEP, INCOMING_KEEP, INCOMING_DROP },
	{ AUTH, INCOMING_KEEP, INCOMING_KEEP, INCOMING_DROP },
	{ TMO, INCOMING_FAIL_OVER, INCOMING_FAIL_OVER, INCOMING_DROP },
	{ GONE, INCOMING_FAIL_OVER, INCOMING_FAIL_OVER, INCOMING_DROP },
	{ REF, INCOMING_FAIL_OVER, INCOMING_FAIL_OVER, INCOMING_DROP },
	{ GST, INCOMING_FAIL_OVER, INCOMING_DROP, INCOMING_DROP },
};

static const struct {
	enum kg_err_kind kind;
	enum standby_verdict waiting, holding;
	enum receive_verdict receive;
	enum protect_verdict protect;
	enum doubt_verdict doubt;
	enum witness_accept_verdict witness;
} other_rows[] = {
	{ U, STANDBY_WAIT, STANDBY_WAIT, RECEIVE_GIVE_UP,
	  PROTECT_MAY_HOLD_REPLICA, DOUBT_RETRY, WITNESS_ACCEPT_BACK_OFF },
	{ INV, STANDBY_WAIT, STANDBY_WAIT, RECEIVE_GIVE_UP,
	  PROTECT_MAY_HOLD_REPLICA, DOUBT_RETRY, WITNESS_ACCEPT_BACK_OFF },
	{ IO, STANDBY_WAIT, STANDBY_WAIT, RECEIVE_GIVE_UP,
	  PROTECT_MAY_HOLD_REPLICA, DOUBT_RETRY, WITNESS_ACCEPT_BACK_OFF },
	{ NOSP, STANDBY_WAIT, STANDBY_WAIT, RECEIVE_GIVE_UP,
	  PROTECT_MAY_HOLD_REPLICA, DOUBT_RETRY, WITNESS_ACCEPT_BACK_OFF },
	{ NOMEM, STANDBY_WAIT, STANDBY_WAIT, RECEIVE_GIVE_UP,
	  PROTECT_MAY_HOLD_REPLICA, DOUBT_RETRY, WITNESS_ACCEPT_BACK_OFF },
	{ COR, STANDBY_WAIT, STANDBY_WAIT, RECEIVE_GIVE_UP,
	  PROTECT_MAY_HOLD_REPLICA, DOUBT_RETRY, WITNESS_ACCEPT_AGAIN },
	{ AUTH, STANDBY_WAIT, STANDBY_WAIT, RECEIVE_LISTEN_AGAIN,
	  PROTECT_MAY_HOLD_REPLICA, DOUBT_RETRY, WITNESS_ACCEPT_AGAIN },
	{ TMO, STANDBY_WAIT, STANDBY_FAIL_OVER, RECEIVE_GIVE_UP,
	  PROTECT_MAY_HOLD_REPLICA, DOUBT_RETRY, WITNESS_ACCEPT_AGAIN },
	{ GONE, STANDBY_WAIT, STANDBY_WAIT, RECEIVE_GIVE_UP,
	  PROTECT_MAY_HOLD_REPLICA, DOUBT_RETRY, WITNESS_ACCEPT_AGAIN },
	{ REF, STANDBY_WAIT, STANDBY_WAIT, RECEIVE_GIVE_UP,
	  PROTECT_SECONDARY_GONE, DOUBT_NOT_RUNNING, WITNESS_ACCEPT_AGAIN },
	{ GST, STANDBY_WAIT, STANDBY_WAIT, RECEIVE_GIVE_UP,
	  PROTECT_MAY_HOLD_REPLICA, DOUBT_RETRY, WITNESS_ACCEPT_BACK_OFF },
};

#define NKINDS (sizeof(incoming_rows) / sizeof(incoming_rows[0]))

static const char *const phase_name[] = { "at message", "in epoch",
					   "applying" };

static void check_row(void **state)
{
	const struct row *r = *state;
	int got = -1;
	switch (r->table) {
	case T_INCOMING:
		got = (int)incoming_error_verdict(r->kind,
						  (enum incoming_phase)r->where);
		break;
	case T_STANDBY:
		got = (int)standby_begin_verdict(r->kind, r->where);
		break;
	case T_RECEIVE:
		got = (int)receive_begin_verdict(r->kind);
		break;
	case T_PROTECT:
		got = (int)protect_connect_verdict(r->kind);
		break;
	case T_DOUBT:
		got = (int)migrate_doubt_verdict(r->kind);
		break;
	case T_WITNESS:
		got = (int)witness_accept_verdict(r->kind);
		break;
	}
	if (got != r->want)
		fail_msg("%s: got %d, want %d", r->name, got, r->want);
}

static struct row *add(struct row *rows, size_t *n, enum table t,
		       enum kg_err_kind kind, int where, int want,
		       const char *what)
{
	struct row *r = &rows[(*n)++];
	*r = (struct row){ t, kind, where, want, "" };
	snprintf(r->name, sizeof(r->name), "%s, %s", what,
		 kg_err_kind_name(kind));
	return r;
}

/* --- real errors through the tables --- */

/* A bound loopback port nobody listens on: the primary's connect to a
 * secondary that is not running, the source's QUERY to a destination
 * that is gone. */
/* incoming_beats_verdict: only a fail-over is turned by a primary heard
 * on the heartbeat link after the failure, and only into keep. */
static void test_beats_verdict(void **state)
{
	(void)state;
	assert_int_equal(incoming_beats_verdict(INCOMING_FAIL_OVER, true),
			 INCOMING_KEEP);
	assert_int_equal(incoming_beats_verdict(INCOMING_FAIL_OVER, false),
			 INCOMING_FAIL_OVER);
	assert_int_equal(incoming_beats_verdict(INCOMING_KEEP, true),
			 INCOMING_KEEP);
	assert_int_equal(incoming_beats_verdict(INCOMING_KEEP, false),
			 INCOMING_KEEP);
	assert_int_equal(incoming_beats_verdict(INCOMING_DROP, true),
			 INCOMING_DROP);
	assert_int_equal(incoming_beats_verdict(INCOMING_DROP, false),
			 INCOMING_DROP);
}

static void test_refused_connect(void **state)
{
	(void)state;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	char addr[64];
	snprintf(addr, sizeof(addr), "tcp:127.0.0.1:%u", ntohs(sa.sin_port));
	struct kg_tp_opts o;
	kg_tp_opts_default(&o);
	o.connect_timeout_ms = 2000;
	struct kg_transport *t;
	struct kg_err e = { 0 };
	assert_int_equal(kg_tp_connect(addr, &o, &t, &e), -1);
	close(fd);
	assert_int_equal(protect_connect_verdict(e.kind), PROTECT_SECONDARY_GONE);
	assert_int_equal(migrate_doubt_verdict(e.kind), DOUBT_NOT_RUNNING);
}

/* No primary within the window: a holding secondary fails over; one
 * that holds nothing waits on; the witness ticks. */
static void test_no_peer_within(void **state)
{
	(void)state;
	struct kg_tp_opts o;
	kg_tp_opts_default(&o);
	o.accept_timeout_ms = 50;
	struct kg_tp_listener *l;
	struct kg_transport *t;
	struct kg_err e = { 0 };
	assert_int_equal(kg_tp_listen("tcp:127.0.0.1:0", &o, &l, &e), 0);
	assert_int_equal(kg_tp_accept(l, &t, &e), -1);
	kg_tp_listener_close(l);
	assert_int_equal(standby_begin_verdict(e.kind, true), STANDBY_FAIL_OVER);
	assert_int_equal(standby_begin_verdict(e.kind, false), STANDBY_WAIT);
	assert_int_equal(witness_accept_verdict(e.kind), WITNESS_ACCEPT_AGAIN);
}

/* A peer with the wrong key knocks: kagami receive listens on, the
 * witness accepts the next, and a holding secondary does not take it for
 * a primary that is not coming. */
struct knock {
	const char *addr;
	struct kg_err e;
};

static void *knock_main(void *arg)
{
	struct knock *k = arg;
	struct kg_tp_key key = { .len = 32 };
	memset(key.bytes, 7, 32);
	struct kg_tp_opts o;
	kg_tp_opts_default(&o);
	o.key = &key;
	struct kg_transport *t;
	if (kg_tp_connect(k->addr, &o, &t, &k->e) == 0)
		kg_tp_close(t);
	return NULL;
}

static void test_wrong_key(void **state)
{
	(void)state;
	struct kg_tp_key key = { .len = 32 };
	memset(key.bytes, 9, 32);
	struct kg_tp_opts o;
	kg_tp_opts_default(&o);
	o.key = &key;
	o.accept_timeout_ms = 3000;
	o.io_timeout_ms = 3000;
	struct kg_tp_listener *l;
	struct kg_transport *t;
	struct kg_err e = { 0 };
	assert_int_equal(kg_tp_listen("tcp:127.0.0.1:0", &o, &l, &e), 0);
	struct knock k = { .addr = kg_tp_listener_addr(l) };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, knock_main, &k), 0);
	assert_int_equal(kg_tp_accept(l, &t, &e), -1);
	pthread_join(th, NULL);
	kg_tp_listener_close(l);
	assert_int_equal(receive_begin_verdict(e.kind), RECEIVE_LISTEN_AGAIN);
	assert_int_equal(witness_accept_verdict(e.kind), WITNESS_ACCEPT_AGAIN);
	assert_int_equal(standby_begin_verdict(e.kind, true), STANDBY_WAIT);
	/* and the knocking side, as a primary: not a refused connect */
	assert_int_equal(protect_connect_verdict(k.e.kind),
			 PROTECT_MAY_HOLD_REPLICA);
}

int main(void)
{
	/* 3 incoming phases + 6 other columns per kind */
	static struct row rows[NKINDS * 9];
	size_t n = 0;
	/* every kind once in each written-out table */
	assert_int_equal(NKINDS, KG_ERR_KINDS);
	assert_int_equal(sizeof(other_rows) / sizeof(other_rows[0]), NKINDS);
	unsigned seen = 0, seen2 = 0;
	for (size_t i = 0; i < NKINDS; i++) {
		seen |= 1u << incoming_rows[i].kind;
		seen2 |= 1u << other_rows[i].kind;
	}
	assert_int_equal(seen, (1u << KG_ERR_KINDS) - 1);
	assert_int_equal(seen2, (1u << KG_ERR_KINDS) - 1);
	for (size_t i = 0; i < NKINDS; i++) {
		enum kg_err_kind k = incoming_rows[i].kind;
		const int in[3] = { incoming_rows[i].at_message,
				    incoming_rows[i].in_epoch,
				    incoming_rows[i].applying };
		for (int ph = 0; ph < 3; ph++) {
			char what[40];
			snprintf(what, sizeof(what), "incoming %s",
				 phase_name[ph]);
			add(rows, &n, T_INCOMING, k, ph, in[ph], what);
		}
	}
	for (size_t i = 0; i < NKINDS; i++) {
		enum kg_err_kind k = other_rows[i].kind;
		add(rows, &n, T_STANDBY, k, 0, (int)other_rows[i].waiting,
		    "standby waiting");
		add(rows, &n, T_STANDBY, k, 1, (int)other_rows[i].holding,
		    "standby holding a replica");
		add(rows, &n, T_RECEIVE, k, 0, (int)other_rows[i].receive,
		    "receive begin");
		add(rows, &n, T_PROTECT, k, 0, (int)other_rows[i].protect,
		    "protect connect");
		add(rows, &n, T_DOUBT, k, 0, (int)other_rows[i].doubt,
		    "migrate doubt");
		add(rows, &n, T_WITNESS, k, 0, (int)other_rows[i].witness,
		    "witness accept");
	}
	static struct CMUnitTest tests[NKINDS * 9 + 4];
	for (size_t i = 0; i < n; i++)
		tests[i] = (struct CMUnitTest){ .name = rows[i].name,
						.test_func = check_row,
						.initial_state = &rows[i] };
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_beats_verdict);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_refused_connect);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_no_peer_within);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_wrong_key);
	return _cmocka_run_group_tests("verdict", tests, n, NULL, NULL);
}
