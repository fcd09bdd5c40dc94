/* build/kagami: the command-line entry point. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "crash.h"

#ifndef KAGAMI_VERSION
#define KAGAMI_VERSION "0.1.0"
#endif

static void usage(FILE *f)
{
	fprintf(f,
		"usage: kagami COMMAND [OPTIONS]\n"
		"\n"
		"kagami is a virtual machine monitor on Linux KVM built for "
		"fault tolerance.\n"
		"\n"
		"commands:\n"
		"  run        boot a PVH guest image (see 'kagami run --help')\n"
		"  kv         client of the kvstore guest: put, get, del, stats,\n"
		"             load, verify (see 'kagami kv --help')\n"
		"  restore    resume a VM from a snapshot (see 'kagami restore "
		"--help')\n"
		"  record     run a guest deterministically, logging every "
		"input\n"
		"             (see 'kagami record --help')\n"
		"  replay     re-execute a recording exactly, checking every "
		"exit\n"
		"             (see 'kagami replay --help')\n"
		"  receive    wait for a VM migrating in, then run it (see\n"
		"             'kagami receive --help')\n"
		"  secondary  hold the replica of a VM protected with 'run\n"
		"             --replicate ft|ha'; take over when the primary "
		"dies\n"
		"  drill      failover drills: a protected kvstore pair under "
		"load,\n"
		"             a host killed, recovery time and lost writes\n"
		"  ctl        send a command to a running kagami's control "
		"socket\n"
		"             (migrate, storage-migrate, snapshot, ...)\n"
		"  inspect    list and check the sections of a snapshot or stream\n"
		"  witness    serve leases against split brain (see 'kagami\n"
		"             witness --help')\n"
		"  check      judge client histories: linearizable, nothing\n"
		"             acknowledged lost, the longest outage\n"
		"  help       show this help\n"
		"  version    print the version\n");
}

int main(int argc, char **argv)
{
	if (crash_install() < 0)
		perror("kagami: warning: crash handler not installed");
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2) {
		fprintf(stderr, "kagami: no command given (try 'kagami --help')\n");
		return KG_EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "run"))
		return cmd_run(argc - 1, argv + 1);
	if (!strcmp(cmd, "inspect"))
		return cmd_inspect(argc - 1, argv + 1);
	if (!strcmp(cmd, "kv"))
		return cmd_kv(argc - 1, argv + 1);
	if (!strcmp(cmd, "restore"))
		return cmd_restore(argc - 1, argv + 1);
	if (!strcmp(cmd, "record"))
		return cmd_record(argc - 1, argv + 1);
	if (!strcmp(cmd, "replay"))
		return cmd_replay(argc - 1, argv + 1);
	if (!strcmp(cmd, "receive"))
		return cmd_receive(argc - 1, argv + 1);
	if (!strcmp(cmd, "drill"))
		return cmd_drill(argc - 1, argv + 1);
	if (!strcmp(cmd, "secondary"))
		return cmd_secondary(argc - 1, argv + 1);
	if (!strcmp(cmd, "ctl"))
		return cmd_ctl(argc - 1, argv + 1);
	if (!strcmp(cmd, "witness"))
		return cmd_witness(argc - 1, argv + 1);
	if (!strcmp(cmd, "check"))
		return cmd_check(argc - 1, argv + 1);
	if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") ||
	    !strcmp(cmd, "-h")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
		printf("kagami %s\n", KAGAMI_VERSION);
		return 0;
	}
	fprintf(stderr, "kagami: unknown command '%s' (try 'kagami --help')\n",
		cmd);
	return KG_EXIT_USAGE;
}
