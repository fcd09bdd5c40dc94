/* kagami replay: re-execute a recording, checking every exit and digest. */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "opts.h"
#include "serve.h"
#include "ft/replay/log_file.h"
#include "ft/replay/replayer.h"
#include "vmm/vm.h"
#include "base/parse.h"

#define REPLAY_NAME "kagami replay"

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

struct replay_args {
	struct vm_config cfg;
	struct replayer_opts ro;
	const char *control_path, *path;
	bool check_only, summary;
};

/* 0, 1 after --help, or -1 after a message. */
static int replay_parse(int argc, char **argv, struct replay_args *a)
{
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
	struct opts p;
	opts_init(&p, REPLAY_NAME, argc, argv, opts, OPTS_IN_ORDER);
	for (int c; (c = opts_next(&p)) != OPTS_END;) {
		switch (c) {
		case O_UNTIL:
			if (kg_parse_u64(p.arg, 10, 0, UINT64_MAX,
					 &a->ro.until) < 0)
				return opts_bad(&p, "expected an exit index (a "
						"whole number)");
			a->ro.until_set = true;
			break;
		case O_CONTROL: a->control_path = p.arg; break;
		case O_CONSOLE:
			if (serve_resource_opt(p.name, "console", p.arg,
					       &a->cfg) < 0)
				return -1;
			break;
		case O_NO_DIGESTS: a->ro.digests = false; break;
		case O_CHECK: a->check_only = true; break;
		case O_SUMMARY: a->summary = true; break;
		case 'h':
			replay_usage(stdout);
			return 1;
		default:
			return -1;
		}
	}
	if (p.optind != argc - 1) {
		fprintf(stderr, "%s: %s (try '%s --help')\n", p.name,
			p.optind == argc ? "no recording given"
					 : "more than one recording given",
			p.name);
		return -1;
	}
	a->path = argv[p.optind];
	return 0;
}

/* Checks the whole recording (its summary in sum): 0, or -1 after a
 * message. */
static int replay_check(const struct replay_args *a,
			struct rr_file_summary *sum)
{
	struct kg_err e = { 0 };
	if (rr_file_check(a->path, sum, &e) < 0) {
		fprintf(stderr, "%s: %s\n", REPLAY_NAME, e.msg);
		return -1;
	}
	if (a->check_only || a->summary)
		print_summary_line(a->path, sum);
	return 0;
}

/* Opens the checked recording and sets up the VM's configuration from
 * it: the file, or NULL after a message. */
static struct rr_file *replay_open(struct replay_args *a,
				   const struct rr_file_summary *sum)
{
	const char *name = REPLAY_NAME, *path = a->path;
	struct kg_err e = { 0 };
	if (a->ro.until_set && a->ro.until >= sum->exits) {
		fprintf(stderr, "%s: --until %llu: the recording has %" PRIu64
			" exits (0 to %" PRIu64 ")\n", name,
			(unsigned long long)a->ro.until, sum->exits,
			sum->exits ? sum->exits - 1 : 0);
		return NULL;
	}
	struct vm_state_config sc;
	struct rr_file *f = rr_file_open(path, &sc, &e);
	if (!f) {
		fprintf(stderr, "%s: %s\n", name, e.msg);
		return NULL;
	}
	if (!(sc.flags & VM_STATE_CONFIG_DETERMINISTIC)) {
		fprintf(stderr, "%s: %s: a snapshot or stream of a VM that was "
			"not deterministic, not a recording\n", name, path);
		rr_file_close(f);
		return NULL;
	}
	struct vm_config *cfg = &a->cfg;
	cfg->mem_size = sc.mem_size;
	cfg->ncpus = sc.ncpus;
	cfg->deterministic = true;
	/* The devices exist for their registers; the log replaces their I/O. */
	cfg->ndisks = sc.ndisks;
	cfg->nnets = sc.nnets;
	for (unsigned i = 0; i < sc.ndisks && i < VM_MAX_DISKS; i++)
		cfg->disks[i].detached = true;
	for (unsigned i = 0; i < sc.nnets && i < VM_MAX_NETS; i++) {
		cfg->nets[i].detached = true;
		snprintf(cfg->nets[i].ifname, sizeof(cfg->nets[i].ifname),
			 "replay%u", i);
	}
	return f;
}

/* What the replay came to, told on stderr: the exit status. */
static int replay_verdict(struct replayer *p, const struct rr_file_summary *sum,
			  int guest_status)
{
	const char *name = REPLAY_NAME;
	struct replay_stats st;
	replayer_stats(p, &st);
	switch (replayer_state(p)) {
	case REPLAY_DIVERGED:
		fprintf(stderr, "%s: DIVERGED\n%s\n", name, replayer_report(p));
		return 1;
	case REPLAY_FAILED:
		fprintf(stderr, "%s: %s\n", name, replayer_report(p));
		return KG_EXIT_HOST;
	case REPLAY_UNTIL:
		fprintf(stderr, "%s: %s; %" PRIu64 " digests matched\n", name,
			replayer_report(p), st.digests);
		return 0;
	case REPLAY_END:
	case REPLAY_RUNNING:
		break;
	}
	if (st.exits < sum->exits) {
		fprintf(stderr, "%s: stopped at exit %" PRIu64 " of %" PRIu64
			" (exit status %d) before the recording ended\n", name,
			st.exits, sum->exits, guest_status);
		return guest_status ? guest_status : KG_EXIT_HOST;
	}
	fprintf(stderr, "%s: replay matched the recording: %" PRIu64 " exits, "
		"%" PRIu64 " digests, %" PRIu64 " device writes, %" PRIu64
		" interrupts; the guest ended with status %d\n", name, st.exits,
		st.digests, st.writes, st.irqs, guest_status);
	return 0;
}

int cmd_replay(int argc, char **argv)
{
	const char *name = REPLAY_NAME;
	struct replay_args a = { .cfg = { .ncpus = 1 },
				 .ro = { .digests = true } };
	int r = replay_parse(argc, argv, &a);
	if (r)
		return r > 0 ? 0 : KG_EXIT_USAGE;
	struct rr_file_summary sum;
	if (replay_check(&a, &sum) < 0)
		return KG_EXIT_USAGE;
	if (a.check_only)
		return 0;
	struct rr_file *f = replay_open(&a, &sum);
	if (!f)
		return KG_EXIT_USAGE;

	struct kg_err e = { 0 };
	sigset_t old;
	serve_block_signals(&old);
	struct vm *vm = calloc(1, sizeof(*vm));
	if (!vm || vm_create(vm, &a.cfg, &e) < 0) {
		fprintf(stderr, "%s: %s\n", name, vm ? e.msg : "out of memory");
		free(vm);
		rr_file_close(f);
		return KG_EXIT_USAGE;
	}
	int status = KG_EXIT_USAGE;
	struct replayer *p = NULL;
	if (rr_file_load_state(f, vm, &e) < 0) {
		fprintf(stderr, "%s: %s: %s\n", name, a.path, e.msg);
		goto out;
	}
	a.ro.src = rr_file_source(f);
	if (!(p = replayer_new(vm, &a.ro, &e))) {
		fprintf(stderr, "%s: %s\n", name, e.msg);
		goto out;
	}
	struct serve_opts so = { .name = name, .control_path = a.control_path,
				 .summary = a.summary };
	int guest_status = serve_vm(vm, &so);
	status = replay_verdict(p, &sum, guest_status);
out:
	replayer_free(p);
	vm_destroy(vm);
	free(vm);
	rr_file_close(f);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return status;
}
