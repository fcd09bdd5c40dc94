/*
 * redis-history: a redis client that records what it saw, for
 * history-check (the file format is in history.h).
 *
 *   redis-history --host H --port P --out FILE [--clients N] [--seconds S |
 *                 --ops N] [--keys K] [--timeout-ms MS] [--final-ms MS]
 *                 [--seed N] [--prefix P]
 *
 * N client threads (4), each with its own connection, run a random mix of
 * SET (a unique value "c<client>-<seq>"), GET, INCR and APPEND (a unique
 * token "t<client>.<seq>;") over K registers, K counters and K logs (8
 * each), for S seconds (10) or N operations in all. A request that gets no
 * answer within MS ms (1000), or whose connection breaks, is recorded with
 * an unknown outcome and the connection is dropped; a client reconnects
 * with a short backoff (20..200 ms) for as long as the run lasts, so a
 * server that vanishes for seconds or for good neither stops nor hangs it.
 * At the end each client GETs every key it touched (the final read phase,
 * retried until it succeeds or --final-ms (3000) has passed). A log key
 * moves to a new name once it holds about 1 KiB, so reads stay short.
 * Keys are prefixed with P (default: unique per run), so old data on the
 * server cannot look like this run's.
 *
 * Lines go to FILE as operations complete (buffered, flushed every 0.5 s
 * and at the end). SIGTERM or SIGINT ends the run early: the final read
 * phase runs (a second signal cuts it short), the file ends with its "end"
 * line, and the status is 0. Prints one summary line: ops ok, failed,
 * indeterminate, and the longest stretch with no successful completion.
 */
#include <errno.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "history.h"

#define LOG_LIMIT 1024 /* bytes of a log key before it moves on */

struct opts {
	const char *host, *out, *prefix;
	int port, clients, keys, timeout_ms, final_ms;
	double seconds;
	long ops;
	uint64_t seed;
};

struct shared {
	const struct opts *o;
	char prefix[64];
	atomic_bool stop;   /* end the main phase */
	atomic_bool abort_; /* end the final phase too */
	atomic_long ops_left;
	atomic_int done;    /* clients finished */
	atomic_uint *log_gen;
	pthread_mutex_t mu; /* guards everything below */
	FILE *out;
	bool write_failed;
	long ok, failed, unknown;
	int64_t start, last_ok, max_gap;
};

struct client {
	struct shared *sh;
	int id;
	uint64_t rng;
	long seq;
	redisContext *c;
	unsigned char *touched; /* registers, counters: 1 bit each kind */
	char **logs;            /* log key names touched */
	size_t nlogs, logs_cap;
	pthread_t thread;
};

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t rnd(struct client *cl)
{
	/* xorshift64* */
	cl->rng ^= cl->rng >> 12;
	cl->rng ^= cl->rng << 25;
	cl->rng ^= cl->rng >> 27;
	return cl->rng * 2685821657736338717ull;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static int client_connect(struct client *cl)
{
	const struct opts *o = cl->sh->o;
	struct timeval tv = { o->timeout_ms / 1000, (o->timeout_ms % 1000) * 1000 };
	redisContext *c = redisConnectWithTimeout(o->host, o->port, tv);
	if (!c || c->err || redisSetTimeout(c, tv) != REDIS_OK) {
		if (c)
			redisFree(c);
		return -1;
	}
	cl->c = c;
	return 0;
}

/* Records one op; result is already escaped. */
static void record(struct client *cl, const char *op, const char *key,
		   const char *arg, int64_t inv, int64_t ret, const char *result)
{
	struct shared *sh = cl->sh;
	char ek[3 * 128 + 1], ea[3 * 128 + 1], rt[24] = "-";
	rh_escape(key, strlen(key), ek);
	if (strcmp(arg, "-") && strcmp(arg, "final"))
		rh_escape(arg, strlen(arg), ea);
	else
		snprintf(ea, sizeof(ea), "%s", arg);
	if (ret >= 0)
		snprintf(rt, sizeof(rt), "%" PRId64, ret);
	pthread_mutex_lock(&sh->mu);
	if (fprintf(sh->out, "%d %ld %s %s %s %" PRId64 " %s %s\n", cl->id, cl->seq,
		    op, ek, ea, inv, rt, result) < 0)
		sh->write_failed = true;
	if (ret < 0) {
		sh->unknown++;
	} else if (!strncmp(result, "err:", 4)) {
		sh->failed++;
	} else {
		sh->ok++;
		if (ret > sh->last_ok) {
			if (ret - sh->last_ok > sh->max_gap)
				sh->max_gap = ret - sh->last_ok;
			sh->last_ok = ret;
		}
	}
	pthread_mutex_unlock(&sh->mu);
	cl->seq++;
}

/* Runs one command and records it; returns the reply's integer for an
 * integer reply (else -1). Drops the connection when the outcome is
 * unknown. */
static long long run(struct client *cl, const char *op, const char *key,
		     const char *arg, bool final)
{
	int64_t inv = now_ns();
	redisReply *r;
	if (!strcmp(op, "set"))
		r = redisCommand(cl->c, "SET %s %s", key, arg);
	else if (!strcmp(op, "append"))
		r = redisCommand(cl->c, "APPEND %s %s", key, arg);
	else if (!strcmp(op, "incr"))
		r = redisCommand(cl->c, "INCR %s", key);
	else
		r = redisCommand(cl->c, "GET %s", key);
	int64_t ret = now_ns();
	const char *a = final ? "final" : arg ? arg : "-";
	long long ival = -1;
	char small[3 * 100 + 16];
	char *res = small, *big = NULL;
	if (!r) {
		const char *why = cl->c->err == REDIS_ERR_IO &&
				  (errno == EAGAIN || errno == EWOULDBLOCK) ? "timeout" : cl->c->errstr;
		char e[3 * 100 + 1];
		rh_escape(why, strnlen(why, 100), e);
		snprintf(small, sizeof(small), "?:%s", e);
		ret = -1;
	} else if (r->type == REDIS_REPLY_ERROR) {
		char e[3 * 100 + 1];
		rh_escape(r->str, r->len < 100 ? r->len : 100, e);
		snprintf(small, sizeof(small), "err:%s", e);
	} else if (!strcmp(op, "set") && r->type == REDIS_REPLY_STATUS && !strcmp(r->str, "OK")) {
		snprintf(small, sizeof(small), "ok");
	} else if (!strcmp(op, "get") && r->type == REDIS_REPLY_NIL) {
		snprintf(small, sizeof(small), "nil");
	} else if (!strcmp(op, "get") && r->type == REDIS_REPLY_STRING) {
		big = malloc(3 * r->len + 3);
		if (big) {
			memcpy(big, "v:", 2);
			rh_escape(r->str, r->len, big + 2);
			res = big;
		} else {
			snprintf(small, sizeof(small), "?:out%%20of%%20memory");
			ret = -1;
		}
	} else if (strcmp(op, "set") && strcmp(op, "get") && r->type == REDIS_REPLY_INTEGER) {
		snprintf(small, sizeof(small), "i:%lld", r->integer);
		ival = r->integer;
	} else {
		/* Not what this command answers: no telling what happened. */
		snprintf(small, sizeof(small), "?:unexpected%%20reply%%20type%%20%d", r->type);
		ret = -1;
	}
	record(cl, op, key, a, inv, ret, res);
	free(big);
	if (r)
		freeReplyObject(r);
	if (ret < 0) {
		redisFree(cl->c);
		cl->c = NULL;
	}
	return ival;
}

static int touch_log(struct client *cl, const char *key)
{
	for (size_t i = 0; i < cl->nlogs; i++)
		if (!strcmp(cl->logs[i], key))
			return 0;
	if (cl->nlogs == cl->logs_cap) {
		size_t nc = cl->logs_cap ? 2 * cl->logs_cap : 16;
		char **nl = realloc(cl->logs, nc * sizeof(*nl));
		if (!nl)
			return -1;
		cl->logs = nl;
		cl->logs_cap = nc;
	}
	if (!(cl->logs[cl->nlogs] = strdup(key)))
		return -1;
	cl->nlogs++;
	return 0;
}

/* One random operation. Returns -1 only when out of memory. */
static int one_op(struct client *cl)
{
	struct shared *sh = cl->sh;
	int k = (int)(rnd(cl) % (uint64_t)sh->o->keys);
	unsigned r = (unsigned)(rnd(cl) % 100);
	char key[128], arg[64];
	unsigned gen = atomic_load(&sh->log_gen[k]);
	char kind = r < 30 ? 'r' : r < 55 ? "rrnl"[rnd(cl) % 4] : r < 75 ? 'n' : 'l';
	if (kind == 'l')
		snprintf(key, sizeof(key), "%sl%d.%u", sh->prefix, k, gen);
	else
		snprintf(key, sizeof(key), "%s%c%d", sh->prefix, kind, k);
	if (kind == 'l') {
		if (touch_log(cl, key))
			return -1;
	} else {
		cl->touched[k] |= kind == 'r' ? 1 : 2;
	}
	if (r >= 30 && r < 55)
		return run(cl, "get", key, NULL, false), 0;
	if (kind == 'r') {
		snprintf(arg, sizeof(arg), "c%d-%ld", cl->id, cl->seq);
		run(cl, "set", key, arg, false);
	} else if (kind == 'n') {
		run(cl, "incr", key, NULL, false);
	} else {
		snprintf(arg, sizeof(arg), "t%d.%ld;", cl->id, cl->seq);
		if (run(cl, "append", key, arg, false) > LOG_LIMIT)
			atomic_compare_exchange_strong(&sh->log_gen[k], &gen, gen + 1);
	}
	return 0;
}

/* Connects, retrying with backoff until it works or stop says so. */
static bool ensure_connected(struct client *cl, atomic_bool *stop, int64_t until)
{
	int backoff = 20;
	while (!cl->c) {
		if (atomic_load(stop) || now_ns() >= until)
			return false;
		if (!client_connect(cl))
			break;
		for (int t = 0; t < backoff && !atomic_load(stop) && now_ns() < until; t += 10)
			sleep_ms(10);
		backoff = backoff * 2 > 200 ? 200 : backoff * 2;
	}
	return true;
}

/* GETs one key until it answers (or the final phase is over). */
static void final_get(struct client *cl, const char *key, int64_t until)
{
	while (now_ns() < until && ensure_connected(cl, &cl->sh->abort_, until)) {
		run(cl, "get", key, NULL, true);
		if (cl->c) /* answered (an error reply is an answer too) */
			return;
	}
}

static void *client_main(void *arg)
{
	struct client *cl = arg;
	struct shared *sh = cl->sh;
	while (!atomic_load(&sh->stop) && ensure_connected(cl, &sh->stop, INT64_MAX)) {
		if (sh->o->ops > 0 && atomic_fetch_sub(&sh->ops_left, 1) <= 0)
			break;
		if (one_op(cl))
			break;
	}
	int64_t until = now_ns() + (int64_t)sh->o->final_ms * 1000000;
	char key[128];
	for (int k = 0; k < sh->o->keys && !atomic_load(&sh->abort_); k++) {
		for (int b = 0; b < 2; b++) {
			if (!(cl->touched[k] & (1 << b)))
				continue;
			snprintf(key, sizeof(key), "%s%c%d", sh->prefix, b ? 'n' : 'r', k);
			final_get(cl, key, until);
		}
	}
	for (size_t i = 0; i < cl->nlogs && !atomic_load(&sh->abort_); i++)
		final_get(cl, cl->logs[i], until);
	atomic_fetch_add(&sh->done, 1);
	return NULL;
}

/* 0: run; 1: --help was printed; -1: bad usage (said on stderr). */
static int parse_opts(int argc, char **argv, struct opts *o)
{
	*o = (struct opts){ .host = "127.0.0.1", .clients = 4, .keys = 8,
			    .timeout_ms = 1000, .final_ms = 3000, .seconds = 10,
			    .seed = (uint64_t)now_ns() ^ (uint64_t)getpid() };
	bool have_seconds = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--help")) {
			printf("usage: redis-history --host H --port P --out FILE [--clients N] "
			       "[--seconds S | --ops N] [--keys K] [--timeout-ms MS] "
			       "[--final-ms MS] [--seed N] [--prefix P]\n");
			return 1;
		}
		if (!v) {
			fprintf(stderr, "redis-history: %s needs a value\n", a);
			return -1;
		}
		char *end = NULL;
		long long n = strtoll(v, &end, 10);
		bool num = *v && !*end;
		i++;
		if (!strcmp(a, "--host"))
			o->host = v;
		else if (!strcmp(a, "--out"))
			o->out = v;
		else if (!strcmp(a, "--prefix"))
			o->prefix = v;
		else if (!strcmp(a, "--port") && num && n > 0 && n < 65536)
			o->port = (int)n;
		else if (!strcmp(a, "--clients") && num && n > 0 && n <= 256)
			o->clients = (int)n;
		else if (!strcmp(a, "--keys") && num && n > 0 && n <= 100000)
			o->keys = (int)n;
		else if (!strcmp(a, "--timeout-ms") && num && n > 0 && n <= 3600000)
			o->timeout_ms = (int)n;
		else if (!strcmp(a, "--final-ms") && num && n >= 0 && n <= 3600000)
			o->final_ms = (int)n;
		else if (!strcmp(a, "--ops") && num && n > 0)
			o->ops = (long)n;
		else if (!strcmp(a, "--seed") && num && n >= 0)
			o->seed = (uint64_t)n;
		else if (!strcmp(a, "--seconds")) {
			o->seconds = strtod(v, &end);
			if (!*v || *end || !(o->seconds > 0)) {
				fprintf(stderr, "redis-history: bad --seconds '%s'\n", v);
				return -1;
			}
			have_seconds = true;
		} else {
			fprintf(stderr, "redis-history: bad option or value: %s %s\n", a, v);
			return -1;
		}
	}
	if (!o->port || !o->out) {
		fprintf(stderr, "redis-history: --port and --out are required\n");
		return -1;
	}
	if (have_seconds && o->ops) {
		fprintf(stderr, "redis-history: --seconds or --ops, not both\n");
		return -1;
	}
	if (o->prefix && (strlen(o->prefix) > 40 || strpbrk(o->prefix, " %"))) {
		fprintf(stderr, "redis-history: --prefix: at most 40 bytes, no space or %%\n");
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o;
	int prc = parse_opts(argc, argv, &o);
	if (prc)
		return prc > 0 ? 0 : 2;
	struct shared sh = { .o = &o };
	if (o.prefix)
		snprintf(sh.prefix, sizeof(sh.prefix), "%s", o.prefix);
	else
		snprintf(sh.prefix, sizeof(sh.prefix), "rh%" PRIx64 "-%d:",
			 (uint64_t)now_ns(), (int)getpid());
	sh.out = fopen(o.out, "w");
	if (!sh.out) {
		fprintf(stderr, "redis-history: %s: %s\n", o.out, strerror(errno));
		return 1;
	}
	sh.log_gen = calloc((size_t)o.keys, sizeof(*sh.log_gen));
	struct client *cls = calloc((size_t)o.clients, sizeof(*cls));
	if (!sh.log_gen || !cls) {
		fprintf(stderr, "redis-history: out of memory\n");
		return 1;
	}
	pthread_mutex_init(&sh.mu, NULL);
	atomic_init(&sh.ops_left, o.ops);
	/* Signals: a broken connection must not kill us (EPIPE is handled);
	 * SIGTERM and SIGINT are taken by sigtimedwait below, in this thread
	 * only: blocked before the clients start, so they inherit the mask. */
	signal(SIGPIPE, SIG_IGN);
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	sh.start = sh.last_ok = now_ns();
	fprintf(sh.out, "redis-history 1\nstart %" PRId64 "\n", sh.start);
	fprintf(sh.out, "# %s:%d clients=%d keys=%d seed=%" PRIu64 " prefix=%s\n",
		o.host, o.port, o.clients, o.keys, o.seed, sh.prefix);
	int started = 0;
	for (int i = 0; i < o.clients; i++) {
		struct client *cl = &cls[i];
		*cl = (struct client){ .sh = &sh, .id = i,
				       .rng = (o.seed + 1) * 0x9e3779b97f4a7c15ull + (uint64_t)i * 7919 + 1 };
		cl->touched = calloc((size_t)o.keys, 1);
		if (!cl->touched || pthread_create(&cl->thread, NULL, client_main, cl)) {
			fprintf(stderr, "redis-history: cannot start client %d\n", i);
			atomic_store(&sh.stop, true);
			atomic_store(&sh.abort_, true);
			break;
		}
		started++;
	}
	int64_t deadline = o.ops ? INT64_MAX : sh.start + (int64_t)(o.seconds * 1e9);
	int64_t next_flush = sh.start;
	while (atomic_load(&sh.done) < started) {
		struct timespec tick = { 0, 50 * 1000 * 1000 };
		int sig = sigtimedwait(&sigs, NULL, &tick);
		if (sig > 0) {
			if (atomic_load(&sh.stop))
				atomic_store(&sh.abort_, true);
			atomic_store(&sh.stop, true);
		}
		int64_t t = now_ns();
		if (t >= deadline)
			atomic_store(&sh.stop, true);
		if (t >= next_flush) {
			pthread_mutex_lock(&sh.mu);
			fflush(sh.out);
			pthread_mutex_unlock(&sh.mu);
			next_flush = t + 500 * 1000 * 1000;
		}
	}
	for (int i = 0; i < started; i++)
		pthread_join(cls[i].thread, NULL);
	int64_t end = now_ns();
	int64_t trailing = end - sh.last_ok;
	int64_t longest = trailing > sh.max_gap ? trailing : sh.max_gap;
	fprintf(sh.out, "end %" PRId64 "\n", end);
	bool bad = fclose(sh.out) != 0 || sh.write_failed;
	printf("redis-history: %ld ops: %ld ok, %ld failed, %ld indeterminate; "
	       "longest outage %.3f s (at the end: %.3f s)\n",
	       sh.ok + sh.failed + sh.unknown, sh.ok, sh.failed, sh.unknown,
	       longest / 1e9, trailing / 1e9);
	for (int i = 0; i < o.clients; i++) {
		if (cls[i].c)
			redisFree(cls[i].c);
		for (size_t j = 0; j < cls[i].nlogs; j++)
			free(cls[i].logs[j]);
		free(cls[i].logs);
		free(cls[i].touched);
	}
	free(cls);
	free(sh.log_gen);
	pthread_mutex_destroy(&sh.mu);
	if (bad) {
		fprintf(stderr, "redis-history: %s: write failed\n", o.out);
		return 1;
	}
	return 0;
}
