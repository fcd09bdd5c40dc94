/* The history checker (check/): parsing, per-key linearizability, the
 * verdict and the outage. Histories are written inline, as clients would. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "check/checker.h"

static int parse(struct history *h, const char *text, struct kg_err *e)
{
	memset(h, 0, sizeof(*h));
	return history_parse(h, "t", text, strlen(text), e);
}

/* Checks text and returns the report; the history must parse. */
static struct check_report judge(const char *text)
{
	struct history h;
	struct kg_err e = { 0 };
	struct check_report r;
	if (parse(&h, text, &e) < 0)
		fail_msg("parse: %s", e.msg);
	assert_int_equal(check_history(&h, 0, &r, &e), 0);
	history_free(&h);
	return r;
}

static void test_sequential_ok(void **state)
{
	(void)state;
	struct check_report r = judge(
		"history 1\n"
		"start 1\n"
		"invoke c1-1 10 put a v1\n"
		"ok c1-1 20\n"
		"invoke c1-2 30 get a\n"
		"ok c1-2 40 v1\n"
		"invoke c1-3 50 del a\n"
		"ok c1-3 60\n"
		"invoke c1-4 70 get a\n"
		"ok c1-4 80 -\n"
		"end 100\n");
	assert_true(r.pass);
	assert_int_equal(r.ops, 4);
	assert_int_equal(r.acked_writes, 2);
	assert_int_equal(r.reads, 2);
	assert_int_equal(r.keys, 1);
	assert_string_equal(r.verdict, "linearizable");
}

/* An acknowledged write that a later read does not see is lost. */
static void test_lost_write(void **state)
{
	(void)state;
	struct check_report r = judge(
		"history 1\n"
		"invoke c1-1 10 put a v1\n"
		"ok c1-1 20\n"
		"invoke c1-2 30 put a v2\n"
		"ok c1-2 40\n"
		"invoke v-1 50 get a\n"
		"ok v-1 60 v1\n");
	assert_false(r.pass);
	assert_int_equal(r.keys_bad, 1);
	assert_non_null(strstr(r.problem, "get v-1 returned 'v1'"));
	assert_non_null(strstr(r.problem, "put c1-2"));
}

/* Lost, then overwritten: the final value alone would look fine. */
static void test_lost_write_overwritten(void **state)
{
	(void)state;
	struct check_report r = judge(
		"history 1\n"
		"invoke c1-1 10 put a v1\n"
		"ok c1-1 20\n"
		"invoke c2-1 25 get a\n"
		"ok c2-1 28 -\n"
		"invoke c1-2 30 put a v2\n"
		"ok c1-2 40\n"
		"invoke v-1 50 get a\n"
		"ok v-1 60 v2\n");
	assert_false(r.pass);
	assert_non_null(strstr(r.problem, "get c2-1 returned '-'"));
}

static void test_concurrent_read_either(void **state)
{
	(void)state;
	const char *fmt =
		"history 1\n"
		"invoke c1-1 10 put a v1\n"
		"ok c1-1 20\n"
		"invoke c1-2 30 put a v2\n"
		"invoke c2-1 35 get a\n"
		"ok c2-1 38 %s\n"
		"ok c1-2 50\n";
	char buf[512];
	snprintf(buf, sizeof(buf), fmt, "v1");
	assert_true(judge(buf).pass);
	snprintf(buf, sizeof(buf), fmt, "v2");
	assert_true(judge(buf).pass);
}

/* A read that saw the new value, then a later read that saw the old:
 * each read alone is possible, together they are not. */
static void test_new_old_inversion(void **state)
{
	(void)state;
	struct check_report r = judge(
		"history 1\n"
		"invoke c1-1 10 put a v1\n"
		"ok c1-1 20\n"
		"invoke c1-2 30 put a v2\n"
		"invoke c2-1 35 get a\n"
		"ok c2-1 38 v2\n"
		"invoke c3-1 40 get a\n"
		"ok c3-1 45 v1\n"
		"ok c1-2 50\n");
	assert_false(r.pass);
	assert_int_equal(r.keys_bad, 1);
	assert_non_null(strstr(r.problem, "no order"));
}

/* An unknown outcome may have taken effect, or not, at any later time. */
static void test_unknown_write(void **state)
{
	(void)state;
	const char *fmt =
		"history 1\n"
		"invoke c1-1 10 put a v1\n"
		"ok c1-1 20\n"
		"invoke c1-2 30 put a v2\n"
		"%s"
		"invoke v-1 500 get a\n"
		"ok v-1 600 %s\n";
	char buf[512];
	snprintf(buf, sizeof(buf), fmt, "info c1-2 40\n", "v2");
	assert_true(judge(buf).pass);
	snprintf(buf, sizeof(buf), fmt, "info c1-2 40\n", "v1");
	assert_true(judge(buf).pass);
	snprintf(buf, sizeof(buf), fmt, "", "v2"); /* never completed */
	struct check_report r = judge(buf);
	assert_true(r.pass);
	assert_int_equal(r.unknown, 1);
	/* A failed write did not happen: reading its value is wrong. */
	snprintf(buf, sizeof(buf), fmt, "fail c1-2 40\n", "v2");
	r = judge(buf);
	assert_false(r.pass);
	assert_int_equal(r.failed, 1);
}

static void test_value_never_written(void **state)
{
	(void)state;
	struct check_report r = judge(
		"history 1\n"
		"invoke c1-1 10 put a v1\n"
		"ok c1-1 20\n"
		"invoke c1-2 30 get a\n"
		"ok c1-2 40 garbage\n");
	assert_false(r.pass);
	assert_non_null(strstr(r.problem, "which no operation wrote"));
}

static void test_nothing_acknowledged(void **state)
{
	(void)state;
	struct check_report r = judge(
		"history 1\n"
		"start 1\n"
		"invoke c1-1 10 put a v1\n"
		"info c1-1 20\n"
		"invoke c1-2 30 get a\n"
		"ok c1-2 40 -\n"
		"end 100\n");
	assert_false(r.pass);
	assert_string_equal(r.verdict, "nothing was acknowledged");
	r = judge("history 1\n");
	assert_false(r.pass);
	assert_int_equal(r.ops, 0);
}

static void test_outage(void **state)
{
	(void)state;
	/* oks at 20, 40 ms; a gap to 90 ms; the load ends at 100 ms. */
	struct check_report r = judge(
		"history 1\n"
		"start 10000000\n"
		"invoke c1-1 10000000 put a v1\n"
		"ok c1-1 20000000\n"
		"invoke c1-2 30000000 put a v2\n"
		"ok c1-2 40000000\n"
		"invoke c1-3 45000000 put a v3\n"
		"ok c1-3 90000000\n"
		"end 100000000\n");
	assert_true(r.pass);
	assert_int_equal(r.outage_ns, 50000000);
	assert_int_equal(r.outage_from_ns, 30000000);
	assert_false(r.outage_trailing);
	/* The same load whose last answer never came: the outage runs to
	 * the end and is counted. */
	r = judge(
		"history 1\n"
		"start 10000000\n"
		"invoke c1-1 10000000 put a v1\n"
		"ok c1-1 20000000\n"
		"invoke c1-2 30000000 put a v2\n"
		"ok c1-2 40000000\n"
		"invoke c1-3 45000000 put a v3\n"
		"end 100000000\n");
	assert_true(r.pass);
	assert_int_equal(r.outage_ns, 60000000);
	assert_true(r.outage_trailing);
	/* Completions after the end (a verification pass) do not count. */
	r = judge(
		"history 1\n"
		"start 10000000\n"
		"invoke c1-1 10000000 put a v1\n"
		"ok c1-1 20000000\n"
		"end 100000000\n"
		"invoke v-1 200000000 get a\n"
		"ok v-1 210000000 v1\n");
	assert_int_equal(r.outage_ns, 80000000);
	assert_true(r.outage_trailing);
}

static void test_append_incr(void **state)
{
	(void)state;
	struct check_report r = judge(
		"history 1\n"
		"invoke c1-1 10 append l ab\n"
		"ok c1-1 20 2\n"
		"invoke c2-1 15 append l cd\n"
		"ok c2-1 25 4\n"
		"invoke c3-1 30 get l\n"
		"ok c3-1 40 abcd\n"
		"invoke c1-2 50 incr n\n"
		"ok c1-2 60 1\n"
		"invoke c2-2 55 incr n\n"
		"ok c2-2 65 2\n"
		"invoke c3-2 70 get n\n"
		"ok c3-2 80 2\n");
	assert_true(r.pass);
	/* The second append's length contradicts the read order. */
	r = judge(
		"history 1\n"
		"invoke c1-1 10 append l ab\n"
		"ok c1-1 20 2\n"
		"invoke c2-1 15 append l cd\n"
		"ok c2-1 25 4\n"
		"invoke c3-1 30 get l\n"
		"ok c3-1 40 cdab\n");
	assert_false(r.pass);
	/* Two increments both answered 1: one was lost. */
	r = judge(
		"history 1\n"
		"invoke c1-1 10 incr n\n"
		"ok c1-1 20 1\n"
		"invoke c2-1 30 incr n\n"
		"ok c2-1 40 1\n");
	assert_false(r.pass);
}

static void test_many_keys_and_budget(void **state)
{
	(void)state;
	/* 12 concurrent writes of one key and a read of one of them after
	 * all: the search must try orders until that write comes last
	 * (2^12 sets of done writes; real histories have one writer per
	 * key, so this is far beyond a drill's). */
	char *buf = malloc(12 * 96 + 256);
	size_t n = (size_t)sprintf(buf, "history 1\n");
	for (int i = 0; i < 12; i++)
		n += (size_t)sprintf(buf + n, "invoke c%d-1 10 put a v%d\n", i, i);
	for (int i = 0; i < 12; i++)
		n += (size_t)sprintf(buf + n, "ok c%d-1 20\n", i);
	sprintf(buf + n, "invoke v-1 30 get a\nok v-1 40 v7\n");
	struct history h;
	struct kg_err e = { 0 };
	assert_int_equal(parse(&h, buf, &e), 0);
	struct check_report r;
	assert_int_equal(check_history(&h, 0, &r, &e), 0);
	assert_true(r.pass);
	assert_int_equal(check_history(&h, 10, &r, &e), 0);
	assert_false(r.pass);
	assert_int_equal(r.keys_undecided, 1);
	assert_string_equal(r.verdict, "undecided (search limit)");
	history_free(&h);
	free(buf);
}

static void expect_bad(const char *text, const char *msg)
{
	struct history h;
	struct kg_err e = { 0 };
	assert_int_equal(parse(&h, text, &e), -1);
	if (!strstr(e.msg, msg))
		fail_msg("error '%s' lacks '%s'", e.msg, msg);
	history_free(&h);
}

static void test_malformed(void **state)
{
	(void)state;
	expect_bad("", "empty");
	expect_bad("hello\n", "line 1: not a history file");
	expect_bad("history 2\n", "unsupported history version");
	expect_bad("history 1\ninvoke a 10 put k v", "no newline");
	expect_bad("history 1\ninvoke a 10 frob k\n", "line 2: unknown operation");
	expect_bad("history 1\ninvoke a 10 put k\n", "needs a value");
	expect_bad("history 1\ninvoke a 10 get k v\n", "takes no value");
	expect_bad("history 1\ninvoke a 10 put k -\n", "'-'");
	expect_bad("history 1\ninvoke a x put k v\n", "time");
	expect_bad("history 1\ninvoke a 0 put k v\n", "time");
	expect_bad("history 1\nok a 10\n", "never invoked");
	expect_bad("history 1\ninvoke a 10 put k v\ninvoke a 11 put k v\n",
		   "line 3: the id was invoked before");
	expect_bad("history 1\ninvoke a 10 put k v\nok a 20\nok a 30\n",
		   "completed before");
	expect_bad("history 1\ninvoke a 10 put k v\nok a 5\n",
		   "before its invocation");
	expect_bad("history 1\ninvoke a 10 get k\nok a 20\n", "needs a result");
	expect_bad("history 1\ninvoke a 10 put k v\nok a 20 x\n",
		   "takes no result");
	expect_bad("history 1\ninvoke a 10 incr k\nok a 20 x\n", "not a number");
	expect_bad("history 1\ninvoke  a 10 put k v\n", "two spaces");
	expect_bad("history 1\ninvoke a 10 put k v \n", "trailing space");
	expect_bad("history 1\nbogus 1\n", "unknown event");
	expect_bad("history 1\nstart\n", "one time");
	expect_bad("history 1\r\n", "carriage return");
	struct history h;
	struct kg_err e = { 0 };
	memset(&h, 0, sizeof(h));
	assert_int_equal(history_read(&h, "/nonexistent/h", &e), -1);
	assert_non_null(strstr(e.msg, "history /nonexistent/h: No such file"));
	assert_int_equal(history_read(&h, "/", &e), -1);
	assert_non_null(strstr(e.msg, "not a regular file"));
}

/* Several clients appending to one file, each with its own header. */
static void test_shared_file(void **state)
{
	(void)state;
	struct check_report r = judge(
		"history 1\n"
		"start 5\n"
		"history 1\n"
		"start 3\n"
		"invoke c1-1 10 put a v1\n"
		"invoke c2-1 11 put b w1\n"
		"ok c1-1 20\n"
		"ok c2-1 21\n"
		"end 50\n"
		"end 60\n");
	assert_true(r.pass);
	assert_int_equal(r.keys, 2);
	assert_int_equal(r.window_ns, 57);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sequential_ok),
		cmocka_unit_test(test_lost_write),
		cmocka_unit_test(test_lost_write_overwritten),
		cmocka_unit_test(test_concurrent_read_either),
		cmocka_unit_test(test_new_old_inversion),
		cmocka_unit_test(test_unknown_write),
		cmocka_unit_test(test_value_never_written),
		cmocka_unit_test(test_nothing_acknowledged),
		cmocka_unit_test(test_outage),
		cmocka_unit_test(test_append_incr),
		cmocka_unit_test(test_many_keys_and_budget),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_shared_file),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
