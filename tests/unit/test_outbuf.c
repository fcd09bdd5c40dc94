/* The output rule's buffer: held, sealed per epoch, released in order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "vmm/outbuf.h"

struct sink {
	char out[256];
	size_t len;
};

static void emit(void *ctx, const void *buf, size_t len)
{
	struct sink *s = ctx;
	memcpy(s->out + s->len, buf, len);
	s->len += len;
	s->out[s->len] = 0;
}

static struct outbuf *mk(void)
{
	struct kg_err e;
	struct outbuf *o = outbuf_new(1 << 20, &e);
	assert_non_null(o);
	return o;
}

static void test_not_holding_emits_at_once(void **state)
{
	(void)state;
	struct outbuf *o = mk();
	struct sink s = { "", 0 };
	outbuf_put(o, emit, &s, "a", 1);
	assert_string_equal(s.out, "a");
	outbuf_free(o);
}

static void test_release_by_epoch(void **state)
{
	(void)state;
	struct outbuf *o = mk();
	struct sink s = { "", 0 };
	outbuf_hold(o, true);
	outbuf_put(o, emit, &s, "a", 1);
	outbuf_seal(o, 5);
	outbuf_put(o, emit, &s, "b", 1);
	outbuf_seal(o, 6);
	outbuf_put(o, emit, &s, "c", 1); /* open */
	/* An acknowledgement older than everything held releases nothing. */
	outbuf_release(o, 4);
	assert_string_equal(s.out, "");
	outbuf_release(o, 5);
	assert_string_equal(s.out, "a");
	outbuf_release(o, 5); /* again: nothing */
	assert_string_equal(s.out, "a");
	outbuf_release(o, 100); /* never the open epoch */
	assert_string_equal(s.out, "ab");
	struct outbuf_stats st;
	outbuf_stats(o, &st);
	assert_int_equal(st.held_items, 1);
	assert_int_equal(st.released, 2);
	outbuf_release_all(o);
	assert_string_equal(s.out, "abc");
	outbuf_free(o);
}

static void test_reseal_and_discard(void **state)
{
	(void)state;
	struct outbuf *o = mk();
	struct sink s = { "", 0 };
	outbuf_hold(o, true);
	outbuf_put(o, emit, &s, "a", 1);
	outbuf_seal(o, 40); /* an old session's numbering */
	outbuf_put(o, emit, &s, "b", 1);
	outbuf_reseal(o, 3); /* a new session's first epoch */
	outbuf_release(o, 2);
	assert_string_equal(s.out, "");
	outbuf_release(o, 3);
	assert_string_equal(s.out, "ab");
	outbuf_put(o, emit, &s, "x", 1);
	outbuf_discard(o);
	assert_false(outbuf_holding(o));
	outbuf_put(o, emit, &s, "y", 1);
	assert_string_equal(s.out, "aby");
	outbuf_free(o);
}

static void test_full_drops(void **state)
{
	(void)state;
	struct kg_err e;
	struct outbuf *o = outbuf_new(4, &e);
	struct sink s = { "", 0 };
	outbuf_hold(o, true);
	outbuf_put(o, emit, &s, "abc", 3);
	outbuf_put(o, emit, &s, "de", 2); /* over 4 bytes: dropped */
	struct outbuf_stats st;
	outbuf_stats(o, &st);
	assert_int_equal(st.dropped, 1);
	outbuf_hold(o, false); /* releases what is held */
	assert_string_equal(s.out, "abc");
	outbuf_free(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_not_holding_emits_at_once),
		cmocka_unit_test(test_release_by_epoch),
		cmocka_unit_test(test_reseal_and_discard),
		cmocka_unit_test(test_full_drops),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
