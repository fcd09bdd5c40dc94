/*
 * Unit tests for the device command-line specs: --disk PATH[,readonly]
 * (disk_spec_parse, vmm/virtio_blk.h) and --net tap:IFNAME[,mac=MAC]
 * (net_spec_parse, vmm/virtio_net.h). Both are pure.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/virtio_blk.h"
#include "vmm/virtio_net.h"

static void disk_bad(const char *s, const char *what)
{
	struct disk_spec d;
	struct kg_err e = { 0 };
	assert_int_equal(disk_spec_parse(s, &d, &e), -1);
	if (!strstr(e.msg, what))
		fail_msg("disk '%.40s': error '%s' does not mention '%s'", s,
			 e.msg, what);
}

static void net_bad(const char *s, const char *what)
{
	struct net_spec n;
	struct kg_err e = { 0 };
	assert_int_equal(net_spec_parse(s, &n, &e), -1);
	if (!strstr(e.msg, what))
		fail_msg("net '%s': error '%s' does not mention '%s'", s,
			 e.msg, what);
}

static void net_ok(const char *s, struct net_spec *n)
{
	struct kg_err e = { 0 };
	if (net_spec_parse(s, n, &e) != 0)
		fail_msg("net '%s' refused: %s", s, e.msg);
}

/* --- disk --- */

static void test_disk_plain(void **state)
{
	(void)state;
	struct disk_spec d;
	struct kg_err e = { 0 };
	memset(&d, 0x5a, sizeof(d));
	assert_int_equal(disk_spec_parse("a.img", &d, &e), 0);
	assert_string_equal(d.path, "a.img");
	assert_false(d.readonly);
	assert_int_equal(disk_spec_parse("/var/lib/images/disk 1.raw", &d, &e),
			 0);
	assert_string_equal(d.path, "/var/lib/images/disk 1.raw");
	assert_false(d.readonly);
}

static void test_disk_readonly(void **state)
{
	(void)state;
	struct disk_spec d;
	struct kg_err e = { 0 };
	assert_int_equal(disk_spec_parse("a.img,readonly", &d, &e), 0);
	assert_string_equal(d.path, "a.img");
	assert_true(d.readonly);
	/* a later parse starts from scratch */
	assert_int_equal(disk_spec_parse("b.img", &d, &e), 0);
	assert_string_equal(d.path, "b.img");
	assert_false(d.readonly);
}

static void test_disk_empty_path(void **state)
{
	(void)state;
	disk_bad("", "empty path");
	disk_bad(",readonly", "empty path");
}

static void test_disk_unknown_option(void **state)
{
	(void)state;
	disk_bad("a.img,ro", "option");
	disk_bad("a.img,ro", "'ro'");
	disk_bad("a.img,readonly,cache=none", "'cache=none'");
	disk_bad("a.img,readonlyx", "option");
	disk_bad("a.img,Readonly", "option");
	disk_bad("a.img,", "option"); /* an empty option */
	disk_bad("a.img,readonly,", "option");
}

static void test_disk_path_too_long(void **state)
{
	(void)state;
	static char s[sizeof(((struct disk_spec *)0)->path) + 16];
	struct disk_spec d;
	struct kg_err e = { 0 };
	size_t max = sizeof(d.path) - 1;
	/* the longest path that fits */
	memset(s, 'p', max);
	s[max] = '\0';
	assert_int_equal(disk_spec_parse(s, &d, &e), 0);
	assert_int_equal(strlen(d.path), max);
	strcpy(s + max, ",readonly");
	assert_int_equal(disk_spec_parse(s, &d, &e), 0);
	assert_int_equal(strlen(d.path), max);
	assert_true(d.readonly);
	/* one more byte does not */
	memset(s, 'p', max + 1);
	s[max + 1] = '\0';
	assert_int_equal(disk_spec_parse(s, &d, &e), -1);
	strcpy(s + max + 1, ",readonly");
	assert_int_equal(disk_spec_parse(s, &d, &e), -1);
	/* Regression: the reason used to be cut off behind the quoted
	 * 4 KiB path in a 512-byte message. */
	disk_bad(s, "too long");
	s[max + 1] = '\0';
	disk_bad(s, "too long");
}

/* --- net --- */

static void test_net_default_mac(void **state)
{
	(void)state;
	struct net_spec a, b, c;
	net_ok("tap:tap0", &a);
	assert_string_equal(a.ifname, "tap0");
	assert_int_equal(a.mac[0], 0x52);
	assert_int_equal(a.mac[1], 0x54);
	assert_int_equal(a.mac[2], 0x00);
	/* unicast, locally administered */
	assert_int_equal(a.mac[0] & 1, 0);
	assert_int_equal(a.mac[0] & 2, 2);
	/* deterministic for a name */
	memset(&b, 0xff, sizeof(b));
	net_ok("tap:tap0", &b);
	assert_memory_equal(a.mac, b.mac, 6);
	/* different for another name (same prefix) */
	net_ok("tap:tap1", &c);
	assert_string_equal(c.ifname, "tap1");
	assert_memory_equal(c.mac, "\x52\x54\x00", 3);
	assert_memory_not_equal(a.mac + 3, c.mac + 3, 3);
	net_ok("tap:kagami-tap", &c);
	assert_memory_not_equal(a.mac + 3, c.mac + 3, 3);
}

static void test_net_explicit_mac(void **state)
{
	(void)state;
	struct net_spec n;
	net_ok("tap:tap0,mac=52:54:00:12:34:56", &n);
	assert_string_equal(n.ifname, "tap0");
	assert_memory_equal(n.mac, "\x52\x54\x00\x12\x34\x56", 6);
	/* upper-case hex, another locally administered prefix */
	net_ok("tap:t,mac=02:AB:cd:EF:00:ff", &n);
	assert_string_equal(n.ifname, "t");
	assert_memory_equal(n.mac, "\x02\xab\xcd\xef\x00\xff", 6);
	/* a later parse starts from scratch */
	net_ok("tap:tap0", &n);
	assert_memory_equal(n.mac, "\x52\x54\x00", 3);
	assert_memory_not_equal(n.mac + 3, "\x12\x34\x56", 3);
}

static void test_net_bad_prefix(void **state)
{
	(void)state;
	net_bad("", "expected tap:");
	net_bad("tap0", "expected tap:");
	net_bad("tap", "expected tap:");
	net_bad("TAP:tap0", "expected tap:");
	net_bad("user:tap0", "expected tap:");
	net_bad(" tap:tap0", "expected tap:");
}

static void test_net_bad_name(void **state)
{
	(void)state;
	struct net_spec n;
	net_bad("tap:", "interface name");
	net_bad("tap:,mac=52:54:00:12:34:56", "interface name");
	/* IFNAMSIZ is 16 with the NUL: 15 characters fit, 16 do not */
	net_ok("tap:abcdefghijklmno", &n);
	assert_string_equal(n.ifname, "abcdefghijklmno");
	net_bad("tap:abcdefghijklmnop", "interface name");
	net_bad("tap:abcdefghijklmnopqrstuvwxyz", "interface name");
	net_bad("tap:abcdefghijklmnop,mac=52:54:00:12:34:56",
		"interface name");
}

static void test_net_malformed_mac(void **state)
{
	(void)state;
	net_bad("tap:tap0,", "expected mac=");
	net_bad("tap:tap0,mac=", "expected mac=");
	net_bad("tap:tap0,mac=52:54:00:12:34", "expected mac=");
	net_bad("tap:tap0,mac=52:54:00:12:34:", "expected mac=");
	net_bad("tap:tap0,mac=52:54:00:12:34:zz", "expected mac=");
	net_bad("tap:tap0,mac=52-54-00-12-34-56", "expected mac=");
	net_bad("tap:tap0,mac=525400123456", "expected mac=");
	net_bad("tap:tap0,mac=52:54:00:123:45:67", "expected mac=");
	net_bad("tap:tap0,MAC=52:54:00:12:34:56", "expected mac=");
	net_bad("tap:tap0,hw=52:54:00:12:34:56", "expected mac=");
}

static void test_net_trailing_junk(void **state)
{
	(void)state;
	net_bad("tap:tap0,mac=52:54:00:12:34:56x", "expected mac=");
	net_bad("tap:tap0,mac=52:54:00:12:34:567", "expected mac=");
	net_bad("tap:tap0,mac=52:54:00:12:34:56:78", "expected mac=");
	net_bad("tap:tap0,mac=52:54:00:12:34:56,", "expected mac=");
	net_bad("tap:tap0,mac=52:54:00:12:34:56,mac=52:54:00:12:34:57",
		"expected mac=");
	net_bad("tap:tap0,mac=52:54:00:12:34:56 ", "expected mac=");
}

static void test_net_multicast_refused(void **state)
{
	(void)state;
	net_bad("tap:tap0,mac=01:00:5e:00:00:01", "multicast");
	net_bad("tap:tap0,mac=ff:ff:ff:ff:ff:ff", "multicast");
	net_bad("tap:tap0,mac=53:54:00:12:34:56", "multicast");
}

/* Regression: sscanf("%2x") used to take signs and spaces inside a MAC. */
static void test_net_mac_sign_and_space(void **state)
{
	(void)state;
	struct net_spec n;
	struct kg_err e = { 0 };
	(void)n, (void)e;
	net_bad("tap:tap0,mac=52:54:00:12:34:-1", "expected mac=");
	net_bad("tap:tap0,mac=52:54:00:12:34: 5", "expected mac=");
	net_bad("tap:tap0,mac=52:54:00:12:+3:45", "expected mac=");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_disk_plain),
		cmocka_unit_test(test_disk_readonly),
		cmocka_unit_test(test_disk_empty_path),
		cmocka_unit_test(test_disk_unknown_option),
		cmocka_unit_test(test_disk_path_too_long),
		cmocka_unit_test(test_net_default_mac),
		cmocka_unit_test(test_net_explicit_mac),
		cmocka_unit_test(test_net_bad_prefix),
		cmocka_unit_test(test_net_bad_name),
		cmocka_unit_test(test_net_malformed_mac),
		cmocka_unit_test(test_net_trailing_junk),
		cmocka_unit_test(test_net_multicast_refused),
		cmocka_unit_test(test_net_mac_sign_and_space),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
