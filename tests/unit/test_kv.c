/* Unit tests for the kvstore client's pure parts (kv/kv_client.h): the
 * single request's arguments, the journal written and read back, what
 * verify accepts for a key, and the report line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <cmocka.h>

#include "kv/kv_client.h"

static void parse_ok(const char *cmd, int nargs, char **args, uint8_t op)
{
	struct kv_req r;
	struct kg_err e = { 0 };
	if (kv_single_parse(cmd, nargs, args, &r, &e) != 0)
		fail_msg("%s: %s", cmd, e.msg);
	assert_int_equal(r.op, op);
}

static void parse_bad(const char *cmd, int nargs, char **args,
		      const char *want)
{
	struct kv_req r;
	struct kg_err e = { 0 };
	assert_int_equal(kv_single_parse(cmd, nargs, args, &r, &e), -1);
	assert_int_equal(e.kind, KG_ERR_INVALID);
	if (strcmp(e.msg, want))
		fail_msg("%s: message '%s', want '%s'", cmd, e.msg, want);
}

static void test_single_parse(void **state)
{
	(void)state;
	char *kv[] = { "key", "value" };
	struct kv_req r;
	struct kg_err e = { 0 };
	assert_int_equal(kv_single_parse("put", 2, kv, &r, &e), 0);
	assert_int_equal(r.op, KV_PUT);
	assert_int_equal(r.klen, 3);
	assert_memory_equal(r.key, "key", 3);
	assert_int_equal(r.vlen, 5);
	assert_memory_equal(r.val, "value", 5);
	parse_ok("get", 1, kv, KV_GET);
	parse_ok("del", 1, kv, KV_DEL);
	parse_ok("stats", 0, NULL, KV_STATS);
	/* an empty value is a value */
	char *empty_val[] = { "k", "" };
	parse_ok("put", 2, empty_val, KV_PUT);
}

static void test_single_parse_errors(void **state)
{
	(void)state;
	char *one[] = { "k" }, *two[] = { "k", "v" };
	parse_bad("put", 1, one, "expected KEY VALUE");
	parse_bad("get", 0, NULL, "expected KEY");
	parse_bad("get", 2, two, "expected KEY");
	parse_bad("stats", 1, one, "expected no arguments");
	parse_bad("frob", 0, NULL, "unknown request 'frob'");
	char *empty[] = { "" };
	parse_bad("del", 1, empty, "key must be 1 to 128 bytes");
	char key[KV_KEY_MAX + 2], val[KV_VAL_MAX + 2];
	memset(key, 'k', sizeof(key) - 1);
	key[sizeof(key) - 1] = 0;
	char *longkey[] = { key };
	parse_bad("get", 1, longkey, "key must be 1 to 128 bytes");
	key[KV_KEY_MAX] = 0; /* exactly the maximum is fine */
	parse_ok("get", 1, longkey, KV_GET);
	memset(val, 'v', sizeof(val) - 1);
	val[sizeof(val) - 1] = 0;
	char *longval[] = { "k", val };
	parse_bad("put", 2, longval, "value is 1025 bytes, at most 1024");
}

/* ---- the journal ---------------------------------------------------- */

struct notes {
	int n;
	char last[256];
};

static void note(void *arg, const char *msg)
{
	struct notes *ns = arg;
	ns->n++;
	snprintf(ns->last, sizeof(ns->last), "%s", msg);
}

static void put_req(struct kv_req *r, const char *key, const char *val)
{
	memset(r, 0, sizeof(*r));
	r->op = KV_PUT;
	r->klen = (uint16_t)strlen(key);
	memcpy(r->key, key, r->klen);
	r->vlen = (uint32_t)strlen(val);
	memcpy(r->val, val, r->vlen);
}

static char *temp_path(void)
{
	static char path[64];
	snprintf(path, sizeof(path), "/tmp/test_kv.XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	return path;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static struct jkey *find(struct jtable *t, const char *key)
{
	for (size_t i = 0; i < t->n; i++)
		if (!strcmp(t->list[i]->key, key))
			return t->list[i];
	return NULL;
}

static void test_journal_round_trip(void **state)
{
	(void)state;
	char *path = temp_path();
	int fd = open(path, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	struct kg_err e = { 0 };
	struct kv_req r;
	put_req(&r, "a", "v1");
	assert_int_equal(kv_journal_write(fd, path, 'a', 0x11, 1, &r, &e), 0);
	assert_int_equal(kv_journal_write(fd, path, 'k', 0x11, 1, &r, &e), 0);
	put_req(&r, "a", "v2");
	assert_int_equal(kv_journal_write(fd, path, 'a', 0x11, 2, &r, &e), 0);
	put_req(&r, "b", "w1");
	assert_int_equal(kv_journal_write(fd, path, 'a', 0x22, 1, &r, &e), 0);
	close(fd);

	struct jtable t = { 0 };
	struct notes ns = { 0 };
	assert_int_equal(kv_journal_read(path, &t, note, &ns, &e), 0);
	assert_int_equal(ns.n, 0);
	assert_int_equal(t.n, 2);
	assert_string_equal(t.list[0]->key, "a"); /* first-seen order */
	struct jkey *a = find(&t, "a"), *b = find(&t, "b");
	assert_true(a->has_acked && !a->acked_del);
	assert_string_equal(a->acked_val, "v1");
	assert_int_equal(a->natt, 1); /* v2, in flight */
	assert_string_equal(a->att[0].val, "v2");
	assert_false(b->has_acked);
	assert_int_equal(b->natt, 1);
	kv_jtable_free(&t);
	unlink(path);
}

static void test_journal_cut_last_line(void **state)
{
	(void)state;
	char *path = temp_path();
	write_file(path, "# header\n"
			 "a 0000000000000001 1 put k1 v1\n"
			 "k 0000000000000001 1 put k1 v1\n"
			 "a 0000000000000001 2 put k1 v2");
	struct jtable t = { 0 };
	struct notes ns = { 0 };
	struct kg_err e = { 0 };
	assert_int_equal(kv_journal_read(path, &t, note, &ns, &e), 0);
	assert_int_equal(ns.n, 1);
	assert_non_null(strstr(ns.last, ":4: ignoring an incomplete last line"));
	struct jkey *k = find(&t, "k1");
	assert_string_equal(k->acked_val, "v1");
	assert_int_equal(k->natt, 0); /* the cut attempt is not one */
	kv_jtable_free(&t);
	/* without a note function, the same quietly */
	struct jtable t2 = { 0 };
	assert_int_equal(kv_journal_read(path, &t2, NULL, NULL, &e), 0);
	assert_int_equal(t2.n, 1);
	kv_jtable_free(&t2);
	unlink(path);
}

static void journal_bad(const char *text, const char *want)
{
	char *path = temp_path();
	write_file(path, text);
	struct jtable t = { 0 };
	struct kg_err e = { 0 };
	assert_int_equal(kv_journal_read(path, &t, NULL, NULL, &e), -1);
	if (!strstr(e.msg, want))
		fail_msg("'%s': message '%s' lacks '%s'", text, e.msg, want);
	kv_jtable_free(&t);
	unlink(path);
}

static void test_journal_malformed(void **state)
{
	(void)state;
	journal_bad("a 0000000000000001 1 put k1 v1\nbad line\n",
		    ":2: malformed line");
	journal_bad("x 0000000000000001 1 put k1 v1\n", ":1: malformed line");
	journal_bad("a 01 1 put k1 v1\n", ":1: malformed line");
	journal_bad("a 000000000000000g 1 put k1 v1\n", ":1: malformed line");
	journal_bad("a 0000000000000001 1 cas k1 v1\n", ":1: malformed line");
	journal_bad("a 0000000000000001 1 put k1 v1 extra\n",
		    ":1: malformed line");
	struct jtable t = { 0 };
	struct kg_err e = { 0 };
	assert_int_equal(kv_journal_read("/nonexistent/j", &t, NULL, NULL, &e),
			 -1);
	assert_non_null(strstr(e.msg, "journal /nonexistent/j: No such file"));
}

/* ---- what verify accepts -------------------------------------------- */

static struct kv_result found(const char *val)
{
	return (struct kv_result){ .status = KV_OK, .val = val,
				   .vlen = (uint32_t)strlen(val) };
}

static const struct kv_result not_found = { .status = KV_NOT_FOUND };

static void test_verify_accepts(void **state)
{
	(void)state;
	struct jatt att[] = { { 1, 3, false, "v3" }, { 1, 4, true, NULL } };
	struct jkey never = { .key = "k" };
	struct jkey acked = { .key = "k", .has_acked = true, .acked_val = "v2" };
	struct jkey later = { .key = "k", .has_acked = true, .acked_val = "v2",
			      .att = att, .natt = 1 };
	struct jkey deleted = { .key = "k", .has_acked = true,
				.acked_del = true };
	struct jkey del_later = { .key = "k", .has_acked = true,
				  .acked_val = "v2", .att = att, .natt = 2 };
	struct kv_result r;

	assert_true(kv_verify_accepts(&never, &not_found));
	r = found("x");
	assert_false(kv_verify_accepts(&never, &r)); /* nobody wrote x */

	r = found("v2");
	assert_true(kv_verify_accepts(&acked, &r));
	assert_false(kv_verify_accepts(&acked, &not_found)); /* lost */
	r = found("v1");
	assert_false(kv_verify_accepts(&acked, &r)); /* an older value */
	r = found("v2x");
	assert_false(kv_verify_accepts(&acked, &r));
	r = (struct kv_result){ .status = KV_OK, .val = "v2", .vlen = 1 };
	assert_false(kv_verify_accepts(&acked, &r)); /* length counts */

	r = found("v3");
	assert_true(kv_verify_accepts(&later, &r)); /* in flight, landed */
	r = found("v2");
	assert_true(kv_verify_accepts(&later, &r));

	assert_true(kv_verify_accepts(&deleted, &not_found));
	r = found("v2");
	assert_false(kv_verify_accepts(&deleted, &r));

	assert_true(kv_verify_accepts(&del_later, &not_found));
}

static void test_engine_json(void **state)
{
	(void)state;
	struct kv_engine en = { .fd = -1, .ops = 3, .acked = 2, .retries = 1,
				.errors = 1, .start_ns = 1000000000,
				.stop_ns = 2500000000, .max_gap_ns = 1500000,
				.max_gap_start_ms = 42 };
	uint64_t lat[] = { 1000, 2000000 };
	en.lat = lat;
	en.nlat = 2;
	char buf[512];
	kv_engine_json(&en, 7, ",\"x\":1", buf, sizeof(buf));
	assert_string_equal(buf, "{\"ops\":3,\"acked\":2,\"retries\":1,"
			    "\"errors\":1,\"lost\":7,\"p50_us\":2000,"
			    "\"p99_us\":2000,\"duration_s\":1.500,"
			    "\"max_gap_ms\":1.500,\"max_gap_start_ms\":42,"
			    "\"x\":1}");
}

static void test_parse_server(void **state)
{
	(void)state;
	struct sockaddr_in sa;
	struct kg_err e = { 0 };
	assert_int_equal(kv_parse_server("10.0.0.1", &sa, &e), 0);
	assert_int_equal(ntohs(sa.sin_port), KV_DEFAULT_PORT);
	assert_int_equal(kv_parse_server("10.0.0.1:9", &sa, &e), 0);
	assert_int_equal(ntohs(sa.sin_port), 9);
	assert_int_equal(kv_parse_server("10.0.0.1:0", &sa, &e), -1);
	assert_non_null(strstr(e.msg, "bad port"));
	assert_int_equal(kv_parse_server("10.0.0.1:65536", &sa, &e), -1);
	assert_int_equal(kv_parse_server("host:7000", &sa, &e), -1);
	assert_non_null(strstr(e.msg, "expected an IPv4 address"));
	assert_int_equal(kv_parse_server(":7000", &sa, &e), -1);
	assert_non_null(strstr(e.msg, "expected IP:PORT"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_single_parse),
		cmocka_unit_test(test_single_parse_errors),
		cmocka_unit_test(test_journal_round_trip),
		cmocka_unit_test(test_journal_cut_last_line),
		cmocka_unit_test(test_journal_malformed),
		cmocka_unit_test(test_verify_accepts),
		cmocka_unit_test(test_engine_json),
		cmocka_unit_test(test_parse_server),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
