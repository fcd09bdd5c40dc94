/* kagami run, restore and record: boot a PVH guest (recording it), or
 * resume a snapshot, and run it to the end. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "opts.h"
#include "base/parse.h"
#include "control.h"
#include "serve.h"
#include "ft/checkpoint/snapshot.h"
#include "ft/record/recorder.h"
#include "ft/record/recording.h"
#include "vmm/size.h"
#include "vmm/vm.h"
#include "base/clock.h"

static void restore_usage(FILE *f)
{
	fprintf(f,
"usage: kagami restore [OPTIONS] SNAPSHOT\n"
"\n"
"Resumes a VM exactly where 'kagami ctl SOCKET snapshot --path FILE' saved\n"
"it. Memory size, vCPUs and the guest's state come from the snapshot;\n"
"host resources are given again: as many --disk and --net as the VM had\n"
"(the same images, or copies of them), and a console. The guest starts at\n"
"once: RAM loads from the file as the guest touches it and in the\n"
"background, each page checked against its hash first; once all of it is\n"
"in, the file is no longer read. A page that fails its check (the file\n"
"was changed or cut meanwhile) stops the VM: 'snapshot FILE: RAM page\n"
"0x...: damaged (...)', exit status 4.\n"
"\n"
"options: --console, --disk, --net, --control, --timeout, --summary as for\n"
"'kagami run' (see 'kagami run --help'). Exit status as for 'kagami run'.\n");
}

static void run_usage(FILE *f)
{
	fprintf(f,
"usage: kagami run [OPTIONS] GUEST.elf\n"
"\n"
"Boots a PVH ELF image (the protocol of QEMU's -kernel and Firecracker) and\n"
"runs it until the guest exits, powers off or crashes.\n"
"\n"
"options:\n"
"  --mem SIZE          guest RAM (default 256M; suffixes B K M G T, bare = MiB)\n"
"  --cpus N            vCPUs (default 1, max %d)\n"
"  --console SPEC      stdio (default), none, file:PATH, unix:PATH (kagami\n"
"                      listens; output is kept until a client connects)\n"
"  --cmdline STR       guest command line\n"
"  --initrd FILE       initrd, passed as the first PVH module\n"
"  --disk PATH[,readonly]\n"
"                      a raw disk image as a virtio-blk device (repeatable,\n"
"                      up to %d); writes are durable once the guest flushes\n"
"  --net tap:IFNAME[,mac=MAC]\n"
"                      a virtio-net device on a TAP interface (repeatable,\n"
"                      up to %d; created if missing, which needs root)\n"
"  --timeout SECONDS   stop the guest after this long (exit status 124)\n"
"  --summary           print a run summary to stderr at the end\n"
"  --control PATH      a control socket (JSON lines, mode 0600) for\n"
"                      'kagami ctl PATH status|pause|resume|quit|help'\n"
"  --replicate ft|ha   protect the VM on a secondary ('kagami secondary'):\n"
"                      ft: checkpoint FT, an epoch every --epoch-ms (10);\n"
"                      the guest's network and console output is held\n"
"                      until the secondary has the state that produced it,\n"
"                      so a failover loses nothing a client saw (RPO 0).\n"
"                      ha: a checkpoint every --interval ms (1000), output\n"
"                      not held: a failover loses up to one interval\n"
"  --replicate lockstep  deterministic mode (one vCPU): the secondary\n"
"                      replays this VM's execution log in a live VM;\n"
"                      outputs leave once the secondary has the log up to\n"
"                      them (RPO 0); a failover replays what it has, then\n"
"                      goes live. Disks: as for ft (copied at the start,\n"
"                      then the secondary applies the guest's writes)\n"
"  --peer ADDR         the secondary, tcp:HOST:PORT (with --replicate)\n"
"  --key FILE          pre-shared key for the replication link (the\n"
"                      secondary's --key); required, unless --insecure\n"
"  --insecure          replicate without authentication (warned)\n"
"  --epoch-ms MS       FT epoch length (default 10)\n"
"  --interval MS       HA checkpoint interval (default 1000)\n"
"  --failover-timeout MS  silence that ends the link (default 100)\n"
"  --lease SPEC        split-brain guard: witness:tcp:HOST:PORT[#NAME] (a\n"
"                      'kagami witness') or file:PATH on shared storage;\n"
"                      the guest runs only while this side holds it;\n"
"                      required, unless --no-lease\n"
"  --no-lease          no split-brain guard (warned: a cut link then runs\n"
"                      the guest on both sides)\n"
"  --lease-key FILE    pre-shared key for the lease witness (its\n"
"                      --lease-key; not the replication --key)\n"
"  --lease-ttl MS      lease length, renewed every third (default 1.5x the\n"
"                      failover timeout)\n"
"  --deterministic     inputs enter only at exits, kagami's own PIC and PIT\n"
"                      (what 'kagami record' runs); one vCPU\n"
"  -h, --help          show this help\n"
"\n"
"exit status: the code the guest wrote to the exit port (0xf4); 0 on a\n"
"clean power-off; 2 bad arguments or the VM could not be built; 3 the guest\n"
"crashed (fault report or triple fault); 4 a host-side failure while\n"
"running; 124 --timeout expired; 128+N on signal N.\n",
		VM_MAX_VCPUS, VM_MAX_DISKS, VM_MAX_NETS);
}

static void record_usage(FILE *f)
{
	fprintf(f,
"usage: kagami record --log FILE [--digest-ms MS] [RUN OPTIONS] GUEST.elf\n"
"\n"
"Boots the guest in deterministic mode and records its execution: FILE gets\n"
"the VM's state at the first instruction, then every input the guest takes\n"
"from outside (port and MMIO read values, bytes devices write into its\n"
"RAM, interrupts, clock reads), each tied to the index of the exit where it\n"
"entered, and a digest of registers and RAM every --digest-ms. 'kagami\n"
"replay FILE' re-executes it exactly. FILE appears once the recording is\n"
"complete (FILE.tmp until then).\n"
"\n"
"Deterministic mode needs one vCPU, no in-kernel irqchip (kagami's own PIC\n"
"and PIT), and a guest that reads time only from the clock port, never\n"
"rdtsc (see docs/architecture.md, 'Deterministic guests').\n"
"\n"
"options:\n"
"  --log FILE          the recording to write (required)\n"
"  --digest-ms MS      state digest interval (default 100; 0: none)\n"
"  --mem, --console, --cmdline, --initrd, --disk, --net, --timeout,\n"
"  --summary, --control   as for 'kagami run' (see 'kagami run --help')\n"
"\n"
"exit status: as for 'kagami run'; 4 also when the recording could not be\n"
"written (the guest is stopped: a recording with a gap is no recording).\n");
}

enum run_kind { RUN_BOOT, RUN_RESTORE, RUN_RECORD };

static int run_main(const char *name, enum run_kind kind, int argc,
		    char **argv);

int cmd_run(int argc, char **argv)
{
	return run_main("kagami run", RUN_BOOT, argc, argv);
}

int cmd_restore(int argc, char **argv)
{
	return run_main("kagami restore", RUN_RESTORE, argc, argv);
}

int cmd_record(int argc, char **argv)
{
	return run_main("kagami record", RUN_RECORD, argc, argv);
}

static int finish_recording(const char *name, struct recording *rec,
			    const char *path, uint64_t run_ns)
{
	struct recorder_stats st = { 0 };
	struct kg_err e = { 0 };
	uint64_t bytes = 0;
	int rc = recording_finish(rec, &st, &bytes, &e);
	recording_free(rec);
	if (rc < 0) {
		fprintf(stderr, "%s: %s\n", name, e.msg);
		return -1;
	}
	double s = run_ns ? (double)run_ns / 1e9 : 1;
	fprintf(stderr,
		"%s: %s: %llu exits, %llu digests, %llu device writes (%llu "
		"KiB), %llu interrupts, %llu clock reads; log %llu KiB (%llu "
		"KiB decoded) = %.1f KiB/s over %.2f s; file %llu KiB\n",
		name, path, (unsigned long long)st.exits,
		(unsigned long long)st.digests, (unsigned long long)st.writes,
		(unsigned long long)(st.write_bytes >> 10),
		(unsigned long long)st.irqs, (unsigned long long)st.time_reads,
		(unsigned long long)(st.log_bytes >> 10),
		(unsigned long long)(st.raw_bytes >> 10),
		(double)st.log_bytes / 1024.0 / s, s,
		(unsigned long long)(bytes >> 10));
	return 0;
}

/* What the command line asked for. */
struct run_args {
	const char *name;
	enum run_kind kind;
	struct vm_config cfg;
	bool summary;
	const char *control_path;
	double timeout_s;
	const char *log_path;  /* record */
	uint64_t digest_ms;    /* record */
	uint64_t prefetch_delay_ms; /* restore, tests */
	struct protect_opts po;
	struct link_policy lp; /* --key, --insecure, --lease... */
	unsigned lease_ttl;
	struct kg_tp_key lease_key;
	const char *image;     /* the guest, or the snapshot */
};

enum { O_MEM = 256, O_CPUS, O_CONSOLE, O_CMDLINE, O_INITRD, O_TIMEOUT,
       O_SUMMARY, O_DISK, O_NET, O_CONTROL, O_REPLICATE, O_PEER, O_KEY,
       O_EPOCH_MS, O_INTERVAL, O_FAILOVER, O_FAULT, O_LEASE,
       O_LEASE_TTL, O_LEASE_KEY, O_DETERMINISTIC, O_LOG,
       O_DIGEST_MS, O_INSECURE, O_NO_LEASE, O_PREFETCH_DELAY };

static const struct option run_longopts[] = {
	{ "mem", required_argument, NULL, O_MEM },
	{ "cpus", required_argument, NULL, O_CPUS },
	{ "console", required_argument, NULL, O_CONSOLE },
	{ "cmdline", required_argument, NULL, O_CMDLINE },
	{ "initrd", required_argument, NULL, O_INITRD },
	{ "timeout", required_argument, NULL, O_TIMEOUT },
	{ "summary", no_argument, NULL, O_SUMMARY },
	{ "disk", required_argument, NULL, O_DISK },
	{ "net", required_argument, NULL, O_NET },
	{ "control", required_argument, NULL, O_CONTROL },
	{ "replicate", required_argument, NULL, O_REPLICATE },
	{ "peer", required_argument, NULL, O_PEER },
	{ "key", required_argument, NULL, O_KEY },
	{ "epoch-ms", required_argument, NULL, O_EPOCH_MS },
	{ "interval", required_argument, NULL, O_INTERVAL },
	{ "failover-timeout", required_argument, NULL, O_FAILOVER },
	{ "test-fault", required_argument, NULL, O_FAULT },
	{ "lease", required_argument, NULL, O_LEASE },
	{ "lease-ttl", required_argument, NULL, O_LEASE_TTL },
	{ "lease-key", required_argument, NULL, O_LEASE_KEY },
	{ "deterministic", no_argument, NULL, O_DETERMINISTIC },
	{ "log", required_argument, NULL, O_LOG },
	{ "digest-ms", required_argument, NULL, O_DIGEST_MS },
	{ "insecure", no_argument, NULL, O_INSECURE },
	{ "no-lease", no_argument, NULL, O_NO_LEASE },
	{ "test-prefetch-delay", required_argument, NULL, O_PREFETCH_DELAY },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* The VM's and the run's options: 0, 1 if c is not one, -1 if bad. */
static int run_opt_vm(struct run_args *a, struct opts *p, int c)
{
	struct kg_err e = { 0 };
	uint64_t n;
	switch (c) {
	case O_MEM:
		if (size_parse(p->arg, &a->cfg.mem_size, &e) < 0) {
			fprintf(stderr, "%s: --mem: %s\n", a->name, e.msg);
			return -1;
		}
		return 0;
	case O_CPUS: /* 0 too: vm_create says what the range is */
		if (opts_uint(p, 0, VM_MAX_VCPUS, &n) < 0)
			return -1;
		a->cfg.ncpus = (unsigned)n;
		return 0;
	case O_CONSOLE:
	case O_DISK:
	case O_NET:
		return serve_resource_opt(a->name, opts_name(p) + 2, p->arg,
					  &a->cfg) < 0 ? -1 : 0;
	case O_CMDLINE: a->cfg.cmdline = p->arg; return 0;
	case O_INITRD: a->cfg.initrd_path = p->arg; return 0;
	case O_TIMEOUT:
		if (kg_parse_double(p->arg, 0, 1e9, true, &a->timeout_s) < 0)
			return opts_bad(p, "expected a positive number of "
					"seconds");
		return 0;
	case O_SUMMARY: a->summary = true; return 0;
	case O_CONTROL: a->control_path = p->arg; return 0;
	case O_DETERMINISTIC: a->cfg.deterministic = true; return 0;
	case O_LOG: a->log_path = p->arg; return 0;
	case O_DIGEST_MS:
		return opts_uint(p, 0, 3600000, &a->digest_ms);
	case O_PREFETCH_DELAY:
		return opts_uint(p, 0, 600000, &a->prefetch_delay_ms);
	}
	return 1;
}

/* --replicate and what goes with it: 0, 1 if c is not one, -1 if bad. */
static int run_opt_replicate(struct run_args *a, struct opts *p, int c)
{
	struct kg_err e = { 0 };
	uint64_t n;
	switch (c) {
	case O_REPLICATE:
		if (!strcmp(p->arg, "ft"))
			a->po.mode = PROTECT_FT;
		else if (!strcmp(p->arg, "ha"))
			a->po.mode = PROTECT_HA;
		else if (!strcmp(p->arg, "lockstep")) {
			a->po.mode = PROTECT_LOCKSTEP;
			a->cfg.deterministic = true;
		} else
			return opts_bad(p, "ft, ha or lockstep");
		return 0;
	case O_PEER: {
		struct kg_tp_addr ad;
		if (kg_tp_addr_parse(p->arg, &ad, &e) < 0) {
			fprintf(stderr, "%s: --peer: %s\n", a->name, e.msg);
			return -1;
		}
		snprintf(a->po.peer, sizeof(a->po.peer), "%s", p->arg);
		return 0;
	}
	case O_KEY: a->lp.keyfile = p->arg; return 0;
	case O_FAULT:
		if (kg_tp_fault_parse(p->arg, &a->po.fault, &e) < 0) {
			fprintf(stderr, "%s: --test-fault: %s\n", a->name,
				e.msg);
			return -1;
		}
		a->po.have_fault = true;
		return 0;
	case O_LEASE: a->lp.lease = p->arg; return 0;
	case O_INSECURE: a->lp.insecure = true; return 0;
	case O_NO_LEASE: a->lp.no_lease = true; return 0;
	case O_LEASE_KEY: a->lp.lease_keyfile = p->arg; return 0;
	case O_EPOCH_MS:
	case O_INTERVAL:
	case O_FAILOVER:
	case O_LEASE_TTL:
		if (opts_uint(p, 1, 600000, &n) < 0)
			return -1;
		*(c == O_EPOCH_MS ? &a->po.epoch_ms
		  : c == O_INTERVAL ? &a->po.interval_ms
		  : c == O_LEASE_TTL ? &a->lease_ttl
		  : &a->po.failover_ms) = (unsigned)n;
		return 0;
	}
	return 1;
}

/* Options that restore or record do not take: 0, or -1 after saying. */
static int run_opt_allowed(const struct run_args *a, struct opts *p, int c)
{
	const char *opt = opts_name(p);
	if (a->kind == RUN_RESTORE && (c == O_MEM || c == O_CPUS ||
				       c == O_CMDLINE || c == O_INITRD)) {
		fprintf(stderr, "%s: %s: comes from the snapshot\n", a->name,
			opt);
		return -1;
	}
	if (c == O_PREFETCH_DELAY && a->kind != RUN_RESTORE) {
		fprintf(stderr, "%s: %s: only for 'kagami restore'\n", a->name,
			opt);
		return -1;
	}
	if ((c == O_LOG || c == O_DIGEST_MS) && a->kind != RUN_RECORD) {
		fprintf(stderr, "%s: %s: only for 'kagami record'\n", a->name,
			opt);
		return -1;
	}
	if (a->kind == RUN_RECORD && (c == O_REPLICATE || c == O_DETERMINISTIC)) {
		fprintf(stderr, "%s: %s: not with 'kagami record'%s\n", a->name,
			opt, c == O_DETERMINISTIC ? " (implied)" : "");
		return -1;
	}
	return 0;
}

/* The options together, the keys loaded: 0, or the exit status after
 * one line. */
static int run_check(struct run_args *a)
{
	const char *name = a->name;
	struct kg_err e = { 0 };
	if (a->kind == RUN_RECORD) {
		if (!a->log_path) {
			fprintf(stderr, "%s: --log FILE is required\n", name);
			return KG_EXIT_USAGE;
		}
		a->cfg.deterministic = true;
	}
	if (a->po.mode && !a->po.peer[0]) {
		fprintf(stderr, "%s: --replicate needs --peer tcp:HOST:PORT (a "
			"'kagami secondary --listen')\n", name);
		return KG_EXIT_USAGE;
	}
	const struct link_policy *lp = &a->lp;
	if (!a->po.mode && (a->po.peer[0] || lp->keyfile || lp->lease ||
			    lp->lease_keyfile || lp->insecure || lp->no_lease)) {
		fprintf(stderr, "%s: --peer, --key, --insecure, --lease and "
			"--no-lease need --replicate ft|ha|lockstep\n", name);
		return KG_EXIT_USAGE;
	}
	if (lp->lease_keyfile && !lp->lease) {
		fprintf(stderr, "%s: --lease-key needs --lease witness:ADDR\n",
			name);
		return KG_EXIT_USAGE;
	}
	if (lp->keyfile) {
		if (kg_tp_key_load(lp->keyfile, &a->po.key, &e) < 0) {
			fprintf(stderr, "%s: --key: %s\n", name, e.msg);
			return KG_EXIT_USAGE;
		}
		a->po.have_key = true;
	}
	/* The witness's key, apart from the replication key: the witness's
	 * host holds this one only. */
	if (lp->lease_keyfile &&
	    kg_tp_key_load(lp->lease_keyfile, &a->lease_key, &e) < 0) {
		fprintf(stderr, "%s: --lease-key: %s\n", name, e.msg);
		return KG_EXIT_USAGE;
	}
	/* After the files: one that cannot be read is said first. */
	return a->po.mode ? serve_link_policy(name, lp) : 0;
}

/* 0; RUN_HELP after --help; or the exit status after one line. */
enum { RUN_HELP = -1 };
static int run_parse(struct run_args *a, int argc, char **argv)
{
	struct opts p;
	opts_init(&p, a->name, argc, argv, run_longopts, OPTS_IN_ORDER);
	for (int c; (c = opts_next(&p)) != OPTS_END;) {
		if (c == 'h') {
			(a->kind == RUN_RESTORE ? restore_usage
			 : a->kind == RUN_RECORD ? record_usage
						 : run_usage)(stdout);
			return RUN_HELP;
		}
		if (c == OPTS_ERROR || run_opt_allowed(a, &p, c) < 0)
			return KG_EXIT_USAGE;
		int r = run_opt_vm(a, &p, c);
		if (r > 0)
			r = run_opt_replicate(a, &p, c);
		if (r)
			return KG_EXIT_USAGE;
	}
	int r = run_check(a);
	if (r)
		return r;
	const char *what = a->kind == RUN_RESTORE ? "snapshot" : "guest image";
	if (p.optind != argc - 1) {
		if (p.optind == argc)
			fprintf(stderr, "%s: no %s given (try '%s --help')\n",
				a->name, what, a->name);
		else
			fprintf(stderr, "%s: more than one %s given\n", a->name,
				what);
		return KG_EXIT_USAGE;
	}
	a->image = argv[p.optind];
	return 0;
}

/* The VM and what runs with it, torn down in reverse by run_free. */
struct run_vm {
	struct vm *vm;
	struct snapshot_reader *sr;
	struct recording *rec;
	struct recorder *det;
};

static void run_free(struct run_vm *r)
{
	recorder_free(r->det);
	snapshot_close(r->sr);
	if (r->vm) {
		vm_destroy(r->vm);
		free(r->vm);
	}
	*r = (struct run_vm){ 0 };
}

/* Creates the VM (restored from the snapshot, recording): 0 or -1. */
static int run_build(struct run_args *a, struct run_vm *r, struct kg_err *e)
{
	if (a->kind == RUN_RESTORE) {
		if (!(r->sr = snapshot_open(a->image, &a->cfg, e)))
			return -1;
		snapshot_test_prefetch_delay(r->sr,
					     (unsigned)a->prefetch_delay_ms);
	} else {
		a->cfg.kernel_path = a->image;
	}
	struct vm *vm = calloc(1, sizeof(*vm));
	if (!vm)
		return kg_errf(e, "out of memory");
	if (vm_create(vm, &a->cfg, e) < 0) {
		free(vm);
		return -1;
	}
	r->vm = vm;
	if (r->sr && snapshot_load(r->sr, vm, e) < 0)
		return -1;
	if (a->kind == RUN_RECORD &&
	    !(r->rec = recording_start(vm, a->log_path,
				       (unsigned)a->digest_ms, e)))
		return -1;
	/* A deterministic VM (run --deterministic, or restored from one's
	 * snapshot) needs a deterministic gate: the recorder without a log
	 * places device writes and kagami's PIC/PIT interrupts at exits.
	 * record and lockstep install their own. */
	if (a->cfg.deterministic && a->kind != RUN_RECORD &&
	    a->po.mode != PROTECT_LOCKSTEP &&
	    !(r->det = recorder_new(vm, &(struct recorder_opts){ 0 }, e)))
		return -1;
	return 0;
}

static int run_main(const char *name, enum run_kind kind, int argc,
		    char **argv)
{
	struct run_args a = {
		.name = name, .kind = kind, .digest_ms = 100,
		.cfg = { .mem_size = 256ull << 20, .ncpus = 1 },
		.lp = { .need_lease = true },
	};
	int pr = run_parse(&a, argc, argv);
	if (pr)
		return pr == RUN_HELP ? 0 : pr;
	/* Block the stop signals before any thread exists, so that only the
	 * signal thread receives them. */
	sigset_t old;
	serve_block_signals(&old);
	struct kg_err e = { 0 };
	struct run_vm r = { 0 };
	if (run_build(&a, &r, &e) < 0) {
		fprintf(stderr, "%s: %s\n", name, e.msg);
		run_free(&r);
		return KG_EXIT_USAGE;
	}
	if (a.po.mode)
		serve_link_warnings(name, &a.lp);
	unsigned fo = a.po.failover_ms ? a.po.failover_ms : 100;
	struct serve_opts so = {
		.name = name, .control_path = a.control_path,
		.timeout_s = a.timeout_s, .summary = a.summary,
		.protect = a.po.mode ? &a.po : NULL, .lease = a.lp.lease,
		.lease_key = a.lp.lease_keyfile ? &a.lease_key : NULL,
		.lease_ttl_ms = a.lease_ttl ? a.lease_ttl : 3 * fo / 2,
	};
	uint64_t t0 = kg_now_ns();
	int status = serve_vm(r.vm, &so);
	if (r.rec && finish_recording(name, r.rec, a.log_path,
				      kg_now_ns() - t0) < 0)
		status = KG_EXIT_HOST;
	run_free(&r);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return status;
}
