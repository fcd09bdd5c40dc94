/*
 * Guest RAM loaded lazily through userfaultfd (vmm/mem_lazy.h), without a
 * VM: the test's own threads touch RAM as the VMM's would, and a fake
 * source stands for the snapshot file (pattern pages, zero pages, a page
 * that fails). Skips where userfaultfd is refused to this process (it
 * needs root or /dev/userfaultfd), fails then under CI=true.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/clock.h"
#include "vmm/mem.h"
#include "vmm/mem_lazy.h"

#define PAGE 4096u
#define RAM (8u << 20)

struct fake {
	uint64_t fail_page;    /* UINT64_MAX: none */
	unsigned delay_us;     /* per read */
	atomic_uint reads, failed, released;
	char why[512];
};

static bool is_zero_page(uint64_t pg)
{
	return pg % 3 == 1; /* a third of RAM holds zeros */
}

static void fill(uint8_t *p, uint64_t pg)
{
	for (unsigned i = 0; i < PAGE / 8; i++) {
		uint64_t v = pg * 0x9e3779b97f4a7c15ull ^ i;
		memcpy(p + i * 8, &v, 8);
	}
}

static int fake_read(void *ctx, uint64_t first, unsigned n, uint8_t *buf,
		     uint64_t zero[MEM_LAZY_BATCH / 64], struct kg_err *e)
{
	struct fake *f = ctx;
	atomic_fetch_add(&f->reads, 1);
	if (f->delay_us)
		usleep(f->delay_us);
	for (unsigned i = 0; i < n; i++) {
		if (first + i == f->fail_page)
			return kg_errk(e, KG_ERR_CORRUPT, "page 0x%llx damaged",
				       (unsigned long long)(first + i) * PAGE);
		if (is_zero_page(first + i))
			zero[i / 64] |= 1ull << (i % 64);
		else
			fill(buf + (size_t)i * PAGE, first + i);
	}
	return 0;
}

static void fake_failed(void *ctx, const struct kg_err *e)
{
	struct fake *f = ctx;
	snprintf(f->why, sizeof(f->why), "%s", e->msg);
	atomic_fetch_add(&f->failed, 1);
}

static void fake_release(void *ctx)
{
	struct fake *f = ctx;
	atomic_fetch_add(&f->released, 1);
}

static struct mem_source source(struct fake *f)
{
	return (struct mem_source){ .read = fake_read, .failed = fake_failed,
				    .release = fake_release, .ctx = f };
}

/* Starts a lazy load, or skips where userfaultfd is not ours. */
static bool start(struct guest_mem *m, struct fake *f, unsigned delay_ms)
{
	struct kg_err e = { 0 };
	if (guest_mem_init(m, RAM, &e) < 0)
		fail_msg("guest_mem_init: %s", e.msg);
	struct mem_source src = source(f);
	struct mem_lazy_opts o = { .prefetch_delay_ms = delay_ms };
	if (guest_mem_lazy_start(m, &src, &o, &e) == 0)
		return true;
	const char *ci = getenv("CI");
	if (e.kind != KG_ERR_INVALID || (ci && !strcmp(ci, "true")))
		fail_msg("guest_mem_lazy_start: %s", e.msg);
	guest_mem_destroy(m);
	return false;
}

static void check_page(const struct guest_mem *m, uint64_t pg)
{
	uint8_t want[PAGE];
	if (is_zero_page(pg))
		memset(want, 0, PAGE);
	else
		fill(want, pg);
	if (memcmp(m->base + pg * PAGE, want, PAGE))
		fail_msg("page %llu holds the wrong bytes",
			 (unsigned long long)pg);
}

/* Every page, read as the VMM would while the background load runs:
 * the source's bytes, zeros where it said so; then the load ends, RAM
 * is an ordinary memfd again and the source is released. */
static void test_lazy_contents(void **state)
{
	(void)state;
	struct guest_mem m;
	struct fake f = { .fail_page = UINT64_MAX };
	if (!start(&m, &f, 0))
		skip();
	assert_true(guest_mem_lazy(&m));
	for (uint64_t pg = RAM / PAGE; pg-- > 0;)
		check_page(&m, pg); /* backwards: against the load's order */
	struct kg_err e = { 0 };
	assert_int_equal(guest_mem_lazy_wait(&m, &e), 0);
	assert_false(guest_mem_lazy(&m));
	assert_int_equal(atomic_load(&f.released), 1);
	assert_int_equal(atomic_load(&f.failed), 0);
	struct mem_lazy_stats st;
	assert_true(guest_mem_lazy_stats(&m, &st));
	uint64_t data = 0;
	for (uint64_t pg = 0; pg < RAM / PAGE; pg++)
		data += !is_zero_page(pg);
	assert_int_equal(st.pages, data);
	assert_true(st.done_ns > 0);
	/* Writable, and what is written stays. */
	memset(m.base + 5 * PAGE, 0xab, PAGE);
	assert_int_equal(m.base[5 * PAGE + 17], 0xab);
	guest_mem_destroy(&m);
	assert_int_equal(atomic_load(&f.released), 1);
}

/* Without the background load (held back), a touched page comes in on
 * demand with its batch only; zero pages untouched are never copied. */
static void test_lazy_on_demand(void **state)
{
	(void)state;
	struct guest_mem m;
	struct fake f = { .fail_page = UINT64_MAX };
	if (!start(&m, &f, 60000))
		skip();
	check_page(&m, 1000); /* a zero page */
	check_page(&m, 1001);
	/* The counts follow the copy that woke this thread. */
	struct mem_lazy_stats st;
	for (int i = 0; i < 100; i++) {
		assert_true(guest_mem_lazy_stats(&m, &st));
		if (st.zero_pages == 1 && st.pages)
			break;
		usleep(10000);
	}
	assert_true(st.pages > 0 && st.pages <= MEM_LAZY_FAULT_BATCH);
	assert_int_equal(st.zero_pages, 1);
	assert_true(guest_mem_lazy(&m));
	/* The delay does not hold up the end. */
	uint64_t t0 = kg_now_ns();
	guest_mem_destroy(&m);
	assert_true(kg_now_ns() - t0 < 2000000000ull);
	assert_int_equal(atomic_load(&f.released), 1);
}

/* A page the source cannot give: the failure is reported once, the
 * thread that touched it is not left waiting (it reads zeros: the VM is
 * being stopped), and waiting for the load returns the error. */
static void test_lazy_failure(void **state)
{
	(void)state;
	struct guest_mem m;
	struct fake f = { .fail_page = 700 };
	if (!start(&m, &f, 60000))
		skip();
	check_page(&m, 5);
	assert_int_equal(m.base[700 * PAGE + 8], 0); /* does not hang */
	struct kg_err e = { 0 };
	assert_int_equal(guest_mem_lazy_wait(&m, &e), -1);
	assert_int_equal(e.kind, KG_ERR_CORRUPT);
	assert_non_null(strstr(e.msg, "page 0x2bc000 damaged"));
	assert_int_equal(atomic_load(&f.failed), 1);
	assert_string_equal(f.why, e.msg);
	assert_true(guest_mem_lazy(&m)); /* holes are not the snapshot */
	m.base[800 * PAGE] = 1; /* after the failure: no waiting either */
	guest_mem_destroy(&m);
	assert_int_equal(atomic_load(&f.failed), 1);
	assert_int_equal(atomic_load(&f.released), 1);
}

/* The background load meets the failure by itself. */
static void test_lazy_failure_background(void **state)
{
	(void)state;
	struct guest_mem m;
	struct fake f = { .fail_page = RAM / PAGE - 3 };
	if (!start(&m, &f, 0))
		skip();
	struct kg_err e = { 0 };
	assert_int_equal(guest_mem_lazy_wait(&m, &e), -1);
	assert_non_null(strstr(e.msg, "damaged"));
	assert_int_equal(atomic_load(&f.failed), 1);
	guest_mem_destroy(&m);
}

struct toucher {
	struct guest_mem *m;
	unsigned seed;
};

static void *touch(void *arg)
{
	struct toucher *t = arg;
	for (int i = 0; i < 400; i++) {
		t->seed = t->seed * 1103515245u + 12345u;
		uint64_t pg = (t->seed >> 8) % (RAM / PAGE);
		uint8_t want[PAGE];
		if (is_zero_page(pg))
			memset(want, 0, PAGE);
		else
			fill(want, pg);
		if (memcmp(t->m->base + pg * PAGE, want, PAGE))
			return (void *)1;
	}
	return NULL;
}

/* Faults from several threads race the background load (slowed down):
 * every page read is right, whoever brought it in. */
static void test_lazy_concurrent(void **state)
{
	(void)state;
	struct guest_mem m;
	struct fake f = { .fail_page = UINT64_MAX, .delay_us = 200 };
	if (!start(&m, &f, 0))
		skip();
	pthread_t th[4];
	struct toucher t[4];
	for (unsigned i = 0; i < 4; i++) {
		t[i] = (struct toucher){ &m, i + 1 };
		pthread_create(&th[i], NULL, touch, &t[i]);
	}
	for (unsigned i = 0; i < 4; i++) {
		void *r;
		pthread_join(th[i], &r);
		assert_null(r);
	}
	struct kg_err e = { 0 };
	assert_int_equal(guest_mem_lazy_wait(&m, &e), 0);
	for (uint64_t pg = 0; pg < RAM / PAGE; pg++)
		check_page(&m, pg);
	guest_mem_destroy(&m);
}

/* A reset while loading: the load stops, RAM is zeros, nothing of the
 * source comes in after. */
static void test_lazy_clear(void **state)
{
	(void)state;
	struct guest_mem m;
	struct fake f = { .fail_page = UINT64_MAX };
	if (!start(&m, &f, 60000))
		skip();
	check_page(&m, 2);
	struct kg_err e = { 0 };
	assert_int_equal(guest_mem_clear(&m, &e), 0);
	assert_int_equal(atomic_load(&f.released), 1);
	assert_false(guest_mem_lazy(&m));
	for (uint64_t pg = 0; pg < RAM / PAGE; pg += 97)
		assert_int_equal(m.base[pg * PAGE + 9], 0);
	guest_mem_destroy(&m);
}

/* The fallback without userfaultfd: every page now. */
static void test_eager(void **state)
{
	(void)state;
	struct guest_mem m;
	struct kg_err e = { 0 };
	struct fake f = { .fail_page = UINT64_MAX };
	assert_int_equal(guest_mem_init(&m, RAM, &e), 0);
	struct mem_source src = source(&f);
	assert_int_equal(guest_mem_load_eager(&m, &src, &e), 0);
	for (uint64_t pg = 0; pg < RAM / PAGE; pg++)
		check_page(&m, pg);
	guest_mem_destroy(&m);
	f.fail_page = 9;
	assert_int_equal(guest_mem_init(&m, RAM, &e), 0);
	assert_int_equal(guest_mem_load_eager(&m, &src, &e), -1);
	assert_non_null(strstr(e.msg, "page 0x9000 damaged"));
	guest_mem_destroy(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lazy_contents),
		cmocka_unit_test(test_lazy_on_demand),
		cmocka_unit_test(test_lazy_failure),
		cmocka_unit_test(test_lazy_failure_background),
		cmocka_unit_test(test_lazy_concurrent),
		cmocka_unit_test(test_lazy_clear),
		cmocka_unit_test(test_eager),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
