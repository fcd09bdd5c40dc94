/*
 * The device interface and each VM's list of devices. A device is a file
 * under vmm/ that defines one `struct vm_device_ops` (its kind) and has a
 * line in device_list.h; vm_create() calls every kind's `create`, which
 * builds the devices the configuration asks for (none, one or several)
 * and registers each with vm_device_add(). Whatever walks devices —
 * reset, checkpoints, snapshots, replicas, replay — walks vm->devices and
 * names none of them; a caller that needs one device by its role (disk N
 * for storage migration, the console) keeps a typed pointer instead.
 *
 * State: a device's guest-visible state is one or more field tables
 * (base/vmstate.h), each saved as one KG_SEC_DEVICE section of the stream
 * format. A section's instance is the state's identity across kagami
 * versions, so it belongs to the kind, never to the order of the list:
 *     0 uart, 1 platform, 2 pic, 3 pit (deterministic VMs), 4 rtc,
 *     16 + slot virtio-mmio (disks first, then networks).
 * The n-th device a kind registers has table t at instance
 * ops->instance + n * ops->ntables + t.
 *
 * Order: the list is in device_list.h's order, and a device may call into
 * devices after it while holding its own lock (everything raises lines
 * into the interrupt controller, which is last). So holds (quiesce) and
 * destroys go in list order, releases in reverse.
 */
#ifndef KG_DEVICE_H
#define KG_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/vmstate.h"

struct vm;

#define VM_MAX_DEVICES 16
#define VM_DEVICE_MAX_TABLES 2

/* One section of a device's state: a field table and where its struct
 * lies inside the device. */
struct vm_device_table {
	const struct vs_desc *vs;
	size_t offset; /* of the table's struct inside the device */
	size_t size;   /* of that struct: a load decodes into a copy this big */
	/* Optional: what a staging copy holds before a stream's fields are
	 * decoded into it, i.e. what a field the stream lacks keeps (the
	 * power-on values); zeros without it. */
	void (*defaults)(void *obj);
};

struct vm_device_ops {
	const char *name; /* "rtc": messages */
	/* The KG_SEC_DEVICE instances of this kind: [instance, instance +
	 * ninstances), at most ninstances / ntables devices. */
	uint16_t instance, ninstances;
	const struct vm_device_table *tables;
	unsigned ntables; /* 1..VM_DEVICE_MAX_TABLES */
	/* Deterministic mode's interrupt controller: it stands in for KVM's
	 * in-kernel irqchip, so its state and the irqchip's exclude each
	 * other in a stream. */
	bool irqchip;
	/* Streams may lack its state (written before the device existed):
	 * the device then keeps its own. Otherwise a stream without every
	 * table of every device is incomplete. */
	bool optional;
	/* Builds this kind's devices for vm->cfg (none, one, several),
	 * claims their ports or MMIO ranges and registers each; on failure
	 * frees what it has not registered. */
	int (*create)(struct vm *vm, struct kg_err *e);
	/* A guest reboot: power-on state (vCPUs stopped). */
	void (*reset)(void *dev);
	/* Holds the device still: requests in flight end, none starts, its
	 * lock is held, so its state and the RAM it writes do not change
	 * until release. vCPUs paused. */
	void (*quiesce)(void *dev);
	void (*release)(void *dev);
	/* Optional: serves what a loaded state left pending (a queue the
	 * state says was notified), after release. */
	void (*kick)(void *dev);
	/* Optional: a replica going live after replaying a log: its own
	 * view of in-flight work came from the replay, not from what the
	 * guest saw; start again from what guest RAM says (then kick). */
	void (*resync)(void *dev);
	/* Optional: the KVM VM was rebuilt (reset): register with it again
	 * whatever lives in it (ioeventfds). */
	void (*rearm)(void *dev);
	/* Ends its threads and frees it (vCPUs stopped). */
	void (*destroy)(void *dev);
};

/* One registered device: vm->devices[i]. */
struct vm_device {
	const struct vm_device_ops *ops;
	void *dev;
	uint16_t instance; /* of its first table */
};

/* Every kind, in device_list.h's order; NULL-terminated. */
extern const struct vm_device_ops *const vm_device_kinds[];
#define VM_DEVICE(kind) extern const struct vm_device_ops kind;
#include "device_list.h"
#undef VM_DEVICE

/* Registers dev as the next device of its kind (kind's `create`). */
int vm_device_add(struct vm *vm, const struct vm_device_ops *ops, void *dev,
		  struct kg_err *e);
/* Table t's struct inside a registered device. */
void *vm_device_state(const struct vm_device *d, unsigned t);
/* The VM's device holding section instance `instance` (and which of its
 * tables in *t), or NULL. */
const struct vm_device *vm_device_find(const struct vm *vm,
				       uint16_t instance, unsigned *t);
/* The kind whose instances include `instance` (a VM may have no such
 * device), and the table in *t; NULL if none does. */
const struct vm_device_ops *vm_device_kind(uint16_t instance, unsigned *t);

/* vm_create: every kind's create, in order. */
int vm_devices_create(struct vm *vm, struct kg_err *e);
/* The walks: list order, except release (reverse). */
void vm_devices_reset(struct vm *vm);
void vm_devices_hold(struct vm *vm);
void vm_devices_release(struct vm *vm);
void vm_devices_kick(struct vm *vm);
void vm_devices_resync(struct vm *vm);
void vm_devices_rearm(struct vm *vm);
/* Destroys every device and empties the list. */
void vm_devices_destroy(struct vm *vm);

#endif
