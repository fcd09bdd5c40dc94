/* kagami run and kagami restore: boot a PVH guest, or resume a snapshot,
 * and run it to the end. */
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
#include "../ft/checkpoint/snapshot.h"
#include "../vmm/size.h"
#include "../vmm/vm.h"

static void restore_usage(FILE *f)
{
	fprintf(f,
"usage: kagami restore [OPTIONS] SNAPSHOT\n"
"\n"
"Resumes a VM exactly where 'kagami ctl SOCKET snapshot --path FILE' saved\n"
"it. Memory size, vCPUs and the guest's state come from the snapshot;\n"
"host resources are given again: as many --disk and --net as the VM had\n"
"(the same images, or copies of them), and a console. RAM is mapped from\n"
"the file and loads on first touch; its checksum is verified in the\n"
"background and a mismatch stops the VM.\n"
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
"  -h, --help          show this help\n"
"\n"
"exit status: the code the guest wrote to the exit port (0xf4); 0 on a\n"
"clean power-off; 2 bad arguments or the VM could not be built; 3 the guest\n"
"crashed (fault report or triple fault); 4 a host-side failure while\n"
"running; 124 --timeout expired; 128+N on signal N.\n",
		VM_MAX_VCPUS, VM_MAX_DISKS, VM_MAX_NETS);
}

struct signal_waiter {
	struct vm *vm;
	double timeout_s; /* 0: none */
	atomic_bool done;
	int signo; /* the signal or timeout that stopped the VM, 0 if none */
};

/* Turns SIGINT/SIGTERM/SIGHUP (blocked everywhere) and the timeout into a
 * stop request, outside any signal handler. */
static void *signal_thread(void *arg)
{
	struct signal_waiter *w = arg;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR2); /* the controlling thread's wake-up */
	uint64_t deadline = w->timeout_s > 0
		? vm_now_ns() + (uint64_t)(w->timeout_s * 1e9) : 0;
	while (!atomic_load(&w->done)) {
		struct timespec slice = { 0, 100 * 1000 * 1000 };
		int sig = sigtimedwait(&set, NULL, &slice);
		if (sig == SIGUSR2)
			continue;
		/* Keep listening after a request: a later signal must still
		 * be taken from the queue (it matters if the first one raced
		 * with a guest reset). */
		if (sig > 0) {
			w->signo = sig;
			vm_request_stop(w->vm, VM_STOP_REQUEST, 128 + sig,
					"stopped by SIG%s", sigabbrev_np(sig));
		}
		if (deadline && vm_now_ns() >= deadline) {
			w->signo = -1;
			deadline = 0;
			vm_request_stop(w->vm, VM_STOP_REQUEST, KG_EXIT_TIMEOUT,
					"stopped: --timeout of %g s expired",
					w->timeout_s);
		}
	}
	return NULL;
}

static const char *reason_name(enum vm_stop_reason r)
{
	switch (r) {
	case VM_STOP_EXIT: return "guest exit";
	case VM_STOP_POWEROFF: return "power-off";
	case VM_STOP_CRASH: return "guest crash";
	case VM_STOP_ERROR: return "host error";
	case VM_STOP_REQUEST: return "stopped by host";
	default: return "?";
	}
}

static void print_summary(struct vm *vm, const struct vm_stop *st, int status)
{
	struct vm_stats *s = &vm->stats;
	double run_ms = (double)(vm_now_ns() - s->run_start_ns) / 1e6;
	uint64_t first = atomic_load(&s->first_output_ns);
	fprintf(stderr,
		"kagami: summary\n"
		"  guest        %s%s%s%s\n"
		"  machine      %llu MiB RAM, %u vCPU%s\n"
		"  result       %s, exit status %d\n"
		"  run time     %.1f ms",
		vm->cfg.kernel_path ? vm->cfg.kernel_path : "restored from a snapshot",
		vm->cfg.cmdline ? " (cmdline \"" : "",
		vm->cfg.cmdline ? vm->cfg.cmdline : "",
		vm->cfg.cmdline ? "\")" : "",
		(unsigned long long)(vm->cfg.mem_size >> 20), vm->ncpus,
		vm->ncpus == 1 ? "" : "s", reason_name(st->reason), status,
		run_ms);
	if (first)
		fprintf(stderr, ", first console output after %.2f ms",
			(double)first / 1e6);
	fprintf(stderr,
		"\n  exits        pio %llu, mmio %llu, other %llu\n"
		"  input gate   pio-in %llu, mmio-read %llu, guest-write %llu, "
		"irq %llu, time %llu (%s)\n"
		"  resets       %u\n",
		(unsigned long long)s->exits[VM_EXIT_PIO],
		(unsigned long long)s->exits[VM_EXIT_MMIO],
		(unsigned long long)s->exits[VM_EXIT_OTHER],
		(unsigned long long)vm->gate.count[GATE_PIO_IN],
		(unsigned long long)vm->gate.count[GATE_MMIO_READ],
		(unsigned long long)vm->gate.count[GATE_GUEST_WRITE],
		(unsigned long long)vm->gate.count[GATE_IRQ],
		(unsigned long long)vm->gate.count[GATE_TIME],
		vm->gate.ops->name, s->resets);
}

static int status_of(const struct vm_stop *st)
{
	switch (st->reason) {
	case VM_STOP_EXIT: return st->exit_code;
	case VM_STOP_POWEROFF: return 0;
	case VM_STOP_CRASH: return KG_EXIT_CRASH;
	case VM_STOP_REQUEST: return st->exit_code;
	default: return KG_EXIT_HOST;
	}
}

static int parse_uint(const char *opt, const char *s, unsigned long max,
		      unsigned long *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (!*s || *end || errno || v > max || *s == '-') {
		fprintf(stderr, "kagami run: %s '%s': expected a whole number "
			"up to %lu\n", opt, s, max);
		return -1;
	}
	*out = v;
	return 0;
}

/* The control socket's snapshot command. */
static int do_snapshot(struct control_call *call, struct kg_err *e)
{
	struct vm *vm = call->vm;
	const cJSON *req = call->req;
	cJSON *reply = call->reply;
	const cJSON *path = cJSON_GetObjectItemCaseSensitive(req, "path");
	const cJSON *args = cJSON_GetObjectItemCaseSensitive(req, "args");
	if (!cJSON_IsString(path) && cJSON_GetArraySize(args) > 0)
		path = cJSON_GetArrayItem(args, 0);
	if (!cJSON_IsString(path) || !*path->valuestring)
		return kg_errf(e, "snapshot needs a path (--path FILE)");
	struct snapshot_stats st;
	if (snapshot_save(vm, path->valuestring, &st, e) < 0)
		return -1;
	cJSON_AddStringToObject(reply, "path", path->valuestring);
	cJSON_AddNumberToObject(reply, "bytes", (double)st.bytes);
	cJSON_AddNumberToObject(reply, "pause_us", (double)st.pause_us);
	cJSON_AddNumberToObject(reply, "total_ms", (double)st.total_us / 1e3);
	cJSON_AddNumberToObject(reply, "second_pass_pages",
				(double)st.second_pass_pages);
	return 0;
}

static const struct control_cmd vm_commands[] = {
	{ "snapshot", "save the VM to --path FILE while it runs "
		      "(kagami restore FILE resumes it)", do_snapshot, false },
	{ "storage-migrate", "NEWPATH [--disk N]: move disk N (default 0) "
			     "to a new image while the guest runs",
	  cmd_storage_migrate, true },
	{ NULL, NULL, NULL, false },
};

static int run_main(const char *name, bool restore, int argc, char **argv);

int cmd_run(int argc, char **argv)
{
	return run_main("kagami run", false, argc, argv);
}

int cmd_restore(int argc, char **argv)
{
	return run_main("kagami restore", true, argc, argv);
}

static int run_main(const char *name, bool restore, int argc, char **argv)
{
	enum { O_MEM = 256, O_CPUS, O_CONSOLE, O_CMDLINE, O_INITRD, O_TIMEOUT,
	       O_SUMMARY, O_DISK, O_NET, O_CONTROL };
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
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct vm_config cfg = { .mem_size = 256ull << 20, .ncpus = 1 };
	struct kg_err e = { "" };
	bool summary = false;
	const char *control_path = NULL;
	double timeout_s = 0;
	unsigned long n;
	char *end;

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
			if (parse_uint("--cpus", optarg, VM_MAX_VCPUS, &n) < 0)
				return KG_EXIT_USAGE;
			cfg.ncpus = (unsigned)n;
			break;
		case O_CONSOLE:
			if (console_parse(optarg, &cfg.console, &e) < 0) {
				fprintf(stderr, "%s: --console: %s\n", name,
					e.msg);
				return KG_EXIT_USAGE;
			}
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
		case O_DISK:
			if (cfg.ndisks == VM_MAX_DISKS) {
				fprintf(stderr, "%s: at most %d --disk\n",
					name, VM_MAX_DISKS);
				return KG_EXIT_USAGE;
			}
			if (disk_spec_parse(optarg, &cfg.disks[cfg.ndisks++],
					    &e) < 0) {
				fprintf(stderr, "%s: --disk: %s\n", name, e.msg);
				return KG_EXIT_USAGE;
			}
			break;
		case O_NET:
			if (cfg.nnets == VM_MAX_NETS) {
				fprintf(stderr, "%s: at most %d --net\n",
					name, VM_MAX_NETS);
				return KG_EXIT_USAGE;
			}
			if (net_spec_parse(optarg, &cfg.nets[cfg.nnets++],
					   &e) < 0) {
				fprintf(stderr, "%s: --net: %s\n", name, e.msg);
				return KG_EXIT_USAGE;
			}
			break;
		case 'h':
			(restore ? restore_usage : run_usage)(stdout);
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
	} else {
		cfg.kernel_path = argv[optind];
	}

	/* Block the stop signals before any thread exists, so that only the
	 * signal thread receives them. */
	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR2);
	pthread_sigmask(SIG_BLOCK, &set, &old);

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
	struct control *ctl = NULL;
	if ((sr && snapshot_load(sr, vm, &e) < 0) ||
	    (control_path &&
	     !(ctl = control_open(control_path, vm, vm_commands, NULL, &e)))) {
		fprintf(stderr, "%s: %s\n", name, e.msg);
		snapshot_close(sr);
		vm_destroy(vm);
		free(vm);
		return KG_EXIT_USAGE;
	}
	struct signal_waiter w = { .vm = vm, .timeout_s = timeout_s };
	pthread_t st;
	int r = pthread_create(&st, NULL, signal_thread, &w);
	if (r) {
		fprintf(stderr, "%s: pthread_create: %s\n", name, strerror(r));
		control_close(ctl);
		snapshot_close(sr);
		vm_destroy(vm);
		free(vm);
		return KG_EXIT_HOST;
	}
	struct vm_stop stop;
	int status;
	if (vm_run(vm, &stop, &e) < 0) {
		fprintf(stderr, "%s: %s\n", name, e.msg);
		stop.reason = VM_STOP_ERROR;
		status = KG_EXIT_HOST;
	} else {
		status = status_of(&stop);
		if (stop.reason == VM_STOP_CRASH || stop.reason == VM_STOP_ERROR)
			fprintf(stderr, "kagami: %s\n", stop.message);
		else if (stop.reason == VM_STOP_REQUEST)
			fprintf(stderr, "kagami: %s\n", stop.message);
	}
	atomic_store(&w.done, true);
	pthread_kill(st, SIGUSR2);
	pthread_join(st, NULL);
	control_close(ctl);
	snapshot_close(sr);
	if (summary)
		print_summary(vm, &stop, status);
	vm_destroy(vm);
	free(vm);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return status;
}
