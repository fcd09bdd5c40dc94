/*
 * Unit tests for the small pure pieces: console_parse (vmm/console.h),
 * bus_add/bus_find (vmm/bus.h), the error helpers (base/err.h) and
 * fault_frame_format (vmm/devices.h).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "abi/kagami_platform.h"
#include "vmm/bus.h"
#include "vmm/console.h"
#include "vmm/devices.h"
#include "base/err.h"

#define has(hay, needle)                                                  \
	do {                                                              \
		if (!strstr((hay), (needle)))                             \
			fail_msg("'%s' lacks '%s'", (hay), (needle));     \
	} while (0)

/* --- console_parse --- */

static void test_console_simple(void **state)
{
	(void)state;
	struct console_spec s;
	struct kg_err e = { 0 };
	memset(&s, 0x77, sizeof(s));
	assert_int_equal(console_parse("stdio", &s, &e), 0);
	assert_int_equal(s.kind, CONSOLE_STDIO);
	assert_string_equal(s.path, "");
	memset(&s, 0x77, sizeof(s));
	assert_int_equal(console_parse("none", &s, &e), 0);
	assert_int_equal(s.kind, CONSOLE_NONE);
	assert_string_equal(s.path, "");
}

static void test_console_paths(void **state)
{
	(void)state;
	struct console_spec s;
	struct kg_err e = { 0 };
	assert_int_equal(console_parse("file:/tmp/guest.log", &s, &e), 0);
	assert_int_equal(s.kind, CONSOLE_FILE);
	assert_string_equal(s.path, "/tmp/guest.log");
	assert_int_equal(console_parse("unix:/run/kagami/c.sock", &s, &e), 0);
	assert_int_equal(s.kind, CONSOLE_UNIX);
	assert_string_equal(s.path, "/run/kagami/c.sock");
	/* relative paths and colons inside the path are kept as given */
	assert_int_equal(console_parse("file:out.txt", &s, &e), 0);
	assert_string_equal(s.path, "out.txt");
	assert_int_equal(console_parse("file:unix:x", &s, &e), 0);
	assert_int_equal(s.kind, CONSOLE_FILE);
	assert_string_equal(s.path, "unix:x");
	assert_int_equal(console_parse("unix:a:b", &s, &e), 0);
	assert_string_equal(s.path, "a:b");
}

static void test_console_empty_path(void **state)
{
	(void)state;
	struct console_spec s;
	struct kg_err e = { 0 };
	assert_int_equal(console_parse("file:", &s, &e), -1);
	has(e.msg, "empty path");
	e.msg[0] = '\0';
	assert_int_equal(console_parse("unix:", &s, &e), -1);
	has(e.msg, "empty path");
	has(e.msg, "'unix:'");
}

static void test_console_path_length(void **state)
{
	(void)state;
	struct console_spec s;
	struct kg_err e = { 0 };
	char arg[5 + 300];
	/* the longest path that fits sun_path with its NUL */
	memcpy(arg, "unix:", 5);
	memset(arg + 5, 'p', sizeof(s.path) - 1);
	arg[5 + sizeof(s.path) - 1] = '\0';
	assert_int_equal(console_parse(arg, &s, &e), 0);
	assert_int_equal(strlen(s.path), sizeof(s.path) - 1);
	assert_int_equal(s.kind, CONSOLE_UNIX);
	/* one more is refused */
	memset(arg + 5, 'p', sizeof(s.path));
	arg[5 + sizeof(s.path)] = '\0';
	assert_int_equal(console_parse(arg, &s, &e), -1);
	has(e.msg, "path longer than 107 bytes");
	/* far too long, for file: too; the message stays bounded */
	memcpy(arg, "file:", 5);
	memset(arg + 5, 'q', 299);
	arg[5 + 299] = '\0';
	assert_int_equal(console_parse(arg, &s, &e), -1);
	has(e.msg, "longer than");
	assert_true(strlen(e.msg) < sizeof(e.msg));
}

static void test_console_junk(void **state)
{
	(void)state;
	static const char *const junk[] = {
		"", "std", "stdio ", " stdio", "STDIO", "Stdio", "stdio2",
		"none:", "nothing", "file", "unix", "FILE:/x", "tcp:1234",
		"file;/x", ":/x",
	};
	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
		struct console_spec s;
		struct kg_err e = { 0 };
		if (console_parse(junk[i], &s, &e) != -1)
			fail_msg("'%s' accepted", junk[i]);
		has(e.msg, "expected stdio, none, file:PATH or unix:PATH");
	}
	struct console_spec s;
	assert_int_equal(console_parse("junk", &s, NULL), -1);
}

/* --- bus --- */

static uint8_t opaque_a, opaque_b;
static const struct bus_dev_ops ops_a, ops_b;

static void test_bus_add_find(void **state)
{
	(void)state;
	static struct bus b;
	memset(&b, 0, sizeof(b));
	b.name = "pio";
	struct kg_err e = { 0 };
	assert_null(bus_find(&b, 0x3f8, 1)); /* empty bus */
	assert_int_equal(bus_add(&b, 0x3f8, 8, &ops_a, &opaque_a, "com1", &e),
			 0);
	assert_int_equal(bus_add(&b, 0xcf9, 1, &ops_b, &opaque_b, "reset", &e),
			 0);
	assert_int_equal(b.n, 2);
	const struct bus_range *r = bus_find(&b, 0x3f8, 1);
	assert_non_null(r);
	assert_int_equal(r->base, 0x3f8);
	assert_int_equal(r->len, 8);
	assert_ptr_equal(r->ops, &ops_a);
	assert_ptr_equal(r->opaque, &opaque_a);
	assert_string_equal(r->name, "com1");
	assert_ptr_equal(bus_find(&b, 0x3ff, 1), r);
	assert_ptr_equal(bus_find(&b, 0x3fc, 4), r);
	assert_ptr_equal(bus_find(&b, 0x3f8, 8), r);
	r = bus_find(&b, 0xcf9, 1);
	assert_non_null(r);
	assert_string_equal(r->name, "reset");
	assert_ptr_equal(r->opaque, &opaque_b);
	/* outside any range */
	assert_null(bus_find(&b, 0x3f7, 1));
	assert_null(bus_find(&b, 0x400, 1));
	assert_null(bus_find(&b, 0xcf8, 1));
	assert_null(bus_find(&b, 0xcfa, 1));
	assert_null(bus_find(&b, 0, 1));
	assert_null(bus_find(&b, UINT64_MAX, 1));
}

static void test_bus_straddle(void **state)
{
	(void)state;
	static struct bus b;
	memset(&b, 0, sizeof(b));
	b.name = "pio";
	struct kg_err e = { 0 };
	assert_int_equal(bus_add(&b, 0x3f8, 8, &ops_a, NULL, "com1", &e), 0);
	assert_int_equal(bus_add(&b, 0x400, 8, &ops_b, NULL, "next", &e), 0);
	/* an access running past the end of a range is no one's */
	assert_null(bus_find(&b, 0x3ff, 2));
	assert_null(bus_find(&b, 0x3fe, 4));
	assert_null(bus_find(&b, 0x3f8, 9));
	/* nor one starting before it */
	assert_null(bus_find(&b, 0x3f7, 2));
	/* nor one spanning two adjacent ranges */
	assert_null(bus_find(&b, 0x3fc, 8));
	/* a huge size must not wrap */
	assert_null(bus_find(&b, 0x3f9, UINT32_MAX));
	assert_non_null(bus_find(&b, 0x3fe, 2));
	assert_non_null(bus_find(&b, 0x404, 4));
}

static void test_bus_overlap(void **state)
{
	(void)state;
	static struct bus b;
	memset(&b, 0, sizeof(b));
	b.name = "mmio";
	struct kg_err e = { 0 };
	assert_int_equal(bus_add(&b, 0x1000, 0x100, &ops_a, NULL, "alpha", &e),
			 0);
	static const struct { uint64_t base, len; } clash[] = {
		{ 0x1000, 0x100 }, { 0x0f00, 0x101 }, { 0x10ff, 1 },
		{ 0x1080, 0x1000 }, { 0x0, 0x10000 }, { 0x1010, 1 },
	};
	for (size_t i = 0; i < sizeof(clash) / sizeof(clash[0]); i++) {
		e.msg[0] = '\0';
		if (bus_add(&b, clash[i].base, clash[i].len, &ops_b, NULL,
			    "beta", &e) != -1)
			fail_msg("overlap [0x%llx, +0x%llx) accepted",
				 (unsigned long long)clash[i].base,
				 (unsigned long long)clash[i].len);
		has(e.msg, "beta");
		has(e.msg, "alpha");
		has(e.msg, "overlaps");
		has(e.msg, "mmio");
	}
	assert_int_equal(b.n, 1);
	/* touching at either end is fine */
	assert_int_equal(bus_add(&b, 0x0f00, 0x100, &ops_b, NULL, "below", &e),
			 0);
	assert_int_equal(bus_add(&b, 0x1100, 0x100, &ops_b, NULL, "above", &e),
			 0);
	assert_string_equal(bus_find(&b, 0x0fff, 1)->name, "below");
	assert_string_equal(bus_find(&b, 0x1000, 1)->name, "alpha");
	assert_string_equal(bus_find(&b, 0x10ff, 1)->name, "alpha");
	assert_string_equal(bus_find(&b, 0x1100, 1)->name, "above");
	/* the message names the range that was hit */
	assert_int_equal(bus_add(&b, 0x11ff, 2, &ops_b, NULL, "gamma", &e), -1);
	has(e.msg, "gamma");
	has(e.msg, "above");
	has(e.msg, "0x11ff");
}

static void test_bus_bad_range(void **state)
{
	(void)state;
	static struct bus b;
	memset(&b, 0, sizeof(b));
	b.name = "pio";
	struct kg_err e = { 0 };
	assert_int_equal(bus_add(&b, 0x80, 0, &ops_a, NULL, "empty", &e), -1);
	has(e.msg, "bad range");
	has(e.msg, "empty");
	assert_int_equal(bus_add(&b, UINT64_MAX, 2, &ops_a, NULL, "wrap", &e),
			 -1);
	has(e.msg, "bad range");
	assert_int_equal(bus_add(&b, 16, UINT64_MAX, &ops_a, NULL, "wrap", &e),
			 -1);
	assert_int_equal(b.n, 0);
}

static void test_bus_full(void **state)
{
	(void)state;
	static struct bus b;
	memset(&b, 0, sizeof(b));
	b.name = "pio";
	struct kg_err e = { 0 };
	static char names[BUS_MAX_RANGES][16];
	for (unsigned i = 0; i < BUS_MAX_RANGES; i++) {
		snprintf(names[i], sizeof(names[i]), "dev%u", i);
		if (bus_add(&b, 0x100 + 0x10 * i, 0x10, &ops_a, NULL, names[i],
			    &e) != 0)
			fail_msg("range %u: %s", i, e.msg);
	}
	assert_int_equal(b.n, BUS_MAX_RANGES);
	assert_int_equal(bus_add(&b, 0x8000, 1, &ops_b, NULL, "extra", &e), -1);
	has(e.msg, "no room");
	has(e.msg, "extra");
	assert_int_equal(b.n, BUS_MAX_RANGES);
	assert_null(bus_find(&b, 0x8000, 1));
	for (unsigned i = 0; i < BUS_MAX_RANGES; i++) {
		const struct bus_range *r = bus_find(&b, 0x10f + 0x10 * i, 1);
		assert_non_null(r);
		assert_string_equal(r->name, names[i]);
	}
	/* an overlap is still reported as such on a full bus */
	assert_int_equal(bus_add(&b, 0x100, 1, &ops_b, NULL, "dup", &e), -1);
	has(e.msg, "overlaps dev0");
}

/* --- err --- */

static void test_errf(void **state)
{
	(void)state;
	struct kg_err e = { .msg = "old" };
	assert_int_equal(kg_errf(&e, "KVM_SET_SREGS: %s (%d)", "bad", 22), -1);
	assert_string_equal(e.msg, "KVM_SET_SREGS: bad (22)");
	assert_int_equal(kg_errf(NULL, "nobody %s", "listens"), -1);
}

static void test_errf_truncates(void **state)
{
	(void)state;
	static char big[2000];
	memset(big, 'x', sizeof(big) - 1);
	struct kg_err e;
	memset(e.msg, 0x55, sizeof(e.msg));
	assert_int_equal(kg_errf(&e, "%s%s", big, big), -1);
	assert_int_equal(strnlen(e.msg, sizeof(e.msg)), sizeof(e.msg) - 1);
	assert_int_equal(e.msg[sizeof(e.msg) - 2], 'x');
}

static void test_errno(void **state)
{
	(void)state;
	struct kg_err e = { 0 };
	errno = ENOENT;
	assert_int_equal(kg_errno(&e, "open %s", "/nope"), -1);
	assert_int_equal(errno, ENOENT);
	char want[300];
	snprintf(want, sizeof(want), "open /nope: %s", strerror(ENOENT));
	assert_string_equal(e.msg, want);
	errno = EINVAL;
	assert_int_equal(kg_errno(NULL, "ioctl"), -1);
	assert_int_equal(errno, EINVAL);
}

static void test_errno_truncates(void **state)
{
	(void)state;
	static char big[2000];
	memset(big, 'w', sizeof(big) - 1);
	struct kg_err e;
	memset(e.msg, 0x55, sizeof(e.msg));
	errno = EACCES;
	assert_int_equal(kg_errno(&e, "%s", big), -1);
	assert_int_equal(errno, EACCES);
	size_t n = strnlen(e.msg, sizeof(e.msg));
	assert_true(n < sizeof(e.msg));
	/* the "what" part is cut, the reason survives */
	char tail[200];
	snprintf(tail, sizeof(tail), ": %s", strerror(EACCES));
	assert_true(n > strlen(tail));
	assert_string_equal(e.msg + n - strlen(tail), tail);
	assert_int_equal(e.msg[0], 'w');
}

static void test_prefix(void **state)
{
	(void)state;
	struct kg_err e;
	kg_errf(&e, "not an ELF file (bad magic)");
	assert_int_equal(kg_err_prefix(&e, "image %s", "a.elf"), -1);
	assert_string_equal(e.msg, "image a.elf: not an ELF file (bad magic)");
	assert_int_equal(kg_err_prefix(&e, "run"), -1);
	assert_string_equal(e.msg,
			    "run: image a.elf: not an ELF file (bad magic)");
	/* an empty message gets just the prefix */
	e.msg[0] = '\0';
	kg_err_prefix(&e, "x");
	assert_string_equal(e.msg, "x: ");
	assert_int_equal(kg_err_prefix(NULL, "y"), -1);
}

static void test_prefix_long_message(void **state)
{
	(void)state;
	struct kg_err e;
	memset(e.msg, 'm', sizeof(e.msg) - 1);
	e.msg[sizeof(e.msg) - 1] = '\0';
	kg_err_prefix(&e, "pre");
	assert_int_equal(strlen(e.msg), sizeof(e.msg) - 1);
	assert_memory_equal(e.msg, "pre: mmm", 8);
	assert_int_equal(e.msg[sizeof(e.msg) - 2], 'm');
	/* many prefixes: always terminated, prefixes first */
	for (int i = 0; i < 300; i++) {
		kg_err_prefix(&e, "p%d", i);
		assert_int_equal(strnlen(e.msg, sizeof(e.msg)),
				 sizeof(e.msg) - 1);
	}
	assert_memory_equal(e.msg, "p299: p298: ", 12);
}

static void test_prefix_long_prefix(void **state)
{
	(void)state;
	static char big[2000];
	memset(big, 'P', sizeof(big) - 1);
	struct kg_err e;
	kg_errf(&e, "reason");
	kg_err_prefix(&e, "%s", big);
	size_t n = strnlen(e.msg, sizeof(e.msg));
	assert_true(n < sizeof(e.msg));
	/* the prefix is cut (to 255 bytes), the message kept */
	assert_int_equal(e.msg[0], 'P');
	assert_non_null(strstr(e.msg, ": reason"));
	assert_string_equal(e.msg + n - strlen(": reason"), ": reason");
	/* prefix and message both at the limit */
	memset(e.msg, 'm', sizeof(e.msg) - 1);
	e.msg[sizeof(e.msg) - 1] = '\0';
	kg_err_prefix(&e, "%s", big);
	assert_int_equal(strnlen(e.msg, sizeof(e.msg)), sizeof(e.msg) - 1);
	assert_int_equal(e.msg[0], 'P');
}

/* Kinds: set where the error is made, kept by prefixes. */
static void test_kinds(void **state)
{
	(void)state;
	struct kg_err e = { 0 };
	assert_int_equal(e.kind, KG_ERR_UNSPECIFIED);
	kg_errk(&e, KG_ERR_CORRUPT, "frame seq %d: MAC mismatch", 3);
	assert_int_equal(e.kind, KG_ERR_CORRUPT);
	assert_string_equal(e.msg, "frame seq 3: MAC mismatch");
	kg_err_prefix(&e, "receive from %s", "tcp:a:1");
	assert_int_equal(e.kind, KG_ERR_CORRUPT);
	/* a plain kg_errf says nothing about the kind, whatever was before */
	kg_errf(&e, "checksum mismatch");
	assert_int_equal(e.kind, KG_ERR_UNSPECIFIED);
	assert_int_equal(kg_err_as(&e, KG_ERR_AUTH), -1);
	assert_int_equal(e.kind, KG_ERR_AUTH);
	assert_string_equal(e.msg, "checksum mismatch");
	assert_int_equal(kg_err_as(NULL, KG_ERR_AUTH), -1);
	assert_int_equal(kg_errk(NULL, KG_ERR_IO, "x"), -1);
}

static void test_kind_of_errno(void **state)
{
	(void)state;
	static const struct {
		int err;
		enum kg_err_kind kind;
	} rows[] = {
		{ ECONNREFUSED, KG_ERR_REFUSED }, { ENOSPC, KG_ERR_NO_SPACE },
		{ EDQUOT, KG_ERR_NO_SPACE },      { ETIMEDOUT, KG_ERR_TIMEOUT },
		{ ECONNRESET, KG_ERR_PEER_GONE }, { EPIPE, KG_ERR_PEER_GONE },
		{ ENOTCONN, KG_ERR_PEER_GONE },   { ECONNABORTED, KG_ERR_PEER_GONE },
		{ EHOSTUNREACH, KG_ERR_PEER_GONE }, { ENETUNREACH, KG_ERR_PEER_GONE },
		{ ENETDOWN, KG_ERR_PEER_GONE },   { EHOSTDOWN, KG_ERR_PEER_GONE },
		{ ENOMEM, KG_ERR_NOMEM },         { ENOBUFS, KG_ERR_NOMEM },
		{ EIO, KG_ERR_IO },               { ENOENT, KG_ERR_IO },
		{ EINVAL, KG_ERR_IO },            { EACCES, KG_ERR_IO },
	};
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct kg_err e = { 0 };
		assert_int_equal(kg_err_kind_of_errno(rows[i].err), rows[i].kind);
		errno = rows[i].err;
		kg_errno(&e, "op");
		if (e.kind != rows[i].kind)
			fail_msg("%s: kind %s, want %s", strerror(rows[i].err),
				 kg_err_kind_name(e.kind),
				 kg_err_kind_name(rows[i].kind));
		assert_int_equal(errno, rows[i].err);
	}
}

static void test_kind_names(void **state)
{
	(void)state;
	/* stable, distinct names: logs and the control socket's JSON */
	for (int i = 0; i < KG_ERR_KINDS; i++) {
		const char *n = kg_err_kind_name((enum kg_err_kind)i);
		assert_string_not_equal(n, "?");
		for (int j = 0; j < i; j++)
			assert_string_not_equal(n, kg_err_kind_name((enum kg_err_kind)j));
	}
	assert_string_equal(kg_err_kind_name(KG_ERR_CORRUPT), "corrupt");
	assert_string_equal(kg_err_kind_name(KG_ERR_PEER_GONE), "peer-gone");
	assert_string_equal(kg_err_kind_name((enum kg_err_kind)KG_ERR_KINDS), "?");
}

static void test_prefix_unterminated(void **state)
{
	(void)state;
	/* a message buffer with no NUL at all must not be over-read */
	struct kg_err e;
	memset(e.msg, 'u', sizeof(e.msg));
	kg_err_prefix(&e, "ctx");
	assert_int_equal(strnlen(e.msg, sizeof(e.msg)), sizeof(e.msg) - 1);
	assert_memory_equal(e.msg, "ctx: uuu", 8);
}

/* --- fault_frame_format --- */

static void test_fault_frame_pf(void **state)
{
	(void)state;
	struct kagami_fault_frame f;
	memset(&f, 0, sizeof(f));
	f.magic = KAGAMI_FAULT_MAGIC;
	f.vector = 14;
	f.error_code = 0x6;
	f.cr2 = 0xdeadbeef000ull;
	f.rip = 0x401234;
	f.rsp = 0x7ff000;
	f.cs = 0x23;
	f.ss = 0x1b;
	f.rax = 0x1111;
	f.r15 = 0xf15f15;
	char buf[1024];
	fault_frame_format(&f, buf, sizeof(buf));
	has(buf, "vector 14");
	has(buf, "#PF page fault");
	has(buf, "error code 0x6");
	has(buf, "rip=0000000000401234");
	has(buf, "cr2=00000deadbeef000");
	has(buf, "rsp=00000000007ff000");
	has(buf, "cs=0023");
	has(buf, "ss=001b");
	has(buf, "rax=0000000000001111");
	has(buf, "r15=0000000000f15f15");
	assert_true(strlen(buf) < sizeof(buf) - 1); /* fits, not truncated */
}

static void test_fault_frame_names(void **state)
{
	(void)state;
	static const struct { unsigned long long v; const char *name; } c[] = {
		{ 0, "#DE divide error" }, { 3, "#BP breakpoint" },
		{ 6, "#UD invalid opcode" }, { 8, "#DF double fault" },
		{ 13, "#GP general protection" }, { 14, "#PF page fault" },
		{ 18, "#MC machine check" }, { 21, "#CP control protection" },
		{ 22, "(unknown)" }, { 31, "(unknown)" }, { 32, "(unknown)" },
		{ 255, "(unknown)" }, { ~0ull, "(unknown)" },
	};
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		struct kagami_fault_frame f;
		memset(&f, 0, sizeof(f));
		f.vector = c[i].v;
		char buf[1024];
		fault_frame_format(&f, buf, sizeof(buf));
		has(buf, c[i].name);
	}
}

static void test_fault_frame_truncation(void **state)
{
	(void)state;
	/* unaligned source, small and tiny buffers */
	static uint8_t raw[sizeof(struct kagami_fault_frame) + 1];
	struct kagami_fault_frame f;
	memset(&f, 0, sizeof(f));
	f.vector = 14;
	f.rip = 0xabc;
	memcpy(raw + 1, &f, sizeof(f));
	char buf[32];
	memset(buf, 'z', sizeof(buf));
	fault_frame_format(raw + 1, buf, 20);
	assert_int_equal(strlen(buf), 19);
	assert_int_equal(buf[20], 'z');
	memset(buf, 'z', sizeof(buf));
	fault_frame_format(raw + 1, buf, 1);
	assert_int_equal(buf[0], '\0');
	assert_int_equal(buf[1], 'z');
	fault_frame_format(raw + 1, buf, 0); /* writes nothing */
	assert_int_equal(buf[0], '\0');
	assert_int_equal(buf[1], 'z');
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_console_simple),
		cmocka_unit_test(test_console_paths),
		cmocka_unit_test(test_console_empty_path),
		cmocka_unit_test(test_console_path_length),
		cmocka_unit_test(test_console_junk),
		cmocka_unit_test(test_bus_add_find),
		cmocka_unit_test(test_bus_straddle),
		cmocka_unit_test(test_bus_overlap),
		cmocka_unit_test(test_bus_bad_range),
		cmocka_unit_test(test_bus_full),
		cmocka_unit_test(test_errf),
		cmocka_unit_test(test_errf_truncates),
		cmocka_unit_test(test_errno),
		cmocka_unit_test(test_errno_truncates),
		cmocka_unit_test(test_prefix),
		cmocka_unit_test(test_prefix_long_message),
		cmocka_unit_test(test_prefix_long_prefix),
		cmocka_unit_test(test_prefix_unterminated),
		cmocka_unit_test(test_kinds),
		cmocka_unit_test(test_kind_of_errno),
		cmocka_unit_test(test_kind_names),
		cmocka_unit_test(test_fault_frame_pf),
		cmocka_unit_test(test_fault_frame_names),
		cmocka_unit_test(test_fault_frame_truncation),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
