/* kagami receive: wait for a VM migrating in, then run it. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "serve.h"
#include "ft/checkpoint/vm_state.h"
#include "ft/pipeline/disk_sync.h"
#include "ft/pipeline/incoming.h"
#include "ft/pipeline/rlink.h"
#include "ft/pipeline/verdict.h"
#include "vmm/size.h"
#include "vmm/vm.h"

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
"                      this stream writes the guest's memory\n"
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

struct recv_ctx {
	struct incoming in;
	struct vm *vm;
	struct kg_tp_listener *l;
	struct incoming_answerer *ans;
};

static void on_started(void *arg)
{
	struct recv_ctx *c = arg;
	struct kg_err e;
	if (incoming_running(&c->in, &e) < 0)
		fprintf(stderr, "kagami receive: %s (the source can still ask)\n",
			e.msg);
	for (unsigned i = 0; i < c->vm->cfg.nnets; i++)
		if (virtio_net_announce(c->vm->nets[i], &e) < 0)
			fprintf(stderr, "kagami receive: %s\n", e.msg);
	c->ans = incoming_answer_start(c->l, c->in.session, &e);
	if (!c->ans)
		fprintf(stderr, "kagami receive: %s\n", e.msg);
	fprintf(stderr, "kagami receive: the guest runs here (%llu rounds, "
		"%.1f MB received)\n", (unsigned long long)c->in.rounds,
		(double)c->in.bytes / 1e6);
}

int receive_prepare_disks(struct vm_config *cfg, const struct incoming *in,
			 bool created[], struct kg_err *e)
{
	bool storage = in->mode & RLINK_F_STORAGE;
	for (unsigned i = 0; i < cfg->ndisks; i++) {
		struct disk_spec *d = &cfg->disks[i];
		struct stat st;
		bool exists = stat(d->path, &st) == 0;
		if (!storage) {
			if (!exists)
				return kg_errno(e, "disk %s", d->path);
			if ((uint64_t)st.st_size != in->disk_size[i])
				return kg_errf(e, "disk %s: %llu bytes, the "
					       "source's disk %u has %llu (not "
					       "the same image?)", d->path,
					       (unsigned long long)st.st_size, i,
					       (unsigned long long)in->disk_size[i]);
			d->defer_lock = true; /* taken at hand-over */
			continue;
		}
		if (exists && st.st_size > 0)
			return kg_errf(e, "disk %s: exists and is not empty; "
				       "the incoming copy is written to a new "
				       "image (give a path that does not exist)",
				       d->path);
		int fd = open(d->path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0)
			return kg_errno(e, "disk %s: open", d->path);
		created[i] = !exists;
		int r = ftruncate(fd, (off_t)in->disk_size[i]);
		close(fd);
		if (r < 0)
			return kg_errno(e, "disk %s: ftruncate", d->path);
	}
	return 0;
}

void receive_remove_created(const struct vm_config *cfg, const bool created[])
{
	for (unsigned i = 0; i < cfg->ndisks; i++)
		if (created[i])
			unlink(cfg->disks[i].path);
}

struct early_cleanup {
	const struct vm_config *cfg;
	const bool *created;
};

static void early_cleanup(void *arg)
{
	struct early_cleanup *c = arg;
	if (c->created)
		receive_remove_created(c->cfg, c->created);
}

int cmd_receive(int argc, char **argv)
{
	enum { O_LISTEN = 256, O_KEY, O_DISK, O_NET, O_CONSOLE, O_CONTROL,
	       O_TIMEOUT, O_SUMMARY, O_DIE_AT, O_MAX_STREAM_MEM };
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, O_LISTEN },
		{ "key", required_argument, NULL, O_KEY },
		{ "disk", required_argument, NULL, O_DISK },
		{ "net", required_argument, NULL, O_NET },
		{ "console", required_argument, NULL, O_CONSOLE },
		{ "control", required_argument, NULL, O_CONTROL },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "summary", no_argument, NULL, O_SUMMARY },
		{ "test-die-at", required_argument, NULL, O_DIE_AT },
		{ "max-stream-memory", required_argument, NULL,
		  O_MAX_STREAM_MEM },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *name = "kagami receive";
	struct vm_config cfg = { 0 };
	struct kg_err e = { 0 };
	const char *listen_addr = NULL, *keyfile = NULL, *control = NULL;
	const char *die_at = NULL;
	uint64_t max_stream_mem = 0;
	double timeout_s = 0;
	bool summary = false;
	char *end;
	opterr = 0;
	optind = 1;
	int c, li = 0;
	while ((c = getopt_long(argc, argv, "+:h", opts, &li)) != -1) {
		switch (c) {
		case O_LISTEN: listen_addr = optarg; break;
		case O_KEY: keyfile = optarg; break;
		case O_CONTROL: control = optarg; break;
		case O_SUMMARY: summary = true; break;
		case O_DIE_AT: die_at = optarg; break;
		case O_MAX_STREAM_MEM:
			if (size_parse(optarg, &max_stream_mem, &e) < 0) {
				fprintf(stderr, "%s: --max-stream-memory: %s\n",
					name, e.msg);
				return KG_EXIT_USAGE;
			}
			break;
		case O_TIMEOUT:
			timeout_s = strtod(optarg, &end);
			if (!*optarg || *end || !(timeout_s > 0)) {
				fprintf(stderr, "%s: --timeout '%s': expected a "
					"positive number of seconds\n", name,
					optarg);
				return KG_EXIT_USAGE;
			}
			break;
		case O_CONSOLE:
		case O_DISK:
		case O_NET:
			if (serve_resource_opt(name, opts[li].name, optarg,
					       &cfg) < 0)
				return KG_EXIT_USAGE;
			break;
		case 'h':
			receive_usage(stdout);
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
	struct kg_tp_key key;
	struct kg_tp_opts to;
	kg_tp_opts_default(&to);
	to.max_frame = RLINK_MAX_FRAME;
	if (keyfile) {
		if (kg_tp_key_load(keyfile, &key, &e) < 0) {
			fprintf(stderr, "%s: --key: %s\n", name, e.msg);
			return KG_EXIT_USAGE;
		}
		to.key = &key;
	}
	struct recv_ctx rc = { .in.die_at = die_at,
			       .in.max_stream_memory = max_stream_mem };
	if (kg_tp_listen(listen_addr, &to, &rc.l, &e) < 0) {
		fprintf(stderr, "%s: %s\n", name, e.msg);
		return KG_EXIT_USAGE;
	}
	fprintf(stderr, "%s: listening on %s\n", name,
		kg_tp_listener_addr(rc.l));

	sigset_t old;
	serve_block_signals(&old);
	struct early_cleanup ec = { &cfg, NULL };
	struct vm_state_config sc;
	bool created[VM_MAX_DISKS] = { false };
	ec.created = created;
	struct early_signals *es = early_signals_start(name, early_cleanup, &ec);
	struct vm *vm = NULL;
	int status = 1;
	/* A refused peer (wrong key) is logged and we wait for the next. */
	while (incoming_begin(&rc.in, rc.l, &sc, &e) < 0) {
		if (receive_begin_verdict(e.kind) == RECEIVE_GIVE_UP)
			goto fail;
		fprintf(stderr, "%s: %s; waiting for another source\n", name,
			e.msg);
	}
	if (sc.ndisks != cfg.ndisks || sc.nnets != cfg.nnets) {
		kg_errf(&e, "the incoming VM has %u disk(s) and %u network(s); "
			"give as many --disk and --net (%u and %u given)",
			sc.ndisks, sc.nnets, cfg.ndisks, cfg.nnets);
		incoming_abort(&rc.in, e.msg);
		goto fail;
	}
	cfg.mem_size = sc.mem_size;
	cfg.ncpus = sc.ncpus;
	cfg.deterministic = sc.flags & VM_STATE_CONFIG_DETERMINISTIC;
	if (receive_prepare_disks(&cfg, &rc.in, created, &e) < 0) {
		incoming_abort(&rc.in, e.msg);
		goto fail;
	}
	vm = calloc(1, sizeof(*vm));
	if (!vm || vm_create(vm, &cfg, &e) < 0) {
		if (!vm)
			kg_errf(&e, "out of memory");
		free(vm);
		vm = NULL;
		incoming_abort(&rc.in, e.msg);
		goto fail;
	}
	vm_state_park(vm);
	rc.vm = vm;
	bool storage = rc.in.mode & RLINK_F_STORAGE;
	if (incoming_receive(&rc.in, vm, storage ? &disk_sync_sink : NULL, vm,
			     &e) < 0)
		goto fail;
	/* GO: the guest is ours. Take the shared images' locks, or make the
	 * copied ones durable, before it runs. */
	for (unsigned i = 0; i < cfg.ndisks && !storage; i++)
		if (virtio_blk_lock(vm->blks[i], true, &e) < 0) {
			incoming_abort(&rc.in, e.msg);
			goto fail;
		}
	if (storage && disk_sync_flush(vm, &e) < 0) {
		incoming_abort(&rc.in, e.msg);
		goto fail;
	}
	early_signals_stop(es);
	es = NULL;
	vm_state_activate(vm);
	struct serve_opts so = { .name = name, .control_path = control,
				 .timeout_s = timeout_s, .summary = summary,
				 .started = on_started, .ctx = &rc };
	status = serve_vm(vm, &so);
	incoming_answer_stop(rc.ans);
	goto out;
fail:
	fprintf(stderr, "%s: incoming migration failed: %s; nothing runs "
		"here\n", name, e.msg);
	receive_remove_created(&cfg, created);
	status = 1;
out:
	early_signals_stop(es);
	incoming_end(&rc.in);
	if (vm) {
		vm_state_unpark(vm);
		vm_destroy(vm);
		free(vm);
	}
	kg_tp_listener_close(rc.l);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return status;
}
