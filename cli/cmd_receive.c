/* kagami receive: options, then the receiver state machine
 * (ft/pipeline/receiver.h) takes the VM in and runs it. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "serve.h"
#include "ft/pipeline/receiver.h"
#include "base/log.h"

static void receive_usage(FILE *f)
{
	fprintf(f,
"usage: kagami receive --listen ADDR [OPTIONS]\n"
"\n"
"Waits for one VM sent by 'kagami ctl SOCKET migrate ADDR' on another\n"
"kagami, then runs it here until it ends, like 'kagami run'. Memory size,\n"
"vCPUs and the guest's state come from the source; host resources are\n"
"given here: as many --disk and --net as the VM has, and a console.\n"
"\n"
"  --listen ADDR       tcp:HOST:PORT (port 0: any; the address is printed),\n"
"                      unix:PATH or rdma:HOST:PORT\n"
"  --key FILE          pre-shared key (32..4096 bytes, mode 0600): the\n"
"                      source must hold the same one; whoever can write\n"
"                      this stream writes the guest's memory; required,\n"
"                      unless --insecure\n"
"  --insecure          accept an unauthenticated source (warned)\n"
"  --disk PATH         shared storage: the same image the source uses\n"
"                      (same size; its lock passes at hand-over). With\n"
"                      'migrate --with-storage': a new image created here\n"
"                      (must not exist or be empty), filled from the source\n"
"  --net tap:IFNAME[,mac=MAC]   as for 'kagami run'\n"
"  --console SPEC      as for 'kagami run' (default stdio)\n"
"  --control PATH      control socket once the guest runs here\n"
"  --timeout SECONDS   stop the guest this long after it starts here\n"
"  --summary           print a run summary at the end\n"
"  --max-stream-memory SIZE  what the source may make this side hold\n"
"                      (a staged epoch, besides the guest's RAM): beyond\n"
"                      it the migration is refused (default 2x the\n"
"                      guest's RAM + 64M)\n"
"  -h, --help          show this help\n"
"\n"
"Until hand-over nothing runs here: if the migration fails (link cut,\n"
"source gone, corrupt stream) kagami receive discards what it got, removes\n"
"images it created, and exits 1; the guest keeps running at the source.\n"
"exit status: 1 the migration failed; otherwise as for 'kagami run'.\n");
}

struct recv_args {
	struct receiver_opts ro;
	struct serve_role role;
	const char *listen_addr, *keyfile;
	bool insecure;
	struct kg_faults faults;
};

enum { O_LISTEN = 256, O_KEY, O_DISK, O_NET, O_CONSOLE, O_CONTROL,
       O_TIMEOUT, O_SUMMARY, O_DIE_AT, O_INSECURE, O_MAX_STREAM_MEM };
static const struct option recv_opts[] = {
	{ "listen", required_argument, NULL, O_LISTEN },
	{ "key", required_argument, NULL, O_KEY },
	{ "disk", required_argument, NULL, O_DISK },
	{ "net", required_argument, NULL, O_NET },
	{ "console", required_argument, NULL, O_CONSOLE },
	{ "control", required_argument, NULL, O_CONTROL },
	{ "timeout", required_argument, NULL, O_TIMEOUT },
	{ "summary", no_argument, NULL, O_SUMMARY },
	{ "test-die-at", required_argument, NULL, O_DIE_AT },
	{ "insecure", no_argument, NULL, O_INSECURE },
	{ "max-stream-memory", required_argument, NULL, O_MAX_STREAM_MEM },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* --test-die-at PHASE: the receive.PHASE fault point, armed to kill. */
static int die_at_opt(struct recv_args *a, const char *phase)
{
	char spec[64];
	struct kg_err e = { 0 };
	snprintf(spec, sizeof(spec), "receive.%.40s=kill", phase);
	if (kg_faults_parse(spec, &a->faults, &e) < 0) {
		fprintf(stderr, "%s: --test-die-at: %s\n", a->role.name, e.msg);
		return -1;
	}
	return 0;
}

/* One option; 1: go on, 0: --help printed, -1: bad (said). */
static int recv_opt(struct recv_args *a, int c, int li, char **argv)
{
	const char *name = a->role.name;
	char *end;
	switch (c) {
	case O_LISTEN: a->listen_addr = optarg; return 1;
	case O_KEY: a->keyfile = optarg; return 1;
	case O_CONTROL: a->role.control_path = optarg; return 1;
	case O_SUMMARY: a->role.summary = true; return 1;
	case O_INSECURE: a->insecure = true; return 1;
	case O_DIE_AT: return die_at_opt(a, optarg) < 0 ? -1 : 1;
	case O_MAX_STREAM_MEM:
		return serve_stream_memory_opt(name, optarg,
					       &a->ro.max_stream_memory) < 0 ?
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
		return serve_resource_opt(name, recv_opts[li].name, optarg,
					  &a->ro.cfg) < 0 ? -1 : 1;
	case 'h':
		receive_usage(stdout);
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
static int recv_parse(int argc, char **argv, struct recv_args *a)
{
	opterr = 0;
	optind = 1;
	int c, li = 0;
	while ((c = getopt_long(argc, argv, "+:h", recv_opts, &li)) != -1) {
		int r = recv_opt(a, c, li, argv);
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
	struct link_policy lp = { .keyfile = a->keyfile,
				  .insecure = a->insecure };
	return serve_link_policy(name, &lp) ? -1 : 1;
}

static void recv_warnings(const struct recv_args *a)
{
	struct link_policy lp = { .keyfile = a->keyfile,
				  .insecure = a->insecure };
	serve_link_warnings(a->role.name, &lp);
}

int cmd_receive(int argc, char **argv)
{
	struct recv_args a = { .role.name = "kagami receive" };
	int r = recv_parse(argc, argv, &a);
	if (r <= 0)
		return r == 0 ? 0 : KG_EXIT_USAGE;
	kg_log_configure(a.role.name, KG_LOG_INFO, NULL, NULL);
	struct kg_tp_key key;
	r = serve_listen(a.role.name, a.listen_addr, a.keyfile, 0, &key,
			 &a.ro.listener);
	if (r)
		return r;
	recv_warnings(&a);
	sigset_t old;
	serve_block_signals(&old);
	a.ro.faults = &a.faults;
	a.ro.hooks = serve_role_hooks(&a.role);
	int status = receiver_run(&a.ro);
	early_signals_stop(a.role.es);
	kg_tp_listener_close(a.ro.listener);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return status;
}
