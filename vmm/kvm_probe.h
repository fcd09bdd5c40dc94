/*
 * What this host's KVM really does, where its capabilities do not say:
 * probes that run a few guest instructions in a throwaway VM.
 */
#ifndef KG_KVM_PROBE_H
#define KG_KVM_PROBE_H

#include <linux/kvm.h>
#include <stdbool.h>

#include "base/err.h"

/* Whether a guest's XSETBV reaches KVM (*ok). Under QEMU's emulated SVM
 * (our virtual hosts) it does not: the guest's XCR0 is lost at the next
 * exit, and XSAVE must be hidden (the guest would lose SSE state). */
int kvm_probe_xsetbv(int kvm_fd, const struct kvm_cpuid2 *supported,
		     bool *ok, struct kg_err *e);

/* The CPUID_* flags (cpuid.h) for VMs on this host; irqchip: the VM has
 * an in-kernel LAPIC (TSC-deadline needs one). */
int kvm_cpuid_flags(int kvm_fd, const struct kvm_cpuid2 *supported,
		    bool irqchip, unsigned *flags, struct kg_err *e);

#endif
