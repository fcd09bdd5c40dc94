/*
 * Unit tests for transport/ (transport/transport.h): tcp on 127.0.0.1 and
 * unix sockets in a temporary directory. Round trips of batches, the
 * handshake with right and wrong keys, key file checks, and every fault
 * the receiver must catch (replay, reorder, corruption, cut, stall,
 * oversized) — each an error within a bounded time, never a hang.
 * Network traffic goes only to loopback and unix sockets.
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
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "transport/transport.h"

#define KiB 1024u
#define MiB (1024u * 1024u)
#define TMO 3000 /* ms: every wait in these tests is bounded by this */

/* --- helpers --- */

static char tmpdir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/kg_transport.XXXXXX");
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
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint8_t pat(uint64_t frame, uint64_t i)
{
	return (uint8_t)(frame * 131u + i * 7u + (i >> 9));
}

static void fill(uint8_t *b, size_t n, uint64_t frame)
{
	for (size_t i = 0; i < n; i++)
		b[i] = pat(frame, i);
}

static void opts(struct kg_tp_opts *o, const struct kg_tp_key *key)
{
	kg_tp_opts_default(o);
	o->connect_timeout_ms = TMO;
	o->io_timeout_ms = TMO;
	o->accept_timeout_ms = TMO;
	o->key = key;
}

static void make_key(struct kg_tp_key *k, uint8_t seed)
{
	memset(k, 0, sizeof(*k));
	k->len = 32;
	for (size_t i = 0; i < k->len; i++)
		k->bytes[i] = (uint8_t)(seed + i * 13);
}

static void write_file(const char *path, size_t n, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	uint8_t b[64];
	memset(b, 'k', sizeof(b));
	assert_int_equal(write(fd, b, n), (ssize_t)n);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

/* A listening address: tcp on an ephemeral loopback port, or a unix
 * socket in tmpdir. */
static const char *listen_addr(bool unix_sock, char *buf, size_t n)
{
	if (unix_sock)
		snprintf(buf, n, "unix:%s/s.sock", tmpdir);
	else
		snprintf(buf, n, "tcp:127.0.0.1:0");
	return buf;
}

/* The server side runs in a thread: accept, then fn. */
struct peer {
	struct kg_tp_listener *l;
	void (*fn)(struct peer *p, struct kg_transport *t);
	int accept_rc, rc;
	struct kg_err e;
	struct kg_err again; /* a receive after the error */
	int nframes; /* frames received in order */
	uint64_t arg;
	pthread_t th;
};

static void *peer_main(void *arg)
{
	struct peer *p = arg;
	struct kg_transport *t;
	p->accept_rc = kg_tp_accept(p->l, &t, &p->e);
	if (p->accept_rc == 0) {
		p->fn(p, t);
		kg_tp_close(t);
	}
	return NULL;
}

static void peer_start(struct peer *p, bool unix_sock, const struct kg_tp_opts *o,
		       void (*fn)(struct peer *, struct kg_transport *))
{
	char a[128];
	struct kg_err e = { 0 };
	memset(p, 0, sizeof(*p));
	p->fn = fn;
	int r = kg_tp_listen(listen_addr(unix_sock, a, sizeof(a)), o, &p->l, &e);
	if (r < 0)
		fail_msg("listen: %s", e.msg);
	assert_int_equal(pthread_create(&p->th, NULL, peer_main, p), 0);
}

static void peer_join(struct peer *p)
{
	pthread_join(p->th, NULL);
	kg_tp_listener_close(p->l);
}

static int connect_to(struct peer *p, const struct kg_tp_opts *o,
		      struct kg_transport **t, struct kg_err *e)
{
	return kg_tp_connect(kg_tp_listener_addr(p->l), o, t, e);
}

/* Receives frames until the orderly close, checking the pattern and the
 * sequence; sends back one frame holding the count. */
static void fn_sink(struct peer *p, struct kg_transport *t)
{
	size_t cap = 9 * MiB;
	uint8_t *buf = malloc(cap), *want = malloc(cap);
	if (!buf || !want)
		abort();
	for (;;) {
		struct kg_tp_rx rx;
		int r = kg_tp_recv(t, buf, cap, &rx, &p->e);
		if (r <= 0) {
			p->rc = r;
			if (r < 0) {
				uint8_t b[8];
				kg_tp_recv(t, b, sizeof(b), &rx, &p->again);
			}
			break;
		}
		/* No cmocka assertions off the main thread: record instead. */
		fill(want, rx.len, rx.seq);
		if (rx.seq != (uint64_t)p->nframes ||
		    rx.flags != ((uint32_t)p->nframes & 0xff) ||
		    memcmp(buf, want, rx.len)) {
			p->rc = -2;
			snprintf(p->e.msg, sizeof(p->e.msg),
				 "sink: frame %d arrived wrong", p->nframes);
			break;
		}
		p->nframes++;
		if (p->arg && (uint64_t)p->nframes == p->arg)
			break;
	}
	if (p->rc == 0) {
		uint32_t n = (uint32_t)p->nframes;
		struct iovec v = { &n, sizeof(n) };
		struct kg_tp_frame f = { &v, 1, 7 };
		struct kg_err e;
		kg_tp_send(t, &f, 1, &e);
	}
	free(buf);
	free(want);
}

/* Sends frames of the given lengths as one batch, each payload split into
 * up to three iovecs, numbered from first. */
static int send_batch(struct kg_transport *t, const size_t *len, size_t n,
		      uint64_t first, struct kg_err *e)
{
	struct kg_tp_frame *f = calloc(n, sizeof(*f));
	struct iovec *v = calloc(n * 3, sizeof(*v));
	uint8_t **bufs = calloc(n, sizeof(*bufs));
	assert_non_null(f);
	assert_non_null(v);
	assert_non_null(bufs);
	for (size_t i = 0; i < n; i++) {
		bufs[i] = malloc(len[i] + 1);
		assert_non_null(bufs[i]);
		fill(bufs[i], len[i], first + i);
		size_t a = len[i] / 3, b = len[i] / 2;
		v[3 * i] = (struct iovec){ bufs[i], a };
		v[3 * i + 1] = (struct iovec){ bufs[i] + a, b - a };
		v[3 * i + 2] = (struct iovec){ bufs[i] + b, len[i] - b };
		f[i] = (struct kg_tp_frame){ v + 3 * i, 3,
					     (uint32_t)((first + i) & 0xff) };
	}
	int r = kg_tp_send(t, f, n, e);
	for (size_t i = 0; i < n; i++)
		free(bufs[i]);
	free(bufs);
	free(v);
	free(f);
	return r;
}

/* Reads the sink's answer: the number of frames it received. */
static uint32_t sink_count(struct kg_transport *t)
{
	uint32_t n = 0;
	struct kg_tp_rx rx;
	struct kg_err e = { 0 };
	int r = kg_tp_recv(t, &n, sizeof(n), &rx, &e);
	if (r != 1)
		fail_msg("sink answer: %d %s", r, e.msg);
	assert_int_equal(rx.flags, 7);
	return n;
}

/* --- addresses, keys, fault specs --- */

static void test_addr_parse(void **state)
{
	(void)state;
	struct kg_tp_addr a;
	struct kg_err e = { 0 };
	assert_int_equal(kg_tp_addr_parse("tcp:127.0.0.1:7000", &a, &e), 0);
	assert_int_equal(a.kind, KG_TP_TCP);
	assert_string_equal(a.host, "127.0.0.1");
	assert_string_equal(a.port, "7000");
	assert_int_equal(kg_tp_addr_parse("tcp:[::1]:80", &a, &e), 0);
	assert_string_equal(a.host, "::1");
	assert_int_equal(kg_tp_addr_parse("rdma:host:1", &a, &e), 0);
	assert_int_equal(a.kind, KG_TP_RDMA);
	assert_int_equal(kg_tp_addr_parse("unix:/tmp/x.sock", &a, &e), 0);
	assert_string_equal(a.path, "/tmp/x.sock");

	assert_int_equal(kg_tp_addr_parse("tcp:host", &a, &e), -1);
	assert_string_equal(e.msg, "tcp:host: missing :PORT");
	assert_int_equal(kg_tp_addr_parse("tcp:h:70000", &a, &e), -1);
	assert_string_equal(e.msg, "tcp:h:70000: port '70000' is not a number 0..65535");
	assert_int_equal(kg_tp_addr_parse("tcp::80", &a, &e), -1);
	assert_string_equal(e.msg, "tcp::80: missing HOST");
	assert_int_equal(kg_tp_addr_parse("tcp:::1:80", &a, &e), -1);
	assert_string_equal(e.msg, "tcp:::1:80: write an IPv6 address as [ADDR]:PORT");
	assert_int_equal(kg_tp_addr_parse("udp:h:1", &a, &e), -1);
	assert_string_equal(e.msg, "udp:h:1: unknown transport 'udp' (want tcp, unix or rdma)");
	assert_int_equal(kg_tp_addr_parse("127.0.0.1", &a, &e), -1);
	assert_non_null(strstr(e.msg, "missing transport"));
	assert_int_equal(e.kind, KG_ERR_INVALID);
	assert_int_equal(kg_tp_addr_parse("unix:", &a, &e), -1);
	assert_string_equal(e.msg, "unix:: missing PATH");
	char longp[200] = "unix:";
	memset(longp + 5, 'p', 150);
	assert_int_equal(kg_tp_addr_parse(longp, &a, &e), -1);
	assert_non_null(strstr(e.msg, "sun_path"));
}

static void test_key_file(void **state)
{
	(void)state;
	char path[128];
	struct kg_tp_key k;
	struct kg_err e = { 0 };
	snprintf(path, sizeof(path), "%s/key", tmpdir);

	write_file(path, 32, 0600);
	assert_int_equal(kg_tp_key_load(path, &k, &e), 0);
	assert_int_equal(k.len, 32);

	write_file(path, 31, 0600);
	assert_int_equal(kg_tp_key_load(path, &k, &e), -1);
	assert_non_null(strstr(e.msg, "31 bytes, a key needs at least 32"));
	assert_int_equal(e.kind, KG_ERR_INVALID);
	assert_non_null(strstr(e.msg, path));

	write_file(path, 48, 0644);
	assert_int_equal(kg_tp_key_load(path, &k, &e), -1);
	assert_non_null(strstr(e.msg, "readable or writable by group or others (mode 0644)"));
	assert_null(strchr(e.msg, '\n'));

	/* Anyone but the owner: the group too. Each refusal is one line
	 * naming the file and the mode. */
	static const mode_t bad_modes[] = { 0640, 0660, 0604, 0620, 0610,
					    0602 };
	for (size_t i = 0; i < sizeof(bad_modes) / sizeof(bad_modes[0]); i++) {
		write_file(path, 48, bad_modes[i]);
		e.msg[0] = 0;
		assert_int_equal(kg_tp_key_load(path, &k, &e), -1);
		char want[64];
		snprintf(want, sizeof(want), "(mode %04o)", bad_modes[i]);
		assert_non_null(strstr(e.msg, want));
		assert_non_null(strstr(e.msg, path));
		assert_null(strchr(e.msg, '\n'));
		assert_int_equal(k.len, 0);
	}
	write_file(path, 48, 0400); /* read-only for the owner is fine */
	assert_int_equal(kg_tp_key_load(path, &k, &e), 0);

	/* A 0600 file that belongs to someone else: they could swap the key
	 * under us. Only root can make one. */
	write_file(path, 48, 0600);
	if (geteuid() == 0) {
		assert_int_equal(chown(path, 65534, 65534), 0);
		e.msg[0] = 0;
		assert_int_equal(kg_tp_key_load(path, &k, &e), -1);
		assert_non_null(strstr(e.msg, path));
		assert_non_null(strstr(e.msg, "owned by uid 65534"));
		assert_null(strchr(e.msg, '\n'));
		assert_int_equal(chown(path, 0, 0), 0);
		assert_int_equal(kg_tp_key_load(path, &k, &e), 0);
	}

	snprintf(path, sizeof(path), "%s/nokey", tmpdir);
	assert_int_equal(kg_tp_key_load(path, &k, &e), -1);
	assert_non_null(strstr(e.msg, "No such file"));
	assert_int_equal(e.kind, KG_ERR_IO);
	assert_int_equal(kg_tp_key_load(tmpdir, &k, &e), -1);
	assert_non_null(strstr(e.msg, "not a regular file"));
}

static void test_fault_parse(void **state)
{
	(void)state;
	struct kg_tp_fault f;
	struct kg_err e = { 0 };
	assert_int_equal(kg_tp_fault_parse("delay=5,cut=4096,flip=7", &f, &e), 0);
	assert_int_equal(f.on, KG_FAULT_DELAY | KG_FAULT_CUT | KG_FAULT_FLIP);
	assert_int_equal(f.delay_ms, 5);
	assert_int_equal(f.cut_after, 4096);
	assert_int_equal(f.flip_offset, 7);
	assert_int_equal(kg_tp_fault_parse("stall=2,drop=1,dup=3", &f, &e), 0);
	assert_int_equal(f.stall_after, 2);
	assert_int_equal(f.drop_frame, 1);
	assert_int_equal(f.dup_frame, 3);
	assert_int_equal(kg_tp_fault_parse("pause=100000,pause_ms=2500", &f, &e), 0);
	assert_int_equal(f.on, KG_FAULT_PAUSE);
	assert_int_equal(f.pause_after, 100000);
	assert_int_equal(f.pause_ms, 2500);
	assert_int_equal(kg_tp_fault_parse("pause_ms=60001", &f, &e), -1);
	assert_non_null(strstr(e.msg, "bad number for pause_ms"));
	assert_int_equal(kg_tp_fault_parse("bogus=1", &f, &e), -1);
	assert_non_null(strstr(e.msg, "pause or pause_ms"));
	assert_int_equal(kg_tp_fault_parse("cut=x", &f, &e), -1);
	assert_non_null(strstr(e.msg, "bad number for cut"));
	assert_int_equal(e.kind, KG_ERR_INVALID);
}

/* --- round trips --- */

static void roundtrip(bool unix_sock, const struct kg_tp_key *key)
{
	struct kg_tp_opts o;
	opts(&o, key);
	o.max_frame = 9 * MiB;
	struct peer p;
	peer_start(&p, unix_sock, &o, fn_sink);
	struct kg_transport *t;
	struct kg_err e = { 0 };
	if (connect_to(&p, &o, &t, &e) < 0)
		fail_msg("connect: %s", e.msg);

	/* Small and large frames, an empty one, in one batch. */
	size_t mixed[] = { 0, 1, 100, 4096, 65537, 1 * MiB, 8 * MiB + 3 };
	size_t nmixed = sizeof(mixed) / sizeof(mixed[0]);
	assert_int_equal(send_batch(t, mixed, nmixed, 0, &e), 0);
	/* Many frames: 40 batches of 50 small ones. */
	size_t small[50];
	uint64_t seq = nmixed;
	for (int b = 0; b < 40; b++) {
		for (int i = 0; i < 50; i++)
			small[i] = (size_t)(b * 50 + i) % 700;
		if (send_batch(t, small, 50, seq, &e) < 0)
			fail_msg("send: %s", e.msg);
		seq += 50;
	}
	kg_tp_close(t); /* orderly: the sink's recv returns 0 */
	peer_join(&p);
	if (p.accept_rc < 0 || p.rc < 0)
		fail_msg("peer: %s", p.e.msg);
	assert_int_equal(p.nframes, (int)seq);
}

static void test_roundtrip_tcp(void **state)
{
	(void)state;
	roundtrip(false, NULL);
}

static void test_roundtrip_tcp_key(void **state)
{
	(void)state;
	struct kg_tp_key k;
	make_key(&k, 1);
	roundtrip(false, &k);
}

static void test_roundtrip_unix_key(void **state)
{
	(void)state;
	struct kg_tp_key k;
	make_key(&k, 2);
	roundtrip(true, &k);
}

static void fn_echo(struct peer *p, struct kg_transport *t)
{
	uint8_t buf[256];
	struct kg_tp_rx rx;
	while ((p->rc = kg_tp_recv(t, buf, sizeof(buf), &rx, &p->e)) == 1) {
		struct iovec v = { buf, rx.len };
		struct kg_tp_frame f = { &v, 1, rx.flags };
		if (kg_tp_send(t, &f, 1, &p->e) < 0) {
			p->rc = -1;
			return;
		}
		p->nframes++;
	}
	if (p->rc < 0)
		kg_tp_recv(t, buf, sizeof(buf), &rx, &p->again);
}

/* Both directions number their frames independently; the unix socket is
 * mode 0600. */
static void test_both_directions_unix(void **state)
{
	(void)state;
	struct kg_tp_key k;
	make_key(&k, 3);
	struct kg_tp_opts o;
	opts(&o, &k);
	struct peer p;
	peer_start(&p, true, &o, fn_echo);
	struct stat st;
	char path[128];
	snprintf(path, sizeof(path), "%s/s.sock", tmpdir);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);

	struct kg_transport *t;
	struct kg_err e = { 0 };
	if (connect_to(&p, &o, &t, &e) < 0)
		fail_msg("connect: %s", e.msg);
	assert_non_null(strstr(kg_tp_peer(t), "unix:"));
	for (uint32_t i = 0; i < 100; i++) {
		char msg[32], back[32];
		int n = snprintf(msg, sizeof(msg), "ping %u", i);
		struct iovec v = { msg, (size_t)n };
		struct kg_tp_frame f = { &v, 1, i };
		assert_int_equal(kg_tp_send(t, &f, 1, &e), 0);
		struct kg_tp_rx rx;
		assert_int_equal(kg_tp_recv(t, back, sizeof(back), &rx, &e), 1);
		assert_int_equal(rx.seq, i);
		assert_int_equal(rx.flags, i);
		assert_int_equal(rx.len, (uint32_t)n);
		assert_memory_equal(back, msg, (size_t)n);
	}
	/* The transport's own flag bit is refused. */
	struct kg_tp_frame bad = { NULL, 0, KG_FRAME_CLOSE };
	assert_int_equal(kg_tp_send(t, &bad, 1, &e), -1);
	kg_tp_close(t);
	peer_join(&p);
	assert_int_equal(p.accept_rc, 0);
	assert_int_equal(p.rc, 0);
	assert_int_equal(p.nframes, 100);
	assert_int_equal(stat(path, &st), -1); /* the listener removed it */
}

/* --- authentication --- */

/* Server with skey, client with ckey: both must refuse, each with one
 * line; the server's names the client's address. */
static void refused(bool unix_sock, const struct kg_tp_key *skey,
		    const struct kg_tp_key *ckey, const char *client_says,
		    const char *server_says)
{
	struct kg_tp_opts so, co;
	opts(&so, skey);
	opts(&co, ckey);
	struct peer p;
	peer_start(&p, unix_sock, &so, fn_sink);
	struct kg_transport *t = NULL;
	struct kg_err e = { 0 };
	assert_int_equal(connect_to(&p, &co, &t, &e), -1);
	assert_null(t);
	peer_join(&p);
	assert_int_equal(p.accept_rc, -1);
	if (!strstr(e.msg, client_says))
		fail_msg("client said: %s", e.msg);
	if (!strstr(p.e.msg, server_says))
		fail_msg("server said: %s", p.e.msg);
	assert_non_null(strstr(p.e.msg, unix_sock ? "unix:" : "tcp:127.0.0.1:"));
	assert_null(strchr(e.msg, '\n'));
	assert_null(strchr(p.e.msg, '\n'));
	/* a failed handshake is an authentication failure, on both sides */
	assert_int_equal(e.kind, KG_ERR_AUTH);
	assert_int_equal(p.e.kind, KG_ERR_AUTH);
}

static void test_wrong_key_tcp(void **state)
{
	(void)state;
	struct kg_tp_key a, b;
	make_key(&a, 10);
	make_key(&b, 11);
	refused(false, &a, &b, "wrong key", "hung up during authentication");
}

static void test_wrong_key_unix(void **state)
{
	(void)state;
	struct kg_tp_key a, b;
	make_key(&a, 10);
	make_key(&b, 12);
	refused(true, &a, &b, "wrong key", "wrong --key");
}

static void test_missing_key(void **state)
{
	(void)state;
	struct kg_tp_key a;
	make_key(&a, 13);
	refused(false, &a, NULL, "peer requires a key and this side has none",
		"peer has no key and this side requires one");
	refused(false, NULL, &a, "peer has no key and this side requires one",
		"peer requires a key and this side has none");
}

/* A client that is not kagami: refused and logged. */
static void test_not_kagami(void **state)
{
	(void)state;
	struct kg_tp_opts o;
	opts(&o, NULL);
	struct peer p;
	peer_start(&p, false, &o, fn_sink);
	const char *name = kg_tp_listener_addr(p.l);
	int port = atoi(strrchr(name, ':') + 1);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	char junk[64] = "GET / HTTP/1.0\r\n\r\n";
	assert_int_equal(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
	peer_join(&p);
	close(fd);
	assert_int_equal(p.accept_rc, -1);
	assert_non_null(strstr(p.e.msg, "not a kagami transport peer"));
	assert_non_null(strstr(p.e.msg, "tcp:127.0.0.1:"));
	assert_int_equal(p.e.kind, KG_ERR_AUTH);
}

/* A client that connects and says nothing: refused after the timeout. */
static void test_silent_client(void **state)
{
	(void)state;
	struct kg_tp_opts o;
	opts(&o, NULL);
	o.io_timeout_ms = 200;
	struct peer p;
	peer_start(&p, true, &o, fn_sink);
	char path[100];
	snprintf(path, sizeof(path), "%s/s.sock", tmpdir);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un su = { .sun_family = AF_UNIX };
	snprintf(su.sun_path, sizeof(su.sun_path), "%s", path);
	assert_int_equal(connect(fd, (struct sockaddr *)&su, sizeof(su)), 0);
	long long t0 = now_ms();
	peer_join(&p);
	close(fd);
	assert_true(now_ms() - t0 < TMO);
	assert_int_equal(p.accept_rc, -1);
	assert_non_null(strstr(p.e.msg, "no data for 200 ms"));
	/* silent inside the handshake: not authenticated (not TIMEOUT,
	 * which a listener's caller reads as "no peer came") */
	assert_int_equal(p.e.kind, KG_ERR_AUTH);
}

/* --- faults the receiver must catch --- */

/* The client sends n frames of len bytes with fault f; returns the sink's
 * error (or fails if it had none). */
static void faulty(bool unix_sock, const struct kg_tp_key *key,
		   const struct kg_tp_fault *f, size_t n, size_t len,
		   int io_timeout_ms, struct peer *p, int *send_rc,
		   struct kg_err *send_e)
{
	struct kg_tp_opts so, co;
	opts(&so, key);
	so.io_timeout_ms = io_timeout_ms;
	opts(&co, key);
	co.fault = f;
	peer_start(p, unix_sock, &so, fn_sink);
	struct kg_transport *t;
	if (connect_to(p, &co, &t, send_e) < 0)
		fail_msg("connect: %s", send_e->msg);
	size_t *lens = calloc(n, sizeof(*lens));
	for (size_t i = 0; i < n; i++)
		lens[i] = len;
	*send_rc = send_batch(t, lens, n, 0, send_e);
	free(lens);
	peer_join(p);
	if (*send_rc == 0) {
		/* The sink refused: its answer never comes, this side's next
		 * receive is an error, not a hang. */
		struct kg_err e;
		uint8_t b[16];
		struct kg_tp_rx rx;
		assert_int_equal(kg_tp_recv(t, b, sizeof(b), &rx, &e), -1);
	}
	kg_tp_close(t);
	assert_int_equal(p->accept_rc, 0);
}

static void expect_sink_error(struct peer *p, int frames, const char *what,
			      enum kg_err_kind kind)
{
	if (p->rc != -1 || !strstr(p->e.msg, what))
		fail_msg("sink rc %d, frames %d: %s", p->rc, p->nframes, p->e.msg);
	assert_int_equal(p->nframes, frames);
	assert_non_null(strstr(p->e.msg, "receive from "));
	assert_null(strchr(p->e.msg, '\n'));
	if (p->e.kind != kind)
		fail_msg("kind %s, want %s: %s", kg_err_kind_name(p->e.kind),
			 kg_err_kind_name(kind), p->e.msg);
	/* the broken connection repeats the kind that broke it */
	assert_non_null(strstr(p->again.msg, "unusable after an earlier error"));
	assert_int_equal(p->again.kind, kind);
}

static void test_replayed_frame(void **state)
{
	(void)state;
	struct kg_tp_key k;
	make_key(&k, 20);
	struct kg_tp_fault f = { .on = KG_FAULT_DUP, .dup_frame = 2 };
	struct peer p;
	struct kg_err e;
	int rc;
	faulty(false, &k, &f, 5, 100, TMO, &p, &rc, &e);
	assert_int_equal(rc, 0);
	expect_sink_error(&p, 3, "frame seq 2 out of sequence, expected 3 (replayed",
			  KG_ERR_CORRUPT);
}

static void test_dropped_frame(void **state)
{
	(void)state;
	struct kg_tp_fault f = { .on = KG_FAULT_DROP, .drop_frame = 1 };
	struct peer p;
	struct kg_err e;
	int rc;
	faulty(true, NULL, &f, 4, 10, TMO, &p, &rc, &e);
	assert_int_equal(rc, 0);
	expect_sink_error(&p, 1, "frame seq 2 out of sequence, expected 1",
			  KG_ERR_CORRUPT);
}

static void test_flip_payload_mac(void **state)
{
	(void)state;
	struct kg_tp_key k;
	make_key(&k, 21);
	/* Frame 1's payload: frames are 24 + 1000 + 16 bytes. */
	struct kg_tp_fault f = { .on = KG_FAULT_FLIP, .flip_offset = 1040 + 24 + 500 };
	struct peer p;
	struct kg_err e;
	int rc;
	faulty(false, &k, &f, 3, 1000, TMO, &p, &rc, &e);
	expect_sink_error(&p, 1, "frame seq 1: MAC mismatch (corrupted or forged)",
			  KG_ERR_CORRUPT);
	assert_non_null(strstr(p.e.msg, "tcp:127.0.0.1:"));
}

/* A frame renumbered on the wire (the one before it dropped, so the
 * number is the expected one and the header CRC is made to match): only
 * the trailer can tell, and it does, with and without a key. */
static void test_resequenced_frame(void **state)
{
	(void)state;
	struct kg_tp_key k;
	make_key(&k, 24);
	struct kg_tp_fault f = { .on = KG_FAULT_DROP | KG_FAULT_RESEQ,
				 .drop_frame = 1, .reseq_frame = 2,
				 .reseq_to = 1 };
	struct peer p;
	struct kg_err e;
	int rc;
	faulty(false, &k, &f, 4, 100, TMO, &p, &rc, &e);
	expect_sink_error(&p, 1, "frame seq 1: MAC mismatch (corrupted or forged)",
			  KG_ERR_CORRUPT);
	assert_null(strstr(p.e.msg, "out of sequence"));
	faulty(true, NULL, &f, 4, 100, TMO, &p, &rc, &e);
	expect_sink_error(&p, 1, "frame seq 1: checksum mismatch",
			  KG_ERR_CORRUPT);
}

static void test_flip_checksum(void **state)
{
	(void)state;
	/* Without a key, the last byte of frame 0's trailer. */
	struct kg_tp_fault f = { .on = KG_FAULT_FLIP, .flip_offset = 24 + 1000 + 15 };
	struct peer p;
	struct kg_err e;
	int rc;
	faulty(true, NULL, &f, 3, 1000, TMO, &p, &rc, &e);
	expect_sink_error(&p, 0, "frame seq 0: checksum mismatch (corrupted)",
			  KG_ERR_CORRUPT);
}

static void test_flip_header(void **state)
{
	(void)state;
	struct kg_tp_key k;
	make_key(&k, 22);
	/* The length field of frame 2. */
	struct kg_tp_fault f = { .on = KG_FAULT_FLIP, .flip_offset = 2 * 140 + 17 };
	struct peer p;
	struct kg_err e;
	int rc;
	faulty(false, &k, &f, 3, 100, TMO, &p, &rc, &e);
	expect_sink_error(&p, 2, "frame seq 2: header checksum mismatch",
			  KG_ERR_CORRUPT);
}

/* A connection cut mid-frame is an error on both sides, at once. */
static void cut(bool unix_sock)
{
	struct kg_tp_key k;
	make_key(&k, 23);
	struct kg_tp_fault f = { .on = KG_FAULT_CUT, .cut_after = 3 * (24 + 10000 + 16) + 5000 };
	struct peer p;
	struct kg_err e;
	int rc;
	long long t0 = now_ms();
	faulty(unix_sock, &k, &f, 6, 10000, TMO, &p, &rc, &e);
	assert_true(now_ms() - t0 < TMO);
	assert_int_equal(rc, -1);
	if (!strstr(e.msg, "fault: connection cut after 35120 bytes"))
		fail_msg("sender: %s", e.msg);
	assert_non_null(strstr(e.msg, "send to "));
	assert_int_equal(e.kind, KG_ERR_PEER_GONE);
	expect_sink_error(&p, 3, "connection cut inside frame seq 3",
			  KG_ERR_PEER_GONE);
}

static void test_cut_tcp(void **state)
{
	(void)state;
	cut(false);
}

static void test_cut_unix(void **state)
{
	(void)state;
	cut(true);
}

/* The peer vanishes between frames without the orderly close. */
static void test_cut_between_frames(void **state)
{
	(void)state;
	struct kg_tp_fault f = { .on = KG_FAULT_CUT, .cut_after = 2 * (24 + 50 + 16) };
	struct peer p;
	struct kg_err e;
	int rc;
	faulty(false, NULL, &f, 3, 50, TMO, &p, &rc, &e);
	assert_int_equal(rc, -1);
	expect_sink_error(&p, 2, "connection closed by the peer before frame seq 2 (no orderly close)",
			  KG_ERR_PEER_GONE);
}

static void test_delay(void **state)
{
	(void)state;
	struct kg_tp_fault f = { .on = KG_FAULT_DELAY, .delay_ms = 40 };
	struct kg_tp_opts o;
	opts(&o, NULL);
	struct peer p;
	peer_start(&p, false, &o, fn_sink);
	p.arg = 5;
	o.fault = &f;
	struct kg_transport *t;
	struct kg_err e = { 0 };
	assert_int_equal(connect_to(&p, &o, &t, &e), 0);
	size_t lens[5] = { 10, 20, 30, 40, 50 };
	long long t0 = now_ms();
	assert_int_equal(send_batch(t, lens, 5, 0, &e), 0);
	assert_int_equal(sink_count(t), 5);
	long long dt = now_ms() - t0;
	assert_true(dt >= 5 * 40);
	assert_true(dt < TMO);
	kg_tp_close(t);
	peer_join(&p);
	assert_int_equal(p.rc, 0);
	assert_int_equal(p.nframes, 5);
}

/* One pause, before the frame that crosses the byte offset: the frames
 * on the wire are 24 + len + 16 bytes, so the second one crosses 100. */
static void test_pause(void **state)
{
	(void)state;
	struct kg_tp_fault f = { .on = KG_FAULT_PAUSE, .pause_after = 100,
				 .pause_ms = 150 };
	struct kg_tp_opts o;
	opts(&o, NULL);
	struct peer p;
	peer_start(&p, false, &o, fn_sink);
	p.arg = 5;
	o.fault = &f;
	struct kg_transport *t;
	struct kg_err e = { 0 };
	assert_int_equal(connect_to(&p, &o, &t, &e), 0);
	size_t lens[5] = { 10, 20, 30, 40, 50 };
	long long t0 = now_ms();
	assert_int_equal(send_batch(t, lens, 5, 0, &e), 0);
	assert_int_equal(sink_count(t), 5);
	long long dt = now_ms() - t0;
	assert_true(dt >= 150);
	assert_true(dt < 2 * 150 + 100); /* once only */
	kg_tp_close(t);
	peer_join(&p);
	assert_int_equal(p.rc, 0);
	assert_int_equal(p.nframes, 5);
}

/* Frames after the stall vanish: the receiver times out (io_timeout_ms),
 * naming the frame it waits for. */
static void test_stall(void **state)
{
	(void)state;
	struct kg_tp_fault f = { .on = KG_FAULT_STALL, .stall_after = 2 };
	struct peer p;
	struct kg_err e;
	int rc;
	long long t0 = now_ms();
	faulty(false, NULL, &f, 5, 100, 200, &p, &rc, &e);
	assert_true(now_ms() - t0 < 2 * TMO);
	assert_int_equal(rc, 0);
	expect_sink_error(&p, 2, "frame seq 2: no data for 200 ms (peer stalled or dead)",
			  KG_ERR_TIMEOUT);
}

static void test_oversized(void **state)
{
	(void)state;
	struct kg_tp_opts so, co;
	opts(&so, NULL);
	so.max_frame = 1000;
	opts(&co, NULL);
	struct peer p;
	peer_start(&p, false, &so, fn_sink);
	struct kg_transport *t;
	struct kg_err e = { 0 };
	assert_int_equal(connect_to(&p, &co, &t, &e), 0);
	size_t lens[3] = { 1000, 10, 1001 };
	assert_int_equal(send_batch(t, lens, 3, 0, &e), 0);
	peer_join(&p);
	kg_tp_close(t);
	expect_sink_error(&p, 2, "frame seq 2: length 1001 exceeds the limit 1000",
			  KG_ERR_CORRUPT);

	/* Bounded also by the caller's buffer. */
	peer_start(&p, false, &co, fn_echo);
	assert_int_equal(connect_to(&p, &co, &t, &e), 0);
	lens[0] = 300; /* over fn_echo's 256 */
	assert_int_equal(send_batch(t, lens, 1, 0, &e), 0);
	peer_join(&p);
	kg_tp_close(t);
	expect_sink_error(&p, 0, "frame seq 0: length 300 exceeds the receive buffer (256 bytes)",
			  KG_ERR_CORRUPT);

	/* A sender's own limit. */
	co.max_frame = KG_FRAME_MAX_LIMIT + 1;
	assert_int_equal(kg_tp_connect("tcp:127.0.0.1:1", &co, &t, &e), -1);
	assert_non_null(strstr(e.msg, "max_frame"));
	assert_int_equal(e.kind, KG_ERR_INVALID);
}

/* --- connecting --- */

static void test_connect_refused(void **state)
{
	(void)state;
	/* A bound, non-listening loopback port: connect gets a reset. */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	char addr[64];
	snprintf(addr, sizeof(addr), "tcp:127.0.0.1:%u", ntohs(sa.sin_port));
	struct kg_tp_opts o;
	opts(&o, NULL);
	struct kg_transport *t;
	struct kg_err e = { 0 };
	assert_int_equal(kg_tp_connect(addr, &o, &t, &e), -1);
	char want[128];
	snprintf(want, sizeof(want), "connect %s: Connection refused", addr);
	assert_string_equal(e.msg, want);
	assert_int_equal(e.kind, KG_ERR_REFUSED);
	close(fd);

	char uaddr[128];
	snprintf(uaddr, sizeof(uaddr), "unix:%s/nothing.sock", tmpdir);
	assert_int_equal(kg_tp_connect(uaddr, &o, &t, &e), -1);
	assert_non_null(strstr(e.msg, "No such file or directory"));
	assert_int_equal(e.kind, KG_ERR_IO);
	/* a unix socket nobody listens on any more: refused, like tcp */
	snprintf(uaddr, sizeof(uaddr), "unix:%s/stale.sock", tmpdir);
	int us = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un su = { .sun_family = AF_UNIX };
	snprintf(su.sun_path, sizeof(su.sun_path), "%s/stale.sock", tmpdir);
	assert_int_equal(bind(us, (struct sockaddr *)&su, sizeof(su)), 0);
	close(us);
	assert_int_equal(kg_tp_connect(uaddr, &o, &t, &e), -1);
	assert_non_null(strstr(e.msg, "Connection refused"));
	assert_int_equal(e.kind, KG_ERR_REFUSED);
	unlink(su.sun_path);
}

/* A loopback listener whose backlog is full drops our SYN: the connect
 * must give up after connect_timeout_ms. */
static void test_connect_timeout(void **state)
{
	(void)state;
	int l = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(l, 0), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&sa, &sl), 0);
	int filler = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	connect(filler, (struct sockaddr *)&sa, sizeof(sa));
	struct pollfd pf = { filler, POLLOUT, 0 };
	assert_int_equal(poll(&pf, 1, TMO), 1);

	char addr[64];
	snprintf(addr, sizeof(addr), "tcp:127.0.0.1:%u", ntohs(sa.sin_port));
	struct kg_tp_opts o;
	opts(&o, NULL);
	o.connect_timeout_ms = 300;
	struct kg_transport *t;
	struct kg_err e = { 0 };
	long long t0 = now_ms();
	assert_int_equal(kg_tp_connect(addr, &o, &t, &e), -1);
	long long dt = now_ms() - t0;
	char want[128];
	snprintf(want, sizeof(want), "connect %s: no answer within 300 ms", addr);
	assert_string_equal(e.msg, want);
	assert_int_equal(e.kind, KG_ERR_TIMEOUT);
	assert_true(dt >= 290 && dt < TMO);
	close(filler);
	close(l);
}

/* A listener that accepts and never answers the hello. */
static void test_handshake_timeout(void **state)
{
	(void)state;
	int l = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(l, 4), 0);
	assert_int_equal(getsockname(l, (struct sockaddr *)&sa, &sl), 0);
	char addr[64];
	snprintf(addr, sizeof(addr), "tcp:127.0.0.1:%u", ntohs(sa.sin_port));
	struct kg_tp_opts o;
	opts(&o, NULL);
	o.io_timeout_ms = 200;
	struct kg_transport *t;
	struct kg_err e = { 0 };
	assert_int_equal(kg_tp_connect(addr, &o, &t, &e), -1);
	assert_non_null(strstr(e.msg, "authentication with tcp:127.0.0.1:"));
	assert_non_null(strstr(e.msg, "no data for 200 ms"));
	assert_int_equal(e.kind, KG_ERR_AUTH);
	close(l);
}

static void test_accept_timeout(void **state)
{
	(void)state;
	struct kg_tp_opts o;
	opts(&o, NULL);
	o.accept_timeout_ms = 100;
	struct kg_tp_listener *l;
	struct kg_transport *t;
	struct kg_err e = { 0 };
	assert_int_equal(kg_tp_listen("tcp:127.0.0.1:0", &o, &l, &e), 0);
	assert_int_equal(kg_tp_accept(l, &t, &e), -1);
	assert_non_null(strstr(e.msg, "no peer within 100 ms"));
	assert_int_equal(e.kind, KG_ERR_TIMEOUT);
	kg_tp_listener_close(l);
	/* A live unix socket is not stolen; a stale one is replaced. */
	char a[128];
	listen_addr(true, a, sizeof(a));
	struct kg_tp_listener *l2;
	assert_int_equal(kg_tp_listen(a, &o, &l, &e), 0);
	assert_int_equal(kg_tp_listen(a, &o, &l2, &e), -1);
	assert_non_null(strstr(e.msg, "Address already in use"));
	assert_int_equal(e.kind, KG_ERR_IO);
	kg_tp_listener_close(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addr_parse),
		cmocka_unit_test(test_key_file),
		cmocka_unit_test(test_fault_parse),
		cmocka_unit_test(test_pause),
		cmocka_unit_test(test_roundtrip_tcp),
		cmocka_unit_test(test_roundtrip_tcp_key),
		cmocka_unit_test(test_roundtrip_unix_key),
		cmocka_unit_test(test_both_directions_unix),
		cmocka_unit_test(test_wrong_key_tcp),
		cmocka_unit_test(test_wrong_key_unix),
		cmocka_unit_test(test_missing_key),
		cmocka_unit_test(test_not_kagami),
		cmocka_unit_test(test_silent_client),
		cmocka_unit_test(test_replayed_frame),
		cmocka_unit_test(test_dropped_frame),
		cmocka_unit_test(test_flip_payload_mac),
		cmocka_unit_test(test_resequenced_frame),
		cmocka_unit_test(test_flip_checksum),
		cmocka_unit_test(test_flip_header),
		cmocka_unit_test(test_cut_tcp),
		cmocka_unit_test(test_cut_unix),
		cmocka_unit_test(test_cut_between_frames),
		cmocka_unit_test(test_delay),
		cmocka_unit_test(test_stall),
		cmocka_unit_test(test_oversized),
		cmocka_unit_test(test_connect_refused),
		cmocka_unit_test(test_connect_timeout),
		cmocka_unit_test(test_handshake_timeout),
		cmocka_unit_test(test_accept_timeout),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
