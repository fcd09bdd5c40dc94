/* The CPUID policy (vmm/cpuid.c) on a hand-made supported set, and on this
 * host's KVM_GET_SUPPORTED_CPUID when /dev/kvm is there. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <cmocka.h>

#include "vmm/cpuid.h"
#include "vmm/kvm.h"
#include "vmm/kvm_probe.h"

#define IDX KVM_CPUID_FLAG_SIGNIFCANT_INDEX

static struct kvm_cpuid2 *make(void)
{
	static const struct kvm_cpuid_entry2 ents[] = {
		{ .function = 0, .eax = 0xd, .ebx = 0x68747541 },
		{ .function = 1, .eax = 0x806f8, .ebx = 0x00000800,
		  .ecx = (1u << 28) | (1u << 26) | (1u << 0), .edx = 1u << 26 },
		{ .function = 4, .index = 0, .flags = IDX, .eax = 0x121 },
		{ .function = 4, .index = 1, .flags = IDX, .eax = 0x163 },
		{ .function = 4, .index = 2, .flags = IDX, .eax = 0 },
		{ .function = 7, .index = 0, .flags = IDX, .ebx = 1u << 5 },
		{ .function = 0xb, .index = 0, .flags = IDX },
		{ .function = 0xd, .index = 0, .flags = IDX, .eax = 0xe7,
		  .ebx = 2696, .ecx = 2696 },
		{ .function = 0xd, .index = 1, .flags = IDX, .eax = 0xf },
		{ .function = 0xd, .index = 2, .flags = IDX, .eax = 256, .ebx = 576 },
		{ .function = 0xd, .index = 5, .flags = IDX, .eax = 64, .ebx = 1088 },
		{ .function = 0xd, .index = 6, .flags = IDX, .eax = 512, .ebx = 1152 },
		{ .function = 0xd, .index = 7, .flags = IDX, .eax = 1024, .ebx = 1664 },
		{ .function = 0x40000000, .eax = 0x40000001, .ebx = 0x4b4d564b },
		{ .function = 0x40000001, .eax = 0x01ffffff, .edx = 1 },
		{ .function = 0x80000001, .ecx = (1u << 5) | (1u << 2) | (1u << 11),
		  .edx = 1u << 29 },
		{ .function = 0x80000008, .eax = 0x3030, .ecx = 0x7003 },
		{ .function = 0x8000001e, .eax = 7, .ebx = 0x100, .ecx = 0x300 },
	};
	size_t n = sizeof(ents) / sizeof(ents[0]);
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(ents[0]));
	c->nent = (uint32_t)n;
	memcpy(c->entries, ents, sizeof(ents));
	return c;
}

static struct kvm_cpuid2 *policy(unsigned id, unsigned ncpus, unsigned flags)
{
	struct kvm_cpuid2 *sup = make();
	struct kg_err e = { 0 };
	struct kvm_cpuid2 *c = cpuid_for_vcpu(sup, id, ncpus, flags, &e);
	assert_non_null(c);
	free(sup);
	return c;
}

static void test_identity_and_topology(void **state)
{
	(void)state;
	struct kvm_cpuid2 *c = policy(3, 4, 0);
	struct kvm_cpuid_entry2 *l1 = cpuid_find(c, 1, 0);
	assert_int_equal(l1->ebx >> 24, 3);
	assert_int_equal(l1->ebx >> 16 & 0xff, 4);
	assert_false(l1->ecx & (1u << 24)); /* no TSC-deadline unless told */
	assert_int_equal(l1->ebx & 0xffff, 0x0800); /* CLFLUSH size kept */
	assert_true(l1->edx & (1u << 28));
	assert_true(l1->ecx & (1u << 31));
	struct kvm_cpuid_entry2 *b0 = cpuid_find(c, 0xb, 0),
				*b1 = cpuid_find(c, 0xb, 1),
				*b2 = cpuid_find(c, 0xb, 2);
	assert_int_equal(b0->ebx, 1);
	assert_int_equal(b0->ecx >> 8 & 0xff, 1);
	assert_int_equal(b1->eax, 2); /* 4 vCPUs: 2 bits of APIC id */
	assert_int_equal(b1->ebx, 4);
	assert_int_equal(b1->ecx >> 8 & 0xff, 2);
	assert_int_equal(b2->ecx >> 8 & 0xff, 0);
	assert_int_equal(b0->edx, 3);
	assert_int_equal(b2->edx, 3);
	assert_int_equal(cpuid_find(c, 4, 0)->eax >> 26, 3);
	assert_int_equal(cpuid_find(c, 4, 2)->eax, 0); /* the end marker */
	assert_int_equal(cpuid_find(c, 0x80000008, 0)->ecx & 0xff, 3);
	assert_int_equal(cpuid_find(c, 0x80000008, 0)->ecx >> 12 & 0xf, 2);
	assert_int_equal(cpuid_find(c, 0x8000001e, 0)->eax, 3);
	assert_false(cpuid_find(c, 0x80000001, 0)->ecx & (1u << 2)); /* SVM */
	free(c);
	/* One vCPU: no HTT; 3 vCPUs count as 4 in leaf 1. */
	c = policy(0, 1, 0);
	assert_false(cpuid_find(c, 1, 0)->edx & (1u << 28));
	assert_int_equal(cpuid_find(c, 0xb, 1)->eax, 0);
	free(c);
	c = policy(2, 3, CPUID_TSC_DEADLINE);
	assert_int_equal(cpuid_find(c, 1, 0)->ebx >> 16 & 0xff, 4);
	assert_true(cpuid_find(c, 1, 0)->ecx & (1u << 24));
	assert_int_equal(cpuid_find(c, 0xb, 1)->ebx, 3);
	free(c);
}

/* KVM keeps 0xd up to date itself: left alone; hidden whole (with what
 * needs it) when XSETBV is not virtualized. */
static void test_xsave(void **state)
{
	(void)state;
	struct kvm_cpuid2 *c = policy(0, 1, 0);
	struct kvm_cpuid_entry2 *d0 = cpuid_find(c, 0xd, 0);
	assert_int_equal(d0->eax, 0xe7);
	assert_int_equal(d0->ebx, 2696);
	assert_true(cpuid_find(c, 1, 0)->ecx & (1u << 26));
	free(c);
	c = policy(0, 1, CPUID_NO_XSAVE);
	for (uint32_t i = 0; i < c->nent; i++)
		if (c->entries[i].function == 0xd)
			assert_int_equal(c->entries[i].eax | c->entries[i].ebx |
					 c->entries[i].ecx | c->entries[i].edx, 0);
	uint32_t ecx1 = cpuid_find(c, 1, 0)->ecx;
	assert_false(ecx1 & ((1u << 26) | (1u << 28)));
	assert_true(ecx1 & 1u); /* SSE3 stays */
	assert_false(cpuid_find(c, 7, 0)->ebx & (1u << 5)); /* AVX2 */
	assert_false(cpuid_find(c, 0x80000001, 0)->ecx & (1u << 11)); /* XOP */
	assert_true(cpuid_find(c, 0x80000001, 0)->ecx & (1u << 5));
	free(c);
}

static void test_kvm_leaves(void **state)
{
	(void)state;
	struct kvm_cpuid2 *c = policy(0, 1, 0);
	assert_int_equal(cpuid_find(c, 0x40000000, 0)->eax, 0x40000001);
	uint32_t f = cpuid_find(c, 0x40000001, 0)->eax;
	assert_int_equal(f, (1u << 0) | (1u << 1) | (1u << 3) | (1u << 6) |
				    (1u << 24));
	assert_int_equal(cpuid_find(c, 0x40000001, 0)->edx, 0);
	free(c);
}

/* Both sides through the same policy; the target must have every
 * feature the source's guest sees. */
static void test_check_target(void **state)
{
	(void)state;
	struct kvm_cpuid2 *want = policy(1, 2, CPUID_TSC_DEADLINE);
	struct kvm_cpuid2 *sup = make();
	struct kg_err e = { 0 };
	struct kvm_cpuid2 *have = cpuid_for_vcpu(sup, 1, 2, CPUID_TSC_DEADLINE, &e);
	assert_int_equal(cpuid_check_target(want, have, &e), 0);
	free(have);
	/* No AVX2 there. */
	cpuid_find(sup, 7, 0)->ebx &= ~(1u << 5);
	have = cpuid_for_vcpu(sup, 1, 2, CPUID_TSC_DEADLINE, &e);
	assert_int_equal(cpuid_check_target(want, have, &e), -1);
	assert_non_null(strstr(e.msg, "CPU feature avx2 (CPUID 0x7 EBX bit 5)"));
	free(have);
	free(sup);
	/* No kvmclock there. */
	sup = make();
	cpuid_find(sup, 0x40000001, 0)->eax = 0;
	have = cpuid_for_vcpu(sup, 1, 2, CPUID_TSC_DEADLINE, &e);
	assert_int_equal(cpuid_check_target(want, have, &e), -1);
	assert_non_null(strstr(e.msg, "kvmclock"));
	free(have);
	free(sup);
	/* A virtual host whose XSETBV is lost cannot take a guest that
	 * uses XSAVE. */
	sup = make();
	have = cpuid_for_vcpu(sup, 1, 2, CPUID_TSC_DEADLINE | CPUID_NO_XSAVE, &e);
	assert_int_equal(cpuid_check_target(want, have, &e), -1);
	assert_non_null(strstr(e.msg, "xsave"));
	free(have);
	free(sup);
	free(want);
}

/* This host's KVM: the policy leaves every kept XSAVE component with its
 * feature, sizes that cover them, and KVM accepts it on a vCPU. */
static void test_host_kvm(void **state)
{
	(void)state;
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		const char *ci = getenv("CI");
		if (ci && !strcmp(ci, "true"))
			fail_msg("/dev/kvm is not usable (required under CI)");
		skip();
	}
	struct kg_err e = { 0 };
	struct kvm_cpuid2 *sup = kvm_supported_cpuid(fd, &e);
	assert_non_null(sup);
	unsigned flags;
	if (kvm_cpuid_flags(fd, sup, true, &flags, &e) < 0)
		fail_msg("%s", e.msg);
	print_message("host CPUID flags: %s%s\n",
		      flags & CPUID_TSC_DEADLINE ? "tsc-deadline " : "",
		      flags & CPUID_NO_XSAVE ? "no-xsave (XSETBV not virtualized)"
					     : "xsave ok");
	struct kvm_cpuid2 *c = cpuid_for_vcpu(sup, 1, 2, flags, &e);
	assert_non_null(c);
	free(sup);
	int vm = ioctl(fd, KVM_CREATE_VM, 0);
	assert_true(vm >= 0);
	int vcpu = ioctl(vm, KVM_CREATE_VCPU, 1);
	assert_true(vcpu >= 0);
	if (ioctl(vcpu, KVM_SET_CPUID2, c) < 0)
		fail_msg("KVM_SET_CPUID2 refused the policy's CPUID");
	close(vcpu);
	close(vm);
	close(fd);
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_identity_and_topology),
		cmocka_unit_test(test_xsave),
		cmocka_unit_test(test_kvm_leaves),
		cmocka_unit_test(test_check_target),
		cmocka_unit_test(test_host_kvm),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
