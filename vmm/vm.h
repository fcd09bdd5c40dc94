/*
 * A VM: guest RAM, vCPU threads, buses, devices and the input gate, with an
 * explicit run state machine. Several VMs may live in one process (a
 * primary and its replica in a test): there is no global mutable state.
 *
 * Threads: vm_run() is called by one controlling thread; every vCPU has a
 * thread of its own; vm_pause()/vm_resume()/vm_request_stop() may be called
 * from any thread (not from signal handlers). A vCPU is kicked out of
 * KVM_RUN with immediate_exit plus a signal; no lock is taken in the
 * handler, which does nothing.
 */
#ifndef KG_VM_H
#define KG_VM_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "bus.h"
#include "console.h"
#include "device.h"
#include "devices.h"
#include "base/err.h"
#include "gate.h"
#include "mem.h"
#include "outbuf.h"
#include "virtio_blk.h"
#include "virtio_net.h"

#define VM_MAX_VCPUS 64
#define VM_MAX_DISKS 4
#define VM_MAX_NETS 4

struct vm_config {
	uint64_t mem_size;
	unsigned ncpus;
	const char *kernel_path; /* NULL: no boot, state comes from a snapshot */
	const char *initrd_path; /* NULL: none */
	const char *cmdline;     /* NULL: empty */
	struct console_spec console;
	unsigned ndisks, nnets; /* virtio slots: disks first, then nets */
	struct disk_spec disks[VM_MAX_DISKS];
	struct net_spec nets[VM_MAX_NETS];
	/* Deterministic inputs (record, replay, lockstep): no in-kernel
	 * irqchip or PIT; the userspace interrupt controller and timer
	 * (dev_irq.c) deliver interrupts only at synchronous exits. One vCPU. */
	bool deterministic;
};

enum vm_stop_reason {
	VM_STOP_NONE = 0,
	VM_STOP_EXIT,     /* the guest wrote its exit code to 0xf4 */
	VM_STOP_POWEROFF, /* clean power-off */
	VM_STOP_RESET,    /* handled inside vm_run(): the VM reboots */
	VM_STOP_CRASH,    /* guest fault report or triple fault */
	VM_STOP_ERROR,    /* host-side failure (KVM, device) */
	VM_STOP_REQUEST,  /* vm_request_stop() by the host: signal, ctl */
};

struct vm_stop {
	enum vm_stop_reason reason;
	int exit_code;      /* VM_STOP_EXIT */
	char message[2048]; /* CRASH, ERROR, REQUEST */
};

enum vm_request { VM_REQ_RUN, VM_REQ_PAUSE, VM_REQ_STOP };

enum vm_exit_kind { VM_EXIT_PIO, VM_EXIT_MMIO, VM_EXIT_OTHER, VM_EXIT_KINDS };

struct vm_stats {
	_Atomic uint64_t exits[VM_EXIT_KINDS];
	_Atomic uint64_t first_output_ns; /* since vm_run(); 0: none yet */
	uint64_t run_start_ns;
	uint32_t resets;
};

struct vcpu {
	struct vm *vm;
	unsigned id;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool thread_started;
	/* The last exit was PIO/MMIO: KVM finishes the instruction (e.g.
	 * copies an IN's value to RAX) only at the next KVM_RUN. */
	bool io_pending;
};

struct vm {
	struct vm_config cfg;
	int kvm_fd, vm_fd;
	size_t run_size;
	struct kvm_cpuid2 *cpuid; /* the host's supported set */
	unsigned cpuid_flags;     /* CPUID_* (cpuid.h): what the host can do */
	struct guest_mem mem;
	struct gate gate;
	struct bus pio, mmio;
	unsigned ncpus;
	struct vcpu vcpus[VM_MAX_VCPUS];

	pthread_mutex_t lock;
	pthread_cond_t cond;
	enum vm_request req;
	unsigned nthreads, npaused;
	unsigned checkpoints; /* in progress: a reset waits for them */
	bool fenced;          /* vm_fence: paused whatever vm_resume says */
	struct vm_stop stop;

	/* Every device, in device_list.h's order (device.h). */
	struct vm_device devices[VM_MAX_DEVICES];
	unsigned ndevices;
	/* Typed pointers into the list, for callers that need one device by
	 * its role: the console (the kagami device's batched output, the
	 * end of a run), disk N (storage migration, disk sync), network N
	 * (announcements). */
	struct dev_uart *uart;
	struct virtio_blk *blks[VM_MAX_DISKS];
	struct virtio_net *nets[VM_MAX_NETS];
	/* Network frames and console bytes pass here: held under FT until
	 * the secondary commits the epoch that produced them. */
	struct outbuf *out;
	bool parked; /* vm_state_park: devices held until activated */
	/* Replaying an execution log: devices do no I/O (the log supplies
	 * what they would have written); cleared when a replica goes live. */
	_Atomic bool replaying;
	/* Who relies on KVM's dirty log staying on and unread (a recording's
	 * digests); snapshots and checkpoints refuse meanwhile. NULL: none. */
	const char *dirty_log_owner;
	char *cmdline; /* the user's plus the virtio_mmio.device= entries */

	/* boot inputs, kept for reset */
	uint8_t *image;
	size_t image_size;
	uint8_t *initrd;
	size_t initrd_size;
	uint32_t boot_count;

	struct vm_stats stats;
};

/* Builds the VM and loads the image; on error everything is released. */
int vm_create(struct vm *vm, const struct vm_config *cfg, struct kg_err *e);
void vm_destroy(struct vm *vm);

/* Runs until the guest exits, powers off, crashes, fails or is stopped;
 * resets are handled inside. Returns 0 and fills *stop, or -1 when the VM
 * could not be (re)started. */
int vm_run(struct vm *vm, struct vm_stop *stop, struct kg_err *e);

/* Stops the VM; the first reason given wins. Any thread. */
void vm_request_stop(struct vm *vm, enum vm_stop_reason reason, int exit_code,
		     const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* The same, for a caller already holding vm->lock. */
void vm_request_stop_locked(struct vm *vm, enum vm_stop_reason reason,
			    const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Parks every vCPU outside KVM_RUN and returns once all are parked (or
 * the VM is stopping). */
void vm_pause(struct vm *vm);
void vm_resume(struct vm *vm);
/* Asks the vCPUs to park without waiting for them: what a vCPU thread
 * itself calls (replay reaching --until). */
void vm_request_pause(struct vm *vm);
/* Brackets a checkpoint (snapshot, epoch): a guest reset waits until it
 * ends, so RAM and the KVM VM stay put while it reads them. */
void vm_checkpoint_begin(struct vm *vm);
void vm_checkpoint_end(struct vm *vm);
/* vm_pause, then true only if the VM is paused (not stopping). */
bool vm_pause_checked(struct vm *vm);
/* A fence (the split-brain guard, when this side's lease cannot be
 * confirmed): on, the VM pauses and stays paused whatever vm_resume
 * calls come meanwhile (an epoch's, ctl resume), across a guest reset
 * too; off, it resumes, once no checkpoint is in progress (one may have
 * found it paused and read its state). Any thread. */
void vm_fence(struct vm *vm, bool on);
bool vm_fenced(struct vm *vm);

/* vcpu.c */
int vcpu_create(struct vm *vm, unsigned id, struct kg_err *e);
void vcpu_destroy(struct vcpu *v);
int vcpu_set_boot_regs(struct vcpu *v, uint64_t entry, uint64_t start_info,
		       struct kg_err *e);
int vcpu_set_boot_regs64(struct vcpu *v, uint64_t entry, uint64_t zero_page,
			 uint64_t cr3, uint64_t gdt, struct kg_err *e);
int vcpu_start(struct vcpu *v, struct kg_err *e);
void vcpu_kick(struct vcpu *v);
/* Formats registers for crash reports. */
void vcpu_format_regs(struct vcpu *v, char *buf, size_t size);

/* exit.c: the one exit dispatcher. */
void vcpu_dispatch_exit(struct vcpu *v);

/* boot.c: loads image + initrd into RAM, writes start_info, sets BSP. */
int boot_read_inputs(struct vm *vm, struct kg_err *e);
int boot_load(struct vm *vm, struct kg_err *e);

#endif
