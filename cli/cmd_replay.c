/* kagami replay: re-execute a recording, checking every exit and digest. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "serve.h"
#include "ft/replay/log_file.h"
#include "ft/replay/replayer.h"
#include "vmm/vm.h"

static void replay_usage(FILE *f)
{
	fprintf(f,
"usage: kagami replay [OPTIONS] FILE\n"
"\n"
"Re-executes a recording made by 'kagami record': the VM starts from the\n"
"recorded state, every exit is checked against the log (exit type, port or\n"
"address, registers, data written) and gets the recorded input, and every\n"
"state digest (registers and a hash of RAM) is compared. The first\n"
"divergence stops the replay with a report: exit index, expected and\n"
"actual exit, RIP and the registers that differ. Devices do no I/O: what\n"
"they gave the guest comes from the log. The guest's console output\n"
"appears again.\n"
"\n"
"The whole file is checked first (checksums, records, end marker): a\n"
"corrupt or cut recording is refused, naming the section and the record\n"
"with their offsets.\n"
"\n"
"options:\n"
"  --until EXIT        pause once exit EXIT (counted from 0) has been\n"
"                      replayed, and keep the VM paused for inspection:\n"
"                      'kagami ctl PATH status|snapshot FILE' on --control;\n"
"                      stop with Ctrl-C or 'kagami ctl PATH quit'\n"
"  --control PATH      a control socket, as for 'kagami run'\n"
"  --console SPEC      where the guest's console output goes again\n"
"                      (default stdio; none to drop it)\n"
"  --no-digests        do not recompute the state digests (faster)\n"
"  --check             only check the file and print what it holds\n"
"  --summary           print a run summary to stderr at the end\n"
"  -h, --help          show this help\n"
"\n"
"exit status: 0 the replay matched the recording to its end (or reached\n"
"--until); 1 it diverged; 2 bad arguments, or the recording is corrupt,\n"
"cut or not a recording; 4 a host-side failure.\n");
}

struct replay_ctx {
	struct replayer *p;
};

static void print_summary_line(const char *path,
			       const struct rr_file_summary *s)
{
	fprintf(stderr,
		"kagami replay: %s: %" PRIu64 " exits, %" PRIu64 " digests, %"
		PRIu64 " device writes (%" PRIu64 " KiB), %" PRIu64
		" interrupts, %" PRIu64 " clock reads in %" PRIu64
		" log sections (%" PRIu64 " KiB, %" PRIu64 " KiB decoded); "
		"file %" PRIu64 " KiB\n",
		path, s->exits, s->digests, s->writes, s->write_bytes >> 10,
		s->irqs, s->times, s->sections, s->log_bytes >> 10,
		s->raw_bytes >> 10, s->bytes >> 10);
}

int cmd_replay(int argc, char **argv)
{
	const char *name = "kagami replay";
	enum { O_UNTIL = 256, O_CONTROL, O_CONSOLE, O_NO_DIGESTS, O_CHECK,
	       O_SUMMARY };
	static const struct option opts[] = {
		{ "until", required_argument, NULL, O_UNTIL },
		{ "control", required_argument, NULL, O_CONTROL },
		{ "console", required_argument, NULL, O_CONSOLE },
		{ "no-digests", no_argument, NULL, O_NO_DIGESTS },
		{ "check", no_argument, NULL, O_CHECK },
		{ "summary", no_argument, NULL, O_SUMMARY },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct vm_config cfg = { .ncpus = 1 };
	struct replayer_opts ro = { .digests = true };
	const char *control_path = NULL;
	bool check_only = false, summary = false;
	struct kg_err e = { 0 };
	opterr = 0;
	optind = 1;
	int c, li = 0;
	while ((c = getopt_long(argc, argv, "+:h", opts, &li)) != -1) {
		switch (c) {
		case O_UNTIL: {
			char *end;
			errno = 0;
			unsigned long long v = strtoull(optarg, &end, 10);
			if (!*optarg || *end || errno || *optarg == '-') {
				fprintf(stderr, "%s: --until '%s': expected an "
					"exit index (a whole number)\n", name,
					optarg);
				return KG_EXIT_USAGE;
			}
			ro.until_set = true;
			ro.until = v;
			break;
		}
		case O_CONTROL:
			control_path = optarg;
			break;
		case O_CONSOLE:
			if (serve_resource_opt(name, "console", optarg, &cfg) < 0)
				return KG_EXIT_USAGE;
			break;
		case O_NO_DIGESTS:
			ro.digests = false;
			break;
		case O_CHECK:
			check_only = true;
			break;
		case O_SUMMARY:
			summary = true;
			break;
		case 'h':
			replay_usage(stdout);
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
	if (optind != argc - 1) {
		fprintf(stderr, "%s: %s (try '%s --help')\n", name,
			optind == argc ? "no recording given"
				       : "more than one recording given",
			name);
		return KG_EXIT_USAGE;
	}
	const char *path = argv[optind];

	struct rr_file_summary sum;
	if (rr_file_check(path, &sum, &e) < 0) {
		fprintf(stderr, "%s: %s\n", name, e.msg);
		return KG_EXIT_USAGE;
	}
	if (check_only || summary)
		print_summary_line(path, &sum);
	if (check_only)
		return 0;
	if (ro.until_set && ro.until >= sum.exits) {
		fprintf(stderr, "%s: --until %llu: the recording has %" PRIu64
			" exits (0 to %" PRIu64 ")\n", name,
			(unsigned long long)ro.until, sum.exits,
			sum.exits ? sum.exits - 1 : 0);
		return KG_EXIT_USAGE;
	}

	struct vm_state_config sc;
	struct rr_file *f = rr_file_open(path, &sc, &e);
	if (!f) {
		fprintf(stderr, "%s: %s\n", name, e.msg);
		return KG_EXIT_USAGE;
	}
	if (!(sc.flags & VM_STATE_CONFIG_DETERMINISTIC)) {
		fprintf(stderr, "%s: %s: a snapshot or stream of a VM that was "
			"not deterministic, not a recording\n", name, path);
		rr_file_close(f);
		return KG_EXIT_USAGE;
	}
	cfg.mem_size = sc.mem_size;
	cfg.ncpus = sc.ncpus;
	cfg.deterministic = true;
	/* The devices exist for their registers; the log replaces their I/O. */
	cfg.ndisks = sc.ndisks;
	cfg.nnets = sc.nnets;
	for (unsigned i = 0; i < sc.ndisks && i < VM_MAX_DISKS; i++)
		cfg.disks[i].detached = true;
	for (unsigned i = 0; i < sc.nnets && i < VM_MAX_NETS; i++) {
		cfg.nets[i].detached = true;
		snprintf(cfg.nets[i].ifname, sizeof(cfg.nets[i].ifname),
			 "replay%u", i);
	}

	sigset_t old;
	serve_block_signals(&old);
	struct vm *vm = calloc(1, sizeof(*vm));
	if (!vm || vm_create(vm, &cfg, &e) < 0) {
		fprintf(stderr, "%s: %s\n", name, vm ? e.msg : "out of memory");
		free(vm);
		rr_file_close(f);
		return KG_EXIT_USAGE;
	}
	int status = KG_EXIT_USAGE;
	struct replayer *p = NULL;
	if (rr_file_load_state(f, vm, &e) < 0) {
		fprintf(stderr, "%s: %s: %s\n", name, path, e.msg);
		goto out;
	}
	ro.src = rr_file_source(f);
	if (!(p = replayer_new(vm, &ro, &e))) {
		fprintf(stderr, "%s: %s\n", name, e.msg);
		goto out;
	}
	struct serve_opts so = { .name = name, .control_path = control_path,
				 .summary = summary };
	int guest_status = serve_vm(vm, &so);
	struct replay_stats st;
	replayer_stats(p, &st);
	switch (replayer_state(p)) {
	case REPLAY_DIVERGED:
		fprintf(stderr, "%s: DIVERGED\n%s\n", name, replayer_report(p));
		status = 1;
		break;
	case REPLAY_FAILED:
		fprintf(stderr, "%s: %s\n", name, replayer_report(p));
		status = KG_EXIT_HOST;
		break;
	case REPLAY_UNTIL:
		fprintf(stderr, "%s: %s; %" PRIu64 " digests matched\n", name,
			replayer_report(p), st.digests);
		status = 0;
		break;
	case REPLAY_END:
	case REPLAY_RUNNING:
		if (st.exits < sum.exits) {
			fprintf(stderr, "%s: stopped at exit %" PRIu64 " of %"
				PRIu64 " (exit status %d) before the recording "
				"ended\n", name, st.exits, sum.exits,
				guest_status);
			status = guest_status ? guest_status : KG_EXIT_HOST;
		} else {
			fprintf(stderr, "%s: replay matched the recording: %"
				PRIu64 " exits, %" PRIu64 " digests, %" PRIu64
				" device writes, %" PRIu64 " interrupts; the "
				"guest ended with status %d\n",
				name, st.exits, st.digests, st.writes, st.irqs,
				guest_status);
			status = 0;
		}
		break;
	}
out:
	replayer_free(p);
	vm_destroy(vm);
	free(vm);
	rr_file_close(f);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return status;
}
