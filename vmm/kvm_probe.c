/* Host probes that decide the CPUID policy (cpuid.h). */
#include "kvm_probe.h"

#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cpuid.h"
#include "kvm.h"

#define PROBE_MEM 0x10000u
#define PROBE_CODE 0x1000u
#define PROBE_PORT 0x80

/* 32-bit flat protected mode: CR4.OSXSAVE, XSETBV(XCR0 = 3), OUT, HLT. */
static const uint8_t probe_code[] = {
	0x0f, 0x20, 0xe0,                   /* mov %cr4, %eax */
	0x0d, 0x00, 0x00, 0x04, 0x00,       /* or $0x40000, %eax */
	0x0f, 0x22, 0xe0,                   /* mov %eax, %cr4 */
	0x31, 0xc9,                         /* xor %ecx, %ecx */
	0xb8, 0x03, 0x00, 0x00, 0x00,       /* mov $3, %eax */
	0x31, 0xd2,                         /* xor %edx, %edx */
	0x0f, 0x01, 0xd1,                   /* xsetbv */
	0xe6, PROBE_PORT,                   /* out %al, $0x80 */
	0xf4,                               /* hlt */
};

static int run_probe(int vm, int vcpu, struct kvm_run *run, bool *ok,
		     struct kg_err *e)
{
	struct kvm_sregs s;
	if (kvm_ioctl(vcpu, KVM_GET_SREGS, &s, e) < 0)
		return -1;
	struct kvm_segment cs = { .limit = 0xffffffff, .selector = 0x10,
				  .type = 0xb, .present = 1, .db = 1, .s = 1,
				  .g = 1 };
	struct kvm_segment ds = cs;
	ds.selector = 0x18;
	ds.type = 0x3;
	s.cs = cs;
	s.ds = s.es = s.fs = s.gs = s.ss = ds;
	s.cr0 = 0x11;
	s.cr4 = s.efer = 0;
	struct kvm_regs r = { .rip = PROBE_CODE, .rflags = 2 };
	if (kvm_ioctl(vcpu, KVM_SET_SREGS, &s, e) < 0 ||
	    kvm_ioctl(vcpu, KVM_SET_REGS, &r, e) < 0)
		return -1;
	(void)vm;
	for (int i = 0; i < 16; i++) {
		if (kvm_ioctl(vcpu, KVM_RUN, NULL, e) < 0)
			return -1;
		if (run->exit_reason == KVM_EXIT_IO &&
		    run->io.port == PROBE_PORT) {
			struct kvm_xcrs x;
			memset(&x, 0, sizeof(x));
			if (kvm_ioctl(vcpu, KVM_GET_XCRS, &x, e) < 0)
				return -1;
			*ok = x.nr_xcrs > 0 && x.xcrs[0].value == 3;
			return 0;
		}
		if (run->exit_reason != KVM_EXIT_INTR)
			break;
	}
	/* The probe itself failed (a #GP on XSETBV ends in a shutdown):
	 * XSAVE is not usable as offered. */
	*ok = false;
	return 0;
}

int kvm_probe_xsetbv(int kvm_fd, const struct kvm_cpuid2 *sup, bool *ok,
		     struct kg_err *e)
{
	struct kvm_cpuid_entry2 *l1 = cpuid_find((struct kvm_cpuid2 *)sup, 1, 0);
	*ok = true;
	if (!l1 || !(l1->ecx & (1u << 26)))
		return 0; /* no XSAVE offered: nothing to hide */
	int rc = -1, vm = -1, vcpu = -1;
	void *mem = MAP_FAILED;
	struct kvm_run *run = MAP_FAILED;
	int rs = kvm_ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, NULL, e);
	if (rs < 0)
		return -1;
	vm = kvm_ioctl(kvm_fd, KVM_CREATE_VM, NULL, e);
	if (vm < 0)
		goto out;
	mem = mmap(NULL, PROBE_MEM, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		kg_errno(e, "XSETBV probe: mmap");
		goto out;
	}
	memcpy((uint8_t *)mem + PROBE_CODE, probe_code, sizeof(probe_code));
	struct kvm_userspace_memory_region reg = {
		.slot = 0, .memory_size = PROBE_MEM,
		.userspace_addr = (uintptr_t)mem,
	};
	if (kvm_ioctl(vm, KVM_SET_USER_MEMORY_REGION, &reg, e) < 0)
		goto out;
	vcpu = kvm_ioctl(vm, KVM_CREATE_VCPU, NULL, e);
	if (vcpu < 0)
		goto out;
	if (kvm_ioctl(vcpu, KVM_SET_CPUID2, (void *)sup, e) < 0)
		goto out;
	run = mmap(NULL, (size_t)rs, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED) {
		kg_errno(e, "XSETBV probe: mmap kvm_run");
		goto out;
	}
	rc = run_probe(vm, vcpu, run, ok, e);
out:
	if (rc < 0)
		kg_err_prefix(e, "XSETBV probe");
	if (run != MAP_FAILED)
		munmap(run, (size_t)rs);
	if (vcpu >= 0)
		close(vcpu);
	if (vm >= 0)
		close(vm);
	if (mem != MAP_FAILED)
		munmap(mem, PROBE_MEM);
	return rc;
}

int kvm_cpuid_flags(int kvm_fd, const struct kvm_cpuid2 *sup, bool irqchip,
		    unsigned *flags, struct kg_err *e)
{
	bool xsetbv_ok;
	*flags = 0;
	if (irqchip &&
	    ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0)
		*flags |= CPUID_TSC_DEADLINE;
	if (kvm_probe_xsetbv(kvm_fd, sup, &xsetbv_ok, e) < 0)
		return -1;
	if (!xsetbv_ok)
		*flags |= CPUID_NO_XSAVE;
	return 0;
}
