/*
 * What a peer can make a receiver hold (base/budget.h): the budget's own
 * arithmetic; the stream reader refusing a section that declares more
 * than the budget before allocating it; an epoch receiver refusing an
 * epoch that stages more than the budget, with one line, its memory
 * bounded throughout and all of it given back. No KVM: the streams are
 * written here, into files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/budget.h"
#include "ft/checkpoint/epoch.h"
#include "ft/checkpoint/stream.h"
#include "ft/checkpoint/vm_state.h"

#define MiB (1ull << 20)

static void one_line(const char *msg)
{
	assert_null(strchr(msg, '\n'));
	assert_true(strlen(msg) > 0);
}

static void test_budget_arithmetic(void **state)
{
	(void)state;
	struct kg_budget b;
	struct kg_err e = { 0 };
	kg_budget_init(&b, 10 * MiB);
	assert_int_equal(kg_budget_charge(&b, 4 * MiB, "a", &e), 0);
	assert_int_equal(kg_budget_charge(&b, 6 * MiB, "b", &e), 0);
	assert_int_equal(kg_budget_charge(&b, 1, "section 7 (ram-pages #0)", &e),
			 -1);
	assert_int_equal(e.kind, KG_ERR_CORRUPT);
	assert_non_null(strstr(e.msg, "section 7 (ram-pages #0) would hold 1 "
			       "bytes more with 10485760 held: beyond the "
			       "stream memory budget of 10 MiB "
			       "(--max-stream-memory)"));
	one_line(e.msg);
	kg_budget_release(&b, 6 * MiB);
	assert_int_equal(atomic_load(&b.used), 4 * MiB);
	assert_int_equal(atomic_load(&b.peak), 10 * MiB);
	/* no wrap-around for a huge request */
	assert_int_equal(kg_budget_charge(&b, UINT64_MAX - 1, "c", &e), -1);
	assert_int_equal(atomic_load(&b.used), 4 * MiB);
	/* NULL: unlimited */
	assert_int_equal(kg_budget_charge(NULL, UINT64_MAX, "d", &e), 0);
	kg_budget_release(NULL, 5);
	assert_int_equal(kg_budget_default(256 * MiB), 576 * MiB);
}

static int tmpfile_fd(void)
{
	char path[] = "/tmp/kg_budget.XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	return fd;
}

/* Header and configuration of a 64 MiB VM. */
static void start_stream(struct kg_stream_writer *w, int fd)
{
	struct kg_err e = { 0 };
	struct vm_state_config c = { .mem_size = 64 * MiB, .ncpus = 1 };
	kg_writer_init(w, fd, NULL, "test");
	assert_int_equal(kg_writer_header(w, NULL, &e), 0);
	assert_int_equal(vm_state_put_config(w, &c, &e), 0);
}

/* A section header that declares len bytes, followed by only a few: a
 * peer that announces a large section and sends little of it. */
static void announce(int fd, uint16_t kind, uint64_t len)
{
	struct kg_section s = { .kind = kind, .version = 1, .length = len };
	uint8_t hb[KG_SECTION_HEADER_SIZE], some[100] = { 0 };
	kg_section_header_encode(&s, hb);
	assert_int_equal(write(fd, hb, sizeof(hb)), (ssize_t)sizeof(hb));
	assert_int_equal(write(fd, some, sizeof(some)), (ssize_t)sizeof(some));
}

/* A section announcing 1 GiB is refused before a byte of it is read or
 * allocated; within the budget a section is charged until freed. */
static void test_reader_refuses_unread(void **state)
{
	(void)state;
	int fd = tmpfile_fd();
	struct kg_stream_writer w;
	struct kg_err e = { 0 };
	start_stream(&w, fd);
	uint8_t small[4096] = { 1 };
	assert_int_equal(kg_writer_section(&w, KG_SEC_EXEC_LOG, 0, 1, small,
					   sizeof(small), &e), 0);
	announce(fd, KG_SEC_EXEC_LOG, 1ull << 30);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);

	struct kg_budget b;
	kg_budget_init(&b, 64 * MiB);
	struct kg_stream_reader r;
	kg_reader_init(&r, fd, NULL);
	kg_reader_set_budget(&r, &b);
	assert_ptr_equal(kg_reader_budget(&r), &b);
	struct kg_section s;
	assert_int_equal(kg_reader_header(&r, NULL, &e), 0);
	assert_int_equal(kg_reader_next(&r, &s, &e), 1);
	assert_int_equal(kg_section_finish(&r, &e), 0); /* the config */
	assert_int_equal(kg_reader_next(&r, &s, &e), 1);
	uint8_t *p = kg_section_read_all(&r, &s, &e);
	assert_non_null(p);
	assert_int_equal(atomic_load(&b.used), sizeof(small));
	kg_section_free(&r, p, s.length);
	assert_int_equal(atomic_load(&b.used), 0);
	assert_int_equal(kg_reader_next(&r, &s, &e), 1);
	uint64_t at = r.offset;
	assert_null(kg_section_read_all(&r, &s, &e));
	assert_int_equal(e.kind, KG_ERR_CORRUPT);
	assert_non_null(strstr(e.msg, "section 2 (exec-log #0) at offset"));
	assert_non_null(strstr(e.msg, "would hold 1073741824 bytes more"));
	assert_non_null(strstr(e.msg, "beyond the stream memory budget of 64 MiB"));
	one_line(e.msg);
	assert_int_equal(r.offset, at); /* nothing of it read */
	assert_int_equal(atomic_load(&b.used), 0);
	assert_true(atomic_load(&b.peak) <= sizeof(small));
	/* the reader is failed: a stream that went wrong is not read on */
	assert_int_equal(kg_reader_next(&r, &s, &e), -1);
	close(fd);
}

/* An epoch's sections are staged until its end: a peer sending many
 * (here 1 MiB ones, never ending the epoch) is refused once they would
 * exceed the budget, with the staged memory bounded by it; freeing the
 * receiver gives everything back. A large enough budget lets the same
 * sections in (the stream then just ends, cut inside the epoch). */
static int stage_many(uint64_t limit, unsigned nsections, struct kg_budget *b,
		      struct kg_err *e)
{
	int fd = tmpfile_fd();
	struct kg_stream_writer w;
	start_stream(&w, fd);
	uint64_t begin[2] = { 1, 0 }; /* seq 1, paused: staged */
	assert_int_equal(kg_writer_section(&w, KG_SEC_EPOCH_BEGIN, 0, 2, begin,
					   sizeof(begin), e), 0);
	uint8_t *pl = calloc(1, MiB);
	for (unsigned i = 0; i < nsections; i++)
		assert_int_equal(kg_writer_section(&w, KG_SEC_RAM_PAGES, 0, 1,
						   pl, MiB, e), 0);
	free(pl);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	struct vm_state_config c;
	struct epoch_receiver *er = epoch_receiver_new(fd, &c, e);
	assert_non_null(er);
	assert_int_equal(c.mem_size, 64 * MiB);
	kg_budget_init(b, limit);
	kg_reader_set_budget(epoch_receiver_reader(er), b);
	struct epoch_stats st;
	int rc = epoch_receive(er, &st, e);
	assert_false(st.apply_failed);
	epoch_receiver_free(er);
	assert_int_equal(atomic_load(&b->used), 0);
	close(fd);
	return rc;
}

static void test_epoch_staging_bounded(void **state)
{
	(void)state;
	struct kg_budget b;
	struct kg_err e = { 0 };
	assert_int_equal(stage_many(32 * MiB, 100, &b, &e), -1);
	assert_int_equal(e.kind, KG_ERR_CORRUPT);
	assert_non_null(strstr(e.msg, "(ram-pages #0)"));
	assert_non_null(strstr(e.msg, "beyond the stream memory budget of "
			       "32 MiB (--max-stream-memory)"));
	one_line(e.msg);
	assert_true(atomic_load(&b.peak) <= 32 * MiB);
	assert_true(atomic_load(&b.peak) > 30 * MiB);

	memset(&e, 0, sizeof(e));
	assert_int_equal(stage_many(256 * MiB, 100, &b, &e), -1);
	assert_null(strstr(e.msg, "budget"));
	if (!strstr(e.msg, "missing end marker"))
		fail_msg("%s", e.msg);
	assert_true(atomic_load(&b.peak) > 100 * MiB);
}

/* One section announcing 1 GiB in an epoch: refused unread. */
static void test_epoch_huge_section(void **state)
{
	(void)state;
	int fd = tmpfile_fd();
	struct kg_stream_writer w;
	struct kg_err e = { 0 };
	start_stream(&w, fd);
	uint64_t begin[2] = { 1, 0 };
	assert_int_equal(kg_writer_section(&w, KG_SEC_EPOCH_BEGIN, 0, 2, begin,
					   sizeof(begin), &e), 0);
	announce(fd, KG_SEC_RAM_PAGES, 1ull << 30);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	struct vm_state_config c;
	struct epoch_receiver *er = epoch_receiver_new(fd, &c, &e);
	assert_non_null(er);
	struct kg_budget b;
	kg_budget_init(&b, kg_budget_default(c.mem_size));
	kg_reader_set_budget(epoch_receiver_reader(er), &b);
	struct epoch_stats st;
	assert_int_equal(epoch_receive(er, &st, &e), -1);
	assert_int_equal(e.kind, KG_ERR_CORRUPT);
	assert_non_null(strstr(e.msg, "(ram-pages #0)"));
	assert_non_null(strstr(e.msg, "would hold 1073741824 bytes more"));
	assert_non_null(strstr(e.msg, "192 MiB"));
	one_line(e.msg);
	assert_true(atomic_load(&b.peak) < MiB);
	epoch_receiver_free(er);
	assert_int_equal(atomic_load(&b.used), 0);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_budget_arithmetic),
		cmocka_unit_test(test_reader_refuses_unread),
		cmocka_unit_test(test_epoch_staging_bounded),
		cmocka_unit_test(test_epoch_huge_section),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
