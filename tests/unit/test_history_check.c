/* The redis history checker (tests/tools/history.c, the rules in its
 * header): parsing, each rule's violation, indeterminate operations, the
 * outage, and the register rule against a brute-force search. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "tests/tools/history.h"

#define HEAD "redis-history 1\nstart 0\n"
#define END "end 1000\n"

/* Parses and checks text; returns the parse result (e says why). */
static int judge(const char *text, struct rh_report *r, struct kg_err *e)
{
	FILE *f = fmemopen((void *)text, strlen(text), "r");
	assert_non_null(f);
	struct rh_history h;
	int rc = rh_parse(&h, f, e);
	fclose(f);
	*r = (struct rh_report){ 0 };
	if (!rc)
		assert_int_equal(rh_check(&h, r, e), 0);
	rh_free(&h);
	return rc;
}

static struct rh_report ok_parse(const char *text)
{
	struct rh_report r;
	struct kg_err e = { 0 };
	if (judge(text, &r, &e))
		fail_msg("parse: %s", e.msg);
	return r;
}

/* The report has a violation that holds each of the (NULL-ended) strings. */
static void violates(const char *text, ...)
{
	struct rh_report r = ok_parse(text);
	bool found = false;
	for (size_t i = 0; i < r.nviolations && !found; i++) {
		va_list ap;
		va_start(ap, text);
		found = true;
		for (const char *s; found && (s = va_arg(ap, const char *));)
			found = strstr(r.violations[i], s) != NULL;
		va_end(ap);
	}
	if (!found)
		for (size_t i = 0; i < r.nviolations; i++)
			print_message("violation: %s\n", r.violations[i]);
	rh_report_free(&r);
	if (!found)
		fail_msg("no violation holds all the strings (%s)", text);
}

static void clean(const char *text)
{
	struct rh_report r = ok_parse(text);
	for (size_t i = 0; i < r.nviolations; i++)
		print_message("violation: %s\n", r.violations[i]);
	assert_int_equal(r.violations_total, 0);
	assert_true(r.acked_writes > 0);
	rh_report_free(&r);
}

static void test_good_histories(void **state)
{
	(void)state;
	/* Registers: overlapping writes may land in either order; a read
	 * concurrent with a write may see it or the old value. */
	struct rh_report r = ok_parse(HEAD
		"0 0 set r1 a 10 20 ok\n"
		"1 0 set r1 b 15 40 ok\n"
		"2 0 get r1 - 25 30 v:b\n"
		"0 1 get r1 - 45 50 v:b\n"
		"1 1 set r1 c 60 70 ok\n"
		"2 1 get r1 - 65 68 v:b\n"
		"0 2 get r1 final 80 90 v:c\n"
		"1 2 get r2 - 10 20 nil\n"
		END);
	assert_int_equal(r.violations_total, 0);
	assert_int_equal(r.ops, 8);
	assert_int_equal(r.acked, 8);
	assert_int_equal(r.acked_writes, 3);
	assert_int_equal(r.keys, 2);
	assert_int_equal(r.final_unread, 0);
	rh_report_free(&r);
	/* Counters: concurrent incrs in either order; reads in between. */
	clean(HEAD
		"0 0 incr n1 - 10 30 i:2\n"
		"1 0 incr n1 - 12 20 i:1\n"
		"2 0 get n1 - 15 25 v:1\n"
		"2 1 get n1 - 31 35 v:2\n"
		"0 1 incr n1 - 40 50 err:MISCONF\n"
		"0 2 get n1 final 60 70 v:2\n"
		END);
	/* Logs: tokens in an order real time allows, the returned lengths
	 * where the tokens end. */
	clean(HEAD
		"0 0 append l1 a; 10 30 i:5\n"
		"1 0 append l1 bb; 12 20 i:3\n"
		"2 0 get l1 - 13 14 nil\n"
		"2 1 get l1 - 15 25 v:bb;\n"
		"2 2 get l1 final 40 50 v:bb;a;\n"
		END);
}

static void test_nothing_acked_and_outage(void **state)
{
	(void)state;
	struct rh_report r = ok_parse(HEAD
		"0 0 set r1 a 100 - ?:timeout\n"
		"0 1 get r1 - 300 - ?:Connection%20refused\n"
		END);
	assert_int_equal(r.violations_total, 0);
	assert_int_equal(r.acked_writes, 0);
	assert_int_equal(r.unknown, 2);
	assert_int_equal(r.outage_ns, 1000);
	assert_true(r.outage_trailing);
	rh_report_free(&r);
	/* A gap in the middle, and one at the end that is longer. */
	r = ok_parse(HEAD
		"0 0 set r1 a 10 20 ok\n"
		"0 1 set r1 b 30 - ?:timeout\n"
		"0 2 get r1 - 300 320 v:a\n"
		"0 3 get r1 - 330 340 err:LOADING\n"
		"end 400\n");
	assert_int_equal(r.outage_ns, 300);
	assert_int_equal(r.outage_from_ns, 20);
	assert_false(r.outage_trailing);
	assert_int_equal(r.failed, 1);
	rh_report_free(&r);
	r = ok_parse(HEAD "0 0 set r1 a 10 20 ok\nend 900\n");
	assert_int_equal(r.outage_ns, 880);
	assert_true(r.outage_trailing);
	assert_int_equal(r.final_unread, 1);
	rh_report_free(&r);
}

static void test_register_violations(void **state)
{
	(void)state;
	/* Lost write: the final read returns what an acknowledged set
	 * overwrote. */
	violates(HEAD
		"0 0 set r1 a 10 20 ok\n"
		"0 1 set r1 b 30 40 ok\n"
		"1 0 get r1 final 50 60 v:a\n"
		END, "key r1", "lost write", "c1#0 final get (line 5)", "c0#1 set (line 4)", "'b'", NULL);
	/* Lost write to nothing: nil after an acknowledged set. */
	violates(HEAD
		"0 0 set r1 a 10 20 ok\n"
		"1 0 get r1 final 50 60 nil\n"
		END, "lost write", "returned nil", "c0#0 set", NULL);
	/* Stale read: b was seen, then a again. */
	violates(HEAD
		"0 0 set r1 a 10 20 ok\n"
		"0 1 set r1 b 30 40 ok\n"
		"1 0 get r1 - 41 42 v:b\n"
		"1 1 get r1 - 43 44 v:a\n"
		END, "stale read", NULL);
	/* Values nobody wrote, or whose set failed. */
	violates(HEAD "0 0 set r1 a 10 20 ok\n1 0 get r1 - 30 40 v:zz\n" END,
		      "never written", "'zz'", "c1#0 get", NULL);
	violates(HEAD "0 0 set r1 a 10 20 ok\n0 1 set r2 b 10 20 ok\n1 0 get r1 - 30 40 v:b\n" END,
		      "never written", NULL);
	violates(HEAD "0 0 set r1 a 10 20 err:READONLY\n0 1 set r1 b 21 22 ok\n1 0 get r1 - 30 40 v:a\n" END,
		      "never written", "failed", NULL);
	/* A read that ends before its write began. */
	violates(HEAD "0 0 set r1 a 50 60 ok\n1 0 get r1 - 10 20 v:a\n" END,
		      "from the future", NULL);
}

static void test_unknown_writes(void **state)
{
	(void)state;
	/* An unknown set may have happened... */
	clean(HEAD
		"0 0 set r1 a 10 20 ok\n"
		"0 1 set r1 b 30 - ?:timeout\n"
		"1 0 get r1 final 500 510 v:b\n"
		END);
	/* ...or not. */
	clean(HEAD
		"0 0 set r1 a 10 20 ok\n"
		"0 1 set r1 b 30 - ?:timeout\n"
		"1 0 get r1 final 500 510 v:a\n"
		END);
	/* But not both: once b is read, a cannot come back. */
	violates(HEAD
		"0 0 set r1 a 10 20 ok\n"
		"0 1 set r1 b 30 - ?:timeout\n"
		"1 0 get r1 - 400 410 v:b\n"
		"1 1 get r1 final 500 510 v:a\n"
		END, "lost write", "returned 'a'", "c1#0 get (line 5) ('b')", NULL);
	/* An unknown incr may count or not, within the bounds. */
	const char *incrs = HEAD
		"0 0 incr n1 - 10 20 i:1\n"
		"0 1 incr n1 - 30 - ?:timeout\n"
		"1 0 incr n1 - 40 50 i:%d\n"
		"1 1 get n1 final 60 70 v:%d\n"
		END;
	char t[512];
	snprintf(t, sizeof(t), incrs, 2, 2);
	clean(t);
	snprintf(t, sizeof(t), incrs, 3, 3);
	clean(t);
	snprintf(t, sizeof(t), incrs, 2, 4);
	violates(t, "never written", "4", "only 3 incr", NULL);
	/* An unknown append's token may or may not be there. */
	clean(HEAD "0 0 append l1 a; 10 20 i:2\n0 1 append l1 b; 30 - ?:x\n1 0 get l1 final 40 50 v:a;b;\n" END);
	clean(HEAD "0 0 append l1 a; 10 20 i:2\n0 1 append l1 b; 30 - ?:x\n1 0 get l1 final 40 50 v:a;\n" END);
}

static void test_counter_violations(void **state)
{
	(void)state;
	violates(HEAD "0 0 incr n1 - 10 20 i:1\n1 0 incr n1 - 15 25 i:1\n" END,
		      "duplicate incr", "c0#0 incr", "c1#0 incr", NULL);
	violates(HEAD "0 0 incr n1 - 10 20 i:2\n1 0 incr n1 - 11 50 i:3\n2 0 incr n1 - 30 40 i:1\n" END,
		      "incr went backwards", "c0#0 incr", "c2#0 incr", NULL);
	violates(HEAD "0 0 incr n1 - 10 20 i:1\n0 1 incr n1 - 30 40 i:2\n1 0 get n1 final 50 60 v:1\n" END,
		      "lost incr", "c0#1 incr", NULL);
	violates(HEAD "0 0 incr n1 - 10 20 i:1\n1 0 get n1 - 30 40 v:2\n1 1 get n1 - 50 60 v:1\n" END,
		      "counter went backwards", NULL);
	violates(HEAD "0 0 incr n1 - 10 20 i:1\n1 0 get n1 - 30 40 v:x\n" END,
		      "never written", "'x'", NULL);
	violates(HEAD "0 0 incr n1 - 10 20 i:1\n1 0 get n1 - 30 40 v:5\n" END,
		      "never written", "only 1 incr", NULL);
}

static void test_log_violations(void **state)
{
	(void)state;
	violates(HEAD "0 0 append l1 a; 10 20 i:2\n0 1 append l1 b; 30 40 i:4\n1 0 get l1 - 50 60 v:a;\n" END,
		      "missing acked token", "'b;'", "c0#1 append", NULL);
	violates(HEAD "0 0 append l1 a; 10 20 i:2\n0 1 append l1 b; 30 40 i:4\n1 0 get l1 final 50 60 v:b;\n" END,
		      "lost append", "'a;'", NULL);
	violates(HEAD "0 0 append l1 a; 10 20 i:2\n0 1 append l1 b; 30 40 i:4\n1 0 get l1 - 50 60 v:b;a;\n" END,
		      "append order", NULL);
	violates(HEAD "0 0 append l1 a; 10 20 i:2\n1 0 get l1 - 50 60 v:a;junk\n" END,
		      "never written", "'junk'", NULL);
	violates(HEAD "0 0 append l1 a; 10 20 i:2\n1 0 get l1 - 50 60 v:a;a;\n" END,
		      "never written", "twice", NULL);
	violates(HEAD "0 0 append l1 a; 10 20 err:OOM\n0 1 append l1 b; 21 22 i:2\n1 0 get l1 - 50 60 v:b;a;\n" END,
		      "never written", "failed", NULL);
	/* Concurrent appends: two reads saw different orders. */
	violates(HEAD
		"0 0 append l1 a; 10 50 i:2\n"
		"1 0 append l1 b; 10 50 i:4\n"
		"2 0 get l1 - 20 40 v:a;b;\n"
		"2 1 get l1 - 20 40 v:b;\n"
		END, "reads disagree", NULL);
	/* The returned length places the token. */
	violates(HEAD "0 0 append l1 a; 10 20 i:4\n0 1 append l1 b; 30 40 i:2\n1 0 get l1 - 50 60 v:a;b;\n" END,
		      "returned length 4", NULL);
}

static void malformed(const char *text, const char *want)
{
	struct rh_report r;
	struct kg_err e = { 0 };
	if (!judge(text, &r, &e))
		fail_msg("parsed, expected '%s'", want);
	if (!strstr(e.msg, want))
		fail_msg("'%s' lacks '%s'", e.msg, want);
	assert_int_equal(e.kind, KG_ERR_INVALID);
	assert_null(strchr(e.msg, '\n'));
}

static void test_malformed(void **state)
{
	(void)state;
	malformed("", "line 1: empty file");
	malformed("redis-history 2\n", "line 1: not a redis-history 1 file");
	malformed("redis-history 1\n", "line 2: expected 'start NS'");
	malformed(HEAD "0 0 set r1 a 10 20 ok\n", "line 4: no 'end' line: the history is truncated");
	malformed(HEAD "0 0 set r1 a 10 20 ok\nend 100", "line 4: the last line has no newline");
	malformed(HEAD "0 0 set r1 a 10 20 ok\n0 0 set r1 a 10", "line 4: the last line has no newline");
	malformed(HEAD "0 0 set r1 a 10 20\n" END, "line 3: expected 8 fields");
	malformed(HEAD "0 0 set r1  a 10 20 ok\n" END, "line 3: expected 8 fields");
	malformed(HEAD "x 0 set r1 a 10 20 ok\n" END, "line 3: bad client 'x'");
	malformed(HEAD "0 0 del r1 a 10 20 ok\n" END, "line 3: unknown operation 'del'");
	malformed(HEAD "0 0 set r1 a 20 10 ok\n" END, "line 3: bad completion time '10'");
	malformed(HEAD "0 0 set r1 a 10 - ok\n" END, "line 3: completion time '-' needs an unknown outcome");
	malformed(HEAD "0 0 set r1 a 10 20 ?:x\n" END, "line 3: an unknown outcome");
	malformed(HEAD "0 0 set r1 a 10 20 i:3\n" END, "line 3: result 'i:3' does not fit set");
	malformed(HEAD "0 0 incr n1 - 10 20 i:z\n" END, "line 3: bad integer result");
	malformed(HEAD "0 0 get r1 - 10 20 v:%4\n" END, "line 3: bad escape in result");
	malformed(HEAD "0 0 get r1 x 10 20 nil\n" END, "line 3: get takes '-' or 'final'");
	malformed(HEAD "0 0 append l1 a 10 20 i:1\n" END, "line 3: append token 'a' must end with its only ';'");
	malformed(HEAD "0 0 set r1 a 10 20 ok\n0 1 set r1 a 30 40 ok\n" END, "line 4: key r1: 'a' written twice (line 3)");
	malformed(HEAD "0 0 set k a 10 20 ok\n0 1 incr k - 30 40 i:1\n" END, "line 4: key k: incr mixed with the writes of line 3");
	malformed(HEAD "end 100\n0 0 set r1 a 10 20 ok\n", "line 4: a record after the 'end' line");
	malformed(HEAD "0 0 set r1 a 10 2000 ok\n" END, "line 3: an operation after the end time");
	malformed("redis-history 1\nstart 50\n0 0 set r1 a 10 20 ok\n" END, "line 3: invoked at 10, before the start 50");
}

/* --- the register rule against a search of every linearization --- */

struct bop {
	int write; /* 1: set of value id, 0: get returning value (-1: nil) */
	int val;
	int64_t inv, ret; /* ret INT64_MAX: unknown */
};

/* Is there an order of the ops in mask (all of them) that respects real
 * time and in which each get returns the last set before it? */
static bool search(const struct bop *o, int n, unsigned mask, unsigned placed, int cur)
{
	if (placed == mask)
		return true;
	for (int i = 0; i < n; i++) {
		if (!(mask >> i & 1) || (placed >> i & 1))
			continue;
		/* Every unplaced op that precedes i must come first. */
		bool ready = true;
		for (int j = 0; j < n && ready; j++)
			if (j != i && (mask >> j & 1) && !(placed >> j & 1) && o[j].ret < o[i].inv)
				ready = false;
		if (!ready)
			continue;
		if (o[i].write) {
			if (search(o, n, mask, placed | 1u << i, o[i].val))
				return true;
		} else if (o[i].val == cur && search(o, n, mask, placed | 1u << i, cur)) {
			return true;
		}
	}
	return false;
}

static bool brute_linearizable(const struct bop *o, int n)
{
	unsigned must = 0, maybe = 0;
	for (int i = 0; i < n; i++)
		*(o[i].write && o[i].ret == INT64_MAX ? &maybe : &must) |= 1u << i;
	/* Every subset of the unknown writes may have taken effect. */
	for (unsigned sub = maybe;; sub = (sub - 1) & maybe) {
		if (search(o, n, must | sub, 0, -1))
			return true;
		if (!sub)
			return false;
	}
}

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void test_register_against_search(void **state)
{
	(void)state;
	uint64_t s = 0x1234567;
	int disagree = 0, bad_ones = 0;
	for (int round = 0; round < 3000; round++) {
		int nw = 1 + (int)(rng_next(&s) % 3), nr = 1 + (int)(rng_next(&s) % 4);
		int n = nw + nr;
		struct bop o[8];
		/* 2n distinct endpoints, shuffled, two per op. */
		int64_t t[16];
		for (int i = 0; i < 2 * n; i++)
			t[i] = 10 * (i + 1);
		for (int i = 2 * n - 1; i > 0; i--) {
			int j = (int)(rng_next(&s) % (uint64_t)(i + 1));
			int64_t x = t[i];
			t[i] = t[j];
			t[j] = x;
		}
		for (int i = 0; i < n; i++) {
			int64_t a = t[2 * i], b = t[2 * i + 1];
			o[i].inv = a < b ? a : b;
			o[i].ret = a < b ? b : a;
			o[i].write = i < nw;
			if (o[i].write) {
				o[i].val = i;
				if (rng_next(&s) % 4 == 0)
					o[i].ret = INT64_MAX;
			} else {
				o[i].val = (int)(rng_next(&s) % (uint64_t)(nw + 1)) - 1;
			}
		}
		char text[2048];
		int off = snprintf(text, sizeof(text), HEAD);
		for (int i = 0; i < n; i++) {
			char ret[24] = "-", res[16];
			if (o[i].ret != INT64_MAX)
				snprintf(ret, sizeof(ret), "%lld", (long long)o[i].ret);
			if (o[i].write)
				snprintf(res, sizeof(res), "%s", o[i].ret == INT64_MAX ? "?:t" : "ok");
			else if (o[i].val < 0)
				snprintf(res, sizeof(res), "nil");
			else
				snprintf(res, sizeof(res), "v:w%d", o[i].val);
			char arg[8] = "-";
			if (o[i].write)
				snprintf(arg, sizeof(arg), "w%d", o[i].val);
			off += snprintf(text + off, sizeof(text) - (size_t)off,
					"%d 0 %s k %s %lld %s %s\n", i, o[i].write ? "set" : "get",
					arg, (long long)o[i].inv, ret, res);
		}
		snprintf(text + off, sizeof(text) - (size_t)off, END);
		struct rh_report r = ok_parse(text);
		bool lin = brute_linearizable(o, n);
		bad_ones += !lin;
		if (lin != (r.violations_total == 0)) {
			if (disagree++ < 3)
				print_message("search says %s, checker %zu violations:\n%s",
					      lin ? "linearizable" : "not", r.violations_total, text);
		}
		rh_report_free(&r);
	}
	assert_int_equal(disagree, 0);
	/* The random histories exercise both verdicts. */
	assert_true(bad_ones > 300 && bad_ones < 2700);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_histories),
		cmocka_unit_test(test_nothing_acked_and_outage),
		cmocka_unit_test(test_register_violations),
		cmocka_unit_test(test_unknown_writes),
		cmocka_unit_test(test_counter_violations),
		cmocka_unit_test(test_log_violations),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_register_against_search),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
