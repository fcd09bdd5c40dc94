/*
 * The receiving end of a live migration (`kagami receive`): a state
 * machine over the incoming stream (incoming.h).
 *
 *   WAITING ──a source says HELLO──► PREPARING ──VM built──► RECEIVING
 *     ▲  │                              │                       │ GO
 *     └──┘ refused peer (wrong key):    │ shape, disks, memory  ▼
 *          wait for another             ▼                    STARTING
 *                                     FAILED ◄──cut, ABORT,─────┤ disk locks
 *                                  (images made               ▼ taken, or
 *                                   here removed)          RUNNING  copies
 *                                                     (RUNNING sent,  flushed
 *                                                      QUERY answered)
 *
 * Until GO nothing runs here: any failure discards what came, and the
 * source resumes its guest. After GO the guest is ours; a source that
 * lost the link at hand-over learns it by QUERY.
 */
#ifndef KG_RECEIVER_H
#define KG_RECEIVER_H

#include "role.h"
#include "base/faultpoint.h"
#include "transport/transport.h"
#include "vmm/vm.h"

enum receiver_state {
	RECEIVER_WAITING,
	RECEIVER_PREPARING,
	RECEIVER_RECEIVING,
	RECEIVER_STARTING,
	RECEIVER_RUNNING,
	RECEIVER_DONE,
	RECEIVER_FAILED,
};

const char *receiver_state_name(enum receiver_state s);

struct receiver_opts {
	struct vm_config cfg; /* host resources: disks, nets, console */
	struct kg_tp_listener *listener;
	/* tests: "receive.hello|round|final|go=kill" */
	const struct kg_faults *faults;
	/* what the source may make this side hold (incoming.h); 0: the
	 * default for the VM's RAM */
	uint64_t max_stream_memory;
	struct role_hooks hooks;
};

/* Runs the machine to RUNNING's end (the guest's exit status) or to
 * FAILED (1). */
int receiver_run(const struct receiver_opts *o);

#endif
