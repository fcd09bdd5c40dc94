/*
 * Unit tests for the replication link (ft/pipeline/rlink.h): a kagami
 * stream and control messages multiplexed over a transport/ connection,
 * here a unix socket in a temporary directory or tcp on 127.0.0.1.
 * Stream bytes in small and large pieces arrive byte-exact; messages come
 * back at their place in the stream (and in order when met inside a read);
 * the reader thread skips heartbeats, always returns ABORT, times out and
 * reports a closed or cut peer by name; malformed frames are errors;
 * --bandwidth holds the stream back; keys and injected faults.
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

#include <pthread.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "ft/pipeline/lockstep.h"
#include "ft/pipeline/rlink.h"
#include "ft/record/rr_log.h"

#define KiB 1024u
#define MiB (1024u * 1024u)
#define TMO 3000 /* ms: every wait in these tests is bounded by this */

/* --- helpers --- */

static char tmpdir[64];

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/kg_rlink.XXXXXX");
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

static uint8_t pat(uint64_t i)
{
	return (uint8_t)(i * 7u + (i >> 9) + (i >> 17) * 3u);
}

static void opts(struct kg_tp_opts *o, const struct kg_tp_key *key,
		 const struct kg_tp_fault *fault)
{
	kg_tp_opts_default(o);
	o->connect_timeout_ms = TMO;
	o->io_timeout_ms = TMO;
	o->accept_timeout_ms = TMO;
	o->key = key;
	o->fault = fault;
}

static void make_key(struct kg_tp_key *k, uint8_t seed)
{
	memset(k, 0, sizeof(*k));
	k->len = 32;
	for (size_t i = 0; i < k->len; i++)
		k->bytes[i] = (uint8_t)(seed + i * 13);
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

/* A connected pair of links: *srv accepted (listener options so), *cli
 * connected (cli_o). bw_* are the links' bandwidths. */
static void link_pair(bool unix_sock, const struct kg_tp_opts *srv_o,
		      const struct kg_tp_opts *cli_o, uint64_t bw_srv,
		      uint64_t bw_cli, struct rlink **srv, struct rlink **cli)
{
	char addr[128];
	struct kg_err e = { 0 };
	struct acceptor a = { 0 };
	if (unix_sock)
		snprintf(addr, sizeof(addr), "unix:%s/s.sock", tmpdir);
	else
		snprintf(addr, sizeof(addr), "tcp:127.0.0.1:0");
	if (kg_tp_listen(addr, srv_o, &a.l, &e) < 0)
		fail_msg("listen %s: %s", addr, e.msg);
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, accept_main, &a), 0);
	struct kg_transport *ct;
	int r = kg_tp_connect(kg_tp_listener_addr(a.l), cli_o, &ct, &e);
	pthread_join(th, NULL);
	kg_tp_listener_close(a.l);
	if (r < 0)
		fail_msg("connect: %s", e.msg);
	if (a.rc < 0)
		fail_msg("accept: %s", a.e.msg);
	*srv = rlink_new(a.t, bw_srv, &e);
	assert_non_null(*srv);
	*cli = rlink_new(ct, bw_cli, &e);
	assert_non_null(*cli);
}

static void plain_pair(bool unix_sock, struct rlink **srv, struct rlink **cli)
{
	struct kg_tp_opts o;
	opts(&o, NULL, NULL);
	link_pair(unix_sock, &o, &o, 0, 0, srv, cli);
}

static int wr(struct rlink *l, const void *p, size_t n, struct kg_err *e)
{
	struct iovec v = { (void *)p, n };
	return rlink_stream_io.writev(l, &v, 1, e);
}

/* Reads exactly n stream bytes (fails the test on a short read). */
static void rd(struct rlink *l, void *p, size_t n)
{
	struct kg_err e = { 0 };
	size_t got = 0;
	if (rlink_stream_io.read(l, p, n, &got, &e) < 0)
		fail_msg("read: %s", e.msg);
	assert_int_equal(got, n);
}

/* --- (a) stream bytes, small and large pieces --- */

/* The writer's script: every piece's length, in order. Large ones go in
 * several iovecs. The pattern runs on across pieces. */
struct writer {
	struct rlink *l;
	size_t total;
	int rc;
	struct kg_err e;
	const uint8_t *src;
	uint64_t bw_ms; /* time taken (bandwidth test) */
	size_t piece;   /* 0: the mixed script; else fixed piece size */
};

static const size_t script[] = {
	1, 2, 3, 16, 100, 4095, 4096, 4097,
	RLINK_GATHER / 4 - 1,          /* still gathered */
	RLINK_GATHER / 4,              /* its own frame */
	RLINK_GATHER / 4 + 1,
	7, 13,
	RLINK_GATHER - 10,
	RLINK_MAX_FRAME,               /* exactly one frame */
	RLINK_MAX_FRAME + 1,           /* split */
	5,
	2 * RLINK_MAX_FRAME + 12345,   /* split in three */
	1, 1, 1,
};

static size_t script_total(void)
{
	size_t t = 0;
	for (size_t i = 0; i < sizeof(script) / sizeof(script[0]); i++)
		t += script[i];
	/* then 3000 small pieces of 1..61 bytes */
	for (size_t i = 0; i < 3000; i++)
		t += 1 + i % 61;
	return t;
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	size_t off = 0;
	long long t0 = now_ms();
	w->rc = 0;
	if (w->piece) {
		while (off < w->total && w->rc == 0) {
			size_t n = w->total - off < w->piece ? w->total - off
							     : w->piece;
			w->rc = wr(w->l, w->src + off, n, &w->e);
			off += n;
		}
	} else {
		for (size_t i = 0; i < sizeof(script) / sizeof(script[0]) &&
				   w->rc == 0; i++) {
			size_t n = script[i];
			if (n > 3 * 4096) {
				/* three iovecs, one of them empty */
				struct iovec v[4] = {
					{ (void *)(w->src + off), n / 3 },
					{ (void *)(w->src + off + n / 3), 0 },
					{ (void *)(w->src + off + n / 3),
					  n - n / 3 - 100 },
					{ (void *)(w->src + off + n - 100), 100 },
				};
				w->rc = rlink_stream_io.writev(w->l, v, 4, &w->e);
			} else {
				w->rc = wr(w->l, w->src + off, n, &w->e);
			}
			off += n;
		}
		for (size_t i = 0; i < 3000 && w->rc == 0; i++) {
			size_t n = 1 + i % 61;
			w->rc = wr(w->l, w->src + off, n, &w->e);
			off += n;
		}
	}
	if (w->rc == 0)
		w->rc = rlink_flush(w->l, &w->e);
	w->bw_ms = (uint64_t)(now_ms() - t0);
	if (w->rc == 0 && off != w->total) {
		w->rc = -2;
		snprintf(w->e.msg, sizeof(w->e.msg), "wrote %zu of %zu", off,
			 w->total);
	}
	return NULL;
}

static void check_stream_roundtrip(bool unix_sock)
{
	struct rlink *a, *b;
	plain_pair(unix_sock, &a, &b);
	size_t total = script_total();
	uint8_t *src = malloc(total), *dst = malloc(total);
	assert_non_null(src);
	assert_non_null(dst);
	for (size_t i = 0; i < total; i++)
		src[i] = pat(i);
	struct writer w = { .l = a, .total = total, .src = src };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, writer_main, &w), 0);
	/* Read in pieces of odd sizes that straddle frames. */
	size_t off = 0, k = 1;
	struct kg_err e = { 0 };
	while (off < total) {
		size_t n = k < total - off ? k : total - off;
		size_t got = 0;
		if (rlink_stream_io.read(b, dst + off, n, &got, &e) < 0)
			fail_msg("read at %zu: %s", off, e.msg);
		if (got != n)
			fail_msg("short read at %zu: %zu of %zu", off, got, n);
		off += n;
		k = k * 3 + 1;
		if (k > 3 * MiB)
			k = 5;
	}
	pthread_join(th, NULL);
	if (w.rc != 0)
		fail_msg("writer: %s", w.e.msg);
	assert_int_equal(rlink_stream_bytes(a), total);
	for (size_t i = 0; i < total; i++)
		if (dst[i] != src[i])
			fail_msg("byte %zu of %zu differs", i, total);
	/* The peer closes in order: the consumer sees 2, and reads end. */
	rlink_free(a);
	struct rlink_msg m;
	assert_int_equal(rlink_next(b, &m, &e), 2);
	size_t got = 1;
	assert_int_equal(rlink_stream_io.read(b, dst, 10, &got, &e), 0);
	assert_int_equal(got, 0);
	assert_int_equal(rlink_next(b, &m, &e), 2);
	rlink_free(b);
	free(src);
	free(dst);
}

static void test_stream_roundtrip_unix(void **state)
{
	(void)state;
	check_stream_roundtrip(true);
}

static void test_stream_roundtrip_tcp(void **state)
{
	(void)state;
	check_stream_roundtrip(false);
}

/* An iovec array whose last element is empty, after a large payload: every
 * byte must still go out (kg_stream_io.writev: "writes every byte"). */
static void test_large_write_trailing_empty_iov(void **state)
{
	(void)state;
	struct rlink *a, *b;
	plain_pair(true, &a, &b);
	size_t n = RLINK_GATHER / 2;
	uint8_t *src = malloc(n + 10), *dst = malloc(n + 10);
	assert_non_null(src);
	assert_non_null(dst);
	for (size_t i = 0; i < n + 10; i++)
		src[i] = pat(i);
	struct kg_err e = { 0 };
	struct iovec v[2] = { { src, n }, { src + n, 0 } };
	assert_int_equal(rlink_stream_io.writev(a, v, 2, &e), 0);
	assert_int_equal(wr(a, src + n, 10, &e), 0);
	assert_int_equal(rlink_flush(a, &e), 0);
	uint64_t sent = rlink_stream_bytes(a);
	rlink_free(a);
	size_t got = 0;
	int r = rlink_stream_io.read(b, dst, n + 10, &got, &e);
	bool same = r == 0 && got == n + 10 && !memcmp(dst, src, n + 10);
	rlink_free(b);
	free(src);
	free(dst);
	/* Checked after the cleanup: a failure leaks nothing. */
	if (sent != n + 10 || !same)
		fail_msg("wrote %zu bytes (the last iovec empty), then 10: the "
			 "link sent %llu and the peer read %zu (r %d%s)",
			 n, (unsigned long long)sent, got, r,
			 same ? "" : ", not the bytes written");
}

/* --- (b) messages between stream bytes --- */

static void test_messages_at_their_place(void **state)
{
	(void)state;
	struct rlink *a, *b;
	plain_pair(true, &a, &b);
	struct kg_err e = { 0 };
	uint8_t s1[100], s2[200], s3[300], buf[300];
	for (size_t i = 0; i < sizeof(s3); i++) {
		s3[i] = pat(i + 1000);
		if (i < sizeof(s1))
			s1[i] = pat(i);
		if (i < sizeof(s2))
			s2[i] = pat(i + 500);
	}
	char longtext[RLINK_TEXT_MAX + 50];
	memset(longtext, 'x', sizeof(longtext) - 1);
	longtext[sizeof(longtext) - 1] = 0;
	longtext[0] = 'L';
	/* Small enough to sit in the socket buffer: no thread needed. */
	assert_int_equal(wr(a, s1, sizeof(s1), &e), 0);
	assert_int_equal(rlink_send(a, RLINK_HELLO, 0x1122334455667788ull,
				    RLINK_MODE_MIGRATE | RLINK_F_STORAGE,
				    "hello there", &e), 0);
	assert_int_equal(wr(a, s2, sizeof(s2), &e), 0);
	assert_int_equal(rlink_send(a, RLINK_READY, 3, 0, NULL, &e), 0);
	assert_int_equal(rlink_send(a, RLINK_ACK, UINT64_MAX, 1, longtext, &e),
			 0);
	assert_int_equal(wr(a, s3, sizeof(s3), &e), 0);
	assert_int_equal(rlink_flush(a, &e), 0);
	assert_int_equal(rlink_stream_bytes(a), 600);

	struct rlink_msg m;
	memset(&m, 0x55, sizeof(m));
	assert_int_equal(rlink_next(b, &m, &e), 0); /* s1 first */
	rd(b, buf, sizeof(s1));
	assert_memory_equal(buf, s1, sizeof(s1));
	assert_int_equal(rlink_next(b, &m, &e), 1);
	assert_int_equal(m.type, RLINK_HELLO);
	assert_true(m.a == 0x1122334455667788ull);
	assert_true(m.b == (RLINK_MODE_MIGRATE | RLINK_F_STORAGE));
	assert_string_equal(m.text, "hello there");
	assert_int_equal(rlink_next(b, &m, &e), 0);
	/* rlink_next says stream bytes are next, and says it again until
	 * they are read. */
	assert_int_equal(rlink_next(b, &m, &e), 0);
	rd(b, buf, sizeof(s2));
	assert_memory_equal(buf, s2, sizeof(s2));
	memset(&m, 0x55, sizeof(m));
	assert_int_equal(rlink_next(b, &m, &e), 1);
	assert_int_equal(m.type, RLINK_READY);
	assert_true(m.a == 3 && m.b == 0);
	assert_string_equal(m.text, ""); /* NUL-terminated, empty */
	assert_int_equal(rlink_next(b, &m, &e), 1);
	assert_int_equal(m.type, RLINK_ACK);
	assert_true(m.a == UINT64_MAX && m.b == 1);
	/* Text longer than RLINK_TEXT_MAX is cut to it. */
	assert_int_equal(strlen(m.text), RLINK_TEXT_MAX);
	assert_memory_equal(m.text, longtext, RLINK_TEXT_MAX);
	assert_int_equal(rlink_next(b, &m, &e), 0);
	rd(b, buf, sizeof(s3));
	assert_memory_equal(buf, s3, sizeof(s3));
	rlink_free(a);
	assert_int_equal(rlink_next(b, &m, &e), 2);
	rlink_free(b);
}

/* Messages met inside a read are queued and come back later, in order,
 * before the close. */
static void test_messages_queued_by_read(void **state)
{
	(void)state;
	struct rlink *a, *b;
	plain_pair(false, &a, &b);
	struct kg_err e = { 0 };
	uint8_t s[400], buf[400];
	for (size_t i = 0; i < sizeof(s); i++)
		s[i] = pat(i * 5);
	assert_int_equal(wr(a, s, 100, &e), 0);
	assert_int_equal(rlink_send(a, RLINK_BEAT, 1000, 0, NULL, &e), 0);
	assert_int_equal(rlink_send(a, RLINK_ACK, 1, 0, "one", &e), 0);
	assert_int_equal(wr(a, s + 100, 100, &e), 0);
	assert_int_equal(rlink_send(a, RLINK_ACK, 2, 0, "two", &e), 0);
	assert_int_equal(wr(a, s + 200, 200, &e), 0);
	assert_int_equal(rlink_send(a, RLINK_GO, 3, 0, "three", &e), 0);
	rlink_free(a); /* flushes nothing more: the message flushed */

	rd(b, buf, 300); /* passes the first three messages */
	assert_memory_equal(buf, s, 300);
	struct rlink_msg m;
	assert_int_equal(rlink_next(b, &m, &e), 1);
	assert_int_equal(m.type, RLINK_BEAT);
	assert_true(m.a == 1000);
	assert_int_equal(rlink_next(b, &m, &e), 1);
	assert_int_equal(m.type, RLINK_ACK);
	assert_string_equal(m.text, "one");
	assert_int_equal(rlink_next(b, &m, &e), 1);
	assert_int_equal(m.type, RLINK_ACK);
	assert_true(m.a == 2);
	assert_string_equal(m.text, "two");
	/* 100 bytes of the last frame are still to read. */
	assert_int_equal(rlink_next(b, &m, &e), 0);
	rd(b, buf, 100);
	assert_memory_equal(buf, s + 300, 100);
	assert_int_equal(rlink_next(b, &m, &e), 1);
	assert_int_equal(m.type, RLINK_GO);
	assert_string_equal(m.text, "three");
	assert_int_equal(rlink_next(b, &m, &e), 2);
	rlink_free(b);
}

/* The queue holds 256 messages: a full one drops its oldest heartbeat,
 * and with none to drop, the read fails. */
static void test_queue_limit(void **state)
{
	(void)state;
	struct rlink *a, *b;
	plain_pair(true, &a, &b);
	struct kg_err e = { 0 };
	uint8_t s[8] = { 1, 2, 3, 4, 5, 6, 7, 8 }, buf[8];
	for (int i = 0; i < 264; i++)
		assert_int_equal(rlink_send(a, RLINK_BEAT, (uint64_t)i, 0, NULL,
					    &e), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(rlink_send(a, RLINK_ACK, (uint64_t)i, 0, NULL,
					    &e), 0);
	assert_int_equal(wr(a, s, sizeof(s), &e), 0);
	assert_int_equal(rlink_flush(a, &e), 0);
	rd(b, buf, sizeof(s));
	assert_memory_equal(buf, s, sizeof(s));
	struct rlink_msg m;
	for (int i = 11; i < 264; i++) {
		assert_int_equal(rlink_next(b, &m, &e), 1);
		assert_int_equal(m.type, RLINK_BEAT);
		assert_true(m.a == (uint64_t)i);
	}
	for (int i = 0; i < 3; i++) {
		assert_int_equal(rlink_next(b, &m, &e), 1);
		assert_int_equal(m.type, RLINK_ACK);
		assert_true(m.a == (uint64_t)i);
	}
	/* 257 messages that are neither heartbeats nor (cumulative, hence
	 * foldable) ACKs before the stream bytes. */
	for (int i = 0; i < 257; i++)
		assert_int_equal(rlink_send(a, RLINK_READY, (uint64_t)i, 0, NULL,
					    &e), 0);
	assert_int_equal(wr(a, s, sizeof(s), &e), 0);
	assert_int_equal(rlink_flush(a, &e), 0);
	size_t got;
	assert_int_equal(rlink_stream_io.read(b, buf, sizeof(s), &got, &e), -1);
	assert_non_null(strstr(e.msg, "more than 256 control messages"));
	assert_int_equal(e.kind, KG_ERR_CORRUPT);
	rlink_free(a);
	rlink_free(b);
}

static void test_msg_names(void **state)
{
	(void)state;
	assert_string_equal(rlink_msg_name(RLINK_READY), "ready");
	assert_string_equal(rlink_msg_name(RLINK_BEAT), "beat");
	assert_string_equal(rlink_msg_name(RLINK_DISK), "disk");
	assert_string_equal(rlink_msg_name(0), "?");
	assert_string_equal(rlink_msg_name(RLINK_NEED), "need");
	assert_string_equal(rlink_msg_name(RLINK_HOLD), "hold");
	assert_string_equal(rlink_msg_name(RLINK_HELD), "held");
	assert_string_equal(rlink_msg_name(RLINK_AGAIN), "again");
	assert_string_equal(rlink_msg_name(RLINK_AGAIN + 1), "?");
	assert_string_equal(rlink_msg_name(UINT32_MAX), "?");
}

/* A message packed by hand parses back; a bad length or type does not. */
static void test_msg_pack_parse(void **state)
{
	(void)state;
	uint8_t buf[RLINK_MSG_HEADER + 4];
	struct rlink_msg m;
	struct kg_err e = { 0 };
	rlink_msg_pack(buf, RLINK_HELD, 0x1122334455667788ull, 42);
	memcpy(buf + RLINK_MSG_HEADER, "abcd", 4);
	assert_int_equal(rlink_msg_parse("p", buf, sizeof(buf), &m, &e), 0);
	assert_int_equal(m.type, RLINK_HELD);
	assert_true(m.a == 0x1122334455667788ull && m.b == 42);
	assert_string_equal(m.text, "abcd");
	assert_int_equal(rlink_msg_parse("p", buf, RLINK_MSG_HEADER - 1, &m,
					 &e), -1);
	assert_non_null(strstr(e.msg, "p: control message of 23 bytes"));
	assert_int_equal(e.kind, KG_ERR_CORRUPT);
	rlink_msg_pack(buf, RLINK_AGAIN + 1, 0, 0);
	assert_int_equal(rlink_msg_parse("p", buf, RLINK_MSG_HEADER, &m, &e),
			 -1);
	assert_non_null(strstr(e.msg, "unknown control message type 16"));
}

/* Signs of life for the failure detector: when frames came, whether a
 * receive waits, the peer's stamp and the largest echo of ours. */
static void test_signs_of_life(void **state)
{
	(void)state;
	struct rlink *a, *b;
	plain_pair(true, &a, &b);
	struct kg_err e = { 0 };
	struct rlink_msg m;
	assert_int_equal(rlink_last_rx_ns(a), 0);
	assert_int_equal(rlink_rx_wait_ns(a), 0);
	assert_int_equal(rlink_peer_stamp(a), 0);
	assert_int_equal(rlink_echo(a), 0);
	/* The consumer style: no receive waits between calls. */
	assert_int_equal(rlink_send(b, RLINK_BEAT, 100, 7, NULL, &e), 0);
	assert_int_equal(rlink_next(a, &m, &e), 1);
	assert_int_equal(rlink_rx_wait_ns(a), 0);
	uint64_t t1 = rlink_last_rx_ns(a);
	assert_true(t1 > 0);
	assert_int_equal(rlink_peer_stamp(a), 100);
	assert_int_equal(rlink_echo(a), 7);
	/* The reader thread waits all the time; echoes only grow. */
	assert_int_equal(rlink_start_reader(a, &e), 0);
	usleep(20000);
	assert_true(rlink_rx_wait_ns(a) > t1);
	assert_int_equal(rlink_send(b, RLINK_BEAT, 101, 9, NULL, &e), 0);
	assert_int_equal(rlink_send(b, RLINK_BEAT, 102, 8, NULL, &e), 0);
	assert_int_equal(rlink_send(b, RLINK_ACK, 1, 0, NULL, &e), 0);
	assert_int_equal(rlink_wait_msg(a, 1u << RLINK_ACK, TMO, &m, &e), 1);
	assert_int_equal(rlink_peer_stamp(a), 102);
	assert_int_equal(rlink_echo(a), 9);
	assert_true(rlink_last_rx_ns(a) > t1);
	rlink_free(b);
	rlink_free(a);
}

/* --- (c) the reader thread and rlink_wait_msg --- */

static void test_wait_msg(void **state)
{
	(void)state;
	struct rlink *a, *b;
	plain_pair(true, &a, &b);
	struct kg_err e = { 0 };
	assert_int_equal(rlink_start_reader(a, &e), 0);
	struct rlink_msg m;
	/* Heartbeats are skipped while waiting for READY. */
	assert_int_equal(rlink_send(b, RLINK_BEAT, 1, 0, NULL, &e), 0);
	assert_int_equal(rlink_send(b, RLINK_BEAT, 2, 0, NULL, &e), 0);
	assert_int_equal(rlink_send(b, RLINK_READY, 7, 8, "r", &e), 0);
	assert_int_equal(rlink_wait_msg(a, 1u << RLINK_READY, TMO, &m, &e), 1);
	assert_int_equal(m.type, RLINK_READY);
	assert_true(m.a == 7 && m.b == 8);
	assert_string_equal(m.text, "r");
	/* Nothing comes: a timeout, 0. */
	long long t0 = now_ms();
	assert_int_equal(rlink_wait_msg(a, 1u << RLINK_ACK, 150, &m, &e), 0);
	long long dt = now_ms() - t0;
	assert_true(dt >= 140);
	assert_true(dt < TMO);
	/* Only heartbeats come: still a timeout. */
	assert_int_equal(rlink_send(b, RLINK_BEAT, 3, 0, NULL, &e), 0);
	assert_int_equal(rlink_wait_msg(a, 1u << RLINK_ACK, 150, &m, &e), 0);
	/* ABORT always. */
	assert_int_equal(rlink_send(b, RLINK_ABORT, 0, 0, "out of disk", &e),
			 0);
	assert_int_equal(rlink_wait_msg(a, 1u << RLINK_ACK, TMO, &m, &e), 1);
	assert_int_equal(m.type, RLINK_ABORT);
	assert_string_equal(m.text, "out of disk");
	assert_int_equal(rlink_send(b, RLINK_ABORT, 0, 0, "again", &e), 0);
	assert_int_equal(rlink_wait_msg(a, 0, TMO, &m, &e), 1);
	assert_int_equal(m.type, RLINK_ABORT);
	/* Several types in the mask; others (not beats) are skipped too. */
	assert_int_equal(rlink_send(b, RLINK_RUNNING, 0, 0, NULL, &e), 0);
	assert_int_equal(rlink_send(b, RLINK_ANSWER, 5, 1, NULL, &e), 0);
	assert_int_equal(rlink_wait_msg(a, 1u << RLINK_ACK | 1u << RLINK_ANSWER,
					TMO, &m, &e), 1);
	assert_int_equal(m.type, RLINK_ANSWER);
	assert_true(m.a == 5 && m.b == 1);
	/* A message that arrived before the wait is not lost. */
	assert_int_equal(rlink_send(b, RLINK_ACK, 9, 0, NULL, &e), 0);
	usleep(100000);
	assert_int_equal(rlink_wait_msg(a, 1u << RLINK_ACK, 0, &m, &e), 1);
	assert_true(m.a == 9);
	/* Forever (< 0) returns when the message comes. */
	assert_int_equal(rlink_send(b, RLINK_GO, 0, 0, NULL, &e), 0);
	assert_int_equal(rlink_wait_msg(a, 1u << RLINK_GO, -1, &m, &e), 1);
	assert_int_equal(m.type, RLINK_GO);
	/* The peer closes in order: -1 naming it, after what came before. */
	assert_int_equal(rlink_send(b, RLINK_ACK, 10, 0, NULL, &e), 0);
	rlink_free(b);
	assert_int_equal(rlink_wait_msg(a, 1u << RLINK_ACK, TMO, &m, &e), 1);
	assert_true(m.a == 10);
	memset(e.msg, 0, sizeof(e.msg));
	t0 = now_ms();
	assert_int_equal(rlink_wait_msg(a, 1u << RLINK_ACK, TMO, &m, &e), -1);
	assert_true(now_ms() - t0 < TMO);
	print_message("closed: %s\n", e.msg);
	assert_non_null(strstr(e.msg, rlink_peer(a)));
	assert_non_null(strstr(e.msg, "closed"));
	assert_int_equal(e.kind, KG_ERR_PEER_GONE);
	/* And stays so. */
	assert_int_equal(rlink_wait_msg(a, 1u << RLINK_ACK, 0, &m, &e), -1);
	rlink_free(a);
}

/* The peer's link is cut (no close frame): -1 naming the peer, whether
 * the waiter was already waiting or comes later. */
static void check_cut(bool unix_sock)
{
	struct rlink *a, *b;
	plain_pair(unix_sock, &a, &b);
	struct kg_err e = { 0 };
	assert_int_equal(rlink_start_reader(a, &e), 0);
	struct rlink_msg m;
	assert_int_equal(rlink_send(b, RLINK_BEAT, 1, 0, NULL, &e), 0);
	assert_int_equal(rlink_wait_msg(a, 1u << RLINK_ACK, 100, &m, &e), 0);
	kg_tp_shutdown(rlink_transport(b));
	long long t0 = now_ms();
	memset(e.msg, 0, sizeof(e.msg));
	assert_int_equal(rlink_wait_msg(a, 1u << RLINK_ACK, -1, &m, &e), -1);
	assert_true(now_ms() - t0 < TMO);
	print_message("cut: %s\n", e.msg);
	assert_true(e.msg[0] != 0);
	assert_non_null(strstr(e.msg, rlink_peer(a)));
	assert_int_equal(e.kind, KG_ERR_PEER_GONE);
	/* Sending on the cut link fails, naming the peer. */
	assert_int_equal(rlink_send(b, RLINK_ACK, 0, 0, NULL, &e), -1);
	assert_non_null(strstr(e.msg, "ack"));
	assert_non_null(strstr(e.msg, rlink_peer(b)));
	assert_int_equal(e.kind, KG_ERR_PEER_GONE);
	rlink_free(b);
	rlink_free(a);
}

static void test_wait_msg_peer_cut_unix(void **state)
{
	(void)state;
	check_cut(true);
}

static void test_wait_msg_peer_cut_tcp(void **state)
{
	(void)state;
	check_cut(false);
}

/* rlink_free joins a reader that is blocked in recv. */
static void test_free_with_reader_blocked(void **state)
{
	(void)state;
	struct rlink *a, *b;
	plain_pair(true, &a, &b);
	struct kg_err e = { 0 };
	assert_int_equal(rlink_start_reader(a, &e), 0);
	usleep(50000);
	long long t0 = now_ms();
	rlink_free(a);
	assert_true(now_ms() - t0 < TMO);
	rlink_free(b);
}

/* --- (d) malformed traffic --- */

/* Sends one raw frame on l's transport. */
static void raw_frame(struct rlink *l, uint32_t flags, const void *p, size_t n)
{
	struct kg_err e = { 0 };
	struct iovec v = { (void *)p, n };
	struct kg_tp_frame f = { &v, 1, flags };
	if (kg_tp_send(rlink_transport(l), &f, 1, &e) < 0)
		fail_msg("raw send: %s", e.msg);
}

static void msg_bytes(uint8_t *p, uint32_t type)
{
	memset(p, 0, RLINK_MSG_HEADER);
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(type >> (8 * i));
}

static int reader_fails(void (*poke)(struct rlink *), const char *want)
{
	struct rlink *a, *b;
	plain_pair(true, &a, &b);
	struct kg_err e = { 0 };
	assert_int_equal(rlink_start_reader(a, &e), 0);
	/* A good message first: it is still delivered. */
	assert_int_equal(rlink_send(b, RLINK_READY, 1, 0, NULL, &e), 0);
	poke(b);
	struct rlink_msg m;
	assert_int_equal(rlink_wait_msg(a, 1u << RLINK_READY, TMO, &m, &e), 1);
	memset(e.msg, 0, sizeof(e.msg));
	int r = rlink_wait_msg(a, 1u << RLINK_ACK, TMO, &m, &e);
	print_message("reader: %s\n", e.msg);
	if (r == -1) {
		assert_non_null(strstr(e.msg, rlink_peer(a)));
		if (want)
			assert_non_null(strstr(e.msg, want));
		/* a malformed message: the peer is there, its words are bad */
		assert_int_equal(e.kind, KG_ERR_CORRUPT);
	}
	rlink_free(b);
	rlink_free(a);
	return r;
}

static void poke_stream_small(struct rlink *b)
{
	struct kg_err e = { 0 };
	uint8_t s[32] = { 1, 2, 3 };
	assert_int_equal(wr(b, s, sizeof(s), &e), 0);
	assert_int_equal(rlink_flush(b, &e), 0);
}

static void poke_stream_large(struct rlink *b)
{
	struct kg_err e = { 0 };
	static uint8_t s[RLINK_GATHER / 4 + 1]; /* its own frame */
	/* The reader stops at the frame's header: the payload may not fit
	 * in the socket buffer, so the send may time out. */
	wr(b, s, sizeof(s), &e);
	rlink_flush(b, &e);
}

static void poke_unknown_type(struct rlink *b)
{
	uint8_t p[RLINK_MSG_HEADER];
	msg_bytes(p, 99);
	raw_frame(b, RLINK_MSG, p, sizeof(p));
}

static void poke_type_zero(struct rlink *b)
{
	uint8_t p[RLINK_MSG_HEADER];
	msg_bytes(p, 0);
	raw_frame(b, RLINK_MSG, p, sizeof(p));
}

static void poke_short(struct rlink *b)
{
	uint8_t p[RLINK_MSG_HEADER];
	msg_bytes(p, RLINK_ACK);
	raw_frame(b, RLINK_MSG, p, RLINK_MSG_HEADER - 1);
}

static void poke_via_send_unknown(struct rlink *b)
{
	struct kg_err e = { 0 };
	assert_int_equal(rlink_send(b, 1000, 0, 0, "x", &e), 0);
}

static void test_reader_refuses_stream(void **state)
{
	(void)state;
	assert_int_equal(reader_fails(poke_stream_small, "stream data"), -1);
	assert_int_equal(reader_fails(poke_stream_large, NULL), -1);
}

static void test_reader_refuses_bad_messages(void **state)
{
	(void)state;
	assert_int_equal(reader_fails(poke_unknown_type, "unknown"), -1);
	assert_int_equal(reader_fails(poke_type_zero, "unknown"), -1);
	assert_int_equal(reader_fails(poke_short, "23 bytes"), -1);
	assert_int_equal(reader_fails(poke_via_send_unknown, "unknown"), -1);
}

/* The stream consumer refuses the same, and a frame with unknown flags. */
static void test_consumer_refuses_bad_frames(void **state)
{
	(void)state;
	struct kg_err e = { 0 };
	struct rlink_msg m;
	uint8_t p[RLINK_MSG_HEADER];
	struct rlink *a, *b;

	plain_pair(true, &a, &b);
	msg_bytes(p, 42);
	raw_frame(b, RLINK_MSG, p, sizeof(p));
	assert_int_equal(rlink_next(a, &m, &e), -1);
	assert_non_null(strstr(e.msg, "unknown control message type 42"));
	assert_non_null(strstr(e.msg, rlink_peer(a)));
	assert_int_equal(e.kind, KG_ERR_CORRUPT);
	rlink_free(b);
	rlink_free(a);

	plain_pair(true, &a, &b);
	msg_bytes(p, RLINK_ACK);
	raw_frame(b, RLINK_MSG, p, 8);
	assert_int_equal(rlink_next(a, &m, &e), -1);
	assert_non_null(strstr(e.msg, "8 bytes"));
	assert_int_equal(e.kind, KG_ERR_CORRUPT);
	rlink_free(b);
	rlink_free(a);

	/* Inside a read. */
	plain_pair(true, &a, &b);
	uint8_t s[10] = { 0 }, buf[20];
	assert_int_equal(wr(b, s, sizeof(s), &e), 0);
	assert_int_equal(rlink_flush(b, &e), 0);
	msg_bytes(p, 77);
	raw_frame(b, RLINK_MSG, p, sizeof(p));
	assert_int_equal(wr(b, s, sizeof(s), &e), 0);
	assert_int_equal(rlink_flush(b, &e), 0);
	size_t got;
	assert_int_equal(rlink_stream_io.read(a, buf, 20, &got, &e), -1);
	assert_non_null(strstr(e.msg, "unknown control message"));
	assert_int_equal(e.kind, KG_ERR_CORRUPT);
	rlink_free(b);
	rlink_free(a);

	/* Oversized message (text longer than RLINK_TEXT_MAX). */
	plain_pair(true, &a, &b);
	uint8_t big[RLINK_MSG_HEADER + RLINK_TEXT_MAX + 1];
	memset(big, 'a', sizeof(big));
	msg_bytes(big, RLINK_ACK);
	raw_frame(b, RLINK_MSG, big, sizeof(big));
	assert_int_equal(rlink_next(a, &m, &e), -1);
	rlink_free(b);
	rlink_free(a);

	/* Unknown flags. */
	plain_pair(true, &a, &b);
	raw_frame(b, 4, s, sizeof(s));
	assert_int_equal(rlink_next(a, &m, &e), -1);
	assert_non_null(strstr(e.msg, "unknown flags"));
	assert_int_equal(e.kind, KG_ERR_CORRUPT);
	rlink_free(b);
	rlink_free(a);
}

/* --- (e) bandwidth --- */

struct drain {
	struct rlink *l;
	size_t total;
	int rc;
	struct kg_err e;
};

static void *drain_main(void *arg)
{
	struct drain *d = arg;
	uint8_t *buf = malloc(MiB);
	size_t left = d->total;
	d->rc = 0;
	while (left && d->rc == 0) {
		size_t n = left < MiB ? left : MiB, got = 0;
		d->rc = rlink_stream_io.read(d->l, buf, n, &got, &d->e);
		if (d->rc == 0 && got != n) {
			d->rc = -2;
			snprintf(d->e.msg, sizeof(d->e.msg), "short read");
		}
		left -= n;
	}
	free(buf);
	return NULL;
}

static uint64_t send_timed(uint64_t bw, size_t total, size_t piece)
{
	struct kg_tp_opts o;
	opts(&o, NULL, NULL);
	struct rlink *a, *b;
	link_pair(true, &o, &o, 0, bw, &a, &b);
	uint8_t *src = calloc(1, total);
	assert_non_null(src);
	struct drain d = { .l = a, .total = total };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, drain_main, &d), 0);
	struct writer w = { .l = b, .total = total, .src = src, .piece = piece };
	writer_main(&w);
	pthread_join(th, NULL);
	if (w.rc != 0)
		fail_msg("writer: %s", w.e.msg);
	if (d.rc != 0)
		fail_msg("reader: %s", d.e.msg);
	assert_int_equal(rlink_stream_bytes(b), total);
	rlink_free(a);
	rlink_free(b);
	free(src);
	return w.bw_ms;
}

static void test_bandwidth(void **state)
{
	(void)state;
	size_t total = 10 * 1000 * 1000;
	/* 10 MB at 50 MB/s: 0.2 s at least; both big frames and gathered
	 * small ones are held back. */
	uint64_t ms_big = send_timed(50000000, total, MiB);
	uint64_t ms_small = send_timed(50000000, total, 4 * KiB);
	uint64_t ms_free = send_timed(0, total, MiB);
	print_message("10 MB: %llu ms (1 MiB writes), %llu ms (4 KiB writes) "
		      "at 50 MB/s; %llu ms unlimited\n",
		      (unsigned long long)ms_big,
		      (unsigned long long)ms_small,
		      (unsigned long long)ms_free);
	assert_true(ms_big >= 180);
	assert_true(ms_small >= 180);
}

/* --- (f) keys and faults --- */

static void test_with_key(void **state)
{
	(void)state;
	struct kg_tp_key k;
	make_key(&k, 3);
	struct kg_tp_opts o;
	opts(&o, &k, NULL);
	struct rlink *a, *b;
	link_pair(false, &o, &o, 0, 0, &a, &b);
	struct kg_err e = { 0 };
	size_t n = RLINK_MAX_FRAME + 777;
	uint8_t *src = malloc(n), *dst = malloc(n);
	for (size_t i = 0; i < n; i++)
		src[i] = pat(i * 3);
	struct writer w = { .l = a, .total = n, .src = src, .piece = 100 * KiB };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, writer_main, &w), 0);
	rd(b, dst, n);
	pthread_join(th, NULL);
	assert_int_equal(w.rc, 0);
	assert_memory_equal(src, dst, n);
	assert_int_equal(rlink_send(a, RLINK_ACK, 4, 5, "keyed", &e), 0);
	struct rlink_msg m;
	assert_int_equal(rlink_next(b, &m, &e), 1);
	assert_int_equal(m.type, RLINK_ACK);
	assert_string_equal(m.text, "keyed");
	/* and the other way, through a reader */
	assert_int_equal(rlink_start_reader(a, &e), 0);
	assert_int_equal(rlink_send(b, RLINK_READY, 6, 0, NULL, &e), 0);
	assert_int_equal(rlink_wait_msg(a, 1u << RLINK_READY, TMO, &m, &e), 1);
	assert_true(m.a == 6);
	rlink_free(a);
	rlink_free(b);
	free(src);
	free(dst);
}

/* A stream sender whose transport injects f; the receiver reads the
 * stream: an error naming the peer within the timeout, never a hang nor
 * wrong bytes. */
static void check_stream_fault(const struct kg_tp_fault *f,
			       const struct kg_tp_key *key)
{
	struct kg_tp_opts so, co;
	opts(&so, key, NULL);
	opts(&co, key, f);
	struct rlink *a, *b;
	link_pair(true, &so, &co, 0, 0, &a, &b); /* b sends with the fault */
	size_t n = 3 * MiB;
	uint8_t *src = malloc(n), *dst = malloc(n);
	for (size_t i = 0; i < n; i++)
		src[i] = pat(i);
	struct writer w = { .l = b, .total = n, .src = src, .piece = 64 * KiB };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, writer_main, &w), 0);
	struct kg_err e = { 0 };
	size_t got = 0;
	long long t0 = now_ms();
	int r = rlink_stream_io.read(a, dst, n, &got, &e);
	long long dt = now_ms() - t0;
	print_message("fault: %d after %zu bytes: %s\n", r, got, e.msg);
	assert_int_equal(r, -1);
	assert_true(dt < 2 * TMO);
	assert_non_null(strstr(e.msg, rlink_peer(a)));
	/* a cut is a lost link, a flipped byte damage */
	assert_int_equal(e.kind, f->on & KG_FAULT_CUT ? KG_ERR_PEER_GONE
						       : KG_ERR_CORRUPT);
	/* The sender ends (with an error or not), without hanging. */
	kg_tp_shutdown(rlink_transport(a));
	pthread_join(th, NULL);
	rlink_free(b);
	rlink_free(a);
	free(src);
	free(dst);
}

static void test_faults_stream(void **state)
{
	(void)state;
	struct kg_tp_key k;
	make_key(&k, 9);
	struct kg_tp_fault f = { .on = KG_FAULT_CUT, .cut_after = 100000 };
	check_stream_fault(&f, NULL);
	check_stream_fault(&f, &k);
	struct kg_tp_fault g = { .on = KG_FAULT_FLIP, .flip_offset = 5000 };
	check_stream_fault(&g, NULL);
	check_stream_fault(&g, &k);
}

/* Faults under the message-only side: the reader fails cleanly. */
static void check_msg_fault(const struct kg_tp_fault *f)
{
	struct kg_tp_opts so, co;
	opts(&so, NULL, NULL);
	opts(&co, NULL, f);
	struct rlink *a, *b;
	link_pair(false, &so, &co, 0, 0, &a, &b);
	struct kg_err e = { 0 };
	assert_int_equal(rlink_start_reader(a, &e), 0);
	struct rlink_msg m;
	for (int i = 0; i < 20; i++)
		if (rlink_send(b, RLINK_BEAT, (uint64_t)i, 0, "beat beat", &e) < 0)
			break;
	rlink_send(b, RLINK_ACK, 1, 0, NULL, &e);
	memset(e.msg, 0, sizeof(e.msg));
	long long t0 = now_ms();
	int r = rlink_wait_msg(a, 1u << RLINK_ACK, 2 * TMO, &m, &e);
	print_message("msg fault: %d: %s\n", r, e.msg);
	assert_int_equal(r, -1);
	assert_true(now_ms() - t0 < 2 * TMO);
	assert_non_null(strstr(e.msg, rlink_peer(a)));
	rlink_free(b);
	rlink_free(a);
}

static void test_faults_reader(void **state)
{
	(void)state;
	struct kg_tp_fault f = { .on = KG_FAULT_CUT, .cut_after = 200 };
	check_msg_fault(&f);
	struct kg_tp_fault g = { .on = KG_FAULT_FLIP, .flip_offset = 300 };
	check_msg_fault(&g);
	struct kg_tp_fault h = { .on = KG_FAULT_DROP, .drop_frame = 3 };
	check_msg_fault(&h);
}

/* --- the lockstep pump's queue, bounded by the connection's budget --- */

struct log_writer {
	struct rlink *l;
	unsigned n;
	uint64_t len;
	int rc;
	struct kg_err e;
};

/* A stream of n exec-log sections of len bytes each (their contents are
 * the replayer's to check; the pump only queues them). */
static void *log_writer_main(void *arg)
{
	struct log_writer *w = arg;
	struct kg_stream_writer sw;
	kg_writer_init(&sw, -1, NULL, "log");
	kg_writer_set_io(&sw, &rlink_stream_io, w->l);
	uint8_t *buf = calloc(1, w->len);
	w->rc = kg_writer_header(&sw, NULL, &w->e);
	for (unsigned i = 0; i < w->n && w->rc == 0; i++)
		w->rc = kg_writer_section(&sw, KG_SEC_EXEC_LOG, 0,
					  RR_LOG_VERSION, buf, w->len, &w->e);
	if (w->rc == 0)
		w->rc = kg_writer_flush(&sw, &w->e);
	free(buf);
	return NULL;
}

/* Runs a pump on b (budget limit) against a writer of n sections of len
 * bytes on a (thread *th) until the pump ends (why says how); returns
 * the pump. */
static struct lockstep_pump *pump_until_end(struct rlink *a, struct rlink *b,
					    struct kg_stream_reader *r,
					    struct kg_budget *bud,
					    uint64_t limit, unsigned n,
					    uint64_t len, struct log_writer *w,
					    pthread_t *th, char *why,
					    size_t why_size)
{
	struct kg_err e = { 0 };
	*w = (struct log_writer){ .l = a, .n = n, .len = len };
	assert_int_equal(pthread_create(th, NULL, log_writer_main, w), 0);
	kg_reader_init(r, -1, NULL);
	kg_reader_set_io(r, &rlink_stream_io, b);
	assert_int_equal(kg_reader_header(r, NULL, &e), 0);
	kg_budget_init(bud, limit);
	kg_reader_set_budget(r, bud);
	struct lockstep_pump *p = lockstep_pump_start(b, r, 0, &e);
	assert_non_null(p);
	long long t0 = now_ms();
	why[0] = 0;
	while (!why[0] && now_ms() - t0 < 10 * TMO) {
		lockstep_pump_ordered(p, why, why_size);
		usleep(5000);
	}
	if (!why[0])
		fail_msg("the pump did not end");
	return p;
}

/* A primary that sends log sections faster than they are replayed (here:
 * never) makes the secondary hold at most its budget: the pump ends with
 * one line, as damage (the primary is alive), after about budget / size
 * sections; what it queued is still replayed, and gives the budget back
 * when taken. */
static void test_pump_queue_bounded(void **state)
{
	(void)state;
	struct rlink *a, *b;
	plain_pair(true, &a, &b);
	struct kg_stream_reader r;
	struct kg_budget bud;
	struct log_writer w;
	pthread_t th;
	char why[512];
	struct lockstep_pump *p = pump_until_end(a, b, &r, &bud, 4 * MiB, 64,
						 512 * KiB, &w, &th, why,
						 sizeof(why));
	assert_false(lockstep_pump_ordered(p, why, sizeof(why)));
	assert_int_equal(lockstep_pump_end_kind(p), KG_ERR_CORRUPT);
	if (!strstr(why, "beyond the stream memory budget of 4 MiB"))
		fail_msg("%s", why);
	assert_null(strchr(why, '\n'));
	assert_true(lockstep_pump_sections(p) <= 8);
	assert_true(atomic_load(&bud.peak) <= 4 * MiB);
	const struct rr_source *src = lockstep_pump_source(p);
	uint8_t *pl;
	size_t len;
	char where[128];
	struct kg_err e = { 0 };
	unsigned got = 0;
	while (src->next(src->ctx, &pl, &len, where, sizeof(where), &e) == 1) {
		assert_int_equal(len, 512 * KiB);
		free(pl);
		got++;
	}
	assert_int_equal(got, lockstep_pump_sections(p));
	assert_int_equal(atomic_load(&bud.used), 0);
	rlink_free(b); /* the writer, blocked on a full socket, fails */
	pthread_join(th, NULL);
	lockstep_pump_free(p);
	rlink_free(a);
}

/* A section larger than any log section can be is refused unread. */
static void test_pump_refuses_huge_section(void **state)
{
	(void)state;
	struct rlink *a, *b;
	plain_pair(true, &a, &b);
	struct kg_stream_reader r;
	struct kg_budget bud;
	struct log_writer w;
	pthread_t th;
	char why[512];
	struct lockstep_pump *p = pump_until_end(a, b, &r, &bud, 1ull << 30, 1,
						 8 * MiB, &w, &th, why,
						 sizeof(why));
	assert_int_equal(lockstep_pump_end_kind(p), KG_ERR_CORRUPT);
	if (!strstr(why, "an execution log section of 8388608 bytes (at most"))
		fail_msg("%s", why);
	assert_int_equal(atomic_load(&bud.peak), 0);
	rlink_free(b);
	pthread_join(th, NULL);
	lockstep_pump_free(p);
	rlink_free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stream_roundtrip_unix),
		cmocka_unit_test(test_stream_roundtrip_tcp),
		cmocka_unit_test(test_large_write_trailing_empty_iov),
		cmocka_unit_test(test_messages_at_their_place),
		cmocka_unit_test(test_messages_queued_by_read),
		cmocka_unit_test(test_queue_limit),
		cmocka_unit_test(test_msg_names),
		cmocka_unit_test(test_msg_pack_parse),
		cmocka_unit_test(test_signs_of_life),
		cmocka_unit_test(test_wait_msg),
		cmocka_unit_test(test_wait_msg_peer_cut_unix),
		cmocka_unit_test(test_wait_msg_peer_cut_tcp),
		cmocka_unit_test(test_free_with_reader_blocked),
		cmocka_unit_test(test_reader_refuses_stream),
		cmocka_unit_test(test_reader_refuses_bad_messages),
		cmocka_unit_test(test_consumer_refuses_bad_frames),
		cmocka_unit_test(test_bandwidth),
		cmocka_unit_test(test_with_key),
		cmocka_unit_test(test_faults_stream),
		cmocka_unit_test(test_faults_reader),
		cmocka_unit_test(test_pump_queue_bounded),
		cmocka_unit_test(test_pump_refuses_huge_section),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
