/* kagami secondary: hold the replica of a protected VM; take over when
 * the primary dies. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <sys/mman.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "secondary_lockstep.h"
#include "serve.h"
#include "ft/checkpoint/vm_state.h"
#include "ft/pipeline/disk_sync.h"
#include "ft/pipeline/guard.h"
#include "ft/pipeline/incoming.h"
#include "ft/pipeline/rlink.h"
#include "ft/pipeline/verdict.h"
#include "vmm/size.h"
#include "vmm/vm.h"
#include "base/clock.h"

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
"  --key FILE          pre-shared key (as the primary's --key)\n"
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
"                      stand down and wait for it to reconnect)\n"
"  --lease-key FILE    as the primary's: the lease witness's key, not the\n"
"                      replication --key\n"
"  --lease-ttl MS      as the primary's (default 1.5x the failover timeout)\n"
"  --max-stream-memory SIZE  what the primary may make this side hold\n"
"                      per connection (a staged epoch, queued log): beyond\n"
"                      it the stream is refused as corrupt (the replica is\n"
"                      kept). Default 2x the guest's RAM + 64M; raise it\n"
"                      for epochs carrying more disk blocks than that\n"
"  --timeout SECONDS   stop the guest this long after taking over\n"
"  --summary           print a run summary at the end\n"
"  -h, --help          show this help\n"
"\n"
"Without a committed epoch there is nothing to resume: a primary lost\n"
"during the initial copy leaves the secondary waiting for the next one.\n"
"Split brain: without --lease, a cut link looks like a dead primary, and\n"
"both sides run the guest.\n"
"exit status: 0 when the primary ended protection on purpose (its guest\n"
"ended); after a failover, as for 'kagami run'; 1 on errors.\n");
}

struct sec_ctx {
	struct vm *vm;
	uint64_t fail_ns; /* when the primary was declared gone */
};

static void on_started(void *arg)
{
	struct sec_ctx *c = arg;
	struct kg_err e;
	for (unsigned i = 0; i < c->vm->cfg.nnets; i++)
		if (virtio_net_announce(c->vm->nets[i], &e) < 0)
			fprintf(stderr, "kagami secondary: %s\n", e.msg);
	fprintf(stderr, "kagami secondary: the guest runs here (%.1f ms after "
		"the primary was declared lost)\n",
		(double)(kg_now_ns() - c->fail_ns) / 1e6);
}

static void drop_vm(struct vm **vm)
{
	if (!*vm)
		return;
	vm_state_unpark(*vm);
	vm_destroy(*vm);
	free(*vm);
	*vm = NULL;
}

struct prev_ctx {
	struct vm **vm;
	const struct vm_config *cfg;
};

/* The held replica is no longer needed: the new copy committed. */
static void drop_prev(struct prev_ctx *c)
{
	if (!*c->vm)
		return;
	drop_vm(c->vm);
	for (unsigned i = 0; i < c->cfg->ndisks; i++) {
		char held[sizeof(c->cfg->disks[i].path) + 8];
		snprintf(held, sizeof(held), "%s.held", c->cfg->disks[i].path);
		unlink(held);
	}
}

static void drop_old(void *ctx)
{
	drop_prev(ctx);
}

/* The held replica's images move aside (PATH.held) while a new copy is
 * made at PATH, and come back if that copy never commits. */
static void held_images(const struct vm_config *cfg, bool created[],
			bool aside)
{
	for (unsigned i = 0; i < cfg->ndisks; i++) {
		char held[sizeof(cfg->disks[i].path) + 8];
		snprintf(held, sizeof(held), "%s.held", cfg->disks[i].path);
		if (aside)
			rename(cfg->disks[i].path, held);
		else
			rename(held, cfg->disks[i].path);
		created[i] = !aside;
	}
}

/* A dropped lockstep replica's RAM, kept (read-only) past its VM. */
static void keep_ram(const struct vm *vm, struct guest_mem *ram)
{
	ram->fd = dup(vm->mem.fd);
	ram->size = vm->mem.size;
	void *p = ram->fd < 0 ? MAP_FAILED
			      : mmap(NULL, ram->size, PROT_READ, MAP_SHARED,
				     ram->fd, 0);
	ram->base = p == MAP_FAILED ? NULL : p;
	if (!ram->base && ram->fd >= 0) {
		close(ram->fd);
		ram->fd = -1;
	}
}

static void release_ram(struct guest_mem *ram)
{
	if (ram->base)
		munmap(ram->base, ram->size);
	if (ram->fd >= 0)
		close(ram->fd);
	ram->base = NULL;
	ram->fd = -1;
}

struct early_ctx {
	const struct vm_config *cfg;
	const bool *created;
};

/* A secondary stopped before it ran anything: its replica images go. */
static void early_cleanup(void *arg)
{
	struct early_ctx *c = arg;
	receive_remove_created(c->cfg, c->created);
}

int cmd_secondary(int argc, char **argv)
{
	enum { O_LISTEN = 256, O_KEY, O_DISK, O_NET, O_CONSOLE, O_CONTROL,
	       O_TIMEOUT, O_SUMMARY, O_FAILOVER, O_LEASE, O_LEASE_TTL,
	       O_LEASE_KEY, O_CORRUPT_AT, O_MAX_STREAM_MEM };
	static const struct option opts[] = {
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
		{ "max-stream-memory", required_argument, NULL,
		  O_MAX_STREAM_MEM },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *name = "kagami secondary";
	struct vm_config cfg = { 0 };
	struct kg_err e = { 0 };
	const char *listen_addr = NULL, *keyfile = NULL, *control = NULL;
	const char *lease = NULL, *lease_keyfile = NULL;
	unsigned long lease_ttl = 0;
	double timeout_s = 0;
	unsigned long failover_ms = 100;
	unsigned long long corrupt_at = 0;
	uint64_t max_stream_mem = 0;
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
		case O_LEASE: lease = optarg; break;
		case O_LEASE_KEY: lease_keyfile = optarg; break;
		case O_LEASE_TTL:
			lease_ttl = strtoul(optarg, &end, 10);
			if (!*optarg || *end || lease_ttl < 10 ||
			    lease_ttl > 600000) {
				fprintf(stderr, "%s: --lease-ttl '%s': "
					"milliseconds, 10 to 600000\n", name,
					optarg);
				return KG_EXIT_USAGE;
			}
			break;
		case O_MAX_STREAM_MEM:
			if (size_parse(optarg, &max_stream_mem, &e) < 0) {
				fprintf(stderr, "%s: --max-stream-memory: %s\n",
					name, e.msg);
				return KG_EXIT_USAGE;
			}
			break;
		case O_CORRUPT_AT:
			corrupt_at = strtoull(optarg, &end, 10);
			if (!*optarg || *end || !corrupt_at) {
				fprintf(stderr, "%s: --test-corrupt-at '%s': an "
					"exit index above 0\n", name, optarg);
				return KG_EXIT_USAGE;
			}
			break;
		case O_FAILOVER:
			failover_ms = strtoul(optarg, &end, 10);
			if (!*optarg || *end || failover_ms < 10 ||
			    failover_ms > 600000) {
				fprintf(stderr, "%s: --failover-timeout '%s': "
					"milliseconds, 10 to 600000\n", name,
					optarg);
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
			secondary_usage(stdout);
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
	if (lease_keyfile && !lease) {
		fprintf(stderr, "%s: --lease-key needs --lease witness:ADDR\n",
			name);
		return KG_EXIT_USAGE;
	}
	/* The witness's key, apart from the replication key: the witness's
	 * host holds this one only. */
	struct kg_tp_key lease_key;
	if (lease_keyfile && kg_tp_key_load(lease_keyfile, &lease_key, &e) < 0) {
		fprintf(stderr, "%s: --lease-key: %s\n", name, e.msg);
		return KG_EXIT_USAGE;
	}
	const struct kg_tp_key *lkey = lease_keyfile ? &lease_key : NULL;
	struct kg_tp_key key;
	struct kg_tp_opts to;
	kg_tp_opts_default(&to);
	to.max_frame = RLINK_MAX_FRAME;
	/* Patient during the first copy; once an epoch is committed the
	 * primary sends one or a heartbeat at least every 20 ms, and
	 * --failover-timeout of silence means it is gone. */
	to.io_timeout_ms = 10000;
	if (keyfile) {
		if (kg_tp_key_load(keyfile, &key, &e) < 0) {
			fprintf(stderr, "%s: --key: %s\n", name, e.msg);
			return KG_EXIT_USAGE;
		}
		to.key = &key;
	}
	struct kg_tp_listener *l;
	if (kg_tp_listen(listen_addr, &to, &l, &e) < 0) {
		fprintf(stderr, "%s: %s\n", name, e.msg);
		return KG_EXIT_USAGE;
	}
	fprintf(stderr, "%s: listening on %s\n", name, kg_tp_listener_addr(l));
	sigset_t old;
	serve_block_signals(&old);
	bool created[VM_MAX_DISKS] = { false };
	struct early_ctx ec = { &cfg, created };
	struct early_signals *es = early_signals_start(name, early_cleanup, &ec);
	int status = 1;
	struct vm *vm = NULL;
	/* After a corrupted link, the replica we hold while the primary
	 * reconnects (it will, unless it died in the meantime). */
	bool held = false;
	uint64_t committed = 0, old_committed = 0;
	struct vm *prev = NULL;
	struct prev_ctx pc = { &prev, &cfg };
	/* Lockstep: the RAM of the last replica, dropped from replay
	 * (diverged or cut): the VM itself is gone (its TAP and disks are
	 * free for the next one), its memfd kept: the next session compares
	 * page hashes and fetches only the pages that differ. */
	struct guest_mem ls_ram = { .fd = -1 };
again:
	for (;;) {
		struct incoming in = { .standby = true,
				       .beat_ms = (unsigned)failover_ms / 4,
				       .failover_ms = (int)failover_ms,
				       .max_stream_memory = max_stream_mem };
		struct vm_state_config sc;
		in.have_mem = ls_ram.base ? ls_ram.size : 0;
		kg_tp_listener_set_timeout(l, held ? (int)(failover_ms * 10 < 1000
					   ? 1000 : failover_ms * 10) : -1);
		if (incoming_begin(&in, l, &sc, &e) < 0) {
			if (standby_begin_verdict(e.kind, held) ==
			    STANDBY_FAIL_OVER) {
				kg_errf(&e, "the primary did not come back after "
					"a corrupted link");
				goto failover;
			}
			fprintf(stderr, "%s: %s; waiting for a primary\n", name,
				e.msg);
			continue;
		}
		if (sc.ndisks != cfg.ndisks || sc.nnets != cfg.nnets) {
			kg_errf(&e, "the protected VM has %u disk(s) and %u "
				"network(s); give as many --disk and --net (%u "
				"and %u given)", sc.ndisks, sc.nnets,
				cfg.ndisks, cfg.nnets);
			incoming_abort(&in, e.msg);
			incoming_end(&in);
			fprintf(stderr, "%s: %s\n", name, e.msg);
			goto out;
		}
		/* A new session starts a new copy: a new VM and images. A
		 * replica held from the last session stays until the new one
		 * commits: the primary held its outputs meanwhile, so failing
		 * over to it loses nothing a client saw. */
		drop_prev(&pc);
		if (held) {
			prev = vm;
			old_committed = committed;
			held_images(&cfg, created, true);
		} else {
			drop_vm(&vm);
			receive_remove_created(&cfg, created);
		}
		vm = NULL;
		held = false;
		cfg.mem_size = sc.mem_size;
		cfg.ncpus = sc.ncpus;
		cfg.deterministic = sc.flags & VM_STATE_CONFIG_DETERMINISTIC;
		vm = calloc(1, sizeof(*vm));
		if (!vm || receive_prepare_disks(&cfg, &in, created, &e) < 0 ||
		    vm_create(vm, &cfg, &e) < 0) {
			if (!vm)
				kg_errf(&e, "out of memory");
			free(vm);
			vm = NULL;
			incoming_abort(&in, e.msg);
			incoming_end(&in);
			fprintf(stderr, "%s: %s\n", name, e.msg);
			goto out;
		}
		vm_state_park(vm);
		if (ls_ram.base) {
			if (ls_ram.size == vm->mem.size)
				guest_mem_copy_data(&vm->mem, &ls_ram);
			release_ram(&ls_ram);
		}
		fprintf(stderr, "%s: protecting a %s VM for %s\n", name,
			(in.mode & 0xff) == RLINK_MODE_FT ? "FT"
			: (in.mode & 0xff) == RLINK_MODE_HA ? "HA" : "lockstep",
			rlink_peer(in.link));
		in.on_first_commit = drop_old;
		in.commit_ctx = &pc;
		int r = incoming_follow(&in, vm, &disk_sync_sink, vm, &e);
		committed = in.committed_seq;
		if (r == 3 && in.hash_round)
			fprintf(stderr, "%s: log-assisted copy: %llu page(s) "
				"differed from the replica's\n", name,
				(unsigned long long)in.needed_pages);
		if (r == 3) {
			struct secondary_lockstep_opts lo = {
				.name = name, .control_path = control,
				.timeout_s = timeout_s, .summary = summary,
				.lease = lease, .lease_key = lkey,
				.lease_ttl_ms = lease_ttl ? (unsigned)lease_ttl
					: 3 * (unsigned)failover_ms / 2,
				.test_corrupt_at = corrupt_at,
			};
			/* serve_vm takes the signals while the replica runs. */
			early_signals_stop(es);
			es = NULL;
			drop_prev(&pc);
			int st = 1;
			enum secondary_lockstep_end how =
				secondary_lockstep(&in, vm, &lo, &st);
			incoming_end(&in);
			if (how == LOCKSTEP_TOOK_OVER || how == LOCKSTEP_STOPPED ||
			    how == LOCKSTEP_ENDED) {
				status = how == LOCKSTEP_ENDED ? 0 : st;
				goto out;
			}
			/* Its RAM is most of the next copy. */
			keep_ram(vm, &ls_ram);
			drop_vm(&vm);
			receive_remove_created(&cfg, created);
			es = early_signals_start(name, early_cleanup, &ec);
			fprintf(stderr, "%s: waiting for a primary\n", name);
			continue;
		}
		incoming_end(&in);
		if (!committed && prev) {
			/* The new copy never committed: back to the last. */
			drop_vm(&vm);
			receive_remove_created(&cfg, created);
			held_images(&cfg, created, false);
			vm = prev;
			prev = NULL;
			committed = old_committed;
			if (r > 0)
				r = 2;
		}
		if (r == 0) {
			fprintf(stderr, "%s: the primary ended protection: %s\n",
				name, e.msg);
			status = 0;
			goto out;
		}
		if (r == 2 && committed) {
			fprintf(stderr, "%s: %s; keeping epoch %llu while the "
				"primary reconnects\n", name, e.msg,
				(unsigned long long)committed);
			held = true;
			continue;
		}
		drop_prev(&pc);
		if (r != 1 || !committed) {
			fprintf(stderr, "%s: %s%s; waiting for a primary\n", name,
				e.msg, r > 0 ? " (no epoch committed yet: "
					       "nothing to resume)" : "");
			vm_state_unpark(vm);
			vm_destroy(vm);
			free(vm);
			vm = NULL;
			continue;
		}
		goto failover;
	}
failover:;
	uint64_t fail_ns = kg_now_ns();
	struct guard *guard = NULL;
	if (lease) {
		unsigned ttl = lease_ttl ? (unsigned)lease_ttl
					 : 3 * (unsigned)failover_ms / 2;
		struct kg_err ge;
		guard = guard_start(vm, lease, lkey, ttl, 2 * ttl, &ge);
		if (!guard) {
			fprintf(stderr, "%s: primary unreachable (%s), but the "
				"lease cannot be taken (%s): the primary may be "
				"alive and go on without us, so we do not take "
				"over; dropping epoch %llu and waiting for it to "
				"reconnect\n", name, e.msg, ge.msg,
				(unsigned long long)committed);
			drop_vm(&vm);
			held = false;
			goto again;
		}
	}
	fprintf(stderr, "%s: primary lost: %s; resuming epoch %llu\n", name,
		e.msg, (unsigned long long)committed);
	if (disk_sync_flush(vm, &e) < 0) {
		fprintf(stderr, "%s: %s\n", name, e.msg);
		goto out;
	}
	early_signals_stop(es);
	es = NULL;
	vm_state_activate(vm);
	struct sec_ctx sx = { vm, fail_ns };
	struct serve_opts so = { .name = name, .control_path = control,
				 .timeout_s = timeout_s, .summary = summary,
				 .started = on_started, .ctx = &sx,
				 .guard = guard };
	status = serve_vm(vm, &so);
	guard_stop(guard);
out:
	early_signals_stop(es);
	drop_prev(&pc);
	release_ram(&ls_ram);
	if (vm) {
		vm_state_unpark(vm);
		vm_destroy(vm);
		free(vm);
	}
	kg_tp_listener_close(l);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return status;
}
