#include "cpu_state.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/ioctl.h>
#include <asm/kvm_para.h>

#include "vmm/kvm.h"
#include "vmm/vm.h"
#include "base/log.h"

static uint64_t realtime_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

int cpu_msr_index_list(int kvm_fd, uint32_t *idx, uint32_t *n,
		       struct kg_err *e)
{
	struct kvm_msr_list *l = calloc(1, sizeof(*l) +
					   CPU_STATE_MAX_MSRS * sizeof(uint32_t));
	if (!l)
		return kg_errf(e, "out of memory");
	l->nmsrs = CPU_STATE_MAX_MSRS;
	if (kvm_ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, l, e) < 0) {
		free(l);
		return -1;
	}
	*n = l->nmsrs;
	memcpy(idx, l->indices, l->nmsrs * sizeof(uint32_t));
	free(l);
	return 0;
}

struct msrs_buf {
	struct kvm_msrs hdr;
	struct kvm_msr_entry e[CPU_STATE_MAX_MSRS];
};

/* KVM_GET_MSRS stops at the first MSR it cannot read: read in a loop,
 * skipping each failure. */
static int save_msrs(struct vcpu *v, const uint32_t *idx, uint32_t n,
		     struct cpu_state *s, struct kg_err *e)
{
	struct msrs_buf *b = calloc(1, sizeof(*b));
	if (!b)
		return kg_errf(e, "out of memory");
	s->nmsrs = 0;
	for (uint32_t i = 0; i < n;) {
		memset(b, 0, sizeof(*b));
		uint32_t k = 0;
		for (uint32_t j = i; j < n; j++)
			b->e[k++].index = idx[j];
		b->hdr.nmsrs = k;
		int got = kvm_ioctl(v->fd, KVM_GET_MSRS, b, e);
		if (got < 0) {
			free(b);
			return -1;
		}
		for (int j = 0; j < got; j++)
			s->msrs[s->nmsrs++] = b->e[j];
		i += (uint32_t)got + 1; /* skip the one that failed */
	}
	free(b);
	return 0;
}

/* A deterministic VM has no in-kernel irqchip, so no local APIC. */
static bool has_lapic(const struct vcpu *v)
{
	return !v->vm->cfg.deterministic;
}

/* KVM reads async-PF-as-interrupt without a local APIC but refuses to
 * set it (the interrupt goes through the APIC): not state to carry. */
static void drop_lapic_msrs(struct cpu_state *s)
{
	uint32_t k = 0;
	for (uint32_t i = 0; i < s->nmsrs; i++)
		if (s->msrs[i].index != MSR_KVM_ASYNC_PF_INT)
			s->msrs[k++] = s->msrs[i];
	s->nmsrs = k;
}

int cpu_state_save(struct vcpu *v, const uint32_t *msr_idx, uint32_t nmsr,
		   struct cpu_state *s, struct kg_err *e)
{
	memset(s, 0, sizeof(*s));
	if (kvm_ioctl(v->fd, KVM_GET_MP_STATE, &s->mp_state, e) < 0 ||
	    kvm_ioctl(v->fd, KVM_GET_REGS, &s->regs, e) < 0 ||
	    kvm_ioctl(v->fd, KVM_GET_SREGS, &s->sregs, e) < 0 ||
	    kvm_ioctl(v->fd, KVM_GET_XSAVE, &s->xsave, e) < 0 ||
	    kvm_ioctl(v->fd, KVM_GET_XCRS, &s->xcrs, e) < 0 ||
	    kvm_ioctl(v->fd, KVM_GET_VCPU_EVENTS, &s->events, e) < 0 ||
	    kvm_ioctl(v->fd, KVM_GET_DEBUGREGS, &s->debugregs, e) < 0 ||
	    (has_lapic(v) &&
	     kvm_ioctl(v->fd, KVM_GET_LAPIC, &s->lapic, e) < 0))
		return kg_err_prefix(e, "vCPU %u", v->id);
	if (save_msrs(v, msr_idx, nmsr, s, e) < 0)
		return -1;
	if (!has_lapic(v))
		drop_lapic_msrs(s);
	return 0;
}

static int load_msrs(struct vcpu *v, const struct cpu_state *s,
		     struct kg_err *e)
{
	struct msrs_buf *b = calloc(1, sizeof(*b));
	if (!b)
		return kg_errf(e, "out of memory");
	for (uint32_t i = 0; i < s->nmsrs;) {
		uint32_t k = s->nmsrs - i;
		memcpy(b->e, &s->msrs[i], k * sizeof(b->e[0]));
		b->hdr.nmsrs = k;
		int set = kvm_ioctl(v->fd, KVM_SET_MSRS, b, e);
		if (set < 0) {
			free(b);
			return -1;
		}
		if ((uint32_t)set < k)
			kg_log(KG_LOG_INFO, "vCPU %u: KVM_SET_MSRS rejected "
				"MSR 0x%x; skipped", v->id,
				s->msrs[i + (uint32_t)set].index);
		i += (uint32_t)set + 1;
	}
	free(b);
	return 0;
}

int cpu_state_load(struct vcpu *v, const struct cpu_state *s,
		   struct kg_err *e)
{
	if (s->nmsrs > CPU_STATE_MAX_MSRS)
		return kg_errf(e, "vCPU %u: %u MSRs (max %d)", v->id, s->nmsrs,
			       CPU_STATE_MAX_MSRS);
	/* The order of the KVM selftests' state test: sregs (with the APIC
	 * base) before the LAPIC, registers last. */
	struct kvm_sregs sregs = s->sregs;
	struct kvm_xsave xsave = s->xsave;
	struct kvm_xcrs xcrs = s->xcrs;
	struct kvm_vcpu_events events = s->events;
	struct kvm_debugregs dbg = s->debugregs;
	struct kvm_mp_state mp = s->mp_state;
	struct kvm_lapic_state lapic = s->lapic;
	struct kvm_regs regs = s->regs;
	if (kvm_ioctl(v->fd, KVM_SET_SREGS, &sregs, e) < 0 ||
	    (has_lapic(v) && kvm_ioctl(v->fd, KVM_SET_LAPIC, &lapic, e) < 0) ||
	    load_msrs(v, s, e) < 0 ||
	    kvm_ioctl(v->fd, KVM_SET_XSAVE, &xsave, e) < 0 ||
	    kvm_ioctl(v->fd, KVM_SET_XCRS, &xcrs, e) < 0 ||
	    kvm_ioctl(v->fd, KVM_SET_VCPU_EVENTS, &events, e) < 0 ||
	    kvm_ioctl(v->fd, KVM_SET_MP_STATE, &mp, e) < 0 ||
	    kvm_ioctl(v->fd, KVM_SET_DEBUGREGS, &dbg, e) < 0 ||
	    kvm_ioctl(v->fd, KVM_SET_REGS, &regs, e) < 0)
		return kg_err_prefix(e, "vCPU %u", v->id);
	return 0;
}

int vm_kvm_state_save(struct vm *vm, struct vm_kvm_state *s, struct kg_err *e)
{
	memset(s, 0, sizeof(*s));
	if (vm->cfg.deterministic)
		return kg_errf(e, "a deterministic VM has no in-kernel "
			       "irqchip or PIT to save");
	s->pic_master.chip_id = KVM_IRQCHIP_PIC_MASTER;
	s->pic_slave.chip_id = KVM_IRQCHIP_PIC_SLAVE;
	s->ioapic.chip_id = KVM_IRQCHIP_IOAPIC;
	if (kvm_ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &s->pic_master, e) < 0 ||
	    kvm_ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &s->pic_slave, e) < 0 ||
	    kvm_ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &s->ioapic, e) < 0 ||
	    kvm_ioctl(vm->vm_fd, KVM_GET_PIT2, &s->pit, e) < 0 ||
	    kvm_ioctl(vm->vm_fd, KVM_GET_CLOCK, &s->clock, e) < 0)
		return -1;
	s->realtime_ns = realtime_ns();
	return 0;
}

uint64_t kvmclock_advanced(uint64_t clock, uint64_t since, uint64_t now)
{
	return since && now > since ? clock + (now - since) : clock;
}

int vm_kvm_state_load(struct vm *vm, const struct vm_kvm_state *s,
		      struct kg_err *e)
{
	if (vm->cfg.deterministic)
		return kg_errf(e, "a deterministic VM has no in-kernel "
			       "irqchip or PIT to load");
	struct vm_kvm_state c = *s;
	/* Only the value is restored; the host-side fields are this host's. */
	struct kvm_clock_data clock = {
		.clock = kvmclock_advanced(c.clock.clock, c.realtime_ns,
					    realtime_ns()),
	};
	if (c.pic_master.chip_id != KVM_IRQCHIP_PIC_MASTER ||
	    c.pic_slave.chip_id != KVM_IRQCHIP_PIC_SLAVE ||
	    c.ioapic.chip_id != KVM_IRQCHIP_IOAPIC)
		return kg_errf(e, "irqchip state: bad chip ids");
	if (kvm_ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &c.pic_master, e) < 0 ||
	    kvm_ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &c.pic_slave, e) < 0 ||
	    kvm_ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &c.ioapic, e) < 0 ||
	    kvm_ioctl(vm->vm_fd, KVM_SET_PIT2, &c.pit, e) < 0 ||
	    kvm_ioctl(vm->vm_fd, KVM_SET_CLOCK, &clock, e) < 0)
		return -1;
	return 0;
}

int vm_kvm_clock_stopped(struct vm *vm, struct kg_err *e)
{
	for (unsigned i = 0; i < vm->ncpus; i++)
		if (ioctl(vm->vcpus[i].fd, KVM_KVMCLOCK_CTRL, 0) < 0 &&
		    errno != EINVAL) /* EINVAL: the guest has no kvmclock */
			return kg_errno(e, "vCPU %u: KVM_KVMCLOCK_CTRL", i);
	return 0;
}
