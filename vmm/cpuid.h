/*
 * The CPUID a vCPU sees: KVM's supported set (KVM_GET_SUPPORTED_CPUID)
 * made consistent and given this vCPU's place in the VM. Pure.
 *
 *   leaf 1          APIC id, logical count, HTT; the hypervisor bit
 *   leaf 4          cores per package (Intel)
 *   leaves 0xb/0x1f x2APIC topology: one thread per core, ncpus cores
 *   leaf 0xd        XSAVE components only when their CPUID feature is
 *                   there too, and sizes computed from the components
 *                   kept (Linux checks them against each other)
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

/* Applies the policy in place to a copy of the supported set. */
void cpuid_apply_policy(struct kvm_cpuid2 *c, unsigned vcpu_id,
			unsigned ncpus);

/* The entry for (function, index), or NULL. */
struct kvm_cpuid_entry2 *cpuid_find(struct kvm_cpuid2 *c, uint32_t function,
				    uint32_t index);

/* 0 when every feature bit the guest sees in `want` is also in `have`
 * (what a target host supports); otherwise -1 naming the first missing
 * feature, e.g. "CPUID 0x7 EBX bit 5 (avx2)". */
int cpuid_check_target(const struct kvm_cpuid2 *want,
		       const struct kvm_cpuid2 *have, struct kg_err *e);

#endif
