/* Subcommands of build/kagami. Each returns the process exit status. */
#ifndef KG_CLI_H
#define KG_CLI_H

/* Exit statuses of kagami itself (the guest's own code passes through). */
#define KG_EXIT_USAGE 2   /* bad arguments or the VM could not be built */
#define KG_EXIT_CRASH 3   /* the guest crashed (= KAGAMI_EXIT_GUEST_CRASH) */
#define KG_EXIT_HOST 4    /* a host-side failure while the VM ran */
#define KG_EXIT_TIMEOUT 124

int cmd_run(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_record(int argc, char **argv);
int cmd_replay(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_kv(int argc, char **argv);
int cmd_receive(int argc, char **argv);
int cmd_secondary(int argc, char **argv);
int cmd_drill(int argc, char **argv);
int cmd_witness(int argc, char **argv);
int cmd_check(int argc, char **argv);
/* `kagami ctl SOCKET COMMAND [ARG...] [--KEY VALUE...]`: a client of the
 * control socket (control.h). */
int cmd_ctl(int argc, char **argv);

#endif
