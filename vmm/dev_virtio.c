/*
 * The virtio-mmio devices as one kind: a transport per disk and network,
 * in slots from the top down (disks first, then networks), as QEMU's
 * microvm places them, announced on the command line the way it announces
 * them (for SDK guests; Linux reads the ACPI tables, acpi_vm.c). The registered device is the transport (virtio_mmio.h), whose
 * table is the state; vm->blks and vm->nets keep the typed pointers that
 * storage and network roles need.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "linuxboot.h"
#include "virtio_mmio.h"
#include "vm.h"
#include "abi/kagami_platform.h"

static void reset(void *t)
{
	virtio_mmio_reset(t);
}

static void quiesce(void *t)
{
	virtio_mmio_quiesce(t);
}

static void release(void *t)
{
	virtio_mmio_release(t);
}

static void kick(void *t)
{
	virtio_mmio_kick(t);
}

static void resync(void *t)
{
	virtio_mmio_resync(t);
}

static void rearm(void *t)
{
	virtio_mmio_rearm(t);
}

/* The transport lives inside its disk or network device. */
static void destroy(void *t)
{
	struct vm *vm = ((struct virtio_mmio *)t)->vm;
	for (unsigned i = 0; i < VM_MAX_DISKS; i++)
		if (vm->blks[i] && virtio_blk_transport(vm->blks[i]) == t) {
			virtio_blk_destroy(vm->blks[i]);
			vm->blks[i] = NULL;
			return;
		}
	for (unsigned i = 0; i < VM_MAX_NETS; i++)
		if (vm->nets[i] && virtio_net_transport(vm->nets[i]) == t) {
			virtio_net_destroy(vm->nets[i]);
			vm->nets[i] = NULL;
			return;
		}
}

static int create(struct vm *vm, struct kg_err *e)
{
	const struct vm_config *c = &vm->cfg;
	unsigned slot = KAGAMI_VIRTIO_SLOTS;
	size_t len = (c->cmdline ? strlen(c->cmdline) : 0) + 1 +
		     (c->ndisks + c->nnets) * 64;
	vm->cmdline = malloc(len);
	if (!vm->cmdline)
		return kg_errf(e, "out of memory");
	snprintf(vm->cmdline, len, "%s", c->cmdline ? c->cmdline : "");
	for (unsigned i = 0; i < c->ndisks + c->nnets; i++) {
		slot--;
		uint64_t base = KAGAMI_VIRTIO_BASE +
				(uint64_t)slot * KAGAMI_VIRTIO_SIZE;
		/* Pins 16-23 of the IOAPIC are nobody's: 5 + slot would put
		 * slot 3 on the RTC's IRQ 8, edge against level. */
		unsigned irq = (c->deterministic ? KAGAMI_VIRTIO_IRQ_BASE
						 : KAGAMI_VIRTIO_GSI_BASE) + slot;
		struct virtio_mmio *t;
		if (i < c->ndisks) {
			struct virtio_blk *b = virtio_blk_create(
				vm, &c->disks[i], base, irq, e);
			if (!b)
				return -1;
			vm->blks[i] = b;
			t = virtio_blk_transport(b);
		} else {
			unsigned n = i - c->ndisks;
			struct virtio_net *d = virtio_net_create(
				vm, &c->nets[n], base, irq, e);
			if (!d)
				return -1;
			vm->nets[n] = d;
			t = virtio_net_transport(d);
		}
		if (vm_device_add(vm, &dev_virtio_ops, t, e) < 0) {
			destroy(t);
			return -1;
		}
		/* A bzImage (Linux) finds them in the ACPI tables; its
		 * driver would take them twice if it had the cmdline way. */
		if (vm->image && lb_is_bzimage(vm->image, vm->image_size))
			continue;
		size_t used = strlen(vm->cmdline);
		snprintf(vm->cmdline + used, len - used,
			 "%svirtio_mmio.device=%u@0x%llx:%u",
			 used ? " " : "", KAGAMI_VIRTIO_SIZE,
			 (unsigned long long)base, irq);
	}
	return 0;
}

static const struct vm_device_table tables[] = {
	{ &virtio_mmio_vs, 0, sizeof(struct virtio_mmio), NULL },
};

const struct vm_device_ops dev_virtio_ops = {
	.name = "virtio-mmio", .instance = 16,
	.ninstances = KAGAMI_VIRTIO_SLOTS,
	.tables = tables, .ntables = 1,
	.create = create, .reset = reset, .quiesce = quiesce,
	.release = release, .kick = kick, .resync = resync, .rearm = rearm,
	.destroy = destroy,
};
