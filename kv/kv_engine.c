/* The kvstore client's engine: see kv_engine.h. */
#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "kv_engine.h"

/* Set by SIGINT/SIGTERM during load and verify: they stop early. */
volatile sig_atomic_t kv_interrupted;

void kv_on_stop_signal(int sig)
{
	(void)sig;
	kv_interrupted = 1;
}

uint64_t kv_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

const char *kv_status_name(int st)
{
	switch (st) {
	case KV_OK: return "ok";
	case KV_NOT_FOUND: return "not found";
	case KV_BAD_REQUEST: return "bad request";
	case KV_NO_SPACE: return "no space";
	case KV_IO_ERROR: return "I/O error (not durable)";
	case KV_STALE: return "stale request id";
	case RES_TIMEOUT: return "timed out";
	default: return "unknown status";
	}
}

int kv_parse_server(const char *s, struct sockaddr_in *sa,
			struct kg_err *e)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	unsigned long port = KV_DEFAULT_PORT;
	size_t hl = colon ? (size_t)(colon - s) : strlen(s);
	if (hl == 0 || hl >= sizeof(host))
		return kg_errf(e, "--server '%s': expected IP:PORT", s);
	memcpy(host, s, hl);
	host[hl] = 0;
	if (colon) {
		char *end;
		errno = 0;
		port = strtoul(colon + 1, &end, 10);
		if (!colon[1] || *end || errno || port == 0 || port > 65535)
			return kg_errf(e, "--server '%s': bad port", s);
	}
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
		return kg_errf(e, "--server '%s': expected an IPv4 address",
			       s);
	return 0;
}

int kv_random_u64(uint64_t *out, struct kg_err *e)
{
	uint64_t v;
	ssize_t n;
	do
		n = getrandom(&v, sizeof(v), 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return kg_errno(e, "getrandom");
	if (n != (ssize_t)sizeof(v))
		return kg_errf(e, "getrandom: short read");
	*out = v;
	return 0;
}

/* id_base: client ids are id_base ^ slot, so a response finds its slot. */
int kv_engine_init(struct kv_engine *en, const char *server,
		       unsigned nslots, uint64_t id_base, uint64_t first_req,
		       struct kg_err *e)
{
	struct sockaddr_in sa;
	if (kv_parse_server(server, &sa, e) < 0)
		return -1;
	snprintf(en->server, sizeof(en->server), "%s", server);
	en->slots = calloc(nslots, sizeof(*en->slots));
	if (!en->slots)
		return kg_errf(e, "out of memory");
	en->nslots = nslots;
	for (unsigned i = 0; i < nslots; i++) {
		en->slots[i].client_id = id_base ^ i;
		en->slots[i].next_req_id = first_req;
	}
	en->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (en->fd < 0)
		return kg_errno(e, "socket");
	if (connect(en->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return kg_errno(e, "connect %s", server);
	return 0;
}

void kv_engine_free(struct kv_engine *en)
{
	if (en->fd >= 0)
		close(en->fd);
	en->fd = -1;
	free(en->slots);
	free(en->lat);
}

static int lat_push(struct kv_engine *en, uint64_t ns)
{
	if (en->nlat == en->caplat) {
		size_t cap = en->caplat ? en->caplat * 2 : 4096;
		uint64_t *v = realloc(en->lat, cap * sizeof(*v));
		if (!v)
			return kg_errf(&en->err, "out of memory");
		en->lat = v;
		en->caplat = cap;
	}
	en->lat[en->nlat++] = ns;
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

uint64_t kv_lat_pct_us(const struct kv_engine *en, unsigned pct)
{
	if (!en->nlat)
		return 0;
	size_t i = en->nlat * pct / 100;
	if (i >= en->nlat)
		i = en->nlat - 1;
	return en->lat[i] / 1000;
}

/* Sends slot's request (first try or retry). Transient failures (no route
 * yet, buffer full, an ICMP error from an earlier datagram) are left to
 * the retry timer. */
static int engine_send(struct kv_engine *en, struct kv_slot *s)
{
	uint8_t buf[MSG_MAX];
	struct kv_msg m = {
		.magic = htole32(KV_MAGIC),
		.op = s->req.op,
		.key_len = htole16(s->req.klen),
		.val_len = htole32(s->req.vlen),
		.client_id = htole64(s->client_id),
		.req_id = htole64(s->req_id),
	};
	size_t n = sizeof(m);
	memcpy(buf, &m, sizeof(m));
	memcpy(buf + n, s->req.key, s->req.klen);
	n += s->req.klen;
	memcpy(buf + n, s->req.val, s->req.vlen);
	n += s->req.vlen;
	for (int i = 0; i < 2; i++) {
		ssize_t w = send(en->fd, buf, n, 0);
		if (w == (ssize_t)n)
			return 0;
		if (w >= 0)
			return kg_errf(&en->err, "send to %s: short datagram",
				       en->server);
		if (errno == EINTR)
			continue;
		/* An earlier datagram's ICMP error is reported once; the
		 * loop sends again after ECONNREFUSED. */
		if (errno == ECONNREFUSED && i == 0)
			continue;
		if (errno == EAGAIN || errno == ENOBUFS ||
		    errno == ECONNREFUSED || errno == EHOSTUNREACH ||
		    errno == ENETUNREACH || errno == EHOSTDOWN ||
		    errno == ENETDOWN) {
			en->send_errors++;
			return 0;
		}
		return kg_errno(&en->err, "send to %s", en->server);
	}
	en->send_errors++;
	return 0;
}

static int engine_finish(struct kv_engine *en, unsigned idx, int status,
			 const char *val, uint32_t vlen, uint64_t now)
{
	struct kv_slot *s = &en->slots[idx];
	struct kv_result res = {
		.status = status, .val = val, .vlen = vlen,
		.latency_ns = now - s->first_ns,
	};
	s->busy = false;
	if (en->last_answer_ns && now - en->last_answer_ns > en->max_gap_ns) {
		en->max_gap_ns = now - en->last_answer_ns;
		struct timespec rt;
		clock_gettime(CLOCK_REALTIME, &rt);
		uint64_t rt_ms = (uint64_t)rt.tv_sec * 1000 +
				 (uint64_t)rt.tv_nsec / 1000000;
		en->max_gap_start_ms = rt_ms - en->max_gap_ns / 1000000;
	}
	en->last_answer_ns = now;
	if (status == KV_OK || status == KV_NOT_FOUND) {
		en->acked++;
		if (lat_push(en, res.latency_ns) < 0)
			return -1;
	} else {
		en->errors++;
	}
	return en->done(en->ctx, en, idx, s->req_id, &s->req, &res);
}

/* One datagram from the server: finds its slot by client id and req_id;
 * late duplicates of answered requests and garbage are ignored. */
static int engine_receive(struct kv_engine *en, const uint8_t *buf,
			  size_t n, uint64_t now)
{
	struct kv_msg m;
	if (n < sizeof(m)) {
		en->ignored++;
		return 0;
	}
	memcpy(&m, buf, sizeof(m));
	uint64_t cid = le64toh(m.client_id), rid = le64toh(m.req_id);
	uint32_t klen = le16toh(m.key_len), vlen = le32toh(m.val_len);
	uint64_t idx = cid ^ (en->slots[0].client_id);
	if (le32toh(m.magic) != KV_MAGIC || idx >= en->nslots ||
	    (uint64_t)klen + vlen != n - sizeof(m) || vlen > KV_VAL_MAX) {
		en->ignored++;
		return 0;
	}
	struct kv_slot *s = &en->slots[idx];
	if (!s->busy || s->req_id != rid ||
	    m.op != (uint8_t)(s->req.op | KV_RESPONSE)) {
		en->ignored++;
		return 0;
	}
	char val[KV_VAL_MAX + 1];
	memcpy(val, buf + sizeof(m) + klen, vlen);
	val[vlen] = 0;
	return engine_finish(en, (unsigned)idx, m.status, val, vlen, now);
}

static int engine_drain(struct kv_engine *en)
{
	uint8_t buf[2048];
	for (int i = 0; i < 1024; i++) {
		ssize_t n = recv(en->fd, buf, sizeof(buf), 0);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			if (errno == EINTR || errno == ECONNREFUSED ||
			    errno == EHOSTUNREACH || errno == ENETUNREACH ||
			    errno == EHOSTDOWN)
				continue;
			return kg_errno(&en->err, "recv from %s", en->server);
		}
		if (engine_receive(en, buf, (size_t)n, kv_now_ns()) < 0)
			return -1;
	}
	return 0;
}

static int engine_issue(struct kv_engine *en, unsigned idx, uint64_t now)
{
	struct kv_slot *s = &en->slots[idx];
	uint64_t rid = s->next_req_id;
	memset(&s->req, 0, sizeof(s->req));
	int r = en->next(en->ctx, en, idx, rid, &s->req);
	if (r <= 0)
		return r;
	s->next_req_id++;
	s->req_id = rid;
	s->busy = true;
	s->first_ns = now;
	s->try_ns = TRY_FIRST_NS;
	s->next_try_ns = now + s->try_ns;
	s->deadline_ns = en->req_timeout_ns ? now + en->req_timeout_ns : 0;
	en->ops++;
	if (engine_send(en, s) < 0)
		return -1;
	return 1;
}

void kv_note(const struct kv_engine *en, const char *fmt, ...)
{
	if (!en->note)
		return;
	/* a key, two values and words: the longest note fits */
	char msg[KV_KEY_MAX + 2 * KV_VAL_MAX + 256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	en->note(en->note_arg, msg);
}

static void engine_progress(struct kv_engine *en, uint64_t now)
{
	kv_note(en, "%.0f s, %" PRIu64 " ops, %" PRIu64 " acked, %" PRIu64
		" retries, %" PRIu64 " errors",
		(double)(now - en->start_ns) / 1e9, en->ops, en->acked,
		en->retries, en->errors);
}

/* Runs until the work is done, the duration ends, a callback stops it or
 * SIGINT/SIGTERM. Every request is bounded by its deadline or the end. */
int kv_engine_run(struct kv_engine *en)
{
	uint64_t start = kv_now_ns();
	uint64_t end = en->duration_ns ? start + en->duration_ns : 0;
	uint64_t next_progress = start + 1000000000ull;
	bool exhausted = false;
	int rc = 0;
	en->start_ns = start;
	for (;;) {
		uint64_t now = kv_now_ns();
		uint64_t wake = now + 1000000000ull;
		if ((end && now >= end) || kv_interrupted)
			break;
		/* Retries and deadlines. */
		for (unsigned i = 0; i < en->nslots; i++) {
			struct kv_slot *s = &en->slots[i];
			if (!s->busy || now < s->next_try_ns)
				continue;
			if (s->deadline_ns && now >= s->deadline_ns) {
				if (engine_finish(en, i, RES_TIMEOUT, NULL, 0,
						  now) < 0)
					goto fail;
				continue;
			}
			s->try_ns = s->try_ns * 2 > TRY_MAX_NS
				? TRY_MAX_NS : s->try_ns * 2;
			s->next_try_ns = now + s->try_ns;
			if (s->deadline_ns && s->next_try_ns > s->deadline_ns)
				s->next_try_ns = s->deadline_ns;
			en->retries++;
			if (engine_send(en, s) < 0)
				goto fail;
		}
		/* New requests on idle slots, paced by --rate. */
		for (unsigned i = 0; i < en->nslots && !exhausted; i++) {
			if (en->slots[i].busy)
				continue;
			if (en->rate > 0) {
				uint64_t due = start + (uint64_t)
					((double)en->ops * 1e9 / en->rate);
				if (now < due) {
					if (due < wake)
						wake = due;
					break;
				}
			}
			int r = engine_issue(en, i, now);
			if (r < 0)
				goto fail;
			if (r == 0)
				exhausted = true;
		}
		unsigned busy = 0;
		for (unsigned i = 0; i < en->nslots; i++) {
			if (!en->slots[i].busy)
				continue;
			busy++;
			if (en->slots[i].next_try_ns < wake)
				wake = en->slots[i].next_try_ns;
		}
		if (!busy && exhausted)
			break;
		if (end && end < wake)
			wake = end;
		if (en->progress && next_progress < wake)
			wake = next_progress;
		uint64_t wait = wake > now ? wake - now : 0;
		struct timespec ts = { (time_t)(wait / 1000000000ull),
				       (long)(wait % 1000000000ull) };
		struct pollfd pfd = { .fd = en->fd, .events = POLLIN };
		int pr = ppoll(&pfd, 1, &ts, NULL);
		if (pr < 0 && errno != EINTR) {
			kg_errno(&en->err, "ppoll");
			goto fail;
		}
		if (pr > 0 && engine_drain(en) < 0)
			goto fail;
		now = kv_now_ns();
		if (en->progress && now >= next_progress) {
			engine_progress(en, now);
			next_progress += 1000000000ull;
		}
	}
	goto out;
fail:
	rc = -1;
out:
	for (unsigned i = 0; i < en->nslots; i++) {
		if (en->slots[i].busy) {
			en->slots[i].busy = false;
			en->unacked++;
		}
	}
	en->stop_ns = kv_now_ns();
	if (en->nlat)
		qsort(en->lat, en->nlat, sizeof(*en->lat), cmp_u64);
	return rc;
}

void kv_engine_json(const struct kv_engine *en, uint64_t lost,
		    const char *extra, char *buf, size_t size)
{
	snprintf(buf, size, "{\"ops\":%" PRIu64 ",\"acked\":%" PRIu64
		 ",\"retries\":%" PRIu64 ",\"errors\":%" PRIu64 ",\"lost\":%"
		 PRIu64 ",\"p50_us\":%" PRIu64 ",\"p99_us\":%" PRIu64
		 ",\"duration_s\":%.3f,\"max_gap_ms\":%.3f,"
		 "\"max_gap_start_ms\":%" PRIu64 "%s}", en->ops, en->acked,
		 en->retries, en->errors, lost, kv_lat_pct_us(en, 50),
		 kv_lat_pct_us(en, 99),
		 (double)(en->stop_ns - en->start_ns) / 1e9,
		 (double)en->max_gap_ns / 1e6, en->max_gap_start_ms, extra);
}

int kv_write_all(int fd, const char *buf, size_t n, const char *path,
		     struct kg_err *e)
{
	while (n) {
		ssize_t w = write(fd, buf, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return kg_errno(e, "write %s", path);
		}
		buf += w;
		n -= (size_t)w;
	}
	return 0;
}
