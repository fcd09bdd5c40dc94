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
"                      secondary's --key)\n"
"  --epoch-ms MS       FT epoch length (default 10)\n"
"  --interval MS       HA checkpoint interval (default 1000)\n"
"  --failover-timeout MS  silence that ends the link (default 100)\n"
"  --lease SPEC        split-brain guard: witness:tcp:HOST:PORT[#NAME] (a\n"
"                      'kagami witness') or file:PATH on shared storage;\n"
"                      the guest runs only while this side holds it\n"
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

static int parse_uint(const char *name, const char *opt, const char *s,
		      unsigned long max, unsigned long *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (!*s || *end || errno || v > max || *s == '-') {
		fprintf(stderr, "%s: %s '%s': expected a whole number "
			"up to %lu\n", name, opt, s, max);
		return -1;
	}
	*out = v;
	return 0;
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

static int run_main(const char *name, enum run_kind kind, int argc,
		    char **argv)
{
	bool restore = kind == RUN_RESTORE, record = kind == RUN_RECORD;
	const char *log_path = NULL;
	unsigned long digest_ms = 100, prefetch_delay = 0;
	enum { O_MEM = 256, O_CPUS, O_CONSOLE, O_CMDLINE, O_INITRD, O_TIMEOUT,
	       O_SUMMARY, O_DISK, O_NET, O_CONTROL, O_REPLICATE, O_PEER, O_KEY,
	       O_EPOCH_MS, O_INTERVAL, O_FAILOVER, O_FAULT, O_LEASE,
	       O_LEASE_TTL, O_LEASE_KEY, O_DETERMINISTIC, O_LOG,
	       O_DIGEST_MS, O_PREFETCH_DELAY };
	static const struct option opts[] = {
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
		{ "test-prefetch-delay", required_argument, NULL,
		  O_PREFETCH_DELAY },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct vm_config cfg = { .mem_size = 256ull << 20, .ncpus = 1 };
	struct kg_err e = { 0 };
	bool summary = false;
	const char *control_path = NULL;
	double timeout_s = 0;
	unsigned long n;
	char *end;
	struct protect_opts po = { .mode = 0 };
	const char *keyfile = NULL, *lease = NULL, *lease_keyfile = NULL;
	unsigned lease_ttl = 0;

	opterr = 0;
	optind = 1;
	int c, li = 0;
	while ((c = getopt_long(argc, argv, "+:h", opts, &li)) != -1) {
		switch (c) {
		case O_MEM:
			if (size_parse(optarg, &cfg.mem_size, &e) < 0) {
				fprintf(stderr, "%s: --mem: %s\n", name, e.msg);
				return KG_EXIT_USAGE;
			}
			break;
		case O_CPUS:
			if (parse_uint(name, "--cpus", optarg, VM_MAX_VCPUS, &n) < 0)
				return KG_EXIT_USAGE;
			cfg.ncpus = (unsigned)n;
			break;
		case O_CONSOLE:
		case O_DISK:
		case O_NET:
			if (serve_resource_opt(name, opts[li].name, optarg,
					       &cfg) < 0)
				return KG_EXIT_USAGE;
			break;
		case O_CMDLINE:
			cfg.cmdline = optarg;
			break;
		case O_INITRD:
			cfg.initrd_path = optarg;
			break;
		case O_TIMEOUT:
			timeout_s = strtod(optarg, &end);
			if (!*optarg || *end || !(timeout_s > 0)) {
				fprintf(stderr, "%s: --timeout '%s': "
					"expected a positive number of "
					"seconds\n", name, optarg);
				return KG_EXIT_USAGE;
			}
			break;
		case O_SUMMARY:
			summary = true;
			break;
		case O_CONTROL:
			control_path = optarg;
			break;
		case O_REPLICATE:
			if (!strcmp(optarg, "ft"))
				po.mode = PROTECT_FT;
			else if (!strcmp(optarg, "ha"))
				po.mode = PROTECT_HA;
			else if (!strcmp(optarg, "lockstep")) {
				po.mode = PROTECT_LOCKSTEP;
				cfg.deterministic = true;
			} else {
				fprintf(stderr, "%s: --replicate '%s': ft, ha or "
					"lockstep\n", name, optarg);
				return KG_EXIT_USAGE;
			}
			break;
		case O_PEER: {
			struct kg_tp_addr a;
			if (kg_tp_addr_parse(optarg, &a, &e) < 0) {
				fprintf(stderr, "%s: --peer: %s\n", name, e.msg);
				return KG_EXIT_USAGE;
			}
			snprintf(po.peer, sizeof(po.peer), "%s", optarg);
			break;
		}
		case O_KEY:
			keyfile = optarg;
			break;
		case O_FAULT:
			if (kg_tp_fault_parse(optarg, &po.fault, &e) < 0) {
				fprintf(stderr, "%s: --test-fault: %s\n", name,
					e.msg);
				return KG_EXIT_USAGE;
			}
			po.have_fault = true;
			break;
		case O_LEASE:
			lease = optarg;
			break;
		case O_LEASE_KEY:
			lease_keyfile = optarg;
			break;
		case O_EPOCH_MS:
		case O_INTERVAL:
		case O_FAILOVER:
		case O_LEASE_TTL:
			if (parse_uint(name, opts[li].name, optarg, 600000, &n) < 0)
				return KG_EXIT_USAGE;
			if (n == 0) {
				fprintf(stderr, "%s: --%s: must be at least 1\n",
					name, opts[li].name);
				return KG_EXIT_USAGE;
			}
			if (c == O_EPOCH_MS)
				po.epoch_ms = (unsigned)n;
			else if (c == O_INTERVAL)
				po.interval_ms = (unsigned)n;
			else if (c == O_LEASE_TTL)
				lease_ttl = (unsigned)n;
			else
				po.failover_ms = (unsigned)n;
			break;
		case O_DETERMINISTIC:
			cfg.deterministic = true;
			break;
		case O_LOG:
			log_path = optarg;
			break;
		case O_DIGEST_MS:
			if (parse_uint(name, "--digest-ms", optarg, 3600000,
				       &digest_ms) < 0)
				return KG_EXIT_USAGE;
			break;
		case O_PREFETCH_DELAY:
			if (parse_uint(name, "--test-prefetch-delay", optarg,
				       600000, &prefetch_delay) < 0)
				return KG_EXIT_USAGE;
			break;
		case 'h':
			(restore ? restore_usage
				 : record ? record_usage : run_usage)(stdout);
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
		if (restore && (c == O_MEM || c == O_CPUS || c == O_CMDLINE ||
				c == O_INITRD)) {
			fprintf(stderr, "%s: --%s: comes from the snapshot\n",
				name, opts[li].name);
			return KG_EXIT_USAGE;
		}
		if (c == O_PREFETCH_DELAY && !restore) {
			fprintf(stderr, "%s: --%s: only for 'kagami restore'\n",
				name, opts[li].name);
			return KG_EXIT_USAGE;
		}
		if ((c == O_LOG || c == O_DIGEST_MS) && !record) {
			fprintf(stderr, "%s: --%s: only for 'kagami record'\n",
				name, opts[li].name);
			return KG_EXIT_USAGE;
		}
		if (record && (c == O_REPLICATE || c == O_DETERMINISTIC)) {
			fprintf(stderr, "%s: --%s: not with 'kagami record'%s\n",
				name, opts[li].name,
				c == O_DETERMINISTIC ? " (implied)" : "");
			return KG_EXIT_USAGE;
		}
	}
	if (record) {
		if (!log_path) {
			fprintf(stderr, "%s: --log FILE is required\n", name);
			return KG_EXIT_USAGE;
		}
		cfg.deterministic = true;
	}
	if (po.mode && !po.peer[0]) {
		fprintf(stderr, "%s: --replicate needs --peer tcp:HOST:PORT (a "
			"'kagami secondary --listen')\n", name);
		return KG_EXIT_USAGE;
	}
	if (!po.mode && (po.peer[0] || keyfile || lease || lease_keyfile)) {
		fprintf(stderr, "%s: --peer, --key and --lease need --replicate "
			"ft|ha|lockstep\n", name);
		return KG_EXIT_USAGE;
	}
	if (lease_keyfile && !lease) {
		fprintf(stderr, "%s: --lease-key needs --lease witness:ADDR\n",
			name);
		return KG_EXIT_USAGE;
	}
	if (keyfile) {
		if (kg_tp_key_load(keyfile, &po.key, &e) < 0) {
			fprintf(stderr, "%s: --key: %s\n", name, e.msg);
			return KG_EXIT_USAGE;
		}
		po.have_key = true;
	}
	/* The witness's key, apart from the replication key: the witness's
	 * host holds this one only. */
	struct kg_tp_key lease_key;
	if (lease_keyfile && kg_tp_key_load(lease_keyfile, &lease_key, &e) < 0) {
		fprintf(stderr, "%s: --lease-key: %s\n", name, e.msg);
		return KG_EXIT_USAGE;
	}
	const char *what = restore ? "snapshot" : "guest image";
	if (optind != argc - 1) {
		if (optind == argc)
			fprintf(stderr, "%s: no %s given (try '%s --help')\n",
				name, what, name);
		else
			fprintf(stderr, "%s: more than one %s given\n", name,
				what);
		return KG_EXIT_USAGE;
	}
	struct snapshot_reader *sr = NULL;
	if (restore) {
		sr = snapshot_open(argv[optind], &cfg, &e);
		if (!sr) {
			fprintf(stderr, "%s: %s\n", name, e.msg);
			return KG_EXIT_USAGE;
		}
		snapshot_test_prefetch_delay(sr, (unsigned)prefetch_delay);
	} else {
		cfg.kernel_path = argv[optind];
	}

	/* Block the stop signals before any thread exists, so that only the
	 * signal thread receives them. */
	sigset_t old;
	serve_block_signals(&old);
	struct vm *vm = calloc(1, sizeof(*vm));
	if (!vm) {
		fprintf(stderr, "%s: out of memory\n", name);
		snapshot_close(sr);
		return KG_EXIT_USAGE;
	}
	if (vm_create(vm, &cfg, &e) < 0) {
		fprintf(stderr, "%s: %s\n", name, e.msg);
		snapshot_close(sr);
		free(vm);
		return KG_EXIT_USAGE;
	}
	if (sr && snapshot_load(sr, vm, &e) < 0) {
		fprintf(stderr, "%s: %s\n", name, e.msg);
		snapshot_close(sr);
		vm_destroy(vm);
		free(vm);
		return KG_EXIT_USAGE;
	}
	struct recording *rec = NULL;
	if (record && !(rec = recording_start(vm, log_path,
					      (unsigned)digest_ms, &e))) {
		fprintf(stderr, "%s: %s\n", name, e.msg);
		vm_destroy(vm);
		free(vm);
		return KG_EXIT_USAGE;
	}
	/* A deterministic VM (run --deterministic, or restored from one's
	 * snapshot) needs a deterministic gate: the recorder without a log
	 * places device writes and kagami's PIC/PIT interrupts at exits.
	 * record and lockstep install their own. */
	struct recorder *det = NULL;
	if (cfg.deterministic && !record && po.mode != PROTECT_LOCKSTEP &&
	    !(det = recorder_new(vm, &(struct recorder_opts){ 0 }, &e))) {
		fprintf(stderr, "%s: %s\n", name, e.msg);
		snapshot_close(sr);
		vm_destroy(vm);
		free(vm);
		return KG_EXIT_USAGE;
	}
	struct serve_opts so = { .name = name, .control_path = control_path,
				 .timeout_s = timeout_s, .summary = summary,
				 .protect = po.mode ? &po : NULL,
				 .lease = lease,
				 .lease_key = lease_keyfile ? &lease_key : NULL,
				 .lease_ttl_ms = lease_ttl ? lease_ttl
					 : 3 * (po.failover_ms ? po.failover_ms : 100) / 2 };
	uint64_t t0 = kg_now_ns();
	int status = serve_vm(vm, &so);
	if (rec && finish_recording(name, rec, log_path, kg_now_ns() - t0) < 0)
		status = KG_EXIT_HOST;
	recorder_free(det);
	snapshot_close(sr);
	vm_destroy(vm);
	free(vm);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return status;
}
