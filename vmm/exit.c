/*
 * The exit dispatcher: the one place that decides what a KVM exit means.
 * Every value returned to the guest by a read passes the input gate.
 */
#include <stdio.h>
#include <string.h>

#include "kvm.h"
#include "vm.h"

static void pio_access(struct vcpu *v, uint16_t port, uint8_t *data,
		       unsigned size, bool out, const struct bus_range **last)
{
	struct vm *vm = v->vm;
	const struct bus_range *r = bus_find(&vm->pio, port, size);
	if (out) {
		if (r)
			r->ops->write(r->opaque, port - r->base, data, size);
	} else {
		if (r)
			r->ops->read(r->opaque, port - r->base, data, size);
		else
			memset(data, 0xff, size);
		gate_pio_in(&vm->gate, v->id, port, size, data);
	}
	*last = r;
}

static void handle_pio(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	unsigned size = run->io.size;
	bool out = run->io.direction == KVM_EXIT_IO_OUT;
	const struct bus_range *r = NULL;
	if (size != 1 && size != 2 && size != 4) {
		vm_request_stop(v->vm, VM_STOP_ERROR, 0,
				"vCPU %u: port I/O of bad size %u", v->id, size);
		return;
	}
	/* A string instruction (rep outsb) arrives as one exit. */
	for (uint32_t i = 0; i < run->io.count; i++)
		pio_access(v, run->io.port, data + (size_t)i * size, size, out,
			   &r);
	if (r && r->ops->flush)
		r->ops->flush(r->opaque);
}

static void handle_mmio(struct vcpu *v)
{
	struct vm *vm = v->vm;
	struct kvm_run *run = v->run;
	uint64_t gpa = run->mmio.phys_addr;
	unsigned len = run->mmio.len;
	if (len == 0 || len > sizeof(run->mmio.data)) {
		vm_request_stop(vm, VM_STOP_ERROR, 0,
				"vCPU %u: MMIO of bad length %u", v->id, len);
		return;
	}
	const struct bus_range *r = bus_find(&vm->mmio, gpa, len);
	if (run->mmio.is_write) {
		if (r)
			r->ops->write(r->opaque, gpa - r->base, run->mmio.data,
				      len);
		return;
	}
	if (r)
		r->ops->read(r->opaque, gpa - r->base, run->mmio.data, len);
	else
		memset(run->mmio.data, 0xff, len);
	gate_mmio_read(&vm->gate, v->id, gpa, len, run->mmio.data);
}

static void stop_with_regs(struct vcpu *v, enum vm_stop_reason reason,
			   const char *what)
{
	char regs[1024];
	vcpu_format_regs(v, regs, sizeof(regs));
	vm_request_stop(v->vm, reason, 0, "vCPU %u: %s\n%s", v->id, what, regs);
}

static void handle_system_event(struct vcpu *v)
{
	switch (v->run->system_event.type) {
	case KVM_SYSTEM_EVENT_SHUTDOWN:
		vm_request_stop(v->vm, VM_STOP_POWEROFF, 0, NULL);
		break;
	case KVM_SYSTEM_EVENT_RESET:
		vm_request_stop(v->vm, VM_STOP_RESET, 0, NULL);
		break;
	case KVM_SYSTEM_EVENT_CRASH:
		stop_with_regs(v, VM_STOP_CRASH, "guest reported a crash");
		break;
	default: {
		char what[64];
		snprintf(what, sizeof(what), "unknown system event %u",
			 v->run->system_event.type);
		stop_with_regs(v, VM_STOP_ERROR, what);
	}
	}
}

/* Synchronous exits are the deterministic gate's points: it sees each
 * begin (and may refuse it: a replay diverged) and end. */
static bool sync_begin(struct vcpu *v)
{
	struct gate *g = &v->vm->gate;
	return !g->ops->exit_begin || g->ops->exit_begin(g, v->fd, v->run);
}

static void sync_end(struct vcpu *v)
{
	struct gate *g = &v->vm->gate;
	if (g->ops->exit_end)
		g->ops->exit_end(g, v->fd, v->run);
}

void vcpu_dispatch_exit(struct vcpu *v)
{
	struct vm *vm = v->vm;
	struct kvm_run *run = v->run;
	enum vm_exit_kind kind = VM_EXIT_OTHER;
	char what[128];

	switch (run->exit_reason) {
	case KVM_EXIT_IO:
		kind = VM_EXIT_PIO;
		if (sync_begin(v)) {
			handle_pio(v);
			sync_end(v);
		}
		break;
	case KVM_EXIT_MMIO:
		kind = VM_EXIT_MMIO;
		if (sync_begin(v)) {
			handle_mmio(v);
			sync_end(v);
		}
		break;
	case KVM_EXIT_INTR:
		break;
	case KVM_EXIT_HLT:
		/* Only without an in-kernel LAPIC: deterministic mode, whose
		 * gate wakes the vCPU with an interrupt. */
		if (!vm->gate.ops->exit_begin) {
			stop_with_regs(v, VM_STOP_CRASH,
				       "guest halted (KVM_EXIT_HLT)");
		} else if (sync_begin(v)) {
			sync_end(v);
		}
		break;
	case KVM_EXIT_SHUTDOWN:
		stop_with_regs(v, VM_STOP_CRASH,
			       "guest triple fault (KVM_EXIT_SHUTDOWN)");
		break;
	case KVM_EXIT_SYSTEM_EVENT:
		handle_system_event(v);
		break;
	case KVM_EXIT_FAIL_ENTRY:
		snprintf(what, sizeof(what),
			 "KVM_EXIT_FAIL_ENTRY: hardware entry failure reason "
			 "0x%llx",
			 (unsigned long long)run->fail_entry
				 .hardware_entry_failure_reason);
		stop_with_regs(v, VM_STOP_ERROR, what);
		break;
	case KVM_EXIT_INTERNAL_ERROR:
		snprintf(what, sizeof(what),
			 "KVM_EXIT_INTERNAL_ERROR: suberror %u",
			 run->internal.suberror);
		stop_with_regs(v, VM_STOP_ERROR, what);
		break;
	default:
		snprintf(what, sizeof(what), "unexpected KVM exit reason %u",
			 run->exit_reason);
		stop_with_regs(v, VM_STOP_ERROR, what);
	}
	atomic_fetch_add_explicit(&vm->stats.exits[kind], 1,
				  memory_order_relaxed);
}
