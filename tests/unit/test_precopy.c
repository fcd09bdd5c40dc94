/* Unit tests for the one pre-copy engine (ft/precopy/): the policy, with
 * each mode's settings as a table of rounds and observations; the loop,
 * on scripted callbacks; the disk-copy engine, on temporary files and a
 * sink that records what it is handed. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "ft/precopy/disk_copy.h"
#include "ft/precopy/precopy.h"

#define BLK 4096u
#define MIB (1u << 20)

/* --- the policy, per mode --- */

/* A step of a run: a round done (units, bytes, ns), or an observation of
 * `dirty` units with the decision, the throttle and (if set) the
 * predicted downtime expected. */
struct step {
	enum { ROUND_DONE, OBSERVE } what;
	uint64_t a, bytes, ns;
	enum precopy_decision want;
	unsigned throttle;
	double predicted_ms; /* 0: not checked */
};
#define R(u, b, ns) { ROUND_DONE, (u), (b), (ns), 0, 0, 0 }
#define O(d, w) { OBSERVE, (d), 0, 0, (w), 0, 0 }
#define OT(d, w, t) { OBSERVE, (d), 0, 0, (w), (t), 0 }
#define OP(d, w, ms) { OBSERVE, (d), 0, 0, (w), 0, (ms) }
#define END { ROUND_DONE, UINT64_MAX, 0, 0, 0, 0, 0 }

static void run_steps(const char *name, const struct precopy_policy *p,
		      const struct step *steps)
{
	struct precopy_state s;
	precopy_init(&s, p);
	for (int i = 0; !(steps[i].what == ROUND_DONE &&
			  steps[i].a == UINT64_MAX); i++) {
		const struct step *st = &steps[i];
		if (st->what == ROUND_DONE) {
			precopy_round_done(&s, st->a, st->bytes, st->ns);
			continue;
		}
		enum precopy_decision d = precopy_decide(&s, st->a);
		if (d != st->want || s.throttle_pct != st->throttle)
			fail_msg("%s, step %d (dirty %llu): decision %d throttle "
				 "%u%%, want %d and %u%%", name, i,
				 (unsigned long long)st->a, d, s.throttle_pct,
				 st->want, st->throttle);
		if (st->predicted_ms > 0 &&
		    (s.predicted_ms < st->predicted_ms - 0.001 ||
		     s.predicted_ms > st->predicted_ms + 0.001))
			fail_msg("%s, step %d: predicted %.3f ms, want %.3f",
				 name, i, s.predicted_ms, st->predicted_ms);
	}
}

/* Snapshot: each pass is written even when it is the last (LAST). */
static void test_policy_snapshot(void **state)
{
	(void)state;
	struct precopy_policy p = precopy_policy_snapshot();
	static const struct step shrinks_to_small[] = {
		R(65536, 0, 0), O(5000, PRECOPY_ROUND), R(5000, 0, 0),
		O(1000, PRECOPY_ROUND), R(1000, 0, 0),
		O(256, PRECOPY_LAST), END };
	static const struct step stops_shrinking[] = {
		R(65536, 0, 0), O(5000, PRECOPY_ROUND), R(5000, 0, 0),
		O(5000, PRECOPY_LAST), END };
	static const struct step grows[] = {
		R(65536, 0, 0), O(5000, PRECOPY_ROUND), R(5000, 0, 0),
		O(7000, PRECOPY_LAST), END };
	/* The full write and 7 passes, then the 8th pass is the last. */
	static const struct step budget[] = {
		R(65536, 0, 0), O(9000, PRECOPY_ROUND), R(9000, 0, 0),
		O(8000, PRECOPY_ROUND), R(8000, 0, 0),
		O(7000, PRECOPY_ROUND), R(7000, 0, 0),
		O(6000, PRECOPY_ROUND), R(6000, 0, 0),
		O(5000, PRECOPY_ROUND), R(5000, 0, 0),
		O(4000, PRECOPY_ROUND), R(4000, 0, 0),
		O(3000, PRECOPY_ROUND), R(3000, 0, 0),
		O(2000, PRECOPY_LAST), END };
	static const struct step idle[] = { R(0, 0, 0), O(0, PRECOPY_LAST),
					    END };
	run_steps("snapshot small", &p, shrinks_to_small);
	run_steps("snapshot stall", &p, stops_shrinking);
	run_steps("snapshot grows", &p, grows);
	run_steps("snapshot budget", &p, budget);
	run_steps("snapshot idle", &p, idle);
}

/* Migration at 1e6 pages/s (4.096e9 B/s): n pages predict n/1000 + 1 ms
 * (the fixed cost of the paused epoch). */
#define FAST R(1000000, 4096000000ull, 1000000000ull)
static void test_policy_migrate(void **state)
{
	(void)state;
	struct precopy_policy p = precopy_policy_migrate(0, 0);
	assert_int_equal(p.limit_ms, 50);
	assert_int_equal(p.max_rounds, 60);
	/* Under the limit, rounds go on while they shrink by a quarter. */
	static const struct step fits[] = {
		FAST, OP(100000, PRECOPY_ROUND, 101), R(100000, 409600000, 1e8),
		OP(48000, PRECOPY_ROUND, 49), R(48000, 196608000, 48e6),
		OP(37000, PRECOPY_STOP, 38), END };
	/* At most 2 ms predicted: no round is worth it. */
	static const struct step target[] = {
		FAST, OP(500, PRECOPY_STOP, 1.5), END };
	/* Stuck rounds throttle, every second one: 30%, then 20% more. */
	static const struct step stuck[] = {
		FAST, O(300000, PRECOPY_ROUND),
		R(300000, 1228800000, 3e8), O(290000, PRECOPY_ROUND),
		R(290000, 1187840000, 29e7), OT(280000, PRECOPY_THROTTLE, 30),
		R(280000, 1146880000, 28e7), OT(270000, PRECOPY_ROUND, 30),
		R(270000, 1105920000, 27e7), OT(265000, PRECOPY_THROTTLE, 50),
		/* Shrinking by a fifth or more is not stuck. */
		R(265000, 1085440000, 265e6), OT(212000, PRECOPY_ROUND, 50),
		R(212000, 868352000, 212e6), OT(210000, PRECOPY_ROUND, 50),
		R(210000, 860160000, 21e7), OT(209000, PRECOPY_THROTTLE, 70),
		R(209000, 856064000, 209e6), OT(208000, PRECOPY_ROUND, 70),
		R(208000, 851968000, 208e6), OT(207000, PRECOPY_THROTTLE, 90),
		R(207000, 847872000, 207e6), OT(206000, PRECOPY_ROUND, 90),
		R(206000, 843776000, 206e6), OT(205000, PRECOPY_THROTTLE, 95),
		R(205000, 839680000, 205e6), OT(204000, PRECOPY_ROUND, 95),
		R(204000, 835584000, 204e6), OT(203000, PRECOPY_THROTTLE, 95),
		END };
	/* Shrinking by less than a fifth is stuck. */
	static const struct step slow[] = {
		FAST, OT(850000, PRECOPY_ROUND, 0), R(850000, 3481600000ull, 85e7),
		OT(723000, PRECOPY_THROTTLE, 30), END };
	/* Not measured yet: no prediction fits. */
	static const struct step unmeasured[] = {
		R(1000, 4096000, 0), OP(10, PRECOPY_ROUND, PRECOPY_UNKNOWN_MS),
		END };
	/* A first round, however small, gives a rate; later ones under
	 * 4 MiB do not change it. */
	static const struct step small_rounds[] = {
		R(100, 409600, 1000000), OP(100000, PRECOPY_ROUND, 1001),
		R(100, 409600, 100000), OP(70000, PRECOPY_ROUND, 701),
		R(10000, 40960000, 10000000), OP(50000, PRECOPY_ROUND, 51),
		END };
	/* Stream bytes per page, as measured, price the prediction. */
	static const struct step compressed[] = {
		R(1000000, 1024000000, 1000000000),
		OP(100000, PRECOPY_ROUND, 101), END };
	run_steps("migrate fits", &p, fits);
	run_steps("migrate target", &p, target);
	run_steps("migrate stuck", &p, stuck);
	run_steps("migrate slow", &p, slow);
	run_steps("migrate unmeasured", &p, unmeasured);
	run_steps("migrate small rounds", &p, small_rounds);
	run_steps("migrate compressed", &p, compressed);
	/* Out of rounds: stop-and-copy anyway. */
	p = precopy_policy_migrate(10, 3);
	static const struct step budget[] = {
		FAST, O(700000, PRECOPY_ROUND), R(700000, 2867200000ull, 7e8),
		O(500000, PRECOPY_ROUND), R(500000, 2048000000ull, 5e8),
		O(300000, PRECOPY_STOP), END };
	run_steps("migrate budget", &p, budget);
	/* A tighter limit keeps rounding where 50 ms would stop. */
	static const struct step tight[] = {
		FAST, OP(20000, PRECOPY_ROUND, 21), R(20000, 81920000, 2e7),
		OP(19000, PRECOPY_ROUND, 20), END };
	run_steps("migrate tight", &p, tight);
}

static void test_policy_first_copy(void **state)
{
	(void)state;
	struct precopy_policy p = precopy_policy_first_copy();
	static const struct step small[] = {
		R(65536, 1, 1), O(3000, PRECOPY_ROUND), R(3000, 1, 1),
		O(5000, PRECOPY_ROUND), R(5000, 1, 1),
		O(2048, PRECOPY_STOP), END };
	run_steps("first copy small", &p, small);
	/* Never stuck, never throttled: 30 rounds in all, then the first
	 * paused epoch takes the rest. */
	struct step budget[64];
	int n = 0;
	budget[n++] = (struct step)R(65536, 1, 1);
	for (int i = 1; i < 30; i++) {
		budget[n++] = (struct step)O(9000, PRECOPY_ROUND);
		budget[n++] = (struct step)R(9000, 1, 1);
	}
	budget[n++] = (struct step)O(9000, PRECOPY_STOP);
	budget[n++] = (struct step)END;
	run_steps("first copy budget", &p, budget);
}

static void test_policy_storage(void **state)
{
	(void)state;
	struct precopy_policy p = precopy_policy_storage(10, 30);
	static const struct step small[] = {
		R(1000, 1, 1), O(1000, PRECOPY_ROUND), R(1000, 1, 1),
		O(500, PRECOPY_ROUND), R(500, 1, 1),
		O(10, PRECOPY_STOP), END };
	/* Not shrinking any more: a few tries, then stop. */
	static const struct step stall[] = {
		R(1000, 1, 1), O(100, PRECOPY_ROUND), R(100, 1, 1),
		O(100, PRECOPY_ROUND), R(100, 1, 1),
		O(101, PRECOPY_ROUND), R(101, 1, 1),
		O(150, PRECOPY_STOP), END };
	/* A new minimum starts the count again. */
	static const struct step recover[] = {
		R(1000, 1, 1), O(100, PRECOPY_ROUND), R(100, 1, 1),
		O(120, PRECOPY_ROUND), R(120, 1, 1),
		O(110, PRECOPY_ROUND), R(110, 1, 1),
		O(90, PRECOPY_ROUND), R(90, 1, 1),
		O(95, PRECOPY_ROUND), R(95, 1, 1),
		O(91, PRECOPY_ROUND), R(91, 1, 1),
		O(92, PRECOPY_STOP), END };
	run_steps("storage small", &p, small);
	run_steps("storage stall", &p, stall);
	run_steps("storage recover", &p, recover);
	p = precopy_policy_storage(0, 2);
	assert_int_equal(p.small, 256);
	static const struct step budget[] = {
		R(1000, 1, 1), O(900, PRECOPY_ROUND), R(900, 1, 1),
		O(800, PRECOPY_ROUND), R(800, 1, 1),
		O(700, PRECOPY_STOP), END }; /* 2 rounds after the full copy */
	run_steps("storage budget", &p, budget);
	p = precopy_policy_storage(1, 5);
	static const struct step idle[] = { R(0, 0, 1), O(0, PRECOPY_STOP),
					    END };
	run_steps("storage idle", &p, idle);
	p = precopy_policy_storage(0, 0);
	assert_int_equal(p.max_rounds, 31);
	/* The rate: only from rounds of at least 1 MiB. */
	struct precopy_state s;
	precopy_init(&s, &p);
	precopy_round_done(&s, 10, 40960, 1000);
	assert_true(s.rate == 0);
	precopy_round_done(&s, 256, MIB, 1000000);
	assert_true(s.rate > 1.04e9 && s.rate < 1.05e9);
	precopy_round_done(&s, 1, 4096, 1);
	assert_true(s.rate > 1.04e9 && s.rate < 1.05e9);
}

/* Counts far beyond any RAM do not overflow the shrink tests. */
static void test_policy_huge_counts(void **state)
{
	(void)state;
	struct precopy_policy p = precopy_policy_migrate(50, 60);
	static const struct step huge[] = {
		R(UINT64_MAX - 1, UINT64_MAX - 1, UINT64_MAX),
		OT(UINT64_MAX - 2, PRECOPY_ROUND, 0),
		R(1, 1, 1), OT(UINT64_MAX - 3, PRECOPY_THROTTLE, 30), END };
	run_steps("migrate huge", &p, huge);
}

/* --- the loop --- */

struct script {
	const uint64_t *dirty; /* what pending reports, in turn */
	int npending, nrounds, nreports, nthrottles;
	bool firsts[16];
	unsigned pct[16];
	int fail_round, fail_pending, fail_throttle; /* 1-based; 0: never */
};

static int s_round(void *ctx, bool first, struct precopy_round *r,
		   struct kg_err *e)
{
	struct script *s = ctx;
	s->firsts[s->nrounds++] = first;
	if (s->nrounds == s->fail_round)
		return kg_errf(e, "round %d failed", s->nrounds);
	r->units = first ? 1000 : s->dirty[s->npending - 1];
	r->bytes = r->units * 4096;
	return 0;
}

static int s_pending(void *ctx, uint64_t *dirty, struct kg_err *e)
{
	struct script *s = ctx;
	if (++s->npending == s->fail_pending)
		return kg_errf(e, "pending failed");
	*dirty = s->dirty[s->npending - 1];
	return 0;
}

static void s_report(void *ctx, const struct precopy_state *st,
		     enum precopy_decision d)
{
	struct script *s = ctx;
	(void)d;
	assert_int_equal(st->dirty, s->dirty[s->npending - 1]);
	s->nreports++;
}

static int s_throttle(void *ctx, unsigned pct, struct kg_err *e)
{
	struct script *s = ctx;
	s->pct[s->nthrottles++] = pct;
	if (s->nthrottles == s->fail_throttle)
		return kg_errf(e, "throttle failed");
	return 0;
}

static const struct precopy_ops script_ops = {
	.round = s_round, .pending = s_pending, .report = s_report,
	.throttle = s_throttle,
};

static void test_loop_rounds_until_stop(void **state)
{
	(void)state;
	static const uint64_t dirty[] = { 500, 300, 10 };
	struct script s = { .dirty = dirty };
	struct precopy_policy p = precopy_policy_storage(10, 30);
	struct precopy_state st;
	struct kg_err e = { 0 };
	assert_int_equal(precopy_run(&st, &p, &script_ops, &s, &e), 0);
	/* The full round, two dirty rounds; the third count stops. */
	assert_int_equal(s.nrounds, 3);
	assert_int_equal(s.npending, 3);
	assert_int_equal(s.nreports, 3);
	assert_true(s.firsts[0] && !s.firsts[1] && !s.firsts[2]);
	assert_int_equal(st.rounds, 3);
	assert_int_equal(s.nthrottles, 0);
}

static void test_loop_last_round(void **state)
{
	(void)state;
	static const uint64_t dirty[] = { 5000, 100 };
	struct script s = { .dirty = dirty };
	struct precopy_policy p = precopy_policy_snapshot();
	struct precopy_state st;
	struct kg_err e = { 0 };
	assert_int_equal(precopy_run(&st, &p, &script_ops, &s, &e), 0);
	/* What the last count took is still copied: no count after it. */
	assert_int_equal(s.nrounds, 3);
	assert_int_equal(s.npending, 2);
}

static void test_loop_throttles(void **state)
{
	(void)state;
	static const uint64_t dirty[] = { 990, 980, 970, 960, 950, 0 };
	struct script s = { .dirty = dirty };
	/* A limit only an empty set fits (the paused epoch's fixed 1 ms
	 * reaches it alone). */
	struct precopy_policy p = precopy_policy_migrate(1, 60);
	struct precopy_state st;
	struct kg_err e = { 0 };
	assert_int_equal(precopy_run(&st, &p, &script_ops, &s, &e), 0);
	assert_int_equal(s.nthrottles, 2);
	assert_int_equal(s.pct[0], 30);
	assert_int_equal(s.pct[1], 50);
	assert_int_equal(s.nrounds, 6);
}

static void test_loop_errors(void **state)
{
	(void)state;
	static const uint64_t dirty[] = { 990, 980, 970, 960 };
	struct precopy_policy p = precopy_policy_migrate(1, 60);
	struct precopy_state st;
	struct kg_err e = { 0 };
	struct script s = { .dirty = dirty, .fail_round = 1 };
	assert_int_equal(precopy_run(&st, &p, &script_ops, &s, &e), -1);
	assert_string_equal(e.msg, "round 1 failed");
	assert_int_equal(s.npending, 0);
	s = (struct script){ .dirty = dirty, .fail_round = 2 };
	assert_int_equal(precopy_run(&st, &p, &script_ops, &s, &e), -1);
	assert_string_equal(e.msg, "round 2 failed");
	s = (struct script){ .dirty = dirty, .fail_pending = 2 };
	assert_int_equal(precopy_run(&st, &p, &script_ops, &s, &e), -1);
	assert_string_equal(e.msg, "pending failed");
	assert_int_equal(s.nrounds, 2);
	s = (struct script){ .dirty = dirty, .fail_throttle = 1 };
	assert_int_equal(precopy_run(&st, &p, &script_ops, &s, &e), -1);
	assert_string_equal(e.msg, "throttle failed");
	assert_int_equal(s.nrounds, 2); /* the throttled round never ran */
	/* A policy that throttles needs a way to. */
	struct precopy_ops no_throttle = script_ops;
	no_throttle.throttle = NULL;
	s = (struct script){ .dirty = dirty };
	assert_int_equal(precopy_run(&st, &p, &no_throttle, &s, &e), -1);
	assert_string_equal(e.msg, "pre-copy: this mode cannot throttle the "
				   "guest");
}

/* --- the disk-copy engine --- */

static void test_is_zero(void **state)
{
	(void)state;
	uint8_t b[64] = { 0 };
	assert_true(disk_copy_is_zero(b, sizeof(b)));
	assert_true(disk_copy_is_zero(b, 0));
	b[63] = 1;
	assert_false(disk_copy_is_zero(b, sizeof(b)));
	assert_true(disk_copy_is_zero(b, 63));
	b[0] = 1;
	assert_false(disk_copy_is_zero(b, 1));
}

struct files {
	char src[64], dst[64];
	int s, d;
	struct disk_file f;
	struct disk_copy c;
};

/* A source with data at [1 MiB, 1 MiB + 3 blocks) and a last, short
 * block; the rest holes. The destination: an empty file as long. */
static void make_files(struct files *f, uint64_t size)
{
	strcpy(f->src, "/tmp/kg-test-precopy.XXXXXX");
	strcpy(f->dst, "/tmp/kg-test-precopy.XXXXXX");
	f->s = mkstemp(f->src);
	f->d = mkstemp(f->dst);
	assert_true(f->s >= 0 && f->d >= 0);
	assert_int_equal(ftruncate(f->s, (off_t)size), 0);
	assert_int_equal(ftruncate(f->d, (off_t)size), 0);
	uint8_t blk[3 * BLK];
	for (size_t i = 0; i < sizeof(blk); i++)
		blk[i] = (uint8_t)(i * 7 + 1);
	assert_int_equal(pwrite(f->s, blk, sizeof(blk), 1 << 20),
			 (ssize_t)sizeof(blk));
	assert_int_equal(pwrite(f->s, blk, 100, (off_t)size - 100), 100);
	f->f = (struct disk_file){ .fd = f->d, .path = f->dst };
	f->c = (struct disk_copy){ .src = f->s, .src_path = f->src,
		.size = size, .block = BLK, .buf = malloc(DISK_COPY_RUN),
		.sink = &disk_file_sink, .sink_ctx = &f->f };
	assert_non_null(f->c.buf);
}

static void free_files(struct files *f)
{
	close(f->s);
	close(f->d);
	unlink(f->src);
	unlink(f->dst);
	free(f->c.buf);
}

static void assert_same(struct files *f)
{
	uint8_t *a = malloc(f->c.size), *b = malloc(f->c.size);
	assert_non_null(a);
	assert_non_null(b);
	assert_int_equal(pread(f->s, a, f->c.size, 0), (ssize_t)f->c.size);
	assert_int_equal(pread(f->d, b, f->c.size, 0), (ssize_t)f->c.size);
	assert_memory_equal(a, b, f->c.size);
	free(a);
	free(b);
}

static void test_copy_data_keeps_holes(void **state)
{
	(void)state;
	struct files f;
	uint64_t size = (4 << 20) - 1000; /* not a whole number of blocks */
	make_files(&f, size);
	struct kg_err e = { 0 };
	assert_int_equal(disk_copy_data(&f.c, &e), 0);
	assert_same(&f);
	struct stat st;
	assert_int_equal(fstat(f.d, &st), 0);
	/* Only the data was written: far less than the 4 MiB. */
	if ((uint64_t)st.st_blocks * 512 >= size / 2)
		fail_msg("destination not sparse: %lld bytes allocated",
			 (long long)st.st_blocks * 512);
	assert_true(f.c.bytes < size / 2);
	free_files(&f);
}

static void test_copy_blocks(void **state)
{
	(void)state;
	struct files f;
	uint64_t size = 4 << 20;
	make_files(&f, size);
	struct kg_err e = { 0 };
	assert_int_equal(disk_copy_data(&f.c, &e), 0);
	/* Change two blocks, one to zeros, and the last (short) block. */
	uint8_t x[BLK], z[BLK] = { 0 };
	memset(x, 0x5a, sizeof(x));
	assert_int_equal(pwrite(f.s, x, BLK, 7 * BLK), BLK);
	assert_int_equal(pwrite(f.s, z, BLK, (1 << 20) + BLK), BLK);
	assert_int_equal(pwrite(f.s, x, 10, (off_t)size - 10), 10);
	uint64_t bits[16] = { 0 };
	uint64_t b1 = ((1 << 20) + BLK) / BLK, last = size / BLK - 1;
	bits[0] = 1ull << 7;
	bits[b1 / 64] |= 1ull << (b1 % 64);
	bits[last / 64] |= 1ull << (last % 64);
	assert_int_equal(disk_copy_blocks(&f.c, bits, 16, &e), 0);
	assert_same(&f);
	/* The zeroed block became a hole again. */
	off_t d = lseek(f.d, (1 << 20) + BLK, SEEK_DATA);
	assert_true(d < 0 || d > (1 << 20) + BLK);
	free_files(&f);
}

static void test_copy_write_error_names_file(void **state)
{
	(void)state;
	struct files f;
	make_files(&f, 1 << 20 << 1);
	int ro = open(f.dst, O_RDONLY);
	assert_true(ro >= 0);
	f.f.fd = ro;
	struct kg_err e = { 0 };
	assert_int_equal(disk_copy_data(&f.c, &e), -1);
	if (!strstr(e.msg, "writing /tmp/kg-test-precopy.") ||
	    !strstr(e.msg, "Bad file descriptor"))
		fail_msg("message: %s", e.msg);
	close(ro);
	free_files(&f);
}

/* A sink that records the runs it is handed (as a stream sink sees
 * them). */
struct run_rec {
	uint64_t off[64];
	size_t len[64];
	bool zero[64];
	int n, fail_at;
};

static int rec_put(void *ctx, uint64_t off, const uint8_t *data, size_t len,
		   bool zero, struct kg_err *e)
{
	struct run_rec *r = ctx;
	assert_int_equal(zero, disk_copy_is_zero(data, len));
	if (r->n == r->fail_at - 1)
		return kg_errf(e, "sink full");
	assert_true(r->n < 64);
	r->off[r->n] = off;
	r->len[r->n] = len;
	r->zero[r->n++] = zero;
	return 0;
}
static const struct disk_copy_sink rec_sink = { .put = rec_put };

static void test_copy_runs_to_a_sink(void **state)
{
	(void)state;
	struct files f;
	uint64_t size = 4 << 20;
	make_files(&f, size);
	/* Data that reads as zeros is not handed on in the data pass. */
	uint8_t z[BLK] = { 0 };
	assert_int_equal(pwrite(f.s, z, BLK, 3 << 20), BLK);
	struct run_rec rec = { .n = 0 };
	f.c.sink = &rec_sink;
	f.c.sink_ctx = &rec;
	struct kg_err e = { 0 };
	assert_int_equal(disk_copy_data(&f.c, &e), 0);
	for (int i = 0; i < rec.n; i++) {
		assert_false(rec.zero[i]);
		assert_true(rec.len[i] <= DISK_COPY_RUN);
	}
	assert_true(rec.n >= 2);
	assert_int_equal(rec.off[0], 1 << 20);
	assert_int_equal(rec.off[rec.n - 1] + rec.len[rec.n - 1], size);
	/* The block pass: neighbours merge up to 1 MiB, gaps split, zero
	 * runs are marked. Blocks 0..299 (a run of 256 and one of 44) and
	 * 3 MiB's zero block. */
	uint64_t bits[16] = { 0 };
	for (unsigned b = 0; b < 300; b++)
		bits[b / 64] |= 1ull << (b % 64);
	unsigned zb = (3 << 20) / BLK;
	bits[zb / 64] |= 1ull << (zb % 64);
	rec.n = 0;
	assert_int_equal(disk_copy_blocks(&f.c, bits, 16, &e), 0);
	assert_int_equal(rec.n, 3);
	assert_int_equal(rec.off[0], 0);
	assert_int_equal(rec.len[0], DISK_COPY_RUN);
	assert_int_equal(rec.off[1], DISK_COPY_RUN);
	assert_int_equal(rec.len[1], 44 * BLK);
	assert_int_equal(rec.off[2], 3 << 20);
	assert_int_equal(rec.len[2], BLK);
	assert_true(rec.zero[2]);
	/* The sink's error stops the copy. */
	rec = (struct run_rec){ .fail_at = 2 };
	assert_int_equal(disk_copy_blocks(&f.c, bits, 16, &e), -1);
	assert_string_equal(e.msg, "sink full");
	assert_int_equal(rec.n, 1);
	free_files(&f);
}

static bool stop_now(void *arg, uint64_t pos)
{
	(void)pos;
	return --*(int *)arg > 0;
}

static void test_copy_cancel_and_truncation(void **state)
{
	(void)state;
	struct files f;
	uint64_t size = 4 << 20;
	make_files(&f, size);
	int ticks = 1;
	f.c.tick = stop_now;
	f.c.arg = &ticks;
	struct kg_err e = { 0 };
	assert_int_equal(disk_copy_data(&f.c, &e), -1);
	assert_string_equal(e.msg, "cancelled");
	f.c.tick = NULL;
	/* The source shrank under the copy. */
	assert_int_equal(ftruncate(f.s, 1 << 20), 0);
	uint64_t bits[16] = { 0 };
	bits[(2 << 20) / BLK / 64] = 1;
	assert_int_equal(disk_copy_blocks(&f.c, bits, 16, &e), -1);
	if (!strstr(e.msg, "reading /tmp/kg-test-precopy.") ||
	    !strstr(e.msg, "unexpected end of file at byte 2097152"))
		fail_msg("message: %s", e.msg);
	free_files(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_policy_snapshot),
		cmocka_unit_test(test_policy_migrate),
		cmocka_unit_test(test_policy_first_copy),
		cmocka_unit_test(test_policy_storage),
		cmocka_unit_test(test_policy_huge_counts),
		cmocka_unit_test(test_loop_rounds_until_stop),
		cmocka_unit_test(test_loop_last_round),
		cmocka_unit_test(test_loop_throttles),
		cmocka_unit_test(test_loop_errors),
		cmocka_unit_test(test_is_zero),
		cmocka_unit_test(test_copy_data_keeps_holes),
		cmocka_unit_test(test_copy_blocks),
		cmocka_unit_test(test_copy_write_error_names_file),
		cmocka_unit_test(test_copy_runs_to_a_sink),
		cmocka_unit_test(test_copy_cancel_and_truncation),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
