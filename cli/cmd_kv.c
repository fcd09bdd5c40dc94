/*
 * kagami kv: the command line of the kvstore client (kv/kv_client.h says
 * what put/get/del/stats, load and verify do, the journal's format and
 * what verify accepts). Here: options, then one call into kv/, and what
 * it found printed as before -- one JSON line on stdout for load and
 * verify, one line per problem on stderr, and the exit status.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>

#include "cli.h"
#include "opts.h"
#include "base/err.h"
#include "base/parse.h"
#include "kv/kv_client.h"

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
	uint64_t keys, clients, value_size;
	uint64_t seed, client_id, req_id;
	unsigned given; /* OPT_* bits */
};

/* The options beyond --server and --timeout, in the order of their OPT_
 * bits: a command accepts some of them (check_opts). */
enum {
	O_SERVER = 256, O_TIMEOUT, O_DURATION, O_RATE, O_KEYS, O_WRITE_RATIO,
	O_SEED, O_CLIENTS, O_JOURNAL, O_VALUE_SIZE, O_CLIENT_ID, O_REQ_ID,
	O_KEY_PREFIX, O_HISTORY,
};
#define OPT(o) (1u << ((o) - O_DURATION))
enum {
	OPT_DURATION = OPT(O_DURATION), OPT_RATE = OPT(O_RATE),
	OPT_KEYS = OPT(O_KEYS), OPT_WRITE_RATIO = OPT(O_WRITE_RATIO),
	OPT_SEED = OPT(O_SEED), OPT_CLIENTS = OPT(O_CLIENTS),
	OPT_JOURNAL = OPT(O_JOURNAL), OPT_VALUE_SIZE = OPT(O_VALUE_SIZE),
	OPT_CLIENT_ID = OPT(O_CLIENT_ID), OPT_REQ_ID = OPT(O_REQ_ID),
	OPT_KEY_PREFIX = OPT(O_KEY_PREFIX), OPT_HISTORY = OPT(O_HISTORY),
};

static const struct option kv_longopts[] = {
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
	/* Hidden, for tests: send exactly this request id. */
	{ "client-id", required_argument, NULL, O_CLIENT_ID },
	{ "req-id", required_argument, NULL, O_REQ_ID },
	{ "key-prefix", required_argument, NULL, O_KEY_PREFIX },
	{ "history", required_argument, NULL, O_HISTORY },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* --seed, --client-id, --req-id: any 64-bit number. */
static int opt_u64(struct opts *p, int base, uint64_t *out)
{
	if (kg_parse_u64(p->arg, base, 0, UINT64_MAX, out) == 0)
		return 0;
	return opts_bad(p, "expected a %s number",
			base == 16 ? "hexadecimal" : "whole");
}

/* One option's value into o: 0, or -1 after a message. */
static int opt_value(struct opts *p, int c, struct kv_opts *o)
{
	switch (c) {
	case O_SERVER: o->server = p->arg; return 0;
	case O_TIMEOUT: return opts_real(p, 0, 86400, true, &o->timeout_s);
	case O_DURATION: return opts_real(p, 0, 86400, true, &o->duration_s);
	case O_RATE: return opts_real(p, 0, 1e7, true, &o->rate);
	case O_KEYS: return opts_uint(p, 1, MAX_KEYS, &o->keys);
	case O_WRITE_RATIO: return opts_real(p, 0, 1, false, &o->write_ratio);
	case O_SEED: return opt_u64(p, 10, &o->seed);
	case O_CLIENTS: return opts_uint(p, 1, MAX_CLIENTS, &o->clients);
	case O_JOURNAL: o->journal = p->arg; return 0;
	case O_HISTORY: o->history = p->arg; return 0;
	case O_VALUE_SIZE: return opts_uint(p, 0, KV_VAL_MAX, &o->value_size);
	case O_CLIENT_ID: return opt_u64(p, 16, &o->client_id);
	case O_REQ_ID:
		if (opt_u64(p, 10, &o->req_id) < 0)
			return -1;
		if (!o->req_id) {
			fprintf(stderr, "kagami kv: --req-id must be at least "
				"1\n");
			return -1;
		}
		return 0;
	case O_KEY_PREFIX:
		o->key_prefix = p->arg;
		if (strlen(p->arg) > KV_KEY_MAX - 10 ||
		    strpbrk(p->arg, " \t\n\r\v\f")) {
			fprintf(stderr, "kagami kv: --key-prefix: at most %d "
				"bytes, no white space\n", KV_KEY_MAX - 10);
			return -1;
		}
		return 0;
	}
	return -1;
}

/* 0 with *first the command's index; 1 after --help; -1 after a message. */
static int parse_opts(int argc, char **argv, struct kv_opts *o, int *first)
{
	struct opts p;
	opts_init(&p, "kagami kv", argc, argv, kv_longopts, OPTS_PERMUTE);
	for (int c; (c = opts_next(&p)) != OPTS_END;) {
		if (c == 'h') {
			kv_usage(stdout);
			return 1;
		}
		if (c == OPTS_ERROR)
			return -1;
		if (c >= O_DURATION)
			o->given |= OPT(c);
		if (opt_value(&p, c, o) < 0)
			return -1;
	}
	*first = p.optind;
	return 0;
}

/* The options a command accepts beyond --server and --timeout. */
static int check_opts(const char *cmd, unsigned given, unsigned allowed)
{
	for (const struct option *k = kv_longopts; k->name; k++) {
		if (k->val < O_DURATION || !(given & OPT(k->val)) ||
		    (allowed & OPT(k->val)))
			continue;
		fprintf(stderr, "kagami kv %s: option --%s does not apply (try "
			"'kagami kv --help')\n", cmd, k->name);
		return -1;
	}
	return 0;
}

/* Prints a note from kv/ (arg: the command's name). */
static void print_note(void *arg, const char *msg)
{
	fprintf(stderr, "kagami kv %s: %s\n", (const char *)arg, msg);
}

static void print_json_line(const char *json)
{
	printf("%s\n", json);
	fflush(stdout);
}

/* What a single request came to: its exit status. */
static int single_outcome(const struct kv_opts *o, const char *cmd,
			  const struct kv_single *s, int run)
{
	if (run < 0) {
		fprintf(stderr, "kagami kv %s: %s\n", cmd, s->en.err.msg);
	} else if (kv_interrupted && s->status == RES_TIMEOUT) {
		fprintf(stderr, "kagami kv %s: interrupted\n", cmd);
	} else if (s->status == RES_TIMEOUT) {
		fprintf(stderr, "kagami kv %s: no answer from %s in %g s "
			"(%" PRIu64 " tries)\n", cmd, o->server, o->timeout_s,
			s->en.retries + 1);
	} else if (s->status == KV_NOT_FOUND) {
		printf("not found\n");
		return KV_EXIT_NOT_FOUND;
	} else if (s->status != KV_OK) {
		fprintf(stderr, "kagami kv %s: server answered: %s\n", cmd,
			kv_status_name(s->status));
	} else {
		if (s->req.op == KV_GET || s->req.op == KV_STATS)
			printf("%.*s\n", (int)s->vlen, s->val);
		else
			printf("OK\n");
		return 0;
	}
	return KV_EXIT_FAIL;
}

static int cmd_single(const struct kv_opts *o, const char *cmd, int nargs,
		      char **args)
{
	struct kg_err e = { 0 };
	struct kv_req req;
	if (kv_single_parse(cmd, nargs, args, &req, &e) < 0) {
		fprintf(stderr, "kagami kv %s: %s\n", cmd, e.msg);
		return KG_EXIT_USAGE;
	}
	struct kv_single_opts so = {
		.server = o->server, .name = cmd,
		.client_id = o->given & OPT_CLIENT_ID ? &o->client_id : NULL,
		.req_id = o->given & OPT_REQ_ID ? o->req_id : 1,
		.timeout_s = o->timeout_s,
	};
	struct kv_single s;
	int rc;
	if (kv_single_open(&s, &so, &req, &e) < 0) {
		fprintf(stderr, "kagami kv: %s\n", e.msg);
		rc = KV_EXIT_FAIL;
	} else {
		rc = single_outcome(o, cmd, &s, kv_single_run(&s));
	}
	kv_single_close(&s);
	return rc;
}

static int cmd_load(const struct kv_opts *o)
{
	if (!(o->given & OPT_DURATION) || !(o->given & OPT_JOURNAL)) {
		fprintf(stderr, "kagami kv load: --duration and --journal are "
			"required\n");
		return KG_EXIT_USAGE;
	}
	struct kv_load_opts lo = {
		.server = o->server, .journal = o->journal,
		.history = o->history, .key_prefix = o->key_prefix,
		.keys = (uint32_t)o->keys, .clients = (uint32_t)o->clients,
		.value_size = (uint32_t)o->value_size,
		.write_ratio = o->write_ratio,
		.rate = o->given & OPT_RATE ? o->rate : 0,
		.duration_s = o->duration_s, .seed = o->seed,
		.progress = isatty(STDERR_FILENO),
		.note = print_note, .note_arg = "load",
	};
	struct kv_load l;
	struct kg_err e = { 0 };
	int rc = KV_EXIT_FAIL;
	if (kv_load_open(&l, &lo, &e) < 0) {
		fprintf(stderr, "kagami kv load: %s\n", e.msg);
		kv_load_close(&l, NULL);
		return rc;
	}
	int r = kv_load_run(&l);
	char json[1024];
	kv_load_json(&l, json, sizeof(json));
	print_json_line(json);
	if (r < 0)
		fprintf(stderr, "kagami kv load: %s\n", l.en.err.msg);
	else if (!l.en.acked)
		fprintf(stderr, "kagami kv load: no answer from %s\n",
			o->server);
	else if (l.en.errors)
		fprintf(stderr, "kagami kv load: %" PRIu64 " errors (%" PRIu64
			" wrong reads)\n", l.en.errors, l.mismatches);
	else
		rc = 0;
	if (kv_load_close(&l, &e) < 0 && rc == 0) {
		fprintf(stderr, "kagami kv load: %s\n", e.msg);
		rc = KV_EXIT_FAIL;
	}
	return rc;
}

static int cmd_verify(const struct kv_opts *o)
{
	if (!(o->given & OPT_JOURNAL)) {
		fprintf(stderr, "kagami kv verify: --journal is required\n");
		return KG_EXIT_USAGE;
	}
	struct kv_verify_opts vo = {
		.server = o->server, .journal = o->journal,
		.history = o->history, .clients = (uint32_t)o->clients,
		.timeout_s = o->timeout_s, .progress = isatty(STDERR_FILENO),
		.note = print_note, .note_arg = "verify",
	};
	struct kv_verify v;
	struct kg_err e = { 0 };
	int rc = KV_EXIT_FAIL;
	if (kv_verify_open(&v, &vo, &e) < 0) {
		fprintf(stderr, "kagami kv verify: %s\n", e.msg);
		kv_verify_close(&v, NULL);
		return rc;
	}
	int r = kv_verify_run(&v);
	char json[512];
	kv_verify_json(&v, json, sizeof(json));
	print_json_line(json);
	size_t n = v.t.n;
	if (r < 0) {
		fprintf(stderr, "kagami kv verify: %s\n", v.en.err.msg);
	} else if (v.lost) {
		fprintf(stderr, "kagami kv verify: %" PRIu64 " of %zu keys "
			"lost\n", v.lost, n);
		rc = KV_EXIT_NOT_FOUND;
	} else if (v.ok != n) {
		fprintf(stderr, "kagami kv verify: %zu of %zu keys not "
			"checked (%" PRIu64 " errors)\n", n - v.ok, n,
			v.en.errors);
	} else {
		rc = 0;
	}
	if (kv_verify_close(&v, &e) < 0 && rc == 0) {
		fprintf(stderr, "kagami kv verify: %s\n", e.msg);
		rc = KV_EXIT_FAIL;
	}
	return rc;
}

/* The command and its options, checked before anything is sent: 0, or
 * -1 after a message. */
static int check_command(const struct kv_opts *o, const char *cmd,
			 int nargs, char **args, bool *single)
{
	*single = !strcmp(cmd, "put") || !strcmp(cmd, "get") ||
		  !strcmp(cmd, "del") || !strcmp(cmd, "stats");
	if (!*single && strcmp(cmd, "load") && strcmp(cmd, "verify")) {
		fprintf(stderr, "kagami kv: unknown command '%s' (try "
			"'kagami kv --help')\n", cmd);
		return -1;
	}
	if (!o->server) {
		fprintf(stderr, "kagami kv %s: --server IP:PORT is required\n",
			cmd);
		return -1;
	}
	struct sockaddr_in sa;
	struct kg_err e = { 0 };
	if (kv_parse_server(o->server, &sa, &e) < 0) {
		fprintf(stderr, "kagami kv: %s\n", e.msg);
		return -1;
	}
	if (check_opts(cmd, o->given, *single ? OPT_CLIENT_ID | OPT_REQ_ID
			: !strcmp(cmd, "load")
			? OPT_DURATION | OPT_RATE | OPT_KEYS | OPT_WRITE_RATIO |
			  OPT_SEED | OPT_CLIENTS | OPT_JOURNAL | OPT_VALUE_SIZE |
			  OPT_KEY_PREFIX | OPT_HISTORY
			: OPT_JOURNAL | OPT_CLIENTS | OPT_HISTORY) < 0)
		return -1;
	if (!*single && nargs) {
		fprintf(stderr, "kagami kv %s: unexpected argument '%s'\n",
			cmd, args[0]);
		return -1;
	}
	return 0;
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
	bool single;
	if (check_command(&o, cmd, nargs, args, &single) < 0)
		return KG_EXIT_USAGE;

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
