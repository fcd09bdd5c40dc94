/*
 * Unit tests for ft/lease/ (lease.h, witness.h, witness_table.h): the
 * witness server runs in a thread of this process on a unix socket or
 * tcp:127.0.0.1:0; the file backend works in a temporary directory. Two
 * holders contend, a lease runs out, is renewed, released, the generation
 * bumps, and every failure (witness gone, wrong key, corrupt file) is -1
 * with a clear line. The grant logic is also driven with a hand clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <dirent.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sched.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ft/lease/lease.h"
#include "ft/lease/witness.h"
#include "ft/lease/witness_table.h"
#include "base/log.h"

#define TTL 300u /* ms: short leases keep the suite quick */

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static void make_key(struct kg_tp_key *k, uint8_t seed)
{
	memset(k, 0, sizeof(*k));
	k->len = 32;
	for (size_t i = 0; i < k->len; i++)
		k->bytes[i] = (uint8_t)(seed + i * 13);
}

/* --- fixture: a temporary directory and, if asked, a witness --- */

struct fx {
	char dir[64];
	char spec[200]; /* witness:ADDR or file:PATH */
	struct kg_tp_listener *l;
	struct witness_opts o;
	void (*tweak)(struct witness_opts *o); /* NULL: the defaults */
	atomic_bool stop;
	pthread_t th;
	bool running;
	int rc;
	struct kg_err e;
};

static void *serve_main(void *arg)
{
	struct fx *f = arg;
	f->rc = witness_serve(f->l, &f->o, &f->stop, &f->e);
	return NULL;
}

static void witness_start(struct fx *f, bool tcp, const struct kg_tp_key *key)
{
	char addr[128];
	struct kg_err e = { 0 };
	if (tcp)
		snprintf(addr, sizeof(addr), "tcp:127.0.0.1:0");
	else
		snprintf(addr, sizeof(addr), "unix:%s/w.sock", f->dir);
	witness_opts_default(&f->o);
	f->o.grace_ms = 0; /* a fresh witness, not a restarted one */
	f->o.io_timeout_ms = 300;
	if (f->tweak)
		f->tweak(&f->o);
	if (witness_listen(addr, key, &f->o, &f->l, &e) < 0)
		fail_msg("witness_listen: %s", e.msg);
	snprintf(f->spec, sizeof(f->spec), "witness:%s",
		 kg_tp_listener_addr(f->l));
	atomic_store(&f->stop, false);
	assert_int_equal(pthread_create(&f->th, NULL, serve_main, f), 0);
	f->running = true;
}

static void witness_stop(struct fx *f)
{
	if (!f->running)
		return;
	atomic_store(&f->stop, true);
	pthread_join(f->th, NULL);
	kg_tp_listener_close(f->l);
	f->running = false;
	assert_int_equal(f->rc, 0);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/kg_lease.XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->spec, sizeof(f->spec), "file:%s/lease", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	witness_stop(f);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	int r = system(cmd);
	free(f);
	return r == 0 ? 0 : -1;
}

static struct lease *open_as(const struct fx *f, const char *holder,
			     const struct kg_tp_key *key)
{
	struct kg_err e = { 0 };
	struct lease *l = lease_open(f->spec, holder, key, &e);
	if (!l)
		fail_msg("lease_open %s: %s", f->spec, e.msg);
	return l;
}

/* --- the cases every backend must pass (f->spec chooses) --- */

/* A takes it; B is refused while it runs and told who holds it; B gets
 * it once it ran out; the generation bumps; A, back, sees it lost. */
static void check_two_holders(struct fx *f)
{
	struct lease *a = open_as(f, "primary@hostA", NULL);
	struct lease *b = open_as(f, "secondary@hostB", NULL);
	struct kg_err e = { 0 };
	long long until = 0, t0 = now_ms();
	assert_int_equal(lease_acquire(a, TTL, &until, &e), 1);
	assert_true(until >= t0 + TTL && until <= now_ms() + TTL);
	assert_int_equal(lease_generation(a), 1);
	assert_int_equal(lease_acquire(b, TTL, &until, &e), 0);
	assert_non_null(strstr(e.msg, "held by primary@hostA for"));
	assert_non_null(strstr(e.msg, "(generation 1)"));
	assert_int_equal(lease_generation(b), 0); /* never granted */

	sleep_ms(TTL + 150); /* past the file backend's skew margin too */
	assert_int_equal(lease_acquire(b, TTL, &until, &e), 1);
	assert_int_equal(lease_generation(b), 2);
	assert_false(lease_renewed(b));
	assert_int_equal(lease_acquire(a, TTL, &until, &e), 0);
	assert_non_null(strstr(e.msg, "held by secondary@hostB"));
	assert_non_null(strstr(e.msg, "(generation 2)"));
	assert_int_equal(lease_generation(a), 1); /* its last grant */
	lease_close(a);
	lease_close(b);
}

/* Renewing moves the end; the other side stays out past the first end. */
static void check_renew(struct fx *f)
{
	struct lease *a = open_as(f, "primary@hostA", NULL);
	struct lease *b = open_as(f, "secondary@hostB", NULL);
	struct kg_err e = { 0 };
	long long u1 = 0, u2 = 0;
	assert_int_equal(lease_acquire(a, TTL, &u1, &e), 1);
	assert_false(lease_renewed(a)); /* a first grant */
	sleep_ms(TTL / 2);
	assert_int_equal(lease_acquire(a, TTL, &u2, &e), 1);
	assert_true(u2 >= u1 + TTL / 2);
	assert_int_equal(lease_generation(a), 1); /* same holder */
	assert_true(lease_renewed(a));
	while (now_ms() < u1 + 50)
		sleep_ms(10);
	assert_int_equal(lease_acquire(b, TTL, &u1, &e), 0);
	/* A holder whose lease ran out (nobody took it) gets it back with
	 * the same generation. */
	sleep_ms(TTL + 150);
	assert_int_equal(lease_acquire(a, TTL, &u1, &e), 1);
	assert_int_equal(lease_generation(a), 1);
	assert_true(lease_renewed(a));
	lease_close(a);
	lease_close(b);
}

/* A release frees the lease at once; closing a holder releases too. */
static void check_release(struct fx *f)
{
	struct lease *a = open_as(f, "primary@hostA", NULL);
	struct lease *b = open_as(f, "secondary@hostB", NULL);
	struct kg_err e = { 0 };
	long long until = 0;
	assert_int_equal(lease_acquire(a, 60000, &until, &e), 1);
	assert_int_equal(lease_acquire(b, 60000, &until, &e), 0);
	assert_int_equal(lease_release(a, &e), 0);
	assert_int_equal(lease_acquire(b, 60000, &until, &e), 1);
	assert_int_equal(lease_generation(b), 2);
	/* A release by someone who does not hold it changes nothing. */
	assert_int_equal(lease_release(a, &e), 0);
	assert_int_equal(lease_acquire(a, 60000, &until, &e), 0);
	lease_close(b); /* releases */
	assert_int_equal(lease_acquire(a, 60000, &until, &e), 1);
	assert_int_equal(lease_generation(a), 3);
	assert_false(lease_renewed(a)); /* its lease was someone else's since */
	lease_close(a);
}

/* --- witness backend --- */

static void test_witness_two_holders(void **state)
{
	struct fx *f = *state;
	witness_start(f, false, NULL);
	check_two_holders(f);
}

static void test_witness_renew(void **state)
{
	struct fx *f = *state;
	witness_start(f, true, NULL);
	check_renew(f);
}

static void test_witness_release(void **state)
{
	struct fx *f = *state;
	witness_start(f, false, NULL);
	check_release(f);
}

/* Names keep the leases of different VMs apart on one witness. */
static void test_witness_names(void **state)
{
	struct fx *f = *state;
	witness_start(f, false, NULL);
	char base[200], spec[220];
	snprintf(base, sizeof(base), "%s", f->spec);
	struct kg_err e = { 0 };
	long long until;
	snprintf(spec, sizeof(spec), "%s#vm1", base);
	struct lease *a = lease_open(spec, "primary@hostA", NULL, &e);
	snprintf(spec, sizeof(spec), "%s#vm2", base);
	struct lease *b = lease_open(spec, "secondary@hostB", NULL, &e);
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(lease_acquire(a, 60000, &until, &e), 1);
	assert_int_equal(lease_acquire(b, 60000, &until, &e), 1);
	lease_close(a);
	lease_close(b);
}

/* A key on both sides works; a wrong key or a missing one is -1 with an
 * authentication error, not a refusal (0). */
static void test_witness_key(void **state)
{
	struct fx *f = *state;
	struct kg_tp_key k1, k2;
	make_key(&k1, 1);
	make_key(&k2, 2);
	witness_start(f, true, &k1);
	struct kg_err e = { 0 };
	long long until;
	struct lease *good = open_as(f, "primary@hostA", &k1);
	struct lease *bad = open_as(f, "secondary@hostB", &k2);
	struct lease *none = open_as(f, "third@hostC", NULL);
	assert_int_equal(lease_acquire(good, TTL, &until, &e), 1);
	assert_int_equal(lease_acquire(bad, TTL, &until, &e), -1);
	assert_non_null(strstr(e.msg, "lease witness tcp:127.0.0.1:"));
	assert_non_null(strstr(e.msg, "authentication"));
	assert_non_null(strstr(e.msg, "wrong key"));
	assert_int_equal(e.kind, KG_ERR_AUTH);
	assert_int_equal(lease_acquire(none, TTL, &until, &e), -1);
	assert_non_null(strstr(e.msg, "authentication"));
	assert_int_equal(e.kind, KG_ERR_AUTH);
	lease_close(good);
	lease_close(bad);
	lease_close(none);
}

/* No witness: -1 at once, naming the address; the lease we had is still
 * ours until its end (the caller stops the guest then). */
static void test_witness_gone(void **state)
{
	struct fx *f = *state;
	witness_start(f, false, NULL);
	struct lease *a = open_as(f, "primary@hostA", NULL);
	struct kg_err e = { 0 };
	long long until = 0, until2 = 0;
	assert_int_equal(lease_acquire(a, TTL, &until, &e), 1);
	witness_stop(f);
	long long t0 = now_ms();
	assert_int_equal(lease_acquire(a, TTL, &until2, &e), -1);
	assert_true(now_ms() - t0 < 1000);
	assert_non_null(strstr(e.msg, "lease witness unix:"));
	assert_non_null(strstr(e.msg, "w.sock"));
	assert_int_equal(until2, 0); /* untouched */
	lease_close(a); /* the release fails quietly */

	e.msg[0] = 0;
	assert_null(lease_open("witness:tcp:127.0.0.1", "a", NULL, &e));
	assert_non_null(strstr(e.msg, "lease witness"));
}

/* A client that connects and says nothing delays the others by at most
 * the server's io timeout, never blocks it. */
static void test_witness_silent_client(void **state)
{
	struct fx *f = *state;
	witness_start(f, false, NULL);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(s >= 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/w.sock", f->dir);
	assert_int_equal(connect(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	struct lease *a = open_as(f, "primary@hostA", NULL);
	struct kg_err e = { 0 };
	long long until, t0 = now_ms();
	assert_int_equal(lease_acquire(a, TTL, &until, &e), 1);
	assert_true(now_ms() - t0 < 1500);
	close(s);
	lease_close(a);
}

struct logcap {
	pthread_mutex_t lock;
	char text[16384];
	size_t len;
};

static void log_sink(void *ctx, enum kg_log_level level, const char *msg)
{
	(void)level;
	struct logcap *c = ctx;
	pthread_mutex_lock(&c->lock);
	int n = snprintf(c->text + c->len, sizeof(c->text) - c->len, "%s\n",
			 msg);
	if (n > 0 && (size_t)n < sizeof(c->text) - c->len)
		c->len += (size_t)n;
	pthread_mutex_unlock(&c->lock);
}

/* A TCP connection to the witness (tcp:127.0.0.1:PORT in f->spec) from
 * source address src (any 127.x.y.z is this host); says nothing. */
static int connect_from(const struct fx *f, const char *src)
{
	const char *port = strrchr(f->spec, ':');
	assert_non_null(port);
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(s >= 0);
	struct sockaddr_in a = { .sin_family = AF_INET };
	assert_int_equal(inet_pton(AF_INET, src, &a.sin_addr), 1);
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	struct sockaddr_in d = { .sin_family = AF_INET,
				 .sin_port = htons((uint16_t)atoi(port + 1)) };
	assert_int_equal(inet_pton(AF_INET, "127.0.0.1", &d.sin_addr), 1);
	assert_int_equal(connect(s, (struct sockaddr *)&d, sizeof(d)), 0);
	return s;
}

/* Milliseconds until the server closes s (EOF or reset), at most
 * max_ms; max_ms when it did not. */
static long long closed_within(int s, long long max_ms)
{
	long long t0 = now_ms();
	for (;;) {
		long long left = max_ms - (now_ms() - t0);
		if (left <= 0)
			return max_ms;
		struct pollfd p = { .fd = s, .events = POLLIN };
		int n = poll(&p, 1, (int)left);
		if (n > 0) {
			char c;
			ssize_t r = recv(s, &c, 1, MSG_DONTWAIT);
			if (r <= 0)
				return now_ms() - t0;
		}
	}
}

/* Many silent connections (from another address, as an attacker's would
 * be) do not hold up a client: handshakes run side by side. Before, the
 * witness served them one after the other, 300 ms each here, and the
 * client gave up after its 2 s. */
static void test_witness_silent_many(void **state)
{
	struct fx *f = *state;
	witness_start(f, true, NULL);
	int s[16];
	for (int i = 0; i < 16; i++)
		s[i] = connect_from(f, "127.0.0.2");
	sleep_ms(50);
	struct lease *a = open_as(f, "primary@hostA", NULL);
	struct kg_err e = { 0 };
	long long until, t0 = now_ms();
	assert_int_equal(lease_acquire(a, TTL, &until, &e), 1);
	assert_true(now_ms() - t0 < 1000);
	for (int i = 0; i < 16; i++)
		close(s[i]);
	lease_close(a);
}

/* A client that trickles its handshake a byte at a time (each within the
 * io timeout) is cut at the connection's deadline (default 2 s), not
 * served for as long as it likes. */
static void test_witness_trickle(void **state)
{
	struct fx *f = *state;
	witness_start(f, true, NULL);
	int s = connect_from(f, "127.0.0.3");
	long long t0 = now_ms(), closed = -1;
	while (now_ms() - t0 < 8000) {
		if (send(s, "K", 1, MSG_NOSIGNAL) != 1) {
			closed = now_ms() - t0;
			break;
		}
		if (closed_within(s, 150) < 150) {
			closed = now_ms() - t0;
			break;
		}
	}
	close(s);
	assert_true(closed >= 0);
	assert_true(closed < 3500);
}

static void few_clients(struct witness_opts *o)
{
	o->io_timeout_ms = 5000;
	o->conn_deadline_ms = 5000;
	o->max_conns = 4;
	o->max_per_source = 2;
}

/* Past max_per_source from one address, or max_conns in all, a new
 * connection is closed at once, unserved, and the refusal logged; the
 * others stay (silent within their deadline). */
static void test_witness_limits(void **state)
{
	struct fx *f = *state;
	static struct logcap cap = { .lock = PTHREAD_MUTEX_INITIALIZER };
	cap.len = 0;
	cap.text[0] = 0;
	kg_log_configure(NULL, KG_LOG_DEBUG, log_sink, &cap);
	f->tweak = few_clients;
	witness_start(f, true, NULL);
	int s[6];
	s[0] = connect_from(f, "127.0.0.2");
	s[1] = connect_from(f, "127.0.0.2");
	s[2] = connect_from(f, "127.0.0.2"); /* a third from .2 */
	assert_true(closed_within(s[2], 2000) < 2000);
	assert_int_equal(closed_within(s[0], 300), 300);
	assert_int_equal(closed_within(s[1], 1), 1);
	s[3] = connect_from(f, "127.0.0.3");
	s[4] = connect_from(f, "127.0.0.4");
	s[5] = connect_from(f, "127.0.0.5"); /* a fifth in all */
	assert_true(closed_within(s[5], 2000) < 2000);
	assert_int_equal(closed_within(s[3], 300), 300);
	assert_int_equal(closed_within(s[4], 1), 1);
	/* One leaves: a client gets its place. */
	close(s[0]);
	struct lease *a = open_as(f, "primary@hostA", NULL);
	struct kg_err e = { 0 };
	long long until;
	int r = -1;
	for (int i = 0; i < 20 && r != 1; i++) {
		r = lease_acquire(a, TTL, &until, &e);
		if (r != 1)
			sleep_ms(100);
	}
	assert_int_equal(r, 1);
	for (int i = 1; i < 6; i++)
		close(s[i]);
	lease_close(a);
	witness_stop(f);
	kg_log_configure(NULL, KG_LOG_INFO, NULL, NULL);
	assert_non_null(strstr(cap.text, "closed unserved: 2 from its address "
				       "already (limit 2"));
}

/* A request that is not ours is answered with an error, and the witness
 * carries on. */
static void test_witness_bad_request(void **state)
{
	struct fx *f = *state;
	witness_start(f, false, NULL);
	struct kg_transport *t;
	struct kg_err e = { 0 };
	assert_int_equal(kg_tp_connect(f->spec + 8, NULL, &t, &e), 0);
	const char *junk = "{\"v\":2,\"op\":\"steal\",\"name\":\"x\",\"holder\":\"y\","
			   "\"gen\":0}";
	struct iovec iov = { (void *)junk, strlen(junk) };
	struct kg_tp_frame fr = { &iov, 1, 0 };
	assert_int_equal(kg_tp_send(t, &fr, 1, &e), 0);
	char buf[512];
	struct kg_tp_rx rx;
	assert_int_equal(kg_tp_recv(t, buf, sizeof(buf) - 1, &rx, &e), 1);
	buf[rx.len] = 0;
	assert_non_null(strstr(buf, "\"error\""));
	assert_non_null(strstr(buf, "unknown op 'steal'"));
	kg_tp_close(t);
	struct lease *a = open_as(f, "primary@hostA", NULL);
	long long until;
	assert_int_equal(lease_acquire(a, TTL, &until, &e), 1);
	lease_close(a);
}

/* --- forged requests: what a client without the holder's secret may do --- */

/* One request on a new connection, as anyone on the network could send
 * it; the reply's JSON in reply (NUL-terminated). */
static void raw_ask(const struct fx *f, const char *json, char *reply,
		    size_t cap)
{
	struct kg_transport *t;
	struct kg_err e = { 0 };
	if (kg_tp_connect(f->spec + 8, NULL, &t, &e) < 0)
		fail_msg("connect %s: %s", f->spec + 8, e.msg);
	struct iovec iov = { (void *)json, strlen(json) };
	struct kg_tp_frame fr = { &iov, 1, 0 };
	assert_int_equal(kg_tp_send(t, &fr, 1, &e), 0);
	struct kg_tp_rx rx;
	if (kg_tp_recv(t, reply, cap - 1, &rx, &e) != 1)
		fail_msg("no reply to %s: %s", json, e.msg);
	reply[rx.len] = 0;
	kg_tp_close(t);
}

/* A refused acquire changes nothing: not the generation the holder's
 * next renewal gets (a forged {"gen":1000} made a protected primary
 * believe the lease had changed hands), not the lease. */
static void test_witness_forged_acquire(void **state)
{
	struct fx *f = *state;
	witness_start(f, false, NULL);
	struct lease *a = open_as(f, "primary@hostA", NULL);
	struct kg_err e = { 0 };
	long long until;
	assert_int_equal(lease_acquire(a, 60000, &until, &e), 1);
	assert_int_equal(lease_generation(a), 1);
	char rep[512];
	raw_ask(f, "{\"v\":2,\"op\":\"acquire\",\"name\":\"default\","
		"\"holder\":\"x\",\"ttl_ms\":1000,\"gen\":1000,"
		"\"holding\":false}", rep, sizeof(rep));
	assert_non_null(strstr(rep, "\"granted\":false"));
	assert_null(strstr(rep, "1000"));
	raw_ask(f, "{\"v\":2,\"op\":\"release\",\"name\":\"default\","
		"\"holder\":\"x\",\"gen\":2000}", rep, sizeof(rep));
	assert_int_equal(lease_acquire(a, 60000, &until, &e), 1);
	assert_int_equal(lease_generation(a), 1);
	/* The next holder gets the next generation, not one a client made
	 * up. */
	assert_int_equal(lease_release(a, &e), 0);
	struct lease *b = open_as(f, "secondary@hostB", NULL);
	assert_int_equal(lease_acquire(b, 60000, &until, &e), 1);
	assert_int_equal(lease_generation(b), 2);
	lease_close(a);
	lease_close(b);
}

/* The holder's name is no secret (kagami@HOST:PID): a release or a
 * renewal in its name, without the token the witness gave the holder,
 * changes nothing. */
static void test_witness_forged_release(void **state)
{
	struct fx *f = *state;
	witness_start(f, true, NULL);
	struct lease *a = open_as(f, "primary@hostA", NULL);
	struct lease *b = open_as(f, "secondary@hostB", NULL);
	struct kg_err e = { 0 };
	long long until;
	assert_int_equal(lease_acquire(a, 60000, &until, &e), 1);
	char rep[512];
	raw_ask(f, "{\"v\":2,\"op\":\"release\",\"name\":\"default\","
		"\"holder\":\"primary@hostA\",\"gen\":1,"
		"\"token\":\"00000000000000000000000000000000\"}", rep,
		sizeof(rep));
	raw_ask(f, "{\"v\":2,\"op\":\"release\",\"name\":\"default\","
		"\"holder\":\"primary@hostA\",\"gen\":1}", rep, sizeof(rep));
	assert_int_equal(lease_acquire(b, 60000, &until, &e), 0);
	assert_non_null(strstr(e.msg, "held by primary@hostA"));
	/* A "renewal" by name is a claim like any other: refused. */
	raw_ask(f, "{\"v\":2,\"op\":\"acquire\",\"name\":\"default\","
		"\"holder\":\"primary@hostA\",\"ttl_ms\":1000,\"gen\":1,"
		"\"holding\":true}", rep, sizeof(rep));
	assert_non_null(strstr(rep, "\"granted\":false"));
	/* The holder itself still renews and releases. */
	assert_int_equal(lease_acquire(a, 60000, &until, &e), 1);
	assert_int_equal(lease_release(a, &e), 0);
	assert_int_equal(lease_acquire(b, 60000, &until, &e), 1);
	lease_close(a);
	lease_close(b);
}

/* A client of the first protocol (no "v", no token) is told plainly. */
static void test_witness_old_client(void **state)
{
	struct fx *f = *state;
	witness_start(f, false, NULL);
	char rep[512];
	raw_ask(f, "{\"op\":\"acquire\",\"name\":\"default\",\"holder\":"
		"\"old@host\",\"ttl_ms\":1000,\"gen\":0,\"holding\":false}",
		rep, sizeof(rep));
	assert_non_null(strstr(rep, "\"error\""));
	assert_non_null(strstr(rep, "protocol version"));
}

/* A grant carries a fresh 128-bit token (32 hex digits); the holder's
 * release must present it; no log line ever shows it. */
static void test_witness_token(void **state)
{
	struct fx *f = *state;
	static struct logcap cap = { .lock = PTHREAD_MUTEX_INITIALIZER };
	cap.len = 0;
	cap.text[0] = 0;
	kg_log_configure(NULL, KG_LOG_DEBUG, log_sink, &cap);
	witness_start(f, false, NULL);
	char rep[512], req[512], tok[2][40];
	for (int i = 0; i < 2; i++) {
		raw_ask(f, "{\"v\":2,\"op\":\"acquire\",\"name\":\"t\","
			"\"holder\":\"h@host\",\"ttl_ms\":60000,\"gen\":0,"
			"\"holding\":false}", rep, sizeof(rep));
		assert_non_null(strstr(rep, "\"granted\":true"));
		const char *p = strstr(rep, "\"token\":\"");
		assert_non_null(p);
		p += 9;
		size_t n = strspn(p, "0123456789abcdef");
		assert_int_equal(n, 32);
		assert_int_equal(p[n], '"');
		memcpy(tok[i], p, 32);
		tok[i][32] = 0;
		snprintf(req, sizeof(req), "{\"v\":2,\"op\":\"release\","
			 "\"name\":\"t\",\"holder\":\"h@host\",\"token\":\"%s\"}",
			 tok[i]);
		raw_ask(f, req, rep, sizeof(rep));
		assert_non_null(strstr(rep, "\"released\":true"));
	}
	assert_string_not_equal(tok[0], tok[1]);
	witness_stop(f);
	kg_log_configure(NULL, KG_LOG_INFO, NULL, NULL);
	assert_non_null(strstr(cap.text, "released by h@host"));
	assert_null(strstr(cap.text, tok[0]));
	assert_null(strstr(cap.text, tok[1]));
}

/* A witness of the first protocol grants without a token: the client
 * says so instead of holding a lease it could not renew or release. */
struct old_witness {
	struct kg_tp_listener *l;
	atomic_bool stop;
};

static void *old_witness_main(void *arg)
{
	struct old_witness *w = arg;
	while (!atomic_load(&w->stop)) {
		struct kg_transport *t;
		struct kg_err e;
		if (kg_tp_accept(w->l, &t, &e) < 0)
			continue;
		char buf[4096];
		struct kg_tp_rx rx;
		if (kg_tp_recv(t, buf, sizeof(buf), &rx, &e) == 1) {
			const char *r = "{\"granted\":true,\"gen\":1,"
					"\"ttl_ms\":300}";
			struct iovec iov = { (void *)r, strlen(r) };
			struct kg_tp_frame fr = { &iov, 1, 0 };
			kg_tp_send(t, &fr, 1, &e);
		}
		kg_tp_close(t);
	}
	return NULL;
}

static void test_witness_old_server(void **state)
{
	struct fx *f = *state;
	struct old_witness w;
	struct kg_err e = { 0 };
	struct kg_tp_opts o;
	kg_tp_opts_default(&o);
	o.accept_timeout_ms = 50;
	char addr[128];
	snprintf(addr, sizeof(addr), "unix:%s/old.sock", f->dir);
	assert_int_equal(kg_tp_listen(addr, &o, &w.l, &e), 0);
	atomic_init(&w.stop, false);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, old_witness_main, &w), 0);
	snprintf(f->spec, sizeof(f->spec), "witness:%s", addr);
	struct lease *a = open_as(f, "primary@hostA", NULL);
	long long until;
	assert_int_equal(lease_acquire(a, TTL, &until, &e), -1);
	assert_non_null(strstr(e.msg, "older protocol"));
	lease_close(a);
	atomic_store(&w.stop, true);
	pthread_join(th, NULL);
	kg_tp_listener_close(w.l);
}

/* --- the table, with a hand clock --- */

static const char TOK1[] = "11111111111111111111111111111111";
static const char TOK2[] = "22222222222222222222222222222222";
static const char TOK3[] = "33333333333333333333333333333333";

/* A request; token NULL: none (a fresh claim). */
static void req(struct witness_req *r, enum witness_op op, const char *holder,
		unsigned ttl, uint64_t gen, bool holding, const char *token)
{
	memset(r, 0, sizeof(*r));
	r->op = op;
	snprintf(r->name, sizeof(r->name), "vm");
	snprintf(r->holder, sizeof(r->holder), "%s", holder);
	r->ttl_ms = ttl;
	r->gen = gen;
	r->holding = holding;
	if (token)
		snprintf(r->token, sizeof(r->token), "%s", token);
}

static void test_table(void **state)
{
	(void)state;
	struct kg_err e;
	struct witness_table *t = witness_table_new(1000, 2, 0, 0, &e);
	assert_non_null(t);
	struct witness_req r;
	struct witness_reply rep;
	char log[640];
	/* ttl clamped to max_ttl; the first grant is generation 1 whatever
	 * the client says, with the fresh token. */
	req(&r, WITNESS_ACQUIRE, "a", 5000, 7, false, NULL);
	witness_table_apply(t, &r, 100, TOK1, &rep, log, sizeof(log));
	assert_int_equal(rep.status, WITNESS_GRANTED);
	assert_int_equal(rep.ttl_ms, 1000);
	assert_int_equal(rep.gen, 1);
	assert_string_equal(rep.token, TOK1);
	assert_non_null(strstr(log, "granted to a (generation 1, 1000 ms)"));
	assert_null(strstr(log, TOK1));
	/* A renewal (the token) is not logged and keeps token and
	 * generation. */
	req(&r, WITNESS_ACQUIRE, "a", 1000, 1, true, TOK1);
	witness_table_apply(t, &r, 500, TOK2, &rep, log, sizeof(log));
	assert_int_equal(rep.status, WITNESS_GRANTED);
	assert_int_equal(rep.gen, 1);
	assert_string_equal(rep.token, TOK1);
	assert_string_equal(log, "");
	/* The holder's name without its token is just another claim. */
	req(&r, WITNESS_ACQUIRE, "a", 1000, 1, true, NULL);
	witness_table_apply(t, &r, 550, TOK2, &rep, log, sizeof(log));
	assert_int_equal(rep.status, WITNESS_HELD);
	assert_int_equal(rep.token[0], 0);
	/* A refusal is logged once, then not again while nothing changes. */
	req(&r, WITNESS_ACQUIRE, "b", 1000, 0, false, NULL);
	witness_table_apply(t, &r, 600, TOK2, &rep, log, sizeof(log));
	assert_int_equal(rep.status, WITNESS_HELD);
	assert_string_equal(rep.holder, "a");
	assert_int_equal(rep.remaining_ms, 900);
	assert_non_null(strstr(log, "refused b: held by a for 900 ms"));
	witness_table_apply(t, &r, 700, TOK2, &rep, log, sizeof(log));
	assert_int_equal(rep.status, WITNESS_HELD);
	assert_string_equal(log, "");
	/* Expired at 1500: b takes it, with a new token. */
	witness_table_apply(t, &r, 1500, TOK2, &rep, log, sizeof(log));
	assert_int_equal(rep.status, WITNESS_GRANTED);
	assert_int_equal(rep.gen, 2);
	assert_string_equal(rep.token, TOK2);
	assert_non_null(strstr(log, "handed over from a to b (generation 2"));
	/* a's old token is worth nothing now. */
	req(&r, WITNESS_ACQUIRE, "a", 1000, 1, false, TOK1);
	witness_table_apply(t, &r, 1550, TOK3, &rep, log, sizeof(log));
	assert_int_equal(rep.status, WITNESS_HELD);
	assert_string_equal(rep.holder, "b");
	/* Release without b's token: nothing; with it: free at once. */
	req(&r, WITNESS_RELEASE, "a", 0, 0, false, TOK1);
	witness_table_apply(t, &r, 1600, NULL, &rep, log, sizeof(log));
	assert_int_equal(rep.status, WITNESS_RELEASED);
	assert_string_equal(log, "");
	req(&r, WITNESS_RELEASE, "b", 0, 0, false, TOK1);
	witness_table_apply(t, &r, 1600, NULL, &rep, log, sizeof(log));
	assert_string_equal(log, "");
	req(&r, WITNESS_ACQUIRE, "c", 1000, 0, false, NULL);
	witness_table_apply(t, &r, 1600, TOK3, &rep, log, sizeof(log));
	assert_int_equal(rep.status, WITNESS_HELD);
	req(&r, WITNESS_RELEASE, "b", 0, 0, false, TOK2);
	witness_table_apply(t, &r, 1600, NULL, &rep, log, sizeof(log));
	assert_non_null(strstr(log, "released by b"));
	assert_null(strstr(log, TOK2));
	/* Released: b's token renews nothing; a fresh claim gets it. */
	req(&r, WITNESS_ACQUIRE, "a", 1000, 0, false, NULL);
	witness_table_apply(t, &r, 1601, TOK3, &rep, log, sizeof(log));
	assert_int_equal(rep.status, WITNESS_GRANTED);
	assert_int_equal(rep.gen, 3);
	assert_string_equal(rep.token, TOK3);
	/* Two names fill the table; a third fits only once one expired. */
	req(&r, WITNESS_ACQUIRE, "a", 1000, 0, false, NULL);
	snprintf(r.name, sizeof(r.name), "vm2");
	witness_table_apply(t, &r, 1700, TOK1, &rep, log, sizeof(log));
	assert_int_equal(rep.status, WITNESS_GRANTED);
	snprintf(r.name, sizeof(r.name), "vm3");
	witness_table_apply(t, &r, 1800, TOK2, &rep, log, sizeof(log));
	assert_int_equal(rep.status, WITNESS_BAD);
	assert_non_null(strstr(rep.error, "table full"));
	witness_table_apply(t, &r, 2650, TOK2, &rep, log, sizeof(log));
	assert_int_equal(rep.status, WITNESS_GRANTED);
	witness_table_free(t);
}

/* Refused and unproven requests change nothing: the generation the
 * holder renews with, the next holder's generation, the lease. */
static void test_table_refusal_changes_nothing(void **state)
{
	(void)state;
	struct kg_err e;
	struct witness_table *t = witness_table_new(1000, 4, 0, 0, &e);
	assert_non_null(t);
	struct witness_req r;
	struct witness_reply rep;
	char log[640];
	req(&r, WITNESS_ACQUIRE, "a", 1000, 0, false, NULL);
	witness_table_apply(t, &r, 0, TOK1, &rep, log, sizeof(log));
	assert_int_equal(rep.gen, 1);
	/* Forged: a high generation, with and without a made-up token,
	 * claiming to hold it; then releases. */
	req(&r, WITNESS_ACQUIRE, "x", 1000, 1000, false, NULL);
	witness_table_apply(t, &r, 100, TOK2, &rep, log, sizeof(log));
	assert_int_equal(rep.status, WITNESS_HELD);
	assert_int_equal(rep.gen, 1);
	req(&r, WITNESS_ACQUIRE, "x", 1000, 1000, true, TOK2);
	witness_table_apply(t, &r, 110, TOK3, &rep, log, sizeof(log));
	assert_int_equal(rep.status, WITNESS_HELD);
	assert_int_equal(rep.gen, 1);
	req(&r, WITNESS_RELEASE, "x", 0, 2000, false, TOK2);
	witness_table_apply(t, &r, 120, NULL, &rep, log, sizeof(log));
	req(&r, WITNESS_RELEASE, "a", 0, 2000, false, TOK3);
	witness_table_apply(t, &r, 130, NULL, &rep, log, sizeof(log));
	/* The holder renews as if nothing happened. */
	req(&r, WITNESS_ACQUIRE, "a", 1000, 1, true, TOK1);
	witness_table_apply(t, &r, 200, TOK2, &rep, log, sizeof(log));
	assert_int_equal(rep.status, WITNESS_GRANTED);
	assert_int_equal(rep.gen, 1);
	assert_string_equal(rep.token, TOK1);
	/* Its lease ran out, nobody took it: its token still renews it
	 * (logged, since it lapsed), same generation. */
	witness_table_apply(t, &r, 1300, TOK2, &rep, log, sizeof(log));
	assert_int_equal(rep.status, WITNESS_GRANTED);
	assert_int_equal(rep.gen, 1);
	assert_string_equal(rep.token, TOK1);
	assert_non_null(strstr(log, "renewed by a after it ran out"));
	/* After its release the next holder gets generation 2, not 1001. */
	req(&r, WITNESS_RELEASE, "a", 0, 0, false, TOK1);
	witness_table_apply(t, &r, 1400, NULL, &rep, log, sizeof(log));
	req(&r, WITNESS_ACQUIRE, "b", 1000, 1000, false, NULL);
	witness_table_apply(t, &r, 1500, TOK2, &rep, log, sizeof(log));
	assert_int_equal(rep.status, WITNESS_GRANTED);
	assert_int_equal(rep.gen, 2);
	witness_table_free(t);
}

/* A restarted witness grants, during its grace period, only renewals of
 * leases it forgot (adopting their token and generation); fresh claims
 * wait. */
static void test_table_restart_grace(void **state)
{
	(void)state;
	struct kg_err e;
	struct witness_table *t = witness_table_new(1000, 8, 0, 1000, &e);
	assert_non_null(t);
	struct witness_req r;
	struct witness_reply rep;
	char log[640];
	req(&r, WITNESS_ACQUIRE, "b", 1000, 4, false, NULL);
	witness_table_apply(t, &r, 10, TOK2, &rep, log, sizeof(log));
	assert_int_equal(rep.status, WITNESS_HELD);
	assert_non_null(strstr(rep.holder, "restarted"));
	assert_int_equal(rep.remaining_ms, 990);
	/* The refusal reaches the client as one: before, its holder had
	 * spaces and the client's decoder took the reply for a bad one. */
	char wire[1024];
	struct witness_reply back;
	assert_int_equal(witness_reply_encode(&rep, wire, sizeof(wire), &e), 0);
	assert_int_equal(witness_reply_decode(wire, strlen(wire), &back, &e), 0);
	assert_int_equal(back.status, WITNESS_HELD);
	assert_string_equal(back.holder, rep.holder);
	/* Holding without a token proves nothing. */
	req(&r, WITNESS_ACQUIRE, "b", 1000, 4, true, NULL);
	witness_table_apply(t, &r, 15, TOK2, &rep, log, sizeof(log));
	assert_int_equal(rep.status, WITNESS_HELD);
	req(&r, WITNESS_ACQUIRE, "a", 1000, 4, true, TOK1);
	witness_table_apply(t, &r, 20, TOK2, &rep, log, sizeof(log));
	assert_int_equal(rep.status, WITNESS_GRANTED);
	assert_int_equal(rep.gen, 4);
	assert_string_equal(rep.token, TOK1);
	assert_non_null(strstr(log, "across a witness restart"));
	req(&r, WITNESS_ACQUIRE, "b", 1000, 4, false, NULL);
	witness_table_apply(t, &r, 30, TOK2, &rep, log, sizeof(log));
	assert_int_equal(rep.status, WITNESS_HELD);
	assert_string_equal(rep.holder, "a");
	req(&r, WITNESS_ACQUIRE, "a", 1000, 4, true, TOK1);
	witness_table_apply(t, &r, 40, TOK2, &rep, log, sizeof(log));
	assert_int_equal(rep.status, WITNESS_GRANTED);
	assert_int_equal(rep.gen, 4);
	/* After the grace period a name nobody claimed back is free, and
	 * counts from 1 again (its old token renews nothing). */
	req(&r, WITNESS_ACQUIRE, "c", 1000, 9, true, TOK3);
	snprintf(r.name, sizeof(r.name), "other");
	witness_table_apply(t, &r, 1000, TOK2, &rep, log, sizeof(log));
	assert_int_equal(rep.status, WITNESS_GRANTED);
	assert_int_equal(rep.gen, 1);
	assert_string_equal(rep.token, TOK2);
	witness_table_free(t);
}

/* --- file backend --- */

static void test_file_two_holders(void **state)
{
	check_two_holders(*state);
}

static void test_file_renew(void **state)
{
	check_renew(*state);
}

static void test_file_release(void **state)
{
	check_release(*state);
}

static void write_text(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
	close(fd);
}

static void test_file_corrupt(void **state)
{
	struct fx *f = *state;
	char path[128];
	snprintf(path, sizeof(path), "%s/lease", f->dir);
	struct lease *a = open_as(f, "primary@hostA", NULL);
	struct kg_err e = { 0 };
	long long until;
	const char *bad[] = {
		"garbage\n",
		"",
		"{\"kagami_lease\":1,\"holder\":\"a b\",\"generation\":1,"
		"\"expiry_ms\":1}\n",
		"{\"kagami_lease\":2,\"holder\":\"a\",\"generation\":1,"
		"\"expiry_ms\":1}\n",
		"{\"kagami_lease\":1,\"holder\":\"a\",\"generation\":-1,"
		"\"expiry_ms\":1}\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_text(path, bad[i]);
		e.msg[0] = 0;
		assert_int_equal(lease_acquire(a, TTL, &until, &e), -1);
		assert_non_null(strstr(e.msg, path));
		assert_non_null(strstr(e.msg, "corrupt"));
		assert_int_equal(e.kind, KG_ERR_CORRUPT);
	}
	lease_close(a);
	/* A directory that does not exist: -1 naming the file. */
	snprintf(f->spec, sizeof(f->spec), "file:%s/nodir/lease", f->dir);
	a = open_as(f, "primary@hostA", NULL);
	assert_int_equal(lease_acquire(a, TTL, &until, &e), -1);
	assert_non_null(strstr(e.msg, "nodir/lease"));
	lease_close(a);
}

/* The record on disk is what the header says, and the temporary file is
 * gone after the rename. */
static void test_file_format(void **state)
{
	struct fx *f = *state;
	struct lease *a = open_as(f, "primary@hostA", NULL);
	struct kg_err e = { 0 };
	long long until;
	assert_int_equal(lease_acquire(a, TTL, &until, &e), 1);
	char path[128], buf[256] = "";
	snprintf(path, sizeof(path), "%s/lease", f->dir);
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_true(read(fd, buf, sizeof(buf) - 1) > 0);
	close(fd);
	assert_non_null(strstr(buf, "{\"kagami_lease\":1,\"holder\":"
				    "\"primary@hostA\",\"generation\":1,"
				    "\"expiry_ms\":"));
	DIR *d = opendir(f->dir);
	assert_non_null(d);
	for (struct dirent *de; (de = readdir(d));)
		assert_null(strstr(de->d_name, ".tmp."));
	closedir(d);
	lease_close(a);
}

/* Someone who can write the lease's directory plants a symlink where a
 * predictable temporary file would be: the lease must neither write
 * through it nor rename it over the lease file. */
static void test_file_tmp_symlink(void **state)
{
	struct fx *f = *state;
	char victim[128], tmp[160], path[128];
	snprintf(victim, sizeof(victim), "%s/victim", f->dir);
	snprintf(path, sizeof(path), "%s/lease", f->dir);
	write_text(victim, "precious\n");
	snprintf(tmp, sizeof(tmp), "%s.tmp.primary@hostA", path);
	assert_int_equal(symlink(victim, tmp), 0);
	struct lease *a = open_as(f, "primary@hostA", NULL);
	struct kg_err e = { 0 };
	long long until;
	assert_int_equal(lease_acquire(a, TTL, &until, &e), 1);
	char buf[64] = "";
	int fd = open(victim, O_RDONLY);
	assert_true(fd >= 0);
	assert_true(read(fd, buf, sizeof(buf) - 1) >= 0);
	close(fd);
	assert_string_equal(buf, "precious\n");
	struct stat st;
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0644);
	assert_int_equal(lease_release(a, &e), 0);
	lease_close(a);
}

/* Two sides find the file free at the same moment: exactly one wins. */
struct racer {
	struct fx *f;
	const char *holder;
	pthread_barrier_t *go;
	int r;
	struct lease *l;
};

static void *race_main(void *arg)
{
	struct racer *r = arg;
	struct kg_err e;
	long long until;
	pthread_barrier_wait(r->go);
	r->r = lease_acquire(r->l, 5000, &until, &e);
	return NULL;
}

static void test_file_race(void **state)
{
	struct fx *f = *state;
	for (int round = 0; round < 5; round++) {
		char path[128];
		snprintf(path, sizeof(path), "%s/lease", f->dir);
		unlink(path);
		pthread_barrier_t go;
		pthread_barrier_init(&go, NULL, 2);
		struct racer rs[2] = {
			{ f, "primary@hostA", &go, -2, NULL },
			{ f, "secondary@hostB", &go, -2, NULL },
		};
		pthread_t th[2];
		for (int i = 0; i < 2; i++) {
			rs[i].l = open_as(f, rs[i].holder, NULL);
			assert_int_equal(pthread_create(&th[i], NULL, race_main,
							&rs[i]), 0);
		}
		for (int i = 0; i < 2; i++)
			pthread_join(th[i], NULL);
		pthread_barrier_destroy(&go);
		/* Never both; one may be -1 (slow write) but then not 1. */
		assert_false(rs[0].r == 1 && rs[1].r == 1);
		assert_true(rs[0].r == 1 || rs[1].r == 1 ||
			    rs[0].r < 0 || rs[1].r < 0);
		for (int i = 0; i < 2; i++)
			lease_close(rs[i].l);
	}
}

/* --- clocks --- */

/* Leases are timed on CLOCK_BOOTTIME, which counts a host's suspend: a
 * primary that wakes up must find its lease over, not still running. In
 * a time namespace whose boot clock is 100000 s ahead of its monotonic
 * clock (as after a long suspend), the end lease_acquire gives is on the
 * boot clock. Root only (a time namespace); skipped otherwise. */
static long long boot_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_lease_boottime(void **state)
{
	struct fx *f = *state;
	if (unshare(CLONE_NEWTIME) < 0) {
		skip();
		return;
	}
	int fd = open("/proc/self/timens_offsets", O_WRONLY);
	assert_true(fd >= 0);
	const char *off = "boottime 100000 0\n";
	assert_int_equal(write(fd, off, strlen(off)), (ssize_t)strlen(off));
	close(fd);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* In the namespace: both backends. */
		int bad = 0;
		for (int i = 0; i < 2; i++) {
			if (i == 1) {
				witness_start(f, false, NULL);
			}
			struct kg_err e = { 0 };
			struct lease *l = lease_open(f->spec, "primary@hostA",
						     NULL, &e);
			long long until = 0, b0 = boot_ms(), m0 = now_ms();
			int r = l ? lease_acquire(l, TTL, &until, &e) : -2;
			long long b1 = boot_ms();
			if (r != 1 || b0 - m0 < 99000000 || until < b0 + TTL ||
			    until > b1 + TTL) {
				fprintf(stderr, "backend %d: r=%d until=%lld "
					"boot=%lld..%lld mono=%lld: %s\n", i,
					r, until, b0, b1, m0, e.msg);
				bad = 1;
			}
			lease_close(l);
		}
		witness_stop(f);
		_exit(bad);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

/* --- specs and names --- */

static void test_open_errors(void **state)
{
	(void)state;
	struct kg_err e = { 0 };
	assert_null(lease_open("nfs:/x", "a", NULL, &e));
	assert_non_null(strstr(e.msg, "expected witness:ADDR[#NAME] or file:PATH"));
	assert_null(lease_open("file:/tmp/x", "has space", NULL, &e));
	assert_non_null(strstr(e.msg, "lease holder 'has space'"));
	assert_null(lease_open("file:/tmp/x", "a/b", NULL, &e));
	assert_null(lease_open("file:/tmp/x", "", NULL, &e));
	assert_null(lease_open("file:", "a", NULL, &e));
	assert_null(lease_open("witness:unix:/tmp/w#", "a", NULL, &e));
	assert_non_null(strstr(e.msg, "bad lease name"));
	assert_null(lease_open("witness:", "a", NULL, &e));
	struct lease *l = lease_open("witness:unix:/tmp/w#vm1", "a", NULL, &e);
	assert_non_null(l);
	long long until;
	assert_int_equal(lease_acquire(l, 0, &until, &e), -1);
	assert_non_null(strstr(e.msg, "ttl"));
	lease_close(l);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_witness_two_holders),
		T(test_witness_renew),
		T(test_witness_release),
		T(test_witness_names),
		T(test_witness_key),
		T(test_witness_gone),
		T(test_witness_silent_client),
		T(test_witness_silent_many),
		T(test_witness_trickle),
		T(test_witness_limits),
		T(test_witness_bad_request),
		T(test_witness_forged_acquire),
		T(test_witness_forged_release),
		T(test_witness_old_client),
		T(test_witness_token),
		T(test_witness_old_server),
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_table_refusal_changes_nothing),
		cmocka_unit_test(test_table_restart_grace),
		T(test_file_two_holders),
		T(test_file_renew),
		T(test_file_release),
		T(test_file_corrupt),
		T(test_file_format),
		T(test_file_tmp_symlink),
		T(test_file_race),
		T(test_lease_boottime),
		cmocka_unit_test(test_open_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
