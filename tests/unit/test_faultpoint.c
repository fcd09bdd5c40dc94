/* Test fault points (base/faultpoint.c): parsing and lookup. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "base/faultpoint.h"

static void test_parse_and_hit(void **state)
{
	(void)state;
	struct kg_faults f = { 0 };
	struct kg_err e = { 0 };
	assert_int_equal(kg_faults_parse("replay.corrupt=at:1234,migrate.handover=fail",
					 &f, &e), 0);
	assert_int_equal(f.n, 2);
	uint64_t at = 0;
	assert_true(kg_fault_hit(&f, "replay.corrupt", &at));
	assert_int_equal(at, 1234);
	assert_true(kg_fault_hit(&f, "migrate.handover", NULL));
	assert_false(kg_fault_hit(&f, "receive.go", NULL));
	assert_false(kg_fault_hit(NULL, "receive.go", NULL));
	/* Specs add up. */
	assert_int_equal(kg_faults_parse("receive.go=fail", &f, &e), 0);
	assert_int_equal(f.n, 3);
	assert_true(kg_fault_hit(&f, "receive.go", NULL));
}

static void expect_bad(const char *spec, const char *want)
{
	struct kg_faults f = { 0 };
	struct kg_err e = { 0 };
	assert_int_equal(kg_faults_parse(spec, &f, &e), -1);
	if (!strstr(e.msg, want))
		fail_msg("'%s': '%s' lacks '%s'", spec, e.msg, want);
	assert_int_equal(e.kind, KG_ERR_INVALID);
}

static void test_bad_specs(void **state)
{
	(void)state;
	expect_bad("receive.go", "want POINT=kill|fail|at:N");
	expect_bad("=kill", "want POINT");
	expect_bad("receive.go=explode", "kill, fail or at:N");
	expect_bad("replay.corrupt=at:", "kill, fail or at:N");
	expect_bad("replay.corrupt=at:x1", "bad count");
	expect_bad("replay.corrupt=at:-1", "bad count");
	expect_bad("a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q=kill", "want POINT");
	expect_bad("a=kill,b=kill,c=kill,d=kill,e=kill,f=kill,g=kill,h=kill,i=kill",
		   "at most 8");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_and_hit),
		cmocka_unit_test(test_bad_specs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
