/*
 * Fault injection for tests: wraps any link and damages what this side
 * sends, frame by frame, because `tc netem` does not exist on our
 * machines and a proxy could not flip a byte inside an authenticated
 * frame. It sits below the frame layer, so a flipped byte is caught by the
 * receiver's MAC exactly as a corrupted network would be.
 */
#include "link.h"

#include "base/crc32c.h"
#include "base/le.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct fault_link {
	struct kg_link base;
	struct kg_link *inner;
	struct kg_tp_fault f;
	uint64_t frames; /* frames offered so far */
	uint64_t bytes;  /* bytes put on the wire so far */
	bool cut;
	bool paused;     /* the pause happened */
};

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* The iovecs covering bytes [off, off+len) of v[0..n) into out (room for
 * n entries); returns how many. */
static int slice(const struct iovec *v, int n, size_t off, size_t len,
		 struct iovec *out)
{
	int k = 0;
	for (int i = 0; i < n && len; i++) {
		if (off >= v[i].iov_len) {
			off -= v[i].iov_len;
			continue;
		}
		size_t take = v[i].iov_len - off;
		if (take > len)
			take = len;
		out[k++] = (struct iovec){ (char *)v[i].iov_base + off, take };
		len -= take;
		off = 0;
	}
	return k;
}

/* Reads the byte at offset off of v[0..n). */
static uint8_t byte_at(const struct iovec *v, int n, size_t off)
{
	struct iovec one;
	slice(v, n, off, 1, &one);
	return *(const uint8_t *)one.iov_base;
}

/* Puts bytes [off, off+len) of v on the wire, flipping one if asked. */
static int put(struct fault_link *fl, const struct iovec *v, int n, size_t off,
	       size_t len, int tmo, struct kg_err *e)
{
	if (len == 0)
		return 0;
	struct iovec *out = malloc(sizeof(*out) * ((size_t)n + 2));
	if (!out)
		return kg_errk(e, KG_ERR_NOMEM, "fault: out of memory");
	int k, r;
	uint64_t at = fl->f.flip_offset;
	uint8_t flipped;
	if ((fl->f.on & KG_FAULT_FLIP) && at >= fl->bytes && at < fl->bytes + len) {
		size_t rel = (size_t)(at - fl->bytes);
		k = slice(v, n, off, rel, out);
		flipped = (uint8_t)~byte_at(v, n, off + rel);
		out[k++] = (struct iovec){ &flipped, 1 };
		k += slice(v, n, off + rel + 1, len - rel - 1, out + k);
	} else {
		k = slice(v, n, off, len, out);
	}
	r = fl->inner->ops->send(fl->inner, out, k, &len, 1, tmo, e);
	free(out);
	if (r == 0)
		fl->bytes += len;
	return r;
}

/* The frame at [off, off+len) with its header's sequence number replaced
 * and the header CRC recomputed (frame.c's layout: seq at 8, CRC32C of
 * the first 20 bytes at 20). */
static int put_resequenced(struct fault_link *fl, const struct iovec *v,
			   int n, size_t off, size_t len, int tmo,
			   struct kg_err *e)
{
	uint8_t *copy = malloc(len);
	if (!copy)
		return kg_errf(e, "fault: out of memory");
	for (size_t i = 0; i < len; i++)
		copy[i] = byte_at(v, n, off + i);
	le64_put(copy + 8, fl->f.reseq_to);
	le32_put(copy + 20, kg_crc32c(0, copy, 20));
	struct iovec one = { copy, len };
	int r = put(fl, &one, 1, 0, len, tmo, e);
	free(copy);
	return r;
}

static int fault_send(struct kg_link *l, const struct iovec *iov, int iovcnt,
		      const size_t *frame_len, size_t nframes, int timeout_ms,
		      struct kg_err *e)
{
	struct fault_link *fl = (struct fault_link *)l;
	const struct kg_tp_fault *f = &fl->f;
	if (fl->cut)
		return kg_errk(e, KG_ERR_PEER_GONE,
			       "fault: connection was cut after %llu bytes",
			       (unsigned long long)f->cut_after);
	size_t off = 0;
	for (size_t i = 0; i < nframes; off += frame_len[i++]) {
		uint64_t idx = fl->frames++;
		size_t len = frame_len[i];
		if ((f->on & KG_FAULT_STALL) && idx >= f->stall_after)
			continue; /* swallowed: the receiver waits in vain */
		if ((f->on & KG_FAULT_DROP) && idx == f->drop_frame)
			continue;
		if (f->on & KG_FAULT_DELAY)
			sleep_ms(f->delay_ms);
		if ((f->on & KG_FAULT_PAUSE) && !fl->paused &&
		    fl->bytes + len > f->pause_after) {
			fl->paused = true;
			sleep_ms(f->pause_ms ? f->pause_ms : 1000);
		}
		if ((f->on & KG_FAULT_CUT) && fl->bytes + len > f->cut_after) {
			size_t part = (size_t)(f->cut_after - fl->bytes);
			if (put(fl, iov, iovcnt, off, part, timeout_ms, e) < 0)
				return -1;
			fl->inner->ops->shutdown(fl->inner);
			fl->cut = true;
			return kg_errk(e, KG_ERR_PEER_GONE,
				       "fault: connection cut after %llu bytes",
				       (unsigned long long)f->cut_after);
		}
		if ((f->on & KG_FAULT_RESEQ) && idx == f->reseq_frame) {
			if (put_resequenced(fl, iov, iovcnt, off, len,
					    timeout_ms, e) < 0)
				return -1;
			continue;
		}
		if (put(fl, iov, iovcnt, off, len, timeout_ms, e) < 0)
			return -1;
		if ((f->on & KG_FAULT_DUP) && idx == f->dup_frame &&
		    put(fl, iov, iovcnt, off, len, timeout_ms, e) < 0)
			return -1;
	}
	return 0;
}

static int fault_recv(struct kg_link *l, void *buf, size_t n, int timeout_ms,
		      size_t *got, struct kg_err *e)
{
	struct fault_link *fl = (struct fault_link *)l;
	return fl->inner->ops->recv(fl->inner, buf, n, timeout_ms, got, e);
}

static void fault_shutdown(struct kg_link *l)
{
	struct fault_link *fl = (struct fault_link *)l;
	fl->inner->ops->shutdown(fl->inner);
}

static void fault_destroy(struct kg_link *l)
{
	struct fault_link *fl = (struct fault_link *)l;
	fl->inner->ops->destroy(fl->inner);
	free(fl);
}

static const struct kg_link_ops fault_ops = {
	.send = fault_send,
	.recv = fault_recv,
	.shutdown = fault_shutdown,
	.destroy = fault_destroy,
};

struct kg_link *kg_fault_link_new(struct kg_link *inner,
				  const struct kg_tp_fault *f, struct kg_err *e)
{
	struct fault_link *fl = calloc(1, sizeof(*fl));
	if (!fl) {
		kg_errk(e, KG_ERR_NOMEM, "%s: out of memory", inner->peer);
		return NULL;
	}
	fl->base.ops = &fault_ops;
	memcpy(fl->base.peer, inner->peer, sizeof(fl->base.peer));
	fl->inner = inner;
	fl->f = *f;
	return &fl->base;
}

int kg_tp_fault_parse(const char *s, struct kg_tp_fault *f, struct kg_err *e)
{
	static const struct {
		const char *name;
		unsigned bit;
	} names[] = {
		{ "delay", KG_FAULT_DELAY }, { "stall", KG_FAULT_STALL },
		{ "cut", KG_FAULT_CUT },     { "flip", KG_FAULT_FLIP },
		{ "drop", KG_FAULT_DROP },   { "dup", KG_FAULT_DUP },
		{ "pause", KG_FAULT_PAUSE }, { "pause_ms", KG_FAULT_PAUSE },
	};
	memset(f, 0, sizeof(*f));
	const char *p = s;
	while (*p) {
		size_t n = strcspn(p, "=,");
		unsigned bit = 0;
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (strlen(names[i].name) == n && !strncmp(p, names[i].name, n))
				bit = names[i].bit;
		if (!bit || p[n] != '=')
			return kg_errk(e, KG_ERR_INVALID, "fault spec '%s': want NAME=N[,...] with NAME delay, stall, cut, flip, drop, dup, pause or pause_ms",
				       s);
		char *end;
		errno = 0;
		unsigned long long v = strtoull(p + n + 1, &end, 10);
		bool ms = bit == KG_FAULT_DELAY ||
			  (bit == KG_FAULT_PAUSE && n == strlen("pause_ms"));
		if (errno || end == p + n + 1 || (*end && *end != ',') ||
		    (ms && v > 60000))
			return kg_errk(e, KG_ERR_INVALID, "fault spec '%s': bad number for %.*s", s, (int)n, p);
		f->on |= bit;
		switch (bit) {
		case KG_FAULT_DELAY: f->delay_ms = (unsigned)v; break;
		case KG_FAULT_STALL: f->stall_after = v; break;
		case KG_FAULT_CUT: f->cut_after = v; break;
		case KG_FAULT_FLIP: f->flip_offset = v; break;
		case KG_FAULT_DROP: f->drop_frame = v; break;
		case KG_FAULT_PAUSE:
			if (ms)
				f->pause_ms = (unsigned)v;
			else
				f->pause_after = v;
			break;
		default: f->dup_frame = v; break;
		}
		p = *end ? end + 1 : end;
	}
	return 0;
}
