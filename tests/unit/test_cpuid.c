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

#define IDX KVM_CPUID_FLAG_SIGNIFCANT_INDEX

static struct kvm_cpuid2 *make(void)
{
	static const struct kvm_cpuid_entry2 ents[] = {
		{ .function = 1, .eax = 0x806f8, .ebx = 0x00000800,
		  .ecx = (1u << 28) | (1u << 26) | (1u << 0), .edx = 1u << 26 },
		{ .function = 4, .index = 0, .flags = IDX, .eax = 0x121 },
		{ .function = 4, .index = 1, .flags = IDX, .eax = 0x163 },
		{ .function = 4, .index = 2, .flags = IDX, .eax = 0 },
		{ .function = 7, .index = 0, .flags = IDX, .ebx = 1u << 5 },
		{ .function = 0xb, .index = 0, .flags = IDX },
		{ .function = 0xb, .index = 1, .flags = IDX },
		{ .function = 0xb, .index = 2, .flags = IDX },
		/* XCR0 claims x87, SSE, AVX and the three AVX-512 parts, but
		 * leaf 7 has no AVX512F: those three must go. */
		{ .function = 0xd, .index = 0, .flags = IDX, .eax = 0xe7,
		  .ebx = 2696, .ecx = 2696 },
		{ .function = 0xd, .index = 1, .flags = IDX, .eax = 0xf },
		{ .function = 0xd, .index = 2, .flags = IDX, .eax = 256, .ebx = 576 },
		{ .function = 0xd, .index = 5, .flags = IDX, .eax = 64, .ebx = 1088 },
		{ .function = 0xd, .index = 6, .flags = IDX, .eax = 512, .ebx = 1152 },
		{ .function = 0xd, .index = 7, .flags = IDX, .eax = 1024, .ebx = 1664 },
		{ .function = 0x40000000, .eax = 0x40000001, .ebx = 0x4b4d564b },
		{ .function = 0x40000001, .eax = 0x01ffffff, .edx = 1 },
		{ .function = 0x80000001, .ecx = 1u << 5, .edx = 1u << 29 },
		{ .function = 0x80000008, .eax = 0x3030, .ecx = 0x7003 },
		{ .function = 0x8000001e, .eax = 7, .ebx = 0x100, .ecx = 0x300 },
	};
	size_t n = sizeof(ents) / sizeof(ents[0]);
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(ents[0]));
	c->nent = (uint32_t)n;
	memcpy(c->entries, ents, sizeof(ents));
	return c;
}

static void test_identity_and_topology(void **state)
{
	(void)state;
	struct kvm_cpuid2 *c = make();
	cpuid_apply_policy(c, 3, 4);
	struct kvm_cpuid_entry2 *l1 = cpuid_find(c, 1, 0);
	assert_int_equal(l1->ebx >> 24, 3);
	assert_int_equal(l1->ebx >> 16 & 0xff, 4);
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
	free(c);
	/* One vCPU: no HTT. */
	c = make();
	cpuid_apply_policy(c, 0, 1);
	assert_false(cpuid_find(c, 1, 0)->edx & (1u << 28));
	assert_int_equal(cpuid_find(c, 0xb, 1)->eax, 0);
	free(c);
}

static void test_xsave_consistent(void **state)
{
	(void)state;
	struct kvm_cpuid2 *c = make();
	cpuid_apply_policy(c, 0, 1);
	struct kvm_cpuid_entry2 *d0 = cpuid_find(c, 0xd, 0);
	assert_int_equal(d0->eax, 0x7); /* x87, SSE, AVX */
	assert_int_equal(d0->edx, 0);
	assert_int_equal(d0->ebx, 576);
	assert_int_equal(d0->ecx, 576 + 256); /* AVX is the last kept */
	assert_int_equal(cpuid_find(c, 0xd, 5)->eax, 0);
	assert_int_equal(cpuid_find(c, 0xd, 7)->ebx, 0);
	assert_int_equal(cpuid_find(c, 0xd, 2)->eax, 256);
	free(c);
	/* With AVX512F, all kept and the size covers the ZMM16-31 area. */
	c = make();
	cpuid_find(c, 7, 0)->ebx |= 1u << 16;
	cpuid_apply_policy(c, 0, 1);
	assert_int_equal(cpuid_find(c, 0xd, 0)->eax, 0xe7);
	assert_int_equal(cpuid_find(c, 0xd, 0)->ecx, 1664 + 1024);
	free(c);
}

static void test_kvm_leaves(void **state)
{
	(void)state;
	struct kvm_cpuid2 *c = make();
	cpuid_apply_policy(c, 0, 1);
	assert_int_equal(cpuid_find(c, 0x40000000, 0)->eax, 0x40000001);
	uint32_t f = cpuid_find(c, 0x40000001, 0)->eax;
	assert_int_equal(f, (1u << 0) | (1u << 1) | (1u << 3) | (1u << 6) |
				    (1u << 24));
	assert_int_equal(cpuid_find(c, 0x40000001, 0)->edx, 0);
	free(c);
}

static void test_check_target(void **state)
{
	(void)state;
	struct kvm_cpuid2 *want = make(), *have = make();
	struct kg_err e = { 0 };
	cpuid_apply_policy(want, 1, 2);
	assert_int_equal(cpuid_check_target(want, have, &e), 0);
	cpuid_find(have, 7, 0)->ebx &= ~(1u << 5);
	assert_int_equal(cpuid_check_target(want, have, &e), -1);
	assert_non_null(strstr(e.msg, "CPU feature avx2 (CPUID 0x7 EBX bit 5)"));
	free(have);
	have = make();
	cpuid_find(have, 0x40000001, 0)->eax = 0;
	assert_int_equal(cpuid_check_target(want, have, &e), -1);
	assert_non_null(strstr(e.msg, "kvmclock"));
	free(have);
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
	struct kvm_cpuid2 *c = kvm_supported_cpuid(fd, &e);
	assert_non_null(c);
	cpuid_apply_policy(c, 1, 2);
	struct kvm_cpuid_entry2 *d0 = cpuid_find(c, 0xd, 0);
	if (d0) {
		uint64_t xcr0 = (uint64_t)d0->edx << 32 | d0->eax;
		for (unsigned k = 2; k < 64; k++) {
			if (!(xcr0 >> k & 1))
				continue;
			struct kvm_cpuid_entry2 *s = cpuid_find(c, 0xd, k);
			assert_non_null(s);
			assert_true(s->ebx + s->eax <= d0->ecx);
		}
	}
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
		cmocka_unit_test(test_xsave_consistent),
		cmocka_unit_test(test_kvm_leaves),
		cmocka_unit_test(test_check_target),
		cmocka_unit_test(test_host_kvm),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
