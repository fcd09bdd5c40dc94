/* kagami witness: the lease witness server (ft/lease/witness.h). */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "serve.h"
#include "opts.h"
#include "base/parse.h"
#include "ft/lease/witness.h"
#include "base/log.h"

#define WITNESS_NAME "kagami witness"

static void witness_usage(FILE *f)
{
	fprintf(f,
"usage: kagami witness --listen ADDR [OPTIONS]\n"
"\n"
"Serves leases to protected VMs (split-brain prevention): a primary and a\n"
"secondary configured with the lease witness:ADDR[#NAME] ask here, and\n"
"only the side holding the lease runs the guest. Run it on a third host,\n"
"so that the side cut off from it is the one that stops. Grants,\n"
"hand-overs, releases and refusals are logged on stderr, one line each.\n"
"Serves until SIGINT or SIGTERM.\n"
"\n"
"  --listen ADDR     tcp:HOST:PORT (port 0: any; the address is printed)\n"
"                    or unix:PATH\n"
"  --lease-key FILE  the lease key (32..4096 bytes, mode 0600, yours):\n"
"                    the file the primary and the secondary give as\n"
"                    --lease-key; not the replication --key, which this\n"
"                    host never needs. Required, unless --insecure\n"
"  --insecure        serve without a key (warned): anyone who reaches this\n"
"                    port may then ask for leases\n"
"  --max-ttl MS      longest lease granted (default 60000)\n"
"  --grace MS        after start, grant only renewals of leases given\n"
"                    before a restart (default: --max-ttl; give 0 to a\n"
"                    witness that never served before: it cannot tell)\n"
"  -h, --help        show this help\n"
"\n"
"Leases live in memory only: after a restart, --grace keeps a side that\n"
"still runs its guest from being overtaken by the other.\n"
"exit status: 0 stopped by a signal; 2 bad arguments or address.\n");
}

/* Turns SIGINT/SIGTERM into a stop request (the signals are blocked in
 * every other thread), so no handler and no global flag are needed. */
struct sigctx {
	sigset_t set;
	atomic_bool stop;
	int sig;
};

static void *sig_main(void *arg)
{
	struct sigctx *c = arg;
	int sig;
	if (sigwait(&c->set, &sig) == 0)
		c->sig = sig;
	atomic_store(&c->stop, true);
	return NULL;
}

/* --max-ttl and --grace: milliseconds from min to INT32_MAX. */
static int parse_ms(struct opts *p, uint64_t min, uint64_t *out)
{
	if (kg_parse_u64(p->arg, 10, min, 2147483647, out) == 0)
		return 0;
	return opts_bad(p, "expected milliseconds, %llu..2147483647",
			(unsigned long long)min);
}

struct witness_args {
	const char *listen_addr, *keyfile;
	bool insecure;
	uint64_t max_ttl;
	int64_t grace; /* -1: --max-ttl */
};

/* 0, 1 after --help, or -1 after a message. */
static int witness_parse(int argc, char **argv, struct witness_args *a)
{
	enum { O_LISTEN = 256, O_KEY, O_LEASE_KEY, O_MAX_TTL, O_GRACE,
	       O_INSECURE };
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, O_LISTEN },
		{ "key", required_argument, NULL, O_KEY },
		{ "lease-key", required_argument, NULL, O_LEASE_KEY },
		{ "max-ttl", required_argument, NULL, O_MAX_TTL },
		{ "grace", required_argument, NULL, O_GRACE },
		{ "insecure", no_argument, NULL, O_INSECURE },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts p;
	uint64_t grace;
	opts_init(&p, WITNESS_NAME, argc, argv, opts, OPTS_IN_ORDER);
	for (int c; (c = opts_next(&p)) != OPTS_END;) {
		switch (c) {
		case O_LISTEN: a->listen_addr = p.arg; break;
		case O_KEY:
			/* Elsewhere --key is the replication key, which must
			 * not be copied here. */
			fprintf(stderr, "%s: --key: the witness takes only the "
				"lease key, as --lease-key FILE (the file the "
				"primary and the secondary give as --lease-key, "
				"not their replication --key)\n", p.name);
			return -1;
		case O_LEASE_KEY: a->keyfile = p.arg; break;
		case O_INSECURE: a->insecure = true; break;
		case O_MAX_TTL:
			if (parse_ms(&p, 1, &a->max_ttl) < 0)
				return -1;
			break;
		case O_GRACE:
			if (parse_ms(&p, 0, &grace) < 0)
				return -1;
			a->grace = (int64_t)grace;
			break;
		case 'h':
			witness_usage(stdout);
			return 1;
		default:
			return -1;
		}
	}
	if (opts_no_operands(&p) < 0)
		return -1;
	if (!a->listen_addr) {
		fprintf(stderr, "%s: --listen ADDR is required (try '%s "
			"--help')\n", p.name, p.name);
		return -1;
	}
	return 0;
}

/* Serves on l until SIGINT or SIGTERM: the exit status. */
static int witness_serve_until_signal(struct kg_tp_listener *l,
				      const struct witness_opts *wo)
{
	const char *name = WITNESS_NAME;
	struct kg_err e = { 0 };
	struct sigctx sc = { .sig = 0 };
	atomic_init(&sc.stop, false);
	sigemptyset(&sc.set);
	sigaddset(&sc.set, SIGINT);
	sigaddset(&sc.set, SIGTERM);
	sigset_t old;
	pthread_t th;
	int r = pthread_sigmask(SIG_BLOCK, &sc.set, &old);
	if (r == 0)
		r = pthread_create(&th, NULL, sig_main, &sc);
	if (r != 0) {
		fprintf(stderr, "%s: signal thread: %s\n", name, strerror(r));
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		return KG_EXIT_HOST;
	}
	int status = 0;
	if (witness_serve(l, wo, &sc.stop, &e) < 0) {
		fprintf(stderr, "%s: %s\n", name, e.msg);
		status = KG_EXIT_HOST;
		pthread_kill(th, SIGTERM); /* wakes the signal thread */
	}
	pthread_join(th, NULL);
	if (status == 0)
		fprintf(stderr, "%s: stopped by %s\n", name,
			sc.sig == SIGINT ? "SIGINT" : "SIGTERM");
	/* The signals stay blocked until exit: a second SIGTERM (timeout(1)
	 * also signals the process group) must not turn a clean stop into
	 * death by signal. */
	return status;
}

int cmd_witness(int argc, char **argv)
{
	const char *name = WITNESS_NAME;
	struct witness_args a = { .max_ttl = 60000, .grace = -1 };
	int r = witness_parse(argc, argv, &a);
	if (r)
		return r > 0 ? 0 : KG_EXIT_USAGE;
	struct link_policy lp = { .keyfile = a.keyfile,
				  .insecure = a.insecure };
	if (serve_link_policy(name, &lp))
		return KG_EXIT_USAGE;
	struct witness_opts wo;
	witness_opts_default(&wo);
	kg_log_configure(name, KG_LOG_INFO, NULL, NULL);
	wo.max_ttl_ms = (unsigned)a.max_ttl;
	wo.grace_ms = a.grace < 0 ? (unsigned)a.max_ttl : (unsigned)a.grace;

	struct kg_err e = { 0 };
	struct kg_tp_key key;
	if (a.keyfile && kg_tp_key_load(a.keyfile, &key, &e) < 0) {
		fprintf(stderr, "%s: --lease-key: %s\n", name, e.msg);
		return KG_EXIT_USAGE;
	}
	struct kg_tp_listener *l;
	if (witness_listen(a.listen_addr, a.keyfile ? &key : NULL, &wo, &l,
			   &e) < 0) {
		memset(&key, 0, sizeof(key));
		fprintf(stderr, "%s: %s\n", name, e.msg);
		return KG_EXIT_USAGE;
	}
	memset(&key, 0, sizeof(key)); /* the listener has its own copy */
	serve_link_warnings(name, &lp);
	int status = witness_serve_until_signal(l, &wo);
	kg_tp_listener_close(l);
	return status;
}
