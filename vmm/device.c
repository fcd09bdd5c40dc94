/* The device list of a VM and the walks over it (see device.h). */
#include "device.h"

#include "vm.h"

const struct vm_device_ops *const vm_device_kinds[] = {
#define VM_DEVICE(kind) &kind,
#include "device_list.h"
#undef VM_DEVICE
	NULL,
};

int vm_device_add(struct vm *vm, const struct vm_device_ops *ops, void *dev,
		  struct kg_err *e)
{
	unsigned n = 0;
	for (unsigned i = 0; i < vm->ndevices; i++)
		n += vm->devices[i].ops == ops;
	unsigned first = ops->instance + n * ops->ntables;
	if (vm->ndevices == VM_MAX_DEVICES)
		return kg_errf(e, "%s: more than %d devices", ops->name,
			       VM_MAX_DEVICES);
	if (ops->ntables < 1 || ops->ntables > VM_DEVICE_MAX_TABLES ||
	    (n + 1) * ops->ntables > ops->ninstances)
		return kg_errf(e, "%s: no state section left for device %u",
			       ops->name, n);
	vm->devices[vm->ndevices++] = (struct vm_device){
		.ops = ops, .dev = dev, .instance = (uint16_t)first
	};
	return 0;
}

void *vm_device_state(const struct vm_device *d, unsigned t)
{
	return (char *)d->dev + d->ops->tables[t].offset;
}

const struct vm_device *vm_device_find(const struct vm *vm,
				       uint16_t instance, unsigned *t)
{
	for (unsigned i = 0; i < vm->ndevices; i++) {
		const struct vm_device *d = &vm->devices[i];
		if (instance >= d->instance &&
		    instance < d->instance + d->ops->ntables) {
			*t = instance - d->instance;
			return d;
		}
	}
	return NULL;
}

const struct vm_device_ops *vm_device_kind(uint16_t instance, unsigned *t)
{
	for (unsigned i = 0; vm_device_kinds[i]; i++) {
		const struct vm_device_ops *k = vm_device_kinds[i];
		if (instance >= k->instance &&
		    instance < k->instance + k->ninstances) {
			*t = (instance - k->instance) % k->ntables;
			return k;
		}
	}
	return NULL;
}

int vm_devices_create(struct vm *vm, struct kg_err *e)
{
	for (unsigned i = 0; vm_device_kinds[i]; i++)
		if (vm_device_kinds[i]->create(vm, e) < 0)
			return -1;
	return 0;
}

void vm_devices_reset(struct vm *vm)
{
	for (unsigned i = 0; i < vm->ndevices; i++)
		vm->devices[i].ops->reset(vm->devices[i].dev);
}

void vm_devices_hold(struct vm *vm)
{
	for (unsigned i = 0; i < vm->ndevices; i++)
		vm->devices[i].ops->quiesce(vm->devices[i].dev);
}

void vm_devices_release(struct vm *vm)
{
	for (unsigned i = vm->ndevices; i-- > 0;)
		vm->devices[i].ops->release(vm->devices[i].dev);
}

#define WALK_OPTIONAL(vm, op)                                      \
	for (unsigned i = 0; i < (vm)->ndevices; i++)              \
		if ((vm)->devices[i].ops->op)                      \
			(vm)->devices[i].ops->op((vm)->devices[i].dev)

void vm_devices_kick(struct vm *vm)
{
	WALK_OPTIONAL(vm, kick);
}

void vm_devices_resync(struct vm *vm)
{
	WALK_OPTIONAL(vm, resync);
}

void vm_devices_rearm(struct vm *vm)
{
	WALK_OPTIONAL(vm, rearm);
}

void vm_devices_destroy(struct vm *vm)
{
	for (unsigned i = 0; i < vm->ndevices; i++)
		vm->devices[i].ops->destroy(vm->devices[i].dev);
	vm->ndevices = 0;
}
