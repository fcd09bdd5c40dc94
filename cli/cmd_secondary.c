/* kagami secondary: options, then the standby state machine
 * (ft/pipeline/standby.h) holds the replica and takes over. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "serve.h"
#include "ft/pipeline/standby.h"
#include "base/log.h"

static void secondary_usage(FILE *f)
{
	fprintf(f,
"usage: kagami secondary --listen ADDR [OPTIONS]\n"
"\n"
"Holds the replica of a VM protected by 'kagami run --replicate\n"
"ft|ha|lockstep\n"
"--peer ADDR' on another host: it receives a full copy while the primary\n"
"runs, then every epoch (FT) or checkpoint (HA), commits each one whole\n"
"and acknowledges it. When the primary falls silent for\n"
"--failover-timeout ms (killed, host or link dead), the secondary resumes\n"
"the guest from the last committed epoch, announces its MAC on its\n"
"networks (RARP) and runs it from then on, like 'kagami run'.\n"
"With FT nothing a client saw is lost (the primary held every output\n"
"until this side had the state behind it); with HA up to one interval.\n"
"Lockstep: after the first copy the replica runs, replaying the primary's\n"
"execution log with its outputs suppressed; when the primary is lost it\n"
"replays all the log it has, then goes live from there (nothing a client\n"
"saw is lost). A replica whose state digest differs from the primary's is\n"
"reported (DIVERGED) and dropped; the primary then sends a new copy.\n"
"\n"
"  --listen ADDR       tcp:HOST:PORT (or unix:PATH) the primary's --peer\n"
"  --key FILE          pre-shared key (as the primary's --key); required,\n"
"                      unless --insecure\n"
"  --insecure          accept an unauthenticated primary (warned)\n"
"  --disk PATH         the replica's image, one per primary disk: created\n"
"                      here (must not exist or be empty), filled and kept\n"
"                      equal to the committed state\n"
"  --net tap:IFNAME[,mac=MAC]   as for 'kagami run' (same MAC as primary)\n"
"  --console SPEC      as for 'kagami run' (default stdio; output starts\n"
"                      at failover)\n"
"  --control PATH      control socket once the guest runs here\n"
"  --failover-timeout MS  silence before taking over (default 100)\n"
"  --lease SPEC        split-brain guard, as the primary's --lease: take\n"
"                      over only once the primary's lease has run out (a\n"
"                      primary cut off from us but alive keeps it, and we\n"
"                      stand down and wait for it to reconnect); required,\n"
"                      unless --no-lease\n"
"  --no-lease          no split-brain guard (warned: a cut link then runs\n"
"                      the guest on both sides)\n"
"  --lease-key FILE    as the primary's: the lease witness's key, not the\n"
"                      replication --key\n"
"  --lease-ttl MS      as the primary's (default 1.5x the failover timeout)\n"
"  --timeout SECONDS   stop the guest this long after taking over\n"
"  --summary           print a run summary at the end\n"
"  --max-stream-memory SIZE  what the primary may make this side hold\n"
"                      per connection (a staged epoch, queued log): beyond\n"
"                      it the stream is refused as corrupt (the replica is\n"
"                      kept). Default 2x the guest's RAM + 64M; raise it\n"
"                      for epochs carrying more disk blocks than that\n"
"  -h, --help          show this help\n"
"\n"
"Without a committed epoch there is nothing to resume: a primary lost\n"
"during the initial copy leaves the secondary waiting for the next one.\n"
"Split brain: with --no-lease, a cut link looks like a dead primary, and\n"
"both sides run the guest.\n"
"exit status: 0 when the primary ended protection on purpose (its guest\n"
"ended); after a failover, as for 'kagami run'; 1 on errors.\n");
}

struct sec_args {
	struct standby_opts so;
	struct serve_role role;
	const char *listen_addr, *keyfile, *lease_keyfile;
	bool insecure, no_lease;
	struct kg_faults faults;
};

static int ms_opt(const char *name, const char *opt, const char *arg,
		  unsigned *out)
{
	char *end;
	unsigned long v = strtoul(arg, &end, 10);
	if (!*arg || *end || v < 10 || v > 600000) {
		fprintf(stderr, "%s: %s '%s': milliseconds, 10 to 600000\n",
			name, opt, arg);
		return -1;
	}
	*out = (unsigned)v;
	return 0;
}

static int corrupt_opt(struct sec_args *a, const char *arg)
{
	char *end;
	unsigned long long at = strtoull(arg, &end, 10);
	char spec[48];
	struct kg_err e = { 0 };
	if (!*arg || *end || !at) {
		fprintf(stderr, "%s: --test-corrupt-at '%s': an exit index "
			"above 0\n", a->role.name, arg);
		return -1;
	}
	snprintf(spec, sizeof(spec), "replay.corrupt=at:%llu", at);
	return kg_faults_parse(spec, &a->faults, &e);
}

enum { O_LISTEN = 256, O_KEY, O_DISK, O_NET, O_CONSOLE, O_CONTROL,
       O_TIMEOUT, O_SUMMARY, O_FAILOVER, O_LEASE, O_LEASE_TTL,
       O_LEASE_KEY, O_CORRUPT_AT, O_INSECURE, O_NO_LEASE, O_MAX_STREAM_MEM };
static const struct option sec_opts[] = {
	{ "listen", required_argument, NULL, O_LISTEN },
	{ "key", required_argument, NULL, O_KEY },
	{ "disk", required_argument, NULL, O_DISK },
	{ "net", required_argument, NULL, O_NET },
	{ "console", required_argument, NULL, O_CONSOLE },
	{ "control", required_argument, NULL, O_CONTROL },
	{ "timeout", required_argument, NULL, O_TIMEOUT },
	{ "summary", no_argument, NULL, O_SUMMARY },
	{ "failover-timeout", required_argument, NULL, O_FAILOVER },
	{ "lease", required_argument, NULL, O_LEASE },
	{ "lease-ttl", required_argument, NULL, O_LEASE_TTL },
	{ "lease-key", required_argument, NULL, O_LEASE_KEY },
	{ "test-corrupt-at", required_argument, NULL, O_CORRUPT_AT },
	{ "insecure", no_argument, NULL, O_INSECURE },
	{ "no-lease", no_argument, NULL, O_NO_LEASE },
	{ "max-stream-memory", required_argument, NULL, O_MAX_STREAM_MEM },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* One option; 1: go on, 0: --help printed, -1: bad (said). */
static int sec_opt(struct sec_args *a, int c, int li, char **argv)
{
	const char *name = a->role.name;
	char *end;
	switch (c) {
	case O_LISTEN: a->listen_addr = optarg; return 1;
	case O_KEY: a->keyfile = optarg; return 1;
	case O_CONTROL: a->role.control_path = optarg; return 1;
	case O_SUMMARY: a->role.summary = true; return 1;
	case O_LEASE: a->so.lease = optarg; return 1;
	case O_LEASE_KEY: a->lease_keyfile = optarg; return 1;
	case O_INSECURE: a->insecure = true; return 1;
	case O_NO_LEASE: a->no_lease = true; return 1;
	case O_LEASE_TTL:
		return ms_opt(name, "--lease-ttl", optarg,
			      &a->so.lease_ttl_ms) < 0 ? -1 : 1;
	case O_FAILOVER:
		return ms_opt(name, "--failover-timeout", optarg,
			      &a->so.failover_ms) < 0 ? -1 : 1;
	case O_CORRUPT_AT:
		return corrupt_opt(a, optarg) < 0 ? -1 : 1;
	case O_MAX_STREAM_MEM:
		return serve_stream_memory_opt(name, optarg,
					       &a->so.max_stream_memory) < 0 ?
			       -1 : 1;
	case O_TIMEOUT:
		a->role.timeout_s = strtod(optarg, &end);
		if (!*optarg || *end || !(a->role.timeout_s > 0)) {
			fprintf(stderr, "%s: --timeout '%s': expected a "
				"positive number of seconds\n", name, optarg);
			return -1;
		}
		return 1;
	case O_CONSOLE:
	case O_DISK:
	case O_NET:
		return serve_resource_opt(name, sec_opts[li].name, optarg,
					  &a->so.cfg) < 0 ? -1 : 1;
	case 'h':
		secondary_usage(stdout);
		return 0;
	case ':':
		fprintf(stderr, "%s: option %s needs a value\n", name,
			argv[optind - 1]);
		return -1;
	default:
		fprintf(stderr, "%s: unknown option '%s' (try '%s --help')\n",
			name, argv[optind - 1], name);
		return -1;
	}
}

/* 1: run; 0: done (help); -1: bad arguments (said). */
static int sec_parse(int argc, char **argv, struct sec_args *a)
{
	opterr = 0;
	optind = 1;
	int c, li = 0;
	while ((c = getopt_long(argc, argv, "+:h", sec_opts, &li)) != -1) {
		int r = sec_opt(a, c, li, argv);
		if (r <= 0)
			return r;
	}
	const char *name = a->role.name;
	if (optind != argc) {
		fprintf(stderr, "%s: unexpected argument '%s'\n", name,
			argv[optind]);
		return -1;
	}
	if (!a->listen_addr) {
		fprintf(stderr, "%s: --listen ADDR is required (try '%s "
			"--help')\n", name, name);
		return -1;
	}
	if (a->lease_keyfile && !a->so.lease) {
		fprintf(stderr, "%s: --lease-key needs --lease witness:ADDR\n",
			name);
		return -1;
	}
	if (!a->so.lease_ttl_ms)
		a->so.lease_ttl_ms = 3 * a->so.failover_ms / 2;
	return 1;
}

int cmd_secondary(int argc, char **argv)
{
	struct sec_args a = { .role.name = "kagami secondary",
			      .so.failover_ms = 100 };
	int r = sec_parse(argc, argv, &a);
	if (r <= 0)
		return r == 0 ? 0 : KG_EXIT_USAGE;
	kg_log_configure(a.role.name, KG_LOG_INFO, NULL, NULL);
	/* The witness's key, apart from the replication key: the witness's
	 * host holds this one only. */
	struct kg_tp_key lease_key, key;
	struct kg_err e = { 0 };
	if (a.lease_keyfile &&
	    kg_tp_key_load(a.lease_keyfile, &lease_key, &e) < 0) {
		fprintf(stderr, "%s: --lease-key: %s\n", a.role.name, e.msg);
		return KG_EXIT_USAGE;
	}
	a.so.lease_key = a.lease_keyfile ? &lease_key : NULL;
	struct link_policy lp = { a.keyfile, a.insecure, a.so.lease,
				  a.lease_keyfile, a.no_lease, true };
	if (serve_link_policy(a.role.name, &lp))
		return KG_EXIT_USAGE;
	/* Patient during the first copy; once an epoch is committed the
	 * primary sends one or a heartbeat at least every 20 ms, and
	 * --failover-timeout of silence means it is gone. */
	r = serve_listen(a.role.name, a.listen_addr, a.keyfile, 10000, &key,
			 &a.so.listener);
	if (r)
		return r;
	serve_link_warnings(a.role.name, &lp);
	sigset_t old;
	serve_block_signals(&old);
	a.so.faults = &a.faults;
	a.so.hooks = serve_role_hooks(&a.role);
	int status = standby_run(&a.so);
	early_signals_stop(a.role.es);
	kg_tp_listener_close(a.so.listener);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return status;
}
