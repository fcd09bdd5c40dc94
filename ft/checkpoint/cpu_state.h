/*
 * The complete KVM-held state of a paused VM: every vCPU (registers,
 * special registers, xsave, xcrs, MSRs from KVM's index list, events,
 * debug registers, mp_state, local APIC) and the VM-wide in-kernel devices
 * (PIC, IOAPIC, PIT, kvmclock). Save requires vm_pause() (which also
 * completes any half-done PIO/MMIO instruction); load targets a VM with the
 * same vCPU count whose vCPUs are not running.
 *
 * A deterministic VM (cfg.deterministic) has no in-kernel irqchip: its
 * vCPUs have no local APIC (the lapic field is left zero and not loaded)
 * and vm_kvm_state_save/load refuse it; its PIC and PIT are userspace
 * devices (vm_state.h). kvmclock is not carried for it either: its guests
 * read time from the kagami device, through the input gate.
 */
#ifndef KG_CPU_STATE_H
#define KG_CPU_STATE_H

#include <linux/kvm.h>
#include <stdint.h>

#include "base/err.h"

struct vm;
struct vcpu;

#define CPU_STATE_MAX_MSRS 256

struct cpu_state {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xsave xsave;
	struct kvm_xcrs xcrs;
	struct kvm_vcpu_events events;
	struct kvm_debugregs debugregs;
	struct kvm_mp_state mp_state;
	struct kvm_lapic_state lapic;
	uint32_t nmsrs;
	struct kvm_msr_entry msrs[CPU_STATE_MAX_MSRS];
};

struct vm_kvm_state {
	struct kvm_irqchip pic_master, pic_slave, ioapic;
	struct kvm_pit_state2 pit;
	struct kvm_clock_data clock;
	/* The saving host's CLOCK_REALTIME when kvmclock was read: a load
	 * advances kvmclock by the real time since (0: not known, not
	 * advanced), so that the guest's clocks run on across a migration,
	 * a failover or a restore as if it had not stopped, and never go
	 * back. Hosts' clocks are assumed synchronised (NTP). */
	uint64_t realtime_ns;
};

/* kvmclock value `clock`, read at real time `since` (0: unknown), as
 * loaded at real time `now`: advanced by the time that passed, but never
 * set back (a host whose clock is behind the saver's loads it as is). */
uint64_t kvmclock_advanced(uint64_t clock, uint64_t since, uint64_t now);

/* KVM's list of MSRs to save (KVM_GET_MSR_INDEX_LIST), up to the limit. */
int cpu_msr_index_list(int kvm_fd, uint32_t *idx, uint32_t *n,
		       struct kg_err *e);
int cpu_state_save(struct vcpu *v, const uint32_t *msr_idx, uint32_t nmsr,
		   struct cpu_state *s, struct kg_err *e);
/* MSRs KVM rejects are skipped, each logged once (base/log.h). */
int cpu_state_load(struct vcpu *v, const struct cpu_state *s,
		   struct kg_err *e);
int vm_kvm_state_save(struct vm *vm, struct vm_kvm_state *s, struct kg_err *e);
int vm_kvm_state_load(struct vm *vm, const struct vm_kvm_state *s,
		      struct kg_err *e);
/* Tells each vCPU's kvmclock that the guest was stopped
 * (KVM_KVMCLOCK_CTRL), so that its watchdogs do not take the time that
 * passed for a lockup. After cpu_state_load (the guest's kvmclock MSRs);
 * a vCPU whose guest has not enabled kvmclock is skipped. */
int vm_kvm_clock_stopped(struct vm *vm, struct kg_err *e);

#endif
