/*
 * The consistent part of a VM's state — vCPUs, in-kernel irqchip/PIT/
 * clock, the guest clock, and every registered device's tables (walked
 * through vm->devices, vmm/device.h) — as stream sections, shared by
 * snapshots and replication epochs. Writing needs the vCPUs paused and the
 * devices held (vm_state_hold). Reading stages every section first
 * (decoded and validated into a struct vm_state_stage) and applies it only
 * when the caller says the whole unit arrived intact: a half-received
 * epoch never touches the VM.
 */
#ifndef KG_VM_STATE_H
#define KG_VM_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"
#include "vmm/vm.h"
#include "cpu_state.h"
#include "stream.h"
#include "base/vmstate.h"

/* The VM's shape, the first section of a snapshot or replication stream:
 * the receiver builds a VM of this shape before any state arrives. */
struct vm_state_config {
	uint64_t mem_size;
	uint32_t ncpus, ndisks, nnets, boot_count;
	uint32_t flags; /* VM_STATE_CONFIG_*; 0 in streams that predate it */
};
/* cfg.deterministic: a userspace PIC and PIT, no in-kernel irqchip. */
#define VM_STATE_CONFIG_DETERMINISTIC 1u
int vm_state_write_config(struct kg_stream_writer *w, const struct vm *vm,
			  struct kg_err *e);
/* The same from a shape (tests and tools write streams without a VM). */
int vm_state_put_config(struct kg_stream_writer *w,
			const struct vm_state_config *c, struct kg_err *e);
/* Reads the current section (it must be KG_SEC_VM_CONFIG), verified. */
int vm_state_read_config(struct kg_stream_reader *r,
			 const struct kg_section *s, struct vm_state_config *c,
			 struct kg_err *e);

/* A struct as one section, encoded by its field table; and back: the
 * section is read whole and its checksum verified before it is decoded. */
int vm_state_put_table(struct kg_stream_writer *w, uint16_t kind,
		       uint16_t inst, const struct vs_desc *d, const void *obj,
		       struct kg_err *e);
int vm_state_get_table(struct kg_stream_reader *r, const struct kg_section *s,
		       const struct vs_desc *d, void *obj, const void *ctx,
		       struct kg_err *e);

/* Quiesces the devices (in-flight requests end, their locks held) so
 * their state and the RAM they write hold still; vCPUs must be paused. */
void vm_state_hold(struct vm *vm);
void vm_state_release(struct vm *vm);
/* A VM being received (migration, a secondary's replica) is parked: its
 * devices stay held — a frame arriving on its TAP, a queue the state says
 * was notified, must not write its RAM or disk, or send anything, before
 * it runs. vm_state_apply then leaves them held. Activating releases
 * them and serves what the state left pending. */
void vm_state_park(struct vm *vm);
void vm_state_activate(struct vm *vm);
/* Releases a parked VM that will never run (before vm_destroy). */
void vm_state_unpark(struct vm *vm);

/* Writes IRQCHIP (not for a deterministic VM: it has none; its PIC and
 * PIT are a device), one VCPU per vCPU, one DEVICE per registered
 * device's table, and CLOCK. */
int vm_state_write(struct kg_stream_writer *w, struct vm *vm,
		   struct kg_err *e);

/* A staged copy of one device table (vm->devices[i], table t). */
struct vm_state_dev_copy {
	const struct vm_device_table *table; /* what buf was sized for */
	void *buf;
	bool seen;
};

struct vm_state_stage {
	struct vm_kvm_state kvm;
	struct cpu_state cpu[VM_MAX_VCPUS];
	uint64_t guest_ns;
	bool have_kvm, have_clock;
	uint64_t cpus_seen; /* bit per vCPU instance */
	/* Allocated when a section for that table first arrives. */
	struct vm_state_dev_copy dev[VM_MAX_DEVICES][VM_DEVICE_MAX_TABLES];
};

/* A stage holds a copy per device table; allocate it with _new, empty it
 * for the next unit with _clear (which keeps the copies), free it with
 * _free. */
struct vm_state_stage *vm_state_stage_new(struct kg_err *e);
void vm_state_stage_clear(struct vm_state_stage *st);
void vm_state_stage_free(struct vm_state_stage *st);

/* Whether kind is one of the sections vm_state writes. */
bool vm_state_section(uint16_t kind);
/* Reads, verifies and decodes the current section into st against vm's
 * shape and devices; the VM itself is not touched. Every error names the
 * section; a section that does not decode or fit the VM is
 * KG_ERR_CORRUPT (KG_ERR_INVALID: a newer state version). */
int vm_state_stage_section(struct kg_stream_reader *r,
			   const struct kg_section *s, struct vm *vm,
			   struct vm_state_stage *st, struct kg_err *e);
/* Whether the stage holds every section vm needs: every vCPU, the clock,
 * the irqchip for a VM with an in-kernel one, every table of every
 * registered device (a deterministic VM's PIC and PIT among them) but an
 * optional one's (device.h: it then keeps its own state). Staging
 * refuses the other kind's interrupt controller state (KG_ERR_CORRUPT). */
int vm_state_complete(const struct vm *vm, const struct vm_state_stage *st,
		      struct kg_err *e);
/* Applies a complete stage (every vCPU, clock, irqchip, devices) to a VM
 * whose vCPUs are not running. */
int vm_state_apply(struct vm *vm, struct vm_state_stage *st,
		   struct kg_err *e);

#endif
