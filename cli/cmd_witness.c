/* kagami witness: the lease witness server (ft/lease/witness.h). */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "serve.h"
#include "ft/lease/witness.h"
#include "base/log.h"

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
"                    before a restart (default: --max-ttl; 0 when this\n"
"                    witness never served before)\n"
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

static int parse_ms(const char *name, const char *opt, const char *s,
		    long long min, long long *out)
{
	char *end;
	long long v = strtoll(s, &end, 10);
	if (!*s || *end || v < min || v > 2147483647LL) {
		fprintf(stderr, "%s: %s '%s': expected milliseconds, %lld.."
			"2147483647\n", name, opt, s, min);
		return -1;
	}
	*out = v;
	return 0;
}

int cmd_witness(int argc, char **argv)
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
	const char *name = "kagami witness";
	const char *listen_addr = NULL, *keyfile = NULL;
	long long max_ttl = 60000, grace = -1;
	bool insecure = false;
	opterr = 0;
	optind = 1;
	int c;
	while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
		switch (c) {
		case O_LISTEN: listen_addr = optarg; break;
		case O_KEY:
			/* Elsewhere --key is the replication key, which must
			 * not be copied here. */
			fprintf(stderr, "%s: --key: the witness takes only the "
				"lease key, as --lease-key FILE (the file the "
				"primary and the secondary give as --lease-key, "
				"not their replication --key)\n", name);
			return KG_EXIT_USAGE;
		case O_LEASE_KEY: keyfile = optarg; break;
		case O_INSECURE: insecure = true; break;
		case O_MAX_TTL:
			if (parse_ms(name, "--max-ttl", optarg, 1, &max_ttl) < 0)
				return KG_EXIT_USAGE;
			break;
		case O_GRACE:
			if (parse_ms(name, "--grace", optarg, 0, &grace) < 0)
				return KG_EXIT_USAGE;
			break;
		case 'h':
			witness_usage(stdout);
			return 0;
		case ':':
			fprintf(stderr, "%s: option %s needs a value\n", name,
				argv[optind - 1]);
			return KG_EXIT_USAGE;
		default:
			fprintf(stderr, "%s: unknown option '%s' (try '%s "
				"--help')\n", name, argv[optind - 1], name);
			return KG_EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "%s: unexpected argument '%s'\n", name,
			argv[optind]);
		return KG_EXIT_USAGE;
	}
	if (!listen_addr) {
		fprintf(stderr, "%s: --listen ADDR is required (try '%s "
			"--help')\n", name, name);
		return KG_EXIT_USAGE;
	}
	struct link_policy lp = { .keyfile = keyfile, .insecure = insecure };
	if (serve_link_policy(name, &lp))
		return KG_EXIT_USAGE;
	struct witness_opts wo;
	witness_opts_default(&wo);
	kg_log_configure(name, KG_LOG_INFO, NULL, NULL);
	wo.max_ttl_ms = (unsigned)max_ttl;
	wo.grace_ms = grace < 0 ? max_ttl : grace;

	struct kg_err e = { 0 };
	struct kg_tp_key key;
	if (keyfile && kg_tp_key_load(keyfile, &key, &e) < 0) {
		fprintf(stderr, "%s: --lease-key: %s\n", name, e.msg);
		return KG_EXIT_USAGE;
	}
	struct kg_tp_listener *l;
	if (witness_listen(listen_addr, keyfile ? &key : NULL, &wo, &l,
			   &e) < 0) {
		memset(&key, 0, sizeof(key));
		fprintf(stderr, "%s: %s\n", name, e.msg);
		return KG_EXIT_USAGE;
	}
	memset(&key, 0, sizeof(key)); /* the listener has its own copy */
	serve_link_warnings(name, &lp);

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
		kg_tp_listener_close(l);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		return KG_EXIT_HOST;
	}
	int status = 0;
	if (witness_serve(l, &wo, &sc.stop, &e) < 0) {
		fprintf(stderr, "%s: %s\n", name, e.msg);
		status = KG_EXIT_HOST;
		pthread_kill(th, SIGTERM); /* wakes the signal thread */
	}
	pthread_join(th, NULL);
	if (status == 0)
		fprintf(stderr, "%s: stopped by %s\n", name,
			sc.sig == SIGINT ? "SIGINT" : "SIGTERM");
	kg_tp_listener_close(l);
	/* The signals stay blocked until exit: a second SIGTERM (timeout(1)
	 * also signals the process group) must not turn a clean stop into
	 * death by signal. */
	return status;
}
