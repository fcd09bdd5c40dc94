/*
 * kagami kv: the client of the kvstore guest (guests/kvstore_proto.h), the
 * one every failover drill uses.
 *
 *   put/get/del/stats  one request, retried with the same req_id
 *   load               a put/get mix from --clients client ids, each with
 *                      one outstanding request, journaling every write
 *   verify             reads back every key of a journal and checks that
 *                      no acknowledged write was lost
 *
 * All three run on one engine: a UDP socket connected to the server and a
 * set of slots, each a client id (random 64-bit base XOR slot index) with
 * at most one outstanding request. A request is retried with the same
 * (client_id, req_id) after 200 ms, then 400, 800, 1000, 1000, ... ms,
 * until it is answered, its --timeout expires (single requests, verify) or
 * the run ends (load). req_ids of a client increase by one per request,
 * which is what the server's duplicate detection expects.
 *
 * Journal (text, one line per event, each written with one write(2) on an
 * O_APPEND fd, so it survives the client being killed):
 *   # comment
 *   a CLIENT REQ put KEY VALUE   attempt, written before the first send
 *   k CLIENT REQ put KEY VALUE   acknowledged (status OK)
 * CLIENT is 16 hex digits; keys and values have no white space; "del"
 * with value "-" is understood by verify (load issues no deletes).
 *
 * What verify accepts for a key: the value of its last acknowledged write,
 * or the value of any attempt journaled after that write's attempt line
 * and never acknowledged (in flight when the server or client died). With
 * no acknowledged write, "not found" is also accepted. Anything else --
 * a missing key with an acknowledged put, an older or unknown value --
 * counts as lost.
 *
 * What load checks on reads: keys are partitioned among the client ids
 * (key k belongs to slot k mod clients), so a key has one writer with one
 * outstanding request, and a read must return the value of that writer's
 * last acknowledged put in this run. Keys not yet written in this run, or
 * whose last put was answered with an error, are read but not checked.
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "cli.h"
#include "base/err.h"
#include "abi/kvstore_proto.h"

#include "kv/kv_engine.h"
#include "kv/kv_journal.h"
#include "kv/kv_history.h"

/* ---- single requests ----------------------------------------------- */

struct one_ctx {
	struct kv_req req;
	bool sent;
	int status;
	char val[KV_VAL_MAX + 1];
	uint32_t vlen;
};

static int one_next(void *ctx, struct kv_engine *en, unsigned slot,
		    uint64_t req_id, struct kv_req *r)
{
	struct one_ctx *c = ctx;
	(void)en; (void)slot; (void)req_id;
	if (c->sent)
		return 0;
	*r = c->req;
	c->sent = true;
	return 1;
}

static int one_done(void *ctx, struct kv_engine *en, unsigned slot,
		    uint64_t req_id, const struct kv_req *r,
		    const struct kv_result *res)
{
	struct one_ctx *c = ctx;
	(void)en; (void)slot; (void)req_id; (void)r;
	c->status = res->status;
	memcpy(c->val, res->val ? res->val : "", res->vlen);
	c->vlen = res->vlen;
	return 0;
}

/* ---- load ---------------------------------------------------------- */

struct load_ctx {
	const char *prefix;
	uint32_t nkeys;
	double write_ratio;
	uint32_t value_size;
	uint64_t rng;
	int jfd;
	const char *jpath;
	uint64_t *acked_req;  /* per key: the owner's last acked put, 0 none */
	uint8_t *uncertain;   /* per key: a later put got an error */
	struct kv_history *hist;
	uint64_t puts, gets, checked, mismatches;
};

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void load_key(const struct load_ctx *c, struct kv_req *r, size_t k)
{
	r->klen = (uint16_t)snprintf(r->key, sizeof(r->key), "%s%07zu",
				     c->prefix, k);
}

/* The value of the put (client, req_id): unique per write. */
static uint32_t load_value(char *buf, uint32_t size, uint64_t client,
			   uint64_t req_id)
{
	int n = snprintf(buf, KV_VAL_MAX + 1, "v-%016" PRIx64 "-%" PRIu64,
			 client, req_id);
	uint32_t len = (uint32_t)n;
	while (len < size)
		buf[len++] = '.';
	buf[len] = 0;
	return len;
}

static int journal_line(struct load_ctx *c, char type, uint64_t client,
			uint64_t req_id, const struct kv_req *r,
			struct kg_err *e)
{
	char line[KV_KEY_MAX + KV_VAL_MAX + 96];
	int n = snprintf(line, sizeof(line), "%c %016" PRIx64 " %" PRIu64
			 " put %.*s %.*s\n", type, client, req_id,
			 (int)r->klen, r->key, (int)r->vlen, r->val);
	return kv_write_all(c->jfd, line, (size_t)n, c->jpath, e);
}

static int load_next(void *ctx, struct kv_engine *en, unsigned slot,
		     uint64_t req_id, struct kv_req *r)
{
	struct load_ctx *c = ctx;
	/* Slot owns keys slot, slot + nslots, ... */
	uint32_t owned = (c->nkeys - slot + en->nslots - 1) / en->nslots;
	size_t k = slot + (size_t)(splitmix64(&c->rng) % owned) * en->nslots;
	double u = (double)(splitmix64(&c->rng) >> 11) / 9007199254740992.0;
	r->tag = k;
	load_key(c, r, k);
	if (u < c->write_ratio) {
		r->op = KV_PUT;
		r->vlen = load_value(r->val, c->value_size,
				     en->slots[slot].client_id, req_id);
		c->puts++;
		if (journal_line(c, 'a', en->slots[slot].client_id, req_id, r,
				 &en->err) < 0)
			return -1;
	} else {
		r->op = KV_GET;
		c->gets++;
	}
	return kv_history_invoke(c->hist, en->slots[slot].client_id, req_id,
				 r, &en->err) < 0 ? -1 : 1;
}

static int load_done(void *ctx, struct kv_engine *en, unsigned slot,
		     uint64_t req_id, const struct kv_req *r,
		     const struct kv_result *res)
{
	struct load_ctx *c = ctx;
	uint64_t client = en->slots[slot].client_id;
	size_t k = r->tag;
	if (kv_history_complete(c->hist, client, req_id, r, res, &en->err) < 0)
		return -1;
	if (r->op == KV_PUT) {
		if (res->status != KV_OK) {
			c->uncertain[k] = 1;
			return 0;
		}
		c->acked_req[k] = req_id;
		c->uncertain[k] = 0;
		return journal_line(c, 'k', client, req_id, r, &en->err);
	}
	if (c->uncertain[k] || !c->acked_req[k] || res->status == RES_TIMEOUT)
		return 0;
	char want[KV_VAL_MAX + 1];
	uint32_t wlen = load_value(want, c->value_size, client,
				   c->acked_req[k]);
	c->checked++;
	if (res->status == KV_OK && res->vlen == wlen &&
	    !memcmp(res->val, want, wlen))
		return 0;
	c->mismatches++;
	en->errors++;
	if (c->mismatches <= 5)
		fprintf(stderr, "kagami kv load: get %.*s returned %s%.*s%s, "
			"expected '%s'\n", (int)r->klen, r->key,
			res->status == KV_OK ? "'" : "",
			res->status == KV_OK ? (int)res->vlen : 0,
			res->status == KV_OK ? res->val : "",
			res->status == KV_OK ? "'" : kv_status_name(res->status),
			want);
	return 0;
}

/* ---- the command --------------------------------------------------- */

static void kv_usage(FILE *f)
{
	fprintf(f,
"usage: kagami kv --server IP:PORT [--timeout S] COMMAND [ARGS]\n"
"\n"
"Talks to the kvstore guest over UDP (guests/kvstore_proto.h). Requests\n"
"are retried with the same id (200 ms, then doubling up to 1 s).\n"
"\n"
"commands:\n"
"  put KEY VALUE   store VALUE; prints OK\n"
"  get KEY         prints the value\n"
"  del KEY         delete; prints OK\n"
"  stats           prints the server's counters\n"
"  load --duration S --journal FILE [--rate N] [--keys N]\n"
"       [--write-ratio F] [--seed S] [--clients N] [--value-size N]\n"
"       [--key-prefix P] [--history FILE]\n"
"                  a put/get mix over N keys P0000000.. (default 1000,\n"
"                  prefix k, 50%% puts, values of 32 bytes or more)\n"
"                  from N client ids (default 8), each with one request\n"
"                  outstanding, at N requests/s (default: no pacing);\n"
"                  appends every write attempt and acknowledgement to\n"
"                  FILE; reads of keys written in the run are checked\n"
"  verify --journal FILE [--clients N] [--history FILE]\n"
"                  reads every key of FILE; a key whose value is neither\n"
"                  its last acknowledged write nor a later attempt is lost\n"
"                  (FILE must hold every write to its keys: give each\n"
"                  journal its own --key-prefix)\n"
"load and verify print one JSON line: ops, acked, retries, errors, lost,\n"
"p50_us, p99_us (first send to answer), duration_s, and more counts.\n"
"SIGINT or SIGTERM ends a load or verify early, with its report.\n"
"\n"
"options:\n"
"  --server IP:PORT  the kvstore guest (port default %d)\n"
"  --timeout S       give up a request after S seconds (default 5); load\n"
"                    retries each request until the run ends\n"
"  --history FILE    (load, verify) also append every request's\n"
"                    invocation and completion to FILE, the history that\n"
"                    'kagami check' judges\n"
"  -h, --help        show this help\n"
"\n"
"exit status: 0 done; 1 not found (get, del) or lost writes (verify);\n"
"2 bad arguments; 3 no answer in time, an error answer, or (load) a read\n"
"that returned the wrong value.\n", KV_DEFAULT_PORT);
}

struct kv_opts {
	const char *server, *journal, *key_prefix, *history;
	double timeout_s, duration_s, rate, write_ratio;
	unsigned long keys, clients, value_size;
	uint64_t seed, client_id, req_id;
	bool has_client_id;
	unsigned given; /* OPT_* bits */
};

enum {
	OPT_DURATION = 1u << 0, OPT_RATE = 1u << 1, OPT_KEYS = 1u << 2,
	OPT_WRITE_RATIO = 1u << 3, OPT_SEED = 1u << 4, OPT_CLIENTS = 1u << 5,
	OPT_JOURNAL = 1u << 6, OPT_VALUE_SIZE = 1u << 7,
	OPT_CLIENT_ID = 1u << 8, OPT_REQ_ID = 1u << 9,
	OPT_KEY_PREFIX = 1u << 10, OPT_HISTORY = 1u << 11,
};

static int num_ul(const char *opt, const char *s, unsigned long min,
		  unsigned long max, unsigned long *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (!*s || *end || errno || *s == '-' || v < min || v > max) {
		fprintf(stderr, "kagami kv: %s '%s': expected a whole number "
			"from %lu to %lu\n", opt, s, min, max);
		return -1;
	}
	*out = v;
	return 0;
}

static int num_u64(const char *opt, const char *s, int base, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, base);
	if (!*s || *end || errno || *s == '-') {
		fprintf(stderr, "kagami kv: %s '%s': expected a %s number\n",
			opt, s, base == 16 ? "hexadecimal" : "whole");
		return -1;
	}
	*out = v;
	return 0;
}

static int num_d(const char *opt, const char *s, double min, double max,
		 bool min_open, double *out)
{
	char *end;
	double v = strtod(s, &end);
	if (!*s || *end || !(v >= min) || !(v <= max) ||
	    (min_open && v == min)) {
		fprintf(stderr, "kagami kv: %s '%s': expected a number %s %g "
			"and at most %g\n", opt, s, min_open ? "above" : "from",
			min, max);
		return -1;
	}
	*out = v;
	return 0;
}

static int parse_opts(int argc, char **argv, struct kv_opts *o, int *first)
{
	enum { O_SERVER = 256, O_TIMEOUT, O_DURATION, O_RATE, O_KEYS,
	       O_WRITE_RATIO, O_SEED, O_CLIENTS, O_JOURNAL, O_VALUE_SIZE,
	       O_CLIENT_ID, O_REQ_ID, O_KEY_PREFIX, O_HISTORY };
	static const struct option opts[] = {
		{ "server", required_argument, NULL, O_SERVER },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "duration", required_argument, NULL, O_DURATION },
		{ "rate", required_argument, NULL, O_RATE },
		{ "keys", required_argument, NULL, O_KEYS },
		{ "write-ratio", required_argument, NULL, O_WRITE_RATIO },
		{ "seed", required_argument, NULL, O_SEED },
		{ "clients", required_argument, NULL, O_CLIENTS },
		{ "journal", required_argument, NULL, O_JOURNAL },
		{ "value-size", required_argument, NULL, O_VALUE_SIZE },
		{ "key-prefix", required_argument, NULL, O_KEY_PREFIX },
		{ "history", required_argument, NULL, O_HISTORY },
		/* Hidden, for tests: send exactly this request id. */
		{ "client-id", required_argument, NULL, O_CLIENT_ID },
		{ "req-id", required_argument, NULL, O_REQ_ID },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case O_SERVER: o->server = optarg; break;
		case O_TIMEOUT:
			if (num_d("--timeout", optarg, 0, 86400, true,
				  &o->timeout_s) < 0)
				return -1;
			break;
		case O_DURATION:
			o->given |= OPT_DURATION;
			if (num_d("--duration", optarg, 0, 86400, true,
				  &o->duration_s) < 0)
				return -1;
			break;
		case O_RATE:
			o->given |= OPT_RATE;
			if (num_d("--rate", optarg, 0, 1e7, true, &o->rate) < 0)
				return -1;
			break;
		case O_KEYS:
			o->given |= OPT_KEYS;
			if (num_ul("--keys", optarg, 1, MAX_KEYS, &o->keys) < 0)
				return -1;
			break;
		case O_WRITE_RATIO:
			o->given |= OPT_WRITE_RATIO;
			if (num_d("--write-ratio", optarg, 0, 1, false,
				  &o->write_ratio) < 0)
				return -1;
			break;
		case O_SEED:
			o->given |= OPT_SEED;
			if (num_u64("--seed", optarg, 10, &o->seed) < 0)
				return -1;
			break;
		case O_CLIENTS:
			o->given |= OPT_CLIENTS;
			if (num_ul("--clients", optarg, 1, MAX_CLIENTS,
				   &o->clients) < 0)
				return -1;
			break;
		case O_JOURNAL:
			o->given |= OPT_JOURNAL;
			o->journal = optarg;
			break;
		case O_HISTORY:
			o->given |= OPT_HISTORY;
			o->history = optarg;
			break;
		case O_VALUE_SIZE:
			o->given |= OPT_VALUE_SIZE;
			if (num_ul("--value-size", optarg, 0, KV_VAL_MAX,
				   &o->value_size) < 0)
				return -1;
			break;
		case O_KEY_PREFIX:
			o->given |= OPT_KEY_PREFIX;
			o->key_prefix = optarg;
			if (strlen(optarg) > KV_KEY_MAX - 10 ||
			    strpbrk(optarg, " \t\n\r\v\f")) {
				fprintf(stderr, "kagami kv: --key-prefix: at "
					"most %d bytes, no white space\n",
					KV_KEY_MAX - 10);
				return -1;
			}
			break;
		case O_CLIENT_ID:
			o->given |= OPT_CLIENT_ID;
			if (num_u64("--client-id", optarg, 16,
				    &o->client_id) < 0)
				return -1;
			break;
		case O_REQ_ID:
			o->given |= OPT_REQ_ID;
			if (num_u64("--req-id", optarg, 10, &o->req_id) < 0)
				return -1;
			if (!o->req_id) {
				fprintf(stderr, "kagami kv: --req-id must be "
					"at least 1\n");
				return -1;
			}
			break;
		case 'h':
			kv_usage(stdout);
			return 1;
		case ':':
			fprintf(stderr, "kagami kv: option %s needs a value\n",
				argv[optind - 1]);
			return -1;
		default:
			fprintf(stderr, "kagami kv: unknown option '%s' (try "
				"'kagami kv --help')\n", argv[optind - 1]);
			return -1;
		}
	}
	*first = optind;
	return 0;
}

/* The options a command accepts beyond --server and --timeout. */
static int check_opts(const char *cmd, unsigned given, unsigned allowed)
{
	static const char *const names[] = {
		"--duration", "--rate", "--keys", "--write-ratio", "--seed",
		"--clients", "--journal", "--value-size", "--client-id",
		"--req-id", "--key-prefix", "--history",
	};
	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if ((given & (1u << i)) && !(allowed & (1u << i))) {
			fprintf(stderr, "kagami kv %s: option %s does not "
				"apply (try 'kagami kv --help')\n", cmd,
				names[i]);
			return -1;
		}
	}
	return 0;
}

static int cmd_single(const struct kv_opts *o, const char *cmd, int nargs,
		      char **args)
{
	struct one_ctx c = { .status = RES_TIMEOUT };
	struct kv_engine en = { .fd = -1 };
	struct kg_err e = { 0 };
	int want = 0, rc;
	if (!strcmp(cmd, "put")) {
		c.req.op = KV_PUT;
		want = 2;
	} else if (!strcmp(cmd, "get")) {
		c.req.op = KV_GET;
		want = 1;
	} else if (!strcmp(cmd, "del")) {
		c.req.op = KV_DEL;
		want = 1;
	} else {
		c.req.op = KV_STATS;
	}
	if (nargs != want) {
		fprintf(stderr, "kagami kv %s: expected %s\n", cmd,
			want == 2 ? "KEY VALUE" : want ? "KEY" : "no arguments");
		return KG_EXIT_USAGE;
	}
	if (want) {
		size_t kl = strlen(args[0]);
		if (kl == 0 || kl > KV_KEY_MAX) {
			fprintf(stderr, "kagami kv %s: key must be 1 to %d "
				"bytes\n", cmd, KV_KEY_MAX);
			return KG_EXIT_USAGE;
		}
		c.req.klen = (uint16_t)kl;
		memcpy(c.req.key, args[0], kl);
	}
	if (want == 2) {
		size_t vl = strlen(args[1]);
		if (vl > KV_VAL_MAX) {
			fprintf(stderr, "kagami kv put: value is %zu bytes, "
				"at most %d\n", vl, KV_VAL_MAX);
			return KG_EXIT_USAGE;
		}
		c.req.vlen = (uint32_t)vl;
		memcpy(c.req.val, args[1], vl);
	}
	uint64_t id = o->client_id;
	if (!(o->given & OPT_CLIENT_ID) && kv_random_u64(&id, &e) < 0) {
		fprintf(stderr, "kagami kv: %s\n", e.msg);
		return KV_EXIT_FAIL;
	}
	if (kv_engine_init(&en, o->server, 1, id,
			o->given & OPT_REQ_ID ? o->req_id : 1, &e) < 0) {
		fprintf(stderr, "kagami kv: %s\n", e.msg);
		kv_engine_free(&en);
		return KV_EXIT_FAIL;
	}
	en.name = cmd;
	en.req_timeout_ns = (uint64_t)(o->timeout_s * 1e9);
	en.next = one_next;
	en.done = one_done;
	en.ctx = &c;
	if (kv_engine_run(&en) < 0) {
		fprintf(stderr, "kagami kv %s: %s\n", cmd, en.err.msg);
		rc = KV_EXIT_FAIL;
	} else if (kv_interrupted && c.status == RES_TIMEOUT) {
		fprintf(stderr, "kagami kv %s: interrupted\n", cmd);
		rc = KV_EXIT_FAIL;
	} else if (c.status == RES_TIMEOUT) {
		fprintf(stderr, "kagami kv %s: no answer from %s in %g s "
			"(%" PRIu64 " tries)\n", cmd, o->server, o->timeout_s,
			en.retries + 1);
		rc = KV_EXIT_FAIL;
	} else if (c.status == KV_NOT_FOUND) {
		printf("not found\n");
		rc = KV_EXIT_NOT_FOUND;
	} else if (c.status != KV_OK) {
		fprintf(stderr, "kagami kv %s: server answered: %s\n", cmd,
			kv_status_name(c.status));
		rc = KV_EXIT_FAIL;
	} else {
		if (c.req.op == KV_GET || c.req.op == KV_STATS)
			printf("%.*s\n", (int)c.vlen, c.val);
		else
			printf("OK\n");
		rc = 0;
	}
	kv_engine_free(&en);
	return rc;
}

static int cmd_load(const struct kv_opts *o)
{
	struct kv_engine en = { .fd = -1 };
	struct kg_err e = { 0 };
	struct kv_history hist = { .fd = -1 };
	struct load_ctx c = {
		.hist = &hist,
		.prefix = o->key_prefix, .nkeys = (uint32_t)o->keys,
		.write_ratio = o->write_ratio,
		.value_size = (uint32_t)o->value_size, .rng = o->seed,
		.jfd = -1, .jpath = o->journal,
	};
	unsigned nclients = (unsigned)o->clients;
	int rc = KV_EXIT_FAIL;
	uint64_t id;
	if (!(o->given & OPT_DURATION) || !(o->given & OPT_JOURNAL)) {
		fprintf(stderr, "kagami kv load: --duration and --journal are "
			"required\n");
		return KG_EXIT_USAGE;
	}
	if (nclients > c.nkeys)
		nclients = c.nkeys; /* every client id owns a key */
	c.acked_req = calloc(c.nkeys, sizeof(*c.acked_req));
	c.uncertain = calloc(c.nkeys, 1);
	if (!c.acked_req || !c.uncertain) {
		fprintf(stderr, "kagami kv load: out of memory\n");
		goto out;
	}
	c.jfd = open(o->journal, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
		     0644);
	if (c.jfd < 0) {
		fprintf(stderr, "kagami kv load: open %s: %s\n", o->journal,
			strerror(errno));
		goto out;
	}
	if (kv_random_u64(&id, &e) < 0 ||
	    kv_engine_init(&en, o->server, nclients, id, 1, &e) < 0) {
		fprintf(stderr, "kagami kv load: %s\n", e.msg);
		goto out;
	}
	char hdr[256];
	int hn = snprintf(hdr, sizeof(hdr), "# kagami kv load server=%s "
			  "clients=%u keys=%u write_ratio=%g seed=%" PRIu64
			  " first_client=%016" PRIx64 "\n", o->server,
			  nclients, c.nkeys, c.write_ratio, o->seed,
			  en.slots[0].client_id);
	if (kv_write_all(c.jfd, hdr, (size_t)hn, o->journal, &e) < 0 ||
	    (o->history && (kv_history_open(&hist, o->history, &e) < 0 ||
			    kv_history_mark(&hist, "start", &e) < 0))) {
		fprintf(stderr, "kagami kv load: %s\n", e.msg);
		goto out;
	}
	en.name = "load";
	en.rate = o->given & OPT_RATE ? o->rate : 0;
	en.duration_ns = (uint64_t)(o->duration_s * 1e9);
	en.progress = isatty(STDERR_FILENO);
	en.next = load_next;
	en.done = load_done;
	en.ctx = &c;
	int r = kv_engine_run(&en);
	if (r == 0 && kv_history_mark(&hist, "end", &e) < 0) {
		en.err = e;
		r = -1;
	}
	char extra[256];
	snprintf(extra, sizeof(extra), ",\"puts\":%" PRIu64 ",\"gets\":%"
		 PRIu64 ",\"checked\":%" PRIu64 ",\"mismatches\":%" PRIu64
		 ",\"unacked\":%" PRIu64 ",\"clients\":%u,\"send_errors\":%"
		 PRIu64 ",\"stray\":%" PRIu64, c.puts, c.gets, c.checked,
		 c.mismatches, en.unacked, nclients, en.send_errors,
		 en.ignored);
	kv_print_json(&en, 0, extra);
	if (r < 0)
		fprintf(stderr, "kagami kv load: %s\n", en.err.msg);
	else if (!en.acked)
		fprintf(stderr, "kagami kv load: no answer from %s\n",
			o->server);
	else if (en.errors)
		fprintf(stderr, "kagami kv load: %" PRIu64 " errors (%" PRIu64
			" wrong reads)\n", en.errors, c.mismatches);
	else
		rc = 0;
out:
	if (kv_history_close(&hist, &e) < 0 && rc == 0) {
		fprintf(stderr, "kagami kv load: %s\n", e.msg);
		rc = KV_EXIT_FAIL;
	}
	if (c.jfd >= 0 && close(c.jfd) < 0 && rc == 0) {
		fprintf(stderr, "kagami kv load: close %s: %s\n", o->journal,
			strerror(errno));
		rc = KV_EXIT_FAIL;
	}
	free(c.acked_req);
	free(c.uncertain);
	kv_engine_free(&en);
	return rc;
}

static int cmd_verify(const struct kv_opts *o)
{
	struct kv_engine en = { .fd = -1 };
	struct kg_err e = { 0 };
	struct jtable t = { 0 };
	struct kv_history hist = { .fd = -1 };
	struct verify_ctx c = { .t = &t, .hist = &hist };
	int rc = KV_EXIT_FAIL;
	uint64_t id;
	if (!(o->given & OPT_JOURNAL)) {
		fprintf(stderr, "kagami kv verify: --journal is required\n");
		return KG_EXIT_USAGE;
	}
	if (kv_journal_read(o->journal, &t, &e) < 0 ||
	    (o->history && kv_history_open(&hist, o->history, &e) < 0)) {
		fprintf(stderr, "kagami kv verify: %s\n", e.msg);
		goto out;
	}
	if (kv_random_u64(&id, &e) < 0 ||
	    kv_engine_init(&en, o->server, (unsigned)o->clients, id, 1, &e) < 0) {
		fprintf(stderr, "kagami kv verify: %s\n", e.msg);
		goto out;
	}
	en.name = "verify";
	en.req_timeout_ns = (uint64_t)(o->timeout_s * 1e9);
	en.progress = isatty(STDERR_FILENO);
	en.next = kv_verify_next;
	en.done = kv_verify_done;
	en.ctx = &c;
	int r = kv_engine_run(&en);
	char extra[128];
	snprintf(extra, sizeof(extra), ",\"keys\":%zu,\"ok\":%" PRIu64, t.n,
		 c.ok);
	kv_print_json(&en, c.lost, extra);
	if (r < 0) {
		fprintf(stderr, "kagami kv verify: %s\n", en.err.msg);
	} else if (c.lost) {
		fprintf(stderr, "kagami kv verify: %" PRIu64 " of %zu keys "
			"lost\n", c.lost, t.n);
		rc = KV_EXIT_NOT_FOUND;
	} else if (c.ok != t.n) {
		fprintf(stderr, "kagami kv verify: %zu of %zu keys not "
			"checked (%" PRIu64 " errors)\n", t.n - c.ok, t.n,
			en.errors);
	} else {
		rc = 0;
	}
out:
	if (kv_history_close(&hist, &e) < 0 && rc == 0) {
		fprintf(stderr, "kagami kv verify: %s\n", e.msg);
		rc = KV_EXIT_FAIL;
	}
	kv_jtable_free(&t);
	kv_engine_free(&en);
	return rc;
}

int cmd_kv(int argc, char **argv)
{
	struct kv_opts o = {
		.timeout_s = 5, .keys = 1000, .clients = 8, .write_ratio = 0.5,
		.seed = 1, .value_size = 32, .key_prefix = "k",
	};
	int first, r = parse_opts(argc, argv, &o, &first);
	if (r)
		return r > 0 ? 0 : KG_EXIT_USAGE;
	if (first >= argc) {
		fprintf(stderr, "kagami kv: no command given (try 'kagami kv "
			"--help')\n");
		return KG_EXIT_USAGE;
	}
	const char *cmd = argv[first];
	int nargs = argc - first - 1;
	char **args = argv + first + 1;
	bool single = !strcmp(cmd, "put") || !strcmp(cmd, "get") ||
		      !strcmp(cmd, "del") || !strcmp(cmd, "stats");
	if (!single && strcmp(cmd, "load") && strcmp(cmd, "verify")) {
		fprintf(stderr, "kagami kv: unknown command '%s' (try "
			"'kagami kv --help')\n", cmd);
		return KG_EXIT_USAGE;
	}
	if (!o.server) {
		fprintf(stderr, "kagami kv %s: --server IP:PORT is required\n",
			cmd);
		return KG_EXIT_USAGE;
	}
	struct sockaddr_in sa;
	struct kg_err e = { 0 };
	if (kv_parse_server(o.server, &sa, &e) < 0) {
		fprintf(stderr, "kagami kv: %s\n", e.msg);
		return KG_EXIT_USAGE;
	}
	if (check_opts(cmd, o.given, single ? OPT_CLIENT_ID | OPT_REQ_ID
			: !strcmp(cmd, "load")
			? OPT_DURATION | OPT_RATE | OPT_KEYS | OPT_WRITE_RATIO |
			  OPT_SEED | OPT_CLIENTS | OPT_JOURNAL | OPT_VALUE_SIZE |
			  OPT_KEY_PREFIX | OPT_HISTORY
			: OPT_JOURNAL | OPT_CLIENTS | OPT_HISTORY) < 0)
		return KG_EXIT_USAGE;
	if (!single && nargs) {
		fprintf(stderr, "kagami kv %s: unexpected argument '%s'\n",
			cmd, args[0]);
		return KG_EXIT_USAGE;
	}

	/* SIGINT/SIGTERM end a load or verify early, with its report. */
	struct sigaction sa_stop = { .sa_handler = kv_on_stop_signal }, old_int,
			 old_term;
	sigemptyset(&sa_stop.sa_mask);
	kv_interrupted = 0;
	if (sigaction(SIGINT, &sa_stop, &old_int) < 0 ||
	    sigaction(SIGTERM, &sa_stop, &old_term) < 0) {
		fprintf(stderr, "kagami kv: sigaction: %s\n", strerror(errno));
		return KV_EXIT_FAIL;
	}
	if (single)
		r = cmd_single(&o, cmd, nargs, args);
	else if (!strcmp(cmd, "load"))
		r = cmd_load(&o);
	else
		r = cmd_verify(&o);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	return r;
}
