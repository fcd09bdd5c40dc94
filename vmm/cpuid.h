/*
 * The CPUID a vCPU sees: KVM's supported set (KVM_GET_SUPPORTED_CPUID)
 * made consistent and given this vCPU's place in the VM. Pure.
 *
 *   leaf 1          APIC id, logical count, HTT; the hypervisor bit and
 *                   TSC-deadline (KVM reports neither; a hardware-reduced
 *                   Linux has no PIT and times with kvmclock and the LAPIC
 *                   deadline timer); no VMX/SVM, no PDCM
 *   leaf 4          cores per package (Intel)
 *   leaves 0xb/0x1f x2APIC topology: one thread per core, ncpus cores
 *                   (subleaves inserted when KVM gives none)
 *   leaf 0xd        left as KVM gives it (KVM recomputes the sizes on
 *                   XSETBV) -- unless XSETBV is not virtualized on this
 *                   host (QEMU-TCG nested SVM: the guest's XCR0 is lost),
 *                   then XSAVE and everything needing it is hidden
 *   0x80000008/1e   core count and extended APIC id (AMD)
 *   0x40000000/1    "KVMKVMKVM", the paravirtual features kagami can save
 *                   and restore: kvmclock (both MSR pairs, the stable bit),
 *                   no I/O delay, PV EOI
 *
 * The same host support gives the same CPUID, so a VM's CPUID is a
 * function of (host, vCPU id, ncpus); cpuid_check_target compares two.
 */
#ifndef KG_CPUID_H
#define KG_CPUID_H

#include <linux/kvm.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define CPUID_TSC_DEADLINE 0x1u /* KVM_CAP_TSC_DEADLINE_TIMER */
#define CPUID_NO_XSAVE 0x2u     /* XSETBV is not virtualized here */

/* vCPU vcpu_id's CPUID: a malloc'd copy of the supported set through the
 * policy (with room for the entries it adds); NULL on allocation failure. */
struct kvm_cpuid2 *cpuid_for_vcpu(const struct kvm_cpuid2 *supported,
				  unsigned vcpu_id, unsigned ncpus,
				  unsigned flags, struct kg_err *e);

/* The entry for (function, index), or NULL. */
struct kvm_cpuid_entry2 *cpuid_find(struct kvm_cpuid2 *c, uint32_t function,
				    uint32_t index);

/* 0 when every feature bit the guest sees in `want` (the source's CPUID)
 * is also in `have` (the target's supported set through the same policy
 * and its own flags); otherwise -1 naming the first missing feature,
 * e.g. "the target lacks CPU feature avx2 (CPUID 0x7 EBX bit 5)". */
int cpuid_check_target(const struct kvm_cpuid2 *want,
		       const struct kvm_cpuid2 *have, struct kg_err *e);

#endif
